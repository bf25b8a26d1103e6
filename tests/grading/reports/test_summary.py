"""The class summary: statistics, per-question status counts, grouped failure reasons, findings, histogram."""

from __future__ import annotations

import pytest
from report_builders import HOMEWORK, question, report

from hw3.grading.reports.manual import manual_ids, merge_scores
from hw3.grading.reports.similarity import REFERENCE, Finding
from hw3.grading.reports.summary import common_reasons, mask_numbers, render, write_summary


def class_of_four():
    reports = [report("alice"),
               report("bob", {"q2": (0.5, "returned 0.572 for xs = [3, 5], expected 1")}),
               report("carol", {"q2": (0.0, "returned 0.61 for xs = [2, 7], expected 1"),
                                "q3a": (0.0, "norms(2.0) raised ZeroDivisionError")}),
               report("dave", {"q2": (0.0, "rnn_output is not defined")})]
    dave = reports[3].questions
    dave[dave.index(reports[3].question("q3b"))] = question("q3b", status="not answered")
    return reports


def test_mask_numbers_groups_values_but_keeps_names():
    assert mask_numbers("returned 0.572 for xs = [3, -5], expected 1e-3") == "returned … for xs = […], expected …"
    assert mask_numbers("f([1, 2, 3]) and f([4])") == "f([…]) and f([…])"
    assert mask_numbers("q4.3a: float64 x1 v2.0") == "q4.3a: float64 x1 v2.0"


def test_common_reasons_group_messages_differing_only_in_numbers():
    reasons = common_reasons(class_of_four(), "q2")
    assert reasons == [("returned … for xs = […], expected …", 2), ("rnn_output is not defined", 1)]
    assert common_reasons(class_of_four(), "q4.3b") == []


def test_summary_statistics_and_status_counts():
    text = render(class_of_four())
    assert "- Students: 4" in text
    auto = sum(q.max_points for q in HOMEWORK.automatic())  # every student loses points from there:
    totals = [auto, auto - 0.75, auto - 2, auto - 3.5]  # nothing, q2 half, q2 + q3a, q2 + q3b
    assert f"- Mean total: {sum(totals) / 4:.2f} / {HOMEWORK.max_total:g}" in text
    assert f"- Median total: {(totals[1] + totals[2]) / 2:g}" in text
    assert f"- Points graded by hand: {HOMEWORK.max_total - auto:g} of the {HOMEWORK.max_total:g}; not merged yet" in text
    assert "| q2 | 1.5 | 1 | 1 | 2 | 0 | 0 | 0.56 |" in text
    assert "| q3b | 2 | 3 | 0 | 0 | 1 | 0 | 1.50 |" in text
    assert "| q1 | 3 | 0 | 0 | 0 | 0 | 4 | 0.00 |" in text
    assert "  - 2 × returned … for xs = `[…],` expected …" in text
    assert "- **q3a**\n  - 1 × norms(…) raised ZeroDivisionError" in text


def test_points_graded_by_hand_follow_the_merged_scores():
    manual = HOMEWORK.manual()
    by_hand = sum(q.max_points for q in manual)
    alice = {q.id: q.max_points for q in manual}
    alice[manual[0].id] -= 1  # one point lost on the first hand-graded question
    assert set(alice) == set(manual_ids(HOMEWORK))
    reports = merge_scores(class_of_four(), {"alice": alice, "bob": {manual[0].id: 2.0}})
    assert (f"- Points graded by hand: {by_hand:g} of the {HOMEWORK.max_total:g}; merged for 1 of 4 students "
            f"(mean {by_hand - 1:.2f} / {by_hand:g}), in part for 1 more") in render(reports)


def test_findings_are_listed_for_a_person_and_never_penalised():
    reports = class_of_four()
    before = [r.total for r in reports]
    text = render(reports, [Finding("q4.3b", "alice", "bob", 0.96), Finding("q2", "carol", REFERENCE, 1.0)])
    section = text.split("## For a person to look at")[1]
    assert "- q4.3b: alice and bob, 96% similar" in section
    assert "- q2: carol and the answer key or hw3's own code, 100% similar" in section
    assert "no grade was changed" in section and [r.total for r in reports] == before
    assert "No near-identical solutions." in render(reports)


def test_write_summary_writes_markdown_and_a_png_histogram(tmp_path):
    path = write_summary(class_of_four(), tmp_path / "summary")
    assert path == tmp_path / "summary" / "summary.md"
    assert "![Histogram of the totals](scores.png)" in path.read_text(encoding="utf-8")
    assert (tmp_path / "summary" / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_reports_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no reports to summarise: grade at least one submission"):
        write_summary([], tmp_path)


def test_a_class_with_no_lost_points_says_so():
    assert "No question lost points." in render([report("alice")])
