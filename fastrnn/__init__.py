"""fastrnn: min-char-rnn's character-level RNN with Numba kernels and a NumPy oracle.

Drop-in functions for min-char-rnn-style code (same shapes, same results)::

    import fastrnn
    loss, dWxh, dWhh, dWhy, dbh, dby, h = fastrnn.lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    fastrnn.adagrad([Wxh, Whh, Why, bh, by], [dWxh, dWhh, dWhy, dbh, dby], mems, learning_rate)
    ixes = fastrnn.sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=np.random.default_rng(0))

and a model object, ``fastrnn.CharRNN``, that trains many chunks per kernel call.
"""

__version__ = "0.1.0"

from .backends import BACKENDS, get_backend
from .dropin import adagrad, lossFun, sample
from .model import CharRNN, Config
from .params import init_params
from .vocab import Vocab

__all__ = ["BACKENDS", "CharRNN", "Config", "Vocab", "adagrad", "get_backend", "init_params",
           "lossFun", "sample", "__version__"]
