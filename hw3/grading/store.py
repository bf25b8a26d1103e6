"""The results store of a grading batch: one SQLite file, one row per student.

Schema (created on first use):

    meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)      -- key "grader_version": the version that wrote it
    reports(student TEXT PRIMARY KEY,                      -- the student's name (notebook stem or folder name)
            submission TEXT NOT NULL,                      -- the path that was graded, as given
            digest TEXT NOT NULL,                          -- sha256 of the submitted notebooks (`intake`)
            grader_version TEXT NOT NULL,                  -- results.GRADER_VERSION when it was graded
            report TEXT NOT NULL,                          -- results.Report.to_dict() as JSON
            graded_at TEXT NOT NULL)                       -- UTC time, ISO 8601

Every `put` commits at once, so a grader that is killed loses only the submissions it was still grading.
A stored report is reused when the submission's digest and the grader version are unchanged. A store
written by another grader version is refused (StoreError) unless the caller adopts it to regrade everyone.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hw3.atomic import replacing
from hw3.errors import HW3Error

from .results import GRADER_VERSION, Report

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    student TEXT PRIMARY KEY, submission TEXT NOT NULL, digest TEXT NOT NULL, grader_version TEXT NOT NULL,
    report TEXT NOT NULL, graded_at TEXT NOT NULL);
"""


class StoreError(HW3Error):
    """The store cannot be used as it is; the one-line message names the fix."""


@dataclass(frozen=True)
class Row:
    """One stored result."""

    student: str
    digest: str
    grader_version: str
    report: Report
    graded_at: str


class Store:
    """An open results store (use as a context manager, or call `close`)."""

    def __init__(self, path: Path, adopt: bool = False, readonly: bool = False) -> None:
        """Open or create the store at `path`; `adopt` accepts one written by another grader version (its
        rows stay, but none of them is reused) and marks it as this version's; `readonly` opens an existing
        store without changing it."""
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise StoreError(f"no grades store at {self.path}: pass the --store files of `hw3 grade`")
        try:
            if readonly:
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            else:
                self._db = sqlite3.connect(self.path)
                self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'grader_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a grades store ({exc}): pass another --store FILE") from None
        if found and found[0] != GRADER_VERSION and not adopt:
            self._db.close()
            raise StoreError(f"{self.path} was written by grader version {found[0]}, this is version "
                             f"{GRADER_VERSION}: pass a new --store FILE, or --regrade all to regrade everyone into it")
        if not readonly:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('grader_version', ?)", (GRADER_VERSION,))

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (everything is already committed)."""
        self._db.close()

    def get(self, student: str) -> Row | None:
        """The stored result of `student`, if any."""
        found = self._db.execute("SELECT student, digest, grader_version, report, graded_at FROM reports "
                                 "WHERE student = ?", (student,)).fetchone()
        return _row(found) if found else None

    def current(self, student: str, digest: str) -> Report | None:
        """The stored report of `student` when it was graded from these contents by this grader version."""
        row = self.get(student)
        return row.report if row and row.digest == digest and row.grader_version == GRADER_VERSION else None

    def put(self, report: Report, graded_at: str | None = None) -> None:
        """Store (replace) `report` under its student and commit; `graded_at` defaults to now."""
        when = graded_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?)",
                             (report.student, report.submission, report.digest, report.grader_version,
                              json.dumps(report.to_dict(), sort_keys=True, ensure_ascii=False), when))

    def mark_shard(self, index: int, count: int) -> None:
        """Record that this store holds shard `index` of `count` (`merge-grades` names a missing student's shard)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('shard', ?)", (f"{index}/{count}",))

    def shard(self) -> tuple[int, int] | None:
        """The (index, count) `mark_shard` recorded, if any."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'shard'").fetchone()
        index, _, count = (found[0] if found else "").partition("/")
        return (int(index), int(count)) if index.isdigit() and count.isdigit() else None

    def rows(self) -> list[Row]:
        """Every stored result, sorted by student."""
        found = self._db.execute("SELECT student, digest, grader_version, report, graded_at FROM reports "
                                 "ORDER BY student").fetchall()
        return [_row(r) for r in found]


def _row(values: tuple) -> Row:
    student, digest_, version, report, graded_at = values
    return Row(student, digest_, version, Report.from_dict(json.loads(report)), graded_at)


def merge(paths: list[Path]) -> list[Row]:
    """The rows of several stores (the shards of one batch), sorted by student. A student found in two of
    them keeps the later grading of the same contents; different contents are refused (StoreError)."""
    found: dict[str, tuple[Path, Row]] = {}
    for path in paths:
        with Store(path, readonly=True) as store:
            for row in store.rows():
                known = found.get(row.student)
                if known and known[1].digest != row.digest:
                    raise StoreError(f"{known[0]} and {path} both hold student {row.student}, graded from different "
                                     f"submissions: merge the stores of one batch, or regrade the student in one")
                if not known or row.graded_at > known[1].graded_at:
                    found[row.student] = (path, row)
    return [found[student][1] for student in sorted(found)]


def check_complete(rows: list[Row], submissions: list, stores: list[Path]) -> None:
    """StoreError naming the students of the batch (`intake.Submission`s) that no store holds (with the shard that
    should, when the stores recorded their count) or that were graded from other contents than they hold now."""
    from .batch import shard_of
    from .reports.names import shown

    graded = {row.student: row for row in rows}
    missing = [sub.student for sub in submissions if sub.student not in graded]
    changed = [sub.student for sub in submissions if sub.student in graded and graded[sub.student].digest != sub.digest]
    counts = set()
    for path in stores:
        with Store(path, readonly=True) as store:
            counts.add(store.shard()[1] if store.shard() else None)
    count = counts.pop() if len(counts) == 1 else None
    if missing:
        named = [shown(s) + (f" (shard {shard_of(s, count)}/{count})" if count else "") for s in missing[:5]]
        raise StoreError(f"{len(missing)} students of the batch are in no store: {', '.join(named)}"
                         f"{', ...' if len(missing) > 5 else ''}: grade their shards (hw3 grade --shard I/N) and "
                         f"merge again")
    if changed:
        raise StoreError(f"{len(changed)} students were graded from other contents than the batch holds now: "
                         f"{', '.join(map(shown, changed[:5]))}{', ...' if len(changed) > 5 else ''}: grade their "
                         f"shards again and merge again")


def write_rows(target: Path, rows: list[Row]) -> None:
    """A new store at `target` holding exactly `rows`, built next to it and renamed into place."""
    with replacing(target) as temp:
        with Store(temp) as store:
            for row in rows:
                store.put(row.report, row.graded_at)
