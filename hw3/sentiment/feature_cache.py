"""The persistent feature cache: BERT's float16 outputs per review, kept on disk across runs and processes.

An entry's key is a SHA-256 of (the encoder's weights fingerprint, BERT's compute dtype, the review's token
ids), so a changed encoder, precision or tokenization never reads stale features. Each entry is one file,
`KEY[:2]/KEY.f16`: a fixed header (magic, rows, width), the SHA-256 of the payload, then the float16 payload
[rows, width]; no pickle. A truncated or altered file fails the size or checksum test and is recomputed.

The folder is `$HW3_FEATURE_CACHE`, else `$HW3_CACHE/features` (HW3_CACHE defaults to ~/.cache/hw3); it may
be a mounted Drive folder or a read-only one: write failures only print one notice, reads still work.
HW3_FEATURE_CACHE=off switches it off.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import weakref
from pathlib import Path

import numpy as np
import torch

from ..atomic import reason, write_bytes_atomic
from ..errors import HW3Error
from .data import cache_dir

ENV = "HW3_FEATURE_CACHE"
OFF = "off"
MAGIC = b"HW3F1\n"
_HEADER = struct.Struct("<6sII32s")  # magic, rows, width, sha256(payload)
_FINGERPRINTS: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


def default_dir() -> Path:
    """The cache folder: $HW3_FEATURE_CACHE, else $HW3_CACHE/features."""
    override = os.environ.get(ENV)
    return Path(override).expanduser() if override else cache_dir() / "features"


def fingerprint(bert: torch.nn.Module) -> str:
    """SHA-256 (hex) of the encoder's weights: every state-dict entry's name, dtype, shape and bytes.

    Computed once per module object (BERT is frozen); about a second for bert-base.
    """
    known = _FINGERPRINTS.get(bert)
    if known is None:
        digest = hashlib.sha256()
        for name, tensor in sorted(bert.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        known = _FINGERPRINTS[bert] = digest.hexdigest()
    return known


def encode_entry(features: torch.Tensor) -> bytes:
    """The file content for one review's features [rows, width] (stored as float16)."""
    payload = features.detach().to("cpu", torch.float16).contiguous().numpy().tobytes()
    rows, width = features.shape
    return _HEADER.pack(MAGIC, rows, width, hashlib.sha256(payload).digest()) + payload


def decode_entry(data: bytes, rows: int, width: int) -> torch.Tensor | None:
    """float16 [rows, width] from a file's content, or None when it is truncated, altered or of another shape."""
    if len(data) != _HEADER.size + rows * width * 2:
        return None
    magic, got_rows, got_width, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size:]
    if magic != MAGIC or (got_rows, got_width) != (rows, width) or hashlib.sha256(payload).digest() != checksum:
        return None
    return torch.from_numpy(np.frombuffer(payload, dtype=np.float16).reshape(rows, width).copy())


class FeatureCache:
    """Per-review features of one encoder at one compute dtype, in `folder` (see the module docstring).

    get(ids, width) -> float16 [len(ids), width] or None; put(ids, features [len(ids), width]).
    """

    def __init__(self, folder: str | Path, encoder_fingerprint: str, dtype_name: str) -> None:
        self.folder = Path(folder).expanduser()
        self._prefix = f"{encoder_fingerprint}|{dtype_name}|".encode()
        self._writable = True
        self.hits = self.misses = 0

    def key(self, ids) -> str:
        """SHA-256 (hex) of (encoder fingerprint, dtype, token ids)."""
        return hashlib.sha256(self._prefix + np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()

    def path(self, ids) -> Path:
        """The file of this review's entry."""
        key = self.key(ids)
        return self.folder / key[:2] / f"{key}.f16"

    def get(self, ids, width: int) -> torch.Tensor | None:
        """The stored features [len(ids), width] (float16), or None when absent or damaged."""
        try:
            data = self.path(ids).read_bytes()
        except OSError:
            data = b""
        found = decode_entry(data, len(ids), width) if data else None
        self.hits += found is not None
        self.misses += found is None
        return found

    def put(self, ids, features: torch.Tensor) -> None:
        """Store one review's features [len(ids), width]; a folder that cannot be written prints one notice."""
        if not self._writable:
            return
        path = self.path(ids)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, encode_entry(features), durable=False)
        except (OSError, HW3Error) as exc:
            self._writable = False
            why = reason(exc) if isinstance(exc, OSError) else str(exc).splitlines()[0][:120]
            print(f"hw3: note: the feature cache {self.folder} is not writable ({why}); "
                  f"features are computed but not kept (set {ENV} to a writable folder to keep them)", file=sys.stderr)


def for_model(bert: torch.nn.Module, dtype_name: str, folder: str | Path | None = None) -> FeatureCache | None:
    """The FeatureCache of this encoder and compute dtype in `folder` (default: `default_dir()`), or None
    when no folder is given and HW3_FEATURE_CACHE is 'off' (for benchmarks that time BERT itself)."""
    if folder is None and os.environ.get(ENV, "").lower() == OFF:
        return None
    return FeatureCache(default_dir() if folder is None else folder, fingerprint(bert), dtype_name)
