"""Benchmark: what hostile submissions cost the grader process itself (issue 17), against an honest baseline.

Three batches of the mini course (tests/grading_fixtures), each graded by `python -m hw3 grade --jobs 1
--timeout 20` in a subprocess: alice's honest notebook alone (the baseline); alice and a notebook whose one
cell sends 400 `error` messages of ~4 MB (the flood); alice and a notebook with three cells of 2,000 lines of
`%time x` (the parse bomb). Prints the grader's peak resident memory (VmHWM, sampled every 0.1 s; its kernels
are other processes) and the wall time of each batch, the flood's and the bomb's figures as ratios to the
baseline's, and the seconds the grader's main thread spends reading the bomb's batch (the bomb in a folder
submission) before any kernel starts (`batch.find_submissions`). A batch still running after --limit seconds
is stopped and printed as such.

    python benchmarks/bench_hostile.py
    python benchmarks/bench_hostile.py --repo /tmp/old-checkout --limit 900   # an older grader

--repo runs the grader of another checkout (its hw3 first on PYTHONPATH); the course is always written by this
checkout's `hw3 assign`.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from grading_helpers import answer_key, peak_kib, write_course  # noqa: E402

FLOOD = """\
k = get_ipython().kernel
parent = k.get_parent("shell")
line = "T" * 200_000
for _ in range(400):
    k.session.send(k.iopub_socket, "error", {"ename": "Flood", "evalue": line, "traceback": [line] * 20},
                   parent=parent, ident=k._topic("error"))
"""
BOMB = "\n".join(["%time x"] * 2000)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout whose grader runs (default: this one)")
    p.add_argument("--limit", type=float, default=900, help="seconds after which a batch is stopped (default: 900)")
    return p.parse_args()


def with_cells(sources: list[str]) -> nbformat.NotebookNode:
    """alice's notebook with these cells before q2's check cell."""
    nb = answer_key()
    index = next(i for i, c in enumerate(nb.cells) if c.id == "q2-check")
    nb.cells[index:index] = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def run(repo: Path, extra: nbformat.NotebookNode | None, limit: float) -> tuple[float, int, bool]:
    """(wall seconds, grader peak KiB, finished) of one batch: alice, and `extra` as mallory's notebook."""
    with tempfile.TemporaryDirectory(prefix="hw3-bench-hostile-") as tmp:
        root = Path(tmp)
        subs = write_course(root, {"alice": answer_key(), **({"mallory": extra} if extra is not None else {})})
        (root / "course.key").write_text(random.randbytes(32).hex() + "\n")
        scored_against = (["--answers", str(root / "answers")] if (repo / "answers" / "questions.toml").is_file()
                          else ["--reference", str(root / "notebooks")])  # graders before the answer key's own
        command = [sys.executable, "-m", "hw3", "grade", *scored_against, "--key-file", str(root / "course.key"),
                   "--json", str(root / "out.json"), "--jobs", "1", "--timeout", "20", *sorted(map(str, subs.iterdir()))]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None and time.monotonic() - started < limit:
            peak = max(peak, peak_kib(proc.pid))
            time.sleep(0.1)
        finished = proc.poll() is not None
        if not finished:
            proc.kill()
            proc.wait()
        return time.monotonic() - started, peak, finished


def reading_seconds(repo: Path, extra: nbformat.NotebookNode, limit: float) -> float | None:
    """Seconds the grader's main thread spends reading and checking a batch of alice and `extra` (in a folder
    submission, whose notebooks are checked for two students' work) before any kernel starts
    (`batch.find_submissions`, in a subprocess); None when it ran past `limit`."""
    with tempfile.TemporaryDirectory(prefix="hw3-bench-hostile-") as tmp:
        subs = write_course(Path(tmp), {"alice": answer_key()})
        (subs / "mallory").mkdir()
        nbformat.write(extra, subs / "mallory" / "hw3.ipynb")
        code = ("import sys, time\nfrom pathlib import Path\nfrom hw3.grading import batch\nstart = time.monotonic()\n"
                "batch.find_submissions([Path(p) for p in sys.argv[1:]])\nprint(time.monotonic() - start)\n")
        try:
            done = subprocess.run([sys.executable, "-c", code, *sorted(map(str, subs.iterdir()))], capture_output=True,
                                  text=True, timeout=limit, cwd=tmp, env={**os.environ, "PYTHONPATH": str(repo)})
        except subprocess.TimeoutExpired:
            return None
        return float(done.stdout.split()[-1])


def main() -> None:
    args = parse_args()
    print(f"grader: {args.repo}")
    batches = {"baseline (alice)": None, "flood (400 x 4 MB errors)": with_cells([FLOOD]),
               "parse bomb (3 x 2,000 lines of %time)": with_cells([BOMB] * 3)}
    figures = {}
    for name, extra in batches.items():
        seconds, peak, finished = run(args.repo, extra, args.limit)
        figures[name] = (seconds, peak)
        state = "" if finished else f"  (stopped after {args.limit:g} s)"
        print(f"{name:40s} wall {seconds:7.1f} s   grader peak {peak / 1024:7.0f} MiB{state}", flush=True)
    reading = reading_seconds(args.repo, batches["parse bomb (3 x 2,000 lines of %time)"], args.limit)
    print(f"{'parse bomb, read before grading':40s} " + (f"{reading:.2f} s" if reading is not None else
                                                          f"over {args.limit:g} s (stopped)"))
    (base_s, base_kib), (_, flood_kib), (bomb_s, _) = figures.values()
    print(f"flood: grader peak {flood_kib / base_kib:.2f}x the baseline (+{(flood_kib - base_kib) / 1024:.0f} MiB); "
          f"parse bomb: wall {bomb_s / base_s:.1f}x the baseline")


if __name__ == "__main__":
    main()
