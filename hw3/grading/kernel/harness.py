"""Kernel side of `hw3 grade`: the last cell of a notebook's run, and the file it answers in.

The grader appends one cell to each notebook it runs. Each request names a question, its exercise kind and
options, and the source of the check cell's arguments (e.g. `rnn_output`), which are evaluated in the notebook's
namespace:

- in a student's sandboxed kernel, `run_probes` runs each exercise's probe on the inputs the grader sends and
  reports the outputs;
- in the answer key's kernel, `run_reference` draws each (student, question)'s inputs from the seed the grader
  sends (asking the key's own probe where the exercise needs it), runs the probe on the key's objects, adds hw3's
  table of mistakes, and reports all three.

Each record goes to `folder/<nonce>.jsonl` (the folder the kernel shares with the grader) as one line
`<nonce> {json}`, written straight to the file, with a `{"id": ..., "started": true}` line before each probe, so a
probe that kills the kernel is known even when its output never left the process. In a student's kernel nothing
here is trusted: the notebook may have patched any of it, and all it can change is the data it returns, which the
grader scores in its own process against the answer key's.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exercises.base import describe_exception, one_line
from ..exercises.checks import bind, key_answer, probe_quietly
from ..exercises.registry import KINDS

_CELL = '''\
from hw3.grading.kernel.harness import {function} as _hw3_run
_hw3_run({requests!r}, globals(), {nonce!r}, {limit!r}, {folder!r})
'''
MAX_RESULTS_BYTES = 64 * 2**20


class ProbeTimeout(BaseException):
    """Raised by the alarm inside a probe that ran too long (a BaseException, so probes cannot swallow it)."""


def final_cell(requests: list[dict], nonce: str, limit: float, folder: str, key: bool = False) -> str:
    """Source of the grader's last cell. A student's requests are {"id", "exercise", "options", "arguments",
    "inputs"}; the key's are {"tag", "id", "exercise", "options", "arguments", "seed"}."""
    return _CELL.format(function="run_reference" if key else "run_probes", requests=json.dumps(requests),
                        nonce=nonce, limit=float(limit), folder=str(folder))


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


def _objects(request: dict, namespace: dict) -> tuple[tuple, dict]:
    """The check call's arguments, evaluated in the notebook's namespace."""
    return eval(f"_hw3_collect({request['arguments']})", namespace, {"_hw3_collect": _collect})


def probe_one(request: dict, namespace: dict, limit: float, handover: str = "") -> dict:
    """{"outputs": ...} of one question's probe, or {"error": ..., "defined": False} when its objects do not exist;
    the file the exercise hands the grader (if any) is copied to `handover`."""
    try:
        args, kwargs = _objects(request, namespace)
    except Exception as exc:
        return {"error": one_line(describe_exception(exc)), "defined": False}
    exercise = KINDS[request["exercise"]](**request["options"])
    problem = bind(exercise, args, kwargs)
    if problem:
        return {"error": problem}
    try:
        outputs = within(limit, lambda: probe_quietly(exercise, request["inputs"], args, kwargs))
        if handover:
            hand_over(exercise.artifact(request["inputs"], *args), handover)
        return {"outputs": outputs}
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
            result = probe_one(request, namespace, limit, os.path.join(folder, handover_name(nonce, request["id"])))
            record = {"id": request["id"], **result}
            json.dumps(record)
        except BaseException as exc:
            record = {"id": request["id"], "error": f"the probe was interrupted ({type(exc).__name__})"}
        _record(path, nonce, record)


MAX_HANDOVER_BYTES = 256 * 2**20


def handover_name(nonce: str, qid: str) -> str:
    """The name of the file a question's probe hands the grader, in the shared folder."""
    return f"{nonce}.{qid}.handover"


def hand_over(path: Any, destination: str) -> None:
    """Copy the file at `path` (a path the exercise named; nothing when None) to `destination`, at most
    MAX_HANDOVER_BYTES: what the grader examines itself (`kernel.verifier`)."""
    if path is None:
        return
    try:
        with open(os.fspath(path), "rb") as source, open(destination, "wb") as out:
            out.write(source.read(MAX_HANDOVER_BYTES + 1))
    except (OSError, TypeError, ValueError):  # no such file: the grader finds none, and says so
        pass


def answer(request: dict, namespace: dict) -> dict:
    """The answer key's {"inputs", "outputs", "mistakes"} for one (student, question) request."""
    args, kwargs = _objects(request, namespace)
    return key_answer(KINDS[request["exercise"]](**request["options"]), args, kwargs, request["seed"])


def run_reference(requests: str, namespace: dict, nonce: str, limit: float, folder: str) -> None:
    """Answer every request in the answer key's kernel and record each answer, or the error that stopped it."""
    path = os.path.join(folder, f"{nonce}.jsonl")
    for request in json.loads(requests):
        try:
            record = {"id": request["tag"], **within(limit, lambda: answer(request, namespace))}
            text = json.dumps(record, allow_nan=True)
        except BaseException as exc:
            text = json.dumps({"id": request["tag"], "error": one_line(describe_exception(exc))})
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{nonce} {text}\n")


def _record(path: str, nonce: str, record: dict) -> None:
    """Append one `<nonce> <json>` line to the results file and flush it to the OS at once."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{nonce} {json.dumps(record, allow_nan=True)}\n")


def read_results(folder: Path, nonce: str) -> tuple[dict[str, list[dict]], list[str]]:
    """({request id: its result records}, the ids whose probe started) from a kernel's results file.

    The file is the kernel's: it is opened without following links or blocking, must be a regular file, and is
    read up to MAX_RESULTS_BYTES; lines without the run's nonce, or that are not JSON objects with a string id,
    are ignored.
    """
    found: dict[str, list[dict]] = {}
    started: list[str] = []
    data = read_regular(Path(folder) / f"{nonce}.jsonl", MAX_RESULTS_BYTES) or b""
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.startswith(nonce + " "):
            continue
        try:
            record = json.loads(line[len(nonce) + 1:])
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            if record.get("started") is True:
                started.append(record["id"])
            else:
                found.setdefault(record["id"], []).append(record)
    return found, started


def read_regular(path: Path, limit: int) -> bytes | None:
    """The first `limit` bytes of the file the kernel left at `path`: opened without following links or blocking,
    and only when it is a regular file (None otherwise, or when there is none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        return file.read(limit)
