"""`hw3 assign`: student notebooks generated from answer keys (stubs, placeholders, cleared outputs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hw3.cli import main
from hw3.grading.assign import AssignError, strip_answers, strip_solutions, student_cell

FIXTURE = Path(__file__).parent / "grading_fixtures" / "mini_answers.ipynb"
REPO = Path(__file__).resolve().parents[1]


def hw3(*argv) -> int:
    """Run `hw3 <argv>` as a user does, through the main CLI."""
    return main([str(a) for a in argv])


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A temporary course repository with one answer key, as the working directory."""
    (tmp_path / "answers").mkdir()
    shutil.copy(FIXTURE, tmp_path / "answers" / "hw3.ipynb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
    assert strip_answers(text) == "Q1.\n_Type your answer here._\nQ2. _Type your answer here._ end"
    with pytest.raises(AssignError, match="no matching END"):
        strip_answers("<!-- BEGIN ANSWER --> never closed")


def test_assign_writes_student_notebooks(repo, capsys):
    assert hw3("assign") == 0
    assert "wrote notebooks/hw3.ipynb" in capsys.readouterr().out
    answer, student = cells(repo / "answers" / "hw3.ipynb"), cells(repo / "notebooks" / "hw3.ipynb")
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


def test_assign_is_deterministic(repo, capsys):
    assert hw3("assign") == 0
    first = (repo / "notebooks" / "hw3.ipynb").read_bytes()
    assert hw3("assign") == 0
    assert (repo / "notebooks" / "hw3.ipynb").read_bytes() == first
    assert "1 of 1 student notebooks were already up to date" in capsys.readouterr().out


def test_check_detects_drift_and_names_the_notebook(repo, capsys):
    assert hw3("assign", "--check") == 1  # nothing generated yet
    assert "notebooks/hw3.ipynb is out of date" in capsys.readouterr().err
    hw3("assign")
    assert hw3("assign", "--check") == 0
    answer = repo / "answers" / "hw3.ipynb"
    answer.write_text(answer.read_text(encoding="utf-8").replace("Give two benefits", "Name two benefits"), encoding="utf-8")
    capsys.readouterr()
    assert hw3("assign", "--check") == 1
    assert capsys.readouterr().err.strip() == "notebooks/hw3.ipynb is out of date with answers: run `hw3 assign`"
    assert "Give two" in (repo / "notebooks" / "hw3.ipynb").read_text(encoding="utf-8")  # --check writes nothing


def test_bad_answer_keys_give_one_line_errors(repo, capsys):
    (repo / "answers" / "broken.ipynb").write_text("{not json", encoding="utf-8")
    assert hw3("assign") == 1
    err = capsys.readouterr().err
    assert err.startswith("hw3 assign: error: answers/broken.ipynb is not a readable notebook") and err.count("\n") == 1

    (repo / "answers" / "broken.ipynb").unlink()
    answer = repo / "answers" / "hw3.ipynb"
    answer.write_text(answer.read_text(encoding="utf-8").replace('check(\\"q3a\\"', 'check(\\"q9\\"'), encoding="utf-8")
    assert hw3("assign") == 1
    assert "check id 'q9' is not in hw3/grading/questions.py" in capsys.readouterr().err
    assert hw3("assign", "--answers", "nowhere") == 1
    assert "no answers folder at nowhere" in capsys.readouterr().err


def test_the_repository_notebooks_are_up_to_date(monkeypatch):
    if not any((REPO / "answers").glob("*.ipynb")):
        pytest.skip("answers/ has no answer keys yet")
    monkeypatch.chdir(REPO)
    assert hw3("assign", "--check") == 0


def test_run_metadata_of_the_key_does_not_reach_students():
    key = {"cell_type": "code", "id": "c1", "source": "x = 1", "outputs": [], "execution_count": 3,
           "metadata": {"execution": {"iopub.execute_input": "2026-11-26T10:44:41Z"}, "tags": ["keep"]}}
    out = student_cell(key, None)
    assert out["metadata"] == {"tags": ["keep"]} and out["execution_count"] is None
    assert "execution" in key["metadata"], "the answer key's cell is not changed"


def test_point_labels_answer_ids_and_answer_key_only_cells():
    from hw3.grading.assign import AssignError, points_label, student_notebook

    assert points_label(["q3b", "q3b.written"]) == "(3 points: 2 automatic, 1 graded by hand)"
    assert points_label(["q1"]) == "(3 points, graded by hand)"
    assert points_label(["q4.2b"]) == "(1 point)"
    with pytest.raises(AssignError, match="'q9', which is not in hw3/grading/questions.py"):
        points_label(["q9"])
    key = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "**(b) <!-- points q3b q3b.written -->** Compute"},
        {"cell_type": "markdown", "metadata": {}, "source": "<!-- BEGIN ANSWER q3b.written -->W → I<!-- END ANSWER -->"},
        {"cell_type": "code", "metadata": {"tags": ["answer-key-only"]}, "source": "print('y1 ≈ x1')", "outputs": []},
    ]}
    cells = student_notebook(key)["cells"]
    assert [c["source"] for c in cells] == ["**(b) (3 points: 2 automatic, 1 graded by hand)** Compute",
                                            "_Type your answer here._"]
    assert cells[1]["metadata"] == {"hw3": {"answer": "q3b.written"}}
    with pytest.raises(AssignError, match="answer id 'q2' is not a manual question"):
        student_notebook({"cells": [{"cell_type": "markdown", "metadata": {},
                                     "source": "<!-- BEGIN ANSWER q2 -->x<!-- END ANSWER -->"}]})


def test_the_released_notebooks_agree_with_the_registry():
    import json

    from hw3.grading.exercises.registry import BY_ID

    root = Path(__file__).resolve().parents[1] / "notebooks"
    text = "".join(json.loads(p.read_text(encoding="utf-8"))["cells"].__repr__() for p in sorted(root.glob("*.ipynb")))
    assert "(3 points: 2 automatic, 1 graded by hand)" in text and "points q" not in text
    assert "y1, y2, y3 ≈" not in text  # the Q3(b) demo that prints the written answer stays in the key
    answered = [c["metadata"]["hw3"]["answer"] for p in sorted(root.glob("*.ipynb"))
                for c in json.loads(p.read_text(encoding="utf-8"))["cells"] if "hw3" in c.get("metadata", {})]
    assert sorted(answered) == sorted(q for q, v in BY_ID.items() if v.kind == "manual")
