"""End to end on the real answer keys: a student who gets one exercise wrong, and one who also tampers.

Builds a submission folder from answers/ (both notebooks), breaks `binary_accuracy` (q4.3a), breaks
`predict_sentiment` (q4.4a) and redefines `check` right before its check cell, then runs `hw3 grade` and
expects exactly those two questions to lose their points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ROOT / "answers"
KEYS = ("hw3_q1-q3.ipynb", "hw3_q4.ipynb")

pytestmark = pytest.mark.skipif(not all((ANSWERS / k).is_file() for k in KEYS), reason="answer keys not present")


def replace_in_cell(nb, old: str, new: str) -> int:
    """Replace `old` by `new` in the one code cell that contains it; returns that cell's index."""
    hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and old in c.source]
    assert len(hits) == 1, f"expected one cell containing {old!r}, found {len(hits)}"
    nb.cells[hits[0]].source = nb.cells[hits[0]].source.replace(old, new)
    return hits[0]


def tampered_q4():
    """The Q4 answer key with a wrong binary_accuracy and a wrong predict_sentiment hidden by a fake check."""
    nb = nbformat.read(ANSWERS / "hw3_q4.ipynb", as_version=4)
    replace_in_cell(nb, "return (rounded == y).float().mean()", "return (preds.round() == y).float().mean()  # no sigmoid")
    replace_in_cell(nb, "    return prediction.item()\n", "    return 1 - prediction.item()\n")
    index = next(i for i, c in enumerate(nb.cells) if c.source.startswith('check("q4.4a"'))
    fake = nbformat.v4.new_code_cell('def check(qid, *args, **kwargs):\n    print(f"✅ {qid} passed (2 pts)")')
    fake["id"] = "fake-check"
    nb.cells.insert(index, fake)
    return nb


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    student = tmp_path_factory.mktemp("submissions") / "student"
    student.mkdir()
    nbformat.write(nbformat.read(ANSWERS / KEYS[0], as_version=4), student / KEYS[0])
    nbformat.write(tampered_q4(), student / KEYS[1])
    out = student.parent / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "hw3", "grade", str(student), "--json", str(out),
                             "--store", str(student.parent / "grades.sqlite")],
                            capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    return data[0] if isinstance(data, list) else data


def test_exactly_the_broken_exercises_lose_their_points(report):
    points = {q["id"]: (q["points"], q["max_points"], q["status"]) for q in report["questions"]}
    lost = {qid for qid, (got, full, status) in points.items() if status != "manual" and got < full}
    assert lost == {"q4.3a", "q4.4a"}, points
    assert points["q4.3a"][0] == 0 and points["q4.4a"][0] == 0


def test_the_fake_check_earned_nothing_and_the_reason_is_given(report):
    q44 = next(q for q in report["questions"] if q["id"] == "q4.4a")
    assert q44["status"] != "passed" and q44["message"]


def test_total_is_the_full_auto_score_minus_the_two_exercises(report):
    auto = [q for q in report["questions"] if q["status"] != "manual"]
    assert report["total"] == pytest.approx(sum(q["max_points"] for q in auto) - 2 - 2)
