"""Q3, self-attention: the tokens' norms (q3a), and the attention weights and outputs (q3b)."""

from __future__ import annotations

import math
import random
from typing import Any

from .base import Exercise, Key, Marks, Unreadable, all_close, attempt, flat, fmt, numbers, paired, returned


class Norms(Exercise):
    """q3a: `norms(beta)` gives ‖x1‖, ‖x2‖, ‖x3‖ like the key's, for β of every size."""

    kind = "norms"
    tests = ("norms",)
    references = ("hw3.attention:token_norms",)

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {"betas": [rng.uniform(0.1, 3), rng.uniform(3, 300), 10 ** rng.uniform(3, 6)]}

    def probe(self, inputs: dict, norms: Any) -> list:
        return [attempt(norms, beta) for beta in inputs["betas"]]

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        from hw3.attention import token_norms, tokens

        return {"hw3": [token_norms(tokens(beta).double()).tolist() for beta in inputs["betas"]]}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        hw3 = expected["mistakes"].get("hw3") or [None] * len(inputs["betas"])
        for (beta, result), key_result, reference in zip(paired(inputs["betas"], outputs), expected["outputs"], hw3):
            shown = f"norms({beta:.6g})"
            with marks.read("norms", input=shown):
                want = numbers(returned(key_result, "the answer key"), "the answer key", (3,))
                got = numbers(returned(result, shown), shown, (3,))
                if not all_close(got, want, rel=1e-6, abs_=0):
                    hint = ""
                    if reference is not None and all_close(reference, want, rel=1e-9, abs_=0):
                        hint = ("these are the squared norms: take the square root"
                                if all_close(got, [w * w for w in want], rel=1e-6, abs_=0) else
                                "the base vectors are orthogonal: which terms of ‖d + b‖² vanish?")
                    marks.fail("norms", f"{shown} returned {fmt(got)}", shown, hint, expected=fmt(want))


class Attention(Exercise):
    """q3b: `self_attention(X)` returns (W, Y): W like the key's, Y = W X for its own W, finite even for β ~ 1e6."""

    kind = "self_attention"
    tests = ("weights W", "outputs Y = W X", "finite for huge β")
    references = ("hw3.attention:self_attention", "hw3.attention:_stable_logits")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        """The Q3 tokens for small, moderate and huge β, and random 3×D matrices."""
        from hw3.attention import tokens

        cases = [{"description": f"the tokens for β = {beta:.6g}", "X": tokens(beta).tolist(), "huge": beta > 1e3}
                 for beta in (rng.uniform(0.1, 1.5), rng.uniform(1.5, 6), rng.uniform(1e6, 2e6))]
        for dim in (4, 6):
            scale = rng.uniform(0.3, 2)
            X = [[rng.gauss(0, 1) * scale for _ in range(dim)] for _ in range(3)]
            cases.append({"description": f"a random 3×{dim} X", "X": X, "huge": False})
        return {"cases": cases}

    def probe(self, inputs: dict, self_attention: Any) -> list:
        import torch

        return [attempt(self_attention, torch.tensor(case["X"], dtype=torch.float64)) for case in inputs["cases"]]

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        """hw3's W, and the W of two common mistakes (softmax over columns; the raw scores), per case."""
        import torch

        from hw3.attention import self_attention

        out: dict[str, list] = {"hw3": [], "columns": [], "scores": []}
        for case in inputs["cases"]:
            X = torch.tensor(case["X"], dtype=torch.float64)
            S = X @ X.T
            out["hw3"].append(self_attention(X)[0].tolist())
            out["columns"].append(torch.softmax(S, dim=0).tolist())
            out["scores"].append(S.tolist())
        return out

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        weights, outputs_test, finite = self.tests
        mistakes = expected["mistakes"]
        for index, (case, result) in enumerate(paired(inputs["cases"], outputs)):
            shown = f"self_attention(X) for {case['description']}"
            names = [weights, outputs_test, finite] if case["huge"] else [weights, outputs_test]
            with marks.read(*names, input=shown):
                W_key = numbers(returned(expected["outputs"][index], "the answer key")[0], "the answer key", (3, 3))
                pair = returned(result, shown)
                if not isinstance(pair, list) or len(pair) != 2:
                    raise Unreadable(f"{shown} returned {len(pair) if isinstance(pair, list) else 'no'} values, "
                                     f"expected a pair (W, Y)")
                X = case["X"]
                W = numbers(pair[0], f"{shown} (W)", (3, 3))
                Y = numbers(pair[1], f"{shown} (Y)", (3, len(X[0])))
                if not all(math.isfinite(v) for v in flat(W) + flat(Y)):
                    hint = "subtract each row's maximum score before exp (softmax is shift-invariant)"
                    for name in [finite] if case["huge"] else [weights, outputs_test]:  # for huge β: an overflow
                        marks.fail(name, f"{shown} gave non-finite values", shown, hint)
                    continue
                if not all_close(W, W_key, rel=1e-5, abs_=1e-8):
                    hw3 = mistakes.get("hw3")
                    hint = _hint(W, index, mistakes) if hw3 and all_close(hw3[index], W_key, 1e-9, 1e-12) else ""
                    for name in [weights, finite] if case["huge"] else [weights]:  # finite but wrong is no pass
                        marks.fail(name, f"{shown}: W = {fmt(W)}", shown, hint, expected=f"W = {fmt(W_key)}")
                if not all_close(Y, matmul(W, X), rel=1e-5, abs_=1e-6):
                    marks.fail(outputs_test, f"{shown}: Y is not W X for the returned W (W X = {fmt(matmul(W, X))})",
                               shown, "Y is the weighted sum of the tokens: Y = W @ X")


def matmul(A: list[list[float]], B: list[list[float]]) -> list[list[float]]:
    """A B for nested lists (A [n, k], B [k, m]) in pure Python."""
    return [[sum(a * b for a, b in zip(row, column)) for column in zip(*B)] for row in A]


def _hint(W: list, index: int, mistakes: dict) -> str:
    """The likely mistake behind wrong attention weights (the homework as hw3 ships it)."""
    if all_close(W, mistakes["columns"][index], rel=1e-5, abs_=1e-8):
        return "the softmax runs over each row (dim=1): each row of W sums to 1"
    if all_close(W, mistakes["scores"][index], rel=1e-5, abs_=1e-8):
        return "W is the softmax of the scores, not the scores themselves"
    return "w_ij = exp(s_ij) / Σ_k exp(s_ik) with s_ij = x_i·x_j"


KINDS = (Norms, Attention)
