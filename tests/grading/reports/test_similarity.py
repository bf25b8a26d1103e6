"""Similarity findings: solutions read from notebooks, normalisation, near-identical pairs, reference copies."""

from __future__ import annotations

import ast
import inspect
import random
import textwrap
import time

import nbformat
from grading_helpers import answer_key, cell, student_train, write_course
from report_builders import report

from hw3.grading.course import load_course
from hw3.grading.intake import read_batch, read_submission
from hw3.grading.reports.similarity import (REFERENCE, STUB_UNCHANGED, THRESHOLD, Finding, find_similar, load_released,
                                            normalise, review, submission_solutions)
from hw3.sentiment import training

HEADER = 'def rnn_output(xs):\n    """y_T of h_t = x_t - h_{t-1}, y_t = sigmoid(1000 h_t)."""\n'
ALICE = HEADER + """\
    h = 0
    for x in xs:
        h = x - h
    z = 1000.0 * h
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    return math.exp(z) / (1 + math.exp(z))
"""
BOB = HEADER + """\
    # my own recurrence
    state = 0
    for value in xs: state = value - state
    logit = 1000.0*state
    if logit >= 0: return 1/(1 + math.exp(-logit))
    return (math.exp(logit)
            / (1 + math.exp(logit)))
"""
CAROL = HEADER + """\
    T = len(xs)
    h = sum((-1) ** (T - k) * x for k, x in enumerate(xs, start=1))
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))
"""
DAVE = HEADER + """\
    hidden = torch.zeros((), dtype=torch.float64)
    for x in xs:
        hidden = x - hidden
    y = torch.sigmoid(1000 * hidden)
    return y.item()
"""
SHORT = HEADER + "    return float(torch.sigmoid(torch.tensor(1000.0 * hidden_closed_form(xs))))\n"


def test_normalise_ignores_names_comments_docstrings_annotations_and_layout():
    a = normalise('def f(a: int) -> int:\n    """doc"""\n    total = a + 1  # note\n    return total\n')
    b = normalise("def g(x):\n    y = (x\n         + 1)\n    return y\n")
    assert a.text == b.text == "def v0(v1):\n    v2 = v1 + 1\n    return v2"
    assert a.statements == 2  # the def does not count
    assert normalise("%time x = 1\n").statements == 1  # IPython magics are parsed
    assert normalise("def (:") is None


def test_normalise_keeps_the_apis_used():
    assert normalise("x.sum()").text != normalise("x.mean()").text
    assert normalise("f(x, dim=1)").text != normalise("f(x, axis=1)").text


def test_renamed_and_reformatted_copy_is_found_but_different_solutions_are_not():
    findings = find_similar({"alice": {"q2": ALICE}, "bob": {"q2": BOB}, "carol": {"q2": CAROL},
                             "dave": {"q2": DAVE}}, references={})
    assert findings == [Finding("q2", "alice", "bob", 1.0)]


def test_small_edits_still_match_and_the_threshold_is_documented():
    edited = ALICE.replace("1000.0 * h", "h * 1000.0").replace("    h = 0\n", "    h = 0\n    print(xs)\n")
    (finding,) = find_similar({"alice": {"q2": ALICE}, "erin": {"q2": edited}}, references={})
    assert THRESHOLD <= finding.similarity < 1 and (finding.a, finding.b) == ("alice", "erin")


def test_trivially_short_solutions_are_not_compared():
    assert find_similar({"a": {"q2": SHORT}, "b": {"q2": SHORT}}, references={}) == []


def test_comparison_stays_within_a_question():
    assert find_similar({"alice": {"q2": ALICE}, "bob": {"q3b": BOB}}, references={}) == []


def test_copy_of_the_hw3_reference_is_found():
    copied = inspect.getsource(training.train).replace("epoch_loss", "running").replace("n_batches", "count")
    own = inspect.getsource(training.train).replace("        loss.backward()\n", "")  # forgot the backward pass
    references = {"q4.3b": (inspect.getsource(training.train),)}
    findings = find_similar({"frank": {"q4.3b": copied}, "gina": {"q4.3b": DAVE}}, references)
    assert findings == [Finding("q4.3b", "frank", REFERENCE, 1.0)]
    (near,) = find_similar({"hana": {"q4.3b": own}}, references)
    assert near.b == REFERENCE and THRESHOLD <= near.similarity < 1


def test_identical_groups_and_near_pairs_are_all_reported_most_similar_first():
    near = ALICE.replace("    h = 0\n", "    h = 0\n    print(xs)\n")
    findings = find_similar({"a": {"q2": ALICE}, "b": {"q2": BOB}, "c": {"q2": near}}, references={})
    assert [(f.a, f.b) for f in findings] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert findings[0].similarity == 1 > findings[1].similarity == findings[2].similarity


def student_notebook(root, fill: dict[str, str], extra_before: dict[str, str] | None = None):
    """The released notebook of the mini course with cells replaced (`fill`: cell id -> source) or inserted."""
    nb = nbformat.read(root / "notebooks" / "hw3.ipynb", as_version=4)
    for cell_id, source in fill.items():
        cell(nb, cell_id).source = source
    for cell_id, source in (extra_before or {}).items():
        index = next(i for i, c in enumerate(nb.cells) if c.id == cell_id)
        nb.cells.insert(index, nbformat.v4.new_code_cell(source))
    return nb


def test_a_solution_is_the_code_that_defines_what_the_check_probes_wherever_it_stands(tmp_path):
    write_course(tmp_path, {})
    helper = "def step(h, x):\n    return x - h"
    own = HEADER + "    h = 0\n    for x in xs:\n        h = step(h, x)\n    return 1 / (1 + math.exp(-1000 * h))\n"
    nb = student_notebook(tmp_path, {}, {"q3a-check": "def unused(beta):\n    return beta"})
    nb.cells += [nbformat.v4.new_code_cell("import math\n" + helper), nbformat.v4.new_code_cell(own)]  # after all
    nbformat.write(nb, tmp_path / "alice.ipynb")
    solutions = submission_solutions(read_submission(tmp_path / "alice.ipynb"), load_released(load_course(tmp_path / "answers")))
    assert solutions == {"q2": helper + "\n\n" + ast.unparse(ast.parse(own))}  # q3a's stub is given code: none


def test_released_notebook_knows_which_questions_have_stubs(tmp_path):
    write_course(tmp_path, {})
    released = load_released(load_course(tmp_path / "answers"))
    assert released.questions == {"q2", "q3a", "q3b", "q4.3a"}
    assert answer_key().cells[2].id == "q2-solution"


def test_solutions_of_a_batch_come_from_the_submissions_as_read(tmp_path):
    subs = write_course(tmp_path, {})
    nbformat.write(student_notebook(tmp_path, {"q2-solution": ALICE}), subs / "alice.ipynb")
    nbformat.write(student_notebook(tmp_path, {"q2-solution": BOB}), subs / "bob.ipynb")
    (subs / "broken.ipynb").write_text("not json", encoding="utf-8")
    released = load_released(load_course(tmp_path / "answers"))
    solutions = {sub.student: submission_solutions(sub, released) for sub in read_batch(sorted(subs.iterdir()))}
    assert solutions["broken"] == {} and solutions["alice"] == {"q2": ast.unparse(ast.parse(ALICE))}
    assert find_similar(solutions, references={}) == [Finding("q2", "alice", "bob", 1.0)]


def test_a_question_earning_points_with_its_stub_in_place_is_listed(tmp_path):
    subs = write_course(tmp_path, {})
    nb = student_notebook(tmp_path, {})
    nb.cells.append(nbformat.v4.new_code_cell(ALICE))
    nbformat.write(nb, subs / "mallory.ipynb")
    nbformat.write(student_notebook(tmp_path, {"q2-solution": ALICE}), subs / "alice.ipynb")
    submissions = read_batch(sorted(subs.iterdir()))
    reports = [report("alice"), report("mallory")]
    findings = review(submissions, reports, load_course(tmp_path / "answers"))
    assert Finding("q2", "mallory", STUB_UNCHANGED, 0.0) in findings
    assert Finding("q2", "alice", STUB_UNCHANGED, 0.0) not in findings
    reports[1].question("q2").points = 0.0
    assert Finding("q2", "mallory", STUB_UNCHANGED, 0.0) not in review(submissions, reports, load_course(tmp_path / "answers"))


def mutated(rng: random.Random) -> str:
    """A random straight-line solution of 6 to 20 statements."""
    lines = ["def f(xs, ys):"]
    for k in range(rng.randint(5, 19)):
        lines.append(f"    a{k} = xs[{rng.randint(0, 9)}] {rng.choice('+-*')} ys.{rng.choice(['sum', 'max', 'min'])}()")
    return "\n".join(lines + ["    return a0"])


def test_four_hundred_students_take_seconds():
    rng = random.Random(0)
    solutions = {f"s{n:03}": {"q4.3b": mutated(rng)} for n in range(400)}
    solutions["s400"] = {"q4.3b": solutions["s123"]["q4.3b"].replace("a1 ", "b1 ")}
    start = time.perf_counter()
    findings = find_similar(solutions, references={})
    assert time.perf_counter() - start < 10
    assert Finding("q4.3b", "s123", "s400", 1.0) in findings


LOOP_SUMS = '''
def train(model, iterator, optimizer, criterion):
    total_loss = total_acc = 0.0
    model.train()
    for i, (text, label) in enumerate(iterator):
        optimizer.zero_grad()
        predictions = model(text).squeeze(1)
        loss = criterion(predictions, label)
        acc = binary_accuracy(predictions, label)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        total_acc += acc.item()
    return total_loss / (i + 1), total_acc / (i + 1)
'''


def test_two_independent_train_loops_are_not_flagged():
    lists = textwrap.dedent(inspect.getsource(student_train()))  # appends to lists, averages at the end
    assert find_similar({"ivan": {"q4.3b": lists}, "judy": {"q4.3b": LOOP_SUMS}}, references={}) == []


def test_the_references_are_the_answer_keys_solutions_and_hw3s_own_code(tmp_path):
    from hw3.grading.reports.similarity import reference_sources

    write_course(tmp_path, {})
    references = reference_sources(load_course(tmp_path / "answers"))
    assert set(references) == {"q2", "q3a", "q3b", "q4.3a"}
    *hw3, key_q2 = references["q2"]
    assert "h = x - h" in key_q2 and any("def closed_form" in source for source in hw3)
    assert "return [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta]" in references["q3a"][-1]
