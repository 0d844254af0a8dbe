"""The float64 tanh of the kernels against the C library's (NumPy's ``np.tanh``),
and the derivatives' arithmetic type.

(The float32 approximation is tested against PyTorch in ``test_layer_torch_parity.py``.)
"""
import numpy as np
import pytest
from numba import njit, typeof, types

from nlstm.kernels.activations import sigmoid_grad, tanh, tanh_grad
from nlstm.kernels.codegen.vector_width import use_wide_vectors
from nlstm.kernels.runtime.jit_options import HELPER as HELPER_OPTIONS


@njit(**HELPER_OPTIONS)
def _tanh_loop(x, out):
    # compiled as the kernels' loops are: a vector body and a scalar remainder
    use_wide_vectors()
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


def tanh_of(x):
    out = np.empty_like(x)
    _tanh_loop(x, out)
    return out


def ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


@pytest.mark.parametrize("offset", [0, 1, 5])  # shifts which values fall in the remainder
def test_float64_tanh_within_3_ulp_of_the_c_library(offset):
    tiny = np.geomspace(1e-300, 1.0, 20_001)
    x = np.concatenate([np.linspace(-25, 25, 400_001), tiny, -tiny,
                        np.linspace(0.3, 0.4, 10_001),  # around 2|x| = ln2 / 2: n steps
                        [19.999, 20.0, 20.001, 1e300, -1e300]])[offset:]
    got, want = tanh_of(x), np.tanh(x)
    nonzero = want != 0
    assert ulps(got[nonzero], want[nonzero]).max() <= 3
    assert np.all(np.abs(got) <= 1)
    np.testing.assert_array_equal(np.sign(got), np.sign(x))


def test_float64_tanh_special_values():
    x = np.array([0.0, np.inf, -np.inf, np.nan, -np.nan, 50.0, -50.0])
    got = tanh_of(x)
    np.testing.assert_array_equal(got[:3], [0.0, 1.0, -1.0])
    assert np.isnan(got[3]) and np.isnan(got[4])  # a diverging fit must see NaN
    np.testing.assert_array_equal(got[5:], [1.0, -1.0])


@njit(**HELPER_OPTIONS)
def _derivatives(y):
    return sigmoid_grad(y), tanh_grad(y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivatives_compute_in_the_type_of_their_argument(dtype):
    """A float32 gate's derivative stays float32: promoted to float64, the
    backward cell ran at half the vector width with two conversions per value."""
    y = dtype(0.375)
    d_sigmoid, d_tanh = _derivatives(y)
    signature = next(s for s in _derivatives.nopython_signatures if s.args == (typeof(y),))
    assert signature.return_type == types.UniTuple(typeof(y), 2)
    assert d_sigmoid == y * (1 - y) and d_tanh == 1 - y * y  # exact for this y


@njit(**HELPER_OPTIONS)
def _tanh_loop_float32(x, out):
    use_wide_vectors()
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


def test_float32_tanh_is_exactly_one_where_float32_rounds_tanh_to_one():
    """Saturated gates must have a derivative of exactly 0: the rational tanh
    used to top out at 0.99999976, and units fed inputs of 1e6 kept weight
    gradients of about 50 where PyTorch and float64 give 0."""
    x = np.concatenate([np.linspace(-20, 20, 4_000_001), [1e6, -1e30, 3e38]]).astype(np.float32)
    got = np.empty_like(x)
    _tanh_loop_float32(x, got)
    rounded = np.tanh(x.astype(np.float64)).astype(np.float32)  # correctly rounded
    saturated = np.abs(rounded) == 1
    np.testing.assert_array_equal(got[saturated], rounded[saturated])
    assert not np.any(np.abs(got[~saturated]) == 1)
    # the approximation's own error, unchanged by the saturation: 2.74e-7 (4.6 float32 ulps) at
    # |x| = 5.23, 2.1e-7 just below the saturation point
    assert np.abs(got - np.tanh(x.astype(np.float64))).max() <= 2.8e-7


def test_float32_tanh_special_values():
    x = np.array([0.0, np.inf, -np.inf, np.nan], np.float32)
    got = np.empty_like(x)
    _tanh_loop_float32(x, got)
    np.testing.assert_array_equal(got[:3], [0.0, 1.0, -1.0])
    assert np.isnan(got[3])  # a diverging fit must see NaN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturated_units_have_zero_weight_gradients(dtype):
    from nlstm import LSTM

    layer = LSTM(1, 2, random_state=0, dtype=dtype)
    x = np.full((2, 3, 1), 1e6)
    out, _ = layer.forward(x)
    _, grads = layer.backward(np.ones_like(out))
    assert np.abs(grads["weight_ih_l0"]).max() < 1e-3  # was 0.65 in float32
