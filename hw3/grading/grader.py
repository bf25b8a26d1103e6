"""Grading one submission: run it in a sandboxed kernel, probe every exercise, score it against the answer key.

A submission is one student's work: a notebook, or a folder with the student's notebooks when the
homework comes in several (here Questions 1–3 and Question 4). Each submitted notebook is matched to the
released notebook whose check cells it shares, privately copied, and executed in a sandboxed kernel of its
own (`kernel.sandbox`, `kernel.execute`) whose hw3 has no reference solutions (`kernel.withheld`). The grader
then appends one cell (`kernel.harness`) that calls the student's objects on this student's inputs, which the
answer key's kernel drew from the course key, the student and the question (`answer_key`), and prints plain
JSON data; the points are computed here, in the grader's process, by comparing that data with the answer key's
outputs on the same inputs (`exercises.checks.score_safely`). Nothing the notebook prints, writes or patches
reaches a score except the values it returns for those inputs.

A question is scored when its check cell is the untouched one of the released notebook and the objects
it names exist; a probe that hangs or stops the kernel costs its own question only (the notebook runs
again for the questions after it). Manual questions are listed with their rubric, or as "not answered"
when the answer cell still holds the placeholder.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import nbformat

from . import intake
from .assign import ANSWER_PLACEHOLDER
from .course import Course, Released
from .exercises.base import Exercise, one_line
from .exercises.checks import score_safely
from .exercises.registry import Question
from .intake import Submission, student_name
from .kernel import sandbox as sandboxing
from .kernel import verifier, withheld
from .kernel.execute import Budget, Execution, Launch, execute
from .kernel.harness import MAX_HANDOVER_BYTES, final_cell, handover_name, read_regular, read_results
from .notebook import CheckCall, cell_source, fingerprint, regions
from .results import GRADER_VERSION, QuestionResult, Report

DEFAULT_TIMEOUT = 600.0
FINAL_RETRIES = 2
NO_SANDBOX_NOTE = "graded with --no-sandbox: the notebook ran unconfined, as the grader's user"


@dataclass(frozen=True)
class Settings:
    """How to grade: the course (homework, answer keys, released notebooks), time and memory limits, the sandbox,
    the course key.

    `only` restricts grading to those question ids (a regrade); `feature_cache` is a folder of precomputed
    BERT features shared read-only into every sandbox; `slot` picks the sandbox uid of a parallel job;
    `expected` holds the answer key's {"inputs", "outputs", "mistakes"} for this student, by question id;
    `submission_timeout` is the wall-clock budget of one whole submission (`execute.Budget`).
    """

    course: Course | None = None
    timeout: float = DEFAULT_TIMEOUT
    memory_gb: float = sandboxing.DEFAULT_MEMORY_GB
    sandbox: bool = True
    key: bytes = b""
    only: frozenset[str] | None = None
    feature_cache: Path | None = None
    slot: int = 0
    submission_timeout: float = sandboxing.DEFAULT_SUBMISSION_TIMEOUT
    budget: Budget | None = None  # the submission's, made by grade_submission
    expected: dict[str, dict] = field(default_factory=dict, compare=False)

    @property
    def limits(self) -> sandboxing.Limits:
        return sandboxing.Limits(memory_gb=self.memory_gb)


def best_match(calls: list[CheckCall], released: dict[str, Released]) -> str | None:
    """The released notebook sharing the most check ids with a submitted notebook (None if none shares any)."""
    ids = {c.qid for c in calls}
    shared = {name: len(ids & notebook.checks.keys()) for name, notebook in released.items()}
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


_BUILDING = threading.Lock()


def build(withheld_functions: frozenset[tuple[str, frozenset[str]]]) -> Path:
    """A build of hw3 (without `withheld_functions`: {(module, qualified names)}) and the sandbox's passwd files,
    made once per process and set of withheld functions (the grading threads wait for the first to make it),
    in a private folder (removed at exit)."""
    with _BUILDING:
        return _build(withheld_functions)


@lru_cache(maxsize=4)
def _build(withheld_functions: frozenset[tuple[str, frozenset[str]]]) -> Path:
    """`build`, made once per set of withheld functions."""
    root = Path(tempfile.mkdtemp(prefix="hw3-build-", dir=short_tmp()))
    atexit.register(shutil.rmtree, root, True)
    withheld.build(root, {module: set(names) for module, names in withheld_functions})
    sandboxing.user_files(root, sandboxing.SANDBOX_UID)
    for path in (root / "etc", *(root / "etc").iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def grading_build(course: Course) -> Path:
    """The build student notebooks run with: the homework's reference solutions withheld."""
    return build(frozenset((module, frozenset(names)) for module, names in course.homework.withheld().items()))


def key_build() -> Path:
    """The build the answer keys run with: nothing withheld."""
    return build(frozenset())


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
    verified: dict[str, dict] = field(default_factory=dict)  # the grader's own checks of the handed-over files


def launch_for(settings: Settings, hw3_build: Path, private: Path, sockets: Path, home: Path,
               bounded: bool = False) -> Launch:
    """How a notebook's kernels start: sandboxed (the default) or, with --no-sandbox, only limited;
    `bounded`: the socket folder is a tmpfs of the disk limit's size (`sandbox.mount_limited`)."""
    uid = sandboxing.SANDBOX_UID + settings.slot
    if not settings.sandbox:
        env = sandboxing.kernel_env(hw3_build, str(home), settings.feature_cache, os.environ.get("PATH", ""))
        return Launch(settings.limits, None, uid, {**env, "HW3_SOCKETS": str(sockets)})
    mounts = sandboxing.Mounts(hw3_build, withheld.PACKAGE_DIR, sockets, private, settings.feature_cache)
    return Launch(settings.limits, mounts, uid, sandboxing.sandbox_env(mounts), bounded)


@dataclass
class Run:
    """One execution of a notebook and its final cell: what the notebook's cells did, the final cell's records
    ({request id: records}), the ids whose probe started, and the files the probes handed over ({id: a private
    copy})."""

    execution: Execution
    found: dict[str, list[dict]]
    started: list[str]
    handed: dict[str, Path] = field(default_factory=dict)


class Runner:
    """Runs one notebook, privately copied, in fresh kernels (`execute`) with a final cell of requests; each run
    starts from clean socket and home folders."""

    def __init__(self, nb: nbformat.NotebookNode, name: str, settings: Settings, hw3_build: Path,
                 scratch: str) -> None:
        self.nb, self.settings, self.build, self.scratch = nb, settings, hw3_build, scratch
        self.uid = sandboxing.SANDBOX_UID + settings.slot
        private = sandboxing.private_folder(f"{scratch}/copy-", self.uid)
        self.copy = private / Path(name).name
        self.copy.write_text(nbformat.writes(nb), encoding="utf-8")
        if sandboxing.is_root():
            os.chown(self.copy, self.uid, self.uid)

    def run(self, requests: list[dict], final_timeout: float, key: bool = False,
            skip: dict[int, str] | None = None) -> Run:
        """Execute the notebook (skipping `skip`), then the harness cell answering `requests`."""
        settings = self.settings
        nonce = secrets.token_hex(16)
        sockets = sandboxing.private_folder(f"{self.scratch}/sockets-", self.uid)
        home = sandboxing.private_folder(f"{self.scratch}/home-", self.uid)
        bounded = settings.sandbox and sandboxing.mount_limited(sockets, settings.limits.disk_bytes, self.uid)
        try:
            execution = execute(self.nb, final_cell(requests, nonce, settings.timeout, str(sockets), key),
                                timeout=settings.timeout, final_timeout=final_timeout,
                                launch=launch_for(settings, self.build, self.copy, sockets, home, bounded), skip=skip,
                                budget=settings.budget)
            found, started = read_results(sockets, nonce)
            handed = self.keep_handed(sockets, nonce, [r["id"] for r in requests if "tag" not in r])
        finally:
            if bounded:
                sandboxing.unmount(sockets)
            shutil.rmtree(sockets, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
        return Run(execution, found, started, handed)

    def keep_handed(self, sockets: Path, nonce: str, ids: list[str]) -> dict[str, Path]:
        """Private copies of the files the probes handed over in `sockets` (regular files only, not followed
        through links, at most harness.MAX_HANDOVER_BYTES; anything else is as if nothing was handed over)."""
        kept = {}
        for qid in ids:
            data = read_regular(sockets / handover_name(nonce, qid), MAX_HANDOVER_BYTES)
            if data is not None:
                kept[qid] = Path(self.scratch) / f"handed-{secrets.token_hex(4)}.bin"
                kept[qid].write_bytes(data)
        return kept


def probe_notebook(nb: nbformat.NotebookNode, path: Path, calls: dict[str, CheckCall], settings: Settings) -> Probed:
    """Run `nb` in its sandbox and probe `calls` there on this student's inputs, retrying without a probe that
    hangs or kills the kernel; then check what the probes handed over in the grader's own process (`verify`)."""
    questions = settings.course.homework.by_id
    probed = Probed()
    pending = list(calls)
    handed: dict[str, Path] = {}
    first: Execution | None = None
    with tempfile.TemporaryDirectory(prefix="hw3-grade-", dir=short_tmp(), ignore_cleanup_errors=True) as scratch:
        runner = Runner(nb, path.name, settings, grading_build(settings.course), scratch)
        for _ in range(FINAL_RETRIES + 1):
            requests = [{"id": qid, "exercise": questions[qid].exercise_kind, "options": questions[qid].options,
                         "arguments": calls[qid].arguments, "inputs": settings.expected[qid]["inputs"]}
                        for qid in pending]
            run = runner.run(requests, settings.timeout * len(pending) + 60, skip=first.broken if first else None)
            execution = run.execution
            first = first or execution
            handed.update(run.handed)
            for qid, records in run.found.items():
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
            culprit = next((q for q in reversed(run.started) if q in unanswered), unanswered[0])
            probed.blamed[culprit] = execution.final_error
            pending = [q for q in unanswered if q != culprit]
            if not pending:
                break
        probed.verified = verify(probed, handed, settings, scratch)
    probed.execution = first or Execution()
    unresolved = [q for q in calls if q not in probed.outputs and q not in probed.errors and q not in probed.blamed]
    probed.final_error = execution.final_error if unresolved else None
    return probed


def grade_notebook(nb: nbformat.NotebookNode, calls: list[CheckCall], path: Path, released: Released,
                   settings: Settings) -> tuple[dict[str, QuestionResult], list[str]]:
    """({question id: its result} for the released notebook's questions that are graded, notes); `calls` are the
    notebook's check calls, as the intake read them."""
    valid, problems = match_reference(calls, released.checks)
    wanted = [q for q in released.checks if settings.only is None or q in settings.only]
    valid = {q: c for q, c in valid.items() if q in wanted}
    probed = probe_notebook(nb, path, valid, settings) if valid else Probed()
    untouched = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and fingerprint(c.source) in released.cells}
    findings = Findings(problems, probed.execution.failures, untouched, regions(list(valid.values())), probed,
                        probed.final_error)
    results: dict[str, QuestionResult] = {}
    context: dict[str, str] = {}  # the status of each exercise kind scored so far (a later one may depend on it)
    for qid in wanted:
        q = settings.course.homework.by_id[qid]
        reason = findings.reason(qid)
        expected = {**settings.expected.get(qid, {}), "context": dict(context)}
        if qid in probed.verified:
            expected["verified"] = probed.verified[qid]
        results[qid] = (QuestionResult.failed(qid, q.title, q.max_points, reason) if reason else
                        score_safely(q, expected["inputs"], probed.outputs[qid], expected))
        context[q.exercise_kind] = results[qid].status
    return results, findings.notes()


def verify(probed: Probed, handed: dict[str, Path], settings: Settings, scratch: str) -> dict[str, dict]:
    """{question id: what the grader's own process found} for the probed questions whose exercise examines
    handed-over files (`Exercise.verify`), run once for the notebook in a sandbox of its own (`kernel.verifier`)."""
    questions = settings.course.homework.by_id
    wanted = [qid for qid in probed.outputs if type(questions[qid].exercise).verify is not Exercise.verify]
    if not wanted:
        return {}
    uid = sandboxing.SANDBOX_UID + settings.slot
    inbox = sandboxing.private_folder(f"{scratch}/verify-", uid)
    launch = launch_for(settings, key_build(), inbox, sandboxing.private_folder(f"{scratch}/sockets-", uid),
                        sandboxing.private_folder(f"{scratch}/home-", uid))
    items = [{"id": qid, "exercise": questions[qid].exercise_kind, "options": questions[qid].options,
              "inputs": settings.expected[qid]["inputs"], "outputs": probed.outputs[qid]} for qid in wanted]
    files = {questions[qid].exercise_kind: path for qid, path in handed.items()}
    return verifier.verify(items, files, launch, settings.timeout)


def written_answers(nb: nbformat.NotebookNode, questions: dict[str, Question]) -> dict[str, bool]:
    """{manual question id: answered?} for the answer cells of a notebook (marked by `hw3 assign`)."""
    out = {}
    for cell in nb.cells:
        qid = cell.get("metadata", {}).get("hw3", {}).get("answer") if cell.cell_type == "markdown" else None
        if isinstance(qid, str) and qid in questions:
            out[qid] = ANSWER_PLACEHOLDER not in cell_source(cell)
    return out


def manual_result(q: Question, answered: dict[str, bool]) -> QuestionResult:
    """A manual question: to be graded by hand against its rubric, or "not answered"."""
    if answered.get(q.id) is False:
        return QuestionResult(q.id, q.title, 0.0, q.max_points, "not answered", "not answered: the answer cell "
                              "still holds the placeholder", rubric=q.rubric)
    return QuestionResult(q.id, q.title, 0.0, q.max_points, "manual", "graded by hand", rubric=q.rubric)


def failed_report(submission: Path, summary: str, reason: str, settings: Settings) -> Report:
    """Every auto question failed with `summary`; `reason` goes to the notes."""
    questions = [manual_result(q, {}) if q.kind == "manual" else QuestionResult.failed(q.id, q.title, q.max_points, summary)
                 for q in settings.course.homework.questions]
    notes = [reason] + ([] if settings.sandbox else [NO_SANDBOX_NOTE])
    return Report(str(submission), student_name(submission), questions, notes, settings.sandbox, GRADER_VERSION)


def grade_submission(submission: Submission | Path, settings: Settings) -> Report:
    """Grade one student's submission, as read by the intake (a path is read first), from its notebooks as read:
    nothing here opens a submitted file again; `settings.expected` holds the answer key's answers for this student.
    Never raises for a bad notebook."""
    started = time.monotonic()
    settings = replace(settings, budget=Budget(settings.submission_timeout))
    if not isinstance(submission, Submission):
        submission = intake.read_submission(Path(submission))
    course = settings.course
    student = submission.student
    results: dict[str, QuestionResult] = {}
    answered: dict[str, bool] = {}
    unusable = list(submission.problems)
    notes: list[str] = []
    graded_by: dict[str, str] = {}
    for notebook in submission.notebooks:
        label = f"{notebook.name}: " if submission.folder else ""
        name = best_match(list(notebook.calls), course.released)
        if name is None:
            unusable.append(f"{notebook.name} has no check cells of the hw3 notebooks: it is not an hw3 homework "
                            f"notebook")
        elif name in graded_by:
            notes.append(f"{notebook.name} was not graded: {graded_by[name]} already answers {name}")
        else:
            graded_by[name] = notebook.name
            found, more = grade_notebook(notebook.nb, list(notebook.calls), Path(notebook.name), course.released[name],
                                         settings)
            results.update(found)
            answered.update(written_answers(notebook.nb, course.homework.by_id))
            notes.extend(label + note for note in more)
    home = course.home

    def missing(q: Question) -> QuestionResult:
        if q.id not in home:
            reason = f"the answer keys have no check cell for {q.id}"
        elif unusable:
            reason = f"no usable notebook has the check cells of {home[q.id]} (see the notes)"
        else:
            reason = f"not submitted: no notebook has the check cells of {home[q.id]}"
        return QuestionResult.failed(q.id, q.title, q.max_points, reason)

    questions = [manual_result(q, answered) if q.kind == "manual" else results.get(q.id) or missing(q)
                 for q in course.homework.questions if settings.only is None or q.id in settings.only or q.kind == "manual"]
    all_notes = unusable + notes + ([] if settings.sandbox else [NO_SANDBOX_NOTE])
    return Report(str(submission.path), student, questions, all_notes, settings.sandbox, GRADER_VERSION,
                  submission.digest, round(time.monotonic() - started, 3))
