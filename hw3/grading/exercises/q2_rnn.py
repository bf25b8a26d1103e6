"""Q2, the scalar RNN: `rnn_output(xs)` is y_T for an even-length integer sequence (the question's assumption)."""

from __future__ import annotations

import random
from typing import Any

from .base import Exercise, Key, Marks, attempt, close, number, paired, returned

TIE_RANGE = range(-30, 31)  # the last input's candidates when looking for a tie
PREFIXES = 6  # random prefixes (or sequences) tried per input
# The clear-cut sequences' lengths (and two longer ones, drawn). y_T is 0 or 1 there, so a wrong recurrence agrees
# with the key on about half of them by chance: on all twelve in about one batch in 4,000 (on five, one in 30).
CLEAR_LENGTHS = (2, 2, 4, 4, 6, 6, 8, 8, 10, 10)


class RnnOutput(Exercise):
    """`rnn_output(xs)` equals the answer key's y_T, on sequences whose output is clear-cut (`plain`) and on ties
    (y_T = σ(0) = 0.5 under the key) and near-ties (the tie's last input moved by one)."""

    kind = "rnn_output"
    tests = ("y_T on even-length sequences", "ties (h_T = 0) and near-ties (h_T = ±1)")
    references = ("hw3.rnn:closed_form", "hw3.rnn:hidden_closed_form", "hw3.rnn:simulate",
                  "hw3.rnn:ScalarRNN.forward", "hw3.rnn:ScalarRNN.step")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        """Even lengths only. Ties are found by asking the key: for random prefixes, the last input whose sequence
        makes the key's y_T exactly 0.5 (the first prefix that has one); near-ties move that input by one. The
        clear-cut sequences are half above, half below 0.5 under the key, so no constant answer passes them. Both
        lists are in an order drawn from `rng` (the course key's, hidden): a function that counts its calls and
        answers by position (the order of the public checks) passes by chance only."""
        lengths, shifts = (2, 4, 4, 6, 2 * rng.randint(3, 6)), (0, 1, 0, -1, 0)  # tie, above, tie, below, tie
        prefixes = [[[rng.randint(-9, 9) for _ in range(n - 1)] for _ in range(PREFIXES)] for n in lengths]
        plain = [[[rng.randint(-9, 9) for _ in range(n)] for _ in range(PREFIXES)]
                 for n in (*CLEAR_LENGTHS, 2 * rng.randint(6, 9), 2 * rng.randint(6, 9))]
        candidates = [prefix + [last] for slot in prefixes for prefix in slot for last in TIE_RANGE]
        answers = iter(key({"plain": candidates + [xs for slot in plain for xs in slot], "ties": []})["plain"])
        ties = []
        for slot, shift in zip(prefixes, shifts):
            found = [(prefix, last) for prefix in slot for last in TIE_RANGE if _value(next(answers)) == 0.5]
            if found:
                prefix, last = found[0]
                ties.append(prefix + [last + shift])
        above = [i % 2 == 0 for i in range(len(plain))]
        rng.shuffle(above)
        clear = [_clear_cut(slot, [_value(next(answers)) for _ in slot], side) for slot, side in zip(plain, above)]
        rng.shuffle(ties)
        return {"plain": clear, "ties": ties}

    def probe(self, inputs: dict, rnn_output: Any) -> dict:
        return {part: [attempt(rnn_output, list(xs)) for xs in inputs[part]] for part in ("plain", "ties")}

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        """hw3's closed form on every input (hints apply where it agrees with the key)."""
        from hw3.rnn import closed_form

        return {part: [closed_form(xs) for xs in inputs[part]] for part in ("plain", "ties")}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        for part, test in (("plain", self.tests[0]), ("ties", self.tests[1])):
            hw3 = expected["mistakes"].get(part) or [None] * len(inputs[part])
            for (xs, result), key_result, reference in zip(paired(inputs[part], outputs[part]),
                                                            expected["outputs"][part], hw3):
                shown = f"rnn_output({xs})"
                with marks.read(test, input=shown):
                    got = number(returned(result, shown), shown)
                    want = number(returned(key_result, "the answer key"), "the answer key")
                    if not close(got, want, abs_=1e-6):
                        hint = _hint(got, want) if reference is not None and close(reference, want, abs_=1e-9) else ""
                        marks.fail(test, f"{shown} returned {got:.6g}", shown, hint, expected=f"y_T = {want:.6g}")


def _value(result: Any) -> float | None:
    """The key's returned number, or None when it raised or returned something else."""
    try:
        return number(returned(result, "the answer key"), "the answer key")
    except Exception:
        return None


def _clear_cut(slot: list[list[int]], values: list[float | None], above: bool) -> list[int]:
    """The first sequence of `slot` whose key y_T (`values`) is on the wanted side of 0.5 (`above` or below), else
    the first that is not a tie, else the first."""
    wanted = [i for i, v in enumerate(values) if v is not None and (v > 0.5 if above else v < 0.5)]
    clear = [i for i, v in enumerate(values) if v is not None and v != 0.5]
    return slot[(wanted + clear + [0])[0]]


def _hint(got: float, expected: float) -> str:
    """The likely mistake behind a wrong y_T (the homework as hw3 ships it)."""
    if not 0 <= got <= 1:
        return "return y_T = σ(1000·h_T), a number in [0, 1], not h_T itself"
    if close(got, 1 - expected, abs_=1e-6):
        return "the sign is flipped: the recurrence is h_t = x_t − h_{t−1}, starting from h_0 = 0"
    if expected == 0.5:
        return "on a tie h_T = 0, so y_T = σ(0) = 0.5 exactly"
    return "unroll h_t = x_t − h_{t−1} from h_0 = 0 and apply σ(1000·h_T) at the last step"


KINDS = (RnnOutput,)
