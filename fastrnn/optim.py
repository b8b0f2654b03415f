"""The optimizers, by name: one entry each.

An entry gives the optimizer's name, the id the fused kernels switch on (the update loop of
every optimizer is written out inside the kernels: routing it through a per-element helper
measured 1.5x slower), the names of its state buffers (each shaped like the parameters; they
are the prefixes of its arrays in a checkpoint) and its reference update in
``fastrnn.reference``. Gradients are clipped to [-CLIP, CLIP] before any of them.

Adding an optimizer: an entry here, its reference function, and its loop in
``kernels/cpu.py:optimizer_update`` and ``kernels/cuda.py:optimize`` (see ARCHITECTURE.md).
"""

from collections import namedtuple
from dataclasses import dataclass

from . import reference

ADAGRAD, RMSPROP, ADAM = 0, 1, 2  # the kernels' ids


@dataclass(frozen=True)
class Optimizer:
    name: str
    id: int
    states: tuple        # names of its state buffers, e.g. ("m",) or ("m", "v")
    reference: object    # fn(params, grads, states, lr, step), lists of arrays, in place
    help: str

    @property
    def State(self):
        """The named tuple of its state buffers that the CPU kernels take: its type selects
        the optimizer's loop when the kernel is compiled, so a run compiles only its own."""
        return _STATES[self.name]

    def state(self, buffers):
        """Its state for the kernels from one flat buffer per state name."""
        return self.State(*buffers)


def _adagrad(params, grads, states, lr, step):
    reference.adagrad(params, grads, states[0], lr)


def _rmsprop(params, grads, states, lr, step):
    reference.rmsprop(params, grads, states[0], lr)


def _adam(params, grads, states, lr, step):
    reference.adam(params, grads, states[0], states[1], lr, step)


# (module-level, so that Numba's cache can name the types)
AdagradState = namedtuple("AdagradState", ["m"])
RMSpropState = namedtuple("RMSpropState", ["m"])
AdamState = namedtuple("AdamState", ["m", "v"])
_STATES = {"adagrad": AdagradState, "rmsprop": RMSpropState, "adam": AdamState}

OPTIMIZERS = {o.name: o for o in (
    Optimizer("adagrad", ADAGRAD, ("m",), _adagrad, "min-char-rnn's: m += g*g; w -= lr g / sqrt(m + 1e-8)"),
    Optimizer("rmsprop", RMSPROP, ("m",), _rmsprop, "char-rnn's: decay 0.95, eps 1e-8"),
    Optimizer("adam", ADAM, ("m", "v"), _adam, "PyTorch's: betas 0.9/0.999, eps 1e-8"),
)}


def get(name):
    """The optimizer called ``name``; ValueError naming the choices otherwise."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}") from None
