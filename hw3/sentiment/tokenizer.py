"""Q4 tokenization: bert-base-uncased's WordPiece tokenizer, special tokens, and cutting to 512.

transformers 5 removed `max_model_input_sizes`; the limit comes from `model_max_length` (512 for BERT).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HW3Error
from .encoders import AUTO, EncoderSpec, resolve_encoder
from .wordpiece import PREFIX_CHARS_PER_TOKEN, encode_cached

BERT_MAX_LENGTH = 512


def load_tokenizer(encoder: str | EncoderSpec = AUTO):
    """The encoder's tokenizer (a transformers BertTokenizer backed by the Rust `tokenizers` library)."""
    from transformers import BertTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    spec = encoder if isinstance(encoder, EncoderSpec) else resolve_encoder(encoder)
    try:
        return BertTokenizer.from_pretrained(spec.location, local_files_only=spec.local_only)
    except OSError as exc:
        raise HW3Error(f"cannot load the tokenizer of {spec.name} ({str(exc).splitlines()[0][:160]}): use --encoder bundled") from None


def check_vocabulary(tokenizer, bert) -> None:
    """HW3Error when the tokenizer can produce ids the encoder's embedding table does not have."""
    if len(tokenizer) > bert.config.vocab_size:
        raise HW3Error(f"the tokenizer's vocabulary has {len(tokenizer)} tokens but the encoder's only {bert.config.vocab_size}: "
                       "give an encoder folder whose tokenizer files match its weights")


def max_input_length(tokenizer) -> int:
    """Longest input the model takes, special tokens included (512 for BERT)."""
    length = int(getattr(tokenizer, "model_max_length", BERT_MAX_LENGTH))
    return length if 0 < length <= 100_000 else BERT_MAX_LENGTH


MIN_LENGTH = 3  # [CLS], one token and [SEP]


def check_max_length(max_length: int, limit: int | None = None) -> None:
    """HW3Error unless max_length leaves room for [CLS], one token and [SEP] (and is at most `limit`, if given)."""
    if max_length < MIN_LENGTH or (limit is not None and max_length > limit):
        bound = f"between {MIN_LENGTH} and {limit}" if limit is not None else f"at least {MIN_LENGTH}"
        raise HW3Error(f"--max-length must be {bound} (room for [CLS], one token and [SEP]), got {max_length}")


def tokenize_and_cut(tokenizer, sentence: str, max_length: int = BERT_MAX_LENGTH) -> list[str]:
    """WordPiece tokens of `sentence`, cut to max_length − 2 so [CLS] and [SEP] still fit."""
    check_max_length(max_length)
    return tokenizer.tokenize(sentence)[: max_length - 2]


def encode(tokenizer, sentence: str, max_length: int = BERT_MAX_LENGTH) -> list[int]:
    """[CLS] + ids(tokenize_and_cut(sentence)) + [SEP], one example, the homework's way."""
    ids = tokenizer.convert_tokens_to_ids(tokenize_and_cut(tokenizer, sentence, max_length))
    return [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]


# On the Rust path, a review longer than max_length * PREFIX_CHARS_PER_TOKEN characters is tokenized from a
# prefix of that length when the prefix provably gives the same ids: its complete words alone hold
# max_length - 2 tokens (the cut word can give at most MAX_WORD_TOKENS: BERT's WordPiece maps a word over 100
# characters to [UNK]).
MAX_WORD_TOKENS = 100


def encode_batch(tokenizer, texts: Sequence[str], max_length: int = BERT_MAX_LENGTH, chunk: int = 2048) -> list[list[int]]:
    """`encode` for many texts at once, identical ids, fast.

    Returns one list of ids per text, each at most max_length long (special tokens included). BERT-uncased
    tokenizers take the exact word-cached path of `wordpiece`; others the Rust tokenizer in parallel batches.
    """
    check_max_length(max_length)
    cached = encode_cached(tokenizer, texts, max_length)
    return cached if cached is not None else _encode_rust(tokenizer, texts, max_length, chunk)


def _encode_rust(tokenizer, texts: Sequence[str], max_length: int, chunk: int) -> list[list[int]]:
    """encode_batch with the Rust tokenizer. It builds every token of a text before truncating (a
    100k-character review is ~20k tokens), so long texts are tokenized from a prefix when that provably
    gives the same ids: time and memory stay bounded."""
    limit = max_length * PREFIX_CHARS_PER_TOKEN
    ids = _encode_truncated(tokenizer, [t[:limit] for t in texts], max_length, chunk)
    long = [i for i, t in enumerate(texts) if len(t) > limit]
    if long:
        counts = tokenizer([texts[i][:limit] for i in long], add_special_tokens=False)["input_ids"]
        unsure = [i for i, c in zip(long, counts) if len(c) < max_length - 2 + MAX_WORD_TOKENS]
        for i, full in zip(unsure, _encode_truncated(tokenizer, [texts[i] for i in unsure], max_length, chunk)):
            ids[i] = full
    return ids


def _encode_truncated(tokenizer, texts: Sequence[str], max_length: int, chunk: int) -> list[list[int]]:
    """[CLS] + ids + [SEP] of each whole text, truncated to max_length, in chunks of `chunk` texts."""
    out: list[list[int]] = []
    for start in range(0, len(texts), chunk):
        enc = tokenizer(list(texts[start : start + chunk]), add_special_tokens=True, truncation=True, max_length=max_length)
        out.extend(enc["input_ids"])
    return out
