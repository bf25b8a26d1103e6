"""The homework's questions, read from the one file instructors edit: `answers/questions.toml`.

Each `[[question]]` has an `id` (as used by `check("<id>", ...)` cells and the answer-key markers), a `title`,
and either
- `exercise = "<kind>"` and `tests = { "<sub-test>" = points, ... }`: scored automatically by that exercise kind
  (`KINDS`: one per homework exercise, plus the generic `function` and `value`), comparing the student's work with
  the answer key's; other keys of the table are the kind's options (e.g. `arguments` for `function`); or
- `points = N` and `rubric = "..."`: graded by hand.

An automatic question may also give `points`: then its sub-tests must add up to it. Every label, total, report and
the notebooks' point labels derive from this file; nothing else holds points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from hw3.errors import HW3Error

from . import generic, q2_rnn, q3_attention, q4_data, q4_inference, q4_model, q4_training
from .base import Exercise, OptionError, Test

SPEC_FILE = "questions.toml"
KINDS: dict[str, type[Exercise]] = {cls.kind: cls for module in (q2_rnn, q3_attention, q4_data, q4_model,
                                                                  q4_training, q4_inference, generic)
                                    for cls in module.KINDS}
QUESTION_ID = re.compile(r"[A-Za-z][\w.]*")
Kind = Literal["auto", "manual"]


class SpecError(HW3Error):
    """questions.toml cannot be used; one line naming the file, the question and the fix."""


@dataclass(frozen=True)
class Question:
    """One graded item: automatic (scored by its exercise kind, with `tests`) or manual (graded by hand against
    `rubric`, worth `manual_points`). `options` are the exercise kind's settings from questions.toml."""

    id: str
    title: str
    kind: Kind
    exercise_kind: str = ""
    tests: tuple[Test, ...] = ()
    manual_points: float = 0.0
    rubric: str = ""
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    @cached_property
    def exercise(self) -> Exercise | None:
        """The configured exercise of an automatic question (None for a manual one)."""
        return KINDS[self.exercise_kind](**self.options) if self.kind == "auto" else None

    @property
    def max_points(self) -> float:
        return sum(t.points for t in self.tests) if self.kind == "auto" else self.manual_points

    def as_data(self) -> dict[str, Any]:
        """What a notebook's public check needs of the question (JSON data)."""
        return {"id": self.id, "title": self.title, "exercise": self.exercise_kind, "options": self.options,
                "tests": [[t.name, t.points] for t in self.tests]}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Question":
        """The inverse of `as_data` (an automatic question)."""
        return cls(data["id"], data["title"], "auto", data["exercise"],
                   tuple(Test(name, float(points)) for name, points in data["tests"]), options=data["options"])


@dataclass(frozen=True)
class Homework:
    """The questions of one homework, in order (from questions.toml)."""

    questions: tuple[Question, ...]
    source: str = ""  # the file they came from, for messages

    @cached_property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    def automatic(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.kind == "auto")

    def manual(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.kind == "manual")

    @property
    def max_total(self) -> float:
        """Points of the whole homework (automatic and by hand)."""
        return sum(q.max_points for q in self.questions)

    def withheld(self) -> dict[str, set[str]]:
        """{module: qualified names} of hw3's reference functions that solve this homework's exercises."""
        out: dict[str, set[str]] = {}
        for q in self.automatic():
            for reference in KINDS[q.exercise_kind].references:
                module, qualname = reference.split(":")
                out.setdefault(module, set()).add(qualname)
        return out


def format_points(points: float) -> str:
    """Points as the check lines and reports print them: 2, 1.5, 0.5."""
    return f"{points:g}"


def points_word(points: float) -> str:
    """'1 pt', '0.5 pts', '2 pts'."""
    return f"{format_points(points)} {'pt' if points == 1 else 'pts'}"


def load_homework(answers: Path) -> Homework:
    """The homework of the answer keys in `answers` (its questions.toml); SpecError naming the fix."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the grade extra installs tomli
        import tomli as tomllib

    path = Path(answers) / SPEC_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path} is missing: the answer keys' folder must hold {SPEC_FILE} with the homework's "
                        f"questions and points (see the README, 'For instructors')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {path} ({type(exc).__name__}): save it as UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML ({exc}): fix the line it names") from None
    return parse_homework(data, str(path))


def parse_homework(data: dict[str, Any], source: str) -> Homework:
    """The Homework of questions.toml's parsed `data`; SpecError naming the question and the fix."""
    entries = data.get("question")
    unknown = sorted(set(data) - {"question"})
    if unknown:
        raise SpecError(f"{source}: unknown top-level key {unknown[0]!r}: questions are [[question]] tables")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{source} lists no [[question]]: add one table per question")
    questions: list[Question] = []
    for number, entry in enumerate(entries, start=1):
        question = _question(entry, f"{source}: question {entry.get('id', f'#{number}')!s}" if isinstance(entry, dict)
                             else f"{source}: question #{number}")
        if any(q.id == question.id for q in questions):
            raise SpecError(f"{source}: question id {question.id!r} is listed twice: give each question its own id")
        questions.append(question)
    return Homework(tuple(questions), source)


def _question(entry: Any, where: str) -> Question:
    """One [[question]] table as a Question."""
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a table with id, title and points")
    qid, title = entry.get("id"), entry.get("title")
    if not isinstance(qid, str) or not QUESTION_ID.fullmatch(qid):
        raise SpecError(f"{where}: id must be a name like q2 or q4.3a (letters, digits, '.', '_')")
    if not isinstance(title, str) or not title.strip():
        raise SpecError(f"{where}: add a title")
    if "exercise" in entry:
        return _automatic(entry, qid, title, where)
    extra = sorted(set(entry) - {"id", "title", "points", "rubric"})
    if extra:
        raise SpecError(f"{where}: {extra[0]!r} is not a key of a hand-graded question (id, title, points, rubric); "
                        f"an automatic question needs `exercise`")
    points, rubric = entry.get("points"), entry.get("rubric")
    if not _is_points(points) or points <= 0:
        raise SpecError(f"{where}: a hand-graded question needs points = a positive number")
    if not isinstance(rubric, str) or not rubric.strip():
        raise SpecError(f"{where}: a hand-graded question needs a rubric (what earns its points)")
    return Question(qid, title, "manual", manual_points=float(points), rubric=rubric)


def _automatic(entry: dict[str, Any], qid: str, title: str, where: str) -> Question:
    """An automatic [[question]]: its exercise kind, sub-tests with points, and the kind's options."""
    kind = entry["exercise"]
    if kind not in KINDS:
        raise SpecError(f"{where}: unknown exercise {kind!r}: use one of {', '.join(sorted(KINDS))}")
    tests = entry.get("tests")
    if not isinstance(tests, dict) or not tests:
        raise SpecError(f'{where}: list its sub-tests with their points: tests = {{ "name" = points, ... }}')
    bad = next((name for name, points in tests.items() if not _is_points(points) or points < 0), None)
    if bad is not None:
        raise SpecError(f"{where}: sub-test {bad!r} needs points = a number of at least 0")
    cls = KINDS[kind]
    if cls.tests and set(tests) != set(cls.tests):
        raise SpecError(f"{where}: exercise {kind!r} has the sub-tests {', '.join(map(repr, cls.tests))}; "
                        f"name exactly those in tests (found {', '.join(map(repr, tests))})")
    if not cls.tests and len(tests) != 1:
        raise SpecError(f"{where}: exercise {kind!r} is scored as one sub-test: name one in tests")
    order = cls.tests or tuple(tests)
    declared = entry.get("points")
    total = sum(float(tests[name]) for name in order)
    if declared is not None and (not _is_points(declared) or abs(float(declared) - total) > 1e-9):
        raise SpecError(f"{where}: its sub-tests add up to {format_points(total)} points, not {declared}: "
                        f"fix the points or the sub-tests")
    options = {k: v for k, v in entry.items() if k not in ("id", "title", "exercise", "tests", "points")}
    question = Question(qid, title, "auto", kind, tuple(Test(name, float(tests[name])) for name in order),
                        options=options)
    try:
        question.exercise  # the kind checks its options now, not in the middle of a batch
    except OptionError as exc:
        raise SpecError(f"{where}: {exc}") from None
    return question


def _is_points(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value != float("inf")
