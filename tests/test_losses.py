"""`nlstm._losses`: every loss's gradient against central finite differences, with and
without sample weights, and the losses and probabilities against their definitions."""
import numpy as np
import pytest

from nlstm import _losses

LOSSES = ["squared_error_loss", "binary_log_loss", "cross_entropy_loss"]


def _problem(name, rng, n=7):
    """Logits z, targets y and per-row weights for the loss ``name`` (float64)."""
    if name == "squared_error_loss":
        z, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    elif name == "binary_log_loss":
        z, y = 3 * rng.normal(size=(n, 1)), rng.integers(0, 2, (n, 1)).astype(float)
    else:
        z, y = 3 * rng.normal(size=(n, 4)), np.eye(4)[rng.integers(0, 4, n)]
    return z, y, rng.uniform(0.1, 2.0, n)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences(name, weighted):
    loss_fn = getattr(_losses, name)
    rng = np.random.default_rng(0)
    z, y, weights = _problem(name, rng)
    weights = weights if weighted else None
    _, d_z = loss_fn(z, y, weights)
    eps = 1e-6
    numeric = np.empty_like(z)
    for index in np.ndindex(z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (loss_fn(plus, y, weights)[0] - loss_fn(minus, y, weights)[0]) / (2 * eps)
    np.testing.assert_allclose(d_z, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", LOSSES)
def test_unit_weights_equal_no_weights(name):
    loss_fn = getattr(_losses, name)
    z, y, _ = _problem(name, np.random.default_rng(1))
    unweighted, weighted = loss_fn(z, y), loss_fn(z, y, np.ones(len(z)))
    assert unweighted[0] == pytest.approx(weighted[0], rel=1e-15)
    np.testing.assert_allclose(unweighted[1], weighted[1], rtol=1e-15)


def test_losses_against_their_definitions():
    rng = np.random.default_rng(2)
    z, y, w = _problem("squared_error_loss", rng)
    assert _losses.squared_error_loss(z, y, w)[0] == pytest.approx(
        0.5 * np.mean(w[:, None] * (z - y) ** 2))
    z, y, w = _problem("binary_log_loss", rng)
    p = 1 / (1 + np.exp(-z))
    assert _losses.binary_log_loss(z, y, w)[0] == pytest.approx(
        -np.mean(w[:, None] * (y * np.log(p) + (1 - y) * np.log(1 - p))))
    z, y, w = _problem("cross_entropy_loss", rng)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert _losses.cross_entropy_loss(z, y, w)[0] == pytest.approx(
        -np.mean(w * np.sum(y * np.log(p), axis=1)))


def test_binary_log_loss_stays_finite_for_large_logits():
    z = np.array([[800.0], [-800.0]])
    loss, d_z = _losses.binary_log_loss(z, np.array([[0.0], [1.0]]))
    assert loss == pytest.approx(800.0) and np.all(np.isfinite(d_z))


def test_probabilities_and_their_logs():
    z = np.array([[-2.0], [0.0], [40.0]])
    proba = _losses.binary_proba(z)
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_allclose(np.exp(_losses.binary_log_proba(z)), proba, rtol=1e-12, atol=1e-15)
    assert _losses.binary_log_proba(z)[2, 0] == pytest.approx(-40.0, rel=1e-6)  # not log(0)
    z = np.random.default_rng(3).normal(size=(5, 3))
    np.testing.assert_allclose(_losses.multiclass_proba(z).sum(1), 1)
    np.testing.assert_allclose(np.exp(_losses.multiclass_log_proba(z)),
                               _losses.multiclass_proba(z), rtol=1e-12)
