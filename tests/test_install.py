"""Installing hw3: what the package depends on (the notebooks' needs only; the grader's in the `grade` extra),
that the student side imports nothing of the grader's, the build's metadata, the Makefile's bubblewrap step,
the helpers of CI's Colab-stack check (.ci/colab_stack) and the autograder's pinned setup.sh.

The Colab-stack check itself (a venv with Colab's versions, `pip install` of the wheel, both answer keys run)
takes minutes and runs in CI after `make test`, from .ci/run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COLAB_FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.gpu.txt"
NOTEBOOK_NEEDS = {"torch", "transformers", "tokenizers", "safetensors", "numpy", "matplotlib", "tqdm"}


def _requirements(key: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in (project["dependencies"] if key is None else project["optional-dependencies"][key])]


def _grader_modules() -> set[str]:
    """The top-level modules of the `grade` extra's distributions (and of nothing the notebooks need)."""
    owners = importlib.metadata.packages_distributions()
    grade = {_canonical(r.name) for r in _requirements("grade")}
    return {module for module, dists in owners.items() if {_canonical(d) for d in dists} & grade
            and not module.startswith("_")}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- dependencies ---------------------------------------------------------------------------------------------

def test_the_package_depends_on_what_the_notebooks_need_and_no_more():
    assert {r.name for r in _requirements()} == NOTEBOOK_NEEDS
    assert all(r.specifier.contains("99.0") for r in _requirements()), "no upper bounds: Colab's versions move"
    torch = next(r for r in _requirements() if r.name == "torch")
    assert not any(spec.operator == "==" for spec in torch.specifier)  # Colab keeps its CUDA torch


def test_the_grader_s_dependencies_are_an_extra_without_widgets():
    """Neither the package nor its grader needs widgets (only the test venv has them, as Colab does)."""
    grade = {_canonical(r.name) for r in _requirements("grade")}
    assert {"nbformat", "nbclient", "ipykernel", "jupyter-client", "pyzmq", "ipython"} <= grade
    assert "ipywidgets" not in [r.name for r in _requirements("grade")] + [r.name for r in _requirements()]


@pytest.mark.skipif(not COLAB_FREEZE.is_file(), reason="Colab's pip freeze (../shared/colab) is not here")
def test_every_lower_bound_admits_colab_s_versions():
    pins = {}
    for line in COLAB_FREEZE.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[_canonical(name)] = version.split("+")[0]
    for requirement in _requirements() + _requirements("grade"):
        if requirement.marker and not requirement.marker.evaluate({"python_version": "3.13"}):
            continue  # not installed on Colab's Python
        version = pins[_canonical(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} refuses Colab's {version}"


def test_cli_names_every_module_of_the_grade_extra():
    from hw3.cli import GRADER_MODULES

    expected = {module for module in _grader_modules() if not module.endswith("_launcher")}
    assert expected and expected <= GRADER_MODULES


# --- what the student side imports ----------------------------------------------------------------------------

BLOCKER = """\
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, Blocker())
sys.argv = sys.argv[1:]
"""


def _without_grader(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python where every module of the `grade` extra fails to import."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code), ",".join(sorted(_grader_modules())),
                           *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_the_blocker_really_blocks_the_grader():
    done = _without_grader("import nbformat")
    assert done.returncode == 1 and "blocked" in done.stderr


def test_student_modules_import_without_the_grader_s_dependencies():
    """What the notebooks import (`from hw3.grading import check`, and every module outside hw3.grading) and
    the CLI's parser load where only the student dependencies are installed, as in Colab without the extra."""
    done = _without_grader("""
        import pkgutil, importlib, hw3
        from hw3.grading import check
        student = [m.name for m in pkgutil.walk_packages(hw3.__path__, "hw3.")
                   if not m.name.startswith(("hw3.grading", "hw3.__main__"))]
        for name in student:
            importlib.import_module(name)
        from hw3.cli import build_parser
        build_parser().parse_args(["train", "--epochs", "1"])
        print(len(student), "modules")
    """)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) > 20


@pytest.mark.parametrize("command", [["grade", "x.ipynb"], ["assign", "--check"]])
def test_a_grading_command_without_the_grade_extra_is_one_line_naming_the_install(command, tmp_path):
    done = _without_grader("""
        import sys
        from hw3.cli import main
        sys.exit(main(sys.argv[1:]))
    """, *command)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"hw3 {command[0]}: error: ") and "pip install 'hw3[grade]'" in lines[0]
    assert "Traceback" not in done.stderr


# --- building -------------------------------------------------------------------------------------------------

@pytest.mark.skipif(int(importlib.metadata.version("setuptools").split(".")[0]) < 77, reason="needs setuptools>=77")
def test_the_build_writes_spdx_license_metadata_without_warnings(tmp_path):
    """setuptools deprecated the `license = {text = ...}` table: the build (three times per `make`) must not warn."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "hw3").mkdir()
    (tmp_path / "hw3" / "__init__.py").write_text("")
    build = "from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel('.'))"
    done = subprocess.run([sys.executable, "-W", "always", "-c", build], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "license" not in done.stderr.lower() and "deprecat" not in done.stderr.lower(), done.stderr
    metadata = (tmp_path / done.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata
    assert "Requires-Dist: nbformat" in metadata and 'extra == "grade"' in metadata


# --- the Makefile's bubblewrap step ----------------------------------------------------------------------------

def _fake_bin(folder: Path, uid: int, apt_exit: int) -> Path:
    """A PATH folder without bubblewrap: `id -u` prints `uid`, `apt-get` logs its call and exits `apt_exit`."""
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {folder}/apt.log\nexit {apt_exit}\n")
    for tool in ("id", "apt-get"):
        (folder / tool).chmod(0o755)
    return folder


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("uid, apt_exit", [(0, 100), (1000, 0)])
def test_a_failed_bubblewrap_install_is_retried_by_the_next_make(tmp_path, uid, apt_exit):
    fake = _fake_bin(tmp_path / "bin", uid, apt_exit)
    make = [shutil.which("make"), "-s", "-C", str(ROOT), "sandbox", f"VENV={tmp_path / 'venv'}"]
    for attempt in (1, 2):
        done = subprocess.run(make, env={"PATH": str(fake)}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "needs bubblewrap" in done.stdout
        tried = (fake / "apt.log").read_text().count("update") if (fake / "apt.log").exists() else 0
        assert tried == (attempt if uid == 0 else 0)  # as root: tried again on every run; else: only advised
    assert not (tmp_path / "venv").exists()  # the sandbox step neither makes nor stamps the venv


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_an_installed_venv_still_checks_bubblewrap(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()
    os.utime(venv / ".installed", (2**31, 2**31))  # newer than pyproject.toml: the venv is up to date
    done = subprocess.run([shutil.which("make"), "-n", "-C", str(ROOT), "install", f"VENV={venv}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "bwrap" in done.stdout and "pip install" not in done.stdout


# --- .ci/colab_stack's helpers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def colab_stack():
    loader = importlib.machinery.SourceFileLoader("colab_stack", str(ROOT / ".ci" / "colab_stack"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("colab_stack", loader))
    loader.exec_module(module)
    return module


def test_colab_freeze_parsing_skips_urls_and_comments(colab_stack):
    text = "# header\nJupyter_Client==7.4.9\ngoogle-colab @ file:///colabtools/x.tar.gz\ntorch==2.11.0+cu128\n"
    assert colab_stack.parse_freeze(text) == {"jupyter-client": "7.4.9", "torch": "2.11.0+cu128"}


def test_colab_stack_names_each_package_pip_would_change(colab_stack):
    planned = (("hw3", "0.1.0"), ("ipykernel", "7.4.0"), ("widgetsnbextension", "4.0.16"), ("comm", "0.2.3"))
    report = {"install": [{"metadata": {"name": n, "version": v}} for n, v in planned]}
    colab = {"ipykernel": "6.17.1", "widgetsnbextension": "3.6.10"}
    assert colab_stack.planned_changes(report, colab, {"hw3"}) == [
        "ipykernel 7.4.0 (Colab has 6.17.1)", "widgetsnbextension 4.0.16 (Colab has 3.6.10)",
        "comm 0.2.3 (not in Colab)"]
    assert colab_stack.planned_changes({"install": report["install"][:1]}, colab, {"hw3"}) == []


def test_colab_stack_compares_freezes(colab_stack):
    before = {"ipykernel": "6.17.1", "numpy": "2.1.3"}
    after = {"ipykernel": "7.4.0", "numpy": "2.1.3", "hw3": "@", "comm": "0.2.3"}
    assert colab_stack.freeze_changes(before, after, {"hw3"}) == ["comm: absent -> 0.2.3", "ipykernel: 6.17.1 -> 7.4.0"]
    with pytest.raises(colab_stack.StackError, match="numpy 2.4.6 \\(Colab has 2.1.3\\)"):
        colab_stack.check_versions({"numpy": "2.4.6", "torch": "2.13.0"}, {"numpy": "2.1.3", "torch": "2.11.0"})


# --- the autograder's setup.sh ----------------------------------------------------------------------------------

def test_setup_sh_pins_the_hugging_face_packages_at_the_installed_versions():
    from hw3.grading.autograder import setup_script

    script = setup_script("hw3-0.1.0-py3-none-any.whl")
    install = next(line for line in script.splitlines() if "hw3-0.1.0-py3-none-any.whl" in line)
    assert '"$SOURCE/hw3-0.1.0-py3-none-any.whl[grade]"' in install
    for name in ("transformers", "tokenizers", "huggingface-hub"):
        assert f"{name}=={importlib.metadata.version(name)}" in install.split()
    assert "torch==2.13.0" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_setup_sh_refuses_to_pin_a_package_that_is_not_installed(monkeypatch):
    from hw3.grading import autograder

    monkeypatch.setattr(autograder, "PINNED", ("transformers", "no-such-package-hw3"))
    with pytest.raises(autograder.AutograderError, match="no-such-package-hw3 is not installed"):
        autograder.setup_script("hw3-0.1.0-py3-none-any.whl")
