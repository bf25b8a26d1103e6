"""The README's recipe for a new exercise, followed on the mini course: q3d ("the attention weights' row sums"), a
solution cell and a check cell in the answer key and one [[question]] in questions.toml, no Python. `hw3 assign`
releases it, `hw3 assign --check` passes, the notebook's check and `hw3 grade` score a right and a wrong
submission."""

from __future__ import annotations

import json

import nbformat
import pytest
from grading_helpers import answer_key, hw3, rows, write_answers

from hw3.grading.exercises import checks
from hw3.grading.kernel.sandbox import available

pytestmark = pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start: {available()}")

SOLUTION = "def row_sums(W):\n    ### BEGIN SOLUTION\n    return W.sum(dim=1)\n    ### END SOLUTION"
CHECK = 'check("q3d", row_sums)'
QUESTION = '''
[[question]]
id = "q3d"
title = "Self-attention: the weights' row sums"
exercise = "function"
arguments = [{ tensor = [3, 3] }]
calls = 5
tests = { "row sums" = 0.5 }
'''


def with_q3d(solution: str = SOLUTION) -> nbformat.NotebookNode:
    """The mini answer key with q3d's cells after q3b's check cell."""
    nb = answer_key()
    index = next(i for i, c in enumerate(nb.cells) if c.id == "q3b-check") + 1
    nb.cells[index:index] = [nbformat.v4.new_markdown_cell("**Q3d** <!-- points q3d -->: the row sums of W."),
                             nbformat.v4.new_code_cell(solution), nbformat.v4.new_code_cell(CHECK)]
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    answers = write_answers(root, with_q3d())
    spec = answers / "questions.toml"
    spec.write_text(spec.read_text(encoding="utf-8") + QUESTION, encoding="utf-8")
    options = ("--answers", answers, "--notebooks", root / "notebooks", "--checks", root / "checks.json")
    assert hw3("assign", *options) == 0
    return root, options


def test_assign_releases_it_and_check_passes(course, capsys):
    root, options = course
    student = nbformat.read(root / "notebooks" / "hw3.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "**Q3d** (0.5 points): the row sums of W." in text
    assert 'raise NotImplementedError("q3d: write your solution here")' in text and CHECK in text
    public = json.loads((root / "checks.json").read_text(encoding="utf-8"))["questions"]["q3d"]
    assert len(public["inputs"]["calls"]) == 5 and public["question"]["tests"] == [["row sums", 0.5]]
    capsys.readouterr()
    assert hw3("assign", *options, "--check") == 0, capsys.readouterr().err


def test_the_notebooks_check_follows_the_key(course, capsys, monkeypatch):
    root, _ = course
    monkeypatch.setenv(checks.PUBLIC_ENV, str(root / "checks.json"))
    checks.check("q3d", lambda W: W.sum(dim=1))
    checks.check("q3d", lambda W: W.sum(dim=0))
    right, wrong = capsys.readouterr().out.splitlines()
    assert right == "✅ q3d passed (0.5 pts)"
    assert wrong.startswith("❌ q3d: 0 of 0.5 pts — fn(tensor([[")


def test_hw3_grade_scores_it_against_the_key(course, tmp_path):
    root, _ = course
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(with_q3d(), subs / "right.ipynb")
    nbformat.write(with_q3d(SOLUTION.replace("dim=1", "dim=0")), subs / "wrong.ipynb")
    out = tmp_path / "grades.json"
    assert hw3("grade", *sorted(subs.iterdir()), "--answers", root / "answers", "--json", out, "--key-file",
               tmp_path / "key", "--store", tmp_path / "grades.sqlite", "--timeout", "60") == 0
    reports = {r["student"]: rows(r) for r in json.loads(out.read_text(encoding="utf-8"))}
    assert reports["right"]["q3d"]["status"] == "passed" and reports["right"]["q3d"]["max_points"] == 0.5
    assert reports["wrong"]["q3d"]["points"] == 0 and "expected" in reports["wrong"]["q3d"]["message"]
    assert all(q["status"] in ("passed", "manual") for qid, q in reports["wrong"].items() if qid != "q3d")
