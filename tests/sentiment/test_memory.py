"""The memory plan: where the BERT features go on simulated machines (free Colab T4, Colab Pro, CPU runtimes)."""

from __future__ import annotations

import pytest
import torch

from hw3.sentiment import memory
from hw3.sentiment.features import FeatureStore
from hw3.sentiment.memory import Resources, StepShape, plan
from hw3.sentiment.model import Features

GB = 10**9
BERT_BASE = StepShape(128, 512, 768, 3072, 12, 256, 2, 2, bert_element_bytes=2)
BUNDLED = StepShape(128, 512, 384, 1536, 12, 256, 2, 2, bert_element_bytes=2)
IMDB_BERT_BASE = {"train": int(7.8 * GB), "valid": int(3.34 * GB)}  # 11 GB of float16 features
IMDB_BUNDLED = {"train": int(3.9 * GB), "valid": int(1.67 * GB)}
SAMPLE_BUNDLED = {"train": int(0.04 * GB), "valid": int(0.02 * GB)}


def test_full_imdb_at_bert_base_width_stays_on_a_free_colab_t4():
    p = plan(IMDB_BERT_BASE, Resources(int(15.2 * GB), int(10.5 * GB)), BERT_BASE, "cuda")
    assert p.places == {"train": "gpu", "valid": "gpu"}
    assert sum(IMDB_BERT_BASE.values()) + p.reserve <= 15.2 * GB
    assert p.reserve < 4 << 30  # the old fixed reserve sent the validation features to the host here


def test_a_gpu_with_less_free_memory_keeps_what_fits_and_puts_the_rest_in_ram():
    p = plan(IMDB_BERT_BASE, Resources(int(12 * GB), int(10.5 * GB)), BERT_BASE, "cuda")
    assert p.places == {"train": "gpu", "valid": "ram"}


def test_colab_pro_keeps_everything_on_its_gpu():
    assert plan(IMDB_BERT_BASE, Resources(int(41.5 * GB), 78 * GB), BERT_BASE, "cuda").places == {"train": "gpu", "valid": "gpu"}


def test_on_a_free_colab_cpu_runtime_the_budget_holds_for_the_whole_run():
    """Full IMDB with the bundled encoder: 5.6 GB of features do not fit beside the GRU's step in 10.5 GB."""
    p = plan(IMDB_BUNDLED, Resources(0, int(10.5 * GB)), BUNDLED, "cpu")
    assert p.places == {"train": "ram", "valid": "disk"}
    in_ram = sum(IMDB_BUNDLED[k] for k, place in p.places.items() if place == "ram")
    assert in_ram + p.reserve <= 10.5 * GB


@pytest.mark.parametrize("sizes, places", [(IMDB_BUNDLED, {"train": "disk", "valid": "disk"}),
                                           (SAMPLE_BUNDLED, {"train": "ram", "valid": "ram"})])
def test_a_laptop_with_8_gb_spills_full_imdb_and_keeps_the_sample_in_ram(sizes, places):
    assert plan(sizes, Resources(0, int(5.5 * GB)), BUNDLED, "cpu").places == places


def test_a_cpu_run_never_uses_the_gpu_and_the_line_says_where_and_why():
    p = plan(SAMPLE_BUNDLED, Resources(int(40 * GB), int(10.5 * GB)), BUNDLED, "cpu")
    assert set(p.places.values()) == {"ram"}
    line = p.describe()
    assert line.startswith("features: train 0.04 GB -> ram, valid 0.02 GB -> ram (")
    assert "RAM 10.50 GB available" in line and "kept for the largest step" in line


def test_the_reserve_grows_with_the_batch_and_the_gru_needs_less_under_cudnn():
    small = StepShape(32, 128, 768, 3072, 12, 256, 2, 2)
    assert memory.step_bytes(small, "cpu") < memory.step_bytes(BERT_BASE, "cpu")
    gru_only = StepShape(128, 512, 32, 64, 1, 256, 2, 2)  # a tiny BERT: the GRU step dominates
    assert memory.step_bytes(gru_only, "cuda") < memory.step_bytes(gru_only, "cpu")


def test_ram_promised_to_an_unfilled_store_counts_as_used(monkeypatch):
    monkeypatch.setattr(memory, "host_available", lambda: 10 * GB)
    before = memory.measure(torch.device("cpu")).host_available
    store = FeatureStore([100, 50], 8, "ram")
    assert memory.measure(torch.device("cpu")).host_available == before - 150 * 8 * 2
    store.put([0, 1], Features(torch.ones(2, 100, 8), torch.tensor([100, 50])))
    assert memory.measure(torch.device("cpu")).host_available == before
    disk = FeatureStore([100], 8, "disk")
    assert memory.measure(torch.device("cpu")).host_available == before
    del store, disk


def test_host_available_is_a_positive_byte_count():
    assert 0 < memory.host_available() < 1 << 50
