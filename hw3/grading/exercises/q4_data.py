"""Q4.1, the data: the tokenizer's vocabulary size and the split sizes."""

from __future__ import annotations

import random
from typing import Any

from ..results import TestResult
from .base import Exercise, Marks, Test, Unreadable, describe_plain, numbers, plain
from .tiny import grader_tokenizer


class VocabSize(Exercise):
    """q4.1a: the size of the tokenizer's vocabulary."""

    tests = (Test("vocabulary size", 1.0),)

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def probe(self, inputs: dict, vocab_size: Any) -> Any:
        return plain(vocab_size)

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        expected = len(grader_tokenizer().vocab)
        with marks.read("vocabulary size"):
            got = outputs if isinstance(outputs, int) and not isinstance(outputs, bool) else None
            if got is None:
                raise Unreadable(f"vocab_size is {describe_plain(outputs)}, expected an int")
            if got != expected:
                hint = ("that is the longest input, not the vocabulary" if got in (510, 512) else
                        "use len(tokenizer.vocab)")
                marks.fail("vocabulary size", f"vocab_size is {got}, expected {expected}", f"vocab_size = {got}", hint)
        return marks.results()


class SplitSizes(Exercise):
    """q4.1b: sizes = (n_train, n_valid, n_test) of the data the notebook loaded.

    In the notebook's own check the expectation is the `splits` it passes (its data: the embedded sample,
    or full IMDB in Colab). `hw3 grade` does not trust them: a grading kernel is offline with an empty
    cache, so it loads the grading build's embedded sample, the grading corpus, and the grader expects the
    sizes of its own copy of it (`corpus.grading_splits`).
    """

    tests = (Test("split sizes", 1.0),)

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def grader_inputs(self, rng: random.Random) -> dict:
        from ..kernel.corpus import grading_splits

        return {"expected": [len(part) for part in grading_splits()]}

    def probe(self, inputs: dict, sizes: Any, splits: Any = None) -> dict:
        try:
            given = [len(part) for part in splits] if splits is not None and len(splits) == 3 else None
        except Exception:  # not three sized parts: the check falls back to the embedded sample
            given = None
        return {"sizes": plain(sizes), "splits": given}

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        from hw3.sentiment.data import load_splits

        marks = Marks(self.tests)
        with marks.read("split sizes"):
            expected = inputs.get("expected") or outputs["splits"] or [len(part) for part in load_splits("sample")]
            got = numbers(outputs["sizes"], "sizes", (3,))
            if got != expected:
                hint = ("these are the sizes before the split: 30% of the training reviews form the validation set"
                        if got[0] + got[1] == expected[0] + expected[1] + expected[1] else
                        "sizes is (len(train_data), len(valid_data), len(test_data))")
                marks.fail("split sizes", f"sizes is {tuple(int(g) for g in got)}, expected {tuple(expected)}",
                           f"sizes = {tuple(int(g) for g in got)}", hint)
        return marks.results()


EXERCISES = {"q4.1a": VocabSize(), "q4.1b": SplitSizes()}
