"""The persistent feature cache: content-addressed entries, damage detection, read-only folders, pre-filling."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hw3.sentiment import feature_cache
from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.feature_cache import FeatureCache, decode_entry, encode_entry, fingerprint
from hw3.sentiment.features import CachedBatches, FeatureStore, fill_cache, make_embedder
from hw3.sentiment.model import tiny_bert

IDS = [101, 7592, 2088, 102]


def features(rows: int = 4, width: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed)).half()


def test_an_entry_round_trips_exactly():
    x = features()
    assert torch.equal(decode_entry(encode_entry(x), 4, 8), x)


@pytest.mark.parametrize("damage", ["truncate", "flip_payload", "flip_checksum", "extend", "empty"])
def test_a_damaged_entry_is_never_trusted(damage):
    data = bytearray(encode_entry(features()))
    if damage == "truncate":
        data = data[:-3]
    elif damage == "flip_payload":
        data[-1] ^= 0x40
    elif damage == "flip_checksum":
        data[20] ^= 0x01
    elif damage == "extend":
        data += b"\0\0"
    else:
        data = bytearray()
    assert decode_entry(bytes(data), 4, 8) is None


def test_an_entry_of_another_shape_is_refused():
    data = encode_entry(features(4, 8))
    assert decode_entry(data, 8, 4) is None and decode_entry(data, 4, 16) is None


def test_the_key_depends_on_encoder_dtype_and_ids(tmp_path):
    keys = {FeatureCache(tmp_path, enc, dtype).key(ids) for enc in ("a", "b") for dtype in ("float32", "bfloat16")
            for ids in (IDS, IDS[:-1] + [103])}
    assert len(keys) == 8
    assert FeatureCache(tmp_path, "a", "float32").key(IDS) == FeatureCache(tmp_path, "a", "float32").key(list(IDS))


def test_the_fingerprint_changes_with_the_weights():
    assert fingerprint(tiny_bert(0)) == fingerprint(tiny_bert(0)) != fingerprint(tiny_bert(1))


def test_get_put_and_a_corrupt_file_reads_as_missing(tmp_path):
    cache = FeatureCache(tmp_path, "enc", "float32")
    assert cache.get(IDS, 8) is None
    cache.put(IDS, features())
    assert torch.equal(cache.get(IDS, 8), features())
    path = cache.path(IDS)
    path.write_bytes(path.read_bytes()[:-10])
    assert cache.get(IDS, 8) is None and (cache.hits, cache.misses) == (1, 2)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.fixture(scope="module")
def model(frozen_tiny_model):
    return frozen_tiny_model


def run_once(model, ids, cache) -> tuple[list, int]:
    """One pass of CachedBatches over ids: (features of each batch, reviews BERT embedded)."""
    embedded = []
    embed = make_embedder(model, None)

    def counting(text):
        embedded.append(text.shape[0])
        return embed(text)

    iterator = BucketIterator(ids, [0] * len(ids), batch_size=4, shuffle=False)
    batches = CachedBatches(iterator, FeatureStore([len(x) for x in ids], model.bert.config.hidden_size), counting, cache)
    return [f.embedded for f, _ in batches], sum(embedded)


def test_a_damaged_entry_is_recomputed_and_rewritten(tmp_path, model):
    ids = [[101, *range(2000, 2000 + n), 102] for n in (3, 5, 8, 2, 6)]
    cache = FeatureCache(tmp_path, fingerprint(model.bert), "float32")
    first, n = run_once(model, ids, cache)
    assert n == 5
    cache.path(ids[2]).write_bytes(b"garbage")
    again, n = run_once(model, ids, cache)
    assert n == 1  # only the damaged review went through BERT
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert cache.get(ids[2], model.bert.config.hidden_size) is not None  # and it is whole again


def test_a_read_only_cache_is_read_and_writes_fail_with_one_notice(tmp_path, model, monkeypatch, capsys):
    ids = [[101, *range(3000, 3000 + n), 102] for n in (4, 7)]
    run_once(model, ids, FeatureCache(tmp_path, fingerprint(model.bert), "float32"))

    def read_only(path, data, durable=True):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(feature_cache, "write_bytes_atomic", read_only)
    more = ids + [[101, 4000, 4001, 102], [101, 4002, 102]]
    _, n = run_once(model, more, FeatureCache(tmp_path, fingerprint(model.bert), "float32"))
    assert n == 2  # the two pre-filled reviews were read, the new ones computed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not writable (Read-only file system" in err and "HW3_FEATURE_CACHE" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_a_really_read_only_folder_works(tmp_path, model):
    ids = [[101, 5000, 5001, 102]]
    run_once(model, ids, FeatureCache(tmp_path, fingerprint(model.bert), "float32"))
    os.chmod(tmp_path, 0o555)
    try:
        _, n = run_once(model, ids + [[101, 5002, 102]], FeatureCache(tmp_path, fingerprint(model.bert), "float32"))
    finally:
        os.chmod(tmp_path, 0o755)
    assert n == 1


def test_the_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(feature_cache.ENV, "off")
    assert feature_cache.for_model(tiny_bert(), "float32") is None


def test_default_folder_follows_hw3_cache_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv(feature_cache.ENV, raising=False)
    monkeypatch.setenv("HW3_CACHE", str(tmp_path))
    assert feature_cache.default_dir() == tmp_path / "features"
    monkeypatch.setenv(feature_cache.ENV, str(tmp_path / "drive"))
    assert feature_cache.default_dir() == tmp_path / "drive"


CHILD = textwrap.dedent("""
    import sys
    from hw3.sentiment.data import load_splits
    from hw3.sentiment.encoders import load_bert, resolve_encoder
    from hw3.sentiment.features import cache_features
    from hw3.sentiment.model import BERTGRUSentiment
    from hw3.sentiment.batching import BucketIterator
    from hw3.sentiment.tokenizer import encode_batch, load_tokenizer

    spec = resolve_encoder("bundled")
    tokenizer, bert = load_tokenizer(spec), load_bert(spec)
    texts = [r.text for r in load_splits("sample").train[: int(sys.argv[1])]]
    ids = encode_batch(tokenizer, texts, tokenizer.model_max_length)
    calls = []
    bert.register_forward_hook(lambda *args: calls.append(1))
    model = BERTGRUSentiment(bert, 256, 1, 2, True, 0.25)
    batches = cache_features(model, BucketIterator(ids, [0] * len(ids), 8, seed=1))
    n = sum(x.embedded.shape[0] for x, _ in batches)
    print("reviews", n, "bert calls", len(calls))
""")


def test_fill_cache_makes_cache_features_in_a_fresh_process_skip_bert(tmp_path, bundled_tokenizer):
    from hw3.sentiment.data import load_splits
    from hw3.sentiment.encoders import load_bert, resolve_encoder
    from hw3.sentiment.tokenizer import encode_batch

    texts = [r.text for r in load_splits("sample").train[:24]]
    ids = encode_batch(bundled_tokenizer, texts, bundled_tokenizer.model_max_length)
    cache = fill_cache(load_bert(resolve_encoder("bundled")), ids, tmp_path, batch_size=8)
    assert cache.misses == 24 and len(list(tmp_path.rglob("*.f16"))) == 24
    env = {**os.environ, feature_cache.ENV: str(tmp_path), "HF_HUB_OFFLINE": "1"}
    child = subprocess.run([sys.executable, "-c", CHILD, "24"], capture_output=True, text=True, env=env, timeout=300)
    assert child.returncode == 0, child.stderr
    assert "reviews 24 bert calls 0" in child.stdout, child.stdout + child.stderr
