"""`hw3 grade` against hostile submissions: each one is contained, earns nothing it should not, and leaks nothing.

One batch (module fixture) is graded by a single `hw3 grade --timeout 5 --memory-gb 4` run, like a course's
real batch, in the bubblewrap sandbox: notebooks that are not JSON or from another homework, huge stored
and printed outputs, cells that sleep, fork daemons, allocate 20 GiB or exit, functions that exit or kill the
kernel while probed, solutions that import hw3's references, and attacks on the trust boundary: forged result
lines, patched json/print/torch, reading the answer keys, other submissions, the grader's environment and the
course key, tampering with hw3, site-packages and IPython that would outlive the submission, signalling the
grader. A correct notebook graded after all of them must still earn every point.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from grading_helpers import FIXTURE, answer_key, cell, grade_all, hw3, insert_before, rows, write_answers, write_course

from hw3.grading.kernel.sandbox import available
from hw3.grading.notebook import NotebookError, read_notebook

CHECKED = {"q2": 1.5, "q3a": 0.5, "q3b": 2, "q4.3a": 2}
REPO = Path(__file__).resolve().parents[3]
SECRET = "hw3-test-secret-value"

pytestmark = pytest.mark.skipif(available() is not None, reason=f"the sandbox cannot start here: {available()}")

ALLOCATE_20_GIB = """\
import resource
if all(resource.getrlimit(r)[0] in (resource.RLIM_INFINITY,) or resource.getrlimit(r)[0] > 16 * 2**30
       for r in (resource.RLIMIT_AS, resource.RLIMIT_DATA)):
    raise RuntimeError("the grader set no memory limit: not allocating 20 GiB")  # never swap the test machine
"""

FORKS = """\
import os, subprocess, sys, time
SLEEPER = [sys.executable, "-c", "import time; time.sleep(10**6)  # {token}"]
for _ in range(20):
    if os.fork() == 0:
        os.execv(sys.executable, SLEEPER)
if os.fork() == 0:  # a daemon: new session, double fork, a clean environment
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, SLEEPER, {{}})
    os._exit(0)
time.sleep(10**6)  # the cell must time out
"""
FORK_TOKEN = "hw3-hostile-fork-" + os.urandom(6).hex()

# Attacks on the trust boundary ------------------------------------------------------------------------------

FORGE_RESULTS = """\
import builtins, json, sys, math, torch
real_print = builtins.print
def forged_print(*args, **kwargs):  # rewrite every result line the grader's cell prints
    text = " ".join(map(str, args))
    if len(args) == 2 and isinstance(args[1], str) and args[1].startswith('{"id"'):
        record = json.loads(args[1])
        record["outputs"] = {"plain": [{"value": 1.0}] * 7, "ties": [{"value": 0.5}] * 3}
        args = (args[0], json.dumps(record))
    real_print(*args, **kwargs)
builtins.print = forged_print
json.dumps = lambda *a, **k: '{"id": "q3a", "outputs": [{"value": [1, 1, 1]}]}'
math.isclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
for nonce_guess in ("0" * 32, "f" * 32):
    print(nonce_guess, '{"id": "q3b", "outputs": []}')
"""

LYING_TENSOR = """\
import torch
class Liar(torch.Tensor):
    def __eq__(self, other): return True
    def tolist(self): return [1.0, 1.0, 1.0]
    def __float__(self): return 1.0
def norms(beta):
    return torch.zeros(3).as_subclass(Liar)
"""

SNOOP = """\
import glob, os, pathlib
found = []
for pattern in ("/work/*/answers/*.ipynb", "/work/*/*", "/tmp/*", "/tmp/*/*", "/tmp/*/*/*", "/root/*", "/home/*/*",
                "/*/course.key", "/proc/[0-9]*/environ", "/proc/[0-9]*/cmdline", "/proc/[0-9]*/cwd/*"):
    for path in glob.glob(pattern)[:200]:
        try:
            text = pathlib.Path(path).read_text(errors="replace")
        except OSError:
            continue
        if "BEGIN SOLUTION" in text or "{secret}" in text or "course.key" in path:
            found.append(path)
found += [k for k, v in os.environ.items() if "{secret}" in v]
others = glob.glob("/tmp/*/*/submissions/*.ipynb") + glob.glob("/home/student/submission/*")[1:]
def rnn_output(xs):
    raise ValueError("LEAK " + repr(found + others)[:300])
"""

TAMPER = """\
import os, site, sys, pathlib, hw3
targets = [pathlib.Path(hw3.__file__).parent / "rnn.py", *[pathlib.Path(p) / "evil.pth" for p in site.getsitepackages()],
           pathlib.Path(site.getsitepackages()[0]) / "sitecustomize.py",
           pathlib.Path.home() / ".ipython/profile_default/startup/00-evil.py",
           pathlib.Path(sys.prefix) / "share/jupyter/kernels/python3/kernel.json", pathlib.Path("/tmp/hw3-evil.py")]
written = []
for target in targets:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as f:
            f.write("\\nimport builtins; builtins.HW3_TAMPERED = True\\n")
        written.append(str(target))
    except OSError:
        pass
print("written:", written)
"""

KILL_THE_GRADER = """\
import os, signal
for pid in range(2, 5000):
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
"""

PROBE_TAMPERED = """\
import builtins
assert not getattr(builtins, "HW3_TAMPERED", False), "an earlier submission's tampering reached this kernel"
"""


def submissions() -> dict[str, nbformat.NotebookNode | str]:
    """name -> hostile notebook (or raw text), plus correct notebooks before and after the attacks."""
    stored = answer_key()  # 10 MB of outputs saved in the file: ignored, never run or reported
    cell(stored, "q2-demo").outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 10_000_000)]
    cell(stored, "q3a-check").outputs = [nbformat.v4.new_output("display_data", data={"image/png": "A" * 1_000_000})]

    prints = answer_key()  # 10 MB printed in one go, 11 MB in 200 000 lines
    insert_before(prints, "q2-check", 'print("x" * 10_000_000)')
    insert_before(prints, "q3a-check", 'for i in range(200_000):\n    print(i, "y" * 50)')

    sleeps = answer_key()
    insert_before(sleeps, "q3a-check", "import time\ntime.sleep(10**6)")

    forks = answer_key()
    insert_before(forks, "q3b-check", FORKS.format(token=FORK_TOKEN))

    allocates = answer_key()
    insert_before(allocates, "q2-check", ALLOCATE_20_GIB + "data = bytearray(20 * 2**30)")
    insert_before(allocates, "q3a-check", ALLOCATE_20_GIB + "data = torch.empty(20 * 2**30, dtype=torch.uint8).fill_(1)")

    exits = answer_key()
    insert_before(exits, "q2-check", 'raise SystemExit("bye")')
    cell(exits, "q3a-solution").source = "def norms(beta):\n    import sys\n    sys.exit(0)"
    cell(exits, "q3b-solution").source = "def attention(X):\n    import os\n    os._exit(1)"
    insert_before(exits, "q4-3a-check", "exit()")  # IPython's exit(): the kernel carries on

    imports = answer_key()
    cell(imports, "q2-solution").source = "from hw3.rnn import closed_form as rnn_output"
    cell(imports, "q3a-solution").source = ("from hw3.attention import token_norms, tokens\n"
                                            "norms = lambda beta: token_norms(tokens(beta))")
    cell(imports, "q3b-solution").source = ("import functools\nfrom hw3.attention import self_attention\n"
                                            "attention = functools.partial(self_attention)")
    cell(imports, "q4-3a-solution").source = ("def binary_accuracy(preds, y):\n    from hw3.sentiment import training\n"
                                              "    return training.binary_accuracy(preds, y)")

    unsolved = nbformat.read(FIXTURE.parent / "mini_answers.ipynb", as_version=4)
    for c in unsolved.cells:
        if c.id.endswith("-solution"):
            c.source = "def rnn_output(xs):\n    raise NotImplementedError\n" if c.id == "q2-solution" else "pass"
    forged = unsolved
    insert_before(forged, "q2-check", FORGE_RESULTS)
    cell(forged, "q3a-solution").source = LYING_TENSOR

    snoop = answer_key()
    cell(snoop, "q2-solution").source = SNOOP.replace("{secret}", SECRET)

    tamper = answer_key()
    insert_before(tamper, "q2-check", TAMPER)

    killer = answer_key()
    insert_before(killer, "q2-check", KILL_THE_GRADER)

    later = answer_key()  # graded after every attack: nothing they did may reach it
    insert_before(later, "q2-check", PROBE_TAMPERED)

    other_homework = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Homework 2"),
        nbformat.v4.new_code_cell("from hw2.grading import check\nanswer = 42"),
        nbformat.v4.new_code_cell('check("hw2-q1", answer)')])

    return {"a_correct": answer_key(), "stored_outputs": stored, "prints": prints, "sleeps": sleeps, "forks": forks,
            "allocates": allocates, "exits": exits, "imports_reference": imports, "forged": forged, "snoop": snoop,
            "tamper": tamper, "killer": killer, "zz_later": later, "other_homework": other_homework,
            "not_json": "[" * 100_000}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Grade every hostile submission in one `hw3 grade` run, with a secret in the grader's environment."""
    root = tmp_path_factory.mktemp("hostile")
    subs = write_course(root, submissions())
    os.environ["HW3_TEST_SECRET"] = SECRET
    try:
        result = grade_all(root, subs, "--timeout", "20", "--memory-gb", "4")
    finally:
        del os.environ["HW3_TEST_SECRET"]
    result["text"] = (root / "out" / "grades.json").read_text(encoding="utf-8")
    return result


def messages(report: dict) -> dict[str, str | None]:
    """{id: message, or None when passed} of the exercises the fixture checks."""
    return {qid: (None if q["status"] == "passed" else q["message"]) for qid, q in rows(report).items() if qid in CHECKED}


def test_the_whole_batch_is_graded_and_exits_0(graded):
    assert graded["rc"] == 0
    assert set(graded["reports"]) == set(submissions())
    for name in ("a_correct", "zz_later"):
        assert graded["reports"][name]["total"] == 6 and graded["reports"][name]["notes"] == [], name


def test_a_notebook_that_is_not_json(graded):
    report = graded["reports"]["not_json"]
    assert report["total"] == 0
    assert report["notes"] == ["not_json.ipynb is not valid JSON (RecursionError): download it again as .ipynb"]
    assert set(messages(report).values()) == {"no usable notebook has the check cells of hw3.ipynb (see the notes)"}


def test_a_notebook_from_another_homework(graded):
    report = graded["reports"]["other_homework"]
    assert report["total"] == 0
    assert report["notes"] == ["other_homework.ipynb has no check cells of the hw3 notebooks: it is not an hw3 "
                               "homework notebook"]


def test_huge_stored_and_printed_outputs_cost_nothing_and_stay_out_of_the_report(graded):
    for name in ("stored_outputs", "prints"):
        report = graded["reports"][name]
        assert messages(report) == dict.fromkeys(CHECKED), name
        assert report["notes"] == []
    assert (graded["out"] / "grades.json").stat().st_size < 200_000  # no output was copied into the report


def test_a_cell_that_sleeps_is_skipped_and_noted(graded):
    report = graded["reports"]["sleeps"]
    assert messages(report) == dict.fromkeys(CHECKED)  # norms was defined before the sleeping cell
    assert "cell 7 did not finish within 20 s" in report["notes"]


def processes_with(token: str) -> list[int]:
    """Live processes whose command line holds `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state not in "ZX":
                        found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def test_forks_and_daemons_die_with_the_kernel(graded):
    report = graded["reports"]["forks"]
    assert messages(report) == dict.fromkeys(CHECKED)
    assert "cell 9 did not finish within 20 s" in report["notes"]
    assert processes_with(FORK_TOKEN) == []


def test_allocating_20_gib_fails_fast_inside_the_kernel(graded):
    report = graded["reports"]["allocates"]
    assert "cell 4 ran out of memory under the grader's 4 GiB limit: use less memory (MemoryError)" in report["notes"]
    assert any(n.startswith("cell 8 ran out of memory under the grader's 4 GiB limit") for n in report["notes"])
    assert messages(report) == dict.fromkeys(CHECKED)  # the kernel survived, the functions are scored


def test_exits_in_cells_and_in_probed_functions(graded):
    report = graded["reports"]["exits"]
    found = messages(report)
    assert found["q2"] is None and "cell 4 raised SystemExit: bye" in report["notes"]
    assert found["q3a"].startswith("checking it raised SystemExit")
    assert found["q3b"] == "a checked function stopped the Python kernel during the grader's probes"
    assert found["q4.3a"] is None  # after exit() and after q3b stopped the kernel, q4.3a is still scored


def test_importing_the_reference_solutions_earns_nothing(graded):
    found = messages(graded["reports"]["imports_reference"])
    assert set(found) == set(CHECKED)
    for qid, message in found.items():
        assert message is not None and "withheld" in message, (qid, message)


def test_forged_results_lying_tensors_and_patched_comparisons_earn_nothing(graded):
    report = graded["reports"]["forged"]
    assert report["total"] == 0, messages(report)


def test_nothing_outside_the_submission_is_visible_and_nothing_leaks(graded):
    q2 = rows(graded["reports"]["snoop"])["q2"]
    assert q2["status"] == "failed" and "LEAK []" in q2["message"], q2["message"]
    assert SECRET not in graded["text"] and "BEGIN SOLUTION" not in graded["text"]


def test_tampering_does_not_outlive_its_submission(graded):
    assert graded["reports"]["tamper"]["total"] == 6  # its own answers are right; its writes went nowhere
    later = graded["reports"]["zz_later"]
    assert later["total"] == 6 and later["notes"] == []
    assert not Path("/tmp/hw3-evil.py").exists()
    import hw3
    assert "HW3_TAMPERED" not in (Path(hw3.__file__).parent / "rnn.py").read_text()


def test_signalling_every_pid_reaches_only_the_sandbox(graded):
    assert graded["reports"]["killer"]["total"] == 6  # the grader lived on and graded it


def test_reports_stay_small_and_one_line(graded):
    for report in graded["reports"].values():
        for q in report["questions"]:
            assert "\n" not in q["message"] and len(q["message"]) <= 200
        assert all("\n" not in note and len(note) <= 400 for note in report["notes"])


def test_no_sandbox_is_explicit_and_noted(tmp_path):
    subs = write_course(tmp_path, {"alice": answer_key()})
    result = grade_all(tmp_path, subs, "--timeout", "20", "--no-sandbox")
    report = result["reports"]["alice"]
    assert report["total"] == 6 and report["sandboxed"] is False
    assert report["notes"] == ["graded with --no-sandbox: the notebook ran unconfined, as the grader's user"]


def test_grade_refuses_when_the_sandbox_cannot_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    from hw3.grading.kernel import sandbox
    sandbox.available.cache_clear()
    try:
        subs = write_course(tmp_path, {"alice": answer_key()})
        assert hw3("grade", subs / "alice.ipynb", "--answers", tmp_path / "answers", "--key-file",
                   tmp_path / "key") == 1
    finally:
        sandbox.available.cache_clear()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bubblewrap is not installed: `apt-get install bubblewrap`" in err


# malformed files and exit codes ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe not utf-8", "is not UTF-8 text"),
    (b"{not json", "is not valid JSON (line 1)"),
    (b"[" * 100_000, "is not valid JSON (RecursionError)"),
    (b'{"cells": [], "n": ' + b"1" * 5000 + b"}", "is not valid JSON (ValueError)"),
    (b"[1, 2]", "is JSON but not a Jupyter notebook"),
    (b'{"cells": [{"source": "x"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "is not a valid Jupyter notebook"),
    (b'{"cells": [], "nbformat": 99, "nbformat_minor": 0, "metadata": {}}', "is not a valid Jupyter notebook"),
])
def test_malformed_files_give_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "sub.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_notebook(path)


def test_huge_or_deeply_nested_cells_are_not_parsed():
    from hw3.grading.notebook import cell_check_calls, parse_cell

    assert parse_cell('check("q2", f)\n' + "x = 1\n" * 100_000) is None  # 600 000 characters: not parsed
    assert parse_cell("(" * 10_000 + ")" * 10_000) is None
    assert cell_check_calls("[" * 100_000, 0) == []


def test_a_notebook_over_100_mb_is_not_read(tmp_path):
    path = tmp_path / "huge.ipynb"
    with open(path, "wb") as f:
        f.truncate(101 * 2**20)  # sparse: nothing is written
    with pytest.raises(NotebookError, match="is 101 MB, over the grader's 100 MB limit: clear its outputs"):
        read_notebook(path)


def test_exit_codes_are_documented_and_kept(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        hw3("grade", "--help")
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "exit status:" in help_text and "--memory-gb" in help_text
    for code in ("0  grading ran", "1  bad input", "2  usage error"):
        assert code in help_text
    ref = write_answers(tmp_path)
    assert hw3("grade", tmp_path / "missing.ipynb", "--answers", ref, "--key-file", tmp_path / "key") == 1
    for bad in ("-1", "lots", "inf"):
        with pytest.raises(SystemExit) as info:
            hw3("grade", FIXTURE, "--answers", ref, "--memory-gb", bad)
        assert info.value.code == 2
    assert "not a number of GiB" in capsys.readouterr().err


