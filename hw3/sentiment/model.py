"""Q4 model: frozen BERT embeddings followed by a 2-layer bidirectional GRU and a linear head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import nn

from .padded_gru import final_states


@dataclass(frozen=True)
class ModelConfig:
    """The GRU head's sizes, with the homework's defaults; saved in checkpoints and used to rebuild the model."""

    hidden_dim: int = 256
    output_dim: int = 1
    n_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.25
    pad_id: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """The config a checkpoint saved (`asdict` of one); ValueError naming the field for a wrong key or type."""
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ValueError(f"unknown model setting {unknown[0]}")
        for name, value in values.items():
            expected = {"int": int, "bool": bool, "float": (int, float)}[types[name]]
            if not isinstance(value, expected) or (types[name] == "int" and isinstance(value, bool)):
                raise ValueError(f"{name} = {value!r} is not a {types[name]}")
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain dict of the settings (what checkpoints hold)."""
        return asdict(self)


class Features(NamedTuple):
    """Precomputed BERT outputs for a batch: `embedded` [B, T, E] (float), `lengths` LongTensor [B] (CPU)."""

    embedded: torch.Tensor
    lengths: torch.Tensor


class BERTGRUSentiment(nn.Module):
    """logits = Linear(dropout([h_fwd; h_bwd] of the GRU's last layer)) over frozen BERT embeddings.

    forward(text): text is LongTensor [B, T] of token ids right-padded with pad_id (0), or a Features
    batch of cached embeddings; returns logits [B, output_dim]. Padding is masked in BERT's attention
    and its embeddings are zeroed, so cached and direct features agree. The GRU reads each review within
    its own length (`padded_gru.final_states`: exact like packed sequences, as fast as padded ones), so a
    review's score does not depend on the batch it is in; the head is cat(hidden[-2], hidden[-1]).
    BERT stays in eval mode (no dropout) even when the model trains: it is frozen.
    `compute_dtype` (e.g. torch.bfloat16) runs the GRU in that precision with float32 master weights.
    """

    def __init__(self, bert: nn.Module, hidden_dim: int = ModelConfig.hidden_dim, output_dim: int = ModelConfig.output_dim,
                 n_layers: int = ModelConfig.n_layers, bidirectional: bool = ModelConfig.bidirectional,
                 dropout: float = ModelConfig.dropout, pad_id: int = ModelConfig.pad_id) -> None:
        super().__init__()
        self.bert = bert
        self.pad_id = pad_id
        self.config = ModelConfig(hidden_dim, output_dim, n_layers, bidirectional, dropout, pad_id)
        embedding_dim = bert.config.hidden_size
        self.rnn = nn.GRU(embedding_dim, hidden_dim, num_layers=n_layers, bidirectional=bidirectional,
                          batch_first=True, dropout=0 if n_layers < 2 else dropout)
        self.out = nn.Linear(hidden_dim * 2 if bidirectional else hidden_dim, output_dim)
        self.dropout = nn.Dropout(dropout)
        self.compute_dtype: torch.dtype | None = None

    def train(self, mode: bool = True) -> "BERTGRUSentiment":
        super().train(mode)
        self.bert.eval()
        return self

    def embed(self, text: torch.Tensor) -> Features:
        """Frozen BERT: token ids [B, T] -> Features(embedded [B, T, E], lengths [B])."""
        mask = text != self.pad_id
        with torch.no_grad():
            embedded = self.bert(input_ids=text, attention_mask=mask.long())[0]
        embedded = embedded * mask.unsqueeze(-1).to(embedded.dtype)
        return Features(embedded, mask.sum(dim=1).cpu())

    def classify(self, features: Features) -> torch.Tensor:
        """GRU + linear head: Features(embedded [B, T, E], lengths [B]) -> logits [B, output_dim]."""
        embedded = features.embedded if self.compute_dtype else features.embedded.to(self.out.weight.dtype)
        hidden = final_states(self.rnn, embedded, features.lengths, self.compute_dtype)
        # hidden = [B, n directions * hid]: the last layer's final forward and backward states
        return self.out(self.dropout(hidden.to(self.out.weight.dtype)))

    def forward(self, text: torch.Tensor | Features) -> torch.Tensor:
        features = text if isinstance(text, Features) else self.embed(text)
        return self.classify(features)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights of everything but BERT (what training changes): the checkpoint payload."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("bert.")}


def build_model(bert: nn.Module, config: ModelConfig = ModelConfig()) -> BERTGRUSentiment:
    """BERTGRUSentiment around `bert` with `config`'s sizes (default: the homework's model)."""
    return BERTGRUSentiment(bert, **config.to_dict())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def total_parameters(model: nn.Module) -> int:
    """Number of all parameters, frozen or not."""
    return sum(p.numel() for p in model.parameters())


def freeze_bert(model: nn.Module) -> None:
    """Set requires_grad = False on every parameter whose name starts with 'bert'."""
    for name, param in model.named_parameters():
        if name.startswith("bert"):
            param.requires_grad = False


def tiny_bert(seed: int = 0, vocab_size: int = 30522) -> nn.Module:
    """A small randomly initialised BertModel (hidden 32, 1 layer) for fast tests and checks."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    return BertModel(config).eval()


def bert_base_random(device: str | torch.device = "meta") -> nn.Module:
    """bert-base-uncased's architecture (no download). By default on the meta device: its 110M parameters have
    shapes but no storage, which is all that counting them needs (the Q4 notebook does; real weights would
    take 440 MB for the cell's lifetime). Pass a real device for random weights there, e.g. for timing."""
    from transformers import BertConfig, BertModel

    with torch.device(device):
        return BertModel(BertConfig()).eval()
