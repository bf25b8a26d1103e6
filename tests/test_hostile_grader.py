"""The grader process itself against a determined student: files, parsing, kernel messages, time, names,
options, shards and similarity (issue 17).

The sandbox holds what a kernel does; these attacks aim at the grader around it, which reads the submitted
files, their names and the kernel's messages. Each class has its exploit (written first, and seen working
against the grader of the time) and a variant written after the fix; all go through `hw3 grade` (as root,
and as an ordinary user where the user matters), and an honest submission in the same batch keeps its
full points in each.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from grading_helpers import NOBODY, answer_key, grade_cli, rows, write_course

from hw3.grading.kernel.sandbox import available

FULL = {"q2": 1.5, "q3a": 0.5, "q3b": 2.0, "q4.3a": 2.0}
ROOT = os.geteuid() == 0

needs_sandbox = pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start here: {available()}")


def points(report: dict) -> dict[str, float]:
    """The points of the fixture's automatic questions."""
    return {qid: q["points"] for qid, q in rows(report).items() if qid in FULL}


@pytest.fixture
def course():
    """A folder every user may enter (the grader may run as NOBODY): the mini course with alice's honest
    notebook, a course key the grader's user can read, and out/ for the outputs; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="hw3-hostile-"))
    root.chmod(0o755)
    subs = write_course(root, {"alice": answer_key()})
    key = root / "course.key"
    key.write_text(random.randbytes(32).hex() + "\n")
    key.chmod(0o600)
    (root / "out").mkdir()
    (root / "out").chmod(0o777)
    yield {"root": root, "subs": subs, "key": key}
    shutil.rmtree(root, ignore_errors=True)


def as_nobody(course: dict) -> int:
    """NOBODY, after giving it the course key (skips where the tests cannot act as another user)."""
    if not ROOT:
        pytest.skip("needs root to run the grader as an ordinary user")
    probe = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
                            sys.executable, "-c", "import hw3, nbclient"], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    if probe.returncode != 0:
        pytest.skip(f"an ordinary user cannot run this Python ({sys.executable}): run the tests from a venv it can read")
    os.chown(course["key"], NOBODY, NOBODY)
    return NOBODY


def grade(course: dict, *submissions, options=(), user: int | None = None, timeout: float = 600) -> dict:
    """`hw3 grade` (the documented safe form: options, then `--`, then the submissions) into out/."""
    root = course["root"]
    return grade_cli("--reference", root / "notebooks", "--key-file", course["key"], "--json", "out/grades.json",
                     "--csv", "out/grades.csv", "--store", "out/grades.sqlite", "--jobs", "1", "--timeout", "20",
                     *options, "--", *submissions, cwd=root, timeout=timeout, user=user)


def note_of(report: dict, text: str) -> str:
    """The one note of `report` that holds `text`."""
    found = [note for note in report["notes"] if text in note]
    assert len(found) == 1, report["notes"]
    return found[0]


# --- 1: files read before they are vetted ---------------------------------------------------------------------

@needs_sandbox
@pytest.mark.parametrize("user", ["root", "ordinary user"])
def test_a_fifo_and_a_link_to_dev_zero_named_like_notebooks_cost_only_their_own_submission(course, user):
    """Once broken: the grader opened a FIFO named like a notebook (in a submission folder) and blocked forever
    before grading anyone; it read a notebook that is a link to /dev/zero to the end in its main thread (a
    MemoryError traceback, no reports)."""
    uid = as_nobody(course) if user != "root" else None
    subs = course["subs"]
    (subs / "mallory").mkdir()
    os.mkfifo(subs / "mallory" / "hw3.ipynb")
    (subs / "zed.ipynb").symlink_to("/dev/zero")
    result = grade(course, *sorted(subs.iterdir()), user=uid, timeout=300)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    assert "Traceback" not in result["stderr"]
    reports = result["reports"]
    assert points(reports["alice"]) == FULL
    assert reports["mallory"]["total"] == 0 and reports["zed"]["total"] == 0
    assert "hw3.ipynb is a FIFO" in note_of(reports["mallory"], "FIFO")
    assert "zed.ipynb is a symbolic link" in note_of(reports["zed"], "symbolic link")


# --- 2: parsing as a weapon -------------------------------------------------------------------------------------

def bomb(cells: int, lines: int, line: str = "%time x") -> nbformat.NotebookNode:
    """The honest notebook with `cells` extra cells of `lines` lines of IPython syntax each, before q2's check."""
    nb = answer_key()
    index = next(i for i, c in enumerate(nb.cells) if c.id == "q2-check")
    for _ in range(cells):
        nb.cells.insert(index, nbformat.v4.new_code_cell("\n".join([line] * lines)))
    return nb


@needs_sandbox
def test_three_cells_of_2000_line_magics_cost_the_grader_seconds(course):
    """Once broken: IPython's input transformers re-tokenize a whole cell for every magic in it, and the grader
    ran them on every code cell in its main thread, several times per notebook (folder check, check calls,
    matching, the untouched set, similarity): three cells of 2,000 lines of `%time x` took 158 s in
    `find_submissions` alone and the batch 16 min instead of 30 s. The cells cost the kernel its own time
    (each stops at --timeout, as any slow cell), and the grader a linear parse."""
    nbformat.write(bomb(3, 2000), course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--summary", "out/summary"], timeout=400)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    print(f"parse bomb batch (2 submissions): {result['seconds']:.1f} s")
    assert points(result["reports"]["alice"]) == FULL
    assert points(result["reports"]["mallory"]) == FULL  # its answers are right: the bomb cells only fail
