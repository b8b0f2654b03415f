"""CharRNN: the fused multi-chunk kernel equals min-char-rnn's loop, on every backend."""

import numpy as np
import pytest

from fastrnn import CharRNN, Vocab, reference
from fastrnn.params import init_params
from tests.helpers import assert_close


@pytest.fixture
def corpus(text):
    vocab = Vocab.from_text(text)
    return vocab, vocab.encode(text[:30_000])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_train_equals_min_char_rnn_loop(corpus, backend):
    vocab, data = corpus
    V, H = len(vocab), 24
    model = CharRNN(V, hidden_size=H, learning_rate=0.05, seed=4, backend=backend)
    losses = np.concatenate([model.train(data, 30), model.train(data, 20)])  # state carries over
    params, mems = list(init_params(H, V, seed=4)), [np.zeros_like(p) for p in init_params(H, V, 4)]
    expected, pos, h = reference.train(data, 0, np.zeros((H, 1)), params, mems, 0.05, 25, 50)
    assert model.position == pos
    assert_close(losses, expected, np.float64, "losses")
    assert_close(model.h, h, np.float64, "h")
    for name, a, e in zip(("Wxh", "Whh", "Why", "bh", "by"), model.params, params):
        assert_close(a, e, np.float64, name)


def test_training_lowers_the_loss(corpus):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=64)
    losses = model.train(data, 600)
    assert losses[-50:].mean() < 0.8 * losses[:50].mean()


def test_sampling_is_the_same_text_on_both_backends(corpus):
    vocab, data = corpus
    model = CharRNN(len(vocab), hidden_size=32, learning_rate=0.01)
    model.train(data, 50)
    texts = {}
    for backend in ("numba", "numpy"):
        model.backend = backend
        ids, _ = model.sample(200, vocab.index["T"], rng=np.random.default_rng(1))
        texts[backend] = vocab.decode(ids)
    assert texts["numba"] == texts["numpy"]


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float32"), "float32"])
def test_dtype_may_be_given_as_type_dtype_or_name(dtype):
    assert CharRNN(5, hidden_size=3, dtype=dtype).params[1].dtype == np.float32


def test_sample_continues_from_the_returned_state():
    model = CharRNN(7, hidden_size=10, seed=2)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    whole, _ = model.sample(40, 1, rng=rng_a)
    first, h = model.sample(20, 1, rng=rng_b)
    second, _ = model.sample(20, first[-1], rng=rng_b, h=h)
    assert first + second == whole


@pytest.mark.parametrize("kwargs,message", [
    (dict(vocab_size=1), "vocab_size must be an integer >= 2"),
    (dict(vocab_size=5, hidden_size=0), "hidden_size must be a positive integer"),
    (dict(vocab_size=5, seq_length=-3), "seq_length must be a positive integer"),
    (dict(vocab_size=5, learning_rate=-0.1), "learning_rate must be a positive number"),
    (dict(vocab_size=5, dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (dict(vocab_size=5, dtype="double precision"), "dtype must be 'float32' or 'float64'"),
    (dict(vocab_size=5, backend="tpu"), "unknown backend 'tpu'"),
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


def test_vocab_round_trip_and_unknown_characters():
    vocab = Vocab.from_text("hello world")
    assert vocab.decode(vocab.encode("world hello")) == "world hello"
    assert Vocab.from_text("ünïcødé").decode(Vocab.from_text("ünïcødé").encode("ünï")) == "ünï"
    with pytest.raises(ValueError, match="characters not in the vocabulary: 'x', 'z'"):
        vocab.encode("zxo")
