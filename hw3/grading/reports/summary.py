"""The class summary for the instructor: summary.md and a histogram of the totals, scores.png.

summary.md gives the number of students, the mean and median totals, per question the count of each status
and the mean points, the most common reasons for losing points (messages grouped after masking their
numbers, so "returned 0.572" and "returned 0.61" count as one), and the similarity findings "for a person
to look at": they are never turned into a penalty.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hw3.atomic import replacing, write_text_atomic

from ..exercises.registry import format_points
from ..results import QuestionResult, Report
from .feedback import inline
from .similarity import REFERENCE, STUB_UNCHANGED, Finding

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?!\w)")
MASK = "…"
MASKED_LIST = re.compile(f"{MASK}(?:, {MASK})+")
TOP_REASONS = 3
STATUSES = ("passed", "partial", "failed", "not answered", "manual")
HISTOGRAM = "scores.png"


def mask_numbers(message: str) -> str:
    """`message` with every number replaced by MASK and a list of them by one MASK, so that messages differing
    only in values (or in how many) group together."""
    return MASKED_LIST.sub(MASK, NUMBER.sub(MASK, message))


def failure_reasons(question: QuestionResult) -> set[str]:
    """The masked reasons an automatic question lost points: its failed sub-tests' messages, else its own
    message (none for a question graded by hand: it has a rubric instead)."""
    if question.rubric:
        return set()
    reasons = {mask_numbers(t.message) for t in question.tests if not t.passed and t.message}
    if not reasons and question.message and question.status in ("partial", "failed"):
        reasons = {mask_numbers(question.message)}
    return reasons


def common_reasons(reports: Sequence[Report], qid: str, top: int = TOP_REASONS) -> list[tuple[str, int]]:
    """The `top` most common masked reasons for losing points on `qid`, with the number of students giving each."""
    counts = Counter(reason for r in reports for reason in failure_reasons(r.question(qid)))
    return counts.most_common(top)


def _status_table(reports: Sequence[Report]) -> list[str]:
    """One row per question: how many students are in each status, and the mean points."""
    lines = ["| question | max | " + " | ".join(STATUSES) + " | mean |", "|---|---:|" + "---:|" * (len(STATUSES) + 1)]
    for first in reports[0].questions:
        results = [r.question(first.id) for r in reports]
        counts = Counter(q.status for q in results)
        mean = statistics.fmean(q.points for q in results)
        lines.append(f"| {inline(first.id)} | {format_points(first.max_points)} | "
                     + " | ".join(str(counts[s]) for s in STATUSES) + f" | {mean:.2f} |")
    return lines


def _reason_lines(reports: Sequence[Report]) -> list[str]:
    """The most common reasons per question that lost points for anyone."""
    lines = []
    for first in reports[0].questions:
        reasons = common_reasons(reports, first.id)
        if reasons:
            lines += [f"- **{inline(first.id)}**"]
            lines += [f"  - {count} × {inline(reason)}" for reason, count in reasons]
    return lines or ["No question lost points."]


def finding_line(finding: Finding) -> str:
    """One finding as a bullet: two near-identical solutions, or a question earning points with its stub in place."""
    if finding.b == STUB_UNCHANGED:
        return (f"- {inline(finding.question)}: {inline(finding.a)} passes with its stub unchanged (the code that runs "
                f"stands elsewhere in the notebook)")
    other = "the answer key or hw3's own code" if finding.b == REFERENCE else inline(finding.b)
    return f"- {inline(finding.question)}: {inline(finding.a)} and {other}, {finding.similarity:.0%} similar"


def hand_graded_line(reports: Sequence[Report]) -> str:
    """How the points graded by hand stand: out of how many, merged for how many students, their mean."""
    manual = [q.id for q in reports[0].questions if q.by_hand]
    maximum = format_points(sum(reports[0].question(qid).max_points for qid in manual))
    merged = [r for r in reports if all(r.question(qid).status != "manual" for qid in manual)]
    started = [r for r in reports if any(r.question(qid).status != "manual" for qid in manual)]
    line = f"- Points graded by hand: {maximum} of the {format_points(reports[0].max_total)}"
    if not started:
        return line + "; not merged yet (hw3 grade --manual scores.csv), so the totals leave them out"
    mean = statistics.fmean(sum(r.question(qid).points for qid in manual) for r in merged) if merged else 0.0
    return (line + f"; merged for {len(merged)} of {len(reports)} students"
            + (f" (mean {mean:.2f} / {maximum})" if merged else "")
            + (f", in part for {len(started) - len(merged)} more" if len(started) > len(merged) else ""))


def render(reports: Sequence[Report], findings: Sequence[Finding] = ()) -> str:
    """summary.md for `reports` (at least one) and the similarity `findings`."""
    totals = [r.total for r in reports]
    full = format_points(reports[0].max_total)
    lines = ["# Homework 3: class summary", "",
             f"- Students: {len(reports)}",
             f"- Mean total: {statistics.fmean(totals):.2f} / {full}",
             f"- Median total: {format_points(statistics.median(totals))} / {full}",
             hand_graded_line(reports), "",
             f"![Histogram of the totals]({HISTOGRAM})", "",
             "## Questions", "", *_status_table(reports), "",
             "## Most common reasons for losing points", "",
             "Numbers in the messages are masked (…) so that the same mistake groups together.", "",
             *_reason_lines(reports), "",
             "## For a person to look at", "",
             "Near-identical solutions, compared over the code that defines what each check hands the grader, and "
             "questions that earn points while their stub is unchanged (see hw3/grading/reports/similarity.py). "
             "They are evidence to read, not a verdict: no grade was changed because of them.", "",
             *([finding_line(f) for f in findings] or ["No near-identical solutions."])]
    return "\n".join(lines) + "\n"


def plot_histogram(reports: Sequence[Report], path: Path) -> Path:
    """A histogram of the totals, drawn without a display: one bar per point from 0 to the homework's full total
    (the last bar holds the full total itself), students counted in whole numbers."""
    figure = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    maximum = int(reports[0].max_total)
    axes.hist([min(max(r.total, 0), maximum) for r in reports], bins=range(maximum + 1), edgecolor="white")
    axes.set_xlim(0, maximum)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(f"total points (of {format_points(reports[0].max_total)})")
    axes.set_ylabel("students")
    axes.set_title(f"Homework 3: totals of {len(reports)} students")
    figure.tight_layout()
    with replacing(path) as temp:
        figure.savefig(temp, dpi=100, format="png")
    return path


def write_summary(reports: Sequence[Report], folder: Path, findings: Sequence[Finding] = ()) -> Path:
    """Write folder/summary.md and folder/scores.png (the folder is created); returns the Markdown's path.

    ValueError when there are no reports (there is nothing to summarise).
    """
    if not reports:
        raise ValueError("no reports to summarise: grade at least one submission")
    folder.mkdir(parents=True, exist_ok=True)
    plot_histogram(reports, folder / HISTOGRAM)
    path = folder / "summary.md"
    write_text_atomic(path, render(reports, findings))
    return path
