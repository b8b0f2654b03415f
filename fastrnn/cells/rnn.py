"""min-char-rnn's tanh cell: ``h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)``.

A cell is a unit: its parameters (``tensors``, a ``Layer`` named tuple; ``output_tensors``,
the initialisers of the softmax layer on top of it), the state it carries
(``STATES``: names of the S vectors, the output ``h`` first), its reference step forward and
backward (float64-readable NumPy, the oracle every kernel is tested against). Layer 0 reads
the one-hot character (``Wxh`` is (G*H, V) and the product is a column gather); a layer above
reads the output of the layer below (``Wxh`` is (G*H, H)); G = ``GATES`` rows per unit.

The contract every cell module keeps (``lstm.py`` and ``gru.py`` too), for B streams:

    step(layer, x, state) -> state'                    state, state': (S, B, H)
    backward_step(layer, x, state, state', dstate', grads) -> (dstate (S, B, H), dx)

``x`` is ids (B,) for layer 0 or inputs (B, I); ``dstate'`` is the loss's gradient at the
step's outputs (for ``h``: from the layer above or the softmax plus from the next step);
``backward_step`` adds the parameters' gradients into ``grads`` (a Layer of arrays) and
returns dx = None for layer 0 (ids are not differentiable). Backward recomputes what it needs
from the step's inputs: readable first, fast in the kernels.
"""

from collections import namedtuple

import numpy as np

from .. import config

NAME = "rnn"
STATES = ("h",)                                         # what a layer carries from step to step
GATES = 1                                               # rows of Wxh and Whh per hidden unit
Layer = namedtuple("Layer", ["Wxh", "Whh", "bh"])      # one layer's parameters, by name
TORCH = "RNN"                                           # PyTorch's module computing the cell:
                                                        # nn.RNN(nonlinearity="tanh")


def normal(rng, shape):
    """min-char-rnn's initialisation: N(0, 1) * 0.01, drawn in float64."""
    return rng.standard_normal(shape) * config.INIT_SCALE


def zeros(rng, shape):
    return np.zeros(shape)  # draws nothing, so the weights' draws stay min-char-rnn's


def tensors(inputs, hidden):
    """(name, shape, initialiser) of one layer reading ``inputs`` values (V for layer 0)."""
    return (("Wxh", (hidden, inputs), normal),
            ("Whh", (hidden, hidden), normal),
            ("bh", (hidden,), zeros))


def output_tensors(vocab, hidden):
    """(name, shape, initialiser) of the softmax layer on top (min-char-rnn's)."""
    return (("Why", (vocab, hidden), normal),
            ("by", (vocab,), zeros))


def torch_biases(biases):
    """PyTorch's (bias_ih, bias_hh) of a layer whose biases are ``biases`` ({name: array}): its
    module adds both to the same sum, which ``bh`` is, so bias_hh is 0 (``interop``)."""
    return biases["bh"], np.zeros_like(biases["bh"])


def from_torch_biases(bias_ih, bias_hh):
    """The layer's biases by name from PyTorch's two (``torch_biases``' inverse)."""
    return {"bh": bias_ih + bias_hh}


def input_term(layer, x):
    """Wxh x for a batch: x holds ids (B,) for layer 0 (a column gather), else values (B, I)."""
    return layer.Wxh.T[x] if x.ndim == 1 else x @ layer.Wxh.T


def step(layer, x, state):
    """One step of B streams: the new state (1, B, H)."""
    h = state[0]
    return np.tanh(input_term(layer, x) + h @ layer.Whh.T + layer.bh)[None]


def backward_step(layer, x, state, new_state, dstate, grads):
    """Backward through ``step`` (see the module's contract)."""
    h_prev, h, dh = state[0], new_state[0], dstate[0]
    draw = (1 - h * h) * dh                                   # through tanh
    grads.bh[...] += draw.sum(axis=0)
    grads.Whh[...] += draw.T @ h_prev
    return (draw @ layer.Whh)[None], input_backward(layer, x, draw, grads)


def input_backward(layer, x, da, grads):
    """The input term's share of backward for pre-activation gradients da (B, G*H): adds
    da^T x into grads.Wxh and returns dx = da Wxh (None for layer 0's ids)."""
    if x.ndim == 1:
        np.add.at(grads.Wxh.T, x, da)                         # streams may share a character
        return None
    grads.Wxh[...] += da.T @ x
    return da @ layer.Wxh
