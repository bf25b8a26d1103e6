"""`last.pt`: everything a `hw3 train` run needs to resume, its schema, its writer and its reader.

It holds model.pt's payload (the last epoch's head, its ModelConfig, the encoder) plus the Adam state, the
torch RNG states, the finished epochs' records, the best validation loss, epoch and head, the run's options
and whether it finished. It is written after every epoch (before model.pt) and is the source of truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoint
from ..errors import HW3Error

# What last.pt must hold to resume a run.
KEYS = ("head", "optimizer", "rng", "epoch", "epochs", "best_valid_loss", "best_epoch", "best_head", "history", "config")


@dataclass
class Progress:
    """What finished epochs leave behind: their records and the best model so far."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_valid_loss: float = math.inf
    best_epoch: int = 0
    best_head: dict | None = None

    def update(self, record: dict, head: dict) -> bool:
        """Add one epoch's record; keep a copy of `head` when its validation loss is the best. True if it is."""
        self.history.append(record)
        self.epoch = record["epoch"]
        improved = self.best_head is None or record["valid_loss"] < self.best_valid_loss
        if improved:
            self.best_valid_loss, self.best_epoch = record["valid_loss"], record["epoch"]
            self.best_head = clone(head)
        return improved


def clone(tensors: dict) -> dict:
    """Detached CPU copies of a state dict's tensors (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}


def payload(model, optimizer, progress: Progress, encoder: str, config: dict, epochs: int, finished: bool = False) -> dict:
    """last.pt's content now (tensors copied, so it stays valid while training goes on)."""
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {**checkpoint.model_payload(model, encoder, clone(model.head_state_dict())),
            "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "cuda_rng": cuda_rng,
            "epoch": progress.epoch, "epochs": epochs, "best_valid_loss": progress.best_valid_loss,
            "best_epoch": progress.best_epoch, "best_head": progress.best_head, "history": progress.history,
            "config": config, "finished": finished}


def save(state: dict, folder: Path) -> None:
    """Write `state` (a `payload`) to folder/last.pt atomically."""
    checkpoint.save(state, Path(folder) / checkpoint.LAST)


def load(path: Path) -> dict:
    """Load last.pt (safely, weights only) and check it holds everything needed to resume."""
    state = checkpoint.load(path)
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise HW3Error(f"{path} cannot be resumed (it lacks {', '.join(missing)}; written by an older hw3?): "
                       f"start afresh with another --out or delete {path}")
    return state


def restore(state: dict, model, optimizer, path: Path) -> Progress:
    """Put a loaded last.pt's head, Adam state and RNG state back; returns its Progress."""
    checkpoint.load_head(model, state["head"], path)
    try:
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise HW3Error(f"{path} holds an unusable optimizer or RNG state ({str(exc).splitlines()[0][:100]}): "
                       f"start afresh with another --out") from None
    cuda_rng = state.get("cuda_rng") or []
    if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return Progress(state["epoch"], list(state["history"]), state["best_valid_loss"], state["best_epoch"], state["best_head"])
