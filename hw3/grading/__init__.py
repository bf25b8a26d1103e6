"""Autograding for hw3: `check` cells in the notebooks, `hw3 assign` and `hw3 grade`.

Notebooks call `from hw3.grading import check` then `check("<id>", obj, ...)`; the points of every
question live in `hw3.grading.points`.
"""

from .checks import CheckFailed, check
from .points import QUESTIONS, Question

__all__ = ["CheckFailed", "QUESTIONS", "Question", "check"]
