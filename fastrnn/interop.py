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
    characters, time-major (the module's docstring), and come in eval mode (no dropout, as
    fastrnn evaluates and samples: ``.train()`` to train them). Needs PyTorch."""
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
    return rnn.eval(), out.eval()


def from_torch(rnn, out, embedding=None, **settings):
    """A CharRNN computing what PyTorch's ``rnn`` (``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` with
    tanh, reading one-hot vectors of its ``input_size`` characters, or with ``embedding``,
    an ``nn.Embedding``, its vectors of them) and ``out`` (``nn.Linear`` to as many logits)
    compute: its cell, sizes, layers, dropout and dtype (float32 or float64) theirs, its
    weights copies of theirs (``from_torch_state_dicts``). ``settings``: the rest of
    CharRNN's arguments (seq_length, learning_rate, optimizer, ...). A ValueError names what
    fastrnn has no counterpart of (a bidirectional module, an LSTM's projection, relu);
    ``batch_first`` changes no weight."""
    torch = _torch()
    name = type(rnn).__name__
    cell = next((c.NAME for c in cells.CELLS.values()
                 if c.TORCH and type(rnn) is getattr(torch.nn, c.TORCH)), None)
    if cell is None:
        kinds = [f"torch.nn.{c.TORCH}" for c in cells.CELLS.values() if c.TORCH]
        raise ValueError(f"rnn must be {', '.join(kinds[:-1])} or {kinds[-1]} (that class: a "
                         f"subclass may compute otherwise), got {name}")
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
    if embedding is not None:
        if not isinstance(embedding, torch.nn.Embedding):
            raise ValueError(f"embedding must be torch.nn.Embedding, got "
                             f"{type(embedding).__name__}")
        if embedding.max_norm is not None:
            raise ValueError(f"an nn.Embedding with max_norm {embedding.max_norm:g} rescales "
                             f"the vectors it looks up: fastrnn reads them as they are")
        embedding = embedding.weight
    if "cell" in settings:
        raise ValueError(f"cell comes from the module ({name}): give the others only")
    if "dropout" not in settings and rnn.dropout and rnn.num_layers > 1:
        settings["dropout"] = float(rnn.dropout)
    return from_torch_state_dicts(cell, rnn.state_dict(), out.state_dict(), embedding,
                                  **settings)


def from_torch_state_dicts(cell, recurrent, output, embedding=None, **settings):
    """A CharRNN of ``cell`` holding the weights of PyTorch's state dicts (``torch_state_dicts``'
    names; tensors or arrays): the recurrent module's ``recurrent`` and the ``nn.Linear``'s
    ``output``; the sizes and the number of layers from the tensors' shapes, the dtype from
    theirs unless ``settings`` give one (then they are converted to it). A module made with
    ``bias=False`` has no biases: zeros here. ``embedding``: the weight (V, D) of an
    ``nn.Embedding`` whose vectors the module reads instead of one-hot characters: a lookup
    followed by the layer's product is the product of their product, ``Wxh = weight_ih_l0
    embedding^T`` (G*H, V), computed in float64. ``settings``: CharRNN's other arguments.
    Needs no PyTorch."""
    c = cells.get(cell)
    _module_name(cell)
    for given, what in ((recurrent, "recurrent"), (output, "output")):
        if not hasattr(given, "items"):
            raise ValueError(f"{what} must be a state dict ({{name: tensor}}, a module's "
                             f"state_dict()), got {type(given).__name__}" + (
                                 ": from_torch takes the modules" if hasattr(given, "state_dict")
                                 else ""))
    dtype = settings.get("dtype")
    if dtype is not None and str(dtype).startswith("torch."):  # (torch.float32: "float32")
        settings["dtype"] = dtype = str(dtype)[6:]
    recurrent = {k: _array(f"recurrent[{k!r}]", v, dtype) for k, v in dict(recurrent).items()}
    output = {k: _array(f"output's {k}", v, dtype) for k, v in dict(output).items()}
    if embedding is not None:
        embedding = _array("embedding", embedding, dtype)
    first = [recurrent.get(f"weight_{k}_l0") for k in ("ih", "hh")]
    if any(a is None or a.ndim != 2 for a in first):
        prefixed = sorted(k[:-len("weight_ih_l0")] for k in recurrent
                          if k.endswith("weight_ih_l0") and k != "weight_ih_l0")
        raise ValueError(f"recurrent must hold a module's weight_ih_l0 and weight_hh_l0, each "
                         f"2-d (PyTorch's names: {', '.join(TORCH_KEYS)}, with _l0, _l1, ...)"
                         + (f"; its keys start with {prefixed[0]!r}: give the recurrent "
                            f"module's own state_dict()" if prefixed else ""))
    if embedding is not None:
        if embedding.ndim != 2 or embedding.shape[1] != first[0].shape[1]:
            raise ValueError(f"embedding has shape {embedding.shape}, expected (vocabulary, "
                             f"{first[0].shape[1]}): the module reads vectors of "
                             f"{first[0].shape[1]}")
        recurrent["weight_ih_l0"] = (first[0].astype(np.float64) @
                                     embedding.astype(np.float64).T).astype(first[0].dtype)
        first[0] = recurrent["weight_ih_l0"]
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
    if "weight" in output and output["weight"].shape[0] != V:
        raise ValueError(f"output's weight has shape {output['weight'].shape}: {V} logits "
                         f"expected, one per character of the module's input ({module}" + (
                             ")" if embedding is not None else "; a module that reads an "
                             "nn.Embedding's vectors: give embedding=)"))
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
    if dtype is None:
        kinds = {}
        for whose, arrays in (("", recurrent), ("output's ", output)):
            for key, a in arrays.items():
                kinds.setdefault(a.dtype.name, []).append(whose + key)
        if len(kinds) > 1:
            raise ValueError("the weights are of mixed types: " + "; ".join(
                f"{d} ({', '.join(names[:2])}" + (f" and {len(names) - 2} more" if
                                                   len(names) > 2 else "") + ")"
                for d, names in sorted(kinds.items()))
                + ": give dtype='float32' or 'float64' (they are converted)")
        dtype = settings["dtype"] = next(iter(kinds))
        if dtype not in config.DTYPES:
            raise ValueError(f"the weights are {dtype}: fastrnn computes in float32 or "
                             f"float64 (give dtype=...: they are converted)")
    from .model import CharRNN
    fixed = {"vocab_size": V, "hidden_size": H, "num_layers": L, "cell": c.NAME}
    clash = sorted(set(settings) & set(fixed))
    if clash:
        raise ValueError(f"{', '.join(clash)} come{'s' * (len(clash) == 1)} from the modules "
                         f"({module}): give the others only")
    model = CharRNN(**fixed, **settings)
    for l in range(L):
        zero = np.zeros(G, model.config.dtype)
        biases = c.from_torch_biases(recurrent.get(f"bias_ih_l{l}", zero),
                                     recurrent.get(f"bias_hh_l{l}", zero))
        own = {"Wxh": recurrent[f"weight_ih_l{l}"], "Whh": recurrent[f"weight_hh_l{l}"],
               **biases}
        for name, a in own.items():
            _copy(model.params[name + _suffix(l)], a, name + _suffix(l))
    _copy(model.params["Why"], output["weight"], "Why")
    _copy(model.params["by"], output.get("bias", np.zeros(V)), "by")
    return model


def _array(name, value, dtype=None):
    """A tensor (any device) or array as a NumPy array; one of another floating-point type
    than fastrnn's (float16, bfloat16) converted to ``dtype`` when given, else refused."""
    if hasattr(value, "detach"):  # (a torch tensor: bfloat16 has no NumPy dtype)
        value = value.detach().cpu()
        kind = str(value.dtype)[6:]
        if kind not in config.DTYPES:
            if not value.is_floating_point():
                raise ValueError(f"{name} holds {kind}, not floating-point weights")
            if dtype is None:
                raise ValueError(f"{name} is {kind}: fastrnn computes in float32 or float64 "
                                 f"(give dtype=...: the weights are converted)")
            value = value.double()
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
