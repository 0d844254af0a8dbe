"""Stochastic optimizers over a list of parameter arrays, updated in place.

As in scikit-learn's ``neural_network._stochastic_optimizers``: each optimizer
is an object with ``update_params(params, grads)``; the state (moments,
velocities) is kept per parameter array. The arithmetic of a step is in the
array-plumbing module of the parameters' device (`nlstm.kernels.plumbing.cpu_arrays`
or ``.cuda_arrays``); inside `resident` the state lives on that device too.
"""
from contextlib import ExitStack, contextmanager

import numpy as np

from ._device import device_copies
from .kernels.plumbing import cpu_arrays

_ARRAY_MODULES = ("nlstm.kernels.plumbing.cpu_arrays", "nlstm.kernels.plumbing.cuda_arrays")


class _Optimizer:
    """State handling shared by the optimizers: ``_state_names`` lists the
    attributes that hold one array per parameter."""

    _state_names = ()
    _device_arrays = None  # the array module of the device while `resident`

    @property
    def _arrays(self):
        return self._device_arrays or cpu_arrays

    @contextmanager
    def resident(self, arrays):
        """Keep the optimizer state on ``arrays``' device for the block (the
        parameters must be there too): copied there on entry and back into the
        host arrays on exit. With `nlstm.kernels.plumbing.cpu_arrays` nothing moves."""
        if getattr(arrays, "__name__", None) not in _ARRAY_MODULES:
            raise TypeError(f"arrays must be one of the modules {', '.join(_ARRAY_MODULES)} "
                            f"(nlstm._device.arrays_for(device) gives it), got {arrays!r}")
        if arrays is cpu_arrays:
            yield
            return
        host = {name: getattr(self, name) for name in self._state_names}
        with ExitStack() as copies:
            for name, arrays_of_name in host.items():
                setattr(self, name, copies.enter_context(device_copies(arrays, arrays_of_name)))
            self._device_arrays = arrays
            try:
                yield
            finally:  # the host lists come back before the copies are written into them
                for name, arrays_of_name in host.items():
                    setattr(self, name, arrays_of_name)
                self._device_arrays = None


class SGDOptimizer(_Optimizer):
    """SGD with (optionally Nesterov-free, classical) momentum.

    Parameters
    ----------
    params : list of ndarray
    learning_rate_init : float
    momentum : float in [0, 1)
    """

    _state_names = ("velocities",)

    def __init__(self, params, learning_rate_init=0.01, momentum=0.9):
        self.learning_rate = learning_rate_init
        self.momentum = momentum
        self.velocities = [np.zeros_like(p) for p in params]

    def update_params(self, params, grads):
        for p, g, v in zip(params, grads, self.velocities):
            self._arrays.sgd_step(p, g, v, self.learning_rate, self.momentum)


class AdamOptimizer(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam``.

    Parameters
    ----------
    params : list of ndarray
    learning_rate_init : float
    beta_1, beta_2, epsilon : float
    """

    _state_names = ("ms", "vs")

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
            self._arrays.adam_step(p, g, m, v, b1, b2, step, v_correction, self.epsilon)


def clip_grad_norm(grads, max_norm, arrays=cpu_arrays):
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    ``arrays`` is the array-plumbing module of the gradients' device. Returns
    the norm before clipping (non-finite if any gradient is).
    """
    norm = float(np.sqrt(sum(arrays.sum_squares(g) for g in grads)))
    if max_norm is not None and np.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            arrays.scale_into(g, scale)
    return norm
