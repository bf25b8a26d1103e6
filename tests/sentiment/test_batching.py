"""Length-bucketed batches: coverage, padding, reproducible shuffling, evaluation order, padding economy."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from hw3.sentiment.batching import Batch, BucketIterator, pad_batch

PAD = -1  # never a token id, so padding is unambiguous


def make_corpus(n: int = 1000, seed: int = 0, low: int = 3, high: int = 400):
    """n id lists of random lengths (first id 101, last 102) and 0/1 labels; id k+1000 marks example k."""
    rng = random.Random(seed)
    ids = [[101, 1000 + k, *(rng.randrange(1, 30000) for _ in range(rng.randint(low, high) - 3)), 102] for k in range(n)]
    labels = [rng.randint(0, 1) for _ in range(n)]
    return ids, labels


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


def pad_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def test_pad_batch():
    out = pad_batch([[1, 2, 3], [4], [5, 6]], pad_id=0)
    assert out.dtype == torch.long
    assert out.tolist() == [[1, 2, 3], [4, 0, 0], [5, 6, 0]]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size, pool_batches", [(32, 100), (64, 3), (1000, 100), (7, 1), (1, 100)])
def test_every_example_exactly_once_per_epoch(corpus, shuffle, batch_size, pool_batches):
    ids, labels = corpus
    it = BucketIterator(ids, labels, batch_size, shuffle=shuffle, pad_id=PAD, pool_batches=pool_batches)
    for epoch in range(2):
        it.set_epoch(epoch)
        batches = it.index_batches()
        assert Counter(i for b in batches for i in b) == Counter(range(len(ids)))
        assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(it) == -(-len(ids) // batch_size)
    if pool_batches * batch_size >= len(ids) or not shuffle:
        assert len(batches) == len(it)


def test_batches_hold_the_padded_ids_and_labels(corpus):
    ids, labels = corpus
    it = BucketIterator(ids, labels, 50, pad_id=PAD)
    seen = 0
    for batch in it:
        assert isinstance(batch, Batch)
        text, label = batch
        assert text.dtype == torch.long and label.dtype == torch.float32
        assert text.shape[0] == label.shape[0] <= 50
        lengths = (text != PAD).sum(dim=1)
        assert int(lengths.max()) == text.shape[1]  # padded to the longest of the batch, not further
        for row in range(text.shape[0]):
            k = int(text[row, 1]) - 1000
            n = len(ids[k])
            assert text[row, :n].tolist() == ids[k]
            assert (text[row, n:] == PAD).all()
            assert label[row].item() == labels[k]
            seen += 1
    assert seen == len(ids)


def test_for_x_y_in_iterator(corpus):
    ids, labels = corpus
    n = 0
    for x, y in BucketIterator(ids[:100], labels[:100], 16, shuffle=False):
        assert x.dim() == 2 and y.shape == (x.shape[0],)
        n += x.shape[0]
    assert n == 100


def test_shuffled_epochs_differ_but_replay_for_the_same_seed_and_epoch(corpus):
    ids, labels = corpus
    a = BucketIterator(ids, labels, 32, seed=5)
    epoch0, epoch1 = a.index_batches(), None
    a.set_epoch(1)
    epoch1 = a.index_batches()
    assert epoch0 != epoch1
    b = BucketIterator(ids, labels, 32, seed=5)
    b.set_epoch(1)
    assert b.index_batches() == epoch1
    b.set_epoch(0)
    assert b.index_batches() == epoch0
    c = BucketIterator(ids, labels, 32, seed=6)
    assert c.index_batches() != epoch0


def test_iterating_advances_the_epoch(corpus):
    ids, labels = corpus
    it = BucketIterator(ids, labels, 100, seed=3)
    first = [x[:, 1].tolist() for x, _ in it]
    second = [x[:, 1].tolist() for x, _ in it]
    assert first != second and it.epoch == 2
    it.set_epoch(0)
    assert [x[:, 1].tolist() for x, _ in it] == first


def test_evaluation_order_is_sorted_by_length_and_fixed(corpus):
    ids, labels = corpus
    it = BucketIterator(ids, labels, 64, shuffle=False)
    order = [i for b in it.index_batches() for i in b]
    lengths = [len(ids[i]) for i in order]
    assert lengths == sorted(lengths)
    it.set_epoch(9)
    assert [i for b in it.index_batches() for i in b] == order


def test_bucketing_pads_far_less_than_random_batches(corpus):
    ids, labels = corpus
    lengths = [len(s) for s in ids]
    bs = 32
    perm = list(range(len(ids)))
    random.Random(1).shuffle(perm)
    random_pad = pad_tokens([perm[i : i + bs] for i in range(0, len(perm), bs)], lengths)
    bucket_pad = pad_tokens(BucketIterator(ids, labels, bs).index_batches(), lengths)
    small_pool_pad = pad_tokens(BucketIterator(ids, labels, bs, pool_batches=4).index_batches(), lengths)
    eval_pad = pad_tokens(BucketIterator(ids, labels, bs, shuffle=False).index_batches(), lengths)
    assert random_pad > 50_000
    assert bucket_pad < 0.05 * random_pad
    assert small_pool_pad < 0.4 * random_pad  # pools of 4 batches: sorted within 128 examples only
    assert eval_pad < 0.05 * random_pad
    # the pad tokens actually produced by collate agree with the count
    it = BucketIterator(ids, labels, bs, pad_id=PAD)
    assert sum(int((x == PAD).sum()) for x, _ in it) == pad_tokens(BucketIterator(ids, labels, bs).index_batches(), lengths)


def test_bad_arguments():
    with pytest.raises(ValueError, match="labels"):
        BucketIterator([[1, 2]], [0, 1])
    with pytest.raises(ValueError, match="batch size"):
        BucketIterator([[1, 2]], [0], batch_size=0)
