"""One versioned checkpoint file: everything needed to resume training exactly or to sample.

The file is a NumPy ``.npz`` archive (no pickles). Arrays, named by the model's spec
(``Spec.named``): the parameters (``Wxh Whh bh Why by`` for min-char-rnn's model), the
optimizer's state buffers prefixed by their names (``mWxh ...``; Adam also ``vWxh ...``), the
recurrent state ``state (L, S, B, H)`` and the loss history ``losses`` (one per iteration, or
past 2^16 the entries of ``metrics.LossHistory``, its stride in the run record); a JSON
document ``meta`` holds the format name and version, the model config (cell, layers, dropout
and gradient clip included), the vocabulary, the data position, the update count, the dropout
generator's state, and the training run's bookkeeping (iteration, sampling RNG state,
metrics). Files written before the cell, layer and dropout settings existed load as the
one-layer model they hold, and those without a gradient clip with min-char-rnn's, 5.

Format 2 writes biases as vectors and the state with its layer axis; format 1 files (biases
(n, 1), the hidden state as ``h``) still load. Format 3 is format 2 with a validation that a
stop request cut short (``run.pending``, which the resumed run does first): written only
then, so that an older fastrnn, which would resume without it (its samples then differing
from the uninterrupted run's), refuses the file and says to upgrade. Format 4 is a model whose
gradient clip is not 5 (``grad_clip`` in its config; with 5 the config leaves it out), which an
older fastrnn would train at 5: it refuses the file the same way. Format 5 holds the run record
apart from ``meta``, as the UTF-8 bytes of its JSON (``run``, uint8): written only for a record
of more than ``config.RUN_TEXT_INLINE`` characters (a long run's evaluation records, which
``meta``'s NumPy text would store at 4 bytes a character).

Writes are atomic (``files.write_atomically``): a reader, or a crash at any moment, sees either
the old file or the new one, never a partial one.
"""

import copy
import json
import math
import operator
import tokenize
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__, config, files, optim, validate
from .model import ARCHITECTURE, CharRNN, Config, dtype_name
from .schedule import PIECES
from .spec import Spec
from .vocab import Vocab

FORMAT = "fastrnn-checkpoint"
VERSION = 5  # the newest format this reads (and writes, for a run record held apart)
CLIP_VERSION = 4  # the format of one of another grad_clip
PENDING_VERSION = 3  # the format of one with run.pending (a validation owed)
PLAIN_VERSION = 2  # the format of one with neither (fastrnn before format 3 reads it too)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what an .npz (a zip archive) starts with
RUN, RUN_APART = "run", 5  # format 5's array of the run record, held apart from meta
CHECKPOINT, BEST = "checkpoint.npz", "best.npz"  # what fastrnn.train writes in its --out
ASIDE = ".overwritten"  # an old run's file in --out, renamed so while a new run replaces it


class CheckpointError(ValueError):
    """A checkpoint cannot be read or used; the message names the file and the reason."""


# What reading a damaged archive raises: zipfile's errors (an unknown zip version, a
# NotImplementedError; a member flagged as encrypted, a RuntimeError), np.load's (a .npy header
# it cannot parse: tokenize.TokenError or a SyntaxError), json's (nesting past the recursion
# limit: RecursionError, a RuntimeError too) and the rest
CORRUPT = (OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError, SyntaxError,
           tokenize.TokenError)


def lineage(ckpt):
    """(rate, optimizer, own): the learning rate a fine-tune of ``ckpt`` is a part of, and the
    optimizer it was for: for the checkpoint of a fine-tune, the rate of its model's training
    before any fine-tune, which it records (``run.rate_base``, ``fastrnn.train``'s), so that
    a fine-tune of a fine-tune is not a tenth of a tenth (each generation ten times slower),
    with ``own`` the checkpoint's own (rate, optimizer); otherwise the checkpoint's own
    --learning-rate (its base rate, before any decay or anneal) and optimizer, and ``own``
    None. A CheckpointError if ``run.rate_base`` is there but not such a record (``load``
    refuses it: a Checkpoint held in memory)."""
    rate, optimizer = ckpt.config.learning_rate, ckpt.config.optimizer
    if not isinstance(ckpt.run, dict) or "rate_base" not in ckpt.run:
        return rate, optimizer, None
    base = _rate_base(ckpt.run["rate_base"])
    if base is None:
        raise CheckpointError(f"the checkpoint cannot be used: run.rate_base is "
                              f"{validate.shown(ckpt.run['rate_base'])}, expected {RATE_BASE}")
    return (*base, None if base == (rate, optimizer) else (rate, optimizer))


RATE_BASE = f"a record of a learning rate > 0 and its optimizer ({', '.join(optim.OPTIMIZERS)})"


def _rate_base(base):
    """``base``, a ``run.rate_base`` record, as (rate, optimizer): {"learning_rate": a finite
    number > 0 (JSON's or NumPy's), "optimizer": a name in ``optim.OPTIMIZERS``}, keys a later
    version may add aside; None if it is not one."""
    if not isinstance(base, dict) or not {"learning_rate", "optimizer"} <= set(base):
        return None
    optimizer = base["optimizer"]
    if not isinstance(optimizer, str) or optimizer not in optim.OPTIMIZERS:
        return None
    try:
        return validate.positive("learning_rate", base["learning_rate"]), optimizer
    except ValueError:
        return None


def fine_tune_base(rate, optimizer=None, to=None, own=None):
    """(rate, its words): what a fine-tune's learning rate is a part of, for a checkpoint
    whose model ``optimizer`` trained at ``rate`` (``lineage``'s; ``own``: the checkpoint's
    own (rate, optimizer), where that is a fine-tune's) and fine-tuned by ``to`` (None: the
    same): that rate, or another optimizer's usual one (``optim.Optimizer.rate``: Adagrad's
    0.1 is 50 times Adam's)."""
    first = f"the checkpoint's {rate:g}" if own is None else \
        f"the {rate:g} its model was trained at before any fine-tune"
    if to is None or to == optimizer:
        return rate, first + ("" if own is None else (
            f" (the checkpoint's own {own[0]:g} is a fine-tune's"
            + (f", {own[1]}'s" if own[1] != optimizer else "") + ")"))
    usual = optim.get(to).rate
    return usual, f"{to}'s usual {usual:g} ({first} was {optimizer}'s)"


def fine_tune_rate(rate, dtype, optimizer=None, to=None, own=None):
    """A fine-tune's learning rate unless given: ``fine_tune_base``'s rate divided by
    ``config.FINE_TUNE_DIVISOR``, to 12 significant digits (0.003 / 10 is
    0.00030000000000000003); a ValueError if that is 0 or infinite in ``dtype``."""
    rate, whose = fine_tune_base(rate, optimizer, to, own)
    tuned = float(f"{rate / config.FINE_TUNE_DIVISOR:.12g}")
    if lost := validate.lost_in(tuned, dtype):
        raise ValueError(f"a fine-tune's learning rate, 1/{config.FINE_TUNE_DIVISOR} of "
                         f"{whose}, is {lost} in {dtype}")
    return tuned


class Records(Sequence):
    """A run's evaluation records (``run["metrics"]``: ``metrics.py``'s) as ``fastrnn.train``
    keeps them: a sequence whose records ``save`` encodes as JSON and checks once each, keeping
    the text, so that a save of a long run (tens of thousands of records) encodes and checks only
    the records added since the one before, not all of them. A record is replaced whole
    (``records[i] = {...}``, which encodes it and those after it again at the next save), never
    changed in place: ``save`` would write it as it first encoded it (a deep copy,
    ``Checkpoint.of``'s without ``views``, keeps the texts too). Saved from one thread (a record
    replaced during a save would leave the texts out of step)."""

    def __init__(self, records=()):
        self._records = list(records)
        self._texts = []  # the JSON of the first len(_texts) records, checked

    def __len__(self):
        return len(self._records)

    def __getitem__(self, index):
        return self._records[index]

    def __iter__(self):
        return iter(self._records)

    def __eq__(self, other):
        if not isinstance(other, (list, Records)):
            return NotImplemented
        return self._records == list(other)

    __hash__ = None  # (mutable, as a list is)

    def __repr__(self):
        return f"Records({self._records!r})"

    def __copy__(self):  # (not sharing the lists: an append to the copy is not the original's)
        copied = Records(self._records)
        copied._texts = list(self._texts)
        return copied

    def append(self, record):
        self._records.append(record)

    def __setitem__(self, index, record):
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"Records indices must be integers (a record is replaced whole), "
                            f"not {type(index).__name__}") from None
        if not -len(self._records) <= index < len(self._records):
            raise IndexError(f"Records index {index} out of range ({len(self._records)} records)")
        index %= len(self._records)
        self._records[index] = record
        del self._texts[index:]

    def _json(self, where):
        """The records as a JSON list, as json.dumps writes one: the records not yet encoded
        are, after ``load``'s checks of them (CheckpointError: ``where``, then what is wrong)."""
        start, texts = len(self._texts), []
        for i in range(start, len(self._records)):
            try:
                texts.append(_ENCODER.encode(self._records[i]))
            except (TypeError, ValueError, RecursionError) as e:
                raise CheckpointError(f"{where}: run.metrics[{i}] is not a JSON record "
                                      f"({e})") from None
        try:
            records = json.loads(f"[{', '.join(texts)}]")  # (as load reads them)
        except RecursionError as e:  # (nested deeper than the decoder goes)
            raise CheckpointError(f"{where}: run.metrics is not a JSON list ({e})") from None
        for i, record in enumerate(records, start):
            _check_record(where, i, record)
        self._texts += texts
        return f"[{', '.join(self._texts)}]"


@dataclass
class Checkpoint:
    """A model's complete state plus the training run's bookkeeping (``run``: a JSON dict)."""

    config: Config
    vocab: Vocab
    params: dict            # {name: array}, the spec's names
    states: list            # one {name: array} per optimizer state buffer
    state: np.ndarray       # (L, S, B, H)
    position: int
    losses: np.ndarray      # float64, one per iteration so far (fastrnn.train's, past 2^16
                            # iterations: the means of run["loss_stride"], metrics.LossHistory)
    run: dict = field(default_factory=dict)
    step: int = 0           # optimizer updates made
    dropout_rng: dict = None  # the dropout generator's state (None: a fresh one from the seed)

    def __repr__(self):  # (the dataclass's printed every array)
        return (f"Checkpoint({self.config!r}, {self.vocab!r}, iteration "
                f"{self.run.get('iteration') if isinstance(self.run, dict) else None}, step "
                f"{self.step}, position {self.position})")

    @property
    def encoding(self):
        """The encoding of the text the model was trained on, as ``fastrnn.train`` recorded it
        (``run.data.encoding``): what ``score`` and ``sample --prime-file`` read a text in
        unless told; None where none is recorded (a checkpoint saved from Python)."""
        data = self.run.get("data") if isinstance(self.run, dict) else None
        return data.get("encoding") if isinstance(data, dict) else None

    @classmethod
    def of(cls, model, vocab, losses, run, views=False):
        """The model's state now: copies, which its further training leaves as they are
        (``views``: the model's own arrays instead, and ``run`` itself, not a deep copy, for a
        checkpoint written before the model trains on: at a save, copies of the weights and
        optimizer state took their size in memory again, and the copy of a long run's records
        most of a save's time). ``losses``: one per iteration (the run's history, 1-D; or as
        ``metrics.LossHistory.entries()`` holds it, with its stride in ``run``)."""
        if not isinstance(model, CharRNN):
            raise ValueError(f"model must be a CharRNN, got {type(model).__name__}")
        spec = model.spec
        vocab = Vocab.checked(vocab, "Vocab.from_text(text) of its training text",
                              model.config.vocab_size)  # (a size save refused, later, as a
        # file's fault)
        try:
            losses = np.array(losses, np.float64)
        except (TypeError, ValueError) as e:  # (a list of train()'s arrays of unequal lengths)
            raise ValueError(f"losses must be one number per iteration, e.g. "
                             f"np.concatenate of train()'s returns ({e})") from None
        kept = (lambda w: w) if validate.flag("views", views) else spec.copy
        with model._busy:  # (not while a call in another thread trains it)
            model._checked_whole()  # (a replaced array that does not fit: named)
            return cls(model.config, vocab, spec.named(kept(model.weights)),
                       [spec.named(kept(s)) for s in model.states], model.state.copy(),
                       model.position, losses, run if views else copy.deepcopy(run),
                       model.step,
                       model._checked_dropout_rng().bit_generator.state)

    def fine_tune(self, backend="numba", threads=None, **settings):
        """A new model for fine-tuning: this checkpoint's cell, layers, hidden size, dtype,
        vocabulary size and weights; fresh optimizer state, update count, hidden state and
        position; its other settings (learning_rate, seq_length, batch_size, optimizer, seed,
        dropout, grad_clip) as given, else the checkpoint's, but for the learning rate: the
        checkpoint's (that of its model's training before any fine-tune, for the checkpoint of a
        fine-tune that ``fastrnn.train`` ran: ``lineage``; or, with another optimizer, that
        one's usual rate) divided by ``config.FINE_TUNE_DIVISOR`` (10, ``fine_tune_rate``).
        Train it on a text encoded with this checkpoint's ``vocab``."""
        c = self.config.to_dict()
        clash = sorted(set(settings) & set(ARCHITECTURE))
        if clash:
            raise ValueError(f"fine-tuning keeps the checkpoint's {', '.join(clash)}")
        unknown = sorted(set(settings) - set(c))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        if settings.get("learning_rate") is None:  # (None: not given, as CharRNN's)
            other = settings.get("optimizer", c["optimizer"])
            optim.get(other)  # (an unknown one refused as such, not as a rate to give)
            rate, optimizer, own = lineage(self)
            try:
                settings["learning_rate"] = fine_tune_rate(rate, c["dtype"], optimizer, other,
                                                           own)
            except ValueError as e:
                raise ValueError(f"{e}: give learning_rate") from None
        model = CharRNN(**{**c, **settings}, backend=backend, threads=threads)
        _copy_into(model.spec.named(model.weights), self.params, "", c["dtype"])
        return model

    def to_model(self, backend="numba", dtype=None, threads=None, optimizer_state=True):
        """A CharRNN holding this state (cast to ``dtype`` if given), on ``backend``; a
        ValueError if a number does not fit in ``dtype`` (float64's 1e300 in float32, or a
        learning rate of 1e-50: 0 in float32); ``optimizer_state=False`` leaves the optimizer's
        state as a new model's (zeros, and no update counted: ``step`` 0), for what never reads
        it (sampling, scoring: then a state that ``dtype`` cannot hold is no refusal), and
        a CheckpointError for a position, update count or dropout generator state that
        ``load`` refuses (a Checkpoint made or changed in memory: they were copied into the
        model unchecked); the arrays' copies name theirs."""
        dtype = self.config.dtype if dtype is None else dtype
        name = dtype_name(dtype)  # (as CharRNN names it; one it does not take: it says why)
        for setting, said in (("learning_rate", "learning rate"), ("grad_clip", "grad_clip")):
            value = getattr(self.config, setting)
            if name and value and (lost := validate.lost_in(value, name)):
                raise ValueError(f"the checkpoint's {said} {value:g} is {lost} in {name}, and a "
                                 f"model's must be a number in its dtype, even to sample or "
                                 f"score: use it in {self.config.dtype}, its own")
        model = CharRNN(**{**self.config.to_dict(), "dtype": dtype}, backend=backend,
                        threads=threads)
        _copy_into(model.spec.named(model.weights), self.params, "", dtype)
        if optimizer_state:  # (else a new model's: zeros, step 0)
            for prefix, dst, src in zip(model.optimizer.states, model.states, self.states):
                _copy_into(model.spec.named(dst), src, prefix, dtype)
            model.step = self.step
        _copy_into({"state": model.state}, {"state": self.state}, "", dtype)
        model.position = self.position
        _check_counters("the checkpoint cannot be used", **_counters(self),
                        dropout_rng=self.dropout_rng)
        if self.dropout_rng is not None:
            model.dropout_rng.bit_generator.state = self.dropout_rng
        return model


_PIECE = 1 << 16  # elements a check of an array reads at a time


def _all(a, test):
    """Whether ``test`` (an element-wise predicate, e.g. np.isfinite) holds for every element
    of ``a``, read in pieces of ``_PIECE``: no temporary the size of a tensor (a run saved
    because memory ran out must not run out again in its checks)."""
    flat = a.reshape(-1)  # (a view: the arrays checked are contiguous)
    return all(test(flat[i:i + _PIECE]).all() for i in range(0, flat.size, _PIECE))


def _copy_into(arrays, src, prefix, dtype):
    """Copy each of the model's named ``arrays`` from ``src`` (the checkpoint's, by name): a
    ValueError naming one that is missing, of another shape, not finite, or too large for
    ``dtype`` (float64's 1e300 in float32). ``prefix``: an optimizer state's, for the names."""
    for name, array in arrays.items():
        if name not in src:
            raise ValueError(f"the checkpoint has no {prefix + name}, which its model has")
        if np.shape(src[name]) != array.shape:
            raise ValueError(f"{prefix + name} has shape {np.shape(src[name])}, the model's "
                             f"is {array.shape}")
        with np.errstate(over="ignore"):
            array[...] = src[name]
        if not _all(array, np.isfinite):
            if not _all(src[name], np.isfinite):  # (load refuses these)
                raise ValueError(f"{prefix + name} holds NaN or infinite values")
            largest = float(np.abs(src[name]).max())
            raise ValueError(f"{prefix + name} holds {largest:.3g}, more than {dtype} can "
                             f"hold: this checkpoint cannot be used in {dtype}")


def save(path, ckpt):
    """Write ``ckpt`` to ``path`` atomically (``files.write_atomically``), after the checks
    ``load`` makes: a checkpoint that ``load`` would refuse is a CheckpointError, not a file
    (and a file already at ``path`` stays as it was)."""
    if not isinstance(ckpt, Checkpoint):
        raise ValueError(f"ckpt must be a Checkpoint (Checkpoint.of(model, vocab, losses, run) "
                         f"makes one), got {type(ckpt).__name__}")
    path = files.path_of(path)
    run, run_text, counts = _checked(f"{path} not written, it would not load", ckpt)
    settings = ckpt.config.to_dict()
    if settings["grad_clip"] == config.CLIP:  # (what fastrnn before the setting trained with)
        del settings["grad_clip"]
    apart = len(run_text) > config.RUN_TEXT_INLINE  # (a long run's records)
    version = VERSION if apart else CLIP_VERSION if "grad_clip" in settings else \
        PENDING_VERSION if run.get("pending") else PLAIN_VERSION
    meta = {"format": FORMAT, "version": version, "fastrnn": __version__, "config": settings,
            "vocab": ckpt.vocab.chars, **counts}
    if ckpt.dropout_rng is not None:
        meta["dropout_rng"] = ckpt.dropout_rng
    # the run record's JSON as _checked made it (a long run's records: most of a save's time)
    meta = json.dumps(meta) if apart else f'{json.dumps(meta)[:-1]}, "run": {run_text}}}'
    arrays = dict(ckpt.params)
    for prefix, named in zip(optim.get(ckpt.config.optimizer).states, ckpt.states):
        arrays.update({prefix + name: a for name, a in named.items()})
    arrays.update(state=ckpt.state, losses=ckpt.losses, meta=np.array(meta))
    if apart:  # (JSON's text is ASCII: a byte a character)
        arrays[RUN] = np.frombuffer(run_text.encode(), np.uint8)
    files.write_atomically(path, lambda f: np.savez(f, **arrays))


def _checked(where, ckpt):
    """``load``'s checks of a Checkpoint held in memory (CheckpointError: ``where``, then what
    is wrong); returns (run, text, counts): its run record as JSON's numbers and as the JSON
    text a file holds (NumPy's numbers written as JSON's), and its position and step as
    ints."""
    c = ckpt.config
    counts = _counters(ckpt)
    records = ckpt.run.get("metrics") if isinstance(ckpt.run, dict) else None
    kept = isinstance(records, Records)  # (the trainer's: encoded and checked record by record)
    keys = list(ckpt.run) if kept else []
    at = keys.index("metrics") if kept else 0  # (the records spliced in where they are)
    parts = [{k: ckpt.run[k] for k in keys[:at]}, {k: ckpt.run[k] for k in keys[at + 1:]}] \
        if kept else [ckpt.run]
    try:  # (NumPy numbers in the run record as the JSON numbers they are)
        texts = [json.dumps(part, default=_plain) for part in parts]
        decoded = [json.loads(part) for part in texts]
    except (TypeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: run is not a JSON record ({e})") from None
    if kept:
        (before, after), (head, tail) = decoded, texts
        text = (f'{head[:-1]}{", " if before else ""}"metrics": {records._json(where)}'
                f'{", " + tail[1:] if after else "}"}')
        run = {**before, "metrics": records, **after}
    else:
        text, run = texts[0], decoded[0]
    _check_shapes(where, ckpt, Spec(c.cell, c.vocab_size, c.hidden_size, c.num_layers))
    _check_fields(where, replace(ckpt, run=run, **counts))
    return run, text, counts


def _counters(ckpt):
    """{"position": ..., "step": ...} of ``ckpt`` as a file holds them: a NumPy int as an int
    (anything else as it is, for the checks to name)."""
    return {k: int(v) if validate.is_integer(v) else v
            for k, v in (("position", ckpt.position), ("step", ckpt.step))}


def _plain(value):
    """A NumPy scalar or array as the Python number or list JSON writes (json.dumps' default)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON")


_ENCODER = json.JSONEncoder(default=_plain)  # (json.dumps(value, default=_plain), made once)


def _a_directory(path):
    """The message for a directory given as a checkpoint: a run's --out, it names the
    checkpoints in it."""
    held = [str(path / name) for name in (CHECKPOINT, BEST) if (path / name).is_file()]
    return f"{path} is a directory, not a checkpoint" + (
        f" (it holds {' and '.join(held)})" if held else "")


def load(path):
    """Read a checkpoint; CheckpointError (one line, naming the file) if it is unusable. Only
    the arrays a checkpoint has are read, each after its header: one whose data could not be
    in the file, that the config contradicts, or that memory cannot hold is refused unread."""
    path = files.path_of(path, CheckpointError)
    kind = files.not_regular(path)
    if kind == "a directory":
        raise CheckpointError(_a_directory(path))
    if kind:
        raise CheckpointError(f"{path} is {kind}, not a checkpoint file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        aside, best = Path(str(path) + ASIDE), path.with_name(BEST)
        raise CheckpointError(f"{path}: no such checkpoint" + (
            f" ({aside}, set aside by an --overwrite run that has not saved yet, or was killed "
            f"before it did, is the run that was there: give that file)" if aside.is_file()
            else f" ({best} is there: a run killed before its first checkpoint leaves only its "
                 f"best model)" if path.name == CHECKPOINT
            and best.is_file() else "")) from None
    except IsADirectoryError:
        raise CheckpointError(_a_directory(path)) from None
    except OSError as e:  # (not the file's content: a symbolic link's loop, a permission)
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        with f:
            head = f.read(len(ZIP_MAGIC[0]))
            if head not in ZIP_MAGIC:
                if not head:
                    raise EOFError("it is empty")
                if any(m.startswith(head) for m in ZIP_MAGIC):
                    raise EOFError(f"it ends after {len(head)} bytes")
                if not head.strip(b"\0"):  # what a crash can leave of a file's blocks
                    raise EOFError("it starts with zero bytes where an .npz archive's header is")
                # np.load would read it as a .npy array or as a pickle: neither is a checkpoint
                raise CheckpointError(f"{path} is not a fastrnn checkpoint (not an .npz archive)")
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:
                meta = _read(path, npz, {"meta": None})["meta"]
                meta, config, vocab, spec = _interpret(path, meta, npz.files)
                if meta["version"] >= RUN_APART:
                    meta["run"] = _run_apart(path, npz)
                names = [t.key for t in spec.tensors]
                shapes = {n: spec.by_key[n].shape for n in names}
                wanted = {"h" if meta["version"] == 1 else "state": (
                    spec.num_layers, len(spec.cell.STATES), config.batch_size,
                    config.hidden_size), "losses": None, **shapes}
                for prefix in optim.get(config.optimizer).states:
                    wanted.update({prefix + n: shapes[n] for n in names})
                arrays = _read(path, npz, wanted, config.dtype)
    except CheckpointError:
        raise
    except CORRUPT as e:
        raise CheckpointError(f"{path} is not a readable fastrnn checkpoint "
                              f"(corrupt or truncated: {e})") from None
    with _unusable(path):
        if meta["version"] == 1:  # biases stored as (n, 1) columns, the state as h
            h = arrays["h"]
            arrays["state"] = h.reshape(1, 1, -1, config.hidden_size)
        params = {n: _as_spec_shape(spec, n, arrays[n]) for n in names}
        states = [{n: _as_spec_shape(spec, n, arrays[prefix + n]) for n in names}
                  for prefix in optim.get(config.optimizer).states]
        ckpt = Checkpoint(config, vocab, params, states, arrays["state"], meta["position"],
                          arrays["losses"], meta.get("run", {}), meta.get("step", 0),
                          meta.get("dropout_rng"))
    _check_shapes(f"{path} is corrupt", ckpt, spec)
    _check_fields(f"{path} is corrupt", ckpt)
    return ckpt


def is_archive(path):
    """Whether the file at ``path`` starts as an .npz (a zip archive) does; False if it
    cannot be read, or is no regular file (a pipe or a terminal, whose read would wait)."""
    if files.not_regular(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(ZIP_MAGIC[0])) in ZIP_MAGIC
    except OSError:
        return False


def is_npz(path):
    """Whether the file at ``path`` is an .npz as NumPy writes one (a checkpoint among them):
    a zip archive (``is_archive``) of .npy arrays, or one too damaged to list (a checkpoint
    cut short, likelier than another zip); not another zip (an .epub, a .docx, a zipped
    corpus)."""
    if not is_archive(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return True
    return all(name.endswith(".npy") for name in names)


def archive_said(path, named, how):
    """Why the file at ``path`` (``named`` so: "--data PATH") is no text, if it is a zip
    archive: an .npz (``is_npz``: a checkpoint?), with ``how`` a checkpoint is given to the
    command, or another zip, to unzip; None if it is no zip archive."""
    if not is_archive(path):
        return None
    if is_npz(path):
        return f"{named} is a zip archive (an .npz checkpoint?), not a text: {how}"
    return f"{named} is a zip archive, not a text: unzip it and give its text"


def run_record(path):
    """The run record (``Checkpoint.run``) of the checkpoint at ``path``, read alone (its meta
    data, not its arrays), or None if there is none to read."""
    try:
        if not is_archive(path):  # (np.load reads a .npy whole)
            return None
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(_read(path, npz, {"meta": None})["meta"]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                return None
            run = _run_apart(path, npz) if _integer(meta.get("version")) and \
                meta["version"] >= RUN_APART else meta.get("run")
        return run if isinstance(run, dict) else None
    except (CheckpointError, *CORRUPT):
        return None


def _run_apart(path, npz):
    """The run record that a checkpoint of format 5 or newer holds apart: its array ``run``,
    the UTF-8 bytes of the record's JSON."""
    text = _read(path, npz, {RUN: None})[RUN]
    if text.dtype != np.uint8 or text.ndim != 1:
        raise CheckpointError(f"{path} is corrupt: {RUN} is {text.dtype}{text.shape}, expected "
                              f"the UTF-8 bytes of a JSON record (uint8, one axis)")
    with _unusable(path):
        try:
            return json.loads(str(memoryview(text), "utf-8"))
        except MemoryError:
            raise CheckpointError(f"{path} cannot be read: its run record "
                                  f"({validate.human_bytes(text.size)}) does not fit in "
                                  f"memory") from None


def _read(path, npz, wanted, config_dtype=None):
    """{name: array} of the archive's members ``wanted`` ({name: the shape the config gives it
    (its number of elements is checked: format 1 held vectors as columns), or None}), each
    read only once its header says that its data is in the file, that it has as many elements
    as the config says (of ``config_dtype``) and fits in memory; in this machine's byte order."""
    arrays = {}
    for name, expected in wanted.items():
        if name + ".npy" not in npz.zip.namelist():  # (npz.files also names other members)
            if name == "meta":  # (the first read: an archive of someone else's arrays)
                raise CheckpointError(f"{path} is not a fastrnn checkpoint (an .npz archive "
                                      f"without fastrnn's metadata, 'meta')")
            raise CheckpointError(f"{path} is not a usable fastrnn checkpoint (it has no "
                                  f"{name!r})")
        shape, dtype = _header(npz, name)
        if shape is not None:
            n = math.prod(shape)
            nbytes, stored = n * dtype.itemsize, npz.zip.getinfo(name + ".npy").file_size
            if nbytes > stored:
                raise EOFError(f"its array {name} declares {validate.human_bytes(nbytes)} of "
                               f"data; the archive holds {stored:,} bytes of it")
            if expected is not None and n != math.prod(expected):
                raise CheckpointError(f"{path} is corrupt: {name} is {dtype}{shape}, the config "
                                      f"says {np.dtype(config_dtype)}{expected}")
            try:
                validate.large_fits(nbytes, f"its array {name}")
            except ValueError as e:
                raise CheckpointError(f"{path} cannot be read: {e}") from None
        try:
            a = npz[name]  # (read and CRC-checked)
        except MemoryError:
            raise CheckpointError(f"{path} cannot be read: its array {name} does not fit in "
                                  f"memory") from None
        arrays[name] = a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
    return arrays


def _header(npz, name):
    """(shape, dtype) that an archive member's .npy header declares, read without its data;
    (None, None) for a header version this NumPy reads only with the data."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    with npz.zip.open(name + ".npy") as member:
        version = np.lib.format.read_magic(member)
        if version not in readers:
            return None, None
        shape, _, dtype = readers[version](member)
    return shape, dtype


def _interpret(path, meta, members):
    """(meta, config, vocab, spec) from the archive's ``meta`` array, whose format and version
    are checked first; ``members``: the archive's array names (a model of more layers than
    there are arrays is refused before its layout is built)."""
    with _unusable(path):
        meta = json.loads(str(meta))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a fastrnn checkpoint")
        if not _integer(meta.get("version")) or meta["version"] < 1:
            raise CheckpointError(f"{path} is corrupt: version is {meta.get('version')!r}, "
                                  f"expected a format number from 1")
        if meta["version"] > VERSION:
            raise CheckpointError(
                f"{path} was written by a newer fastrnn ({meta.get('fastrnn', '?')}, checkpoint "
                f"format {meta['version']}); this fastrnn {__version__} reads format {VERSION} "
                f"or older: upgrade fastrnn to use it")
        config = Config.from_dict(meta["config"])
        if config.num_layers > len(members):  # (each layer has arrays of its own)
            raise CheckpointError(f"{path} is corrupt: num_layers is {config.num_layers:,}, "
                                  f"and it holds {len(members)} arrays")
        vocab = Vocab(meta["vocab"])
        spec = Spec(config.cell, config.vocab_size, config.hidden_size, config.num_layers)
    return meta, config, vocab, spec


@contextmanager
def _unusable(path):
    """What reading a checkpoint's contents as one raises (a missing key, a malformed value)
    as a CheckpointError naming the file; a CheckpointError as it is."""
    try:
        yield
    except CheckpointError:
        raise
    except KeyError as e:
        raise CheckpointError(f"{path} is not a usable fastrnn checkpoint (it has no {e})") \
            from None
    except (TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path} is not a usable fastrnn checkpoint (malformed: {e})") \
            from None


def _check_fields(where, ckpt):
    """Every field whose value is impossible, or inconsistent with the others, refused by name
    (the shapes and dtypes are ``_check_shapes``'s): the position, the update count, finite
    numbers everywhere, non-negative second moments, and the run record's fields."""
    c = ckpt.config

    def bad(field, value, expected):
        _bad(where, field, value, expected)

    _check_counters(where, ckpt.position, ckpt.step, ckpt.dropout_rng)
    arrays = [(name, a) for name, a in ckpt.params.items()]
    optimizer = optim.get(c.optimizer)
    for prefix, named in zip(optimizer.states, ckpt.states):
        arrays += [(prefix + name, a) for name, a in named.items()]
    arrays += [("state", ckpt.state), ("losses", ckpt.losses)]
    for name, a in arrays:
        if not _all(a, np.isfinite):
            raise CheckpointError(f"{where}: {name} holds NaN or infinite values")
    # squared-gradient averages (Adagrad's and RMSprop's m, Adam's v) are never negative
    for prefix, named in zip(optimizer.states, ckpt.states):
        for name, a in named.items():
            if prefix == optimizer.squares and not _all(a, lambda piece: piece >= 0):
                raise CheckpointError(f"{where}: {prefix + name} holds negative values "
                                      f"(a sum of squares)")
    run = ckpt.run
    if not isinstance(run, dict):
        bad("run", run, "a record of the training run")
    for key, kind, expected in (("iteration", int, "an integer >= 0"),
                                ("timed_chars", int, "an integer >= 0"),
                                ("train_seconds", (int, float), "a number >= 0"),
                                ("wall_seconds", (int, float), "a number >= 0"),
                                ("budget_from", (int, float), "a number >= 0"),
                                ("smooth_loss", (int, float), "a finite number >= 0"),
                                ("best_val_loss", (int, float), "a finite number >= 0")):
        value = run.get(key)
        if key not in run or value is None and key != "iteration":  # (null: as if absent; an
            continue  # iteration count that is null is no count: every command reads it)
        if not isinstance(value, kind) or not _number(value) or value < 0:
            bad(f"run.{key}", value, expected)
    for key, kind, expected in (("data", dict, "a dict"), ("rng", dict, "a dict"),
                                ("metrics", (list, Records), "a list")):
        if key in run and not isinstance(run[key], kind):
            bad(f"run.{key}", run[key], expected)
    data = run.get("data", {})
    for key, ok, expected in (("path", _text, "a file name"),
                              ("encoding", _text, "the name of an encoding"),
                              ("val_fraction", lambda v: _number(v) and 0 <= v < 1,
                               "a number in [0, 1)"),
                              ("sha256", _text, "a hex digest"),
                              ("skip_unknown", lambda v: isinstance(v, bool), "true or false"),
                              ("chars", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
                              ("from", lambda v: _integer(v) and 0 <= v <= run.get("iteration", v),
                               "the iteration its training began, at most the checkpoint's")):
        if key in data and not ok(data[key]):
            bad(f"run.data.{key}", data[key], expected)
    _check_streams(where, "run.val_streams", run.get("val_streams"))
    target = run.get("target")  # the iteration the run trains to (a resume without it: there)
    if target is not None and not (_integer(target) and 1 <= target <= config.COUNT_MAX):
        bad("run.target", target, "an iteration count, 1 to 2**62")
    budget = run.get("time_budget")  # (kept by a resume without --iterations)
    if budget is not None and not (_number(budget) and budget > 0):
        bad("run.time_budget", budget, "a number of seconds > 0")
    if _number(run.get("budget_from")) and _number(run.get("wall_seconds")) and \
            run["budget_from"] > run["wall_seconds"]:
        bad("run.budget_from", run["budget_from"], "at most run.wall_seconds")
    if not isinstance(run.get("stopped", ""), str):  # what ended the run's last process
        bad("run.stopped", run["stopped"], "a reason, in words")
    if not isinstance(run.get("failing_said", False), bool):  # (the run's "learning nothing")
        bad("run.failing_said", run["failing_said"], "true or false")
    if "rate_base" in run and not _rate_base(run["rate_base"]):  # (a fine-tune's: ``lineage``)
        bad("run.rate_base", run["rate_base"], RATE_BASE)
    cadence = run.get("cadence", {})  # --eval-every and the like, which a resume keeps
    if not (isinstance(cadence, dict) and set(cadence) <= {"eval_every", "sample_every",
                                                           "sample_length", "checkpoint_every"}
            and all(_integer(v) and v >= (k == "sample_length") for k, v in cadence.items())):
        bad("run.cadence", cadence, "a record of --eval-every, --sample-every and "
                                    "--checkpoint-every (integers >= 0) and --sample-length (>= 1)")
    if run.get("pending") not in (None, "iteration", "end"):  # (a validation cut short)
        bad("run.pending", run["pending"], '"iteration" or "end"')
    if not isinstance(run.get("metrics"), Records):  # (whose records are checked as encoded)
        for i, record in enumerate(run.get("metrics", [])):
            _check_record(where, i, record)
    iteration = run.get("iteration")
    if iteration is not None and ckpt.step > iteration:  # one update per iteration (0 in old
        raise CheckpointError(f"{where}: step {ckpt.step} exceeds its "  # files)
                              f"iteration count {iteration}")
    _check_generator(where, "run.rng", run.get("rng"))
    schedule = run.get("lr_decay")
    if schedule is not None and not (isinstance(schedule, list) and len(schedule) == 2
                                     and _number(schedule[0]) and 0 < schedule[0] <= 1
                                     and _integer(schedule[1]) and schedule[1] > 0):
        bad("run.lr_decay", schedule, "[factor in (0, 1], iterations >= 1]")
    anneal = run.get("anneal")
    if anneal is not None:
        window = anneal.get("window") if isinstance(anneal, dict) else None
        steps = anneal.get("steps", 1) if isinstance(anneal, dict) else None
        if not (isinstance(anneal, dict) and set(anneal) <= {"fraction", "window", "steps"}
                and _number(anneal.get("fraction")) and 0 < anneal["fraction"] <= 1
                and (window is None or isinstance(window, list) and len(window) == 2
                     and all(_integer(w) for w in window) and 0 <= window[0] < window[1])
                and (window is not None or "steps" not in anneal)
                and _integer(steps) and 1 <= steps <= PIECES):
            bad("run.anneal", anneal, '{"fraction": F in (0, 1][, "window": [start, end], '
                                      f'0 <= start < end, "steps": 1 to {PIECES}]}}')


def _check_record(where, i, record):
    """``load``'s checks of run.metrics[i] (CheckpointError: ``where``, then what is wrong)."""
    if not isinstance(record, dict):
        _bad(where, f"run.metrics[{i}]", record, "a record of an evaluation")
    for key, ok, expected in _RECORD_FIELDS:  # (a table made once: a long run has tens of
        if key not in record:                # thousands of records)
            raise CheckpointError(f"{where}: run.metrics[{i}] has no {key}")
        if not ok(record[key], record):
            _bad(where, f"run.metrics[{i}].{key}", record[key], expected)
    _check_streams(where, f"run.metrics[{i}].val_streams", record.get("val_streams"))


def _check_streams(where, name, value):
    """A --val-streams of the run record (a resumed run's comes from these)."""
    if value is not None and not (_integer(value) and value >= 1):
        _bad(where, name, value, "an integer >= 1")


def _bad(where, field, value, expected):
    raise CheckpointError(f"{where}: {field} is {validate.shown(value)}, expected {expected}")


def _check_counters(where, position, step, dropout_rng):
    """What ``to_model`` copies into a model besides its arrays (part of ``_check_fields``):
    the position, the update count and the dropout generator's state."""
    # (any offset, not only a multiple of seq_length: a model's seq_length may change between
    # its train calls, README's "From Python", and then its position is of neither length)
    if not _integer(position) or not 0 <= position <= config.COUNT_MAX:
        raise CheckpointError(f"{where}: position is {validate.shown(position)}, expected an "
                              f"integer, 0 to 2**62")
    if not _integer(step) or not 0 <= step <= config.COUNT_MAX:
        raise CheckpointError(f"{where}: step is {validate.shown(step)}, expected a count of "
                              f"updates, 0 to 2**62")
    _check_generator(where, "dropout_rng", dropout_rng)


def _check_generator(where, name, state):
    """A CheckpointError unless ``state`` is a NumPy generator's state (or None: none kept)."""
    if state is None:
        return
    try:
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{where}: {name} is not a random generator's state "
                              f"({e})") from None


# a run.metrics record's fields that train reads back: the iteration, the losses (val_* None
# without held-out text); (key, ok(value, record), what is expected)
_RECORD_FIELDS = (
    ("iteration", lambda v, r: _integer(v) and v >= 0, "an integer >= 0"),
    ("train_loss", lambda v, r: v is None or _number(v),
     "a finite number, or null before the first iteration"),
    ("val_loss", lambda v, r: v is None or _number(v), "a finite number or null"),
    ("val_bpc", lambda v, r: (v is None) == (r.get("val_loss") is None)
     and (v is None or _number(v)), "a finite number if val_loss is one, else null"))


def _integer(value):
    """An int as JSON gives one (not a bool, which is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    """A finite number as JSON gives one: an int (not a bool) or a finite float."""
    return _integer(value) or (isinstance(value, float) and math.isfinite(value))


def _text(value):
    return isinstance(value, str)


def _as_spec_shape(spec, name, a):
    """A format-1 bias column (n, 1) as the spec's vector (n,); anything else as it is."""
    shape = spec.by_key[name].shape
    if a.shape != shape and a.ndim == 2 and a.shape[1:] == (1,) and a.shape[:1] == shape:
        return a.reshape(shape)
    return a


def _check_shapes(where, ckpt, spec):
    c = ckpt.config
    dtype = np.dtype(c.dtype)
    names = [t.key for t in spec.tensors]
    states = optim.get(c.optimizer).states
    if len(ckpt.states) != len(states):
        raise CheckpointError(f"{where}: {len(ckpt.states)} optimizer state buffers, "
                              f"{c.optimizer} has {len(states)}")
    for prefix, named in zip(("",) + tuple(states), [ckpt.params, *ckpt.states]):
        if set(named) != set(names):  # (load reads by these names: a save must write them)
            odd = sorted(set(named) ^ set(names))
            raise CheckpointError(f"{where}: the arrays {', '.join(prefix + n for n in odd)} "
                                  f"do not match the model's parameters")
    expected = [(name, a, spec.by_key[name].shape) for name, a in ckpt.params.items()]
    for prefix, named in zip(states, ckpt.states):
        expected += [(prefix + name, a, spec.by_key[name].shape) for name, a in named.items()]
    expected.append(("state", ckpt.state,
                     (spec.num_layers, len(spec.cell.STATES), c.batch_size, c.hidden_size)))
    for name, a, shape in expected:
        if a.shape != shape or a.dtype != dtype:
            raise CheckpointError(f"{where}: {name} is {a.dtype}{a.shape}, the config "
                                  f"says {c.dtype}{shape}")
    if len(ckpt.vocab) != c.vocab_size:
        raise CheckpointError(f"{where}: {len(ckpt.vocab)} vocabulary characters for "
                              f"vocab_size {c.vocab_size}")
    if ckpt.losses.ndim != 1 or ckpt.losses.dtype != np.float64:
        raise CheckpointError(f"{where}: losses is {ckpt.losses.dtype}{ckpt.losses.shape}, "
                              f"expected float64, one loss per iteration (1-D)")
