"""The graded exercises of Q4 (frozen BERT + GRU sentiment), scored against `hw3.sentiment`.

Function exercises run on small models the grader describes by a seed (`tiny_model`): the kernel builds
one from the seed and runs the student's function on it; the grader builds the identical model in its own
process and runs the reference, and the probe returns only numbers (losses, parameters, probabilities).
Each check isolates its exercise: while `train`/`evaluate` are probed, the name `binary_accuracy` they call
is a recorder returning grader-chosen constants, so a wrong accuracy costs q4.3a only.
"""

from __future__ import annotations

import contextlib
import functools
import random
import sys
from typing import Any

from .exercise import (Exercise, Marks, Test, Unreadable, attempt, close, describe_plain, number, numbers, paired,
                       plain, returned, unwrap)
from .results import TestResult

HISTORY_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")
GIVEN_REVIEWS = ("Justice League is terrible. I hated it.", "Avengers was great!!")
TINY_VOCAB = 1000


# Shared by probe and score: the same tiny model and batches on both sides of the boundary -------------------

def tiny_model(seed: int, dropout: float, vocab_size: int = TINY_VOCAB, layers: int = 2) -> Any:
    """BERTGRUSentiment over a tiny random BERT (hidden 32), GRU hidden 8, bidirectional, BERT frozen.

    Deterministic in `seed` and leaves the global torch random state as it was.
    """
    import torch

    from hw3.sentiment.model import BERTGRUSentiment, tiny_bert

    with torch.random.fork_rng(devices=[]):
        model = BERTGRUSentiment(tiny_bert(seed, vocab_size=vocab_size), 8, 1, layers, True, dropout)
        with torch.no_grad():  # larger weights than BERT's init, so that mistakes change the outputs visibly
            for name, p in model.named_parameters():
                if not name.startswith("bert.") and p.dim() > 1:
                    p.mul_(4.0)
    for name, p in model.named_parameters():
        if name.startswith("bert."):
            p.requires_grad = False
    return model


def tiny_batches(seed: int) -> list:
    """Three batches (x token ids [B, T], y float labels [B]) of sizes 4×7, 3×5, 5×9."""
    import torch

    from hw3.sentiment.batching import Batch

    gen = torch.Generator().manual_seed(seed)
    return [Batch(torch.randint(1, TINY_VOCAB, (size, length), generator=gen),
                  torch.randint(0, 2, (size,), generator=gen).float())
            for size, length in ((4, 7), (3, 5), (5, 9))]


def head_values(model: Any) -> dict[str, list]:
    """{parameter name: flat list of values} of everything but BERT (what training changes)."""
    return {name: p.detach().flatten().tolist() for name, p in model.named_parameters() if not name.startswith("bert.")}


class ForwardModes:
    """Records [module.training, torch.is_grad_enabled()] at every forward call of a module."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.calls: list[list[bool]] = []

    def __enter__(self) -> "ForwardModes":
        import torch

        self.handle = self.module.register_forward_pre_hook(
            lambda module, args: self.calls.append([bool(module.training), torch.is_grad_enabled()]))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.remove()


def _namespaces(fn: Any) -> list[dict]:
    """The global namespaces `fn` resolves names in: its own, those of what it wraps, and the notebook's."""
    found, seen, obj = [], set(), fn
    while obj is not None and id(obj) not in seen and len(seen) < 20:
        seen.add(id(obj))
        namespace = getattr(obj, "__globals__", None)
        if isinstance(namespace, dict) and not any(namespace is n for n in found):
            found.append(namespace)
        obj = getattr(obj, "__wrapped__", None) or getattr(obj, "func", None) or getattr(obj, "__func__", None)
    main = getattr(sys.modules.get("__main__"), "__dict__", None)
    if isinstance(main, dict) and not any(main is n for n in found):
        found.append(main)
    return found


@contextlib.contextmanager
def recorded_accuracy(fn: Any, constants: list[float]):
    """While probing `fn`, the name `binary_accuracy` it calls returns constants[0], constants[1], ... as 0-d tensors.

    Isolates train/evaluate from the student's own binary_accuracy: their loop is right when its mean
    accuracy is the mean of these constants (or the true accuracy, for a loop that computes it inline).
    """
    import torch

    calls = iter(range(10_000))

    def binary_accuracy(preds: Any, y: Any) -> Any:
        return torch.tensor(constants[next(calls) % len(constants)])

    saved = [(n, n["binary_accuracy"]) for n in _namespaces(fn) if "binary_accuracy" in n]
    for namespace, _ in saved:
        namespace["binary_accuracy"] = binary_accuracy
    try:
        yield
    finally:
        for namespace, original in saved:
            namespace["binary_accuracy"] = original


@functools.lru_cache(maxsize=1)
def grader_tokenizer() -> Any:
    """The tokenizer the grader scores with (bert-base-uncased's vocabulary, from the bundled encoder)."""
    from hw3.sentiment.tokenizer import load_tokenizer

    return load_tokenizer("bundled")


# q4.1: data ----------------------------------------------------------------------------------------------

class VocabSize(Exercise):
    """q4.1a: the size of the tokenizer's vocabulary."""

    tests = (Test("vocabulary size", 1.0),)

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def probe(self, inputs: dict, vocab_size: Any) -> Any:
        return plain(vocab_size)

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        expected = len(grader_tokenizer().vocab)
        with marks.read("vocabulary size"):
            got = outputs if isinstance(outputs, int) and not isinstance(outputs, bool) else None
            if got is None:
                raise Unreadable(f"vocab_size is {describe_plain(outputs)}, expected an int")
            if got != expected:
                hint = ("that is the longest input, not the vocabulary" if got in (510, 512) else
                        "use len(tokenizer.vocab)")
                marks.fail("vocabulary size", f"vocab_size is {got}, expected {expected}", f"vocab_size = {got}", hint)
        return marks.results()


class SplitSizes(Exercise):
    """q4.1b: sizes = (n_train, n_valid, n_test) of the data the notebook loaded.

    In the notebook's own check the expectation is the `splits` it passes (its data: the embedded sample,
    or full IMDB in Colab). `hw3 grade` does not trust them: a grading kernel is offline with an empty
    cache, so it loads the grading build's embedded sample, the grading corpus, and the grader expects the
    sizes of its own copy of it (`corpus.grading_splits`).
    """

    tests = (Test("split sizes", 1.0),)

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def grader_inputs(self, rng: random.Random) -> dict:
        from .corpus import grading_splits

        return {"expected": [len(part) for part in grading_splits()]}

    def probe(self, inputs: dict, sizes: Any, splits: Any = None) -> dict:
        try:
            given = [len(part) for part in splits] if splits is not None and len(splits) == 3 else None
        except Exception:  # not three sized parts: the check falls back to the embedded sample
            given = None
        return {"sizes": plain(sizes), "splits": given}

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        from hw3.sentiment.data import load_splits

        marks = Marks(self.tests)
        with marks.read("split sizes"):
            expected = inputs.get("expected") or outputs["splits"] or [len(part) for part in load_splits("sample")]
            got = numbers(outputs["sizes"], "sizes", (3,))
            if got != expected:
                hint = ("these are the sizes before the split: 30% of the training reviews form the validation set"
                        if got[0] + got[1] == expected[0] + expected[1] + expected[1] else
                        "sizes is (len(train_data), len(valid_data), len(test_data))")
                marks.fail("split sizes", f"sizes is {tuple(int(g) for g in got)}, expected {tuple(expected)}",
                           f"sizes = {tuple(int(g) for g in got)}", hint)
        return marks.results()


# q4.2: the model -----------------------------------------------------------------------------------------

class ModelSettings(Exercise):
    """q4.2a: the model's GRU, dropout and output sizes."""

    tests = (Test("GRU: 2 bidirectional layers of 256", 1.0), Test("dropout 0.25", 0.5), Test("one output", 0.5))

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def probe(self, inputs: dict, model: Any) -> dict:
        rnn, out, dropout = (getattr(model, name, None) for name in ("rnn", "out", "dropout"))
        bert_config = getattr(getattr(model, "bert", None), "config", None)
        return {"rnn": {k: plain(getattr(rnn, k, None)) for k in ("hidden_size", "num_layers", "bidirectional",
                                                                     "input_size", "batch_first")},
                "dropout": plain(getattr(dropout, "p", None)),
                "out": [plain(getattr(out, "in_features", None)), plain(getattr(out, "out_features", None))],
                "bert_hidden": plain(getattr(bert_config, "hidden_size", None))}

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        from hw3.sentiment.model import ModelConfig

        reference = ModelConfig()  # the homework's model: hidden 256, 1 output, 2 layers, bidirectional, 0.25
        marks = Marks(self.tests)
        with marks.read(*(t.name for t in self.tests)):
            rnn = outputs["rnn"]
            wanted = {"hidden_size": reference.hidden_dim, "num_layers": reference.n_layers,
                      "bidirectional": reference.bidirectional, "input_size": outputs["bert_hidden"]}
            for key, value in wanted.items():
                if rnn.get(key) != value:
                    marks.fail(self.tests[0].name, f"model.rnn.{key} is {rnn.get(key)!r}, expected {value!r}",
                               f"model.rnn = {rnn}", "pass HIDDEN_DIM = 256, N_LAYERS = 2, BIDIRECTIONAL = True")
            if not isinstance(outputs["dropout"], float) or not close(outputs["dropout"], reference.dropout):
                marks.fail("dropout 0.25", f"model.dropout.p is {outputs['dropout']!r}, expected {reference.dropout}",
                           f"model.dropout.p = {outputs['dropout']!r}")
            width = 2 * reference.hidden_dim if rnn.get("bidirectional") else reference.hidden_dim
            if outputs["out"][1] != reference.output_dim:
                marks.fail("one output", f"model.out has {outputs['out'][1]!r} outputs, expected {reference.output_dim}",
                           f"model.out = Linear({outputs['out'][0]}, {outputs['out'][1]})",
                           "OUTPUT_DIM = 1: one logit, the score of 'positive'")
            elif outputs["out"][0] != width and not marks.failed(self.tests[0].name):
                marks.fail(self.tests[0].name, f"model.out reads {outputs['out'][0]!r} features, expected {width}")
        return marks.results()


class CountParameters(Exercise):
    """q4.2b: count_parameters(model) counts the trainable parameters of small random models."""

    tests = (Test("counts trainable parameters", 1.0),)
    references = ("hw3.sentiment.model:count_parameters",)

    def inputs(self, rng: random.Random) -> dict:
        specs = []
        for share in (0.0, 0.5, 0.5, 1.0):
            spec = {"vocab": rng.randint(5, 40), "dim": rng.randint(2, 12), "hidden": rng.randint(2, 12),
                    "out": rng.randint(1, 3)}
            n_params = len(list(self.build(spec).parameters()))
            frozen = sorted(rng.sample(range(n_params), round(share * n_params))) or ([0] if 0 < share < 1 else [])
            specs.append({**spec, "frozen": frozen})
        return {"models": specs}

    @staticmethod
    def build(spec: dict) -> Any:
        """Embedding -> GRU -> Linear with the spec's sizes and its frozen parameter indices."""
        from torch import nn

        model = nn.Sequential(nn.Embedding(spec["vocab"], spec["dim"]), nn.GRU(spec["dim"], spec["hidden"], batch_first=True),
                              nn.Linear(spec["hidden"], spec["out"]))
        for index, p in enumerate(model.parameters()):
            p.requires_grad = index not in spec.get("frozen", [])
        return model

    def probe(self, inputs: dict, count_parameters: Any) -> list:
        return [attempt(count_parameters, self.build(spec)) for spec in inputs["models"]]

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        name = self.tests[0].name
        for spec, result in paired(inputs["models"], outputs):
            model = self.build(spec)
            shown = (f"count_parameters(Embedding({spec['vocab']}, {spec['dim']}) → GRU({spec['dim']}, {spec['hidden']}) "
                     f"→ Linear({spec['hidden']}, {spec['out']}), {len(spec['frozen'])} tensors frozen)")
            with marks.read(name, input=shown):
                got = number(returned(result, shown), shown)
                expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
                total = sum(p.numel() for p in model.parameters())
                if got != expected:
                    hint = "count only parameters with requires_grad (frozen ones are not trained)" if got == total else \
                        "sum p.numel() over model.parameters() that require gradients"
                    marks.fail(name, f"returned {got:g} for a model with {expected} trainable of {total} parameters",
                               shown, hint)
        return marks.results()


class Frozen(Exercise):
    """q4.2c: every BERT parameter frozen, every other parameter trainable."""

    tests = (Test("BERT frozen", 0.5), Test("GRU and linear layer trainable", 0.5))

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def probe(self, inputs: dict, model: Any) -> list:
        return [[name, int(p.numel()), bool(p.requires_grad)] for name, p in model.named_parameters()]

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        with marks.read(*(t.name for t in self.tests)):
            bert = [(n, size, grad) for n, size, grad in outputs if str(n).startswith("bert.")]
            head = [(n, size, grad) for n, size, grad in outputs if not str(n).startswith("bert.")]
            if not bert:
                raise Unreadable("the model has no parameters named bert.*: pass the model of Q2a")
            trainable = sum(size for _, size, grad in bert if grad)
            if trainable:
                marks.fail("BERT frozen", f"model.bert still has {trainable:,} trainable parameters",
                           hint="frozen nothing? set requires_grad = False on every parameter whose name starts with 'bert'")
            frozen_head = [n for n, _, grad in head if not grad]
            if frozen_head:
                marks.fail("GRU and linear layer trainable", f"{frozen_head[0]} is frozen too",
                           hint="freeze only the parameters whose name starts with 'bert'")
        return marks.results()


# q4.3: training ------------------------------------------------------------------------------------------

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


# q4.4: inference -------------------------------------------------------------------------------------------

_ADJECTIVES = ("great", "terrible", "boring", "wonderful", "awful", "moving", "dull", "brilliant", "fine", "weak")
_NOUNS = ("movie", "film", "plot", "acting", "ending", "cast", "script", "soundtrack", "director", "story")


class PredictSentiment(Exercise):
    """q4.4a: predict_sentiment(model, tokenizer, sentence) gives the reference's probability.

    Run on a tiny model of the homework's kind (head dropout 0.5, handed over in train mode, so a function
    that forgets model.eval() is seen), with the notebook's tokenizer; the long review is longer than
    BERT's 512 positions.
    """

    tests = (Test("[CLS] and [SEP]", 0.5), Test("cut to 510 tokens", 0.5), Test("sigmoid", 0.5), Test("a float", 0.5))
    references = ("hw3.sentiment.predict:predict_sentiment", "hw3.sentiment.tokenizer:encode")

    def inputs(self, rng: random.Random) -> dict:
        short = [f"The {rng.choice(_NOUNS)} was {rng.choice(_ADJECTIVES)} and the {rng.choice(_NOUNS)} "
                 f"{rng.choice(('felt', 'seemed', 'was'))} {rng.choice(_ADJECTIVES)}{rng.choice(('.', '!', '!!'))}"
                 for _ in range(3)]
        long = " ".join(rng.choice(_ADJECTIVES + _NOUNS) for _ in range(600))
        return {"seed": rng.getrandbits(31), "short": short, "long": long}

    def probe(self, inputs: dict, predict_sentiment: Any, model: Any = None, tokenizer: Any = None) -> dict:
        import torch

        tiny = tiny_model(inputs["seed"], dropout=0.5, vocab_size=len(tokenizer), layers=1)
        out = {}
        for part in ("short", "long"):
            texts = inputs["short"] if part == "short" else [inputs["long"]]
            results = []
            for text in texts:
                tiny.train()
                with torch.random.fork_rng(devices=[]), ForwardModes(tiny) as modes:
                    result = attempt(predict_sentiment, tiny, tokenizer, text)
                value = result.get("value")
                results.append({**result, "python_float": type(value) is float, "modes": modes.calls})
            out[part] = results
        return out

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        import torch

        from hw3.sentiment.predict import predict_sentiment

        marks = Marks(self.tests)
        special, cut, sigmoid, a_float = (t.name for t in self.tests)
        tokenizer = grader_tokenizer()
        tiny = tiny_model(inputs["seed"], dropout=0.5, vocab_size=len(tokenizer), layers=1)

        def variants(text: str) -> dict[str, float]:
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)[:510])
            tiny.eval()
            with torch.no_grad():
                logit = float(tiny(torch.tensor([[tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]])))
                bare = float(tiny(torch.tensor([ids])))
            return {"no special tokens": float(torch.sigmoid(torch.tensor(bare))), "no sigmoid": logit,
                    "neither": bare}

        short_pairs = paired(inputs["short"], outputs["short"])
        (_, long_result), = paired([inputs["long"]], outputs["long"])
        for text, result in short_pairs:
            shown = f"predict_sentiment(model, tokenizer, {text!r})"
            with marks.read(special, sigmoid, a_float, input=shown):
                got = number(returned(result, shown), shown)
                expected = predict_sentiment(tiny, tokenizer, text)
                found = "right" if close(got, expected) else next(
                    (name for name, value in variants(text).items() if close(got, value)), None)
                if not result.get("python_float") or found is None:
                    marks.fail(a_float, f"{shown} returned {describe_plain(result.get('value'))}, expected a float "
                                        f"probability", shown, "return prediction.item()" if found else "")
                if found == "right":
                    continue
                if found in ("no special tokens", "neither"):
                    marks.fail(special, f"{shown} returned {got:.5g}, expected {expected:.5g}", shown,
                               "no [CLS]/[SEP]: put init_token_idx before the ids and eos_token_idx after them")
                if found in ("no sigmoid", "neither"):
                    marks.fail(sigmoid, f"{shown} returned {got:.5g}, expected {expected:.5g}", shown,
                               "the model returns a logit: apply torch.sigmoid to get a probability")
                if found is None:
                    dropout = any(training for training, _ in result.get("modes", []))
                    hint = ("dropout left on: call model.eval() first" if dropout else
                            "tokenize, cut to max_input_length - 2, add [CLS] and [SEP], run the model, apply the sigmoid")
                    marks.fail(special, f"{shown} returned {got:.5g}, expected {expected:.5g}", shown, hint)
                    marks.fail(sigmoid, f"{shown} returned {got:.5g}, expected {expected:.5g}", shown, hint)
        shown = "predict_sentiment(model, tokenizer, <a 600-word review>)"
        with marks.read(cut, input=shown, hint="cut the tokens to max_input_length - 2 before adding [CLS] and [SEP]"):
            got = number(returned(long_result, shown), shown)
            expected = predict_sentiment(tiny, tokenizer, inputs["long"])
            candidates = [expected, *variants(inputs["long"]).values()]
            if not any(close(got, value) for value in candidates):
                marks.fail(cut, f"{shown} returned {got:.5g}, expected {expected:.5g}", shown,
                           "cut the tokens to max_input_length - 2 before adding [CLS] and [SEP]")
        return marks.results()


class Predictions(Exercise):
    """q4.4b: at least two new reviews of the student's own, with their probabilities."""

    tests = (Test("two reviews of your own", 0.5), Test("probabilities in [0, 1]", 0.5))

    def inputs(self, rng: random.Random) -> dict:
        return {}

    def probe(self, inputs: dict, predictions: Any) -> Any:
        if not isinstance(predictions, dict):
            return {"type": type(predictions).__name__}
        return [[plain(k), plain(v)] for k, v in list(predictions.items())[:100]]

    def score(self, inputs: dict, outputs: Any) -> list[TestResult]:
        marks = Marks(self.tests)
        own, probabilities = (t.name for t in self.tests)
        with marks.read(own, probabilities):
            if not isinstance(outputs, list):
                raise Unreadable(f"predictions is {describe_plain(outputs)}, expected a dict {{review: probability}}")
            new = [(text, p) for text, p in outputs if text not in GIVEN_REVIEWS]
            if len([t for t, _ in new if isinstance(t, str) and t.strip()]) < 2:
                marks.fail(own, f"predictions has {len(new)} review(s) of your own, expected at least 2 besides the "
                                f"given ones", hint="add two reviews you wrote or found")
            if not new:
                marks.fail(probabilities, "predictions holds no review of your own to score",
                           hint="store predict_sentiment(model, tokenizer, review)")
            for text, p in new:
                shown = f"predictions[{str(text)[:40]!r}]"
                value = number(p, shown)
                if not 0 <= value <= 1:
                    marks.fail(probabilities, f"{shown} is {value:.4g}, expected a probability in [0, 1]", shown,
                               "store predict_sentiment(model, tokenizer, review)")
        return marks.results()


EXERCISES: dict[str, Exercise] = {
    "q4.1a": VocabSize(), "q4.1b": SplitSizes(), "q4.2a": ModelSettings(), "q4.2b": CountParameters(),
    "q4.2c": Frozen(), "q4.3a": BinaryAccuracy(), "q4.3b": Train(), "q4.3c": Evaluate(), "q4.3d": History(),
    "q4.4a": PredictSentiment(), "q4.4b": Predictions(),
}
