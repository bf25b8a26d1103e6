"""Hand-graded scores from the instructor's CSV: the template, the merge, and one-line errors for bad sheets."""

from __future__ import annotations

import csv

import pytest
from report_builders import HOMEWORK, report

from hw3.grading.reports.manual import ManualScoresError, manual_ids, merge_manual, write_template

QUESTIONS = HOMEWORK.questions
AUTO = sum(q.max_points for q in HOMEWORK.automatic())  # what report() earns


def sheet(tmp_path, text: str):
    path = tmp_path / "scores.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_manual_ids_are_every_manual_question_in_order():
    assert manual_ids(HOMEWORK) == [q.id for q in QUESTIONS if q.kind == "manual"]
    assert manual_ids(HOMEWORK)[:2] == ["q1", "q2.written"] and "q3c" in manual_ids(HOMEWORK)


def test_template_lists_students_with_blank_manual_cells(tmp_path):
    path = write_template(["alice", "bob"], tmp_path / "scores.csv", HOMEWORK)
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows == [["student", *manual_ids(HOMEWORK)], ["alice", *[""] * len(manual_ids(HOMEWORK))],
                    ["bob", *[""] * len(manual_ids(HOMEWORK))]]


def test_filled_template_merges_into_totals(tmp_path):
    path = write_template(["alice", "bob"], tmp_path / "scores.csv", HOMEWORK)
    text = path.read_text(encoding="utf-8").replace("alice,,,", "alice,3,0.75,", 1)
    reports = [report("alice"), report("bob")]
    alice, bob = merge_manual(reports, sheet(tmp_path, text), HOMEWORK)
    assert alice.total == AUTO + 3.75 and bob.total == AUTO
    q1, q2w, q3c = alice.question("q1"), alice.question("q2.written"), alice.question("q3c")
    assert (q1.status, q1.points) == ("passed", 3) and q2w.status == "partial" and q3c.status == "manual"
    assert q1.rubric.startswith("0.75 per valid") and q1.message == ""
    assert reports[0].question("q1").status == "manual"  # the inputs are not modified


def test_zero_points_fail_and_columns_may_be_a_subset_in_any_order(tmp_path):
    path = sheet(tmp_path, "student,q3c,q1\nalice,0,1.5\n\nbob,,\n")
    alice, bob = merge_manual([report("alice"), report("bob")], path, HOMEWORK)
    assert alice.question("q3c").status == "failed" and alice.question("q1").points == 1.5
    assert all(q.status == "manual" for q in bob.questions if q.rubric)


def test_sheet_overrides_not_answered(tmp_path):
    rep = report("alice")
    rep.question("q1").status = "not answered"
    (merged,) = merge_manual([rep], sheet(tmp_path, "student,q1\nalice,2.25\n"), HOMEWORK)
    assert merged.question("q1").status == "partial" and merged.total == AUTO + 2.25


def test_excel_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_bytes("student,q1\nalice,3\n".encode("utf-8-sig"))
    assert merge_manual([report("alice")], path, HOMEWORK)[0].total == AUTO + 3


@pytest.mark.parametrize("text, message", [
    ("student,q1\nmallory,3\n", "line 2: unknown student 'mallory': use the names of the graded submissions"),
    ("student,q9\nalice,3\n", "unknown question column 'q9': the manual questions are q1, q2.written"),
    ("student,q2\nalice,1\n", "q2 is graded automatically: remove its column"),
    ("student,q1,q1\nalice,1,1\n", "the column q1 appears twice: keep one"),
    ("student,q1\nalice,4\n", "line 2: q1 is 4, outside 0 to 3: write points between 0 and the question's maximum"),
    ("student,q1\nalice,-1\n", "line 2: q1 is -1, outside 0 to 3"),
    ("student,q1\nalice,three\n", "line 2: q1 is 'three', not a number: write points such as 1.5 or leave it blank"),
    ("student,q1\nalice,nan\n", "q1 is 'nan', not a number"),
    ("name,q1\nalice,1\n", "the first column must be named `student` (found 'name')"),
    ("student,q1\nalice,1\nbob,2\nalice,3\n", "line 4: 'alice' is listed twice: keep one row per student"),
    ("student,q1\nalice,1,2\n", "line 2: 3 cells for 2 columns: remove the extra cells"),
    ("\n\n", "is empty: start from the template"),
])
def test_bad_sheets_give_one_line_naming_the_fix(tmp_path, text, message):
    with pytest.raises(ManualScoresError) as excinfo:
        merge_manual([report("alice"), report("bob")], sheet(tmp_path, text), HOMEWORK)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_missing_or_binary_sheet_is_one_line(tmp_path):
    with pytest.raises(ManualScoresError, match="cannot read .*check the --manual path"):
        merge_manual([report("alice")], tmp_path / "missing.csv", HOMEWORK)
    path = tmp_path / "scores.csv"
    path.write_bytes(b"student,q1\n\xff\xfe,1\n")
    with pytest.raises(ManualScoresError, match="is not a UTF-8 CSV file"):
        merge_manual([report("alice")], path, HOMEWORK)
