"""Checkpoints: the files of a run folder, model.pt's payload, and safe (weights-only) loading.

`model.pt` holds the best model: head weights, its `ModelConfig` (nanoGPT's pattern: the model is rebuilt
from the config saved beside its weights) and the encoder; `last.pt` (see `run_state`) adds everything to
resume. Both are plain dicts of tensors and numbers, serialized in memory and written atomically
(`hw3.atomic`), so a crash or a full disk mid-write leaves the previous file intact; they are loaded with
weights_only=True so a checkpoint that would run code is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import pickletools
import re
import tempfile
import warnings
from pathlib import Path

import torch

from ..atomic import reason, write_bytes_atomic
from ..errors import HW3Error

FORMAT = "hw3-bertgru-1"
BEST = "model.pt"
LAST = "last.pt"
METRICS = "metrics.json"
CURVES = "curves.png"
# Leftovers of a killed run: temporary files of write_bytes_atomic and of ensure_writable, the feature spill file.
STALE_PATTERNS = tuple(f".{name}.*.tmp" for name in (BEST, LAST, METRICS, CURVES, "hw3-probe")) + ("hw3-features-*.f16",)


def ensure_writable(folder: Path) -> None:
    """Create `folder` (and parents) and check a file can be created in it; one-line HW3Error otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HW3Error(f"--out {folder} is a file, not a folder: choose another --out folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hw3-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HW3Error(f"cannot write to {folder} ({reason(exc)}): choose a writable --out folder") from None


def remove_stale(folder: Path) -> list[Path]:
    """Delete temporary files that a killed run left in `folder`; returns what was removed."""
    removed = []
    for pattern in STALE_PATTERNS:
        for path in Path(folder).glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def remove_outputs(folder: Path) -> None:
    """Delete a previous run's last.pt, model.pt, metrics.json and curves.png (last.pt first)."""
    for name in (LAST, BEST, METRICS, CURVES):
        (Path(folder) / name).unlink(missing_ok=True)


def save(obj: dict, path: Path) -> None:
    """torch.save `obj` to `path` atomically (the old file stays intact until the new one is complete)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def save_json(obj: dict, path: Path) -> None:
    """Write `obj` as indented JSON to `path` atomically (the file is always complete, valid JSON)."""
    write_bytes_atomic(path, (json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n").encode())


def _finite(obj):
    """`obj` with NaN and infinite floats replaced by None, so the JSON is valid for every parser."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG to `path` atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_bytes_atomic(path, buffer.getvalue())


def model_file(path: Path) -> Path:
    """The model.pt a `--checkpoint` argument names: the argument itself when it is a .pt file, else the
    model.pt inside it (a `hw3 train --out` folder)."""
    path = Path(path)
    return path if path.suffix == ".pt" and not path.is_dir() else path / BEST


def _missing(path: Path) -> HW3Error:
    """The error for a --checkpoint argument that names no checkpoint, with how to get one."""
    where = "pass the folder `hw3 train --out DIR` wrote (runs/latest by default) or the model.pt in it"
    if path.is_file():
        return HW3Error(f"{path} is not a checkpoint: {where}")
    if path.is_dir():
        return HW3Error(f"{path} has no {BEST}: {where}, or train one there with `hw3 train --out {path}`")
    if path.suffix:
        return HW3Error(f"no checkpoint at {path}: {where}")
    return HW3Error(f"no checkpoint at {path}: train one with `hw3 train --out {path}`, or {where}")


def load(path: Path) -> dict:
    """Load a checkpoint with weights_only=True; HW3Error for missing, foreign, damaged or unsafe files."""
    path = Path(path)
    file = model_file(path)
    if not file.is_file():
        raise _missing(path)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; the error below says it in one line
            warnings.simplefilter("ignore")
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, IndexError, ... on bad files
        raise _load_error(file, exc) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise HW3Error(f"{file} is not an hw3 checkpoint (format {found}): retrain with `hw3 train`")
    return obj


# Pickle opcodes that import or call something: a plain weights file never needs them outside torch's zip format.
_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "REDUCE", "EXT1", "EXT2", "EXT4"})


def _load_error(path: Path, exc: Exception) -> HW3Error:
    """The one-line error for a file torch.load refused: 'could run code' only when it really references code;
    otherwise what the file is, in words (never the unpickler's internals, such as an opcode number)."""
    inner = exc.__context__ if isinstance(exc, pickle.UnpicklingError) and exc.__context__ is not None else exc
    found = re.search(r"GLOBAL (\S+)", str(inner))
    if found or _raw_pickle_calls_code(path):
        what = f"it would import {found.group(1).rstrip('.,')}" if found else "it imports or calls code"
        return HW3Error(f"{path} is not a safe weights-only checkpoint (loading it could run code: {what}): "
                        f"refusing it; retrain with `hw3 train`")
    return HW3Error(f"{path} is not a readable checkpoint ({_describe(path)}): pass the {BEST} that `hw3 train` "
                    f"wrote, or retrain with `hw3 train`")


def _describe(path: Path) -> str:
    """What an unreadable checkpoint file is, in words: empty, a damaged torch file, text, or something else."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        return f"it cannot be read: {reason(exc)}"
    if not head:
        return "it is empty"
    if head.startswith(b"PK\x03\x04"):
        return "it is a damaged or truncated torch file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not a file torch.save wrote"
    return "it is a text file, not a file torch.save wrote"


def _raw_pickle_calls_code(path: Path, limit: int = 100_000) -> bool:
    """True when `path` is a plain pickle (not torch's zip format) with opcodes that import or call code.

    Only reads opcodes (pickletools never executes anything); damaged files count as False.
    """
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                return False
            f.seek(0)
            for count, (op, _, _) in enumerate(pickletools.genops(f)):
                if op.name in _CODE_OPCODES:
                    return True
                if count >= limit:
                    break
    except Exception:
        pass
    return False


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 120 characters), or its type name."""
    lines = str(exc).strip().splitlines()
    return lines[0][:120] if lines else type(exc).__name__


def check_compatible(ckpt: dict, encoder: str, hidden_size: int, path: Path) -> None:
    """Refuse a checkpoint trained with another encoder or embedding size, naming both."""
    if ckpt.get("encoder") != encoder or ckpt.get("embedding_dim") != hidden_size:
        raise HW3Error(f"{path} was trained with encoder {ckpt.get('encoder')} ({ckpt.get('embedding_dim')}-dim) "
                       f"but this model uses {encoder} ({hidden_size}-dim): use --encoder {ckpt.get('encoder')}")


def model_payload(model, encoder: str, head: dict | None = None, epoch: int | None = None) -> dict:
    """What `model.pt` holds: head weights (the model's, or `head`), its ModelConfig and the encoder."""
    payload = {
        "format": FORMAT,
        "encoder": encoder,
        "embedding_dim": model.rnn.input_size,
        "model_config": model.config.to_dict(),
        "head": model.head_state_dict() if head is None else head,
    }
    if epoch is not None:
        payload["epoch"] = epoch
    return payload


def same_head(a: dict, b: dict) -> bool:
    """True when two head state dicts hold exactly the same tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def restore_model(ckpt: dict, bert, path: Path):
    """Rebuild a BERTGRUSentiment around `bert` from a checkpoint's ModelConfig and head weights."""
    from .model import ModelConfig, build_model

    cfg = ckpt.get("model_config")
    if not isinstance(cfg, dict) or "head" not in ckpt:
        raise HW3Error(f"{path} lacks the model settings or weights: retrain with `hw3 train`")
    try:
        model = build_model(bert, ModelConfig.from_dict(cfg))
    except (TypeError, ValueError) as exc:
        raise HW3Error(f"{path} has unusable model settings ({_first_line(exc)}): retrain with `hw3 train`") from None
    load_head(model, ckpt["head"], path)
    return model


def load_head(model, head: dict, path: Path) -> None:
    """Load head weights into `model`; refuse weights of another architecture naming both shapes."""
    mismatch = describe_mismatch(model, head)
    if mismatch:
        raise HW3Error(f"{path} holds weights of another architecture ({mismatch}): retrain with `hw3 train` or use the model it was trained for")
    model.load_state_dict(head, strict=False)


def describe_mismatch(model, head) -> str:
    """'' when `head` fits `model`'s non-BERT weights, else what differs, naming both sides."""
    if not isinstance(head, dict) or not all(isinstance(v, torch.Tensor) for v in head.values()):
        return "the head is not a dict of tensors"
    own = model.head_state_dict()
    for key in sorted(own.keys() & head.keys()):
        if own[key].shape != head[key].shape:
            return f"{key} is {list(head[key].shape)} in the checkpoint but {list(own[key].shape)} in this model"
    extra, missing = sorted(head.keys() - own.keys()), sorted(own.keys() - head.keys())
    if extra or missing:
        return (f"the checkpoint has {len(extra)} weights this model lacks (e.g. {(extra or ['-'])[0]}) and lacks "
                f"{len(missing)} it needs (e.g. {(missing or ['-'])[0]})")
    return ""
