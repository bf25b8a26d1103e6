"""Q4.4, inference: predicting a sentence's sentiment, and the student's own reviews."""

from __future__ import annotations

import random
from typing import Any

from ..results import TestResult
from .base import Exercise, Marks, Test, Unreadable, attempt, close, describe_plain, number, paired, plain, returned
from .tiny import ForwardModes, grader_tokenizer, tiny_model

GIVEN_REVIEWS = ("Justice League is terrible. I hated it.", "Avengers was great!!")


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


EXERCISES = {"q4.4a": PredictSentiment(), "q4.4b": Predictions()}
