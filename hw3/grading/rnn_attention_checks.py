"""Verifiers for Q2 (the scalar RNN) and Q3 (self-attention), against `hw3.rnn` and `hw3.attention`.

Each verifier draws fresh random inputs, runs the student's function and the reference on them, and
raises CheckFailed with the first input on which they disagree.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from hw3.attention import self_attention, token_norms, tokens
from hw3.rnn import closed_form, hidden_closed_form

from .checks import CheckFailed, as_float, call_student, describe_value, fresh_rng


def rnn_cases(rng: random.Random) -> list[list[int]]:
    """Integer sequences of odd and even lengths with negatives, ties (h_T = 0) and h_T = ±1."""
    cases = []
    for length in [1, 2, 3, 4, 5, 6, 7, 8, rng.randint(9, 16), rng.randint(9, 16)]:
        cases.append([rng.randint(-9, 9) for _ in range(length)])
    for length, h_target in [(2, 0), (4, 0), (3, 0), (6, 1), (5, -1), (8, 0)]:
        xs = [rng.randint(-9, 9) for _ in range(length - 1)] + [0]
        xs[-1] = h_target - hidden_closed_form(xs)  # h_T is x_T plus the signed sum of the others
        cases.append(xs)
    rng.shuffle(cases)
    return cases


def check_rnn_output(rnn_output: Callable) -> None:
    """q2: rnn_output(xs) must equal y_T = closed_form(xs) on fresh integer sequences."""
    for xs in rnn_cases(fresh_rng()):
        what = f"rnn_output({xs})"
        got = as_float(call_student(rnn_output, list(xs), what=what), what)
        expected = closed_form(xs)
        if not math.isclose(got, expected, abs_tol=1e-6):
            raise CheckFailed(f"{what} returned {got:.6g}, expected y_T = {expected:.6g}")


def as_float64(value, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A float64 tensor of the given shape from a tensor, array, list or tuple; CheckFailed otherwise."""
    try:
        tensor = torch.as_tensor(value if not isinstance(value, torch.Tensor) else value.detach().cpu(),
                                 dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"{what} returned {describe_value(value)}, expected numbers of shape {shape}") from None
    if tuple(tensor.shape) != shape:
        raise CheckFailed(f"{what} returned shape {tuple(tensor.shape)}, expected {shape}")
    return tensor


def fmt(t: torch.Tensor) -> str:
    """A tensor's values, 4 significant digits, nested lists."""
    values = t.tolist()
    rows = values if isinstance(values[0], list) else [values]
    text = "; ".join(", ".join(f"{v:.4g}" for v in row) for row in rows)
    return f"[{text}]"


def check_norms(norms: Callable) -> None:
    """q3a: norms(beta) must give ‖x1‖, ‖x2‖, ‖x3‖ for fresh β of every size."""
    rng = fresh_rng()
    for beta in (rng.uniform(0.1, 3), rng.uniform(3, 300), 10 ** rng.uniform(3, 6)):
        what = f"norms({beta:.6g})"
        got = as_float64(call_student(norms, beta, what=what), what, (3,))
        expected = token_norms(tokens(beta))
        if not torch.allclose(got, expected, rtol=1e-6, atol=0):
            raise CheckFailed(f"{what} returned {fmt(got)}, expected {fmt(expected)}")


def attention_inputs(rng: random.Random) -> list[tuple[str, torch.Tensor]]:
    """(description, X) pairs: the Q3 tokens for small, moderate and huge β, and random 3×D matrices."""
    cases = [(f"the tokens for β = {beta:.6g}", tokens(beta))
             for beta in (rng.uniform(0.1, 1.5), rng.uniform(1.5, 6), rng.uniform(1e6, 2e6))]
    gen = torch.Generator().manual_seed(rng.getrandbits(62))
    for dim in (4, 6):
        X = torch.randn(3, dim, generator=gen, dtype=torch.float64) * rng.uniform(0.3, 2)
        cases.append((f"a random 3×{dim} X", X))
    return cases


def check_attention(attention: Callable) -> None:
    """q3b: attention(X) must return (W, Y) equal to the reference, finite even for β ~ 1e6."""
    for description, X in attention_inputs(fresh_rng()):
        what = f"attention(X) for {description}"
        W_ref, Y_ref = self_attention(X)
        result = call_student(attention, X.clone(), what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"{what} returned {describe_value(result)}, expected a pair (W, Y)")
        W = as_float64(result[0], what, tuple(W_ref.shape))
        Y = as_float64(result[1], what, tuple(Y_ref.shape))
        if not bool(torch.isfinite(W).all()):
            raise CheckFailed(f"{what} gave non-finite weights W: subtract each row's maximum score before exp")
        if not torch.allclose(W, W_ref, rtol=1e-5, atol=1e-8):
            raise CheckFailed(f"{what}: W = {fmt(W)}, expected {fmt(W_ref)}")
        if not torch.allclose(Y, Y_ref, rtol=1e-5, atol=1e-6):
            raise CheckFailed(f"{what}: Y differs from W X (expected {fmt(Y_ref)})")


VERIFIERS: dict[str, Callable[..., None]] = {
    "q2": check_rnn_output,
    "q3a": check_norms,
    "q3b": check_attention,
}
