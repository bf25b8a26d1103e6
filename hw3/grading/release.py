"""What `hw3 assign` releases from the answer keys, and how `hw3 assign --check` verifies it.

A release is the student notebooks (`assign.generate`) and the public checks: every automatic question's public
inputs and the answer key's answers on them (`answer_key.public_checks`), stored with hw3 so that the notebooks'
`check()` cells follow the key. `verify` is what `--check` adds: the files are up to date, questions.toml and the
keys' check cells agree, and every key, graded by the real grader as if it were a student's submission, gets full
automatic marks (a key the grader disagrees with is named with the exercise and the failing sub-test).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from .assign import generate
from .course import Course
from .exercises.checks import score_safely
from .exercises.registry import Question
from .grader import Settings, grade_submission


def render_checks(checks: dict) -> str:
    """The public checks file's text: canonical JSON."""
    return json.dumps(checks, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def notebooks(course: Course, folder: Path) -> dict[Path, str]:
    """{student notebook path: its text} of the course, under `folder`."""
    return {folder / path: text for path, text in generate(course.answers, course.homework, course.digest).items()}


def unchecked(course: Course) -> list[str]:
    """Why questions.toml and the keys' check cells disagree: an automatic question without a check cell (a check
    cell without a question is refused by `assign.generate`)."""
    return [f"{q.id} is an automatic question in {course.homework.source}, but no answer key has a check cell for "
            f"it: add check(\"{q.id}\", ...) after its exercise, or remove it from {course.homework.source}"
            for q in course.homework.automatic() if q.id not in course.home]


def _same(a: dict, b: dict) -> bool:
    """Whether two public-check entries are the same JSON text."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def stale_checks(stored: dict, fresh: dict) -> list[str]:
    """The question ids whose stored public checks are not what the keys give now (the digest, the question, the
    inputs, or the key's outputs beyond round-off); ["<digest>"] when the digests differ."""
    if stored.get("digest") != fresh["digest"]:
        return ["<digest>"]
    old = stored.get("questions", {})
    stale = sorted(set(old) ^ set(fresh["questions"]))
    for qid, entry in fresh["questions"].items():
        before = old.get(qid)
        if before is None or _same(before, entry):  # as written (a key's NaN answers are equal to themselves here)
            continue
        question = Question.from_data(entry["question"])
        if before.get("question") != entry["question"] or before.get("inputs") != entry["inputs"] or \
                score_safely(question, entry["inputs"], before.get("expected", {}).get("outputs"),
                             entry["expected"]).status != "passed":
            stale.append(qid)
    return stale


def key_marks(course: Course, settings: Settings, checks: dict) -> list[str]:
    """Grade the answer keys, as one student's submission, with the real grader on the public inputs; one line
    per sub-test they lose (none when the grader agrees with the keys)."""
    expected = {qid: {"inputs": entry["inputs"], **entry["expected"]} for qid, entry in checks["questions"].items()}
    with tempfile.TemporaryDirectory(prefix="hw3-key-check-") as folder:
        submission = Path(folder) / "answer-key"
        for name in course.keys:
            (submission / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(course.answers / name, submission / name)
        report = grade_submission(submission, replace(settings, expected=expected))
    problems = []
    for q in report.questions:
        if q.status in ("manual", "not answered") or q.status == "passed":
            continue
        failed = [t for t in q.tests if not t.passed] or []
        detail = "; ".join(f"sub-test {t.name!r}: {t.message}" for t in failed) or q.message
        problems.append(f"the grader gives the answer key {q.points:g} of {q.max_points:g} points for {q.id} "
                        f"({detail}): fix the key or the question in {course.homework.source}")
    return problems + [f"note from grading the answer key: {note}" for note in report.notes if problems]
