"""The LSTM cell, as PyTorch's ``nn.LSTM`` computes it (gate order i, f, g, o):

    a = Wxh x_t + Whh h_{t-1} + bh                  (4H: the four gates' pre-activations)
    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

One bias per gate: ``bh`` stands for PyTorch's ``b_ih + b_hh`` (the sum is all the equations
see). The state is (h, c); ``h`` is the output the layer above and the softmax read.

Initialisation: every tensor, biases included, uniform in [-1/sqrt(H), 1/sqrt(H)], PyTorch's
rule for its LSTM and for the ``nn.Linear(H, V)`` softmax layer on top (``output_tensors``).
See ``rnn.py`` for the contract of a cell module.
"""

from collections import namedtuple

import numpy as np

from . import rnn
from .rnn import input_backward, input_term

NAME = "lstm"
STATES = ("h", "c")
GATES = 4
# (a name of its own: Numba tells named tuple types apart by their names, and the tanh cell's
# Layer has the same fields; and a module attribute of that name, so that pickle finds the
# class by reference when Numba's cache index stores kernel signatures: pickled by value, it
# would be a new class in every process, and no cached LSTM kernel would ever match)
LSTMLayer = Layer = namedtuple("LSTMLayer", ["Wxh", "Whh", "bh"])
TORCH = "LSTM"
torch_biases, from_torch_biases = rnn.torch_biases, rnn.from_torch_biases  # (bh: b_ih + b_hh)


def uniform(hidden):
    """PyTorch's initialiser for recurrent layers of ``hidden`` units: (rng, shape) ->
    U(-1/sqrt(hidden), 1/sqrt(hidden)), drawn in float64. (The bound is found when it draws:
    a layout of a size too large to build is refused for its memory, not here.)"""
    def draw(rng, shape):
        bound = 1.0 / np.sqrt(hidden)
        return rng.uniform(-bound, bound, shape)
    return draw


def tensors(inputs, hidden):
    """(name, shape, initialiser) of one layer reading ``inputs`` values (V for layer 0)."""
    init = uniform(hidden)
    return (("Wxh", (GATES * hidden, inputs), init),
            ("Whh", (GATES * hidden, hidden), init),
            ("bh", (GATES * hidden,), init))


def output_tensors(vocab, hidden):
    """(name, shape, initialiser) of the softmax layer on top: ``nn.Linear(H, V)``'s rule,
    weight and bias U(-1/sqrt(H), 1/sqrt(H)). (min-char-rnn's N(0, 0.01) output layer, measured
    in PyTorch's LSTM 2 x 256 on tinyshakespeare, costs ~0.09 bits/char after 2.5 minutes.)"""
    init = uniform(hidden)
    return (("Why", (vocab, hidden), init),
            ("by", (vocab,), init))


def sigmoid(a):
    with np.errstate(over="ignore"):  # (e**800 is inf and the sigmoid 0: exact, no warning)
        return 1 / (1 + np.exp(-a))


def gates(layer, x, h):
    """The activated gates i, f, g, o, each (B, H)."""
    a = input_term(layer, x) + h @ layer.Whh.T + layer.bh
    i, f, g, o = np.split(a, 4, axis=-1)
    return sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)


def step(layer, x, state):
    """One step of B streams: the new state (h, c) as (2, B, H)."""
    h, c = state
    i, f, g, o = gates(layer, x, h)
    c_new = f * c + i * g
    return np.stack([o * np.tanh(c_new), c_new])


def backward_step(layer, x, state, new_state, dstate, grads):
    """Backward through ``step`` (see ``rnn.py``'s contract); dstate' = (dh_t, dc_t)."""
    h_prev, c_prev = state
    c = new_state[1]
    dh, dc = dstate
    i, f, g, o = gates(layer, x, h_prev)
    tc = np.tanh(c)
    dc = dc + dh * o * (1 - tc * tc)                        # c_t reaches h_t through tanh
    da = np.concatenate([dc * g * i * (1 - i),             # d a_i
                         dc * c_prev * f * (1 - f),        # d a_f
                         dc * i * (1 - g * g),             # d a_g
                         dh * tc * o * (1 - o)], axis=-1)  # d a_o
    grads.bh[...] += da.sum(axis=0)
    grads.Whh[...] += da.T @ h_prev
    dx = input_backward(layer, x, da, grads)
    return np.stack([da @ layer.Whh, dc * f]), dx
