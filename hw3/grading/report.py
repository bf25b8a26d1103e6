"""Grade reports as a terminal table, JSON, a Gradescope results.json, and a CSV with one row per student."""

from __future__ import annotations

import csv
import io
import json

from .grader import Report
from .points import BY_ID, QUESTIONS, format_points, max_total


def table(report: Report) -> str:
    """The per-question table of one submission, with its total and notes."""
    lines = [report.submission]
    for q in report.questions:
        earned = "-" if q.status == "manual" else format_points(q.points)
        lines.append(f"  {q.id:<12} {q.status:<7} {earned:>4} / {format_points(q.max_points):<4} {q.message}".rstrip())
    manual = sum(q.max_points for q in report.questions if q.status == "manual")
    lines.append(f"  {'total':<12} {'':<7} {format_points(report.total):>4} / {format_points(max_total()):<4} "
                 f"({format_points(manual)} points are graded by hand)")
    lines.extend(f"  note: {note}" for note in report.notes)
    return "\n".join(lines)


def to_json(reports: list[Report]) -> str:
    """One report object, or a list of them when several submissions were graded."""
    data = [r.to_dict() for r in reports]
    return json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False) + "\n"


def gradescope(report: Report) -> dict:
    """Gradescope's results.json shape: one test per auto question, and the auto score."""
    tests = [{"name": f"{q.id}: {BY_ID[q.id].title}", "score": q.points, "max_score": q.max_points,
              "output": q.message or "passed"} for q in report.questions if q.status != "manual"]
    return {"tests": tests, "score": report.total}


def to_gradescope(reports: list[Report]) -> str:
    """Gradescope results for one submission (a list of them for several)."""
    data = [gradescope(r) for r in reports]
    return json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False) + "\n"


def to_csv(reports: list[Report]) -> str:
    """One row per student (the submission's file stem): points per question (blank when manual), total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", *(q.id for q in QUESTIONS), "total"])
    for report in reports:
        points = {q.id: "" if q.status == "manual" else format_points(q.points) for q in report.questions}
        stem = report.submission.rsplit(".", 1)[0]
        writer.writerow([stem, *(points[q.id] for q in QUESTIONS), format_points(report.total)])
    return out.getvalue()
