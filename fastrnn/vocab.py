"""Vocab: the sorted characters of a text <-> integer ids."""

import numpy as np


class Vocab:
    """Characters sorted by code point, so the same text always gives the same ids."""

    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        if len(chars) < 2:
            raise ValueError(f"a vocabulary needs at least 2 distinct characters, got {len(chars)}")
        self.chars = chars
        self.index = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    def __len__(self):
        return len(self.chars)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.chars == other.chars

    def unknown(self, text):
        """The characters of ``text`` that are not in the vocabulary, sorted."""
        return sorted(set(text) - self.index.keys())

    def encode(self, text, dtype=None):
        """text -> ids (the smallest unsigned dtype that fits); ValueError naming unknown characters."""
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ValueError(f"characters not in the vocabulary: {shown}{more}")
        if dtype is None:
            dtype = np.uint8 if len(self) <= 256 else np.uint16 if len(self) <= 65536 else np.uint32
        if len(self) <= 256 and text.isascii():
            # Fast path for the common case: a byte lookup table.
            table = np.zeros(128, dtype)
            for ch, i in self.index.items():
                table[ord(ch)] = i
            return table[np.frombuffer(text.encode("ascii"), np.uint8)]
        return np.fromiter((self.index[c] for c in text), dtype, count=len(text))

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)
