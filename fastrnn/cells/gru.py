"""The GRU cell, as PyTorch's ``nn.GRU`` computes it (gate order r, z, n):

    ax = Wxh x_t + bh                  (3H)      ah = Whh h_{t-1}     (3H)
    r = sigmoid(ax_r + ah_r)           z = sigmoid(ax_z + ah_z)
    n = tanh(ax_n + r * (ah_n + bhn))  (the reset gate scales W_hn h + b_hn, as PyTorch)
    h_t = (1 - z) * n + z * h_{t-1}

One bias per gate for r and z (``bh[:2H]`` stands for PyTorch's ``b_ir + b_hr`` and
``b_iz + b_hz``), ``bh[2H:]`` is ``b_in`` and ``bhn`` is ``b_hn``, which must stay apart
because r multiplies it. The state is h alone.

Initialisation: every tensor, biases included, uniform in [-1/sqrt(H), 1/sqrt(H)], PyTorch's
rule for its GRU and for the ``nn.Linear(H, V)`` softmax layer on top (``output_tensors``,
the LSTM's). See ``rnn.py`` for the contract of a cell module.
"""

from collections import namedtuple

import numpy as np

from . import lstm
from .lstm import sigmoid, uniform
from .rnn import input_backward, input_term

NAME = "gru"
STATES = ("h",)
GATES = 3
GRULayer = Layer = namedtuple("GRULayer", ["Wxh", "Whh", "bh", "bhn"])  # (as lstm.LSTMLayer)
TORCH = "GRU"


def tensors(inputs, hidden):
    """(name, shape, initialiser) of one layer reading ``inputs`` values (V for layer 0)."""
    init = uniform(hidden)
    return (("Wxh", (GATES * hidden, inputs), init),
            ("Whh", (GATES * hidden, hidden), init),
            ("bh", (GATES * hidden,), init),
            ("bhn", (hidden,), init))


output_tensors = lstm.output_tensors  # the softmax layer on top: the LSTM's (nn.Linear's rule)


def torch_biases(biases):
    """PyTorch's (bias_ih, bias_hh) of a layer whose biases are ``biases`` ({name: array}):
    bias_ih is bh, bias_hh is 0 for r and z (bh holds their sums) and bhn for n."""
    bh, bhn = biases["bh"], biases["bhn"]
    hidden = np.zeros_like(bh)
    hidden[2 * bhn.shape[0]:] = bhn
    return bh, hidden


def from_torch_biases(bias_ih, bias_hh):
    """The layer's biases by name from PyTorch's two (``torch_biases``' inverse): r's and z's
    summed into bh, n's kept apart (r scales b_hn alone)."""
    H = bias_ih.shape[0] // GATES
    bh = bias_ih.copy()
    bh[:2 * H] += bias_hh[:2 * H]
    return {"bh": bh, "bhn": bias_hh[2 * H:].copy()}


def parts(layer, x, h):
    """(r, z, n, hn) for B streams: the gates and hn = Whh_n h + bhn, each (B, H)."""
    ax = input_term(layer, x) + layer.bh
    ah = h @ layer.Whh.T
    H = h.shape[-1]
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    hn = ah[:, 2 * H:] + layer.bhn
    n = np.tanh(ax[:, 2 * H:] + r * hn)
    return r, z, n, hn


def step(layer, x, state):
    """One step of B streams: the new state (1, B, H)."""
    h = state[0]
    r, z, n, _ = parts(layer, x, h)
    return ((1 - z) * n + z * h)[None]


def backward_step(layer, x, state, new_state, dstate, grads):
    """Backward through ``step`` (see ``rnn.py``'s contract)."""
    h_prev, dh = state[0], dstate[0]
    r, z, n, hn = parts(layer, x, h_prev)
    dan = dh * (1 - z) * (1 - n * n)                       # d (ax_n + r * hn)
    dar = dan * hn * r * (1 - r)
    daz = dh * (h_prev - n) * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=-1)         # d ax
    dah = np.concatenate([dar, daz, dan * r], axis=-1)     # d ah (and d hn for the n part)
    grads.bh[...] += dax.sum(axis=0)
    grads.bhn[...] += (dan * r).sum(axis=0)
    grads.Whh[...] += dah.T @ h_prev
    dx = input_backward(layer, x, dax, grads)
    return (dah @ layer.Whh + dh * z)[None], dx
