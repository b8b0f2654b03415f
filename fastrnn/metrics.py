"""The training run's record: evaluations as JSON lines, and a loss-curve picture.

Each evaluation is one line of ``metrics.jsonl``::

    {"iteration": 5000, "epoch": 0.1398, "chars": 125000, "train_loss": 1.93,
     "train_bpc": 2.78, "val_loss": 1.98, "val_bpc": 2.86, "val_streams": 1,
     "learning_rate": 0.1, "train_seconds": 0.8, "wall_seconds": 2.4, "chars_per_s": 160000.0}

``val_streams`` is how many streams the validation read the held-out text as, and
``learning_rate`` the rate at the record's iteration (a schedule's). ``epoch`` counts passes
over the training text (iterations over the chunks per pass); losses in nats per character
(``train_loss`` is the mean over the iterations since the previous record, with dropout if the
run has it; null before the first iteration), ``*_bpc`` the same in bits per character;
``train_seconds`` is the time spent in training kernel calls (not evaluation or compilation) and
``chars_per_s`` the rate in it; ``wall_seconds`` the time since the start of training,
everything included (over every process of a resumed run).
"""

import io
import json
import logging
import math
import time

from . import files


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
            if points:  # (train_loss: None before the first iteration; val_loss: no held out)
                ax.plot(*zip(*points), label=label, **style)
        if not ax.lines:  # (closed below)
            return "nothing to draw yet (no iteration trained, no validation)"
        ax.set_xlabel("iteration")
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
