"""Exercise kinds that need no Python: a new exercise is a few lines of questions.toml and the answer key's cells.

- `value`: `check("<id>", value)` compares the value with the answer key's (numbers to a tolerance, any nesting of
  lists, tuples, tensors and arrays; strings, booleans and None exactly).
- `function`: `check("<id>", fn)` calls the student's function and the key's on the same generated arguments and
  compares what they return, as `value` does. Its options in questions.toml:

      arguments = [{ tensor = [3, 4] }, { int = [1, 5] }]   # one generator per argument (below)
      calls = 5                                             # how many calls (default 5)
      rtol = 1e-6                                           # relative tolerance (default 1e-6; atol 1e-9)

  Generators: `{ int = [lo, hi] }`, `{ float = [lo, hi] }`, `{ ints = [lo, hi], length = [a, b] }` (a list),
  `{ floats = [lo, hi], length = [a, b] }`, `{ tensor = [d1, d2, ...], scale = s }` (a float64 torch tensor with
  normal entries times s, default 1), `{ value = <any> }` (that literal).
"""

from __future__ import annotations

import random
from typing import Any

from .base import Exercise, Key, Marks, OptionError, Unreadable, all_close, attempt, describe_plain, plain, \
    returned, shape_of, unwrap

GENERATORS = ("int", "float", "ints", "floats", "tensor", "value")


def same(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    """True when returned plain data `got` equals the key's `expected`: numbers to the tolerance (tensors, arrays,
    tuples and lists alike), other values exactly."""
    got, expected = unwrap(got), unwrap(expected)
    if isinstance(expected, list) or isinstance(got, list):
        return (isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected)
                and all(same(g, e, rtol, atol) for g, e in zip(got, expected)))
    if isinstance(expected, dict) or isinstance(got, dict):
        return (isinstance(got, dict) and isinstance(expected, dict) and got.keys() == expected.keys()
                and all(same(got[k], expected[k], rtol, atol) for k in expected))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return all_close(got, expected, rtol, atol)
    return type(got) is type(expected) and got == expected


def shown(value: Any, limit: int = 120) -> str:
    """Returned plain data, short: numbers and their nesting, or a description."""
    value = unwrap(value)
    text = repr(value) if not isinstance(value, dict) else describe_plain(value)
    if isinstance(value, list) and shape_of(value):
        text = repr(_rounded(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rounded(value: Any) -> Any:
    value = unwrap(value)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.4g}") if isinstance(value, float) else value


class Value(Exercise):
    """`check("<id>", value)`: the value equals the answer key's."""

    kind = "value"

    def __init__(self, rtol: float = 1e-6, atol: float = 1e-9) -> None:
        self.rtol, self.atol = _tolerance(rtol, "rtol"), _tolerance(atol, "atol")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, value: Any) -> Any:
        return plain(value)

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        if not same(outputs, expected["outputs"], self.rtol, self.atol):
            marks.fail(marks.first, f"the value is {shown(outputs)}", expected=shown(expected["outputs"]))


class Function(Exercise):
    """`check("<id>", fn)`: fn returns what the answer key's function returns, on generated arguments."""

    kind = "function"

    def __init__(self, arguments: list | None = None, calls: int = 5, rtol: float = 1e-6, atol: float = 1e-9) -> None:
        if not isinstance(arguments, list) or not all(_generator(a) for a in arguments):
            raise OptionError(f"arguments must be a list of generators, one per argument, each a table with one of "
                              f"{', '.join(GENERATORS)} (e.g. arguments = [{{ tensor = [3, 4] }}])")
        if not isinstance(calls, int) or isinstance(calls, bool) or not 1 <= calls <= 100:
            raise OptionError("calls must be a whole number from 1 to 100")
        self.arguments, self.calls = arguments, calls
        self.rtol, self.atol = _tolerance(rtol, "rtol"), _tolerance(atol, "atol")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {"calls": [[draw(spec, rng) for spec in self.arguments] for _ in range(self.calls)]}

    def probe(self, inputs: dict, fn: Any) -> list:
        return [attempt(fn, *(materialize(a) for a in call)) for call in inputs["calls"]]

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        name = marks.first
        if not isinstance(outputs, list) or len(outputs) != len(inputs["calls"]):
            raise Unreadable(f"the probe returned no result for each of the {len(inputs['calls'])} calls")
        for call, result, reference in zip(inputs["calls"], outputs, expected["outputs"]):
            what = f"fn({', '.join(describe_argument(a) for a in call)})"
            with marks.read(name, input=what):
                got = returned(result, what)
                want = returned(reference, "the answer key")
                if not same(got, want, self.rtol, self.atol):
                    marks.fail(name, f"{what} returned {shown(got)}", what, expected=shown(want))


def _tolerance(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise OptionError(f"{name} must be a number from 0 to 1")
    return float(value)


def _generator(spec: Any) -> bool:
    """True for a well-formed argument generator."""
    if not isinstance(spec, dict):
        return False
    kinds = [k for k in spec if k in GENERATORS]
    if len(kinds) != 1:
        return False
    kind, value = kinds[0], spec[kinds[0]]
    if kind == "value":
        return set(spec) == {"value"}
    if kind == "tensor":
        return (isinstance(value, list) and 0 < len(value) <= 4 and all(isinstance(d, int) and 0 < d <= 64 for d in value)
                and set(spec) <= {"tensor", "scale"} and isinstance(spec.get("scale", 1), (int, float)))
    pair = isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value) \
        and value[0] <= value[1]
    if kind in ("ints", "floats"):
        length = spec.get("length")
        return pair and set(spec) == {kind, "length"} and isinstance(length, list) and len(length) == 2 \
            and all(isinstance(n, int) and 0 <= n <= 1000 for n in length) and length[0] <= length[1]
    return pair and set(spec) == {kind}


def draw(spec: dict, rng: random.Random) -> Any:
    """One argument as JSON data (a tensor as {"tensor": nested lists})."""
    if "value" in spec:
        return spec["value"]
    if "int" in spec:
        return rng.randint(int(spec["int"][0]), int(spec["int"][1]))
    if "float" in spec:
        return rng.uniform(*spec["float"])
    if "ints" in spec:
        return [rng.randint(int(spec["ints"][0]), int(spec["ints"][1])) for _ in range(rng.randint(*spec["length"]))]
    if "floats" in spec:
        return [rng.uniform(*spec["floats"]) for _ in range(rng.randint(*spec["length"]))]
    scale = float(spec.get("scale", 1))

    def fill(dims: list[int]) -> Any:
        return [fill(dims[1:]) for _ in range(dims[0])] if dims else rng.gauss(0, 1) * scale

    return {"tensor": fill(list(spec["tensor"]))}


def materialize(argument: Any) -> Any:
    """An argument as the function receives it: {"tensor": ...} becomes a float64 torch tensor."""
    if isinstance(argument, dict) and "tensor" in argument:
        import torch

        return torch.tensor(argument["tensor"], dtype=torch.float64)
    return argument


def describe_argument(argument: Any) -> str:
    """An argument as a failure message shows it: a tensor by its values, short."""
    if isinstance(argument, dict) and "tensor" in argument:
        return f"tensor({shown(argument['tensor'], 80)})"
    return shown(argument, 80)


KINDS = (Value, Function)
