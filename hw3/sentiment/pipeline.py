"""`hw3 train`: the whole Q4 job, fast, resumable, writing model.pt, last.pt, metrics.json and curves.png.

Speed comes from not repeating work: reviews are tokenized through a per-word cache (`wordpiece`),
BERT runs once per review (eval mode, inference mode, in the precision `precision` picks) and its outputs
are cached where the memory plan puts them and in the persistent feature cache, so later epochs (and
later runs) only train the GRU; batches are length-bucketed and the GRU skips padding.

Resuming: after every epoch `last.pt` is written first (head, Adam state, torch RNG state, history, best
validation loss and the best head itself), then `model.pt` when the epoch improved, then metrics.json,
each atomically. `last.pt` is the source of truth: on --resume a `model.pt` that does not hold its best
head is rewritten from it. Batch order depends only on (seed, epoch) and BERT features are computed in
one fixed order, so a resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn, optim

from . import checkpoint, run_state
from . import precision as policy
from ..errors import HW3Error
from .batching import BucketIterator
from .config import TrainConfig
from .data import load_splits, resolve_data
from .encoders import load_bert, resolve_encoder
from .features import CachedBatches, EmbeddedBatches, cached_batches, make_embedder, persistent_cache, plan_features
from .model import ModelConfig, build_model, count_parameters, freeze_bert, total_parameters
from .progress import Eta, bar
from .tokenizer import check_vocabulary, encode_batch, load_tokenizer
from .training import evaluate, plot_history, train


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HW3Error("--device cuda was asked for but no GPU is available: use --device cpu")
    return torch.device(name)


# Options that must match to continue a run (--epochs may grow, --device may change).
RESUME_OPTIONS = ("encoder", "data", "max_length", "batch_size", "seed", "lr", "precision")


def _resume_state(out: Path, config: TrainConfig, encoder: str, data: str, log: Callable[[str], None]) -> dict | None:
    """The saved state to continue from, or None for a fresh run; refuses to clobber an unfinished run."""
    last = out / checkpoint.LAST
    if not last.is_file():
        if config.resume:
            log(f"nothing to resume in {out} (no {checkpoint.LAST}): starting a fresh run")
        return None
    state = run_state.load(last)
    if not config.resume:
        if not state.get("finished", False):
            raise HW3Error(f"{out} holds an unfinished run (stopped after epoch {state['epoch']} of {state['epochs']}): "
                           f"add --resume to continue it, or choose another --out")
        log(f"replacing the finished run in {out} (use --resume to continue it instead)")
        checkpoint.remove_outputs(out)
        return None
    _check_same_options(state, out, config, {"encoder": encoder, "data": data})
    return state


def _check_same_options(state: dict, out: Path, config: TrainConfig, resolved: dict) -> None:
    """Refuse to continue a run with options that would change its results, naming the old and new value."""
    saved = state["config"]
    for key in RESUME_OPTIONS:
        value = resolved.get(key, getattr(config, key))
        if saved.get(key) != value:
            raise HW3Error(f"cannot resume {out}: it was trained with --{key.replace('_', '-')} {saved.get(key)} but this run "
                           f"has --{key.replace('_', '-')} {value}; use the same options, or another --out for a new run")
    if config.epochs < state["epoch"]:
        raise HW3Error(f"cannot resume {out} with --epochs {config.epochs}: it already finished {state['epoch']} epochs; "
                       f"use --epochs {state['epochs']}")


def _sync_best(out: Path, progress: run_state.Progress, model, encoder: str, log: Callable[[str], None]) -> None:
    """Rewrite model.pt from last.pt's best head when a kill left it missing, stale or from another run."""
    try:
        current = checkpoint.load(out / checkpoint.BEST)["head"]
    except (HW3Error, KeyError):
        current = None
    if current is None or not checkpoint.same_head(current, progress.best_head):
        checkpoint.save(checkpoint.model_payload(model, encoder, progress.best_head, progress.best_epoch), out / checkpoint.BEST)
        log(f"rewrote {out / checkpoint.BEST} from {checkpoint.LAST} (best epoch {progress.best_epoch})")


def run(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Train, validate each epoch, keep the best model, test it; returns the metrics dict (also in metrics.json)."""
    config.validate()
    try:
        return _run(config, log)
    except OSError as exc:
        where = exc.filename or config.out
        raise HW3Error(f"cannot use {where} ({exc.strerror or exc}): check free disk space and permissions, "
                       f"then run again with --resume") from None


@dataclass
class _Job:
    """One `hw3 train` run once everything is loaded: what the epoch loop and the test phase share."""

    config: TrainConfig
    out: Path
    encoder: str
    model: nn.Module
    optimizer: optim.Optimizer
    criterion: nn.Module
    batches: Callable[..., CachedBatches | EmbeddedBatches]
    record: dict
    log: Callable[[str], None]
    progress: run_state.Progress = field(default_factory=run_state.Progress)

    def resume(self, state: dict, hidden_size: int) -> None:
        """Continue from last.pt: weights, Adam and RNG state, history; repair model.pt if a kill left it stale."""
        path = self.out / checkpoint.LAST
        checkpoint.check_compatible(state, self.encoder, hidden_size, path)
        self.progress = run_state.restore(state, self.model, self.optimizer, path)
        _sync_best(self.out, self.progress, self.model, self.encoder, self.log)
        self.log(f"resuming {self.out} after epoch {self.progress.epoch} "
                 f"(best valid loss {self.progress.best_valid_loss:.3f} at epoch {self.progress.best_epoch})")

    def train_epochs(self) -> None:
        """The remaining epochs, each followed by its checkpoint writes."""
        if self.progress.epoch >= self.config.epochs:
            return
        train_batches, valid_batches = self.batches("train"), self.batches("valid")
        for name, cached in (("train", train_batches), ("valid", valid_batches)):
            cached.fill((lambda chunks, name=name: bar(chunks, f"BERT features ({name})", True)) if self.config.progress else None)
        eta = Eta("training", self.config.epochs - self.progress.epoch, "epochs", self.log, every=0)
        for epoch in range(self.progress.epoch, self.config.epochs):
            train_batches.set_epoch(epoch)
            self.one_epoch(epoch + 1, train_batches, valid_batches)
            eta.advance(1)

    def one_epoch(self, number: int, train_batches: CachedBatches, valid_batches: CachedBatches) -> None:
        """Train and validate once, record it, write last.pt / model.pt / metrics.json."""
        show = self.config.progress
        start = time.perf_counter()
        train_loss, train_acc = train(self.model, bar(train_batches, f"epoch {number} train", show), self.optimizer, self.criterion)
        valid_loss, valid_acc = evaluate(self.model, bar(valid_batches, f"epoch {number} valid", show), self.criterion)
        seconds = time.perf_counter() - start
        improved = self.progress.update({"epoch": number, "train_loss": train_loss, "train_acc": train_acc,
                                         "valid_loss": valid_loss, "valid_acc": valid_acc, "seconds": seconds},
                                        self.model.head_state_dict())
        self.save_epoch(improved)
        self.log(f"Epoch: {number:02} | Epoch Time: {seconds:.1f}s | Train Loss: {train_loss:.3f} | Train Acc: {train_acc * 100:.2f}% "
                 f"| Val. Loss: {valid_loss:.3f} | Val. Acc: {valid_acc * 100:.2f}%")

    def last_payload(self, finished: bool = False) -> dict:
        """last.pt's content now."""
        return run_state.payload(self.model, self.optimizer, self.progress, self.encoder, self.record["config"],
                                 self.config.epochs, finished)

    def save_epoch(self, improved: bool) -> None:
        """After an epoch: last.pt first (the source of truth), then model.pt if it improved, then metrics.json."""
        progress = self.progress
        run_state.save(self.last_payload(), self.out)
        if improved:
            checkpoint.save(checkpoint.model_payload(self.model, self.encoder, progress.best_head, progress.best_epoch),
                            self.out / checkpoint.BEST)
        checkpoint.save_json({**self.record, "epochs": progress.history, "best_epoch": progress.best_epoch},
                             self.out / checkpoint.METRICS)

    def finish(self) -> dict:
        """Test the best model, write metrics.json and curves.png, then mark last.pt finished."""
        final_state = self.last_payload(finished=True)  # before the best head replaces the last epoch's
        checkpoint.load_head(self.model, self.progress.best_head, self.out / checkpoint.LAST)
        test_loss, test_acc = evaluate(self.model, bar(self.batches("test"), "test", self.config.progress), self.criterion)
        metrics = {**self.record, "epochs": self.progress.history, "best_epoch": self.progress.best_epoch,
                   "test_loss": test_loss, "test_acc": test_acc}
        _save_results(self.out, metrics)
        run_state.save(final_state, self.out)
        self.log(f"Test Loss: {test_loss:.3f} | Test Acc: {test_acc * 100:.2f}% (best epoch {self.progress.best_epoch}) | "
                 f"wrote {checkpoint.BEST} (best), {checkpoint.LAST} (to resume), {checkpoint.METRICS} and "
                 f"{checkpoint.CURVES} in {self.out}")
        return metrics


def _build_model(spec, tokenizer, config: TrainConfig, device: torch.device, log: Callable[[str], None]):
    """Frozen BERT + GRU head (seeded), Adam over the head, the loss and the BERT embedder."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    bert = load_bert(spec)
    check_vocabulary(tokenizer, bert)
    model = build_model(bert, ModelConfig(pad_id=tokenizer.pad_token_id))
    freeze_bert(model)
    model.to(device)
    optimizer = optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    criterion = nn.BCEWithLogitsLoss().to(device)
    chosen = policy.apply(model, config.precision)
    log(f"model: {total_parameters(model):,} parameters, {count_parameters(model):,} trainable (BERT frozen) | "
        f"compute: {chosen.describe()}")
    return model, optimizer, criterion, make_embedder(model, chosen.bert)


def _batch_maker(iterators: dict[str, BucketIterator], model, embed, log: Callable[[str], None]):
    """name -> the batches of that split: train and valid with their features stored where the memory plan
    (made for both together, on first use) puts them; test embedded on the fly. All share the persistent cache."""
    cache = persistent_cache(model, embed.dtype)
    log(f"feature cache: {cache.folder if cache is not None else 'off'}")
    places: dict[str, str] = {}

    def batches(name: str) -> CachedBatches | EmbeddedBatches:
        if name == "test":
            return EmbeddedBatches(iterators[name], embed, model.bert.config.hidden_size, cache)
        if not places:
            plan = plan_features(model, {k: iterators[k] for k in ("train", "valid")}, embed.dtype)
            log(plan.describe())
            places.update(plan.places)
        return cached_batches(model, iterators[name], embed, places[name], cache, f"BERT features ({name})", log)

    return batches


def _run(config: TrainConfig, log: Callable[[str], None]) -> dict:
    """Check --out and any run to resume, read and tokenize the data, build the model, train, test."""
    out = Path(config.out)
    device = pick_device(config.device)
    spec = resolve_encoder(config.encoder)
    source = resolve_data(config.data, gpu=device.type == "cuda")
    log(f"encoder: {spec.name} ({spec.reason}) | data: {source.name} ({source.reason}) | device: {device}")
    checkpoint.ensure_writable(out)
    state = _resume_state(out, config, spec.name, source.name, log)
    checkpoint.remove_stale(out)

    tokenizer = load_tokenizer(spec)
    splits = load_splits(source, seed=config.seed)
    t0 = time.perf_counter()
    ids = {name: encode_batch(tokenizer, [r.text for r in part], config.max_length) for name, part in splits._asdict().items()}
    log(f"tokenized {sum(map(len, ids.values())):,} reviews in {time.perf_counter() - t0:.1f}s | "
        f"train {len(splits.train):,} / valid {len(splits.valid):,} / test {len(splits.test):,}")
    model, optimizer, criterion, embed = _build_model(spec, tokenizer, config, device, log)
    iterators = {name: BucketIterator(ids[name], [r.label for r in getattr(splits, name)], config.batch_size,
                                      shuffle=name == "train", pad_id=tokenizer.pad_token_id, seed=config.seed, device=device)
                 for name in ids}
    record = {"encoder": spec.name, "data": source.name, "config": {**asdict(config), "encoder": spec.name, "data": source.name},
              "examples": {"train": len(splits.train), "valid": len(splits.valid), "test": len(splits.test)}}
    job = _Job(config, out, spec.name, model, optimizer, criterion, _batch_maker(iterators, model, embed, log), record, log)
    if state is not None:
        job.resume(state, model.bert.config.hidden_size)
    job.train_epochs()
    return job.finish()


def _save_results(out: Path, metrics: dict) -> None:
    """metrics.json and curves.png (the best epoch and the test accuracy marked), each written atomically."""
    import matplotlib.pyplot as plt

    checkpoint.save_json(metrics, out / checkpoint.METRICS)
    fig = plot_history(metrics["epochs"], best=metrics["best_epoch"], test_acc=metrics["test_acc"])
    try:
        checkpoint.save_figure(fig, out / checkpoint.CURVES)
    finally:
        plt.close(fig)
