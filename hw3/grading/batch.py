"""Grading a whole course: which submissions a run grades, grading them in parallel, storing each result.

A batch is the list of submissions on the command line, one per student (a notebook, or a folder with one
student's notebooks), sorted by student name. `find_submissions` reads each one once through the intake
(`intake.read_batch`: every file vetted before it is read) and refuses bad input before anything is graded;
`shard` keeps the i-th of N parts, a student's part being a hash of the name (a late submission moves no one); `plan` skips every submission whose stored
report is current (same contents, same grader version) and, for `--regrade`, regrades only the named
questions of the others; `run` grades what is left in `jobs` threads (each submission's work happens in its
kernel subprocesses) and commits every report to the store the moment it is done, so an interrupted batch
loses only the submissions in flight.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from hw3.errors import HW3Error

from . import grader
from .exercises.base import describe_exception, one_line
from .exercises.registry import Homework
from .grader import Settings, grade_submission  # noqa: F401 (the grade function `hw3 grade` passes to run)
from .intake import IntakeError, Submission, read_batch
from .kernel.sandbox import GIB
from .reports.names import shown
from .results import GRADER_VERSION, Report
from .store import Store

GradeFunction = Callable[[Submission, Settings], Report]
ALL = frozenset({"all"})
"""`--regrade all`: every question, a full regrade."""


class BatchError(HW3Error):
    """The batch cannot start as given; the one-line message names the fix."""


@dataclass(frozen=True)
class Task:
    """One grading job: the submission, the questions to grade (None: all), the report to merge them into, and
    the answer key's answers for this student (`answer_key.answers`)."""

    submission: Submission
    only: frozenset[str] | None = None
    stored: Report | None = None
    expected: dict = field(default_factory=dict, compare=False)


@dataclass
class Outcome:
    """What a run did: submissions graded now, reports reused from the store, whether Ctrl-C stopped it."""

    graded: int = 0
    reused: int = 0
    interrupted: bool = False


def find_submissions(paths: list[Path]) -> list[Submission]:
    """The batch, each submission read once (`intake.read_batch`), sorted by student; BatchError for a missing
    path, an empty folder, two students' notebooks in one folder, or two submissions with the same student name
    (a path given twice counts once)."""
    try:
        return read_batch(paths)
    except IntakeError as exc:
        raise BatchError(str(exc)) from None


def parse_shard(text: str) -> tuple[int, int]:
    """`i/N` (1 ≤ i ≤ N) as (i, N); ValueError naming the fix."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard {text!r} is not i/N with 1 ≤ i ≤ N: shards are numbered 1/N to N/N")
    return int(match[1]), int(match[2])


def shard_of(student: str, count: int) -> int:
    """The shard (1 to `count`) of `student`: a hash of the name alone, so that adding, removing or renaming
    another submission never moves this one to another shard."""
    digest = hashlib.sha256(student.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def shard(submissions: list[Submission], index: int, count: int) -> list[Submission]:
    """Part `index` (1-based) of `count` of the batch: the students whose `shard_of` is `index`."""
    return [sub for sub in submissions if shard_of(sub.student, count) == index]


def parse_regrade(text: str, homework: Homework) -> frozenset[str]:
    """`q4.3b,q4.4a` (question ids) or `all`; ValueError naming the fix."""
    if text.strip() == "all":
        return ALL
    ids = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(ids - set(homework.by_id))
    if unknown or not ids:
        raise ValueError(f"--regrade {text!r}: {', '.join(unknown) or 'no question'} is not a question id: pass ids "
                         f"from {homework.source} ({', '.join(q.id for q in homework.questions[:3])}, ...) or all")
    return ids


NEEDED_GB = 0.6
"""Memory one grading job needs. The grader runs one process at a time beside itself (the corpus prefill, the
answer keys' kernels, the student's kernels, the verifier), and holds no torch: the Q4 notebook's kernel (torch,
transformers, the bundled BERT, its training, the grader's probes) holds the floor. A submission of both answer
keys earns all its points in a 464 MiB cgroup and loses some in 448 MiB (`benchmarks/bench_grading_memory.py`);
0.6 GiB leaves a third more, and fits Gradescope's default 768 MB container. With less, the kernel of the OS
kills kernels mid-notebook, and the students would lose points for it."""


def too_little_memory() -> str | None:
    """Why this machine (or container) cannot grade fairly, naming the fix; None when it can."""
    available = available_memory() / GIB
    if available >= NEEDED_GB:
        return None
    return (f"only {available:.2g} GiB of memory is available and grading one submission needs about "
            f"{NEEDED_GB:g} GiB (the Q4 notebook's kernel, with torch and BERT, beside the grader): free memory, or "
            f"give the container more (on Gradescope, a larger container in the autograder settings)")


def default_jobs(memory_gb: float) -> int:
    """Submissions to grade at once: the CPUs, and no more kernels than available memory holds at
    `memory_gb` each (0: no limit); at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if memory_gb <= 0:
        return cpus
    return max(1, min(cpus, int(available_memory() // (memory_gb * GIB))))


def available_memory() -> int:
    """Bytes of memory available to new kernels (the host's, capped by a cgroup limit: `memory.host_available`)."""
    from hw3.sentiment.memory import host_available

    return host_available()


def plan(submissions: list[Submission], store: Store, regrade: frozenset[str] | None) -> tuple[list[Task], int]:
    """(what to grade, how many stored reports are reused): a submission with a current stored report is
    reused, or with --regrade has those questions regraded into it; every other one is graded in full."""
    tasks, reused = [], 0
    for sub in submissions:
        stored = store.current(sub.student, sub.digest)
        if stored is None or regrade == ALL:
            tasks.append(Task(sub))
        elif regrade:
            tasks.append(Task(sub, regrade, stored))
        else:
            reused += 1
    return tasks, reused


def crashed(sub: Submission, exc: Exception, settings: Settings) -> Report:
    """The report of a submission the grader crashed on: every automatic question failed, the reason noted."""
    note = one_line(f"grading crashed ({describe_exception(exc)}): report it to the course staff")
    return grader.failed_report(sub.path, "the grader crashed on this submission (see the note)", note, settings)


def merge_questions(stored: Report, new: Report, only: frozenset[str]) -> Report:
    """`stored` with the questions in `only` replaced by `new`'s; notes added, CPU time summed."""
    fresh = {q.id: q for q in new.questions if q.id in only}
    notes = stored.notes + [n for n in new.notes if n not in stored.notes]
    return replace(stored, submission=new.submission, questions=[fresh.get(q.id, q) for q in stored.questions],
                   notes=notes, sandboxed=stored.sandboxed and new.sandboxed, seconds=stored.seconds + new.seconds)


def grade_task(task: Task, settings: Settings, grade: GradeFunction) -> Report:
    """Grade one task (from the submission as the intake read it) into the report to store; a grader crash
    becomes a report."""
    sub = task.submission
    try:
        report = grade(sub, replace(settings, only=task.only, expected=task.expected))
    except Exception as exc:  # a grader bug must not cost the other students their grades
        report = crashed(sub, exc, settings)
    report = replace(report, submission=str(sub.path), student=sub.student, digest=sub.digest,
                     grader_version=GRADER_VERSION)
    return merge_questions(task.stored, report, task.only) if task.stored and task.only else report


def _parallel(tasks: list[Task], work: Callable[[Task, int], Report], jobs: int) -> Iterator[Report]:
    """work(task) for every task in `jobs` daemon threads, yielded as each finishes. An exception that is not
    an Exception (KeyboardInterrupt) is re-raised here; closing the iterator abandons the tasks in flight
    (daemon threads do not keep the process alive, and a kernel whose grader exits stops with it)."""
    todo: queue.SimpleQueue[Task] = queue.SimpleQueue()
    done: queue.SimpleQueue[Report | BaseException] = queue.SimpleQueue()
    stop = threading.Event()
    for task in tasks:
        todo.put(task)

    def worker(slot: int) -> None:
        while not stop.is_set():
            try:
                task = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put(work(task, slot))
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: the main thread decides
                done.put(exc)
                stop.set()

    for slot in range(min(jobs, len(tasks))):
        threading.Thread(target=worker, args=(slot,), daemon=True).start()
    try:
        for _ in tasks:
            result = _wait(done)
            if isinstance(result, BaseException):
                raise result
            yield result
    finally:
        stop.set()


def _wait(done: queue.SimpleQueue) -> object:
    """The next finished result; polls so that Ctrl-C interrupts the wait at once."""
    while True:
        try:
            return done.get(timeout=0.2)
        except queue.Empty:
            continue


def with_answers(tasks: list[Task], settings: Settings) -> list[Task]:
    """The tasks with the answer key's answers for their students' questions (`answer_key.answers`: one run of
    each key for the whole batch); KeyFailed when a key cannot answer."""
    from .answer_key import answers

    if not tasks:
        return tasks
    print(f"hw3 grade: running the answer keys for {len(tasks)} submission(s)", file=sys.stderr, flush=True)
    found = answers(settings.course, settings, {task.submission.student: task.only for task in tasks})
    return [replace(task, expected=found[task.submission.student]) for task in tasks]


def run(tasks: list[Task], store: Store, settings: Settings, *, grade: GradeFunction, jobs: int,
        on_done: Callable[[Report], None] = lambda report: None) -> Outcome:
    """Grade `tasks`, `jobs` at a time, committing each report to `store` as it finishes; Ctrl-C stops the
    run (Outcome.interrupted) with everything finished already stored."""
    outcome = Outcome()
    results = _parallel(tasks, lambda task, slot: grade_task(task, replace(settings, slot=slot), grade), jobs)
    try:
        for report in results:
            store.put(report)
            outcome.graded += 1
            on_done(report)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        results.close()
    return outcome


def current_reports(submissions: list[Submission], store: Store) -> list[Report]:
    """The stored reports of the batch that are current, in batch order (sorted by student)."""
    found = (store.current(sub.student, sub.digest) for sub in submissions)
    return [report for report in found if report is not None]


class Progress:
    """Reports each finished submission: a tqdm bar with an ETA on a terminal (and the submission's table on
    stdout), else one line per submission on stderr."""

    def __init__(self, total: int, table: Callable[[Report], str], stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.total, self.count, self.table, self.stream = total, 0, table, stream
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="submission", file=stream, dynamic_ncols=True)

    def __call__(self, report: Report) -> None:
        """One more submission is graded."""
        self.count += 1
        if self.bar is not None:
            self.bar.write(self.table(report) + "\n", file=sys.stdout)
            self.bar.update()
            return
        print(self.table(report) + "\n", flush=True)
        print(f"graded {shown(report.student)} ({self.count} of {self.total}): {report.total:g} / "
              f"{report.max_total:g}", file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar (a no-op without one)."""
        if self.bar is not None:
            self.bar.close()
