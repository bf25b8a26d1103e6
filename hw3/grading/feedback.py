"""Per-student feedback: one Markdown file per submission, rendered from its Report, safe to hand out.

A feedback file holds the student's own results only: per question the points, the status, the reason,
each failed sub-test with what was expected, the exact failing input and the hint; the manual questions
with their rubric (and the hand-graded points once merged); the notes and the total. Every piece of text
from the grader goes through `sanitize` first, so the grader machine's paths, its environment values and
other students' names never reach a student.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath

from .points import format_points
from .results import QuestionResult, Report, TestResult

URL_OR_PATH = re.compile(r"(?P<url>https?://\S+)"
                         r"|(?<![\w.~<-])(?:~?/+[\w.@+~-]+(?:/+[\w.@+~-]+)*|[A-Za-z]:\\(?:[\w.@+~-]+\\?)+)/?")
"""A web address (kept), or an absolute path: POSIX from the root or home (`/srv/x.py`, `~/x`, in `file:///x`)
or Windows (`C:\\x`); not a relative `a/b`, not `1/2`."""
MIN_SECRET_LENGTH = 6  # shorter environment values ("1", "C", "root") are too common in ordinary text to redact
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")
STATUS_WORDS = {"passed": "passed", "partial": "partly passed", "failed": "failed",
                "manual": "to be graded by hand", "not answered": "not answered"}


def _shorten_path(match: re.Match, own_files: frozenset[str]) -> str:
    """The replacement of one absolute path: the submission's own file name, a library file's name, or <path>
    (a web address stays as it is)."""
    if match.group("url"):
        return match.group(0)
    name = re.split(r"[/\\]", match.group(0).rstrip("/\\"))[-1]
    if name in own_files:
        return name
    return f"…/{name}" if name.endswith(".py") else "<path>"


def sanitize(text: str, own_files: Iterable[str] = (), redact: Iterable[str] = (),
             environ: Mapping[str, str] | None = None) -> str:
    """`text` fit to hand to a student.

    Absolute paths become the submission's own file name when they end in one of `own_files`, `…/name.py`
    for source files (tracebacks) and `<path>` otherwise; values of `environ` (default: os.environ) of at
    least MIN_SECRET_LENGTH characters become `<env>`; each name in `redact` (other students) becomes
    `<student>` where it stands as a whole word.
    """
    own = frozenset(own_files)
    text = URL_OR_PATH.sub(lambda m: _shorten_path(m, own), text)
    environ = os.environ if environ is None else environ
    for value in sorted({v for v in environ.values() if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, "<env>")
    for name in sorted({n for n in redact if n}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "<student>", text)
    return text


def escape(text: str) -> str:
    """Prose for Markdown: characters Markdown or HTML would interpret are backslash-escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code_block(text: str) -> str:
    """`text` as a fenced code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _points(earned: float, maximum: float) -> str:
    return f"{format_points(earned)} / {format_points(maximum)}"


def _test_lines(test: TestResult, clean) -> list[str]:
    """The bullet of one failed sub-test: expected, input, hint."""
    lines = [f"- **{escape(clean(test.name))}** ({_points(test.points, test.max_points)})"]
    if test.message:
        lines.append(f"  - Expected: {escape(clean(test.message))}")
    if test.input:
        lines += ["  - Failing input:", "", *("  " + line for line in code_block(clean(test.input)).splitlines())]
    if test.hint:
        lines.append(f"  - Hint: {escape(clean(test.hint))}")
    return lines


def _question_lines(q: QuestionResult, clean) -> list[str]:
    """The section of one question."""
    hand_graded = bool(q.rubric) and q.status in ("passed", "partial", "failed")
    earned = "–" if q.status == "manual" else format_points(q.points)
    status = STATUS_WORDS.get(q.status, q.status) + (" (graded by hand)" if hand_graded else "")
    lines = [f"## {escape(q.id)}: {escape(clean(q.title))}", "",
             f"**{earned} / {format_points(q.max_points)}**, {status}", ""]
    failed = [t for t in q.tests if not t.passed]
    if q.message and q.message not in {t.message for t in failed}:  # else it is shown with its sub-test
        lines += [escape(clean(q.message)), ""]
    if failed:
        lines += ["Failed tests:", "", *(line for t in failed for line in _test_lines(t, clean)), ""]
    if q.rubric:
        lines += [f"Rubric: {escape(clean(q.rubric))}", ""]
    return lines


def render(report: Report, redact: Iterable[str] = ()) -> str:
    """The Markdown feedback of one report (sanitized: see `sanitize`; `redact` lists other students' names)."""
    own = {PurePath(report.submission).name}
    redact = [name for name in redact if name != report.student]

    def clean(text: str) -> str:
        return sanitize(text, own, redact)

    manual = sum(q.max_points for q in report.questions if q.status == "manual")
    lines = [f"# Homework 3 feedback: {escape(clean(report.student))}", "",
             f"Submission: {escape(clean(PurePath(report.submission).name))}", "",
             f"**Total: {_points(report.total, report.max_total)}**"
             + (f" ({format_points(manual)} points still to be graded by hand)" if manual else ""), ""]
    for q in report.questions:
        lines += _question_lines(q, clean)
    if not report.sandboxed:
        lines += ["Note: this submission was graded without the sandbox.", ""]
    if report.notes:
        lines += ["## Notes", "", *(f"- {escape(clean(note))}" for note in report.notes), ""]
    return "\n".join(lines).rstrip() + "\n"


def feedback_name(report: Report) -> str:
    """The feedback file's name: the student's name with anything but letters, digits, `.-_` replaced."""
    return (re.sub(r"[^\w.-]", "_", report.student).strip(".") or "student") + ".md"


def write_feedback(report: Report, folder: Path, redact: Iterable[str] = ()) -> Path:
    """Write `folder/<student>.md` (the folder is created); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / feedback_name(report)
    path.write_text(render(report, redact), encoding="utf-8")
    return path


def write_all_feedback(reports: list[Report], folder: Path) -> list[Path]:
    """One feedback file per report, each with every other student's name redacted."""
    names = [r.student for r in reports]
    return [write_feedback(report, folder, names) for report in reports]
