"""The optimizers and the gradient clipping against torch.optim / torch.nn.utils,
step by step on the same parameters and gradients."""
import numpy as np
import pytest

from nlstm.kernels.plumbing import cpu_arrays
from nlstm.optimizers import AdamOptimizer, SGDOptimizer, clip_grad_norm

SHAPES = [(5, 7), (7,), (1,)]  # a weight matrix, a bias, a scalar-sized head bias
TOLERANCE = {np.float32: dict(rtol=2e-6, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}


def _parameters_and_gradients(dtype, n_steps, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-4, 1)).astype(dtype) for s in SHAPES]
             for _ in range(n_steps)]
    return params, grads


def _run_torch(torch, make_optimizer, params, grads):
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    optimizer = make_optimizer(tensors)
    for step in grads:
        for t, g in zip(tensors, step):
            t.grad = torch.tensor(g)
        optimizer.step()
    return [t.detach().numpy() for t in tensors]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_steps_match_torch(dtype):
    torch = pytest.importorskip("torch")
    params, grads = _parameters_and_gradients(dtype, n_steps=20)
    ours = [p.copy() for p in params]
    optimizer = AdamOptimizer(ours, learning_rate_init=0.01, beta_1=0.8, beta_2=0.99,
                              epsilon=1e-6)
    for step in grads:
        optimizer.update_params(ours, step)
    want = _run_torch(torch, lambda ts: torch.optim.Adam(ts, lr=0.01, betas=(0.8, 0.99),
                                                         eps=1e-6), params, grads)
    for got, expected, before in zip(ours, want, params):
        assert got.dtype == dtype
        assert not np.array_equal(got, before)
        np.testing.assert_allclose(got, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_momentum_steps_match_torch(dtype):
    torch = pytest.importorskip("torch")
    params, grads = _parameters_and_gradients(dtype, n_steps=20)
    ours = [p.copy() for p in params]
    optimizer = SGDOptimizer(ours, learning_rate_init=0.05, momentum=0.9)
    for step in grads:
        optimizer.update_params(ours, step)
    want = _run_torch(torch, lambda ts: torch.optim.SGD(ts, lr=0.05, momentum=0.9),
                      params, grads)
    for got, expected in zip(ours, want):
        np.testing.assert_allclose(got, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("max_norm", [None, 0.5, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    _, (grads,) = _parameters_and_gradients(np.float64, n_steps=1)
    grads = [g * 100 for g in grads]
    ours = [g.copy() for g in grads]
    norm = clip_grad_norm(ours, max_norm)
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    want_norm = torch.nn.utils.clip_grad_norm_(tensors, np.inf if max_norm is None else max_norm)
    assert norm == pytest.approx(float(want_norm), rel=1e-12)
    for got, t in zip(ours, tensors):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-6)


def test_adam_step_writes_through_to_the_arrays_or_refuses():
    """The compiled step works on 1-d views: it must update the caller's
    arrays, and an array it could only see as a copy is refused."""
    p, g = np.ones((3, 4)), np.full((3, 4), 0.5)
    m, v = np.zeros_like(p), np.zeros_like(p)
    cpu_arrays.adam_step(p, g, m, v, 0.9, 0.999, 0.1, 1 / np.sqrt(1 - 0.999), 1e-8)
    np.testing.assert_allclose(m, 0.05)
    np.testing.assert_allclose(p, 1 - 0.1 * 0.05 / (np.sqrt(0.00025) / np.sqrt(0.001) + 1e-8))
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu_arrays.adam_step(np.ones((4, 3)).T, g, m, v, 0.9, 0.999, 0.1, 1.0, 1e-8)
