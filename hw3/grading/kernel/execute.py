"""Running a submission in a fresh sandboxed kernel, cell by cell, surviving hangs and crashes.

Every code cell runs with a time limit; errors are recorded and execution goes on. A cell that runs
past its limit or stops the kernel (`os._exit`, a segfault) is recorded, and the notebook is run again
from the top in a new kernel without it, so the cells after it still get their chance; when more than
MAX_BROKEN cells break, grading gives up on the notebook. Finally the grader's own cell (the probes of
`harness`, which write their results to the socket folder) runs in the same kernel.

The kernel is an `ipykernel` started through `sandbox.kernel_command` (bubblewrap, an unprivileged user,
resource limits) and talks to nbclient over unix sockets in a private folder (`Launch.sockets`); the
folder is held to the disk limit (as root a tmpfs of that size, and `diskwatch` kills a kernel that keeps
more there). Stored outputs of the submitted notebook are dropped before running.

Whatever a kernel sends, the grader's memory and time stay bounded (`Budget`, one per submission): every
message is counted, before it is decoded, against a per-cell and a per-submission allowance of bytes and
messages (a kernel past either is stopped); of a cell's outputs only its first error is kept, cut short; at
most RECEIVE_QUEUE messages of at most MAX_MESSAGE_BYTES wait in a socket; and every cell, rerun and probe
of the submission runs within one wall-clock deadline.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import Session
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError, DeadKernelError
from traitlets import Any as AnyTrait

from ..exercises.base import one_line
from . import sandbox
from .diskwatch import DiskWatch, empty_folder, process_tree
from .sandbox import (CELL_BYTES, CELL_MESSAGES, DEFAULT_SUBMISSION_TIMEOUT, SUBMISSION_BYTES, SUBMISSION_MESSAGES,
                      Limits, Mounts)

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


class Budget:
    """What one submission may spend: a wall-clock deadline for all its kernels, cells, reruns and probes, and
    the bytes and messages its kernels may send the grader (per cell, and in all). Shared by every kernel
    of the submission; `receive` is called for every message before it is decoded and stops the kernel
    (`stop`, set by the running kernel) the moment the allowance is spent."""

    def __init__(self, seconds: float = DEFAULT_SUBMISSION_TIMEOUT) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.total_bytes = self.total_messages = self.cell_bytes = self.cell_messages = 0
        self.flooded: str | None = None  # why the kernel was stopped for what it sent
        self.stop = lambda: None

    def left(self) -> float:
        """Seconds left before the deadline (negative past it)."""
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def new_cell(self) -> None:
        """A cell starts: its own allowance is full again (what the last cell sent stays in the total)."""
        self.cell_bytes = self.cell_messages = 0
        if not self.over_total():
            self.flooded = None

    def over_total(self) -> bool:
        return self.total_bytes > SUBMISSION_BYTES or self.total_messages > SUBMISSION_MESSAGES

    def receive(self, size: int) -> bool:
        """Count one message of `size` bytes; False (and the kernel stopped) once an allowance is spent."""
        self.cell_bytes += size
        self.cell_messages += 1
        self.total_bytes += size
        self.total_messages += 1
        if self.flooded:
            return False
        if self.over_total():
            self.flooded = (f"the notebook sent the grader more than {SUBMISSION_BYTES // 2**20} MiB or "
                            f"{SUBMISSION_MESSAGES} messages in all, and grading stopped")
        elif self.cell_bytes > CELL_BYTES or self.cell_messages > CELL_MESSAGES:
            self.flooded = (f"sent the grader more than {CELL_BYTES // 2**20} MiB or {CELL_MESSAGES} messages "
                            f"and was stopped")
        if self.flooded:
            self.stop()
            return False
        return True


class MeteredSession(Session):
    """A Jupyter session that counts every message against its `budget` before decoding it; once the budget is
    spent, messages are dropped undecoded (an empty message nothing waits for)."""

    budget = AnyTrait(None)

    def deserialize(self, msg_list, content=True, copy=True):
        if self.budget is not None and not self.budget.receive(sum(len(part) for part in msg_list)):
            return {"header": {}, "parent_header": {}, "metadata": {}, "content": {}, "buffers": [],
                    "msg_id": "", "msg_type": "dropped"}
        return super().deserialize(msg_list, content, copy)


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
RECEIVE_QUEUE = 32  # messages a socket holds before the grader reads them: at most 256 MiB in flight per socket


def kernel_manager(launch: Launch, budget: Budget) -> SandboxedKernelManager:
    """A kernel manager for one run: ipc transport in the launch's socket folder, messages at most 8 MiB, at most
    RECEIVE_QUEUE of them waiting, each counted against `budget` before it is decoded."""
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    context.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
    km = SandboxedKernelManager(kernel_name=KERNEL_NAME, transport="ipc", context=context,
                                session=MeteredSession(budget=budget))
    km.ip = str(launch.sockets / "kernel")
    km.connection_file = str(launch.sockets / "kernel.json")
    km.launch = launch
    return km


MAX_ERROR_NAME, MAX_ERROR_VALUE = 100, 1000  # characters of a cell's error kept (its traceback is not kept)


class FirstErrorClient(NotebookClient):
    """A NotebookClient that keeps, of everything a cell sends, only its first error (name and value, cut short):
    that is all grading reads. Nothing else a kernel sends is stored or acted on (no outputs, display ids,
    widgets or comms), so the grader holds a bounded amount per cell whatever the kernel does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, store_widget_state=False, **kwargs)

    def process_message(self, msg, cell, cell_index):
        """nbclient's handler of one iopub message: the end of the cell, or its first error; else nothing."""
        content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
        kind = msg.get("msg_type")
        if kind == "status" and content.get("execution_state") == "idle":
            raise CellExecutionComplete()
        if kind == "error" and not any(out.get("output_type") == "error" for out in cell.outputs):
            name, value = str(content.get("ename", "Error")), str(content.get("evalue", ""))
            cell.outputs.append(nbformat.v4.new_output("error", ename=name[:MAX_ERROR_NAME],
                                                       evalue=value[:MAX_ERROR_VALUE], traceback=[]))
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


class _OutOfBudget(Exception):
    """The submission's deadline passed, or its kernels sent more than it may in all: grading stops here."""


def _new_kernel(budget: Budget) -> None:
    """Ready the budget for a new kernel (its start has a cell's allowance); _OutOfBudget when none should start:
    the deadline passed or the total allowance is spent."""
    budget.new_cell()
    if budget.over_total():
        raise _OutOfBudget(budget.flooded or "the notebook sent the grader too much, and grading stopped")
    if budget.expired():
        raise _OutOfBudget(f"the submission used up its {budget.seconds:g} s (--submission-timeout)")


def _start(client: FirstErrorClient, budget: Budget, timeout: float, what: str) -> float:
    """Ready one cell: its message allowance, and its time limit (returned): `timeout`, or what is left of the
    deadline; _OutOfBudget when nothing is left."""
    budget.new_cell()
    if budget.over_total():
        raise _OutOfBudget(budget.flooded)
    limit = min(timeout, budget.left())
    if limit <= 0.5:
        raise _OutOfBudget(f"the submission used up its {budget.seconds:g} s (--submission-timeout) before {what}")
    client.timeout_func = lambda cell: limit  # nbclient's own `timeout` takes whole seconds only
    return limit


def _run_cell(client: FirstErrorClient, cell: nbformat.NotebookNode, index: int, limits: Limits,
              watch: DiskWatch, cgroup: sandbox.Cgroup | None, budget: Budget, timeout: float) -> str | None:
    """Execute one notebook cell: its one-line error, or None; _Broken when it hangs, kills the kernel or floods
    the grader, _OutOfBudget when the submission's deadline or total allowance runs out."""
    limit = _start(client, budget, timeout, f"cell {index + 1}")
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        if budget.expired():
            raise _OutOfBudget(f"cell {index + 1} was stopped: the submission used up its {budget.seconds:g} s "
                               f"(--submission-timeout)") from None
        raise _Broken(index, f"cell {index + 1} did not finish within {limit:g} s") from None
    except DeadKernelError:
        if budget.flooded:
            if budget.over_total():
                raise _OutOfBudget(f"cell {index + 1}: {budget.flooded}") from None
            raise _Broken(index, f"cell {index + 1} {budget.flooded}") from None
        if watch.tripped:
            raise _Broken(index, f"cell {index + 1} wrote more than {limits.disk_mb} MiB to the grader's "
                                 f"folder and was stopped") from None
        if why := _stopped_for_memory(cgroup, limits):
            raise _Broken(index, f"cell {index + 1} {why}") from None
        raise _Broken(index, f"cell {index + 1} stopped the Python kernel") from None
    except Exception as exc:  # the kernel answered with something nbclient cannot read: the cell broke it
        raise _Broken(index, one_line(f"cell {index + 1} broke the kernel's connection to the grader "
                                      f"({type(exc).__name__})")) from None
    error = first_error(cell.outputs)
    return cell_error(index, error, limits) if error else None


def _stopped_for_memory(cgroup: sandbox.Cgroup | None, limits: Limits) -> str | None:
    """How the kernel was stopped for memory, to follow "cell N" (None when it was not): over its own limit, or
    when the machine (or container) ran out, which is no fault of the notebook's."""
    if not (cgroup and cgroup.out_of_memory()):
        return None
    if cgroup.hit_own_limit():
        return (f"used more than the grader's {limits.memory_gb:g} GiB of memory (all its processes together) and was "
                f"stopped: use less memory")
    return (f"was stopped because the grading machine ran out of memory (not for passing the grader's "
            f"{limits.memory_gb:g} GiB limit): the course staff must grade it again with more memory")


def _run_final(client: FirstErrorClient, cell: nbformat.NotebookNode, index: int, budget: Budget,
               timeout: float, cgroup: sandbox.Cgroup | None, limits: Limits) -> tuple[str | None, bool]:
    """Execute the grader's cell: (None when it completed, else why not; whether it hung or stopped the kernel);
    _OutOfBudget when the submission's deadline or total allowance runs out."""
    limit = _start(client, budget, timeout, "the grader's probes")
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        if budget.expired():
            raise _OutOfBudget(f"the grader's probes were stopped: the submission used up its {budget.seconds:g} s "
                               f"(--submission-timeout)") from None
        return f"the grader's final check did not finish within {limit:g} s", True
    except DeadKernelError:
        if budget.flooded:
            if budget.over_total():
                raise _OutOfBudget(budget.flooded) from None
            return f"the grader's probes {budget.flooded}", True
        if why := _stopped_for_memory(cgroup, limits):
            return f"during the grader's probes the kernel {why}", True
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
              final_timeout: float, launch: Launch, budget: Budget) -> Execution:
    """One pass in a new kernel, skipping the cells in `skip`; raises _Broken on a new broken cell, _OutOfBudget
    when the submission's budget runs out.

    Whatever happens, the kernel is shut down, and with it its PID namespace and every process in it.
    """
    _new_kernel(budget)
    empty_folder(launch.sockets)  # what an earlier pass left there must not count against this one
    work = copy.deepcopy(nb)
    final = nbformat.v4.new_code_cell(final_source)
    work.cells.append(final)
    km = kernel_manager(launch, budget)
    km.cgroup = sandbox.Cgroup.create(secrets.token_hex(8), launch.limits) if launch.mounts else None
    budget.stop = lambda: _kill(km)
    client = FirstErrorClient(work, km=km, allow_errors=True, shutdown_kernel="immediate", record_timing=False,
                              log=_QUIET)
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
                    message = _run_cell(client, cell, index, launch.limits, watch, km.cgroup, budget, timeout)
                    if message:
                        result.failures[index] = message
            result.final_error, result.final_broken = _run_final(client, final, len(work.cells) - 1, budget,
                                                                 final_timeout, km.cgroup, launch.limits)
    finally:
        budget.stop = lambda: None
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
            launch: Launch, skip: dict[int, str] | None = None, budget: Budget | None = None) -> Execution:
    """Run every code cell of `nb`, then `final_source`, in fresh kernels started by `launch`.

    `skip` holds cells already known to hang or stop the kernel (an earlier Execution's `broken`); `budget` is
    the submission's (a fresh default one when None). When it runs out, the Execution's final_error says so and
    nothing more runs.
    """
    nb = without_outputs(nb)
    budget = budget or Budget()
    broken: dict[int, str] = dict(skip or {})
    while len(broken) <= MAX_BROKEN:
        try:
            return _run_once(nb, broken, final_source, timeout, final_timeout, launch, budget)
        except _Broken as exc:
            broken[exc.index] = str(exc)
        except _OutOfBudget as exc:
            return Execution(failures=broken, final_error=one_line(str(exc)), broken=broken)
        except Exception as exc:  # the kernel itself could not start or talk: not the notebook's fault
            return Execution(failures=broken, final_error=_startup_error(exc, launch.limits), broken=broken)
    return Execution(failures=broken, final_error=f"{len(broken)} cells hung or stopped the kernel: grading gave up",
                     broken=broken)
