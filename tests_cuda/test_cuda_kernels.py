"""Every CUDA kernel equal to the NumPy oracle (float64 tightly, float32 to rounding)."""

import os

import numpy as np
import pytest

import fastrnn
from fastrnn import CharRNN, reference
from fastrnn.backends import evaluate_workspace, get_backend, sample_workspace, workspace
from fastrnn.params import kernel_view
from tests.helpers import assert_close, random_chunk, random_model

DTYPES = [np.float64, np.float32]
SHAPES = [(5, 4, 3), (1, 2, 1), (9, 6, 2)]  # (H, V, T): H, V above and below the block size
NAMES = ("dWxh", "dWhh", "dWhy", "dbh", "dby")
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


@pytest.fixture(scope="module")
def cuda():
    return get_backend("cuda")


def problem(H, V, T, dtype, seed=0):
    rng = np.random.default_rng([H, V, T, seed])
    params = random_model(rng, H, V, dtype, 0.5)
    inputs, targets = random_chunk(rng, T, V)
    hprev = (rng.standard_normal((H, 1)) * 0.5).astype(dtype)
    return params, inputs, targets, hprev


def as64(arrays):
    return tuple(np.asarray(a, np.float64) for a in arrays)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("M,N,K", [(5, 7, 9), (1, 1, 1), (8, 4, 3), (3, 9, 12)])
def test_matmul_matches_numpy(M, N, K, ta, tb, dtype):
    """The tiled product behind the output layer and the gradients, every transpose, sizes
    that are and are not multiples of the tile; each output written exactly once."""
    from numba import cuda as nbcuda
    from fastrnn import cuda_backend as cb
    rng = np.random.default_rng([M, N, K, ta, tb])
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    c = nbcuda.to_device(np.full((M, N), np.nan, dtype))
    cb._matmul(nbcuda.to_device(a), ta, nbcuda.to_device(b), tb, c)
    expected = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert_close(c.copy_to_host(), expected, dtype, "C")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,T", SHAPES)
def test_forward_backward_match_reference(cuda, H, V, T, dtype, recurrence):
    params, inputs, targets, hprev = problem(H, V, T, dtype)
    hs, ps, dys, dhs, dh_next = workspace(T, H, V, dtype)
    loss = cuda.forward(inputs, targets, hprev.reshape(-1), kernel_view(params), hs, ps)
    loss_ref, hs_ref, ps_ref = reference.forward(inputs, targets, *as64((hprev,) + params))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(hs, hs_ref, dtype, "hs")
    assert_close(ps, ps_ref, dtype, "ps")
    grads = tuple(np.full_like(p, np.nan) for p in params)
    cuda.backward(inputs, targets, hs, ps, kernel_view(params), kernel_view(grads), (dys, dhs, dh_next))
    for name, g, e in zip(NAMES, grads, reference.backward(inputs, targets, hs_ref, ps_ref, *as64(params[:3]))):
        assert g.dtype == dtype, name
        assert_close(g, e, dtype, name)


def test_backward_clips_to_five(cuda):
    params, inputs, targets, hprev = problem(8, 3, 20, np.float64)
    params = tuple(p * 2 for p in params)
    hs, ps, *work = workspace(20, 8, 3, np.float64)
    cuda.forward(inputs, targets, hprev.reshape(-1), kernel_view(params), hs, ps)
    grads = tuple(np.empty_like(p) for p in params)
    cuda.backward(inputs, targets, hs, ps, kernel_view(params), kernel_view(grads), work)
    unclipped = reference.backward(inputs, targets, hs, ps, *params[:3], clip=None)
    assert max(np.abs(g).max() for g in unclipped) > 5, "the test must exceed the clip bound"
    for name, g, e in zip(NAMES, grads, unclipped):
        assert_close(g, np.clip(e, -5, 5), np.float64, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_matches_reference(cuda, dtype):
    rng = np.random.default_rng(1)
    params = random_model(rng, 5, 4, dtype, 1.0)
    grads = random_model(rng, 5, 4, dtype, 3.0)
    mems = tuple(np.abs(m) for m in random_model(rng, 5, 4, dtype, 1.0))
    expected = [[np.array(a, np.float64) for a in arrays] for arrays in (params, grads, mems)]
    reference.adagrad(expected[0], expected[1], expected[2], 0.1)
    p, m = [a.copy() for a in params], [a.copy() for a in mems]
    cuda.adagrad(kernel_view(p), kernel_view(grads), kernel_view(m), 0.1)
    for name, a, e in zip(NAMES, p + m, expected[0] + expected[2]):
        assert_close(a, e, dtype, name)
    w, g, mm = params[1].reshape(-1).copy(), grads[1].reshape(-1), mems[1].reshape(-1).copy()
    cuda.adagrad_update(w, g, mm, 0.1)
    assert_close(w, expected[0][1].reshape(-1), dtype, "adagrad_update w")
    assert_close(mm, expected[2][1].reshape(-1), dtype, "adagrad_update m")


@pytest.mark.parametrize("greedy, temperature", [(False, 1.0), (False, 0.7), (True, 1.0)])
def test_sample_matches_reference(cuda, greedy, temperature):
    params, *_ = problem(6, 5, 1, np.float64)
    rng = np.random.default_rng(2)
    h = rng.standard_normal(6) * 0.3
    uniforms = rng.random(6)
    ixes = np.empty(6, np.int64)
    h_out = h.copy()
    cuda.sample(h_out, 2, uniforms, kernel_view(params), temperature, greedy, ixes,
                sample_workspace(6, 5, np.float64))
    ref, h_ref = reference.sample(h.reshape(-1, 1), 2, uniforms, *params, temperature=temperature,
                                  greedy=greedy)
    assert ixes.tolist() == list(ref)
    assert_close(h_out, h_ref[:, 0], np.float64, "h")


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_matches_reference_including_the_wrap(cuda, dtype):
    H, V, T, n = 4, 3, 3, 4
    rng = np.random.default_rng(3)
    params = random_model(rng, H, V, dtype, 0.3)
    data = rng.integers(0, V, 10).astype(np.uint8)  # 10 characters: chunk 3 wraps to position 0
    ref_params, ref_mems = [np.asarray(p, np.float64).copy() for p in params], \
        [np.zeros(p.shape) for p in params]
    ref_losses, ref_pos, ref_h = reference.train(data, 0, np.full((H, 1), 0.1), ref_params, ref_mems,
                                                 0.1, T, n)
    p = tuple(a.copy() for a in params)
    g = tuple(np.zeros_like(a) for a in params)
    m = tuple(np.zeros_like(a) for a in params)
    h = np.full(H, 0.1, dtype)
    losses = np.empty(n)
    pos = cuda.train(data, 0, h, kernel_view(p), kernel_view(g), kernel_view(m), 0.1, T, losses,
                     workspace(T, H, V, dtype))
    assert pos == ref_pos
    assert_close(losses, ref_losses, dtype, "losses")
    assert_close(h, ref_h[:, 0], dtype, "h")
    for name, a, e in zip(NAMES, p + m, ref_params + ref_mems):
        assert_close(a, e, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluate_matches_reference(cuda, dtype):
    params, *_ = problem(5, 4, 1, dtype)
    data = np.random.default_rng(4).integers(0, 4, 8).astype(np.uint8)
    h = np.full(5, 0.2, dtype)
    loss = cuda.evaluate(data, h, kernel_view(params), evaluate_workspace(3, 5, 4, dtype))
    loss_ref, h_ref = reference.evaluate(data, np.full((5, 1), 0.2), *as64(params))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(h, h_ref[:, 0], dtype, "h")


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_training_with_rmsprop_and_adam_matches_the_oracle(optimizer):
    data = np.random.default_rng(7).integers(0, 4, 30)
    models = {b: CharRNN(4, hidden_size=5, seq_length=3, dtype="float64", learning_rate=0.01,
                         optimizer=optimizer, backend=b) for b in ("cuda", "numpy")}
    for m in models.values():
        m.train(data, 2)
        m.train(data, 1)
    a, b = models["cuda"], models["numpy"]
    for name, x, e in zip(NAMES * 2, [*a.params, *a.mems], [*b.params, *b.mems]):
        assert_close(x, e, np.float64, name)
    for name, x, e in zip(NAMES, a.mems2 or [], b.mems2 or []):
        assert_close(x, e, np.float64, "v " + name)


def test_drop_in_and_model_run_on_cuda():
    params, inputs, targets, hprev = problem(5, 4, 3, np.float64)
    out = fastrnn.lossFun(inputs, targets, hprev, *params, backend="cuda")
    ref = reference.loss_fun(inputs, targets, hprev, *params)
    for name, a, e in zip(("loss",) + NAMES + ("h",), out, ref):
        assert_close(a, e, np.float64, name)
    data = np.random.default_rng(5).integers(0, 4, 40)
    assert CharRNN(4, hidden_size=5, backend="cuda").config.dtype == "float32"  # the GPU default
    models = {b: CharRNN(4, hidden_size=5, seq_length=3, dtype="float64", backend=b)
              for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 3) for b, m in models.items()}
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    texts = {b: m.sample(8, 1, rng=np.random.default_rng(6))[0] for b, m in models.items()}
    assert texts["cuda"] == texts["numpy"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_mini_batch_training_matches_the_oracle(optimizer, dtype, recurrence):
    data = np.random.default_rng(8).integers(0, 5, 40)  # 3 streams of 13: they wrap
    models = {b: CharRNN(5, hidden_size=6, seq_length=3, dtype=dtype, learning_rate=0.01,
                         optimizer=optimizer, batch_size=3, backend=b) for b in ("cuda", "numpy")}
    losses = {b: np.concatenate([m.train(data, 3), m.train(data, 2)]) for b, m in models.items()}
    a, b = models["cuda"], models["numpy"]
    assert a.position == b.position and a.h.shape == (3, 6)
    assert_close(losses["cuda"], losses["numpy"], dtype, "losses")
    assert_close(a.h, b.h, dtype, "h")
    for name, x, e in zip(NAMES * 2, [*a.params, *a.mems], [*b.params, *b.mems]):
        assert_close(x, e, dtype, name)


def test_smaller_tiles_when_large_ones_would_leave_multiprocessors_idle(monkeypatch):
    """With many multiprocessors the products shrink their tiles (WORK 2 -> 1 here)."""
    from fastrnn import cuda_backend as cb
    from fastrnn.kernels import cuda as ck
    monkeypatch.setattr(cb, "_multiprocessors", lambda: 1000)
    monkeypatch.setattr(ck, "RECURRENCE", "step")
    launched = []
    real = cb._kernels
    monkeypatch.setattr(cb, "_kernels", lambda dtype, work=None: launched.append(work) or
                        real(dtype, work))
    data = np.random.default_rng(11).integers(0, 5, 40)
    models = {b: CharRNN(5, hidden_size=6, seq_length=3, dtype="float64", batch_size=3,
                         backend=b) for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 2) for b, m in models.items()}
    assert 1 in launched
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    for name, x, e in zip(NAMES, models["cuda"].params, models["numpy"].params):
        assert_close(x, e, np.float64, name)


def test_hidden_size_beyond_the_shared_memory_limit(monkeypatch):
    """Above MAX_H the recurrence runs per step (any H) and sampling on the CPU kernels."""
    from fastrnn.kernels import cuda as ck
    monkeypatch.setattr(ck, "MAX_H", 4)
    monkeypatch.setattr(ck, "RECURRENCE", "stream")  # overridden by the size
    assert ck.form(1, 6) == "step" and ck.form(1, 4) == "stream"
    data = np.random.default_rng(9).integers(0, 3, 30)
    models = {b: CharRNN(3, hidden_size=6, seq_length=3, dtype="float64", backend=b)
              for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 2) for b, m in models.items()}
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    assert_close(models["cuda"].h, models["numpy"].h, np.float64, "h")
    for name, x, e in zip(NAMES, models["cuda"].params, models["numpy"].params):
        assert_close(x, e, np.float64, name)
    (loss, h), (loss_ref, h_ref) = (m.evaluate(data) for m in models.values())
    assert_close(loss, loss_ref, np.float64, "evaluate loss")
    assert_close(h, h_ref, np.float64, "evaluate h")
    texts = {b: m.sample(8, 1, rng=np.random.default_rng(6))[0] for b, m in models.items()}
    assert texts["cuda"] == texts["numpy"]


def test_command_line_trains_resumes_and_samples_on_cuda(tmp_path):
    from fastrnn import checkpoint, train
    from fastrnn.sample import main as sample_main
    import io
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
    for x, y in zip([*a.params, *a.mems, a.h], [*b.params, *b.mems, b.h]):
        assert np.array_equal(x, y)
    assert np.array_equal(a.losses, b.losses)
    out = io.StringIO()
    assert sample_main([str(tmp_path / "one" / "checkpoint.npz"), "--backend", "cuda", "--length",
                        "5", "--seed", "1", "--prime", "ab"], out=out) == 0
    assert out.getvalue().startswith("ab") and len(out.getvalue()) == 2 + 5 + 1


@pytest.mark.skipif(SIMULATOR, reason="sizes for a real GPU (many tiles of the default launch "
                                      "configuration); far too slow in the simulator")
def test_sizes_spanning_many_tiles_on_a_gpu(recurrence):
    from numba import cuda as nbcuda
    from fastrnn import cuda_backend as cb
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
    models = {b: CharRNN(30, hidden_size=150, seq_length=20, dtype="float64", learning_rate=0.01,
                         batch_size=40, backend=b) for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 3) for b, m in models.items()}
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    for name, x, e in zip(NAMES, models["cuda"].params, models["numpy"].params):
        assert_close(x, e, np.float64, name)


def test_persistent_form_names_a_size_it_cannot_run(monkeypatch):
    """More streams than multiprocessors cannot all be resident: a clear error, not a hang."""
    from fastrnn import cuda_backend as cb
    from fastrnn.kernels import cuda as ck
    monkeypatch.setattr(ck, "RECURRENCE", "persistent")
    B = cb._multiprocessors() + 1
    model = CharRNN(3, hidden_size=4, seq_length=2, batch_size=B, backend="cuda")
    with pytest.raises(ValueError, match=f"cannot run {B} stream"):
        model.train(np.zeros(4 * B, np.int64), 1)
