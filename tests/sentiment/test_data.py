"""Q4 data: the embedded sample corpus, the 70/30 split, aclImdb folders and their errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hw3.sentiment.data import (
    LABELS,
    Review,
    load_splits,
    read_split,
    resolve_data,
    sample_root,
    split_train_valid,
)
from hw3.errors import HW3Error

SHARED_IMDB_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "imdb-sample" / "aclImdb"


def write_aclimdb(root: Path, counts: dict[tuple[str, str], int]) -> Path:
    """root/aclImdb/{split}/{label}/{i}_{rating}.txt with distinct texts; returns root/aclImdb."""
    base = root / "aclImdb"
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = base / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(counts.get((split, label), 0)):
                (folder / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(f"{split} {label} review number {i} é", encoding="utf-8")
    return base


def one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message
    return message


# --- the embedded sample ----------------------------------------------------------------------------------------

def test_labels():
    assert LABELS == {"neg": 0, "pos": 1}


def test_sample_has_hundreds_of_distinct_balanced_reviews():
    train, test = read_split(sample_root(), "train"), read_split(sample_root(), "test")
    texts = [r.text for r in train + test]
    assert len(set(texts)) >= 300
    assert len(set(texts)) == len(texts)
    for part in (train, test):
        counts = Counter(r.label for r in part)
        assert set(counts) == {0, 1} and counts[0] == counts[1]
    assert not {r.text for r in train} & {r.text for r in test}


def test_sample_reviews_are_in_the_folder_of_their_label():
    root = sample_root()
    for split in ("train", "test"):
        by_text = {r.text: r.label for r in read_split(root, split)}
        for name, label in LABELS.items():
            for f in (root / split / name).glob("*.txt"):
                assert by_text[f.read_text(encoding="utf-8")] == label


def test_load_splits_sample_is_70_30_and_deterministic():
    splits = load_splits("sample")
    n_train = len(read_split(sample_root(), "train"))
    assert len(splits.train) == round(0.7 * n_train) and len(splits.valid) == n_train - len(splits.train)
    assert len(splits.test) == len(read_split(sample_root(), "test"))
    assert load_splits("sample") == splits
    assert load_splits("sample", seed=1234) == splits
    other = load_splits("sample", seed=99)
    assert other.train != splits.train and other.test == splits.test
    assert Counter(other.train + other.valid) == Counter(splits.train + splits.valid)
    assert not set(splits.train) & set(splits.valid)


def test_resolve_data_sample():
    source = resolve_data("sample")
    assert source.name == "sample" and source.root == sample_root()


# --- split arithmetic ---------------------------------------------------------------------------------------------

def test_full_imdb_sized_split_is_17500_7500():
    reviews = [Review(f"review {i}", i % 2) for i in range(25_000)]
    train, valid = split_train_valid(reviews)
    assert (len(train), len(valid)) == (17_500, 7_500)
    assert sorted(train + valid) == sorted(reviews)
    assert split_train_valid(reviews) == (train, valid)
    assert split_train_valid(reviews, seed=7)[0] != train
    assert 0.45 < sum(r.label for r in valid) / len(valid) < 0.55  # a shuffle, not a cut of the sorted list


@pytest.mark.parametrize("n", [1, 2, 3, 10, 99, 401])
def test_split_sizes_round_to_nearest(n):
    reviews = [Review(str(i), i % 2) for i in range(n)]
    train, valid = split_train_valid(reviews)
    assert len(train) == round(0.7 * n) and len(train) + len(valid) == n


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_split_refuses_a_bad_fraction(fraction):
    with pytest.raises(HW3Error, match="between 0 and 1") as info:
        split_train_valid([Review("a", 0), Review("b", 1)], fraction)
    one_line_error(info)


# --- aclImdb folders --------------------------------------------------------------------------------------------

def test_reads_a_folder_in_aclimdb_layout(tmp_path):
    base = write_aclimdb(tmp_path, {("train", "pos"): 7, ("train", "neg"): 3, ("test", "pos"): 2, ("test", "neg"): 4})
    for given in (base, tmp_path):  # DIR/aclImdb and DIR both work
        splits = load_splits(str(given))
        assert len(splits.train) + len(splits.valid) == 10 and len(splits.valid) == 3
        assert Counter(r.label for r in splits.train + splits.valid) == {1: 7, 0: 3}
        assert Counter(r.label for r in splits.test) == {1: 2, 0: 4}
        for r in splits.train + splits.valid + splits.test:
            assert r.text.split()[1] == ("pos" if r.label == 1 else "neg") and r.text.endswith("é")
    # read_split order is stable: neg files sorted by name, then pos
    test = read_split(base, "test")
    assert [r.label for r in test] == [0, 0, 0, 0, 1, 1]
    assert [r.text for r in test[:4]] == [f"test neg review number {i} é" for i in range(4)]


def test_resolve_data_of_a_folder_names_it(tmp_path):
    base = write_aclimdb(tmp_path, {(s, l): 1 for s in ("train", "test") for l in ("pos", "neg")})
    source = resolve_data(str(tmp_path))
    assert source.root == base and source.name == str(tmp_path)


@pytest.fixture(scope="module")
def shared_sample() -> Path:
    if not (SHARED_IMDB_SAMPLE / "train").is_dir():
        pytest.skip(f"the shared IMDB sample is not at {SHARED_IMDB_SAMPLE}")
    return SHARED_IMDB_SAMPLE


def test_shared_real_imdb_sample(shared_sample):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            files = list((shared_sample / split / label).glob("*.txt"))
            assert len(files) == 1000
            ratings = {int(f.stem.split("_")[1]) for f in files}
            assert ratings <= (set(range(7, 11)) if label == "pos" else set(range(1, 5)))
    splits = load_splits(str(shared_sample))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (1400, 600, 2000)
    assert Counter(r.label for r in splits.test) == {0: 1000, 1: 1000}
    assert 250 < sum(r.label for r in splits.valid) < 350


# --- bad inputs ---------------------------------------------------------------------------------------------------

def test_missing_data_folder(tmp_path):
    with pytest.raises(HW3Error, match="does not exist") as info:
        load_splits(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in one_line_error(info)


def test_folder_without_test_split(tmp_path):
    base = write_aclimdb(tmp_path, {("train", "pos"): 2, ("train", "neg"): 2})
    import shutil

    shutil.rmtree(base / "test")
    with pytest.raises(HW3Error, match="test/") as info:
        load_splits(str(base))
    assert "aclImdb layout" in one_line_error(info)


def test_folder_without_a_label_subfolder(tmp_path):
    base = write_aclimdb(tmp_path, {("train", "pos"): 2, ("train", "neg"): 2, ("test", "pos"): 1, ("test", "neg"): 1})
    (base / "test" / "neg" / "0_2.txt").unlink()
    (base / "test" / "neg").rmdir()
    with pytest.raises(HW3Error, match="missing") as info:
        load_splits(str(base))
    assert "neg" in one_line_error(info)


def test_empty_review_file(tmp_path):
    base = write_aclimdb(tmp_path, {(s, l): 2 for s in ("train", "test") for l in ("pos", "neg")})
    (base / "train" / "pos" / "1_8.txt").write_text("  \n\t")
    with pytest.raises(HW3Error, match="empty") as info:
        load_splits(str(base))
    assert "1_8.txt" in one_line_error(info)


def test_non_utf8_review_file(tmp_path):
    base = write_aclimdb(tmp_path, {(s, l): 2 for s in ("train", "test") for l in ("pos", "neg")})
    (base / "test" / "neg" / "0_2.txt").write_bytes(b"caf\xe9 latin-1 \xff\xfe")
    with pytest.raises(HW3Error, match="UTF-8") as info:
        load_splits(str(base))
    assert "0_2.txt" in one_line_error(info)


@pytest.mark.parametrize("split", ["train", "test"])
def test_one_class_only_split(tmp_path, split):
    counts = {(s, l): 2 for s in ("train", "test") for l in ("pos", "neg")}
    counts[(split, "neg")] = 0
    base = write_aclimdb(tmp_path, counts)
    with pytest.raises(HW3Error, match="one class") as info:
        load_splits(str(base))
    assert split in one_line_error(info)


def test_split_without_any_review(tmp_path):
    base = write_aclimdb(tmp_path, {("test", "pos"): 1, ("test", "neg"): 1})
    with pytest.raises(HW3Error, match="no .txt reviews") as info:
        load_splits(str(base))
    one_line_error(info)


def test_auto_without_a_gpu_takes_the_sample_and_says_how_to_force_imdb(monkeypatch, tmp_path):
    from hw3.sentiment import data

    (tmp_path / "aclImdb").mkdir()  # even a cached full IMDB would take hours on a CPU
    monkeypatch.setenv("HW3_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "reachable", lambda url, timeout=3.0: True)
    source = resolve_data("auto", gpu=False)
    assert source.name == "sample" and "no GPU" in source.reason and "--data imdb" in source.reason
    assert resolve_data("auto", gpu=True).name == "imdb"


def test_auto_offline_takes_the_sample_because_imdb_is_unreachable(monkeypatch, tmp_path):
    from hw3.sentiment import data

    monkeypatch.setenv("HW3_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "reachable", lambda url, timeout=3.0: False)
    for gpu in (False, True):
        assert resolve_data("auto", gpu=gpu).reason == "IMDB is not reachable, so the embedded sample corpus"
