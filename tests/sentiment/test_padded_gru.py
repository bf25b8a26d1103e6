"""The GRU over right-padded batches: the padded-directions path (CPU default) equals the packed one (GPU default)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hw3.sentiment.padded_gru import final_states, reverse_within_lengths


def batch(lengths, features=6, seed=0):
    """Right-padded random x [B, T, F] (zeros after each length) and its lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), int(lengths.max()), features, generator=g)
    x[torch.arange(x.shape[1]) >= lengths[:, None]] = 0
    return x, lengths


def alone(rnn, x, lengths):
    """Reference: each sequence run alone through the nn.GRU, cat(hidden[-2], hidden[-1])."""
    rows = []
    for row, n in zip(x, lengths):
        _, hidden = rnn(row[None, :n])
        rows.append(torch.cat([hidden[-2], hidden[-1]], 1) if rnn.bidirectional else hidden[-1])
    return torch.cat(rows)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("packed", [True, False])
def test_final_states_equal_each_sequence_run_alone(bidirectional, packed):
    torch.manual_seed(0)
    rnn = nn.GRU(6, 5, num_layers=2, bidirectional=bidirectional, batch_first=True, dropout=0.25).eval()
    x, lengths = batch([7, 3, 1, 7, 5])
    got = final_states(rnn, x, lengths, packed=packed)
    assert got.shape == (5, 10 if bidirectional else 5)
    torch.testing.assert_close(got, alone(rnn, x, lengths), rtol=1e-5, atol=1e-6)


def test_packed_and_padded_paths_give_the_same_gradients():
    torch.manual_seed(1)
    rnn = nn.GRU(6, 4, num_layers=2, bidirectional=True, batch_first=True).eval()
    x, lengths = batch([9, 2, 6, 4], seed=3)
    grads = []
    for packed in (False, True):
        rnn.zero_grad()
        final_states(rnn, x, lengths, packed=packed).pow(2).sum().backward()
        grads.append({name: p.grad.clone() for name, p in rnn.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_packed_path_in_bfloat16_is_close_to_float32_and_keeps_float32_weights():
    torch.manual_seed(2)
    rnn = nn.GRU(6, 4, num_layers=2, bidirectional=True, batch_first=True).eval()
    x, lengths = batch([5, 3, 4], seed=4)
    ref = final_states(rnn, x, lengths, packed=True)
    got = final_states(rnn, x, lengths, torch.bfloat16, packed=True)
    assert got.dtype == torch.bfloat16 and rnn.weight_ih_l0.dtype == torch.float32
    torch.testing.assert_close(got.float(), ref, rtol=0.05, atol=0.02)


def test_padding_content_does_not_change_the_states():
    torch.manual_seed(3)
    rnn = nn.GRU(6, 4, num_layers=2, bidirectional=True, batch_first=True).eval()
    x, lengths = batch([6, 2, 4], seed=5)
    noisy = x.clone()
    noisy[torch.arange(x.shape[1]) >= lengths[:, None]] = 7.0
    for packed in (False, True):
        torch.testing.assert_close(final_states(rnn, noisy, lengths, packed=packed), final_states(rnn, x, lengths, packed=packed))


def test_reverse_within_lengths_keeps_padding_in_place():
    x = torch.arange(8.0).reshape(2, 4, 1)
    out = reverse_within_lengths(x, torch.tensor([3, 4]))
    assert out[:, :, 0].tolist() == [[2.0, 1.0, 0.0, 3.0], [7.0, 6.0, 5.0, 4.0]]

