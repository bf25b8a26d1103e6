"""Q2: the scalar RNN of the homework's figure.

The network has one input unit, one hidden unit and one output unit, all biases zero:

    h_t = 1·x_t + (−1)·h_{t−1},   h_0 = 0
    y_t = σ(1000·h_t)

Unrolling the recurrence gives the closed form

    h_T = Σ_{k=1..T} (−1)^{T−k} x_k

so for an even length T = 2n, h_T = (x_2 + x_4 + … + x_2n) − (x_1 + x_3 + … + x_2n−1): the sum of the
inputs at even time steps minus the sum at odd time steps. Inputs are integers, so h_T is an integer and
σ(1000·h_T) is 1 (to within e^−1000) when h_T ≥ 1, exactly 0.5 when h_T = 0, and 0 (to within e^−1000)
when h_T ≤ −1. The output unit therefore decides whether the even-position inputs sum to more than the
odd-position inputs.

`simulate` runs an actual torch module with these fixed weights; `closed_form` evaluates the formula.
The module keeps its hidden state in exact int64 arithmetic, so the two agree for every integer input
whose partial sums fit in int64; larger inputs are refused with a clear error instead of silently losing
precision.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn

INPUT_WEIGHT = 1
RECURRENT_WEIGHT = -1
OUTPUT_WEIGHT = 1000
_INT64_MAX = 2**63 - 1

IntSequence = Sequence[int] | torch.Tensor


class ScalarRNN(nn.Module):
    """The figure's RNN as a module: fixed integer weights, no biases, linear hidden unit.

    forward(x): x is a LongTensor [T]; returns (h [T] int64, y [T] float64).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w_in", torch.tensor(INPUT_WEIGHT, dtype=torch.int64))
        self.register_buffer("w_rec", torch.tensor(RECURRENT_WEIGHT, dtype=torch.int64))
        self.register_buffer("w_out", torch.tensor(float(OUTPUT_WEIGHT), dtype=torch.float64))

    def step(self, x_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """One time step: h_t = w_in·x_t + w_rec·h_{t−1} (0-d int64 tensors)."""
        return self.w_in * x_t + self.w_rec * h_prev

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Output unit: y = σ(w_out·h), computed in float64 (h any shape)."""
        return torch.sigmoid(self.w_out * h.to(torch.float64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_prev = torch.zeros((), dtype=torch.int64)
        states = []
        for x_t in x:
            h_prev = self.step(x_t, h_prev)
            states.append(h_prev)
        h = torch.stack(states) if states else torch.zeros(0, dtype=torch.int64)
        return h, self.readout(h)


def _as_int(v: object) -> int:
    """One input as an exact Python int; floats must be whole numbers."""
    if isinstance(v, bool):
        raise ValueError(f"inputs must be integers, got the boolean {v!r}")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and math.isfinite(float(v)) and float(v).is_integer():
        return int(v)
    raise ValueError(f"inputs must be integers, got {v!r}: round them first")


def _as_int_list(xs: IntSequence) -> list[int]:
    """Validate a 1-D integer sequence and return it as Python ints (exact)."""
    if isinstance(xs, torch.Tensor):
        if xs.dim() != 1:
            raise ValueError(f"expected a 1-D sequence of integers, got a tensor of shape {tuple(xs.shape)}")
        if xs.dtype == torch.bool or xs.is_complex():
            raise ValueError(f"inputs must be integers, got a {xs.dtype} tensor")
        if xs.is_floating_point():
            if not bool(torch.all(torch.isfinite(xs) & (xs == torch.round(xs)))):
                raise ValueError("inputs must be finite integers: round them or pass an integer tensor")
        values = [int(v) for v in xs.tolist()]
    else:
        values = [_as_int(v) for v in xs]
    if not values:
        raise ValueError("the input sequence is empty: give at least one integer")
    return values


def hidden_closed_form(xs: IntSequence) -> int:
    """h_T = Σ_k (−1)^{T−k} x_k, exactly, for any Python integers."""
    values = _as_int_list(xs)
    T = len(values)
    return sum(x if (T - k) % 2 == 0 else -x for k, x in enumerate(values, start=1))


def stable_sigmoid(z: float) -> float:
    """σ(z) without overflow for any finite or infinite z (never NaN)."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z)) if z < 800 else 1.0
    return math.exp(z) / (1.0 + math.exp(z)) if z > -800 else 0.0


def closed_form(xs: IntSequence) -> float:
    """y_T = σ(1000·Σ_k (−1)^{T−k} x_k): the final output, from the formula.

    Exact for arbitrarily large integers (the hidden value is a Python int; its sign decides y_T).
    """
    h = hidden_closed_form(xs)
    return stable_sigmoid(OUTPUT_WEIGHT * float(max(min(h, 10**300), -(10**300))))


def simulate(xs: IntSequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `ScalarRNN` over xs.

    Returns (h, y): float64 tensors [T] with h_1..h_T and y_1..y_T.
    Raises ValueError when an input or a hidden state would not fit in int64.
    """
    values = _as_int_list(xs)
    if sum(abs(v) for v in values) > _INT64_MAX:
        raise ValueError("inputs too large: the hidden state would overflow int64; use closed_form for huge integers")
    h, y = ScalarRNN()(torch.tensor(values, dtype=torch.int64))
    return h.to(torch.float64), y


def plot_sequence(xs: IntSequence, ax=None):
    """Plot x_t, h_t and y_t against t for one sequence, the recurrence in the title and the legend above the
    plot; returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    values = _as_int_list(xs)
    h, y = simulate(values)
    t = range(1, len(values) + 1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.5))
    else:
        fig = ax.figure
    ax.plot(t, values, "o:", color="0.5", label="input $x_t$")
    ax.plot(t, h.numpy(), "s-", label="hidden $h_t$")
    ax.set_xlabel("time step $t$")
    ax.set_ylabel("$x_t$, $h_t$")
    out = ax.twinx()
    out.step(t, y.numpy(), where="mid", color="C3", label="output $y_t$")
    out.set_ylim(-0.05, 1.05)
    out.set_ylabel("$y_t = \\sigma(1000 h_t)$", color="C3")
    lines = ax.get_legend_handles_labels()
    more = out.get_legend_handles_labels()
    # Above the plot, not on it: the output line runs along the top and bottom edges, where a legend would sit.
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3,
              fontsize="small", frameon=False)
    ax.set_title(f"Q2: $h_t = x_t - h_{{t-1}}$, $y_t = \\sigma(1000\\,h_t)$ gives "
                 f"$h_T = {int(h[-1])}$, $y_T = {float(y[-1]):g}$", pad=22)
    fig.tight_layout()
    return fig
