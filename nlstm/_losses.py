"""Output activations paired with their losses and the loss gradient w.r.t.
the head's raw output (the logits), in the style of scikit-learn's MLP.

Each ``*_loss`` function takes raw head outputs ``z`` and targets of the same
leading shape, averages over the rows given (valid items only), and returns
``(loss, d_z)``.
"""
import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax


def identity(z):
    return z


def squared_error_loss(z, y):
    """Half mean squared error: ``0.5 * mean((z - y)**2)``; z, y: (n, k)."""
    diff = z - y
    return 0.5 * float(np.mean(diff * diff)), diff / diff.size


def binary_log_loss(z, y):
    """Log loss of ``sigmoid(z)``; z: (n, 1) logits, y: (n, 1) in {0, 1}."""
    # -[y log p + (1-y) log(1-p)] with log p = log_expit(z), log(1-p) = log_expit(-z)
    loss = -float(np.mean(y * log_expit(z) + (1 - y) * log_expit(-z)))
    return loss, (expit(z) - y) / z.shape[0]


def cross_entropy_loss(z, y):
    """Cross-entropy of ``softmax(z)``; z: (n, K) logits, y: (n, K) one-hot."""
    loss = -float(np.mean(np.sum(y * log_softmax(z, axis=1), axis=1)))
    return loss, (softmax(z, axis=1) - y) / z.shape[0]


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
