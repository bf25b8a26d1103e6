"""Autograding for hw3: `check` cells in the notebooks, `hw3 assign` and `hw3 grade`.

Notebooks call `from hw3.grading import check` then `check("<id>", obj, ...)`; every question, its points,
sub-tests and rubric live in the registry `hw3.grading.questions`.
"""

from .checks import check
from .exercise import CheckFailed
from .questions import QUESTIONS, Question

__all__ = ["CheckFailed", "QUESTIONS", "Question", "check"]
