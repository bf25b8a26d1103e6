"""Exact BERT-uncased tokenization with a per-word cache, several times faster than the Rust tokenizer.

BERT-uncased tokenization never looks across whitespace: each whitespace-separated chunk of a text is
normalized, split at punctuation and WordPiece-d on its own. For a chunk of printable ASCII the steps
reduce to: lowercase; split into runs of letters and digits and single punctuation characters (every
printable non-alphanumeric ASCII character is punctuation to BERT); WordPiece each piece. Reviews repeat
the same few thousand words, so each piece's ids are computed once, by the tokenizer's own WordPiece
model, and looked up afterwards. Chunks with other characters, or holding a special-token string such as
"[SEP]", are tokenized by the full tokenizer (and cached too). The fast path is only used for tokenizers
configured as BERT-uncased that agree with it on a probe sentence; tests compare both on whole corpora.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Sequence
from contextlib import contextmanager
from itertools import chain
from weakref import WeakKeyDictionary

PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r"
PIECES = re.compile(r"[a-z0-9]+|[^a-z0-9 \t\n\r]")
SPACES = re.compile(r"[ \t\n\r]+")
# Characters kept per wanted token when reading a long text's prefix (words of more than 100 characters
# become one [UNK]): a prefix nearly always holds enough complete words; the whole text is read otherwise.
PREFIX_CHARS_PER_TOKEN = 20
PROBE = ("Hello WORLD, how ARE you?\tIt's 3 o'clock: #1 (100%) -- e-mail_me@x.org ~ {ok} [it] \"quoted\"\n<br />z "
         "Café naïve – “fancy” quotes… 東京 [SEP] x[CLS]y \x01ctrl\x7f\u00a0nbsp")
_ENCODERS: WeakKeyDictionary = WeakKeyDictionary()


class CachedWordPiece:
    """encode(text, budget) -> the first `budget` BERT-uncased ids of a text ([CLS]/[SEP] not included).

    Built from a transformers tokenizer backed by the `tokenizers` library (`tokenizer.backend_tokenizer`).
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.model = tokenizer.backend_tokenizer.model
        self.specials = sorted({t.lower() for t in tokenizer.all_special_tokens}
                               | {t.content.lower() for t in tokenizer.backend_tokenizer.get_added_tokens_decoder().values()})
        self.words: dict[str, list[int]] = {}  # lowercase ASCII word or punctuation character -> ids
        self.plain: dict[str, list[int]] = {}  # lowercase plain-ASCII chunk -> ids
        self.other: dict[str, list[int]] = {}  # chunk of a text with other characters -> ids

    def encode(self, text: str, budget: int) -> list[int]:
        """The first `budget` ids of `text`, from a prefix when its complete chunks hold enough tokens."""
        limit = budget * PREFIX_CHARS_PER_TOKEN
        if len(text) > limit:
            ids = self._ids(text[:limit], cut=True)
            if len(ids) >= budget:
                return ids[:budget]
        return self._ids(text)[:budget]

    def _ids(self, text: str, cut: bool = False) -> list[int]:
        """All ids of `text`; with cut=True, of its complete chunks only (text is a prefix, its end may be cut)."""
        lowered = text.lower()
        if is_plain(text) and not self._has_special(lowered):
            chunks, cache, fill = lowered.split(), self.plain, self._plain_ids
        else:
            chunks, cache, fill = SPACES.split(text), self.other, self._other_ids
        if cut:
            chunks = chunks[:-1]
        try:
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        except KeyError:
            for chunk in set(chunks).difference(cache):
                cache[chunk] = fill(chunk)
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def _plain_ids(self, chunk: str) -> list[int]:
        """Ids of a lowercase plain-ASCII chunk: the WordPiece ids of its pieces (words cached)."""
        words, ids = self.words, []
        for piece in PIECES.findall(chunk):
            piece_ids = words.get(piece)
            if piece_ids is None:
                piece_ids = words[piece] = [t.id for t in self.model.tokenize(piece)]
            ids += piece_ids
        return ids

    def _other_ids(self, chunk: str) -> list[int]:
        """Ids of any whitespace-free chunk: `_plain_ids` when it is plain ASCII without special-token strings,
        else the full tokenizer's."""
        lowered = chunk.lower()
        if is_plain(chunk) and not self._has_special(lowered):
            ids = self.plain.get(lowered)
            if ids is None:
                ids = self.plain[lowered] = self._plain_ids(lowered)
            return ids
        return self.tokenizer(chunk, add_special_tokens=False)["input_ids"]

    def _has_special(self, lowered: str) -> bool:
        """True when a lowercased text holds a special-token string such as '[sep]' (those need the full tokenizer)."""
        return "[" in lowered and any(s in lowered for s in self.specials)


def is_plain(text: str) -> bool:
    """True when text holds only printable ASCII, tabs, newlines and carriage returns."""
    return text.isascii() and not text.encode("ascii").translate(None, PLAIN_BYTES)


def is_bert_uncased(tokenizer) -> bool:
    """True when the tokenizer's pipeline is BERT's uncased one (BertNormalizer lowercasing with clean_text,
    BertPreTokenizer, WordPiece with '##'), so that `CachedWordPiece` reproduces it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is None or backend.pre_tokenizer is None:
        return False
    normalizer = json.loads(backend.normalizer.__getstate__())
    pre = json.loads(backend.pre_tokenizer.__getstate__())
    return (normalizer.get("type") == "BertNormalizer" and normalizer.get("lowercase") is True
            and normalizer.get("clean_text") is True and pre.get("type") == "BertPreTokenizer"
            and type(backend.model).__name__ == "WordPiece" and backend.model.continuing_subword_prefix == "##")


def cached_wordpiece(tokenizer) -> CachedWordPiece | None:
    """The tokenizer's CachedWordPiece (one per tokenizer, kept while it lives), or None when its pipeline
    is not BERT-uncased or the cached path disagrees with it on a probe sentence."""
    if tokenizer in _ENCODERS:
        return _ENCODERS[tokenizer]
    encoder = CachedWordPiece(tokenizer) if is_bert_uncased(tokenizer) else None
    if encoder is not None:
        expected = tokenizer(PROBE)["input_ids"]
        if [tokenizer.cls_token_id, *encoder.encode(PROBE, len(expected)), tokenizer.sep_token_id] != expected:
            encoder = None
    _ENCODERS[tokenizer] = encoder
    return encoder


def encode_cached(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]] | None:
    """[CLS] + ids + [SEP] (at most max_length) of each text through the word cache, or None when the
    tokenizer has no cached path."""
    encoder = cached_wordpiece(tokenizer)
    if encoder is None:
        return None
    cls, sep, budget = tokenizer.cls_token_id, tokenizer.sep_token_id, max_length - 2
    with _no_gc():  # millions of small lists and no cycles: the cyclic collector would only add pauses
        return [[cls, *encoder.encode(text, budget), sep] for text in texts]


@contextmanager
def _no_gc():
    """Pause Python's cyclic garbage collector (if it was on) for the duration."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
