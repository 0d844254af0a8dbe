"""A slow, obviously-correct NumPy LSTM/GRU/RNN: the oracle for every kernel test.

One sequence at a time, one timestep at a time, in float64, with the gradient
written out by hand step by step. Ragged sequences are simply cut to their
length, which is what PyTorch's packed sequences mean.
"""
import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _cell_forward(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step for one sequence. Returns (h, c, saved)."""
    if cell == "gru":  # torch.nn.GRU: gates r, z, n; b_hn inside the reset gate's product
        H = h.shape[0]
        gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        h_new = (1 - z) * n + z * h
        return h_new, None, (x, h, r, z, n, gh[2 * H:])
    z = w_ih @ x + w_hh @ h + b_ih + b_hh
    if cell == "rnn":
        h_new = np.tanh(z)
        return h_new, None, (x, h, h_new)
    H = h.shape[0]
    i, f, g, o = _sigmoid(z[:H]), _sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), _sigmoid(z[3 * H:])
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, c_new, (x, h, c, i, f, g, o, c_new)


def _cell_backward(cell, saved, dh, dc, w_ih, w_hh):
    """Backward of `_cell_forward`. Returns (dx, dh_prev, dc_prev, dz, x, h_prev); for the
    GRU dz is the pair (gradient of W_ih x + b_ih, gradient of W_hh h + b_hh)."""
    if cell == "gru":
        x, h, r, z, n, gh_n = saved
        dn = dh * (1 - z) * (1 - n ** 2)          # w.r.t. n's pre-activation
        d_r = dn * gh_n * r * (1 - r)             # w.r.t. r's pre-activation
        d_z = dh * (h - n) * z * (1 - z)          # w.r.t. z's pre-activation
        d_gi = np.concatenate([d_r, d_z, dn])
        d_gh = np.concatenate([d_r, d_z, dn * r])
        return w_ih.T @ d_gi, w_hh.T @ d_gh + dh * z, None, (d_gi, d_gh), x, h
    if cell == "rnn":
        x, h, h_new = saved
        dz = dh * (1 - h_new ** 2)
        return w_ih.T @ dz, w_hh.T @ dz, None, dz, x, h
    x, h, c, i, f, g, o, c_new = saved
    tc = np.tanh(c_new)
    do = dh * tc
    dc = dc + dh * o * (1 - tc ** 2)
    dz = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                         dc * i * (1 - g ** 2), do * o * (1 - o)])
    return w_ih.T @ dz, w_hh.T @ dz, dc * f, dz, x, h


def _names(layer, direction):
    s = "_reverse" if direction == 1 else ""
    return [f"weight_ih_l{layer}{s}", f"weight_hh_l{layer}{s}", f"bias_ih_l{layer}{s}",
            f"bias_hh_l{layer}{s}"]


def reference_forward(params, x, lengths, cell, num_layers, bidirectional, h0=None, c0=None,
                      dropout_masks=None):
    """Returns output (B, T, D*H), h_n, c_n and a tape for `reference_backward`."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    D = 2 if bidirectional else 1
    H = p["weight_hh_l0"].shape[1]
    h0 = np.zeros((num_layers * D, B, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    layer_in = x
    tape = []
    for k in range(num_layers):
        out = np.zeros((B, T, D * H))
        layer_tape = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh = (p[n] for n in _names(k, d))
            seq_tape = []
            for b in range(B):
                n = lengths[b]
                order = range(n) if d == 0 else range(n - 1, -1, -1)
                h, c = h0[k * D + d, b], c0[k * D + d, b]
                steps = []
                for t in order:
                    h, c, saved = _cell_forward(cell, layer_in[b, t], h, c, w_ih, w_hh, b_ih, b_hh)
                    out[b, t, d * H:(d + 1) * H] = h
                    steps.append((t, saved))
                h_n[k * D + d, b] = h
                if cell == "lstm":
                    c_n[k * D + d, b] = c
                seq_tape.append(steps)
            layer_tape.append(seq_tape)
        tape.append(layer_tape)
        if dropout_masks is not None and k < num_layers - 1:
            out = out * dropout_masks[k]
        layer_in = out
    return layer_in, h_n, c_n, tape


def reference_backward(params, tape, d_output, lengths, cell, num_layers, bidirectional,
                       input_size, d_h_n=None, d_c_n=None, dropout_masks=None):
    """Returns d_x (B, T, F), grads dict, d_h0, d_c0."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    D = 2 if bidirectional else 1
    H = p["weight_hh_l0"].shape[1]
    B, T, _ = d_output.shape
    d_h_n = np.zeros((num_layers * D, B, H)) if d_h_n is None else d_h_n
    d_c_n = np.zeros((num_layers * D, B, H)) if d_c_n is None else d_c_n
    d_h0, d_c0 = np.zeros_like(d_h_n), np.zeros_like(d_c_n)
    d_layer = np.array(d_output, np.float64)
    for b in range(B):
        d_layer[b, lengths[b]:] = 0
    for k in range(num_layers - 1, -1, -1):
        in_size = input_size if k == 0 else D * H
        d_in = np.zeros((B, T, in_size))
        for d in range(D):
            names = _names(k, d)
            w_ih, w_hh = p[names[0]], p[names[1]]
            for b in range(B):
                dh = d_h_n[k * D + d, b].copy()
                dc = d_c_n[k * D + d, b].copy()
                for t, saved in reversed(tape[k][d][b]):
                    dh = dh + d_layer[b, t, d * H:(d + 1) * H]
                    dx, dh, dc, dz, x_t, h_prev = _cell_backward(cell, saved, dh, dc, w_ih, w_hh)
                    d_gi, d_gh = dz if cell == "gru" else (dz, dz)
                    d_in[b, t] += dx
                    grads[names[0]] += np.outer(d_gi, x_t)
                    grads[names[1]] += np.outer(d_gh, h_prev)
                    grads[names[2]] += d_gi
                    grads[names[3]] += d_gh
                d_h0[k * D + d, b] = dh
                if cell == "lstm":
                    d_c0[k * D + d, b] = dc
        if k > 0 and dropout_masks is not None:
            d_in = d_in * dropout_masks[k - 1]
        d_layer = d_in
    return d_layer, grads, d_h0, d_c0
