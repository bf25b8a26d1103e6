"""Q4 training loop functions: binary_accuracy, train, evaluate, plot_history."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn, optim

from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.model import BERTGRUSentiment, freeze_bert, tiny_bert
from hw3.sentiment.training import binary_accuracy, evaluate, plot_history, train

POS_TOKEN, NEG_TOKEN = 2204, 2919  # 'good', 'bad'


def separable_corpus(n: int = 48, seed: int = 0):
    """Reviews of filler tokens where positives hold POS_TOKEN several times and negatives NEG_TOKEN."""
    rng = random.Random(seed)
    ids, labels = [], []
    for k in range(n):
        label = k % 2
        body = [rng.randrange(3000, 4000) for _ in range(rng.randint(4, 10))]
        for _ in range(3):
            body.insert(rng.randrange(len(body) + 1), POS_TOKEN if label else NEG_TOKEN)
        ids.append([101, *body, 102])
        labels.append(label)
    return ids, labels


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


@pytest.fixture()
def setup(bert):
    torch.manual_seed(0)
    model = BERTGRUSentiment(bert, 16, 1, 2, True, 0.25)
    freeze_bert(model)
    ids, labels = separable_corpus()
    iterator = BucketIterator(ids, labels, batch_size=8, seed=1)
    return model, iterator


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- binary_accuracy ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preds, y, acc", [
    ([-2.0, 0.5, 3.0, -0.1], [0, 1, 1, 0], 1.0),
    ([-2.0, 0.5, 3.0, -0.1], [1, 0, 0, 1], 0.0),
    ([5.0, -5.0, 5.0, -5.0], [1, 1, 0, 0], 0.5),
    ([0.0], [0], 1.0),            # logit 0: sigmoid 0.5 rounds (half to even) to 0, a negative prediction
    ([0.0], [1], 0.0),
    ([0.0, 1e-6, -1e-6], [0, 1, 0], 1.0),
    ([100.0, -100.0, 0.0], [1, 0, 1], 2 / 3),
])
def test_binary_accuracy(preds, y, acc):
    out = binary_accuracy(torch.tensor(preds), torch.tensor(y, dtype=torch.float))
    assert out.dim() == 0
    assert out.item() == pytest.approx(acc)


# --- train / evaluate -----------------------------------------------------------------------------------------------

def test_train_reduces_the_loss_and_changes_only_trainable_parameters(setup):
    model, iterator = setup
    before = snapshot(model)
    optimizer = optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    criterion = nn.BCEWithLogitsLoss()
    history = [train(model, iterator, optimizer, criterion) for _ in range(6)]
    losses = [loss for loss, _ in history]
    assert all(isinstance(v, float) for pair in history for v in pair)
    assert losses[-1] < 0.5 * losses[0], losses
    assert history[-1][1] > 0.9
    after = snapshot(model)
    for name, value in before.items():
        if name.startswith("bert."):
            assert torch.equal(after[name], value), name
        else:
            assert not torch.equal(after[name], value), name
    iterator.shuffle = False
    valid_loss, valid_acc = evaluate(model, iterator, criterion)
    assert valid_acc > 0.9 and valid_loss < losses[0]


def test_train_runs_in_train_mode_with_bert_in_eval_mode(setup):
    model, iterator = setup
    model.eval()
    modes = []
    model.out.register_forward_hook(lambda m, i, o: modes.append((m.training, model.bert.training, torch.is_grad_enabled())))
    optimizer = optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    train(model, iterator, optimizer, nn.BCEWithLogitsLoss())
    assert len(modes) == len(iterator) and set(modes) == {(True, False, True)}


def test_evaluate_changes_nothing_and_runs_in_eval_mode_without_grad(setup):
    model, iterator = setup
    iterator.shuffle = False
    model.train()
    before = snapshot(model)
    modes = []
    model.out.register_forward_hook(lambda m, i, o: modes.append((model.training, torch.is_grad_enabled())))
    criterion = nn.BCEWithLogitsLoss()
    loss, acc = evaluate(model, iterator, criterion)
    assert set(modes) == {(False, False)} and len(modes) == len(iterator)
    assert all(torch.equal(v, snapshot(model)[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(loss, float) and isinstance(acc, float) and 0 <= acc <= 1
    assert evaluate(model, iterator, criterion) == (loss, acc)  # deterministic: no dropout
    # the mean over batches of the batch losses and accuracies
    with torch.no_grad():
        per_batch = [(criterion(model(x).squeeze(1), y).item(), binary_accuracy(model(x).squeeze(1), y).item())
                     for x, y in iterator]
    assert loss == pytest.approx(sum(l for l, _ in per_batch) / len(per_batch), rel=1e-6)
    assert acc == pytest.approx(sum(a for _, a in per_batch) / len(per_batch), rel=1e-6)


def test_empty_iterator_gives_zeros(setup):
    model, _ = setup
    assert evaluate(model, [], nn.BCEWithLogitsLoss()) == (0.0, 0.0)


# --- plot_history ---------------------------------------------------------------------------------------------------

def _lines(ax, label: str):
    return [line for line in ax.get_lines() if line.get_label() == label]


def test_plot_history_draws_and_saves(tmp_path):
    import matplotlib.pyplot as plt

    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10, "valid_loss": 1.1 / e, "valid_acc": 0.5 + e / 20}
               for e in (1, 2, 3)]
    fig = plot_history(history)
    try:
        loss_ax, acc_ax = fig.axes
        assert [list(_lines(loss_ax, split)[0].get_ydata()) for split in ("train", "valid")] == \
            [[1, 0.5, 1 / 3], [1.1, 0.55, 1.1 / 3]]
        assert list(_lines(acc_ax, "train")[0].get_ydata()) == pytest.approx([60, 70, 80])
    finally:
        plt.close(fig)
    path = tmp_path / "curves.png"
    plot_history(history, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_history_takes_exactly_the_four_values_the_homework_names():
    import matplotlib.pyplot as plt

    from hw3.sentiment.training import plot_history

    records = [{"train_loss": 0.7 - 0.1 * i, "train_acc": 0.5 + 0.1 * i, "valid_loss": 0.7, "valid_acc": 0.6}
               for i in range(3)]
    fig = plot_history(records)
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]
    plt.close(fig)


@pytest.mark.parametrize("valid_losses, best", [([0.7, 0.5, 0.6, 0.55], 2), ([0.4, 0.5, 0.6], 1), ([0.9, 0.8, 0.8], 2)])
def test_plot_history_marks_the_epoch_of_lowest_validation_loss(valid_losses, best):
    import matplotlib.pyplot as plt

    from hw3.sentiment.training import best_epoch

    history = [{"epoch": e, "train_loss": 0.5, "train_acc": 0.7, "valid_loss": v, "valid_acc": 0.6}
               for e, v in enumerate(valid_losses, start=1)]
    assert best_epoch(history) == best
    fig = plot_history(history)
    try:
        for ax in fig.axes:
            (marker,) = _lines(ax, f"best epoch ({best})")
            assert list(marker.get_xdata()) == [best, best]
        assert not any(line.get_label().startswith("test") for ax in fig.axes for line in ax.get_lines())
    finally:
        plt.close(fig)


def test_plot_history_marks_the_given_best_epoch_and_the_test_accuracy_there():
    import matplotlib.pyplot as plt

    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.6, "valid_loss": 1 / e, "valid_acc": 0.6}
               for e in (1, 2, 3)]
    fig = plot_history(history, best=2, test_acc=0.7917)
    try:
        loss_ax, acc_ax = fig.axes
        assert list(_lines(loss_ax, "best epoch (2)")[0].get_xdata()) == [2, 2]
        (test,) = _lines(acc_ax, "test 79.2%")
        assert list(test.get_xdata()) == [2] and list(test.get_ydata()) == pytest.approx([79.17])
        assert any("test accuracy 79.2%" in text.get_text() for text in fig.texts)  # the title
    finally:
        plt.close(fig)
