"""``backend="cuda"``: the kernel signature of ``backends.py`` on an NVIDIA GPU (numba-cuda).

Host arrays in, host arrays out, like every backend. Within one call everything stays on the
device: ``train`` copies the parameters, optimizer state and hidden states over once, runs all
its chunks there (one fused clip + optimizer launch per chunk over a single flat buffer holding
all five parameters) and copies them back once. The model and the command line call ``train``
with many chunks at a time, so the copies are amortised; the drop-in ``lossFun``/``adagrad``
pay them on every call.

Runs in Numba's CUDA simulator when ``NUMBA_ENABLE_CUDASIM=1`` is set before numba is imported
(correct but very slow: for tests with tiny sizes).
"""

import numpy as np
from numba import cuda

from .kernels import cuda as ck
from .kernels.scalar import ADAGRAD, ADAM


def available():
    """(True, "") if a GPU (or the simulator) can run the kernels, else (False, why)."""
    try:
        if cuda.is_available():
            return True, ""
        return False, "numba-cuda found no usable NVIDIA GPU and driver"
    except Exception as e:  # a broken driver installation
        return False, f"numba-cuda cannot use the GPU ({e})"


def _check_size(H):
    if H > ck.MAX_H:
        raise ValueError(f"backend 'cuda' supports hidden_size <= {ck.MAX_H}, got {H}")


def _grid1(n):
    return max(1, min((n + ck.BLOCK - 1) // ck.BLOCK, 4096)), ck.BLOCK


def _grid2(n0, n1):
    side = max(1, int(ck.BLOCK ** 0.5))
    return ((n0 + side - 1) // side, (n1 + side - 1) // side), (side, side)


def _to_device(arrays):
    """One flat device buffer holding ``arrays`` and device views of it in their shapes."""
    flat = cuda.to_device(np.concatenate([a.reshape(-1) for a in arrays]))
    views, offset = [], 0
    for a in arrays:
        views.append(flat[offset:offset + a.size].reshape(a.shape))
        offset += a.size
    return flat, tuple(views)


def _to_host(flat, arrays):
    host, offset = flat.copy_to_host(), 0
    for a in arrays:
        a[...] = host[offset:offset + a.size].reshape(a.shape)
        offset += a.size


class _Chunk:
    """Device buffers for chunks of up to T steps of B streams."""

    def __init__(self, T, B, H, V, dtype):
        self.hs = cuda.device_array((T + 1, B, H), dtype)
        self.ps = cuda.device_array((T, B, V), dtype)
        self.dys = cuda.device_array((T, B, V), dtype)
        self.dhout = cuda.device_array((T, B, H), dtype)
        self.draws = cuda.device_array((T, B, H), dtype)
        self.step_losses = cuda.device_array((T, B), np.float64)


def _forward(K, x, y, h, P, c, losses, n):
    """Forward over one chunk (x, y: (T, B) on the device); losses[n] = its summed loss."""
    T, B = x.shape
    K["recurrence"][B, ck.BLOCK](x, h, P[0], P[1], P[3], c.hs)
    K["output_layer"][(T, B), ck.BLOCK](c.hs, P[2], P[4], y, c.ps, c.step_losses)
    K["add_losses"][1, 1](c.step_losses, T, losses, n)


def _gradients(K, x, y, P, G, c):
    """Unclipped gradients of the chunk whose forward pass is in ``c``."""
    (T, B), H, V = x.shape, P[1].shape[0], P[2].shape[0]
    K["output_grad"][(T, B), ck.BLOCK](c.ps, y, P[2], c.dys, c.dhout)
    K["recurrence_back"][B, ck.BLOCK](c.hs, c.dhout, P[1], c.draws[:T])
    K["grad_hh"][_grid2(H, H)](c.hs, c.draws[:T], G[1], G[3])
    K["grad_hy"][_grid2(V, H)](c.hs, c.dys[:T], G[2], G[4])
    K["grad_xh"][_grid2(H, V)](x, c.draws[:T], G[0])


def _column(ids):
    """Ids as a (T, 1) device array: one stream."""
    return cuda.to_device(np.ascontiguousarray(np.asarray(ids).reshape(-1, 1)))


def forward(inputs, targets, hprev, params, hs, ps):
    H, V = params[0].shape
    _check_size(H)
    T = len(inputs)
    K = ck.kernels(hs.dtype)
    _, P = _to_device(params)
    c = _Chunk(T, 1, H, V, hs.dtype)
    losses = cuda.device_array(1, np.float64)
    _forward(K, _column(inputs), _column(targets), cuda.to_device(hprev.reshape(1, -1)), P, c,
             losses, 0)
    hs[:T + 1] = c.hs.copy_to_host()[:, 0]
    ps[:T] = c.ps.copy_to_host()[:, 0]
    return float(losses.copy_to_host()[0])


def backward(inputs, targets, hs, ps, params, grads, work):
    H, V = params[0].shape
    _check_size(H)
    T = len(inputs)
    K = ck.kernels(hs.dtype)
    _, P = _to_device(params)
    flat, G = _to_device(grads)
    c = _Chunk(T, 1, H, V, hs.dtype)
    c.hs.copy_to_device(np.ascontiguousarray(hs[:T + 1]).reshape(T + 1, 1, H))
    c.ps.copy_to_device(np.ascontiguousarray(ps[:T]).reshape(T, 1, V))
    _gradients(K, _column(inputs), _column(targets), P, G, c)
    K["clip_all"][_grid1(flat.shape[0])](flat)
    _to_host(flat, grads)


def adagrad_update(w, g, m, lr):
    K = ck.kernels(w.dtype)
    dw, dg, dm = cuda.to_device(w), cuda.to_device(g), cuda.to_device(m)
    K["optimize"][_grid1(w.shape[0])](dw, dg, dm, dm, ADAGRAD, lr, 0, False)
    dw.copy_to_host(w)
    dm.copy_to_host(m)


def adagrad(params, grads, mems, lr):
    K = ck.kernels(params[0].dtype)
    dw, _ = _to_device(params)
    dg, _ = _to_device(grads)
    dm, _ = _to_device(mems)
    K["optimize"][_grid1(dw.shape[0])](dw, dg, dm, dm, ADAGRAD, lr, 0, False)
    _to_host(dw, params)
    _to_host(dm, mems)


def sample(h, seed_ix, uniforms, params, temperature, greedy, ixes, work):
    H, V = params[0].shape
    _check_size(H)
    K = ck.kernels(h.dtype)
    _, P = _to_device(params)
    d_h = cuda.to_device(h)
    d_ixes = cuda.device_array(len(uniforms), np.int64)
    K["sample"][1, ck.BLOCK](d_h, seed_ix, cuda.to_device(np.asarray(uniforms, np.float64)), *P,
                              temperature, greedy, d_ixes, cuda.device_array(V, h.dtype),
                              cuda.device_array(V, np.float64))
    ixes[:len(uniforms)] = d_ixes.copy_to_host()
    d_h.copy_to_host(h)


def train(data, position, h, params, grads, mems, lr, seq_length, losses, work, opt=None):
    return _train(data, position, h.reshape(1, -1), params, grads, mems, lr, seq_length, losses,
                  opt)


def train_batch(data, position, h, params, grads, mems, lr, seq_length, losses, work, threads,
                opt=None):
    return _train(data, position, h, params, grads, mems, lr, seq_length, losses, opt)


def _train(data, position, h, params, grads, mems, lr, seq_length, losses, opt):
    """B = len(h) streams (one for min-char-rnn) over len(losses) chunks; h (B, H) in place."""
    H, V = params[0].shape
    _check_size(H)
    B, T, n = h.shape[0], seq_length, len(losses)
    piece = data.shape[0] // B
    starts, resets = [], []
    for _ in range(n):  # the walk through the data, decided on the host
        reset = position + T + 1 >= piece
        if reset:
            position = 0
        starts.append(position)
        resets.append(reset)
        position += T
    # every chunk's window of every stream, step-major: (n, T+1, B)
    index = (np.asarray(starts)[:, None, None] + np.arange(T + 1)[None, :, None]
             + (np.arange(B) * piece)[None, None, :])
    windows = cuda.to_device(np.ascontiguousarray(data[index]))
    K = ck.kernels(h.dtype)
    p_flat, P = _to_device(params)
    g_flat, G = _to_device(grads)
    m_flat, _ = _to_device(mems)
    kind, step, mems2 = (ADAGRAD, 0, None) if opt is None else opt
    adam = kind == ADAM  # only Adam has a second state (otherwise mems2 may alias mems)
    v_flat = _to_device(mems2)[0] if adam else m_flat
    d_h = cuda.to_device(np.ascontiguousarray(h))
    d_losses = cuda.device_array(n, np.float64)
    c = _Chunk(T, B, H, V, h.dtype)
    for k in range(n):
        if resets[k]:
            K["zero"][_grid1(B * H)](d_h.reshape(B * H))
        x, y = windows[k, :T], windows[k, 1:]
        _forward(K, x, y, d_h, P, c, d_losses, k)
        _gradients(K, x, y, P, G, c)
        K["optimize"][_grid1(p_flat.shape[0])](p_flat, g_flat, m_flat, v_flat, kind, lr,
                                               step + k + 1, True)
        d_h.copy_to_device(c.hs[T])
    _to_host(p_flat, params)
    _to_host(g_flat, grads)
    _to_host(m_flat, mems)
    if adam:
        _to_host(v_flat, mems2)
    h[...] = d_h.copy_to_host()
    losses[:] = d_losses.copy_to_host()
    return position


def evaluate(data, h, params, work):
    H, V = params[0].shape
    _check_size(H)
    L = work[1].shape[0]
    n_pred = data.shape[0] - 1
    if n_pred <= 0:
        return 0.0
    K = ck.kernels(h.dtype)
    _, P = _to_device(params)
    d_data = cuda.to_device(np.ascontiguousarray(data).reshape(-1, 1))
    d_h = cuda.to_device(h.reshape(1, -1))
    starts = list(range(0, n_pred, L))
    d_losses = cuda.device_array(len(starts), np.float64)
    c = _Chunk(L, 1, H, V, h.dtype)
    for k, s in enumerate(starts):
        m = min(L, n_pred - s)
        _forward(K, d_data[s:s + m], d_data[s + 1:s + m + 1], d_h, P, c, d_losses, k)
        d_h.copy_to_device(c.hs[m])
    h[:] = d_h.copy_to_host()[0]
    loss = 0.0
    for chunk_loss in d_losses.copy_to_host():  # summed in order, as the CPU kernel does
        loss += chunk_loss
    return loss
