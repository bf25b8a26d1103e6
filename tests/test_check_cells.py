"""The notebooks' check cells: one line each, a CheckFailed on failure, clear errors for misuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hw3.grading import CheckFailed, check
from hw3.grading.exercises.registry import BY_ID


def own_rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))


def line(capsys, qid: str, *args) -> tuple[str, bool]:
    """(the single line check() printed, whether it raised CheckFailed)."""
    try:
        check(qid, *args)
        failed = False
    except CheckFailed:
        failed = True
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.endswith("\n") and not err, (out, err)
    return out.rstrip("\n"), failed


def test_a_pass_prints_its_points(capsys):
    assert line(capsys, "q2", own_rnn_output) == ("✅ q2 passed (1.5 pts)", False)


def test_student_prints_are_swallowed(capsys):
    def noisy(xs):
        print("debugging", xs)
        print("more", file=sys.stderr)
        return own_rnn_output(xs)
    assert line(capsys, "q2", noisy) == ("✅ q2 passed (1.5 pts)", False)


def test_a_partial_answer_shows_points_reason_and_hint(capsys):
    text, failed = line(capsys, "q4.3a", lambda p, y: 100 * (torch.round(torch.sigmoid(p)) == y).float().mean())
    assert failed and text.startswith("❌ q4.3a: 1 of 2 pts — binary_accuracy(preds=[")
    assert "(hint: return a fraction between 0 and 1, not a percentage)" in text


def test_failure_is_an_assertion_with_a_one_line_traceback(capsys):
    with pytest.raises(AssertionError) as info:
        check("q2", lambda xs: 0.5)
    assert isinstance(info.value, CheckFailed)
    assert info.value._render_traceback_() == [f"CheckFailed: {info.value}"]
    assert capsys.readouterr().out.startswith("❌ q2: 0 of 1.5 pts — rnn_output([")


@pytest.mark.parametrize("args, reason", [
    (("q9", 1), "unknown check id 'q9'"),
    (("q1", "CNNs are fast"), "q1 is graded by hand"),
    (("q2",), "wrong arguments for check('q2', ...)"),
    (("q2", 0.5), "expected a function, got float"),
])
def test_misused_checks_fail_clearly(capsys, args, reason):
    text, failed = line(capsys, *args)
    assert failed and text.startswith(f"❌ {args[0]}: ") and reason in text, text


def test_a_scorer_that_trips_over_returned_data_fails_its_tests_not_the_notebook(capsys, monkeypatch):
    exercise = BY_ID["q4.4b"].exercise
    monkeypatch.setattr(type(exercise), "score", lambda self, inputs, outputs: 1 / 0)
    text, failed = line(capsys, "q4.4b", {"a": 0.5, "b": 0.5})
    assert failed and "the returned values could not be read (ZeroDivisionError)" in text


def test_checks_defer_to_the_grader_inside_the_grading_build(tmp_path):
    from hw3.grading.grader import grading_build

    build = grading_build()
    code = ("from hw3.grading import check\nimport hw3.rnn as r\ncheck('q2', lambda xs: 0.5)\n"
            "try:\n    r.closed_form([1, 2])\nexcept NotImplementedError as e:\n    print(e)\n"
            "print(r.plot_sequence.__name__, r.simulate.__doc__ is not None)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(build), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "⏳ q2: scored by hw3 grade",
        "hw3.rnn.closed_form is the course's reference solution: it is withheld while grading; write the exercise yourself",
        "plot_sequence True"]


def test_every_reference_is_withheld_from_the_grading_build():
    from hw3.grading.kernel import withheld
    from hw3.grading.grader import grading_build

    build = grading_build()
    for module, names in withheld.withheld_functions().items():
        source = (build / "hw3" / (module.split(".", 1)[1].replace(".", "/") + ".py")).read_text()
        for qualname in names:
            assert f"{module}.{qualname} is the course's reference solution" in source
    assert "def tokens(" in (build / "hw3" / "attention.py").read_text()  # the handed-out helpers stay


def test_private_folders_are_mounted_before_binds_that_lie_inside_them(tmp_path, monkeypatch):
    """A checkout (its .venv and hw3) under /tmp must stay visible: the /tmp tmpfs goes first."""
    from hw3.grading.kernel import sandbox

    monkeypatch.setattr(sandbox, "python_dirs", lambda: ["/tmp/checkout/.venv"])
    mounts = sandbox.Mounts(tmp_path / "build", Path("/tmp/checkout/hw3"), tmp_path / "sockets", tmp_path / "x.ipynb")
    args = sandbox.bwrap_args(mounts, sandbox.Limits(), {})
    tmpfs = next(i for i, word in enumerate(args) if word == "/tmp" and args[i - 1] == "--tmpfs")
    binds = [i for i, word in enumerate(args) if word in ("/tmp/checkout/hw3", "/tmp/checkout/.venv")]
    assert len(binds) == 3 and all(i > tmpfs for i in binds)  # the .venv as source and destination, hw3 as destination


def test_the_grading_build_ships_the_grading_corpus_as_its_sample(tmp_path):
    """A graded notebook's load_splits gives exactly what the grader expects for q4.1b (corpus.grading_splits),
    and the build holds nothing else of the 400-review sample."""
    from hw3.grading.grader import grading_build
    from hw3.grading.kernel.corpus import PER_LABEL, grading_splits

    build = grading_build()
    code = ("from hw3.sentiment.data import load_splits, resolve_data\n"
            "print(repr([[tuple(r) for r in part] for part in load_splits(resolve_data('auto'))]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(build), "PATH": "/usr/bin:/bin", "HW3_CACHE": str(tmp_path),
                              "HW3_OFFLINE": "1"}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == repr([[tuple(r) for r in part] for part in grading_splits()])
    files = list((build / "hw3" / "sentiment" / "corpus" / "aclImdb").rglob("*.txt"))
    assert len(files) == 2 * sum(PER_LABEL.values())


def test_the_cgroups_of_a_killed_grader_are_swept_and_a_running_graders_kept():
    from hw3.grading.kernel import sandbox

    probe = sandbox.Cgroup.create("sweep-probe", sandbox.Limits())
    if probe is None:
        pytest.skip("no writable cgroup here (not root, or no memory/pids controllers)")
    probe.remove()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    base = probe.folders[0].parent
    stale, live = base / f"hw3-{int(gone.stdout)}-stale", base / f"hw3-{os.getpid()}-live"
    stale.mkdir()
    live.mkdir()
    try:
        sandbox.sweep_stale_cgroups.__wrapped__()
        assert not stale.exists() and live.exists()
    finally:
        for folder in (stale, live):
            if folder.exists():
                folder.rmdir()


def test_the_socket_folder_mounted_as_root_holds_its_size_for_every_kind_of_file(tmp_path):
    from hw3.grading.kernel import sandbox

    folder = tmp_path / "sockets"
    folder.mkdir()
    if not sandbox.mount_limited(folder, 2 * 2**20, os.getuid()):
        pytest.skip("cannot mount here (an ordinary user, or no CAP_SYS_ADMIN): the disk watch counts instead")
    try:
        fd = os.open(folder / "hidden", os.O_CREAT | os.O_RDWR, 0o600)
        os.unlink(folder / "hidden")
        with pytest.raises(OSError, match="No space left"):
            for _ in range(3):
                os.write(fd, b"x" * 2**20)
        os.close(fd)
    finally:
        sandbox.unmount(folder)
    assert not os.path.ismount(folder) and list(folder.iterdir()) == []
