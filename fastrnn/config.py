"""Every default, limit and tunable of fastrnn's model, kernels and training, in one place.

The oracle, the kernels (CPU and CUDA), the model, the command lines and the tests import
their numbers from here, so that a value is changed once and every layer sees it. (A
command's own thresholds for what it says, and when, stay beside its code.)
"""

import numpy as np

# --- The model's mathematics ------------------------------------------------------------------
CLIP = 5.0                      # gradients are clipped to [-CLIP, CLIP] before every update
                                # (min-char-rnn's, and the default of a model's grad_clip)
INIT_SCALE = 0.01               # min-char-rnn's weights: N(0, 1) * 0.01; biases 0
ADAGRAD_EPS = 1e-8              # min-char-rnn's Adagrad
RMSPROP_DECAY, RMSPROP_EPS = 0.95, 1e-8               # char-rnn's RMSprop
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8   # PyTorch's Adam defaults
RMSPROP_RATE, ADAM_RATE = 0.002, 0.002                # their usual learning rates (char-rnn's,
                                                      # torch-rnn's); Adagrad's is MODEL_DEFAULTS'

# --- Defaults of a model and its training run (min-char-rnn's) ----------------------------------
MODEL_DEFAULTS = {"cell": "rnn", "hidden_size": 100, "seq_length": 25, "learning_rate": 0.1,
                  "dtype": "float64", "seed": 0, "batch_size": 1, "optimizer": "adagrad",
                  "num_layers": 1, "dropout": 0.0, "grad_clip": CLIP}
COUNT_MAX = 1 << 62             # the most updates (and the furthest position) a model counts:
                                # past it no run goes, and int64 arithmetic would overflow
MASK_ELEMENTS = 1 << 22         # dropout mask elements drawn per kernel call, at most (chunks
                                # are grouped so; 32 MiB of float64 draws)
SAMPLE_CALL_CHARS = 1024        # characters ``CharRNN.sample`` draws per kernel call, at most
                                # (the state and last id carried: the same text as one call;
                                # a training run's samples are drawn a call at a time),
                                # so that Ctrl-C is heard within ~0.2 s (a 2 x 384 LSTM: 169 us
                                # a character; one call of 10**7 was minutes it could not stop)
SAMPLE_CALL_MACS = 1 << 31      # ...and no more than make this many multiply-adds (about one a
                                # parameter a character), but one
SAMPLE_LENGTH_MAX = 1_000_000   # characters of a training run's samples, at most (the printed
                                # preview; ``fastrnn.sample`` writes a text of any length)
DIVERGED_LOSS = 100             # a training chunk whose loss per character is over this many
                                # times ln(vocabulary size), a uniform guess's, has diverged
                                # (as one whose loss or parameters are inf or NaN): finite
                                # losses of 1e30 nats come from weights blown up just as far
DATA_DEFAULTS = {"val_fraction": 0.1, "encoding": "utf-8"}
DEFAULT_ITERATIONS = 50_000     # ``python -m fastrnn.train``'s run, unless given
LOSS_ENTRIES = 1 << 16          # a run's loss history keeps one entry per iteration up to this
                                # many (512 KiB), then means of 2, 4, ... (metrics.LossHistory)
RUN_TEXT_INLINE = 1 << 20       # a checkpoint's run record in its metadata (NumPy's text, 4 bytes
                                # a character) up to this many characters of JSON; a longer one,
                                # a long run's records, as UTF-8 bytes of its own (format 5)
# what a run does every so often, and its defaults; saved, and kept by a resumed run
CADENCE = {"eval_every": 5000, "sample_every": 5000, "sample_length": 200,
           "checkpoint_every": 5000}
DTYPES = ("float64", "float32")
FLOAT_DTYPES = tuple(np.dtype(d) for d in DTYPES)
GPU_DTYPE = "float32"           # the default dtype on backend "cuda"
EVAL_STEPS = 256                # evaluation reads a text this many steps per kernel pass
EVAL_CALL_STEPS = 1 << 18       # ...and min-char-rnn's model on the CPU at most this many per
                                # kernel call (a multiple of EVAL_STEPS: the same sums), so that
                                # a second Ctrl-C does not wait for a whole long held-out text
EVAL_CALL_MACS = 1 << 31        # ...and no more steps than make this many multiply-adds, H(H+V)
                                # a step, but one pass (at H = 1024 one call was 26 s, deaf to
                                # Ctrl-C; ~0.5 s now)

# --- Numba, for every CPU kernel ----------------------------------------------------------------
# fastmath: reassociation and FMA contraction let LLVM vectorise the dot-product loops;
# nnan/ninf stay off, so a diverging run still produces a detectable NaN/inf.
# error_model="numpy": no zero-division check in every float division.
# cache=True: compiled machine code is kept for the next process (where: kernels/caching.py,
# NUMBA_CACHE_DIR if set, else __pycache__ or a user cache directory).
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
NJIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
# Every kernel called from another kernel is inlined at Numba's IR level. Numba links a called
# kernel into its caller as a weak symbol: in the process that compiles, the call resolves to
# the callee's own separately optimised copy; in a process that loads the caller from the
# cache, to the copy inside the caller. With fast-math the two may round differently (a few
# ulp), which made a run resumed from the cache drift from the run that compiled. Inlined, a
# kernel's machine code is the same in both cases. (Not inlined here: ``tiles.product``,
# ``tiles.transpose`` and ``blas.gemm``, which do no floating-point arithmetic: they check their
# operands and call LLVM IR or OpenBLAS; and vmath's exp/tanh/tiny overloads and scalar.py's
# register_jitable formulas, small functions LLVM inlines. A test compares the bits both ways:
# tests/test_cli.py::test_kernels_compiled_now_and_loaded_from_the_cache_give_the_same_bits.)
INLINE = dict(NJIT, inline="always")

# --- Fine-tuning ---------------------------------------------------------------------------------
FINE_TUNE_DIVISOR = 10          # a fine-tune's learning rate, unless given: the checkpoint's
                                # (a fine-tune's: its model's before any, checkpoint.lineage)
                                # divided by this (a fresh optimizer's first steps at the full
                                # rate undo much of what the model learnt: README, Fine-tuning)

# --- Mini-batches on the CPU ------------------------------------------------------------------
# A chunk of B streams is cut into work units fixed by B and the model's size, never by the
# thread count, so any number of threads computes the same bits (each unit's arithmetic is
# fixed; sums over units run in unit order). Threads take a phase's units in turn.
STREAMS_PER_UNIT = 16           # streams a unit runs through the chunk together (its per-step
                                # products are (16, H) x (H, H): OpenBLAS's float32 kernels
                                # lose about half their speed below 16 rows, measured)
TILE_ROWS = 1                   # units of this many streams or more multiply with
                                # ``kernels/tiles.py``'s packed micro-kernel (per step by the
                                # recurrent weights, and the whole chunk's products), smaller
                                # ones through OpenBLAS (the knob for a CPU where OpenBLAS wins;
                                # tests set it to reach both). Measured, tiles against OpenBLAS:
                                # AMD EPYC Zen 3 (AVX2): 1.3-1.6x at 16 rows, 4.2-7.0x at one;
                                # Intel Xeon (AVX-512): 1.8-2.1x at 16 rows, 0.8-4.7x at 2-4
                                # (OpenBLAS's own times vary 2x between runs there), a
                                # one-stream LSTM chunk 1.4-1.5 ms against 1.8; AMD EPYC Zen 5
                                # (AVX-512, NumPy's OpenBLAS on 32-byte vectors): 2.7-3.0x at 16
                                # rows, the whole chunk's products 1.5-2.1x (tile_product.py,
                                # cell_profile.py in benchmarks/)
PIPELINE_BYTES = 1 << 28        # validation of one stream runs its layers as a pipeline on
                                # several threads only while its L - 1 extra chunk buffers take
                                # at most this (a chunk in flight per layer: L^2 for deep models)
UPDATE_UNIT = 1 << 18           # parameters a task sums over the stream units and updates
                                # (below this, one thread does it: a thread hand-off costs more)

# --- Test tolerances: a kernel against the float64 oracle ---------------------------------------
# float64 kernels reorder sums (SIMD) and use their own exp/tanh, so they agree with NumPy to a
# few ulp: rtol 1e-10 leaves room for error growth through a 200-step recurrence. float32
# results are compared with the oracle run in float64 on the same (float32-representable) inputs.
# float32's atol: a weight gradient is a sum of T*B products (340 in tests/test_batch.py's
# largest chunk, of magnitude up to ~1), whose worst-case rounding n*eps is about 2e-5, so an
# element that cancels to near zero can miss by that much; measured, over four seeds of that
# chunk, every product on kernels/tiles.py (the weight gradients' sums included) reaches 0.95 of
# a 2e-5 bound, every product on OpenBLAS 0.56 (an AMD EPYC Zen 5; on an Intel Xeon, with the
# weight gradients on OpenBLAS in both, 1.16 and 0.97).
TOLERANCES = {
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
    np.dtype(np.float32): dict(rtol=2e-4, atol=5e-5),
}
