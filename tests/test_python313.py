"""hw3 stays Python 3.13-clean (Colab runs 3.13): no module or function that 3.12 or 3.13 removed.

Every .py file of the package, the tests and the benchmarks, and every code cell of the answer keys, is parsed
and searched for imports of removed modules (PEP 594's dead batteries, distutils, imp, asynchat, asyncore,
smtpd, lib2to3, tkinter.tix) and for uses of removed functions that can be seen without running the code.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

REMOVED_MODULES = {
    # 3.12
    "distutils", "imp", "asynchat", "asyncore", "smtpd",
    # 3.13 (PEP 594)
    "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis", "nntplib",
    "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib", "lib2to3", "tkinter.tix",
}
REMOVED_FUNCTIONS = {  # module: names removed from it in 3.11-3.13
    "locale": {"format", "resetlocale"},
    "re": {"template", "TEMPLATE", "T"},
    "ssl": {"wrap_socket", "match_hostname", "RAND_pseudo_bytes"},
    "configparser": {"SafeConfigParser"},
    "unittest": {"makeSuite", "findTestCases", "getTestCaseNames"},
    "typing": {"io", "re"},
    "pkgutil": {"ImpImporter", "ImpLoader"},
    "sqlite3": {"OptimizedUnicode", "enable_shared_cache"},
    "inspect": {"getargspec", "formatargspec"},
    "asyncio": {"coroutine"},
    "binascii": {"a2b_hqx", "b2a_hqx", "rlecode_hqx", "rledecode_hqx"},
    "ctypes": {"SetPointerType"},
    "webbrowser": {"MacOSX"},
}
# Methods removed in 3.12 whose names are unique enough to flag on any object.
REMOVED_METHODS = {
    "link_to",  # pathlib.Path
    "readfp",  # configparser
    "assertEquals", "assertNotEquals", "assert_", "assertAlmostEquals", "assertNotAlmostEquals",
    "assertRegexpMatches", "assertNotRegexpMatches", "assertRaisesRegexp", "assertDictContainsSubset",
    "failUnless", "failIf", "failUnlessEqual", "failIfEqual", "failUnlessRaises", "failUnlessAlmostEqual",
    "failIfAlmostEqual",  # unittest.TestCase
}


def _removed_module(name: str) -> str | None:
    """The removed module that `name` is or lies inside, else None."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        if ".".join(parts[:depth]) in REMOVED_MODULES:
            return ".".join(parts[:depth])
    return None


def removed_uses(source: str) -> list[str]:
    """'line N: what' for every use in `source` of a module or function removed in Python 3.12/3.13."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> module it names, for the modules in REMOVED_FUNCTIONS
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if gone := _removed_module(alias.name):
                    found.append(f"line {node.lineno}: import of {gone} (removed)")
                if alias.name in REMOVED_FUNCTIONS:
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if gone := _removed_module(node.module):
                found.append(f"line {node.lineno}: import from {gone} (removed)")
            for alias in node.names:
                if gone := _removed_module(f"{node.module}.{alias.name}"):
                    found.append(f"line {node.lineno}: import of {gone} (removed)")
                if alias.name in REMOVED_FUNCTIONS.get(node.module, ()):
                    found.append(f"line {node.lineno}: {node.module}.{alias.name} (removed)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.attr in REMOVED_FUNCTIONS.get(aliases.get(node.value.id), ()):
                found.append(f"line {node.lineno}: {aliases[node.value.id]}.{node.attr} (removed)")
            elif node.attr in REMOVED_METHODS:
                found.append(f"line {node.lineno}: .{node.attr}() (removed)")
    return sorted(set(found))


def _cell_source(source: str) -> str:
    """A notebook cell's code with IPython's `%magic` and `!shell` lines blanked, so that ast can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _sources() -> list[tuple[str, str]]:
    files = [p for folder in ("hw3", "tests", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))]
    sources = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in files]
    for notebook in sorted((ROOT / "answers").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        sources += [(f"{notebook.relative_to(ROOT)} cell {i + 1}", _cell_source("".join(c["source"])))
                    for i, c in enumerate(cells) if c["cell_type"] == "code"]
    return sources


def test_every_source_file_and_answer_cell_is_python_313_clean():
    sources = _sources()
    assert any(name.startswith("hw3/") for name, _ in sources) and any(".ipynb" in name for name, _ in sources)
    problems = [f"{name}: {use}" for name, text in sources for use in removed_uses(text)]
    assert not problems, "uses of what Python 3.12/3.13 removed:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, fragment", [
    ("import imp", "import of imp"),
    ("import distutils.util", "import of distutils"),
    ("from distutils.version import LooseVersion", "import from distutils"),
    ("from lib2to3 import pytree", "import from lib2to3"),
    ("from tkinter import tix", "import of tkinter.tix"),
    ("import cgi, os", "import of cgi"),
    ("import locale as l\nl.format('%d', 1)", "locale.format"),
    ("from ssl import wrap_socket", "ssl.wrap_socket"),
    ("import unittest\nunittest.makeSuite(None)", "unittest.makeSuite"),
    ("self.assertEquals(1, 1)", ".assertEquals()"),
    ("path.link_to('x')", ".link_to()"),
])
def test_the_scan_finds_each_kind_of_removed_use(source, fragment):
    assert any(fragment in use for use in removed_uses(source))


def test_the_scan_leaves_current_code_alone():
    assert removed_uses("import re, locale, ssl\nre.compile('x')\nlocale.setlocale(locale.LC_ALL, '')\n"
                        "from importlib import util\nimport tkinter\nformat(1, 'd')\nself.assertEqual(1, 1)") == []
