"""A fastrnn model as PyTorch's modules, and back.

The cells compute what PyTorch's compute (``fastrnn/cells``), so a model of cell C with L
layers of H units over V characters is, in PyTorch,

    rnn = nn.LSTM(V, H, L, dropout=p)    # nn.GRU; nn.RNN(V, H, L, nonlinearity="tanh") for "rnn"
    out = nn.Linear(H, V)
    logits = out(rnn(one_hot(x, V).to(dtype), (h0, c0))[0])    # x (T, B): time-major, PyTorch's
                                                                # default; the GRU and RNN: h0

with layer l's tensors (PyTorch's suffix ``_l{l}``; fastrnn's keys ``.l`` for l >= 1):

    weight_ih_l{l} = Wxh (G*H, I)   weight_hh_l{l} = Whh (G*H, H)
    bias_ih_l{l}   = bh (G*H,)      bias_hh_l{l}   = 0, but the GRU's last H: bhn
    out.weight     = Why (V, H)     out.bias       = by (V,)

and a state ``(L, S, B, H)`` is ``h0 = state[:, 0]`` (and the LSTM's ``c0 = state[:, 1]``).
PyTorch's two biases of a gate always enter the same sum, which is fastrnn's ``bh`` (each cell
module's ``torch_biases`` and ``from_torch_biases``): a model brought from PyTorch holds their
sum, the same model up to the rounding of that addition.

``torch_state_dicts`` needs no PyTorch; ``to_torch`` and ``from_torch`` import it when called.
"""

import numpy as np

from . import cells, config
from .spec import Spec

TORCH_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # a layer's, PyTorch's order


def _named(source):
    """(cell, {key: array}) of a CharRNN, a Checkpoint or Weights."""
    from .checkpoint import Checkpoint
    from .model import CharRNN
    from .spec import Weights
    if isinstance(source, (CharRNN, Checkpoint)):
        return source.config.cell, source.params
    if isinstance(source, Weights):
        cell = cells.get_by_layer(source.layers[0]).NAME
        return cell, Spec.of(cell, *source.Why.shape, len(source.layers)).named(source)
    raise ValueError(f"expected a CharRNN, a Checkpoint or Weights, got {type(source).__name__}")


def torch_state_dicts(source):
    """(the recurrent module's state dict, the output layer's) of a CharRNN, a Checkpoint or
    Weights, as PyTorch names them (the module's docstring), holding copies of its weights as
    NumPy arrays: ``rnn.load_state_dict({k: torch.from_numpy(a) for k, a in ...})``."""
    cell_name, named = _named(source)
    cell = cells.get(cell_name)
    _module_name(cell_name)
    recurrent, layer = {}, 0
    while f"Wxh{_suffix(layer)}" in named:
        own = {t: named[t + _suffix(layer)] for t in cell.Layer._fields}
        bias_ih, bias_hh = cell.torch_biases(own)
        for key, a in zip(TORCH_KEYS, (own["Wxh"], own["Whh"], bias_ih, bias_hh)):
            recurrent[f"{key}_l{layer}"] = np.array(a)
        layer += 1
    return recurrent, {"weight": np.array(named["Why"]), "bias": np.array(named["by"])}


def _module_name(cell):
    """The name of PyTorch's module computing ``cell`` (in torch.nn); a ValueError if none."""
    name = cells.get(cell).TORCH
    if name is None:
        raise ValueError(f"no PyTorch module computes the {cell} cell")
    return name


def _suffix(layer):
    return "" if layer == 0 else f".{layer}"


def to_torch(source):
    """(rnn, out): PyTorch's recurrent module (``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``) and
    ``nn.Linear`` computing the model of a CharRNN, a Checkpoint or Weights, in its dtype,
    with its dropout between layers (a model's, a checkpoint's); they read one-hot
    characters, time-major (the module's docstring). Needs PyTorch."""
    torch = _torch()
    cell, named = _named(source)
    (V, H), dtype = named["Why"].shape, getattr(torch, named["Why"].dtype.name)
    L = sum(1 for key in named if key.startswith("Wxh"))
    kind = getattr(torch.nn, _module_name(cell))
    extra = {"nonlinearity": "tanh"} if kind is torch.nn.RNN else {}
    dropout = source.config.dropout if hasattr(source, "config") else 0.0
    rnn = kind(V, H, L, dropout=dropout, dtype=dtype, **extra)
    out = torch.nn.Linear(H, V, dtype=dtype)
    for module, state in zip((rnn, out), torch_state_dicts(source)):
        module.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()})
    return rnn, out


def from_torch(rnn, out, **settings):
    """A CharRNN computing what PyTorch's ``rnn`` (``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` with
    tanh, reading one-hot vectors of its ``input_size`` characters) and ``out`` (``nn.Linear``
    to as many logits) compute: its cell, sizes, layers, dropout and dtype (float32 or
    float64) theirs, its weights copies of theirs (``from_torch_state_dicts``). ``settings``:
    the rest of CharRNN's arguments (seq_length, learning_rate, optimizer, ...). A
    ValueError names what fastrnn has no counterpart of (a bidirectional module, an LSTM's
    projection, relu); ``batch_first`` changes no weight."""
    torch = _torch()
    name = type(rnn).__name__
    cell = next((c.NAME for c in cells.CELLS.values()
                 if c.TORCH and type(rnn) is getattr(torch.nn, c.TORCH)), None)
    if cell is None:
        kinds = [f"torch.nn.{c.TORCH}" for c in cells.CELLS.values() if c.TORCH]
        raise ValueError(f"rnn must be {', '.join(kinds[:-1])} or {kinds[-1]}, got {name}")
    if rnn.bidirectional:
        raise ValueError(f"a bidirectional {name} reads the text backwards too: a character "
                         f"model has no counterpart of it")
    if getattr(rnn, "proj_size", 0):
        raise ValueError(f"an {name} with proj_size {rnn.proj_size} projects its output: "
                         f"fastrnn's LSTM has no projection")
    if getattr(rnn, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"nn.RNN(nonlinearity={rnn.nonlinearity!r}): fastrnn's tanh cell "
                         f"computes nonlinearity='tanh' only")
    if not isinstance(out, torch.nn.Linear):
        raise ValueError(f"out must be torch.nn.Linear, got {type(out).__name__}")
    if "dropout" not in settings and rnn.dropout and rnn.num_layers > 1:
        settings["dropout"] = float(rnn.dropout)
    return from_torch_state_dicts(cell, rnn.state_dict(), out.state_dict(), **settings)


def from_torch_state_dicts(cell, recurrent, output, **settings):
    """A CharRNN of ``cell`` holding the weights of PyTorch's state dicts (``torch_state_dicts``'
    names; tensors or arrays): the recurrent module's ``recurrent`` and the ``nn.Linear``'s
    ``output``; the sizes and the number of layers from the tensors' shapes, the dtype from
    theirs unless ``settings`` give one. A module made with ``bias=False`` has no biases:
    zeros here. ``settings``: CharRNN's other arguments. Needs no PyTorch."""
    c = cells.get(cell)
    _module_name(cell)
    recurrent = {k: _array(f"recurrent[{k!r}]", v) for k, v in dict(recurrent).items()}
    output = {k: _array(f"output[{k!r}]", v) for k, v in dict(output).items()}
    first = [recurrent.get(f"weight_{k}_l0") for k in ("ih", "hh")]
    if any(a is None or a.ndim != 2 for a in first):
        raise ValueError(f"recurrent must hold a module's weight_ih_l0 and weight_hh_l0, each "
                         f"2-d (PyTorch's names: {', '.join(TORCH_KEYS)}, with _l0, _l1, ...)")
    V, H = first[0].shape[1], first[1].shape[1]  # (input size, hidden size)
    L = 0
    while f"weight_ih_l{L}" in recurrent:
        L += 1
    G = c.GATES * H
    module = f"an nn.{c.TORCH} of {L} layer{'s' * (L != 1)} over {V} characters, {H} units"
    expected = {}
    for l in range(L):
        expected.update({f"weight_ih_l{l}": (G, V if l == 0 else H), f"weight_hh_l{l}": (G, H),
                         f"bias_ih_l{l}": (G,), f"bias_hh_l{l}": (G,)})
    expected_out = {"weight": (V, H), "bias": (V,)}
    unknown = sorted(set(recurrent) - set(expected)) + \
        [f"output's {k}" for k in sorted(set(output) - set(expected_out))]
    if unknown:
        raise ValueError(f"no fastrnn counterpart for {', '.join(unknown)} ({module})")
    for given, wanted, whose in ((recurrent, expected, ""), (output, expected_out, "output's ")):
        for key, shape in wanted.items():
            if key in given and given[key].shape != shape:
                raise ValueError(f"{whose}{key} has shape {given[key].shape}, expected {shape} "
                                 f"({module})")
    biased = any(k.startswith("bias") for k in recurrent)  # (none: a module of bias=False)
    missing = [k for k in expected if k not in recurrent and (biased or "bias" not in k)]
    missing += ["output's weight"] if "weight" not in output else []
    if missing:
        raise ValueError(f"no {', '.join(missing)} ({module})")
    dtypes = sorted({a.dtype.name for a in (*recurrent.values(), *output.values())})
    if "dtype" not in settings:
        if len(dtypes) > 1 or dtypes[0] not in config.DTYPES:
            raise ValueError(f"the weights are {' and '.join(dtypes)}: fastrnn computes in "
                             f"float32 or float64 (give dtype=...)")
        settings["dtype"] = dtypes[0]
    from .model import CharRNN
    fixed = {"vocab_size": V, "hidden_size": H, "num_layers": L, "cell": c.NAME}
    clash = sorted(set(settings) & set(fixed))
    if clash:
        raise ValueError(f"{', '.join(clash)} come{'s' * (len(clash) == 1)} from the modules "
                         f"({module}): give the others only")
    model = CharRNN(**fixed, **settings)
    for l in range(L):
        zero = np.zeros(G, settings["dtype"])
        biases = c.from_torch_biases(recurrent.get(f"bias_ih_l{l}", zero),
                                     recurrent.get(f"bias_hh_l{l}", zero))
        own = {"Wxh": recurrent[f"weight_ih_l{l}"], "Whh": recurrent[f"weight_hh_l{l}"],
               **biases}
        for name, a in own.items():
            _copy(model.params[name + _suffix(l)], a, name + _suffix(l))
    _copy(model.params["Why"], output["weight"], "Why")
    _copy(model.params["by"], output.get("bias", np.zeros(V)), "by")
    return model


def _array(name, value):
    """A tensor (any device) or array as a NumPy array."""
    if hasattr(value, "detach"):  # (a torch tensor: bfloat16 has no NumPy dtype)
        value = value.detach().cpu()
        if str(value.dtype) not in ("torch.float32", "torch.float64"):
            raise ValueError(f"{name} is {str(value.dtype)[6:]}: fastrnn computes in float32 "
                             f"or float64")
        value = value.numpy()
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise ValueError(f"{name} holds {a.dtype}, not floating-point weights")
    return a


def _copy(dst, src, name):
    """src into the model's tensor ``dst``: finite and representable in its dtype."""
    with np.errstate(over="ignore", invalid="ignore"):
        dst[...] = src
    if not np.isfinite(dst).all():
        raise ValueError(f"{name} holds values that are not finite in {dst.dtype}")


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("this needs PyTorch (pip install torch; the CPU wheel is enough); "
                          "torch_state_dicts gives the same weights as NumPy arrays without "
                          "it") from None
    return torch
