"""The grading corpus: the small part of the embedded sample a Q4 notebook trains on while it is graded,
and its frozen-BERT features, computed once per batch.

Q4's checks score each function on the grader's own inputs (tiny models, generated batches) and never on
how well the notebook's model learned, so training on all 400 reviews of the sample only costs time
(about 130 of a submission's 150 CPU-seconds). The grading build (`withheld`) therefore ships, as its
embedded sample, the `PER_LABEL` shortest reviews of each split and label (`write_corpus`): a graded
notebook loads them the way a student's loads the sample, and trains in seconds. `grading_splits()` is
what `load_splits` gives that notebook, so q4.1b's expected sizes come from the grader's own copy.

`prefill(folder)` computes the BERT features of those reviews once, in the grader's process, into the
persistent feature cache (`hw3.sentiment.features.fill_cache`: content-addressed by the encoder's
weights, the compute dtype and each review's token ids, checksummed, no pickle). The batch shares the
folder read-only into every sandbox (`HW3_FEATURE_CACHE`), so a notebook's `cache_features` reads them
instead of running BERT. A notebook that tokenizes differently simply misses the cache and computes its
own features: scores never depend on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PER_LABEL = {"train": 8, "test": 4}  # reviews of each label: 16 training reviews (11 train, 5 valid), 8 test


def selection() -> dict[tuple[str, str], list[Path]]:
    """{(split, label name): the chosen files of the embedded sample}: the PER_LABEL shortest (by bytes,
    then name), listed in name order, as `read_split` reads a folder."""
    from hw3.sentiment.data import LABELS, review_files, sample_root

    chosen = {}
    for split, count in PER_LABEL.items():
        for label in LABELS:
            files = review_files(sample_root() / split / label)
            shortest = sorted(files, key=lambda f: (f.stat().st_size, f.name))[:count]
            chosen[split, label] = sorted(shortest)
    return chosen


def grading_splits():
    """The Splits a graded notebook's `load_splits` gives (train/valid cut with the homework's seed)."""
    from hw3.sentiment.data import LABELS, Review, Splits, read_review, split_train_valid

    chosen = selection()

    def read(split: str) -> list[Review]:
        return [Review(read_review(f), label) for name, label in LABELS.items() for f in chosen[split, name]]

    train, valid = split_train_valid(read("train"))
    return Splits(train, valid, read("test"))


def write_corpus(package: Path) -> None:
    """Replace the embedded sample of the hw3 copy at `package` (a grading build's hw3/) by the grading corpus."""
    root = package / "sentiment" / "corpus" / "aclImdb"
    shutil.rmtree(root)
    for (split, label), files in selection().items():
        folder = root / split / label
        folder.mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, folder / f.name)


def default_folder() -> Path:
    """Where the batch keeps the corpus features: $HW3_CACHE/grading-features (~/.cache/hw3 by default)."""
    from hw3.sentiment.data import cache_dir

    return cache_dir() / "grading-features"


def corpus_ids() -> list[list[int]]:
    """The token ids of every review of the grading corpus, encoded the way the Q4 notebook encodes them."""
    from hw3.sentiment.encoders import resolve_encoder
    from hw3.sentiment.tokenizer import encode_batch, load_tokenizer

    tokenizer = load_tokenizer(resolve_encoder("bundled"))
    texts = [review.text for part in grading_splits() for review in part]
    return encode_batch(tokenizer, texts, tokenizer.model_max_length)


def prefill(folder: Path | None = None) -> Path:
    """Fill `folder` (default: `default_folder()`) with the corpus features, once; world-readable for the sandbox."""
    import torch

    from hw3.sentiment.encoders import load_bert, resolve_encoder
    from hw3.sentiment.features import fill_cache

    folder = Path(folder or default_folder())
    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        fill_cache(load_bert(resolve_encoder("bundled")), corpus_ids(), folder)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return folder
