"""``"numpy" | "numba" | "cuda"`` behind one kernel signature.

Every backend provides the same functions with the same arguments (kernel layout: time steps
are rows, biases and hidden state are 1-D, ``params``/``grads``/``mems`` are tuples in the order
``(Wxh, Whh, Why, bh, by)``, outputs preallocated by the caller):

    forward(inputs, targets, hprev, params, hs, ps) -> loss
    backward(inputs, targets, hs, ps, params, grads, work)          # work: (dys, dhs, dh_next)
    adagrad_update(w, g, m, lr)                                     # one flat array, in place
    adagrad(params, grads, mems, lr)                                # all five, in place
    sample(h, seed_ix, uniforms, params, temperature, greedy, ixes, work)   # (h_next, p, cdf)
    train(data, position, h, params, grads, mems, lr, seq_length, losses, work, opt=None)
                                    -> position     # opt: None (Adagrad) or (id, step, mems2)
    evaluate(data, h, params, work) -> loss                         # work: (hs, ps), L steps
    train_batch(data, position, h, params, grads, mems, lr, seq_length, losses, work, threads,
                opt=None) -> position               # B streams: h (B, H); work: batch_workspace

Backends are imported only when asked for, so the package works where one is missing.
"""

import functools
from types import SimpleNamespace

import numpy as np

from . import reference

BACKENDS = ("numba", "numpy", "cuda")


def _columns(params):
    """Kernel-layout parameters as the reference's min-char-rnn shapes (views, no copies)."""
    Wxh, Whh, Why, bh, by = params
    return Wxh, Whh, Why, bh.reshape(-1, 1), by.reshape(-1, 1)


def _np_forward(inputs, targets, hprev, params, hs, ps):
    loss, hs_ref, ps_ref = reference.forward(inputs, targets, hprev.reshape(-1, 1), *_columns(params))
    T = len(inputs)
    hs[:T + 1] = hs_ref
    ps[:T] = ps_ref
    return loss


def _np_backward(inputs, targets, hs, ps, params, grads, work):
    T = len(inputs)
    Wxh, Whh, Why, _, _ = params
    for out, g in zip(grads, reference.backward(inputs, targets, hs[:T + 1], ps[:T], Wxh, Whh, Why)):
        out[...] = g.reshape(out.shape)


def _np_adagrad_update(w, g, m, lr):
    reference.adagrad([w], [g], [m], lr)


def _np_adagrad(params, grads, mems, lr):
    reference.adagrad(list(params), list(grads), list(mems), lr)


def _np_sample(h, seed_ix, uniforms, params, temperature, greedy, ixes, work):
    out, h_last = reference.sample(h.reshape(-1, 1), seed_ix, uniforms, *_columns(params),
                                   temperature=temperature, greedy=greedy)
    ixes[:len(out)] = out
    h[:] = h_last[:, 0]


def _np_opt(opt):
    """The kernels' ``opt`` tuple as reference.train's (optimizer, mems2, step) arguments."""
    if opt is None:
        return "adagrad", None, 0
    kind, step, mems2 = opt
    return reference.OPTIMIZERS[kind], list(_columns(mems2)), step


def _np_train(data, position, h, params, grads, mems, lr, seq_length, losses, work, opt=None):
    out, position, h_last = reference.train(data, position, h.reshape(-1, 1), list(_columns(params)),
                                            list(_columns(mems)), lr, seq_length, len(losses),
                                            *_np_opt(opt))
    losses[:] = out
    h[:] = h_last[:, 0]
    return position


def _np_evaluate(data, h, params, work):
    loss, h_last = reference.evaluate(data, h.reshape(-1, 1), *_columns(params), chunk=len(work[1]))
    h[:] = h_last[:, 0]
    return loss


def _np_train_batch(data, position, h, params, grads, mems, lr, seq_length, losses, work, threads,
                    opt=None):
    out, position, h_last = reference.train_batch(data, position, h, list(_columns(params)),
                                                  list(_columns(mems)), lr, seq_length, len(losses),
                                                  *_np_opt(opt))
    losses[:] = out
    h[:] = h_last
    return position


def _numpy_backend():
    return SimpleNamespace(name="numpy", forward=_np_forward, backward=_np_backward,
                           adagrad_update=_np_adagrad_update, adagrad=_np_adagrad,
                           sample=_np_sample, train=_np_train, evaluate=_np_evaluate,
                           train_batch=_np_train_batch)


def _numba_backend():
    from .kernels import cpu
    return SimpleNamespace(name="numba", forward=cpu.forward, backward=cpu.backward,
                           adagrad_update=cpu.adagrad_update, adagrad=cpu.adagrad,
                           sample=cpu.sample, train=cpu.train, evaluate=cpu.evaluate,
                           train_batch=_numba_train_batch)


def _numba_train_batch(*args, **kwargs):
    """The mini-batch kernels, imported on first use: their BLAS binding costs start-up time
    (finding and checking NumPy's OpenBLAS) that single-stream users need not pay."""
    from .kernels import batch
    return batch.train(*args, **kwargs)


def _cuda_backend():
    try:
        from . import cuda_backend as cb
    except ImportError as e:
        raise ValueError(f"backend 'cuda' needs numba-cuda ({e}): pip install -e \".[cuda]\"") from None
    ok, why = cb.available()
    if not ok:
        raise ValueError(f"backend 'cuda' is not usable here: {why} (NUMBA_ENABLE_CUDASIM=1 runs "
                         f"it in Numba's slow CUDA simulator)")
    return SimpleNamespace(name="cuda", forward=cb.forward, backward=cb.backward,
                           adagrad_update=cb.adagrad_update, adagrad=cb.adagrad,
                           sample=cb.sample, train=cb.train, evaluate=cb.evaluate,
                           train_batch=cb.train_batch)


@functools.cache
def get_backend(name):
    """The kernel set called ``name``; a clear ValueError for an unknown or unavailable one."""
    if name == "numba":
        return _numba_backend()
    if name == "numpy":
        return _numpy_backend()
    if name == "cuda":
        return _cuda_backend()
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


def workspace(T, H, V, dtype):
    """Buffers for forward + backward over a chunk of T steps: (hs, ps, dys, dhs, dh_next)."""
    return (np.empty((T + 1, H), dtype), np.empty((T, V), dtype), np.empty((T, V), dtype),
            np.empty((T, H), dtype), np.empty(H, dtype))


def batch_workspace(B, T, H, V, dtype):
    """Buffers for ``train_batch`` (the Numba kernels' ``Work``; the NumPy reference needs none)."""
    from .kernels.batch import Work
    return Work(B, T, H, V, dtype)


def evaluate_workspace(L, H, V, dtype):
    """Buffers for ``evaluate`` reading L steps at a time: (hs (L+1, H), ps (L, V))."""
    return np.empty((L + 1, H), dtype), np.empty((L, V), dtype)


def sample_workspace(H, V, dtype):
    """Buffers for ``sample``: (h_next (H,), p (V,), cdf (V,) float64)."""
    return np.empty(H, dtype), np.empty(V, dtype), np.empty(V, np.float64)
