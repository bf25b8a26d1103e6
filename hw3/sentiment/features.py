"""Computing frozen-BERT features once and reusing them every epoch, and across runs.

BERT is frozen and runs in eval mode, so a review's embeddings never change. `CachedBatches` keeps them in
a `FeatureStore` (float16, [total tokens, E] with per-review offsets) placed by the memory plan (`memory`:
on the GPU, in RAM or in a memory-mapped file) and in the persistent `feature_cache` on disk, so a rerun
after a restart reads them back instead of running BERT. Later epochs only run the GRU. Features are always
read back from the store, so every epoch sees the same float16 values.

`cache_features` (the notebook's call) and `hw3 train` build their batches with the same `cached_batches`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from . import memory
from . import precision as policy
from .batching import Batch, BucketIterator
from .feature_cache import FeatureCache, for_model
from .model import Features
from .progress import Eta


class FeatureStore:
    """Per-example BERT outputs, float16, on a GPU, in RAM or in a memory-mapped file.

    lengths: token count of every example; hidden_size: E; place: 'gpu' (on `device`), 'ram' or 'disk' (a
    file in `spill_dir`). `put` stores a batch, `get` returns a padded Features batch (float32 [B, T, E]).
    """

    def __init__(self, lengths: Sequence[int], hidden_size: int, place: str = "ram",
                 device: torch.device | str = "cpu", spill_dir: str | Path | None = None) -> None:
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
        self.offsets[1:] = torch.cumsum(self.lengths, 0)
        self.hidden_size = hidden_size
        self.device = torch.device(device) if place == "gpu" else torch.device("cpu")
        self.done = torch.zeros(len(lengths), dtype=torch.bool)
        rows = int(self.offsets[-1])
        self._spill = None
        if place == "disk":
            self._spill = tempfile.NamedTemporaryFile(prefix="hw3-features-", suffix=".f16", dir=spill_dir)
            array = np.memmap(self._spill.name, dtype=np.float16, mode="w+", shape=(max(rows, 1), hidden_size))
            self.data = torch.from_numpy(array)
        else:
            self.data = torch.empty(rows, hidden_size, dtype=torch.float16, device=self.device)
        self._promise()

    @property
    def on_disk(self) -> bool:
        """True when the features live in a memory-mapped file rather than RAM or GPU memory."""
        return self._spill is not None

    def _promise(self) -> None:
        """Tell the memory plan how much host RAM this store will still fill."""
        in_ram = self.device.type == "cpu" and not self.on_disk
        unwritten = int(self.lengths[~self.done].sum()) * self.hidden_size * memory.FEATURE_BYTES
        memory.promise(self, unwritten if in_ram else 0)

    def missing(self, indices: Sequence[int]) -> list[int]:
        """The examples among `indices` that have no stored features yet (in order)."""
        return [i for i in indices if not self.done[i]]

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
        self._promise()

    def get(self, indices: Sequence[int], device: torch.device | str = "cpu") -> Features:
        """Padded float32 Features [B, max length, E] on `device` for the given (stored) examples."""
        mask, rows, lengths = self._layout(indices)
        mask = mask.to(self.device)
        out = torch.zeros(*mask.shape, self.hidden_size, dtype=torch.float16, device=self.device)
        out[mask] = self.data[rows.to(self.device)]
        return Features(out.to(device).float(), lengths)


def stack_reviews(reviews: Sequence[torch.Tensor]) -> Features:
    """Per-review features [L_i, E] -> a right-padded Features batch (embedded [B, max L, E], lengths [B])."""
    lengths = torch.tensor([r.shape[0] for r in reviews], dtype=torch.long)
    out = torch.zeros(len(reviews), int(lengths.max()), reviews[0].shape[1], dtype=reviews[0].dtype)
    for row, review in enumerate(reviews):
        out[row, : review.shape[0]] = review
    return Features(out, lengths)


def embed_reviews(iterator: BucketIterator, indices: Sequence[int], embed: Callable[[torch.Tensor], Features],
                  cache: FeatureCache | None, width: int) -> Features:
    """Features of these examples: read from `cache` where it has them, the rest embedded by BERT in one batch
    (and written to `cache`). Returns float16 Features [B, T, E] on the CPU, in the order of `indices`."""
    found = {i: cache.get(iterator.ids[i], width) for i in indices} if cache is not None else {}
    todo = [i for i in indices if found.get(i) is None]
    if todo:
        computed = embed(iterator.collate(todo).text)
        halves = computed.embedded.detach().to("cpu", torch.float16)
        for row, i in enumerate(todo):
            found[i] = halves[row, : len(iterator.ids[i])]
            if cache is not None:
                cache.put(iterator.ids[i], found[i])
    return stack_reviews([found[i] for i in indices])


class CachedBatches:
    """Batches of cached BERT features in the bucket order of `iterator`.

    Yields Batch(Features, label); the first time a review is needed its features come from the persistent
    `cache` or from `embed(text [B, T]) -> Features`, and are stored. Behaves like the iterator it wraps
    (len, set_epoch). Iterating flushes subnormal floats to zero until the pass ends (see `policy.flush_denormals`).
    """

    def __init__(self, iterator: BucketIterator, store: FeatureStore, embed: Callable[[torch.Tensor], Features],
                 cache: FeatureCache | None = None, label: str = "BERT features", log: Callable[[str], None] = print) -> None:
        self.iterator, self.store, self.embed, self.cache = iterator, store, embed, cache
        self.label, self.log = label, log

    def __len__(self) -> int:
        return len(self.iterator)

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the wrapped iterator."""
        self.iterator.set_epoch(epoch)

    def _ensure(self, indices: Sequence[int], eta: Eta) -> None:
        """Store the features of those of `indices` not stored yet (counting them in `eta`)."""
        todo = self.store.missing(indices)
        if todo:
            self.store.put(todo, embed_reviews(self.iterator, todo, self.embed, self.cache, self.store.hidden_size))
            eta.advance(len(todo))

    def _eta(self, quiet: bool = False) -> Eta:
        """An ETA reporter over the reviews still to embed (silent when `quiet`: a progress bar shows it)."""
        return Eta(self.label, int((~self.store.done).sum()), "reviews", (lambda line: None) if quiet else self.log)

    def fill(self, wrap: Callable | None = None) -> None:
        """Embed every example not stored yet, in length-sorted batches of the iterator's batch size.

        A review's BERT features then never depend on which epoch first saw it (padding changes the last
        bits of BERT's output), so a resumed run trains on exactly the features an uninterrupted one did.
        `wrap` may wrap the list of batches (e.g. in a progress bar); without one, ETA lines are logged.
        """
        it = self.iterator
        order = sorted(range(len(it.ids)), key=lambda i: len(it.ids[i]))
        chunks = [order[i : i + it.batch_size] for i in range(0, len(order), it.batch_size)]
        eta = self._eta(quiet=wrap is not None)
        for indices in (wrap(chunks) if wrap is not None else chunks):
            self._ensure(indices, eta)

    def __iter__(self) -> Iterator[Batch]:
        batches = self.iterator.index_batches()
        self.iterator.epoch += 1
        eta = self._eta()
        with policy.flush_denormals():
            for indices in batches:
                self._ensure(indices, eta)
                yield Batch(self.store.get(indices, self.iterator.device), self.iterator.labels[indices].to(self.iterator.device))


class EmbeddedBatches:
    """Batch(Features, label) in the order of `iterator`, embedded (or read from `cache`) without storing them.

    For a split that is read once (the test set): holding it would only cost memory or disk. Features are
    rounded through float16 like the stored ones, so both paths give the model the same inputs.
    """

    def __init__(self, iterator: BucketIterator, embed: Callable[[torch.Tensor], Features], width: int,
                 cache: FeatureCache | None = None) -> None:
        self.iterator, self.embed, self.width, self.cache = iterator, embed, width, cache

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self) -> Iterator[Batch]:
        it = self.iterator
        batches = it.index_batches()
        it.epoch += 1
        with policy.flush_denormals():
            for indices in batches:
                half = embed_reviews(it, indices, self.embed, self.cache, self.width)
                yield Batch(Features(half.embedded.to(it.device).float(), half.lengths), it.labels[indices].to(it.device))


def make_embedder(model, dtype: torch.dtype | None) -> Callable[[torch.Tensor], Features]:
    """model.embed under inference mode, with autocast to `dtype` when given (kept as `embed.dtype`)."""
    device_type = next(model.parameters()).device.type

    def embed(text: torch.Tensor) -> Features:
        cast = torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            return model.embed(text)

    embed.dtype = dtype
    return embed


def step_shape(model, iterators: Sequence[BucketIterator], bert_dtype: torch.dtype | None) -> memory.StepShape:
    """The largest batch these iterators give `model`, for the memory plan's reserve."""
    config, gru = model.bert.config, model.rnn
    tokens = max((len(x) for it in iterators for x in it.ids), default=1)
    return memory.StepShape(max(it.batch_size for it in iterators), tokens, config.hidden_size,
                            config.intermediate_size, config.num_attention_heads, gru.hidden_size, gru.num_layers,
                            2 if gru.bidirectional else 1, 4 if bert_dtype is None else 2)


def plan_features(model, iterators: dict[str, BucketIterator], bert_dtype: torch.dtype | None) -> memory.Plan:
    """The memory plan for caching these iterators' features for `model` (measured now)."""
    width = model.bert.config.hidden_size
    sizes = {name: sum(len(x) for x in it.ids) * width * memory.FEATURE_BYTES for name, it in iterators.items()}
    device = next(model.parameters()).device
    shape = step_shape(model, list(iterators.values()), bert_dtype)
    return memory.plan(sizes, memory.measure(device), shape, device.type)


def cached_batches(model, iterator: BucketIterator, embed: Callable[[torch.Tensor], Features], place: str,
                   cache: FeatureCache | None, label: str = "BERT features",
                   log: Callable[[str], None] = print) -> CachedBatches:
    """CachedBatches of `iterator` for `model`, its store where the plan put it ('gpu', 'ram' or 'disk')."""
    store = FeatureStore([len(x) for x in iterator.ids], model.bert.config.hidden_size, place,
                         device=next(model.parameters()).device)
    return CachedBatches(iterator, store, embed, cache, label, log)


def persistent_cache(model, bert_dtype: torch.dtype | None, folder: str | Path | None = None) -> FeatureCache | None:
    """The persistent feature cache of `model`'s encoder at this dtype (in `folder`, default: the configured
    one), or None when it is switched off (HW3_FEATURE_CACHE=off)."""
    return for_model(model.bert, policy.dtype_name(bert_dtype), folder)


def cache_features(model, iterator: BucketIterator, precision: str = "auto") -> CachedBatches:
    """Wrap a BucketIterator so BERT runs once per review: batches become Batch(Features, label).

    `model(x)` accepts the Features, so the homework's train/evaluate work unchanged on the result. Picks
    the precision ('auto' | 'bf16' | 'fp16' | 'fp32', see `precision.choose`), places the features by the
    memory plan, reuses the persistent feature cache (`feature_cache`), and prints one line saying what it
    chose and why.
    """
    chosen = policy.apply(model, precision)
    plan = plan_features(model, {f"{len(iterator.ids):,} reviews": iterator}, chosen.bert)
    print(f"{plan.describe()} | compute: {chosen.describe()}")
    return cached_batches(model, iterator, make_embedder(model, chosen.bert), next(iter(plan.places.values())),
                          persistent_cache(model, chosen.bert))


def fill_cache(bert, ids: Sequence[Sequence[int]], cache_dir: str | Path | None = None, precision: str = "auto",
               batch_size: int = 128, pad_id: int = 0) -> FeatureCache | None:
    """Pre-fill the persistent feature cache with `bert`'s features of the token-id lists `ids` (e.g. for grading).

    The keys are those `cache_features` uses for a BERTGRUSentiment around the same weights on the same kind
    of device with the same precision choice, so a later `cache_features` over these reviews, in any
    process, reads them instead of running BERT. Reviews already in the cache are skipped. cache_dir: the
    folder (default: `feature_cache.default_dir()`). Returns the cache (None when switched off).
    """
    from .model import BERTGRUSentiment

    device = next(bert.parameters()).device
    model = BERTGRUSentiment(bert, pad_id=pad_id).to(device)
    chosen = policy.apply(model, precision)
    cache = persistent_cache(model, chosen.bert, cache_dir)
    if cache is None:
        return None
    iterator = BucketIterator(ids, [0] * len(ids), batch_size, shuffle=False, pad_id=pad_id, device=device)
    embed = make_embedder(model, chosen.bert)
    for indices in iterator.index_batches():
        embed_reviews(iterator, indices, embed, cache, bert.config.hidden_size)
    return cache
