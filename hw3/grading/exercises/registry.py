"""The homework's question registry: the one table every grading tool reads.

Each question has its id (as used by `check("<id>", ...)` cells), title, kind and points; an automatic one
carries its `Exercise` (inputs, probe, scorer, the named sub-tests with their points, the reference
functions withheld while grading), a manual one its rubric. `hw3 assign` writes the notebooks' point labels
from here. Totals: Q1 3, Q2 3, Q3 4, Q4 20 (30 points, 23 of them automatic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import q2_rnn, q3_attention, q4_data, q4_inference, q4_model, q4_training
from .base import Exercise

Kind = Literal["auto", "manual"]
EXERCISES: dict[str, Exercise] = {**q2_rnn.EXERCISES, **q3_attention.EXERCISES, **q4_data.EXERCISES, **q4_model.EXERCISES,
                                 **q4_training.EXERCISES, **q4_inference.EXERCISES}


@dataclass(frozen=True)
class Question:
    """One graded item: automatic (scored by its `exercise`) or manual (graded by hand against `rubric`)."""

    id: str
    title: str
    kind: Kind
    manual_points: float = 0.0
    rubric: str = ""

    @property
    def exercise(self) -> Exercise | None:
        return EXERCISES.get(self.id) if self.kind == "auto" else None

    @property
    def max_points(self) -> float:
        return self.exercise.max_points if self.exercise else self.manual_points


def auto(qid: str, title: str) -> Question:
    return Question(qid, title, "auto")


def manual(qid: str, title: str, points: float, rubric: str) -> Question:
    return Question(qid, title, "manual", points, rubric)


QUESTIONS: tuple[Question, ...] = (
    manual("q1", "CNNs vs RNNs: two benefits each way", 3,
           "0.75 per valid, distinct benefit: two of CNNs over RNNs and two of RNNs over CNNs for image "
           "classification (a benefit repeated or not specific to the comparison earns nothing)."),
    auto("q2", "RNN recurrence: y_T from the closed form"),
    manual("q2.written", "RNN recurrence: what the output unit computes", 1.5,
           "0.75 for unrolling h_t = x_t − h_{t−1} to h_T = Σ_k (−1)^{T−k} x_k; 0.75 for concluding that "
           "for even T, y_T = σ(1000·((x_2 + x_4 + …) − (x_1 + x_3 + …))) ≈ 1 when the even-position "
           "inputs sum to more than the odd-position ones, ≈ 0 when less, and exactly 0.5 on a tie."),
    auto("q3a", "Self-attention: token norms"),
    auto("q3b", "Self-attention: weights and outputs"),
    manual("q3b.written", "Self-attention: which tokens the outputs approximate", 1,
           "0.25 each for y1 ≈ x1, y2 ≈ x2, y3 ≈ x3; 0.25 for the reason: each token's score with itself "
           "beats its other scores by β², so for huge β the softmax weights approach the identity."),
    manual("q3c", "Self-attention: copying a value to the output", 0.5,
           "0.5 for explaining that when one key aligns with the query far more than the others, softmax "
           "puts weight ≈ 1 on it, so the output is (a copy of) that token's value."),
    auto("q4.1a", "Tokenizer vocabulary size"),
    auto("q4.1b", "Train, validation and test sizes"),
    auto("q4.2a", "BERT + GRU model hyperparameters"),
    auto("q4.2b", "Counting trainable parameters"),
    auto("q4.2c", "Freezing BERT"),
    auto("q4.3a", "Binary accuracy"),
    auto("q4.3b", "Training epoch"),
    auto("q4.3c", "Evaluation epoch"),
    auto("q4.3d", "Training loop with the best checkpoint"),
    auto("q4.4a", "Predicting the sentiment of a sentence"),
    auto("q4.4b", "Two reviews of your own"),
    manual("q4.4b.written", "Does the classifier capture the mood?", 1,
           "0.5 for saying, for each of the two reviews, whether its score matches the review's mood; 0.5 for "
           "a reason or a limit of the model (e.g. sarcasm, negation or mixed opinions)."),
)

BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


def auto_questions() -> tuple[Question, ...]:
    """The questions scored automatically, in homework order."""
    return tuple(q for q in QUESTIONS if q.kind == "auto")


def max_total() -> float:
    """Points of the whole homework (auto and manual)."""
    return sum(q.max_points for q in QUESTIONS)


def format_points(points: float) -> str:
    """Points as the check lines and reports print them: 2, 1.5, 0.5."""
    return f"{points:g}"
