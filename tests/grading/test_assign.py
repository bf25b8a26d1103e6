"""`hw3 assign`: student notebooks and public checks generated from answer keys (stubs, placeholders, cleared
outputs, point labels from questions.toml, the keys' answers on the public inputs), and `--check`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from grading_helpers import FIXTURE, SPEC, hw3, load_homework_file, mini_homework

from hw3.grading.assign import AssignError, strip_answers, strip_solutions, student_cell
from hw3.grading.kernel.sandbox import available

REPO = Path(__file__).resolve().parents[2]
HOMEWORK = load_homework_file(REPO / "answers" / "questions.toml")
needs_kernels = pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start: {available()}")


def make_repo(root: Path) -> Path:
    """A temporary course repository with the mini answer key and its questions.toml."""
    (root / "answers").mkdir()
    shutil.copy(FIXTURE, root / "answers" / "hw3.ipynb")
    shutil.copy(SPEC, root / "answers" / "questions.toml")
    return root


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A temporary course repository (not yet assigned) as the working directory."""
    monkeypatch.chdir(make_repo(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def assigned(tmp_path_factory) -> Path:
    """A temporary course repository after `hw3 assign` (its public checks in checks.json)."""
    root = make_repo(tmp_path_factory.mktemp("course"))
    assert assign(root) == 0
    return root


def assign(root: Path, *options) -> int:
    """`hw3 assign` for the course at `root` (its public checks in root/checks.json)."""
    return hw3("assign", "--answers", root / "answers", "--notebooks", root / "notebooks", "--checks",
               root / "checks.json", *options)


def cells(path: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]}


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_solution_region_becomes_an_indented_stub_and_keeps_the_rest():
    answer = "def f(x):\n    y = x + 1\n    ### BEGIN SOLUTION\n    z = y * 2\n    return z\n    ### END SOLUTION\nprint(f)"
    assert strip_solutions(answer, "q2") == (
        "def f(x):\n    y = x + 1\n    # insert code here\n"
        '    raise NotImplementedError("q2: write your solution here")\nprint(f)'
    )


def test_top_level_region_and_source_without_final_newline():
    answer = "### BEGIN SOLUTION\nmodel = 1\n### END SOLUTION"
    assert strip_solutions(answer, None) == '# insert code here\nraise NotImplementedError("write your solution here")'


@pytest.mark.parametrize("answer, fragment", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the region opened on line 1"),
])
def test_unbalanced_solution_markers_are_refused(answer, fragment):
    with pytest.raises(AssignError, match=fragment):
        strip_solutions(answer, None)


def test_markdown_answers_become_the_placeholder():
    text = "Q1.\n<!-- BEGIN ANSWER -->\nsecret\n<!-- END ANSWER -->\nQ2. <!--BEGIN ANSWER-->two<!-- END ANSWER --> end"
    assert strip_answers(text, HOMEWORK) == "Q1.\n_Type your answer here._\nQ2. _Type your answer here._ end"
    with pytest.raises(AssignError, match="no matching END"):
        strip_answers("<!-- BEGIN ANSWER --> never closed", HOMEWORK)


@needs_kernels
def test_assign_writes_student_notebooks_and_public_checks(assigned):
    answer, student = cells(assigned / "answers" / "hw3.ipynb"), cells(assigned / "notebooks" / "hw3.ipynb")
    assert list(student) == list(answer)  # same cells, same ids, same order
    assert "# insert code here" in source(student["q2-solution"]) and "h = x - h" not in source(student["q2-solution"])
    assert source(student["q2-solution"]).startswith('def rnn_output(xs):\n    """y_T')  # the prompt stays
    assert 'raise NotImplementedError("q4.3a: write your solution here")' in source(student["q4-3a-solution"])
    assert "rounded = torch.round" in source(student["q4-3a-solution"])
    assert source(student["q1-prompt"]).endswith("_Type your answer here._")
    assert "Weight sharing" not in source(student["q1-prompt"]) and "**Q1.**" in source(student["q1-prompt"])
    assert source(student["q2-check"]) == source(answer["q2-check"])
    assert student["q3b-solution"]["metadata"] == {"tags": ["exercise"]}
    for cell in student.values():
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert any(c.get("outputs") for c in answer.values())  # the fixture had outputs to clear
    checks = json.loads((assigned / "checks.json").read_text(encoding="utf-8"))
    assert list(checks["questions"]) == [q.id for q in mini_homework().automatic()]
    q2 = checks["questions"]["q2"]
    assert q2["question"]["tests"] == [["y_T on even-length sequences", 1.0],
                                       ["ties (h_T = 0) and near-ties (h_T = ±1)", 0.5]]
    # the key's own answers on the public inputs: ties are where the key gives exactly 0.5
    assert sorted(r["value"] for r in q2["expected"]["outputs"]["ties"]) == [0.0, 0.5, 0.5, 0.5, 1.0]


@needs_kernels
def test_assign_is_deterministic(assigned, capsys):
    first = (assigned / "notebooks" / "hw3.ipynb").read_bytes(), (assigned / "checks.json").read_bytes()
    capsys.readouterr()
    assert assign(assigned) == 0
    assert ((assigned / "notebooks" / "hw3.ipynb").read_bytes(), (assigned / "checks.json").read_bytes()) == first
    assert "2 of 2 files were already up to date" in capsys.readouterr().out


@needs_kernels
def test_check_passes_a_course_in_order_and_names_what_drifted(assigned, capsys):
    assert assign(assigned, "--check") == 0
    assert "the grader gives the answer keys full marks" in capsys.readouterr().out
    answer = assigned / "answers" / "hw3.ipynb"
    text = answer.read_text(encoding="utf-8")
    try:
        answer.write_text(text.replace("Give two benefits", "Name two benefits"), encoding="utf-8")
        assert assign(assigned, "--check") == 1
        assert capsys.readouterr().err.strip() == (f"hw3 assign: {assigned / 'notebooks' / 'hw3.ipynb'} is out of date "
                                                   f"with {assigned / 'answers'}: run `hw3 assign`")
        assert "Give two" in (assigned / "notebooks" / "hw3.ipynb").read_text(encoding="utf-8")  # nothing written
        answer.write_text(text.replace("return [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta]",
                                       "return [2.0 * beta, beta, 2.0 * beta]"), encoding="utf-8")
        assert assign(assigned, "--check") == 1  # a changed solution: new answers, so the public checks are stale
        err = capsys.readouterr().err
        assert "checks.json is out of date with" in err and "(<digest>)" in err
    finally:
        answer.write_text(text, encoding="utf-8")


@needs_kernels
def test_check_catches_a_key_the_grader_disagrees_with(tmp_path, capsys):
    """A key whose softmax overflows for huge β: its own answers there are NaN, so graded as a student it loses
    q3b's finiteness (an overflow costs nothing else), and --check names the exercise and the sub-test, and only
    that: running `hw3 assign` again would not change the key's answers."""
    root = make_repo(tmp_path)
    key = root / "answers" / "hw3.ipynb"
    naive = "W = torch.exp(X @ X.T) / torch.exp(X @ X.T).sum(dim=1, keepdim=True)"
    key.write_text(key.read_text(encoding="utf-8").replace("W = torch.softmax(X @ X.T, dim=1)", naive), encoding="utf-8")
    assert naive in key.read_text(encoding="utf-8")
    assert assign(root) == 0
    capsys.readouterr()
    assert assign(root, "--check") == 1
    err = capsys.readouterr().err
    assert "the grader gives the answer key 1.5 of 2 points for q3b" in err
    assert "sub-test 'finite for huge β'" in err and "out of date" not in err and err.count("\n") == 1


def test_bad_answer_keys_give_one_line_errors(repo, capsys):
    (repo / "answers" / "broken.ipynb").write_text("{not json", encoding="utf-8")
    assert assign(repo) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"hw3 assign: error: {repo / 'answers' / 'broken.ipynb'} is not valid JSON") and \
        err.count("\n") == 1

    (repo / "answers" / "broken.ipynb").unlink()
    answer = repo / "answers" / "hw3.ipynb"
    text = answer.read_text(encoding="utf-8")
    answer.write_text(text.replace('check(\\"q3a\\"', 'check(\\"q9\\"'), encoding="utf-8")
    assert assign(repo) == 1
    assert "check id 'q9' is not an automatic question in" in capsys.readouterr().err
    answer.write_text(text, encoding="utf-8")
    spec = repo / "answers" / "questions.toml"
    spec.write_text(spec.read_text(encoding="utf-8") + '\n[[question]]\nid = "q3d"\ntitle = "Row sums"\n'
                    'exercise = "value"\ntests = { "row sums" = 0.5 }\n', encoding="utf-8")
    assert assign(repo) == 1
    assert "q3d is an automatic question in" in capsys.readouterr().err
    assert hw3("assign", "--answers", "nowhere", "--checks", repo / "checks.json") == 1
    assert "nowhere/questions.toml is missing" in capsys.readouterr().err
    assert hw3("assign") == 1  # a course outside hw3's checkout: its public checks file must be named
    assert "pass --checks FILE" in capsys.readouterr().err


@needs_kernels
def test_the_repository_is_assigned_and_the_grader_agrees_with_its_keys(monkeypatch):
    monkeypatch.chdir(REPO)
    assert hw3("assign", "--check") == 0


def test_run_metadata_of_the_key_does_not_reach_students():
    key = {"cell_type": "code", "id": "c1", "source": "x = 1", "outputs": [], "execution_count": 3,
           "metadata": {"execution": {"iopub.execute_input": "2026-11-26T10:44:41Z"}, "tags": ["keep"]}}
    out = student_cell(key, None, HOMEWORK, "")
    assert out["metadata"] == {"tags": ["keep"]} and out["execution_count"] is None
    assert "execution" in key["metadata"], "the answer key's cell is not changed"


def test_point_labels_answer_ids_and_answer_key_only_cells():
    from hw3.grading.assign import AssignError, points_label, student_notebook

    assert points_label(["q3b", "q3b.written"], HOMEWORK) == "(3 points: 2 automatic, 1 graded by hand)"
    assert points_label(["q1"], HOMEWORK) == "(3 points, graded by hand)"
    assert points_label(["q4.2b"], HOMEWORK) == "(1 point)"
    with pytest.raises(AssignError, match="'q9', which is not a question in"):
        points_label(["q9"], HOMEWORK)
    key = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "**(b) <!-- points q3b q3b.written -->** Compute"},
        {"cell_type": "markdown", "metadata": {}, "source": "<!-- BEGIN ANSWER q3b.written -->W → I<!-- END ANSWER -->"},
        {"cell_type": "code", "metadata": {"tags": ["answer-key-only"]}, "source": "print('y1 ≈ x1')", "outputs": []},
    ]}
    cells = student_notebook(key, HOMEWORK, "")["cells"]
    assert [c["source"] for c in cells] == ["**(b) (3 points: 2 automatic, 1 graded by hand)** Compute",
                                            "_Type your answer here._"]
    assert cells[1]["metadata"] == {"hw3": {"answer": "q3b.written"}}
    with pytest.raises(AssignError, match="answer id 'q2' is not a hand-graded question"):
        student_notebook({"cells": [{"cell_type": "markdown", "metadata": {},
                                     "source": "<!-- BEGIN ANSWER q2 -->x<!-- END ANSWER -->"}]}, HOMEWORK, "")


def test_the_setup_cells_checks_line_gets_the_courses_digest():
    key = {"cell_type": "code", "id": "setup", "metadata": {}, "outputs": [], "execution_count": 1,
           "source": ["HW3_SOURCE = ''\n", "HW3_CHECKS = None  # hw3 assign writes it\n", "require(HW3_CHECKS)"]}
    out = student_cell(key, None, HOMEWORK, "0123456789ab")
    assert out["source"][1] == 'HW3_CHECKS = "0123456789ab"  # the checks this notebook was released with\n'
    assert out["source"][0] == key["source"][0] and out["source"][2] == key["source"][2]


def test_the_released_notebooks_agree_with_questions_toml():
    root = Path(__file__).resolve().parents[2] / "notebooks"
    text = "".join(json.loads(p.read_text(encoding="utf-8"))["cells"].__repr__() for p in sorted(root.glob("*.ipynb")))
    assert "(3 points: 2 automatic, 1 graded by hand)" in text and "points q" not in text
    assert "y1, y2, y3 ≈" not in text  # the Q3(b) demo that prints the written answer stays in the key
    answered = [c["metadata"]["hw3"]["answer"] for p in sorted(root.glob("*.ipynb"))
                for c in json.loads(p.read_text(encoding="utf-8"))["cells"] if "hw3" in c.get("metadata", {})]
    assert sorted(answered) == sorted(q.id for q in HOMEWORK.manual())


def test_the_readmes_points_are_questions_tomls():
    """The README's table of questions and its summary of points derive from answers/questions.toml."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    parts = {f"Q{n}": sum(q.max_points for q in HOMEWORK.questions if q.id.startswith(f"q{n}")) for n in range(1, 5)}
    table = {m[1]: float(m[2]) for m in re.finditer(r"^\| (Q\d) \(([\d.]+) pts\) \|", readme, re.M)}
    assert table == parts
    auto = sum(q.max_points for q in HOMEWORK.automatic())
    manual = sum(q.max_points for q in HOMEWORK.manual())
    summary = ", ".join(f"{q} {p:g}" for q, p in parts.items())
    assert f"{summary} points: {auto:g} automatic, {manual:g} graded by hand" in " ".join(readme.split())
