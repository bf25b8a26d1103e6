"""Fault injection: `python -m hw3 train` is SIGKILLed at seeded random moments and resumed each time.

The killed-and-resumed run must end with a loadable checkpoint and a complete metrics.json equal
(within 1e-6) to an uninterrupted reference run, which runs at the same time in another process (both
single-threaded, so the numbers are reproducible and the two use the two cores).

Kills are spread over the whole run (see `kill_plan`): during start-up (imports, tokenizing), in the
middle of an epoch, in the middle of a file write (as soon as a new temporary file appears), right after
last.pt is replaced (before model.pt/metrics.json) and after the last epoch (testing, writing results).
After every kill, each file in --out must be complete. A kill waits at most TRIGGER_TIMEOUT for its moment.
The test prints how long it took (about 70 s on an idle 2-core machine); it asserts no time.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw3.sentiment import checkpoint, run_state

SEED = 20240605
EPOCHS = 6
TRIGGER_TIMEOUT = 45.0  # seconds a kill waits for its moment before killing anyway


def kill_plan(rng: random.Random) -> list[tuple[str, float]]:
    """Six seeded kills spread over the run: (trigger, parameter)."""
    return [
        ("time", rng.uniform(0.3, 6.0)),        # start-up: imports, reading and tokenizing, loading BERT
        ("epochs", rng.randint(1, 2) + rng.uniform(0.0, 0.9)),  # mid-epoch, 1 or 2 epochs into this resume
        ("temp", rng.randint(0, 2)),            # in the middle of the 1st, 2nd or 3rd file write
        ("epochs", 1 + rng.uniform(0.0, 0.01)),  # just after last.pt is replaced, before model.pt/metrics.json
        ("temp", rng.randint(0, 2)),
        ("test", rng.uniform(0.0, 0.8)),        # after the last epoch: testing or writing the results
    ]


pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    from hw3.sentiment.model import tiny_bert
    from hw3.sentiment.tokenizer import load_tokenizer

    folder = tmp_path_factory.mktemp("encoder")
    tiny_bert().save_pretrained(folder)
    load_tokenizer("bundled").save_pretrained(folder)
    return folder


def command(encoder: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hw3", "train", "--encoder", str(encoder), "--data", "sample", "--epochs", str(EPOCHS),
            "--batch-size", "32", "--max-length", "64", "--no-progress", "--precision", "fp32", "--device", "cpu",
            "--out", str(out), *extra]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)


def _stamp(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


OUTPUTS = (checkpoint.LAST, checkpoint.BEST, checkpoint.METRICS, checkpoint.CURVES)


def _temp_files(out: Path) -> set[str]:
    """Temporary files of output writes now in `out` (not the start-up write probe)."""
    try:
        return {e.name for e in os.scandir(out) if e.name.endswith(".tmp") and e.name.startswith(tuple(f".{n}." for n in OUTPUTS))}
    except FileNotFoundError:
        return set()


def _epochs_done(out: Path) -> tuple[int, bool] | None:
    """(epochs in metrics.json, tested) or None while it is absent."""
    try:
        metrics = json.loads((out / checkpoint.METRICS).read_text())
    except FileNotFoundError:
        return None
    return len(metrics["epochs"]), "test_loss" in metrics


class Trigger:
    """Decides, polled every millisecond, when the current process is to be killed."""

    def __init__(self, kind: str, value: float, out: Path) -> None:
        self.kind, self.value, self.out = kind, value, out
        self.t0 = time.monotonic()
        self.initial_temps = _temp_files(out)  # left by an earlier kill: not this process's writes
        self.temps = set(self.initial_temps)
        self.new_temps = 0
        self.last = _stamp(out / checkpoint.LAST)
        self.replaced = 0
        self.at = None  # set when the condition is met: the moment to kill
        self.parsed = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.at is not None:
            return now >= self.at
        if self.kind == "time":
            return now - self.t0 >= self.value
        if self.kind == "temp":
            fresh = _temp_files(self.out) - self.temps
            self.temps |= fresh
            self.new_temps += len(fresh)
            return self.new_temps > self.value
        if self.kind == "epochs":
            stamp = _stamp(self.out / checkpoint.LAST)
            if stamp != self.last:
                self.last, self.replaced = stamp, self.replaced + 1
                if self.replaced == int(self.value):
                    self.at = now + (self.value - int(self.value)) * 2.0  # up to ~one epoch later
            return False
        if self.kind == "test":
            if now - self.parsed >= 0.02:  # metrics.json is parsed every 20 ms, not every poll
                self.parsed = now
                done = _epochs_done(self.out)
                if done is not None and done[0] == EPOCHS and not done[1]:
                    self.at = now + self.value
            return False
        raise ValueError(self.kind)


def wait_and_kill(proc: subprocess.Popen, trigger: Trigger, out: Path) -> str:
    """Poll `trigger` until it fires (or TRIGGER_TIMEOUT), SIGKILL the process; returns what happened."""
    while proc.poll() is None and time.monotonic() - trigger.t0 < TRIGGER_TIMEOUT and not trigger():
        time.sleep(0.001)
    if proc.poll() is not None:
        return f"exited {proc.returncode}"
    proc.send_signal(signal.SIGKILL)
    mid_write = bool(_temp_files(out) - trigger.initial_temps)  # a temp file that outlives the kill: caught mid-write
    proc.wait()
    return f"killed at {time.monotonic() - trigger.t0:.2f}s" + (" during a write" if mid_write else "")


def assert_outputs_intact(out: Path) -> int:
    """Every file in --out is complete: last.pt and model.pt load, metrics.json parses. Returns the epochs done."""
    done = 0
    if (out / checkpoint.LAST).exists():
        state = run_state.load(out / checkpoint.LAST)
        done = state["epoch"]
        assert [h["epoch"] for h in state["history"]] == list(range(1, done + 1))
    if (out / checkpoint.BEST).exists():
        checkpoint.load(out / checkpoint.BEST)
    if (out / checkpoint.METRICS).exists():
        json.loads((out / checkpoint.METRICS).read_text())
    return done


def comparable(metrics: dict) -> dict:
    return {"epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["epochs"]],
            **{k: metrics[k] for k in ("test_loss", "test_acc", "best_epoch", "examples", "encoder", "data")}}


def assert_close(a, b, tol: float = 1e-6) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key], tol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y, tol)
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=tol), (a, b)
    else:
        assert a == b


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted_run(encoder, tmp_path):
    began = time.monotonic()
    rng = random.Random(SEED)
    reference = start(command(encoder, tmp_path / "reference"), tmp_path / "reference.log")
    out, log = tmp_path / "faulty", tmp_path / "faulty.log"
    events = []
    try:
        for kind, value in kill_plan(rng):
            proc = start(command(encoder, out, "--resume"), log)
            outcome = wait_and_kill(proc, Trigger(kind, value, out), out)
            events.append((kind, round(value, 3), outcome, assert_outputs_intact(out)))
            assert "killed" in outcome or outcome == "exited 0", (events, log.read_text()[-2000:])
            assert "Traceback" not in log.read_text(), log.read_text()[-2000:]
        final = subprocess.run(command(encoder, out, "--resume"), capture_output=True, text=True, timeout=120,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
        assert reference.wait(timeout=120) == 0, (tmp_path / "reference.log").read_text()[-2000:]
    finally:
        reference.kill()
    assert final.returncode == 0, final.stderr[-2000:]
    assert "Traceback" not in final.stderr

    kills = [e for e in events if "killed" in e[2]]
    assert len(kills) >= 5, events
    assert any("during a write" in e[2] for e in kills), events
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    state = run_state.load(out / checkpoint.LAST)
    best = checkpoint.load(out / checkpoint.BEST)
    assert state["finished"] and state["epoch"] == EPOCHS
    assert checkpoint.same_head(best["head"], state["best_head"])
    metrics = json.loads((out / checkpoint.METRICS).read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, EPOCHS + 1))
    assert {"test_loss", "test_acc"} <= metrics.keys()
    expected = json.loads((tmp_path / "reference" / checkpoint.METRICS).read_text())
    assert_close(comparable(metrics), comparable(expected))
    print(f"kills: {events}; {time.monotonic() - began:.1f}s")
