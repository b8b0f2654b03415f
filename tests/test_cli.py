"""python -m fastrnn.train / fastrnn.sample: end to end, exact resume, and every bad input."""

import dataclasses
import errno
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastrnn import checkpoint, cli, metrics, reference, score, train, validate
from fastrnn.corpus import DEFAULT_CORPUS, load
from fastrnn.sample import main as sample_main
from tests.helpers import NAMES, loss_history, rewrite_meta

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = ("Hope is the thing with feathers that perches in the soul. And sings the tune without "
            "the words and never stops at all. ")
SMALL = ["--hidden-size", "24", "--seq-length", "10", "--quiet"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("corpus") / "input.txt"
    path.write_text(text[:20_000], encoding="utf-8")
    return str(path)


def run_sample(argv):
    out = io.StringIO()
    return sample_main(argv, out=out), out.getvalue()


def same_state(a, b):
    """Two checkpoints hold bit-identical training state (every named array of the model's
    spec, the optimizer's, the recurrent state, counters, the generators)."""
    names = list(a.params)
    assert names == list(b.params) and names[-2:] == ["Why", "by"]
    if a.config.num_layers == 1 and a.config.cell == "rnn":
        assert names == list(NAMES)
    for name in names:
        x, y = a.params[name], b.params[name]
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert len(a.states) == len(b.states), "optimizer state buffers"
    for prefix, x_named, y_named in zip("mv", a.states, b.states):
        for name in names:
            x, y = x_named[name], y_named[name]
            assert x.dtype == y.dtype and np.array_equal(x, y), prefix + name
    assert a.state.dtype == b.state.dtype and np.array_equal(a.state, b.state), "state"
    assert a.position == b.position and a.step == b.step
    assert np.array_equal(a.losses, b.losses), "loss history"
    for key in ("iteration", "smooth_loss", "rng"):  # (not best_val_loss: a run stopped
        assert a.run[key] == b.run[key], key           # and resumed validated where it stopped)
    assert a.dropout_rng == b.dropout_rng, "the dropout generator"


# -- training end to end -----------------------------------------------------------------------

def test_progress_bar_counts_toward_whichever_ends_the_run_first(tmp_path, corpus_file, capsys):
    # With --time-budget the bar shows time: here the iterations end the run long before the
    # hour, so it must reach 100% with the iterations, not stay near 0% of the budget.
    rc = train.main(["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10",
                     "--iterations", "40", "--time-budget", "3600", "--eval-every", "0",
                     "--sample-every", "0", "--out", str(tmp_path)])
    assert rc == 0
    lines = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    last = lines[-1]
    assert last.startswith("100%") and "of the 1:00:00 budget, iteration 40/40" in last
    # what held it still before training went on: said (a big model's, seconds)
    assert any(re.search(r"budget, iteration \d+/40.*; timing the final validation and "
                         r"checkpoint for --time-budget$", line) for line in lines), lines
    assert re.search(r", chunk loss \d+\.\d{3}, training [\d,]+ chars/s$", last), last


def test_train_reports_progress_evaluates_samples_and_saves(tmp_path, corpus_file, capsys):
    out = tmp_path / "run"
    rc = train.main(["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10",
                     "--iterations", "120", "--eval-every", "50", "--sample-every", "100",
                     "--sample-length", "30", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert "iteration 50 (epoch " in printed.out and "bits/char" in printed.out
    assert "----- sample at iteration 100" in printed.out
    assert "done: iteration 120" in printed.out
    assert "120/120" in printed.err  # the progress bar

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [50, 100, 120]
    ckpt = checkpoint.load(out / "checkpoint.npz")
    assert ckpt.run["iteration"] == 120 and len(ckpt.losses) == 120 and ckpt.run["metrics"] == records
    # The validation loss is the oracle's loss over the whole held-out tail, per character.
    val = load(corpus_file, 0.1).val
    w = reference.weights(*(ckpt.params[n] for n in ("Wxh", "Whh", "Why", "bh", "by")))
    loss, _ = reference.evaluate(w, val, ckpt.state[:, :, :1], chunk=1000)  # from the training state
    assert math.isclose(records[-1]["val_loss"], loss / (len(val) - 1), rel_tol=1e-9)
    assert math.isclose(records[-1]["val_bpc"], records[-1]["val_loss"] / math.log(2))
    # the training loss: the mean per character of the iterations since the previous record
    # (here 10 characters an iteration), not min-char-rnn's smoothed loss (the progress bar's)
    for record, start in zip(records, [0, 50, 100]):
        window = ckpt.losses[start:record["iteration"]]
        assert math.isclose(record["train_loss"], window.mean() / 10, rel_tol=1e-12)
        assert math.isclose(record["train_bpc"], record["train_loss"] / math.log(2))
    best = checkpoint.load(out / "best.npz")
    assert best.run["best_val_loss"] == min(r["val_loss"] for r in records)
    assert best.run["iteration"] == min(records, key=lambda r: r["val_loss"])["iteration"]


@pytest.mark.parametrize("batch", [1, 4])
def test_an_epoch_ends_where_the_streams_wrap_to_their_start(tmp_path, corpus_file, batch):
    # 20,000 characters, 18,000 of them training text: B pieces of 18,000 // B, T = 10.
    # Epoch 1 is reached at the last chunk before every stream goes back to its start.
    piece, T = 18_000 // batch, 10
    per_pass = next(k for k in range(1, piece) if reference.wraps(k * T, T, piece))
    for n, ends in ((per_pass - 1, False), (per_pass, True)):
        out = tmp_path / str(n)
        assert train.main(["--data", corpus_file, *SMALL, "--batch-size", str(batch),
                           "--iterations", str(n), "--eval-every", "0", "--sample-every", "0",
                           "--out", str(out)]) == 0
        ckpt = checkpoint.load(out / "checkpoint.npz")
        assert reference.wraps(ckpt.position, T, piece) == ends
        assert ckpt.run["metrics"][-1]["epoch"] == round(n / per_pass, 4)
        assert ckpt.run["metrics"][-1]["chars"] == n * T * batch  # (every stream's)
        assert (ckpt.run["metrics"][-1]["epoch"] == 1.0) == ends
    # --epochs 1 trains to that chunk; resumed with --epochs 0.5 there is nothing to do.
    out = tmp_path / "epochs"
    argv = [*SMALL, "--eval-every", "0", "--sample-every", "0"]
    assert train.main(["--data", corpus_file, *argv, "--batch-size", str(batch), "--epochs", "1",
                       "--out", str(out)]) == 0
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == per_pass
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "0.5",
                       "--quiet"]) == 0


def test_the_summary_names_the_best_model_when_the_last_is_not_it(tmp_path, corpus_file, capsys,
                                                                  monkeypatch):
    from fastrnn.model import CharRNN
    per_char = iter([3.0, 2.0, 2.5])  # the validations' losses: the best is the second

    def evaluate(self, data, state=None, streams=1, progress=None):
        return next(per_char) * (len(data) - 1), state

    monkeypatch.setattr(CharRNN, "evaluate", evaluate)
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "30",
                       "--eval-every", "10", "--sample-every", "0", "--out", str(tmp_path)]) == 0
    bits = 2.0 / math.log(2)
    assert (f"validation 2.5000 nats/char = {2.5 / math.log(2):.4f} bits/char (the best, "
            f"{bits:.4f} bits/char at iteration 20, is in {tmp_path / 'best.npz'})"
            in capsys.readouterr().out)
    assert checkpoint.load(tmp_path / "best.npz").run["iteration"] == 20


def test_validation_as_several_streams_is_reported_as_such(tmp_path, corpus_file, capsys):
    """--val-streams N: the held-out text as N streams side by side (reference.evaluate's
    definition), from the first training stream's state; the line and the record say so."""
    out = tmp_path / "run"
    rc = train.main(["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10",
                     "--iterations", "40", "--eval-every", "40", "--sample-every", "0",
                     "--val-streams", "5", "--threads", "2", "--out", str(out)])
    assert rc == 0
    assert "validation (5 streams) " in capsys.readouterr().out
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_streams"] == 5
    ckpt = checkpoint.load(out / "checkpoint.npz")
    val = load(corpus_file, 0.1).val
    w = reference.weights(*(ckpt.params[n] for n in ("Wxh", "Whh", "Why", "bh", "by")))
    loss, _ = reference.evaluate(w, val, np.repeat(ckpt.state[:, :, :1], 5, 2), chunk=100)
    assert math.isclose(record["val_loss"], loss / (len(val) - 1), rel_tol=1e-9)


def test_validation_streams_with_nothing_held_out_are_warned_about(tmp_path, corpus_file,
                                                                   capsys):
    """--val-streams N with --val-fraction 0: nothing to validate on, said; not when N is 1
    or not given."""
    said = "warning: --val-streams 4 changes nothing: no text is held out to validate on " \
           "(--val-fraction 0)"
    for k, extra in enumerate((["--val-streams", "4"], ["--val-streams", "1"], [])):
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "2",
                           "--val-fraction", "0", *extra, "--out", str(tmp_path / str(k))]) == 0
        assert (said in capsys.readouterr().err) == (k == 0)


def test_more_threads_than_cpus_are_warned_about(tmp_path, corpus_file, capsys):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for k, threads in enumerate((cpus + 1, cpus)):
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "2", "--batch-size",
                           "2", "--threads", str(threads), "--out", str(tmp_path / str(k))]) == 0
        said = f"warning: --threads {cpus + 1} is more than the {cpus} CPU"
        assert (said in capsys.readouterr().err) == (k == 0)


def test_a_sample_length_without_samples_is_warned_about(tmp_path, corpus_file, capsys):
    """--sample-length with --sample-every 0, given or the resumed run's: no sample is drawn,
    said; not when samples are drawn or the length is not given."""
    runs = [(["--sample-every", "0", "--sample-length", "50"], "0"),
            (["--sample-every", "3", "--sample-length", "50"], None),
            (["--sample-every", "0"], None)]
    for k, (extra, said) in enumerate(runs):
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "3", *extra,
                           "--out", str(tmp_path / str(k))]) == 0
        err = capsys.readouterr().err
        assert ("--sample-length 50 changes nothing" in err) == (said is not None)
        if said:
            assert "warning: --sample-length 50 changes nothing: --sample-every 0 draws no " \
                   "samples" in err
    path = tmp_path / "2" / "checkpoint.npz"
    assert train.main(["--resume", str(path), "--iterations", "4", "--sample-length", "60"]) == 0
    assert "warning: --sample-length 60 changes nothing: --sample-every 0 (the checkpoint's) " \
           "draws no samples" in capsys.readouterr().err


def test_loss_curve_picture_when_matplotlib_is_installed(tmp_path, corpus_file):
    """In CI matplotlib comes with the tests' extra (pyproject.toml): there it must be
    importable, so that the picture is drawn for real and not skipped in silence."""
    if os.environ.get("CI"):
        __import__("matplotlib")  # (an ImportError fails the test)
    else:
        pytest.importorskip("matplotlib")
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--eval-every", "10",
                       "--out", str(tmp_path)]) == 0
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_a_config_folder_matplotlib_cannot_write_is_no_paragraph(tmp_path, corpus_file):
    """MPLCONFIGDIR unusable (a read-only home): matplotlib's warnings at its import were two
    paragraphs among the run's lines; it draws all the same, from a temporary cache."""
    if not os.environ.get("CI"):
        pytest.importorskip("matplotlib")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLCONFIGDIR": str(tmp_path / "f" / "x")}
    (tmp_path / "f").write_text("a file, where a folder would be")
    done = subprocess.run([sys.executable, "-m", "fastrnn.train", "--data", corpus_file,
                           *SMALL, "--iterations", "20", "--eval-every", "10", "--out",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "matplotlib" not in done.stderr.lower() and "mkdir" not in done.stderr, done.stderr
    assert (tmp_path / "out" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def _broken_matplotlib():
    """A matplotlib whose import fails as MPLBACKEND=bogus makes the real one fail."""
    module = types.ModuleType("matplotlib")

    def use(backend):
        raise ValueError("Key backend: 'bogus' is not a valid value for backend; supported "
                         "values are ['agg', ...]\nmore")
    module.use = use
    return module


@pytest.mark.parametrize("matplotlib, said", [
    (None, "matplotlib is not installed (pip install -e \".[plot]\")"),
    (_broken_matplotlib(), "matplotlib could not be imported (ValueError: Key backend: 'bogus' "
                           "is not a valid value for backend; supported values are ['agg', "
                           "...])")])
def test_without_a_working_matplotlib_the_run_says_once_why_there_is_no_picture(
        tmp_path, corpus_file, capsys, monkeypatch, matplotlib, said):
    """loss.png is optional: matplotlib missing, or failing (a Jupyter MPLBACKEND in a
    notebook's shell; it was a traceback at the first validation, the run lost), is one note,
    and the run goes on to its end."""
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    assert train.main(["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10",
                       "--iterations", "30", "--eval-every", "10", "--sample-every", "0",
                       "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(f"note: loss.png is not drawn: {said}; metrics.jsonl has the same "
                     f"numbers\n") == 1, out
    assert out.count("note: loss.png") == 1, out
    assert not (tmp_path / "loss.png").exists()
    assert checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"] == 30


def test_the_loss_curve_is_redrawn_at_most_a_share_of_the_time(tmp_path, corpus_file, capsys,
                                                              monkeypatch):
    """Drawing loss.png takes ~0.1 s: redrawn at every validation, with --eval-every 1 it was
    most of the run (a time budget's too). A validation redraws it if the latest drawing took
    at most train.PLOT_SHARE of the time since (the first's time, mostly matplotlib's import,
    not counted); the run's end always does, with every record, a diverged run's included;
    a run with no record draws none."""
    from fastrnn import metrics
    from fastrnn.model import CharRNN
    drawn = []

    def slow_plot(path, records):  # (a drawing that takes 0.05 s: the next waits for 1 s)
        time.sleep(0.05)
        drawn.append(len(records))
        path.write_bytes(b"")

    monkeypatch.setattr(metrics, "plot", slow_plot)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "1",
                       "--sample-every", "0", "--out", str(tmp_path)]) == 0
    records = checkpoint.load(tmp_path / "checkpoint.npz").run["metrics"]
    assert len(records) == 30 and drawn[:2] == [1, 2] and drawn[-1] == 30
    assert len(drawn) < 15, drawn  # (30 before: at 0.05 s each, 1.5 s of a run of < 1 s)
    real_train, blown = CharRNN.train, []

    def diverging(self, data, n_steps=1, learning_rate=None):
        losses = real_train(self, data, n_steps, learning_rate)
        if self.step >= 25:
            losses[-1] = np.nan
            blown.append(1)
        return losses

    monkeypatch.setattr(CharRNN, "train", diverging)
    drawn.clear()
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "1",
                       "--sample-every", "0", "--out", str(tmp_path / "diverged")]) == 1
    records = (tmp_path / "diverged" / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 24 and drawn[-1] == 24 and len(drawn) < 12, drawn

    def no_room(path, records):  # (a full disk at the diverged run's final drawing; slow,
        time.sleep(0.05)           # so that it is the run's last)
        if blown:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics, "plot", no_room)
    capsys.readouterr()
    blown.clear()
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "1",
                       "--sample-every", "0", "--out", str(tmp_path / "full")]) == 1
    assert "training diverged at iteration 25" in capsys.readouterr().err
    monkeypatch.setattr(metrics, "plot", slow_plot)

    def interrupted(self, *args, **kwargs):  # (Ctrl-C before any validation)
        os.kill(os.getpid(), signal.SIGINT)
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(CharRNN, "train", interrupted)
    drawn.clear()
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "0",
                       "--sample-every", "0", "--out", str(tmp_path / "none")]) == 130
    assert drawn == [], drawn
    assert checkpoint.load(tmp_path / "none" / "checkpoint.npz").run["metrics"] == []


def test_default_corpus_is_the_bundled_one(tmp_path):
    assert train.main(["--iterations", "2", "--out", str(tmp_path), "--quiet"]) == 0
    ckpt = checkpoint.load(tmp_path / "checkpoint.npz")
    assert ckpt.run["data"]["path"] == str(DEFAULT_CORPUS)
    assert len(ckpt.vocab) == 73 and ckpt.config.hidden_size == 100  # min-char-rnn's defaults
    assert (ckpt.config.seq_length, ckpt.config.learning_rate) == (25, 0.1)


@pytest.mark.parametrize("backend, dtype, hidden, n, k, batch, optimizer, model", [
    ("numba", "float64", "32", 400, 137, "1", "adagrad", []),
    ("numba", "float32", "32", 400, 250, "1", "adagrad", []),
    ("numpy", "float64", "8", 60, 23, "1", "adagrad", []),
    ("numba", "float32", "24", 200, 77, "6", "adagrad", []),
    ("numpy", "float64", "8", 30, 11, "3", "adagrad", []),
    ("numba", "float64", "16", 150, 61, "1", "adam", []),
    ("numba", "float32", "16", 120, 47, "4", "adam", []),
    ("numba", "float64", "16", 150, 88, "2", "rmsprop", []),
    # every cell, several layers, dropout on: the masks' generator resumes too
    ("numba", "float32", "16", 120, 47, "4", "adam", ["--cell", "lstm", "--num-layers", "2",
                                                      "--dropout", "0.3"]),
    ("numba", "float64", "12", 100, 41, "1", "adagrad", ["--cell", "gru", "--num-layers", "2",
                                                         "--dropout", "0.25"]),
    ("numba", "float32", "12", 90, 37, "3", "rmsprop", ["--num-layers", "3", "--dropout", "0.2"]),
    ("numpy", "float64", "6", 30, 11, "2", "adam", ["--cell", "lstm", "--num-layers", "2",
                                                    "--dropout", "0.3"]),
    # a clip of its own, and none: the checkpoint's is the resumed run's
    ("numba", "float32", "16", 120, 47, "3", "adam", ["--cell", "gru", "--grad-clip", "0.5"]),
    ("numba", "float64", "16", 150, 61, "1", "rmsprop", ["--grad-clip", "0"])])
def test_resume_continues_bit_for_bit(tmp_path, corpus_file, backend, dtype, hidden, n, k, batch,
                                      optimizer, model, capsys):
    common = ["--data", corpus_file, "--hidden-size", hidden, "--seq-length", "10", "--dtype", dtype,
              "--backend", backend, "--eval-every", "40", "--sample-every", "30",
              "--sample-length", "20", "--checkpoint-every", "0", "--batch-size", batch,
              "--optimizer", optimizer, *model]
    if optimizer != "adagrad":
        common += ["--learning-rate", "0.003"]
    assert train.main(common + ["--iterations", str(n), "--out", str(tmp_path / "one")]) == 0
    one = printed_samples(capsys.readouterr().out)
    assert train.main(common + ["--iterations", str(k), "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    resumed = tmp_path / "two" / "checkpoint.npz"
    assert checkpoint.load(resumed).run["iteration"] == k
    assert train.main(["--resume", str(resumed), "--iterations", str(n), "--backend", backend,
                       "--sample-every", "30", "--sample-length", "20"]) == 0
    after = printed_samples(capsys.readouterr().out)
    assert after and after == {i: text for i, text in one.items() if i > k}, "samples"
    same_state(checkpoint.load(tmp_path / "one" / "checkpoint.npz"), checkpoint.load(resumed))


def printed_samples(out):
    """{iteration: text} of the samples in a run's printed output."""
    return {int(k): text for k, text in
            re.findall(r"----- sample at iteration (\d+)\n(.*?)\n-----", out, re.S)}


def test_resuming_from_best_npz_at_a_sample_goes_on_as_the_run_did(tmp_path, corpus_file,
                                                                   capsys):
    """best.npz written at an iteration that also samples holds the samples' generator after
    that sample (it held the one before: resumed from it, every later sample differed)."""
    common = ["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10",
              "--eval-every", "10", "--sample-every", "10", "--sample-length", "30",
              "--checkpoint-every", "0"]
    assert train.main(common + ["--iterations", "40", "--out", str(tmp_path / "one")]) == 0
    one = printed_samples(capsys.readouterr().out)
    assert train.main(common + ["--iterations", "20", "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    best = checkpoint.load(tmp_path / "two" / "best.npz")
    assert best.run["iteration"] == 20  # (the validation loss still falls: 20's is the best)
    assert best.run["rng"] == checkpoint.load(tmp_path / "two" / "checkpoint.npz").run["rng"]
    assert best.run["rng"] != np.random.default_rng([0, 1]).bit_generator.state, \
        "the samples drew from the run's generator"
    assert train.main(["--resume", str(tmp_path / "two" / "best.npz"), "--iterations", "40",
                       "--out", str(tmp_path / "three")]) == 0
    three = printed_samples(capsys.readouterr().out)
    assert sorted(one) == [10, 20, 30, 40] and sorted(three) == [30, 40]
    assert three == {k: one[k] for k in (30, 40)}, "the samples after resuming"
    same_state(checkpoint.load(tmp_path / "one" / "checkpoint.npz"),
               checkpoint.load(tmp_path / "three" / "checkpoint.npz"))


def test_streams_too_short_for_their_chunks_are_warned_about(tmp_path, corpus_file, capsys):
    """(1024 streams of 17 characters, chunks of 10: 35% of the text never trained on, in
    silence)"""
    assert train.main(["--data", corpus_file, "--hidden-size", "8", "--seq-length", "10",
                       "--batch-size", "1024", "--iterations", "2", "--quiet", "--out",
                       str(tmp_path / "short")]) == 0
    err = capsys.readouterr().err
    assert ("fastrnn.train: warning: each of the 1024 streams has 17 characters, and chunks of "
            "--seq-length 10 read 11 of them before starting again: 35% of the training text "
            "is never trained on (a smaller --batch-size or --seq-length reads more of it)\n"
            ) in err, err
    assert train.main(["--data", corpus_file, *SMALL, "--batch-size", "4", "--iterations", "2",
                       "--out", str(tmp_path / "long")]) == 0
    assert "never trained on" not in capsys.readouterr().err


def test_long_reads_and_validations_are_said(tmp_path, corpus_file, capsys, monkeypatch):
    """A large text is said to be read, a long validation said before it starts, and once, a
    validation that takes more than twice the training between two (each was seconds, or on
    a large held-out text minutes, of silence). Here the thresholds are lowered to meet them."""
    monkeypatch.setattr(train, "LOUD_TEXT_BYTES", 1)
    monkeypatch.setattr(train, "LONG_VALIDATION", 0.0)
    monkeypatch.setattr(train, "LONG_VALIDATION_CHARS", 10_000)
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "3", "--eval-every",
                       "1", "--val-fraction", "0.5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"reading {corpus_file} (19.5 KiB)...\n"), out
    said = [line for line in out.splitlines() if line.startswith("validating on ")]
    assert said[0] == "validating on 10,000 held-out characters...", said  # (the first: untimed)
    assert len(said) == 3 and all(line.startswith("validating on 10,000 held-out characters "
                                                  "(about ") for line in said[1:]), said
    notes = [line for line in out.splitlines() if line.startswith("note: a validation takes")]
    assert len(notes) == 1 and notes[0].endswith("a larger --eval-every, a smaller "
                                                 "--val-fraction or --val-streams N (N streams, "
                                                 "on all cores) spend less of the run on it")
    # and a large checkpoint, resumed or fine-tuned from (816 MB took seconds, unsaid)
    monkeypatch.setattr(train, "LOUD_CHECKPOINT_BYTES", 1)
    path = tmp_path / "checkpoint.npz"
    for how in (["--resume", str(path), "--iterations", "4"],
                ["--init-from", str(path), "--data", corpus_file, "--iterations", "1", "--out",
                 str(tmp_path / "tuned")]):
        size = validate.human_bytes(path.stat().st_size)
        assert train.main(how) == 0
        assert capsys.readouterr().out.startswith(f"reading {path} ({size})...\n")
    assert train.main(["--resume", str(path), "--iterations", "5", "--quiet"]) == 0
    assert capsys.readouterr().out == ""  # (--quiet: nothing)


def test_a_validation_shows_a_progress_bar_once_it_takes_a_while(tmp_path, corpus_file, capsys,
                                                                 monkeypatch):
    """(one of minutes, on a large held-out text, was a line and then silence) Here the bar's
    delay is 0 (past the first of its kernel calls, made of 256 characters); --quiet shows
    none."""
    from fastrnn.backends import numba as numba_backend
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
    monkeypatch.setattr(cli, "BAR_DELAY", 0.0)
    argv = ["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10", "--iterations",
            "2", "--eval-every", "1", "--sample-every", "0"]
    assert train.main(argv + ["--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "validating: " in err and "\x1b[A" not in err  # (a log file: no cursor moves)
    assert train.main(argv + ["--quiet", "--out", str(tmp_path / "b")]) == 0
    assert "validating" not in capsys.readouterr().err


def _interrupting(monkeypatch, call):
    """CharRNN.evaluate, its ``call``-th call (from 1) receiving Ctrl-C at its first chunk."""
    from fastrnn.model import CharRNN
    real, calls = CharRNN.evaluate, []

    def evaluate(self, data, state=None, streams=1, progress=None):
        calls.append(1)
        if len(calls) == call:
            def interrupted(n):
                os.kill(os.getpid(), signal.SIGINT)
                progress(n)
            return real(self, data, state, streams, interrupted)
        return real(self, data, state, streams, progress)

    monkeypatch.setattr(CharRNN, "evaluate", evaluate)


@pytest.mark.parametrize("eval_every, call, pending", [("10", 2, "iteration"), ("0", 1, "end")])
def test_ctrl_c_cuts_a_validation_short_and_the_resumed_run_does_it_first(
        tmp_path, corpus_file, capsys, monkeypatch, eval_every, call, pending):
    """A validation stops at Ctrl-C (a long one made the run wait for it, or lose all since
    the latest checkpoint to a second Ctrl-C); the checkpoint says so, and the resumed run
    does it first, with what followed it (the sample, best.npz): the same run as one never
    interrupted. Cut short here: the validation at iteration 20, or the final one at 30."""
    common = ["--data", corpus_file, *SMALL[:-1], "--eval-every", eval_every, "--sample-every",
              "10", "--sample-length", "30", "--checkpoint-every", "0", "--iterations", "30"]
    assert train.main(common + ["--quiet", "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    from fastrnn.backends import numba as numba_backend  # (kernel calls of 256 characters: a
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)  # Ctrl-C at the first is early)
    _interrupting(monkeypatch, call)
    assert train.main(common + ["--out", str(tmp_path / "two")]) == cli.EXIT_INTERRUPTED
    out, err = capsys.readouterr()
    k = 20 if pending == "iteration" else 30
    assert f"the validation at iteration {k} is left for the resumed run to do first" in out
    assert f"interrupted at iteration {k}; saved" in err
    saved = tmp_path / "two" / "checkpoint.npz"
    assert checkpoint.load(saved).run["pending"] == pending
    with np.load(saved) as npz:  # (format 3: an older fastrnn refuses it, asks to upgrade)
        assert json.loads(str(npz["meta"]))["version"] == 3
    if pending == "iteration":  # a resume with another --eval-every still owes it
        other = tmp_path / "other"
        other.mkdir()
        (other / "checkpoint.npz").write_bytes(saved.read_bytes())
        assert train.main(["--resume", str(other / "checkpoint.npz"), "--iterations", "20",
                           "--eval-every", "0", "--quiet"]) == 0
        assert checkpoint.load(other / "checkpoint.npz").run["metrics"][-1]["iteration"] == 20
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
    _interrupting(monkeypatch, 1)  # (cut short again, at once)
    assert train.main(["--resume", str(saved), "--iterations", "30", "--quiet"]) == 130
    assert checkpoint.load(saved).run["pending"] == pending
    monkeypatch.undo()
    assert train.main(["--resume", str(saved), "--iterations", "30"]) == 0
    out = capsys.readouterr().out
    assert f"iteration {k} (epoch" in out and ("----- sample at iteration 20" in out) == (k == 20)
    one, two = (checkpoint.load(tmp_path / d / "checkpoint.npz") for d in ("one", "two"))
    same_state(one, two)
    assert "pending" not in two.run
    assert [(r["iteration"], r["val_loss"]) for r in one.run["metrics"]] == \
        [(r["iteration"], r["val_loss"]) for r in two.run["metrics"]]
    best = checkpoint.load(tmp_path / "two" / "best.npz")
    assert best.run["rng"] == checkpoint.load(tmp_path / "one" / "best.npz").run["rng"]
    assert "pending" not in best.run  # (it holds the validation it was written for)


@pytest.mark.parametrize("cut", [2, 3])
@pytest.mark.parametrize("per_call", [1024, 100])
def test_ctrl_c_cuts_a_sample_short_and_the_run_goes_on_as_if_it_had_not(
        tmp_path, corpus_file, capsys, monkeypatch, cut, per_call):
    """A sample stops at Ctrl-C between two kernel calls (one of a million characters made the
    run wait minutes), the text drawn so far printed (none was); the run's generator has drawn
    the whole sample's randomness, so the resumed run samples and trains on as one never
    interrupted. The last iteration's sample cut so ends a run that has trained all it was
    asked: done, exit code 0, as the README says. Samples of 3,000 characters are drawn a
    kernel call at a time, 1,024 characters (or 100, as for a large model): Ctrl-C in the
    second keeps two calls' text."""
    from fastrnn import config
    monkeypatch.setattr(config, "SAMPLE_CALL_CHARS", per_call)
    common = ["--data", corpus_file, *SMALL[:-1], "--eval-every", "10", "--sample-every", "10",
              "--sample-length", "3000", "--checkpoint-every", "0", "--iterations", "30"]
    assert train.main(common + ["--out", str(tmp_path / "one")]) == 0
    one_out = capsys.readouterr().out
    from fastrnn.model import CharRNN
    real, calls = CharRNN.sample, []
    per_sample = -(-3000 // per_call)

    def sample(self, n, seed_ix, **kw):
        calls.append(n)
        drawn = real(self, n, seed_ix, **kw)
        if len(calls) == per_sample * (cut - 1) + 2:  # (in the sample at iteration 10 * cut)
            os.kill(os.getpid(), signal.SIGINT)
        return drawn

    monkeypatch.setattr(CharRNN, "sample", sample)
    rc = train.main(common + ["--out", str(tmp_path / "two")])
    out, err = capsys.readouterr()
    assert calls[:per_sample] == [per_call] * (per_sample - 1) + [3000 % per_call or per_call]
    assert f"----- sample at iteration {10 * cut} cut short (stopping)\n" \
           f"{printed_samples(one_out)[10 * cut][:2 * per_call]}\n-----\n" in out
    if cut == 3:
        assert rc == 0 and "\ndone: " in out and "interrupted" not in err, (out, err)
        same_state(*(checkpoint.load(tmp_path / d / "checkpoint.npz") for d in ("one", "two")))
        return
    assert rc == cli.EXIT_INTERRUPTED and "interrupted at iteration 20; saved" in err
    monkeypatch.undo()
    assert train.main(["--resume", str(tmp_path / "two" / "checkpoint.npz")]) == 0
    resumed = printed_samples(capsys.readouterr().out)
    assert resumed[30] == printed_samples(one_out)[30] and len(resumed[30]) == 3000
    for name in ("checkpoint.npz", "best.npz"):
        one, two = (checkpoint.load(tmp_path / d / name) for d in ("one", "two"))
        same_state(one, two)
        assert one.run["rng"] == two.run["rng"], name


def test_a_sample_refused_its_memory_is_skipped(tmp_path, corpus_file, capsys, monkeypatch):
    """A training-time sample that the memory available refuses is skipped, said (it was a
    traceback, the work since the last checkpoint lost); the run goes on."""
    from fastrnn import validate
    real = validate.large_fits

    def refused(need, what):
        if what.startswith("sampling"):
            raise validate.NotEnoughMemory(f"{what} needs about 16.0 MiB of memory; this "
                                           f"machine has 1.0 MiB available")
        real(need, what)

    monkeypatch.setattr(validate, "large_fits", refused)
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "6", "--sample-every",
                       "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("----- sample at iteration ") == 2, out
    assert "----- sample at iteration 3 skipped: sampling 200 characters needs about 16.0 MiB " \
           "of memory; this machine has 1.0 MiB available" in out
    assert checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"] == 6
    # a budget's estimate of a sample's time, before the first, is refused too (a traceback)
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "6", "--sample-every",
                       "3", "--time-budget", "600", "--out", str(tmp_path / "budget")]) == 0
    out = capsys.readouterr().out
    assert out.count("----- sample at iteration ") == 2 and "skipped: sampling" in out, out
    assert checkpoint.load(tmp_path / "budget" / "checkpoint.npz").run["iteration"] == 6


def test_ctrl_c_as_a_validation_ends_keeps_it(tmp_path, corpus_file, capsys, monkeypatch):
    """A Ctrl-C heard at a validation's last kernel call (here its only one) does not throw
    the finished validation away for the resumed run to do again: the run stops with it."""
    _interrupting(monkeypatch, 2)
    assert train.main(["--data", corpus_file, *SMALL, "--eval-every", "10", "--sample-every",
                       "0", "--iterations", "30", "--out", str(tmp_path)]) == 130
    ckpt = checkpoint.load(tmp_path / "checkpoint.npz")
    assert ckpt.run["iteration"] == 20 and "pending" not in ckpt.run
    assert [r["iteration"] for r in ckpt.run["metrics"]] == [10, 20]


@pytest.mark.parametrize("optimizer, rate", [("adagrad", 0.1), ("rmsprop", 0.002),
                                             ("adam", 0.002)])
def test_the_default_learning_rate_is_the_optimizers(tmp_path, corpus_file, optimizer, rate):
    """Without --learning-rate, a new run trains at its optimizer's usual rate: min-char-rnn's
    0.1 for Adagrad, 0.002 for RMSprop (char-rnn's) and Adam (torch-rnn's; 0.1 had been every
    optimizer's, 50 times what Adam wants)."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "2", "--optimizer",
                       optimizer, "--eval-every", "0", "--sample-every", "0",
                       "--out", str(tmp_path)]) == 0
    assert checkpoint.load(tmp_path / "checkpoint.npz").config.learning_rate == rate


def test_fine_tuning_defaults_to_a_tenth_of_the_checkpoints_rate(tmp_path, corpus_file,
                                                                 capsys):
    """--init-from without --learning-rate: the checkpoint's rate / 10 (as Checkpoint.fine_tune),
    said in a note once the run is accepted; a given rate is taken as it is, without the note;
    a tenth that is 0 in the dtype is refused, naming it."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--learning-rate",
                       "0.05", "--out", str(tmp_path / "a")]) == 0
    source = str(tmp_path / "a" / "checkpoint.npz")
    for extra, rate in (([], 0.005), (["--learning-rate", "0.02"], 0.02)):
        capsys.readouterr()
        out = tmp_path / f"b{rate}"
        assert train.main(["--init-from", source, "--data", corpus_file, "--iterations", "5",
                           "--eval-every", "0", "--sample-every", "0", *extra,
                           "--out", str(out)]) == 0
        assert checkpoint.load(out / "checkpoint.npz").config.learning_rate == rate
        said = "note: fine-tuning at --learning-rate 0.005, 1/10 of the checkpoint's 0.05"
        assert (said in capsys.readouterr().out) == (not extra)
    # another optimizer: a tenth of its usual rate (Adagrad's rate would undo Adam's model)
    capsys.readouterr()
    assert train.main(["--init-from", source, "--data", corpus_file, "--iterations", "2",
                       "--eval-every", "0", "--sample-every", "0", "--optimizer", "adam",
                       "--out", str(tmp_path / "adam")]) == 0
    assert checkpoint.load(tmp_path / "adam" / "checkpoint.npz").config.learning_rate == 0.0002
    assert "note: fine-tuning at --learning-rate 0.0002, 1/10 of adam's usual 0.002 (the " \
           "checkpoint's 0.05 was adagrad's): " in capsys.readouterr().out
    # a fine-tune of a fine-tune: a tenth of the rate its model was first trained at, which
    # the fine-tune's checkpoint records (a tenth of a tenth: each generation ten times slower)
    for tuned in ("b0.005", "b0.02", "adam"):
        recorded = checkpoint.load(tmp_path / tuned / "checkpoint.npz").run["rate_base"]
        assert recorded == {"learning_rate": 0.05, "optimizer": "adagrad"}, tuned
    for tuned, extra, rate, said in (
            ("b0.02", [], 0.005, "1/10 of the 0.05 its model was trained at before any "
                                 "fine-tune (the checkpoint's own 0.02 is a fine-tune's): "),
            ("b0.005", ["--optimizer", "adam"], 0.0002, "1/10 of adam's usual 0.002 (the 0.05 "
                                                        "its model was trained at before any "
                                                        "fine-tune was adagrad's): "),
            ("adam", ["--optimizer", "adagrad"], 0.005, "1/10 of the 0.05 its model was trained "
                                                        "at before any fine-tune (the "
                                                        "checkpoint's own 0.0002 is a "
                                                        "fine-tune's, adam's): ")):
        again = tmp_path / f"again-{tuned}"
        assert train.main(["--init-from", str(tmp_path / tuned / "checkpoint.npz"), "--data",
                           corpus_file, "--iterations", "2", "--eval-every", "0",
                           "--sample-every", "0", *extra, "--out", str(again)]) == 0
        resumed = checkpoint.load(again / "checkpoint.npz")
        assert resumed.config.learning_rate == rate, tuned
        assert resumed.run["rate_base"] == {"learning_rate": 0.05, "optimizer": "adagrad"}
        assert f"note: fine-tuning at --learning-rate {rate:g}, {said}" in \
            capsys.readouterr().out, tuned
        assert checkpoint.load(again / "checkpoint.npz").fine_tune().config.learning_rate \
            == {"adagrad": 0.005, "adam": 0.0002}[resumed.config.optimizer]
    # a resumed fine-tune keeps the record
    assert train.main(["--resume", str(tmp_path / "again-b0.02" / "checkpoint.npz"),
                       "--iterations", "3"]) == 0
    assert checkpoint.load(tmp_path / "again-b0.02" / "checkpoint.npz").run["rate_base"] == \
        {"learning_rate": 0.05, "optimizer": "adagrad"}
    rc = train.main(["--init-from", source, "--data", corpus_file, "--out", str(tmp_path / "a")])
    assert rc == 2 and "note:" not in capsys.readouterr().out  # refused: --out is a's
    rewrite_meta(source, lambda m, a: m["config"].update(learning_rate=5e-324))
    rc = train.main(["--init-from", source, "--data", corpus_file, "--out", str(tmp_path / "c")])
    assert_usage_error(rc, capsys, "a fine-tune's learning rate, 1/10 of the checkpoint's "
                                   "4.94066e-324, is 0 in float64: pass --learning-rate")


def test_fine_tuning_validates_the_model_it_starts_from(tmp_path, corpus_file, capsys):
    """A fine-tune validates at iteration 0, the checkpoint's model on the new text: best.npz
    holds it until training betters it (a fine-tune that made the model worse ended with a
    best.npz worse than the checkpoint it started from, and no line said so); not with
    --eval-every 0, nor without held-out text."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30",
                       "--out", str(tmp_path / "a")]) == 0
    source = checkpoint.load(tmp_path / "a" / "checkpoint.npz")
    argv = ["--init-from", str(tmp_path / "a" / "checkpoint.npz"), "--data", corpus_file,
            "--iterations", "10", "--sample-every", "0", "--learning-rate", "3"]  # (worse)
    capsys.readouterr()
    assert train.main(argv + ["--eval-every", "5", "--out", str(tmp_path / "b")]) == 0
    assert "\niteration 0 (epoch 0.00): validation " in capsys.readouterr().out
    tuned = checkpoint.load(tmp_path / "b" / "checkpoint.npz")
    first = tuned.run["metrics"][0]
    assert first["iteration"] == 0 and first["train_loss"] is None
    assert [r["iteration"] for r in tuned.run["metrics"]] == [0, 5, 10]
    best = checkpoint.load(tmp_path / "b" / "best.npz")
    assert best.run["iteration"] == 0 and best.run["best_val_loss"] == first["val_loss"]
    for name, value in source.params.items():
        assert np.array_equal(best.params[name], value), name
    for extra in (["--eval-every", "0"], ["--val-fraction", "0"]):  # (nothing to validate)
        out = tmp_path / extra[0]
        assert train.main(argv + [*extra, "--out", str(out)]) == 0
        assert [r["iteration"] for r in
                checkpoint.load(out / "checkpoint.npz").run["metrics"]][0] == 10


def test_fine_tuning_starts_a_new_run_from_the_weights(tmp_path, corpus_file, text):
    """--init-from: the checkpoint's weights, model and vocabulary; fresh optimizer state,
    counters and hidden state; another text and learning rate. Equal, bit for bit, to the API
    doing the same."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30",
                       "--out", str(tmp_path / "a")]) == 0
    source = checkpoint.load(tmp_path / "a" / "checkpoint.npz")
    other = tmp_path / "other.txt"
    other.write_text(text[20_000:26_000], encoding="utf-8")
    assert train.main(["--init-from", str(tmp_path / "a" / "checkpoint.npz"), "--data",
                       str(other), "--learning-rate", "0.05", "--iterations", "20", "--quiet",
                       "--out", str(tmp_path / "b")]) == 0
    tuned = checkpoint.load(tmp_path / "b" / "checkpoint.npz")
    assert tuned.run["init_from"] == str((tmp_path / "a" / "checkpoint.npz").resolve())
    assert tuned.config.learning_rate == 0.05 and tuned.config.hidden_size == 24
    assert tuned.step == 20 and tuned.run["iteration"] == 20 and tuned.vocab == source.vocab
    model = source.to_model()
    model = type(model)(model.config.vocab_size, 24, 10, 0.05, model.config.dtype,
                        model.config.seed)  # fresh state, counters, optimizer...
    for name, array in model.spec.named(model.weights).items():
        array[...] = source.params[name]  # ...and the checkpoint's weights
    losses = model.train(load(other, 0.1, vocab=source.vocab).train, 20)
    assert np.array_equal(losses, tuned.losses)
    for name in NAMES:
        assert np.array_equal(model.params[name], tuned.params[name]), name
    # its smoothed training loss starts from its first chunk's, not from an untrained ln V
    smooth = losses[0]
    for loss in losses:
        smooth = smooth * 0.999 + loss * 0.001
    assert tuned.run["smooth_loss"] == smooth and smooth < 0.9 * 10 * np.log(len(source.vocab))


def test_fine_tuning_may_leave_out_what_its_vocabulary_lacks(tmp_path, corpus_file, text,
                                                              capsys):
    """--skip-unknown: a fine-tune's text with characters its model lacks (refused, with
    nothing to do about it but to edit the text) trains without them, as the API's model on
    the text without them; the checkpoint keeps it, and its resume reads the text so, bit for
    bit the run never stopped. A new run has nothing to leave out: refused."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10",
                       "--out", str(tmp_path / "a")]) == 0
    source = checkpoint.load(tmp_path / "a" / "checkpoint.npz")
    odd = tmp_path / "odd.txt"
    words = text[20_000:26_000]
    odd.write_text(words[:3000] + "\u2603" + words[3000:] + "\u2602\u2603", encoding="utf-8")
    tune = ["--init-from", str(tmp_path / "a" / "checkpoint.npz"), "--data", str(odd),
            "--skip-unknown", *SMALL[:-1], "--learning-rate", "0.05", "--eval-every", "5",
            "--sample-every", "0"]
    capsys.readouterr()
    assert train.main([*tune, "--iterations", "10", "--out", str(tmp_path / "whole")]) == 0
    assert (f"note: 3 characters of {odd} (0.05%) that the checkpoint's vocabulary lacks are "
            f"left out (--skip-unknown): '\u2602', '\u2603'\n") in capsys.readouterr().out
    whole = checkpoint.load(tmp_path / "whole" / "checkpoint.npz")
    assert whole.run["data"]["skip_unknown"] is True
    model = source.to_model()
    model = type(model)(model.config.vocab_size, 24, 10, 0.05, model.config.dtype,
                        model.config.seed)
    for name, array in model.spec.named(model.weights).items():
        array[...] = source.params[name]
    kept = tmp_path / "kept.txt"
    kept.write_text(words, encoding="utf-8")
    assert np.array_equal(model.train(load(kept, 0.1, vocab=source.vocab).train, 10),
                          whole.losses)
    assert train.main([*tune, "--iterations", "5", "--out", str(tmp_path / "split")]) == 0
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "split" / "checkpoint.npz"), "--iterations",
                       "10", "--sample-every", "0"]) == 0  # (reading the text as it did)
    assert "are left out (--skip-unknown, the checkpoint's): " in capsys.readouterr().out
    same_state(checkpoint.load(tmp_path / "split" / "checkpoint.npz"), whole)
    # most of a text left out (another script's): a warning; all of it: said in the refusal
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("\u0416\u0443\u043a " * 30 + words[:100], encoding="utf-8")
    link = tmp_path / "link.txt"  # (named as "training on" names it: as given)
    link.symlink_to(foreign)
    assert train.main([*tune[:3], str(link), *tune[4:], "--iterations", "2", "--out",
                       str(tmp_path / "foreign")]) == 0
    said = capsys.readouterr()
    assert "most of the text" not in said.err and (f"note: 90 characters of {link} (41%) "
                                                  f"that the checkpoint's vocabulary lacks are "
                                                  f"left out") in said.out
    assert f"training on {link}:" in said.out
    foreign.write_text("\u0416\u0443\u043a " * 60 + words[:100], encoding="utf-8")
    assert train.main([*tune[:3], str(foreign), *tune[4:], "--iterations", "2", "--overwrite",
                       "--out", str(tmp_path / "foreign")]) == 0
    assert (f"fastrnn.train: warning: 180 characters of {foreign} (53%) that the checkpoint's "
            f"vocabulary lacks are left out (--skip-unknown): '\u0416', '\u043a', '\u0443': "
            f"most of the text") in capsys.readouterr().err
    foreign.write_text("\u2603" * 500 + "\n", encoding="utf-8")
    rc = train.main([*tune[:3], str(foreign), *tune[4:], "--out", str(tmp_path / "none")])
    assert_usage_error(rc, capsys, f"{foreign} has 1 character to train on after leaving out "
                                   f"the 500 its checkpoint's vocabulary lacks (--skip-unknown); "
                                   f"--seq-length 10 needs at least 11")
    rc = train.main(["--data", str(odd), "--skip-unknown", "--out", str(tmp_path / "new")])
    assert_usage_error(rc, capsys, "--skip-unknown leaves out the characters a checkpoint's "
                                   "vocabulary lacks: it goes with --init-from or --resume")


def test_fine_tuning_refuses_what_it_cannot_do(tmp_path, corpus_file, capsys):
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10",
                       "--out", str(tmp_path / "a")]) == 0
    ckpt = str(tmp_path / "a" / "checkpoint.npz")
    odd = tmp_path / "odd.txt"
    odd.write_text("feathers \u2603 and \u2602 " * 40, encoding="utf-8")
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(Path(corpus_file).read_bytes().replace(b"\n", b"\r\n"))
    for argv, fragment in [
        (["--data", str(odd)], "vocabulary lacks: '\u2602', '\u2603' (--skip-unknown drops "
                               "them)\n"),
        (["--data", str(crlf)], "vocabulary lacks: '\\r' (--skip-unknown drops "
         "them); it has Windows line endings (\\r\\n), and the model's text had no \\r: "
         "converted to \\n (dos2unix) it reads as the model's"),
        (["--data", corpus_file, "--hidden-size", "32"],
         "--init-from keeps the checkpoint's model: --hidden-size 32 (the checkpoint has 24)"),
        (["--data", corpus_file, "--dropout", "0.5"],  # (not told to give --num-layers, refused)
         "--dropout 0.5 applies between layers: the checkpoint's model has one layer"),
        (["--data", corpus_file, "--resume", ckpt], "give one of them"),
        (["--data", corpus_file, "--init-from", str(tmp_path / "none.npz")],
         "cannot fine-tune"),
        # (not the bundled corpus in silence)
        ([], "--init-from starts a new run on a text: give it with --data (the checkpoint was "
             f"trained on {corpus_file})"),
    ]:
        argv = ["--init-from", ckpt, *argv] if "--init-from" not in argv else argv
        rc = train.main([*argv, "--out", str(tmp_path / "b")])
        assert_usage_error(rc, capsys, fragment)
        assert not (tmp_path / "b").exists(), "nothing written"


def test_learning_rate_decay_is_char_rnns_and_resumes_exactly(tmp_path, corpus_file):
    """--lr-decay 0.5 --lr-decay-every 10: iterations 0-9 at lr, 10-19 at lr/2, 20-24 at lr/4,
    bit for bit the API's model.train with those rates; stopped at 15 and resumed, the same
    run; the schedule is in the checkpoint and the metrics."""
    argv = ["--data", corpus_file, *SMALL, "--learning-rate", "0.08", "--lr-decay", "0.5",
            "--lr-decay-every", "10", "--eval-every", "5"]
    assert train.main([*argv, "--iterations", "25", "--out", str(tmp_path / "whole")]) == 0
    whole = checkpoint.load(tmp_path / "whole" / "checkpoint.npz")
    assert whole.run["lr_decay"] == [0.5, 10]
    rates = [r["learning_rate"] for r in whole.run["metrics"]]
    assert rates == [0.08, 0.04, 0.04, 0.02, 0.02], rates  # after 5, 10, 15, 20, 25 iterations

    from fastrnn import CharRNN
    model = CharRNN(whole.config.vocab_size, 24, 10, 0.08, whole.config.dtype, whole.config.seed)
    data = load(corpus_file, 0.1).train
    losses = np.concatenate([model.train(data, 10, 0.08), model.train(data, 10, 0.04),
                             model.train(data, 5, 0.02)])
    assert np.array_equal(losses, whole.losses)
    for name in NAMES:
        assert np.array_equal(model.params[name], whole.params[name]), name

    assert train.main([*argv, "--iterations", "15", "--out", str(tmp_path / "split")]) == 0
    assert train.main(["--resume", str(tmp_path / "split" / "checkpoint.npz"), "--iterations",
                       "25", "--quiet"]) == 0  # the schedule comes from the checkpoint
    same_state(checkpoint.load(tmp_path / "split" / "checkpoint.npz"), whole)


def test_a_resumed_runs_header_says_where_its_schedule_is(tmp_path, corpus_file, capsys,
                                                          monkeypatch):
    """(a run resumed at iteration 15 of a halving every 10, or inside its anneal, said
    "lr=0.08" alone, as a new run does: as if its schedule had been lost)"""
    def header(argv):
        capsys.readouterr()
        assert train.main([*argv, "--sample-every", "0"]) == 0
        return [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("training on ")][0]

    def interrupted(argv):  # (Ctrl-C in the run's first validation: a checkpoint there)
        with monkeypatch.context() as m:
            _interrupting(m, 1)
            assert train.main([*argv, "--sample-every", "0"]) == 130

    argv = ["--data", corpus_file, *SMALL[:-1], "--learning-rate", "0.08"]
    decayed, annealed = tmp_path / "decayed", tmp_path / "annealed"
    interrupted([*argv, "--lr-decay", "0.5", "--lr-decay-every", "10", "--anneal", "0.2",
                 "--iterations", "25", "--eval-every", "15", "--out", str(decayed)])
    assert header(["--resume", str(decayed / "checkpoint.npz")]).endswith(
        "lr=0.08 (now 0.04: decayed by 0.5 every 10 iterations) float64 on numba, from "
        "iteration 15")  # (its anneal, over 20-25, not begun)
    interrupted([*argv, "--anneal", "0.5", "--iterations", "10", "--eval-every", "6", "--out",
                 str(annealed)])
    now = train.Schedule(0.08, anneal=(5, 10))(6)
    assert 0 < now < 0.08
    assert header(["--resume", str(annealed / "checkpoint.npz")]).endswith(
        f"lr=0.08 (now {now:.4g}: annealing to 0 by iteration 10) float64 on numba, from "
        f"iteration 6")
    assert header([*argv, "--iterations", "3", "--out", str(tmp_path / "new")]).endswith(
        "lr=0.08 float64 on numba")
    both = tmp_path / "both"  # (a decay not yet begun is not why)
    interrupted([*argv, "--lr-decay", "0.5", "--lr-decay-every", "100", "--anneal", "0.5",
                 "--iterations", "10", "--eval-every", "6", "--out", str(both)])
    assert header(["--resume", str(both / "checkpoint.npz")]).endswith(
        f"lr=0.08 (now {now:.4g}: annealing to 0 by iteration 10) float64 on numba, from "
        f"iteration 6")


@pytest.mark.parametrize("dtype, at", [("float64", 1072), ("float32", 147)])
def test_a_decay_to_a_zero_rate_stops_the_run_there(tmp_path, corpus_file, capsys, dtype, at):
    # 0.1 halved every iteration is 0 in float64 after 1072 halvings, in float32 after 147:
    # training stops there, saved and validated, with a warning before it starts
    rc = train.main(["--data", corpus_file, *SMALL[:-1], "--dtype", dtype, "--iterations", "2000",
                     "--lr-decay", "0.5", "--lr-decay-every", "1", "--sample-every", "0",
                     "--out", str(tmp_path)])
    printed = capsys.readouterr()
    assert rc == 0 and (f"takes the learning rate 0.1 to 0 ({dtype}) at iteration {at}, before "
                        f"--iterations 2000: the run will stop there") in printed.err
    assert f"stopped by the learning rate's decay to 0: iteration {at}," in printed.out
    run = checkpoint.load(tmp_path / "checkpoint.npz").run
    assert run["iteration"] == at and run["metrics"][-1]["iteration"] == at
    # resumed, with more iterations or without: nothing to train, said (no warning of a stop
    # to come), and the checkpoint left as it is
    saved = (tmp_path / "checkpoint.npz").read_bytes()
    for more in (["--iterations", "3000"], []):
        assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), *more]) == 0
        printed = capsys.readouterr()
        assert printed.err == "" and printed.out == (
            f"the run's learning rate has decayed to 0 in {dtype} by iteration {at} (--lr-decay "
            f"0.5 every 1 iterations): nothing to train; --init-from starts a new run from its "
            f"weights\n")
        assert (tmp_path / "checkpoint.npz").read_bytes() == saved
    # under a time budget (--iterations a bound never reached) there is no warning
    assert train.main(["--data", corpus_file, *SMALL, "--dtype", dtype, "--iterations", "2000",
                       "--lr-decay", "0.5", "--lr-decay-every", "1", "--time-budget", "600",
                       "--out", str(tmp_path / "budget")]) == 0
    assert "learning rate" not in capsys.readouterr().err


def test_learning_rate_decay_refusals(tmp_path, corpus_file, capsys):
    base = ["--data", corpus_file, *SMALL, "--iterations", "10", "--out", str(tmp_path / "r")]
    for extra, fragment in [(["--lr-decay", "0.5"], "--lr-decay FACTOR and --lr-decay-every N"),
                            (["--lr-decay", "1.5", "--lr-decay-every", "3"], "is not in (0, 1]"),
                            (["--lr-decay", "0", "--lr-decay-every", "3"],
                             "--lr-decay: 0 is not in (0, 1]")]:
        assert_usage_error(train.main([*base, *extra]), capsys, fragment)
        assert not (tmp_path / "r").exists(), "nothing written"
    assert train.main(base) == 0
    rc = train.main(["--resume", str(tmp_path / "r" / "checkpoint.npz"), "--iterations", "20",
                     "--lr-decay", "0.5", "--lr-decay-every", "5"])
    assert_usage_error(rc, capsys, "different learning-rate schedule", "the checkpoint has none")
    decayed = tmp_path / "d"
    assert train.main([*base[:-1], str(decayed), "--lr-decay", "0.9", "--lr-decay-every",
                       "200"]) == 0
    rc = train.main(["--resume", str(decayed / "checkpoint.npz"), "--iterations", "20",
                     "--lr-decay", "0.5", "--lr-decay-every", "5"])
    assert_usage_error(rc, capsys, "schedule: --lr-decay 0.5 --lr-decay-every 5 (the checkpoint "
                                   "has --lr-decay 0.9 --lr-decay-every 200)")
    rc = train.main(["--resume", str(decayed / "checkpoint.npz"), "--iterations", "20",
                     "--lr-decay", "0.9000001", "--lr-decay-every", "200"])  # (all its digits)
    assert_usage_error(rc, capsys, "--lr-decay 0.9000001 --lr-decay-every 200 (the checkpoint "
                                   "has --lr-decay 0.9 ")


def test_a_resume_given_another_encoding_is_told_the_runs(tmp_path, capsys):
    """A resume with another --encoding than its run's is refused on the run's own text (it
    was told the text had changed, or, if the characters stayed in the vocabulary, trained on
    other ids in silence); on a text given with --data, whose characters the vocabulary then
    lacks, the run's encoding is named."""
    text = tmp_path / "cafe.txt"
    text.write_text("caf\u00e9 au lait, the caf\u00e9 is open.\n" * 30, encoding="utf-8")
    assert train.main(["--data", str(text), *SMALL, "--iterations", "3", "--out",
                       str(tmp_path / "r")]) == 0
    ckpt = str(tmp_path / "r" / "checkpoint.npz")
    rc = train.main(["--resume", ckpt, "--encoding", "latin-1", "--iterations", "5"])
    assert_usage_error(rc, capsys, "cannot resume with --encoding latin-1: the run read its text "
                                   "as utf-8 (--data PATH --encoding E resumes on a text of "
                                   "another encoding)")
    rc = train.main(["--resume", ckpt, "--encoding", "latin-1", "--iterations", "5", "--data",
                     str(text)])
    assert_usage_error(rc, capsys, "the checkpoint's vocabulary lacks: '\u00a9', '\u00c3'; "
                                   "the run it resumes read its text as utf-8: --encoding "
                                   "latin-1 reads other characters")
    # (with --skip-unknown it trains on, what the refusal said now a warning)
    shutil.copytree(tmp_path / "r", tmp_path / "copy")
    assert train.main(["--resume", str(tmp_path / "copy" / "checkpoint.npz"), "--encoding",
                       "latin-1", "--iterations", "4", "--data", str(text),
                       "--skip-unknown"]) == 0
    assert (f"fastrnn.train: warning: the run it resumes read its text as utf-8, and --encoding "
            f"latin-1 reads characters its vocabulary lacks, left out (--skip-unknown): is "
            f"latin-1 the encoding of {text}?\n") in capsys.readouterr().err
    assert train.main(["--resume", ckpt, "--encoding", "UTF8", "--iterations", "5"]) == 0


def test_anneal_decays_the_rate_linearly_to_zero_and_resumes_exactly(tmp_path, corpus_file,
                                                                      monkeypatch):
    """--anneal 0.5 of --iterations 40: iterations 0-19 at the rate, 20-39 down a staircase to
    0 (a step an iteration here), bit for bit the API's model.train with those rates; the
    checkpoint at 30 (inside the window) resumed, the same run; the window is in the
    checkpoint and the rates in the metrics."""
    argv = ["--data", corpus_file, *SMALL, "--learning-rate", "0.08", "--anneal", "0.5",
            "--eval-every", "10", "--checkpoint-every", "10", "--sample-every", "0"]
    real_save = checkpoint.save

    def keeping_30(path, ckpt):  # a copy of the checkpoint written at iteration 30
        real_save(path, ckpt)
        if ckpt.run["iteration"] == 30 and path.name == "checkpoint.npz":
            (tmp_path / "split").mkdir()
            real_save(tmp_path / "split" / "checkpoint.npz", ckpt)

    monkeypatch.setattr(checkpoint, "save", keeping_30)
    assert train.main([*argv, "--iterations", "40", "--out", str(tmp_path / "whole")]) == 0
    monkeypatch.undo()
    whole = checkpoint.load(tmp_path / "whole" / "checkpoint.npz")
    assert whole.run["anneal"] == {"fraction": 0.5, "window": [20, 40], "steps": 100}
    rates = [0.08] * 20 + [0.08 * (1 - (k + 0.5) / 20) for k in range(20)]
    # (each record gives the rate of the iterations after it)
    assert [r["learning_rate"] for r in whole.run["metrics"]] == [0.08, rates[20], rates[30], 0.0]

    from fastrnn import CharRNN
    model = CharRNN(whole.config.vocab_size, 24, 10, 0.08, whole.config.dtype, whole.config.seed)
    data = load(corpus_file, 0.1).train
    losses = np.concatenate([model.train(data, 20, 0.08)] +
                            [model.train(data, 1, rate) for rate in rates[20:]])
    assert np.array_equal(losses, whole.losses)
    for name in NAMES:
        assert np.array_equal(model.params[name], whole.params[name]), name

    split = tmp_path / "split" / "checkpoint.npz"
    assert checkpoint.load(split).run["iteration"] == 30
    assert train.main(["--resume", str(split), "--quiet"]) == 0  # (to the window's end, 40)
    same_state(checkpoint.load(split), whole)


def test_a_checkpoint_that_would_not_load_is_a_failure_and_not_a_file(tmp_path, corpus_file,
                                                                      capsys, monkeypatch):
    """Should a run's checkpoint ever fail load's checks (here a NaN put in its state at
    iteration 20), the run stops with one line naming it, and the checkpoint of iteration 10
    stays as it was (best.npz, written first at an evaluation, is the one named)."""
    real_of = checkpoint.Checkpoint.of

    def poisoned(model, vocab, losses, run, views=False):
        ckpt = real_of(model, vocab, losses, run)  # (a copy: the model is left as it was)
        if run["iteration"] == 20:
            ckpt.state[...] = np.nan
        return ckpt

    monkeypatch.setattr(checkpoint.Checkpoint, "of", poisoned)
    out = tmp_path / "r"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "10",
                       "--checkpoint-every", "10", "--sample-every", "0", "--out",
                       str(out)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastrnn.train: "), err
    assert f"{out}/best.npz not written, it would not load: state holds NaN" in err  # (first)
    monkeypatch.undo()
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 10


@pytest.mark.parametrize("extra, at, validated", [
    (["--eval-every", "3", "--checkpoint-every", "3", "--sample-every", "3"], 6, [3, 6, 9]),
    (["--eval-every", "0", "--checkpoint-every", "3"], 9, [9]),  # (the final one, at a save)
    (["--eval-every", "0", "--checkpoint-every", "0", "--time-budget", "3600"], 1, [9])])
def test_a_validation_that_cannot_run_ends_the_run_with_its_work_saved(
        tmp_path, corpus_file, capsys, monkeypatch, extra, at, validated):
    """A validation refused the memory it needs (here: from iteration ``at`` on; memory that
    other programs took since the run started) ends the run in one line, the iterations since
    the last checkpoint saved first (it was a traceback, and the work since that checkpoint
    lost), and the validation left for the resumed run to do first (with the sample due), as
    Ctrl-C leaves it: the same run as one never stopped; so does the validation timed for a
    budget's estimate, which owes none."""
    from fastrnn import validate
    real, trainer = validate.large_fits, {}
    real_init = train.Trainer.__init__

    def kept(self, *args):
        real_init(self, *args)
        trainer["it"] = self

    def refused(need, what):
        if what.startswith("evaluating") and trainer["it"].iteration >= at:
            raise validate.NotEnoughMemory(f"{what} needs about 10.7 GiB of memory; this "
                                           f"machine has 6.5 GiB available")
        real(need, what)

    monkeypatch.setattr(train.Trainer, "__init__", kept)
    monkeypatch.setattr(validate, "large_fits", refused)
    out = tmp_path / "r"
    common = ["--data", corpus_file, *SMALL, "--iterations", "9", *extra]
    common += ["--sample-length", "20"] if "--sample-every" in extra else ["--sample-every", "0"]
    assert train.main([*common, "--out", str(out)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    owed = "; once that memory is free, its --resume does this validation first" \
        if validated != [9] or at == 9 else ""
    assert err == (f"fastrnn.train: error: the validation at iteration {at} cannot run: evaluating "
                   f"1 stream needs about 10.7 GiB of memory; this machine has 6.5 GiB "
                   f"available; the run is saved in {out}/checkpoint.npz (iteration {at}){owed}\n"
                   ), err
    monkeypatch.undo()
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == at
    assert train.main(["--resume", str(out / "checkpoint.npz")]) == 0  # (to its 9)
    resumed = checkpoint.load(out / "checkpoint.npz")
    assert resumed.run["iteration"] == 9 and "pending" not in resumed.run
    assert [r["iteration"] for r in resumed.run["metrics"]] == validated
    if at < 9 and not owed:
        return
    assert train.main([*common, "--out", str(tmp_path / "one")]) == 0  # never stopped
    one = checkpoint.load(tmp_path / "one" / "checkpoint.npz")
    same_state(one, resumed)
    assert one.run["rng"] == resumed.run["rng"]
    assert [(r["iteration"], r["val_loss"]) for r in one.run["metrics"]] == \
        [(r["iteration"], r["val_loss"]) for r in resumed.run["metrics"]]


def test_a_save_that_runs_out_of_memory_after_a_validation_did_still_says_why(
        tmp_path, corpus_file, capsys, monkeypatch):
    """A validation that ran out of memory, then the save of the run's work running out too
    (it was a generic "out of memory" line, the validation's failure and the checkpoint to
    resume from unsaid): one line with both, and where the work is."""
    from fastrnn import validate
    real = validate.large_fits

    def refused(need, what):
        if what.startswith("evaluating"):
            raise MemoryError("Unable to allocate 23.4 MiB")
        real(need, what)

    def save(path, ckpt):
        raise MemoryError("Unable to allocate 34.3 MiB")

    monkeypatch.setattr(validate, "large_fits", refused)
    monkeypatch.setattr(checkpoint, "save", save)
    out = tmp_path / "r"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "9", "--eval-every", "3",
                       "--checkpoint-every", "0", "--sample-every", "0", "--out", str(out)]) \
        == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("fastrnn.train: error: the validation at iteration 3 cannot run: "
                          "Unable to allocate 23.4 MiB; saving the run ran out of memory too "
                          "(Unable to allocate 34.3 MiB); "), err
    assert err.count("\n") == 1 and "no checkpoint" in err, err


def test_a_finished_anneal_ends_the_run(tmp_path, corpus_file, capsys):
    # its rate is 0 from the window's end on: a longer --iterations trains nothing more, and
    # a run resumed inside its window ends at the window's end
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--anneal", "0.25",
                       "--out", str(tmp_path)]) == 0
    ckpt = str(tmp_path / "checkpoint.npz")
    before = Path(ckpt).read_bytes()
    assert train.main(["--resume", ckpt, "--iterations", "100"]) == 0
    printed = capsys.readouterr().out
    assert "anneals its learning rate to 0 at iteration 20 (over iterations 15-20): training " \
           "ends there; --init-from starts a new run from its weights" in printed
    assert "already at iteration 20 (the end of its anneal): nothing to train\n" in printed
    assert train.main(["--resume", ckpt, "--iterations", "5"]) == 0  # (no N trains on)
    assert "already at iteration 20 (--iterations 5): nothing to train; --init-from starts a " \
           "new run from its weights\n" in capsys.readouterr().out
    assert train.main(["--resume", ckpt, "--time-budget", "30"]) == 0  # (nor a budget, QA's)
    assert capsys.readouterr().out == "the checkpoint is already at iteration 20 (the end of " \
        "its anneal): nothing to train; --init-from starts a new run from its weights\n"
    assert Path(ckpt).read_bytes() == before

    # (a run that reaches its anneal's end says so in one way, whatever --iterations says; it
    # said "stopped by the learning rate's anneal to 0" with --iterations past the end, "done"
    # at it)
    rewrite_meta(ckpt, lambda m, a: m["run"]["anneal"].update(window=[15, 25]))
    assert train.main(["--resume", ckpt, "--iterations", "100", "--sample-every", "0"]) == 0
    assert "\ndone: iteration 25 (the end of its anneal), validation" in capsys.readouterr().out
    assert checkpoint.load(ckpt).run["iteration"] == 25
    rewrite_meta(ckpt, lambda m, a: m["run"]["anneal"].update(window=[15, 30]))
    assert train.main(["--resume", ckpt, "--iterations", "27", "--sample-every", "0"]) == 0
    rate = train.Schedule(0.1, None, (15, 30, 100))(26)  # (the last iteration trained's)
    assert f"\ndone: iteration 27 (before the anneal's end at iteration 30: the rate was " \
           f"{rate:.3g}), validation" in capsys.readouterr().out
    assert train.main(["--resume", ckpt, "--sample-every", "0"]) == 0
    assert "\ndone: iteration 30 (the end of its anneal), validation" in capsys.readouterr().out
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "8", "--anneal", "0.5",
                       "--out", str(tmp_path / "plain")]) == 0
    assert "\ndone: iteration 8 (the end of its anneal), validation" in capsys.readouterr().out


def test_a_run_without_an_anneal_can_be_annealed_from_its_checkpoint(tmp_path, corpus_file,
                                                                     capsys):
    # resumed with --anneal, a run that had none anneals from the checkpoint on if its share
    # of the run has begun (--anneal 1: all of it); later resumes keep that window
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--out",
                       str(tmp_path)]) == 0
    ckpt = str(tmp_path / "checkpoint.npz")
    assert train.main(["--resume", ckpt, "--iterations", "30", "--anneal", "1", "--eval-every",
                       "5", "--sample-every", "0"]) == 0
    assert ("annealing the learning rate linearly to 0 over iterations 20-30 (all of "
            "--iterations 30; that share began at iteration 0, so the anneal starts here)") \
        in capsys.readouterr().out
    run = checkpoint.load(ckpt).run
    assert run["anneal"] == {"fraction": 1.0, "window": [20, 30], "steps": 100}
    assert run["iteration"] == 30
    rates = [r["learning_rate"] for r in run["metrics"]]  # at 20, 25 and 30: each the rate of
    # the iterations after it (the record at 20, the first run's, rewritten as the window began)
    assert rates == pytest.approx([0.1 * (1 - 0.5 / 10), 0.1 * (1 - 5.5 / 10), 0.0])
    assert [json.loads(line)["learning_rate"] for line in
            (tmp_path / "metrics.jsonl").read_text().splitlines()] == rates


def test_the_anneal_may_change_until_its_window_starts(tmp_path, corpus_file, capsys):
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--anneal", "0.1",
                       "--out", str(tmp_path)]) == 0
    ckpt = str(tmp_path / "checkpoint.npz")
    # as a run to 100 iterations saves it at 10: the anneal's window not begun
    rewrite_meta(ckpt, lambda m, a: m["run"].update(anneal={"fraction": 0.1}))
    assert train.main(["--resume", ckpt, "--iterations", "20", "--anneal", "0.5"]) == 0
    assert checkpoint.load(ckpt).run["anneal"] == {"fraction": 0.5, "window": [10, 20],
                                                   "steps": 100}


def test_a_rate_that_vanishes_in_the_window_is_the_anneals(tmp_path, corpus_file, capsys):
    # 1e-44 is a float32 (subnormal); annealed, it rounds to 0 before the window's end
    rc = train.main(["--data", corpus_file, *SMALL[:-1], "--dtype", "float32", "--learning-rate",
                     "1e-44", "--iterations", "400", "--anneal", "0.5", "--sample-every", "0",
                     "--out", str(tmp_path)])
    printed = capsys.readouterr()
    assert rc == 0 and "stopped by the learning rate's anneal to 0: iteration 386, " in printed.out
    assert "warning" not in printed.err


def test_anneal_refusals(tmp_path, corpus_file, capsys):
    base = ["--data", corpus_file, *SMALL, "--iterations", "10", "--out", str(tmp_path / "r")]
    for value in ("0", "1.5", "-0.2", "x"):
        assert_usage_error(train.main([*base, "--anneal", value]), capsys, "--anneal")
    assert not (tmp_path / "r").exists(), "nothing written"
    assert train.main([*base, "--anneal", "0.5"]) == 0
    ckpt = str(tmp_path / "r" / "checkpoint.npz")
    rc = train.main(["--resume", ckpt, "--iterations", "5", "--anneal", "0.3"])
    assert_usage_error(rc, capsys, "different learning-rate schedule: --anneal 0.3 (the "
                                   "checkpoint has 0.5)")


@pytest.mark.parametrize("eval_every, fraction, first_call, val_fraction",
                         [("4", "0.25", 0, "0.1"), ("0", "0.25", 0, "0.1"), ("0", "1", 0, "0.1"),
                          ("4", "0.5", 20, "0.1"), ("0", "0.5", 20, "0.1"),
                          ("4", "0.25", 0, "0.3")])  # (15 s validations)
def test_under_a_time_budget_the_anneal_ends_with_the_budget(tmp_path, corpus_file, capsys,
                                                             monkeypatch, eval_every, fraction,
                                                             first_call, val_fraction):
    # --anneal F under a budget that ends the run first: the anneal starts when the budget's
    # last F begins (and the run's pace has been measured over 2% of it), over the iterations
    # the rest holds, and ends (near) where the budget ends the run, its final validation and
    # checkpoint included; also after a first call that took `first_call` seconds (compiling),
    # whose time must not be taken for the pace
    clock = work_clock(monkeypatch)
    train_one = train.CharRNN.train
    calls = []

    def slow_first(self, *args, **kwargs):
        calls.append(1)
        clock[0] += first_call if len(calls) == 1 else 0
        return train_one(self, *args, **kwargs)

    monkeypatch.setattr(train.CharRNN, "train", slow_first)
    unannealed, budgets = [], range(30, 61, 3) if val_fraction == "0.1" else range(90, 181, 9)
    for budget in budgets:
        out = tmp_path / str(budget)
        start = clock[0]
        calls.clear()
        rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                         "--time-budget", str(budget), "--anneal", fraction, "--eval-every",
                         eval_every, "--val-fraction", val_fraction, "--sample-every", "0",
                         "--out", str(out)])
        printed = capsys.readouterr()
        assert rc == 0 and clock[0] - start <= budget, budget
        run = checkpoint.load(out / "checkpoint.npz").run
        assert run["stopped"] == "time budget"
        if "window" not in run["anneal"]:  # a 20 s first call left too little of the budget,
            # or its last share no iteration past a validation due and the run's ending (a
            # window of one iteration was fixed, which the budget then stopped the run before)
            assert "(before the anneal began)" in printed.out, budget
            unannealed.append(budget)
            continue
        first, end = run["anneal"]["window"]
        share = "all" if fraction == "1" else f"the last {fraction}"
        assert (f"annealing the learning rate linearly to 0 over iterations {first}-{end} "
                f"({share} of the {budget} s budget)") in printed.out
        schedule = train.Schedule(0.1, None, (first, end, run["anneal"]["steps"]))
        assert [r["learning_rate"] for r in run["metrics"]] == \
            [schedule(r["iteration"]) for r in run["metrics"]], budget  # (the window's first too)
        steps = run["anneal"]["steps"]
        assert steps == min(100, max(1, (end - first) // 4))  # (1-iteration calls)
        assert (f"in only {steps} step{'s' * (steps > 1)} (a step lasts at least 4 kernel calls: "
                f"a longer budget or --anneal makes more)" in printed.out) == (steps < 10), steps
        # it ran to the window's end; validations every 4 iterations (5 s each, against 1 s
        # an iteration) make the pace uneven, and the budget may come one iteration before it
        assert end - (eval_every != "0") <= run["iteration"] <= end, (budget, first, end)
        assert run["iteration"] > first, (budget, first, end)  # (it trained in its window)
        if run["iteration"] < end:
            assert f"stopped by the time budget: iteration {run['iteration']} (before the " \
                   f"anneal's end at iteration {end}: the rate was" in printed.out
        else:
            assert f"\ndone: iteration {end} (the end of its anneal)" in printed.out
        if eval_every == "0":  # an even pace: the window uses the budget, to its 3% and a block
            assert clock[0] - start > budget - 0.03 * (budget - first_call) - 2, budget
    if not first_call:
        assert len(unannealed) <= len(budgets) // 2, unannealed


@pytest.mark.parametrize("fraction, eval_every", [("0.1", "4"), ("0.15", "3"), ("0.2", "5")])
def test_a_budget_with_no_room_for_its_anneal_stops_before_it(tmp_path, corpus_file, capsys,
                                                              monkeypatch, fraction, eval_every):
    """When the budget's last share begins with no iteration left to fit before the run's
    ending (5 s validations, one due), the run stops unannealed, "before the anneal began",
    and can be resumed (a window of one iteration was fixed, which the budget then stopped
    the run before: its resume trained that one iteration, and no more); the validation
    record at the iteration a window starts at holds the window's rate."""
    work_clock(monkeypatch)  # (1 s an iteration, 5 s a validation)
    unannealed = []
    for budget in range(24, 49, 2):
        out = tmp_path / str(budget)
        assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                           "--time-budget", str(budget), "--anneal", fraction, "--eval-every",
                           eval_every, "--sample-every", "0", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        run = checkpoint.load(out / "checkpoint.npz").run
        window = run["anneal"].get("window")
        if window is None:
            assert "(before the anneal began)" in printed, budget
            unannealed.append((out / "checkpoint.npz", run["iteration"]))
            continue
        assert window[1] - window[0] > 1 or run["iteration"] == window[1], (budget, window)
        schedule = train.Schedule(0.1, None, (*window, run["anneal"]["steps"]))
        for record in run["metrics"]:
            assert record["learning_rate"] == schedule(record["iteration"]), (budget, record)
        lines = (out / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line) for line in lines] == run["metrics"]
    path, stopped = unannealed[0]  # (there is one: else the test tests nothing)
    assert train.main(["--resume", str(path), "--time-budget", "200"]) == 0
    run = checkpoint.load(path).run  # (trained on, and annealed at the end of the new budget)
    assert run["iteration"] > stopped + 20 and run["iteration"] == run["anneal"]["window"][1]


@pytest.mark.parametrize("fraction, eval_every, val_fraction", [
    ("0.5", "20", "0.1"), ("0.9", "20", "0.1"), ("0.2", "100", "0.5"), ("0.2", "40", "0.5")])
def test_a_budgets_anneal_is_paced_by_the_runs_cadence(tmp_path, corpus_file, capsys,
                                                       monkeypatch, fraction, eval_every,
                                                       val_fraction):
    # The window holds the iterations whose kernel calls (1 s each here) and the validations
    # due among them (5 s, or 25 s for half the text held out; each with best.npz, 0.5 s, and
    # a drawing, 0.1 s) fit: not as many as the time between two dates said, which counted
    # the first drawing of loss.png (30 s here: matplotlib's import, once a run, now made
    # before the clock starts, ``metrics.prepare``) and ended the run half-way through its
    # budget; nor as an average validation's share says, which put one in a short window that
    # had no room for it (or none where there was)
    clock = work_clock(monkeypatch)
    plot, imported = train.metrics.plot, []

    def prepare():
        imported.append(1)
        return 0.1

    def slow_plot(*args, **kwargs):
        clock[0] += 0.1 if imported else 30.0
        imported.append(1)
        return plot(*args, **kwargs)

    monkeypatch.setattr(train.metrics, "prepare", prepare)
    monkeypatch.setattr(train.metrics, "plot", slow_plot)
    budget, start = 400, clock[0]
    rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                     "--time-budget", str(budget), "--anneal", fraction, "--eval-every",
                     eval_every, "--val-fraction", val_fraction, "--sample-every", "0",
                     "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    run = checkpoint.load(tmp_path / "checkpoint.npz").run
    assert rc == 0 and run["iteration"] == run["anneal"]["window"][1], printed
    validation = 50 * float(val_fraction)  # (the 3% in hand, and room for less than one more)
    assert budget - 0.03 * budget - validation - 2 < clock[0] - start <= budget, \
        (clock[0] - start, printed)


def test_under_a_time_budget_that_holds_the_iterations_the_anneal_is_theirs(
        tmp_path, corpus_file, capsys, monkeypatch):
    # --iterations 40 take 40 s of a 100 s budget: the iterations end the run, so the anneal
    # is their last half, not the budget's last half
    work_clock(monkeypatch)
    rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "40", "--time-budget",
                     "100", "--anneal", "0.5", "--eval-every", "0", "--sample-every", "0",
                     "--out", str(tmp_path)])
    assert rc == 0 and "(the last 0.5 of --iterations 40)" in capsys.readouterr().out
    assert checkpoint.load(tmp_path / "checkpoint.npz").run["anneal"]["window"] == [20, 40]


def test_resume_keeps_the_runs_validation_streams(tmp_path, corpus_file, capsys):
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--eval-every", "5",
                       "--val-streams", "3", "--sample-every", "0", "--out", str(tmp_path)]) == 0
    ckpt = str(tmp_path / "checkpoint.npz")
    rc = train.main(["--resume", ckpt, "--iterations", "20", "--val-streams", "1"])
    assert_usage_error(rc, capsys, "cannot resume with --val-streams 1: the checkpoint's "
                                   "validations read 3 (its best is measured so); on another "
                                   "text (--data) it may change\n")
    rc = train.main(["--resume", ckpt, "--data", corpus_file, "--iterations", "20",
                     "--val-streams", "1"])  # (its own text, given: refused once it is read)
    assert_usage_error(rc, capsys, f"cannot resume with --val-streams 1: the checkpoint's "
                                   f"validations read 3 (its best is measured so); {corpus_file} "
                                   f"is the text the run trained on")
    capsys.readouterr()
    assert train.main(["--resume", ckpt, "--iterations", "20"]) == 0
    records = checkpoint.load(ckpt).run["metrics"]
    assert [r["val_streams"] for r in records] == [3, 3, 3, 3]  # at 5, 10, 15 and 20
    assert "done: iteration 20, validation (3 streams) " in capsys.readouterr().out
    short = tmp_path / "short.txt"  # (its last 10%, 3 characters: 2 to predict)
    short.write_text(Path(corpus_file).read_text()[:30])
    assert train.main(["--resume", ckpt, "--data", str(short), "--iterations", "30"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # (after the note of the new text)
        "fastrnn.train: error: --val-streams 3 (the checkpoint's: a resumed run keeps it on its "
        "own text; on this other one, --val-streams N sets another) is more streams than the "
        "held-out text has characters to predict (2)")
    # on another text the run keeps a best of its own: its validations may read other streams,
    # and hold out another fraction
    assert train.main(["--resume", ckpt, "--data", str(short), "--iterations", "30",
                       "--val-streams", "2", "--val-fraction", "0.2"]) == 0
    run = checkpoint.load(ckpt).run
    assert run["val_streams"] == 2 and run["data"]["val_fraction"] == 0.2
    assert [r["val_streams"] for r in run["metrics"]] == [3, 3, 3, 3, 2, 2]
    assert train.main(["--resume", ckpt, "--iterations", "40"]) == 0  # (kept from then on)
    assert checkpoint.load(ckpt).run["metrics"][-1]["val_streams"] == 2
    capsys.readouterr()
    # one of them alone, on another text: the held-out part empty, best.npz is said to stay
    assert train.main(["--resume", ckpt, "--data", corpus_file, "--iterations", "42",
                       "--val-fraction", "0"]) == 0
    assert "; with no held-out text to validate on, best.npz stays the other text's model" in \
        capsys.readouterr().err
    assert checkpoint.load(ckpt).run["val_streams"] == 2  # (not given: kept)
    # a checkpoint that does not record its text's sha256 cannot tell another text: refused
    # at once, with no word of another text
    rewrite_meta(ckpt, lambda m, a: m["run"]["data"].pop("sha256"))
    for extra in ([], ["--data", str(short)]):
        rc = train.main(["--resume", ckpt, "--iterations", "50", "--val-streams", "3", *extra])
        assert_usage_error(rc, capsys, "cannot resume with --val-streams 3: the checkpoint's "
                                       "validations read 2 (its best is measured so)\n")


def test_resume_keeps_the_runs_cadence_unless_given(tmp_path, corpus_file):
    """--eval-every, --sample-every, --sample-length and --checkpoint-every are saved: a bare
    --resume evaluates (and samples, and saves) as the run did; one given again is used; a
    checkpoint from before they were saved resumes with the defaults."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "6", "--eval-every", "3",
                       "--sample-every", "0", "--checkpoint-every", "2",
                       "--out", str(tmp_path)]) == 0
    path = tmp_path / "checkpoint.npz"
    assert checkpoint.load(path).run["cadence"] == {
        "eval_every": 3, "sample_every": 0, "sample_length": 200, "checkpoint_every": 2}
    assert train.main(["--resume", str(path), "--iterations", "12"]) == 0
    run = checkpoint.load(path).run
    assert [r["iteration"] for r in run["metrics"]] == [3, 6, 9, 12]
    assert train.main(["--resume", str(path), "--iterations", "16", "--eval-every", "2"]) == 0
    run = checkpoint.load(path).run
    assert [r["iteration"] for r in run["metrics"]][4:] == [14, 16]
    assert run["cadence"]["eval_every"] == 2 and run["cadence"]["checkpoint_every"] == 2

    def older(meta, arrays):  # as an older fastrnn wrote it
        del meta["run"]["cadence"]

    rewrite_meta(path, older)
    assert train.main(["--resume", str(path), "--iterations", "20"]) == 0
    run = checkpoint.load(path).run
    assert [r["iteration"] for r in run["metrics"]][6:] == [20]  # only the final one
    assert run["cadence"] == {"eval_every": 5000, "sample_every": 5000, "sample_length": 200,
                              "checkpoint_every": 5000}


def test_a_sample_length_past_the_most_a_run_prints_is_refused(tmp_path, corpus_file, capsys):
    """A run's samples are at most SAMPLE_LENGTH_MAX characters, given or kept from the
    checkpoint (10**11 was a MemoryError traceback when the first sample came, the run's work
    since its last checkpoint lost); fastrnn.sample is the tool for long texts."""
    from fastrnn.config import SAMPLE_LENGTH_MAX
    base = ["--data", corpus_file, *SMALL, "--iterations", "4", "--out", str(tmp_path)]
    assert_usage_error(train.main([*base, "--sample-length", str(SAMPLE_LENGTH_MAX + 1)]), capsys,
                       f"--sample-length {SAMPLE_LENGTH_MAX + 1:,} is more than a training run's "
                       f"samples may have ({SAMPLE_LENGTH_MAX:,} characters): python -m "
                       f"fastrnn.sample writes")
    assert train.main([*base, "--sample-length", str(SAMPLE_LENGTH_MAX)]) == 0  # (no sample due)
    path = tmp_path / "checkpoint.npz"
    rewrite_meta(path, lambda m, a: m["run"]["cadence"].update(sample_length=10 ** 11))
    assert_usage_error(train.main(["--resume", str(path), "--iterations", "8"]), capsys,
                       "--sample-length 100,000,000,000 (the checkpoint's) is more than",
                       f"pass --sample-length N, at most {SAMPLE_LENGTH_MAX:,}")
    assert train.main(["--resume", str(path), "--iterations", "8", "--sample-length", "50"]) == 0
    # with no sample drawn it is not refused, but said to change nothing
    assert train.main([*base[:-1], str(tmp_path / "none"), "--sample-every", "0",
                       "--sample-length", str(SAMPLE_LENGTH_MAX + 1)]) == 0
    assert f"--sample-length {SAMPLE_LENGTH_MAX + 1:,} changes nothing" in capsys.readouterr().err


def test_a_run_not_yet_validated_may_resume_with_other_validation_streams(
        tmp_path, corpus_file, capsys):
    """Before its first validation a run has no best measured with its --val-streams (e.g. a
    run stopped when its validation could not run): a resume may change them."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "4", "--eval-every", "5",
                       "--val-streams", "3", "--sample-every", "0", "--out", str(tmp_path)]) == 0
    ckpt = str(tmp_path / "checkpoint.npz")
    assert checkpoint.load(ckpt).run["metrics"][-1]["iteration"] == 4  # (the final one)
    rewrite_meta(tmp_path / "checkpoint.npz",
                 lambda meta, arrays: meta["run"].update(metrics=[], best_val_loss=None))
    assert train.main(["--resume", ckpt, "--iterations", "10", "--val-streams", "2"]) == 0
    records = checkpoint.load(ckpt).run["metrics"]
    assert [(r["iteration"], r["val_streams"]) for r in records] == [(5, 2), (10, 2)]


def test_validation_streams_that_cannot_fit_are_refused_before_training(
        tmp_path, corpus_file, capsys, monkeypatch):
    """The memory a validation needs is known at the start: more than the machine has is a
    usage error then, not a run stopped at its first validation."""
    from fastrnn import validate
    monkeypatch.setattr(validate, "available_memory", lambda: 3 * 2 ** 20)
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "4", "--val-fraction",
                     "0.5", "--val-streams", "200", "--out", str(tmp_path / "r")])
    assert_usage_error(rc, capsys, "validating on the ", " held-out characters as 200 streams "
                       "needs about ", "of memory; this machine has 3.0 MiB available: fewer "
                       "--val-streams need less\n")
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_from_before_val_streams_read_one_stream(tmp_path, corpus_file, capsys):
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--eval-every", "5",
                       "--sample-every", "0", "--out", str(tmp_path)]) == 0
    path = tmp_path / "checkpoint.npz"

    def older(meta, arrays):  # as an older fastrnn wrote it: no val_streams anywhere
        del meta["run"]["val_streams"]
        for record in meta["run"]["metrics"]:
            del record["val_streams"]

    rewrite_meta(path, older)
    rc = train.main(["--resume", str(path), "--iterations", "20", "--val-streams", "4"])
    assert_usage_error(rc, capsys, "cannot resume with --val-streams 4", "read 1")


def test_control_characters_in_printed_samples_are_escaped(tmp_path, capsys):
    """A text with carriage returns and terminal escapes: its samples, printed among the run's
    lines, moved the cursor over the progress bar and recoloured the terminal. Escaped there;
    the sample command writes the text as it is."""
    path = tmp_path / "ctl.txt"
    path.write_text("ab\rcd\x1b[1m\tef\n" * 400)
    out = tmp_path / "run"
    assert train.main(["--data", str(path), "--hidden-size", "8", "--iterations", "20",
                       "--eval-every", "0", "--sample-every", "20", "--sample-length", "300",
                       "--out", str(out)]) == 0
    sample = printed_samples(capsys.readouterr().out)[20]
    assert "\\r" in sample and "\\x1b" in sample, sample
    assert not set(sample) & {"\r", "\x1b"} and "\t" in sample and "\n" in sample
    rc, text = run_sample([str(out / "checkpoint.npz"), "--length", "300", "--seed", "0"])
    assert rc == 0 and "\r" in text and "\x1b" in text


def test_a_resume_whose_text_moved_is_told_to_give_data(tmp_path, corpus_file, capsys):
    text = tmp_path / "input.txt"
    text.write_bytes(Path(corpus_file).read_bytes())
    assert train.main(["--data", str(text), *SMALL, "--iterations", "5", "--out",
                       str(tmp_path / "run")]) == 0
    text.rename(tmp_path / "moved.txt")
    rc = train.main(["--resume", str(tmp_path / "run" / "checkpoint.npz"), "--iterations", "9"])
    assert_usage_error(rc, capsys, f"{text}: no such file; it is the text the checkpoint was "
                                   f"trained on: if it has moved, pass --data with where it is now")
    assert train.main(["--resume", str(tmp_path / "run" / "checkpoint.npz"), "--iterations", "9",
                       "--data", str(tmp_path / "moved.txt"), "--quiet"]) == 0


def test_a_resume_without_iterations_trains_to_the_runs_own_end(tmp_path, corpus_file, capsys,
                                                                monkeypatch):
    """--resume alone went on to the default 50,000 iterations, whatever the run it continues
    asked for (an interrupted 200-iteration run trained for minutes): the checkpoint records
    the run's end, and a resume without --iterations or --epochs trains to it (a run under a
    budget: ``test_a_resume_keeps_the_rest_of_the_runs_time_budget``)."""
    out = tmp_path / "run"
    _interrupting(monkeypatch, 1)  # (Ctrl-C at the first validation, iteration 10)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "10",
                       "--out", str(out)]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    ckpt = checkpoint.load(out / "checkpoint.npz")
    assert ckpt.run["iteration"] == 10 and ckpt.run["target"] == 30
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--quiet"]) == 0
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 30
    capsys.readouterr()
    assert train.main(["--resume", str(out / "checkpoint.npz")]) == 0
    assert "already at iteration 30 (the end of the run it resumes, --iterations 30): nothing " \
           "to train" in capsys.readouterr().out
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "40",
                       "--quiet"]) == 0  # (given: the new end, which a later resume keeps)
    assert checkpoint.load(out / "checkpoint.npz").run["target"] == 40


def test_a_budget_plans_validations_and_samples_without_their_compiling(tmp_path, corpus_file,
                                                                        monkeypatch):
    """Under --time-budget, the run plans each validation and sample as long as the latest's
    work, without the compiling of their kernels that the first of each may do (a fine-tune's
    first validation, at iteration 0, compiles them: its whole time had been taken for every
    validation's, and the budget's end planned that much too early)."""
    from contextlib import contextmanager
    from types import SimpleNamespace
    from fastrnn import compiling
    compile_seconds, compiled, real = 0.5, set(), compiling.announce

    @contextmanager
    def announce(say, what, kernels="kernels"):  # the first validation and sample compile
        record = SimpleNamespace(seconds=0.0)
        with real(say, what, kernels) as listened:
            yield record
        record.seconds = listened.seconds
        if kernels in (train.VALIDATION, train.SAMPLING) and kernels not in compiled:
            compiled.add(kernels)
            time.sleep(compile_seconds)
            record.seconds += compile_seconds

    planned, out_of_time = [], train.Trainer._out_of_time

    def planning(self, *args):
        if compiled:
            planned.append((self._validation_seconds(), self.sample_seconds))
        return out_of_time(self, *args)

    monkeypatch.setattr(compiling, "announce", announce)
    monkeypatch.setattr(train.Trainer, "_out_of_time", planning)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--out",
                       str(tmp_path / "a")]) == 0
    compiled.clear()
    assert train.main(["--init-from", str(tmp_path / "a" / "checkpoint.npz"), "--data",
                       corpus_file, "--iterations", "30", "--eval-every", "10", "--sample-every",
                       "10", "--time-budget", "600", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert compiled == {train.VALIDATION, train.SAMPLING} and planned
    assert max(v for v, _ in planned) < compile_seconds / 2, planned
    assert max(s for _, s in planned) < compile_seconds / 2, planned


def test_a_resume_keeps_the_rest_of_the_runs_time_budget(tmp_path, corpus_file, capsys,
                                                         monkeypatch):
    """A run under --time-budget, interrupted and resumed as its closing line says (--resume
    alone), went on to its --iterations, the budget forgotten (a warning said so): it ends
    within what is left of the budget, counted in the time the run has spent since its
    training started (``wall_seconds``, over all its processes). A run the budget stopped has
    nothing to train; --time-budget S gives a resume S seconds from its start; --iterations
    drops the budget. (The closing line's command quotes the path as a shell must read it.)"""
    out = tmp_path / "the run's out"
    path = out / "checkpoint.npz"
    # Ctrl-C at the first validation, iteration 10 (evaluate's third call: the budget's
    # estimate of a validation makes two)
    _interrupting(monkeypatch, 3)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "40", "--time-budget",
                       "3600", "--eval-every", "10", "--out", str(out)]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.endswith(f"continue with: python -m fastrnn.train --resume "  # (no --iterations:
                        f"'{tmp_path}/the run'\"'\"'s out/checkpoint.npz'\n")  # the run's end)
    assert shlex.split(err.split("continue with: ")[1]) == [
        "python", "-m", "fastrnn.train", "--resume", str(path)]
    run = checkpoint.load(path).run
    assert (run["iteration"], run["target"], run["time_budget"], run["budget_from"]) == \
        (10, 40, 3600, 0)
    assert 0 < run["wall_seconds"] < 3600 and "stopped" not in run
    # all but 1 us spent (as if it had run an hour): the resume stops at once, by the budget
    rewrite_meta(path, lambda m, a: m["run"].update(wall_seconds=3600 - 1e-6))
    assert train.main(["--resume", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "note: the run it resumes has spent 3600 s of its --time-budget 3600: this one ends " \
           "within the 1e-06 s left (--time-budget S gives it S seconds from now)\n" in printed
    assert "stopped by the time budget: iteration 10" in printed
    run = checkpoint.load(path).run
    assert run["iteration"] == 10 and run["stopped"] == "time budget"
    assert run["wall_seconds"] > 3600 - 1e-6 and run["budget_from"] == 0
    assert train.main(["--resume", str(path)]) == 0  # spent: nothing more
    assert "the run it resumes has spent its --time-budget 3600 (at iteration 10): nothing to " \
           "train (--time-budget S trains S seconds more)" in capsys.readouterr().out
    # 1,000 s spent of the hour: the resume goes on to the run's --iterations, within budget
    rewrite_meta(path, lambda m, a: (m["run"].update(wall_seconds=1000.0), m["run"].pop("stopped")))
    assert train.main(["--resume", str(path)]) == 0
    assert "spent 1000 s of its --time-budget 3600: this one ends within the 2600 s left" in \
        capsys.readouterr().out
    run = checkpoint.load(path).run
    assert (run["iteration"], run["time_budget"], run["budget_from"]) == (40, 3600, 0)
    assert run["wall_seconds"] > 1000 and run["metrics"][-1]["wall_seconds"] > 1000
    assert train.main(["--resume", str(path)]) == 0  # at its --iterations: said, no budget note
    printed = capsys.readouterr().out
    assert "already at iteration 40" in printed and "spent" not in printed, printed
    # given anew, the budget counts from the resume's start (budget_from, the run's time
    # then), which a resume of that keeps
    _interrupting(monkeypatch, 3)  # (its first validation, iteration 45)
    assert train.main(["--resume", str(path), "--time-budget", "3600", "--iterations", "50",
                       "--eval-every", "5", "--quiet"]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    run = checkpoint.load(path).run
    assert run["iteration"] == 45 and run["time_budget"] == 3600 and "stopped" not in run
    start = run["budget_from"]
    assert 1000 < start < run["wall_seconds"]
    rewrite_meta(path, lambda m, a: m["run"].update(wall_seconds=start + 3600 - 1e-6))
    assert train.main(["--resume", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "spent 3600 s of its --time-budget 3600: this one ends within the 1e-06 s left" in \
        printed and "stopped by the time budget: iteration 45" in printed, printed
    assert checkpoint.load(path).run["budget_from"] == start
    # --iterations alone drops the budget
    assert train.main(["--resume", str(path), "--iterations", "50", "--quiet"]) == 0
    run = checkpoint.load(path).run
    assert run["iteration"] == 50 and "time_budget" not in run and "stopped" not in run


def test_a_resumes_budget_note_says_the_validation_it_owes_comes_first(capsys):
    """(a resume whose checkpoint owes a validation, cut short by the stop, said "this one ends
    within the 0.54 s left", then took 2 s to redo it first, as it must to stay the same run)"""
    for pending, said in ((None, ""), ("iteration", "; it first does the validation its stop "
                                                    "cut short, past them if that takes longer")):
        run = {"time_budget": 8.0, "wall_seconds": 7.46, "iteration": 6000, "target": 10000,
               **({"pending": pending} if pending else {})}
        args = types.SimpleNamespace(time_budget=None, target_from="checkpoint",
                                     iterations=10000, quiet=False, output_closed=None)
        assert train._budget(args, types.SimpleNamespace(run=run)) == pytest.approx(7.46)
        assert capsys.readouterr().out == (
            f"note: the run it resumes has spent 7.5 s of its --time-budget 8: this one ends "
            f"within the 0.54 s left{said} (--time-budget S gives it S seconds from now)\n")


def test_a_budget_run_its_decay_stopped_resumes_to_nothing_without_a_budget_note(
        tmp_path, corpus_file, capsys):
    """Under a budget, a run its learning rate's decay to 0 stopped: its resume said how much
    of the budget was left before stopping at once, by the decay; it says there is nothing to
    train, why, and nothing of the budget."""
    path = tmp_path / "checkpoint.npz"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "50", "--time-budget",
                       "3600", "--lr-decay", "1e-200", "--lr-decay-every", "10", "--out",
                       str(tmp_path)]) == 0
    assert checkpoint.load(path).run["stopped"] == "learning rate's decay to 0"
    capsys.readouterr()
    assert train.main(["--resume", str(path)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("the run's learning rate has decayed to 0 in float64 by iteration "
                              "20 (--lr-decay 1e-200 every 10 iterations): nothing to train") \
        and "spent" not in printed, printed


def test_a_run_its_anneal_took_to_a_zero_rate_resumes_to_nothing(tmp_path, corpus_file, capsys):
    """An anneal that takes a tiny rate to 0 before its end stops the run there (the rate's
    "anneal to 0"); its resume says so (it was a TypeError: no --lr-decay to name)."""
    path = tmp_path / "checkpoint.npz"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "200", "--anneal", "0.5",
                       "--learning-rate", "1e-322", "--eval-every", "50", "--out",
                       str(tmp_path)]) == 0
    run = checkpoint.load(path).run
    assert run["stopped"] == "learning rate's anneal to 0" and 100 < run["iteration"] < 200
    capsys.readouterr()
    assert train.main(["--resume", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"the run's learning rate has annealed to 0 in float64 by iteration {run['iteration']}: "
        f"nothing to train; --init-from starts a new run from its weights\n")


def test_a_budget_run_with_no_time_recorded_resumes_to_its_iterations(tmp_path, corpus_file,
                                                                        capsys):
    """A checkpoint whose run.wall_seconds is null or missing (hand-edited; or from before it
    was saved): the budget's spent part is unknown, said, and the resume trains to the run's
    --iterations (a null one, or a null train_seconds or timed_chars, failed with a TypeError
    at the first record)."""
    path = tmp_path / "checkpoint.npz"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--time-budget",
                       "3600", "--out", str(tmp_path)]) == 0
    for n, change in enumerate(({"wall_seconds": None, "train_seconds": None,  # (null,
                                 "timed_chars": None}, {})):                   # then missing)
        rewrite_meta(path, lambda m, a: (m["run"].update(change, iteration=10, time_budget=3600),
                                         m.update(step=10), a.update(losses=a["losses"][:10])))
        if n:  # (the resume wrote its own, as a number)
            rewrite_meta(path, lambda m, a: m["run"].pop("wall_seconds"))
        capsys.readouterr()
        assert train.main(["--resume", str(path), "--quiet"]) == 0
        assert "its checkpoint does not record how much of it was spent: this one trains to " \
               "iteration 20" in capsys.readouterr().err
        assert checkpoint.load(path).run["iteration"] == 20


def test_a_budget_stop_is_recorded_whatever_comes_after_it(tmp_path, corpus_file, capsys,
                                                           monkeypatch):
    """What stopped the run is recorded: when the budget stops it right after a checkpoint
    holding everything (which was not written again), and when Ctrl-C cuts its final
    validation short (a resume does that validation, and trained on with the budget's
    ending, kept in hand, as if it were time left)."""
    from fastrnn.train import Trainer
    out, path = tmp_path / "a", tmp_path / "a" / "checkpoint.npz"
    monkeypatch.setattr(Trainer, "_out_of_time", lambda self, start, budget, n:
                        self.iteration >= 10)  # (the budget's end, found at iteration 10)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--time-budget",
                       "3600", "--eval-every", "10", "--checkpoint-every", "10", "--out",
                       str(out)]) == 0
    run = checkpoint.load(path).run
    assert run["iteration"] == 10 and run["stopped"] == "time budget"
    monkeypatch.undo()
    # Ctrl-C in the final validation of a run the budget stopped (at once: no estimate made)
    out, path = tmp_path / "b", tmp_path / "b" / "checkpoint.npz"
    from fastrnn.backends import numba as numba_backend  # (kernel calls of 256 characters: a
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)  # Ctrl-C at the first is early)
    _interrupting(monkeypatch, 1)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--time-budget",
                       "1e-9", "--out", str(out)]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    run = checkpoint.load(path).run
    assert (run["iteration"], run["pending"], run["stopped"]) == (0, "end", "time budget")
    # (an hour's budget from 2 s into the run, of which 3 s spent: still nothing more to
    # train, that validation only; where the budget started is kept: it became 0)
    rewrite_meta(path, lambda m, a: m["run"].update(time_budget=3600, wall_seconds=5.0,
                                                    budget_from=2.0))
    assert train.main(["--resume", str(path), "--quiet"]) == 0
    run = checkpoint.load(path).run
    assert run["iteration"] == 0 and "pending" not in run and run["stopped"] == "time budget"
    assert [r["iteration"] for r in run["metrics"]] == [0] and run["budget_from"] == 2.0
    # the same at the end of an anneal the budget ended (no iteration left to train): the
    # resume that does the validation said "done" and dropped the record of the budget's stop
    out, path = tmp_path / "c", tmp_path / "c" / "checkpoint.npz"
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
    _interrupting(monkeypatch, 1)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--anneal", "0.5",
                       "--eval-every", "0", "--sample-every", "0", "--out",
                       str(out)]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    rewrite_meta(path, lambda m, a: m["run"].update(time_budget=3600, wall_seconds=5.0,
                                                    budget_from=2.0, stopped="time budget"))
    run = checkpoint.load(path).run
    assert (run["iteration"], run["pending"], run["anneal"]["window"]) == (20, "end", [10, 20])
    assert train.main(["--resume", str(path)]) == 0
    assert "\ndone: iteration 20 (the end of its anneal)" in capsys.readouterr().out
    run = checkpoint.load(path).run
    assert run["iteration"] == 20 and run["stopped"] == "time budget" and \
        run["budget_from"] == 2.0 and "pending" not in run


def test_resume_past_the_target_has_nothing_to_do(tmp_path, corpus_file, capsys):
    # past 1024 iterations: more than the loss history first holds for a short target
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "1100",
                       "--eval-every", "0", "--sample-every", "0", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "5"]) == 0
    assert "nothing to train (--iterations N, above 1100, trains on)" in capsys.readouterr().out
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--time-budget", "5"]) == 0
    assert "already at iteration 1100 (the end of the run it resumes, --iterations 1100): " \
           "nothing to train (--iterations N, above 1100, trains on)" in capsys.readouterr().out
    # into a new --out: nothing is left there (not even the directory)
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "5",
                       "--out", str(tmp_path / "new")]) == 0
    assert "nothing to train" in capsys.readouterr().out and not (tmp_path / "new").exists()
    # what a run that trains would have noted is not said (it replaces nothing)
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--learning-rate", "0.05",
                       "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "note:" not in out, out


def test_a_resume_keeps_the_runs_backend(tmp_path, corpus_file, capsys, monkeypatch):
    """Without --backend, a resumed run trains on its checkpoint's (a numpy run resumed to
    go further went on on numba: 7e-13 off the run it continues); given, the one given."""
    base = ["--data", corpus_file, *SMALL, "--eval-every", "20", "--sample-every", "0",
            "--backend", "numpy"]
    assert train.main([*base, "--iterations", "40", "--out", str(tmp_path / "whole")]) == 0
    assert train.main([*base, "--iterations", "20", "--out", str(tmp_path / "part")]) == 0
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "part" / "checkpoint.npz"),
                       "--iterations", "40"]) == 0
    assert "note: the checkpoint was trained with --backend" not in capsys.readouterr().out
    whole, part = (checkpoint.load(tmp_path / d / "checkpoint.npz") for d in ("whole", "part"))
    assert part.run["backend"] == "numpy"
    same_state(whole, part)
    rc = train.main(["--resume", str(tmp_path / "part" / "checkpoint.npz"), "--threads", "2",
                     "--iterations", "60"])
    assert_usage_error(rc, capsys, "(--backend numpy is the checkpoint's: --backend numba "
                                   "changes it)")
    assert train.main(["--resume", str(tmp_path / "part" / "checkpoint.npz"), "--backend",
                       "numba", "--iterations", "60"]) == 0
    assert checkpoint.load(tmp_path / "part" / "checkpoint.npz").run["backend"] == "numba"
    # a run trained on a GPU, resumed where there is none: on numba, said (not refused)
    rewrite_meta(tmp_path / "part" / "checkpoint.npz",
                 lambda meta, arrays: meta["run"].update(backend="cuda"))
    real = train.get_backend

    def no_gpu(name):
        if name == "cuda":
            raise ValueError("backend 'cuda' is not usable here: no GPU")
        return real(name)

    monkeypatch.setattr(train, "get_backend", no_gpu)
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "part" / "checkpoint.npz"),
                       "--iterations", "80"]) == 0
    assert ("note: the checkpoint was trained with --backend cuda; results continue bit for bit "
            "only on the same backend and dtype (backend 'cuda' is not usable here: no GPU)"
            ) in capsys.readouterr().out  # (why it is not, said)
    assert checkpoint.load(tmp_path / "part" / "checkpoint.npz").run["backend"] == "numba"


def test_a_resume_notes_a_best_model_saved_after_its_checkpoint(tmp_path, corpus_file,
                                                                capsys):
    """(a run killed after it wrote best.npz past its last checkpoint: the resumed run replaces
    that model at its first better validation, and said nothing of it)"""
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "20", "--eval-every",
                       "10", "--sample-every", "0", "--out", str(tmp_path)]) == 0
    early = (tmp_path / "checkpoint.npz").read_bytes()
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "40"]) == 0
    best = checkpoint.run_record(tmp_path / "best.npz")["iteration"]
    assert best > 20
    (tmp_path / "checkpoint.npz").write_bytes(early)  # (as if killed after best.npz)
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "30"]) == 0
    assert (f"note: {tmp_path / 'best.npz'} holds iteration {best}, past the checkpoint's 20: "
            f"this run replaces it at its first validation better than the checkpoint's best "
            f"(copy it elsewhere to keep it)") in capsys.readouterr().out
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "40"]) == 0
    assert "past the checkpoint's" not in capsys.readouterr().out


def test_a_resume_whose_rate_decayed_to_0_is_not_told_to_train_on(tmp_path, corpus_file,
                                                                  capsys):
    """A run --lr-decay stopped at a rate of 0, resumed with an --iterations below it: nothing
    to train, and no "--iterations N trains on" (no N does), but --init-from."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "400", "--lr-decay",
                       "0.0001", "--lr-decay-every", "2", "--eval-every", "0",
                       "--sample-every", "0", "--out", str(tmp_path)]) == 0
    stopped = checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"]
    assert stopped < 400
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "5"]) == 0
    assert capsys.readouterr().out.endswith(f"already at iteration {stopped} (--iterations 5): "
                                            f"nothing to train; --init-from starts a new run "
                                            f"from its weights\n")


def test_a_run_refused_an_out_in_use_names_its_holder_once_written(tmp_path, corpus_file,
                                                                     capsys, monkeypatch):
    """The holder of --out writes its pid into the lock file once it has checked --out: a run
    refused in between named no pid (2 of 14 races); it reads the file again for a moment."""
    from fastrnn import files
    out = tmp_path / "r"
    out.mkdir()
    (out / files.LOCK).write_text("4242\n")  # (as the holder writes it, a moment later)
    read_it = False

    def locked(directory):  # (a lock held; its file read as files.lock reads it)
        raise files.Locked(files.holder(directory) if read_it else None)

    monkeypatch.setattr(files, "lock", locked)
    monkeypatch.setattr(files, "alive", lambda pid: pid == 4242)
    assert_usage_error(train.main(["--data", corpus_file, *SMALL, "--out", str(out)]), capsys,
                       f"{out} is in use by another fastrnn.train run (pid 4242)")
    # a killed run's pid, still in the file until the holder writes its own, is not named
    (out / files.LOCK).write_text("4343\n")
    assert_usage_error(train.main(["--data", corpus_file, *SMALL, "--out", str(out)]), capsys,
                       f"{out} is in use by another fastrnn.train run: wait")
    # ...but the holder's, once it writes it during the wait
    monkeypatch.setattr(train.time, "sleep", lambda s: (out / files.LOCK).write_text("4242\n"))
    read_it = True
    (out / files.LOCK).write_text("4343\n")
    assert_usage_error(train.main(["--data", corpus_file, *SMALL, "--out", str(out)]), capsys,
                       f"{out} is in use by another fastrnn.train run (pid 4242)")


def test_a_second_run_into_an_out_in_use_is_refused(tmp_path, corpus_file, capsys):
    """While a run holds --out (its lock, taken here as another process's would be), a
    second run there is refused by name before it writes anything; the lock goes with its
    holder, and a lock file left by a killed run locks nothing."""
    from fastrnn import files
    out = tmp_path / "r"
    out.mkdir()
    held = files.lock(out)
    files.claim(held)
    argv = ["--data", corpus_file, *SMALL, "--iterations", "10", "--out", str(out)]
    assert_usage_error(train.main(argv), capsys,
                       f"{out} is in use by another fastrnn.train run (pid {os.getpid()}): wait "
                       f"for it to end, or pass another --out")
    assert sorted(p.name for p in out.iterdir()) == [files.LOCK]
    held.close()  # (as when its process ends, killed or not: the file stays, unlocked)
    assert train.main(argv) == 0
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "20"]) == 0
    held = files.lock(out)  # released by each run as it returned
    held.close()


def test_time_budget_stops_and_saves(tmp_path, corpus_file, capsys):
    rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                     "--time-budget", "0.5", "--eval-every", "0", "--sample-every", "0",
                     "--out", str(tmp_path)])
    assert rc == 0 and "stopped by the time budget" in capsys.readouterr().out
    assert 0 < checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"] < 100_000_000


def work_clock(monkeypatch):
    """A clock that only the work moves: 1 s a chunk, 5 s a validation of the whole 2,000
    held-out characters (in proportion for a part), 0.5 s a checkpoint, 0.01 s a sampled
    character. Returns its reading as a one-item list."""
    from fastrnn.model import CharRNN
    clock = [1000.0]
    real_train, real_evaluate, real_save = CharRNN.train, CharRNN.evaluate, checkpoint.save
    real_sample = CharRNN.sample

    def timed(real, seconds):
        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            clock[0] += seconds(*args, **kwargs)
            return result
        return call

    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(CharRNN, "train", timed(real_train, lambda self, data, n=1, lr=None: n))
    monkeypatch.setattr(CharRNN, "evaluate",
                        timed(real_evaluate, lambda self, data, **k: 5.0 * len(data) / 2000))
    monkeypatch.setattr(checkpoint, "save", timed(real_save, lambda *a, **k: 0.5))
    monkeypatch.setattr(CharRNN, "sample", timed(real_sample, lambda self, n, *a, **k: 0.01 * n))
    return clock


def test_a_call_cut_short_by_what_is_due_is_not_taken_for_a_block(tmp_path, corpus_file, capsys,
                                                                   monkeypatch):
    """Under a budget, a budget-sized anneal's steps are reckoned from a whole call (a block,
    BLOCK_SECONDS of chunks at the latest call's pace, or the cadence of what is due if that
    is shorter), not from the latest call, which what was due may have cut short: at 1/128 s
    a chunk a block is 25 chunks, and samples every 30 cut every other call to 5; samples
    every 10 cut every call to 10. Each anneal step is at least 4 whole calls long (it was 4
    of the latest calls, 4 x 5 chunks: 11 steps where 2 were due; with checkpoints every
    5,000 iterations and blocks of 14,000, 3 steps where 10 were), and the run ends within
    every budget, with the anneal or without."""
    clock = work_clock(monkeypatch)
    timed = train.CharRNN.train  # (1 s a chunk)

    def fast(self, data, n=1, lr=None):
        losses = timed(self, data, n, lr)
        clock[0] -= n * (1 - 1 / 128)
        return losses

    monkeypatch.setattr(train.CharRNN, "train", fast)
    for budget, every, anneal in [(8 + k / 9, every, anneal) for k in range(9)
                                  for every in (30, 10) for anneal in ([], ["--anneal", "0.5"])]:
        start, out = clock[0], tmp_path / f"{budget:.3f}-{every}{anneal}"
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "100000000",
                           "--time-budget", str(budget), "--eval-every", "0", "--sample-every",
                           str(every), "--sample-length", "1", "--checkpoint-every", "0",
                           "--val-fraction", "0.02", *anneal, "--out", str(out)]) == 0
        assert clock[0] - start <= budget, (budget, every, anneal)
        if anneal:
            run = checkpoint.load(out / "checkpoint.npz").run
            first, end = run["anneal"]["window"]
            call = min(25, every)
            assert run["anneal"]["steps"] == min(100, max(1, (end - first) // (4 * call)))


def test_the_next_call_is_reckoned_at_the_latest_pace_for_its_own_length(monkeypatch):
    """Under a budget, whether the next call of n iterations fits is reckoned at the latest
    call's seconds per iteration, for n: after a call of 5 cut short by what was due, a call of
    25 takes 5 times as long (the latest call's own time, reserved for it, let a run end up to
    a block's time past its budget), and one of 5 no longer than it."""
    clock = [100.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    trainer = train.Trainer.__new__(train.Trainer)  # (what _out_of_time reads, alone)
    trainer.args = types.SimpleNamespace(sample_every=0, checkpoint_every=0)
    trainer.iteration, trainer.iteration_seconds = 40, 0.01
    trainer._closing_seconds = lambda: 1.0
    start, budget = 90.0, 11.2  # (10 s spent; the closing and 25 x 0.01 s are 1.25 s)
    assert trainer._out_of_time(start, budget, 25)
    assert not trainer._out_of_time(start, budget, 5)


def test_a_budgets_anneal_is_not_cut_short_by_a_checkpoint_due(tmp_path, corpus_file, capsys,
                                                                 monkeypatch):
    """The iterations a budget's last share holds are found up to a bound from the kernels'
    pace alone: the cost of one iteration, with a checkpoint due at it, made the bound (and
    the window) far too short. Checkpoints of 10 s every 20 iterations (of 1 s): the anneal
    still ends near the budget's end, whichever iteration its share begins before."""
    clock = work_clock(monkeypatch)
    saving = checkpoint.save

    def slow(*args, **kwargs):  # (10 s a checkpoint, with the work clock's 0.5)
        clock[0] += 9.5
        return saving(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", slow)
    for budget in range(200, 241):
        start = clock[0]
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "100000000",
                           "--time-budget", str(budget), "--anneal", "0.5", "--eval-every", "0",
                           "--checkpoint-every", "20", "--sample-every", "0", "--out",
                           str(tmp_path / str(budget))]) == 0
        run = checkpoint.load(tmp_path / str(budget) / "checkpoint.npz").run
        assert run["iteration"] == run["anneal"]["window"][1], budget
        assert clock[0] - start > budget - 0.03 * budget - 12, (budget, clock[0] - start)


def test_a_budgets_progress_bar_counts_the_validations_to_come(tmp_path, corpus_file, capsys,
                                                               monkeypatch):
    """Under --time-budget the bar's time left, when the iterations end the run first, is
    theirs at the run's pace with the validations due among them and the run's ending (it
    was the iterations' kernel time alone: 97% done with most of the run to come)."""
    work_clock(monkeypatch)  # (1 s an iteration, 5 s a validation, 0.5 s a checkpoint)
    assert train.main(["--data", corpus_file, "--hidden-size", "24", "--seq-length", "10",
                       "--iterations", "40", "--time-budget", "3600", "--eval-every", "10",
                       "--sample-every", "0", "--out", str(tmp_path)]) == 0
    shown = capsys.readouterr().err.replace("\r", "\n").splitlines()
    at = [line for line in shown if "budget, iteration 20/40," in line][-1]
    # the validation due at 20 (5 s, and 0.5 s for best.npz), 20 iterations, the validation at
    # 30 and its best.npz, the final validation, its best.npz and the checkpoint
    assert "<00:37 of the 1:00:00 budget" in at, at


@pytest.mark.parametrize("streams", [1, 3])
def test_a_budgets_estimate_of_a_validation_times_two_passes_of_every_stream(
        tmp_path, corpus_file, monkeypatch, streams):
    """Before any validation is timed, a budget's estimate compiles on a pass of 256 steps of
    every stream (making the buffers the validation's passes use) and times two at least,
    scaled (timed on a sixteenth of 2,230 held-out characters, one pass, on one thread, with
    new buffers, the estimate was 2.3-3x a large model's validation, and a 60 s run stopped
    after one iteration)."""
    from fastrnn.model import CharRNN
    lengths, real = [], CharRNN.evaluate

    def evaluate(self, data, **kwargs):
        lengths.append((len(data), kwargs.get("streams")))
        return real(self, data, **kwargs)
    monkeypatch.setattr(CharRNN, "evaluate", evaluate)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "3", "--eval-every", "0",
                       "--time-budget", "3600", "--val-streams", str(streams), "--out",
                       str(tmp_path)]) == 0
    val = len(load(corpus_file, 0.1).val)
    assert val > 2 * 256 * 3 + 1
    assert lengths == [(256 * streams + 1, streams), (2 * 256 * streams + 1, streams),
                       (val, streams)]


@pytest.mark.parametrize("eval_every, sample_every, checkpoint_every",
                         [("4", "0", "4"), ("0", "0", "4"), ("0", "0", "5000"), ("4", "1", "4")])
def test_time_budget_holds_the_final_validation_and_checkpoint(tmp_path, corpus_file, capsys,
                                                                monkeypatch, eval_every,
                                                                sample_every, checkpoint_every):
    # The run must end within the budget, whatever the budget, its final validation (and the
    # best.npz it writes) and checkpoint included; stopping only once the budget is spent ends
    # it past it. With --eval-every 0 no validation is timed before the final one: its time is
    # estimated from a part of it, and a checkpoint written to time the write. Samples (2 s
    # each here) are counted too, the first estimated from a part of one.
    clock = work_clock(monkeypatch)
    for budget in range(10, 31):
        out = tmp_path / str(budget)
        start = clock[0]
        rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                         "--time-budget", str(budget), "--eval-every", eval_every,
                         "--sample-every", sample_every, "--sample-length", "200",
                         "--checkpoint-every", checkpoint_every, "--out", str(out)])
        printed = capsys.readouterr()
        assert rc == 0 and "stopped by the time budget" in printed.out
        late = re.search(r"the run ends about ([\d.]+) s late", printed.out)
        if late:  # (the ending, 7.5 s with a sample, and the estimate's three passes of the
            # held-out text, 1.9 s, do not fit the smallest budgets after the first chunk: said,
            # and kept to)
            assert budget <= 12 and eval_every == "4" and sample_every == "1"
            assert budget < clock[0] - start <= budget + float(late[1]) + 0.5, budget
        else:
            assert budget - 12 <= clock[0] - start <= budget, budget
        assert f"of the 00:{budget} budget, iteration 1" in printed.err  # the bar counts time
        # and ends at 100% (README), the time it kept for what ends the run spent: not at the
        # share of the budget that training had (80-90%)
        frames = printed.err.replace("\r", "\n").splitlines()
        last = [line for line in frames if f"of the 00:{budget} budget" in line][-1]
        assert last.startswith("100%|") and f"<00:00 of the 00:{budget} budget" in last, last
        run = checkpoint.load(out / "checkpoint.npz").run
        assert run["metrics"][-1]["iteration"] == run["iteration"] >= 1


def test_a_budget_counts_matplotlibs_import_out_and_its_drawings_in(tmp_path, corpus_file,
                                                                     capsys, monkeypatch):
    """(the first loss.png of a process imports matplotlib, 0.35-0.5 s, which no plan counted:
    runs under short budgets ended past them, and anneals before their end) Under a budget,
    matplotlib is imported before the clock starts, as the other imports are, and the plans
    count a drawing's time from then on. Here the import takes 3 s of the work clock, a
    drawing 0.2 s: every run ends within its budget."""
    from fastrnn import metrics
    clock = work_clock(monkeypatch)
    imported, real_plot = [False], metrics.plot

    def prepare():
        imported[0] = True
        return 0.2

    def plot(path, records):
        clock[0] += 0.2 if imported[0] else 3.2
        imported[0] = True
        return real_plot(path, records)

    monkeypatch.setattr(metrics, "prepare", prepare)
    monkeypatch.setattr(metrics, "plot", plot)
    for budget in (12, 16, 20):
        imported[0] = False  # (each run a process of its own)
        start = clock[0]
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "100000000",
                           "--time-budget", str(budget), "--eval-every", "0", "--out",
                           str(tmp_path / str(budget))]) == 0
        assert clock[0] - start <= budget and imported[0], (budget, clock[0] - start)


def test_an_ending_longer_than_the_budget_left_is_said(tmp_path, corpus_file, capsys,
                                                       monkeypatch):
    """A validation of 5 s and checkpoints of 0.5 s (the work clock) do not fit a 4 s budget:
    the run stops after its first block and says, before its ending, that it ends late; a
    1 s budget is spent by the first block (1 s: a first call's compiling, in a real run) and
    the estimates of the ending (2.4 s: a pass of 256 held-out characters compiling, two timed,
    5 s the 2,000, and a checkpoint's write, 0.5 s)."""
    clock = work_clock(monkeypatch)
    start = clock[0]
    rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                     "--time-budget", "1", "--eval-every", "0", "--sample-every", "0",
                     "--out", str(tmp_path / "1")])
    out = capsys.readouterr().out
    assert rc == 0 and ("note: the 1 s budget was spent before training got going (3.4 s, "
                        "compiling the kernels included): the run ends after its final "
                        "validation and checkpoint, about 8.4 s late") in out, out
    assert clock[0] - start > 1
    for budget, late in (("4", True), ("30", False)):
        start = clock[0]
        rc = train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "100000000",
                         "--time-budget", budget, "--eval-every", "0", "--sample-every", "0",
                         "--out", str(tmp_path / budget)])
        out = capsys.readouterr().out
        assert rc == 0 and "stopped by the time budget" in out
        said = "note: the final validation and checkpoint take about 6 s, more than the"
        assert (said in out) == late, out
        assert (clock[0] - start > float(budget)) == late


@pytest.mark.parametrize("anneal", [[], ["--anneal", "0.5"]])
def test_a_budget_times_a_sample_only_when_one_falls_within_it(tmp_path, corpus_file,
                                                               monkeypatch, anneal):
    """Under --time-budget a sample's time is estimated (its kernels compiled, on a first run)
    once the rest of the budget could reach one: a run whose budget, or --iterations, ends
    before its first sample estimates none (it did at its start: the sampling kernels'
    compiling took 2.6 s of a 60 s budget, for nothing); one that samples within it estimates
    one, once, early enough that the estimate's seconds (here 3, as a compiling's) do not
    take the run past the budget, its anneal included."""
    clock = work_clock(monkeypatch)  # (1 s a chunk, 5 s a validation, 0.01 s a character)
    estimated, real = [], train.Trainer._estimate_sample

    def estimate(self, *args):
        estimated.append(self.iteration)
        seconds = real(self, *args)
        clock[0] += 3.0  # (its kernels compiled)
        return seconds

    monkeypatch.setattr(train.Trainer, "_estimate_sample", estimate)
    runs = [(budget, "15", "100000", True) for budget in range(20, 41)] + \
        [(40, "1000", "100000", False), (3600, "1000", "30", False)]
    for budget, every, iterations, samples in runs:
        estimated.clear()
        start = clock[0]
        out = tmp_path / f"{budget}-{every}-{iterations}"
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", iterations,
                           "--time-budget", str(budget), "--eval-every", "0", "--sample-every",
                           every, *anneal, "--out", str(out)]) == 0
        assert clock[0] - start <= budget, (budget, every, estimated)
        run = checkpoint.load(out / "checkpoint.npz").run
        assert len(estimated) == samples and estimated[:1] <= [15], (budget, estimated)
        if iterations == "30":
            assert run["iteration"] == 30
            continue
        assert run["stopped"] == "time budget" and run["iteration"] < budget, run["iteration"]
        if budget == 40:  # (a window with room for it)
            assert ("window" in run["anneal"]) if anneal else "anneal" not in run


def test_a_budget_left_that_the_first_call_takes_is_said_as_such(tmp_path, corpus_file, capsys,
                                                                 monkeypatch):
    """A resumed run with 0.5 s of its budget left, which its first call (1 s on the work
    clock) takes: the note gives what was left and this process's seconds, not the run's."""
    path = tmp_path / "checkpoint.npz"
    _interrupting(monkeypatch, 3)  # (Ctrl-C at the first validation, iteration 10)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "40", "--time-budget",
                       "3600", "--eval-every", "10", "--out", str(tmp_path)]) == \
        cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    rewrite_meta(path, lambda m, a: m["run"].update(wall_seconds=3599.5))
    work_clock(monkeypatch)
    capsys.readouterr()
    assert train.main(["--resume", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "note: the 0.5 s left of the 3600 s budget were spent before training got going " \
           "(3.4 s, compiling the kernels included): the run ends after its final validation " \
           "and checkpoint, about 8.9 s late" in printed, printed  # (no sample due: none timed)


def test_divergence_stops_with_the_last_good_checkpoint_kept(tmp_path, corpus_file, capsys, monkeypatch):
    from fastrnn.model import CharRNN
    real_train, calls = CharRNN.train, []

    def train_then_blow_up(self, data, n_steps=1, learning_rate=None):
        losses = real_train(self, data, n_steps, learning_rate)
        calls.append(n_steps)
        if sum(calls) > 7:  # from the 8th iteration on: NaN, as a diverging model gives
            self.weights.layers[0].Whh[0, 0] = np.nan
            losses[-1] = np.nan
        return losses

    monkeypatch.setattr(CharRNN, "train", train_then_blow_up)
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "500", "--checkpoint-every", "3",
                     "--eval-every", "0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "training diverged at iteration" in err, err
    assert "(loss nan nats/char)" in err, err
    assert "smaller --learning-rate" in err and err.count("\n") == 1
    ckpt = checkpoint.load(tmp_path / "checkpoint.npz")
    assert ckpt.run["iteration"] == 6 and "(iteration 6)" in err
    assert all(np.isfinite(a).all() for a in ckpt.params.values()), "parameters"
    assert all(np.isfinite(a).all() for s in ckpt.states for a in s.values()), "optimizer state"
    assert np.isfinite(ckpt.state).all() and np.isfinite(ckpt.losses).all()


def test_a_real_divergence_is_caught(tmp_path, corpus_file, capsys):
    rc = train.main(["--data", corpus_file, "--hidden-size", "16", "--dtype", "float32",
                     "--learning-rate", "1e38", "--iterations", "50", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "training diverged at iteration" in err, err
    assert "inf/NaN" in err or "times a uniform guess's" in err, err


def test_a_run_resumed_into_another_out_says_where_its_best_is(tmp_path, corpus_file, capsys,
                                                              monkeypatch):
    """A run resumed with a new --out whose best validation came before it: its end names
    the best.npz of the run it resumed (it said only "was before this run's --out"), if that
    still holds it."""
    from fastrnn.model import CharRNN
    evaluate = CharRNN.evaluate
    losses = iter([1.0, 1.5, 1.6] * 2)

    def validate(self, *args, **kwargs):
        loss, state = evaluate(self, *args, **kwargs)
        return next(losses) * (len(args[0]) - 1), state

    monkeypatch.setattr(CharRNN, "evaluate", validate)
    argv = ["--data", corpus_file, *SMALL, "--eval-every", "10", "--sample-every", "0"]
    first, then = tmp_path / "first", tmp_path / "then"
    for gone in (False, True):
        assert train.main(argv + ["--iterations", "20", "--out", str(first), "--overwrite"]) == 0
        if gone:
            (first / "best.npz").unlink()
        capsys.readouterr()
        assert train.main(["--resume", str(first / "checkpoint.npz"), "--iterations", "30",
                           "--out", str(then), "--overwrite"]) == 0
        said = capsys.readouterr().out
        assert (f"(the best, {1 / math.log(2):.4f} bits/char at iteration 10, was before this "
                f"run's --out" + ("" if gone else f": it is in {first / 'best.npz'}") + ");"
                ) in said, said


def test_a_run_worse_than_a_uniform_guess_is_warned_about(tmp_path, corpus_file, capsys,
                                                         monkeypatch):
    """A run at a learning rate too high to learn, not high enough to diverge (100 times a
    uniform guess's loss), ended as a success at 40 times it, its best.npz worse than an
    untrained model: two validations in a row over FAILING times it, the second no lower, or
    a best one over it at the end of a run that trained to its end, are said, once. One (a
    spike), falling ones that end lower, or a run interrupted (a fine-tuned model's first
    steps on a text unlike its own) are not."""
    from fastrnn.model import CharRNN
    evaluate = CharRNN.evaluate

    def validating_at(*factors):  # (validations at these times a uniform guess's loss)
        calls = []

        def validate(self, *args, **kwargs):
            loss, state = evaluate(self, *args, **kwargs)
            calls.append(1)
            factor = factors[min(len(calls), len(factors)) - 1]
            if factor < 0:  # (Ctrl-C after this validation)
                os.kill(os.getpid(), signal.SIGINT)
            return abs(factor) * math.log(self.config.vocab_size) * (len(args[0]) - 1), state
        return validate

    argv = ["--data", corpus_file, *SMALL[:-1], "--iterations", "40", "--eval-every", "10",
            "--sample-every", "0"]
    for n, factors in enumerate([(3, 3, 3, 3), (1, 3, 3.5, 1), (3, 2.8, 2.6, 2.4),
                                 (3, 2.5, 2.2, 1), (1, 3, 1)]):
        monkeypatch.setattr(CharRNN, "evaluate", validating_at(*factors))
        assert train.main(argv + ["--out", str(tmp_path / str(n))]) == 0
        out = capsys.readouterr().out
        assert out.count("warning: ") == (n < 3), (factors, out)
        assert ("its best validation loss" in out) == (n == 2), out
    # a smoke test's run, too short to tell (FAILING_AFTER): its end says nothing
    monkeypatch.setattr(CharRNN, "evaluate", validating_at(3, 2.8))
    assert train.main(argv + ["--iterations", "20", "--out", str(tmp_path / "s")]) == 0
    assert "warning" not in capsys.readouterr().out
    monkeypatch.setattr(CharRNN, "evaluate", validating_at(-3))  # interrupted: nothing said
    assert train.main(argv + ["--out", str(tmp_path / "i")]) == cli.EXIT_INTERRUPTED
    assert "warning" not in capsys.readouterr().out
    monkeypatch.setattr(CharRNN, "evaluate", validating_at(3))
    assert train.main(argv + ["--out", str(tmp_path / "m")]) == 0
    V = len(set(Path(corpus_file).read_text()))
    assert re.search(fr"iteration 20 .*\nwarning: a loss, {3 * math.log(V):.4f} "
                     fr"nats/char, is more than 2 times a uniform guess's \(ln {V} = "
                     fr"{math.log(V):.4f}\): the model is learning nothing; a smaller "
                     fr"--learning-rate usually helps\n", capsys.readouterr().out)
    # interrupted and resumed, the warning where the run never interrupted said it: after the
    # validation at 20, whose loss before was the interrupted run's (the resumed run warned at
    # 30, or at the end); once a run (said before the stop, the end's was said again)
    for factors, last in (((-3, 3, 3, 3), 10), ((3, -3, 3, 3), 20)):
        out = tmp_path / f"r{last}"
        monkeypatch.setattr(CharRNN, "evaluate", validating_at(*factors))
        assert train.main(argv + ["--out", str(out)]) == cli.EXIT_INTERRUPTED
        assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == last
        monkeypatch.setattr(CharRNN, "evaluate", validating_at(3))
        assert train.main(["--resume", str(out / "checkpoint.npz")]) == 0
        printed = capsys.readouterr().out  # (both processes')
        assert re.search("iteration 20 .*\nwarning: a loss", printed), printed
        assert printed.count("warning: ") == 1, printed
    # ... and a run whose last validation was cut short, the end's (at 35) or the one due at
    # its last iteration (40): its end's warning, after it
    from fastrnn.backends import numba as numba_backend
    for iterations, pending in (("35", "end"), ("40", "iteration")):
        out = tmp_path / f"e{iterations}"
        monkeypatch.setattr(CharRNN, "evaluate", validating_at(3, 2.8, 2.6, 2.4))
        monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
        _interrupting(monkeypatch, 4)
        assert train.main(argv + ["--iterations", iterations, "--out", str(out)]) == \
            cli.EXIT_INTERRUPTED
        assert checkpoint.load(out / "checkpoint.npz").run["pending"] == pending
        assert "warning" not in capsys.readouterr().out
        monkeypatch.setattr(CharRNN, "evaluate", validating_at(2.4))
        assert train.main(["--resume", str(out / "checkpoint.npz")]) == 0
        assert "warning: its best validation loss" in capsys.readouterr().out
    # a run that ends before its anneal was to start (at 40; here its rate's decay to 0 at
    # iteration 33): its end's warning all the same (the anneal's start had been taken for the
    # run's)
    monkeypatch.setattr(CharRNN, "evaluate", validating_at(3, 2.8, 2.6, 2.4))
    assert train.main(argv + ["--iterations", "80", "--anneal", "0.5", "--lr-decay", "1e-30",
                              "--lr-decay-every", "3", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "learning rate's decay to 0" in out and "warning: its best validation loss" in out, out
    # --quiet: said on stderr, as the other warnings are (it had been hidden)
    monkeypatch.setattr(CharRNN, "evaluate", validating_at(3))
    assert train.main(argv + ["--quiet", "--out", str(tmp_path / "q")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("fastrnn.train: warning: a loss, "), err
    monkeypatch.undo()  # a run that learns: nothing said
    assert train.main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert "uniform guess" not in capsys.readouterr().out


def test_running_out_of_memory_mid_run_is_one_line(tmp_path, corpus_file, capsys, monkeypatch):
    """An allocation that fails past the memory check at the start (a ulimit -v, or memory
    other programs took since) was a traceback: one line, with where the work is."""
    from fastrnn.model import CharRNN
    real_train, calls = CharRNN.train, []

    def out_of_memory(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("Unable to allocate 781. MiB for an array with shape (200000, 1024)")
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(CharRNN, "train", out_of_memory)
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "50", "--checkpoint-every",
                     "1", "--eval-every", "0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    saved = checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"]
    assert err == (f"fastrnn.train: error: out of memory at iteration {saved} (Unable to "
                   f"allocate 781. MiB for an array with shape (200000, 1024)); the last "
                   f"checkpoint is {tmp_path / 'checkpoint.npz'} (iteration {saved}); a smaller "
                   f"--batch-size, --seq-length or --hidden-size needs less\n"), err
    # elsewhere (here, reading the text): one line too
    monkeypatch.setattr(train, "_load_corpus", lambda *a: (_ for _ in ()).throw(MemoryError()))
    assert train.main(["--data", corpus_file, *SMALL, "--out", str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err == \
        "fastrnn.train: error: out of memory (an allocation failed)\n"


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_finite_but_absurd_loss_is_a_divergence(tmp_path, corpus_file, capsys, backend):
    """At a learning rate of 1e300 the parameters stay finite and so do the losses (computed
    from the logits), at ~1e300 nats/char: a run that diverged, stopped as one, on both
    backends alike, not a finished run printing 300-digit losses."""
    rc = train.main(["--data", corpus_file, "--hidden-size", "8", "--seq-length", "5",
                     "--learning-rate", "1e300", "--iterations", "20", "--eval-every", "10",
                     "--backend", backend, "--out", str(tmp_path / backend), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert "training diverged at iteration 2 (loss " in err, err
    assert "nats/char, over 100 times a uniform guess's" in err and "e+" in err, err


# -- Ctrl-C and kill -9 ------------------------------------------------------------------------

def _as_from_a_terminal():
    """In a child, SIGHUP and SIGINT as a command started from a terminal has them: the tests
    themselves may run where they are ignored (under nohup; a script's background job), which
    a child inherits, and then no hangup or Ctrl-C would stop it."""
    for name in ("SIGHUP", "SIGINT"):  # (Python then installs its own for SIGINT)
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def _start(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "fastrnn.train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)


def _wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def test_ctrl_c_saves_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path, corpus_file):
    common = ["--data", corpus_file, "--hidden-size", "32", "--seq-length", "10", "--eval-every", "0",
              "--sample-every", "0", "--quiet"]
    proc = _start(common + ["--iterations", "10000000", "--checkpoint-every", "200",
                            "--out", str(tmp_path / "a")], tmp_path)
    _wait_for(tmp_path / "a" / "checkpoint.npz", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at iteration" in err  # the hint repeats the run's end:
    assert f"--resume {tmp_path / 'a' / 'checkpoint.npz'} --iterations 10000000" in err
    k = checkpoint.load(tmp_path / "a" / "checkpoint.npz").run["iteration"]
    assert k >= 200
    target = str(k + 150)
    assert train.main(["--resume", str(tmp_path / "a" / "checkpoint.npz"), "--iterations", target,
                       "--quiet"]) == 0
    assert train.main(common + ["--iterations", target, "--out", str(tmp_path / "b")]) == 0
    same_state(checkpoint.load(tmp_path / "a" / "checkpoint.npz"),
               checkpoint.load(tmp_path / "b" / "checkpoint.npz"))


def test_a_long_runs_loss_history_is_bounded_and_resumes_bit_for_bit(tmp_path, corpus_file,
                                                                     monkeypatch):
    """Past LOSS_ENTRIES iterations (here 16) a run's loss history holds means of 2, 4, ...
    iterations: the checkpoint's entries are the same run's per-iteration losses (with the cap
    it ships with) merged as ``helpers.loss_history`` states, the same bits when the run was
    stopped and resumed; the records' training losses are the losses' means."""
    common = ["--data", corpus_file, *SMALL, "--eval-every", "25", "--sample-every", "0",
              "--checkpoint-every", "40"]
    assert train.main([*common, "--iterations", "150", "--out", str(tmp_path / "all")]) == 0
    monkeypatch.setattr(metrics, "LOSS_ENTRIES", 16)
    assert train.main([*common, "--iterations", "150", "--out", str(tmp_path / "a")]) == 0
    assert train.main([*common, "--iterations", "70", "--out", str(tmp_path / "b")]) == 0
    assert train.main(["--resume", str(tmp_path / "b" / "checkpoint.npz"), "--iterations", "150",
                       "--quiet"]) == 0
    every, a, b = (checkpoint.load(tmp_path / run / "checkpoint.npz") for run in ("all", "a", "b"))
    assert len(every.losses) == 150 and "loss_stride" not in every.run
    entries, stride, _ = loss_history(every.losses.tolist(), 16)
    assert a.run["loss_stride"] == stride == 16 and len(a.losses) == 9 + 2  # 150 = 9 x 16 + 6
    assert np.array_equal(a.losses, entries)
    same_state(a, b)
    records = [[r["train_loss"] for r in ckpt.run["metrics"]] for ckpt in (every, a)]
    assert len(records[0]) == len(records[1]) == 6
    assert math.isclose(records[1][0], records[0][0], rel_tol=1e-12)  # (0-24: whole entries)
    for got, exact in zip(records[1], records[0]):  # (an entry cut by a window: its share)
        assert math.isclose(got, exact, rel_tol=0.02)


def test_a_run_whose_records_outgrow_the_metadata_resumes_exactly(tmp_path, corpus_file,
                                                                    monkeypatch, capsys):
    """Past RUN_TEXT_INLINE characters of JSON (here 2,000: a long run's records) the run's
    checkpoints and best.npz hold the run record apart (format 5); a run resumed from one
    trains on exactly as the run that was not stopped, with every record, and sample reads
    it. The run's saves encode each record once (``checkpoint.Records``), a resumed run's
    first save its checkpoint's again."""
    monkeypatch.setattr(checkpoint.config, "RUN_TEXT_INLINE", 2000)
    encoded, encoder = [], checkpoint._ENCODER
    monkeypatch.setattr(checkpoint, "_ENCODER", types.SimpleNamespace(
        encode=lambda record: encoded.append(record["iteration"]) or encoder.encode(record)))
    common = ["--data", corpus_file, *SMALL, "--eval-every", "4", "--sample-every", "0",
              "--checkpoint-every", "8"]
    assert train.main([*common, "--iterations", "48", "--out", str(tmp_path / "all")]) == 0
    assert encoded == list(range(4, 49, 4))  # (for checkpoint.npz and best.npz, once)

    def apart(path):
        with np.load(path) as npz:
            return json.loads(str(npz["meta"]))["version"] == 5 and "run" in npz.files

    assert train.main([*common, "--iterations", "24", "--out", str(tmp_path / "b")]) == 0
    assert apart(tmp_path / "b" / "checkpoint.npz")  # (what the resume reads)
    encoded.clear()
    assert train.main(["--resume", str(tmp_path / "b" / "checkpoint.npz"), "--iterations", "48",
                       "--quiet"]) == 0
    assert encoded == list(range(4, 49, 4))
    assert all(apart(tmp_path / run / name) for run in ("all", "b")
               for name in ("checkpoint.npz", "best.npz"))
    every, b = (checkpoint.load(tmp_path / run / "checkpoint.npz") for run in ("all", "b"))
    same_state(every, b)
    timing = ("train_seconds", "wall_seconds", "chars_per_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in b.run["metrics"]] == \
        [{k: v for k, v in r.items() if k not in timing} for r in every.run["metrics"]]
    assert [r["iteration"] for r in b.run["metrics"]] == list(range(4, 49, 4))
    capsys.readouterr()
    assert sample_main([str(tmp_path / "b" / "checkpoint.npz"), "--length", "20", "--seed",
                        "1"]) == 0
    assert len(capsys.readouterr().out) >= 20


def test_a_second_ctrl_c_quits_in_one_line(capsys, monkeypatch):
    """(in-process: two signals sent to a training process race the block's end.) A second
    one within SAME_STOP seconds of the first is the same request (two close together, from
    ``kill`` twice, quit without saving when they fell outside a kernel call)."""
    from types import SimpleNamespace
    from fastrnn import cli
    stop = train._StopRequests(SimpleNamespace(quiet=True, output_closed=None))
    now = [1000.0]
    monkeypatch.setattr(train.time, "monotonic", lambda: now[0])

    joined = []

    def training(argv):
        stop._handle(signal.SIGINT, None)  # the first asks for a save after the block
        assert stop.requested
        now[0] += 0.9 * train.SAME_STOP
        stop._handle(signal.SIGTERM, None)  # the same request
        joined.append(True)
        now[0] += 0.2 * train.SAME_STOP
        stop._handle(signal.SIGINT, None)  # the second quits at once

    assert cli.run(training, "fastrnn.train", []) == 130
    err = capsys.readouterr().err
    assert err == ("fastrnn.train: quit at once, without saving (the latest checkpoint written, "
                   "if any, is whole)\n")
    assert joined == [True]


def test_the_stop_line_names_the_signal_that_asked_for_it(capsys):
    """(QA) Ctrl-C's stop says to press it again to quit; a kill's (SIGTERM) names the
    signals that quit (it said "press Ctrl-C again" to a process no terminal runs): not
    Ctrl-C where SIGINT is ignored (a shell's ``&``), never a hangup."""
    from types import SimpleNamespace
    for signum, ignored, how in (
            (signal.SIGINT, (), "press Ctrl-C again to quit without saving"),
            (signal.SIGTERM, (), "asked by SIGTERM; another SIGTERM or Ctrl-C quits without "
                                 "saving"),
            (signal.SIGTERM, (signal.SIGINT,), "asked by SIGTERM; another SIGTERM quits "
                                               "without saving"),
            (signal.SIGHUP, (), "asked by SIGHUP; SIGTERM or Ctrl-C quits without saving")):
        before = {s: signal.signal(s, signal.SIG_IGN) for s in ignored}
        try:
            with train._StopRequests(SimpleNamespace(quiet=False, output_closed=None)) as stop:
                stop.terminals = []  # (nothing dropped at the hangup)
                stop._handle(signum, None)
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)
        assert stop.requested and capsys.readouterr().out == (
            f"stopping: saving a checkpoint after this block or validation ({how})\n")


def test_ctrl_c_while_a_command_imports_is_one_line():
    """``python -m fastrnn.train``: Ctrl-C while the package imports (NumPy, Numba) is one
    line and exit code 130, not a KeyboardInterrupt traceback; ``cli.run`` gives Ctrl-C back
    to Python (the commands' own handling, tested elsewhere)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    def run(module, code):  # (sys.argv and sys.orig_argv as ``python -m module`` has them)
        code = (f"import os, signal, sys, time; sys.argv[0] = '-m'; "
                f"sys.orig_argv = [sys.executable, '-X', 'utf8', '-m', '{module}']; " + code)
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)

    import_then_ctrl_c = "import fastrnn; os.kill(os.getpid(), signal.SIGINT); time.sleep(60)"
    done = run("fastrnn.train", import_then_ctrl_c)
    assert (done.returncode, done.stderr) == (130, "fastrnn: interrupted while starting\n")
    started = ("import fastrnn; from fastrnn import cli; cli.run(lambda argv: 0, "
               "'fastrnn.train', []); print(signal.getsignal(signal.SIGINT) is "
               "signal.default_int_handler)")
    done = run("fastrnn.sample", started)
    assert done.stdout == "True\n", done.stderr
    # a program of the user's whose package imports fastrnn keeps Python's Ctrl-C
    done = run("their.program", import_then_ctrl_c)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr
    # a Ctrl-C the command was told to ignore (``trap '' INT``, ``cmd &`` in a script) stays so
    ignored = ("signal.signal(signal.SIGINT, signal.SIG_IGN); import fastrnn; "
               "from fastrnn import cli; os.kill(os.getpid(), signal.SIGINT); "
               "cli.run(lambda argv: 0, 'fastrnn.train', []); "
               "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)")
    done = run("fastrnn.train", ignored)
    assert done.returncode == 0 and done.stdout == "True\n", done.stderr


def test_a_ctrl_c_ignored_at_the_start_stays_ignored_while_training(tmp_path, corpus_file,
                                                                    monkeypatch):
    """A run a script starts with ``&`` ignores SIGINT: it did while starting, then heeded it
    once training began (a group's SIGINT stopped the runs of a sweep past their start and not
    the others). Ignored throughout now; SIGTERM still stops it."""
    from fastrnn.model import CharRNN
    real_train, sent = CharRNN.train, [signal.SIGINT]

    def ctrl_c(self, *args, **kwargs):
        os.kill(os.getpid(), sent[0])
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(CharRNN, "train", ctrl_c)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--out",
                           str(tmp_path / "a")]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert checkpoint.load(tmp_path / "a" / "checkpoint.npz").run["iteration"] == 30
    sent[0] = signal.SIGTERM
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--out",
                       str(tmp_path / "b")]) == cli.EXIT_INTERRUPTED
    assert checkpoint.load(tmp_path / "b" / "checkpoint.npz").run["iteration"] >= 1  # (saved)


@pytest.mark.parametrize("argv, command", [
    (["-m", "fastrnn.train"], "fastrnn.train"), (["-mfastrnn.sample"], "fastrnn.sample"),
    (["-Im", "fastrnn.score"], "fastrnn.score"), (["-Xutf8", "-bbm", "fastrnn.train"],
                                                  "fastrnn.train"),
    (["-X", "utf8", "-W", "ignore", "-m", "fastrnn.train"], "fastrnn.train"),
    (["--check-hash-based-pycs", "always", "-m", "fastrnn.train"], "fastrnn.train"),
    (["-mtheir.program", "-m", "fastrnn.train"], None), (["-c", "pass", "-m", "fastrnn.train"],
                                                         None),
    (["script.py", "-m", "fastrnn.train"], None), (["-m", "fastrnn.dropin"], None)])
def test_the_commands_are_known_from_the_interpreters_options(monkeypatch, argv, command):
    from fastrnn import cli
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, *argv])
    monkeypatch.setattr(sys, "argv", ["-m"])  # (while Python finds the module)
    assert cli.starting_command() == command


@pytest.mark.parametrize("value, module", [("0", "fastrnn.sample"), ("abc", "fastrnn.sample"),
                                           ("", "fastrnn.sample"), ("2", "fastrnn.sample"),
                                           ("abc", "fastrnn sample")])
def test_a_thread_count_numba_cannot_read_is_one_line(tmp_path, value, module):
    """NUMBA_NUM_THREADS is read when Numba is imported: 0 was a traceback from inside it,
    'abc' a warning with a traceback in it; an empty one is unset, as Numba takes it. As
    ``python -m fastrnn sample`` too (which skipped the check: Numba's traceback)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": value}
    done = subprocess.run([sys.executable, "-m", *module.split(), "missing.npz"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    if value.strip() and not (value.isdigit() and int(value) > 0):
        said = (f"NUMBA_NUM_THREADS={value!r} is not a positive integer (the threads to use; "
                f"unset, all cores)")
    else:  # (on to the command's own work)
        said = "missing.npz: no such checkpoint"
    assert done.returncode == 2 and done.stderr.startswith(f"fastrnn.sample: error: {said}")
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_ctrl_c_outside_training_is_one_line(capsys):
    from fastrnn import cli

    def loading(argv):
        raise KeyboardInterrupt  # e.g. while the corpus loads or kernels compile

    assert cli.run(loading, "fastrnn.sample", []) == 130
    assert capsys.readouterr().err == "fastrnn.sample: interrupted\n"


def test_closing_stdout_stops_the_run_saved(tmp_path, corpus_file):
    # `python -m fastrnn.train ... | head -1`: the reader goes away; the run stops as if
    # interrupted, with its checkpoint written, instead of dying on a broken pipe.
    proc = _start(["--data", corpus_file, "--hidden-size", "16", "--iterations", "10000000",
                   "--eval-every", "20", "--sample-every", "0", "--checkpoint-every", "0",
                   "--out", str(tmp_path)], tmp_path)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130 and "Traceback" not in err, err
    assert "stdout was closed at iteration" in err
    assert checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"] > 0


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_a_hangup_saves_the_run_unless_nohup_ignores_it(tmp_path, corpus_file):
    """SIGHUP (the terminal closed, an ssh session dropped) stops the run saved, as SIGTERM
    does, also when it comes twice; under nohup, which ignores SIGHUP, the run goes on."""
    argv = ["--data", corpus_file, "--hidden-size", "16", "--iterations", "10000000",
            "--eval-every", "0", "--sample-every", "0", "--checkpoint-every", "100"]
    proc = _start([*argv, "--out", str(tmp_path / "a")], tmp_path)
    _wait_for(tmp_path / "a" / "checkpoint.npz", proc)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGHUP)  # (it often comes twice: from the shell, then the kernel)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted at iteration" in err  # (a pipe, not a terminal: its lines kept)
    assert checkpoint.load(tmp_path / "a" / "checkpoint.npz").run["iteration"] >= 100

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    nohup = subprocess.Popen(
        [sys.executable, "-m", "fastrnn.train", *argv, "--out", str(tmp_path / "b")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    _wait_for(tmp_path / "b" / "checkpoint.npz", nohup)
    nohup.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert nohup.poll() is None, "ignored, as nohup asked"
    nohup.send_signal(signal.SIGTERM)
    _, err = nohup.communicate(timeout=120)
    assert nohup.returncode == 130 and "interrupted at iteration" in err, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux pseudo-terminal")
def test_a_terminal_that_hangs_up_leaves_the_run_saved(tmp_path, corpus_file):
    """The run's controlling terminal (a pseudo-terminal here) goes away, as when an ssh
    session drops: the kernel sends SIGHUP, and writing to the terminal fails from then on
    (which no longer says it is a terminal). The run saves and exits 130."""
    import fcntl
    import pty
    import select
    import termios
    master, slave = pty.openpty()
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastrnn.train", "--data", corpus_file, "--hidden-size", "16",
         "--iterations", "100000000", "--eval-every", "0", "--sample-every", "0",
         "--checkpoint-every", "100", "--out", str(out)],
        cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: (_as_from_a_terminal(),  # (then its controlling terminal)
                            fcntl.ioctl(0, termios.TIOCSCTTY, 0)))
    os.close(slave)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists():  # (reading what it writes, as a terminal does)
        assert proc.poll() is None and time.monotonic() < deadline
        if select.select([master], [], [], 0.1)[0]:
            os.read(master, 1 << 16)
    os.close(master)  # the hangup
    assert proc.wait(timeout=120) == 130
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] >= 100


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_a_hangup_drops_only_the_terminals_output(monkeypatch):
    """After SIGHUP, output to what was a terminal when the run began (gone now) goes to
    /dev/null; a log file keeps its lines."""
    from types import SimpleNamespace

    class Stream(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    dropped = []
    monkeypatch.setattr(cli, "drop_output", dropped.append)
    terminal, log = Stream(True), Stream(False)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", log)
    with train._StopRequests(SimpleNamespace(quiet=False, output_closed=None)) as stop:
        terminal.tty = False  # (a terminal that hung up no longer says it is one)
        stop._handle(signal.SIGHUP, None)
        assert stop.requested and dropped == [terminal]
        stop._handle(signal.SIGHUP, None)  # a second one: still a request to save, not a quit
    assert "stopping: saving a checkpoint" in log.getvalue() and dropped == [terminal]


def test_closed_stdout_and_stderr_are_dev_null(tmp_path, corpus_file):
    """Started with stdout and stderr closed (>&- 2>&-), training runs as with /dev/null, not
    dying on the first write (tqdm's, or a print) with no message. sample and score, whose
    stdout is what they are for, refuse to run for nothing (they wrote nothing, and exited 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    done = subprocess.run(f"{sys.executable} -m fastrnn.train --data {corpus_file} --hidden-size "
                          f"8 --iterations 20 --eval-every 10 --sample-every 10 --out {out} "
                          f">&- 2>&-", shell=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 20
    # stderr alone closed: a refused run's error line on stdout (as when stderr fails)
    done = subprocess.run(f"{sys.executable} -m fastrnn.train --data {corpus_file} --out {out} "
                          f"2>&-", shell=True, cwd=tmp_path, env=env, timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout.startswith(
        f"fastrnn.train: error: {out / 'checkpoint.npz'} already exists"), done.stdout
    for command in (f"-m fastrnn.sample {out / 'checkpoint.npz'} --length 20",
                    f"-m fastrnn.score {out / 'checkpoint.npz'} {corpus_file}"):
        for closed in (">&- 2>&-", ">&-"):
            done = subprocess.run(f"{sys.executable} {command} {closed}", shell=True,
                                  cwd=tmp_path, env=env, timeout=300, capture_output=True,
                                  text=True)
            assert done.returncode == 2, (command, closed)
            assert done.stderr == ("" if "2>&-" in closed else
                                   f"fastrnn.{command.split()[1][8:]}: error: stdout is closed "
                                   f"(>&-): what this command writes would be lost; send it to a "
                                   f"file (> FILE) or a pipe\n"), done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_stdout_that_cannot_be_written_is_one_line(tmp_path, corpus_file):
    """stdout on a full disk (/dev/full): train stops saved as when its reader goes away
    (exit 130, resumable), sample and score fail in one line (exit 1); no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    commands = [(["fastrnn.train", "--data", corpus_file, "--hidden-size", "8", "--iterations",
                  "50", "--out", str(out)], 130, "stdout could not be written (No space left "
                                                 "on device) at iteration"),
                (["fastrnn.sample", str(out / "checkpoint.npz")], 1,
                 "fastrnn.sample: error: cannot write the text: No space left on device"),
                (["fastrnn.score", str(out / "checkpoint.npz"), corpus_file], 1,
                 "fastrnn.score: error: cannot write the scores: No space left on device")]
    for command, code, said in commands:
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, env=env,
                                  stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
        assert done.returncode == code and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
    # (its first line, before training, failed: saved at iteration 0, resumable)
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_the_hint_to_continue_names_a_backend_other_than_the_default(tmp_path, corpus_file):
    """(following it resumed a numpy run on numba: not the same bits)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    with open("/dev/full", "w") as full:  # (stdout that fails: the run stops as interrupted)
        done = subprocess.run([sys.executable, "-m", "fastrnn.train", "--data", corpus_file,
                               "--hidden-size", "8", "--iterations", "50", "--backend",
                               "numpy", "--out", str(out)], cwd=tmp_path, env=env, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert done.stderr.endswith(f"continue with: python -m fastrnn.train --resume "
                                f"{out / 'checkpoint.npz'} --iterations 50 --backend numpy\n")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_stderr_that_cannot_be_written_loses_no_work(tmp_path, corpus_file):
    """stderr on a full disk (/dev/full): the progress bar goes nowhere and train goes on to
    the end, saying so on stdout (it failed at the bar's first write, losing the run); the
    last line of a command that fails comes on stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    commands = [(["fastrnn.train", "--data", corpus_file, "--hidden-size", "8", "--iterations",
                  "50", "--out", str(out)], 0, "note: stderr could not be written (No space "
                                               "left on device): the progress bar is dropped"),
                (["fastrnn.sample", str(out / "checkpoint.npz"), "--length", "20"], 0, ""),
                (["fastrnn.score", str(out / "checkpoint.npz"), corpus_file], 0, "bits/char"),
                (["fastrnn.train", "--hidden-size", "0"], 2,
                 "fastrnn.train: error: argument --hidden-size: 0 is not a positive integer")]
    for command, code, said in commands:
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, env=env,
                                  stdout=subprocess.PIPE, stderr=full, text=True, timeout=300)
        assert done.returncode == code and said in done.stdout, done.stdout
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 50


def test_a_vocabulary_the_terminal_cannot_show_is_escaped(tmp_path):
    path = tmp_path / "cjk.txt"
    rng = np.random.default_rng(0)
    path.write_text("".join(chr(c) for c in rng.integers(0x4E00, 0x4E40, 3000)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"}
    for command in (["fastrnn.train", "--data", str(path), "--hidden-size", "8", "--iterations",
                     "40", "--sample-every", "20", "--eval-every", "20", "--out",
                     str(tmp_path / "run")],
                    ["fastrnn.sample", str(tmp_path / "run" / "checkpoint.npz"), "--length", "9"]):
        done = subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, encoding="ascii", timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "\\u4e" in done.stdout  # the characters, escaped, and said once at the end
        assert done.stderr.count("note: stdout's encoding (ascii) cannot write") == 1
        assert re.search(r"which came out as backslash escapes \(U\+4E[0-3][0-9A-F] as "
                         r"\\u4e[0-3][0-9a-f]\): PYTHONIOENCODING=utf-8 writes them as they "
                         r"are\n$", done.stderr), done.stderr


def test_a_command_called_from_python_leaves_stdout_as_it_was(monkeypatch, capsys):
    """cli.run escapes what stdout's encoding cannot write while the command runs, says so
    once at the end, and then puts the stream's own error handler back (it stayed, and
    escaped the caller's later prints in silence)."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", stream)
    assert cli.run(lambda argv: print("caf\u00e9 \u4e00\u4e00") or 0, "fastrnn.x", []) == 0
    assert stream.errors == "strict"
    with pytest.raises(UnicodeEncodeError):
        print("\u4e00")
    stream.flush()
    assert stream.buffer.getvalue() == b"caf\\xe9 \\u4e00\\u4e00\n"
    assert capsys.readouterr().err == (
        "fastrnn.x: note: stdout's encoding (ascii) cannot write 2 distinct characters of what "
        "was written to stdout, which came out as backslash escapes (U+00E9 as \\xe9): "
        "PYTHONIOENCODING=utf-8 writes them as they are\n")
    # a lone surrogate (a file name's byte 0xff) no encoding writes: not told to change it
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", stream)
    assert cli.run(lambda argv: print("\udcff.txt \u4e00") or 0, "fastrnn.x", []) == 0
    stream.flush()
    assert stream.buffer.getvalue() == "\\udcff.txt \u4e00\n".encode()
    assert capsys.readouterr().err == (
        "fastrnn.x: note: no encoding writes 1 distinct character of what was written to "
        "stdout, which came out as backslash escapes (U+DCFF as \\udcff): they are lone "
        "surrogates, Python's stand-ins for bytes not valid in their encoding (in a file "
        "name, say)\n")


def _full_disk(*args):
    """A write on a full disk."""
    raise OSError(28, "No space left on device")


def test_a_full_disk_is_a_one_line_failure(tmp_path, corpus_file, capsys, monkeypatch):
    from fastrnn import metrics

    monkeypatch.setattr(metrics, "append", _full_disk)
    monkeypatch.setattr(metrics, "rewrite", _full_disk)
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--eval-every", "5",
                     "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert f"could not write {tmp_path / 'metrics.jsonl'}: No space left on device" in err
    # the work is not lost: the checkpoint (a file of its own) is written, if it can be
    assert f"; the run is saved in {tmp_path / 'checkpoint.npz'} (iteration 5)" in err
    assert checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"] == 5

    monkeypatch.setattr(checkpoint, "save", _full_disk)  # and where it cannot be either
    rc = train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "10",
                     "--eval-every", "5", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert (f"could not write {tmp_path / 'metrics.jsonl'}: No space left on device; could not "
            f"write {tmp_path / 'checkpoint.npz'}: No space left on device; the last checkpoint "
            f"is {tmp_path / 'checkpoint.npz'} (iteration 5)") in err, err


def _failing_writes(monkeypatch, fails):
    """checkpoint.save failing (a full disk) for the files and iterations ``fails(path,
    iteration)`` names."""
    real_save = checkpoint.save

    def save(path, ckpt):
        if fails(Path(path).name, ckpt.run["iteration"]):
            _full_disk()
        real_save(path, ckpt)

    monkeypatch.setattr(checkpoint, "save", save)


def test_a_failed_checkpoint_write_names_the_last_one(tmp_path, corpus_file, capsys,
                                                      monkeypatch):
    """The periodic checkpoint at 20 cannot be written: the run stops in one line naming the
    checkpoint of 10, whole on disk; with none written yet, it says so and names best.npz
    if that holds the run."""
    _failing_writes(monkeypatch, lambda name, i: name == "checkpoint.npz" and i == 20)
    argv = ["--data", corpus_file, *SMALL, "--iterations", "30", "--checkpoint-every", "10",
            "--sample-every", "0"]
    assert train.main([*argv, "--eval-every", "0", "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(
        f"could not write {tmp_path / 'a' / 'checkpoint.npz'}: No space left on device; the "
        f"last checkpoint is {tmp_path / 'a' / 'checkpoint.npz'} (iteration 10)\n"), err
    assert checkpoint.load(tmp_path / "a" / "checkpoint.npz").run["iteration"] == 10

    _failing_writes(monkeypatch, lambda name, i: name == "checkpoint.npz")
    assert train.main([*argv, "--eval-every", "5", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"; no checkpoint of this run was written ({tmp_path / 'b' / 'best.npz'} "
                        f"holds iteration 10)\n"), err

    # the checkpoint of 10 replaced by a directory before 20's write: not named as the work,
    # and best.npz named where it holds a later iteration
    c = tmp_path / "c"

    def replaced(name, i):
        if name == "checkpoint.npz" and i == 20:
            (c / name).unlink()
            (c / name).mkdir()
            return True
        return False

    monkeypatch.undo()
    _failing_writes(monkeypatch, replaced)
    assert train.main([*argv, "--eval-every", "5", "--learning-rate", "0.02", "--out",
                       str(c)]) == 1
    err = capsys.readouterr().err
    assert checkpoint.load(c / "best.npz").run["iteration"] == 20  # (a later one: named)
    assert err.endswith(f"; the checkpoint of iteration 10, {c / 'checkpoint.npz'}, was removed "
                        f"or replaced; {c / 'best.npz'} holds iteration 20\n"), err


def test_a_failed_best_write_is_not_taken_for_a_best(tmp_path, corpus_file, capsys,
                                                     monkeypatch):
    """best.npz at 20 cannot be written: the checkpoint saved instead must not record 20's
    validation as the best (best.npz holds 10's), or a resumed run would claim a best.npz it
    does not have and keep it from being written until 20's loss is beaten."""
    _failing_writes(monkeypatch, lambda name, i: name == "best.npz" and i == 20)
    out = tmp_path / "r"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "10",
                       "--checkpoint-every", "0", "--sample-every", "0",
                       "--learning-rate", "0.01", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"the run is saved in {out / 'checkpoint.npz'} (iteration 20)" in err, err
    run = checkpoint.load(out / "checkpoint.npz").run
    first = run["metrics"][0]
    assert [r["iteration"] for r in run["metrics"]] == [10, 20]
    assert run["metrics"][1]["val_loss"] < first["val_loss"]  # 20 was the better one...
    assert run["best_val_loss"] == first["val_loss"]  # ...but best.npz holds 10's
    assert checkpoint.load(out / "best.npz").run["iteration"] == 10


@pytest.mark.parametrize("name", ["checkpoint.npz", "best.npz", "metrics.jsonl", "loss.png"])
def test_an_output_that_is_a_link_is_refused_before_training(tmp_path, corpus_file, capsys,
                                                               name):
    """Outputs are written whole and renamed into place: a symbolic link among them would be
    replaced by a file (or, followed, written past the lock on --out). Refused at the start,
    not at the first write an hour in; nothing written, the link and its target as they were."""
    out, target = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    target.write_text("kept")
    (out / name).symlink_to(target)
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--eval-every", "5",
                     "--overwrite", "--out", str(out)])
    assert_usage_error(rc, capsys, f"{out / name} is a symbolic link (to {target}): the run's "
                                   f"outputs are regular files in --out; remove it, or pass "
                                   f"another --out")
    assert sorted(os.listdir(out)) == [name] and (out / name).is_symlink()
    assert target.read_text() == "kept"


def test_a_resumed_run_keeps_the_best_validation_it_resumes_with(tmp_path, corpus_file):
    """The best loss so far comes back with the checkpoint: a resumed run whose validations do
    not beat it leaves best.npz as it was (were it forgotten, the first validation after the
    resume would count as a best and write a worse model over best.npz)."""
    out = tmp_path / "r"
    argv = ["--data", corpus_file, *SMALL, "--eval-every", "10", "--checkpoint-every", "0",
            "--sample-every", "0", "--quiet"]
    assert train.main([*argv, "--iterations", "10", "--out", str(out)]) == 0
    rewrite_meta(out / "checkpoint.npz", lambda meta, arrays: meta["run"].update(
        best_val_loss=0.5))  # (better than any this small model reaches)
    before = (out / "best.npz").read_bytes()
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "30",
                       "--quiet"]) == 0
    run = checkpoint.load(out / "checkpoint.npz").run
    assert [r["iteration"] for r in run["metrics"]] == [10, 20, 30]
    assert run["best_val_loss"] == 0.5 and (out / "best.npz").read_bytes() == before


def test_a_lock_file_its_holder_removed_is_not_taken_for_the_lock(tmp_path, monkeypatch):
    """A run that opened the lock file just before its holder removed it (and let go) must not
    lock that orphan while a third run locks the new file at the path: it opens the path again."""
    from fastrnn import files
    real_open, opened = os.open, []

    def opening(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        if not opened:
            os.unlink(path)  # (its holder removed it meanwhile)
        opened.append(path)
        return fd

    monkeypatch.setattr(os, "open", opening)
    held = files.lock(tmp_path)
    monkeypatch.undo()
    assert len(opened) == 2
    assert os.fstat(held.fileno()).st_ino == os.stat(tmp_path / files.LOCK).st_ino
    held.close()


def test_the_lock_holds_on_a_full_disk(tmp_path, monkeypatch):
    """The pid cannot be written (a full disk): the lock holds all the same, and closing its
    file writes nothing that could fail (an error from close was a traceback at the end)."""
    from fastrnn import files
    held = files.lock(tmp_path)
    monkeypatch.setattr(os, "pwrite", _full_disk)
    files.claim(held)
    monkeypatch.undo()
    with pytest.raises(files.Locked):
        files.lock(tmp_path)
    held.close()
    files.lock(tmp_path).close()


def test_an_unlockable_out_is_a_usage_error(tmp_path, corpus_file, capsys):
    """A lock file that cannot be opened is named; a symbolic link there (planted in a shared
    directory, say) is refused, not followed: the file it points to stays as it was."""
    from fastrnn import files
    lock = tmp_path / "a" / files.LOCK
    lock.mkdir(parents=True)
    argv = ["--data", corpus_file, *SMALL, "--iterations", "5", "--out"]
    assert_usage_error(train.main([*argv, str(tmp_path / "a")]), capsys,
                       f"cannot lock output directory {tmp_path / 'a'}: {lock}: Is a directory "
                       f"(remove it if no fastrnn.train run is using {tmp_path / 'a'})")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / files.LOCK).symlink_to(precious)
    assert_usage_error(train.main([*argv, str(tmp_path / "b")]), capsys,
                       f"{tmp_path / 'b' / files.LOCK}: a symbolic link")
    assert precious.read_text() == "keep me\n"


def test_a_refused_run_leaves_the_lock_file_as_it_was(tmp_path, corpus_file, capsys):
    from fastrnn import files
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out",
                       str(tmp_path)]) == 0
    before = (tmp_path / files.LOCK).read_bytes()
    assert before == f"{os.getpid()}\n".encode()  # (the run's pid, for a refused one's message)
    (tmp_path / files.LOCK).write_bytes(b"12345\n")
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out", str(tmp_path)])
    assert_usage_error(rc, capsys, "already exists")
    assert (tmp_path / files.LOCK).read_bytes() == b"12345\n"


def test_a_refused_run_leaves_no_lock_file(tmp_path, corpus_file, capsys):
    from fastrnn import files
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out",
                       str(tmp_path)]) == 0
    (tmp_path / files.LOCK).unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out", str(tmp_path)])
    assert_usage_error(rc, capsys, "already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_checkpoint_without_its_texts_name_needs_data(tmp_path, corpus_file, capsys):
    from fastrnn.checkpoint import Checkpoint
    from fastrnn.model import CharRNN
    vocab = load(corpus_file).vocab
    model = CharRNN(len(vocab), hidden_size=8, seq_length=10)
    path = tmp_path / "mine.npz"
    checkpoint.save(path, Checkpoint.of(model, vocab, np.zeros(0), {"iteration": 0}))
    rc = train.main(["--resume", str(path), "--iterations", "5"])
    assert_usage_error(rc, capsys, f"{path} does not name the text it was trained on",
                       "pass --data")
    assert train.main(["--resume", str(path), "--data", corpus_file, "--iterations", "5",
                       "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "the checkpoint does not record the text it was trained on" in err, err
    # nor what it held out: any --val-fraction (was told it held out the default, 0.1)
    again = tmp_path / "again"
    assert train.main(["--resume", str(path), "--data", corpus_file, "--iterations", "5",
                       "--val-fraction", "0", "--quiet", "--out", str(again)]) == 0, \
        capsys.readouterr().err
    assert checkpoint.load(again / "checkpoint.npz").run["data"]["val_fraction"] == 0


def test_a_checkpoint_saved_from_python_without_its_history_says_what_resumes(
        tmp_path, corpus_file, capsys):
    """--resume needs a loss per iteration (a run's history) and the iteration count; a
    checkpoint saved from Python without them is refused with the numbers, and --init-from
    trains on from it (it said "its iteration count does not match its loss history")."""
    from fastrnn.checkpoint import Checkpoint
    from fastrnn.model import CharRNN
    vocab = load(corpus_file).vocab
    model = CharRNN(len(vocab), hidden_size=8, seq_length=10)
    ids = vocab.encode(Path(corpus_file).read_text(encoding="utf-8"))
    losses = model.train(ids, 30)
    for losses_kept, run, said in (
            ([], {"iteration": 30}, "holds 0 losses for its 30 iterations (fastrnn.train's "
                                    "checkpoints hold one per iteration, or past 65,536 "
                                    "iterations one per loss_stride; one saved otherwise, "
                                    "or damaged): --init-from trains on from its weights"),
            (losses, {}, "was not written by fastrnn.train (its run record has no iteration "
                         "count): --init-from trains on from its weights")):
        path = tmp_path / "mine.npz"
        checkpoint.save(path, Checkpoint.of(model, vocab, losses_kept, run))
        rc = train.main(["--resume", str(path), "--data", corpus_file, "--iterations", "40"])
        assert_usage_error(rc, capsys, f"cannot resume: {path} {said}")
        assert train.main(["--init-from", str(path), "--data", corpus_file, "--iterations", "2",
                           "--quiet", "--out", str(tmp_path / "tuned"), "--overwrite"]) == 0


def test_a_run_resumed_on_another_text_keeps_a_best_of_its_own(tmp_path, corpus_file, capsys):
    """Resumed with --data naming another text, a run trains on it (as warned) but compares
    no validation loss of that text's held-out part with the best one measured on the other
    text's: best.npz held a loss the new text's could never be compared with (never replaced
    on a harder text; replaced after one comparison on an easier one)."""
    first = tmp_path / "first"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--eval-every",
                       "10", "--sample-every", "0", "--out", str(first)]) == 0
    ckpt = checkpoint.load(first / "checkpoint.npz")
    other = tmp_path / "other.txt"  # (the same characters, another text: every tenth dropped)
    text = Path(corpus_file).read_text()
    other.write_text("".join(c for k, c in enumerate(text) if k % 10) + text[9::10])
    capsys.readouterr()
    assert train.main(["--resume", str(first / "checkpoint.npz"), "--data", str(other),
                       "--iterations", "30", "--eval-every", "10", "--quiet"]) == 0
    err = capsys.readouterr().err
    old = ckpt.run["best_val_loss"] / math.log(2)
    assert f"{other} is not the text this checkpoint was trained on" in err, err
    assert (f"the best validation loss so far ({old:.4f} bits/char) was measured on the other "
            f"text, so this run keeps its own best: best.npz is replaced at its first "
            f"validation") in err, err
    assert "; its epochs count from iteration 20" in err, err
    run = checkpoint.load(first / "checkpoint.npz").run
    records = run["metrics"]
    assert [r["iteration"] for r in records] == [10, 20, 30]
    best = checkpoint.load(first / "best.npz")
    assert best.run["iteration"] == 30 and best.run["best_val_loss"] == records[-1]["val_loss"]
    # its epochs are passes over the new text since it began training on it, at iteration 20
    # (they counted the other text's iterations as passes over this one)
    per_pass = reference.chunks_per_pass(18_000, 10)  # (both texts: 20,000 characters, 10% held)
    assert [r["epoch"] for r in records] == [round(i / per_pass, 4) for i in (10, 20, 10)]
    assert run["data"]["from"] == 20 and ckpt.run["data"]["from"] == 0
    # on its own text, the resumed run keeps the best it resumes with (and says nothing), and
    # its epochs' start; --epochs counts passes over the text from there
    assert train.main(["--resume", str(first / "checkpoint.npz"), "--epochs", "0.01",
                       "--eval-every", "10", "--quiet"]) == 0
    assert "not the text" not in capsys.readouterr().err
    run, trained = checkpoint.load(first / "checkpoint.npz").run, math.ceil(0.01 * per_pass)
    assert run["iteration"] == 20 + trained and run["data"]["from"] == 20
    assert run["metrics"][-1]["epoch"] == round(trained / per_pass, 4)


def test_a_text_changed_in_place_is_resumed_on_only_when_named(tmp_path, corpus_file, capsys):
    """A bare --resume whose text has changed since its checkpoint (edited in place) is
    refused, its best.npz kept; named with --data, it is trained on as another text is."""
    text = tmp_path / "text.txt"
    text.write_text(Path(corpus_file).read_text())
    out = tmp_path / "out"
    assert train.main(["--data", str(text), *SMALL, "--iterations", "20", "--eval-every", "10",
                       "--sample-every", "0", "--out", str(out)]) == 0
    best, before = (out / "best.npz").read_bytes(), text.read_text()
    lines = before.splitlines(keepends=True)
    text.write_text("".join(lines[1:] + lines[:1]))  # (edited: the same characters, moved)
    rc = train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "30"])
    assert_usage_error(rc, capsys, f"{text} has changed since the checkpoint was written: it is "
                                   f"not the text the run trained on; pass --data {text} to "
                                   f"resume on it as it is now")
    assert (out / "best.npz").read_bytes() == best
    text.write_text(before + "\u2603")  # (a character the checkpoint's vocabulary lacks)
    rc = train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "30"])
    assert_usage_error(rc, capsys, f"{text} has characters that the checkpoint's vocabulary lacks: "
                                   f"'\u2603'; {text} has changed since the checkpoint was written")
    text.write_text("".join(lines[1:] + lines[:1]))
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--data", str(text),
                       "--iterations", "30", "--eval-every", "10", "--quiet"]) == 0
    assert f"{text} is not the text this checkpoint was trained on" in capsys.readouterr().err


@pytest.mark.parametrize("delay", [0.0, 0.13, 0.37])
def test_kill_at_any_moment_leaves_a_whole_checkpoint(tmp_path, corpus_file, delay):
    proc = _start(["--data", corpus_file, "--hidden-size", "64", "--iterations", "10000000",
                   "--checkpoint-every", "1", "--eval-every", "0", "--sample-every", "0",
                   "--out", str(tmp_path), "--quiet"], tmp_path)
    _wait_for(tmp_path / "checkpoint.npz", proc)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    ckpt = checkpoint.load(tmp_path / "checkpoint.npz")  # raises if partial
    assert ckpt.run["iteration"] >= 1 and len(ckpt.losses) == ckpt.run["iteration"]
    # The next run clears what the killed writer left half-written, and continues.
    (tmp_path / f".checkpoint.npz.{proc.pid}.tmp").write_bytes(b"PK half")
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations",
                       str(ckpt.run["iteration"] + 3), "--quiet"]) == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_only_the_runs_own_temporaries_are_removed_and_only_by_a_run(tmp_path, corpus_file,
                                                                      capsys):
    """A killed writer's temporaries (.NAME.PID-THREAD.tmp, or an earlier version's
    .NAME.PID.tmp, of a process gone) are removed when a run starts; a file of the user's
    that looks like one (.report.2024.tmp, in --out .) was deleted too, and by a run that was
    then refused."""
    dead = 2**22 + 7  # (past the pid range)
    ours = [f".{name}.{dead}{thread}.tmp" for name in ("checkpoint.npz", "best.npz",
                                                        "metrics.jsonl", "loss.png")
            for thread in ("", "-1234", "-18446744073709551615")]  # (macOS: 64-bit thread ids)
    theirs = [f".important.{dead}.tmp", ".report.2024.tmp", ".x.tmp", "notes.txt",
              f".checkpoint.npz.{dead}-x.tmp", f".checkpoint.npz.{dead}-1-2.tmp",
              f".checkpoint.npz.{dead}.bak", f".checkpoint.npz.{os.getppid()}.tmp",  # (alive)
              ".best.npz.\u00b2.tmp", f".best.npz.{10**20}.tmp"]  # (not pids: no traceback)
    for name in ours + theirs:
        (tmp_path / name).write_text("mine")
    (tmp_path / "best.npz").write_text("another run's")
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out", str(tmp_path)])
    assert_usage_error(rc, capsys, "best.npz (a run's best model) already exists")
    assert all((tmp_path / name).exists() for name in ours + theirs)  # (refused: nothing)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--overwrite",
                       "--out", str(tmp_path)]) == 0
    assert not any((tmp_path / name).exists() for name in ours)
    assert all((tmp_path / name).read_text() == "mine" for name in theirs)


def test_a_log_of_another_run_is_not_written_over(tmp_path, corpus_file, capsys,
                                                  monkeypatch):
    """A directory holding another run's metrics.jsonl (its checkpoints deleted to save space)
    had the log replaced in silence, by a new run or one resumed into it; --overwrite removes
    the old run's files as it starts (it replaced checkpoint.npz only at the first save: a
    kill before it left two runs mixed). An empty log (a run that diverged before its first
    record) is no run's: the retry its error asked for was refused."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"iteration": 5000}\n')
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out", str(out)])
    assert_usage_error(rc, capsys, "metrics.jsonl (another run's log) already exists: pass "
                                   "--overwrite or another --out")
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out",
                       str(tmp_path / "mine")]) == 0
    rc = train.main(["--resume", str(tmp_path / "mine" / "checkpoint.npz"), "--iterations",
                     "10", "--out", str(out)])
    assert_usage_error(rc, capsys, f"{out / 'metrics.jsonl'} is not the resumed run's")
    assert (out / "metrics.jsonl").read_text() == '{"iteration": 5000}\n'
    (out / "checkpoint.npz").write_text("another run's")
    save, found = checkpoint.save, []
    monkeypatch.setattr(checkpoint, "save", lambda path, ckpt: (
        found.append((out / "checkpoint.npz").exists()), save(path, ckpt))[1])
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--eval-every", "0",
                       "--checkpoint-every", "0", "--overwrite", "--out", str(out)]) == 0
    assert found[0] is False and checkpoint.load(out / "checkpoint.npz").run["iteration"] == 5
    monkeypatch.undo()
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--learning-rate",
                     "1e30", "--out", str(tmp_path / "diverged")])
    assert rc == 1 and not (tmp_path / "diverged" / "metrics.jsonl").exists()  # (wrote none)
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out",
                       str(tmp_path / "diverged")]) == 0


def test_init_from_a_checkpoint_that_overwrite_would_remove_is_refused(tmp_path, corpus_file,
                                                                        capsys):
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--out",
                       str(tmp_path)]) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()
    for overwrite in ([], ["--overwrite"]):  # (the same answer, with it or not)
        rc = train.main(["--init-from", str(tmp_path / "checkpoint.npz"), "--data", corpus_file,
                         "--iterations", "5", "--out", str(tmp_path), *overwrite])
        assert_usage_error(rc, capsys, f"--init-from {tmp_path / 'checkpoint.npz'} is in --out "
                                       f"{tmp_path}, whose old files a new run replaces: pass "
                                       f"another --out (or copy it elsewhere)")
        assert (tmp_path / "checkpoint.npz").read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_the_lock_file_is_refused_without_hanging(tmp_path, corpus_file):
    """The lock file as a FIFO: a run took its lock, and the next one waited forever to read
    the first one's pid from it. In a process of its own, with a time limit, the lock held
    meanwhile as a first run would hold it."""
    import fcntl

    from fastrnn import files
    os.mkfifo(tmp_path / files.LOCK)
    fd = os.open(tmp_path / files.LOCK, os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = subprocess.run([sys.executable, "-m", "fastrnn.train", "--data", corpus_file,
                               "--iterations", "5", "--out", str(tmp_path)], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(fd)
    assert done.returncode == 2 and done.stderr == (
        f"fastrnn.train: error: cannot lock output directory {tmp_path}: {tmp_path / files.LOCK}"
        f": it is a FIFO (named pipe), not a regular file (remove it if no fastrnn.train run is "
        f"using {tmp_path})\n"), done.stderr


def test_an_output_directory_removed_during_the_run_is_made_again(tmp_path, corpus_file,
                                                                  capsys, monkeypatch):
    """--out removed (or moved) during a run: every write failed, the work since the last
    checkpoint was lost, and the closing line named that checkpoint, gone with the directory.
    The directory is now made again, locked, its log written whole, and the run goes on."""
    out = tmp_path / "run"
    save = checkpoint.save

    from fastrnn import files
    out = tmp_path / "run"
    save, locked = checkpoint.save, []

    def removing(path, ckpt, removed=[]):  # (the directory goes at iteration 20's checkpoint,
        if ckpt.run["iteration"] == 20 and path.name == "checkpoint.npz" and not removed:
            removed.append(shutil.rmtree(out))
        if ckpt.run["iteration"] == 30:  # (the run holds the lock of the one made again)
            with pytest.raises(files.Locked) as held:
                files.lock(out)
            locked.append(held.value.args[0])
        return save(path, ckpt)

    monkeypatch.setattr(checkpoint, "save", removing)
    # ...after its best.npz, the run's best: the last validation, made worse here, does not
    # replace it, and the closing line says where that best.npz went)
    from fastrnn.model import CharRNN
    evaluate, calls = CharRNN.evaluate, []

    def worse_at_30(self, *args, **kwargs):
        calls.append(1)
        loss, state = evaluate(self, *args, **kwargs)
        return (loss * 2 if len(calls) == 3 else loss), state

    monkeypatch.setattr(CharRNN, "evaluate", worse_at_30)
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "30", "--eval-every",
                       "10", "--checkpoint-every", "10", "--sample-every", "0",
                       "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"note: {out} was removed or moved while the run wrote there: made again, to save " \
           f"the run in\n" in printed
    assert locked and set(locked) == {os.getpid()}
    ckpt = checkpoint.load(out / "checkpoint.npz")
    assert ckpt.run["iteration"] == 30 and len(ckpt.losses) == 30
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [10, 20, 30] and records == ckpt.run["metrics"]
    assert min(records, key=lambda r: r["val_loss"])["iteration"] == 20, records
    assert "at iteration 20, went with the --out removed or moved during the run)" in printed


def test_another_directory_in_place_of_the_runs_is_not_written_into(tmp_path, corpus_file,
                                                                     capsys, monkeypatch):
    """--out removed during a run and another made at its path (a second run's): the first
    run's writes replaced the other's files. They are refused, and the run ends saying so."""
    import shutil
    out = tmp_path / "run"
    save = checkpoint.save

    def replacing(path, ckpt):  # (after the checkpoint of iteration 10)
        save(path, ckpt)
        if ckpt.run["iteration"] == 10:
            shutil.rmtree(out)
            out.mkdir()
            (out / "checkpoint.npz").write_text("the other run's")

    monkeypatch.setattr(checkpoint, "save", replacing)
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "30", "--eval-every", "0",
                     "--checkpoint-every", "10", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and f"could not write {out / 'checkpoint.npz'}: {out} is another directory " \
                       f"than the run's, which was removed or moved" in err, err
    assert "the checkpoint of iteration 10 went with" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz"]
    assert (out / "checkpoint.npz").read_text() == "the other run's"


def test_a_directory_whose_id_changes_is_still_the_runs(tmp_path, corpus_file, monkeypatch):
    """A filesystem may give a directory another id (a remount, some network filesystems):
    the lock file holding this process's pid tells that --out is still the run's (every write
    was refused as into another directory)."""
    monkeypatch.setattr(train.Trainer, "_directory_id", lambda self: (-1, -1))
    out = tmp_path / "run"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--eval-every", "10",
                       "--checkpoint-every", "10", "--out", str(out)]) == 0
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 20


def test_the_closing_words_name_no_checkpoint_that_went(saved_run, capsys, monkeypatch):
    """A run resumed in its directory, which is removed (made again) and then cannot be written
    (a full disk): the checkpoint it resumed went with the directory, and was named as where
    the work is."""
    import errno
    import shutil
    save, calls = checkpoint.save, []

    def failing(path, ckpt):
        calls.append(path.name)
        if len(calls) == 1:
            shutil.rmtree(saved_run.parent)
            return save(path, ckpt)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save", failing)
    rc = train.main(["--resume", str(saved_run), "--iterations", "30", "--eval-every", "0",
                     "--checkpoint-every", "10", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.endswith(f"No space left on device; the checkpoint resumed "
                                    f"({saved_run}, iteration 20) is gone\n"), err


def test_the_closing_line_names_best_npz_only_when_it_holds_the_runs_best(tmp_path,
                                                                         corpus_file, capsys):
    """best.npz of another run copied into --out: the closing line said the run's best was
    in it."""
    import shutil
    mine, other = tmp_path / "mine", tmp_path / "other"
    for out, seed in ((mine, "0"), (other, "1")):
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--eval-every",
                           "10", "--seed", seed, "--out", str(out)]) == 0
    shutil.copy(other / "best.npz", mine / "best.npz")
    capsys.readouterr()
    # (a rate that makes the last validation worse than the best: the line names the best)
    assert train.main(["--resume", str(mine / "checkpoint.npz"), "--iterations", "30",
                       "--eval-every", "10", "--learning-rate", "3"]) == 0
    records = checkpoint.load(mine / "checkpoint.npz").run["metrics"]
    best = min(records, key=lambda r: r["val_loss"])
    assert best["iteration"] < 30, records
    assert (f"(the best, {best['val_bpc']:.4f} bits/char at iteration {best['iteration']}, is "
            f"not in {mine / 'best.npz'}, which holds another model)") in capsys.readouterr().out
    # its own best.npz: named
    assert train.main(["--resume", str(other / "checkpoint.npz"), "--iterations", "30",
                       "--eval-every", "10", "--learning-rate", "3"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    best = min(checkpoint.load(other / "checkpoint.npz").run["metrics"],
               key=lambda r: r["val_loss"])
    assert f"at iteration {best['iteration']}, is in {other / 'best.npz'})" in last, last


# -- memorisation (the issue's acceptance check) -------------------------------------------------

def test_memorises_a_repeated_sentence(tmp_path):
    path = tmp_path / "hope.txt"
    path.write_text(SENTENCE * 100)
    assert train.main(["--data", str(path), "--hidden-size", "64", "--seq-length", "25",
                       "--learning-rate", "0.1", "--iterations", "5000", "--val-fraction", "0",
                       "--out", str(tmp_path / "run"), "--quiet"]) == 0
    ckpt = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert ckpt.losses[-100:].mean() < 0.5
    rc, text = run_sample([str(tmp_path / "run" / "checkpoint.npz"), "--prime", "H", "--greedy",
                           "--length", str(len(SENTENCE) - 1)])
    assert rc == 0 and text == SENTENCE + "\n"


# -- sampling ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("trained")
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "300", "--out", str(out)]) == 0
    return str(out / "checkpoint.npz")


def test_a_prime_in_bytes_the_locale_cannot_decode_says_so(trained, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONUTF8": "0"}
    done = subprocess.run([sys.executable, "-m", "fastrnn.sample", trained, "--prime",
                           "caf\u00e9".encode()], cwd=tmp_path, env=env, capture_output=True,
                          timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert "--prime has characters the model never saw: '\\udca9', '\\udcc3' (its vocabulary:" in err
    assert err.rstrip().endswith("the '\\udc..' are bytes that are not ascii text, the encoding "
                                 "of this locale: give --prime in it, or set a UTF-8 locale (e.g. "
                                 "LC_ALL=C.UTF-8)"), err


def test_an_unknown_prime_names_a_large_vocabulary_in_part(tmp_path, capsys):
    """(its error line held all of a CJK model's thousands of characters)"""
    text = tmp_path / "cjk.txt"
    chars = [chr(0x4E00 + k) for k in range(300)]
    text.write_text("".join(np.random.default_rng(0).choice(chars, 3000)), encoding="utf-8")
    assert train.main(["--data", str(text), "--hidden-size", "8", "--iterations", "2",
                       "--quiet", "--out", str(tmp_path / "run")]) == 0
    rc, _ = run_sample([str(tmp_path / "run" / "checkpoint.npz"), "--prime", "ab"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err) < 400, err
    assert err == (f"fastrnn.sample: error: --prime has characters the model never saw: 'a', "
                   f"'b' (its vocabulary of 300 characters begins {''.join(chars[:100])!r})"
                   f"\n")


@pytest.fixture(scope="module")
def trained_cells(tmp_path_factory, corpus_file):
    """A checkpoint of each gated cell, two layers with dropout."""
    paths = {}
    for cell in ("lstm", "gru"):
        out = tmp_path_factory.mktemp(cell)
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "150", "--cell", cell,
                           "--num-layers", "2", "--dropout", "0.2", "--out", str(out)]) == 0
        paths[cell] = str(out / "checkpoint.npz")
    return paths


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_cell_samples_the_same_text_on_every_backend(trained_cells, cell):
    """Prime, temperature, top-k, greedy: the same seed gives the same text on numba and numpy."""
    for extra in (["--temperature", "0.8", "--prime", "The"], ["--top-k", "5"], ["--greedy"]):
        argv = [trained_cells[cell], "--length", "150", "--seed", "3", *extra]
        texts = {b: run_sample([*argv, "--backend", b]) for b in ("numba", "numpy")}
        assert texts["numba"] == texts["numpy"], extra
        assert texts["numba"][0] == 0 and len(texts["numba"][1]) > 150
    assert run_sample([trained_cells[cell], "--length", "150", "--seed", "4"]) != \
        run_sample([trained_cells[cell], "--length", "150", "--seed", "3"])


def test_sample_same_seed_same_text_on_every_backend(trained):
    texts = {b: run_sample([trained, "--length", "300", "--seed", "7", "--backend", b, "--prime", "The"])
             for b in ("numba", "numpy")}
    assert texts["numba"] == texts["numpy"]
    rc, text = texts["numba"]
    assert rc == 0 and text.startswith("The") and len(text) == 3 + 300 + 1
    assert run_sample([trained, "--length", "300", "--seed", "8", "--prime", "The"])[1] != text
    assert run_sample([trained, "--length", "300", "--seed", "7", "--prime", "The"])[1] == text


def test_several_samples_each_start_from_the_prime(trained):
    """--num-samples N: N samples of the prime and --length characters, a line of dashes
    between two, each drawn from the state after the prime (read once), one after another
    from the seed's generator: the first is the seed's one sample; the same on every backend."""
    argv = [trained, "--length", "100", "--seed", "7", "--prime", "The", "--num-samples", "3"]
    texts = {b: run_sample([*argv, "--backend", b]) for b in ("numba", "numpy")}
    assert texts["numba"] == texts["numpy"]
    rc, text = texts["numba"]
    assert rc == 0 and len(text) == 3 * (3 + 100 + 1) + 2 * len("-----\n")
    samples = [text[k * 110:k * 110 + 103] for k in range(3)]
    assert [text[k * 110 + 103:k * 110 + 110] for k in range(2)] == ["\n-----\n"] * 2
    assert text.endswith(samples[2] + "\n")
    assert samples[0] == run_sample(argv[:-2])[1][:-1]  # (the one sample of seed 7)
    ckpt = checkpoint.load(trained)
    model, ids = ckpt.to_model(), ckpt.vocab.encode("The")
    rng = np.random.default_rng(7)
    for expected in samples:
        drawn, _ = model.sample(100, int(ids[-1]), rng=rng, state=model.evaluate(ids)[1])
        assert expected == "The" + ckpt.vocab.decode(drawn)
    assert len(set(samples)) == 3


def ctrl_c_at_the_second_sample_call(monkeypatch):
    """CharRNN.sample, patched to raise KeyboardInterrupt at its second call (of the calls
    listed in the list returned: clear it to start again)."""
    from fastrnn.model import CharRNN
    real, calls = CharRNN.sample, []

    def stopped(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CharRNN, "sample", stopped)
    return calls


def test_ctrl_c_while_sampling_to_a_terminal_ends_the_texts_line(trained, monkeypatch, capsys):
    """Ctrl-C between two pieces of a sample: exit code 130, "interrupted" on stderr; on a
    terminal the text's line is ended first, so that the message does not follow the text on
    its line (in a file or a pipe, the text is left as it was written)."""
    calls = ctrl_c_at_the_second_sample_call(monkeypatch)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    texts = []
    for out in (Terminal(), io.StringIO()):
        calls.clear()
        assert sample_main([trained, "--length", "200", "--seed", "1", "--prime", "The"],
                           out=out) == cli.EXIT_INTERRUPTED
        texts.append(out.getvalue())
        assert capsys.readouterr().err.endswith("fastrnn.sample: interrupted\n")
    assert len(texts[1]) == 3 + 64 and texts[0] == texts[1] + "\n"  # (the prime, one piece)
    out = Terminal()  # (a line already ended, by the default prime: no blank line after it)
    calls[:] = [1]
    assert sample_main([trained, "--length", "200"], out=out) == cli.EXIT_INTERRUPTED
    assert out.getvalue() == "\n"


def test_ctrl_c_while_sampling_where_stderr_goes_too_ends_the_texts_line(trained, monkeypatch,
                                                                          tmp_path):
    """``sample ... > log 2>&1`` (or ``2>&1 | tail``): stdout and stderr the same file, the
    message lands after the text, on a line of its own; another file keeps the text as it was
    written."""
    calls = ctrl_c_at_the_second_sample_call(monkeypatch)
    texts = {}
    for shared in (True, False):
        calls.clear()
        log, text = tmp_path / f"log{shared}", tmp_path / f"text{shared}"
        log.write_text("")
        with open(log, "a") as err, open(log if shared else text, "a") as out:
            monkeypatch.setattr(sys, "stderr", err)
            assert sample_main([trained, "--length", "200", "--seed", "1", "--prime", "The"],
                               out=out) == cli.EXIT_INTERRUPTED
        texts[shared] = log.read_text()
        if not shared:
            assert texts[False] == "fastrnn.sample: interrupted\n"
            texts[False] = text.read_text()
    assert len(texts[False]) == 3 + 64 and not texts[False].endswith("\n")
    assert texts[True] == texts[False] + "\nfastrnn.sample: interrupted\n"


def test_the_prime_read_from_a_file(trained, tmp_path, capsys, monkeypatch):
    """--prime-file PATH (nanoGPT's --start=FILE:PATH; - for standard input): its text as it
    is, a last line break included, read as --prime's text is; in --encoding if given. What
    stops it is named
    (--prime with it, --encoding without it, nanoGPT's spelling given to --prime, a missing
    file, a folder, an empty file, bytes not in the encoding, characters the model never saw,
    with what explains them)."""
    prime = tmp_path / "prime.txt"
    prime.write_bytes("The \nking".encode())
    argv = [trained, "--length", "100", "--seed", "3"]
    rc, primed = run_sample([*argv, "--prime-file", str(prime)])
    assert rc == 0 and primed == run_sample([*argv, "--prime", "The \nking"])[1]
    assert primed.startswith("The \nking") and len(primed) == 9 + 100 + 1
    latin = tmp_path / "latin.txt"
    latin.write_bytes("The king".encode("utf-16"))
    assert run_sample([*argv, "--prime-file", str(latin), "--encoding", "utf-16"])[1] == \
        run_sample([*argv, "--prime", "The king"])[1]
    capsys.readouterr()
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfThe\r\n")
    book = tmp_path / "book.zip"  # (not an .npz)
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("book.txt", "The king")
    for args, message in [
            (["--prime-file", str(prime), "--prime", "x"],
             "argument --prime: not allowed with argument --prime-file"),
            (["--encoding", "latin-1"], "--encoding is the encoding of --prime-file: give one, "
                                        "or drop it"),
            (["--prime", f"FILE:{prime}"], f"--prime FILE:{prime} reads as nanoGPT's way to start "
                                           f"from a file: --prime-file {prime} reads it"),
            (["--prime-file", str(tmp_path / "none.txt")], f"--prime-file {tmp_path}/none.txt: "
                                                          f"no such file"),
            (["--prime-file", f"FILE:{prime}"], f"--prime-file FILE:{prime}: no such file "
                                                f"(nanoGPT's FILE: is not written here: "
                                                f"--prime-file {prime})"),
            (["--prime-file", str(tmp_path)], f"--prime-file {tmp_path} is a directory: give a "
                                             f"text file"),
            (["--prime-file", str(trained)], f"--prime-file {trained} is a zip archive (an .npz "
                                             f"checkpoint?), not a text: the checkpoint is "
                                             f"sample's first argument"),
            (["--prime-file", str(book)], f"--prime-file {book} is a zip archive, not a text: "
                                          f"unzip it and give its text"),
            (["--prime-file", str(tmp_path / "empty.txt")], "empty.txt is empty"),
            (["--prime-file", str(prime), "--encoding", "nosuch"], "error: unknown encoding "
                                                                   "'nosuch': give a text "),
            (["--prime-file", str(latin)], "latin.txt: byte 0xff at offset 0 is not valid utf-8"),
            (["--prime-file", str(tmp_path / "bom.txt")],
             "bom.txt has characters the model never saw: '\\r', '\\ufeff' (its vocabulary: "),
            (["--prime-file", str(tmp_path / "bom.txt")], "; it starts with a byte-order mark: "
                                                          "--encoding utf-8-sig reads past it")]:
        rc, text = run_sample([trained, *args])
        assert_usage_error(rc, capsys, message)
        assert text == ""
    # - is standard input, read to its end (a caller's text stream, without bytes, as it is)
    for stdin in (io.TextIOWrapper(io.BytesIO("The \nking".encode())), io.StringIO("The \nking")):
        monkeypatch.setattr("sys.stdin", stdin)
        assert run_sample([*argv, "--prime-file", "-"]) == (0, primed)
    for stdin, message in ((io.TextIOWrapper(io.BytesIO(b"")), "--prime-file - is empty"),
                           (io.TextIOWrapper(io.BytesIO(b"The \xff")), "--prime-file -: byte "
                                                                        "0xff at offset 4 is "
                                                                        "not valid utf-8"),
                           (io.TextIOWrapper(io.BytesIO("The \u2603".encode())),
                            "--prime-file - has characters the model never saw: '\u2603'"),
                           (None, "--prime-file - (standard input) is closed")):
        monkeypatch.setattr("sys.stdin", stdin)
        rc, text = run_sample([*argv, "--prime-file", "-"])
        assert_usage_error(rc, capsys, message)
        assert text == ""
    if hasattr(os, "mkfifo"):  # a pipe given as a file (/dev/stdin, <(...)): - named
        os.mkfifo(tmp_path / "pipe")
        rc, text = run_sample([*argv, "--prime-file", str(tmp_path / "pipe")])
        assert_usage_error(rc, capsys, f"--prime-file {tmp_path / 'pipe'} is a FIFO (named pipe), "
                                       f"not a regular file (a pipe's text is read as -: ... | "
                                       f"python -m fastrnn.sample CHECKPOINT --prime-file -)\n")
    # (a FILE: text too long to be a file name is a prime like another, sampled or refused for
    # its characters: it was an OSError's traceback)
    rc, _ = run_sample([*argv, "--prime", "FILE:" + "a" * 300])
    assert rc == 0 or "--prime has characters the model never saw" in capsys.readouterr().err


def test_sample_top_k_and_top_p_same_text_on_every_backend(trained):
    argv = [trained, "--length", "200", "--seed", "7", "--top-k", "5", "--top-p", "0.9"]
    texts = {b: run_sample([*argv, "--backend", b]) for b in ("numba", "numpy")}
    assert texts["numba"] == texts["numpy"] and texts["numba"][0] == 0
    assert texts["numba"][1] != run_sample([trained, "--length", "200", "--seed", "7"])[1]
    # a --top-p under 1/V keeps the most likely character alone (what --num-samples refuses)
    V = len(checkpoint.load(trained).vocab)
    greedy = run_sample([trained, "--length", "200", "--greedy"])
    for seed in ("1", "2"):
        assert run_sample([trained, "--length", "200", "--top-p", f"{0.98 / V!r}", "--seed",
                           seed, "--temperature", "2"]) == greedy
    for share, refused in ((0.985, True), (0.995, False), (1.01, False)):  # (sample.LONE_SHARE)
        rc, _ = run_sample([trained, "--length", "20", "--top-p", f"{share / V!r}",
                            "--num-samples", "2"])
        assert rc == (2 if refused else 0), share


def test_sample_in_another_dtype_and_greedy(trained):
    rc, text = run_sample([trained, "--length", "200", "--seed", "1", "--dtype", "float32"])
    assert rc == 0 and len(text) == 1 + 200 + 1  # the default prime is a newline
    greedy = [run_sample([trained, "--length", "100", "--greedy", "--seed", str(s)])[1] for s in (1, 2)]
    assert greedy[0] == greedy[1]


def test_a_checkpoint_whose_numbers_float32_cannot_hold_is_refused_in_it(trained, tmp_path,
                                                                          capsys):
    """(--dtype float32 of a float64 checkpoint with a weight of 1e300: an overflow warning
    then a traceback from sample, and a finite score from score on numba, None on numpy)"""
    from fastrnn import score
    big = tmp_path / "big.npz"
    text = tmp_path / "text.txt"
    text.write_text(SENTENCE, encoding="utf-8")
    for name in ("Whh", "state"):  # (the state: a traceback from sample --state checkpoint)
        ckpt = checkpoint.load(trained)
        (ckpt.params["Whh"] if name == "Whh" else ckpt.state)[0, 0] = 1e300
        checkpoint.save(big, ckpt)
        message = (f"{name} holds 1e+300, more than float32 can hold: this checkpoint cannot be "
                   f"used in float32")
        for backend in ("numba", "numpy"):
            options = ["--dtype", "float32", "--backend", backend]
            for command in (lambda: run_sample([str(big), *options, "--state", "checkpoint"])[0],
                            lambda: score.main([str(big), str(text), *options],
                                               out=io.StringIO())):
                rc, err = command(), capsys.readouterr().err
                assert rc == 2 and err.count("\n") == 1 and message in err, err
        assert run_sample([str(big), "--length", "5"])[0] == 0  # (in float64 it is a number)
    # the optimizer's state, which sampling and scoring never read, is no refusal (QA); a
    # model made from it with that state is
    ckpt = checkpoint.load(trained)
    ckpt.states[0]["Whh"][0, 0] = 1e300
    checkpoint.save(big, ckpt)
    options = ["--dtype", "float32"]
    assert run_sample([str(big), *options, "--length", "5", "--seed", "3"]) == \
        run_sample([trained, *options, "--length", "5", "--seed", "3"])
    assert score.main([str(big), str(text), *options, "--skip-unknown"], out=io.StringIO()) == 0
    with pytest.raises(ValueError, match="mWhh holds 1e.300, more than float32 can hold"):
        ckpt.to_model(dtype="float32")
    bare, whole = ckpt.to_model(optimizer_state=False), ckpt.to_model()  # (a new model's state)
    assert whole.step == ckpt.step > 0 and bare.step == 0 and not bare.states[0].flat.any()
    assert np.array_equal(bare.weights.flat, whole.weights.flat)


def test_a_checkpoint_whose_learning_rate_float32_cannot_hold_says_so_in_it(trained, tmp_path,
                                                                            capsys):
    """(--dtype float32 of a float64 checkpoint trained at 1e-50: "learning_rate 1e-50 is 0 in
    float32", the words of a CharRNN made with it, naming neither the checkpoint nor a way out)"""
    tiny = tmp_path / "tiny.npz"
    text = tmp_path / "text.txt"
    text.write_text(SENTENCE, encoding="utf-8")
    ckpt = checkpoint.load(trained)
    ckpt.config = dataclasses.replace(ckpt.config, learning_rate=1e-50)
    checkpoint.save(tiny, ckpt)
    message = ("the checkpoint's learning rate 1e-50 is 0 in float32, and a model's must be a "
               "number in its dtype, even to sample or score: use it in float64, its own\n")
    for command in (lambda: run_sample([str(tiny), "--dtype", "float32"])[0],
                    lambda: score.main([str(tiny), str(text), "--dtype", "float32"],
                                       out=io.StringIO())):
        rc, err = command(), capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and err.endswith(message), err
    assert run_sample([str(tiny), "--length", "5"])[0] == 0


def test_the_prime_is_read_from_zeros_or_from_the_checkpoints_state(trained, tmp_path):
    """The prime is read from a zero state (char-rnn's), or with --state checkpoint from the
    checkpoint's first training stream's state (where the run's samples, validation and score
    start): each the text CharRNN.sample gives from there. (This small model forgets its start
    within a few characters: the checkpoint's state here is made far from zeros.)"""
    ckpt = checkpoint.load(trained)
    ckpt.state[...] = np.random.default_rng(0).choice([-1.0, 1.0], ckpt.state.shape) * 0.999
    saved = str(tmp_path / "far.npz")
    checkpoint.save(saved, ckpt)
    model, vocab = ckpt.to_model(), ckpt.vocab
    ids = vocab.encode("T")
    argv = [saved, "--length", "50", "--seed", "5", "--prime", "T"]
    texts = {}
    for state, start in (("checkpoint", ckpt.state[:, :, :1]), ("zeros", None)):
        _, after = model.evaluate(ids, state=start)
        drawn, _ = model.sample(50, int(ids[-1]), rng=np.random.default_rng(5), state=after)
        texts[state] = "T" + vocab.decode(drawn) + "\n"
        assert run_sample(argv + ["--state", state]) == (0, texts[state]), state
    assert run_sample(argv) == (0, texts["zeros"])  # (the default)
    assert texts["checkpoint"][:10] != texts["zeros"][:10]


def test_a_long_prime_shows_its_progress(trained, capsys, monkeypatch):
    """(a long --prime was read in silence) A bar on stderr once reading it has taken
    cli.BAR_DELAY seconds past its first kernel call (0 here; calls of 256 characters), of the
    characters read; the same text with it or not."""
    from fastrnn.backends import numba as numba_backend
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
    prime = "What, ho! " * 300
    argv = [trained, "--length", "20", "--seed", "1", "--prime", prime]
    quiet = run_sample(argv)
    assert quiet[0] == 0 and "reading --prime" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "BAR_DELAY", 0.0)
    assert run_sample(argv) == quiet
    err = capsys.readouterr().err
    assert "reading --prime: " in err and f"/{(len(prime) - 1) / 1000:.2f}k [" in err, err


def test_prime_warms_the_hidden_state(trained):
    # Greedy continuations of two primes with the same last character differ only through h.
    a = run_sample([trained, "--length", "60", "--greedy", "--prime", "What, ho! "])[1]
    b = run_sample([trained, "--length", "60", "--greedy", "--prime", " "])[1]
    assert a[len("What, ho! "):] != b[1:]


# -- bad input: one line on stderr, exit code 2 ------------------------------------------------

def assert_usage_error(rc, capsys, *fragments):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(("fastrnn.train: error: ", "fastrnn.sample: error: ",
                           "fastrnn.score: error: ")), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("content, fragments", [
    (None, ["no such file"]),
    (b"", ["is empty"]),
    (b"short text", ["has 10 characters to train on", "needs at least 26"]),
    (b"caf\xe9 au lait, " * 10, ["byte 0xe9 at offset 3 is not valid utf-8", "--encoding"]),
    (b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", ["only one distinct character"]),
])
def test_bad_data_files(tmp_path, capsys, content, fragments):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    rc = train.main(["--data", str(path), "--out", str(tmp_path / "out"), "--val-fraction", "0"])
    assert_usage_error(rc, capsys, str(path), *fragments)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_as_the_corpus_is_refused_without_hanging(tmp_path):
    """--data /dev/zero used to read forever. In a process of its own, with a time limit, so
    that a regression fails here instead of hanging the suite."""
    run = subprocess.run([sys.executable, "-m", "fastrnn.train", "--data", "/dev/zero", "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "is a character device, not a regular file" in \
        run.stderr, run.stderr
    assert not (tmp_path / "out").exists(), "nothing is written"


def test_a_validation_split_too_short_to_validate_on_is_said(tmp_path, corpus_file, capsys):
    """A fraction of a short text rounds down to no character: said, as one character is (it
    ran on with no validation, in silence)."""
    for fraction, n in (("0.00001", "0 characters"), ("0.00005", "1 character")):
        assert train.main(["--data", corpus_file, *SMALL, "--iterations", "3", "--val-fraction",
                           fraction, "--out", str(tmp_path / fraction)]) == 0
        assert (f"fastrnn.train: warning: the validation split of {corpus_file} is {n}: no "
                f"validation loss\n") in capsys.readouterr().err
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "3", "--val-fraction",
                       "0", "--out", str(tmp_path / "none")]) == 0
    assert "validation split" not in capsys.readouterr().err  # (none asked for)


def test_a_byte_order_mark_is_named(tmp_path, capsys):
    """A UTF-8 file that starts with a byte-order mark: utf-8 reads it as the character
    U+FEFF, which the model then learns (and asks of every text it scores); a warning says so
    and how to leave it out."""
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"hello world, " * 40)
    args = ["--data", str(path), "--iterations", "3", "--seq-length", "5", "--quiet"]
    assert train.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert ("starts with a byte-order mark (U+FEFF), which the model learns as a character of "
            "its vocabulary; --encoding utf-8-sig leaves it out") in capsys.readouterr().err
    assert "\ufeff" in checkpoint.load(tmp_path / "a" / "checkpoint.npz").vocab.chars
    assert train.main([*args, "--encoding", "utf-8-sig", "--out", str(tmp_path / "b")]) == 0
    assert "byte-order mark" not in capsys.readouterr().err
    assert "\ufeff" not in checkpoint.load(tmp_path / "b" / "checkpoint.npz").vocab.chars


def test_a_learning_rate_past_float32_is_one_line(tmp_path, corpus_file, capsys):
    """--learning-rate 1e39 in float32: the error came after NumPy's "overflow encountered in
    cast" warning (run here as an error, which it would have raised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_usage_error(train.main(["--data", corpus_file, *SMALL, "--dtype", "float32",
                                       "--learning-rate", "1e39", "--out", str(tmp_path)]),
                           capsys, "--learning-rate 1e+39 is infinite in float32: its first "
                                   "update would leave no weight a number")


def test_utf16_text_read_as_utf8_is_warned_about(tmp_path, capsys):
    """UTF-16 without a byte-order mark is valid UTF-8 when it is ASCII text: a NUL between
    every two letters, trained on in silence. More than a tenth of NULs is said, with the
    encodings that read it; the file read as UTF-16 is not."""
    for codec, share in (("utf-16-be", 50), ("utf-16-le", 50), ("utf-32-le", 75)):
        path = tmp_path / f"{codec}.txt"
        path.write_bytes("hello world, ".encode(codec) * 40)
        args = ["--data", str(path), "--iterations", "3", "--seq-length", "5", "--quiet"]
        assert train.main([*args, "--out", str(tmp_path / "a" / codec)]) == 0
        assert (f"fastrnn.train: warning: {share}% of the bytes of {path} are NUL (\\x00), "
                f"as in UTF-{codec[4:6]} text read as utf-8: if it is, --encoding {codec} reads "
                f"it\n") in capsys.readouterr().err
        assert train.main([*args, "--encoding", codec, "--out", str(tmp_path / "b" / codec)]) == 0
        assert "NUL" not in capsys.readouterr().err
        assert checkpoint.load(tmp_path / "b" / codec / "checkpoint.npz").vocab.chars == \
            sorted(set("hello world, "))


def test_encoding_option(tmp_path, capsys):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9 au lait, ".encode("latin-1") * 10)
    args = ["--data", str(path), "--iterations", "3", "--seq-length", "5", "--out", str(tmp_path)]
    assert train.main(args + ["--encoding", "latin-1", "--quiet"]) == 0
    assert "é" in checkpoint.load(tmp_path / "checkpoint.npz").vocab.chars
    capsys.readouterr()  # (its warnings, if any: --quiet writes them)
    assert_usage_error(train.main(args + ["--encoding", "klingon", "--overwrite"]), capsys,
                       "unknown encoding 'klingon'")
    assert_usage_error(train.main(args + ["--encoding", "", "--overwrite"]), capsys,
                       "unknown encoding ''")  # (as fastrnn.score says; not utf-8 silently)
    plain = tmp_path / "plain.txt"  # (ASCII: punycode's own error, not a byte's)
    plain.write_text("au lait, " * 10)
    assert_usage_error(train.main(["--data", str(plain), *args[2:], "--encoding", "punycode",
                                   "--overwrite"]), capsys,
                       f"{plain}: not valid punycode (Invalid extended code point ' '); pass "
                       f"its encoding with --encoding")  # (as score says it)
    assert_usage_error(train.main(["--data", str(tmp_path), "--out", str(tmp_path / "dir-run")]),
                       capsys, "is a directory")


@pytest.mark.parametrize("args, fragment", [
    (["--hidden-size", "0"], "--hidden-size: 0 is not a positive integer"),
    (["--hidden-size", "-3"], "--hidden-size: -3 is not a positive integer"),
    (["--hidden-size", "many"], "'many' is not an integer"),
    (["--seq-length", "0"], "--seq-length: 0 is not a positive integer"),
    (["--learning-rate", "0"], "--learning-rate: 0 is not a positive finite number"),
    (["--learning-rate", "-0.1"], "--learning-rate: -0.1 is not a positive finite number"),
    (["--learning-rate", "nan"], "--learning-rate: nan is not a positive finite number"),
    (["--learning-rate", "1e-400"], "--learning-rate: 1e-400 is not a positive finite number "
                                    "(it rounds to 0 as a float64)"),
    (["--learning-rate", "0.0e-400"], "--learning-rate: 0.0e-400 is not a positive finite "
                                      "number (see --help)\n"),  # (0 as written)
    (["--val-fraction", "1"], "--val-fraction: 1 is not in [0, 1) (see --help)\n"),
    (["--dropout", "0.99999999999999999"], "--dropout: 0.99999999999999999 is not in [0, 1) (it "
                                           "rounds to 1 as a float64)"),
    (["--dropout", "1.00000000000000001"], "--dropout: 1.00000000000000001 is not in [0, 1) "
                                           "(see --help)\n"),  # (past 1 as written too)
    (["--learning-rate=-1e-400"], "--learning-rate: -1e-400 is not a positive finite number "
                                  "(see --help)\n"),
    (["--val-fraction", "-0.2"], "--val-fraction: -0.2 is not in [0, 1)"),
    (["--iterations", "0"], "--iterations: 0 is not a positive integer"),
    (["--sample-length", "0"], "--sample-length: 0 is not a positive integer"),
    (["--batch-size", "0"], "--batch-size: 0 is not a positive integer"),
    (["--threads", "0"], "--threads: 0 is not a positive integer"),
    (["--val-streams", "0"], "--val-streams: 0 is not a positive integer"),
    (["--hidden-size", "100000000"], "hidden_size 100000000 (vocabulary"),
    (["--val-streams", "2", "--backend", "cuda"], "--val-streams > 1 runs on the numba and"),
    (["--threads", "2", "--backend", "cuda"], "--threads sets the CPU threads of the numba"),
    (["--threads", "2", "--backend", "numpy"], "the numpy backend (the reference) runs on "
                                               "NumPy's own"),
    (["--batch-size", "5000"], "needs at least 26 in each of --batch-size 5000 streams"),
    (["--time-budget", "-1"], "--time-budget: -1 is not a positive finite number"),
    (["--epochs", "0"], "--epochs: 0 is not a positive finite number"),
    (["--epochs", "1e308"], "--epochs 1e+308 (inf iterations) is past the most iterations"),
    (["--epochs", "1e300"], "--epochs 1e+300 (7.19e+302 iterations) is past the most "
                            "iterations a run counts (2**62)"),
    (["--iterations", str(2**63)], f"--iterations {2**63} is past the most iterations"),
    (["--val-streams", "1000000000"], "--val-streams 1000000000 is more streams than the "
                                      "held-out text has characters to predict"),
    (["--learning-rate", "1e-50", "--dtype", "float32"], "--learning-rate 1e-50 is 0 in float32"),
    (["--epochs", "2", "--iterations", "5"], "--iterations and --epochs both set the end"),
    (["--dtype", "float16"], "invalid choice: 'float16'"),
    (["--optimizer", "bogus"], "invalid choice: 'bogus'"),
    (["--cell", "transformer"], "invalid choice: 'transformer'"),
    (["--num-layers", "0"], "--num-layers"),
    (["--dropout", "1"], "--dropout"),
    (["--dropout", "0.5"], "--dropout 0.5 applies between layers: it needs --num-layers >= 2"),
    (["--grad-clip", "-1"], "argument --grad-clip: -1 is not a finite number >= 0"),
    (["--grad-clip", "inf"], "argument --grad-clip: inf is not a finite number >= 0"),
    (["--grad-clip", "1e-50", "--dtype", "float32"],
     "--grad-clip 1e-50 is 0 in float32: it would hold every gradient at 0"),
    (["--grad-clip", "1e300", "--dtype", "float32"],
     "--grad-clip 1e+300 is infinite in float32: give 0 for no clipping"),
    (["--grad-clip", "1e-50", "--backend", "cuda"],
     "--grad-clip 1e-50 is 0 in float32 (the cuda backend's dtype): it would hold every "
     "gradient at 0"),
    (["--learning-rate", "1e-50", "--backend", "cuda"],
     "--learning-rate 1e-50 is 0 in float32 (the cuda backend's dtype): nothing would be "
     "learned"),
    (["--learning-rate", "1e300", "--backend", "cuda"],
     "--learning-rate 1e+300 is infinite in float32 (the cuda backend's dtype): its first "
     "update would leave no weight a number"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    # an empty path (``--resume "$CKPT"`` with CKPT unset) is not an option left out
    (["--resume", ""], "argument --resume: an empty path"),
    (["--init-from", ""], "argument --init-from: an empty path"),
    (["--data", ""], "argument --data: an empty path"),
    (["--out", ""], "argument --out: an empty path"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_nonsense_hyperparameters(tmp_path, corpus_file, capsys, args, fragment):
    rc = train.main(["--data", corpus_file, "--out", str(tmp_path), *args])
    assert_usage_error(rc, capsys, fragment)


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, corpus_file, capsys):
    from fastrnn.backends.cuda import available
    if available()[0]:
        pytest.skip("this machine can run the CUDA backend (tests_cuda/ covers it)")
    rc = train.main(["--data", corpus_file, "--out", str(tmp_path), "--backend", "cuda"])
    assert_usage_error(rc, capsys, "backend 'cuda' is not usable here", "NUMBA_ENABLE_CUDASIM")


def test_output_directory_problems(tmp_path, corpus_file, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    rc = train.main(["--data", corpus_file, "--out", str(a_file / "sub")])
    assert_usage_error(rc, capsys, f"cannot write to output directory {a_file / 'sub'}")
    rc = train.main(["--data", corpus_file, "--out", str(a_file)])
    assert_usage_error(rc, capsys, f"output directory {a_file} exists and is not a directory")
    rc = train.main(["--data", corpus_file, "--out", "/dev/null"])
    assert_usage_error(rc, capsys, "output directory /dev/null exists and is not a directory")
    nowhere = tmp_path / "dangling"
    nowhere.symlink_to(tmp_path / "gone")
    loop_a, loop_b = tmp_path / "loop-a", tmp_path / "loop-b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    for link, target in ((nowhere, tmp_path / "gone"), (loop_a, loop_b)):
        rc = train.main(["--data", corpus_file, "--out", str(link)])  # ("File exists" before)
        assert_usage_error(rc, capsys, f"output directory {link} is a symbolic link to no "
                                       f"directory ({target}): remove it or pass another --out")
    rc = train.main(["--data", corpus_file, "--out", "n" * 300])  # (a traceback before)
    assert_usage_error(rc, capsys, f"cannot use output directory {'n' * 300}: File name too long")
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "3", "--out", str(tmp_path)]) == 0
    rc = train.main(["--data", corpus_file, *SMALL, "--iterations", "3", "--out", str(tmp_path)])
    assert_usage_error(rc, capsys, "checkpoint.npz already exists", "--resume", "--overwrite")
    assert_usage_error(train.main(["--data", corpus_file, "--out", ""]), capsys, "--out: an empty")
    # a resume writes beside its checkpoint: where it cannot (a read-only filesystem), --out
    write_bytes = Path.write_bytes

    def read_only(path, data):
        if path.name.startswith(".write-test-"):
            raise OSError(errno.EROFS, "Read-only file system")
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    rc = train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "5"])
    assert_usage_error(rc, capsys, f"cannot write to output directory {tmp_path}: Read-only "
                                   f"file system; --out DIR writes the resumed run elsewhere")
    rc = train.main(["--data", corpus_file, "--out", str(tmp_path / "new")])
    assert_usage_error(rc, capsys, f"cannot write to output directory {tmp_path / 'new'}: "
                                   f"Read-only file system")


def test_resuming_into_another_runs_directory_is_refused(tmp_path, corpus_file, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--data", corpus_file, *SMALL, "--eval-every", "5", "--sample-every", "0"]
    assert train.main([*common, "--iterations", "10", "--out", str(a)]) == 0
    assert train.main([*common, "--iterations", "30", "--cell", "gru", "--out", str(b)]) == 0
    other = (b / "checkpoint.npz").read_bytes()
    rc = train.main(["--resume", str(a / "checkpoint.npz"), "--iterations", "20", "--out", str(b)])
    assert_usage_error(rc, capsys, f"{b / 'checkpoint.npz'} is not the resumed run's")
    # best.npz resumed into its own directory would replace the later checkpoint.npz
    rc = train.main(["--resume", str(b / "best.npz"), "--iterations", "40"])
    assert_usage_error(rc, capsys, "is not the checkpoint resumed", "--overwrite")
    assert (b / "checkpoint.npz").read_bytes() == other
    # a run resumed where it was saved goes on
    assert train.main(["--resume", str(a / "checkpoint.npz"), "--iterations", "20"]) == 0


def test_a_new_run_over_an_old_one_keeps_none_of_its_files(tmp_path, corpus_file, capsys):
    common = ["--data", corpus_file, *SMALL, "--sample-every", "0", "--out", str(tmp_path)]
    assert train.main([*common, "--iterations", "10", "--eval-every", "5"]) == 0
    (tmp_path / "checkpoint.npz").unlink()  # e.g. killed before its first checkpoint
    rc = train.main([*common, "--iterations", "10", "--val-fraction", "0"])
    assert_usage_error(rc, capsys, f"{tmp_path / 'best.npz'} (a run's best model) already "
                                   f"exists: continue it with --resume {tmp_path / 'best.npz'}, "
                                   f"or pass --overwrite (which sets it aside, removed once the "
                                   f"new run saves) or another --out")
    assert train.main([*common, "--iterations", "10", "--val-fraction", "0", "--overwrite"]) == 0
    assert not (tmp_path / "best.npz").exists()  # no validation: no best model of this run


def test_an_overwrite_that_saves_nothing_puts_the_old_run_back(tmp_path, corpus_file, capsys,
                                                                 monkeypatch):
    """--overwrite sets the old run's files aside: a new run that ends before a checkpoint or
    best model of its own (diverging at once; a second Ctrl-C, which quits without saving)
    puts them back, whole (they were deleted as it started: the old run lost to a run that
    saved nothing); one that saves removes them. loss.png (if matplotlib draws it) too."""
    common = ["--data", corpus_file, *SMALL, "--sample-every", "0", "--out", str(tmp_path)]
    assert train.main([*common, "--iterations", "10", "--eval-every", "5"]) == 0
    names = ("checkpoint.npz", "best.npz", "metrics.jsonl") + \
        (("loss.png",) if (tmp_path / "loss.png").exists() else ())
    old = {name: (tmp_path / name).read_bytes() for name in names}
    capsys.readouterr()
    assert train.main([*common, "--iterations", "10", "--learning-rate", "1e30",
                       "--overwrite"]) == 1
    assert capsys.readouterr().err.endswith(
        f"no checkpoint of this run was written; the run --overwrite was to replace is put back "
        f"({', '.join(names)}); try a smaller --learning-rate\n")
    assert {name: (tmp_path / name).read_bytes() for name in names} == old
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == \
        sorted(names)  # (no aside left)

    from fastrnn.model import CharRNN

    def quit_at_once(self, *args, **kwargs):  # (as a second Ctrl-C in the first call)
        raise KeyboardInterrupt("quit at once, without saving")

    monkeypatch.setattr(CharRNN, "train", quit_at_once)
    assert train.main([*common, "--iterations", "10", "--overwrite"]) == cli.EXIT_INTERRUPTED
    assert {name: (tmp_path / name).read_bytes() for name in names} == old
    monkeypatch.undo()

    def killed():  # as an overwrite killed (-9) before it saved leaves them
        for name in names:
            (tmp_path / name).rename(tmp_path / f"{name}.overwritten")
        (tmp_path / "metrics.jsonl").write_text('{"iteration": 5}\n')  # (the killed run's)

    # the next run in the directory puts them back first, then protects them as ever (a run
    # without --overwrite took them for what the killed run left, and its first save deleted
    # them); a --resume of the checkpoint names the file set aside; a --resume of that
    # resumes it in its place
    capsys.readouterr()
    killed()
    rc = train.main([*common, "--iterations", "10", "--eval-every", "5"])
    assert_usage_error(rc, capsys, "checkpoint.npz already exists")
    assert {name: (tmp_path / name).read_bytes() for name in names} == old
    killed()
    rc = train.main(["--resume", str(tmp_path / "checkpoint.npz"), "--iterations", "12"])
    hint = (f"({tmp_path / 'checkpoint.npz.overwritten'}, set aside by an --overwrite run that "
            f"has not saved yet, or was killed before it did, is the run that was there: give "
            f"that file)")
    assert_usage_error(rc, capsys, hint)
    # so do sample, score and --init-from
    for command, argv in ((sample_main, [str(tmp_path / "checkpoint.npz")]),
                          (score.main, [str(tmp_path / "checkpoint.npz"), corpus_file]),
                          (train.main, ["--init-from", str(tmp_path / "checkpoint.npz"), "--data",
                                        corpus_file, "--out", str(tmp_path / "new")])):
        assert_usage_error(command(argv), capsys, hint)
    assert train.main(["--resume", str(tmp_path / "checkpoint.npz.overwritten"), "--iterations",
                       "12", "--eval-every", "0", "--quiet"]) == 0
    assert checkpoint.load(tmp_path / "checkpoint.npz").run["iteration"] == 12
    assert not list(tmp_path.glob("*.overwritten"))
    old = {name: (tmp_path / name).read_bytes() for name in names}
    killed()
    loud = ["--data", corpus_file, *SMALL[:-1], "--sample-every", "0", "--out", str(tmp_path)]
    assert train.main([*loud, "--iterations", "10", "--learning-rate", "1e30",
                       "--overwrite"]) == 1
    assert {name: (tmp_path / name).read_bytes() for name in names} == old
    assert f"note: put back in {tmp_path}: {', '.join(names)}, set aside by an --overwrite run " \
           f"that was killed before it saved" in capsys.readouterr().out
    (tmp_path / "checkpoint.npz.overwritten").write_bytes(b"")  # (and both there: refused)
    rc = train.main([*common, "--iterations", "3", "--overwrite"])
    assert_usage_error(rc, capsys, f"{tmp_path / 'checkpoint.npz.overwritten'} (set aside by an "
                                   f"--overwrite run) and that run's own checkpoint or best "
                                   f"model are both in {tmp_path}")
    (tmp_path / "checkpoint.npz.overwritten").unlink()
    replace = os.replace  # a refusal part-way through setting aside puts back what it moved

    def failing(source, target):
        if str(source).endswith("best.npz"):
            raise OSError(errno.EACCES, "Permission denied")
        replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    rc = train.main([*common, "--iterations", "3", "--overwrite"])
    assert_usage_error(rc, capsys, f"cannot set {tmp_path / 'best.npz'} aside (--overwrite): "
                                   f"Permission denied")
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_bytes() for name in names} == old
    save, asides = checkpoint.save, []  # (the old run goes at the first save, not at the end:
    monkeypatch.setattr(checkpoint, "save", lambda path, ckpt: (  # one killed after it left both)
        asides.append(len(list(tmp_path.glob("*.overwritten")))), save(path, ckpt))[1])
    assert train.main([*common, "--iterations", "3", "--eval-every", "0", "--checkpoint-every",
                       "1", "--overwrite"]) == 0
    monkeypatch.undo()
    assert asides[0] > 0 and asides[1:] == [0] * (len(asides) - 1), asides
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")
                  and p.name != "loss.png") == ["best.npz", "checkpoint.npz", "metrics.jsonl"]
    for name in ("checkpoint.npz", "best.npz"):  # (this run's: its final validation's)
        assert checkpoint.load(tmp_path / name).run["iteration"] == 3


def test_overwrite_edges_keep_one_run_whole(tmp_path, corpus_file, capsys, monkeypatch):
    """(review) A resume into another run's directory with --overwrite sets that run aside as a
    new run does (a resume that diverged left the other run's checkpoint beside its own log);
    a save a Ctrl-C cuts short once its file is in place is kept, the old run removed (the old
    one was put back over it); a run that saved nothing leaves no picture of its own beside the
    old run's files (an old run without one); --init-from a checkpoint set aside in --out is
    refused as the checkpoint itself is."""
    from fastrnn.model import CharRNN
    common = ["--data", corpus_file, *SMALL, "--sample-every", "0"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main([*common, "--iterations", "10", "--eval-every", "5", "--out", str(a)]) == 0
    assert train.main([*common, "--iterations", "6", "--eval-every", "3", "--out", str(b)]) == 0
    names = ("checkpoint.npz", "best.npz", "metrics.jsonl")
    old = {name: (b / name).read_bytes() for name in names}
    assert train.main(["--resume", str(a / "checkpoint.npz"), "--iterations", "12",
                       "--learning-rate", "1e30", "--out", str(b), "--overwrite"]) == 1
    assert {name: (b / name).read_bytes() for name in names} == old
    assert not list(b.glob("*.overwritten"))

    save = checkpoint.save

    def then_ctrl_c(path, ckpt):  # (the file renamed into place, then the interrupt)
        save(path, ckpt)
        raise KeyboardInterrupt("quit at once, without saving")

    monkeypatch.setattr(checkpoint, "save", then_ctrl_c)
    assert train.main([*common, "--iterations", "4", "--eval-every", "0", "--out", str(b),
                       "--overwrite"]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    saved = [p.name for p in b.iterdir() if p.name.endswith(".npz")]
    assert len(saved) == 1 and not list(b.glob("*.overwritten"))
    assert checkpoint.load(b / saved[0]).run["iteration"] < 6  # (the new run's)

    c = tmp_path / "c"  # an old run with no loss.png
    assert train.main([*common, "--iterations", "6", "--eval-every", "3", "--out", str(c)]) == 0
    (c / "loss.png").unlink(missing_ok=True)
    drawn = []
    monkeypatch.setattr(train.metrics, "plot", lambda path, records: (
        drawn.append(path), Path(path).write_bytes(b"png"))[1] and None)
    assert train.main([*common, "--iterations", "6", "--eval-every", "1", "--val-fraction",
                       "0", "--learning-rate", "1e30", "--out", str(c), "--overwrite"]) == 1
    assert drawn and not (c / "loss.png").exists()
    monkeypatch.undo()

    for name in names:  # (an overwrite killed before it saved, as it left them)
        (c / name).rename(c / f"{name}.overwritten")
    capsys.readouterr()
    rc = train.main(["--init-from", str(c / "checkpoint.npz.overwritten"), "--data", corpus_file,
                     "--iterations", "2", "--out", str(c), "--overwrite"])
    assert_usage_error(rc, capsys, f"--init-from {c / 'checkpoint.npz'} is in --out {c}")
    assert (c / "checkpoint.npz").exists() and not (c / "checkpoint.npz.overwritten").exists()
    del CharRNN


@pytest.fixture
def saved_run(tmp_path, corpus_file):
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--out", str(tmp_path)]) == 0
    return tmp_path / "checkpoint.npz"


def _newer(path):
    rewrite_meta(path, lambda meta, arrays: meta.update(version=checkpoint.VERSION + 1))


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.unlink(), "no such checkpoint"),
    (lambda p: p.write_bytes(b"\x00" * 100), "corrupt or truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "corrupt or truncated"),
    (_newer, "written by a newer fastrnn"),
])
def test_resume_from_an_unusable_checkpoint(saved_run, capsys, damage, fragment):
    damage(saved_run)
    rc = train.main(["--resume", str(saved_run), "--iterations", "40"])
    assert_usage_error(rc, capsys, "cannot resume", str(saved_run), fragment)
    rc, _ = run_sample([str(saved_run)])
    assert_usage_error(rc, capsys, str(saved_run), fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(position=10 ** 9), "its position 1000000000 lies beyond its own text"),
    (lambda m: m.update(step=10 ** 6), "step 1000000 exceeds its iteration count"),
    (lambda m: m["run"].update(rng={"bit_generator": "nope"}), "run.rng is not a random"),
    (lambda m: m["run"].update(loss_stride=3), "loss_stride is 3, not an integer power of two "
                                               "of at most 1 for its 20 iterations"),
    (lambda m: m["run"].update(loss_stride=2.0), "loss_stride is 2.0, not an integer"),
    (lambda m: m["run"].update(loss_stride=[0] * 10 ** 5), "loss_stride is [0, 0, 0"),
    (lambda m: m["run"].update(loss_stride=1 << 200), "loss_stride is 1606938"),
    (lambda m: m["run"].update(loss_stride=4), "loss_stride is 4, not an integer"),
])
def test_resume_refuses_fields_inconsistent_with_the_run(saved_run, capsys, change, fragment):
    """Fields checked against the run and its text (position, update count, generator state):
    exit 2, one line, the checkpoint untouched."""
    path = saved_run
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    before = path.read_bytes()
    rc = train.main(["--resume", str(path), "--iterations", "200", "--quiet"])
    err = capsys.readouterr().err
    assert len(err) < 500, err[:1000]  # (a field a list of millions: cut short)
    print(err, file=sys.stderr, end="")
    assert_usage_error(rc, capsys, "cannot resume", fragment)
    assert path.read_bytes() == before


def test_resume_with_other_text_or_model_is_refused_and_changes_nothing(saved_run, tmp_path, capsys,
                                                                       corpus_file):
    before = saved_run.read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("Ünter the ~ king\n" * 5)
    rc = train.main(["--resume", str(saved_run), "--data", str(other), "--iterations", "40"])
    assert_usage_error(rc, capsys, str(other), "characters that the checkpoint's vocabulary lacks: '~', 'Ü'")
    rc = train.main(["--resume", str(saved_run), "--hidden-size", "50", "--iterations", "40"])
    assert_usage_error(rc, capsys, "cannot resume with other settings",
                       "--hidden-size 50 (the checkpoint has 24)")
    rc = train.main(["--resume", str(saved_run), "--optimizer", "adam", "--iterations", "40"])
    assert_usage_error(rc, capsys, "cannot resume with other settings",
                       "--optimizer adam (the checkpoint has adagrad)")
    rc = train.main(["--resume", str(saved_run), "--batch-size", "4", "--iterations", "40"])
    assert_usage_error(rc, capsys, "cannot resume with other settings",
                       "--batch-size 4 (the checkpoint has 1)")
    rc = train.main(["--resume", str(saved_run), "--val-fraction", "0.2", "--iterations", "40"])
    assert_usage_error(rc, capsys, "cannot resume with --val-fraction 0.2: the checkpoint held "
                                   "out 0.1 of its text; on another text (--data) it may change")
    for fraction in ("0.2", "0.97", "0.001"):  # (refused before a word on its split so)
        rc = train.main(["--resume", str(saved_run), "--val-fraction", fraction, "--iterations",
                         "40", "--data", corpus_file])
        assert_usage_error(rc, capsys, f"cannot resume with --val-fraction {fraction}: the "
                                       f"checkpoint held out 0.1 of its text; {corpus_file} is "
                                       f"the text the run trained on")
    rc = train.main(["--resume", str(saved_run), "--dropout", "0.5", "--iterations", "40"])
    assert_usage_error(rc, capsys, "--dropout 0.5 applies between layers: the checkpoint's "
                                   "model has one layer")
    assert saved_run.read_bytes() == before


def test_a_resumed_run_may_change_its_learning_rate(saved_run, corpus_file, capsys):
    """--learning-rate on --resume (char-rnn's users lower it as a run levels off) was refused as
    "a different model": it is a setting read at every call, and it now continues the run
    with the new rate, its weights, optimizer state and position (the same numbers as the
    model continued with that rate from Python), and is kept in the checkpoint."""
    start = checkpoint.load(saved_run)
    rc = train.main(["--resume", str(saved_run), "--learning-rate", "0.03", "--iterations", "30",
                     "--eval-every", "10"])
    assert rc == 0
    assert "note: --learning-rate 0.03 replaces the checkpoint's 0.1 from iteration 20 on" in \
        capsys.readouterr().out
    ckpt = checkpoint.load(saved_run)
    assert ckpt.config.learning_rate == 0.03 and ckpt.run["metrics"][-1]["learning_rate"] == 0.03
    model = start.to_model()
    model.config = dataclasses.replace(model.config, learning_rate=0.03)
    model.train(load(corpus_file).train, 10)
    np.testing.assert_array_equal(ckpt.to_model().weights.flat, model.weights.flat)
    np.testing.assert_array_equal(ckpt.state, model.state)
    # resumed again without it: the checkpoint's rate, said nowhere
    assert train.main(["--resume", str(saved_run), "--iterations", "40", "--quiet"]) == 0
    assert checkpoint.load(saved_run).config.learning_rate == 0.03


def test_grad_clip_is_saved_said_and_may_change_on_resume(tmp_path, corpus_file, capsys):
    """--grad-clip is the model's clip: said in the run's first line, saved, kept by a resume,
    and, given anew there (as --learning-rate), the clip from there on: the same numbers as
    the model continued with it from Python."""
    out = tmp_path / "run"
    assert train.main(["--data", corpus_file, *SMALL[:-1], "--iterations", "20",
                       "--grad-clip", "0.5", "--out", str(out)]) == 0
    assert re.search(r"^training on .* float64 grad clip 0\.5 on numba$",
                     capsys.readouterr().out, re.M)
    path = out / "checkpoint.npz"
    start = checkpoint.load(path)
    assert start.config.grad_clip == 0.5
    assert train.main(["--resume", str(path), "--grad-clip", "0", "--iterations", "30"]) == 0
    printed = capsys.readouterr().out
    assert "note: --grad-clip 0 replaces the checkpoint's 0.5 from iteration 20 on\n" in printed
    assert re.search(r"^training on .* float64 no grad clip on numba, from iteration 20$",
                     printed, re.M), printed
    ckpt = checkpoint.load(path)
    assert ckpt.config.grad_clip == 0
    model = start.to_model()
    model.config = dataclasses.replace(model.config, grad_clip=0)
    model.train(load(corpus_file).train, 10)
    np.testing.assert_array_equal(ckpt.to_model().weights.flat, model.weights.flat)
    clipped = start.to_model()
    clipped.train(load(corpus_file).train, 10)
    assert not np.array_equal(clipped.weights.flat, model.weights.flat), "the clip mattered"
    # resumed again without it: the checkpoint's clip, said nowhere
    assert train.main(["--resume", str(path), "--iterations", "40"]) == 0
    printed = capsys.readouterr().out
    assert "--grad-clip" not in printed and "no grad clip" in printed
    assert checkpoint.load(path).config.grad_clip == 0
    # a clip the checkpoint's float32 cannot hold: the dtype named as the checkpoint's
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "5", "--dtype", "float32",
                       "--out", str(tmp_path / "f32")]) == 0
    rc = train.main(["--resume", str(tmp_path / "f32" / "checkpoint.npz"), "--grad-clip",
                     "1e300", "--iterations", "10"])
    assert_usage_error(rc, capsys, "--grad-clip 1e+300 is infinite in float32 (the checkpoint's "
                                   "dtype): give 0 for no clipping")


def test_a_new_learning_rate_on_resume_is_the_schedules_base(tmp_path, corpus_file, capsys):
    """With a decay, --learning-rate on --resume is the base the schedule decays (as for a new
    run), not the rate from there on: the note says the rate it makes there."""
    out = tmp_path / "run"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "20", "--lr-decay", "0.5",
                       "--lr-decay-every", "10", "--out", str(out)]) == 0
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--learning-rate", "0.08",
                       "--iterations", "30", "--eval-every", "10"]) == 0
    assert "note: --learning-rate 0.08 replaces the checkpoint's 0.1 from iteration 20 on (the " \
           "schedule's base: its rate there is 0.02)\n" in capsys.readouterr().out
    records = checkpoint.load(out / "checkpoint.npz").run["metrics"]
    assert records[-1]["iteration"] == 30 and records[-1]["learning_rate"] == 0.08 * 0.5 ** 3


def test_a_run_that_trains_no_iteration_logs_no_training_loss(tmp_path, corpus_file, capsys):
    """A run stopped before its first iteration (a budget spent compiling) validates and logs:
    its training loss is null (it logged an untrained model's ln V, and a fine-tuned run's,
    whose smoothed loss starts at its first chunk, failed with a TypeError)."""
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--out",
                       str(tmp_path / "a")]) == 0
    for extra in ([], ["--init-from", str(tmp_path / "a" / "checkpoint.npz")]):
        out = tmp_path / f"b{len(extra)}"
        assert train.main(["--data", corpus_file, *SMALL[:-1], "--time-budget", "1e-9",
                           "--out", str(out), *extra]) == 0
        printed = capsys.readouterr().out
        assert re.search(r"\niteration 0 \(epoch 0.00\): validation [0-9.]+ nats/char", printed), \
            printed
        record = checkpoint.load(out / "checkpoint.npz").run["metrics"][-1]
        assert record["iteration"] == 0 and record["train_loss"] is None
        assert record["train_bpc"] is None and record["val_loss"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["--temperature", "0"], "--temperature: 0 is not a positive finite number; --greedy takes "
                             "the most likely character (see --help)"),
    (["--temperature", "-1"], "--temperature: -1 is not a positive finite number"),
    (["--temperature", "inf"], "--temperature: inf is not a positive finite number"),
    (["--length", "-5"], "--length: -5 is not an integer >= 0"),
    (["--prime", "the ë ☃"], "--prime has characters the model never saw: 'ë', '☃'"),
    (["--prime", ""], "--prime is empty"),
    (["--dtype", "int8"], "invalid choice: 'int8'"),
    (["--top-k", "-1"], "--top-k: -1 is not an integer >= 0"),
    (["--top-p", "0"], "argument --top-p: 0 is not in (0, 1] (see --help)"),
    (["--top-p", "1.5"], "argument --top-p: 1.5 is not in (0, 1] (see --help)"),
    (["--top-p", "nan"], "argument --top-p: nan is not in (0, 1] (see --help)"),
    (["--temprature", "0.5"], "unrecognized arguments: --temprature 0.5; did you mean "
                              "--temperature?"),
    # options that change nothing with --greedy (taken without a word before)
    (["--greedy", "--temperature", "5"], "--greedy takes the most likely character: "
                                         "--temperature would change nothing (drop it, or "
                                         "--greedy)"),
    (["--greedy", "--top-k", "3", "--top-p", "0.5"], "--top-k and --top-p would change nothing "
                                                     "(drop them, or --greedy)"),
    (["--greedy", "--num-samples", "2"], "--greedy writes the same text every time: "
                                         "--num-samples 2 would repeat it (drop one of them)"),
    (["--top-k", "1", "--num-samples", "3"], "--top-k 1 writes the same text every time: "
                                             "--num-samples 3 would repeat it"),
    (["--length", "0", "--num-samples", "2"], "--length 0 writes the same text every time"),
    (["--top-p", "0.001", "--num-samples", "2"], "--top-p 0.001 (under 1/"),
    (["--top-p", "0.001", "--num-samples", "2"], ": only the most likely character) writes the "
                                                 "same text every time: --num-samples 2 would "
                                                 "repeat it"),
    (["-sample", "0", "--greedy"], "unrecognized arguments: -sample 0; -sample is --greedy, "
                                   "given already: drop it (see --help)\n"),
    (["--len", "9", "--max_new_tokens", "9"], "--max_new_tokens is --length, given already: "
                                              "drop it (see --help)\n"),
    (["--num-samples", "0"], "argument --num-samples: 0 is not"),
    (["--num_samples", "2"], "did you mean --num-samples?"),
    (["--start_text", "a"], "unrecognized arguments: --start_text a; did you mean --prime?"),
    (["--start=FILE:prompt.txt"], "unrecognized arguments: --start=FILE:prompt.txt; did you "
                                  "mean --prime-file?"),
    (["--start", "FILE:prompt.txt"], "did you mean --prime-file?"),
    # char-rnn's sample.lua options: each named, not only the first
    (["-length", "50", "-primetext", "x", "-sample", "0"],
     "unrecognized arguments: -length 50 -primetext x -sample 0; did you mean --length (for "
     "-length) and --prime (for -primetext) and --greedy (for -sample)? (see --help)\n"),
    # (-sample 1 draws, as the command does: not --greedy)
    (["-sample", "1"], "unrecognized arguments: -sample 1; -sample 1 (char-rnn's: draw each "
                       "character from the probabilities) is what this command does without "
                       "--greedy: drop it (see --help)\n"),
    (["-sample=1", "--lenght", "5"], "unrecognized arguments: -sample=1 --lenght 5; did you mean "
                                     "--length?; -sample 1 (char-rnn's: draw"),
    (["-sample", "2"], "unrecognized arguments: -sample 2 (see --help)\n"),
    (["--checkpoint", "--lenght", "5"], "unrecognized arguments: --checkpoint --lenght 5; did "
                                        "you mean --length?; CHECKPOINT is given without an "
                                        "option name (python -m fastrnn.sample CHECKPOINT)"),
    # (a shell's '\n' is two characters: "'\\\\'" alone was said, and no why)
    (["--prime", "the \\n"], "; --prime takes its text as it is: \\n, \\t and \\r are a backslash "
                             "and a letter, not a line break, a tab or a carriage return (in "
                             "bash, --prime $'the \\n' gives them)\n"),
    # (no example where the model has not the character either: no tab in its text)
    (["--prime", "the \\t"], "; --prime takes its text as it is: \\n, \\t and \\r are a "
                             "backslash and a letter, not a line break, a tab or a carriage "
                             "return\n"),
    (["--prime", "-x"], "argument --prime: expected one argument (-x reads as an option: "
                        "write --prime=-x)"),
    (["--prime", "--", "hello"], "argument --prime: expected one argument (-- reads as the end "
                                 "of the options, not as its value)"),
    (["--checkpoint"], "unrecognized arguments: --checkpoint; CHECKPOINT is given without an "
                       "option name (python -m fastrnn.sample CHECKPOINT)"),
    (["--init_from", "resume"], "unrecognized arguments: --init_from resume; CHECKPOINT is "
                                "given without an option name (python -m fastrnn.sample "
                                "CHECKPOINT)"),  # (nanoGPT's)
    (["--out_dir"], "unrecognized arguments: --out_dir; CHECKPOINT is given without an option"),
])
def test_bad_sample_options(trained, capsys, args, fragment):
    rc, text = run_sample([trained, *args])
    assert_usage_error(rc, capsys, fragment)
    assert text == ""


def test_a_positional_given_as_an_option_with_its_value_is_named(trained, capsys):
    """``--checkpoint=X`` leaves CHECKPOINT missing, the error argparse gives first: the hint
    follows it, as it does ``--checkpoint X`` (above); an option misspelt, likewise."""
    rc, text = run_sample([f"--checkpoint={trained}"])
    assert_usage_error(rc, capsys, "the following arguments are required: CHECKPOINT; "
                                   "CHECKPOINT is given without an option name (python -m "
                                   "fastrnn.sample CHECKPOINT)")
    assert score.main([trained, "--file=x.txt"], out=io.StringIO()) == 2
    assert capsys.readouterr().err == (
        "fastrnn.score: error: the following arguments are required: FILE; FILE is given "
        "without an option name (python -m fastrnn.score CHECKPOINT FILE...) (see --help)\n")
    for files, first in (["-x.txt"], "the following arguments are required: FILE;"), \
            ([trained, "-x.txt"], "unrecognized arguments: -x.txt;"):  # (a file named so)
        assert score.main([trained, *files], out=io.StringIO()) == 2
        assert capsys.readouterr().err == (
            f"fastrnn.score: error: {first} -x.txt reads as an option: a name that starts with - "
            f"is given as ./-x.txt (see --help)\n")
    # no hint where the words are options (--temp abbreviates --temperature), a value is left
    # out before one, or no more names are taken (sample's one checkpoint)
    for argv, said in (["--temp", "0.5"], "the following arguments are required: CHECKPOINT"), \
            ([trained, "--prime", "--length", "5"], "argument --prime: expected one argument"), \
            ([trained, "-x", "5"], "unrecognized arguments: -x 5"):
        rc, text = run_sample(argv)
        assert rc == 2 and capsys.readouterr().err == (f"fastrnn.sample: error: {said} (see "
                                                       f"--help)\n")
    assert score.main(["--jsn"], out=io.StringIO()) == 2
    assert capsys.readouterr().err == (
        "fastrnn.score: error: the following arguments are required: CHECKPOINT, FILE; did you "
        "mean --json? (see --help)\n")


def test_an_empty_checkpoint_or_file_path_is_refused(trained, capsys):
    """Not read as the current directory ("." is a directory)."""
    rc, text = run_sample([""])
    assert_usage_error(rc, capsys, "argument CHECKPOINT: an empty path")
    for argv, which in (["", "x.txt"], "CHECKPOINT"), ([trained, ""], "FILE"):
        assert score.main(argv, out=io.StringIO()) == 2
        assert capsys.readouterr().err == (f"fastrnn.score: error: argument {which}: an empty "
                                           f"path (see --help)\n")


@pytest.mark.parametrize("args, fragment", [
    (["--batch_size", "16"], "unrecognized arguments: --batch_size 16; did you mean --batch-size?"),
    (["-seq_length", "50"], "unrecognized arguments: -seq_length 50; did you mean --seq-length?"),
    (["--rnn_size=128"], "unrecognized arguments: --rnn_size=128; did you mean --hidden-size?"),
    (["-grad_clip", "1"], "unrecognized arguments: -grad_clip 1; did you mean --grad-clip?"),
    (["--Batch_Size", "16"], "did you mean --batch-size?"),
    (["--max_iters", "5"], "did you mean --iterations?"),
    (["--max-iters", "5"], "did you mean --iterations?"),
    (["--Max-Iters=5"], "did you mean --iterations?"),
    (["-rnn_size", "128", "-max_epochs", "2", "--rnn_size", "3"],
     "unrecognized arguments: -rnn_size 128 -max_epochs 2 --rnn_size 3; did you mean "
     "--hidden-size (for -rnn_size) and --epochs (for -max_epochs)? (see --help)\n"),
    (["--lr", "0.01"], "ambiguous option: --lr could match --lr-decay, --lr-decay-every; did you "
                       "mean --learning-rate?"),
    (["--no-such-thing", "3"], "unrecognized arguments: --no-such-thing 3 (see --help)"),
    (["--hiden-size", "3"], "unrecognized arguments: --hiden-size 3; did you mean "
                            "--hidden-size?"),
    (["--itterations=3"], "did you mean --iterations?"),
    (["-learning_rate_decay", "0.97"], "did you mean --lr-decay?"),   # char-rnn's
    (["-lr_decay_factor", "0.5"], "did you mean --lr-decay?"),        # torch-rnn's
    (["-lr_decay_every", "5"], "did you mean --lr-decay-every?"),
    (["-val_frac", "0.1"], "did you mean --val-fraction?"),                  # char-rnn's
    (["-model_type", "lstm"], "did you mean --cell?"),                       # torch-rnn's
    (["--restore", "x.npz"], "unrecognized arguments: --restore x.npz; did you mean --resume?"),
    (["--init_from=resume"], "--init_from=resume; did you mean --resume? (see"),  # nanoGPT's
    (["--init_from", "x.npz"], "--init_from x.npz; did you mean --init-from? (see"),
    # (argparse takes --checkpoint for --checkpoint-every)
    (["--checkpoint", "out/checkpoint.npz"], "argument --checkpoint-every: 'out/checkpoint.npz' "
                                             "is not an integer (--checkpoint abbreviates "
                                             "--checkpoint-every here: did you mean --resume?)"),
    (["--checkpoint-every", "x"], "argument --checkpoint-every: 'x' is not an integer (see "),
    (["--checkpoint", "0.5"], "argument --checkpoint-every: '0.5' is not an integer (see "),
    (["--checkpoint=-5"], "argument --checkpoint-every: -5 is not an integer >= 0 (see "),
    (["--init_from=scratch"], "unrecognized arguments: --init_from=scratch; --init_from scratch "
                              "(nanoGPT's: a new model) is what this command does without "
                              "--init-from: drop it (see --help)\n"),
    (["--init-from", "resume"], "cannot fine-tune: resume: no such checkpoint (nanoGPT's "
                                "--init_from=resume is --resume OUT/checkpoint.npz here)"),
    # PyTorch's word_language_model example's (--bptt, --nhid, --clip), and other names
    (["--bptt", "50", "--nhid=64", "--layers", "2", "--clip", "1", "--num-epochs", "2"],
     "unrecognized arguments: --bptt 50 --nhid=64 --layers 2 --clip 1 --num-epochs 2; did you "
     "mean --seq-length (for --bptt) and --hidden-size (for --nhid) and --num-layers (for "
     "--layers) and --grad-clip (for --clip) and --epochs (for --num-epochs)? (see --help)\n"),
    (["--n_embd", "64"], "unrecognized arguments: --n_embd 64; did you mean --hidden-size?"),
    # the sampler's options, given to train (its samples: temperature 1, all the characters)
    (["--temperature", "0.5"], "unrecognized arguments: --temperature 0.5; --temperature is "
                               "python -m fastrnn.sample's, which samples a checkpoint "
                               "(OUT/checkpoint.npz): the samples training prints are drawn "
                               "from all the characters at temperature 1 (see --help)\n"),
    (["-top_k", "5", "--greedy", "--bptt=5", "--prime", "x"],
     "unrecognized arguments: -top_k 5 --greedy --bptt=5 --prime x; did you mean --seq-length?; "
     "-top_k and --greedy are python -m fastrnn.sample's, which samples a checkpoint "
     "(OUT/checkpoint.npz): the samples training prints are drawn from all the characters at "
     "temperature 1; --prime is python -m fastrnn.sample's, which samples a checkpoint "
     "(OUT/checkpoint.npz) (see --help)\n"),
    (["--length", "100"], "unrecognized arguments: --length 100; did you mean --sample-length?"),
    (["--nlayers", "2"], "unrecognized arguments: --nlayers 2; did you mean --num-layers?"),
    # abbreviations with a typo, and other names (QA's)
    (["--hiden", "5"], "unrecognized arguments: --hiden 5; did you mean --hidden-size?"),
    (["--iters", "5"], "unrecognized arguments: --iters 5; did you mean --iterations?"),
    (["--steps", "5"], "unrecognized arguments: --steps 5; did you mean --iterations?"),
    (["--datafile", "x"], "unrecognized arguments: --datafile x; did you mean --data?"),
    (["--dropot", "0.5"], "unrecognized arguments: --dropot 0.5; did you mean --dropout?"),
    (["--xyzzy-iters", "5"], "unrecognized arguments: --xyzzy-iters 5 (see --help)"),
    (["--smaple", "5"], "unrecognized arguments: --smaple 5 (see --help)"),  # (-every or
    (["--sample", "5"], "ambiguous option: --sample could match --sample-every, "  # -length?)
                        "--sample-length (see --help)"),
    (["--temp", "0.5"], "unrecognized arguments: --temp 0.5; --temp is python -m "
                        "fastrnn.sample's, which samples a checkpoint"),
])
def test_options_spelled_as_other_tools_spell_them_are_named(tmp_path, capsys, args, fragment):
    """char-rnn, torch-rnn and nanoGPT spell their options with underscores, one dash, or
    other names: the error names this command's option (or says nothing more)."""
    rc = train.main([*args, "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["sample", "score"])
def test_other_commands_options_given_to_sample_or_score_are_named(tmp_path, capsys, command):
    """(QA) sample and score given train's options (score, sample's too) say whose they are,
    as train given sample's does; --resume still reads as the checkpoint, and --data as
    score's FILE, given with an option name."""
    main = {"sample": lambda argv: run_sample(argv)[0],
            "score": lambda argv: score.main(argv, out=io.StringIO())}[command]
    files = ["x.npz"] + ["y.txt"] * (command == "score")
    rc = main([*files, "--iterations", "5", "--hidden-size=8"])
    assert_usage_error(rc, capsys, "unrecognized arguments: --iterations 5 --hidden-size=8; "
                                   "--iterations and --hidden-size are python -m fastrnn.train's, "
                                   "which trains a model (--resume CHECKPOINT trains one on) "
                                   "(see --help)\n")
    rc = main([*files, "--hidden", "5"])  # (an abbreviation, as train takes it)
    assert_usage_error(rc, capsys, "unrecognized arguments: --hidden 5; --hidden is python -m "
                                   "fastrnn.train's")
    rc = main(["--resume", *files])
    assert_usage_error(rc, capsys, "CHECKPOINT is given without an option name")
    rc = main([*files, "--prompt", "x"])
    assert_usage_error(rc, capsys, "did you mean --prime?" if command == "sample" else
                       "unrecognized arguments: --prompt x; --prompt is python -m "
                       "fastrnn.sample's, which generates text from a checkpoint (see --help)")
    if command == "score":  # (sample's options named as sample's; a text named as FILE)
        rc = main([*files, "--length", "5", "--temp", "1"])
        assert_usage_error(rc, capsys, "unrecognized arguments: --length 5 --temp 1; --length "
                                       "and --temp are python -m fastrnn.sample's, which "
                                       "generates text from a checkpoint (see --help)\n")
        rc = main(["x.npz", "--data", "y.txt"])
        assert_usage_error(rc, capsys, "FILE is given without an option name (python -m "
                                       "fastrnn.score CHECKPOINT FILE...)")


def test_a_checkpoint_given_as_the_text_is_named(tmp_path, capsys):
    """--data given a checkpoint (a zip archive) says how a checkpoint is given, not which
    --encoding might read its bytes (with one that reads any byte, it trained on them)."""
    ckpt = tmp_path / "my run" / "checkpoint.npz"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    for extra in ([], ["--encoding", "latin-1"]):
        rc = train.main(["--data", str(ckpt), "--out", str(tmp_path / "out"), *extra])
        assert_usage_error(rc, capsys, f"--data {ckpt} is a zip archive (an .npz checkpoint?), "
                                       f"not a text: --resume '{ckpt}' continues its run, "
                                       f"--init-from '{ckpt}' --data TEXT fine-tunes it on a text")
    assert not (tmp_path / "out").exists()
    book = tmp_path / "book.epub"  # (another zip: no advice on checkpoints)
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("chapter1.xhtml", "<p>The king</p>")
    rc = train.main(["--data", str(book), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"--data {book} is a zip archive, not a text: unzip it and "
                                   f"give its text\n")
    rc = score.main([str(ckpt), str(book)], out=io.StringIO())  # (fails on the fake checkpoint)
    assert rc == 2 and "is an .npz archive: the checkpoint comes first" not in \
        capsys.readouterr().err


def test_a_directory_for_a_file_names_what_it_holds(tmp_path, corpus_file, capsys,
                                                    monkeypatch):
    """char-rnn keeps its texts as data/NAME/input.txt, and a run's --out holds its
    checkpoints: a directory given for either names the file meant."""
    data = tmp_path / "data" / "tiny"
    data.mkdir(parents=True)
    (data / "input.txt").write_text("hello world\n" * 100)
    rc = train.main(["--data", str(data), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"{data} is a directory, not a text file (did you mean "
                                   f"{data / 'input.txt'}?)")
    rc = train.main(["--data", str(data.parent), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"{data.parent} is a directory, not a text file\n")
    # a folder of texts, as nanoGPT's and char-rnn's users keep theirs: how to make one
    texts = tmp_path / "my texts"
    texts.mkdir()
    (texts / "notes.md").write_text("not one\n")
    (texts / "a.txt").write_text("hello world\n")
    rc = train.main(["--data", str(texts), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"{texts} is a directory, not a text file (did you mean "
                                   f"{texts / 'a.txt'}?)\n")
    (texts / "C.TXT").write_text("not read by cat *.txt\n")
    (texts / ".hidden.txt").write_text("nor this\n")
    rc = train.main(["--data", str(texts), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"(did you mean {texts / 'a.txt'}?)\n")
    (texts / "b.txt").write_text("hello again\n")
    rc = train.main(["--data", str(texts), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"{texts} is a directory, not a text file (it holds 2 .txt "
                                   f"files: to train on them all, join them into one, as cat "
                                   f"'{texts}'/*.txt > all.txt does)\n")
    dashed = tmp_path / "-texts"  # (given as -texts: cat would read -texts/*.txt as options)
    texts.rename(dashed)
    monkeypatch.chdir(tmp_path)
    rc = train.main(["--data=-texts", "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, "as cat ./-texts/*.txt > all.txt does)\n")
    real = Path.is_file  # (a directory that cannot be searched: no traceback)
    with monkeypatch.context() as m:
        m.setattr(Path, "is_file", lambda p: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied")) if p.name == "input.txt" else real(p))
        rc = train.main(["--data", str(dashed), "--out", str(tmp_path / "out")])
    assert_usage_error(rc, capsys, f"{dashed} is a directory, not a text file\n")
    out = tmp_path / "run"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--out",
                       str(out)]) == 0
    rc, _ = run_sample([str(out)])
    assert_usage_error(rc, capsys, f"{out} is a directory, not a checkpoint (it holds "
                                   f"{out / 'checkpoint.npz'} and {out / 'best.npz'})")
    rc = train.main(["--resume", str(tmp_path), "--iterations", "20"])
    assert_usage_error(rc, capsys, f"cannot resume: {tmp_path} is a directory, not a "
                                   f"checkpoint\n")


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--hidden-size", "--seq-length", "--learning-rate", "--iterations",
                   "--time-budget", "--backend", "--dtype", "--seed", "--val-fraction", "--eval-every",
                   "--sample-every", "--sample-length", "--out", "--resume", "--quiet", "--encoding",
                   "--cell", "--optimizer", "--batch-size", "--threads", "--checkpoint-every",
                   "--val-streams", "--init-from", "--lr-decay", "--lr-decay-every", "--epochs",
                   "--num-layers", "--dropout", "--overwrite"):
        assert option in text


def test_the_command_module_and_the_drop_in_sampler_are_separate():
    import fastrnn
    import fastrnn.sample  # noqa: F401  (sets the package attribute to the module)
    from fastrnn import dropin
    assert fastrnn.sample.main is sample_main and fastrnn.sample.PROG == "fastrnn.sample"
    rng_params = np.random.default_rng(0)
    params = [rng_params.standard_normal(s) * 0.1 for s in ((8, 5), (8, 8), (5, 8), (8, 1), (5, 1))]
    h = np.zeros((8, 1))
    with pytest.raises(TypeError, match="is fastrnn.dropin.sample"):  # the command, called as
        fastrnn.sample(h, 1, 20, *params)                             # the sampler: named
    got = dropin.sample(h, 1, 20, *params, rng=np.random.default_rng(3))
    expected, _ = reference.sample(reference.weights(*params), np.zeros((1, 1, 1, 8)), 1,
                                   np.random.default_rng(3).random(20))
    assert got == expected


def test_kernels_compiled_now_and_loaded_from_the_cache_give_the_same_bits(tmp_path, corpus_file):
    # The first process compiles every kernel into an empty cache; the second loads them.
    # Training, validation and sampling must agree to the bit, or a resumed run would drift.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    outputs = []
    for name in ("compiled", "cached"):
        for batch in ("1", "3"):
            args = [sys.executable, "-m", "fastrnn.train", "--data", corpus_file, "--hidden-size",
                    "16", "--seq-length", "10", "--iterations", "300", "--eval-every", "100",
                    "--sample-every", "150", "--sample-length", "80", "--batch-size", batch,
                    "--out", str(tmp_path / name / batch)]
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout.replace(str(tmp_path / name), "OUT"))
    # The first process says that it compiles; a process that loads everything from the cache
    # does not. Apart from those lines, the two runs print the same.
    announced = [[line for line in out.splitlines()
                  if line.startswith(("compiling ", "compiled in"))] for out in outputs]
    assert announced[0] and announced[1], "the compiling processes did not say so"
    for kernels in ("training", "validation", "sampling"):  # (each set named)
        assert any(line.startswith(f"compiling {kernels} kernels for float64")
                   for line in announced[0])
    assert announced[2:] == [[], []], "the processes that load from the cache compiled"
    outputs = ["".join(line for line in out.splitlines(keepends=True)
                       if not line.startswith(("compiling ", "compiled in")))
               for out in outputs]
    assert outputs[:2] == outputs[2:]
    for batch in ("1", "3"):
        same_state(checkpoint.load(tmp_path / "compiled" / batch / "checkpoint.npz"),
                   checkpoint.load(tmp_path / "cached" / batch / "checkpoint.npz"))


def test_python_m_fastrnn_names_its_commands_and_runs_them(tmp_path, capsys):
    """``python -m fastrnn`` alone names the three commands (exit 2, a usage error), with
    --help too (exit 0: it exited 1 either way), and ``python -m fastrnn sample ...`` runs
    ``python -m fastrnn.sample ...`` (it printed the names)."""
    import fastrnn
    from fastrnn import __main__ as entry
    assert entry.main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: python -m fastrnn.train [--help]") and err == ""
    assert "\n  sample  generate text from a checkpoint\n" in out  # (each said, QA)
    assert entry.main([]) == 2 and capsys.readouterr().err.startswith("usage: ")
    assert entry.main(["bogus"]) == 2
    assert "fastrnn: error: unknown command 'bogus': choose a command, one of train, sample, " \
           "score" in capsys.readouterr().err
    assert entry.main(["--version"]) == 0
    assert capsys.readouterr().out == f"fastrnn {fastrnn.__version__}\n"
    assert entry.main(["--verbose"]) == 2
    assert "fastrnn: error: unknown option '--verbose'" in capsys.readouterr().err
    assert entry.main(["sample", str(tmp_path / "none.npz")]) == 2
    assert "fastrnn.sample: error: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        entry.main(["score", "--help"])
    assert e.value.code == 0 and "usage: python -m fastrnn.score" in capsys.readouterr().out


def test_the_text_is_named_as_given_and_recorded_resolved(tmp_path, corpus_file, capsys,
                                                         monkeypatch):
    """(QA) "training on" names the text as the command line gave it, as the warnings do (it
    gave the path resolved, symbolic links followed); the checkpoint records it resolved, for a
    resume run elsewhere to find, and a resume names it so."""
    monkeypatch.chdir(tmp_path)
    Path("link.txt").symlink_to(corpus_file)
    assert train.main(["--data", "link.txt", *SMALL[:-1], "--iterations", "5", "--eval-every",
                       "0", "--sample-every", "0", "--out", "out"]) == 0
    assert capsys.readouterr().out.startswith("training on link.txt: ")
    assert checkpoint.load(tmp_path / "out" / "checkpoint.npz").run["data"]["path"] == \
        str(Path(corpus_file).resolve())
    assert train.main(["--resume", "out/checkpoint.npz", "--iterations", "6"]) == 0
    assert f"training on {Path(corpus_file).resolve()}: " in capsys.readouterr().out


def test_paths_with_line_breaks_are_one_line_each(tmp_path, corpus_file, capsys):
    """(a text or --out whose name holds a line break split the opening and closing lines in
    two) A path's line breaks are written as \\n in the run's lines on stdout; a sample's own
    lines stay lines."""
    text = tmp_path / "two\nlines\x1b[31m.txt"
    text.write_bytes(Path(corpus_file).read_bytes())
    out = tmp_path / "out\rdir\x9b"
    assert train.main(["--data", str(text), *SMALL[:-1], "--iterations", "10", "--eval-every",
                       "10", "--sample-every", "10", "--sample-length", "200",
                       "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # (and its other control characters escaped: an escape sequence recoloured the terminal)
    assert any(line.startswith(f"training on {tmp_path}/two\\nlines\\x1b[31m.txt: ")
               for line in lines)
    assert lines[-1].startswith("done: ") and lines[-1].endswith(
        f"; checkpoint {tmp_path}/out\\rdir\\x9b/checkpoint.npz"), lines
    assert train.main(["--data", str(text), *SMALL[:-1], "--out", str(out)]) == 2
    error = capsys.readouterr().err  # (the command it suggests names the directory for bash)
    assert not cli.UNPRINTABLE.search(error[:-1]) and "out\\rdir\\x9b/checkpoint.npz" in error
    # (C1's as the bytes of their UTF-8, which bash reads in any locale: \\u009b only in a
    # UTF-8 one)
    assert "--resume $'" + str(tmp_path) + "/out\\x0ddir\\xc2\\x9b/checkpoint.npz'" in error
    sample = lines.index("----- sample at iteration 10")
    assert lines[sample + 1:].index("-----") > 0  # (its text, on lines of its own)


def test_a_resume_that_writes_nothing_leaves_the_log_as_it_found_it(tmp_path, corpus_file,
                                                                     capsys, monkeypatch):
    """(a resume rewrote metrics.jsonl with its checkpoint's records as it started: one that
    diverged at once left a log cut down to, say, best.npz's records beside the checkpoint.npz
    it never replaced) The log is rewritten with the run's records at its first write, a
    validation's record or a checkpoint: a resume that writes nothing leaves the log and its
    picture as they were, one that writes rewrites the log whole (a record past its checkpoint,
    as a killed run leaves, dropped)."""
    out = tmp_path / "run"
    assert train.main(["--data", corpus_file, *SMALL, "--iterations", "10", "--eval-every", "5",
                       "--out", str(out)]) == 0
    log = out / "metrics.jsonl"
    killed = json.loads(log.read_text().splitlines()[-1])
    log.write_text(log.read_text() + json.dumps({**killed, "iteration": 15}) + "\n")
    before = {name: (out / name).read_bytes() for name in ("metrics.jsonl", "loss.png")}
    for anneal in ([], ["--anneal", "0.9"]):  # (one starting here rewrites the last record's
        rc = train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "20",  # rate)
                         "--learning-rate", "1e30", "--quiet", *anneal])
        assert rc == 1 and "training diverged" in capsys.readouterr().err
        assert {name: (out / name).read_bytes() for name in before} == before, anneal
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "15",
                       "--eval-every", "5", "--quiet"]) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["iteration"] for r in records] == [5, 10, 15] and records[-1] != \
        {**killed, "iteration": 15}
    assert records == checkpoint.load(out / "checkpoint.npz").run["metrics"]
    # one whose first write is its checkpoint (Ctrl-C in its final validation, the first under
    # --eval-every 0) rewrites the log with it
    log.write_text(log.read_text() + json.dumps({**killed, "iteration": 25}) + "\n")
    from fastrnn.backends import numba as numba_backend  # (kernel calls of 256 characters: a
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)  # Ctrl-C at the first is early)
    _interrupting(monkeypatch, 1)
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "20",
                       "--eval-every", "0", "--quiet"]) == cli.EXIT_INTERRUPTED
    monkeypatch.undo()
    saved = checkpoint.load(out / "checkpoint.npz").run
    assert saved["iteration"] == 20 and saved["metrics"] == records  # (no new record)
    assert [json.loads(line) for line in log.read_text().splitlines()] == records
    # ... and if that rewrite fails, the run's end says so (no write of the log follows)
    from fastrnn import metrics
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
    _interrupting(monkeypatch, 1)
    monkeypatch.setattr(metrics, "rewrite", _full_disk)
    assert train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "25",
                       "--eval-every", "0"]) == cli.EXIT_INTERRUPTED
    assert (f"warning: could not write {log}: No space left on device: it does not hold the "
            f"run's records, which its checkpoint does (a resume writes them)\n"
            ) in capsys.readouterr().err
    assert checkpoint.load(out / "checkpoint.npz").run["iteration"] == 25


@pytest.mark.parametrize("path", ["/tmp/a b", "it's", "two\nlines", "back\\slash\r'",
                                  "$HOME`x`", "plain/path.npz", "c1\x85\x9b", "rtl\u202eevil",
                                  "tab\there", "caf\u00e9", os.fsdecode(b"latin\xe9")])
def test_a_suggested_commands_path_reads_back_in_a_shell(path):
    """(the closing line's "continue with" split at a space, or waited for a closing quote)
    A path in a suggested command is quoted as a shell reads it, on one line: with control
    characters (a line break; C1's, a bidirectional override) as bash's $'...' escapes of
    their bytes, read back as the name in any locale (a name's undecodable byte too)."""
    quoted = cli.quoted(path)
    assert not cli.UNPRINTABLE.search(quoted) and "\t" not in quoted
    assert quoted == path or path != shlex.quote(path)  # (a plain path as it is)
    for locale in ("C.UTF-8", "C"):
        done = subprocess.run(["bash", "-c", f"printf %s {quoted}"], capture_output=True,
                              env={**os.environ, "LC_ALL": locale})
        assert done.returncode == 0 and done.stdout == os.fsencode(path), locale


def test_a_delayed_bar_counts_from_the_works_first_call(monkeypatch, capsys):
    """(a cold compile in the first kernel call drew a bar for tiny work) cli.DelayedBar's
    clock starts at its first update: a bar is made at an update BAR_DELAY seconds after it,
    never with quiet."""
    now = [100.0]
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    for quiet in (False, True):
        bar = cli.DelayedBar("work", 10, "char", quiet)
        now[0] += 50.0  # (a first call that compiled its kernels)
        bar.update(1)
        now[0] += cli.BAR_DELAY / 2
        bar.update(1)
        assert bar.bar is None and "work" not in capsys.readouterr().err
        now[0] += cli.BAR_DELAY
        bar.update(1)
        bar.close()
        assert (bar.bar is None) == quiet
        err = capsys.readouterr().err
        assert ("work: " in err) != quiet
        # its time and rate from the first update: 3 s, 2 characters since (it showed 00:00
        # and no rate however long it had run)
        assert quiet or "3.00/10.0 [00:03<00:10, 1.50s/char]" in err, err
    # then the rate of the work done since it showed, not of all since the first update
    # (the first sample of its moving average: 1 character in 1 s, not in 3 + 1: 4.00s/char)
    import tqdm.std
    clock = [1000.0]  # (tqdm's, moved as the monotonic one)
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    bar = cli.DelayedBar("work", 10, "char")
    bar.update(1)
    now[0] += cli.BAR_DELAY + 1
    clock[0] += cli.BAR_DELAY + 1
    bar.update(1)
    now[0] += 1.0
    clock[0] += 1.0
    bar.update(1)
    bar.close()
    assert "3.00/10.0 [00:04<00:07, 1.00char/s]" in capsys.readouterr().err
