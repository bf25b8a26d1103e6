"""Reliability of `hw3 train` (issue #5): resumable training, safe checkpoints, hostile inputs.

Runs go through `hw3.cli.main` in this process with a tiny random encoder (hidden 32) and a tiny
aclImdb folder (24 train / 12 test reviews), so a whole 3-epoch run takes about a second. A kill is
simulated by raising a BaseException from inside a checkpoint write after half the bytes are on disk,
which is what SIGKILL leaves behind (the real SIGKILL test is tests/sentiment/test_fault_injection.py).
"""

from __future__ import annotations

import errno
import json
import re
import math
import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch

from hw3.cli import main
from hw3.sentiment import checkpoint, data, pipeline, run_state
from hw3.errors import HW3Error
from hw3.sentiment.features import CachedBatches

SAMPLE = data.sample_root()


class SimulatedKill(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so no `except Exception` catches it)."""


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a busy 2-core machine OpenMP threads contend and a 2 s run takes 20 s."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _save_encoder(folder: Path, hidden: int) -> Path:
    from transformers import BertConfig, BertModel

    from hw3.sentiment.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(folder)
    load_tokenizer("bundled").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """A tiny random BERT (hidden 32, 1 layer) with the bert-base-uncased vocabulary, saved to a folder."""
    return _save_encoder(tmp_path_factory.mktemp("enc32"), 32)


@pytest.fixture(scope="module")
def other_encoder(tmp_path_factory) -> Path:
    """Another tiny BERT with a different embedding size (48)."""
    return _save_encoder(tmp_path_factory.mktemp("enc48"), 48)


def make_corpus(root: Path, train: int = 12, test: int = 6) -> Path:
    """An aclImdb folder with the first `train`/`test` sample reviews of each class; returns root."""
    for split, n in (("train", train), ("test", test)):
        for label in ("pos", "neg"):
            dest = root / split / label
            dest.mkdir(parents=True, exist_ok=True)
            for f in sorted((SAMPLE / split / label).glob("*.txt"))[:n]:
                shutil.copy(f, dest / f.name)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "aclImdb")


def train_args(encoder: Path, corpus: Path, out: Path, *extra: str, epochs: int = 3) -> list[str]:
    return ["train", "--encoder", str(encoder), "--data", str(corpus), "--out", str(out), "--epochs", str(epochs),
            "--batch-size", "8", "--max-length", "32", "--precision", "fp32", "--device", "cpu", "--no-progress", *extra]


def run_cli(capsys, args: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `hw3 ARGS` run in this process."""
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """The CLI failed with exit 1 and exactly one `hw3 train: error:` (or predict) line naming every fragment."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"hw3 (train|predict): error: ", lines[0]), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def comparable(metrics: dict) -> dict:
    """Metrics without what legitimately differs between runs (timings, --out, --resume)."""
    keep = {k: v for k, v in metrics.items() if k not in ("config",)}
    keep["epochs"] = [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["epochs"]]
    return keep


def assert_same_metrics(a: dict, b: dict, tol: float = 1e-6) -> None:
    a, b = comparable(a), comparable(b)
    assert a.keys() == b.keys()
    assert len(a["epochs"]) == len(b["epochs"])
    for ea, eb in zip(a["epochs"], b["epochs"]):
        assert ea.keys() == eb.keys()
        for key in ea:
            assert math.isclose(ea[key], eb[key], rel_tol=0, abs_tol=tol), (ea, eb)
    for key in ("test_loss", "test_acc"):
        assert math.isclose(a[key], b[key], rel_tol=0, abs_tol=tol), (key, a[key], b[key])
    assert (a["best_epoch"], a["examples"], a["encoder"], a["data"]) == (b["best_epoch"], b["examples"], b["encoder"], b["data"])


def read_metrics(out: Path) -> dict:
    return json.loads((out / checkpoint.METRICS).read_text())


def snapshot(out: Path) -> dict[str, bytes]:
    """The bytes of every output file in `out`."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()} if out.is_dir() else {}


# An uninterrupted 3-epoch run of the tiny setting writes this many files (asserted by `reference`).
WRITES = 11


@pytest.fixture(scope="module")
def reference(encoder, corpus, tmp_path_factory) -> dict:
    """Metrics of an uninterrupted 3-epoch run."""
    out = tmp_path_factory.mktemp("reference")
    real, written = checkpoint.write_bytes_atomic, []

    def counting(path, payload):
        written.append(Path(path).name)
        return real(path, payload)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "write_bytes_atomic", counting)
        assert main(train_args(encoder, corpus, out)) == 0
    assert len(written) == WRITES, written
    assert written[:3] == [checkpoint.LAST, checkpoint.BEST, checkpoint.METRICS]
    assert written[-3:] == [checkpoint.METRICS, checkpoint.CURVES, checkpoint.LAST]
    return read_metrics(out)


def kill_at_write(monkeypatch, n: int) -> list[str]:
    """Make the n-th checkpoint write (0-based) die half way through, as SIGKILL would; returns the names written."""
    real = checkpoint.write_bytes_atomic
    calls: list[str] = []

    def write(path, payload):
        calls.append(Path(path).name)
        if len(calls) - 1 == n:
            fd, _ = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp", dir=Path(path).parent)
            os.write(fd, payload[: len(payload) // 2])
            os.close(fd)
            raise SimulatedKill(Path(path).name)
        return real(path, payload)

    monkeypatch.setattr(checkpoint, "write_bytes_atomic", write)
    return calls


# ---------------------------------------------------------------- resuming


def test_reference_run_is_complete(reference):
    assert [e["epoch"] for e in reference["epochs"]] == [1, 2, 3]
    assert {"test_loss", "test_acc", "best_epoch"} <= reference.keys()


# 3 epochs: each writes last.pt, model.pt (when it improved), metrics.json; the end writes metrics.json,
# curves.png and last.pt (finished). Killing at every one of them covers every point between writes.
@pytest.mark.parametrize("n", range(WRITES))
def test_killed_at_any_write_resumes_to_the_same_metrics(n, encoder, corpus, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    calls = kill_at_write(monkeypatch, n)
    before = {}
    try:
        main(train_args(encoder, corpus, out))
    except SimulatedKill as killed:
        before = snapshot(out)
        victim = str(killed)
        assert any(p.name.startswith(f".{victim}.") for p in out.iterdir()), "the half-written temp file is left, as after SIGKILL"
    else:
        pytest.fail(f"the run made only {len(calls)} writes")
    monkeypatch.undo()
    for name, content in before.items():  # every file that exists is complete and readable
        if name.endswith(".pt"):
            checkpoint.load(out / name)
        elif name.endswith(".json"):
            json.loads(content)
    code, stdout, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert code == 0, err
    assert_same_metrics(read_metrics(out), reference)
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], "stale temp files are removed"
    best = checkpoint.load(out / checkpoint.BEST)
    last = run_state.load(out / checkpoint.LAST)
    assert last["finished"] and last["epoch"] == 3
    assert checkpoint.same_head(best["head"], last["best_head"]) and best["epoch"] == reference["best_epoch"]


def test_model_pt_ahead_of_last_pt_is_rewritten(encoder, corpus, reference, tmp_path, capsys):
    """A model.pt that does not match last.pt (stale, foreign, or missing) is rewritten from last.pt's best head."""
    out = tmp_path / "run"
    assert main(train_args(encoder, corpus, out, epochs=1)) == 0
    state = run_state.load(out / checkpoint.LAST)
    state["finished"] = False
    state["epochs"] = 3
    checkpoint.save(state, out / checkpoint.LAST)
    bogus = checkpoint.load(out / checkpoint.BEST)
    bogus["head"] = {k: v + 1 for k, v in bogus["head"].items()}
    checkpoint.save(bogus, out / checkpoint.BEST)
    code, stdout, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert code == 0, err
    assert "rewrote" in stdout
    assert_same_metrics(read_metrics(out), reference)


def test_resume_with_more_epochs_continues(encoder, corpus, reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, train_args(encoder, corpus, out, epochs=2))[0] == 0
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume", epochs=3))
    assert code == 0, err
    assert_same_metrics(read_metrics(out), reference)


def test_killed_during_test_phase_finishes_on_resume(encoder, corpus, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = pipeline.evaluate
    calls = []

    def evaluate(model, iterator, criterion):
        calls.append(1)
        if len(calls) == 4:  # 3 validations, then the test
            raise KeyboardInterrupt
        return real(model, iterator, criterion)

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out))
    assert code == 130 and "--resume" in err
    assert "test_loss" not in read_metrics(out)
    monkeypatch.undo()
    code, stdout, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert code == 0, err
    assert "Epoch:" not in stdout, "all epochs were done: only the test runs"
    assert_same_metrics(read_metrics(out), reference)


def test_resume_without_a_run_starts_fresh(encoder, corpus, reference, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert code == 0, err
    assert "nothing to resume" in stdout
    assert_same_metrics(read_metrics(out), reference)


def test_finished_run_is_replaced_without_resume(encoder, corpus, reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, train_args(encoder, corpus, out, epochs=1))[0] == 0
    code, stdout, err = run_cli(capsys, train_args(encoder, corpus, out))
    assert code == 0, err
    assert "replacing the finished run" in stdout
    assert_same_metrics(read_metrics(out), reference)


@pytest.fixture
def unfinished(encoder, corpus, tmp_path, monkeypatch) -> Path:
    """An --out folder with a run killed after its first epoch."""
    out = tmp_path / "run"
    kill_at_write(monkeypatch, 3)  # epoch 1 wrote last.pt, model.pt, metrics.json; dies writing epoch 2's last.pt
    with pytest.raises(SimulatedKill):
        main(train_args(encoder, corpus, out))
    monkeypatch.undo()
    return out


def test_unfinished_run_without_resume_is_refused(unfinished, encoder, corpus, capsys):
    before = snapshot(unfinished)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, unfinished))
    assert_one_line_error(code, err, "unfinished run (stopped after epoch 1 of 3)", "add --resume")
    assert snapshot(unfinished) == before


@pytest.mark.parametrize("option, value", [("--lr", "0.01"), ("--seed", "7"), ("--max-length", "16"),
                                           ("--batch-size", "4"), ("--precision", "bf16")])
def test_resume_with_other_options_is_refused(option, value, unfinished, encoder, corpus, capsys):
    before = snapshot(unfinished)
    args = train_args(encoder, corpus, unfinished, "--resume")
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    code, _, err = run_cli(capsys, args)
    assert_one_line_error(code, err, f"cannot resume {unfinished}", f"this run has {option} {value}")
    assert snapshot(unfinished) == before


def test_resume_with_fewer_epochs_is_refused(unfinished, encoder, corpus, capsys):
    state = run_state.load(unfinished / checkpoint.LAST)
    state["epoch"] = 2
    checkpoint.save(state, unfinished / checkpoint.LAST)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, unfinished, "--resume", epochs=1))
    assert_one_line_error(code, err, "already finished 2 epochs")


def test_resume_with_another_encoder_is_refused(unfinished, other_encoder, corpus, encoder, capsys):
    code, _, err = run_cli(capsys, train_args(other_encoder, corpus, unfinished, "--resume"))
    assert_one_line_error(code, err, str(encoder), str(other_encoder))


def test_resume_from_old_or_foreign_last_pt_is_refused(unfinished, encoder, corpus, capsys):
    state = checkpoint.load(unfinished / checkpoint.LAST)
    del state["best_head"]
    checkpoint.save(state, unfinished / checkpoint.LAST)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, unfinished, "--resume"))
    assert_one_line_error(code, err, "cannot be resumed", "best_head")


def test_rng_state_is_restored(unfinished):
    state = run_state.load(unfinished / checkpoint.LAST)
    assert state["rng"].dtype == torch.uint8 and state["epoch"] == 1
    assert {"state", "param_groups"} <= state["optimizer"].keys() and state["optimizer"]["state"]


# ---------------------------------------------------------------- safe loading


class _Exploit:
    """Unpickling this runs code that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_exploit(path: Path, marker: Path, how: str) -> None:
    payload = {"format": checkpoint.FORMAT, "encoder": "x", "head": _Exploit(marker)}
    if how == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))


def test_exploit_actually_runs_when_unpickled(tmp_path):
    """Guard for the tests below: the payload really does create the marker when loaded unsafely."""
    marker = tmp_path / "pwned"
    _write_exploit(tmp_path / "x.pt", marker, "pickle")
    pickle.loads((tmp_path / "x.pt").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("how", ["torch", "pickle"])
@pytest.mark.filterwarnings("error")  # no torch warning may reach the user's terminal either
def test_malicious_model_pt_is_refused(how, tmp_path, capsys):
    marker = tmp_path / "pwned"
    _write_exploit(tmp_path / checkpoint.BEST, marker, how)
    code, _, err = run_cli(capsys, ["predict", "--checkpoint", str(tmp_path), "a fine film"])
    assert_one_line_error(code, err, "not a safe weights-only checkpoint", "refusing it")
    assert not marker.exists()


def test_malicious_last_pt_is_refused_on_resume(encoder, corpus, tmp_path, capsys):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    _write_exploit(out / checkpoint.LAST, marker, "torch")
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert_one_line_error(code, err, "not a safe weights-only checkpoint")
    assert not marker.exists()


def test_checkpoint_of_another_encoder_is_refused(encoder, other_encoder, corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(encoder, corpus, out, epochs=1)) == 0
    code, _, err = run_cli(capsys, ["predict", "--checkpoint", str(out), "--encoder", str(other_encoder), "a fine film"])
    assert_one_line_error(code, err, f"encoder {encoder} (32-dim)", f"uses {other_encoder} (48-dim)")


def test_checkpoint_of_another_architecture_is_refused(encoder, corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(encoder, corpus, out, epochs=1)) == 0
    ckpt = checkpoint.load(out / checkpoint.BEST)
    ckpt["model_config"]["hidden_dim"] = 128
    checkpoint.save(ckpt, out / checkpoint.BEST)
    code, _, err = run_cli(capsys, ["predict", "--checkpoint", str(out), "a fine film"])
    assert_one_line_error(code, err, "another architecture", "out.weight is [1, 512] in the checkpoint but [1, 256] in this model")


def test_exploit_error_names_what_it_would_import(tmp_path):
    _write_exploit(tmp_path / "x.pt", tmp_path / "pwned", "torch")
    with pytest.raises(HW3Error, match=r"it would import posix\.system"):
        checkpoint.load(tmp_path / "x.pt")


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"garbage\n", b"t", b"0", b"",
                                     pickle.dumps({"a": [1, 2]}), pickle.dumps([1, 2], protocol=2)])
def test_damaged_checkpoint_is_refused_but_not_called_unsafe(content, tmp_path, capsys):
    (tmp_path / checkpoint.BEST).write_bytes(content)
    code, _, err = run_cli(capsys, ["predict", "--checkpoint", str(tmp_path), "a fine film"])
    line = assert_one_line_error(code, err, "model.pt", "retrain with `hw3 train`")
    assert "could run code" not in line


def test_truncated_real_checkpoint_is_refused(encoder, corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(encoder, corpus, out, epochs=1)) == 0
    data = (out / checkpoint.BEST).read_bytes()
    (out / checkpoint.BEST).write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(capsys, ["predict", "--checkpoint", str(out), "a fine film"])
    assert_one_line_error(code, err, "is not a readable checkpoint")


# ---------------------------------------------------------------- hostile data


def _data_error(capsys, encoder, folder, tmp_path) -> str:
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, train_args(encoder, folder, out))
    line = assert_one_line_error(code, err)
    assert not (out / checkpoint.LAST).exists()
    return line


def test_missing_data_folder(encoder, tmp_path, capsys):
    line = _data_error(capsys, encoder, tmp_path / "nowhere", tmp_path)
    assert "does not exist" in line and "--data sample" in line


def test_empty_data_folder(encoder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "not in aclImdb layout (missing train/, test/)" in _data_error(capsys, encoder, tmp_path / "empty", tmp_path)


def test_data_is_a_file(encoder, tmp_path, capsys):
    (tmp_path / "reviews.txt").write_text("great")
    assert "is a file, not a folder" in _data_error(capsys, encoder, tmp_path / "reviews.txt", tmp_path)


def test_aclimdb_without_test_folder(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "d" / "aclImdb")
    shutil.rmtree(root / "test")
    line = _data_error(capsys, encoder, tmp_path / "d", tmp_path)
    assert f"{root.resolve()} is not in aclImdb layout (missing test/)" in line


def test_split_without_neg_folder(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    shutil.rmtree(root / "train" / "neg")
    assert "neg is missing" in _data_error(capsys, encoder, root, tmp_path)


def test_empty_pos_and_neg_folders(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    for label in ("pos", "neg"):
        shutil.rmtree(root / "test" / label)
        (root / "test" / label).mkdir()
    assert "test has no .txt reviews" in _data_error(capsys, encoder, root, tmp_path)


def test_one_class_only(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    for f in (root / "train" / "neg").iterdir():
        f.unlink()
    assert "reviews of one class only" in _data_error(capsys, encoder, root, tmp_path)


def test_review_that_is_not_utf8(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    (root / "train" / "pos" / "bad.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    line = _data_error(capsys, encoder, root, tmp_path)
    assert "bad.txt is not UTF-8 text (byte 3)" in line and "re-save it as UTF-8" in line


@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_empty_review(text, encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    (root / "test" / "neg" / "blank.txt").write_text(text)
    assert "blank.txt is an empty review" in _data_error(capsys, encoder, root, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_review(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    bad = root / "train" / "pos" / "locked.txt"
    bad.write_text("fine")
    bad.chmod(0)
    assert "cannot read" in _data_error(capsys, encoder, root, tmp_path)


def test_utf8_bom_and_odd_entries_are_fine(tmp_path):
    root = make_corpus(tmp_path / "aclImdb", train=3, test=3)
    (root / "train" / "pos" / "bom.txt").write_bytes("\ufeffA lovely film".encode("utf-8"))
    (root / "train" / "pos" / "folder.txt").mkdir()  # a folder named *.txt is not a review
    (root / "train" / "pos" / "dangling.txt").symlink_to(tmp_path / "gone")
    reviews = data.read_split(root, "train")
    assert "A lovely film" in [r.text for r in reviews] and len(reviews) == 7


def test_reviews_of_100k_characters_are_truncated(encoder, tmp_path, capsys):
    import resource

    from hw3.sentiment.tokenizer import encode_batch, load_tokenizer

    root = make_corpus(tmp_path / "aclImdb", train=6, test=3)
    huge = ("This film is a long, long masterpiece of patience. " * 2000)[:100_000]
    for split, label in (("train", "pos"), ("train", "neg"), ("test", "pos")):
        (root / split / label / "huge.txt").write_text(huge)
    tokenizer = load_tokenizer(str(encoder))
    texts = [huge + str(i) for i in range(100)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    ids = encode_batch(tokenizer, texts, 512)
    assert time.perf_counter() - start < 10
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) < 300 * 1024  # KiB: well under 300 MiB
    assert {len(x) for x in ids} == {512} and ids[0][-1] == tokenizer.sep_token_id
    start = time.perf_counter()
    code, _, err = run_cli(capsys, train_args(encoder, root, tmp_path / "out", epochs=1))
    assert code == 0, err
    assert time.perf_counter() - start < 60


def test_tokenizing_a_prefix_gives_the_same_ids(encoder):
    """encode_batch cuts long texts before tokenizing: the ids must equal tokenizing the whole text."""
    import random

    from hw3.sentiment.tokenizer import encode_batch, load_tokenizer

    tokenizer = load_tokenizer(str(encoder))
    rng = random.Random(0)
    pieces = ["good", "film", "a" * 150, "x" * 99, "unbelievablyunbelievable", "e\u0301", "café", "日本語", "  ", "\n\t", "!!"]
    texts = [(" " if n % 3 else "").join(rng.choice(pieces) for _ in range(rng.choice([40, 500, 1500]))) for n in range(40)]
    texts += ["word " * 30_000, " " * 50_000 + "late words", "a" * 100_000]
    for max_length in (3, 16, 512):
        whole = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        assert encode_batch(tokenizer, texts, max_length) == whole, max_length


def test_huge_review_file_is_refused(encoder, tmp_path, capsys):
    root = make_corpus(tmp_path / "aclImdb")
    with open(root / "train" / "pos" / "dump.txt", "wb") as f:
        f.truncate(data.MAX_REVIEW_BYTES + 1)
    assert "dump.txt is 10 MiB, too big for a review" in _data_error(capsys, encoder, root, tmp_path)


# ---------------------------------------------------------------- hostile output folders and disks


def test_out_under_a_regular_file(encoder, corpus, tmp_path, capsys):
    (tmp_path / "somefile").write_text("x")
    code, _, err = run_cli(capsys, train_args(encoder, corpus, tmp_path / "somefile" / "sub"))
    assert_one_line_error(code, err, "cannot write to", "somefile/sub", "choose a writable --out folder")


def test_out_is_a_file(encoder, corpus, tmp_path, capsys):
    (tmp_path / "somefile").write_text("x")
    code, _, err = run_cli(capsys, train_args(encoder, corpus, tmp_path / "somefile"))
    assert_one_line_error(code, err, "is a file, not a folder")
    assert (tmp_path / "somefile").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out(encoder, corpus, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, train_args(encoder, corpus, out))
    finally:
        out.chmod(0o755)
    assert_one_line_error(code, err, "cannot write to", "choose a writable --out folder")


def _fill_disk_for(monkeypatch, name: str, after: int) -> None:
    """Writes of `name` after the first `after` ones go to /dev/full: the kernel answers ENOSPC."""
    real = tempfile.mkstemp
    seen = []

    def mkstemp(*args, prefix=None, **kwargs):
        if prefix == f".{name}.":
            seen.append(1)
            if len(seen) > after:
                return os.open("/dev/full", os.O_WRONLY), str(Path(kwargs["dir"]) / f".{name}.full.tmp")
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_keeps_the_previous_checkpoint(encoder, corpus, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _fill_disk_for(monkeypatch, checkpoint.LAST, after=1)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out))
    assert_one_line_error(code, err, f"cannot write {out / checkpoint.LAST} (No space left on device)",
                          "free disk space", "previous last.pt is kept")
    monkeypatch.undo()
    assert run_state.load(out / checkpoint.LAST)["epoch"] == 1
    assert not list(out.glob(".*.tmp"))
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert code == 0, err
    assert_same_metrics(read_metrics(out), reference)


def test_full_disk_on_rename_keeps_metrics_valid(encoder, corpus, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == checkpoint.METRICS and (Path(dst)).exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out))
    assert_one_line_error(code, err, "metrics.json (No space left on device)")
    monkeypatch.undo()
    assert [e["epoch"] for e in read_metrics(out)["epochs"]] == [1]
    code, _, err = run_cli(capsys, train_args(encoder, corpus, out, "--resume"))
    assert code == 0, err
    assert_same_metrics(read_metrics(out), reference)


def test_os_error_elsewhere_is_one_line(encoder, corpus, tmp_path, monkeypatch, capsys):
    """An OSError from code outside the checkpoint writer (here the feature spill) still reads as one line."""
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/spill/file")

    monkeypatch.setattr(CachedBatches, "fill", broken)
    code, _, err = run_cli(capsys, train_args(encoder, corpus, tmp_path / "run"))
    assert_one_line_error(code, err, "cannot use /spill/file (Input/output error)")


# ---------------------------------------------------------------- atomic writes


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"format": checkpoint.FORMAT, "n": torch.tensor(1)}, path)

    class Exploding(dict):
        def __reduce_ex__(self, protocol):
            raise SimulatedKill

    with pytest.raises(SimulatedKill):
        checkpoint.save({"format": checkpoint.FORMAT, "x": Exploding()}, path)
    assert checkpoint.load(path)["n"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_written_files_get_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        checkpoint.save_json({"a": 1}, tmp_path / "m.json")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


def test_metrics_json_is_valid_even_with_nan(tmp_path):
    checkpoint.save_json({"loss": float("nan"), "h": [{"x": float("inf")}, 1.5]}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {"loss": None, "h": [{"x": None}, 1.5]}


def test_fsync_unsupported_is_tolerated(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    checkpoint.save_json({"a": 1}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_fsync_io_error_is_reported(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    with pytest.raises(HW3Error, match="Input/output error"):
        checkpoint.save_json({"a": 1}, tmp_path / "m.json")
    assert not list(tmp_path.iterdir())


def test_stale_temp_files_are_removed(tmp_path):
    for name in (".last.pt.abc.tmp", ".model.pt.x.tmp", "hw3-features-1.f16", ".mine.tmp", "notes.txt"):
        (tmp_path / name).write_text("x")
    checkpoint.remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mine.tmp", "notes.txt"]
