"""`check("<id>", obj, ...)`: the notebooks' instant feedback on one exercise.

A check draws fresh inputs, probes the student's objects and scores them against the reference, all in the
student's own kernel (`run_exercise`), and prints exactly one line: `✅ <id> passed (<points> pts)`, or
`❌ <id>: <points> of <max> pts — <what failed> (hint: …)` followed by a `CheckFailed` exception so that
notebook runners (nbval, nbclient) see the cell fail. Points printed here are feedback only: `hw3 grade`
scores every exercise again outside the kernel, on inputs the student cannot predict.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import random
import threading
from typing import Any

from ..results import QuestionResult, TestResult
from .base import CheckFailed, Exercise, Unreadable, describe_exception, fresh_rng, one_line
from .registry import BY_ID, format_points

PASS_MARK = "✅"
FAIL_MARK = "❌"
DEFERRED_MARK = "⏳"


class _Discard(io.TextIOBase):
    """A text stream that swallows everything written to it (student prints during a probe)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def exercise_of(qid: str) -> Exercise:
    """The exercise of an automatic question; LookupError for unknown or manual ids."""
    q = BY_ID.get(qid)
    if q is None:
        raise LookupError(f"unknown check id {qid!r}: use one of the ids in hw3/grading/questions.py")
    if q.exercise is None:
        raise LookupError(f"{qid} is graded by hand: it has no automatic check")
    return q.exercise


def bind(exercise: Exercise, qid: str, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    """The check call's arguments bound to the probe's parameters (after `inputs`); CheckFailed if they do not fit."""
    try:
        return inspect.signature(exercise.probe).bind({}, *args, **kwargs)
    except TypeError as exc:
        raise CheckFailed(f"wrong arguments for check({qid!r}, ...): {exc}; restore the check cell") from None


def probe_quietly(exercise: Exercise, inputs: dict, args: tuple, kwargs: dict) -> Any:
    """exercise.probe(inputs, *args, **kwargs) with the student's prints swallowed."""
    with contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()):
        return exercise.probe(inputs, *args, **kwargs)


SCORING = threading.Lock()
"""Scorers build their reference models from seeds through torch's global random generator, and some inputs
build small models too: the parallel jobs of one grader process (threads) take turns at both, or one job's
draws would interleave with another's seeded ones and the reference models would differ."""


def score_safely(qid: str, inputs: dict, outputs: Any) -> QuestionResult:
    """The question's result from returned `outputs` (hostile data): a scorer that trips over it fails every test."""
    q = BY_ID[qid]
    exercise = exercise_of(qid)
    try:
        with SCORING:
            tests = exercise.score(inputs, outputs)
    except Exception as exc:
        message = one_line(str(exc) if isinstance(exc, Unreadable) else
                           f"the returned values could not be read ({type(exc).__name__})")
        tests = [TestResult(t.name, 0.0, t.points, message) for t in exercise.tests]
    return QuestionResult.from_tests(qid, q.title, q.max_points, tests)


def run_exercise(qid: str, args: tuple, kwargs: dict, rng: random.Random | None = None) -> QuestionResult:
    """Inputs, probe and score of one exercise in this process (the notebook's instant check)."""
    q = BY_ID.get(qid)
    exercise = exercise_of(qid)
    bind(exercise, qid, args, kwargs)
    inputs = exercise.inputs(rng or fresh_rng())
    try:
        outputs = probe_quietly(exercise, inputs, args, kwargs)
    except Exception as exc:
        return QuestionResult.failed(qid, q.title, q.max_points,
                                     one_line(f"checking it raised {describe_exception(exc)}"))
    return score_safely(qid, inputs, outputs)


def summary_line(result: QuestionResult) -> str:
    """`❌ q4.3a: 1 of 2 pts — <first failure> (hint: …)` or `✅ q4.3a passed (2 pts)`."""
    if result.status == "passed":
        return f"{PASS_MARK} {result.id} passed ({format_points(result.max_points)} pts)"
    failed = next((t for t in result.tests if not t.passed), None)
    reason = result.message or (failed.message if failed else "")
    hint = f" (hint: {failed.hint})" if failed and failed.hint else ""
    return (f"{FAIL_MARK} {result.id}: {format_points(result.points)} of {format_points(result.max_points)} pts — "
            f"{reason}{hint}")


def grading_build() -> bool:
    """True inside a grading sandbox, where hw3's reference implementations are withheld (`withheld`)."""
    return importlib.util.find_spec("hw3._grading_build") is not None


def check(qid: str, *args: Any, **kwargs: Any) -> None:
    """Check exercise `qid` on the given objects; print one line, raise CheckFailed when it is not fully right."""
    __tracebackhide__ = True
    if grading_build():
        exercise_of(qid)
        print(f"{DEFERRED_MARK} {qid}: scored by hw3 grade", flush=True)
        return
    try:
        result = run_exercise(qid, args, kwargs)
    except (LookupError, CheckFailed) as exc:
        message = one_line(str(exc.args[0]) if exc.args else str(exc))
        print(f"{FAIL_MARK} {qid}: {message}", flush=True)
        raise CheckFailed(message) from None
    print(summary_line(result), flush=True)
    if result.status != "passed":
        raise CheckFailed(one_line(result.message or "see the line above")) from None
