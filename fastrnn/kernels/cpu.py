"""Numba CPU kernels; each mirrors the function of the same name in ``fastrnn.reference``.

Layout: rows are time steps, so every per-step vector is a contiguous row. Biases and the
hidden state are 1-D here (``bh (H,)``, ``by (V,)``, ``h (H,)``). Parameters and gradients are
``spec.Weights``, read by name (``w.layers[0].Whh``, ``w.Why``; ``w.flat`` holds them all, for
the optimizer's single pass); the optimizer's state is its ``optim`` state tuple, whose type
selects the update loop at compile time. These kernels run one stream of a one-layer tanh
model (``backends/numba.py`` routes every other case). Outputs and workspaces are allocated by
the caller; nothing is allocated inside a time loop.

Only the recurrence itself (``Whh h`` forward, ``Whh^T draw`` backward) runs step by step; the
output layer, its gradient and the weight gradients are products over the whole chunk, done
after (or before) the time loop where the weights are read once per block of steps.
"""

import math

import numpy as np
from numba import njit
from numba.extending import overload

from .. import optim
from ..config import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, CLIP, INLINE, NJIT,
                      RMSPROP_DECAY, RMSPROP_EPS)
from . import vmath
from .scalar import (adagrad_memory, adagrad_weight, adam_corrections, adam_moment, adam_weight,
                     clip, rmsprop_memory, rmsprop_weight, tanh_backward, truncate)


# --------------------------------------------------------------------------------------------
# Dense building blocks (hand-written: fixed small sizes, no BLAS dependency)

@njit(**INLINE)
def matvec(W, x, out):
    """out[i] = sum_j W[i, j] x[j]  (W: (n, k), x: (k,), out: (n,)), four rows per pass."""
    n, k = W.shape
    zero = out.dtype.type(0)
    i = 0
    while i + 4 <= n:
        s0 = s1 = s2 = s3 = zero
        for j in range(k):
            xj = x[j]
            s0 += W[i, j] * xj
            s1 += W[i + 1, j] * xj
            s2 += W[i + 2, j] * xj
            s3 += W[i + 3, j] * xj
        out[i], out[i + 1], out[i + 2], out[i + 3] = s0, s1, s2, s3
        i += 4
    while i < n:
        s = zero
        for j in range(k):
            s += W[i, j] * x[j]
        out[i] = s
        i += 1


@njit(**INLINE)
def vecmat(x, W, out):
    """out[j] = sum_i x[i] W[i, j]  (x: (n,), W: (n, k), out: (k,)), four rows per pass."""
    n, k = W.shape
    out[:] = 0
    i = 0
    while i + 4 <= n:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        for j in range(k):
            out[j] += x0 * W[i, j] + x1 * W[i + 1, j] + x2 * W[i + 2, j] + x3 * W[i + 3, j]
        i += 4
    while i < n:
        xi = x[i]
        for j in range(k):
            out[j] += xi * W[i, j]
        i += 1


@njit(**INLINE)
def matmul_nt(A, B, C):
    """C = A B^T  (A: (m, k), B: (n, k), C: (m, n)): four rows of A share each pass over B."""
    m, k = A.shape
    n = B.shape[0]
    zero = C.dtype.type(0)
    t = 0
    while t + 4 <= m:
        for v in range(n):
            s0 = s1 = s2 = s3 = zero
            for j in range(k):
                b = B[v, j]
                s0 += A[t, j] * b
                s1 += A[t + 1, j] * b
                s2 += A[t + 2, j] * b
                s3 += A[t + 3, j] * b
            C[t, v], C[t + 1, v], C[t + 2, v], C[t + 3, v] = s0, s1, s2, s3
        t += 4
    while t < m:
        matvec(B, A[t], C[t])
        t += 1


@njit(**INLINE)
def _op(A, i, v, transposed):
    return A[v, i] if transposed else A[i, v]


@njit(**INLINE)
def matmul_acc(A, B, C, a_transposed):
    """C += op(A) B with op(A) = A^T if a_transposed else A  (B: (n, k), C: (m, k)).

    Register tile: two rows of C take eight rows of B per pass, so each vector of B loaded
    feeds two multiply-adds and each row of C is read and written once per eight rows of B.
    """
    m, k = C.shape
    n = B.shape[0]
    tr = a_transposed
    i = 0
    while i < m:
        single = i + 1 == m  # odd m: the last row goes alone
        i1 = i if single else i + 1
        v = 0
        while v + 8 <= n:
            a0 = _op(A, i, v, tr), _op(A, i, v + 1, tr), _op(A, i, v + 2, tr), _op(A, i, v + 3, tr), \
                _op(A, i, v + 4, tr), _op(A, i, v + 5, tr), _op(A, i, v + 6, tr), _op(A, i, v + 7, tr)
            a1 = _op(A, i1, v, tr), _op(A, i1, v + 1, tr), _op(A, i1, v + 2, tr), _op(A, i1, v + 3, tr), \
                _op(A, i1, v + 4, tr), _op(A, i1, v + 5, tr), _op(A, i1, v + 6, tr), _op(A, i1, v + 7, tr)
            if single:
                _tile_1x8(C, i, B, v, a0)
            else:
                _tile_2x8(C, i, i1, B, v, a0, a1)
            v += 8
        while v < n:
            a0 = _op(A, i, v, tr)
            for j in range(k):
                C[i, j] += a0 * B[v, j]
            if not single:
                a1 = _op(A, i1, v, tr)
                for j in range(k):
                    C[i1, j] += a1 * B[v, j]
            v += 1
        i += 2


@njit(**INLINE)
def _tile_2x8(C, i0, i1, B, v, a0, a1):
    for j in range(C.shape[1]):
        b0, b1, b2, b3 = B[v, j], B[v + 1, j], B[v + 2, j], B[v + 3, j]
        b4, b5, b6, b7 = B[v + 4, j], B[v + 5, j], B[v + 6, j], B[v + 7, j]
        C[i0, j] += (a0[0] * b0 + a0[1] * b1 + a0[2] * b2 + a0[3] * b3
                     + a0[4] * b4 + a0[5] * b5 + a0[6] * b6 + a0[7] * b7)
        C[i1, j] += (a1[0] * b0 + a1[1] * b1 + a1[2] * b2 + a1[3] * b3
                     + a1[4] * b4 + a1[5] * b5 + a1[6] * b6 + a1[7] * b7)


@njit(**INLINE)
def _tile_1x8(C, i0, B, v, a0):
    for j in range(C.shape[1]):
        C[i0, j] += (a0[0] * B[v, j] + a0[1] * B[v + 1, j] + a0[2] * B[v + 2, j] + a0[3] * B[v + 3, j]
                     + a0[4] * B[v + 4, j] + a0[5] * B[v + 5, j] + a0[6] * B[v + 6, j]
                     + a0[7] * B[v + 7, j])


@njit(**INLINE)
def tanh_inplace(a):
    for i in range(a.shape[0]):
        a[i] = vmath.tanh(a[i])


@njit(**INLINE)
def softmax_inplace(y):
    """y <- softmax(y), max subtracted first; returns log(sum(exp(y))), the log-normaliser.

    Probabilities below the smallest normal number are set to 0: as subnormals they would make
    every later operation on them (dy = p - onehot, its products) many times slower. Losses
    come from the log-normaliser, so they stay exact and finite all the same.
    """
    ymax = y[0]
    for v in range(1, y.shape[0]):
        ymax = max(ymax, y[v])
    s = 0.0
    for v in range(y.shape[0]):
        e = vmath.exp(y[v] - ymax)
        y[v] = e
        s += e
    inv = 1.0 / s
    flush = vmath.tiny(y[0])
    for v in range(y.shape[0]):
        p = y[v] * inv
        y[v] = y.dtype.type(0) if p < flush else p  # (NaN kept)
    return ymax + math.log(s)


@njit(**INLINE)
def clip_inplace(a, bound):
    flat = a.reshape(a.size)
    for i in range(flat.shape[0]):
        flat[i] = clip(flat[i], bound)


# --------------------------------------------------------------------------------------------
# The model

@njit(**INLINE)
def step(ix, h_prev, layer, h_out):
    """One recurrence step (cells/rnn.py:step): h_out = tanh(Wxh[:, ix] + Whh h_prev + bh)."""
    Wxh, bh = layer.Wxh, layer.bh
    matvec(layer.Whh, h_prev, h_out)
    for i in range(h_out.shape[0]):
        h_out[i] += Wxh[i, ix] + bh[i]
    tanh_inplace(h_out)


@njit(**INLINE)
def forward(inputs, targets, hprev, w, hs, ps):
    """reference.forward for one stream: fills hs (T+1, H) and ps (T, V); returns the loss."""
    Why, by = w.Why, w.by
    T = inputs.shape[0]
    hs[0] = hprev
    for t in range(T):
        step(inputs[t], hs[t], w.layers[0], hs[t + 1])
    matmul_nt(hs[1:T + 1], Why, ps[:T])
    loss = 0.0
    for t in range(T):
        for v in range(ps.shape[1]):
            ps[t, v] += by[v]
        target_logit = ps[t, targets[t]]
        loss += softmax_inplace(ps[t]) - target_logit  # -log p[target], from the logits
    return loss


@njit(**INLINE)
def evaluate(data, h, w, work, loss=0.0):
    """reference.evaluate: ``loss`` plus the summed loss of predicting data[1:]; h (H,) is
    carried in place (a text read in several calls, each from where the last ended, gives the
    same sum as one call when each call's steps are a multiple of L).

    work = (hs (L+1, H), ps (L, V)): the sequence is read L steps at a time.
    """
    hs, ps = work
    L = ps.shape[0]
    n = data.shape[0] - 1
    for start in range(0, n, L):
        m = min(L, n - start)
        loss += forward(data[start:start + m], data[start + 1:start + m + 1], h, w, hs, ps)
        h[:] = hs[m]
    return loss


@njit(**INLINE)
def backward(inputs, targets, hs, ps, w, g, work):
    """reference.backward (clipped): overwrites g from the activations of ``forward``.

    work = (dys (T, V), dhs (T, H), dh_next (H,)).
    """
    gradients(inputs, targets, hs, ps, w, g, work)
    clip_inplace(g.flat, hs.dtype.type(CLIP))


@njit(**INLINE)
def gradients(inputs, targets, hs, ps, w, g, work):
    """``backward`` before clipping."""
    Whh, Why = w.layers[0].Whh, w.Why
    dWxh, dWhh, dbh = g.layers[0].Wxh, g.layers[0].Whh, g.layers[0].bh
    dWhy, dby = g.Why, g.by
    dys, dhs, dh_next = work
    T, H = inputs.shape[0], Whh.shape[0]
    one = hs.dtype.type(1)

    # Output layer, all steps at once: dy = p - onehot(target); dWhy = dy^T h; dby = sum dy.
    dys[:T] = ps[:T]
    for t in range(T):
        dys[t, targets[t]] -= one
    dby[:] = 0
    for t in range(T):
        for v in range(dby.shape[0]):
            dby[v] += dys[t, v]
    dWhy[:] = 0
    dhs[:T] = 0
    dWhh[:] = 0
    # Three products, in one loop so that matmul_acc is compiled once, not three times (Numba
    # inlines a copy at each call site: the two copies less took the kernel's compile from
    # 21 s to 13 s, benchmarks/RESULTS.md):
    #   0: dWhy = dy^T h;  1: dh from the output of every step, dhs[t] = Why^T dy[t];
    #   2: after the recurrence, dWhh = draw^T h_prev.
    for product in range(3):
        if product == 2:
            # The recurrence, backwards: dhs[t] becomes draw[t].
            dh_next[:] = 0
            for t in range(T - 1, -1, -1):
                for i in range(H):
                    dhs[t, i] = tanh_backward(hs[t + 1, i], dhs[t, i] + dh_next[i], one)
                if t > 0:
                    vecmat(dhs[t], Whh, dh_next)
        A = dys[:T] if product < 2 else dhs[:T]
        B = hs[1:T + 1] if product == 0 else Why if product == 1 else hs[:T]
        C = dWhy if product == 0 else dhs[:T] if product == 1 else dWhh
        matmul_acc(A, B, C, product != 1)

    # Input-side gradients, all steps at once.
    dbh[:] = 0
    dWxh[:] = 0
    for t in range(T):
        ix = inputs[t]
        for i in range(H):
            dbh[i] += dhs[t, i]
            dWxh[i, ix] += dhs[t, i]


# The optimizers: one loop each, written out, selected by the type of the state tuple when the
# calling kernel is compiled (so a run compiles only its own). With ``clip_first`` the
# gradients are clipped to [-limit, limit] first, in place. The training kernels pass a literal
# True, which LLVM folds away, and ``clip_limit``'s limit: with the test made at run time
# (``limit > 0``), Adam's loop compiled otherwise and its updates differed in the last bits.
# The clip stays inline in each loop: through a helper (as the CUDA kernel's scalar.gradient)
# the fused training step measured 1.5x slower.

def _adagrad(state, w, g, lr, step, clip_first, limit):
    """reference.adagrad over flat arrays."""
    m = state.m
    dt = w.dtype.type
    lr_, bound, eps = dt(lr), dt(limit), dt(ADAGRAD_EPS)
    for i in range(w.shape[0]):
        gi = g[i]
        if clip_first:
            gi = clip(gi, bound)
            g[i] = gi
        mi = adagrad_memory(m[i], gi)
        m[i] = mi
        w[i] = adagrad_weight(w[i], gi, mi, lr_, eps)


def _rmsprop(state, w, g, lr, step, clip_first, limit):
    """reference.rmsprop over flat arrays."""
    m = state.m
    dt = w.dtype.type
    lr_, bound = dt(lr), dt(limit)
    decay, rest, eps = dt(RMSPROP_DECAY), dt(1.0 - RMSPROP_DECAY), dt(RMSPROP_EPS)
    for i in range(w.shape[0]):
        gi = g[i]
        if clip_first:
            gi = clip(gi, bound)
            g[i] = gi
        mi = rmsprop_memory(m[i], gi, decay, rest)
        m[i] = mi
        w[i] = rmsprop_weight(w[i], gi, mi, lr_, eps)


def _adam(state, w, g, lr, step, clip_first, limit):
    """reference.adam over flat arrays; ``step`` counts updates, this one included."""
    m, v = state.m, state.v
    dt = w.dtype.type
    bound = dt(limit)
    b1, b2, eps = dt(ADAM_BETA1), dt(ADAM_BETA2), dt(ADAM_EPS)
    rest1, rest2 = dt(1.0 - ADAM_BETA1), dt(1.0 - ADAM_BETA2)
    corrections = adam_corrections(lr, step)
    step_size, root_correction = dt(corrections[0]), dt(corrections[1])
    for i in range(w.shape[0]):
        gi = g[i]
        if clip_first:
            gi = clip(gi, bound)
            g[i] = gi
        mi = adam_moment(m[i], gi, b1, rest1)
        vi = adam_moment(v[i], gi * gi, b2, rest2)
        m[i] = mi
        v[i] = vi
        w[i] = adam_weight(w[i], mi, vi, step_size, root_correction, eps)


def clip_limit(clip):
    """The limit the training kernels clip to for a model's clip: the clip, or for 0 (no
    clipping) infinity (clipped to it, no finite number changes: one loop serves both)."""
    return float(clip) if clip > 0 else math.inf


_LOOPS = {optim.AdagradState: _adagrad, optim.RMSpropState: _rmsprop, optim.AdamState: _adam}


def optimizer_update(state, w, g, lr, step, clip_first, limit):
    """One update of the flat weights w by gradients g, in place (clipped first to
    [-limit, limit] in place if ``clip_first``), with the optimizer whose
    state tuple ``state`` is (``optim.Optimizer.state``)."""
    raise NotImplementedError("compiled by Numba only (see the overload below)")


@overload(optimizer_update, jit_options=NJIT, inline="always")
def _optimizer_update(state, w, g, lr, step, clip_first, limit):
    return _LOOPS[state.instance_class]


@njit(**NJIT)
def update(state, w, g, lr, step, clip_first, limit):
    """``optimizer_update`` as a kernel of its own (the drop-in ``adagrad``, tests)."""
    optimizer_update(state, w, g, lr, step, clip_first, limit)


@njit(**NJIT)
def values_fit(w, other, squares):
    """``reference.values_fit`` for the weights w and an optimizer's states ``other`` and
    ``squares`` (the sums of squares; ``other`` is ``squares`` again for an optimizer of one
    state), in one pass that reads the three side by side, before every training call. A value
    that is NaN or infinite makes its term NaN, a negative one in ``squares`` its term 1;
    otherwise every term is 0 (fast math keeps NaN and infinities: ``config.NJIT``; and a
    term is never a difference, which its reassociation could split into two sums that
    round a subnormal away). True: every value fits. False: one may not (finite values whose
    sum overflows say so too): the caller looks for it exactly."""
    zero, one = w.dtype.type(0), w.dtype.type(1)
    bad = zero
    for e in range(w.shape[0]):
        s = squares[e]
        bad += (w[e] + other[e] + s) * zero + (one if s < zero else zero)
    return bad == zero


@njit(**INLINE)
def choose(p, u, cdf):
    """reference.choose: first index whose float64 cumulative probability exceeds u * total."""
    c = 0.0
    for v in range(p.shape[0]):
        c += p[v]
        cdf[v] = c
    threshold = u * cdf[p.shape[0] - 1]
    for v in range(p.shape[0]):
        if cdf[v] > threshold:
            return v
    return p.shape[0] - 1


@njit(**INLINE)
def draw(p, tau, greedy, top_k, top_p, u, cdf):
    """The CPU samplers' character from the logits ``p`` (V,), which it overwrites: their
    argmax if ``greedy``, else softmax(p / tau) (``softmax_inplace``, vectorised) cut by
    top-k / top-p (``scalar.truncate``) and drawn by the uniform ``u`` (``choose``). The
    CUDA kernels' is ``scalar.draw``: the same steps, with the GPU's exp."""
    if greedy:
        return np.argmax(p)
    if tau != 1:
        for v in range(p.shape[0]):
            p[v] /= tau
    softmax_inplace(p)
    truncate(p, top_k, top_p, cdf)
    return choose(p, u, cdf)


@njit(**INLINE)
def sample(h, seed_ix, uniforms, w, temperature, greedy, top_k, top_p, ixes, work):
    """reference.sample: writes len(uniforms) indices to ixes; h (H,) is advanced in place.

    work = (h_next (H,), p (V,), cdf (V,) float64).
    """
    Why, by = w.Why, w.by
    h_next, p, cdf = work
    tau = p.dtype.type(temperature)
    ix = seed_ix
    for n in range(uniforms.shape[0]):
        step(ix, h, w.layers[0], h_next)
        h[:] = h_next
        matvec(Why, h, p)
        for v in range(p.shape[0]):
            p[v] += by[v]
        ix = draw(p, tau, greedy, top_k, top_p, uniforms[n], cdf)
        ixes[n] = ix


@njit(**INLINE)
def train(data, position, h, w, g, state, lr, seq_length, step, losses, work, limit):
    """reference.train for one stream and len(losses) chunks of ``data``; h (H,) is carried in
    place; ``step`` counts the updates made before; ``limit``: the clip's (``clip_limit``).
    Returns the position after the last chunk.

    work = (hs (T+1, H), ps (T, V), dys (T, V), dhs (T, H), dh_next (H,)).
    """
    hs, ps, dys, dhs, dh_next = work
    T = seq_length
    for n in range(losses.shape[0]):
        if position + T + 1 >= data.shape[0]:  # reference.wraps
            position = 0
            h[:] = 0
        inputs = data[position:position + T]
        targets = data[position + 1:position + T + 1]
        losses[n] = forward(inputs, targets, h, w, hs, ps)
        gradients(inputs, targets, hs, ps, w, g, (dys, dhs, dh_next))
        optimizer_update(state, w.flat, g.flat, lr, step + n + 1, True, limit)  # clip fused
        h[:] = hs[T]
        position += T
    return position
