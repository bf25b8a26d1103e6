"""Q3: self-attention with q = k = v = x on the tokens x1 = d + b, x2 = a, x3 = c + b."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hw3 import attention

SQRT2 = math.sqrt(2)
PATTERN = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 2.0]], dtype=torch.float64)
BETAS_ALL = [1e-3, 0.1, 0.5, 1.0, 3.0, 1e3, 1e6, 1e150, 1e200, 1e300]


def naive_softmax_attention(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    X = X.to(torch.float64)
    W = torch.softmax(X @ X.T, dim=1)
    return W, W @ X


# --- tokens --------------------------------------------------------------------------------------------------

def test_base_vectors_are_orthogonal_with_norm_beta():
    base = attention.base_vectors(2.5, dim=6)
    assert list(base) == ["a", "b", "c", "d"]
    B = torch.stack(list(base.values()))
    assert torch.equal(B @ B.T, 2.5**2 * torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("dim", [4, 7])
def test_tokens_shape_and_recipes(dim):
    X = attention.tokens(2.0, dim)
    assert X.shape == (3, dim) and X.dtype == torch.float64
    a, b, c, d = (2.0 * torch.eye(dim, dtype=torch.float64)[i] for i in range(4))
    assert torch.equal(X[0], d + b) and torch.equal(X[1], a) and torch.equal(X[2], c + b)
    assert torch.all(X[:, 4:] == 0)


def test_tokens_need_four_dimensions():
    with pytest.raises(ValueError, match="dim"):
        attention.tokens(1.0, dim=3)


@pytest.mark.parametrize("beta", BETAS_ALL)
def test_token_norms_are_sqrt2_beta_beta_sqrt2_beta(beta):
    norms = attention.token_norms(attention.tokens(beta)).tolist()
    for got, want in zip(norms, (SQRT2 * beta, beta, SQRT2 * beta)):
        assert math.isfinite(got)
        assert math.isclose(got, want, rel_tol=1e-12)


def test_token_norms_of_a_zero_row_is_zero():
    X = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    assert attention.token_norms(X).tolist() == [0.0, 5.0]


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0, 10.0, 1e3, 1e100])
def test_scores_matrix_is_beta_squared_times_the_pattern(beta):
    S = attention.scores(attention.tokens(beta))
    assert torch.allclose(S, beta**2 * PATTERN, rtol=1e-12, atol=0)


# --- weights and outputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [1e-3, 0.1, 0.5, 1.0, 2.0, 4.0, 10.0])
def test_self_attention_matches_a_naive_softmax_for_moderate_beta(beta):
    X = attention.tokens(beta)
    W, Y = attention.self_attention(X)
    W_ref, Y_ref = naive_softmax_attention(X)
    assert torch.allclose(W, W_ref, rtol=1e-10, atol=1e-14)
    assert torch.allclose(Y, Y_ref, rtol=1e-10, atol=1e-14 * beta)
    assert torch.allclose(W.sum(dim=1), torch.ones(3, dtype=torch.float64), atol=1e-14)


def test_self_attention_at_beta_one_has_the_closed_form_weights():
    W, _ = attention.self_attention(attention.tokens(1.0))
    e = math.e
    row1 = [e**2, 1.0, e]
    assert W[0].tolist() == pytest.approx([v / sum(row1) for v in row1], rel=1e-12)
    assert W[1].tolist() == pytest.approx([1 / (2 + e), e / (2 + e), 1 / (2 + e)], rel=1e-12)
    assert torch.allclose(W, W.flip(0).flip(1))  # x1 and x3 are mirror images


@pytest.mark.parametrize("beta", [1e6, 1e100, 1e200, 1e300])
def test_self_attention_is_finite_and_the_identity_for_huge_beta(beta):
    X = attention.tokens(beta)
    W, Y = attention.self_attention(X)
    assert torch.isfinite(W).all() and torch.isfinite(Y).all()
    assert torch.equal(W, torch.eye(3, dtype=torch.float64))
    assert torch.allclose(Y, X, rtol=1e-15, atol=0)
    assert attention.describe_outputs(W) == ["x1", "x2", "x3"]


def test_weights_approach_the_identity_monotonically_as_beta_grows():
    diag = [attention.self_attention(attention.tokens(b))[0].diagonal().min().item() for b in (0.25, 0.5, 1, 2, 4)]
    assert diag == sorted(diag) and diag[-1] > 0.999


def test_self_attention_rejects_non_matrices():
    with pytest.raises(ValueError, match="matrix"):
        attention.self_attention(torch.ones(4))


def test_self_attention_of_zeros_is_uniform():
    W, Y = attention.self_attention(torch.zeros(4, 3))
    assert torch.equal(W, torch.full((4, 4), 0.25, dtype=torch.float64)) and torch.equal(Y, torch.zeros(4, 3, dtype=torch.float64))


def test_self_attention_is_right_near_the_largest_float():
    # scores 4e616 vs 1e616 (row 1) and 1e616 vs 1e616 (row 2): the row norm 2e308 itself overflows
    X = torch.tensor([[1e308, 1e308, 1e308, 1e308], [1e308, 0.0, 0.0, 0.0]], dtype=torch.float64)
    W, Y = attention.self_attention(X)
    assert torch.equal(W, torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64))
    assert torch.isfinite(Y).all()


finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=64)


@settings(deadline=None, max_examples=150)
@given(st.integers(1, 6).flatmap(lambda n: st.integers(1, 6).flatmap(
    lambda d: st.lists(st.lists(finite, min_size=d, max_size=d), min_size=n, max_size=n))))
def test_self_attention_matches_torch_softmax_on_random_tokens(rows):
    X = torch.tensor(rows, dtype=torch.float64)
    W, Y = attention.self_attention(X)
    W_ref, Y_ref = naive_softmax_attention(X)
    assert torch.isfinite(W_ref).all()
    assert torch.allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    assert torch.allclose(Y, Y_ref, rtol=1e-9, atol=1e-9)


@settings(deadline=None, max_examples=100)
@given(st.integers(1, 5).flatmap(lambda n: st.lists(
    st.lists(st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False), min_size=3, max_size=3),
    min_size=n, max_size=n)))
def test_self_attention_is_a_finite_row_stochastic_matrix_for_any_finite_tokens(rows):
    X = torch.tensor(rows, dtype=torch.float64)
    W, Y = attention.self_attention(X)
    assert torch.isfinite(W).all() and torch.isfinite(Y).all()
    assert (W >= 0).all()
    assert torch.allclose(W.sum(dim=1), torch.ones(len(rows), dtype=torch.float64), atol=1e-12)
    # the largest weight of each row sits at its largest score (scores compared after rescaling, no overflow)
    Z = X / X.abs().max().clamp(min=1e-300)
    S = Z @ Z.T
    for i in range(len(rows)):
        assert W[i, S[i].argmax()] >= W[i].max() * (1 - 1e-9)


# --- describing outputs ----------------------------------------------------------------------------------------

def test_describe_output_names_single_tokens_and_combinations():
    assert attention.describe_output([1.0, 0.0, 0.0]) == "x1"
    assert attention.describe_output([1e-9, 1 - 1e-9, 0.0]) == "x2"
    assert attention.describe_output([0.5, 0.0, 0.5]) == "0.5·x1 + 0.5·x3"
    assert attention.describe_output([0.2, 0.8], names=("p", "q")) == "0.2·p + 0.8·q"


@pytest.mark.parametrize("beta", [3.0, 10.0, 1e3, 1e200])
def test_describe_outputs_for_large_beta_are_the_tokens_themselves(beta):
    W, _ = attention.self_attention(attention.tokens(beta))
    assert attention.describe_outputs(W) == ["x1", "x2", "x3"]


@pytest.mark.parametrize("beta", [1e-3, 0.1, 1.0])
def test_describe_outputs_for_small_beta_are_combinations(beta):
    W, _ = attention.self_attention(attention.tokens(beta))
    descriptions = attention.describe_outputs(W)
    for text in descriptions:
        assert text.count("·") == 3 and text.count(" + ") == 2
        assert [part.split("·")[1] for part in text.split(" + ")] == ["x1", "x2", "x3"]
    if beta == 1e-3:
        assert descriptions == ["0.333·x1 + 0.333·x2 + 0.333·x3"] * 3


# --- figure ---------------------------------------------------------------------------------------------------

def test_plot_weights_draws_one_heatmap_per_beta():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    betas = (0.25, 1.0, 4.0)
    fig = attention.plot_weights(betas=betas)
    try:
        assert isinstance(fig, Figure)
        heatmaps = [ax for ax in fig.axes if ax.get_images()]
        assert len(heatmaps) == len(betas)
        for ax, beta in zip(heatmaps, betas):
            (image,) = ax.get_images()
            W, _ = attention.self_attention(attention.tokens(beta))
            assert torch.allclose(torch.as_tensor(image.get_array()), W)
            assert len(ax.texts) == 9
            assert f"{beta:g}" in ax.get_title()
    finally:
        plt.close(fig)


def test_plot_weights_has_a_colorbar_from_0_to_1_and_names_queries_and_keys():
    import matplotlib.pyplot as plt

    fig = attention.plot_weights(betas=(0.5, 2.0))
    try:
        heatmaps = [ax for ax in fig.axes if ax.get_images()]
        (colorbar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert colorbar.get_ylim() == (0.0, 1.0) and "attention weight" in colorbar.get_ylabel()
        assert all(image.get_clim() == (0, 1) for ax in heatmaps for image in ax.get_images())
        assert all("key" in ax.get_xlabel() for ax in heatmaps)
        assert "query" in heatmaps[0].get_ylabel()
    finally:
        plt.close(fig)


def test_plot_weights_draws_the_notebooks_own_attention():
    """The answer key's demo plots the key's self_attention (so an edited key's pictures follow it)."""
    import matplotlib.pyplot as plt

    def uniform(X):
        W = torch.full((len(X), len(X)), 1 / len(X), dtype=X.dtype)
        return W, W @ X

    fig = attention.plot_weights(uniform, betas=(1.0, 3.0))
    try:
        for ax in (ax for ax in fig.axes if ax.get_images()):
            assert torch.allclose(torch.as_tensor(ax.get_images()[0].get_array()), torch.full((3, 3), 1 / 3,
                                                                                              dtype=torch.float64))
    finally:
        plt.close(fig)
