"""Benchmark: the seed notebook's Q4 loop against hw3's pipeline, in one process, same data and encoder.

Prints reviews/second for tokenization, the first epoch and later epochs (train + validation), both
pipelines' validation accuracy, and the ratios. Peak memory (RSS) is printed at the end. The persistent
feature cache is off (HW3_FEATURE_CACHE=off), so hw3's first epoch always includes BERT.

    python benchmarks/bench_pipeline.py                          # real IMDB sample if present, else embedded
    python benchmarks/bench_pipeline.py --train 600 --epochs 3 --encoder bundled
    python benchmarks/bench_pipeline.py --device cuda --encoder bert-base   # random bert-base weights (timing)
    python benchmarks/bench_pipeline.py --device cuda --encoder bert-base --imdb-size   # seconds per full-IMDB epoch
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["HW3_FEATURE_CACHE"] = "off"  # time BERT itself, never features a previous run left on disk

import seed_baseline as seed  # noqa: E402

from hw3.sentiment.batching import BucketIterator  # noqa: E402
from hw3.sentiment.data import load_splits, resolve_data  # noqa: E402
from hw3.sentiment.encoders import bundled_path, load_bert, resolve_encoder  # noqa: E402
from hw3.sentiment.features import cache_features  # noqa: E402
from hw3.sentiment.model import ModelConfig, bert_base_random, build_model, freeze_bert  # noqa: E402
from hw3.sentiment.precision import dtype_name  # noqa: E402
from hw3.sentiment.tokenizer import encode_batch, load_tokenizer  # noqa: E402
from hw3.sentiment.training import evaluate, train  # noqa: E402

SHARED_IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb-sample" / "aclImdb"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED_IMDB) if SHARED_IMDB.is_dir() else "sample")
    p.add_argument("--encoder", default="bundled", help="bundled | bert-base (random weights, bert-base sizes) | PATH")
    p.add_argument("--tokenizer", default=None, help="folder with the tokenizer files for --encoder bert-base "
                   "(default: the bundled encoder's folder)")
    p.add_argument("--imdb-size", action="store_true", help="repeat the reviews up to full IMDB's 17,500 train + "
                   "7,500 valid, for seconds per full epoch (timing only: repeats make the accuracy meaningless)")
    p.add_argument("--train", type=int, default=600, help="training reviews used (0 = all)")
    p.add_argument("--valid", type=int, default=300, help="validation reviews used (0 = all)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per pipeline (first + later ones)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", help="hw3 pipeline precision: auto | bf16 | fp16 | fp32")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p.parse_args()


def load_encoder(name: str, device: torch.device, tokenizer: str | None = None):
    """(bert, tokenizer location) for the benchmark's encoder."""
    if name == "bert-base":
        return bert_base_random(device), tokenizer or str(bundled_path())
    spec = resolve_encoder(name)
    return load_bert(spec).to(device), spec.location


def run_epochs(model, train_it, valid_it, epochs: int, train_fn, eval_fn) -> list[dict]:
    """Train/validate for `epochs`, timing each epoch."""
    optimizer = optim.Adam([p for p in model.parameters() if p.requires_grad])
    criterion = nn.BCEWithLogitsLoss()
    out = []
    for epoch in range(epochs):
        start = time.perf_counter()
        train_loss, train_acc = train_fn(model, train_it, optimizer, criterion)
        valid_loss, valid_acc = eval_fn(model, valid_it, criterion)
        seconds = time.perf_counter() - start
        out.append({"seconds": seconds, "train_loss": train_loss, "valid_loss": valid_loss, "valid_acc": valid_acc})
        print(f"  epoch {epoch + 1}: {seconds:7.1f}s  train loss {train_loss:.3f}  valid loss {valid_loss:.3f}  "
              f"valid acc {valid_acc * 100:.2f}%", flush=True)
    return out


def baseline(texts, labels, valid_texts, valid_labels, args, device) -> dict:
    torch.manual_seed(0)
    bert, location = load_encoder(args.encoder, device, args.tokenizer)
    tokenizer = seed.legacy_tokenizer(location)
    start = time.perf_counter()
    ids = seed.tokenize_like_torchtext(tokenizer, texts + valid_texts)
    tok_seconds = time.perf_counter() - start
    to = lambda it: ((x.to(device), y.to(device)) for x, y in it)  # noqa: E731
    train_it = seed.make_iterator(ids[: len(texts)], labels, True, args.batch_size, 1234)
    valid_it = seed.make_iterator(ids[len(texts):], valid_labels, False, args.batch_size, 1234)
    model = seed.SeedBERTGRUSentiment(bert).to(device)
    for name, param in model.named_parameters():
        if name.startswith("bert"):
            param.requires_grad = False
    epochs = run_epochs(model, _Sized(train_it, to), _Sized(valid_it, to), args.epochs, train, evaluate)
    return {"tokenize_seconds": tok_seconds, "epochs": epochs}


class _Sized:
    """An iterable with len() that maps a function over another iterable's items."""

    def __init__(self, iterable, fn):
        self.iterable, self.fn = iterable, fn

    def __len__(self):
        return len(self.iterable)

    def __iter__(self):
        return iter(self.fn(self.iterable))


def hw3_pipeline(texts, labels, valid_texts, valid_labels, args, device) -> dict:
    torch.manual_seed(0)
    bert, location = load_encoder(args.encoder, device, args.tokenizer)
    tokenizer = load_tokenizer(location)
    start = time.perf_counter()
    ids = encode_batch(tokenizer, texts + valid_texts)
    tok_seconds = time.perf_counter() - start
    model = build_model(bert, ModelConfig(pad_id=tokenizer.pad_token_id)).to(device)
    freeze_bert(model)
    train_it = cache_features(model, BucketIterator(ids[: len(texts)], labels, args.batch_size, True, device=device), args.precision)
    valid_it = cache_features(model, BucketIterator(ids[len(texts):], valid_labels, args.batch_size, False, device=device), args.precision)
    epochs = run_epochs(model, train_it, valid_it, args.epochs, train, evaluate)  # batches flush subnormals themselves
    return {"tokenize_seconds": tok_seconds, "epochs": epochs,
            "compute": f"BERT {dtype_name(train_it.embed.dtype)}, GRU {dtype_name(model.compute_dtype)}"}


def rates(result: dict, n_tok: int, n_epoch: int) -> dict:
    first, later = seconds_per_epoch(result)
    return {"tokenize": n_tok / result["tokenize_seconds"], "first_epoch": n_epoch / first,
            "later_epochs": n_epoch / later, "valid_acc": result["epochs"][-1]["valid_acc"]}


def with_peak_gpu(pipeline, *args) -> dict:
    """pipeline(*args), with its peak GPU memory (MiB) added when it ran on a GPU."""
    device = args[-1]
    if device.type != "cuda":
        return pipeline(*args)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    result = pipeline(*args)
    return {**result, "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20}


IMDB_TRAIN, IMDB_VALID = 17_500, 7_500


def cycle(items: list, n: int) -> list:
    """The first n items of items repeated end to end."""
    return [items[i % len(items)] for i in range(n)]


def seconds_per_epoch(result: dict) -> tuple[float, float]:
    """(first epoch, mean of later epochs) in seconds."""
    later = result["epochs"][1:] or result["epochs"][:1]
    return result["epochs"][0]["seconds"], sum(e["seconds"] for e in later) / len(later)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    random.seed(0)
    splits = load_splits(resolve_data(args.data))
    train_part = splits.train[: args.train or None]
    valid_part = splits.valid[: args.valid or None]
    if args.imdb_size:
        train_part, valid_part = cycle(train_part, IMDB_TRAIN), cycle(valid_part, IMDB_VALID)
    texts, labels = [r.text for r in train_part], [r.label for r in train_part]
    valid_texts, valid_labels = [r.text for r in valid_part], [r.label for r in valid_part]
    print(f"data {args.data}: {len(texts)} train + {len(valid_texts)} valid reviews | encoder {args.encoder} | "
          f"device {device} | threads {torch.get_num_threads()}")
    print("seed baseline:")
    base = with_peak_gpu(baseline, texts, labels, valid_texts, valid_labels, args, device)
    print("hw3 pipeline:")
    ours = with_peak_gpu(hw3_pipeline, texts, labels, valid_texts, valid_labels, args, device)
    n = len(texts) + len(valid_texts)
    b, o = rates(base, n, n), rates(ours, n, n)
    print(f"\n{'reviews/second':<16}{'seed':>12}{'hw3':>12}{'ratio':>10}")
    for key in ("tokenize", "first_epoch", "later_epochs"):
        print(f"{key:<16}{b[key]:>12.1f}{o[key]:>12.1f}{o[key] / b[key]:>9.1f}x")
    print(f"{'valid acc':<16}{b['valid_acc'] * 100:>11.2f}%{o['valid_acc'] * 100:>11.2f}%{(o['valid_acc'] - b['valid_acc']) * 100:>+9.2f} pt")
    for name, result in (("seed", base), ("hw3", ours)):
        first, later = seconds_per_epoch(result)
        print(f"{name} seconds per epoch ({n:,} reviews): first {first:.1f}, later {later:.1f}"
              + (f" | peak GPU {result['peak_gpu_mib']:,.0f} MiB" if "peak_gpu_mib" in result else "")
              + (f" | compute {result['compute']}" if "compute" in result else ""))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "seed": base, "hw3": ours, "seed_rates": b, "hw3_rates": o}, indent=2))


if __name__ == "__main__":
    main()
