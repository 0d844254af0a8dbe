"""Output activations paired with their losses and the loss gradient w.r.t.
the head's raw output (the logits), in the style of scikit-learn's MLP.

Each ``*_loss`` function takes raw head outputs ``z`` and targets of the same
leading shape, averages over the rows given (valid items only), each row weighing its
``weights`` entry when given, and returns ``(loss, d_z)``.
"""
import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax


def _mean(values):
    """The mean of ``values`` as a float. ``np.mean`` took 8-10 us on the few
    values of a training batch (its argument handling); the sum 2 us."""
    return float(values.sum()) / values.size


def squared_error_loss(z, y, weights=None):
    """Half mean squared error: ``0.5 * mean(w * (z - y)**2)``; z, y: (n, k),
    weights: (n,) per row or None (all 1)."""
    diff = z - y
    if weights is None:
        return 0.5 * _mean(diff * diff), diff / diff.size
    weighted = diff * weights.astype(diff.dtype, copy=False)[:, None]
    return 0.5 * _mean(weighted * diff), weighted / diff.size


def binary_log_loss(z, y, weights=None):
    """Log loss of ``sigmoid(z)``; z: (n, 1) logits, y: (n, 1) in {0, 1},
    weights: (n,) per row or None."""
    # -[y log p + (1-y) log(1-p)] with log p = log_expit(z), log(1-p) = log_expit(-z)
    losses = y * log_expit(z) + (1 - y) * log_expit(-z)  # (n, 1), negated
    d_z = expit(z) - y
    if weights is not None:
        weights = weights.astype(z.dtype, copy=False)[:, None]  # (n, 1)
        losses, d_z = losses * weights, d_z * weights
    return -_mean(losses), d_z / z.shape[0]


def cross_entropy_loss(z, y, weights=None):
    """Cross-entropy of ``softmax(z)``; z: (n, K) logits, y: (n, K) one-hot,
    weights: (n,) per row or None."""
    losses = np.sum(y * log_softmax(z, axis=1), axis=1)  # (n,), negated
    d_z = softmax(z, axis=1) - y
    if weights is not None:
        weights = weights.astype(z.dtype, copy=False)  # (n,)
        losses, d_z = losses * weights, d_z * weights[:, None]
    return -_mean(losses), d_z / z.shape[0]


def binary_proba(z):
    p = expit(z[..., 0])
    return np.stack([1 - p, p], axis=-1)


def multiclass_proba(z):
    return softmax(z, axis=-1)


def binary_log_proba(z):
    """``log(binary_proba(z))`` without its rounding to 0 or 1 for large |z|."""
    return np.stack([log_expit(-z[..., 0]), log_expit(z[..., 0])], axis=-1)


def multiclass_log_proba(z):
    return log_softmax(z, axis=-1)
