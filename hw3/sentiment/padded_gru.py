"""Running an nn.GRU over right-padded batches exactly as if every sequence were alone, without packing.

Packed sequences are exact but 3-8x slower than padded ones on CPU. Padding at the end is harmless for
the forward direction (it reads the real tokens first), but the backward direction would start in the
padding. So each layer runs its two directions separately: the forward one on the batch as it is, the
backward one on the batch with every sequence reversed within its own length (its padding stays at the
end), and the outputs are reversed back before they feed the next layer. The result equals a packed
bidirectional GRU to float rounding, using the same parameters as the nn.GRU.

On GPUs cuDNN runs packed sequences at full speed, in one call for all layers and both directions, so
there `final_states` packs the batch instead (`packed=True`); both paths give the same states.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

_GATES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse x [B, T, F] along time inside each sequence's length; positions t ≥ length stay put."""
    B, T, _ = x.shape
    t = torch.arange(T, device=x.device).expand(B, T)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(t < lengths, lengths - 1 - t, t)
    return x[torch.arange(B, device=x.device).unsqueeze(1), index]


def _one_direction(template: nn.GRU, rnn: nn.GRU, layer: int, reverse: bool, x: torch.Tensor,
                   dtype: torch.dtype | None) -> torch.Tensor:
    """One layer, one direction of `rnn` over x [B, T, F] -> outputs [B, T, H], via a 1-layer template.

    The template reads time-major input made contiguous: from a batch-first view, torch's CPU GRU copies
    the input once per time step for its input projection, and runs about half as fast without gradients.
    """
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    params = {f"{g}_l0": getattr(rnn, g + suffix) for g in _GATES if hasattr(rnn, g + suffix)}
    if dtype is not None:
        params = {k: v.to(dtype) for k, v in params.items()}
    return _quiet_call(template, params, x.transpose(0, 1).contiguous())[0].transpose(0, 1)


def _quiet_call(module: nn.Module, params: dict, *args):
    """functional_call(module, params, args) without cuDNN's note that the weights are not one flat buffer
    (it packs the 2.7 MB of GRU weights per call: a negligible cost)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        return functional_call(module, params, args)


def final_states(rnn: nn.GRU, x: torch.Tensor, lengths: torch.Tensor, dtype: torch.dtype | None = None,
                 packed: bool | None = None) -> torch.Tensor:
    """Last layer's final state of each direction for right-padded x [B, T, E] -> [B, D·H] (float32 or dtype).

    `rnn` must be batch_first. Equivalent to cat(hidden[-2], hidden[-1]) of `rnn` run on each sequence
    alone (hidden[-1] when unidirectional); inter-layer dropout applies as in nn.GRU when rnn.training.
    packed: run a packed sequence through `rnn` itself (default on GPUs) instead of the padded directions.
    """
    if not rnn.batch_first:
        raise ValueError("final_states needs a batch_first GRU")
    x = x.to(dtype) if dtype is not None else x
    if packed if packed is not None else x.is_cuda:
        return packed_final_states(rnn, x, lengths, dtype)
    lengths = lengths.to(x.device)
    last = (lengths - 1).clamp(min=0)
    rows = torch.arange(x.shape[0], device=x.device)
    finals: list[torch.Tensor] = []
    for layer in range(rnn.num_layers):
        template = _template(rnn, x.shape[-1])
        forward = _one_direction(template, rnn, layer, False, x, dtype)
        directions = [forward]
        if rnn.bidirectional:
            backward = _one_direction(template, rnn, layer, True, reverse_within_lengths(x, lengths), dtype)
            directions.append(backward)
        finals = [d[rows, last] for d in directions]
        if rnn.bidirectional:
            directions[1] = reverse_within_lengths(directions[1], lengths)
        x = torch.cat(directions, dim=2) if len(directions) > 1 else directions[0]
        if layer < rnn.num_layers - 1:
            x = F.dropout(x, rnn.dropout, rnn.training)
    return torch.cat(finals, dim=1)


def packed_final_states(rnn: nn.GRU, x: torch.Tensor, lengths: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """final_states through a packed sequence: x [B, T, E] (already in dtype) -> [B, D·H]."""
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
    if dtype is None or dtype == rnn.weight_ih_l0.dtype:
        _, hidden = rnn(packed)
    else:
        params = {name: p.to(dtype) for name, p in rnn.named_parameters()}
        _, hidden = _quiet_call(rnn, params, packed)
    # hidden = [n layers * n directions, B, H], already back in the batch's order
    return torch.cat([hidden[-2], hidden[-1]], dim=1) if rnn.bidirectional else hidden[-1]


_TEMPLATES: dict[tuple[int, int, bool], nn.GRU] = {}


def _template(rnn: nn.GRU, input_size: int) -> nn.GRU:
    """A parameter-less 1-layer unidirectional time-major GRU of the right sizes (meta weights, replaced at call time)."""
    key = (input_size, rnn.hidden_size, rnn.bias)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = nn.GRU(input_size, rnn.hidden_size, num_layers=1, bias=rnn.bias, device="meta")
    return _TEMPLATES[key]
