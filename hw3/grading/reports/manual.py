"""Hand-graded scores: the CSV an instructor fills in, merged into the Reports so totals include them.

The CSV has a `student` column, then one column per manual question id (q1, q2.written, ...); a blank cell
means "not graded yet" and leaves the question "manual". `write_template` writes the blank sheet to fill
in. Every mistake in the sheet is a ManualScoresError whose message is one line naming the cell and the fix.
"""

from __future__ import annotations

import copy
import csv
import io
import math
from pathlib import Path

from hw3.atomic import write_text_atomic
from hw3.errors import HW3Error

from ..exercises.registry import Homework, format_points
from ..results import QuestionResult, Report
from .names import csv_cell, from_csv_cell, shown

STUDENT_COLUMN = "student"


class ManualScoresError(HW3Error):
    """A scores CSV that cannot be merged; the message is one line naming the file, the cell and the fix."""


def manual_ids(homework: Homework) -> list[str]:
    """The ids of the questions graded by hand, in homework order."""
    return [q.id for q in homework.manual()]


def template(students: list[str], homework: Homework) -> str:
    """A blank scores sheet: a `student` column with `students` (`names.csv_cell`: a spreadsheet runs none of
    them, and `read_scores` reads them back), one empty column per manual question."""
    ids = manual_ids(homework)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([STUDENT_COLUMN, *ids])
    writer.writerows([csv_cell(student), *([""] * len(ids))] for student in students)
    return out.getvalue()


def write_template(students: list[str], path: Path, homework: Homework) -> Path:
    """Write the blank scores sheet of `students` (`template`) to `path`, atomically."""
    write_text_atomic(path, template(students, homework))
    return path


def _read_rows(path: Path, homework: Homework) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows (with their line numbers) of the sheet; BOMs from Excel are ignored."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as sheet:
            lines = list(csv.reader(sheet))
    except OSError as exc:
        raise ManualScoresError(f"cannot read {path} ({exc.strerror}): check the --manual path") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManualScoresError(f"{path} is not a UTF-8 CSV file ({type(exc).__name__}): save it as CSV UTF-8") \
            from None
    rows = [(number, row) for number, row in enumerate(lines, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise ManualScoresError(f"{path} is empty: start from the template (a `student` column, then "
                                f"{', '.join(manual_ids(homework))})")
    return [cell.strip() for cell in rows[0][1]], rows[1:]


def _check_header(path: Path, header: list[str], homework: Homework) -> None:
    """ManualScoresError unless the header is `student` then distinct manual question ids."""
    if not header or header[0] != STUDENT_COLUMN:
        raise ManualScoresError(f"{path}: the first column must be named `{STUDENT_COLUMN}` (found "
                                f"{header[0] if header else 'nothing'!r}): add it as the header of the names column")
    for column in header[1:]:
        if column not in homework.by_id:
            raise ManualScoresError(f"{path}: unknown question column {column!r}: the manual questions are "
                                    f"{', '.join(manual_ids(homework))}")
        if homework.by_id[column].kind != "manual":
            raise ManualScoresError(f"{path}: {column} is graded automatically: remove its column")
        if header.count(column) > 1:
            raise ManualScoresError(f"{path}: the column {column} appears twice: keep one")


def _points(path: Path, line: int, qid: str, text: str, homework: Homework) -> float | None:
    """The points in one cell (None when blank); ManualScoresError for text, negatives or over the maximum."""
    text = text.strip()
    if not text:
        return None
    maximum = homework.by_id[qid].max_points
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ManualScoresError(f"{path} line {line}: {qid} is {text!r}, not a number: write points such as 1.5 "
                                f"or leave it blank")
    if not 0 <= value <= maximum:
        raise ManualScoresError(f"{path} line {line}: {qid} is {text}, outside 0 to {format_points(maximum)}: "
                                f"write points between 0 and the question's maximum")
    return value


def read_scores(path: Path, students: list[str], homework: Homework) -> dict[str, dict[str, float]]:
    """The hand-graded points in the sheet: student -> question id -> points (blank cells left out).

    ManualScoresError for a missing `student` column, an unknown or automatic question column, a student
    not among `students`, a student listed twice, or points that are not a number in 0..maximum.
    """
    header, rows = _read_rows(path, homework)
    _check_header(path, header, homework)
    known = set(students)
    scores: dict[str, dict[str, float]] = {}
    for line, row in rows:
        student = from_csv_cell(row[0].strip(), students) or row[0].strip()
        if student not in known:
            raise ManualScoresError(f"{path} line {line}: unknown student {shown(row[0].strip())!r}: use the names of "
                                    f"the graded submissions, as in the grades CSV")
        if student in scores:
            raise ManualScoresError(f"{path} line {line}: {shown(student)!r} is listed twice: keep one row per student")
        if len(row) > len(header):
            raise ManualScoresError(f"{path} line {line}: {len(row)} cells for {len(header)} columns: remove the "
                                    f"extra cells")
        cells = zip(header[1:], row[1:])
        scores[student] = {qid: points for qid, text in cells
                           if (points := _points(path, line, qid, text, homework)) is not None}
    return scores


def _graded(question: QuestionResult, points: float) -> QuestionResult:
    """`question` with hand-graded `points`: passed at full marks, failed at 0, partial between; rubric kept."""
    status = "passed" if points >= question.max_points else ("failed" if points == 0 else "partial")
    return QuestionResult(question.id, question.title, points, question.max_points, status, rubric=question.rubric)


def merge_scores(reports: list[Report], scores: dict[str, dict[str, float]]) -> list[Report]:
    """Copies of `reports` with the hand-graded points of `scores` (from `read_scores`) in their manual questions.

    The sheet has the last word on a manual question, also one the grader found "not answered" (the answer
    may sit elsewhere in the notebook); a blank cell leaves the question as the grader reported it.
    """
    merged = []
    for report in reports:
        report = copy.deepcopy(report)
        points = scores.get(report.student, {})
        report.questions = [_graded(q, points[q.id]) if q.id in points else q
                            for q in report.questions]
        merged.append(report)
    return merged


def merge_manual(reports: list[Report], path: Path, homework: Homework) -> list[Report]:
    """`reports` with the hand-graded points of the sheet at `path` merged in (see `read_scores`)."""
    return merge_scores(reports, read_scores(path, [r.student for r in reports], homework))
