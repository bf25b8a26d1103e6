"""The grader-owned final cell: after a submission has run, re-check every exercise from the installed files.

The grader appends `final_cell(...)` to the submission and runs it in the same kernel. The cell drops
every `hw3*` module from sys.modules (so whatever the notebook redefined or monkeypatched is gone),
imports this module afresh from the grader's own package folder with only the standard import
machinery (import hooks the notebook added are set aside meanwhile), and calls `run_audit`. That
evaluates each check call's arguments (the names the untouched check cells use) in the notebook's
namespace, runs the verifier under a time limit, and prints one line per question:
`<nonce> {"id": ..., "passed": ..., "message": ...}`. The nonce is new for every run and only the
final cell's own output is read, so nothing the notebook printed can pose as a result.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .checks import describe_exception, one_line, run_check

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

_CELL = '''\
import sys as _hw3_sys
from importlib.machinery import PathFinder as _hw3_PathFinder
from importlib.util import module_from_spec as _hw3_module_from_spec
_hw3_finders = _hw3_sys.meta_path[:]
_hw3_sys.meta_path[:] = [f for f in _hw3_finders if getattr(f, "__module__", "").startswith("_frozen_importlib")]
try:
    for _hw3_name in [n for n in list(_hw3_sys.modules) if n == "hw3" or n.startswith("hw3.")]:
        del _hw3_sys.modules[_hw3_name]
    _hw3_spec = _hw3_PathFinder.find_spec("hw3", [{root!r}])
    _hw3_sys.modules["hw3"] = _hw3_module_from_spec(_hw3_spec)
    _hw3_spec.loader.exec_module(_hw3_sys.modules["hw3"])
    from hw3.grading.audit import run_audit as _hw3_run_audit
    _hw3_run_audit({calls!r}, globals(), {nonce!r}, {limit!r})
finally:
    _hw3_sys.meta_path[:] = _hw3_finders
'''


class AuditResult(NamedTuple):
    """One question's re-check; `defined` is False when an object its check cell names does not exist."""

    passed: bool
    message: str
    defined: bool = True


class CheckTimeout(BaseException):
    """Raised by the alarm inside a check that ran too long (a BaseException, so checks cannot swallow it)."""


def final_cell(calls: list[tuple[str, str]], nonce: str, limit: float, root: str = PACKAGE_ROOT) -> str:
    """Source of the final cell for the (question id, argument source) pairs to re-check."""
    return _CELL.format(root=root, calls=[list(c) for c in calls], nonce=nonce, limit=float(limit))


def _collect(*args: object, **kwargs: object) -> tuple[tuple, dict]:
    return args, kwargs


def within(limit: float, run: Callable[[], str | None]) -> str | None:
    """run() with a wall-clock limit (SIGALRM, main thread only); a reason string when it ran out."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        return run()

    def on_alarm(signum: int, frame: object) -> None:
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return run()
    except CheckTimeout:
        return f"the check did not finish within {limit:g} s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def audit_one(qid: str, arguments: str, namespace: dict, limit: float) -> AuditResult:
    """Re-run one check on the notebook's objects."""
    try:
        args, kwargs = eval(f"_hw3_collect({arguments})", namespace, {"_hw3_collect": _collect})
    except Exception as exc:
        return AuditResult(False, one_line(describe_exception(exc)), defined=False)
    try:
        reason = within(limit, lambda: run_check(qid, args, kwargs))
    except BaseException as exc:  # SystemExit or KeyboardInterrupt from the student's code
        reason = one_line(f"the checked code raised {describe_exception(exc)}")
    return AuditResult(reason is None, reason or "")


def run_audit(calls: list[list[str]], namespace: dict, nonce: str, limit: float) -> None:
    """Check every (question id, argument source) pair and print one result line per question.

    Whatever one check does (an exception escaping even the reporting of an exception), the others
    still run and every question gets its line.
    """
    for qid, arguments in calls:
        try:
            result = audit_one(qid, arguments, namespace, limit)
        except BaseException as exc:
            result = AuditResult(False, one_line(f"the check was interrupted ({type(exc).__name__})"))
        print(f"{nonce} {json.dumps({'id': qid, **result._asdict()}, ensure_ascii=False)}", flush=True)


def parse_results(outputs: list, nonce: str) -> dict[str, list[AuditResult]]:
    """{question id: [its re-check results]} from the final cell's stdout outputs (one each, unless forged)."""
    results: dict[str, list[AuditResult]] = {}
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    for line in text.splitlines():
        if not line.startswith(nonce + " "):
            continue
        try:
            record = json.loads(line[len(nonce) + 1:])
            result = AuditResult(record["passed"] is True, str(record["message"]), record.get("defined") is not False)
            results.setdefault(str(record["id"]), []).append(result)
        except (ValueError, KeyError, TypeError):
            continue
    return results
