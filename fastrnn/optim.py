"""The optimizers, by name: one entry each.

An entry gives the optimizer's name, the id the fused kernels switch on (the update loop of
every optimizer is written out inside the kernels: routing it through a per-element helper
measured 1.5x slower), the names of its state buffers (each shaped like the parameters; they
are the prefixes of its arrays in a checkpoint), the named tuple of them the CPU kernels take,
the one that sums squares (never negative: a checkpoint is checked), its reference update in
``fastrnn.reference``, its usual learning rate and its description for ``--help``. Gradients
are clipped to [-grad_clip, grad_clip] (the model's; CLIP = 5 unless set) before any of them.

Adding an optimizer: an entry here, its reference function, its loop in ``kernels/cpu.py``
(a function registered in ``_LOOPS``, which ``optimizer_update`` dispatches to) and its branch
in ``kernels/cuda.py:optimize`` (see ARCHITECTURE.md: its state is one or two buffers, one of
them the never-negative squares).
"""

from collections import namedtuple
from dataclasses import dataclass

from . import reference
from .config import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ADAM_RATE, MODEL_DEFAULTS,
                     RMSPROP_DECAY, RMSPROP_EPS, RMSPROP_RATE)

ADAGRAD, RMSPROP, ADAM = 0, 1, 2  # the kernels' ids


@dataclass(frozen=True)
class Optimizer:
    name: str
    id: int
    State: type          # the named tuple of its state buffers that the CPU kernels take: its
                         # type selects the optimizer's loop when a kernel is compiled (a run
                         # compiles only its own)
    squares: str         # the state buffer of squared gradients' sums or averages
    reference: object    # fn(params, grads, states, lr, step), lists of arrays, in place
    rate: float          # its usual learning rate: a new training run's default, and the base
                         # of a fine-tune's that changes to it (``checkpoint.fine_tune_base``)
    help: str            # what it is, for --help

    @property
    def states(self):
        """The names of its state buffers, e.g. ("m",) or ("m", "v")."""
        return self.State._fields

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


def _g(x):  # 1e-8 as it is written, not 1e-08
    return f"{x:g}".replace("e-0", "e-")


OPTIMIZERS = {o.name: o for o in (
    Optimizer("adagrad", ADAGRAD, AdagradState, "m", _adagrad, MODEL_DEFAULTS["learning_rate"],
              f"min-char-rnn's: m += g*g; w -= lr g / sqrt(m + {_g(ADAGRAD_EPS)})"),
    Optimizer("rmsprop", RMSPROP, RMSpropState, "m", _rmsprop, RMSPROP_RATE,
              f"char-rnn's: decay {_g(RMSPROP_DECAY)}, eps {_g(RMSPROP_EPS)}"),
    Optimizer("adam", ADAM, AdamState, "v", _adam, ADAM_RATE,
              f"PyTorch's: betas {_g(ADAM_BETA1)}/{_g(ADAM_BETA2)}, eps {_g(ADAM_EPS)}"),
)}


def get(name):
    """The optimizer called ``name``; ValueError naming the choices otherwise."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}") from None
