"""Checkpoints: exact round trip, atomic writes, and a clear error for every unusable file."""

import json
import os

import numpy as np
import pytest

from fastrnn import CharRNN, Vocab, checkpoint
from fastrnn.checkpoint import Checkpoint, CheckpointError


@pytest.fixture
def saved(tmp_path):
    model = CharRNN(vocab_size=5, hidden_size=8, seq_length=4, dtype="float32", seed=3)
    data = np.arange(40) % 5
    losses = model.train(data, 7)
    ckpt = Checkpoint.of(model, Vocab("abcde"), losses, {"iteration": 7, "note": "x"})
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, ckpt)
    return path, model, losses


def test_round_trip_is_exact(saved):
    path, model, losses = saved
    back = checkpoint.load(path)
    assert back.config == model.config and back.vocab == Vocab("abcde")
    for a, b in zip(back.params + back.mems + [back.h], [*model.params, *model.mems, model.h]):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert back.position == model.position and np.array_equal(back.losses, losses)
    assert back.run == {"iteration": 7, "note": "x"}
    restored = back.to_model("numpy", dtype="float64")
    assert restored.params[1].dtype == np.float64 and np.array_equal(restored.params[1], model.params[1])


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


def _rewrite_meta(path, change):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"not a zip file at all"), "corrupt or truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]), "corrupt or truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:-30]), "corrupt or truncated"),
    (lambda p: _rewrite_meta(p, lambda m, a: m.update(version=99, fastrnn="9.0")),
     r"newer fastrnn \(9.0, checkpoint format 99\).*upgrade"),
    (lambda p: _rewrite_meta(p, lambda m, a: m.update(format="something-else")), "not a fastrnn checkpoint"),
    (lambda p: _rewrite_meta(p, lambda m, a: m.pop("config")), "missing or malformed"),
    (lambda p: _rewrite_meta(p, lambda m, a: a.update(Whh=np.zeros((3, 3), np.float32))),
     r"corrupt: Whh is float32\(3, 3\)"),
    (lambda p: _rewrite_meta(p, lambda m, a: a.pop("losses")), "missing or malformed"),
])
def test_unusable_checkpoints_are_named(saved, damage, message):
    path = saved[0]
    damage(path)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "none.npz")
