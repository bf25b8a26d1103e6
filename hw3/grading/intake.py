"""The one intake of submissions: every file vetted before it is read, read once, kept as a `Submission`.

A batch's submissions come from students: their files, folders and names are hostile input. `read_submission`
looks at a path with `lstat` before anything opens it: a submission is a regular notebook file, or a folder
walked without following links (at most MAX_ENTRIES entries, MAX_DEPTH levels) whose `.ipynb` entries are
each vetted the same way (`notebook.read_regular`: regular files only, opened with O_NOFOLLOW | O_NONBLOCK,
size capped) and read once. What it reads becomes one immutable `Submission`: the student's name, the
digest of its bytes, each notebook without outputs and with its check calls parsed (`notebook.parse_cell`,
bounded), and one line per file that cannot be graded. Every later step (the batch plan, grading,
similarity) uses that value and never opens the student's files again.

A bad file costs its own submission (its notebook is listed as unusable, with the reason and the fix); only
what makes the batch itself ambiguous stops it before grading, with one line naming the path and the fix
(`IntakeError`): a missing path, a folder without notebooks or holding two students' work, two submissions of
one student.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nbformat

from hw3.errors import HW3Error

from .notebook import (CheckCall, NotebookError, check_calls, file_kind, parse_notebook, read_regular)
from .reports.names import shown

MAX_ENTRIES = 10_000  # files and folders a submission folder may hold
MAX_DEPTH = 8  # levels of folders under a submission folder
CHECKPOINTS = ".ipynb_checkpoints"  # Jupyter's own copies: never the submitted work


class IntakeError(HW3Error):
    """The batch cannot be graded as given; the one-line message names the path and the fix."""


@dataclass(frozen=True)
class Notebook:
    """One submitted notebook as read: its name within the submission, its cells (no outputs), its check calls."""

    name: str
    nb: nbformat.NotebookNode
    calls: tuple[CheckCall, ...]


@dataclass(frozen=True)
class Submission:
    """One student's submission, read once: the student's name, the path given, the digest of what was read,
    the notebooks that could be read, why the others cannot be graded (one line each), whether it is a folder."""

    student: str
    path: Path
    digest: str
    notebooks: tuple[Notebook, ...] = ()
    problems: tuple[str, ...] = ()
    folder: bool = False


def student_name(path: Path) -> str:
    """The student's name: the folder's name, or the notebook's stem (a link is not followed to tell which)."""
    path = Path(path)
    try:
        folder = stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        folder = False
    return path.name if folder else path.stem


def _entries(folder: Path) -> list[tuple[str, Path]]:
    """(name relative to `folder`, path) of every `.ipynb` entry that is not a folder, found without following
    links, in sorted order; IntakeError when the folder holds more than MAX_ENTRIES entries or MAX_DEPTH levels."""
    found: list[tuple[str, Path]] = []
    seen = 0
    pending: list[tuple[Path, int]] = [(folder, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as exc:
            raise IntakeError(f"cannot list {shown(current)} ({exc.strerror}): make the submission folder readable")
        seen += len(entries)
        if seen > MAX_ENTRIES:
            raise IntakeError(f"{shown(folder)} holds more than {MAX_ENTRIES} files: keep only the student's "
                              f"notebooks in it")
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != CHECKPOINTS and depth < MAX_DEPTH:
                    pending.append((Path(entry.path), depth + 1))
            elif entry.name.endswith(".ipynb"):
                found.append((Path(entry.path).relative_to(folder).as_posix(), Path(entry.path)))
    return sorted(found)


def _digest(parts: list[tuple[str, bytes | str]]) -> str:
    """sha256 over (name, contents) in sorted order: a file's bytes, or the kind of what could not be read
    (the same digest `store.digest` gave for the regular files of a submission)."""
    h = hashlib.sha256()
    for name, data in sorted(parts, key=lambda part: part[0]):
        if isinstance(data, bytes):
            h.update(f"{name}\0{len(data)}\0".encode())
            h.update(data)
        else:
            h.update(f"{name}\0{data}\0".encode())
    return h.hexdigest()


def _read_one(path: Path, name: str, label: str) -> tuple[bytes | str, Notebook | str]:
    """(what the digest takes, the Notebook or the one-line reason it cannot be graded, naming it `label`) of one
    notebook file. Reasons hold names as they are (data: every report shows them through `names.shown`)."""
    try:
        data = read_regular(path, label)
    except NotebookError as exc:
        return str(exc), str(exc)
    try:
        nb = parse_notebook(data, label)
    except NotebookError as exc:
        return data, str(exc)
    return data, Notebook(name, nb, tuple(check_calls(nb.cells)))


def read_submission(path: Path) -> Submission:
    """One submission, vetted and read once (see the module docstring); IntakeError when it is missing, is a
    folder without notebooks or holds two notebooks that answer the same question (two students' work)."""
    path = Path(path)
    student = student_name(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise IntakeError(f"no such file or folder: {shown(path)}") from None
    except OSError as exc:
        raise IntakeError(f"cannot read {shown(path)} ({exc.strerror}): make it readable by the grader") from None
    if stat.S_ISLNK(mode):
        return _unreadable(student, path, f"{path.name} is a symbolic link: submit the notebook or the "
                                          f"folder itself")
    if not stat.S_ISDIR(mode):
        if not stat.S_ISREG(mode):
            return _unreadable(student, path, f"{path.name} is {file_kind(mode)}, not a notebook file: "
                                              f"submit the .ipynb file itself")
        if path.suffix != ".ipynb":
            return _unreadable(student, path, f"{path.name} is not a notebook (.ipynb) file: submit the "
                                              f"notebook, or leave the file out of the batch")
        found = [(path.name, path)]
    else:
        found = _entries(path)
        if not found:
            raise IntakeError(f"{shown(path)} has no notebooks: add the student's .ipynb files or leave the folder out")
    prefix = f"{path.name}/" if stat.S_ISDIR(mode) else ""
    parts, notebooks, problems = [], [], []
    for name, file in found:
        digested, read = _read_one(file, name, prefix + name)
        parts.append((name, digested))
        (notebooks if isinstance(read, Notebook) else problems).append(read)
    submission = Submission(student, path, _digest(parts), tuple(notebooks), tuple(problems), stat.S_ISDIR(mode))
    _check_one_student(submission)
    return submission


def _unreadable(student: str, path: Path, reason: str) -> Submission:
    """A submission that is not a file or folder the grader may read: nothing but the reason."""
    return Submission(student, path, _digest([(path.name, reason)]), (), (reason,))


def _check_one_student(submission: Submission) -> None:
    """IntakeError when two notebooks of a folder answer the same question: two students' work in one folder."""
    seen: dict[str, str] = {}
    for notebook in submission.notebooks:
        for qid in sorted({call.qid for call in notebook.calls}):
            if qid in seen:
                raise IntakeError(f"{shown(submission.path / seen[qid])} and {shown(submission.path / notebook.name)} "
                                  f"both answer {shown(qid)}: a folder holds one student's notebooks, so move the "
                                  f"other student's into a folder of its own")
            seen[qid] = notebook.name


def read_batch(paths: list[Path]) -> list[Submission]:
    """Every submission of the batch, read once, sorted by student; IntakeError for a bad path (see
    `read_submission`) or two submissions of the same student (a path given twice counts once)."""
    by_student: dict[str, Submission] = {}
    for path in map(Path, paths):
        student = student_name(path)
        known = by_student.get(student)
        if known and os.path.realpath(known.path) != os.path.realpath(path):
            raise IntakeError(f"{shown(known.path)} and {shown(path)} are both student {shown(student)}: give "
                              f"each student one submission (rename one)")
        if not known:
            by_student[student] = read_submission(path)
    return [by_student[s] for s in sorted(by_student)]
