"""The course as grading sees it, all of it read from the answer keys' folder (the single source of truth):
the homework's questions (`questions.toml`), the answer-key notebooks, and the released notebooks that
`hw3 assign` generates from them (generated again here, in memory, so they can never be stale).

`Course.digest` names this version of the homework: it changes when the questions, a key's code or hw3's
grader changes, and the student notebooks and the public checks carry it (`checks.require`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import nbformat

from hw3.errors import HW3Error

from .exercises.registry import SPEC_FILE, Homework, load_homework
from .notebook import CheckCall, NotebookError, cell_source, check_calls, fingerprint, notebook_paths, read_notebook


class CourseError(HW3Error):
    """The answer keys cannot be graded against; one line naming the fix."""


class Released(NamedTuple):
    """A released notebook as grading needs it: its check calls by question id, its code cells' fingerprints,
    the notebook itself (what the summary tells apart from a student's own code)."""

    checks: dict[str, CheckCall]
    cells: frozenset[str]
    nb: nbformat.NotebookNode


@dataclass(frozen=True)
class Course:
    """The homework, the answer keys by name (e.g. hw3_q4.ipynb) and the released notebooks by the same names."""

    answers: Path
    homework: Homework
    keys: dict[str, nbformat.NotebookNode]
    released: dict[str, Released]
    digest: str

    @cached_property
    def home(self) -> dict[str, str]:
        """{question id: the name of the notebook whose check cell it has}."""
        return {qid: name for name, released in self.released.items() for qid in released.checks}


def load_course(answers: Path) -> Course:
    """The course of the answer keys in `answers`; an HW3Error naming the fix when it cannot be graded."""
    from .assign import generate  # assign renders the released notebooks from the keys

    answers = Path(answers)
    homework = load_homework(answers)
    try:
        keys = {path.relative_to(answers).as_posix(): read_notebook(path) for path in notebook_paths(answers)}
    except NotebookError as exc:
        raise CourseError(str(exc)) from None
    course_digest = digest(answers, keys)
    released: dict[str, Released] = {}
    first: dict[str, str] = {}
    for path, text in sorted(generate(answers, homework, course_digest).items()):
        name = path.as_posix()
        nb = nbformat.reads(text, as_version=4)
        checks: dict[str, CheckCall] = {}
        for call in check_calls(nb.cells):
            if call.qid in first and first[call.qid] != name:
                raise CourseError(f"{first[call.qid]} and {name} both have a check cell for {call.qid}: keep one")
            first[call.qid] = name
            checks.setdefault(call.qid, call)
        if checks:
            code = frozenset(fingerprint(cell_source(c)) for c in nb.cells if c.cell_type == "code")
            released[name] = Released(checks, code, nb)
    if not released:
        raise CourseError(f"the answer keys in {answers} have no check cells: add check(\"<id>\", ...) cells")
    return Course(answers, homework, keys, released, course_digest)


def digest(answers: Path, keys: dict[str, nbformat.NotebookNode]) -> str:
    """12 hex digits over questions.toml, every key's code cells and hw3's grader version."""
    from .results import GRADER_VERSION

    sha = hashlib.sha256(GRADER_VERSION.encode())
    sha.update((Path(answers) / SPEC_FILE).read_bytes())
    for name in sorted(keys):
        sha.update(name.encode())
        for cell in keys[name].cells:
            if cell.cell_type == "code":
                sha.update(b"\0" + cell_source(cell).encode())
    return sha.hexdigest()[:12]
