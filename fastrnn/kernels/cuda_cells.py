"""numba-cuda kernels of the CUDA backend's generic path: any cell (rnn, lstm, gru), any number
of layers, dropout between layers (``fastrnn.backends.cuda`` runs them; the one-layer tanh cell
keeps its own kernels in ``cuda.py``).

The generic path is layer-major. For each layer l of a chunk of T steps of B streams:

    input term          ax = Wxh x + bh for all T*B rows at once: layer 0 a gather of Wxh's
                        columns (``gather_columns``), above one product of the (masked,
                        ``multiply``) output of layer l-1 and Wxh^T, then ``add_bias``
    per step t          ah[t] = hs[l, 0, t] Whh^T (the backend's tiled product), then
                        ``cell_forward``: one thread per (stream, unit), the cell's gates and new
                        state hs[l, :, t+1]; it saves the activated gates (``ACTS``) for backward
                        (lstm: i, f, g, o; gru: r, z, n and hn = Whh_n h + bhn)

and backward, top layer first, from dh (T, B, H) flowing into the layer's outputs:

    per step t (down)   ``cell_backward``: dh = dh_out[t] + the recurrent part from step t+1
                        (and lstm's dc, gru's direct dh z), the gates' pre-activation gradients
                        dax[t] (and gru's dah[t], whose n part is dan r); then one product
                        dh_rec = dah[t] Whh for step t-1

The weight gradients, the bias sums and the input gradient of the layer below are whole-chunk
products after the step loop (in the backend). Hidden states live on the device as
``hs (L, S, T+1, B, H)`` (state vector major, so that every layer's outputs over a chunk are
one contiguous (T*B, H) matrix); the backend returns them in the interface's (L, T+1, S, B, H).

``cell_forward`` also runs all T steps at once (``steps`` = T, ``write`` False) when the states
are known (``backward`` given hs): it then only recomputes the saved gates.

The element-wise formulas are ``scalar.py``'s (shared with the CPU kernels); sigmoid and tanh use
the device's exp and tanh. ``pick`` is the sampling kernel's draw (softmax at a temperature,
top-k / top-p by ``scalar.truncate``, the uniform's index in the float64 cumulative sum), the
same statements as ``kernels.cuda``'s one-layer ``sample``, so every backend draws the same text.
"""

import functools
import math

import numpy as np
from numba import cuda, float32, float64

from .scalar import draw, gru_backward, gru_state, lstm_backward, lstm_cell, tanh_backward

# values saved per (step, stream, unit) by cell_forward for backward: rnn none (its output h
# is all its backward needs), lstm the gates i, f, g, o, gru r, z, n and hn
ACTS = {"rnn": 0, "lstm": 4, "gru": 4}


@functools.cache
def kernels(dtype, cell):
    """The generic path's kernels for float32 or float64 arrays and the cell called ``cell``
    ("rnn", "lstm", "gru"): {name: kernel}."""
    nb = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(dtype)]
    one = nb(1)
    if cell not in ACTS:
        raise ValueError(f"the CUDA backend has no kernels for the cell {cell!r}")

    @cuda.jit(device=True)
    def sigmoid(a):
        return one / (one + math.exp(-a))

    @cuda.jit(device=True)
    def unit(k, Bn, H, t0):
        """(t, b, i) of flat index k over steps t0.., streams and units."""
        return t0 + k // (Bn * H), (k // H) % Bn, k % H

    if cell == "lstm":
        @cuda.jit
        def cell_forward(ax, ah, bhn, hs, acts, t0, steps, write):
            """Steps t0 <= t < t0 + steps of one LSTM layer (hs: that layer's (2, T+1, B, H),
            h then c): a = ax[t] + ah[t] (bias in ax), the gates i, f, g, o into acts[t];
            if ``write``, c and h of step t+1 (bhn unused)."""
            Bn, H = hs.shape[2], hs.shape[3]
            for k in range(cuda.grid(1), steps * Bn * H, cuda.gridsize(1)):
                t, b, i = unit(k, Bn, H, t0)
                gi = sigmoid(ax[t, b, i] + ah[t, b, i])
                gf = sigmoid(ax[t, b, H + i] + ah[t, b, H + i])
                gg = math.tanh(ax[t, b, 2 * H + i] + ah[t, b, 2 * H + i])
                go = sigmoid(ax[t, b, 3 * H + i] + ah[t, b, 3 * H + i])
                acts[t, b, i] = gi
                acts[t, b, H + i] = gf
                acts[t, b, 2 * H + i] = gg
                acts[t, b, 3 * H + i] = go
                if write:
                    c = lstm_cell(gi, gf, gg, hs[1, t, b, i])
                    hs[1, t + 1, b, i] = c
                    hs[0, t + 1, b, i] = go * math.tanh(c)

        @cuda.jit
        def cell_backward(acts, hs, dhout, drec, dcarry, dax, dah, t, last):
            """Step t of one LSTM layer backward: dh = dhout[t] + drec (the recurrent product
            from step t+1), dc = dcarry (dc_t+1 f_t+1); dax[t] = the gates' pre-activation
            gradients, dcarry = dc_t f_t. ``last``: the chunk's last step (nothing from t+1).
            (dah unused: the LSTM's da serves both products.)"""
            Bn, H = drec.shape
            for k in range(cuda.grid(1), Bn * H, cuda.gridsize(1)):
                b, i = k // H, k % H
                dh = dhout[t, b, i]
                dc = nb(0)
                if not last:
                    dh = drec[b, i] + dh
                    dc = dcarry[b, i]
                dai, daf, dag, dao, dcp = lstm_backward(
                    acts[t, b, i], acts[t, b, H + i], acts[t, b, 2 * H + i],
                    acts[t, b, 3 * H + i], hs[1, t, b, i], math.tanh(hs[1, t + 1, b, i]), dh,
                    dc, one)
                dax[t, b, i] = dai
                dax[t, b, H + i] = daf
                dax[t, b, 2 * H + i] = dag
                dax[t, b, 3 * H + i] = dao
                dcarry[b, i] = dcp

    elif cell == "gru":
        @cuda.jit
        def cell_forward(ax, ah, bhn, hs, acts, t0, steps, write):
            """Steps t0 <= t < t0 + steps of one GRU layer (hs: (1, T+1, B, H)): r, z from
            ax[t] + ah[t], hn = ah_n + bhn, n = tanh(ax_n + r hn) into acts[t] (r, z, n, hn);
            if ``write``, h of step t+1."""
            Bn, H = hs.shape[2], hs.shape[3]
            for k in range(cuda.grid(1), steps * Bn * H, cuda.gridsize(1)):
                t, b, i = unit(k, Bn, H, t0)
                r = sigmoid(ax[t, b, i] + ah[t, b, i])
                z = sigmoid(ax[t, b, H + i] + ah[t, b, H + i])
                hn = ah[t, b, 2 * H + i] + bhn[i]
                n = math.tanh(ax[t, b, 2 * H + i] + r * hn)
                acts[t, b, i] = r
                acts[t, b, H + i] = z
                acts[t, b, 2 * H + i] = n
                acts[t, b, 3 * H + i] = hn
                if write:
                    hs[0, t + 1, b, i] = gru_state(z, n, hs[0, t, b, i], one)

        @cuda.jit
        def cell_backward(acts, hs, dhout, drec, dcarry, dax, dah, t, last):
            """Step t of one GRU layer backward: dh = drec + dcarry (the product dah[t+1] Whh
            and the direct dh_t+1 z_t+1) + dhout[t]; dax[t] = (dar, daz, dan), dah[t] = (dar,
            daz, dan r), dcarry = dh z."""
            Bn, H = drec.shape
            for k in range(cuda.grid(1), Bn * H, cuda.gridsize(1)):
                b, i = k // H, k % H
                dh = dhout[t, b, i]
                if not last:
                    dh = (drec[b, i] + dcarry[b, i]) + dh
                dar, daz, dan, dhn, direct = gru_backward(
                    acts[t, b, i], acts[t, b, H + i], acts[t, b, 2 * H + i],
                    acts[t, b, 3 * H + i], hs[0, t, b, i], dh, one)
                dax[t, b, i] = dar
                dax[t, b, H + i] = daz
                dax[t, b, 2 * H + i] = dan
                dah[t, b, i] = dar
                dah[t, b, H + i] = daz
                dah[t, b, 2 * H + i] = dhn
                dcarry[b, i] = direct

    else:
        @cuda.jit
        def cell_forward(ax, ah, bhn, hs, acts, t0, steps, write):
            """Steps t0 <= t < t0 + steps of one tanh layer: hs[0, t+1] = tanh(ax[t] + ah[t])
            (it saves nothing: backward reads h; bhn, acts unused)."""
            Bn, H = hs.shape[2], hs.shape[3]
            for k in range(cuda.grid(1), steps * Bn * H, cuda.gridsize(1)):
                t, b, i = unit(k, Bn, H, t0)
                if write:
                    hs[0, t + 1, b, i] = math.tanh(ax[t, b, i] + ah[t, b, i])

        @cuda.jit
        def cell_backward(acts, hs, dhout, drec, dcarry, dax, dah, t, last):
            """Step t of one tanh layer backward: dax[t] = (1 - h^2)(dhout[t] + drec)."""
            Bn, H = drec.shape
            for k in range(cuda.grid(1), Bn * H, cuda.gridsize(1)):
                b, i = k // H, k % H
                dh = dhout[t, b, i]
                if not last:
                    dh = drec[b, i] + dh
                dax[t, b, i] = tanh_backward(hs[0, t + 1, b, i], dh, one)

    @cuda.jit
    def gather_columns(x, W, bias, out):
        """out[r, j] = W[j, x[r]] + bias[j]: layer 0's input term (the one-hot product)."""
        N = out.shape[1]
        for k in range(cuda.grid(1), out.shape[0] * N, cuda.gridsize(1)):
            r, j = k // N, k % N
            out[r, j] = W[j, x[r]] + bias[j]

    @cuda.jit
    def add_bias(A, bias):
        """A[r, j] += bias[j] (flat, as ``gather_columns``: a 2-D grid of T B rows would pass
        the 65,535 blocks a grid's y dimension allows)."""
        N = A.shape[1]
        for k in range(cuda.grid(1), A.shape[0] * N, cuda.gridsize(1)):
            r, j = k // N, k % N
            A[r, j] += bias[j]

    @cuda.jit
    def multiply(a, b, out):
        """out = a * b element-wise (flat; out may be a): dropout's masks."""
        for k in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[k] = a[k] * b[k]

    @cuda.jit
    def state_in(state, hs):
        """hs[l, s, 0] = state[l, s] (state (L, S, B, H))."""
        L, S, Bn, H = state.shape
        for k in range(cuda.grid(1), L * S * Bn * H, cuda.gridsize(1)):
            l, s, b, i = k // (S * Bn * H), (k // (Bn * H)) % S, (k // H) % Bn, k % H
            hs[l, s, 0, b, i] = state[l, s, b, i]

    @cuda.jit
    def state_out(hs, t, state):
        """state[l, s] = hs[l, s, t]."""
        L, S, Bn, H = state.shape
        for k in range(cuda.grid(1), L * S * Bn * H, cuda.gridsize(1)):
            l, s, b, i = k // (S * Bn * H), (k // (Bn * H)) % S, (k // H) % Bn, k % H
            state[l, s, b, i] = hs[l, s, t, b, i]

    @cuda.jit
    def advance(hs, t):
        """hs[l, s, 0] = hs[l, s, t]: step t's state starts the next chunk."""
        L, S, Bn, H = hs.shape[0], hs.shape[1], hs.shape[3], hs.shape[4]
        for k in range(cuda.grid(1), L * S * Bn * H, cuda.gridsize(1)):
            l, s, b, i = k // (S * Bn * H), (k // (Bn * H)) % S, (k // H) % Bn, k % H
            hs[l, s, 0, b, i] = hs[l, s, t, b, i]

    @cuda.jit
    def pick(z, by, temperature, greedy, top_k, top_p, uniforms, n, cur, ixes, p, cdf):
        """One sampled character in one block: y = z[0] + by; the argmax if ``greedy``, else
        softmax(y / temperature) cut by top-k / top-p (scalar.truncate) and drawn by
        uniforms[n] (as reference.choose); into ixes[n] and cur[0] (the next input):
        ``scalar.draw``, as kernels.cuda's ``sample`` kernel draws, thread 0 drawing."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        V = p.shape[0]
        tau = nb(temperature)
        for v in range(tid, V, nt):
            p[v] = z[0, v] + by[v]
        cuda.syncthreads()
        if tid == 0:
            ix = draw(p, tau, greedy, top_k, top_p, uniforms[n], cdf, one)
            ixes[n] = ix
            cur[0] = ix

    return dict(cell_forward=cell_forward, cell_backward=cell_backward,
                gather_columns=gather_columns, add_bias=add_bias, multiply=multiply,
                state_in=state_in, state_out=state_out, advance=advance, pick=pick)
