"""``backend="numba"``: the CPU kernels (``fastrnn/kernels``) behind the backend interface.

One stream (B = 1) of min-char-rnn's model (one tanh layer) runs the single-stream kernels of
``kernels/cpu.py``; everything else -- B > 1 streams (training, and evaluation as several
streams), the LSTM and GRU cells, several layers, dropout -- the mini-batch kernels of
``kernels/batch.py`` (imported on first use: their BLAS binding costs
start-up time that single-stream users need not pay). Each kernel is compiled on its first
call for the dtype, optimizer and path that call uses, and loaded from Numba's cache after.
"""

import threading

import numpy as np

from .. import reference
from ..config import CLIP, EVAL_CALL_MACS, EVAL_CALL_STEPS, EVAL_STEPS
from ..cells import rnn
from ..reference import spec_of

_local = threading.local()


def scratch(key, make):
    """Per-thread buffers, made once per key (sizes and dtype) and reused."""
    cache = getattr(_local, "buffers", None)
    if cache is None or len(cache) > 32:
        cache = _local.buffers = {}
    buf = cache.get(key)
    if buf is None:
        buf = cache[key] = make()
    return buf


def chunk_work(T, H, V, dtype):
    """Buffers of a single-stream chunk: (hs (T+1, H), ps (T, V), dys (T, V), dhs (T, H),
    dh_next (H,))."""
    return (np.empty((T + 1, H), dtype), np.empty((T, V), dtype), np.empty((T, V), dtype),
            np.empty((T, H), dtype), np.empty(H, dtype))


def minchar(w, B):
    """Whether min-char-rnn's single-stream kernels (``kernels/cpu.py``) run this: one stream
    of one tanh layer. Everything else runs the mini-batch kernels (``kernels/batch.py``)."""
    return B == 1 and len(w.layers) == 1 and isinstance(w.layers[0], rnn.Layer)


class NumbaBackend:
    name = "numba"
    call_chars = 1 << 15  # a second or two at the slowest (one stream of a large LSTM)

    def __init__(self):
        from ..kernels import cpu
        self.cpu = cpu

    @staticmethod
    def _batch():
        from ..kernels import batch
        return batch

    def _chunk(self, T, w):
        V, H = w.Why.shape
        return scratch(("chunk", T, H, V, w.Why.dtype), lambda: chunk_work(T, H, V, w.Why.dtype))

    def _batch_work(self, B, T, w, backward=True):
        """The thread's ``batch.Work`` for chunks of B streams x T steps of weights w; not
        ``backward``: an evaluation's, forward only (no gradients or backward buffers)."""
        spec = spec_of(w)  # (and the unit size that decides its forms now: tests change it)
        return scratch(("batch", spec, B, T, w.Why.dtype, backward, self._batch().tile_rows),
                       lambda: self._batch().Work(spec, B, T, w.Why.dtype, backward))

    def forward(self, w, x, y, state, masks=None):
        (B, T), (V, H) = x.shape, w.Why.shape
        if minchar(w, B) and masks is None:
            hs, ps, *_ = self._chunk(T, w)
            loss = self.cpu.forward(x[0], y[0], state[0, 0, 0], w, hs, ps)
            return loss, hs.reshape(1, T + 1, 1, 1, H), ps.reshape(T, 1, V)
        work = self._batch_work(B, T, w)
        loss = self._batch().forward(x, y, state, w, work, masks=masks)
        return loss, work.states(), work.ps()

    def backward(self, w, x, y, hs, ps, g, masks=None):
        B, T = x.shape
        if minchar(w, B) and masks is None:
            work = self._chunk(T, w)
            self.cpu.backward(x[0], y[0], np.ascontiguousarray(hs[0, :, 0, 0]),
                              np.ascontiguousarray(ps[:, 0]), w, g, work[2:])
        else:  # from the state before the chunk (the forward pass runs again)
            self._batch().backward(x, y, np.ascontiguousarray(hs[:, 0]), w, g,
                                   self._batch_work(B, T, w), masks=masks)

    def train(self, w, g, optimizer, states, data, position, state, learning_rate, seq_length,
              step, losses, threads, masks=None, clip=CLIP):
        B = state.shape[2]
        opt = optimizer.state([s.flat for s in states])
        if minchar(w, B) and masks is None:
            return self.cpu.train(data, position, state[0, 0, 0], w, g, opt, learning_rate,
                                  seq_length, step, losses, self._chunk(seq_length, w),
                                  self.cpu.clip_limit(clip))
        return self._batch().train(data, position, state, w, g, opt, learning_rate, seq_length,
                                   step, losses, self._batch_work(B, seq_length, w), threads,
                                   masks, clip)

    def evaluate(self, w, data, state, threads=1, progress=None):
        V, H = w.Why.shape
        B = state.shape[2]
        if not minchar(w, B):
            T = min(EVAL_STEPS, max(1, (len(data) - 1) // B))
            return self._batch().evaluate(data, state, w, self._batch_work(B, T, w, False),
                                          threads, progress)
        L = min(EVAL_STEPS, max(1, len(data) - 1))
        work = scratch(("evaluate", L, H, V, w.Why.dtype),
                       lambda: (np.empty((L + 1, H), w.Why.dtype), np.empty((L, V), w.Why.dtype)))
        loss = 0.0
        steps = EVAL_STEPS * max(1, min(EVAL_CALL_STEPS, EVAL_CALL_MACS // (H * (H + V)))
                                 // EVAL_STEPS)  # per call (passes of L: the same sums)
        for start in range(0, len(data) - 1, steps):  # (Ctrl-C is heard between)
            part = data[start:start + steps + 1]
            loss = self.cpu.evaluate(part, state[0, 0, 0], w, work, loss)
            if progress is not None:
                progress(len(part) - 1)
        return loss

    def sample(self, w, state, seed_ix, uniforms, temperature, greedy, ixes, top_k=0, top_p=1.0):
        V, H = w.Why.shape
        if not minchar(w, 1):
            batch = self._batch()
            spec = spec_of(w)
            weights_t, buffers = scratch(
                ("sample", spec, w.Why.dtype),
                lambda: (batch.Transposes(spec, w.Why.dtype, backward=False),
                         batch.sample_buffers(spec, w.Why.dtype)))
            batch.sample(state, seed_ix, uniforms, w, *weights_t.load(w), temperature, greedy,
                         top_k, float(top_p), ixes, *buffers)
            return
        work = scratch(("sample", H, V, w.Why.dtype),
                       lambda: (np.empty(H, w.Why.dtype), np.empty(V, w.Why.dtype),
                                np.empty(V, np.float64)))
        self.cpu.sample(state[0, 0, 0], seed_ix, uniforms, w, temperature, greedy, top_k,
                        float(top_p), ixes, work)

    def values_fit(self, flats, squares):
        w, *states = flats
        if any(s.shape != w.shape for s in states):  # (the kernel reads them to w's length)
            raise ValueError(f"values_fit: buffers of shapes {[f.shape for f in flats]}, "
                             f"expected one shape")
        others = [s for k, s in enumerate(states, 1) if k != squares]
        if len(others) > 1:  # (no optimizer here has three states)
            return reference.values_fit(flats, squares)
        return self.cpu.values_fit(w, others[0] if others else flats[squares], flats[squares])

    def update(self, optimizer, w, g, states, learning_rate, step, clip):
        self.cpu.update(optimizer.state(states), w, g, learning_rate, step, clip > 0,
                        self.cpu.clip_limit(clip))


def load():
    return NumbaBackend()
