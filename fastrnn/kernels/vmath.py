"""Vectorisable exp, tanh and 1/sqrt for the CPU kernels.

Numba compiles ``math.exp``/``math.tanh`` to scalar library calls that LLVM cannot vectorise
(about 7 ns each, a quarter of a training step at H=100). These versions are straight-line
arithmetic that LLVM turns into SIMD code. ``exp`` and ``tanh`` work in float64 (accurate to a
few ulp), or in float32 for float32 arguments (shorter polynomials, twice the SIMD lanes,
accurate to a few float32 ulp); all keep NaN and inf visible, so a diverging run is detected.

They are compiled with the kernels' fast-math flags, which let LLVM merge the two-constant range
reduction of ``exp``: for |x| > 30 its relative error grows to ~2e-14 (at |x| = 700). Inside
the kernels that only touches probabilities below e**-30, where it is harmless; without
reassociation LLVM stops vectorising ``tanh``.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..config import NJIT

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01      # fdlibm's split of ln 2
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -708.0                         # below this, exp underflows a float64
_EXP_MAX = 709.0                          # above this, 2**k's exponent field overflows


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
def _exp64(x):
    """e**x as float64 (x clamped to [-708, 709], as ``_exp32`` clamps): ``_exp64_upto``
    clamped above too. (Unclamped, 2**k was built from bits that wrapped into the sign:
    e**711 came out -1.9e-308, and a sigmoid of -711 1.0.)"""
    x = float(x)
    if x > _EXP_MAX:  # NaN compares false and passes through
        x = _EXP_MAX
    return _exp64_upto(x)


@njit(**NJIT)
def _exp64_upto(x):
    """e**x for x <= 709, as float64: range reduction to |r| <= ln2/2, degree-13 Taylor.
    (tanh's, whose argument is <= 0: with the upper clamp, LLVM left tanh's loops scalar,
    4.5x slower.)"""
    x = float(x)
    if x < _EXP_MIN:  # NaN compares false and passes through
        x = _EXP_MIN
    k = round(x * _LOG2E)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    scale = np.int64(np.int64(k + 1023) << 52).view(np.float64)  # 2**k built from its bits
    return _horner(_EXP_COEFFS, r) * scale


@njit(**NJIT)
def _tanh64(x):
    """tanh(x) as float64: (1 - e)/(1 + e) with e = exp(-2|x|); e**z - 1 by Taylor near 0."""
    x = float(x)
    a = abs(x)
    e = _exp64_upto(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    z = -2.0 * a if a < 0.25 else -0.5
    m = z * _horner(_EXPM1_COEFFS, z)  # e**z - 1 without cancellation, |z| <= 0.5
    small = -m / (2.0 + m)
    t = small if a < 0.25 else big
    return t if x >= 0 else -t


# float32: the same algorithms with float32 constants and shorter polynomials (16 SIMD lanes).
_F = np.float32
_LOG2E_32, _LN2_HI_32, _LN2_LO_32 = _F(1.442695), _F(0.693359375), _F(-2.12194440e-4)
_EXP_MIN_32, _EXP_MAX_32 = _F(-87.0), _F(88.0)
_EXP_COEFFS_32 = tuple(_F(1.0 / math.factorial(n)) for n in range(7, -1, -1))     # degree 7
_EXPM1_COEFFS_32 = tuple(_F(1.0 / math.factorial(n)) for n in range(8, 0, -1))    # x * (degree 7)


@njit(**NJIT)
def _exp32(x):
    """e**x as float32 (x clamped to [-87, 88]): degree-7 Taylor after range reduction."""
    if x < _EXP_MIN_32:  # NaN compares false and passes through
        x = _EXP_MIN_32
    if x > _EXP_MAX_32:
        x = _EXP_MAX_32
    kf = np.rint(x * _LOG2E_32)
    r = (x - kf * _LN2_HI_32) - kf * _LN2_LO_32
    scale = np.int32((np.int32(kf) + np.int32(127)) << np.int32(23)).view(np.float32)
    c = _EXP_COEFFS_32
    p = ((((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) * r + c[6]) * r + c[7]
    return p * scale


@njit(**NJIT)
def _tanh32(x):
    """tanh(x) as float32, as ``_tanh64``."""
    a = abs(x)
    e = _exp32(_F(-2) * a)
    big = (_F(1) - e) / (_F(1) + e)
    z = _F(-2) * a if a < _F(0.25) else _F(-0.5)
    c = _EXPM1_COEFFS_32
    m = z * (((((((c[0] * z + c[1]) * z + c[2]) * z + c[3]) * z + c[4]) * z + c[5]) * z + c[6])
             * z + c[7])
    small = -m / (_F(2) + m)
    t = small if a < _F(0.25) else big
    return t if x >= 0 else -t


def exp(x):
    """e**x: float32 arguments get the float32 algorithm, everything else float64."""
    return math.exp(x)


def tanh(x):
    """tanh(x): float32 arguments get the float32 algorithm, everything else float64."""
    return math.tanh(x)


_JIT = dict(fastmath=NJIT["fastmath"], error_model=NJIT["error_model"])


@overload(exp, jit_options=_JIT)
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: _exp64(x)


@overload(tanh, jit_options=_JIT)
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh64(x)


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

    def impl32(x):
        y = np.float32(1.0) / math.sqrt(x)  # (under fastmath, LLVM's estimate and a Newton
        return np.float32(0.0) if x == math.inf else y  # step: NaN at inf, not 0)
    return impl32


def tiny(x):
    """The smallest normal number of x's floating type (below it, arithmetic turns slow)."""
    return np.finfo(np.asarray(x).dtype).tiny


@overload(tiny, jit_options=_JIT)
def _tiny(x):
    value = float(np.finfo(np.float32 if x == types.float32 else np.float64).tiny)
    cast = np.float32 if x == types.float32 else np.float64
    return lambda x: cast(value)
