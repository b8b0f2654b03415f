"""The training run's record: evaluations as JSON lines, a loss-curve picture, and the loss of
every iteration, bounded (``LossHistory``).

Each evaluation is one line of ``metrics.jsonl``::

    {"iteration": 5000, "epoch": 0.1398, "chars": 125000, "train_loss": 1.93,
     "train_bpc": 2.78, "val_loss": 1.98, "val_bpc": 2.86, "val_streams": 1,
     "learning_rate": 0.1, "train_seconds": 0.8, "wall_seconds": 2.4, "chars_per_s": 160000.0}

``val_streams`` is how many streams the validation read the held-out text as, and
``learning_rate`` the rate at the record's iteration (a schedule's). ``epoch`` counts passes
over the training text (iterations over the chunks per pass); losses in nats per character
(``train_loss`` is the mean over the iterations since the previous record, from
``LossHistory.sum_since``, with dropout if the run has it; null before the first iteration),
``*_bpc`` the same in bits per character;
``train_seconds`` is the time spent in training kernel calls (not evaluation or compilation) and
``chars_per_s`` the rate in it; ``wall_seconds`` the time since the start of training,
everything included (over every process of a resumed run).
"""

import io
import json
import logging
import math
import time

import numpy as np

from . import files
from .config import LOSS_ENTRIES


def bits(nats):
    return None if nats is None else nats / math.log(2)


def _line(record):
    return json.dumps(record) + "\n"


def rewrite(path, records):
    """Replace the log with ``records`` (a resumed run starts from its checkpoint's history)."""
    text = "".join(_line(r) for r in records)
    files.write_atomically(path, lambda f: f.write(text.encode()))


def append(path, record):
    with open(path, "a") as f:
        f.write(_line(record))


def _pyplot():
    """(matplotlib.pyplot, None), imported for drawing off screen, or (None, why not)."""
    log = logging.getLogger("matplotlib")
    level = log.level
    # (its warnings at import, of a config folder it cannot write, MPLCONFIGDIR's, were
    # paragraphs among the run's lines, --quiet's too: it draws all the same, from a
    # temporary cache)
    log.setLevel(logging.ERROR)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # (MPLBACKEND=bogus is a ValueError at import)
        if isinstance(e, ImportError) and e.name == "matplotlib":
            return None, "matplotlib is not installed (pip install -e \".[plot]\")"
        return None, f"matplotlib could not be imported ({_first_line(e)})"
    finally:
        log.setLevel(level)
    return plt, None


def prepare():
    """Import matplotlib and draw a picture like ``plot``'s, in memory: returns its seconds, what
    a drawing costs from then on (the first ``plot`` no longer pays for the import, 0.35-0.5 s,
    nor for loading fonts), or None where matplotlib fails (``plot`` says why). A training run
    under --time-budget does this before its clock starts, and plans with those seconds: the
    import had been an unplanned cost inside the budget."""
    plt, why = _pyplot()
    if plt is None:
        return None
    start = time.perf_counter()
    try:
        _draw(plt, [{"iteration": i, "train_loss": 3.0 - i, "val_loss": 3.5 - i}
                    for i in range(3)], lambda fig: fig.savefig(io.BytesIO(), format="png",
                                                                dpi=100))
    except Exception:  # (``plot`` says what fails)
        return None
    return time.perf_counter() - start


def plot(path, records):
    """Training and validation loss against iteration as a PNG at ``path``. Returns None when
    drawn, else why not, in words (nothing to draw is said too): the picture is optional, so
    matplotlib missing or failing (a bad MPLBACKEND, a broken install) is said, not raised;
    writing the file is not, and its OSError (a full disk) comes out."""
    plt, why = _pyplot()
    if plt is None:
        return why
    try:
        return _draw(plt, records, lambda fig: files.write_atomically(
            path, lambda f: fig.savefig(f, format="png", dpi=100)))
    except OSError:
        raise
    except Exception as e:  # (write_atomically has removed its temporary file)
        return f"matplotlib failed ({_first_line(e)})"


def _draw(plt, records, save):
    """The picture of ``records``, given to ``save(fig)``; None, or why there is nothing to
    draw."""
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        for key, label, style in (("train_loss", "training", {}),
                                  ("val_loss", "validation", {"marker": "o"})):
            points = [(r["iteration"], r[key]) for r in records if r.get(key) is not None]
            if len(points) == 1:  # (a line of one point, unmarked, did not show)
                style = {"marker": "o"}
            if points:  # (train_loss: None before the first iteration; val_loss: no held out)
                ax.plot(*zip(*points), label=label, **style)
        if not ax.lines:  # (closed below)
            return "nothing to draw yet (no iteration trained, no validation)"
        ax.set_xlabel("iteration")
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)  # (not 0.04 of one)
        ax.set_ylabel("loss (nats per character)")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig)
    finally:
        plt.close(fig)
    return None


def _first_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class LossHistory:
    """The loss of every iteration of a run (each chunk's, summed over its characters and
    streams, as ``CharRNN.train`` returns it) in at most about ``LOSS_ENTRIES`` float64
    entries, so that a run of any length keeps a history, and writes checkpoints, of bounded
    size: one entry per iteration up to ``LOSS_ENTRIES`` iterations; past them, one per
    ``stride`` iterations (2, 4, 8, ...: the smallest power of two that keeps the whole entries
    within ``LOSS_ENTRIES``, pairs of entries merged as it doubles), then the iterations after
    the last whole entry in entries of stride/2, /4, ..., 1 iterations (one of each at most: the
    binary digits of ``iterations % stride``). An entry of 2k iterations holds (a + b) / 2 of its
    two halves' entries, down to single losses, so the entries are a function of the losses
    alone, however they came: a run stopped and resumed holds the same bits as one that was
    not."""

    def __init__(self, entries=(), iterations=0, stride=1, capacity=1024):
        """From a checkpoint's ``losses`` (``entries()``) of ``iterations`` at ``stride`` (a
        power of two; a smaller one than ``stride_for(iterations)``, an earlier checkpoint's,
        is merged to it); ``capacity``: room for this many more entries at once."""
        entries = np.asarray(entries, np.float64)
        stride = int(stride)
        expected = self.count(iterations, stride)
        if len(entries) != expected:
            raise ValueError(f"{len(entries):,} loss entries for {iterations:,} iterations "
                             f"{f'at stride {stride} ' if stride > 1 else ''}(expected "
                             f"{expected:,})")
        self.stride, self.iterations = stride, iterations
        self.whole = iterations // stride  # entries of ``stride`` iterations, then the tail's
        self._entries = np.empty(max(min(self.whole + capacity, LOSS_ENTRIES), self.whole))
        self._entries[:self.whole] = entries[:self.whole]
        sizes = [1 << k for k in reversed(range(stride.bit_length() - 1))
                 if iterations % stride >> k & 1]
        self.tail = list(zip(sizes, entries[self.whole:].tolist()))  # [(iterations, mean)]
        if self.whole > LOSS_ENTRIES:  # (an earlier checkpoint's longer history)
            while self.whole > LOSS_ENTRIES:
                self._halve()
            self._entries = self._entries[:LOSS_ENTRIES].copy()  # (its memory freed)

    @staticmethod
    def count(iterations, stride):
        """The entries of a history of ``iterations`` at ``stride``."""
        return iterations // stride + (iterations % stride).bit_count()

    @staticmethod
    def stride_for(iterations):
        """The stride of a history of ``iterations`` made here: the smallest power of two that
        keeps its whole entries within ``LOSS_ENTRIES``."""
        stride = 1
        while iterations // stride > LOSS_ENTRIES:
            stride *= 2
        return stride

    def entries(self):
        """The history as a checkpoint holds it (a view of its own memory where it can be,
        which adding losses may change: copy it to keep it)."""
        head = self._entries[:self.whole]
        return np.concatenate([head, [mean for _, mean in self.tail]]) if self.tail else head

    def spans(self):
        """(first iteration, iterations) of each entry, as two int64 arrays."""
        sizes = np.concatenate([np.full(self.whole, self.stride, np.int64),
                                np.array([size for size, _ in self.tail], np.int64)])
        return np.cumsum(sizes) - sizes, sizes

    def extend(self, losses):
        """Add the losses of the next ``len(losses)`` iterations."""
        losses = np.asarray(losses, np.float64)
        i, n = 0, len(losses)
        while i < n:
            whole = min((n - i) // self.stride, LOSS_ENTRIES - self.whole)
            if not self.tail and whole > 0:
                self._put(_means(losses[i:i + whole * self.stride], self.stride))
                i += whole * self.stride
                continue
            # the next block: as long as the tail's last entry, which it joins (iterations is
            # a multiple of it), or a whole entry's, or the largest power of two that is left
            size = self.tail[-1][0] if self.tail else self.stride
            while size > n - i:
                size //= 2
            self._add(size, float(_means(losses[i:i + size], size)[0]))
            i += size
        self.iterations += n

    def sum_since(self, start):
        """The sum of the losses of iterations ``start`` (>= 0) onwards (where ``start`` cuts an
        entry, past ``LOSS_ENTRIES`` iterations: its share, as if each of its iterations had
        its mean)."""
        start, total, end = max(start, 0), 0.0, self.whole * self.stride
        if start < end:
            k = -(-start // self.stride)  # the first whole entry from ``start``
            if start % self.stride:
                total += float(self._entries[k - 1]) * (k * self.stride - start)
            total += float(self._entries[k:self.whole].sum()) * self.stride
        for size, mean in self.tail:
            total += mean * min(size, max(0, end + size - start))
            end += size
        return total

    def _add(self, size, mean):
        """An entry of ``size`` iterations after the others (the tail's are all as long or
        longer)."""
        while self.tail and self.tail[-1][0] == size:
            size, mean = 2 * size, (self.tail.pop()[1] + mean) / 2
        if size < self.stride:
            self.tail.append((size, mean))
        elif self.whole < LOSS_ENTRIES:
            self._put(np.array([mean]))
        else:
            self._halve()
            self._add(size, mean)

    def _halve(self):
        """Merge the whole entries in pairs, the stride doubled (the odd one out, if any, is the
        tail's first)."""
        head, pairs = self._entries[:self.whole], self.whole // 2
        if self.whole % 2:
            self.tail.insert(0, (self.stride, float(head[-1])))
        self._entries[:pairs] = (head[0:2 * pairs:2] + head[1:2 * pairs:2]) / 2
        self.whole, self.stride = pairs, 2 * self.stride

    def _put(self, means):
        if self.whole + len(means) > len(self._entries):
            grown = np.empty(min(max(self.whole + len(means), 2 * len(self._entries)),
                                 LOSS_ENTRIES))
            grown[:self.whole] = self._entries[:self.whole]
            self._entries = grown
        self._entries[self.whole:self.whole + len(means)] = means
        self.whole += len(means)


def _means(losses, size):
    """The entries of consecutive blocks of ``size`` (a power of two) losses: pairs' means,
    level by level, as ``LossHistory._add`` makes them."""
    block = losses.reshape(-1, size)
    while block.shape[1] > 1:
        block = (block[:, 0::2] + block[:, 1::2]) / 2
    return block[:, 0]
