"""Benchmark: `hw3 grade` on N copies of a full homework submission, for each --jobs.

Each copy (student01, student02, ...) is a folder with both answer keys (answers/hw3_q1-q3.ipynb and
answers/hw3_q4.ipynb), graded against the answer keys (`--answers`; graders before them, against notebooks/ with
`--reference`) by `python -m hw3 grade` in a subprocess, with a fresh
results store per run so nothing is reused. Prints, per --jobs: CPU-seconds per submission (the whole
machine's busy CPU time during the run, from /proc/stat: sandboxed kernels are not waited for by the grader,
so their CPU time never reaches its RUSAGE_CHILDREN; run it on an otherwise idle machine), wall seconds,
submissions per hour, the peak memory of the grader and its kernels together (PSS, sampled every 0.5 s;
the sampling's own CPU time is left out), and the points of each submission (the same answers must score
the same in every run and grader version). `--no-sandbox` times the same grading without bubblewrap.

    python benchmarks/bench_grading.py --copies 4 --jobs 1 2
    python benchmarks/bench_grading.py --repo ../main --baseline --copies 2 --jobs 1   # an older grader

--repo runs the grader of another checkout (`python -m hw3` imports from the working folder first);
--baseline passes none of the options added with the results store (--jobs, --store), for checkouts older
than them, and is only meaningful with --jobs 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hw3.grading.kernel.diskwatch import process_tree  # noqa: E402

KEYS = ("hw3_q1-q3.ipynb", "hw3_q4.ipynb")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, default=4, help="submissions to grade per run (default: 4)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to time (default: 1 2)")
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout whose grader runs (default: this one)")
    p.add_argument("--baseline", action="store_true", help="no --jobs/--store options (graders before them)")
    p.add_argument("--timeout", default="600", help="hw3 grade --timeout (default: 600)")
    p.add_argument("--no-sandbox", action="store_true", help="grade with hw3 grade --no-sandbox")
    return p.parse_args()


def make_submissions(folder: Path, copies: int) -> list[Path]:
    """`copies` student folders, each holding both answer keys."""
    students = []
    for i in range(1, copies + 1):
        student = folder / f"student{i:02d}"
        student.mkdir()
        for key in KEYS:
            shutil.copyfile(ROOT / "answers" / key, student / key)
        students.append(student)
    return students


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq, steal in /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7))
    return busy / os.sysconf("SC_CLK_TCK")


def tree_pss(pid: int) -> int:
    """Bytes of memory the process `pid` and everything below it use now (proportional set sizes: pages
    shared by the grader and its kernels, such as torch's libraries, count once)."""
    total = 0
    for member in process_tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total


def points(grades: Path) -> str:
    """The points of each graded submission, e.g. "23 23" (questions graded by hand count 0 until merged)."""
    return " ".join(f"{sum(q['points'] for q in report['questions']):g}" for report in json.loads(grades.read_text()))


def grade(args: argparse.Namespace, students: list[Path], jobs: int, work: Path) -> tuple[float, float, int, str]:
    """(CPU seconds, wall seconds, peak bytes of the grader and its kernels, points per submission) of one
    `hw3 grade` run over `students`."""
    scored_against = (["--answers", str(args.repo / "answers")] if (args.repo / "answers" / "questions.toml").is_file()
                      else ["--reference", str(args.repo / "notebooks")])  # graders before the answer key's own
    command = [sys.executable, "-m", "hw3", "grade", *map(str, students), *scored_against,
               "--timeout", args.timeout, "--json", str(work / f"grades-{jobs}.json")]
    if not args.baseline:
        command += ["--jobs", str(jobs), "--store", str(work / f"grades-{jobs}-{args.no_sandbox}.sqlite"),
                    "--key-file", str(work / "course.key"), *(["--no-sandbox"] if args.no_sandbox else [])]
    cpu, own, start = machine_cpu(), time.process_time(), time.perf_counter()
    run = subprocess.Popen(command, cwd=args.repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while run.poll() is None:
        peak = max(peak, tree_pss(run.pid))
        time.sleep(0.5)
    stderr = run.stderr.read()
    # the machine's busy time, less this script's own (reading smaps_rollup walks the kernels' page tables)
    wall, cpu = time.perf_counter() - start, machine_cpu() - cpu - (time.process_time() - own)
    if run.returncode != 0:
        sys.exit(f"bench_grading: hw3 grade exited {run.returncode}: {stderr.strip()[-500:]}")
    return cpu, wall, peak, points(work / f"grades-{jobs}.json")


def main() -> None:
    args = parse_args()
    print(f"{args.copies} submissions, grader of {args.repo}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    print(f"{'jobs':>4} {'CPU s/submission':>17} {'wall s':>8} {'submissions/hour':>17} {'peak MiB':>9}  points",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        work = Path(tmp)
        students = make_submissions(work, args.copies)
        for jobs in args.jobs:
            cpu, wall, peak, scores = grade(args, students, jobs, work)
            print(f"{jobs:>4} {cpu / args.copies:>17.1f} {wall:>8.1f} {3600 * args.copies / wall:>17.1f} "
                  f"{peak / 2**20:>9.0f}  {scores}", flush=True)


if __name__ == "__main__":
    main()
