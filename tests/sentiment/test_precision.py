"""The precision policy: auto on mocked GPUs of compute capability 7.5 (T4) and 8.0 (A100), CPUs, fixed choices."""

from __future__ import annotations

import pytest
import torch

from hw3.errors import HW3Error
from hw3.sentiment import precision

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


def on_gpu_of(monkeypatch, capability: tuple[int, int]) -> None:
    """Make torch report a GPU of this compute capability (no GPU is needed)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what torch says on both


def test_auto_takes_float16_on_a_t4_whose_bfloat16_is_only_emulated(monkeypatch):
    on_gpu_of(monkeypatch, (7, 5))
    chosen = precision.choose("auto", CUDA)
    assert chosen.bert is torch.float16 and chosen.gru is None
    assert chosen.describe() == ("BERT float16, GRU float32 "
                                 "(auto: sm75 GPU has no native bfloat16 (it would be emulated), so float16)")


@pytest.mark.parametrize("capability", [(8, 0), (8, 9), (9, 0)])
def test_auto_takes_bfloat16_from_sm80_on(monkeypatch, capability):
    on_gpu_of(monkeypatch, capability)
    chosen = precision.choose("auto", CUDA)
    assert chosen.bert is torch.bfloat16 and chosen.gru is None
    assert "native bfloat16" in chosen.reason and f"sm{capability[0]}{capability[1]}" in chosen.reason


@pytest.mark.parametrize("fast, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_on_a_cpu_follows_its_bf16_instructions_and_the_gru_follows_bert(monkeypatch, fast, expected):
    monkeypatch.setattr(precision, "has_fast_bf16_cpu", lambda: fast)
    chosen = precision.choose("auto", CPU)
    assert chosen.bert is expected and chosen.gru is expected


@pytest.mark.parametrize("choice, bert", [("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_fixed_choices_are_taken_as_given(monkeypatch, choice, bert):
    on_gpu_of(monkeypatch, (7, 5))
    for device in (CPU, CUDA):
        chosen = precision.choose(choice, device)
        assert chosen.bert is bert and chosen.reason == f"--precision {choice}"
        assert chosen.gru is (bert if device.type == "cpu" and bert is torch.bfloat16 else None)


def test_an_unknown_choice_is_a_one_line_error_naming_the_fix():
    with pytest.raises(HW3Error, match=r"--precision must be one of auto, bf16, fp16, fp32, got 'fp8': use --precision auto"):
        precision.choose("fp8", CPU)


def test_apply_sets_the_models_gru_dtype(monkeypatch):
    monkeypatch.setattr(precision, "has_fast_bf16_cpu", lambda: True)
    model = torch.nn.Linear(2, 2)
    assert precision.apply(model, "auto").bert is torch.bfloat16 and model.compute_dtype is torch.bfloat16
    precision.apply(model, "fp32")
    assert model.compute_dtype is None


def test_dtype_names():
    assert [precision.dtype_name(d) for d in (None, torch.bfloat16, torch.float16)] == ["float32", "bfloat16", "float16"]
