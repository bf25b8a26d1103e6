"""The memory plan: where the cached BERT features go (GPU, RAM or disk), decided from measured free memory.

Features go to the model's GPU while they fit there with a reserve for the largest step still to come, else
to host RAM while they fit there with its own reserve, else to a memory-mapped file. The reserve is sized
from the batch shape (`step_bytes`: BERT's inference activations during the first pass, the GRU's training
step afterwards, whichever is larger) plus a margin, and host features already promised to other stores
but not written yet count as used, so the budget holds for the whole run, not for each store alone.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: `hw3 grade` reads the host's memory without loading it
    import torch

GIB = 1 << 30
# Headroom on top of the step estimate: allocator fragmentation and cuDNN workspaces on a GPU; on the
# host also Python objects, the tokenizer and the test phase's batches.
MARGIN = {"cuda": GIB // 2, "cpu": 3 * GIB // 2}
# float32 [B, T, H] tensors one GRU layer and direction keeps for backward and for its gradients: cuDNN's
# fused kernel keeps gates and outputs in one reserve buffer; the CPU kernel keeps each gate separately.
GRU_TENSORS = {"cuda": 6, "cpu": 12}
FEATURE_BYTES = 2  # features are stored as float16
PLACES = ("gpu", "ram", "disk")


@dataclass(frozen=True)
class StepShape:
    """The largest batch a run processes: batch size B, tokens T, BERT's width E, intermediate size, heads,
    the GRU's hidden size H, layers and directions, and the bytes per element BERT computes in."""

    batch_size: int
    tokens: int
    bert_width: int
    bert_intermediate: int
    bert_heads: int
    gru_hidden: int
    gru_layers: int
    gru_directions: int
    bert_element_bytes: int = 4


def step_bytes(shape: StepShape, device_type: str) -> int:
    """Estimated peak bytes of one step on 'cuda' or 'cpu': max(BERT forward under inference mode, GRU
    forward + backward).

    BERT (one layer alive at a time): attention scores and probabilities [B, heads, T, T], the feed-forward
    activations [B, T, intermediate] twice, the hidden states [B, T, E] three times (float32 residual).
    GRU: the float32 batch plus its float16 source [B, T, E], and per layer and direction GRU_TENSORS
    [B, T, H] float32 tensors. Calibrated against measured peaks (see the README's Benchmarks): 14.2 GB of
    GPU memory with 11 GB of features on an H100, 12.2 GB of RAM with 5.6 GB of features on a CPU.
    """
    bt = shape.batch_size * shape.tokens
    attention = 2 * shape.batch_size * shape.bert_heads * shape.tokens ** 2 * shape.bert_element_bytes
    feed_forward = 2 * bt * shape.bert_intermediate * shape.bert_element_bytes
    bert = attention + feed_forward + 3 * bt * shape.bert_width * 4
    kind = "cuda" if device_type == "cuda" else "cpu"
    per_layer = GRU_TENSORS[kind] * bt * shape.gru_hidden * 4
    gru = bt * shape.bert_width * 6 + per_layer * shape.gru_layers * shape.gru_directions
    return max(bert, gru)


def reserve_bytes(shape: StepShape, device_type: str) -> int:
    """What must stay free on the device the model runs on ('cuda' or 'cpu') beside the features."""
    kind = "cuda" if device_type == "cuda" else "cpu"
    return step_bytes(shape, kind) + MARGIN[kind]


def host_reserve_bytes(shape: StepShape, device_type: str) -> int:
    """What must stay free in host RAM beside the features: the whole step when the model runs on the CPU,
    else a float16 and a float32 copy of one batch [B, T, E] on its way to the GPU."""
    if device_type != "cuda":
        return reserve_bytes(shape, "cpu")
    return shape.batch_size * shape.tokens * shape.bert_width * 6 + MARGIN["cpu"]


@dataclass(frozen=True)
class Resources:
    """Free memory when the plan is made: on the model's GPU (0 without one) and on the host, in bytes."""

    gpu_free: int
    host_available: int


def host_available() -> int:
    """Bytes the process can still allocate: MemAvailable, capped by the memory limits of its cgroup and the
    cgroups above it (v2 or v1), less what they use but could reclaim."""
    available = _meminfo_available()
    for folder, v2 in _memory_cgroups():
        limit = _read_int(folder / ("memory.max" if v2 else "memory.limit_in_bytes"))
        used = _read_int(folder / ("memory.current" if v2 else "memory.usage_in_bytes"))
        if limit is not None and used is not None and limit < 1 << 60:  # v1 writes "no limit" as a huge number
            reclaimable = _read_stat(folder / "memory.stat", "inactive_file" if v2 else "total_inactive_file")
            available = min(available, max(limit - used + reclaimable, 0))
    return available


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def own_cgroup(controller: str, root: Path = CGROUP_ROOT) -> Path | None:
    """This process's cgroup folder for the v1 `controller` (e.g. "memory") under the mount at `root`, or its v2
    cgroup for ""; None where /proc/self/cgroup names none or the folder is not there (a container shows the
    host's path but mounts its own cgroup at the root)."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller in names.split(",")) if controller else names == "":
            folder = (root / controller if controller else root) / path.strip("/")
            return folder if folder.is_dir() else None
    return None


def _memory_cgroups() -> list[tuple[Path, bool]]:
    """(folder, is v2) of this process's memory cgroup and each one above it, up to the mount's root (which
    stands for the process's own where that is not mounted: a container's cgroup)."""
    v2 = (CGROUP_ROOT / "cgroup.controllers").is_file()
    base = CGROUP_ROOT if v2 else CGROUP_ROOT / "memory"
    folder = own_cgroup("" if v2 else "memory", CGROUP_ROOT) or base
    return [(f, v2) for f in [folder, *folder.parents] if f == base or base in f.parents]


def _read_stat(path: Path, key: str) -> int:
    """The value of `key` in a memory.stat file (0 when it is missing)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _meminfo_available() -> int:
    """MemAvailable from /proc/meminfo in bytes (sysconf's free pages where it is missing)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _read_int(path: str | Path) -> int | None:
    """The integer in a one-line file, or None ('max', missing, unreadable)."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def measure(device: torch.device) -> Resources:
    """Free memory now on `device` (when it is a GPU) and on the host, less host features promised but unwritten."""
    import torch

    gpu_free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
    return Resources(gpu_free, max(host_available() - pending_host_bytes(), 0))


@dataclass(frozen=True)
class Plan:
    """Where each store's features go ('gpu', 'ram' or 'disk'), with the numbers that decided it."""

    places: dict[str, str]
    sizes: dict[str, int]
    reserve: int
    host_reserve: int
    resources: Resources

    def describe(self) -> str:
        """One log line: each store's size and place, the free memory and what is kept free for the steps."""
        stores = ", ".join(f"{name} {_gb(self.sizes[name])} -> {place}" for name, place in self.places.items())
        gpu = (f"GPU {_gb(self.resources.gpu_free)} free, {_gb(self.reserve)} kept for the largest step; "
               if self.resources.gpu_free else "")
        return (f"features: {stores} ({gpu}RAM {_gb(self.resources.host_available)} available, "
                f"{_gb(self.host_reserve)} kept{'' if gpu else ' for the largest step'})")


def _gb(nbytes: int) -> str:
    """Bytes as '1.23 GB'."""
    return f"{nbytes / 1e9:.2f} GB"


def plan(sizes: dict[str, int], resources: Resources, shape: StepShape, device_type: str) -> Plan:
    """Place stores of `sizes` bytes, in order: GPU while they fit its free memory with the reserve
    (only when the model is on a GPU), else RAM while they fit with the host reserve, else disk."""
    gpu_reserve, host_reserve = reserve_bytes(shape, "cuda"), host_reserve_bytes(shape, device_type)
    gpu_left = resources.gpu_free - gpu_reserve if device_type == "cuda" else -1
    host_left = resources.host_available - host_reserve
    places = {}
    for name, nbytes in sizes.items():
        if nbytes <= gpu_left:
            places[name], gpu_left = "gpu", gpu_left - nbytes
        elif nbytes <= host_left:
            places[name], host_left = "ram", host_left - nbytes
        else:
            places[name] = "disk"
    return Plan(places, dict(sizes), gpu_reserve if device_type == "cuda" else host_reserve, host_reserve, resources)


# Host RAM promised to live feature stores but not written yet: `measure` counts it as used, because
# torch.empty only reserves address space and MemAvailable does not see it until the pages are touched.
_PENDING: "weakref.WeakKeyDictionary[object, int]" = weakref.WeakKeyDictionary()


def promise(store: object, nbytes: int) -> None:
    """Record that `store` will write `nbytes` more of host RAM (0 once it is full); forgotten with the store."""
    _PENDING[store] = nbytes


def pending_host_bytes() -> int:
    """Host bytes promised to live stores and not written yet."""
    return sum(_PENDING.values())
