"""CharRNN: the fused multi-chunk kernel equals min-char-rnn's loop, on every backend."""

import contextlib
import copy
import os
import pickle
import re

import numpy as np
import pytest

import fastrnn
from fastrnn import CharRNN, Spec, Vocab, checkpoint, optim, reference
from tests.helpers import NAMES, assert_close


@pytest.fixture
def corpus(text):
    vocab = Vocab.from_text(text)
    return vocab, vocab.encode(text[:30_000])


def min_char_rnn_weights(H, V, seed):
    """min-char-rnn's initial parameters (``fastrnn.init_params``: its own (H,1) shapes) copied
    into a flat buffer laid out by the spec, for the oracle's training loop."""
    Wxh, Whh, Why, bh, by = fastrnn.init_params(H, V, seed=seed)
    w = Spec("rnn", V, H).zeros(np.float64)
    for dst, src in zip((w.layers[0].Wxh, w.layers[0].Whh, w.Why, w.layers[0].bh, w.by),
                        (Wxh, Whh, Why, bh, by)):
        dst[...] = src.reshape(dst.shape)
    return w


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_train_equals_min_char_rnn_loop(corpus, backend):
    vocab, data = corpus
    V, H = len(vocab), 24
    model = CharRNN(V, hidden_size=H, learning_rate=0.05, seed=4, backend=backend)
    losses = np.concatenate([model.train(data, 30), model.train(data, 20)])  # state carries over
    spec = Spec("rnn", V, H)
    w = min_char_rnn_weights(H, V, seed=4)
    adagrad = optim.get("adagrad")
    mems = [spec.zeros(np.float64) for _ in adagrad.states]
    expected, pos, state = reference.train(w, adagrad, mems, data, 0, np.zeros((1, 1, 1, H)),
                                           0.05, 25, 50)
    assert model.position == pos
    assert model.step == 50
    assert_close(losses, expected, np.float64, "losses")
    assert model.state.shape == (1, 1, 1, H)
    assert_close(model.state, state, np.float64, "state")
    assert_close(model.h, state[-1, 0], np.float64, "h")
    for name, a in model.params.items():
        assert_close(a, spec.named(w)[name], np.float64, name)
    for name, a in spec.named(model.states[0]).items():
        assert_close(a, spec.named(mems[0])[name], np.float64, "m" + name)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_training_with_dropout_equals_the_oracle_with_the_documented_masks(corpus, cell, backend):
    """CharRNN with dropout trains as ``reference.train`` given the masks the README states:
    drawn by ``reference.dropout_masks`` from ``default_rng([1, seed])``, chunk after chunk,
    at the config's rate (two calls, so the generator carries across them)."""
    vocab, data = corpus
    V, H, T, B, L, p, seed = len(vocab), 8, 6, 2, 3, 0.3, 5
    model = CharRNN(V, hidden_size=H, seq_length=T, batch_size=B, cell=cell, num_layers=L,
                    dropout=p, optimizer="adam", learning_rate=0.01, seed=seed,
                    backend=backend, threads=1)
    w = model.spec.view(model.weights.flat.copy())
    first = model.spec.view(model.weights.flat.copy())
    states = [model.spec.zeros(np.float64) for _ in model.optimizer.states]
    losses = np.concatenate([model.train(data, 4), model.train(data, 3)])
    masks = reference.dropout_masks(np.random.default_rng([1, seed]), p, (7, L - 1, T, B, H),
                                    np.float64)
    expected, pos, state = reference.train(w, model.optimizer, states, data, 0,
                                           model.zero_state(B), 0.01, T, 7, masks=masks)
    assert model.position == pos
    assert_close(losses, expected, np.float64, "losses")
    assert_close(model.state, state, np.float64, "state")
    assert_close(model.weights.flat, w.flat, np.float64, "weights")
    reference.train(first, model.optimizer, [model.spec.zeros(np.float64) for _ in states],
                    data, 0, model.zero_state(B), 0.01, T, 7)  # (the same without dropout)
    assert np.abs(first.flat - w.flat).max() > 1e-3, "the masks changed the training"


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cell, B, dtype, optimizer, clip", [
    ("rnn", 1, np.float64, "adagrad", 0.05),  # min-char-rnn's model: the single-stream kernels
    ("rnn", 1, np.float32, "rmsprop", 0),
    ("lstm", 3, np.float64, "adam", 0.05),    # the mini-batch kernels
    ("gru", 2, np.float32, "adagrad", 0)])
def test_training_clips_the_gradients_at_grad_clip(corpus, backend, cell, B, dtype, optimizer,
                                                   clip):
    """grad_clip clips every element of a chunk's gradients to [-grad_clip, grad_clip] before
    its update, 0 not at all, as ``reference.train``'s ``clip`` does, on every path; the data
    is such that the default clip (5) trains otherwise."""
    vocab, data = corpus
    V, H, T, n = len(vocab), 8, 40, 6
    model = CharRNN(V, hidden_size=H, seq_length=T, batch_size=B, cell=cell,
                    optimizer=optimizer, learning_rate=0.01, seed=3, dtype=dtype,
                    backend=backend, threads=1, grad_clip=clip)
    assert model.config.grad_clip == clip
    first = model.weights.flat.astype(np.float64)
    losses = model.train(data, n)
    ends = {}
    for bound in (clip, fastrnn.config.CLIP):
        w = model.spec.view(first.copy())
        states = [model.spec.zeros(np.float64) for _ in model.optimizer.states]
        expected, pos, state = reference.train(w, model.optimizer, states, data, 0,
                                               np.zeros(model.state.shape), 0.01, T, n,
                                               clip=bound)
        ends[bound] = (w, expected, state)
    w, expected, state = ends[clip]
    assert_close(losses, expected, dtype, "losses")
    assert_close(model.state, state, dtype, "state")
    assert_close(model.weights.flat, w.flat, dtype, "weights")
    assert np.abs(ends[fastrnn.config.CLIP][0].flat - w.flat).max() > 1e-3, \
        "the default clip trains otherwise"


def test_params_are_named_views_of_the_weights():
    model = CharRNN(6, hidden_size=5, seed=1)
    assert tuple(model.params) == NAMES
    rnn = model.weights.layers[0]
    shapes = {"Wxh": (5, 6), "Whh": (5, 5), "bh": (5,), "Why": (6, 5), "by": (6,)}
    for name, a in model.params.items():
        assert a.shape == shapes[name], name
        assert np.shares_memory(a, model.weights.flat), name
    assert np.shares_memory(model.params["Whh"], rnn.Whh)
    assert np.shares_memory(model.h, model.state)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_start_from_pytorchs_initialisation_output_layer_included(cell):
    """Every tensor of an LSTM or GRU model, the softmax layer's too, is U(-1/sqrt(H),
    1/sqrt(H)) (nn.LSTM's, nn.GRU's and nn.Linear(H, V)'s rule)."""
    V, H = 40, 64
    bound = 1 / np.sqrt(H)
    spec = Spec(cell, V, H, num_layers=2)
    for name, array in spec.named(spec.init(3)).items():
        assert np.abs(array).max() <= bound, name
        assert np.abs(array).max() > 0.9 * bound, name      # spread over the whole interval
        assert abs(array.mean()) < 0.2 * bound, name


def test_the_tanh_cell_keeps_min_char_rnns_softmax_layer():
    """min-char-rnn's N(0, 0.01) output weights and zero biases."""
    rnn = Spec("rnn", 40, 64).init(3)
    assert not rnn.by.any() and not rnn.layers[0].bh.any()
    assert 0.005 < rnn.Why.std() < 0.015


def test_training_lowers_the_loss(corpus):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=64)
    losses = model.train(data, 600)
    assert losses[-50:].mean() < 0.8 * losses[:50].mean()


def test_sampling_is_the_same_text_on_both_backends(corpus):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=32, learning_rate=0.01)
    model.train(data, 50)
    texts, states = {}, {}
    for backend in ("numba", "numpy"):
        model.backend = backend
        ids, states[backend] = model.sample(200, vocab.index["T"], rng=np.random.default_rng(1))
        texts[backend] = vocab.decode(ids)
    assert texts["numba"] == texts["numpy"]
    assert states["numba"].shape == (1, 1, 1, 32)
    assert_close(states["numba"], states["numpy"], np.float64, "state after sampling")


def test_top_k_and_top_p_keep_the_characters_the_definition_names():
    """reference.truncate: ranked by probability (ties: lower index first); rank r kept while
    r < k and the mass ranked before it is below p; nothing changes at k = 0, p = 1."""
    from fastrnn import reference
    p = np.array([0.1, 0.2, 0.5, 0.2])
    assert reference.truncate(p, 2, 1.0).tolist() == [0, 0.2, 0.5, 0]      # the tie: index 1
    assert reference.truncate(p, 0, 0.6).tolist() == [0, 0.2, 0.5, 0]      # 0.5 < 0.6, 0.7 not
    assert reference.truncate(p, 0, 0.5).tolist() == [0, 0, 0.5, 0]        # the mode alone
    assert reference.truncate(p, 0, 0.71).tolist() == [0, 0.2, 0.5, 0.2]
    assert reference.truncate(p, 1, 1.0).tolist() == [0, 0, 0.5, 0]        # top-1 is greedy
    assert reference.truncate(p, 0, 1.0).tolist() == p.tolist()
    assert reference.truncate(p, 4, 1.0).tolist() == p.tolist()


def _truncated_by_scans(p, top_k, top_p):
    """The definition, step by step: rank the next character by a scan for the most probable
    not yet ranked (ties: the lower index) while the rule keeps it."""
    p = np.array(p)
    kept, mass = [], 0.0
    while len(kept) < len(p) and not (top_k and len(kept) >= top_k) and mass < top_p:
        best = max((v for v in range(len(p)) if v not in kept), key=lambda v: (p[v], -v))
        kept.append(best)
        mass += float(p[best])
    p[[v for v in range(len(p)) if v not in kept]] = 0
    return p


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_truncation_by_sorting_and_by_a_heap_keeps_what_the_definition_keeps(dtype):
    """reference.truncate (a sort) and the kernels' scalar.truncate (a heap, O(V + kept log V):
    the scans took 8.5 ms a character at V = 3,004) keep exactly the characters that ranking
    by repeated scans keeps: many ties and zeros, every k and p edge."""
    from fastrnn import reference
    from fastrnn.kernels import scalar
    from numba import njit
    kernel = njit(lambda p, k, q, marks: scalar.truncate(p, k, q, marks))
    rng = np.random.default_rng(5)
    for trial in range(300):
        V = int(rng.integers(1, 40))
        p = rng.choice([0.0, 0.01, 0.05, 0.2], V) if trial % 3 else rng.random(V)
        p = (p / p.sum() if p.sum() else p).astype(dtype)
        top_k = int(rng.integers(0, V + 2))
        top_p = float(rng.choice([1.0, 0.5, 0.9, rng.random(), float(np.cumsum(p)[V // 2])]))
        if reference.truncates(V, top_k, top_p):
            expected = _truncated_by_scans(p, top_k, top_p)
        else:
            expected = p
        assert reference.truncate(p, top_k, top_p).tolist() == expected.tolist(), (p, top_k, top_p)
        got = p.copy()
        kernel(got, top_k, top_p, np.empty(V))
        assert got.tolist() == expected.tolist(), (p, top_k, top_p)


@pytest.mark.parametrize("top_k, top_p", [(5, 1.0), (0, 0.9), (8, 0.8), (1, 1.0)])
def test_top_k_and_top_p_sampling_is_the_same_text_on_both_backends(corpus, top_k, top_p):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=32, learning_rate=0.01)
    model.train(data, 50)
    texts = {}
    for backend in ("numba", "numpy"):
        model.backend = backend
        ids, _ = model.sample(300, vocab.index["T"], rng=np.random.default_rng(1), top_k=top_k,
                              top_p=top_p, temperature=1.3)
        texts[backend] = ids
    assert texts["numba"] == texts["numpy"]
    plain, _ = model.sample(300, vocab.index["T"], rng=np.random.default_rng(1), temperature=1.3)
    assert texts["numpy"] != plain, "the options must change the draws"
    if top_k == 1:
        greedy, _ = model.sample(300, vocab.index["T"], greedy=True)
        assert texts["numpy"] == greedy
    with pytest.raises(ValueError, match="top_k must be an integer >= 0"):
        model.sample(3, 0, top_k=-1)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        model.sample(3, 0, top_p=1.5)


def test_greedy_sampling_refuses_the_settings_it_would_ignore():
    """greedy=True takes the most likely character: a temperature, top_k or top_p with it would
    change nothing, so it is refused (as the sample command's --greedy is), not ignored; the
    settings that draw from every character go with it."""
    model = CharRNN(6, hidden_size=8, seed=1)
    greedy, _ = model.sample(20, 0, greedy=True)
    for settings, named in [({"top_k": 3}, "top_k=3 would"), ({"top_p": 0.5}, "top_p=0.5 would"),
                            ({"temperature": np.float32(0.7), "top_k": np.int8(2)},
                             "temperature=0.7 and top_k=2 would change nothing .drop them, or "
                             "greedy=True.")]:
        with pytest.raises(ValueError, match=f"greedy=True takes the most likely character: "
                                             f"{named}"):
            model.sample(20, 0, greedy=True, **settings)
    for same in ({"top_k": 0}, {"top_k": 6}, {"top_k": 60}, {"top_p": 1.0},
                 {"temperature": 1}):
        assert model.sample(20, 0, greedy=True, **same)[0] == greedy, same


@pytest.mark.parametrize("cell, num_layers", [("rnn", 1), ("lstm", 2), ("gru", 1)])
@pytest.mark.parametrize("dtype, tiny", [("float64", 1e-320), ("float64", 1e-308),
                                         ("float32", 1e-40), ("float32", 1e-38)])
def test_a_temperature_too_small_for_the_dtype_samples_greedily(corpus, dtype, tiny, cell,
                                                                 num_layers):
    """logits / T would overflow the dtype (softmax NaN, the draws garbage): the limit T -> 0,
    the greedy text, on every backend; an ordinary temperature draws as the oracle does."""
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=16, seq_length=10, dtype=dtype, cell=cell,
                    num_layers=num_layers, seed=1)
    model.train(data, 30)
    seed_ix = vocab.index["T"]
    for backend in ("numba", "numpy"):
        model.backend = backend
        greedy, _ = model.sample(40, seed_ix, greedy=True)
        assert len(vocab) - 1 not in greedy  # what NaN probabilities draw, every time
        ids, _ = model.sample(40, seed_ix, rng=np.random.default_rng(1), temperature=tiny)
        assert ids == greedy, f"{backend} at temperature {tiny:g}"
        ids, _ = model.sample(40, seed_ix, rng=np.random.default_rng(1), temperature=0.5)
        expected, _ = reference.sample(model.weights, model.state[:, :, :1], seed_ix,
                                       np.random.default_rng(1).random(40), 0.5)
        assert ids == expected, f"{backend} at temperature 0.5"


def test_top_k_beyond_the_vocabulary_keeps_every_character(corpus):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=16, seed=1)
    model.train(data, 10)
    for backend in ("numba", "numpy"):
        model.backend = backend
        plain, _ = model.sample(50, 0, rng=np.random.default_rng(2))
        for top_k in (len(vocab), len(vocab) + 1, 2**63, 2**64, 10**30, np.uint64(2**64 - 1)):
            ids, _ = model.sample(50, 0, rng=np.random.default_rng(2), top_k=top_k)
            assert ids == plain, f"{backend}, top_k={top_k}"


@pytest.mark.parametrize("n", [1.7, "5", None, True, -1, 3.0])
def test_a_count_that_is_not_a_non_negative_integer_is_named(n):
    model = CharRNN(7, hidden_size=10)
    with pytest.raises(ValueError, match=f"n must be a non-negative integer, got {n!r}"):
        model.sample(n, 1)


def test_a_count_may_be_a_numpy_integer_or_zero():
    model = CharRNN(7, hidden_size=10)
    assert len(model.sample(np.int64(3), 1)[0]) == 3 and model.sample(0, 1)[0] == []


def test_evaluate_equals_the_oracle_from_a_given_state(corpus):
    vocab, data = corpus
    H = 16
    model = CharRNN(len(vocab), hidden_size=H, seed=5)
    model.train(data, 20)
    start = model.state.copy()
    text = data[1000:1700]
    expected, expected_state = reference.evaluate(model.weights, text, start)
    for backend in ("numba", "numpy"):
        model.backend = backend
        loss, state = model.evaluate(text, state=start)
        assert_close(loss, expected, np.float64, f"{backend} loss")
        assert state.shape == (1, 1, 1, H)
        assert_close(state, expected_state, np.float64, f"{backend} state")
    np.testing.assert_array_equal(model.state, start)  # evaluation leaves the model alone
    zero_loss, _ = model.evaluate(text)
    assert_close(zero_loss, reference.evaluate(model.weights, text, np.zeros((1, 1, 1, H)))[0],
                 np.float64, "loss from the default zero state")


# (cell, layers, streams, threads): min-char-rnn's kernel in calls of 256 steps; stream units
# on two threads; one stream's layers pipelined over two threads; one plain stream
PROGRESS_CASES = [("rnn", 1, 1, 1), ("gru", 1, 3, 2), ("lstm", 2, 1, 2), ("lstm", 1, 1, 1)]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cell, L, streams, threads", PROGRESS_CASES)
def test_evaluation_reports_its_progress_and_computes_the_same_bits(corpus, monkeypatch, backend,
                                                                   cell, L, streams, threads):
    """evaluate(progress=f): f hears, chunk after chunk, of the characters predicted (they add
    up to the text's predictions); the loss and state are those of a call without it."""
    from fastrnn.backends import numba as numba_backend
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=12, cell=cell, num_layers=L, seed=2, backend=backend,
                    threads=threads, dtype="float32")
    model.train(data, 3)
    text = data[:2400]
    said = []
    loss, state = model.evaluate(text, streams=streams, progress=said.append)
    assert sum(said) == len(text) - 1 and len(said) >= 4 and min(said) > 0, said
    assert (loss, state.tobytes()) == (lambda r: (r[0], r[1].tobytes()))(
        model.evaluate(text, streams=streams))


def test_min_char_rnns_evaluation_calls_are_sized_by_their_work(corpus, monkeypatch):
    """min-char-rnn's model is evaluated in calls of at most EVAL_CALL_MACS multiply-adds
    (H(H + V) a step), whole passes of EVAL_STEPS, at least one (a large H was one call of
    a whole held-out text, deaf to Ctrl-C): the same bits as one call."""
    from fastrnn.backends import numba as numba_backend
    vocab, data = corpus
    H, V = 12, len(vocab)
    model = CharRNN(V, hidden_size=H, seed=2)
    model.train(data, 3)
    text = data[:3000]
    whole = model.evaluate(text)
    for macs, calls in ((H * (H + V) * 600, [512] * 5 + [439]), (1, [256] * 11 + [183])):
        monkeypatch.setattr(numba_backend, "EVAL_CALL_MACS", macs)
        said = []
        loss, state = model.evaluate(text, progress=said.append)
        assert said == calls
        assert (loss, state.tobytes()) == (whole[0], whole[1].tobytes())


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_weights_that_are_not_numbers_have_no_loss(corpus, backend):
    """(numba's fast math gave a model with an infinite weight a finite loss; numpy NaN)"""
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=12, backend=backend)
    model.weights.layers[0].Whh[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"weights hold NaN or infinite values \(its training "
                                         r"diverged\): there is no loss to compute"):
        model.evaluate(data[:100])


def test_a_progress_callback_can_end_an_evaluation_and_must_be_callable(corpus, monkeypatch):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=12, cell="gru")
    before = model.state.copy()

    def stop(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.evaluate(data[:2000], progress=stop)
    np.testing.assert_array_equal(model.state, before)
    with pytest.raises(ValueError, match="progress must be callable .*, got int"):
        model.evaluate(data[:20], progress=3)
    # sample's: after each call of at most SAMPLE_CALL_CHARS; the same text as without it
    said, rng = [], np.random.default_rng(4)
    ids, _ = model.sample(2500, 0, rng=np.random.default_rng(4), progress=said.append)
    assert said == [1024, 1024, 452] and ids == model.sample(2500, 0, rng=rng)[0]
    from fastrnn import config  # (a large model: calls of fewer characters, the same text)
    monkeypatch.setattr(config, "SAMPLE_CALL_MACS", model.spec.size * 1000)
    said = []
    assert model.sample(2500, 0, rng=np.random.default_rng(4), progress=said.append)[0] == ids
    assert said == [1000, 1000, 500]
    with pytest.raises(KeyboardInterrupt):
        model.sample(2500, 0, progress=stop)
    np.testing.assert_array_equal(model.state, before)
    with pytest.raises(ValueError, match="progress must be callable, got int"):
        model.sample(5, 0, progress=3)


@pytest.mark.parametrize("cell, L, B, backend", [("lstm", 2, 2, "numba"), ("rnn", 1, 1, "numba"),
                                                 ("gru", 2, 3, "numpy")])
def test_a_model_pickles_and_deep_copies_into_an_equal_independent_one(corpus, cell, L, B,
                                                                       backend):
    """(copy.deepcopy(model), to keep the best one in a notebook, and pickle, to hand one to
    another process, were a TypeError: a cell is a module) Its copy trains on as it would
    have, bit for bit, dropout's generator and the optimizer's state included, and shares no
    memory with it; so do Weights (views of their own flat buffer) and a Spec."""
    import copy
    import pickle
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=8, cell=cell, num_layers=L, batch_size=B,
                    dropout=0.2 if L > 1 else 0.0, optimizer="adam", learning_rate=0.01,
                    backend=backend, dtype="float32", threads=2)
    model.train(data, 3)
    copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    losses = model.train(data, 2)
    for other in copies:
        assert (other.backend, other.threads, other.config) == (backend, 2, model.config)
        assert not np.shares_memory(other.weights.flat, model.weights.flat)
        assert np.array_equal(other.train(data, 2), losses)
        for a, b in zip([other.weights, *other.states, other.state], [model.weights,
                                                                       *model.states,
                                                                       model.state]):
            assert np.array_equal(getattr(a, "flat", a), getattr(b, "flat", b))
    w = model.spec.init(1, "float32")
    for other in (copy.deepcopy(w), pickle.loads(pickle.dumps(w))):
        assert model.spec.lays_out(other) and np.array_equal(other.flat, w.flat)
        assert not np.shares_memory(other.flat, w.flat)
    assert repr(pickle.loads(pickle.dumps(model.spec))) == repr(model.spec)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_long_sample_is_drawn_in_calls_with_the_same_text(corpus, monkeypatch, backend):
    """(sample(10**7) was one kernel call, minutes that Ctrl-C could not stop) Calls of at most
    SAMPLE_CALL_CHARS, each from the last one's state and character: the same text."""
    from fastrnn import config
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=12, cell="lstm", num_layers=2, backend=backend)
    model.train(data, 3)
    whole = model.sample(50, 3, rng=np.random.default_rng(1), temperature=0.8, top_k=5)
    calls = []
    real = model._kernels.sample
    monkeypatch.setattr(model._kernels, "sample", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(config, "SAMPLE_CALL_CHARS", 7)
    split = model.sample(50, 3, rng=np.random.default_rng(1), temperature=0.8, top_k=5)
    assert split[0] == whole[0] and np.array_equal(split[1], whole[1]) and len(calls) == 8


@pytest.mark.parametrize("optimizer", ["adagrad", "rmsprop", "adam"])
def test_a_schedule_may_end_at_a_rate_of_zero(corpus, optimizer):
    """(a schedule of one's own that ends at 0, as --anneal does, failed on its last call)
    A rate of 0 moves no weight; the optimizer's state and update count advance. A negative
    one is still refused, and so is one that is 0 only in the dtype (a mistake, not an end)."""
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=8, optimizer=optimizer, dtype="float32")
    model.train(data, 2)
    weights, states = model.weights.flat.copy(), [s.flat.copy() for s in model.states]
    model.train(data, 1, learning_rate=0.0)
    model.train(data, 1, learning_rate=np.float32(0))
    assert np.array_equal(model.weights.flat, weights) and model.step == 4
    assert not np.array_equal(model.states[0].flat, states[0])
    with pytest.raises(ValueError, match="learning_rate must be a positive number, got -0.1"):
        model.train(data, 1, learning_rate=-0.1)


def test_params_are_read_by_name_and_written_through_never_replaced_in_silence():
    """(``model.params["Whh"] = x`` went into a dict made for the call: lost)"""
    model = CharRNN(5, hidden_size=4)
    model.params["Whh"][...] = np.eye(4)
    assert np.array_equal(model.weights.layers[0].Whh, np.eye(4))
    for change in (lambda p: p.__setitem__("Whh", np.zeros((4, 4))), lambda p: p.pop("Whh"),
                   lambda p: p.update(Whh=0)):
        with pytest.raises(TypeError, match="model.params is read-only: write into its arrays"):
            change(model.params)
    assert list(model.params) == ["Wxh", "Whh", "bh", "Why", "by"]
    import copy
    import pickle
    for kept in (copy.deepcopy(model.params), pickle.loads(pickle.dumps(model.params))):
        assert type(kept) is dict and np.array_equal(kept["Whh"], np.eye(4))
        assert not np.shares_memory(kept["Whh"], model.weights.flat)


def test_a_model_its_vocabulary_and_checkpoint_say_what_they_are():
    """(repr was <fastrnn.model.CharRNN object at 0x...>, and a Checkpoint's every array)"""
    from fastrnn.checkpoint import Checkpoint
    model = CharRNN(10, hidden_size=8, cell="gru", num_layers=2)
    assert repr(model) == ("CharRNN('gru', vocab_size=10, hidden_size=8, num_layers=2, "
                           "dtype='float64', optimizer='adagrad', batch_size=1, "
                           "backend='numba': 970 parameters, 0 updates)")
    vocab = Vocab("abcdefghij")
    assert repr(vocab) == "Vocab(10 characters: 'abcdefghij')"
    assert repr(Vocab([chr(0x4E00 + k) for k in range(45)])).endswith("' and 5 more)")
    # combining marks escaped (shown, they joined the character before: 'è́' for three)
    assert repr(Vocab.from_text("ae\u0300\u0301\U0001d165")) == \
        "Vocab(5 characters: 'ae\\u0300\\u0301\\U0001d165')"  # (read back, the same)
    ckpt = Checkpoint.of(model, vocab, [], {"iteration": 0})
    assert repr(ckpt) == f"Checkpoint({model.config!r}, {vocab!r}, iteration 0, step 0, position 0)"


def test_the_default_learning_rate_is_the_optimizers():
    """Unless given, the learning rate is the optimizer's usual one, as train's: Adagrad's
    0.1 (min-char-rnn's), RMSprop's and Adam's 0.002 (0.1 had been every optimizer's)."""
    from fastrnn import optim
    for name, rate in (("adagrad", 0.1), ("rmsprop", 0.002), ("adam", 0.002)):
        assert optim.get(name).rate == rate
        assert CharRNN(5, hidden_size=4, optimizer=name).config.learning_rate == rate
        assert CharRNN(5, hidden_size=4, optimizer=name,
                       learning_rate=0.5).config.learning_rate == 0.5
    with pytest.raises(ValueError, match="unknown optimizer 'bogus'"):
        CharRNN(5, optimizer="bogus")


def test_characters_listed_name_all_but_a_few():
    """An error's list of characters names the first ten and counts the rest, but lists an
    eleventh: "and 1 more" is as long as it, and hid the one a user was looking for."""
    from fastrnn.vocab import describe
    assert describe(list("abc")) == "'a', 'b', 'c'"
    assert describe(list("abcdefghijk")) == ", ".join(map(repr, "abcdefghijk"))
    assert describe(list("abcdefghijkl")) == ", ".join(map(repr, "abcdefghij")) + " and 2 more"


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float32"), "float32", "f4"])
def test_dtype_may_be_given_as_type_dtype_or_name(dtype):
    model = CharRNN(5, hidden_size=3, dtype=dtype)
    assert model.params["Whh"].dtype == np.float32
    assert model.state.dtype == np.float32


def test_sample_continues_from_the_returned_state():
    model = CharRNN(7, hidden_size=10, seed=2)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    whole, _ = model.sample(40, 1, rng=rng_a)
    first, state = model.sample(20, 1, rng=rng_b)
    assert state.shape == (1, 1, 1, 10)
    second, _ = model.sample(20, first[-1], rng=rng_b, state=state)
    assert first + second == whole


def test_first_stream_state_and_reset_state(corpus):
    """``first_stream_state`` is a view of the first training stream's state (where sampling
    starts by default); ``reset_state`` starts the next chunk at 0 from zeros, as a new model
    of the same weights does."""
    _, data = corpus
    model = CharRNN(int(data.max()) + 1, hidden_size=8, seq_length=5, batch_size=3,
                    cell="lstm")
    model.train(data, 4)
    first = model.first_stream_state()
    assert first.shape == (1, 2, 1, 8) and np.shares_memory(first, model.state)
    assert first.base is model.state or first.base is model.state.base  # (stream 0's view)
    first[...] = 7
    assert (model.state[:, :, 0] == 7).all() and not (model.state[:, :, 1:] == 7).any()
    fresh = copy.deepcopy(model)
    fresh.state[...] = 0
    fresh.position = 0
    model.reset_state()
    assert model.position == 0 and not model.state.any()
    np.testing.assert_array_equal(model.train(data, 2), fresh.train(data, 2))


def test_a_state_of_the_wrong_shape_is_named():
    model = CharRNN(7, hidden_size=10)
    with pytest.raises(ValueError, match=r"state has shape \(10, 1\), expected \(1, 1, 1, 10\)"):
        model.sample(5, 1, state=np.zeros((10, 1)))
    with pytest.raises(ValueError, match=r"state has shape \(1, 1, 2, 10\), expected \(1, 1, 1, 10\)"):
        model.evaluate([1, 2, 3], state=np.zeros((1, 1, 2, 10)))
    # a ragged one: NumPy's "setting an array element with a sequence", naming no argument
    for call in (lambda: model.sample(5, 1, state=[[0.1], [0.2, 0.3]]),
                 lambda: model.evaluate([1, 2, 3], state=[[0.1], [0.2, 0.3]])):
        with pytest.raises(ValueError, match=r"^state must be an array of shape \(1, 1, 1, 10\) "
                                             r"\(layers, state vectors, 1 stream, hidden size\), "
                                             r"got a ragged list$"):
            call()


def test_reset_state_makes_a_state_of_the_batch_size_now():
    """(after a batch_size change, reset_state refused the old state's shape: the way out it
    promises, a zero state, blocked; its array is zeroed in place where it fits)"""
    import dataclasses
    model = CharRNN(7, hidden_size=8, cell="lstm", num_layers=2, batch_size=4)
    kept = model.state
    kept[...] = 1
    model.reset_state()
    assert model.state is kept and not kept.any()  # (in place: a caller's view sees it)
    model.config = dataclasses.replace(model.config, batch_size=2)
    model.position = 9
    model.reset_state()
    assert model.state.shape == (2, 2, 2, 8) and not model.state.any() and model.position == 0
    for other in (None, model.zero_state(2).tolist()):
        model.state = other
        model.reset_state()
        assert isinstance(model.state, np.ndarray) and model.state.shape == (2, 2, 2, 8)
    frozen = model.zero_state(2) + 1
    frozen.flags.writeable = False
    model.state = frozen
    model.reset_state()
    assert model.state is not frozen and not model.state.any()
    model.train(np.arange(100) % 7, 1)  # (trains on, with it)


@pytest.mark.parametrize("state, message", [
    (np.full((1, 1, 1, 10), 1 + 2j), "state must hold real numbers, got dtype complex128"),
    (np.full((1, 1, 1, 10), "x"), "state must hold real numbers, got dtype <U1"),
    (np.full((1, 1, 1, 10), np.nan), r"state holds NaN or infinite values \(in float64\)"),
    (np.full((1, 1, 1, 10), 1e300), r"state holds NaN or infinite values \(in float32\)"),
])
def test_a_state_that_is_not_real_and_finite_is_refused(state, message):
    # (a complex state was cast to its real part with only numpy's warning; a NaN or one that
    # overflows the model's dtype sampled and scored garbage)
    dtype = "float32" if "float32" in message else "float64"
    model = CharRNN(7, hidden_size=10, dtype=dtype)
    for call in (lambda: model.sample(5, 1, state=state),
                 lambda: model.evaluate([1, 2, 3], state=state)):
        with pytest.raises(ValueError, match=message):
            call()


def test_replaced_arrays_that_do_not_fit_are_named_by_copies_too():
    """A replaced public array that does not fit the model: pickling, copying, a Checkpoint
    and ``h`` name it as a training call does (pickle wrote a file that could not be loaded;
    the others raised AttributeError or TypeError). (``reset_state`` makes a state that fits:
    ``test_reset_state_makes_a_state_of_the_batch_size_now``.)"""
    import copy
    import pickle
    from fastrnn.checkpoint import Checkpoint
    for attribute, value, message in (
            ("state", np.zeros((1, 1, 1, 9)), r"^state has shape \(1, 1, 1, 9\), expected"),
            ("state", None, r"^state must be a NumPy array of shape \(1, 1, 1, 8\) .*, got "
                            r"NoneType$"),
            ("weights", None, r"^weights must be Weights over a NumPy array"),
            ("states", None, r"^states must be a list of 1 Weights")):
        model = CharRNN(7, hidden_size=8, seq_length=5)
        setattr(model, attribute, value)
        calls = [lambda: pickle.dumps(model), lambda: copy.deepcopy(model),
                 lambda: Checkpoint.of(model, Vocab("abcdefg"), [], {})]
        if attribute == "state":
            calls += [lambda: model.h]
        for call in calls:
            with pytest.raises(ValueError, match=message):
                call()
    model = CharRNN(7, hidden_size=8, seq_length=5)
    model.weights.flat.flags.writeable = False  # (read-only arrays still copy)
    assert np.array_equal(pickle.loads(pickle.dumps(model)).weights.flat, model.weights.flat)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_weights_or_optimizer_state_no_checkpoint_could_hold_are_refused_by_train(backend):
    """NaN or infinite weights or optimizer state, or negative squared gradients: a ValueError
    naming the tensor (training turned them into NaN losses and weights in silence, which
    checkpoint.save then refused)."""
    data = np.arange(200) % 7
    for optimizer, buffer, value, message in (
            ("adagrad", None, np.nan, r"^weights hold NaN or infinite values \(in Why\): "),
            ("adam", None, -np.inf, r"^weights hold NaN or infinite values \(in Why\): "),
            ("adam", 0, np.nan, r"^states \(m\) hold NaN or infinite values \(in Why\)"),
            ("adagrad", 0, -1.0, r"^states \(m\) hold negative values \(in Why\): the "
                                 r"adagrad optimizer's squared gradients, never negative$"),
            ("rmsprop", 0, -1e-300, r"^states \(m\) hold negative values \(in Why\)"),
            ("adam", 1, -1.0, r"^states \(v\) hold negative values \(in Why\)")):
        model = CharRNN(7, hidden_size=10, seq_length=5, optimizer=optimizer, backend=backend)
        model.train(data, 1)
        target = model.weights if buffer is None else model.states[buffer]
        target.Why[2, 3] = value
        before = model.step, model.position, model.weights.flat.copy()
        with pytest.raises(ValueError, match=message):
            model.train(data, 1)
        assert (model.step, model.position) == before[:2]
        assert np.array_equal(model.weights.flat, before[2], equal_nan=True)
    model = CharRNN(7, hidden_size=10, seq_length=5, optimizer="adam", backend=backend)
    model.states[0].flat[:] = -1.0  # (Adam's first moments may be negative)
    assert np.isfinite(model.train(data, 2)).all()


def test_a_training_call_checked_exactly_after_a_false_alarm_trains_as_any(monkeypatch):
    """The backend's quick check (``values_fit``) may say False where every value fits (finite
    values whose sum overflows, on numba): the exact check then finds nothing and the call
    trains, with the same numbers."""
    from fastrnn.backends.numba import NumbaBackend
    data = np.arange(200) % 7
    runs = []
    for alarm in (False, True):
        if alarm:
            monkeypatch.setattr(NumbaBackend, "values_fit", lambda self, flats, squares: False)
        model = CharRNN(7, hidden_size=10, seq_length=5, optimizer="adam", cell="lstm")
        runs.append((model.train(data, 3), model.weights.flat.copy()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    model = CharRNN(7, hidden_size=10, seq_length=5, dtype="float32", optimizer="adam")
    monkeypatch.undo()
    huge = np.finfo(np.float32).max
    model.weights.layers[0].bh[0] = model.states[0].layers[0].bh[0] = huge  # (tanh of it: 1)
    assert not model._kernels.values_fit([model.weights.flat, *(s.flat for s in model.states)],
                                         2)
    assert np.isfinite(model.train(data, 1)).all()


def test_masked_arrays_are_refused_not_read_masked_values_and_all():
    """A NumPy masked array (of ids, a state, weights): a ValueError saying what to pass (an
    id masked for being outside the vocabulary was read as one, past the weights, on numba;
    numpy's backend raised an IndexError; the drop-ins a Numba typing error)."""
    from fastrnn import dropin
    data = np.arange(200) % 7
    masked = np.ma.masked_array(data.copy(), mask=data > 5)
    masked.data[masked.mask] = 64  # (an id past the vocabulary, under the mask)
    for backend in ("numba", "numpy"):
        model = CharRNN(7, hidden_size=10, seq_length=5, backend=backend)
        for call in (lambda: model.train(masked, 2), lambda: model.evaluate(masked),
                     lambda: model.evaluate(data, state=np.ma.masked_array(model.zero_state(1)))):
            with pytest.raises(ValueError, match=r"(data|state) is a masked array, "
                                                 r"whose masked values fastrnn would read too"):
                call()
        model.weights = model.spec.view(np.ma.masked_array(model.weights.flat))
        with pytest.raises(ValueError, match=r"^weights.flat is a masked array"):
            model.train(data, 1)
    params = dropin.init_params(8, 7, seed=0)
    with pytest.raises(ValueError, match=r"^inputs is a masked array"):
        dropin.lossFun(np.ma.masked_array([1, 2, 3]), [2, 3, 4], np.zeros((8, 1)), *params)
    with pytest.raises(ValueError, match=r"^Whh is a masked array"):
        dropin.lossFun([1, 2, 3], [2, 3, 4], np.zeros((8, 1)), params[0],
                       np.ma.masked_array(params[1]), *params[2:])


@pytest.mark.parametrize("kwargs,message", [
    (dict(vocab_size=1), "vocab_size must be an integer >= 2"),
    (dict(vocab_size=5, hidden_size=0), "hidden_size must be a positive integer"),
    (dict(vocab_size=5, seq_length=-3), "seq_length must be a positive integer"),
    (dict(vocab_size=5, learning_rate=-0.1), "learning_rate must be a positive number"),
    (dict(vocab_size=5, learning_rate=10 ** 5000),  # (no repr: Python's 4,300-digit limit)
     "learning_rate must be a positive number, got an integer of 5,001 digits"),
    (dict(vocab_size=5, dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (dict(vocab_size=5, dtype="double precision"), "dtype must be 'float32' or 'float64'"),
    (dict(vocab_size=5, backend="tpu"), "unknown backend 'tpu'"),
    (dict(vocab_size=5, optimizer="bogus"), "unknown optimizer 'bogus'"),
    (dict(vocab_size=5, cell="transformer"), "unknown cell 'transformer': choose one of rnn, lstm, gru"),
    (dict(vocab_size=5, num_layers=0), "num_layers must be"),
    (dict(vocab_size=5, num_layers=2, dropout=1.0), r"dropout must be a number in \[0, 1\)"),
    (dict(vocab_size=5, num_layers=2, dropout=-0.1), r"dropout must be a number in \[0, 1\)"),
    (dict(vocab_size=5, dropout=0.2), "dropout 0.2 applies between layers: it needs num_layers >= 2"),
    (dict(vocab_size=5, grad_clip=-1),
     r"grad_clip must be a finite number >= 0 \(0: no clipping\), got -1$"),
    (dict(vocab_size=5, grad_clip=float("inf")), r"grad_clip must be a finite number >= 0"),
    (dict(vocab_size=5, grad_clip=float("nan")), r"grad_clip must be a finite number >= 0"),
    (dict(vocab_size=5, grad_clip=True), r"grad_clip must be a finite number >= 0 .*got True"),
    (dict(vocab_size=5, grad_clip="5"), r"grad_clip must be a finite number >= 0 .*got '5'"),
    (dict(vocab_size=5, grad_clip=1e-50, dtype="float32"),
     r"^grad_clip 1e-50 is 0 in float32: it would hold every gradient at 0$"),
    (dict(vocab_size=5, grad_clip=1e300, dtype="float32"),
     r"^grad_clip 1e\+300 is infinite in float32: give 0 for no clipping$"),
])
def test_bad_configuration_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharRNN(**kwargs)


def test_bad_training_data_is_named():
    model = CharRNN(5, hidden_size=4, seq_length=10)
    with pytest.raises(ValueError, match="data has 8 characters; training with seq_length=10 needs at least 11"):
        model.train(np.zeros(8, np.int64))
    with pytest.raises(ValueError, match=r"data holds id 5, outside the vocabulary \[0, 5\)"):
        model.train(np.arange(20) % 6)
    with pytest.raises(ValueError, match="one-dimensional sequence of integer"):
        model.train(np.zeros(20) + 0.5)
    for big in (2**70, -2**64):  # (past int64: NumPy makes an array of objects of them)
        for call in (model.train, model.evaluate):
            with pytest.raises(ValueError, match=rf"^data holds id {big}, outside the "
                                                 rf"vocabulary \[0, 5\)$"):
                call([1, 2, 3] * 5 + [big])
    with pytest.raises(ValueError, match=r"^data holds an id of 5,001 digits, outside the "):
        model.train([1] * 20 + [10**5000])  # (more digits than Python prints)
    for text in ("hello world, " * 3, b"hello world, " * 3, bytearray(b"hello world, " * 3),
                 list("hello world, " * 3)):
        for call in (model.train, model.evaluate):  # (text for ids: a 0-d array of it)
            with pytest.raises(ValueError, match=r"^data must be integer character ids, got "
                                                 r"(str|bytes|bytearray|list) of text: encode text "
                                                 r"first \(vocab"):
                call(text)
    with pytest.raises(ValueError, match=r"^data has 0 characters; evaluate needs at least 1$"):
        model.evaluate(np.zeros(0, np.int64))


@pytest.mark.parametrize("B", [1, 3])
def test_every_id_a_call_reads_is_checked_and_only_those_after_the_first(B):
    """The caller's array of ids is checked whole at its first call, then only where each
    call reads it (the whole of a 100 MB text took 11 ms a call for a 0.3 ms chunk): a bad id
    written into what a later call reads is refused before any kernel reads it, one written
    where no call has read yet is refused when a call would, and a call whose chunks wrap
    around to the start checks the whole array again."""
    T = 5
    data = np.random.default_rng(0).integers(0, 5, 300 * B).astype(np.uint8)
    with pytest.raises(ValueError, match=r"data holds id 9, outside the vocabulary"):
        bad = data.copy()
        bad[-1] = 9  # (never read by the first call: the first call checks it all)
        CharRNN(5, hidden_size=4, seq_length=T, batch_size=B).train(bad, 1)
    model = CharRNN(5, hidden_size=4, seq_length=T, batch_size=B)
    model.train(data, 2)  # positions 0-10 of each stream read: 10 is the next call's first
    piece = len(data) // B
    stream = (B - 1) * piece  # (the last stream's start)
    data[stream + 10] = 7
    weights = model.weights.flat.copy()
    with pytest.raises(ValueError, match=r"data holds id 7, outside the vocabulary \[0, 5\)"):
        model.train(data, 1)
    assert np.array_equal(model.weights.flat, weights) and model.position == 10
    data[stream + 10] = 1
    model.train(data, 1)  # (after a refusal, the whole array is checked again)
    data[stream + 25] = 5  # the last target that two chunks from 15 read
    with pytest.raises(ValueError, match=r"data holds id 5"):
        model.train(data, 2)
    data[stream + 25] = 0
    model.train(data, 1)
    data[stream + 100] = 8  # ahead of this call's reads: trained past...
    model.train(data, 1)
    assert model.position == 25
    with pytest.raises(ValueError, match=r"data holds id 8"):  # ...until a call reads it
        model.train(data, 20)
    assert model.position == 25
    data[stream + 100] = 2
    model.train(data, 20)
    data[stream + 101] = 6  # (read by the chunks after a wrap: the whole array is checked)
    with pytest.raises(ValueError, match=r"data holds id 6"):
        model.train(data, 100)


def test_the_position_checked_is_the_position_trained_from():
    """``position`` is read once a call: a value that changes between two readings (here an
    int whose int() does; another thread's write does the same) had the windows at one
    position checked and the kernels read at another, unchecked (a review found it; on the
    numba backend a segmentation fault). numpy backend: a regression is an IndexError."""
    data = np.random.default_rng(0).integers(0, 5, 300).astype(np.uint8)
    model = CharRNN(5, hidden_size=4, seq_length=5, backend="numpy")
    model.train(data, 1)  # (checked whole: later calls check what they read)
    data[0:6] = 250  # where the second reading points

    class Shifting(int):
        reads = 0

        def __int__(self):
            Shifting.reads += 1
            return 10 if Shifting.reads == 1 else 0

    model.position = Shifting(10)
    losses = model.train(data, 1)  # trained from 10, where it was checked
    assert model.position == 15 and np.isfinite(losses).all()


def test_vocab_round_trip_and_unknown_characters():
    vocab = Vocab.from_text("hello world")
    assert vocab.decode(vocab.encode("world hello")) == "world hello"
    assert Vocab.from_text("ünïcødé").decode(Vocab.from_text("ünïcødé").encode("ünï")) == "ünï"
    with pytest.raises(ValueError, match="characters not in the vocabulary: 'x', 'z'"):
        vocab.encode("zxo")
    assert vocab.decode([]) == "" and vocab.decode(np.array([1, 0], np.uint8)) == "d "
    assert vocab.decode(i for i in (1, 0)) == vocab.decode(range(1, -1, -1)) == "d "
    vocab.chars.append("z")  # (a list of its own: the vocabulary stays as it was)
    assert len(vocab) == 8 and vocab.chars == sorted(set("hello world"))
    with pytest.raises(ValueError, match="characters not in the vocabulary: 'z'"):
        vocab.encode("z")
    assert vocab.index["w"] == 7 and dict(vocab.index) == {c: i for i, c in enumerate(vocab.chars)}
    with pytest.raises(TypeError):
        vocab.index["z"] = 3  # (read-only: it would disagree with encode)
    assert "z" not in vocab.index and vocab.unknown("zw") == ["z"]
    copied = pickle.loads(pickle.dumps(vocab))
    assert copied == vocab and copied.index == vocab.index and copied.encode("w").tolist() == [7]
    assert copy.deepcopy(vocab).index == vocab.index
    old = Vocab.__new__(Vocab)  # (a Vocab pickled when its index was a plain attribute)
    old.__setstate__({"_chars": tuple(vocab.chars), "index": dict(vocab.index),
                      "_ids": vocab._ids})
    assert old == vocab and old.index == vocab.index and old.encode("w").tolist() == [7]


def test_vocab_refuses_ids_and_types_it_would_get_wrong():
    """Not a negative id read from the end, an id wrapped in a dtype too small, float ids or
    bytes: each a ValueError naming it."""
    vocab = Vocab.from_text("hello world")
    for ids, message in [([-1, 0], "decode: id -1 is outside the vocabulary \\[0, 8\\)"),
                         ([100], "decode: id 100 is outside"),
                         ([8], "decode: id 8 is outside the vocabulary \\[0, 8\\)"),
                         ([1.0], "decode takes a sequence of integer ids, got float64"),
                         (3, "decode takes a sequence of integer ids, got int 3"),
                         ([0, [1]], "decode takes a sequence of integer ids, got a nested, "
                                    "ragged sequence")]:
        with pytest.raises(ValueError, match=message):
            vocab.decode(ids)
    from fastrnn.vocab import id_dtype
    assert [id_dtype(n) for n in (2, 256, 257, 65536, 65537)] == \
        [np.uint8, np.uint8, np.uint16, np.uint16, np.uint32]
    for size in (256, 257):  # (the last id of each fits its dtype)
        text = "".join(chr(0x100 + i) for i in range(size))
        edge = Vocab.from_text(text)
        assert edge.decode(edge.encode(text)) == text and edge.encode(text)[-1] == size - 1
    big = Vocab([chr(0x100 + i) for i in range(300)])
    assert big.encode(chr(0x100 + 299), dtype=np.uint16).tolist() == [299]
    for dtype in (np.uint8, np.int8, np.float32):
        with pytest.raises(ValueError, match=f"dtype {np.dtype(dtype)} cannot hold the ids 0 "
                                             f"to 299"):
            big.encode(chr(0x100 + 299), dtype=dtype)
    with pytest.raises(ValueError, match="encode: dtype 'unit16' is not a NumPy type"):
        big.encode("a", dtype="unit16")
    for chars, kind in ((5, "int"), (None, "NoneType"), (b"ab", "bytes")):
        with pytest.raises(ValueError, match=f"a vocabulary is made of characters \\(a str or "
                                             f"a list of them\\), got {kind}"):
            Vocab(chars)
    for call in (lambda: Vocab.from_text(b"hello"), lambda: vocab.encode(b"he"),
                 lambda: vocab.unknown(b"he")):  # (the last: the bytes' integers, unknown)
        with pytest.raises(ValueError, match="takes text as a str, got bytes \\(decode the "
                                             "bytes first\\)"):
            call()


@pytest.mark.parametrize("args, message", [
    (("rnn", -3, 4), "vocab_size must be an integer >= 2, got -3"),
    (("rnn", 1, 4), "vocab_size must be an integer >= 2, got 1"),
    (("rnn", 5.7, 4), "vocab_size must be an integer >= 2, got 5.7"),
    (("rnn", "5", 4), "vocab_size must be an integer >= 2, got '5'"),
    (("lstm", 5, 0), "hidden_size must be an integer >= 1, got 0"),
    (("gru", 5, 4, 0), "num_layers must be an integer >= 1, got 0"),
    (("tanh", 5, 4), "cell"),
])
def test_a_spec_of_impossible_sizes_is_refused_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        Spec(*args)


def test_a_specs_initial_weights_are_checked_before_they_are_made():
    spec = Spec("rnn", 5, 4)
    for call, message in [(lambda: spec.init(-1), "seed must be an integer >= 0 \\(or what "
                                                  "numpy.random.default_rng takes\\), got -1"),
                          (lambda: spec.init(1.5), "seed 1.5 is not one numpy.random.default_rng "
                                                   "takes"),
                          (lambda: spec.init(0, "int64"), "dtype must be float32 or float64, "
                                                          "got int64"),
                          (lambda: spec.init(0, "floot"), "dtype must be float32 or float64, "
                                                          "got 'floot'"),
                          (lambda: spec.view([0.0] * 65), "holds 65 values, got a list"),
                          (lambda: Spec("rnn", 10 ** 6, 10 ** 6).init(),
                           "Spec\\('rnn', vocab_size=1000000, hidden_size=1000000, "
                           "num_layers=1\\) with its 3,000,002,000,000 parameters needs about "
                           "21.8 TiB of memory")]:
        with pytest.raises(ValueError, match=message):
            call()


def test_a_spec_takes_the_seeds_numpy_takes():
    """(init_params(H, V, seed=None), a random start, worked before Spec checked its seed)"""
    spec = Spec("rnn", 5, 4)
    assert not np.array_equal(spec.init(None).flat, spec.init(None).flat)
    sequence = np.random.SeedSequence(7)
    np.testing.assert_array_equal(spec.init(sequence).flat, spec.init(7).flat)
    assert fastrnn.init_params(4, 5, seed=None)[0].shape == (4, 5)


def test_sizes_of_a_call_that_cannot_fit_are_refused_before_allocating():
    model = CharRNN(5, hidden_size=4, seq_length=3)
    data = np.arange(20) % 5
    for call, message in [(lambda: model.sample(10 ** 15, 1), "sampling 1,000,000,000,000,000 "
                                                              "characters needs about 14.2 PiB"),
                          (lambda: model.train(data, 2 ** 62), "the losses of "
                                                               "4,611,686,018,427,387,904 chunks "
                                                               "needs about 32.0 EiB"),
                          (lambda: model.evaluate(data, streams=10 ** 12),
                           "evaluating 1,000,000,000,000 streams needs about"),
                          (lambda: CharRNN(5, hidden_size=2 ** 62),
                           r"needs about [\d.]+e\+\d+ bytes of memory"),
                          # (the gated cells' initialiser was a TypeError past 2**64)
                          (lambda: CharRNN(5, hidden_size=2 ** 64, cell="lstm"),
                           r"needs about [\d.]+e\+\d+ bytes of memory")]:
        with pytest.raises(ValueError, match=message):
            call()
    assert model.evaluate(data, streams=30)[1].shape[2] == 30  # (more than characters: defined)
    assert model.evaluate(data[:1], streams=1)[0] == 0.0


def test_an_evaluation_counts_the_weights_the_kernels_read(monkeypatch):
    """One stream of a large model on the batch kernels: the weights packed for its forward
    pass (about its parameters again) are counted before they are made."""
    from fastrnn import validate
    model = CharRNN(5, hidden_size=1100, cell="lstm")  # 4.9 M parameters, 37 MiB
    monkeypatch.setattr(validate, "available_memory", lambda: 30 * 2 ** 20)
    with pytest.raises(ValueError, match=r"evaluating 1 stream needs about 37\.\d MiB of memory"):
        model.evaluate(np.arange(10) % 5)


def test_a_size_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    """Parameters, optimizer state and training buffers are counted before anything is
    allocated: an impossible size is one ValueError naming the memory, not a MemoryError."""
    from fastrnn import validate
    with pytest.raises(ValueError, match=r"hidden_size 100000000 .* needs about [\d.]+ PiB of "
                                         r"memory; this machine has .* available"):
        CharRNN(65, hidden_size=100_000_000)
    monkeypatch.setattr(validate, "available_memory", lambda: 4 * 2 ** 20)  # 4 MiB
    small = CharRNN(65, hidden_size=100)  # ~0.5 MiB
    assert small.memory_needed() < 4 * 2 ** 20
    with pytest.raises(ValueError, match="needs about 10.4 MiB of memory; this machine has 4.0 MiB"):
        CharRNN(65, hidden_size=500, optimizer="adam")
    monkeypatch.setattr(validate, "available_memory", lambda: None)  # a system that does not say
    CharRNN(65, hidden_size=500, optimizer="adam")
    monkeypatch.setattr(validate, "available_memory", lambda: 2 ** 30)
    with pytest.raises(ValueError, match="a model of 100000000 layers of hidden_size 8 .* needs"):
        CharRNN(10, hidden_size=8, cell="lstm", num_layers=100_000_000)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc")
def test_an_address_space_limit_is_the_memory_available():
    """Under ``ulimit -v`` (RLIMIT_AS) the memory available is what the limit leaves the
    process: a model past it is the one-line refusal at once, not a MemoryError part-way
    (the machine's free memory admitted it)."""
    import subprocess
    import sys
    code = ("from fastrnn import CharRNN\n"
            "try:\n"
            "    CharRNN(65, hidden_size=8000)\n"  # (about 2.5 GB to train)
            "except ValueError as e:\n"
            "    print(e)\n")

    def limited():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 ** 30, resource.getrlimit(
            resource.RLIMIT_AS)[1]))

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=limited, timeout=120)
    assert done.returncode == 0, done.stderr
    found = re.search(r"needs about ([\d.]+) GiB of memory; this machine has ([\d.]+) MiB "
                      r"available", done.stdout)
    assert found and float(found[2]) < 1024, done.stdout + done.stderr


@pytest.mark.parametrize("settings", [
    dict(),                                                        # min-char-rnn's kernels
    dict(batch_size=4, dtype="float32", optimizer="adam"),
    dict(cell="lstm", dtype="float32"),                            # one stream, batch kernels
    dict(cell="lstm", num_layers=3, batch_size=20, dropout=0.3, dtype="float32",
         optimizer="adam"),
    dict(cell="gru", num_layers=2, batch_size=40, optimizer="rmsprop", seq_length=40),
], ids=["minchar", "rnn-b4", "lstm-b1", "lstm-3x-b20-dropout", "gru-2x-b40"])
def test_the_memory_counted_is_what_training_takes(settings, monkeypatch):
    """memory_needed (checked before a model is built) bounds what building the model and
    training it take, from a little over: NumPy's allocations as tracemalloc sees them, at
    their peak (the weights, optimizer state, the chunk's buffers, and on the batch kernels
    the units' gradients and the weights packed as the kernels read them)."""
    import tracemalloc
    from fastrnn import config
    from fastrnn.backends import numba as backend
    monkeypatch.setattr(config, "MASK_ELEMENTS", 2 ** 18)  # (a call's draws at their most)
    monkeypatch.setattr(backend._local, "buffers", {}, raising=False)  # (none cached before)
    data = np.random.default_rng(0).integers(0, 65, 5_000).astype(np.uint8)
    CharRNN(65, hidden_size=8, threads=2, **settings).train(data, 1)  # compiled (untraced)
    tracemalloc.start()
    try:
        model = CharRNN(65, hidden_size=200, threads=2, **settings)
        model.train(data, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    needed = model.memory_needed()
    slack = 2 ** 16  # Python's own objects, the text's ids checked
    assert peak <= needed + slack, f"{peak / needed:.2f} x memory_needed"
    assert needed <= 1.15 * peak, f"memory_needed is {needed / peak:.2f} x the peak"


def test_a_text_changed_between_calls_is_checked_again():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 20, 2000).astype(np.uint8)
    model = CharRNN(20, hidden_size=8, seq_length=10)
    model.train(data, 1)
    data[:] = 25  # outside the vocabulary: must not reach the kernels
    with pytest.raises(ValueError, match="data holds id 25, outside the vocabulary"):
        model.train(data, 1)
    # an int64 text (converted, not read in place) changed in place trains on the new ids
    text = rng.integers(0, 20, 2000)
    a, b = CharRNN(20, hidden_size=8, seq_length=10), CharRNN(20, hidden_size=8, seq_length=10)
    a.train(text, 1)
    b.train(text.copy(), 1)
    text[:] = text[::-1].copy()
    np.testing.assert_array_equal(a.train(text, 3), b.train(text.copy(), 3))


@pytest.mark.parametrize("settings, message", [
    (dict(learning_rate="0.1"), "learning_rate must be a positive number, got '0.1'"),
    (dict(learning_rate=True), "learning_rate must be a positive number, got True"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(seed=1.5), "seed must be an integer >= 0, got 1.5"),
    (dict(seed=None), "seed must be an integer >= 0, got None"),
    (dict(seed=True), "seed must be an integer >= 0, got True"),
    (dict(learning_rate=1e-50, dtype="float32"), "learning_rate 1e-50 is 0 in float32"),
    (dict(learning_rate=1e39, dtype="float32"), "learning_rate 1e\\+39 is infinite in float32"),
])
def test_settings_of_the_wrong_kind_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        CharRNN(20, hidden_size=8, **settings)


def test_numpy_numbers_in_the_settings_are_kept_as_pythons(tmp_path):
    from fastrnn import checkpoint
    model = CharRNN(np.int64(20), hidden_size=np.int64(8), learning_rate=np.float32(0.1),
                    seed=np.uint8(3))
    c = model.config
    assert [type(v) for v in (c.vocab_size, c.hidden_size, c.learning_rate, c.seed)] == \
        [int, int, float, int]
    vocab = Vocab("".join(chr(ord("a") + i) for i in range(20)))
    checkpoint.save(tmp_path / "c.npz", checkpoint.Checkpoint.of(model, vocab, [], {}))
    assert checkpoint.load(tmp_path / "c.npz").config == c


@pytest.mark.parametrize("position", [-5, 3.0, True])
def test_a_position_that_is_not_a_text_offset_is_refused(position):
    model = CharRNN(20, hidden_size=8, seq_length=10)
    model.position = position
    with pytest.raises(ValueError, match="position must be an integer >= 0"):
        model.train(np.zeros(500, np.uint8), 1)


def test_sample_wants_a_generator():
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator, got int"):
        CharRNN(20, hidden_size=8).sample(5, 0, rng=42)


def test_a_rate_that_is_0_or_infinite_in_the_dtype_is_refused_per_call_too():
    model = CharRNN(20, hidden_size=8, seq_length=10, dtype="float32")
    before = model.weights.flat.copy()
    for rate, what in ((1e39, "infinite"), (1e-46, "0")):
        message = f"learning_rate {rate:g} is {what} in float32"
        with pytest.raises(ValueError, match=re.escape(message)):
            model.train(np.zeros(500, np.uint8), 1, learning_rate=rate)
    assert np.array_equal(model.weights.flat, before) and model.step == 0


def test_read_only_data_over_memory_that_can_change_is_checked_again():
    """A read-only array is checked once only if nothing can write to its memory: not a view
    of a bytearray, nor an array as_strided made read-only, nor an array of its own that its
    owner makes writable, changes and locks again (the kernels would read bad ids, or train
    on the old text)."""
    ids = np.random.default_rng(0).integers(0, 10, 400).astype(np.uint8)
    buf = bytearray(ids.tobytes())
    base, own = ids.copy(), ids.copy()

    def relock():
        own.flags.writeable = True
        own[:] = 250
        own.flags.writeable = False

    for data, write in ((np.frombuffer(buf, np.uint8), lambda: buf.__setitem__(
            slice(None), b"\xfa" * len(buf))),
                        (np.lib.stride_tricks.as_strided(base, writeable=False),
                         lambda: base.__setitem__(slice(None), 250)),
                        (own, relock)):
        data.flags.writeable = False
        model = CharRNN(10, hidden_size=8, seq_length=5)
        model.train(data, 2)
        write()
        with pytest.raises(ValueError, match="data holds id 250, outside the vocabulary"):
            model.train(data, 2)


def test_a_frozen_text_is_checked_once_and_read_from_a_copy_of_its_own():
    """(bytes: memory nothing can write to)"""
    ids = np.frombuffer(np.random.default_rng(0).integers(0, 10, 400).astype(np.uint8)
                        .tobytes(), np.uint8)
    model = CharRNN(10, hidden_size=8, seq_length=5)
    model.train(ids, 1)
    assert model._data[0] is ids and not np.may_share_memory(model._data[1], ids)


@pytest.mark.parametrize("cell, layers, batch", [("rnn", 1, 1), ("gru", 2, 4)])
def test_a_replaced_training_state_is_checked(cell, layers, batch):
    """``state`` is a public attribute: training checks it before a kernel writes to it."""
    model = CharRNN(10, hidden_size=8, seq_length=5, cell=cell, num_layers=layers,
                    batch_size=batch)
    data = np.random.default_rng(0).integers(0, 10, 400)
    L, S = layers, len(model.state[0])
    bad = [(model.zero_state(batch + 1), r"state has shape \(%d, %d, %d, 8\), expected" %
            (L, S, batch + 1)),
           (np.zeros((L + 1, S, batch, 8)), "state has shape"),
           (np.zeros((L, S, batch, 8), np.float32), "state has dtype float32, the model's is "
                                                     "float64"),
           (np.full((L, S, batch, 8), np.nan), "state holds NaN or infinite values"),
           (np.zeros((L, S, batch, 16))[..., ::2], "writable C-contiguous"),
           ([[0.0]], "state must be a NumPy array of shape"),
           (model.zero_state(batch).tolist(), r"state must be a NumPy array of shape .* "
                                              r"makes one\), got list$")]  # (not "shape list")
    frozen = model.zero_state(batch)
    frozen.flags.writeable = False
    bad.append((frozen, "writable C-contiguous"))
    before = model.weights.flat.copy()
    for state, message in bad:
        model.state = state
        with pytest.raises(ValueError, match=message):
            model.train(data, 1)
    assert np.array_equal(model.weights.flat, before) and model.step == 0
    # sampling reads it too (its first stream's): a TypeError before
    for state in (None, [[[[0.0] * 8]]]):
        model.state = state
        with pytest.raises(ValueError, match=r"state must be a NumPy array of shape \(%d, %d, "
                                             r"%d, 8\) .*, got (NoneType|list)$" % (L, S, batch)):
            model.sample(5, 0)


def test_a_replaced_dropout_generator_is_checked():
    """``dropout_rng`` is a public attribute: training with dropout and saving check it (an
    AttributeError from deep inside before)."""
    model = CharRNN(10, hidden_size=8, seq_length=5, cell="lstm", num_layers=2, dropout=0.3)
    model.dropout_rng = None
    message = r"dropout_rng must be a numpy.random.Generator .* got NoneType"
    with pytest.raises(ValueError, match=message):
        model.train(np.arange(100) % 10, 2)
    with pytest.raises(ValueError, match=message):
        checkpoint.Checkpoint.of(model, Vocab("abcdefghij"), [], {})
    # another bit generator than PCG64, whose state no checkpoint, copy or pickle would keep
    model.dropout_rng = np.random.Generator(np.random.MT19937(5))
    message = r"dropout_rng must be a numpy.random.Generator on PCG64 .* got Generator\(MT19937\)"
    for call in (lambda: model.train(np.arange(100) % 10, 2), lambda: copy.deepcopy(model),
                 lambda: pickle.dumps(model),
                 lambda: checkpoint.Checkpoint.of(model, Vocab("abcdefghij"), [], {})):
        with pytest.raises(ValueError, match=message):
            call()
    model.dropout_rng = np.random.default_rng(1)
    model.train(np.arange(100) % 10, 2)  # (any seed)
    assert copy.deepcopy(model).dropout_rng.bit_generator.state == \
        model.dropout_rng.bit_generator.state


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_tensor_reshaped_in_place_after_a_call_is_refused(backend):
    """A view's shape (or strides) set in place after the model's tensors were checked, e.g.
    a bias given min-char-rnn's column shape: refused like any tensor that is not the view
    ``spec.view`` makes (it got past the check made once: a Numba typing error, a NumPy
    broadcasting error; a transpose by strides, different numbers in silence)."""
    import warnings
    data = np.arange(200) % 11
    for reshape in (lambda w: setattr(w.layers[0].bh, "shape", (6, 1)),
                    lambda w: setattr(w.layers[0].Whh, "strides", w.layers[0].Whh.strides[::-1])):
        for which in ("weights", "states (v)"):
            model = CharRNN(11, hidden_size=6, seq_length=5, backend=backend, optimizer="adam")
            model.train(data, 2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # (strides: NumPy 2.4's)
                reshape(model.weights if which == "weights" else model.states[1])
            calls = [lambda: model.train(data, 1)]
            if which == "weights":  # (evaluate and sample read no optimizer state)
                calls += [lambda: model.evaluate(data), lambda: model.sample(3, 1)]
            for call in calls:
                with pytest.raises(ValueError, match=re.escape(f"{which}' tensors are not the "
                                                               f"views of {which}.flat")):
                    call()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_replaced_weights_and_optimizer_states_are_checked(backend):
    """``weights`` and ``states`` are public attributes: another model's (another vocabulary,
    cell, size or dtype), read-only ones, or tensors that are not views of their flat buffer
    are one ValueError before a kernel reads them (numba's read out of bounds: garbage
    losses, then a crash)."""
    data = np.random.default_rng(0).integers(0, 65, 400)
    model = CharRNN(65, hidden_size=16, seq_length=8, backend=backend, optimizer="adam")
    other = lambda **kw: CharRNN(**{"vocab_size": 65, "hidden_size": 16, **kw})  # noqa: E731
    own = model.spec.init(0)
    loose = own._replace(Why=own.Why.copy())  # (its Why not the flat buffer's)
    frozen = model.spec.init(0)
    frozen.flat.flags.writeable = False
    # every second value of a buffer twice the size: the kernels read the buffer's first half
    # (the model's numbers and zeros between them), on numba without a word
    spaced = np.zeros(2 * model.spec.size)
    spaced[::2] = own.flat
    strided = model.spec.view(spaced[::2])
    backwards = model.spec.view(own.flat[::-1].copy()[::-1])
    calls = {"train": lambda: model.train(data, 2), "evaluate": lambda: model.evaluate(data),
             "sample": lambda: model.sample(3, 1, rng=np.random.default_rng(0))}
    for weights, message, refused in [
            (other(vocab_size=10).weights, "weights hold 602 values in shape \\(602,\\): "
                                           "another model's\\? Spec\\('rnn', vocab_size=65",
             calls),
            (other(cell="gru").weights, "weights hold 5,057 values", calls),
            (other(dtype="float32").weights, "weights have dtype float32, the model's is "
                                             "float64", calls),
            (loose, "weights' tensors are not the views of weights.flat", calls),
            (strided, "weights.flat is not contiguous \\(a strided view\\)", calls),
            (backwards, "weights.flat is not contiguous", calls),
            ("weights", "weights must be Weights over a NumPy array", calls),
            (frozen, "weights are read-only \\(training updates them in place\\)",
             ["train"])]:
        model.weights = weights
        for name in refused:
            with pytest.raises(ValueError, match=message):
                calls[name]()
    model.weights = frozen  # read-only weights: evaluated and sampled from
    assert np.isfinite(model.evaluate(data)[0]) and len(model.sample(3, 1)[0]) == 3
    model.weights = own
    adam = model.states
    for states, message in [(other(hidden_size=4, optimizer="adam").states,
                             "states \\(m\\) hold 605 values"),
                            (adam[:1], "states must be a list of 2 Weights \\(the adam "
                                       "optimizer's m, v\\), got list of 1"),
                            (other(optimizer="adam", dtype="float32").states,
                             "states \\(m\\) have dtype float32"),
                            ([model.spec.view(np.zeros(2 * model.spec.size)[::2]), adam[1]],
                             "states \\(m\\).flat is not contiguous"),
                            # (one buffer for two: the backends updated it differently)
                            ([adam[0], adam[0]], "states \\(m\\) and states \\(v\\) share "
                                                 "memory: each must be an array of its own"),
                            ([model.weights, adam[1]], "weights and states \\(m\\) share "
                                                       "memory")]:
        model.states = states
        with pytest.raises(ValueError, match=message):
            model.train(data, 1)
    model.states = adam
    own_state = model.state  # (the recurrent state, updated in place too)
    model.state = model.weights.flat[:own_state.size].reshape(own_state.shape)
    with pytest.raises(ValueError, match="weights and state share memory"):
        model.train(data, 1)
    model.state = own_state
    assert model.step == 0 and np.array_equal(model.weights.flat, model.spec.init(0).flat)
    model.train(data, 2)  # its own again: trained
    assert model.step == 2
    import gc
    import weakref
    fresh = CharRNN(65, hidden_size=16, seq_length=8, backend=backend)
    fresh.train(data, 1)
    replaced = weakref.ref(fresh.weights.flat)
    fresh.weights = fresh.spec.view(fresh.weights.flat.copy())
    fresh.train(data, 1)
    gc.collect()
    assert replaced() is None  # (the check keeps no buffer the model let go of)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_position_past_the_end_starts_again_at_0_whatever_its_size(backend):
    data = np.random.default_rng(0).integers(0, 10, 400)
    expected = CharRNN(10, hidden_size=8, seq_length=5, backend=backend)
    losses = expected.train(data, 2)
    for far in (401, 2**62, 2**63 - 3, 2**70):
        model = CharRNN(10, hidden_size=8, seq_length=5, backend=backend)
        model.position = far
        np.testing.assert_array_equal(model.train(data, 2), losses)
        assert model.position == 10 and np.array_equal(model.weights.flat, expected.weights.flat)


def test_a_replaced_config_keeps_what_the_weights_were_made_by():
    """``config`` is a public attribute, and ``dataclasses.replace`` the way to change a frozen
    Config: the fields the weights, the optimizer's state and the dropout generator were made
    by are refused (ids checked against a larger vocab_size were read out of bounds: a
    segmentation fault; another optimizer or cell trained the old one in silence); the
    settings read at every call may change, and take effect."""
    import dataclasses

    data = np.random.default_rng(0).integers(0, 5, 300)
    model = CharRNN(5, hidden_size=8, seq_length=4)
    before = model.config
    for field, value in [("vocab_size", 4_000_000), ("hidden_size", 64), ("dtype", "float32"),
                         ("cell", "gru"), ("num_layers", 3), ("optimizer", "adam"),
                         ("seed", 3)]:
        with pytest.raises(ValueError, match=f"config.{field} is fixed for a model .*; asked "
                                             f"{re.escape(repr(value))}"):
            model.config = dataclasses.replace(before, **{field: value})
        assert model.config is before
    with pytest.raises(ValueError, match="config must be a Config .* got dict"):
        model.config = before.to_dict()
    # ids checked for the old seq_length are checked again (read-only memory over bytes is
    # checked once and cached: a longer chunk read past its end), and the memory it takes
    frozen = np.frombuffer(data.astype(np.uint8).tobytes(), np.uint8)
    model.train(frozen, 1)
    model.config = dataclasses.replace(before, seq_length=1000)
    with pytest.raises(ValueError, match="data has 300 characters; training with "
                                         "seq_length=1000 needs at least 1001"):
        model.train(frozen, 1)
    with pytest.raises(ValueError, match="a model of hidden_size 8 .* seq_length 10000000000000"):
        model.config = dataclasses.replace(before, seq_length=10**13)
    model = CharRNN(5, hidden_size=8, seq_length=4)
    # the others: a new model with them trains the same from the same weights
    changed = dict(seq_length=6, learning_rate=0.05, batch_size=2)
    model.config = dataclasses.replace(before, **changed)
    model.state = model.zero_state(2)
    expected = CharRNN(5, hidden_size=8, **changed)
    np.testing.assert_array_equal(model.train(data, 3), expected.train(data, 3))
    assert np.array_equal(model.weights.flat, expected.weights.flat)


def test_a_setting_set_as_an_attribute_is_refused_not_ignored():
    """``CharRNN`` takes its settings as keyword arguments, so a notebook sets them as
    attributes: ``model.learning_rate = 1e-6`` was an attribute nothing read, and training went
    on at the config's rate in silence. Every config field is refused by name, with the way
    to change it; other attributes (a notebook's own) are kept."""
    model = CharRNN(5, hidden_size=8, seq_length=4)
    before = model.config
    for name in ("learning_rate", "seq_length", "batch_size", "dropout"):
        with pytest.raises(AttributeError, match=f"{name} is a setting in model.config.*"
                                                 f"dataclasses.replace\\(model.config, {name}="):
            setattr(model, name, 1)
    with pytest.raises(AttributeError, match=r"or train\(\.\.\., learning_rate=\.\.\.\)"):
        model.learning_rate = 1e-6
    for name in CharRNN.FIXED:
        with pytest.raises(AttributeError, match=f"model.{name} is fixed for a model .*: build "
                                                 f"a new CharRNN for another {name}"):
            setattr(model, name, "adam")
    assert model.config is before and model.optimizer.name == "adagrad"
    model.vocab = "abcde"  # (not a setting: kept)
    assert model.vocab == "abcde"


def test_odd_arguments_are_named_not_failed_on():
    """What a notebook may pass, each named: None as data to a model that never trained (its
    cache of the last array checked was None too: an AttributeError), a count of chunks past
    2**62 (was blamed on ``step``), a string as ``greedy`` ("no" was true), a string as a
    checkpoint's vocabulary."""
    from fastrnn import checkpoint, dropin

    model = CharRNN(5, hidden_size=8, seq_length=4)
    with pytest.raises(ValueError, match="data must be a one-dimensional sequence"):
        model.train(None, 1)
    with pytest.raises(ValueError, match="data must be a one-dimensional sequence of integer "
                                         "character ids, got a ragged list$"):
        model.evaluate([[1, 2], [1]])  # (NumPy's message named no argument)
    with pytest.raises(ValueError, match="n_steps must be at most 2\\*\\*62, got "
                                         "9,223,372,036,854,775,808"):
        model.train(np.arange(50) % 5, 2**63)
    p = dropin.init_params(8, 5)
    for greedy in ("no", "False", 1, None):
        with pytest.raises(ValueError, match=f"greedy must be True or False, got "
                                             f"{re.escape(repr(greedy))}"):
            model.sample(3, 1, greedy=greedy)
        with pytest.raises(ValueError, match="greedy must be True or False"):
            dropin.sample(np.zeros((8, 1)), 1, 3, *p, greedy=greedy)
    ids, _ = model.sample(3, 1, greedy=np.True_, rng=np.random.default_rng(0))
    assert ids == model.sample(3, 1, greedy=True, rng=np.random.default_rng(1))[0]
    with pytest.raises(ValueError, match=r"^vocab must be a Vocab \(Vocab.from_text\(text\) "
                                         r"of its training text\), got str$"):
        checkpoint.Checkpoint.of(model, "abcde", [], {})
    # (another vocabulary's size: refused by save, later, as a file it would not write)
    with pytest.raises(ValueError, match=r"^vocab has 3 characters and the model \d+: give the "
                                         r"Vocab the model's ids stand for \(Vocab.from_text"):
        checkpoint.Checkpoint.of(model, Vocab("abc"), [], {})
    with pytest.raises(ValueError, match="model must be a CharRNN, got Vocab"):
        checkpoint.Checkpoint.of(Vocab("abcde"), model, [], {})
    with pytest.raises(ValueError, match=r"ckpt must be a Checkpoint \(Checkpoint.of\(model, "
                                         r"vocab, losses, run\) makes one\), got CharRNN"):
        checkpoint.save("never-written.npz", model)
    assert not os.path.exists("never-written.npz")
    # a loaded (or made) checkpoint's fields edited wrongly: named, not NumPy's broadcast error
    ckpt = checkpoint.Checkpoint.of(model, Vocab("abcde"), [], {})
    ckpt.params["Whh"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"Whh has shape \(3, 3\), the model's is \(8, 8\)"):
        ckpt.to_model()
    del ckpt.params["Whh"]
    with pytest.raises(ValueError, match="the checkpoint has no Whh, which its model has"):
        ckpt.to_model()
    with pytest.raises(ValueError, match="the checkpoint has no Whh, which its model has"):
        ckpt.fine_tune()  # (and the same checks: a scalar bias was broadcast in silence)
    ckpt = checkpoint.Checkpoint.of(model, Vocab("abcde"), [], {})
    ckpt.params["bh"] = np.float64(0.5)
    with pytest.raises(ValueError, match=r"bh has shape \(\), the model's is"):
        ckpt.fine_tune()
    ckpt = checkpoint.Checkpoint.of(model, Vocab("abcde"), [], {})
    ckpt.state = np.zeros(3)
    with pytest.raises(ValueError, match=r"state has shape \(3,\), the model's is \(1, 1, 1, 8\)"):
        ckpt.to_model()


@pytest.mark.parametrize("step, n_steps, message", [
    (-1, 1, r"step must be an integer in \[0, 2\*\*62\], got -1"),
    (2.0, 1, r"step must be an integer in \[0, 2\*\*62\], got 2.0"),
    (2**80, 1, r"step must be an integer in \[0, 2\*\*62\], got 1208925819614629174706176"),
    (2**62, 1, r"n_steps 1 would take step past 2\*\*62 \(step is 4,611,686,018,427,387,904\)"),
    (16, 2**62, r"n_steps 4,611,686,018,427,387,904 would take step past 2\*\*62 \(step is "
                r"16\)")])  # (n_steps named: it is the argument given)
def test_an_update_count_out_of_range_is_refused(step, n_steps, message):
    model = CharRNN(10, hidden_size=8, seq_length=5, optimizer="adam", learning_rate=0.01)
    model.step = step
    with pytest.raises(ValueError, match=message):
        model.train(np.zeros(100, np.uint8), n_steps)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_training_zero_chunks_returns_no_losses_and_changes_nothing(backend):
    """``train(data, 0)``, as a loop's last call may make it: no losses, every array and
    counter as it was (it had been refused as not a positive count); a count below 0, or not
    an integer, is refused."""
    model = CharRNN(10, hidden_size=8, seq_length=5, optimizer="adam", learning_rate=0.01,
                    backend=backend, cell="lstm", num_layers=2, dropout=0.5)
    data = np.arange(100) % 10
    model.train(data, 3)
    before = copy.deepcopy(model)
    losses = model.train(data, 0)
    assert losses.shape == (0,) and losses.dtype == np.float64
    assert (model.step, model.position) == (before.step, before.position)
    for mine, theirs in zip(model.params, before.params):
        assert np.array_equal(mine, theirs)
    assert np.array_equal(model.state, before.state)
    assert all(np.array_equal(a.flat, b.flat) for a, b in zip(model.states, before.states))
    assert np.array_equal(model.train(data, 2), before.train(data, 2))  # (masks: none drawn)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"n_steps must be an integer >= 0, got "):
            model.train(data, bad)
    with pytest.raises(ValueError, match="data has 3 characters; training with seq_length=5 "
                                         "needs at least 6"):
        model.train(data[:3], 0)


def _ctrl_c_during(kernel):
    """``kernel`` (a backend's train) with a SIGINT sent as it starts: Python handles it at
    the next bytecode, after the call."""
    import os
    import signal

    def interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return kernel(*args)

    return interrupted


@pytest.mark.parametrize("batch", [1, 3])
def test_ctrl_c_in_train_leaves_the_counters_matching_the_weights(batch, monkeypatch, capsys):
    """A SIGINT while a kernel call runs takes effect when it returns: the KeyboardInterrupt
    comes with position and step advanced with the weights (a checkpoint then resumes
    exactly); a second one raises at once, as Python does by default."""
    import os
    import signal
    data = np.random.default_rng(0).integers(0, 10, 800)
    settings = dict(hidden_size=8, seq_length=5, cell="lstm", num_layers=2, dropout=0.3,
                    batch_size=batch, optimizer="adam", learning_rate=0.01)
    expected = CharRNN(10, **settings)
    expected.train(data, 4)
    model = CharRNN(10, **settings)
    monkeypatch.setattr(model._kernels, "train", _ctrl_c_during(model._kernels.train))
    with pytest.raises(KeyboardInterrupt):
        model.train(data, 4)
    assert "stopping when the training call in flight returns" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert model.step == expected.step and model.position == expected.position
    assert np.array_equal(model.weights.flat, expected.weights.flat)
    assert np.array_equal(model.state, expected.state)

    def twice(*args):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not reached: the second Ctrl-C stops at once")

    monkeypatch.setattr(model._kernels, "train", twice)
    with pytest.raises(KeyboardInterrupt):
        model.train(data, 1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_long_train_call_is_split_into_calls_ctrl_c_can_stop_between(backend, batch,
                                                                        monkeypatch, capsys):
    """Without dropout too, CharRNN.train gives a kernel call at most the backend's
    call_chars characters: the same bits as one call, and Ctrl-C stops after the call in
    flight instead of after all n_steps."""
    data = np.random.default_rng(1).integers(0, 10, 900)
    settings = dict(hidden_size=8, seq_length=5, cell="gru", batch_size=batch, backend=backend,
                    optimizer="adam", learning_rate=0.01)
    whole, model = CharRNN(10, **settings), CharRNN(10, **settings)
    assert whole._kernels is model._kernels  # (one backend object serves every model)
    monkeypatch.setattr(whole._kernels, "call_chars", None)
    expected = whole.train(data, 7)
    monkeypatch.setattr(model._kernels, "call_chars", 2 * 5 * batch)  # two chunks a call
    real, calls = model._kernels.train, []

    def counted(w, g, optimizer, states, data, position, state, lr, seq_length, step, losses,
                *rest):
        calls.append(len(losses))  # (one per chunk)
        return real(w, g, optimizer, states, data, position, state, lr, seq_length, step,
                    losses, *rest)

    monkeypatch.setattr(model._kernels, "train", counted)
    assert np.array_equal(model.train(data, 7), expected) and calls == [2, 2, 2, 1]
    assert np.array_equal(model.weights.flat, whole.weights.flat)
    assert (model.position, model.step) == (whole.position, whole.step)

    monkeypatch.setattr(model._kernels, "train", _ctrl_c_during(real))
    with pytest.raises(KeyboardInterrupt) as stopped:
        model.train(data, 100)
    assert "stopping when the training call in flight returns" in capsys.readouterr().err
    assert model.step == 9  # the call in flight's two chunks, not 100
    # the losses of the chunks it trained come with it
    assert isinstance(stopped.value, fastrnn.TrainingInterrupted)
    assert str(stopped.value) == "training stopped by Ctrl-C after 2 of 100 chunks (their " \
                                 "losses: .losses)"
    monkeypatch.setattr(model._kernels, "train", real)  # (the backend every model shares)
    check = CharRNN(10, **settings)
    check.train(data, 7)
    assert np.array_equal(stopped.value.losses, check.train(data, 2))
    again = pickle.loads(pickle.dumps(stopped.value))  # (through a process pool, whole)
    assert str(again) == str(stopped.value) and np.array_equal(again.losses, stopped.value.losses)


def test_sampling_a_diverged_model_is_refused():
    model = CharRNN(10, hidden_size=8)
    model.weights.Why[0, 0] = np.nan
    with pytest.raises(ValueError, match="weights hold NaN or infinite values"):
        model.sample(5, 0, rng=np.random.default_rng(0))
    model.state[...] = np.nan  # (training that diverged leaves both: the weights are named)
    with pytest.raises(ValueError, match="weights hold NaN or infinite values"):
        model.sample(5, 0, rng=np.random.default_rng(0))


def test_numpy_numbers_and_a_backend_of_the_wrong_kind():
    model = CharRNN(5, hidden_size=4, num_layers=2, dropout=np.float32(0.5))
    assert model.config.dropout == 0.5 and type(model.config.dropout) is float
    with pytest.raises(ValueError, match="unknown backend \\['numba'\\]: choose one of"):
        CharRNN(5, backend=["numba"])


def test_the_numpy_backend_diverges_without_numpys_warnings():
    """inf and NaN come out in the losses, as on numba, with no RuntimeWarning on the way
    (the trainer names a divergence in one line; NumPy's warnings came before it). Here
    output weights as large as a float64 holds, whose logits overflow, as a diverging run's
    do (inf weights are refused before a call)."""
    import warnings
    data = np.random.default_rng(0).integers(0, 10, 400)
    losses = {}
    for backend in ("numpy", "numba"):
        model = CharRNN(10, hidden_size=8, seq_length=5, backend=backend, cell="lstm",
                        optimizer="adam")
        model.weights.Why[3] = np.finfo(np.float64).max
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            losses[backend] = model.train(data, 4)
            with pytest.raises(ValueError, match="weights hold NaN or infinite values"):
                model.evaluate(data[:50])  # (refused: numba's fast math hid them)
    assert np.isinf(losses["numpy"][0]) and np.isinf(losses["numba"][0])
    assert np.isnan(losses["numpy"][1:]).all() and np.isnan(losses["numba"][1:]).all()


def test_a_huge_rate_gives_the_same_huge_losses_on_numpy_and_numba():
    """-log p is computed from the logits on both backends: where a probability underflows to
    0 (here at a learning rate of 1e30) the loss is the same huge finite number on both, not
    inf on one."""
    data = np.random.default_rng(0).integers(0, 10, 400)
    losses = [CharRNN(10, hidden_size=8, seq_length=5, backend=backend, learning_rate=1e30,
                      cell="lstm", optimizer="adam").train(data, 4)
              for backend in ("numpy", "numba")]
    assert np.isfinite(losses[0]).all() and losses[0].max() > 1e30
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_calls_from_two_threads_take_turns():
    """Two threads training one model (they read the same position and wrote the weights and
    gradients at once: a model of no order of the chunks) train it as one thread would, one
    call after the other: the same bits as 600 chunks in one call."""
    import copy
    import threading
    data = np.random.default_rng(0).integers(0, 10, 50_000).astype(np.uint8)
    for kw in ({}, dict(cell="lstm", num_layers=2, dropout=0.2, batch_size=3)):
        base = CharRNN(10, hidden_size=32, seq_length=10, **kw)
        base.train(data, 20)
        shared, alone = copy.deepcopy(base), copy.deepcopy(base)
        threads = [threading.Thread(target=shared.train, args=(data, 300)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alone.train(data, 600)
        assert (shared.step, shared.position) == (alone.step, alone.position) == (620, 6200)
        np.testing.assert_array_equal(shared.weights.flat, alone.weights.flat)


def test_a_child_forked_while_another_thread_trains_can_train():
    """(a fork while a thread held the model's turn left the lock held in the child, by a
    thread it does not have: its first call waited for ever)"""
    import multiprocessing
    model = CharRNN(10, hidden_size=8, seq_length=5)
    data = np.arange(200) % 10
    model.train(data, 1)
    with _turn_held(model):
        child = multiprocessing.get_context("fork").Process(target=model.train, args=(data, 2))
        child.start()
        child.join(timeout=60)
        finished = child.exitcode
        if finished is None:
            child.kill()
    assert finished == 0


@contextlib.contextmanager
def _turn_held(model):
    """Another thread holds the model's turn (as a call under way there) while the block runs."""
    import threading
    held, release = threading.Event(), threading.Event()

    def hold():
        with model._busy:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


def test_a_pickle_holds_the_numbers_of_its_moment():
    """__getstate__ copies under the lock: it returned the model's own arrays, which pickle
    read later, while a training in another thread went on writing them."""
    model = CharRNN(10, hidden_size=8, seq_length=5)
    data = np.arange(200) % 10
    saved = model.__getstate__()
    weights, step = saved["weights"].copy(), saved["step"]
    model.train(data, 1)
    np.testing.assert_array_equal(saved["weights"], weights)
    assert step == 0 and model.step == 1


def test_a_call_inside_another_calls_progress_is_refused():
    """A thread's calls share its work buffers: an evaluate from a progress callback of an
    evaluate (of this model, or one of its shape) changed the outer one's numbers."""
    model = CharRNN(10, hidden_size=16, seq_length=5, cell="lstm", num_layers=2)
    data = np.arange(3000) % 10
    expected = model.evaluate(data)[0]
    with pytest.raises(RuntimeError, match=r"CharRNN.evaluate cannot run inside "
                                           r"CharRNN.evaluate \(from its progress callback\)"):
        model.evaluate(data, progress=lambda n: model.evaluate(data[:100]))
    with pytest.raises(RuntimeError, match="CharRNN.train cannot run inside CharRNN.sample"):
        model.sample(5, 0, progress=lambda n: copy.deepcopy(model).train(data, 1))
    assert model.evaluate(data)[0] == expected  # (a copy, a pickle there: allowed)
    assert model.evaluate(data, progress=lambda n: pickle.dumps(model))[0] == expected


def test_replacing_an_attribute_waits_for_a_call_in_another_thread():
    import threading
    model = CharRNN(10, hidden_size=8, seq_length=5)
    with _turn_held(model):
        setter = threading.Thread(target=lambda: setattr(model, "position", 5))
        setter.start()
        setter.join(timeout=0.3)
        waited = setter.is_alive() and model.position == 0
    setter.join()
    assert waited and model.position == 5
