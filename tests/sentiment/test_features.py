"""Cached frozen-BERT features: FeatureStore (RAM or disk) and CachedBatches (embed each review once, reuse the
persistent cache)."""

from __future__ import annotations

import random

import pytest
import torch

from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.features import CachedBatches, FeatureStore, make_embedder
from hw3.sentiment.model import Features

HIDDEN = 8


def random_features(lengths, seed):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    emb = torch.randn(len(lengths), width, HIDDEN, generator=g) * 3
    for row, n in enumerate(lengths):
        emb[row, n:] = 0
    return Features(emb, torch.tensor(lengths))


@pytest.mark.parametrize("place, on_disk", [("ram", False), ("disk", True)])
def test_feature_store_round_trip_in_ram_and_on_disk(tmp_path, place, on_disk):
    lengths = [3, 5, 1, 7, 2, 4]
    store = FeatureStore(lengths, HIDDEN, place, spill_dir=tmp_path)
    assert store.on_disk == on_disk
    if on_disk:
        assert any(tmp_path.iterdir())  # the spill file lives in spill_dir
    assert store.missing([0]) == [0] and store.missing(range(6)) == list(range(6))
    first = [4, 0, 2]
    feats = random_features([lengths[i] for i in first], seed=1)
    store.put(first, feats)
    assert not store.missing(first) and store.missing([0, 1]) == [1]
    rest = [5, 1, 3]
    store.put(rest, random_features([lengths[i] for i in rest], seed=2))
    assert not store.missing(range(6))
    got = store.get([2, 4, 0])
    assert got.embedded.dtype == torch.float32 and got.embedded.shape == (3, 3, HIDDEN)
    assert got.lengths.tolist() == [1, 2, 3]
    expected = {i: feats.embedded[row, : lengths[i]].half().float() for row, i in enumerate(first)}
    for row, i in enumerate([2, 4, 0]):
        assert torch.equal(got.embedded[row, : lengths[i]], expected[i])
        assert (got.embedded[row, lengths[i]:] == 0).all()


def test_ram_and_disk_stores_give_identical_results(tmp_path):
    rng = random.Random(0)
    lengths = [rng.randint(1, 30) for _ in range(40)]
    ram = FeatureStore(lengths, HIDDEN)
    disk = FeatureStore(lengths, HIDDEN, "disk", spill_dir=tmp_path)
    assert not ram.on_disk and disk.on_disk
    order = list(range(40))
    rng.shuffle(order)
    for start in range(0, 40, 7):
        idx = order[start : start + 7]
        feats = random_features([lengths[i] for i in idx], seed=start)
        ram.put(idx, feats)
        disk.put(idx, feats)
    for start in range(0, 40, 9):
        idx = list(range(start, min(start + 9, 40)))
        a, b = ram.get(idx), disk.get(idx)
        assert torch.equal(a.embedded, b.embedded) and torch.equal(a.lengths, b.lengths)


@pytest.fixture(scope="module")
def model(frozen_tiny_model):
    return frozen_tiny_model


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(2)
    ids = [[101, *(rng.randrange(1000, 30000) for _ in range(rng.randint(1, 40))), 102] for _ in range(37)]
    return ids, [k % 2 for k in range(37)]


@pytest.mark.parametrize("place", ["ram", "disk"])
def test_cached_batches_embed_each_review_once_and_match_direct_embedding(tmp_path, model, corpus, place):
    ids, labels = corpus
    calls: list[int] = []
    embed = make_embedder(model, None)

    def counting_embed(text):
        calls.append(text.shape[0])
        return embed(text)

    iterator = BucketIterator(ids, labels, batch_size=5, seed=4)
    store = FeatureStore([len(x) for x in ids], model.bert.config.hidden_size, place, spill_dir=tmp_path)
    cached = CachedBatches(iterator, store, counting_embed)
    assert len(cached) == len(iterator) == 8
    for epoch in range(3):
        cached.set_epoch(epoch)
        reference = BucketIterator(ids, labels, batch_size=5, seed=4)
        reference.set_epoch(epoch)
        direct_batches = list(reference)
        got_batches = list(cached)
        assert len(got_batches) == len(direct_batches)
        for (feats, y), (text, y_ref) in zip(got_batches, direct_batches):
            assert isinstance(feats, Features)
            assert torch.equal(y, y_ref)
            direct = model.embed(text)
            assert torch.equal(feats.lengths, direct.lengths)
            assert feats.embedded.shape == direct.embedded.shape
            assert torch.allclose(feats.embedded, direct.embedded, atol=1e-2, rtol=1e-3)
            with torch.no_grad():
                assert torch.allclose(model(feats), model(text), atol=1e-2)
        if epoch == 0:
            assert sum(calls) == len(ids) and len(calls) == len(iterator)
    assert sum(calls) == len(ids)  # later epochs reuse the stored features


def test_make_embedder_runs_without_autograd(model):
    out = make_embedder(model, None)(torch.tensor([[101, 2204, 102]]))
    assert not out.embedded.requires_grad and out.lengths.tolist() == [3]
    low = make_embedder(model, torch.bfloat16)(torch.tensor([[101, 2204, 102]]))
    assert torch.allclose(low.embedded.float(), out.embedded, atol=5e-2)


def test_store_rows_are_read_back_in_any_order_and_subset(tmp_path):
    lengths = [3, 1, 4, 2]
    for store in (FeatureStore(lengths, HIDDEN), FeatureStore(lengths, HIDDEN, "disk", spill_dir=tmp_path)):
        full = torch.randn(4, 4, HIDDEN) * (torch.arange(4) < torch.tensor(lengths)[:, None]).unsqueeze(-1)
        store.put([2, 0], Features(full[[2, 0]], torch.tensor([4, 3])))
        store.put([3, 1], Features(full[[3, 1], :2], torch.tensor([2, 1])))
        got = store.get([1, 3, 2])
        assert got.lengths.tolist() == [1, 2, 4] and got.embedded.shape == (3, 4, HIDDEN)
        torch.testing.assert_close(got.embedded, full[[1, 3, 2]].half().float())


def test_iterating_flushes_subnormals_only_while_the_pass_runs(model, corpus):
    ids, labels = corpus
    tiny = torch.tensor([1e-40])
    iterator = BucketIterator(ids, labels, batch_size=5, shuffle=False)
    cached = CachedBatches(iterator, FeatureStore([len(x) for x in ids], model.bert.config.hidden_size), make_embedder(model, None))
    for _ in cached:
        assert (tiny * 1.0).item() == 0.0  # flushed inside the loop
    assert (tiny * 1.0).item() != 0.0  # and not after it
