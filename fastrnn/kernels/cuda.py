"""numba-cuda kernels; each mirrors the function of the same name in ``fastrnn.reference``.

Imported only when ``backend="cuda"`` is asked for. A chunk is T steps of B streams (B = 1
for min-char-rnn): inputs ``x (T, B)``, activations ``hs (T+1, B, H)``, ``ps (T, B, V)``;
biases are 1-D. One chunk is:

    recurrence        one block per stream, the time loop inside the kernel: hs[t+1] =
                      tanh(Wxh[:, x_t] + Whh hs[t] + bh); the one-hot input is a column gather;
                      the stream's h lives in shared memory across all steps
    output_layer      one block per (step, stream): softmax(Why h + by) and its loss
    output_grad       one block per (step, stream): dy = p - onehot(target) and Why^T dy, all
                      before the backward loop
    recurrence_back   one block per stream, reversed time loop:
                      draw[t] = (1 - h^2)(Why^T dy[t] + Whh^T draw[t+1])
    grad_hh/_hy/_xh   one thread per gradient element, a sum over all steps and streams: dWhh,
                      dbh, dWhy, dby, and dWxh gathered by character (no atomics, so results
                      are reproducible)
    optimize          one grid-stride kernel over all five parameters at once (they live in one
                      flat buffer): clip fused with an Adagrad, RMSprop or Adam update

Each stream's recurrence is one block whose threads stride over the H rows, so any H up to
``MAX_H`` works; several blocks per stream with a grid-wide barrier (for large H on a real GPU)
are not written yet. Formulas shared with the CPU kernels come from ``scalar.py``.
"""

import functools
import math

import numpy as np
from numba import cuda, float32, float64, int64

from ..reference import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, CLIP, RMSPROP_DECAY,
                         RMSPROP_EPS)
from .scalar import (ADAGRAD, RMSPROP, adagrad_memory, adagrad_weight, adam_corrections,
                     adam_moment, adam_weight, clip, gradient, rmsprop_memory, rmsprop_weight,
                     tanh_backward)

MAX_H = 2048            # hidden units held in shared memory by the per-stream blocks
BLOCK = 128             # threads per block; tests shrink it so that striding paths run


@functools.cache
def kernels(dtype):
    """The kernels compiled for float32 or float64 arrays (numba-cuda needs the shared-memory
    element type at compile time)."""
    nb = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(dtype)]
    one = nb(1)

    @cuda.jit
    def recurrence(x, hprev, Wxh, Whh, bh, hs):
        """Block b, stream b: hs[0, b] = hprev[b]; hs[t+1, b] = tanh(Wxh[:, x[t, b]] +
        Whh hs[t, b] + bh) for t < T (x: (T, B))."""
        h = cuda.shared.array(MAX_H, nb)
        b = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        for i in range(tid, H, nt):
            h[i] = hprev[b, i]
            hs[0, b, i] = hprev[b, i]
        cuda.syncthreads()
        for t in range(x.shape[0]):
            c = x[t, b]
            for i in range(tid, H, nt):
                a = Wxh[i, c] + bh[i]
                for j in range(H):
                    a += Whh[i, j] * h[j]
                hs[t + 1, b, i] = math.tanh(a)
            cuda.syncthreads()
            for i in range(tid, H, nt):  # every thread has read h: now replace it
                h[i] = hs[t + 1, b, i]
            cuda.syncthreads()

    @cuda.jit
    def output_layer(hs, Why, by, y, ps, step_losses):
        """Block (t, b): ps[t, b] = softmax(Why hs[t+1, b] + by); step_losses[t, b] = -log p."""
        stat = cuda.shared.array(2, float64)
        t, b = cuda.blockIdx.x, cuda.blockIdx.y
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        V, H = Why.shape
        for v in range(tid, V, nt):
            z = by[v]
            for j in range(H):
                z += Why[v, j] * hs[t + 1, b, j]
            ps[t, b, v] = z
        cuda.syncthreads()
        if tid == 0:
            m = ps[t, b, 0]
            for v in range(1, V):
                m = max(m, ps[t, b, v])
            stat[0] = m
        cuda.syncthreads()
        m = nb(stat[0])
        for v in range(tid, V, nt):
            ps[t, b, v] = math.exp(ps[t, b, v] - m)
        cuda.syncthreads()
        if tid == 0:
            total = nb(0)
            for v in range(V):
                total += ps[t, b, v]
            stat[1] = total
        cuda.syncthreads()
        inv = one / nb(stat[1])
        for v in range(tid, V, nt):
            ps[t, b, v] *= inv
        cuda.syncthreads()
        if tid == 0:
            step_losses[t, b] = -math.log(float64(ps[t, b, y[t, b]]))

    @cuda.jit
    def add_losses(step_losses, T, losses, n):
        """losses[n] = sum of step_losses[:T] (step by step, stream by stream; one thread)."""
        if cuda.threadIdx.x == 0 and cuda.blockIdx.x == 0:
            total = 0.0
            for t in range(T):
                for b in range(step_losses.shape[1]):
                    total += step_losses[t, b]
            losses[n] = total

    @cuda.jit
    def output_grad(ps, y, Why, dys, dhout):
        """Block (t, b): dys[t, b] = ps[t, b] - onehot(y[t, b]); dhout[t, b] = Why^T dys[t, b]."""
        t, b = cuda.blockIdx.x, cuda.blockIdx.y
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        V, H = Why.shape
        for v in range(tid, V, nt):
            dys[t, b, v] = ps[t, b, v] - (one if v == y[t, b] else nb(0))
        cuda.syncthreads()
        for i in range(tid, H, nt):
            acc = nb(0)
            for v in range(V):
                acc += Why[v, i] * dys[t, b, v]
            dhout[t, b, i] = acc

    @cuda.jit
    def recurrence_back(hs, dhout, Whh, draws):
        """Block b, reversed time loop: draws[t, b] = (1 - hs[t+1, b]^2) *
        (dhout[t, b] + Whh^T draws[t+1, b])."""
        d = cuda.shared.array(MAX_H, nb)
        dn = cuda.shared.array(MAX_H, nb)
        b = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        for i in range(tid, H, nt):
            dn[i] = 0
        cuda.syncthreads()
        for t in range(draws.shape[0] - 1, -1, -1):
            for i in range(tid, H, nt):
                r = tanh_backward(hs[t + 1, b, i], dhout[t, b, i] + dn[i], one)
                draws[t, b, i] = r
                d[i] = r
            cuda.syncthreads()
            for i in range(tid, H, nt):
                acc = nb(0)
                for j in range(H):
                    acc += Whh[j, i] * d[j]
                dn[i] = acc
            cuda.syncthreads()

    @cuda.jit(device=True)
    def sum_of_products(a, i, h, j, shift):
        """sum over steps t and streams b of a[t, b, i] h[t + shift, b, j]."""
        acc = nb(0)
        for t in range(a.shape[0]):
            for b in range(a.shape[1]):
                acc += a[t, b, i] * h[t + shift, b, j]
        return acc

    @cuda.jit(device=True)
    def sum_of(a, i):
        """sum over steps t and streams b of a[t, b, i]."""
        acc = nb(0)
        for t in range(a.shape[0]):
            for b in range(a.shape[1]):
                acc += a[t, b, i]
        return acc

    @cuda.jit
    def grad_hh(hs, draws, dWhh, dbh):
        """dWhh[i, j] = sum_{t,b} draws[t, b, i] hs[t, b, j]; dbh[i] = sum_{t,b} draws[t, b, i]."""
        i, j = cuda.grid(2)
        H = dWhh.shape[0]
        if i < H and j < H:
            dWhh[i, j] = sum_of_products(draws, i, hs, j, 0)
            if j == 0:
                dbh[i] = sum_of(draws, i)

    @cuda.jit
    def grad_hy(hs, dys, dWhy, dby):
        """dWhy[v, j] = sum_{t,b} dys[t, b, v] hs[t+1, b, j]; dby[v] = sum_{t,b} dys[t, b, v]."""
        v, j = cuda.grid(2)
        V, H = dWhy.shape
        if v < V and j < H:
            dWhy[v, j] = sum_of_products(dys, v, hs, j, 1)
            if j == 0:
                dby[v] = sum_of(dys, v)

    @cuda.jit
    def grad_xh(x, draws, dWxh):
        """dWxh[i, c] = sum of draws[t, b, i] over the (t, b) whose input is character c."""
        i, c = cuda.grid(2)
        H, V = dWxh.shape
        if i < H and c < V:
            acc = nb(0)
            for t in range(x.shape[0]):
                for b in range(x.shape[1]):
                    if x[t, b] == c:
                        acc += draws[t, b, i]
            dWxh[i, c] = acc

    @cuda.jit
    def clip_all(g):
        """g <- clip(g, -5, 5) over a flat buffer."""
        bound = nb(CLIP)
        for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            g[k] = clip(g[k], bound)

    @cuda.jit
    def optimize(w, g, s1, s2, kind, lr, step, clip_first):
        """Flat buffers: (clip;) one Adagrad, RMSprop or Adam update (kind: the scalar.py ids)."""
        lr_, bound = nb(lr), nb(CLIP)
        corrections = adam_corrections(lr, max(step, 1))  # used by Adam only
        step_size, root_correction = nb(corrections[0]), nb(corrections[1])
        for k in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
            gk = gradient(g, k, clip_first, bound)
            if kind == ADAGRAD:
                mk = adagrad_memory(s1[k], gk)
                s1[k] = mk
                w[k] = adagrad_weight(w[k], gk, mk, lr_, nb(ADAGRAD_EPS))
            elif kind == RMSPROP:
                mk = rmsprop_memory(s1[k], gk, nb(RMSPROP_DECAY), one)
                s1[k] = mk
                w[k] = rmsprop_weight(w[k], gk, mk, lr_, nb(RMSPROP_EPS))
            else:
                mk = adam_moment(s1[k], gk, nb(ADAM_BETA1), one)
                vk = adam_moment(s2[k], gk * gk, nb(ADAM_BETA2), one)
                s1[k] = mk
                s2[k] = vk
                w[k] = adam_weight(w[k], mk, vk, step_size, root_correction, nb(ADAM_EPS))

    @cuda.jit
    def zero(a):
        for k in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            a[k] = 0

    @cuda.jit
    def sample(h, seed_ix, uniforms, Wxh, Whh, Why, bh, by, temperature, greedy, ixes, p, cdf):
        """reference.sample in one block: ixes[n] for each uniform; h advanced in place."""
        hc = cuda.shared.array(MAX_H, nb)
        hn = cuda.shared.array(MAX_H, nb)
        cur = cuda.shared.array(1, int64)
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        V = Why.shape[0]
        tau = nb(temperature)
        for i in range(tid, H, nt):
            hc[i] = h[i]
        if tid == 0:
            cur[0] = seed_ix
        cuda.syncthreads()
        for n in range(uniforms.shape[0]):
            x = cur[0]
            for i in range(tid, H, nt):
                a = Wxh[i, x] + bh[i]
                for j in range(H):
                    a += Whh[i, j] * hc[j]
                hn[i] = math.tanh(a)
            cuda.syncthreads()
            for i in range(tid, H, nt):
                hc[i] = hn[i]
            cuda.syncthreads()
            for v in range(tid, V, nt):
                y = by[v]
                for j in range(H):
                    y += Why[v, j] * hc[j]
                p[v] = y
            cuda.syncthreads()
            if tid == 0:
                ix = 0
                if greedy:
                    for v in range(1, V):
                        if p[v] > p[ix]:
                            ix = v
                else:
                    if tau != one:
                        for v in range(V):
                            p[v] /= tau
                    m = p[0]
                    for v in range(1, V):
                        m = max(m, p[v])
                    s = nb(0)
                    for v in range(V):
                        p[v] = math.exp(p[v] - m)
                        s += p[v]
                    inv = one / s
                    c = 0.0
                    for v in range(V):
                        p[v] *= inv
                        c += p[v]
                        cdf[v] = c
                    threshold = uniforms[n] * cdf[V - 1]
                    ix = V - 1
                    for v in range(V):
                        if cdf[v] > threshold:
                            ix = v
                            break
                ixes[n] = ix
                cur[0] = ix
            cuda.syncthreads()
        for i in range(tid, H, nt):
            h[i] = hc[i]

    return dict(recurrence=recurrence, output_layer=output_layer, add_losses=add_losses,
                output_grad=output_grad, recurrence_back=recurrence_back, grad_hh=grad_hh,
                grad_hy=grad_hy, grad_xh=grad_xh, clip_all=clip_all, optimize=optimize, zero=zero,
                sample=sample)
