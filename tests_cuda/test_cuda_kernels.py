"""Every CUDA kernel equal to the NumPy oracle (float64 tightly, float32 to rounding).

The backend is driven through its interface (``fastrnn.backends.base.Backend``):
``get_backend("cuda")`` against ``fastrnn.reference`` / ``get_backend("numpy")``.
"""

import io
import os

import numpy as np
import pytest

import fastrnn
from fastrnn import CharRNN, dropin, optim, reference
from fastrnn.backends import get_backend
from fastrnn.spec import Spec
from tests.helpers import (as64, assert_close, assert_weights_close, random_chunk,
                           random_weights)

DTYPES = [np.float64, np.float32]
# (H, V, T, B): H, V above and below the block size; one stream (min-char-rnn) and several
SHAPES = [(5, 4, 3, 1), (1, 2, 1, 1), (9, 6, 2, 1), (5, 4, 3, 2)]
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


@pytest.fixture(scope="module")
def cuda():
    return get_backend("cuda")


def problem(H, V, T, dtype, B=1, seed=0):
    """Random weights (scale 0.5), a chunk x, y (B, T) and a state (1, 1, B, H)."""
    rng = np.random.default_rng([H, V, T, B, seed])
    w = random_weights(rng, H, V, dtype, 0.5)
    x, y = random_chunk(rng, T, V, B)
    state = (rng.standard_normal((1, 1, B, H)) * 0.5).astype(dtype)
    return w, x, y, state


def assert_states_close(a, b, optimizer, dtype):
    """Every optimizer state buffer of two models, each tensor named (``mWxh``, ``vWhh``...)."""
    assert len(a) == len(b) == len(optimizer.states)
    for name, sa, sb in zip(optimizer.states, a, b):
        assert_weights_close(sa, sb, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("M,N,K", [(5, 7, 9), (1, 1, 1), (8, 4, 3), (3, 9, 12)])
def test_matmul_matches_numpy(M, N, K, ta, tb, dtype):
    """The tiled product behind the output layer and the gradients, every transpose, sizes
    that are and are not multiples of the tile; each output written exactly once."""
    from numba import cuda as nbcuda
    from fastrnn.backends import cuda as cb
    rng = np.random.default_rng([M, N, K, ta, tb])
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    c = nbcuda.to_device(np.full((M, N), np.nan, dtype))
    cb._matmul(nbcuda.to_device(a), ta, nbcuda.to_device(b), tb, c)
    expected = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert_close(c.copy_to_host(), expected, dtype, "C")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,T,B", SHAPES)
def test_forward_backward_match_reference(cuda, H, V, T, B, dtype, recurrence):
    w, x, y, state = problem(H, V, T, dtype, B)
    before = state.copy()
    loss, hs, ps = cuda.forward(w, x, y, state)
    loss_ref, (hs_ref, ps_ref) = reference.forward(as64(w), x, y, state.astype(np.float64))
    assert np.array_equal(state, before), "forward must not change the state it is given"
    assert hs.shape == (1, T + 1, 1, B, H) and ps.shape == (T, B, V), (hs.shape, ps.shape)
    assert hs.dtype == ps.dtype == dtype, (hs.dtype, ps.dtype)
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(hs, hs_ref, dtype, "hs")
    assert_close(ps, ps_ref, dtype, "ps")
    g = Spec("rnn", V, H).zeros(dtype)
    g.flat[...] = np.nan  # every gradient must be written
    cuda.backward(w, x, y, hs, ps, g)
    expected = reference.backward(as64(w), x, y, (hs_ref, ps_ref))
    assert g.flat.dtype == dtype
    assert_weights_close(g, expected, dtype, "d")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_target_whose_probability_underflows_has_a_finite_loss(cuda, dtype):
    """The loss is computed from the logits (max + log sum exp - the target's): a target 800
    nats below the likeliest character, whose probability underflows to 0 in either dtype,
    costs about 800, as on the CPU, not an infinite loss ("training diverged")."""
    w, x, y, state = problem(5, 4, 3, dtype)
    w.by[...] = 0
    w.by[y[0, 1]] = -800  # (the second step's target; x and y are one stream)
    loss, _, ps = cuda.forward(w, x, y, state)
    loss_ref, _ = reference.forward(as64(w), x, y, state.astype(np.float64))
    assert ps[1, 0, y[0, 1]] == 0 and 790 < loss_ref < np.inf
    assert_close(loss, loss_ref, dtype, "loss")


def test_backward_clips_to_five(cuda):
    w, x, y, state = problem(8, 3, 20, np.float64)
    w.flat[...] *= 2
    _, hs, ps = cuda.forward(w, x, y, state)
    hs, ps = hs.copy(), ps.copy()
    g = Spec("rnn", 3, 8).zeros(np.float64)
    cuda.backward(w, x, y, hs, ps, g)
    unclipped = reference.backward(w, x, y, (hs, ps), clip=None)
    assert np.abs(unclipped.flat).max() > 5, "the test must exceed the clip bound"
    expected = Spec("rnn", 3, 8).copy(unclipped)
    np.clip(expected.flat, -5, 5, out=expected.flat)
    assert_weights_close(g, expected, np.float64, "d")


@pytest.mark.parametrize("dtype, clip", [(d, c) for d in DTYPES for c in (5.0, 1.5)])
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_update_matches_reference(cuda, name, dtype, clip):
    """One fused update of every optimizer over the whole flat buffer, and over one tensor's
    values with the gradient clipped first to [-clip, clip] (in place)."""
    optimizer = optim.get(name)
    rng = np.random.default_rng(1)
    spec = Spec("rnn", 4, 5)
    w = random_weights(rng, 5, 4, dtype, 1.0)
    g = random_weights(rng, 5, 4, dtype, 4.0)
    states = [random_weights(rng, 5, 4, dtype, 1.0) for _ in optimizer.states]
    for s in states:
        np.abs(s.flat, out=s.flat)
    step = 3
    w64, g64, s64 = as64(w), as64(g), [as64(s) for s in states]
    reference.update(optimizer, w64, g64, s64, 0.1, step)
    p, m = spec.copy(w), [spec.copy(s) for s in states]
    gg = spec.copy(g)
    cuda.update(optimizer, p.flat, gg.flat, [s.flat for s in m], 0.1, step, 0)
    assert_weights_close(p, w64, dtype, f"{name} ")
    assert_states_close(m, s64, optimizer, dtype)
    assert np.array_equal(gg.flat, g.flat), "without a clip the gradient is left alone"

    # clipped first, over one tensor's values only (Whh)
    assert np.abs(g.layers[0].Whh).max() > clip, "the test must exceed the clip bound"
    clipped = np.clip(g.layers[0].Whh.astype(np.float64), -clip, clip)
    wt = w.layers[0].Whh.astype(np.float64)
    st = [s.layers[0].Whh.astype(np.float64) for s in states]
    optimizer.reference([wt], [clipped.copy()], [[s] for s in st], 0.1, step)
    p, m = spec.copy(w), [spec.copy(s) for s in states]
    gt = g.layers[0].Whh.reshape(-1).copy()
    cuda.update(optimizer, p.layers[0].Whh.reshape(-1), gt,
                [s.layers[0].Whh.reshape(-1) for s in m], 0.1, step, clip)
    assert_close(p.layers[0].Whh, wt, dtype, f"{name} Whh (clipped first)")
    for sname, s, e in zip(optimizer.states, m, st):
        assert_close(s.layers[0].Whh, e, dtype, f"{name} {sname}Whh (clipped first)")
    assert_close(gt, clipped.reshape(-1), dtype, "the gradient, clipped in place")
    for other in ("Wxh", "bh", "Why", "by"):  # the other tensors are not touched
        assert np.array_equal(spec.named(p)[other], spec.named(w)[other]), other


@pytest.mark.parametrize("greedy, temperature", [(False, 1.0), (False, 0.7), (True, 1.0)])
def test_sample_matches_reference(cuda, greedy, temperature):
    w, *_ = problem(6, 5, 1, np.float64)
    rng = np.random.default_rng(2)
    state = (rng.standard_normal(6) * 0.3).reshape(1, 1, 1, 6)
    uniforms = rng.random(6)
    ixes = np.full(6, -1, np.int64)
    state_out = state.copy()
    cuda.sample(w, state_out, 2, uniforms, temperature, greedy, ixes)
    ref, state_ref = reference.sample(w, state, 2, uniforms, temperature=temperature,
                                      greedy=greedy)
    assert ixes.tolist() == list(ref), "ixes"
    assert_close(state_out, state_ref, np.float64, "state")


@pytest.mark.parametrize("top_k, top_p", [(2, 1.0), (0, 0.6), (3, 0.7)])
def test_top_k_and_top_p_sampling_matches_reference(cuda, top_k, top_p):
    w, *_ = problem(6, 5, 1, np.float64)
    rng = np.random.default_rng(3)
    state = (rng.standard_normal(6) * 0.3).reshape(1, 1, 1, 6)
    uniforms = rng.random(12)
    ixes = np.full(12, -1, np.int64)
    state_out = state.copy()
    cuda.sample(w, state_out, 2, uniforms, 1.5, False, ixes, top_k, top_p)
    ref, state_ref = reference.sample(w, state, 2, uniforms, 1.5, False, top_k, top_p)
    assert ixes.tolist() == list(ref), "ixes"
    assert_close(state_out, state_ref, np.float64, "state")


TRAIN_CASES = [(name, dtype, fastrnn.config.CLIP) for name in optim.OPTIMIZERS
               for dtype in DTYPES] + [("adam", np.float32, 0.1), ("rmsprop", np.float64, 0)]


@pytest.mark.parametrize("name, dtype, clip", TRAIN_CASES)
def test_train_matches_reference_including_the_wrap(cuda, name, dtype, clip):
    """(The gradients clipped to [-clip, clip], 0: not at all; the tests' chunks pass 0.1
    but not the default 5, which weights 10 times larger pass: those for the case of 0.)"""
    optimizer = optim.get(name)
    H, V, T, n, step = 4, 3, 3, 4, 2
    rng = np.random.default_rng(3)
    spec = Spec("rnn", V, H)
    w = random_weights(rng, H, V, dtype, 3.0 if clip == 0 else 0.3)
    data = rng.integers(0, V, 10).astype(np.uint8)  # 10 characters: chunk 3 wraps to position 0
    ref_w, ref_states = as64(w), [spec.zeros(np.float64) for _ in optimizer.states]
    ref_losses, ref_pos, ref_state = reference.train(ref_w, optimizer, ref_states, data, 0,
                                                     np.full((1, 1, 1, H), 0.1), 0.1, T, n, step,
                                                     clip=clip)
    if clip != fastrnn.config.CLIP:  # (the clip matters here)
        other = as64(w)
        reference.train(other, optimizer, [spec.zeros(np.float64) for _ in ref_states], data,
                        0, np.full((1, 1, 1, H), 0.1), 0.1, T, n, step)
        assert np.abs(other.flat - ref_w.flat).max() > 1e-3, "the clip mattered"
    p = spec.copy(w)
    g = spec.zeros(dtype)
    states = [spec.zeros(dtype) for _ in optimizer.states]
    state = np.full((1, 1, 1, H), 0.1, dtype)
    losses = np.full(n, np.nan)
    pos = cuda.train(p, g, optimizer, states, data, 0, state, 0.1, T, step, losses, 1,
                     clip=clip)
    assert pos == ref_pos, "position"
    assert_close(losses, ref_losses, dtype, "losses")
    assert_close(state, ref_state, dtype, "state")
    assert_weights_close(p, ref_w, dtype)
    assert_states_close(states, ref_states, optimizer, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluate_matches_reference(cuda, dtype, monkeypatch):
    from fastrnn.backends import cuda as cb
    monkeypatch.setattr(cb, "EVAL_STEPS", 3)  # several passes, the last one shorter
    monkeypatch.setattr(cb._Reports, "EVERY", 2)  # progress after every two, and the last
    w, *_ = problem(5, 4, 1, dtype)
    data = np.random.default_rng(4).integers(0, 4, 8).astype(np.uint8)
    state = np.full((1, 1, 1, 5), 0.2, dtype)
    said = []
    loss = cuda.evaluate(w, data, state, progress=said.append)
    assert said == [6, 1]
    loss_ref, state_ref = reference.evaluate(as64(w), data, np.full((1, 1, 1, 5), 0.2))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(state, state_ref, dtype, "state")


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_training_with_rmsprop_and_adam_matches_the_oracle(optimizer):
    data = np.random.default_rng(7).integers(0, 4, 30)
    models = {b: CharRNN(4, hidden_size=5, seq_length=3, dtype="float64", learning_rate=0.01,
                         optimizer=optimizer, backend=b) for b in ("cuda", "numpy")}
    for m in models.values():
        m.train(data, 2)
        m.train(data, 1)
    a, b = models["cuda"], models["numpy"]
    assert a.step == b.step == 3
    assert_weights_close(a.weights, b.weights, np.float64)
    assert_states_close(a.states, b.states, a.optimizer, np.float64)
    assert_close(a.state, b.state, np.float64, "state")


def test_drop_in_and_model_run_on_cuda():
    w, x, y, state = problem(5, 4, 3, np.float64)
    layer = w.layers[0]
    params = (layer.Wxh, layer.Whh, w.Why, layer.bh.reshape(-1, 1), w.by.reshape(-1, 1))
    hprev = state.reshape(-1, 1)
    out = fastrnn.lossFun(x[0], y[0], hprev, *params, backend="cuda")
    ref = reference.loss_fun(x[0], y[0], hprev, *params)
    for name, a, e in zip(("loss", "dWxh", "dWhh", "dWhy", "dbh", "dby", "h"), out, ref):
        assert np.shape(a) == np.shape(e), name
        assert_close(a, e, np.float64, name)
    # the drop-in adagrad on cuda, over min-char-rnn's five arrays
    grads, mems = [np.array(a) for a in out[1:6]], [np.abs(a) * 0.1 for a in params]
    p_cuda, m_cuda = [a.copy() for a in params], [a.copy() for a in mems]
    p_ref, m_ref = [a.copy() for a in params], [a.copy() for a in mems]
    fastrnn.adagrad(p_cuda, grads, m_cuda, 0.1, backend="cuda")
    reference.adagrad(p_ref, grads, m_ref, 0.1)
    for name, a, e in zip(("Wxh", "Whh", "Why", "bh", "by"), p_cuda, p_ref):
        assert_close(a, e, np.float64, name)
    for name, a, e in zip(("mWxh", "mWhh", "mWhy", "mbh", "mby"), m_cuda, m_ref):
        assert_close(a, e, np.float64, name)
    ids = {b: dropin.sample(hprev, 1, 7, *params, rng=np.random.default_rng(3), backend=b)
           for b in ("cuda", "numpy")}
    assert ids["cuda"] == ids["numpy"], "dropin.sample"

    data = np.random.default_rng(5).integers(0, 4, 40)
    assert CharRNN(4, hidden_size=5, backend="cuda").config.dtype == "float32"  # the GPU default
    models = {b: CharRNN(4, hidden_size=5, seq_length=3, dtype="float64", backend=b)
              for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 3) for b, m in models.items()}
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    samples = {b: m.sample(8, 1, rng=np.random.default_rng(6)) for b, m in models.items()}
    assert samples["cuda"][0] == samples["numpy"][0], "sampled ids"
    assert_close(samples["cuda"][1], samples["numpy"][1], np.float64, "state after sampling")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_mini_batch_training_matches_the_oracle(optimizer, dtype, recurrence):
    data = np.random.default_rng(8).integers(0, 5, 40)  # 3 streams of 13: they wrap
    models = {b: CharRNN(5, hidden_size=6, seq_length=3, dtype=dtype, learning_rate=0.01,
                         optimizer=optimizer, batch_size=3, backend=b) for b in ("cuda", "numpy")}
    losses = {b: np.concatenate([m.train(data, 3), m.train(data, 2)]) for b, m in models.items()}
    a, b = models["cuda"], models["numpy"]
    assert a.position == b.position, "position"
    assert a.h.shape == (3, 6) and a.state.shape == (1, 1, 3, 6), a.state.shape
    assert_close(losses["cuda"], losses["numpy"], dtype, "losses")
    assert_close(a.state, b.state, dtype, "state")
    assert_weights_close(a.weights, b.weights, dtype)
    assert_states_close(a.states, b.states, a.optimizer, dtype)


def test_smaller_tiles_when_large_ones_would_leave_multiprocessors_idle(monkeypatch):
    """With many multiprocessors the products halve their blocks' side (TILE -> TILE / 2
    threads, still WORK x WORK outputs each)."""
    from fastrnn.backends import cuda as cb
    from fastrnn.kernels import cuda as ck
    monkeypatch.setattr(cb, "_multiprocessors", lambda: 1000)
    monkeypatch.setattr(ck, "RECURRENCE", "step")
    launched = []
    real = cb._kernels
    monkeypatch.setattr(cb, "_kernels", lambda dtype, tile=None: launched.append(tile) or
                        real(dtype, tile))
    data = np.random.default_rng(11).integers(0, 5, 40)
    models = {b: CharRNN(5, hidden_size=6, seq_length=3, dtype="float64", batch_size=3,
                         backend=b) for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 2) for b, m in models.items()}
    assert ck.TILE // 2 in launched and ck.TILE not in launched, launched
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    assert_weights_close(models["cuda"].weights, models["numpy"].weights, np.float64)


def test_hidden_size_beyond_the_register_and_shared_memory_limits(monkeypatch):
    """Above the "persistent" form's register budget the plan picks another form (asking for
    it is a clear error), and above MAX_H sampling runs on the CPU kernels."""
    from fastrnn.kernels import cuda as ck
    monkeypatch.setattr(ck, "MAX_H", 4)
    monkeypatch.setattr(ck, "MAX_PER_LANE", 0)
    data = np.random.default_rng(9).integers(0, 3, 30)
    models = {b: CharRNN(3, hidden_size=6, seq_length=3, dtype="float64", backend=b)
              for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 2) for b, m in models.items()}
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    assert_close(models["cuda"].state, models["numpy"].state, np.float64, "state")
    assert_weights_close(models["cuda"].weights, models["numpy"].weights, np.float64)
    (loss, state), (loss_ref, state_ref) = (m.evaluate(data) for m in models.values())
    assert_close(loss, loss_ref, np.float64, "evaluate loss")
    assert_close(state, state_ref, np.float64, "evaluate state")
    samples = {b: m.sample(8, 1, rng=np.random.default_rng(6)) for b, m in models.items()}
    assert samples["cuda"][0] == samples["numpy"][0], "sampled ids"
    assert_close(samples["cuda"][1], samples["numpy"][1], np.float64, "state after sampling")
    monkeypatch.setattr(ck, "RECURRENCE", "persistent")
    with pytest.raises(ValueError, match="'persistent' CUDA recurrence cannot run 1 stream"):
        models["cuda"].train(data, 1)


def test_command_line_trains_resumes_and_samples_on_cuda(tmp_path):
    from fastrnn import checkpoint, train
    from fastrnn.sample import main as sample_main
    path = tmp_path / "text.txt"
    path.write_text("abcab cabba " * 6)
    common = ["--data", str(path), "--backend", "cuda", "--hidden-size", "4", "--seq-length", "3",
              "--batch-size", "2", "--eval-every", "2", "--sample-every", "0", "--quiet"]
    assert train.main(common + ["--iterations", "4", "--out", str(tmp_path / "one")]) == 0
    assert train.main(common + ["--iterations", "2", "--out", str(tmp_path / "two")]) == 0
    assert train.main(["--resume", str(tmp_path / "two" / "checkpoint.npz"), "--iterations", "4",
                       "--backend", "cuda", "--quiet"]) == 0
    a, b = (checkpoint.load(tmp_path / d / "checkpoint.npz") for d in ("one", "two"))
    assert a.config.dtype == "float32"
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name
    assert len(a.states) == len(b.states) == 1
    for sa, sb in zip(a.states, b.states):
        for name in sa:
            assert np.array_equal(sa[name], sb[name]), "m" + name
    assert np.array_equal(a.state, b.state), "state"
    assert a.position == b.position and a.step == b.step == 4, (a.position, a.step)
    assert np.array_equal(a.losses, b.losses), "losses"
    out = io.StringIO()
    assert sample_main([str(tmp_path / "one" / "checkpoint.npz"), "--backend", "cuda", "--length",
                        "5", "--seed", "1", "--prime", "ab"], out=out) == 0
    assert out.getvalue().startswith("ab") and len(out.getvalue()) == 2 + 5 + 1, out.getvalue()


@pytest.mark.skipif(SIMULATOR, reason="sizes for a real GPU (many tiles of the default launch "
                                      "configuration); far too slow in the simulator")
def test_sizes_spanning_many_tiles_on_a_gpu(recurrence):
    from numba import cuda as nbcuda
    from fastrnn.backends import cuda as cb
    rng = np.random.default_rng(10)
    for dtype in DTYPES:
        for M, N, K, ta, tb in [(200, 150, 300, False, True), (130, 70, 1000, True, False)]:
            a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
            b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
            c = nbcuda.to_device(np.full((M, N), np.nan, dtype))
            cb._matmul(nbcuda.to_device(a), ta, nbcuda.to_device(b), tb, c)
            expected = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(
                np.float64)
            error = np.linalg.norm(c.copy_to_host() - expected) / np.linalg.norm(expected)
            assert error < (1e-13 if dtype == np.float64 else 1e-5), (M, N, K, dtype, error)
    data = rng.integers(0, 30, 5000)
    # "persistent" holds one block of <= 8 rows a multiprocessor in float64 (its registers,
    # tests/test_cuda_plan.py): 4 streams of 150 units; the tiled forms 40
    streams = 4 if recurrence.startswith("persistent") else 40
    models = {b: CharRNN(30, hidden_size=150, seq_length=20, dtype="float64", learning_rate=0.01,
                         batch_size=streams, backend=b) for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 3) for b, m in models.items()}
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    assert_weights_close(models["cuda"].weights, models["numpy"].weights, np.float64)
