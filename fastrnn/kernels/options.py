"""Numba compilation options, set once for every CPU kernel.

- ``fastmath``: reassociation and FMA contraction let LLVM vectorise the dot-product loops;
  ``nnan``/``ninf`` stay off so a diverging run still produces a detectable NaN/inf.
- ``error_model="numpy"``: no zero-division check in every float division (Adagrad's loop stays
  vectorised).
- ``cache=True``: compiled machine code is kept in ``__pycache__`` for the next process.
- ``INLINE`` (every kernel in ``cpu.py``): a kernel called from another kernel is inlined at
  Numba's IR level instead of being called. Numba links a called kernel into its caller as a
  weak symbol: in the process that compiles, the call resolves to the callee's own separately
  optimised copy; in a process that loads the caller from the cache, to the copy inside the
  caller. With fast-math the two copies may round differently (a few ulp), which made a run
  resumed from the cache drift from the run that compiled. Inlined, each kernel's machine code
  is the same in both cases, at the price of a longer first compilation.
"""

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

NJIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
INLINE = dict(NJIT, inline="always")
