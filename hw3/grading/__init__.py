"""Autograding for hw3: `check` cells in the notebooks, `hw3 assign` and `hw3 grade`.

Notebooks call `from hw3.grading import check` then `check("<id>", obj, ...)`; every question, its points and
sub-tests live in the course's `answers/questions.toml`, and every exercise is scored against the answer key.
"""

from .exercises.checks import check, require

__all__ = ["check", "require"]
