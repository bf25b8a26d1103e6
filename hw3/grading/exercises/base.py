"""What an automatically graded exercise is: a kind of check, with inputs, a probe and a scorer.

An exercise compares a student's work with the answer key's on the same inputs (the way PrairieLearn's Python
grader runs the question's reference code beside the student's). Each part runs where it can be trusted:

- `inputs(rng, key)` (the answer key's side: a kernel running the instructor's key, `hw3 grade` once per batch or
  `hw3 assign` for the notebooks' public checks) draws the inputs as plain JSON data from `rng`, which the grader
  seeds from the course key, the student and the question. `key(candidates)` answers the key's own probe on
  candidate inputs, so inputs that depend on the homework (Q2's ties under *this* recurrence) follow the key;
- `probe(inputs, *objects)` (kernel side: the student's sandbox, or the key's kernel) calls the objects a check
  cell names on those inputs and returns only plain JSON data (numbers, strings, lists, dicts): never objects;
- `mistakes(inputs, outputs, *objects)` (the key's side, with hw3's full package) adds what hw3's own reference and its table
  of common mistakes give on the same inputs: hints are shown only where hw3's reference agrees with the key;
- `artifact(inputs, *objects)` and `verify(inputs, outputs, files)`: where what the kernel returns stands for work
  it cannot prove (a trained checkpoint, predictions from the student's model), the probe also hands the grader a
  file, and `verify` computes, in a trusted process of the grader's (`kernel.verifier`), what the file shows;
- `score(marks, inputs, outputs, expected)` (the grader's process, or the notebook's instant check) compares the
  student's returned data with `expected` = {"outputs": the key's probe outputs, "mistakes": ..., and where they
  apply "verified": what `verify` found, "context": {exercise kind: status} of the questions scored before it},
  in pure Python. Whatever the kernel returned is hostile data: a value of the wrong type fails its sub-test with
  a message (`Marks.read`), it never crashes the grader.

Points are not here: each question's sub-tests and their points come from the course's questions.toml
(`registry`); an exercise kind names its sub-tests, and `Marks` records which of them failed and why.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from ..results import TestResult

REASON_LIMIT = 200
Key = Callable[[dict], Any]
"""`key(candidate_inputs)`: the answer key's probe outputs for candidate inputs (the key's side only)."""


@dataclass(frozen=True)
class Test:
    """A named sub-test and its points (from the course's questions.toml)."""

    name: str
    points: float


class Unreadable(Exception):
    """A value the kernel returned has the wrong shape or type: the sub-test reading it fails."""


class OptionError(ValueError):
    """A question's options in questions.toml do not fit its exercise kind; one line naming the fix."""


class Exercise:
    """Base class of an exercise kind; see the module docstring.

    Subclasses set `kind` (its name in questions.toml), `tests` (the names of its sub-tests, in order; empty for a
    generic kind, which takes the one sub-test the course names) and `references` (`module:qualname` of the hw3
    functions that solve it: withheld from the sandbox while grading, so calling them earns nothing).
    """

    kind: ClassVar[str] = ""
    tests: ClassVar[tuple[str, ...]] = ()
    references: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        if options:
            raise OptionError(f"exercise {self.kind!r} takes no options (got {', '.join(sorted(options))}): "
                              f"remove them")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        raise NotImplementedError

    def probe(self, inputs: dict, *objects: Any) -> Any:
        raise NotImplementedError

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        """What hw3's reference and its common mistakes give on `inputs` (the key's side, `objects` being the key's
        own, `outputs` its probe's); default: nothing."""
        return {}

    def artifact(self, inputs: dict, *objects: Any) -> str | None:
        """Kernel side: the path of a file the grader should examine itself (e.g. the saved checkpoint), or None."""
        return None

    def verify(self, inputs: dict, outputs: Any, files: dict[str, str]) -> dict:
        """The grader's own computation on the files the submission's kernel handed over ({question id: path}),
        in a trusted process (`kernel.verifier`); what it returns reaches `score` as expected["verified"]."""
        return {}

    def score(self, marks: "Marks", inputs: dict, outputs: Any, expected: dict) -> None:
        raise NotImplementedError


class Marks:
    """Collects the verdict of each sub-test while a scorer runs: the first failure of a test is kept.

        marks = Marks(tests)
        with marks.read("W"):            # a malformed returned value fails test "W", not the grader
            ...
            marks.fail("W", "expected ...", input="X = ...", hint="...")
        return marks.results()

    A name that is not one of `tests` is ignored (a generic kind's scorer fails "its" test by `marks.first`).
    """

    def __init__(self, tests: tuple[Test, ...]) -> None:
        self.tests = tests
        self.failures: dict[str, tuple[str, str, str, str]] = {}

    @property
    def first(self) -> str:
        """The name of the first sub-test (a generic kind has exactly one)."""
        return self.tests[0].name

    def fail(self, name: str, message: str, input: str = "", hint: str = "", expected: str = "") -> None:
        """Fail test `name` (once: a later failure of the same test is ignored). `message` says what happened,
        `expected` what the answer key gives for that input (kept apart: where a student may resubmit, it is an
        oracle, and Gradescope's results leave it out)."""
        self.failures.setdefault(name, (one_line(message), one_line(input, 400), one_line(hint), one_line(expected)))

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

    def fail_all(self, message: str) -> None:
        """Fail every sub-test with one reason (nothing could be scored)."""
        for test in self.tests:
            self.fail(test.name, message)

    def results(self) -> list[TestResult]:
        """One TestResult per sub-test, in the course's order."""
        out = []
        for test in self.tests:
            if test.name in self.failures:
                message, shown, hint, expected = self.failures[test.name]
                out.append(TestResult(test.name, 0.0, test.points, message, shown, hint, expected))
            else:
                out.append(TestResult(test.name, test.points, test.points))
        return out


# Kernel side: calling the student's objects and returning plain data -----------------------------------

def plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON data: numbers (tensors, arrays and their scalars via .tolist()), strings, lists, dicts with
    str keys. Anything else becomes {"type": <its type name>}, so the scorer can say what came back."""
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
    """A tensor's, array's or numpy scalar's values (from `plain`), else the value itself."""
    if isinstance(value, dict) and "value" in value and "shape" in value:
        return value["value"]
    return value


def _real(value: Any) -> float | None:
    """A returned real number (int, float, or a 0-d tensor/array/numpy scalar) as a float; None otherwise."""
    value = unwrap(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def number(value: Any, what: str) -> float:
    """A finite float from a returned number, numpy scalar or one-element tensor; Unreadable otherwise."""
    value = unwrap(value)
    while isinstance(value, list) and len(value) == 1:
        value = unwrap(value[0])
    got = _real(value)
    if got is None:
        raise Unreadable(f"{what} returned {describe_plain(value)}, expected a single number")
    if not math.isfinite(got):
        raise Unreadable(f"{what} returned {got}, expected a finite number")
    return got


def numbers(value: Any, what: str, shape: tuple[int, ...]) -> list:
    """Nested lists of floats of the given shape from any nesting of returned tensors, arrays, lists and tuples
    (a list of 0-d tensors, a list of row tensors, ...); Unreadable otherwise."""
    top = value

    def walk(v: Any, dims: tuple[int, ...]) -> Any:
        v = unwrap(v)
        if not dims:
            got = _real(v)
            if got is None:
                raise Unreadable(f"{what} returned {describe_plain(unwrap(top))}, expected numbers of shape {shape}")
            return got
        if not isinstance(v, list) or len(v) != dims[0]:
            raise Unreadable(f"{what} returned {describe_plain(unwrap(top))}, expected numbers of shape {shape}")
        return [walk(x, dims[1:]) for x in v]

    return walk(value, shape)


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of returned nested numbers (the first element decides at each level); () for a scalar."""
    value = unwrap(value)
    if isinstance(value, list):
        return (len(value), *(shape_of(value[0]) if value else ()))
    return ()


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
    """math.isclose with the tolerances the checks use (NaN is close to nothing, infinities to themselves)."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def all_close(a: Any, b: Any, rel: float = 1e-5, abs_: float = 1e-8) -> bool:
    """True when nested lists of numbers `a` and `b` have the same shape and equal entries (to `rel`/`abs_`)."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(all_close(x, y, rel, abs_) for x, y in zip(a, b)))
    x, y = _real(a), _real(b)
    return x is not None and y is not None and close(x, y, rel, abs_)


def flat(values: Any) -> list[float]:
    """The numbers of nested lists, in order."""
    if isinstance(values, list):
        return [x for v in values for x in flat(v)]
    return [float(values)]


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
    flat_text = " ".join(str(text)[: limit * 20].split())
    flat_text = "".join(ascii(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf") else c for c in flat_text)
    return flat_text if len(flat_text) <= limit else flat_text[: limit - 1] + "…"


def fmt(values: Any) -> str:
    """Numbers (nested lists) with 4 significant digits: [1.414, 1, 1.414] or [1, 0; 0, 1]."""
    if isinstance(values, list) and values and isinstance(values[0], list):
        return "[" + "; ".join(", ".join(f"{v:.4g}" for v in row) for row in values) + "]"
    if isinstance(values, list):
        return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
    return f"{values:.4g}"


# Inputs ------------------------------------------------------------------------------------------------------

def seed_of(key: bytes, student: str, qid: str) -> int:
    """The seed of one student's inputs for one question: HMAC-SHA256(course key, student, question id), 128 bits.
    The public checks of the notebooks use the key b"public" and the student "public"."""
    digest = hmac.new(key, f"{student}\0{qid}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:16], "big")


PUBLIC = (b"public", "public")
"""(course key, student) of the inputs the notebooks' public checks use: anybody may know them."""
