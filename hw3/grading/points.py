"""The homework's questions and their points: the one table every grading tool reads.

Auto questions are scored by `check("<id>", ...)` cells; manual ones are graded by hand against their
rubric. Totals: Q1 3, Q2 3, Q3 4, Q4 20 (30 points, 24 of them automatic).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["auto", "manual"]


class Question(NamedTuple):
    """One graded item: `id` as used by check cells, `kind` auto or manual, `rubric` for manual ones."""

    id: str
    title: str
    max_points: float
    kind: Kind
    rubric: str = ""


QUESTIONS: tuple[Question, ...] = (
    Question("q1", "CNNs vs RNNs: two benefits each way", 3, "manual",
             "0.75 per valid, distinct benefit: two of CNNs over RNNs and two of RNNs over CNNs for image "
             "classification (a benefit repeated or not specific to the comparison earns nothing)."),
    Question("q2", "RNN recurrence: y_T from the closed form", 1.5, "auto"),
    Question("q2.written", "RNN recurrence: what the output unit computes", 1.5, "manual",
             "0.75 for unrolling h_t = x_t − h_{t−1} to h_T = Σ_k (−1)^{T−k} x_k; 0.75 for concluding that "
             "for even T, y_T = σ(1000·((x_2 + x_4 + …) − (x_1 + x_3 + …))) ≈ 1 when the even-position "
             "inputs sum to more than the odd-position ones, ≈ 0 when less, and exactly 0.5 on a tie."),
    Question("q3a", "Self-attention: token norms", 0.5, "auto"),
    Question("q3b", "Self-attention: weights and outputs", 2, "auto"),
    Question("q3b.written", "Self-attention: which tokens the outputs approximate", 1, "manual",
             "0.25 each for y1 ≈ x1, y2 ≈ x2, y3 ≈ x3; 0.25 for the reason: each token's score with itself "
             "beats its other scores by β², so for huge β the softmax weights approach the identity."),
    Question("q3c", "Self-attention: copying a value to the output", 0.5, "manual",
             "0.5 for explaining that when one key aligns with the query far more than the others, softmax "
             "puts weight ≈ 1 on it, so the output is (a copy of) that token's value."),
    Question("q4.1a", "Tokenizer vocabulary size", 1, "auto"),
    Question("q4.1b", "Train, validation and test sizes", 1, "auto"),
    Question("q4.2a", "BERT + GRU model hyperparameters", 2, "auto"),
    Question("q4.2b", "Counting trainable parameters", 1, "auto"),
    Question("q4.2c", "Freezing BERT", 1, "auto"),
    Question("q4.3a", "Binary accuracy", 2, "auto"),
    Question("q4.3b", "Training epoch", 3, "auto"),
    Question("q4.3c", "Evaluation epoch", 2, "auto"),
    Question("q4.3d", "Training loop with the best checkpoint", 3, "auto"),
    Question("q4.4a", "Predicting the sentiment of a sentence", 2, "auto"),
    Question("q4.4b", "Two reviews of your own", 2, "auto"),
)

BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


def auto_questions() -> tuple[Question, ...]:
    """The questions scored by check cells, in homework order."""
    return tuple(q for q in QUESTIONS if q.kind == "auto")


def max_total() -> float:
    """Points of the whole homework (auto and manual)."""
    return sum(q.max_points for q in QUESTIONS)


def format_points(points: float) -> str:
    """Points as the check lines and reports print them: 2, 1.5, 0.5."""
    return f"{points:g}"
