"""Per-student feedback: one Markdown file per submission, rendered from its Report, safe to hand out.

A feedback file holds the student's own results only: per question the points, the status, the reason,
each failed sub-test with what was expected, the exact failing input and the hint; the manual questions
with their rubric (and the hand-graded points once merged); the notes and the total. Every piece of text
from the grader goes through `sanitize` first, so the grader machine's paths, its environment values and
other students' names never reach a student, and through `names.shown`, so no character acts on what shows
it. The Markdown reads as plain text: prose stays as it is, and each run of words that Markdown or HTML could
read as structure (`rnn_output([-6, 4])`, `<path>`, `**`) becomes a code span (`inline`), so nothing a
student wrote can add a heading, a link or markup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import NamedTuple

from hw3.atomic import write_text_atomic

from ..exercises.registry import format_points
from ..results import QuestionResult, Report, TestResult
from .names import file_stems, shown

URL_OR_PATH = re.compile(r"(?P<url>https?://\S+)"
                         r"|(?<![\w.~<-])(?:~?/+[\w.@+~-]+(?:/+[\w.@+~-]+)*|[A-Za-z]:\\(?:[\w.@+~-]+\\?)+)/?")
"""A web address (kept), or an absolute path: POSIX from the root or home (`/srv/x.py`, `~/x`, in `file:///x`)
or Windows (`C:\\x`); not a relative `a/b`, not `1/2`."""
MIN_SECRET_LENGTH = 6  # shorter environment values ("1", "C", "root") are too common in ordinary text to redact
PLAIN_WORD = re.compile(r"[^\W_]+|[.,:;?!()'\"%/+=–—…-]", re.UNICODE)
"""What a word of plain prose is made of: letters and digits, and punctuation Markdown does not act on inside
a line."""
BLOCK_START = re.compile(r"[-+=*_]+|\d+[.)]")
"""A first word that would start a list, a thematic break or a setext line."""
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


def _plain(word: str, first: bool) -> bool:
    """Whether `word` reads the same as Markdown and as plain text (see PLAIN_WORD; no web address, which
    renderers turn into links); `first`: it starts a line, where list and break markers count too."""
    if "".join(PLAIN_WORD.findall(word)) != word or "://" in word or word.lower().startswith("www."):
        return False
    return not (first and BLOCK_START.fullmatch(word))


def code_span(text: str) -> str:
    """`text` as a Markdown code span: fenced by more backticks than any run inside it, padded where it starts or
    ends with a backtick."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def inline(text: str, first: bool = False) -> str:
    """Untrusted `text` as one line of Markdown that reads well as plain text: `shown` (no active characters),
    plain words as they are, and every run of other words (`rnn_output([-6,`, `4])`, `<path>`, `**bold**`) as
    one code span, whose content Markdown shows literally. `first`: the text starts a line."""
    words = shown(text).split()
    out: list[str] = []
    run: list[str] = []
    for index, word in enumerate(words):
        if _plain(word, first and index == 0):
            if run:
                out.append(code_span(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.append(code_span(" ".join(run)))
    return " ".join(out)


def code_block(text: str) -> str:
    """`text` as a fenced code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _points(earned: float, maximum: float) -> str:
    return f"{format_points(earned)} / {format_points(maximum)}"


class Block(NamedTuple):
    """One piece of a feedback document, rendered as Markdown (`render`).

    `kind` is title, heading, text (a paragraph), item (a bullet) or code (a block of code, kept verbatim);
    `lead` is shown in bold before `text`; `depth` nests bullets and code (0: top level).
    """

    kind: str
    text: str
    lead: str = ""
    depth: int = 0


LISTED = ("item", "code")  # kinds that belong to a bullet list


def _test_blocks(test: TestResult, clean: Callable[[str], str]) -> list[Block]:
    """The bullet of one failed sub-test: what happened (against what was expected), failing input, hint."""
    blocks = [Block("item", f" ({_points(test.points, test.max_points)})", clean(test.name))]
    if test.message:
        blocks.append(Block("item", " " + clean(test.explained), "What happened:", 1))
    if test.input:
        blocks += [Block("item", "", "Failing input:", 1), Block("code", clean(test.input), depth=2)]
    if test.hint:
        blocks.append(Block("item", " " + clean(test.hint), "Hint:", 1))
    return blocks


def _question_blocks(q: QuestionResult, clean: Callable[[str], str]) -> list[Block]:
    """The section of one question (a question still to be graded by hand says so once, in its status)."""
    hand_graded = bool(q.rubric) and q.status in ("passed", "partial", "failed")
    earned = "–" if q.status == "manual" else format_points(q.points)
    status = STATUS_WORDS.get(q.status, q.status) + (" (graded by hand)" if hand_graded else "")
    blocks = [Block("heading", f"{q.id}: {clean(q.title)}"),
              Block("text", f", {status}", f"{earned} / {format_points(q.max_points)}")]
    failed = [t for t in q.tests if not t.passed]
    if q.message and q.status != "manual" and q.message not in {t.explained for t in failed}:  # else shown above
        blocks.append(Block("text", clean(q.message)))
    if failed:
        blocks += [Block("text", "Failed tests:"), *(b for t in failed for b in _test_blocks(t, clean))]
    if q.rubric:
        blocks.append(Block("text", " " + clean(q.rubric), "Rubric:"))
    return blocks


def document(report: Report, redact: Iterable[str] = ()) -> list[Block]:
    """The feedback of one report, sanitized (see `sanitize`; `redact` lists other students' names)."""
    own = {PurePath(report.submission).name}
    redact = [name for name in redact if name != report.student]

    def clean(text: str) -> str:
        return sanitize(text, own, redact)

    manual = sum(q.max_points for q in report.questions if q.status == "manual")
    blocks = [Block("title", f"Homework 3 feedback: {clean(report.student)}"),
              Block("text", f"Submission: {clean(PurePath(report.submission).name)}"),
              Block("text", f" ({format_points(manual)} points still to be graded by hand)" if manual else "",
                    f"Total: {_points(report.total, report.max_total)}")]
    for q in report.questions:
        blocks += _question_blocks(q, clean)
    if not report.sandboxed:
        blocks.append(Block("text", "Note: this submission was graded without the sandbox."))
    if report.notes:
        blocks += [Block("heading", "Notes"), *(Block("item", clean(note)) for note in report.notes)]
    return blocks


def _shown_lines(text: str) -> str:
    """`text` with each of its lines `shown` (its line breaks kept)."""
    return "\n".join(shown(line) for line in text.split("\n"))


def _markdown(block: Block) -> str:
    """One block as Markdown."""
    indent = "  " * block.depth
    if block.kind == "code":
        return "\n".join(indent + line for line in code_block(_shown_lines(block.text)).splitlines())
    text = inline(block.text, first=not block.lead and block.kind == "text")
    if block.lead:  # the text's leading space (" (0 / 0.75)") separates it from the lead
        text = f"**{inline(block.lead)}**" + (" " if block.text.startswith(" ") and text else "") + text
    prefix = {"title": "# ", "heading": "## ", "item": indent + "- "}.get(block.kind, "")
    return prefix + text


def render(report: Report, redact: Iterable[str] = ()) -> str:
    """The Markdown feedback of one report (see `document`)."""
    blocks = document(report, redact)
    out = [_markdown(blocks[0])]
    for previous, block in zip(blocks, blocks[1:]):
        out.append(("\n" if previous.kind in LISTED and block.kind in LISTED else "\n\n") + _markdown(block))
    return "".join(out) + "\n"


def write_feedback(report: Report, folder: Path, redact: Iterable[str] = (), stem: str | None = None) -> Path:
    """Write `folder/<stem>.md` (the folder is created) and return its path. `stem` defaults to the student's own
    (`names.file_stems`)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem or file_stems([report.student])[report.student]}.md"
    write_text_atomic(path, render(report, redact))
    return path


def write_all_feedback(reports: list[Report], folder: Path) -> list[Path]:
    """One feedback file per report (see `write_feedback`), each with every other student's name redacted, each
    student's file name their own (`names.file_stems`: `bob` and `bob.` never share one)."""
    names = [r.student for r in reports]
    stems = file_stems(names)
    return [write_feedback(report, folder, names, stems[report.student]) for report in reports]
