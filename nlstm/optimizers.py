"""Stochastic optimizers over a list of parameter arrays, updated in place.

As in scikit-learn's ``neural_network._stochastic_optimizers``: each optimizer
is an object with ``update_params(params, grads)``; the state (moments,
velocities) is kept per parameter array.
"""
import numpy as np


class SGDOptimizer:
    """SGD with (optionally Nesterov-free, classical) momentum.

    Parameters
    ----------
    params : list of ndarray
    learning_rate_init : float
    momentum : float in [0, 1)
    """

    def __init__(self, params, learning_rate_init=0.01, momentum=0.9):
        self.learning_rate = learning_rate_init
        self.momentum = momentum
        self.velocities = [np.zeros_like(p) for p in params]

    def update_params(self, params, grads):
        for p, g, v in zip(params, grads, self.velocities):
            v *= self.momentum
            v -= self.learning_rate * g
            p += v


class AdamOptimizer:
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam``.

    Parameters
    ----------
    params : list of ndarray
    learning_rate_init : float
    beta_1, beta_2, epsilon : float
    """

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        self.learning_rate = learning_rate_init
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def update_params(self, params, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        step = self.learning_rate / (1 - b1 ** self.t)
        v_correction = 1.0 / np.sqrt(1 - b2 ** self.t)
        for p, g, m, v in zip(params, grads, self.ms, self.vs):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            denom = np.sqrt(v)
            denom *= v_correction
            denom += self.epsilon
            p -= step * m / denom


def clip_grad_norm(grads, max_norm):
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (non-finite if any gradient is).
    """
    norm = float(np.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads)))
    if max_norm is not None and np.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            g *= scale
    return norm
