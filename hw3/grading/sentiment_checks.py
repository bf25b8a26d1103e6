"""Verifiers for Q4 (frozen BERT + GRU sentiment), against `hw3.sentiment`.

Function exercises (count_parameters, binary_accuracy, train, evaluate, predict_sentiment) run on fresh
inputs: small random models built with `tiny_bert`, random logits and labels, new sentences. Training
and evaluation run twice, on two identical copies of a tiny model with dropout 0 (so the results are
deterministic), once with the student's function and once with the reference. Checks never change the
global torch random state, so a notebook's later cells see the same random numbers with or without them.
"""

from __future__ import annotations

import contextlib

import copy
import math
import numbers
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from .checks import CheckFailed, as_float, call_student, describe_exception, describe_value, fresh_rng

GIVEN_REVIEWS = ("Justice League is terrible. I hated it.", "Avengers was great!!")
HISTORY_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")
GRU_SETTINGS = {"hidden_size": 256, "num_layers": 2, "bidirectional": True, "dropout": 0.25, "batch_first": True}
TINY_VOCAB = 1000


def as_int(value: Any, what: str) -> int:
    """An int from an int-like value or a one-element integer tensor; CheckFailed saying "<what> <value>" otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CheckFailed(f"{what} {describe_value(value)}, expected an int")
    return int(value)


# q4.1: data ------------------------------------------------------------------------------------------

def check_vocab_size(vocab_size: Any) -> None:
    """q4.1a: the size of the tokenizer's vocabulary."""
    from hw3.sentiment.tokenizer import load_tokenizer

    vocab_size = as_int(vocab_size, "vocab_size is")
    expected = len(load_tokenizer().vocab)
    if vocab_size != expected:
        raise CheckFailed(f"vocab_size is {vocab_size}, expected {expected}: use len(tokenizer.vocab)")


def check_split_sizes(sizes: Any, splits: Any) -> None:
    """q4.1b: sizes = (n_train, n_valid, n_test) of the loaded splits; valid is 30% of the original train set."""
    from hw3.sentiment.data import VALID_FRACTION

    try:
        parts = tuple(splits)
        actual = tuple(len(part) for part in parts)
    except TypeError:
        raise CheckFailed(f"splits is {describe_value(splits)}, expected the (train, valid, test) datasets") from None
    if len(actual) != 3:
        raise CheckFailed(f"splits has {len(actual)} parts, expected 3: (train, valid, test)")
    if not isinstance(sizes, (tuple, list)) or tuple(sizes) != actual:
        raise CheckFailed(f"sizes is {sizes!r}, but the splits hold {actual} reviews (train, valid, test)")
    n_train, n_valid, n_test = actual
    if min(actual) == 0:
        raise CheckFailed(f"a split is empty: sizes {actual}")
    share = n_valid / (n_train + n_valid)
    if abs(n_valid - VALID_FRACTION * (n_train + n_valid)) > 1:
        raise CheckFailed(f"the validation set is {share:.1%} of the original training set, expected "
                          f"{VALID_FRACTION:.0%}: split off 30% of the training reviews")


# q4.2: the model --------------------------------------------------------------------------------------

def module_attribute(model: Any, name: str, kind: type) -> Any:
    """model.<name>, which must be a `kind` module; CheckFailed naming what is wrong."""
    part = getattr(model, name, None)
    if not isinstance(part, kind):
        found = "nothing" if part is None else type(part).__name__
        raise CheckFailed(f"model.{name} is {found}, expected an nn.{kind.__name__}: build the model with "
                          f"BERTGRUSentiment(bert, ...)")
    return part


def check_model(model: Any) -> None:
    """q4.2a: a BERTGRUSentiment with a 2-layer bidirectional GRU (hidden 256, dropout 0.25) and 1 output."""
    rnn = module_attribute(model, "rnn", nn.GRU)
    out = module_attribute(model, "out", nn.Linear)
    dropout = module_attribute(model, "dropout", nn.Dropout)
    bert = module_attribute(model, "bert", nn.Module)
    for setting, expected in GRU_SETTINGS.items():
        value = getattr(rnn, setting)
        if value != expected:
            raise CheckFailed(f"model.rnn.{setting} is {value}, expected {expected}")
    embedding_dim = getattr(getattr(bert, "config", None), "hidden_size", None)
    if rnn.input_size != embedding_dim:
        raise CheckFailed(f"model.rnn.input_size is {rnn.input_size}, expected BERT's hidden size {embedding_dim}")
    if dropout.p != GRU_SETTINGS["dropout"]:
        raise CheckFailed(f"model.dropout.p is {dropout.p}, expected {GRU_SETTINGS['dropout']}")
    if (out.in_features, out.out_features) != (2 * rnn.hidden_size, 1):
        raise CheckFailed(f"model.out maps {out.in_features} -> {out.out_features} features, expected "
                          f"{2 * rnn.hidden_size} -> 1 (OUTPUT_DIM = 1)")


def small_models(rng: random.Random) -> list[nn.Module]:
    """Small random models: nothing frozen, some parameters frozen, everything frozen."""
    models = []
    for frozen_share in (0.0, 0.5, 0.5, 1.0):
        dim, hidden = rng.randint(2, 12), rng.randint(2, 12)
        model = nn.Sequential(nn.Embedding(rng.randint(5, 40), dim), nn.GRU(dim, hidden, batch_first=True),
                              nn.Linear(hidden, rng.randint(1, 3)))
        params = list(model.parameters())
        frozen = rng.sample(params, round(frozen_share * len(params)))
        if 0 < frozen_share < 1 and not frozen:
            frozen = params[:1]
        for p in frozen:
            p.requires_grad = False
        models.append(model)
    return models


def check_count_parameters(count_parameters: Callable) -> None:
    """q4.2b: count_parameters(model) must count the trainable parameters, like the reference."""
    from hw3.sentiment.model import count_parameters as reference

    with torch.random.fork_rng(devices=[]):
        models = small_models(fresh_rng())
    for model in models:
        what = "count_parameters(model)"
        got = as_int(call_student(count_parameters, model, what=what), f"{what} returned")
        expected = reference(model)
        total = sum(p.numel() for p in model.parameters())
        if got != expected:
            hint = ": count only parameters with requires_grad" if got == total else ""
            raise CheckFailed(f"{what} returned {got} for a model with {expected} trainable of {total} "
                              f"parameters{hint}")


def check_frozen(model: Any) -> None:
    """q4.2c: every BERT parameter frozen, every other parameter trainable."""
    bert = module_attribute(model, "bert", nn.Module)
    bert_ids = {id(p) for p in bert.parameters()}
    trainable_bert = sum(p.numel() for p in bert.parameters() if p.requires_grad)
    if trainable_bert:
        raise CheckFailed(f"model.bert still has {trainable_bert:,} trainable parameters: set requires_grad = "
                          f"False on every parameter whose name starts with 'bert'")
    frozen_head = [name for name, p in model.named_parameters() if id(p) not in bert_ids and not p.requires_grad]
    if frozen_head:
        raise CheckFailed(f"{frozen_head[0]} is frozen too: freeze only the BERT parameters")
    head = sum(p.numel() for name in ("rnn", "out") for p in module_attribute(model, name, nn.Module).parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable != head:
        raise CheckFailed(f"the model has {trainable:,} trainable parameters, expected {head:,} (the GRU and the "
                          f"linear layer)")


# q4.3: training ---------------------------------------------------------------------------------------

def short(t: torch.Tensor, limit: int = 6) -> str:
    """The first values of a 1-D tensor, rounded: [0.12, -1.5, …]."""
    values = [f"{v:.3g}" for v in t.flatten().tolist()]
    return "[" + ", ".join(values[:limit]) + (", …]" if len(values) > limit else "]")


def accuracy_cases(rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, labels) pairs: random, with exact-zero logits (σ(0) = 0.5 rounds to 0), all zeros."""
    gen = torch.Generator().manual_seed(rng.getrandbits(62))
    cases = []
    for size in (1, 5, 8, rng.randint(20, 64)):
        logits = torch.randn(size, generator=gen) * rng.uniform(0.5, 4)
        logits[torch.rand(size, generator=gen) < 0.25] = 0.0
        cases.append((logits, torch.randint(0, 2, (size,), generator=gen).float()))
    cases.append((torch.zeros(6), torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 1.0])))
    return cases


def check_binary_accuracy(binary_accuracy: Callable) -> None:
    """q4.3a: the share of rounded sigmoid(logits) equal to the labels, as the reference computes it."""
    from hw3.sentiment.training import binary_accuracy as reference

    for logits, labels in accuracy_cases(fresh_rng()):
        what = f"binary_accuracy(preds={short(logits)}, y={short(labels)})"
        got = as_float(call_student(binary_accuracy, logits.clone(), labels.clone(), what=what), what)
        expected = float(reference(logits, labels))
        if not math.isclose(got, expected, abs_tol=1e-6):
            raise CheckFailed(f"{what} returned {got:.4g}, expected {expected:.4g}")


def tiny_setup(rng: random.Random) -> tuple[nn.Module, list]:
    """A tiny BERTGRUSentiment (frozen random BERT, dropout 0) and three batches of random token ids."""
    from hw3.sentiment.batching import Batch
    from hw3.sentiment.model import BERTGRUSentiment, freeze_bert, tiny_bert

    seed = rng.getrandbits(31)
    model = BERTGRUSentiment(tiny_bert(seed, vocab_size=TINY_VOCAB), 8, 1, 2, True, 0.0)
    freeze_bert(model)
    gen = torch.Generator().manual_seed(seed)
    batches = [Batch(torch.randint(1, TINY_VOCAB, (size, length), generator=gen),
                     torch.randint(0, 2, (size,), generator=gen).float())
               for size, length in ((4, 7), (3, 5), (5, 9))]
    return model, batches


class ForwardModes:
    """Records (module.training, torch.is_grad_enabled()) at every forward call of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.calls: list[tuple[bool, bool]] = []

    def __enter__(self) -> "ForwardModes":
        self.handle = self.module.register_forward_pre_hook(self._record)
        return self

    def _record(self, module: nn.Module, args: tuple) -> None:
        self.calls.append((module.training, torch.is_grad_enabled()))

    def __exit__(self, *exc_info: object) -> None:
        self.handle.remove()


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    """True when the two models' parameters agree to float32 round-off."""
    return all(torch.allclose(p, q, rtol=1e-5, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


def compare_loss_acc(got: Any, expected: tuple[float, float], what: str) -> None:
    """The student's (mean loss, mean accuracy) must match the reference's."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise CheckFailed(f"{what} returned {describe_value(got)}, expected (mean loss, mean accuracy)")
    for name, value, reference in zip(("loss", "accuracy"), got, expected):
        number = as_float(value, f"{what} ({name})")
        if not math.isclose(number, reference, rel_tol=1e-5, abs_tol=1e-6):
            raise CheckFailed(f"{what} returned {name} {number:.5g}, expected {reference:.5g} (the mean over batches)")


class EpochRun(NamedTuple):
    """One epoch run by the student's function and by the reference on identical tiny models."""

    what: str
    got: Any
    expected: tuple[float, float]
    mine: nn.Module
    theirs: nn.Module
    initial: nn.Module
    modes: list[tuple[bool, bool]]


@contextlib.contextmanager
def reference_accuracy(fn: Callable):
    """While checking train/evaluate, let `binary_accuracy` in the student's namespace be the reference's.

    Q3b and Q3c are graded on their own: a wrong binary_accuracy costs Q3a's points only.
    """
    from hw3.sentiment.training import binary_accuracy

    namespace = getattr(fn, "__globals__", None)
    if not isinstance(namespace, dict) or "binary_accuracy" not in namespace:
        yield
        return
    saved = namespace["binary_accuracy"]
    namespace["binary_accuracy"] = binary_accuracy
    try:
        yield
    finally:
        namespace["binary_accuracy"] = saved


def run_epoch(name: str, fn: Callable, start_training: bool) -> EpochRun:
    """Run the student's `fn` (train or evaluate, per `name`) and the reference on copies of a fresh tiny model.

    Both copies start in train mode when `start_training`, else in eval mode, so a function that
    forgets to switch modes is caught.
    """
    from hw3.sentiment import training

    reference = getattr(training, name)
    uses_optimizer = name == "train"
    what = f"{name}(model, iterator, {'optimizer, ' if uses_optimizer else ''}criterion)"

    with torch.random.fork_rng(devices=[]):
        initial, batches = tiny_setup(fresh_rng())

        def args(model: nn.Module) -> list:
            optimizer = [torch.optim.Adam(model.parameters())] if uses_optimizer else []
            return [model, list(batches), *optimizer, nn.BCEWithLogitsLoss()]

        mine, theirs = copy.deepcopy(initial), copy.deepcopy(initial)
        mine.train(start_training)
        theirs.train(start_training)
        with ForwardModes(mine) as modes, reference_accuracy(fn):
            got = call_student(fn, *args(mine), what=what)
        expected = reference(*args(theirs))
    if not modes.calls:
        raise CheckFailed(f"{what} never called the model: loop over the batches with `for x, y in iterator`")
    return EpochRun(what, got, expected, mine, theirs, initial, modes.calls)


def check_train(train: Callable) -> None:
    """q4.3b: one training epoch in train mode that updates the model exactly like the reference."""
    run = run_epoch("train", train, start_training=False)
    if not any(training for training, _ in run.modes):
        raise CheckFailed("train ran the model in eval mode: call model.train() at the start")
    if not any(grad for _, grad in run.modes):
        raise CheckFailed("train ran the model without gradients: do not use torch.no_grad() in train")
    if same_parameters(run.mine, run.initial):
        raise CheckFailed("train did not update the model: call loss.backward() and optimizer.step() for every batch")
    if not same_parameters(run.mine, run.theirs):
        raise CheckFailed("after train the parameters differ from the reference's: call optimizer.zero_grad() "
                          "before each backward pass and step once per batch")
    compare_loss_acc(run.got, run.expected, run.what)


def check_evaluate(evaluate: Callable) -> None:
    """q4.3c: one evaluation pass in eval mode without gradients, leaving the model unchanged."""
    run = run_epoch("evaluate", evaluate, start_training=True)
    if any(training for training, _ in run.modes):
        raise CheckFailed("evaluate ran the model in training mode: call model.eval() at the start")
    if any(grad for _, grad in run.modes):
        raise CheckFailed("evaluate computed gradients: run the loop inside `with torch.no_grad():`")
    if not same_parameters(run.mine, run.initial):
        raise CheckFailed("evaluate changed the model's parameters: it must not train")
    compare_loss_acc(run.got, run.expected, run.what)


def load_checkpoint(path: Path) -> dict:
    """The state dict saved at `path` (a plain state_dict, or the head of an `hw3 train` checkpoint)."""
    if not path.is_file():
        raise CheckFailed(f"{path} not found: save the best model with torch.save(model.state_dict(), '{path}')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckFailed(f"{path} could not be loaded ({describe_exception(exc)}): save model.state_dict()") from None
    if isinstance(state, dict) and isinstance(state.get("head"), dict):
        state = state["head"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckFailed(f"{path} does not hold a state dict: save it with torch.save(model.state_dict(), '{path}')")
    return state


def check_history(history: Any, checkpoint: str | Path = "model.pt", model: nn.Module | None = None) -> None:
    """q4.3d: one dict of losses and accuracies per epoch, and the best model saved at `checkpoint`."""
    if not isinstance(history, (list, tuple)) or not history:
        raise CheckFailed(f"history is {describe_value(history)}, expected a list with one dict per epoch")
    for index, record in enumerate(history):
        missing = [key for key in HISTORY_KEYS if not isinstance(record, dict) or key not in record]
        if missing:
            raise CheckFailed(f"history[{index}] lacks {', '.join(missing)}: record {', '.join(HISTORY_KEYS)}")
        for key in HISTORY_KEYS:
            value = as_float(record[key], f"history[{index}][{key!r}]")
            if key.endswith("acc") and not 0 <= value <= 1:
                raise CheckFailed(f"history[{index}][{key!r}] is {value:.4g}: accuracies are between 0 and 1")
            if key.endswith("loss") and value < 0:
                raise CheckFailed(f"history[{index}][{key!r}] is {value:.4g}: a BCE loss is never negative")
    path = Path(checkpoint)
    state = load_checkpoint(path)
    if not any(k.startswith("rnn.") for k in state) or not any(k.startswith("out.") for k in state):
        raise CheckFailed(f"{path} holds no GRU and linear weights: save model.state_dict()")
    if model is not None:
        expected = model.state_dict()
        wrong = [k for k, v in state.items() if k not in expected or expected[k].shape != v.shape]
        if wrong:
            raise CheckFailed(f"{path} does not fit the model ({wrong[0]}): save this model's state_dict()")


# q4.4: inference --------------------------------------------------------------------------------------

_ADJECTIVES = ("great", "terrible", "boring", "wonderful", "awful", "moving", "dull", "brilliant", "fine", "weak")
_NOUNS = ("movie", "film", "plot", "acting", "ending", "cast", "script", "soundtrack", "director", "story")


def short_reviews(rng: random.Random) -> list[str]:
    """Three made-up one-sentence reviews."""
    return [f"The {rng.choice(_NOUNS)} was {rng.choice(_ADJECTIVES)} and the {rng.choice(_NOUNS)} "
            f"{rng.choice(('felt', 'seemed', 'was'))} {rng.choice(_ADJECTIVES)}{rng.choice(('.', '!', '!!'))}"
            for _ in range(3)]


def long_review(rng: random.Random) -> str:
    """A 600-word review: longer than BERT's limit, so it must be cut to 510 tokens."""
    return " ".join(rng.choice(_ADJECTIVES + _NOUNS) for _ in range(600))


def compare_prediction(predict_sentiment: Callable, model: nn.Module, tokenizer: Any, sentence: str, shown: str,
                       hint: str = "") -> None:
    """The student's probability for one sentence must match the reference's, with the model in train mode first."""
    from hw3.sentiment.predict import predict_sentiment as reference

    what = f"predict_sentiment(model, tokenizer, {shown})"
    was_training = model.training
    try:
        model.train()  # the function must switch the model to eval mode itself
        try:
            got = as_float(call_student(predict_sentiment, model, tokenizer, sentence, what=what), what)
        except CheckFailed as exc:
            raise CheckFailed(f"{hint}{exc}") from None
        expected = reference(model, tokenizer, sentence)
    finally:
        model.train(was_training)
    if not math.isclose(got, expected, abs_tol=1e-5):
        raise CheckFailed(f"{hint}{what} returned {got:.5g}, expected {expected:.5g}")


def check_predict_sentiment(predict_sentiment: Callable, model: nn.Module, tokenizer: Any) -> None:
    """q4.4a: the student's predict_sentiment gives the reference's probability on fresh sentences.

    Short sentences go through the student's model; the long review goes through a tiny model of the
    same kind (on the same device), which tests the cut to 510 tokens without a slow full-size pass.
    """
    from hw3.sentiment.model import BERTGRUSentiment, tiny_bert

    rng = fresh_rng()
    for sentence in short_reviews(rng):
        compare_prediction(predict_sentiment, model, tokenizer, sentence, repr(sentence))
    with torch.random.fork_rng(devices=[]):
        tiny = BERTGRUSentiment(tiny_bert(rng.getrandbits(31), vocab_size=len(tokenizer)), 8, 1, 1, True, 0.0)
    tiny.to(next(model.parameters()).device)
    compare_prediction(predict_sentiment, tiny, tokenizer, long_review(rng), "<a 600-word review>",
                       "cut the tokens to max_input_length - 2 before adding [CLS] and [SEP]: ")


def check_predictions(predictions: Any) -> None:
    """q4.4b: at least two new reviews of the student's own with their probabilities."""
    if not isinstance(predictions, dict):
        raise CheckFailed(f"predictions is {describe_value(predictions)}, expected a dict {{review: probability}}")
    new = {text: p for text, p in predictions.items() if text not in GIVEN_REVIEWS}
    for text, probability in new.items():
        if not isinstance(text, str) or not text.strip():
            raise CheckFailed(f"predictions has the key {text!r}: keys must be the review texts")
        value = as_float(probability, f"predictions[{text[:40]!r}]")
        if not 0 <= value <= 1:
            raise CheckFailed(f"predictions[{text[:40]!r}] is {value:.4g}, expected a probability in [0, 1]")
    if len(new) < 2:
        raise CheckFailed(f"predictions has {len(new)} review(s) of your own, expected at least 2 besides the "
                          f"given ones")


VERIFIERS: dict[str, Callable[..., None]] = {
    "q4.1a": check_vocab_size,
    "q4.1b": check_split_sizes,
    "q4.2a": check_model,
    "q4.2b": check_count_parameters,
    "q4.2c": check_frozen,
    "q4.3a": check_binary_accuracy,
    "q4.3b": check_train,
    "q4.3c": check_evaluate,
    "q4.3d": check_history,
    "q4.4a": check_predict_sentiment,
    "q4.4b": check_predictions,
}
