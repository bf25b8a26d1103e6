"""`hw3 assign`: the student notebooks in notebooks/ are generated from the answer keys in answers/.

In code cells each `### BEGIN SOLUTION` … `### END SOLUTION` region becomes a stub, indented like the
region: `# insert code here` and `raise NotImplementedError("<id>: write your solution here")`, <id> being
the exercise checked next. In markdown cells each `<!-- BEGIN ANSWER [id] -->` … `<!-- END ANSWER -->` region
becomes `_Type your answer here._`; with the id of a manual question, the cell's metadata records it
(`hw3.answer`), so the grader can report an untouched answer as "not answered". Each `<!-- points ID ... -->`
becomes the questions' point label from questions.toml, e.g. "(3 points: 2 automatic, 1 graded by hand)", so
labels cannot disagree with the points. A code line `HW3_CHECKS = ...` (the setup cell's) gets the course's
digest, which the notebook checks against the installed hw3. Cells tagged `answer-key-only` (demos that print
an answer a student must write) are left out. Outputs, execution counts and the run's timing metadata are
cleared; everything else (other metadata, cell ids, prompts, check cells) is kept, and the JSON is written in
nbformat's canonical layout, so the result depends only on the answer key: assigning twice gives byte-identical
files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hw3.errors import HW3Error

from .exercises.registry import Homework, format_points
from .notebook import cell_check_calls, cell_source, notebook_paths

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB_COMMENT = "# insert code here"
ANSWER_REGION = re.compile(r"<!--\s*BEGIN ANSWER(?:\s+([\w.]+))?\s*-->.*?<!--\s*END ANSWER\s*-->", re.DOTALL)
ANSWER_MARKER = re.compile(r"<!--\s*(BEGIN|END) ANSWER(?:\s+[\w.]+)?\s*-->")
POINTS_MARKER = re.compile(r"<!--\s*points((?:\s+[\w.]+)+)\s*-->")
KEY_ONLY_TAG = "answer-key-only"
CHECKS_LINE = re.compile(r"^HW3_CHECKS = .*$", re.MULTILINE)  # the setup cell's line that assign fills in
ANSWER_PLACEHOLDER = "_Type your answer here._"


class AssignError(HW3Error):
    """An answer key that cannot be turned into a student notebook; the message is one line."""


def stub_lines(indent: str, qid: str | None) -> list[str]:
    """The two lines that replace a solution region."""
    message = f"{qid}: write your solution here" if qid else "write your solution here"
    return [f"{indent}{STUB_COMMENT}\n", f'{indent}raise NotImplementedError("{message}")\n']


def strip_solutions(source: str, qid: str | None) -> str:
    """`source` with every solution region replaced by a stub; AssignError for unbalanced markers."""
    out: list[str] = []
    begin_line = 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if begin_line:
                raise AssignError(f"line {number}: {BEGIN_SOLUTION} inside the region opened on line {begin_line}: "
                                  f"add {END_SOLUTION} before it")
            begin_line = number
            out.extend(stub_lines(line[: len(line) - len(line.lstrip())], qid))
        elif marker == END_SOLUTION:
            if not begin_line:
                raise AssignError(f"line {number}: {END_SOLUTION} without {BEGIN_SOLUTION}: add the opening marker")
            begin_line = 0
        elif not begin_line:
            out.append(line)
    if begin_line:
        raise AssignError(f"line {begin_line}: {BEGIN_SOLUTION} is never closed: add {END_SOLUTION}")
    text = "".join(out)
    return text[:-1] if text.endswith("\n") and not source.endswith("\n") else text


def strip_answers(source: str, homework: Homework) -> str:
    """`source` with every markdown answer region replaced by the placeholder; AssignError if unbalanced."""
    for qid in answer_ids(source):
        if qid not in homework.by_id or homework.by_id[qid].kind != "manual":
            raise AssignError(f"answer id {qid!r} is not a hand-graded question in {homework.source}")
    text = ANSWER_REGION.sub(ANSWER_PLACEHOLDER, source)
    stray = ANSWER_MARKER.search(text)
    if stray:
        raise AssignError(f"{stray.group(0)} has no matching {'END' if stray.group(1) == 'BEGIN' else 'BEGIN'} marker")
    return POINTS_MARKER.sub(lambda m: points_label(m.group(1).split(), homework), text)


def answer_ids(source: str) -> list[str]:
    """The question ids of a markdown cell's answer regions (`<!-- BEGIN ANSWER q1 -->`), in order."""
    return [m.group(1) for m in ANSWER_REGION.finditer(source) if m.group(1)]


def points_label(ids: list[str], homework: Homework) -> str:
    """The point label of a group of questions: "(4 points: 2.5 automatic, 1.5 graded by hand)"."""
    unknown = [qid for qid in ids if qid not in homework.by_id]
    if unknown:
        raise AssignError(f"points marker names {unknown[0]!r}, which is not a question in {homework.source}")
    questions = [homework.by_id[q] for q in ids]
    auto = sum(q.max_points for q in questions if q.kind == "auto")
    manual = sum(q.max_points for q in questions if q.kind == "manual")
    total = format_points(auto + manual)
    unit = "point" if auto + manual == 1 else "points"
    if not manual:
        return f"({total} {unit})"
    if not auto:
        return f"({total} {unit}, graded by hand)"
    return f"({total} {unit}: {format_points(auto)} automatic, {format_points(manual)} graded by hand)"


def _like(original: str | list[str], text: str) -> str | list[str]:
    """`text` stored the way the original source was (one string or a list of lines)."""
    return text.splitlines(keepends=True) if isinstance(original, list) else text


def next_check_ids(cells: list[dict], homework: Homework) -> list[str | None]:
    """For each cell, the id of the first check call in it or after it (None past the last one)."""
    ids: list[str | None] = [None] * len(cells)
    upcoming = None
    for index in range(len(cells) - 1, -1, -1):
        cell = cells[index]
        if cell.get("cell_type") == "code":
            calls = cell_check_calls(cell_source(cell), index)
            for call in calls:
                question = homework.by_id.get(call.qid)
                if question is None or question.kind != "auto":
                    raise AssignError(f"cell {index + 1}: check id {call.qid!r} is not an automatic question in "
                                      f"{homework.source}: add it there, or remove the check cell")
            upcoming = calls[0].qid if calls else upcoming
        ids[index] = upcoming
    return ids


RUN_METADATA = ("execution", "collapsed", "scrolled")  # written by running the key, not by its author


def student_cell(cell: dict, qid: str | None, homework: Homework, digest: str) -> dict:
    """The student version of one answer-key cell (a new dict; the input is not changed)."""
    out = dict(cell)
    metadata = {k: v for k, v in cell.get("metadata", {}).items() if k not in RUN_METADATA}
    if "metadata" in cell:
        out["metadata"] = metadata
    if cell.get("cell_type") == "code":
        source = CHECKS_LINE.sub(f'HW3_CHECKS = "{digest}"  # the checks this notebook was released with',
                                 strip_solutions(cell_source(cell), qid))
        out["source"] = _like(cell.get("source", ""), source)
        out["outputs"] = []
        out["execution_count"] = None
    elif cell.get("cell_type") == "markdown":
        source = cell_source(cell)
        out["source"] = _like(cell.get("source", ""), strip_answers(source, homework))
        ids = answer_ids(source)
        if ids:
            out["metadata"] = {**metadata, "hw3": {"answer": ids[0]}}
    return out


def student_notebook(answer_key: dict, homework: Homework, digest: str) -> dict:
    """The student notebook (as JSON data) generated from an answer key's JSON data."""
    cells = answer_key["cells"]
    out = dict(answer_key)
    out["cells"] = []
    for index, (cell, qid) in enumerate(zip(cells, next_check_ids(cells, homework)), start=1):
        if KEY_ONLY_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            out["cells"].append(student_cell(cell, qid, homework, digest))
        except AssignError as exc:
            raise AssignError(f"cell {index}, {exc}") from None
    return out


def render(nb: dict) -> str:
    """Notebook JSON in nbformat's canonical layout (what Jupyter writes), ending with a newline."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate(answers: Path, homework: Homework, digest: str = "") -> dict[Path, str]:
    """{student notebook path relative to the notebooks' folder: its text} for every answer key in `answers`
    (`digest`: the course's, written into the setup cell); AssignError naming a bad answer key."""
    if not answers.is_dir():
        raise AssignError(f"no answers folder at {answers}: run from the repository root or pass --answers DIR")
    out = {}
    for path in notebook_paths(answers):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
                raise AssignError("it is not a Jupyter notebook (no list of cells)")
            out[path.relative_to(answers)] = render(student_notebook(data, homework, digest))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AssignError(f"{path} is not a readable notebook ({type(exc).__name__}): fix or re-save it") from None
        except AssignError as exc:
            raise AssignError(f"{path}: {exc}") from None
    return out


def out_of_date(expected: dict[Path, str]) -> list[Path]:
    """The student notebooks whose file differs from (or is missing compared with) what assign writes."""
    return [path for path, text in expected.items()
            if not path.is_file() or path.read_bytes() != text.encode("utf-8")]


def write(expected: dict[Path, str]) -> list[Path]:
    """Write the student notebooks that changed; returns the paths written."""
    written = out_of_date(expected)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(expected[path].encode("utf-8"))
    return written
