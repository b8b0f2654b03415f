"""fastrnn.interop: a model as PyTorch's modules and back. The names and shapes without PyTorch;
the numbers against PyTorch where it is installed (``tests/test_torch.py`` checks the oracle's
gradients through ``to_torch`` too)."""

import importlib.util

import numpy as np
import pytest

from fastrnn import CharRNN, Vocab, checkpoint, interop
from fastrnn.checkpoint import Checkpoint
from tests.helpers import assert_close

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is an optional peer")
MODELS = [("rnn", 1), ("rnn", 2), ("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)]


def trained(cell, L, dtype="float64", V=7, H=5, dropout=0.0):
    """A model a few chunks into training (biases no longer at their initial values)."""
    model = CharRNN(V, hidden_size=H, seq_length=6, cell=cell, num_layers=L, dtype=dtype,
                    optimizer="adam", learning_rate=0.05, dropout=dropout, seed=L)
    model.train(np.random.default_rng(1).integers(0, V, 200), 5)
    return model


@pytest.mark.parametrize("cell, L", MODELS)
def test_state_dicts_have_pytorchs_names_and_shapes_and_come_back_the_same(cell, L):
    model = trained(cell, L)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * 5
    recurrent, output = interop.torch_state_dicts(model)
    expected = {}
    for l in range(L):
        expected.update({f"weight_ih_l{l}": (G, 7 if l == 0 else 5), f"weight_hh_l{l}": (G, 5),
                         f"bias_ih_l{l}": (G,), f"bias_hh_l{l}": (G,)})
    assert {k: a.shape for k, a in recurrent.items()} == expected
    assert list(recurrent) == list(expected), "PyTorch's order"
    assert {k: a.shape for k, a in output.items()} == {"weight": (7, 5), "bias": (7,)}
    for l in range(L):
        sfx = "" if l == 0 else f".{l}"
        assert np.array_equal(recurrent[f"weight_ih_l{l}"], model.params["Wxh" + sfx])
        assert np.array_equal(recurrent[f"weight_hh_l{l}"], model.params["Whh" + sfx])
        assert np.array_equal(recurrent[f"bias_ih_l{l}"], model.params["bh" + sfx])
        hidden = recurrent[f"bias_hh_l{l}"]
        if cell == "gru":  # b_hn apart (the reset gate scales it), b_hr and b_hz 0
            assert not hidden[:10].any() and np.array_equal(hidden[10:], model.params["bhn" + sfx])
        else:
            assert not hidden.any()
    assert np.array_equal(output["weight"], model.params["Why"])
    assert np.array_equal(output["bias"], model.params["by"])
    for a in (*recurrent.values(), *output.values()):
        assert not np.shares_memory(a, model.weights.flat), "copies"
    back = interop.from_torch_state_dicts(cell, recurrent, output, seq_length=9)
    assert (back.config.cell, back.config.num_layers, back.config.hidden_size,
            back.config.vocab_size, back.config.dtype, back.config.seq_length) == \
        (cell, L, 5, 7, "float64", 9)
    assert np.array_equal(back.weights.flat, model.weights.flat)
    # a checkpoint and bare Weights give the same
    ckpt = Checkpoint.of(model, Vocab("abcdefg"), [], {})
    for source in (ckpt, model.weights):
        again = interop.torch_state_dicts(source)
        for mine, theirs in zip(again, (recurrent, output)):
            assert mine.keys() == theirs.keys()
            assert all(np.array_equal(mine[k], theirs[k]) for k in mine)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_pytorchs_two_biases_become_one_where_they_are_summed(cell):
    """A PyTorch model has two biases per gate; those that enter the same sum are added (the
    GRU's b_hn stays apart: the reset gate scales it), and the model computes the same loss."""
    model = trained(cell, 2, V=6, H=4)
    recurrent, output = interop.torch_state_dicts(model)
    rng = np.random.default_rng(2)
    moved = {}
    for key, a in recurrent.items():  # part of bias_ih moved into bias_hh: the same model
        if key.startswith("bias_ih"):
            part = rng.standard_normal(a.shape) * 0.1
            if cell == "gru":
                part[8:] = 0  # (the n gate's two biases are not one sum)
            moved[key] = a - part
            moved[key.replace("ih", "hh")] = recurrent[key.replace("ih", "hh")] + part
    back = interop.from_torch_state_dicts(cell, {**recurrent, **moved}, output)
    ids = rng.integers(0, 6, 80)
    assert_close(back.evaluate(ids)[0], model.evaluate(ids)[0], np.float64, "loss")
    assert_close(back.weights.flat, model.weights.flat, np.float64, "weights")


@pytest.mark.parametrize("source, target", [(np.float16, "float64"), (np.float16, "float32"),
                                            (np.float32, "float64")])
def test_sums_and_the_embeddings_product_are_rounded_once_into_the_models_dtype(source, target):
    """The two biases' sum and an embedding's product are computed in float64 and rounded once
    into the model's dtype, whatever the weights' own (float16 given as NumPy arrays too)."""
    rng = np.random.default_rng(7)
    recurrent, output = interop.torch_state_dicts(trained("gru", 1, V=6, H=4))
    recurrent = {k: (a + rng.standard_normal(a.shape)).astype(source)
                 for k, a in recurrent.items()}
    embedding = rng.standard_normal((9, 6)).astype(source)
    output = {"weight": rng.standard_normal((9, 4)).astype(source),
              "bias": output["bias"][:1].repeat(9).astype(source)}
    model = interop.from_torch_state_dicts("gru", recurrent, output, embedding, dtype=target)
    wide = {k: a.astype(np.float64) for k, a in recurrent.items()}
    assert model.config.dtype == target and model.config.vocab_size == 9
    exact = {"bh": np.concatenate([wide["bias_ih_l0"][:8] + wide["bias_hh_l0"][:8],
                                   wide["bias_ih_l0"][8:]]),
             "bhn": wide["bias_hh_l0"][8:],
             "Wxh": wide["weight_ih_l0"] @ embedding.astype(np.float64).T}
    for name, a in exact.items():
        assert np.array_equal(model.params[name], a.astype(target)), name


def test_a_module_without_biases_and_the_dtype():
    """A module of bias=False has no biases (zeros here); the dtype is the weights' unless
    given; float32 weights give a float32 model."""
    model = trained("lstm", 1, dtype="float32")
    recurrent, output = interop.torch_state_dicts(model)
    unbiased = {k: a for k, a in recurrent.items() if not k.startswith("bias")}
    back = interop.from_torch_state_dicts("lstm", unbiased, {"weight": output["weight"]})
    assert back.config.dtype == "float32"
    assert not back.params["bh"].any() and not back.params["by"].any()
    assert np.array_equal(back.params["Whh"], model.params["Whh"])
    wide = interop.from_torch_state_dicts("lstm", recurrent, output, dtype="float64")
    assert wide.config.dtype == "float64"
    assert np.array_equal(wide.params["Whh"], model.params["Whh"].astype(np.float64))


def test_what_has_no_counterpart_is_named():
    recurrent, output = interop.torch_state_dicts(trained("gru", 2))

    def refused(message, cell="gru", rec=None, out=None, **settings):
        with pytest.raises(ValueError, match=message):
            interop.from_torch_state_dicts(cell, recurrent if rec is None else rec,
                                           output if out is None else out, **settings)

    refused(r"^no fastrnn counterpart for weight_ih_l0_reverse \(an nn.GRU of 2 layers over 7 "
            r"characters, 5 units\)$",
            rec={**recurrent, "weight_ih_l0_reverse": recurrent["weight_ih_l0"]})
    refused(r"^weight_hh_l1 has shape \(15, 4\), expected \(15, 5\)",
            rec={**recurrent, "weight_hh_l1": np.zeros((15, 4))})
    refused(r"^no bias_hh_l1 \(an nn.GRU of 2 layers over 7 characters, 5 units\)$",
            rec={k: a for k, a in recurrent.items() if k != "bias_hh_l1"})
    refused(r"^no weight_hh_l1 \(an nn.GRU",
            rec={k: a for k, a in recurrent.items() if k != "weight_hh_l1"})
    refused(r"^recurrent must hold a module's weight_ih_l0 and weight_hh_l0, each 2-d "
            r"\(PyTorch's names", rec={k: a for k, a in recurrent.items() if k != "weight_hh_l0"})
    refused(r"^recurrent must hold", rec={k: a for k, a in recurrent.items()
                                           if not k.endswith("_l0")})
    refused(r"^weight_hh_l0 has shape \(15, 5\), not an nn.LSTM's \(4H, H\)$", cell="lstm")
    # an nn.LSTM(7, 6, proj_size=3)'s tensors: its extra one named, not weight_hh_l0's shape
    projected = {"weight_ih_l0": np.zeros((24, 7)), "weight_hh_l0": np.zeros((24, 3)),
                 "bias_ih_l0": np.zeros(24), "bias_hh_l0": np.zeros(24),
                 "weight_hr_l0": np.zeros((3, 6))}
    refused(r"^no fastrnn counterpart for weight_hr_l0 ", cell="lstm", rec=projected)
    refused(r"^weight_hh_l0 has shape \(15, 6\), not an nn.GRU's \(3H, H\)$",  # (not the
            rec={**recurrent, "weight_hh_l0": np.zeros((15, 6))})  # right weight_ih_l0's)
    refused(r"^weight_ih_l0 has shape \(15, 7\), expected \(20, 7\) \(an nn.LSTM of 2 layers",
            cell="lstm", rec={**recurrent, "weight_hh_l0": np.zeros((20, 5))})
    refused(r"^no output's weight \(an nn.GRU", out={"bias": output["bias"]})
    refused(r"^no fastrnn counterpart for output's scale", out={**output, "scale": 1.0})
    refused(r"^output's weight has shape \(7, 4\), expected \(7, 5\)",
            out={**output, "weight": np.zeros((7, 4))})
    refused(r"^the weights are of mixed types: float32 \(output's bias\); float64 "
            r"\(weight_ih_l0, weight_hh_l0 and 7 more\): give dtype=...: the weights are "
            r"converted$", out={**output, "bias": output["bias"].astype(np.float32)})
    refused(r"^weight_hh_l0 holds int64, not floating-point weights",
            rec={**recurrent, "weight_hh_l0": np.zeros((15, 5), np.int64)})
    refused(r"^the weights are float16: fastrnn computes in float32 or float64: give "
            r"dtype=...: the weights are converted$",
            rec={k: a.astype(np.float16) for k, a in recurrent.items()},
            out={k: a.astype(np.float16) for k, a in output.items()})
    refused(r"^hidden_size comes from the modules \(an nn.GRU of 2 layers over 7 characters, 5 "
            r"units\): give the others only$", hidden_size=8)
    refused(r"^output's weight holds values too large for float32$",
            out={**output, "weight": np.full((7, 5), 1e300)}, dtype="float32")
    refused(r"^weight_hh_l1 holds NaN or infinite values$",
            rec={**recurrent, "weight_hh_l1": np.full((15, 5), np.nan)})
    refused(r"^bias_ih_l0 and bias_hh_l0 hold NaN or infinite values$",
            rec={**recurrent, "bias_ih_l0": np.full(15, np.inf)})
    refused(r"^unknown cell 'transformer'", cell="transformer")
    with pytest.raises(ValueError, match=r"^source must be a CharRNN, a Checkpoint or Weights, "
                                         r"got dict$"):
        interop.torch_state_dicts(recurrent)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell, L", MODELS)
def test_to_torch_computes_the_models_loss_and_state(cell, L, dtype, tmp_path):
    import torch
    model = trained(cell, L, dtype, dropout=0.25 if L > 1 else 0.0)
    rnn, out = interop.to_torch(model)
    assert type(rnn).__name__ == {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    assert not rnn.training and not out.training, "eval mode: no dropout"
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.dropout) == \
        (7, 5, L, model.config.dropout)
    assert out.weight.dtype == getattr(torch, dtype)
    ids = np.random.default_rng(3).integers(0, 7, 60)
    state = model.first_stream_state()
    loss, after = model.evaluate(ids, state=state)
    x = torch.nn.functional.one_hot(torch.from_numpy(ids[:-1]), 7).to(out.weight.dtype)[:, None]
    h0 = torch.from_numpy(state[:, 0].copy())
    hs, final = rnn(x, (h0, torch.from_numpy(state[:, 1].copy())) if cell == "lstm" else h0)
    t_loss = torch.nn.functional.cross_entropy(out(hs)[:, 0], torch.from_numpy(ids[1:]),
                                               reduction="sum")
    assert_close(loss, t_loss.item(), np.dtype(dtype), "loss")
    final = final if cell == "lstm" else (final,)
    for s, part in enumerate(final):
        assert_close(after[:, s], part.detach().numpy(), np.dtype(dtype), f"state {s}")
    # and from a checkpoint on disk, the same modules
    path = tmp_path / "c.npz"
    checkpoint.save(path, Checkpoint.of(model, Vocab("abcdefg"), [], {}))
    rnn2, out2 = interop.to_torch(checkpoint.load(path))
    for a, b in zip((*rnn.parameters(), *out.parameters()),
                    (*rnn2.parameters(), *out2.parameters())):
        assert torch.equal(a, b)
    assert rnn2.dropout == model.config.dropout


@needs_torch
@pytest.mark.parametrize("cell, L", MODELS)
def test_from_torch_computes_what_pytorchs_modules_compute(cell, L):
    """PyTorch's own initialisation (both biases drawn), modules made batch-first: the model
    brought over gives PyTorch's loss, and trains."""
    import torch
    torch.manual_seed(L)
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = kind(9, 6, L, dropout=0.3 if L > 1 else 0.0, batch_first=True).double()
    out = torch.nn.Linear(6, 9).double()
    model = interop.from_torch(rnn, out, seq_length=5, optimizer="adam")
    assert (model.config.cell, model.config.num_layers, model.config.dropout,
            model.config.seq_length, model.config.dtype) == \
        (cell, L, 0.3 if L > 1 else 0.0, 5, "float64")
    ids = np.random.default_rng(4).integers(0, 9, 50)
    rnn.eval()
    x = torch.nn.functional.one_hot(torch.from_numpy(ids[:-1]), 9).double()[None]
    logits = out(rnn(x)[0])[0]
    t_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ids[1:]),
                                               reduction="sum")
    assert_close(model.evaluate(ids)[0], t_loss.item(), np.float64, "loss")
    assert np.isfinite(model.train(ids, 3)).all()
    assert interop.from_torch(rnn, out, dropout=0.0).config.dropout == 0.0


@needs_torch
def test_from_torch_names_what_it_cannot_bring():
    import torch
    out = torch.nn.Linear(4, 5)
    for rnn, message in [
            (torch.nn.LSTM(5, 4, bidirectional=True), "a bidirectional LSTM reads the text "
                                                      "backwards too"),
            (torch.nn.LSTM(5, 4, proj_size=2), "an LSTM with proj_size 2 projects its output"),
            (torch.nn.RNN(5, 4, nonlinearity="relu"), r"nn.RNN\(nonlinearity='relu'\): "
                                                      r"fastrnn's tanh cell"),
            (torch.nn.Linear(5, 4), r"^rnn must be a torch.nn.RNN, torch.nn.LSTM or "
                                    r"torch.nn.GRU itself, not a subclass \(which may compute "
                                    r"otherwise\), got Linear$"),
            (type("MyLSTM", (torch.nn.LSTM,), {})(5, 4), r"not a subclass .*got MyLSTM: one "
                                                         r"that computes as its base class does "
                                                         r"goes to from_torch_state_dicts\(cell, "
                                                         r"rnn.state_dict\(\), "
                                                         r"out.state_dict\(\)\)$"),
            ({"weight_ih_l0": 1}, r"got dict: state dicts go to from_torch_state_dicts$")]:
        with pytest.raises(ValueError, match=message):
            interop.from_torch(rnn, out)
    with pytest.raises(ValueError, match="out must be torch.nn.Linear, got LSTM"):
        interop.from_torch(torch.nn.LSTM(5, 4), torch.nn.LSTM(4, 5))
    with pytest.raises(ValueError, match=r"^output's weight has shape \(5, 3\), expected "
                                         r"\(5, 4\) \(an nn.LSTM of 1 layer over 5 characters"):
        interop.from_torch(torch.nn.LSTM(5, 4), torch.nn.Linear(3, 5))
    with pytest.raises(ValueError, match=r"^weight_ih_l0 is bfloat16: fastrnn "
                                         r"computes in float32 or float64: give dtype=...: the "
                                         r"weights are converted$"):
        interop.from_torch(torch.nn.GRU(5, 4).to(torch.bfloat16), out)
    half = torch.nn.GRU(5, 4).to(torch.float16)
    model = interop.from_torch(half, out, dtype=torch.float32)  # (PyTorch's dtype too)
    assert model.config.dtype == "float32"
    assert np.array_equal(model.params["Whh"], half.weight_hh_l0.float().detach().numpy())
    with pytest.raises(ValueError, match=r"^cell comes from the module \(LSTM\): give the "
                                         r"others only$"):
        interop.from_torch(torch.nn.LSTM(5, 4), out, cell="gru")
    with pytest.raises(ValueError, match=r"^recurrent must be a state dict \(\{name: tensor\}, "
                                         r"a module's state_dict\(\)\), got LSTM: from_torch "
                                         r"takes the modules$"):
        interop.from_torch_state_dicts("lstm", torch.nn.LSTM(5, 4), out.state_dict())
    container = torch.nn.ModuleDict({"rnn": torch.nn.LSTM(5, 4), "out": out})
    with pytest.raises(ValueError, match=r"its keys start with 'rnn\.': give the recurrent "
                                         r"module's own state_dict\(\)$"):
        interop.from_torch_state_dicts("lstm", container.state_dict(), out.state_dict())


@needs_torch
def test_a_model_that_reads_an_embedding_comes_with_it():
    """nn.Embedding -> nn.LSTM -> nn.Linear (a PyTorch char model's usual form): given the
    embedding, its lookup is folded into Wxh, and the model computes PyTorch's loss; without
    it the shapes disagree, and the message says to give it."""
    import torch
    torch.manual_seed(5)
    emb, rnn, out = torch.nn.Embedding(11, 6), torch.nn.LSTM(6, 8, 2), torch.nn.Linear(8, 11)
    for m in (emb, rnn, out):
        m.double()
    model = interop.from_torch(rnn, out, embedding=emb)
    assert (model.config.vocab_size, model.params["Wxh"].shape) == (11, (32, 11))
    ids = np.random.default_rng(6).integers(0, 11, 40)
    logits = out(rnn(emb(torch.from_numpy(ids[:-1]))[:, None])[0])[:, 0]
    t_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ids[1:]),
                                               reduction="sum")
    assert_close(model.evaluate(ids)[0], t_loss.item(), np.float64, "loss")
    with pytest.raises(ValueError, match=r"^output's weight has shape \(11, 8\): 6 logits "
                                         r"expected, one per character of the module's input "
                                         r"\(an nn.LSTM of 2 layers over 6 characters, 8 units; "
                                         r"a module that reads an nn.Embedding's vectors: give "
                                         r"embedding=\)$"):
        interop.from_torch(rnn, out)
    with pytest.raises(ValueError, match=r"^embedding has shape \(11, 5\), expected "
                                         r"\(vocabulary, 6\)"):
        interop.from_torch(rnn, out, embedding=torch.nn.Embedding(11, 5))
    with pytest.raises(ValueError, match=r"^an nn.Embedding with max_norm 1 rescales"):
        interop.from_torch(rnn, out, embedding=torch.nn.Embedding(11, 6, max_norm=1.0))
    with pytest.raises(ValueError, match=r"^embedding must be torch.nn.Embedding, got Linear"):
        interop.from_torch(rnn, out, embedding=out)


def test_to_torch_without_pytorch_says_what_to_do(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match=r"^this needs PyTorch \(pip install torch; .*"
                                          r"torch_state_dicts gives the same weights"):
        interop.to_torch(trained("rnn", 1))


def test_a_cell_pytorch_has_no_module_of_is_named(monkeypatch):
    """(A cell may have no PyTorch counterpart: its TORCH is None.)"""
    from fastrnn.cells import gru
    model = trained("gru", 1)
    recurrent, output = interop.torch_state_dicts(model)
    monkeypatch.setattr(gru, "TORCH", None)
    for call in (lambda: interop.torch_state_dicts(model),
                 lambda: interop.from_torch_state_dicts("gru", recurrent, output)):
        with pytest.raises(ValueError, match=r"^no PyTorch module computes the gru cell$"):
            call()
