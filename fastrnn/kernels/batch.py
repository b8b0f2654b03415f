"""Mini-batch kernels: B streams at once; each mirrors the function of the same name in ``reference``.

Public layout: hidden states are (B, H), one row per stream. Inside, the B streams are cut into
units of ``STREAMS_PER_UNIT`` consecutive streams (``config``; the last may be smaller): the
cut depends on B alone, never on the thread count. A unit keeps its own activations,
``hs (T+1, Bu, H)`` and ``ps (T, Bu, V)``, so all of a unit's T*Bu rows form one contiguous
matrix, and its own gradient buffers (one row of ``Work.partials``, laid out as the flat
gradient, read by name through ``Spec.view``); ``Group`` holds a unit's buffers. Per chunk each
unit runs two ``nogil`` kernels, and the threads take the units in turn (``_run``), with no
Python (and no GIL) inside a unit:

    group_forward    pre = Wxh[:, x] + bh (a gather); per step one (Bu,H)x(H,H) product and a
                     fused add + tanh; then one (T*Bu,H)x(H,V) product and a fused softmax + loss
    group_backward   dy = p - onehot; dh_out = dy Why, dWhy = dy^T h as whole-unit products;
                     per step (reversed) a fused tanh-backward and one (Bu,H)x(H,H) product;
                     dWhh = draw^T h, dbh, and dWxh by adding rows of draw per character

The products call NumPy's own OpenBLAS directly (``blas.gemm``), one BLAS thread per unit.
In training one task is a unit's forward and backward pass. Then, over element ranges in
parallel, the units' gradients are summed in unit order straight into the gradient buffer
(``reduce_units``: never a racing ``+=``) and the fused clip + optimizer update follows in the
same task (read by name from ``spec.Weights``, as in ``cpu.py``). Every number is computed by
the same code on the same unit (or range) whichever thread runs it, so one thread and eight
give the same bits, and a run resumed elsewhere repeats.
"""

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from ..config import CLIP, INLINE, NJIT, STREAMS_PER_UNIT, UPDATE_UNIT
from ..reference import wraps
from ..spec import Spec
from . import vmath
from .blas import gemm
from .cpu import forward as forward_one
from .cpu import update
from .scalar import tanh_backward


def units(n, size):
    """[(start, stop)] cutting range(n) into pieces of ``size`` (the last may be shorter)."""
    return [(a, min(a + size, n)) for a in range(0, n, size)]


class Group:
    """Buffers of one unit of Bg streams for chunks of T steps (allocated once); its gradients
    are views into ``partials``, one row of ``Work.partials``."""

    def __init__(self, streams, T, H, V, dtype, partials):
        Bg = streams.stop - streams.start
        self.streams = streams
        self.hs = np.empty((T + 1, Bg, H), dtype)     # hidden states, hs[0] = h before the chunk
        self.pre = np.empty((T, Bg, H), dtype)        # Wxh[:, x] + bh for every step
        self.acc = np.empty((Bg, H), dtype)           # one step's recurrent product
        self.ps = np.empty((T, Bg, V), dtype)         # probabilities
        self.dys = np.empty((T, Bg, V), dtype)        # p - onehot
        self.dhout = np.empty((T, Bg, H), dtype)      # dy Why: dh from each step's output
        self.draws = np.empty((T, Bg, H), dtype)      # gradient through tanh
        self.dh_next = np.empty((Bg, H), dtype)
        self.row_loss = np.empty((T, Bg), np.float64)
        self.x = np.empty((T, Bg), np.int64)          # inputs, step-major
        self.y = np.empty((T, Bg), np.int64)          # targets, step-major
        self.dWxhT = np.empty((V, H), dtype)          # dWxh as rows per character
        self.grads = Spec.of("rnn", V, H).view(partials)  # this unit's gradients, by name


class Work:
    """Buffers for chunks of B streams x T steps: the units and two weights' transposes."""

    def __init__(self, B, T, H, V, dtype):
        self.shape = (B, T, H, V)
        size = Spec.of("rnn", V, H).size
        self.partials = np.empty((len(units(B, STREAMS_PER_UNIT)), size), dtype)
        self.groups = [Group(slice(a, b), T, H, V, dtype, self.partials[k])
                       for k, (a, b) in enumerate(units(B, STREAMS_PER_UNIT))]
        self.WxhT = np.empty((V, H), dtype)           # Wxh's columns as rows, for the gather
        self.WhhT = np.empty((H, H), dtype)           # Whh^T, for the per-step products

    def hs(self):
        """The chunk's hidden states as (T+1, B, H)."""
        return np.concatenate([g.hs for g in self.groups], axis=1)

    def ps(self):
        """The chunk's probabilities as (T, B, V)."""
        return np.concatenate([g.ps for g in self.groups], axis=1)


# --------------------------------------------------------------------------------------------
# Fused element-wise kernels

@njit(**INLINE)
def gather_inputs(x, WxhT, bh, pre):
    """pre[t, b] = Wxh[:, x[t, b]] + bh (WxhT: (V, H), the transpose, rows contiguous)."""
    T, B = x.shape
    for t in range(T):
        for b in range(B):
            row = WxhT[x[t, b]]
            for i in range(bh.shape[0]):
                pre[t, b, i] = row[i] + bh[i]


@njit(**INLINE)
def add_tanh(pre, acc, out):
    """out = tanh(pre + acc), element-wise over (B, H)."""
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = vmath.tanh(pre[b, i] + acc[b, i])


@njit(**INLINE)
def softmax_loss(ps, by, y, row_loss):
    """ps[t, b] <- softmax(ps[t, b] + by); row_loss[t, b] = -log p[t, b, y[t, b]] (computed from
    the logits; subnormal probabilities set to 0, see ``cpu.softmax_inplace``)."""
    T, B, V = ps.shape
    for t in range(T):
        for b in range(B):
            row = ps[t, b]
            m = row[0] + by[0]
            for v in range(V):
                row[v] += by[v]
                m = max(m, row[v])
            target_logit = row[y[t, b]]
            s = 0.0
            for v in range(V):
                e = vmath.exp(row[v] - m)
                row[v] = e
                s += e
            inv = 1.0 / s
            flush = vmath.tiny(row[0])
            for v in range(V):  # subnormal probabilities -> 0, as in cpu.softmax_inplace
                p = row[v] * inv
                row[v] = p if p >= flush else row.dtype.type(0)
            row_loss[t, b] = m + np.log(s) - target_logit  # -log p[target], from the logits


@njit(**INLINE)
def through_tanh(h, dhout, dh_next, draw):
    """draw = (1 - h^2) * (dhout + dh_next), element-wise over (B, H)."""
    one = h.dtype.type(1)
    for b in range(h.shape[0]):
        for i in range(h.shape[1]):
            draw[b, i] = tanh_backward(h[b, i], dhout[b, i] + dh_next[b, i], one)


# --------------------------------------------------------------------------------------------
# One unit's chunk (nogil: units run in parallel)

@njit(**NJIT)
def group_forward(x, y, WxhT, WhhT, Why, bh, by, hs, pre, acc, ps, row_loss):
    """Forward pass of one unit; hs[0] holds its hidden states. Returns the summed loss.
    (WhhT: Whh transposed, contiguous: OpenBLAS multiplies small row blocks by a transposed
    operand at half the speed, measured.)"""
    T, Bg = x.shape
    H, V = WhhT.shape[0], Why.shape[0]
    gather_inputs(x, WxhT, bh, pre)
    for t in range(T):
        gemm(False, False, Bg, H, H, hs[t], H, WhhT, H, 0.0, acc, H)       # acc = h Whh^T
        add_tanh(pre[t], acc, hs[t + 1])
    gemm(False, True, T * Bg, V, H, hs[1], H, Why, H, 0.0, ps[0], V)       # all steps' logits
    softmax_loss(ps, by, y, row_loss)
    loss = 0.0
    for t in range(T):
        for b in range(Bg):
            loss += row_loss[t, b]
    return loss


@njit(**NJIT)
def group_backward(x, y, Whh, Why, hs, ps, dys, dhout, draws, dh_next, dWxhT, grads):
    """Unclipped gradients of one unit's chunk, from its forward pass, into ``grads`` (Weights
    laid out as the flat gradient; dWxhT: scratch)."""
    T, Bg = x.shape
    H, V = Whh.shape[0], Why.shape[0]
    R = T * Bg
    rnn = grads.layers[0]
    dby = grads.by
    dby[:] = 0
    for t in range(T):
        for b in range(Bg):
            for v in range(V):
                dys[t, b, v] = ps[t, b, v]
                dby[v] += ps[t, b, v]
            dys[t, b, y[t, b]] -= 1
            dby[y[t, b]] -= 1
    gemm(False, False, R, H, V, dys[0], V, Why, H, 0.0, dhout[0], H)      # dh_out = dy Why
    gemm(True, False, V, H, R, dys[0], V, hs[1], H, 0.0, grads.Why, H)    # dWhy = dy^T h
    dh_next[:] = 0
    for t in range(T - 1, -1, -1):
        through_tanh(hs[t + 1], dhout[t], dh_next, draws[t])
        if t > 0:
            gemm(False, False, Bg, H, H, draws[t], H, Whh, H, 0.0, dh_next, H)  # draw Whh
    gemm(True, False, H, H, R, draws[0], H, hs[0], H, 0.0, rnn.Whh, H)    # dWhh = draw^T h
    dbh = rnn.bh
    dbh[:] = 0
    dWxhT[:] = 0
    for t in range(T):
        for b in range(Bg):
            row = dWxhT[x[t, b]]
            for i in range(H):
                dbh[i] += draws[t, b, i]
                row[i] += draws[t, b, i]
    dWxh = rnn.Wxh
    for i in range(H):
        for v in range(V):
            dWxh[i, v] = dWxhT[v, i]


@njit(**NJIT)
def reduce_units(partials, out, a, b):
    """out[a:b] = partials[0, a:b] + partials[1, a:b] + ..., added in unit order: the units'
    gradient sum. (Through 1-D views of the range: LLVM vectorises those loops, not the
    2-D-indexed ones, 3x faster measured.)"""
    total = out[a:b]
    total[:] = partials[0, a:b]
    for k in range(1, partials.shape[0]):
        row = partials[k, a:b]
        for e in range(total.shape[0]):
            total[e] += row[e]


# --------------------------------------------------------------------------------------------
# The chunk: forward, backward, training

_POOLS = {}


def _run(threads, fn, items):
    """[fn(item) for item in items], the items taken in turn by ``threads`` threads (this one
    and a pool's). Which thread runs an item changes nothing in its result."""
    n = len(items)
    threads = min(threads, n)
    if threads <= 1:
        return [fn(item) for item in items]
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads - 1)
    results = [None] * n
    taken = itertools.count()  # next() on it is atomic under the GIL

    def worker():
        k = next(taken)
        while k < n:
            results[k] = fn(items[k])
            k = next(taken)

    helpers = [_POOLS[threads].submit(worker) for _ in range(threads - 1)]
    worker()
    for h in helpers:
        h.result()
    return results


def _load(work, inputs, targets, hprev, w):
    work.WxhT[:] = w.layers[0].Wxh.T
    work.WhhT[:] = w.layers[0].Whh.T
    for g in work.groups:
        g.x[:] = inputs[g.streams].T
        g.y[:] = targets[g.streams].T
        g.hs[0] = hprev[g.streams]


def _forward_one(work, w, g):
    rnn = w.layers[0]
    return group_forward(g.x, g.y, work.WxhT, work.WhhT, w.Why, rnn.bh, w.by, g.hs, g.pre, g.acc,
                         g.ps, g.row_loss)


def _backward_one(w, g):
    group_backward(g.x, g.y, w.layers[0].Whh, w.Why, g.hs, g.ps, g.dys, g.dhout, g.draws,
                   g.dh_next, g.dWxhT, g.grads)


def forward(inputs, targets, hprev, w, work, threads=1):
    """reference.forward; the activations stay in the work buffers (``work.hs()``,
    ``work.ps()``). Returns the loss summed over the block.

    Call it (and ``gradients``) with BLAS limited to one thread, as ``train`` does, when
    ``threads`` > 1: the units are the parallelism."""
    _load(work, inputs, targets, hprev, w)
    loss = 0.0
    for part in _run(threads, lambda g: _forward_one(work, w, g), work.groups):  # unit order
        loss += part
    return loss


def gradients(w, g, work, threads=1):
    """reference.backward before clipping, for the chunk whose forward pass is in work."""
    _run(threads, lambda k: _backward_one(w, k), work.groups)
    _run(threads, lambda span: reduce_units(work.partials, g.flat, *span),
         units(g.flat.shape[0], UPDATE_UNIT))


def backward(inputs, targets, hs, ps, w, g, work, threads=1):
    """reference.backward (clipped) from given activations hs (T+1,B,H), ps (T,B,V)."""
    _load(work, inputs, targets, hs[0], w)
    for group in work.groups:
        group.hs[:] = hs[:, group.streams]
        group.ps[:] = ps[:, group.streams]
    with threadpool_limits(1, user_api="blas"):
        gradients(w, g, work, threads)
    np.clip(g.flat, -CLIP, CLIP, out=g.flat)


def _sum_and_update(work, state, w, g, lr, step, span):
    """The units' gradient sum into g and the fused clip + optimizer update, over one range."""
    a, b = span
    reduce_units(work.partials, g.flat, a, b)
    update(type(state)(*(f[a:b] for f in state)), w.flat[a:b], g.flat[a:b], lr, step, True)


def train(data, position, h, w, g, state, lr, seq_length, step, losses, work, threads=1):
    """reference.train for B = len(h) streams and len(losses) chunks; h (B, H) carried in
    place; ``step``: updates made before. Returns the position.

    Per chunk, two parallel phases: each unit's forward and backward pass (one task per unit),
    then, per element range, the units' gradient sum and the clipped optimizer update."""
    B, T, H, V = work.shape
    piece = data.shape[0] // B
    starts = (np.arange(B) * piece)[:, None] + np.arange(T + 1)
    ranges = units(w.flat.shape[0], UPDATE_UNIT)

    def unit(k):
        loss = _forward_one(work, w, k)
        _backward_one(w, k)
        h[k.streams] = k.hs[T]
        return loss

    with threadpool_limits(1, user_api="blas"):  # one BLAS thread per unit
        for n in range(losses.shape[0]):
            if wraps(position, T, piece):
                position = 0
                h[:] = 0
            window = data[starts + position]              # (B, T+1)
            _load(work, window[:, :T], window[:, 1:], h, w)
            loss = 0.0
            for part in _run(threads, unit, work.groups):  # in unit order
                loss += part
            losses[n] = loss
            _run(threads, lambda span: _sum_and_update(work, state, w, g, lr, step + n + 1, span),
                 ranges)
            position += T
    return position


def evaluate(data, h, w, work, threads=1):
    """reference.evaluate with B = len(h) streams: the summed loss of predicting data[1:] as B
    contiguous streams, each from h[b] (carried in place): stream b predicts the P = n // B
    characters after position b*P (n = len(data) - 1), T steps at a time; the last stream then
    goes on alone through the n - B*P characters left (at most B - 1)."""
    B, T, H, V = work.shape
    n = data.shape[0] - 1
    P = n // B
    starts = np.arange(B) * P
    loss = 0.0
    with threadpool_limits(1, user_api="blas"):
        for t0 in range(0, P, T):
            m = min(T, P - t0)
            chunk = work if m == T else Work(B, m, H, V, work.WxhT.dtype)  # the short last one
            window = data[(starts + t0)[:, None] + np.arange(m + 1)]
            loss += forward(window[:, :m], window[:, 1:], h, w, chunk, threads)
            for group in chunk.groups:
                h[group.streams] = group.hs[m]
        rest = n - B * P
        if rest:
            hs, ps = np.empty((rest + 1, H), h.dtype), np.empty((rest, V), h.dtype)
            loss += forward_one(data[B * P:n], data[B * P + 1:n + 1], h[B - 1].copy(), w, hs, ps)
            h[B - 1] = hs[rest]
    return loss
