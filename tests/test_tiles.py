"""kernels/tiles.py: the packed, register-tiled per-step products against NumPy."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from fastrnn.config import NJIT, TOLERANCES
from fastrnn.kernels import tiles

DTYPES = [np.float64, np.float32]


@njit(**NJIT)
def pack(W, transpose, out):
    tiles.pack(W, transpose, out)


@njit(**NJIT)
def product(A, packed, C, backwards=False):
    tiles.product(A, packed, C, backwards)


def packed(W, dtype, transpose=False):
    """W (K, N) packed by the kernel; every element of the buffer first NaN, so one left
    unwritten shows."""
    K, N = W.shape
    out = np.full(tiles.packed_shape(K, N, dtype), np.nan, dtype)
    pack(np.ascontiguousarray(W.T) if transpose else W, transpose, out)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_starts_on_a_cache_line(dtype):
    """tiles.empty: the shape and dtype asked for, writable, starting on a 64-byte line
    (np.empty starts on a 16-byte boundary: 20 arrays of odd sizes all on a line by chance is
    a 4^-20 event), and each array its own memory."""
    arrays = [tiles.empty((n, 3), dtype) for n in range(1, 21)]
    for n, a in enumerate(arrays, 1):
        assert a.shape == (n, 3) and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % tiles.LINE == 0
        a[...] = n
    for n, a in enumerate(arrays, 1):
        assert (a == n).all()
    assert tiles.empty((2, 0, 5), dtype).shape == (2, 0, 5)  # (no element, no address)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("K,N", [(5, 37), (40, 70), (256, 64)])
def test_pack_cuts_columns_into_panels_padded_with_zeros(dtype, transpose, K, N):
    W = np.arange(K * N, dtype=dtype).reshape(K, N) + 1
    out = packed(W, dtype, transpose)
    NR = tiles.panel_width(dtype)
    assert out.shape == (-(-N // NR), K, NR)
    flat = np.concatenate(list(out), axis=1)          # (K, panels * NR)
    np.testing.assert_array_equal(flat[:, :N], W)
    assert not flat[:, N:].any()


@njit(**NJIT)
def transpose(W, out):
    tiles.transpose(W, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("R,C", [(1, 1), (3, 5), (8, 8), (16, 16), (17, 33), (64, 48),
                                 (100, 37), (1024, 65), (65, 256)])
def test_transpose_copies_every_element_and_writes_nothing_else(dtype, R, C):
    """Whole blocks of a vector's elements square (8 or 16 float32, 4 or 8 float64) and the
    edges around them, into and out of views with rows apart: out = W^T bit for bit, and
    the buffer around out untouched."""
    W = np.random.default_rng([R, C]).standard_normal((R, C)).astype(dtype)
    transpose(W, out := np.full((C, R), np.nan, dtype))
    np.testing.assert_array_equal(out, W.T)
    source = np.zeros((R + 2, C + 9), dtype)
    source[1:R + 1, 3:C + 3] = W
    around = np.full((C + 3, R + 7), np.nan, dtype)
    transpose(source[1:R + 1, 3:C + 3], around[1:C + 1, 2:R + 2])
    np.testing.assert_array_equal(around[1:C + 1, 2:R + 2], W.T)
    around[1:C + 1, 2:R + 2] = np.nan
    assert np.isnan(around).all()


def test_transpose_refuses_operands_it_cannot_read():
    W = np.ones((3, 4))
    for source, out in ((W, np.empty((3, 4))), (W, np.empty((4, 3))[:, ::-1]),
                        (np.ones((3, 8))[:, ::2], np.empty((4, 3))),
                        (W, np.lib.stride_tricks.as_strided(np.empty(40), (4, 3), (28, 8))),
                        (np.lib.stride_tricks.as_strided(np.ones(40), (3, 4), (28, 8)),
                         np.empty((4, 3)))):
        with pytest.raises(ValueError, match="tiles.transpose"):
            transpose(source, out)
    with pytest.raises(TypeError, match="float32 or float64"):
        transpose(W, np.empty((4, 3), np.float32))
    read_only = np.empty((4, 3))
    read_only.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        transpose(W, read_only)


@njit(**NJIT)
def transpose_a_temporary(n, out):
    tiles.transpose(np.full((n, n), 3.0), out)


def test_transpose_takes_what_it_can_read():
    """Zero-size operands (NumPy gives them any strides), a column or a row whose other
    stride is never used, rows in reverse order, and a temporary source (kept alive until
    the kernel has read it: 2,000 x 2,000 is freed, not pooled, by the allocator)."""
    for R, C in ((0, 5), (5, 0), (0, 0)):
        transpose(np.ones((R, C)), np.ones((C, R)))
    column = np.arange(30.0).reshape(10, 3)[:, :1]
    transpose(column, row := np.full((1, 10), np.nan))
    np.testing.assert_array_equal(row, column.T)
    transpose(row, back := np.full((10, 1), np.nan))
    np.testing.assert_array_equal(back, column)
    W = np.arange(40.0).reshape(5, 8)
    transpose(W[::-1], out := np.full((8, 5), np.nan))
    np.testing.assert_array_equal(out, W[::-1].T)
    transpose_a_temporary(2000, out := np.zeros((2000, 2000)))
    assert (out == 3.0).all()


def test_pack_leaves_panels_past_the_last_column_zero():
    """An out with more panels than W's columns fill (``product`` takes any P NR >= N)."""
    NR = tiles.panel_width(np.float64)
    W = np.arange(4.0 * (NR + 3)).reshape(NR + 3, 4) + 1
    out = np.full((3, 4, NR), np.nan)
    pack(W, True, out)
    np.testing.assert_array_equal(np.concatenate(list(out), axis=1)[:, :NR + 3], W.T)
    assert not out[1, :, 3:].any() and not out[2].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5, 8, 13, 16, 17])
@pytest.mark.parametrize("K,N", [(1, 1), (5, 7), (17, 33), (64, 256), (20, 64), (9, 500)])
def test_product_equals_numpy_and_rows_are_independent(dtype, M, K, N):
    """Any M (whole and edge blocks of rows; fewer rows than MR have blocks of their own,
    several panels wide: ``tiles.BLOCKS``), K and N (whole and edge panels, whole and partial
    groups of panels); each row of the result has the bits of that row multiplied alone (a
    row never depends on the others, so a unit's result does not depend on how many streams
    share its blocks), and the panels taken in either order give the same bits."""
    rng = np.random.default_rng([M, K, N])
    A, W = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    C = np.full((M, N), np.nan, dtype)
    product(A, packed(W, dtype), C)
    np.testing.assert_allclose(C, A.astype(np.float64) @ W.astype(np.float64),
                               **TOLERANCES[np.dtype(dtype)])
    reverse = np.full((M, N), np.nan, dtype)
    product(A, packed(W, dtype), reverse, True)
    np.testing.assert_array_equal(reverse, C)
    for i in range(M):
        row = np.full((1, N), np.nan, dtype)
        product(A[i:i + 1].copy(), packed(W, dtype), row, i % 2 == 1)
        np.testing.assert_array_equal(row[0], C[i])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [12, 1])
def test_product_reads_and_writes_views_in_place(dtype, M):
    """A and C as views with row strides of their own (as the kernels pass hs[l, t] and
    buffers), in blocks of several rows and in one row's blocks; nothing outside C's view is
    written."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((M, 40)).astype(dtype)[:, 3:35]
    W = rng.standard_normal((32, 148)).astype(dtype)
    big = np.zeros((M, 160), dtype)
    product(A, packed(W, dtype, transpose=True), big[:, 5:153])
    np.testing.assert_allclose(big[:, 5:153], A.astype(np.float64) @ W,
                               **TOLERANCES[np.dtype(dtype)])
    assert not big[:, :5].any() and not big[:, 153:].any()


def test_blocks_of_few_rows_keep_the_accumulators_of_a_whole_block():
    """Every block shape holds MR NV accumulators; the first holds one row, each next twice the
    rows of the one before, the last MR rows in one panel (so M rows compute at most 2M - 1)."""
    assert tiles.BLOCKS[0][0] == 1 and tiles.BLOCKS[-1] == (tiles.MR, 1)
    assert all(rows * width == tiles.MR for rows, width in tiles.BLOCKS)
    assert all(b[0] == 2 * a[0] for a, b in zip(tiles.BLOCKS, tiles.BLOCKS[1:]))


def test_product_refuses_operands_it_cannot_read():
    """Strided rows, panels that are not one whole array, shapes or types that do not fit:
    a clear error, not a product of the wrong elements."""
    W = np.ones((8, 40), np.float32)
    A, C = np.ones((4, 16), np.float32), np.zeros((4, 40), np.float32)
    with pytest.raises(ValueError, match="contiguous"):
        product(A[:, ::2], packed(W, np.float32), C)        # rows not contiguous
    with pytest.raises(ValueError, match="shapes"):
        product(A[:, :7], packed(W, np.float32), C)         # K = 7 against a packed K = 8
    with pytest.raises(ValueError, match="shapes"):
        product(A[:, :8], packed(W[:, :20], np.float32), C)  # N = 40 against 20 columns
    panels = packed(W, np.float32)
    with pytest.raises(ValueError, match="packed contiguous"):
        product(A[:, :4], panels[:, :4], C)                 # panels of 8 rows seen as 4
    wide = np.zeros(panels.shape[:2] + (2 * panels.shape[2],), np.float32)
    with pytest.raises(ValueError, match="shapes"):
        product(A[:, :8], wide, C)                           # panels of another width
    with pytest.raises(TypeError, match="float32 or float64"):
        product(A[:, :8].astype(np.float64), panels, C)     # float64 rows, float32 panels


_NARROW = """
import numpy as np
from numba import njit
from fastrnn.kernels import tiles

@njit
def run(W, A, out, C):
    tiles.pack(W, False, out)
    tiles.product(A, out, C, False)

@njit
def transpose(W, out):
    tiles.transpose(W, out)

shape = (tiles.VECTOR_BYTES, tiles.MR, tiles.NV)
assert shape == (32, 4, 3), shape
rng = np.random.default_rng(0)
for dtype in (np.float64, np.float32):
    for M, K, N in ((1, 3, 5), (2, 9, 70), (3, 17, 33), (6, 17, 33), (13, 20, 64), (16, 64, 40)):
        A, W = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
        out = np.full((tiles.panels(N, dtype), K, tiles.panel_width(dtype)), np.nan, dtype)
        C = np.full((M, N), np.nan, dtype)
        run(W, A, out, C)
        np.testing.assert_allclose(C, A.astype(np.float64) @ W, rtol=2e-4, atol=5e-5)
        transpose(W, WT := np.full((N, K), np.nan, dtype))
        np.testing.assert_array_equal(WT, W.T)
print("ok")
"""


def test_the_kernel_for_cpus_without_avx512():
    """The 32-byte-vector, 4-row form (what CPUs without AVX-512 compile; forced here by
    FASTRNN_TILE_VECTOR=32 in a process of its own, as the form is fixed at import), and the
    transpose's blocks of 32-byte vectors."""
    env = dict(os.environ, FASTRNN_TILE_VECTOR="32")
    done = subprocess.run([sys.executable, "-c", _NARROW], env=env, capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


_CACHED = """
import numpy as np
from fastrnn.kernels import tiles
from tests.test_tiles import packed, product
A = np.ones((3, 8), np.float32)
C = np.full((3, 40), np.nan, np.float32)
product(A, packed(np.ones((8, 40), np.float32), np.float32), C)
assert (C == 8).all(), C
print(tiles.panel_width(np.float32))
"""


def test_a_kernel_cached_at_one_tile_width_is_compiled_again_at_the_other(tmp_path):
    """tiles.product checks its panels' width against a constant of the machine code that
    calls it; FASTRNN_TILE_VECTOR changes that width, and with it the cache's key
    (kernels/caching.py's SETTINGS): a cache written at one width and read at the other had
    every tiled product refused ("the shapes must be ..."). Both widths, twice each, in one
    cache directory."""
    if tiles.VECTOR_BYTES != 64:
        pytest.skip("one width only on a CPU without AVX-512")
    widths = []
    for vector in (None, "32", None, "32"):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
        env.pop("FASTRNN_TILE_VECTOR", None)
        if vector:
            env["FASTRNN_TILE_VECTOR"] = vector
        done = subprocess.run([sys.executable, "-c", _CACHED], env=env, capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        widths.append(int(done.stdout))
    assert widths == [32, 24, 32, 24]
