"""Running a submission in a fresh `python3` kernel, cell by cell, surviving hangs and crashes.

Every code cell runs with a time limit; errors are recorded and execution goes on. A cell that runs
past its limit or stops the kernel (`os._exit`, a segfault) is recorded, and the notebook is run again
from the top in a new kernel without it, so the cells after it still get their chance; when more than
MAX_BROKEN cells break, grading gives up on the notebook. Finally the grader's own cell runs in the same
kernel, and its outputs are returned.
"""

from __future__ import annotations

import copy
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .checks import one_line

MAX_BROKEN = 3
KERNEL_NAME = "python3"

_QUIET = logging.getLogger("hw3.grading.kernel")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass
class Execution:
    """What running a notebook gave: per-cell failures, and the grader cell's outputs or why it has none."""

    failures: dict[int, str] = field(default_factory=dict)
    final_outputs: list = field(default_factory=list)
    final_error: str | None = None


class _Broken(Exception):
    """A cell hung or stopped the kernel: the run must restart without it."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def first_error(outputs: list) -> str | None:
    """`Name: value` of the first error output, else None."""
    for output in outputs:
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip()
            return f"{output.get('ename', 'Error')}: {value}" if value else str(output.get("ename", "Error"))
    return None


def _run_cell(client: NotebookClient, cell: nbformat.NotebookNode, index: int) -> str | None:
    """Execute one notebook cell: its one-line error, or None; _Broken when it hangs or kills the kernel."""
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        raise _Broken(index, f"cell {index + 1} did not finish within {client.timeout:g} s") from None
    except DeadKernelError:
        raise _Broken(index, f"cell {index + 1} stopped the Python kernel") from None
    error = first_error(cell.outputs)
    return one_line(f"cell {index + 1} raised {error}") if error else None


def _run_final(client: NotebookClient, cell: nbformat.NotebookNode, index: int) -> str | None:
    """Execute the grader's cell: None when it completed, else why not."""
    try:
        client.execute_cell(cell, index)
    except CellTimeoutError:
        return f"the grader's final check did not finish within {client.timeout:g} s"
    except DeadKernelError:
        return "a checked function stopped the Python kernel during the grader's final check"
    error = first_error(cell.outputs)
    return one_line(f"the grader's final check failed ({error})") if error else None


def _run_once(nb: nbformat.NotebookNode, skip: dict[int, str], final_source: str, timeout: float,
              final_timeout: float, cwd: Path, env: dict[str, str]) -> Execution:
    """One pass in a new kernel, skipping the cells in `skip`; raises _Broken on a new broken cell."""
    work = copy.deepcopy(nb)
    final = nbformat.v4.new_code_cell(final_source)
    work.cells.append(final)
    client = NotebookClient(work, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=True,
                            shutdown_kernel="immediate", record_timing=False, log=_QUIET)
    result = Execution(failures=dict(skip))
    with client.setup_kernel(cwd=str(cwd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        for index, cell in enumerate(work.cells[:-1]):
            if cell.cell_type == "code" and index not in skip:
                message = _run_cell(client, cell, index)
                if message:
                    result.failures[index] = message
        client.timeout = final_timeout
        result.final_error = _run_final(client, final, len(work.cells) - 1)
        result.final_outputs = list(final.outputs)
    return result


def execute(nb: nbformat.NotebookNode, final_source: str, *, timeout: float, final_timeout: float,
            cwd: Path, env: dict[str, str]) -> Execution:
    """Run every code cell of `nb`, then `final_source`, in a fresh kernel started in `cwd` with `env`."""
    broken: dict[int, str] = {}
    while len(broken) <= MAX_BROKEN:
        try:
            return _run_once(nb, broken, final_source, timeout, final_timeout, cwd, env)
        except _Broken as exc:
            broken[exc.index] = str(exc)
        except Exception as exc:  # the kernel itself could not start or talk: not the notebook's fault
            return Execution(failures=broken, final_error=one_line(f"could not run the {KERNEL_NAME} kernel "
                                                                    f"({type(exc).__name__}: {exc})"))
    return Execution(failures=broken, final_error=f"{len(broken)} cells hung or stopped the kernel: grading gave up")
