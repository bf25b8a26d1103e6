"""The grading corpus: the small part of the embedded sample a Q4 notebook trains on while it is graded,
and its frozen-BERT features, computed once per machine.

Q4's checks score each function on the grader's own inputs (tiny models, generated batches) and never on
how well the notebook's model learned, so training on all 400 reviews of the sample only costs time
(about 130 of a submission's 150 CPU-seconds). The builds `hw3 grade` runs notebooks with (`withheld`)
therefore ship, as their embedded sample, a few of its shortest reviews (`layout`, `write_corpus`): a graded
notebook, and the answer key's, load them the way a student's loads the sample, and train in seconds. Its
validation reviews are labelled against the training ones, so that the best epoch is the first one
(q4.3d's check of the saved model sees a loop that keeps another). `grading_splits()` is what `load_splits`
gives such a notebook.

`prefill(folder)` computes the BERT features of those reviews once into the persistent feature cache
(`hw3.sentiment.features.fill_cache`: content-addressed by the encoder's weights, the compute dtype and each
review's token ids, checksummed, no pickle). `hw3 grade` runs it in a process of its own (`prefill_apart`), so
torch and BERT never load into the grader, which stays small while the kernels run; its stamp (`STAMP`: what
the features were computed from, and the files) lets later batches skip that process. The batch shares the folder read-only into every sandbox
(`HW3_FEATURE_CACHE`), so a notebook's `cache_features` reads them instead of running BERT. A notebook that
tokenizes differently simply misses the cache and computes its own features: scores never depend on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hw3.atomic import write_text_atomic

PER_LABEL = {"train": 8, "test": 4}  # reviews in each label's folder: 16 training reviews (11 train, 5 valid), 8 test


def layout() -> dict[tuple[str, str], list[tuple[str, Path]]]:
    """{(split, label folder): [(file name, the embedded sample's file whose text it holds)]}, in reading order.

    The texts are the shortest reviews of the sample. In train/, the files that the homework's split (its seed)
    puts in the validation set hold reviews of the *other* label: the model learns the training reviews, so its
    validation loss rises from the first epoch on, and the best epoch is the first. A training loop that saves
    another epoch's model, or records the training accuracy as the validation one, then shows (q4.3d); no other
    check depends on how well the model learns.
    """
    from hw3.sentiment.data import LABELS, SEED, review_files, sample_root, split_train_valid

    def shortest(split: str, label: str, count: int) -> list[Path]:
        return sorted(review_files(sample_root() / split / label), key=lambda f: (f.stat().st_size, f.name))[:count]

    out: dict[tuple[str, str], list[tuple[str, Path]]] = {
        ("test", label): [(f.name, f) for f in sorted(shortest("test", label, PER_LABEL["test"]))] for label in LABELS}
    slots = [(label, i) for label in LABELS for i in range(PER_LABEL["train"])]  # read_split's order
    _, valid = split_train_valid(slots, seed=SEED)
    pools = {label: iter(shortest("train", label, 2 * PER_LABEL["train"])) for label in LABELS}
    other = dict(zip(LABELS, reversed(list(LABELS))))
    for label, i in slots:
        source = next(pools[other[label] if (label, i) in valid else label])
        out.setdefault(("train", label), []).append((f"{i:02d}_0.txt", source))
    return out


def grading_splits():
    """The Splits a graded notebook's `load_splits` gives (train/valid cut with the homework's seed)."""
    from hw3.sentiment.data import LABELS, Review, Splits, read_review, split_train_valid

    files = layout()

    def read(split: str) -> list[Review]:
        return [Review(read_review(source), label) for name, label in LABELS.items() for _, source in files[split, name]]

    train, valid = split_train_valid(read("train"))
    return Splits(train, valid, read("test"))


def write_corpus(package: Path) -> None:
    """Replace the embedded sample of the hw3 copy at `package` (a grading build's hw3/) by the grading corpus."""
    root = package / "sentiment" / "corpus" / "aclImdb"
    shutil.rmtree(root)
    for (split, label), files in layout().items():
        folder = root / split / label
        folder.mkdir(parents=True)
        for name, source in files:
            shutil.copyfile(source, folder / name)


def default_folder() -> Path:
    """Where the batch keeps the corpus features: $HW3_CACHE/grading-features (~/.cache/hw3 by default)."""
    from hw3.sentiment.data import cache_dir

    return cache_dir() / "grading-features"


def corpus_ids() -> list[list[int]]:
    """The token ids of every review of the grading corpus, encoded the way the Q4 notebook encodes them."""
    from hw3.sentiment.encoders import resolve_encoder
    from hw3.sentiment.tokenizer import encode_batch, load_tokenizer

    tokenizer = load_tokenizer(resolve_encoder("bundled"))
    texts = [review.text for part in grading_splits() for review in part]
    return encode_batch(tokenizer, texts, tokenizer.model_max_length)


def prefill(folder: Path | None = None) -> Path:
    """Fill `folder` (default: `default_folder()`) with the corpus features, once; world-readable for the sandbox."""
    import torch

    from hw3.sentiment.encoders import load_bert, resolve_encoder
    from hw3.sentiment.features import fill_cache

    folder = Path(folder or default_folder())
    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        fill_cache(load_bert(resolve_encoder("bundled")), corpus_ids(), folder)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


STAMP = "prefilled.json"


def _inputs_digest() -> str:
    """A digest of what the corpus features depend on, read without torch: the corpus reviews, hw3's sentiment
    code, torch's version and the bundled encoder's files (name, size, modification time)."""
    import hashlib
    import importlib.metadata

    from hw3.sentiment.encoders import bundled_path

    digest = hashlib.sha256(importlib.metadata.version("torch").encode())
    sentiment = Path(__file__).resolve().parents[2] / "sentiment"
    sources = [source for files in layout().values() for _, source in files] + sorted(sentiment.glob("*.py"))
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for path in sorted(bundled_path().rglob("*")):
        info = path.stat()
        digest.update(f"{path.name} {info.st_size} {info.st_mtime_ns}".encode())
    return digest.hexdigest()


def _contents(folder: Path) -> dict[str, int]:
    """{relative path: size} of the files under `folder`, the stamp left out."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != STAMP}


def _prefilled(folder: Path, inputs: str) -> bool:
    """Whether `folder` holds the features of these `inputs` (its stamp names them and every file it lists)."""
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
        return stamp == {"inputs": inputs, "files": _contents(folder)}
    except (OSError, ValueError):
        return False


def prefill_apart(folder: Path | None = None) -> Path:
    """`prefill(folder)` in a Python process of its own (`python -m hw3.grading.kernel.corpus`), with this hw3 first
    on its path, unless `folder` already holds them (its stamp: the same inputs, every file still there, so a batch
    after the first starts no torch at all); RuntimeError with its last line of stderr when it fails."""
    folder = Path(folder or default_folder())
    inputs = _inputs_digest()
    if _prefilled(folder, inputs):
        return folder
    package_root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "hw3.grading.kernel.corpus", str(folder)], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1])
    write_text_atomic(folder / STAMP, json.dumps({"inputs": inputs, "files": _contents(folder)}))
    (folder / STAMP).chmod(0o644)
    return folder


if __name__ == "__main__":  # `python -m hw3.grading.kernel.corpus FOLDER`: prefill_apart's process
    prefill(Path(sys.argv[1]))
