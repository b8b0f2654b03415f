"""Vocab: the sorted characters of a text <-> integer ids.

Texts are handled a block of characters at a time as arrays of code points, so building the
vocabulary of a 100 MB corpus and encoding it never holds more than the text and its ids.
"""

import unicodedata
from types import MappingProxyType

import numpy as np

_BLOCK = 1 << 20  # characters per block


def id_dtype(vocab_size):
    """The smallest unsigned integer type that holds every character id."""
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32)


def _code_points(text):
    """Yield (start, code points of text[start:start+block]) for consecutive blocks."""
    for start in range(0, len(text), _BLOCK):
        block = text[start:start + _BLOCK]
        if block.isascii():
            yield start, np.frombuffer(block.encode("ascii"), np.uint8)
        else:
            yield start, np.frombuffer(block.encode("utf-32-le", "surrogatepass"), np.uint32)


def _text(what, text):
    if not isinstance(text, str):
        raise ValueError(f"{what} takes text as a str, got {type(text).__name__}"
                         + (" (decode the bytes first)" if isinstance(text, (bytes, bytearray))
                            else ""))


def describe(chars, limit=10):
    """'a', 'b', 'c' and 4 more: the first ``limit`` of ``chars``, or all of them if one more
    would be left ("and 1 more" is as long as the one)."""
    if len(chars) <= limit + 1:
        limit = len(chars)
    listed = ", ".join(shown(c) for c in chars[:limit])
    return listed + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


def shown(text):
    """``repr(text)`` with its combining marks escaped: shown, they join the character before
    them (a quote, or another character)."""
    out = repr(text)
    for c in set(text):
        if unicodedata.category(c).startswith("M"):
            out = out.replace(c, c.encode("unicode_escape").decode("ascii"))
    return out


class UnknownCharacters(ValueError):
    """A text holds characters outside the vocabulary (``.chars``, sorted)."""

    def __init__(self, chars):
        self.chars = chars
        super().__init__(f"characters not in the vocabulary: {describe(chars)}")


class Vocab:
    """Characters sorted by code point, so the same text always gives the same ids."""

    @staticmethod
    def checked(vocab, where, model_size=None):
        """``vocab`` if it is a Vocab, and one of ``model_size`` characters where that is given
        (a model's: its ids stand for that vocabulary); else a ValueError, in one wording for
        every caller, ``where`` saying where the right one comes from."""
        if not isinstance(vocab, Vocab):
            raise ValueError(f"vocab must be a Vocab ({where}), got {type(vocab).__name__}")
        if model_size is not None and len(vocab) != model_size:
            raise ValueError(f"vocab has {len(vocab):,} characters and the model "
                             f"{model_size:,}: give the Vocab the model's ids stand for ({where})")
        return vocab

    def __init__(self, chars):
        if isinstance(chars, (bytes, bytearray)) or not hasattr(chars, "__iter__"):
            raise ValueError(f"a vocabulary is made of characters (a str or a list of them), "
                             f"got {type(chars).__name__}")
        chars = list(chars)
        if not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        if len(chars) < 2:
            raise ValueError(f"a vocabulary needs at least 2 distinct characters, got {len(chars)}")
        self._chars = tuple(chars)
        self._index = {ch: i for i, ch in enumerate(chars)}
        self._view = MappingProxyType(self._index)  # (``index``: made once, not per lookup)
        codes = np.array([ord(c) for c in chars], np.int64)
        # id of each code point up to the largest (-1: not in the vocabulary), at most 4.4 MB:
        # encoding looks ids up (a 100 MB text in ~0.5 s; a binary search took ~3 s)
        self._ids = np.full(int(codes.max()) + 1, -1, np.int32)
        self._ids[codes] = np.arange(len(chars), dtype=np.int32)

    @classmethod
    def from_text(cls, text):
        _text("from_text", text)
        codes = np.zeros(0, np.int64)
        for _, cps in _code_points(text):
            seen = np.flatnonzero(np.bincount(cps, minlength=256)) if cps.dtype == np.uint8 \
                else np.unique(cps)  # (an ASCII block counted, not sorted: ~10x faster)
            codes = np.union1d(codes, seen)
        return cls([chr(c) for c in codes])

    def __repr__(self):
        chars = self._chars
        more = f" and {len(chars) - 40:,} more" if len(chars) > 40 else ""
        return f"Vocab({len(chars)} characters: {shown(''.join(chars[:40]))}{more})"

    @property
    def chars(self):
        """The characters, id by id: a list of its own (appended to, it would have left the
        vocabulary's length, ids and lookups disagreeing)."""
        return list(self._chars)

    @property
    def index(self):
        """{character: id}, read-only (a character added to it would have been in ``index``
        and not in the vocabulary that ``encode`` reads)."""
        return self._view

    def __getstate__(self):  # (a mappingproxy does not pickle: made again when loaded)
        return {k: v for k, v in self.__dict__.items() if k != "_view"}

    def __setstate__(self, state):
        if "index" in state:  # (pickled before ``index`` was read-only)
            state["_index"] = state.pop("index")
        self.__dict__.update(state)
        self._view = MappingProxyType(self._index)

    def __len__(self):
        return len(self._chars)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self._chars == other._chars

    def __str__(self):
        return "".join(self._chars)

    def unknown(self, text):
        """The characters of ``text`` (a str) that are not in the vocabulary, sorted."""
        _text("unknown", text)
        return sorted(set(text) - self._index.keys())

    def encode(self, text, dtype=None):
        """text -> ids (default: the smallest unsigned dtype that fits).

        Raises UnknownCharacters (a ValueError) naming the characters not in the vocabulary.
        """
        return self._encoded(text, dtype, False)[0]

    def encode_known(self, text, dtype=None):
        """(ids, unknown): ``encode`` of text without the characters not in the vocabulary
        (fewer ids than characters), and those characters, sorted."""
        return self._encoded(text, dtype, True)

    def _encoded(self, text, dtype, skip):
        _text("encode", text)
        if dtype is None:
            dtype = id_dtype(len(self))
        else:
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise ValueError(f"encode: dtype {dtype!r} is not a NumPy type") from None
            if dtype.kind not in "iu" or np.iinfo(dtype).max < len(self) - 1:
                raise ValueError(f"encode: dtype {dtype} cannot hold the ids 0 to "
                                 f"{len(self) - 1} of this vocabulary")
        out = np.empty(len(text), dtype)
        ids, top = self._ids, len(self._ids) - 1
        end, unknown = 0, set()  # ids written; the code points left out
        for start, cps in _code_points(text):
            found = ids[np.minimum(cps, top)] if cps.size and cps.max() > top else ids[cps]
            bad = (found < 0) | (cps > top)
            if bad.any():
                if not skip:
                    raise UnknownCharacters([chr(c) for c in np.unique(cps[bad])])
                unknown.update(np.unique(cps[bad]).tolist())
                found = found[~bad]
            out[end:end + len(found)] = found
            end += len(found)
        if end < len(out):
            out.resize(end, refcheck=False)  # (in place: no second copy of the ids)
        return out, [chr(c) for c in sorted(unknown)]

    def decode(self, ids):
        """ids -> text; ValueError for an id outside [0, len(vocab))."""
        if not isinstance(ids, (np.ndarray, list, tuple)):
            try:
                ids = list(ids)
            except TypeError:
                raise ValueError(f"decode takes a sequence of integer ids, got "
                                 f"{type(ids).__name__} {ids!r}") from None
        try:
            ids = np.asarray(ids)
        except ValueError:  # (a ragged list: NumPy's "inhomogeneous shape")
            raise ValueError("decode takes a sequence of integer ids, got a nested, ragged "
                             "sequence") from None
        if ids.size and (ids.ndim != 1 or ids.dtype.kind not in "iu"):
            raise ValueError(f"decode takes a sequence of integer ids, got "
                             f"{ids.dtype} values in shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise ValueError(f"decode: id {bad} is outside the vocabulary [0, {len(self)})")
        chars = self._chars
        return "".join([chars[i] for i in ids.tolist()])
