"""Q4.3, training: binary accuracy, one training and one evaluation epoch, the training loop."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from ..results import TestResult
from .base import (Exercise, Marks, Test, Unreadable, attempt, close, describe_plain, number, paired, plain, returned,
                   unwrap)
from .tiny import ForwardModes, head_values, recorded_accuracy, tiny_batches, tiny_model

HISTORY_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")


def short(values: list, limit: int = 6) -> str:
    """The first values of a list, rounded: [0.12, -1.5, …]."""
    shown = [f"{v:.3g}" for v in values[:limit]]
    return "[" + ", ".join(shown) + (", …]" if len(values) > limit else "]")


class BinaryAccuracy(Exercise):
    """q4.3a: the fraction of rounded sigmoid(logits) equal to the labels.

    No logit is within 1e-3 of 0: there σ(x) rounds to 0.5, where `torch.round` and `>= 0.5` disagree
    and the question states no convention.
    """

    tests = (Test("a fraction in [0, 1]", 1.0), Test("rounds the sigmoid", 1.0))
    references = ("hw3.sentiment.training:binary_accuracy",)

    def inputs(self, rng: random.Random) -> dict:
        cases = []
        for size in (1, 5, 8, rng.randint(20, 64)):
            scale = rng.uniform(0.5, 4)
            logits = []
            while len(logits) < size:
                x = rng.gauss(0, 1) * scale
                if abs(x) >= 1e-3:
                    logits.append(x)
            cases.append({"logits": logits, "labels": [float(rng.randint(0, 1)) for _ in range(size)]})
        return {"cases": cases}

    def probe(self, inputs: dict, binary_accuracy: Any) -> list:
        import torch

        return [attempt(binary_accuracy, torch.tensor(c["logits"]), torch.tensor(c["labels"])) for c in inputs["cases"]]

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        import torch

        from hw3.sentiment.training import binary_accuracy

        marks = Marks(self.tests)
        fraction, rounding = (t.name for t in self.tests)
        for case, result in paired(inputs["cases"], outputs):
            logits, labels = torch.tensor(case["logits"]), torch.tensor(case["labels"])
            shown = f"binary_accuracy(preds={short(case['logits'])}, y={short(case['labels'])})"
            with marks.read(fraction, rounding, input=shown):
                got = number(returned(result, shown), shown)
                expected = float(binary_accuracy(logits, labels))
                if close(got, expected):
                    continue
                for scale, hint in ((100, "return a fraction between 0 and 1, not a percentage"),
                                    (len(labels), "divide the number of correct predictions by the batch size")):
                    if close(got, expected * scale):
                        marks.fail(fraction, f"{shown} returned {got:.4g}, expected {expected:.4g}", shown, hint)
                        break
                else:
                    no_sigmoid = float((torch.round(logits) == labels).float().mean())
                    if close(got, no_sigmoid):  # a fraction, from the wrong rounding: only the rounding is wrong
                        marks.fail(rounding, f"{shown} returned {got:.4g}, expected {expected:.4g}", shown,
                                   "rounded the logits without a sigmoid: round torch.sigmoid(preds)")
                        continue
                    hint = "compare torch.round(torch.sigmoid(preds)) with y and take the mean"
                    for test in (fraction, rounding):  # a value no known computation gives: neither is shown right
                        marks.fail(test, f"{shown} returned {got:.4g}, expected {expected:.4g}", shown, hint)
        return marks.results()


def _epoch_inputs(rng: random.Random) -> dict:
    """A tiny model's seed, the batches' seed, and the constants the accuracy recorder returns."""
    return {"model_seed": rng.getrandbits(31), "batch_seed": rng.getrandbits(31),
            "accuracies": [round(rng.uniform(0.05, 0.95), 4) for _ in range(3)]}


def run_epoch(fn: Any, inputs: dict, uses_optimizer: bool, start_training: bool, isolate: bool = True) -> dict:
    """Run train/evaluate `fn` on the tiny model of `inputs`: its result, the head's parameters, the forward modes."""
    import torch
    from torch import nn

    model = tiny_model(inputs["model_seed"], dropout=0.0)
    model.train(start_training)
    args = [model, tiny_batches(inputs["batch_seed"])]
    if uses_optimizer:
        args.append(torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01))
    args.append(nn.BCEWithLogitsLoss())
    accuracy = recorded_accuracy(fn, inputs["accuracies"]) if isolate else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), ForwardModes(model) as modes, accuracy:
        result = attempt(fn, *args)
    return {"result": result, "params": head_values(model), "modes": modes.calls}


def reference_epoch(name: str, inputs: dict, zero_grad: bool = True) -> dict:
    """The reference `train`/`evaluate` on the same tiny model, grader side; with zero_grad=False, a train
    loop that forgets optimizer.zero_grad() (the common mistake, scored against its own losses)."""
    from hw3.sentiment import training

    if zero_grad:
        return run_epoch(getattr(training, name), inputs, name == "train", name == "evaluate", isolate=False)

    def forgetful(model, iterator, optimizer, criterion):
        model.train()
        losses, accs = [], []
        for x, y in iterator:
            preds = model(x).squeeze(1)
            loss = criterion(preds, y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            accs.append(training.binary_accuracy(preds.detach(), y).item())
        return sum(losses) / len(losses), sum(accs) / len(accs)

    return run_epoch(forgetful, inputs, True, False, isolate=False)


def same_values(a: Any, b: dict[str, list], rel: float = 1e-4, abs_: float = 1e-5) -> bool:
    """True when returned parameters `a` match `b` (same names, same sizes, equal to round-off)."""
    import torch

    if not isinstance(a, dict) or set(a) != set(b):
        return False
    for name, values in b.items():
        got = a[name]
        if not isinstance(got, list) or len(got) != len(values) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in got):
            return False
        if not torch.allclose(torch.tensor(got, dtype=torch.float64), torch.tensor(values, dtype=torch.float64),
                              rtol=rel, atol=abs_):
            return False
    return True


def ran_the_model(result: Any, reference: dict) -> bool:
    """True when the returned loss is the reference's mean or sum over the batches: evidence that the function
    really ran the model on them, which the mode and update sub-tests require (flags alone earn nothing)."""
    try:
        loss = float(unwrap(result["value"][0]))
        ref_loss = float(reference["result"]["value"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return close(loss, ref_loss) or close(loss, 3 * ref_loss)


def score_mean(marks: Marks, test: str, what: str, result: Any, reference: dict, accuracies: list[float]) -> None:
    """The returned (mean loss, mean accuracy) must match the reference's; the accuracy may be the recorder's mean."""
    got = returned(result, what)
    if not isinstance(got, list) or len(got) != 2:
        raise Unreadable(f"{what} returned {describe_plain(got)}, expected (mean loss, mean accuracy)")
    loss, acc = number(got[0], f"{what} (loss)"), number(got[1], f"{what} (accuracy)")
    ref_loss, ref_acc = returned(reference["result"], "the reference")
    if not close(loss, ref_loss):
        hint = ("divide the summed loss by the number of batches, len(iterator)" if close(loss, ref_loss * 3) else
                "add loss.item() of every batch and divide by len(iterator)")
        marks.fail(test, f"{what} returned loss {loss:.5g}, expected {ref_loss:.5g} (the mean over batches)", what, hint)
    elif not (close(acc, sum(accuracies) / len(accuracies)) or close(acc, ref_acc)):
        marks.fail(test, f"{what} returned accuracy {acc:.5g}, expected the mean of binary_accuracy over the batches",
                   what, "add binary_accuracy(...).item() of every batch and divide by len(iterator)")


class _Epoch(Exercise):
    """q4.3b and q4.3c: one pass of the student's function over the grader's batches (`run_epoch` in the
    kernel), scored against the reference's pass over the same batches (`reference_epoch`)."""

    kind = ""  # "train" or "evaluate": the reference function, and whether an optimizer is passed
    what = ""

    def inputs(self, rng: random.Random) -> dict:
        return _epoch_inputs(rng)

    def probe(self, inputs: dict, function: Any) -> dict:
        training = self.kind == "train"
        return run_epoch(function, inputs, uses_optimizer=training, start_training=not training)

    def require_a_pass(self, outputs: Any) -> None:
        """Unreadable unless the function returned and called the model (a function that raised fails every test)."""
        returned(outputs["result"], self.what)
        if not outputs["modes"]:
            raise Unreadable(f"{self.what} never called the model: loop over the batches with `for x, y in iterator`")

    def score_mean(self, marks: Marks, inputs: dict, outputs: Any, reference: dict) -> None:
        """The last sub-test: the returned means against `reference`'s run."""
        mean = self.tests[-1].name
        with marks.read(mean, input=self.what):
            score_mean(marks, mean, self.what, outputs["result"], reference, inputs["accuracies"])


class Train(_Epoch):
    """q4.3b: one training epoch in train mode that updates the model exactly like the reference."""

    tests = (Test("updates the model like the reference", 1.5), Test("train mode with gradients", 0.5),
             Test("mean loss and accuracy", 1.0))
    references = ("hw3.sentiment.training:train",)
    kind, what = "train", "train(model, iterator, optimizer, criterion)"

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        updates, mode, _ = (t.name for t in self.tests)
        reference = reference_epoch("train", inputs)
        trajectory = reference  # the run whose losses the student's mean is compared with
        initial = head_values(tiny_model(inputs["model_seed"], dropout=0.0))
        with marks.read(*(t.name for t in self.tests), input=self.what):
            self.require_a_pass(outputs)
            if not same_values(outputs["params"], reference["params"]):
                forgetful = reference_epoch("train", inputs, zero_grad=False)
                if same_values(outputs["params"], initial):
                    hint = "call loss.backward() and optimizer.step() for every batch"
                elif same_values(outputs["params"], forgetful["params"]):
                    hint, trajectory = "no zero_grad: call optimizer.zero_grad() before each backward pass", forgetful
                else:
                    hint = "one optimizer step per batch: zero_grad, forward, loss, backward, step"
                marks.fail(updates, "after one epoch the parameters differ from the reference's", self.what, hint)
            if not (ran_the_model(outputs["result"], trajectory) or not marks.failed(updates)):
                marks.fail(mode, f"{self.what} did not train the model on the batches", self.what,
                           "for each batch: zero_grad, forward, loss, backward, step")
            elif not all(training for training, _ in outputs["modes"]):
                marks.fail(mode, f"{self.what} ran the model in eval mode", self.what, "call model.train() at the start")
            elif not all(grad for _, grad in outputs["modes"]):
                marks.fail(mode, f"{self.what} ran the model without gradients", self.what,
                           "do not use torch.no_grad() in train")
        self.score_mean(marks, inputs, outputs, trajectory)
        return marks.results()


class Evaluate(_Epoch):
    """q4.3c: one evaluation pass in eval mode without gradients, leaving the model unchanged."""

    tests = (Test("eval mode", 0.5), Test("no gradients, model unchanged", 0.5), Test("mean loss and accuracy", 1.0))
    references = ("hw3.sentiment.training:evaluate",)
    kind, what = "evaluate", "evaluate(model, iterator, criterion)"

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        mode, frozen, _ = (t.name for t in self.tests)
        reference = reference_epoch("evaluate", inputs)
        with marks.read(*(t.name for t in self.tests), input=self.what):
            self.require_a_pass(outputs)
            if not ran_the_model(outputs["result"], reference):
                raise Unreadable(f"{self.what} did not return the loss of the model on the batches")
            if any(training for training, _ in outputs["modes"]):
                marks.fail(mode, f"{self.what} ran the model in training mode", self.what,
                           "dropout left on in evaluation: call model.eval() at the start")
            if any(grad for _, grad in outputs["modes"]):
                marks.fail(frozen, f"{self.what} computed gradients", self.what,
                           "run the loop inside `with torch.no_grad():`")
            elif not same_values(outputs["params"], reference["params"]):
                marks.fail(frozen, f"{self.what} changed the model's parameters", self.what, "evaluate must not train")
        self.score_mean(marks, inputs, outputs, reference)
        return marks.results()


class History(Exercise):
    """q4.3d: one dict of losses and accuracies per epoch, and the best model saved at CHECKPOINT.

    The accuracies' range is q4.3a's business: a percentage accuracy costs its points there, not here.
    """

    tests = (Test("one record per epoch", 1.0), Test("the four values of each epoch", 1.0),
             Test("the best model saved", 1.0))

    def inputs(self, rng: random.Random) -> dict:
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

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        records, values, saved = (t.name for t in self.tests)
        with marks.read(records, values):
            history = outputs["history"]
            if not isinstance(history, list) or not history:
                raise Unreadable(f"history is {describe_plain(history)}, expected a list with one dict per epoch")
            bad = next((i for i, r in enumerate(history) if not isinstance(r, dict)), None)
            if bad is not None:
                marks.fail(records, f"history[{bad}] is {describe_plain(history[bad])}, expected a dict",
                           hint="append one dict per epoch to history")
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
                           hint="save model.head_state_dict() (or model.state_dict()) when the validation loss improves")
            elif isinstance(shapes, dict):
                wrong = [k for k, v in state.items() if k not in shapes or shapes[k] != v]
                if wrong:
                    marks.fail(saved, f"{path} does not fit the model ({wrong[0]})", hint="save this model's weights")
        return marks.results()


EXERCISES = {"q4.3a": BinaryAccuracy(), "q4.3b": Train(), "q4.3c": Evaluate(), "q4.3d": History()}
