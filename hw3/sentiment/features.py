"""Computing frozen-BERT features once and reusing them every epoch.

BERT is frozen and runs in eval mode, so a review's embeddings never change: `FeatureStore` keeps them
(float16, [total tokens, E] with per-review offsets) on the GPU when the model is on one and they fit
there, else in RAM when they fit `memory_budget`, else in a memory-mapped file; `CachedBatches` fills it
lazily during the first epoch. Later epochs only run the GRU. Features are always read back from the
store, so every epoch sees the same float16 values.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .batching import Batch, BucketIterator
from .model import Features

DEFAULT_MEMORY_BUDGET = 4 << 30
GPU_RESERVE = 4 << 30


def has_fast_bf16_cpu() -> bool:
    """True when this CPU has native bfloat16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """'auto' | 'bf16' | 'fp32' -> the autocast dtype for BERT, or None for plain float32.

    auto picks bfloat16 on GPUs that support it and on CPUs with native bf16 instructions.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if has_fast_bf16_cpu() else None


class FeatureStore:
    """Per-example BERT outputs, float16, on a GPU, in RAM or in a memory-mapped file.

    lengths: token count of every example; hidden_size: E. `put` stores a batch, `get` returns a padded
    Features batch (float32 [B, T, E]). device: a GPU to keep them there (see `feature_device`); on the
    CPU they stay in RAM when they fit `memory_budget` bytes, else in a file in `spill_dir`.
    """

    def __init__(self, lengths: Sequence[int], hidden_size: int, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 spill_dir: str | Path | None = None, device: torch.device | str = "cpu") -> None:
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
        self.offsets[1:] = torch.cumsum(self.lengths, 0)
        self.hidden_size = hidden_size
        self.device = torch.device(device)
        self.done = torch.zeros(len(lengths), dtype=torch.bool)
        rows = int(self.offsets[-1])
        self._spill = None
        if self.device.type != "cpu" or rows * hidden_size * 2 <= memory_budget:
            self.data = torch.empty(rows, hidden_size, dtype=torch.float16, device=self.device)
        else:
            self._spill = tempfile.NamedTemporaryFile(prefix="hw3-features-", suffix=".f16", dir=spill_dir)
            array = np.memmap(self._spill.name, dtype=np.float16, mode="w+", shape=(max(rows, 1), hidden_size))
            self.data = torch.from_numpy(array)

    @property
    def on_disk(self) -> bool:
        """True when the features live in a memory-mapped file rather than RAM."""
        return self._spill is not None

    def missing(self, indices: Sequence[int]) -> bool:
        """True when any of these examples has no stored features yet."""
        return not bool(self.done[list(indices)].all())

    def _layout(self, indices: Sequence[int], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For a padded batch [B, width] of these examples (width: their longest length by default): (mask of
        its real tokens [B, width], the row in `data` of each real token [N], in mask order, their lengths [B])."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        lengths = self.lengths[idx]
        positions = torch.arange(int(lengths.max()) if width is None else width)
        mask = positions < lengths[:, None]
        return mask, (self.offsets[idx, None] + positions)[mask], lengths

    def put(self, indices: Sequence[int], features: Features) -> None:
        """Store rows of a Features batch ([B, T, E]) for the given example indices."""
        mask, rows, _ = self._layout(indices, features.embedded.shape[1])
        tokens = features.embedded.detach()[mask.to(features.embedded.device)]
        self.data[rows.to(self.device)] = tokens.to(self.device, torch.float16)
        self.done[list(indices)] = True

    def get(self, indices: Sequence[int], device: torch.device | str = "cpu") -> Features:
        """Padded float32 Features [B, max length, E] on `device` for the given (stored) examples."""
        mask, rows, lengths = self._layout(indices)
        mask = mask.to(self.device)
        out = torch.zeros(*mask.shape, self.hidden_size, dtype=torch.float16, device=self.device)
        out[mask] = self.data[rows.to(self.device)]
        return Features(out.to(device).float(), lengths)


def store_for(ids: Sequence[Sequence[int]], hidden_size: int, device: torch.device,
              memory_budget: int = DEFAULT_MEMORY_BUDGET) -> FeatureStore:
    """An empty FeatureStore for token-id lists `ids`, on the model's GPU when it fits there (`feature_device`)."""
    lengths = [len(x) for x in ids]
    return FeatureStore(lengths, hidden_size, memory_budget, device=feature_device(sum(lengths) * hidden_size * 2, device))


def feature_device(nbytes: int, device: torch.device, reserve: int = GPU_RESERVE) -> torch.device:
    """Where to cache `nbytes` of features for a model on `device`: the GPU itself when they fit in its free
    memory with `reserve` bytes to spare (for BERT's activations and the GRU), else the host.

    On a GPU, copying cached features in from the host costs more than BERT itself (measured on an H100).
    """
    if device.type == "cuda" and nbytes + reserve <= torch.cuda.mem_get_info(device)[0]:
        return device
    return torch.device("cpu")


class CachedBatches:
    """Batches of cached BERT features in the bucket order of `iterator`.

    Yields Batch(Features, label); the first time a batch is seen its features are computed with
    `embed(text [B, T]) -> Features` and stored. Behaves like the iterator it wraps (len, set_epoch).
    """

    def __init__(self, iterator: BucketIterator, store: FeatureStore, embed: Callable[[torch.Tensor], Features]) -> None:
        self.iterator, self.store, self.embed = iterator, store, embed

    def __len__(self) -> int:
        return len(self.iterator)

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the wrapped iterator."""
        self.iterator.set_epoch(epoch)

    def fill(self, wrap: Callable = lambda chunks: chunks) -> None:
        """Embed every example not stored yet, in length-sorted batches of the iterator's batch size.

        A review's BERT features then never depend on which epoch first saw it (padding changes the last
        bits of BERT's output), so a resumed run trains on exactly the features an uninterrupted one did.
        `wrap` may wrap the list of batches (e.g. in a progress bar).
        """
        it = self.iterator
        order = sorted(range(len(it.ids)), key=lambda i: len(it.ids[i]))
        chunks = [order[i : i + it.batch_size] for i in range(0, len(order), it.batch_size)]
        for indices in wrap(chunks):
            if self.store.missing(indices):
                self.store.put(indices, self.embed(it.collate(indices).text))

    def __iter__(self) -> Iterator[Batch]:
        batches = self.iterator.index_batches()
        self.iterator.epoch += 1
        for indices in batches:
            if self.store.missing(indices):
                self.store.put(indices, self.embed(self.iterator.collate(indices).text))
            yield Batch(self.store.get(indices, self.iterator.device), self.iterator.labels[indices].to(self.iterator.device))


class EmbeddedBatches:
    """Batch(Features, label) embedded on the fly in the order of `iterator`, without storing them.

    For a split that is read once (the test set): caching it would only cost memory or disk. Features are
    rounded through float16 like the cached ones, so both paths give the model the same inputs.
    """

    def __init__(self, iterator: BucketIterator, embed: Callable[[torch.Tensor], Features]) -> None:
        self.iterator, self.embed = iterator, embed

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.iterator:
            features = self.embed(batch.text)
            yield Batch(Features(features.embedded.to(torch.float16).float(), features.lengths), batch.label)


def make_embedder(model, dtype: torch.dtype | None) -> Callable[[torch.Tensor], Features]:
    """model.embed under inference mode, with autocast to `dtype` when given (kept as `embed.dtype`)."""
    device_type = next(model.parameters()).device.type

    def embed(text: torch.Tensor) -> Features:
        cast = torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            return model.embed(text)

    embed.dtype = dtype
    return embed


def cache_features(model, iterator: BucketIterator, precision: str = "auto",
                   memory_budget: int = DEFAULT_MEMORY_BUDGET) -> CachedBatches:
    """Wrap a BucketIterator so BERT runs once per review: batches become Batch(Features, label).

    `model(x)` accepts the Features, so the homework's train/evaluate work unchanged on the result.
    Sets the precision (bf16 where the hardware is fast at it; see `precision_embedder`), and turns on
    flush-denormal mode for the process: CPU GRU backward passes run ~6x slower on subnormal floats.
    """
    torch.set_flush_denormal(True)
    device = next(model.parameters()).device
    store = store_for(iterator.ids, model.bert.config.hidden_size, device, memory_budget)
    return CachedBatches(iterator, store, precision_embedder(model, precision))


def gru_dtype(bert_dtype: torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The GRU's compute dtype for a BERT autocast dtype: the same on CPU, float32 (None) on GPUs.

    On CPU, bf16 GRU matrix products are fast where the chip has AMX/AVX512-BF16. On GPUs, cuDNN's fused
    GRU kernels take float32 or float16 but not bfloat16 (a bf16 GRU falls back to one small kernel per
    gate and step), and float32 needs no loss scaling; the GRU is a small part of the GPU's work anyway.
    """
    return bert_dtype if device.type == "cpu" else None


def precision_embedder(model, precision: str = "auto") -> Callable[[torch.Tensor], Features]:
    """Pick BERT's and the GRU's precision from 'auto' | 'bf16' | 'fp32'; returns the BERT embedder.

    Sets model.compute_dtype (the GRU's); the embedder's autocast dtype is `embed.dtype`.
    """
    device = next(model.parameters()).device
    bert_dtype = resolve_precision(precision, device)
    model.compute_dtype = gru_dtype(bert_dtype, device)
    return make_embedder(model, bert_dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    """'bfloat16', 'float16' or 'float32' (None means plain float32)."""
    return str(dtype).removeprefix("torch.") if dtype is not None else "float32"
