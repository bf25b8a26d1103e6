"""Near-identical solutions: pairs of students, and students matching the answer key or hw3's own code, per question.

A student's solution to a question is the code they wrote in its region of their notebook (the cells from
after the previous check cell to the question's check cell, `notebook.regions`), leaving out the check cells
and every cell identical to one of the released notebook's; only questions whose released region has an
`# insert code here` stub count. Inserted, split or moved cells therefore do not matter.

Solutions are normalised before comparison: parsed, docstrings, comments and annotations dropped, every
name the solution binds (variables, arguments, functions) renamed to v0, v1, ... in order of first
appearance, and unparsed; global names (`torch`, `len`), attribute and keyword names (the APIs used) are
kept, so that calling print or len somewhere does not shift the numbering. Two normalised solutions are
similar when difflib's ratio over their tokens is at least THRESHOLD. Solutions under MIN_STATEMENTS statements (not counting
`def`, `class` and imports) are skipped: short exercises have few ways to be written, so a match there is
no evidence. Findings are for a person to look at; nothing here changes a grade.

Comparison stays within one question. Identical normalised solutions are grouped by their text first;
between distinct ones, a vectorised upper bound of the ratio (difflib's quick_ratio: the shared token
multiset) discards most pairs before difflib runs, so 400 students take seconds.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..exercises.registry import KINDS
from ..notebook import (NotebookError, cell_check_calls, cell_source, check_calls, fingerprint, notebook_paths,
                        parse_cell, read_notebook, regions)
from ..results import Report

if TYPE_CHECKING:
    from ..course import Course

THRESHOLD = 0.9
MIN_STATEMENTS = 3
REFERENCE = "the answer key or hw3's code"
STUB_COMMENT = "# insert code here"
TOKEN = re.compile(r"\w+|[^\w\s]")
SCAFFOLDING = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


class Finding(NamedTuple):
    """Two near-identical solutions to `question`: students `a` and `b` (b may be REFERENCE)."""

    question: str
    a: str
    b: str
    similarity: float


class Normalised(NamedTuple):
    """A solution after normalisation: its text, tokens and statement count (scaffolding excluded)."""

    text: str
    tokens: tuple[str, ...]
    statements: int


class Released(NamedTuple):
    """What the released student notebooks contribute: every code cell's fingerprint, the questions with stubs."""

    fingerprints: frozenset[str]
    questions: frozenset[str]


class _Bindings(ast.NodeVisitor):
    """The names a solution binds (arguments, assignment and loop targets, functions, classes), in source order."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def bind(self, name: str) -> None:
        self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            self.bind(node.id)

    def visit_arg(self, node: ast.arg) -> None:
        self.bind(node.arg)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.bind(node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef


class _Canonical(ast.NodeTransformer):
    """Renames the bound names to their placeholders (globals such as `torch`, `len` or `print` stay, so using
    one does not shift the numbering); drops docstrings and annotations; counts the statements kept."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.statements = 0  # scaffolding (def, class, imports) excluded

    def visit(self, node: ast.AST) -> ast.AST | None:
        kept = super().visit(node)
        self.statements += isinstance(kept, ast.stmt) and not isinstance(kept, SCAFFOLDING)
        return kept

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.names.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg, node.annotation = self.names[node.arg], None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.name, node.returns = self.names[node.name], None
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self.names[node.name]
        return self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        """A bare string (a docstring) is dropped."""
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return self.generic_visit(node)


def normalise(source: str) -> Normalised | None:
    """`source` normalised (see the module docstring); None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # IPython magics (`%time ...`) need IPython's transform first
        tree = parse_cell(source)
    if tree is None:
        return None
    bindings = _Bindings()
    bindings.visit(tree)
    canonical = _Canonical(bindings.names)
    text = ast.unparse(canonical.visit(tree))
    return Normalised(text, tuple(TOKEN.findall(text)), canonical.statements)


def _stub_questions(cells: list) -> set[str]:
    """The questions whose region in a released notebook holds an `# insert code here` stub."""
    return {qid for qid, cell_range in regions(check_calls(cells)).items()
            if any(cells[i].get("cell_type") == "code" and STUB_COMMENT in cell_source(cells[i]) for i in cell_range)}


def load_released(course: "Course") -> Released:
    """The fingerprints and stub questions of the course's released student notebooks."""
    import nbformat

    from ..assign import generate

    prints: set[str] = set()
    questions: set[str] = set()
    for text in generate(course.answers, course.homework, course.digest).values():
        cells = nbformat.reads(text, as_version=4).cells
        prints.update(fingerprint(cell_source(c)) for c in cells if c.get("cell_type") == "code")
        questions |= _stub_questions(cells)
    return Released(frozenset(prints), frozenset(questions))


def notebook_solutions(path: Path, released: Released) -> dict[str, str]:
    """Question id -> the code the student wrote for it in the notebook at `path` (nothing if unreadable)."""
    try:
        cells = read_notebook(path).cells
    except NotebookError:
        return {}
    out = {}
    for qid, cell_range in regions(check_calls(cells)).items():
        sources = [cell_source(cells[i]) for i in cell_range if cells[i].get("cell_type") == "code"]
        written = [s for i, s in zip(cell_range, sources) if not cell_check_calls(s, i)
                   and fingerprint(s) not in released.fingerprints]
        if qid in released.questions and written:
            out[qid] = "\n".join(written)
    return out


def submission_solutions(submission: Path, released: Released) -> dict[str, str]:
    """Question id -> solution for one submission: a notebook, or a folder of one student's notebooks."""
    paths = notebook_paths(submission) if submission.is_dir() else [submission]
    return {qid: code for path in paths for qid, code in notebook_solutions(path, released).items()}


def solutions_of(reports: list[Report], course: "Course") -> dict[str, dict[str, str]]:
    """Student -> question id -> solution, for the graded submissions of `reports`."""
    released = load_released(course)
    return {r.student: submission_solutions(Path(r.submission), released) for r in reports}


def reference_sources(course: "Course") -> dict[str, tuple[str, ...]]:
    """Question id -> the answer key's solution and the source of hw3's own implementation(s) of the exercise
    (its kind's `references`: published with hw3, so a copy of them is worth a look too)."""
    released = load_released(course)
    keys = submission_solutions(course.answers, released)

    def source(spec: str) -> str:
        module, qualname = spec.split(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return inspect.getsource(obj)
    return {q.id: tuple(filter(None, (keys.get(q.id), *map(source, KINDS[q.exercise_kind].references))))
            for q in course.homework.automatic()}


def _ratio_bounds(tokens: list[tuple[str, ...]]) -> np.ndarray:
    """For every pair (i < j), an upper bound of difflib's ratio (the shared token multiset); -1 on and below
    the diagonal."""
    vocabulary: dict[str, int] = {}
    ids = [[vocabulary.setdefault(t, len(vocabulary)) for t in seq] for seq in tokens]
    counts = np.zeros((len(tokens), len(vocabulary)), dtype=np.int32)
    for row, seq in enumerate(ids):
        np.add.at(counts[row], seq, 1)
    lengths = counts.sum(axis=1)
    bounds = np.full((len(tokens), len(tokens)), -1.0)
    for i in range(len(tokens) - 1):
        shared = np.minimum(counts[i], counts[i + 1:]).sum(axis=1)
        bounds[i, i + 1:] = 2 * shared / np.maximum(lengths[i] + lengths[i + 1:], 1)
    return bounds


class _Subsequences:
    """Longest common subsequence lengths against one token sequence `b`, bit-parallel (Crochemore et al.,
    2001): O(len(a)) big-integer operations per comparison instead of difflib's O(len(a) * len(b)) steps."""

    def __init__(self, b: tuple[str, ...]) -> None:
        self.length, self.full, self.masks = len(b), (1 << len(b)) - 1, {}
        for position, token in enumerate(b):
            self.masks[token] = self.masks.get(token, 0) | (1 << position)

    def lcs(self, a: tuple[str, ...]) -> int:
        v = self.full
        for token in a:
            u = v & self.masks.get(token, 0)
            v = ((v + u) | (v - u)) & self.full
        return self.length - v.bit_count()


def _similar_pairs(tokens: list[tuple[str, ...]], threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, ratio) for the distinct solutions whose difflib ratio reaches `threshold`.

    Two exact upper bounds of the ratio discard pairs before difflib runs: the shared token multiset (for
    all pairs at once) and then the longest common subsequence (difflib's matches are one).
    """
    bounds = _ratio_bounds(tokens)
    found = []
    matcher = difflib.SequenceMatcher(autojunk=False)
    for i in range(len(tokens)):
        matcher.set_seq2(tokens[i])  # difflib caches what it learns about seq2
        subsequences = _Subsequences(tokens[i])
        for j in np.nonzero(bounds[i] >= threshold)[0]:
            if 2 * subsequences.lcs(tokens[j]) < threshold * (len(tokens[i]) + len(tokens[j])):
                continue
            matcher.set_seq1(tokens[j])
            if (ratio := matcher.ratio()) >= threshold:
                found.append((i, int(j), ratio))
    return found


def _question_findings(qid: str, solutions: dict[str, Normalised], references: tuple[Normalised, ...],
                       threshold: float) -> list[Finding]:
    """The findings of one question: identical groups, near-identical pairs, matches of the reference."""
    groups: dict[str, list[str]] = defaultdict(list)
    for student, solution in sorted(solutions.items()):
        groups[solution.text].append(student)
    texts = list(groups)
    tokens = [solutions[groups[t][0]].tokens for t in texts]
    findings = [Finding(qid, a, b, 1.0) for members in groups.values()
                for k, a in enumerate(members) for b in members[k + 1:]]
    findings += [Finding(qid, a, b, ratio) for i, j, ratio in _similar_pairs(tokens, threshold)
                 for a in groups[texts[i]] for b in groups[texts[j]]]
    for reference in references:
        matcher = difflib.SequenceMatcher(None, b=reference.tokens, autojunk=False)
        for text, tok in zip(texts, tokens):
            matcher.set_seq1(tok)
            if matcher.real_quick_ratio() >= threshold and (ratio := matcher.ratio()) >= threshold:
                findings += [Finding(qid, student, REFERENCE, ratio) for student in groups[text]]
    return findings


def find_similar(solutions: dict[str, dict[str, str]], references: dict[str, tuple[str, ...]],
                 order: list[str] = (), threshold: float = THRESHOLD,
                 min_statements: int = MIN_STATEMENTS) -> list[Finding]:
    """Near-identical solutions, question by question, in homework `order` and most similar first.

    `solutions` maps student -> question id -> source (see `solutions_of`); `references` maps question id ->
    reference sources (`reference_sources(course)`; {} to skip them).
    """
    order = {qid: n for n, qid in enumerate(order)}
    by_question: dict[str, dict[str, Normalised]] = defaultdict(dict)
    for student, answers in solutions.items():
        for qid, source in answers.items():
            normalised = normalise(source)
            if normalised is not None and normalised.statements >= min_statements:
                by_question[qid][student] = normalised
    findings = []
    for qid in sorted(by_question, key=lambda q: (order.get(q, len(order)), q)):
        refs = tuple(n for n in map(normalise, references.get(qid, ())) if n is not None)
        findings += sorted(_question_findings(qid, by_question[qid], refs, threshold), key=lambda f: -f.similarity)
    return findings
