"""Length-bucketed batches (BucketIterator semantics) over tokenized reviews.

Training epochs: shuffle, cut into pools of `pool_batches` batches, sort each pool by length, cut the
pool into batches and shuffle the batch order, so reviews of similar length share a batch (little
padding) while every epoch sees a new order. Evaluation: sort everything by length, no shuffling.
The order of epoch e depends only on (seed, e), so a resumed run replays exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from .data import SEED

DEFAULT_BATCH_SIZE = 128


class Batch(NamedTuple):
    """One batch: `text` LongTensor [B, T] of token ids padded with [PAD] (or Features), `label` FloatTensor [B]."""

    text: object
    label: torch.Tensor


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Right-pad id lists to the longest: LongTensor [B, max_len]."""
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


class BucketIterator:
    """Iterate over Batch(text [B, T], label [B]) in length buckets.

    ids: token-id lists (one per example, [CLS] … [SEP]); labels: 0/1 per example.
    `set_epoch(e)` selects the shuffled order of epoch e; iterating also advances it by one.
    """

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int], batch_size: int = DEFAULT_BATCH_SIZE,
                 shuffle: bool = True, pad_id: int = 0, seed: int = SEED, pool_batches: int = 100,
                 device: torch.device | str = "cpu") -> None:
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} examples but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.ids, self.labels = ids, torch.as_tensor(labels, dtype=torch.float)
        self.batch_size, self.shuffle, self.pad_id = batch_size, shuffle, pad_id
        self.seed, self.pool_batches, self.device = seed, pool_batches, torch.device(device)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.ids) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffled order of `epoch` for the next pass."""
        self.epoch = epoch

    def index_batches(self) -> list[list[int]]:
        """Example indices of every batch of the current epoch, in iteration order."""
        lengths = [len(s) for s in self.ids]
        if not self.shuffle:
            order = sorted(range(len(self.ids)), key=lengths.__getitem__)
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.ids), generator=gen).tolist()
        pool = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]

    def collate(self, indices: Sequence[int]) -> Batch:
        """Batch for the given example indices, on the iterator's device."""
        text = pad_batch([self.ids[i] for i in indices], self.pad_id).to(self.device)
        return Batch(text, self.labels[list(indices)].to(self.device))

    def __iter__(self) -> Iterator[Batch]:
        batches = self.index_batches()
        self.epoch += 1
        return (self.collate(b) for b in batches)
