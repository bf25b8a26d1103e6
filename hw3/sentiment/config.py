"""`TrainConfig`: the settings of one `hw3 train` run, the single source of the CLI's options, defaults and checks.

Each field's metadata holds its command-line help (and choices or flag form); `hw3.cli` builds the
`train` parser from them, so an option is typed in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import HW3Error
from .batching import DEFAULT_BATCH_SIZE
from .data import SEED
from .precision import CHOICES as PRECISIONS
from .precision import check_choice
from .tokenizer import BERT_MAX_LENGTH, check_max_length


def option(default, help: str, **argparse_options):
    """A dataclass field that is also a `hw3 train` option (help text and extra argparse settings)."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class TrainConfig:
    """Settings of one training run (the `hw3 train` options)."""

    encoder: str = option("auto", "auto | bert-base-uncased | bundled | PATH")
    data: str = option("auto", "auto | imdb | sample | DIR in aclImdb layout (auto: IMDB where a GPU runs BERT, else the sample)")
    epochs: int = option(5, "training epochs")
    max_length: int = option(BERT_MAX_LENGTH, "tokens per review, [CLS]/[SEP] included")
    batch_size: int = option(DEFAULT_BATCH_SIZE, "reviews per batch")
    out: str = option("runs/latest", "output folder for model.pt, last.pt, metrics.json, curves.png")
    seed: int = option(SEED, "random seed (split, init, batch order)")
    lr: float = option(1e-3, "Adam learning rate")
    precision: str = option("auto", "BERT's precision; auto: bfloat16 on GPUs with native bf16 (sm80+), float16 on "
                            "older ones, bfloat16 on CPUs with AMX/AVX512-BF16, else float32 (the GRU follows it on "
                            "CPUs and runs in float32 on GPUs)", choices=PRECISIONS)
    resume: bool = option(False, "continue the run in --out after its last finished epoch")
    device: str = option("auto", "auto | cpu | cuda")
    progress: bool = option(True, "no progress bars", flag="--no-progress")

    def validate(self) -> None:
        """One-line HW3Error for values that cannot work."""
        if self.epochs < 1:
            raise HW3Error(f"--epochs must be at least 1, got {self.epochs}")
        check_max_length(self.max_length, BERT_MAX_LENGTH)
        if self.batch_size < 1:
            raise HW3Error(f"--batch-size must be at least 1, got {self.batch_size}")
        check_choice(self.precision)


def cli_options() -> list[tuple[str, dict]]:
    """(flag, argparse keyword arguments) for every TrainConfig field, in field order."""
    options = []
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
        if f.type == "bool":
            kwargs = {"action": "store_false" if f.default else "store_true", "dest": f.name}
        else:
            kwargs = {"type": {"int": int, "float": float, "str": str}[f.type], "default": f.default}
            meta["help"] += f" (default: {f.default})"
        options.append((flag, {**kwargs, **meta}))
    return options
