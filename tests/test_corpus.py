"""Reading a corpus: vocabulary, compact ids, the validation split, and each way a file is bad."""

import codecs
import os
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fastrnn import Vocab
from fastrnn.corpus import CorpusError, load, oddities, unknown_hint
from fastrnn.vocab import id_dtype


# Chinese and Korean, whose UTF-16 has too few NULs (its line breaks', its spaces', Korean's
# U+B300's low byte) and bytes below 0x20 (the Chinese comma U+FF0C's low byte) to tell by
# where they fall, as ASCII's or Greek's can be: they fall in both places of every two
POEM = ("\u6625\u7720\u4e0d\u89c9\u6653\uff0c\u5904\u5904\u95fb\u557c\u9e1f\u3002\n"
        "\u591c\u6765\u98ce\u96e8\u58f0\uff0c\u82b1\u843d\u77e5\u591a\u5c11\u3002\n")
KOREAN = "\ub300\ud55c\ubbfc\uad6d\uc740 \ubbfc\uc8fc\uacf5\ud654\uad6d\uc774\ub2e4.\n"
# Hebrew, whose 8-bit codecs' bytes read with as little mess as Cyrillic and Greek (cp1251,
# cp1253): the frequencies of its letters tell
HEBREW = ("\u05e9\u05dc\u05d5\u05dd \u05dc\u05db\u05d5\u05dc\u05dd. \u05d6\u05d4\u05d5 "
          "\u05d8\u05e7\u05e1\u05d8 \u05e7\u05e6\u05e8 \u05d1\u05e2\u05d1\u05e8\u05d9\u05ea, "
          "\u05e9\u05e0\u05db\u05ea\u05d1 \u05db\u05d3\u05d9 \u05dc\u05d1\u05d3\u05d5\u05e7 "
          "\u05d0\u05ea \u05d6\u05d9\u05d4\u05d5\u05d9 \u05d4\u05e7\u05d9\u05d3\u05d5\u05d3 "
          "\u05e9\u05dc \u05d4\u05e7\u05d5\u05d1\u05e5.\n\u05d4\u05de\u05e9\u05e4\u05d8 "
          "\u05d4\u05e9\u05e0\u05d9 \u05de\u05e1\u05e4\u05e8 \u05e2\u05dc \u05e1\u05e4\u05e8 "
          "\u05d9\u05e9\u05df \u05e9\u05e0\u05de\u05e6\u05d0 \u05d1\u05e1\u05e4\u05e8\u05d9\u05d9"
          "\u05d4 \u05d4\u05d2\u05d3\u05d5\u05dc\u05d4 \u05e9\u05dc \u05d4\u05e2\u05d9\u05e8.\n")


def write(tmp_path, content, name="text.txt"):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def test_split_holds_out_the_end_and_ids_round_trip(tmp_path):
    text = "the quick brown fox jumps over the lazy dog\n" * 30
    corpus = load(write(tmp_path, text), val_fraction=0.1)
    n_val = int(len(text) * 0.1)
    assert corpus.n_chars == len(text) and len(corpus.val) == n_val
    assert corpus.vocab.chars == sorted(set(text))
    assert corpus.train.dtype == np.uint8
    assert corpus.vocab.decode(corpus.train) + corpus.vocab.decode(corpus.val) == text
    assert corpus.vocab.decode(corpus.val) == text[-n_val:]
    assert len(load(write(tmp_path, text), val_fraction=0).val) == 0


def test_unicode_text_and_large_vocabularies(tmp_path):
    text = "".join(chr(c) for c in range(0x400, 0x400 + 300)) + "日本語 ünïcødé 🙂\n"
    corpus = load(write(tmp_path, text * 3), val_fraction=0)
    assert len(corpus.vocab) > 256 and corpus.train.dtype == np.uint16
    assert corpus.vocab.decode(corpus.train) == text * 3
    assert id_dtype(70000) == np.uint32


def test_encoding_in_blocks_matches_a_plain_lookup(monkeypatch):
    import fastrnn.vocab as vocab_mod
    monkeypatch.setattr(vocab_mod, "_BLOCK", 7)  # many blocks, mixed ASCII / non-ASCII
    text = "abc déf ghi\njkl ñop 🙂 qrs tuv wxyz" * 5
    vocab = Vocab.from_text(text)
    assert vocab.chars == sorted(set(text))
    assert vocab.encode(text).tolist() == [vocab.index[c] for c in text]
    shuffled = Vocab(list("zyxa"))  # a vocabulary not in code-point order
    assert shuffled.encode("axyz").tolist() == [3, 2, 1, 0]
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'Q', 'é'"):
        shuffled.encode("azQé")
    # past the largest code point of the vocabulary (its lookup table's end), below it, and
    # in a block of its own
    cjk = Vocab(list("a\u4e00\u4e8c"))
    assert cjk.encode("\u4e8ca\u4e00").tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'b', '\u4e01', '🙂'$"):
        cjk.encode("a\u4e00\u4e01b🙂")
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'z'$"):
        cjk.encode("a" * 7 + "z")  # (an ASCII block: ids looked up as uint8 code points)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"aaaa", "only one distinct character"),
    (b"good text \xff\xfe more", r"byte 0xff at offset 10 is not valid utf-8 \(invalid start "
                                r"byte\); pass its encoding with --encoding \(for "
                                r"example --encoding latin-1\)"),
    # UTF-16 and UTF-32 as their byte-order marks name them (latin-1 read NULs between letters)
    ("hello".encode("utf-16"), r"byte 0xff at offset 0 is not valid utf-8 \(invalid start "
                               r"byte\); pass its encoding with --encoding \(it starts "
                               r"with a UTF-16 byte-order mark: --encoding utf-16\)"),
    # ... and UTF-16 and -32 without one, by where their NULs are (binary data has NULs too)
    ("hello".encode("utf-16-be") + b"\xff", r"\(45% of its bytes are NUL \(\\x00\), as in "
                                           r"UTF-16 text read as utf-8: if it is, --encoding "
                                           r"utf-16-be reads it\)"),
    ("caf\u00e9\n".encode("utf-16-le") * 9, r"byte 0xe9 at offset 6 .*--encoding utf-16-le "
                                            r"reads it\)$"),
    ("caf\u00e9\n".encode("utf-32-le") * 9, r"--encoding utf-32-le reads it\)$"),
    # (English with Chinese: its NULs fall in one place, the other bytes in both)
    (" ".join(["the cat", "\u8fd9\u662f\u4e00\u4e2a", "sat on", "\u4e2d\u6587"] * 50).encode(
        "utf-16-le"), r"\(3\d% of its bytes are NUL .*--encoding utf-16-le reads it\)$"),
    ("\u4e2d\u6587\u53e5\u5b50\u8fd9\u662f\u4e00\u4e2a".encode("utf-32-le") * 9,
     r"--encoding utf-32-le reads it\)$"),
    ((b"name\xff" + b"\x00" * 11) * 9, r"\(if it is text at all: 69% of its bytes are NUL "
                                      r"\(\\x00\), as in binary data\)$"),
    (b"\xfe\xff" + "hello".encode("utf-16-be"), r"--encoding utf-16\)"),
    ("hello".encode("utf-32"), r"\(it starts with a UTF-32 byte-order mark: --encoding "
                               r"utf-32\)"),
    # Windows text: latin-1 would read its quotes and dashes as control codes in silence
    ("\u201cquoted\u201d \u2013 dash, 5 \u20ac".encode("cp1252") * 9,
     r"byte 0x93 at offset 0 .*\(for example --encoding cp1252, Windows' Western European: it "
     r"has bytes 0x80-0x9f, its quotes, dashes and signs, which latin-1 reads as control "
     r"characters\)"),
    (b"caf\xe9 \x81", r"\(for example --encoding latin-1\)"),  # (0x81: not Windows-1252)
    # binary data: no encoding will make text of it (random bytes: ~11% control codes)
    (np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes(),
     r"--encoding \(if it is text at all: 1[0-2]% of its bytes are control codes, as in binary "
     r"data\)"),
    # UTF-8 with one bad byte (its quotes' bytes are 0x80-0x9f too; so is a stray one): not
    # another encoding, which latin-1 would read in silence, as mojibake
    ("\u201cquoted\u2019s\u201c \u2014 dash\n".encode() * 9 + b"caf\xe9 ",
     r"byte 0xe9 at offset 237 is not valid utf-8 \(invalid continuation byte\), but the text "
     r"around it is UTF-8 \(36 of 37 runs of non-ASCII bytes there are\): a stray byte, not "
     r"another encoding\? iconv -c -f utf-8 -t utf-8 copies a text without the bytes that are "
     r"not UTF-8$"),
    ("caf\u00e9 na\u00efve r\u00e9sum\u00e9\n".encode() * 20 + b"don\x92t",
     r"byte 0x92 at offset 443 .*, but the text around it is UTF-8 \(80 of 81 runs"),
    ("caf\u00e9 na\u00efve\n".encode() * 2 + b"\x92 " * 3, r"\(for example --encoding "),
    # (a UTF-8 byte-order mark says nothing: editors add it to any text)
    (b"\xef\xbb\xbf" + "caf\u00e9\n".encode() * 30 + b"\xff" + "caf\u00e9\n".encode() * 30,
     r"byte 0xff at offset 183 .*a stray byte, not another encoding\?"),
    # (a UTF-8 text and a latin-1 one joined: the runs on both sides of the first bad byte)
    ("caf\u00e9 ".encode() * 2000 + "caf\u00e9 ".encode("latin-1") * 2000,
     r"byte 0xe9 at offset 12003 .*; pass its encoding with --encoding \(for example "
     r"--encoding latin-1\)$"),
    # a file cut short in a character (head -c)
    ("caf\u00e9 \U0001f600".encode()[:-2], r"byte 0xf0 at offset 6 is not valid utf-8 "
     r"\(unexpected end of data\): the file ends in the middle of a character, as one cut "
     r"short \(by head -c, say\) does; all before its last 2 bytes reads as utf-8: "
     r"remove them$"),
    # ... or in another encoding, where nothing before says it is UTF-8: both said
    (b"Il est all\xe9", r"byte 0xe9 at offset 10 is not valid utf-8 \(unexpected end of data\): "
     r"the file ends in the middle of a character: if it was cut short \(by head -c, say\), "
     r"all before its last 1 byte reads as utf-8: remove it; if not, pass its encoding with "
     r"--encoding \(for example --encoding latin-1\)$"),
    ("abc\u00e9".encode("utf-16-be"), r"if not, pass its encoding with --encoding \(50% of its "
     r"bytes are NUL .*--encoding utf-16-be reads it\)$"),
])
def test_bad_files_are_named(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(CorpusError, match=message) as e:
        load(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("content, encoding", [(b"\xff\xfe", "utf-16"),
                                               (b"\xef\xbb\xbf", "utf-8-sig")])
def test_a_file_empty_once_decoded_is_named(tmp_path, content, encoding):
    """A byte-order mark alone decodes to no text: an IndexError before."""
    path = write(tmp_path, content)
    with pytest.raises(CorpusError, match=f"is empty once decoded as {encoding} \\(a "
                                          f"byte-order mark alone\\)") as e:
        load(path, encoding=encoding)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("content, encoding, message", [
    # UTF-16 or -32 by where the bytes below 0x20 fall: Greek's high bytes (0x03) and the
    # emoji's plane (0x01) are control codes, not binary data's
    ("\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5.\n".encode("utf-16-le") * 20, "utf-8",
     r"byte 0x93 at offset 0 .*as in UTF-16 text read as utf-8: if it is, --encoding utf-16-le "
     r"reads it\)$"),
    # (emoji that this Python's Unicode may not know yet: U+1FAE8, Unicode 15's, is text)
    ("shaking \U0001fae8 face\n".encode("utf-32-le") * 5, "utf-8",
     r"--encoding utf-32-le reads it\)$"),
    ("smile \U0001f600 ok\n".encode("utf-32-be") * 5, "utf-8",
     r"\(7\d% of its bytes are NUL \(\\x00\), as in UTF-32 text read as utf-8: if it is, "
     r"--encoding utf-32-be reads it\)$"),
    # ... and Chinese's (its control codes are low bytes: the order was told backwards) and
    # Korean's, whose NULs and control codes fall in both places, by their line breaks and
    # spaces (or else by which bytes vary less: the high ones); their legacy encodings and
    # 16-bit audio samples are not UTF-16
    (POEM.replace("\n", "").encode("utf-16-le") * 20, "utf-8",
     r"\(2\d% of its bytes are NUL or control codes below 0x20, as in UTF-16 text read as "
     r"utf-8: if it is, --encoding utf-16-le reads it\)$"),
    (POEM.encode("utf-16-le") * 20, "utf-8",
     r"byte 0xff at offset 11 .*\(its bytes read as utf-16-le are text, with line breaks and "
     r"spaces \(8% of the characters\), as UTF-16 text read as utf-8 gives: if it is, "
     r"--encoding utf-16-le reads it\)$"),
    (POEM.encode("utf-16-be") * 20, "utf-8", r"--encoding utf-16-be reads it\)$"),
    (KOREAN.encode("utf-16-be") * 20, "ascii",
     r"\(its bytes read as utf-16-be are text, with line breaks and spaces \(1\d% .*"
     r"--encoding utf-16-be reads it\)$"),
    # (the line breaks and spaces tell first: these characters' high bytes vary more)
    ("\u4e00\u5e00\u6e00\u7e00\u8e00\u9e00 \u4f00\u5f00\n".encode("utf-16-be") * 20, "utf-8",
     r"--encoding utf-16-be reads it\)$"),
    # another script's legacy codec: charset-normalizer's guess (but for a few characters, or
    # Latin-1's signs alone, which cp932 reads as half-width katakana)
    (KOREAN.encode("euc-kr") * 20, "utf-8", r"\(its bytes read as Korean text in cp949 "
                                            r"\(charset-normalizer's guess\): --encoding cp949\)$"),
    (POEM.encode("gbk") * 20, "utf-8", r"\(its bytes read as CJK text in gb18030 .*: "
                                       r"--encoding gb18030\)$"),
    ("\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430 "
     "\u0420\u043e\u0441\u0441\u0438\u0438.\n".encode("cp1251") * 20, "utf-8",
     r"\(its bytes read as Cyrillic text in cp1251 .*: --encoding cp1251\)$"),
    (HEBREW.encode("iso8859-8") * 6, "utf-8", r"\(its bytes read as Hebrew text in cp1255 "
                                               r"\(charset-normalizer's guess\): --encoding "
                                               r"cp1255\)$"),
    # (damaged in its own codec, past the lines the guess reads)
    (POEM.encode("gb18030") * 20 + b"\x81\x20", "gb18030",
     r"byte 0x81 at offset 1000 .*\(its bytes read as CJK text in gb18030 \(charset-normalizer's "
     r"guess\): damaged gb18030 text, rather than another encoding\?\)$"),
    (POEM.encode("gbk"), "utf-8", r"\(for example --encoding latin-1\)$"),
    ("Price: 5\u00a3 \u00b12\u00b0 \u00a92020 \u00ae, \u00bd \u00bc \u00be \u00b5 \u00a7\n"
     .encode("latin-1") * 40, "utf-8", r"\(for example --encoding latin-1\)$"),
    ((np.sin(np.arange(2000) / 30) * 3000).astype("<i2").tobytes() + b"\xff", "utf-8",
     r"\(if it is text at all: \d+% of its bytes are control codes, as in binary data\)$"),
    # 16-bit numbers, one in a hundred 10 (a line break's code unit): not text read so
    (np.where(np.arange(4000) % 100 == 0, 10, np.random.default_rng(0).integers(
        256, 65536, 4000)).astype("<u2").tobytes(), "utf-8", r"as in binary data\)$"),
    # UTF-8 read as a multibyte legacy codec: no sign that it was cut short; UTF-8 named
    ("\u042d\u0442\u043e \u0442\u0435\u043a\u0441\u0442.".encode()[:-1] + b"\xd1", "gbk",
     r"the file ends in the middle of a character: if it was cut short .*; if not, pass its "
     r"encoding with --encoding \(its bytes read as UTF-8: --encoding utf-8\)$"),
    ("\u8fd9\u662f\u4e2d\u6587\u3002".encode() * 5, "big5",
     r"\(its bytes read as UTF-8: --encoding utf-8\)$"),
    # UTF-16 damaged in the middle: not told its own encoding again
    ("hello\n".encode("utf-16-le") * 20 + b"\x00\xdc" + "hello\n".encode("utf-16-le") * 20,
     "utf-16", r"\(its NUL bytes fall as in utf-16-le text: damaged UTF-16 text, rather than "
               r"another encoding\?\)$"),
    # big-endian integers (NULs where UTF-32's fall, but no text when decoded so): binary
    (b"".join(k.to_bytes(4, "big") for k in range(0, 100000, 100)), "utf-8",
     r"\(if it is text at all: .* as in binary data\)$"),
    # UTF-8 with a character past ASCII, of an odd length, read as UTF-16
    ("\u041f\u0440\u0438\u0432\u0435\u0442.\n".encode() * 5 + b"\n", "utf-16",
     r"if not, pass its encoding with --encoding \(its bytes read as UTF-8: --encoding utf-8\)$"),
    (b"A\xc3", "ascii", r"\(for example --encoding latin-1\)$"),  # (a cut character: no UTF-8)
    # ASCII text read as UTF-16 or -32 (a model of such text scoring it): UTF-8 named; not so
    # damaged UTF-7, whose own text is ASCII
    (b"The king is dead.\n\n", "utf-16", r"\(its bytes are ASCII text, not utf-16: --encoding "
                                       r"utf-8\)$"),
    (b"The king is dead.\n", "utf-32", r"\(its bytes are ASCII text, not utf-32: --encoding "
                                       r"utf-8\)$"),
    (b"The +AOk- king +Ze!x is dead.\n", "utf-7", r"\(for example --encoding latin-1\)$"),
    # a UTF-16 character in the file's first bytes, then one cut: cut short
    (b"\x16\x04A", "utf-16", r"\(truncated data\): the file ends in the middle of a character, "
                             r"as one cut short"),
])
def test_bad_files_in_an_encoding_given_are_named(tmp_path, content, encoding, message):
    with pytest.raises(CorpusError, match=message):
        load(write(tmp_path, content), encoding=encoding)


def test_a_byte_order_mark_is_not_hinted_at_when_its_encoding_was_given(tmp_path):
    """(a corrupt UTF-16 file read as utf-16 was told to pass --encoding utf-16)"""
    path = write(tmp_path, b"\xff\xfe" + "hello".encode("utf-16-le") + b"\x00\xdca\x00")
    with pytest.raises(CorpusError, match=r"byte 0x00 at offset 12 is not valid utf-16 "
                                          r"\(illegal encoding\); its byte-order mark says it "
                                          r"is UTF-16 text: damaged there, not in another "
                                          r"encoding$"):
        load(path, encoding="utf-16")
    # (a mark of the other byte order than the encoding's, or UTF-32's, is not its text)
    for content, encoding, name in (
            ("\u00d8l \u00df".encode("utf-16-be") + b"\x00", "utf-16-le", "UTF-16"),
            ("hello \U0002d800 x".encode("utf-32"), "utf-16", "UTF-32")):
        path = write(tmp_path, b"\xfe\xff" * (name == "UTF-16") + content)
        with pytest.raises(CorpusError, match=f"it starts with a {name} byte-order mark: "
                                              f"--encoding {name.lower()}\\)$"):
            load(path, encoding=encoding)
    # an odd byte at its end: cut short, not another encoding
    path = write(tmp_path, b"\xff\xfe" + "hello".encode("utf-16-le") + b"a")
    with pytest.raises(CorpusError, match=r"is not valid utf-16 \(truncated data\): the file "
                                          r"ends in the middle of a character.*its last 1 byte "
                                          r"reads as utf-16: remove it$"):
        load(path, encoding="utf-16")
    # ASCII read as UTF-16 (two of its bytes a character) ends there too: not said to be cut
    path = write(tmp_path, b"plain text " * 9)
    with pytest.raises(CorpusError, match=r"\(truncated data\): the file ends in the middle of "
                                          r"a character: if it was cut short .*; if not, pass its "
                                          r"encoding with --encoding"):
        load(path, encoding="utf-16")


def test_other_encodings_and_missing_files(tmp_path):
    path = write(tmp_path, "café crème".encode("latin-1"))
    assert load(path, val_fraction=0, encoding="latin-1").vocab.decode(
        load(path, val_fraction=0, encoding="latin-1").train) == "café crème"
    with pytest.raises(CorpusError, match="unknown encoding 'klingon'"):
        load(path, encoding="klingon")
    for good in (Fraction(1, 10), Decimal("0.1")):  # (numbers, as 0.1)
        assert len(load(path, val_fraction=good, encoding="latin-1").val) == \
            len(load(path, val_fraction=0.1, encoding="latin-1").val) == 1
    for bad in (1.0, "0.1", True, float("nan"), Decimal("NaN"), Decimal("sNaN"), 10 ** 400):
        with pytest.raises(CorpusError, match=r"val_fraction must be a number in \[0, 1\), "
                                              r"got " + re.escape(repr(bad))):
            load(path, val_fraction=bad)
    bom = write(tmp_path, b"\xef\xbb\xbfgood text \xff more")  # (the mark's 3 bytes count)
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 13 is not valid utf-8-sig"):
        load(bom, encoding="utf-8-sig")
    with pytest.raises(CorpusError, match="no such file"):
        load(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="is a directory"):
        load(tmp_path)


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib", "bz2", "undefined", 123])
def test_a_codec_that_is_not_a_text_encoding_is_named(tmp_path, encoding):
    """codecs.lookup knows them, but they do not turn bytes into text: refused as an unknown
    encoding is, before the file is read."""
    path = write(tmp_path, "some text\n")
    said = f"unknown encoding {encoding!r}" if encoding == 123 else \
        f"{encoding!r} is not a text encoding \\(Python's codec of that name does not turn bytes " \
        f"into text\\)"  # (one Python has was said to be unknown)
    with pytest.raises(CorpusError, match=f"^{said}: give a text encoding, such as utf-8"):
        load(path, encoding=encoding)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig", "cp1252", "ascii"])
def test_every_text_encoding_is_accepted(tmp_path, encoding):
    path = write(tmp_path, "some text\n".encode(encoding))
    assert load(path, val_fraction=0, encoding=encoding).vocab.chars == sorted(set("some text\n"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_only_regular_files_are_read(tmp_path):
    """A FIFO would block the read forever and /dev/zero would never end: both are refused
    before anything is read, naming what they are."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CorpusError, match="is a FIFO .named pipe., not a regular file"):
        load(fifo)
    if os.path.exists("/dev/zero"):
        with pytest.raises(CorpusError, match="/dev/zero is a character device, not a regular"):
            load("/dev/zero")
    from fastrnn import checkpoint
    with pytest.raises(checkpoint.CheckpointError, match="is a FIFO .named pipe., not a check"):
        checkpoint.load(fifo)


def test_a_path_that_is_not_a_file_name_is_named():
    with pytest.raises(CorpusError, match="^path must be a file name .*, got NoneType$"):
        load(None)


def test_a_given_vocabulary_names_the_characters_it_lacks(tmp_path):
    for vocab in ("abc", list("abc")):  # (a str was taken for an encoding, naming the text)
        with pytest.raises(CorpusError, match=f"^vocab must be a Vocab .*, got "
                                              f"{type(vocab).__name__}$"):
            load(write(tmp_path, "abcz"), vocab=vocab)
    with pytest.raises(CorpusError, match=re.escape(
            "the checkpoint's vocabulary lacks: 'z' (skip_unknown=True drops them)") + "$"):
        load(write(tmp_path, "abcz"), vocab=Vocab("abc"))
    # and what explains them: Windows line endings in a text whose model had none
    with pytest.raises(CorpusError, match=re.escape(
            "lacks: '\\r' (skip_unknown=True drops them); it has Windows "
            "line endings (\\r\\n), and the model's text had no \\r: converted to \\n "
            "(dos2unix) it reads as the model's")) as e:
        load(write(tmp_path, "ab\r\nca\r\n"), vocab=Vocab("abc\n"))
    assert e.value.plain.endswith("lacks: '\\r'; it has Windows line endings (\\r\\n), and "
                                  "the model's text had no \\r: converted to \\n (dos2unix) it "
                                  "reads as the model's")
    import copy
    import pickle
    for again in (pickle.loads(pickle.dumps(e.value)), copy.copy(e.value)):  # (its parts kept)
        assert type(again) is type(e.value) and str(again) == str(e.value)
        assert again.plain == e.value.plain and again.said("--x") == e.value.said("--x")


def test_characters_a_given_vocabulary_lacks_may_be_left_out(tmp_path, monkeypatch):
    """(a fine-tune's text with one character its model lacks could not be used at all)"""
    from fastrnn import vocab as vocab_module
    monkeypatch.setattr(vocab_module, "_BLOCK", 7)  # (blocks of the encoding: 0-3 dropped each)
    text = "ab\u2603c" * 3000 + "zab"
    path = write(tmp_path, text)
    kept = load(path, 0.1, vocab=Vocab("abc"), skip_unknown=True)
    ids = Vocab("abc").encode(text.replace("\u2603", "").replace("z", ""))
    assert np.array_equal(np.concatenate([kept.train, kept.val]), ids)
    assert len(kept.val) == int(len(ids) * 0.1)  # (held out from what is kept)
    assert kept.dropped == 3001 and kept.dropped_chars == ("z", "\u2603")
    whole = load(write(tmp_path, "abcab"), vocab=Vocab("abc"), skip_unknown=True)
    assert whole.dropped == 0 and whole.dropped_chars == ()
    with pytest.raises(CorpusError, match="^skip_unknown must be True or False, got 'yes'$"):
        load(path, vocab=Vocab("abc"), skip_unknown="yes")


def test_unknown_characters_are_explained_only_by_what_explains_them():
    """A byte-order mark is named only where the model lacks it and the text starts with it,
    with the codec of its family that reads past it; line endings only where most of the
    \\r it lacks come before a \\n, and reading as the model's only where all do."""
    def hint(text, missing, encoding="utf-8", start=True):
        return unknown_hint(text, missing, encoding, start)

    bom = "; it starts with a byte-order mark: --encoding {} reads past it"
    assert hint("\ufeffab", ["\ufeff"]) == bom.format("utf-8-sig")
    assert hint("\ufeffab", ["\ufeff"], "utf-16-le") == bom.format("utf-16")
    assert hint("\ufeffab", ["\ufeff"], "UTF_32_BE") == bom.format("utf-32")
    assert hint("\ufeffab", ["\ufeff"], start=False) == ""
    assert hint("\ufeffaz", ["z"]) == ""  # (a model that knows the mark)
    assert hint("a\rb\r", ["\r"]) == ""  # (lone \\r: not Windows line endings)
    assert hint("a\r\nb\rc\rd\r", ["\r"]) == ""  # (mostly lone)
    assert hint("a\r\nb\r\nc\r", ["\r"]) == ("; most of its '\\r' come from Windows line "
                                             "endings (\\r\\n): dos2unix removes them")
    assert hint("a\r\nz", ["\r", "z"]) == ("; its '\\r' come from Windows line endings "
                                          "(\\r\\n): dos2unix removes them")
    assert hint("a\r\nb\r\n", ["\r"]).startswith("; it has Windows line endings")


def test_a_text_too_large_for_the_memory_is_one_line(tmp_path, monkeypatch):
    """(a MemoryError traceback, or the machine's out-of-memory killer) Its bytes are counted
    before they are read, and its text and ids before they are made."""
    from fastrnn import validate
    path = tmp_path / "text.txt"
    path.write_text("ab" * 5000 + "é", encoding="utf-8")  # 10,002 bytes, not ASCII
    monkeypatch.setattr(validate, "available_memory", lambda: 5000)
    with pytest.raises(CorpusError, match=f"{path} \\(to read\\) needs about 9.8 KiB of memory; "
                                          f"this machine has 4.9 KiB available"):
        load(path)
    monkeypatch.setattr(validate, "available_memory", lambda: 50_000)
    with pytest.raises(CorpusError, match=f"{path} \\(to decode and encode\\) needs about "
                                          f"78.1 KiB of memory"):
        load(path)
    monkeypatch.setattr(validate, "available_memory", lambda: 100_000)
    assert len(load(path).train) > 0
    # a limit the check cannot see (ulimit -v, a cgroup): the read's MemoryError, in one line
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(CorpusError, match=f"^{path}: not enough memory to read its 10,002 "
                                          f"bytes$"):
        load(path)


@pytest.mark.parametrize("content, encoding, said", [
    ("plain text,\nas text is.\n" * 20, "utf-8", []),
    ("tabs\tand\fform feeds\x1b[0m, few escapes\n" * 20, "utf-8", []),
    (bytes(range(256)) * 20, "latin-1",
     [r"^11% of the characters of .* are control characters \(not counting NUL, tabs and line "
      r"breaks\): it looks like binary data, not text, and is trained on as it is$"]),
    ("text\n".encode("utf-16-le") * 20, "utf-8",
     [r"^50% of the bytes of .* are NUL \(\\x00\), as in UTF-16 text read as utf-8: if it "
      r"is, --encoding utf-16-le reads it$"]),
    ("\u201cquoted\u201d text\n".encode("cp1252") * 20, "latin-1",
     [r"read as latin-1 has characters U\+0080-U\+009F, control codes that text rarely holds: "
      r"Windows-1252's quotes, dashes and signs come out as these; if it is Windows text, "
      r"--encoding cp1252 reads them as meant$"]),
    ("\u201cquoted\u201d text\n".encode("cp1252") * 20, "cp1252", []),
    ("plain text,\nas text is.\n" * 20, "cp037",  # (ASCII read as EBCDIC)
     [r"^2\d% of the characters of .* read as cp037 \(an EBCDIC code page\) are control codes "
      r"U\+0080-U\+009F, which text rarely holds: ASCII or UTF-8 text read as EBCDIC gives "
      r"them \(its spaces come out as U\+0080\); if it is, --encoding utf-8 reads it$"]),
    ("plain text,\nas text is.\n".encode("cp037") * 20, "cp037", []),
    ("plain text, as text is. " * 20, "idna", []),  # (an 8-bit codec that is not EBCDIC)
    ("3.14, 2.72, 1.41/1.73 - 'e' - 0.577\n" * 20, "cp037",  # (numbers: C0 codes in EBCDIC)
     [r"^\d\d% of the characters of .* read as cp037 \(an EBCDIC code page\) are control "]),
    ("\ufefftext\n" * 20, "utf-8", [r"starts with a byte-order mark \(U\+FEFF\), which the model "
                                   r"learns as a character of its vocabulary; --encoding "
                                   r"utf-8-sig leaves it out$"]),
    (("\ufeff" + "text\n" * 20).encode("utf-16-le"), "utf-16-le",
     [r"starts with a byte-order mark .*; --encoding utf-16 leaves it out$"]),
    # UTF-16 read in the other byte order, and NULs that are not UTF-16's
    ("text\n".encode("utf-16-be") * 20, "utf-16",
     [r"^50% of the bytes of .* are NUL \(\\x00\), as in UTF-16 text read as utf-16: if it is, "
      r"--encoding utf-16-be reads it$"]),
    ("text\n".encode("utf-16-le") * 20, "utf-16-be", [r"--encoding utf-16-le reads it$"]),
    # UTF-32 read as UTF-16 (NULs in every other character), emoji in UTF-32 (their plane's
    # byte, 0x01, beside the NULs)
    ("text\n".encode("utf-32-le") * 20, "utf-16-le",
     [r"^75% of the bytes of .* are NUL \(\\x00\), as in UTF-32 text read as utf-16-le: if it "
      r"is, --encoding utf-32-le reads it$"]),
    ("text\n".encode("utf-32-be") * 20, "utf-16-le", [r"--encoding utf-32-be reads it$"]),
    # ... with UTF-32's mark, which the generic utf-16 takes for its own (its first two bytes,
    # ff fe) and reads past: the file's bytes are looked at, not the text's
    (codecs.BOM_UTF32_LE + "text\n".encode("utf-32-le") * 20, "utf-16",
     [r"^75% of the bytes of .* are NUL \(\\x00\), as in UTF-32 text read as utf-16: if it is, "
      r"--encoding utf-32-le reads it$"]),
    # UTF-8 read as latin-1 (its characters as two each: a Windows-1252 text's would not be
    # UTF-8)
    ("caf\u00e9 na\u00efve\n".encode() * 20, "latin-1",
     [r"read as latin-1 is UTF-8 \(its bytes past ASCII are UTF-8's\): if it is, --encoding "
      r"utf-8 reads its characters as they are$"]),
    ("ok \U0001f600\n".encode("utf-32-le") * 20, "latin-1",
     [r"are NUL or control codes below 0x20, as in UTF-32 text read as latin-1: if it is, "
      r"--encoding utf-32-le reads it$"]),
    ((b"name" + b"\x00" * 12) * 20, "latin-1",
     [r"^75% of the characters of .* are NUL \(\\x00\), not between letters as in UTF-16 or -32 "
      r"text: it looks like binary data$"]),
    ("line\r\n" * 20, "utf-8",
     [r"has Windows line endings \(\\r\\n\): the model learns the \\r before every line break "
      r"as a character .*; a copy with Unix line endings \(dos2unix\) leaves it out$"]),
    ("line\rold Mac line\r\n" * 20, "utf-8", []),  # (a \r alone: not Windows')
    ("plain text,\nas text is.\n" * 20, "utf-16-le",
     [r"^100% of the characters of .* read as utf-16-le are two bytes of ASCII text each, as "
      r"8-bit text \(ASCII, UTF-8\) read as UTF-16 gives: if it is, --encoding utf-8 reads it$"]),
    ("\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d\u5341\u3002\n".encode("utf-16")
     * 20, "utf-16", []),  # (Chinese: some of its characters are such pairs, not most)
    # Chinese and Korean UTF-16 read in the other byte order, or as 8-bit text; as it is
    (POEM.encode("utf-16-le") * 20, "utf-16-be",
     [r"^the bytes of .* read as utf-16-le are text, with line breaks and spaces \(8% of the "
      r"characters\), as UTF-16 text read as utf-16-be gives: if it is, --encoding utf-16-le "
      r"reads it$"]),
    (KOREAN.encode("utf-16-le") * 20, "latin-1", [r"--encoding utf-16-le reads it$"]),
    (POEM.encode("utf-16-be") * 20, "utf-16-be", []),
    (KOREAN.encode("utf-16-le") * 20, "utf-16-le", []),
    # another script's legacy codec read as Latin letters (not Latin text, nor its own codec)
    (POEM.encode("gbk") * 20, "latin-1",
     [r"^.* read as latin-1 is Latin letters and signs past ASCII, where its bytes read as "
      r"CJK text in gb18030 \(charset-normalizer's guess\): if it is, --encoding gb18030 "
      r"reads its characters as they are$"]),
    (KOREAN.encode("euc-kr") * 20, "cp1252", [r"--encoding cp949 reads its characters "]),
    (POEM.encode("gbk") * 20, "gbk", []),
    ("\u00dcber den Wolken mu\u00df die Freiheit wohl grenzenlos sein. Gr\u00f6\u00dfe, "
     "\u00c4pfel, sch\u00f6n.\n".encode("latin-1") * 20, "latin-1", []),
    # 16-bit numbers: NULs between bytes as ASCII's in UTF-16, but control codes read so
    (np.random.default_rng(0).integers(0, 40, 2000).astype("<i2").tobytes(), "utf-8",
     [r"^\d+% of the characters of .* are control characters \(not counting NUL, tabs and "
      r"line breaks\): it looks like binary data"]),
])
def test_oddities_of_a_text_are_said(tmp_path, content, encoding, said):
    """What a text holds that text rarely does, said when a run starts (it trains on it as it
    is): binary data, UTF-16 read as UTF-8, Windows-1252 read as latin-1, a byte-order mark,
    ASCII read as EBCDIC, Windows line endings; nothing for text."""
    path = write(tmp_path, content if isinstance(content, bytes) else content.encode())
    notes = oddities(load(path, val_fraction=0, encoding=encoding), encoding)
    assert len(notes) == len(said), notes
    for note, pattern in zip(notes, said):
        assert re.search(pattern, note), note
        assert str(path) in note


def test_oddities_are_counted_the_same_a_few_characters_at_a_time(tmp_path, monkeypatch):
    """The text checks count a block at a time: the same shares, and the same \\r\\n pairs
    across the blocks' edges, as counted whole."""
    import fastrnn.corpus as corpus
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("ab\r\n\x01"), 2000, p=[0.4, 0.4, 0.06, 0.06, 0.08]))
    path = write(tmp_path, text.encode())
    loaded = load(path, val_fraction=0)
    whole = oddities(loaded, "utf-8")
    ids, vocab = loaded.train, loaded.vocab
    cr, lf = vocab.index["\r"], vocab.index["\n"]
    expected = (int(np.count_nonzero((ids[:-1] == cr) & (ids[1:] == lf))),
                int(np.count_nonzero(ids[:-1] == cr)))
    for block in (1, 2, 3, 7, 1999, 2000, 2001):
        monkeypatch.setattr(corpus, "COUNT_BLOCK", block)
        assert corpus._crlf(ids, cr, lf) == expected, block
        assert list(corpus._counts(ids, len(vocab))) == list(np.bincount(ids)), block
        assert oddities(loaded, "utf-8") == whole, block


def test_a_run_cut_by_the_stray_byte_window_is_not_counted(monkeypatch):
    """The runs of non-ASCII bytes around a bad byte are counted in a window of COUNT_BLOCK
    bytes: a character the window's edge cuts is not a run that is not UTF-8 (12 runs of UTF-8
    for the bad byte's one make a stray byte; a 14th run, not UTF-8, would not)."""
    import fastrnn.corpus as corpus
    monkeypatch.setattr(corpus, "COUNT_BLOCK", 100)
    e_acute, runs = "\u00e9".encode(), "\u00e9 ".encode() * 12
    # the window [at - 50, at + 50) starts inside an e-acute, and the file ends inside it
    start = b"x" * 59 + e_acute + b" " + runs + b"y" * 12
    at = len(start)
    assert at - 50 == 60  # (the e-acute's second byte)
    assert corpus._utf8_around(start + b"\xff tail", at) == (12, 13)
    # ... or it ends inside one, and the file goes on
    end = b"x" * 80 + b"\xff " + runs + b"y" * 11 + e_acute + b"z" * 10
    assert end[130:131] == e_acute[1:]  # (the window's end, at + 50)
    assert corpus._utf8_around(end, 80) == (12, 13)
    # (a byte such as the cut one, inside the window: a run that is not UTF-8)
    inside = b"x" * 65 + b"\xa9 " + runs + b"y" * 7
    assert corpus._utf8_around(inside + b"\xff", len(inside)) is None


def test_utf16_read_as_such_is_judged_by_its_last_characters():
    """Whether text read as UTF-16 reads as UTF-16 text, not 8-bit text read so (a cut at
    its end is then a file cut short), rests on its last COUNT_BLOCK / 16 characters."""
    import fastrnn.corpus as corpus
    greek = "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5.\n"
    pairs = "ab".encode().decode("utf-16-le")  # (a character of two ASCII bytes)
    sample = corpus.COUNT_BLOCK // 16
    assert sample == 65536
    assert not corpus._reads_as("utf-16-le", pairs * sample + greek * 100)
    # (mostly Greek in their last 65,536 characters; mostly pairs in the first's last 32,768,
    # and in the second's last 131,072)
    assert corpus._reads_as("utf-16-le", greek * 4000 + pairs * 20000)
    assert corpus._reads_as("utf-16-le", pairs * 100000 + greek * 4000)


def test_another_scripts_codec_is_guessed_from_whole_lines_and_real_letters():
    """charset-normalizer's guess reads whole lines (a multibyte codec refuses a character the
    first block's end cuts, and a wrong codec was named), and counts letters of a script, not
    modifier letters (a Mac codec reads a Finnish \u00f6 as \u02c6: Finnish latin-1 was called
    "Modifier text"); readings as good as each other are all named."""
    import fastrnn.corpus as corpus
    korean = KOREAN.encode("euc-kr")
    guess = corpus._script_guess(korean * 30 + korean[:3])  # (its second character cut)
    assert guess is not None and guess[0][0] == "Korean", guess
    assert corpus._script("t\u00e4m\u00e4 \u02c6\u02c6\u02c6 \u2030") == "LATIN"
    assert corpus._script("\u00aa\u00ba 123") is None
    assert corpus._script("\u0416\u0416 \u00e4") == "CYRILLIC"
    assert str(corpus.Guess([("Japanese", ["cp932"]), ("Korean", ["cp949", "euc_kr"])])) == \
        "Japanese text in cp932, or Korean text in cp949 or euc_kr (charset-normalizer's guesses)"
    assert corpus.Guess([("Japanese", ["cp932"]), ("Korean", ["cp949"])]).codecs == \
        ["cp932", "cp949"]


class _Reading:
    """A stand-in for charset-normalizer's CharsetMatch: a codec's reading of some bytes."""

    def __init__(self, encoding, chaos, coherence, text):
        self.encoding, self.chaos, self.coherence, self.text = encoding, chaos, coherence, text

    def __str__(self):
        return self.text


@pytest.mark.parametrize("readings, said", [
    # the most coherent of the least messy: Hebrew, not the Cyrillic with a little less mess
    ([("cp1251", 0.003, 0.30, "\u0416\u0436"), ("cp1253", 0.003, 0.23, "\u0391\u03b1"),
      ("cp1255", 0.008, 0.81, "\u05d0\u05d1")], "Hebrew text in cp1255"),
    # a Latin reading about as good: no guess (German latin-1 read as shift_jis)
    ([("shift_jis_2004", 0.059, 0.0, "\u6625\u7720"), ("cp1252", 0.083, 0.79, "\u00e4\u00f6")],
     None),
    ([("gb18030", 0.0, 0.1, "\u6625\u7720"), ("cp1252", 0.005, 0.1, "\u00e4\u00f6")], None),
    # readings as good as each other: all named, the best first
    ([("cp932", 0.0, 0.0, "\u3042\u6625"), ("cp949", 0.0, 0.0, "\ub300\ud55c"),
      ("koi8_r", 0.2, 0.5, "\u0416")],
     "Japanese text in cp932, or Korean text in cp949 (charset-normalizer's guesses)"),
    ([("cp1253", 0.0, 0.5, "\u0391"), ("iso8859_7", 0.0, 0.5, "\u0391")],
     "Greek text in cp1253 or iso8859_7 (charset-normalizer's guesses)"),
    # the best a UTF's, or in no script of a legacy codec's
    ([("utf_8", 0.0, 0.5, "\u0416")], None),
    ([("mac_iceland", 0.0, 0.5, "\u02c6\u00e4")], None),
])
def test_the_guess_is_the_most_coherent_of_the_least_messy_readings(monkeypatch, readings,
                                                                    said):
    """``_script_guess`` over charset-normalizer's readings (stand-ins): which it takes."""
    import charset_normalizer

    import fastrnn.corpus as corpus
    monkeypatch.setattr(charset_normalizer, "from_bytes",
                        lambda raw, **options: [_Reading(*r) for r in readings])
    guess = corpus._script_guess(b"\xe0" * corpus.GUESS_BYTES)
    if said is None:
        assert guess is None
    else:
        assert said in str(guess), str(guess)


def test_a_failure_of_charset_normalizer_is_no_guess(monkeypatch, tmp_path):
    """A hint is not worth a traceback: an exception from charset-normalizer (3.4.8 raised
    UnicodeDecodeError from from_bytes) gives no guess, and the message it would have joined
    is given without it; the bytes a corpus keeps for its checks are not in its repr."""
    import charset_normalizer

    import fastrnn.corpus as corpus

    def broken(raw):
        raise UnicodeDecodeError("gb18030", raw, 0, 1, "illegal multibyte sequence")

    monkeypatch.setattr(charset_normalizer, "from_bytes", broken)
    assert corpus._script_guess(POEM.encode("gbk") * 20) is None
    with pytest.raises(CorpusError, match=r"\(for example --encoding latin-1\)$"):
        load(write(tmp_path, POEM.encode("gbk") * 20))
    monkeypatch.undo()
    loaded = load(write(tmp_path, "plain text, as text is\n" * 100))
    assert loaded.head == b"plain text, as text is\n" * 100 and "plain" not in repr(loaded)


def test_cjk_codecs_are_tried_when_no_codec_reads_a_text_with_little_mess(monkeypatch):
    """Chinese or Japanese among much ASCII (a program's translated messages) read with more
    mess than charset-normalizer's default threshold in every codec: the CJK codecs are
    tried then, with more (they were told --encoding latin-1)."""
    import charset_normalizer

    import fastrnn.corpus as corpus
    calls = []

    def from_bytes(raw, **options):
        calls.append(options)
        return [_Reading("gb18030", 0.3, 0.1, "\u6253\u5f00")] if options else []

    monkeypatch.setattr(charset_normalizer, "from_bytes", from_bytes)
    assert str(corpus._script_guess(b"\xb4\xf2" * corpus.GUESS_BYTES)) == \
        "CJK text in gb18030 (charset-normalizer's guess)"
    assert calls[0] == {} and calls[1]["threshold"] == 0.5
    assert set(calls[1]["cp_isolation"]) >= {"gb18030", "big5", "cp932", "cp949"}
