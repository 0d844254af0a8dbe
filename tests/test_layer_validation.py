"""Bad arguments to LSTM raise ValueError/TypeError with a message, never a Numba error."""
import numpy as np
import pytest

from nlstm import LSTM, LSTMRegressor


@pytest.fixture(scope="module")
def layer():
    return LSTM(3, 4, 2, bidirectional=True, random_state=0)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(input_size=0, hidden_size=4), ValueError, "input_size"),
    (dict(input_size=3.5, hidden_size=4), TypeError, "input_size"),
    (dict(input_size=3, hidden_size=-1), ValueError, "hidden_size"),
    (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, "num_layers"),
    (dict(input_size=3, hidden_size=4, cell="transformer"), ValueError, "cell"),
    (dict(input_size=3, hidden_size=4, cell=None), TypeError, "cell"),
    (dict(input_size=3, hidden_size=4, dtype="float16"), ValueError, "dtype"),
    (dict(input_size=3, hidden_size=4, dtype=np.float32), TypeError, "dtype"),
    (dict(input_size=3, hidden_size=4, dropout=1.0), ValueError, "dropout"),
    (dict(input_size=3, hidden_size=4, dropout="x"), TypeError, "dropout"),
    (dict(input_size=3, hidden_size=4, forget_bias="chrono"), ValueError, "chrono_max"),
    (dict(input_size=3, hidden_size=4, forget_bias="big"), ValueError, "forget_bias"),
    (dict(input_size=3, hidden_size=4, forget_bias=float("nan")), ValueError, "forget_bias"),
    (dict(input_size=3, hidden_size=4, bidirectional="yes"), TypeError, "bidirectional"),
    (dict(input_size=3, hidden_size=4, device="gpu"), ValueError, "device"),
    (dict(input_size=3, hidden_size=4, device=0), TypeError, "device"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LSTM(**kwargs)


def test_dropout_with_one_layer_warns_as_torch_does_and_estimators_do_not():
    import warnings

    from nlstm import LSTMRegressor
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        LSTM(3, 4, dropout=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LSTM(3, 4, num_layers=2, dropout=0.5)
        # the estimators' dropout also acts on the head's input, so it is not idle there
        LSTMRegressor(hidden_size=4, dropout=0.5, max_iter=1).fit(np.ones((8, 5, 3)), np.ones(8))
    assert not [w for w in caught if "num_layers=1" in str(w.message)]


X = np.zeros((2, 5, 3))


@pytest.mark.parametrize("args,exc,match", [
    (dict(x=np.zeros((5, 3))), ValueError, "3-d"),
    (dict(x=np.zeros((2, 5, 4))), ValueError, "input_size=3"),
    (dict(x=np.zeros((0, 5, 3))), ValueError, "at least one"),
    (dict(x=np.zeros((2, 0, 3))), ValueError, "at least one"),
    (dict(x=np.full((2, 5, 3), np.nan)), ValueError, "NaN"),
    (dict(x=np.full((2, 5, 3), np.inf)), ValueError, "NaN or infinity"),
    (dict(x=np.full((2, 5, 3), 1e39)), ValueError, "too large for float32"),
    (dict(x=np.zeros((2, 5, 3), complex)), TypeError, "complex"),
    (dict(x=np.full((2, 5, 3), "a")), TypeError, "numbers"),
    (dict(x=X, lengths=[5]), ValueError, "lengths must have shape"),
    (dict(x=X, lengths=[5, 6]), ValueError, r"\[1, 5\]"),
    (dict(x=X, lengths=[0, 5]), ValueError, r"\[1, 5\]"),
    (dict(x=X, lengths=[2.0, 5.0]), TypeError, "integers"),
    (dict(x=X, initial_state=np.zeros((4, 2, 4))), TypeError, "tuple"),
    (dict(x=X, initial_state=(np.zeros((4, 2, 4)), np.zeros((2, 2, 4)))), ValueError, "c_0"),
    (dict(x=X, training="no"), TypeError, "training"),
])
def test_bad_forward_arguments(layer, args, exc, match):
    with pytest.raises(exc, match=match):
        layer.forward(**args)


def test_backward_needs_forward_and_matching_shapes():
    layer = LSTM(3, 4, random_state=0)
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.zeros((2, 5, 4)))
    layer.forward(X)
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="d_h_n"):
        layer.backward(np.zeros((2, 5, 4)), d_h_n=np.zeros((2, 2, 4)))


def test_bad_state_dict_leaves_layer_unchanged():
    layer = LSTM(3, 4, random_state=0)
    before = layer.state_dict()
    bad = dict(before)
    bad["weight_hh_l0"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="weight_hh_l0"):
        layer.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing"):
        layer.load_state_dict({"weight_ih_l0": before["weight_ih_l0"]})
    nan = {k: v.copy() for k, v in before.items()}
    nan["bias_hh_l0"][0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer.load_state_dict(nan)
    after = layer.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_resident_needs_a_bool(layer):
    with pytest.raises(TypeError, match="write_back"):
        with layer.resident(write_back="no"):
            pass


def test_rnn_layer_takes_plain_state_and_rejects_d_c_n():
    layer = LSTM(3, 4, cell="rnn", random_state=0)
    out, h_n = layer.forward(X, initial_state=np.zeros((1, 2, 4)))
    assert out.shape == (2, 5, 4) and h_n.shape == (1, 2, 4)
    with pytest.raises(ValueError, match="d_c_n"):
        layer.backward(out, d_c_n=np.zeros((1, 2, 4)))


def test_initialisation_options():
    H = 16
    plain = LSTM(3, H, forget_bias=0.0, random_state=0).state_dict()
    bound = 1 / np.sqrt(H)
    assert all(np.abs(v).max() <= bound for v in plain.values())
    shifted = LSTM(3, H, forget_bias=1.0, random_state=0).state_dict()
    np.testing.assert_allclose(shifted["bias_ih_l0"][H:2 * H], plain["bias_ih_l0"][H:2 * H] + 1.0)
    chrono = LSTM(3, H, forget_bias="chrono", chrono_max=100, random_state=0).state_dict()
    b_f = chrono["bias_ih_l0"][H:2 * H]
    assert np.all((b_f >= 0) & (b_f <= np.log(99)))
    np.testing.assert_array_equal(chrono["bias_ih_l0"][:H], -b_f)
    assert np.all(chrono["bias_hh_l0"][:2 * H] == 0)


# --- from issue #41: lengths, NaN padding, forget_bias ---
RNG = np.random.default_rng(0)
X3 = RNG.standard_normal((40, 5, 2))
Y_REG = X3[:, :, 0].sum(axis=1)


def test_forward_keeps_its_own_copy_of_lengths():
    layer = LSTM(2, 3, random_state=0)
    x = RNG.standard_normal((2, 4, 2))
    lengths = np.array([4, 2])
    out, _ = layer.forward(x, lengths=lengths)
    expected = layer.backward(np.ones_like(out))[1]
    out, _ = layer.forward(x, lengths=lengths)
    lengths[:] = 1  # the caller reuses their array before backward
    got = layer.backward(np.ones_like(out))[1]
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_values_past_the_lengths_are_ignored(dtype):
    layer = LSTM(2, 3, num_layers=2, bidirectional=True, dtype=dtype, random_state=0)
    x = RNG.standard_normal((3, 5, 2))
    lengths = [5, 2, 3]
    out_clean, _ = layer.forward(x, lengths=lengths)
    grad = RNG.standard_normal(out_clean.shape)
    d_x_clean, grads_clean = layer.backward(grad)
    poisoned, poisoned_grad = x.copy(), grad.copy()
    poisoned[1, 2:] = np.nan
    poisoned[2, 3:] = np.inf
    poisoned_grad[1, 2:] = np.nan
    out, _ = layer.forward(poisoned, lengths=lengths)
    d_x, grads = layer.backward(poisoned_grad)
    np.testing.assert_array_equal(out, out_clean)
    np.testing.assert_array_equal(d_x, d_x_clean)
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_clean[name])
    within = x.copy()
    within[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or infinity \(first at \[1, 1\]"):
        layer.forward(within, lengths=lengths)


@pytest.mark.parametrize("dtype,bias", [("float32", 1e39), ("float32", -3e38),
                                        ("float64", 1e308)])
def test_forget_bias_beyond_the_dtype_is_a_value_error(dtype, bias):
    with pytest.raises(ValueError, match="forget_bias"):
        LSTM(2, 3, forget_bias=bias, dtype=dtype)
    with pytest.raises(ValueError, match="forget_bias"):
        LSTMRegressor(hidden_size=3, forget_bias=bias, dtype=dtype, max_iter=1).fit(X3, Y_REG)
    assert np.isfinite(LSTM(2, 3, forget_bias=1e30, dtype=dtype).state_dict()["bias_ih_l0"]).all()
