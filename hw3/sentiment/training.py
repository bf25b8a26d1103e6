"""Q4 training and evaluation, the homework's functions: accuracy, one training epoch, one evaluation epoch.

Batches are `(x, y)` pairs: x token ids [B, T] (or cached Features), y float labels [B]. Both loops
return the mean over batches of the loss and of the accuracy, as floats.
"""

from __future__ import annotations

import torch
from torch import nn


def binary_accuracy(preds: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of logits preds [B] whose rounded sigmoid equals the 0/1 labels y [B] (0-d tensor)."""
    rounded = torch.round(torch.sigmoid(preds))
    return (rounded == y).float().mean()


def train(model: nn.Module, iterator, optimizer: torch.optim.Optimizer, criterion: nn.Module) -> tuple[float, float]:
    """One epoch of training; returns (mean loss, mean accuracy) over batches."""
    epoch_loss = epoch_acc = 0.0
    n_batches = 0
    model.train()
    for x, y in iterator:
        optimizer.zero_grad()
        preds = model(x).squeeze(1)
        loss = criterion(preds, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        epoch_acc += binary_accuracy(preds.detach(), y).item()
        n_batches += 1
    return epoch_loss / max(n_batches, 1), epoch_acc / max(n_batches, 1)


def evaluate(model: nn.Module, iterator, criterion: nn.Module) -> tuple[float, float]:
    """One pass without gradients in eval mode; returns (mean loss, mean accuracy) over batches."""
    epoch_loss = epoch_acc = 0.0
    n_batches = 0
    model.eval()
    with torch.no_grad():
        for x, y in iterator:
            preds = model(x).squeeze(1)
            epoch_loss += criterion(preds, y).item()
            epoch_acc += binary_accuracy(preds, y).item()
            n_batches += 1
    return epoch_loss / max(n_batches, 1), epoch_acc / max(n_batches, 1)


def best_epoch(history: list[dict]) -> int:
    """The epoch whose model is kept: the first with the lowest validation loss (records numbered from 1 when
    they carry no "epoch")."""
    best = min(range(len(history)), key=lambda i: (history[i]["valid_loss"], i))
    return history[best].get("epoch", best + 1)


def plot_history(history: list[dict], path=None, best: int | None = None, test_acc: float | None = None):
    """Training curves (loss and accuracy, train vs valid, per epoch); saves to `path` if given.

    Each record needs the four values the homework names (train_loss, train_acc, valid_loss, valid_acc); its
    "epoch" is optional (records are numbered 1, 2, ... without it). A dashed line marks the kept model's epoch
    (`best`, default: `best_epoch(history)`); `test_acc` (a fraction), when given, is drawn at that epoch.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [h.get("epoch", number) for number, h in enumerate(history, start=1)]
    best = best_epoch(history) if best is None else best
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6))
    for split, style in (("train", "o-"), ("valid", "s--")):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], style, label=split)
        ax_acc.plot(epochs, [100 * h[f"{split}_acc"] for h in history], style, label=split)
    for ax in (ax_loss, ax_acc):
        ax.axvline(best, color="0.4", linestyle=":", linewidth=1.2, label=f"best epoch ({best})")
    if test_acc is not None:
        ax_acc.plot([best], [100 * test_acc], "*", color="C3", markersize=13, label=f"test {100 * test_acc:.1f}%")
    ax_loss.set(xlabel="epoch", ylabel="BCE loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize="small")
        ax.set_xticks(epochs)
    suffix = f": test accuracy {100 * test_acc:.1f}%" if test_acc is not None else ""
    fig.suptitle(f"best epoch {best} (lowest validation loss, the model kept){suffix}", fontsize="medium")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
