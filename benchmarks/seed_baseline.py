"""A faithful reimplementation of the seed notebook's Q4 loop, as the benchmark's baseline.

What the seed did, and this module does too: Python-side WordPiece tokenization one review at a time
(BertTokenizer was a pure-Python tokenizer then; transformers 5 keeps it as BertTokenizerLegacy),
torchtext BucketIterator batches, `model.train()` leaving BERT in train mode (dropout on) under
`torch.no_grad()`, no attention mask, float32 everywhere, and BERT recomputed for every batch of every epoch.
The seed's train/evaluate loops are the same as hw3's (`hw3.sentiment.training`), which the benchmark uses for both.
"""

from __future__ import annotations

import torch
from torch import nn

from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.model import BERTGRUSentiment


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


class SeedBERTGRUSentiment(BERTGRUSentiment):
    """The seed's model: BERT follows the model's mode (dropout on while training), no attention mask, and the
    head reads cat(hidden[-2], hidden[-1]) of the GRU run over the padded batch."""

    def train(self, mode: bool = True) -> "SeedBERTGRUSentiment":
        return nn.Module.train(self, mode)

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
