"""python -m fastrnn.score: the trainer's validation number for the same text, any file size."""

import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fastrnn import Vocab, checkpoint, cli, score, train
from fastrnn.corpus import load

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good "
        "fortune, must be in want of a wife.\n") * 60


@pytest.fixture(scope="module", params=[[], ["--cell", "lstm", "--num-layers", "2",
                                              "--dropout", "0.2"]], ids=["rnn", "lstm-L2"])
def run(tmp_path_factory, request):
    """A short training run (min-char-rnn's model, and a two-layer LSTM with dropout): (its
    directory, its corpus file)."""
    d = tmp_path_factory.mktemp("score")
    corpus = d / "input.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    assert train.main(["--data", str(corpus), "--hidden-size", "24", "--seq-length", "10",
                       "--iterations", "60", "--eval-every", "60", "--quiet",
                       "--out", str(d / "out"), *request.param]) == 0
    return d, corpus


def scored(argv):
    out = io.StringIO()
    return score.main(argv, out=out), out.getvalue()


def test_the_score_of_the_held_out_text_is_the_trainers_validation(run, tmp_path, monkeypatch):
    d, corpus = run
    data = load(corpus, 0.1)
    held_out = tmp_path / "val.txt"
    held_out.write_text(data.vocab.decode(data.val), encoding="utf-8")
    record = json.loads((d / "out" / "metrics.jsonl").read_text().splitlines()[-1])
    rc, out = scored([str(d / "out" / "checkpoint.npz"), str(held_out), "--json"])
    assert rc == 0
    result = json.loads(out)
    assert result["predicted"] == len(data.val) - 1 and result["skipped"] == 0
    assert math.isclose(result["nats_per_char"], record["val_loss"], rel_tol=1e-9)
    assert math.isclose(result["bits_per_char"], record["val_bpc"], rel_tol=1e-9)
    assert math.isclose(result["perplexity"], math.exp(record["val_loss"]), rel_tol=1e-9)
    # read 100 bytes at a time (bounded memory): the same number
    monkeypatch.setattr(score, "BLOCK", 100)
    rc, small = scored([str(d / "out" / "checkpoint.npz"), str(held_out), "--json"])
    assert rc == 0 and math.isclose(json.loads(small)["nats_per_char"], result["nats_per_char"],
                                    rel_tol=1e-12)


def test_several_files_a_line_each_and_unknown_characters(run, tmp_path, monkeypatch):
    """A line a file; the progress bar, cleared for each line, drawn again after each but the
    last (after the last it came back at 100%, only to be cleared: QA)."""
    d, corpus = run
    other = tmp_path / "other.txt"
    other.write_text("a good wife, a good fortune; {}", encoding="utf-8")
    ckpt = str(d / "out" / "checkpoint.npz")
    drawn = []
    monkeypatch.setattr(cli.DelayedBar, "refresh", lambda self: drawn.append(True))
    rc, out = scored([ckpt, str(corpus), str(other), "--skip-unknown"])
    assert drawn == [True]
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 2, out
    assert lines[0].startswith(f"{corpus}: ") and "bits/char, perplexity" in lines[0]
    assert lines[1].endswith("3 unknown characters skipped"), lines[1]  # ';', '{', '}'
    rc, out = scored([ckpt, str(other)])
    assert rc == 2 and out == ""


def test_standard_input_is_scored_as_a_file(run, tmp_path, capsys, monkeypatch):
    """``-`` reads standard input (kept in a temporary file, removed after, as every text is
    checked whole before any is scored): the file's numbers, named <stdin>; a bad one is refused
    before any output, naming <stdin>; given twice or closed, refused."""
    d, corpus = run
    ckpt = str(d / "out" / "checkpoint.npz")
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    stdin = lambda data: monkeypatch.setattr(  # noqa: E731
        "sys.stdin", type("Stdin", (), {"buffer": io.BytesIO(data)})())
    stdin(corpus.read_bytes())
    rc, out = scored([ckpt, "-", str(corpus), "--json"])
    piped, direct = map(json.loads, out.splitlines())
    assert rc == 0 and piped.pop("file") == "<stdin>" and direct.pop("file") == str(corpus)
    assert piped == direct and list(spool.iterdir()) == []
    stdin("a good wife {".encode())
    rc, out = scored([ckpt, str(corpus), "-"])
    assert rc == 2 and out == "" and list(spool.iterdir()) == []
    assert "error: <stdin> has characters the model never saw: '{'" in capsys.readouterr().err
    for argv, fragment in [([ckpt, "-", str(corpus), "-"], "- (standard input) is given more "
                             "than once: it can be read once"), ([ckpt, "-"], "- (standard "
                                                                 "input) is closed")]:
        monkeypatch.setattr("sys.stdin", None)
        rc, out = scored(argv)
        assert rc == 2 and out == "" and fragment in capsys.readouterr().err
    # the other files are checked first: a missing one is said before standard input is read
    stdin(corpus.read_bytes())
    rc, out = scored([ckpt, "-", str(tmp_path / "missing.txt")])
    assert rc == 2 and "missing.txt: no such file" in capsys.readouterr().err
    assert sys.stdin.buffer.tell() == 0 and list(spool.iterdir()) == []
    # a caller's text stream (no bytes: io.StringIO) is read too, in --encoding
    monkeypatch.setattr("sys.stdin", io.StringIO(corpus.read_text(encoding="utf-8")))
    rc, out = scored([ckpt, "-", "--json"])
    assert rc == 0 and json.loads(out)["nats_per_char"] == direct["nats_per_char"]
    monkeypatch.setattr("sys.stdin", io.StringIO("a good wife \u4e2d"))  # (not latin-1)
    rc, out = scored([ckpt, "-", "--encoding", "latin-1"])
    assert rc == 2 and "error: <stdin>: 'latin-1' codec can't encode character '\\u4e2d'" in \
        capsys.readouterr().err and list(spool.iterdir()) == []
    # a terminal: says it is read, and one Ctrl-D ends it (a buffered read went on past the
    # first, which then needed a second)
    reads = [corpus.read_bytes()[:5000], corpus.read_bytes()[5000:], b""]
    terminal = type("Raw", (), {"read1": lambda self, n: reads.pop(0),
                                "read": lambda self, n: pytest.fail("read past Ctrl-D")})()
    monkeypatch.setattr("sys.stdin", type("Stdin", (), {"buffer": terminal,
                                                        "isatty": lambda self: True})())
    rc, out = scored([ckpt, "-", "--json"])
    assert rc == 0 and json.loads(out)["nats_per_char"] == direct["nats_per_char"] and not reads
    assert "fastrnn.score: reading standard input (Ctrl-D on a line of its own ends it)\n" in \
        capsys.readouterr().err
    # a stream that cannot be read is said as such (it was "cannot keep standard input in ...")
    broken = type("Stdin", (), {"buffer": type("Raw", (), {"read": lambda self, n: (
        _ for _ in ()).throw(OSError(9, "Bad file descriptor"))})()})()
    monkeypatch.setattr("sys.stdin", broken)
    rc, out = scored([ckpt, "-"])
    assert rc == 2 and capsys.readouterr().err == ("fastrnn.score: error: cannot read standard "
                                                   "input (-): Bad file descriptor\n")
    assert list(spool.iterdir()) == []
    # the spool a score killed by SIGKILL left (a copy of its text, for ever) is removed by
    # the next score that reads -; one of a live process, or not named by a pid, is not
    import subprocess
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left = [spool / f"{score.SPOOL}{pid}-x1y2" for pid in (gone.pid, os.getppid())] + [
        spool / f"{score.SPOOL}abc-x1y2"]
    for folder in left:
        folder.mkdir()
        (folder / "stdin").write_bytes(corpus.read_bytes())
    stdin(corpus.read_bytes())
    rc, out = scored([ckpt, "-", "--json"])
    assert rc == 0 and [folder.exists() for folder in left] == [False, True, True]
    # a file named - is ./-
    (tmp_path / "-").write_bytes(corpus.read_bytes())
    monkeypatch.chdir(tmp_path)
    rc, out = scored([ckpt, "./-", "--json"])
    assert rc == 0 and json.loads(out)["file"] == "./-"


def test_sigterm_while_standard_input_is_kept_is_ctrl_c():
    """(SIGTERM left the temporary folder, a copy of standard input, behind): while held,
    SIGTERM is a KeyboardInterrupt, once (a second does not cut the clean-up short); the
    handler before it is put back after."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with score._stops_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before
    with score._stops_interrupt():  # (the second, heard in the clean-up: nothing)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
    with score._stops_interrupt() as quiet:  # (nor one once the removal begins: ``quiet``)
        quiet()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)


def test_a_file_name_with_a_line_break_is_one_line(run, tmp_path):
    """(a result line was two for a path holding \\n, where error lines escape it)"""
    d, corpus = run
    odd = tmp_path / "new\nline.txt"
    odd.write_bytes(corpus.read_bytes())
    rc, out = scored([str(d / "out" / "checkpoint.npz"), str(odd), str(corpus)])
    assert rc == 0 and out.count("\n") == 2 and out.startswith(
        str(tmp_path / "new\\nline.txt: ")), out


def test_score_file_checks_its_arguments(run, tmp_path):
    """From Python, ``score_file`` checks what the command line's parser checks: an unknown
    encoding is a ValueError, not codecs' LookupError; ``skip_unknown`` a bool, not a string
    that would be true."""
    d, _ = run
    ckpt = checkpoint.load(d / "out" / "checkpoint.npz")
    model, other = ckpt.to_model(), tmp_path / "other.txt"
    other.write_text("a good wife; {}", encoding="utf-8")
    state = ckpt.state[:, :, :1]
    with pytest.raises(ValueError, match="unknown encoding 'nonsense': give a text encoding"):
        score.score_file(model, ckpt.vocab, state, other, encoding="nonsense")
    with pytest.raises(ValueError, match="skip_unknown must be True or False, got 'no'"):
        score.score_file(model, ckpt.vocab, state, other, skip_unknown="no")
    assert score.score_file(model, ckpt.vocab, state, other, skip_unknown=True)["skipped"] == 3
    # another vocabulary than the model's: said as such (its ids were "outside the vocabulary")
    with pytest.raises(ValueError, match="^vocab must be a Vocab \\(the checkpoint's\\), got str$"):
        score.score_file(model, "abc", state, other)
    wider = Vocab(ckpt.vocab.chars + ["\u263a"])
    with pytest.raises(ValueError, match=f"^vocab has {len(wider)} characters and the model "
                                         f"{len(ckpt.vocab)}: give the Vocab the model's ids "
                                         f"stand for \\(the checkpoint's\\)$"):
        score.score_file(model, wider, state, other, skip_unknown=True)


def test_a_file_mostly_outside_the_vocabulary_is_warned_about(run, tmp_path, capsys):
    """--skip-unknown over a file whose characters are nearly all unknown printed a score of
    the few left as any other (and the count without its thousands separator)."""
    d, _ = run
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("\u4e00\u4e8c" * 600 + "a good wife", encoding="utf-8")
    single = tmp_path / "single.txt"
    single.write_text("\u4e00ab", encoding="utf-8")
    rc, out = scored([str(d / "out" / "checkpoint.npz"), str(single), "--skip-unknown"])
    assert rc == 0 and out.endswith("over 1 character, 1 unknown character skipped\n")
    rc, out = scored([str(d / "out" / "checkpoint.npz"), str(foreign), "--skip-unknown"])
    assert rc == 0 and out.endswith("over 10 characters, 1,200 unknown characters skipped\n")
    assert (f"fastrnn.score: warning: {foreign}: 1,200 of its characters are outside the "
            f"model's vocabulary and were skipped, more than the 10 scored\n"
            ) in capsys.readouterr().err

    # all unknown but one: too few left to score, and said why
    foreign.write_text("\u4e00\u4e8c" * 3 + "a", encoding="utf-8")
    rc, out = scored([str(d / "out" / "checkpoint.npz"), str(foreign), "--skip-unknown"])
    assert rc == 2 and (f"{foreign} has fewer than 2 characters to score once the 6 the "
                        f"vocabulary lacks are skipped") in capsys.readouterr().err


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p, "is a directory, not a text file"),
    (lambda p: (p / "texts", (p / "texts").mkdir(), (p / "texts" / "a.txt").write_text("ab"),
                (p / "texts" / "b.txt").write_text("ba"))[0],
     "texts is a directory, not a text file (it holds 2 .txt files: "),
    (lambda p: (p / "best.npz", (p / "best.npz").write_bytes(b"PK\x03\x04 ..."))[0],
     "best.npz is a zip archive (an .npz checkpoint?), not a text: give the checkpoint once"),
    (lambda p: p / "missing.txt", "missing.txt: no such file"),
    (lambda p: (p / "f", (p / "f").write_text("ab"))[0] / "x", "cannot read it (Not a directory)"),
    (lambda p: (p / "one.txt", (p / "one.txt").write_text("a"))[0], "fewer than 2 characters"),
    (lambda p: (p / "bad.txt", (p / "bad.txt").write_bytes(b"a\xff\xfeb"))[0],
     "byte 0xff at offset 1 is not valid utf-8"),
    (lambda p: (p / "odd.txt", (p / "odd.txt").write_text("a{b"))[0],
     "characters the model never saw: '{' (--skip-unknown"),
    (lambda p: (p / "many.txt", (p / "many.txt").write_text("a" + "".join(
        chr(0x4e00 + k) for k in range(13))))[0], "'\u4e09' and 3 more (--skip-unknown"),
    (lambda p: (p / "u16.txt", (p / "u16.txt").write_bytes("a good wife".encode("utf-16-be")))[0],
     "'\\x00' (--skip-unknown drops them); 50% of its bytes are NUL "
     "(\\x00), as in UTF-16 text read as utf-8: if it is, --encoding utf-16-be reads it"),
    (lambda p: (p / "crlf.txt", (p / "crlf.txt").write_bytes(b"a good\r\nwife\r\n"))[0],
     "'\\r' (--skip-unknown drops them); it has Windows line endings "
     "(\\r\\n), and the model's text had no \\r: converted to \\n (dos2unix) it reads "
     "as the model's"),
    (lambda p: (p / "mixed.txt", (p / "mixed.txt").write_bytes(
        "a good\r\nwife \u4e00\r\n".encode()))[0],
     "'\\r', '\u4e00' (--skip-unknown drops them); its '\\r' come from "
     "Windows line endings (\\r\\n): dos2unix removes them"),
])
def test_bad_inputs_are_one_line(run, tmp_path, capsys, make, fragment):
    d, corpus = run
    bad = str(make(tmp_path))
    rc = score.main([str(d / "out" / "checkpoint.npz"), bad], out=io.StringIO())
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and fragment in err, err
    assert err.startswith("fastrnn.score: error: ")
    if "2 .txt files" in fragment:  # (all given by score's own arguments, not joined)
        assert err.endswith(f"{bad}/*.txt gives them all)\n"), err
    # after a good file, nothing is scored: every file is checked first
    rc, out = scored([str(d / "out" / "checkpoint.npz"), str(corpus), bad])
    assert rc == 2 and out == "" and fragment in capsys.readouterr().err


def test_a_checkpoint_given_after_a_text_is_named(run, capsys):
    """(QA) The checkpoint and a text swapped: the error says which file is the archive and
    that the checkpoint comes first; a text that is no checkpoint alone, as before."""
    d, corpus = run
    rc = score.main([str(corpus), str(d / "out" / "checkpoint.npz")], out=io.StringIO())
    assert rc == 2 and capsys.readouterr().err == (
        f"fastrnn.score: error: {corpus} is not a fastrnn checkpoint (not an .npz archive); "
        f"{d / 'out' / 'checkpoint.npz'} is an .npz archive: the checkpoint comes first "
        f"(python -m fastrnn.score CHECKPOINT FILE...)\n")
    rc = score.main([str(corpus), str(corpus)], out=io.StringIO())
    assert rc == 2 and capsys.readouterr().err == (
        f"fastrnn.score: error: {corpus} is not a fastrnn checkpoint (not an .npz archive)\n")
    missing = d / "missing.npz"  # (a checkpoint mistyped: not the two swapped)
    rc = score.main([str(missing), str(d / "out" / "checkpoint.npz")], out=io.StringIO())
    assert rc == 2 and capsys.readouterr().err == (
        f"fastrnn.score: error: {missing}: no such checkpoint\n")


def test_a_pipe_given_with_a_bad_checkpoint_is_not_read(run, tmp_path):
    """(the swapped arguments' hint read every FILE: a named pipe no one writes to waited
    forever) The checkpoint's error comes at once."""
    d, corpus = run
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "fastrnn.score", str(d / "missing.npz"),
                           str(fifo)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 2 and done.stderr == \
        f"fastrnn.score: error: {d / 'missing.npz'}: no such checkpoint\n"


def test_a_decoding_error_names_its_byte_offset_across_blocks(run, tmp_path, capsys, monkeypatch):
    """The file is decoded a block at a time: a bad byte is named at its offset in the file,
    also when the character it breaks began in the block before (pending in the decoder)."""
    d, _ = run
    raw = "abc\u20acd".encode() + b"\xe2\x82\xff"  # a euro sign split 3|4, a broken one at 7
    (tmp_path / "split.txt").write_bytes(raw)
    with pytest.raises(UnicodeDecodeError) as whole:
        raw.decode("utf-8")
    monkeypatch.setattr(score, "BLOCK", 4)
    assert score.main([str(d / "out" / "checkpoint.npz"), str(tmp_path / "split.txt"),
                       "--skip-unknown"], out=io.StringIO()) == 2  # (the euro is not in it)
    assert whole.value.start == 7
    assert "split.txt: byte 0xe2 at offset 7 is not valid utf-8" in capsys.readouterr().err
    # utf-8-sig takes a byte-order mark off before decoding: its bytes still count
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + raw)
    assert score.main([str(d / "out" / "checkpoint.npz"), str(tmp_path / "bom.txt"),
                       "--skip-unknown", "--encoding", "utf-8-sig"], out=io.StringIO()) == 2
    assert "bom.txt: byte 0xe2 at offset 10 is not valid utf-8-sig" in capsys.readouterr().err
    # a file cut short in a character: its last block's end, not another encoding (the text
    # before is UTF-8's: it has a character past ASCII); without that sign, both are said
    (tmp_path / "cut.txt").write_bytes(("caf\u00e9 " + TEXT[:10]).encode() + "\u20ac".encode()[:2])
    assert score.main([str(d / "out" / "checkpoint.npz"), str(tmp_path / "cut.txt"),
                       "--skip-unknown"], out=io.StringIO()) == 2
    assert ("cut.txt: byte 0xe2 at offset 16 is not valid utf-8 (unexpected end of data): the "
            "file ends in the middle of a character, as one cut short (by head -c, say) does; "
            "all before its last 2 bytes reads as utf-8: remove them\n") in capsys.readouterr().err
    (tmp_path / "cut.txt").write_bytes(TEXT[:10].encode() + "\u20ac".encode()[:2])
    assert score.main([str(d / "out" / "checkpoint.npz"), str(tmp_path / "cut.txt")],
                      out=io.StringIO()) == 2
    assert ("cut.txt: byte 0xe2 at offset 10 is not valid utf-8 (unexpected end of data): the "
            "file ends in the middle of a character: if it was cut short (by head -c, say), all "
            "before its last 2 bytes reads as utf-8: remove them; if not, pass its encoding with "
            "--encoding (for example --encoding latin-1)\n") in capsys.readouterr().err  # (train's)


def test_a_line_ending_cut_by_a_block_is_still_named(run, tmp_path, capsys, monkeypatch):
    """A \\r\\n whose \\r ends a block still reads as a Windows line ending (the \\r goes
    to the next block); a \\r that ends the file at a block's end is still read (the last,
    empty read gives it), and scored."""
    d, _ = run
    ckpt = str(d / "out" / "checkpoint.npz")
    monkeypatch.setattr(score, "BLOCK", 7)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"a good\r\nwife\r\n")  # the first block: "a good\r"
    rc, out = scored([ckpt, str(crlf)])
    assert rc == 2 and "it has Windows line endings (\\r\\n)" in capsys.readouterr().err
    last = tmp_path / "last.txt"
    last.write_bytes(b"a good\r")  # (one block, ending in \r: held, then given at the end)
    rc, out = scored([ckpt, str(last), "--json", "--skip-unknown"])
    assert rc == 0 and json.loads(out)["skipped"] == 1, out
    assert score.main([ckpt, str(last)], out=io.StringIO()) == 2
    assert "'\\r' (--skip-unknown" in capsys.readouterr().err


def test_unix_line_endings_scored_by_a_model_of_windows_ones_are_warned_about(run, tmp_path,
                                                                              capsys,
                                                                              monkeypatch):
    """A model that learned \\r\\n expects a \\r before each line break: texts with \\n
    alone score worse than the same texts with them, and are warned about, in one line (the
    other way round is refused: above); not a text with its \\r or no line break, nor a
    model with \\r in its vocabulary that did not learn them (a stray \\r, a progress
    line's), nor one without \\r."""
    crlf, lf, lf_30, crlf_30 = (tmp_path / f"{name}.txt" for name in ("crlf", "lf", "lf_30",
                                                                       "crlf_30"))
    crlf.write_bytes(TEXT.replace("\n", "\r\n").encode())
    lf.write_bytes(TEXT.encode())
    lines = TEXT[:TEXT.index("\n") + 1] * 30  # (3,570 characters: the probe's lines, whole)
    lf_30.write_bytes(lines.encode())
    crlf_30.write_bytes(lines.replace("\n", "\r\n").encode())
    (tmp_path / "line.txt").write_bytes(b"a single man")
    stray = tmp_path / "stray.txt"
    stray.write_bytes(TEXT[:3000].encode() + b"50%\r100%\n" + TEXT[3000:].encode())
    for text in (crlf, stray):
        assert train.main(["--data", str(text), "--hidden-size", "24", "--seq-length", "10",
                           "--iterations", "200", "--eval-every", "0", "--quiet",
                           "--out", str(tmp_path / text.stem)]) == 0
    capsys.readouterr()
    files = [str(lf_30), str(crlf_30), str(tmp_path / "line.txt"), str(lf), "--json"]
    rc, out = scored([str(tmp_path / "crlf" / "checkpoint.npz"), *files])
    assert rc == 0
    scores = [json.loads(line)["nats_per_char"] for line in out.splitlines()]
    assert scores[0] > scores[1]  # (the 30 lines as they are, and with \r\n)
    assert capsys.readouterr().err == (
        f"fastrnn.score: warning: {lf_30} and {lf} have Unix line endings (\\n), and the model "
        f"learned Windows ones (\\r\\n): the first 30 lines of {lf_30} score {scores[0]:.4f} "
        f"nats/char as they are, {scores[1]:.4f} with \\r\\n (unix2dos converts)\n")
    # the probe reads the first text in the command line's order (standard input's place
    # too) with PROBE_LINES line breaks: not a two-line one, nor a long line's first block
    (tmp_path / "two.txt").write_bytes(b"a good wife\na single man\n")
    monkeypatch.setattr(score, "BLOCK", 1000)
    monkeypatch.setattr(score, "PROBE", 400)  # (lines of 119: 3 from the start, 2 after the
    # first break of standard input's first block, 3 after that of its second)
    monkeypatch.setattr("sys.stdin", type("Stdin", (), {"buffer": io.BytesIO(
        b"a" * 600 + lines.encode())})())
    rc, out = scored([str(tmp_path / "crlf" / "checkpoint.npz"), str(tmp_path / "two.txt"), "-",
                      str(lf_30), "--json"])
    assert rc == 0 and capsys.readouterr().err.startswith(
        f"fastrnn.score: warning: {tmp_path / 'two.txt'}, <stdin> and {lf_30} have Unix line "
        f"endings (\\n), and the model learned Windows ones (\\r\\n): 3 lines near the start "
        f"of <stdin> score ")
    monkeypatch.undo()
    model = checkpoint.load(tmp_path / "stray" / "checkpoint.npz")
    assert "\r" in model.vocab.index
    # the probe's lines: whole ones within its first PROBE characters, or after a long first
    # line; none if it has no line break
    long = tmp_path / "long.txt"
    long.write_bytes(b"a" * 5000 + b"\n" + lines.encode())
    for path, head in [(lf, (lines[:lines.index("\n") + 1] * 34, True)), (long, (lines, False)),
                       (tmp_path / "line.txt", None)]:
        assert score._read_through(model.vocab, path)[3] == head
    for ckpt in (tmp_path / "stray" / "checkpoint.npz", run[0] / "out" / "checkpoint.npz"):
        assert scored([str(ckpt), str(lf)])[0] == 0
        assert capsys.readouterr().err == ""


def test_a_reader_gone_away_stops_scoring_quietly(run, monkeypatch, capsys):
    """`python -m fastrnn.score ... | head -1`: the second line's write fails with a broken
    pipe; scoring stops there, exit code 0, no traceback (as fastrnn.sample does)."""
    d, corpus = run
    dropped = []
    monkeypatch.setattr(cli, "drop_output", lambda: dropped.append(True))

    class Head(io.StringIO):
        def write(self, text):
            if self.getvalue():
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    head = Head()
    ckpt = str(d / "out" / "checkpoint.npz")
    assert score.main([ckpt, str(corpus), str(corpus), str(corpus)], out=head) == 0
    assert head.getvalue().count("\n") == 1 and dropped == [True]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_is_refused_without_reading_it(run, tmp_path, capsys):
    d, _ = run
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert score.main([str(d / "out" / "checkpoint.npz"), str(fifo)], out=io.StringIO()) == 2
    assert ("is a FIFO (named pipe), not a regular file (a pipe's text is read as -: ... | "
            "python -m fastrnn.score CHECKPOINT -)") in capsys.readouterr().err
    # from Python too (its read waited for a writer for ever)
    ckpt = checkpoint.load(d / "out" / "checkpoint.npz")
    model = ckpt.to_model()
    for call in (score.check_file, lambda v, p: score.score_file(model, v, None, p)):
        with pytest.raises(ValueError, match="pipe is a FIFO \\(named pipe\\), not a regular"):
            call(ckpt.vocab, fifo)


def test_unusable_checkpoint_and_encoding(run, tmp_path, capsys):
    d, corpus = run
    assert score.main([str(tmp_path / "none.npz"), str(corpus)], out=io.StringIO()) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert score.main([str(d / "out" / "checkpoint.npz"), str(corpus), "--encoding", "klingon"],
                      out=io.StringIO()) == 2
    assert "unknown encoding 'klingon'" in capsys.readouterr().err
    assert score.main([str(d / "out" / "checkpoint.npz"), str(corpus), "--encoding", "rot13"],
                      out=io.StringIO()) == 2  # a codec, but not a text encoding
    assert "'rot13' is not a text encoding" in capsys.readouterr().err
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"ab")  # UTF-16 without its byte-order mark: read as train reads it
    assert score.main([str(d / "out" / "checkpoint.npz"), str(plain), "--encoding", "utf-16"],
                      out=io.StringIO()) == 2
    assert f"{plain} has characters the model never saw: '{b'ab'.decode('utf-16')}'" in \
        capsys.readouterr().err
    plain.write_bytes(TEXT[:40].encode("utf-16"))  # UTF-16, its byte-order mark named
    assert score.main([str(d / "out" / "checkpoint.npz"), str(plain)], out=io.StringIO()) == 2
    assert ("byte 0xff at offset 0 is not valid utf-8 (invalid start byte); pass its encoding "
            "with --encoding (it starts with a UTF-16 byte-order mark: --encoding utf-16)\n"
            ) in capsys.readouterr().err
    plain.write_bytes(b"\xef\xbb\xbf" + TEXT[:40].encode())  # a byte-order mark: said to be one
    assert score.main([str(d / "out" / "checkpoint.npz"), str(plain)], out=io.StringIO()) == 2
    assert ("'\\ufeff' (--skip-unknown drops them); it starts with a "
            "byte-order mark: --encoding utf-8-sig reads past it") in capsys.readouterr().err
    plain.write_bytes(b"abc\n")  # (punycode's message quotes the line break: one line still)
    assert score.main([str(d / "out" / "checkpoint.npz"), str(plain), "--encoding", "punycode"],
                      out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'\\n'" in err, err


def test_texts_are_read_in_the_encoding_the_model_was_trained_on(tmp_path, capsys,
                                                                  monkeypatch):
    """score and sample --prime-file read a text in the encoding the checkpoint records for its
    own text (train's --encoding), said on stderr where it is not UTF-8; --encoding reads it in
    another; a checkpoint that records no encoding (saved from Python) reads UTF-8, and one
    that records an encoding Python does not know is named."""
    from fastrnn import sample
    text = TEXT.replace("wife", "caf\u00e9 wife")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(text.encode("latin-1"))  # (\xe9: not UTF-8)
    assert train.main(["--data", str(latin), "--encoding", "latin-1", "--hidden-size", "16",
                       "--seq-length", "10", "--iterations", "20", "--quiet",
                       "--out", str(tmp_path / "out")]) == 0
    ckpt = str(tmp_path / "out" / "checkpoint.npz")
    assert checkpoint.load(ckpt).encoding == "latin-1"
    capsys.readouterr()
    rc, out = scored([ckpt, str(latin)])
    assert rc == 0 and out.startswith(f"{latin}: ")
    assert ("fastrnn.score: reading the texts as latin-1, the encoding the model's training "
            "text was read in (--encoding sets another)\n") in capsys.readouterr().err  # (after
    # a first run's "compiling ..." line)
    assert scored([ckpt, str(latin), "--encoding", "latin-1"]) == (0, out)
    assert "reading" not in capsys.readouterr().err  # (given: not said)
    assert scored([ckpt, str(latin), "--encoding", "utf-8"])[0] == 2
    assert "is not valid utf-8" in capsys.readouterr().err
    utf8 = tmp_path / "utf8.txt"  # (the same text in UTF-8: latin-1 reads other characters)
    utf8.write_bytes(text.encode("utf-8"))
    assert scored([ckpt, str(utf8)])[0] == 2
    assert ("characters the model never saw: '\u00a9', '\u00c3' (--skip-unknown drops them); its "
            "bytes past ASCII are UTF-8's, which latin-1 reads as other characters: if it is "
            "UTF-8, --encoding utf-8 reads it\n") in capsys.readouterr().err
    assert scored([ckpt, str(utf8), "--skip-unknown"])[0] == 0  # (skipped: told why, as above)
    assert (f"warning: {utf8}: 120 characters the model never saw will be skipped; its bytes "
            "past ASCII are UTF-8's, which latin-1 reads as other characters: if it is UTF-8, "
            "--encoding utf-8 reads it\n") in capsys.readouterr().err
    # told too where a block before dropped characters nothing explains (a '~')
    monkeypatch.setattr(score, "BLOCK", 64)
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(b"~" + "a good wife ".encode() * 20 + text.encode("utf-8"))
    assert scored([ckpt, str(mixed), "--skip-unknown"])[0] == 0
    assert (f"warning: {mixed}: 121 characters the model never saw will be skipped; its bytes "
            "past ASCII are UTF-8's") in capsys.readouterr().err
    monkeypatch.undo()
    assert scored([ckpt, str(utf8), "--encoding", "utf-8"]) == \
        (0, out.replace(str(latin), str(utf8)))
    prime = tmp_path / "prime.txt"
    prime.write_bytes("caf\u00e9".encode("latin-1"))
    argv = [ckpt, "--length", "20", "--seed", "4"]
    got = io.StringIO()
    assert sample.main([*argv, "--prime-file", str(prime)], out=got) == 0
    assert ("fastrnn.sample: reading --prime-file as latin-1, the encoding the model's "
            "training text was read in (--encoding sets another)\n") in capsys.readouterr().err
    primed = io.StringIO()
    assert sample.main([*argv, "--prime", "caf\u00e9"], out=primed) == 0
    assert got.getvalue() == primed.getvalue() and got.getvalue().startswith("caf\u00e9")
    assert sample.main([*argv, "--prime-file", str(prime), "--encoding", "utf-8"],
                       out=io.StringIO()) == 2
    assert "is not valid utf-8" in capsys.readouterr().err
    # train --init-from reads its new text so too (and records it for its own run)
    assert train.main(["--init-from", ckpt, "--data", str(latin), "--iterations", "2",
                       "--out", str(tmp_path / "tuned")]) == 0
    assert (f"note: reading {latin} as latin-1, the encoding the model's training text was read "
            f"in (--encoding sets another)\n") in capsys.readouterr().out
    assert checkpoint.load(tmp_path / "tuned" / "checkpoint.npz").encoding == "latin-1"
    assert train.main(["--init-from", ckpt, "--data", str(utf8), "--iterations", "2",
                       "--out", str(tmp_path / "tuned8"), "--encoding", "utf-8"]) == 0
    assert "reading" not in capsys.readouterr().out
    saved = checkpoint.load(ckpt)
    for recorded, said in ((None, "is not valid utf-8"),  # (as a checkpoint saved from Python)
                           ("klingon", "error: the checkpoint says its text was read as "
                                       "'klingon', which is not a text encoding this Python "
                                       "knows: give --encoding\n")):
        saved.run["data"]["encoding"] = recorded
        if recorded is None:
            del saved.run["data"]["encoding"]
        checkpoint.save(tmp_path / "other.npz", saved)
        assert checkpoint.load(tmp_path / "other.npz").encoding == recorded
        assert scored([str(tmp_path / "other.npz"), str(latin)])[0] == 2
        assert said in capsys.readouterr().err
        assert sample.main([str(tmp_path / "other.npz"), "--prime-file", str(prime)],
                           out=io.StringIO()) == 2
        assert said in capsys.readouterr().err
        assert scored([str(tmp_path / "other.npz"), str(latin), "--encoding", "latin-1"]) == \
            (0, out)
        assert train.main(["--init-from", str(tmp_path / "other.npz"), "--data", str(latin),
                           "--iterations", "2", "--out", str(tmp_path / f"{recorded}")]) == 2
        assert said.replace("error: ", "") in capsys.readouterr().err


def test_a_model_of_utf16_text_given_ascii_or_a_byte_order_mark_model(tmp_path, capsys):
    """A model of UTF-16 text reads other texts as UTF-16 too: an ASCII or UTF-8 file is told
    --encoding utf-8 (its characters are two ASCII bytes each; or, of an odd length, it does
    not decode at all); a model of text read as utf-8-sig reads UTF-8 without a note."""
    from fastrnn import sample
    wide = tmp_path / "wide.txt"
    wide.write_bytes(TEXT.encode("utf-16"))
    assert train.main(["--data", str(wide), "--encoding", "utf-16", "--hidden-size", "16",
                       "--seq-length", "10", "--iterations", "5", "--quiet",
                       "--out", str(tmp_path / "out")]) == 0
    ckpt = str(tmp_path / "out" / "checkpoint.npz")
    plain = tmp_path / "plain.txt"
    plain.write_bytes(TEXT[:200].encode())  # (an even number of bytes: it decodes)
    assert scored([ckpt, str(plain)])[0] == 2
    assert ("(--skip-unknown drops them); most of them are two bytes of ASCII text each, as "
            "8-bit text (ASCII, UTF-8) read as UTF-16 gives, and its bytes are that: if it is, "
            "--encoding utf-8 reads it\n") in capsys.readouterr().err
    cjk = tmp_path / "cjk.txt"  # (UTF-16 text whose unknown characters are such pairs too:
    cjk.write_bytes((TEXT[:100] + "\u4f60").encode("utf-16"))  # its NULs say it is UTF-16)
    assert scored([ckpt, str(cjk)])[0] == 2
    err = capsys.readouterr().err
    assert "never saw: '\u4f60'" in err and "ASCII" not in err, err
    assert scored([ckpt, str(plain), "--encoding", "utf-8"])[0] == 0
    plain.write_bytes(TEXT[:201].encode())  # (an odd number: it does not)
    assert sample.main([ckpt, "--prime-file", str(plain)], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "is not valid utf-16 (truncated data)" in err and \
        "(its bytes are ASCII text, not utf-16: --encoding utf-8)\n" in err, err
    marked = tmp_path / "marked.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    assert train.main(["--data", str(marked), "--encoding", "utf-8-sig", "--hidden-size", "16",
                       "--seq-length", "10", "--iterations", "5", "--quiet",
                       "--out", str(tmp_path / "sig")]) == 0
    capsys.readouterr()
    assert scored([str(tmp_path / "sig" / "checkpoint.npz"), str(marked)])[0] == 0
    assert "reading" not in capsys.readouterr().err


def test_a_loss_past_the_float_range_of_its_exponential_is_an_infinite_perplexity(run, tmp_path):
    """A model whose loss is over ~709.8 nats/char (e^loss overflows): its perplexity is inf
    on the line and null in the JSON (which has no infinity), not a traceback."""
    d, corpus = run
    ckpt = checkpoint.load(d / "out" / "checkpoint.npz")
    ckpt.params["Why"] *= 1e5
    path = tmp_path / "wild.npz"
    checkpoint.save(path, ckpt)
    rc, out = scored([str(path), str(corpus)])
    assert rc == 0 and out.split("perplexity ")[1].startswith("inf over"), out
    rc, out = scored([str(path), str(corpus), "--json"])
    result = json.loads(out)
    assert rc == 0 and result["perplexity"] is None and result["nats_per_char"] > 710, result


def test_a_long_score_shows_its_progress(run, tmp_path, capsys, monkeypatch):
    """(a large file was minutes of silence, and a slow model's smaller one too: the bar
    went by file size) A progress bar on stderr for the files' check (bytes read) and score
    (characters predicted, as the model's calls go, over all the files) once they have taken
    cli.BAR_DELAY seconds past their first call (0 here); none before."""
    d, corpus = run
    ckpt = str(d / "out" / "checkpoint.npz")
    monkeypatch.setattr(score, "BLOCK", 1000)
    monkeypatch.setattr(cli, "BAR_DELAY", 0)
    rc, out = scored([ckpt, str(corpus), str(corpus)])
    assert rc == 0 and out.count(f"over {len(TEXT) - 1:,} characters") == 2
    err = capsys.readouterr().err
    checking, scoring = err[err.index("checking: "):err.index("scoring: ")], \
        err[err.index("scoring: "):]
    assert f"/{2 * len(TEXT) / 1000:.1f}k [" in checking and "B/s" in checking  # (both files)
    assert f"/{2 * (len(TEXT) - 1) / 1000:.1f}k [" in scoring and "char/s" in scoring
    monkeypatch.setattr(cli, "BAR_DELAY", 1e9)
    assert scored([ckpt, str(corpus), str(corpus)]) == (rc, out)
    assert "scoring" not in capsys.readouterr().err
    # from Python: the characters predicted, as they are
    done = []
    ckpt = checkpoint.load(ckpt)
    model = ckpt.to_model("numba")
    result = score.score_file(model, ckpt.vocab, None, corpus, progress=done.append)
    assert sum(done) == result["predicted"] == len(TEXT) - 1 and len(done) > 1


def test_utf16_without_a_byte_order_mark_reads_as_training_reads_it(run, tmp_path):
    """(Python's UTF-16 decoder for blocks refuses text without a byte-order mark, which train
    reads whole: a model could not score its own text) --encoding utf-16 or utf-32 without a
    mark is this machine's byte order, as train reads it."""
    d, corpus = run
    ckpt = str(d / "out" / "checkpoint.npz")
    expected = json.loads(scored([ckpt, str(corpus), "--json"])[1])["nats_per_char"]
    for encoding in ("utf-16", "utf-32"):
        wide = tmp_path / f"{encoding}.txt"
        wide.write_bytes(TEXT.encode(f"{encoding}-{sys.byteorder[0]}e"))
        assert load(wide, encoding=encoding).n_chars == len(TEXT)
        rc, out = scored([ckpt, str(wide), "--json", "--encoding", encoding])
        assert rc == 0 and json.loads(out)["nats_per_char"] == expected, out
