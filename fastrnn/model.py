"""CharRNN: the min-char-rnn model as an object that owns its arrays.

    model = CharRNN(vocab_size=65, hidden_size=100)
    losses = model.train(data, n_steps=1000)      # 1000 chunks in one kernel call
    ids = model.sample(200, seed_ix=0, rng=np.random.default_rng(0))

``model.params`` are min-char-rnn's arrays (``Wxh (H,V)``, ``Whh (H,H)``, ``Why (V,H)``,
``bh (H,1)``, ``by (V,1)``); ``model.mems`` their Adagrad memory; ``model.h`` the hidden state
(H,1) and ``model.position`` the next chunk's start in the training data, both carried from
call to call exactly as min-char-rnn's loop carries them.
"""

from dataclasses import asdict, dataclass

import numpy as np

from . import validate
from .backends import (batch_workspace, evaluate_workspace, get_backend, sample_workspace,
                       workspace)
from .params import init_params, kernel_view, zeros_like
from .reference import OPTIMIZERS
from .vocab import id_dtype


@dataclass(frozen=True)
class Config:
    """Everything that defines the model and its training (min-char-rnn's defaults)."""

    vocab_size: int
    hidden_size: int = 100
    seq_length: int = 25
    learning_rate: float = 0.1
    dtype: str = "float64"
    seed: int = 0
    batch_size: int = 1
    optimizer: str = "adagrad"

    def __post_init__(self):
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, (int, np.integer)) \
                or self.vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2, got {self.vocab_size!r}")
        validate.positive("hidden_size", self.hidden_size, int)
        validate.positive("seq_length", self.seq_length, int)
        validate.positive("learning_rate", self.learning_rate)
        validate.positive("batch_size", self.batch_size, int)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if str(self.dtype) not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        object.__setattr__(self, "dtype", str(self.dtype))

    def to_dict(self):
        return asdict(self)


class CharRNN:
    """A vanilla character RNN trained with truncated BPTT and (by default) Adagrad, as
    min-char-rnn; optionally on B streams at once and with RMSprop or Adam."""

    def __init__(self, vocab_size, hidden_size=100, seq_length=25, learning_rate=0.1,
                 dtype=None, seed=0, backend="numba", batch_size=1, threads=None,
                 optimizer="adagrad"):
        if dtype is None:  # float32 is the GPU's natural type; float64 the CPU reference's
            dtype = "float32" if backend == "cuda" else "float64"
        if isinstance(dtype, (type, np.dtype)):  # np.float32 or np.dtype("float32") -> "float32"
            dtype = np.dtype(dtype).name
        self.config = Config(vocab_size, hidden_size, seq_length, learning_rate, dtype, seed,
                             batch_size, optimizer)
        self.backend = backend
        self.threads = threads
        c = self.config
        self.params = init_params(c.hidden_size, c.vocab_size, c.seed, c.dtype)
        self.mems = zeros_like(self.params)  # Adagrad memory / RMSprop mean square / Adam m
        self.mems2 = zeros_like(self.params) if optimizer == "adam" else None  # Adam's v
        self.step = 0  # updates made so far (Adam's bias correction counts them)
        # min-char-rnn's (H, 1) column for one stream; one row per stream for a mini-batch
        self.h = np.zeros((c.hidden_size, 1) if c.batch_size == 1 else
                          (c.batch_size, c.hidden_size), c.dtype)
        self.position = 0
        self._grads = zeros_like(self.params)
        self._work = None  # chunk buffers, made on first use
        self._data = None  # (the caller's array, the validated copy)

    @property
    def threads(self):
        return self._threads

    @threads.setter
    def threads(self, n):
        """Threads for mini-batch training (default: Numba's thread count, NUMBA_NUM_THREADS)."""
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

    def _prepared(self, data):
        """data as a validated array of ids, cached for the same array object."""
        if self._data is not None and self._data[0] is data:
            return self._data[1]
        c = self.config
        B = c.batch_size
        ready = self._checked_ids(
            data, B * (c.seq_length + 1),
            f"training with seq_length={c.seq_length}" + (f" in {B} streams" if B > 1 else ""))
        self._data = (data, ready)
        return ready

    def _checked_ids(self, data, min_length, purpose="this"):
        """data as a contiguous array of valid ids of at least min_length; ValueError otherwise."""
        c = self.config
        if isinstance(data, np.ndarray) and data.dtype.kind in "iu" and data.ndim == 1:
            arr = data
        else:
            arr = np.asarray(data)
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise ValueError("data must be a one-dimensional sequence of integer character ids")
        if arr.size < min_length:
            raise ValueError(f"data has {arr.size} characters; {purpose} needs at least {min_length}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= c.vocab_size:
            raise ValueError(f"data holds id {lo if lo < 0 else hi}, outside the vocabulary "
                             f"[0, {c.vocab_size})")
        return np.ascontiguousarray(arr, dtype=id_dtype(c.vocab_size))

    def train(self, data, n_steps=1):
        """Train on ``n_steps`` consecutive chunks of ``data`` (integer ids); return their losses.

        Each chunk is ``seq_length`` inputs and the targets one character later; the loss of a
        chunk is summed over its characters. Parameters, optimizer state, ``h`` and ``position``
        advance in place; a chunk that would pass the end of the data starts again at 0 with
        ``h`` reset, as in min-char-rnn. With ``batch_size`` B > 1 the data is cut into B equal
        contiguous streams, a chunk is one piece of every stream (``h`` holds one row per
        stream; ``position`` is the offset inside every stream), and its loss and gradients are
        summed over the streams.
        """
        ready = self._prepared(data)
        n_steps = validate.positive("n_steps", n_steps, int)
        c = self.config
        losses = np.empty(n_steps, np.float64)
        args = (kernel_view(self.params), kernel_view(self._grads), kernel_view(self.mems),
                c.learning_rate, c.seq_length, losses)
        opt = None  # Adagrad; otherwise (optimizer id, updates so far, second state)
        if c.optimizer != "adagrad":
            second = self.mems2 if self.mems2 is not None else self.mems  # (unused by RMSprop)
            opt = (OPTIMIZERS.index(c.optimizer), self.step, kernel_view(second))
        if c.batch_size == 1:
            if self._work is None:
                self._work = workspace(c.seq_length, c.hidden_size, c.vocab_size, np.dtype(c.dtype))
            self.position = int(self._kernels.train(ready, self.position, self.h.reshape(-1),
                                                    *args, self._work, opt))
            self.step += n_steps
            return losses
        if self._work is None and self.backend == "numba":
            self._work = batch_workspace(c.batch_size, c.seq_length, c.hidden_size, c.vocab_size,
                                         np.dtype(c.dtype))
        self.position = int(self._kernels.train_batch(ready, self.position, self.h, *args,
                                                      self._work, self.threads, opt))
        self.step += n_steps
        return losses

    def evaluate(self, data, h=None):
        """Summed loss (nats) of predicting ``data[1:]`` from ``data[:-1]``, without training.

        The hidden state starts at ``h`` (default zeros) and runs through the whole sequence.
        Returns (loss, h_after) where ``h_after`` is the state after reading ``data[:-1]``:
        ``loss / (len(data) - 1)`` is the mean per character, and priming a sample on a text is
        ``evaluate(text)`` then ``sample(..., seed_ix=text[-1], h=h_after)``.
        """
        c = self.config
        ready = self._checked_ids(data, 1)
        h = np.zeros(c.hidden_size, c.dtype) if h is None else \
            validate.hidden("h", h, c.hidden_size, np.dtype(c.dtype)).reshape(-1).copy()
        L = min(256, max(1, len(ready) - 1))
        loss = self._kernels.evaluate(ready, h, kernel_view(self.params),
                                      evaluate_workspace(L, c.hidden_size, c.vocab_size, h.dtype))
        return float(loss), h.reshape(-1, 1)

    def sample(self, n, seed_ix, rng=None, temperature=1.0, greedy=False, h=None):
        """n ids generated after ``seed_ix``, from ``h`` (default: the training state, unchanged).

        Returns (ids, h_after) so that generation can continue where it stopped.
        """
        c = self.config
        if isinstance(seed_ix, bool) or not isinstance(seed_ix, (int, np.integer)) \
                or not 0 <= seed_ix < c.vocab_size:
            raise ValueError(f"seed_ix must be a character id in [0, {c.vocab_size}), got {seed_ix!r}")
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        temperature = validate.positive("temperature", temperature)
        rng = np.random.default_rng() if rng is None else rng
        if h is None:  # the training state (of the first stream, for a mini-batch)
            h = self.h if c.batch_size == 1 else self.h[0]
        else:
            h = validate.hidden("h", h, c.hidden_size, np.dtype(c.dtype))
        h = h.reshape(-1).copy()
        ixes = np.empty(n, np.int64)
        self._kernels.sample(h, int(seed_ix), rng.random(n), kernel_view(self.params), temperature,
                             bool(greedy), ixes, sample_workspace(c.hidden_size, c.vocab_size, h.dtype))
        return ixes.tolist(), h.reshape(-1, 1)

    def reset_state(self):
        """Start the next chunk at position 0 with a zero hidden state."""
        self.h[:] = 0
        self.position = 0
