"""Numba CPU kernels: the recurrent sweeps of one layer direction (LSTM and
tanh RNN, forward beside backward) and the hoisted matrix products around them.

* Each kernel is a block function ``(k, r0, r1, *args)`` over rows
  ``[r0, r1)``, run on every block in one parallel region by
  `codegen.blocks.run_blocks`; each starts with `arguments_do_not_alias()`
  and `use_wide_vectors()`.
* A sweep is one parallel region over blocks of batch rows: each thread runs
  all T steps of its rows, so there is no barrier per timestep.
* A forward step is one GEMM ``[x_t, h_{t-1}, 1] @ [W_ih^T; W_hh^T; b]``
  against weights packed once per call (`codegen.packed`), then the cell.
* Training is time-major (a block's rows at one step are contiguous);
  inference reads and writes the layer's batch-first arrays.
* Determinism: blocks depend on the batch size and Numba's pool size, never
  on a call's thread count; block results are summed in a fixed order.
* Masking as PyTorch's packed sequences: past ``lengths[b]`` row b's state is
  carried unchanged, and the final-state gradient flows back unchanged.
* BLAS must be single-threaded while these run (`nlstm._threads`).

Why it is built this way, with the measurements: ``docs/design.md``
("Inside the CPU kernels").
"""
from functools import cache, lru_cache

import numba
import numpy as np
from numba import njit

from .activations import sigmoid_from_tanh, sigmoid_grad, tanh, tanh_grad
from .codegen.blas import aligned, aligned_empty, gemm, gemm_add, gemm_address
from .codegen.blocks import arguments_do_not_alias, run_blocks
from .codegen.inlining import inline_into_callers
from .codegen.packed import pack_panels, packed_gemm, panels_shape
from .codegen.scratch import reusable
from .codegen.vector_width import use_wide_vectors
from .runtime.jit_options import HELPER, KERNEL

# Cell helpers are @njit(**HELPER) functions marked `inline_into_callers()`:
# a called helper ran other code when compiled than when loaded from the cache.

ROW_BLOCK = 256  # rows per block of the hoisted input-gradient GEMM
GRAD_ROW_BLOCK_MIN = 64  # fewest rows per block of the weight-gradient GEMMs
# Rows (steps x a block's batch rows) per weight-gradient GEMM inside the
# backward sweep (`lstm_backward`): the fastest measured chunk size.
WEIGHT_CHUNK_ROWS = 512
# Pre-activations per chunk of rows that `_gate_tanh` activates before the
# cell loops read them: 32 KiB of float32, so the chunk is still in L1.
CELL_CHUNK = 8192
# Rows per block of the LSTM sweeps where a block's gates fit in L1 (`sweep_bounds`).
SWEEP_BLOCK_ROWS = 32
SWEEP_BLOCK_BYTES = 32 * 1024


def shard_bounds(batch_size):
    """Split ``batch_size`` rows into at most `numba.config.NUMBA_NUM_THREADS`
    shards of >= 2 rows. Returns an int64 array of ``n_shards + 1`` boundaries.

    The split follows the size of Numba's thread pool, fixed for the process,
    not the thread count of a call (``n_jobs``): OpenBLAS rounds a GEMM row
    differently for different row counts, so the results must not depend on
    it. A call with fewer threads runs several shards per thread. A shard
    has >= 2 rows: a one-row GEMM takes OpenBLAS's GEMV path, which rounds
    differently again.
    """
    return _pool_bounds(batch_size, 2)


def sweep_bounds(batch_size, gate_width, itemsize):
    """Row blocks of an LSTM sweep: the pool's shards (`shard_bounds`), or,
    where more blocks of about `SWEEP_BLOCK_ROWS` rows fit the batch and one
    such block's ``(rows, 4H)`` gates fit in `SWEEP_BLOCK_BYTES` (an L1 data
    cache; float32 H <= 64), those blocks, so that a step's GEMM output is
    still in L1 when the cell reads it.

    The blocks depend on the batch size and the pool size only (see
    `shard_bounds`), and the training forward and the inference sweep use the
    same ones, so prediction keeps the training forward's bits.
    """
    return _sweep_bounds(batch_size, gate_width * itemsize <= SWEEP_BLOCK_BYTES // SWEEP_BLOCK_ROWS)


@lru_cache(maxsize=256)  # called for every batch
def _largest_block(batch_size, gate_width, itemsize):
    """Rows in the largest block of `sweep_bounds`."""
    return int(np.diff(sweep_bounds(batch_size, gate_width, itemsize)).max())


@lru_cache(maxsize=256)  # called for every batch; callers never modify it
def _sweep_bounds(batch_size, small_rows):
    shards = shard_bounds(batch_size)
    n_blocks = batch_size // SWEEP_BLOCK_ROWS
    if not small_rows or n_blocks <= len(shards) - 1:
        return shards
    return _even_bounds(batch_size, n_blocks)


def grad_row_bounds(n_rows):
    """Row blocks of the weight-gradient GEMMs: one per thread of Numba's pool,
    split as `shard_bounds` splits a batch (so that no result depends on the
    thread count of a call), of at least `GRAD_ROW_BLOCK_MIN` rows."""
    return _pool_bounds(n_rows, GRAD_ROW_BLOCK_MIN)


@lru_cache(maxsize=256)  # called for every batch; callers never modify it
def _pool_bounds(n_rows, min_rows):
    """One block per thread of Numba's pool (fixed per process), each of at
    least ``min_rows`` rows (one block when there are fewer)."""
    n_blocks = max(1, min(numba.config.NUMBA_NUM_THREADS, n_rows // min_rows))
    return _even_bounds(n_rows, n_blocks)


@lru_cache(maxsize=256)  # called for every batch; callers never modify it
def _row_block_bounds(n_rows):
    # size-dependent only; the last block absorbs the tail (>= 2 rows)
    return _even_bounds(n_rows, max(1, n_rows // ROW_BLOCK))


def _even_bounds(n_rows, n_blocks):
    """``n_blocks + 1`` int64 boundaries splitting ``n_rows`` as evenly as possible."""
    return np.linspace(0, n_rows, n_blocks + 1).round().astype(np.int64)


# Copies inside the kernels are loops over 1-d row views, never array-to-array
# slice assignments or a shared copy helper: both cost seconds of cold start
# (docs/design.md, "Compile time").


# --------------------------------------------------------------------------
# Hoisted products
# --------------------------------------------------------------------------
@njit(**KERNEL)
def _matmul_rows_block(k, r0, r1, blas, a, b, out):
    # a: (N, K), b: (K, M), out: (N, M) = a @ b
    arguments_do_not_alias()
    use_wide_vectors()  # no loop of its own: kept so that every block function has it
    gemm(blas, a[r0:r1], b, out[r0:r1])


def matmul_rows(a, b, out):
    """``out[:] = a @ b`` in parallel over row blocks.

    Parameters
    ----------
    a : ndarray, shape (N, K), C-contiguous
    b : ndarray, shape (K, M), C- or F-contiguous
    out : ndarray, shape (N, M), C-contiguous, written in place
    """
    run_blocks(_matmul_rows_block, _row_block_bounds(a.shape[0]), gemm_address(a.dtype), a,
               aligned(b), out)
    return out


@njit(**KERNEL)
def _weight_grads_block(p, r0, r1, blas, d_pre, inputs, h_prev, xh, parts):
    # d_pre: (N, GH) gradient of the gate pre-activations, N = T*B
    # inputs: (N, K) layer input, h_prev: (N, H) previous hidden state
    # xh: (N, K+H+1) scratch for the rows [inputs, h_prev, 1]
    # parts: (P, K+H+1, GH): block p of rows gives xh[rows]^T @ d_pre[rows]
    arguments_do_not_alias()
    use_wide_vectors()
    K, H = inputs.shape[1], h_prev.shape[1]
    block = xh[r0:r1]  # (rows, K+H+1)
    for r in range(r1 - r0):
        x_r, in_r = block[r, :K], inputs[r0 + r]  # (K)
        for j in range(K):
            x_r[j] = in_r[j]
        h_r, h_prev_r = block[r, K:K + H], h_prev[r0 + r]  # (H)
        for j in range(H):
            h_r[j] = h_prev_r[j]
        block[r, K + H] = 1
    gemm(blas, block.T, d_pre[r0:r1], parts[p])  # (K+H+1, GH)


def weight_grads(d_pre, inputs, h_prev):
    """Gradients of ``W_ih``, ``W_hh`` and the bias from the pre-activation grads.

    One GEMM per row block (`grad_row_bounds`) gives that block's part of
    ``[dW_ih^T; dW_hh^T; db] = [inputs, h_prev, 1]^T @ d_pre``; the parts are
    summed in block order.

    Parameters
    ----------
    d_pre : ndarray, shape (N, G*H)
    inputs : ndarray, shape (N, K)
    h_prev : ndarray, shape (N, H)

    Returns
    -------
    d_w_ih : (G*H, K), d_w_hh : (G*H, H), d_b : (G*H,); views of one array
    """
    (n, gh), dtype = d_pre.shape, d_pre.dtype
    k, h = inputs.shape[1], h_prev.shape[1]
    bounds = grad_row_bounds(n)
    xh = np.empty((n, k + h + 1), dtype)  # (N, K+H+1)
    parts = np.empty((len(bounds) - 1, k + h + 1, gh), dtype)  # (P, K+H+1, GH)
    run_blocks(_weight_grads_block, bounds, gemm_address(dtype), d_pre, inputs, h_prev, xh, parts)
    return _sum_weight_parts(parts, k, h)


def _sum_weight_parts(parts, k, h):
    """``(d_w_ih, d_w_hh, d_b)`` from the blocks' parts (P, K+H+1, GH) of
    ``[inputs, h_prev, 1]^T @ d_pre``, summed in block order (a fixed order:
    the same bits for any thread count)."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total[:k].T, total[k:k + h].T, total[k + h]


@njit(**KERNEL)
def _reverse_within_lengths_block(k, b0, b1, x, lengths, out):
    # x, out: (T, B, F); rows [b0, b1) of the batch
    arguments_do_not_alias()
    use_wide_vectors()
    for b in range(b0, b1):
        n = lengths[b]
        for t in range(x.shape[0]):
            src = n - 1 - t if t < n else t
            x_row, out_row = x[src, b], out[t, b]  # (F)
            for f in range(x.shape[2]):
                out_row[f] = x_row[f]


def reverse_within_lengths(x, lengths, out):
    """``out[t, b] = x[lengths[b] - 1 - t, b]`` for ``t < lengths[b]``, else ``x[t, b]``.

    Turns a reverse-direction pass into a forward one (and back: it is an
    involution). x, out: (T, B, F). Returns out.
    """
    run_blocks(_reverse_within_lengths_block, _pool_bounds(x.shape[1], 1), x, lengths, out)
    return out


def zero_after_lengths(x, lengths):
    """Zero ``x[t, b]`` for ``t >= lengths[b]`` in place. x: (T, B, F).

    NumPy, not a kernel: it touches only the padding, and a parallel kernel
    would add compile time to every fresh process.
    """
    T = x.shape[0]
    if lengths.min(initial=T) < T:
        x[np.arange(T)[:, None] >= lengths[None, :]] = 0  # (T, B) mask
    return x


# --------------------------------------------------------------------------
# LSTM cell: forward and backward sweeps, gate order i, f, g, o
# --------------------------------------------------------------------------
def gate_panels(w_cat, role=None):
    """``w_cat`` (F+H+1, 4H) packed for the steps' products (`packed.pack_panels`),
    with the columns of the sigmoid gates i, f, o halved, so that a step's
    GEMM gives ``x / 2`` for those gates and ``x`` for g, and `_gate_tanh`
    activates all four in one loop (``sigmoid(x) = (1 + tanh(x / 2)) / 2``).
    Halving is exact in binary floating point, and so is the GEMM of the
    halved columns: the gates are the same bits as halving each
    pre-activation. ``role``: packed into the thread's `reusable` array of
    that name (for panels used only during the call), else a new array."""
    return _panels(role, w_cat, _gate_column_scales(w_cat.shape[1], w_cat.dtype))


def _panels(role, w, column_scales=None):
    """`pack_panels` of ``w`` into `_work_array` ``role`` (a sweep's weights,
    repacked every call: they change between calls)."""
    return pack_panels(w, column_scales,
                       out=_work_array(role, panels_shape(w.shape, w.dtype), w.dtype))


def _work_array(role, shape, dtype):
    """The thread's `reusable` array for ``role``, or a new aligned one for
    ``role`` None (an array the caller keeps: a stream's weights)."""
    return aligned_empty(shape, dtype) if role is None else reusable(role, shape, dtype)


@cache
def _gate_column_scales(width, dtype):
    """(4H,) 0.5 for the columns of gates i, f, o and 1 for g (read-only)."""
    H = width // 4
    scales = np.full(width, 0.5, dtype)
    scales[2 * H:3 * H] = 1
    scales.flags.writeable = False
    return scales


@njit(**HELPER)
def _gate_tanh(z):
    """tanh of every pre-activation of some rows at one step, z: (rows, 4H),
    in place, one loop of 4H per row over all four gates (weights from
    `gate_panels`): ``tanh(x_i / 2)``, ``tanh(x_f / 2)``,
    ``tanh(x_g)``, ``tanh(x_o / 2)``. The sweeps then finish the cell in one
    loop of H per row (see "The LSTM cell" above `_lstm_forward_shard`)."""
    inline_into_callers()
    use_wide_vectors()
    for r in range(z.shape[0]):
        z_r = z[r]  # (4H)
        for j in range(z_r.shape[0]):
            z_r[j] = tanh(z_r[j])


# The LSTM cell, forward: `_gate_tanh` over a chunk of rows (`CELL_CHUNK`),
# then per row ``c = f * c_prev + i * g`` and ``h = o * tanh(c)``, the sigmoid
# gates finished by `sigmoid_from_tanh`. Both forward sweeps write this loop
# out in place with the same expressions, so prediction gives the training
# forward's bits (docs/design.md, "The LSTM cell").
@njit(**KERNEL)
def _lstm_forward_shard(s, b0, b1, blas, x, w_panels, lengths, hs, cs, gates):
    arguments_do_not_alias()
    use_wide_vectors()
    # x: (T, B, F), w_panels: `gate_panels` of w_cat (F+H+1, 4H),
    # hs/cs: (T+1, B, H), gates: (T, B, 4H) receives `_gate_tanh`'s values
    T, F = x.shape[0], x.shape[2]
    H = hs.shape[2]
    chunk = max(1, CELL_CHUNK // (4 * H))  # rows
    xh = np.empty((b1 - b0, F + H + 1), x.dtype)  # (rows, F+H+1): [x_t, h_{t-1}, 1]
    for r in range(b1 - b0):
        xh_h, h0_r = xh[r, F:F + H], hs[0, b0 + r]  # (H)
        for j in range(H):
            xh_h[j] = h0_r[j]
        xh[r, F + H] = 1
    for t in range(T):
        for r in range(b1 - b0):
            xh_x, x_r = xh[r, :F], x[t, b0 + r]  # (F)
            for j in range(F):
                xh_x[j] = x_r[j]
        z = gates[t, b0:b1]  # (rows, 4H), contiguous in the time-major layout
        packed_gemm(blas, xh, w_panels, z)
        for r in range(b1 - b0):
            if r % chunk == 0:  # kept in gates for the backward sweep
                _gate_tanh(z[r:r + chunk])
            b = b0 + r
            h_prev, h_next = hs[t, b], hs[t + 1, b]  # (H)
            c_prev, c_next = cs[t, b], cs[t + 1, b]  # (H)
            if t < lengths[b]:
                z_r, xh_h = z[r], xh[r, F:F + H]  # (4H), (H)
                z_i, z_f, z_g, z_o = z_r[:H], z_r[H:2 * H], z_r[2 * H:3 * H], z_r[3 * H:]
                for j in range(H):
                    c_j = (sigmoid_from_tanh(z_f[j]) * c_prev[j]
                           + sigmoid_from_tanh(z_i[j]) * z_g[j])
                    c_next[j] = c_j
                    h_j = sigmoid_from_tanh(z_o[j]) * tanh(c_j)
                    h_next[j] = h_j
                    xh_h[j] = h_j
            else:  # past this row's end: carry the state
                for j in range(H):
                    h_next[j] = h_prev[j]
                    c_next[j] = c_prev[j]
                z[r, :] = 0


@njit(**KERNEL)
def _lstm_inference_shard(s, b0, b1, blas, x, w_panels, lengths, reverse, h, c, out, column):
    arguments_do_not_alias()
    use_wide_vectors()
    # x: (B, T, F) batch-first, w_panels: `gate_panels` of w_cat (F+H+1, 4H), h/c: (B, H),
    # out: (B, T, W) written in columns [column, column + H), or (0, 0, 0): not kept
    T, F = x.shape[1], x.shape[2]
    H = h.shape[1]
    chunk = max(1, CELL_CHUNK // (4 * H))  # rows
    keep = out.shape[0] > 0
    xh = np.empty((b1 - b0, F + H + 1), x.dtype)  # (rows, F+H+1): [x_t, h_{t-1}, 1]
    for r in range(b1 - b0):
        xh_h, h_r = xh[r, F:F + H], h[b0 + r]  # (H)
        for j in range(H):
            xh_h[j] = h_r[j]
        xh[r, F + H] = 1
    z = np.empty((b1 - b0, 4 * H), x.dtype)  # (rows, 4H)
    for t in range(T):
        for r in range(b1 - b0):
            n = lengths[b0 + r]
            src = n - 1 - t if reverse and t < n else t  # the step this row reads
            xh_x, x_r = xh[r, :F], x[b0 + r, src]  # (F)
            for j in range(F):
                xh_x[j] = x_r[j]
        packed_gemm(blas, xh, w_panels, z)
        for r in range(b1 - b0):
            if r % chunk == 0:
                _gate_tanh(z[r:r + chunk])
            b = b0 + r
            n = lengths[b]
            if t < n:  # the cell, in place on c and on the next step's h
                z_r, c_r, xh_h = z[r], c[b], xh[r, F:F + H]  # (4H), (H), (H)
                z_i, z_f, z_g, z_o = z_r[:H], z_r[H:2 * H], z_r[2 * H:3 * H], z_r[3 * H:]
                for j in range(H):
                    c_j = (sigmoid_from_tanh(z_f[j]) * c_r[j]
                           + sigmoid_from_tanh(z_i[j]) * z_g[j])
                    c_r[j] = c_j
                    xh_h[j] = sigmoid_from_tanh(z_o[j]) * tanh(c_j)
                if keep:  # the output belongs to the step that was read
                    out_r = out[b, n - 1 - t if reverse else t, column:column + H]  # (H)
                    for j in range(H):
                        out_r[j] = xh_h[j]
            elif keep:  # a loop, not a slice assignment: compile time
                out_r = out[b, t, column:column + H]  # (H)
                for j in range(H):
                    out_r[j] = 0
    for r in range(b1 - b0):  # the state at each row's last valid step
        xh_h, h_r = xh[r, F:F + H], h[b0 + r]  # (H)
        for j in range(H):
            h_r[j] = xh_h[j]


@njit(**HELPER)
def _lstm_cell_backward(g_i, g_f, g_g, g_o, c_prev, c, d_out, dh, dc, dz_i, dz_f, dz_g, dz_o):
    """Backward of the LSTM cell (see `_lstm_forward_shard`) for one row at
    one step, each argument (H,).

    g_i, g_f, g_g, g_o : the row's `_gate_tanh` values, from which the gates
    follow (``i = sigmoid_from_tanh(g_i)``); c_prev, c : the cell state
    before and after the step; d_out : the gradient w.r.t. this step's
    output; dh : the recurrent gradient w.r.t. h_t; dc : the gradient w.r.t.
    c_t on entry, w.r.t. c_{t-1} on exit; dz_i, dz_f, dz_g, dz_o : receive
    the gradient w.r.t. the four gates' pre-activations.

    One row of 1-d views, marked ``noalias``: indexing 2-d blocks kept LLVM
    from vectorising, and a loop over rows here made it check the views for
    overlap before every row (docs/design.md, "The LSTM cell").
    """
    inline_into_callers()
    use_wide_vectors()
    arguments_do_not_alias()
    for j in range(c.shape[0]):
        dhj = dh[j] + d_out[j]
        i, f = sigmoid_from_tanh(g_i[j]), sigmoid_from_tanh(g_f[j])
        g, o = g_g[j], sigmoid_from_tanh(g_o[j])
        tc = tanh(c[j])
        dcj = dc[j] + dhj * o * tanh_grad(tc)
        dz_i[j] = dcj * g * sigmoid_grad(i)
        dz_f[j] = dcj * c_prev[j] * sigmoid_grad(f)
        dz_g[j] = dcj * i * tanh_grad(g)
        dz_o[j] = dhj * tc * sigmoid_grad(o)
        dc[j] = dcj * f


@njit(**KERNEL)
def _lstm_backward_shard(s, b0, b1, blas, d_hs, d_h_n, d_c_n, w_hh_panels, lengths, cs, gates,
                         d_pre, d_h0, d_c0, inputs, hs, parts, chunk_steps, dz_chunks, xh_chunks):
    arguments_do_not_alias()
    use_wide_vectors()
    # d_hs: (T, B, H), or (0, B, H): no output gradient; d_h_n/d_c_n/d_h0/d_c0: (B, H),
    # w_hh_panels: `pack_panels` of w_hh (4H, H), cs/hs: (T+1, B, H), gates: (T, B, 4H)
    # d_pre: (T, B, 4H), or (0, B, 4H): not wanted
    # inputs: (T, B, F); parts: (P, F+H+1, 4H), or (0, ...): no weight gradients;
    # block s adds [x_t, h_{t-1}, 1]^T @ dz_t of its rows, over all t, into parts[s]
    # dz_chunks: (P, steps*rows, 4H), xh_chunks: (P, steps*rows or 0, F+H+1), block s's
    # working rows (`_backward_chunks`)
    T, H, F = gates.shape[0], d_h_n.shape[1], inputs.shape[2]
    rows = b1 - b0
    with_weights = parts.shape[0] > 0
    steps = chunk_steps if with_weights else 1  # steps per chunk of weight gradients
    dh = d_h_n[b0:b1].copy()  # (rows, H) recurrent gradient flowing into h_t
    dc = d_c_n[b0:b1].copy()  # (rows, H) gradient flowing into c_t
    dh_rec = np.empty_like(dh)  # (rows, H)
    all_valid = T  # steps below which every row of the block is valid
    for r in range(rows):
        all_valid = min(all_valid, lengths[b0 + r])
    no_d_out = np.zeros_like(dh)  # (rows, H) the output gradient when there is none
    dz_chunk = dz_chunks[s, :steps * rows]  # (steps*rows, 4H) of steps t0..t0+steps-1
    xh_chunk = xh_chunks[s, :steps * rows if with_weights else 0]  # (.., F+H+1)
    if with_weights:
        part = parts[s]  # (F+H+1, 4H)
        for i in range(part.shape[0]):
            part[i] = 0
    for t in range(T - 1, -1, -1):
        slot = t % steps  # the chunk holds steps t - slot .. t - slot + steps - 1
        dz = dz_chunk[slot * rows:(slot + 1) * rows]  # (rows, 4H)
        d_out = d_hs[t, b0:b1] if d_hs.shape[0] > 0 else no_d_out  # (rows, H)
        for r in range(rows):  # the cell; dz is zero past a row's length, dc kept
            b, dz_r = b0 + r, dz[r]  # (4H)
            if t < lengths[b]:
                g_r = gates[t, b]  # (4H)
                _lstm_cell_backward(g_r[:H], g_r[H:2 * H], g_r[2 * H:3 * H], g_r[3 * H:],
                                    cs[t, b], cs[t + 1, b], d_out[r], dh[r], dc[r],
                                    dz_r[:H], dz_r[H:2 * H], dz_r[2 * H:3 * H], dz_r[3 * H:])
            else:
                for j in range(4 * H):
                    dz_r[j] = 0
        if t < all_valid:  # the product replaces every row's dh: no copy
            packed_gemm(blas, dz, w_hh_panels, dh)
        else:  # rows past their length keep theirs
            packed_gemm(blas, dz, w_hh_panels, dh_rec)
            for r in range(rows):
                if t < lengths[b0 + r]:
                    dh_r, dh_rec_r = dh[r], dh_rec[r]  # (H)
                    for j in range(H):
                        dh_r[j] = dh_rec_r[j]
        if d_pre.shape[0] > 0:
            for r in range(rows):
                dz_r, d_pre_r = dz[r], d_pre[t, b0 + r]  # (4H)
                for j in range(4 * H):
                    d_pre_r[j] = dz_r[j]
        if with_weights:
            xh = xh_chunk[slot * rows:(slot + 1) * rows]  # (rows, F+H+1)
            for r in range(rows):
                xh_x, x_r = xh[r, :F], inputs[t, b0 + r]  # (F)
                for j in range(F):
                    xh_x[j] = x_r[j]
                xh_h, h_r = xh[r, F:F + H], hs[t, b0 + r]  # (H) h_{t-1}
                for j in range(H):
                    xh_h[j] = h_r[j]
                xh[r, F + H] = 1
            if slot == 0:  # the chunk is complete (the first one may be short)
                n = min(steps, T - t) * rows
                gemm_add(blas, xh_chunk[:n].T, dz_chunk[:n], part)  # (F+H+1, 4H)
    for r in range(rows):
        dh_r, dc_r, d_h0_r, d_c0_r = dh[r], dc[r], d_h0[b0 + r], d_c0[b0 + r]  # (H)
        for j in range(H):
            d_h0_r[j] = dh_r[j]
            d_c0_r[j] = dc_r[j]


def lstm_forward_sweep(x, w_cat, lengths, hs, cs, gates):
    """Run one LSTM direction over all timesteps, keeping what backward needs.

    Parameters
    ----------
    x : (T, B, F) layer input, time-major
    w_cat : (F + H + 1, 4H) ``[W_ih^T; W_hh^T; b_ih + b_hh]``, C-contiguous
    lengths : (B,) int64, valid steps per row
    hs, cs : (T + 1, B, H) on entry ``hs[0]``, ``cs[0]`` hold the initial
        state; ``hs[t + 1]``, ``cs[t + 1]`` receive the state after step t
    gates : (T, B, 4H) receives ``tanh(x_i / 2)``, ``tanh(x_f / 2)``,
        ``tanh(x_g)``, ``tanh(x_o / 2)`` of the gate pre-activations x, from
        which the backward sweep takes the gates (zero past a row's length)
    """
    run_blocks(_lstm_forward_shard, sweep_bounds(hs.shape[1], gates.shape[2], x.itemsize),
               gemm_address(x.dtype), x,
               gate_panels(w_cat, "lstm forward"), lengths, hs, cs, gates)


def lstm_inference_sweep(x, w_cat, lengths, h, c, out=None, column=0, reverse=False):
    """Forward only, batch-first: keeps the running state, not every step's
    activations, and reads and writes the layer's batch-first arrays directly
    (no time-major copies, no reversed copies for the reverse direction).

    Parameters
    ----------
    x : (B, T, F) layer input, batch-first, C-contiguous
    w_cat, lengths : as in `lstm_forward_sweep`
    h, c : (B, H) initial state on entry, state at each row's last valid step
        on exit
    out : (B, T, W) or None
        Receives the hidden state of every step in columns
        ``[column, column + H)``, zero past a row's length (``W = D*H`` lets
        both directions of a layer write one array). None: not kept.
    reverse : bool
        Read each row from its last valid step back to its first (the reverse
        direction); the output of reading step ``s`` is written at step ``s``.
    """
    if out is None:
        out = np.empty((0, 0, 0), x.dtype)
    x = np.ascontiguousarray(x)  # a strided view would compile a second kernel
    run_blocks(_lstm_inference_shard, sweep_bounds(h.shape[0], w_cat.shape[1], x.itemsize),
               gemm_address(x.dtype), x,
               gate_panels(w_cat, "lstm inference"), lengths, bool(reverse), h, c, out,
               int(column))


def lstm_backward_sweep(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_pre, d_h0, d_c0):
    """Backpropagate one LSTM direction through time.

    Parameters
    ----------
    d_hs : (T, B, H) or None
        Gradient of the loss w.r.t. this direction's outputs; None when only
        the final state reaches the loss (no ``(T, B, H)`` array of zeros to
        allocate, zero and read)
    d_h_n, d_c_n : (B, H) gradient w.r.t. the final state
    w_hh : (4H, H) recurrent weights
    lengths : as in `lstm_forward_sweep`
    cs, gates : (T + 1, B, H), (T, B, 4H) saved by `lstm_forward_sweep`
    d_pre : (T, B, 4H) receives the gradient of the gate pre-activations
    d_h0, d_c0 : (B, H) receive the gradient w.r.t. the initial state
    """
    d_hs = _output_grad_array(d_hs, d_h_n)
    H, dtype = d_h_n.shape[1], d_h_n.dtype
    no_inputs = np.empty((0,) + d_h_n.shape[:1] + (0,), dtype)  # (0, B, 0)
    no_parts = np.empty((0, H + 1, 4 * H), dtype)  # (0, 0+H+1, 4H): no weight gradients
    B, G = d_hs.shape[1], d_pre.shape[2]
    bounds = sweep_bounds(B, G, d_hs.itemsize)
    rows = _largest_block(B, G, d_hs.itemsize)
    run_blocks(_lstm_backward_shard, bounds, gemm_address(dtype), d_hs, d_h_n, d_c_n,
               _panels("lstm backward", w_hh), lengths, cs, gates, d_pre, d_h0, d_c0,
               no_inputs, cs, no_parts, 1, *_backward_chunks(len(bounds) - 1, rows, dtype,
                                                             (4 * H, 0)))


def _backward_chunks(n_blocks, chunk_rows, dtype, widths):
    """The working rows of a backward sweep's ``n_blocks`` blocks, the thread's
    `reusable` arrays: per width, (n_blocks, chunk_rows, width), for the rows
    of a block's chunk of steps (the gate gradients, the ``[x_t, h_{t-1}, 1]``
    rows, ...); a width of 0 gives an empty array (not used)."""
    return tuple(reusable(f"backward chunk {i}", (n_blocks, chunk_rows if width else 0, width),
                          dtype) for i, width in enumerate(widths))


def lstm_backward(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, inputs, hs, d_pre, d_h0, d_c0):
    """`lstm_backward_sweep` and `weight_grads` in one: each block of the
    sweep multiplies its rows of ``[x_t, h_{t-1}, 1]`` and of the gate
    gradients for the weights every few steps (`WEIGHT_CHUNK_ROWS` rows),
    while they are still in its core's cache, and ``d_pre`` need not be
    written at all. Where the sweep has fewer blocks than Numba's pool has
    threads, the weight gradients run apart (`weight_grads`), split by rows,
    so that every core takes part.

    Parameters
    ----------
    d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_h0, d_c0 :
        as in `lstm_backward_sweep`
    inputs : (T, B, F) the layer's input, time-major
    hs : (T + 1, B, H) saved by `lstm_forward_sweep` (``hs[t]`` is ``h_{t-1}``)
    d_pre : (T, B, 4H) or None
        Receives the gradient of the gate pre-activations (for the input
        gradient); None: not wanted.

    Returns
    -------
    d_w_ih : (4H, F), d_w_hh : (4H, H), d_b : (4H,); views of one array
    """
    (T, B, F), (H, dtype) = inputs.shape, (d_h_n.shape[1], d_h_n.dtype)
    bounds = sweep_bounds(B, 4 * H, d_h_n.itemsize)
    n_blocks = len(bounds) - 1
    if n_blocks < numba.config.NUMBA_NUM_THREADS:
        if d_pre is None:
            d_pre = np.empty((T, B, 4 * H), dtype)
        lstm_backward_sweep(d_hs, d_h_n, d_c_n, w_hh, lengths, cs, gates, d_pre, d_h0, d_c0)
        return weight_grads(d_pre.reshape(T * B, 4 * H), inputs.reshape(T * B, F),
                            hs[:-1].reshape(T * B, H))
    if d_pre is None:
        d_pre = np.empty((0, B, 4 * H), dtype)
    parts = np.empty((n_blocks, F + H + 1, 4 * H), dtype)  # (P, F+H+1, 4H)
    rows = _largest_block(B, 4 * H, d_h_n.itemsize)
    steps = -(-WEIGHT_CHUNK_ROWS // rows)
    run_blocks(_lstm_backward_shard, bounds, gemm_address(dtype),
               _output_grad_array(d_hs, d_h_n), d_h_n, d_c_n, _panels("lstm backward", w_hh),
               lengths, cs, gates, d_pre, d_h0, d_c0, inputs, hs, parts, steps,
               *_backward_chunks(n_blocks, steps * rows, dtype, (4 * H, F + H + 1)))
    return _sum_weight_parts(parts, F, H)


def _output_grad_array(d_hs, d_h_n):
    """``d_hs``, or for None the ``(0, B, H)`` array by which the backward
    sweeps know that there is no output gradient (an array of the same type
    as a real one: no second compilation of the sweep)."""
    if d_hs is None:
        return np.empty((0,) + d_h_n.shape, d_h_n.dtype)
    return d_hs


# --------------------------------------------------------------------------
# Plain tanh RNN cell: h_t = tanh(x_t @ W_ih^T + h_{t-1} @ W_hh^T + b)
# --------------------------------------------------------------------------
@njit(**KERNEL)
def _rnn_forward_shard(s, b0, b1, blas, x, w_panels, lengths, hs):
    arguments_do_not_alias()
    use_wide_vectors()
    # x: (T, B, F), w_panels: `pack_panels` of w_cat (F+H+1, H), hs: (T+1, B, H)
    T, F = x.shape[0], x.shape[2]
    H = hs.shape[2]
    xh = np.empty((b1 - b0, F + H + 1), x.dtype)  # (rows, F+H+1): [x_t, h_{t-1}, 1]
    for r in range(b1 - b0):
        xh_h, h0_r = xh[r, F:F + H], hs[0, b0 + r]  # (H)
        for j in range(H):
            xh_h[j] = h0_r[j]
        xh[r, F + H] = 1
    z = np.empty((b1 - b0, H), x.dtype)  # (rows, H)
    for t in range(T):
        for r in range(b1 - b0):
            xh_x, x_r = xh[r, :F], x[t, b0 + r]  # (F)
            for j in range(F):
                xh_x[j] = x_r[j]
        packed_gemm(blas, xh, w_panels, z)
        for r in range(b1 - b0):
            b = b0 + r
            h_prev, h_next = hs[t, b], hs[t + 1, b]  # (H)
            if t < lengths[b]:
                z_r, xh_h = z[r], xh[r, F:F + H]  # (H)
                for j in range(H):
                    h_next[j] = tanh(z_r[j])
                    xh_h[j] = h_next[j]
            else:
                for j in range(H):
                    h_next[j] = h_prev[j]


@njit(**KERNEL)
def _rnn_inference_shard(s, b0, b1, blas, x, w_panels, lengths, reverse, h, out, column):
    arguments_do_not_alias()
    use_wide_vectors()
    # as `_lstm_inference_shard` for the tanh RNN (used by `nlstm.kernels.stream`):
    # x: (B, T, F) batch-first, w_panels: `pack_panels` of w_cat (F+H+1, H), h: (B, H),
    # out: (B, T, W) written in columns [column, column + H), or (0, 0, 0): not kept
    T, F = x.shape[1], x.shape[2]
    H = h.shape[1]
    keep = out.shape[0] > 0
    xh = np.empty((b1 - b0, F + H + 1), x.dtype)  # (rows, F+H+1): [x_t, h_{t-1}, 1]
    for r in range(b1 - b0):
        xh_h, h_r = xh[r, F:F + H], h[b0 + r]  # (H)
        for j in range(H):
            xh_h[j] = h_r[j]
        xh[r, F + H] = 1
    z = np.empty((b1 - b0, H), x.dtype)  # (rows, H)
    for t in range(T):
        for r in range(b1 - b0):
            n = lengths[b0 + r]
            src = n - 1 - t if reverse and t < n else t  # the step this row reads
            xh_x, x_r = xh[r, :F], x[b0 + r, src]  # (F)
            for j in range(F):
                xh_x[j] = x_r[j]
        packed_gemm(blas, xh, w_panels, z)
        for r in range(b1 - b0):
            b = b0 + r
            n = lengths[b]
            if t < n:  # the cell, on the next step's h
                z_r, xh_h = z[r], xh[r, F:F + H]  # (H)
                for j in range(H):
                    xh_h[j] = tanh(z_r[j])
                if keep:
                    out_r = out[b, n - 1 - t if reverse else t, column:column + H]  # (H)
                    for j in range(H):
                        out_r[j] = xh_h[j]
            elif keep:
                out_r = out[b, t, column:column + H]  # (H)
                for j in range(H):
                    out_r[j] = 0
    for r in range(b1 - b0):  # the state at each row's last valid step
        xh_h, h_r = xh[r, F:F + H], h[b0 + r]  # (H)
        for j in range(H):
            h_r[j] = xh_h[j]


@njit(**KERNEL)
def _rnn_backward_shard(s, b0, b1, blas, d_hs, d_h_n, w_hh_panels, lengths, hs, d_pre, d_h0):
    arguments_do_not_alias()
    use_wide_vectors()
    # d_hs: (T, B, H), or (0, B, H): no output gradient; d_pre: (T, B, H),
    # d_h_n/d_h0: (B, H), w_hh_panels: `pack_panels` of w_hh (H, H), hs: (T+1, B, H)
    T, H = d_pre.shape[0], d_pre.shape[2]
    dh = d_h_n[b0:b1].copy()  # (rows, H)
    dh_rec = np.empty_like(dh)
    no_d_out = np.zeros_like(dh)  # (rows, H) the output gradient when there is none
    for t in range(T - 1, -1, -1):
        d_out = d_hs[t, b0:b1] if d_hs.shape[0] > 0 else no_d_out  # (rows, H)
        for r in range(b1 - b0):  # 1-d row views, so that the loop vectorises
            b = b0 + r
            d_pre_r = d_pre[t, b]  # (H)
            if t < lengths[b]:
                dh_r, d_out_r, h_r = dh[r], d_out[r], hs[t + 1, b]
                for j in range(H):
                    d_pre_r[j] = (dh_r[j] + d_out_r[j]) * tanh_grad(h_r[j])
            else:
                d_pre_r[:] = 0
        packed_gemm(blas, d_pre[t, b0:b1], w_hh_panels, dh_rec)
        for r in range(b1 - b0):
            if t < lengths[b0 + r]:
                dh_r, dh_rec_r = dh[r], dh_rec[r]  # (H)
                for j in range(H):
                    dh_r[j] = dh_rec_r[j]
    for r in range(b1 - b0):
        dh_r, d_h0_r = dh[r], d_h0[b0 + r]  # (H)
        for j in range(H):
            d_h0_r[j] = dh_r[j]


def rnn_forward_sweep(x, w_cat, lengths, hs):
    """Run one tanh-RNN direction over all timesteps.

    x : (T, B, F), w_cat : (F + H + 1, H) ``[W_ih^T; W_hh^T; b_ih + b_hh]``,
    hs : (T + 1, B, H) with ``hs[0]`` the initial state on entry; the rest as
    in `lstm_forward_sweep`.
    """
    run_blocks(_rnn_forward_shard, shard_bounds(hs.shape[1]), gemm_address(x.dtype), x,
               _panels("rnn forward", w_cat), lengths, hs)


def rnn_backward_sweep(d_hs, d_h_n, w_hh, lengths, hs, d_pre, d_h0):
    """Backpropagate one tanh-RNN direction through time.

    d_hs : (T, B, H) or None (as in `lstm_backward_sweep`), d_h_n : (B, H),
    w_hh : (H, H), hs : (T + 1, B, H) from the forward sweep, d_pre : (T, B, H)
    and d_h0 : (B, H) receive gradients.
    """
    d_hs = _output_grad_array(d_hs, d_h_n)
    run_blocks(_rnn_backward_shard, shard_bounds(hs.shape[1]), gemm_address(d_hs.dtype), d_hs,
               d_h_n, _panels("rnn backward", w_hh), lengths, hs, d_pre, d_h0)


# --------------------------------------------------------------------------
# GRU cell (torch.nn.GRU), gates r, z, n:
#   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise,
#   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
# A step is three products with weights packed once per call (`gru_panels`):
# [x_t, 1, h_{t-1}] for r and z, [x_t, 1] for n's x-part, [1, h_{t-1}] for its
# h-part, which stays apart because r multiplies it: PyTorch's multiply-adds,
# no more. The backward's 3H gradient [d_r, d_z, d_hn] times [W_hr; W_hz; W_hn]
# is the recurrent gradient; the weight gradients come in the sweep, as the LSTM's.
# --------------------------------------------------------------------------
def gru_panels(w_ih, w_hh, b_ih, b_hh, role=None):
    """The GRU's step weights packed (`pack_panels`): ``(rz, hn, xn)`` for the
    rows ``[x; 1; h]`` times r and z (both parts and biases summed, halved: the
    sigmoid is taken as ``tanh(x / 2)``), ``[1; h]`` times n's h-part
    (``b_hn``, ``W_hn``) and ``[x; 1]`` times n's x-part (``W_in``, ``b_in``).
    ``role``: in the thread's `reusable` arrays of that name (for panels used
    only during the call), else in new arrays."""
    H, F, dtype = w_hh.shape[1], w_ih.shape[1], w_ih.dtype

    def part(name):  # the role of one part (None: new arrays)
        return None if role is None else f"{role} {name}"

    rz = _work_array(part("rz unpacked"), (F + 1 + H, 2 * H), dtype)  # (F+1+H, 2H)
    rz[:F] = w_ih[:2 * H].T
    rz[F] = b_ih[:2 * H] + b_hh[:2 * H]
    rz[F + 1:] = w_hh[:2 * H].T
    hn = _work_array(part("hn unpacked"), (1 + H, H), dtype)  # (1+H, H)
    hn[0] = b_hh[2 * H:]
    hn[1:] = w_hh[2 * H:].T
    xn = _work_array(part("xn unpacked"), (F + 1, H), dtype)  # (F+1, H)
    xn[:F] = w_ih[2 * H:].T
    xn[F] = b_ih[2 * H:]
    return (_panels(part("rz"), rz, np.full(2 * H, 0.5, dtype)), _panels(part("hn"), hn),
            _panels(part("xn"), xn))


@njit(**HELPER)
def _gru_step_rows(xh, x1, x, t, b0, b1, reverse, lengths, batch_first):
    """Copy each row's input at step t into ``xh`` (rows, F+1+H) = [x, 1, h]
    and ``x1`` (rows, F+1) = [x, 1]; the h-part of ``xh`` (and of the step's
    ``[1, h]`` rows) holds h_{t-1} already."""
    inline_into_callers()
    F = x1.shape[1] - 1
    for r in range(b1 - b0):
        if batch_first:
            n_steps = lengths[b0 + r]
            src = n_steps - 1 - t if reverse and t < n_steps else t
            x_r = x[b0 + r, src]  # (F)
        else:
            x_r = x[t, b0 + r]  # (F)
        xh_x, x1_x = xh[r, :F], x1[r, :F]  # (F)
        for j in range(F):
            xh_x[j] = x_r[j]
            x1_x[j] = x_r[j]


@njit(**HELPER)
def _gru_state_rows(xh, x1, h1, h, b0, b1, F):
    """Set up the step buffers' constant and state columns from ``h`` (B, H)."""
    inline_into_callers()
    H = h.shape[1]
    for r in range(b1 - b0):
        xh[r, F] = 1
        x1[r, F] = 1
        h1[r, 0] = 1
        xh_h, h1_h, h_r = xh[r, F + 1:], h1[r, 1:], h[b0 + r]  # (H)
        for j in range(H):
            xh_h[j] = h_r[j]
            h1_h[j] = h_r[j]


@njit(**KERNEL)
def _gru_forward_shard(s, b0, b1, blas, x, p_rz, p_hn, p_xn, lengths, hs, gates):
    arguments_do_not_alias()
    use_wide_vectors()
    # x: (T, B, F), p_rz/p_hn/p_xn: `gru_panels`, hs: (T+1, B, H),
    # gates: (T, B, 4H) receives r, z, n and W_hn h + b_hn
    T, F = x.shape[0], x.shape[2]
    H, rows = hs.shape[2], b1 - b0
    xh = np.empty((rows, F + 1 + H), x.dtype)  # [x_t, 1, h_{t-1}]
    x1 = np.empty((rows, F + 1), x.dtype)  # [x_t, 1]
    h1 = np.empty((rows, 1 + H), x.dtype)  # [1, h_{t-1}]
    z_rz = np.empty((rows, 2 * H), x.dtype)  # (rows, 2H) halved pre-activations of r, z
    z_hn = np.empty((rows, H), x.dtype)  # (rows, H) W_hn h + b_hn
    z_xn = np.empty((rows, H), x.dtype)  # (rows, H) W_in x + b_in
    _gru_state_rows(xh, x1, h1, hs[0], b0, b1, F)
    for t in range(T):
        _gru_step_rows(xh, x1, x, t, b0, b1, False, lengths, False)
        packed_gemm(blas, xh, p_rz, z_rz)
        packed_gemm(blas, h1, p_hn, z_hn)
        packed_gemm(blas, x1, p_xn, z_xn)
        for r in range(b1 - b0):
            b = b0 + r
            h_prev, h_next, g = hs[t, b], hs[t + 1, b], gates[t, b]  # (H), (H), (4H)
            if t < lengths[b]:
                rz_r, hn_r, xn_r = z_rz[r], z_hn[r], z_xn[r]  # (2H), (H), (H)
                xh_h, h1_h = xh[r, F + 1:], h1[r, 1:]  # (H)
                for j in range(H):
                    reset = sigmoid_from_tanh(tanh(rz_r[j]))
                    update = sigmoid_from_tanh(tanh(rz_r[H + j]))
                    hn = hn_r[j]
                    n = tanh(xn_r[j] + reset * hn)
                    h_j = n + update * (h_prev[j] - n)  # (1 - z) * n + z * h
                    g[j], g[H + j], g[2 * H + j], g[3 * H + j] = reset, update, n, hn
                    h_next[j] = h_j
                    xh_h[j] = h_j
                    h1_h[j] = h_j
            else:  # past this row's end: carry the state
                for j in range(H):
                    h_next[j] = h_prev[j]
                for j in range(4 * H):
                    g[j] = 0


@njit(**KERNEL)
def _gru_inference_shard(s, b0, b1, blas, x, p_rz, p_hn, p_xn, lengths, reverse, h, out,
                         column):
    arguments_do_not_alias()
    use_wide_vectors()
    # x: (B, T, F) batch-first, p_rz/p_hn/p_xn: `gru_panels`, h: (B, H),
    # out: (B, T, W) written in columns [column, column + H), or (0, 0, 0): not kept
    T, F = x.shape[1], x.shape[2]
    H, rows = h.shape[1], b1 - b0
    keep = out.shape[0] > 0
    xh = np.empty((rows, F + 1 + H), x.dtype)
    x1 = np.empty((rows, F + 1), x.dtype)
    h1 = np.empty((rows, 1 + H), x.dtype)
    z_rz = np.empty((rows, 2 * H), x.dtype)
    z_hn = np.empty((rows, H), x.dtype)
    z_xn = np.empty((rows, H), x.dtype)
    _gru_state_rows(xh, x1, h1, h, b0, b1, F)
    for t in range(T):
        _gru_step_rows(xh, x1, x, t, b0, b1, reverse, lengths, True)
        packed_gemm(blas, xh, p_rz, z_rz)
        packed_gemm(blas, h1, p_hn, z_hn)
        packed_gemm(blas, x1, p_xn, z_xn)
        for r in range(b1 - b0):
            b = b0 + r
            n_steps = lengths[b]
            if t < n_steps:  # the cell, in place on the next step's h
                rz_r, hn_r, xn_r = z_rz[r], z_hn[r], z_xn[r]  # (2H), (H), (H)
                xh_h, h1_h = xh[r, F + 1:], h1[r, 1:]  # (H)
                for j in range(H):
                    reset = sigmoid_from_tanh(tanh(rz_r[j]))
                    update = sigmoid_from_tanh(tanh(rz_r[H + j]))
                    n = tanh(xn_r[j] + reset * hn_r[j])
                    h_j = n + update * (xh_h[j] - n)  # (1 - z) * n + z * h
                    xh_h[j] = h_j
                    h1_h[j] = h_j
                if keep:  # the output belongs to the step that was read
                    out_r = out[b, n_steps - 1 - t if reverse else t, column:column + H]  # (H)
                    for j in range(H):
                        out_r[j] = xh_h[j]
            elif keep:
                out_r = out[b, t, column:column + H]  # (H)
                for j in range(H):
                    out_r[j] = 0
    for r in range(b1 - b0):  # the state at each row's last valid step
        xh_h, h_r = xh[r, F + 1:], h[b0 + r]  # (H)
        for j in range(H):
            h_r[j] = xh_h[j]


@njit(**HELPER)
def _gru_cell_backward(reset, update, n, hn, h_prev, dh, d_r, d_z, d_hn, d_n, dh_direct):
    """Backward of the GRU cell (see `_gru_forward_shard`) for one row at one
    step, each argument (H,): reset, update, n, hn as the forward kept them;
    dh the gradient w.r.t. h_t (output gradient included). Writes the
    gradients w.r.t. the pre-activations of r and z, of n's h-part
    (d_hn = d_n * r) and x-part (d_n), and dh_direct = dh * z, the part of
    d(h_{t-1}) that bypasses the gates."""
    inline_into_callers()
    use_wide_vectors()
    arguments_do_not_alias()
    for j in range(dh.shape[0]):
        dh_j, r_j, z_j, n_j = dh[j], reset[j], update[j], n[j]
        dn_pre = (dh_j - dh_j * z_j) * tanh_grad(n_j)
        d_r[j] = dn_pre * hn[j] * sigmoid_grad(r_j)
        d_z[j] = dh_j * (h_prev[j] - n_j) * sigmoid_grad(z_j)
        d_hn[j] = dn_pre * r_j
        d_n[j] = dn_pre
        dh_direct[j] = dh_j * z_j


@njit(**KERNEL)
def _gru_backward_shard(s, b0, b1, blas, d_hs, d_h_n, p_rec, lengths, hs, gates, d_pre, d_h0,
                        inputs, parts, chunk_steps, d3_chunks, dn_chunks, xh_chunks):
    arguments_do_not_alias()
    use_wide_vectors()
    # d_hs: (T, B, H), or (0, B, H): no output gradient; d_h_n/d_h0: (B, H),
    # p_rec: `pack_panels` of [W_hr; W_hz; W_hn] (3H, H), hs: (T+1, B, H),
    # gates: (T, B, 4H) from the forward; d_pre: (T, B, 3H) receives the gradient of
    # W_ih x + b_ih, or (0, B, 3H): not wanted; inputs: (T, B, F); parts:
    # (P, F+1+H, 4H), columns r, z, hn, n: block s adds the products of its rows;
    # d3_chunks (P, steps*rows, 3H), dn_chunks (P, steps*rows, H), xh_chunks
    # (P, steps*rows, F+1+H): block s's working rows (`_backward_chunks`)
    T, H, F = gates.shape[0], d_h_n.shape[1], inputs.shape[2]
    rows = b1 - b0
    steps = chunk_steps
    dh = d_h_n[b0:b1].copy()  # (rows, H) gradient flowing into h_t
    dh_total = np.empty_like(dh)  # (rows, H) dh plus the output gradient
    dh_direct = np.empty_like(dh)  # (rows, H) dh_total * z
    dh_rec = np.empty_like(dh)  # (rows, H)
    no_d_out = np.zeros_like(dh)
    d3_chunk = d3_chunks[s, :steps * rows]  # (steps*rows, 3H) [d_r, d_z, d_hn] of the chunk
    dn_chunk = dn_chunks[s, :steps * rows]  # (steps*rows, H) d_n of the chunk
    xh_chunk = xh_chunks[s, :steps * rows]  # (steps*rows, F+1+H) [x_t, 1, h_{t-1}]
    part = parts[s]  # (F+1+H, 4H)
    for i in range(part.shape[0]):
        part[i] = 0
    for t in range(T - 1, -1, -1):
        slot = t % steps
        d3 = d3_chunk[slot * rows:(slot + 1) * rows]  # (rows, 3H)
        dn = dn_chunk[slot * rows:(slot + 1) * rows]  # (rows, H)
        d_out = d_hs[t, b0:b1] if d_hs.shape[0] > 0 else no_d_out  # (rows, H)
        for r in range(rows):
            b, d3_r, dn_r = b0 + r, d3[r], dn[r]  # (3H), (H)
            if t < lengths[b]:
                g_r, total_r, dh_r, d_out_r = gates[t, b], dh_total[r], dh[r], d_out[r]
                for j in range(H):
                    total_r[j] = dh_r[j] + d_out_r[j]
                _gru_cell_backward(g_r[:H], g_r[H:2 * H], g_r[2 * H:3 * H], g_r[3 * H:],
                                   hs[t, b], total_r, d3_r[:H], d3_r[H:2 * H], d3_r[2 * H:],
                                   dn_r, dh_direct[r])
            else:
                for j in range(3 * H):
                    d3_r[j] = 0
                for j in range(H):
                    dn_r[j] = 0
        packed_gemm(blas, d3, p_rec, dh_rec)
        for r in range(rows):
            if t < lengths[b0 + r]:  # rows past their length keep their dh
                dh_r, rec_r, direct_r = dh[r], dh_rec[r], dh_direct[r]  # (H)
                for j in range(H):
                    dh_r[j] = rec_r[j] + direct_r[j]
        if d_pre.shape[0] > 0:
            for r in range(rows):
                d3_r, dn_r, d_pre_r = d3[r], dn[r], d_pre[t, b0 + r]  # (3H), (H), (3H)
                for j in range(2 * H):
                    d_pre_r[j] = d3_r[j]
                for j in range(H):
                    d_pre_r[2 * H + j] = dn_r[j]
        xh = xh_chunk[slot * rows:(slot + 1) * rows]  # (rows, F+1+H)
        for r in range(rows):
            xh_x, x_r = xh[r, :F], inputs[t, b0 + r]  # (F)
            for j in range(F):
                xh_x[j] = x_r[j]
            xh[r, F] = 1
            xh_h, h_r = xh[r, F + 1:], hs[t, b0 + r]  # (H) h_{t-1}
            for j in range(H):
                xh_h[j] = h_r[j]
        if slot == 0:  # the chunk is complete (the first one may be short)
            m = min(steps, T - t) * rows
            gemm_add(blas, xh_chunk[:m].T, d3_chunk[:m, :2 * H], part[:, :2 * H])
            gemm_add(blas, xh_chunk[:m, F:].T, d3_chunk[:m, 2 * H:], part[F:, 2 * H:3 * H])
            gemm_add(blas, xh_chunk[:m, :F + 1].T, dn_chunk[:m], part[:F + 1, 3 * H:])
    for r in range(rows):
        dh_r, d_h0_r = dh[r], d_h0[b0 + r]  # (H)
        for j in range(H):
            d_h0_r[j] = dh_r[j]


def gru_forward_sweep(x, w_ih, w_hh, b_ih, b_hh, lengths, hs, gates):
    """Run one GRU direction over all timesteps, keeping what backward needs.

    Parameters
    ----------
    x : (T, B, F) layer input, time-major
    w_ih, w_hh : (3H, F), (3H, H) torch.nn.GRU's weights, gates r, z, n
    b_ih, b_hh : (3H,) its biases
    lengths : (B,) int64, valid steps per row
    hs : (T + 1, B, H) ``hs[0]`` the initial state on entry; ``hs[t + 1]``
        receives the state after step t
    gates : (T, B, 4H) receives r, z, n and ``W_hn h_{t-1} + b_hn`` (zero past a
        row's length), for `gru_backward`
    """
    run_blocks(_gru_forward_shard, sweep_bounds(hs.shape[1], gates.shape[2], x.itemsize),
               gemm_address(x.dtype), x, *gru_panels(w_ih, w_hh, b_ih, b_hh, "gru forward"),
               lengths, hs,
               gates)


def gru_inference_sweep(x, w_ih, w_hh, b_ih, b_hh, lengths, h, out=None, column=0,
                        reverse=False):
    """Forward only, batch-first, as `lstm_inference_sweep`: keeps the running
    state, not every step's activations, and reads and writes the layer's
    batch-first arrays directly.

    Parameters
    ----------
    x : (B, T, F) layer input, batch-first, C-contiguous
    w_ih, w_hh, b_ih, b_hh, lengths : as in `gru_forward_sweep`
    h : (B, H) initial state on entry, state at each row's last valid step on exit
    out : (B, T, W) or None
        Receives the hidden state of every step in columns ``[column, column + H)``,
        zero past a row's length. None: not kept.
    reverse : bool
        Read each row from its last valid step back to its first.
    """
    if out is None:
        out = np.empty((0, 0, 0), x.dtype)
    x = np.ascontiguousarray(x)
    run_blocks(_gru_inference_shard, sweep_bounds(h.shape[0], 4 * h.shape[1], x.itemsize),
               gemm_address(x.dtype), x, *gru_panels(w_ih, w_hh, b_ih, b_hh, "gru inference"),
               lengths,
               bool(reverse), h, out, int(column))


def gru_backward(d_hs, d_h_n, w_hh, lengths, hs, gates, inputs, d_pre, d_h0):
    """Backpropagate one GRU direction through time, with its weight gradients.

    Parameters
    ----------
    d_hs : (T, B, H) or None
        Gradient w.r.t. this direction's outputs (None: only the final state
        reaches the loss).
    d_h_n : (B, H) gradient w.r.t. the final state
    w_hh : (3H, H) recurrent weights
    lengths : as in `gru_forward_sweep`
    hs, gates : saved by `gru_forward_sweep`
    inputs : (T, B, F) the layer's input, time-major
    d_pre : (T, B, 3H) or None
        Receives the gradient of ``W_ih x_t + b_ih`` (for the input gradient,
        ``d_pre @ W_ih``); None: not wanted.
    d_h0 : (B, H) receives the gradient w.r.t. the initial state

    Returns
    -------
    d_w_ih : (3H, F), d_w_hh : (3H, H), d_b_ih : (3H,), d_b_hh : (3H,)
    """
    (_, B, F), (H, dtype) = inputs.shape, (d_h_n.shape[1], d_h_n.dtype)
    bounds = sweep_bounds(B, 4 * H, d_h_n.itemsize)
    if d_pre is None:
        d_pre = np.empty((0, B, 3 * H), dtype)
    parts = np.empty((len(bounds) - 1, F + 1 + H, 4 * H), dtype)  # (P, F+1+H, 4H)
    rows = _largest_block(B, 4 * H, d_h_n.itemsize)
    steps = -(-WEIGHT_CHUNK_ROWS // rows)
    run_blocks(_gru_backward_shard, bounds, gemm_address(dtype), _output_grad_array(d_hs, d_h_n),
               d_h_n, _panels("gru backward", np.ascontiguousarray(w_hh)), lengths, hs, gates,
               d_pre, d_h0, inputs, parts, steps,
               *_backward_chunks(len(bounds) - 1, steps * rows, dtype, (3 * H, H, F + 1 + H)))
    total = parts[0]
    for part in parts[1:]:  # in block order: the same bits for any thread count
        total += part
    x_rows, bias, h_rows = total[:F], total[F], total[F + 1:]  # columns r, z, hn, n
    d_w_ih = np.concatenate([x_rows[:, :2 * H], x_rows[:, 3 * H:]], axis=1).T
    d_w_hh = h_rows[:, :3 * H].T
    d_b_ih = np.concatenate([bias[:2 * H], bias[3 * H:]])
    d_b_hh = bias[:3 * H].copy()
    return np.ascontiguousarray(d_w_ih), np.ascontiguousarray(d_w_hh), d_b_ih, d_b_hh
