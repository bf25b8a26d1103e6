"""`hw3 grade` over a batch: parallel, resumable, incremental, sharded, with outputs rendered from the store.

Most tests replace the grader with `FakeGrader` (batch.grade_submission, the adapter to the grader core),
which returns a deterministic report per submission and records each call, so the batch logic is tested
without kernels. One end-to-end test grades the mini answer key with real kernels.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from grading_helpers import FIXTURE, hw3, mini_homework, write_course

from hw3.grading import batch
from hw3.grading.kernel import sandbox
from hw3.grading.results import GRADER_VERSION, QuestionResult, Report

STUDENTS = ["ada", "bob", "cy", "dee", "eve"]
QUESTIONS = mini_homework().questions
AUTO = [q.id for q in QUESTIONS if q.kind == "auto"]


class FakeGrader:
    """Grades a submission from its text: an auto question passes when its id is one of the text's words. Records every call (student, only) and its start and end times; raises KeyboardInterrupt on call
    `interrupt_at` (1-based); `tag` goes into every message, to tell gradings apart."""

    def __init__(self, interrupt_at: int | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, frozenset[str] | None]] = []
        self.intervals: list[tuple[float, float]] = []
        self.interrupt_at, self.delay, self.tag = interrupt_at, delay, "first"
        self.lock = threading.Lock()

    def __call__(self, sub: batch.Submission, settings: batch.Settings) -> Report:
        path = sub.path  # the fake reads the words the course fixture wrote (not a notebook)
        with self.lock:
            self.calls.append((path.stem, settings.only))
            if len(self.calls) == self.interrupt_at:
                raise KeyboardInterrupt
        start = time.monotonic()
        time.sleep(self.delay)
        words = path.read_text(encoding="utf-8").split()
        questions = [QuestionResult(q.id, q.title, 0, q.max_points, "manual", "graded by hand", rubric=q.rubric)
                     if q.kind == "manual" else
                     QuestionResult(q.id, q.title, q.max_points if q.id in words else 0, q.max_points,
                                    "passed" if q.id in words else "failed", self.tag)
                     for q in QUESTIONS]
        with self.lock:
            self.intervals.append((start, time.monotonic()))
        return Report(str(path), path.stem, questions, [f"{self.tag} grading"], seconds=1.5)

    def students(self) -> list[str]:
        return [student for student, _ in self.calls]


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A reference folder, one submission file per student (the i-th answers the first i automatic
    questions), a fake grader in place of the real one, and the working folder set to tmp_path (where the default store goes)."""
    write_course(tmp_path, {})
    subs = tmp_path / "submissions"
    for i, student in enumerate(STUDENTS):
        (subs / f"{student}.ipynb").write_text(" ".join([student, *AUTO[:i]]), encoding="utf-8")
    fake = FakeGrader()
    monkeypatch.setattr(batch, "grade_submission", fake)
    monkeypatch.setattr(batch, "with_answers", lambda tasks, settings: tasks)  # the fake needs no answer key
    monkeypatch.chdir(tmp_path)
    return {"root": tmp_path, "subs": subs, "fake": fake, "monkeypatch": monkeypatch}


def grade(course, *options, fake: FakeGrader | None = None) -> int:
    """`hw3 grade` every submission of `course` against its reference (optionally with another fake)."""
    if fake is not None:
        course["monkeypatch"].setattr(batch, "grade_submission", fake)
    return hw3("grade", *sorted(course["subs"].iterdir()), "--answers", course["root"] / "answers", *options)


def read_json(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


def test_an_interrupted_batch_resumes_with_nothing_lost_and_nothing_graded_twice(course, capsys):
    interrupted = FakeGrader(interrupt_at=3)
    assert grade(course, "--jobs", "1", "--json", "out.json", fake=interrupted) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("hw3 grade: error: interrupted: 2 of 5 submissions are graded and stored in grades.sqlite; "
                       "run the same command again to grade the rest")
    assert [r["student"] for r in read_json(course["root"] / "out.json")] == ["ada", "bob"]  # what was done
    resumed = FakeGrader()
    assert grade(course, "--jobs", "1", "--json", "out.json", fake=resumed) == 0
    assert resumed.students() == ["cy", "dee", "eve"]
    assert interrupted.students()[:2] + resumed.students() == STUDENTS
    assert [r["student"] for r in read_json(course["root"] / "out.json")] == STUDENTS


def test_a_rerun_grades_only_new_and_changed_submissions(course, capsys):
    assert grade(course, "--jobs", "2") == 0
    (course["subs"] / "bob.ipynb").write_text("bob now answers q3b", encoding="utf-8")
    (course["subs"] / "fay.ipynb").write_text("fay is new", encoding="utf-8")
    again = FakeGrader()
    assert grade(course, "--jobs", "2", "--json", "out.json", fake=again) == 0
    assert sorted(again.students()) == ["bob", "fay"]
    assert "4 unchanged submissions keep their reports from grades.sqlite" in capsys.readouterr().err
    bob = next(r for r in read_json(course["root"] / "out.json") if r["student"] == "bob")
    assert {q["id"] for q in bob["questions"] if q["points"]} == {"q3b"}  # graded from the new contents


def test_jobs_2_grades_two_submissions_at_once(course):
    slow = FakeGrader(delay=0.5)
    assert grade(course, "--jobs", "2", fake=slow) == 0
    (a_start, a_end), (b_start, b_end) = sorted(slow.intervals)[:2]
    assert b_start < a_end  # the second began before the first ended
    one = FakeGrader(delay=0.2)
    assert grade(course, "--jobs", "1", "--store", "serial.sqlite", fake=one) == 0
    ends = sorted(one.intervals)
    assert all(later[0] >= earlier[1] for earlier, later in zip(ends, ends[1:]))


def test_a_retried_shard_gives_identical_results(course):
    assert grade(course, "--shard", "1/3", "--json", "try1.json") == 0
    assert Path("grades-1-of-3.sqlite").is_file()  # the default store of a shard
    assert course["fake"].students() == ["cy"]  # the students whose name hashes to shard 1 of 3
    assert grade(course, "--shard", "1/3", "--store", "retry.sqlite", "--json", "try2.json", fake=FakeGrader()) == 0
    assert Path("try1.json").read_bytes() == Path("try2.json").read_bytes()


def test_merged_shards_equal_the_unsharded_run(course):
    assert grade(course, "--store", "all.sqlite", "--json", "all.json", "--csv", "all.csv",
                 "--gradescope", "all-gs") == 0
    for i in (1, 2, 3):
        assert grade(course, "--shard", f"{i}/3", fake=FakeGrader()) == 0
    shards = [f"grades-{i}-of-3.sqlite" for i in (3, 1, 2)]  # any order
    assert hw3("merge-grades", *shards, "--json", "merged.json", "--csv", "merged.csv",
               "--gradescope", "merged-gs", "--store", "merged.sqlite") == 0
    for name in ("json", "csv"):
        assert Path(f"merged.{name}").read_bytes() == Path(f"all.{name}").read_bytes()
    assert {p.name: p.read_bytes() for p in Path("merged-gs").iterdir()} == \
        {p.name: p.read_bytes() for p in Path("all-gs").iterdir()}
    assert hw3("merge-grades", "merged.sqlite", "--json", "again.json") == 0
    assert Path("again.json").read_bytes() == Path("all.json").read_bytes()


def test_merging_two_different_gradings_of_one_student_is_refused(course, capsys):
    assert grade(course, "--store", "a.sqlite") == 0
    (course["subs"] / "ada.ipynb").write_text("ada resubmitted", encoding="utf-8")
    assert grade(course, "--store", "b.sqlite") == 0
    capsys.readouterr()
    assert hw3("merge-grades", "a.sqlite", "b.sqlite", "--json", "m.json") == 1
    assert capsys.readouterr().err == ("hw3 merge-grades: error: a.sqlite and b.sqlite both hold student ada, graded from "
                                       "different submissions: merge the stores of one batch, or regrade the student "
                                       "in one\n")
    assert not Path("m.json").exists()
    assert hw3("merge-grades", "missing.sqlite", "--json", "m.json") == 1
    assert "no grades store at missing.sqlite" in capsys.readouterr().err
    assert hw3("merge-grades", "a.sqlite") == 2


def test_regrade_reruns_one_question_for_everyone_and_merges_it(course):
    assert grade(course, "--json", "before.json") == 0
    (course["subs"] / "cy.ipynb").write_text("cy changed", encoding="utf-8")
    regrader = FakeGrader()
    regrader.tag = "second"
    assert grade(course, "--regrade", "q3b", "--json", "after.json", fake=regrader) == 0
    assert dict(regrader.calls) == {**{s: frozenset({"q3b"}) for s in STUDENTS}, "cy": None}  # cy: in full
    before = {r["student"]: r for r in read_json(Path("before.json"))}
    for report in read_json(Path("after.json")):
        if report["student"] == "cy":
            assert {q["message"] for q in report["questions"] if q["status"] != "manual"} == {"second"}
            continue
        old = before[report["student"]]
        for new_q, old_q in zip(report["questions"], old["questions"]):
            assert new_q == ({**old_q, "message": "second"} if new_q["id"] == "q3b" else old_q)
        assert report["notes"] == ["first grading", "second grading"]
        assert report["seconds"] == 3.0


def test_regrade_all_regrades_everyone_in_full(course):
    assert grade(course) == 0
    again = FakeGrader()
    assert grade(course, "--regrade", "all", fake=again) == 0
    assert again.calls == [(s, None) for s in STUDENTS]


def test_a_store_of_another_grader_version_is_refused_with_the_fix(course, capsys):
    assert grade(course, "--json", "out.json") == 0
    capsys.readouterr()
    with sqlite3.connect("grades.sqlite") as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'grader_version'")
    db.close()
    again = FakeGrader()
    assert grade(course, "--json", "out.json", fake=again) == 1
    assert capsys.readouterr().err == (f"hw3 grade: error: grades.sqlite was written by grader version 1, this is version "
                                       f"{GRADER_VERSION}: pass a new --store FILE, or --regrade all to regrade everyone "
                                       f"into it\n")
    assert again.calls == [] and len(read_json(Path("out.json"))) == 5  # nothing lost
    assert grade(course, "--regrade", "all", fake=again) == 0
    assert again.students() == STUDENTS


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_grading(course, capsys, kind):
    target = course["root"] / "out.json"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(course["root"] / "elsewhere.json")
    expected = {"directory": "a directory", "fifo": "a FIFO", "symlink": "a symbolic link"}[kind]
    for option in ("--json", "--csv", "--store", "--manual-template"):
        assert grade(course, option, target) == 1
        assert capsys.readouterr().err == f"hw3 grade: error: {target} is {expected}: pass the path of a regular file\n"
    if kind != "directory":  # for a batch of several, --gradescope takes a folder
        assert grade(course, "--gradescope", target) == 1
        assert capsys.readouterr().err == (f"hw3 grade: error: --gradescope {target}: this batch has 5 submissions and "
                                           f"Gradescope reads one results.json each: pass a folder (e.g. --gradescope "
                                           f"gradescope/) for one file per student\n")
    assert course["fake"].calls == [] and not Path("grades.sqlite").exists()


def test_gradescope_for_a_batch_is_one_complete_results_json_per_student(course, capsys):
    from hw3.grading.autograder import results

    assert grade(course, "--gradescope", "gs.json") == 1
    assert "pass a folder (e.g. --gradescope gradescope/)" in capsys.readouterr().err
    assert grade(course, "--gradescope", "gs", "--json", "all.json") == 0
    totals = {r["student"]: r["total"] for r in read_json(Path("all.json"))}
    files = sorted(Path("gs").iterdir())
    assert [p.name for p in files] == [f"{s}.json" for s in STUDENTS]
    for path, student in zip(files, STUDENTS):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert results(path.read_text(encoding="utf-8"), "", 0, 1.0) == data  # what run_autograder accepts as is
        assert data["score"] == totals[student] and f"feedback: {student}" in data["output"]
    assert hw3("grade", "--answers", course["root"] / "answers", "--gradescope", "one.json", "--",
               course["subs"] / "bob.ipynb") == 0  # one submission: a file
    assert json.loads(Path("one.json").read_text(encoding="utf-8"))["score"] == totals["bob"]


@pytest.mark.parametrize("spec", ["3/2", "0/0", "a/b", "1/0", "2"])
def test_a_bad_shard_is_a_usage_error_in_one_line(course, capsys, spec):
    assert grade(course, "--shard", spec) == 2
    err = capsys.readouterr().err
    assert err == f"hw3 grade: error: --shard {spec!r} is not i/N with 1 ≤ i ≤ N: shards are numbered 1/N to N/N\n"
    assert course["fake"].calls == []


def test_an_unknown_question_to_regrade_is_a_usage_error(course, capsys):
    assert grade(course, "--regrade", "q3b,q9") == 2
    assert capsys.readouterr().err.startswith("hw3 grade: error: --regrade 'q3b,q9': q9 is not a question id: pass ids")


def homework_notebook(*qids: str) -> nbformat.NotebookNode:
    """A notebook with one check cell per question id."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f'check("{qid}", f)') for qid in qids])


def test_bad_submissions_are_refused_in_one_line_and_nothing_graded_is_lost(course, capsys):
    assert grade(course) == 0
    capsys.readouterr()
    stored = Path("grades.sqlite").read_bytes()
    empty = course["subs"] / "zed"
    empty.mkdir()
    assert grade(course) == 1
    assert capsys.readouterr().err == (f"hw3 grade: error: {empty} has no notebooks: add the student's .ipynb files or "
                                       f"leave the folder out\n")
    for name in ("part1", "copy of part1"):
        nbformat.write(homework_notebook("q2", "q3a"), empty / f"{name}.ipynb")
    assert grade(course) == 1
    assert capsys.readouterr().err == (f"hw3 grade: error: {empty / 'copy of part1.ipynb'} and {empty / 'part1.ipynb'} both "
                                       f"answer q2: a folder holds one student's notebooks, so move the other "
                                       f"student's into a folder of its own\n")
    (empty / "copy of part1.ipynb").unlink()
    nbformat.write(homework_notebook("q3b", "q4.3a"), empty / "part2.ipynb")
    other = course["root"] / "elsewhere"
    other.mkdir()
    (other / "ada.ipynb").write_text("another ada", encoding="utf-8")
    assert hw3("grade", *course["subs"].iterdir(), other / "ada.ipynb", "--answers", course["root"] / "answers") == 1
    assert capsys.readouterr().err == (f"hw3 grade: error: {course['subs'] / 'ada.ipynb'} and {other / 'ada.ipynb'} are both "
                                       f"student ada: give each student one submission (rename one)\n")
    assert hw3("grade", course["subs"] / "ada.ipynb", course["subs"] / "nobody.ipynb") == 1
    assert capsys.readouterr().err == f"hw3 grade: error: no such file or folder: {course['subs'] / 'nobody.ipynb'}\n"
    assert course["fake"].students() == STUDENTS and Path("grades.sqlite").read_bytes() == stored
    assert grade(course) == 0  # a folder with one student's two parts is fine
    assert course["fake"].students() == [*STUDENTS, "zed"]


def test_progress_without_a_terminal_is_one_line_per_submission(course, capsys):
    assert grade(course, "--jobs", "1") == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"graded {s} ({i} of 5): {points:g} / {mini_homework().max_total:g}" for i, (s, points) in
                     enumerate(zip(STUDENTS, (0, 1.5, 2, 4, 6)), start=1)], lines


def test_default_jobs_follow_the_cpus_and_the_memory(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(batch, "available_memory", lambda: 20 * 2**30)
    assert batch.default_jobs(8) == 2
    assert batch.default_jobs(4) == 4
    assert batch.default_jobs(0) == 4  # no memory limit
    assert batch.default_jobs(32) == 1  # at least one


def test_a_grader_crash_is_stored_as_a_report_and_the_batch_goes_on(course):
    def crash(sub, settings):
        if sub.student == "cy":
            raise RuntimeError("boom")
        return FakeGrader()(sub, settings)

    assert grade(course, "--json", "out.json", fake=crash) == 0
    reports = {r["student"]: r for r in read_json(Path("out.json"))}
    assert set(reports) == set(STUDENTS)
    assert reports["cy"]["notes"] == ["grading crashed (RuntimeError: boom): report it to the course staff"]
    assert reports["cy"]["total"] == 0 and reports["cy"]["digest"]


def test_end_to_end_with_kernels_the_second_run_reuses_the_store(tmp_path, monkeypatch):
    subs = write_course(tmp_path, {})
    for name in ("one", "two"):
        (subs / f"{name}.ipynb").write_bytes(FIXTURE.read_bytes())
    monkeypatch.chdir(tmp_path)
    args = ["grade", *sorted(subs.iterdir()), "--answers", "answers", "--timeout", "20", "--jobs", "2",
            "--json", "first.json"]
    assert hw3(*args) == 0
    first = read_json(Path("first.json"))
    assert [(r["student"], r["total"]) for r in first] == [("one", 6), ("two", 6)], [r["notes"] for r in first]
    assert first[0]["grader_version"] == GRADER_VERSION and len(first[0]["digest"]) == 64

    def no_kernels(sub, settings):
        raise AssertionError("graded again")

    monkeypatch.setattr(batch, "grade_submission", no_kernels)
    assert hw3(*args[:-1], "second.json") == 0
    assert Path("second.json").read_bytes() == Path("first.json").read_bytes()


def test_a_second_ctrl_c_while_writing_the_outputs_is_one_line_and_keeps_the_store(course, capsys, monkeypatch):
    from hw3.grading import outputs

    def interrupted(target, text):
        raise KeyboardInterrupt

    write_atomic = outputs.write_text_atomic
    monkeypatch.setattr(outputs, "write_text_atomic", interrupted)
    assert grade(course, "--json", "out.json") == 130
    assert capsys.readouterr().err.splitlines()[-1] == ("hw3 grade: error: interrupted: everything graded so far is in the "
                                                        "store; run the same command again to finish")
    again = FakeGrader()
    monkeypatch.setattr(outputs, "write_text_atomic", write_atomic)
    assert grade(course, "--json", "out.json", fake=again) == 0
    assert again.calls == [] and len(read_json(Path("out.json"))) == 5


def four_mini_submissions(root: Path, jobs: int) -> tuple[list[str], dict[str, str]]:
    """(the `hw3 grade` command, its environment) for four copies of the mini answer key under `root`."""
    subs = write_course(root, {})
    for name in ("one", "two", "three", "four"):
        (subs / f"{name}.ipynb").write_bytes(FIXTURE.read_bytes())
    command = [sys.executable, "-m", "hw3", "grade", *sorted(map(str, subs.iterdir())), "--answers", "answers",
               "--timeout", "30", "--jobs", str(jobs), "--json", "out.json"]
    return command, {**os.environ, "OMP_NUM_THREADS": "1"}


def first_graded(grading: subprocess.Popen) -> str:
    """The first `graded ...` line of a running `hw3 grade` (notes before it are skipped)."""
    for line in iter(grading.stderr.readline, ""):
        if line.startswith("graded "):
            return line
    raise AssertionError("hw3 grade ended before grading anything")


def test_end_to_end_ctrl_c_stops_at_once_and_leaves_no_kernel(tmp_path):
    command, env = four_mini_submissions(tmp_path, jobs=2)
    grading = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first_graded(grading)  # the first submission is graded and stored
    kernels = subprocess.run(["pgrep", "-P", str(grading.pid)], capture_output=True, text=True).stdout.split()
    grading.send_signal(signal.SIGINT)
    start = time.monotonic()
    rest = grading.communicate(timeout=30)[1]
    assert grading.returncode == 130 and time.monotonic() - start < 10, rest
    assert rest.splitlines()[-1].startswith("hw3 grade: error: interrupted: ") and "Traceback" not in rest
    done = read_json(tmp_path / "out.json")
    assert 1 <= len(done) < 4 and all(r["total"] == 6 for r in done)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in kernels) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in kernels if Path(f"/proc/{pid}").exists()]  # the kernels in flight stopped too


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_bar_with_an_eta_and_the_tables_go_to_stdout(capsys):
    reports = [FakeGrader()(batch.Submission("mini_answers", FIXTURE, ""), batch.Settings(None, 1, 1)) for _ in range(2)]
    terminal = Terminal()
    progress = batch.Progress(2, lambda report: f"table of {report.student}", terminal)
    for report in reports:
        progress(report)
    progress.close()
    bar = terminal.getvalue()
    assert "2/2" in bar and "<00:00" in bar  # done of total, elapsed<remaining
    assert "graded" not in bar and capsys.readouterr().out == "table of mini_answers\n\n" * 2


def test_end_to_end_a_batch_killed_mid_way_resumes_with_nothing_lost_or_graded_twice(tmp_path):
    """SIGKILL (no cleanup at all) after the first report is stored; the same command then grades only the
    rest, and the dead grader's kernel cgroups (as root) are swept."""
    command, env = four_mini_submissions(tmp_path, jobs=1)
    grading = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    first = first_graded(grading)
    time.sleep(1)  # the next submission's kernel (and, as root, its cgroup) has started
    grading.kill()
    grading.wait()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    graded = [line.split()[1] for line in again.stderr.splitlines() if line.startswith("graded ")]
    assert first.split()[1] not in graded and len(graded) <= 3  # what was stored is not graded again
    done = read_json(tmp_path / "out.json")
    assert sorted(r["student"] for r in done) == ["four", "one", "three", "two"] and all(r["total"] == 6 for r in done)
    parents = {*Path("/sys/fs/cgroup").glob("*"), *(sandbox.cgroup_parent(c) for c in ("memory", "pids", "cpu"))}
    assert not [found for parent in parents for found in parent.glob(f"hw3-{grading.pid}-*")]  # nested ones too


def test_a_machine_with_too_little_memory_is_refused_before_anything_is_graded(course, capsys, monkeypatch):
    """Below about 0.6 GiB (the answer keys lose points in a 448 MiB cgroup) a Q4 kernel could be killed
    mid-notebook: the batch is refused, naming what needs the memory and the fix."""
    monkeypatch.setattr(batch, "available_memory", lambda: int(0.5 * 2**30))
    fake = FakeGrader()
    assert grade(course, "--json", "out.json", fake=fake) == 1
    err = capsys.readouterr().err
    assert err.startswith("hw3 grade: error: only 0.5 GiB of memory is available and grading one submission needs "
                          "about 0.6 GiB (the Q4 notebook's kernel, with torch and BERT, beside the grader)")
    assert "larger container" in err and len(err.strip().splitlines()) == 1
    assert fake.calls == [] and not Path("out.json").exists()


def test_gradescope_s_default_container_grades(course, monkeypatch):
    """768 MB, less what the container already uses: `hw3 grade` no longer refuses there."""
    monkeypatch.setattr(batch, "available_memory", lambda: 740 * 2**20)
    fake = FakeGrader()
    assert grade(course, "--json", "out.json", fake=fake) == 0
    assert len(fake.calls) == len(STUDENTS) and Path("out.json").exists()


def _parse_in_threads(parse, threads: int = 4, rounds: int = 60) -> list[str]:
    """The errors of `threads` threads each parsing a 50-function module `rounds` times, with the garbage
    collector running often and handing the GIL to another thread each time it starts (as a grading thread's
    allocations do in the middle of a parse)."""
    import gc

    source = "\n".join(f"def f{i}(x):\n    return [(x + {i}) * 2 if x else (lambda y: y ** 2)(x) for _ in 'ab']"
                       for i in range(50))
    errors: list[str] = []

    def work() -> None:
        for _ in range(rounds):
            try:
                parse(source)
            except Exception as exc:  # noqa: BLE001  (what a grading thread would crash with)
                errors.append(repr(exc))

    def switch(phase: str, info: dict) -> None:
        time.sleep(0)

    old = gc.get_threshold()
    gc.callbacks.append(switch)
    gc.set_threshold(50)
    try:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(switch)
    return errors


def test_grading_threads_parse_python_one_at_a_time():
    """Two grading threads once crashed a batch's first submissions with "AST constructor recursion depth
    mismatch" (Python before 3.12 counts a syntax tree's conversion per process): the grader's parser takes
    turns. Where this Python has that flaw, plain ast.parse fails under the same load, so the load is real."""
    import ast

    from hw3.grading.notebook import parse_python

    if sys.version_info < (3, 12):
        assert any(_parse_in_threads(ast.parse) for _ in range(5)), "the load no longer makes ast.parse fail"
    assert _parse_in_threads(parse_python) == []


def test_the_grading_build_is_made_once_when_threads_ask_together():
    from hw3.grading import grader

    withheld = frozenset({("hw3.rnn", frozenset({"closed_form"}))})
    grader._build.cache_clear()
    paths: list = []
    workers = [threading.Thread(target=lambda: paths.append(grader.build(withheld))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(paths) == 3 and len(set(paths)) == 1, paths
    assert "withheld while grading" in (paths[0] / "hw3" / "rnn.py").read_text()
