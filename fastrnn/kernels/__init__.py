"""The compiled kernels: CPU (Numba) and CUDA (numba-cuda).

``caching`` is imported first: it keys Numba's on-disk cache on every source file a kernel is
compiled from, which has to be in place before any kernel is defined."""

from . import caching

__all__ = ["caching"]
