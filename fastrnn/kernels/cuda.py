"""numba-cuda kernels; each mirrors the function of the same name in ``fastrnn.reference``.

Imported only when ``backend="cuda"`` is asked for. Layout as in ``cpu.py``: rows are time
steps; biases and the hidden state are 1-D. One chunk of T steps is:

    recurrence        1 block, the time loop inside the kernel: hs[t+1] = tanh(Wxh[:, x_t] +
                      Whh hs[t] + bh); the one-hot input is a column gather; h lives in shared
                      memory across all steps
    output_layer      T blocks, one per step: softmax(Why h + by), the step's loss
    output_grad       T blocks: dy = p - onehot(target) and Why^T dy for every step, before the
                      backward loop
    recurrence_back   1 block, reversed time loop: draw[t] = (1 - h^2)(Why^T dy[t] + Whh^T draw[t+1])
    grad_hh/_hy/_xh   one thread per gradient element, a sum over all steps: dWhh, dbh, dWhy,
                      dby, and dWxh gathered by character (no atomics, so results are exact
                      and reproducible)
    optimize          one grid-stride kernel over all five parameters at once (they live in one
                      flat buffer): clip fused with an Adagrad, RMSprop or Adam update

The single-block recurrence strides its threads over the H rows, so any H up to ``MAX_H``
works; a multi-block recurrence with a grid-wide barrier (for large H on a real GPU) is not
written yet. Formulas shared with the CPU kernels come from ``scalar.py``.
"""

import functools
import math

import numpy as np
from numba import cuda, float32, float64, int64

from ..reference import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, CLIP, RMSPROP_DECAY,
                         RMSPROP_EPS)
from .scalar import (adagrad_memory, adagrad_weight, adam_moment, adam_weight, clip,
                     rmsprop_memory, rmsprop_weight, tanh_backward)

MAX_H = 2048            # hidden units held in shared memory by the single-block kernels
BLOCK = 128             # threads per block; tests shrink it so that striding paths run


@functools.cache
def kernels(dtype):
    """The kernels compiled for float32 or float64 arrays (numba-cuda needs the shared-memory
    element type at compile time)."""
    nb = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(dtype)]
    one = nb(1)

    @cuda.jit
    def recurrence(inputs, hprev, Wxh, Whh, bh, hs):
        """hs[0] = hprev; hs[t+1] = tanh(Wxh[:, inputs[t]] + Whh hs[t] + bh) for t < T."""
        h = cuda.shared.array(MAX_H, nb)
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        for i in range(tid, H, nt):
            h[i] = hprev[i]
            hs[0, i] = hprev[i]
        cuda.syncthreads()
        for t in range(inputs.shape[0]):
            x = inputs[t]
            for i in range(tid, H, nt):
                a = Wxh[i, x] + bh[i]
                for j in range(H):
                    a += Whh[i, j] * h[j]
                hs[t + 1, i] = math.tanh(a)
            cuda.syncthreads()
            for i in range(tid, H, nt):  # every thread has read h: now replace it
                h[i] = hs[t + 1, i]
            cuda.syncthreads()

    @cuda.jit
    def output_layer(hs, Why, by, targets, ps, step_losses):
        """Block t: ps[t] = softmax(Why hs[t+1] + by); step_losses[t] = -log ps[t, targets[t]]."""
        stat = cuda.shared.array(2, float64)
        t = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        V, H = Why.shape
        for v in range(tid, V, nt):
            y = by[v]
            for j in range(H):
                y += Why[v, j] * hs[t + 1, j]
            ps[t, v] = y
        cuda.syncthreads()
        if tid == 0:
            m = ps[t, 0]
            for v in range(1, V):
                m = max(m, ps[t, v])
            stat[0] = m
        cuda.syncthreads()
        m = nb(stat[0])
        for v in range(tid, V, nt):
            ps[t, v] = math.exp(ps[t, v] - m)
        cuda.syncthreads()
        if tid == 0:
            s = nb(0)
            for v in range(V):
                s += ps[t, v]
            stat[1] = s
        cuda.syncthreads()
        inv = one / nb(stat[1])
        for v in range(tid, V, nt):
            ps[t, v] *= inv
        cuda.syncthreads()
        if tid == 0:
            step_losses[t] = -math.log(float64(ps[t, targets[t]]))

    @cuda.jit
    def add_losses(step_losses, T, losses, n):
        """losses[n] = sum(step_losses[:T]) in step order (one thread: deterministic)."""
        if cuda.threadIdx.x == 0 and cuda.blockIdx.x == 0:
            s = 0.0
            for t in range(T):
                s += step_losses[t]
            losses[n] = s

    @cuda.jit
    def output_grad(ps, targets, Why, dys, dhout):
        """Block t: dys[t] = ps[t] - onehot(targets[t]); dhout[t] = Why^T dys[t]."""
        t = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        V, H = Why.shape
        for v in range(tid, V, nt):
            dys[t, v] = ps[t, v] - (one if v == targets[t] else nb(0))
        cuda.syncthreads()
        for i in range(tid, H, nt):
            s = nb(0)
            for v in range(V):
                s += Why[v, i] * dys[t, v]
            dhout[t, i] = s

    @cuda.jit
    def recurrence_back(hs, dhout, Whh, draws):
        """Reversed time loop: draws[t] = (1 - hs[t+1]^2) * (dhout[t] + Whh^T draws[t+1])."""
        d = cuda.shared.array(MAX_H, nb)
        dn = cuda.shared.array(MAX_H, nb)
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        for i in range(tid, H, nt):
            dn[i] = 0
        cuda.syncthreads()
        for t in range(draws.shape[0] - 1, -1, -1):
            for i in range(tid, H, nt):
                r = tanh_backward(hs[t + 1, i], dhout[t, i] + dn[i], one)
                draws[t, i] = r
                d[i] = r
            cuda.syncthreads()
            for i in range(tid, H, nt):
                s = nb(0)
                for j in range(H):
                    s += Whh[j, i] * d[j]
                dn[i] = s
            cuda.syncthreads()

    @cuda.jit
    def grad_hh(hs, draws, dWhh, dbh):
        """dWhh[i, j] = sum_t draws[t, i] hs[t, j]; dbh[i] = sum_t draws[t, i]."""
        i, j = cuda.grid(2)
        H = dWhh.shape[0]
        if i < H and j < H:
            s = nb(0)
            for t in range(draws.shape[0]):
                s += draws[t, i] * hs[t, j]
            dWhh[i, j] = s
            if j == 0:
                b = nb(0)
                for t in range(draws.shape[0]):
                    b += draws[t, i]
                dbh[i] = b

    @cuda.jit
    def grad_hy(hs, dys, dWhy, dby):
        """dWhy[v, j] = sum_t dys[t, v] hs[t+1, j]; dby[v] = sum_t dys[t, v]."""
        v, j = cuda.grid(2)
        V, H = dWhy.shape
        if v < V and j < H:
            s = nb(0)
            for t in range(dys.shape[0]):
                s += dys[t, v] * hs[t + 1, j]
            dWhy[v, j] = s
            if j == 0:
                b = nb(0)
                for t in range(dys.shape[0]):
                    b += dys[t, v]
                dby[v] = b

    @cuda.jit
    def grad_xh(inputs, draws, dWxh):
        """dWxh[i, c] = sum of draws[t, i] over the steps whose input is character c."""
        i, c = cuda.grid(2)
        H, V = dWxh.shape
        if i < H and c < V:
            s = nb(0)
            for t in range(inputs.shape[0]):
                if inputs[t] == c:
                    s += draws[t, i]
            dWxh[i, c] = s

    @cuda.jit
    def clip_all(g):
        """g <- clip(g, -5, 5) over a flat buffer."""
        bound = nb(CLIP)
        for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            g[k] = clip(g[k], bound)

    @cuda.jit
    def optimize(w, g, s1, s2, kind, lr, step, clip_first):
        """Flat buffers: (clip;) one Adagrad (kind 0), RMSprop (1) or Adam (2) update."""
        lr_, bound = nb(lr), nb(CLIP)
        if kind == 2:
            step_size = nb(lr / (1.0 - ADAM_BETA1 ** step))
            root_correction = nb(math.sqrt(1.0 - ADAM_BETA2 ** step))
        else:
            step_size = nb(0)
            root_correction = one
        for k in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
            gk = g[k]
            if clip_first:
                gk = clip(gk, bound)
                g[k] = gk
            if kind == 0:
                mk = adagrad_memory(s1[k], gk)
                s1[k] = mk
                w[k] = adagrad_weight(w[k], gk, mk, lr_, nb(ADAGRAD_EPS))
            elif kind == 1:
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
