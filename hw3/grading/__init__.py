"""Autograding for hw3: `check` cells in the notebooks, `hw3 assign` and `hw3 grade`.

Notebooks call `from hw3.grading import check` then `check("<id>", obj, ...)`; every question, its points,
sub-tests and rubric live in the registry `hw3.grading.exercises.registry`.
"""

from .exercises.base import CheckFailed
from .exercises.checks import check
from .exercises.registry import QUESTIONS, Question

__all__ = ["CheckFailed", "QUESTIONS", "Question", "check"]
