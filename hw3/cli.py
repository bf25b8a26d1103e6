"""The `hw3` command (also `python -m hw3`).

    hw3 train [--encoder auto|bert-base-uncased|bundled|PATH] [--data auto|imdb|sample|DIR] [--epochs N]
              [--max-length L] [--batch-size B] [--out DIR] [--resume] ...
    hw3 predict --checkpoint DIR TEXT...
    hw3 demo [--out DIR]
    hw3 assign [--check]          (answer keys -> student notebooks)
    hw3 grade SUBMISSION... [--json FILE] [--csv FILE] [--jobs N] [--store FILE] [--shard I/N] [--regrade IDS]
    hw3 merge-grades STORE... [--json FILE] [--csv FILE] [--gradescope FILE] [--store FILE]

Errors in the input are reported as one line on stderr, `hw3 COMMAND: error: …` (`hw3.errors.format_error`,
argparse's format for usage errors too), with exit code 1; usage errors exit 2; an interrupted run exits 130
and can be continued with --resume.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields

from .errors import HW3Error, format_error

# What `hw3 grade`, `assign` and `autograder` import beyond the notebooks' needs: pyproject's `grade` extra.
GRADER_MODULES = frozenset({"nbformat", "nbclient", "jupyter_client", "zmq", "ipykernel", "IPython", "tomli"})
LABELS = ("negative", "positive")  # predict's word for P(positive) <= 0.5 and > 0.5 (the homework rounds it)


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: no abbreviations (`--epoch` is not taken for `--epochs`), and an unknown option is
    reported by the subcommand itself, with its own usage and the closest option ("did you mean --epochs?")."""

    def __init__(self, *args, options: Callable[[], list[tuple[str, dict]]] | None = None, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.words: list[str] = []
        self.deferred = options  # (flag, add_argument keywords), added when this subcommand is parsed or shown

    def add_deferred(self) -> None:
        """Add the deferred options (once): `hw3 train`'s come from TrainConfig, whose module loads torch, which
        no other subcommand needs (`hw3 grade` stays small beside its kernels)."""
        options, self.deferred = self.deferred, None
        for flag, kwargs in options() if options else []:
            self.add_argument(flag, **kwargs)

    def format_usage(self) -> str:
        self.add_deferred()
        return super().format_usage()

    def format_help(self) -> str:
        self.add_deferred()
        return super().format_help()

    def parse_known_args(self, args=None, namespace=None):
        self.add_deferred()
        self.words = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def error(self, message: str):
        """argparse's usage and error line, with a suggestion when an option given is close to a known one."""
        unknown, close = self.closest_option(self.words)
        if close:
            hint = f"did you mean {close}?" if unknown in message else f"{unknown} is unknown: did you mean {close}?"
            message += f" ({hint})"
        super().error(message)

    def closest_option(self, words: list[str]) -> tuple[str | None, str | None]:
        """(the first unknown option among `words`, the known option closest to it or None); (None, None) if all
        options are known. The closest is the one option it begins (what an abbreviation meant), else the most
        similar one, compared without the dashes so that '--foo' is not close to '--out'."""
        known = {flag.lstrip("-"): flag for action in self._actions for flag in action.option_strings}
        for word in words:
            if word == "--":
                break
            name = word.split("=")[0]
            if name.startswith("-") and name not in known.values() and not _is_number(name):
                begun = [flag for bare, flag in known.items() if bare.startswith(name.lstrip("-"))]
                close = begun if len(begun) == 1 else [
                    known[bare] for bare in difflib.get_close_matches(name.lstrip("-"), list(known), n=1, cutoff=0.7)]
                return name, close[0] if close else None
        return None, None


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _train(args: argparse.Namespace) -> int:
    from .sentiment.config import TrainConfig
    from .sentiment.pipeline import run

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    config = TrainConfig(**{**values, "progress": args.progress and sys.stderr.isatty()})
    try:
        run(config)
    except KeyboardInterrupt:
        print(f"hw3: interrupted; the last finished epoch is saved: continue with `hw3 train --resume --out {args.out}`",
              file=sys.stderr)
        return 130
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .sentiment.predict import load_trained, predict_sentiment

    model, tokenizer = load_trained(args.checkpoint, args.encoder)
    for text in args.texts:
        if not text.strip():
            raise HW3Error("one of the texts is empty: pass the review text in quotes")
        probability = predict_sentiment(model, tokenizer, text)
        print(f"{probability:.4f}\t{LABELS[probability > 0.5]}\t{text}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    run(args.out)
    return 0


def _train_options() -> list[tuple[str, dict]]:
    """`hw3 train`'s options: one per TrainConfig field."""
    from .sentiment.config import cli_options

    return cli_options()


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand (imported here: `main` sets OpenMP's environment before torch loads)."""
    from .grading.commands import register

    parser = argparse.ArgumentParser(prog="hw3", allow_abbrev=False,
                                     description="Deep Learning HW3: RNNs, self-attention, BERT+GRU sentiment.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=SubcommandParser)

    train = sub.add_parser("train", help="train the BERT-GRU sentiment classifier and test it", options=_train_options)
    train.set_defaults(handler=_train)

    predict = sub.add_parser("predict", help="print P(positive) and positive/negative for each text (a trained model)")
    predict.add_argument("--checkpoint", required=True, help="a `hw3 train --out` folder or its model.pt")
    predict.add_argument("--encoder", default=None, help="encoder to load (default: the one in the checkpoint)")
    predict.add_argument("texts", nargs="+", metavar="TEXT")
    predict.set_defaults(handler=_predict)

    demo = sub.add_parser("demo", help="Q2 and Q3 results, with figures written to --out")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(handler=_demo)

    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    # Idle OpenMP threads sleep instead of spinning: on a busy CPU, spinning threads slow torch down several times.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HW3Error as exc:
        print(format_error(args.command, str(exc)), file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in GRADER_MODULES:
            raise
        print(format_error(args.command, f"{exc.name} is not installed: `hw3 {args.command}` needs the grader's "
                                         f"dependencies: pip install 'hw3[grade]' (in a checkout: pip install -e "
                                         f"'.[grade]')"), file=sys.stderr)
        return 1
