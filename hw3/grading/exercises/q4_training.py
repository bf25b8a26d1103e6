"""Q4.3, training: binary accuracy (q4.3a), one training (q4.3b) and one evaluation epoch (q4.3c), the training loop
with its history and best checkpoint (q4.3d)."""

from __future__ import annotations

import math
import random
from typing import Any

from .base import Exercise, Key, Marks, Unreadable, attempt, close, describe_plain, number, paired, plain, returned
from .tiny import Forwards, fingerprint, recorded_accuracy, tiny_batches, tiny_model

HISTORY_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")
BATCH_SIZES = (4, 3, 5)  # tiny_batches' sizes: distinct, so a forward call's output length names its batch


def short(values: list, limit: int = 6) -> str:
    """The first values of a list, rounded: [0.12, -1.5, …]."""
    shown = [f"{v:.3g}" for v in values[:limit]]
    return "[" + ", ".join(shown) + (", …]" if len(values) > limit else "]")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def accuracy(logits: list[float], labels: list[float]) -> float:
    """The fraction of rounded sigmoid(logits) equal to the labels (the homework's definition)."""
    return sum(float(round(sigmoid(x)) == y) for x, y in zip(logits, labels)) / len(labels)


def bce(logits: list[float], labels: list[float]) -> float:
    """Mean binary cross-entropy of logits against 0/1 labels (nn.BCEWithLogitsLoss)."""
    return sum(max(x, 0) - x * y + math.log1p(math.exp(-abs(x))) for x, y in zip(logits, labels)) / len(labels)


class BinaryAccuracy(Exercise):
    """q4.3a: the fraction of rounded sigmoid(logits) equal to the labels, like the key's.

    No logit is within 1e-3 of 0: there σ(x) rounds to 0.5, where `torch.round` and `>= 0.5` disagree and the
    question states no convention.
    """

    kind = "binary_accuracy"
    tests = ("a fraction in [0, 1]", "rounds the sigmoid")
    references = ("hw3.sentiment.training:binary_accuracy",)

    def inputs(self, rng: random.Random, key: Key) -> dict:
        """Random logits and labels, and a batch with one logit just above 0 (its sigmoid just above 0.5) among
        clear ones, where rounding anything but the sigmoid shows."""
        cases = []
        for size in (1, 5, 8, rng.randint(20, 64)):
            scale = rng.uniform(0.5, 4)
            logits = []
            while len(logits) < size:
                x = rng.gauss(0, 1) * scale
                if abs(x) >= 1e-3:
                    logits.append(x)
            cases.append({"logits": logits, "labels": [float(rng.randint(0, 1)) for _ in range(size)]})
        logits = [rng.uniform(0.05, 0.45), *(rng.choice((-1, 1)) * rng.uniform(1.5, 4) for _ in range(5))]
        cases.append({"logits": logits, "labels": [float(rng.randint(0, 1)) for _ in logits]})
        return {"cases": cases}

    def probe(self, inputs: dict, binary_accuracy: Any) -> list:
        import torch

        return [attempt(binary_accuracy, torch.tensor(c["logits"]), torch.tensor(c["labels"])) for c in inputs["cases"]]

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        fraction, rounding = self.tests
        for (case, result), key_result in zip(paired(inputs["cases"], outputs), expected["outputs"]):
            logits, labels = case["logits"], case["labels"]
            shown = f"binary_accuracy(preds={short(logits)}, y={short(labels)})"
            with marks.read(fraction, rounding, input=shown):
                got = number(returned(result, shown), shown)
                want = number(returned(key_result, "the answer key"), "the answer key")
                if close(got, want):
                    continue
                hw3 = close(want, accuracy(logits, labels))  # the table of mistakes is about hw3's definition
                scaled = next((h for scale, h in ((100, "return a fraction between 0 and 1, not a percentage"),
                                                  (len(labels), "divide the number of correct predictions by the "
                                                                "batch size")) if close(got, want * scale)), None)
                if scaled or not 0 <= got <= 1:
                    marks.fail(fraction, f"{shown} returned {got:.4g}, not a fraction in [0, 1]", shown,
                               scaled or "a fraction: the number correct divided by the number of labels",
                               expected=f"{want:.4g}")
                    if scaled:
                        continue  # the right count, scaled: the rounding is right
                no_sigmoid = sum(float(round(x) == y) for x, y in zip(logits, labels)) / len(labels)
                hint = ("rounded the logits without a sigmoid: round torch.sigmoid(preds)" if hw3 and close(got, no_sigmoid)
                        else "compare the rounded sigmoid of preds with y and take the mean" if hw3 else "")
                marks.fail(rounding, f"{shown} returned {got:.4g}", shown, hint, expected=f"{want:.4g}")


def epoch_inputs(rng: random.Random) -> dict:
    """A tiny model's seed, the batches' seed, and the constants the accuracy recorder returns."""
    return {"model_seed": rng.getrandbits(31), "batch_seed": rng.getrandbits(31),
            "accuracies": [round(rng.uniform(0.05, 0.95), 4) for _ in BATCH_SIZES]}


def run_epoch(fn: Any, inputs: dict, training: bool) -> dict:
    """Run train/evaluate `fn` once over the tiny batches of `inputs` (kernel side): its result, the head's
    fingerprint afterwards, every forward call, every call of `binary_accuracy`, and the batches' labels."""
    import torch
    from torch import nn

    model = tiny_model(inputs["model_seed"], dropout=0.0)
    model.train(not training)  # handed over in the other mode: the function must switch it
    batches = tiny_batches(inputs["batch_seed"])
    args: list[Any] = [model, batches]
    if training:
        args.append(torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01))
    args.append(nn.BCEWithLogitsLoss())
    calls: list = []
    with torch.random.fork_rng(devices=[]), Forwards(model) as forwards, \
            recorded_accuracy(fn, inputs["accuracies"], calls):
        result = attempt(fn, *args)
    return {"result": result, "fingerprint": fingerprint(model), "forwards": forwards.calls[:50],
            "accuracy_calls": calls[:50], "labels": [b.label.tolist() for b in batches]}


def forgetful_train(model: Any, iterator: Any, optimizer: Any, criterion: Any) -> tuple[float, float]:
    """A train loop that forgets optimizer.zero_grad() (the common mistake whose hint the scorer gives)."""
    model.train()
    losses = []
    for x, y in iterator:
        loss = criterion(model(x).squeeze(1), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses), 0.0


class _Epoch(Exercise):
    """q4.3b and q4.3c: one pass of the student's function over the grader's batches, compared with the answer
    key's pass over the same batches; its loss and accuracy judged against its own forward passes."""

    training = True
    what = ""

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return epoch_inputs(rng)

    def probe(self, inputs: dict, function: Any) -> dict:
        return run_epoch(function, inputs, self.training)

    def ran(self, outputs: Any) -> None:
        """Unreadable unless the function returned and called the model (then every sub-test fails)."""
        returned(outputs["result"], self.what)
        if not outputs["forwards"]:
            raise Unreadable(f"{self.what} never called the model: loop over the batches with `for x, y in iterator`")

    def score_means(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        """The last sub-test: the returned (loss, accuracy) are the means over the batches of the function's own
        forward passes, and binary_accuracy (when called) got each batch's logits and labels."""
        test, what = self.tests[-1], self.what
        with marks.read(test, input=what):
            got = returned(outputs["result"], what)
            if not isinstance(got, list) or len(got) != 2:
                raise Unreadable(f"{what} returned {describe_plain(got)}, expected (mean loss, mean accuracy)")
            loss, acc = number(got[0], f"{what} (loss)"), number(got[1], f"{what} (accuracy)")
            labels = expected["outputs"]["labels"]
            logits = first_logits(outputs["forwards"], labels)
            if logits is None:
                raise Unreadable(f"{what} did not run the model once on each batch")
            want_loss = sum(bce(o, y) for o, y in zip(logits, labels)) / len(labels)
            if not close(loss, want_loss, rel=1e-4, abs_=1e-6):
                hint = ("divide the summed loss by the number of batches, len(iterator)"
                        if close(loss, want_loss * len(labels), rel=1e-4) else
                        "return the mean over the batches of their losses")
                marks.fail(test, f"{what} returned loss {loss:.5g}, expected {want_loss:.5g} (the mean of its batches' "
                                 f"losses)", what, hint)
                return
            calls = outputs["accuracy_calls"]
            if calls:
                wrong = misused_accuracy(calls, logits, labels)
                if wrong:
                    marks.fail(test, f"{what} passed binary_accuracy {wrong[0]}", what, wrong[1])
                    return
                constants = inputs["accuracies"]
                want_acc = sum(constants[i % len(constants)] for i in range(len(calls))) / len(labels)
            else:
                want_acc = sum(accuracy(o, y) for o, y in zip(logits, labels)) / len(labels)
            if not close(acc, want_acc, rel=1e-4, abs_=1e-6):
                marks.fail(test, f"{what} returned accuracy {acc:.5g}, expected {want_acc:.5g} (the mean of "
                                 f"binary_accuracy over the batches)", what,
                           "return the mean over the batches of their accuracies, as for the loss")


def first_logits(forwards: list, labels: list[list[float]]) -> list[list[float]] | None:
    """Each batch's logits from the first forward call on it (batches are told apart by their sizes); None when
    some batch was never run or an output is not a list of numbers."""
    found: dict[int, list[float]] = {}
    for call in forwards:
        values = call[2] if isinstance(call, list) and len(call) == 3 else None
        if isinstance(values, list) and all(isinstance(v, (int, float)) for v in values):
            found.setdefault(len(values), [float(v) for v in values])
    try:
        return [found[len(y)] for y in labels]
    except KeyError:
        return None


def misused_accuracy(calls: list, logits: list[list[float]], labels: list[list[float]]) -> tuple[str, str] | None:
    """(what binary_accuracy got, hint) when a call did not get a batch's logits then its labels; else None."""
    for call in calls:
        preds, y = (call + [None, None])[:2] if isinstance(call, list) else (None, None)
        batch = next((i for i, ys in enumerate(labels) if isinstance(y, list) and len(y) == len(ys)), None)
        if batch is not None and _same(preds, logits[batch]) and _same(y, labels[batch]):
            continue
        swapped = next((i for i, ys in enumerate(labels) if _same(preds, ys)), None)
        if swapped is not None and _same(y, logits[swapped]):
            return "(labels, logits)", "the predictions come first, then the labels"
        if batch is not None and _same(preds, [sigmoid(x) for x in logits[batch]]):
            return ("probabilities (the sigmoid of the logits)",
                    "pass the logits: binary_accuracy applies the sigmoid itself")
        return "something other than a batch's logits and labels", "binary_accuracy takes one batch's predictions and labels"
    return None


def _same(a: Any, b: list[float]) -> bool:
    return isinstance(a, list) and len(a) == len(b) and all(
        isinstance(x, (int, float)) and close(float(x), y, rel=1e-4, abs_=1e-6) for x, y in zip(a, b))


class Train(_Epoch):
    """q4.3b: one training epoch in train mode that updates the model exactly like the answer key's."""

    kind = "train_epoch"
    tests = ("updates the model like the answer key", "train mode with gradients", "mean loss and accuracy")
    references = ("hw3.sentiment.training:train",)
    training, what = True, "train(model, iterator, optimizer, criterion)"

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        """The fingerprints of the untrained model and of a loop without zero_grad, on the same batches."""
        return {"initial": fingerprint(tiny_model(inputs["model_seed"], dropout=0.0)),
                "no zero_grad": run_epoch(forgetful_train, inputs, True)["fingerprint"]}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        updates, mode, _ = self.tests
        with marks.read(*self.tests, input=self.what):
            self.ran(outputs)
            key = expected["outputs"]["fingerprint"]
            if not _same(outputs["fingerprint"], key):
                mistakes = expected["mistakes"]
                hint = ("the parameters never changed: the epoch must update the model after every batch"
                        if _same(outputs["fingerprint"], mistakes.get("initial", [])) else
                        "call optimizer.zero_grad() before each backward pass"
                        if _same(outputs["fingerprint"], mistakes.get("no zero_grad", [])) else
                        "every batch needs one update: clear the old gradients, compute new ones, apply them")
                marks.fail(updates, "after one epoch the model's parameters differ from the answer key's", self.what,
                           hint)
            if not all(training for training, *_ in outputs["forwards"]):
                marks.fail(mode, f"{self.what} ran the model in eval mode", self.what, "call model.train() at the start")
            elif not all(grad for _, grad, *_ in outputs["forwards"]):
                marks.fail(mode, f"{self.what} ran the model without gradients", self.what,
                           "do not use torch.no_grad() in train")
        self.score_means(marks, inputs, outputs, expected)


class Evaluate(_Epoch):
    """q4.3c: one evaluation pass in eval mode without gradients, leaving the model unchanged."""

    kind = "evaluate_epoch"
    tests = ("eval mode", "no gradients, model unchanged", "mean loss and accuracy")
    references = ("hw3.sentiment.training:evaluate",)
    training, what = False, "evaluate(model, iterator, criterion)"

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        mode, frozen, _ = self.tests
        with marks.read(*self.tests, input=self.what):
            self.ran(outputs)
            if any(training for training, *_ in outputs["forwards"]):
                marks.fail(mode, f"{self.what} ran the model in training mode", self.what,
                           "dropout left on in evaluation: call model.eval() at the start")
            if any(grad for _, grad, *_ in outputs["forwards"]):
                marks.fail(frozen, f"{self.what} computed gradients", self.what,
                           "evaluation needs no gradients: switch gradient tracking off")
            elif not _same(outputs["fingerprint"], expected["outputs"]["fingerprint"]):
                marks.fail(frozen, f"{self.what} changed the model's parameters", self.what, "evaluate must not train")
        self.score_means(marks, inputs, outputs, expected)


class History(Exercise):
    """q4.3d: one dict of the four values per epoch (as many as the answer key's), and the best model saved at
    CHECKPOINT. The accuracies' range is q4.3a's business: a percentage accuracy costs its points there.

    The grader checks the loop against the saved model itself (`verify`, in its own process): it loads the
    checkpoint, evaluates it on the notebook's validation split, and requires that model to be the epoch with the
    lowest recorded validation loss, with that epoch's recorded validation accuracy. The epoch is the one whose
    recorded loss is the saved model's; where none is and `evaluate` (q4.3c) is right, the saved model is no
    epoch's. Where `evaluate` or `binary_accuracy` (q4.3a) is not right, the accuracies it recorded are not hw3's,
    so they are not compared (the mistake costs points there). The grading corpus's validation reviews are labelled
    against the training ones (`kernel.corpus`), so the best epoch is an early one: a loop that saves another shows.
    """

    kind = "training_loop"
    tests = ("one record per epoch", "the four values of each epoch", "the best model saved")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, history: Any, checkpoint: Any = "model.pt", model: Any = None) -> dict:
        import torch

        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("head"), dict):
                state = state["head"]
            saved = {str(k): list(v.shape) if hasattr(v, "shape") else {"type": type(v).__name__}
                     for k, v in state.items()} if isinstance(state, dict) else {"type": type(state).__name__}
        except Exception as exc:
            saved = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()} if hasattr(model, "state_dict") else None
        return {"history": plain(history), "checkpoint": str(checkpoint), "saved": saved, "model": shapes}

    def artifact(self, inputs: dict, history: Any, checkpoint: Any = "model.pt", model: Any = None) -> str | None:
        return checkpoint

    def verify(self, inputs: dict, outputs: Any, files: dict[str, str]) -> dict:
        """The saved model's architecture and its validation (loss, accuracy), or why it could not be used."""
        from .saved_model import Unusable, architecture, head_state, model_of, validation

        if self.kind not in files:
            return {"error": "no file was saved at CHECKPOINT"}
        try:
            head = head_state(files[self.kind])
            return {"architecture": architecture(head), "valid": list(validation(model_of(head)))}
        except Unusable as exc:
            return {"error": str(exc)}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        records, values, saved = self.tests
        epochs = len(expected["outputs"]["history"])
        history = outputs.get("history") if isinstance(outputs, dict) else None
        with marks.read(records, values):
            if not isinstance(history, list) or not history:
                raise Unreadable(f"history is {describe_plain(history)}, expected a list with one dict per epoch")
            bad = next((i for i, r in enumerate(history) if not isinstance(r, dict)), None)
            if bad is not None:
                marks.fail(records, f"history[{bad}] is {describe_plain(history[bad])}, expected a dict",
                           hint="append one dict per epoch to history")
            elif len(history) != epochs:
                marks.fail(records, f"history has {len(history)} records, expected one per epoch ({epochs})",
                           hint="append the epoch's dict inside the loop over epochs")
            for index, record in enumerate(r for r in history if isinstance(r, dict)):
                missing = [key for key in HISTORY_KEYS if key not in record]
                if missing:
                    marks.fail(values, f"history[{index}] lacks {', '.join(missing)}",
                               hint=f"record {', '.join(HISTORY_KEYS)} after each epoch")
                    break
                for key in HISTORY_KEYS:
                    value = number(record[key], f"history[{index}][{key!r}]")
                    if key.endswith("loss") and value < 0:
                        marks.fail(values, f"history[{index}][{key!r}] is {value:.4g}: a BCE loss is never negative")
        with marks.read(saved):
            path, state, shapes = outputs["checkpoint"], outputs["saved"], outputs["model"]
            if "error" in state:
                raise Unreadable(f"{path} could not be loaded ({state['error']})")
            if not any(str(k).startswith("rnn.") for k in state) or not any(str(k).startswith("out.") for k in state):
                marks.fail(saved, f"{path} holds no GRU and linear weights",
                           hint="save the model when the validation loss improves")
            elif isinstance(shapes, dict):
                wrong = [k for k, v in state.items() if k not in shapes or shapes[k] != v]
                if wrong:
                    marks.fail(saved, f"{path} does not fit the model ({wrong[0]})", hint="save this model's weights")
        if "verified" in expected:
            with marks.read(values, saved):
                self.score_saved_model(marks, outputs, expected)

    def score_saved_model(self, marks: Marks, outputs: Any, expected: dict) -> None:
        """The saved model against the history: it is the best epoch's, with that epoch's recorded values."""
        _, values, saved = self.tests
        found, path = expected["verified"], outputs["checkpoint"]
        if "error" in found:  # without the trained model, the history cannot be told from made-up numbers
            marks.fail(saved, f"the grader could not use the model saved at {path}: {found['error']}",
                       hint="save the model to CHECKPOINT when the validation loss improves")
            for name in self.tests[:2]:
                marks.fail(name, "the history cannot be checked without the saved model", path)
            return
        context = expected.get("context", {})
        if marks.failed(self.tests[0]) or marks.failed(values):
            return  # not one record of the four values per epoch: the epochs cannot be told apart
        history = [r for r in outputs["history"] if isinstance(r, dict)]
        losses = [number(r["valid_loss"], "valid_loss") for r in history]
        loss, acc = found["valid"]
        best = min(range(len(losses)), key=losses.__getitem__)
        match = next((i for i, value in enumerate(losses) if close(value, loss, rel=1e-6, abs_=1e-7)), None)
        if match is None:
            if context.get("evaluate_epoch") == "passed":  # its losses are hw3's: the saved model is no epoch's
                marks.fail(saved, f"the model saved at {path} has validation loss {loss:.4g}, which no epoch of "
                                  f"history recorded", path, "save the model of the epoch whose validation loss is "
                                                             "the lowest")
        elif not close(losses[match], losses[best], rel=1e-6, abs_=1e-9):
            marks.fail(saved, f"the model saved at {path} is epoch {match + 1}'s (validation loss {loss:.4g}), not "
                              f"the best, epoch {best + 1}'s ({losses[best]:.4g})", path,
                       "save only when the validation loss improves (and update the best loss then)")
        elif context.get("binary_accuracy") == context.get("evaluate_epoch") == "passed" and \
                not close(number(history[match]["valid_acc"], "valid_acc"), acc, rel=1e-4, abs_=1e-6):
            marks.fail(values, f"history[{match}]['valid_acc'] is {number(history[match]['valid_acc'], 'valid_acc'):.4g}"
                               f", but that epoch's saved model has validation accuracy {acc:.4g}", path,
                       "record the accuracy evaluate returns on the validation set")


KINDS = (BinaryAccuracy, Train, Evaluate, History)
