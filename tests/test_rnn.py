"""Q2: the scalar RNN h_t = x_t − h_{t−1}, y_t = σ(1000·h_t), simulated and in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hw3 import rnn

SETTINGS = settings(deadline=None, max_examples=150)


def alternating_prefix_sums(xs: list[int]) -> list[int]:
    """h_1..h_T by the recurrence h_t = x_t − h_{t−1}, in exact Python ints (independent of hw3.rnn)."""
    h, out = 0, []
    for x in xs:
        h = x - h
        out.append(h)
    return out


def fitting_sequences(max_len: int = 40):
    """Integer sequences whose absolute sum fits in int64: small values (many ties) or values near ±2**62/len."""
    def values(n: int):
        bound = 2**62 // n
        small = st.integers(-3, 3)
        big = st.one_of(st.integers(-bound, bound), st.sampled_from([bound, -bound, bound - 1, -bound + 1]))
        return st.lists(st.one_of(small, big) if n > 1 else big, min_size=n, max_size=n)

    return st.integers(1, max_len).flatmap(values)


# --- simulate vs closed form -------------------------------------------------------------------------------------

@SETTINGS
@given(fitting_sequences())
@example([1, 1]).via("tie, even length")
@example([2, 1, 1]).via("tie, odd length")
@example([2**61, 2**61]).via("huge tie")
@example([-(2**62), 2**62 - 1]).via("near the int64 bound")
def test_simulate_final_output_equals_closed_form(xs):
    h, y = rnn.simulate(xs)
    assert not torch.isnan(y).any()
    assert float(y[-1]) == rnn.closed_form(xs)
    assert float(y[-1]) in (0.0, 0.5, 1.0)


@SETTINGS
@given(fitting_sequences())
def test_simulate_hidden_state_is_the_alternating_sum_at_every_step(xs):
    expected = alternating_prefix_sums(xs)
    h, y = rnn.simulate(xs)
    assert h.dtype == torch.float64 and h.shape == (len(xs),)
    # simulate returns float64: each h_t is the correctly rounded value of the exact integer (exact below 2**53)
    assert h.tolist() == [float(v) for v in expected]
    # the module itself keeps the state in exact int64
    h_int, _ = rnn.ScalarRNN()(torch.tensor(xs, dtype=torch.int64))
    assert h_int.dtype == torch.int64 and h_int.tolist() == expected
    # every output is 0, 0.5 or 1 for integer inputs, according to the sign of h_t
    assert y.tolist() == [1.0 if v > 0 else 0.5 if v == 0 else 0.0 for v in expected]


@SETTINGS
@given(st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=30))
def test_hidden_closed_form_matches_recurrence(xs):
    assert rnn.hidden_closed_form(xs) == alternating_prefix_sums(xs)[-1]


@SETTINGS
@given(st.integers(1, 8).flatmap(lambda n: st.lists(st.integers(-5, 5) | st.integers(-1000, 1000), min_size=2 * n, max_size=2 * n)))
def test_even_length_output_compares_even_and_odd_position_sums(xs):
    assert len(xs) % 2 == 0
    even_sum, odd_sum = sum(xs[1::2]), sum(xs[0::2])  # positions 2, 4, … and 1, 3, … (1-based)
    y_T = rnn.closed_form(xs)
    assert float(rnn.simulate(xs)[1][-1]) == y_T
    assert (y_T == 1.0) == (even_sum > odd_sum)
    assert (y_T == 0.5) == (even_sum == odd_sum)
    assert (y_T == 0.0) == (even_sum < odd_sum)


@pytest.mark.parametrize("xs, y_T", [
    ([3, 5, -2, 4, 7, 1], 1.0),   # evens 5+4+1=10 > odds 3-2+7=8
    ([4, 3, 2, 1], 0.0),          # 3+1 < 4+2
    ([5, 2, 2, 5], 0.5),          # 2+5 == 5+2
    ([7], 1.0), ([-7], 0.0), ([0], 0.5),
    ([1, 1, 1], 1.0),             # odd length: h_T = x1 − x2 + x3
])
def test_known_sequences(xs, y_T):
    assert rnn.closed_form(xs) == y_T
    assert float(rnn.simulate(xs)[1][-1]) == y_T


# --- huge integers ---------------------------------------------------------------------------------------------

def test_hidden_closed_form_is_exact_for_huge_integers():
    big = 10**400
    assert rnn.hidden_closed_form([big]) == big
    assert rnn.hidden_closed_form([big, big + 7]) == 7
    assert rnn.hidden_closed_form([big, 3, big]) == 2 * big - 3
    assert rnn.hidden_closed_form([-big, big, 1]) == -2 * big + 1
    assert rnn.closed_form([big]) == 1.0
    assert rnn.closed_form([-big]) == 0.0
    assert rnn.closed_form([big, big]) == 0.5          # cancels exactly
    assert rnn.closed_form([big, big + 1]) == 1.0      # a margin of 1 out of 10**400
    assert rnn.closed_form([big + 1, big]) == 0.0


@SETTINGS
@given(st.lists(st.integers(-(10**30), 10**30), min_size=1, max_size=8), st.integers(1, 400))
def test_closed_form_is_exact_and_finite_far_beyond_int64(xs, power):
    xs = [x * 10**power for x in xs]
    h = rnn.hidden_closed_form(xs)
    assert h == alternating_prefix_sums(xs)[-1]
    y = rnn.closed_form(xs)
    assert not math.isnan(y)
    assert y == (1.0 if h > 0 else 0.5 if h == 0 else 0.0)


def test_simulate_accepts_the_int64_bound_and_refuses_beyond():
    h, y = rnn.simulate([2**63 - 1])
    assert float(y[-1]) == 1.0
    with pytest.raises(ValueError, match="overflow|too large"):
        rnn.simulate([2**62, 2**62])
    with pytest.raises(ValueError, match="overflow|too large"):
        rnn.simulate([-(2**63)])
    with pytest.raises(ValueError, match="closed_form"):
        rnn.simulate([10**400])


# --- input validation ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    ([1.5], "integer"),
    ([1, 2.5, 3], "integer"),
    (torch.tensor([1.0, 1.5]), "integer"),
    ([float("nan")], "integer"),
    ([float("inf")], "integer"),
    (torch.tensor([float("inf"), 1.0]), "integer"),
    (torch.tensor([float("nan")]), "integer"),
    (["3"], "integer"),
    ([1 + 0j], "integer"),
    ([True, 2], "integer"),
    (torch.tensor([True, False]), "integer"),
    ([], "empty"),
    (torch.tensor([], dtype=torch.int64), "empty"),
    (torch.zeros(2, 3, dtype=torch.int64), "1-D"),
    (torch.tensor(3), "1-D"),
])
def test_bad_inputs_raise_a_clear_value_error(bad, match):
    for fn in (rnn.simulate, rnn.closed_form, rnn.hidden_closed_form):
        with pytest.raises(ValueError, match=match) as info:
            fn(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("xs", [
    [1.0, -2.0, 3.0],
    torch.tensor([1.0, -2.0, 3.0]),
    torch.tensor([1, -2, 3], dtype=torch.int32),
    np.array([1, -2, 3]),
    [np.int64(1), np.int16(-2), 3],
])
def test_whole_numbers_of_any_type_are_accepted(xs):
    h, y = rnn.simulate(xs)
    assert h.tolist() == [1.0, -3.0, 6.0]
    assert rnn.hidden_closed_form(xs) == 6 and rnn.closed_form(xs) == 1.0


def test_stable_sigmoid_never_overflows():
    assert rnn.stable_sigmoid(0.0) == 0.5
    assert rnn.stable_sigmoid(1e300) == 1.0 and rnn.stable_sigmoid(-1e300) == 0.0
    assert rnn.stable_sigmoid(math.inf) == 1.0 and rnn.stable_sigmoid(-math.inf) == 0.0
    assert rnn.stable_sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-15)
    assert rnn.stable_sigmoid(-2.0) == pytest.approx(1 / (1 + math.exp(2.0)), rel=1e-15)


# --- figure ---------------------------------------------------------------------------------------------------

def test_plot_sequence_draws_inputs_hidden_states_and_outputs():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    xs = [3, 5, -2, 4, 7, 1]
    fig = rnn.plot_sequence(xs)
    try:
        assert isinstance(fig, Figure)
        ax, twin = fig.axes
        x_line, h_line = ax.get_lines()
        (y_line,) = twin.get_lines()
        assert list(x_line.get_xdata()) == list(range(1, 7))
        assert list(x_line.get_ydata()) == xs
        assert list(h_line.get_ydata()) == alternating_prefix_sums(xs)
        assert list(y_line.get_ydata()) == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # h = 3, 2, -4, 8, -1, 2
        assert "h_T = 2" in ax.get_title() and "h_t = x_t - h_{t-1}" in ax.get_title()  # the recurrence
        assert "\\sigma(1000" in ax.get_title()
        assert len(ax.get_legend().get_texts()) == 3
    finally:
        plt.close(fig)


@pytest.mark.parametrize("xs", [[3, 5, -2, 4, 7, 1], [1, 2, 3], [-9, 9, -9, 9], [0] * 12, [100, -100]])
def test_plot_sequence_legend_covers_no_point_of_any_line(xs):
    """The legend's box holds none of the drawn points of x_t, h_t or y_t (y_t densely along its steps: it runs
    along the top and bottom edges, where a legend inside the plot would sit), and stays inside the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.cbook import pts_to_midstep

    fig = rnn.plot_sequence(xs)
    try:
        fig.canvas.draw()
        ax, twin = fig.axes
        box = ax.get_legend().get_window_extent()
        x_line, h_line = ax.get_lines()
        (y_line,) = twin.get_lines()
        corners = np.column_stack(pts_to_midstep(y_line.get_xdata(), y_line.get_ydata()))  # the drawn steps
        along = np.concatenate([np.linspace(a, b, 50) for a, b in zip(corners[:-1], corners[1:])])
        points = [ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
                  for line in (x_line, h_line)] + [twin.transData.transform(along)]
        for drawn in points:
            assert not any(box.contains(px, py) for px, py in drawn)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    finally:
        plt.close(fig)


def test_plot_sequence_draws_on_a_given_axis():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        assert rnn.plot_sequence([1, 2], ax=ax) is fig
        assert len(ax.get_lines()) == 2
    finally:
        plt.close(fig)
