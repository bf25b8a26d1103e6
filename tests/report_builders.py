"""Hand-built Reports for the tests of the tools that consume them (feedback, summary, manual scores)."""

from __future__ import annotations

from pathlib import Path

from grading_helpers import load_homework_file

from hw3.grading.results import QuestionResult, Report, TestResult

HOMEWORK = load_homework_file(Path(__file__).resolve().parents[1] / "answers" / "questions.toml")
QUESTIONS = HOMEWORK.questions


def question(qid: str, fraction: float = 1.0, message: str = "", status: str | None = None) -> QuestionResult:
    """Question `qid` of the homework. A manual one is untouched (status "manual", or `status`). An auto one
    is "not answered" (`status`), passes (fraction 1), or fails its "fresh inputs" sub-test with `message`
    and earns half its points (fraction 0.5) or nothing (fraction 0, both sub-tests failing)."""
    spec = next(q for q in QUESTIONS if q.id == qid)
    if spec.kind == "manual":
        return QuestionResult(qid, spec.title, 0.0, spec.max_points, status or "manual", rubric=spec.rubric)
    if status == "not answered":
        return QuestionResult(qid, spec.title, 0.0, spec.max_points, status, "the stub was left as it is")
    if fraction == 1:
        return QuestionResult.from_tests(qid, spec.title, spec.max_points,
                                         [TestResult("all inputs", spec.max_points, spec.max_points)])
    half = spec.max_points / 2
    given = TestResult("given inputs", half if fraction == 0.5 else 0.0, half, "" if fraction == 0.5 else message)
    fresh = TestResult("fresh inputs", 0.0, half, message, input="xs = [3, 5]", hint="reset h before the loop")
    return QuestionResult.from_tests(qid, spec.title, spec.max_points, [given, fresh])


def report(student: str, failures: dict[str, tuple[float, str]] | None = None, **fields) -> Report:
    """A report of `student` passing every auto question except those in `failures` (id -> (fraction, message))."""
    failures = failures or {}
    questions = [question(q.id, *failures.get(q.id, (1.0, ""))) for q in QUESTIONS]
    return Report(f"/srv/course/submissions/{student}.ipynb", student, questions, **fields)
