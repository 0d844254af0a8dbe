"""`nlstm.scale_out.fit_distributed`: data-parallel training by model averaging on a
``LocalCluster`` of 2 worker processes — as good as the in-process fit on a real data set,
bit for bit repeatable, and unshaken by a worker killed in the middle."""
import os
import pickle
import signal
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")

pytestmark = [pytest.mark.slow,  # starts a local cluster's processes
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]
from sklearn.datasets import load_digits  # noqa: E402

from nlstm import LSTMClassifier, LSTMRegressor  # noqa: E402
from nlstm.scale_out import fit_distributed  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits read row by row: 8 steps of 8 pixels."""
    data = load_digits()
    X = (data.images / 16.0).astype(np.float32)
    return X[:1400], data.target[:1400], X[1400:], data.target[1400:]


def params_equal(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.network_.params, b.network_.params))


def test_the_distributed_fit_scores_as_the_in_process_fit_and_repeats_bit_for_bit(client,
                                                                                   digits):
    X, y, X_test, y_test = digits
    settings = dict(hidden_size=32, learning_rate_init=0.03, max_iter=40, random_state=0)
    in_process = LSTMClassifier(**settings).fit(X, y).score(X_test, y_test)
    X_blocks, y_blocks = da.from_array(X, chunks=(700, 8, 8)), da.from_array(y, chunks=700)
    estimator = LSTMClassifier(**settings)
    before = pickle.dumps(estimator)
    model = fit_distributed(estimator, X_blocks, y_blocks, sync_every=8, client=client)
    assert abs(model.score(X_test, y_test) - in_process) <= 0.01
    assert pickle.dumps(estimator) == before
    assert len(model.loss_curve_) == model.n_iter_ and model.loss_curve_[-1] < 0.5
    again = fit_distributed(estimator, X_blocks, y_blocks, sync_every=8, client=client)
    assert params_equal(model, again)


def test_early_stopping_scores_the_held_out_rows_of_every_block(client, digits):
    X, y, X_test, y_test = digits
    model = fit_distributed(
        LSTMClassifier(hidden_size=16, learning_rate_init=0.03, max_iter=8, early_stopping=True,
                       n_iter_no_change=3, random_state=0),
        da.from_array(X, chunks=(350, 8, 8)), da.from_array(y, chunks=350), client=client)
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_) > 0.6
    assert model.score(X_test, y_test) > 0.6


def test_a_fit_that_stops_early_returns_the_epoch_it_stopped_at(client):
    """The next epoch already runs on the cluster while the client records one;
    a stop must return the recorded epoch's model, as a shorter fit makes it."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((240, 6, 2))
    blocks = da.from_array(X, chunks=(80, 6, 2)), da.from_array(X.sum(axis=(1, 2)), chunks=80)
    settings = dict(hidden_size=8, random_state=0, batch_size=16)
    # after the first epoch none improves the loss by tol: the fit stops n_iter_no_change later
    stopped = fit_distributed(LSTMRegressor(max_iter=10, n_iter_no_change=2, tol=1e9,
                                            **settings), *blocks, sync_every=2, client=client)
    short = fit_distributed(LSTMRegressor(max_iter=3, **settings), *blocks, sync_every=2,
                            client=client)
    assert stopped.n_iter_ == len(stopped.loss_curve_) == 3
    assert params_equal(stopped, short)
    assert stopped.loss_curve_ == short.loss_curve_
    # early stopping keeps the model of the epoch that scored best: on noise, an early one
    noise = blocks[0], da.from_array(rng.standard_normal(240), chunks=80)
    best = fit_distributed(LSTMRegressor(max_iter=10, early_stopping=True, n_iter_no_change=3,
                                         tol=1e9, learning_rate_init=0.05, **settings), *noise,
                           sync_every=2, client=client)
    assert best.n_iter_ == 4
    best_epoch = int(np.argmax(best.validation_scores_)) + 1
    assert best_epoch < 4, best.validation_scores_
    then = fit_distributed(LSTMRegressor(max_iter=best_epoch, early_stopping=True,
                                         learning_rate_init=0.05, **settings), *noise,
                           sync_every=2, client=client)
    assert params_equal(best, then)


def test_a_regressor_with_weights_and_sequences_of_targets(client):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 10, 2))
    y = np.cumsum(X[:, :, 0], axis=1) * 3 + 5
    weights = rng.uniform(0.5, 2.0, 300)
    model = fit_distributed(
        LSTMRegressor(hidden_size=16, return_sequences=True, max_iter=15, dtype="float64",
                      learning_rate_init=0.01, random_state=0),
        da.from_array(X, chunks=(100, 10, 2)), da.from_array(y, chunks=(100, 10)),
        sample_weight=da.from_array(weights, chunks=100), sync_every=4, client=client)
    assert model.score(X, y) > 0.8
    np.testing.assert_allclose(model._y_mean, [np.average(y.ravel(),
                                                          weights=np.repeat(weights, 10))])


def test_a_worker_killed_mid_fit_changes_nothing(client, digits):
    X, y, _, _ = digits
    X_blocks, y_blocks = da.from_array(X, chunks=(700, 8, 8)), da.from_array(y, chunks=700)
    settings = dict(hidden_size=16, max_iter=4, random_state=0)
    undisturbed = fit_distributed(LSTMClassifier(**settings), X_blocks, y_blocks, sync_every=1,
                                  client=client)
    pids = client.run(os.getpid)
    timings, result = {}, []
    fit = threading.Thread(target=lambda: result.append(fit_distributed(
        LSTMClassifier(**settings), X_blocks, y_blocks, sync_every=1, client=client,
        timings=timings)))
    fit.start()
    while len(timings.get("round_seconds", ())) < 5:  # well into the first epoch
        time.sleep(0.01)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    fit.join(timeout=300)
    assert result, "the fit did not finish"
    assert len(timings["epoch_seconds"]) == 4
    assert victim not in client.run(os.getpid).values()  # the worker was replaced
    assert params_equal(result[0], undisturbed)


def test_a_bad_block_stops_the_fit_with_its_error(client):
    X = np.random.default_rng(0).standard_normal((60, 5, 2))
    y = X.sum(axis=(1, 2))
    bad_X, bad_y = X.copy(), y.copy()
    bad_X[45, 2, 1] = np.nan  # in the second block: its task raises
    bad_y[50] = np.nan
    estimator = LSTMRegressor(hidden_size=4, max_iter=2)
    before = pickle.dumps(estimator)
    for X_, y_ in ((bad_X, y), (X, bad_y)):
        with pytest.raises(ValueError, match="contains NaN"):
            fit_distributed(estimator, da.from_array(X_, chunks=(30, 5, 2)),
                            da.from_array(y_, chunks=30), client=client)
    assert pickle.dumps(estimator) == before
    with pytest.raises(ValueError, match="sync_every"):
        fit_distributed(estimator, da.from_array(X, chunks=(30, 5, 2)),
                        da.from_array(y, chunks=30), sync_every=0, client=client)
    with pytest.raises(TypeError, match="dask array"):
        fit_distributed(estimator, X, y, client=client)
    blocks = da.from_array(X, chunks=(30, 5, 2)), da.from_array(y, chunks=30)
    with pytest.raises(TypeError, match="client"):
        fit_distributed(estimator, *blocks, client="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="timings"):
        fit_distributed(estimator, *blocks, client=client, timings=[])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="at least 2 rows"):
            fit_distributed(LSTMRegressor(early_stopping=True), da.from_array(X, chunks=1),
                            da.from_array(y, chunks=1), client=client)
