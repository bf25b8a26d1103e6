"""Rendering results.Report objects: a terminal table, JSON, Gradescope's results.json, a CSV with one row
per student, and whether a path can take one of them (`unwritable`).

Names, notes and messages come from students: the table shows them through `names.shown` (nothing reaches
the terminal that could move its cursor or start a line), and the CSV through `names.csv_cell` (nothing a
spreadsheet would run)."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

from ..exercises.registry import format_points
from ..results import QuestionResult, Report
from .names import csv_cell, shown


def table(report: Report) -> str:
    """The per-question table of one submission, with its total and notes."""
    lines = [shown(report.submission)]
    for q in report.questions:
        earned = "-" if q.status == "manual" else format_points(q.points)
        row = f"  {q.id:<12} {q.status:<7} {earned:>4} / {format_points(q.max_points):<4} {shown(q.message)}"
        lines.append(row.rstrip())
    manual = sum(q.max_points for q in report.questions if q.status == "manual")
    lines.append(f"  {'total':<12} {'':<7} {format_points(report.total):>4} / {format_points(report.max_total):<4} "
                 f"({format_points(manual)} points are graded by hand)")
    lines.extend(f"  note: {shown(note)}" for note in report.notes)
    return "\n".join(lines)


def _one_or_list(items: list[dict]) -> str:
    """JSON text of the only item, or of the list when there are several."""
    return json.dumps(items[0] if len(items) == 1 else items, indent=2, ensure_ascii=False) + "\n"


def to_json(reports: list[Report]) -> str:
    """One report object (results.Report.to_dict), or a list of them when there are several."""
    return _one_or_list([r.to_dict() for r in reports])


def test_output(q: QuestionResult) -> str:
    """What a Gradescope test shows: "passed", or each failed sub-test with what happened, its input and hint (or
    the question's one reason). Never what the answer key gives for the input: the student may resubmit, and the
    same student keeps the same inputs, so an expected value would be the answer."""
    if q.status == "passed":
        return "passed"
    lines = [] if any(not t.passed for t in q.tests) else [q.message]
    for t in q.tests:
        if not t.passed:
            line = f"- {t.name} ({format_points(t.points)} of {format_points(t.max_points)} pts): {t.message}"
            lines.append(line + (f" Input: {t.input}." if t.input else "") + (f" Hint: {t.hint}." if t.hint else ""))
    return "\n".join(line for line in lines if line)


def gradescope(report: Report) -> dict:
    """Gradescope's results.json: one visible test per automatic question, the automatic score, the time, and
    the student's whole feedback (Markdown) as the top-level output."""
    from .feedback import render

    tests = [{"name": f"{q.id}: {q.title}", "score": q.points, "max_score": q.max_points,
              "status": "passed" if q.status == "passed" else "failed", "visibility": "visible",
              "output": test_output(q)} for q in report.questions if not q.by_hand]
    return {"tests": tests, "score": report.total, "execution_time": round(report.seconds, 1),
            "output": render(report), "output_format": "md"}


def to_gradescope(report: Report) -> str:
    """Gradescope's results.json of one submission, as text."""
    return json.dumps(gradescope(report), indent=2, ensure_ascii=False) + "\n"


def to_csv(reports: list[Report]) -> str:
    """One row per student: the student (`names.csv_cell`), points per question (blank when graded by hand),
    total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    ids = list(dict.fromkeys(q.id for report in reports for q in report.questions))  # the homework's order
    writer.writerow(["student", *ids, "total"])
    for report in reports:
        points = {q.id: "" if q.status == "manual" else format_points(q.points) for q in report.questions}
        writer.writerow([csv_cell(report.student), *(points.get(qid, "") for qid in ids), format_points(report.total)])
    return out.getvalue()


def unwritable(target: Path) -> str | None:
    """Why `target` cannot take an output file (None when it can): a missing folder, or a path that is a
    directory, FIFO, symlink or anything else but a regular file."""
    target = Path(target)
    if target.is_symlink():
        return f"{target} is a symbolic link: pass the path of a regular file"
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        kind = "a directory" if target.is_dir() else "a FIFO" if target.is_fifo() else "not a regular file"
        return f"{target} is {kind}: pass the path of a regular file"
    if not target.parent.is_dir():
        return f"cannot write {target}: the folder {target.parent} does not exist"
    return None
