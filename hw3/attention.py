"""Q3: self-attention without weight matrices (q_i = k_i = v_i = x_i).

Four orthogonal base vectors a, b, c, d of norm β build three tokens

    x1 = d + b,   x2 = a,   x3 = c + b.

Scores are s_ij = x_i·x_j, weights W = row-softmax(S), outputs y_i = Σ_j W_ij x_j. With orthogonality,

    S = β² [[2, 0, 1],
            [0, 1, 0],
            [1, 0, 2]]

so every token's largest score is with itself, by a margin of β²: as β → ∞, W → I and y_i → x_i
(the corrections are O(e^{−β²})). Everything here is float64 and stable for huge β.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

BASE_NAMES = ("a", "b", "c", "d")
TOKEN_RECIPES = {"x1": ("d", "b"), "x2": ("a",), "x3": ("c", "b")}


def base_vectors(beta: float, dim: int = 4) -> dict[str, torch.Tensor]:
    """The orthogonal base vectors a, b, c, d of norm β: β times the first four unit vectors of R^dim."""
    if dim < 4:
        raise ValueError(f"need dim >= 4 for four orthogonal vectors, got {dim}")
    eye = torch.eye(dim, dtype=torch.float64)
    return {name: float(beta) * eye[i] for i, name in enumerate(BASE_NAMES)}


def tokens(beta: float, dim: int = 4) -> torch.Tensor:
    """The token matrix X [3, dim]: rows x1 = d + b, x2 = a, x3 = c + b."""
    base = base_vectors(beta, dim)
    return torch.stack([sum(base[n] for n in recipe) for recipe in TOKEN_RECIPES.values()])


def token_norms(X: torch.Tensor) -> torch.Tensor:
    """L2 norm of each row of X [N, D] -> [N], rescaled by the row's largest entry so it cannot overflow."""
    scale = X.abs().amax(dim=1, keepdim=True)
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.linalg.vector_norm(X / safe, dim=1) * scale.squeeze(1)


def scores(X: torch.Tensor) -> torch.Tensor:
    """Raw attention scores S = X Xᵀ [N, N] (may overflow to inf for huge β; see `self_attention`)."""
    return X @ X.T


def _stable_logits(X: torch.Tensor) -> torch.Tensor:
    """Row-shifted scores S_ij − max_j S_ij [N, N], computed without inf − inf for huge inputs.

    Scores are formed from X / s (s the largest absolute entry, so |X / s| <= 1 and no row norm can
    overflow), shifted by the row maximum, and only then scaled by s²; entries that are exactly 0 after
    the shift stay 0 even when s² overflows.
    """
    s = X.abs().max() if X.numel() else X.new_zeros(())
    if s == 0:
        return torch.zeros(X.shape[0], X.shape[0], dtype=X.dtype)
    Z = X / s
    shifted = Z @ Z.T
    shifted = shifted - shifted.max(dim=1, keepdim=True).values
    scaled = shifted * (s * s)
    return torch.where(shifted == 0, torch.zeros_like(scaled), scaled)


def self_attention(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-attention with q = k = v = x.

    X: [N, D]. Returns (W [N, N] row-softmax of X Xᵀ, Y [N, D] = W X). Finite for any finite X.
    """
    X = torch.as_tensor(X, dtype=torch.float64)
    if X.dim() != 2:
        raise ValueError(f"X must be a matrix of tokens [N, D], got shape {tuple(X.shape)}")
    W = torch.softmax(_stable_logits(X), dim=1)
    return W, W @ X


def describe_output(weights: Sequence[float], names: Sequence[str] = ("x1", "x2", "x3"), tol: float = 1e-3) -> str:
    """Name the token, or combination of tokens, that one output row approximates.

    weights: one row of W. Weights below `tol` are dropped; e.g. [1, 0, 0] -> 'x1',
    [0.5, 0, 0.5] -> '0.5·x1 + 0.5·x3'.
    """
    terms = [(w, n) for w, n in zip(map(float, weights), names) if w >= tol]
    if len(terms) == 1 and abs(terms[0][0] - 1) < tol:
        return terms[0][1]
    return " + ".join(f"{w:.3g}·{n}" for w, n in terms)


def describe_outputs(W: torch.Tensor, names: Sequence[str] = ("x1", "x2", "x3"), tol: float = 1e-3) -> list[str]:
    """`describe_output` for every row of W [N, N]: what y_1..y_N approximate."""
    return [describe_output(row.tolist(), names, tol) for row in W]


def plot_weights(attend: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
                 betas: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)):
    """Heatmaps of W for the Q3 tokens as β grows, one colorbar for all; returns the matplotlib Figure.

    `attend(X [3, 4]) -> (W [3, 3], Y [3, 4])` computes them: the notebook's own `self_attention` (default:
    this module's). Row i of W is query x_i's weights over the keys x_j, so output y_i = Σ_j W_ij x_j: rows are
    labelled by the output they give, columns by the key.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(betas), figsize=(2.6 * len(betas) + 0.8, 3.3), squeeze=False, layout="constrained")
    labels = list(TOKEN_RECIPES)
    for ax, beta in zip(axes[0], betas):
        W, _ = (attend or self_attention)(tokens(beta))
        W = torch.as_tensor(W, dtype=torch.float64)
        image = ax.imshow(W.numpy(), vmin=0, vmax=1, cmap="viridis")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{W[i, j]:.2f}", ha="center", va="center",
                        color="black" if W[i, j] > 0.5 else "white", fontsize=9)
        ax.set_xticks(range(3), labels)
        ax.set_yticks(range(3), [f"y{i + 1}" for i in range(3)])
        ax.set_xlabel("key $x_j$")
        ax.set_title(f"β = {beta:g}")
    axes[0][0].set_ylabel("query $x_i$ → output $y_i$")
    fig.colorbar(image, ax=list(axes[0]), label="attention weight $W_{ij}$", shrink=0.85)
    fig.suptitle("Q3: attention weights W = softmax(X Xᵀ) approach the identity as β grows")
    return fig
