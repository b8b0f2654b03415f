"""Mini-batches of B streams: the oracle's B streams against B single streams, the Numba batched
kernels (``fastrnn.kernels.batch``: every cell, layer count and dropout) against the oracle,
and the model with batch_size > 1. (The oracle's training with one stream is min-char-rnn's
loop: tests/test_reference.py.)"""

import numpy as np
import pytest

from fastrnn import CharRNN, optim, reference
from fastrnn.config import STREAMS_PER_UNIT
from fastrnn.kernels import batch, tiles
from fastrnn.spec import Spec
from tests.helpers import as64, assert_close, assert_weights_close, random_weights

DTYPES = [np.float64, np.float32]
# B, T, H, V: units below batch.tile_rows streams (OpenBLAS's products, where config.TILE_ROWS
# is above one; test_every_product_form_matches_the_oracle reaches them whatever it is), at it,
# between
# (12: a tiled unit with an edge block of rows), and (the last two) several stream units
# (config.STREAMS_PER_UNIT), one of them too small to tile in (17, ...)
SHAPES = [(1, 1, 1, 2), (3, 5, 7, 4), (8, 9, 16, 11), (12, 4, 20, 6), (17, 20, 33, 5),
          (5, 3, 64, 300), (40, 9, 70, 13)]


# (cell, layers, dropout): every cell, one and several layers, with and without dropout
MODELS = [("rnn", 1, 0.0), ("rnn", 2, 0.3), ("lstm", 1, 0.0), ("lstm", 2, 0.3), ("gru", 1, 0.0),
          ("gru", 3, 0.3)]
MODEL_IDS = [f"{c}-L{n}" + ("-dropout" if p else "") for c, n, p in MODELS]


def problem(B, T, H, V, dtype, seed=0, cell="rnn", L=1, dropout=0.0):
    """Weights, a chunk x, y (B, T), a non-zero state (L, S, B, H) and dropout masks (or None)."""
    rng = np.random.default_rng([B, T, H, V, seed])
    w = random_weights(rng, H, V, dtype, min(0.5, 1.5 / np.sqrt(H)), L, cell)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    if V > 2:
        x[:, 0] = x[0, 0]  # streams sharing a character at the same step
    S = len(reference.spec_of(w).cell.STATES)
    state = (rng.standard_normal((L, S, B, H)) * 0.5).astype(dtype)
    masks = reference.dropout_masks(rng, dropout, (L - 1, T, B, H), dtype) if dropout else None
    return w, x, y, state, masks


def test_the_oracles_b_streams_are_b_independent_streams():
    B, T, H, V = 4, 6, 9, 5
    w, x, y, state, _ = problem(B, T, H, V, np.float64)
    spec = Spec("rnn", V, H)
    loss, (hs, ps) = reference.forward(w, x, y, state)
    grads = reference.backward(w, x, y, (hs, ps), clip=None)
    total_loss, total_grads = 0.0, spec.zeros(np.float64)
    for b in range(B):
        one = slice(b, b + 1)
        l1, (hs1, ps1) = reference.forward(w, x[one], y[one], state[:, :, one])
        np.testing.assert_allclose(hs[:, :, :, b], hs1[:, :, :, 0], rtol=1e-12, err_msg=f"hs of stream {b}")
        np.testing.assert_allclose(ps[:, b], ps1[:, 0], rtol=1e-12, err_msg=f"ps of stream {b}")
        total_loss += l1
        total_grads.flat[...] += reference.backward(w, x[one], y[one], (hs1, ps1), clip=None).flat
    np.testing.assert_allclose(loss, total_loss, rtol=1e-12, err_msg="loss")
    for (name, g), e in zip(spec.named(grads).items(), spec.arrays(total_grads)):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-13, err_msg="d" + name)


def check_kernels(B, T, H, V, dtype, threads, cell="rnn", L=1, dropout=0.0):
    """batch.forward, batch.gradients and batch.backward against the float64 oracle; every
    buffer is first filled with NaN, so an element left unwritten shows."""
    w, x, y, state, masks = problem(B, T, H, V, dtype, cell=cell, L=L, dropout=dropout)
    spec = reference.spec_of(w)
    work = batch.Work(spec, B, T, dtype)
    work.partials[...] = np.nan
    for g in work.groups:
        for a in (g.hs, g.cs, g.pre, g.hn, g.xin, g.acc, g.ps, g.dys, g.dhout, g.das, g.dahs,
                  g.dh_next, g.dc_next, g.dWxhT, g.dyT, g.hp):
            a[...] = np.nan
    before = state.copy()
    loss = batch.forward(x, y, state, w, work, threads, masks)
    w64 = as64(w)
    masks64 = None if masks is None else masks.astype(np.float64)
    loss_ref, (hs_ref, ps_ref) = reference.forward(w64, x, y, state.astype(np.float64), masks64)
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(work.states(), hs_ref, dtype, "hs")
    assert_close(work.ps(), ps_ref, dtype, "ps")
    assert np.array_equal(state, before), "forward must not change the state"
    grads = spec.zeros(dtype)
    grads.flat[...] = np.nan
    batch.gradients(w, grads, work, threads, masks is not None)
    expected = reference.backward(w64, x, y, (hs_ref, ps_ref), clip=None, masks=masks64)
    for name, g in spec.named(grads).items():
        assert g.dtype == dtype, "d" + name
    assert_weights_close(grads, expected, dtype, prefix="d")
    clipped = spec.zeros(dtype)
    clipped.flat[...] = np.nan
    batch.backward(x, y, state, w, clipped, batch.Work(spec, B, T, dtype), threads, masks)
    assert_weights_close(clipped, spec.view(np.clip(expected.flat, -5, 5)), dtype, prefix="clipped d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,H,V", SHAPES)
@pytest.mark.parametrize("threads", [1, 3])
def test_kernels_match_the_oracle(B, T, H, V, dtype, threads):
    check_kernels(B, T, H, V, dtype, threads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,H,V", [(1, 1, 1, 2), (3, 5, 7, 4), (17, 6, 12, 5), (12, 4, 20, 6)])
@pytest.mark.parametrize("cell,L,dropout", MODELS[1:], ids=MODEL_IDS[1:])
def test_every_cell_and_layer_count_matches_the_oracle(cell, L, dropout, B, T, H, V, dtype):
    """LSTM, GRU and stacked layers (dropout masks between them), B = 1 included: the
    min-char-rnn model's single stream is the only one that runs other kernels."""
    check_kernels(B, T, H, V, dtype, 2, cell, L, dropout)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,H,V", [(1, 3, 7, 4), (3, 5, 7, 4), (17, 6, 12, 5)])
@pytest.mark.parametrize("cell,L,dropout", [MODELS[0], MODELS[3]], ids=[MODEL_IDS[0], MODEL_IDS[3]])
@pytest.mark.parametrize("tile_rows", [1, 8])
def test_every_product_form_matches_the_oracle(tile_rows, cell, L, dropout, B, T, H, V, dtype,
                                               monkeypatch):
    """Whichever per-step product the CPU's config.TILE_ROWS picks for a unit (tiles at one
    stream with AVX2, OpenBLAS on Whh or Whh^T below 8 streams with AVX-512), every form is
    tested here: tiles for every unit, or OpenBLAS for units of 1 and 3 streams (17 streams:
    a tiled unit of 16 beside a unit of one)."""
    monkeypatch.setattr(batch, "tile_rows", tile_rows)
    forms = {batch.product_form(b - a) for a, b in batch.units(B, STREAMS_PER_UNIT)}
    assert forms == ({batch.TILES} if tile_rows == 1 else
                     {batch.WHH} if B == 1 else {batch.WHH_T} if B == 3 else
                     {batch.TILES, batch.WHH})
    check_kernels(B, T, H, V, dtype, 2, cell, L, dropout)


@pytest.mark.parametrize("cell,L,dropout", MODELS, ids=MODEL_IDS)
def test_wxh_by_its_columns_or_its_transpose_gives_the_same_bits(cell, L, dropout, monkeypatch):
    """Layer 0's Wxh read by the input characters' columns (and its gradient written so), as
    chunks with fewer inputs than the vocabulary has characters do, or through its transpose:
    the same bits, forward and backward, at both sizes."""
    real = batch.reads_columns
    assert real(2, 16, 300) and not real(2, 16, 7)
    results = {}
    for V in (7, 300):  # (each form at both sizes)
        for columns in (False, True):
            monkeypatch.setattr(batch, "reads_columns", lambda T, rows, V_: columns)
            w, x, y, state, masks = problem(18, 2, 9, V, np.float32, cell=cell, L=L,
                                            dropout=dropout)
            work = batch.Work(reference.spec_of(w), 18, 2, np.float32)
            assert work.columns == columns and (work.WxhT.shape[0] == 0) == columns
            loss = batch.forward(x, y, state, w, work, 2, masks)
            grads = reference.spec_of(w).zeros(np.float32)
            batch.gradients(w, grads, work, 2, masks is not None)
            results[V, columns] = (loss, work.states(), grads.flat)
        for before, after in zip(results[V, False], results[V, True]):
            assert np.array_equal(before, after), V


@pytest.mark.parametrize("tile_rows", [1, 8])
@pytest.mark.parametrize("cell,L", [("lstm", 2), ("gru", 1), ("rnn", 3)])
def test_sample_matches_the_oracle_with_every_product_form(cell, L, tile_rows, monkeypatch):
    """batch.sample, float64, with its per-step products on the packed Whh^T (tile_rows 1, as
    one stream runs with AVX2) or OpenBLAS on Whh: the oracle's ids, state and all."""
    monkeypatch.setattr(batch, "tile_rows", tile_rows)
    H, V, n = 20, 7, 200
    w, _, _, state, _ = problem(1, 1, H, V, np.float64, cell=cell, L=L)
    for layer in w.layers:  # small recurrent weights: a contractive, not chaotic, recurrence
        layer.Whh[...] *= 0.3
    spec = reference.spec_of(w)
    transposes = batch.Transposes(spec, np.float64)
    assert (transposes.Whp.shape[1] > 0) == (tile_rows == 1)
    if tile_rows == 1:  # the panels' rows are whole cache lines (tiles.empty)
        assert transposes.Whp.ctypes.data % tiles.LINE == 0
        assert transposes.Whb.ctypes.data % tiles.LINE == 0
    uniforms = np.random.default_rng(5).random(n)
    for greedy in (False, True):
        after = state.copy()
        ixes = np.full(n, -1, np.int64)
        batch.sample(after, 2, uniforms, w, *transposes.load(w), 0.9, greedy, 0, 1.0, ixes,
                     *batch.sample_buffers(spec, np.float64))
        expected, expected_state = reference.sample(w, state, 2, uniforms, 0.9, greedy)
        assert ixes.tolist() == expected
        assert_close(after, expected_state, np.float64, "state")


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_trajectory_matches_the_oracle(dtype):
    B, T, H, V, n = 4, 7, 24, 9, 60
    rng = np.random.default_rng(2)
    data = rng.integers(0, V, 700)          # 4 streams of 175 characters: they wrap around
    model = CharRNN(V, hidden_size=H, seq_length=T, learning_rate=0.01, dtype=dtype, batch_size=B)
    w = as64(model.weights)
    states = [model.spec.zeros(np.float64)]
    losses = np.concatenate([model.train(data, 25), model.train(data, n - 25)])
    ref_losses, ref_pos, ref_state = reference.train(w, optim.get("adagrad"), states, data, 0,
                                                     np.zeros((1, 1, B, H)), 0.01, T, n)
    assert model.position == ref_pos
    assert_close(losses, ref_losses, dtype, "losses")
    assert_close(model.state, ref_state, dtype, "state")
    assert_weights_close(model.weights, w, dtype)
    assert_weights_close(model.states[0], states[0], dtype, prefix="m")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,L,dropout", MODELS, ids=MODEL_IDS)
def test_training_kernel_matches_the_oracle_across_calls(dtype, cell, L, dropout):
    """batch.train itself, called twice (the step count and the state carried between calls,
    the streams wrapping around), with Adam."""
    B, T, H, V = 3, 5, 10, 7
    w, _, _, state, _ = problem(B, T, H, V, dtype, cell=cell, L=L)
    data = np.random.default_rng(5).integers(0, V, 150)  # streams of 50: wrap every 8 chunks
    spec, adam = reference.spec_of(w), optim.get("adam")
    w_ref, states_ref, state_ref = as64(w), [spec.zeros(np.float64) for _ in adam.states], \
        state.astype(np.float64)
    states = [spec.zeros(dtype) for _ in adam.states]
    g, work = spec.zeros(dtype), batch.Work(spec, B, T, dtype)
    position, ref_position, step = 0, 0, 0
    rng = np.random.default_rng(9)
    for n in (4, 9):
        losses = np.full(n, np.nan)
        masks = reference.dropout_masks(rng, dropout, (n, L - 1, T, B, H), dtype) \
            if dropout else None
        position = batch.train(data, position, state, w, g, adam.state([s.flat for s in states]),
                               0.01, T, step, losses, work, 2, masks)
        ref_losses, ref_position, state_ref = reference.train(
            w_ref, adam, states_ref, data, ref_position, state_ref, 0.01, T, n, step,
            None if masks is None else masks.astype(np.float64))
        step += n
        assert position == ref_position, f"position after {step} steps"
        assert_close(losses, ref_losses, dtype, f"losses up to step {step}")
        assert_close(state, state_ref, dtype, f"state after {step} steps")
    assert_weights_close(w, w_ref, dtype)
    for name, s, e in zip(adam.states, states, states_ref):
        assert_weights_close(s, e, dtype, prefix=name)


def test_the_units_depend_on_the_sizes_alone():
    """Units of STREAMS_PER_UNIT streams (the last smaller) and reduction/update spans of at
    most UPDATE_UNIT parameters, as equal as can be: fixed by B and the model's size, not by
    the thread count."""
    work = batch.Work(Spec("rnn", 30, 70), 40, 12, np.float32)
    assert [(g.streams.start, g.streams.stop) for g in work.groups] == [(0, 16), (16, 32),
                                                                        (32, 40)]
    assert work.partials.shape == (3, 2 * 30 * 70 + 70 * 70 + 70 + 30)
    assert batch.units(70_000, 1 << 15) == [(0, 32768), (32768, 65536), (65536, 70000)]
    unit = batch.UPDATE_UNIT
    assert batch.spans(10) == [(0, 10)]
    assert batch.spans(unit) == [(0, unit)]
    assert batch.spans(unit + 1) == [(0, unit // 2 + 64), (unit // 2 + 64, unit + 1)]
    assert batch.spans(346_433) == [(0, 173_248), (173_248, 346_433)]
    assert batch.spans(3 * unit - 5) == [(0, unit), (unit, 2 * unit), (2 * unit, 3 * unit - 5)]


def test_loading_in_parts_on_threads_fills_what_one_call_fills(monkeypatch):
    """Transposes.load on threads (each layer's transposes, its packed weights forward and
    backward as tasks, and Why's packing) fills every array the kernels read, with what a
    single call per layer writes."""
    monkeypatch.setattr(batch, "tile_rows", 3)  # units of 2 streams read Whh^T, of 16 panels
    spec = Spec("lstm", 30, 40, 3)
    w = spec.init(0, np.float32)
    loads = []
    for threads in (1, 3):
        transposes = batch.Transposes(spec, np.float32, rows=(2, 16), whole=True)
        arrays = [transposes.WxhT, transposes.WupT, transposes.WhhT, transposes.Whp,
                  transposes.Whb, transposes.Wxp, transposes.Wxb, transposes.Wyp, transposes.Wyb]
        for a in arrays:
            a[...] = np.nan
        transposes.load(w, threads)
        assert all(a.size and not np.isnan(a).any() for a in arrays)
        loads.append(arrays)
    for one, parts in zip(*loads):
        np.testing.assert_array_equal(one, parts)


def test_an_evaluation_allocates_only_what_its_forward_pass_reads(monkeypatch):
    """An evaluation's buffers (a Work without ``backward``, and the extra units of its
    layers' pipeline) hold no gradients, empty backward and dropout buffers and none of the
    weights packed for the backward pass, and evaluate the same bits as a training Work's, on
    one thread and as a pipeline; units on the tiles have no Wxh^T of the layers above the
    first (they read it packed); a sample's transposes hold none for the backward pass."""
    monkeypatch.setattr(batch, "tile_rows", 1)  # (every unit on the tiles)
    spec = Spec("gru", 30, 40, 3)
    w = spec.init(0, np.float32)
    data = np.random.default_rng(1).integers(0, 30, 12 * 240 + 1)  # (whole chunks only)
    trains, evaluates = (batch.Work(spec, 12, 10, np.float32, backward) for backward in (1, 0))
    assert evaluates.partials.size == 0 and evaluates.groups[0].grads is None
    trained, evaluated = trains.groups[0], evaluates.groups[0]
    for name in ("dys", "dhout", "das", "dahs", "dh_next", "dc_next", "dWxhT", "dyT", "hp",
                 "xin", "masks"):
        a, b = getattr(trained, name), getattr(evaluated, name)
        assert a.size > 0 and b.size == 0 and a.ndim == b.ndim and a.dtype == b.dtype, name
    assert batch._buffer_bytes(evaluated) < 0.6 * batch._buffer_bytes(trained)
    assert trains.WupT.size == 0 and evaluates.WupT.size == 0
    for name in ("Whb", "Wxb", "Wyb"):  # (what only the backward pass reads)
        assert getattr(trains, name).size > 0 and getattr(evaluates, name).size == 0, name
    sampling = batch.Transposes(spec, np.float32, backward=False)  # (sample's)
    assert sampling.WupT.shape == (2, 40, 120) and sampling.Whb.size == 0
    results = []
    for work in (trains, evaluates):
        for threads in (1, 2):  # (2: the layers pipelined, with forward-only units)
            state = np.zeros((3, 1, 12, 40), np.float32)
            results.append((batch.evaluate(data, state, w, work, threads), state))
    # the pipeline's extra units take the forms of the Work's transposes, made before
    monkeypatch.setattr(batch, "tile_rows", 100)  # (now: OpenBLAS's, reading WupT)
    state = np.zeros((3, 1, 12, 40), np.float32)
    results.append((batch.evaluate(data, state, w, evaluates, 2), state))
    for loss, state in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(state, results[0][1])


@pytest.fixture(params=["default units", "small units"])
def unit_sizes(request, monkeypatch):
    """The configured unit sizes, and small ones, so that a small model spans several stream
    units and several reduction and update spans."""
    if request.param == "small units":
        monkeypatch.setattr(batch, "STREAMS_PER_UNIT", 6)
        monkeypatch.setattr(batch, "UPDATE_UNIT", 1000)
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,L,dropout", MODELS, ids=MODEL_IDS)
def test_thread_count_does_not_change_a_bit(dtype, unit_sizes, cell, L, dropout):
    """Training (forward, backward, the weight gradients, the optimizer, dropout) and
    evaluation as several streams, for every cell: 1, 2, 3 and 8 threads (oversubscribed on a
    small machine) give the same bits (with the small units: 4 stream units, several
    reduction and update spans)."""
    data = np.random.default_rng(3).integers(0, 30, 20_000)
    runs = []
    for threads in (1, 2, 3, 8):
        model = CharRNN(30, hidden_size=40 if L > 1 else 70, seq_length=12, batch_size=20,
                        dtype=dtype, optimizer="adam", learning_rate=0.01, threads=threads,
                        cell=cell, num_layers=L, dropout=dropout)
        losses = model.train(data, 6)
        val, after = model.evaluate(data[:5001], state=model.state[:, :, :1], streams=9)
        runs.append((losses, val, after, model))
    first = runs[0]
    for losses, val, after, model in runs[1:]:
        assert np.array_equal(losses, first[0]), f"losses with {model.threads} threads"
        assert val == first[1], f"evaluation with {model.threads} threads"
        assert np.array_equal(after, first[2]), f"state after evaluation, {model.threads} threads"
        for name, a, b in [("weights", model.weights.flat, first[3].weights.flat),
                           ("Adam's m", model.states[0].flat, first[3].states[0].flat),
                           ("Adam's v", model.states[1].flat, first[3].states[1].flat),
                           ("state", model.state, first[3].state)]:
            assert np.array_equal(a, b), f"{name} with {model.threads} threads"


def test_units_that_finish_out_of_order_change_no_bit(monkeypatch):
    """A chunk's loss and gradients are summed in unit order, never in the order the threads
    finish them: with the first unit made to finish last (it sleeps), 2 and 4 threads give one
    thread's bits. (The test above passes a sum in finishing order whenever the units happen
    to finish in turn, as they often do.)"""
    import time

    monkeypatch.setattr(batch, "STREAMS_PER_UNIT", 6)  # 4 units
    data = np.random.default_rng(3).integers(0, 30, 20_000)

    def trained(threads):
        model = CharRNN(30, hidden_size=40, seq_length=12, batch_size=20, dtype="float32",
                        optimizer="adam", learning_rate=0.01, threads=threads, cell="lstm")
        return model.train(data, 3), model.weights.flat

    losses, weights = trained(1)
    backward = batch._backward_one

    def first_unit_late(work, w, g, drop):
        if g.streams.start == 0:
            time.sleep(0.05)
        return backward(work, w, g, drop)

    monkeypatch.setattr(batch, "_backward_one", first_unit_late)
    for threads in (2, 4):
        late_losses, late_weights = trained(threads)
        assert np.array_equal(late_losses, losses), f"losses with {threads} threads"
        assert np.array_equal(late_weights, weights), f"weights with {threads} threads"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, streams", [(3001, 7), (3000, 7), (700, 1), (41, 3), (5, 8)])
@pytest.mark.parametrize("cell,L", [("rnn", 1), ("lstm", 2), ("gru", 1)])
def test_evaluation_as_streams_matches_the_oracle(n, streams, dtype, cell, L):
    """Several streams side by side (the last one finishing the n - B*P characters left,
    B*P = 0 included) against the oracle's definition; one stream is min-char-rnn's value."""
    data = np.random.default_rng([n, streams]).integers(0, 20, n)
    models = {b: CharRNN(20, hidden_size=24, seq_length=9, dtype=dtype, backend=b, seed=2,
                         threads=2, cell=cell, num_layers=L) for b in ("numba", "numpy")}
    S = 2 if cell == "lstm" else 1
    start = (np.random.default_rng(1).standard_normal((L, S, 1, 24)) * 0.3).astype(dtype)
    results = {b: m.evaluate(data, state=start, streams=streams) for b, m in models.items()}
    w64 = as64(models["numba"].weights)
    loss_ref, state_ref = reference.evaluate(w64, data, np.repeat(start, streams, 2)
                                             .astype(np.float64), chunk=50)
    for b, (loss, state) in results.items():
        assert state.shape == (L, S, streams, 24), b
        assert_close(loss, loss_ref, dtype, f"{b} loss")
        assert_close(state, state_ref, dtype, f"{b} state")
    if streams > 1 and (n - 1) // streams:  # later streams start without context: another sum
        one, _ = models["numpy"].evaluate(data, state=start)
        assert one != results["numpy"][0]


@pytest.mark.parametrize("cell,L,streams", [("lstm", 2, 1), ("gru", 3, 3), ("rnn", 2, 1)])
def test_evaluation_with_its_layers_pipelined_has_the_bits_of_one_thread(cell, L, streams):
    """One unit of streams with several layers: on 2 or 3 threads its layers run as a
    pipeline over the chunks (batch._pipelined), then the short last chunk and the characters
    left; the loss and the state after are those of one thread, bit for bit."""
    data = np.random.default_rng(7).integers(0, 11, 3003)   # 11 chunks of 256, then the rest
    S = 2 if cell == "lstm" else 1
    start = (np.random.default_rng(2).standard_normal((L, S, 1, 16)) * 0.3).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        model = CharRNN(11, hidden_size=16, dtype=np.float32, seed=3, threads=threads,
                        cell=cell, num_layers=L)
        results.append(model.evaluate(data, state=start, streams=streams))
    for threads, (loss, state) in zip((2, 3), results[1:]):
        assert loss == results[0][0], f"loss with {threads} threads"
        assert np.array_equal(state, results[0][1]), f"state with {threads} threads"
    assert not np.array_equal(results[0][1], np.repeat(start, streams, 2))


def test_the_pipeline_is_left_out_where_its_buffers_would_take_too_much_memory(monkeypatch):
    """A chunk in flight per layer is L^2 buffers for L layers: past config.PIPELINE_BYTES of
    them (a deep model) validation runs the layers one after the other instead, same bits."""
    data = np.random.default_rng(7).integers(0, 11, 1500)
    calls, real = [], batch._pipelined
    monkeypatch.setattr(batch, "_pipelined", lambda *a: calls.append(1) or real(*a))
    results = []
    for limit in (1 << 28, 0):  # pipelined, then not
        monkeypatch.setattr(batch, "PIPELINE_BYTES", limit)
        model = CharRNN(11, hidden_size=16, dtype=np.float32, seed=3, threads=2, cell="lstm",
                        num_layers=3)
        results.append(model.evaluate(data))
        assert len(calls) == 1, limit
    assert results[0][0] == results[1][0] and np.array_equal(results[0][1], results[1][1])


def test_the_pipelines_memory_guard_counts_every_buffer_of_a_unit_once():
    """What the pipeline's extra units would take (batch._buffer_bytes): every array of a unit,
    those made by tiles.empty (views of a larger one) included, one serving as two (lstm's
    das and dahs) once, its gradients (rows of Work.partials) left out."""
    g = batch.Work(Spec("lstm", 300, 64, 2), 1, 100, np.float32).groups[0]
    assert g.das is g.dahs and g.dyT.base is not None and g.dyT.size > 0
    arrays = {id(a): a for a in vars(g).values() if isinstance(a, np.ndarray)}
    size = sum(a.nbytes for a in arrays.values())
    assert size <= batch._buffer_bytes(g) <= size + len(arrays) * tiles.LINE


def test_the_oracles_streams_are_the_single_stream_evaluation_of_their_pieces():
    """reference.evaluate with B streams is, by definition, B single-stream evaluations of
    contiguous pieces (the last piece longer by the n - B*P characters left)."""
    rng = np.random.default_rng(6)
    w = random_weights(rng, 8, 5, np.float64, 0.4)
    data = rng.integers(0, 5, 103)
    B, n = 4, 102
    P = n // B
    start = rng.standard_normal((1, 1, 1, 8)) * 0.3
    loss, state = reference.evaluate(w, data, np.repeat(start, B, 2))
    pieces = [data[b * P:(b + 1) * P + 1] for b in range(B - 1)] + [data[(B - 1) * P:]]
    expected = [reference.evaluate(w, piece, start) for piece in pieces]
    np.testing.assert_allclose(loss, sum(e[0] for e in expected), rtol=1e-12)
    for b, (_, s) in enumerate(expected):
        np.testing.assert_allclose(state[:, :, b], s[:, :, 0], rtol=1e-12)


def test_batched_model_on_both_backends_and_its_errors():
    data = np.random.default_rng(4).integers(0, 12, 3000)
    models = {b: CharRNN(12, hidden_size=10, seq_length=6, batch_size=5, learning_rate=0.01,
                         backend=b) for b in ("numba", "numpy")}
    losses = {b: m.train(data, 15) for b, m in models.items()}
    assert_close(losses["numba"], losses["numpy"], np.float64, "losses")
    assert models["numba"].h.shape == (5, 10)
    assert models["numba"].state.shape == (1, 1, 5, 10)
    with pytest.raises(ValueError, match="training with seq_length=6 in 5 streams needs at least 35"):
        models["numba"].train(data[:30], 1)
    with pytest.raises(ValueError, match="batch_size must be"):
        CharRNN(12, batch_size=0)


def test_a_forked_child_trains_on_threads_after_its_parent_did():
    """multiprocessing's fork (Linux's default): the child inherited the parent's thread pool
    without its threads, and its first multi-threaded call waited forever."""
    import multiprocessing
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    data = np.random.default_rng(0).integers(0, 10, 3000)
    parent = _train_in_child(data)  # (here: the pool is made, its threads started)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        child = pool.apply_async(_train_in_child, (data,)).get(timeout=120)
    np.testing.assert_array_equal(child, parent)


def _train_in_child(data):
    """40 streams (3 units) on 2 threads: its weights after 3 chunks."""
    model = CharRNN(10, hidden_size=8, seq_length=5, cell="lstm", batch_size=40, threads=2)
    model.train(data, 3)
    return model.weights.flat


def test_the_kernels_blas_limit_is_shared_by_the_threads_that_run_them():
    """(threadpool_limits is the process's: two models training on two Python threads
    restored it out of order, one's products then ran on two BLAS threads, and BLAS was left
    at one) The first thread in sets one BLAS thread, the last one out restores it."""
    import threading
    from threadpoolctl import threadpool_info, threadpool_limits
    blas = lambda: [p["num_threads"] for p in threadpool_info()  # noqa: E731
                    if p["user_api"] == "blas"]
    limit = threadpool_limits(2, user_api="blas")  # (one already would prove nothing)
    before = blas()
    assert before == [2] * len(before) and before, before
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with batch.one_blas_thread():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with batch.one_blas_thread():
            second_in.set()
            first_out.wait(10)
            seen["after the first left"] = blas()

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen["after the first left"] == [1] * len(before)
    assert blas() == before
    limit.restore_original_limits()


def test_an_exception_in_a_units_thread_waits_for_the_others_to_stop():
    """(Ctrl-C in a batched evaluate came out while a pool thread went on writing the scratch
    buffers the next call reuses) The others finish the item in hand, take no other, and are
    waited for before the exception comes out."""
    import threading
    import time
    started, done = threading.Event(), []

    def item(k):
        if threading.current_thread() is threading.main_thread():
            started.wait(10)
            raise KeyboardInterrupt
        started.set()
        time.sleep(0.2)
        done.append(k)

    with pytest.raises(KeyboardInterrupt):
        batch._run(2, item, list(range(10)))
    assert len(done) == 1  # (the helper's one item, whichever it took)


def test_ctrl_c_while_this_thread_waits_for_the_others_waits_for_them_too():
    """(the KeyboardInterrupt came out of the wait for the pool's threads, which went on)"""
    import os
    import signal
    import threading
    import time
    done, started = [], threading.Event()

    def item(k):
        if threading.current_thread() is threading.main_thread():
            started.wait(10)  # (so that the pool's thread holds the other item)
        else:
            started.set()
            time.sleep(0.5)
            done.append(k)

    def interrupt():  # (once the pool's thread holds its item: not before, on a loaded machine)
        started.wait(10)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        batch._run(2, item, [0, 1])
    timer.join()
    assert len(done) == 1
