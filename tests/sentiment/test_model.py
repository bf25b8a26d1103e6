"""Q4 model: frozen BERT + 2-layer bidirectional GRU + linear head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hw3.sentiment.model import (
    BERTGRUSentiment,
    Features,
    bert_base_random,
    ModelConfig,
    build_model,
    count_parameters,
    freeze_bert,
    tiny_bert,
    total_parameters,
)


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


def random_ids(lengths, seed=0, pad_id=0):
    """Right-padded id batch [B, max(lengths)]: [CLS] random tokens [SEP] then pad_id."""
    g = torch.Generator().manual_seed(seed)
    out = torch.full((len(lengths), max(lengths)), pad_id, dtype=torch.long)
    for row, n in enumerate(lengths):
        out[row, :n] = torch.randint(1000, 30000, (n,), generator=g)
        out[row, 0], out[row, n - 1] = 101, 102
    return out


def make(bert, hidden=32, layers=2, bidirectional=True, seed=1):
    torch.manual_seed(seed)
    model = BERTGRUSentiment(bert, hidden, 1, layers, bidirectional, 0.25)
    freeze_bert(model)
    return model.eval()


def test_homework_model_parameter_counts():
    model = BERTGRUSentiment(bert_base_random(), 256, 1, 2, True, 0.25)
    try:
        assert total_parameters(model) == 112_241_409
        assert count_parameters(model) == 112_241_409
        freeze_bert(model)
        assert count_parameters(model) == 2_759_169
        assert total_parameters(model) == 112_241_409
    finally:
        del model


def test_build_model_gru_configuration(bert):
    model = build_model(bert)
    rnn = model.rnn
    assert isinstance(rnn, nn.GRU)
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers) == (32, 256, 2)
    assert rnn.bidirectional and rnn.batch_first and rnn.dropout == 0.25
    assert (model.out.in_features, model.out.out_features) == (512, 1)
    assert model.dropout.p == 0.25 and model.pad_id == 0
    assert BERTGRUSentiment(bert, 8, 1, 1, False, 0.25).rnn.dropout == 0  # no inter-layer dropout for one layer
    assert BERTGRUSentiment(bert, 8, 1, 1, False, 0.25).out.in_features == 8
    assert model.config == ModelConfig(256, 1, 2, True, 0.25, 0)


def test_model_config_round_trips_and_rebuilds_the_same_architecture(bert):
    config = ModelConfig(hidden_dim=16, n_layers=1, bidirectional=False, dropout=0.1, pad_id=3)
    model = build_model(bert, config)
    assert model.config == config and (model.rnn.hidden_size, model.rnn.num_layers, model.pad_id) == (16, 1, 3)
    rebuilt = build_model(bert, ModelConfig.from_dict(model.config.to_dict()))
    assert {k: v.shape for k, v in rebuilt.head_state_dict().items()} == {k: v.shape for k, v in model.head_state_dict().items()}


@pytest.mark.parametrize("values, fragment", [({"hidden_dim": "256"}, "hidden_dim"), ({"layers": 2}, "unknown"),
                                              ({"bidirectional": 1}, "bidirectional"), ({"n_layers": True}, "n_layers")])
def test_model_config_refuses_wrong_keys_and_types(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelConfig.from_dict(values)


def test_freeze_bert_freezes_exactly_the_bert_parameters(bert):
    model = make(bert)
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith("bert."))
    head = sum(p.numel() for m in (model.rnn, model.out) for p in m.parameters())
    assert count_parameters(model) == head
    assert set(model.head_state_dict()) == {k for k in model.state_dict() if not k.startswith("bert.")}
    for p in bert.parameters():  # leave the shared fixture as it was
        p.requires_grad = True


def test_bert_stays_in_eval_mode_when_the_model_trains(bert):
    model = make(bert)
    model.train()
    assert model.training and model.rnn.training and model.dropout.training
    assert not any(m.training for m in model.bert.modules())
    model.eval()
    assert not any(m.training for m in model.modules())


def test_logits_shape_and_train_mode_dropout(bert):
    model = make(bert)
    ids = random_ids([9, 12, 5])
    with torch.no_grad():
        a, b = model(ids), model(ids)
        assert a.shape == (3, 1) and torch.equal(a, b)  # eval: deterministic
        model.train()
        torch.manual_seed(0)
        c = model(ids)
        assert not torch.allclose(a, c)  # dropout active in training


def test_embed_zeroes_padding_and_ignores_it(bert):
    model = make(bert)
    ids = random_ids([7, 12, 3])
    feats = model.embed(ids)
    assert feats.lengths.tolist() == [7, 12, 3] and feats.lengths.device.type == "cpu"
    assert feats.embedded.shape == (3, 12, 32)
    for row, n in enumerate([7, 12, 3]):
        assert (feats.embedded[row, n:] == 0).all()
        alone = model.embed(ids[row : row + 1, :n]).embedded[0]
        assert torch.allclose(feats.embedded[row, :n], alone, atol=1e-5)


def test_without_padding_the_head_reads_the_final_hidden_states(bert):
    model = make(bert)
    ids = random_ids([10, 10])
    with torch.no_grad():
        feats = model.embed(ids)
        _, hidden = model.rnn(feats.embedded)
        expected = model.out(torch.cat((hidden[-2], hidden[-1]), dim=1))
        assert torch.allclose(model(ids), expected, atol=1e-6)


def test_unidirectional_logit_does_not_depend_on_padding(bert):
    # the forward direction never sees the trailing padding: by construction
    model = make(bert, layers=1, bidirectional=False)
    lengths = [6, 11, 17, 4]
    ids = random_ids(lengths, seed=3)
    with torch.no_grad():
        batch = model(torch.cat((ids, torch.zeros(4, 9, dtype=torch.long)), dim=1))
        for row, n in enumerate(lengths):
            alone = model(ids[row : row + 1, :n])
            assert torch.allclose(batch[row], alone[0], atol=1e-5)


def test_logit_alone_equals_logit_inside_a_padded_batch(bert):
    model = make(bert)  # the homework's shape: 2 layers, bidirectional
    lengths = [6, 11, 17, 4]
    ids = random_ids(lengths, seed=3)
    with torch.no_grad():
        batch = model(ids)
        for row, n in enumerate(lengths):
            alone = model(ids[row : row + 1, :n])
            assert torch.allclose(batch[row], alone[0], atol=1e-5), (n, batch[row].item(), alone.item())


def test_cached_features_path_equals_the_ids_path(bert):
    model = make(bert)
    ids = random_ids([8, 15, 3, 11], seed=5)
    with torch.no_grad():
        direct = model(ids)
        feats = model.embed(ids)
        assert torch.equal(model(feats), direct)
        assert torch.equal(model.classify(feats), direct)
        # features as a FeatureStore keeps them (float16) give nearly the same logits
        rounded = Features(feats.embedded.half().float(), feats.lengths)
        assert torch.allclose(model(rounded), direct, atol=1e-2)


def test_bf16_compute_gives_close_logits_and_float32_grads_on_master_weights(bert):
    model = make(bert)
    ids = random_ids([12, 9, 20, 5], seed=7)
    with torch.no_grad():
        ref = model(ids)
        model.compute_dtype = torch.bfloat16
        low = model(ids)
    assert low.dtype == torch.float32
    assert torch.allclose(low, ref, atol=2e-2)
    assert not torch.equal(low, ref)  # it really computed in bfloat16
    model.train()
    model.zero_grad()
    loss = nn.BCEWithLogitsLoss()(model(ids).squeeze(1), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("bert."):
            assert p.grad is None
        else:
            assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32, name
            assert torch.isfinite(p.grad).all()
    assert any(p.grad.abs().sum() > 0 for n, p in model.rnn.named_parameters())


def test_tiny_bert_is_deterministic_per_seed():
    a, b, c = tiny_bert(seed=3), tiny_bert(seed=3), tiny_bert(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training and a.config.hidden_size == 32 and a.config.vocab_size == 30522


def test_bert_base_for_counting_takes_no_memory_and_real_weights_on_request():
    """The Q4 notebook counts bert-base's parameters: on the meta device that costs no memory (440 MB of weights
    otherwise, held by a graded kernel whose cell stops before its `del`); a real device gets real weights."""
    counted = bert_base_random()
    assert {p.device.type for p in counted.parameters()} == {"meta"}
    assert sum(p.numel() for p in counted.parameters()) == 109_482_240
    weights = bert_base_random("cpu")
    try:
        assert {p.device.type for p in weights.parameters()} == {"cpu"}
        assert weights.embeddings.word_embeddings.weight.std().item() > 0
    finally:
        del weights
