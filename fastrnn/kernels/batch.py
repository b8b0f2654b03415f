"""Mini-batch kernels: B streams at once; each mirrors the ``*_batch`` function in ``reference``.

Layout: hidden states are (B, H), one row per stream; activations are ``hs (T+1, B, H)`` and
``ps (T, B, V)``, so all T*B rows of a chunk form one contiguous (T*B, H) or (T*B, V) matrix.

Matrix products go to the BLAS behind NumPy (``np.matmul`` into preallocated outputs, one BLAS
thread each); what BLAS cannot fuse is done by the ``@njit`` kernels below (``nogil``).

Two cores work as a pipeline. The calling thread runs the recurrence, which is sequential in
time: per step one (B,H)x(H,H) product and a fused add + tanh (forward), or a fused
tanh-backward and one product (backward). Every ``TIME_BLOCK`` steps it hands the finished rows
to a worker thread, which does everything that does not depend on the next step: during the
forward pass the output product, the fused softmax + loss, dy = p - onehot, dy Why and dWhy; during
the backward pass dWhh, dbh and dWxh (rows of draw added per character). BLAS and the kernels
release the GIL, so the two threads run at once. The worker takes the blocks in a fixed order
and accumulates into the gradients in that order, so one thread (everything inline, same
order) and two threads give the same bits.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from . import vmath
from .cpu import ADAGRAD, optimize
from .options import NJIT
from .scalar import tanh_backward

TIME_BLOCK = 8        # steps per piece handed to the worker


class Work:
    """Buffers for chunks of B streams x T steps (allocated once, reused every chunk)."""

    def __init__(self, B, T, H, V, dtype):
        self.shape = (B, T, H, V)
        self.hs = np.empty((T + 1, B, H), dtype)      # hidden states, hs[0] = h before the chunk
        self.pre = np.empty((T, B, H), dtype)         # Wxh[:, x] + bh for every step
        self.acc = np.empty((B, H), dtype)            # one step's recurrent product
        self.ps = np.empty((T, B, V), dtype)          # probabilities
        self.dys = np.empty((T, B, V), dtype)         # p - onehot
        self.dhout = np.empty((T, B, H), dtype)       # dy Why: dh from each step's output
        self.draws = np.empty((T, B, H), dtype)       # gradient through tanh
        self.dh_next = np.empty((B, H), dtype)
        self.row_loss = np.empty(T * B, np.float64)
        self.WxhT = np.empty((V, H), dtype)           # contiguous transposes of the weights
        self.WhhT = np.empty((H, H), dtype)
        self.WhyT = np.empty((H, V), dtype)
        self.dWhyT = np.empty((H, V), dtype)          # accumulated by the worker
        self.dWxhT = np.empty((V, H), dtype)
        self.tmp_hh = np.empty((H, H), dtype)         # one block's product before it is added
        self.tmp_hv = np.empty((H, V), dtype)
        self.x = np.empty((T, B), np.int64)           # inputs, step-major
        self.y = np.empty((T, B), np.int64)           # targets, step-major
        self.blocks = [(t, min(t + TIME_BLOCK, T)) for t in range(0, T, TIME_BLOCK)]


class Worker:
    """The second thread of the pipeline; with ``threads=1`` its pieces run inline."""

    def __init__(self, threads):
        self._executor = ThreadPoolExecutor(1) if threads > 1 else None
        self._pending = []

    def submit(self, fn, *args):
        if self._executor is None:
            fn(*args)
        else:
            self._pending.append(self._executor.submit(fn, *args))

    def wait(self):
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()


_WORKERS = {}


def worker(threads):
    threads = max(1, min(int(threads), 2))  # the pipeline has two stages
    if threads not in _WORKERS:
        _WORKERS[threads] = Worker(threads)
    return _WORKERS[threads]


# --------------------------------------------------------------------------------------------
# Fused element-wise kernels (one piece each; nogil, so pieces run in parallel)

@njit(**NJIT)
def gather_inputs(x, WxhT, bh, pre):
    """pre[t, b] = Wxh[:, x[t, b]] + bh (WxhT: (V, H), the transpose, rows contiguous)."""
    T, B = x.shape
    for t in range(T):
        for b in range(B):
            row = WxhT[x[t, b]]
            for i in range(bh.shape[0]):
                pre[t, b, i] = row[i] + bh[i]


@njit(**NJIT)
def add_tanh(pre, acc, out):
    """out = tanh(pre + acc), element-wise over (B, H)."""
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = vmath.tanh(pre[b, i] + acc[b, i])


@njit(**NJIT)
def softmax_loss(logits, by, y, row_loss):
    """Row r: logits[r] <- softmax(logits[r] + by); row_loss[r] = -log p[r, y[r]]."""
    R, V = logits.shape
    for r in range(R):
        m = logits[r, 0] + by[0]
        for v in range(V):
            logits[r, v] += by[v]
            m = max(m, logits[r, v])
        s = 0.0
        for v in range(V):
            e = vmath.exp(logits[r, v] - m)
            logits[r, v] = e
            s += e
        inv = 1.0 / s
        for v in range(V):
            logits[r, v] *= inv
        row_loss[r] = -np.log(np.float64(logits[r, y[r]]))


@njit(**NJIT)
def output_delta(ps, y, dys):
    """dys = ps - onehot(y), row by row."""
    R, V = ps.shape
    for r in range(R):
        for v in range(V):
            dys[r, v] = ps[r, v]
        dys[r, y[r]] -= 1


@njit(**NJIT)
def through_tanh(h, dhout, dh_next, draw):
    """draw = (1 - h^2) * (dhout + dh_next), element-wise over (B, H)."""
    one = h.dtype.type(1)
    for b in range(h.shape[0]):
        for i in range(h.shape[1]):
            draw[b, i] = tanh_backward(h[b, i], dhout[b, i] + dh_next[b, i], one)


@njit(**NJIT)
def add_rows_by_character(x, draws, dWxhT):
    """dWxhT[c] += sum of draws[r] over the rows r whose input is character c (x: (R,), draws (R, H))."""
    for r in range(x.shape[0]):
        row = dWxhT[x[r]]
        for i in range(row.shape[0]):
            row[i] += draws[r, i]


@njit(**NJIT)
def add_column_sums(a, out):
    """out[j] += sum_r a[r, j], rows in order."""
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[r, j]


# --------------------------------------------------------------------------------------------
# The chunk: forward, backward, training

def _load(work, inputs, targets, params):
    Wxh, Whh, Why, bh, _ = params
    work.x[:] = inputs.T
    work.y[:] = targets.T
    work.WxhT[:] = Wxh.T
    work.WhhT[:] = Whh.T
    work.WhyT[:] = Why.T
    gather_inputs(work.x, work.WxhT, bh, work.pre)


def _rows(a, t0, t1):
    """Steps t0..t1-1 of a (T, B, n) array as a (rows, n) matrix."""
    return a[t0:t1].reshape(-1, a.shape[2])


def _output_block(params, work, t0, t1, first):
    """Worker, forward: softmax and loss for steps t0..t1-1, then their ``_output_side``."""
    B = work.shape[0]
    logits, h = _rows(work.ps, t0, t1), _rows(work.hs, t0 + 1, t1 + 1)
    np.matmul(h, work.WhyT, out=logits)
    softmax_loss(logits, params[4], work.y[t0:t1].reshape(-1), work.row_loss[t0 * B:t1 * B])
    _output_side(params, work, t0, t1, first)


def _output_side(params, work, t0, t1, first):
    """dy = p - onehot, dh_out = dy Why and dWhy (accumulated) for steps t0..t1-1."""
    dys, h = _rows(work.dys, t0, t1), _rows(work.hs, t0 + 1, t1 + 1)
    output_delta(_rows(work.ps, t0, t1), work.y[t0:t1].reshape(-1), dys)
    np.matmul(dys, params[2], out=_rows(work.dhout, t0, t1))
    if first:
        np.matmul(h.T, dys, out=work.dWhyT)
    else:
        np.matmul(h.T, dys, out=work.tmp_hv)
        work.dWhyT += work.tmp_hv


def _input_block(grads, work, t0, t1, first):
    """Worker, backward: dWhh, dbh and dWxh contributions of steps t0..t1-1."""
    dWhh, dbh = grads[1], grads[3]
    draws, h_prev = _rows(work.draws, t0, t1), _rows(work.hs, t0, t1)
    x = work.x[t0:t1].reshape(-1)
    if first:
        np.matmul(draws.T, h_prev, out=dWhh)
        dbh[:] = 0
        work.dWxhT[:] = 0
    else:
        np.matmul(draws.T, h_prev, out=work.tmp_hh)
        dWhh += work.tmp_hh
    add_column_sums(draws, dbh)
    add_rows_by_character(x, draws, work.dWxhT)


def forward(inputs, targets, hprev, params, work, threads=1):
    """reference.forward_batch: fills work.hs, work.ps (and, for the backward pass, dys, dh_out
    and dWhy in the work buffers); returns the loss summed over the block."""
    B, T, H, V = work.shape
    _load(work, inputs, targets, params)
    hs, acc = work.hs, work.acc
    hs[0] = hprev
    pipe = worker(threads)
    for t0, t1 in work.blocks:
        for t in range(t0, t1):
            np.matmul(hs[t], work.WhhT, out=acc)
            add_tanh(work.pre[t], acc, hs[t + 1])
        pipe.submit(_output_block, params, work, t0, t1, t0 == 0)
    pipe.wait()
    return float(work.row_loss.sum())


def gradients(params, grads, work, threads=1):
    """reference.backward_batch before clipping, for the chunk whose forward pass is in work."""
    Whh = params[1]
    dWxh, _, dWhy, _, dby = grads
    hs, draws, dh_next = work.hs, work.draws, work.dh_next
    pipe = worker(threads)
    dh_next[:] = 0
    for k, (t0, t1) in enumerate(reversed(work.blocks)):
        for t in range(t1 - 1, t0 - 1, -1):
            through_tanh(hs[t + 1], work.dhout[t], dh_next, draws[t])
            if t > 0:
                np.matmul(draws[t], Whh, out=dh_next)
        pipe.submit(_input_block, grads, work, t0, t1, k == 0)
    dWhy[:] = work.dWhyT.T
    dby[:] = 0
    add_column_sums(work.dys.reshape(-1, dby.shape[0]), dby)
    pipe.wait()
    dWxh[:] = work.dWxhT.T


def backward(inputs, targets, hs, ps, params, grads, work, threads=1):
    """reference.backward_batch (clipped) from given activations."""
    B, T, H, V = work.shape
    _load(work, inputs, targets, params)
    work.hs[:] = hs
    work.ps[:] = ps
    for t0, t1 in work.blocks:  # the forward pass's output-side work, from the given ps
        _output_side(params, work, t0, t1, t0 == 0)
    with threadpool_limits(1, user_api="blas"):
        gradients(params, grads, work, threads)
    for g in grads:
        np.clip(g, -5, 5, out=g)


def train(data, position, h, params, grads, mems, lr, seq_length, losses, work, threads=1,
          opt=None):
    """reference.train_batch for len(losses) chunks; h (B, H) carried in place; returns position.

    opt: as for ``cpu.train`` (None: Adagrad)."""
    kind, step, mems2 = (ADAGRAD, 0, mems) if opt is None else opt
    B, T, H, V = work.shape
    piece = data.shape[0] // B
    starts = (np.arange(B) * piece)[:, None] + np.arange(T + 1)
    with threadpool_limits(1, user_api="blas"):  # two pipeline stages, not parallel BLAS
        for n in range(losses.shape[0]):
            if position + T + 1 >= piece:
                position = 0
                h[:] = 0
            window = data[starts + position]              # (B, T+1)
            losses[n] = forward(window[:, :T], window[:, 1:], h, params, work, threads)
            gradients(params, grads, work, threads)
            optimize(params, grads, mems, mems2, kind, lr, step + n + 1, True)  # clip fused
            h[:] = work.hs[T]
            position += T
    return position
