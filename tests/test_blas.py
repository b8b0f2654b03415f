"""The BLAS binding used by the batched kernels: NumPy's own OpenBLAS, or the loop fallback."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from fastrnn.kernels import blas

ROOT = Path(__file__).resolve().parents[1]


@njit(cache=False)
def _call(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc):
    blas.gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_numpy(dtype, ta, tb):
    rng = np.random.default_rng(0)
    M, N, K = 7, 5, 9
    A = rng.random((K, M) if ta else (M, K)).astype(dtype)
    B = rng.random((N, K) if tb else (K, N)).astype(dtype)
    C = rng.random((M, N)).astype(dtype)
    product = (A.T if ta else A) @ (B.T if tb else B)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    expected = product + 0.5 * C
    _call(ta, tb, M, N, K, A, A.shape[1], B, B.shape[1], 0.5, C, N)
    np.testing.assert_allclose(C, expected, rtol=rtol)
    C[:] = np.nan  # with beta = 0, C is not read
    _call(ta, tb, M, N, K, A, A.shape[1], B, B.shape[1], 0.0, C, N)
    np.testing.assert_allclose(C, product, rtol=rtol)


def test_numpys_openblas_is_used_here():
    from threadpoolctl import threadpool_info
    if not any(i.get("internal_api") == "openblas" for i in threadpool_info()):
        pytest.skip("NumPy is not linked to OpenBLAS here")
    assert blas.AVAILABLE


def test_batched_training_without_the_blas_binding_gives_the_same_result():
    # FASTRNN_BLAS=off: the kernels call the loop fallback instead of OpenBLAS.
    code = ("import numpy as np; from fastrnn import CharRNN\n"
            "m = CharRNN(9, hidden_size=12, seq_length=6, batch_size=3, learning_rate=0.01)\n"
            "print(repr(m.train(np.arange(400) % 9 * 7 % 9, 5).tolist()))\n")
    outs = {}
    for setting in ("off", ""):
        env = {**os.environ, "FASTRNN_BLAS": setting, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        outs[setting] = np.array(eval(done.stdout))
    np.testing.assert_allclose(outs["off"], outs[""], rtol=1e-11)
