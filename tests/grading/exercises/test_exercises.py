"""Every automatic question against correct solutions in several styles and its common mistakes.

Each exercise runs here in one process the way grading splits it: the answer key's side (`key_answer`: inputs
drawn from a seed, the key's probe outputs, hw3's table of mistakes) with a key written as the shipped answer keys
write it, then the student's probe and the scorer (`run_check`, what a notebook's check cell does). A correct
solution must get every point; a planted mistake must lose exactly the sub-test it belongs to, with its hint.
`test_grading_end_to_end.py` runs the same table through `hw3 grade`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from grading_helpers import load_homework_file

from hw3.grading.exercises.checks import key_answer, run_check, score_safely, summary_line
from hw3.sentiment import training
from hw3.sentiment.model import BERTGRUSentiment, tiny_bert

HOMEWORK = load_homework_file(Path(__file__).resolve().parents[3] / "answers" / "questions.toml")


def grade(qid: str, *objects, key: tuple, seed: int = 7, graded: bool = False, **grader):
    """The QuestionResult of question `qid` for the student's `objects` against the answer key's objects `key`, on
    the inputs of `seed`: as a notebook's public check does it (or as `hw3 grade` does, `graded`, with what the
    grader's own process found, `verified`, and the status of the questions before, `context`)."""
    question = HOMEWORK.by_id[qid]
    answer = key_answer(question.exercise, key, {}, seed)
    return run_check(question, answer["inputs"], {**answer, "public": not graded, **grader}, objects, {})


def lost(result) -> dict[str, str]:
    """{sub-test name: hint} of the sub-tests that lost points."""
    return {t.name: t.hint for t in result.tests if not t.passed}


def assert_full(result) -> None:
    assert result.status == "passed", summary_line(result)
    assert result.points == result.max_points == HOMEWORK.by_id[result.id].max_points


def assert_loses(result, test: str, hint: str) -> None:
    """Exactly sub-test `test` lost its points, with a hint containing `hint`."""
    failures = lost(result)
    assert list(failures) == [test], summary_line(result)
    assert hint in failures[test], failures[test]
    expected = result.max_points - next(t.max_points for t in result.tests if t.name == test)
    assert result.points == pytest.approx(expected)


# The homework's points ---------------------------------------------------------------------------------

def test_questions_toml_sets_every_point():
    totals = {part: sum(q.max_points for q in HOMEWORK.questions if q.id.startswith(part))
              for part in ("q1", "q2", "q3", "q4")}
    assert sum(totals.values()) == HOMEWORK.max_total
    assert sum(q.max_points for q in HOMEWORK.automatic()) + sum(q.max_points for q in HOMEWORK.manual()) == \
        HOMEWORK.max_total
    for q in HOMEWORK.automatic():
        assert q.tests and q.max_points == sum(t.points for t in q.tests)
        assert [t.name for t in q.tests] == list(type(q.exercise).tests)
    assert all(q.rubric for q in HOMEWORK.manual())


# Q2 ------------------------------------------------------------------------------------------------------

def rnn_loop(xs):
    h = 0
    for x in xs:
        h = x - h
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))


def rnn_closed_form_even(xs):
    """A student who used the question's assumption: even length, (even sum) − (odd sum)."""
    z = 1000 * (sum(xs[1::2]) - sum(xs[0::2]))
    return 1 / (1 + math.exp(-z)) if z > -700 else 0.0


def rnn_flipped(xs):
    h = 0
    for x in xs:
        h = h - x
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))


def rnn_hidden(xs):
    h = 0
    for x in xs:
        h = x - h
    return float(h)


def rnn_tie_rounded(xs):
    return float(round(rnn_loop(xs)))  # rounds σ(0) = 0.5 to 0


def rnn_plus(xs):
    """The recurrence of an edited homework: h_t = x_t + h_{t−1}."""
    h = 0
    for x in xs:
        h = x + h
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))


KEY_Q2 = (rnn_loop,)


@pytest.mark.parametrize("solution", [rnn_loop, rnn_closed_form_even])
def test_q2_correct(solution):
    assert_full(grade("q2", solution, key=KEY_Q2))


def test_q2_inputs_are_even_length_with_ties_under_the_keys_recurrence():
    answer = key_answer(HOMEWORK.by_id["q2"].exercise, KEY_Q2, {}, 3)
    assert all(len(xs) % 2 == 0 for part in answer["inputs"].values() for xs in part)
    assert sorted(r["value"] for r in answer["outputs"]["ties"]) == [0.0, 0.5, 0.5, 0.5, 1.0]  # in a drawn order
    plus = key_answer(HOMEWORK.by_id["q2"].exercise, (rnn_plus,), {}, 3)  # an edited homework: h_t = x_t + h_{t−1}
    ties = [(xs, r["value"]) for xs, r in zip(plus["inputs"]["ties"], plus["outputs"]["ties"])]
    assert sorted(y for _, y in ties) == [0.0, 0.5, 0.5, 0.5, 1.0]
    assert all(sum(xs) == 0 for xs, y in ties if y == 0.5)


def test_q2_mistakes():
    assert "sign is flipped" in lost(grade("q2", rnn_flipped, key=KEY_Q2))["y_T on even-length sequences"]
    assert "σ(1000·h_T)" in lost(grade("q2", rnn_hidden, key=KEY_Q2))["y_T on even-length sequences"]
    assert_loses(grade("q2", rnn_tie_rounded, key=KEY_Q2), "ties (h_T = 0) and near-ties (h_T = ±1)", "σ(0) = 0.5")
    assert grade("q2", lambda xs: 0.5, key=KEY_Q2).points == 0


@pytest.mark.parametrize("constant", [0.0, 0.5, 1.0])
def test_q2_a_constant_answer_never_passes_the_clear_cut_sequences(constant):
    """The clear-cut sequences have y_T on both sides of 0.5 under the key, whatever the batch's inputs: returning
    1.0 once passed them whenever all five happened to be above (one batch in 32)."""
    for seed in range(100):
        result = grade("q2", lambda xs: constant, key=KEY_Q2, seed=seed)
        assert "y_T on even-length sequences" in lost(result), (seed, summary_line(result))


def test_q2_last_years_recurrence_never_passes_the_clear_cut_sequences_by_chance():
    """Against an edited key (h_t = x_t + h_{t−1}), last year's solution agrees on about half of the clear-cut
    sequences: with five of them it passed in 8 batches of 300 (so test_course_edits failed at random)."""
    for seed in range(300):
        result = grade("q2", rnn_loop, key=(rnn_plus,), seed=seed)
        assert "y_T on even-length sequences" in lost(result), (seed, summary_line(result))


def test_q2_answering_by_position_passes_by_chance_only():
    """A function that counts its calls and answers in the order the public checks ask (clear-cut sequences
    alternating 1, 0; then tie, above, tie, below, tie) once passed the ties in every batch and, with the
    clear-cut sequences alternating, those in 89 of 100: the order of both is now drawn from the course key."""
    passed = {"y_T on even-length sequences": 0, "ties (h_T = 0) and near-ties (h_T = ±1)": 0}
    for seed in range(100):
        calls = iter([1.0, 0.0] * 6 + [0.5, 1.0, 0.5, 0.0, 0.5])
        failures = lost(grade("q2", lambda xs: next(calls, 0.5), key=KEY_Q2, seed=seed))
        for test in passed:
            passed[test] += test not in failures
    assert passed["y_T on even-length sequences"] == 0, passed  # 1 order in 924
    assert passed["ties (h_T = 0) and near-ties (h_T = ±1)"] <= 10, passed  # 1 order in 20


def test_q2_follows_an_edited_key_and_never_shows_a_hint_of_the_old_homework():
    assert_full(grade("q2", rnn_plus, key=(rnn_plus,)))
    result = grade("q2", rnn_loop, key=(rnn_plus,))  # last year's solution
    assert result.points < result.max_points and not any(lost(result).values())


# Q3 ------------------------------------------------------------------------------------------------------

def norms_list(beta):
    return [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta]


def norms_tensor(beta):
    from hw3.attention import tokens  # the helper the notebook hands out, not the graded reference
    X = tokens(beta).double()
    return torch.sqrt((X / beta).pow(2).sum(dim=1)) * beta


def attention_shifted(X):
    S = X @ X.T
    W = torch.softmax(S - S.max(dim=1, keepdim=True).values, dim=1)
    return W, W @ X


def attention_manual(X):
    S = X @ X.T
    E = torch.exp(S - S.amax(1, keepdim=True))
    W = E / E.sum(1, keepdim=True)
    return (W, torch.einsum("ij,jd->id", W, X))


def attention_columns(X):
    W = torch.softmax(X @ X.T, dim=0)
    return W, W @ X


def attention_overflow(X):
    E = torch.exp(X @ X.T)
    W = E / E.sum(1, keepdim=True)
    return W, W @ X


def attention_wrong_y(X):
    W, _ = attention_shifted(X)
    return W, X


def attention_rows(X):
    """W and Y as lists of row tensors."""
    W, Y = attention_shifted(X)
    return list(W), list(Y)


def norms_zero_d(beta):
    """A list of 0-d tensors."""
    return [torch.tensor(2.0).sqrt() * beta, torch.tensor(float(beta)), torch.tensor(2.0).sqrt() * beta]


@pytest.mark.parametrize("solution", [norms_list, norms_tensor, norms_zero_d])
def test_q3a_correct(solution):
    assert_full(grade("q3a", solution, key=(norms_list,)))


def test_q3a_mistake():
    assert "square root" in lost(grade("q3a", lambda b: [2 * b * b, b * b, 2 * b * b], key=(norms_list,)))["norms"]


@pytest.mark.parametrize("solution", [attention_shifted, attention_manual, attention_rows])
def test_q3b_correct(solution):
    assert_full(grade("q3b", solution, key=(attention_shifted,)))


def test_q3b_mistakes():
    key = (attention_shifted,)
    assert_loses(grade("q3b", attention_columns, key=key), "weights W", "dim=1")  # its Y is its own W X
    assert_loses(grade("q3b", attention_overflow, key=key), "finite for huge β", "subtract each row's maximum")
    assert_loses(grade("q3b", attention_wrong_y, key=key), "outputs Y = W X", "Y = W @ X")


# Q4.1 and Q4.2 -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def homework_model():
    """The Q2a model around a tiny BERT, BERT frozen as in Q2c."""
    model = BERTGRUSentiment(tiny_bert(0, vocab_size=100), 256, 1, 2, True, 0.25)
    for name, p in model.named_parameters():
        p.requires_grad = not name.startswith("bert")
    return model


SAMPLE = ([0] * 196, [0] * 84, [0] * 120)  # the embedded sample's splits, as the key loaded them
KEY_SIZES = ((196, 84, 120), SAMPLE)


def test_q4_1(bundled_tokenizer):
    key = (len(bundled_tokenizer.vocab),)
    assert_full(grade("q4.1a", len(bundled_tokenizer.vocab), key=key))
    assert_full(grade("q4.1a", bundled_tokenizer.vocab_size, key=key))
    assert "longest input" in lost(grade("q4.1a", 512, key=key))["vocabulary size"]
    assert_full(grade("q4.1b", (196, 84, 120), None, key=KEY_SIZES))
    assert "before the split" in lost(grade("q4.1b", (280, 84, 120), None, key=KEY_SIZES))["split sizes"]
    imdb = ([0] * 17500, [0] * 7500, [0] * 25000)  # the notebook's own data: in Colab, full IMDB
    assert_full(grade("q4.1b", (17500, 7500, 25000), imdb, key=KEY_SIZES))
    assert "expected (17500, 7500, 25000)" in grade("q4.1b", (196, 84, 120), imdb, key=KEY_SIZES).tests[0].message


def test_q4_1b_when_graded_expects_the_keys_sizes_whatever_splits_the_notebook_passes():
    """In `hw3 grade` both kernels load the same grading corpus: the key's sizes there are the expectation."""
    key = ((11, 5, 8), ([0] * 11, [0] * 5, [0] * 8))
    assert grade("q4.1b", (11, 5, 8), SAMPLE, key=key, graded=True).status == "passed"
    result = grade("q4.1b", (196, 84, 120), SAMPLE, key=key, graded=True)
    assert result.points == 0 and "expected (11, 5, 8)" in result.tests[0].message


def test_q4_2a(homework_model):
    key = (homework_model,)
    assert_full(grade("q4.2a", homework_model, key=key))
    one_layer = BERTGRUSentiment(tiny_bert(0, vocab_size=100), 256, 1, 1, True, 0.25)
    assert_loses(grade("q4.2a", one_layer, key=key), "GRU layers, hidden size and direction", "N_LAYERS")
    two_outputs = BERTGRUSentiment(tiny_bert(0, vocab_size=100), 256, 2, 2, True, 0.25)
    assert_loses(grade("q4.2a", two_outputs, key=key), "output size", "one logit per review")
    assert_loses(grade("q4.2a", BERTGRUSentiment(tiny_bert(0, vocab_size=100), 256, 1, 2, True, 0.5), key=key),
                 "dropout", "DROPOUT")
    edited = BERTGRUSentiment(tiny_bert(0, vocab_size=100), 128, 1, 2, True, 0.25)  # a key with hidden size 128
    assert_full(grade("q4.2a", edited, key=(edited,)))
    assert_loses(grade("q4.2a", homework_model, key=(edited,)), "GRU layers, hidden size and direction",
                 "HIDDEN_DIM")


def count_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_q4_2a_the_grader_reads_the_sizes_from_the_models_weights(homework_model):
    """A probe reports sizes; the grader reads them from the weights the probe hands over (`verify`)."""
    key = (homework_model,)
    architecture = {"hidden_size": 256, "num_layers": 2, "bidirectional": True, "input_size": 32, "out": [512, 1]}
    assert_full(grade("q4.2a", homework_model, key=key, graded=True, verified={"architecture": architecture}))
    smaller = {**architecture, "hidden_size": 128, "out": [256, 1]}  # the weights say otherwise than the report
    assert_loses(grade("q4.2a", homework_model, key=key, graded=True, verified={"architecture": smaller}),
                 "GRU layers, hidden size and direction", "HIDDEN_DIM")
    nothing = grade("q4.2a", homework_model, key=key, graded=True,
                    verified={"error": "the model's weights were not handed over"})
    assert set(lost(nothing)) == {"GRU layers, hidden size and direction", "output size"}  # dropout: the value


def test_q4_2b():
    key = (count_trainable,)
    assert_full(grade("q4.2b", count_trainable, key=key))
    assert_full(grade("q4.2b", lambda m: sum(map(torch.numel, filter(lambda p: p.requires_grad, m.parameters()))),
                      key=key))
    assert "require gradients" in lost(grade("q4.2b", lambda m: sum(p.numel() for p in m.parameters()), key=key))[
        "counts trainable parameters"]


def test_q4_2c(homework_model):
    key = (homework_model,)
    assert_full(grade("q4.2c", homework_model, key=key))
    nothing = BERTGRUSentiment(tiny_bert(0, vocab_size=100), 256, 1, 2, True, 0.25)
    assert_loses(grade("q4.2c", nothing, key=key), "BERT frozen", "requires_grad = False")
    everything = BERTGRUSentiment(tiny_bert(0, vocab_size=100), 256, 1, 2, True, 0.25)
    for p in everything.parameters():
        p.requires_grad = False
    assert_loses(grade("q4.2c", everything, key=key), "GRU and linear layer trainable", "freeze only")


# Q4.3 ----------------------------------------------------------------------------------------------------

def accuracy_round(preds, y):
    return (torch.round(torch.sigmoid(preds)) == y).float().mean()


def accuracy_ge(preds, y):
    return ((torch.sigmoid(preds) >= 0.5) == y.bool()).float().mean().item()


def accuracy_positive_logit(preds, y):
    return float(sum(int(p > 0) == int(t) for p, t in zip(preds.tolist(), y.tolist())) / len(y))


@pytest.mark.parametrize("solution", [accuracy_round, accuracy_ge, accuracy_positive_logit])
def test_q4_3a_correct(solution):
    assert_full(grade("q4.3a", solution, key=(accuracy_round,)))


def test_q4_3a_mistakes():
    key = (accuracy_round,)
    assert_loses(grade("q4.3a", lambda p, y: 100 * accuracy_round(p, y), key=key), "a fraction in [0, 1]", "percentage")
    assert_loses(grade("q4.3a", lambda p, y: (torch.round(p) == y).float().mean(), key=key), "rounds the sigmoid",
                 "without a sigmoid")
    assert_loses(grade("q4.3a", lambda p, y: (torch.round(torch.sigmoid(p)) == y).float().sum(), key=key),
                 "a fraction in [0, 1]", "divide")
    # a wrong fraction is still a fraction: it loses the computation only
    assert_loses(grade("q4.3a", lambda p, y: torch.tensor(0.5), key=key), "rounds the sigmoid", "")


def train_reference_style(model, iterator, optimizer, criterion):
    epoch_loss = epoch_acc = 0.0
    model.train()
    for x, y in iterator:
        optimizer.zero_grad()
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        acc = binary_accuracy(predictions, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        epoch_acc += acc.item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)


def train_list_style(model, iterator, optimizer, criterion):
    """Another style: lists of per-batch values, zero_grad after the step, accuracy computed inline."""
    model.train(True)
    losses, accs = [], []
    optimizer.zero_grad()
    for batch in iterator:
        x, y = batch
        logits = model(x)[:, 0]
        loss = criterion(logits, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
        accs.append(((logits > 0).float() == y).float().mean().item())
    return sum(losses) / len(losses), sum(accs) / len(accs)


def train_without_zero_grad(model, iterator, optimizer, criterion):
    epoch_loss = epoch_acc = 0.0
    model.train()
    for x, y in iterator:
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        epoch_acc += binary_accuracy(predictions, y).item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)


def train_sum(model, iterator, optimizer, criterion):
    loss_sum, acc = train_reference_style(model, iterator, optimizer, criterion)
    return loss_sum * len(iterator), acc


def train_no_mode(model, iterator, optimizer, criterion):
    epoch_loss = epoch_acc = 0.0
    for x, y in iterator:
        optimizer.zero_grad()
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        epoch_acc += binary_accuracy(predictions, y).item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)


def binary_accuracy(preds, y):
    """The notebook-level name train/evaluate call; a percentage, to show it is isolated from them."""
    return 100 * (torch.round(torch.sigmoid(preds)) == y).float().mean()


@pytest.mark.parametrize("solution", [train_reference_style, train_list_style])
def test_q4_3b_correct(solution):
    assert_full(grade("q4.3b", solution, key=(training.train,)))


def test_q4_3b_mistakes():
    key = (training.train,)
    assert_loses(grade("q4.3b", train_without_zero_grad, key=key), "updates the model like the answer key",
                 "zero_grad")
    assert_loses(grade("q4.3b", train_sum, key=key), "mean loss and accuracy", "len(iterator)")
    assert_loses(grade("q4.3b", train_no_mode, key=key), "train mode with gradients", "model.train()")


def evaluate_reference_style(model, iterator, criterion):
    epoch_loss = epoch_acc = 0.0
    model.eval()
    with torch.no_grad():
        for x, y in iterator:
            predictions = model(x).squeeze(1)
            epoch_loss += criterion(predictions, y).item()
            epoch_acc += binary_accuracy(predictions, y).item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)


@torch.no_grad()
def evaluate_decorated(model, iterator, criterion):
    """Decorated with @torch.no_grad(): still isolated from the notebook's binary_accuracy."""
    model.eval()
    results = [(criterion(model(x).squeeze(1), y).item(), binary_accuracy(model(x).squeeze(1), y).item())
               for x, y in iterator]
    return tuple(sum(values) / len(results) for values in zip(*results))


def evaluate_train_mode(model, iterator, criterion):
    with torch.no_grad():
        values = [(criterion(model(x).squeeze(1), y).item(), binary_accuracy(model(x).squeeze(1), y).item())
                  for x, y in iterator]
    return tuple(sum(v) / len(values) for v in zip(*values))


def evaluate_with_grad(model, iterator, criterion):
    model.eval()
    values = [(criterion(model(x).squeeze(1), y).item(), binary_accuracy(model(x).squeeze(1), y).item())
              for x, y in iterator]
    return tuple(sum(v) / len(values) for v in zip(*values))


@pytest.mark.parametrize("solution", [evaluate_reference_style, evaluate_decorated])
def test_q4_3c_correct(solution):
    assert_full(grade("q4.3c", solution, key=(training.evaluate,)))


def test_q4_3c_mistakes():
    key = (training.evaluate,)
    assert_loses(grade("q4.3c", evaluate_train_mode, key=key), "eval mode", "model.eval()")
    assert_loses(grade("q4.3c", evaluate_with_grad, key=key), "no gradients, model unchanged", "no gradients")


def test_q4_3d(tmp_path, homework_model):
    four_keys = [{"train_loss": 0.6, "train_acc": 0.7, "valid_loss": 0.5, "valid_acc": 0.8}] * 3
    checkpoint = tmp_path / "best.pt"
    torch.save(homework_model.head_state_dict(), checkpoint)
    key = (four_keys, checkpoint, homework_model)
    assert_full(grade("q4.3d", four_keys, checkpoint, homework_model, key=key))  # exactly the four keys named
    with_epoch = [{"epoch": i + 1, **record} for i, record in enumerate(four_keys)]
    whole = tmp_path / "whole.pt"
    torch.save(homework_model.state_dict(), whole)
    assert_full(grade("q4.3d", with_epoch, str(whole), homework_model, key=key))
    percentages = [{**record, "train_acc": 70.0, "valid_acc": 80.0} for record in four_keys]
    assert_full(grade("q4.3d", percentages, checkpoint, homework_model, key=key))  # q4.3a's mistake, charged there
    missing = [{k: v for k, v in record.items() if k != "valid_acc"} for record in four_keys]
    assert_loses(grade("q4.3d", missing, checkpoint, homework_model, key=key), "the four values of each epoch",
                 "valid_acc")
    assert_loses(grade("q4.3d", four_keys, tmp_path / "nowhere.pt", homework_model, key=key), "the best model saved",
                 "")
    assert_loses(grade("q4.3d", four_keys[:1], checkpoint, homework_model, key=key), "one record per epoch",
                 "inside the loop")


HISTORY = [{"train_loss": 0.7, "train_acc": 0.5, "valid_loss": loss, "valid_acc": acc}
           for loss, acc in ((0.69, 0.4), (0.61, 0.6), (0.58, 0.8), (0.6, 0.8), (0.64, 0.6))]
EVALUATE_RIGHT = {"binary_accuracy": "passed", "evaluate_epoch": "passed"}


def saved_model(loss: float, acc: float) -> dict:
    """What the grader's verifier reports for a checkpoint with this validation loss and accuracy."""
    return {"architecture": {"hidden_size": 256, "num_layers": 2, "bidirectional": True, "input_size": 32,
                             "out": [512, 1]}, "valid": [loss, acc]}


def test_q4_3d_the_grader_checks_the_saved_model_against_the_history(tmp_path, homework_model):
    checkpoint = tmp_path / "best.pt"
    torch.save(homework_model.head_state_dict(), checkpoint)
    objects = (checkpoint, homework_model)
    key = (HISTORY, *objects)
    assert_full(grade("q4.3d", HISTORY, *objects, key=key, graded=True, verified=saved_model(0.58, 0.8),
                      context=EVALUATE_RIGHT))
    last = grade("q4.3d", HISTORY, *objects, key=key, graded=True, verified=saved_model(0.64, 0.6),
                 context=EVALUATE_RIGHT)
    assert_loses(last, "the best model saved", "only when the validation loss improves")
    assert "is epoch 5's (validation loss 0.64), not the best, epoch 3's" in last.tests[2].message
    swapped = [{**r, "valid_acc": r["train_acc"]} for r in HISTORY]  # train_acc recorded as valid_acc
    assert_loses(grade("q4.3d", swapped, *objects, key=key, graded=True, verified=saved_model(0.58, 0.8),
                       context=EVALUATE_RIGHT), "the four values of each epoch", "accuracy evaluate returns")
    # accuracies from a binary_accuracy that is not right are not hw3's: q4.3a charges that mistake
    assert_full(grade("q4.3d", swapped, *objects, key=key, graded=True, verified=saved_model(0.58, 0.8),
                      context={**EVALUATE_RIGHT, "binary_accuracy": "partial"}))
    made_up = grade("q4.3d", HISTORY, *objects, key=key, graded=True, verified=saved_model(0.4321, 0.9),
                    context=EVALUATE_RIGHT)
    assert_loses(made_up, "the best model saved", "lowest")
    nothing = grade("q4.3d", HISTORY, *objects, key=key, graded=True,
                    verified={"error": "no file was saved at CHECKPOINT"}, context=EVALUATE_RIGHT)
    assert set(lost(nothing)) == {q.name for q in HOMEWORK.by_id["q4.3d"].tests}  # made-up numbers, for all it shows
    # an evaluate that is not right records losses hw3's evaluation need not match: then nothing tells which
    # epoch's model was saved; where one does match, the comparison holds
    assert_full(grade("q4.3d", HISTORY, *objects, key=key, graded=True, verified=saved_model(0.4321, 0.9),
                      context={"evaluate_epoch": "partial"}))
    assert_loses(grade("q4.3d", HISTORY, *objects, key=key, graded=True, verified=saved_model(0.64, 0.6),
                       context={"evaluate_epoch": "partial"}), "the best model saved", "improves")
    # one record for five epochs: the epochs cannot be told apart, and "one record per epoch" says why
    assert_loses(grade("q4.3d", HISTORY[:1], *objects, key=key, graded=True, verified=saved_model(0.58, 0.8),
                       context=EVALUATE_RIGHT), "one record per epoch", "inside the loop")


# Q4.4 ----------------------------------------------------------------------------------------------------

max_input_length = 512


def predict_notebook_style(model, tokenizer, sentence):
    model.eval()
    tokens = tokenizer.tokenize(sentence)[: max_input_length - 2]
    indexed = [tokenizer.cls_token_id] + tokenizer.convert_tokens_to_ids(tokens) + [tokenizer.sep_token_id]
    tensor = torch.LongTensor(indexed).unsqueeze(0)
    with torch.no_grad():
        return torch.sigmoid(model(tensor)).item()


def predict_encode_style(model, tokenizer, sentence):
    model.eval()
    ids = tokenizer.encode(sentence, truncation=True, max_length=max_input_length)
    with torch.no_grad():
        logit = model(torch.tensor([ids]))[0, 0]
    return float(1 / (1 + torch.exp(-logit)))


def predict_no_special(model, tokenizer, sentence):
    model.eval()
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence)[:510])
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids]))).item()


def predict_no_sigmoid(model, tokenizer, sentence):
    model.eval()
    ids = tokenizer.encode(sentence, truncation=True, max_length=512)
    with torch.no_grad():
        return model(torch.tensor([ids])).item()


def predict_no_cut(model, tokenizer, sentence):
    model.eval()
    ids = [tokenizer.cls_token_id] + tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence)) + [tokenizer.sep_token_id]
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids]))).item()


def predict_tensor(model, tokenizer, sentence):
    model.eval()
    ids = tokenizer.encode(sentence, truncation=True, max_length=512)
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids])))


def predict_dropout_on(model, tokenizer, sentence):
    ids = tokenizer.encode(sentence, truncation=True, max_length=512)
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids]))).item()


@pytest.mark.parametrize("solution", [predict_notebook_style, predict_encode_style])
def test_q4_4a_correct(solution, bundled_tokenizer):
    assert_full(grade("q4.4a", solution, None, bundled_tokenizer, key=(predict_notebook_style, None, bundled_tokenizer)))


@pytest.mark.parametrize("solution, test, hint", [
    (predict_no_special, "[CLS] and [SEP]", "lack [CLS] at the start"),
    (predict_no_sigmoid, "sigmoid", "apply torch.sigmoid"),
    (predict_no_cut, "cut to 510 tokens", "cut its tokens"),
    (predict_tensor, "a float", ".item()"),
])
def test_q4_4a_mistakes(solution, test, hint, bundled_tokenizer):
    key = (predict_notebook_style, None, bundled_tokenizer)
    assert_loses(grade("q4.4a", solution, None, bundled_tokenizer, key=key), test, hint)


def test_q4_4a_dropout_left_on(bundled_tokenizer):
    key = (predict_notebook_style, None, bundled_tokenizer)
    failures = lost(grade("q4.4a", predict_dropout_on, None, bundled_tokenizer, key=key))
    assert "model.eval()" in failures["sigmoid"]


def test_q4_4a_numpy_float32_is_a_float(bundled_tokenizer):
    key = (predict_notebook_style, None, bundled_tokenizer)
    assert_full(grade("q4.4a", lambda *a: predict_notebook_style(*a) * __import__("numpy").float32(1), None,
                      bundled_tokenizer, key=key))


KEY_PREDICTIONS = ({"A review of the key's own.": 0.8, "Another.": 0.2},)


def model_predictions(**values: tuple[float, float]) -> dict:
    """What the verifier reports: {"predictions": {text: {"logit", "probability", "no special tokens"}}}."""
    return {"predictions": {text: {"logit": logit, "probability": 1 / (1 + math.exp(-logit)), "no special tokens": bare}
                            for text, (logit, bare) in values.items()}}


def test_q4_4b_the_grader_re_predicts_the_reviews_with_the_saved_model():
    found = model_predictions(**{"A moving film.": (2.0, 0.6), "Dull and long.": (-1.5, 0.3)})
    right = {"A moving film.": 1 / (1 + math.exp(-2.0)), "Dull and long.": 1 / (1 + math.exp(1.5))}
    ok = {"predict_sentiment": "passed"}
    assert_full(grade("q4.4b", right, key=KEY_PREDICTIONS, graded=True, verified=found, context=ok))
    typed = {"A moving film.": 0.92, "Dull and long.": 0.15}
    assert_loses(grade("q4.4b", typed, key=KEY_PREDICTIONS, graded=True, verified=found, context=ok),
                 "probabilities from the trained model", "best model reloaded")
    logits = {"A moving film.": 2.0, "Dull and long.": 0.0 - 1.5}
    assert_loses(grade("q4.4b", logits, key=KEY_PREDICTIONS, graded=True, verified=found, context=ok),
                 "probabilities from the trained model", "")
    # a predict_sentiment that rounds (q4.4a's mistake, charged there) gives the model's rounded predictions
    rounded = {text: float(round(p)) for text, p in right.items()}
    assert_full(grade("q4.4b", rounded, key=KEY_PREDICTIONS, graded=True, verified=found,
                      context={"predict_sentiment": "partial"}))
    # so does one that swaps the labels (returns 1 - p), but not where predict_sentiment passed
    swapped = {text: 1 - p for text, p in right.items()}
    assert_full(grade("q4.4b", swapped, key=KEY_PREDICTIONS, graded=True, verified=found,
                      context={"predict_sentiment": "failed"}))
    assert_loses(grade("q4.4b", swapped, key=KEY_PREDICTIONS, graded=True, verified=found, context=ok),
                 "probabilities from the trained model", "best model reloaded")
    assert_loses(grade("q4.4b", right, key=KEY_PREDICTIONS, graded=True, context=ok,
                       verified={"error": "no model was saved at CHECKPOINT (q4.3d) to predict with"}),
                 "probabilities from the trained model", "CHECKPOINT")


def test_q4_4b():
    assert_full(grade("q4.4b", {"A moving film.": 0.9, "Dull and long.": 0.1}, key=KEY_PREDICTIONS))
    given = {"Justice League is terrible. I hated it.": 0.1, "Avengers was great!!": 0.9, "Mine.": 0.5}
    assert_loses(grade("q4.4b", given, key=KEY_PREDICTIONS), "two reviews of your own", "two reviews")
    assert_loses(grade("q4.4b", {"A moving film.": 3.2, "Dull.": 0.1}, key=KEY_PREDICTIONS), "probabilities from the trained model",
                 "predict_sentiment")


# Trivial and forged answers ------------------------------------------------------------------------------

KEYS = {"q2": KEY_Q2, "q3a": (norms_list,), "q4.2b": (count_trainable,), "q4.3a": (accuracy_round,),
        "q4.3b": (training.train,), "q4.3c": (training.evaluate,)}


@pytest.mark.parametrize("qid, trivial", [
    ("q2", lambda xs: 0.5),
    ("q3a", lambda beta: [0.0, 0.0, 0.0]),
    ("q4.2b", lambda model: 0),
    ("q4.3a", lambda preds, y: 0.5),
    ("q4.3b", lambda model, iterator, optimizer, criterion: (0.5, 0.5)),
    ("q4.3c", lambda model, iterator, criterion: (0.5, 0.5)),
])
def test_a_function_that_ignores_its_inputs_earns_nothing(qid, trivial):
    result = grade(qid, trivial, key=KEYS[qid])
    assert result.points <= (1 if qid == "q4.3a" else 0), summary_line(result)  # 0.5 is a fraction, at least


def test_identity_weights_are_right_only_for_huge_beta():
    result = grade("q3b", lambda X: (torch.eye(3, dtype=torch.float64), torch.zeros(3, X.shape[1], dtype=torch.float64)),
                   key=(attention_shifted,))
    assert set(lost(result)) == {"weights W", "outputs Y = W X"}  # W → I is the huge-β answer, and finite


def test_a_constant_probability_earns_nothing(bundled_tokenizer):
    result = grade("q4.4a", lambda model, tokenizer, sentence: 0.5, None, bundled_tokenizer,
                   key=(predict_notebook_style, None, bundled_tokenizer))
    assert result.points == 0.5, summary_line(result)  # it is a float, and nothing else


@pytest.fixture(scope="module")
def every_answer(bundled_tokenizer, homework_model, tmp_path_factory) -> dict:
    """{question id: the key's answer} for every automatic question, with the keys of this module."""
    checkpoint = tmp_path_factory.mktemp("key") / "best.pt"
    torch.save(homework_model.head_state_dict(), checkpoint)
    keys = {**KEYS, "q3b": (attention_shifted,), "q4.1a": (30522,), "q4.1b": KEY_SIZES, "q4.2a": (homework_model,),
            "q4.2c": (homework_model,), "q4.3d": ([{"train_loss": 1.0, "train_acc": 0.5, "valid_loss": 1.0,
                                                  "valid_acc": 0.5}], checkpoint, homework_model),
            "q4.4a": (predict_notebook_style, None, bundled_tokenizer), "q4.4b": KEY_PREDICTIONS}
    return {q.id: key_answer(q.exercise, keys[q.id], {}, 1) for q in HOMEWORK.automatic()}


@pytest.mark.parametrize("qid", [q.id for q in HOMEWORK.automatic()])
def test_probe_data_of_the_wrong_shape_fails_every_sub_test(qid, every_answer):
    question, answer = HOMEWORK.by_id[qid], every_answer[qid]
    for forged in ([], {}, None, "passed", [[]] * 3, {"short": [], "long": []},
                   {"result": {}, "fingerprint": [], "forwards": [[True, True, []]]}):
        result = score_safely(question, answer["inputs"], forged, answer)
        assert result.points == 0, (qid, forged, summary_line(result))


def test_no_hint_or_message_quotes_the_answer_keys_solutions():
    """Hints name the mistake, never the solution: no text the exercises' modules show (docstrings aside) holds a line
    (or the right-hand side of an assignment) of the answer keys' solution code; naming a missing call such as
    model.eval() names the mistake."""
    import ast
    import json
    import re

    from hw3.grading.assign import BEGIN_SOLUTION, END_SOLUTION

    root = Path(__file__).resolve().parents[3]
    lines = []
    for key in (root / "answers").glob("*.ipynb"):
        for cell in json.loads(key.read_text(encoding="utf-8"))["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                inside = (inside or line.strip() == BEGIN_SOLUTION) and line.strip() != END_SOLUTION
                if inside and line.strip() != BEGIN_SOLUTION and not line.strip().startswith("#"):
                    lines += [line.strip(), line.split("=", 1)[1].strip() if "=" in line else ""]
    solutions = {" ".join(s.split()) for s in lines if len(s) >= 12 and not re.fullmatch(r"[\w.]+\(\)", s)}
    texts = []
    for path in (root / "hw3" / "grading" / "exercises").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node)}
        texts += [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                  and isinstance(node.value, str) and id(node) not in docstrings]
    assert solutions and texts
    quoted = [(s, text) for s in solutions for text in texts if s in " ".join(text.split())]
    assert not quoted, quoted
