"""Q4.2, the model: its settings (q4.2a), counting trainable parameters (q4.2b), freezing BERT (q4.2c)."""

from __future__ import annotations

import random
from typing import Any

from .base import Exercise, Key, Marks, Unreadable, attempt, close, number, paired, plain, returned

SETTINGS = ("hidden_size", "num_layers", "bidirectional")


class ModelSettings(Exercise):
    """q4.2a: the model's GRU (layers, hidden size, direction), dropout and output size are the answer key's.

    The sizes are read by the grader itself from the model's weights, which the probe hands over (`verify`): a
    probe that reports sizes without a model of them earns nothing. The dropout leaves no trace in the weights:
    its value is reported by the kernel (the value is the answer).
    """

    kind = "model_settings"
    tests = ("GRU layers, hidden size and direction", "dropout", "output size")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, model: Any) -> dict:
        rnn, out, dropout = (getattr(model, name, None) for name in ("rnn", "out", "dropout"))
        bert_config = getattr(getattr(model, "bert", None), "config", None)
        return {"rnn": {k: plain(getattr(rnn, k, None)) for k in (*SETTINGS, "input_size")},
                "dropout": plain(getattr(dropout, "p", None)),
                "out": [plain(getattr(out, "in_features", None)), plain(getattr(out, "out_features", None))],
                "bert_hidden": plain(getattr(bert_config, "hidden_size", None))}

    def artifact(self, inputs: dict, model: Any) -> str | None:
        """The model's head weights (everything but BERT), saved to a temporary file."""
        import tempfile

        import torch

        state = {k: v for k, v in model.state_dict().items() if not k.startswith("bert.")}
        path = tempfile.mkstemp(prefix="hw3-model-", suffix=".pt")[1]
        torch.save(state, path)
        return path

    def verify(self, inputs: dict, outputs: Any, files: dict[str, str]) -> dict:
        """The sizes the handed-over weights imply, or why they could not be read."""
        from .saved_model import Unusable, architecture, head_state

        if self.kind not in files:
            return {"error": "the model's weights were not handed over"}
        try:
            return {"architecture": architecture(head_state(files[self.kind]))}
        except Unusable as exc:
            return {"error": str(exc)}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        gru, dropout, output = self.tests
        key = expected["outputs"]
        found = expected.get("verified")
        if found is not None and "error" in found:
            for name in (gru, output):
                marks.fail(name, f"the grader could not read the model's sizes from its weights: {found['error']}",
                           hint="pass the model of Q2a, a BERTGRUSentiment")
        with marks.read(*self.tests):
            rnn = dict(outputs["rnn"])
            if found is not None and "architecture" in found:  # the sizes the weights show, not what was reported
                rnn.update({name: found["architecture"][name] for name in (*SETTINGS, "input_size")})
                outputs = {**outputs, "out": found["architecture"]["out"]}
            wanted = {name: key["rnn"][name] for name in SETTINGS}
            wanted["input_size"] = outputs["bert_hidden"]  # the GRU reads this model's BERT
            for name, value in wanted.items():
                if rnn.get(name) != value:
                    marks.fail(gru, f"model.rnn.{name} is {rnn.get(name)!r}", f"model.rnn = {rnn}",
                               "the GRU reads BERT's hidden size" if name == "input_size" else
                               "use the question's HIDDEN_DIM, N_LAYERS and BIDIRECTIONAL", repr(value))
            if not isinstance(outputs["dropout"], float) or not close(outputs["dropout"], key["dropout"]):
                marks.fail(dropout, f"model.dropout.p is {outputs['dropout']!r}", f"model.dropout.p = {outputs['dropout']!r}",
                           "use the question's DROPOUT", str(key["dropout"]))
            hidden = rnn.get("hidden_size") if isinstance(rnn.get("hidden_size"), int) else 0
            width = hidden * (2 if rnn.get("bidirectional") is True else 1)  # what this model's GRU gives the head
            if outputs["out"][1] != key["out"][1]:
                marks.fail(output, f"model.out has {outputs['out'][1]!r} outputs",
                           f"model.out = Linear({outputs['out'][0]}, {outputs['out'][1]})",
                           "one logit per review: the score of 'positive'", str(key["out"][1]))
            elif outputs["out"][0] != width and not marks.failed(gru):
                marks.fail(gru, f"model.out reads {outputs['out'][0]!r} features",
                           hint="the linear layer reads the GRU's last hidden states of both directions",
                           expected=str(width))


class CountParameters(Exercise):
    """q4.2b: count_parameters(model) counts the trainable parameters of small random models like the key's."""

    kind = "count_parameters"
    tests = ("counts trainable parameters",)
    references = ("hw3.sentiment.model:count_parameters",)

    def inputs(self, rng: random.Random, key: Key) -> dict:
        specs = []
        for share in (0.0, 0.5, 0.5, 1.0):
            spec = {"vocab": rng.randint(5, 40), "dim": rng.randint(2, 12), "hidden": rng.randint(2, 12),
                    "out": rng.randint(1, 3)}
            n_params = len(list(build(spec).parameters()))
            frozen = sorted(rng.sample(range(n_params), round(share * n_params))) or ([0] if 0 < share < 1 else [])
            specs.append({**spec, "frozen": frozen})
        return {"models": specs}

    def probe(self, inputs: dict, count_parameters: Any) -> list:
        return [attempt(count_parameters, build(spec)) for spec in inputs["models"]]

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        """Every model's number of parameters, frozen or not (a common mistake counts them all)."""
        return {"total": [sum(p.numel() for p in build(spec).parameters()) for spec in inputs["models"]]}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        name = self.tests[0]
        totals = expected["mistakes"].get("total") or [None] * len(inputs["models"])
        for (spec, result), key_result, total in zip(paired(inputs["models"], outputs), expected["outputs"], totals):
            shown = (f"count_parameters(Embedding({spec['vocab']}, {spec['dim']}) → GRU({spec['dim']}, {spec['hidden']}) "
                     f"→ Linear({spec['hidden']}, {spec['out']}), {len(spec['frozen'])} tensors frozen)")
            with marks.read(name, input=shown):
                got = number(returned(result, shown), shown)
                want = number(returned(key_result, "the answer key"), "the answer key")
                if got != want:
                    hint = ("count only the parameters that require gradients (frozen ones are not trained)"
                            if got == total else "count the elements of the trainable parameters only, each exactly once")
                    marks.fail(name, f"returned {got:g} for a model with {want:g} trainable parameters", shown, hint)


def build(spec: dict) -> Any:
    """Embedding -> GRU -> Linear with the spec's sizes and its frozen parameter indices (deterministic weights)."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Embedding(spec["vocab"], spec["dim"]),
                              nn.GRU(spec["dim"], spec["hidden"], batch_first=True), nn.Linear(spec["hidden"], spec["out"]))
    for index, p in enumerate(model.parameters()):
        p.requires_grad = index not in spec.get("frozen", [])
    return model


class Frozen(Exercise):
    """q4.2c: BERT's parameters frozen and the head's trainable, as in the answer key's model."""

    kind = "frozen_bert"
    tests = ("BERT frozen", "GRU and linear layer trainable")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, model: Any) -> list:
        return [[name, int(p.numel()), bool(p.requires_grad)] for name, p in model.named_parameters()]

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        bert_test, head_test = self.tests
        key = expected["outputs"]
        key_bert_trainable = any(grad for name, _, grad in key if str(name).startswith("bert."))
        key_head_frozen = any(not grad for name, _, grad in key if not str(name).startswith("bert."))
        with marks.read(*self.tests):
            bert = [(n, size, grad) for n, size, grad in outputs if str(n).startswith("bert.")]
            head = [(n, size, grad) for n, size, grad in outputs if not str(n).startswith("bert.")]
            if not bert:
                raise Unreadable("the model has no parameters named bert.*: pass the model of Q2a")
            trainable = sum(int(size) for _, size, grad in bert if grad)
            if bool(trainable) != key_bert_trainable:
                marks.fail(bert_test, f"model.bert still has {trainable:,} trainable parameters",
                           hint="set requires_grad = False on every parameter whose name starts with 'bert'")
            frozen_head = [n for n, _, grad in head if not grad]
            if bool(frozen_head) != key_head_frozen:
                marks.fail(head_test, f"{frozen_head[0]} is frozen too" if frozen_head else "the head is not trainable",
                           hint="freeze only the parameters whose name starts with 'bert'")


KINDS = (ModelSettings, CountParameters, Frozen)
