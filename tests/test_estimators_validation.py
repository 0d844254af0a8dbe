"""Bad input to the estimators: a clear ValueError/TypeError before any kernel
runs, and a fitted model left exactly as it was."""
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from nlstm import LSTMClassifier, LSTMRegressor

FIXTURE_OK = [HealthCheck.function_scoped_fixture]
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

rng = np.random.default_rng(0)
X3 = rng.standard_normal((40, 5, 2))
Y_REG = X3[:, :, 0].sum(axis=1)
Y_CLF = np.where(Y_REG > 0, "a", "b")


@pytest.fixture(scope="module")
def fitted():
    return {
        "reg": LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X3, Y_REG),
        "clf": LSTMClassifier(hidden_size=4, max_iter=2, random_state=0).fit(X3, Y_CLF),
    }


def nan_at(a, index):
    a = a.copy()
    a[index] = np.nan
    return a


BAD_FIT_INPUTS = [
    ("NaN in X", lambda: (nan_at(X3, (1, 2, 0)), Y_REG), ValueError, "NaN"),
    ("inf in X", lambda: (X3 * np.inf, Y_REG), ValueError, "infinity|NaN"),
    ("NaN in y", lambda: (X3, nan_at(Y_REG, 3)), ValueError, "NaN"),
    ("inf in y", lambda: (X3, Y_REG * np.inf), ValueError, "infinity"),
    ("1-d X", lambda: (X3[:, 0, 0], Y_REG), ValueError, r"a 1-d array of shape \(40,\).*reshape"),
    ("4-d X", lambda: (X3[..., None], Y_REG), ValueError,
     r"X must be a 3-d array \(n_samples, T, F\), a 2-d array .* got a 4-d array"),
    ("scalar X", lambda: (np.float64(1.0), Y_REG), ValueError, "got a 0-d array"),
    ("no samples", lambda: (X3[:0], Y_REG[:0]), ValueError, "0 sample"),
    ("no timesteps", lambda: (X3[:, :0], Y_REG), ValueError, "timestep"),
    ("no features", lambda: (X3[:, :, :0], Y_REG), ValueError, "feature"),
    ("empty list", lambda: ([], []), ValueError, "0 samples"),
    ("empty sequence", lambda: ([np.ones((3, 2)), np.ones((0, 2))], [1.0, 2.0]), ValueError,
     "empty sequence"),
    ("mixed features", lambda: ([np.ones((3, 2)), np.ones((4, 3))], [1.0, 2.0]), ValueError,
     "same number of features"),
    ("strings in X", lambda: (np.array([["a", "b"], ["c", "d"]]), [1.0, 2.0]), ValueError,
     "string|convert"),
    ("complex X", lambda: (X3 + 1j, Y_REG), ValueError, "Complex data not supported"),
    ("X/y length mismatch", lambda: (X3, Y_REG[:-1]), ValueError, "samples"),
    ("y None", lambda: (X3, None), ValueError, "requires y"),
    # float64 values that float32 (the model's dtype) cannot hold would become inf
    ("X beyond float32", lambda: (X3 * 1e300, Y_REG), ValueError,
     r"X holds values too large for float32 \(largest magnitude .*e\+300"),
    ("table beyond float32", lambda: (X3[:, :, 0] * 1e40, Y_REG), ValueError,
     "X holds values too large for float32"),
    ("list beyond float32", lambda: ([np.ones((3, 2)), np.full((4, 2), 1e39)], [1.0, 2.0]),
     ValueError, r"X\[1\] holds values too large for float32"),
    ("y whose mean overflows", lambda: (X3, np.full(len(X3), 1.7e308)), ValueError,
     "y holds values too large to standardise"),
]


@pytest.mark.parametrize("label,make,exc,match", BAD_FIT_INPUTS, ids=[b[0] for b in BAD_FIT_INPUTS])
def test_bad_fit_input_raises_and_leaves_fitted_model_unchanged(fitted, label, make, exc, match):
    reg = fitted["reg"]
    before = pickle.dumps(reg)
    X, y = make()
    with pytest.raises(exc, match=match):
        reg.fit(X, y)
    assert pickle.dumps(reg) == before


@pytest.mark.parametrize("params,match", [
    (dict(hidden_size=0), "hidden_size"),
    (dict(num_layers=1.5), "num_layers"),
    (dict(cell="transformer"), "cell"),
    (dict(forget_bias="big"), "forget_bias"),
    (dict(dropout=1.0), "dropout"),
    (dict(solver="lbfgs"), "solver"),
    (dict(learning_rate_init=0), "learning_rate_init"),
    (dict(batch_size=0), "batch_size"),
    (dict(max_iter=-1), "max_iter"),
    (dict(clip_grad_norm=-1.0), "clip_grad_norm"),
    (dict(alpha=-0.1), "alpha"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(n_jobs=0), "n_jobs"),
    (dict(dtype="float16"), "dtype"),
    (dict(device="tpu"), "device"),
    (dict(embedding_dim=0), "embedding_dim"),
])
def test_invalid_parameters_are_named(fitted, params, match):
    reg = fitted["reg"]
    before = pickle.dumps(reg)
    bad = pickle.loads(before).set_params(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        bad.fit(X3, Y_REG)
    assert pickle.dumps(reg) == before


def test_predict_beyond_float32_is_a_value_error_and_float64_models_take_it(fitted):
    for est in fitted.values():
        with pytest.raises(ValueError, match="too large for float32.*dtype='float64'"):
            est.predict(X3 * 1e300)
    wide = LSTMRegressor(hidden_size=4, max_iter=1, dtype="float64", random_state=0)
    assert np.isfinite(wide.fit(X3 * 1e300, Y_REG).predict(X3 * 1e300)).all()


@pytest.mark.parametrize("return_sequences", [False, True])
def test_huge_finite_targets_are_standardised_without_overflow(return_sequences):
    # their squares overflow float64: the scale must not become inf (predictions NaN)
    y = Y_REG if not return_sequences else X3[:, :, 1]
    params = dict(hidden_size=4, max_iter=2, random_state=0, return_sequences=return_sequences)
    plain = LSTMRegressor(**params).fit(X3, y)
    huge = LSTMRegressor(**params).fit(X3, y * 1e300)
    np.testing.assert_allclose(huge._y_scale / 1e300, plain._y_scale, rtol=1e-12)
    np.testing.assert_allclose(huge.predict(X3) / 1e300, plain.predict(X3), rtol=1e-6)


def test_one_class_only(fitted):
    with pytest.raises(ValueError, match="one class"):
        LSTMClassifier(hidden_size=4, max_iter=1).fit(X3, np.zeros(len(X3)))


def test_predict_before_fit():
    for est in (LSTMRegressor(), LSTMClassifier()):
        with pytest.raises(NotFittedError):
            est.predict(X3)


def test_predict_with_other_feature_count_or_form(fitted):
    with pytest.raises(ValueError, match="3 features.*expecting 2"):
        fitted["reg"].predict(rng.standard_normal((4, 5, 3)))
    with pytest.raises(ValueError, match="features"):
        fitted["clf"].predict_proba(rng.standard_normal((4, 5, 3)))
    table = LSTMRegressor(hidden_size=4, max_iter=1).fit(X3[:, :, 0], Y_REG)
    with pytest.raises(ValueError, match="4 features, but LSTMRegressor is expecting 5"):
        table.predict(X3[:, :4, 0])
    # ... and says that the columns are timesteps, for a list of lists too
    with pytest.raises(ValueError, match=r"7 features.*columns of a 2-d X are the timesteps"):
        table.predict(np.zeros((3, 7)).tolist())
    with pytest.raises(ValueError, match="2-d array"):
        table.predict(X3)
    # a model fit on sequences may see a different number of timesteps
    assert fitted["reg"].predict(rng.standard_normal((4, 9, 2))).shape == (4,)


def test_first_partial_fit_checks_y_against_the_classes_given():
    """classes=['a'] with y of 'a' and 'b' is a label missing from classes,
    not 'the data contain one class'; classes of one label say it is classes."""
    with pytest.raises(ValueError, match=r"labels not in classes=\['a'\]: \['b'\]"):
        LSTMClassifier(hidden_size=4).partial_fit(X3, Y_CLF, classes=["a"])
    with pytest.raises(ValueError, match="classes holds only one class: 'a'"):
        LSTMClassifier(hidden_size=4).partial_fit(X3, np.full(len(X3), "a"), classes=["a"])
    with pytest.raises(ValueError, match="the data contain only one class"):
        LSTMClassifier(hidden_size=4).fit(X3, np.full(len(X3), "a"))


def test_unseen_label_in_partial_fit(fitted):
    clf = pickle.loads(pickle.dumps(fitted["clf"]))
    before = pickle.dumps(clf)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X3, np.where(Y_REG > 0, "a", "c"))
    assert pickle.dumps(clf) == before


def test_token_id_too_large_for_an_embedding_table_is_a_value_error():
    """The embedding has a row for every id up to the largest: an id of 2**40
    (a hashed token, say) asks for terabytes. The user gets a ValueError that
    names the id and the way out, not NumPy's MemoryError, and a fitted model
    is left as it was."""
    tokens = rng.integers(0, 10, (40, 6))
    clf = LSTMClassifier(embedding_dim=3, hidden_size=4, max_iter=1, random_state=0)
    clf.fit(tokens, Y_CLF)
    before = pickle.dumps(clf)
    huge = tokens.copy()
    huge[5, 2] = 2**40
    with pytest.raises(ValueError, match=r"largest token id is 1099511627776.*consecutive ids"):
        clf.fit(huge, Y_CLF)
    assert pickle.dumps(clf) == before


def test_embedding_table_is_drawn_in_chunks_with_the_bits_of_one_draw(monkeypatch):
    """The table is filled a few rows at a time (no float64 copy of the whole
    table), with the values one ``standard_normal`` call for all of it gives,
    so a given random_state initialises the embedding as before."""
    from nlstm import _network

    for chunk in (1, 5, 1 << 20):
        monkeypatch.setattr(_network, "_EMBEDDING_DRAW_VALUES", chunk)
        for dtype in (np.float32, np.float64):
            table = _network._embedding_table(np.random.RandomState(3), 11, 3, dtype)
            expected = np.random.RandomState(3).standard_normal((11, 3)).astype(dtype)
            assert table.dtype == dtype
            np.testing.assert_array_equal(table, expected)


finite = st.floats(-10, 10, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    n=st.integers(1, 6), T=st.integers(1, 6), F=st.integers(1, 3),
    poison=st.sampled_from(["nan", "inf", "-inf", "none"]), data=st.data(),
)
def test_property_any_poisoned_X_is_rejected_and_clean_X_predicts(fitted, n, T, F, poison, data):
    """Arbitrary shapes and values: predict either returns finite numbers of the right
    shape or raises ValueError, and never changes the fitted model."""
    reg = fitted["reg"]
    before = pickle.dumps(reg)
    X = np.array(data.draw(st.lists(finite, min_size=n * T * F, max_size=n * T * F)),
                 dtype=np.float64).reshape(n, T, F)
    if poison != "none":
        X[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, T - 1)), 0] = float(poison)
    if poison != "none" or F != reg.n_features_in_:
        with pytest.raises(ValueError):
            reg.predict(X)
    else:
        pred = reg.predict(X)
        assert pred.shape == (n,) and np.all(np.isfinite(pred))
    assert pickle.dumps(reg) == before


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURE_OK)
@given(lengths=st.lists(st.integers(0, 5), min_size=0, max_size=5), F=st.integers(1, 2))
def test_property_ragged_lists_fit_or_fail_cleanly(fitted, lengths, F):
    """A ragged list fits exactly when every sequence has a step; a failed fit
    leaves the fitted model as it was."""
    reg = pickle.loads(pickle.dumps(fitted["reg"]))
    before = pickle.dumps(reg)
    X = [np.ones((n, F)) * (i + 1) / 5 for i, n in enumerate(lengths)]
    y = np.arange(len(lengths), dtype=float)
    if len(lengths) == 0 or min(lengths) == 0:
        with pytest.raises(ValueError):
            reg.fit(X, y)
        assert pickle.dumps(reg) == before
    else:
        reg.set_params(max_iter=1).fit(X, y)
        assert reg.predict(X).shape == (len(lengths),)


def test_cuda_device_without_numba_cuda_names_what_is_missing(monkeypatch):
    import importlib.util

    from numba.core import config
    if importlib.util.find_spec("numba_cuda") is not None:
        pytest.skip("numba-cuda is installed here")
    monkeypatch.setattr(config, "ENABLE_CUDASIM", False)  # the tests run on the simulator
    with pytest.raises(RuntimeError, match="numba-cuda"):
        LSTMRegressor(device="cuda", max_iter=1).fit(X3, Y_REG)
    from nlstm import LSTM
    with pytest.raises(RuntimeError, match="numba-cuda"):
        LSTM(2, 3, device="cuda")


def test_model_saved_for_cuda_loads_without_a_gpu(monkeypatch, tmp_path):
    """nlstm.load builds on the CPU; the saved device is checked at the next call."""
    from numba.core import config

    import nlstm
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(X3, Y_REG)
    expected = reg.predict(X3)
    path = nlstm.save(reg.set_params(device="cuda"), tmp_path / "model.npz")
    monkeypatch.setattr(config, "ENABLE_CUDASIM", False)  # as on a machine without a GPU
    loaded = nlstm.load(path)
    assert loaded.device == "cuda"
    with pytest.raises(RuntimeError, match="numba-cuda|GPU"):
        loaded.predict(X3)
    np.testing.assert_array_equal(loaded.set_params(device="cpu").predict(X3), expected)


@pytest.mark.parametrize("arrays", ["cuda", None, np])
def test_optimizer_residency_takes_only_an_array_plumbing_module(arrays):
    from nlstm.optimizers import AdamOptimizer
    optimizer = AdamOptimizer([np.zeros(3)])
    with pytest.raises(TypeError, match="arrays must be one of the modules"):
        with optimizer.resident(arrays):
            pass
    assert isinstance(optimizer.ms[0], np.ndarray)  # state left where it was
