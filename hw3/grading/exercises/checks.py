"""`check("<id>", obj, ...)`: the notebooks' instant feedback on one exercise, and the scoring every grader shares.

A notebook's check runs the question's probe on the student's objects with the question's *public* inputs and
scores the outputs against the answer key's outputs on the same inputs, which `hw3 assign` computed by running the
key and stored with hw3 (`public_checks.json`, beside this file). It prints exactly one line, `✅ <id> passed
(<points>)` or `❌ <id>: <points> of <max> — <what failed> (hint: …)`, and never stops the notebook: "Run all"
goes on past a wrong answer (nbval still sees a changed line in an answer key). `hw3 grade` scores the same way
(`score_safely`), outside the kernel, on inputs the student cannot predict.

The setup cell of a student notebook calls `require("<digest>")` with the digest of the checks it was released
with: an installed hw3 whose checks differ is named with the fix, in one line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import os
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..results import QuestionResult, TestResult
from .base import Exercise, Marks, Unreadable, describe_exception, one_line
from .registry import Question, format_points, points_word

PASS_MARK = "✅"
FAIL_MARK = "❌"
DEFERRED_MARK = "⏳"
PUBLIC_FILE = Path(__file__).with_name("public_checks.json")
PUBLIC_ENV = "HW3_PUBLIC_CHECKS"  # another public checks file (a course previewed outside its repository)


class _Discard(io.TextIOBase):
    """A text stream that swallows everything written to it (student prints during a probe)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def bind(exercise: Exercise, args: tuple, kwargs: dict) -> str | None:
    """Why the check call's arguments do not fit the probe's parameters (after `inputs`), or None when they do."""
    try:
        inspect.signature(exercise.probe).bind({}, *args, **kwargs)
    except TypeError as exc:
        return f"wrong arguments for this check ({exc}): restore the check cell from the original notebook"
    return None


def probe_quietly(exercise: Exercise, inputs: dict, args: tuple, kwargs: dict) -> Any:
    """exercise.probe(inputs, *args, **kwargs) with the student's prints swallowed."""
    with contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()):
        return exercise.probe(inputs, *args, **kwargs)


def key_answer(exercise: Exercise, args: tuple, kwargs: dict, seed: int) -> dict:
    """The answer key's side of one exercise for one seed, with the key's objects `args`/`kwargs`: {"inputs" drawn
    from the seed (asking the key's probe where the exercise needs it), "outputs" of the key's probe on them,
    "mistakes" of hw3's table}. ValueError when the objects do not fit the probe."""
    problem = bind(exercise, args, kwargs)
    if problem:
        raise ValueError(problem)

    def key(candidates: dict) -> Any:
        return probe_quietly(exercise, candidates, args, kwargs)

    inputs = exercise.inputs(random.Random(seed), key)
    outputs = key(inputs)
    return {"inputs": inputs, "outputs": outputs, "mistakes": exercise.mistakes(inputs, outputs, *args)}


def score_safely(question: Question, inputs: dict, outputs: Any, expected: dict) -> QuestionResult:
    """The question's result from the student's returned `outputs` (hostile data) against the answer key's
    `expected`; a scorer that trips over the data fails every sub-test, it never raises."""
    marks = Marks(question.tests)
    try:
        question.exercise.score(marks, inputs, outputs, expected)
    except Exception as exc:
        marks.fail_all(str(exc) if isinstance(exc, Unreadable) else
                       f"the returned values could not be read ({type(exc).__name__})")
    return QuestionResult.from_tests(question.id, question.title, question.max_points, marks.results())


def failed(question: Question, message: str) -> QuestionResult:
    """Every sub-test of `question` failed for one reason."""
    tests = [TestResult(t.name, 0.0, t.points, one_line(message)) for t in question.tests]
    return QuestionResult.from_tests(question.id, question.title, question.max_points, tests)


def run_check(question: Question, inputs: dict, expected: dict, args: tuple, kwargs: dict) -> QuestionResult:
    """Probe the student's objects on `inputs` in this process and score them against `expected`."""
    exercise = question.exercise
    problem = bind(exercise, args, kwargs)
    if problem:
        return failed(question, problem)
    try:
        outputs = probe_quietly(exercise, inputs, args, kwargs)
    except Exception as exc:
        return failed(question, f"checking it raised {describe_exception(exc)}")
    return score_safely(question, inputs, outputs, expected)


def summary_line(result: QuestionResult) -> str:
    """`❌ q4.3a: 1 of 2 pts — <first failure> (hint: …)` or `✅ q4.3a passed (2 pts)`."""
    if result.status == "passed":
        return f"{PASS_MARK} {result.id} passed ({points_word(result.max_points)})"
    failure = next((t for t in result.tests if not t.passed), None)
    reason = result.message or (failure.message if failure else "")
    hint = f" (hint: {failure.hint})" if failure and failure.hint else ""
    return f"{FAIL_MARK} {result.id}: {format_points(result.points)} of {points_word(result.max_points)} — {reason}{hint}"


@lru_cache(maxsize=2)
def _load(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def public_checks() -> dict:
    """The public checks this hw3 was built with ({"digest", "questions": {id: {question, inputs, expected}}});
    empty when there are none."""
    path = os.environ.get(PUBLIC_ENV) or str(PUBLIC_FILE)
    try:
        return _load(path)
    except (OSError, ValueError):
        return {}


def grading_build() -> bool:
    """True inside a kernel `hw3 grade` runs (the grading or the answer key's build of hw3)."""
    return importlib.util.find_spec("hw3._grading_build") is not None


def require(digest: str | None) -> None:
    """The setup cell's guard: print one line naming the fix when the installed hw3's checks are not the ones this
    notebook was released with (`digest`, written by `hw3 assign`; None in an answer key)."""
    if not digest or grading_build():
        return
    installed = public_checks().get("digest")
    if installed != digest:
        import hw3

        print(f"{FAIL_MARK} this notebook was released with hw3 checks {digest}, but the installed hw3 "
              f"{getattr(hw3, '__version__', '')} has {installed or 'none'}: reinstall hw3 from your course "
              f"(rerun the first cell after `pip uninstall -y hw3`), then restart the runtime", flush=True)


def check(qid: str, *args: Any, **kwargs: Any) -> None:
    """Check exercise `qid` on the given objects against the answer key; print one line (never raises)."""
    if grading_build():
        print(f"{DEFERRED_MARK} {qid}: scored by hw3 grade", flush=True)
        return
    entry = public_checks().get("questions", {}).get(qid)
    if entry is None:
        print(f"{FAIL_MARK} {qid}: the installed hw3 has no check {qid!r}: reinstall hw3 from your course (rerun "
              f"the first cell after `pip uninstall -y hw3`)", flush=True)
        return
    result = run_check(Question.from_data(entry["question"]), entry["inputs"], entry["expected"], args, kwargs)
    print(summary_line(result), flush=True)
