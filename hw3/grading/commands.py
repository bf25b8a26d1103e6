"""The `hw3 assign` and `hw3 grade` subcommands, added to the main CLI by `register(subparsers)`.

Each handler takes the parsed arguments and returns the exit code, like the rest of `hw3`: 0 when the
job ran (students may still fail), 1 when `hw3 assign --check` finds out-of-date notebooks or the input
is wrong (a missing file, a broken answer key), 2 for usage errors (argparse). Errors are printed as one
line on stderr, never as a traceback. `hw3 grade --help` states this contract (GRADE_EPILOG).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .sandbox import DEFAULT_MEMORY_GB, MAX_NOTEBOOK_MB, OUTPUT_LIMIT

EXIT_OK, EXIT_FAILED = 0, 1

GRADE_EPILOG = f"""\
exit status:
  0  grading ran: every submission has a report (students may still have failed,
     and a broken, hostile or foreign notebook is graded 0 with its reason)
  1  bad input: a missing submission or --reference folder, reference notebooks
     without check cells, an output file that cannot be written
  2  usage error: unknown option, bad --timeout or --memory-gb

Each notebook runs in its own kernel with --timeout per cell, --memory-gb of memory
and at most {OUTPUT_LIMIT} characters of output per cell; processes it starts are
killed after it. A notebook file over {MAX_NOTEBOOK_MB} MB is not run (clear its outputs)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `assign` and `grade` to the CLI; each parser's `handler` default is its handler function."""
    assign = subparsers.add_parser(
        "assign", help="generate the student notebooks from the answer keys",
        description="Write notebooks/ from answers/: solution regions become stubs, answers become "
                    "placeholders, outputs are cleared. Running it twice gives identical files.")
    assign.add_argument("--answers", type=Path, default=Path("answers"), metavar="DIR",
                        help="folder of answer-key notebooks (default: answers)")
    assign.add_argument("--notebooks", type=Path, default=Path("notebooks"), metavar="DIR",
                        help="folder of student notebooks to write (default: notebooks)")
    assign.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each student notebook that is out of date")
    assign.set_defaults(handler=run_assign)

    grade = subparsers.add_parser(
        "grade", help="grade submitted notebooks", epilog=GRADE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-execute each submission in a fresh kernel, re-run every check, and report points\n"
                    "per question. A submission is one student's notebook, or a folder with one student's\n"
                    "notebooks when the homework comes in several.")
    grade.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION",
                       help="a student's .ipynb file, or a folder with one student's notebooks")
    grade.add_argument("--json", type=Path, metavar="FILE", help="write the grades as JSON")
    grade.add_argument("--csv", type=Path, metavar="FILE", help="write one row per student as CSV")
    grade.add_argument("--gradescope", type=Path, metavar="FILE", help="write Gradescope's results.json")
    grade.add_argument("--timeout", type=_positive_seconds, default=600.0, metavar="SECONDS",
                       help="time limit for each cell and each check (default: 600)")
    grade.add_argument("--memory-gb", type=_memory_gb, default=DEFAULT_MEMORY_GB, metavar="GIB",
                       help=f"memory limit of each notebook's kernel in GiB: an allocation past it fails inside "
                            f"the notebook instead of exhausting the machine (default: {DEFAULT_MEMORY_GB:g}; "
                            f"0: no limit)")
    grade.add_argument("--reference", type=Path, default=Path("notebooks"), metavar="DIR",
                       help="the released student notebooks, whose check cells submissions must keep "
                            "(default: notebooks)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run kernels without the bubblewrap sandbox (only where it cannot start; every report "
                            "says so)")
    grade.add_argument("--key-file", type=Path, metavar="FILE",
                       help="the course key that seeds every student's inputs (default: $HW3_GRADING_KEY or "
                            "./.hw3-grading-key, created on first use)")
    grade.set_defaults(handler=run_grade)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _memory_gb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB (0 for no limit)")
    return value


def _fail(command: str, message: str) -> int:
    print(f"hw3 {command}: {message}", file=sys.stderr)
    return EXIT_FAILED


def run_assign(args: argparse.Namespace) -> int:
    """`hw3 assign [--check]`."""
    from .assign import AssignError, generate, out_of_date, write

    try:
        expected = generate(args.answers, args.notebooks)
    except AssignError as exc:
        return _fail("assign", str(exc))
    if not expected:
        return _fail("assign", f"no notebooks in {args.answers}: put the answer keys there")
    if args.check:
        stale = out_of_date(expected)
        for path in stale:
            print(f"{path} is out of date with {args.answers}: run `hw3 assign`", file=sys.stderr)
        if stale:
            return EXIT_FAILED
        print(f"{args.notebooks} is up to date with {args.answers}")
        return EXIT_OK
    try:
        written = write(expected)
    except OSError as exc:
        return _fail("assign", f"cannot write {exc.filename} ({exc.strerror})")
    for path in written:
        print(f"wrote {path}")
    print(f"{len(expected) - len(written)} of {len(expected)} student notebooks were already up to date")
    return EXIT_OK


def run_grade(args: argparse.Namespace) -> int:
    """`hw3 grade SUBMISSION... [--json FILE] [--csv FILE] [--gradescope FILE] [--timeout S] [--memory-gb G]
    [--reference DIR] [--no-sandbox] [--key-file FILE]`."""
    from . import report
    from .exercise import describe_exception, one_line
    from .grader import ReferenceNotebookError, Settings, failed_report, grade_submission, load_reference
    from .key import KeyError_, key_path, load_key
    from .sandbox import available

    missing = [path for path in args.submissions if not path.exists() and not path.is_symlink()]
    if missing:
        return _fail("grade", f"no such file or folder: {missing[0]}")
    try:
        load_reference(args.reference)
    except ReferenceNotebookError as exc:
        return _fail("grade", str(exc))
    if not args.no_sandbox and (reason := available()):
        return _fail("grade", reason)
    try:
        key = load_key(key_path(args.key_file))
    except (KeyError_, OSError) as exc:
        return _fail("grade", str(exc))
    settings = Settings(reference=args.reference, timeout=args.timeout, memory_gb=args.memory_gb,
                        sandbox=not args.no_sandbox, key=key)
    outputs = [(target, render) for target, render in
               ((args.json, report.to_json), (args.csv, report.to_csv), (args.gradescope, report.to_gradescope))
               if target is not None]
    for target, _ in outputs:
        if not target.parent.is_dir():
            return _fail("grade", f"cannot write {target}: the folder {target.parent} does not exist")
    reports = []
    for path in args.submissions:
        try:
            reports.append(grade_submission(path, settings))
        except Exception as exc:  # a grader bug must not cost the other students their grades
            reports.append(failed_report(path, "the grader crashed on this submission (see the note)",
                                         one_line(f"grading crashed ({describe_exception(exc)}): report it to "
                                                  f"the course staff"), settings))
        print(report.table(reports[-1]) + "\n", flush=True)
    for target, render in outputs:
        try:
            target.write_text(render(reports), encoding="utf-8")
        except OSError as exc:
            return _fail("grade", f"cannot write {target} ({exc.strerror})")
    return EXIT_OK
