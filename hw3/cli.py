"""The `hw3` command (also `python -m hw3`).

    hw3 train [--encoder auto|bert-base-uncased|bundled|PATH] [--data auto|imdb|sample|DIR] [--epochs N]
              [--max-length L] [--batch-size B] [--out DIR] [--resume] ...
    hw3 predict --checkpoint DIR TEXT...
    hw3 demo [--out DIR]
    hw3 assign [--check]          (answer keys -> student notebooks)
    hw3 grade SUBMISSION... [--json FILE] [--csv FILE] [--jobs N] [--store FILE] [--shard I/N] [--regrade IDS]
    hw3 merge-grades STORE... [--json FILE] [--csv FILE] [--gradescope FILE] [--store FILE]

Errors in the input are reported as one line on stderr with exit code 1; usage errors exit 2;
an interrupted run exits 130 and can be continued with --resume.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .sentiment.errors import HW3Error


def _train(args: argparse.Namespace) -> int:
    from .sentiment.pipeline import TrainConfig, run

    config = TrainConfig(encoder=args.encoder, data=args.data, epochs=args.epochs, max_length=args.max_length,
                         batch_size=args.batch_size, out=args.out, seed=args.seed, lr=args.lr,
                         precision=args.precision, resume=args.resume, device=args.device,
                         progress=not args.no_progress and sys.stderr.isatty())
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
        print(f"{predict_sentiment(model, tokenizer, text):.4f}\t{text}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    run(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="hw3", description="Deep Learning HW3: RNNs, self-attention, BERT+GRU sentiment.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train the BERT-GRU sentiment classifier and test it")
    train.add_argument("--encoder", default="auto", help="auto | bert-base-uncased | bundled | PATH (default: auto)")
    train.add_argument("--data", default="auto", help="auto | imdb | sample | DIR in aclImdb layout (default: auto)")
    train.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    train.add_argument("--max-length", type=int, default=512, help="tokens per review, [CLS]/[SEP] included (default: 512)")
    train.add_argument("--batch-size", type=int, default=128, help="reviews per batch (default: 128)")
    train.add_argument("--out", default="runs/latest", help="output folder for model.pt, last.pt, metrics.json, curves.png")
    train.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    train.add_argument("--seed", type=int, default=1234, help="random seed (split, init, batch order)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                       help="BERT's precision; auto: bfloat16 where the hardware has fast bf16, else float32 "
                            "(the GRU follows it on CPUs and runs in float32 on GPUs)")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)

    predict = sub.add_parser("predict", help="print P(positive) for each text with a trained model")
    predict.add_argument("--checkpoint", required=True, help="a `hw3 train --out` folder or its model.pt")
    predict.add_argument("--encoder", default=None, help="encoder to load (default: the one in the checkpoint)")
    predict.add_argument("texts", nargs="+", metavar="TEXT")
    predict.set_defaults(handler=_predict)

    demo = sub.add_parser("demo", help="Q2 and Q3 results, with figures written to --out")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(handler=_demo)

    try:
        from .grading.commands import register
    except ImportError:
        pass
    else:
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
        print(f"hw3: error: {exc}", file=sys.stderr)
        return 1
