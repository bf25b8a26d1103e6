"""Q3, self-attention: token norms, weights and outputs."""

from __future__ import annotations

import random
from typing import Any

from ..results import TestResult
from .base import Exercise, Marks, Test, Unreadable, attempt, close, fmt, numbers, paired, returned


class Norms(Exercise):
    """q3a: `norms(beta)` gives ‖x1‖, ‖x2‖, ‖x3‖ for base vectors of norm β, for β of every size."""

    tests = (Test("norms", 0.5),)
    references = ("hw3.attention:token_norms",)

    def inputs(self, rng: random.Random) -> dict:
        return {"betas": [rng.uniform(0.1, 3), rng.uniform(3, 300), 10 ** rng.uniform(3, 6)]}

    def probe(self, inputs: dict, norms: Any) -> list:

        return [attempt(norms, beta) for beta in inputs["betas"]]

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        import torch

        from hw3.attention import token_norms, tokens

        marks = Marks(self.tests)
        for beta, result in paired(inputs["betas"], outputs):
            shown = f"norms({beta:.6g})"
            with marks.read("norms", input=shown):
                got = numbers(returned(result, shown), shown, (3,))
                expected = token_norms(tokens(beta).double()).tolist()
                if not torch.allclose(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                                      rtol=1e-6, atol=0):
                    squared = [e * e for e in expected]
                    hint = ("these are the squared norms: take the square root" if _all_close(got, squared) else
                            "b is orthogonal to d and c, so ‖d + b‖² = ‖d‖² + ‖b‖² = 2β²")
                    marks.fail("norms", f"{shown} returned {fmt(got)}, expected {fmt(expected)}", shown, hint)
        return marks.results()


def _all_close(a: list, b: list, rel: float = 1e-6) -> bool:
    return len(a) == len(b) and all(close(x, y, rel=rel, abs_=0) for x, y in zip(a, b))


class Attention(Exercise):
    """q3b: `self_attention(X)` returns (W, Y) like the reference, finite even for β ~ 1e6."""

    tests = (Test("weights W", 1.0), Test("outputs Y = W X", 0.5), Test("finite for huge β", 0.5))
    references = ("hw3.attention:self_attention", "hw3.attention:_stable_logits")

    def inputs(self, rng: random.Random) -> dict:
        """(description, X as nested lists, huge) triples: the Q3 tokens for small, moderate and huge β,
        and random 3×D matrices."""
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

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        import torch

        from hw3.attention import self_attention

        marks = Marks(self.tests)
        for case, result in paired(inputs["cases"], outputs):
            shown = f"self_attention(X) for {case['description']}"
            names = [t.name for t in self.tests] if case["huge"] else [t.name for t in self.tests[:2]]
            with marks.read(*names, input=shown):
                pair = returned(result, shown)
                if not isinstance(pair, list) or len(pair) != 2:
                    raise Unreadable(f"{shown} returned {len(pair) if isinstance(pair, list) else 'no'} values, "
                                     f"expected a pair (W, Y)")
                X = torch.tensor(case["X"], dtype=torch.float64)
                W_ref, Y_ref = self_attention(X)
                W = torch.tensor(numbers(pair[0], f"{shown} (W)", tuple(W_ref.shape)), dtype=torch.float64)
                Y = torch.tensor(numbers(pair[1], f"{shown} (Y)", tuple(Y_ref.shape)), dtype=torch.float64)
                finite = bool(torch.isfinite(W).all() and torch.isfinite(Y).all())
                if case["huge"] and not finite:
                    marks.fail("finite for huge β", f"{shown} gave non-finite values", shown,
                               "subtract each row's maximum score before exp (softmax is shift-invariant)")
                    continue
                if not torch.allclose(W, W_ref, rtol=1e-5, atol=1e-8):
                    for name in (n for n in names if n != "outputs Y = W X"):  # for huge β, finite but wrong is no pass
                        marks.fail(name, f"{shown}: W = {fmt(W.tolist())}, expected {fmt(W_ref.tolist())}", shown,
                                   _attention_hint(W, X))
                if not torch.allclose(Y, Y_ref, rtol=1e-5, atol=1e-6):
                    marks.fail("outputs Y = W X", f"{shown}: Y differs from W X (expected {fmt(Y_ref.tolist())})",
                               shown, "Y is the weighted sum of the tokens: Y = W @ X")
        return marks.results()


def _attention_hint(W: Any, X: Any) -> str:
    """The likely mistake behind wrong attention weights."""
    import torch

    S = X @ X.T
    if torch.allclose(W, torch.softmax(S, dim=0), rtol=1e-5, atol=1e-8):
        return "the softmax runs over each row (dim=1): each row of W sums to 1"
    if torch.allclose(W, S, rtol=1e-5, atol=1e-8):
        return "W is the softmax of the scores, not the scores themselves"
    return "w_ij = exp(s_ij) / Σ_k exp(s_ik) with s_ij = x_i·x_j"


EXERCISES = {"q3a": Norms(), "q3b": Attention()}
