"""numba.cuda kernels with the contract of `nlstm.kernels.cpu`.

Same function names and signatures as the CPU module (stumpy's layout), so the
layer can pick either module. Every function takes NumPy arrays (copied to the
GPU and results copied back into them) or numba device arrays (left on the
GPU, no copies). The GPU runs the whole batch as one grid.

A sweep is one persistent kernel: a single cooperative launch loops over the
timesteps, each step fusing the recurrent products ``h_{t-1} @ W_hh^T``, the
gates, the cell update and the length mask, with a grid-wide barrier between
steps. The input projection of all steps (and the weight gradients) are
shared-memory tiled GEMMs (`_matmul_kernel`) before (and after) the sweep.
The state, the weights and every saved activation stay on the device for the
whole sweep. Masking follows PyTorch's packed sequences, as on the CPU.

Importing this module needs ``numba.cuda`` (the ``numba-cuda`` package, or the
CUDA simulator: ``NUMBA_ENABLE_CUDASIM=1``); ``import nlstm`` never imports it.
"""
import math

import numpy as np
from numba import config, cuda

from .plumbing.cuda_device import (
    ELEMENTWISE,
    Edges,
    blocks_for,
    column_sums_kernel,
    gemm,
    on_device,
    per_dtype,
)


# --------------------------------------------------------------------------
# Hoisted products
# --------------------------------------------------------------------------
def _project_inputs(x, w_cat, x_proj):
    """``x_proj[:] = x @ W_ih^T + b`` for all steps at once, on device arrays.
    x: (T, B, F) or (B, T, F), w_cat: (F + H + 1, GH) = ``[W_ih^T; W_hh^T; b]``,
    x_proj: (T, B, GH) or (B, T, GH), the same leading axes as x."""
    n0, n1, F = x.shape
    gemm(x.reshape(n0 * n1, F), w_cat[:F], x_proj.reshape(n0 * n1, x_proj.shape[2]),
          bias=w_cat[w_cat.shape[0] - 1])


def matmul_rows(a, b, out):
    """``out[:] = a @ b``: a (N, K), b (K, M), out (N, M)."""
    edges = Edges()
    d_out = edges.output(out)
    gemm(edges.input(a), edges.input(b), d_out)
    edges.finish()
    return out



def weight_grads(d_pre, inputs, h_prev):
    """Gradients of ``W_ih``, ``W_hh`` and the bias (shapes as the CPU version).

    Returns arrays of the kind given: NumPy for NumPy input, device arrays for
    device input.
    """
    on_host = not on_device(d_pre)
    edges = Edges()
    d_pre, inputs, h_prev = edges.input(d_pre), edges.input(inputs), edges.input(h_prev)
    gh, dtype = d_pre.shape[1], d_pre.dtype
    d_w_ih = cuda.device_array((gh, inputs.shape[1]), dtype)  # (GH, K)
    d_w_hh = cuda.device_array((gh, h_prev.shape[1]), dtype)  # (GH, H)
    d_b = cuda.device_array(gh, dtype)                        # (GH,)
    gemm(d_pre, inputs, d_w_ih, transpose_a=True)            # d_pre^T @ inputs
    gemm(d_pre, h_prev, d_w_hh, transpose_a=True)            # d_pre^T @ h_prev
    column_sums_kernel(dtype)[blocks_for(gh), ELEMENTWISE](d_pre, d_b)
    if on_host:
        return d_w_ih.copy_to_host(), d_w_hh.copy_to_host(), d_b.copy_to_host()
    return d_w_ih, d_w_hh, d_b


@cuda.jit
def _reverse_within_lengths_kernel(x, lengths, out):
    # x, out: (T, B, F); one thread per (t, b)
    i = cuda.grid(1)
    T, B = x.shape[0], x.shape[1]
    if i < T * B:
        t, b = i // B, i % B
        n = lengths[b]
        src = n - 1 - t if t < n else t
        for f in range(x.shape[2]):
            out[t, b, f] = x[src, b, f]


def reverse_within_lengths(x, lengths, out):
    """``out[t, b] = x[lengths[b] - 1 - t, b]`` for ``t < lengths[b]``, else ``x[t, b]``."""
    edges = Edges()
    d_out = edges.output(out)
    T, B = x.shape[0], x.shape[1]
    _reverse_within_lengths_kernel[blocks_for(T * B), ELEMENTWISE](
        edges.input(x), edges.input(lengths), d_out)
    edges.finish()
    return out


@cuda.jit
def _zero_after_lengths_kernel(x, lengths):
    i = cuda.grid(1)
    T, B = x.shape[0], x.shape[1]
    if i < T * B:
        t, b = i // B, i % B
        if t >= lengths[b]:
            for f in range(x.shape[2]):
                x[t, b, f] = 0.0


def zero_after_lengths(x, lengths):
    """Zero ``x[t, b]`` for ``t >= lengths[b]`` in place. x: (T, B, F)."""
    edges = Edges()
    d_x = edges.output(x, read=True)  # zeroed in place
    T, B = x.shape[0], x.shape[1]
    _zero_after_lengths_kernel[blocks_for(T * B), ELEMENTWISE](d_x, edges.input(lengths))
    edges.finish()
    return x


# --------------------------------------------------------------------------
# Persistent sweeps: one launch runs every timestep
# --------------------------------------------------------------------------
# A numba-cuda launch costs tens of microseconds of host time, more than a
# small step's arithmetic on the GPU (benchmarks/HISTORY.md, session 25). So each sweep is
# one cooperative launch: the kernel loops over the timesteps itself, every
# thread owns the same (row b, unit j) items at every step, and a grid-wide
# barrier (``this_grid().sync()``) separates the steps. Each item computes its
# own recurrent dot products (h_{t-1}[b, :] against the W_hh columns of unit j,
# read through the caches), so a step needs no other synchronisation.
SWEEP_THREADS = 32 if config.ENABLE_CUDASIM else 256
# Blocks per multiprocessor: the best of the shapes tried on an H100
# (benchmarks/HISTORY.md, session 25).
SWEEP_BLOCKS_PER_SM = 2
_cooperative_limits = {}  # (kernel, argument types) -> most blocks resident at once


def _sweep_blocks(kernel, items, args):
    """Blocks of a cooperative sweep over ``items`` (b, j) items: enough to
    give each thread one item, at most SWEEP_BLOCKS_PER_SM per multiprocessor,
    and never more than can be resident at once (the grid barrier needs every
    block running). The simulator synchronises only within a block: one block
    there."""
    if config.ENABLE_CUDASIM:
        return 1
    types = tuple(kernel.typeof_pyval(a) for a in args)
    key = (id(kernel), types)
    if key not in _cooperative_limits:
        limit = kernel.compile(types).max_cooperative_grid_blocks(SWEEP_THREADS)
        n_sm = cuda.get_current_device().MULTIPROCESSOR_COUNT
        _cooperative_limits[key] = max(1, min(limit, SWEEP_BLOCKS_PER_SM * n_sm))
    wanted = (items + SWEEP_THREADS - 1) // SWEEP_THREADS
    return max(1, min(wanted, _cooperative_limits[key]))


def _launch_sweep(kernel, items, *args):
    kernel[_sweep_blocks(kernel, items, args), SWEEP_THREADS](*args)


# LSTM cell, gate order i, f, g, o. The kernels keep what the CPU sweep keeps:
# the gates' tanh values tanh(x_i / 2), tanh(x_f / 2), tanh(x_g), tanh(x_o / 2)
# (sigmoid(x) = (1 + tanh(x / 2)) / 2), and write the gate lines out in each
# kernel: a shared device function (cuda.jit(device=True) or register_jitable)
# makes numba 0.68's compile_ptx ask the CUDA driver for a device. The grid
# group of cuda.cg.this_grid() is one such function; tests/cuda_ptx_check.py
# gives it the target's capability where no driver is present.
@per_dtype
def _lstm_forward_sweep_kernel(scalar):
    """Every step of one LSTM direction: recurrent products, gates, cell
    update, length mask."""
    half = scalar(0.5)

    @cuda.jit
    def kernel(w_hh_t, lengths, hs, cs, gates):
        # w_hh_t: (H, 4H) = W_hh^T; hs, cs: (T + 1, B, H), [0] the initial state;
        # gates: (T, B, 4H): x @ W_ih^T + b on entry, the gates' tanh values on exit
        grid = cuda.cg.this_grid()
        T, B, H = gates.shape[0], hs.shape[1], hs.shape[2]
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for t in range(T):
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                if t < lengths[b]:
                    zi, zf = gates[t, b, j], gates[t, b, H + j]
                    zg, zo = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                    for k in range(H):  # h_{t-1}[b] @ W_hh^T, the four columns of unit j
                        hk = hs[t, b, k]
                        zi += hk * w_hh_t[k, j]
                        zf += hk * w_hh_t[k, H + j]
                        zg += hk * w_hh_t[k, 2 * H + j]
                        zo += hk * w_hh_t[k, 3 * H + j]
                    ti, tf = math.tanh(half * zi), math.tanh(half * zf)
                    gg, to = math.tanh(zg), math.tanh(half * zo)
                    ig, fg, og = half * ti + half, half * tf + half, half * to + half
                    c = fg * cs[t, b, j] + ig * gg
                    cs[t + 1, b, j] = c
                    hs[t + 1, b, j] = og * math.tanh(c)
                    gates[t, b, j] = ti
                    gates[t, b, H + j] = tf
                    gates[t, b, 2 * H + j] = gg
                    gates[t, b, 3 * H + j] = to
                else:  # past this row's end: carry the state
                    cs[t + 1, b, j] = cs[t, b, j]
                    hs[t + 1, b, j] = hs[t, b, j]
                    for g in range(4):
                        gates[t, b, g * H + j] = 0
            grid.sync()  # step t's states are complete before step t + 1 reads them

    return kernel


@per_dtype
def _lstm_inference_sweep_kernel(scalar):
    """Every step of one LSTM direction, forward only, batch-first: the state
    alternates between two buffers (a step reads all of h_{t-1}[b] while
    others write h_t), and the output is written at the step read."""
    half = scalar(0.5)

    @cuda.jit
    def kernel(x_proj, w_hh_t, lengths, reverse, h, c, h_buf, out, column):
        # x_proj: (B, T, 4H); w_hh_t: (H, 4H); h, c: (B, H) read and written;
        # h_buf: (2, B, H) scratch; out: (B, T, W) or (0, 0, 0): not kept
        grid = cuda.cg.this_grid()
        B, T, H = x_proj.shape[0], x_proj.shape[1], h.shape[1]
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for item in range(first, B * H, stride):
            h_buf[0, item // H, item % H] = h[item // H, item % H]
        grid.sync()
        for t in range(T):
            now, nxt = t % 2, (t + 1) % 2
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                n = lengths[b]
                if t < n:
                    s = n - 1 - t if reverse else t  # the step this row reads
                    zi, zf = x_proj[b, s, j], x_proj[b, s, H + j]
                    zg, zo = x_proj[b, s, 2 * H + j], x_proj[b, s, 3 * H + j]
                    for k in range(H):
                        hk = h_buf[now, b, k]
                        zi += hk * w_hh_t[k, j]
                        zf += hk * w_hh_t[k, H + j]
                        zg += hk * w_hh_t[k, 2 * H + j]
                        zo += hk * w_hh_t[k, 3 * H + j]
                    ti, tf = math.tanh(half * zi), math.tanh(half * zf)
                    gg, to = math.tanh(zg), math.tanh(half * zo)
                    ig, fg, og = half * ti + half, half * tf + half, half * to + half
                    c_new = fg * c[b, j] + ig * gg
                    h_new = og * math.tanh(c_new)
                    c[b, j] = c_new  # only this item reads c[b, j]
                    h_buf[nxt, b, j] = h_new
                    if out.shape[0] > 0:
                        out[b, s, column + j] = h_new
                else:
                    h_buf[nxt, b, j] = h_buf[now, b, j]
                    if out.shape[0] > 0:
                        out[b, t, column + j] = 0
            grid.sync()
        for item in range(first, B * H, stride):
            h[item // H, item % H] = h_buf[T % 2, item // H, item % H]

    return kernel


@per_dtype
def _lstm_backward_sweep_kernel(scalar):
    """Backward of every step of one LSTM direction, last step first."""
    one, half, zero = scalar(1), scalar(0.5), scalar(0)

    @cuda.jit
    def kernel(d_hs, w_hh, lengths, cs, gates, d_pre, dh, dc):
        # d_hs: (T, B, H); w_hh: (4H, H); cs: (T + 1, B, H); gates, d_pre: (T, B, 4H)
        # dh, dc: (B, H), the gradients flowing into h_t and c_t: d_h_n and d_c_n
        # on entry, the gradients w.r.t. the initial state on exit
        grid = cuda.cg.this_grid()
        T, B, H = gates.shape[0], dh.shape[0], dh.shape[1]
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for t in range(T - 1, -1, -1):
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                n = lengths[b]
                if t + 1 < T and t + 1 < n:  # step t + 1's gradient into h_t
                    acc = zero
                    for m in range(4 * H):  # d_pre[t + 1, b] @ W_hh, column j
                        acc += d_pre[t + 1, b, m] * w_hh[m, j]
                    dh[b, j] = acc
                if t < n:
                    ig, fg = half * gates[t, b, j] + half, half * gates[t, b, H + j] + half
                    gg, og = gates[t, b, 2 * H + j], half * gates[t, b, 3 * H + j] + half
                    dh_total = dh[b, j] + d_hs[t, b, j]
                    tc = math.tanh(cs[t + 1, b, j])
                    # derivatives from the outputs: sigmoid' = y (1 - y), tanh' = 1 - y^2
                    dcj = dc[b, j] + dh_total * og * (one - tc * tc)
                    d_pre[t, b, j] = dcj * gg * ig * (one - ig)
                    d_pre[t, b, H + j] = dcj * cs[t, b, j] * fg * (one - fg)
                    d_pre[t, b, 2 * H + j] = dcj * ig * (one - gg * gg)
                    d_pre[t, b, 3 * H + j] = dh_total * tc * og * (one - og)
                    dc[b, j] = dcj * fg
                else:  # past this row's end: the gradients pass through
                    for g in range(4):
                        d_pre[t, b, g * H + j] = 0
            grid.sync()  # step t's d_pre is complete before step t - 1 reads it
        for item in range(first, B * H, stride):
            b, j = item // H, item % H
            if 0 < lengths[b]:  # step 0's gradient into the initial state
                acc = zero
                for m in range(4 * H):
                    acc += d_pre[0, b, m] * w_hh[m, j]
                dh[b, j] = acc

    return kernel


def lstm_forward_sweep(x, w_cat, lengths, hs, cs, gates):
    """Run one LSTM direction over all timesteps (arguments as the CPU version:
    x (T, B, F), w_cat (F + H + 1, 4H) = [W_ih^T; W_hh^T; b],
    hs/cs (T + 1, B, H), gates (T, B, 4H)).

    The input projection of all steps is one GEMM into ``gates``; the
    persistent sweep kernel reads each step's part before overwriting it with
    that step's gates."""
    edges = Edges()
    d_x, d_w, d_len = edges.input(x), edges.input(w_cat), edges.input(lengths)
    d_hs, d_cs = edges.output(hs, read=True), edges.output(cs, read=True)  # [0]: initial state
    d_gates = edges.output(gates)
    F, B, H = x.shape[2], hs.shape[1], hs.shape[2]
    _project_inputs(d_x, d_w, d_gates)
    _launch_sweep(_lstm_forward_sweep_kernel(x.dtype), B * H,
                  d_w[F:F + H], d_len, d_hs, d_cs, d_gates)
    edges.finish()


def lstm_inference_sweep(x, w_cat, lengths, h, c, out=None, column=0, reverse=False):
    """Forward only, batch-first (arguments as the CPU version: x (B, T, F),
    h, c (B, H) in and out, out (B, T, W) or None, written in columns
    ``[column, column + H)``, zero past a row's length; ``reverse`` reads each
    row from its end)."""
    edges = Edges()
    d_x, d_w, d_len = edges.input(x), edges.input(w_cat), edges.input(lengths)
    d_h, d_c = edges.output(h, read=True), edges.output(c, read=True)
    B, T, F = x.shape
    H = h.shape[1]
    d_out = cuda.device_array((0, 0, 0), x.dtype) if out is None else edges.output(out, read=True)
    x_proj = cuda.device_array((B, T, 4 * H), x.dtype)  # (B, T, 4H)
    _project_inputs(d_x, d_w, x_proj)
    h_buf = cuda.device_array((2, B, H), x.dtype)  # (2, B, H)
    _launch_sweep(_lstm_inference_sweep_kernel(x.dtype), B * H,
                  x_proj, d_w[F:F + H], d_len, bool(reverse), d_h, d_c, h_buf, d_out, column)
    edges.finish()


def lstm_backward_sweep(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_pre, d_h0, d_c0):
    """Backpropagate one LSTM direction through time (arguments as the CPU
    version: d_hs (T, B, H) or None, d_h_n/d_c_n (B, H), w_hh (4H, H),
    cs (T + 1, B, H), gates/d_pre (T, B, 4H), d_h0/d_c0 (B, H))."""
    T, (B, H) = gates.shape[0], d_h_n.shape
    edges = Edges()
    d_out = edges.input_or_zeros(d_hs, (T, B, H), d_h_n.dtype)
    d_w, d_len = edges.input(w_hh), edges.input(lengths)
    d_cs, d_gates = edges.input(cs), edges.input(gates)
    d_pre_dev, d_h0_dev, d_c0_dev = edges.output(d_pre), edges.output(d_h0), edges.output(d_c0)
    d_h0_dev.copy_to_device(edges.input(d_h_n))  # dh: gradient flowing into h_t
    d_c0_dev.copy_to_device(edges.input(d_c_n))  # dc: gradient flowing into c_t
    _launch_sweep(_lstm_backward_sweep_kernel(d_out.dtype), B * H,
                  d_out, d_w, d_len, d_cs, d_gates, d_pre_dev, d_h0_dev, d_c0_dev)
    edges.finish()


def lstm_backward(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, inputs, hs, d_pre, d_h0, d_c0):
    """`lstm_backward_sweep`, then `weight_grads` (the CPU version's contract:
    inputs (T, B, F), hs (T + 1, B, H), d_pre (T, B, 4H) or None for not
    wanted; returns d_w_ih, d_w_hh, d_b). On the GPU the two stay apart: the
    CPU version joins them to multiply while its core's cache holds the rows."""
    T, B, F = inputs.shape
    H, GH = d_h_n.shape[1], gates.shape[2]
    if d_pre is None:
        d_pre = (cuda.device_array(gates.shape, gates.dtype) if on_device(gates)
                 else np.empty(gates.shape, gates.dtype))
    lstm_backward_sweep(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_pre, d_h0, d_c0)
    return weight_grads(d_pre.reshape(T * B, GH), inputs.reshape(T * B, F),
                        hs[:-1].reshape(T * B, H))


# --------------------------------------------------------------------------
# Plain tanh RNN cell: h_t = tanh(x_proj_t + h_{t-1} @ W_hh^T)
# --------------------------------------------------------------------------
@cuda.jit
def _rnn_forward_sweep_kernel(x_proj, w_hh_t, lengths, hs):
    # x_proj: (T, B, H); w_hh_t: (H, H) = W_hh^T; hs: (T + 1, B, H), [0] the initial state
    grid = cuda.cg.this_grid()
    T, B, H = x_proj.shape[0], hs.shape[1], hs.shape[2]
    first, stride = cuda.grid(1), cuda.gridsize(1)
    for t in range(T):
        for item in range(first, B * H, stride):
            b, j = item // H, item % H
            if t < lengths[b]:
                z = x_proj[t, b, j]
                for k in range(H):
                    z += hs[t, b, k] * w_hh_t[k, j]
                hs[t + 1, b, j] = math.tanh(z)
            else:
                hs[t + 1, b, j] = hs[t, b, j]
        grid.sync()


@per_dtype
def _rnn_backward_sweep_kernel(scalar):
    """Backward of every step of one tanh-RNN direction, last step first."""
    one, zero = scalar(1), scalar(0)

    @cuda.jit
    def kernel(d_hs, w_hh, lengths, hs, d_pre, dh):
        # d_hs, d_pre: (T, B, H); w_hh: (H, H); hs: (T + 1, B, H); dh: (B, H), the
        # gradient flowing into h_t: d_h_n on entry, w.r.t. the initial state on exit
        grid = cuda.cg.this_grid()
        T, B, H = d_pre.shape[0], dh.shape[0], dh.shape[1]
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for t in range(T - 1, -1, -1):
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                n = lengths[b]
                if t + 1 < T and t + 1 < n:  # step t + 1's gradient into h_t
                    acc = zero
                    for m in range(H):
                        acc += d_pre[t + 1, b, m] * w_hh[m, j]
                    dh[b, j] = acc
                if t < n:
                    y = hs[t + 1, b, j]
                    d_pre[t, b, j] = (dh[b, j] + d_hs[t, b, j]) * (one - y * y)
                else:
                    d_pre[t, b, j] = 0
            grid.sync()
        for item in range(first, B * H, stride):
            b, j = item // H, item % H
            if 0 < lengths[b]:
                acc = zero
                for m in range(H):
                    acc += d_pre[0, b, m] * w_hh[m, j]
                dh[b, j] = acc

    return kernel


def rnn_forward_sweep(x, w_cat, lengths, hs):
    """Run one tanh-RNN direction (x (T, B, F), w_cat (F + H + 1, H) =
    [W_ih^T; W_hh^T; b], hs (T + 1, B, H))."""
    edges = Edges()
    d_x, d_w, d_len = edges.input(x), edges.input(w_cat), edges.input(lengths)
    d_hs = edges.output(hs, read=True)  # hs[0]: initial state
    T, F, B, H = x.shape[0], x.shape[2], hs.shape[1], hs.shape[2]
    x_proj = cuda.device_array((T, B, H), x.dtype)  # (T, B, H)
    _project_inputs(d_x, d_w, x_proj)
    _launch_sweep(_rnn_forward_sweep_kernel, B * H, x_proj, d_w[F:F + H], d_len, d_hs)
    edges.finish()


def rnn_backward_sweep(d_hs, d_h_n, w_hh, lengths, hs, d_pre, d_h0):
    """Backpropagate one tanh-RNN direction (d_hs (T, B, H) or None, d_h_n (B, H),
    w_hh (H, H), hs (T + 1, B, H), d_pre (T, B, H), d_h0 (B, H))."""
    T, (B, H) = d_pre.shape[0], d_h_n.shape
    edges = Edges()
    d_out = edges.input_or_zeros(d_hs, (T, B, H), d_h_n.dtype)
    d_w, d_len, d_hist = edges.input(w_hh), edges.input(lengths), edges.input(hs)
    d_pre_dev, d_h0_dev = edges.output(d_pre), edges.output(d_h0)
    d_h0_dev.copy_to_device(edges.input(d_h_n))  # dh: gradient flowing into h_t
    _launch_sweep(_rnn_backward_sweep_kernel(d_out.dtype), B * H,
                  d_out, d_w, d_len, d_hist, d_pre_dev, d_h0_dev)
    edges.finish()


# --------------------------------------------------------------------------
# GRU cell (torch.nn.GRU), gates r, z, n. One (F+H+1, 4H) stack of the weights,
# columns [r | z | x-part of n | h-part of n], projects the inputs of all steps in one
# GEMM and gives the sweep its recurrent columns; `gates` holds what the CPU's holds.
# --------------------------------------------------------------------------
@per_dtype
def _gru_stack_kernel(scalar):
    """The (F + H + 1, 4H) stack ``[x; h; 1]`` x ``[r | z | x-part of n | h-part of n]``,
    zero where a part does not apply, one thread per element."""
    zero = scalar(0)

    @cuda.jit
    def kernel(w_ih, w_hh, b_ih, b_hh, out):
        i = cuda.grid(1)
        F, H = w_ih.shape[1], w_hh.shape[1]
        if i < out.shape[0] * out.shape[1]:
            row, col = i // (4 * H), i % (4 * H)
            value = zero
            if row < F:
                if col < 3 * H:
                    value = w_ih[col, row]
            elif row < F + H:
                k = row - F
                if col < 2 * H:
                    value = w_hh[col, k]
                elif col >= 3 * H:
                    value = w_hh[col - H, k]
            elif col < 2 * H:
                value = b_ih[col] + b_hh[col]
            elif col < 3 * H:
                value = b_ih[col]
            else:
                value = b_hh[col - H]
            out[row, col] = value

    return kernel


@per_dtype
def _gru_recurrent_kernel(scalar):
    """(4H, H) ``[W_hr; W_hz; 0; W_hn]``: the h-rows of the stack, transposed, one
    thread per element."""
    zero = scalar(0)

    @cuda.jit
    def kernel(w_hh, out):
        i = cuda.grid(1)
        H = w_hh.shape[1]
        if i < out.shape[0] * H:
            row, col = i // H, i % H
            value = zero
            if row < 2 * H:
                value = w_hh[row, col]
            elif row >= 3 * H:
                value = w_hh[row - H, col]
            out[row, col] = value

    return kernel


def _gru_stack(w_ih, w_hh, b_ih, b_hh):
    F, H = w_ih.shape[1], w_hh.shape[1]
    out = cuda.device_array((F + H + 1, 4 * H), w_ih.dtype)
    _gru_stack_kernel(out.dtype)[blocks_for(out.size), ELEMENTWISE](w_ih, w_hh, b_ih, b_hh, out)
    return out


def _gru_recurrent(w_hh):
    H = w_hh.shape[1]
    out = cuda.device_array((4 * H, H), w_hh.dtype)
    _gru_recurrent_kernel(out.dtype)[blocks_for(out.size), ELEMENTWISE](w_hh, out)
    return out


@per_dtype
def _gru_forward_sweep_kernel(scalar):
    """Every step of one GRU direction: recurrent products, gates, state update,
    length mask."""
    half = scalar(0.5)

    @cuda.jit
    def kernel(w_rec_t, lengths, hs, gates):
        # w_rec_t: (H, 4H) the h-rows of the stack; hs: (T + 1, B, H), [0] the initial
        # state; gates: (T, B, 4H): the x-part and biases on entry, r, z, n and
        # W_hn h + b_hn on exit
        grid = cuda.cg.this_grid()
        T, B, H = gates.shape[0], hs.shape[1], hs.shape[2]
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for t in range(T):
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                if t < lengths[b]:
                    zr, zz = gates[t, b, j], gates[t, b, H + j]
                    xn, hn = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                    for k in range(H):  # h_{t-1}[b] @ the h-rows, three columns of unit j
                        hk = hs[t, b, k]
                        zr += hk * w_rec_t[k, j]
                        zz += hk * w_rec_t[k, H + j]
                        hn += hk * w_rec_t[k, 3 * H + j]
                    reset = half * math.tanh(half * zr) + half
                    update = half * math.tanh(half * zz) + half
                    n = math.tanh(xn + reset * hn)
                    hs[t + 1, b, j] = n + update * (hs[t, b, j] - n)
                    gates[t, b, j] = reset
                    gates[t, b, H + j] = update
                    gates[t, b, 2 * H + j] = n
                    gates[t, b, 3 * H + j] = hn
                else:  # past this row's end: carry the state
                    hs[t + 1, b, j] = hs[t, b, j]
                    for g in range(4):
                        gates[t, b, g * H + j] = 0
            grid.sync()  # step t's states are complete before step t + 1 reads them

    return kernel


@per_dtype
def _gru_inference_sweep_kernel(scalar):
    """Every step of one GRU direction, forward only, batch-first: the state
    alternates between two buffers, and the output is written at the step read."""
    half = scalar(0.5)

    @cuda.jit
    def kernel(x_proj, w_rec_t, lengths, reverse, h, h_buf, out, column):
        # x_proj: (B, T, 4H); w_rec_t: (H, 4H); h: (B, H) read and written;
        # h_buf: (2, B, H) scratch; out: (B, T, W) or (0, 0, 0): not kept
        grid = cuda.cg.this_grid()
        B, T, H = x_proj.shape[0], x_proj.shape[1], h.shape[1]
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for item in range(first, B * H, stride):
            h_buf[0, item // H, item % H] = h[item // H, item % H]
        grid.sync()
        for t in range(T):
            now, nxt = t % 2, (t + 1) % 2
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                n_steps = lengths[b]
                if t < n_steps:
                    s = n_steps - 1 - t if reverse else t  # the step this row reads
                    zr, zz = x_proj[b, s, j], x_proj[b, s, H + j]
                    xn, hn = x_proj[b, s, 2 * H + j], x_proj[b, s, 3 * H + j]
                    for k in range(H):
                        hk = h_buf[now, b, k]
                        zr += hk * w_rec_t[k, j]
                        zz += hk * w_rec_t[k, H + j]
                        hn += hk * w_rec_t[k, 3 * H + j]
                    reset = half * math.tanh(half * zr) + half
                    update = half * math.tanh(half * zz) + half
                    n = math.tanh(xn + reset * hn)
                    h_new = n + update * (h_buf[now, b, j] - n)
                    h_buf[nxt, b, j] = h_new
                    if out.shape[0] > 0:
                        out[b, s, column + j] = h_new
                else:
                    h_buf[nxt, b, j] = h_buf[now, b, j]
                    if out.shape[0] > 0:
                        out[b, t, column + j] = 0
            grid.sync()
        for item in range(first, B * H, stride):
            h[item // H, item % H] = h_buf[T % 2, item // H, item % H]

    return kernel


@per_dtype
def _gru_backward_sweep_kernel(scalar):
    """Backward of every step of one GRU direction, last step first."""
    one, zero = scalar(1), scalar(0)

    @cuda.jit
    def kernel(d_hs, w_rec, lengths, hs, gates, d4, d_pre, dh, direct):
        # d_hs: (T, B, H); w_rec: (4H, H) [W_hr; W_hz; 0; W_hn]; hs: (T + 1, B, H);
        # gates, d4: (T, B, 4H); d_pre: (T, B, 3H), or (0, B, 3H): not wanted;
        # dh: (B, H), d_h_n on entry, the gradient w.r.t. the initial state on exit;
        # direct: (B, H) scratch, dh * z of the step after
        grid = cuda.cg.this_grid()
        T, B, H = gates.shape[0], dh.shape[0], dh.shape[1]
        keep = d_pre.shape[0] > 0
        first, stride = cuda.grid(1), cuda.gridsize(1)
        for t in range(T - 1, -1, -1):
            for item in range(first, B * H, stride):
                b, j = item // H, item % H
                n_steps = lengths[b]
                if t + 1 < T and t + 1 < n_steps:  # step t + 1's gradient into h_t
                    acc = zero
                    for m in range(4 * H):
                        acc += d4[t + 1, b, m] * w_rec[m, j]
                    dh[b, j] = acc + direct[b, j]
                if t < n_steps:
                    reset, update = gates[t, b, j], gates[t, b, H + j]
                    n, hn = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                    dh_total = dh[b, j] + d_hs[t, b, j]
                    dn = (dh_total - dh_total * update) * (one - n * n)
                    dr = dn * hn * reset * (one - reset)
                    dz = dh_total * (hs[t, b, j] - n) * update * (one - update)
                    d4[t, b, j] = dr
                    d4[t, b, H + j] = dz
                    d4[t, b, 2 * H + j] = dn
                    d4[t, b, 3 * H + j] = dn * reset
                    direct[b, j] = dh_total * update
                    if keep:
                        d_pre[t, b, j] = dr
                        d_pre[t, b, H + j] = dz
                        d_pre[t, b, 2 * H + j] = dn
                else:  # past this row's end: the gradient passes through
                    for g in range(4):
                        d4[t, b, g * H + j] = 0
                    if keep:
                        for g in range(3):
                            d_pre[t, b, g * H + j] = 0
            grid.sync()  # step t's d4 is complete before step t - 1 reads it
        for item in range(first, B * H, stride):
            b, j = item // H, item % H
            if 0 < lengths[b]:  # step 0's gradient into the initial state
                acc = zero
                for m in range(4 * H):
                    acc += d4[0, b, m] * w_rec[m, j]
                dh[b, j] = acc + direct[b, j]

    return kernel


def gru_forward_sweep(x, w_ih, w_hh, b_ih, b_hh, lengths, hs, gates):
    """Run one GRU direction over all timesteps (arguments as the CPU version:
    x (T, B, F), torch.nn.GRU's weights and biases, hs (T + 1, B, H),
    gates (T, B, 4H))."""
    edges = Edges()
    d_x, d_len = edges.input(x), edges.input(lengths)
    d_w = _gru_stack(edges.input(w_ih), edges.input(w_hh), edges.input(b_ih), edges.input(b_hh))
    d_hs = edges.output(hs, read=True)  # hs[0]: initial state
    d_gates = edges.output(gates)
    F, B, H = x.shape[2], hs.shape[1], hs.shape[2]
    _project_inputs(d_x, d_w, d_gates)  # the x-part of every column and the bias row
    _launch_sweep(_gru_forward_sweep_kernel(x.dtype), B * H, d_w[F:F + H], d_len, d_hs, d_gates)
    edges.finish()


def gru_inference_sweep(x, w_ih, w_hh, b_ih, b_hh, lengths, h, out=None, column=0,
                        reverse=False):
    """Forward only, batch-first (arguments as the CPU version: x (B, T, F),
    h (B, H) in and out, out (B, T, W) or None, written in columns
    ``[column, column + H)``; ``reverse`` reads each row from its end)."""
    edges = Edges()
    d_x, d_len = edges.input(x), edges.input(lengths)
    d_w = _gru_stack(edges.input(w_ih), edges.input(w_hh), edges.input(b_ih), edges.input(b_hh))
    d_h = edges.output(h, read=True)
    B, T, F = x.shape
    H = h.shape[1]
    d_out = cuda.device_array((0, 0, 0), x.dtype) if out is None else edges.output(out, read=True)
    x_proj = cuda.device_array((B, T, 4 * H), x.dtype)  # (B, T, 4H)
    _project_inputs(d_x, d_w, x_proj)
    h_buf = cuda.device_array((2, B, H), x.dtype)  # (2, B, H)
    _launch_sweep(_gru_inference_sweep_kernel(x.dtype), B * H,
                  x_proj, d_w[F:F + H], d_len, bool(reverse), d_h, h_buf, d_out, column)
    edges.finish()


def gru_backward(d_hs, d_h_n, w_hh, lengths, hs, gates, inputs, d_pre, d_h0):
    """Backpropagate one GRU direction through time, with its weight gradients
    (the CPU version's contract: d_pre (T, B, 3H) or None for not wanted;
    returns d_w_ih, d_w_hh, d_b_ih, d_b_hh, of the kind given: NumPy for NumPy
    input, device arrays for device input)."""
    on_host = not on_device(gates)
    T, B, F = inputs.shape
    H, dtype = d_h_n.shape[1], d_h_n.dtype
    edges = Edges()
    d_out = edges.input_or_zeros(d_hs, (T, B, H), dtype)
    w_rec, d_len = _gru_recurrent(edges.input(w_hh)), edges.input(lengths)
    d_hist, d_gates, d_inputs = edges.input(hs), edges.input(gates), edges.input(inputs)
    d4 = cuda.device_array((T, B, 4 * H), dtype)  # (T, B, 4H)
    d_pre_dev = (cuda.device_array((0, B, 3 * H), dtype) if d_pre is None
                 else edges.output(d_pre))
    d_h0_dev = edges.output(d_h0)
    d_h0_dev.copy_to_device(edges.input(d_h_n))  # dh: gradient flowing into h_t
    direct = cuda.device_array((B, H), dtype)
    _launch_sweep(_gru_backward_sweep_kernel(dtype), B * H, d_out, w_rec, d_len, d_hist,
                  d_gates, d4, d_pre_dev, d_h0_dev, direct)
    rows = d4.reshape(T * B, 4 * H)
    d_w4x = cuda.device_array((4 * H, F), dtype)  # (4H, F)
    d_w4h = cuda.device_array((4 * H, H), dtype)  # (4H, H)
    d_b4 = cuda.device_array(4 * H, dtype)  # (4H,)
    gemm(rows, d_inputs.reshape(T * B, F), d_w4x, transpose_a=True)
    gemm(rows, d_hist[:-1].reshape(T * B, H), d_w4h, transpose_a=True)
    column_sums_kernel(dtype)[blocks_for(4 * H), ELEMENTWISE](rows, d_b4)
    d_w_hh = cuda.device_array((3 * H, H), dtype)
    d_w_hh[:2 * H].copy_to_device(d_w4h[:2 * H])
    d_w_hh[2 * H:].copy_to_device(d_w4h[3 * H:])
    d_b_hh = cuda.device_array(3 * H, dtype)
    d_b_hh[:2 * H].copy_to_device(d_b4[:2 * H])
    d_b_hh[2 * H:].copy_to_device(d_b4[3 * H:])
    result = (d_w4x[:3 * H], d_w_hh, d_b4[:3 * H], d_b_hh)
    edges.finish()
    if on_host:
        return tuple(a.copy_to_host() for a in result)
    return result
