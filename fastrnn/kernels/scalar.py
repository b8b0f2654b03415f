"""Scalar formulas shared by the CPU and CUDA kernels, so the backends cannot drift apart.

``register_jitable`` functions compile into whichever target calls them (``@njit`` or
``@cuda.jit``) with the caller's options. Constants arrive already cast to the array dtype.
"""

import math

from numba.extending import register_jitable

from ..config import ADAM_BETA1, ADAM_BETA2
from .vmath import rsqrt


@register_jitable
def clip(g, bound):
    """min-char-rnn's ``np.clip(g, -5, 5)``, a NaN kept (comparisons with it are false). Not
    ``min(max(g, -bound), bound)``: on a GPU ``min`` and ``max`` lower to ``fmin`` and ``fmax``,
    which return the other operand for a NaN, and turned a diverging run's NaN gradient into
    -bound there (tests/test_cuda_compile.py checks the PTX)."""
    if g > bound:
        return bound
    if g < -bound:
        return -bound
    return g


@register_jitable
def gradient(g, i, clip_first, bound):
    """``g[i]``; first clipped to [-bound, bound] in place when ``clip_first`` (the CUDA
    kernels' fused clip + update; a NaN kept). Written without rebinding a local:
    numba-cuda 0.30.4's ``inline="always"`` of the earlier ``gi = clip(gi, bound)`` form
    returned the unclipped value on a GPU (seen on an H200; tests/test_cuda_compile.py checks
    the PTX)."""
    if clip_first:
        g[i] = clip(g[i], bound)
    return g[i]


@register_jitable
def tanh_backward(h, dh, one):
    """Gradient through ``h = tanh(a)``: ``(1 - h^2) * dh``."""
    return (one - h * h) * dh


@register_jitable
def sigmoid_backward(s, d, one):
    """Gradient through ``s = sigmoid(a)``: ``s (1 - s) * d``."""
    return s * (one - s) * d


# The gated cells' element-wise formulas (``cells/lstm.py``, ``cells/gru.py``), from the
# activated gates: each target computes sigmoid and tanh with its own exp/tanh, the rest is here.
# The CUDA kernels call lstm_backward and gru_backward per unit; the CPU kernels compute the same
# terms from the same primitives one loop per term (``batch._lstm_backward``), which LLVM
# vectorises where it did not vectorise one loop calling these.

@register_jitable
def lstm_cell(i, f, g, c_prev):
    """The LSTM's new cell state ``c = f c_prev + i g``."""
    return f * c_prev + i * g


@register_jitable
def lstm_backward(i, f, g, o, c_prev, tc, dh, dc, one):
    """Backward through one LSTM unit: ``dh``, ``dc`` at its outputs h = o tanh(c), c (tc =
    tanh(c)); returns (d a_i, d a_f, d a_g, d a_o, dc_prev), the pre-activations' gradients."""
    dc = dc + tanh_backward(tc, dh * o, one)
    return (sigmoid_backward(i, dc * g, one), sigmoid_backward(f, dc * c_prev, one),
            tanh_backward(g, dc * i, one), sigmoid_backward(o, dh * tc, one), dc * f)


@register_jitable
def gru_state(z, n, h_prev, one):
    """The GRU's new state ``h = (1 - z) n + z h_prev``."""
    return (one - z) * n + z * h_prev


@register_jitable
def gru_backward(r, z, n, hn, h_prev, dh, one):
    """Backward through one GRU unit (hn = Whh_n h_prev + bhn): returns (d ax_r, d ax_z,
    d ax_n, d hn, dh_prev's direct part dh z); d ah_r = d ax_r and d ah_z = d ax_z."""
    dan = tanh_backward(n, dh * (one - z), one)
    return (sigmoid_backward(r, dan * hn, one), sigmoid_backward(z, dh * (h_prev - n), one),
            dan, dan * r, dh * z)


@register_jitable
def adagrad_memory(m, g):
    """``m += g * g``."""
    return m + g * g


@register_jitable
def adagrad_weight(w, g, m, lr, eps):
    """``w += -lr * g / sqrt(m + eps)`` with the already-updated memory m."""
    return w + (-lr * g) * rsqrt(m + eps)


@register_jitable
def rmsprop_memory(m, g, decay, rest):
    """``m = decay m + (1 - decay) g*g``; ``rest``: 1 - decay computed in float64 and rounded
    to the dtype once, as the oracle and PyTorch have it (1 - decay in float32 is off by
    2.4e-7 of it for 0.95, 1.3e-5 for Adam's 0.999: a bias, small and systematic, in every
    update)."""
    return decay * m + rest * g * g


@register_jitable
def rmsprop_weight(w, g, m, lr, eps):
    """``w += -lr g / (sqrt(m) + eps)``."""
    return w + (-lr * g) / (math.sqrt(m) + eps)


@register_jitable
def adam_moment(m, g, beta, rest):
    """``m = beta m + (1 - beta) g`` (for v, pass g*g); ``rest``: 1 - beta as
    ``rmsprop_memory``'s."""
    return beta * m + rest * g


@register_jitable
def adam_corrections(lr, step):
    """Adam's bias corrections for update number ``step``, in float64:
    (step_size = lr / (1 - b1**step), root_correction = sqrt(1 - b2**step))."""
    return lr / (1.0 - ADAM_BETA1 ** step), math.sqrt(1.0 - ADAM_BETA2 ** step)


@register_jitable
def adam_weight(w, m, v, step_size, root_correction, eps):
    """``w += -step_size m / (sqrt(v) / root_correction + eps)``."""
    return w + (-step_size * m) / (math.sqrt(v) / root_correction + eps)


@register_jitable
def _before(p, a, b):
    """Whether character a ranks before b: more probable, or as probable and a lower index."""
    return p[a] > p[b] or (p[a] == p[b] and a < b)


@register_jitable
def _sift_down(p, heap, i, n):
    """Restore the heap order below position i of ``heap[:n]`` (character ids held as
    float64): every parent ranks before its children."""
    while True:
        first, left = i, 2 * i + 1
        if left < n and _before(p, int(heap[left]), int(heap[first])):
            first = left
        if left + 1 < n and _before(p, int(heap[left + 1]), int(heap[first])):
            first = left + 1
        if first == i:
            return
        heap[i], heap[first] = heap[first], heap[i]
        i = first


@register_jitable
def truncate(p, top_k, top_p, marks):
    """reference.truncate in place: top-k / top-p sampling's kept characters; the others' p set
    to 0. The characters are taken in rank order from a heap (``marks``: float64 scratch of
    V, the heap of character ids), so a draw costs O(V + kept log V), not the V x kept of
    repeated argmax scans (8.5 against 0.54 ms a character at V = 3,004 and top-p 0.9:
    ``benchmarks/sample_options.py``). One body for the CPU and CUDA kernels, so that both
    draw the same text as the oracle."""
    V = p.shape[0]
    if not ((top_k > 0 and top_k < V) or top_p < 1):  # reference.truncates
        return
    for v in range(V):
        marks[v] = v
    for i in range(V // 2 - 1, -1, -1):
        _sift_down(p, marks, i, V)
    n = V  # marks[:n] is the heap of the characters not yet ranked
    count = 0
    mass = 0.0
    while n > 0 and not (top_k > 0 and count >= top_k) and mass < top_p:
        best = int(marks[0])  # the next in rank order: kept
        mass += p[best]
        count += 1
        n -= 1
        marks[0], marks[n] = marks[n], marks[0]  # (kept ids collect at the end)
        _sift_down(p, marks, 0, n)
    for i in range(n):
        p[int(marks[i])] = 0


@register_jitable
def draw(p, tau, greedy, top_k, top_p, u, cdf, one):
    """The CUDA sampling kernels' character (one thread draws), from the logits ``p`` (V,),
    which it overwrites: their argmax if ``greedy``, else softmax(p / tau) cut by top-k /
    top-p (``truncate``, ``cdf`` as its marks) and drawn by the uniform ``u`` as
    reference.choose draws (the first index whose float64 cumulative sum exceeds u times the
    total). ``one``: 1 in p's dtype. The CPU samplers' is ``cpu.draw``: the same steps, with
    the vectorised softmax of the CPU kernels (``vmath``), which a GPU does not have."""
    V = p.shape[0]
    ix = 0
    if greedy:
        for v in range(1, V):
            if p[v] > p[ix]:
                ix = v
        return ix
    if tau != one:
        for v in range(V):
            p[v] /= tau
    m = p[0]
    for v in range(1, V):
        m = max(m, p[v])
    s = one - one
    for v in range(V):
        p[v] = math.exp(p[v] - m)
        s += p[v]
    inv = one / s
    for v in range(V):
        p[v] *= inv
    truncate(p, top_k, top_p, cdf)
    c = 0.0
    for v in range(V):
        c += p[v]
        cdf[v] = c
    threshold = u * cdf[V - 1]
    for v in range(V):
        if cdf[v] > threshold:
            return v
    return V - 1
