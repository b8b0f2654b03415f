"""One versioned checkpoint file: everything needed to resume training exactly or to sample.

The file is a NumPy ``.npz`` archive (no pickles). Arrays: the parameters ``Wxh Whh Why bh by``,
the optimizer state ``mWxh ... mby`` (Adagrad memory, RMSprop mean square or Adam's first
moment) and, for Adam, ``vWxh ... vby``, the hidden state ``h`` and the per-iteration loss history
``losses``; a JSON document ``meta`` holds the format name and version, the model config, the
vocabulary, the data position, the iteration count, the sampling RNG state and the metrics.

Writes are atomic (``files.write_atomically``): a reader, or a crash at any moment, sees either
the old file or the new one, never a partial one.
"""

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, files
from .model import CharRNN, Config
from .vocab import Vocab

FORMAT = "fastrnn-checkpoint"
VERSION = 1
NAMES = ("Wxh", "Whh", "Why", "bh", "by")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or used; the message names the file and the reason."""


@dataclass
class Checkpoint:
    """A model's complete state plus the training run's bookkeeping (``run``: a JSON dict)."""

    config: Config
    vocab: Vocab
    params: list
    mems: list
    h: np.ndarray           # (H, 1); (B, H) for B > 1 streams
    position: int
    losses: np.ndarray      # float64, one per iteration so far
    run: dict = field(default_factory=dict)
    mems2: list = None      # Adam's second moment (None for Adagrad and RMSprop)
    step: int = 0           # optimizer updates made

    @classmethod
    def of(cls, model, vocab, losses, run):
        return cls(model.config, vocab, list(model.params), list(model.mems), model.h, model.position,
                   np.asarray(losses, np.float64), run,
                   None if model.mems2 is None else list(model.mems2), model.step)

    def to_model(self, backend="numba", dtype=None, threads=None):
        """A CharRNN holding this state (cast to ``dtype`` if given), on ``backend``."""
        c = self.config
        dtype = c.dtype if dtype is None else dtype
        model = CharRNN(c.vocab_size, c.hidden_size, c.seq_length, c.learning_rate, dtype,
                        c.seed, backend, c.batch_size, threads, c.optimizer)
        for dst, src in zip([*model.params, *model.mems], [*self.params, *self.mems]):
            dst[...] = src
        if model.mems2 is not None:
            for dst, src in zip(model.mems2, self.mems2):
                dst[...] = src
        model.step = self.step
        model.h[...] = self.h
        model.position = self.position
        return model


def save(path, ckpt):
    """Write ``ckpt`` to ``path`` atomically (``files.write_atomically``)."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "fastrnn": __version__,
            "config": ckpt.config.to_dict(), "vocab": ckpt.vocab.chars,
            "position": int(ckpt.position), "step": int(ckpt.step), "run": ckpt.run}
    arrays = {name: a for name, a in zip(NAMES, ckpt.params)}
    arrays.update({"m" + name: a for name, a in zip(NAMES, ckpt.mems)})
    if ckpt.mems2 is not None:
        arrays.update({"v" + name: a for name, a in zip(NAMES, ckpt.mems2)})
    arrays.update(h=ckpt.h, losses=ckpt.losses, meta=np.array(json.dumps(meta)))
    files.write_atomically(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Read a checkpoint; CheckpointError (one line, naming the file) if it is unusable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}  # reads (and CRC-checks) every array
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a checkpoint") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is not a readable fastrnn checkpoint "
                              f"(corrupt or truncated: {e})") from None
    try:
        meta = json.loads(str(arrays["meta"]))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a fastrnn checkpoint")
        if meta.get("version", 0) > VERSION:
            raise CheckpointError(
                f"{path} was written by a newer fastrnn ({meta.get('fastrnn', '?')}, checkpoint "
                f"format {meta['version']}); this fastrnn {__version__} reads format {VERSION} "
                f"or older: upgrade fastrnn to use it")
        config = Config(**meta["config"])
        vocab = Vocab(meta["vocab"])
        mems2 = [arrays["v" + n] for n in NAMES] if config.optimizer == "adam" else None
        ckpt = Checkpoint(config, vocab, [arrays[n] for n in NAMES],
                          [arrays["m" + n] for n in NAMES], arrays["h"], int(meta["position"]),
                          arrays["losses"], meta.get("run", {}), mems2, int(meta.get("step", 0)))
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path} is not a usable fastrnn checkpoint "
                              f"(missing or malformed {e})") from None
    _check_shapes(path, ckpt)
    return ckpt


def _check_shapes(path, ckpt):
    c = ckpt.config
    H, V = c.hidden_size, c.vocab_size
    B = c.batch_size
    expected = [(H, V), (H, H), (V, H), (H, 1), (V, 1)] * 2 + [(H, 1) if B == 1 else (B, H)]
    names = [*NAMES, *("m" + n for n in NAMES), "h"]
    arrays = ckpt.params + ckpt.mems + [ckpt.h]
    if ckpt.mems2 is not None:
        names += ["v" + n for n in NAMES]
        arrays += ckpt.mems2
        expected += expected[:5]
    for name, a, shape in zip(names, arrays, expected):
        if a.shape != shape or a.dtype != np.dtype(c.dtype):
            raise CheckpointError(f"{path} is corrupt: {name} is {a.dtype}{a.shape}, the config "
                                  f"says {c.dtype}{shape}")
    if len(ckpt.vocab) != V:
        raise CheckpointError(f"{path} is corrupt: {len(ckpt.vocab)} vocabulary characters for "
                              f"vocab_size {V}")
    if ckpt.losses.ndim != 1 or ckpt.losses.dtype != np.float64:
        raise CheckpointError(f"{path} is corrupt: losses is {ckpt.losses.dtype}{ckpt.losses.shape}")
