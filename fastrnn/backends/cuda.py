"""``backend="cuda"``: the backend interface (``base.py``) on an NVIDIA GPU (numba-cuda).

Host arrays in, host arrays out, like every backend; parameters are read by name from the
model's ``spec.Weights``, and on the device they are the same named views into one flat
device buffer. Within one call everything stays on the
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

from .. import reference
from ..config import EVAL_STEPS
from ..kernels import cuda as ck
from .base import require_one_layer_rnn


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


def _to_device(w):
    """Weights on the device: (flat device buffer, device Weights of named views into it)."""
    spec = reference.spec_of(w)
    flat = cuda.to_device(np.concatenate([a.reshape(-1) for a in spec.arrays(w)]))
    return flat, spec.view(flat)


def _to_host(flat, w):
    """Copy a flat device buffer back into the host Weights ``w``, tensor by tensor."""
    spec = reference.spec_of(w)
    for dst, src in zip(spec.arrays(w), spec.arrays(spec.view(flat.copy_to_host()))):
        dst[...] = src


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
    (T, B), H, V = x.shape, P.layers[0].Whh.shape[0], P.Why.shape[0]
    rows = T * B
    hs = c.hs[:T + 1]
    form = ck.form(B, H)
    if form == "persistent":
        launch, rows_per_block = _persistent(K["recurrence_persistent"], B, H, hs.dtype)
        K["copy_state"][_grid1(B * H)](h, hs)
        for t0, t1 in _step_ranges(T, forward=True):
            launch(x, P.layers[0].Wxh, P.layers[0].Whh, P.layers[0].bh, hs, rows_per_block, t0, t1)
    elif form == "step":
        K["copy_state"][_grid1(B * H)](h, hs)
        step = _product("recurrence_step", hs.dtype, B, H)
        for t in range(T):
            step(t, x, P.layers[0].Wxh, P.layers[0].Whh, P.layers[0].bh, hs)
    else:
        K["transpose"][_grid2(H, H)](P.layers[0].Whh, c.WhhT)
        cached, shared = _stream_shared(H, hs.dtype, 1)
        K["recurrence"][B, _stream_threads(H), 0, shared](x, h, P.layers[0].Wxh, c.WhhT,
                                                          P.layers[0].bh, hs, cached)
    z = c.ps[:T].reshape(rows, V)
    _matmul(hs[1:].reshape(rows, H), False, P.Why, True, z)
    K["softmax_rows"][rows, ck.BLOCK](z, P.by, y.reshape(rows), z, c.step_losses[:rows])
    K["add_losses"][1, ck.BLOCK](c.step_losses[:rows], B, c.step_sums, losses, n)


def _gradients(K, x, y, order, offsets, P, G, c):
    """Unclipped gradients of the chunk whose forward pass is in ``c``; (order, offsets): the
    chunk's inputs sorted by character (``_by_character``)."""
    (T, B), H, V = x.shape, P.layers[0].Whh.shape[0], P.Why.shape[0]
    rows = T * B
    dys = c.dys[:T].reshape(rows, V)
    K["output_delta"][_grid1(rows * V)](c.ps[:T].reshape(rows, V), y.reshape(rows), dys)
    dhout, draws = c.dhout[:T], c.draws[:T]
    _matmul(dys, False, P.Why, False, dhout.reshape(rows, H))
    form = ck.form(B, H)
    if form == "persistent":
        launch, rows_per_block = _persistent(K["recurrence_back_persistent"], B, H, dhout.dtype)
        for t_hi, t_lo in _step_ranges(T, forward=False):
            launch(c.hs, dhout, P.layers[0].Whh, draws, rows_per_block, t_hi, t_lo)
    elif form == "step":
        step = _product("recurrence_back_step", dhout.dtype, B, H)
        for t in range(T - 1, -1, -1):
            step(t, c.hs, dhout, P.layers[0].Whh, draws)
    else:
        cached, shared = _stream_shared(H, dhout.dtype, 2)
        K["recurrence_back"][B, _stream_threads(H), 0, shared](c.hs, dhout, P.layers[0].Whh,
                                                               draws, cached)
    draws = draws.reshape(rows, H)
    _matmul(draws, True, c.hs[:T].reshape(rows, H), False, G.layers[0].Whh)
    _column_sums(K, draws, c.segments, G.layers[0].bh)
    _matmul(dys, True, c.hs[1:T + 1].reshape(rows, H), False, G.Why)
    _column_sums(K, dys, c.segments, G.by)
    K["grad_xh"][_grid2(H, V)](order, offsets, draws, G.layers[0].Wxh)


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


def _two_states(states):
    """The ``optimize`` kernel's two state buffers: an optimizer with one state (all but Adam)
    passes it twice (the second is then unused)."""
    return states[0], states[-1]


class CudaBackend:
    name = "cuda"

    def forward(self, w, x, y, state):
        require_one_layer_rnn(w, "cuda")
        (B, T), (V, H) = x.shape, w.Why.shape
        dtype = w.Why.dtype
        K = _kernels(dtype)
        _, P = _to_device(w)
        c = _Chunk(T, B, H, V, dtype)
        losses = cuda.device_array(1, np.float64)
        _forward(K, cuda.to_device(np.ascontiguousarray(x.T)),
                 cuda.to_device(np.ascontiguousarray(y.T)),
                 cuda.to_device(np.ascontiguousarray(state[0, 0])), P, c, losses, 0)
        return float(losses.copy_to_host()[0]), c.hs.copy_to_host()[None], c.ps.copy_to_host()

    def backward(self, w, x, y, hs, ps, g):
        require_one_layer_rnn(w, "cuda")
        (B, T), (V, H) = x.shape, w.Why.shape
        dtype = w.Why.dtype
        K = _kernels(dtype)
        _, P = _to_device(w)
        flat, G = _to_device(g)
        c = _Chunk(T, B, H, V, dtype)
        c.hs.copy_to_device(np.ascontiguousarray(hs[0]))
        c.ps.copy_to_device(np.ascontiguousarray(ps))
        xt = np.ascontiguousarray(x.T)
        order, offsets = _by_character(xt.reshape(1, -1), V)
        _gradients(K, cuda.to_device(xt), cuda.to_device(np.ascontiguousarray(y.T)),
                   cuda.to_device(order[0]), cuda.to_device(offsets[0]), P, G, c)
        K["clip_all"][_grid1(flat.shape[0])](flat)
        _to_host(flat, g)

    def update(self, optimizer, w, g, states, learning_rate, step, clip_first):
        K = _kernels(w.dtype)
        dw, dg = cuda.to_device(w), cuda.to_device(g)
        ds = [cuda.to_device(s) for s in states]
        K["optimize"][_grid1(w.shape[0])](dw, dg, *_two_states(ds), optimizer.id, learning_rate,
                                          step, clip_first)
        dw.copy_to_host(w)
        if clip_first:
            dg.copy_to_host(g)
        for host, dev in zip(states, ds):
            dev.copy_to_host(host)

    def sample(self, w, state, seed_ix, uniforms, temperature, greedy, ixes):
        require_one_layer_rnn(w, "cuda")
        V, H = w.Why.shape
        h = state[0, 0, 0]
        if H > ck.MAX_H:  # the one-block sampling kernel keeps h in shared memory
            from . import get_backend
            return get_backend("numba").sample(w, state, seed_ix, uniforms, temperature, greedy,
                                               ixes)
        K = _kernels(h.dtype)
        layer = w.layers[0]
        weights = [cuda.to_device(np.ascontiguousarray(a))
                   for a in (layer.Wxh, layer.Whh.T, w.Why.T, layer.bh, w.by)]
        d_h = cuda.to_device(h)
        d_uniforms = cuda.to_device(np.asarray(uniforms, np.float64))
        d_ixes = cuda.device_array(len(uniforms), np.int64)
        K["sample"][1, _stream_threads(H)](d_h, seed_ix, d_uniforms, *weights, temperature,
                                            greedy, d_ixes, cuda.device_array(V, h.dtype),
                                            cuda.device_array(V, np.float64))
        ixes[:len(uniforms)] = d_ixes.copy_to_host()
        d_h.copy_to_host(h)

    def train(self, w, g, optimizer, states, data, position, state, learning_rate, seq_length,
              step, losses, threads):
        """B = state.shape[2] streams over len(losses) chunks; everything stays on the device
        for the whole call."""
        require_one_layer_rnn(w, "cuda")
        h = state[0, 0]
        V, H = w.Why.shape
        B, T, n = h.shape[0], seq_length, len(losses)
        piece = data.shape[0] // B
        starts, resets = [], []
        for _ in range(n):  # the walk through the data, decided on the host
            reset = reference.wraps(position, T, piece)
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
        p_flat, P = _to_device(w)
        g_flat, G = _to_device(g)
        s_flats = [_to_device(s)[0] for s in states]
        d_h = cuda.to_device(np.ascontiguousarray(h))
        d_losses = cuda.device_array(n, np.float64)
        c = _Chunk(T, B, H, V, h.dtype)
        for k in range(n):
            if resets[k]:
                K["zero"][_grid1(B * H)](d_h.reshape(B * H))
            x, y = windows[k, :T], windows[k, 1:]
            _forward(K, x, y, d_h, P, c, d_losses, k)
            _gradients(K, x, y, order[k], offsets[k], P, G, c)
            K["optimize"][_grid1(p_flat.shape[0])](p_flat, g_flat, *_two_states(s_flats),
                                                   optimizer.id, learning_rate, step + k + 1, True)
            d_h.copy_to_device(c.hs[T])
        _to_host(p_flat, w)
        _to_host(g_flat, g)
        for flat, s in zip(s_flats, states):
            _to_host(flat, s)
        h[...] = d_h.copy_to_host()
        losses[:] = d_losses.copy_to_host()
        return position

    def evaluate(self, w, data, state):
        require_one_layer_rnn(w, "cuda")
        V, H = w.Why.shape
        h = state[0, 0, 0]
        n_pred = data.shape[0] - 1
        if n_pred <= 0:
            return 0.0
        L = min(EVAL_STEPS, n_pred)
        K = _kernels(h.dtype)
        _, P = _to_device(w)
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


def load():
    ok, why = available()
    if not ok:
        raise ValueError(f"backend 'cuda' is not usable here: {why} (NUMBA_ENABLE_CUDASIM=1 runs "
                         f"it in Numba's slow CUDA simulator)")
    return CudaBackend()
