"""The learning rate of every iteration of ``python -m fastrnn.train``: char-rnn's step decay,
and a linear anneal to 0 over the end of the run.

    rate(i) = learning_rate * factor ** (i // every)           (--lr-decay F --lr-decay-every N)
              * (1 - (j + 0.5) / K)    for i in the anneal's window [start, end): piece j of K

The window's W = end - start iterations are cut into pieces of P = ceil(W / steps) iterations
(K = ceil(W / P) <= steps of them, the last possibly shorter), the rate constant in each, at
its middle's value: a staircase of at most ``steps`` (100 unless fewer are asked for) down the
straight line that reaches 0 at ``end``, so that the kernels still take many iterations per
call. From ``end`` on the rate is 0.

``i`` counts iterations done (the rate of iteration i + 1); a schedule is a pure function of it,
so a resumed run repeats the rates of an uninterrupted one.
"""

from dataclasses import dataclass

PIECES = 100  # the anneal's steps at most


@dataclass(frozen=True)
class Schedule:
    learning_rate: float
    decay: tuple = None   # (factor, every): char-rnn's step decay, or None
    anneal: tuple = None  # (start, end[, steps]): the linear decay to 0, or None

    def __call__(self, i):
        rate = self.learning_rate
        if self.decay:
            factor, every = self.decay
            rate *= factor ** (i // every)
        if self.anneal and i >= self.anneal[0]:
            start, end, piece = self._window()
            if i >= end:
                return 0.0
            rate *= 1 - ((i - start) // piece + 0.5) / -(-(end - start) // piece)
        return rate

    def _window(self):
        """(start, end, iterations a step)."""
        start, end, *steps = self.anneal
        return start, end, -(-(end - start) // (steps[0] if steps else PIECES))

    def constant_until(self, i):
        """The first iteration after ``i`` whose rate may differ from ``i``'s (a decay, the
        anneal's start or its next piece), or None: a training call never crosses it."""
        changes = []
        if self.decay:
            every = self.decay[1]
            changes.append((i // every + 1) * every)
        if self.anneal:
            start, end, piece = self._window()
            if i < start:
                changes.append(start)
            elif i < end:
                changes.append(min(end, start + ((i - start) // piece + 1) * piece))
        return min(changes, default=None)


def anneal_start(fraction, target):
    """Where an anneal over the last ``fraction`` of a run to iteration ``target`` starts (the
    window is at least one iteration)."""
    return min(target - 1, round(target * (1 - fraction)))
