"""Numba compilation options, set once for every CPU kernel.

- ``fastmath``: reassociation and FMA contraction let LLVM vectorise the dot-product loops;
  ``nnan``/``ninf`` stay off so a diverging run still produces a detectable NaN/inf.
- ``error_model="numpy"``: no zero-division check in every float division (Adagrad's loop stays
  vectorised).
- ``cache=True``: compiled machine code is kept in ``__pycache__`` for the next process.
"""

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

NJIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
