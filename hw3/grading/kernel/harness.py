"""Kernel side of `hw3 grade`: the last cell probes the student's objects and prints plain data.

The grader appends `final_cell(requests, nonce, limit, folder)` to the submission. In the sandboxed kernel
it evaluates each untouched check cell's arguments (the names, e.g. `rnn_output`) in the notebook's
namespace, runs the exercise's probe on the grader's inputs, and appends to `folder/<nonce>.jsonl` (the
folder the kernel shares with the grader) one line `<nonce> {"id": ..., "started": true}` before each probe
and one `<nonce> {"id": ..., "outputs": ...}` or `<nonce> {"id": ..., "error": ...}` after it, written
straight to the file, so a probe that kills the kernel is known even when its output never left the
process. Nothing here is trusted: the notebook may have patched any of it, and all it can change is the
data it returns, which the grader scores in its own process against the reference.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..exercises.base import describe_exception, one_line
from ..exercises.checks import bind, exercise_of, probe_quietly

_CELL = '''\
from hw3.grading.kernel.harness import run_probes as _hw3_run_probes
_hw3_run_probes({requests!r}, globals(), {nonce!r}, {limit!r}, {folder!r})
'''


class ProbeTimeout(BaseException):
    """Raised by the alarm inside a probe that ran too long (a BaseException, so probes cannot swallow it)."""


def final_cell(requests: list[dict], nonce: str, limit: float, folder: str) -> str:
    """Source of the grader's last cell; each request is {"id", "arguments" (source), "inputs"}."""
    return _CELL.format(requests=json.dumps(requests), nonce=nonce, limit=float(limit), folder=str(folder))


def _collect(*args: object, **kwargs: object) -> tuple[tuple, dict]:
    return args, kwargs


def within(limit: float, run: Callable[[], Any]) -> Any:
    """run() with a wall-clock limit (SIGALRM, main thread only); ProbeTimeout when it runs out."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        return run()

    def on_alarm(signum: int, frame: object) -> None:
        raise ProbeTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return run()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def probe_one(request: dict, namespace: dict, limit: float) -> dict:
    """{"outputs": ...} of one question's probe, or {"error": ..., "defined": False} when its objects do not exist."""
    qid = request["id"]
    try:
        args, kwargs = eval(f"_hw3_collect({request['arguments']})", namespace, {"_hw3_collect": _collect})
    except Exception as exc:
        return {"error": one_line(describe_exception(exc)), "defined": False}
    exercise = exercise_of(qid)
    try:
        bind(exercise, qid, args, kwargs)
        return {"outputs": within(limit, lambda: probe_quietly(exercise, request["inputs"], args, kwargs))}
    except ProbeTimeout:
        return {"error": f"checking it did not finish within {limit:g} s"}
    except BaseException as exc:  # SystemExit or KeyboardInterrupt from the student's code
        return {"error": one_line(f"checking it raised {describe_exception(exc)}")}


def run_probes(requests: str, namespace: dict, nonce: str, limit: float, folder: str) -> None:
    """Probe every requested question and record its start and its result (whatever one probe does)."""
    path = os.path.join(folder, f"{nonce}.jsonl")
    for request in json.loads(requests):
        _record(path, nonce, {"id": request["id"], "started": True})
        try:
            result = probe_one(request, namespace, limit)
            record = {"id": request["id"], **result}
            json.dumps(record)
        except BaseException as exc:
            record = {"id": request["id"], "error": f"the probe was interrupted ({type(exc).__name__})"}
        _record(path, nonce, record)


def _record(path: str, nonce: str, record: dict) -> None:
    """Append one `<nonce> <json>` line to the results file and flush it to the OS at once."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{nonce} {json.dumps(record, allow_nan=True)}\n")
