"""hw3.errors (one exception, one error format) and hw3.atomic (atomic writes of regular files only)."""

from __future__ import annotations

import os

import pytest

from hw3 import atomic
from hw3.errors import HW3Error, format_error


def test_every_user_facing_error_of_the_grader_is_an_hw3_error_with_its_exit_code():
    from hw3.errors import UsageError
    from hw3.grading.assign import AssignError
    from hw3.grading.batch import BatchError
    from hw3.grading.course import CourseError
    from hw3.grading.key import KeyFileError
    from hw3.grading.notebook import NotebookError
    from hw3.grading.reports.manual import ManualScoresError
    from hw3.grading.store import StoreError
    from hw3.sentiment import HW3Error as package_level

    assert package_level is HW3Error
    for error in (AssignError, BatchError, CourseError, KeyFileError, NotebookError, ManualScoresError, StoreError):
        assert issubclass(error, HW3Error) and error.exit_code == 1, error
    assert issubclass(UsageError, HW3Error) and UsageError.exit_code == 2


@pytest.mark.parametrize("command, message, line", [
    ("train", "no such folder: use --data sample", "hw3 train: error: no such folder: use --data sample"),
    ("grade", "two\nlines", "hw3 grade: error: two"),
    (None, "bad", "hw3: error: bad"),
    ("predict", "  ", "hw3 predict: error: unknown error"),
])
def test_format_error_gives_one_line_in_argparses_format(command, message, line):
    assert format_error(command, message) == line


def test_write_creates_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic.write_text_atomic(target, "first")
    atomic.write_bytes_atomic(target, b"second")
    assert target.read_text() == "second" and os.listdir(target.parent) == ["a.txt"]


def test_a_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(HW3Error, match=r"cannot write .*a\.txt \(No space left on device\).*previous a\.txt is kept"):
        atomic.write_text_atomic(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def make_fifo(path):
    os.mkfifo(path)


def make_symlink(path):
    (path.parent / "real.txt").write_text("x")
    path.symlink_to(path.parent / "real.txt")


@pytest.mark.parametrize("make, kind", [(lambda p: p.mkdir(), "a folder"), (make_symlink, "a symlink"),
                                        (make_fifo, "not a regular file")])
def test_non_regular_targets_are_refused_in_one_line(tmp_path, make, kind):
    target = tmp_path / "target"
    make(target)
    with pytest.raises(HW3Error) as info:
        atomic.write_bytes_atomic(target, b"data")
    message = str(info.value)
    assert "\n" not in message and f"it is {kind}" in message and "choose another output path" in message
    assert not list(tmp_path.glob(".target.*.tmp"))
