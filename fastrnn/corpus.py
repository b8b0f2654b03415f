"""A training text: read from disk, its vocabulary, encoded ids, and the train/validation split.

    corpus = load("input.txt", val_fraction=0.1)
    corpus.vocab, corpus.train, corpus.val    # Vocab, ids (uint8 when V <= 256), ids

The whole file is decoded once and encoded a block at a time into the smallest integer type
that holds its ids, so a 100 MB ASCII corpus needs about 300 MB at its peak and 100 MB after.
"""

import codecs
import collections
import decimal
import hashlib
import itertools
import numbers
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cli, files, validate
from .vocab import UnknownCharacters, Vocab, describe

# more than this share of control characters (but NUL, tabs and line breaks): binary data
BINARY_CONTROLS = 0.05
# more than this share of characters, read as UTF-16, that are two bytes of ASCII text each:
# 8-bit text read as UTF-16 (all of them; a Chinese text's are about a fifth)
EIGHT_BIT_PAIRS = 0.9
# more than this share of control codes U+0080-U+009F read as EBCDIC: ASCII text (its spaces
# come out as U+0080, its line breaks as U+008E)
C1_CONTROLS = 0.05
# more than this share of NUL characters (or of bytes below 0x20): UTF-16 or -32 text read as
# 8-bit (ASCII in it: one in two, three in four), or binary data
NUL_SHARE = 0.1
# UTF-16 text's NULs, or bytes below 0x20 (its ASCII's, Greek's or Cyrillic's high bytes),
# fall in one place of every 2: at least this share of them (binary data's fall anywhere:
# half); UTF-32's top two bytes of every 4 are below 0x20 for any character (``_wide``)
WIDE_PLACE = 0.9
# at most this share of code units that do not decode, in a text whose NULs fall as UTF-16's or
# -32's: damaged text of it (binary data's: many)
DAMAGED_UNITS = 0.01
# more than this share of code units that are line breaks and spaces (``BREAKS``), read as
# UTF-16, in text that decodes so: UTF-16 text (Chinese, Korean, Japanese: with too few NULs
# or control codes to tell by where they fall; 8-bit text's are none: they need a zero byte)
SPACED = 0.001
BREAKS = (0x0A, 0x20)  # the code units of a line break and a space (``_utf16_order``)
# more than this many runs of non-ASCII bytes that are UTF-8 for each that is not, in the bytes
# around one that is not: a stray byte in UTF-8 text (not text in another encoding)
UTF8_RUNS = 9
# the scripts of legacy codecs (``_script_guess``), as their letters' Unicode names start, and
# as said (half-width katakana's names start HALFWIDTH: cp932 reads latin-1's signs so)
SCRIPTS = {"CJK": "CJK", "HANGUL": "Korean", "HIRAGANA": "Japanese", "KATAKANA": "Japanese",
           "CYRILLIC": "Cyrillic", "GREEK": "Greek", "ARABIC": "Arabic", "HEBREW": "Hebrew",
           "THAI": "Thai"}
CJK_CODECS = ("gb18030", "big5", "cp932", "euc_jis_2004", "cp949")  # (tried when no codec reads
# a text with little mess: CJK text among much ASCII reads with more)
GUESS_BYTES = 256  # bytes past ASCII a text needs for another script's codec to be guessed
GUESS_RIVAL = 0.05  # readings this close to the least mess (charset-normalizer's chaos) compete
GUESS_TIE = 0.01  # ... and this close in coherence (and mess) are as good as each other
RUNS = 1000  # runs of non-ASCII bytes a UTF-8 check counts (``_utf8_runs``)
_HIGH_BYTES = bytes(range(0x80, 0x100))
_TEXT_BYTES = frozenset([0x09, 0x0A, 0x0D, *range(0x20, 0x7F)])  # (ASCII text: those bytes)
CONTROL_CODES = "".join(map(chr, [*range(1, 9), *range(14, 32), 127]))  # (those counted: C0 and
# DEL, but NUL, \t, \n, \v, \f and \r)
COUNT_BLOCK = 1 << 20  # ids a text check (``oddities``) counts at a time
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
    # the file's first COUNT_BLOCK bytes (``oddities``; not in repr or ==: up to 1 MiB)
    head: bytes = field(default=b"", repr=False, compare=False)
    dropped: int = 0    # characters left out (``load``'s skip_unknown), and which they were
    dropped_chars: tuple = ()

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
        try:
            known = isinstance(encoding, str) and codecs.lookup(encoding)
        except LookupError:
            known = False
        raise CorpusError((f"{encoding!r} is not a text encoding (Python's codec of that name "
                           f"does not turn bytes into text)" if known else
                           f"unknown encoding {encoding!r}")
                          + ": give a text encoding, such as utf-8 or latin-1") from None


def model_encoding(given, recorded, reading):
    """(the encoding to read a text for a model in, a note or None): ``given`` (--encoding) if
    not None, else ``recorded``, the one its training text was read in
    (``Checkpoint.encoding``), else utf-8; the note, where it is ``recorded`` and not UTF-8,
    says that ``reading`` (what is read: "the texts") is read in it. A CorpusError for one that
    is not a text encoding (a recorded one named as the checkpoint's)."""
    if given is not None or recorded is None:
        encoding = "utf-8" if given is None else given
        check_encoding(encoding)
        return encoding, None
    try:
        check_encoding(recorded)
    except CorpusError:
        raise CorpusError(f"the checkpoint says its text was read as {recorded!r}, which is not "
                          f"a text encoding this Python knows: give --encoding") from None
    return recorded, None if codec_name(recorded) in ("utf-8", "utf-8-sig") else (
        f"reading {reading} as {recorded}, the encoding the model's training text was read in "
        f"(--encoding sets another)")


def bad_byte(error, end):
    """(the byte, its offset in the file) a UnicodeDecodeError names, for a decode of bytes that
    end at offset ``end`` of the file: ``error.object`` is what was decoded, which ends there (it
    may begin after a byte-order mark the codec took off, or with a character a block split)."""
    return error.object[error.start], end - len(error.object) + error.start


# byte-order marks by family, little-endian first (a text that starts with UTF-32's
# little-endian mark starts with UTF-16's too: the family given decides)
MARKS = {"utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
         "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-8": (codecs.BOM_UTF8,)}


def byte_order(encoding, head):
    """"le" or "be": the byte order UTF-16 or -32 ``encoding`` reads a file whose first bytes
    are ``head`` in: its own (utf-16-le), its byte-order mark's, else this machine's (as
    ``bytes.decode`` reads one without a mark)."""
    name = codec_name(encoding)
    if name.endswith(("-le", "-be")):
        return name[-2:]
    for order, mark in zip(("le", "be"), MARKS.get(name[:6], ())):
        if head.startswith(mark):
            return order
    return sys.byteorder[0] + "e"


def _mark(head):
    """(family, order) of the byte-order mark bytes ``head`` start with (UTF-32's before
    UTF-16's), or None."""
    for family, marks in MARKS.items():
        for order, mark in zip(("le", "be"), marks):
            if head.startswith(mark):
                return family, order
    return None


def incremental_decoder(encoding, head):
    """An incremental decoder of ``encoding`` that reads a file whose first bytes are ``head``
    as ``bytes.decode`` reads it whole (``read_text``): UTF-16 or -32 without a byte-order mark
    in this machine's byte order, where Python's incremental decoder refuses it."""
    name = codec_name(encoding)
    if name in ("utf-16", "utf-32") and not head.startswith(MARKS[name]):
        encoding = f"{name}-{byte_order(name, head)}"
    return codecs.getincrementaldecoder(encoding)()


def codec_name(encoding):
    """An encoding's codec name (utf8 and UTF-8 are utf-8), or the name if it names none."""
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        return encoding


def encoding_hint(raw, encoding):
    """What to pass with --encoding for a file whose bytes (or first block of them) ``raw``
    did not decode as ``encoding``: the family a byte-order mark names (one of the encoding's
    own family, in its order, is ``undecodable``'s: damaged text); UTF-16 or -32 where its NULs
    or control codes fall as in such text (``_wide``); that no encoding will do for what looks
    like binary data (over ``BINARY_CONTROLS`` of its bytes ``CONTROL_CODES``, or over
    NUL_SHARE NULs: then any 8-bit encoding decodes it, as nonsense); UTF-8 where its bytes
    read as that (or, for UTF-16 or -32, are ASCII text); Windows-1252 for bytes
    0x80-0x9f it reads (its quotes, dashes and signs, which latin-1 would read as control
    characters in silence), or the codec of another script's text (``_script_guess``: Chinese
    in gb18030, Russian in cp1251); else an example."""
    given = codec_name(encoding)
    first = np.frombuffer(raw[:COUNT_BLOCK], np.uint8)  # (its first MiB: enough to tell)
    if (mark := _mark(raw[:4])) and not _marked(encoding, raw[:4]):
        return (f"it starts with a {mark[0].upper()} byte-order mark: --encoding "
                f"{_bom_reader(mark[0])}")
    if clause := _wide_clause(raw[:COUNT_BLOCK], "its bytes", encoding, failed=True):
        return clause
    codes = np.frombuffer(CONTROL_CODES.encode("ascii"), np.uint8)
    controls = np.count_nonzero(np.isin(first, codes)) / max(1, first.size)
    if controls > BINARY_CONTROLS:
        return (f"if it is text at all: {controls:.0%} of its bytes are control codes, as in "
                f"binary data")
    nuls = np.count_nonzero(first == 0) / max(1, first.size)
    if nuls > NUL_SHARE:
        return f"if it is text at all: {nuls:.0%} of its bytes are NUL (\\x00), as in binary data"
    if not given.startswith("utf-8") and _utf8(raw[:COUNT_BLOCK]):
        return "its bytes read as UTF-8: --encoding utf-8"
    if given.startswith(("utf-16", "utf-32")) and raw[:COUNT_BLOCK].isascii():  # (8-bit text:
        # no NULs, which UTF-16's and -32's ASCII have)
        return (f"its {'first MiB is' if len(raw) > COUNT_BLOCK else 'bytes are'} ASCII text, "
                f"not {given}: --encoding utf-8")
    if guess := _script_guess(raw):
        if given in map(codec_name, guess.codecs):
            return f"its bytes read as {guess}: damaged {given} text, rather than another encoding?"
        return f"its bytes read as {guess}: --encoding {guess.codecs[0]}"
    if given != "cp1252" and _windows_1252(raw):
        return ("for example --encoding cp1252, Windows' Western European: it has bytes "
                "0x80-0x9f, its quotes, dashes and signs, which latin-1 reads as control "
                "characters")
    return "for example --encoding latin-1"


def _script_guess(raw):
    """A ``Guess``: charset-normalizer's readings of bytes ``raw`` (a text's first, cut to whole
    lines: a multibyte codec refuses a character the cut splits) if it is text in a legacy codec
    of a script other than the Latin alphabet (Chinese in gb18030 or big5, Japanese in cp932,
    Korean in cp949, Russian in cp1251 or koi8_r, Greek, Arabic, Hebrew, Thai: SCRIPTS); else
    None. It needs GUESS_BYTES bytes past ASCII (a dozen Chinese characters in GBK were read as
    Korean). Its best reading: of those whose mess ratio (chaos) is within GUESS_RIVAL of the
    least, the most coherent (its letters' frequencies a language's: German latin-1 was read as
    shift_jis with less mess, Hebrew as cp1251), with most of its letters past ASCII in one of
    SCRIPTS (``_script``); with it, the readings within GUESS_TIE of it in both, as good as it
    (iso8859_7 and cp1253; cp932 and cp949 for a little Japanese), none of them Latin. Where no
    reading has little mess, the CJK codecs' (CJK_CODECS) with more."""
    raw = raw[:COUNT_BLOCK]
    raw = raw[:raw.rfind(b"\n") + 1] or raw
    if len(raw) - len(raw.translate(None, _HIGH_BYTES)) < GUESS_BYTES:
        return None
    try:
        import charset_normalizer  # (here: only a text that fails to decode, or reads as
    except ImportError:            # Latin letters in an 8-bit codec, needs it)
        return None
    try:  # (a hint: a failure of the library's, 3.4.8's UnicodeDecodeError, is no hint)
        matches = list(charset_normalizer.from_bytes(raw))
        if not matches:  # (Chinese or Japanese among much ASCII, a program's messages: none
            matches = list(charset_normalizer.from_bytes(  # at its default threshold)
                raw, threshold=0.5, cp_isolation=list(CJK_CODECS)))
        return _guess(sorted(matches, key=lambda m: m.chaos))
    except Exception:
        return None


def _guess(matches):
    """``_script_guess``'s choice among charset-normalizer's ``matches``, least messy first."""
    if not matches:
        return None
    near = [m for m in matches if m.chaos <= matches[0].chaos + GUESS_RIVAL]
    best = max(near, key=lambda m: (m.coherence, -m.chaos))
    if codec_name(best.encoding).startswith(("utf-8", "utf-16", "utf-32")) or \
            (script := _script(str(best))) not in SCRIPTS:
        return None
    guesses = {script: [best.encoding]}
    for m in near:
        if m is not best and m.coherence >= best.coherence - GUESS_TIE and \
                abs(m.chaos - best.chaos) <= GUESS_TIE:
            if (other := _script(str(m))) not in SCRIPTS:
                return None  # (as good a reading in Latin letters: not another script's text)
            if m.encoding not in guesses.setdefault(other, []):
                guesses[other].append(m.encoding)
    return Guess([(SCRIPTS[k], codecs) for k, codecs in guesses.items()])


class Guess(list):
    """``_script_guess``'s readings: [(script, [codec, ...]), ...], the best first."""

    @property
    def codecs(self):
        return [c for _, codecs in self for c in codecs]

    def __str__(self):
        """"Korean text in cp949 or euc_kr, or Japanese text in cp932 (charset-normalizer's
        guess)"."""
        readings = ", or ".join(f"{script} text in {' or '.join(codecs)}"
                                for script, codecs in self)
        return f"{readings} (charset-normalizer's guess{'es' if len(self.codecs) > 1 else ''})"


def _script(text):
    """The script (the first word of their Unicode names: "CYRILLIC", "LATIN") most of the
    letters past ASCII in ``text`` are in, or None if it has none. Letters: categories Lu, Ll
    and Lo, not modifier letters (the ˆ a Mac codec makes of ö), nor ª and º."""
    scripts = collections.Counter()
    for c, n in collections.Counter(c for c in text if c > "\x7f").items():
        if unicodedata.category(c) in ("Lu", "Ll", "Lo") and c not in "\u00aa\u00ba":
            scripts[unicodedata.name(c, "").partition(" ")[0]] += n
    return scripts.most_common(1)[0][0] if scripts else None


def _utf8(raw):
    """Whether bytes ``raw`` are UTF-8 with a character past ASCII (but for a character their
    end cuts)."""
    try:
        return not codecs.getincrementaldecoder("utf-8")().decode(raw, final=False).isascii()
    except UnicodeDecodeError:
        return False


def _low(codes):
    """Which of ``codes`` (a text's bytes) are below 0x20 but tab and line breaks: NUL and the
    control codes UTF-16's and -32's high bytes are in text of the alphabets below U+2000
    (ASCII's, Cyrillic's 0x04) and of any script past U+FFFF."""
    return (codes < 0x20) & ~np.isin(codes, (9, 10, 13))


def _windows_1252(raw):
    """Whether the bytes look like Windows-1252 text: bytes 0x80-0x9f, none it leaves
    undefined, and runs of non-ASCII bytes that are mostly not UTF-8 (a UTF-8 text with one bad
    byte has such bytes too: its quotes are e2 80 9c). From the first thousand runs."""
    if not re.search(rb"[\x80-\x9f]", raw) or re.search(rb"[\x81\x8d\x8f\x90\x9d]", raw):
        return False
    utf8, runs = _utf8_runs(raw)
    return runs - utf8 > utf8


def _utf8_runs(raw, limit=RUNS, last=False):
    """(runs that are UTF-8, runs) of the first ``limit`` runs of non-ASCII bytes in ``raw``
    (``last``: its last)."""
    found = re.finditer(rb"[\x80-\xff]+", raw)
    utf8 = runs = 0
    for run in collections.deque(found, limit) if last else itertools.islice(found, limit):
        runs += 1
        try:
            run.group().decode("utf-8")
            utf8 += 1
        except UnicodeDecodeError:
            pass
    return utf8, runs


def read_text(path, encoding="utf-8"):
    """The file's text, the sha256 of its bytes and its first ``COUNT_BLOCK`` bytes;
    CorpusError for anything that stops us."""
    path = files.path_of(path, CorpusError)
    check_encoding(encoding)
    kind = files.not_regular(path)
    if kind == "a directory":
        raise CorpusError(a_directory(path))
    if kind:
        raise CorpusError(f"{path} is {kind}, not a regular file: text is read from regular "
                          f"files only")
    try:
        _fits(path.stat().st_size, path, "to read")
        raw = path.read_bytes()
    except MemoryError:  # (a limit MemAvailable does not show: ulimit -v, a cgroup)
        raise CorpusError(f"{path}: not enough memory to read its {path.stat().st_size:,} "
                          f"bytes") from None
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file" + (
            " (the text is read from a file, not standard input: save it to one and give its "
            "name)" if str(path) == "-" else "")) from None
    except IsADirectoryError:
        raise CorpusError(a_directory(path)) from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not raw:
        raise CorpusError(f"{path} is empty")
    return decoded(raw, path, encoding), hashlib.sha256(raw).hexdigest(), raw[:COUNT_BLOCK]


def read_stream(read_some, name, encoding):
    """The text that ``read_some(n)`` gives until it gives nothing (``cli.stdin_to_read``'s),
    decoded in ``encoding`` as ``read_text`` decodes a file (text, from a stream without bytes:
    as it is); a CorpusError naming ``name`` for what stops it (nothing in it, too little
    memory, a byte not in the encoding)."""
    pieces, size = [], 0
    try:
        while piece := read_some(COUNT_BLOCK):
            size += len(piece)
            _fits(2 * size, name, "to read")  # (its pieces, then joined)
            pieces.append(piece)
        raw = pieces[0][:0].join(pieces) if pieces else b""
        del pieces
    except MemoryError:
        raise CorpusError(f"{name}: not enough memory to read its {size:,} bytes") from None
    except OSError as e:
        raise CorpusError(f"{name}: cannot read it ({e.strerror or e})") from None
    if not raw:
        raise CorpusError(f"{name} is empty")
    return raw if isinstance(raw, str) else decoded(raw, name, encoding)


def decoded(raw, path, encoding):
    """The bytes ``raw``, all of the file ``path`` (a name, for the message), decoded in
    ``encoding``; a CorpusError naming the first byte that is not valid there, or the memory
    it would need."""
    # decoded, and then its ids: a character is 1 byte of Python's text if the file is ASCII,
    # up to 4 if not; its id up to 4 (both held with the bytes for a moment)
    _fits(len(raw) * (2 if raw.isascii() else 8), path, "to decode and encode")
    try:
        return raw.decode(encoding)
    except MemoryError:
        raise CorpusError(f"{path}: not enough memory to decode its {len(raw):,} bytes") from None
    except UnicodeDecodeError as e:
        raise CorpusError(undecodable(path, encoding, e, len(raw), raw)) from None
    except UnicodeError as e:  # (a codec's own, not a DecodeError: punycode's)
        raise CorpusError(codec_failure(path, encoding, e)) from None


def undecodable(path, encoding, error, end, raw=None, before=None):
    """The message for a byte that is not valid ``encoding``: ``error``, the first
    UnicodeDecodeError of a decode of the file in order, of bytes that end at offset ``end``
    of the file (``bad_byte``); ``raw``, the file's first bytes, to hint at its encoding
    (``encoding_hint``). Two cases are not another encoding: the text's last bytes begin a
    character the file ends before, where the text before them reads as ``encoding``'s
    (``_reads_as``; ``before``, some of it, if ``error.object`` does not hold it): a file
    cut short, by ``head -c`` say (without that sign, both are said); and a stray byte in
    text that is UTF-8 around it (``_utf8_around``)."""
    byte, offset = bad_byte(error, end)
    where = f"{path}: byte 0x{byte:02x} at offset {offset} is not valid {encoding} " \
            f"({error.reason})"
    hint = f" ({encoding_hint(raw, encoding)})" if raw is not None else ""
    marked = _marked(encoding, (error.object if raw is None else raw)[:4])
    if marked == "UTF-8":  # (editors add it to text of any encoding: no sign)
        marked = None
    if error.end == len(error.object) and error.reason in (
            "unexpected end of data", "truncated data", "incomplete multibyte sequence"):
        cut = len(error.object) - error.start
        remove = (f"all before its last {cut} byte{'s' if cut > 1 else ''} reads as "
                  f"{encoding}: remove {'them' if cut > 1 else 'it'}")
        if before is None:
            before = _decoded_before(encoding, error.object, error.start)
        if marked or _reads_as(encoding, before) and not (
                codec_name(encoding).startswith(("utf-16", "utf-32")) and raw is not None
                and _utf8(raw[:COUNT_BLOCK])):  # (UTF-8 read as UTF-16 reads as CJK)
            return (f"{where}: the file ends in the middle of a character, as one cut short "
                    f"(by head -c, say) does; {remove}")
        return (f"{where}: the file ends in the middle of a character: if it was cut short (by "
                f"head -c, say), {remove}; if not, pass its encoding with --encoding{hint}")
    if marked:
        return (f"{where}; its byte-order mark says it is {marked} text: damaged there, not in "
                f"another encoding")
    if codec_name(encoding) in ("utf-8", "utf-8-sig") and \
            (runs := _utf8_around(error.object, error.start)):
        return (f"{where}, but the text around it is UTF-8 ({runs[0]:,} of {runs[1]:,} runs of "
                f"non-ASCII bytes there are): a stray byte, not another encoding? iconv -c -f "
                f"utf-8 -t utf-8 copies a text without the bytes that are not UTF-8")
    return f"{where}; pass its encoding with --encoding{hint}"


def _decoded_before(encoding, raw, at):
    """The text of the ``COUNT_BLOCK`` bytes of ``raw`` (from a file's start, a byte-order mark
    included) before offset ``at`` (where a character begins), a character the window's start
    cuts dropped; UTF-16 or -32 in the byte order ``byte_order`` gives."""
    name = codec_name(encoding)
    start = max(0, at - COUNT_BLOCK)
    if name.startswith(("utf-16", "utf-32")):
        if start:  # (on a code unit's start)
            start += (at - start) % (4 if name.startswith("utf-32") else 2)
        name = f"{name[:6]}-{byte_order(name, raw[:4])}"
    return raw[start:at].decode("utf-8" if name == "utf-8-sig" else name, "ignore")


def _marked(encoding, head):
    """``encoding``'s family ("UTF-8", "UTF-16" or "UTF-32") if bytes ``head`` start with a
    byte-order mark of it, in the encoding's byte order if it names one (text of it), else
    None."""
    mark, name = _mark(head), codec_name(encoding)
    if mark is None:
        return None
    family, order = mark
    ours = name in ("utf-8", "utf-8-sig") if family == "utf-8" else \
        name in (family, f"{family}-{order}")
    return family.upper() if ours else None


def _reads_as(encoding, text):
    """Whether ``text``, read as ``encoding``, looks like text of it: for UTF-16 or -32, not
    mostly 8-bit text read so (two ASCII bytes a character, or one and a zero byte: the other
    byte order); for UTF-8, some characters past ASCII (its own multibyte ones: ASCII alone is
    any encoding's); for another, never."""
    if not text:
        return False
    name = codec_name(encoding)
    if name.startswith(("utf-16", "utf-32")):
        sample = text[-COUNT_BLOCK // 16:]
        return sum(_two_text_bytes(c) or _swapped(c) for c in sample) < len(sample) / 2
    return name.startswith("utf-8") and not text.isascii()  # (a legacy multibyte codec, gbk
    # or shift_jis, reads UTF-8's bytes as its own characters: no sign)


def _utf8_around(raw, at):
    """(runs that are UTF-8, runs) of the runs of non-ASCII bytes around offset ``at`` of
    ``raw`` (the last RUNS / 2 before it and the first after, in the ``COUNT_BLOCK`` bytes
    around it, but a run the window's edge cuts), if more than ``UTF8_RUNS`` times as many are
    UTF-8 as are not; else None."""
    start, end = max(0, at - COUNT_BLOCK // 2), at + COUNT_BLOCK // 2
    before, after = raw[start:at], raw[at:end]
    if start > 0:
        before = before.lstrip(_HIGH_BYTES)
    if end < len(raw):
        after = after.rstrip(_HIGH_BYTES)
    counts = [_utf8_runs(before, RUNS // 2, last=True), _utf8_runs(after, RUNS // 2)]
    utf8, runs = (sum(n) for n in zip(*counts))
    return (utf8, runs) if utf8 > UTF8_RUNS * (runs - utf8) else None


def codec_failure(path, encoding, e):
    """The message for a codec's own error (a UnicodeError, not a UnicodeDecodeError, which
    names a byte): its reason, not Python's wrapping of it ("decoding with 'punycode' codec
    failed (...)")."""
    return (f"{path}: not valid {encoding} ({e.__cause__ or e}); pass its encoding with "
            f"--encoding")


def _counts(ids, size):
    """How many times each id 0..size-1 occurs in ``ids``, counted ``COUNT_BLOCK`` ids at a
    time (np.bincount takes each block as 8-byte integers: 8 MB more memory for any text)."""
    counts = np.zeros(size, np.int64)
    for i in range(0, len(ids), COUNT_BLOCK):
        counts += np.bincount(ids[i:i + COUNT_BLOCK], minlength=size)
    return counts


def _latin(counts, vocab):
    """Whether a text's characters past ASCII (``counts`` of ``vocab``'s) that are letters are
    mostly Latin ones, or none are letters: what text in another script's legacy codec read
    as latin-1 or cp1252 is made of."""
    letters = latin = 0
    for c, n in zip(vocab.chars, counts):
        if c > "\x7f" and c.isalpha():
            letters += int(n)
            latin += int(n) * unicodedata.name(c, "").startswith("LATIN")
    return latin >= letters / 2


def _two_text_bytes(c):
    """Whether character c's UTF-16 code unit is two bytes of ASCII text (printable, tab or
    line break): what 8-bit text read as UTF-16 is made of (CJK-looking characters)."""
    code = ord(c)
    return code <= 0xFFFF and all(b in _TEXT_BYTES for b in (code >> 8, code & 0xFF))


def _swapped(c):
    """Whether character c's UTF-16 code unit is an ASCII text byte then a zero byte: what
    UTF-16 text read in the other byte order makes of ASCII (its letters U+4100-U+7A00)."""
    code = ord(c)
    return code <= 0xFFFF and code & 0xFF == 0 and code >> 8 in _TEXT_BYTES


def _crlf(ids, cr, lf):
    """(\\r followed by \\n, all \\r) counts in ``ids`` but its last, a block at a time."""
    pairs = crs = 0
    for i in range(0, len(ids) - 1, COUNT_BLOCK):
        block = ids[i:i + COUNT_BLOCK + 1]  # (and the next block's first, which may be a \n)
        at = np.flatnonzero(block[:-1] == cr)
        pairs += np.count_nonzero(block[at + 1] == lf)
        crs += len(at)
    return pairs, crs


def oddities(corpus, encoding):
    """What a new run's training text holds that text rarely does, each in a sentence (the
    model would learn it as it is, in silence): binary data; its first bytes as UTF-16 or -32
    text's (``_wide_clause``: read as UTF-8, valid when the text is ASCII); 8-bit text read
    as UTF-16 (characters that are two bytes of ASCII text each); UTF-8 read as another
    encoding; another script's text (Chinese, Russian) read as Latin letters (``_latin``,
    ``_script_guess``); Windows-1252's quotes and dashes read as latin-1's control codes;
    ASCII text read as EBCDIC (spaces as control codes); a byte-order mark; Windows line endings."""
    path, ids, vocab = corpus.path, corpus.train, corpus.vocab
    if not len(ids):
        return []
    counts = _counts(ids, len(vocab))

    def share(chars):
        return sum(int(counts[vocab.index[c]]) for c in chars if c in vocab.index) / len(ids)

    said, codec = [], codec_name(encoding)
    # its first bytes (re-encoded, if not kept: a byte-order mark the codec took is not there)
    head = corpus.head or _first_bytes(vocab.decode(ids[:COUNT_BLOCK]), encoding)
    controls = share([c for c in vocab.chars if c in CONTROL_CODES])  # (C1's are below)
    nuls = share("\x00")
    c1 = share([c for c in vocab.chars if "\x80" <= c <= "\x9f"])
    if _ebcdic(encoding) and c1 > C1_CONTROLS:  # (first: EBCDIC reads ASCII's . ' - / as C0)
        said.append(f"{c1:.0%} of the characters of {path} read as {encoding} (an EBCDIC code "
                    f"page) are control codes U+0080-U+009F, which text rarely holds: ASCII or "
                    f"UTF-8 text read as EBCDIC gives them (its spaces come out as U+0080); if "
                    f"it is, --encoding utf-8 reads it")
    elif clause := _wide_clause(head, f"the bytes of {path}", encoding):
        said.append(clause)  # (UTF-16 or -32 text without a byte-order mark)
    elif controls > BINARY_CONTROLS:
        said.append(f"{controls:.0%} of the characters of {path} are control characters "
                    f"(not counting NUL, tabs and line breaks): it looks like binary data, not "
                    f"text, and is trained on as it is")
    elif nuls > NUL_SHARE:
        said.append(_scattered_nuls(nuls, f"the characters of {path}"))
    elif codec.startswith("utf-16") and \
            (paired := share([c for c in vocab.chars if _two_text_bytes(c)])) > EIGHT_BIT_PAIRS:
        said.append(f"{paired:.0%} of the characters of {path} read as {encoding} are two bytes "
                    f"of ASCII text each, as 8-bit text (ASCII, UTF-8) read as UTF-16 gives: if "
                    f"it is, --encoding utf-8 reads it")
    elif not codec.startswith(("utf-8", "utf-16", "utf-32")) and _utf8(head):
        said.append(f"{path} read as {encoding} is UTF-8 (its bytes past ASCII are UTF-8's): "
                    f"if it is, --encoding utf-8 reads its characters as they are")
    elif not codec.startswith(("utf-8", "utf-16", "utf-32")) and not head.isascii() and \
            _latin(counts, vocab) and (guess := _script_guess(head)) and \
            codec not in map(codec_name, guess.codecs):
        said.append(f"{path} read as {encoding} is Latin letters and signs past ASCII, where "
                    f"its bytes read as {guess}: if it is, --encoding {guess.codecs[0]} reads "
                    f"its characters as they are")
    elif codec == "iso8859-1" and \
            any("\x80" <= c <= "\x9f" for c in vocab.chars):
        said.append(f"{path} read as {encoding} has characters U+0080-U+009F, control codes "
                    f"that text rarely holds: Windows-1252's quotes, dashes and signs come out "
                    f"as these; if it is Windows text, --encoding cp1252 reads them as meant")
    if "\ufeff" in vocab.index and ids[0] == vocab.index["\ufeff"]:
        reader = _bom_reader(encoding)
        said.append(f"{path} starts with a byte-order mark (U+FEFF), which the model learns "
                    f"as a character of its vocabulary"
                    + (f"; --encoding {reader} leaves it out" if codec != reader else ""))
    if "\r" in vocab.index and "\n" in vocab.index:
        pairs, crs = _crlf(ids, vocab.index["\r"], vocab.index["\n"])
        if pairs > crs / 2:
            said.append(f"{path} has Windows line endings (\\r\\n): the model learns the \\r "
                        f"before every line break as a character (and then needs it in every "
                        f"text it scores or starts from); a copy with Unix line endings "
                        f"(dos2unix) leaves it out")
    return said


def _wide(codes, low):
    """The UTF-16 or -32 codec (with its byte order) whose text has its NULs, or bytes below
    0x20 (``low``: whether each of a text's first bytes ``codes`` is one; more than NUL_SHARE
    of them), where they fall: UTF-32's in the top two bytes of every four (WIDE_PLACE of
    them: all for any character but a damaged one; the last two, little-endian), UTF-16's in
    one place of every two (WIDE_PLACE of them; binary data's fall anywhere), in the byte order
    ``_utf16_order`` gives; else None."""
    n = low.size
    fours = low[:n - n % 4].reshape(-1, 4).mean(axis=0) if n >= 4 else np.zeros(4)
    for top, low_place, order in (((2, 3), 0, "le"), ((0, 1), 3, "be")):
        if fours[list(top)].min() >= WIDE_PLACE and fours[low_place] < 0.5:
            return f"utf-32-{order}"
    twos = low[:n - n % 2].reshape(-1, 2).sum(axis=0)  # (in the first place, the second)
    if twos.sum() and twos.max() >= WIDE_PLACE * twos.sum():
        # (``_utf16_order`` tells but for bytes whose two places vary exactly as much; not
        # where the low bytes fall: ASCII's NULs are high bytes, Chinese text's below 0x20 low)
        return f"utf-16-{_utf16_order(codes) or ('le' if twos[1] > twos[0] else 'be')}"
    return None


def _utf16_order(codes):
    """"le" or "be": the byte order of UTF-16 text whose bytes are ``codes`` (a uint8 array):
    the one that reads more of its code units as line breaks and spaces (``BREAKS``; the
    other reads them as U+0A00 and U+2000); else the one whose high bytes vary less (lower
    entropy): a script's characters share a few high bytes (ASCII's 0x00, Cyrillic's 0x04,
    Chinese's 0x4E-0x9F) and spread over the low ones. (Not where its bytes below 0x20 fall:
    ASCII's NULs are high bytes, but an eighth of Chinese characters' low bytes are, U+4E0D's,
    and its comma U+FF0C's.) None if neither tells."""
    codes = codes[:codes.size - codes.size % 2]
    breaks = [np.count_nonzero(np.isin(codes.view(f"{end}u2"), BREAKS)) for end in "<>"]
    if breaks[0] != breaks[1]:
        return "le" if breaks[0] > breaks[1] else "be"
    entropy = []
    for place in (0, 1):  # (the first byte of each two, the second)
        p = np.bincount(codes[place::2], minlength=256) / max(1, codes.size // 2)
        p = p[p > 0]
        entropy.append(float(-(p * np.log2(p)).sum()))
    if abs(entropy[0] - entropy[1]) < 1e-9:
        return None
    return "be" if entropy[0] < entropy[1] else "le"


def _spaced_utf16(raw):
    """(codec, share) where bytes ``raw`` (a text's first) are UTF-16 text without NULs or
    control codes enough to tell (Chinese, Korean or Japanese text: ``_wide`` tells by them):
    in the order ``_utf16_order`` gives, over SPACED of their code units are line breaks and
    spaces (``BREAKS``, ``share`` of them; none of 8-bit text's are: they need a zero byte),
    and they read as text (``_plain``); else None."""
    codes = np.frombuffer(raw[:len(raw) - len(raw) % 2], np.uint8)
    order = _utf16_order(codes) if codes.size else None
    if order is None:
        return None
    units = codes.view(f"{'<' if order == 'le' else '>'}u2")
    share = np.count_nonzero(np.isin(units, BREAKS)) / units.size
    if share <= SPACED:
        return None
    return (f"utf-16-{order}", share) if _plain(raw, f"utf-16-{order}") else None


def _plain(raw, codec):
    """Whether bytes ``raw`` (a text's first) read as text of ``codec`` (UTF-16 or -32):
    under DAMAGED_UNITS of the characters are code units that do not decode, control codes
    (but tab and line breaks), private code points or ones unassigned in the basic plane (past
    it, Unicode assigns new emoji this Python may not know). (Damaged text's are a few; binary
    data's, many: 16-bit numbers have NULs where UTF-16 text has them.)"""
    unit = 4 if codec.startswith("utf-32") else 2
    text = raw[:len(raw) - len(raw) % unit].decode(codec, "replace")
    odd = sum(n for c, n in collections.Counter(text).items() if c == "\ufffd" or
              c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Co", "Cs") or
              c <= "\uffff" and unicodedata.category(c) == "Cn")
    return odd <= DAMAGED_UNITS * len(text)


def _wide_clause(raw, what, encoding, failed=False):
    """"N% of ``what`` are NUL ..., as in UTF-16 text read as ...: if it is, --encoding ...
    reads it" for bytes ``raw`` (a text's first) whose NULs, or bytes below 0x20 (``_low``),
    fall as in UTF-16 or -32 text (``_wide``), or that are UTF-16 text with line breaks and
    spaces but few of those bytes (``_spaced_utf16``), and that read as text so (``_plain``);
    "" if none does, or if the codec is ``encoding``'s own (in the order it reads), unless the
    text ``failed`` to decode so: then damaged text."""
    first = np.frombuffer(raw, np.uint8)
    for mask, named in ((first == 0, "NUL (\\x00)"), (_low(first), "NUL or control codes below "
                                                                 "0x20")):
        share = np.count_nonzero(mask) / max(1, mask.size)
        wide = _wide(first, mask) if share > NUL_SHARE else None
        if wide is None:
            continue
        if wide == _ordered(encoding, raw):
            return (f"its {named.split(' (')[0]} bytes fall as in {wide} text: damaged "
                    f"{wide[:6].upper()} text, rather than another encoding?") if failed else ""
        if _plain(raw, wide):
            return (f"{share:.0%} of {what} are {named}, as in {wide[:6].upper()} text read as "
                    f"{encoding}: if it is, --encoding {wide} reads it")
    if (spaced := _spaced_utf16(raw)) is not None:
        wide, share = spaced
        if wide == _ordered(encoding, raw):
            return (f"its bytes read as {wide} are text, with line breaks and spaces: damaged "
                    f"UTF-16 text, rather than another encoding?") if failed else ""
        return (f"{what} read as {wide} are text, with line breaks and spaces ({share:.0%} of "
                f"the characters), as UTF-16 text read as {encoding} gives: if it is, "
                f"--encoding {wide} reads it")
    return ""


def _scattered_nuls(share, what):
    """The sentence for NULs, a ``share`` of ``what``, that do not fall as UTF-16's or -32's
    (``_wide_clause`` found none)."""
    return (f"{share:.0%} of {what} are NUL (\\x00), not between letters as in UTF-16 or -32 "
            f"text: it looks like binary data")


def _ordered(encoding, head):
    """``encoding``'s codec name, a UTF-16 or -32 one with the byte order it reads a file
    whose first bytes are ``head`` in (``byte_order``)."""
    name = codec_name(encoding)
    return f"{name[:6]}-{byte_order(name, head)}" if name.startswith(("utf-16", "utf-32")) \
        else name


def _first_bytes(text, encoding):
    """The bytes of ``text`` (a file's first, read as ``encoding``) as they were in the file
    (as near as can be: a byte-order mark the codec took off is not there)."""
    name = _ordered(encoding, b"")
    try:
        return text.encode("utf-8" if name == "utf-8-sig" else name, "surrogatepass")
    except UnicodeError:  # (a codec that does not encode all it decodes: idna's)
        return b""


def _ebcdic(encoding):
    """Whether ``encoding`` is an EBCDIC code page (its space is byte 0x40)."""
    try:
        return b"\x40".decode(encoding) == " "
    except (UnicodeError, LookupError):  # (UTF-16's for one byte; punycode's)
        return False


def a_directory(path, scoring=False):
    """The message for a directory given as the text; char-rnn's data directories hold theirs
    as input.txt (data/tinyshakespeare/input.txt), which it names. A directory of several
    texts (.txt files) is read as one text by none of these tools: it says how to make one,
    or with ``scoring`` (score's files, several at once) how to give them all."""
    meant = path / "input.txt"
    try:
        if meant.is_file():
            return f"{path} is a directory, not a text file (did you mean {meant}?)"
        # (the names a shell's *.txt reads: not hidden ones)
        texts = sorted(p.name for p in path.iterdir() if p.suffix == ".txt"
                       and not p.name.startswith(".") and p.is_file())
    except OSError:  # (one that cannot be listed or searched)
        texts = []
    glob = cli.quoted(("./" if str(path).startswith("-") else "") + str(path)) + \
        "/*.txt"  # (-dir/*.txt would be an option to cat)
    return f"{path} is a directory, not a text file" + (
        f" (it holds {len(texts)} .txt files: " + (
            f"{glob} gives them all" if scoring else
            f"to train on them all, join them into one, as cat {glob} > all.txt does") + ")"
        if len(texts) > 1 else f" (did you mean {path / texts[0]}?)" if texts else "")


def _fits(need, path, what):
    try:
        validate.fits(need, f"{path} ({what})")
    except ValueError as e:
        raise CorpusError(str(e)) from None


def unknown_hint(text, missing, encoding, start=True):
    """What explains some of the characters ``missing`` from a model's vocabulary in
    ``text`` read as ``encoding`` (``start``: the file's beginning), as "; ..." clauses, or
    "": a byte-order mark the model never saw (and the codec that reads past it); Windows line
    endings, when its text had none and most of its \\r are theirs (as ``oddities`` counts);
    NULs as many as UTF-16 or -32 text read as 8-bit gives (as ``oddities`` says them); bytes
    past ASCII that are UTF-8's, read in an 8-bit encoding (a model of latin-1 text, whose
    encoding ``score`` takes, given a UTF-8 file); 8-bit text read as UTF-16 (a model of
    UTF-16 text given an ASCII file)."""
    hint, codec = "", codec_name(encoding)
    if not codec.startswith(("utf-8", "utf-16", "utf-32")) and \
            any(c > "\x7f" for c in missing) and _utf8(_first_bytes(text[:COUNT_BLOCK], encoding)):
        hint += (f"; its bytes past ASCII are UTF-8's, which {encoding} reads as other "
                 f"characters: if it is UTF-8, --encoding utf-8 reads it")
    elif codec.startswith("utf-16") and sum(map(_two_text_bytes, missing)) > len(missing) / 2 \
            and b"\0" not in (first := _first_bytes(text[:COUNT_BLOCK], encoding)) and \
            (first.isascii() or _utf8(first)):  # (UTF-16 text has NULs: its line breaks' high
        # bytes)
        hint += ("; most of them are two bytes of ASCII text each, as 8-bit text (ASCII, "
                 "UTF-8) read as UTF-16 gives, and its bytes are that: if it is, --encoding "
                 "utf-8 reads it")
    nuls = text.count("\x00") / max(1, len(text)) if "\x00" in missing else 0
    if nuls > NUL_SHARE:
        hint += "; " + (_wide_clause(_first_bytes(text[:COUNT_BLOCK], encoding), "its bytes",
                                     encoding) or _scattered_nuls(nuls, "its characters"))
    reader = _bom_reader(encoding)
    if start and text.startswith("\ufeff") and "\ufeff" in missing and \
            codec_name(encoding) != reader:
        hint += f"; it starts with a byte-order mark: --encoding {reader} reads past it"
    if "\r" in missing:
        pairs, crs = text.count("\r\n"), text.count("\r")
        if pairs == crs and missing == ["\r"]:
            hint += ("; it has Windows line endings (\\r\\n), and the model's text had no "
                     "\\r: converted to \\n (dos2unix) it reads as the model's")
        elif pairs > crs / 2:
            hint += (f"; {'its' if pairs == crs else 'most of its'} '\\r' come from Windows "
                     f"line endings (\\r\\n): dos2unix removes them")
    return hint


def _bom_reader(encoding):
    """The codec that reads past a byte-order mark in text of ``encoding``'s family."""
    name = codec_name(encoding)
    return "utf-16" if name.startswith("utf-16") else "utf-32" if name.startswith("utf-32") \
        else "utf-8-sig"


class UnknownText(CorpusError):
    """The text has characters that the vocabulary it is encoded with lacks (``lacks``: what
    says so; ``hint``: what explains them, or ""). Its message says that skip_unknown=True
    drops them; ``said("--skip-unknown")``, a command's option does; ``plain``, neither (for
    a caller that knows another cause: an encoding, a text that changed)."""

    def __init__(self, lacks, hint=""):
        self.lacks, self.hint = lacks, hint
        super().__init__(self.said("skip_unknown=True"))

    def __reduce__(self):  # (pickled and copied from its parts, not from its message)
        return type(self), (self.lacks, self.hint)

    @property
    def plain(self):
        return self.lacks + self.hint

    def said(self, skip):
        return f"{self.lacks} ({skip} drops them){self.hint}"


def _a_fraction(value):
    """Whether ``value`` is a number in [0, 1) (a Fraction or Decimal too)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        return False
    try:
        return bool(0 <= value < 1)
    except ArithmeticError:  # (a Decimal's NaN, which does not compare)
        return False


def load(path, val_fraction=0.1, encoding="utf-8", vocab=None, skip_unknown=False):
    """Read ``path`` and hold out its last ``val_fraction`` of characters for validation.

    ``vocab``: encode with this vocabulary (a resumed run) instead of the text's own; characters
    outside it raise CorpusError naming them, or with ``skip_unknown`` are left out (their
    count and set: the Corpus's ``dropped`` and ``dropped_chars``).
    """
    if not _a_fraction(val_fraction):
        raise CorpusError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    try:
        skip_unknown = validate.flag("skip_unknown", skip_unknown)
    except ValueError as e:
        raise CorpusError(str(e)) from None
    if vocab is not None:  # (a str was taken for an encoding)
        try:
            Vocab.checked(vocab, "Vocab.from_text(text), or a checkpoint's")
        except ValueError as e:
            raise CorpusError(str(e)) from None
    text, digest, head = read_text(path, encoding)
    try:
        if vocab is None:
            try:
                vocab = Vocab.from_text(text)
            except ValueError:
                raise CorpusError(f"{path} holds only one distinct character ({text[0]!r}); "
                                  "a language model needs at least 2" if text else
                                  f"{path} is empty once decoded as {encoding} (a byte-order "
                                  f"mark alone)") from None
        dropped, dropped_chars = 0, ()
        if skip_unknown:
            ids, unknown = vocab.encode_known(text)
            dropped, dropped_chars = len(text) - len(ids), tuple(unknown)
        else:
            try:
                ids = vocab.encode(text)
            except UnknownCharacters as e:
                raise UnknownText(f"{path} has characters that the checkpoint's vocabulary "
                                  f"lacks: {describe(e.chars)}",
                                  unknown_hint(text, e.chars, encoding)) from None
    except MemoryError:
        raise CorpusError(f"{path}: not enough memory to encode its {len(text):,} "
                          f"characters") from None
    del text
    n_val = int(len(ids) * val_fraction)
    return Corpus(Path(path), vocab, ids[:len(ids) - n_val], ids[len(ids) - n_val:], digest,
                  head, dropped, dropped_chars)
