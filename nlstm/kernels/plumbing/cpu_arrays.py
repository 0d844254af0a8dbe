"""Array plumbing on the host: allocation, layout changes, the head's products,
dropout masks, regularisation and the optimizer steps, as NumPy expressions
(Adam's step: one compiled loop).

`nlstm.kernels.plumbing.cuda_arrays` has the same function names and signatures and
keeps every array on the GPU. The layer, the network, the optimizers and the
estimators' training step call one of the two modules (`nlstm._device.arrays_for`),
so one piece of orchestration serves both devices.
"""
import numpy as np
from numba import njit

from ..codegen.blas import aligned_empty
from ..runtime.jit_options import EXACT_KERNEL


# --------------------------------------------------------------------------
# host/device edges (on the host: nothing to copy)
# --------------------------------------------------------------------------
def to_device(array):
    """``array`` as this device's array (the host: a NumPy array, no copy)."""
    return np.asarray(array)


def to_host(array):
    """``array`` as a NumPy array (the host: no copy)."""
    return np.asarray(array)


# --------------------------------------------------------------------------
# allocation and copies
# --------------------------------------------------------------------------
def empty(shape, dtype):
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def copy(array):
    return array.copy()


def assign(target, source):
    """``target[...] = source``: same shape."""
    target[...] = source


# --------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------
def swap_leading_axes(x):
    """(A, B, C) -> (B, A, C), C-contiguous: batch-major <-> time-major."""
    return np.ascontiguousarray(x.transpose(1, 0, 2))


def take_columns(x, start, stop):
    """``x[:, :, start:stop]`` as a C-contiguous array."""
    return np.ascontiguousarray(x[:, :, start:stop])


def concat_columns(parts):
    """Arrays (T, B, W_i) side by side: (T, B, sum W_i)."""
    return np.ascontiguousarray(np.concatenate(parts, axis=2))


def stack_weights(w_ih, w_hh, b_ih, b_hh):
    """``[W_ih^T; W_hh^T; b_ih + b_hh]``: (F + H + 1, GH), C order (the GEMMs
    of an F-ordered array round differently for different shard sizes),
    64-byte aligned as the kernels' BLAS wants its weights (`blas.aligned`),
    so the sweeps need no second copy."""
    bias = b_ih + b_hh
    stacked = aligned_empty((w_ih.shape[1] + w_hh.shape[1] + 1, bias.shape[0]), bias.dtype)
    return np.concatenate([w_ih.T, w_hh.T, bias[None, :]], out=stacked)


def final_features(h_n, n_directions):
    """The top layer's final states side by side: h_n (L*D, B, H) -> (B, D*H)
    (one direction: a view of h_n)."""
    if n_directions == 1:
        return h_n[-1]
    return np.concatenate(list(h_n[-n_directions:]), axis=1)


def final_state_grad(d_features, n_states, n_directions):
    """Inverse of `final_features` for gradients: (B, D*H) -> (L*D, B, H),
    zero for every layer but the top one."""
    B, width = d_features.shape
    H = width // n_directions
    d_h_n = np.zeros((n_states, B, H), d_features.dtype)
    d_h_n[-n_directions:] = d_features.reshape(B, n_directions, H).transpose(1, 0, 2)
    return d_h_n


# --------------------------------------------------------------------------
# element-wise
# --------------------------------------------------------------------------
def add_into(target, other):
    target += other


def multiply_into(target, other):
    target *= other


def multiply(a, b):
    return a * b


def dropout_mask(shape, keep, rng, dtype):
    """Inverted-dropout mask: 1/keep with probability ``keep``, else 0, drawn from
    ``rng`` (a `numpy.random.RandomState`)."""
    dtype = np.dtype(dtype)
    return (rng.random_sample(shape) < keep).astype(dtype) / dtype.type(keep)


# --------------------------------------------------------------------------
# the head: token embedding and linear layer
# --------------------------------------------------------------------------
def embedding_lookup(table, ids):
    """table (V, E), ids (B, T) -> (B, T, E)."""
    return table[ids]


def embedding_grad(table_shape, ids, lengths, d_x):
    """Gradient of the embedding table: ``d_x[b, t]`` summed into row
    ``ids[b, t]`` over valid steps. ids (B, T), lengths (B,), d_x (B, T, E)."""
    d_table = np.zeros(table_shape, d_x.dtype)
    valid = np.arange(ids.shape[1])[None, :] < lengths[:, None]  # (B, T)
    np.add.at(d_table, ids[valid], d_x[valid])
    return d_table


def linear(x, weight, bias):
    """``x @ weight + bias``; x (..., K), weight (K, M), bias (M,)."""
    return x @ weight + bias


def linear_grads(x, d_z, weight):
    """Gradients of `linear`: ``(d_weight, d_bias, d_x)``."""
    width = x.shape[-1]
    d_z2 = d_z.reshape(-1, d_z.shape[-1])
    return x.reshape(-1, width).T @ d_z2, d_z2.sum(axis=0), d_z @ weight.T


# --------------------------------------------------------------------------
# regularisation, gradient norm, optimizer steps (in place)
# --------------------------------------------------------------------------
def masked_sum_squares(p, mask):
    """``sum((p * mask)**2)`` as a float."""
    return float(np.sum((p * mask) ** 2))


def add_l2_grad(g, p, mask, alpha):
    """``g += alpha * p * mask``."""
    g += alpha * p * mask


def sum_squares(g):
    """``sum(g**2)`` as a float."""
    return float(np.dot(g.ravel(), g.ravel()))


def scale_into(g, factor):
    g *= factor


def sgd_step(p, g, velocity, learning_rate, momentum):
    """Classical momentum: ``v = momentum*v - lr*g; p += v``."""
    velocity *= momentum
    velocity -= learning_rate * g
    p += velocity


def _flat_view(array):
    """A C-contiguous ``array`` as 1-d: a view, so that a kernel writing to it
    writes to ``array`` (``reshape`` would copy any other layout)."""
    if not array.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous array, got strides {array.strides} "
                         f"for shape {array.shape}")
    return array.reshape(-1)


@njit(**EXACT_KERNEL)
def _adam_step_kernel(p, g, m, v, coefficients):
    # p, g, m, v: (n,) views of one parameter, its gradient and its moments
    # coefficients: (7,) beta_1, 1 - beta_1, beta_2, 1 - beta_2, step,
    # v_correction, epsilon, of their dtype.
    # (indexed one by one: unpacking slices compiled 10-15% slower)
    beta_1, one_minus_beta_1 = coefficients[0], coefficients[1]
    beta_2, one_minus_beta_2 = coefficients[2], coefficients[3]
    step, v_correction, epsilon = coefficients[4], coefficients[5], coefficients[6]
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * beta_1 + one_minus_beta_1 * gi
        vi = v[i] * beta_2 + one_minus_beta_2 * (gi * gi)
        m[i], v[i] = mi, vi
        p[i] -= step * mi / (np.sqrt(vi) * v_correction + epsilon)


def adam_step(p, g, m, v, beta_1, beta_2, step, v_correction, epsilon):
    """One Adam update of ``p`` with its moments ``m``, ``v``, as torch.optim.Adam:
    ``p -= step * m / (sqrt(v) * v_correction + epsilon)``.

    One compiled loop, the same arithmetic as ``cuda_arrays.adam_step``'s
    kernel (scalars rounded to the parameters' dtype first); faster than
    NumPy's 13 expressions on small models."""
    coefficients = np.array([beta_1, 1 - beta_1, beta_2, 1 - beta_2, step, v_correction,
                             epsilon], p.dtype)
    _adam_step_kernel(_flat_view(p), _flat_view(g), _flat_view(m), _flat_view(v), coefficients)
