"""Benchmark: the memory of `hw3 grade` on one full submission, per phase and per process, optionally in a cgroup.

The Gradescope case: one student folder with both answer keys (answers/hw3_q1-q3.ipynb and answers/hw3_q4.ipynb),
graded by `python -m hw3 grade FOLDER --answers answers --jobs 1` in a subprocess, with a fresh results store and
a fresh HW3_CACHE (so the corpus features are computed, as in a new container). Every --interval seconds the
benchmark reads the resident set size (RSS) and the proportional set size (PSS: a page mapped by N processes
counts 1/N in each) of every process below the grader from /proc/PID/smaps_rollup, and attributes each process
to a kind by its command line or its sandbox launcher's: the grader, the corpus prefill, the answer keys'
kernels, the student's kernels, the verifier. A phase is the process running beside the grader (none: "grader
alone", before the first one or after). It prints, per phase, the peak of all the processes together and of
the phase's own process, and per kind the peak PSS and RSS; then the points (23 of 23 automatic for the keys).
The sum of RSS counts pages the grader and a kernel share twice (an upper bound); the sum of PSS gives away the
shares of library pages that other programs on the machine map too (a lower bound there): in a container of
its own, the truth lies between them.

`--limit-mb N` starts the grader in a memory cgroup of N MiB (v1: memory.limit_in_bytes, below this process's own
cgroup; v2: memory.max) and prints the cgroup's peak usage (page cache included: it fills the limit and is
reclaimed before anything is killed, so the peak under a tight limit is the limit) and the OOM kills. With v1
the kernels' cgroups nest inside the grader's (`sandbox.cgroup_parent`), so the limit covers them: the benchmark
counts the kernel cgroups it saw inside its own. With v2, or a grader older than that nesting (`--repo`), the
kernels' cgroups are made at the root, the limit covers the grader and the verifier only, and that count is 0.
`--cold` drops the machine's clean page cache first, so that the cgroup is charged for the library pages it
reads, as a new container is; `--cpus 0.5` adds Gradescope's half a CPU; `--below-floor` grades where `hw3 grade` would
refuse for too little memory, to find the smallest cgroup that grades.

    python benchmarks/bench_grading_memory.py
    python benchmarks/bench_grading_memory.py --limit-mb 768 --cpus 0.5 --cold
    python benchmarks/bench_grading_memory.py --limit-mb 448 --cpus 0.5 --cold --below-floor
    python benchmarks/bench_grading_memory.py --repo ../main     # another checkout's grader
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEYS = ("hw3_q1-q3.ipynb", "hw3_q4.ipynb")
MIB = 2**20
BESIDE = ("corpus prefill", "key kernel hw3_q1-q3", "key kernel hw3_q4", "student kernel hw3_q1-q3",
          "student kernel hw3_q4", "verifier")  # the processes the grader runs, one at a time with --jobs 1
PHASES = (*BESIDE, "grader alone, start", "grader alone, later")
UNCHECKED = """import runpy, sys
from hw3.grading import batch
batch.NEEDED_GB = 0
sys.argv = ["hw3", *sys.argv[1:]]
runpy.run_module("hw3", run_name="__main__", alter_sys=True)"""
"""`python -m hw3 ARGS` without the check of the available memory (--below-floor)."""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout whose grader runs (default: this one)")
    p.add_argument("--limit-mb", type=int, default=0, help="run the grader in a memory cgroup of this many MiB")
    p.add_argument("--cpus", type=float, default=0.0,
                   help="with --limit-mb, also hold the grader and its kernels to this many CPUs (Gradescope: 0.5)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between samples (default: 0.2)")
    p.add_argument("--timeout", default="600", help="hw3 grade --timeout (default: 600)")
    p.add_argument("--no-sandbox", action="store_true", help="grade with hw3 grade --no-sandbox")
    p.add_argument("--cold", action="store_true",
                   help="drop the machine's clean page cache first (root), so the cgroup is charged for every library "
                        "page it reads, as a new container is (pages cached earlier stay charged to another cgroup)")
    p.add_argument("--below-floor", action="store_true",
                   help="grade even where hw3 grade would refuse for too little memory (its NEEDED_GB set to 0 in the "
                        "grader's process): to find where grading breaks")
    p.add_argument("--trace", type=Path, help="also write every sample to this file (seconds, phase, MiB per kind)")
    p.add_argument("--keep-cache", action="store_true",
                   help="use the machine's HW3_CACHE (corpus features already computed) instead of a fresh one")
    return p.parse_args()


# -- processes ------------------------------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def parents() -> dict[int, int]:
    """{pid: parent pid} of every process now."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read(f"/proc/{name}/stat")
            if stat:
                out[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def tree(root: int, links: dict[int, int]) -> list[int]:
    """`root` and every process below it, parents before children."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in links.items():
        children[parent].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(sorted(children[pid]))
    return found


def own_kind(command: str) -> str | None:
    """The kind a process's command line names (None: it takes its parent's kind: a launcher's child)."""
    if "hw3.grading.kernel.verifier" in command:
        return "verifier"
    if "hw3.grading.kernel.corpus" in command:
        return "corpus prefill"
    notebook = re.search(r"/home/student/submission/([^\s/]+)\.ipynb", command)
    if notebook or "ipykernel_launcher" in command:
        who = "key" if "hw3-key-" in command else "student"
        return f"{who} kernel {notebook[1] if notebook else '?'}"
    return None


@dataclass
class Sample:
    """One reading: {pid: (kind, PSS bytes, RSS bytes)}."""

    processes: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    started: bool = False  # a process beside the grader ran at this sample or before it
    seconds: float = 0.0

    def phase(self) -> str:
        kinds = {kind for kind, _, _ in self.processes.values()} - {"grader"}
        alone = "grader alone, later" if self.started else "grader alone, start"
        return next((p for p in BESIDE if p in kinds), alone)

    def total(self, index: int) -> int:
        return sum(values[index] for values in self.processes.values())

    def of(self, kind: str, index: int) -> int:
        return sum(values[index] for values in self.processes.values() if values[0] == kind)


def sample(grader: int) -> Sample:
    """PSS and RSS of the grader and every process below it, each with its kind."""
    links = parents()
    kinds: dict[int, str] = {}
    out = Sample()
    for pid in tree(grader, links):
        command = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
        inherited = kinds.get(links.get(pid, 0), "grader")
        if pid == grader:
            kinds[pid] = "grader"
        elif " kernel " in inherited:  # the kernel below its sandbox's launcher: the launcher names the notebook
            kinds[pid] = inherited
        else:
            kinds[pid] = own_kind(command) or inherited
        rollup = _read(f"/proc/{pid}/smaps_rollup")
        values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup.splitlines()[1:]
                  if line.split()[-1] == "kB"}
        if values:
            out.processes[pid] = (kinds[pid], values.get("Pss", 0), values.get("Rss", 0))
    return out


# -- the cgroup -----------------------------------------------------------------------------------------------

class Limit:
    """A memory cgroup of `mb` MiB (and, with `cpus`, a CPU quota) for the grader: with v1 below this process's own
    cgroups, where the kernels' cgroups nest below it in turn; with v2 at the root (a v2 cgroup that holds processes
    cannot take children with controllers), where the kernels' cgroups are its siblings and the limit covers
    the grader and the verifier only."""

    def __init__(self, mb: int, cpus: float = 0.0) -> None:
        from hw3.grading.kernel.sandbox import CGROUP_ROOT, cgroup_parent  # where the kernels' cgroups go too

        self.v2 = (CGROUP_ROOT / "cgroup.controllers").is_file()
        name = f"bench-memory-{secrets.token_hex(4)}"
        self.folder = cgroup_parent("" if self.v2 else "memory") / name
        self.folders = [self.folder]
        self.nested: dict[str, int] = {}  # {kernel cgroup seen inside this one: its OOM kills}
        self.folder.mkdir()
        if self.v2:
            (self.folder / "memory.max").write_text(str(mb * MIB))
            (self.folder / "memory.swap.max").write_text("0")
        else:
            (self.folder / "memory.limit_in_bytes").write_text(str(mb * MIB))
            if (self.folder / "memory.memsw.limit_in_bytes").exists():
                (self.folder / "memory.memsw.limit_in_bytes").write_text(str(mb * MIB))
        if cpus and self.v2:
            (self.folder / "cpu.max").write_text(f"{int(cpus * 100_000)} 100000")
        elif cpus:
            self.folders.append(cgroup_parent("cpu") / name)
            self.folders[-1].mkdir()
            (self.folders[-1] / "cpu.cfs_period_us").write_text("100000")
            (self.folders[-1] / "cpu.cfs_quota_us").write_text(str(int(cpus * 100_000)))

    def join_command(self, command: list[str]) -> list[str]:
        """`command`, started inside the cgroup."""
        join = " && ".join(f'echo $$ > "{folder / "cgroup.procs"}"' for folder in self.folders)
        return ["sh", "-c", f'{join} && exec "$@"', "sh", *command]

    def peak(self) -> int:
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        return int(_read(str(self.folder / name)) or 0)

    def watch(self) -> None:
        """Note the kernel cgroups inside this one now, and their OOM kills so far (v1 counts a kill only in the
        cgroup of the process killed, and the grader removes a kernel's cgroup when it is done)."""
        for folder in self.folder.glob("hw3-*"):
            self.nested[folder.name] = max(self.nested.get(folder.name, 0), self.oom_kills(folder))

    def oom_kills(self, folder: Path) -> int:
        """The oom_kill count of one memory cgroup (v2: it and those below it)."""
        text = _read(str(folder / ("memory.events" if self.v2 else "memory.oom_control")))
        return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill "))

    def kills(self) -> int:
        """OOM kills in this cgroup and in the kernel cgroups seen inside it."""
        return self.oom_kills(self.folder) + (0 if self.v2 else sum(self.nested.values()))

    def remove(self) -> None:
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


# -- the run --------------------------------------------------------------------------------------------------

def points(grades: Path) -> str:
    """The automatic points of the graded submission, e.g. "23 of 23"."""
    report = json.loads(grades.read_text())  # one report: an object
    auto = [q for q in report["questions"] if not q.get("rubric")]  # by hand: a rubric
    return f"{sum(q['points'] for q in auto):g} of {sum(q['max_points'] for q in auto):g}"


def main() -> None:
    args = parse_args()
    limit = Limit(args.limit_mb, args.cpus) if args.limit_mb else None
    with tempfile.TemporaryDirectory(prefix="bench-grading-memory-") as tmp:
        work = Path(tmp)
        student = work / "student01"
        student.mkdir()
        for key in KEYS:
            shutil.copyfile(ROOT / "answers" / key, student / key)
        start_grader = ["-c", UNCHECKED] if args.below_floor else ["-m", "hw3"]
        command = [sys.executable, *start_grader, "grade", str(student), "--answers", str(ROOT / "answers"),
                   "--jobs", "1", "--timeout", args.timeout, "--json", str(work / "grades.json"),
                   "--store", str(work / "grades.sqlite"), "--key-file", str(work / "course.key"),
                   *(["--no-sandbox"] if args.no_sandbox else [])]
        env = {**os.environ, **({} if args.keep_cache else {"HW3_CACHE": str(work / "cache")})}
        if args.cold:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
        start = time.perf_counter()
        run = subprocess.Popen(limit.join_command(command) if limit else command, cwd=args.repo, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples = []
        while run.poll() is None:
            samples.append(sample(run.pid))
            samples[-1].seconds = time.perf_counter() - start
            samples[-1].started = len(samples) > 1 and samples[-2].started or samples[-1].phase() in BESIDE
            if limit:
                limit.watch()
            time.sleep(args.interval)
        stderr = run.stderr.read()
        wall = time.perf_counter() - start
        report(samples)
        if args.trace:
            write_trace(args.trace, samples)
        print(f"\nwall {wall:.0f} s, {len(samples)} samples every {args.interval:g} s, exit {run.returncode}")
        if limit:
            cpus = f", {args.cpus:g} CPUs" if args.cpus else ""
            print(f"cgroup of {args.limit_mb} MiB{cpus} ({'v2' if limit.v2 else 'v1'}): peak {limit.peak() / MIB:.0f} MiB "
                  f"(page cache included), OOM kills {limit.kills()}, kernel cgroups nested inside it: {len(limit.nested)}")
            limit.remove()
        if run.returncode != 0:
            sys.exit(f"bench_grading_memory: hw3 grade exited {run.returncode}: {stderr.strip()[-800:]}")
        print(f"points (automatic): {points(work / 'grades.json')}")
        for q in json.loads((work / "grades.json").read_text())["questions"]:
            if q["points"] < q["max_points"] and not q.get("rubric"):
                print(f"  {q['id']}: {q['points']:g} of {q['max_points']:g}: {q['message'][:300]}")
        for line in stderr.splitlines():
            if line.startswith("hw3 grade: note"):
                print(line)


def write_trace(path: Path, samples: list[Sample]) -> None:
    """One line per sample: seconds, phase, then kind=PSS/RSS MiB for each kind present."""
    lines = []
    for s in samples:
        kinds = sorted({kind for kind, _, _ in s.processes.values()})
        values = " ".join(f"{k.replace(' ', '_')}={s.of(k, 1) / MIB:.0f}/{s.of(k, 2) / MIB:.0f}" for k in kinds)
        lines.append(f"{s.seconds:7.1f} {s.phase().replace(' ', '_'):<26} {values}")
    path.write_text("\n".join(lines) + "\n")


def report(samples: list[Sample]) -> None:
    """Print the peaks per phase and per kind (MiB)."""
    print(f"{'phase':<26} {'samples':>7} {'all PSS':>8} {'all RSS':>8} {'own PSS':>8} {'own RSS':>8} "
          f"{'grader PSS':>10}")
    for phase in PHASES:
        chosen = [s for s in samples if s.phase() == phase]
        if not chosen:
            continue
        own = "grader" if phase.startswith("grader") else phase
        top = max(chosen, key=lambda s: s.total(1))
        print(f"{phase:<26} {len(chosen):>7} {top.total(1) / MIB:>8.0f} {max(s.total(2) for s in chosen) / MIB:>8.0f} "
              f"{max(s.of(own, 1) for s in chosen) / MIB:>8.0f} {max(s.of(own, 2) for s in chosen) / MIB:>8.0f} "
              f"{top.of('grader', 1) / MIB:>10.0f}")
    print(f"\n{'process kind':<26} {'peak PSS':>8} {'peak RSS':>8}")
    kinds = sorted({kind for s in samples for kind, _, _ in s.processes.values()},
                   key=lambda k: (k != "grader", PHASES.index(k) if k in PHASES else len(PHASES), k))
    for kind in kinds:
        print(f"{kind:<26} {max(s.of(kind, 1) for s in samples) / MIB:>8.0f} "
              f"{max(s.of(kind, 2) for s in samples) / MIB:>8.0f}")
    print(f"{'all together':<26} {max(s.total(1) for s in samples) / MIB:>8.0f} "
          f"{max(s.total(2) for s in samples) / MIB:>8.0f}")


if __name__ == "__main__":
    main()
