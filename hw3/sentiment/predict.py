"""Q4 inference: the sentiment probability of a sentence, and loading a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import HW3Error
from . import checkpoint
from .encoders import load_bert, resolve_encoder
from .model import BERTGRUSentiment
from .tokenizer import check_vocabulary, encode, load_tokenizer, max_input_length


def predict_sentiment(model: BERTGRUSentiment, tokenizer, sentence: str) -> float:
    """P(positive) for one sentence: [CLS] + tokens cut to 510 + [SEP] through the model."""
    model.eval()
    device = next(model.parameters()).device
    ids = encode(tokenizer, sentence, max_input_length(tokenizer))
    tensor = torch.tensor(ids, dtype=torch.long, device=device).unsqueeze(0)
    with torch.no_grad():
        return torch.sigmoid(model(tensor)).item()


def load_trained(path: str | Path, encoder: str | None = None) -> tuple[BERTGRUSentiment, object]:
    """(model, tokenizer) from a checkpoint file or a `hw3 train --out` folder.

    The encoder recorded in the checkpoint is loaded unless `encoder` names another one, in which case
    a mismatch is refused with a message naming both.
    """
    ckpt = checkpoint.load(Path(path))
    if not isinstance(ckpt.get("encoder"), str):
        raise HW3Error(f"{checkpoint.model_file(path)} does not say which encoder it was trained with: "
                       f"retrain with `hw3 train`")
    spec = resolve_encoder(encoder or ckpt["encoder"])
    bert = load_bert(spec)
    checkpoint.check_compatible(ckpt, spec.name, bert.config.hidden_size, Path(path))
    model = checkpoint.restore_model(ckpt, bert, Path(path))
    tokenizer = load_tokenizer(spec)
    check_vocabulary(tokenizer, bert)
    return model.eval(), tokenizer
