"""End to end on the real answer keys, in the sandbox: full marks for the keys, exactly the planted mistakes lost.

One `hw3 grade` batch of two students built from answers/ (both notebooks each): the answer keys as they
are, which must earn every automatic point, and a student whose `binary_accuracy` forgets the sigmoid
(q4.3a), whose `predict_sentiment` returns 1 − p (q4.4a) and who redefines `check` right before its check
cell; its Q1–Q3 notebook also ends with a cell that attacks the corpus features the batch shares with every
kernel. The fresh clone's `answers/` is also what the grader scores against.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grading_helpers import load_homework_file

from hw3.grading.kernel.sandbox import CACHE_MOUNT, available

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = ROOT / "answers"
KEYS = ("hw3_q1-q3.ipynb", "hw3_q4.ipynb")
HOMEWORK = load_homework_file(ANSWERS / "questions.toml")

pytestmark = [
    pytest.mark.skipif(not all((ANSWERS / k).is_file() for k in KEYS), reason="answer keys not present"),
    pytest.mark.skipif(available() is not None, reason=f"the sandbox cannot start here: {available()}"),
]


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


POISON_FEATURES = """\
# poison the BERT features every later submission reads: append to them, add a file, move or open up the folder
import os, pathlib
folder = os.environ.get("HW3_FEATURE_CACHE", "")
files = [p for p in pathlib.Path(folder).rglob("*") if p.is_file()] if folder else []
attempts = [lambda p=p: open(p, "ab").write(b"poison") for p in files] + [
    lambda: open(os.path.join(folder, "poison.bin"), "wb").write(b"poison"),
    lambda: os.rename(folder, folder + ".moved"), lambda: os.chmod(folder, 0o777)]
done = 0
for attempt in attempts:
    try:
        attempt()
        done += 1
    except OSError:
        pass
raise Exception(f"RT poison folder={folder} files={len(files)} done={done}")
"""


def poisoning_q1_q3():
    """The Q1–Q3 answer key with a last cell that tries to change the shared corpus features."""
    nb = nbformat.read(ANSWERS / KEYS[0], as_version=4)
    attack = nbformat.v4.new_code_cell(POISON_FEATURES)
    attack["id"] = "poison-features"
    nb.cells.append(attack)
    return nb


GRADER = """
import atexit, json, runpy, sys
modules, sys.argv = sys.argv[1], ["hw3", *sys.argv[2:]]
atexit.register(lambda: open(modules, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("hw3", run_name="__main__", alter_sys=True)
"""
"""`python -m hw3 ARGS`, writing the names of the modules the grader's process imported to the file FIRST."""


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """The batch's reports by submission, the grader's stderr and the modules its process imported."""
    root = tmp_path_factory.mktemp("homework")
    for name in ("key", "student"):
        (root / name).mkdir()
        for key in KEYS:
            tampered = {KEYS[0]: poisoning_q1_q3, KEYS[1]: tampered_q4}[key] if name == "student" else None
            nbformat.write(tampered() if tampered else nbformat.read(ANSWERS / key, as_version=4), root / name / key)
    out = root / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HW3_CACHE": str(root / "cache")}  # corpus features of its own
    modules = root / "modules.json"
    result = subprocess.run([sys.executable, "-c", GRADER, str(modules), "grade", str(root / "key"),
                             str(root / "student"), "--json", str(out), "--answers", str(ANSWERS), "--key-file",
                             str(root / "k"), "--store", str(root / "grades.sqlite")],
                            capture_output=True, text=True, env=env, timeout=1800, cwd=root)
    assert result.returncode == 0, result.stderr
    return {"reports": {Path(r["submission"]).name: r for r in json.loads(out.read_text())}, "stderr": result.stderr,
            "modules": json.loads(modules.read_text()), "features": root / "cache" / "grading-features"}


@pytest.fixture(scope="module")
def reports(graded) -> dict:
    return graded["reports"]


def points(report: dict) -> dict[str, tuple[float, float, str]]:
    return {q["id"]: (q["points"], q["max_points"], q["status"]) for q in report["questions"]}


def test_the_answer_keys_earn_every_automatic_point_in_the_sandbox(reports):
    key = reports["key"]
    failed = {qid: q for qid, q in points(key).items() if q[2] not in ("passed", "manual")}
    assert failed == {} and key["sandboxed"] is True, (failed, key["notes"])
    assert key["total"] == sum(q.max_points for q in HOMEWORK.automatic())
    assert key["notes"] == []  # its demo cells use its own solutions, never hw3's withheld ones


def test_exactly_the_planted_mistakes_lose_exactly_their_sub_tests(reports):
    student = reports["student"]
    lost = {qid for qid, (got, full, status) in points(student).items() if status != "manual" and got < full}
    assert lost == {"q4.3a", "q4.4a"}, points(student)
    q43a = next(q for q in student["questions"] if q["id"] == "q4.3a")
    assert [t["name"] for t in q43a["tests"] if t["points"] < t["max_points"]] == ["rounds the sigmoid"]
    assert "without a sigmoid" in next(t["hint"] for t in q43a["tests"] if t["points"] < t["max_points"])
    q44a = next(q for q in student["questions"] if q["id"] == "q4.4a")
    assert q44a["points"] < q44a["max_points"] and q44a["message"]  # the fake check cell earned nothing


def test_the_grader_never_loads_torch_or_bert_itself(graded):
    """The grader stays small beside its kernels (Gradescope's 768 MB container): the corpus features are computed
    in a process of their own, and nothing the grader imports loads torch or transformers (about 300 MB)."""
    heavy = [m for m in graded["modules"] if m.split(".")[0] in ("torch", "transformers", "tokenizers", "safetensors")]
    assert heavy == [] and "hw3.grading.batch" in graded["modules"]
    assert "corpus features are not shared" not in graded["stderr"]  # computed (apart), and shared


def test_a_kernel_cannot_change_the_corpus_features_later_submissions_read(graded):
    """The student's last cell saw the shared features and changed none of them: no append, no new file, no rename,
    no chmod; the folder still matches the stamp a later batch trusts. Two layers hold: the folder is bound
    read-only, and its files are the grader's, not writable by the sandbox's user (each alone holds it;
    with both removed the cell changes every file)."""
    from hw3.grading.kernel import corpus

    note = next(n for n in graded["reports"]["student"]["notes"] if "RT poison" in n)
    m = re.search(r"folder=(\S+) files=(\d+) done=(\d+)", note)
    assert m and m.group(1) == CACHE_MOUNT and int(m.group(2)) > 0 and m.group(3) == "0", note
    folder = graded["features"]
    assert corpus._prefilled(folder, corpus._inputs_digest()) and not (folder / "poison.bin").exists()
