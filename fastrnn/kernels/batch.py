"""Mini-batch kernels for every cell and layer count: B streams at once; each mirrors the
function of the same name in ``reference``.

Public layout: the recurrent state is ``state (L, S, B, H)`` as everywhere (``backends/base.py``).
Inside, the B streams are cut into units of ``STREAMS_PER_UNIT`` consecutive streams
(``config``; the last may be smaller): the cut depends on B alone, never on the thread count.
A unit keeps its own activations, layer by layer, so each layer's T*Bu rows form one
contiguous matrix (``Group``), and its own gradient buffers (one row of ``Work.partials``, laid
out as the flat gradient and read by name through ``Spec.view``).

A unit runs layer-major, one kernel call per layer (``layer_forward``, ``layer_backward``) and
one for the softmax layer (``output_forward``, ``output_backward``), with no Python (and no
GIL) inside a call; a kernel is given one layer, so the same machine code serves any number of
layers. For layer l with G gates (1 rnn, 4 lstm, 3 gru):

    forward    pre = Wxh x + bh for every step at once: a gather of Wxh's columns for layer 0,
               one (T*Bu, H) x (H, G*H) product of the layer below's (dropped-out) output
               above; then per step one (Bu, H) x (H, G*H) product and the cell's fused
               element-wise step (``cell_forward``: gates, new state; the activated gates are
               kept in ``pre`` for backward); after the top layer, one (T*Bu, H) x (H, V)
               product and a fused softmax + loss
    backward   dy = p - onehot, dh_out = dy Why and dWhy = dy^T h as whole-unit products; per
               layer from the top, per step (reversed) the cell's fused element-wise backward
               (``cell_backward``) and one (Bu, G*H) x (G*H, H) product for dh_{t-1}; then
               dWhh = da^T h, dbh, and dWxh (rows of da added per character for layer 0; a
               product above, with dx = da Wxh, times the dropout mask, the layer below's dh_out)

The products of a unit of ``tile_rows`` streams or more (``config.TILE_ROWS``: every unit, as
set) go to ``tiles.product``, a register-tiled micro-kernel: the per-step ones over Whh packed
once per chunk (``Transposes``; 1.3-2.1x OpenBLAS at 16 rows, ``benchmarks/tile_product.py``),
the whole-chunk ones too (``whole_product`` over Wxh and Why packed once per chunk,
``weight_gradient`` over the transpose of da or dy and the unit's h packed: 1.5-2.1x OpenBLAS
on an AMD EPYC Zen 5, where NumPy's OpenBLAS runs 32-byte vectors, same script); a smaller
unit's products go to NumPy's own OpenBLAS directly (``blas.gemm``), one BLAS thread per
unit. The cell's element-wise code is chosen when a
kernel compiles, by the type of its ``Layer`` named tuple (``cell_forward``, ``cell_backward``:
one entry per cell), so a run compiles only its own cell, and the formulas are ``scalar.py``'s,
shared with the CUDA kernels.

In training one task is a unit's forward and backward pass. Then, over element ranges in
parallel, the units' gradients are summed in unit order straight into the gradient buffer
(``reduce_units``: never a racing ``+=``; a single unit's gradients are the sum, updated from
where they are) and the fused clip + optimizer update follows in the same task. Every number
is computed by the same code on the same unit (or range) whichever thread runs it, so one
thread and eight give the same bits, and a run resumed elsewhere repeats. For the tanh cell
with one layer this is, operation for operation, the kernel this module had before it learnt
other cells.
"""

import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numba import njit
from numba.extending import overload
from threadpoolctl import ThreadpoolController

from ..cells import gru, lstm, rnn
from ..config import (CLIP, INLINE, NJIT, PIPELINE_BYTES, STREAMS_PER_UNIT, TILE_ROWS,
                      UPDATE_UNIT)
from ..reference import wraps
from . import tiles, vmath
from .blas import gemm
from .cpu import clip_limit, draw, optimizer_update
from .scalar import gru_state, lstm_cell, sigmoid_backward, tanh_backward


def units(n, size):
    """[(start, stop)] cutting range(n) into pieces of ``size`` (the last may be shorter)."""
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def spans(n):
    """[(start, stop)] cutting range(n) into the fewest pieces of at most ``UPDATE_UNIT``
    elements, as equal as multiples of 64 elements allow: the tasks of the units' gradient sum
    and the update (an LSTM's 346,433 parameters at H = 256: two of 173,248 and 173,185, not
    262,144 and 84,289, which left one of two threads idle for two thirds of the update)."""
    pieces = max(1, -(-n // UPDATE_UNIT))
    size = -(-n // pieces)
    return units(n, max(64, -(-size // 64) * 64))


# How a unit multiplies by Whh per step (``product_form``)
TILES, WHH, WHH_T = 0, 1, 2


tile_rows = TILE_ROWS  # tests set it to reach every form


def product_form(rows):
    """The per-step products of a unit of ``rows`` streams: TILES (``tiles.product`` on the
    packed Whh, ``tile_rows`` streams or more), WHH (one stream: OpenBLAS's vector-matrix
    product on Whh itself, faster than on Whh^T: 2.3 against 4.2 us at H = 256, 14.7 against
    17.4 for the LSTM's 4H, measured on the AVX-512 machine) or WHH_T (OpenBLAS on Whh^T)."""
    return TILES if rows >= tile_rows else WHH if rows == 1 else WHH_T


def reads_columns(T, rows, V):
    """Whether chunks of T steps of ``rows`` streams read (and write the gradients of) layer
    0's Wxh by its columns, one per input character, rather than through its transpose, made
    for every chunk: when the vocabulary has several times more characters than the chunk
    has inputs, the transpose and its gradient's cost more than the strided reads and writes
    they save (at V = 3,004, the LSTM's 4 x 100 gate rows and one stream, 0.8-1.2 ms and ~1 ms
    a chunk: ``benchmarks/cell_profile.py --vocab``, measured with the scalar transposes that
    ``tiles.transpose`` replaced, 2-4x slower). The same bits either way."""
    return 4 * T * rows < V


class Group:
    """Buffers of one unit of Bg streams for chunks of T steps (allocated once); its gradients
    are ``grads``, Weights viewing ``partials`` (one row of ``Work.partials``). With
    ``partials`` None, a unit that runs forward only (an evaluation's): no gradients, and the
    buffers of the backward pass and of dropout empty (as many axes: the same kernels).
    ``form``: of its per-step products, if not ``product_form``'s now (a unit reading another
    unit's ``Transposes``, made for that one's)."""

    def __init__(self, streams, spec, T, dtype, partials, columns=False, form=None):
        Bg = streams.stop - streams.start
        L, H, V, G = spec.num_layers, spec.hidden_size, spec.vocab_size, spec.cell.GATES
        cell = spec.cell
        self.streams = streams
        self.form = product_form(Bg) if form is None else form  # of its per-step products
        backward = partials is not None

        def scratch(shape, make=np.empty):  # a buffer of the backward pass (or of dropout)
            return make(shape if backward else (0,) * len(shape), dtype)
        self.hs = np.empty((L, T + 1, Bg, H), dtype)  # outputs h; hs[:, 0] = h before the chunk
        # lstm's cell states (others: hs stands in, never read)
        self.cs = np.empty((L, T + 1, Bg, H), dtype) if cell is lstm else self.hs
        self.pre = np.empty((L, T, Bg, G * H), dtype)  # Wxh x + bh; then the activated gates
        self.hn = np.empty((L, T, Bg, H) if cell is gru else (L, T, 1, 1), dtype)  # gru: Whh_n h + bhn
        self.xin = scratch((max(L - 1, 1), T, Bg, H))  # dropped-out inputs of layers >= 1
        self.masks = scratch((max(L - 1, 1), T, Bg, H))  # this chunk's dropout masks
        self.acc = np.empty((Bg, G * H), dtype)      # one step's recurrent product
        self.ps = np.empty((T, Bg, V), dtype)        # probabilities
        self.dys = scratch((T, Bg, V))               # p - onehot
        self.dhout = scratch((T, Bg, H))             # dh arriving at a layer's outputs
        self.das = scratch((T, Bg, G * H))           # pre-activations' gradients (input side)
        # gru: the hidden side differs in its n part (d hn = r d a_n); others: the same array
        self.dahs = scratch((T, Bg, G * H)) if cell is gru else self.das
        self.dh_next = scratch((Bg, H))
        self.dc_next = scratch((Bg, H))              # lstm: dc; gru: dh's direct part
        self.row_loss = np.empty((T, Bg), np.float64)
        self.x = np.empty((T, Bg), np.int64)         # inputs, step-major
        self.y = np.empty((T, Bg), np.int64)         # targets, step-major
        # layer 0's dWxh as rows per character (``columns``: unused, dWxh written directly)
        self.dWxhT = scratch((0 if columns else V, G * H))
        # the weight gradients on the tiles (``weight_gradient``): dy^T (da^T goes where the
        # layer's gates were, ``layer_backward``), and the outputs of a layer packed (a tiled
        # unit's; empty, never read, in another's)
        tiled, R = self.form == TILES, T * Bg
        self.dyT = scratch((V, R) if tiled else (0, 0), tiles.empty)
        self.hp = scratch(tiles.packed_shape(R, H, dtype) if tiled
                          else tiles.packed_shape(0, 0, dtype), tiles.empty)
        self.grads = spec.view(partials) if backward else None  # this unit's, by name


class Transposes:
    """The weights as the kernels read them, for a model laid out by ``spec``, whose units
    have ``rows`` streams each: layer 0's Wxh columns as rows (the input gather), Wxh^T of
    the layers above (OpenBLAS products), and each layer's Whh in the forms its units'
    per-step products read (``product_form``): packed in panels, or as Whh^T (one stream
    reads Whh itself). With ``whole`` (``Work``'s) and tiled units, also the weights of the
    whole-chunk products packed: Wxh^T and Wxh of the layers above the first, Why^T and Why;
    Wxh^T of those layers unpacked is then made only for units that are not tiled (OpenBLAS's
    products) and for ``sample`` (not ``whole``). Without ``backward`` (an evaluation's, a
    sample's), none of the forms that only the backward pass reads (Whh, Wxh and Why packed
    as they are). A form no unit uses is an empty array (with its layer axis: one to index),
    never filled."""

    def __init__(self, spec, dtype, rows=(1,), columns=False, whole=False, backward=True):
        L, H, V, G = spec.num_layers, spec.hidden_size, spec.vocab_size, spec.cell.GATES
        forms = {product_form(r) for r in rows}
        tiled, blas = TILES in forms, WHH_T in forms
        whole = whole and tiled

        def packed(K, N, made, layers=()):  # W (K, N) packed, one a layer; not made: empty
            return tiles.empty(layers + tiles.packed_shape(K if made else 0, N if made else 0,
                                                           dtype), dtype)

        self.WxhT = np.empty((0 if columns else V, G * H), dtype)  # (``columns``: unused)
        unpacked = L > 1 and not (whole and forms == {TILES})
        self.WupT = np.empty((max(L - 1, 1),) + ((H, G * H) if unpacked else (0, 0)), dtype)
        self.WhhT = np.empty((L, H, G * H) if blas else (L, 0, 0), dtype)
        # Whh^T (H, G*H) forward and Whh (G*H, H) backward, packed
        self.Whp = packed(H, G * H, tiled, (L,))
        self.Whb = packed(G * H, H, tiled and backward, (L,))
        # Wxh^T and Wxh of the layers above the first (at least one array: one to index)
        above = whole and L > 1
        self.Wxp = packed(H, G * H, above, (max(L - 1, 1),))
        self.Wxb = packed(G * H, H, above and backward, (max(L - 1, 1),))
        self.Wyp, self.Wyb = packed(H, V, whole), packed(V, H, whole and backward)  # Why^T, Why

    def load(self, w, threads=1):
        """Refreshed from weights w; returns (WxhT, WupT, Whp), what ``sample`` reads (from
        a Transposes made for it: a Work whose chunks read Wxh's columns has no WxhT). With
        threads and packed panels, each layer's three parts (``LOAD_PARTS``; two without the
        backward's) are tasks, and the packing of Why one more."""
        L = len(w.layers)

        def part(task):
            l, which = task
            if l == L:
                load_output(w.Why, self.Wyp, self.Wyb)
            else:
                load_layer(l, w.layers[l], self.WxhT, self.WhhT, self.WupT, self.Whp,
                           self.Whb, self.Wxp, self.Wxb, which)

        parts = LOAD_PARTS if self.Whb.shape[1] > 0 else LOAD_PARTS[:-1]  # (no backward's)
        tasks = [(l, which) for l in range(L) for which in parts]
        if self.Wyp.shape[0] > 0:
            tasks.append((L, LOAD_ALL))
        if threads > 1 and self.Whp.shape[1] > 0:
            _run(threads, part, tasks)
        else:
            for l in range(L):
                part((l, LOAD_ALL))
            if self.Wyp.shape[0] > 0:
                part((L, LOAD_ALL))
        return self.WxhT, self.WupT, self.Whp


class Work(Transposes):
    """Buffers for chunks of B streams x T steps of a model laid out by ``spec``: the units
    and the weights' transposes; with ``backward`` False, an evaluation's (``evaluate``):
    forward-only units, without gradients."""

    def __init__(self, spec, B, T, dtype, backward=True):
        pieces = units(B, STREAMS_PER_UNIT)
        self.columns = reads_columns(T, max(b - a for a, b in pieces), spec.vocab_size)
        super().__init__(spec, dtype, [b - a for a, b in pieces], self.columns, True, backward)
        self.spec, self.B, self.T = spec, B, T
        self.partials = np.empty((len(pieces), spec.size if backward else 0), dtype)
        self.groups = [Group(slice(a, b), spec, T, dtype,
                             self.partials[k] if backward else None, self.columns)
                       for k, (a, b) in enumerate(pieces)]

    def states(self):
        """The chunk's states as (L, T+1, S, B, H) (``reference.forward``'s ``hs``)."""
        parts = [g.hs for g in self.groups]
        h = np.concatenate(parts, axis=2)
        if self.spec.cell is not lstm:
            return h[:, :, None]
        c = np.concatenate([g.cs for g in self.groups], axis=2)
        return np.stack([h, c], axis=2)

    def ps(self):
        """The chunk's probabilities as (T, B, V)."""
        return np.concatenate([g.ps for g in self.groups], axis=1)


# --------------------------------------------------------------------------------------------
# Fused element-wise kernels

@njit(**INLINE)
def gather_inputs(x, Wxh, WxhT, bh, pre):
    """pre[t, b] = Wxh[:, x[t, b]] + bh, read from WxhT (V, G*H), the transpose, rows
    contiguous; or, if it is empty (``reads_columns``), from Wxh's columns."""
    T, B = x.shape
    for t in range(T):
        for b in range(B):
            if WxhT.shape[0] == 0:
                v = x[t, b]
                for i in range(bh.shape[0]):
                    pre[t, b, i] = Wxh[i, v] + bh[i]
            else:
                row = WxhT[x[t, b]]
                for i in range(bh.shape[0]):
                    pre[t, b, i] = row[i] + bh[i]


@njit(**INLINE)
def add_bias(pre, bh):
    """pre[t, b] += bh."""
    T, B = pre.shape[0], pre.shape[1]
    for t in range(T):
        for b in range(B):
            for i in range(bh.shape[0]):
                pre[t, b, i] += bh[i]


@njit(**INLINE)
def sigmoid(a, one):
    return one / (one + vmath.exp(-a))


# The cells' steps. ``cell_forward(layer, pre, acc, hp, cp, h, c, hn)`` for one step of a
# unit: pre (Bu, G*H) the input term (the activated gates on return), acc (Bu, G*H) Whh h_prev,
# hp/cp the state before, h/c after (c: lstm only), hn (gru only) Whh_n h_prev + bhn.
# ``cell_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah)``: from dh
# at the outputs (dhout + dh_next) writes the pre-activations' gradients da (and dah, the
# hidden side's, for gru) and carries dc_next (lstm: dc; gru: the direct part dh z, added to
# dh_next after its product, see ``DIRECT``).

def _rnn_forward(layer, pre, acc, hp, cp, h, c, hn):
    for b in range(h.shape[0]):
        for i in range(h.shape[1]):
            h[b, i] = vmath.tanh(pre[b, i] + acc[b, i])


def _rnn_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah):
    one = h.dtype.type(1)
    for b in range(h.shape[0]):
        for i in range(h.shape[1]):
            da[b, i] = tanh_backward(h[b, i], dhout[b, i] + dh_next[b, i], one)


def _lstm_forward(layer, pre, acc, hp, cp, h, c, hn):
    # Simple loops from 0 over views of one gate each, few arrays a loop: LLVM vectorises
    # these. (It did not vectorise one fused loop over the four gates, which needs too many
    # run-time overlap checks, nor a loop from k = 2H, whose index Numba cannot prove
    # non-negative: 4-10x slower, measured.)
    Bg, H = h.shape
    one = h.dtype.type(1)
    for b in range(Bg):
        a, s = pre[b], acc[b]
        for k in range(4 * H):
            a[k] += s[k]                                  # the gates' pre-activations
        gi, gf, gg, go = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        for j in range(H):
            gi[j] = sigmoid(gi[j], one)
        for j in range(H):
            gf[j] = sigmoid(gf[j], one)
        for j in range(H):
            gg[j] = vmath.tanh(gg[j])
        for j in range(H):
            go[j] = sigmoid(go[j], one)
        hb, cb, cpb = h[b], c[b], cp[b]
        for j in range(H):
            cb[j] = lstm_cell(gi[j], gf[j], gg[j], cpb[j])
        for j in range(H):
            hb[j] = go[j] * vmath.tanh(cb[j])


def _lstm_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah):
    # scalar.lstm_backward's formula, one simple loop per term (see _lstm_forward); dh_next
    # takes dh (its product overwrites it next) and da's o part holds tanh(c) for a moment.
    Bg, H = h.shape
    one = h.dtype.type(1)
    for b in range(Bg):
        a, d = pre[b], da[b]
        gi, gf, gg, go = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        di, df, dg, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        dh, dout, dc, cb, cpb = dh_next[b], dhout[b], dc_next[b], c[b], cp[b]
        for j in range(H):
            dh[j] += dout[j]                                        # dh at h_t
        for j in range(H):
            do[j] = vmath.tanh(cb[j])                               # tanh(c_t)
        for j in range(H):
            dc[j] += tanh_backward(do[j], dh[j] * go[j], one)       # dc at c_t
        for j in range(H):
            do[j] = sigmoid_backward(go[j], dh[j] * do[j], one)     # d a_o
        for j in range(H):
            di[j] = sigmoid_backward(gi[j], dc[j] * gg[j], one)     # d a_i
        for j in range(H):
            df[j] = sigmoid_backward(gf[j], dc[j] * cpb[j], one)    # d a_f
        for j in range(H):
            dg[j] = tanh_backward(gg[j], dc[j] * gi[j], one)        # d a_g
        for j in range(H):
            dc[j] *= gf[j]                                          # dc at c_{t-1}


def _gru_forward(layer, pre, acc, hp, cp, h, c, hn):
    # Simple loops from 0 over views of one gate each (see _lstm_forward).
    Bg, H = h.shape
    one = h.dtype.type(1)
    bhn = layer.bhn
    for b in range(Bg):
        a, s, hnb = pre[b], acc[b], hn[b]
        for k in range(2 * H):
            a[k] = sigmoid(a[k] + s[k], one)              # r, z
        gr, gz, gn, sn = a[:H], a[H:2 * H], a[2 * H:], s[2 * H:]
        for j in range(H):
            hnb[j] = sn[j] + bhn[j]                       # Whh_n h + bhn
        for j in range(H):
            gn[j] = vmath.tanh(gn[j] + gr[j] * hnb[j])    # n
        hb, hpb = h[b], hp[b]
        for j in range(H):
            hb[j] = gru_state(gz[j], gn[j], hpb[j], one)


def _gru_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah):
    # scalar.gru_backward's formula, one simple loop per term (see _lstm_backward).
    Bg, H = h.shape
    one = h.dtype.type(1)
    for b in range(Bg):
        a, d, e = pre[b], da[b], dah[b]
        gr, gz, gn = a[:H], a[H:2 * H], a[2 * H:]
        dr, dz, dn, er, ez, en = d[:H], d[H:2 * H], d[2 * H:], e[:H], e[H:2 * H], e[2 * H:]
        dh, dout, direct, hnb, hpb = dh_next[b], dhout[b], dc_next[b], hn[b], hp[b]
        for j in range(H):
            dh[j] += dout[j]                                        # dh at h_t
        for j in range(H):
            dn[j] = tanh_backward(gn[j], dh[j] * (one - gz[j]), one)  # d a_n
        for j in range(H):
            dr[j] = sigmoid_backward(gr[j], dn[j] * hnb[j], one)    # d a_r
        for j in range(H):
            dz[j] = sigmoid_backward(gz[j], dh[j] * (hpb[j] - gn[j]), one)  # d a_z
        for j in range(H):
            en[j] = dn[j] * gr[j]                                   # d hn
        for j in range(H):
            er[j] = dr[j]
        for j in range(H):
            ez[j] = dz[j]
        for j in range(H):
            direct[j] = dh[j] * gz[j]                               # dh_{t-1}'s direct part


_FORWARD = {rnn.Layer: _rnn_forward, lstm.Layer: _lstm_forward, gru.Layer: _gru_forward}
_BACKWARD = {rnn.Layer: _rnn_backward, lstm.Layer: _lstm_backward, gru.Layer: _gru_backward}
DIRECT = {rnn.Layer: False, lstm.Layer: False, gru.Layer: True}  # dh_prev has a direct part


def cell_forward(layer, pre, acc, hp, cp, h, c, hn):
    """One step of a unit through the cell whose Layer type ``layer`` has (see above)."""
    raise NotImplementedError("compiled by Numba only (see the overload below)")


def cell_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah):
    """Backward through one step of a unit (see above)."""
    raise NotImplementedError("compiled by Numba only (see the overload below)")


def has_direct(layer):
    """Whether dh_{t-1} has a part besides da Whh (gru's z dh), left in dc_next."""
    raise NotImplementedError("compiled by Numba only (see the overload below)")


def _gru_hidden_bias(g, dahs):
    """gru: bhn's gradient, the sum of the hidden side's n part."""
    T, Bg = dahs.shape[0], dahs.shape[1]
    H = g.bhn.shape[0]
    dbhn = g.bhn
    dbhn[:] = 0
    for t in range(T):
        for b in range(Bg):
            for i in range(H):
                dbhn[i] += dahs[t, b, 2 * H + i]


def hidden_bias_gradient(g, dahs):
    """The gradient of a bias on the hidden side (gru's bhn), if the cell has one."""
    raise NotImplementedError("compiled by Numba only (see the overload below)")


@overload(hidden_bias_gradient, jit_options=NJIT, inline="always")
def _hidden_bias_gradient(g, dahs):
    if g.instance_class is gru.Layer:
        return _gru_hidden_bias
    return lambda g, dahs: None


@overload(cell_forward, jit_options=NJIT, inline="always")
def _cell_forward(layer, pre, acc, hp, cp, h, c, hn):
    return _FORWARD[layer.instance_class]


@overload(cell_backward, jit_options=NJIT, inline="always")
def _cell_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah):
    return _BACKWARD[layer.instance_class]


@overload(has_direct, jit_options=NJIT, inline="always")
def _has_direct(layer):
    direct = DIRECT[layer.instance_class]
    return lambda layer: direct


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
                row[v] = row.dtype.type(0) if p < flush else p  # (NaN kept)
            row_loss[t, b] = m + np.log(s) - target_logit  # -log p[target], from the logits


@njit(**INLINE)
def apply_masks(masks, h, out):
    """out = masks * h, element-wise over (T, Bu, H): dropout on a layer's outputs."""
    T, B, H = h.shape
    for t in range(T):
        for b in range(B):
            for i in range(H):
                out[t, b, i] = masks[t, b, i] * h[t, b, i]


@njit(**INLINE)
def copy_vector(a, out):
    """out[:] = a for vectors, as a loop: an array assignment compiles NumPy's broadcasting
    for it, seconds at a kernel's first call."""
    for i in range(a.shape[0]):
        out[i] = a[i]


# What a ``load_layer`` call refreshes: all, or one of LOAD_PARTS (tasks for several threads)
LOAD_ALL, LOAD_TRANSPOSES, LOAD_FORWARD, LOAD_BACKWARD = 0, 1, 2, 3
LOAD_PARTS = (LOAD_TRANSPOSES, LOAD_FORWARD, LOAD_BACKWARD)


@njit(**NJIT)
def load_layer(l, layer, WxhT, WhhT, WupT, Whp, Whb, Wxp, Wxb, which):
    """``Transposes``' arrays of layer l from its weights ``layer`` (the empty ones stay
    empty): all of them (``which`` LOAD_ALL), or its transposes (LOAD_TRANSPOSES), what
    forward reads packed (LOAD_FORWARD: Whh^T, and Wxh^T above the first layer) or what
    backward reads packed (LOAD_BACKWARD: Whh, and Wxh above the first layer)."""
    if which == LOAD_ALL or which == LOAD_TRANSPOSES:
        if l == 0:
            if WxhT.shape[0] > 0:  # (empty: Wxh is read by its columns)
                tiles.transpose(layer.Wxh, WxhT)
        elif WupT.shape[1] > 0:  # (empty: the tiles read Wxh packed, Wxp and Wxb)
            tiles.transpose(layer.Wxh, WupT[l - 1])
        if WhhT.shape[1] > 0:
            tiles.transpose(layer.Whh, WhhT[l])
    if which == LOAD_ALL or which == LOAD_FORWARD:
        if Whp.shape[1] > 0:
            tiles.pack(layer.Whh, True, Whp[l])        # Whh^T
        if l > 0 and Wxp.shape[1] > 0:
            tiles.pack(layer.Wxh, True, Wxp[l - 1])    # Wxh^T
    if which == LOAD_ALL or which == LOAD_BACKWARD:
        if Whb.shape[1] > 0:
            tiles.pack(layer.Whh, False, Whb[l])       # Whh
        if l > 0 and Wxb.shape[1] > 0:
            tiles.pack(layer.Wxh, False, Wxb[l - 1])   # Wxh


@njit(**NJIT)
def load_output(Why, Wyp, Wyb):
    """``Transposes``' Why^T and Why packed (``whole``; Why only where made: not in a
    forward-only one)."""
    tiles.pack(Why, True, Wyp)
    if Wyb.shape[0] > 0:
        tiles.pack(Why, False, Wyb)


@njit(**INLINE)
def whole_product(form, A, W, trans, packed, C):
    """C = A op(W) for a unit's T*Bu rows A (R, K), op(W) = W^T if ``trans`` else W: on the
    tiles over W packed (``packed``; a tiled unit, ``form`` TILES), else OpenBLAS on W."""
    M, K = A.shape
    N = C.shape[1]
    if form == TILES:
        tiles.product(A, packed, C, False)
    else:
        gemm(False, trans, M, N, K, A, K, W, W.shape[1], 0.0, C, N)


@njit(**INLINE)
def weight_gradient(form, d, h, out, dT, hp, transposed):
    """out = d^T h, the gradient of the weights of a whole-chunk product from a unit's T*Bu
    rows of gradients at its outputs d (R, N) and of its inputs h (R, H). On the tiles
    (``form`` TILES): d^T into dT (R columns, N rows or more; unless ``transposed``: dT
    holds it already), h packed into hp, and one product."""
    R, N = d.shape
    H = h.shape[1]
    if form == TILES:
        if not transposed:
            tiles.transpose(d, dT[:N])
        tiles.pack(h, False, hp)
        tiles.product(dT[:N], hp, out, False)
    else:
        gemm(True, False, N, H, R, d, N, h, H, 0.0, out, H)


# --------------------------------------------------------------------------------------------
# One unit's chunk, a layer per call (nogil: units run in parallel). A kernel is given one
# layer's weights and its index, never the tuple of all layers, so that its type, and the
# machine code compiled for it, is the same for any number of layers.

@njit(**INLINE)
def flat(a):
    """A contiguous (steps, Bu, D) array as its (steps * Bu, D) rows."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


@njit(**NJIT)
def layer_forward(l, x, layer, WxhT, WhhT, Whp, form, WupT, Wxp, hs, cs, pre, hn, xin, masks,
                  drop, acc):
    """Forward pass of one unit through its layer l (weights ``layer``): hs[l, 0] (and
    cs[l, 0]) hold its state before the chunk, hs[l - 1] the outputs of the layer below.
    ``drop``: apply ``masks`` to those first."""
    T, Bg = x.shape
    H, GH = hs.shape[3], pre.shape[3]
    if l == 0:
        gather_inputs(x, layer.Wxh, WxhT, layer.bh, pre[0])
    else:
        below = flat(hs[l - 1])[Bg:]             # the (T*Bu, H) rows of the layer below
        if drop:
            apply_masks(masks[l - 1], hs[l - 1, 1:], xin[l - 1])
            below = flat(xin[l - 1])
        whole_product(form, below, WupT[l - 1], False, Wxp[l - 1], flat(pre[l]))
        add_bias(pre[l], layer.bh)
    for t in range(T):
        if form == TILES:                                                          # h Whh^T
            tiles.product(hs[l, t], Whp[l], acc, t % 2 == 1)
        elif form == WHH:
            gemm(False, True, 1, GH, H, hs[l, t], H, layer.Whh, H, 0.0, acc, GH)
        else:
            gemm(False, False, Bg, GH, H, hs[l, t], H, WhhT[l], GH, 0.0, acc, GH)
        cell_forward(layer, pre[l, t], acc, hs[l, t], cs[l, t], hs[l, t + 1], cs[l, t + 1],
                     hn[l, t])


@njit(**NJIT)
def output_forward(form, top, Why, Wyp, by, y, ps, row_loss):
    """The softmax layer on the top layer's outputs ``top`` (T+1, Bu, H) (top[0]: the state
    before the chunk): probabilities into ps, and the summed loss."""
    T, Bg = y.shape
    whole_product(form, flat(top)[Bg:], Why, True, Wyp, flat(ps))     # all steps' logits
    softmax_loss(ps, by, y, row_loss)
    loss = 0.0
    for t in range(T):
        for b in range(Bg):
            loss += row_loss[t, b]
    return loss


@njit(**NJIT)
def output_backward(form, y, ps, Why, Wyb, top, dys, dhout, dWhy, dby, dyT, hp):
    """The softmax layer's gradients from its probabilities ps: dy = p - onehot into dys,
    dWhy = dy^T h, dby, and dh_out = dy Why, what the top layer's outputs receive (dyT, hp:
    ``weight_gradient``'s scratch)."""
    T, Bg = y.shape
    V = Why.shape[0]
    dby[:] = 0
    for t in range(T):
        for b in range(Bg):
            for v in range(V):
                dys[t, b, v] = ps[t, b, v]
                dby[v] += ps[t, b, v]
            dys[t, b, y[t, b]] -= 1
            dby[y[t, b]] -= 1
    whole_product(form, flat(dys), Why, False, Wyb, flat(dhout))            # dh_out = dy Why
    weight_gradient(form, flat(dys), flat(top)[Bg:], dWhy, dyT, hp, False)  # dWhy = dy^T h


@njit(**NJIT)
def layer_backward(l, x, layer, g, Whb, Wxb, form, hs, cs, pre, hn, xin, masks, drop, dhout,
                   das, dahs, dh_next, dc_next, dWxhT, hp):
    """Unclipped gradients of one unit's layer l (weights ``layer``) into ``g`` (its layer of
    the unit's gradients), from the forward pass and dhout, the gradient arriving at the
    layer's outputs; for l > 0, dhout is then the layer below's (dWxhT, hp: scratch)."""
    T, Bg = x.shape
    H, GH, V = hs.shape[3], pre.shape[3], dWxhT.shape[0]
    columns = V == 0  # (``reads_columns``: no dWxhT, dWxh's columns written directly)
    R = T * Bg
    direct = has_direct(layer)
    dh_next[:] = 0
    dc_next[:] = 0
    for t in range(T - 1, -1, -1):
        cell_backward(layer, pre[l, t], hs[l, t], cs[l, t], hs[l, t + 1], cs[l, t + 1],
                      hn[l, t], dhout[t], dh_next, dc_next, das[t], dahs[t])
        if t > 0:                                                              # da Whh
            if form == TILES:
                tiles.product(dahs[t], Whb[l], dh_next, t % 2 == 1)
            else:
                gemm(False, False, Bg, H, GH, dahs[t], GH, layer.Whh, H, 0.0, dh_next, H)
            if direct:
                for b in range(Bg):
                    for i in range(H):
                        dh_next[b, i] += dc_next[b, i]
    # the steps above read the layer's activated gates in pre[l] for the last time: its
    # (R, G*H) numbers now hold the weight gradients' (G*H, R) transposes of da
    dT = pre[l].reshape(GH, R)
    weight_gradient(form, flat(dahs), flat(hs[l])[:R], g.Whh, dT, hp, False)  # dWhh = da^T h
    dbh = g.bh
    dbh[:] = 0
    if l == 0 and columns:
        dWxh = g.Wxh
        dWxh[:] = 0
        for t in range(T):
            for b in range(Bg):
                v = x[t, b]
                for i in range(GH):
                    dbh[i] += das[t, b, i]
                    dWxh[i, v] += das[t, b, i]
    elif l == 0:
        dWxhT[:] = 0
        for t in range(T):
            for b in range(Bg):
                row = dWxhT[x[t, b]]
                for i in range(GH):
                    dbh[i] += das[t, b, i]
                    row[i] += das[t, b, i]
        tiles.transpose(dWxhT, g.Wxh)
    else:
        for t in range(T):
            for b in range(Bg):
                for i in range(GH):
                    dbh[i] += das[t, b, i]
        below = flat(xin[l - 1]) if drop else flat(hs[l - 1])[Bg:]
        # dWxh = da^T x (dT holds da^T already unless gru's hidden side differs: dahs)
        weight_gradient(form, flat(das), below, g.Wxh, dT, hp,
                        das.ctypes.data == dahs.ctypes.data)
        whole_product(form, flat(das), layer.Wxh, False, Wxb[l - 1], flat(dhout))  # dx
        if drop:
            apply_masks(masks[l - 1], dhout, dhout)
    hidden_bias_gradient(g, dahs)


@njit(**INLINE)
def reduce_units(partials, out, a, b):
    """out[a:b] = partials[0, a:b] + partials[1, a:b] + ..., added in unit order: the units'
    gradient sum. (Explicit loops over 1-D views of the range: LLVM vectorises those, not
    2-D-indexed loops or a slice assignment; 3x faster each, measured.)"""
    total = out[a:b]
    first = partials[0, a:b]
    for e in range(total.shape[0]):
        total[e] = first[e]
    for k in range(1, partials.shape[0]):
        row = partials[k, a:b]
        for e in range(total.shape[0]):
            total[e] += row[e]


def state_range(opt, a, b):
    """The optimizer state tuple ``opt`` of flat arrays cut to [a, b) (a tuple of views)."""
    raise NotImplementedError("compiled by Numba only (see the overload below)")


@overload(state_range, jit_options=NJIT, inline="always")
def _state_range(opt, a, b):
    State = opt.instance_class
    if len(State._fields) == 1:
        return lambda opt, a, b: State(opt[0][a:b])
    if len(State._fields) == 2:
        return lambda opt, a, b: State(opt[0][a:b], opt[1][a:b])
    raise TypeError(f"state_range: {State.__name__} has {len(State._fields)} buffers; "
                    f"add a line here for it")


@njit(**NJIT)
def sum_gradients(partials, out, a, b):
    """``reduce_units`` as a kernel of its own (``gradients``)."""
    reduce_units(partials, out, a, b)


@njit(**NJIT)
def sum_and_update(partials, opt, w, g, lr, step, limit, a, b):
    """Over the parameter range [a, b): the units' gradient sum, then the optimizer update of
    w (``opt``: the optimizer's state tuple of flat arrays), the sum clipped to [-limit, limit]
    first (``cpu.clip_limit``). Several units' sum goes into g; a single unit's
    gradients are the sum: the update reads (and clips) them where they are, and g is left as
    it was (a copy saved: the update of an LSTM's 346,433 parameters at H = 256, one stream,
    took 0.24-0.25 ms against 0.33-0.34 with it on an Intel Xeon,
    ``benchmarks/cell_profile.py --cell lstm --layers 1 --streams 1``)."""
    total = partials[0]
    if partials.shape[0] > 1:
        reduce_units(partials, g, a, b)
        total = g
    optimizer_update(state_range(opt, a, b), w[a:b], total[a:b], lr, step, True, limit)


@njit(**NJIT)
def load_unit(inputs, targets, state, a, x, y, hs, cs):
    """A unit's share of a chunk, for its streams a, a+1, ...: inputs and targets (B, T) into
    x and y step-major (T, Bu); its state before the chunk, state[:, :, a:] (L, S, B, H), into
    hs[:, 0] (and lstm's cs[:, 0])."""
    T, Bg = x.shape
    L, S = state.shape[0], state.shape[1]
    for t in range(T):
        for b in range(Bg):
            x[t, b] = inputs[a + b, t]
            y[t, b] = targets[a + b, t]
    for l in range(L):
        for b in range(Bg):
            copy_vector(state[l, 0, a + b], hs[l, 0, b])
            if S > 1:
                copy_vector(state[l, 1, a + b], cs[l, 0, b])


@njit(**NJIT)
def sample(state, seed_ix, uniforms, w, WxhT, WupT, Whp, temperature, greedy, top_k, top_p,
           ixes, hs, cs, pre, acc, hn, logits, cdf):
    """reference.sample for any cell and layer count: writes len(uniforms) ids to ixes; state
    (L, S, 1, H) is advanced in place. ``Transposes`` of one stream give WxhT, WupT and Whp
    (the packed Whh^T, or empty where one stream's form is OpenBLAS on Whh). Buffers: hs, cs
    (L, 2, 1, H) (cs: lstm's, else hs), pre, acc (1, G*H), hn (1, H), logits (1, V), cdf (V,)
    float64."""
    L, H, GH = hs.shape[0], hs.shape[3], pre.shape[1]
    V = w.Why.shape[0]
    S = state.shape[1]
    p = logits[0]
    tau = p.dtype.type(temperature)
    for l in range(L):
        copy_vector(state[l, 0, 0], hs[l, 0, 0])
        if S > 1:
            copy_vector(state[l, 1, 0], cs[l, 0, 0])
    ix = seed_ix
    for n in range(uniforms.shape[0]):
        for l in range(L):
            layer = w.layers[l]
            if l == 0:
                row = WxhT[ix]
                for i in range(GH):
                    pre[0, i] = row[i] + layer.bh[i]
            else:
                gemm(False, False, 1, GH, H, hs[l - 1, 1], H, WupT[l - 1], GH, 0.0, pre, GH)
                for i in range(GH):
                    pre[0, i] += layer.bh[i]
            if Whp.shape[1] > 0:                                                   # h Whh^T
                tiles.product(hs[l, 0], Whp[l], acc, n % 2 == 1)
            else:
                gemm(False, True, 1, GH, H, hs[l, 0], H, layer.Whh, H, 0.0, acc, GH)
            cell_forward(layer, pre, acc, hs[l, 0], cs[l, 0], hs[l, 1], cs[l, 1], hn)
        for l in range(L):
            copy_vector(hs[l, 1, 0], hs[l, 0, 0])
            copy_vector(cs[l, 1, 0], cs[l, 0, 0])
        gemm(False, True, 1, V, H, hs[L - 1, 0], H, w.Why, H, 0.0, logits, V)
        for v in range(V):
            p[v] += w.by[v]
        ix = draw(p, tau, greedy, top_k, top_p, uniforms[n], cdf)
        ixes[n] = ix
    for l in range(L):
        copy_vector(hs[l, 0, 0], state[l, 0, 0])
        if S > 1:
            copy_vector(cs[l, 0, 0], state[l, 1, 0])


# --------------------------------------------------------------------------------------------
# The chunk: forward, backward, training

_POOLS = {}
_BLAS = {"lock": threading.Lock(), "users": 0, "saved": None, "libraries": None}


def _after_fork():
    # A child made by fork() inherits the pools but not their threads: it makes its own
    # (multiprocessing's default on Linux; a pool's task waited forever there); nor does
    # it inherit the threads that were in the kernels.
    _POOLS.clear()
    saved = _BLAS["saved"]
    _BLAS.update(lock=threading.Lock(), users=0, saved=None)
    if saved is not None:  # (forked while a kernel call held one BLAS thread)
        _set_blas_threads(saved)


os.register_at_fork(after_in_child=_after_fork)


def _blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's OpenBLAS), found once."""
    if _BLAS["libraries"] is None:
        _BLAS["libraries"] = ThreadpoolController().select(user_api="blas").lib_controllers
    return _BLAS["libraries"]


def _set_blas_threads(counts):
    """Set each BLAS library's thread count (``counts``, in ``_blas_libraries`` order) from
    whichever Python thread this is: threadpoolctl's ``set_num_threads`` does nothing but in
    the first thread that set OpenBLAS's (its "controlling thread", 3.6 on), so a model
    trained on another thread ran its products on every BLAS thread."""
    for library, n in zip(_blas_libraries(), counts):
        getattr(library, "_real_set_num_threads", library.set_num_threads)(n)


@contextlib.contextmanager
def one_blas_thread():
    """One BLAS thread while the kernels run, for every thread of the process running them at
    once: the first to enter sets it, the last to leave restores what was set before. (The
    limit is the process's: the ``threadpool_limits`` blocks of two models training on two
    Python threads restored it out of order, so that one's products ran on two BLAS threads,
    summing in another order, and BLAS was left at one thread after both.)"""
    with _BLAS["lock"]:
        if _BLAS["users"] == 0:
            _BLAS["saved"] = [library.get_num_threads() for library in _blas_libraries()]
            _set_blas_threads([1] * len(_BLAS["saved"]))
        _BLAS["users"] += 1
    try:
        yield
    finally:
        with _BLAS["lock"]:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                _set_blas_threads(_BLAS["saved"])
                _BLAS["saved"] = None


def _run(threads, fn, items):
    """[fn(item) for item in items], the items taken in turn by ``threads`` threads (this one
    and a pool's). Which thread runs an item changes nothing in its result. If this thread's
    share ends in an exception (Ctrl-C's KeyboardInterrupt, heard between two items), the
    other threads finish the item in hand, take no other, and are waited for before it comes
    out (also when it comes while this thread waits for them, or from one of them): no thread
    goes on writing into buffers the next call reuses."""
    n = len(items)
    threads = min(threads, n)
    if threads <= 1:
        return [fn(item) for item in items]
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads - 1)
    results = [None] * n
    taken = itertools.count()  # next() on it is atomic under the GIL
    stopped = []

    def worker():
        k = next(taken)
        while k < n and not stopped:
            results[k] = fn(items[k])
            k = next(taken)

    helpers = [_POOLS[threads].submit(worker) for _ in range(threads - 1)]
    try:
        worker()
        for h in helpers:  # (Ctrl-C may come out of this wait too)
            h.result()
    except BaseException:
        stopped.append(True)
        wait(helpers)
        raise
    return results


def _load(g, inputs, targets, state, masks):
    """One unit's share of the chunk (its inputs, its state before it, its dropout masks) into
    its buffers: the first thing a unit's task does."""
    load_unit(inputs, targets, state, g.streams.start, g.x, g.y, g.hs, g.cs)
    if masks is not None:
        g.masks[:] = masks[:, :, g.streams]


def _store_unit(g, T, state):
    """Unit g's state after its chunk of T steps into its streams of state (L, S, B, H)."""
    state[:, 0, g.streams] = g.hs[:, T]
    if state.shape[1] > 1:  # lstm's cell states
        state[:, 1, g.streams] = g.cs[:, T]


def _store(work, state):
    """Each unit's state after the chunk into state (L, S, B, H)."""
    for g in work.groups:
        _store_unit(g, work.T, state)


def _forward_one(work, w, g, drop):
    """Unit g's forward pass through every layer (g.hs[:, 0], and g.cs[:, 0], hold its state
    before the chunk); returns its summed loss."""
    for l, layer in enumerate(w.layers):
        layer_forward(l, g.x, layer, work.WxhT, work.WhhT, work.Whp, g.form, work.WupT,
                      work.Wxp, g.hs, g.cs, g.pre, g.hn, g.xin, g.masks, drop, g.acc)
    return output_forward(g.form, g.hs[-1], w.Why, work.Wyp, w.by, g.y, g.ps, g.row_loss)


def _backward_one(work, w, g, drop):
    """Unit g's unclipped gradients, from its forward pass, into g.grads."""
    grads = g.grads
    output_backward(g.form, g.y, g.ps, w.Why, work.Wyb, g.hs[-1], g.dys, g.dhout, grads.Why,
                    grads.by, g.dyT, g.hp)
    for l in range(len(w.layers) - 1, -1, -1):
        layer_backward(l, g.x, w.layers[l], grads.layers[l], work.Whb, work.Wxb, g.form, g.hs,
                       g.cs, g.pre, g.hn, g.xin, g.masks, drop, g.dhout, g.das, g.dahs,
                       g.dh_next, g.dc_next, g.dWxhT, g.hp)


def forward(inputs, targets, state, w, work, threads=1, masks=None, loaded=False):
    """reference.forward; the activations stay in the work buffers (``work.states()``,
    ``work.ps()``); ``state`` is not changed. Returns the loss summed over the block.
    ``loaded``: ``work`` already holds w's transposes (``Work.load``).

    Call it (and ``gradients``) with BLAS limited to one thread, as ``train`` does, when
    ``threads`` > 1: the units are the parallelism."""
    if not loaded:
        work.load(w, threads)
    drop = masks is not None

    def unit(g):
        _load(g, inputs, targets, state, masks)
        return _forward_one(work, w, g, drop)

    loss = 0.0
    for part in _run(threads, unit, work.groups):
        loss += part                                               # in unit order
    return loss


def gradients(w, g, work, threads=1, drop=False):
    """reference.backward before clipping, for the chunk whose forward pass is in work. It
    spends that pass (the gates' memory takes the weight gradients' transposes,
    ``layer_backward``): run ``forward`` again before another call."""
    _run(threads, lambda k: _backward_one(work, w, k, drop), work.groups)
    _run(threads, lambda span: sum_gradients(work.partials, g.flat, *span),
         spans(g.flat.shape[0]))


def backward(inputs, targets, state, w, g, work, threads=1, masks=None):
    """reference.backward (clipped) of the chunk that starts from ``state`` (L, S, B, H): the
    forward pass runs again first, to rebuild what backward reads (the gates)."""
    with one_blas_thread():
        forward(inputs, targets, state, w, work, threads, masks)
        gradients(w, g, work, threads, masks is not None)
    np.clip(g.flat, -CLIP, CLIP, out=g.flat)


def train(data, position, state, w, g, opt, lr, seq_length, step, losses, work, threads=1,
          masks=None, clip=CLIP):
    """reference.train for B streams and len(losses) chunks; ``state`` (L, S, B, H) carried in
    place; ``opt``: the optimizer's state tuple; ``step``: updates made before; ``masks``:
    (len(losses), L-1, T, B, H) dropout masks or None; ``clip`` as reference.train's. Returns
    the position.

    Per chunk, two parallel phases: each unit's load, forward and backward pass (one task
    per unit), then, per element range, the units' gradient sum and the clipped optimizer
    update (one kernel call per range)."""
    B, T = work.B, work.T
    piece = data.shape[0] // B
    starts = (np.arange(B) * piece)[:, None] + np.arange(T + 1)
    ranges = spans(w.flat.shape[0])
    drop = masks is not None
    limit = clip_limit(clip)
    chunk = {}  # what the running chunk's tasks read

    def unit(k):
        _load(k, chunk["inputs"], chunk["targets"], state, chunk["masks"])
        loss = _forward_one(work, w, k, drop)
        _backward_one(work, w, k, drop)
        return loss

    def update(span):
        sum_and_update(work.partials, opt, w.flat, g.flat, lr, chunk["step"], limit, *span)

    with one_blas_thread():  # one BLAS thread per unit
        for n in range(losses.shape[0]):
            if wraps(position, T, piece):
                position = 0
                state[:] = 0
            window = data[starts + position]              # (B, T+1)
            chunk.update(inputs=window[:, :T], targets=window[:, 1:],
                         masks=masks[n] if drop else None, step=step + n + 1)
            work.load(w, threads)
            loss = 0.0
            for part in _run(threads, unit, work.groups):  # in unit order
                loss += part
            losses[n] = loss
            _store(work, state)
            _run(threads, update, ranges)
            position += T
    return position


def _pipelined(data, starts, chunks, state, w, work, threads, progress=None):
    """``evaluate``'s first ``chunks`` chunks for a single unit of streams, its layers in a
    pipeline: at tick k, layer l reads chunk k - l, so that one thread runs layer 0 of a chunk
    while another runs layer 1 of the chunk before. Each chunk in flight has buffers of its
    own (``work``'s unit and L - 1 more like it, all reading ``work``'s transposes of the
    weights), and a layer's state passes from a chunk's buffers to the next chunk's. Every
    layer computes what ``forward`` computes and the chunks' losses are added in order: the
    same bits as one thread. ``state`` (L, S, B, H) is advanced in place; returns the summed
    loss. ``progress(n)``: as ``evaluate``'s, after each tick that finished a chunk."""
    L, T = len(w.layers), work.T
    first = work.groups[0]
    streams, cells = first.streams, work.spec.cell is lstm
    units = [first] + [Group(streams, work.spec, T, work.WxhT.dtype, None, work.columns,
                             first.form) for _ in range(L - 1)]  # (forward only)
    # (chunk c's buffers: units[c % L])
    steps = np.arange(T + 1)
    losses = [0.0] * chunks

    def stage(item):
        l, c = item
        g = units[c % L]
        if l == 0:  # the chunk's inputs and targets (and every layer's state, chunk 0's)
            window = data[(starts + c * T)[:, None] + steps]           # (B, T+1)
            load_unit(window[:, :T], window[:, 1:], state, streams.start, g.x, g.y, g.hs, g.cs)
        if c > 0:   # layer l's state after the chunk before
            g.hs[l, 0] = units[(c - 1) % L].hs[l, T]
            if cells:
                g.cs[l, 0] = units[(c - 1) % L].cs[l, T]
        layer_forward(l, g.x, w.layers[l], work.WxhT, work.WhhT, work.Whp, g.form, work.WupT,
                      work.Wxp, g.hs, g.cs, g.pre, g.hn, g.xin, g.masks, False, g.acc)
        if l == L - 1:
            losses[c] = output_forward(g.form, g.hs[-1], w.Why, work.Wyp, w.by, g.y, g.ps,
                                       g.row_loss)

    for k in range(chunks + L - 1):
        _run(threads, stage, [(l, k - l) for l in range(L) if 0 <= k - l < chunks])
        if progress is not None and k >= L - 1:  # (chunk k - L + 1 has its loss)
            progress(len(starts) * T)
    _store_unit(units[(chunks - 1) % L], T, state)
    loss = 0.0
    for part in losses:
        loss += part
    return loss


def _buffer_bytes(group):
    """The bytes of a unit's chunk buffers, each once (one array may serve as two, as lstm's
    das and dahs; ``tiles.empty``'s are views of a larger one), its gradients left out."""
    owners = {}
    for a in vars(group).values():
        if isinstance(a, np.ndarray):
            owner = a if a.base is None else a.base
            owners[id(owner)] = owner.nbytes
    return sum(owners.values())


def evaluate(data, state, w, work, threads=1, progress=None):
    """reference.evaluate with B = state.shape[2] streams: the summed loss of predicting
    data[1:] as B contiguous streams, each from state[:, :, b] (carried in place): stream b
    predicts the P = n // B characters after position b*P (n = len(data) - 1), T steps at a
    time; the last stream then goes on alone through the n - B*P characters left (at most
    B - 1). With B = 1, one stream through the whole text.

    The units of streams run on ``threads`` threads; a single unit with several layers has
    its layers pipelined over them instead (``_pipelined``). ``progress(n)``, if given, hears
    of the n characters predicted after each chunk."""
    B, T = work.B, work.T
    n = data.shape[0] - 1
    P = n // B
    starts = np.arange(B) * P
    loss = 0.0
    dtype = work.WxhT.dtype
    L = len(w.layers)
    with one_blas_thread():
        work.load(w, threads)  # once: the weights do not change here
        done = 0
        if threads > 1 and L > 1 and len(work.groups) == 1 and P // T > 1 and \
                (L - 1) * _buffer_bytes(work.groups[0]) <= PIPELINE_BYTES:
            loss += _pipelined(data, starts, P // T, state, w, work, min(threads, L), progress)
            done = P // T * T
        for t0 in range(done, P, T):
            m = min(T, P - t0)
            chunk = work if m == T else Work(work.spec, B, m, dtype, False)  # the short last
            window = data[(starts + t0)[:, None] + np.arange(m + 1)]
            loss += forward(window[:, :m], window[:, 1:], state, w, chunk, threads,
                            loaded=chunk is work)
            _store(chunk, state)
            if progress is not None:
                progress(B * m)
        rest = n - B * P
        if rest:
            last = state[:, :, B - 1:].copy()
            chunk = Work(work.spec, 1, rest, dtype, False)
            loss += forward(data[None, B * P:n], data[None, B * P + 1:n + 1], last, w, chunk)
            _store(chunk, last)
            state[:, :, B - 1:] = last
            if progress is not None:
                progress(rest)
    return loss


def sample_buffers(spec, dtype):
    """The buffers ``sample`` takes, for a model laid out by ``spec``."""
    L, H, V, G = spec.num_layers, spec.hidden_size, spec.vocab_size, spec.cell.GATES
    hs = np.empty((L, 2, 1, H), dtype)
    cs = np.empty((L, 2, 1, H), dtype) if spec.cell is lstm else hs
    return (hs, cs, np.empty((1, G * H), dtype), np.empty((1, G * H), dtype),
            np.empty((1, H), dtype), np.empty((1, V), dtype), np.empty(V, np.float64))
