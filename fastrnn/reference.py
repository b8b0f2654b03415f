"""The NumPy oracle: min-char-rnn written to be read.

Every fast kernel in fastrnn is tested equal to the functions here. They keep the dtype of the
arrays they are given (float64 is the reference precision) and use min-char-rnn's shapes:
``Wxh (H,V)``, ``Whh (H,H)``, ``Why (V,H)``, ``bh (H,1)``, ``by (V,1)``, hidden state ``h (H,1)``.

The forward pass returns the activations in the layout the kernels use: ``hs (T+1, H)`` with
``hs[0] = hprev`` and ``ps (T, V)``, one row per time step.

Mini-batches (``*_batch``): B streams of characters are trained at once. Inputs and targets are
(B, T), the hidden state is (B, H) -- one row per stream --, activations are ``hs (T+1, B, H)``
and ``ps (T, B, V)``; the loss and the gradients are summed over the streams, then the
gradients are clipped, as for one stream. With B = 1 these are the single-stream functions.
"""

import numpy as np

CLIP = 5.0
ADAGRAD_EPS = 1e-8
OPTIMIZERS = ("adagrad", "rmsprop", "adam")
RMSPROP_DECAY, RMSPROP_EPS = 0.95, 1e-8               # char-rnn's RMSprop
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8   # PyTorch's Adam defaults


def forward(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """Run the recurrence over one chunk; return (loss, hs (T+1,H), ps (T,V))."""
    T, H, V = len(inputs), Whh.shape[0], Why.shape[0]
    hs = np.zeros((T + 1, H), dtype=Whh.dtype)
    ps = np.zeros((T, V), dtype=Whh.dtype)
    hs[0] = hprev[:, 0]
    loss = 0.0
    for t in range(T):
        h = np.tanh(Wxh[:, inputs[t]] + Whh @ hs[t] + bh[:, 0])  # h: (H,)
        y = Why @ h + by[:, 0]                                     # y: (V,)
        e = np.exp(y - y.max())
        ps[t] = e / e.sum()
        hs[t + 1] = h
        loss -= float(np.log(ps[t, targets[t]]))
    return loss, hs, ps


def backward(inputs, targets, hs, ps, Wxh, Whh, Why, clip=CLIP):
    """Backpropagate through the chunk; return (dWxh, dWhh, dWhy, dbh, dby), clipped to [-clip, clip].

    ``clip=None`` returns the exact, unclipped gradient (used by the gradient check).
    """
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh = np.zeros((Whh.shape[0], 1), dtype=Whh.dtype)
    dby = np.zeros((Why.shape[0], 1), dtype=Why.dtype)
    dh_next = np.zeros(Whh.shape[0], dtype=Whh.dtype)                # (H,)
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()
        dy[targets[t]] -= 1                                          # dy = p - onehot(target)
        dWhy += np.outer(dy, hs[t + 1])
        dby[:, 0] += dy
        dh = Why.T @ dy + dh_next
        draw = (1 - hs[t + 1] * hs[t + 1]) * dh                      # through tanh
        dbh[:, 0] += draw
        dWxh[:, inputs[t]] += draw
        dWhh += np.outer(draw, hs[t])
        dh_next = Whh.T @ draw
    grads = (dWxh, dWhh, dWhy, dbh, dby)
    if clip is not None:
        for g in grads:
            np.clip(g, -clip, clip, out=g)
    return grads


def loss_fun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """min-char-rnn's ``lossFun``: (loss, dWxh, dWhh, dWhy, dbh, dby, h_last (H,1))."""
    loss, hs, ps = forward(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    grads = backward(inputs, targets, hs, ps, Wxh, Whh, Why)
    return (loss, *grads, hs[-1].reshape(-1, 1).copy())


def evaluate(data, hprev, Wxh, Whh, Why, bh, by, chunk=100):
    """Summed loss of predicting ``data[1:]`` from ``data[:-1]``; return (loss, h_last (H,1)).

    No training: the hidden state runs through the whole sequence from ``hprev`` (``chunk`` only
    bounds the memory used). ``h_last`` is the state after reading ``data[:-1]``, so priming a
    sample on a text is ``evaluate(text)`` followed by sampling from its last character.
    """
    loss, h = 0.0, hprev
    for start in range(0, len(data) - 1, chunk):
        targets = data[start + 1:start + chunk + 1]
        inputs = data[start:start + len(targets)]
        chunk_loss, hs, _ = forward(inputs, targets, h, Wxh, Whh, Why, bh, by)
        loss += chunk_loss
        h = hs[-1].reshape(-1, 1)
    return loss, h.copy()


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


def optimize(optimizer, params, grads, state, learning_rate, step):
    """One update with ``optimizer`` (one of OPTIMIZERS); ``state`` is (mems,) or (ms, vs)."""
    if optimizer == "adagrad":
        adagrad(params, grads, state[0], learning_rate)
    elif optimizer == "rmsprop":
        rmsprop(params, grads, state[0], learning_rate)
    elif optimizer == "adam":
        adam(params, grads, state[0], state[1], learning_rate, step)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")


def choose(p, u):
    """Index drawn from probabilities p by the uniform u in [0, 1), as ``np.random.choice`` does."""
    cdf = np.cumsum(p, dtype=np.float64)
    return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(p) - 1)


def sample(h, seed_ix, uniforms, Wxh, Whh, Why, bh, by, temperature=1.0, greedy=False):
    """Generate ``len(uniforms)`` indices after ``seed_ix``; return (ixes, h_last (H,1)).

    Step t feeds the previous character, draws from ``softmax(y / temperature)`` with
    ``uniforms[t]`` (or takes the argmax when ``greedy``).
    """
    h = h[:, 0].copy()
    ix, ixes = seed_ix, []
    for u in uniforms:
        h = np.tanh(Wxh[:, ix] + Whh @ h + bh[:, 0])
        y = Why @ h + by[:, 0]
        if greedy:
            ix = int(np.argmax(y))
        else:
            z = y / temperature
            e = np.exp(z - z.max())
            ix = choose(e / e.sum(), u)
        ixes.append(ix)
    return ixes, h.reshape(-1, 1)


def train(data, position, h, params, mems, learning_rate, seq_length, n_steps,
          optimizer="adagrad", mems2=None, step=0):
    """min-char-rnn's training loop for ``n_steps`` chunks; return (losses, position, h).

    Parameters and Adagrad memory are updated in place. Like min-char-rnn, a chunk that would
    run past the end of ``data`` sends the position back to 0 and resets the hidden state.
    Another ``optimizer`` keeps its state in ``mems`` (and Adam's second moment in ``mems2``);
    ``step`` is the number of updates made before this call.
    """
    losses = []
    for _ in range(n_steps):
        if position + seq_length + 1 >= len(data):
            position, h = 0, np.zeros_like(h)
        inputs = data[position:position + seq_length]
        targets = data[position + 1:position + seq_length + 1]
        loss, *grads, h = loss_fun(inputs, targets, h, *params)
        step += 1
        optimize(optimizer, params, grads, (mems, mems2), learning_rate, step)
        losses.append(loss)
        position += seq_length
    return losses, position, h


# ---------------------------------------------------------------------------------------------
# Mini-batches of B streams

def forward_batch(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """B chunks at once: inputs/targets (B, T), hprev (B, H); return (loss, hs (T+1,B,H), ps (T,B,V))."""
    (B, T), H, V = inputs.shape, Whh.shape[0], Why.shape[0]
    hs = np.zeros((T + 1, B, H), dtype=Whh.dtype)
    ps = np.zeros((T, B, V), dtype=Whh.dtype)
    hs[0] = hprev
    streams = np.arange(B)
    loss = 0.0
    for t in range(T):
        hs[t + 1] = np.tanh(Wxh.T[inputs[:, t]] + hs[t] @ Whh.T + bh[:, 0])   # (B, H)
        y = hs[t + 1] @ Why.T + by[:, 0]                                       # (B, V)
        e = np.exp(y - y.max(axis=1, keepdims=True))
        ps[t] = e / e.sum(axis=1, keepdims=True)
        loss -= float(np.log(ps[t, streams, targets[:, t]]).sum())
    return loss, hs, ps


def backward_batch(inputs, targets, hs, ps, Wxh, Whh, Why, clip=CLIP):
    """Gradients summed over the B streams, then clipped; shapes as ``backward``."""
    B, T = inputs.shape
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh = np.zeros((Whh.shape[0], 1), dtype=Whh.dtype)
    dby = np.zeros((Why.shape[0], 1), dtype=Why.dtype)
    dh_next = np.zeros((B, Whh.shape[0]), dtype=Whh.dtype)         # (B, H)
    streams = np.arange(B)
    for t in reversed(range(T)):
        dy = ps[t].copy()
        dy[streams, targets[:, t]] -= 1                              # (B, V)
        dWhy += dy.T @ hs[t + 1]
        dby[:, 0] += dy.sum(axis=0)
        dh = dy @ Why + dh_next
        draw = (1 - hs[t + 1] * hs[t + 1]) * dh                      # (B, H)
        dbh[:, 0] += draw.sum(axis=0)
        np.add.at(dWxh.T, inputs[:, t], draw)                        # streams may share a character
        dWhh += draw.T @ hs[t]
        dh_next = draw @ Whh
    grads = (dWxh, dWhh, dWhy, dbh, dby)
    if clip is not None:
        for g in grads:
            np.clip(g, -clip, clip, out=g)
    return grads


def stream_starts(n_chars, batch_size):
    """Where each of the B streams begins: the text is cut into B equal contiguous pieces."""
    return np.arange(batch_size) * (n_chars // batch_size)


def train_batch(data, position, h, params, mems, learning_rate, seq_length, n_steps,
                optimizer="adagrad", mems2=None, step=0):
    """``train`` for B streams (B = len(h)); ``position`` is the offset inside every stream.

    Stream b reads ``data[b*L + position : ...]`` with L = len(data) // B; the streams move in
    lockstep, and when a chunk would pass the end of a stream's piece all of them go back to
    offset 0 with their hidden states reset. Returns (losses, position, h (B, H)).
    """
    B = h.shape[0]
    piece = len(data) // B
    starts = stream_starts(len(data), B)
    losses = []
    for _ in range(n_steps):
        if position + seq_length + 1 >= piece:
            position, h = 0, np.zeros_like(h)
        window = data[(starts + position)[:, None] + np.arange(seq_length + 1)]    # (B, T+1)
        inputs, targets = window[:, :-1], window[:, 1:]
        loss, hs, ps = forward_batch(inputs, targets, h, *params)
        grads = backward_batch(inputs, targets, hs, ps, *params[:3])
        step += 1
        optimize(optimizer, params, grads, (mems, mems2), learning_rate, step)
        losses.append(loss)
        h = hs[-1].copy()
        position += seq_length
    return losses, position, h
