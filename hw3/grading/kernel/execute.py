"""Running a submission in a fresh sandboxed kernel, cell by cell, surviving hangs and crashes.

Every code cell runs with a time limit; errors are recorded and execution goes on. A cell that runs
past its limit or stops the kernel (`os._exit`, a segfault) is recorded, and the notebook is run again
from the top in a new kernel without it, so the cells after it still get their chance; when more than
MAX_BROKEN cells break, grading gives up on the notebook. Finally the grader's own cell (the probes of
`harness`, which write their results to the socket folder) runs in the same kernel.

The kernel is an `ipykernel` started through `sandbox.kernel_command` (bubblewrap, an unprivileged user,
resource limits) and talks to nbclient over unix sockets in a private folder (`Launch.sockets`); the
folder is held to the disk limit (as root a tmpfs of that size, and `diskwatch` kills a kernel that keeps
more there). Outputs are capped per cell, and stored outputs of the submitted notebook are dropped before
running.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from ..exercises.base import one_line
from . import sandbox
from .diskwatch import DiskWatch, empty_folder, process_tree
from .sandbox import OUTPUT_LIMIT, Limits, Mounts

MAX_BROKEN = 3
KERNEL_NAME = "python3"

_QUIET = logging.getLogger("hw3.grading.kernel")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _KernelPollNoise(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for nbclient's kernel-alive poll: when a killed
    kernel's client is cleaned up, the poll fails on the missing client and asyncio would print its
    traceback on the grader's terminal. The kill itself is already reported per cell."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "_async_poll_kernel_alive" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_KernelPollNoise())


@dataclass
class Execution:
    """What running a notebook gave: per-cell failures, and why the grader's cell did not complete (if so)."""

    failures: dict[int, str] = field(default_factory=dict)
    final_error: str | None = None
    broken: dict[int, str] = field(default_factory=dict)  # the cells that hung or stopped the kernel (skipped)
    final_broken: bool = False  # the grader's cell itself hung or stopped the kernel, part way through


class _Broken(Exception):
    """A cell hung or stopped the kernel: the run must restart without it."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Launch:
    """How to start one kernel: its limits, the sandbox mounts (None: --no-sandbox), its uid and environment;
    `bounded` when the socket folder is a tmpfs of the disk limit's size (the OS enforces the limit there)."""

    limits: Limits
    mounts: Mounts | None
    uid: int
    env: dict[str, str]
    bounded: bool = False

    @property
    def sockets(self) -> Path:
        return self.mounts.sockets if self.mounts else Path(self.env["HW3_SOCKETS"])


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs through `sandbox.kernel_command` and listens on unix sockets."""

    launch: Launch | None = None
    cgroup: sandbox.Cgroup | None = None

    def client(self, **kwargs):
        """The client talks through this manager's context, whose sockets refuse messages over the size cap."""
        return super().client(context=self.context, **kwargs)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        launch = self.launch
        if launch.mounts is not None and sandbox.is_root():  # written 0600 by the grader: the kernel must read it
            os.chown(self.connection_file, launch.uid, launch.uid)
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file]
        if launch.mounts is None:
            return sandbox.unsandboxed_command(kernel, launch.limits)
        return sandbox.kernel_command(kernel, launch.mounts, launch.limits, launch.uid, launch.env, self.cgroup)


MAX_MESSAGE_BYTES = 8 * 2**20  # a bigger message from the kernel drops its connection: the cell counts as broken


def kernel_manager(launch: Launch) -> SandboxedKernelManager:
    """A kernel manager for one run: ipc transport in the launch's socket folder, messages at most 8 MiB."""
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    km = SandboxedKernelManager(kernel_name=KERNEL_NAME, transport="ipc", context=context)
    km.ip = str(launch.sockets / "kernel")
    km.connection_file = str(launch.sockets / "kernel.json")
    km.launch = launch
    return km


def _size(output: dict) -> int:
    """Characters an output holds (its text, or every representation it carries), plus 100 for the output itself."""
    if "text" in output:
        return 100 + len(output["text"])
    data = output.get("data") or {}
    return 100 + sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())


def shorten_error(output: dict, limit: int) -> None:
    """Cut an error output's value and traceback (its last 20 lines) to `limit` characters each."""
    output["evalue"] = str(output.get("evalue", ""))[:limit]
    output["traceback"] = [str(line)[:limit] for line in list(output.get("traceback", []))[-20:]]


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `output_limit` characters of outputs per cell, and no widget state.

    Past the limit, stream text is cut, other outputs are dropped, and one note says so; error outputs
    are always kept (shortened), because they tell why a cell failed.
    """

    def __init__(self, *args, output_limit: int = OUTPUT_LIMIT, **kwargs) -> None:
        super().__init__(*args, store_widget_state=False, **kwargs)
        self.output_limit = output_limit
        self._spent: dict[int, int] = {}  # characters kept per cell index (each cell runs once per client)

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's handler of one output message, then the cap."""
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or not outs or outs[-1] is not out:
            return out
        if out.get("output_type") == "error":
            shorten_error(out, self.output_limit)
            return out
        limit = self.output_limit
        spent, size = self._spent.get(cell_index, 0), _size(out)
        self._spent[cell_index] = spent + size
        if spent + size <= limit:
            return out
        left = limit - spent - 100
        if out.get("output_type") == "stream" and left > 0:
            out["text"] = out["text"][:left]
        else:
            outs.pop()
        if spent <= limit:  # the first output past the limit: say so, once
            outs.append(nbformat.v4.new_output(
                "stream", name="stderr", text=f"\n[hw3 grade: output cut after {limit} characters]\n"))
        return None


def first_error(outputs: list) -> str | None:
    """`Name: value` of the first error output (the value cut to 1000 characters), else None."""
    for output in outputs:
        if output.get("output_type") == "error":
            name = str(output.get("ename", "Error"))[:100]
            value = str(output.get("evalue", ""))[:1000].strip()
            return f"{name}: {value}" if value else name
    return None


_OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "out of memory")


def cell_error(index: int, error: str, limits: Limits) -> str:
    """The one-line reason for a cell that raised `error`; running out of memory names the grader's limit."""
    if limits.memory_gb and any(sign in error for sign in _OUT_OF_MEMORY):
        return one_line(f"cell {index + 1} ran out of memory under the grader's {limits.memory_gb:g} GiB limit: "
                        f"use less memory ({error})")
    return one_line(f"cell {index + 1} raised {error}")


def _run_cell(client: CappedClient, cell: nbformat.NotebookNode, index: int, limits: Limits,
              watch: DiskWatch, cgroup: sandbox.Cgroup | None) -> str | None:
    """Execute one notebook cell: its one-line error, or None; _Broken when it hangs or kills the kernel."""
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        raise _Broken(index, f"cell {index + 1} did not finish within {client.timeout:g} s") from None
    except DeadKernelError:
        if watch.tripped:
            raise _Broken(index, f"cell {index + 1} wrote more than {limits.disk_mb} MiB to the grader's "
                                 f"folder and was stopped") from None
        if cgroup and cgroup.out_of_memory():
            raise _Broken(index, f"cell {index + 1} used more than the grader's {limits.memory_gb:g} GiB of memory "
                                 f"(all its processes together) and was stopped: use less memory") from None
        raise _Broken(index, f"cell {index + 1} stopped the Python kernel") from None
    except Exception as exc:  # the kernel answered with something nbclient cannot read: the cell broke it
        raise _Broken(index, one_line(f"cell {index + 1} broke the kernel's connection to the grader "
                                      f"({type(exc).__name__})")) from None
    error = first_error(cell.outputs)
    return cell_error(index, error, limits) if error else None


def _run_final(client: CappedClient, cell: nbformat.NotebookNode, index: int) -> tuple[str | None, bool]:
    """Execute the grader's cell: (None when it completed, else why not; whether it hung or stopped the kernel)."""
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        return f"the grader's final check did not finish within {client.timeout:g} s", True
    except DeadKernelError:
        return "a checked function stopped the Python kernel during the grader's probes", True
    except Exception as exc:
        return one_line(f"the notebook broke the kernel's connection to the grader during its probes "
                        f"({type(exc).__name__})"), True
    error = first_error(cell.outputs)
    return (one_line(f"the grader's final check failed ({error})") if error else None), False


def without_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with only what running it needs: the cells' types and sources (same indices)."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(cell.source))
        else:
            cells.append(nbformat.v4.new_raw_cell(""))  # keeps the indices; nothing to run
    return nbformat.v4.new_notebook(cells=cells)


def _run_once(nb: nbformat.NotebookNode, skip: dict[int, str], final_source: str, timeout: float,
              final_timeout: float, launch: Launch) -> Execution:
    """One pass in a new kernel, skipping the cells in `skip`; raises _Broken on a new broken cell.

    Whatever happens, the kernel is shut down, and with it its PID namespace and every process in it.
    """
    empty_folder(launch.sockets)  # what an earlier pass left there must not count against this one
    work = copy.deepcopy(nb)
    final = nbformat.v4.new_code_cell(final_source)
    work.cells.append(final)
    km = kernel_manager(launch)
    km.cgroup = sandbox.Cgroup.create(secrets.token_hex(8), launch.limits) if launch.mounts else None
    client = CappedClient(work, km=km, timeout=timeout, allow_errors=True, shutdown_kernel="immediate",
                          record_timing=False, log=_QUIET, output_limit=launch.limits.output_limit)
    result = Execution(failures=dict(skip), broken=dict(skip))
    outer_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **({} if launch.mounts else launch.env)}
    owner = launch.uid if launch.mounts and sandbox.is_root() else os.getuid()
    watch = DiskWatch(launch.sockets, launch.limits.disk_bytes, owner,
                      (lambda: []) if launch.bounded else (lambda: _processes(km)), lambda: _kill(km))
    try:
        with client.setup_kernel(cwd=str(launch.sockets if launch.mounts else launch.env["HOME"]), env=outer_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cleanup_kc=True), watch:
            for index, cell in enumerate(work.cells[:-1]):
                if cell.cell_type == "code" and index not in skip:
                    message = _run_cell(client, cell, index, launch.limits, watch, km.cgroup)
                    if message:
                        result.failures[index] = message
            client.timeout = final_timeout
            result.final_error, result.final_broken = _run_final(client, final, len(work.cells) - 1)
    finally:
        if km.cgroup:
            km.cgroup.remove()
    return result


def _processes(km: SandboxedKernelManager) -> list[int]:
    """The pids of the kernel's processes: its cgroup's members, else the launcher's process tree."""
    if km.cgroup:
        return km.cgroup.pids()
    pid = getattr(km.provisioner, "pid", None) if km.provisioner else None
    return process_tree(pid) if pid else []


def _kill(km: SandboxedKernelManager) -> None:
    """SIGKILL the kernel's launcher (bwrap: the PID namespace goes with it)."""
    try:
        pid = km.provisioner.pid if km.provisioner else None
        if pid:
            os.kill(pid, 9)
    except (OSError, AttributeError):
        pass


def _startup_error(exc: Exception, limits: Limits) -> str:
    """Why the kernel could not run, naming --memory-gb when a memory limit was set."""
    hint = f" (if {limits.memory_gb:g} GiB is too little for it, raise hw3 grade --memory-gb)" if limits.memory_gb else ""
    return one_line(f"the {KERNEL_NAME} kernel could not start or stopped answering the grader{hint}: "
                    f"{type(exc).__name__}: {exc}")


def execute(nb: nbformat.NotebookNode, final_source: str, *, timeout: float, final_timeout: float,
            launch: Launch, skip: dict[int, str] | None = None) -> Execution:
    """Run every code cell of `nb`, then `final_source`, in fresh kernels started by `launch`.

    `skip` holds cells already known to hang or stop the kernel (an earlier Execution's `broken`).
    """
    nb = without_outputs(nb)
    broken: dict[int, str] = dict(skip or {})
    while len(broken) <= MAX_BROKEN:
        try:
            return _run_once(nb, broken, final_source, timeout, final_timeout, launch)
        except _Broken as exc:
            broken[exc.index] = str(exc)
        except Exception as exc:  # the kernel itself could not start or talk: not the notebook's fault
            return Execution(failures=broken, final_error=_startup_error(exc, launch.limits), broken=broken)
    return Execution(failures=broken, final_error=f"{len(broken)} cells hung or stopped the kernel: grading gave up",
                     broken=broken)
