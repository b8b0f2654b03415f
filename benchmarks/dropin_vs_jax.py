"""min-char-rnn's training step from its own Python loop: fastrnn's drop-in functions against a
jitted JAX step, side by side (JAX is an optional peer: ``pip install "jax[cpu]"``).

    python benchmarks/dropin_vs_jax.py          # H=100, V=65, T=25, float64, 7 paired rounds

fastrnn: ``lossFun`` then ``adagrad`` (min-char-rnn's calls, arrays in and out). JAX: the same
model (forward and backward by ``jax.value_and_grad`` through a ``lax.scan``, the clip to
[-5, 5], Adagrad) as one ``jax.jit`` function, its result waited for each step. Each round
times 2000 steps of each after a warm-up; the rounds alternate, and the median of the per-round
ratios is reported (the machine is shared and noisy). Before timing, one step from the same
parameters checks that both compute the same loss and update: the loss and every updated
parameter within the tests' float64 tolerances (``fastrnn.config.TOLERANCES``: rtol 1e-10,
atol 1e-12, element by element; measured, the parameters agree to 6e-16). Where they do not,
that line says MISMATCH and names what differs, the rounds are still timed, and the script
exits with status 1 at the end.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastrnn  # noqa: E402
from fastrnn.config import TOLERANCES  # noqa: E402
from benchmarks import describe  # noqa: E402

H, V, T, STEPS, ROUNDS = 100, 65, 25, 2000, 7
NAMES = ("Wxh", "Whh", "Why", "bh", "by")  # min-char-rnn's parameters, in its order
CHECK = TOLERANCES[np.dtype(np.float64)]  # the one-step check's tolerances


def differences(loss, params, jax_loss, jax_params):
    """What of one step differs between fastrnn and JAX beyond CHECK (names; [] if nothing)."""
    pairs = [("loss", loss, jax_loss)] + list(zip(NAMES, params, jax_params))
    return [name for name, a, b in pairs
            if not np.allclose(np.asarray(b, np.float64), a, **CHECK, equal_nan=False)]


def jax_step():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def loss_fn(params, inputs, targets, h):
        Wxh, Whh, Why, bh, by = params

        def cell(h, xy):
            x, y = xy
            h = jnp.tanh(Wxh[:, x] + Whh @ h + bh[:, 0])
            logits = Why @ h + by[:, 0]
            return h, jax.nn.logsumexp(logits) - logits[y]
        h, losses = jax.lax.scan(cell, h, (inputs, targets))
        return losses.sum(), h

    @jax.jit
    def step(params, mems, inputs, targets, h):
        (loss, h), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, inputs, targets, h)
        grads = [jnp.clip(g, -5, 5) for g in grads]
        mems = [m + g * g for m, g in zip(mems, grads)]
        params = [p - 0.1 * g / jnp.sqrt(m + 1e-8) for p, g, m in zip(params, grads, mems)]
        return loss, params, mems, h

    return step, jnp


def main(argv=None):
    argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split())
                            ).parse_args(argv)
    print(describe.header(__file__, argv))
    try:
        step, jnp = jax_step()
    except ImportError as e:
        raise SystemExit(f"JAX is not installed ({e}): pip install 'jax[cpu]'")
    params = list(fastrnn.init_params(H, V, 0))
    mems = [np.zeros_like(p) for p in params]
    inputs, targets = list(np.arange(T) % V), list((np.arange(T) + 1) % V)
    h = np.zeros((H, 1))
    jparams, jmems = [jnp.asarray(p) for p in params], [jnp.asarray(m) for m in mems]
    jin, jtar, jh = jnp.asarray(inputs), jnp.asarray(targets), jnp.zeros(H)

    # the same step from the same start
    loss, *grads, _ = fastrnn.lossFun(inputs, targets, h, *params)
    check_p, check_m = [p.copy() for p in params], [m.copy() for m in mems]
    fastrnn.adagrad(check_p, grads, check_m, 0.1)
    jloss, jp, _, _ = step(jparams, jmems, jin, jtar, jh)
    error = max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(jp, check_p))
    differ = differences(loss, check_p, jloss, jp)
    tolerance = f"rtol {CHECK['rtol']:g}, atol {CHECK['atol']:g}"
    print(f"one step from the same start: loss {loss:.10f} (fastrnn) vs {float(jloss):.10f} "
          f"(JAX); largest parameter difference {error:.1e}: "
          + (f"MISMATCH beyond {tolerance} in {', '.join(differ)}" if differ
             else f"the same within {tolerance}"), flush=True)

    def fast(n):
        for _ in range(n):
            _, *g, _ = fastrnn.lossFun(inputs, targets, h, *params)
            fastrnn.adagrad(params, g, mems, 0.1)

    state = [jparams, jmems]

    def jaxed(n):
        for _ in range(n):
            out = step(state[0], state[1], jin, jtar, jh)
            out[0].block_until_ready()
            state[0], state[1] = out[1], out[2]

    fast(200)
    jaxed(200)
    rows = []
    for _ in range(ROUNDS):
        times = []
        for fn in (fast, jaxed):
            start = time.perf_counter()
            fn(STEPS)
            times.append((time.perf_counter() - start) / STEPS * 1e6)
        rows.append(times)
        print(f"fastrnn {times[0]:.1f} us/step, JAX {times[1]:.1f} us/step, "
              f"ratio {times[1] / times[0]:.2f}", flush=True)
    print(f"median: fastrnn {statistics.median(r[0] for r in rows):.1f} us, JAX "
          f"{statistics.median(r[1] for r in rows):.1f} us, fastrnn is "
          f"{statistics.median(r[1] / r[0] for r in rows):.2f}x JAX (median of per-round ratios)")
    if differ:
        raise SystemExit(f"MISMATCH: fastrnn's and JAX's step differ beyond {tolerance} in "
                         f"{', '.join(differ)} (the timings compare different computations)")


if __name__ == "__main__":
    main()
