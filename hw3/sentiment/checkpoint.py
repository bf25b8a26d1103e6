"""Checkpoints: atomic writes and safe (weights-only) loading.

`model.pt` holds the best model (head weights plus the encoder and settings it needs); `last.pt` holds
everything to resume (optimizer, epoch, best validation loss, RNG state, history). Both are plain dicts
of tensors and numbers, written to a temporary file and renamed, and loaded with weights_only=True so
a checkpoint that would run code is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import torch

from .errors import HW3Error

FORMAT = "hw3-bertgru-1"
BEST = "model.pt"
LAST = "last.pt"
METRICS = "metrics.json"


def _atomic_write(path: Path, write) -> None:
    """Call write(file object) on a temp file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HW3Error(f"cannot write to {path.parent} ({exc.strerror}): choose a writable --out folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HW3Error(f"cannot write {path} ({exc.strerror}): free disk space or choose another --out folder") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(obj: dict, path: Path) -> None:
    """torch.save `obj` to `path` atomically (the old file stays intact until the new one is complete)."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def save_json(obj: dict, path: Path) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def load(path: Path) -> dict:
    """Load a checkpoint with weights_only=True; HW3Error for missing, foreign or unsafe files."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".pt":
        path = path / BEST
    if not path.is_file():
        raise HW3Error(f"no checkpoint at {path}: run `hw3 train --out {path.parent}` first")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise HW3Error(f"{path} is not a safe weights-only checkpoint (loading it could run code): refusing it; retrain with `hw3 train`") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise HW3Error(f"{path} is not a readable checkpoint ({str(exc).splitlines()[0][:120]}): retrain with `hw3 train`") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise HW3Error(f"{path} is not an hw3 checkpoint (format {obj.get('format') if isinstance(obj, dict) else type(obj).__name__}): retrain with `hw3 train`")
    return obj


def check_compatible(ckpt: dict, encoder: str, hidden_size: int, path: Path) -> None:
    """Refuse a checkpoint trained with another encoder or embedding size, naming both."""
    if ckpt["encoder"] != encoder or ckpt["embedding_dim"] != hidden_size:
        raise HW3Error(f"{path} was trained with encoder {ckpt['encoder']} ({ckpt['embedding_dim']}-dim) "
                       f"but this model uses {encoder} ({hidden_size}-dim): use --encoder {ckpt['encoder']}")


def model_payload(model, encoder: str) -> dict:
    """What `model.pt` holds: the head weights and everything needed to rebuild the model."""
    rnn = model.rnn
    return {
        "format": FORMAT,
        "encoder": encoder,
        "embedding_dim": rnn.input_size,
        "model_config": {"hidden_dim": rnn.hidden_size, "output_dim": model.out.out_features, "n_layers": rnn.num_layers,
                         "bidirectional": rnn.bidirectional, "dropout": model.dropout.p, "pad_id": model.pad_id},
        "head": model.head_state_dict(),
    }


def restore_model(ckpt: dict, bert, path: Path):
    """Rebuild a BERTGRUSentiment around `bert` from a checkpoint's config and head weights."""
    from .model import BERTGRUSentiment

    cfg = ckpt["model_config"]
    model = BERTGRUSentiment(bert, cfg["hidden_dim"], cfg["output_dim"], cfg["n_layers"], cfg["bidirectional"],
                             cfg["dropout"], pad_id=cfg["pad_id"])
    load_head(model, ckpt["head"], path)
    return model


def load_head(model, head: dict, path: Path) -> None:
    """Load head weights into `model`; refuse weights of another architecture with a one-line error."""
    try:
        result = model.load_state_dict(head, strict=False)
    except RuntimeError as exc:
        raise HW3Error(f"{path} holds weights of another architecture ({str(exc).splitlines()[-1].strip()[:120]}): retrain with `hw3 train`") from None
    if result.unexpected_keys or any(not k.startswith("bert.") for k in result.missing_keys):
        raise HW3Error(f"{path} holds weights of another architecture: retrain with `hw3 train`")
