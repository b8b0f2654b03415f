"""Checkpoints: exact round trip, atomic writes, format-1 files, and a clear error for every
unusable file."""

import copy
import dataclasses
import errno
import io
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from fastrnn import CharRNN, Vocab, checkpoint, optim, reference, train
from fastrnn.checkpoint import Checkpoint, CheckpointError
from tests.helpers import NAMES, assert_close, rewrite_meta


@pytest.fixture
def saved(tmp_path):
    model = CharRNN(vocab_size=5, hidden_size=8, seq_length=4, dtype="float32", seed=3)
    data = np.arange(40) % 5
    losses = model.train(data, 7)
    ckpt = Checkpoint.of(model, Vocab("abcde"), losses, {"iteration": 7, "note": "x"})
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, ckpt)
    return path, model, losses


def assert_same_array(actual, expected, name):
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert np.array_equal(actual, expected), name


def test_round_trip_is_exact(saved):
    path, model, losses = saved
    back = checkpoint.load(path)
    assert back.config == model.config and back.vocab == Vocab("abcde")
    assert tuple(back.params) == NAMES
    for name, a in model.params.items():
        assert_same_array(back.params[name], a, name)
    assert len(back.states) == 1
    for name, a in model.spec.named(model.states[0]).items():
        assert_same_array(back.states[0][name], a, "m" + name)
    assert_same_array(back.state, model.state, "state")
    assert back.position == model.position and back.step == model.step == 7
    assert np.array_equal(back.losses, losses)
    assert back.run == {"iteration": 7, "note": "x"}
    restored = back.to_model("numpy", dtype="float64")
    assert restored.params["Whh"].dtype == np.float64
    assert np.array_equal(restored.params["Whh"], model.params["Whh"])
    assert np.array_equal(restored.state, model.state) and restored.state.dtype == np.float64


def test_a_model_whose_seq_length_changed_saves_and_resumes_exactly(tmp_path):
    """A position that is not a multiple of seq_length: a model's seq_length may change between
    train calls (README, "From Python"), and its checkpoint was refused ("expected a multiple
    of seq_length"), the work it held unsaveable."""
    data = np.arange(300) % 7
    model = CharRNN(7, hidden_size=8, seq_length=5)
    model.train(data, 2)
    model.config = dataclasses.replace(model.config, seq_length=4)
    model.train(data, 1)
    assert model.position == 14
    checkpoint.save(tmp_path / "s.npz", Checkpoint.of(model, Vocab("abcdefg"), [1.0] * 3,
                                                      {"iteration": 3}))
    back = checkpoint.load(tmp_path / "s.npz").to_model()
    assert back.position == 14 and back.config == model.config
    assert np.array_equal(back.train(data, 3), model.train(data, 3))
    assert np.array_equal(back.weights.flat, model.weights.flat)


def test_a_path_that_is_not_a_file_name_is_named(saved, tmp_path):
    """None (or a number) as a path: an error naming it, not pathlib's TypeError; bytes are a
    file name, as os takes them."""
    path, model, _ = saved
    ckpt = checkpoint.load(path)
    with pytest.raises(CheckpointError, match="^path must be a file name .*, got NoneType$"):
        checkpoint.load(None)
    with pytest.raises(ValueError, match="^path must be a file name .*, got int$"):
        checkpoint.save(3, ckpt)
    checkpoint.save(os.fsencode(tmp_path / "b.npz"), ckpt)
    assert checkpoint.load(os.fsencode(tmp_path / "b.npz")).step == ckpt.step


def test_to_model_checks_what_it_copies_from_a_checkpoint_held_in_memory(saved):
    """A Checkpoint made or changed in memory: a position, update count or dropout generator
    state that load would refuse is a CheckpointError naming it (they were copied into the
    model unchecked, and a foreign generator state was numpy's words, naming no field). What
    it does not copy (the run record, the losses) is not its to refuse."""
    ckpt = checkpoint.load(saved[0])
    for change, message in ((dict(dropout_rng={"bit_generator": "MT19937"}),
                             "dropout_rng is not a random generator's state"),
                            (dict(position=-5), "position is -5, expected an integer"),
                            (dict(step=1.5), "step is 1.5, expected a count of updates")):
        with pytest.raises(CheckpointError, match=f"^the checkpoint cannot be used: {message}"):
            dataclasses.replace(ckpt, **change).to_model()
    model = dataclasses.replace(ckpt, position=np.int64(8), step=np.int64(7), run=None,
                                losses=np.full((2, 2), np.nan)).to_model()
    assert (model.position, model.step) == (8, 7)


def test_a_checkpoint_is_the_model_at_its_making_not_after(saved, tmp_path):
    """Checkpoint.of copies: training on after it (as a program may do between taking a
    checkpoint and a later write) leaves what it saves as it was."""
    path, model, _ = saved
    model = checkpoint.load(path).to_model()
    run = {"iteration": 7, "anneal": {"fraction": 0.5}}
    ckpt = Checkpoint.of(model, Vocab("abcde"), [1.0], run)
    before = checkpoint.load(path)
    model.train(np.arange(40) % 5, 3)
    run["anneal"]["fraction"] = 1.0
    later = tmp_path / "later.npz"
    checkpoint.save(later, ckpt)
    back = checkpoint.load(later)
    for name, a in before.params.items():
        assert_same_array(back.params[name], a, name)
    for name, a in before.states[0].items():
        assert_same_array(back.states[0][name], a, "m" + name)
    assert_same_array(back.state, before.state, "state")
    assert back.step == 7 and back.run["anneal"] == {"fraction": 0.5}


def test_a_run_saves_its_checkpoints_without_copying_the_model(tmp_path, text, monkeypatch):
    """The trainer writes a checkpoint as it takes it: from views of the model's weights and
    optimizer state, not copies (which took their size in memory again at every save: at H =
    20,000, 6.4 GB more than the run's own, past what the memory check had allowed); the
    same file as from copies."""
    import tracemalloc
    corpus = tmp_path / "input.txt"
    corpus.write_text(text)
    held, real = [], Checkpoint.of

    def of(model, *args, **kwargs):
        tracemalloc.start()  # (only around it: numba under tracemalloc is slow)
        try:
            ckpt = real(model, *args, **kwargs)
            held.append((tracemalloc.get_traced_memory()[0], model.weights.flat.nbytes))
        finally:
            tracemalloc.stop()
        copied = real(model, *args)  # (what it saves: the same as copies)
        run = args[2]  # (the run record as given: its deep copy, a long run's records, was
        assert ckpt.run is run and copied.run == run and copied.run is not run  # most of a save)
        for name, a in copied.params.items():
            assert_same_array(ckpt.params[name], a, name)
        for name, a in copied.states[0].items():
            assert_same_array(ckpt.states[0][name], a, "m" + name)
        return ckpt

    monkeypatch.setattr(Checkpoint, "of", of)
    assert train.main(["--data", str(corpus), "--hidden-size", "200", "--optimizer", "adam",
                       "--learning-rate", "0.002", "--iterations", "4", "--eval-every", "2",
                       "--checkpoint-every", "2", "--quiet", "--out", str(tmp_path)]) == 0
    assert len(held) >= 3  # (best.npz, and the checkpoints at 2 and 4)
    assert all(took < weights / 2 for took, weights in held), held


def test_every_named_array_round_trips_for_adam_with_streams(tmp_path):
    model = CharRNN(vocab_size=6, hidden_size=5, seq_length=3, dtype="float32", seed=1,
                    batch_size=2, optimizer="adam", learning_rate=0.01, threads=1)
    losses = model.train(np.arange(60) % 6, 5)
    path = tmp_path / "adam.npz"
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcdef"), losses, {"iteration": 5}))

    expected = dict(model.params)
    for prefix, s in zip(("m", "v"), model.states):
        expected.update({prefix + name: a for name, a in model.spec.named(s).items()})
    expected["state"] = model.state
    with np.load(path) as npz:  # the file itself: every array by its documented name
        assert sorted(npz.files) == sorted([*expected, "losses", "meta"])
        for name, a in expected.items():
            assert_same_array(npz[name], a, name)
        assert_same_array(npz["losses"], losses, "losses")
        meta = json.loads(str(npz["meta"]))
    assert meta["format"] == checkpoint.FORMAT and meta["version"] == 2  # (3: with run.pending)
    assert meta["config"] == {k: v for k, v in model.config.to_dict().items()
                              if k != "grad_clip"}  # (5, the one before the setting: left out)
    assert meta["step"] == 5

    back = checkpoint.load(path)
    assert model.state.shape == back.state.shape == (1, 1, 2, 5)
    assert [sorted(s) for s in back.states] == [sorted(NAMES)] * 2
    for prefix, named in zip(("m", "v"), back.states):
        for name, a in named.items():
            assert_same_array(a, expected[prefix + name], prefix + name)
    restored = back.to_model("numba", threads=1)
    for prefix, s in zip(("m", "v"), restored.states):
        for name, a in restored.spec.named(s).items():
            assert_same_array(a, expected[prefix + name], "restored " + prefix + name)
    assert_same_array(restored.state, model.state, "restored state")
    assert restored.step == model.step and restored.position == model.position
    data = np.arange(60) % 6
    assert np.array_equal(restored.train(data, 3), model.train(data, 3)), "resumed losses"
    assert np.array_equal(restored.weights.flat, model.weights.flat), "resumed weights"


# -- format 1 (fastrnn 0.1): biases (n, 1), the hidden state as "h" ------------------------------

V1_NAMES = ("Wxh", "Whh", "Why", "bh", "by")  # fastrnn 0.1's order


def write_format_1(path, H, V, optimizer, batch_size, dtype, seq_length, position, step, seed=0):
    """A checkpoint as fastrnn 0.1's checkpoint.py wrote it; returns what it holds."""
    rng = np.random.default_rng(seed)
    shapes = ((H, V), (H, H), (V, H), (H, 1), (V, 1))

    def five(scale, positive=False):
        arrays = [rng.standard_normal(s) * scale for s in shapes]
        return [(np.abs(a) if positive else a).astype(dtype) for a in arrays]

    params, mems = five(0.1), five(0.01, positive=optimizer != "adam")
    mems2 = five(1e-4, positive=True) if optimizer == "adam" else None
    h = (np.tanh(rng.standard_normal((H, 1) if batch_size == 1 else (batch_size, H)))
         .astype(dtype))
    losses = rng.random(step) + 3.0
    config = {"vocab_size": V, "hidden_size": H, "seq_length": seq_length, "learning_rate": 0.01,
              "dtype": dtype, "seed": 0, "batch_size": batch_size, "optimizer": optimizer}
    vocab = [chr(ord("a") + i) for i in range(V)]
    meta = {"format": "fastrnn-checkpoint", "version": 1, "fastrnn": "0.1.0", "config": config,
            "vocab": vocab, "position": position, "step": step,
            "run": {"iteration": step, "note": "from 0.1"}}
    arrays = {name: a for name, a in zip(V1_NAMES, params)}
    arrays.update({"m" + name: a for name, a in zip(V1_NAMES, mems)})
    if mems2 is not None:
        arrays.update({"v" + name: a for name, a in zip(V1_NAMES, mems2)})
    arrays.update(h=h, losses=losses, meta=np.array(json.dumps(meta)))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return dict(params=params, mems=mems, mems2=mems2, h=h, losses=losses, config=config,
                vocab=vocab)


@pytest.mark.parametrize("optimizer, batch_size, dtype, backend", [
    ("adagrad", 1, "float64", "numba"),    # min-char-rnn's model, the default training path
    ("adam", 3, "float32", "numba"),       # two state buffers and B streams: h was (B, H)
    ("rmsprop", 2, "float64", "numpy"),
])
def test_a_format_1_checkpoint_loads_and_resumes(tmp_path, optimizer, batch_size, dtype, backend):
    H, V, T, position, step = 6, 5, 4, 8, 9
    path = tmp_path / "v1.npz"
    written = write_format_1(path, H, V, optimizer, batch_size, dtype, T, position, step)

    ckpt = checkpoint.load(path)
    assert ckpt.config.to_dict() == {**written["config"], "cell": "rnn", "num_layers": 1,
                                     "dropout": 0.0, "grad_clip": 5.0}
    assert ckpt.vocab.chars == written["vocab"]
    assert ckpt.position == position and ckpt.step == step
    assert ckpt.run == {"iteration": step, "note": "from 0.1"}
    assert_same_array(ckpt.losses, written["losses"], "losses")
    model = ckpt.to_model(backend, threads=1)
    assert model.step == step and model.position == position
    spec = model.spec
    kinds = [("", written["params"], model.weights, ckpt.params),
             ("m", written["mems"], model.states[0], ckpt.states[0])]
    if optimizer == "adam":
        kinds.append(("v", written["mems2"], model.states[1], ckpt.states[1]))
    assert len(model.states) == len(ckpt.states) == len(kinds) - 1
    for prefix, arrays, loaded, in_checkpoint in kinds:
        named = spec.named(loaded)
        for name, a in zip(V1_NAMES, arrays):
            expected = a.reshape(-1) if name in ("bh", "by") else a  # columns become vectors
            assert_same_array(in_checkpoint[name], expected, "checkpoint " + prefix + name)
            assert_same_array(named[name], expected, "model " + prefix + name)
    state = written["h"].reshape(1, 1, batch_size, H)  # (H, 1) or (B, H) -> (L, S, B, H)
    assert_same_array(model.state, state, "state")
    assert_same_array(ckpt.state, state, "checkpoint state")
    np.testing.assert_array_equal(model.h, written["h"].reshape(batch_size, H), err_msg="h")

    # Resume: the next chunks equal the oracle continuing from what was written.
    data = np.random.default_rng(7).integers(0, V, 200)
    losses = model.train(data, 6)
    w = spec.zeros(np.float64)
    for name, a in zip(V1_NAMES, written["params"]):
        spec.named(w)[name][...] = a.reshape(spec.by_key[name].shape)
    states = []
    for arrays in [written["mems"]] + ([written["mems2"]] if optimizer == "adam" else []):
        s = spec.zeros(np.float64)
        for name, a in zip(V1_NAMES, arrays):
            spec.named(s)[name][...] = a.reshape(spec.by_key[name].shape)
        states.append(s)
    expected, pos, after = reference.train(w, optim.get(optimizer), states, data, position,
                                           state.astype(np.float64), 0.01, T, 6, step)
    assert model.position == pos and model.step == step + 6
    assert_close(losses, expected, dtype, "resumed losses")
    assert_close(model.state, after, dtype, "resumed state")
    for name, a in model.params.items():
        assert_close(a, spec.named(w)[name], dtype, "resumed " + name)

    # Saved again, it is written in the current format and loads back to the same model.
    again = tmp_path / "v2.npz"
    checkpoint.save(again, Checkpoint.of(model, ckpt.vocab, np.concatenate([ckpt.losses, losses]),
                                         {"iteration": step + 6}))
    with np.load(again) as npz:
        assert "h" not in npz.files and npz["bh"].shape == (H,)
        assert json.loads(str(npz["meta"]))["version"] == 2
    assert_same_array(checkpoint.load(again).state, model.state, "state in format 2")


def test_a_format_1_run_resumes_from_the_command_line_bit_for_bit(tmp_path, text):
    """A checkpoint written by ``fastrnn.train``, rewritten as fastrnn 0.1 wrote it, resumes
    to exactly the state the original resumes to."""
    corpus = tmp_path / "input.txt"
    corpus.write_text(text[:5000], encoding="utf-8")
    common = ["--eval-every", "10", "--sample-every", "0", "--quiet"]
    assert train.main(["--data", str(corpus), "--hidden-size", "12", "--seq-length", "8",
                       "--iterations", "15", "--out", str(tmp_path / "new"), *common]) == 0
    new = tmp_path / "new" / "checkpoint.npz"
    old = tmp_path / "old" / "checkpoint.npz"
    old.parent.mkdir()
    with np.load(new) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta["config"].pop("cell") == "rnn"  # 0.1's Config had no cell
    meta["version"], meta["fastrnn"] = 1, "0.1.0"
    H = meta["config"]["hidden_size"]
    v1 = {"h": arrays.pop("state").reshape(H, 1), "losses": arrays.pop("losses"),
          "meta": np.array(json.dumps(meta))}
    for prefix in ("", "m"):
        for name in V1_NAMES:
            a = arrays.pop(prefix + name)
            v1[prefix + name] = a.reshape(-1, 1) if name in ("bh", "by") else a
    arrays.pop("meta")
    assert not arrays, f"arrays format 1 does not have: {sorted(arrays)}"
    with open(old, "wb") as f:
        np.savez(f, **v1)

    for path in (new, old):
        assert train.main(["--resume", str(path), "--iterations", "25", *common]) == 0
    a, b = checkpoint.load(new), checkpoint.load(old)
    for name in NAMES:
        assert_same_array(b.params[name], a.params[name], name)
        assert_same_array(b.states[0][name], a.states[0][name], "m" + name)
    assert_same_array(b.state, a.state, "state")
    assert (b.position, b.step) == (a.position, a.step)
    assert np.array_equal(b.losses, a.losses), "loss history"
    for key in ("iteration", "smooth_loss", "rng"):
        assert b.run[key] == a.run[key], key
    assert _losses_of(b.run) == _losses_of(a.run), "metrics (timings aside)"


def _losses_of(run):
    return [(r["iteration"], r["train_loss"], r["val_loss"]) for r in run["metrics"]]


# -- atomic writes and unusable files ------------------------------------------------------------

def test_a_failed_write_leaves_the_previous_file_whole(saved, monkeypatch):
    path, model, losses = saved
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, checkpoint.load(path))
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_save_never_replaces_what_is_not_a_regular_file(saved, tmp_path):
    """A FIFO, a device (as root, /dev/null was replaced by a checkpoint), a directory or a
    symbolic link (renamed over, it became a file; it is not followed either, or a run's writes
    would leave its locked --out) is an OSError naming it, left as it was."""
    path, model, losses = saved
    ckpt = checkpoint.load(path)
    fifo, target = tmp_path / "fifo", tmp_path / "elsewhere.npz"
    os.mkfifo(fifo)
    target.write_bytes(b"the link's target")
    (tmp_path / "link.npz").symlink_to(target)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for name, kind in [("fifo", "a FIFO (named pipe)"), (".", "a directory"),
                       ("link.npz", f"a symbolic link (to {target})"),
                       ("loop", f"a symbolic link (to {tmp_path / 'loop'})")]:
        with pytest.raises(OSError, match=re.escape(f"it is {kind}, not a regular file: "
                                                    f"'{tmp_path / name}'")):
            checkpoint.save(tmp_path / name, ckpt)
    assert fifo.is_fifo() and (tmp_path / "link.npz").is_symlink()
    assert target.read_bytes() == b"the link's target"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "elsewhere.npz", "fifo",
                                            "link.npz", "loop"]  # (no temporary file left)


def test_the_checks_of_the_numbers_read_every_piece_of_an_array(saved, monkeypatch):
    """The checks of finite numbers and of non-negative sums of squares read an array in
    pieces (no temporary the size of a tensor, for a run saved when memory ran out): a bad
    number in the last piece is found."""
    path, model, losses = saved
    monkeypatch.setattr(checkpoint, "_PIECE", 7)
    for damage, message in [(lambda c: c.params["Whh"].flat.__setitem__(-1, np.nan),
                             "Whh holds NaN or infinite values"),
                            (lambda c: c.states[0]["Whh"].flat.__setitem__(-1, -1.0),
                             "mWhh holds negative values")]:
        ckpt = checkpoint.load(path)
        damage(ckpt)
        with pytest.raises(CheckpointError, match=message):
            checkpoint.save(path, ckpt)


def _npy(array):
    """The bytes of ``array`` as a .npy file (np.save to a path would add .npy to its name)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.state.fill(np.nan), "state holds NaN or infinite values"),
    (lambda c: setattr(c, "state", c.state[:, :, :0]), "state is float32(1, 1, 0, 8), the config "
                                                       "says float32(1, 1, 1, 8)"),
    (lambda c: setattr(c, "position", -5), "position is -5, expected an integer, 0 to 2"),
    (lambda c: setattr(c, "position", np.int64(2 ** 63 - 4)), "position is 9223372036854775804"),
    (lambda c: setattr(c, "step", 8.0), "step is 8.0, expected a count of updates"),
    (lambda c: c.run.update(iteration=-1), "run.iteration is -1"),
    (lambda c: c.params.pop("Whh"), "the arrays Whh do not match the model's parameters"),
    (lambda c: c.states[0].update(bogus=c.states[0]["by"]), "the arrays mbogus do not match"),
    (lambda c: c.states.append(c.states[0]), "2 optimizer state buffers, adagrad has 1"),
])
def test_save_refuses_what_load_would_refuse_and_leaves_the_file_as_it_was(saved, damage,
                                                                           message):
    """save makes load's checks first: a checkpoint that could not be loaded (here from a
    model whose public state was replaced badly) is an error naming the field, not a file."""
    path, model, losses = saved
    before = path.read_bytes()
    ckpt = checkpoint.load(path)
    damage(ckpt)
    with pytest.raises(CheckpointError) as refused:
        checkpoint.save(path, ckpt)
    assert str(refused.value).startswith(f"{path} not written, it would not load: ")
    assert message in str(refused.value), refused.value
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_what_a_caller_hands_save_is_taken_or_named(saved, tmp_path):
    """NumPy numbers in the run record are written as JSON numbers (run.iteration np.int64(5)
    was refused); losses of unequal train() calls, a 2-D history and a path whose directory
    is missing are named as such (a NumPy 'inhomogeneous shape' error; a FileNotFoundError
    naming a temporary file)."""
    path, model, losses = saved
    ckpt = Checkpoint.of(model, Vocab("abcde"), losses, {"iteration": np.int64(7),
                                                         "rate": np.float32(0.5),
                                                         "seen": np.arange(2)})
    checkpoint.save(path, ckpt)
    assert checkpoint.load(path).run == {"iteration": 7, "rate": 0.5, "seen": [0, 1]}
    with pytest.raises(ValueError, match="losses must be one number per iteration, e.g. "
                                         "np.concatenate of train"):
        Checkpoint.of(model, Vocab("abcde"), [losses[:3], losses[3:]], {})
    with pytest.raises(CheckpointError, match=r"losses is float64\(2, 3\), expected float64, "
                                              r"one loss per iteration \(1-D\)"):
        checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), [losses[:3], losses[3:6]],
                                            {"iteration": 7}))
    with pytest.raises(CheckpointError, match="run is not a JSON record"):
        checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), losses, {"x": object()}))
    missing = tmp_path / "no" / "such" / "checkpoint.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        checkpoint.save(missing, ckpt)


def test_a_read_only_filesystem_is_named_on_the_file_asked_for(saved, monkeypatch):
    """Where the temporary file cannot be made, nor its removal tried (a read-only
    filesystem refuses both), the error names the checkpoint asked for, not the temporary."""
    path, model, losses = saved
    ckpt = Checkpoint.of(model, Vocab("abcde"), losses, {})
    real_open = open

    def read_only(file, *args, **kwargs):
        if str(file).endswith(".tmp"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, *args, **kwargs)

    def unlink(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr("builtins.open", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(OSError, match=re.escape(f"Read-only file system: '{path}'")):
        checkpoint.save(path, ckpt)


def test_two_threads_saving_to_one_path_leave_one_whole_file(tmp_path):
    """Each writer has a temporary of its own (``.NAME.PID-THREAD.tmp``): two threads of one
    process shared one, and the second's rename left the first writing into the checkpoint
    itself (a torn file, and a FileNotFoundError for the first)."""
    import threading
    from fastrnn import files
    path = tmp_path / "checkpoint.npz"
    halfway, other_done, errors = threading.Event(), threading.Event(), []

    def first(f):
        f.write(b"A" * 1000)
        halfway.set()
        other_done.wait(10)
        f.write(b"A" * 1000)

    def write_first():
        try:
            files.write_atomically(path, first)
        except BaseException as e:  # (reported by the test's thread)
            errors.append(e)

    thread = threading.Thread(target=write_first)
    thread.start()
    halfway.wait(10)
    files.write_atomically(path, lambda f: f.write(b"B" * 3000))
    other_done.set()
    thread.join()
    assert not errors and path.read_bytes() == b"A" * 2000  # (the last one renamed, whole)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_save_writes_numpy_integer_counts_as_json_integers(saved):
    """(A guard: save's new checks must take a NumPy int as the int it is.)"""
    path, model, losses = saved
    ckpt = checkpoint.load(path)
    ckpt.position, ckpt.step = np.int64(8), np.int32(7)
    checkpoint.save(path, ckpt)
    back = checkpoint.load(path)
    assert (back.position, back.step) == (8, 7) and type(back.position) is int


def _meta_as(path, text):
    """The checkpoint at ``path`` with its metadata replaced by the JSON ``text``."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta"] = np.array(text)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _flipped(path, mark, offset, value, after=b""):
    """The byte ``offset`` past ``mark`` (its first after ``after``) set to ``value``: a zip
    directory's version (zipfile's NotImplementedError), a .npy header's length (np.load's
    tokenize.TokenError); QA's damaged files, which were tracebacks."""
    raw = bytearray(path.read_bytes())
    raw[raw.find(mark, raw.find(after)) + offset] = value
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"not a zip file at all"), r"not a fastrnn checkpoint \(not an .npz"),
    (lambda p: p.write_bytes(_npy(np.arange(3))), r"not a fastrnn checkpoint \(not an .npz arch"),
    (lambda p: p.write_bytes(b"\x80\x04K\x03."), r"not a fastrnn checkpoint \(not an .npz"),
    (lambda p: p.write_bytes(b""), r"corrupt or truncated: it is empty"),
    (lambda p: p.write_bytes(b"PK\x03"), r"corrupt or truncated: it ends after 3 bytes"),
    (lambda p: p.write_bytes(b"\0" * 100), r"corrupt or truncated: it starts with zero bytes"),
    (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]), "corrupt or truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:-30]), "corrupt or truncated"),
    (lambda p: _flipped(p, b"PK\x01\x02", 6, 0xff), "corrupt or truncated: zip file version"),
    (lambda p: _meta_as(p, "[" * 100_000 + "]" * 100_000), "corrupt or truncated: maximum "
                                                            "recursion depth"),
    (lambda p: rewrite_meta(p, lambda m, a: m.update(version=99, fastrnn="9.0")),
     r"newer fastrnn \(9.0, checkpoint format 99\).*upgrade"),
    (lambda p: rewrite_meta(p, lambda m, a: m.update(format="something-else")), "not a fastrnn checkpoint"),
    (lambda p: _meta_as(p, "[1, 2]"), r"is not a fastrnn checkpoint$"),  # (was: 'list' object
    (lambda p: _meta_as(p, '"text"'), r"is not a fastrnn checkpoint$"),  # has no attribute..)
    (lambda p: rewrite_meta(p, lambda m, a: m.pop("config")), r"\(it has no 'config'\)"),
    (lambda p: rewrite_meta(p, lambda m, a: m.update(version="2")), r"corrupt: version is '2'"),
    (lambda p: rewrite_meta(p, lambda m, a: m.update(version=0)), r"corrupt: version is 0, "
                                                                  r"expected a format number"),
    (lambda p: rewrite_meta(p, lambda m, a: m.update(vocab="aacde")),
     r"\(malformed: vocabulary characters must be distinct\)"),
    (lambda p: rewrite_meta(p, lambda m, a: a.update(Whh=np.zeros((3, 3), np.float32))),
     r"corrupt: Whh is float32\(3, 3\)"),
    (lambda p: rewrite_meta(p, lambda m, a: a.update(mby=np.zeros(5, np.float64))),
     r"corrupt: mby is float64\(5,\), the config says float32\(5,\)"),
    (lambda p: rewrite_meta(p, lambda m, a: a.update(state=np.zeros((1, 1, 2, 8), np.float32))),
     r"corrupt: state is float32\(1, 1, 2, 8\), the config says float32\(1, 1, 1, 8\)"),
    (lambda p: rewrite_meta(p, lambda m, a: a.pop("losses")), r"\(it has no 'losses'\)"),
    (lambda p: rewrite_meta(p, lambda m, a: a.pop("mWhh")), r"\(it has no 'mWhh'\)"),
    (lambda p: np.savez(p, a=np.arange(3)), r"is not a fastrnn checkpoint \(an .npz archive "
                                            r"without fastrnn's metadata, 'meta'\)$"),  # (QA)
    (lambda p: rewrite_meta(p, lambda m, a: m["config"].update(cell="transformer")), "unknown cell 'transformer'"),
])
def test_unusable_checkpoints_are_named(saved, damage, message):
    """Each refused by name, in one line."""
    path = saved[0]
    damage(path)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_npy_header_cut_short_is_named_corrupt(tmp_path):
    """A member's .npy header whose length byte is damaged, so that np.load parses part of
    it (tokenize.TokenError from NumPy: a traceback), in a member large enough that its header
    is read before its checksum is."""
    model = CharRNN(64, hidden_size=32, seq_length=4)
    path = tmp_path / "c.npz"
    checkpoint.save(path, Checkpoint.of(model, Vocab([chr(i) for i in range(32, 96)]), [], {}))
    _flipped(path, b"\x93NUMPY", 8, 22, b"Wxh.npy")
    with pytest.raises(CheckpointError, match=r"c.npz is not a readable fastrnn checkpoint "
                                              r"\(corrupt or truncated: .*EOF in multi-line"):
        checkpoint.load(path)


def test_a_member_flagged_encrypted_is_named_corrupt(tmp_path, capsys):
    """A damaged flag in the zip directory that says a member is encrypted (zipfile's
    RuntimeError: a traceback from load, sample, score and train --resume)."""
    from fastrnn import sample, score
    model = CharRNN(5, hidden_size=8, seq_length=4)
    path = tmp_path / "c.npz"
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), [], {}))
    raw = bytearray(path.read_bytes())
    raw[raw.rfind(b"PK\x01\x02") + 8] |= 1  # (the last member's "encrypted" bit)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"c.npz is not a readable fastrnn checkpoint "
                                              r"\(corrupt or truncated: .*encrypted"):
        checkpoint.load(path)
    for main, args in ((sample.main, [str(path)]), (score.main, [str(path), str(path)]),
                       (train.main, ["--resume", str(path), "--quiet"])):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "encrypted" in err and err.count("\n") == 1 and "Traceback" not in err, err


def _add_member(path, name, header, data=b"", compressed=False):
    """Append to an .npz archive a member ``name``.npy: a .npy header of ``header`` (shape,
    descr) and ``data`` after it, which need not be what the header says."""
    import zipfile
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": header[1], "fortran_order": False,
                                                "shape": header[0]})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) \
            as z:
        z.writestr(name + ".npy", head.getvalue() + data)


def _without(path, name, rename=None):
    """Rewrite the archive without member ``name``.npy, or with it renamed ``rename`` (the
    rest byte for byte)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in members:
            if info.filename == name + ".npy":
                if rename is None:
                    continue
                info.filename = rename
            z.writestr(info, data)


def test_a_crafted_size_is_refused_before_anything_that_large_is_built_or_read(saved,
                                                                               monkeypatch):
    """(A checkpoint of 375 KB whose config said 10**9 layers grew 7 GB in two minutes
    building their layout; an array header declaring 7 TiB was a MemoryError traceback; an
    unused member of 3 GB, compressed to 3 MB, was read.) Each is refused at once, or never
    read; nothing else changes what loads."""
    from fastrnn import validate
    path = saved[0]
    rewrite_meta(path, lambda m, a: m["config"].update(num_layers=10 ** 9))
    with pytest.raises(CheckpointError, match=r"corrupt: num_layers is 1,000,000,000, and it "
                                              r"holds \d+ arrays"):
        checkpoint.load(path)
    rewrite_meta(path, lambda m, a: m["config"].update(num_layers=1))
    before = checkpoint.load(path)
    _add_member(path, "junk", ((10 ** 12,), "<f8"))           # a member no checkpoint has
    _add_member(path, "bomb", ((3 << 30,), "|u1"), bytes(1 << 20), compressed=True)
    assert checkpoint.load(path).params["Whh"].tobytes() == before.params["Whh"].tobytes()
    _without(path, "Whh")
    _add_member(path, "Whh", ((10 ** 12,), "<f4"))            # the data cannot be there
    with pytest.raises(CheckpointError, match=r"corrupt or truncated: its array Whh declares "
                                              r"3.6 TiB of data; the archive holds 128 bytes"):
        checkpoint.load(path)
    _without(path, "Whh")
    _add_member(path, "Whh", ((8, 8), "<f4"), bytes(256))
    assert checkpoint.load(path).params["Whh"].any() == False  # noqa: E712 (zeros, read)
    _without(path, "Whh", rename="Whh")  # (not a .npy member: npz.files names it all the same)
    with pytest.raises(CheckpointError, match=r"\(it has no 'Whh'\)"):
        checkpoint.load(path)
    _without(path, "Whh")
    _add_member(path, "Whh", ((8, 8), "<f4"), bytes(256))
    _without(path, "losses")
    _add_member(path, "losses", ((3 << 20,), "<f8"), bytes(24 << 20), compressed=True)
    monkeypatch.setattr(validate, "available_memory", lambda: 1 << 20)
    with pytest.raises(CheckpointError, match=r"cannot be read: its array losses needs about "
                                              r"24.0 MiB of memory; this machine has 1.0 MiB "):
        checkpoint.load(path)


def test_arrays_stored_big_endian_load_as_the_same_numbers(saved):
    path, model, _ = saved
    rewrite_meta(path, lambda m, a: a.update(Whh=a["Whh"].astype(">f4"), state=a["state"]
                                             .astype(">f4"), losses=a["losses"].astype(">f8")))
    back = checkpoint.load(path)
    assert_same_array(back.params["Whh"], model.params["Whh"], "Whh")
    assert_same_array(back.state, model.state, "state")
    assert back.losses.dtype == np.float64 and back.losses.dtype.isnative


# run.data and a run.metrics record as fastrnn.train writes them
DATA = {"val_fraction": 0.1, "encoding": "utf-8", "path": "/data/input.txt", "sha256": "ab12",
        "chars": 40}
RECORD = {"iteration": 7, "epoch": 0.5, "chars": 28, "train_loss": 1.6, "train_bpc": 2.3,
          "val_loss": 1.7, "val_bpc": 2.45, "val_streams": 1, "learning_rate": 0.1,
          "train_seconds": 0.01, "chars_per_s": None}


def test_a_run_record_as_train_writes_it_loads(saved):
    """The run's data and metrics records pass the checks, a record without held-out text
    (val_loss and val_bpc null) included."""
    path = saved[0]
    quiet = dict(RECORD, iteration=3, val_loss=None, val_bpc=None)
    rewrite_meta(path, lambda m, a: m["run"].update(data=DATA, metrics=[quiet, RECORD]))
    assert checkpoint.load(path).run["metrics"] == [quiet, RECORD]


def test_a_count_too_large_for_a_float_is_checked_without_a_traceback(saved):
    path = saved[0]
    rewrite_meta(path, lambda m, a: m["run"].update(iteration=10**400, train_seconds=10**400))
    assert checkpoint.load(path).run["iteration"] == 10**400


def _scale(name, factor):
    return lambda m, a: a.update({name: a[name] * factor})


@pytest.mark.parametrize("change, message", [
    (lambda m, a: m.update(position=-4), r"position is -4, expected an integer, 0 to 2\*\*62"),
    (lambda m, a: m.update(position=2 ** 62 + 1), r"position is 4611686018427387905, expected"),
    (lambda m, a: m.update(step=-1), r"step is -1, expected a count of updates"),
    (lambda m, a: m.update(position=8.5), r"position is 8.5, expected an integer"),
    (lambda m, a: m.update(position="8"), r"position is '8', expected an integer"),
    (lambda m, a: m.update(position=2**70), r"position is 1180591620717411303424, expected .* "
                                            r"0 to 2\*\*62"),
    (lambda m, a: m.update(step=2.5), r"step is 2.5, expected a count of updates"),
    (lambda m, a: m.update(step=2**70), r"step is 1180591620717411303424, expected a count of "
                                        r"updates, 0 to 2\*\*62"),
    (lambda m, a: a.update(Whh=np.full((8, 8), np.nan, np.float32)), "Whh holds NaN or infinite"),
    (lambda m, a: a.update(mWxh=-np.ones((8, 5), np.float32)), "mWxh holds negative values"),
    (lambda m, a: a.update(state=np.full((1, 1, 1, 8), np.inf, np.float32)),
     "state holds NaN or infinite"),
    (lambda m, a: a.update(losses=np.array([1.0, np.nan])), "losses holds NaN"),
    (lambda m, a: m["run"].update(iteration=-7), r"run.iteration is -7, expected an integer"),
    (lambda m, a: m["run"].update(iteration="7"), r"run.iteration is '7', expected an integer"),
    (lambda m, a: m["run"].update(iteration=None), r"run.iteration is None, expected an integer"),
    (lambda m, a: m["run"].update(smooth_loss=-1.0), r"run.smooth_loss is -1.0"),
    (lambda m, a: m["run"].update(target=0), r"run.target is 0, expected an iteration count"),
    (lambda m, a: m["run"].update(target="9"), r"run.target is '9', expected an iteration"),
    (lambda m, a: m["run"].update(time_budget=-1), r"run.time_budget is -1, expected a number"),
    (lambda m, a: m["run"].update(wall_seconds=-2), r"run.wall_seconds is -2, expected a number"),
    (lambda m, a: m["run"].update(budget_from="0"), r"run.budget_from is '0', expected a"),
    (lambda m, a: m["run"].update(budget_from=5.0, wall_seconds=2.0),
     r"run.budget_from is 5.0, expected at most run.wall_seconds"),
    (lambda m, a: m["run"].update(stopped=1), r"run.stopped is 1, expected a reason"),
    (lambda m, a: m["run"].update(failing_said="yes"), r"run.failing_said is 'yes', expected "
                                                       r"true or false"),
    (lambda m, a: m["run"].update(rng=[1, 2]), r"run.rng is \[1, 2\], expected a dict"),
    (lambda m, a: m["run"].update(rate_base={"learning_rate": 0, "optimizer": "adam"}),
     r"run.rate_base is \{'learning_rate': 0, 'optimizer': 'adam'\}, expected a record of a "
     r"learning rate > 0 and its optimizer \(adagrad, rmsprop, adam\)"),
    (lambda m, a: m["run"].update(rate_base={"learning_rate": 0.1, "optimizer": "bogus"}),
     "run.rate_base is"),
    (lambda m, a: m["run"].update(rate_base={"learning_rate": 0.1, "optimizer": ["adam"]}),
     "run.rate_base is"),
    (lambda m, a: m["run"].update(rate_base={"learning_rate": 0.1}), "run.rate_base is"),
    (lambda m, a: m["run"].update(rate_base=0.1), "run.rate_base is 0.1"),
    (lambda m, a: m["run"].update(rate_base={"learning_rate": 10 ** 400, "optimizer": "adam"}),
     "run.rate_base is"),  # (past float's range: it was taken, then a traceback)
    (lambda m, a: m["run"].update(rate_base={"learning_rate": True, "optimizer": "adam"}),
     "run.rate_base is"),
    (lambda m, a: m["run"].update(rate_base=[1] * 100_000),
     r"run.rate_base is \[1, 1, .{100,200} \.\.\.\], expected"),  # (one short line)
    (lambda m, a: m["config"].update(learning_rate=10 ** 400),  # (a traceback from float())
     r"learning_rate must be a positive number, got 10{194} \.\.\.0\)$"),
    (lambda m, a: m.update(run=[]), r"run is \[\], expected a record"),
    (lambda m, a: m.update(step=8), "step 8 exceeds its iteration count 7"),
    (lambda m, a: m["run"].update(rng={"bit_generator": "nope"}), "run.rng is not a random"),
    (lambda m, a: m.update(dropout_rng={"bit_generator": "PCG64", "state": {"state": -1, "inc": 1},
                                        "has_uint32": 0, "uinteger": 0}),
     "dropout_rng is not a random generator's state"),
    (lambda m, a: m["run"].update(lr_decay=[1.5, 10]), r"run.lr_decay is \[1.5, 10\]"),
    (lambda m, a: m["run"].update(lr_decay=[0.5, 0]), r"run.lr_decay is \[0.5, 0\]"),
    (lambda m, a: m["run"].update(anneal={"fraction": 0}), r"run.anneal is \{'fraction': 0\}"),
    (lambda m, a: m["run"].update(anneal={"fraction": 0.2, "window": [5, 5]}),
     r"run.anneal is .*'window': \[5, 5\]\}, expected"),
    (lambda m, a: m["run"].update(anneal={"fraction": 0.2, "window": [-1, 5]}), "run.anneal is"),
    (lambda m, a: m["run"].update(anneal={"fraction": 0.2, "start": 5}), "run.anneal is"),
    (lambda m, a: m["run"].update(anneal=[0.2]), r"run.anneal is \[0.2\]"),
    (lambda m, a: m["run"].update(anneal={"fraction": 0.2, "window": [1, 5], "steps": 0}),
     "run.anneal is"),
    (lambda m, a: m["run"].update(anneal={"fraction": 0.2, "steps": 10}), "run.anneal is"),
    (lambda m, a: m["run"].update(train_seconds=True), r"run.train_seconds is True, expected a"),
    (lambda m, a: m["config"].update(seed="abc"), r"seed must be an integer >= 0, got 'abc'"),
    (lambda m, a: m["config"].update(seed=1.5), r"seed must be an integer >= 0, got 1.5"),
    (lambda m, a: m["config"].update(seed=-1), r"seed must be an integer >= 0, got -1"),
    (lambda m, a: m["config"].update(seed=True), r"seed must be an integer >= 0, got True"),
    (lambda m, a: m["run"].update(data=dict(DATA, encoding=123)),
     r"run.data.encoding is 123, expected the name of an encoding"),
    (lambda m, a: m["run"].update(data=dict(DATA, path=123)), r"run.data.path is 123, expected"),
    (lambda m, a: m["run"].update(data=dict(DATA, val_fraction="x")),
     r"run.data.val_fraction is 'x', expected a number in \[0, 1\)"),
    (lambda m, a: m["run"].update(data=dict(DATA, val_fraction=1.0)),
     r"run.data.val_fraction is 1.0, expected a number in \[0, 1\)"),
    (lambda m, a: m["run"].update(data=dict(DATA, sha256=None)), r"run.data.sha256 is None"),
    (lambda m, a: m["run"].update(data=dict(DATA, **{"from": 8})),
     r"run.data.from is 8, expected the iteration its training began, at most the checkpoint's"),
    (lambda m, a: m["run"].update(data=dict(DATA, chars=-5)), r"run.data.chars is -5, expected"),
    (lambda m, a: m["run"].update(data=dict(DATA, skip_unknown="no")),  # (true as a string)
     r"run.data.skip_unknown is 'no', expected true or false"),
    (lambda m, a: m["run"].update(metrics=[1, 2]),
     r"run.metrics\[0\] is 1, expected a record of an evaluation"),
    (lambda m, a: m["run"].update(metrics=[RECORD, {}]), r"run.metrics\[1\] has no iteration"),
    (lambda m, a: m["run"].update(metrics=[dict(RECORD, iteration="7")]),
     r"run.metrics\[0\].iteration is '7', expected an integer >= 0"),
    (lambda m, a: m["run"].update(metrics=[dict(RECORD, val_loss=[])]),
     r"run.metrics\[0\].val_loss is \[\], expected a finite number or null"),
    (lambda m, a: m["run"].update(metrics=[dict(RECORD, val_bpc=None)]),
     r"run.metrics\[0\].val_bpc is None, expected a finite number if val_loss is one"),
    (lambda m, a: m["run"].update(metrics=[{k: v for k, v in RECORD.items() if k != "train_loss"}]),
     r"run.metrics\[0\] has no train_loss"),
    (lambda m, a: m["run"].update(val_streams="x"), r"run.val_streams is 'x', expected an"),
    (lambda m, a: m["run"].update(cadence={"eval_every": -1}), r"run.cadence is \{'eval_every'"),
    (lambda m, a: m["run"].update(cadence={"sample_length": 0}), r"run.cadence is "),
    (lambda m, a: m["run"].update(cadence={"every": 5}), r"run.cadence is "),
    (lambda m, a: m["run"].update(cadence=[5]), r"run.cadence is \[5\]"),
    (lambda m, a: m["run"].update(pending="later"), r"run.pending is 'later', expected "),
    (lambda m, a: m["run"].update(metrics=[dict(RECORD, val_streams=0)]),
     r"run.metrics\[0\].val_streams is 0, expected an integer >= 1"),
    # (records after good ones, each past the fast check that passes the good)
    *[(lambda m, a, bad=bad: m["run"].update(metrics=[RECORD, RECORD, dict(RECORD, **bad)]),
       fr"run.metrics\[2\].{message}") for bad, message in [
        ({"iteration": -1}, "iteration is -1"), ({"iteration": True}, "iteration is True"),
        ({"iteration": 2.0}, "iteration is 2.0"), ({"train_loss": math.inf}, "train_loss is inf"),
        ({"train_loss": False}, "train_loss is False"), ({"val_loss": "1"}, "val_loss is '1'"),
        ({"val_loss": None}, "val_bpc is 2.45, expected a finite number if val_loss is one"),
        ({"val_streams": True}, "val_streams is True"), ({"val_streams": 1.0}, "val_streams is")]],
])
def test_impossible_fields_are_refused_by_name(saved, change, message):
    """Each metadata field and array is checked on load: an impossible or inconsistent value is
    one line naming the field and the value, not a run that goes on as if nothing were wrong."""
    path = saved[0]
    rewrite_meta(path, change)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_null_time_record_loads(saved):
    """run.budget_from or run.wall_seconds null (a hand-edited file): loaded (a TypeError from
    comparing them, before)."""
    path = saved[0]
    for change in ({"budget_from": None, "wall_seconds": 5.0},
                   {"budget_from": 1.0, "wall_seconds": None}):
        rewrite_meta(path, lambda m, a: m["run"].update(change))
        assert checkpoint.load(path).run["wall_seconds"] == change["wall_seconds"]


def test_a_runs_records_are_encoded_once_each_and_saved_as_a_list_would_be(saved, monkeypatch):
    """The trainer's records (``Records``): a save encodes and checks only the records added
    since the save before (a long run's tens of thousands were all encoded at every save), a
    record replaced is encoded again with those after it, and the file's metadata is a plain
    list's save's, byte for byte; a bad record added is refused by name at the next save."""
    path, model, losses = saved
    encoded = []
    encoder = checkpoint._ENCODER
    monkeypatch.setattr(checkpoint, "_ENCODER", type("Counting", (), {
        "encode": lambda self, record: encoded.append(record["iteration"]) or
        encoder.encode(record)})())
    records = checkpoint.Records([RECORD, dict(RECORD, iteration=8)])
    run = {"iteration": 9, "metrics": records, "rate": np.float32(0.5)}

    def saved_as(expected):
        ckpt = Checkpoint.of(model, Vocab("abcde"), losses, run, views=True)
        checkpoint.save(path, ckpt)
        back = checkpoint.load(path).run
        plain = path.with_name("plain.npz")
        checkpoint.save(plain, dataclasses.replace(ckpt, run=dict(run, metrics=list(records))))
        assert back == checkpoint.load(plain).run == {**run, "rate": 0.5, "metrics": expected}
        assert type(back["metrics"]) is list
        with np.load(path) as npz, np.load(plain) as other:
            assert str(npz["meta"]) == str(other["meta"])  # (the records where they were)

    saved_as([RECORD, dict(RECORD, iteration=8)])
    assert encoded == [7, 8]
    records.append(dict(RECORD, iteration=9))
    encoded.clear()
    saved_as([RECORD, dict(RECORD, iteration=8), dict(RECORD, iteration=9)])
    assert encoded == [9]  # (a plain list's save: json.dumps of the whole run, uncounted)
    records[-2] = dict(RECORD, iteration=8, learning_rate=0.05)  # (as the anneal does)
    encoded.clear()
    saved_as([RECORD, dict(RECORD, iteration=8, learning_rate=0.05), dict(RECORD, iteration=9)])
    assert encoded == [8, 9]
    assert records == [RECORD, dict(RECORD, iteration=8, learning_rate=0.05),
                       dict(RECORD, iteration=9)] and len(records) == 3
    for i, bad, message in (
            (3, dict(RECORD, val_loss=float("nan")), "run.metrics[3].val_loss is nan, expected "
                                                     "a finite number or null"),
            (4, dict(RECORD, val_streams=0), "run.metrics[4].val_streams is 0, expected an "
                                             "integer >= 1"),
            (5, {"iteration": 10, "seen": {1, 2}}, "run.metrics[5] is not a JSON record (set "
                                                   "{1, 2} is not JSON)")):
        before = path.read_bytes()
        records.append(bad)
        with pytest.raises(CheckpointError) as refused:
            checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), losses, run, views=True))
        assert str(refused.value) == f"{path} not written, it would not load: {message}"
        assert path.read_bytes() == before
        records[i] = dict(RECORD, iteration=10 + i)  # (mended: saved)
        checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), losses, run, views=True))
        assert checkpoint.load(path).run["metrics"][i] == dict(RECORD, iteration=10 + i)
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), losses, {"metrics": records}))
    assert checkpoint.load(path).run == {"metrics": list(records)}  # (the run's only field; a
    # deep copy of the records, Checkpoint.of's without views)
    with pytest.raises(IndexError, match=r"^Records index 6 out of range \(6 records\)$"):
        records[6] = RECORD
    with pytest.raises(TypeError, match="^Records indices must be integers \\(a record is "
                                        "replaced whole\\), not slice$"):
        records[0:1] = [RECORD]
    copied = copy.copy(records)
    copied.append(RECORD)
    assert len(copied) == 7 and len(records) == 6


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "none.npz")


def test_a_learning_rate_lost_in_the_dtype_asked_for_is_said_of_the_checkpoint():
    """(to_model(dtype="float32") of a float64 checkpoint trained at 1e-50 said CharRNN's words,
    "learning_rate 1e-50 is 0 in float32", naming neither the checkpoint nor what to do)"""
    model = CharRNN(5, hidden_size=4, learning_rate=1e-50, dtype="float64")
    ckpt = Checkpoint.of(model, Vocab("abcde"), [], {"iteration": 0})
    for dtype in ("float32", np.float32, np.dtype("f4")):
        with pytest.raises(ValueError, match=r"^the checkpoint's learning rate 1e-50 is 0 in "
                                             r"float32, .*: use it in float64, its own$"):
            ckpt.to_model(dtype=dtype)
    assert ckpt.to_model(dtype=np.float64).config.dtype == "float64"


def test_a_missing_checkpoint_beside_a_best_model_names_it(saved):
    """(--resume DIR/checkpoint.npz of a run killed before its first checkpoint: "no such
    checkpoint", where best.npz, which continues the run, was beside it)"""
    path = saved[0]
    best = path.with_name("best.npz")
    path.rename(best)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(e.value) == (f"{path}: no such checkpoint ({best} is there: a run killed before "
                            f"its first checkpoint leaves only its best model)")
    with pytest.raises(CheckpointError, match=r"other.npz: no such checkpoint$"):
        checkpoint.load(path.with_name("other.npz"))  # (not the run's name for its checkpoint)
    best.unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint.npz: no such checkpoint$"):
        checkpoint.load(path)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_the_squares_an_optimizer_keeps_are_checked_and_only_those(tmp_path, optimizer):
    """RMSprop's m and Adam's v average squared gradients: negative there is a damaged file
    (Adam's update would take the square root of it: NaN weights); Adam's m, a signed average
    of gradients, may be negative."""
    model = CharRNN(vocab_size=5, hidden_size=8, seq_length=4, optimizer=optimizer,
                    learning_rate=0.01)
    model.train(np.arange(40) % 5, 3)
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), [], {"iteration": 3}))
    squares = "v" if optimizer == "adam" else "m"
    for prefix in optim.get(optimizer).states:
        damaged = tmp_path / f"{prefix}.npz"
        damaged.write_bytes(path.read_bytes())
        rewrite_meta(damaged, lambda m, a: a.update({prefix + "Wxh": -np.ones((8, 5))}))
        if prefix == squares:
            with pytest.raises(CheckpointError, match=f"{prefix}Wxh holds negative values "
                                                      f"\\(a sum of squares\\)"):
                checkpoint.load(damaged)
        else:
            assert (checkpoint.load(damaged).states[0]["Wxh"] == -1).all()


def test_fine_tune_keeps_the_weights_and_starts_everything_else_afresh(saved):
    path, model, _ = saved
    tuned = checkpoint.load(path).fine_tune(learning_rate=0.01, batch_size=2, optimizer="adam")
    assert (tuned.config.hidden_size, tuned.config.dtype, tuned.config.vocab_size) == (8, "float32", 5)
    assert tuned.config.learning_rate == 0.01 and tuned.config.batch_size == 2
    for name in NAMES:
        assert np.array_equal(tuned.params[name], model.params[name]), name
    assert tuned.step == 0 and tuned.position == 0 and not tuned.state.any()
    assert all(not s.flat.any() for s in tuned.states) and len(tuned.states) == 2
    default = checkpoint.load(path).fine_tune()  # the rate: a tenth of the checkpoint's
    assert default.config.learning_rate == model.config.learning_rate / 10
    assert checkpoint.fine_tune_rate(0.003, "float64") == 0.0003  # (not 0.00030000000000000003)
    rewrite_meta(path, lambda m, a: m["config"].update(learning_rate=1e-45))
    with pytest.raises(ValueError, match="1/10 of the checkpoint's 1e-45, is 0 in float32: "
                                         "give learning_rate"):
        checkpoint.load(path).fine_tune()
    assert checkpoint.load(path).fine_tune(learning_rate=0.5).config.learning_rate == 0.5
    assert default.config.optimizer == model.config.optimizer
    # another optimizer: a tenth of its usual rate, not of the checkpoint's (another's)
    other = next(o for o in optim.OPTIMIZERS.values() if o.name != model.config.optimizer)
    assert other.rate != model.config.learning_rate
    assert checkpoint.load(path).fine_tune(optimizer=other.name).config.learning_rate == \
        other.rate / 10
    assert checkpoint.fine_tune_rate(0.1, "float64", "adagrad", "adam") == 0.0002
    # the checkpoint of a fine-tune: a tenth of the rate its model was first trained at (its
    # run.rate_base, fastrnn.train's record), not of its own (each generation ten times slower)
    first = {"learning_rate": 20 * model.config.learning_rate, "optimizer": model.config.optimizer}
    rewrite_meta(path, lambda m, a: m["run"].update(rate_base=first))
    assert checkpoint.load(path).fine_tune().config.learning_rate == 2 * model.config.learning_rate
    assert checkpoint.load(path).fine_tune(optimizer=other.name).config.learning_rate == \
        other.rate / 10
    first["optimizer"] = other.name  # (its first training's optimizer, not the checkpoint's)
    rewrite_meta(path, lambda m, a: m["run"].update(rate_base=first))
    assert checkpoint.load(path).fine_tune(optimizer=other.name).config.learning_rate == \
        2 * model.config.learning_rate
    assert checkpoint.load(path).fine_tune().config.learning_rate == \
        optim.get(model.config.optimizer).rate / 10
    assert checkpoint.load(path).fine_tune(learning_rate=None).config.learning_rate == \
        optim.get(model.config.optimizer).rate / 10  # (None: not given; it was the full rate)
    # a record a later version adds to is read; one NumPy's numbers make is read as after a
    # save (it was ignored before one, and read after it); a malformed one held in memory is
    # refused by name, as load refuses it (it was ignored: a tenth of a tenth)
    rewrite_meta(path, lambda m, a: m["run"].update(rate_base={**first, "since": "1.0"}))
    tuned = checkpoint.load(path)
    assert tuned.fine_tune(optimizer=other.name).config.learning_rate == \
        2 * model.config.learning_rate
    tuned.run["rate_base"] = {"learning_rate": np.float64(0.5), "optimizer": np.str_(other.name)}
    assert tuned.fine_tune(optimizer=other.name).config.learning_rate == 0.05
    for malformed in ({"learning_rate": float("nan"), "optimizer": other.name}, [0.5],
                      {"learning_rate": 10 ** 400, "optimizer": other.name}, None):
        tuned.run["rate_base"] = malformed
        with pytest.raises(CheckpointError, match="^the checkpoint cannot be used: "
                                                  "run.rate_base is .*, expected a record of a "
                                                  "learning rate > 0 and its optimizer"):
            tuned.fine_tune(optimizer=other.name)
    # a tenth that is infinite in the dtype: said as such, with what to do
    tuned.run["rate_base"] = {"learning_rate": 1e300, "optimizer": "adagrad"}
    with pytest.raises(ValueError, match="^a fine-tune's learning rate, 1/10 of the 1e\\+300 its "
                                         "model was trained at before any fine-tune .*, is "
                                         "infinite in float32: give learning_rate$"):
        tuned.fine_tune(optimizer="adagrad")
    with pytest.raises(ValueError, match="^unknown optimizer 'bogus': choose one of adagrad, "
                                         "rmsprop, adam$"):  # (not told to give a rate)
        checkpoint.load(path).fine_tune(optimizer="bogus")
    with pytest.raises(ValueError, match="keeps the checkpoint's hidden_size"):
        checkpoint.load(path).fine_tune(hidden_size=16)
    with pytest.raises(ValueError, match="unknown setting"):
        checkpoint.load(path).fine_tune(momentum=0.9)


@pytest.mark.parametrize("cell, backend", [("lstm", "numba"), ("gru", "numba"), ("rnn", "numba"),
                                           ("lstm", "numpy")])
def test_every_cell_with_dropout_resumes_exactly_from_a_checkpoint(tmp_path, cell, backend):
    """Weights, optimizer state, (h, c), position, update count and the dropout generator
    round-trip: the restored model trains on with the same bits as the one never saved."""
    data = np.random.default_rng(0).integers(0, 7, 900)
    model = CharRNN(7, hidden_size=9, seq_length=5, batch_size=3, dtype="float32",
                    optimizer="adam", learning_rate=0.01, backend=backend, cell=cell,
                    num_layers=2, dropout=0.3, threads=2)
    losses = model.train(data, 11)
    path = tmp_path / f"{cell}.npz"
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcdefg"), losses, {"iteration": 11}))
    back = checkpoint.load(path)
    assert back.config == model.config
    restored = back.to_model(backend, threads=1)
    assert restored.state.shape == (2, 2 if cell == "lstm" else 1, 3, 9)
    after = model.train(data, 9)
    assert np.array_equal(restored.train(data, 9), after), "losses after resuming"
    assert np.array_equal(restored.weights.flat, model.weights.flat), "weights"
    assert np.array_equal(restored.state, model.state), "state"
    for s, t in zip(restored.states, model.states):
        assert np.array_equal(s.flat, t.flat), "optimizer state"


def test_the_dropout_masks_depend_on_the_generator_and_not_on_the_call_sizes():
    """11 chunks in one call or in calls of 4 + 7 draw the same masks, and dropout changes
    the training (a different model than without it)."""
    data = np.random.default_rng(1).integers(0, 7, 900)

    def run(calls, dropout=0.3):
        m = CharRNN(7, hidden_size=8, seq_length=5, batch_size=2, cell="gru", num_layers=2,
                    dropout=dropout, seed=4)
        return np.concatenate([m.train(data, n) for n in calls]), m.weights.flat

    one, w1 = run([11])
    two, w2 = run([4, 7])
    assert np.array_equal(one, two) and np.array_equal(w1, w2)
    assert not np.array_equal(run([11], dropout=0.0)[0], one)


def test_a_checkpoint_from_before_layers_and_dropout_loads_as_one_layer(saved):
    """Files written before the config knew num_layers and dropout (and had no dropout
    generator) load as the one-layer model they hold."""
    path, model, _ = saved

    def older(meta, arrays):
        del meta["config"]["num_layers"], meta["config"]["dropout"]
        meta.pop("dropout_rng", None)

    rewrite_meta(path, older)
    back = checkpoint.load(path)
    assert back.config.num_layers == 1 and back.config.dropout == 0.0
    restored = back.to_model("numba")
    assert np.array_equal(restored.weights.flat, model.weights.flat)


def _older_refuses(monkeypatch, path, version):
    """A fastrnn before format ``version`` (reading the formats before it) refuses ``path``,
    asking for an upgrade."""
    with monkeypatch.context() as older:
        older.setattr(checkpoint, "VERSION", version - 1)
        with pytest.raises(CheckpointError, match=rf"was written by a newer fastrnn \(.*, "
                                                  rf"checkpoint format {version}\); this fastrnn "
                                                  rf".* reads format {version - 1} or older: "
                                                  rf"upgrade"):
            checkpoint.load(path)


def test_grad_clip_is_saved_as_an_older_fastrnn_would_read_it(saved, monkeypatch):
    """Files written before the config knew grad_clip load with the clip they were trained
    with, 5; a model of that clip is saved as before (format 2, no grad_clip: an older
    fastrnn reads it), one of another clip as format 4, which an older fastrnn refuses (it
    would train at 5) by saying to upgrade; the clip is kept by a fine-tune unless given."""
    path, model, _ = saved

    def meta():
        with np.load(path) as npz:
            return json.loads(str(npz["meta"]))

    assert meta()["version"] == 2 and "grad_clip" not in meta()["config"]
    assert checkpoint.load(path).config.grad_clip == 5.0
    assert checkpoint.load(path).to_model("numba").config.grad_clip == 5.0
    model.config = dataclasses.replace(model.config, grad_clip=0.25)
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), [], {}))
    assert meta()["version"] == 4 and meta()["config"]["grad_clip"] == 0.25
    assert checkpoint.load(path).config.grad_clip == 0.25
    _older_refuses(monkeypatch, path, 4)
    assert checkpoint.load(path).to_model("numpy").config.grad_clip == 0.25
    assert checkpoint.load(path).fine_tune().config.grad_clip == 0.25
    assert checkpoint.load(path).fine_tune(grad_clip=0).config.grad_clip == 0.0
    rewrite_meta(path, lambda meta, arrays: meta["config"].update(grad_clip=-2))
    with pytest.raises(CheckpointError, match=r"grad_clip must be a finite number >= 0 "
                                              r"\(0: no clipping\), got -2"):
        checkpoint.load(path)
    pending = Checkpoint.of(model, Vocab("abcde"), [], {"pending": "end"})
    checkpoint.save(path, pending)
    assert meta()["version"] == 4 and meta()["run"]["pending"] == "end"
    checkpoint.save(path, dataclasses.replace(pending, config=dataclasses.replace(
        pending.config, grad_clip=5)))
    assert meta()["version"] == 3 and "grad_clip" not in meta()["config"]


def test_a_long_run_record_is_held_apart_as_utf8_bytes(saved, monkeypatch):
    """A run record of more than RUN_TEXT_INLINE characters of JSON (a long run's records) is
    written as format 5: the record's UTF-8 bytes in an array of their own, beside metadata
    that an older fastrnn reads enough of to ask for an upgrade (NumPy's text array, which
    held it, takes 4 bytes a character); up to the limit, as before; read back the same by
    load and run_record; a damaged array named."""
    path, model, losses = saved
    monkeypatch.setattr(checkpoint.config, "RUN_TEXT_INLINE", 400)
    records = [dict(RECORD, iteration=i, data="\u00e9t\u00e9") for i in range(5)]

    def file():
        with np.load(path) as npz:
            return json.loads(str(npz["meta"])), {k: npz[k] for k in npz.files if k != "meta"}

    for n, pending, clip, version in ((1, None, 5, 2), (1, "end", 0.5, 4), (2, None, 5, 5),
                                      (5, "end", 0.5, 5)):
        run = {"iteration": 9, "metrics": records[:n], **({"pending": pending} if pending else {})}
        text = json.dumps(run)
        assert (len(text) > 400) == (version == 5), len(text)
        model.config = dataclasses.replace(model.config, grad_clip=clip)
        checkpoint.save(path, Checkpoint.of(model, Vocab("abcde"), losses, run))
        meta, arrays = file()
        assert meta["version"] == version
        if version == 5:
            assert "run" not in meta and arrays["run"].dtype == np.uint8
            assert arrays["run"].tobytes() == text.encode()  # (ASCII: a byte a character)
        else:
            assert meta["run"] == run and "run" not in arrays
        assert checkpoint.load(path).run == checkpoint.run_record(path) == run
    _older_refuses(monkeypatch, path, 5)
    good = path.read_bytes()
    for damage, message in (
            (lambda a: a.pop("run"), f"{path} is not a usable fastrnn checkpoint (it has no "
                                     f"'run')"),
            (lambda a: a.update(run=a["run"].astype(np.int32)), f"{path} is corrupt: run is "
             f"int32({len(text)},), expected the UTF-8 bytes of a JSON record (uint8, one axis)"),
            (lambda a: a.update(run=np.frombuffer(b"\xff{}", np.uint8)), f"{path} is not a "
             f"usable fastrnn checkpoint (malformed: 'utf-8' codec can't decode byte 0xff in "
             f"position 0: invalid start byte)"),
            (lambda a: a.update(run=np.zeros(0, np.uint8)), f"{path} is not a usable fastrnn "
             f"checkpoint (malformed: Expecting value: line 1 column 1 (char 0))"),
            (lambda a: a.update(run=np.frombuffer(b"[1]", np.uint8)), f"{path} is corrupt: run "
             f"is [1], expected a record of the training run")):
        path.write_bytes(good)
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        damage(arrays)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(CheckpointError) as refused:
            checkpoint.load(path)
        assert str(refused.value) == message
        assert checkpoint.run_record(path) is None


def test_a_file_that_cannot_be_opened_is_not_called_corrupt(tmp_path):
    """(a symbolic link's loop was "not a readable fastrnn checkpoint (corrupt or truncated:
    [Errno 40] ...)") An error opening the file names itself; one in its content is
    corruption."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(tmp_path / 'loop'))}: cannot "
                                              f"read it \\(Too many levels of symbolic links\\)$"):
        checkpoint.load(tmp_path / "loop")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + b"x" * 100)
    with pytest.raises(CheckpointError, match="is not a readable fastrnn checkpoint \\(corrupt"):
        checkpoint.load(tmp_path / "bad.npz")
