"""Near-identical solutions: pairs of students, and students matching the answer key or hw3's own code, per
question; and questions that earn points while their stub is unchanged.

A student's solution to a question is the code that defines, at the end of the notebook, the names its check
call hands the grader (`rnn_output`, `model`): the last top-level statement binding each name, wherever it
stands, and in turn the last definitions of the notebook's names those statements use (helpers, classes),
the ones reached last from the probed names first (so moving, splitting or pasting code after the last check
cell, or wrapping it, changes little). Statements identical to the released notebook's (code given to students, an
untouched stub), imports and plain aliases (`attention = self_attention`, followed but not compared) are
left out; only questions whose released region has an `# insert code here` stub count. That is the code the
grader's probes run. A question whose stub cell is still in the notebook, unchanged, while it earns points,
is listed too: its code runs from elsewhere.

Solutions are normalised before comparison: parsed, docstrings, comments and annotations dropped, every
name the solution binds (variables, arguments, functions) renamed to v0, v1, ... in order of first
appearance, and unparsed; global names (`torch`, `len`), attribute and keyword names (the APIs used) are
kept, so that calling print or len somewhere does not shift the numbering. Two normalised solutions are
similar when difflib's ratio over their first MAX_TOKENS tokens is at least THRESHOLD. Solutions under
MIN_STATEMENTS statements (not counting `def`, `class` and imports) are skipped: short exercises have few
ways to be written, so a match there is no evidence. hw3's reference is compared the same way, each of its
functions alone and together with what its first function uses. Findings are for a person to look at;
nothing here changes a grade.

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
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..exercises.registry import KINDS
from ..intake import Submission
from ..notebook import CheckCall, cell_source, check_calls, fingerprint, parse_cell, regions
from ..results import Report

if TYPE_CHECKING:
    from ..course import Course

THRESHOLD = 0.9
MIN_STATEMENTS = 3
MAX_TOKENS = 20_000  # tokens of a solution compared (difflib's cost grows with the square of the length)
MAX_DEFINITIONS = 50  # statements a solution gathers from the probed names
REFERENCE = "the answer key or hw3's code"
STUB_UNCHANGED = "its stub unchanged"  # a finding's `b` for a question that earns points with its stub in place
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
    """What the released student notebooks contribute: every top-level statement they give (its `ast.dump`), the
    questions with stubs, the names each question's check call probes, each question's stub cells
    (fingerprints)."""

    given: frozenset[str]
    questions: frozenset[str]
    names: dict[str, tuple[str, ...]]
    stubs: dict[str, frozenset[str]]


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
    """`source` normalised (see the module docstring); None when it does not parse (`notebook.parse_cell`: IPython
    syntax allowed, at most MAX_CELL_SOURCE characters) or is nested too deeply to walk."""
    tree = parse_cell(source)
    if tree is None:
        return None
    try:
        bindings = _Bindings()
        bindings.visit(tree)
        canonical = _Canonical(bindings.names)
        text = ast.unparse(canonical.visit(tree))
    except RecursionError:
        return None
    return Normalised(text, tuple(TOKEN.findall(text))[:MAX_TOKENS], canonical.statements)


def _statements(sources: Iterable[str]) -> list[ast.stmt]:
    """The top-level statements of these code cells, in order (a cell that does not parse has none)."""
    return [stmt for source in sources if (tree := parse_cell(source)) is not None for stmt in tree.body]


def _binds(stmt: ast.stmt) -> set[str]:
    """The names a top-level statement binds: a def's or class's name, assignment and loop targets, imports,
    and what the statements inside an if, try or with at the top level bind."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in stmt.names}
    if isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
        inner = [s for field in ("body", "orelse", "finalbody") for s in getattr(stmt, field, [])]
        inner += [s for handler in getattr(stmt, "handlers", []) for s in handler.body]
        names = set().union(*map(_binds, inner)) if inner else set()
        targets = [stmt.target] if isinstance(stmt, ast.For) else [i.optional_vars for i in getattr(stmt, "items", [])]
        return names | {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _alias(stmt: ast.stmt) -> bool:
    """`name = other_name`: followed to what it names, not compared."""
    return isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
        and isinstance(stmt.value, ast.Name)


def defining_code(statements: list[ast.stmt], names: Iterable[str], given: frozenset[str] = frozenset()) -> str:
    """The code that defines `names` after `statements` ran: the last statement binding each, then the last
    definitions of the names those use (at most MAX_DEFINITIONS), the last reached first; statements in
    `given`, imports and aliases left out. Empty when none is found."""
    last: dict[str, int] = {}
    for index, stmt in enumerate(statements):
        for name in _binds(stmt):
            last[name] = index
    order: list[int] = []
    pending = list(names)
    while pending and len(order) < MAX_DEFINITIONS:
        index = last.get(pending.pop(0))
        if index is None or index in order:
            continue
        order.append(index)
        pending += [n.id for n in ast.walk(statements[index])
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    kept = [statements[i] for i in reversed(order)  # what is used before what uses it: a wrapper adds at the end
            if not _alias(statements[i]) and not isinstance(statements[i], (ast.Import, ast.ImportFrom))
            and ast.dump(statements[i]) not in given]
    return "\n\n".join(ast.unparse(stmt) for stmt in kept)


def _probed_names(arguments: str) -> tuple[str, ...]:
    """The names a check call's argument source uses (`model, tokenizer` -> ("model", "tokenizer"))."""
    tree = parse_cell(arguments)
    found = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)] if tree else []
    return tuple(dict.fromkeys(found))


def load_released(course: "Course") -> Released:
    """What the course's released student notebooks (`Course.released`) contribute (see `Released`)."""
    given: set[str] = set()
    questions: set[str] = set()
    names: dict[str, tuple[str, ...]] = {}
    stubs: dict[str, frozenset[str]] = {}
    for notebook in course.released.values():
        cells = notebook.nb.cells
        code = [cell_source(c) for c in cells if c.get("cell_type") == "code"]
        given.update(ast.dump(stmt) for stmt in _statements(code))
        calls = check_calls(cells)
        names.update({call.qid: _probed_names(call.arguments) for call in calls})
        for qid, cell_range in regions(calls).items():
            held = frozenset(fingerprint(cell_source(cells[i])) for i in cell_range
                             if cells[i].get("cell_type") == "code" and STUB_COMMENT in cell_source(cells[i]))
            if held:
                questions.add(qid)
                stubs[qid] = held
    return Released(frozenset(given), frozenset(questions), names, stubs)


def _solutions(notebooks: Iterable[tuple[list, Iterable[CheckCall]]], released: Released) -> dict[str, str]:
    """Question id -> the code that defines what its check call probes (`defining_code`), for the stub questions
    whose check call one of `notebooks` (cells, check calls) holds."""
    out = {}
    for cells, calls in notebooks:
        statements = _statements(cell_source(c) for c in cells if c.get("cell_type") == "code")
        for qid in sorted({call.qid for call in calls} & released.questions):
            code = defining_code(statements, released.names.get(qid, ()), released.given)
            if code:
                out[qid] = code
    return out


def submission_solutions(submission: Submission, released: Released) -> dict[str, str]:
    """`_solutions` of a submission's notebooks, as the intake read them."""
    return _solutions(((notebook.nb.cells, notebook.calls) for notebook in submission.notebooks), released)


def unchanged_stubs(submission: Submission, released: Released) -> set[str]:
    """The questions whose stub cell is still in one of the submission's notebooks, unchanged."""
    prints = {fingerprint(cell_source(c)) for nb in submission.notebooks for c in nb.nb.cells
              if c.get("cell_type") == "code"}
    return {qid for qid, stubs in released.stubs.items() if stubs & prints}


def review(submissions: list[Submission], reports: list[Report], course: "Course") -> list[Finding]:
    """Everything for a person to look at: near-identical solutions (`find_similar`, with the course's references),
    then the questions that earn points while their stub is unchanged (Finding(qid, student, STUB_UNCHANGED, 0.0)),
    in homework order."""
    released = load_released(course)
    ids = [q.id for q in course.homework.questions]
    findings = find_similar({sub.student: submission_solutions(sub, released) for sub in submissions},
                            reference_sources(course, released), ids)
    earned = {(r.student, q.id) for r in reports for q in r.questions if q.points > 0}
    order = {qid: n for n, qid in enumerate(ids)}
    stubs = [Finding(qid, sub.student, STUB_UNCHANGED, 0.0) for sub in submissions
             for qid in unchanged_stubs(sub, released) if (sub.student, qid) in earned]
    return findings + sorted(stubs, key=lambda f: (order.get(f.question, len(order)), f.a))


def reference_sources(course: "Course", released: Released | None = None) -> dict[str, tuple[str, ...]]:
    """Question id -> the source of hw3's own implementation(s) of the exercise (its kind's `references`: published
    with hw3, so a copy of them is worth a look too), then the answer key's solution."""
    released = released or load_released(course)
    keys = _solutions(((nb.cells, check_calls(nb.cells)) for nb in course.keys.values()), released)

    def source(spec: str) -> str:
        module, qualname = spec.split(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return inspect.getsource(obj)
    return {q.id: tuple(filter(None, (*map(source, KINDS[q.exercise_kind].references), keys.get(q.id))))
            for q in course.homework.automatic()}  # hw3's first: `_reference_solutions` joins them from the first


def _reference_solutions(sources: tuple[str, ...]) -> tuple[str, ...]:
    """A question's reference sources as solutions: each function alone, and the first one with what it uses of
    the others (`defining_code`), as a student's solution that pastes them all is read."""
    if not sources:
        return ()
    statements = _statements(textwrap.dedent(source) for source in sources)
    first = next(iter(_binds(statements[0])), None) if statements else None
    together = defining_code(statements, [first]) if first else ""
    return tuple(sources) + ((together,) if together else ())


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
    best: dict[str, float] = {}  # text -> its highest ratio with any of the references
    for reference in references:
        matcher = difflib.SequenceMatcher(None, b=reference.tokens, autojunk=False)
        for text, tok in zip(texts, tokens):
            matcher.set_seq1(tok)
            if matcher.real_quick_ratio() >= threshold and (ratio := matcher.ratio()) >= threshold:
                best[text] = max(ratio, best.get(text, 0.0))
    return findings + [Finding(qid, student, REFERENCE, ratio)
                       for text, ratio in best.items() for student in groups[text]]


def find_similar(solutions: dict[str, dict[str, str]], references: dict[str, tuple[str, ...]],
                 order: Iterable[str] = (), threshold: float = THRESHOLD,
                 min_statements: int = MIN_STATEMENTS) -> list[Finding]:
    """Near-identical solutions, question by question, in homework `order` (question ids) and most similar first.

    `solutions` maps student -> question id -> source (`submission_solutions`); `references` maps question id ->
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
        refs = tuple(n for n in map(normalise, _reference_solutions(references.get(qid, ()))) if n is not None)
        findings += sorted(_question_findings(qid, by_question[qid], refs, threshold), key=lambda f: -f.similarity)
    return findings
