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
sum, computed in float64 and rounded once into the model's dtype.

``torch_state_dicts`` and ``from_torch_state_dicts`` need no PyTorch; ``to_torch`` and
``from_torch`` import it when called.
"""

import numpy as np

from . import cells, config
from .spec import Spec

WEIGHTS = {"Wxh": "weight_ih", "Whh": "weight_hh"}  # a layer's weights: fastrnn's -> PyTorch's
BIASES = ("bias_ih", "bias_hh")                      # ...and PyTorch's biases (cell.torch_biases)


# ---------------------------------------------------------------------------------------------
# fastrnn -> PyTorch

def torch_state_dicts(source):
    """(the recurrent module's state dict, the output layer's) of a CharRNN, a Checkpoint or
    Weights, as PyTorch names them (the module's docstring), holding copies of its weights as
    NumPy arrays: ``rnn.load_state_dict({k: torch.from_numpy(a) for k, a in ...})``."""
    spec, named = _source(source)
    _module_name(spec.cell)
    recurrent = {}
    for l in range(spec.num_layers):
        own = {t.name: named[t.key] for t in spec.tensors if t.layer == l}
        for ours, theirs in WEIGHTS.items():
            recurrent[f"{theirs}_l{l}"] = np.array(own[ours])
        for theirs, bias in zip(BIASES, spec.cell.torch_biases(own)):
            recurrent[f"{theirs}_l{l}"] = np.array(bias)
    return recurrent, {"weight": np.array(named["Why"]), "bias": np.array(named["by"])}


def to_torch(source):
    """(rnn, out): PyTorch's recurrent module (``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``) and
    ``nn.Linear`` computing the model of a CharRNN, a Checkpoint or Weights, in its dtype,
    with its dropout between layers (a model's, a checkpoint's); they read one-hot
    characters, time-major (the module's docstring), and come in eval mode (no dropout, as
    fastrnn evaluates and samples: ``.train()`` to train them). Needs PyTorch."""
    torch = _torch()
    spec, named = _source(source)
    kind = getattr(torch.nn, _module_name(spec.cell))
    extra = {"nonlinearity": "tanh"} if kind is torch.nn.RNN else {}
    dtype = getattr(torch, named["Why"].dtype.name)
    dropout = source.config.dropout if hasattr(source, "config") else 0.0
    rnn = kind(spec.vocab_size, spec.hidden_size, spec.num_layers, dropout=dropout, dtype=dtype,
               **extra)
    out = torch.nn.Linear(spec.hidden_size, spec.vocab_size, dtype=dtype)
    for module, state in zip((rnn, out), torch_state_dicts(source)):
        module.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()})
    return rnn.eval(), out.eval()


def _source(source):
    """(spec, {key: array}) of a CharRNN, a Checkpoint or Weights."""
    from .checkpoint import Checkpoint
    from .model import CharRNN
    from .reference import spec_of
    from .spec import Weights
    if isinstance(source, CharRNN):
        return source.spec, source.params
    if isinstance(source, Checkpoint):
        c = source.config
        return Spec.of(c.cell, c.vocab_size, c.hidden_size, c.num_layers), source.params
    if isinstance(source, Weights):
        spec = spec_of(source)
        return spec, spec.named(source)
    raise ValueError(f"source must be a CharRNN, a Checkpoint or Weights, got "
                     f"{type(source).__name__}")


# ---------------------------------------------------------------------------------------------
# PyTorch -> fastrnn

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
    kinds = {c.TORCH: c.NAME for c in cells.CELLS.values() if c.TORCH}
    cell = kinds.get(name) if type(rnn) is getattr(torch.nn, name, None) else None
    if cell is None:
        listed = [f"torch.nn.{k}" for k in kinds]
        raise ValueError(f"rnn must be a {', '.join(listed[:-1])} or {listed[-1]} itself, not "
                         f"a subclass (which may compute otherwise), got {name}" + (
                             ": state dicts go to from_torch_state_dicts"
                             if hasattr(rnn, "items") else
                             ": one that computes as its base class does goes to "
                             "from_torch_state_dicts(cell, rnn.state_dict(), out.state_dict())"
                             if isinstance(rnn, torch.nn.RNNBase) else ""))
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
        if not 0 <= rnn.dropout < 1:
            raise ValueError(f"the {name}'s dropout is {rnn.dropout:g}: fastrnn's is in [0, 1) "
                             f"(give dropout=...)")
        settings["dropout"] = float(rnn.dropout)
    return from_torch_state_dicts(cell, rnn.state_dict(), out.state_dict(), embedding,
                                  **settings)


def from_torch_state_dicts(cell, recurrent, output, embedding=None, **settings):
    """A CharRNN of ``cell`` holding the weights of PyTorch's state dicts (``torch_state_dicts``'
    names; tensors or arrays): the recurrent module's ``recurrent`` and the ``nn.Linear``'s
    ``output``; the sizes and the number of layers from the tensors' shapes, the dtype from
    theirs unless ``settings`` give one (float16 and bfloat16 then converted too). A module
    made with ``bias=False`` has no biases: zeros here. ``embedding``: the weight (V, D) of
    an ``nn.Embedding`` whose vectors the module reads instead of one-hot characters: a
    lookup followed by the layer's product is the product of the two, ``Wxh = weight_ih_l0
    embedding^T`` (G*H, V). Sums and that product are computed in float64 and rounded once
    into the model's dtype. ``settings``: CharRNN's other arguments. Needs no PyTorch."""
    c = cells.get(cell)
    _module_name(c)
    if settings.get("dtype") is not None and str(settings["dtype"]).startswith("torch."):
        settings["dtype"] = _torch_dtype_name(settings["dtype"])  # (torch.float32)
    given = settings.get("dtype")
    recurrent, output, embedding = _arrays(recurrent, output, embedding, given is not None)
    spec = _spec_of(c, recurrent, output, embedding)
    if given is None:
        settings["dtype"] = _common_dtype(recurrent, output)
    if embedding is not None:
        recurrent["weight_ih_l0"] = recurrent["weight_ih_l0"].astype(np.float64) @ \
            embedding.astype(np.float64).T
    from .model import CharRNN
    fixed = {"vocab_size": spec.vocab_size, "hidden_size": spec.hidden_size,
             "num_layers": spec.num_layers, "cell": c.NAME}
    clash = sorted(set(settings) & set(fixed))
    if clash:
        raise ValueError(f"{', '.join(clash)} come{'s' * (len(clash) == 1)} from the modules "
                         f"({_described(spec)}): give the others only")
    model = CharRNN(**fixed, **settings)
    zero = np.zeros(spec.cell.GATES * spec.hidden_size)
    for l in range(spec.num_layers):
        wide = [recurrent.get(f"{b}_l{l}", zero).astype(np.float64) for b in BIASES]
        own = {**{ours: (recurrent[f"{theirs}_l{l}"], f"{theirs}_l{l}")
                  for ours, theirs in WEIGHTS.items()},
               **{ours: (a, " and ".join(f"{b}_l{l}" for b in BIASES))
                  for ours, a in c.from_torch_biases(*wide).items()}}
        for t in spec.tensors:
            if t.layer == l:
                _copy(model.params[t.key], *own[t.name])
    _copy(model.params["Why"], output["weight"], "output's weight")
    _copy(model.params["by"], output.get("bias", np.zeros(spec.vocab_size)), "output's bias")
    return model


def _arrays(recurrent, output, embedding, convert):
    """The state dicts and the embedding as NumPy arrays (``_array``)."""
    for given, what in ((recurrent, "recurrent"), (output, "output")):
        if not hasattr(given, "items"):
            raise ValueError(f"{what} must be a state dict ({{name: tensor}}, a module's "
                             f"state_dict()), got {type(given).__name__}" + (
                                 ": from_torch takes the modules" if hasattr(given, "state_dict")
                                 else ""))
    return ({k: _array(k, v, convert) for k, v in recurrent.items()},
            {k: _array(f"output's {k}", v, convert) for k, v in output.items()},
            None if embedding is None else _array("embedding", embedding, convert))


def _array(name, value, convert):
    """A tensor (any device) or an array as a NumPy array; a tensor of another floating-point
    type than fastrnn's (bfloat16, which NumPy lacks; float16) as float64 with ``convert`` (a
    dtype was given), else refused."""
    if hasattr(value, "state_dict"):
        raise ValueError(f"{name} is a module ({type(value).__name__}): give its weight "
                         f"(from_torch takes the modules)")
    if hasattr(value, "detach"):  # (a torch tensor: bfloat16 has no NumPy dtype)
        value = value.detach().cpu()
        if value.is_floating_point() and _torch_dtype_name(value.dtype) not in config.DTYPES:
            if not convert:
                raise ValueError(f"{name} is {_torch_dtype_name(value.dtype)}: fastrnn "
                                 f"computes in float32 or float64: give dtype=...: the weights "
                                 f"are converted")
            value = value.double()
        value = value.numpy()
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise ValueError(f"{name} holds {a.dtype}, not floating-point weights")
    return a


def _torch_dtype_name(dtype):
    """NumPy's name of a torch dtype: "float32" for torch.float32."""
    return str(dtype)[len("torch."):]


def _spec_of(cell, recurrent, output, embedding):
    """The Spec of the model the state dicts hold (its sizes from weight_ih_l0 and
    weight_hh_l0, or the embedding's vocabulary; its layers from the weight_ih_l{l} given),
    every tensor checked against it: none missing (all biases or none), none unknown, each
    of its shape."""
    first = [recurrent.get(f"{theirs}_l0") for theirs in WEIGHTS.values()]
    if any(a is None or a.ndim != 2 for a in first):
        prefixed = sorted(k[:-len("weight_ih_l0")] for k in recurrent
                          if k.endswith("weight_ih_l0") and k != "weight_ih_l0")
        raise ValueError(f"recurrent must hold a module's weight_ih_l0 and weight_hh_l0, each "
                         f"2-d (PyTorch's names: {', '.join(WEIGHTS.values())}, "
                         f"{', '.join(BIASES)}, with _l0, _l1, ...)"
                         + (f"; its keys start with {prefixed[0]!r}: give the recurrent "
                            f"module's own state_dict()" if prefixed else ""))
    inputs, H = first[0].shape[1], first[1].shape[1]
    if first[1].shape[0] != cell.GATES * H and "weight_hr_l0" not in recurrent:  # (H is read
        G = f"{cell.GATES}H" if cell.GATES > 1 else "H"  # from it: the other tensors would be
        # blamed for its mistake; a projection's, named below)
        raise ValueError(f"weight_hh_l0 has shape {first[1].shape}, not an nn.{cell.TORCH}'s "
                         f"({G}, H)")
    if embedding is not None and (embedding.ndim != 2 or embedding.shape[1] != inputs):
        raise ValueError(f"embedding has shape {embedding.shape}, expected (vocabulary, "
                         f"{inputs}): the module reads vectors of {inputs}")
    V = inputs if embedding is None else embedding.shape[0]
    L = 0
    while f"weight_ih_l{L}" in recurrent:
        L += 1
    spec = Spec.of(cell.NAME, V, H, L)
    expected = {}
    for l in range(L):
        shapes = {t.name: t.shape for t in spec.tensors if t.layer == l}
        expected.update({f"{theirs}_l{l}": shapes[ours] for ours, theirs in WEIGHTS.items()})
        if l == 0 and embedding is not None:
            expected["weight_ih_l0"] = (cell.GATES * H, inputs)
        expected.update({f"{b}_l{l}": shapes["bh"] for b in BIASES})
    expected_out = {"weight": spec.by_key["Why"].shape, "bias": spec.by_key["by"].shape}
    unknown = sorted(set(recurrent) - set(expected)) + \
        [f"output's {k}" for k in sorted(set(output) - set(expected_out))]
    if unknown:
        raise ValueError(f"no fastrnn counterpart for {', '.join(unknown)} "
                         f"({_described(spec)})")
    weight = output.get("weight")
    if weight is not None and weight.ndim == 2 and weight.shape[0] != V:
        raise ValueError(f"output's weight has shape {weight.shape}: {V} logits expected, one "
                         f"per character of the module's input ({_described(spec)}" + (
                             ")" if embedding is not None else "; a module that reads an "
                             "nn.Embedding's vectors: give embedding=)"))
    for given, wanted, whose in ((recurrent, expected, ""), (output, expected_out, "output's ")):
        for key, shape in wanted.items():
            if key in given and given[key].shape != shape:
                raise ValueError(f"{whose}{key} has shape {given[key].shape}, expected {shape} "
                                 f"({_described(spec)})")
    biased = any(k.startswith("bias") for k in recurrent)  # (none: a module of bias=False)
    missing = [k for k in expected if k not in recurrent and (biased or "bias" not in k)]
    missing += ["output's weight"] if weight is None else []
    if missing:
        raise ValueError(f"no {', '.join(missing)} ({_described(spec)})")
    return spec


def _described(spec):
    L = spec.num_layers
    V, H = spec.vocab_size, spec.hidden_size
    return (f"an nn.{spec.cell.TORCH} of {L} layer{'s' * (L != 1)} over {V} "
            f"character{'s' * (V != 1)}, {H} unit{'s' * (H != 1)}")


def _common_dtype(recurrent, output):
    """The one dtype of the state dicts' weights, fastrnn's (float32 or float64), else a
    ValueError naming what they are."""
    kinds = {}
    for whose, arrays in (("", recurrent), ("output's ", output)):
        for key, a in arrays.items():
            kinds.setdefault(a.dtype.name, []).append(whose + key)
    if len(kinds) > 1:
        raise ValueError("the weights are of mixed types: " + "; ".join(
            f"{d} ({', '.join(names[:2])}" + (f" and {len(names) - 2} more" if len(names) > 2
                                              else "") + ")"
            for d, names in sorted(kinds.items()))
            + ": give dtype=...: the weights are converted")
    dtype = next(iter(kinds))
    if dtype not in config.DTYPES:
        raise ValueError(f"the weights are {dtype}: fastrnn computes in float32 or float64: "
                         f"give dtype=...: the weights are converted")
    return dtype


def _copy(dst, src, name):
    """src into the model's tensor ``dst``, rounded once: finite, and representable in its
    dtype."""
    holds = "hold" if " and " in name else "holds"
    if not np.isfinite(src).all():
        raise ValueError(f"{name} {holds} NaN or infinite values")
    with np.errstate(over="ignore"):
        dst[...] = src
    if not np.isfinite(dst).all():
        raise ValueError(f"{name} {holds} values too large for {dst.dtype}")


def _module_name(cell):
    """The name of PyTorch's module computing ``cell`` (a cell module or its name), in
    torch.nn; a ValueError if none does."""
    cell = cells.get(cell) if isinstance(cell, str) else cell
    if cell.TORCH is None:
        raise ValueError(f"no PyTorch module computes the {cell.NAME} cell")
    return cell.TORCH


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("this needs PyTorch (pip install torch; the CPU wheel is enough); "
                          "torch_state_dicts gives the same weights as NumPy arrays without "
                          "it") from None
    return torch
