"""The NumPy oracle: the model written to be read.

Every fast kernel in fastrnn is tested equal to the functions here. They keep the dtype of the
arrays they are given (float64 is the reference precision) and read parameters by name from a
``spec.Weights`` (``w.layers[l].Whh``, ``w.Why``, ...).

One path for any number of streams B, layers L and any cell (``cells``: rnn, lstm, gru). A
chunk is ``x`` and ``y``, (B, T) ids: stream b reads ``x[b, t]`` and must predict ``y[b, t]``.
The state carried from chunk to chunk is ``state (L, S, B, H)``: for each layer, the cell's S
state vectors (``cell.STATES``: h for rnn and gru, (h, c) for lstm) of every stream. Layer 0
reads the one-hot character, layer l the output h of layer l-1, through dropout when training
asks for it; the softmax reads the top layer's h:

    s[l]_t = cell.step(layer l, input_t, s[l]_{t-1})     input_t = x_t (l = 0),
                                                          else m[l-1]_t * h[l-1]_t
    p_t    = softmax(Why h[L-1]_t + by);   loss = sum over t, b of -log p_t[y_t]

(-log p_t[y_t] is computed from the logits, log(sum(exp(z))) - z[y_t], as the kernels do: the
same number, but finite where p_t[y_t] underflows to 0.)

Dropout (char-rnn's: on the output of every layer but the last, in training only) is given as
``masks (L-1, T, B, H)``: each element 0 or 1/(1-p) (``dropout_masks`` draws them from a
generator, outside every kernel, so each backend applies the same masks); ``masks=None`` is
no dropout.

Loss and gradients are summed over steps and streams; gradients are then clipped element by
element to [-clip, clip] (a model's ``grad_clip``: min-char-rnn's CLIP = 5 unless set; 0 clips
nothing) and the optimizer (``optim.OPTIMIZERS``) updates the parameters. With B = 1,
L = 1 and the rnn cell this is min-char-rnn: ``loss_fun`` and ``adagrad`` keep its arguments
and shapes.
"""

import math

import numpy as np

from . import cells
from .config import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, CLIP, RMSPROP_DECAY,
                     RMSPROP_EPS)
from .spec import Spec


def spec_of(w):
    """The Spec that lays out weights ``w``."""
    cell = cells.get_by_layer(w.layers[0])
    V, H = w.Why.shape
    return Spec.of(cell.NAME, V, H, len(w.layers))


def softmax(y):
    """Row-wise softmax of logits y (..., V), the maximum subtracted first."""
    return normalised(y)[0]


def normalised(y):
    """Row-wise softmax of logits y (..., V), the maximum subtracted first, and the
    log-normaliser log(sum(exp(y))) of each row, from the same exponentials: -log of a
    probability as the log-normaliser minus its logit stays finite where the probability
    underflows to 0."""
    m = y.max(axis=-1, keepdims=True)
    e = np.exp(y - m)
    s = e.sum(axis=-1, keepdims=True)
    return e / s, (m + np.log(s))[..., 0]


def dropout_masks(rng, p, shape, dtype):
    """Inverted-dropout masks of ``shape``: 1/(1-p) where ``rng.random`` draws >= p, else 0,
    in ``dtype``. Drawing (n, *shape) at once gives the same masks as n draws of ``shape``,
    so a run's masks do not depend on how its chunks are grouped into calls."""
    keep = rng.random(shape) >= p
    masks = keep.astype(dtype)
    masks *= np.dtype(dtype).type(1.0 / (1.0 - p))  # the scale rounded once, as keep * it would be
    return masks


def forward(w, x, y, state, masks=None):
    """Run the chunk; return (loss, cache) with cache = (hs (L, T+1, S, B, H), ps (T, B, V)).

    ``hs[l, 0]`` is layer l's state before the chunk, ``hs[l, t+1]`` after step t; ``masks``:
    dropout between layers (L-1, T, B, H), or None.
    """
    cell = cells.get_by_layer(w.layers[0])
    (B, T), L = x.shape, len(w.layers)
    V = w.Why.shape[0]
    hs = np.zeros((L, T + 1) + state.shape[1:], dtype=w.Why.dtype)
    ps = np.zeros((T, B, V), dtype=w.Why.dtype)
    hs[:, 0] = state
    streams = np.arange(B)
    loss = 0.0
    for t in range(T):
        below = x[:, t]                                                   # ids (B,)
        for l, layer in enumerate(w.layers):
            if l > 0 and masks is not None:
                below = below * masks[l - 1, t]
            hs[l, t + 1] = cell.step(layer, below, hs[l, t])
            below = hs[l, t + 1, 0]                                       # h (B, H)
        logits = below @ w.Why.T + w.by                                   # (B, V)
        ps[t], lse = normalised(logits)
        loss += float((lse - logits[streams, y[:, t]]).sum())                # -log p[y]
    return loss, (hs, ps)


def backward(w, x, y, cache, clip=CLIP, masks=None):
    """Gradients of the chunk's loss (Weights), clipped to [-clip, clip]; ``masks`` as given to
    ``forward``.

    ``clip=None`` returns the exact, unclipped gradient (used by the gradient check).
    """
    cell = cells.get_by_layer(w.layers[0])
    hs, ps = cache
    (B, T), L = x.shape, len(w.layers)
    g = spec_of(w).zeros(w.Why.dtype)
    dnext = np.zeros((L,) + hs.shape[2:], dtype=hs.dtype)                # (L, S, B, H)
    streams = np.arange(B)
    for t in reversed(range(T)):
        dy = ps[t].copy()
        dy[streams, y[:, t]] -= 1                                         # p - onehot(target)
        g.Why[...] += dy.T @ hs[L - 1, t + 1, 0]
        g.by[...] += dy.sum(axis=0)
        dh = dy @ w.Why                                                   # into the top layer
        for l in reversed(range(L)):
            below = x[:, t] if l == 0 else hs[l - 1, t + 1, 0]
            if l > 0 and masks is not None:
                below = below * masks[l - 1, t]
            dstate = dnext[l].copy()
            dstate[0] += dh
            dnext[l], dh = cell.backward_step(w.layers[l], below, hs[l, t], hs[l, t + 1],
                                              dstate, g.layers[l])
            if l > 0 and masks is not None:
                dh = dh * masks[l - 1, t]
    if clip is not None:
        np.clip(g.flat, -clip, clip, out=g.flat)
    return g


def loss_fun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """min-char-rnn's ``lossFun``: (loss, dWxh, dWhh, dWhy, dbh, dby, h_last (H,1))."""
    w = weights(Wxh, Whh, Why, bh, by)
    x, y = np.asarray(inputs)[None, :], np.asarray(targets)[None, :]
    loss, cache = forward(w, x, y, hprev.reshape(1, 1, 1, -1))
    g = backward(w, x, y, cache)
    rnn = g.layers[0]
    return (loss, rnn.Wxh, rnn.Whh, g.Why, rnn.bh.reshape(-1, 1), g.by.reshape(-1, 1),
            cache[0][0, -1, 0, 0].reshape(-1, 1).copy())


def weights(Wxh, Whh, Why, bh, by):
    """min-char-rnn's five arrays as Weights (views; the flat buffer is a dummy)."""
    return Spec.of("rnn", *Why.shape).assemble(np.zeros(0, Why.dtype),
                                            [Wxh, Whh, bh.reshape(-1), Why, by.reshape(-1)])


def evaluate(w, data, state, chunk=100, progress=None):
    """Summed loss of predicting ``data[1:]`` from ``data[:-1]``; return (loss, state).

    No training. ``progress``: if given, called with the number of characters each chunk
    predicted, after it (the calls add up to ``len(data) - 1``). ``state`` is (L, S, B, H).
    With B = 1, one stream runs through the whole sequence (``chunk`` only bounds the memory
    used), and the returned state is the one after reading ``data[:-1]``, so priming a sample
    on a text is ``evaluate(text)`` followed by sampling from its last character: the number
    comparable to min-char-rnn's.

    With B > 1 the text is read as B contiguous streams side by side (what parallel hardware
    wants): with n = len(data) - 1 predictions and P = n // B, stream b predicts characters
    b*P + 1 .. (b+1)*P from state[:, :, b]; then the last stream goes on alone through the
    n - B*P < B characters left. Every character is predicted once, but stream b > 0 starts
    from the given state instead of from where stream b - 1 ended, so its first few
    predictions lack their context and the total differs slightly from one stream's (usually
    higher). The returned state is each stream's after its last input.
    """
    B = state.shape[2]
    n = len(data) - 1
    if B == 1:
        loss = 0.0
        for start in range(0, n, chunk):
            targets = data[start + 1:start + chunk + 1]
            inputs = data[start:start + len(targets)]
            chunk_loss, (hs, _) = forward(w, inputs[None, :], targets[None, :], state)
            loss += chunk_loss
            state = hs[:, -1]
            if progress is not None:
                progress(len(targets))
        return loss, state.copy()
    P = n // B
    starts = np.arange(B) * P
    loss = 0.0
    state = state.copy()
    for t0 in range(0, P, chunk):
        m = min(chunk, P - t0)
        window = data[(starts + t0)[:, None] + np.arange(m + 1)]
        chunk_loss, (hs, _) = forward(w, window[:, :m], window[:, 1:], state)
        loss += chunk_loss
        state = hs[:, -1]
        if progress is not None:
            progress(B * m)
    if n > B * P:
        rest, last = evaluate(w, data[B * P:], state[:, :, B - 1:], chunk, progress)
        loss += rest
        state[:, :, B - 1:] = last
    return loss, state.copy()


def choose(p, u):
    """Index drawn from probabilities p by the uniform u in [0, 1), as ``np.random.choice`` does."""
    cdf = np.cumsum(p, dtype=np.float64)
    return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(p) - 1)


def truncates(p_size, top_k, top_p):
    """Whether top-k / top-p (nucleus) sampling removes anything: top_k in [1, V) or top_p < 1."""
    return 0 < top_k < p_size or top_p < 1


def truncate(p, top_k, top_p):
    """Top-k and top-p (nucleus) sampling: p with every character outside the kept set set to
    0 (``choose`` renormalises). The characters are ranked by probability (ties: the lower
    index first); the character of rank r is kept while r < top_k (0: no limit) and the
    probability of the characters ranked before it, summed in rank order in float64, is below
    top_p. Nothing changes when ``truncates`` is False (so top_p = 1 never drops a tail that
    rounding pushed past 1). Every backend does exactly this, so a seed gives the same text."""
    p = np.array(p)
    if not truncates(len(p), top_k, top_p):
        return p
    order = np.lexsort((np.arange(len(p)), -p))                  # rank order
    before = np.cumsum(np.concatenate([[0.0], p[order[:-1]]]), dtype=np.float64)  # (in order)
    kept = before < top_p                                         # the mass ranked before each
    if top_k:
        kept &= np.arange(len(p)) < top_k
    p[order[~kept]] = 0
    return p


def sample(w, state, seed_ix, uniforms, temperature=1.0, greedy=False, top_k=0, top_p=1.0):
    """Generate ``len(uniforms)`` ids after ``seed_ix`` from ``state`` (L, S, 1, H); return
    (ixes, state after the last one).

    Step t feeds the previous character, draws from ``softmax(y / temperature)``, cut to its
    top-k / top-p characters (``truncate``), with ``uniforms[t]`` (or takes the argmax when
    ``greedy``).
    """
    cell = cells.get_by_layer(w.layers[0])
    state = state.copy()
    ix, ixes = seed_ix, []
    for u in uniforms:
        below = np.array([ix])
        for l, layer in enumerate(w.layers):
            state[l] = cell.step(layer, below, state[l])
            below = state[l, 0]
        y = (below @ w.Why.T + w.by)[0]
        ix = int(np.argmax(y)) if greedy else choose(
            truncate(softmax(y / temperature), top_k, top_p), u)
        ixes.append(ix)
    return ixes, state


# ---------------------------------------------------------------------------------------------
# Optimizers (registered by name in ``optim.py``): lists of arrays, updated in place

def adagrad(params, grads, mems, learning_rate):
    """Adagrad, in place: ``m += g*g; w += -lr * g / sqrt(m + 1e-8)``."""
    for w, g, m in zip(params, grads, mems):
        m += g * g
        w += -learning_rate * g / np.sqrt(m + ADAGRAD_EPS)


def rmsprop(params, grads, mems, learning_rate):
    """char-rnn's RMSprop, in place: ``m = 0.95 m + 0.05 g*g; w += -lr * g / (sqrt(m) + 1e-8)``."""
    for w, g, m in zip(params, grads, mems):
        m *= RMSPROP_DECAY
        m += (1 - RMSPROP_DECAY) * g * g
        w += -learning_rate * g / (np.sqrt(m) + RMSPROP_EPS)


def adam(params, grads, ms, vs, learning_rate, step):
    """Adam as PyTorch computes it, in place; ``step`` counts updates, this one included (1, 2, ...).

    ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g*g;
    w += -(lr / (1 - b1**step)) * m / (sqrt(v) / sqrt(1 - b2**step) + eps)``
    """
    step_size = learning_rate / (1 - ADAM_BETA1 ** step)
    root_correction = np.sqrt(1 - ADAM_BETA2 ** step)
    for w, g, m, v in zip(params, grads, ms, vs):
        m *= ADAM_BETA1
        m += (1 - ADAM_BETA1) * g
        v *= ADAM_BETA2
        v += (1 - ADAM_BETA2) * g * g
        w += -step_size * m / (np.sqrt(v) / root_correction + ADAM_EPS)


def update(optimizer, w, g, states, learning_rate, step):
    """One update of weights ``w`` by gradients ``g`` (Weights) with ``optimizer`` (an
    ``optim.Optimizer``); ``states``: its state buffers (Weights each); ``step`` counts
    updates, this one included."""
    optimizer.reference([w.flat], [g.flat], [[s.flat] for s in states], learning_rate, step)


def values_fit(flats, squares):
    """Whether training may start from these flat buffers, the weights and then the
    optimizer's states: every value finite, and none negative in ``flats[squares]``, the
    optimizer's sums (or averages) of squared gradients."""
    return all(np.isfinite(f).all() for f in flats) and not (flats[squares] < 0).any()


# ---------------------------------------------------------------------------------------------
# Training: the walk through the data

def stream_starts(n_chars, batch_size):
    """Where each of the B streams begins: the text is cut into B equal contiguous pieces."""
    return np.arange(batch_size) * (n_chars // batch_size)


def wraps(position, seq_length, piece):
    """Whether the chunk at ``position`` would pass the end of a stream's ``piece`` of the text:
    then every stream goes back to offset 0 with its state reset (min-char-rnn's rule)."""
    return position + seq_length + 1 >= piece


def overflows(w, state, temperature):
    """Whether the logits divided by ``temperature`` could overflow the weights' dtype (the
    softmax would be NaN and the draws garbage): samplers then take the limit T -> 0, the
    greedy choice. Every cell keeps |h| <= max(1, |state|) (tanh; the LSTM's o * tanh(c); the
    GRU's convex mix of its candidate and h), so |y_v| <= sum_j |Why[v, j]| * hmax + |by[v]|.
    The kernels divide by the temperature in the dtype (or multiply by 1 / T), so 1 / T must
    not overflow either; a margin of 4 covers the kernels' rounding and the difference
    y_v - max(y) that softmax takes."""
    hmax = max(1.0, float(np.abs(state).max()))
    bound = float((np.abs(w.Why).sum(axis=1, dtype=np.float64) * hmax + np.abs(w.by)).max())
    return max(bound, 1.0) > float(np.finfo(w.Why.dtype).max) / 4 * temperature


def chunks_per_pass(piece, seq_length):
    """The chunks a stream reads from the start of its ``piece`` before it wraps (``wraps``):
    the iterations of one pass over the text (an epoch)."""
    return max(1, math.ceil((piece - seq_length - 1) / seq_length))


def train(w, optimizer, states, data, position, state, learning_rate, seq_length, n_steps,
          step=0, masks=None, clip=CLIP):
    """``n_steps`` chunks of training; return (losses, position, state).

    B = state.shape[2] streams: stream b reads ``data[b*P + position : ...]`` with
    P = len(data) // B; the streams move in lockstep. Weights and optimizer state are updated
    in place; ``step`` is the number of updates made before this call. ``masks``: dropout
    masks (n_steps, L-1, T, B, H), chunk n's ``masks[n]``, or None. ``clip``: gradients are
    clipped to [-clip, clip] before each update; 0 clips nothing.
    """
    B = state.shape[2]
    piece = len(data) // B
    starts = stream_starts(len(data), B)
    losses = []
    for n in range(n_steps):
        if wraps(position, seq_length, piece):
            position, state = 0, np.zeros_like(state)
        window = data[(starts + position)[:, None] + np.arange(seq_length + 1)]    # (B, T+1)
        x, y = window[:, :-1], window[:, 1:]
        chunk_masks = None if masks is None else masks[n]
        loss, cache = forward(w, x, y, state, chunk_masks)
        g = backward(w, x, y, cache, clip=clip or None, masks=chunk_masks)
        step += 1
        update(optimizer, w, g, states, learning_rate, step)
        losses.append(loss)
        state = cache[0][:, -1].copy()
        position += seq_length
    return losses, position, state
