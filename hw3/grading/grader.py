"""Grading one submission: execute it, re-check every exercise in a grader-owned cell, score each question.

A submission is one student's work: a notebook, or a folder with the student's notebooks when the
homework comes in several (here Questions 1–3 and Question 4). Each submitted notebook is matched to the
released notebook whose check cells it shares, executed in a kernel of its own, and re-checked by the
grader's final cell (see `audit`): points never come from what a notebook printed. A question earns its
points when its check cell is the untouched one of the released notebook, no cell of its part of the
notebook failed (raised, hung or stopped the kernel), and the final re-check passed. Manual questions
are listed with status "manual" and 0 automatic points. A re-check that hangs or stops the kernel costs
its own question only: the notebook runs again for the questions after it (`recheck`). Kernels run
under `sandbox.Limits` (memory, output) and leave no process behind.
"""

from __future__ import annotations

import os
import secrets
import site
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import nbformat

from .audit import PACKAGE_ROOT, AuditResult, final_cell, parse_results
from .execute import Execution, execute
from .notebook import (CheckCall, NotebookError, cell_source, check_calls, fingerprint, notebook_paths,
                       read_notebook, regions)
from .points import QUESTIONS, Question, max_total
from .sandbox import Limits

DEFAULT_TIMEOUT = 600.0


class Released(NamedTuple):
    """A released notebook as grading needs it: its check calls by question id, its code cells' fingerprints."""

    checks: dict[str, CheckCall]
    cells: frozenset[str]


Reference = dict[str, Released]
"""Released notebook name -> what grading needs of it."""


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
    """The grade of one submission; `student` names its row in the CSV."""

    submission: str
    student: str
    questions: list[QuestionResult]
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(q.points for q in self.questions)

    def to_dict(self) -> dict:
        """The documented JSON shape: questions, total, max_total (plus submission and notes)."""
        return {"submission": self.submission, "questions": [asdict(q) for q in self.questions],
                "total": self.total, "max_total": max_total(), "notes": self.notes}


def load_reference(folder: Path) -> Reference:
    """The check cells of the released notebooks under `folder`, per notebook."""
    if not Path(folder).is_dir():
        raise ReferenceNotebookError(f"no reference notebooks folder at {folder}: run from the repository root "
                                     f"or pass --reference DIR")
    reference: Reference = {}
    first: dict[str, tuple[Path, CheckCall]] = {}
    for path in notebook_paths(Path(folder)):
        try:
            cells = read_notebook(path).cells
        except NotebookError as exc:
            raise ReferenceNotebookError(str(exc)) from None
        checks: dict[str, CheckCall] = {}
        for call in check_calls(cells):
            origin, known = first.setdefault(call.qid, (path, call))
            if known.fingerprint != call.fingerprint:
                raise ReferenceNotebookError(f"{origin} and {path} have different check cells for {call.qid}: "
                                             f"run `hw3 assign` to regenerate them")
            checks.setdefault(call.qid, call)
        if checks:
            code = frozenset(fingerprint(cell_source(c)) for c in cells if c.cell_type == "code")
            reference[path.name] = Released(checks, code)
    if not reference:
        raise ReferenceNotebookError(f"the notebooks under {folder} have no check cells: pass --reference with "
                                     f"the released notebooks")
    return reference


def best_match(calls: list[CheckCall], reference: Reference) -> str | None:
    """The released notebook sharing the most check ids with a submitted notebook (None if none shares any)."""
    ids = {c.qid for c in calls}
    shared = {name: len(ids & released.checks.keys()) for name, released in reference.items()}
    name = max(shared, key=shared.__getitem__)
    return name if shared[name] else None


def match_reference(calls: list[CheckCall],
                    expected: dict[str, CheckCall]) -> tuple[dict[str, CheckCall], dict[str, str]]:
    """Split the expected questions into ({id: the notebook's untouched call}, {id: why it is unusable})."""
    valid: dict[str, CheckCall] = {}
    problems: dict[str, str] = {}
    for qid, reference_call in expected.items():
        mine = [c for c in calls if c.qid == qid]
        untouched = [c for c in mine if c.fingerprint == reference_call.fingerprint]
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
    """Everything grading learnt about one notebook; each of its questions is scored from it.

    `untouched` holds the cells that are exactly as released: when one of them fails (a demo cell that
    uses an earlier, unsolved exercise), it costs no points by itself. A failing cell the student wrote
    or changed costs the question whose part of the notebook it is in.
    """

    problems: dict[str, str] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    untouched: set[int] = field(default_factory=set)
    regions: dict[str, range] = field(default_factory=dict)
    results: dict[str, list[AuditResult]] = field(default_factory=dict)
    final_error: str | None = None
    blamed: dict[str, str] = field(default_factory=dict)  # questions whose re-check hung or stopped the kernel

    def reason(self, qid: str) -> str | None:
        """Why question `qid` earns nothing, or None when it earns its points."""
        if qid in self.problems:
            return self.problems[qid]
        region = self.regions.get(qid, range(0))
        own = [i for i in region if i in self.failures and i not in self.untouched]
        if own:
            return self.failures[own[0]]
        outcome = self.results.get(qid, [])
        if not outcome:
            return self.blamed.get(qid) or self.final_error or "the grader's final check gave no result"
        if len(outcome) > 1:
            return "the final check reported conflicting results: the notebook tampered with the grader"
        result = outcome[0]
        if result.passed:
            return None
        if result.defined:
            return result.message
        # the cell that should have defined it: the last one before the check cell that failed for its own
        # reason (not for a missing name in turn)
        causes = [i for i in region[:-1] if i in self.failures and " raised NameError" not in self.failures[i]]
        if causes:
            return f"{result.message}, because {self.failures[causes[-1]]}"
        return f"{result.message}: run (or restore) the cell that defines it"

    def notes(self) -> list[str]:
        """Failures that cost no question by themselves, and why the final check did not run."""
        graded = {i for cells in self.regions.values() for i in cells}
        notes = [message for i, message in sorted(self.failures.items()) if i in self.untouched or i not in graded]
        return notes + ([self.final_error] if self.final_error else [])


FINAL_RETRIES = 2


@dataclass
class Rechecks:
    """The grader's re-checks of one notebook: the first run's cells, every result, who broke the final cell."""

    execution: Execution
    results: dict[str, list[AuditResult]]
    blamed: dict[str, str]
    final_error: str | None


def recheck(nb: nbformat.NotebookNode, calls: dict[str, CheckCall], timeout: float, limits: Limits) -> Rechecks:
    """Run `nb` and re-check `calls` in its kernel.

    When one re-check hangs the grader's cell or stops the kernel (`os._exit` in a checked function),
    that question takes the blame and the notebook runs again for the questions after it (at most
    FINAL_RETRIES more runs), so one broken function does not cost the other questions their points.
    """
    pending = list(calls.items())
    results: dict[str, list[AuditResult]] = {}
    blamed: dict[str, str] = {}
    first: Execution | None = None
    for _ in range(FINAL_RETRIES + 1):
        nonce = secrets.token_hex(16)
        source = final_cell([(qid, call.arguments) for qid, call in pending], nonce, timeout)
        with tempfile.TemporaryDirectory(prefix="hw3-grade-", ignore_cleanup_errors=True) as workdir:
            execution = execute(nb, source, timeout=timeout, final_timeout=timeout * len(pending) + 60,
                                cwd=Path(workdir), env=kernel_env(), limits=limits,
                                skip=first.broken if first else None)
        first = first or execution
        found = parse_results(execution.final_outputs, nonce)
        results.update(found)
        unanswered = [qid for qid, _ in pending if qid not in found]
        if not (execution.final_broken and unanswered):
            break
        blamed[unanswered[0]] = execution.final_error
        pending = [(qid, call) for qid, call in pending if qid in unanswered[1:]]
        if not pending:
            break
    unresolved = [qid for qid in calls if qid not in results and qid not in blamed]
    return Rechecks(first, results, blamed, execution.final_error if unresolved else None)


def grade_notebook(nb: nbformat.NotebookNode, released: Released, timeout: float,
                   limits: Limits = Limits()) -> tuple[dict[str, str | None], list[str]]:
    """({question id: why it earns nothing, or None} for the released notebook's questions, notes)."""
    valid, problems = match_reference(check_calls(nb.cells), released.checks)
    checks = recheck(nb, valid, timeout, limits) if valid else Rechecks(Execution(), {}, {}, None)
    untouched = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and fingerprint(c.source) in released.cells}
    findings = Findings(problems, checks.execution.failures, untouched, regions(list(valid.values())),
                        checks.results, checks.final_error, checks.blamed)
    return {qid: findings.reason(qid) for qid in released.checks}, findings.notes()


def score(q: Question, reasons: dict[str, str | None], missing: Callable[[str], str]) -> QuestionResult:
    """The result of one question: its reason from grading, or `missing(id)` when no notebook covered it."""
    if q.kind == "manual":
        return QuestionResult(q.id, 0, q.max_points, "manual", "graded by hand")
    reason = reasons[q.id] if q.id in reasons else missing(q.id)
    if reason:
        return QuestionResult(q.id, 0, q.max_points, "failed", reason)
    return QuestionResult(q.id, q.max_points, q.max_points, "passed")


def student_name(submission: Path) -> str:
    """The student's name in the CSV: the notebook's stem, or the folder's name."""
    return submission.name if submission.is_dir() else submission.stem


def failed_report(submission: Path, summary: str, reason: str) -> Report:
    """Every auto question failed with `summary`; `reason` goes to the notes."""
    questions = [score(q, {}, lambda qid: summary) for q in QUESTIONS]
    return Report(str(submission), student_name(submission), questions, [reason])


def grade(submission: Path, reference: Reference, timeout: float = DEFAULT_TIMEOUT,
          limits: Limits = Limits()) -> Report:
    """Grade a notebook, or a folder of one student's notebooks (never raises for a bad notebook).

    `timeout` bounds each cell and each re-check; `limits` bounds each kernel's memory and outputs.
    """
    submission = Path(submission)
    paths = notebook_paths(submission) if submission.is_dir() else [submission]
    reasons: dict[str, str | None] = {}
    unusable = [] if paths else [f"{submission} has no notebooks"]
    notes: list[str] = []
    graded_by: dict[str, str] = {}
    for path in paths:
        label = f"{path.name}: " if submission.is_dir() else ""
        try:
            nb = read_notebook(path)
        except NotebookError as exc:
            unusable.append(str(exc))
            continue
        name = best_match(check_calls(nb.cells), reference)
        if name is None:
            unusable.append(f"{path.name} has no check cells of the hw3 notebooks: it is not an hw3 homework notebook")
        elif name in graded_by:
            notes.append(f"{path.name} was not graded: {graded_by[name]} already answers {name}")
        else:
            graded_by[name] = path.name
            found, more = grade_notebook(nb, reference[name], timeout, limits)
            reasons.update(found)
            notes.extend(label + note for note in more)
    home = {qid: name for name, released in reference.items() for qid in released.checks}

    def missing(qid: str) -> str:
        if qid not in home:
            return f"the reference notebooks have no check cell for {qid}"
        if unusable:
            return f"no usable notebook has the check cells of {home[qid]} (see the notes)"
        return f"not submitted: no notebook has the check cells of {home[qid]}"

    questions = [score(q, reasons, missing) for q in QUESTIONS]
    return Report(str(submission), student_name(submission), questions, unusable + notes)
