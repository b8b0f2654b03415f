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

import functools

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


def _kernels(dtype, work=None):
    return ck.kernels(dtype, ck.TILE, ck.WORK if work is None else work, ck.MAX_H)


def _grid1(n):
    return max(1, min((n + ck.BLOCK - 1) // ck.BLOCK, 4096)), ck.BLOCK


def _grid2(n0, n1):
    side = max(1, int(ck.BLOCK ** 0.5))
    return ((n0 + side - 1) // side, (n1 + side - 1) // side), (side, side)


def _stream_threads(H):
    """Threads of a one-block-per-stream kernel: a row each (whole warps), up to STREAM_BLOCK."""
    return min(ck.STREAM_BLOCK, (H + 31) // 32 * 32)


def _stream_shared(H, dtype, vectors):
    """(cached, bytes): whether a "stream" block keeps Whh in shared memory, and the dynamic
    shared memory it needs (``vectors`` H-vectors, then Whh if cached)."""
    itemsize = np.dtype(dtype).itemsize
    cached = ck.caches_whh(H, itemsize)
    return cached, (vectors * H + (H * H if cached else 0)) * itemsize


@functools.cache
def _multiprocessors():
    """The GPU's streaming multiprocessors (1 in the simulator, which has no such count)."""
    return getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", 1)


def _product(name, dtype, M, N):
    """Product kernel ``name`` with an (M, N) result, configured for launch: one block per
    (TILE*work)^2 tile, ``work`` halved from WORK while that leaves multiprocessors idle."""
    work = ck.WORK
    while work > 1 and _tiles(M, N, ck.TILE * work) < _multiprocessors():
        work //= 2
    side = ck.TILE * work
    grid = ((N + side - 1) // side, (M + side - 1) // side)
    return _kernels(dtype, work)[name][grid, (ck.TILE, ck.TILE)]


def _tiles(M, N, side):
    return ((M + side - 1) // side) * ((N + side - 1) // side)


def _matmul(A, ta, B, tb, C):
    """C = (A.T if ta else A) @ (B.T if tb else B) on the device."""
    _product("matmul", C.dtype, *C.shape)(A, ta, B, tb, C)


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


def _by_character(inputs, V):
    """For chunks of inputs (n, rows), each row r = t*B + b: (order, offsets), int32, such that
    order[k, offsets[k, c]:offsets[k, c+1]] lists chunk k's rows whose input is c, ascending:
    what ``grad_xh`` sums over (a scatter-add by character without atomics)."""
    n = inputs.shape[0]
    order = np.argsort(inputs, axis=1, kind="stable").astype(np.int32)
    counts = np.bincount((np.arange(n)[:, None] * V + inputs).ravel(), minlength=n * V)
    offsets = np.zeros((n, V + 1), np.int32)
    np.cumsum(counts.reshape(n, V), axis=1, out=offsets[:, 1:])
    return order, offsets


class _Chunk:
    """Device buffers for chunks of up to T steps of B streams."""

    def __init__(self, T, B, H, V, dtype):
        self.hs = cuda.device_array((T + 1, B, H), dtype)
        self.ps = cuda.device_array((T, B, V), dtype)
        self.dys = cuda.device_array((T, B, V), dtype)
        self.dhout = cuda.device_array((T, B, H), dtype)
        self.draws = cuda.device_array((T, B, H), dtype)
        self.step_losses = cuda.device_array(T * B, np.float64)
        self.step_sums = cuda.device_array(T, np.float64)
        self.segments = cuda.device_array(ck.SEGMENTS * max(H, V), dtype)
        self.WhhT = cuda.device_array((H, H), dtype)


def _forward(K, x, y, h, P, c, losses, n):
    """Forward over one chunk (x, y: (T, B) on the device, h: (B, H)); ``c.hs`` and ``c.ps``
    hold its activations and probabilities, losses[n] its summed loss."""
    (T, B), H, V = x.shape, P[1].shape[0], P[2].shape[0]
    rows = T * B
    hs = c.hs[:T + 1]
    form = ck.form(B, H)
    if form == "persistent":
        launch, rows_per_block = _persistent(K["recurrence_persistent"], B, H, hs.dtype)
        K["copy_state"][_grid1(B * H)](h, hs)
        for t0, t1 in _step_ranges(T, forward=True):
            launch(x, P[0], P[1], P[3], hs, rows_per_block, t0, t1)
    elif form == "step":
        K["copy_state"][_grid1(B * H)](h, hs)
        step = _product("recurrence_step", hs.dtype, B, H)
        for t in range(T):
            step(t, x, P[0], P[1], P[3], hs)
    else:
        K["transpose"][_grid2(H, H)](P[1], c.WhhT)
        cached, shared = _stream_shared(H, hs.dtype, 1)
        K["recurrence"][B, _stream_threads(H), 0, shared](x, h, P[0], c.WhhT, P[3], hs, cached)
    z = c.ps[:T].reshape(rows, V)
    _matmul(hs[1:].reshape(rows, H), False, P[2], True, z)
    K["softmax_rows"][rows, ck.BLOCK](z, P[4], y.reshape(rows), z, c.step_losses[:rows])
    K["add_losses"][1, ck.BLOCK](c.step_losses[:rows], B, c.step_sums, losses, n)


def _gradients(K, x, y, order, offsets, P, G, c):
    """Unclipped gradients of the chunk whose forward pass is in ``c``; (order, offsets): the
    chunk's inputs sorted by character (``_by_character``)."""
    (T, B), H, V = x.shape, P[1].shape[0], P[2].shape[0]
    rows = T * B
    dys = c.dys[:T].reshape(rows, V)
    K["output_delta"][_grid1(rows * V)](c.ps[:T].reshape(rows, V), y.reshape(rows), dys)
    dhout, draws = c.dhout[:T], c.draws[:T]
    _matmul(dys, False, P[2], False, dhout.reshape(rows, H))
    form = ck.form(B, H)
    if form == "persistent":
        launch, rows_per_block = _persistent(K["recurrence_back_persistent"], B, H, dhout.dtype)
        for t_hi, t_lo in _step_ranges(T, forward=False):
            launch(c.hs, dhout, P[1], draws, rows_per_block, t_hi, t_lo)
    elif form == "step":
        step = _product("recurrence_back_step", dhout.dtype, B, H)
        for t in range(T - 1, -1, -1):
            step(t, c.hs, dhout, P[1], draws)
    else:
        cached, shared = _stream_shared(H, dhout.dtype, 2)
        K["recurrence_back"][B, _stream_threads(H), 0, shared](c.hs, dhout, P[1], draws, cached)
    draws = draws.reshape(rows, H)
    _matmul(draws, True, c.hs[:T].reshape(rows, H), False, G[1])
    _column_sums(K, draws, c.segments, G[3])
    _matmul(dys, True, c.hs[1:T + 1].reshape(rows, H), False, G[2])
    _column_sums(K, dys, c.segments, G[4])
    K["grad_xh"][_grid2(H, V)](order, offsets, draws, G[0])


def _persistent(kernel, B, H, dtype):
    """A "persistent" recurrence kernel configured for launch, and its rows per block; a clear
    error where its blocks cannot all be resident at once."""
    itemsize = np.dtype(dtype).itemsize
    rows = ck.persistent_rows(B, H, itemsize, _multiprocessors())
    if rows is None:
        raise ValueError(f"the 'persistent' CUDA recurrence cannot run {B} stream(s) of "
                         f"{H} hidden units on {_multiprocessors()} multiprocessors (one block "
                         f"per multiprocessor, its rows of Whh in {ck.SHARED_BYTES} bytes of "
                         f"shared memory); use the 'step' or 'stream' form")
    shared = (rows * H + H + rows * ck.LANES) * itemsize
    return kernel[(-(-H // rows), B), ck.STREAM_BLOCK, 0, shared], rows


def _step_ranges(T, forward):
    """The step ranges of the "persistent" launches: all T steps in one (the grid-wide barrier
    separates them), or one launch per step where PERSISTENT_STEPWISE asks for it. Forward
    ranges are (t0, t1) upwards, backward ones (t_hi, t_lo) downwards."""
    if not ck.PERSISTENT_STEPWISE:
        return [(0, T)] if forward else [(T, 0)]
    return [(t, t + 1) for t in range(T)] if forward else [(t + 1, t) for t in range(T - 1, -1, -1)]


def _column_sums(K, A, segments, out):
    """out = A summed over its rows: row segments in parallel, then the segments (both in
    order, so the result does not depend on the launch)."""
    N, S = A.shape[1], ck.SEGMENTS
    part = segments[:S * N].reshape(S, N)
    K["segment_sums"][_grid2(N, part.shape[0])](A, part)
    K["column_sums"][_grid1(N)](part, out)


def _column(ids):
    """Ids as a (T, 1) device array: one stream."""
    return cuda.to_device(np.ascontiguousarray(np.asarray(ids).reshape(-1, 1)))


def forward(inputs, targets, hprev, params, hs, ps):
    H, V = params[0].shape
    T = len(inputs)
    K = _kernels(hs.dtype)
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
    T = len(inputs)
    K = _kernels(hs.dtype)
    _, P = _to_device(params)
    flat, G = _to_device(grads)
    c = _Chunk(T, 1, H, V, hs.dtype)
    c.hs.copy_to_device(np.ascontiguousarray(hs[:T + 1]).reshape(T + 1, 1, H))
    c.ps.copy_to_device(np.ascontiguousarray(ps[:T]).reshape(T, 1, V))
    order, offsets = _by_character(np.asarray(inputs).reshape(1, -1), V)
    _gradients(K, _column(inputs), _column(targets), cuda.to_device(order[0]),
               cuda.to_device(offsets[0]), P, G, c)
    K["clip_all"][_grid1(flat.shape[0])](flat)
    _to_host(flat, grads)


def adagrad_update(w, g, m, lr):
    K = _kernels(w.dtype)
    dw, dg, dm = cuda.to_device(w), cuda.to_device(g), cuda.to_device(m)
    K["optimize"][_grid1(w.shape[0])](dw, dg, dm, dm, ADAGRAD, lr, 0, False)
    dw.copy_to_host(w)
    dm.copy_to_host(m)


def adagrad(params, grads, mems, lr):
    K = _kernels(params[0].dtype)
    dw, _ = _to_device(params)
    dg, _ = _to_device(grads)
    dm, _ = _to_device(mems)
    K["optimize"][_grid1(dw.shape[0])](dw, dg, dm, dm, ADAGRAD, lr, 0, False)
    _to_host(dw, params)
    _to_host(dm, mems)


def sample(h, seed_ix, uniforms, params, temperature, greedy, ixes, work):
    H, V = params[0].shape
    if H > ck.MAX_H:  # the one-block sampling kernel keeps h in shared memory
        from .kernels import cpu
        return cpu.sample(h, seed_ix, uniforms, params, temperature, greedy, ixes, work)
    K = _kernels(h.dtype)
    Wxh, Whh, Why, bh, by = params
    weights = [cuda.to_device(np.ascontiguousarray(w)) for w in (Wxh, Whh.T, Why.T, bh, by)]
    d_h = cuda.to_device(h)
    d_uniforms = cuda.to_device(np.asarray(uniforms, np.float64))
    d_ixes = cuda.device_array(len(uniforms), np.int64)
    K["sample"][1, _stream_threads(H)](d_h, seed_ix, d_uniforms, *weights, temperature, greedy,
                                        d_ixes, cuda.device_array(V, h.dtype),
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
    host_windows = np.ascontiguousarray(data[index])
    windows = cuda.to_device(host_windows)
    order, offsets = (cuda.to_device(a) for a in
                      _by_character(host_windows[:, :T].reshape(n, T * B), V))
    K = _kernels(h.dtype)
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
        _gradients(K, x, y, order[k], offsets[k], P, G, c)
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
    L = work[1].shape[0]
    n_pred = data.shape[0] - 1
    if n_pred <= 0:
        return 0.0
    K = _kernels(h.dtype)
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
