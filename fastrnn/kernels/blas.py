"""Matrix products for ``@njit`` code: the CBLAS ``sgemm``/``dgemm`` of NumPy's own OpenBLAS.

Numba's ``np.dot`` needs SciPy and goes through SciPy's BLAS; fastrnn instead calls the gemm of
the OpenBLAS that NumPy already loaded (found with threadpoolctl), so the batched kernels get
the SIMD kernels NumPy uses and, being ``nogil``, run one stream group per thread with no Python
in between:

    gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc)
        C (M x N, row-major, leading dimension ldc) = op(A) op(B) + beta C

The kernels call the external symbols ``fastrnn_sgemm`` / ``fastrnn_dgemm``, which this module
registers with LLVM at import (so compiled kernels can be cached and reloaded): either NumPy's
OpenBLAS functions or, when none is usable (another BLAS, an unknown calling convention,
``FASTRNN_BLAS=off``), a plain loop nest compiled here. ``AVAILABLE`` says which.
"""

import ctypes
import os
import platform

import numpy as np
from llvmlite import binding as llvm
from numba import carray, cfunc, njit, types
from numba.extending import overload

from ..config import NJIT

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _c_signature(real):
    p = types.CPointer(real)
    i = types.int64
    return types.void(types.int32, types.int32, types.int32, i, i, i, real, p, i, p, i, real, p, i)


def _kernel_signature(real):
    i = types.int64
    return types.void(types.int32, types.int32, types.int32, i, i, i, real, types.intp, i,
                      types.intp, i, real, types.intp, i)  # pointers passed as integers


def _openblas():
    """Addresses of (sgemm, dgemm) in NumPy's OpenBLAS, or None."""
    if os.environ.get("FASTRNN_BLAS", "").lower() in ("0", "off", "no", "false"):
        return None
    from threadpoolctl import threadpool_info
    x86_64 = platform.machine().lower() in ("x86_64", "amd64") and os.name == "posix"
    for info in threadpool_info():
        if info.get("internal_api") != "openblas":
            continue
        try:
            lib = ctypes.CDLL(info["filepath"])
        except OSError:
            continue
        # ILP64 symbols take 64-bit integers; plain LP64 ones read the low half of each 64-bit
        # argument slot, which only the x86-64 System V calling convention guarantees.
        for s_name, d_name, ok in (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
                                   ("cblas_sgemm64_", "cblas_dgemm64_", True),
                                   ("cblas_sgemm", "cblas_dgemm", x86_64)):
            if ok and hasattr(lib, s_name) and hasattr(lib, d_name):
                return tuple(ctypes.cast(getattr(lib, n), ctypes.c_void_p).value
                             for n in (s_name, d_name))
    return None


def _loop_gemm(real):
    """A cfunc with CBLAS's row-major gemm signature (alpha = 1), as loops."""
    @cfunc(_c_signature(real), nopython=True)
    def gemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
        a = carray(A, ((K if ta == TRANS else M) * lda,))  # op(A) is M x K
        b = carray(B, ((N if tb == TRANS else K) * ldb,))  # op(B) is K x N
        c = carray(C, (M * ldc,))
        for i in range(M):
            for j in range(N):
                s = 0.0
                for k in range(K):
                    aik = a[k * lda + i] if ta == TRANS else a[i * lda + k]
                    bkj = b[j * ldb + k] if tb == TRANS else b[k * ldb + j]
                    s += aik * bkj
                # as BLAS: with beta = 0, C is not read (it may hold garbage, even NaN)
                c[i * ldc + j] = alpha * s if beta == 0 else alpha * s + beta * c[i * ldc + j]
    return gemm


def _register():
    found = _openblas()
    if found is not None:
        llvm.add_symbol("fastrnn_sgemm", found[0])
        llvm.add_symbol("fastrnn_dgemm", found[1])
        if _self_check():
            return True
    global _LOOPS  # keep the cfuncs alive
    _LOOPS = (_loop_gemm(types.float32), _loop_gemm(types.float64))
    llvm.add_symbol("fastrnn_sgemm", _LOOPS[0].address)
    llvm.add_symbol("fastrnn_dgemm", _LOOPS[1].address)
    return False


_SGEMM = types.ExternalFunction("fastrnn_sgemm", _kernel_signature(types.float32))
_DGEMM = types.ExternalFunction("fastrnn_dgemm", _kernel_signature(types.float64))


def gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc):
    """C = op(A) op(B) + beta C for float32 or float64 arrays (row-major, given leading dims);
    for @njit code only."""
    raise NotImplementedError("blas.gemm is called from @njit code")


@overload(gemm, jit_options=dict(nogil=True))
def _gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc):
    if C.dtype == types.float32:
        def sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc):
            _SGEMM(ROW_MAJOR, TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS,
                   M, N, K, np.float32(1.0), A.ctypes.data, lda, B.ctypes.data, ldb,
                   np.float32(beta), C.ctypes.data, ldc)
        return sgemm

    def dgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc):
        _DGEMM(ROW_MAJOR, TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS,
               M, N, K, 1.0, A.ctypes.data, lda, B.ctypes.data, ldb, np.float64(beta),
               C.ctypes.data, ldc)
    return dgemm


def _self_check():
    """The registered gemm must agree with NumPy on small products."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a, b = rng.random((5, 3)).astype(dtype), rng.random((4, 3)).astype(dtype)
        c = np.ones((5, 4), dtype)
        _check_call(a, b, c)
        if not np.allclose(c, a @ b.T + 0.5, rtol=1e-5):
            return False
    return True


@njit(**NJIT)
def _check_call(a, b, c):
    gemm(False, True, 5, 4, 3, a, 3, b, 3, 0.5, c, 4)


AVAILABLE = _register()
