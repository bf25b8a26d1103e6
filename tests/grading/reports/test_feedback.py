"""Per-student feedback files: content, Markdown safety, and the sanitizer that keeps them safe to hand out."""

from __future__ import annotations

from report_builders import report

from hw3.grading.reports.feedback import (code_block, inline, render, sanitize, write_all_feedback,
                                          write_feedback)
from hw3.grading.results import QuestionResult
from hw3.grading.results import TestResult as SubTest


def test_sanitize_shortens_paths_outside_the_submission():
    text = ('alice.ipynb (/srv/course/submissions/alice.ipynb) failed in '
            'File "/usr/lib/python3.11/site-packages/torch/nn/functional.py", reading /home/ta/keys/bob.csv')
    assert sanitize(text, {"alice.ipynb"}, environ={}) == (
        'alice.ipynb (alice.ipynb) failed in File "…/functional.py", reading <path>')


def test_sanitize_keeps_relative_paths_fractions_and_web_addresses():
    text = "use a/b or 1/2, see https://pytorch.org/docs/stable/nn.html and got '\\n'"
    assert sanitize(text, environ={}) == text


def test_sanitize_catches_home_windows_and_file_url_paths():
    text = r"~/grading/notes.txt, C:\Users\ta\grades.xlsx and file:///srv/store/db.json"
    assert sanitize(text, environ={}) == "<path>, <path> and file:<path>"


def test_paths_are_shortened_before_environment_values_are_removed():
    environ = {"COURSE_DIR": "/srv/course"}
    assert sanitize("/srv/course/submissions/alice.ipynb", {"alice.ipynb"}, environ=environ) == "alice.ipynb"


def test_sanitize_removes_environment_values_and_other_students():
    environ = {"API_TOKEN": "tok-9f8e7d6c", "DEBUG": "1"}
    text = "tok-9f8e7d6c leaked; bob and bobby compared; debug 1"
    assert sanitize(text, redact=["bob"], environ=environ) == "<env> leaked; <student> and bobby compared; debug 1"


def test_feedback_shows_failed_tests_with_expected_input_and_hint():
    failing = report("alice", {"q2": (0.5, "returned 0.5 for xs = [3, 5], expected 1")})
    text = render(failing)
    assert "**Total: 22.25 / 30** (7 points still to be graded by hand)" in text
    section = text.split("## q2:")[1].split("\n## ")[0]
    assert "**0.75 / 1.5**, partly passed" in section
    assert "- **fresh inputs** (0 / 0.75)" in section
    assert "  - **What happened:** returned 0.5 for xs = `[3, 5],` expected 1" in section
    assert "  - **Failing input:**\n    ```\n    xs = [3, 5]\n    ```\n  - **Hint:** reset h before the loop" in section
    assert "given inputs" not in section  # passed sub-tests are not listed


def test_feedback_lists_manual_questions_with_rubric_and_hand_graded_points():
    graded = report("alice")
    q1 = graded.question("q1")
    q1.points, q1.status = 2.25, "partial"
    text = render(graded)
    q1_section = text.split("## q1:")[1].split("\n## ")[0]
    assert "**2.25 / 3**, partly passed (graded by hand)" in q1_section
    assert "**Rubric:** 0.75 per valid, distinct benefit" in q1_section
    assert "**– / 1.5**, to be graded by hand" in text.split("## q2.written:")[1]


def test_feedback_never_shows_grader_paths_environment_or_other_students(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_SECRET", "hunter2-course-key")
    leaky = report("alice", {"q4.3b": (0.0, "bob's notebook at /srv/course/submissions/bob.ipynb "
                                              "used hunter2-course-key")},
                   notes=["kernel log kept in /var/tmp/hw3-run/kernel.log"])
    leaky.question("q4.3b").tests[1].input = "open('/srv/course/answers/hw3_q4.ipynb')"
    paths = write_all_feedback([leaky, report("bob")], tmp_path)
    text = paths[0].read_text(encoding="utf-8")
    for secret in ("/srv", "/var/tmp", "hunter2", "bob"):
        assert secret not in text
    assert "`<student>'s` notebook at `<path>` used `<env>`" in text
    assert "alice.ipynb" in text  # the submission's own file name stays


def test_feedback_keeps_markdown_and_html_from_student_output_literal():
    hostile = report("alice", {"q3a": (0.0, "<script>alert(1)</script> **bold** # heading [x](http://evil.example)")})
    hostile.question("q3a").tests[1].input = "s = '```'\n</code>"
    text = render(hostile)
    assert "`<script>alert(1)</script> **bold** #` heading `[x](http://evil.example)`" in text
    assert "    ````\n    s = '```'\n    </code>\n    ````" in text


def test_inline_reads_as_plain_text_and_cannot_start_a_block_or_a_link():
    assert inline("returned 0.5 for rnn_output([-6, 4]), expected 1") == "returned 0.5 for `rnn_output([-6, 4]),` expected 1"
    assert inline("the check cell of q2 (cell 5) was edited: restore it") == "the check cell of q2 (cell 5) was edited: restore it"
    assert inline("# Total: 23 of 23", first=True) == "`#` Total: 23 of 23"
    assert inline("- item", first=True) == "`-` item" and inline("1. item", first=True) == "`1.` item"
    assert inline("a `` b") == "a ``` `` ``` b" and inline("see www.evil.example") == "see `www.evil.example`"
    assert inline("bob\n# heading \x1b[2J") == "`bob\\n#` heading `\\x1b[2J`"


def test_code_block_fence_outgrows_the_content():
    assert code_block("a ```` b") == "`````\na ```` b\n`````"
    assert code_block("plain") == "```\nplain\n```"


def test_not_answered_notes_and_unsandboxed_are_reported():
    rep = report("alice", notes=["the kernel died in cell 12"], sandboxed=False)
    rep.questions[0] = QuestionResult("q1", "CNNs vs RNNs", 0.0, 3.0, "not answered", "the answer is the placeholder",
                                      rubric="0.75 per benefit")
    text = render(rep)
    assert "**0 / 3**, not answered" in text and "the answer is the placeholder" in text
    assert "## Notes\n\n- the kernel died in cell 12" in text
    assert "graded without the sandbox" in text


def test_feedback_file_names_are_safe_and_one_per_student(tmp_path):
    rep = report("../../etc/passwd")
    path = write_feedback(rep, tmp_path / "feedback")
    assert path.parent == tmp_path / "feedback" and path.name.startswith("_.._etc_passwd-") and path.suffix == ".md"
    paths = write_all_feedback([report("bob"), report("bob."), report("Bob"), report("..")], tmp_path / "all")
    assert len({p.name.casefold() for p in paths}) == 4 and all(p.parent == tmp_path / "all" for p in paths)
    assert "Homework 3 feedback: bob\n" in paths[0].read_text(encoding="utf-8")
    assert write_all_feedback([report("carol")], tmp_path / "one")[0].name == "carol.md"


def test_a_question_still_to_be_graded_by_hand_says_so_once():
    text = render(report("alice"))
    section = text.split("## q1:")[1].split("\n## ")[0]
    assert section.count("graded by hand") == 1


def test_passed_sub_tests_and_messages_of_full_marks_do_not_appear():
    rep = report("alice")
    rep.question("q2").tests = [SubTest("all inputs", 1.5, 1.5)]
    assert "Failed tests" not in render(rep)


