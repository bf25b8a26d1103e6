"""The word-cached BERT-uncased tokenization gives exactly the Rust tokenizer's ids, on any text."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw3.sentiment.data import read_split
from hw3.sentiment.tokenizer import _encode_rust, encode_batch
from hw3.sentiment.wordpiece import cached_wordpiece, is_bert_uncased, is_plain

SHARED_IMDB_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "imdb-sample" / "aclImdb"

# Words and characters that exercise every branch: punctuation, digits, case, accents, CJK, emoji, control
# and zero-width characters, non-breaking and ideographic spaces, special-token strings, >100-char words.
PARTS = ["movie", "MOVIE", "Mo", "it's", "isn't", "don’t", "e-mail", "x_y", "$5", "3.14", "#1", "@you", "(ok)", "<br />",
         "unaffable", "naïve", "Café", "ÉCOLE", "日本語", "😀", "ß", "İ", "K", "\x07", "\x0b", "\x1c", "\x7f", "\u200b",
         "\u00a0", "\u3000", "[SEP]", "[sep]", "x[CLS]y", "[MASK", "[UNK]", "z" * 101, "ab" * 40, "\t", "\n", "\r\n", "  ", ""]
texts = st.lists(st.sampled_from(PARTS) | st.text(max_size=8), max_size=40).map(lambda ws: "".join(
    w + s for w, s in zip(ws, [" ", "", "\n", ".", " ", ","] * 10)))


@pytest.fixture(scope="module")
def tok(bundled_tokenizer):
    return copy.deepcopy(bundled_tokenizer)  # a fresh word cache, not shared with other tests


def test_the_bundled_tokenizer_has_the_cached_path(tok):
    assert is_bert_uncased(tok) and cached_wordpiece(tok) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(texts, min_size=1, max_size=4), max_length=st.sampled_from([3, 8, 40, 512]))
def test_cached_ids_equal_the_rust_tokenizers_on_any_text(tok, batch, max_length):
    assert encode_batch(tok, batch, max_length) == _encode_rust(tok, batch, max_length, chunk=2048)


@pytest.mark.parametrize("max_length", [512, 20])
def test_cached_ids_equal_the_rust_tokenizers_on_long_texts_read_from_a_prefix(tok, max_length):
    long = ["great " * 5000, "a" * 30_000 + " end", "naïve " * 4000, ("word " * 50 + "[SEP] ") * 200, "x " * 9 + "y" * 500]
    assert encode_batch(tok, long, max_length) == _encode_rust(tok, long, max_length, chunk=2048)


def test_cached_ids_equal_the_rust_tokenizers_on_the_real_imdb_sample(tok):
    if not (SHARED_IMDB_SAMPLE / "train").is_dir():
        pytest.skip(f"the shared IMDB sample is not at {SHARED_IMDB_SAMPLE}")
    reviews = [r.text for split in ("train", "test") for r in read_split(SHARED_IMDB_SAMPLE, split)]
    assert len(reviews) == 4000
    assert sum(map(is_plain, reviews)) < len(reviews)  # both paths are exercised
    assert encode_batch(tok, reviews) == _encode_rust(tok, reviews, 512, chunk=2048)


def test_a_tokenizer_that_is_not_bert_uncased_takes_the_rust_path(bundled_tokenizer):
    from tokenizers import normalizers

    cased = copy.deepcopy(bundled_tokenizer)
    cased.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    assert not is_bert_uncased(cased) and cached_wordpiece(cased) is None
    text = ["Hello WORLD, It's naïve"]
    assert encode_batch(cased, text) == _encode_rust(cased, text, 512, chunk=2048) != encode_batch(bundled_tokenizer, text)


def test_a_tokenizer_that_disagrees_on_the_probe_takes_the_rust_path(bundled_tokenizer):
    from tokenizers.processors import TemplateProcessing

    no_sep = copy.deepcopy(bundled_tokenizer)
    no_sep.backend_tokenizer.post_processor = TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 101)])
    assert is_bert_uncased(no_sep) and cached_wordpiece(no_sep) is None
    assert encode_batch(no_sep, ["a fine movie"])[0][-1] != no_sep.sep_token_id


@pytest.mark.parametrize("text, plain", [("It's a <br /> film!\n\tOK\r", True), ("naïve", False), ("a\x07b", False),
                                         ("a\x1cb", False), ("a\x7fb", False), ("", True)])
def test_is_plain(text, plain):
    assert is_plain(text) is plain
