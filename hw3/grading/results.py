"""The results model every grading tool shares: a Report per submission, a QuestionResult per question,
a TestResult per named sub-test.

Everything here is plain data that round-trips through JSON (`Report.to_dict` / `Report.from_dict`), so
the results store, the JSON/CSV/Gradescope outputs and the students' feedback files all render the same
objects. Points are earned per sub-test, the way otter-grader's test cases carry points: a question's
points are the sum of its tests' points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["passed", "partial", "failed", "manual", "not answered"]


@dataclass
class TestResult:
    """One named sub-test of a question.

    `message` says what went wrong (empty when it passed), `input` is the exact input that failed (quoted the
    same way everywhere it is shown), `hint` the likely cause from the table of common mistakes, `expected` what
    the answer key gives for that input (shown to instructors and in the feedback, left out of Gradescope's
    results, where a student could resubmit with it).
    """

    name: str
    points: float
    max_points: float
    message: str = ""
    input: str = ""
    hint: str = ""
    expected: str = ""

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points

    @property
    def explained(self) -> str:
        """The message with what was expected: "returned 0.5, expected 0"."""
        return f"{self.message}, expected {self.expected}" if self.expected else self.message


@dataclass
class QuestionResult:
    """One question of one submission: its points, status, the reason it lost points, its sub-tests.

    Manual questions carry their `rubric` and 0 automatic points; `status` is "not answered" for a written
    answer left as the placeholder.
    """

    id: str
    title: str
    points: float
    max_points: float
    status: Status
    message: str = ""
    tests: list[TestResult] = field(default_factory=list)
    rubric: str = ""

    @property
    def by_hand(self) -> bool:
        """True for a question graded by hand (it carries its rubric)."""
        return bool(self.rubric)

    @classmethod
    def from_tests(cls, qid: str, title: str, max_points: float, tests: list[TestResult]) -> "QuestionResult":
        """A question scored from its sub-tests: passed, partial or failed; `message` is the first failure's."""
        points = sum(t.points for t in tests)
        failed = [t for t in tests if not t.passed]
        status: Status = "passed" if not failed else ("partial" if points > 0 else "failed")
        return cls(qid, title, points, max_points, status, failed[0].explained if failed else "", tests)

    @classmethod
    def failed(cls, qid: str, title: str, max_points: float, message: str) -> "QuestionResult":
        """A question that earns nothing for one reason (nothing could be tested)."""
        return cls(qid, title, 0.0, max_points, "failed", message)


@dataclass
class Report:
    """The grade of one submission.

    `student` names its row in the CSV; `digest` identifies the submitted contents (a regrade of the same
    contents with the same `grader_version` gives the same report); `sandboxed` is False only when the
    instructor graded with --no-sandbox; `seconds` is the wall-clock time its grading took.
    """

    submission: str
    student: str
    questions: list[QuestionResult]
    notes: list[str] = field(default_factory=list)
    sandboxed: bool = True
    grader_version: str = ""
    digest: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> float:
        """Points earned (automatic, plus manual points once merged in)."""
        return sum(q.points for q in self.questions)

    @property
    def max_total(self) -> float:
        """Points of the whole homework, automatic and manual."""
        return sum(q.max_points for q in self.questions)

    def question(self, qid: str) -> QuestionResult:
        """The result of question `qid` (KeyError when the homework has no such question)."""
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape: submission, student, questions (with tests), total, max_total, notes, ..."""
        data = asdict(self)
        data["total"] = self.total
        data["max_total"] = self.max_total
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        """The inverse of `to_dict` (extra keys such as total are recomputed, not read)."""
        questions = [QuestionResult(**{**q, "tests": [TestResult(**t) for t in q.get("tests", [])]})
                     for q in data["questions"]]
        fields = {k: data[k] for k in ("notes", "sandboxed", "grader_version", "digest", "seconds") if k in data}
        return cls(data["submission"], data["student"], questions, **fields)


GRADER_VERSION = "4"
"""Bumped when a change to the checks or to this model makes earlier results incomparable: a results store
written by another version is refused (regrade into a new store, or `--regrade` the changed questions).
3: q4.1b expects the grading corpus (hw3.grading.kernel.corpus); 4: q2's clear-cut sequences lie on both sides
of 0.5 under the key (a constant answer once passed them)."""
