"""Reading notebooks for grading: vetted before they are read, parsed within bounds, one-line errors.

A notebook file is opened only once it is known to be a regular file (`read_regular`: no links, FIFOs,
sockets or devices, not over the size limit), read once, and kept without its outputs (`parse_notebook`):
outputs are never run or reported, and a file over INLINE_BYTES is decoded in a child process with its own
memory and time limits, so that no JSON, however built, costs the grader more than its limits.

A check call is `check("<id>", arg, ...)` in a code cell. The registry records, for each call, the
cell it sits in, the source of its arguments (the names the grader looks up in the kernel afterwards)
and a fingerprint of the whole cell (its syntax tree, so comments and spacing do not matter) that tells
an untouched check cell from an edited one. Cells are parsed by Python's own parser; only a cell that is
not Python (IPython magics, shell escapes) gets a line-by-line stand-in for IPython's transforms, linear in
its length (`ipython_lines`), so no cell costs the grader more than a parse.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import NamedTuple

import nbformat

from hw3.errors import HW3Error

from .kernel.sandbox import MAX_NOTEBOOK_MB

MAX_CELL_SOURCE = 200_000  # characters: longer code cells are not parsed (no check cell is that long)
MAX_SOURCE_MB = 10  # MB of cell text (outputs excluded) a notebook may hold: honest ones hold a few hundred KB
INLINE_BYTES = 2 * 2**20  # files up to this size are decoded in the grader's process (JSON costs up to ~20x its size)
CHILD_MEMORY = 3 * 2**30  # address space of the child that decodes a larger file
CHILD_SECONDS = 60
KEPT_METADATA = ("hw3", "tags")  # what grading reads of a cell's metadata


class NotebookError(HW3Error):
    """A notebook that cannot be read; the message is one line naming the file and the fix."""


class CheckCall(NamedTuple):
    """One `check("<id>", ...)` call: `cell` its cell index, `arguments` the source after the id."""

    qid: str
    cell: int
    arguments: str
    fingerprint: str


def file_kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words: "a regular file", "a FIFO", "a symbolic link", ..."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def _refused(name: str, mode: int) -> NotebookError:
    """The error for a path that is not a regular file."""
    if stat.S_ISLNK(mode):
        return NotebookError(f"{name} is a symbolic link: submit the notebook file itself")
    return NotebookError(f"{name} is {file_kind(mode)}, not a notebook file: submit the .ipynb file itself")


def _too_big(name: str, size: int) -> NotebookError:
    return NotebookError(f"{name} is {size / 2**20:.0f} MB, over the grader's {MAX_NOTEBOOK_MB} MB limit: clear "
                         f"its outputs (Edit > Clear All Outputs), save and submit it again")


def read_regular(path: Path, name: str | None = None, limit: int = MAX_NOTEBOOK_MB * 2**20) -> bytes:
    """The bytes of the regular file at `path`, vetted before it is opened: NotebookError (naming it `name`,
    default the path) for a link, FIFO, socket, device or folder, or a file over `limit` bytes.

    The file is opened without following a link or blocking (a FIFO swapped in after the check opens at once
    and is refused by its open descriptor's type) and read up to `limit` bytes, so nothing it is or becomes
    can block the grader or make it read without end."""
    name = str(path) if name is None else name
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        raise NotebookError(f"cannot read {name} ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise _refused(name, mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NotebookError(f"cannot read {name} ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refused(name, info.st_mode)
        if info.st_size > limit:
            raise _too_big(name, info.st_size)
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise _too_big(name, len(data))
    return data


def _stripped(text: str, kept: tuple[str, ...], max_source: int) -> str:
    """A notebook's JSON `text` as the JSON of what grading needs: each cell's type, id, source (one string)
    and the `kept` metadata keys; no outputs, attachments or notebook metadata. Standard library only: it
    also runs on its own in a child process. Raises json.JSONDecodeError, RecursionError or MemoryError for
    JSON it cannot decode, and ValueError("<kind>: <detail>") for JSON that is not a notebook (kind
    "notebook"), a cell without source text ("cell") or more than `max_source` characters of cell text
    ("text")."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("notebook: no list of cells")
    cells, size = [], 0
    for cell in data["cells"]:
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ValueError("cell: a cell has no source text")
        size += len(source)
        if size > max_source:
            raise ValueError(f"text: over {max_source // 10**6} MB of cell text")
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        kept_cell = {"cell_type": cell.get("cell_type"), "source": source,
                     "metadata": {key: metadata[key] for key in kept if key in metadata}}
        if isinstance(cell.get("id"), str):
            kept_cell["id"] = cell["id"]
        if cell.get("cell_type") == "code":
            kept_cell.update(outputs=[], execution_count=None)
        cells.append(kept_cell)
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": data.get("nbformat"),
                       "nbformat_minor": data.get("nbformat_minor")})


_CHILD = "import json, sys\n" + inspect.getsource(_stripped) + """
try:
    text = sys.stdin.buffer.read().decode("utf-8")
    sys.stdout.write("ok " + _stripped(text, tuple(sys.argv[1:-1]), int(sys.argv[-1])))
except UnicodeDecodeError:
    sys.stdout.write("unicode")
except json.JSONDecodeError as exc:
    sys.stdout.write(f"json {exc.lineno}")
except ValueError as exc:
    sys.stdout.write("value " + (str(exc).splitlines() or [""])[0][:200])
except (RecursionError, MemoryError) as exc:
    sys.stdout.write("limit " + type(exc).__name__)
"""


def _limit_child() -> None:
    """The child decoder's limits: its address space and CPU time."""
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CHILD_SECONDS, CHILD_SECONDS))


def _stripped_elsewhere(data: bytes, name: str) -> str:
    """`_stripped` of a large file, in a child Python with its own memory and time limits (the same exceptions)."""
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, *KEPT_METADATA, str(MAX_SOURCE_MB * 10**6)],
                              input=data, capture_output=True, timeout=CHILD_SECONDS * 2, preexec_fn=_limit_child)
        answer = done.stdout.decode("utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        answer = "limit time"
    kind, _, rest = answer.partition(" ")
    if kind == "ok":
        return rest
    if kind == "unicode":
        raise UnicodeDecodeError("utf-8", b"", 0, 1, "not UTF-8")
    if kind == "json":
        raise json.JSONDecodeError("not JSON", "\n" * (int(rest) - 1) if rest.isdigit() else "", 0)
    if kind == "value":
        raise ValueError(rest)
    raise NotebookError(f"{name} is too large or too deeply nested to read within the grader's limits "
                        f"({rest or 'the decoder stopped'}): clear its outputs, save and submit it again")


def _not_a_notebook(name: str, reason: str) -> NotebookError:
    """The error for JSON that `_stripped` refused (its ValueError's text) or could not decode."""
    kind, _, detail = reason.partition(": ")
    if kind == "notebook":
        return NotebookError(f"{name} is JSON but not a Jupyter notebook ({detail})")
    if kind == "cell":
        return NotebookError(f"{name} is not a valid Jupyter notebook ({detail})")
    if kind == "text":
        return NotebookError(f"{name} holds {detail} (outputs excluded), over the grader's limit: remove pasted "
                             f"data from its cells, save and submit it again")
    return NotebookError(f"{name} is not valid JSON (ValueError): download it again as .ipynb")  # a 5000-digit number


def parse_notebook(data: bytes, name: str) -> nbformat.NotebookNode:
    """The notebook in `data` (nbformat 4) without its outputs (see `_stripped`); NotebookError naming `name`
    when it is not a readable notebook."""
    try:
        if len(data) <= INLINE_BYTES:
            text = _stripped(data.decode("utf-8"), KEPT_METADATA, MAX_SOURCE_MB * 10**6)
        else:
            text = _stripped_elsewhere(data, name)
    except UnicodeDecodeError:
        raise NotebookError(f"{name} is not UTF-8 text: download it again as .ipynb") from None
    except json.JSONDecodeError as exc:
        raise NotebookError(f"{name} is not valid JSON (line {exc.lineno}): download it again as .ipynb") from None
    except (RecursionError, MemoryError) as exc:
        raise NotebookError(f"{name} is not valid JSON ({type(exc).__name__}): download it again as .ipynb") from None
    except ValueError as exc:
        raise _not_a_notebook(name, str(exc)) from None
    try:
        return nbformat.reads(text, as_version=4, capture_validation_error={})
    except Exception as exc:
        raise NotebookError(f"{name} is not a valid Jupyter notebook ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:100] if str(exc) else ''})") from None


def read_notebook(path: Path, name: str | None = None) -> nbformat.NotebookNode:
    """The notebook at `path` without its outputs (`read_regular`, then `parse_notebook`); NotebookError naming
    it `name` (default: the path) when it is not a readable notebook."""
    name = str(path) if name is None else name
    return parse_notebook(read_regular(path, name), name)


def notebook_paths(folder: Path) -> list[Path]:
    """The .ipynb files under `folder` (Jupyter's checkpoint copies excluded), sorted."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


MAGIC = ("%", "!")


def ipython_lines(source: str) -> str:
    """Python standing in for a cell that uses IPython syntax, built line by line (linear in the cell's length,
    unlike IPython's own transforms, which re-tokenize the whole cell for every magic): a cell magic makes the
    whole cell one call, and each line magic, shell escape (`%time x`, `!ls`, `y = !ls`) or help line (`obj?`),
    with its backslash continuations, becomes a call holding that line's text. The first line's indentation
    is removed from every line, as IPython does."""
    lines = source.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("%%"):
        return f"_ipython_cell_magic({source!r})"
    indent = len(first) - len(first.lstrip())
    out: list[str] = []
    magic: list[str] = []
    for line in lines:
        line = line[indent:] if line[:indent].isspace() else line
        body = line.lstrip()
        target, sep, value = body.partition("=")
        assigned = sep and target.strip().isidentifier() and value.lstrip().startswith(MAGIC)
        if magic or body.startswith(MAGIC) or assigned or (body.endswith("?") and not body.startswith("#")):
            magic.append(line)
            if not line.endswith("\\"):
                out.append(" " * (len(line) - len(body)) + f"_ipython_line({chr(10).join(magic)!r})")
                magic = []
        else:
            out.append(line)
    if magic:
        out.append(f"_ipython_line({chr(10).join(magic)!r})")
    return "\n".join(out)


_PARSING = threading.Lock()


def parse_python(source: str) -> ast.Module:
    """`ast.parse(source)`, one thread at a time: before Python 3.12 the conversion of a syntax tree to Python
    objects keeps its recursion count per process, so two grading threads parsing at once can fail with
    "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905)."""
    with _PARSING:
        return ast.parse(source)


def parse_cell(source: str) -> ast.Module | None:
    """The syntax tree of a code cell (IPython magics and shell escapes allowed, see `ipython_lines`); None if it
    does not parse or is longer than MAX_CELL_SOURCE characters."""
    if len(source) > MAX_CELL_SOURCE:
        return None
    try:
        return parse_python(source)
    except Exception:  # any text can come from a submission: try it as IPython's syntax
        pass
    try:
        return parse_python(ipython_lines(source))
    except Exception:  # what does not parse either has no check calls
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
