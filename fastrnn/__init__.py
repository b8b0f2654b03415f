"""fastrnn: character-level RNN language models with Numba kernels and a NumPy oracle.

A model object that trains many chunks per kernel call::

    model = fastrnn.CharRNN(vocab_size=65, hidden_size=100)
    losses = model.train(ids, n_steps=1000)

Drop-in functions for min-char-rnn-style code (same shapes, same results), in
``fastrnn.dropin`` (``lossFun`` and ``adagrad`` also here)::

    from fastrnn.dropin import lossFun, adagrad, sample
    loss, dWxh, dWhh, dWhy, dbh, dby, h = lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)

``fastrnn.sample`` is the command ``python -m fastrnn.sample``; the drop-in sampler is
``fastrnn.dropin.sample``.
"""

__version__ = "0.2.0"

from . import cli as _cli

_command = _cli.starting_command()  # ``python -m fastrnn.train``; not a program importing us
if _command:
    _cli.start(_command)

from .backends import BACKENDS, get_backend
from .dropin import adagrad, init_params, lossFun
from .model import CharRNN, Config, TrainingInterrupted
from .spec import Spec, Weights
from .vocab import Vocab

__all__ = ["BACKENDS", "CharRNN", "Config", "Spec", "TrainingInterrupted", "Vocab", "Weights",
           "adagrad", "get_backend", "init_params", "lossFun", "__version__"]
