"""Array plumbing on the GPU, with the functions and signatures of
`nlstm.kernels.plumbing.cpu_arrays`: allocation, layout changes, the head's products,
dropout masks, regularisation and the optimizer steps, as numba.cuda kernels.

With these the layer, the network and the optimizers keep parameters,
activations, gradients and optimizer state on the device for a whole ``fit``.
Only the edges cross the bus: the parameters once each way per fit, each
batch's inputs and lengths up, the head's output ``(B, n_outputs)`` down and its
loss gradient up, and one scalar per gradient-norm or penalty.

Element-wise kernels run one thread per element over the array's flat view
(every array here is C-contiguous). Scalars are passed in the arrays' own
dtype, so float32 kernels do float32 arithmetic only.
"""
import math

import numpy as np
from numba import cuda

from . import cuda_device
from .cuda_device import (
    ELEMENTWISE,
    blocks_for,
    column_sums_kernel,
    flat_view,
    gemm,
    on_device,
    per_dtype,
)

REDUCE_THREADS = 4 * ELEMENTWISE  # partial sums of a reduction, summed in a fixed order


# --------------------------------------------------------------------------
# host/device edges
# --------------------------------------------------------------------------
def to_device(array):
    """``array`` on the GPU (a device array is returned as it is)."""
    return cuda_device.to_device(array)


def to_host(array):
    """``array`` as a NumPy array (copied from the GPU if it is there)."""
    return array.copy_to_host() if on_device(array) else np.asarray(array)


# --------------------------------------------------------------------------
# allocation and copies
# --------------------------------------------------------------------------


def empty(shape, dtype):
    return cuda.device_array(shape, dtype)


def zeros(shape, dtype):
    return cuda_device.zeros(shape, dtype)


def copy(array):
    out = cuda.device_array(array.shape, array.dtype)
    out.copy_to_device(array)
    return out


def assign(target, source):
    """``target[...] = source``: same shape, both contiguous."""
    target.copy_to_device(source)


# --------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------
@cuda.jit
def _swap_leading_axes_kernel(x, out):
    # x: (A, B, C) -> out: (B, A, C); one thread per element
    i = cuda.grid(1)
    A, B, C = x.shape[0], x.shape[1], x.shape[2]
    if i < A * B * C:
        a, rest = i // (B * C), i % (B * C)
        b, c = rest // C, rest % C
        out[b, a, c] = x[a, b, c]


def swap_leading_axes(x):
    """(A, B, C) -> (B, A, C): batch-major <-> time-major."""
    out = cuda.device_array((x.shape[1], x.shape[0], x.shape[2]), x.dtype)
    if x.size:
        _swap_leading_axes_kernel[blocks_for(x.size), ELEMENTWISE](x, out)
    return out


@cuda.jit
def _copy_columns_kernel(src, src_start, dst, dst_start, width):
    # dst[:, :, dst_start + j] = src[:, :, src_start + j] for j < width; (T, B, *)
    i = cuda.grid(1)
    T, B = src.shape[0], src.shape[1]
    if i < T * B * width:
        t, rest = i // (B * width), i % (B * width)
        b, j = rest // width, rest % width
        dst[t, b, dst_start + j] = src[t, b, src_start + j]


def _copy_columns(src, src_start, dst, dst_start, width):
    n = src.shape[0] * src.shape[1] * width
    if n:
        _copy_columns_kernel[blocks_for(n), ELEMENTWISE](src, src_start, dst, dst_start, width)


def take_columns(x, start, stop):
    """``x[:, :, start:stop]`` as a C-contiguous array."""
    out = cuda.device_array((x.shape[0], x.shape[1], stop - start), x.dtype)
    _copy_columns(x, start, out, 0, stop - start)
    return out


def concat_columns(parts):
    """Arrays (T, B, W_i) side by side: (T, B, sum W_i)."""
    T, B = parts[0].shape[0], parts[0].shape[1]
    out = cuda.device_array((T, B, sum(p.shape[2] for p in parts)), parts[0].dtype)
    start = 0
    for part in parts:
        _copy_columns(part, 0, out, start, part.shape[2])
        start += part.shape[2]
    return out


@cuda.jit
def _stack_weights_kernel(w_ih, w_hh, b_ih, b_hh, out):
    # w_ih: (GH, F), w_hh: (GH, H), b_ih, b_hh: (GH,) -> out: (F + H + 1, GH)
    i = cuda.grid(1)
    rows, GH = out.shape[0], out.shape[1]
    F = w_ih.shape[1]
    if i < rows * GH:
        r, g = i // GH, i % GH
        if r < F:
            out[r, g] = w_ih[g, r]
        elif r < rows - 1:
            out[r, g] = w_hh[g, r - F]
        else:
            out[r, g] = b_ih[g] + b_hh[g]


def stack_weights(w_ih, w_hh, b_ih, b_hh):
    """``[W_ih^T; W_hh^T; b_ih + b_hh]``: (F + H + 1, GH)."""
    GH, F, H = w_ih.shape[0], w_ih.shape[1], w_hh.shape[1]
    out = cuda.device_array((F + H + 1, GH), w_ih.dtype)
    _stack_weights_kernel[blocks_for(out.size), ELEMENTWISE](w_ih, w_hh, b_ih, b_hh, out)
    return out


@cuda.jit
def _final_features_kernel(h_n, n_directions, out, to_features):
    # h_n: (L*D, B, H) <-> out: (B, D*H), the top layer's D states side by side;
    # to_features: out <- h_n, else h_n <- out (the gradient's way back)
    i = cuda.grid(1)
    B, H = h_n.shape[1], h_n.shape[2]
    if i < B * n_directions * H:
        b, rest = i // (n_directions * H), i % (n_directions * H)
        d, j = rest // H, rest % H
        state = h_n.shape[0] - n_directions + d
        if to_features:
            out[b, rest] = h_n[state, b, j]
        else:
            h_n[state, b, j] = out[b, rest]


def final_features(h_n, n_directions):
    """The top layer's final states side by side: h_n (L*D, B, H) -> (B, D*H)."""
    B, H = h_n.shape[1], h_n.shape[2]
    out = cuda.device_array((B, n_directions * H), h_n.dtype)
    _final_features_kernel[blocks_for(out.size), ELEMENTWISE](h_n, n_directions, out, True)
    return out


def final_state_grad(d_features, n_states, n_directions):
    """Inverse of `final_features` for gradients: (B, D*H) -> (L*D, B, H),
    zero for every layer but the top one."""
    B, width = d_features.shape[0], d_features.shape[1]
    d_h_n = zeros((n_states, B, width // n_directions), d_features.dtype)
    _final_features_kernel[blocks_for(d_features.size), ELEMENTWISE](
        d_h_n, n_directions, d_features, False)
    return d_h_n


# --------------------------------------------------------------------------
# element-wise
# --------------------------------------------------------------------------
@cuda.jit
def _add_kernel(target, other):
    # target, other: (N,)
    i = cuda.grid(1)
    if i < target.shape[0]:
        target[i] += other[i]


@cuda.jit
def _multiply_kernel(target, other):
    # target, other: (N,)
    i = cuda.grid(1)
    if i < target.shape[0]:
        target[i] *= other[i]


def add_into(target, other):
    if target.size:
        _add_kernel[blocks_for(target.size), ELEMENTWISE](flat_view(target), flat_view(other))


def multiply_into(target, other):
    if target.size:
        _multiply_kernel[blocks_for(target.size), ELEMENTWISE](flat_view(target), flat_view(other))


def multiply(a, b):
    out = copy(a)
    multiply_into(out, b)
    return out


@per_dtype
def _dropout_mask_kernel(scalar):
    """``out[i] = scale`` if ``hash(i, seed) < threshold``, else 0."""
    zero = scalar(0)

    @cuda.jit
    def kernel(seed_lo, seed_hi, threshold, scale, out):
        # out: (N,). The hash is two rounds of a 32-bit integer mixer (multipliers
        # below 2**31, so every product fits in int64 on the GPU and in Python
        # alike): a counter-based generator, so a mask needs no RNG state.
        i = cuda.grid(1)
        if i < out.shape[0]:
            x = (i ^ seed_lo) & 0xFFFFFFFF
            x ^= x >> 16
            x = (x * 0x7FEB352D) & 0xFFFFFFFF
            x ^= x >> 15
            x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
            x ^= x >> 16
            x ^= seed_hi
            x = (x * 0x297A2D39) & 0xFFFFFFFF
            x ^= x >> 15
            x = (x * 0x7FEB352D) & 0xFFFFFFFF
            x ^= x >> 16
            out[i] = scale if x < threshold else zero

    return kernel


def dropout_mask(shape, keep, rng, dtype):
    """Inverted-dropout mask: 1/keep with probability ``keep``, else 0. Its
    seed is drawn from ``rng`` (a `numpy.random.RandomState`), the bits on the
    device; the masks differ from the CPU's, their distribution does not."""
    dtype = np.dtype(dtype)
    seed_lo, seed_hi = (int(s) for s in rng.randint(0, 2 ** 31, size=2))
    out = cuda.device_array(tuple(shape), dtype)
    threshold = min(int(keep * 2.0 ** 32), 2 ** 32)
    if out.size:
        _dropout_mask_kernel(dtype)[blocks_for(out.size), ELEMENTWISE](
            seed_lo, seed_hi, threshold, dtype.type(1) / dtype.type(keep), flat_view(out))
    return out


# --------------------------------------------------------------------------
# the head: token embedding and linear layer
# --------------------------------------------------------------------------
@cuda.jit
def _embedding_lookup_kernel(table, ids, out):
    # table: (V, E), ids: (B, T), out: (B, T, E)
    i = cuda.grid(1)
    B, T, E = out.shape[0], out.shape[1], out.shape[2]
    if i < B * T * E:
        b, rest = i // (T * E), i % (T * E)
        t, e = rest // E, rest % E
        out[b, t, e] = table[ids[b, t], e]


@cuda.jit
def _embedding_grad_kernel(ids, lengths, d_x, d_table):
    # d_table[ids[b, t]] += d_x[b, t] over valid steps; atomics, as several
    # steps can hold the same token
    i = cuda.grid(1)
    B, T, E = d_x.shape[0], d_x.shape[1], d_x.shape[2]
    if i < B * T * E:
        b, rest = i // (T * E), i % (T * E)
        t, e = rest // E, rest % E
        if t < lengths[b]:
            cuda.atomic.add(d_table, (ids[b, t], e), d_x[b, t, e])


def embedding_lookup(table, ids):
    """table (V, E), ids (B, T) -> (B, T, E)."""
    B, T = ids.shape[0], ids.shape[1]
    out = cuda.device_array((B, T, table.shape[1]), table.dtype)
    _embedding_lookup_kernel[blocks_for(out.size), ELEMENTWISE](table, ids, out)
    return out


def embedding_grad(table_shape, ids, lengths, d_x):
    """Gradient of the embedding table: ``d_x[b, t]`` summed into row
    ``ids[b, t]`` over valid steps (in the order the atomics land)."""
    d_table = zeros(tuple(table_shape), d_x.dtype)
    _embedding_grad_kernel[blocks_for(d_x.size), ELEMENTWISE](ids, lengths, d_x, d_table)
    return d_table


def linear(x, weight, bias):
    """``x @ weight + bias``; x (..., K), weight (K, M), bias (M,)."""
    shape = tuple(x.shape)  # the simulator's shapes take no negative indices
    rows = x.size // shape[-1]
    out = cuda.device_array((rows, weight.shape[1]), x.dtype)
    gemm(x.reshape(rows, shape[-1]), weight, out, bias=bias)
    return out.reshape(shape[:-1] + (weight.shape[1],))


def linear_grads(x, d_z, weight):
    """Gradients of `linear`: ``(d_weight, d_bias, d_x)``."""
    K, M = weight.shape
    rows = x.size // K
    x2, d_z2 = x.reshape(rows, K), d_z.reshape(rows, M)
    d_weight = cuda.device_array((K, M), x.dtype)
    gemm(x2, d_z2, d_weight, transpose_a=True)               # x^T @ d_z
    d_bias = cuda.device_array(M, x.dtype)
    column_sums_kernel(x.dtype)[blocks_for(M), ELEMENTWISE](d_z2, d_bias)
    weight_t = swap_leading_axes(weight.reshape(K, M, 1)).reshape(M, K)
    d_x = cuda.device_array((rows, K), x.dtype)
    gemm(d_z2, weight_t, d_x)                                # d_z @ W^T
    return d_weight, d_bias, d_x.reshape(tuple(x.shape))


# --------------------------------------------------------------------------
# regularisation, gradient norm, optimizer steps (in place)
# --------------------------------------------------------------------------
@per_dtype
def _partial_sum_squares_kernel(scalar):
    """Strided partial sums of ``(x * mask)**2``."""
    zero = scalar(0)

    @cuda.jit
    def kernel(x, mask, use_mask, partials):
        # partials[k] = sum of (x * mask)**2 over i = k, k + K, ...; x, mask: (N,)
        k = cuda.grid(1)
        if k < partials.shape[0]:
            acc = zero
            for i in range(k, x.shape[0], partials.shape[0]):
                v = x[i] * mask[i] if use_mask else x[i]
                acc += v * v
            partials[k] = acc

    return kernel


def _sum_squares(x, mask):
    partials = cuda.device_array(REDUCE_THREADS, x.dtype)
    flat = flat_view(x)
    _partial_sum_squares_kernel(x.dtype)[blocks_for(REDUCE_THREADS), ELEMENTWISE](
        flat, flat if mask is None else flat_view(mask), mask is not None, partials)
    out = cuda.device_array(1, x.dtype)
    # the partials as one column, summed by one thread in index order: deterministic
    column_sums_kernel(x.dtype)[1, ELEMENTWISE](partials.reshape(REDUCE_THREADS, 1), out)
    return float(out.copy_to_host()[0])


def masked_sum_squares(p, mask):
    """``sum((p * mask)**2)`` as a float."""
    return _sum_squares(p, mask)


def sum_squares(g):
    """``sum(g**2)`` as a float."""
    return _sum_squares(g, None)


@cuda.jit
def _add_l2_grad_kernel(g, p, mask, alpha):
    i = cuda.grid(1)
    if i < g.shape[0]:
        g[i] += alpha * p[i] * mask[i]


def add_l2_grad(g, p, mask, alpha):
    """``g += alpha * p * mask``."""
    _add_l2_grad_kernel[blocks_for(g.size), ELEMENTWISE](
        flat_view(g), flat_view(p), flat_view(mask), g.dtype.type(alpha))


@cuda.jit
def _scale_kernel(g, factor):
    i = cuda.grid(1)
    if i < g.shape[0]:
        g[i] *= factor


def scale_into(g, factor):
    _scale_kernel[blocks_for(g.size), ELEMENTWISE](flat_view(g), g.dtype.type(factor))


@cuda.jit
def _sgd_step_kernel(p, g, velocity, learning_rate, momentum):
    i = cuda.grid(1)
    if i < p.shape[0]:
        v = velocity[i] * momentum - learning_rate * g[i]
        velocity[i] = v
        p[i] += v


def sgd_step(p, g, velocity, learning_rate, momentum):
    """Classical momentum: ``v = momentum*v - lr*g; p += v``."""
    s = p.dtype.type
    _sgd_step_kernel[blocks_for(p.size), ELEMENTWISE](
        flat_view(p), flat_view(g), flat_view(velocity), s(learning_rate), s(momentum))


@cuda.jit
def _adam_step_kernel(p, g, m, v, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, step,
                      v_correction, epsilon):
    i = cuda.grid(1)
    if i < p.shape[0]:
        gi = g[i]
        mi = m[i] * beta_1 + one_minus_beta_1 * gi
        vi = v[i] * beta_2 + one_minus_beta_2 * (gi * gi)
        m[i], v[i] = mi, vi
        p[i] -= step * mi / (math.sqrt(vi) * v_correction + epsilon)


def adam_step(p, g, m, v, beta_1, beta_2, step, v_correction, epsilon):
    """One Adam update of ``p`` with its moments ``m``, ``v``, as torch.optim.Adam:
    ``p -= step * m / (sqrt(v) * v_correction + epsilon)``."""
    s = p.dtype.type
    _adam_step_kernel[blocks_for(p.size), ELEMENTWISE](
        flat_view(p), flat_view(g), flat_view(m), flat_view(v), s(beta_1), s(1 - beta_1), s(beta_2),
        s(1 - beta_2), s(step), s(v_correction), s(epsilon))
