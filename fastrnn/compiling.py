"""Telling the user when Numba compiles, so a first run's pause is never silent.

Numba compiles a kernel the first time it is called with new argument types, unless its
machine code is in the cache (``__pycache__``, kept across runs). ``announce`` listens to
Numba's compile events around a call: when one starts it prints a single status line, and
afterwards how long compiling took. Cache loads are not compilations and print nothing.
"""

import time
from contextlib import contextmanager

from numba.core import event

from .kernels.caching import ProcessCacheLocator


class _Listener(event.Listener):
    def __init__(self, say, message):
        self.say, self.message = say, message
        self.depth, self.start, self.seconds = 0, None, 0.0

    def on_start(self, event):
        if self.depth == 0:
            if self.start is None:
                self.say(self.message)
            self.t0 = time.perf_counter()
            self.start = self.t0
        self.depth += 1

    def on_end(self, event):
        self.depth -= 1
        if self.depth == 0:
            self.seconds += time.perf_counter() - self.t0


@contextmanager
def announce(say, what, kernels="kernels"):
    """Around a call that may compile kernels: ``say("compiling KERNELS for WHAT (first run
    only)...")`` when compilation starts (``kernels``: which, e.g. "validation kernels", where
    a run compiles several sets), then ``say("compiled in S s")`` after the call. Yields a
    record whose ``seconds`` is the time spent compiling (0.0: none)."""
    kept = "(first run only; later runs load them from the cache)" \
        if ProcessCacheLocator.directory is None else "(no cache kept: in every run)"
    listener = _Listener(say, f"compiling {kernels} for {what} {kept}...")
    with event.install_listener("numba:compile", listener):
        yield listener
    if listener.start is not None:
        say(f"compiled in {listener.seconds:.1f} s")
