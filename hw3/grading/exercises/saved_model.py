"""What the grader computes itself from a submission's saved model (the checkpoint at CHECKPOINT, q4.3d): its
architecture, its validation loss and accuracy on the notebook's validation split, and its predictions.

This runs in a trusted process (`kernel.verifier`: hw3's full package, the grading corpus and its shared BERT
features, in a sandbox of its own) on a file the student's kernel handed over: the file is hostile data, loaded
with `torch.load(weights_only=True)` (tensors only, no pickled code) and a size limit. In a notebook's own check the
same functions run in the student's kernel, on the student's data.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_CHECKPOINT_BYTES = 256 * 2**20
BATCH_SIZE, SEED = 128, 1234  # the homework's validation batches (its make_iterator)


class Unusable(Exception):
    """The saved file is not a model of the homework's kind; one line saying why."""


def head_state(path: str | Path) -> dict[str, Any]:
    """The head's tensors (everything but BERT) in the checkpoint at `path`; Unusable when it cannot be used."""
    import torch

    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise Unusable("no checkpoint file of at most 256 MiB was saved")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or one holding more than tensors
        raise Unusable(f"the checkpoint cannot be loaded as tensors ({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("head"), dict):
        state = state["head"]
    if not isinstance(state, dict):
        raise Unusable(f"the checkpoint holds a {type(state).__name__}, not a state_dict")
    head = {str(k): v for k, v in state.items() if not str(k).startswith("bert.") and isinstance(v, torch.Tensor)}
    if not any(k.startswith("rnn.") for k in head) or "out.weight" not in head:
        raise Unusable("the checkpoint holds no GRU and linear weights")
    return head


def architecture(head: dict[str, Any]) -> dict[str, Any]:
    """The GRU and output sizes a head's tensors imply: hidden_size, num_layers, bidirectional, input_size, out."""
    layers = sorted({int(m[1]) for k in head if (m := re.fullmatch(r"rnn\.weight_ih_l(\d+)", k))})
    if not layers or "rnn.weight_hh_l0" not in head:
        raise Unusable("the checkpoint's GRU weights are incomplete")
    return {"hidden_size": int(head["rnn.weight_hh_l0"].shape[1]), "num_layers": len(layers),
            "bidirectional": "rnn.weight_ih_l0_reverse" in head, "input_size": int(head["rnn.weight_ih_l0"].shape[1]),
            "out": [int(head["out.weight"].shape[1]), int(head["out.weight"].shape[0])]}


@lru_cache(maxsize=1)
def _bert_and_tokenizer() -> tuple[Any, Any]:
    from hw3.sentiment.encoders import load_bert, resolve_encoder
    from hw3.sentiment.tokenizer import load_tokenizer

    encoder = resolve_encoder("auto")
    return load_bert(encoder).eval(), load_tokenizer(encoder)


def model_of(head: dict[str, Any]) -> Any:
    """The homework's model around the notebook's BERT, with `head`'s weights, in eval mode."""
    import torch

    from hw3.sentiment.model import BERTGRUSentiment

    sizes = architecture(head)
    bert, _ = _bert_and_tokenizer()
    if sizes["input_size"] != bert.config.hidden_size:
        raise Unusable(f"the checkpoint's GRU reads {sizes['input_size']} features, BERT gives "
                       f"{bert.config.hidden_size}")
    model = BERTGRUSentiment(bert, sizes["hidden_size"], sizes["out"][1], sizes["num_layers"], sizes["bidirectional"],
                             0.0)
    missing, unexpected = model.load_state_dict(head, strict=False)
    if [k for k in missing if not k.startswith("bert.")] or unexpected:
        raise Unusable("the checkpoint's tensors do not fit the homework's model")
    for p in model.parameters():
        p.requires_grad = False
    return model.eval().to(torch.float32)


def validation(model: Any) -> tuple[float, float]:
    """(mean loss, mean accuracy) of `model` over the notebook's validation batches (hw3's evaluate; BERT's
    features from the shared feature cache, as the notebook's cache_features reads them)."""
    from torch import nn

    from hw3.sentiment.batching import BucketIterator
    from hw3.sentiment.data import load_splits, resolve_data
    from hw3.sentiment.features import cache_features
    from hw3.sentiment.tokenizer import encode_batch
    from hw3.sentiment.training import evaluate

    _, tokenizer = _bert_and_tokenizer()
    valid = load_splits(resolve_data("auto"), seed=SEED).valid
    ids = encode_batch(tokenizer, [r.text for r in valid], tokenizer.model_max_length)
    iterator = BucketIterator(ids, [r.label for r in valid], BATCH_SIZE, shuffle=False, pad_id=tokenizer.pad_token_id,
                              seed=SEED)
    return evaluate(model, cache_features(model, iterator), nn.BCEWithLogitsLoss())


def predictions(model: Any, texts: list[str]) -> dict[str, dict[str, float]]:
    """{text: {"logit", "probability", "no special tokens"}} of the homework's predict_sentiment pipeline (and of
    its common mistake without [CLS]/[SEP]) with `model`."""
    import torch

    from hw3.sentiment.tokenizer import encode, max_input_length

    _, tokenizer = _bert_and_tokenizer()
    out = {}
    with torch.no_grad():
        for text in texts:
            ids = encode(tokenizer, text, max_input_length(tokenizer))
            logit = float(model(torch.tensor([ids])))
            bare = float(model(torch.tensor([ids[1:-1]]))) if len(ids) > 2 else logit
            out[text] = {"logit": logit, "probability": float(torch.sigmoid(torch.tensor(logit))),
                         "no special tokens": float(torch.sigmoid(torch.tensor(bare)))}
    return out
