"""Q4.1, the data: the tokenizer's vocabulary size (q4.1a) and the sizes of the three splits (q4.1b)."""

from __future__ import annotations

import random
from typing import Any

from .base import Exercise, Key, Marks, Unreadable, describe_plain, numbers, plain, unwrap


class VocabSize(Exercise):
    """q4.1a: `vocab_size` equals the answer key's (the value is the answer: the key's tokenizer is the course's)."""

    kind = "vocab_size"
    tests = ("vocabulary size",)

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, vocab_size: Any) -> Any:
        return plain(vocab_size)

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        want = expected["outputs"]
        with marks.read("vocabulary size"):
            value = unwrap(outputs)  # a Python int, or a numpy or torch integer scalar
            got = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                value == int(value) else None
            if got is None:
                raise Unreadable(f"vocab_size is {describe_plain(outputs)}, expected a whole number")
            if got != want:
                hint = "that is the longest input, not the vocabulary" if got in (510, 512) else \
                    "count the tokens the tokenizer knows (its vocabulary), not the tokens of a text"
                marks.fail("vocabulary size", f"vocab_size is {got}", f"vocab_size = {got}", hint, expected=str(want))


class SplitSizes(Exercise):
    """q4.1b: `sizes = (n_train, n_valid, n_test)` of the data the notebook loaded.

    `hw3 grade` expects the answer key's sizes: both kernels load the same grading corpus. A notebook's public
    check cannot know the student's data (full IMDB in Colab, the sample offline), so there the expectation is
    the `splits` the notebook passes, measured the way the key's sizes measure the key's splits.
    """

    kind = "split_sizes"
    tests = ("split sizes",)

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, sizes: Any, splits: Any = None) -> dict:
        try:
            given = [len(part) for part in splits] if splits is not None and len(splits) == 3 else None
        except Exception:  # not three sized parts
            given = None
        return {"sizes": plain(sizes), "splits": given}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        key = expected["outputs"]
        with marks.read("split sizes"):
            want = [int(n) for n in numbers(key["sizes"], "the answer key", (3,))]
            if expected.get("public") and key["splits"] == want and outputs["splits"]:
                want = outputs["splits"]  # the key's sizes are its splits' lengths: so must the student's be
            got = numbers(outputs["sizes"], "sizes", (3,))
            if got != want:
                hint = ("these are the sizes before the split: the validation set is cut from the training reviews"
                        if got[0] + got[1] == want[0] + want[1] + want[1] else
                        "count the reviews in each of the three splits, in the order train, validation, test")
                marks.fail("split sizes", f"sizes is {tuple(int(g) for g in got)}, expected {tuple(want)}",
                           f"sizes = {tuple(int(g) for g in got)}", hint)


KINDS = (VocabSize, SplitSizes)
