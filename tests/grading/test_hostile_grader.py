"""The grader process itself against a determined student: files, parsing, kernel messages, time, names,
options, shards and similarity (issue 17).

The sandbox holds what a kernel does; these attacks aim at the grader around it, which reads the submitted
files, their names and the kernel's messages. Each class has its exploit (written first, and seen working
against the grader of the time) and a variant written after the fix; all go through `hw3 grade` (as root,
and as an ordinary user where the user matters), and an honest submission in the same batch keeps its
full points in each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from grading_helpers import NOBODY, answer_key, grade_cli, mini_homework, rows, write_course

from hw3.grading.kernel.sandbox import available

FULL = {"q2": 1.5, "q3a": 0.5, "q3b": 2.0, "q4.3a": 2.0}
ROOT = os.geteuid() == 0

needs_sandbox = pytest.mark.skipif(available() is not None,
                                   reason=f"the grading sandbox cannot start here: {available()}")


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
    """NOBODY, after giving it the course key (skips where the tests cannot act as another user, or where this
    Python cannot start as NOBODY, as the grader's kernels must: e.g. a venv whose interpreter lives in a home
    folder of mode 0700)."""
    if not ROOT:
        pytest.skip("needs root to run the grader as an ordinary user")
    probe = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
                            sys.executable, "-c", "import hw3, nbclient, subprocess, sys\n"
                            "subprocess.run([sys.executable, '-c', ''], check=True)"], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    if probe.returncode != 0:
        pytest.skip(f"an ordinary user cannot run this Python ({sys.executable}): run the tests from a venv it can "
                    f"read")
    os.chown(course["key"], NOBODY, NOBODY)
    return NOBODY


def grade(course: dict, *submissions, options=(), user: int | None = None, timeout: float = 600) -> dict:
    """`hw3 grade` (the documented safe form: options, then `--`, then the submissions) into out/."""
    root = course["root"]
    return grade_cli("--answers", root / "answers", "--key-file", course["key"], "--json", "out/grades.json",
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
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--summary", "out/summary", "--timeout", "10"],
                   timeout=400)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    print(f"parse bomb batch (2 submissions): {result['seconds']:.1f} s")
    assert points(result["reports"]["alice"]) == FULL
    assert points(result["reports"]["mallory"]) == FULL  # its answers are right: the bomb cells only fail


# --- 1 and 2, variants written after the fix ---------------------------------------------------------------------

@needs_sandbox
def test_sockets_devices_sparse_giants_and_links_anywhere_in_a_submission_are_refused_unread(course):
    """Variant: what a tar or zip upload can hold besides notebooks. Each bad entry costs its own notebook (noted
    with the reason and the fix); nothing is read through a link, and nothing blocks."""
    import socket

    subs = course["subs"]
    nested = subs / "eve" / "hw3.ipynb"  # a folder named like a notebook, holding a socket and a giant
    nested.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(nested / "sock.ipynb"))
    with open(nested / "big.ipynb", "wb") as sparse:
        sparse.truncate(300 * 2**20)
    (subs / "eve" / "root").symlink_to("/", target_is_directory=True)  # a link to a folder: never walked
    (subs / "eve" / "key.ipynb").symlink_to(course["key"])
    (subs / "frank").symlink_to(subs / "alice.ipynb")  # the whole submission is a link to another student's work
    os.mkfifo(subs / "gina.ipynb")
    if ROOT:
        os.mknod(subs / "hal.ipynb", 0o644 | __import__("stat").S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    result = grade(course, *sorted(subs.iterdir()), timeout=300)
    listener.close()
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    reports = result["reports"]
    assert points(reports["alice"]) == FULL
    eve = " ".join(reports["eve"]["notes"])
    assert "eve/hw3.ipynb/sock.ipynb is a socket, not a notebook file" in eve
    assert "eve/hw3.ipynb/big.ipynb is 300 MB, over the grader's 100 MB limit" in eve
    assert "eve/key.ipynb is a symbolic link" in eve and "root" not in eve
    assert reports["frank"]["notes"][0] == "frank is a symbolic link: submit the notebook or the folder itself"
    assert "gina.ipynb is a FIFO" in reports["gina"]["notes"][0]
    if ROOT:
        assert "hal.ipynb is a character device" in reports["hal"]["notes"][0]
    assert all(r["total"] == 0 for name, r in reports.items() if name != "alice")
    assert course["key"].read_text().strip() not in result["stdout"] + result["stderr"] + str(reports)


@needs_sandbox
def test_many_magic_cells_help_lines_deep_expressions_and_a_json_memory_bomb_cost_seconds(course):
    """Variant: 50 cells of 50 magics each, a 150,000-character cell of `a?` help lines, an expression nested
    10,000 deep and 50,000 terms long, and 60 MB of empty JSON objects in stored outputs (which a grader that
    decodes the whole file in its own process holds as ~2 GB of dicts). The grader stays small and quick; the
    kernel spends only its own time limits."""
    nb = bomb(50, 50, "%xmode Plain")
    index = next(i for i, c in enumerate(nb.cells) if c.id == "q3a-check")
    nb.cells.insert(index, nbformat.v4.new_code_cell("a?\n" * 50_000))
    nb.cells.insert(index, nbformat.v4.new_code_cell("y = " + "(" * 10_000 + "1" + ")" * 10_000))
    nb.cells.insert(index, nbformat.v4.new_code_cell("z = " + "+".join(["1"] * 50_000)))
    text = nbformat.writes(nb)
    empties = ", ".join(["{}"] * 20_000_000)
    stored = '"outputs": [{"output_type": "display_data", "data": {}, "metadata": {"x": [' + empties + ']}}]'
    (course["subs"] / "mallory.ipynb").write_text(text.replace('"outputs": []', stored, 1), encoding="utf-8")
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--summary", "out/summary", "--timeout", "10"],
                   timeout=600)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    print(f"variant batch: {result['seconds']:.1f} s, grader peak {result['peak_kib'] // 1024} MiB")
    assert points(result["reports"]["alice"]) == FULL
    assert points(result["reports"]["mallory"]) == FULL
    assert result["peak_kib"] < 1024 * 1024, result["peak_kib"]  # the dicts were decoded elsewhere


# --- 3: kernel messages ------------------------------------------------------------------------------------------

FLOOD = """\
k = get_ipython().kernel
parent = k.get_parent("shell")
line = "T" * 200_000
for _ in range({count}):
    k.session.send(k.iopub_socket, "error", {{"ename": "Flood", "evalue": line, "traceback": [line] * 20}},
                   parent=parent, ident=k._topic("error"))
"""


@pytest.fixture
def honest_peak(course) -> int:
    """The grader's peak resident memory (KiB) grading alice alone, the baseline of the flood tests."""
    result = grade(course, course["subs"] / "alice.ipynb", options=["--store", "out/baseline.sqlite"])
    assert result["rc"] == 0 and points(result["reports"]["alice"]) == FULL, result["stderr"][-2000:]
    return result["peak_kib"]


@needs_sandbox
def test_400_error_messages_of_4_mb_do_not_grow_the_grader(course, honest_peak):
    """Once broken: the grader kept every error output a cell sent (only shortened, to 200,000 characters per
    line and 20 lines), so 400 messages of ~4 MB grew its memory by 1.7 GB, linearly in their count, in the one
    process without a memory limit and with every submission in flight."""
    nb = answer_key()
    nb.cells.insert(next(i for i, c in enumerate(nb.cells) if c.id == "q2-check"),
                    nbformat.v4.new_code_cell(FLOOD.format(count=400)))
    nbformat.write(nb, course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), timeout=600)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    grown = (result["peak_kib"] - honest_peak) // 1024
    print(f"grader peak: {honest_peak // 1024} MiB grading alice alone, {result['peak_kib'] // 1024} MiB with the "
          f"flood")
    assert points(result["reports"]["alice"]) == FULL and points(result["reports"]["mallory"]) == FULL
    assert grown < 150, f"the grader grew by {grown} MiB"


SEND = """\
k = get_ipython().kernel
def send(kind, content, count):
    parent = k.get_parent("shell")
    for _ in range(count):
        k.session.send(k.iopub_socket, kind, content, parent=parent, ident=k._topic(kind))
"""
DISPLAY_IDS_AND_WIDGETS = SEND + """\
big = "D" * 3_500_000  # two of them in one message stay under the 8 MiB a message may have
for i in range(10):
    send("display_data", {"data": {"text/plain": big}, "metadata": {}, "transient": {"display_id": str(i) + big}}, 1)
    send("comm_open", {"comm_id": str(i) + big, "target_name": "jupyter.widget",
                       "data": {"state": {"_model_name": "OutputModel", "value": big}, "buffer_paths": []}}, 1)
"""
TINY_MESSAGES = SEND + 'send("stream", {"name": "stdout", "text": "."}, 25_000)\n'
FLOODING_PROBE = SEND + """\
import torch
def binary_accuracy(preds, y):
    send("update_display_data", {"data": {"text/plain": "U" * 7_000_000}, "metadata": {},
                                 "transient": {"display_id": "0"}}, 20)
    return (torch.round(torch.sigmoid(preds)) == y).float().mean()
"""


@needs_sandbox
def test_display_ids_widgets_tiny_messages_and_a_flooding_probe_cost_only_their_own_cell(course, honest_peak):
    """Variant: 140 MB of displays whose display ids are 3.5 MB each and widget comms with 3.5 MB ids and states
    (which nbclient would keep in its maps), 25,000 one-byte messages, and a probed function that sends 140 MB while
    the grader calls it. Each cell that floods is stopped and skipped like a cell that hangs; the probe that
    floods costs its question; the grader's memory does not move. (One-byte messages sent faster than the
    grader reads them are dropped by the kernel's socket once 32 wait: they cost nothing, or the cell is
    stopped at 20,000.)"""
    nb = answer_key()
    for before, source in (("q2-check", DISPLAY_IDS_AND_WIDGETS), ("q3a-check", TINY_MESSAGES)):
        nb.cells.insert(next(i for i, c in enumerate(nb.cells) if c.id == before), nbformat.v4.new_code_cell(source))
    next(c for c in nb.cells if c.id == "q4-3a-solution").source = FLOODING_PROBE
    nbformat.write(nb, course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), timeout=600)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    print(f"grader peak: {honest_peak // 1024} MiB grading alice alone, {result['peak_kib'] // 1024} MiB with floods")
    mallory = result["reports"]["mallory"]
    assert points(result["reports"]["alice"]) == FULL
    assert points(mallory) == {**FULL, "q4.3a": 0}, mallory["notes"]
    assert "sent the grader more than 64 MiB" in rows(mallory)["q4.3a"]["message"]
    assert "cell 4 sent the grader more than 64 MiB or 20000 messages and was stopped" in mallory["notes"]
    assert (result["peak_kib"] - honest_peak) // 1024 < 150


# --- 4: time -------------------------------------------------------------------------------------------------------

def with_cells(before: str, sources: list[str]) -> nbformat.NotebookNode:
    """The honest notebook with these code cells inserted before the cell with id `before`."""
    nb = answer_key()
    index = next(i for i, c in enumerate(nb.cells) if c.id == before)
    nb.cells[index:index] = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


@needs_sandbox
def test_ten_cells_that_each_sleep_just_under_the_timeout_stop_at_the_submission_budget(course):
    """Once broken: only per-cell limits existed, so 10 cells that each sleep just under --timeout took 10 x the
    timeout (1,000 cells at the default 600 s: a week), with no budget per submission across cells and reruns."""
    nbformat.write(with_cells("q2-check", ["import time\ntime.sleep(4.5)"] * 10), course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--timeout", "5", "--submission-timeout", "20"])
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    alice, mallory = result["reports"]["alice"], result["reports"]["mallory"]
    assert points(alice) == FULL
    assert mallory["seconds"] < 20 + 10, mallory["seconds"]  # the budget, and stopping the kernel
    assert points(mallory) == dict.fromkeys(FULL, 0)
    reason = "the submission used up its 20 s (--submission-timeout)"
    assert all(reason in rows(mallory)[qid]["message"] for qid in FULL), rows(mallory)


SLOW_PROBE = """\
import time, torch
def binary_accuracy(preds, y):
    time.sleep(4.8)
    return (torch.round(torch.sigmoid(preds)) == y).float().mean()
"""


@needs_sandbox
def test_reruns_after_kernel_deaths_and_probes_that_sleep_stay_within_the_submission_budget(course):
    """Variant: three cells that each sleep 4 s and then kill the kernel (every rerun runs the notebook again
    from the top, sleeps included) and a checked function that sleeps just under the timeout each time the
    grader calls it. The submission's one deadline covers them all."""
    nb = with_cells("q3a-check", ["import os, time\ntime.sleep(4)\nos._exit(1)"] * 3)
    next(c for c in nb.cells if c.id == "q4-3a-solution").source = SLOW_PROBE
    nbformat.write(nb, course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--timeout", "5", "--submission-timeout", "25"])
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    mallory = result["reports"]["mallory"]
    assert points(result["reports"]["alice"]) == FULL
    assert mallory["seconds"] < 25 + 10, mallory["seconds"]
    assert any("--submission-timeout" in note for note in mallory["notes"]), mallory["notes"]


# --- 5: names ------------------------------------------------------------------------------------------------------

FORMULA = '=HYPERLINK(CONCATENATE("http:",CHAR(47),CHAR(47),"evil.example"),"grades")'
FAKE_LINE = "  total                  23 of 23   all tests passed"
TERMINAL = "eve\n" + FAKE_LINE + "\x1b[2J\x1b[1;1H\n# Total: 23 of 23"


@needs_sandbox
def test_names_cannot_run_in_a_spreadsheet_share_a_feedback_file_or_write_to_the_terminal(course):
    """Once broken: a student named `=HYPERLINK(...)` landed as a formula in the CSV instructors open in a
    spreadsheet; students `bob` and `bob.` shared the feedback file bob.md (the later silently replaced the
    other); a notebook named with newlines and ANSI escapes printed a fake total line and cursor movements on
    the grader's terminal, and a Markdown heading in its own feedback file."""
    subs = course["subs"]
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(answer_key(), subs / "bob.ipynb")
    nbformat.write(other, subs / "bob..ipynb")
    nbformat.write(other, subs / f"{FORMULA}.ipynb")
    nbformat.write(other, subs / f"{TERMINAL}.ipynb")
    result = grade(course, *sorted(subs.iterdir()), options=["--feedback", "out/feedback"])
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    reports = result["reports"]
    assert points(reports["alice"]) == FULL and points(reports["bob"]) == FULL
    shown = result["stdout"] + result["stderr"]
    assert "\x1b" not in shown and FAKE_LINE not in shown.splitlines(), shown[-3000:]
    csv_text = (course["root"] / "out" / "grades.csv").read_text(encoding="utf-8")
    cells = [row[0] for row in csv.reader(io.StringIO(csv_text))][1:]
    assert len(cells) == 5 and not [cell for cell in cells if cell.startswith(("=", "+", "-", "@"))], cells
    assert "'" + FORMULA in cells and "\x1b" not in csv_text
    assert len(csv_text.splitlines()) == 1 + 5  # one line per student: no newline from a name
    feedback = {p.name: p.read_text(encoding="utf-8") for p in (course["root"] / "out" / "feedback").iterdir()}
    assert len(feedback) == 5  # one file per student
    assert f"Total: 6 / {mini_homework().max_total:g}" in feedback["bob.md"]
    eve = next(text for text in feedback.values() if "23 of 23" in text)
    assert [line for line in eve.splitlines() if line.startswith("#")][0].startswith("# Homework 3 feedback")
    assert not any(line.startswith("# Total") for line in eve.splitlines()) and "\x1b" not in eve


# --- 6: options from file names ----------------------------------------------------------------------------------

WHO_RUNS_ME = """\
import os
raise Exception(f"uid={os.getuid()} sandboxed={os.path.exists('/home/student/submission')}")
"""


def glob_star(folder: Path) -> list[str]:
    """What a shell's `*` expands to in `folder`: the names of its entries, sorted, dot-files left out."""
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


@needs_sandbox
@pytest.mark.parametrize("user", ["root", "ordinary user"])
def test_a_file_named_like_an_option_cannot_turn_the_sandbox_off(course, user):
    """Once broken: `hw3 grade *` in a folder where a student uploaded a file named `--no-sandbox` turned the
    sandbox off for the whole batch (argparse read the file name as the option): every kernel then ran as the
    grader's user, root on CI and Gradescope."""
    uid = as_nobody(course) if user != "root" else None
    subs, root = course["subs"], course["root"]
    nbformat.write(with_cells("q2-check", [WHO_RUNS_ME]), subs / "mallory.ipynb")
    (subs / "--no-sandbox").write_text("uploaded by mallory")
    options = ["--answers", root / "answers", "--key-file", course["key"], "--json", root / "out" / "grades.json",
               "--store", root / "out" / "grades.sqlite", "--jobs", "1"]
    result = grade_cli(*options, *glob_star(subs), cwd=subs, user=uid)
    for report in result["reports"].values():
        assert report["sandboxed"], report["notes"]
    assert result["rc"] == 2 and result["reports"] == {}, (result["rc"], result["stderr"][-2000:])
    assert result["stderr"].count("\n") == 1 and "--no-sandbox" in result["stderr"] and " -- " in result["stderr"]
    safe = grade_cli(*options, "--", *glob_star(subs), cwd=subs, user=uid)
    assert safe["rc"] == 0, safe["stderr"][-2000:]
    assert points(safe["reports"]["alice"]) == FULL and safe["reports"]["mallory"]["sandboxed"]
    assert "uid=0 " not in str(safe["reports"]["mallory"]["notes"])
    assert "--no-sandbox is not a notebook" in str(safe["reports"]["--no-sandbox"]["notes"])


def test_abbreviated_and_valued_options_in_file_names_are_refused_for_grade_and_merge(course):
    """Variant: `--no-s` (argparse's abbreviation of --no-sandbox), `--key-file=mallory.key` (inputs drawn from a
    key the student knows) and `--jobs=64` uploaded next to the notebooks, and `--json=report.json` next to the
    stores `hw3 merge-grades *` combines. Each is refused before anything runs, with one line naming it."""
    subs, root = course["subs"], course["root"]
    (subs / "mallory.key").write_text("00" * 32 + "\n")
    for name in ("--no-s", "--key-file=mallory.key", "--jobs=64"):
        (subs / name).write_text("x")
    result = grade_cli("--answers", root / "answers", "--json", root / "out" / "grades.json", *glob_star(subs),
                       cwd=subs)
    assert result["rc"] == 2 and result["stdout"] == "", result["stderr"]
    line = result["stderr"].strip()
    assert "\n" not in line and line.startswith("hw3 grade: error: --jobs=64 is both an option and a file here")
    stores = root / "stores"
    stores.mkdir()
    (stores / "--json=report.json").write_text("x")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    merged = subprocess.run([sys.executable, "-m", "hw3", "merge-grades", *glob_star(stores)], cwd=stores,
                            capture_output=True, text=True, env=env)
    assert merged.returncode == 2 and "--json=report.json is both an option and a file here" in merged.stderr
    assert not (stores / "report.json").exists()


# --- 7: shards -----------------------------------------------------------------------------------------------------

def quick_report(sub, settings):
    """A stand-in for grading (no kernel): every automatic question failed, the student's name kept."""
    from hw3.grading.exercises.registry import QUESTIONS
    from hw3.grading.results import QuestionResult, Report

    questions = [QuestionResult.failed(q.id, q.title, q.max_points, "not graded here") for q in QUESTIONS]
    return Report(str(sub.path), sub.student, questions)


@pytest.fixture
def shards(tmp_path, monkeypatch):
    """A course of 8 text submissions graded by `quick_report`, run from tmp_path; grade(i, n) runs one shard
    and returns the students its store holds."""
    from grading_helpers import hw3

    from hw3.grading import batch
    from hw3.grading.store import Store

    write_course(tmp_path, {})
    subs = tmp_path / "submissions"
    for name in ("ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal"):
        (subs / f"{name}.ipynb").write_text(name)
    monkeypatch.setattr(batch, "grade_submission", quick_report)
    monkeypatch.chdir(tmp_path)

    def grade(i: int, n: int) -> set[str]:
        assert hw3("grade", "--answers", "answers", "--key-file", "course.key", "--shard", f"{i}/{n}", "--",
                   *sorted(subs.iterdir())) == 0
        with Store(Path(f"grades-{i}-of-{n}.sqlite"), readonly=True) as store:
            return {row.student for row in store.rows()}
    return {"subs": subs, "grade": grade}


def test_a_late_submission_moves_no_one_between_shards(shards):
    """Once broken: `--shard i/N` took every N-th student of the sorted list, so a late submission (or a shard
    retried on a changed list) moved students between shards: some were graded twice, others never, and
    `merge-grades` did not notice."""
    first = [shards["grade"](i, 3) for i in (1, 2, 3)]
    (shards["subs"] / "aaron.ipynb").write_text("aaron")  # sorts first
    again = [shards["grade"](i, 3) for i in (1, 2, 3)]
    for before, after in zip(first, again):
        assert before <= after and len(after - before) <= 1, (first, again)  # only aaron may join a shard
    assert sum(map(len, again)) == 9 and set().union(*again) == {"aaron", *set().union(*first)}


# --- 8: similarity -------------------------------------------------------------------------------------------------

def released_with(course: dict, sources: list[str]) -> nbformat.NotebookNode:
    """The released notebook (every stub in place) with these code cells appended after its last check cell."""
    nb = nbformat.read(course["root"] / "notebooks" / "hw3.ipynb", as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


@needs_sandbox
def test_the_reference_pasted_after_the_last_check_cell_is_found(course):
    """Once broken: hw3's reference implementation pasted verbatim after the last check cell, the stubs left in
    place, earned its points while the class summary reported "No near-identical solutions": only each
    exercise's own region was compared."""
    import inspect

    from hw3 import attention

    pasted = "import torch\n" + inspect.getsource(attention._stable_logits) + "\n" + inspect.getsource(
        attention.self_attention) + "\nattention = self_attention\n"
    nbformat.write(released_with(course, [pasted]), course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--summary", "out/summary"])
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    assert points(result["reports"]["alice"]) == FULL
    assert points(result["reports"]["mallory"])["q3b"] == 2.0  # the evasion earns its points...
    summary = (course["root"] / "out" / "summary" / "summary.md").read_text(encoding="utf-8")
    found = summary.split("## For a person to look at")[1]
    assert "- q3b: mallory and the answer key or hw3's own code" in found  # ...and is found
    assert "- q3b: mallory passes with its stub unchanged" in found
    assert all("answer key" in line for line in found.splitlines() if "alice" in line)  # alice hands in the key


def test_merge_names_who_no_shard_graded_and_who_was_graded_from_other_contents(shards, capsys):
    """Variant: one shard's store lost, then a submission changed after its shard ran. Given the batch's list,
    `merge-grades` names the students missing from every store (with the shard that should hold them) and
    those graded from other contents, and writes nothing; complete, it writes what `hw3 grade` would."""
    from grading_helpers import hw3

    from hw3.grading.batch import shard_of

    students = {p.stem for p in shards["subs"].iterdir()}
    held = [shards["grade"](i, 2) for i in (1, 2)]
    assert held[0] | held[1] == students and not held[0] & held[1]
    batch = ["--batch", *sorted(shards["subs"].iterdir())]
    capsys.readouterr()
    assert hw3("merge-grades", "grades-1-of-2.sqlite", "--json", "all.json", *batch) == 1
    missing = sorted(held[1])
    line = capsys.readouterr().err
    assert line.startswith(f"hw3 merge-grades: error: {len(missing)} students of the batch are in no store: "
                           f"{missing[0]} (shard 2/2)") and line.count("\n") == 1 and not Path("all.json").exists()
    assert all(shard_of(s, 2) == 2 for s in missing)
    changed = sorted(held[0])[0]
    (shards["subs"] / f"{changed}.ipynb").write_text(changed + " resubmitted")
    assert hw3("merge-grades", "grades-1-of-2.sqlite", "grades-2-of-2.sqlite", "--json", "all.json", *batch) == 1
    assert f"1 students were graded from other contents than the batch holds now: {changed}" in capsys.readouterr().err
    shards["grade"](shard_of(changed, 2), 2)
    assert hw3("merge-grades", "grades-1-of-2.sqlite", "grades-2-of-2.sqlite", "--json", "all.json", "--feedback", "fb",
               "--summary", "summary", "--manual-template", "sheet.csv", "--gradescope", "gs", *batch) == 0
    assert sorted(p.stem for p in Path("fb").iterdir()) == sorted(students)
    assert sorted(p.stem for p in Path("gs").iterdir()) == sorted(students)
    assert Path("summary/summary.md").is_file() and Path("sheet.csv").read_text().count("\n") == 1 + len(students)


# --- 5, variant written after the fix; and the hand-graded sheet -----------------------------------------------------

HOSTILE_NAMES = ["@SUM(1+1)*cmd|' -C calc'!A0", "+1-1", "-2+3", "\tx", "alice\u202egnp.exe", "Carol", "carol",
                 "zw\u200bj", "line\u2028break", "x" * 200]


def test_hostile_names_round_trip_through_the_sheet_and_stay_inert_everywhere(tmp_path, monkeypatch, capsys):
    """Variant: names that start formulas (@, +, -, a tab), carry a bidi override, a zero-width space, a Unicode
    line separator, differ only in case, or run to 200 characters. The blank sheet names every graded student
    safely; filled in as a spreadsheet saves it, it merges back onto the right students; no name acts on the
    CSV, the terminal or the feedback, and each gets a feedback file of their own."""
    from grading_helpers import hw3

    from hw3.grading import batch
    from hw3.grading.reports.manual import manual_ids

    write_course(tmp_path, {})
    subs = tmp_path / "submissions"
    for name in HOSTILE_NAMES:
        (subs / f"{name}.ipynb").write_text("x")
    monkeypatch.setattr(batch, "grade_submission", quick_report)
    monkeypatch.chdir(tmp_path)
    base = ["grade", "--answers", "answers", "--key-file", "course.key"]
    assert hw3(*base, "--manual-template", "sheet.csv", "--csv", "grades.csv", "--feedback", "fb", "--",
               *sorted(subs.iterdir())) == 0
    out = capsys.readouterr()
    assert not [c for c in out.out + out.err if c in "\x1b\u202e\u200b\u2028\t"]
    rows_ = list(csv.reader(io.StringIO(Path("sheet.csv").read_text(encoding="utf-8"))))
    assert rows_[0] == ["student", *manual_ids(mini_homework())] and len(rows_) == 1 + len(HOSTILE_NAMES)
    for row in [*rows_[1:], *list(csv.reader(io.StringIO(Path("grades.csv").read_text(encoding="utf-8"))))[1:]]:
        assert not row[0].startswith(("=", "+", "-", "@", "\t", "\r")) and row[0].isprintable(), row[0]
    filled = [rows_[0]] + [[row[0], "2", *[""] * (len(rows_[0]) - 2)] for row in rows_[1:]]
    Path("filled.csv").write_text("".join(",".join(f'"{c}"' for c in row) + "\n" for row in filled), encoding="utf-8")
    assert hw3(*base, "--manual", "filled.csv", "--json", "merged.json", "--", *sorted(subs.iterdir())) == 0
    merged = json.loads(Path("merged.json").read_text(encoding="utf-8"))
    assert sorted(r["student"] for r in merged) == sorted(HOSTILE_NAMES) and all(r["total"] == 2 for r in merged)
    assert len(list(Path("fb").iterdir())) == len(HOSTILE_NAMES)
    assert all(len(p.name.encode()) < 255 and p.name.isprintable() for p in Path("fb").iterdir())


def test_a_bad_hand_graded_sheet_is_refused_before_anything_is_graded(tmp_path, monkeypatch, capsys):
    """Once a bad --manual sheet was refused only after the whole batch was graded."""
    from grading_helpers import hw3

    from hw3.grading import batch

    calls = []
    write_course(tmp_path, {})
    (tmp_path / "submissions" / "ada.ipynb").write_text("x")
    monkeypatch.setattr(batch, "grade_submission",
                        lambda sub, settings: calls.append(sub) or quick_report(sub, settings))
    monkeypatch.chdir(tmp_path)
    Path("sheet.csv").write_text("student,q1\nada,4\n")
    assert hw3("grade", "--answers", "answers", "--manual", "sheet.csv", "--", "submissions/ada.ipynb") == 1
    assert capsys.readouterr().err == ("hw3 grade: error: sheet.csv line 2: q1 is 4, outside 0 to 3: write points "
                                       "between 0 and the question's maximum\n")
    assert calls == [] and not Path("grades.sqlite").exists()


# --- 8, variant written after the fix --------------------------------------------------------------------------------

BOB_Q2 = '''\
import math
def rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    z = 1000.0 * h
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
'''
MALLORY_Q2 = '''\
import math
def my_rnn(sequence):  # "my own" version, renamed and reformatted
    state = 0
    for value in sequence: state = value - state
    logit = 1000.0 * state
    return 1 / (1 + math.exp(-logit)) if logit >= 0 else math.exp(logit) / (1 + math.exp(logit))
rnn_output = my_rnn
'''


@needs_sandbox
def test_a_classmate_s_solution_pasted_at_the_end_and_a_wrapped_reference_defined_early_are_found(course):
    """Variant: mallory leaves every stub in place, defines hw3's reference for q3b (renamed) in a cell before
    the first question and hands it over through a lambda after the last check cell, and pastes bob's q2,
    renamed and reformatted, at the very end."""
    import inspect

    from hw3 import attention

    reference = (inspect.getsource(attention._stable_logits) + "\n" + inspect.getsource(attention.self_attention))
    early = "import torch\n" + reference.replace("self_attention", "attend").replace("_stable_logits", "scores")
    nb = released_with(course, ["attention = lambda X: attend(X)", MALLORY_Q2])
    nb.cells.insert(1, nbformat.v4.new_code_cell(early))
    nbformat.write(nb, course["subs"] / "mallory.ipynb")
    bob = answer_key()
    next(c for c in bob.cells if c.id == "q2-solution").source = BOB_Q2
    nbformat.write(bob, course["subs"] / "bob.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), options=["--summary", "out/summary"])
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    assert points(result["reports"]["alice"]) == FULL and points(result["reports"]["bob"]) == FULL
    assert points(result["reports"]["mallory"])["q2"] == 1.5 and points(result["reports"]["mallory"])["q3b"] == 2
    found = (course["root"] / "out" / "summary" / "summary.md").read_text(encoding="utf-8").split("## For a person")[1]
    assert "- q2: bob and mallory" in found and "- q3b: mallory and the answer key or hw3's own code" in found
    assert "- q2: mallory passes with its stub unchanged" in found and "- q3b: mallory passes with its stub" in found
    assert all("answer key" in line for line in found.splitlines() if "alice" in line)  # alice hands in the key


@needs_sandbox
def test_floods_that_stay_under_the_cell_allowance_stop_at_the_submission_allowance(course, honest_peak):
    """Variant: ten cells that each send 56 MB, under a cell's 64 MiB, 560 MB in all. Grading of the submission
    stops at its 512 MiB, with the reason on every question it had not reached; the grader's memory does not
    move, and the honest notebook graded beside it keeps its points."""
    cell_flood = SEND + 'send("display_data", {"data": {"text/plain": "F" * 7_000_000}, "metadata": {}}, 8)\n'
    nbformat.write(with_cells("q2-check", [cell_flood] * 10), course["subs"] / "mallory.ipynb")
    result = grade(course, *sorted(course["subs"].iterdir()), timeout=600)
    assert result["rc"] == 0, (result["rc"], result["stderr"][-3000:])
    mallory = result["reports"]["mallory"]
    assert points(result["reports"]["alice"]) == FULL and points(mallory) == dict.fromkeys(FULL, 0)
    reason = "the notebook sent the grader more than 512 MiB or 200000 messages in all, and grading stopped"
    assert all(reason in rows(mallory)[qid]["message"] for qid in FULL), rows(mallory)
    assert (result["peak_kib"] - honest_peak) // 1024 < 150
