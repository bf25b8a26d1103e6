"""Benchmark: one training step of the GRU head (forward + backward) per compute dtype, on CPU or GPU.

Times `BERTGRUSentiment.classify` on random features of one batch ([B, T, E], lengths spread over
T/2..T as in a length bucket) for float32, float16 and bfloat16 GRU compute, next to a plain nn.GRU
over the padded batch (the seed's GRU call). Prints milliseconds per step (median of --repeat).

    python benchmarks/bench_gru.py                      # CPU, bundled-encoder width (E = 384)
    python benchmarks/bench_gru.py --device cuda --embedding 768
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hw3.sentiment.model import Features, build_model
from hw3.sentiment.precision import dtype_name


class _Width(torch.nn.Module):
    """A stand-in for BERT that only carries config.hidden_size (the head never calls it here)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.config = type("Config", (), {"hidden_size": hidden_size})()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--embedding", type=int, default=384, help="BERT hidden size E (384 bundled, 768 bert-base)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--length", type=int, default=300, help="longest review in the batch, tokens")
    p.add_argument("--repeat", type=int, default=5)
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(step, device: torch.device, repeat: int) -> float:
    """Median milliseconds of step() after one warm-up call."""
    step()
    sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    model = build_model(_Width(args.embedding)).to(device).train()
    B, T, E = args.batch_size, args.length, args.embedding
    lengths = torch.randint(T // 2, T + 1, (B,))
    lengths[0] = T
    x = torch.randn(B, T, E, device=device) * (torch.arange(T, device=device) < lengths.to(device)[:, None]).unsqueeze(-1)
    features = Features(x, lengths)
    y = torch.randint(0, 2, (B,), device=device).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def head_step() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model.classify(features).squeeze(1), y).backward()

    def padded_step() -> None:
        model.zero_grad(set_to_none=True)
        _, hidden = model.rnn(x)
        loss_fn(model.out(torch.cat((hidden[-2], hidden[-1]), dim=1)).squeeze(1), y).backward()

    print(f"device {device} | batch {B} x {T} tokens x {E} | threads {torch.get_num_threads()}")
    print(f"{'GRU step (fwd + bwd)':<34}{'ms':>10}")
    print(f"{'nn.GRU on the padded batch, fp32':<34}{time_step(padded_step, device, args.repeat):>10.1f}")
    dtypes = [None, torch.float16, torch.bfloat16]
    for dtype in dtypes:
        model.compute_dtype = dtype
        try:
            ms = time_step(head_step, device, args.repeat)
        except RuntimeError as exc:
            print(f"{'hw3 head, GRU ' + dtype_name(dtype):<34}{'n/a':>10}  ({str(exc).splitlines()[0][:60]})")
            continue
        print(f"{'hw3 head, GRU ' + dtype_name(dtype):<34}{ms:>10.1f}")


if __name__ == "__main__":
    main()
