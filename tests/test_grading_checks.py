"""Every check passes on the reference and fails, with its one-line reason, on a plausible wrong answer."""

from __future__ import annotations

import sys

import pytest
import torch
from grading_helpers import student_train
from torch import nn

from hw3 import attention, rnn
from hw3.grading import CheckFailed, check
from hw3.grading.points import QUESTIONS, auto_questions, max_total
from hw3.sentiment import data, model as models, predict, training


def outcome(capsys, qid: str, *args, **kwargs) -> str:
    """Run check(); return the single line it printed, asserting that it raised exactly when it failed."""
    try:
        check(qid, *args, **kwargs)
        failed = False
    except CheckFailed:
        failed = True
    out, err = capsys.readouterr()
    assert out.endswith("\n") and out.count("\n") == 1 and not err, (out, err)
    line = out.rstrip("\n")
    assert failed == line.startswith(f"❌ {qid}: "), line
    return line


def passes(capsys, qid: str, *args, **kwargs) -> None:
    points = next(q.max_points for q in QUESTIONS if q.id == qid)
    assert outcome(capsys, qid, *args, **kwargs) == f"✅ {qid} passed ({points:g} pts)"


def fails(capsys, qid: str, *args, reason: str, **kwargs) -> None:
    line = outcome(capsys, qid, *args, **kwargs)
    assert line.startswith(f"❌ {qid}: ") and reason in line, line


def test_points_table_matches_the_homework():
    by_id = {q.id: q for q in QUESTIONS}
    assert {q: by_id[q].max_points for q in ("q1", "q2", "q2.written", "q3a", "q3b", "q3b.written", "q3c")} == {
        "q1": 3, "q2": 1.5, "q2.written": 1.5, "q3a": 0.5, "q3b": 2, "q3b.written": 1, "q3c": 0.5}
    assert sum(q.max_points for q in QUESTIONS if q.id.startswith("q3")) == 4
    assert sum(q.max_points for q in QUESTIONS if q.id.startswith("q4")) == 20
    assert max_total() == 30 and sum(q.max_points for q in auto_questions()) == 24
    assert all(q.rubric for q in QUESTIONS if q.kind == "manual")
    assert {q.id for q in QUESTIONS if q.kind == "manual"} == {"q1", "q2.written", "q3b.written", "q3c"}


def test_failure_is_an_assertion_with_a_one_line_traceback(capsys):
    with pytest.raises(AssertionError) as info:
        check("q2", lambda xs: 0.5)
    assert isinstance(info.value, CheckFailed)
    assert info.value._render_traceback_() == [f"CheckFailed: {info.value}"]
    assert capsys.readouterr().out == f"❌ q2: {info.value}\n"


def test_unknown_manual_and_misused_checks_fail_clearly(capsys, monkeypatch):
    from hw3.grading import sentiment_checks

    def broken(predictions):
        raise RuntimeError("a bug in the checker")

    monkeypatch.setitem(sentiment_checks.VERIFIERS, "q4.4b", broken)
    fails(capsys, "q4.4b", {}, reason="the check itself crashed (RuntimeError: a bug in the checker)")
    fails(capsys, "q9", 1, reason="unknown check id 'q9'")
    fails(capsys, "q1", "CNNs are fast", reason="q1 is graded by hand")
    fails(capsys, "q2", reason="wrong arguments for check('q2', ...)")
    fails(capsys, "q2", 0.5, reason="expected a function, got float")


# Q2 and Q3 ---------------------------------------------------------------------------------------------

# The hw3 reference functions themselves fail their checks (see test_grading_hostile.py): the passing
# answers below are written the way a student writes them.

def own_rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))


def noisy_rnn_output(xs):
    print("debugging", xs)
    print("more debugging", file=sys.stderr)
    return own_rnn_output(xs)


def test_q2(capsys):
    passes(capsys, "q2", own_rnn_output)
    passes(capsys, "q2", noisy_rnn_output)  # still exactly one line
    fails(capsys, "q2", rnn.closed_form, reason="rnn_output is hw3.rnn.closed_form, the course's reference code")
    fails(capsys, "q2", lambda xs: float(rnn.simulate(xs)[1][-1]), reason="rnn_output calls hw3.rnn.simulate")
    fails(capsys, "q2", lambda xs: float(torch.sigmoid(torch.tensor(1000.0 * sum(xs)))), reason="expected y_T =")
    fails(capsys, "q2", lambda xs: float(sum(xs[1::2]) > sum(xs[::2])), reason="expected y_T =")  # also wrong on ties
    fails(capsys, "q2", lambda xs: [0.5] * len(xs), reason="returned a list of length")


def test_q3a(capsys):
    passes(capsys, "q3a", lambda beta: [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta])
    passes(capsys, "q3a", lambda beta: torch.linalg.vector_norm(attention.tokens(beta), dim=1))  # tokens is given
    fails(capsys, "q3a", lambda beta: attention.token_norms(attention.tokens(beta)),
          reason="norms calls hw3.attention.token_norms")
    fails(capsys, "q3a", lambda beta: [beta, beta, beta], reason="expected [")
    fails(capsys, "q3a", lambda beta: 2 * beta * beta, reason="returned shape (), expected (3,)")


def naive_attention(X):
    scores = torch.exp(X @ X.T)
    W = scores / scores.sum(dim=1, keepdim=True)
    return W, W @ X


def stable_attention(X):
    S = X @ X.T
    W = torch.softmax(S - S.max(dim=1, keepdim=True).values, dim=1)
    return W, W @ X


def test_q3b(capsys):
    passes(capsys, "q3b", stable_attention)
    fails(capsys, "q3b", attention.self_attention, reason="attention is hw3.attention.self_attention")
    passes(capsys, "q3b", lambda X: (torch.softmax(X @ X.T, dim=1), torch.softmax(X @ X.T, dim=1) @ X))
    fails(capsys, "q3b", naive_attention, reason="non-finite weights W")
    fails(capsys, "q3b", lambda X: (torch.softmax(X @ X.T, dim=0), X), reason="W = [")
    fails(capsys, "q3b", lambda X: torch.softmax(X @ X.T, dim=1), reason="expected a pair (W, Y)")


# Q4 ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    """A BERTGRUSentiment with the homework's hyperparameters around a tiny random BERT."""
    return models.BERTGRUSentiment(models.tiny_bert(), 256, 1, 2, True, 0.25)


def test_q4_1(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    passes(capsys, "q4.1a", 30522)
    fails(capsys, "q4.1a", 30000, reason="vocab_size is 30000, expected 30522")
    fails(capsys, "q4.1a", "30522", reason="vocab_size is a str, expected an int")
    splits = data.load_splits("sample")
    sizes = tuple(len(part) for part in splits)
    passes(capsys, "q4.1b", sizes, splits)
    fails(capsys, "q4.1b", sizes[::-1], splits, reason="but the splits hold")
    half = data.Splits(splits.train[:10], splits.train[10:20], splits.test)
    fails(capsys, "q4.1b", (10, 10, len(splits.test)), half, reason="expected 30%")


def test_q4_2a(capsys, model):
    passes(capsys, "q4.2a", model)
    fails(capsys, "q4.2a", models.BERTGRUSentiment(models.tiny_bert(), 128, 1, 2, True, 0.25),
          reason="model.rnn.hidden_size is 128, expected 256")
    fails(capsys, "q4.2a", models.BERTGRUSentiment(models.tiny_bert(), 256, 1, 2, False, 0.25),
          reason="model.rnn.bidirectional is False")
    fails(capsys, "q4.2a", models.BERTGRUSentiment(models.tiny_bert(), 256, 2, 2, True, 0.25),
          reason="expected 512 -> 1")
    fails(capsys, "q4.2a", nn.Linear(3, 1), reason="model.rnn is nothing")


def test_q4_2b(capsys):
    passes(capsys, "q4.2b", lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad))
    fails(capsys, "q4.2b", models.count_parameters, reason="count_parameters is hw3.sentiment.model.count_parameters")
    fails(capsys, "q4.2b", lambda m: sum(p.numel() for p in m.parameters()), reason="count only parameters with requires_grad")
    fails(capsys, "q4.2b", lambda m: len(list(m.parameters())), reason="count_parameters(model) returned")
    fails(capsys, "q4.2b", lambda m: f"{sum(p.numel() for p in m.parameters() if p.requires_grad):,}",
          reason="returned a str, expected an int")


def test_q4_2c(capsys):
    fresh = models.BERTGRUSentiment(models.tiny_bert(), 16, 1, 2, True, 0.25)
    fails(capsys, "q4.2c", fresh, reason="model.bert still has")
    models.freeze_bert(fresh)
    passes(capsys, "q4.2c", fresh)
    fresh.out.weight.requires_grad = False
    fails(capsys, "q4.2c", fresh, reason="out.weight is frozen too")


def test_q4_3a(capsys):
    passes(capsys, "q4.3a", lambda p, y: (torch.round(torch.sigmoid(p)) == y).float().mean())
    fails(capsys, "q4.3a", training.binary_accuracy, reason="binary_accuracy is hw3.sentiment.training.binary_accuracy")
    fails(capsys, "q4.3a", lambda p, y: (torch.round(p) == y).float().mean(), reason="binary_accuracy(preds=")
    fails(capsys, "q4.3a", lambda p, y: ((p >= 0).float() == y).float().mean(), reason="expected")  # ties at 0
    fails(capsys, "q4.3a", lambda p, y: (torch.round(torch.sigmoid(p)) == y).float().sum(), reason="expected")


def test_q4_3b(capsys):
    state = torch.random.get_rng_state()
    passes(capsys, "q4.3b", student_train())
    assert torch.equal(torch.random.get_rng_state(), state)  # checks leave the notebook's random numbers alone
    fails(capsys, "q4.3b", training.train, reason="train is hw3.sentiment.training.train")
    fails(capsys, "q4.3b", student_train(zero_grad=False), reason="call optimizer.zero_grad()")
    fails(capsys, "q4.3b", student_train(switch_mode=False), reason="call model.train()")
    fails(capsys, "q4.3b", lambda m, it, opt, crit: training.evaluate(m, it, crit), reason="call model.train()")
    fails(capsys, "q4.3b", student_train(mean=False), reason="(the mean over batches)")


def evaluate_in_train_mode(model, iterator, criterion):
    with torch.no_grad():
        losses = [criterion(model(x).squeeze(1), y).item() for x, y in iterator]
        accs = [training.binary_accuracy(model(x).squeeze(1), y).item() for x, y in iterator]
    return sum(losses) / len(losses), sum(accs) / len(accs)


def evaluate_with_gradients(model, iterator, criterion):
    model.eval()
    losses = [criterion(model(x).squeeze(1), y).item() for x, y in iterator]
    return sum(losses) / len(losses), 0.5


def own_evaluate(model, iterator, criterion):
    model.eval()
    losses, accs = [], []
    with torch.no_grad():
        for x, y in iterator:
            preds = model(x).squeeze(1)
            losses.append(criterion(preds, y).item())
            accs.append((torch.round(torch.sigmoid(preds)) == y).float().mean().item())
    return sum(losses) / len(losses), sum(accs) / len(accs)


def test_q4_3c(capsys):
    passes(capsys, "q4.3c", own_evaluate)
    fails(capsys, "q4.3c", training.evaluate, reason="evaluate is hw3.sentiment.training.evaluate")
    fails(capsys, "q4.3c", evaluate_in_train_mode, reason="call model.eval()")
    fails(capsys, "q4.3c", evaluate_with_gradients, reason="torch.no_grad()")
    fails(capsys, "q4.3c", lambda m, it, crit: training.train(m, it, torch.optim.Adam(m.parameters()), crit),
          reason="evaluate ran the model in training mode")


def test_q4_3d(capsys, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    history = [{"epoch": 1, "train_loss": 0.6, "train_acc": 0.61, "valid_loss": 0.55, "valid_acc": 0.7}]
    fails(capsys, "q4.3d", history, reason="model.pt not found")
    torch.save(model.state_dict(), "model.pt")
    passes(capsys, "q4.3d", history)
    passes(capsys, "q4.3d", history, "model.pt", model)
    fails(capsys, "q4.3d", [{**history[0], "valid_acc": 70.0}], reason="accuracies are between 0 and 1")
    fails(capsys, "q4.3d", [{"train_loss": 0.6}], reason="lacks train_acc, valid_loss, valid_acc")
    fails(capsys, "q4.3d", [], reason="expected a list with one dict per epoch")
    other = models.BERTGRUSentiment(models.tiny_bert(), 8, 1, 2, True, 0.25)
    fails(capsys, "q4.3d", history, "model.pt", other, reason="does not fit the model")
    (tmp_path / "model.pt").write_text("not a checkpoint")
    fails(capsys, "q4.3d", history, reason="could not be loaded")


def predict_without_cut(model, tokenizer, sentence):
    model.eval()
    ids = [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence)), tokenizer.sep_token_id]
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids]))).item()


def own_predict(model, tokenizer, sentence):
    model.eval()
    ids = [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence)[:510]),
           tokenizer.sep_token_id]
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids]))).item()


def predict_in_train_mode(model, tokenizer, sentence):
    ids = [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence)[:510]),
           tokenizer.sep_token_id]
    return torch.sigmoid(model(torch.tensor([ids]))).item()


def test_q4_4a(capsys):
    from hw3.sentiment.errors import HW3Error
    from hw3.sentiment.tokenizer import load_tokenizer

    try:
        tokenizer = load_tokenizer("bundled")
    except HW3Error as exc:
        pytest.skip(str(exc))
    model = models.BERTGRUSentiment(models.tiny_bert(), 16, 1, 2, True, 0.25)
    mode = model.training
    passes(capsys, "q4.4a", own_predict, model, tokenizer)
    assert model.training == mode  # the check puts the model back in the mode it found it in
    fails(capsys, "q4.4a", predict.predict_sentiment, model, tokenizer,
          reason="predict_sentiment is hw3.sentiment.predict.predict_sentiment")
    fails(capsys, "q4.4a", predict_without_cut, model, tokenizer, reason="cut the tokens to max_input_length - 2")
    fails(capsys, "q4.4a", predict_in_train_mode, model, tokenizer, reason="expected")
    fails(capsys, "q4.4a", lambda m, t, s: "positive", model, tokenizer, reason="expected a single number")


def test_q4_4b(capsys):
    passes(capsys, "q4.4b", {"A masterpiece.": 0.98, "Two hours I will never get back.": 0.02})
    fails(capsys, "q4.4b", {"Justice League is terrible. I hated it.": 0.01, "Avengers was great!!": 0.7,
                            "Loved it": 0.9}, reason="has 1 review(s) of your own")
    fails(capsys, "q4.4b", {"A masterpiece.": 98, "Meh.": 0.4}, reason="expected a probability in [0, 1]")
    fails(capsys, "q4.4b", ["A masterpiece."], reason="expected a dict")
