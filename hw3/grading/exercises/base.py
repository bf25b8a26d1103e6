"""What an automatically graded exercise is: inputs, a probe, a scorer, named sub-tests with points.

An `Exercise` is split along the grading trust boundary:

- `inputs(rng)` (grader side) draws the inputs as plain JSON data: reproducible from `rng`, which the grader
  seeds from the course key, the student and the question, so a regrade sees the same inputs and a student
  cannot predict them;
- `probe(inputs, *objects)` (kernel side, inside the student's sandbox) calls the student's objects on those
  inputs and returns only plain JSON data (numbers, strings, lists, dicts): never objects, never pickle;
- `score(inputs, outputs)` (grader side, in the grader's own process) compares the returned data with the
  reference implementation and returns one `TestResult` per named sub-test.

The notebooks' `check(...)` cells run all three in the student's kernel for instant feedback; `hw3 grade`
runs only `probe` there. Whatever the kernel returns, `score` treats it as hostile data: a value of the
wrong type fails its test with a message, it never crashes the grader (`Marks.read`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..results import TestResult

REASON_LIMIT = 200


@dataclass(frozen=True)
class Test:
    """A named sub-test and its points."""

    name: str
    points: float


class CheckFailed(AssertionError):
    """A check did not pass; the message is the one-line reason."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the reason is all a student needs."""
        return [f"{type(self).__name__}: {self}"]


class Unreadable(Exception):
    """A value the kernel returned has the wrong shape or type: the sub-test reading it fails."""


class Exercise:
    """Base class of an automatically graded exercise; see the module docstring.

    Subclasses set `tests` (the sub-tests, whose points add up to the question's) and `references` (the
    `module:qualname` of the hw3 reference functions that solve it: they are withheld from the sandbox while
    grading, so calling them earns nothing).
    """

    tests: tuple[Test, ...] = ()
    references: tuple[str, ...] = ()

    @property
    def max_points(self) -> float:
        return sum(t.points for t in self.tests)

    def inputs(self, rng: random.Random) -> dict:
        raise NotImplementedError

    def grader_inputs(self, rng: random.Random) -> dict:
        """The inputs when `hw3 grade` scores the exercise in its own process (default: `inputs`). An exercise
        whose expectation is the grader's own data adds it here, out of the student's kernel's reach."""
        return self.inputs(rng)

    def probe(self, inputs: dict, *objects: Any) -> Any:
        raise NotImplementedError

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        raise NotImplementedError


class Marks:
    """Collects the verdict of each sub-test while a scorer runs: the first failure of a test is kept.

        marks = Marks(self.tests)
        with marks.read("W"):            # a malformed returned value fails test "W", not the grader
            ...
            marks.fail("W", "expected ...", input="X = ...", hint="...")
        return marks.results()
    """

    def __init__(self, tests: tuple[Test, ...]) -> None:
        self.tests = tests
        self.failures: dict[str, tuple[str, str, str]] = {}

    def fail(self, name: str, message: str, input: str = "", hint: str = "") -> None:
        """Fail test `name` (once: a later failure of the same test is ignored)."""
        self.failures.setdefault(name, (one_line(message), one_line(input, 400), one_line(hint)))

    def failed(self, name: str) -> bool:
        return name in self.failures

    @contextmanager
    def read(self, *names: str, input: str = "", hint: str = "") -> Iterator[None]:
        """Run a block that reads returned values; Unreadable, or any error reading them, fails `names`
        (with `hint`, the likely cause when the student's code raised or returned nothing usable)."""
        try:
            yield
        except Unreadable as exc:
            for name in names:
                self.fail(name, str(exc), input, hint)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            for name in names:
                self.fail(name, f"the returned value could not be read ({type(exc).__name__})", input, hint)

    def results(self) -> list[TestResult]:
        """One TestResult per sub-test, in declaration order."""
        out = []
        for test in self.tests:
            if test.name in self.failures:
                message, shown, hint = self.failures[test.name]
                out.append(TestResult(test.name, 0.0, test.points, message, shown, hint))
            else:
                out.append(TestResult(test.name, test.points, test.points))
        return out


# Kernel side: calling the student's objects and returning plain data -----------------------------------

def plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON data: numbers (tensors and arrays via .tolist()), strings, lists, dicts with str keys.

    Anything else becomes {"type": <its type name>}, so the scorer can say what came back.
    """
    if depth > 6:
        return {"type": "nested too deeply"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and hasattr(value, "shape"):
        return {"type": type(value).__name__, "shape": [int(s) for s in value.shape], "value": plain(tolist(), depth + 1)}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value[:10_000]]
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in list(value.items())[:1000]}
    return {"type": type(value).__name__}


def attempt(fn: Any, *args: Any) -> dict:
    """{"value": plain(fn(*args))}, or {"error": "Name: message"} when it raises or `fn` is not callable."""
    if not callable(fn):
        return {"error": f"expected a function, got {type(fn).__name__}: pass the function itself, not its result"}
    try:
        return {"value": plain(fn(*args))}
    except Exception as exc:
        return {"error": describe_exception(exc)}


# Grader side: reading what came back ---------------------------------------------------------------------

def returned(result: Any, what: str) -> Any:
    """The value of an `attempt` result; Unreadable naming the call when it raised or is malformed."""
    if not isinstance(result, dict):
        raise Unreadable(f"{what} returned nothing readable")
    if "error" in result:
        raise Unreadable(f"{what} raised {str(result['error'])[:300]}")
    if "value" not in result:
        raise Unreadable(f"{what} returned nothing readable")
    return result["value"]


def paired(inputs: list, outputs: Any, what: str = "the probe") -> list[tuple[Any, Any]]:
    """(input, output) pairs; Unreadable unless `outputs` is a list with one entry per input.

    Raised outside any `Marks.read`, it fails every sub-test of the question (`checks.score_safely`): a probe
    that returns fewer results than inputs earns nothing, whichever inputs are missing.
    """
    if not isinstance(outputs, list) or len(outputs) != len(inputs):
        count = len(outputs) if isinstance(outputs, list) else "no list of"
        raise Unreadable(f"{what} returned {count} results for {len(inputs)} inputs")
    return list(zip(inputs, outputs))


def unwrap(value: Any) -> Any:
    """A tensor's or array's values (from `plain`), else the value itself."""
    if isinstance(value, dict) and "value" in value and "shape" in value:
        return value["value"]
    return value


def number(value: Any, what: str) -> float:
    """A finite float from a returned number or one-element tensor; Unreadable otherwise."""
    value = unwrap(value)
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unreadable(f"{what} returned {describe_plain(value)}, expected a single number")
    if not math.isfinite(value):
        raise Unreadable(f"{what} returned {value}, expected a finite number")
    return float(value)


def numbers(value: Any, what: str, shape: tuple[int, ...]) -> list:
    """Nested lists of floats of the given shape from a returned tensor, array or list; Unreadable otherwise."""
    value = unwrap(value)

    def walk(v: Any, dims: tuple[int, ...]) -> Any:
        if not dims:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise Unreadable(f"{what} returned {describe_plain(value)}, expected numbers of shape {shape}")
            return float(v)
        if not isinstance(v, list) or len(v) != dims[0]:
            raise Unreadable(f"{what} returned {describe_plain(value)}, expected numbers of shape {shape}")
        return [walk(x, dims[1:]) for x in v]

    return walk(value, shape)


def describe_plain(value: Any) -> str:
    """A short description of returned plain data: 'a list of length 3', 'a str', 'a Tensor of shape (2,)'."""
    if isinstance(value, dict) and "type" in value:
        shape = value.get("shape")
        return f"a {value['type']}" + (f" of shape {tuple(shape)}" if isinstance(shape, list) else "")
    if isinstance(value, list):
        return f"a list of length {len(value)}"
    if value is None:
        return "None"
    return f"a {type(value).__name__}" if not isinstance(value, (int, float)) else f"{value!r}"


def close(a: float, b: float, rel: float = 1e-5, abs_: float = 1e-6) -> bool:
    """math.isclose with the tolerances the checks use."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# Text ------------------------------------------------------------------------------------------------------

def describe_exception(exc: BaseException, limit: int = 100) -> str:
    """`ValueError: message` on one line, the message cut to `limit` characters (even if str() fails)."""
    name = getattr(type(exc), "__name__", "Exception")
    try:
        message = str(exc)[:10_000].strip().splitlines()
    except Exception:  # a student's exception whose __str__ raises
        message = ["<the message could not be printed>"]
    if not message:
        return str(name)
    text = message[0] if len(message[0]) <= limit else message[0][: limit - 1] + "…"
    return f"{name}: {text}"


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    """Collapse whitespace to one line, show control and format characters (terminal escapes, bidi overrides)
    as `\\xNN`/`\\uNNNN` so they cannot act on a terminal or a report, and cut it to `limit` characters."""
    flat = " ".join(str(text)[: limit * 20].split())
    flat = "".join(ascii(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf") else c for c in flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def fmt(values: Any) -> str:
    """Numbers (nested lists) with 4 significant digits: [1.414, 1, 1.414] or [1, 0; 0, 1]."""
    if isinstance(values, list) and values and isinstance(values[0], list):
        return "[" + "; ".join(", ".join(f"{v:.4g}" for v in row) for row in values) + "]"
    if isinstance(values, list):
        return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
    return f"{values:.4g}"


# Inputs ------------------------------------------------------------------------------------------------------

def seeded_rng(key: bytes, student: str, qid: str) -> random.Random:
    """The input generator of one student's question: HMAC-SHA256(course key, student, question id)."""
    digest = hmac.new(key, f"{student}\0{qid}".encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def fresh_rng() -> random.Random:
    """A generator seeded from the OS: the notebooks' instant checks see new inputs every run."""
    return random.Random(random.SystemRandom().getrandbits(128))

