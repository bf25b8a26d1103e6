"""Q4 data: IMDB reviews in aclImdb layout, the embedded sample corpus, and the train/valid split.

Sources (`--data`):
- ``sample``: 400 reviews written for this project, shipped inside the package (offline default);
- ``imdb``: the full Large Movie Review Dataset, downloaded once and cached (``~/.cache/hw3``);
- a folder in aclImdb layout: ``DIR/{train,test}/{pos,neg}/*.txt`` (or ``DIR/aclImdb/...``);
- ``auto``: cached IMDB, else IMDB when the download server is reachable, else the sample.
"""

from __future__ import annotations

import os
import random
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import HW3Error
from .encoders import reachable

LABELS = {"neg": 0, "pos": 1}
SPLITS = ("train", "test")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SEED = 1234
VALID_FRACTION = 0.3
MAX_REVIEW_BYTES = 10 << 20  # IMDB's longest review is 14 kB; only the first 512 tokens are used anyway


class Review(NamedTuple):
    """One labelled review: label is LABELS[folder] (neg 0, pos 1)."""

    text: str
    label: int


class Splits(NamedTuple):
    """The three datasets of the homework, each a list of Review."""

    train: list[Review]
    valid: list[Review]
    test: list[Review]


@dataclass(frozen=True)
class DataSource:
    """A resolved `--data` choice: `name` for metrics, `root` the aclImdb folder."""

    name: str
    root: Path
    reason: str = ""


def sample_root() -> Path:
    """The embedded sample corpus (aclImdb layout) inside the installed package."""
    return Path(__file__).parent / "corpus" / "aclImdb"


def cache_dir() -> Path:
    """Where the IMDB download is kept (HW3_CACHE or ~/.cache/hw3)."""
    return Path(os.environ.get("HW3_CACHE", Path.home() / ".cache" / "hw3")).expanduser()


def _aclimdb_root(path: Path) -> Path:
    """Accept DIR or DIR/aclImdb; return the folder that holds train/ and test/."""
    candidates = [path / "aclImdb", path] if (path / "aclImdb").is_dir() else [path]
    for candidate in candidates:
        if all((candidate / s).is_dir() for s in SPLITS):
            return candidate
    where = candidates[0]
    missing = [s for s in SPLITS if not (where / s).is_dir()]
    raise HW3Error(f"{where} is not in aclImdb layout (missing {', '.join(m + '/' for m in missing)}): it needs train/ and test/, each with pos/ and neg/")


def download_imdb(dest: Path | None = None, url: str = IMDB_URL) -> Path:
    """Download and unpack aclImdb into dest (default cache_dir()); returns the aclImdb folder.

    The archive is written to a .part file and renamed when complete, then unpacked into a temporary
    folder and renamed, so an interrupted download never leaves a half dataset behind.
    """
    from tqdm.auto import tqdm

    dest = Path(dest or cache_dir())
    final = dest / "aclImdb"
    if final.is_dir():
        return final
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "aclImdb_v1.tar.gz"
    if not archive.is_file():
        part = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length", 0)) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="aclImdb_v1.tar.gz") as bar:
                    while block := response.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise HW3Error(f"cannot download IMDB from {url} ({exc}): check the network, or use --data sample or --data DIR") from None
        part.replace(archive)
    staging = dest / "aclImdb.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError) as exc:
        archive.unlink(missing_ok=True)
        raise HW3Error(f"the IMDB archive was damaged ({exc}): run again to download it afresh") from None
    if not (staging / "aclImdb").is_dir():
        archive.unlink(missing_ok=True)
        raise HW3Error(f"the archive from {url} has no aclImdb folder: run again to download it afresh, or use --data DIR")
    (staging / "aclImdb").rename(final)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def _gpu_available() -> bool:
    """Whether torch sees a GPU (torch is imported here only: the grader reads the corpus without loading it)."""
    import torch

    return torch.cuda.is_available()


def resolve_data(data: str = "auto", gpu: bool | None = None) -> DataSource:
    """Map 'auto' | 'imdb' | 'sample' | DIR to a DataSource (downloading IMDB when asked).

    'auto' takes full IMDB only where a GPU will run BERT (gpu; default: whether torch sees one): on a
    CPU-only runtime its 50,000 reviews take hours, so it takes the embedded sample and says how to force IMDB.
    """
    cached = cache_dir() / "aclImdb"
    if data == "sample":
        return DataSource("sample", sample_root(), "embedded sample corpus")
    if data == "imdb":
        return DataSource("imdb", download_imdb(), "full IMDB")
    if data == "auto":
        if not cached.is_dir() and not reachable(IMDB_URL):
            return DataSource("sample", sample_root(), "IMDB is not reachable, so the embedded sample corpus")
        if not (_gpu_available() if gpu is None else gpu):
            return DataSource("sample", sample_root(), f"no GPU: full IMDB would take hours on {os.cpu_count()} CPU cores, "
                              "so the embedded sample; use --data imdb (resolve_data('imdb') in the notebook) to force it")
        if cached.is_dir():
            return DataSource("imdb", cached, "full IMDB from the cache")
        return DataSource("imdb", download_imdb(), "full IMDB, downloaded")
    path = Path(data).expanduser()
    if not path.exists():
        raise HW3Error(f"data folder {path} does not exist: use --data sample, --data imdb, or a folder in aclImdb layout")
    if not path.is_dir():
        raise HW3Error(f"--data {path} is a file, not a folder: give a folder in aclImdb layout (train/ and test/, each with pos/ and neg/)")
    path = path.resolve()
    return DataSource(str(path), _aclimdb_root(path), "local folder")


def read_review(path: Path) -> str:
    """The text of one review file (UTF-8, BOM allowed); HW3Error naming the file when it is unreadable, not UTF-8, empty or huge."""
    try:
        size = path.stat().st_size
        if size > MAX_REVIEW_BYTES:
            raise HW3Error(f"{path} is {size / 2**20:.0f} MiB, too big for a review (at most {MAX_REVIEW_BYTES >> 20} MiB): "
                           f"move it out of the data folder")
        data = path.read_bytes()
    except OSError as exc:
        raise HW3Error(f"cannot read {path} ({exc.strerror or exc}): fix its permissions or delete it") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HW3Error(f"{path} is not UTF-8 text (byte {exc.start}): re-save it as UTF-8 or delete it") from None
    if not text.strip():
        raise HW3Error(f"{path} is an empty review: delete it or write the review into it")
    return text


def review_files(folder: Path) -> list[Path]:
    """The *.txt files of one pos/ or neg/ folder, sorted (sub-folders named *.txt are skipped)."""
    try:
        return sorted(f for f in folder.glob("*.txt") if f.is_file())
    except OSError as exc:
        raise HW3Error(f"cannot list {folder} ({exc.strerror or exc}): fix its permissions") from None


def read_split(root: Path, split: str) -> list[Review]:
    """All reviews of root/split/{neg,pos}/*.txt, in a stable (sorted) order."""
    reviews = []
    for label_name, label in LABELS.items():
        folder = root / split / label_name
        if not folder.is_dir():
            raise HW3Error(f"{folder} is missing: an aclImdb {split}/ folder needs pos/ and neg/ subfolders")
        reviews.extend(Review(read_review(f), label) for f in review_files(folder))
    if not reviews:
        raise HW3Error(f"{root / split} has no .txt reviews: put review files in its pos/ and neg/ folders")
    if len({r.label for r in reviews}) < 2:
        raise HW3Error(f"{root / split} has reviews of one class only: it needs both pos/ and neg/ reviews")
    return reviews


def split_train_valid(reviews: list[Review], valid_fraction: float = VALID_FRACTION, seed: int = SEED) -> tuple[list[Review], list[Review]]:
    """Shuffle with a fixed seed and cut: (train, valid), valid being `valid_fraction` of the examples."""
    if not 0 < valid_fraction < 1:
        raise HW3Error(f"the validation fraction must be between 0 and 1, got {valid_fraction}")
    order = list(range(len(reviews)))
    random.Random(seed).shuffle(order)
    n_train = round(len(reviews) * (1 - valid_fraction))
    return [reviews[i] for i in order[:n_train]], [reviews[i] for i in order[n_train:]]


def load_splits(data: str | DataSource = "sample", seed: int = SEED, valid_fraction: float = VALID_FRACTION) -> Splits:
    """Train/valid/test reviews from a data source; valid is `valid_fraction` of the original train set."""
    source = data if isinstance(data, DataSource) else resolve_data(data)
    train, valid = split_train_valid(read_split(source.root, "train"), valid_fraction, seed)
    return Splits(train, valid, read_split(source.root, "test"))
