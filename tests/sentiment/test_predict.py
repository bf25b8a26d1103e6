"""Q4 inference: predict_sentiment, and load_trained on a checkpoint written by `hw3 train`."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from hw3.sentiment import checkpoint
from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.data import load_splits
from hw3.errors import HW3Error
from hw3.sentiment.model import BERTGRUSentiment, freeze_bert, tiny_bert
from hw3.sentiment.predict import load_trained, predict_sentiment
from hw3.sentiment.tokenizer import encode, encode_batch
from hw3.sentiment.training import evaluate

TEXTS = ["This film is terrible", "This film is great", "An absolute masterpiece of cinema.", "meh"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = BERTGRUSentiment(tiny_bert(), 16, 1, 2, True, 0.25)
    freeze_bert(m)
    return m


def test_predict_sentiment_is_sigmoid_of_the_logit(model, bundled_tokenizer):
    for text in TEXTS:
        model.train()
        p = predict_sentiment(model, bundled_tokenizer, text)
        assert not model.training  # predicts in eval mode
        assert isinstance(p, float) and 0.0 <= p <= 1.0
        ids = torch.tensor([encode(bundled_tokenizer, text)])
        with torch.no_grad():
            assert p == pytest.approx(torch.sigmoid(model(ids)).item(), abs=1e-6)


def test_predict_sentiment_cuts_long_reviews_to_512_tokens(model, bundled_tokenizer):
    text = "a wonderful film " * 1000
    seen = []
    hook = model.bert.register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs["input_ids"].shape), with_kwargs=True)
    try:
        p = predict_sentiment(model, bundled_tokenizer, text)
    finally:
        hook.remove()
    assert seen == [torch.Size([1, 512])] and 0.0 <= p <= 1.0


def test_predictions_differ_between_texts(model, bundled_tokenizer):
    assert len({predict_sentiment(model, bundled_tokenizer, t) for t in TEXTS}) == len(TEXTS)


def test_load_trained_round_trips_a_pipeline_checkpoint(trained_run, tiny_encoder_dir, bundled_tokenizer):
    assert trained_run.code == 0, trained_run.stderr
    out = trained_run.out
    ckpt = checkpoint.load(out)
    assert ckpt["format"] == checkpoint.FORMAT and ckpt["encoder"] == str(tiny_encoder_dir.resolve())
    for path in (out, out / "model.pt"):
        loaded, tokenizer = load_trained(path)
        assert not loaded.training
        assert tokenizer.vocab_size == bundled_tokenizer.vocab_size
        assert set(loaded.head_state_dict()) == set(ckpt["head"])
        for k, v in ckpt["head"].items():
            assert torch.equal(loaded.head_state_dict()[k], v), k
        assert loaded.bert.config.hidden_size == 32
    # the loaded model reproduces the run's test metrics (same batches; the run read float16-cached features)
    metrics = json.loads((out / "metrics.json").read_text())
    max_length, batch_size = 32, 64
    assert metrics["config"]["max_length"] == max_length and metrics["config"]["batch_size"] == batch_size
    test = load_splits("sample").test
    ids = encode_batch(tokenizer, [r.text for r in test], max_length)
    batches = BucketIterator(ids, [r.label for r in test], batch_size, shuffle=False, pad_id=tokenizer.pad_token_id)
    test_loss, test_acc = evaluate(loaded, batches, nn.BCEWithLogitsLoss())
    assert test_loss == pytest.approx(metrics["test_loss"], abs=2e-3)
    assert test_acc == pytest.approx(metrics["test_acc"], abs=0.02)
    p = predict_sentiment(loaded, tokenizer, "What a great movie")
    assert 0.0 <= p <= 1.0


def test_load_trained_refuses_a_missing_checkpoint(tmp_path):
    with pytest.raises(HW3Error, match="no checkpoint") as info:
        load_trained(tmp_path / "nothing-here")
    assert "\n" not in str(info.value)


def test_load_trained_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": "something-else", "head": {}}, path)
    with pytest.raises(HW3Error, match="not an hw3 checkpoint"):
        load_trained(path)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64))
@example(b"this is not a checkpoint\n")
def test_any_damaged_file_is_a_one_line_error(tmp_path, data):
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(HW3Error) as info:
        load_trained(path)
    assert "\n" not in str(info.value)
