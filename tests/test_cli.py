"""The `hw3` command: demo, train end to end, predict, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from hw3.sentiment import checkpoint

EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "seconds"}
PNG = b"\x89PNG\r\n\x1a\n"


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.match(r"hw3 (train|predict|demo): error: ", lines[0]), lines[0]
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run_module(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "hw3", *args], capture_output=True, text=True, timeout=timeout, env=env)


# --- demo ---------------------------------------------------------------------------------------------------------

def test_demo_writes_both_figures(run_cli, tmp_path):
    out = tmp_path / "demo"
    code, stdout, stderr = run_cli(["demo", "--out", str(out)])
    assert code == 0, stderr
    for name in ("q2_rnn.png", "q3_attention.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert "h_T = 2" in stdout and "x1, x2, x3" in stdout and "1.4142β, 1.0000β, 1.4142β" in stdout


@pytest.mark.parametrize("where", ["file", "/proc/hw3-demo"])
def test_demo_out_that_cannot_be_a_folder_is_one_line_error(run_cli, tmp_path, where):
    out = tmp_path / "README.md" if where == "file" else where
    if where == "file":
        out.write_text("an existing file\n")
    code, stdout, stderr = run_cli(["demo", "--out", str(out)])
    assert_one_line_error(code, stderr, str(out), "--out")
    assert stdout == ""  # refused before anything is computed
    if where == "file":
        assert out.read_text() == "an existing file\n"


def test_demo_out_through_python_dash_m_has_no_traceback(tmp_path):
    (tmp_path / "README.md").write_text("x")
    result = run_module("demo", "--out", str(tmp_path / "README.md"))
    assert_one_line_error(result.returncode, result.stderr, "is a file, not a folder")


# --- train -------------------------------------------------------------------------------------------------------

def test_train_end_to_end_writes_every_output(trained_run):
    assert trained_run.code == 0, trained_run.stderr
    out = trained_run.out
    for name in ("model.pt", "last.pt", "metrics.json", "curves.png"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert "Traceback" not in trained_run.stderr
    assert not list(out.glob("*.tmp")) and not list(out.glob("hw3-features-*"))

    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    for number, epoch in enumerate(metrics["epochs"], start=1):
        assert EPOCH_KEYS <= set(epoch) and epoch["epoch"] == number
        assert 0 < epoch["train_loss"] < 5 and 0 < epoch["valid_loss"] < 5
        assert 0 <= epoch["train_acc"] <= 1 and 0 <= epoch["valid_acc"] <= 1 and epoch["seconds"] > 0
    assert 0 < metrics["test_loss"] < 5 and 0 <= metrics["test_acc"] <= 1
    assert metrics["data"] == "sample"
    assert metrics["encoder"] == checkpoint.load(out)["encoder"]
    assert metrics["examples"] == {"train": 196, "valid": 84, "test": 120}
    assert "Test Loss" in trained_run.stdout and "Epoch: 02" in trained_run.stdout
    last_line = trained_run.stdout.strip().splitlines()[-1]
    assert all(name in last_line for name in ("model.pt", "last.pt", "metrics.json", "curves.png", str(out))), last_line

    best = min(metrics["epochs"], key=lambda e: e["valid_loss"])
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == last["epochs"] == 2
    assert last["best_valid_loss"] == pytest.approx(best["valid_loss"])
    assert set(checkpoint.load(out)["head"]) == set(last["head"])


def test_resume_refuses_a_run_with_other_options(run_cli, trained_run, tiny_encoder_dir):
    assert trained_run.code == 0
    argv = [a if a != "64" else "32" for a in trained_run.argv] + ["--resume"]  # another --batch-size
    code, _, stderr = run_cli(argv)
    assert_one_line_error(code, stderr, "cannot resume", "batch", "64", "32")


# --- predict ----------------------------------------------------------------------------------------------------

def test_predict_prints_one_probability_per_text(run_cli, trained_run):
    assert trained_run.code == 0
    texts = ["A wonderful, moving film.", "Dreadful acting and a boring plot.", "ok"]
    code, stdout, stderr = run_cli(["predict", "--checkpoint", str(trained_run.out), *texts])
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == len(texts)
    for line, text in zip(lines, texts):
        prob, label, echoed = line.split("\t")
        assert 0.0 <= float(prob) <= 1.0 and len(prob.split(".")[1]) == 4
        assert label == ("positive" if float(prob) > 0.5 else "negative")
        assert echoed == text


def test_predict_through_python_dash_m(trained_run):
    assert trained_run.code == 0
    result = run_module("predict", "--checkpoint", str(trained_run.out / "model.pt"), "great movie", "awful movie")
    assert result.returncode == 0, result.stderr
    assert [0.0 <= float(line.split("\t")[0]) <= 1.0 for line in result.stdout.strip().splitlines()] == [True, True]


# --- errors: exit 1 and one line ---------------------------------------------------------------------------------

def test_unknown_encoder(run_cli, tmp_path):
    code, _, stderr = run_cli(["train", "--encoder", "no-such-encoder-xyz", "--data", "sample", "--out", str(tmp_path)])
    assert_one_line_error(code, stderr, "unknown encoder", "no-such-encoder-xyz")


def test_missing_data_folder(run_cli, tiny_encoder_dir, tmp_path):
    missing = tmp_path / "no-data-here"
    code, _, stderr = run_cli(["train", "--encoder", str(tiny_encoder_dir), "--data", str(missing), "--out", str(tmp_path / "o")])
    assert_one_line_error(code, stderr, "does not exist", str(missing))


def test_encoder_folder_without_config(run_cli, tmp_path):
    folder = tmp_path / "not-an-encoder"
    folder.mkdir()
    (folder / "vocab.txt").write_text("[PAD]\n")
    code, _, stderr = run_cli(["train", "--encoder", str(folder), "--data", "sample", "--out", str(tmp_path / "o")])
    assert_one_line_error(code, stderr, "config.json")


def test_predict_with_a_missing_checkpoint(run_cli, tmp_path):
    code, stdout, stderr = run_cli(["predict", "--checkpoint", str(tmp_path / "nothing"), "some text"])
    assert_one_line_error(code, stderr, "no checkpoint")
    assert stdout == ""


def test_predict_with_a_checkpoint_of_another_encoder(run_cli, trained_run):
    assert trained_run.code == 0
    code, stdout, stderr = run_cli(["predict", "--checkpoint", str(trained_run.out), "--encoder", "bundled", "nice film"])
    assert_one_line_error(code, stderr, "bundled", "--encoder")
    assert stdout == ""


def test_predict_with_an_empty_text(run_cli, trained_run):
    assert trained_run.code == 0
    code, _, stderr = run_cli(["predict", "--checkpoint", str(trained_run.out), "  "])
    assert_one_line_error(code, stderr, "empty")


@pytest.mark.parametrize("option, value, fragment", [
    ("--epochs", "0", "--epochs"),
    ("--epochs", "-3", "--epochs"),
    ("--max-length", "2", "--max-length"),
    ("--max-length", "513", "--max-length"),
    ("--batch-size", "0", "--batch-size"),
])
def test_bad_training_numbers(run_cli, tmp_path, option, value, fragment):
    code, _, stderr = run_cli(["train", "--data", "sample", "--out", str(tmp_path), option, value])
    assert_one_line_error(code, stderr, fragment, value)
    assert not any(tmp_path.iterdir())  # refused before writing anything


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu(run_cli, tmp_path):
    code, _, stderr = run_cli(["train", "--device", "cuda", "--data", "sample", "--out", str(tmp_path)])
    assert_one_line_error(code, stderr, "--device cpu")


def test_error_through_python_dash_m_has_no_traceback(tmp_path):
    result = run_module("predict", "--checkpoint", str(tmp_path / "missing"), "text")
    assert_one_line_error(result.returncode, result.stderr, "no checkpoint")


def test_usage_errors_exit_2(run_cli):
    with pytest.raises(SystemExit) as info:
        run_cli(["train", "--epochs", "many"])
    assert info.value.code == 2


def _usage_error(argv: list[str]) -> str:
    """The stderr of `hw3 ARGV`, which must be a usage error (exit 2)."""
    from hw3.cli import main

    err = io.StringIO()
    with pytest.raises(SystemExit) as info, contextlib.redirect_stderr(err):
        main(argv)
    assert info.value.code == 2
    return err.getvalue()


def test_no_parser_takes_abbreviations():
    from hw3.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert not parser.allow_abbrev
    assert set(commands.choices) >= {"train", "predict", "demo", "assign", "grade", "merge-grades", "autograder"}
    assert [name for name, sub in commands.choices.items() if sub.allow_abbrev] == []


@pytest.mark.parametrize("argv, usage, hint", [
    (["train", "--epoch", "2"], "usage: hw3 train", "unrecognized arguments: --epoch 2 (did you mean --epochs?)"),
    (["train", "--epochs=2", "--sead", "3"], "usage: hw3 train", "--sead 3 (did you mean --seed?)"),
    (["train", "--lr", "-0.5", "--batch", "8"], "usage: hw3 train", "--batch 8 (did you mean --batch-size?)"),
    (["predict", "--checkpoint", "x", "--encodr", "bundled", "hi"], "usage: hw3 predict", "did you mean --encoder?"),
    (["predict", "--chekpoint", "x", "hi"], "usage: hw3 predict", "--chekpoint is unknown: did you mean --checkpoint?"),
    (["demo", "--outt", "x"], "usage: hw3 demo", "did you mean --out?"),
    (["grade", "a.ipynb", "--jsn", "f"], "usage: hw3 grade", "--jsn f (did you mean --json?)"),
    (["assign", "--chek"], "usage: hw3 assign", "did you mean --check?"),
])
def test_an_unknown_option_prints_the_subcommands_usage_and_the_closest_option(argv, usage, hint):
    stderr = _usage_error(argv)
    assert stderr.startswith(usage), stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(f"hw3 {argv[0]}: error: ") and hint in lines[-1], lines[-1]


def test_an_unknown_option_far_from_every_option_gets_no_suggestion():
    stderr = _usage_error(["train", "--foo"])
    assert stderr.strip().splitlines()[-1] == "hw3 train: error: unrecognized arguments: --foo"


def test_encoder_folder_without_tokenizer_files(run_cli, tiny_encoder_dir, tmp_path):
    import shutil

    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_encoder_dir / name, folder / name)
    code, _, stderr = run_cli(["train", "--encoder", str(folder), "--data", "sample", "--epochs", "1", "--max-length", "4",
                               "--precision", "fp32", "--no-progress", "--out", str(tmp_path / "o")])
    assert_one_line_error(code, stderr, "tokenizer")


def test_encoder_whose_vocabulary_is_smaller_than_its_tokenizer(run_cli, bundled_tokenizer, tmp_path):
    import contextlib
    import io

    from hw3.sentiment.model import tiny_bert

    folder = tmp_path / "small-vocab"
    with contextlib.redirect_stderr(io.StringIO()):
        tiny_bert(vocab_size=1000).save_pretrained(folder)
    bundled_tokenizer.save_pretrained(folder)
    code, _, stderr = run_cli(["train", "--encoder", str(folder), "--data", "sample", "--epochs", "1", "--max-length", "4",
                               "--precision", "fp32", "--no-progress", "--out", str(tmp_path / "o")])
    assert_one_line_error(code, stderr, "vocab")


class NotAllowed:
    """A class weights-only loading refuses to unpickle."""


def test_predict_refuses_a_checkpoint_that_would_run_code(run_cli, tmp_path):
    torch.save({"format": checkpoint.FORMAT, "encoder": "bundled", "head": NotAllowed()}, tmp_path / "model.pt")
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path), "text"])
    assert_one_line_error(code, stderr, "weights-only")


def test_predict_with_a_checkpoint_missing_its_encoder_name(run_cli, tmp_path):
    torch.save({"format": checkpoint.FORMAT, "head": {}}, tmp_path / "model.pt")
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path), "text"])
    assert_one_line_error(code, stderr, "model.pt")


def test_predict_with_a_truncated_checkpoint(run_cli, trained_run, tmp_path):
    assert trained_run.code == 0
    data = (trained_run.out / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[: len(data) // 2])
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path), "text"])
    assert_one_line_error(code, stderr, "model.pt", "retrain")


def test_predict_with_a_text_file_as_checkpoint(run_cli, tmp_path):
    (tmp_path / "model.pt").write_text("this is not a checkpoint\n")
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path), "text"])
    assert_one_line_error(code, stderr, "model.pt")


@pytest.mark.parametrize("name", ["notes.txt", "notes"])
def test_predict_with_a_file_that_is_not_a_checkpoint_says_how_to_get_one(run_cli, tmp_path, name):
    (tmp_path / name).write_text("my notes\n")
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path / name), "text"])
    assert_one_line_error(code, stderr, f"{tmp_path / name} is not a checkpoint", "hw3 train --out", "model.pt")
    assert f"--out {tmp_path / name}" not in stderr  # no advice to train into the user's file


def test_predict_with_a_folder_without_model_pt(run_cli, tmp_path):
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path), "text"])
    assert_one_line_error(code, stderr, f"{tmp_path} has no model.pt", f"hw3 train --out {tmp_path}")


@pytest.mark.parametrize("content, what", [
    (b"hello\n", "text file"), (b"", "empty"), (bytes(range(256)) * 4, "not a file torch.save wrote"),
    (b"PK\x03\x04 cut short", "damaged or truncated"), (b"e", "text file")])
def test_predict_with_a_non_checkpoint_pt_file_says_what_it_is_not_pickle_internals(run_cli, tmp_path, content, what):
    (tmp_path / "notes.pt").write_bytes(content)
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path / "notes.pt"), "text"])
    assert_one_line_error(code, stderr, "notes.pt is not a readable checkpoint", what, "hw3 train")
    assert not re.search(r"\(\d+\)|opcode|operand|pop from|unpickl", stderr, re.IGNORECASE), stderr


def test_predict_with_a_garbage_checkpoint_is_not_called_unsafe(run_cli, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"garbage\n")
    code, _, stderr = run_cli(["predict", "--checkpoint", str(tmp_path), "text"])
    assert_one_line_error(code, stderr, "not a readable checkpoint")
    assert "could run code" not in stderr


def test_unreachable_hub_is_one_line_error_at_once(run_cli, monkeypatch):
    from hw3.sentiment import encoders

    monkeypatch.setattr(encoders, "hub_is_cached", lambda model_id=encoders.HUB_MODEL: False)
    monkeypatch.setattr(encoders, "reachable", lambda url, timeout=3.0: False)
    code, _, err = run_cli(["train", "--encoder", "bert-base-uncased", "--no-progress"])
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("hw3 train: error: bert-base-uncased is not in the local cache")
    assert "--encoder bundled" in err


def test_train_options_and_defaults_come_from_train_config():
    from dataclasses import fields

    from hw3.cli import build_parser
    from hw3.sentiment.config import TrainConfig

    args = build_parser().parse_args(["train"])
    assert {f.name: getattr(args, f.name) for f in fields(TrainConfig)} == vars(TrainConfig())
    flipped = build_parser().parse_args(["train", "--no-progress", "--resume", "--precision", "fp16", "--seed", "7"])
    assert (flipped.progress, flipped.resume, flipped.precision, flipped.seed) == (False, True, "fp16", 7)


def test_train_help_lists_every_option_with_its_default(capsys):
    from hw3.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--encoder", "--data", "--epochs", "--max-length", "--batch-size", "--out", "--seed", "--lr",
                 "--precision", "--resume", "--device", "--no-progress"):
        assert flag in text
    assert "(default: 1234)" in text and "(default: 512)" in text and "{auto,bf16,fp16,fp32}" in text
