"""Q2, the scalar RNN: y_T of the recurrence."""

from __future__ import annotations

import random
from typing import Any

from ..results import TestResult
from .base import Exercise, Marks, Test, attempt, close, number, paired, returned


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


EXERCISES = {"q2": RnnOutput()}
