"""The model's parameters by name: one flat buffer, and named views into it.

A ``Spec`` lists every parameter tensor of a model -- the cell's tensors for each layer, then
the output layer ``Why (V, H)``, ``by (V,)`` -- with its name, shape and initialiser. It is
the one place that knows the layout, and everything else finds a parameter by its name:

    spec = Spec("rnn", vocab_size=65, hidden_size=100)
    w = spec.init(seed=0, dtype="float64")      # Weights
    w.layers[0].Whh, w.Why                      # views into w.flat
    w.flat                                      # all of them, for the optimizer's one pass

``Weights`` is a named tuple, so the same object is read by name in Python and passed as it is
to the Numba kernels (which read ``w.layers[0].Whh`` too). Gradients and optimizer state use
the same layout (``spec.zeros``), so an update is one loop over flat buffers.

Keys (the names in checkpoints): a layer-0 tensor keeps the cell's name (``Wxh``, as
min-char-rnn); layer l >= 1 adds ``.l`` (``Wxh.1``); the output layer's are ``Why`` and ``by``.
"""

import copyreg
import functools
import math
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from . import cells, validate

Weights = namedtuple("Weights", ["flat", "layers", "Why", "by"])


@dataclass(frozen=True)
class Tensor:
    name: str               # the cell's (or the output layer's) name for it
    shape: tuple
    layer: object           # its layer, or None for the output layer
    init: object            # (rng, shape) -> float64 array
    offset: int             # where it starts in the flat buffer

    @property
    def key(self):
        return self.name if not self.layer else f"{self.name}.{self.layer}"

    @property
    def size(self):
        return math.prod(self.shape)


class Spec:
    """The parameter layout of a ``cell`` model with ``num_layers`` layers of ``hidden_size``
    units over a vocabulary of ``vocab_size`` characters."""

    def __init__(self, cell, vocab_size, hidden_size, num_layers=1):
        self.cell = cells.get(cell)
        for name, value, least in (("vocab_size", vocab_size, 2), ("hidden_size", hidden_size, 1),
                                   ("num_layers", num_layers, 1)):
            if not validate.is_integer(value) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        vocab_size, hidden_size, num_layers = int(vocab_size), int(hidden_size), int(num_layers)
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        entries = []
        for layer in range(num_layers):
            inputs = vocab_size if layer == 0 else hidden_size
            entries += [(name, shape, layer, init)
                        for name, shape, init in self.cell.tensors(inputs, hidden_size)]
        entries += [(name, shape, None, init)
                    for name, shape, init in self.cell.output_tensors(vocab_size, hidden_size)]
        tensors, offset = [], 0
        for name, shape, layer, init in entries:
            tensors.append(Tensor(name, tuple(int(n) for n in shape), layer, init, offset))
            offset += tensors[-1].size
        self.tensors = tuple(tensors)
        self.size = offset
        self.by_key = {t.key: t for t in self.tensors}
        # (start, stop, shape) of every view, for ``view``, which runs on every drop-in call
        self._slices = tuple((t.offset, t.offset + t.size, t.shape) for t in self.tensors)
        self._per_layer = len(self.cell.Layer._fields)

    @classmethod
    @functools.lru_cache(maxsize=64)
    def of(cls, cell, vocab_size, hidden_size, num_layers=1):
        """The same Spec, shared: for code that needs one per call (the drop-in functions, the
        oracle, the CUDA copies), where building it anew cost ~10 us each time. A Spec is never
        modified after it is built."""
        return cls(cell, vocab_size, hidden_size, num_layers)

    def __reduce__(self):  # (pickle, copy: a cell is a module, which pickle cannot take)
        return Spec, (self.cell.NAME, self.vocab_size, self.hidden_size, self.num_layers)

    def lays_out(self, w):
        """Whether the tensors of Weights ``w`` are the views of ``w.flat`` that ``view``
        makes (not another model's, nor arrays of their own)."""
        layout = lambda a: (a.ctypes.data, a.shape, a.strides)  # noqa: E731
        return [layout(a) for a in self.arrays(w)] == \
            [layout(a) for a in self.arrays(self.view(w.flat))]

    def __repr__(self):
        return (f"Spec({self.cell.NAME!r}, vocab_size={self.vocab_size}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers})")

    def view(self, flat):
        """Weights whose tensors are views into ``flat`` (a 1-D array of ``size`` elements: a
        NumPy array or anything that slices and reshapes like one, such as a device array)."""
        if getattr(flat, "shape", None) != (self.size,):
            raise ValueError(f"a flat parameter buffer for {self} holds {self.size} values, "
                             f"got {_described(flat)}")
        return self.assemble(flat, [flat[a:b].reshape(shape) for a, b, shape in self._slices])

    def assemble(self, flat, arrays):
        """Weights from one array per tensor, in spec order (``flat`` may be a dummy)."""
        n, Layer = self._per_layer, self.cell.Layer
        layers = tuple(Layer(*arrays[k:k + n]) for k in range(0, n * self.num_layers, n))
        return Weights(flat, layers, arrays[-2], arrays[-1])

    def zeros(self, dtype):
        """Zeroed weights (gradients, optimizer state) in ``dtype``."""
        return self.view(np.zeros(self.size, validate.float_dtype(dtype)))

    def init(self, seed=0, dtype="float64"):
        """Initial weights: each tensor's initialiser in spec order, drawn from
        ``np.random.default_rng(seed)`` in float64, then cast, so that a seed gives the same
        model in either dtype (min-char-rnn's draws: Wxh, Whh, Why)."""
        if isinstance(seed, bool) or validate.is_integer(seed) and seed < 0:
            raise ValueError(f"seed must be an integer >= 0 (or what numpy.random.default_rng "
                             f"takes), got {seed!r}")
        dtype = validate.float_dtype(dtype)
        try:
            rng = np.random.default_rng(seed)  # (None: a fresh random one; a SeedSequence)
        except (TypeError, ValueError) as e:
            raise ValueError(f"seed {seed!r} is not one numpy.random.default_rng takes: "
                             f"{e}") from None
        validate.fits(self.size * dtype.itemsize, f"{self} with its {self.size:,} parameters")
        w = self.zeros(dtype)
        for t, array in zip(self.tensors, self.arrays(w)):
            array[...] = t.init(rng, t.shape)
        return w

    def arrays(self, weights):
        """The weights' tensors in spec order."""
        out = []
        for layer in weights.layers:
            out.extend(layer)
        return out + [weights.Why, weights.by]

    def named(self, weights):
        """{key: array} in spec order."""
        return dict(zip((t.key for t in self.tensors), self.arrays(weights)))

    def copy(self, weights):
        """A new flat buffer holding the same values."""
        return self.view(weights.flat.copy())


def _described(flat):
    shape = getattr(flat, "shape", None)
    return f"shape {shape}" if shape is not None else f"a {type(flat).__name__}"


def _reduce_weights(w):
    """How ``pickle`` and ``copy.deepcopy`` rebuild Weights: laid out by a Spec, as that
    Spec's views of (a copy of) their flat buffer; copied array by array, the tensors would
    each be an array of its own, no longer the views of ``flat`` that the kernels and the
    optimizer's one pass rely on. Other Weights array by array."""
    try:
        spec = Spec.of(cells.get_by_layer(w.layers[0]).NAME, *w.Why.shape, len(w.layers))
        if isinstance(w.flat, np.ndarray) and spec.lays_out(w):
            return spec.view, (w.flat,)
    except (ValueError, TypeError, AttributeError, IndexError):
        pass
    return Weights, tuple(w)


copyreg.pickle(Weights, _reduce_weights)
