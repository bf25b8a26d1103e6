"""The grader's own computation on what a submission handed over: a trusted process, run after the student's kernel.

Some exercises stand for work that data returned by the kernel cannot prove (a trained checkpoint, predictions
from the student's model): their probe also hands the grader a file (`Exercise.artifact`, e.g. the checkpoint
at CHECKPOINT), which the harness copies into the folder the kernel shares with the grader. After the kernel is
gone, `verify` runs `python -m hw3.grading.kernel.verifier REQUEST` once per submission, in a sandbox of its own
(the answer key's build of hw3: nothing withheld, the grading corpus, the shared BERT features; the files bound
read-only; no network; the usual limits), where each exercise's `verify` computes what the files show. Its
answer is plain JSON, read back like a probe's; the scorers compare it with what the kernel claimed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REQUEST = "request.json"
MAX_ANSWER_BYTES = 4 * 2**20


def answer(request: dict, folder: Path) -> dict[str, Any]:
    """{question id: what its exercise's `verify` found, or {"error": why not}} for one submission (the files
    are named by the exercise kind that handed them over)."""
    from ..exercises.base import describe_exception
    from ..exercises.registry import KINDS

    files = {kind: str(folder / name) for kind, name in request["files"].items()}
    out = {}
    for item in request["questions"]:
        try:
            exercise = KINDS[item["exercise"]](**item["options"])
            out[item["id"]] = exercise.verify(item["inputs"], item["outputs"], files)
        except Exception as exc:  # a hostile file must cost its own question only
            out[item["id"]] = {"error": describe_exception(exc)}
    return out


def main(argv: list[str]) -> int:
    """`python -m hw3.grading.kernel.verifier FOLDER`: answer FOLDER/request.json on stdout (one JSON object)."""
    folder = Path(argv[0])
    request = json.loads((folder / REQUEST).read_text(encoding="utf-8"))
    print(json.dumps(answer(request, folder), allow_nan=True))
    return 0


def verify(questions: list[dict], files: dict[str, Path], launch: Any, timeout: float) -> dict[str, Any]:
    """Run the verifier for one submission (grader side): `questions` are {"id", "exercise", "options", "inputs",
    "outputs"}, `files` the artifacts the kernel handed over ({exercise kind: a private copy}: a question may examine
    another's, q4.4b the checkpoint of q4.3d), `launch` how the sandbox starts (`execute.Launch`, its
    `mounts.submission` the folder holding the files). Returns
    {question id: verified data}; every question gets {"error": ...} when the verifier itself fails."""
    from .sandbox import kernel_command, unsandboxed_command

    inbox = launch.mounts.submission if launch.mounts else Path(launch.env["HOME"]) / "verify"
    inbox.mkdir(parents=True, exist_ok=True)
    names = {}
    for kind, path in files.items():
        names[kind] = f"{kind}.bin"
        shutil.copyfile(path, inbox / names[kind])
    (inbox / REQUEST).write_text(json.dumps({"questions": questions, "files": names}, allow_nan=True),
                                 encoding="utf-8")
    for path in inbox.iterdir():
        path.chmod(0o644)
    inside = (Path("/home/student/submission") / inbox.name) if launch.mounts else inbox
    command = [sys.executable, "-m", "hw3.grading.kernel.verifier", str(inside)]
    command = (kernel_command(command, launch.mounts, launch.limits, launch.uid, launch.env) if launch.mounts
               else unsandboxed_command(command, launch.limits))
    try:
        done = subprocess.run(command, env=None if launch.mounts else launch.env, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        data = json.loads(done.stdout[-MAX_ANSWER_BYTES:].decode("utf-8", errors="replace").strip().splitlines()[-1])
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except subprocess.TimeoutExpired:
        reason = f"the grader's check of the saved files did not finish within {timeout:g} s"
    except (ValueError, IndexError):
        reason = "the grader's check of the saved files failed"
    return {q["id"]: {"error": reason} for q in questions}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
