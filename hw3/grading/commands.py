"""The `hw3 assign` and `hw3 grade` subcommands, added to the main CLI by `register(subparsers)`.

Each handler takes the parsed arguments and returns the exit code, like the rest of `hw3`: 0 when the
job ran (students may still fail), 1 when `hw3 assign --check` finds out-of-date notebooks or the input
is wrong (a missing file, a broken answer key), 2 for usage errors (argparse). Errors are printed as one
line on stderr, never as a traceback. `hw3 grade --help` states this contract (GRADE_EPILOG).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hw3.errors import format_error

from .autograder import register as register_autograder
from .exercises.checks import PUBLIC_FILE
from .kernel.sandbox import CELL_BYTES, DEFAULT_MEMORY_GB, DEFAULT_SUBMISSION_TIMEOUT, MAX_NOTEBOOK_MB

if TYPE_CHECKING:
    from . import batch
    from .course import Course
    from .grader import Settings
    from .results import Report

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_STORE = "grades.sqlite"

GRADE_EPILOG = f"""\
exit status:
  0  grading ran: every submission has a report (students may still have failed,
     and a broken, hostile or foreign notebook is graded 0 with its reason)
  1  bad input: a missing submission or --answers folder, a folder without
     notebooks or with two students' notebooks, answer keys without check
     cells or a broken questions.toml, an output file that cannot be written, a --manual sheet
     that cannot be merged, a store written by another grader version
  2  usage error: unknown option, bad --timeout, --submission-timeout,
     --memory-gb, --jobs, --shard or --regrade, an option that is also a file
     (give the submissions after --: hw3 grade [OPTIONS] -- submissions/*)
  130 interrupted (Ctrl-C): what was graded is stored; run the same command
     again to grade the rest

Each notebook runs in its own sandboxed kernel (bubblewrap: no network, nothing of the
grader's visible, an unprivileged user; --no-sandbox only where it cannot start) with
--timeout per cell, --submission-timeout for the whole submission, --memory-gb of memory
and at most {CELL_BYTES // 2**20} MiB of messages to the grader per cell; everything it starts
dies with it. Points are computed outside the kernel from
the values its functions return on inputs drawn from the course key (--key-file).
A notebook file over {MAX_NOTEBOOK_MB} MB is not run (clear its outputs).

Every report is committed to the --store file as soon as it is graded, keyed by
student with the digest of the submitted notebooks: running the same command again
grades only new or changed submissions. --json, --csv and --gradescope are written
from the store when the batch ends. `hw3 merge-grades` combines the stores of --shard runs."""

def refuse_option_files(parser: argparse.ArgumentParser, command: str, example: str) -> None:
    """Make `parser` refuse, before parsing, an option-looking argument that is also an existing path, unless it
    comes after `--`: a shell glob (`hw3 grade *`) in a folder holding a student's file named `--no-sandbox`
    must not change how the batch is graded. The one-line error (exit 2) names the file and the safe form."""
    parse = parser.parse_known_args

    def guarded(args=None, namespace=None):
        given = list(sys.argv[1:] if args is None else args)
        before = given[:given.index("--")] if "--" in given else given
        for word in before:
            if word.startswith("-") and word != "-" and os.path.lexists(word):
                from .reports.names import shown

                print(format_error(command, f"{shown(word)} is both an option and a file here (a submission named "
                                            f"like an option?): put -- before the submissions, e.g. {example}"),
                      file=sys.stderr)
                raise SystemExit(EXIT_USAGE)
        return parse(args, namespace)

    parser.parse_known_args = guarded


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `assign`, `grade` and `merge-grades` to the CLI; each parser's `handler` default is its handler."""
    assign = subparsers.add_parser(
        "assign", help="generate the student notebooks and their checks from the answer keys",
        description="Write notebooks/ from answers/ (solution regions become stubs, answers become placeholders, "
                    "outputs are cleared) and run the answer keys on the public inputs, storing their answers "
                    "with hw3 for the notebooks' check cells. Running it twice gives identical files.")
    assign.add_argument("--answers", type=Path, default=Path("answers"), metavar="DIR",
                        help="folder of answer-key notebooks and questions.toml (default: answers)")
    assign.add_argument("--notebooks", type=Path, default=Path("notebooks"), metavar="DIR",
                        help="folder of student notebooks to write (default: notebooks)")
    assign.add_argument("--checks", type=Path, default=None, metavar="FILE",
                        help="the public checks file to write (default: the one inside this hw3 package, when it "
                             "is the checkout that holds --answers)")
    assign.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each file that is out of date, each question without a "
                             "check cell, and each sub-test the grader fails an answer key on")
    assign.add_argument("--timeout", type=_positive_seconds, default=600.0, metavar="SECONDS",
                        help="time limit for each cell of the answer keys (default: 600)")
    assign.set_defaults(handler=run_assign)

    grade = subparsers.add_parser(
        "grade", help="grade submitted notebooks", epilog=GRADE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-execute each submission in a fresh kernel, re-run every check, and report points\n"
                    "per question. A submission is one student's notebook, or a folder with one student's\n"
                    "notebooks when the homework comes in several.")
    grade.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION",
                       help="a student's .ipynb file, or a folder with one student's notebooks (put -- before them "
                            "when they come from a glob: hw3 grade [OPTIONS] -- submissions/*)")
    refuse_option_files(grade, "grade", "hw3 grade --json grades.json -- submissions/*")
    _output_options(grade)
    grade.add_argument("--timeout", type=_positive_seconds, default=600.0, metavar="SECONDS",
                       help="time limit for each cell and each check (default: 600)")
    grade.add_argument("--submission-timeout", type=_positive_seconds, default=DEFAULT_SUBMISSION_TIMEOUT,
                       metavar="SECONDS", help=f"time limit for a whole submission: all its notebooks, cells, reruns "
                                               f"and checks (default: {DEFAULT_SUBMISSION_TIMEOUT:g})")
    grade.add_argument("--memory-gb", type=_memory_gb, default=DEFAULT_MEMORY_GB, metavar="GIB",
                       help=f"memory limit of each notebook's kernel in GiB: an allocation past it fails inside "
                            f"the notebook instead of exhausting the machine (default: {DEFAULT_MEMORY_GB:g}; "
                            f"0: no limit)")
    grade.add_argument("--answers", type=Path, default=Path("answers"), metavar="DIR",
                       help="the answer keys and questions.toml: what every exercise is scored against, and whose "
                            "released check cells submissions must keep (default: answers)")
    grade.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                       help="submissions graded at once (default: the CPUs, and no more kernels than the "
                            "available memory holds at --memory-gb each)")
    grade.add_argument("--store", type=Path, default=None, metavar="FILE",
                       help=f"SQLite file of the batch's results, reused and extended by later runs (default: "
                            f"{DEFAULT_STORE} in the current folder; grades-I-of-N.sqlite with --shard I/N)")
    grade.add_argument("--shard", metavar="I/N",
                       help="grade only part I of N (1 ≤ I ≤ N) of the submissions sorted by student name")
    grade.add_argument("--regrade", metavar="IDS",
                       help="regrade these questions (comma-separated ids, e.g. q4.3b,q4.4a) for every "
                            "submission and merge them into its stored report; all: regrade everything")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run kernels without the bubblewrap sandbox (only where it cannot start; every report "
                            "says so)")
    grade.add_argument("--student", metavar="NAME",
                       help="grade the one SUBMISSION as this student (whose name draws its inputs; default: the "
                            "notebook's stem or the folder's name); Gradescope's run_autograder passes the user id")
    grade.add_argument("--key-file", type=Path, metavar="FILE",
                       help="the course key that seeds every student's inputs (default: $HW3_GRADING_KEY or "
                            "./.hw3-grading-key, created on first use)")
    grade.set_defaults(handler=run_grade)

    merge = subparsers.add_parser(
        "merge-grades", help="combine the results stores of `hw3 grade --shard` runs",
        description="Read the --store files of several `hw3 grade` runs (the shards of one batch) and write "
                    "their reports, sorted by student, as one store and/or the outputs `hw3 grade` writes. "
                    "With --batch, a student of the batch missing from every store, or graded from other "
                    "contents than the batch holds now, is refused by name. Exit 0 when written, 1 for a "
                    "missing, foreign, conflicting or incomplete store, 2 for usage errors.")
    merge.add_argument("stores", nargs="+", type=Path, metavar="STORE", help="a --store file of `hw3 grade`")
    refuse_option_files(merge, "merge-grades", "hw3 merge-grades --csv grades.csv -- results/*.sqlite")
    _output_options(merge)
    merge.add_argument("--store", type=Path, default=None, metavar="FILE", help="write the merged store")
    merge.add_argument("--batch", nargs="+", type=Path, metavar="SUBMISSION",
                       help="the batch's submissions, as given to `hw3 grade` (after the stores): every student "
                            "must be in a store, graded from what the submission holds now")
    merge.add_argument("--answers", type=Path, default=Path("answers"), metavar="DIR",
                       help="the answer keys and questions.toml: the manual questions, and the keys the summary "
                            "compares solutions with (default: answers)")
    merge.set_defaults(handler=run_merge)
    register_autograder(subparsers)


def _output_options(parser: argparse.ArgumentParser) -> None:
    """The outputs written from the results (`outputs.add_options`)."""
    from .outputs import add_options

    add_options(parser)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _memory_gb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB (0 for no limit)")
    return value


def _fail(command: str, message: str, code: int = EXIT_FAILED) -> int:
    """Print the one-line error in the format of every hw3 command (`hw3.errors.format_error`); return `code`."""
    print(format_error(command, message), file=sys.stderr)
    return code


def run_assign(args: argparse.Namespace) -> int:
    """`hw3 assign [--check]`."""
    from hw3.atomic import write_text_atomic

    from .answer_key import public_checks
    from .assign import out_of_date, write
    from .course import load_course
    from .grader import Settings
    from .kernel.sandbox import available
    from .release import key_marks, notebooks, render_checks, stale_checks, unchecked

    course = load_course(args.answers)
    args.checks = args.checks or _package_checks(args.answers)
    problems = unchecked(course)
    expected = notebooks(course, args.notebooks)
    sandboxed = available() is None
    if not sandboxed:
        print(f"hw3 assign: note: the answer keys run without the grading sandbox ({available()})", file=sys.stderr)
    settings = Settings(course, args.timeout, sandbox=sandboxed, feature_cache=_corpus_features(course))
    checks = public_checks(course, settings)
    if args.check:
        problems += [f"{path} is out of date with {args.answers}: run `hw3 assign`" for path in out_of_date(expected)]
        stale = stale_checks(_read_json(args.checks), checks)
        if stale:
            problems.append(f"{args.checks} is out of date with {args.answers} ({', '.join(stale)}): run `hw3 assign`")
        problems += key_marks(course, settings, checks)
        for problem in problems:
            print(f"hw3 assign: {problem}", file=sys.stderr)
        if problems:
            return EXIT_FAILED
        print(f"{args.notebooks} and {args.checks} are up to date with {args.answers}, and the grader gives the "
              f"answer keys full marks")
        return EXIT_OK
    if problems:
        return _fail("assign", problems[0])
    try:
        written = write(expected)
        if stale_checks(_read_json(args.checks), checks):
            write_text_atomic(args.checks, render_checks(checks))
            written.append(args.checks)
    except OSError as exc:
        return _fail("assign", f"cannot write {exc.filename} ({exc.strerror})")
    for path in written:
        print(f"wrote {path}")
    print(f"{len(expected) + 1 - len(written)} of {len(expected) + 1} files were already up to date")
    return EXIT_OK


def _package_checks(answers: Path) -> Path:
    """The public checks file inside this hw3 package, when its checkout holds `answers` (the course repository);
    else an HW3Error asking for --checks (a course elsewhere must not write into an installed package)."""
    from hw3.errors import HW3Error

    if PUBLIC_FILE.parents[3] / "answers" == answers.resolve():
        return PUBLIC_FILE
    raise HW3Error(f"{answers} is not the answers folder of the checkout this hw3 runs from "
                   f"({PUBLIC_FILE.parents[3]}): pass --checks FILE for its public checks")


def _read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when it is missing or unreadable."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store_path(args: argparse.Namespace, shard: tuple[int, int] | None) -> Path:
    """--store, or the default: grades.sqlite, grades-I-of-N.sqlite for a shard."""
    if args.store is not None:
        return args.store
    return Path(f"grades-{shard[0]}-of-{shard[1]}.sqlite") if shard else Path(DEFAULT_STORE)


def run_grade(args: argparse.Namespace) -> int:
    """`hw3 grade [OPTIONS] [--] SUBMISSION...` (see `register` for the options)."""
    try:
        return _grade_batch(args)
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the batch: what was stored stays stored
        return _fail("grade", "interrupted: everything graded so far is in the store; run the same command "
                              "again to finish", EXIT_INTERRUPTED)


def _grade_batch(args: argparse.Namespace) -> int:
    """The body of `run_grade`: check the input, grade what the store lacks, write the outputs."""
    from . import batch
    from .course import load_course
    from .grader import Settings
    from .kernel.sandbox import available
    from .key import key_path, load_key
    from .outputs import Outputs

    course = load_course(args.answers)
    try:
        shard = batch.parse_shard(args.shard) if args.shard else None
        regrade = batch.parse_regrade(args.regrade, course.homework) if args.regrade else None
    except ValueError as exc:
        return _fail("grade", str(exc), EXIT_USAGE)
    everyone = batch.find_submissions(args.submissions)
    if args.student is not None:
        if len(everyone) != 1 or not args.student.strip():
            return _fail("grade", "--student names the student of one submission: give one SUBMISSION and a "
                                  "non-empty name", EXIT_USAGE)
        everyone = [dataclasses.replace(everyone[0], student=args.student.strip())]
    submissions = batch.shard(everyone, *shard) if shard else everyone
    store_path, outputs = _store_path(args, shard), Outputs.from_args(args, course)
    outputs.check([store_path], [sub.student for sub in everyone], len(submissions))
    if not args.no_sandbox and (reason := available()):
        return _fail("grade", reason)
    if reason := batch.too_little_memory():
        return _fail("grade", reason)
    try:
        key = load_key(key_path(args.key_file))
    except OSError as exc:
        return _fail("grade", str(exc))
    settings = Settings(course, args.timeout, args.memory_gb, sandbox=not args.no_sandbox, key=key,
                        feature_cache=_corpus_features(course), submission_timeout=args.submission_timeout)
    reports, outcome = _grade_into(store_path, submissions, settings, regrade,
                                   args.jobs or batch.default_jobs(args.memory_gb), shard)
    outputs.write(reports, submissions)
    if outcome.interrupted:
        return _fail("grade", f"interrupted: {len(reports)} of {len(submissions)} submissions are graded and "
                              f"stored in {store_path}; run the same command again to grade the rest",
                     EXIT_INTERRUPTED)
    return EXIT_OK


def _corpus_features(course: "Course") -> Path | None:
    """The shared, read-only BERT features of the grading corpus (computed once, in a process of its own: torch
    and BERT never load into the grader), when the answer keys compute them; None otherwise, or when they cannot
    be made here (no bundled encoder): notebooks then compute their own."""
    from .exercises.base import one_line
    from .kernel.corpus import prefill_apart
    from .notebook import cell_source

    if not any("cache_features(" in cell_source(cell) for nb in course.keys.values() for cell in nb.cells):
        return None
    try:
        return prefill_apart()
    except Exception as exc:  # a missing encoder or cache folder only costs speed
        print(f"hw3 grade: note: the corpus features are not shared ({one_line(str(exc), 200)}): each notebook "
              f"computes its own", file=sys.stderr)
        return None


def _grade_into(store_path: Path, submissions: list["batch.Submission"], settings: "Settings",
                regrade: frozenset[str] | None, jobs: int,
                shard: tuple[int, int] | None = None) -> tuple[list[Report], "batch.Outcome"]:
    """Grade what the store at `store_path` lacks (StoreError when it cannot be used), marking it as `shard`'s;
    the batch's current reports from the store afterwards, and what the run did."""
    from . import batch
    from .reports.report import table
    from .store import Store

    with Store(store_path, adopt=regrade == batch.ALL) as store:
        if shard:
            store.mark_shard(*shard)
        tasks, reused = batch.plan(submissions, store, regrade)
        tasks = batch.with_answers(tasks, settings)
        if reused:
            print(f"hw3 grade: note: {reused} unchanged submissions keep their reports from {store_path}", file=sys.stderr)
        progress = batch.Progress(len(tasks), table)
        try:
            outcome = batch.run(tasks, store, settings, grade=batch.grade_submission, jobs=jobs, on_done=progress)
        finally:
            progress.close()
        return batch.current_reports(submissions, store), outcome


def run_merge(args: argparse.Namespace) -> int:
    """`hw3 merge-grades STORE... [--batch SUBMISSION...] [--store FILE] [--answers DIR] [outputs, as hw3 grade]`."""
    from .batch import find_submissions
    from .course import load_course
    from .outputs import Outputs
    from .store import check_complete, merge, write_rows

    outputs = Outputs.from_args(args, load_course(args.answers))
    if not outputs.asked() and args.store is None:
        return _fail("merge-grades", "nothing to write: pass --json, --csv, --gradescope, --feedback, --summary, "
                                     "--manual-template or --store FILE", EXIT_USAGE)
    rows = merge(args.stores)
    submissions = find_submissions(args.batch) if args.batch else []
    if args.batch:
        check_complete(rows, submissions, args.stores)
    students = [sub.student for sub in submissions] or [row.student for row in rows]
    outputs.check([args.store] if args.store else [], students, len(rows))
    if args.store is not None:
        try:
            write_rows(args.store, rows)
        except OSError as exc:
            return _fail("merge-grades", f"cannot write {args.store} ({exc.strerror})")
    outputs.write([row.report for row in rows], submissions or _stored_submissions(rows))
    return EXIT_OK


def _stored_submissions(rows: list) -> list["batch.Submission"]:
    """The submissions the merged reports were graded from, read again (through the intake) where they are still
    there with the same contents: what the summary compares when no --batch is given."""
    from .intake import IntakeError, read_submission

    found = []
    for row in rows:
        try:
            sub = read_submission(Path(row.report.submission))
        except IntakeError:
            continue
        if sub.digest == row.digest:
            found.append(sub)
    return found
