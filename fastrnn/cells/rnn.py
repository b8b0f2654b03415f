"""min-char-rnn's tanh cell: ``h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)``.

A cell is a unit: its parameters (``tensors``), its reference step forward and backward
(float64-readable NumPy, the oracle every kernel is tested against) and the names of the
kernels that implement it. Layer 0 reads the one-hot character (``Wxh`` is (H, V) and the
product is a column gather); a layer above reads the output of the layer below (``Wxh`` is
(H, H)).

Shapes, for B streams: ``x`` ids (B,) or inputs (B, I); ``h`` (B, H).
"""

from collections import namedtuple

import numpy as np

from .. import config

NAME = "rnn"
STATES = ("h",)                                         # what a layer carries from step to step
Layer = namedtuple("Layer", ["Wxh", "Whh", "bh"])      # one layer's parameters, by name


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


def input_term(layer, x):
    """Wxh x for a batch: x holds ids (B,) for layer 0 (a column gather), else values (B, I)."""
    return layer.Wxh.T[x] if x.ndim == 1 else x @ layer.Wxh.T


def step(layer, x, h):
    """One step of B streams: the new hidden state (B, H)."""
    return np.tanh(input_term(layer, x) + h @ layer.Whh.T + layer.bh)


def backward_step(layer, x, h_prev, h, dh, grads):
    """Backward through ``step``: dh (B, H) is the loss's gradient at its output ``h``.

    Adds the parameters' gradients into ``grads`` (a Layer of arrays) and returns (dh_prev
    (B, H), dx (B, I) or None for layer 0, whose input is not differentiable).
    """
    draw = (1 - h * h) * dh                                   # through tanh
    grads.bh[...] += draw.sum(axis=0)
    grads.Whh[...] += draw.T @ h_prev
    if x.ndim == 1:
        np.add.at(grads.Wxh.T, x, draw)                       # streams may share a character
        dx = None
    else:
        grads.Wxh[...] += draw.T @ x
        dx = draw @ layer.Wxh
    return draw @ layer.Whh, dx
