"""``backend="numpy"``: the oracle (``fastrnn.reference``) behind the backend interface.

Slow and simple, for checking the other backends; every cell, layer count, optimizer and
batch size.
"""

import numpy as np

from .. import reference
from ..config import CLIP, EVAL_STEPS

# A diverging model's inf and NaN come out in its losses, weights and state, as on the other
# backends (and the trainer names them in one line), without NumPy's warnings on the way.
QUIET = dict(over="ignore", invalid="ignore", divide="ignore")


class NumpyBackend:
    name = "numpy"
    call_chars = 1 << 11  # about as long as numba's calls: the oracle is slower

    def forward(self, w, x, y, state, masks=None):
        with np.errstate(**QUIET):
            loss, (hs, ps) = reference.forward(w, x, y, state, masks)
        return loss, hs, ps

    def backward(self, w, x, y, hs, ps, g, masks=None):
        with np.errstate(**QUIET):
            g.flat[...] = reference.backward(w, x, y, (hs, ps), masks=masks).flat

    def train(self, w, g, optimizer, states, data, position, state, learning_rate, seq_length,
              step, losses, threads, masks=None, clip=CLIP):
        with np.errstate(**QUIET):
            out, position, after = reference.train(w, optimizer, states, data, position, state,
                                                   learning_rate, seq_length, len(losses), step,
                                                   masks, clip)
        losses[:] = out
        state[...] = after
        return position

    def evaluate(self, w, data, state, threads=1, progress=None):
        with np.errstate(**QUIET):
            loss, after = reference.evaluate(w, data, state, chunk=EVAL_STEPS, progress=progress)
        state[...] = after
        return loss

    def sample(self, w, state, seed_ix, uniforms, temperature, greedy, ixes, top_k=0, top_p=1.0):
        with np.errstate(**QUIET):
            out, after = reference.sample(w, state, seed_ix, uniforms, temperature, greedy,
                                          top_k, top_p)
        ixes[:len(out)] = out
        state[...] = after

    @staticmethod
    def values_fit(flats, squares):
        return reference.values_fit(flats, squares)

    def update(self, optimizer, w, g, states, learning_rate, step, clip):
        if clip:
            np.clip(g, -clip, clip, out=g)
        optimizer.reference([w], [g], [[s] for s in states], learning_rate, step)


def load():
    return NumpyBackend()
