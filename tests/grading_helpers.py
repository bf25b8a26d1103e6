"""Helpers shared by the grading tests: the mini answer-key fixture and the CLI."""

from __future__ import annotations

from pathlib import Path

import nbformat

from hw3.cli import main

FIXTURE = Path(__file__).parent / "grading_fixtures" / "mini_answers.ipynb"


def hw3(*argv) -> int:
    """Run `hw3 <argv>` as a user does, through the main CLI."""
    return main([str(a) for a in argv])


def answer_key() -> nbformat.NotebookNode:
    """The mini answer key, freshly read."""
    return nbformat.read(FIXTURE, as_version=4)


def cell(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    """The cell with this id."""
    return next(c for c in nb.cells if c.id == cell_id)


def insert_before(nb: nbformat.NotebookNode, cell_id: str, source: str) -> None:
    """Insert a new code cell with `source` before the cell with this id."""
    index = next(i for i, c in enumerate(nb.cells) if c.id == cell_id)
    nb.cells.insert(index, nbformat.v4.new_code_cell(source))
