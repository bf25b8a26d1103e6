"""Grading one submission: execute it, re-check every exercise in a grader-owned cell, score each question.

Points come only from the final cell (see `audit`), never from what the notebook printed. A question
earns its points when its check cell is the untouched one from the reference notebooks, no cell of its
part of the notebook failed (raised, hung or stopped the kernel), and the final re-check passed.
Manual questions are listed with status "manual" and 0 automatic points.
"""

from __future__ import annotations

import os
import secrets
import site
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .audit import PACKAGE_ROOT, final_cell, parse_results
from .execute import Execution, execute
from .notebook import CheckCall, NotebookError, check_calls, read_notebook, regions
from .points import QUESTIONS, Question, max_total

DEFAULT_TIMEOUT = 600.0


class ReferenceNotebookError(Exception):
    """The reference notebooks cannot tell what the check cells should be; one-line message."""


@dataclass
class QuestionResult:
    """One row of a report."""

    id: str
    points: float
    max_points: float
    status: str  # "passed", "failed" or "manual"
    message: str = ""


@dataclass
class Report:
    """The grade of one submission."""

    submission: str
    questions: list[QuestionResult]
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(q.points for q in self.questions)

    def to_dict(self) -> dict:
        """The documented JSON shape: questions, total, max_total (plus submission and notes)."""
        return {"submission": self.submission, "questions": [asdict(q) for q in self.questions],
                "total": self.total, "max_total": max_total(), "notes": self.notes}


def load_reference(folder: Path) -> dict[str, CheckCall]:
    """{question id: its untouched check call} from the released notebooks under `folder`."""
    if not Path(folder).is_dir():
        raise ReferenceNotebookError(f"no reference notebooks folder at {folder}: run from the repository root "
                                     f"or pass --reference DIR")
    reference: dict[str, CheckCall] = {}
    origin: dict[str, Path] = {}
    for path in sorted(p for p in Path(folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts):
        try:
            calls = check_calls(read_notebook(path).cells)
        except NotebookError as exc:
            raise ReferenceNotebookError(str(exc)) from None
        for call in calls:
            known = reference.setdefault(call.qid, call)
            origin.setdefault(call.qid, path)
            if known.fingerprint != call.fingerprint:
                raise ReferenceNotebookError(f"{origin[call.qid]} and {path} have different check cells for "
                                             f"{call.qid}: run `hw3 assign` to regenerate them")
    if not reference:
        raise ReferenceNotebookError(f"the notebooks under {folder} have no check cells: pass --reference with "
                                     f"the released notebooks")
    return reference


def match_reference(calls: list[CheckCall],
                    reference: dict[str, CheckCall]) -> tuple[dict[str, CheckCall], dict[str, str]]:
    """Split the reference questions into ({id: the submission's untouched call}, {id: why it is unusable})."""
    valid: dict[str, CheckCall] = {}
    problems: dict[str, str] = {}
    for qid, expected in reference.items():
        mine = [c for c in calls if c.qid == qid]
        untouched = [c for c in mine if c.fingerprint == expected.fingerprint]
        if untouched:
            valid[qid] = untouched[0]
        elif mine:
            problems[qid] = (f"the check cell of {qid} (cell {mine[0].cell + 1}) was edited: restore it from the "
                             f"original notebook")
        else:
            problems[qid] = f"the check cell of {qid} is missing: copy it back from the original notebook"
    return valid, problems


def kernel_env() -> dict[str, str]:
    """The kernel's environment: this one, offline, able to import the grader's hw3 package."""
    env = dict(os.environ)
    site_dirs = {os.path.realpath(p) for p in (*site.getsitepackages(), site.getusersitepackages())}
    if PACKAGE_ROOT not in site_dirs:  # a source checkout: the kernel starts elsewhere, so point at it
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HW3_OFFLINE="1")
    return env


@dataclass
class Findings:
    """Everything grading learnt about one submission; each question is scored from it."""

    reference: set[str]
    problems: dict[str, str] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    regions: dict[str, range] = field(default_factory=dict)
    results: dict[str, list[tuple[bool, str]]] = field(default_factory=dict)
    final_error: str | None = None

    def reason(self, qid: str) -> str | None:
        """Why auto question `qid` earns nothing, or None when it earns its points."""
        if qid not in self.reference:
            return f"the reference notebooks have no check cell for {qid}"
        if qid in self.problems:
            return self.problems[qid]
        failed_cells = [i for i in self.regions.get(qid, ()) if i in self.failures]
        if failed_cells:
            return self.failures[failed_cells[0]]
        outcome = self.results.get(qid, [])
        if not outcome:
            return self.final_error or "the grader's final check gave no result"
        if len(outcome) > 1:
            return "the final check reported conflicting results: the notebook tampered with the grader"
        passed, message = outcome[0]
        return None if passed else message


def score(q: Question, findings: Findings) -> QuestionResult:
    """The result of one question."""
    if q.kind == "manual":
        return QuestionResult(q.id, 0, q.max_points, "manual", "graded by hand")
    reason = findings.reason(q.id)
    if reason:
        return QuestionResult(q.id, 0, q.max_points, "failed", reason)
    return QuestionResult(q.id, q.max_points, q.max_points, "passed")


def failed_report(name: str, summary: str, reason: str) -> Report:
    """Every auto question failed with `summary` (an unreadable or foreign notebook); `reason` goes to the notes."""
    findings = Findings({q.id for q in QUESTIONS}, problems={q.id: summary for q in QUESTIONS})
    return Report(name, [score(q, findings) for q in QUESTIONS], [reason])


def grade(path: Path, reference: dict[str, CheckCall], timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Grade one submission notebook against the reference check cells (never raises for a bad notebook)."""
    name = str(path)
    try:
        nb = read_notebook(path)
    except NotebookError as exc:
        return failed_report(name, "the notebook could not be read (see the note)", str(exc))
    calls = check_calls(nb.cells)
    if not calls:
        return failed_report(name, "the notebook has no check cells",
                             f"{Path(path).name} has no check cells: it is not an hw3 homework notebook")
    valid, problems = match_reference(calls, reference)
    execution = Execution()
    nonce = secrets.token_hex(16)
    if valid:
        source = final_cell([(qid, call.arguments) for qid, call in valid.items()], nonce, timeout)
        with tempfile.TemporaryDirectory(prefix="hw3-grade-", ignore_cleanup_errors=True) as workdir:
            execution = execute(nb, source, timeout=timeout, final_timeout=timeout * len(valid) + 60,
                                cwd=Path(workdir), env=kernel_env())
    findings = Findings(set(reference), problems, execution.failures, regions(list(valid.values())),
                        parse_results(execution.final_outputs, nonce), execution.final_error)
    graded = {i for cells in findings.regions.values() for i in cells}
    notes = [message for i, message in sorted(execution.failures.items()) if i not in graded]
    if execution.final_error:
        notes.append(execution.final_error)
    return Report(name, [score(q, findings) for q in QUESTIONS], notes)
