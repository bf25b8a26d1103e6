"""Helpers shared by the grading tests: the mini course (answer key and questions.toml) and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from hw3.cli import main
from hw3.grading.course import load_course
from hw3.grading.exercises.registry import Homework, parse_homework
from hw3.grading.release import notebooks
from hw3.sentiment import training

FIXTURE = Path(__file__).parent / "grading_fixtures" / "mini_answers.ipynb"
SPEC = Path(__file__).parent / "grading_fixtures" / "mini_questions.toml"


def hw3(*argv) -> int:
    """Run `hw3 <argv>` as a user does, through the main CLI."""
    return main([str(a) for a in argv])


def answer_key() -> nbformat.NotebookNode:
    """The mini answer key, freshly read."""
    return nbformat.read(FIXTURE, as_version=4)


def cell(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    """The cell with this id."""
    return next(c for c in nb.cells if c.id == cell_id)


def insert_before(nb: nbformat.NotebookNode, cell_id: str, source: str) -> None:
    """Insert a new code cell with `source` before the cell with this id."""
    index = next(i for i, c in enumerate(nb.cells) if c.id == cell_id)
    nb.cells.insert(index, nbformat.v4.new_code_cell(source))


def mini_homework() -> Homework:
    """The mini course's questions."""
    return load_homework_file(SPEC)


def load_homework_file(path: Path) -> Homework:
    """The homework of one questions.toml file."""
    import tomllib

    return parse_homework(tomllib.loads(path.read_text(encoding="utf-8")), str(path))


def write_answers(root: Path, key: nbformat.NotebookNode | None = None) -> Path:
    """root/answers with the mini answer key (or `key`) as hw3.ipynb and its questions.toml; returns the folder."""
    answers = root / "answers"
    answers.mkdir(exist_ok=True)
    (answers / "hw3.ipynb").write_text(nbformat.writes(key) if key is not None else FIXTURE.read_text(encoding="utf-8"),
                                       encoding="utf-8")
    (answers / "questions.toml").write_bytes(SPEC.read_bytes())
    return answers


def release(root: Path) -> dict[Path, str]:
    """Write root/notebooks, the student notebooks `hw3 assign` makes from root/answers; returns them."""
    released = notebooks(load_course(root / "answers"), root / "notebooks")
    for path, text in released.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return released


def write_course(root: Path, submissions: dict) -> Path:
    """answers/ (the mini key and its questions.toml), notebooks/ (assigned from it) and submissions/ under root;
    returns submissions/.

    `submissions` maps a student's name to a notebook or to raw text (for malformed files).
    """
    write_answers(root)
    release(root)
    subs = root / "submissions"
    subs.mkdir()
    for name, nb in submissions.items():
        (subs / f"{name}.ipynb").write_text(nb if isinstance(nb, str) else nbformat.writes(nb), encoding="utf-8")
    return subs


def grade_all(root: Path, subs: Path, *options) -> dict:
    """`hw3 grade` every submission (JSON and CSV reports and the store in root/out): rc, root, out and reports by student."""
    out = root / "out"
    out.mkdir()
    rc = hw3("grade", *sorted(subs.iterdir()), *options, "--answers", root / "answers",
             "--json", out / "grades.json", "--csv", out / "grades.csv", "--key-file", root / "course.key",
             "--store", out / "grades.sqlite", "--jobs", "1")  # one kernel at a time: steadier cell timings
    reports = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    reports = reports if isinstance(reports, list) else [reports]
    return {"rc": rc, "root": root, "out": out, "reports": {Path(r["submission"]).stem: r for r in reports}}


def rows(report: dict) -> dict[str, dict]:
    """A report's questions by id."""
    return {q["id"]: q for q in report["questions"]}


def student_train(zero_grad: bool = True, switch_mode: bool = True, mean: bool = True):
    """A student's own train loop (not the reference's), optionally forgetting optimizer.zero_grad(),
    model.train() or the mean over batches."""
    def train(model, iterator, optimizer, criterion):
        if switch_mode:
            model.train()
        losses, accs = [], []
        for x, y in iterator:
            if zero_grad:
                optimizer.zero_grad()
            preds = model(x).squeeze(1)
            loss = criterion(preds, y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            accs.append(training.binary_accuracy(preds, y).item())
        return sum(losses) / (len(losses) if mean else 1), sum(accs) / len(accs)
    return train


def reference_key(qid: str, tokenizer=None) -> tuple:
    """Key objects for question `qid` written with hw3's own implementations (the shipped homework's answers)."""
    from hw3 import attention, rnn
    from hw3.sentiment import model, predict

    keys = {"q2": (rnn.closed_form,), "q3a": (lambda beta: attention.token_norms(attention.tokens(beta).double()),),
            "q3b": (attention.self_attention,), "q4.2b": (model.count_parameters,),
            "q4.3a": (training.binary_accuracy,), "q4.3b": (training.train,), "q4.3c": (training.evaluate,),
            "q4.4a": (predict.predict_sentiment, None, tokenizer)}
    return keys[qid]


def key_answer_of(qid: str, seed: int = 1, tokenizer=None) -> dict:
    """The answer key's {"inputs", "outputs", "mistakes"} for `qid` (the real homework's question) on `seed`."""
    from hw3.grading.exercises.checks import key_answer

    question = load_homework_file(Path(__file__).resolve().parents[1] / "answers" / "questions.toml").by_id[qid]
    return key_answer(question.exercise, reference_key(qid, tokenizer), {}, seed)


NOBODY = 65534
"""The ordinary user the hostile-grader tests run `hw3 grade` as (with `setpriv`, when the tests run as root)."""


def peak_kib(pid: int) -> int:
    """The peak resident memory of process `pid` so far (VmHWM, KiB; 0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _soft_address_space(limit: int):
    """A preexec function setting a soft address-space limit (the hard limit stays, so kernels may raise theirs)."""
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return apply


def grade_cli(*argv, cwd: Path, timeout: float = 600, user: int | None = None) -> dict:
    """`hw3 grade ARGV` in a subprocess run from `cwd` (as uid `user` when given): its rc (None when it ran past
    `timeout` and was killed), stdout, stderr, seconds, the grader's peak resident memory in KiB (VmHWM, sampled)
    and, when `--json FILE` is among ARGV and was written, the reports by student. The grader gets a soft 8 GiB
    address-space limit, so a grader that reads without bound fails instead of taking the test machine."""
    import os
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "hw3", "grade", *map(str, argv)]
    if user is not None:
        command = ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups", *command]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HOME": str(cwd)}
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_soft_address_space(8 * 2**30))
    peak, killed = 0, False
    while proc.poll() is None:
        peak = max(peak, peak_kib(proc.pid))
        time.sleep(0.1)
        if time.monotonic() - started > timeout:
            proc.kill()
            killed = True
    stdout, stderr = proc.communicate()
    args = [str(a) for a in argv]
    out = Path(cwd, args[args.index("--json") + 1]) if "--json" in args else None
    reports = json.loads(out.read_text(encoding="utf-8")) if out and out.is_file() else []
    reports = reports if isinstance(reports, list) else [reports]
    return {"rc": None if killed else proc.returncode, "stdout": stdout, "stderr": stderr, "peak_kib": peak,
            "seconds": time.monotonic() - started, "reports": {r["student"]: r for r in reports}}
