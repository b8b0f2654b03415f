"""CharRNN: a character model as an object that owns its arrays.

    model = CharRNN(vocab_size=65, hidden_size=100)
    losses = model.train(data, n_steps=1000)      # 1000 chunks in one kernel call
    ids, _ = model.sample(200, seed_ix=0, rng=np.random.default_rng(0))

``model.weights`` are the parameters (``spec.Weights``: ``model.weights.layers[0].Whh``,
``model.weights.Why``, all of them in ``model.weights.flat``); ``model.params`` the same as a
read-only {name: array} dict; ``model.states`` the optimizer's state buffers; ``model.state`` the
recurrent state ``(L, S, B, H)`` and ``model.position`` the next chunk's offset in every
stream, both carried from call to call exactly as min-char-rnn's loop carries them.
"""

import functools
import os
import signal
import sys
import threading
import weakref
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import cells, config, optim, reference, validate
from .backends import get_backend
from .spec import Spec, Weights
from .vocab import id_dtype

_D = config.MODEL_DEFAULTS


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``CharRNN.train`` between two kernel calls: ``losses`` are the losses of
    the chunks trained before it (the model's counters and weights are theirs). A
    KeyboardInterrupt: a program that catches that catches this."""

    def __init__(self, losses, n_steps):
        super().__init__(f"training stopped by Ctrl-C after {len(losses):,} of {n_steps:,} "
                         f"chunks (their losses: .losses)")
        self.losses, self.n_steps = losses, n_steps

    def __reduce__(self):  # (pickled and copied whole: multiprocessing, concurrent.futures)
        return type(self), (self.losses, self.n_steps)


def dtype_name(dtype):
    """The name in ``config.DTYPES`` that ``dtype`` stands for (np.float32, np.dtype("float32"),
    "f4" -> "float32"), or None (a dtype the model does not take, or not a dtype at all)."""
    if isinstance(dtype, bool):  # (np.dtype(True) is bool's)
        return None
    try:
        named = np.dtype(dtype).name
    except (TypeError, ValueError, SyntaxError):
        return None
    return named if named in config.DTYPES else None


@contextmanager
def _interrupts_after_each_call():
    """Ctrl-C (SIGINT) during ``train`` takes effect when the kernel call in flight returns
    and the model's position and update count match its weights again: the context gives a
    list that is non-empty once Ctrl-C was pressed. A second Ctrl-C stops at once, as before
    (the counters then lag the weights). Only in the main thread with Python's own handler;
    a program with a handler of its own (the trainer's) keeps it."""
    pressed = []
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield pressed
        return

    def defer(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        print("fastrnn: stopping when the training call in flight returns (Ctrl-C again to "
              "stop at once, with the model's counters behind its weights)", file=sys.stderr)

    signal.signal(signal.SIGINT, defer)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass(frozen=True)
class Config:
    """Everything that defines the model and its training (min-char-rnn's defaults)."""

    vocab_size: int
    hidden_size: int = _D["hidden_size"]
    seq_length: int = _D["seq_length"]
    learning_rate: float = _D["learning_rate"]
    dtype: str = _D["dtype"]
    seed: int = _D["seed"]
    batch_size: int = _D["batch_size"]
    optimizer: str = _D["optimizer"]
    cell: str = _D["cell"]
    num_layers: int = _D["num_layers"]
    dropout: float = _D["dropout"]
    grad_clip: float = _D["grad_clip"]  # each gradient element clipped to [-grad_clip,
                                        # grad_clip] before every update; 0: none

    def __post_init__(self):
        if not validate.is_integer(self.vocab_size) or self.vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2, got {self.vocab_size!r}")
        def keep(name, value):  # as Python's int/float (a checkpoint's JSON takes no numpy types)
            object.__setattr__(self, name, value)

        keep("vocab_size", int(self.vocab_size))
        for name in ("hidden_size", "seq_length", "batch_size", "num_layers"):
            keep(name, validate.positive(name, getattr(self, name), int))
        keep("learning_rate", validate.positive("learning_rate", self.learning_rate))
        if not validate.is_integer(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        keep("seed", int(self.seed))
        optim.get(self.optimizer)
        cells.get(self.cell)
        if isinstance(self.dropout, bool) or not isinstance(
                self.dropout, (int, float, np.integer, np.floating)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.dropout and self.num_layers < 2:
            raise ValueError(f"dropout {self.dropout:g} applies between layers: it needs "
                             f"num_layers >= 2, got {self.num_layers}")
        object.__setattr__(self, "dropout", float(self.dropout))
        if str(self.dtype) not in config.DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        object.__setattr__(self, "dtype", str(self.dtype))
        validate.rate("learning_rate", self.learning_rate, self.dtype)
        keep("grad_clip", validate.clip("grad_clip", self.grad_clip, self.dtype))

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """A Config from ``to_dict``'s output; keys it does not know are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(unknown)}")
        return cls(**d)


class _Params(dict):
    """``CharRNN.params``: a dict of views into the model's weights that refuses to have its
    entries replaced (which would change nothing in the model); copied, a plain dict."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("model.params is read-only: write into its arrays (params['Whh'][...] "
                        "= x), or replace model.weights")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _refuse

    def __reduce__(self):
        return dict, (dict(self),)


_SETTINGS = frozenset(f.name for f in fields(Config))


def _step_bytes(c, backward=True):
    """Bytes a step of one stream keeps in a chunk's buffers (``kernels/batch.py``'s
    ``Group``): per layer its outputs (the LSTM's cell states too, the GRU's Whh_n h + b_hn)
    and its G gates; the probabilities (V); the step's loss (float64), input and target ids
    (int64). With ``backward`` (training), the gradients of a layer's gates (the GRU's hidden
    side too: 2 G), of the output (V) and of the outputs of a layer (H), the weight
    gradients' scratch (the output's gradients transposed, a layer's outputs packed) and the
    dropout's masked inputs and masks of the layers above the first (2 H, one layer's at
    least)."""
    L, H, V = c.num_layers, c.hidden_size, c.vocab_size
    G = cells.get(c.cell).GATES
    numbers = L * (1 + (c.cell != "rnn") + G) * H + V
    if backward:
        numbers += (1 + (c.cell == "gru")) * G * H + 2 * V + 2 * H + 2 * max(L - 1, 1) * H
    return numbers * np.dtype(c.dtype).itemsize + 3 * 8


def _minchar(c, streams=None):
    """Whether training (or an evaluation of ``streams`` streams) runs min-char-rnn's
    single-stream kernels (one stream of one tanh layer; ``backends/numba.py``'s
    ``minchar``), else the batch kernels."""
    streams = c.batch_size if streams is None else streams
    return streams == 1 and c.num_layers == 1 and c.cell == "rnn"


_PANEL_BYTES = 128  # the widest panel of kernels/tiles.py's packed weights (2 vectors of 64)


def _weights_as_read(c, size):
    """Numbers of the copies of the weights that the batch kernels read (``kernels/batch.py``'s
    ``Transposes``), for a model of ``size`` parameters: each weight matrix but layer 0's Wxh
    packed twice (for the forward and the backward products), Wxh^T for the input gather: at
    most twice the parameters, and each packed row rounded up to whole panels. (Where
    ``config.TILE_ROWS`` > 1 leaves units below it to OpenBLAS, they read Whh^T and the upper
    layers' Wxh^T besides.)"""
    L, H, V, G = c.num_layers, c.hidden_size, c.vocab_size, cells.get(c.cell).GATES
    rows = (2 * L - 1) * (G + 1) * H + H + V  # (of the packed arrays)
    blas = (2 * L - 1) * H * G * H if config.TILE_ROWS > 1 else 0
    return 2 * size + rows * (_PANEL_BYTES // np.dtype(c.dtype).itemsize) + blas


# what the weights' shapes and type are made of: a fine-tuned model (``Checkpoint.fine_tune``,
# ``--init-from``) keeps these of its checkpoint, and may take every other setting afresh
ARCHITECTURE = ("vocab_size", "hidden_size", "dtype", "cell", "num_layers")
_MODELS = weakref.WeakSet()  # (their locks made anew in a forked child: ``_after_fork``)


_computing = threading.local()  # ``.call``: the computing call under way in this thread


def _taking_turns(method):
    """A model's calls (and replacing its attributes) from several threads take turns
    (``_busy``): two threads training one model read the same position and wrote the same
    weights and gradients at once, and a pickle taken while it trained held weights of one
    chunk with the counters of another. Reentrant, for a pickle or copy taken in a progress
    callback; a computing call there (``_computes``) is refused."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._busy:
            return method(self, *args, **kwargs)
    return call


def _computes(method):
    """``_taking_turns``, for train, evaluate and sample: one may not run inside another
    (called from its progress callback), on any model: a thread's calls share its work
    buffers (by shape), and the outer call's numbers changed."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        outer = getattr(_computing, "call", None)
        if outer is not None:
            raise RuntimeError(f"CharRNN.{method.__name__} cannot run inside CharRNN.{outer} "
                               f"(from its progress callback): the calls of a thread share its "
                               f"work buffers; call it once that call has returned")
        with self._busy:
            _computing.call = method.__name__
            try:
                return method(self, *args, **kwargs)
            finally:
                _computing.call = None
    return call


def _after_fork():
    # A child made by fork() while another thread held a model's lock inherits it held, by
    # a thread it does not have: the model's first call there would wait for ever.
    for model in list(_MODELS):
        object.__setattr__(model, "_busy", threading.RLock())


os.register_at_fork(after_in_child=_after_fork)


class CharRNN:
    """A character RNN trained with truncated BPTT and (by default) Adagrad, as min-char-rnn;
    optionally on B streams at once, with RMSprop or Adam, with the LSTM or GRU cell
    (``cell``), ``num_layers`` stacked layers and ``dropout`` between them. ``learning_rate``
    unless given: the optimizer's usual one (``optim.Optimizer.rate``: Adagrad's 0.1,
    min-char-rnn's; RMSprop's and Adam's 0.002). ``grad_clip``: every element of a chunk's
    gradients (of its summed loss) is clipped to [-grad_clip, grad_clip] before the update
    (PyTorch's ``clip_grad_value_``; min-char-rnn's 5 by default, 0: none)."""

    def __init__(self, vocab_size, hidden_size=_D["hidden_size"], seq_length=_D["seq_length"],
                 learning_rate=None, dtype=None, seed=_D["seed"], backend="numba",
                 batch_size=_D["batch_size"], threads=None, optimizer=_D["optimizer"],
                 cell=_D["cell"], num_layers=_D["num_layers"], dropout=_D["dropout"],
                 grad_clip=_D["grad_clip"]):
        self._busy = threading.RLock()  # (``_taking_turns``)
        if learning_rate is None:
            try:
                learning_rate = optim.get(optimizer).rate
            except ValueError:  # (Config refuses the optimizer by name)
                learning_rate = _D["learning_rate"]
        _MODELS.add(self)
        if dtype is None:  # float32 is the GPU's natural type; float64 the CPU reference's
            dtype = config.GPU_DTYPE if backend == "cuda" else _D["dtype"]
        dtype = dtype_name(dtype) or dtype  # (others: Config refuses them by name)
        self.config = Config(vocab_size, hidden_size, seq_length, learning_rate, dtype, seed,
                             batch_size, optimizer, cell, num_layers, dropout, grad_clip)
        self.backend = backend
        self.threads = threads
        c = self.config
        self._check_memory(c)
        self.spec = Spec(c.cell, c.vocab_size, c.hidden_size, c.num_layers)
        self.weights = self.spec.init(c.seed, c.dtype)
        self.states = [self.spec.zeros(c.dtype) for _ in self.optimizer.states]
        self.step = 0  # updates made so far (Adam's bias correction counts them)
        self.state = self.zero_state(c.batch_size)
        self.position = 0
        # dropout's masks: drawn from this generator, outside the kernels, chunk by chunk
        # (saved in checkpoints, so a resumed run draws the masks it would have drawn)
        self.dropout_rng = np.random.default_rng([1, c.seed])
        self._grads = self.spec.zeros(c.dtype)
        self._data = None  # (the caller's array, the validated copy)
        self._seen = None  # the caller's array of ids, checked whole once (``_prepared``)
        self._laid_out = ()  # (Weights, their tensors' shapes) checked to be views of the flat

    def __setattr__(self, name, value):
        """Waits for a call under way in another thread (``_taking_turns``: it read the
        attribute once checked); ``_set``."""
        busy = self.__dict__.get("_busy")  # (in __init__, not yet)
        if busy is not None and name != "_busy":
            with busy:
                return self._set(name, value)
        return self._set(name, value)

    def _set(self, name, value):
        """Refuses the names of the config's fields: ``model.learning_rate = 0.01`` made an
        attribute that nothing read, and training went on at the config's rate in silence."""
        if name in _SETTINGS:  # (one set lookup for every other attribute)
            if name in self.FIXED:
                raise AttributeError(f"model.{name} is fixed for a model (its config's, which "
                                     f"made its weights and optimizer state): build a new "
                                     f"CharRNN for another {name}")
            raise AttributeError(
                f"{name} is a setting in model.config, not an attribute of the model: "
                f"model.config = dataclasses.replace(model.config, {name}=...) changes it"
                + (", or train(..., learning_rate=...) for one call"
                   if name == "learning_rate" else ""))
        object.__setattr__(self, name, value)

    @property
    def optimizer(self):
        """The optimizer (``optim.Optimizer``) of ``config.optimizer``."""
        return optim.get(self.config.optimizer)

    def __repr__(self):
        c = self.config
        return (f"CharRNN({c.cell!r}, vocab_size={c.vocab_size}, hidden_size={c.hidden_size}, "
                f"num_layers={c.num_layers}, dtype={c.dtype!r}, optimizer={c.optimizer!r}, "
                f"batch_size={c.batch_size}, backend={self.backend!r}: {self.spec.size:,} "
                f"parameters, {self.step:,} updates)")

    @_taking_turns
    def __getstate__(self):
        """What ``pickle`` and ``copy.deepcopy`` keep of a model: its config, backend and
        threads, and the numbers (weights and optimizer state as their flat buffers, the
        recurrent state, counters, the dropout generator); ``__setstate__`` lays them out
        again (copied tensor by tensor, the views would no longer view their buffer). Its
        public arrays checked first, as a training call checks them: a replaced one that
        does not fit is a ValueError naming it (a pickle was written that could not be
        loaded, or copying failed on an AttributeError)."""
        self._checked_whole()
        return {"config": self.config.to_dict(), "backend": self.backend,
                "threads": self.threads, "weights": self.weights.flat.copy(),
                "states": [s.flat.copy() for s in self.states], "step": self.step,
                "state": self.state.copy(), "position": self.position,  # (copied now, under
                # the lock: read later by pickle, they changed with a training in another thread)
                "dropout_rng": self._checked_dropout_rng().bit_generator.state}

    def __setstate__(self, saved):
        self.__init__(**Config.from_dict(saved["config"]).to_dict(), backend=saved["backend"],
                      threads=saved["threads"])
        for mine, theirs in zip([self.weights, *self.states], [saved["weights"],
                                                               *saved["states"]]):
            mine.flat[...] = theirs
        self.step, self.position = saved["step"], saved["position"]
        self.state[...] = saved["state"]
        self.dropout_rng.bit_generator.state = saved["dropout_rng"]

    def _check_memory(self, c):
        layers = f"{c.num_layers} layers of " if c.num_layers > 1 else ""
        validate.fits(self.memory_needed(c), f"a model of {layers}hidden_size {c.hidden_size} "
                      f"(vocabulary {c.vocab_size}, batch_size {c.batch_size}, seq_length "
                      f"{c.seq_length}, {c.dtype}) with its optimizer state and training buffers")

    def memory_needed(self, c=None):
        """Bytes the model takes to train, about: parameters, gradients, optimizer state, the
        streams' states, a chunk's buffers (``_step_bytes``) and a call's dropout masks as
        drawn (as many as ``config.MASK_ELEMENTS`` allows: a call of fewer chunks draws fewer);
        on the numba backend's batch kernels (every model but min-char-rnn's one stream) also
        the copies of the weights they read (``_weights_as_read``) and each stream unit's
        gradients. On the numba backend a little more than training takes (the measure of
        ``tests/test_model.py``); the numpy reference's temporaries, an evaluation's buffers
        and the CUDA backend's device memory are not counted. Checked before anything is
        allocated, so an impossible size is a clear error, not a MemoryError. ``c``: of
        another config (default: the model's)."""
        c = self.config if c is None else c
        L, H, B, T = c.num_layers, c.hidden_size, c.batch_size, c.seq_length
        G, S = cells.get(c.cell).GATES, len(cells.get(c.cell).STATES)
        itemsize = np.dtype(c.dtype).itemsize
        # the parameters, counted before the spec of every layer is built (layers 2 to L are
        # alike: a million layers is a clear error at once, not a minute building them)
        one, two = (Spec(c.cell, c.vocab_size, H, n).size for n in (1, 2))
        size = one + (L - 1) * (two - one)
        count = size * (2 + len(optim.get(c.optimizer).states))
        # each stream's state, and in its unit's buffers its state before the chunk, one step's
        # recurrent product and the gradients carried back from step to step
        count += B * (2 * L * S + G + 2) * H
        if self.backend == "numba" and not _minchar(c):
            units = -(-B // config.STREAMS_PER_UNIT)
            # a unit's gradients, and its layer 0's dWxh as rows per character
            count += units * (size + c.vocab_size * G * H) + _weights_as_read(c, size)
        drawn = 0
        if c.dropout > 0 and L > 1:  # a call's masks: float64 draws, compared, cast
            drawn = max((L - 1) * T * B * H, config.MASK_ELEMENTS) * (8 + 1 + itemsize)
        return count * itemsize + T * B * _step_bytes(c) + drawn

    def memory_to_evaluate(self, length, streams=1):
        """Bytes ``evaluate`` of a text of ``length`` ids on ``streams`` streams takes, about:
        the streams' states, the buffers of a pass (forward only), and on the numba backend's
        batch kernels the weights packed for the forward pass (about the parameters again)."""
        c = self.config
        steps = min(config.EVAL_STEPS, max(1, (length - 1) // streams))  # (per call)
        itemsize = np.dtype(c.dtype).itemsize
        per_stream = 2 * c.num_layers * len(self.spec.cell.STATES) * c.hidden_size * \
            itemsize + steps * _step_bytes(c, backward=False)
        packed = self.spec.size * itemsize if self.backend == "numba" and \
            not _minchar(c, streams) else 0
        return streams * per_stream + packed

    def zero_state(self, streams=1):
        """A zero recurrent state (L, S, streams, H)."""
        c = self.config
        return np.zeros((self.spec.num_layers, len(self.spec.cell.STATES), streams,
                         c.hidden_size), c.dtype)

    # what the weights, the optimizer's state and the dropout generator were made by: a config
    # replaced later keeps them (its other fields, settings read at every call, may change)
    FIXED = ARCHITECTURE + ("optimizer", "seed")

    @property
    def config(self):
        return self._config

    @config.setter
    def config(self, new):
        """A Config (``dataclasses.replace(model.config, seq_length=100)``) whose ``FIXED``
        fields are the model's: the kernels read arrays laid out by them, so another vocabulary
        size or cell would have them read out of bounds, or train another model than asked."""
        if not isinstance(new, Config):
            raise ValueError(f"config must be a Config (dataclasses.replace(model.config, "
                             f"...) makes one), got {type(new).__name__}")
        old = getattr(self, "_config", None)
        if old is not None:  # (else the model's first, from __init__)
            changed = [f for f in self.FIXED if getattr(new, f) != getattr(old, f)]
            if changed:
                name = changed[0]
                raise ValueError(
                    f"config.{name} is fixed for a model ({getattr(old, name)!r}; asked "
                    f"{getattr(new, name)!r}): its weights and optimizer state were made by "
                    f"it; build a new CharRNN for another (seq_length, learning_rate, "
                    f"batch_size, dropout and grad_clip may change)")
            self._check_memory(new)
            self._data = self._seen = None  # (ids checked for the old seq_length, batch_size)
        self._config = new

    @property
    def params(self):
        """The parameters as a read-only {name: array} mapping of views of ``weights``, in the
        spec's order: ``params["Whh"][...] = x`` writes into the model; ``params["Whh"] = x``
        is a TypeError (into a dict made for the call, it was lost in silence). A copy of it
        (``copy.deepcopy``, ``pickle``, ``dict(...)``) is a plain dict of copies."""
        return _Params(self.spec.named(self.weights))

    @property
    def sample_call_chars(self):
        """Characters ``sample`` draws per kernel call, at most (SAMPLE_CALL_CHARS, fewer for a
        model of over SAMPLE_CALL_MACS / SAMPLE_CALL_CHARS parameters, at least one): the
        ``progress`` step, between which Ctrl-C is heard."""
        return max(1, min(config.SAMPLE_CALL_CHARS, config.SAMPLE_CALL_MACS // self.spec.size))

    @property
    def h(self):
        """The top layer's hidden state of every stream, (B, H) (a view of ``state``)."""
        return self._checked_training_state(training=False)[-1, 0]

    @property
    def threads(self):
        return self._threads

    @threads.setter
    def threads(self, n):
        """Threads for training and evaluation on the batch path (every model but min-char-rnn's
        at one stream: units of streams, the packing of each layer's weights, an evaluation's
        layers as a pipeline and its streams); default Numba's count, NUMBA_NUM_THREADS."""
        if n is None:
            import numba
            n = numba.config.NUMBA_NUM_THREADS
        self._threads = validate.positive("threads", n, int)

    @property
    def backend(self):
        return self._kernels.name

    @backend.setter
    def backend(self, name):
        self._kernels = get_backend(name)

    def _prepared(self, data, n_steps, start):
        """data as a validated array of ids, for ``n_steps`` chunks from position ``start``
        (the value the kernels are then given: ``position`` is read once a call): checked
        at every call, since its caller may change it, unless nothing can write to it (then
        cached). An array of the model's id dtype (``vocab.encode``'s) is checked whole the
        first time, then only where this call reads it (the whole of a 106 MB text was 12 ms
        a call for a 0.3 ms chunk: ``benchmarks/call_overhead.py``): every id the kernels
        read is checked before they run."""
        if self._data is not None and self._data[0] is data and not data.flags.writeable:
            return self._data[1]
        c = self.config
        B, T = c.batch_size, c.seq_length
        if self._seen is not None and self._seen is data and \
                data.dtype == id_dtype(c.vocab_size) and \
                data.flags.c_contiguous and data.ndim == 1:
            piece = len(data) // B
            length = n_steps * T + 1  # what each stream reads, if no chunk wraps to 0
            if not reference.wraps(start + (n_steps - 1) * T, T, piece):  # (then none does)
                windows = np.lib.stride_tricks.as_strided(
                    data[start:], (B, length), (piece * data.itemsize, data.itemsize),
                    writeable=False)
                if int(windows.max()) < c.vocab_size:
                    return data
        self._seen = None
        ready = self._checked_ids(
            data, B * (c.seq_length + 1),
            f"training with seq_length={c.seq_length}" + (f" in {B} streams" if B > 1 else ""))
        root = data
        while isinstance(root, np.ndarray) and isinstance(root.base, np.ndarray):
            root = root.base  # (a view can be written through its base)
        # cached only for memory nothing can write to (bytes; not an array's own, whose owner
        # may make it writable, change it and lock it again, nor a bytearray's or a file's),
        # and as a copy of its own, which the kernels then read
        frozen = isinstance(root, np.ndarray) and not root.flags.writeable and \
            isinstance(root.base, bytes)
        if frozen and np.may_share_memory(ready, data):
            ready = ready.copy()
        self._data = (data, ready) if frozen else None
        self._seen = ready if ready is data else None
        return ready

    def _checked_ids(self, data, min_length, purpose):
        """data as a contiguous array of valid ids of at least min_length; ValueError otherwise."""
        c = self.config
        validate.not_masked("data", data)
        if isinstance(data, np.ndarray) and data.dtype.kind in "iu" and data.ndim == 1:
            arr = data
        else:
            try:
                arr = np.asarray(data)
            except ValueError:  # (a ragged list: NumPy's words name no argument)
                raise ValueError(f"data must be a one-dimensional sequence of integer character "
                                 f"ids, got a ragged {type(data).__name__}") from None
            if arr.dtype.kind in "US" or isinstance(data, bytearray):  # text (a str: 0-d)
                raise ValueError(f"data must be integer character ids, got "
                                 f"{type(data).__name__} of text: encode text first "
                                 f"(vocab.encode(text), with the Vocab the model's ids stand "
                                 f"for)")
            if arr.ndim == 1 and arr.dtype == object and all(
                    validate.is_integer(v) for v in arr):  # (Python ints past int64's range)
                bad = next((v for v in arr if not 0 <= v < c.vocab_size), None)
                if bad is not None:
                    text = validate.shown(int(bad))  # (an int too long to print: its size)
                    what = text.replace("an integer", "an id", 1) if \
                        text.startswith("an integer") else f"id {text}"
                    raise ValueError(f"data holds {what}, outside the vocabulary "
                                     f"[0, {c.vocab_size})")
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise ValueError(f"data must be a one-dimensional sequence of integer character "
                                 f"ids, got {arr.dtype} values in shape {arr.shape}")
        if arr.size < min_length:
            raise ValueError(f"data has {arr.size} characters; {purpose} needs at least {min_length}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= c.vocab_size:
            raise ValueError(f"data holds id {lo if lo < 0 else hi}, outside the vocabulary "
                             f"[0, {c.vocab_size})")
        return np.ascontiguousarray(arr, dtype=id_dtype(c.vocab_size))

    def first_stream_state(self):
        """The first training stream's state (L, S, 1, H), a view of ``state``: where sampling
        starts by default, and where the trainer's validation and ``fastrnn.score`` read
        from."""
        return self._checked_training_state(training=False)[:, :, :1]

    def _checked_training_state(self, training=True):
        """``state`` as training carries it in place, (L, S, batch_size, H): ValueError naming
        what is wrong (it is a public attribute, which a caller may have replaced); for
        ``training``, writable and contiguous too. Also checks ``dropout_rng``, for training
        with dropout."""
        expected, state = self.zero_state(self.config.batch_size), self.state
        validate.not_masked("state", state)
        if not isinstance(state, np.ndarray):  # (not "state has shape list")
            raise ValueError(f"state must be a NumPy array of shape {expected.shape} (layers, "
                             f"state vectors, batch_size streams, hidden size; "
                             f"zero_state({expected.shape[2]}) makes one), got "
                             f"{type(state).__name__}")
        if state.shape != expected.shape:
            raise ValueError(f"state has shape {state.shape}, expected {expected.shape} (layers, "
                             f"state vectors, batch_size streams, hidden size; "
                             f"zero_state({expected.shape[2]}) makes one)")
        if state.dtype != expected.dtype:
            raise ValueError(f"state has dtype {state.dtype}, the model's is {expected.dtype}")
        if not training:
            return state
        if self.drops:
            self._checked_dropout_rng()
        if not (state.flags.c_contiguous and state.flags.writeable):
            raise ValueError("state must be a writable C-contiguous array (training updates it "
                             "in place): pass np.array(state)")
        if not np.isfinite(state).all():
            raise ValueError("state holds NaN or infinite values")
        return state

    def _checked_dropout_rng(self):
        """``dropout_rng``: a Generator on PCG64, the bit generator whose state checkpoints,
        copies and pickles keep (another one trained, then failed to save)."""
        rng = self.dropout_rng
        if not isinstance(rng, np.random.Generator) or \
                not isinstance(rng.bit_generator, np.random.PCG64):
            got = f"Generator({type(rng.bit_generator).__name__})" if isinstance(
                rng, np.random.Generator) else type(rng).__name__
            raise ValueError(f"dropout_rng must be a numpy.random.Generator on PCG64 (the "
                             f"model's dropout masks are drawn from it, and checkpoints keep its "
                             f"state; np.random.default_rng(seed) makes one), got {got}")
        return rng

    def _checked_finite(self, otherwise):
        """``_checked_arrays`` for a call that does not train, and weights that are numbers
        (numba's fast math would hide a NaN): a ValueError ending with ``otherwise``."""
        self._checked_arrays(training=False)
        if not np.isfinite(self.weights.flat).all():
            raise ValueError(f"the model's weights hold NaN or infinite values (its training "
                             f"diverged): {otherwise}")

    def _checked_arrays(self, training, writable=True):
        """``weights`` (and, for training, the optimizer's ``states``) as the kernels read
        them: ValueError naming what is wrong, for they are public attributes a caller may
        have replaced, and a kernel reads a misshapen buffer out of bounds. ``writable``
        False: what a copy of the model reads (``__getstate__``, ``Checkpoint.of``), which
        may be read-only."""
        self._checked_weights("weights", self.weights, training and writable)
        if training:
            states = self.states
            names = self.optimizer.states
            if not isinstance(states, (list, tuple)) or len(states) != len(names):
                raise ValueError(f"states must be a list of {len(names)} Weights (the "
                                 f"{self.config.optimizer} optimizer's {', '.join(names)}), "
                                 f"got {type(states).__name__}"
                                 + (f" of {len(states)}" if isinstance(states, (list, tuple))
                                    else ""))
            for name, w in zip(names, states):
                self._checked_weights(f"states ({name})", w, writable)
            buffers = [("weights", self.weights.flat), ("state", self.state)] + [
                (f"states ({name})", w.flat) for name, w in zip(names, states)]
            for k, (name, flat) in enumerate(buffers):  # (the kernels update them all in place)
                for other, other_flat in buffers[k + 1:]:
                    if np.may_share_memory(flat, other_flat):
                        raise ValueError(f"{name} and {other} share memory: each must be an "
                                         f"array of its own (" + (
                                             "model.zero_state(batch_size)" if "state" in
                                             (name, other) else "model.spec.view(np.zeros(...))"
                                         ) + " makes one)")
        current = [self.weights, *(self.states if isinstance(self.states, (list, tuple))
                                   else ())]
        self._laid_out = tuple(known for known in self._laid_out
                               if any(known[0] is c for c in current))

    def _checked_whole(self):
        """Every public array a copy of the model reads (``__getstate__``,
        ``Checkpoint.of``), checked as a training call checks them, read-only ones allowed."""
        self._checked_arrays(training=True, writable=False)
        self._checked_training_state(training=False)

    def _checked_values(self):
        """The weights and the optimizer's state finite, and its sums of squares not negative,
        as a checkpoint's must be: a ValueError naming the first tensor that is not (training
        had turned such values into NaN losses and NaN weights in silence, which
        ``checkpoint.save`` then refused). The backend's ``values_fit`` first (numba's: one
        pass over all the buffers at once); only if it finds something, each tensor in turn."""
        opt = self.optimizer
        named = [("weights", self.weights)] + list(zip(
            (f"states ({name})" for name in opt.states), self.states))
        if self._kernels.values_fit([w.flat for _, w in named],
                                    1 + opt.states.index(opt.squares)):
            return
        for name, w in named:
            squares = name == f"states ({opt.squares})"
            for key, a in self.spec.named(w).items():
                if not np.isfinite(a).all():
                    raise ValueError(f"{name} hold NaN or infinite values (in {key}): there is "
                                     f"nothing to train from")
                if squares and (a < 0).any():
                    raise ValueError(f"{name} hold negative values (in {key}): the "
                                     f"{self.config.optimizer} optimizer's squared gradients, "
                                     f"never negative")

    def _checked_weights(self, name, w, writable):
        spec, dtype = self.spec, np.dtype(self.config.dtype)
        validate.not_masked(f"{name}.flat", getattr(w, "flat", None))
        if not isinstance(w, Weights) or not isinstance(w.flat, np.ndarray):
            raise ValueError(f"{name} must be Weights over a NumPy array (model.spec.view(flat) "
                             f"makes them), got {type(w).__name__}")
        if w.flat.shape != (spec.size,):
            raise ValueError(f"{name} hold {w.flat.size:,} values in shape {w.flat.shape}: "
                             f"another model's? {spec} has {spec.size:,}")
        if w.flat.dtype != dtype:
            raise ValueError(f"{name} have dtype {w.flat.dtype}, the model's is {dtype} "
                             f"(its config.dtype)")
        if not w.flat.flags.c_contiguous:  # (the kernels read it as one block, by offsets)
            raise ValueError(f"{name}.flat is not contiguous (a strided view): pass "
                             f"model.spec.view(np.ascontiguousarray(flat))")
        if writable and not w.flat.flags.writeable:
            raise ValueError(f"{name} are read-only (training updates them in place): pass "
                             f"model.spec.view(flat.copy())")
        # Checked once (~80 us a model), then only the tensors' shapes and strides, which can
        # be set on a view in place (a bias given min-char-rnn's column shape reached the
        # kernels: a Numba typing error); its memory cannot
        shapes = tuple((a.shape, a.strides) for a in spec.arrays(w))
        if any(w is known and shapes == seen for known, seen in self._laid_out):
            return
        if not spec.lays_out(w):
            raise ValueError(f"{name}' tensors are not the views of {name}.flat that "
                             f"model.spec.view makes (another model's, or arrays of their own)")
        self._laid_out = tuple(known for known in self._laid_out if known[0] is not w) + (
            (w, shapes),)  # (kept while it is the model's: ``_checked_arrays``)

    def _checked_state(self, state):
        """A copy of a caller's one-stream state (L, S, 1, H) in the model's dtype."""
        validate.not_masked("state", state)
        expected = self.zero_state(1)
        try:
            state = np.asarray(state)
        except ValueError:  # (a ragged list: NumPy's words name no argument)
            raise ValueError(f"state must be an array of shape {expected.shape} (layers, state "
                             f"vectors, 1 stream, hidden size), got a ragged "
                             f"{type(state).__name__}") from None
        if state.shape != expected.shape:
            raise ValueError(f"state has shape {state.shape}, expected {expected.shape} "
                             f"(layers, state vectors, 1 stream, hidden size)")
        if state.dtype.kind not in "biuf":
            raise ValueError(f"state must hold real numbers, got dtype {state.dtype}")
        with np.errstate(over="ignore"):  # (too large for the dtype: refused just below)
            expected[...] = state
        if not np.isfinite(expected).all():
            raise ValueError(f"state holds NaN or infinite values (in {expected.dtype})")
        return expected

    @_computes
    def train(self, data, n_steps=1, learning_rate=None):
        """Train on ``n_steps`` consecutive chunks of ``data`` (integer ids); return their losses.
        ``learning_rate``: this call's (a schedule's; default: the config's); 0 (a schedule's
        end) updates no weight, the optimizer's state and update count still advancing.

        Each chunk is ``seq_length`` inputs and the targets one character later; the loss of a
        chunk is summed over its characters. Parameters, optimizer state, ``state`` and
        ``position`` advance in place; a chunk that would pass the end of the data starts again
        at 0 with the state reset, as in min-char-rnn. With ``batch_size`` B > 1 the data is
        cut into B equal contiguous streams, a chunk is one piece of every stream (the state
        holds one row per stream; ``position`` is the offset inside every stream), and its loss
        and gradients are summed over the streams. With dropout, each chunk's masks are drawn
        from ``dropout_rng`` (``reference.dropout_masks``) before the kernels run, chunk after
        chunk, so the masks do not depend on how the chunks are split into calls. Ctrl-C takes
        effect when the kernel call in flight returns (calls of at most the backend's
        ``call_chars`` characters on the CPU), with ``position`` and ``step`` matching the
        weights (``_interrupts_after_each_call``): a ``TrainingInterrupted`` (a
        KeyboardInterrupt) whose ``losses`` are those of the chunks trained. ``n_steps`` 0
        trains nothing and returns no losses (the arguments checked as for one chunk).
        """
        if not validate.is_integer(n_steps) or n_steps < 0:
            raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
        n_steps = int(n_steps)
        if n_steps > config.COUNT_MAX:
            raise ValueError(f"n_steps must be at most 2**62, got {n_steps:,}")
        if not validate.is_integer(self.position) or self.position < 0:
            raise ValueError(f"position must be an integer >= 0, got {self.position!r}")
        start = int(self.position)  # (read once: what is checked is where the kernels read)
        ready = self._prepared(data, max(n_steps, 1), start)
        if not validate.is_integer(self.step) or not 0 <= self.step <= config.COUNT_MAX:
            raise ValueError(f"step must be an integer in [0, 2**62], got {self.step!r}")
        if self.step > config.COUNT_MAX - n_steps:
            raise ValueError(f"n_steps {n_steps:,} would take step past 2**62 (step is "
                             f"{self.step:,})")
        self._checked_training_state()
        self._checked_arrays(training=True)
        self._checked_values()
        c = self.config
        lr = c.learning_rate if learning_rate is None else \
            validate.rate("learning_rate", learning_rate, c.dtype, zero=True)
        validate.large_fits(8 * n_steps, f"keeping the losses of {n_steps:,} chunks")
        losses = np.empty(n_steps, np.float64)
        shape = (c.num_layers - 1, c.seq_length, c.batch_size, c.hidden_size)
        # calls of at most the backend's call_chars (for Ctrl-C), and with dropout of at most
        # MASK_ELEMENTS mask elements; the same bits for any grouping
        group = max(n_steps, 1)
        if self._kernels.call_chars is not None:
            group = max(1, self._kernels.call_chars // (c.seq_length * c.batch_size))
        if self.drops:
            group = min(group, max(1, config.MASK_ELEMENTS // int(np.prod(shape))))
        with _interrupts_after_each_call() as interrupted:
            for first in range(0, n_steps, group):
                n = min(group, n_steps - first)
                masks = reference.dropout_masks(self.dropout_rng, c.dropout, (n,) + shape,
                                                c.dtype) if self.drops else None
                start = min(start, len(ready))  # (past the end: back to 0)
                start = int(self._kernels.train(
                    self.weights, self._grads, self.optimizer, self.states, ready, start,
                    self.state, lr, c.seq_length, int(self.step), losses[first:first + n],
                    self.threads, masks, c.grad_clip))
                self.position = start
                self.step += n
                if interrupted:
                    raise TrainingInterrupted(losses[:first + n], n_steps)
        return losses

    @property
    def drops(self):
        """Whether training applies dropout (a rate > 0 and layers to apply it between)."""
        return self.config.dropout > 0 and self.config.num_layers > 1

    @_computes
    def evaluate(self, data, state=None, streams=1, progress=None):
        """Summed loss (nats) of predicting ``data[1:]`` from ``data[:-1]``, without training.

        One stream (the default), from ``state`` (L, S, 1, H; default zeros, unlike ``sample``,
        which starts from ``first_stream_state()``) through the whole sequence. Returns (loss,
        state_after) where ``state_after`` is the state after reading ``data[:-1]``: ``loss /
        (len(data) - 1)`` is the mean per character, and priming a sample on a text is
        ``evaluate(text)`` then ``sample(..., seed_ix=text[-1], state=state_after)``.

        ``streams`` > 1 reads the text as that many contiguous streams side by side, each from
        a copy of ``state`` (``reference.evaluate`` states exactly how); on the numba backend
        they run on ``threads`` threads, with the same bits for any thread count. Every
        character is still predicted once, but each stream after the first starts without the
        text before it, so the loss differs slightly from one stream's (usually higher);
        state_after is (L, S, streams, H).

        ``progress``: a callable, called as the work goes with the number of characters
        predicted since its last call (the calls add up to ``len(data) - 1``), e.g. a tqdm
        bar's ``update``; the numbers computed are the same with it or without. An exception
        it raises ends the evaluation and comes out of this call.
        """
        streams = validate.positive("streams", streams, int)
        ready = self._checked_ids(data, 1, "evaluate")
        validate.large_fits(self.memory_to_evaluate(len(ready), streams),
                            f"evaluating {streams:,} stream{'s' if streams > 1 else ''}")
        self._checked_finite("there is no loss to compute")
        state = self.zero_state(1) if state is None else self._checked_state(state)
        if streams > 1:
            state = np.ascontiguousarray(np.repeat(state, streams, axis=2))
        if progress is not None and not callable(progress):
            raise ValueError(f"progress must be callable (e.g. a tqdm bar's update), got "
                             f"{type(progress).__name__}")
        loss = self._kernels.evaluate(self.weights, ready, state, self.threads, progress)
        return float(loss), state

    @_computes
    def sample(self, n, seed_ix, rng=None, temperature=1.0, greedy=False, state=None, top_k=0,
               top_p=1.0, progress=None):
        """n ids generated after ``seed_ix``, from ``state`` (L, S, 1, H; default: the first
        training stream's, unchanged). Returns (ids, state_after) so that generation can
        continue where it stopped. ``top_k`` > 0 draws from the k most likely characters
        only, ``top_p`` < 1 from the fewest most likely ones whose probabilities reach p
        (nucleus sampling; ``reference.truncate`` defines both exactly); the same seed gives
        the same text on every backend. ``greedy`` takes the most likely character (a
        temperature, top_k or top_p given with it would change nothing: refused). A temperature
        so small that the logits divided by it could overflow the dtype samples greedily, its
        limit. ``progress``: called with the number of ids drawn after each kernel call (of at
        most ``sample_call_chars``: the same text); an exception it raises ends the sampling
        and comes out of this call (``rng`` has drawn all n uniforms, before the first call)."""
        c = self.config
        given = {"temperature": temperature, "top_k": top_k, "top_p": top_p}  # (as given, for
        # the message: np.float32(0.7) is 0.699999988079071 as a float)
        seed_ix, n, temperature, greedy, rng = validate.sampling(
            seed_ix, n, c.vocab_size, temperature, greedy, rng)
        if not validate.is_integer(top_k) or top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0: no limit), got {top_k!r}")
        top_k = min(int(top_k), c.vocab_size)  # k >= V keeps every character, as V does
        top_p = validate.positive("top_p", top_p)
        if top_p > 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        ignored = [f"{name}={given[name]!s}" for name, changes in (
            ("temperature", temperature != 1), ("top_k", 0 < top_k < c.vocab_size),
            ("top_p", top_p < 1)) if changes]
        validate.greedy_alone(greedy, ignored)  # (as the sample command's --greedy)
        if progress is not None and not callable(progress):
            raise ValueError(f"progress must be callable, got {type(progress).__name__}")
        self._checked_finite("there is nothing to sample from")
        if state is None:  # (the first training stream's: a public attribute, checked)
            state = self.first_stream_state()
        state = self._checked_state(state)
        greedy = greedy or reference.overflows(self.weights, state, temperature)
        ixes, uniforms = np.empty(n, np.int64), rng.random(n)
        per_call = self.sample_call_chars
        for a in range(0, n, per_call):  # (Ctrl-C is heard between calls)
            b = min(n, a + per_call)
            self._kernels.sample(self.weights, state, seed_ix, uniforms[a:b], temperature,
                                 greedy, ixes[a:b], top_k, float(top_p))
            seed_ix = int(ixes[b - 1])
            if progress is not None:
                progress(b - a)
        return ixes.tolist(), state

    @_taking_turns
    def reset_state(self):
        """Start the next chunk at position 0 with a zero state: the state zeroed in place, or
        a new one where it cannot be (of another batch_size than the config's now, read-only,
        not an array: it was refused, and with it the way out of a batch_size change)."""
        try:
            state = self._checked_training_state(training=False)
        except ValueError:
            self.state = self.zero_state(self.config.batch_size)
        else:
            if state.flags.writeable:
                state[...] = 0
            else:
                self.state = self.zero_state(self.config.batch_size)
        self.position = 0
