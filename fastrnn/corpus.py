"""A training text: read from disk, its vocabulary, encoded ids, and the train/validation split.

    corpus = load("input.txt", val_fraction=0.1)
    corpus.vocab, corpus.train, corpus.val    # Vocab, ids (uint8 when V <= 256), ids

The whole file is decoded once and encoded a block at a time into the smallest integer type
that holds its ids, so a 100 MB ASCII corpus needs about 300 MB at its peak and 100 MB after.
"""

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import files, validate
from .vocab import UnknownCharacters, Vocab, describe

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "data" / "tragedies.txt"


class CorpusError(ValueError):
    """The text cannot be used for training; the message names the file and the problem."""


@dataclass
class Corpus:
    path: Path
    vocab: Vocab
    train: np.ndarray   # ids of the text before the held-out tail
    val: np.ndarray     # ids of the held-out tail (may be empty)
    sha256: str         # of the file's bytes, to tell a resumed run whether its text changed

    @property
    def n_chars(self):
        return len(self.train) + len(self.val)


def check_encoding(encoding):
    """CorpusError unless ``encoding`` names a text encoding: a codec that turns bytes into text
    (not rot13, base64, hex or zlib, which ``codecs.lookup`` knows but ``bytes.decode`` refuses)."""
    try:
        if not isinstance(encoding, str):
            raise LookupError(encoding)
        b"a".decode(encoding)  # (an empty bytes object is decoded without asking the codec)
    except UnicodeDecodeError:
        pass  # a text encoding, for which "a" alone is incomplete (utf-16)
    except (LookupError, UnicodeError):  # UnicodeError: the codec "undefined"
        raise CorpusError(f"unknown encoding {encoding!r}: give a text encoding, such as utf-8 "
                          f"or latin-1") from None


def bad_byte(error, end):
    """(the byte, its offset in the file) a UnicodeDecodeError names, for a decode of bytes that
    end at offset ``end`` of the file: ``error.object`` is what was decoded, which ends there (it
    may begin after a byte-order mark the codec took off, or with a character a block split)."""
    return error.object[error.start], end - len(error.object) + error.start


def encoding_hint(head, encoding):
    """What to pass with --encoding for a file starting with the bytes ``head`` that did not
    decode as ``encoding``: the UTF-32 or UTF-16 its byte-order mark names (unless that is
    the encoding given), else an example."""
    given = codecs.lookup(encoding).name
    if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") and \
            not given.startswith("utf-32"):
        return "it starts with a UTF-32 byte-order mark: --encoding utf-32"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") and not given.startswith("utf-16"):
        return "it starts with a UTF-16 byte-order mark: --encoding utf-16"
    return "for example --encoding latin-1"


def read_text(path, encoding="utf-8"):
    """The file's text and the sha256 of its bytes; CorpusError for anything that stops us."""
    path = Path(path)
    check_encoding(encoding)
    kind = files.not_regular(path)
    if kind == "a directory":
        raise CorpusError(f"{path} is a directory, not a text file")
    if kind:
        raise CorpusError(f"{path} is {kind}, not a regular file: training text is read from "
                          f"regular files only")
    try:
        _fits(path.stat().st_size, path, "to read")
        raw = path.read_bytes()
    except MemoryError:  # (a limit MemAvailable does not show: ulimit -v, a cgroup)
        raise CorpusError(f"{path}: not enough memory to read its {path.stat().st_size:,} "
                          f"bytes") from None
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a directory, not a text file") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not raw:
        raise CorpusError(f"{path} is empty")
    # decoded, and then its ids: a character is 1 byte of Python's text if the file is ASCII,
    # up to 4 if not; its id up to 4 (both held with the bytes for a moment)
    _fits(len(raw) * (2 if raw.isascii() else 8), path, "to decode and encode")
    try:
        text = raw.decode(encoding)
    except MemoryError:
        raise CorpusError(f"{path}: not enough memory to decode its {len(raw):,} bytes") from None
    except UnicodeDecodeError as e:
        byte, offset = bad_byte(e, len(raw))
        raise CorpusError(
            f"{path}: byte 0x{byte:02x} at offset {offset} is not valid {encoding}; pass the "
            f"file's encoding with --encoding ({encoding_hint(raw[:4], encoding)})") from None
    return text, hashlib.sha256(raw).hexdigest()


def _fits(need, path, what):
    try:
        validate.fits(need, f"{path} ({what})")
    except ValueError as e:
        raise CorpusError(str(e)) from None


def load(path, val_fraction=0.1, encoding="utf-8", vocab=None):
    """Read ``path`` and hold out its last ``val_fraction`` of characters for validation.

    ``vocab``: encode with this vocabulary (a resumed run) instead of the text's own; characters
    outside it raise CorpusError naming them.
    """
    if not 0 <= val_fraction < 1:
        raise CorpusError(f"val_fraction must be in [0, 1), got {val_fraction}")
    text, digest = read_text(path, encoding)
    try:
        if vocab is None:
            try:
                vocab = Vocab.from_text(text)
            except ValueError:
                raise CorpusError(f"{path} holds only one distinct character ({text[0]!r}); "
                                  "a language model needs at least 2") from None
        try:
            ids = vocab.encode(text)
        except UnknownCharacters as e:
            raise CorpusError(f"{path} has characters that the checkpoint's vocabulary lacks: "
                              f"{describe(e.chars)}") from None
    except MemoryError:
        raise CorpusError(f"{path}: not enough memory to encode its {len(text):,} "
                          f"characters") from None
    del text
    n_val = int(len(ids) * val_fraction)
    return Corpus(Path(path), vocab, ids[:len(ids) - n_val], ids[len(ids) - n_val:], digest)
