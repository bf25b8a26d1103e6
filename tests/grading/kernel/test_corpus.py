"""The corpus features a batch shares: computed in a process of their own once, then found by their stamp."""

from __future__ import annotations

import subprocess

import pytest

from hw3.grading.kernel import corpus


def _bundled() -> bool:
    try:
        from hw3.sentiment.encoders import bundled_path

        return bundled_path().is_dir()
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _bundled(), reason="the bundled encoder is not installed")


def test_a_second_batch_finds_the_features_without_starting_torch(tmp_path, monkeypatch):
    folder = tmp_path / "features"
    corpus.prefill_apart(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != corpus.STAMP)
    assert files and (folder / corpus.STAMP).is_file()

    started = []
    real_run = subprocess.run
    monkeypatch.setattr(corpus.subprocess, "run", lambda *a, **k: started.append(a) or real_run(*a, **k))
    assert corpus.prefill_apart(folder) == folder and started == []

    files[0].unlink()  # a feature went missing: computed again
    corpus.prefill_apart(folder)
    assert len(started) == 1 and files[0].is_file()

    monkeypatch.setattr(corpus, "_inputs_digest", lambda: "another encoder or corpus")
    corpus.prefill_apart(folder)
    assert len(started) == 2
    assert corpus.prefill_apart(folder) == folder and len(started) == 2
