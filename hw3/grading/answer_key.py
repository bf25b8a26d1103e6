"""The answer key's side of grading: every exercise is scored against what the instructor's key does.

`answers(course, settings, students)` runs each answer-key notebook once, in a kernel like a student's (the same
sandbox and grading corpus, but with nothing of hw3 withheld: the key is instructor code) and, in its last cell
(`kernel.harness.run_reference`), answers for every (student, question): it draws the student's inputs from a
seed (HMAC of the course key, the student and the question: `exercises.base.seed_of`; the key's kernel never
sees the course key), runs the exercise's probe on the key's own objects, and adds hw3's table of mistakes (for
hints). The student's kernel later gets only its inputs; the grader compares its outputs with the key's.

`hw3 assign` uses the same run with the public seed, for the notebooks' instant checks (`public_checks`).
A key that fails (a cell raises, a probe of the key's objects raises) stops the run with one line naming the key,
the question and the fix: the grade of every student depends on it.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING

from hw3.errors import HW3Error

from .exercises.base import PUBLIC, seed_of

if TYPE_CHECKING:
    from .course import Course
    from .grader import Settings

Answers = dict[str, dict[str, dict]]
"""{student: {question id: {"inputs", "outputs", "mistakes"}}}."""


class KeyFailed(HW3Error):
    """An answer key could not answer; one line naming the key, the question or cell, and the fix."""


def answers(course: "Course", settings: "Settings", students: dict[str, frozenset[str] | None]) -> Answers:
    """The answer key's answers for each student's questions ({student: question ids, None for all})."""
    from .grader import Runner, key_build, short_tmp

    out: Answers = {student: {} for student in students}
    for name, released in course.released.items():
        requests = []
        for student, only in students.items():
            for qid, call in released.checks.items():
                if only is None or qid in only:
                    question = course.homework.by_id[qid]
                    requests.append({"tag": f"{len(requests)}", "id": qid, "exercise": question.exercise_kind,
                                     "options": question.options, "arguments": call.arguments,
                                     "seed": seed_of(settings.key, student, qid), "student": student})
        if not requests:
            continue
        with tempfile.TemporaryDirectory(prefix="hw3-key-", dir=short_tmp(), ignore_cleanup_errors=True) as scratch:
            runner = Runner(course.keys[name], name, replace(settings, slot=0), key_build(), scratch)
            run = runner.run([{k: v for k, v in r.items() if k != "student"} for r in requests],
                             settings.timeout * len(requests) + 60, key=True)
        where = f"the answer key {course.answers / name}"
        if run.execution.failures:
            index, message = min(run.execution.failures.items())
            raise KeyFailed(f"{where} failed: {message}: fix the key (`hw3 assign --check` runs it)")
        for request in requests:
            records = run.found.get(request["tag"])
            if not records or "error" in records[0] or "outputs" not in records[0]:
                reason = records[0].get("error", "no answer") if records else run.execution.final_error or "no answer"
                raise KeyFailed(f"{where} could not answer {request['id']} ({reason}): fix the key's solution or its "
                                f"check cell (`hw3 assign --check` runs it)")
            record = records[0]
            out[request["student"]][request["id"]] = {k: record[k] for k in ("inputs", "outputs", "mistakes")}
    return out


def public_checks(course: "Course", settings: "Settings") -> dict:
    """The notebooks' public checks: every automatic question's public inputs and the key's answers on them."""
    key, student = PUBLIC
    found = answers(course, replace(settings, key=key), {student: None})[student]
    return {"digest": course.digest,
            "questions": {q.id: {"question": q.as_data(), "inputs": found[q.id]["inputs"],
                                 "expected": {"outputs": found[q.id]["outputs"], "mistakes": found[q.id]["mistakes"],
                                              "public": True}}
                          for q in course.homework.questions if q.id in found}}
