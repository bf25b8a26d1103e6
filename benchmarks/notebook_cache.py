"""The persistent feature cache's effect on the Q4 answer key: run the notebook twice, time its training cell.

    python benchmarks/notebook_cache.py [NOTEBOOK]      # default: answers/hw3_q4.ipynb

Both runs execute in a fresh kernel in a temporary folder with the same new HW3_FEATURE_CACHE folder: the
first fills it, the second (as after a Colab disconnect or a kernel restart) reads it. Prints, per run, the
seconds of the cell that calls `cache_features` and trains, and of the whole notebook.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def training_cell(nb) -> int:
    """Index of the code cell that builds the cached batches and trains."""
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "cache_features(" in c.source)


def run_once(path: Path, workdir: Path) -> tuple[float, float]:
    """Execute the notebook in `workdir`; (training cell seconds, whole notebook seconds)."""
    nb = nbformat.read(path, as_version=4)
    index = training_cell(nb)
    times: dict[int, float] = {}

    def started(cell, cell_index, **_):
        times[cell_index] = time.perf_counter()

    def finished(cell, cell_index, **_):
        times[cell_index] = time.perf_counter() - times[cell_index]

    client = NotebookClient(nb, timeout=3600, resources={"metadata": {"path": str(workdir)}},
                            on_cell_execute=started, on_cell_executed=finished)
    start = time.perf_counter()
    client.execute()
    return times[index], time.perf_counter() - start


def main() -> None:
    notebook = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "answers" / "hw3_q4.ipynb"
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    with tempfile.TemporaryDirectory(prefix="hw3-notebook-cache-") as tmp:
        os.environ["HW3_FEATURE_CACHE"] = str(Path(tmp) / "features")
        for run in ("first run (empty cache)", "second run (cache filled)"):
            workdir = Path(tempfile.mkdtemp(dir=tmp))
            cell, total = run_once(notebook, workdir)
            print(f"{run}: training cell {cell:.1f} s, whole notebook {total:.1f} s", flush=True)
        entries = list((Path(tmp) / "features").rglob("*.f16"))
        print(f"cache: {len(entries)} entries, {sum(p.stat().st_size for p in entries) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
