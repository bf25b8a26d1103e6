"""Q4.2, the model: its settings, counting trainable parameters, freezing BERT."""

from __future__ import annotations

import random
from typing import Any

from ..results import TestResult
from .base import Exercise, Marks, Test, Unreadable, attempt, close, number, paired, plain, returned


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


EXERCISES = {"q4.2a": ModelSettings(), "q4.2b": CountParameters(), "q4.2c": Frozen()}
