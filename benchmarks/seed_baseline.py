"""A faithful reimplementation of the seed notebook's Q4 loop, as the benchmark's baseline.

What the seed did, and this module does too: Python-side WordPiece tokenization one review at a time
(BertTokenizer was a pure-Python tokenizer then; transformers 5 keeps it as BertTokenizerLegacy),
torchtext BucketIterator batches, `model.train()` leaving BERT in train mode (dropout on) under
`torch.no_grad()`, no attention mask, float32 everywhere, and BERT recomputed for every batch of every epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from hw3.sentiment.batching import BucketIterator


def legacy_tokenizer(location: str):
    """The pure-Python BERT tokenizer (BertTokenizerLegacy), or the default one if this transformers lacks it."""
    import transformers

    cls = getattr(transformers, "BertTokenizerLegacy", transformers.BertTokenizer)
    return cls.from_pretrained(location)


def tokenize_like_torchtext(tokenizer, texts: list[str], max_input_length: int = 512) -> list[list[int]]:
    """Field(tokenize=tokenize_and_cut, preprocessing=convert_tokens_to_ids, init/eos tokens), per example."""
    out = []
    for text in texts:
        tokens = tokenizer.tokenize(text)[: max_input_length - 2]
        out.append([tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(tokens), tokenizer.sep_token_id])
    return out


class SeedBERTGRUSentiment(nn.Module):
    """The seed's model: BERT (mode follows the model), GRU over the padded batch, cat(hidden[-2], hidden[-1])."""

    def __init__(self, bert: nn.Module, hidden_dim: int = 256, output_dim: int = 1, n_layers: int = 2,
                 bidirectional: bool = True, dropout: float = 0.25) -> None:
        super().__init__()
        self.bert = bert
        embedding_dim = bert.config.hidden_size
        self.rnn = nn.GRU(embedding_dim, hidden_dim, num_layers=n_layers, bidirectional=bidirectional,
                          batch_first=True, dropout=0 if n_layers < 2 else dropout)
        self.out = nn.Linear(hidden_dim * 2 if bidirectional else hidden_dim, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            embedded = self.bert(text)[0]
        _, hidden = self.rnn(embedded)
        if self.rnn.bidirectional:
            hidden = self.dropout(torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1))
        else:
            hidden = self.dropout(hidden[-1, :, :])
        return self.out(hidden)


def make_iterator(ids: list[list[int]], labels: list[int], train: bool, batch_size: int, seed: int) -> BucketIterator:
    """torchtext BucketIterator semantics: shuffled length pools for training, sorted for evaluation."""
    return BucketIterator(ids, labels, batch_size, shuffle=train, pad_id=0, seed=seed)


def binary_accuracy(preds: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (torch.round(torch.sigmoid(preds)) == y).float().sum() / len(y)


def train(model: nn.Module, iterator, optimizer, criterion) -> tuple[float, float]:
    epoch_loss = epoch_acc = 0.0
    model.train()
    for x, y in iterator:
        optimizer.zero_grad()
        preds = model(x).squeeze(1)
        loss = criterion(preds, y)
        acc = binary_accuracy(preds, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        epoch_acc += acc.item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)


def evaluate(model: nn.Module, iterator, criterion) -> tuple[float, float]:
    epoch_loss = epoch_acc = 0.0
    model.eval()
    with torch.no_grad():
        for x, y in iterator:
            preds = model(x).squeeze(1)
            epoch_loss += criterion(preds, y).item()
            epoch_acc += binary_accuracy(preds, y).item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
