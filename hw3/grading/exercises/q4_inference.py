"""Q4.4, inference: predicting a sentence's sentiment (q4.4a), and two reviews of the student's own (q4.4b)."""

from __future__ import annotations

import random
from typing import Any

from .base import (Exercise, Key, Marks, Unreadable, close, describe_exception, describe_plain, number, paired, plain,
                   returned)
from .tiny import Forwards, tiny_model

GIVEN_REVIEWS = ("Justice League is terrible. I hated it.", "Avengers was great!!")
_ADJECTIVES = ("great", "terrible", "boring", "wonderful", "awful", "moving", "dull", "brilliant", "fine", "weak")
_NOUNS = ("movie", "film", "plot", "acting", "ending", "cast", "script", "soundtrack", "director", "story")


def is_float(value: Any) -> bool:
    """A Python float or a numpy floating-point scalar (what "returns a float" admits); not a tensor."""
    if isinstance(value, float):
        return True
    dtype = getattr(value, "dtype", None)
    return type(value).__module__ == "numpy" and getattr(dtype, "kind", "") == "f" and getattr(value, "shape", 1) == ()


class PredictSentiment(Exercise):
    """q4.4a: predict_sentiment(model, tokenizer, sentence) gives the answer key's probability.

    Run on a tiny model of the homework's kind (head dropout 0.5, handed over in train mode, so a function that
    forgets model.eval() is seen), with the notebook's own tokenizer; the long review is longer than BERT's 512
    positions.
    """

    kind = "predict_sentiment"
    tests = ("[CLS] and [SEP]", "cut to 510 tokens", "sigmoid", "a float")
    references = ("hw3.sentiment.predict:predict_sentiment", "hw3.sentiment.tokenizer:encode")

    def inputs(self, rng: random.Random, key: Key) -> dict:
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
                with torch.random.fork_rng(devices=[]), Forwards(tiny) as forwards:
                    value = None
                    try:
                        value = predict_sentiment(tiny, tokenizer, text)
                        result = {"value": plain(value)}
                    except Exception as exc:
                        result = {"error": describe_exception(exc)}
                results.append({**result, "float": is_float(value),
                                "modes": [call[:2] for call in forwards.calls]})
            out[part] = results
        return out

    def mistakes(self, inputs: dict, outputs: Any, *objects: Any) -> dict:
        """hw3's probability and three common mistakes' (no [CLS]/[SEP], no sigmoid, neither) for every text."""
        import torch

        from hw3.sentiment.predict import predict_sentiment

        tokenizer = objects[2] if len(objects) > 2 else None
        tiny = tiny_model(inputs["seed"], dropout=0.5, vocab_size=len(tokenizer), layers=1)
        tiny.eval()
        out = {}
        for text in [*inputs["short"], inputs["long"]]:
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)[:510])
            with torch.no_grad():
                logit = float(tiny(torch.tensor([[tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]])))
                bare = float(tiny(torch.tensor([ids])))
            out[text] = {"hw3": predict_sentiment(tiny, tokenizer, text),
                         "no special tokens": float(torch.sigmoid(torch.tensor(bare))), "no sigmoid": logit,
                         "neither": bare}
        return out

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        special, cut, sigmoid, a_float = self.tests
        key = expected["outputs"]
        for (text, result), key_result in zip(paired(inputs["short"], outputs["short"]), key["short"]):
            shown = f"predict_sentiment(model, tokenizer, {text!r})"
            with marks.read(special, sigmoid, a_float, input=shown):
                got = number(returned(result, shown), shown)
                want = number(returned(key_result, "the answer key"), "the answer key")
                table = _table(expected["mistakes"].get(text), want)
                found = "right" if close(got, want) else next((n for n, v in table.items() if close(got, v)), None)
                if found is None and got == round(want):
                    found = "rounded"  # the tokens and the model were right: only the probability is missing
                if not result.get("float"):
                    marks.fail(a_float, f"{shown} returned {describe_plain(result.get('value'))}, expected a float "
                                        f"probability", shown, "return the probability as a Python float (.item())")
                if found == "right":
                    continue
                wrong, right = f"{shown} returned {got:.5g}", f"{want:.5g}"
                if found in ("no special tokens", "neither"):
                    marks.fail(special, wrong, shown, "the ids lack [CLS] at the start and [SEP] at the end", right)
                if found == "rounded":
                    marks.fail(sigmoid, wrong, shown, "return the probability itself, not the label it rounds to",
                               right)
                if found in ("no sigmoid", "neither"):
                    marks.fail(sigmoid, wrong, shown, "the model returns a logit: apply torch.sigmoid to get a "
                                                      "probability", right)
                if found is None:
                    dropout = any(training for training, _ in result.get("modes", []))
                    hint = ("dropout left on: call model.eval() first" if dropout else
                            "follow the steps the question lists: tokenize, cut, add the special tokens, run the model, "
                            "apply the sigmoid") if table else ""
                    marks.fail(special, wrong, shown, hint, right)
                    marks.fail(sigmoid, wrong, shown, hint, right)
        (_, long_result), = paired([inputs["long"]], outputs["long"])
        shown = "predict_sentiment(model, tokenizer, <a 600-word review>)"
        hint = "the review is longer than BERT's 512 positions: cut its tokens so that [CLS] and [SEP] still fit"
        with marks.read(cut, input=shown, hint=hint):
            got = number(returned(long_result, shown), shown)
            want = number(returned(key["long"][0], "the answer key"), "the answer key")
            table = _table(expected["mistakes"].get(inputs["long"]), want)
            if not any(close(got, value) for value in (want, round(want), *table.values())):
                marks.fail(cut, f"{shown} returned {got:.5g}", shown, hint, f"{want:.5g}")


def _table(mistakes: dict | None, want: float) -> dict[str, float]:
    """The common mistakes' values for one text, when hw3's reference agrees with the key there (else none)."""
    if not isinstance(mistakes, dict) or not close(mistakes.get("hw3", float("nan")), want):
        return {}
    return {name: value for name, value in mistakes.items() if name != "hw3"}


class Predictions(Exercise):
    """q4.4b: at least two new reviews of the student's own, with the probabilities the trained model gives them.

    The grader re-predicts each review itself (`verify`, in its own process) with the model saved at CHECKPOINT
    (q4.3d), which the notebook reloads before predicting: a stored value must be that probability. Where
    predict_sentiment (q4.4a) is not right, the values its own mistake would give from that model count too (the
    label rounded, the logit, no [CLS]/[SEP], the labels swapped: the mistake is q4.4a's), but typed-in numbers
    never do.
    """

    kind = "own_predictions"
    tests = ("two reviews of your own", "probabilities from the trained model")

    def inputs(self, rng: random.Random, key: Key) -> dict:
        return {}

    def probe(self, inputs: dict, predictions: Any) -> Any:
        if not isinstance(predictions, dict):
            return {"type": type(predictions).__name__}
        return [[plain(k), plain(v)] for k, v in list(predictions.items())[:100]]

    def verify(self, inputs: dict, outputs: Any, files: dict[str, str]) -> dict:
        """What the saved model predicts for each of the student's own reviews, or why it could not be used."""
        from .saved_model import Unusable, head_state, model_of, predictions

        texts = [text for text, _ in outputs if isinstance(text, str) and text not in GIVEN_REVIEWS][:20] \
            if isinstance(outputs, list) else []
        if "training_loop" not in files:
            return {"error": "no model was saved at CHECKPOINT (q4.3d) to predict with"}
        try:
            return {"predictions": predictions(model_of(head_state(files["training_loop"])), texts)}
        except Unusable as exc:
            return {"error": f"the model saved at CHECKPOINT (q4.3d) cannot be used: {exc}"}

    def score(self, marks: Marks, inputs: dict, outputs: Any, expected: dict) -> None:
        own, probabilities = self.tests
        with marks.read(own, probabilities):
            if not isinstance(outputs, list):
                raise Unreadable(f"predictions is {describe_plain(outputs)}, expected a dict {{review: probability}}")
            new = [(text, p) for text, p in outputs if text not in GIVEN_REVIEWS]
            if len([t for t, _ in new if isinstance(t, str) and t.strip()]) < 2:
                marks.fail(own, f"predictions has {len(new)} review(s) of your own, expected at least 2 besides the "
                                f"given ones", hint="add two reviews you wrote or found")
            if not new:
                marks.fail(probabilities, "predictions holds no review of your own to score",
                           hint="store the probability predict_sentiment gives each review")
            for text, p in new:
                shown = f"predictions[{str(text)[:40]!r}]"
                value = number(p, shown)
                if not 0 <= value <= 1 and expected.get("context", {}).get("predict_sentiment", "passed") == "passed":
                    marks.fail(probabilities, f"{shown} is {value:.4g}, expected a probability in [0, 1]", shown,
                               "store the probability predict_sentiment gives each review")
            if "verified" in expected:
                self.score_verified(marks, new, expected)

    def score_verified(self, marks: Marks, new: list, expected: dict) -> None:
        """Each stored value against the saved model's own prediction for that review."""
        probabilities = self.tests[1]
        found = expected["verified"]
        if "error" in found:
            marks.fail(probabilities, f"the predictions cannot be checked: {found['error']}",
                       hint="save the best model to CHECKPOINT (q4.3d) and predict with it")
            return
        right = expected.get("context", {}).get("predict_sentiment") == "passed"
        for text, p in new:
            model = found["predictions"].get(text) if isinstance(text, str) else None
            if model is None:
                continue
            value = number(p, "the prediction")
            allowed = [model["probability"]] if right else \
                [model["probability"], round(model["probability"]), model["logit"], model["no special tokens"],
                 1 - model["probability"]]  # labels swapped
            if not any(close(value, v, rel=1e-3, abs_=1e-4) for v in allowed):
                marks.fail(probabilities, f"predictions[{text[:40]!r}] is {value:.4g}, not what the trained model "
                                          f"gives", text[:80], "store the probability predict_sentiment gives each "
                                                               "review, with the best model reloaded",
                           f"{model['probability']:.4g}")
                return


KINDS = (PredictSentiment, Predictions)
