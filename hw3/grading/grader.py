"""Grading one submission: run it in a sandboxed kernel, probe every exercise, score in this process.

A submission is one student's work: a notebook, or a folder with the student's notebooks when the
homework comes in several (here Questions 1–3 and Question 4). Each submitted notebook is matched to the
released notebook whose check cells it shares, privately copied, and executed in a sandboxed kernel of its
own (`sandbox`, `execute`) whose hw3 has no reference solutions (`withheld`). The grader then appends one
cell (`harness`) that calls the student's objects on inputs the grader drew from the course key, the
student and the question (`exercise.seeded_rng`), and prints plain JSON data; the points are computed here,
in the grader's process, by each exercise's scorer against the reference. Nothing the notebook prints,
writes or patches reaches a score except the values it returns for those inputs.

A question is scored when its check cell is the untouched one of the released notebook and the objects
it names exist; a probe that hangs or stops the kernel costs its own question only (the notebook runs
again for the questions after it). Manual questions are listed with their rubric, or as "not answered"
when the answer cell still holds the placeholder.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import nbformat

from . import intake
from .assign import ANSWER_PLACEHOLDER
from .exercises.base import one_line, seeded_rng
from .exercises.checks import SCORING, score_safely
from .exercises.registry import BY_ID, QUESTIONS, Question
from .intake import Submission, student_name
from .kernel import sandbox as sandboxing
from .kernel import withheld
from .kernel.execute import Budget, Execution, Launch, execute
from .kernel.harness import final_cell
from .notebook import CheckCall, NotebookError, cell_source, check_calls, fingerprint, regions
from .results import GRADER_VERSION, QuestionResult, Report

DEFAULT_TIMEOUT = 600.0
FINAL_RETRIES = 2
NO_SANDBOX_NOTE = "graded with --no-sandbox: the notebook ran unconfined, as the grader's user"


class Released(NamedTuple):
    """A released notebook as grading needs it: its check calls by question id, its code cells' fingerprints."""

    checks: dict[str, CheckCall]
    cells: frozenset[str]


Reference = dict[str, Released]
"""Released notebook name -> what grading needs of it."""


class ReferenceNotebookError(Exception):
    """The reference notebooks cannot tell what the check cells should be; one-line message."""


@dataclass(frozen=True)
class Settings:
    """How to grade: the released notebooks, time and memory limits, the sandbox, the course key.

    `only` restricts grading to those question ids (a regrade); `feature_cache` is a folder of precomputed
    BERT features shared read-only into every sandbox; `slot` picks the sandbox uid of a parallel job;
    `submission_timeout` is the wall-clock budget of one whole submission (`execute.Budget`).
    """

    reference: Path = Path("notebooks")
    timeout: float = DEFAULT_TIMEOUT
    memory_gb: float = sandboxing.DEFAULT_MEMORY_GB
    sandbox: bool = True
    key: bytes = b""
    only: frozenset[str] | None = None
    feature_cache: Path | None = None
    slot: int = 0
    submission_timeout: float = sandboxing.DEFAULT_SUBMISSION_TIMEOUT
    budget: Budget | None = None  # the submission's, made by grade_submission

    @property
    def limits(self) -> sandboxing.Limits:
        return sandboxing.Limits(memory_gb=self.memory_gb)


def load_reference(folder: Path) -> Reference:
    """The check cells of the released notebooks under `folder`, per notebook."""
    if not Path(folder).is_dir():
        raise ReferenceNotebookError(f"no reference notebooks folder at {folder}: run from the repository root "
                                     f"or pass --reference DIR")
    reference: Reference = {}
    first: dict[str, tuple[Path, CheckCall]] = {}
    try:
        notebooks = intake.released(Path(folder).resolve())
    except NotebookError as exc:
        raise ReferenceNotebookError(str(exc)) from None
    for path, nb in notebooks:
        cells = nb.cells
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


@dataclass
class Findings:
    """Everything grading learnt about one notebook; each of its questions is scored from it.

    `untouched` holds the cells that are exactly as released: when one of them fails (a demo cell that
    uses an earlier, unsolved exercise), it is noted but costs nothing. A question is scored from its probe
    whenever the probe returned data; otherwise the reason names the cause (an edited check cell, a
    failing cell of its part of the notebook, a probe that hung).
    """

    problems: dict[str, str]
    failures: dict[int, str]
    untouched: set[int]
    regions: dict[str, range]
    probed: "Probed"
    final_error: str | None = None

    def reason(self, qid: str) -> str | None:
        """Why question `qid` cannot be scored from its probe's data, or None when it can."""
        if qid in self.problems:
            return self.problems[qid]
        if qid in self.probed.outputs:
            return None
        error = self.probed.errors.get(qid)
        if error is None:
            return self.probed.blamed.get(qid) or self.final_error or "the grader's probe gave no result"
        message = one_line(str(error.get("error", "no result")))
        if error.get("defined", True) is not False:
            return message
        # the cell that should have defined it: the last one before the check cell that failed for its own
        # reason (not for a missing name in turn)
        region = self.regions.get(qid, range(0))
        causes = [i for i in region[:-1] if i in self.failures and " raised NameError" not in self.failures[i]]
        if causes:
            return one_line(f"{message}, because {self.failures[causes[-1]]}")
        return one_line(f"{message}: run (or restore) the cell that defines it")

    def notes(self) -> list[str]:
        """The cells that failed (but for released cells that used a withheld reference), and why the probes
        did not run."""
        notes = [message for i, message in sorted(self.failures.items())
                 if not (i in self.untouched and "withheld while grading" in message)]
        return notes + ([self.final_error] if self.final_error else [])


@lru_cache(maxsize=4)
def _reference(folder: str) -> Reference:
    return load_reference(Path(folder))


@lru_cache(maxsize=1)
def grading_build() -> Path:
    """The grading build of hw3 (references withheld) and the sandbox's passwd files, made once per process in
    a private folder (removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="hw3-build-", dir=short_tmp()))
    atexit.register(shutil.rmtree, root, True)
    withheld.build(root)
    sandboxing.user_files(root, sandboxing.SANDBOX_UID)
    for path in (root / "etc", *(root / "etc").iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def short_tmp() -> str:
    """A temporary folder with a short path: unix socket paths must stay under 108 bytes."""
    folder = tempfile.gettempdir()
    return folder if len(folder) <= 40 else "/tmp"


@dataclass
class Probed:
    """What the probes of one notebook gave: {qid: outputs}, {qid: why there are none}, the first run, notes."""

    outputs: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict] = field(default_factory=dict)
    blamed: dict[str, str] = field(default_factory=dict)
    execution: Execution = field(default_factory=Execution)
    final_error: str | None = None


MAX_RESULTS_BYTES = 64 * 2**20


def read_results(folder: Path, nonce: str) -> tuple[dict[str, list[dict]], list[str]]:
    """({question id: [its result records]}, the ids whose probe started) from the harness's file.

    The file is the kernel's: it is opened without following links or blocking, must be a regular file,
    and is read up to MAX_RESULTS_BYTES; lines without the run's nonce, or that are not JSON objects with a
    string id, are ignored.
    """
    found: dict[str, list[dict]] = {}
    started: list[str] = []
    try:
        fd = os.open(folder / f"{nonce}.jsonl", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return found, started
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return found, started
        data = file.read(MAX_RESULTS_BYTES)
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.startswith(nonce + " "):
            continue
        try:
            record = json.loads(line[len(nonce) + 1:])
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            if record.get("started") is True:
                started.append(record["id"])
            else:
                found.setdefault(record["id"], []).append(record)
    return found, started


def launch_for(settings: Settings, private: Path, sockets: Path, home: Path, bounded: bool = False) -> Launch:
    """How this notebook's kernels start: sandboxed (the default) or, with --no-sandbox, only limited;
    `bounded`: the socket folder is a tmpfs of the disk limit's size (`sandbox.mount_limited`)."""
    uid = sandboxing.SANDBOX_UID + settings.slot
    build = grading_build()
    if not settings.sandbox:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "HW3_SOCKETS": str(sockets),
               "PYTHONPATH": str(build), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HW3_OFFLINE": "1",
               "HW3_CACHE": str(home / ".cache"), "OMP_NUM_THREADS": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        if settings.feature_cache:
            env["HW3_FEATURE_CACHE"] = str(settings.feature_cache)
        return Launch(settings.limits, None, uid, env)
    mounts = sandboxing.Mounts(build, withheld.PACKAGE_DIR, sockets, private, settings.feature_cache)
    return Launch(settings.limits, mounts, uid, sandboxing.sandbox_env(mounts), bounded)


def probe_notebook(nb: nbformat.NotebookNode, path: Path, calls: dict[str, CheckCall], inputs: dict[str, dict],
                   settings: Settings) -> Probed:
    """Run `nb` in its sandbox and probe `calls` there, retrying without a probe that hangs or kills the kernel."""
    probed = Probed()
    pending = list(calls)
    first: Execution | None = None
    uid = sandboxing.SANDBOX_UID + settings.slot
    with tempfile.TemporaryDirectory(prefix="hw3-grade-", dir=short_tmp(), ignore_cleanup_errors=True) as scratch:
        private = sandboxing.private_folder(f"{scratch}/copy-", uid)
        copy = private / path.name
        copy.write_text(nbformat.writes(nb), encoding="utf-8")
        if sandboxing.is_root():
            os.chown(copy, uid, uid)
        for _ in range(FINAL_RETRIES + 1):
            nonce = secrets.token_hex(16)
            requests = [{"id": qid, "arguments": calls[qid].arguments, "inputs": inputs[qid]} for qid in pending]
            sockets = sandboxing.private_folder(f"{scratch}/sockets-", uid)
            home = sandboxing.private_folder(f"{scratch}/home-", uid)
            bounded = settings.sandbox and sandboxing.mount_limited(sockets, settings.limits.disk_bytes, uid)
            try:
                execution = execute(nb, final_cell(requests, nonce, settings.timeout, str(sockets)),
                                    timeout=settings.timeout, final_timeout=settings.timeout * len(pending) + 60,
                                    launch=launch_for(settings, copy, sockets, home, bounded),
                                    skip=first.broken if first else None, budget=settings.budget)
                found, started = read_results(sockets, nonce)
            finally:
                if bounded:
                    sandboxing.unmount(sockets)
            shutil.rmtree(sockets, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            first = first or execution
            for qid, records in found.items():
                if qid not in pending:
                    continue
                if len(records) > 1:
                    probed.errors[qid] = {"error": "the probe reported conflicting results: the notebook tampered "
                                                   "with the grader's cell"}
                elif "outputs" in records[0]:
                    probed.outputs[qid] = records[0]["outputs"]
                else:
                    probed.errors[qid] = records[0]
            unanswered = [qid for qid in pending if qid not in probed.outputs and qid not in probed.errors]
            if not (execution.final_broken and unanswered):
                break
            culprit = next((q for q in reversed(started) if q in unanswered), unanswered[0])
            probed.blamed[culprit] = execution.final_error
            pending = [q for q in unanswered if q != culprit]
            if not pending:
                break
    probed.execution = first or Execution()
    unresolved = [q for q in calls if q not in probed.outputs and q not in probed.errors and q not in probed.blamed]
    probed.final_error = execution.final_error if unresolved else None
    return probed


def grade_notebook(nb: nbformat.NotebookNode, path: Path, released: Released, student: str,
                   settings: Settings) -> tuple[dict[str, QuestionResult], list[str]]:
    """({question id: its result} for the released notebook's questions that are graded, notes)."""
    valid, problems = match_reference(check_calls(nb.cells), released.checks)
    wanted = [q for q in released.checks if settings.only is None or q in settings.only]
    valid = {q: c for q, c in valid.items() if q in wanted}
    with SCORING:  # some inputs build small torch models: no draw of another job's scorer may interleave
        inputs = {qid: BY_ID[qid].exercise.grader_inputs(seeded_rng(settings.key, student, qid)) for qid in valid}
    probed = probe_notebook(nb, path, valid, inputs, settings) if valid else Probed()
    untouched = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and fingerprint(c.source) in released.cells}
    findings = Findings(problems, probed.execution.failures, untouched, regions(list(valid.values())), probed,
                        probed.final_error)
    results = {}
    for qid in wanted:
        q = BY_ID[qid]
        reason = findings.reason(qid)
        results[qid] = (QuestionResult.failed(qid, q.title, q.max_points, reason) if reason else
                        score_safely(qid, inputs[qid], probed.outputs[qid]))
    return results, findings.notes()


def written_answers(nb: nbformat.NotebookNode) -> dict[str, bool]:
    """{manual question id: answered?} for the answer cells of a notebook (marked by `hw3 assign`)."""
    out = {}
    for cell in nb.cells:
        qid = cell.get("metadata", {}).get("hw3", {}).get("answer") if cell.cell_type == "markdown" else None
        if isinstance(qid, str) and qid in BY_ID:
            out[qid] = ANSWER_PLACEHOLDER not in cell_source(cell)
    return out


def manual_result(q: Question, answered: dict[str, bool]) -> QuestionResult:
    """A manual question: to be graded by hand against its rubric, or "not answered"."""
    if answered.get(q.id) is False:
        return QuestionResult(q.id, q.title, 0.0, q.max_points, "not answered", "not answered: the answer cell "
                              "still holds the placeholder", rubric=q.rubric)
    return QuestionResult(q.id, q.title, 0.0, q.max_points, "manual", "graded by hand", rubric=q.rubric)


def failed_report(submission: Path, summary: str, reason: str, settings: Settings = Settings()) -> Report:
    """Every auto question failed with `summary`; `reason` goes to the notes."""
    questions = [manual_result(q, {}) if q.kind == "manual" else QuestionResult.failed(q.id, q.title, q.max_points, summary)
                 for q in QUESTIONS]
    notes = [reason] + ([] if settings.sandbox else [NO_SANDBOX_NOTE])
    return Report(str(submission), student_name(submission), questions, notes, settings.sandbox, GRADER_VERSION)


def grade_submission(submission: Submission | Path, settings: Settings = Settings()) -> Report:
    """Grade one student's submission, as read by the intake (a path is read first), from its notebooks as read:
    nothing here opens a submitted file again. Never raises for a bad notebook."""
    started = time.monotonic()
    settings = replace(settings, budget=Budget(settings.submission_timeout))
    if not isinstance(submission, Submission):
        submission = intake.read_submission(Path(submission))
    reference = _reference(str(Path(settings.reference).resolve()))
    student = submission.student
    results: dict[str, QuestionResult] = {}
    answered: dict[str, bool] = {}
    unusable = list(submission.problems)
    notes: list[str] = []
    graded_by: dict[str, str] = {}
    for notebook in submission.notebooks:
        label = f"{notebook.name}: " if submission.folder else ""
        name = best_match(list(notebook.calls), reference)
        if name is None:
            unusable.append(f"{notebook.name} has no check cells of the hw3 notebooks: it is not an hw3 homework "
                            f"notebook")
        elif name in graded_by:
            notes.append(f"{notebook.name} was not graded: {graded_by[name]} already answers {name}")
        else:
            graded_by[name] = notebook.name
            found, more = grade_notebook(notebook.nb, Path(notebook.name), reference[name], student, settings)
            results.update(found)
            answered.update(written_answers(notebook.nb))
            notes.extend(label + note for note in more)
    home = {qid: name for name, released in reference.items() for qid in released.checks}

    def missing(q: Question) -> QuestionResult:
        if q.id not in home:
            reason = f"the reference notebooks have no check cell for {q.id}"
        elif unusable:
            reason = f"no usable notebook has the check cells of {home[q.id]} (see the notes)"
        else:
            reason = f"not submitted: no notebook has the check cells of {home[q.id]}"
        return QuestionResult.failed(q.id, q.title, q.max_points, reason)

    questions = [manual_result(q, answered) if q.kind == "manual" else results.get(q.id) or missing(q)
                 for q in QUESTIONS if settings.only is None or q.id in settings.only or q.kind == "manual"]
    all_notes = unusable + notes + ([] if settings.sandbox else [NO_SANDBOX_NOTE])
    return Report(str(submission.path), student, questions, all_notes, settings.sandbox, GRADER_VERSION,
                  submission.digest, round(time.monotonic() - started, 3))
