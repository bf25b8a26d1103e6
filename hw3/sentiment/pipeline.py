"""`hw3 train`: the whole Q4 job, fast, resumable, writing model.pt, last.pt, metrics.json and curves.png.

Speed comes from not repeating work: reviews are tokenized in parallel batches by the Rust tokenizer,
BERT runs once per review (eval mode, inference mode, bf16 where the hardware has it) and its outputs
are cached, so later epochs only train the GRU; batches are length-bucketed and the GRU skips padding.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn, optim

from . import checkpoint
from .batching import DEFAULT_BATCH_SIZE, BucketIterator
from .data import SEED, load_splits, resolve_data
from .encoders import load_bert, resolve_encoder
from .errors import HW3Error
from .features import CachedBatches, FeatureStore, make_embedder, resolve_precision
from .model import build_model, count_parameters, freeze_bert, total_parameters
from .tokenizer import BERT_MAX_LENGTH, encode_batch, load_tokenizer
from .training import evaluate, plot_history, train


@dataclass
class TrainConfig:
    """Settings of one training run (the `hw3 train` options)."""

    encoder: str = "auto"
    data: str = "auto"
    epochs: int = 5
    max_length: int = BERT_MAX_LENGTH
    batch_size: int = DEFAULT_BATCH_SIZE
    out: str = "runs/latest"
    seed: int = SEED
    lr: float = 1e-3
    precision: str = "auto"
    resume: bool = False
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        """One-line HW3Error for values that cannot work."""
        if self.epochs < 1:
            raise HW3Error(f"--epochs must be at least 1, got {self.epochs}")
        if not 3 <= self.max_length <= BERT_MAX_LENGTH:
            raise HW3Error(f"--max-length must be between 3 and {BERT_MAX_LENGTH}, got {self.max_length}")
        if self.batch_size < 1:
            raise HW3Error(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise HW3Error(f"--precision must be auto, bf16 or fp32, got {self.precision}")


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HW3Error("--device cuda was asked for but no GPU is available: use --device cpu")
    return torch.device(name)


def _progress(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, unit="batch")


def _resume_state(out: Path, config: TrainConfig, encoder: str, data: str) -> dict | None:
    """The saved state to continue from, or None for a fresh run; refuses to clobber an unfinished run."""
    last = out / checkpoint.LAST
    if not last.is_file():
        return None
    state = checkpoint.load(last)
    if not config.resume:
        if state["epoch"] < state["epochs"] and not state.get("finished", False):
            raise HW3Error(f"{out} holds a run stopped after epoch {state['epoch']} of {state['epochs']}: add --resume to continue it, or choose another --out")
        return None
    for key, value in (("encoder", encoder), ("data", data), ("max_length", config.max_length), ("batch_size", config.batch_size), ("seed", config.seed)):
        if state["config"][key] != value:
            raise HW3Error(f"cannot resume {out}: it was trained with {key}={state['config'][key]} but this run has {key}={value}; use the same options or another --out")
    return state


@contextmanager
def flush_denormals():
    """Treat subnormal floats as zero while training: CPU GRU backward slows ~6x on them otherwise."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def run(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Train, validate each epoch, keep the best model, test it; returns the metrics dict (also in metrics.json)."""
    config.validate()
    with flush_denormals():
        return _run(config, log)


def _run(config: TrainConfig, log: Callable[[str], None]) -> dict:
    out = Path(config.out)
    device = pick_device(config.device)
    spec = resolve_encoder(config.encoder)
    source = resolve_data(config.data)
    log(f"encoder: {spec.name} ({spec.reason}) | data: {source.name} ({source.reason}) | device: {device}")
    state = _resume_state(out, config, spec.name, source.name)

    tokenizer = load_tokenizer(spec)
    splits = load_splits(source, seed=config.seed)
    t0 = time.perf_counter()
    ids = {name: encode_batch(tokenizer, [r.text for r in part], config.max_length) for name, part in splits._asdict().items()}
    log(f"tokenized {sum(map(len, ids.values())):,} reviews in {time.perf_counter() - t0:.1f}s | "
        f"train {len(splits.train):,} / valid {len(splits.valid):,} / test {len(splits.test):,}")

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    bert = load_bert(spec)
    model = build_model(bert, pad_id=tokenizer.pad_token_id)
    freeze_bert(model)
    model.to(device)
    optimizer = optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    criterion = nn.BCEWithLogitsLoss().to(device)

    dtype = resolve_precision(config.precision, device)
    model.compute_dtype = dtype
    log(f"model: {total_parameters(model):,} parameters, {count_parameters(model):,} trainable (BERT frozen) | "
        f"compute: {str(dtype).removeprefix('torch.') if dtype else 'float32'}")
    embed = make_embedder(model, dtype)
    hidden = bert.config.hidden_size

    def batches(name: str, shuffle: bool) -> CachedBatches:
        part = getattr(splits, name)
        it = BucketIterator(ids[name], [r.label for r in part], config.batch_size, shuffle=shuffle,
                            pad_id=tokenizer.pad_token_id, seed=config.seed, device=device)
        return CachedBatches(it, FeatureStore([len(x) for x in ids[name]], hidden, spill_dir=out), embed)

    out.mkdir(parents=True, exist_ok=True)
    train_batches, valid_batches = batches("train", True), batches("valid", False)
    history: list[dict] = []
    best_valid_loss = float("inf")
    start_epoch = 0
    if state is not None:
        checkpoint.check_compatible(state, spec.name, hidden, out / checkpoint.LAST)
        checkpoint.load_head(model, state["head"], out / checkpoint.LAST)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        history, best_valid_loss, start_epoch = list(state["history"]), state["best_valid_loss"], state["epoch"]
        log(f"resuming {out} after epoch {start_epoch} (best valid loss {best_valid_loss:.3f})")

    record = {"encoder": spec.name, "data": source.name, "config": {**asdict(config), "encoder": spec.name, "data": source.name},
              "examples": {"train": len(splits.train), "valid": len(splits.valid), "test": len(splits.test)}}
    for epoch in range(start_epoch, config.epochs):
        train_batches.set_epoch(epoch)
        start = time.perf_counter()
        train_loss, train_acc = train(model, _progress(train_batches, f"epoch {epoch + 1} train", config.progress), optimizer, criterion)
        valid_loss, valid_acc = evaluate(model, _progress(valid_batches, f"epoch {epoch + 1} valid", config.progress), criterion)
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                        "valid_loss": valid_loss, "valid_acc": valid_acc, "seconds": seconds})
        if valid_loss < best_valid_loss:
            best_valid_loss = valid_loss
            checkpoint.save(checkpoint.model_payload(model, spec.name), out / checkpoint.BEST)
        checkpoint.save({**checkpoint.model_payload(model, spec.name), "optimizer": optimizer.state_dict(),
                         "rng": torch.get_rng_state(), "epoch": epoch + 1, "epochs": config.epochs,
                         "best_valid_loss": best_valid_loss, "history": history, "config": record["config"]},
                        out / checkpoint.LAST)
        checkpoint.save_json({**record, "epochs": history}, out / checkpoint.METRICS)
        log(f"Epoch: {epoch + 1:02} | Epoch Time: {seconds:.1f}s | Train Loss: {train_loss:.3f} | Train Acc: {train_acc * 100:.2f}% "
            f"| Val. Loss: {valid_loss:.3f} | Val. Acc: {valid_acc * 100:.2f}%")

    checkpoint.load_head(model, checkpoint.load(out / checkpoint.BEST)["head"], out / checkpoint.BEST)
    test_batches = batches("test", False)
    test_loss, test_acc = evaluate(model, _progress(test_batches, "test", config.progress), criterion)
    metrics = {**record, "epochs": history, "test_loss": test_loss, "test_acc": test_acc}
    checkpoint.save_json(metrics, out / checkpoint.METRICS)
    plot_history(history, out / "curves.png")
    log(f"Test Loss: {test_loss:.3f} | Test Acc: {test_acc * 100:.2f}% | wrote {out / checkpoint.BEST}, {out / checkpoint.METRICS}, {out / 'curves.png'}")
    return metrics
