"""The one interface every backend implements.

Conventions, the same for every backend and every caller:

- parameters and gradients are ``spec.Weights`` (named views into one flat buffer);
- the optimizer is an ``optim.Optimizer``; its state is one Weights per ``optimizer.states``;
- a chunk is ``x``, ``y``: (B, T) character ids, B streams of T steps;
- the recurrent state is ``state (L, S, B, H)``: per layer, the cell's S state vectors of every
  stream; functions that run one stream (``evaluate``, ``sample``) take B = 1. It is updated in
  place.
- activations ``hs (L, T+1, S, B, H)`` (``hs[:, 0]``: the state before the chunk) and
  ``ps (T, B, V)``;
- dropout between layers: ``masks (L-1, T, B, H)`` per chunk (``reference.dropout_masks``),
  ``(n, L-1, T, B, H)`` for n chunks of training, or None (no dropout).

Scratch buffers are each backend's own business (kept per thread and per size); nothing is
allocated inside a time loop.
"""

from typing import Protocol

from ..config import CLIP


class Backend(Protocol):
    name: str
    call_chars: int | None  # the most characters (chunks x T x B) ``CharRNN.train`` gives one
                            # ``train`` call, so that Ctrl-C, which waits for the call in
                            # flight, waits at most about that long; None: one call for all

    def forward(self, w, x, y, state, masks=None):
        """The chunk's summed loss and activations: (loss, hs, ps). The arrays may be the
        backend's scratch: valid until its next call from this thread."""

    def backward(self, w, x, y, hs, ps, g, masks=None):
        """Overwrite g with the chunk's gradients, clipped to [-CLIP, CLIP] (min-char-rnn's:
        the drop-in ``lossFun``'s)."""

    def train(self, w, g, optimizer, states, data, position, state, learning_rate, seq_length,
              step, losses, threads, masks=None, clip=CLIP):
        """``len(losses)`` chunks of training (``reference.train``): weights, optimizer state,
        state updated in place, losses written; ``step``: updates made before; each chunk's
        gradients clipped to [-clip, clip] before its update (0: not clipped). Returns the
        position in every stream after the last chunk."""

    def evaluate(self, w, data, state, threads=1, progress=None):
        """Summed loss of predicting data[1:] from data[:-1]; state (L, S, B, H) advanced:
        B = 1 one stream, B > 1 contiguous streams side by side (``reference.evaluate``).
        ``progress``: if given, called as the work goes with the number of characters
        predicted since its last call (once they are computed: a GPU's too), the calls adding
        up to len(data) - 1; an exception it raises ends the evaluation there."""

    def sample(self, w, state, seed_ix, uniforms, temperature, greedy, ixes, top_k=0, top_p=1.0):
        """len(uniforms) ids into ixes, drawn after seed_ix (``reference.sample``, top-k and
        top-p included); state (L, S, 1, H) advanced."""

    def values_fit(self, flats, squares):
        """``reference.values_fit(flats, squares)``, or False where a value may not fit (the
        caller then finds which, exactly): checked before every training call."""

    def update(self, optimizer, w, g, states, learning_rate, step, clip):
        """One optimizer update over flat arrays (w, g and one per state), in place; g first
        clipped to [-clip, clip] in place, unless ``clip`` is 0."""
