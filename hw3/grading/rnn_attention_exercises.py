"""The graded exercises of Q2 (the scalar RNN) and Q3 (self-attention), scored against `hw3.rnn` and
`hw3.attention` (see `exercise` for the inputs / probe / score split)."""

from __future__ import annotations

import random
from typing import Any

from .exercise import Exercise, Marks, Test, Unreadable, close, fmt, number, numbers, paired, returned
from .results import TestResult


class RnnOutput(Exercise):
    """q2: `rnn_output(xs)` is y_T for an even-length integer sequence (the question's assumption)."""

    tests = (Test("y_T on even-length sequences", 1.0), Test("ties (h_T = 0) and near-ties (h_T = ±1)", 0.5))
    references = ("hw3.rnn:closed_form", "hw3.rnn:hidden_closed_form", "hw3.rnn:simulate",
                  "hw3.rnn:ScalarRNN.forward", "hw3.rnn:ScalarRNN.step")

    def inputs(self, rng: random.Random) -> dict:
        """Even lengths only; `plain` have h_T ≠ 0; `ties` have h_T = 0 (y_T = σ(0) = 0.5) or h_T = ±1."""
        from hw3.rnn import hidden_closed_form

        def sequence(length: int, target: int | None) -> list[int]:
            while True:
                xs = [rng.randint(-9, 9) for _ in range(length)]
                if target is not None:
                    xs[-1] = target - hidden_closed_form(xs[:-1] + [0])
                    if abs(xs[-1]) <= 30:
                        return xs
                elif hidden_closed_form(xs) != 0:
                    return xs

        lengths = [2, 4, 6, 8, 2 * rng.randint(5, 8)]
        plain = [sequence(n, None) for n in lengths]
        ties = [sequence(2, 0), sequence(4, 1), sequence(4, 0), sequence(6, -1), sequence(2 * rng.randint(3, 6), 0)]
        return {"plain": plain, "ties": ties}

    def probe(self, inputs: dict, rnn_output: Any) -> dict:
        from .exercise import attempt

        return {part: [attempt(rnn_output, list(xs)) for xs in inputs[part]] for part in ("plain", "ties")}

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        from hw3.rnn import closed_form

        marks = Marks(self.tests)
        for part, test in (("plain", self.tests[0].name), ("ties", self.tests[1].name)):
            for xs, result in paired(inputs[part], outputs[part]):
                shown = f"rnn_output({xs})"
                with marks.read(test, input=shown):
                    got = number(returned(result, shown), shown)
                    expected = closed_form(xs)
                    if not close(got, expected, abs_=1e-6):
                        marks.fail(test, f"{shown} returned {got:.6g}, expected y_T = {expected:.6g}", shown,
                                   _rnn_hint(got, expected))
        return marks.results()


def _rnn_hint(got: float, expected: float) -> str:
    """The likely mistake behind a wrong y_T."""
    if not 0 <= got <= 1:
        return "return y_T = σ(1000·h_T), a number in [0, 1], not h_T itself"
    if close(got, 1 - expected, abs_=1e-6):
        return "the sign is flipped: the recurrence is h_t = x_t − h_{t−1}, starting from h_0 = 0"
    if expected == 0.5:
        return "on a tie h_T = 0, so y_T = σ(0) = 0.5 exactly"
    return "unroll h_t = x_t − h_{t−1} from h_0 = 0 and apply σ(1000·h_T) at the last step"


class Norms(Exercise):
    """q3a: `norms(beta)` gives ‖x1‖, ‖x2‖, ‖x3‖ for base vectors of norm β, for β of every size."""

    tests = (Test("norms", 0.5),)
    references = ("hw3.attention:token_norms",)

    def inputs(self, rng: random.Random) -> dict:
        return {"betas": [rng.uniform(0.1, 3), rng.uniform(3, 300), 10 ** rng.uniform(3, 6)]}

    def probe(self, inputs: dict, norms: Any) -> list:
        from .exercise import attempt

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

        from .exercise import attempt

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


EXERCISES: dict[str, Exercise] = {"q2": RnnOutput(), "q3a": Norms(), "q3b": Attention()}
