"""numba.cuda kernels with the contract of `nlstm.kernels.cpu`.

Same function names and signatures as the CPU module (stumpy's layout), so the
layer can pick either module. Every function takes NumPy arrays (copied to the
GPU and results copied back into them) or numba device arrays (left on the
GPU, no copies). The GPU runs the whole batch as one grid.

Per timestep, a sweep launches two kernels: the recurrent product
``h_{t-1} @ W_hh^T`` as a shared-memory tiled GEMM (`_matmul_kernel`) and one
fused element-wise kernel for the gates, the cell update and the length mask.
The state, the weights and every saved activation stay on the device for the
whole sweep. Masking follows PyTorch's packed sequences, as on the CPU.

Importing this module needs ``numba.cuda`` (the ``numba-cuda`` package, or the
CUDA simulator: ``NUMBA_ENABLE_CUDASIM=1``); ``import nlstm`` never imports it.
"""
import math

import numpy as np
from numba import config, cuda, from_dtype

# The simulator runs every GPU thread as a Python thread: smaller blocks there
# keep the CI checks quick (and make the GEMM loop over several tiles).
TILE = 4 if config.ENABLE_CUDASIM else 16          # edge of the GEMM's square tiles
ELEMENTWISE = 32 if config.ENABLE_CUDASIM else 128  # threads per element-wise block


def _per_dtype(factory):
    """Build ``factory(scalar)``'s kernel once per dtype, where ``scalar`` is
    the NumPy scalar type (``np.float32``, ``np.float64``). Kernels make their
    constants with it, so that float32 kernels do float32 arithmetic only (a
    bare ``1.0`` is a float64 literal, which turns the whole expression into
    float64 arithmetic on the GPU)."""
    built = {}

    def kernel_for(dtype):
        dtype = np.dtype(dtype)
        if dtype not in built:
            built[dtype] = factory(dtype.type)
        return built[dtype]

    kernel_for.__doc__ = factory.__doc__
    return kernel_for


# --------------------------------------------------------------------------
# Tiled GEMM: out = op(a) @ b (+ bias)
# --------------------------------------------------------------------------
@_per_dtype
def _matmul_kernel(scalar):
    """The tiled GEMM kernel ``out = op(a) @ b (+ bias)``."""
    numba_type = from_dtype(np.dtype(scalar))

    @cuda.jit
    def kernel(a, b, bias, out, transpose_a, add_bias):
        # a: (N, K), or (K, N) read as its transpose; b: (K, M); out: (N, M)
        a_tile = cuda.shared.array((TILE, TILE), numba_type)
        b_tile = cuda.shared.array((TILE, TILE), numba_type)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        n_rows, n_cols = out.shape[0], out.shape[1]
        depth = b.shape[0]
        acc = numba_type(0.0)
        for k0 in range(0, depth, TILE):
            ka, kb = k0 + tx, k0 + ty
            if row < n_rows and ka < depth:
                a_tile[ty, tx] = a[ka, row] if transpose_a else a[row, ka]
            else:
                a_tile[ty, tx] = 0.0
            if col < n_cols and kb < depth:
                b_tile[ty, tx] = b[kb, col]
            else:
                b_tile[ty, tx] = 0.0
            cuda.syncthreads()
            for k in range(TILE):
                acc += a_tile[ty, k] * b_tile[k, tx]
            cuda.syncthreads()
        if row < n_rows and col < n_cols:
            if add_bias:
                acc += bias[col]
            out[row, col] = acc

    return kernel


def _gemm(a, b, out, bias=None, transpose_a=False):
    """``out[:] = op(a) @ b (+ bias)`` on device arrays."""
    n_rows, n_cols = out.shape
    grid = ((n_cols + TILE - 1) // TILE, (n_rows + TILE - 1) // TILE)
    bias_arg = bias if bias is not None else out[0]  # unread when there is no bias
    _matmul_kernel(out.dtype)[grid, (TILE, TILE)](
        a, b, bias_arg, out, transpose_a, bias is not None)


def _on_device(array):
    """True for numba device arrays (real or simulated), False for NumPy arrays."""
    return hasattr(array, "copy_to_host")


def _to_device(array):
    """``array`` on the GPU (a device array is returned as it is)."""
    return array if _on_device(array) else cuda.to_device(np.ascontiguousarray(array))


def _blocks(n):
    return (n + ELEMENTWISE - 1) // ELEMENTWISE


# --------------------------------------------------------------------------
# Host/device edges
# --------------------------------------------------------------------------
class _Edges:
    """Copies NumPy arguments to the device once and results back at the end."""

    def __init__(self):
        self._copy_back = []

    def input(self, array):
        return _to_device(array)

    def input_or_zeros(self, array, shape, dtype):
        """`input`, or for None device zeros of ``shape`` (the CPU kernels'
        "no output gradient")."""
        if array is None:
            from .cuda_arrays import zeros  # a module that imports this one
            return zeros(shape, dtype)
        return self.input(array)

    def output(self, array, read=False):
        """A device array for ``array``; a host array is copied back by `finish`.
        Its contents are copied in only if the kernels ``read`` them too."""
        if _on_device(array):
            return array
        device = cuda.to_device(array) if read else cuda.device_array(array.shape, array.dtype)
        self._copy_back.append((device, array))
        return device

    def finish(self):
        for device, host in self._copy_back:
            host[...] = device.copy_to_host()


# --------------------------------------------------------------------------
# Hoisted products
# --------------------------------------------------------------------------
def _project_inputs(x, w_cat, x_proj):
    """``x_proj[:] = x @ W_ih^T + b`` for all steps at once, on device arrays.
    x: (T, B, F) or (B, T, F), w_cat: (F + H + 1, GH) = ``[W_ih^T; W_hh^T; b]``,
    x_proj: (T, B, GH) or (B, T, GH), the same leading axes as x."""
    n0, n1, F = x.shape
    _gemm(x.reshape(n0 * n1, F), w_cat[:F], x_proj.reshape(n0 * n1, x_proj.shape[2]),
          bias=w_cat[w_cat.shape[0] - 1])


def matmul_rows(a, b, out):
    """``out[:] = a @ b``: a (N, K), b (K, M), out (N, M)."""
    edges = _Edges()
    d_out = edges.output(out)
    _gemm(edges.input(a), edges.input(b), d_out)
    edges.finish()
    return out


@_per_dtype
def _column_sums_kernel(scalar):
    """Column sums, one thread per column, rows in order."""
    zero = scalar(0)

    @cuda.jit
    def kernel(x, out):
        # x: (N, M), out: (M,)
        m = cuda.grid(1)
        if m < out.shape[0]:
            acc = zero
            for r in range(x.shape[0]):
                acc += x[r, m]
            out[m] = acc

    return kernel


def weight_grads(d_pre, inputs, h_prev):
    """Gradients of ``W_ih``, ``W_hh`` and the bias (shapes as the CPU version).

    Returns arrays of the kind given: NumPy for NumPy input, device arrays for
    device input.
    """
    on_host = not _on_device(d_pre)
    edges = _Edges()
    d_pre, inputs, h_prev = edges.input(d_pre), edges.input(inputs), edges.input(h_prev)
    gh, dtype = d_pre.shape[1], d_pre.dtype
    d_w_ih = cuda.device_array((gh, inputs.shape[1]), dtype)  # (GH, K)
    d_w_hh = cuda.device_array((gh, h_prev.shape[1]), dtype)  # (GH, H)
    d_b = cuda.device_array(gh, dtype)                        # (GH,)
    _gemm(d_pre, inputs, d_w_ih, transpose_a=True)            # d_pre^T @ inputs
    _gemm(d_pre, h_prev, d_w_hh, transpose_a=True)            # d_pre^T @ h_prev
    _column_sums_kernel(dtype)[_blocks(gh), ELEMENTWISE](d_pre, d_b)
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
    edges = _Edges()
    d_out = edges.output(out)
    T, B = x.shape[0], x.shape[1]
    _reverse_within_lengths_kernel[_blocks(T * B), ELEMENTWISE](
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
    edges = _Edges()
    d_x = edges.output(x, read=True)  # zeroed in place
    T, B = x.shape[0], x.shape[1]
    _zero_after_lengths_kernel[_blocks(T * B), ELEMENTWISE](d_x, edges.input(lengths))
    edges.finish()
    return x


# --------------------------------------------------------------------------
# LSTM cell, gate order i, f, g, o: forward and backward step kernels
# --------------------------------------------------------------------------
@_per_dtype
def _lstm_step_forward_kernel(scalar):
    """One LSTM step for every (b, j): gates, cell update, length mask.
    ``gates`` keeps what the CPU sweep keeps: ``tanh(x_i / 2)``,
    ``tanh(x_f / 2)``, ``tanh(x_g)``, ``tanh(x_o / 2)``."""
    half = scalar(0.5)

    @cuda.jit
    def kernel(t, z, x_proj, lengths, h_prev, c_prev, h_next, c_next, gates):
        # z: (B, 4H) recurrent part of the pre-activations; x_proj, gates: (T, B, 4H)
        # h_prev, c_prev, h_next, c_next: (B, H); one thread per (b, j)
        i = cuda.grid(1)
        B, H = h_prev.shape[0], h_prev.shape[1]
        if i < B * H:
            b, j = i // H, i % H
            if t < lengths[b]:
                # sigmoid(x) = (1 + tanh(x / 2)) / 2, as the CPU kernels, written out:
                # kernels here call no device functions, so compile_ptx needs no
                # driver to resolve them
                ti = math.tanh(half * (z[b, j] + x_proj[t, b, j]))
                tf = math.tanh(half * (z[b, H + j] + x_proj[t, b, H + j]))
                gg = math.tanh(z[b, 2 * H + j] + x_proj[t, b, 2 * H + j])
                to = math.tanh(half * (z[b, 3 * H + j] + x_proj[t, b, 3 * H + j]))
                ig, fg, og = half * ti + half, half * tf + half, half * to + half
                c = fg * c_prev[b, j] + ig * gg
                c_next[b, j] = c
                h_next[b, j] = og * math.tanh(c)
                gates[t, b, j] = ti
                gates[t, b, H + j] = tf
                gates[t, b, 2 * H + j] = gg
                gates[t, b, 3 * H + j] = to
            else:  # past this row's end: carry the state
                c_next[b, j] = c_prev[b, j]
                h_next[b, j] = h_prev[b, j]
                for k in range(4):
                    gates[t, b, k * H + j] = 0

    return kernel


@_per_dtype
def _lstm_inference_step_kernel(scalar):
    """One LSTM step of the inference sweep for every (b, j), batch-first: the
    state is updated in place and the output written at the step read."""
    half = scalar(0.5)

    @cuda.jit
    def kernel(t, z, x_proj, lengths, reverse, h, c, out, column):
        # z: (B, 4H) recurrent part of the pre-activations; x_proj: (B, T, 4H)
        # h, c: (B, H) read and written; out: (B, T, W) or (0, 0, 0): not kept
        i = cuda.grid(1)
        B, H = h.shape[0], h.shape[1]
        if i < B * H:
            b, j = i // H, i % H
            n = lengths[b]
            if t < n:
                s = n - 1 - t if reverse else t  # the step this row reads
                # the gate lines of _lstm_step_forward_kernel again: a shared device
                # function (cuda.jit(device=True) or register_jitable) makes
                # compile_ptx ask the CUDA driver for a device (numba 0.68)
                ti = math.tanh(half * (z[b, j] + x_proj[b, s, j]))
                tf = math.tanh(half * (z[b, H + j] + x_proj[b, s, H + j]))
                gg = math.tanh(z[b, 2 * H + j] + x_proj[b, s, 2 * H + j])
                to = math.tanh(half * (z[b, 3 * H + j] + x_proj[b, s, 3 * H + j]))
                ig, fg, og = half * ti + half, half * tf + half, half * to + half
                c_new = fg * c[b, j] + ig * gg
                h_new = og * math.tanh(c_new)
                c[b, j] = c_new
                h[b, j] = h_new
                if out.shape[0] > 0:
                    out[b, s, column + j] = h_new
            elif out.shape[0] > 0:
                out[b, t, column + j] = 0

    return kernel


@_per_dtype
def _lstm_step_backward_kernel(scalar):
    """Backward of one LSTM step for every (b, j)."""
    one, half = scalar(1), scalar(0.5)

    @cuda.jit
    def kernel(t, d_hs, dh, dc, lengths, cs, gates, d_pre):
        # d_hs: (T, B, H); dh, dc: (B, H) gradients flowing into h_t and c_t (dc is
        # updated to flow into c_{t-1}); cs: (T + 1, B, H); gates, d_pre: (T, B, 4H)
        i = cuda.grid(1)
        B, H = dh.shape[0], dh.shape[1]
        if i < B * H:
            b, j = i // H, i % H
            if t < lengths[b]:
                # the gates from the forward's tanh values (see the forward kernel)
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
            else:
                for k in range(4):
                    d_pre[t, b, k * H + j] = 0

    return kernel


@cuda.jit
def _take_recurrent_grad_kernel(t, dh_rec, lengths, dh):
    # dh[b] = dh_rec[b] where step t is valid for row b; (B, H) each
    i = cuda.grid(1)
    B, H = dh.shape[0], dh.shape[1]
    if i < B * H:
        b, j = i // H, i % H
        if t < lengths[b]:
            dh[b, j] = dh_rec[b, j]


def lstm_forward_sweep(x, w_cat, lengths, hs, cs, gates):
    """Run one LSTM direction over all timesteps (arguments as the CPU version:
    x (T, B, F), w_cat (F + H + 1, 4H) = [W_ih^T; W_hh^T; b],
    hs/cs (T + 1, B, H), gates (T, B, 4H)).

    The input projection of all steps is one GEMM into ``gates``, which each
    step kernel reads before overwriting it with that step's gates."""
    edges = _Edges()
    d_x, d_w, d_len = edges.input(x), edges.input(w_cat), edges.input(lengths)
    d_hs, d_cs = edges.output(hs, read=True), edges.output(cs, read=True)  # [0]: initial state
    d_gates = edges.output(gates)
    T, F, B, H = x.shape[0], x.shape[2], hs.shape[1], hs.shape[2]
    _project_inputs(d_x, d_w, d_gates)
    w_hh_t = d_w[F:F + H]  # (H, 4H)
    z = cuda.device_array((B, 4 * H), x.dtype)  # (B, 4H)
    for t in range(T):
        _gemm(d_hs[t], w_hh_t, z)
        _lstm_step_forward_kernel(x.dtype)[_blocks(B * H), ELEMENTWISE](
            t, z, d_gates, d_len, d_hs[t], d_cs[t], d_hs[t + 1], d_cs[t + 1], d_gates)
    edges.finish()


def lstm_inference_sweep(x, w_cat, lengths, h, c, out=None, column=0, reverse=False):
    """Forward only, batch-first (arguments as the CPU version: x (B, T, F),
    h, c (B, H) in and out, out (B, T, W) or None, written in columns
    ``[column, column + H)``, zero past a row's length; ``reverse`` reads each
    row from its end)."""
    edges = _Edges()
    d_x, d_w, d_len = edges.input(x), edges.input(w_cat), edges.input(lengths)
    d_h, d_c = edges.output(h, read=True), edges.output(c, read=True)
    B, T = x.shape[0], x.shape[1]
    H = h.shape[1]
    d_out = cuda.device_array((0, 0, 0), x.dtype) if out is None else edges.output(out, read=True)
    x_proj = cuda.device_array((B, T, 4 * H), x.dtype)  # (B, T, 4H)
    _project_inputs(d_x, d_w, x_proj)
    w_hh_t = d_w[x.shape[2]:x.shape[2] + H]  # (H, 4H)
    z = cuda.device_array((B, 4 * H), x.dtype)  # (B, 4H)
    for t in range(T):
        _gemm(d_h, w_hh_t, z)  # reads all of h before the step kernel overwrites it
        # state updated in place: each thread reads and writes only its own (b, j)
        _lstm_inference_step_kernel(x.dtype)[_blocks(B * H), ELEMENTWISE](
            t, z, x_proj, d_len, bool(reverse), d_h, d_c, d_out, column)
    edges.finish()


def lstm_backward_sweep(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_pre, d_h0, d_c0):
    """Backpropagate one LSTM direction through time (arguments as the CPU
    version: d_hs (T, B, H) or None, d_h_n/d_c_n (B, H), w_hh (4H, H),
    cs (T + 1, B, H), gates/d_pre (T, B, 4H), d_h0/d_c0 (B, H))."""
    T, (B, H) = gates.shape[0], d_h_n.shape
    edges = _Edges()
    d_out = edges.input_or_zeros(d_hs, (T, B, H), d_h_n.dtype)
    d_w, d_len = edges.input(w_hh), edges.input(lengths)
    d_cs, d_gates = edges.input(cs), edges.input(gates)
    d_pre_dev, d_h0_dev, d_c0_dev = edges.output(d_pre), edges.output(d_h0), edges.output(d_c0)
    d_h0_dev.copy_to_device(edges.input(d_h_n))  # dh: gradient flowing into h_t
    d_c0_dev.copy_to_device(edges.input(d_c_n))  # dc: gradient flowing into c_t
    dh_rec = cuda.device_array((B, H), d_out.dtype)
    for t in range(T - 1, -1, -1):
        _lstm_step_backward_kernel(d_out.dtype)[_blocks(B * H), ELEMENTWISE](
            t, d_out, d_h0_dev, d_c0_dev, d_len, d_cs, d_gates, d_pre_dev)
        _gemm(d_pre_dev[t], d_w, dh_rec)  # (B, 4H) @ (4H, H)
        _take_recurrent_grad_kernel[_blocks(B * H), ELEMENTWISE](t, dh_rec, d_len, d_h0_dev)
    edges.finish()


def lstm_backward(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, inputs, hs, d_pre, d_h0, d_c0):
    """`lstm_backward_sweep`, then `weight_grads` (the CPU version's contract:
    inputs (T, B, F), hs (T + 1, B, H), d_pre (T, B, 4H) or None for not
    wanted; returns d_w_ih, d_w_hh, d_b). On the GPU the two stay apart: the
    CPU version joins them to multiply while its core's cache holds the rows."""
    T, B, F = inputs.shape
    H, GH = d_h_n.shape[1], gates.shape[2]
    if d_pre is None:
        d_pre = (cuda.device_array(gates.shape, gates.dtype) if _on_device(gates)
                 else np.empty(gates.shape, gates.dtype))
    lstm_backward_sweep(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_pre, d_h0, d_c0)
    return weight_grads(d_pre.reshape(T * B, GH), inputs.reshape(T * B, F),
                        hs[:-1].reshape(T * B, H))


# --------------------------------------------------------------------------
# Plain tanh RNN cell: h_t = tanh(x_proj_t + h_{t-1} @ W_hh^T)
# --------------------------------------------------------------------------
@cuda.jit
def _rnn_step_forward_kernel(t, rec, x_proj, lengths, hs):
    # rec: (B, H) recurrent product; x_proj: (T, B, H); hs: (T + 1, B, H)
    i = cuda.grid(1)
    B, H = rec.shape[0], rec.shape[1]
    if i < B * H:
        b, j = i // H, i % H
        if t < lengths[b]:
            hs[t + 1, b, j] = math.tanh(x_proj[t, b, j] + rec[b, j])
        else:
            hs[t + 1, b, j] = hs[t, b, j]


@_per_dtype
def _rnn_step_backward_kernel(scalar):
    """Backward of one tanh-RNN step for every (b, j)."""
    one = scalar(1)

    @cuda.jit
    def kernel(t, d_hs, dh, lengths, hs, d_pre):
        # d_hs: (T, B, H); dh: (B, H) gradient flowing into h_t; d_pre: (T, B, H)
        i = cuda.grid(1)
        B, H = dh.shape[0], dh.shape[1]
        if i < B * H:
            b, j = i // H, i % H
            if t < lengths[b]:
                y = hs[t + 1, b, j]
                d_pre[t, b, j] = (dh[b, j] + d_hs[t, b, j]) * (one - y * y)
            else:
                d_pre[t, b, j] = 0

    return kernel


def rnn_forward_sweep(x, w_cat, lengths, hs):
    """Run one tanh-RNN direction (x (T, B, F), w_cat (F + H + 1, H) =
    [W_ih^T; W_hh^T; b], hs (T + 1, B, H))."""
    edges = _Edges()
    d_x, d_w, d_len = edges.input(x), edges.input(w_cat), edges.input(lengths)
    d_hs = edges.output(hs, read=True)  # hs[0]: initial state
    T, F, B, H = x.shape[0], x.shape[2], hs.shape[1], hs.shape[2]
    x_proj = cuda.device_array((T, B, H), x.dtype)  # (T, B, H)
    _project_inputs(d_x, d_w, x_proj)
    w_hh_t = d_w[F:F + H]  # (H, H)
    rec = cuda.device_array((B, H), x.dtype)  # (B, H)
    for t in range(T):
        _gemm(d_hs[t], w_hh_t, rec)
        _rnn_step_forward_kernel[_blocks(B * H), ELEMENTWISE](t, rec, x_proj, d_len, d_hs)
    edges.finish()


def rnn_backward_sweep(d_hs, d_h_n, w_hh, lengths, hs, d_pre, d_h0):
    """Backpropagate one tanh-RNN direction (d_hs (T, B, H) or None, d_h_n (B, H),
    w_hh (H, H), hs (T + 1, B, H), d_pre (T, B, H), d_h0 (B, H))."""
    T, (B, H) = d_pre.shape[0], d_h_n.shape
    edges = _Edges()
    d_out = edges.input_or_zeros(d_hs, (T, B, H), d_h_n.dtype)
    d_w, d_len, d_hist = edges.input(w_hh), edges.input(lengths), edges.input(hs)
    d_pre_dev, d_h0_dev = edges.output(d_pre), edges.output(d_h0)
    d_h0_dev.copy_to_device(edges.input(d_h_n))  # dh: gradient flowing into h_t
    dh_rec = cuda.device_array((B, H), d_out.dtype)
    for t in range(T - 1, -1, -1):
        _rnn_step_backward_kernel(d_out.dtype)[_blocks(B * H), ELEMENTWISE](t, d_out, d_h0_dev, d_len,
                                                                d_hist, d_pre_dev)
        _gemm(d_pre_dev[t], d_w, dh_rec)
        _take_recurrent_grad_kernel[_blocks(B * H), ELEMENTWISE](t, dh_rec, d_len, d_h0_dev)
    edges.finish()
