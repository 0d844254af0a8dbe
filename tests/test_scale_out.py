"""Scale-out on Dask: grid search on a cluster, partial_fit over blocks, block-wise predict.

Every test runs on one ``LocalCluster`` with 2 worker processes.
"""
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")

pytestmark = pytest.mark.slow  # starts a local cluster's processes
import joblib  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from nlstm import LSTMClassifier, LSTMRegressor  # noqa: E402
from nlstm.scale_out import partial_fit_blocks, predict_blocks  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 12, 2)).astype(np.float32)
    y = X[:, -3:, 0].sum(axis=1) - X[:, -1, 1]
    return X, y


def test_grid_search_runs_on_the_cluster_and_matches_in_process(client, data):
    X, y = data
    search = GridSearchCV(LSTMRegressor(max_iter=3, n_jobs=1, random_state=0),
                          {"hidden_size": [4, 8], "learning_rate_init": [1e-3, 1e-2]}, cv=2)
    local = GridSearchCV(search.estimator, search.param_grid, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
            search.fit(X, y)
        local.fit(X, y)
    fit_tasks = [t for t in stream.data if "fit_and_score" in t["key"]]
    assert len(fit_tasks) == 4 * 2  # every (candidate, fold) ran on a worker
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert search.best_params_ == local.best_params_


def test_partial_fit_blocks_equals_partial_fit_block_by_block(client, data):
    X, y = data
    dX = da.from_array(X, chunks=(80, 6, 2))  # split along T too: the helper rejoins it
    dy = da.from_array(y, chunks=60)          # different row chunks: the helper aligns them
    template = LSTMRegressor(hidden_size=8, batch_size=16, random_state=0)
    trained = partial_fit_blocks(template, dX, dy, epochs=2, shuffle_blocks=False)

    expected = LSTMRegressor(hidden_size=8, batch_size=16, random_state=0)
    for _ in range(2):
        for start in range(0, 240, 80):
            expected.partial_fit(X[start:start + 80], y[start:start + 80])
    np.testing.assert_array_equal(trained.predict(X), expected.predict(X))
    assert trained.n_iter_ == 6
    assert not hasattr(template, "n_features_in_")  # the template is never modified


def test_partial_fit_blocks_passes_each_block_its_sample_weights(client, data):
    X, y = data
    weights = np.random.default_rng(1).uniform(0, 3, size=len(y))
    dX, dy = da.from_array(X, chunks=(80, 12, 2)), da.from_array(y, chunks=80)
    dw = da.from_array(weights, chunks=48)  # other row chunks: the helper aligns them
    template = LSTMRegressor(hidden_size=8, batch_size=16, random_state=0)
    trained = partial_fit_blocks(template, dX, dy, sample_weight=dw, shuffle_blocks=False)

    expected = LSTMRegressor(hidden_size=8, batch_size=16, random_state=0)
    unweighted = LSTMRegressor(hidden_size=8, batch_size=16, random_state=0)
    for start in range(0, 240, 80):
        rows = slice(start, start + 80)
        expected.partial_fit(X[rows], y[rows], sample_weight=weights[rows])
        unweighted.partial_fit(X[rows], y[rows])
    np.testing.assert_array_equal(trained.predict(X), expected.predict(X))
    assert not np.allclose(trained.predict(X), unweighted.predict(X))


def test_partial_fit_blocks_learns_and_continues_a_fitted_model(client, data):
    X, y = data
    dX, dy = da.from_array(X, chunks=(60, 12, 2)), da.from_array(y, chunks=60)
    model = partial_fit_blocks(LSTMRegressor(hidden_size=16, batch_size=16, learning_rate_init=0.03,
                                             random_state=0),
                               dX, dy, epochs=20, random_state=0)
    assert model.score(X, y) > 0.6  # R^2; the untrained model scores about 0
    more = partial_fit_blocks(model, dX, dy, epochs=1, random_state=1)
    assert more.n_iter_ == model.n_iter_ + 4
    assert more is not model


def test_partial_fit_blocks_classifier_finds_classes_itself(client, data):
    X, y = data
    labels = np.where(y > 0, "up", "down")
    model = partial_fit_blocks(LSTMClassifier(hidden_size=8, random_state=0),
                               da.from_array(X, chunks=(60, 12, 2)),
                               da.from_array(labels, chunks=60), epochs=2)
    assert list(model.classes_) == ["down", "up"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_predict_blocks_equals_predict(client, data, cell):
    X, y = data
    regressor = LSTMRegressor(hidden_size=8, max_iter=2, cell=cell, random_state=0)
    classifier = LSTMClassifier(hidden_size=8, max_iter=2, cell=cell, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        regressor.fit(X, y)
        classifier.fit(X, (y > 0).astype(int) + (y > 1))
    dX = da.from_array(X, chunks=(50, 12, 2))
    values = predict_blocks(regressor, dX)
    assert values.chunks == ((50, 50, 50, 50, 40),)
    # Rows are grouped differently from one whole-array predict, which can move
    # the last float32 bit (BLAS blocking), so compare to float32 precision.
    np.testing.assert_allclose(values.compute(), regressor.predict(X), rtol=1e-6, atol=1e-7)
    proba = predict_blocks(classifier, dX, method="predict_proba")
    assert proba.shape == (240, 3)
    np.testing.assert_allclose(proba.compute(), classifier.predict_proba(X), rtol=1e-6, atol=1e-7)
    labels = predict_blocks(classifier, dX).compute()
    assert np.mean(labels == classifier.predict(X)) > 0.99


def test_bad_inputs_raise_before_any_work(data):
    X, y = data
    dX, dy = da.from_array(X, chunks=60), da.from_array(y, chunks=60)
    model = LSTMRegressor(hidden_size=4)
    with pytest.raises(TypeError, match="X must be a dask array"):
        partial_fit_blocks(model, X, dy)
    with pytest.raises(ValueError, match="different numbers of rows"):
        partial_fit_blocks(model, dX, dy[:100])
    with pytest.raises(TypeError, match="sample_weight must be a dask array"):
        partial_fit_blocks(model, dX, dy, sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match="X and sample_weight have different numbers of rows"):
        partial_fit_blocks(model, dX, dy, sample_weight=da.ones(100, chunks=50))
    with pytest.raises(ValueError, match="epochs"):
        partial_fit_blocks(model, dX, dy, epochs=0)
    with pytest.raises(TypeError, match="shuffle_blocks"):
        partial_fit_blocks(model, dX, dy, shuffle_blocks="yes")
    with pytest.raises(ValueError, match="random_state|RandomState"):
        partial_fit_blocks(model, dX, dy, random_state="seed")
    with pytest.raises(TypeError, match="partial_fit"):
        partial_fit_blocks(object(), dX, dy)
    with pytest.raises(NotFittedError):
        predict_blocks(model, dX)
    with pytest.raises(ValueError, match="method"):
        predict_blocks(model, dX, method="transform")
    with pytest.raises(TypeError, match="no predict_proba"):
        predict_blocks(model, dX, method="predict_proba")


def test_partial_fit_blocks_passes_over_a_block_whose_weights_are_all_zero(client, data):
    X, y = data
    weights = np.ones(len(y))
    weights[80:160] = 0.0  # the second block teaches nothing
    dX, dy = da.from_array(X, chunks=(80, 12, 2)), da.from_array(y, chunks=80)
    trained = partial_fit_blocks(LSTMRegressor(hidden_size=8, batch_size=16, random_state=0),
                                 dX, dy, sample_weight=da.from_array(weights, chunks=80),
                                 shuffle_blocks=False)
    expected = LSTMRegressor(hidden_size=8, batch_size=16, random_state=0)
    for start in (0, 160):
        expected.partial_fit(X[start:start + 80], y[start:start + 80])
    np.testing.assert_array_equal(trained.predict(X), expected.predict(X))
    first_zero = weights.copy()
    first_zero[:80], first_zero[80:] = 0.0, 1.0  # and a classifier's first block too
    clf = partial_fit_blocks(LSTMClassifier(hidden_size=8, random_state=0), dX,
                             da.from_array((y > 0).astype(int), chunks=80),
                             sample_weight=da.from_array(first_zero, chunks=80),
                             shuffle_blocks=False)
    assert clf.classes_.tolist() == [0, 1]
    with pytest.raises(ValueError, match="every block's sample weights are 0"):
        partial_fit_blocks(LSTMRegressor(hidden_size=8), dX, dy,
                           sample_weight=da.zeros(len(y), chunks=80))


def test_partial_fit_blocks_takes_per_timestep_weights_for_return_sequences(client, data):
    X, _ = data
    y = X[:, :, 0].cumsum(axis=1)
    weights = np.random.default_rng(2).uniform(0, 2, size=y.shape)
    dX, dy = da.from_array(X, chunks=(80, 12, 2)), da.from_array(y, chunks=(80, 12))
    params = dict(hidden_size=8, batch_size=16, return_sequences=True, random_state=0)
    trained = partial_fit_blocks(LSTMRegressor(**params), dX, dy,
                                 sample_weight=da.from_array(weights, chunks=(80, 12)),
                                 shuffle_blocks=False)
    expected = LSTMRegressor(**params)
    for start in range(0, 240, 80):
        rows = slice(start, start + 80)
        expected.partial_fit(X[rows], y[rows], sample_weight=weights[rows])
    np.testing.assert_array_equal(trained.predict(X), expected.predict(X))
