"""The notebooks' check cells: one line each against the answer key's public answers, never an exception (so
"Run all" goes on past a wrong answer), clear lines for misuse, and the setup cell's guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from grading_helpers import answer_key, cell, hw3, write_answers
from nbclient import NotebookClient

from hw3.grading import check, require
from hw3.grading.course import load_course
from hw3.grading.exercises.checks import public_checks
from hw3.grading.kernel.sandbox import available

REPO = Path(__file__).resolve().parents[3]


def own_rnn_output(xs):
    h = 0
    for x in xs:
        h = x - h
    return float(torch.sigmoid(torch.tensor(1000.0 * h, dtype=torch.float64)))


def line(capsys, qid: str, *args) -> str:
    """The single line check() printed (it must not raise)."""
    check(qid, *args)
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.endswith("\n") and not err, (out, err)
    return out.rstrip("\n")


def test_a_pass_prints_its_points(capsys):
    assert line(capsys, "q2", own_rnn_output) == "✅ q2 passed (1.5 pts)"
    assert line(capsys, "q4.2b", lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)) == \
        "✅ q4.2b passed (1 pt)"


def test_student_prints_are_swallowed(capsys):
    def noisy(xs):
        print("debugging", xs)
        print("more", file=sys.stderr)
        return own_rnn_output(xs)
    assert line(capsys, "q2", noisy) == "✅ q2 passed (1.5 pts)"


def test_a_partial_answer_shows_points_reason_and_hint(capsys):
    text = line(capsys, "q4.3a", lambda p, y: 100 * (torch.round(torch.sigmoid(p)) == y).float().mean())
    assert text.startswith("❌ q4.3a: 1 of 2 pts — binary_accuracy(preds=[")
    assert "(hint: return a fraction between 0 and 1, not a percentage)" in text


def test_a_wrong_answer_prints_one_line_and_raises_nothing(capsys):
    assert line(capsys, "q2", lambda xs: 0.5).startswith("❌ q2: 0 of 1.5 pts — rnn_output([")


@pytest.mark.parametrize("args, reason", [
    (("q9", 1), "the installed hw3 has no check 'q9': reinstall hw3"),
    (("q1", "CNNs are fast"), "the installed hw3 has no check 'q1'"),
    (("q2",), "wrong arguments for this check"),
    (("q2", 0.5), "expected a function, got float"),
])
def test_misused_checks_print_clearly(capsys, args, reason):
    text = line(capsys, *args)
    assert text.startswith(f"❌ {args[0]}: ") and reason in text, text


def test_a_scorer_that_trips_over_returned_data_fails_its_tests_not_the_notebook(capsys, monkeypatch):
    from hw3.grading.exercises.q4_inference import Predictions

    monkeypatch.setattr(Predictions, "score", lambda self, marks, inputs, outputs, expected: 1 / 0)
    text = line(capsys, "q4.4b", {"a": 0.5, "b": 0.5})
    assert text.startswith("❌ q4.4b: 0 of 1 pt") and "the returned values could not be read (ZeroDivisionError)" in text


def test_the_setup_cells_guard_names_a_stale_hw3_with_the_fix(capsys):
    installed = public_checks()["digest"]
    require(installed)
    require(None)  # an answer key's setup cell
    assert capsys.readouterr().out == ""
    require("0123456789ab")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "released with hw3 checks 0123456789ab, but the installed hw3" in out
    assert f"has {installed}: reinstall hw3" in out


@pytest.mark.skipif(available() is not None, reason=f"the grading sandbox cannot start: {available()}")
def test_run_all_goes_on_past_a_wrong_answer(tmp_path):
    """A notebook run top to bottom (nbclient stops at the first cell that raises, as Colab's Run all does)
    reaches its last cell with a wrong answer in the middle; its check prints ❌ and the others ✅."""
    write_answers(tmp_path)
    checks = tmp_path / "checks.json"
    assert hw3("assign", "--answers", tmp_path / "answers", "--notebooks", tmp_path / "notebooks",
               "--checks", checks) == 0
    nb = answer_key()
    cell(nb, "q3a-solution").source = "def norms(beta):\n    return [beta, beta, beta]"
    env = {**os.environ, "HW3_PUBLIC_CHECKS": str(checks),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    printed = {c.id: "".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.id.endswith("check")}
    assert printed["q3a-check"].startswith("❌ q3a: 0 of 0.5 pts")
    assert printed["q4-3a-check"] == "✅ q4.3a passed (2 pts)\n"  # the last cell ran
    assert printed["q2-check"].endswith("✅ q2 passed (1.5 pts)\n")


def test_checks_defer_to_the_grader_inside_the_grading_build(tmp_path):
    from hw3.grading.grader import grading_build

    build = grading_build(load_course(REPO / "answers"))
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


def test_every_reference_of_the_homework_is_withheld_from_the_grading_build_and_none_from_the_keys():
    from hw3.grading.grader import grading_build, key_build

    course = load_course(REPO / "answers")
    build, key = grading_build(course), key_build()
    for module, names in course.homework.withheld().items():
        path = module.split(".", 1)[1].replace(".", "/") + ".py"
        for qualname in names:
            assert f"{module}.{qualname} is the course's reference solution" in (build / "hw3" / path).read_text()
            assert "is the course's reference solution" not in (key / "hw3" / path).read_text()
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

    build = grading_build(load_course(REPO / "answers"))
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


@pytest.mark.parametrize("v2", [False, True])
def test_kernel_cgroups_nest_below_the_graders_own_with_v1_so_its_limit_covers_them(tmp_path, monkeypatch, v2):
    """With cgroup v1 a kernel's memory cgroup is made below the grader's own (a container's or a benchmark's
    768 MiB limit then holds for the grader and its kernels together), not beside it at the root; with v2 the
    grader's own cgroup holds a process, so no controller can be enabled below it, and the root stays."""
    from hw3.grading.kernel import sandbox
    from hw3.sentiment import memory

    root = tmp_path / "cgroup"
    own = "/gradescope/job"
    if v2:
        (root / own.strip("/")).mkdir(parents=True)
        (root / "cgroup.controllers").write_text("cpu memory pids\n")
    else:
        for controller in ("memory", "pids", "cpu"):
            (root / controller / own.strip("/")).mkdir(parents=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n" if v2 else f"6:cpu,cpuacct:{own}\n5:pids:{own}\n4:memory:{own}\n0::/\n")
    monkeypatch.setattr(sandbox, "CGROUP_ROOT", root)
    monkeypatch.setattr(sandbox, "is_root", lambda: True)
    monkeypatch.setattr(memory, "PROC_CGROUP", proc)
    cgroup = sandbox.Cgroup.create("nest", sandbox.Limits(memory_gb=0.5))
    assert cgroup is not None
    expected = [root / "hw3-{}-nest"] if v2 else [root / c / own.strip("/") / "hw3-{}-nest" for c in ("memory", "pids", "cpu")]
    assert cgroup.folders == [Path(str(f).format(os.getpid())) for f in expected]
    limit = cgroup.folders[0] / ("memory.max" if v2 else "memory.limit_in_bytes")
    assert int(limit.read_text()) == 2**29


OOM_PROBE = """
import subprocess, sys
from hw3.grading.kernel import sandbox
cgroup = sandbox.Cgroup.create("oom-probe", sandbox.Limits(memory_gb=float(sys.argv[1])))
procs = str(cgroup.procs[0])
def join():
    with open(procs, "w") as f:
        f.write("0")
subprocess.run([sys.executable, "-c", "x = bytearray(400 << 20); x[::4096] = b'1' * len(x[::4096])"], preexec_fn=join)
print(cgroup.out_of_memory(), cgroup.hit_own_limit())
cgroup.remove()
"""


@pytest.mark.parametrize("kernel_gb, stopped_by", [(0.125, "its own limit"), (8, "the limit above it")])
def test_a_kernel_stopped_by_the_container_s_memory_is_told_from_one_over_its_own_limit(tmp_path, kernel_gb,
                                                                                         stopped_by):
    """In a 256 MiB container (a cgroup above the grader's), a kernel allocating 400 MiB under its own 8 GiB limit is
    stopped by the container's limit: the grader must not tell the student they used more than 8 GiB."""
    from hw3.grading.kernel import sandbox
    from hw3.sentiment.memory import own_cgroup

    v2 = (sandbox.CGROUP_ROOT / "cgroup.controllers").is_file()
    own = own_cgroup("" if v2 else "memory") if sandbox.is_root() else None
    if own is None or v2:  # v2: the test process's own cgroup cannot take a child with a controller
        pytest.skip("needs root and cgroup v1's memory controller (the kernel cgroups nest below the grader's there)")
    container = own / f"hw3-test-container-{os.getpid()}"
    container.mkdir()
    try:
        (container / "memory.limit_in_bytes").write_text(str(256 << 20))
        run = subprocess.run(["sh", "-c", f'echo $$ > {container}/cgroup.procs && exec "$@"', "sh", sys.executable,
                              "-c", OOM_PROBE, str(kernel_gb)], capture_output=True, text=True, timeout=120)
    finally:
        sandbox.Cgroup([container], False).remove()
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", str(stopped_by == "its own limit")]


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
