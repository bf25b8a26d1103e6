"""Reading notebooks for grading: one-line errors for bad files, and the registry of check calls.

A check call is `check("<id>", arg, ...)` in a code cell. The registry records, for each call, the
cell it sits in, the source of its arguments (the names the grader looks up in the kernel afterwards)
and a fingerprint of the whole cell (its syntax tree, so comments and spacing do not matter) that tells
an untouched check cell from an edited one.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import nbformat

from hw3.errors import HW3Error

from .kernel.sandbox import MAX_NOTEBOOK_MB

MAX_CELL_SOURCE = 200_000  # characters: longer code cells are not parsed (no check cell is that long)


class NotebookError(HW3Error):
    """A notebook that cannot be read; the message is one line naming the file and the fix."""


class CheckCall(NamedTuple):
    """One `check("<id>", ...)` call: `cell` its cell index, `arguments` the source after the id."""

    qid: str
    cell: int
    arguments: str
    fingerprint: str


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path` (nbformat 4); NotebookError when it is not a readable notebook."""
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise NotebookError(f"cannot read {path} ({exc.strerror})") from None
    if size > MAX_NOTEBOOK_MB * 2**20:
        raise NotebookError(f"{path} is {size / 2**20:.0f} MB, over the grader's {MAX_NOTEBOOK_MB} MB limit: clear "
                            f"its outputs (Edit > Clear All Outputs), save and submit it again")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotebookError(f"{path} is not UTF-8 text: download it again as .ipynb") from None
    except OSError as exc:
        raise NotebookError(f"cannot read {path} ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"{path} is not valid JSON (line {exc.lineno}): download it again as .ipynb") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # nested too deeply, a 5000-digit number, ...
        raise NotebookError(f"{path} is not valid JSON ({type(exc).__name__}): download it again as .ipynb") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError(f"{path} is JSON but not a Jupyter notebook (no list of cells)")
    try:
        nb = nbformat.reads(text, as_version=4, capture_validation_error={})
        for cell in nb.cells:
            if cell.cell_type == "code" and not isinstance(cell.source, str):
                raise TypeError("a code cell has no source text")
    except Exception as exc:
        raise NotebookError(f"{path} is not a valid Jupyter notebook ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:100] if str(exc) else ''})") from None
    return nb


def notebook_paths(folder: Path) -> list[Path]:
    """The .ipynb files under `folder` (Jupyter's checkpoint copies excluded), sorted."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@lru_cache(maxsize=1)
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def parse_cell(source: str) -> ast.Module | None:
    """The syntax tree of a code cell (IPython magics and shell escapes allowed); None if it does not parse
    or is longer than MAX_CELL_SOURCE characters."""
    if len(source) > MAX_CELL_SOURCE:
        return None
    try:
        return ast.parse(_transformer().transform_cell(source))
    except Exception:  # any text can come from a submission: what does not parse has no check calls
        return None


def _check_id(node: ast.AST) -> str | None:
    """The id of a `check("<id>", ...)` call node, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def cell_source(cell: dict) -> str:
    """A cell's source as one string (notebook files may store it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def fingerprint(source: str) -> str:
    """What identifies a code cell's content: its syntax tree (comments and spacing ignored), else its text."""
    tree = parse_cell(source)
    return ast.dump(tree) if tree is not None else "text:" + source


def cell_check_calls(source: str, cell: int) -> list[CheckCall]:
    """The check calls of one code cell, in source order."""
    tree = parse_cell(source)
    if tree is None:
        return []
    key = ast.dump(tree)  # fingerprint(source), without parsing twice
    calls = []
    for node in ast.walk(tree):
        qid = _check_id(node)
        if qid is not None:
            arguments = [ast.unparse(a) for a in node.args[1:]]
            arguments += [ast.unparse(k) if k.arg is None else f"{k.arg}={ast.unparse(k.value)}" for k in node.keywords]
            calls.append((node.lineno, node.col_offset, CheckCall(qid, cell, ", ".join(arguments), key)))
    return [call for *_, call in sorted(calls, key=lambda item: item[:2])]


def check_calls(cells: list) -> list[CheckCall]:
    """Every check call of a notebook's cells (dicts or NotebookNodes), in notebook order."""
    calls = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") == "code":
            calls.extend(cell_check_calls(cell_source(cell), index))
    return calls


def regions(calls: list[CheckCall]) -> dict[str, range]:
    """Cells belonging to each checked question: from after the previous check cell to its own check cell."""
    out: dict[str, range] = {}
    start = 0
    for call in sorted(calls, key=lambda c: c.cell):
        out.setdefault(call.qid, range(min(start, call.cell), call.cell + 1))
        start = max(start, call.cell + 1)
    return out
