"""Names and other text from students, as data: what they show as on a terminal, in Markdown, in a CSV cell,
and the feedback file each student gets.

A student's name is the name of a file or folder they submitted, so it may hold anything a file name can:
newlines, terminal escapes, bidirectional overrides, a spreadsheet formula. It stays the student's key
(the store, the course key's inputs, the hand-graded sheet), and wherever it is shown it goes through `shown`,
which writes every character that could act on what displays it (control and format characters, line and
paragraph separators) as its Python escape, and a backslash as two, so that two different names never
show the same. `csv_cell` adds the OWASP rule for spreadsheets; `file_stems` gives every student a feedback
file name of their own.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from pathlib import PurePath

ACTIVE = ("Cc", "Cf", "Zl", "Zp")
"""Unicode categories that act on what displays the text: control, format (bidi overrides, zero-width), line and
paragraph separators."""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads a cell starting with as a formula (OWASP: CSV injection)."""
MAX_STEM = 100  # characters of a feedback file name (before its hash suffix and extension)


def shown(text: object) -> str:
    """`text` as it may be shown anywhere: one line, every active character (ACTIVE categories) written as its
    Python escape (`\\x1b`, `\\n`, `\\u202e`) and a backslash as two, so distinct texts show distinctly."""
    return "".join(ascii(c)[1:-1] if c == "\\" or unicodedata.category(c) in ACTIVE else c for c in str(text))


def csv_cell(text: object) -> str:
    """`text` for a CSV cell a spreadsheet will open: `shown`, and a leading `'` where a spreadsheet would read
    the cell as a formula (it starts with = + - @, a tab or a carriage return)."""
    cell = shown(text)
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def from_csv_cell(cell: str, names: list[str]) -> str | None:
    """The name among `names` that `cell` holds, written by `csv_cell` (or as the name itself); None if none."""
    known = {csv_cell(name): name for name in names} | {name: name for name in names}
    return known.get(cell) or known.get(cell.removeprefix("'"))


def safe_stem(name: str) -> str:
    """`name` as a file name: letters, digits and `.-_` kept, anything else `_`, no leading or trailing dot,
    at most MAX_STEM characters ("student" when nothing is left)."""
    return re.sub(r"[^\w.-]", "_", name, flags=re.ASCII).strip(".")[:MAX_STEM] or "student"


def _hashed_stem(name: str) -> str:
    """The safe stem of `name` and the first 10 hex digits of its sha256."""
    return f"{safe_stem(name)}-{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


def file_stems(names: list[str]) -> dict[str, str]:
    """{name: its feedback file name without extension}, distinct for distinct names even on a file system that
    ignores case: the name itself where it is a safe stem (`safe_stem`) that no other name's stem equals
    ignoring case, else its safe stem and a hash of the name (`_hashed_stem`)."""
    stems = {name: name if safe_stem(name) == name else _hashed_stem(name) for name in names}
    while True:
        counts = Counter(stem.casefold() for stem in stems.values())
        clashing = [name for name, stem in stems.items() if counts[stem.casefold()] > 1 and stem != _hashed_stem(name)]
        if not clashing:
            return stems
        for name in clashing:
            stems[name] = _hashed_stem(name)


def shown_path(path: str) -> str:
    """A submitted path's last part, shown (`shown`)."""
    return shown(PurePath(path).name)
