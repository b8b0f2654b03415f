"""Checks at the public boundary, so a kernel never sees bad input.

Each failure is a ``ValueError`` with one line naming the argument, what it is and what was
expected.
"""

import math
import os

import numpy as np

from .config import FLOAT_DTYPES

MINCHAR_NAMES = ("Wxh", "Whh", "Why", "bh", "by")  # the drop-in functions' arguments, in order


def not_masked(name, a):
    """A ValueError if ``a`` is a NumPy masked array: the kernels read every value, masked ones
    too (an id masked for being outside the vocabulary was read as one, past the weights)."""
    if isinstance(a, np.ma.MaskedArray):
        raise ValueError(f"{name} is a masked array, whose masked values fastrnn would read "
                         f"too: pass {name}.compressed() (the values not masked) or "
                         f"{name}.filled(value)")


def float_array(name, a, dtype=None, contiguous=True):
    """a must be a C-contiguous float32/float64 ndarray (of ``dtype`` when given; not
    necessarily contiguous if not ``contiguous``: a caller that checks its shape first)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(a).__name__}")
    not_masked(name, a)
    if isinstance(a, np.matrix):  # (its rows are matrices: the kernels' indexing fails)
        raise ValueError(f"{name} is a numpy.matrix: pass np.asarray({name}), an array of its "
                         f"numbers")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} has dtype {a.dtype}; fastrnn supports float32 and float64")
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"{name} has dtype {a.dtype} but the parameters are {dtype}: "
                         f"use one dtype for every array")
    if contiguous:
        c_contiguous(name, a)
    return a


def c_contiguous(name, a):
    """a (an ndarray) must be C-contiguous."""
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous: pass np.ascontiguousarray({name})")


def float_dtype(dtype):
    """np.dtype(dtype), which must be float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in FLOAT_DTYPES:  # (None in FLOAT_DTYPES: NumPy says True)
        raise ValueError(f"dtype must be float32 or float64, got "
                         f"{repr(dtype) if dt is None else dt.name}")
    return dt


def shape(name, a, expected):
    if a.shape != expected:
        raise ValueError(f"{name} has shape {a.shape}, expected {expected}")


def minchar_params(Wxh, Whh, Why, bh, by):
    """Check min-char-rnn's five parameters (the drop-in functions); return (H, V, dtype)."""
    arrays = dict(zip(MINCHAR_NAMES, (Wxh, Whh, Why, bh, by)))
    dtypes = [float_array(name, a, contiguous=False).dtype for name, a in arrays.items()]
    dtype = max(dtypes, key=dtypes.count)  # (most arrays': one of another is named)
    for name, a in arrays.items():
        if a.dtype != dtype:
            others = "the other parameters are" if dtypes.count(dtype) == 4 else \
                "most of the parameters are"
            raise ValueError(f"{name} has dtype {a.dtype} but {others} {dtype}: use one dtype "
                             f"for every array")
    if Wxh.ndim != 2:
        raise ValueError(f"Wxh has shape {Wxh.shape}, expected (hidden_size, vocab_size)")
    H, V = Wxh.shape
    if H < 1 or V < 2:
        raise ValueError(f"Wxh has shape {Wxh.shape}: need hidden_size >= 1 and vocab_size >= 2")

    def sized(H, V):
        shape("Whh", Whh, (H, H))
        shape("Why", Why, (V, H))
        column("bh", bh, H)
        column("by", by, V)

    try:
        sized(H, V)
    except ValueError as e:  # (the sizes are Wxh's: a wrong Wxh made Why look wrong)
        try:
            sized(V, H)
        except ValueError:
            raise ValueError(f"{e}: hidden_size {H} and vocab_size {V}, as Wxh's shape "
                             f"{Wxh.shape} says") from None
        raise ValueError(f"Wxh has shape {Wxh.shape}, expected {(V, H)}, as the other "
                         f"parameters say (hidden_size {V}, vocab_size {H}): a transposed "
                         f"Wxh?") from None
    for name, a in arrays.items():  # (after the shapes: Wxh.T is named as transposed)
        c_contiguous(name, a)
    return H, V, dtype


def column(name, a, n):
    """a is a column of n values: shape (n, 1) as min-char-rnn uses, or (n,)."""
    if a.shape not in ((n, 1), (n,)):
        raise ValueError(f"{name} has shape {a.shape}, expected ({n}, 1)")


def hidden(name, h, H, dtype):
    float_array(name, h, dtype)
    column(name, h, H)
    return h


def indices(name, x, V):
    """x (list or integer array) as a 1-D intp array of ids in [0, V)."""
    not_masked(name, x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer character ids, got dtype {x.dtype}")
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a list or array of integer ids ({exc})") from None
        if arr.size and arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer character ids, got {arr.dtype} values")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one character id")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= V:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds id {bad}, outside the vocabulary [0, {V})")
    return arr.astype(np.intp, copy=False)


def is_integer(value):
    """Whether value is a Python or NumPy integer (not a bool, which Python counts as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def shown(value, most=200):
    """repr(value) for a message, cut to ``most`` characters (a refused field may be a list of
    millions; an int past 4,300 digits has no repr at all, Python's limit)."""
    try:
        text = repr(value)
    except ValueError:
        return f"an integer of {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    return text if len(text) <= most else f"{text[:most - 5]} ...{text[-1]}"


def positive(name, value, kind=float):
    """value must be a finite number > 0 (an int when kind is int)."""
    if kind is int:
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return int(value)
    v = _real(value)
    if v is None or not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {shown(value)}")
    return v


def _real(value):
    """A Python or NumPy real number (not a bool) as a float (an int past float's range as
    inf); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def flag(name, value):
    """value must be a bool (Python's or NumPy's): a string such as "no" would be true."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def sampling(seed_ix, n, vocab_size, temperature, greedy, rng):
    """A sampling call's arguments (``CharRNN.sample``'s and the drop-in ``sample``'s), as
    (seed_ix, n, temperature, greedy, rng): rng None is a fresh generator; n characters' ids and
    uniforms must fit in memory."""
    if not is_integer(seed_ix) or not 0 <= seed_ix < vocab_size:
        raise ValueError(f"seed_ix must be a character id in [0, {vocab_size}), got {seed_ix!r}")
    if not is_integer(n) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    sample_fits(n)
    temperature = positive("temperature", temperature)
    greedy = flag("greedy", greedy)
    rng = np.random.default_rng() if rng is None else rng
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return int(seed_ix), int(n), temperature, greedy, rng


def sample_fits(n):
    """Refuses (NotEnoughMemory) a sample of n characters whose ids and uniforms would not fit
    in the memory available."""
    large_fits(SAMPLE_BYTES_PER_CHAR * int(n), f"sampling {int(n):,} characters")


def greedy_alone(greedy, ignored):
    """Refuses ``greedy`` sampling with settings that would change nothing (``ignored``: how
    the caller was given them, e.g. ["temperature=0.5"])."""
    if greedy and ignored:
        raise ValueError(f"greedy=True takes the most likely character: "
                         f"{' and '.join(ignored)} would change nothing (drop "
                         f"{'them' if len(ignored) > 1 else 'it'}, or greedy=True)")


def lost_in(rate, dtype):
    """What a learning rate becomes in ``dtype`` where it is not a number there: "0" (too
    small to move any weight) or "infinite"; else None."""
    with np.errstate(over="ignore"):  # (too large for the dtype: inf, not 0)
        cast = np.dtype(dtype).type(rate)
    return "0" if cast == 0 else "infinite" if np.isinf(cast) else None


def vanishes(rate, dtype):
    """Whether a learning rate is 0 in ``dtype`` (too small to move any weight)."""
    return lost_in(rate, dtype) == "0"


def rate(name, value, dtype, zero=False):
    """A positive learning rate that is neither 0 nor infinite in ``dtype``; with ``zero`` (a
    schedule's rate for one call, which may end at 0), also 0 itself: then 0.0. (A rate of
    1e-50 in float32 stays an error: asked to move the weights, it would not.)"""
    if zero and not isinstance(value, bool) and \
            isinstance(value, (int, float, np.integer, np.floating)) and value == 0:
        return 0.0
    value = positive(name, value)
    if lost := lost_in(value, dtype):
        raise ValueError(f"{name} {value:g} is {lost} in {np.dtype(dtype).name}")
    return value


def clip(name, value, dtype):
    """A gradient clip: a finite number >= 0 (0: no clipping) that is neither 0 nor infinite
    in ``dtype`` when it is not 0 itself (a clip of 1e-50 in float32 would hold every gradient
    at 0); as a float."""
    v = _real(value)
    if v is None or not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0: no clipping), got "
                         f"{shown(value)}")
    if lost := clip_lost(v, dtype):
        raise ValueError(f"{name} {v:g} {lost}")
    return v or 0.0  # (-0.0 as 0.0)


def clip_lost(clip, dtype, whose=""):
    """What is wrong with a gradient clip >= 0 in ``dtype`` ("is 0 in float32: ..."; ``whose``
    after the dtype's name), or None."""
    lost = lost_in(clip, dtype) if clip else None
    return lost and f"is {lost} in {np.dtype(dtype).name}{whose}" + (
        ": it would hold every gradient at 0" if lost == "0" else ": give 0 for no clipping")


def available_memory():
    """Bytes of memory the machine can still give a process (Linux: MemAvailable; elsewhere the
    free physical pages), or None where the system does not say; at most what this process's
    address-space limit (``ulimit -v``) leaves it, where it has one."""
    machine = _machine_memory()
    left = _address_space_left()
    if left is None:
        return machine
    return left if machine is None else min(machine, left)


def _machine_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left():
    """RLIMIT_AS's soft limit less the process's size now (VmSize), or None: no limit, or a
    system that does not say (a run under ``ulimit -v`` was admitted by the check, then ran
    out of memory part-way)."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(0, limit - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return None


def human_bytes(n):
    """'1.5 GiB'; past 1024 EiB, '2.1e+25 bytes' (not a number of 20 digits)."""
    if n >= 1024 ** 7:
        return f"{float(n):.2g} bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


LARGE = 1 << 23  # bytes: less than any machine has free


SAMPLE_BYTES_PER_CHAR = 16  # a sampled character's id (int64) and uniform (float64)


def large_fits(need, what):
    """``fits`` for a call on a hot path (a one-chunk ``train``, a short ``sample``): only a
    ``need`` past LARGE is checked, since the check reads /proc (26 us, against ~300 us for a
    chunk)."""
    if need > LARGE:
        fits(need, what)


class NotEnoughMemory(ValueError):
    """``fits``' refusal: more memory than is available now."""


def fits(need, what):
    """NotEnoughMemory (a ValueError, one line) when ``need`` bytes exceed the memory available
    now, before anything that large is allocated; ``what`` names what would need it."""
    available = available_memory()
    if available is not None and need > available:
        raise NotEnoughMemory(f"{what} needs about {human_bytes(need)} of memory; this machine "
                              f"has {human_bytes(available)} available")
