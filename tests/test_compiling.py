"""The status line shown while Numba compiles, and only then."""

import numpy as np
from numba import njit

from fastrnn import compiling


def test_a_compilation_is_announced_once_with_its_duration():
    @njit
    def kernel(x):
        return x + 1

    said = []
    with compiling.announce(said.append, "float64"):
        kernel(np.float64(1))
        kernel(np.int64(1))  # a second compilation in the same call: still one status line
    assert len(said) == 2, said
    assert said[0].startswith("compiling kernels for float64 (first run only")
    assert said[1].startswith("compiled in ") and said[1].endswith(" s")


def test_nothing_is_said_when_nothing_compiles():
    @njit
    def kernel(x):
        return x * 2

    kernel(1.0)
    said = []
    with compiling.announce(said.append, "float64"):
        assert kernel(2.0) == 4.0
    assert said == []
