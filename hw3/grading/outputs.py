"""What a batch writes once it is graded (or its shards merged): the options both `hw3 grade` and
`hw3 merge-grades` take, checked before any work starts and written from the batch's reports afterwards.

- `--json FILE`, `--csv FILE`: every report, one file each.
- `--gradescope FILE`: Gradescope's results.json, one per submission. One submission: FILE is that file (what
  `run_autograder` uses). Several: FILE is a folder (made when missing) with one `<student>.json` each, named
  as the feedback files are (`names.file_stems`); a FILE that exists as a file or ends in `.json` is refused
  before grading, naming the fix.
- `--feedback DIR`, `--summary DIR`: the students' feedback files and the class summary.
- `--manual CSV`: hand-graded points, read and checked before grading (a bad sheet is refused at once) and
  merged into every output. `--manual-template CSV`: the blank sheet to fill in, one row per graded student.

Every error is an OutputError whose message is one line naming the file and the fix.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hw3.atomic import write_text_atomic
from hw3.errors import HW3Error

from .reports import report as rendering
from .reports.manual import ManualScoresError, merge_scores, read_scores, template
from .reports.names import file_stems, shown
from .results import Report

if TYPE_CHECKING:  # the grader's dependencies (nbformat): `hw3 --help` builds these options without them
    from .course import Course
    from .intake import Submission


class OutputError(HW3Error):
    """An output cannot be written as asked; the one-line message names the file and the fix."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """The output options of `hw3 grade` and `hw3 merge-grades`."""
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the grades as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per student as CSV")
    parser.add_argument("--gradescope", type=Path, metavar="FILE",
                        help="write Gradescope's results.json: FILE for one submission, else a folder FILE with one "
                             "<student>.json per submission")
    parser.add_argument("--feedback", type=Path, metavar="DIR",
                        help="write one Markdown feedback file per student into DIR (safe to hand out)")
    parser.add_argument("--summary", type=Path, metavar="DIR",
                        help="write the class summary (summary.md, scores.png, similar solutions) into DIR")
    parser.add_argument("--manual", type=Path, metavar="CSV",
                        help="merge hand-graded points (columns: student, then one per manual question id); "
                             "checked before grading")
    parser.add_argument("--manual-template", type=Path, metavar="CSV",
                        help="write the blank hand-grading sheet: a row per graded student, a column per manual "
                             "question")


@dataclass
class Outputs:
    """The outputs asked for (None: not asked), the course (its questions name the sheet's columns, its keys and
    released notebooks are what the summary compares against), and the hand-graded points once `check` has read
    them."""

    course: Course
    json: Path | None = None
    csv: Path | None = None
    gradescope: Path | None = None
    feedback: Path | None = None
    summary: Path | None = None
    manual: Path | None = None
    manual_template: Path | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace, course: Course) -> "Outputs":
        names = ("json", "csv", "gradescope", "feedback", "summary", "manual", "manual_template")
        return cls(course, **{name: getattr(args, name, None) for name in names})

    def asked(self) -> bool:
        """Whether any output is asked for."""
        return any((self.json, self.csv, self.gradescope, self.feedback, self.summary, self.manual_template))

    def check(self, others: list[Path], students: list[str], graded: int) -> None:
        """Before any work: every file target (and `others`, e.g. the store) writable and distinct, the
        --gradescope target fit for `graded` submissions, the --manual sheet valid for `students` (kept in
        `scores`). OutputError naming the first problem."""
        files = [*others, *(t for t in (self.json, self.csv, self.manual_template) if t is not None)]
        if self.gradescope is not None and graded <= 1 and not self.gradescope.is_dir():
            files.append(self.gradescope)
        seen: dict[Path, Path] = {}
        for target in [*files, *(t for t in (self.manual,) if t is not None)]:
            if target.resolve() in seen:
                raise OutputError(f"{shown(target)} is given twice (as an output, or as the --manual sheet): pass a "
                                  f"different file for each")
            seen[target.resolve()] = target
        for target in files:
            if problem := rendering.unwritable(target):
                raise OutputError(problem)
        if self.gradescope is not None and graded > 1:
            _check_gradescope_folder(self.gradescope, graded)
        for folder in (self.feedback, self.summary):
            if folder is not None and folder.exists() and not folder.is_dir():
                raise OutputError(f"{shown(folder)} is not a folder: pass a folder for --feedback and --summary")
        if self.manual is not None:
            try:
                self.scores = read_scores(self.manual, students, self.course.homework)
            except ManualScoresError as exc:
                raise OutputError(str(exc)) from None

    def write(self, reports: list[Report], submissions: list[Submission]) -> list[Report]:
        """Merge the hand-graded points into `reports` and write every output asked for; returns the merged
        reports. `submissions` (the batch as read) feed the summary's similarity findings. OutputError naming
        the first file that cannot be written."""
        reports = merge_scores(reports, self.scores) if self.manual else reports
        target = None
        try:
            for target, render in ((self.json, rendering.to_json), (self.csv, rendering.to_csv)):
                if target is not None:
                    write_text_atomic(target, render(reports))
            if (target := self.gradescope) is not None:
                write_gradescope(target, reports)
            if (target := self.manual_template) is not None:
                write_text_atomic(target, template([r.student for r in reports], self.course.homework))
            if (target := self.feedback) is not None and reports:
                from .reports.feedback import write_all_feedback

                write_all_feedback(reports, target)
            if (target := self.summary) is not None and reports:
                from .reports.similarity import review
                from .reports.summary import write_summary

                write_summary(reports, target, review(submissions, reports, self.course))
        except OSError as exc:
            raise OutputError(f"cannot write {shown(exc.filename or target)} ({exc.strerror}): choose a writable "
                              f"place") from None
        return reports


def _check_gradescope_folder(target: Path, graded: int) -> None:
    """OutputError unless `target` can be the folder of `graded` results.json files."""
    if target.is_symlink() or (target.exists() and not target.is_dir()) or target.suffix == ".json":
        raise OutputError(f"--gradescope {shown(target)}: this batch has {graded} submissions and Gradescope reads one "
                          f"results.json each: pass a folder (e.g. --gradescope gradescope/) for one file per student")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {shown(target)}: the folder {shown(target.parent)} does not exist")


def write_gradescope(target: Path, reports: list[Report]) -> None:
    """Gradescope's results.json: to `target` for one report (unless it is a folder), else one file per student
    in the folder `target` (made when missing), named by `names.file_stems`."""
    if len(reports) == 1 and not target.is_dir():
        write_text_atomic(target, rendering.to_gradescope(reports[0]))
        return
    target.mkdir(exist_ok=True)
    stems = file_stems([r.student for r in reports])
    for report in reports:
        write_text_atomic(target / f"{stems[report.student]}.json", rendering.to_gradescope(report))
