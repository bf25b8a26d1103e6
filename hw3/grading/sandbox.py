"""Containing a submission's kernel: a memory limit, capped outputs, and no process left behind.

Only the standard library here (the CLI imports the limits to build its help).

- Memory: the kernel is started through a tiny launcher (`python -c LAUNCHER ...`) that sets a resource
  limit and then execs the real kernel, so an allocation past the limit fails inside the notebook
  (MemoryError, or torch's "can't allocate memory") instead of swapping or waking the OOM killer.
  The limit is on the address space (RLIMIT_AS), which also covers shared and file mappings; glibc's
  per-thread malloc arenas reserve 64 MiB of address space each, so the kernel gets MALLOC_ARENA_MAX=4.
  Where an NVIDIA driver is present the limit is on the data segment instead (RLIMIT_DATA: private
  writable memory), because CUDA reserves far more address space than any RAM limit and would not start.
  Core dumps are turned off (RLIMIT_CORE = 0): a crashing kernel must not write gigabytes to disk.
  Limits only work on Linux; elsewhere the kernel starts unlimited. A grader running as root cannot stop
  the notebook from raising its own hard limit back: run `hw3 grade` as an ordinary user.
- Outputs: at most `output_limit` characters of each cell's outputs are kept (`execute.CappedClient`),
  and a notebook file over MAX_NOTEBOOK_MB is not read at all (`notebook.read_notebook`).
- Processes: every kernel leads its own session (jupyter_client starts it so) and gets a fresh marker in
  its environment, inherited by anything it forks or runs. Just before the kernel is shut down its
  process tree is recorded; afterwards `sweep` SIGKILLs every live process of that tree, of its session,
  or carrying the marker in /proc/PID/environ (the environment a process started with: clearing
  os.environ does not remove it). So forked children, daemons that left the session (`os.setsid`,
  double forks) and children started with a clean environment die with the kernel. What escapes: a
  process that leaves the session, drops the marker (exec with a clean environment) and is orphaned
  before the shutdown, all three; a cgroup or container per kernel would close that. Without /proc,
  only the kernel's process group is killed (by jupyter_client).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
DEFAULT_MEMORY_GB = 8.0
OUTPUT_LIMIT = 200_000
MAX_NOTEBOOK_MB = 100
MARKER = "HW3_GRADING_KERNEL"
_PROC = Path("/proc")

LAUNCHER = """\
import os, resource, sys
kind, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
if limit:
    which = resource.RLIMIT_AS if kind == "as" else resource.RLIMIT_DATA
    hard = resource.getrlimit(which)[1]
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(which, (cap, cap))
os.execvp(sys.argv[3], sys.argv[3:])
"""


@dataclass(frozen=True)
class Limits:
    """What a submission's kernel may use: `memory_gb` GiB of memory (0: no limit), `output_limit` characters
    of output per cell."""

    memory_gb: float = DEFAULT_MEMORY_GB
    output_limit: int = OUTPUT_LIMIT

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * GIB)


def can_limit() -> bool:
    """True where the launcher can set resource limits (POSIX systems with the `resource` module)."""
    try:
        import resource  # noqa: F401
    except ImportError:
        return False
    return os.name == "posix"


def memory_kind() -> str:
    """`as` (the address space), or `data` where an NVIDIA driver is present (CUDA reserves huge address ranges)."""
    return "data" if os.path.exists("/dev/nvidiactl") else "as"


def launch_prefix(limits: Limits) -> list[str]:
    """The command that goes before the kernel's own: sets the limits, then execs the kernel."""
    if not can_limit():
        return []
    return [sys.executable, "-c", LAUNCHER, memory_kind(), str(limits.memory_bytes)]


def sandbox_env(env: dict[str, str], limits: Limits) -> tuple[dict[str, str], str]:
    """(the kernel's environment with a fresh process marker, the marker's value)."""
    token = secrets.token_hex(12)
    out = {**env, MARKER: token}
    if limits.memory_bytes and memory_kind() == "as":
        out.setdefault("MALLOC_ARENA_MAX", "4")  # each glibc arena reserves 64 MiB of address space
    return out, token


def process_table() -> dict[int, tuple[str, int, int]]:
    """{pid: (state, parent pid, session)} of every process, from /proc (empty without /proc)."""
    table = {}
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            text = (_PROC / entry / "stat").read_text()
            fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) "
            table[int(entry)] = (fields[0], int(fields[1]), int(fields[3]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(pid: int) -> set[int]:
    """The processes below `pid` in the process tree right now (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for child, (_, parent, _) in process_table().items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _has_marker(pid: int, needle: bytes) -> bool:
    """True when the process's initial environment holds `needle` (MARKER=token)."""
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return needle in environ.split(b"\0")


def leftovers(token: str, session: int | None, known: set[int] = frozenset()) -> list[int]:
    """Live processes (zombies excluded) of a kernel: in its `session`, carrying its marker `token`, or in `known`."""
    needle = f"{MARKER}={token}".encode()
    me = os.getpid()
    return [pid for pid, (state, _, sid) in process_table().items()
            if pid != me and state not in ("Z", "X")
            and (pid in known or (session is not None and sid == session) or _has_marker(pid, needle))]


def sweep(token: str, session: int | None, known: set[int] = frozenset(), rounds: int = 50) -> int:
    """SIGKILL every leftover process of a kernel (see `leftovers`); returns how many signals were sent.

    Repeats until a scan finds nothing, since a process may fork while its siblings are being killed.
    `known` is the kernel's tree taken before it was shut down: it catches a child that left the
    session and dropped the marker (`setsid` and `exec` with a clean environment) while its parent lived.
    """
    killed = 0
    for _ in range(rounds):
        pids = leftovers(token, session, known)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        known = frozenset()  # a pid of the snapshot may be reused once its process is gone
        time.sleep(0.02)
    return killed
