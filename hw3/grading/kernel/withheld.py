"""The builds of hw3 that `hw3 grade` runs notebooks with: the package as the sandbox sees it.

`build(folder, withheld)` copies the installed hw3 package and replaces the body of every function in
`withheld` (the references of the homework's exercise kinds, e.g. `hw3.rnn:closed_form`) by a `raise` that says
it is withheld: in the *grading build*, which runs the students' notebooks, a submission that imports or calls
hw3's solution of an exercise earns nothing for it, the code is not in the sandbox. The *answer key's build*
withholds nothing (the key is the instructor's code and may use every helper). Helpers the notebooks hand out
(tokens, tiny models, BucketIterator, ...) stay in both.

In both, the embedded sample is the grading corpus (`corpus`: a few short reviews, since no check depends on how
well a notebook's model learns), and a marker module `hw3/_grading_build.py` tells `check()` cells to defer to
the grader. A build is byte-compiled and world-readable, and made afresh by each grading process in a private
folder of its own (mode 0700: nobody else can plant or change it; the sandbox reaches it only through its bind
mount).
"""

from __future__ import annotations

import ast
import compileall
import shutil
from pathlib import Path

import hw3

from ..notebook import parse_python
from .corpus import write_corpus

PACKAGE_DIR = Path(hw3.__file__).resolve().parent
MARKER = "_grading_build.py"


class _Withhold(ast.NodeTransformer):
    """Replace the bodies of the named functions (top-level or methods) with a `raise`."""

    def __init__(self, module: str, names: set[str]) -> None:
        self.module, self.names, self.scope, self.done = module, names, [], set()

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        qualname = ".".join([*self.scope, node.name])
        if qualname in self.names:
            message = (f"{self.module}.{qualname} is the course's reference solution: it is withheld while grading; "
                       f"write the exercise yourself")
            docstring = node.body[:1] if ast.get_docstring(node) else []
            node.body = [*docstring, ast.Raise(ast.Call(ast.Name("NotImplementedError", ast.Load()),
                                                        [ast.Constant(message)], []), None)]
            self.done.add(qualname)
        return node


def strip_module(source: str, module: str, names: set[str]) -> str:
    """The module's source with `names` withheld; ValueError naming a reference that is not defined there."""
    tree = parse_python(source)
    transformer = _Withhold(module, names)
    tree = ast.fix_missing_locations(transformer.visit(tree))
    missing = names - transformer.done
    if missing:
        raise ValueError(f"{module} defines no {sorted(missing)[0]}: fix the exercise's references")
    return ast.unparse(tree) + "\n"


def build(folder: Path, withheld: dict[str, set[str]]) -> Path:
    """Write a build of hw3 under `folder` (folder/hw3) with the `withheld` functions ({module: qualified names};
    empty for the answer key's build) and return `folder`."""
    root = Path(folder)
    shutil.copytree(PACKAGE_DIR, root / "hw3", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module, names in withheld.items():
        path = root / Path(*module.split(".")).with_suffix(".py")
        path.write_text(strip_module(path.read_text(encoding="utf-8"), module, names), encoding="utf-8")
    write_corpus(root / "hw3")
    (root / "hw3" / MARKER).write_text('"""Marks a build of hw3 that hw3 grade runs notebooks with (see hw3.grading.kernel.withheld)."""\n')
    compileall.compile_dir(str(root / "hw3"), quiet=1, workers=1)
    for path in (root / "hw3").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (root / "hw3").chmod(0o755)
    return root
