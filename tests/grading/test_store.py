"""The results store: digests of submissions, rows committed at once, versions, merging, atomic outputs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from report_builders import QUESTIONS

from hw3.grading.intake import read_submission
from hw3.atomic import replacing, write_text_atomic as write_atomic
from hw3.grading.results import GRADER_VERSION, QuestionResult, Report
from hw3.grading.store import Store, StoreError, merge, write_rows


def report(student: str, digest_: str = "d1", points: float = 1.5) -> Report:
    questions = [QuestionResult(q.id, q.title, points if q.id == "q2" else 0, q.max_points,
                                "passed" if q.id == "q2" and points else "failed") for q in QUESTIONS]
    return Report(f"subs/{student}", student, questions, ["a note"], grader_version=GRADER_VERSION, digest=digest_)


def folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def digest(submission: Path) -> str:
    return read_submission(submission).digest


def test_a_digest_depends_on_the_notebooks_contents_and_names_only(tmp_path):
    one = folder(tmp_path / "one", {"a.ipynb": b"A", "part/b.ipynb": b"B", "notes.txt": b"x"})
    two = folder(tmp_path / "two", {"part/b.ipynb": b"B", "a.ipynb": b"A"})  # written in another order
    assert digest(one) == digest(two) and len(digest(one)) == 64
    (two / ".ipynb_checkpoints").mkdir()
    (two / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_bytes(b"old")
    assert digest(two) == digest(one)  # checkpoint copies are not submitted work
    (two / "a.ipynb").write_bytes(b"A!")
    assert digest(two) != digest(one)
    renamed = folder(tmp_path / "three", {"c.ipynb": b"A", "part/b.ipynb": b"B"})
    assert digest(renamed) != digest(one)
    glued = folder(tmp_path / "four", {"a.ipynb": b"AB", "part/b.ipynb": b""})  # same bytes, other split
    assert digest(glued) != digest(one)
    assert digest(one / "a.ipynb") != digest(one / "part" / "b.ipynb")


def test_a_row_is_committed_when_put_and_current_only_for_the_same_contents(tmp_path):
    path = tmp_path / "grades.sqlite"
    store = Store(path)
    store.put(report("ada"))
    with sqlite3.connect(path) as other:  # another connection sees it at once: it was committed
        assert other.execute("SELECT student, digest, grader_version FROM reports").fetchall() == [
            ("ada", "d1", GRADER_VERSION)]
    other.close()
    assert store.current("ada", "d1") == report("ada")
    assert store.current("ada", "d2") is None and store.current("bob", "d1") is None
    store.put(report("ada", "d2", 0))
    assert [r.report.digest for r in store.rows()] == ["d2"]
    store.close()


def test_rows_of_another_grader_version_are_never_current(tmp_path):
    with Store(tmp_path / "grades.sqlite") as store:
        old = report("ada")
        old.grader_version = "0"
        store.put(old)
        assert store.get("ada").grader_version == "0" and store.current("ada", "d1") is None


def test_a_foreign_or_missing_store_is_refused_in_one_line(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    with pytest.raises(StoreError, match="junk.sqlite is not a grades store .*: pass another --store FILE"):
        Store(junk)
    with pytest.raises(StoreError, match="no grades store at .*missing.sqlite"):
        Store(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


def test_merge_keeps_the_later_grading_of_the_same_contents(tmp_path):
    for name, graded_at in (("a.sqlite", "2026-01-01T00:00:00+00:00"), ("b.sqlite", "2026-01-02T00:00:00+00:00")):
        with Store(tmp_path / name) as store:
            store.put(report("ada", points=1.5 if name == "b.sqlite" else 0), graded_at)
            store.put(report(name[0] * 3))
    rows = merge([tmp_path / "b.sqlite", tmp_path / "a.sqlite"])
    assert [r.student for r in rows] == ["aaa", "ada", "bbb"]
    assert rows[1].report.total == 1.5 and rows[1].graded_at.startswith("2026-01-02")
    write_rows(tmp_path / "merged.sqlite", rows)
    with Store(tmp_path / "merged.sqlite", readonly=True) as merged:
        assert merged.rows() == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite", "b.sqlite", "merged.sqlite"]  # no temp left


def test_an_atomic_write_leaves_the_old_file_when_it_fails(tmp_path):
    target = tmp_path / "grades.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with replacing(target) as temp:
            temp.write_text("half")
            raise RuntimeError("stopped")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["grades.json"]
    write_atomic(target, "new")
    assert target.read_text() == "new"
