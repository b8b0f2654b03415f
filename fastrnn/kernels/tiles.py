"""The products of the mini-batch kernels: register-tiled, over weights packed once per chunk
(a unit's per-step recurrent products, and its whole-chunk ones: ``batch.whole_product``,
``batch.weight_gradient``).

Each step of a unit multiplies its Bu (= 16) rows of state by the same recurrent matrix:
h Whh^T forward, (Bu, H) x (H, G*H), and da Whh backward, (Bu, G*H) x (G*H, H). OpenBLAS
repacks that matrix (256 KB to 1 MB) on every call, and at 16 rows the repacking costs about
as much as the multiplication. Here the matrix is packed once per chunk into column panels
(``pack``: panels of ``panel_width`` columns, zero columns past the last), and ``product``
multiplies with a micro-kernel that keeps an ``MR`` x ``panel_width`` block of the result in
vector registers through the whole sum over k: per k, ``NV`` vector loads of the panel, ``MR``
broadcasts of A and ``NV`` ``MR`` fused multiply-adds, nothing else. The panels are the outer
loop and the row blocks the inner one, so a panel is read from memory once per product and
from the nearest cache by the other blocks (W, up to 1 MB, does not stay in a 512 KB L2).
Fewer rows than ``MR`` (one stream: B = 1 training, validation, sampling; or a small unit)
have blocks of their own (``BLOCKS``): 1 row x ``MR`` panels, 2 rows x ``MR / 2``, ..., with
as many accumulators as an ``MR``-row block and few repeated rows to compute (an ``MR``-row
block would compute one row ``MR`` times). The kernels take the panels in alternate
directions from one step to the next (``backwards``), so a product starts with the panels the
one before read last, still in L2: 4.2-7.0x OpenBLAS at one row on an AMD EPYC Zen 3, 2.7-3.4x
before these two changes; at 2-4 rows on an Intel Xeon (AVX-512), 1.4-3.2x faster than with
8-row blocks (about 2x at two rows).

The micro-kernel is LLVM IR built here and compiled by llvmlite for this machine's CPU
(``fastrnn_tile_f32`` / ``fastrnn_tile_f64``, registered with LLVM like ``blas.py``'s symbols,
so that cached kernels find them), with 64-byte vectors on AVX-512 CPUs: Numba's own code
generation keeps to 32-byte vectors there (LLVM's "prefer-256-bit" tuning), which caps a
product at half of what the FMA units do. Elsewhere the vectors are 32 bytes and the blocks
4 rows of 3 vectors (``_host``).

Every element of C is the plain sum over k, in order, of fused A[i, k] W[k, j] products: no
split of k, so a row's result never depends on the other rows (rows past M in the last block
repeat the last row, computed and not stored), nor on the thread that runs it.
``benchmarks/tile_product.py`` times ``product`` against OpenBLAS at the model's shapes.

The panels are allocated on a cache line (``empty``), and the transposes that packing and the
kernels need go through vector registers (``transpose``, IR like the micro-kernel's).
"""

import os

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import overload

from ..config import INLINE


def _host():
    """(LLVM features, vector bytes, rows per block MR, vectors per row NV) for this CPU:
    AVX-512's 32 registers of 64 bytes hold a block of 8 rows x 2 vectors (16 accumulators);
    elsewhere (AVX2's 16 registers of 32 bytes, and other CPUs) 4 rows x 3 vectors (12), the
    rest for the panel's three vectors and the broadcast. (4 x 3 rather than 6 x 2: a unit's
    16 rows are four whole blocks, not 6 + 6 + 4 computed as 18, and one row costs 4 rows'
    work, not 6; 1.3-1.5x OpenBLAS at 16 rows against 1.1-1.4x, on an AMD EPYC Zen 3.)
    ``FASTRNN_TILE_VECTOR=32`` asks for the second on an AVX-512 machine (tests run both)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # a host LLVM cannot describe: its default features
        features = ""
    wide = "+avx512f" in features.split(",") and os.environ.get("FASTRNN_TILE_VECTOR") != "32"
    if wide:
        return features + ",-prefer-256-bit", 64, 8, 2  # 64-byte vectors in registers
    return features, 32, 4, 3


FEATURES, VECTOR_BYTES, MR, NV = _host()
# Block shapes (rows, panels side by side), by the rows M of a product: the first whose rows
# hold M. Each has the MR NV accumulators of an MR-row block; fewer rows take more panels, so
# a product of M < MR rows computes at most 2M - 1 rows, not MR.
BLOCKS = tuple((rows, MR // rows) for rows in (1 << i for i in range(MR.bit_length())))


LINE = 64  # bytes in a cache line


def empty(shape, dtype):
    """np.empty(shape, dtype) starting on a cache line (``LINE`` bytes; NumPy promises 16):
    a packed panel's rows (``panel_width`` elements, a whole number of vectors) then keep
    every vector load of ``product`` inside one line, none straddling two. Off a line, a
    one-row product took 1.6-1.8x as long on an Intel Xeon (AVX-512; ``benchmarks/
    tile_product.py``, "off a line"), where np.empty leaves three arrays in four."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + LINE, np.uint8)
    start = -raw.ctypes.data % LINE
    return raw[start:start + size].view(dtype).reshape(shape)


def panel_width(dtype):
    """Columns of a panel: ``NV`` vectors of ``dtype``."""
    return NV * VECTOR_BYTES // np.dtype(dtype).itemsize


def panels(N, dtype):
    """The number of panels that hold N columns."""
    NR = panel_width(dtype)
    return (N + NR - 1) // NR


def packed_shape(K, N, dtype):
    """The shape of W (K, N) packed (``pack``'s ``out``): (panels, K, panel width); with K and
    N 0, an empty one's."""
    return (panels(N, dtype), K, panel_width(dtype))


def _const(v):
    """An i64 constant."""
    return ir.Constant(ir.IntType(64), v)


def _loop(fn, b, name, start, stop, step):
    """Opens `for i in range(start, stop, step)` (i64) at builder b in function fn; returns
    (i, close): close() ends the loop's body and goes on after it."""
    i64 = ir.IntType(64)
    head, body, done = (fn.append_basic_block(name + end) for end in ("", "_body", "_done"))
    before = b.block
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(i64, name)
    i.add_incoming(start, before)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)

    def close():
        i.add_incoming(b.add(i, step), b.block)
        b.branch(head)
        b.position_at_end(done)
    return i, close


def _transpose_kernel(module, real):
    """Adds to ``module`` the IR of void fastrnn_transpose_<real>(i64 R, i64 C, T* src,
    i64 lds, T* dst, i64 ldd): dst[c, r] = src[r, c] for r < R, c < C (rows ``lds`` and
    ``ldd`` elements apart). Whole blocks of V x V (V elements to a vector) go through V
    vector registers: V loads, log2(V) rounds of two-vector shuffles that each swap the
    off-diagonal halves of blocks of a size (V/2, then V/4, ..., 1: then every element has
    crossed the diagonal), V stores; the edges element by element. A copy: the same bits."""
    T = ir.FloatType() if real == "f32" else ir.DoubleType()
    size = 4 if real == "f32" else 8
    V = VECTOR_BYTES // size
    vec = ir.VectorType(T, V)
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64, i64, T.as_pointer(), i64,
                                                            T.as_pointer(), i64]),
                     name=f"fastrnn_transpose_{real}")
    R, C, src, lds, dst, ldd = fn.args

    def at(b, pointer, row, ld, col):
        return b.gep(pointer, [b.add(b.mul(row, ld), col)])

    def elements(b, r_start, r_stop, c_start, c_stop):
        r, close_r = _loop(fn, b, "er", r_start, r_stop, _const(1))
        c, close_c = _loop(fn, b, "ec", c_start, c_stop, _const(1))
        b.store(b.load(at(b, src, r, lds, c)), at(b, dst, c, ldd, r))
        close_c()
        close_r()

    b = ir.IRBuilder(fn.append_basic_block("entry"))
    whole_r = b.mul(b.sdiv(R, _const(V)), _const(V))
    whole_c = b.mul(b.sdiv(C, _const(V)), _const(V))
    r0, close_r0 = _loop(fn, b, "r0", _const(0), whole_r, _const(V))
    c0, close_c0 = _loop(fn, b, "c0", _const(0), whole_c, _const(V))
    rows = [b.load(b.bitcast(at(b, src, b.add(r0, _const(i)), lds, c0), vec.as_pointer()),
                   align=size) for i in range(V)]
    mask = ir.VectorType(ir.IntType(32), V)
    half = V // 2
    while half:
        top = [lane if not lane & half else V + lane - half for lane in range(V)]
        bottom = [lane + half if not lane & half else V + lane for lane in range(V)]
        for i in range(V):
            if not i & half:
                lo, hi = rows[i], rows[i + half]
                rows[i] = b.shuffle_vector(lo, hi, ir.Constant(mask, top))
                rows[i + half] = b.shuffle_vector(lo, hi, ir.Constant(mask, bottom))
        half //= 2
    for i in range(V):
        b.store(rows[i], b.bitcast(at(b, dst, b.add(c0, _const(i)), ldd, r0), vec.as_pointer()),
                align=size)
    close_c0()
    elements(b, r0, b.add(r0, _const(V)), whole_c, C)   # the block row's last columns
    close_r0()
    elements(b, whole_r, R, _const(0), C)                # the last rows
    b.ret_void()


def _micro_kernel(module, real):
    """Adds to ``module`` the IR of void fastrnn_tile_<real>(i64 M, i64 N, i64 K, T* A,
    i64 lda, T* packed, T* C, i64 ldc, i64 backwards): C (M, N) = A (M, K) W, W (K, N) packed
    in panels of NR = NV V columns, taken last to first if ``backwards`` is not 0."""
    T = ir.FloatType() if real == "f32" else ir.DoubleType()
    size = 4 if real == "f32" else 8
    V = VECTOR_BYTES // size
    NR = NV * V
    vec = ir.VectorType(T, V)
    i64, i32 = ir.IntType(64), ir.IntType(32)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64, i64, i64, T.as_pointer(), i64,
                                                            T.as_pointer(), T.as_pointer(), i64,
                                                            i64]),
                     name=f"fastrnn_tile_{real}")
    M, N, K, A, lda, packed, C, ldc, backwards = fn.args
    fma = ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), name=f"llvm.fma.v{V}{real}")

    def block(name):
        return fn.append_basic_block(name)

    def vector_at(b, pointer, offset):
        return b.bitcast(b.gep(pointer, [offset]), vec.as_pointer())

    def smaller(b, x, y):
        return b.select(b.icmp_signed("<", x, y), x, y)

    def loop(b, name, start, stop, step):
        return _loop(fn, b, name, start, stop, step)

    def products(b, rows, width, spill):
        """The loops of C = A W in blocks of ``rows`` rows x ``width`` panels (``rows * width
        * NV`` accumulators): groups of ``width`` panels outside (in the order ``backwards``
        asks), row blocks inside, so a panel comes from memory once per product and from the
        nearest cache for the other blocks. Panels past the last repeat it, and rows past M
        the last row: computed, not stored."""
        n_panels = b.sdiv(b.add(N, _const(NR - 1)), _const(NR))
        n_groups = b.sdiv(b.add(n_panels, _const(width - 1)), _const(width))
        q, close_groups = loop(b, f"q{rows}", _const(0), n_groups, _const(1))
        g = b.select(b.icmp_signed("!=", backwards, _const(0)),
                     b.sub(b.sub(n_groups, _const(1)), q), q)
        ps = [b.add(b.mul(g, _const(width)), _const(j)) for j in range(width)]
        panel = [b.gep(packed, [b.mul(smaller(b, p, b.sub(n_panels, _const(1))),
                                      b.mul(K, _const(NR)))]) for p in ps]
        r0, close_rows = loop(b, f"r{rows}", _const(0), M, _const(rows))
        a_rows = []
        for i in range(rows):
            r = smaller(b, b.add(r0, _const(i)), b.sub(M, _const(1)))
            a_rows.append(b.gep(A, [b.mul(r, lda)]))
        # for k in range(K): the accumulators are phi nodes (registers) through the loop
        start = b.block
        head, body, done = block(f"k{rows}"), block(f"k{rows}_body"), block(f"k{rows}_done")
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(i64, "k")
        k.add_incoming(_const(0), start)
        acc = {}
        for i in range(rows):
            for j in range(width):
                for v in range(NV):
                    a = acc[i, j, v] = b.phi(vec, f"acc{i}_{j}_{v}")
                    a.add_incoming(ir.Constant(vec, [0.0] * V), start)
        b.cbranch(b.icmp_signed("<", k, K), body, done)
        b.position_at_end(body)
        w = {}
        for j in range(width):
            w_row = b.gep(panel[j], [b.mul(k, _const(NR))])
            for v in range(NV):
                w[j, v] = b.load(vector_at(b, w_row, _const(v * V)), align=size)
        zeros = ir.Constant(ir.VectorType(i32, V), [0] * V)
        for i in range(rows):
            x = b.insert_element(ir.Constant(vec, ir.Undefined), b.load(b.gep(a_rows[i], [k])),
                                 ir.Constant(i32, 0))
            x = b.shuffle_vector(x, ir.Constant(vec, ir.Undefined), zeros)  # broadcast
            for j in range(width):
                for v in range(NV):
                    acc[i, j, v].add_incoming(b.call(fma, [x, w[j, v], acc[i, j, v]]), body)
        k.add_incoming(b.add(k, _const(1)), body)
        b.branch(head)
        b.position_at_end(done)
        # store each panel's block: a whole one straight into C, an edge one through spill
        n_rows = smaller(b, b.sub(M, r0), _const(rows))
        for j in range(width):
            col0 = b.mul(ps[j], _const(NR))
            n_cols = smaller(b, b.sub(N, col0), _const(NR))   # <= 0: a repeated panel
            whole = b.and_(b.icmp_signed("==", n_rows, _const(rows)),
                           b.icmp_signed("==", n_cols, _const(NR)))
            with b.if_else(whole) as (then, otherwise):
                with then:
                    for i in range(rows):
                        row = b.gep(C, [b.add(b.mul(b.add(r0, _const(i)), ldc), col0)])
                        for v in range(NV):
                            b.store(acc[i, j, v], vector_at(b, row, _const(v * V)), align=size)
                with otherwise:
                    for i in range(rows):
                        for v in range(NV):
                            b.store(acc[i, j, v], vector_at(b, spill, _const(i * NR + v * V)),
                                    align=size)
                    i, close_i = loop(b, f"i{rows}_{j}", _const(0), n_rows, _const(1))
                    src = b.gep(spill, [b.mul(i, _const(NR))])
                    dst = b.gep(C, [b.add(b.mul(b.add(r0, i), ldc), col0)])
                    c, close_c = loop(b, f"c{rows}_{j}", _const(0), n_cols, _const(1))
                    b.store(b.load(b.gep(src, [c])), b.gep(dst, [c]))
                    close_c()
                    close_i()
        close_rows()
        close_groups()

    def by_rows(b, shapes):
        """``products`` in the first of ``shapes`` (rows, width) whose rows hold M."""
        (rows, width), rest = shapes[0], shapes[1:]
        if not rest:
            products(b, rows, width, spill)
            return
        with b.if_else(b.icmp_signed("<=", M, _const(rows))) as (fits, more):
            with fits:
                products(b, rows, width, spill)
            with more:
                by_rows(b, rest)

    b = ir.IRBuilder(block("entry"))
    spill = b.alloca(T, size=_const(MR * NR), name="spill")  # edge blocks go through here
    by_rows(b, BLOCKS)
    b.ret_void()


def _compile():
    """Compiles the micro-kernels for this CPU and registers their symbols; returns the
    engine (kept alive: it owns the machine code)."""
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=FEATURES, opt=3, codemodel="jitdefault")
    module = ir.Module(name="fastrnn_tiles")
    for real in ("f32", "f64"):
        _micro_kernel(module, real)
        _transpose_kernel(module, real)
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    engine = llvm.create_mcjit_compiler(parsed, machine)  # the engine owns the machine
    engine.finalize_object()
    for name in (f"fastrnn_{kind}_{real}" for kind in ("tile", "transpose")
                 for real in ("f32", "f64")):
        llvm.add_symbol(name, engine.get_function_address(name))
    return engine


_ENGINE = _compile()
_SIGNATURE = types.void(types.int64, types.int64, types.int64, types.intp, types.int64,
                        types.intp, types.intp, types.int64, types.int64)  # pointers passed as integers
_TILE_F32 = types.ExternalFunction("fastrnn_tile_f32", _SIGNATURE)
_TILE_F64 = types.ExternalFunction("fastrnn_tile_f64", _SIGNATURE)
_COPY = types.void(types.int64, types.int64, types.intp, types.int64, types.intp, types.int64)
_TRANSPOSE_F32 = types.ExternalFunction("fastrnn_transpose_f32", _COPY)
_TRANSPOSE_F64 = types.ExternalFunction("fastrnn_transpose_f64", _COPY)


def transpose(W, out):
    """out (C, R) = W (R, C)^T: the elements of a row adjacent in both, rows any whole number
    of elements apart (negative too). For @njit code only."""
    raise NotImplementedError("tiles.transpose is called from @njit code")


# (``transpose`` and ``product`` are not inlined: a call keeps its arguments alive until it
# returns, where inlined code let Numba free a temporary argument before the kernel read it.)
@overload(transpose, jit_options=dict(nogil=True))
def _transpose(W, out):
    if W.dtype != out.dtype or out.dtype not in (types.float32, types.float64):
        raise TypeError(f"tiles.transpose: W and out must both be float32 or float64, got "
                        f"{W.dtype} and {out.dtype}")
    if not out.mutable:
        raise TypeError("tiles.transpose: out is read-only")
    kernel = _TRANSPOSE_F32 if out.dtype == types.float32 else _TRANSPOSE_F64

    def call(W, out):
        size = out.itemsize
        R, C = W.shape
        if out.shape[0] != C or out.shape[1] != R:
            raise ValueError("tiles.transpose: the shapes must be W (R, C) and out (C, R)")
        if R > 0 and C > 0 and (C > 1 and W.strides[1] != size or R > 1 and out.strides[1]
                                != size or R > 1 and W.strides[0] % size != 0
                                or C > 1 and out.strides[0] % size != 0):
            raise ValueError("tiles.transpose: the elements of a row of W and of out must be "
                             "adjacent, and their rows a whole number of elements apart")
        kernel(R, C, W.ctypes.data, W.strides[0] // size, out.ctypes.data,
               out.strides[0] // size)
    return call


@njit(**INLINE)
def pack(W, transposed, out):
    """out (panels, K, NR) = W (K, N) cut into panels of NR columns, zero past N (panels past
    the last column all zero); with ``transposed``, W is given as its transpose (N, K), the
    elements of its rows adjacent (``transpose``)."""
    # With ``transposed``, a panel is the transpose of NR rows of W (``transpose``, through
    # vector registers); else row k of the panel is a slice of W's row k. (Reading W by its
    # columns instead was 2.2x and 1.4x slower than the scalar loops that read its rows
    # before ``transpose``, for an LSTM's Whh at H = 256 on an AMD EPYC Zen 3.)
    P, K, NR = out.shape
    N = W.shape[0] if transposed else W.shape[1]
    zero = out.dtype.type(0)
    for p in range(P):
        c0 = p * NR
        width = max(0, min(NR, N - c0))
        panel = out[p]
        if transposed:
            transpose(W[c0:c0 + width], panel[:, :width])
        else:
            for k in range(K):
                row, source = panel[k], W[k, c0:c0 + width]
                for j in range(width):
                    row[j] = source[j]
        for k in range(K):
            row = panel[k]
            for j in range(width, NR):
                row[j] = zero


def product(A, packed, C, backwards):
    """C (M, N) = A (M, K) x W, for W (K, N) given ``pack``ed in a (P, K, NR) array of its own
    (``empty``, ``panels``, ``panel_width``); the rows of A and C contiguous.
    ``backwards``: take the panels last to first (the same bits either way; callers alternate
    it step by step, ``t % 2 == 1``). For @njit code only."""
    raise NotImplementedError("tiles.product is called from @njit code")


@overload(product, jit_options=dict(nogil=True))
def _product(A, packed, C, backwards):
    if not (A.dtype == packed.dtype == C.dtype) or C.dtype not in (types.float32,
                                                                  types.float64):
        raise TypeError(f"tiles.product: A, packed and C must all be float32 or float64, got "
                        f"{A.dtype}, {packed.dtype} and {C.dtype}")
    tile = _TILE_F32 if C.dtype == types.float32 else _TILE_F64
    NR = panel_width(np.float32 if C.dtype == types.float32 else np.float64)

    def call(A, packed, C, backwards):
        size = C.itemsize
        M, K = A.shape
        if A.strides[1] != size or C.strides[1] != size or C.shape[0] != M \
                or packed.shape[1] != K or packed.shape[2] != NR \
                or packed.shape[0] * NR < C.shape[1] or packed.strides[2] != size \
                or packed.strides[1] != NR * size or packed.strides[0] != K * NR * size:
            raise ValueError("tiles.product: rows of A and C must be contiguous, packed "
                             "contiguous, and the shapes A (M, K), packed (P, K, NR) with "
                             "P NR >= N, C (M, N)")
        tile(M, C.shape[1], K, A.ctypes.data, A.strides[0] // size, packed.ctypes.data,
             C.ctypes.data, C.strides[0] // size, int(backwards))
    return call
