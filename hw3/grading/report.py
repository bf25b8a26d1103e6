"""Grade reports as a terminal table, JSON, a Gradescope results.json, and a CSV with one row per student."""

from __future__ import annotations

import csv
import io
import json

from .questions import BY_ID, QUESTIONS, format_points, max_total
from .results import Report


def table(report: Report) -> str:
    """The per-question table of one submission, with its total and notes."""
    lines = [report.submission]
    for q in report.questions:
        earned = "-" if q.status in ("manual", "not answered") else format_points(q.points)
        row = f"  {q.id:<13} {q.status:<12} {earned:>4} / {format_points(q.max_points):<4} {q.message}"
        lines.append(row.rstrip())
    manual = sum(q.max_points for q in report.questions if q.status == "manual")
    lines.append(f"  {'total':<12} {'':<7} {format_points(report.total):>4} / {format_points(max_total()):<4} "
                 f"({format_points(manual)} points are graded by hand)")
    lines.extend(f"  note: {note}" for note in report.notes)
    return "\n".join(lines)


def _one_or_list(items: list[dict]) -> str:
    """JSON text of the only item, or of the list when there are several."""
    return json.dumps(items[0] if len(items) == 1 else items, indent=2, ensure_ascii=False) + "\n"


def to_json(reports: list[Report]) -> str:
    """One report object, or a list of them when several submissions were graded."""
    return _one_or_list([r.to_dict() for r in reports])


def gradescope(report: Report) -> dict:
    """Gradescope's results.json shape: one test per auto question, and the auto score."""
    tests = [{"name": f"{q.id}: {BY_ID[q.id].title}", "score": q.points, "max_score": q.max_points,
              "output": q.message or "passed"} for q in report.questions if q.status != "manual"]
    return {"tests": tests, "score": report.total}


def to_gradescope(reports: list[Report]) -> str:
    """Gradescope results for one submission (a list of them for several)."""
    return _one_or_list([gradescope(r) for r in reports])


def to_csv(reports: list[Report]) -> str:
    """One row per student (notebook stem or folder name): points per question (blank when manual), total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", *(q.id for q in QUESTIONS), "total"])
    for report in reports:
        points = {q.id: "" if q.status == "manual" else format_points(q.points) for q in report.questions}
        writer.writerow([report.student, *(points[q.id] for q in QUESTIONS),
                         format_points(report.total)])
    return out.getvalue()
