"""An instructor changes the homework in answers/ only: a solution (Q2's recurrence becomes h_t = x_t + h_{t−1};
Q4's GRU hidden size becomes 128) and a sub-test's points. After `hw3 assign`, the check cells, `hw3 grade` and the
Gradescope zip follow the edited key: a copy of the edited key gets full marks, a submission written for the old
key loses exactly the changed exercises. No Python file is edited."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from grading_helpers import FIXTURE, hw3, rows, write_answers

from hw3.grading.exercises import checks
from hw3.grading.kernel.sandbox import available

pytestmark = pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start: {available()}")

REPO = Path(__file__).resolve().parents[2]
PLUS = ("h = x - h", "h = x + h")  # Q2's recurrence, in both keys' solutions
MORE_NORMS = ('tests = { "norms" = 0.5 }', 'tests = { "norms" = 1 }')  # q3a's sub-test points, 0.5 -> 1


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def grade(answers: Path, submissions: dict[str, Path], out: Path, *options) -> dict[str, dict]:
    """`hw3 grade` the submissions (name -> notebook or folder) against `answers`: reports by student."""
    subs = out / "subs"
    for name, path in submissions.items():
        (subs / name).mkdir(parents=True)
        for notebook in ([path] if path.is_file() else sorted(path.glob("*.ipynb"))):
            shutil.copy(notebook, subs / name / notebook.name)
    assert hw3("grade", *sorted(subs.iterdir()), "--answers", answers, "--json", out / "grades.json", "--key-file",
               out / "course.key", "--store", out / "grades.sqlite", "--timeout", "300", *options) == 0
    return {r["student"]: r for r in json.loads((out / "grades.json").read_text(encoding="utf-8"))}


def lost(report: dict) -> dict[str, float]:
    """{question id: points lost} of the automatic questions that lost points."""
    return {qid: q["max_points"] - q["points"] for qid, q in rows(report).items()
            if q["status"] not in ("manual", "not answered") and q["points"] < q["max_points"]}


def test_the_mini_course_follows_an_edited_key(tmp_path, capsys, monkeypatch):
    answers = write_answers(tmp_path)
    edit(answers / "hw3.ipynb", *PLUS)
    edit(answers / "questions.toml", *MORE_NORMS)
    checks_file = tmp_path / "checks.json"
    assert hw3("assign", "--answers", answers, "--notebooks", tmp_path / "notebooks", "--checks", checks_file) == 0
    assert hw3("assign", "--answers", answers, "--notebooks", tmp_path / "notebooks", "--checks", checks_file,
               "--check") == 0
    # the notebooks' check cells
    monkeypatch.setenv(checks.PUBLIC_ENV, str(checks_file))
    capsys.readouterr()
    plus = "import torch\ndef f(xs):\n    h = 0\n    for x in xs:\n        h = x {} h\n" \
           "    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))"
    namespace: dict = {}
    exec(plus.format("+"), namespace)
    checks.check("q2", namespace["f"])
    exec(plus.format("-"), namespace)
    checks.check("q2", namespace["f"])
    checks.check("q3a", lambda beta: [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta])
    new, old, norms = capsys.readouterr().out.splitlines()
    assert new == "✅ q2 passed (1.5 pts)" and old.startswith("❌ q2: ") and norms == "✅ q3a passed (1 pt)"
    # hw3 grade: the edited key in full, the old key loses exactly q2
    reports = grade(answers, {"edited": answers / "hw3.ipynb", "old": FIXTURE}, tmp_path)
    assert lost(reports["edited"]) == {} and reports["edited"]["total"] == 1.5 + 1 + 2 + 2
    assert lost(reports["old"]) == {"q2": 1.5}
    # the Gradescope zip carries the edited homework
    assert hw3("autograder", tmp_path / "zip", "--answers", answers, "--key-file", tmp_path / "course.key") == 0
    with zipfile.ZipFile(tmp_path / "zip" / "autograder.zip") as zipped:
        assert zipped.read("answers/questions.toml") == (answers / "questions.toml").read_bytes()
        assert b"h = x + h" in zipped.read("answers/hw3.ipynb")


def test_the_real_keys_follow_an_edited_homework(tmp_path):
    answers = tmp_path / "answers"
    shutil.copytree(REPO / "answers", answers)
    edit(answers / "hw3_q1-q3.ipynb", *PLUS)
    edit(answers / "hw3_q4.ipynb", "HIDDEN_DIM = 256", "HIDDEN_DIM = 128")
    edit(answers / "questions.toml", *MORE_NORMS)
    reports = grade(answers, {"edited": answers, "last_year": REPO / "answers"}, tmp_path / "out")
    automatic = sum(q["max_points"] for q in reports["edited"]["questions"] if q["status"] != "manual")
    assert lost(reports["edited"]) == {} and reports["edited"]["total"] == automatic
    assert rows(reports["edited"])["q3a"]["max_points"] == 1
    assert set(lost(reports["last_year"])) == {"q2", "q4.2a"}
    q42a = rows(reports["last_year"])["q4.2a"]
    assert [t["name"] for t in q42a["tests"] if t["points"] < t["max_points"]] == \
        ["GRU layers, hidden size and direction"]
    assert "model.rnn.hidden_size is 256, expected 128" in q42a["message"]
