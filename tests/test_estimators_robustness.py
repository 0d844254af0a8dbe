"""Paths real pipelines take (issue #41): each used to give wrong numbers, lose a
fitted model or fail unclearly. One test (or more) per defect class."""
import pickle
import threading

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from nlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

rng = np.random.default_rng(0)
X3 = rng.standard_normal((40, 5, 2))
Y_REG = X3[:, :, 0].sum(axis=1)
RAGGED = [rng.standard_normal((n, 1)) for n in (2, 3)]


# --- ragged per-timestep targets are padded in the dtype that holds them all ---
def test_ragged_float_targets_are_not_truncated_to_the_first_sequences_ints():
    y = [[1, 2], [0.5, 1.5, 2.5]]  # first sequence ints, second floats
    reg = LSTMRegressor(hidden_size=4, max_iter=1, return_sequences=True, random_state=0)
    reg.fit(RAGGED, y)
    np.testing.assert_allclose(reg._y_mean, [np.mean([1, 2, 0.5, 1.5, 2.5])])
    as_floats = LSTMRegressor(hidden_size=4, max_iter=1, return_sequences=True, random_state=0)
    as_floats.fit(RAGGED, [np.array([1.0, 2.0]), np.array([0.5, 1.5, 2.5])])
    np.testing.assert_array_equal(reg.predict(RAGGED)[1], as_floats.predict(RAGGED)[1])
    # score reads y the same way: R^2 of the model's own predictions is 1
    assert reg.score(RAGGED, [p.tolist() for p in reg.predict(RAGGED)]) == pytest.approx(1.0)


def test_ragged_string_labels_of_several_widths_invent_no_class():
    y = [["a", "b"], ["cat", "dog", "a"]]
    clf = LSTMClassifier(hidden_size=4, max_iter=1, return_sequences=True, random_state=0)
    clf.fit(RAGGED, y)
    assert clf.classes_.tolist() == ["a", "b", "cat", "dog"]
    assert 0 <= clf.score(RAGGED, y) <= 1
    with pytest.raises(ValueError, match="one value per timestep of X\\[1\\]"):
        clf.fit(RAGGED, [["a", "b"], ["cat", "dog"]])


def test_per_timestep_targets_as_a_list_beside_a_3d_array():
    X = rng.standard_normal((4, 3, 2))
    y = [[0.0, 1.0, 2.0]] * 4
    reg = LSTMRegressor(hidden_size=4, max_iter=1, return_sequences=True).fit(X, y)
    assert reg.predict(X).shape == (4, 3)
    with pytest.raises(ValueError, match="one value per timestep"):
        reg.fit(X, [[0.0, 1.0]] * 4)


# --- token ids are checked in their own dtype, before any cast ---
TOKENS = np.array([[1, 2, 3], [2, 3, 4], [0, 1, 2], [4, 3, 2]], dtype=np.uint64)


@pytest.mark.parametrize("huge", [np.array([[1, 2, 2**63 + 1]], dtype=np.uint64),
                                  np.array([[1.0, 2.0, 1e19]]),
                                  np.array([[1.0, 2.0, 2.0**63]])],
                         ids=["uint64 from 2**63", "float beyond int64", "float 2**63"])
def test_token_ids_beyond_int64_are_refused_not_wrapped(huge):
    clf = LSTMClassifier(hidden_size=4, embedding_dim=3, max_iter=1, random_state=0)
    clf.fit(TOKENS, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="beyond the largest id an embedding can have"):
        clf.predict(huge)
    with pytest.raises(ValueError, match="beyond the largest id"):
        LSTMClassifier(embedding_dim=3).fit(huge, [0])


def test_a_token_id_too_large_to_allocate_says_so():
    X = np.array([[1, 2**62], [0, 1]])
    with pytest.raises(ValueError, match="largest token id is 4611686018427387904.*could not be "
                                         "allocated"):
        LSTMClassifier(hidden_size=4, embedding_dim=3, max_iter=1).fit(X, [0, 1])


# --- a fit never returns non-finite parameters ---
def test_an_overflowing_last_update_raises_and_restores_the_model():
    X = X3.astype(np.float32)
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(X, Y_REG)
    before = pickle.dumps(reg)
    # one batch, so the only update is the last: its loss and gradient are finite
    reg.set_params(solver="sgd", learning_rate_init=1e300, batch_size=len(X), warm_start=True)
    with pytest.raises(FloatingPointError, match="parameters became non-finite"):
        reg.fit(X, Y_REG)
    reg.set_params(solver="adam", learning_rate_init=0.003, batch_size=32, warm_start=False)
    assert pickle.dumps(reg) == before
    with pytest.raises(FloatingPointError):
        LSTMRegressor(hidden_size=4, max_iter=1, solver="sgd", learning_rate_init=1e300,
                      batch_size=len(X)).fit(X, Y_REG)


# --- sample weights: no dependence on their overall scale ---
@pytest.mark.parametrize("scale", [1e308, 5e-324, 2.0 ** -1000])
def test_sample_weights_of_any_overall_scale_train_as_weights_of_one(scale):
    params = dict(hidden_size=4, max_iter=2, random_state=0)
    ones = LSTMRegressor(**params).fit(X3, Y_REG, sample_weight=np.ones(len(X3)))
    scaled = LSTMRegressor(**params).fit(X3, Y_REG, sample_weight=np.full(len(X3), scale))
    assert scaled.loss_curve_ == ones.loss_curve_
    np.testing.assert_array_equal(scaled.predict(X3), ones.predict(X3))
    warm = LSTMRegressor(warm_start=True, **params).fit(X3, Y_REG)
    warm.fit(X3, Y_REG, sample_weight=np.full(len(X3), scale))
    assert warm.loss_curve_[-1] > 0  # it trained: the weights did not round to zero


def test_uneven_weights_scaled_by_a_power_of_two_give_the_same_bits():
    w = rng.uniform(0, 3, len(X3))
    params = dict(hidden_size=4, max_iter=2, random_state=0)
    a = LSTMRegressor(**params).fit(X3, Y_REG, sample_weight=w)
    b = LSTMRegressor(**params).fit(X3, Y_REG, sample_weight=w * 2.0 ** 1000)
    np.testing.assert_array_equal(a.predict(X3), b.predict(X3))


def test_per_timestep_sample_weights_with_return_sequences():
    X = [rng.standard_normal((n, 1)) for n in (3, 5, 4)]
    y = [x[:, 0] * 2 for x in X]
    params = dict(hidden_size=4, max_iter=2, return_sequences=True, random_state=0)
    per_sequence = LSTMRegressor(**params).fit(X, y, sample_weight=[1.0, 2.0, 1.0])
    # the same weights spelled per step, ragged or padded
    ragged = [np.full(3, 1.0), np.full(5, 2.0), np.full(4, 1.0)]
    padded = np.array([[1, 1, 1, 9, 9], [2, 2, 2, 2, 2], [1, 1, 1, 1, 9]], float)  # 9s ignored
    for weights in (ragged, padded):
        per_step = LSTMRegressor(**params).fit(X, y, sample_weight=weights)
        np.testing.assert_allclose(per_step.loss_curve_, per_sequence.loss_curve_, rtol=1e-6)
    zero_last = [np.array([1.0, 1.0, 0.0]), np.ones(5), np.ones(4)]
    assert np.isfinite(LSTMRegressor(**params).fit(X, y, sample_weight=zero_last).score(
        X, y, sample_weight=zero_last))
    with pytest.raises(ValueError, match="shape"):
        LSTMRegressor(**params).fit(X, y, sample_weight=np.ones((3, 4)))
    with pytest.raises(ValueError, match="1D"):
        LSTMRegressor(hidden_size=4).fit(X3, Y_REG, sample_weight=np.ones((40, 5)))


# --- containers decide the form, not the lengths inside them ---
def test_series_and_object_arrays_of_equal_length_sequences():
    pd = pytest.importorskip("pandas")
    sequences = [rng.standard_normal((3, 2)) for _ in range(4)]
    y = np.arange(4.0)
    series = pd.Series(sequences)
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(series, y)
    expected = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(
        np.stack(sequences), y).predict(np.stack(sequences))
    np.testing.assert_array_equal(reg.predict(series), expected)
    np.testing.assert_array_equal(reg.predict(series[:1]), expected[:1])
    objects = np.empty(4, dtype=object)
    for i, s in enumerate(sequences):
        objects[i] = s
    np.testing.assert_array_equal(reg.predict(objects), expected)


def test_a_list_of_equal_length_1d_sequences_stays_a_list():
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0)
    reg.fit([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]], [1.0, 2.0])
    assert reg.n_features_in_ == 1
    assert reg.predict([[1.0, 2.0], [1.0, 2.0, 3.0, 4.0]]).shape == (2,)
    tagger = LSTMRegressor(hidden_size=4, max_iter=1, return_sequences=True)
    tagger.fit([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(tagger.predict([[1.0, 2.0], [3.0, 4.0]]), list)


def test_a_table_model_takes_a_list_of_rows_of_its_width():
    table = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(X3[:, :, 0], Y_REG)
    np.testing.assert_array_equal(table.predict(X3[:3, :, 0].tolist()), table.predict(X3[:3, :, 0]))
    with pytest.raises(ValueError, match="sequences of several lengths.*5 columns"):
        table.predict([[1.0, 2.0], [1.0, 2.0, 3.0]])


# --- a failing call never disturbs the model or threads predicting with it ---
def test_failing_fits_do_not_disturb_concurrent_predicts():
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0, warm_start=True).fit(X3, Y_REG)
    expected = reg.predict(X3)
    before = pickle.dumps(reg)
    stop, errors, results = threading.Event(), [], []

    def predict():
        while not stop.is_set():
            try:
                results.append(reg.predict(X3))
            except Exception as error:  # reported below
                errors.append(error)

    threads = [threading.Thread(target=predict) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(30):
            for bad_X, bad_y in ((X3[:, :, :1], Y_REG), (X3, Y_REG[:-1]), (X3 * np.nan, Y_REG)):
                with pytest.raises(ValueError):
                    reg.fit(bad_X, bad_y)
            with pytest.raises(FloatingPointError):  # fails after training an epoch
                reg.set_params(solver="sgd", learning_rate_init=1e300,
                               batch_size=len(X3)).fit(X3, Y_REG)
            reg.set_params(solver="adam", learning_rate_init=0.003, batch_size=32)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    assert results and all(np.array_equal(r, expected) for r in results)
    assert pickle.dumps(reg) == before


def test_a_failed_first_fit_leaves_an_unfitted_estimator_unfitted():
    reg = LSTMRegressor(hidden_size=4)
    with pytest.raises(ValueError):
        reg.fit(X3, Y_REG[:-1])
    assert not hasattr(reg, "n_features_in_")
    with pytest.raises(NotFittedError):
        reg.predict(X3)
