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


def fake_cgroups(tmp_path, monkeypatch, own: str, files: dict[str, dict[str, str]], v2: bool) -> None:
    """A cgroup mount at tmp_path (v2, or v1's memory controller) holding `files` ({folder: {name: text}}), and
    this process in the cgroup `own`."""
    root = tmp_path / "cgroup"
    base = root if v2 else root / "memory"
    base.mkdir(parents=True)
    if v2:
        (root / "cgroup.controllers").write_text("cpu memory pids\n")
    for folder, contents in files.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        for name, text in contents.items():
            (base / folder / name).write_text(text)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n" if v2 else f"5:pids:/\n4:memory:{own}\n0::/\n")
    monkeypatch.setattr(memory, "CGROUP_ROOT", root)
    monkeypatch.setattr(memory, "PROC_CGROUP", proc)
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 64 * 2**30)


MIB = 2**20


@pytest.mark.parametrize("v2", [True, False])
def test_host_available_is_capped_by_the_limit_of_the_cgroup_above_this_one(tmp_path, monkeypatch, v2):
    """A container's limit (768 MiB) on an ancestor of the process's own cgroup caps what is available, less
    what the cgroup uses but for its inactive file pages (reclaimable cache)."""
    names = (("memory.max", "memory.current", "inactive_file") if v2 else
             ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
    no_limit = "max" if v2 else str(2**63 - 4096)
    fake_cgroups(tmp_path, monkeypatch, "/gradescope/job", {
        "gradescope": {names[0]: f"{768 * MIB}\n", names[1]: f"{300 * MIB}\n",
                       "memory.stat": f"anon 1\n{names[2]} {100 * MIB}\n"},
        "gradescope/job": {names[0]: f"{no_limit}\n", names[1]: f"{300 * MIB}\n"}}, v2)
    assert memory.host_available() == (768 - 300 + 100) * MIB


def test_host_available_reads_the_mount_root_where_the_own_path_is_not_mounted(tmp_path, monkeypatch):
    """Docker with cgroup v1 shows the host's path (/docker/ID) but mounts the container's cgroup at the root."""
    fake_cgroups(tmp_path, monkeypatch, "/docker/0123abcd", {
        ".": {"memory.limit_in_bytes": f"{768 * MIB}\n", "memory.usage_in_bytes": f"{8 * MIB}\n"}}, False)
    assert memory.host_available() == 760 * MIB


def test_reading_the_host_memory_does_not_import_torch():
    """`hw3 grade` checks the memory before grading without loading torch (which would cost ~200 MB)."""
    import subprocess
    import sys

    code = "import sys; from hw3.sentiment import memory; memory.host_available(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
