"""Issue 16's fairness corpus: realistic submissions the grader has never seen, with the fair verdict of each
sub-test, and the small builder that turns one into a notebook.

The corpus is data. `VARIANTS[qid][name]` is one student's code for one exercise (the whole solution region:
a `def`, or the statements that set a value) with its fair verdicts: `fail` maps each sub-test a careful
human grader would fail to the reason, `either` each sub-test where both verdicts are defensible; every
other sub-test of the question passes, and `why` justifies a debatable pass. Names starting with `ok_` are
correct work; `bug_` names carry a realistic mistake (issue 16's classes and others). Each sub-test judges
its own property only: a bug is charged once, to its own sub-test of its own question, never again to a
later question that uses the buggy function (a loop that calls a broken `evaluate` still earns q4.3d).

`SUBMISSIONS[student]` picks one variant per question; `FORGED` is issue 16's class-2 attack (every stub left
unsolved, the kernel-side probe replaced by canned data); `KEY` is the mini course's answer key (the real
keys' solutions) and is graded as a control. None of this code appears in the other tests' fixtures
(tests/grading/test_grading_end_to_end.py, tests/grading/exercises/test_exercises.py).

`notebook(solutions)` builds the mini homework of tests/grading/test_grading_end_to_end.py's shape: a setup cell,
then per question its code cell (the solution region, with the homework's given code around it for q4.3d)
and the answer keys' own check cell. Its model is the homework's BERTGRUSentiment over a tiny random BERT,
trained on the grading corpus (graded notebooks load it as their embedded sample).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ANSWERS = Path(__file__).resolve().parent.parent / "answers"

# The mini homework ------------------------------------------------------------------------------------------

SETUP = """\
import random
import time

import numpy as np
import torch
from torch import nn, optim

from hw3 import attention
from hw3.grading import check
from hw3.sentiment.batching import BucketIterator
from hw3.sentiment.data import load_splits
from hw3.sentiment.encoders import load_bert, resolve_encoder
from hw3.sentiment.features import cache_features
from hw3.sentiment.model import BERTGRUSentiment
from hw3.sentiment.tokenizer import encode_batch, load_tokenizer, tokenize_and_cut

SEED = 1234
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
encoder = resolve_encoder("auto")  # when graded: the bundled encoder, offline
tokenizer = load_tokenizer(encoder)
init_token_idx, eos_token_idx, pad_token_idx = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
max_input_length = tokenizer.model_max_length
splits = load_splits("sample", seed=SEED)  # when graded: the grading corpus, 11 / 5 / 8 reviews
train_data, valid_data, test_data = splits


def make_iterator(reviews, shuffle):
    ids = encode_batch(tokenizer, [r.text for r in reviews], max_input_length)
    return BucketIterator(ids, [r.label for r in reviews], 128, shuffle=shuffle, pad_id=pad_token_idx, seed=SEED)


train_iterator = make_iterator(train_data, shuffle=True)
valid_iterator = make_iterator(valid_data, shuffle=False)
test_iterator = make_iterator(test_data, shuffle=False)
bert = load_bert(encoder)  # its features of the grading corpus are shared by the grader: training takes seconds
"""

QUESTION_ORDER = ("q2", "q3a", "q3b", "q4.1a", "q4.1b", "q4.2a", "q4.2b", "q4.2c", "q4.3a", "q4.3b", "q4.3c",
                  "q4.3d", "q4.4a", "q4.4b")

# The homework's given code around a solution region (as in answers/hw3_q4.ipynb's training cell).
GIVEN_BEFORE = {
    "q4.3d": """\
from pathlib import Path

optimizer = optim.Adam([p for p in model.parameters() if p.requires_grad])
criterion = nn.BCEWithLogitsLoss()
train_iterator = cache_features(model, train_iterator)  # BERT runs once (the homework's cache_features)
valid_iterator = cache_features(model, valid_iterator)
test_iterator = cache_features(model, test_iterator)
N_EPOCHS = 5
CHECKPOINT = Path("runs") / "q4-model.pt"
CHECKPOINT.parent.mkdir(exist_ok=True)
best_valid_loss = float("inf")
history = []
""",
}
GIVEN_AFTER = {
    "q4.3d": """
model.load_state_dict(torch.load(CHECKPOINT, weights_only=True), strict=False)  # the best epoch's weights
test_loss, test_acc = evaluate(model, test_iterator, criterion)
print(f"Test Loss: {test_loss:.3f} | Test Acc: {test_acc * 100:.2f}%")
""",
}


def check_cells(folder: Path = ANSWERS) -> dict[str, str]:
    """{question id: the source of its check cell} in the answer keys."""
    from hw3.grading.notebook import cell_check_calls, cell_source

    cells = {}
    for path in sorted(folder.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for call in cell_check_calls(cell_source(cell), 0):
                    cells.setdefault(call.qid, cell_source(cell))
    return cells


def notebook(solutions: dict[str, str]) -> nbformat.NotebookNode:
    """The mini homework with these solutions, each in its solution region (so it also serves as a key)."""
    checks = check_cells()
    cells = [nbformat.v4.new_code_cell(SETUP)]
    for qid in QUESTION_ORDER:
        region = f"### BEGIN SOLUTION\n{solutions[qid].strip()}\n### END SOLUTION\n"
        cells.append(nbformat.v4.new_code_cell((GIVEN_BEFORE.get(qid, "") + region + GIVEN_AFTER.get(qid, "")).strip()))
        cells.append(nbformat.v4.new_code_cell(checks[qid]))
    return nbformat.v4.new_notebook(cells=cells)


def solutions_of(student: str) -> dict[str, str]:
    """The code of one submission, question by question."""
    if student == FORGED_NAME:
        return FORGED
    if student == KEY_NAME:
        return KEY
    return {qid: VARIANTS[qid][name]["code"] for qid, name in SUBMISSIONS[student].items()}


def fair_verdicts(student: str, subtests: dict[str, list[str]]) -> dict[str, dict[str, bool | None]]:
    """{qid: {sub-test: True (pass), False (fail) or None (either is fair)}} of one submission; `subtests` lists
    each question's sub-test names."""
    if student == KEY_NAME:
        return {qid: {t: True for t in subtests[qid]} for qid in QUESTION_ORDER}
    if student == FORGED_NAME:
        return {qid: {t: (None if qid in FORGED_EITHER and (FORGED_EITHER[qid] is None or t in FORGED_EITHER[qid])
                          else False) for t in subtests[qid]} for qid in QUESTION_ORDER}
    out = {}
    for qid, name in SUBMISSIONS[student].items():
        variant = VARIANTS[qid][name]
        out[qid] = {t: None if t in variant.get("either", {}) else t not in variant.get("fail", {}) for t in subtests[qid]}
    return out


# The answer key of the mini course (the solutions of answers/*.ipynb) ----------------------------------------

KEY_NAME = "answer_key"
KEY = {
    "q2": """\
def rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))
""",
    "q3a": """\
def norms(beta):
    return [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta]
""",
    "q3b": """\
def self_attention(X):
    S = X @ X.T
    S = S - S.max(dim=1, keepdim=True).values
    W = torch.softmax(S, dim=1)
    return W, W @ X
""",
    "q4.1a": "vocab_size = len(tokenizer.vocab)",
    "q4.1b": "sizes = (len(train_data), len(valid_data), len(test_data))",
    "q4.2a": """\
HIDDEN_DIM = 256
OUTPUT_DIM = 1
N_LAYERS = 2
BIDIRECTIONAL = True
DROPOUT = 0.25
model = BERTGRUSentiment(bert, HIDDEN_DIM, OUTPUT_DIM, N_LAYERS, BIDIRECTIONAL, DROPOUT)
""",
    "q4.2b": """\
def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
""",
    "q4.2c": """\
for name, param in model.named_parameters():
    if name.startswith("bert"):
        param.requires_grad = False
""",
    "q4.3a": """\
def binary_accuracy(preds, y):
    rounded = torch.round(torch.sigmoid(preds))
    return (rounded == y).float().mean()
""",
    "q4.3b": """\
def train(model, iterator, optimizer, criterion):
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
""",
    "q4.3c": """\
def evaluate(model, iterator, criterion):
    epoch_loss = epoch_acc = 0.0
    model.eval()
    with torch.no_grad():
        for x, y in iterator:
            predictions = model(x).squeeze(1)
            epoch_loss += criterion(predictions, y).item()
            epoch_acc += binary_accuracy(predictions, y).item()
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
""",
    "q4.3d": """\
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        torch.save(model.head_state_dict(), CHECKPOINT)
    history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                    "valid_loss": valid_loss, "valid_acc": valid_acc})
""",
    "q4.4a": """\
def predict_sentiment(model, tokenizer, sentence):
    model.eval()
    tokens = tokenize_and_cut(tokenizer, sentence, max_input_length)
    indexed = [init_token_idx] + tokenizer.convert_tokens_to_ids(tokens) + [eos_token_idx]
    tensor = torch.LongTensor(indexed).unsqueeze(0)
    with torch.no_grad():
        prediction = torch.sigmoid(model(tensor))
    return prediction.item()
""",
    "q4.4b": """\
my_reviews = [
    "The Shawshank Redemption is a masterpiece: patient, moving and beautifully acted.",
    "Suicide Squad was a terrible movie, loud and boring from start to finish.",
]
predictions = {review: predict_sentiment(model, tokenizer, review) for review in my_reviews}
""",
}

# The variants ------------------------------------------------------------------------------------------------

Y_T, TIES = "y_T on even-length sequences", "ties (h_T = 0) and near-ties (h_T = ±1)"
W_, Y_, FINITE = "weights W", "outputs Y = W X", "finite for huge β"
GRU, DROPOUT, ONE_OUT = "GRU layers, hidden size and direction", "dropout", "output size"
FROZEN, HEAD = "BERT frozen", "GRU and linear layer trainable"
FRACTION, ROUNDS = "a fraction in [0, 1]", "rounds the sigmoid"
UPDATES, TRAIN_MODE, MEANS = "updates the model like the answer key", "train mode with gradients", "mean loss and accuracy"
EVAL_MODE, NO_GRAD = "eval mode", "no gradients, model unchanged"
RECORDS, FOUR, BEST = "one record per epoch", "the four values of each epoch", "the best model saved"
SPECIAL, CUT, SIGMOID, FLOAT = "[CLS] and [SEP]", "cut to 510 tokens", "sigmoid", "a float"
OWN, PROBABILITIES = "two reviews of your own", "probabilities from the trained model"

VARIANTS: dict[str, dict[str, dict]] = {
    "q2": {
        "ok_numpy_signs": {"code": """\
import numpy as np

def rnn_output(xs):
    signs = (-1.0) ** np.arange(len(xs) - 1, -1, -1)  # h_T = sum_k (-1)^(T-k) x_k
    h = float(np.dot(signs, xs))
    return float(1.0 / (1.0 + np.exp(-1000.0 * h)))
"""},
        "ok_reduce_stable_math": {"code": """\
import math
from functools import reduce

def rnn_output(xs):
    h = reduce(lambda h, x: x - h, xs, 0)
    z = 1000 * h
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    return math.exp(z) / (1 + math.exp(z))
"""},
        "ok_recursive_0d_tensor": {"why": "a 0-d tensor holding y_T is the number asked for", "code": """\
def hidden(xs):
    return 0 if not xs else xs[-1] - hidden(xs[:-1])

def rnn_output(xs):
    return torch.sigmoid(torch.tensor(1000.0 * hidden(list(xs)), dtype=torch.float64))
"""},
        "ok_while_numpy_float32": {"why": "a numpy float32 is a real number; y_T is 0, 1/2 or 1 to float32 precision",
                                   "code": """\
import numpy as np

def rnn_output(xs):
    h, t = 0, 0
    while t < len(xs):
        h = xs[t] - h
        t += 1
    return np.float32(1) / (np.float32(1) + np.exp(np.float32(-1000 * h)))
"""},
        "bug_step_without_tie": {"fail": {TIES: "returns 0 on a tie, where y_T = σ(0) = 0.5"}, "code": """\
def rnn_output(xs):
    even, odd = sum(xs[1::2]), sum(xs[::2])
    return 1.0 if even > odd else 0.0
"""},
        "bug_no_output_weight": {"fail": {Y_T: "σ(h_T) instead of σ(1000·h_T)",
                                          TIES: "near-ties h_T = ±1 give σ(±1), not σ(±1000)"}, "code": """\
import math

def rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    return 1 / (1 + math.exp(-h))
"""},
        "bug_math_overflow": {"fail": {Y_T: "raises OverflowError whenever h_T < 0",
                                       TIES: "raises OverflowError on the near-tie h_T = -1"}, "code": """\
import math

def rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    return 1 / (1 + math.exp(-1000 * h))
"""},
    },
    "q3a": {
        "ok_numpy_array": {"code": """\
import numpy as np

def norms(beta):
    return np.array([np.sqrt(2.0), 1.0, np.sqrt(2.0)]) * beta
"""},
        "ok_list_of_0d_tensors": {"why": "issue 16 class 3: a list of 0-d tensors holds the three norms", "code": """\
def norms(beta):
    X = attention.tokens(beta)
    return [torch.linalg.norm(x) for x in X]
"""},
        "ok_hypot_tuple": {"code": """\
import math

def norms(beta):
    diagonal = math.hypot(beta, beta)  # b is orthogonal to d and to c
    return diagonal, abs(beta), diagonal
"""},
        "ok_numpy_float32_scalars": {"why": "numpy float32 scalars are real numbers, exact to 1e-7", "code": """\
import numpy as np

def norms(beta):
    X = np.asarray(attention.tokens(beta), dtype=np.float32)
    return [np.linalg.norm(row) for row in X]
"""},
        "bug_every_norm_beta": {"fail": {"norms": "‖d + b‖ = √2·β, not β"}, "code": """\
def norms(beta):
    return [beta, beta, beta]
"""},
        "bug_added_norms": {"fail": {"norms": "‖d + b‖ ≠ ‖d‖ + ‖b‖ for orthogonal vectors"}, "code": """\
def norms(beta):
    return [2 * beta, beta, 2 * beta]
"""},
    },
    "q3b": {
        "ok_logsumexp": {"code": """\
def self_attention(X):
    S = X @ X.T
    W = torch.exp(S - torch.logsumexp(S, dim=1, keepdim=True))
    return W, W @ X
"""},
        "ok_numpy_loops": {"code": """\
import numpy as np

def self_attention(X):
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    W = np.zeros((n, n))
    for i in range(n):
        scores = np.array([X[i] @ X[j] for j in range(n)])
        e = np.exp(scores - scores.max())
        W[i] = e / e.sum()
    return W, W @ X
"""},
        "ok_rows_as_lists": {"why": "issue 16 class 3: W and Y given as lists of row tensors have the right values",
                             "code": """\
import torch.nn.functional as F

def self_attention(X):
    W = [F.softmax(x @ X.T, dim=0) for x in X]
    Y = [w @ X for w in W]
    return W, Y
"""},
        "ok_transposed_product": {"code": """\
def self_attention(X):
    scores = torch.mm(X, X.t())
    W = torch.softmax(scores, dim=-1)
    Y = torch.mm(X.t(), W.t()).t()
    return W, Y
"""},
        "ok_float32": {"why": "float32 is ordinary precision for this; W and Y agree with float64 to ~1e-6", "code": """\
import torch.nn.functional as F

def self_attention(X):
    X = X.float()
    W = F.softmax(X @ X.T, dim=1)
    return W, W @ X
"""},
        "bug_softmax_over_columns": {
            "fail": {W_: "softmax over dim 0: the columns of W sum to 1, not its rows"},
            "why": "issue 16 class 4: its Y is its own W X, and every value is finite", "code": """\
import torch.nn.functional as F

def self_attention(X):
    S = X @ X.T
    W = F.softmax(S - S.max(), dim=0)
    return W, W @ X
"""},
        "bug_scaled_scores": {"fail": {W_: "scores divided by √d: not the question's s_ij = x_i·x_j"},
                              "why": "its Y is its own W X, and it stays finite (W → I for huge β)", "code": """\
import math

def self_attention(X):
    S = X @ X.T / math.sqrt(X.shape[1])
    S = S - S.max(dim=1, keepdim=True).values
    W = S.exp() / S.exp().sum(dim=1, keepdim=True)
    return W, W @ X
"""},
        "bug_numpy_overflow": {"fail": {FINITE: "exp of scores ~1e12 overflows: W is nan for huge β"}, "code": """\
import numpy as np

def self_attention(X):
    X = X.numpy()
    E = np.exp(X @ X.T)
    W = E / E.sum(axis=1, keepdims=True)
    return W, W @ X
"""},
        "bug_y_with_transposed_weights": {"fail": {Y_: "Y = Wᵀ X, not W X"}, "code": """\
def self_attention(X):
    S = X @ X.T
    W = torch.softmax(S - S.max(dim=1, keepdim=True).values, dim=1)
    return W, W.T @ X
"""},
    },
    "q4.1a": {
        "ok_get_vocab": {"code": "vocab_size = len(tokenizer.get_vocab())"},
        "ok_len_tokenizer": {"code": "vocab_size = len(tokenizer)"},
        "ok_numpy_max_id": {"why": "ids run 0 … N-1, so the largest id + 1 is the size; an np.int64 is an integer",
                            "code": """\
import numpy as np

vocab_size = np.max(list(tokenizer.vocab.values())) + 1
"""},
        "bug_largest_id": {"fail": {"vocabulary size": "the largest id, one less than the size"},
                           "code": "vocab_size = max(tokenizer.vocab.values())"},
        "bug_tokens_seen_in_data": {"fail": {"vocabulary size": "counts the tokens of the training reviews"}, "code": """\
vocab_size = len({token for review in train_data for token in tokenizer.tokenize(review.text)})
"""},
    },
    "q4.1b": {
        "ok_map_len": {"code": "sizes = tuple(map(len, (train_data, valid_data, test_data)))"},
        "ok_index_splits": {"code": "sizes = (len(splits[0]), len(splits[1]), len(splits[2]))"},
        "ok_counting": {"code": """\
n_train = sum(1 for _ in train_data)
n_valid = sum(1 for _ in valid_data)
n_test = sum(1 for _ in test_data)
sizes = n_train, n_valid, n_test
"""},
        "bug_valid_test_swapped": {"fail": {"split sizes": "(n_train, n_test, n_valid)"},
                                   "code": "sizes = (len(train_data), len(test_data), len(valid_data))"},
        "bug_train_before_split": {"fail": {"split sizes": "n_train counts the validation reviews too"},
                                   "code": "sizes = (len(train_data) + len(valid_data), len(valid_data), len(test_data))"},
    },
    "q4.2a": {
        "ok_keywords": {"code": """\
model = BERTGRUSentiment(bert, hidden_dim=256, output_dim=1, n_layers=2, bidirectional=True, dropout=0.25)
"""},
        "ok_settings_dict": {"code": """\
settings = {"hidden_dim": 256, "output_dim": 1, "n_layers": 2, "bidirectional": True, "dropout": 1 / 4}
model = BERTGRUSentiment(bert, **settings)
"""},
        "ok_config_object": {"code": """\
from hw3.sentiment.model import ModelConfig

config = ModelConfig(hidden_dim=256, output_dim=1, n_layers=2, bidirectional=True, dropout=0.25)
model = BERTGRUSentiment(bert, config.hidden_dim, config.output_dim, config.n_layers, config.bidirectional,
                         config.dropout)
"""},
        "bug_hidden_128": {"fail": {GRU: "hidden size 128"}, "code": """\
model = BERTGRUSentiment(bert, hidden_dim=128, output_dim=1, n_layers=2, bidirectional=True, dropout=0.25)
"""},
        "bug_unidirectional": {"fail": {GRU: "not bidirectional"}, "code": """\
HIDDEN_DIM, OUTPUT_DIM, N_LAYERS, DROPOUT = 256, 1, 2, 0.25
model = BERTGRUSentiment(bert, HIDDEN_DIM, OUTPUT_DIM, N_LAYERS, False, DROPOUT)
"""},
    },
    "q4.2b": {
        "ok_named_loop": {"code": """\
def count_parameters(model):
    n = 0
    for _, p in model.named_parameters():
        if p.requires_grad:
            n += p.nelement()
    return n
"""},
        "ok_numpy_prod": {"code": """\
import numpy as np

def count_parameters(model):
    return int(sum(np.prod(p.shape) for p in model.parameters() if p.requires_grad))
"""},
        "ok_numpy_int64": {"why": "an np.int64 is an integer", "code": """\
import numpy as np

def count_parameters(model):
    return np.sum([p.numel() for p in model.parameters() if p.requires_grad], dtype=np.int64)
"""},
        "bug_counts_tensors": {"fail": {"counts trainable parameters": "counts parameter tensors, not numbers"},
                               "code": """\
def count_parameters(model):
    return len([p for p in model.parameters() if p.requires_grad])
"""},
        "bug_counts_frozen": {"fail": {"counts trainable parameters": "counts the frozen parameters"}, "code": """\
def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)
"""},
    },
    "q4.2c": {
        "ok_module_requires_grad": {"code": "model.bert.requires_grad_(False)"},
        "ok_name_contains": {"code": """\
for name, param in model.named_parameters():
    if "bert" in name:
        param.requires_grad_(False)
"""},
        "ok_through_bert_variable": {"why": "`bert` is the very module the model holds", "code": """\
for p in bert.parameters():
    p.requires_grad = False
"""},
        "bug_eval_is_not_freezing": {"fail": {FROZEN: "eval() switches dropout off, it freezes nothing"},
                                     "code": "model.bert.eval()  # frozen"},
        "bug_encoder_only": {"fail": {FROZEN: "BERT's embeddings and pooler stay trainable"}, "code": """\
for name, param in model.named_parameters():
    if name.startswith("bert.encoder"):
        param.requires_grad = False
"""},
        "bug_froze_the_gru": {"fail": {HEAD: "the GRU is frozen too"}, "code": """\
for param in model.parameters():
    param.requires_grad = False
for param in model.out.parameters():
    param.requires_grad = True
"""},
    },
    "q4.3a": {
        "ok_numpy_float32": {"why": "a numpy float32 fraction", "code": """\
import numpy as np

def binary_accuracy(preds, y):
    probabilities = 1 / (1 + np.exp(-preds.detach().cpu().numpy()))
    return ((probabilities >= 0.5) == y.cpu().numpy()).astype(np.float32).mean()
"""},
        "ok_positive_logit_sum": {"why": "σ(x) rounds to 1 exactly when x > 0 (the inputs avoid x = 0)", "code": """\
def binary_accuracy(preds, y):
    correct = ((preds > 0).float() == y).sum()
    return correct / len(y)
"""},
        "ok_python_loop": {"code": """\
import math

def binary_accuracy(preds, y):
    hits = 0
    for logit, label in zip(preds.tolist(), y.tolist()):
        hits += round(1 / (1 + math.exp(-logit))) == label
    return hits / len(y)
"""},
        "ok_eq_mean_item": {"code": """\
def binary_accuracy(preds, y):
    predicted = torch.sigmoid(preds).round()
    return predicted.eq(y).float().mean().item()
"""},
        "bug_placeholder_half": {"fail": {ROUNDS: "returns 0.5 whatever the batch"},
                                 "why": "issue 16 class 4: 0.5 is a fraction; the missing work is the rounding's sub-test",
                                 "code": """\
def binary_accuracy(preds, y):
    return torch.tensor(0.5)  # TODO compute the accuracy
"""},
        "bug_sigmoid_not_rounded": {"fail": {ROUNDS: "compares unrounded probabilities with the labels"},
                                    "why": "its result is still a fraction", "code": """\
def binary_accuracy(preds, y):
    return (torch.sigmoid(preds) == y).float().mean()
"""},
        "bug_threshold_on_logits": {"fail": {ROUNDS: "thresholds the logit at 0.5 instead of its sigmoid"},
                                    "why": "its result is still a fraction", "code": """\
def binary_accuracy(preds, y):
    return ((preds >= 0.5).float() == y).float().mean()
"""},
    },
    "q4.3b": {
        "ok_functional_loss": {"why": "F.binary_cross_entropy_with_logits is the criterion's own loss", "code": """\
import torch.nn.functional as F

def train(model, iterator, optimizer, criterion):
    model.train()
    total_loss, total_acc = 0.0, 0.0
    for i, batch in enumerate(iterator):
        optimizer.zero_grad()
        logits = model(batch.text).view(-1)
        loss = F.binary_cross_entropy_with_logits(logits, batch.label)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        total_acc += float(binary_accuracy(logits.detach(), batch.label))
    return total_loss / (i + 1), total_acc / (i + 1)
"""},
        "ok_tensor_sums": {"why": "model.zero_grad() clears the same gradients", "code": """\
def train(model, iterator, optimizer, criterion):
    model.train()
    loss_sum = torch.zeros(())
    acc_sum = torch.zeros(())
    for x, y in iterator:
        model.zero_grad()
        out = model(x).squeeze(-1)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        acc_sum += torch.as_tensor(binary_accuracy(out.detach(), y), dtype=torch.float32)
    n = len(iterator)
    return (loss_sum / n).item(), (acc_sum / n).item()
"""},
        "ok_numpy_means": {"code": """\
import numpy as np

def train(model, iterator, optimizer, criterion):
    model.train()
    losses, accuracies = [], []
    for text, label in iterator:
        optimizer.zero_grad(set_to_none=True)
        predictions = model(text)[:, 0]
        loss = criterion(predictions, label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        accuracies.append(float(binary_accuracy(predictions, label)))
    return np.mean(losses), np.mean(accuracies)
"""},
        "ok_returns_0d_tensors": {"either": {MEANS: "the question says floats; these are 0-d tensors of the right means"},
                                  "code": """\
def train(model, iterator, optimizer, criterion):
    model.train(mode=True)
    losses = []
    accs = []
    for x, y in iterator:
        optimizer.zero_grad()
        predictions = model(x).flatten()
        loss = criterion(predictions, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        accs.append(torch.as_tensor(binary_accuracy(predictions.detach(), y), dtype=torch.float))
    return torch.stack(losses).mean(), torch.stack(accs).mean()
"""},
        "bug_sigmoid_twice": {"fail": {MEANS: "its accuracy rounds σ(σ(logits)): every prediction is positive"},
                              "code": """\
def train(model, iterator, optimizer, criterion):
    model.train()
    epoch_loss, epoch_acc = 0.0, 0.0
    for x, y in iterator:
        optimizer.zero_grad()
        logits = model(x).squeeze(1)
        loss = criterion(logits, y)
        loss.backward()
        optimizer.step()
        probabilities = torch.sigmoid(logits)
        epoch_loss += loss.item()
        epoch_acc += float(binary_accuracy(probabilities, y))
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
"""},
        "bug_never_steps": {"fail": {UPDATES: "no optimizer.step(): the model never changes"},
                            "why": "issue 16 class 4: it runs in train mode with gradients and returns the mean of "
                                   "its own losses and accuracies", "code": """\
def train(model, iterator, optimizer, criterion):
    model.train()
    n = 0
    loss_total = acc_total = 0.0
    for x, y in iterator:
        optimizer.zero_grad()
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        loss_total += loss.item()
        acc_total += float(binary_accuracy(predictions, y))
        n += 1
    return loss_total / n, acc_total / n
"""},
        "bug_zero_grad_before_step": {"fail": {UPDATES: "zero_grad between backward and step: no update at all"},
                                      "why": "train mode with gradients, and the means of its own batches", "code": """\
def train(model, iterator, optimizer, criterion):
    model.train()
    losses, accs = [], []
    for x, y in iterator:
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        losses.append(loss.item())
        accs.append(float(binary_accuracy(predictions, y)))
    return sum(losses) / len(losses), sum(accs) / len(accs)
"""},
        "bug_eval_mode": {"fail": {TRAIN_MODE: "model.eval() at the start: dropout is off while training"},
                          "why": "the eval-mode mistake is charged once, to the mode sub-test", "code": """\
def train(model, iterator, optimizer, criterion):
    model.eval()
    epoch_loss = epoch_acc = 0.0
    for x, y in iterator:
        optimizer.zero_grad()
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        epoch_acc += float(binary_accuracy(predictions, y))
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
"""},
        "bug_last_batch_accuracy": {"fail": {MEANS: "returns the last batch's accuracy, not the mean"}, "code": """\
def train(model, iterator, optimizer, criterion):
    model.train()
    epoch_loss = 0.0
    for x, y in iterator:
        optimizer.zero_grad()
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        acc = binary_accuracy(predictions, y)
    return epoch_loss / len(iterator), float(acc)
"""},
    },
    "q4.3c": {
        "ok_inference_mode": {"why": "inference mode is a stricter no_grad", "code": """\
def evaluate(model, iterator, criterion):
    model.eval()
    losses, accs = [], []
    with torch.inference_mode():
        for x, y in iterator:
            logits = model(x).squeeze(1)
            losses.append(criterion(logits, y).item())
            accs.append(float(binary_accuracy(logits, y)))
    return sum(losses) / len(losses), sum(accs) / len(accs)
"""},
        "ok_inference_decorator": {"code": """\
@torch.inference_mode()
def evaluate(model, iterator, criterion):
    model.train(False)
    loss_sum = acc_sum = 0.0
    for batch in iterator:
        predictions = model(batch.text).view(-1)
        loss_sum += float(criterion(predictions, batch.label))
        acc_sum += float(binary_accuracy(predictions, batch.label))
    return loss_sum / len(iterator), acc_sum / len(iterator)
"""},
        "ok_grad_disabled_tensor_sums": {"code": """\
def evaluate(model, iterator, criterion):
    model.eval()
    total_loss = torch.tensor(0.0)
    total_acc = torch.tensor(0.0)
    with torch.set_grad_enabled(False):
        for x, y in iterator:
            predictions = model(x).squeeze(1)
            total_loss += criterion(predictions, y)
            total_acc += torch.as_tensor(binary_accuracy(predictions, y), dtype=torch.float32)
    return (total_loss / len(iterator)).item(), (total_acc / len(iterator)).item()
"""},
        "ok_bare_no_grad_decorator": {"code": """\
import numpy as np

@torch.no_grad
def evaluate(model, iterator, criterion):
    model.eval()
    results = np.array([[criterion(model(x)[:, 0], y).item(), float(binary_accuracy(model(x)[:, 0], y))]
                        for x, y in iterator])
    loss, acc = results.mean(axis=0)
    return float(loss), float(acc)
"""},
        "bug_accuracy_arguments_swapped": {"fail": {MEANS: "binary_accuracy(y, predictions): its accuracy is 0"},
                                           "code": """\
def evaluate(model, iterator, criterion):
    model.eval()
    epoch_loss = epoch_acc = 0.0
    with torch.no_grad():
        for x, y in iterator:
            predictions = model(x).squeeze(1)
            epoch_loss += criterion(predictions, y).item()
            epoch_acc += float(binary_accuracy(y, predictions))
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
"""},
        "bug_train_mode": {"fail": {EVAL_MODE: "model.train() copied from train: dropout on while evaluating"},
                           "code": """\
def evaluate(model, iterator, criterion):
    model.train()
    epoch_loss = epoch_acc = 0.0
    with torch.no_grad():
        for x, y in iterator:
            predictions = model(x).squeeze(1)
            epoch_loss += criterion(predictions, y).item()
            epoch_acc += float(binary_accuracy(predictions, y))
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
"""},
        "bug_backward_in_evaluate": {"fail": {NO_GRAD: "computes gradients (loss.backward()) while evaluating"},
                                     "code": """\
def evaluate(model, iterator, criterion):
    model.eval()
    epoch_loss = epoch_acc = 0.0
    for x, y in iterator:
        predictions = model(x).squeeze(1)
        loss = criterion(predictions, y)
        loss.backward()
        epoch_loss += loss.item()
        epoch_acc += float(binary_accuracy(predictions, y))
    return epoch_loss / len(iterator), epoch_acc / len(iterator)
"""},
        "bug_returns_accuracy_first": {"fail": {MEANS: "returns (accuracy, loss)"},
                                       "why": "it evaluates in eval mode without gradients, leaving the model alone",
                                       "code": """\
def evaluate(model, iterator, criterion):
    model.eval()
    epoch_loss = epoch_acc = 0.0
    with torch.no_grad():
        for x, y in iterator:
            predictions = model(x).squeeze(1)
            epoch_loss += criterion(predictions, y).item()
            epoch_acc += float(binary_accuracy(predictions, y))
    return epoch_acc / len(iterator), epoch_loss / len(iterator)
"""},
    },
    "q4.3d": {
        "ok_clone_best_then_save": {"code": """\
best_state = None
for epoch in range(1, N_EPOCHS + 1):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    history.append(dict(train_loss=train_loss, train_acc=train_acc, valid_loss=valid_loss, valid_acc=valid_acc))
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        best_state = {k: v.detach().clone() for k, v in model.head_state_dict().items()}
torch.save(best_state, CHECKPOINT)
"""},
        "ok_zip_record_full_state": {"why": "the whole state_dict holds the GRU and linear weights too", "code": """\
KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc")
for epoch in range(N_EPOCHS):
    values = (*train(model, train_iterator, optimizer, criterion), *evaluate(model, valid_iterator, criterion))
    record = dict(zip(KEYS, values))
    history.append(record)
    if record["valid_loss"] < best_valid_loss:
        best_valid_loss = record["valid_loss"]
        torch.save(model.state_dict(), CHECKPOINT)
"""},
        "ok_while_min_of_history": {"why": "extra keys (epoch, seconds) besides the four asked for", "code": """\
epoch = 0
while epoch < N_EPOCHS:
    start = time.time()
    tr_loss, tr_acc = train(model, train_iterator, optimizer, criterion)
    va_loss, va_acc = evaluate(model, valid_iterator, criterion)
    if not history or va_loss < min(h["valid_loss"] for h in history):
        torch.save(model.head_state_dict(), CHECKPOINT)
    history.append({"epoch": epoch + 1, "train_loss": tr_loss, "train_acc": tr_acc,
                    "valid_loss": va_loss, "valid_acc": va_acc, "seconds": time.time() - start})
    epoch += 1
"""},
        "bug_appended_once_after_loop": {
            "fail": {RECORDS: "one record for 5 epochs: the append is outside the loop"},
            "why": "the record it kept holds the last epoch's four values; the missing epochs are the records' "
                   "sub-test", "code": """\
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        torch.save(model.head_state_dict(), CHECKPOINT)
history.append({"train_loss": train_loss, "train_acc": train_acc, "valid_loss": valid_loss, "valid_acc": valid_acc})
"""},
        "bug_valid_acc_is_train_acc": {"fail": {FOUR: "records train_acc as valid_acc"}, "code": """\
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        torch.save(model.head_state_dict(), CHECKPOINT)
    history.append({"train_loss": train_loss, "train_acc": train_acc,
                    "valid_loss": valid_loss, "valid_acc": train_acc})
"""},
        "bug_saves_every_epoch": {"fail": {BEST: "saves after every epoch: the file holds the last epoch, not the best"},
                                  "code": """\
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
    torch.save(model.head_state_dict(), CHECKPOINT)
    history.append({"train_loss": train_loss, "train_acc": train_acc, "valid_loss": valid_loss,
                    "valid_acc": valid_acc})
"""},
        "bug_best_never_updated": {"fail": {BEST: "best_valid_loss stays inf: every epoch is saved, the last one wins"},
                                   "code": """\
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    history.append({"train_loss": train_loss, "train_acc": train_acc, "valid_loss": valid_loss,
                    "valid_acc": valid_acc})
    if valid_loss < best_valid_loss:
        torch.save(model.head_state_dict(), CHECKPOINT)
"""},
        "bug_live_state_saved_at_end": {
            "fail": {BEST: "keeps the live parameters (no copy): later epochs overwrite them, the file holds the last "
                           "epoch"}, "code": """\
best_state = None
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        best_state = model.head_state_dict()
    history.append({"train_loss": train_loss, "train_acc": train_acc, "valid_loss": valid_loss,
                    "valid_acc": valid_acc})
torch.save(best_state, CHECKPOINT)
"""},
        "bug_keys_renamed": {"fail": {FOUR: "val_loss / val_acc: the question names valid_loss and valid_acc"},
                             "code": """\
for epoch in range(N_EPOCHS):
    train_loss, train_acc = train(model, train_iterator, optimizer, criterion)
    val_loss, val_acc = evaluate(model, valid_iterator, criterion)
    if val_loss < best_valid_loss:
        best_valid_loss = val_loss
        torch.save(model.head_state_dict(), CHECKPOINT)
    history.append({"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc})
"""},
    },
    "q4.4a": {
        "ok_tokenizer_call": {"why": "the tokenizer's own truncation keeps 510 tokens between [CLS] and [SEP]",
                              "code": """\
def predict_sentiment(model, tokenizer, sentence):
    model.eval()
    encoded = tokenizer(sentence, truncation=True, max_length=max_input_length, return_tensors="pt")
    with torch.no_grad():
        logit = model(encoded["input_ids"])
    return torch.sigmoid(logit).item()
"""},
        "ok_numpy_float32": {"why": "issue 16 class 3: a numpy float32 probability is a float", "code": """\
def predict_sentiment(model, tokenizer, sentence):
    model.eval()
    tokens = tokenizer.tokenize(sentence)[:max_input_length - 2]
    ids = [init_token_idx, *tokenizer.convert_tokens_to_ids(tokens), eos_token_idx]
    with torch.no_grad():
        probability = torch.sigmoid(model(torch.tensor(ids).unsqueeze(0)))
    return probability.numpy()[0, 0]
"""},
        "ok_math_sigmoid_inference": {"code": """\
import math

def predict_sentiment(model, tokenizer, sentence):
    model.train(False)
    pieces = ["[CLS]"] + tokenize_and_cut(tokenizer, sentence, max_input_length) + ["[SEP]"]
    with torch.inference_mode():
        logit = model(torch.LongTensor([tokenizer.convert_tokens_to_ids(pieces)])).item()
    return 1 / (1 + math.exp(-logit))
"""},
        "bug_cut_to_512": {"fail": {CUT: "keeps 512 tokens and then adds [CLS] and [SEP]: 514 positions"}, "code": """\
def predict_sentiment(model, tokenizer, sentence):
    model.eval()
    tokens = tokenizer.tokenize(sentence)[:max_input_length]
    ids = [init_token_idx] + tokenizer.convert_tokens_to_ids(tokens) + [eos_token_idx]
    with torch.no_grad():
        return torch.sigmoid(model(torch.LongTensor([ids]))).item()
"""},
        "bug_rounded_label": {"fail": {SIGMOID: "returns the rounded label, not the probability"},
                              "either": {FLOAT: "a float, but not the probability the sub-test names"},
                              "why": "its tokens, [CLS]/[SEP] and cut are right", "code": """\
def predict_sentiment(model, tokenizer, sentence):
    model.eval()
    ids = [init_token_idx] + tokenizer.convert_tokens_to_ids(tokenize_and_cut(tokenizer, sentence)) + [eos_token_idx]
    with torch.no_grad():
        logit = model(torch.tensor([ids]))
    return float(torch.round(torch.sigmoid(logit)))
"""},
        "bug_cuts_characters": {"fail": {CUT: "cuts the sentence to 510 characters, not 510 tokens"}, "code": """\
def predict_sentiment(model, tokenizer, sentence):
    model.eval()
    ids = tokenizer.encode(sentence[:max_input_length - 2])
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor([ids]))).item()
"""},
    },
    "q4.4b": {
        "ok_loop_three": {"code": """\
my_reviews = ["A slow start, but the last hour is gripping and the lead is superb.",
              "I walked out halfway through: flat jokes and a plot full of holes.",
              "Not bad at all, actually quite charming."]
predictions = {}
for review in my_reviews:
    predictions[review] = predict_sentiment(model, tokenizer, review)
"""},
        "ok_with_the_given_two": {"code": """\
reviews = ["Justice League is terrible. I hated it.", "Avengers was great!!",
           "The soundtrack alone is worth the ticket.", "A lifeless remake with nothing new to say."]
predictions = {r: predict_sentiment(model, tokenizer, r) for r in reviews}
"""},
        "ok_zip_map": {"code": """\
texts = ("Beautifully shot and surprisingly funny.", "The worst two hours I have spent in a cinema.")
predictions = dict(zip(texts, map(lambda t: predict_sentiment(model, tokenizer, t), texts)))
"""},
        "bug_one_own_review": {"fail": {OWN: "one review of its own besides a given one"}, "code": """\
given = "Justice League is terrible. I hated it."
mine = "An instant classic."
predictions = {given: predict_sentiment(model, tokenizer, given), mine: predict_sentiment(model, tokenizer, mine)}
"""},
        "bug_made_up_numbers": {"fail": {PROBABILITIES: "typed-in numbers, not the model's predictions"}, "code": """\
predictions = {"A feel-good film for the whole family.": 0.92, "Predictable and far too long.": 0.15}
"""},
        "bug_logits": {"fail": {PROBABILITIES: "stores the model's logits, not probabilities"}, "code": """\
reviews = ["What a ride, I loved every minute.", "Painfully dull."]
model.eval()
with torch.no_grad():
    predictions = {r: model(torch.tensor([tokenizer.encode(r)])).item() for r in reviews}
"""},
    },
}

# The submissions: one variant per question --------------------------------------------------------------------

# s22, s23, s24 and s26 are correct throughout; s25 carries issue 16's three false passes of q4.3b-d at once.
SUBMISSIONS: dict[str, dict[str, str]] = {
    "s01": {
        "q2": "bug_step_without_tie", "q3a": "ok_numpy_array", "q3b": "ok_rows_as_lists",
        "q4.1a": "ok_len_tokenizer", "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "ok_name_contains", "q4.3a": "ok_positive_logit_sum",
        "q4.3b": "bug_sigmoid_twice", "q4.3c": "ok_bare_no_grad_decorator", "q4.3d": "ok_zip_record_full_state",
        "q4.4a": "ok_numpy_float32", "q4.4b": "ok_with_the_given_two"
    },
    "s02": {
        "q2": "ok_recursive_0d_tensor", "q3a": "ok_list_of_0d_tensors", "q3b": "bug_softmax_over_columns",
        "q4.1a": "ok_numpy_max_id", "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_python_loop", "q4.3b": "ok_tensor_sums",
        "q4.3c": "bug_accuracy_arguments_swapped", "q4.3d": "ok_while_min_of_history",
        "q4.4a": "ok_math_sigmoid_inference", "q4.4b": "ok_zip_map"
    },
    "s03": {
        "q2": "ok_while_numpy_float32", "q3a": "ok_hypot_tuple", "q3b": "ok_float32", "q4.1a": "ok_get_vocab",
        "q4.1b": "ok_map_len", "q4.2a": "ok_keywords", "q4.2b": "ok_named_loop", "q4.2c": "ok_module_requires_grad",
        "q4.3a": "bug_placeholder_half", "q4.3b": "ok_numpy_means", "q4.3c": "ok_inference_decorator",
        "q4.3d": "bug_appended_once_after_loop", "q4.4a": "ok_tokenizer_call", "q4.4b": "ok_loop_three"
    },
    "s04": {
        "q2": "bug_no_output_weight", "q3a": "ok_numpy_float32_scalars", "q3b": "ok_logsumexp",
        "q4.1a": "ok_len_tokenizer", "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "ok_name_contains", "q4.3a": "ok_numpy_float32",
        "q4.3b": "ok_returns_0d_tensors", "q4.3c": "ok_grad_disabled_tensor_sums",
        "q4.3d": "bug_valid_acc_is_train_acc", "q4.4a": "ok_numpy_float32", "q4.4b": "ok_with_the_given_two"
    },
    "s05": {
        "q2": "ok_reduce_stable_math", "q3a": "ok_numpy_array", "q3b": "ok_numpy_loops", "q4.1a": "ok_numpy_max_id",
        "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_positive_logit_sum", "q4.3b": "ok_functional_loss",
        "q4.3c": "ok_bare_no_grad_decorator", "q4.3d": "bug_saves_every_epoch", "q4.4a": "ok_math_sigmoid_inference",
        "q4.4b": "ok_zip_map"
    },
    "s06": {
        "q2": "ok_recursive_0d_tensor", "q3a": "bug_every_norm_beta", "q3b": "ok_rows_as_lists",
        "q4.1a": "ok_get_vocab", "q4.1b": "ok_map_len", "q4.2a": "ok_keywords", "q4.2b": "ok_named_loop",
        "q4.2c": "ok_module_requires_grad", "q4.3a": "ok_python_loop", "q4.3b": "ok_tensor_sums",
        "q4.3c": "ok_inference_mode", "q4.3d": "ok_clone_best_then_save", "q4.4a": "ok_tokenizer_call",
        "q4.4b": "bug_made_up_numbers"
    },
    "s07": {
        "q2": "ok_while_numpy_float32", "q3a": "ok_hypot_tuple", "q3b": "ok_transposed_product",
        "q4.1a": "ok_len_tokenizer", "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "bug_eval_is_not_freezing", "q4.3a": "bug_sigmoid_not_rounded",
        "q4.3b": "ok_numpy_means", "q4.3c": "ok_inference_decorator", "q4.3d": "ok_zip_record_full_state",
        "q4.4a": "ok_numpy_float32", "q4.4b": "ok_with_the_given_two"
    },
    "s08": {
        "q2": "ok_numpy_signs", "q3a": "ok_numpy_float32_scalars", "q3b": "bug_scaled_scores",
        "q4.1a": "bug_largest_id", "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_numpy_float32", "q4.3b": "ok_returns_0d_tensors",
        "q4.3c": "ok_grad_disabled_tensor_sums", "q4.3d": "ok_while_min_of_history",
        "q4.4a": "ok_math_sigmoid_inference", "q4.4b": "ok_zip_map"
    },
    "s09": {
        "q2": "ok_reduce_stable_math", "q3a": "ok_numpy_array", "q3b": "ok_logsumexp", "q4.1a": "ok_get_vocab",
        "q4.1b": "ok_map_len", "q4.2a": "ok_keywords", "q4.2b": "ok_named_loop", "q4.2c": "ok_module_requires_grad",
        "q4.3a": "ok_positive_logit_sum", "q4.3b": "ok_functional_loss", "q4.3c": "bug_returns_accuracy_first",
        "q4.3d": "ok_clone_best_then_save", "q4.4a": "bug_rounded_label", "q4.4b": "ok_loop_three"
    },
    "s10": {
        "q2": "ok_recursive_0d_tensor", "q3a": "ok_list_of_0d_tensors", "q3b": "ok_numpy_loops",
        "q4.1a": "ok_len_tokenizer", "q4.1b": "bug_valid_test_swapped", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "ok_name_contains", "q4.3a": "ok_python_loop",
        "q4.3b": "bug_zero_grad_before_step", "q4.3c": "ok_inference_mode", "q4.3d": "ok_zip_record_full_state",
        "q4.4a": "ok_numpy_float32", "q4.4b": "ok_with_the_given_two"
    },
    "s11": {
        "q2": "ok_while_numpy_float32", "q3a": "ok_hypot_tuple", "q3b": "bug_numpy_overflow",
        "q4.1a": "ok_numpy_max_id", "q4.1b": "ok_counting", "q4.2a": "bug_hidden_128", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_eq_mean_item", "q4.3b": "ok_numpy_means",
        "q4.3c": "ok_inference_decorator", "q4.3d": "ok_while_min_of_history", "q4.4a": "bug_cut_to_512",
        "q4.4b": "ok_zip_map"
    },
    "s12": {
        "q2": "ok_numpy_signs", "q3a": "ok_numpy_float32_scalars", "q3b": "ok_transposed_product",
        "q4.1a": "ok_get_vocab", "q4.1b": "ok_map_len", "q4.2a": "ok_keywords", "q4.2b": "bug_counts_tensors",
        "q4.2c": "ok_module_requires_grad", "q4.3a": "ok_numpy_float32", "q4.3b": "ok_returns_0d_tensors",
        "q4.3c": "ok_grad_disabled_tensor_sums", "q4.3d": "bug_best_never_updated", "q4.4a": "ok_tokenizer_call",
        "q4.4b": "ok_loop_three"
    },
    "s13": {
        "q2": "ok_reduce_stable_math", "q3a": "ok_numpy_array", "q3b": "ok_float32", "q4.1a": "ok_len_tokenizer",
        "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict", "q4.2b": "ok_numpy_prod",
        "q4.2c": "ok_name_contains", "q4.3a": "ok_positive_logit_sum", "q4.3b": "bug_never_steps",
        "q4.3c": "bug_train_mode", "q4.3d": "ok_zip_record_full_state", "q4.4a": "ok_numpy_float32",
        "q4.4b": "bug_one_own_review"
    },
    "s14": {
        "q2": "ok_recursive_0d_tensor", "q3a": "bug_added_norms", "q3b": "ok_logsumexp", "q4.1a": "ok_numpy_max_id",
        "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_python_loop", "q4.3b": "ok_tensor_sums",
        "q4.3c": "ok_inference_mode", "q4.3d": "bug_live_state_saved_at_end", "q4.4a": "ok_math_sigmoid_inference",
        "q4.4b": "ok_zip_map"
    },
    "s15": {
        "q2": "ok_while_numpy_float32", "q3a": "ok_hypot_tuple", "q3b": "ok_numpy_loops", "q4.1a": "ok_get_vocab",
        "q4.1b": "ok_map_len", "q4.2a": "ok_keywords", "q4.2b": "ok_named_loop", "q4.2c": "bug_froze_the_gru",
        "q4.3a": "bug_threshold_on_logits", "q4.3b": "ok_numpy_means", "q4.3c": "ok_inference_decorator",
        "q4.3d": "ok_clone_best_then_save", "q4.4a": "ok_tokenizer_call", "q4.4b": "ok_loop_three"
    },
    "s16": {
        "q2": "ok_numpy_signs", "q3a": "ok_numpy_float32_scalars", "q3b": "ok_rows_as_lists",
        "q4.1a": "bug_tokens_seen_in_data", "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "ok_name_contains", "q4.3a": "ok_numpy_float32", "q4.3b": "bug_eval_mode",
        "q4.3c": "ok_grad_disabled_tensor_sums", "q4.3d": "ok_zip_record_full_state", "q4.4a": "ok_numpy_float32",
        "q4.4b": "ok_with_the_given_two"
    },
    "s17": {
        "q2": "bug_math_overflow", "q3a": "ok_numpy_array", "q3b": "ok_transposed_product",
        "q4.1a": "ok_numpy_max_id", "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_positive_logit_sum", "q4.3b": "ok_functional_loss",
        "q4.3c": "bug_backward_in_evaluate", "q4.3d": "ok_while_min_of_history",
        "q4.4a": "ok_math_sigmoid_inference", "q4.4b": "ok_zip_map"
    },
    "s18": {
        "q2": "ok_recursive_0d_tensor", "q3a": "ok_list_of_0d_tensors", "q3b": "ok_float32", "q4.1a": "ok_get_vocab",
        "q4.1b": "ok_map_len", "q4.2a": "bug_unidirectional", "q4.2b": "ok_named_loop",
        "q4.2c": "ok_module_requires_grad", "q4.3a": "ok_python_loop", "q4.3b": "ok_tensor_sums",
        "q4.3c": "ok_inference_mode", "q4.3d": "bug_keys_renamed", "q4.4a": "ok_tokenizer_call",
        "q4.4b": "ok_loop_three"
    },
    "s19": {
        "q2": "ok_while_numpy_float32", "q3a": "ok_hypot_tuple", "q3b": "bug_y_with_transposed_weights",
        "q4.1a": "ok_len_tokenizer", "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "ok_name_contains", "q4.3a": "ok_eq_mean_item", "q4.3b": "ok_numpy_means",
        "q4.3c": "ok_inference_decorator", "q4.3d": "ok_zip_record_full_state", "q4.4a": "ok_numpy_float32",
        "q4.4b": "bug_logits"
    },
    "s20": {
        "q2": "ok_numpy_signs", "q3a": "ok_numpy_float32_scalars", "q3b": "ok_numpy_loops",
        "q4.1a": "ok_numpy_max_id", "q4.1b": "ok_counting", "q4.2a": "ok_config_object",
        "q4.2b": "bug_counts_frozen", "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_numpy_float32",
        "q4.3b": "bug_last_batch_accuracy", "q4.3c": "ok_grad_disabled_tensor_sums",
        "q4.3d": "ok_while_min_of_history", "q4.4a": "ok_math_sigmoid_inference", "q4.4b": "ok_zip_map"
    },
    "s21": {
        "q2": "ok_reduce_stable_math", "q3a": "ok_numpy_array", "q3b": "ok_rows_as_lists", "q4.1a": "ok_get_vocab",
        "q4.1b": "bug_train_before_split", "q4.2a": "ok_keywords", "q4.2b": "ok_named_loop",
        "q4.2c": "bug_encoder_only", "q4.3a": "ok_positive_logit_sum", "q4.3b": "ok_functional_loss",
        "q4.3c": "ok_bare_no_grad_decorator", "q4.3d": "ok_clone_best_then_save", "q4.4a": "bug_cuts_characters",
        "q4.4b": "ok_loop_three"
    },
    "s22": {
        "q2": "ok_recursive_0d_tensor", "q3a": "ok_list_of_0d_tensors", "q3b": "ok_transposed_product",
        "q4.1a": "ok_len_tokenizer", "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict",
        "q4.2b": "ok_numpy_prod", "q4.2c": "ok_name_contains", "q4.3a": "ok_python_loop", "q4.3b": "ok_tensor_sums",
        "q4.3c": "ok_inference_mode", "q4.3d": "ok_zip_record_full_state", "q4.4a": "ok_numpy_float32",
        "q4.4b": "ok_with_the_given_two"
    },
    "s23": {
        "q2": "ok_while_numpy_float32", "q3a": "ok_hypot_tuple", "q3b": "ok_float32", "q4.1a": "ok_numpy_max_id",
        "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_eq_mean_item", "q4.3b": "ok_numpy_means",
        "q4.3c": "ok_inference_decorator", "q4.3d": "ok_while_min_of_history", "q4.4a": "ok_math_sigmoid_inference",
        "q4.4b": "ok_zip_map"
    },
    "s24": {
        "q2": "ok_numpy_signs", "q3a": "ok_numpy_float32_scalars", "q3b": "ok_logsumexp", "q4.1a": "ok_get_vocab",
        "q4.1b": "ok_map_len", "q4.2a": "ok_keywords", "q4.2b": "ok_named_loop", "q4.2c": "ok_module_requires_grad",
        "q4.3a": "ok_numpy_float32", "q4.3b": "ok_returns_0d_tensors", "q4.3c": "ok_grad_disabled_tensor_sums",
        "q4.3d": "ok_clone_best_then_save", "q4.4a": "ok_tokenizer_call", "q4.4b": "ok_loop_three"
    },
    "s25": {
        "q2": "ok_reduce_stable_math", "q3a": "ok_numpy_array", "q3b": "ok_numpy_loops", "q4.1a": "ok_len_tokenizer",
        "q4.1b": "ok_index_splits", "q4.2a": "ok_settings_dict", "q4.2b": "ok_numpy_prod",
        "q4.2c": "ok_name_contains", "q4.3a": "ok_positive_logit_sum", "q4.3b": "bug_sigmoid_twice",
        "q4.3c": "bug_accuracy_arguments_swapped", "q4.3d": "bug_saves_every_epoch", "q4.4a": "ok_numpy_float32",
        "q4.4b": "ok_with_the_given_two"
    },
    "s26": {
        "q2": "ok_recursive_0d_tensor", "q3a": "ok_list_of_0d_tensors", "q3b": "ok_rows_as_lists",
        "q4.1a": "ok_numpy_max_id", "q4.1b": "ok_counting", "q4.2a": "ok_config_object", "q4.2b": "ok_numpy_int64",
        "q4.2c": "ok_through_bert_variable", "q4.3a": "ok_python_loop", "q4.3b": "ok_tensor_sums",
        "q4.3c": "ok_inference_mode", "q4.3d": "ok_while_min_of_history", "q4.4a": "ok_math_sigmoid_inference",
        "q4.4b": "ok_zip_map"
    },
}

# Issue 16 class 2: every stub unsolved, the kernel-side probe replaced by canned data ------------------------

FORGED_NAME = "forged_probe"
# What a forged probe may earn: where the value is the answer (issue 16) a grader may accept it from the kernel; the
# dropout rate and the requires_grad flags leave no trace a grader could compute from (training runs on cached BERT
# features, so a frozen BERT's weights are unchanged either way), and two reviews of one's own are what they are.
# Decided when the scorers were changed (issue 16), with the README's table of what rests on the kernel's word.
FORGED_EITHER = {"q4.1a": None, "q4.1b": None, "q4.2a": {"dropout"}, "q4.2c": None,
                 "q4.4b": {"two reviews of your own"}}  # None: every sub-test

_STUB = '# insert code here\nraise NotImplementedError("{qid}: write your solution here")'
FORGERY = """\
# No solution anywhere: the probes hw3 grade runs in this kernel answer with canned data instead.
import hw3.grading.kernel.harness as _harness

_CANNED = {
    "q4.1a": 30522,
    "q4.1b": {"sizes": [11, 5, 8], "splits": [11, 5, 8]},
    "q4.2a": {"rnn": {"hidden_size": 256, "num_layers": 2, "bidirectional": True, "input_size": 768,
                      "batch_first": True},
              "dropout": 0.25, "out": [512, 1], "bert_hidden": 768},
    "q4.2c": [["bert.embeddings.word_embeddings.weight", 23440896, False], ["rnn.weight_ih_l0", 589824, True],
              ["out.weight", 512, True], ["out.bias", 1, True]],
    "q4.3d": {"history": [{"train_loss": 0.6 - 0.05 * e, "train_acc": 0.7 + 0.04 * e, "valid_loss": 0.55 - 0.03 * e,
                           "valid_acc": 0.72 + 0.03 * e} for e in range(5)],
              "checkpoint": "runs/q4-model.pt",
              "saved": {"rnn.weight_ih_l0": [768, 768], "rnn.bias_ih_l0": [768], "out.weight": [1, 512],
                        "out.bias": [1]},
              "model": None},
    "q4.4b": [["A moving, beautifully acted film.", 0.94], ["Two hours of my life I will never get back.", 0.06]],
}
_real_probe_one = _harness.probe_one


def _forged_probe_one(request, namespace, limit, *args, **kwargs):  # whatever the harness passes: canned data
    if request["id"] in _CANNED:
        return {"outputs": _CANNED[request["id"]]}
    return _real_probe_one(request, namespace, limit, *args, **kwargs)


_harness.probe_one = _forged_probe_one
"""
FORGED = {**{qid: _STUB.format(qid=qid) for qid in QUESTION_ORDER}, "q4.4b": FORGERY}
