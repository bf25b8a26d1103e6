"""`check("<id>", obj, ...)`: test a student's object against the reference on fresh inputs.

A check prints exactly one line: `✅ <id> passed (<points> pts)`, or `❌ <id>: <short reason>` followed by
a `CheckFailed` exception so that notebook runners (nbval, nbclient) see the cell fail. The verifiers
themselves live in `rnn_attention_checks` and `sentiment_checks`; `run_check` is what both this
function and the grader's final cell call.

For the questions that receive a student's function, `run_check` also refuses the hw3 reference
implementation, imported or wrapped (see `provenance`): that reason comes first.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import math
import random
import secrets
from collections.abc import Callable
from typing import Any

from . import provenance
from .points import BY_ID, format_points

PASS_MARK = "✅"
FAIL_MARK = "❌"
REASON_LIMIT = 160

_VERIFIER_MODULES = {"q2": "rnn_attention_checks", "q3": "rnn_attention_checks", "q4": "sentiment_checks"}


class CheckFailed(AssertionError):
    """A check did not pass; the message is the one-line reason."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the reason is all a student needs."""
        return [f"{type(self).__name__}: {self}"]


def check(qid: str, *args: Any, **kwargs: Any) -> None:
    """Check exercise `qid` on the given objects; print one line, raise CheckFailed when it fails."""
    __tracebackhide__ = True
    reason = run_check(qid, args, kwargs)
    if reason is None:
        print(f"{PASS_MARK} {qid} passed ({format_points(BY_ID[qid].max_points)} pts)", flush=True)
        return
    print(f"{FAIL_MARK} {qid}: {reason}", flush=True)
    raise CheckFailed(reason) from None


class _Discard(io.TextIOBase):
    """A text stream that swallows everything written to it (student prints during a check)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def run_check(qid: str, args: tuple, kwargs: dict) -> str | None:
    """Run the verifier of `qid`: None when it passes, else a one-line reason (never raises Exception)."""
    try:
        verifier = find_verifier(qid)
    except LookupError as exc:
        return one_line(str(exc))
    except Exception as exc:
        return _crashed(exc)
    try:
        bound = inspect.signature(verifier).bind(*args, **kwargs)
    except TypeError as exc:
        return one_line(f"wrong arguments for check({qid!r}, ...): {exc}; restore the check cell")
    what = provenance.student_parameter(qid, verifier)
    if what is not None:
        reason = provenance.imported_reference(bound.arguments.get(what), what)
        if reason:
            return one_line(reason)
    watch = provenance.watch(qid, verifier)
    outcome = None
    try:
        with contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()), \
                watch or contextlib.nullcontext():
            verifier(*args, **kwargs)  # what the student's code prints would break the one-line contract
    except CheckFailed as exc:
        outcome = str(exc)
    except Exception as exc:
        outcome = _crashed(exc)
    reason = (watch.reason(what) if watch else None) or outcome  # calling the reference is the real problem
    return one_line(reason) if reason else None


def _crashed(exc: Exception) -> str:
    """A bug or a broken install, not the student's object: say so in one line."""
    return one_line(f"the check itself crashed ({describe_exception(exc)}): tell the course staff")


def find_verifier(qid: str) -> Callable[..., None]:
    """The verifier function of an auto question; LookupError for unknown or manual ids."""
    q = BY_ID.get(qid)
    if q is None:
        raise LookupError(f"unknown check id {qid!r}: use one of the ids in hw3/grading/points.py")
    if q.kind != "auto":
        raise LookupError(f"{qid} is graded by hand: it has no automatic check")
    module = importlib.import_module(f"{__package__}.{_VERIFIER_MODULES[qid[:2]]}")
    return module.VERIFIERS[qid]


def call_student(fn: Any, *args: Any, what: str) -> Any:
    """Call the student's `fn(*args)`; any exception becomes CheckFailed naming the call `what`."""
    if not callable(fn):
        raise CheckFailed(f"expected a function, got {type(fn).__name__}: pass the function itself, not its result")
    try:
        return fn(*args)
    except Exception as exc:
        raise CheckFailed(f"{what} raised {describe_exception(exc)}") from None


def as_float(value: Any, what: str) -> float:
    """A finite number from a float, int, 0-d tensor or array; CheckFailed otherwise."""
    if isinstance(value, bool):
        raise CheckFailed(f"{what} returned a bool, expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"{what} returned {describe_value(value)}, expected a single number") from None
    if not math.isfinite(number):
        raise CheckFailed(f"{what} returned {number}, expected a finite number")
    return number


def fresh_rng() -> random.Random:
    """A random generator seeded from the OS, so every check run sees new inputs."""
    return random.Random(secrets.randbits(64))


def describe_exception(exc: BaseException, limit: int = 100) -> str:
    """`ValueError: message` on one line, the message cut to `limit` characters (even if str() fails)."""
    name = getattr(type(exc), "__name__", "Exception")
    try:
        message = str(exc)[:10_000].strip().splitlines()
    except Exception:  # a student's exception whose __str__ raises
        message = ["<the message could not be printed>"]
    if not message:
        return name
    text = message[0] if len(message[0]) <= limit else message[0][: limit - 1] + "…"
    return f"{name}: {text}"


def describe_value(value: Any) -> str:
    """A short description of a returned value: its type, and its shape when it has one."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    if isinstance(value, (list, tuple, dict, set)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def one_line(text: str) -> str:
    """Collapse whitespace to one line and cut it to REASON_LIMIT characters."""
    flat = " ".join(text[: REASON_LIMIT * 20].split())
    return flat if len(flat) <= REASON_LIMIT else flat[: REASON_LIMIT - 1] + "…"
