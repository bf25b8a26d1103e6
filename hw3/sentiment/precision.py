"""The precision policy: which dtype BERT and the GRU compute in, why, and flush-to-zero while training.

BERT runs under autocast; its cached outputs are float16 either way. On GPUs, `auto` takes bfloat16 only
where it is native (compute capability 8.0 and up: A100, L4, H100); earlier GPUs such as Colab's T4 (7.5)
take float16 (`torch.cuda.is_bf16_supported()` is True there too, but it counts emulated bfloat16). On CPUs
`auto` takes bfloat16 where the chip has AMX or AVX512-BF16, else float32. The GRU follows BERT on CPUs and
runs in float32 on GPUs (cuDNN's fused GRU kernels take no bfloat16, and float32 needs no loss scaling).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import HW3Error

CHOICES = ("auto", "bf16", "fp16", "fp32")
_FIXED = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
NATIVE_BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Precision:
    """bert: BERT's autocast dtype (None: plain float32); gru: the GRU's compute dtype (None: float32)."""

    bert: torch.dtype | None
    gru: torch.dtype | None
    reason: str

    def describe(self) -> str:
        """'BERT bfloat16, GRU float32 (why)': the log line's precision part."""
        return f"BERT {dtype_name(self.bert)}, GRU {dtype_name(self.gru)} ({self.reason})"


def dtype_name(dtype: torch.dtype | None) -> str:
    """'bfloat16', 'float16' or 'float32' (None means plain float32)."""
    return str(dtype).removeprefix("torch.") if dtype is not None else "float32"


def check_choice(precision: str) -> None:
    """One-line HW3Error unless `precision` is one of CHOICES."""
    if precision not in CHOICES:
        raise HW3Error(f"--precision must be one of {', '.join(CHOICES)}, got {precision!r}: use --precision auto")


def has_fast_bf16_cpu() -> bool:
    """True when this CPU has native bfloat16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _auto_bert(device: torch.device) -> tuple[torch.dtype | None, str]:
    """(BERT's autocast dtype, why) for precision 'auto' on `device`."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= NATIVE_BF16_CAPABILITY:
            return torch.bfloat16, f"auto: sm{major}{minor} GPU has native bfloat16"
        return torch.float16, f"auto: sm{major}{minor} GPU has no native bfloat16 (it would be emulated), so float16"
    if device.type == "cpu" and has_fast_bf16_cpu():
        return torch.bfloat16, "auto: this CPU has AMX/AVX512-BF16"
    return None, f"auto: no fast half precision on this {device.type.upper()}"


def choose(precision: str, device: torch.device) -> Precision:
    """The Precision for 'auto' | 'bf16' | 'fp16' | 'fp32' on `device` (HW3Error for anything else)."""
    check_choice(precision)
    if precision == "auto":
        bert, reason = _auto_bert(device)
    else:
        bert, reason = _FIXED[precision], f"--precision {precision}"
    gru = bert if device.type == "cpu" and bert == torch.bfloat16 else None
    return Precision(bert, gru, reason)


def apply(model, precision: str = "auto") -> Precision:
    """Choose the precision for the device `model` is on and set the GRU's (`model.compute_dtype`)."""
    chosen = choose(precision, next(model.parameters()).device)
    model.compute_dtype = chosen.gru
    return chosen


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero inside the block: CPU GRU backward passes slow ~6x on them otherwise."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
