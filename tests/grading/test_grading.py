"""`hw3 grade` on small synthetic submissions: points, tampering, broken notebooks, report shapes.

One batch of submissions is graded once (module fixture, `--timeout 5`) through the CLI handler; the
tests read its JSON, CSV and Gradescope outputs. Each kernel start costs a couple of seconds.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from grading_helpers import (FIXTURE, answer_key, cell, grade_all, hw3, insert_before, mini_homework, rows,
                             write_answers, write_course)

from hw3.grading.assign import render, student_notebook
from hw3.grading.results import GRADER_VERSION

CHECKED = {"q2": 1.5, "q3a": 0.5, "q3b": 2, "q4.3a": 2}  # the exercises the fixture checks
REPO = Path(__file__).resolve().parents[2]

FAKE_HARNESS = '''\
import importlib.abc, importlib.machinery, json, sys

pytestmark = pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start here: {available()}")

class FakeHarness(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serve a hw3.grading.kernel.harness whose probes return made-up outputs for every question."""
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "hw3.grading.kernel.harness" else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        def run_probes(requests, namespace, nonce, limit):
            for request in json.loads(requests):
                print(nonce, json.dumps({"id": request["id"], "outputs": {"passed": True}}))
        module.run_probes = run_probes

for name in [n for n in sys.modules if n.startswith("hw3.grading.kernel.harness")]:
    del sys.modules[name]
sys.meta_path.insert(0, FakeHarness())'''



def generated_cell(cell_id: str) -> str:
    """The source of a cell of the student notebook that `hw3 assign` makes from the fixture."""
    nb = json.loads(render(student_notebook(json.loads(FIXTURE.read_text(encoding="utf-8")), mini_homework(), "")))
    return "".join(next(c for c in nb["cells"] if c["id"] == cell_id)["source"])


def submissions() -> dict[str, nbformat.NotebookNode | str]:
    """name -> notebook (or raw text) of every test submission."""
    wrong_q3a = answer_key()
    cell(wrong_q3a, "q3a-solution").source = "def norms(beta):\n    return [beta, beta, beta]"

    unsolved_q2 = answer_key()  # q2 left as released: its demo cell fails too, but that must not cost q3a
    cell(unsolved_q2, "q2-solution").source = generated_cell("q2-solution")

    tampered = answer_key()
    cell(tampered, "q2-solution").source = "def rnn_output(xs):\n    return 0.5"
    cell(tampered, "q3a-solution").source = "def norms(beta):\n    return [beta, beta, beta]"
    cell(tampered, "q3b-solution").source = "def attention(X):\n    return X @ X.T, X"
    cell(tampered, "q4-3a-solution").source = "def binary_accuracy(preds, y):\n    return (preds.round() == y).float().mean()"
    insert_before(tampered, "q2-check", 'import hw3.grading\nhw3.grading.check = lambda qid, *a, **k: print(f"✅ {qid} passed")')
    insert_before(tampered, "q3a-check", 'def check(*args, **kwargs):\n    print("✅ q3a passed (0.5 pts)")')
    insert_before(tampered, "q3b-check", FAKE_HARNESS)
    insert_before(tampered, "q4-3a-check", 'import sys\nsys.modules["hw3.grading.exercises.checks"].run_exercise = lambda *a, **k: None\n'
                                           'from hw3.grading import check')
    for c in tampered.cells:  # pasted outputs of a passing run
        if c.id.endswith("check"):
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="✅ passed\n")]

    broken = answer_key()
    insert_before(broken, "q2-check", "import os\nos._exit(1)")
    insert_before(broken, "q3a-check", "while True:\n    pass")
    insert_before(broken, "q3b-check", "import sys\nsys.exit()")

    edited = answer_key()
    cell(edited, "q2-check").source = "from hw3.grading import check"  # the check call is deleted
    cell(edited, "q3a-check").source = 'check("q3a", lambda beta: [2 ** 0.5 * beta, beta, 2 ** 0.5 * beta])'
    cell(edited, "q3b-check").source = '# comments and spacing may change\ncheck( "q3b",   attention )'
    cell(edited, "q4-3a-check").source = 'from hw3.grading import check\n' + cell(edited, "q4-3a-check").source

    foreign = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('print("homework 2")')])
    return {"correct": answer_key(), "wrong_q3a": wrong_q3a, "unsolved_q2": unsolved_q2, "tampered": tampered,
            "broken": broken,
            "edited": edited, "foreign": foreign, "malformed": "{not json"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Grade every submission (plus the untouched student notebook) in one `hw3 grade` run."""
    root = tmp_path_factory.mktemp("course")
    subs = write_course(root, submissions())
    (subs / "untouched.ipynb").write_bytes((root / "notebooks" / "hw3.ipynb").read_bytes())
    return grade_all(root, subs, "--timeout", "20", "--gradescope", root / "gradescope")


def checked(report: dict) -> dict[str, tuple[float, str]]:
    """{id: (points, status)} of the exercises the fixture checks."""
    return {qid: (q["points"], q["status"]) for qid, q in rows(report).items() if qid in CHECKED}


def test_grading_ran_and_exited_0_although_students_failed(graded):
    assert graded["rc"] == 0
    assert set(graded["reports"]) == {"correct", "wrong_q3a", "unsolved_q2", "tampered", "broken", "edited",
                                      "foreign", "malformed", "untouched"}


def test_a_correct_submission_gets_every_checked_point(graded):
    report = graded["reports"]["correct"]
    assert checked(report) == {qid: (points, "passed") for qid, points in CHECKED.items()}
    assert report["total"] == sum(CHECKED.values()) == 6
    assert report["notes"] == []


def test_one_wrong_exercise_loses_exactly_its_points(graded):
    report = graded["reports"]["wrong_q3a"]
    assert report["total"] == 6 - 0.5
    q3a = rows(report)["q3a"]
    assert (q3a["points"], q3a["status"]) == (0, "failed")
    assert "expected [" in q3a["message"]


def test_an_unsolved_exercise_costs_only_its_own_points(graded):
    report = graded["reports"]["unsolved_q2"]
    assert checked(report) == {"q2": (0, "failed"), "q3a": (0.5, "passed"), "q3b": (2, "passed"),
                               "q4.3a": (2, "passed")}
    assert rows(report)["q2"]["message"].endswith("raised NotImplementedError: q2: write your solution here")
    # the stub and the demo cell that uses it are as released: reported, but they cost q3a nothing
    assert "cell 5 raised NotImplementedError: q2: write your solution here" in report["notes"]


def test_manual_questions_are_listed_with_their_rubric(graded):
    report = rows(graded["reports"]["correct"])
    assert set(report) == {q.id for q in mini_homework().questions}
    for q in mini_homework().manual():
        assert report[q.id] == {"id": q.id, "title": q.title, "points": 0, "max_points": q.max_points,
                                "status": "manual", "message": "graded by hand", "tests": [], "rubric": q.rubric}


def test_tampering_earns_nothing(graded):
    """Fake checks, a fake harness and pasted outputs earn nothing: the wrong functions are scored for what they
    compute, so only the no-sigmoid binary_accuracy keeps its one sub-test (it does return a fraction)."""
    report = graded["reports"]["tampered"]
    assert report["total"] == 1
    for qid, q in rows(report).items():
        if qid in CHECKED:
            lost = [t["name"] for t in q["tests"] if t["points"] < t["max_points"]]
            assert lost == (["rounds the sigmoid"] if qid == "q4.3a" else [t["name"] for t in q["tests"]]), q


def test_broken_cells_are_skipped_noted_and_grading_carries_on(graded):
    report = graded["reports"]["broken"]
    # the broken cells define nothing: the exercises before them are still scored from what the notebook defined
    assert checked(report) == {qid: (points, "passed") for qid, points in CHECKED.items()}
    assert {"cell 4 stopped the Python kernel", "cell 8 did not finish within 20 s", "cell 11 raised SystemExit"} <= set(report["notes"])


def test_deleted_and_edited_check_cells_give_zero_with_a_reason(graded):
    report = rows(graded["reports"]["edited"])
    assert report["q2"]["points"] == 0 and "check cell of q2 is missing" in report["q2"]["message"]
    assert report["q3a"]["points"] == 0 and "check cell of q3a (cell 7) was edited" in report["q3a"]["message"]
    assert report["q3b"]["status"] == "passed"  # comments and spacing are not edits
    assert report["q4.3a"]["points"] == 0 and "was edited" in report["q4.3a"]["message"]


def test_unreadable_and_foreign_notebooks_are_reported(graded):
    malformed = graded["reports"]["malformed"]
    assert malformed["total"] == 0
    assert malformed["notes"] == ["malformed.ipynb is not valid JSON (line 1): download it again as .ipynb"]
    assert rows(malformed)["q2"]["message"] == "no usable notebook has the check cells of hw3.ipynb (see the notes)"
    foreign = graded["reports"]["foreign"]
    assert foreign["notes"] == ["foreign.ipynb has no check cells of the hw3 notebooks: it is not an hw3 homework notebook"]
    assert all(q["points"] == 0 for q in foreign["questions"])


def test_untouched_student_notebook_fails_every_exercise(graded):
    report = rows(graded["reports"]["untouched"])
    assert all(report[qid]["points"] == 0 and "write your solution here" in report[qid]["message"] for qid in CHECKED)


def test_json_report_shape(graded):
    report = graded["reports"]["correct"]
    assert set(report) == {"submission", "student", "questions", "total", "max_total", "notes", "sandboxed",
                           "grader_version", "digest", "seconds"}
    homework = mini_homework()
    assert report["max_total"] == homework.max_total and report["student"] == "correct"
    assert report["grader_version"] == GRADER_VERSION
    assert report["sandboxed"] is True and len(report["digest"]) == 64
    assert [q["id"] for q in report["questions"]] == [q.id for q in homework.questions]
    assert all(set(q) == {"id", "title", "points", "max_points", "status", "message", "tests", "rubric"}
               for q in report["questions"])
    q4_3a = rows(report)["q4.3a"]
    assert [(t["name"], t["points"]) for t in q4_3a["tests"]] == [("a fraction in [0, 1]", 1), ("rounds the sigmoid", 1)]


def test_csv_has_one_row_per_student(graded):
    with open(graded["out"] / "grades.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["student", *(q.id for q in mini_homework().questions), "total"]
    by_student = {row["student"]: row for row in table}
    assert set(by_student) == set(graded["reports"])
    assert by_student["correct"]["total"] == "6" and by_student["wrong_q3a"]["q3a"] == "0"
    assert by_student["correct"]["q1"] == ""  # manual: left for the grader to fill in


def test_gradescope_results_shape(graded):
    folder = graded["root"] / "gradescope"  # several submissions: one results.json each, named after the student
    assert sorted(p.stem for p in folder.iterdir()) == sorted(graded["reports"])
    correct = json.loads((folder / "correct.json").read_text(encoding="utf-8"))
    assert correct["score"] == 6
    assert set(correct) == {"tests", "score", "execution_time", "output", "output_format"}
    assert all(set(t) == {"name", "score", "max_score", "status", "visibility", "output"} for t in correct["tests"])
    assert {t["status"] for t in correct["tests"]} == {"passed"}
    wrong = json.loads((folder / "wrong_q3a.json").read_text(encoding="utf-8"))
    assert wrong["score"] == 6 - 0.5
    assert {(t["name"].split(":")[0], t["status"]) for t in wrong["tests"] if t["score"] < t["max_score"]} == \
        {("q3a", "failed")}
    assert sum(t["max_score"] for t in correct["tests"]) == sum(CHECKED.values())  # the auto questions only


def test_nbval_passes_the_answer_key_and_fails_only_the_cells_that_raise_in_a_student_notebook(graded, tmp_path):
    """The key's check cells print their stored line again (nbval compares it); a student notebook's check cells
    print and never raise, so nbval fails only the stubs and what uses them."""
    root = graded["root"]
    checks = tmp_path / "checks.json"  # the mini course's public checks, which its check cells use
    assert hw3("assign", "--answers", root / "answers", "--notebooks", root / "notebooks", "--checks", checks) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "HW3_PUBLIC_CHECKS": str(checks)}
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider", "-q", "-rA",
                          "answers/hw3.ipynb", "notebooks/hw3.ipynb"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    results = {line.split(" ", 1)[1].split(" - ")[0]: line.split()[0] for line in run.stdout.splitlines()
               if line.startswith(("PASSED ", "FAILED "))}
    answers = {k: v for k, v in results.items() if k.startswith("answers/")}
    student = {k for k, v in results.items() if k.startswith("notebooks/") and v == "FAILED"}
    assert answers and set(answers.values()) == {"PASSED"}, run.stdout[-2000:]
    # code cells: 0 setup, 1 q2 solution, 2 q2 check, 3 q2 demo (uses the q2 stub), 4 q3a solution, 5 check,
    # 6 q3b stub (the whole def is the region), 7 check (its name is undefined), 8 q4.3a solution, 9 check
    assert student == {f"notebooks/hw3.ipynb::Cell {i}" for i in (3, 6, 7)}, run.stdout[-2000:]


def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, capsys):
    answers = write_answers(tmp_path)
    assert hw3("grade", tmp_path / "missing.ipynb", "--answers", answers, "--key-file", tmp_path / "key") == 1
    assert capsys.readouterr().err == f"hw3 grade: error: no such file or folder: {tmp_path / 'missing.ipynb'}\n"
    assert hw3("grade", FIXTURE, "--answers", tmp_path / "nowhere") == 1
    assert capsys.readouterr().err == (f"hw3 grade: error: {tmp_path / 'nowhere' / 'questions.toml'} is missing: the "
                                       f"answer keys' folder must hold questions.toml with the homework's questions "
                                       f"and points (see the README, 'For instructors')\n")
    assert hw3("grade", FIXTURE, "--answers", answers, "--json", tmp_path / "no" / "dir.json") == 1
    assert "the folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        hw3("grade", FIXTURE, "--timeout", "-1")
    assert exit_info.value.code == 2


def split_answer_key() -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """The fixture as a homework in two notebooks: (q2, q3a) and (q3b, q4.3a)."""
    first, second = answer_key(), answer_key()
    cut = next(i for i, c in enumerate(first.cells) if c.id == "q3a-check") + 1
    first.cells = first.cells[:cut]
    second.cells = [nbformat.v4.new_code_cell("import torch\nfrom hw3.grading import check", id="setup-2"),
                    *second.cells[cut:]]
    return first, second


def test_a_homework_in_several_notebooks_is_graded_per_student_folder(tmp_path):
    first, second = split_answer_key()
    write_answers(tmp_path)
    (tmp_path / "answers" / "hw3.ipynb").unlink()
    for folder in ("answers", "alice", "bob"):
        (tmp_path / folder).mkdir(exist_ok=True)
        nbformat.write(first, tmp_path / folder / "part1.ipynb")
        if folder != "bob":
            nbformat.write(second, tmp_path / folder / "part2.ipynb")
    assert hw3("grade", tmp_path / "alice", tmp_path / "bob", "--timeout", "20", "--answers",
               tmp_path / "answers", "--json", tmp_path / "grades.json", "--csv", tmp_path / "grades.csv",
               "--key-file", tmp_path / "key", "--store", tmp_path / "grades.sqlite") == 0
    alice, bob = json.loads((tmp_path / "grades.json").read_text(encoding="utf-8"))
    assert checked(alice) == {qid: (points, "passed") for qid, points in CHECKED.items()}
    assert checked(bob) == {"q2": (1.5, "passed"), "q3a": (0.5, "passed"), "q3b": (0, "failed"), "q4.3a": (0, "failed")}
    assert rows(bob)["q3b"]["message"] == "not submitted: no notebook has the check cells of part2.ipynb"
    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as f:
        assert [(row["student"], row["total"]) for row in csv.DictReader(f)] == [("alice", "6"), ("bob", "2")]


def test_a_grader_crash_on_one_notebook_spares_the_others(tmp_path, monkeypatch, capsys):
    from hw3.grading import batch

    def crash(path, settings):
        raise RuntimeError("boom")

    monkeypatch.setattr(batch, "grade_submission", crash)
    answers = write_answers(tmp_path)
    copies = [tmp_path / "alice.ipynb", tmp_path / "bob.ipynb"]
    for copy in copies:
        copy.write_bytes(FIXTURE.read_bytes())
    assert hw3("grade", *copies, "--answers", answers, "--json", tmp_path / "grades.json",
               "--key-file", tmp_path / "key", "--store", tmp_path / "grades.sqlite") == 0
    reports = json.loads((tmp_path / "grades.json").read_text(encoding="utf-8"))
    assert [r["notes"] for r in reports] == [["grading crashed (RuntimeError: boom): report it to the course staff"]] * 2
    assert "Traceback" not in capsys.readouterr().err
