"""The oracle against PyTorch (an optional peer: skipped where it is not installed).

One chunk from the same weights and the same non-zero initial state: the loss, every named
gradient of ``reference.backward(clip=None)`` and the final state must equal what PyTorch's
``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN(nonlinearity="tanh")`` + ``nn.Linear`` and a summed
cross-entropy compute, in float64, for 1 and 2 layers and 1 and 3 streams.

The modules are ``fastrnn.interop.to_torch``'s (so this checks its mapping too), layer l
(input size V for layer 0, read as one-hot vectors, else H):

    weight_ih_l{l} = Wxh (G*H, I)       weight_hh_l{l} = Whh (G*H, H)
    bias_ih_l{l}   = bh (G*H,)          bias_hh_l{l}   = 0, except gru's last H: bhn
    Linear(H, V):  weight = Why (V, H), bias = by (V,)

so d bh is PyTorch's d bias_ih (and, where both biases enter the same sum, d bias_hh too); gru's
d bhn is d bias_hh[2H:].
"""

import numpy as np
import pytest

from fastrnn import interop, reference
from fastrnn.spec import Spec
from tests.helpers import assert_close, random_chunk, random_weights

torch = pytest.importorskip("torch")

F64 = np.float64


def torch_chunk(rnn, out, x, y, state, cell, V):
    """(loss, final state (L, S, B, H)) of one chunk; gradients left in the parameters."""
    inputs = torch.nn.functional.one_hot(torch.from_numpy(x.T), V).double()   # (T, B, V)
    h0 = torch.from_numpy(state[:, 0].copy())                                   # (L, B, H)
    initial = (h0, torch.from_numpy(state[:, 1].copy())) if cell == "lstm" else h0
    hs, final = rnn(inputs, initial)                                            # (T, B, H)
    logits = out(hs)                                                            # (T, B, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V),
                                             torch.from_numpy(y.T.reshape(-1)), reduction="sum")
    loss.backward()
    final = torch.stack(final if cell == "lstm" else (final,), dim=1)           # (L, S, B, H)
    return loss.item(), final.detach().numpy()


def torch_grads(rnn, out, cell, L, H):
    """PyTorch's gradients as {fastrnn key: array}, and the pairs that must agree with each
    other (both biases of one sum): [(name, a, b)]."""
    grads, twins = {}, []
    for l in range(L):
        suffix = "" if l == 0 else f".{l}"
        g = {name: getattr(rnn, f"{name}_l{l}").grad.numpy()
             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        grads["Wxh" + suffix], grads["Whh" + suffix] = g["weight_ih"], g["weight_hh"]
        grads["bh" + suffix] = g["bias_ih"]
        shared = slice(0, 2 * H) if cell == "gru" else slice(None)
        twins.append((f"bias_hh_l{l} (= bias_ih_l{l})", g["bias_hh"][shared],
                      g["bias_ih"][shared]))
        if cell == "gru":
            grads["bhn" + suffix] = g["bias_hh"][2 * H:]
    grads["Why"], grads["by"] = out.weight.grad.numpy(), out.bias.grad.numpy()
    return grads, twins


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reference_matches_pytorch(cell, L, B):
    H, V, T = 5, 7, 6
    rng = np.random.default_rng([L, B, len(cell)])
    spec = Spec(cell, V, H, L)
    w = random_weights(rng, H, V, F64, scale=0.5, num_layers=L, cell=cell)
    x, y = random_chunk(rng, T, V, B)
    state = rng.standard_normal((L, len(spec.cell.STATES), B, H)) * 0.5

    loss, cache = reference.forward(w, x, y, state)
    grads = spec.named(reference.backward(w, x, y, cache, clip=None))

    rnn, out = interop.to_torch(w)
    t_loss, t_state = torch_chunk(rnn, out, x, y, state, cell, V)
    t_grads, twins = torch_grads(rnn, out, cell, L, H)

    assert_close(loss, t_loss, F64, "loss")
    for s, name in enumerate(spec.cell.STATES):
        assert_close(cache[0][:, -1, s], t_state[:, s], F64, f"final {name}")
    assert set(grads) == set(t_grads), "every named tensor has a PyTorch counterpart"
    assert np.abs(np.concatenate([g.ravel() for g in grads.values()])).max() > 1e-2
    for key, g in grads.items():
        assert_close(g, t_grads[key], F64, f"d{key}")
    for name, a, b in twins:
        assert_close(a, b, F64, name)
