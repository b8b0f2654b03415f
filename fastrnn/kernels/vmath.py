"""Vectorisable exp, tanh and 1/sqrt for the CPU kernels.

Numba compiles ``math.exp``/``math.tanh`` to scalar library calls that LLVM cannot vectorise
(about 7 ns each, a quarter of a training step at H=100). These versions are straight-line
arithmetic that LLVM turns into SIMD code. They work in float64 (accurate to a few ulp) and
keep NaN and inf visible, so a diverging run is still detected.

They are compiled with the kernels' fast-math flags, which let LLVM merge the two-constant range
reduction of ``exp``: for |x| > 30 its relative error grows to ~2e-14 (at |x| = 700). Inside
the kernels that only touches probabilities below e**-30, where it is harmless; without
reassociation LLVM stops vectorising ``tanh``.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .options import NJIT

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01      # fdlibm's split of ln 2
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -708.0                         # below this, exp underflows a float64


# Taylor coefficients 1/n!, highest degree first, for Horner's rule.
_EXP_COEFFS = tuple(1.0 / math.factorial(n) for n in range(13, -1, -1))       # degree 13
_EXPM1_COEFFS = tuple(1.0 / math.factorial(n) for n in range(14, 0, -1))      # x * (degree 13)
# (LLVM unrolls Horner loops over at most 14 coefficients; longer ones stay scalar.)


@njit(**NJIT)
def _horner(coeffs, x):
    p = 0.0
    for c in coeffs:  # a constant tuple: fully unrolled
        p = p * x + c
    return p


@njit(**NJIT)
def exp(x):
    """e**x for x <= 709, as float64: range reduction to |r| <= ln2/2, degree-13 Taylor."""
    x = float(x)
    if x < _EXP_MIN:  # NaN compares false and passes through
        x = _EXP_MIN
    k = round(x * _LOG2E)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    scale = np.int64(np.int64(k + 1023) << 52).view(np.float64)  # 2**k built from its bits
    return _horner(_EXP_COEFFS, r) * scale


@njit(**NJIT)
def tanh(x):
    """tanh(x) as float64: (1 - e)/(1 + e) with e = exp(-2|x|); e**z - 1 by Taylor near 0."""
    x = float(x)
    a = abs(x)
    e = exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    z = -2.0 * a if a < 0.25 else -0.5
    m = z * _horner(_EXPM1_COEFFS, z)  # e**z - 1 without cancellation, |z| <= 0.5
    small = -m / (2.0 + m)
    t = small if a < 0.25 else big
    return t if x >= 0 else -t


def rsqrt(x):
    """1 / sqrt(x)."""
    return 1.0 / math.sqrt(x)


@overload(rsqrt)
def _rsqrt(x):
    if x == types.float64:
        def impl(x):
            # float32 estimate (fast SIMD sqrt and divide), then two Newton steps to float64.
            y = float(np.float32(1.0) / math.sqrt(np.float32(x)))
            y = y * (1.5 - 0.5 * x * y * y)
            y = y * (1.5 - 0.5 * x * y * y)
            return 0.0 if x == math.inf else y
        return impl
    return lambda x: np.float32(1.0) / math.sqrt(x)
