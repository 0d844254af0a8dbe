"""LSTMRegressor / LSTMClassifier behaviour users rely on."""
import os
import pickle
import warnings

import numba
import numpy as np
import pytest
from concurrency import results_from_threads
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nlstm import LSTM, LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def first_input_task(n, T, n_classes=4, seed=0):
    """The label is given by the first of T inputs; the rest is noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    X = rng.standard_normal((n, T, n_classes)).astype(np.float32) * 0.5
    X[np.arange(n), 0, :] = np.eye(n_classes)[labels] * 2
    return X, labels


def sum_task(n, seed=0, ragged=False):
    """Regression: the target is the sum of a sequence's values."""
    rng = np.random.default_rng(seed)
    if ragged:
        X = [rng.uniform(-1, 1, (int(rng.integers(3, 12)), 1)) for _ in range(n)]
        return X, np.array([x.sum() for x in X])
    X = rng.uniform(-1, 1, (n, 8))
    return X, X.sum(axis=1)


def test_chrono_default_learns_long_memory_and_zero_forget_bias_does_not():
    X, y = first_input_task(1200, 100)
    X_test, y_test = first_input_task(400, 100, seed=1)
    common = dict(hidden_size=32, max_iter=15, random_state=0)
    default = LSTMClassifier(**common).fit(X, y)
    zero = LSTMClassifier(forget_bias=0.0, **common).fit(X, y)
    assert default.get_params()["forget_bias"] == "chrono"
    assert default.score(X_test, y_test) >= 0.95
    assert zero.score(X_test, y_test) <= 0.40  # chance is 0.25


def test_digits_as_sequences_of_rows():
    """scikit-learn's digits, each image read as 8 rows of 8 pixels."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8)
    clf = LSTMClassifier(hidden_size=64, max_iter=60, random_state=0)
    clf.fit(X[:1400], y[:1400])
    accuracy = clf.score(X[1400:], y[1400:])
    majority = np.bincount(y[1400:]).max() / len(y[1400:])
    assert majority < 0.11
    assert accuracy >= 0.90  # 92.9% measured (session 34)


def test_regressor_ragged_sequences_are_not_truncated():
    X, y = sum_task(400, ragged=True)
    reg = LSTMRegressor(hidden_size=32, max_iter=60, random_state=0).fit(X, y)
    X_test, y_test = sum_task(100, seed=1, ragged=True)
    assert reg.score(X_test, y_test) > 0.9
    assert reg.predict(X_test).shape == (100,)
    # a sequence longer than any seen in training still works
    long = [np.full((20, 1), 0.1)]
    assert abs(reg.predict(long)[0] - 2.0) < 1.0


def test_classifier_string_labels_and_ragged_input():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((int(rng.integers(2, 9)), 2)) for _ in range(300)]
    y = np.array(["up" if x[:, 0].mean() > 0 else "down" for x in X])
    clf = LSTMClassifier(hidden_size=16, max_iter=40, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["down", "up"]
    assert set(clf.predict(X)) <= {"up", "down"}
    assert clf.score(X, y) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_object_array_or_series_of_sequences_is_read_as_a_list():
    # a DataFrame column of sequences is a Series of arrays: the list form
    rng = np.random.default_rng(1)
    X = [rng.standard_normal((int(rng.integers(2, 9)), 2)) for _ in range(30)]
    y = np.array([x[:, 0].sum() for x in X])
    as_objects = np.empty(len(X), dtype=object)
    as_objects[:] = X
    reference = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    expected = reference.predict(X)
    np.testing.assert_array_equal(
        LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(as_objects, y).predict(X),
        expected)
    np.testing.assert_array_equal(reference.predict(as_objects), expected)
    pd = pytest.importorskip("pandas")
    np.testing.assert_array_equal(reference.predict(pd.Series(X)), expected)


def test_multiclass_proba_rows_sum_to_one_and_match_predict():
    X, y = first_input_task(300, 5, n_classes=3)
    clf = LSTMClassifier(hidden_size=16, max_iter=10, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


def test_token_ids_sentiment_model():
    """Embedding -> 2-layer LSTM with dropout -> sigmoid, on token ids."""
    rng = np.random.default_rng(0)
    vocab, n = 30, 400
    good, bad = [3, 4, 5], [6, 7, 8]
    X, y = [], []
    for _ in range(n):
        seq = rng.integers(10, vocab, int(rng.integers(4, 15)))
        label = rng.integers(0, 2)
        seq[rng.integers(0, len(seq))] = rng.choice(good if label else bad)
        X.append(seq)
        y.append(["neg", "pos"][label])
    clf = LSTMClassifier(embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.2,
                         max_iter=30, random_state=0).fit(X[:300], y[:300])
    assert clf.network_.embedding.shape == (vocab, 8)
    assert clf.network_.lstm.num_layers == 2
    assert clf.predict_proba(X[300:]).shape == (100, 2)
    assert clf.score(X[300:], y[300:]) > 0.85
    with pytest.raises(ValueError, match="vocabulary"):
        clf.predict([np.array([1, 2, vocab + 5])])
    with pytest.raises(ValueError, match="token ids"):
        clf.predict([np.array([1.5, 2.0])])


def test_token_table_accepts_any_length_after_fit():
    """A 2-d array of token ids is a batch of sequences: its length is free after fit."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 12, (120, 20))
    y = X[:, 0] % 2
    clf = LSTMClassifier(embedding_dim=4, hidden_size=8, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_features_in_ == 1  # one token per step
    longer = rng.integers(0, 12, (5, 35))
    assert clf.predict_proba(longer).shape == (5, 2)
    np.testing.assert_array_equal(clf.predict_proba(longer), clf.predict_proba(list(longer)))
    seq = LSTMClassifier(embedding_dim=4, hidden_size=8, max_iter=2, return_sequences=True,
                         random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        seq.fit(X, np.roll(X, -1, axis=1) % 3)
    assert seq.predict_proba(longer[:, :7]).shape == (5, 7, 3)


def test_return_sequences_regression_and_labelling():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 10, 1))
    y = np.cumsum(X[:, :, 0], axis=1)  # running sum: a per-step target
    reg = LSTMRegressor(hidden_size=32, return_sequences=True, max_iter=60,
                        random_state=0).fit(X, y)
    assert reg.predict(X).shape == (200, 10)
    assert reg.score(X, y) > 0.9
    labels = np.where(y > 0, "pos", "neg")
    clf = LSTMClassifier(hidden_size=16, return_sequences=True, max_iter=30,
                         random_state=0).fit(X, labels)
    assert clf.predict(X).shape == (200, 10)
    assert clf.predict_proba(X).shape == (200, 10, 2)
    assert clf.score(X, labels) > 0.85
    # ragged: one target per valid step, results as lists
    X_list = [X[i, :n] for i, n in enumerate(rng.integers(2, 11, 200))]
    y_list = [np.cumsum(x[:, 0]) for x in X_list]
    reg_r = LSTMRegressor(hidden_size=16, return_sequences=True, max_iter=20,
                          random_state=0).fit(X_list, y_list)
    pred = reg_r.predict(X_list)
    assert isinstance(pred, list) and all(p.shape == (len(x),) for p, x in zip(pred, X_list))
    assert reg_r.score(X_list, y_list) > 0.5


def test_multi_output_regression():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 6, 2))
    y = np.stack([X[:, :, 0].sum(1), X[:, :, 1].mean(1) * 100 + 1000], axis=1)
    reg = LSTMRegressor(hidden_size=32, max_iter=80, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (300, 2)
    assert reg.score(X, y) > 0.9  # targets on very different scales both learnt


def test_pipeline_gridsearch_cross_val_and_clone():
    X, y = sum_task(200)
    pipe = make_pipeline(StandardScaler(), LSTMRegressor(hidden_size=8, max_iter=5, random_state=0))
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (200,)
    scores = cross_val_score(LSTMRegressor(hidden_size=8, max_iter=3, random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    grid = GridSearchCV(LSTMRegressor(max_iter=3, random_state=0),
                        {"hidden_size": [4, 8], "solver": ["adam", "sgd"]}, cv=2, n_jobs=2)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"hidden_size", "solver"}
    assert len(grid.cv_results_["mean_test_score"]) == 4
    est = LSTMClassifier(hidden_size=5, dropout=0.1, forget_bias=2.0)
    assert clone(est).get_params() == est.get_params()


def test_same_random_state_gives_bit_identical_predictions():
    X, y = first_input_task(200, 12, n_classes=3)
    kw = dict(hidden_size=16, num_layers=2, dropout=0.3, max_iter=3, random_state=42)
    a = LSTMClassifier(**kw).fit(X, y).predict_proba(X)
    b = LSTMClassifier(**kw).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = LSTMClassifier(**{**kw, "random_state": 43}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


def test_n_jobs_sets_numba_threads_for_the_call_and_restores_them():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    X, y = sum_task(100)
    before = numba.get_num_threads()
    results = []
    for n_jobs in (1, 2, -1):
        reg = LSTMRegressor(hidden_size=8, max_iter=2, n_jobs=n_jobs, random_state=0).fit(X, y)
        results.append(reg.predict(X))
        assert numba.get_num_threads() == before
    np.testing.assert_array_equal(results[0], results[1])


def _numba_threads_of_a_fit():
    """The Numba thread count a fit with ``n_jobs=-1`` runs its kernels with
    in this process (called in joblib's worker processes)."""
    from nlstm.kernels import cpu
    seen, original = [], cpu.lstm_backward

    def spy(*args, **kwargs):
        seen.append(numba.get_num_threads())
        return original(*args, **kwargs)

    cpu.lstm_backward = spy
    try:
        X, y = sum_task(32)
        LSTMRegressor(hidden_size=4, max_iter=1, n_jobs=-1, random_state=0).fit(X, y)
    finally:
        cpu.lstm_backward = original
    return max(seen)


def test_joblib_process_workers_do_not_oversubscribe_the_cores():
    # GridSearchCV(n_jobs=k) and cross_val_score(n_jobs=k) run fits in joblib's
    # process workers: with n_jobs=-1 on the estimator, k workers must still
    # share the cores, not each take all of them
    joblib = pytest.importorskip("joblib")
    n_workers = 2
    threads = joblib.Parallel(n_jobs=n_workers, backend="loky")(
        joblib.delayed(_numba_threads_of_a_fit)() for _ in range(n_workers))
    assert all(t * n_workers <= max(os.cpu_count(), n_workers) for t in threads), threads


def test_blas_is_single_threaded_during_fit_and_predict_and_restored_after(monkeypatch):
    """Kernels call a BLAS from Numba's threads (`nlstm.kernels.codegen.blas`): a
    multi-threaded BLAS there oversubscribes the cores. Check the thread count
    of every BLAS (the kernels' and SciPy's) that each kernel call sees, and
    that the user's setting comes back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from nlstm.kernels import cpu
    from nlstm.kernels.codegen.blas import routines

    def blas_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas"}

    seen = []

    def spying_on(name):
        original = getattr(cpu, name)

        def spy(*args, **kwargs):
            seen.append((name, blas_threads()))
            return original(*args, **kwargs)

        monkeypatch.setattr(cpu, name, spy)

    spying_on("lstm_backward")  # once per backward pass
    spying_on("lstm_inference_sweep")  # once per predict batch
    X, y = sum_task(64)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        reg = LSTMRegressor(hidden_size=8, max_iter=1, batch_size=32, random_state=0).fit(X, y)
        reg.predict(X)
        assert blas_threads() == before
    assert {name for name, _ in seen} == {"lstm_backward", "lstm_inference_sweep"}
    assert all(set(threads.values()) == {1} for _, threads in seen)
    kernels_blas = routines()["source"]
    assert kernels_blas == "scipy.linalg.cython_blas" or kernels_blas in seen[0][1]
    assert any("scipy" in path for path in seen[0][1])


def test_pickle_round_trip_is_exact():
    X, y = first_input_task(100, 6)
    clf = LSTMClassifier(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
    clone_ = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_proba(X), clone_.predict_proba(X))
    assert len(pickle.dumps(clf)) < 100_000  # no training activations kept


def test_predict_from_8_threads_at_once():
    X, y = first_input_task(256, 20)
    clf = LSTMClassifier(hidden_size=32, max_iter=2, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)

    def work(i):
        return [clf.predict_proba(X) for _ in range(5)][-1]

    for r in results_from_threads(work, 8):
        np.testing.assert_array_equal(r, expected)


def test_early_stopping_restores_best_weights():
    X, y = sum_task(300)
    reg = LSTMRegressor(hidden_size=16, early_stopping=True, n_iter_no_change=3,
                        max_iter=200, learning_rate_init=0.05, random_state=0).fit(X, y)
    assert reg.n_iter_ < 200
    assert len(reg.validation_scores_) == reg.n_iter_
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    # the kept weights are the best epoch's, not the last one's
    best_epoch = int(np.argmax(reg.validation_scores_))
    assert best_epoch < reg.n_iter_ - 1 or reg.n_iter_ == 200


def test_convergence_warning_loss_curve_and_verbose(capsys):
    X, y = sum_task(100)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        reg = LSTMRegressor(hidden_size=8, max_iter=3, verbose=True, random_state=0).fit(X, y)
    assert len(reg.loss_curve_) == reg.n_iter_ == 3
    out = capsys.readouterr().out
    assert out.count("Epoch") == 3 and "loss =" in out and "s\n" in out


def test_partial_fit_and_warm_start_continue_training():
    X, y = first_input_task(200, 6, n_classes=3)
    clf = LSTMClassifier(hidden_size=8, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "network_")
    clf.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    clf.partial_fit(X[100:], y[100:])
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="differs"):
        clf.partial_fit(X, y, classes=[0, 1])
    warm = LSTMClassifier(hidden_size=8, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    w0 = warm.network_.head_weight.copy()
    warm.fit(X, y)
    assert warm.n_iter_ == 4 and not np.array_equal(w0, warm.network_.head_weight)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_partial_fit_and_warm_start_equal_one_long_fit(dropout):
    """Continuing trains the whole network: k calls of partial_fit, or a fit
    continued with warm_start, give the bits of one fit of k epochs (the LSTM's
    named parameter views must survive the copy a continued fit works on, and
    with dropout the masks and the shuffling must go on drawing from one
    random generator, as in the long fit)."""
    X, y = sum_task(120)
    settings = dict(hidden_size=8, batch_size=32, n_iter_no_change=100, dropout=dropout,
                    random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        long_fit = LSTMRegressor(max_iter=3, **settings).fit(X, y)
        stepwise = LSTMRegressor(**settings)
        for _ in range(3):
            stepwise.partial_fit(X, y)
        warm = LSTMRegressor(max_iter=1, warm_start=True, **settings).fit(X, y)
        warm.set_params(max_iter=2).fit(X, y)
    for continued in (stepwise, warm):
        assert continued.loss_curve_ == long_fit.loss_curve_
        for got, want in zip(continued.network_.params, long_fit.network_.params):
            np.testing.assert_array_equal(got, want)
        for name, value in long_fit.network_.lstm.state_dict().items():
            np.testing.assert_array_equal(continued.network_.lstm.state_dict()[name], value)
        np.testing.assert_array_equal(continued.predict(X), long_fit.predict(X))


@pytest.mark.parametrize("change", [dict(hidden_size=16), dict(num_layers=2),
                                    dict(bidirectional=True), dict(cell="rnn"), dict(cell="gru"),
                                    dict(return_sequences=True), dict(dtype="float64")])
def test_continuing_with_another_network_shape_is_refused_and_changes_nothing(change):
    X, y = sum_task(64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = LSTMRegressor(hidden_size=8, max_iter=1, warm_start=True, random_state=0).fit(X, y)
    before = pickle.dumps(reg)
    name = next(iter(change))
    reg.set_params(**change)
    for continue_fit in (reg.fit, reg.partial_fit):
        with pytest.raises(ValueError, match=f"{name}=.* built with {name}="):
            continue_fit(X, y)
    assert pickle.dumps(reg.set_params(**{name: LSTMRegressor(hidden_size=8).get_params()[name]
                                           })) == before


def test_continuing_uses_the_current_training_settings():
    X, y = first_input_task(64, 5, n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LSTMClassifier(hidden_size=8, num_layers=2, max_iter=1, warm_start=True,
                             random_state=0).fit(X, y)
        clf.set_params(dropout=0.25, solver="sgd", momentum=0.5).fit(X, y)
    assert clf.network_.dropout == 0.25 and clf.network_.lstm.dropout == 0.25
    assert type(clf._optimizer).__name__ == "SGDOptimizer" and clf._optimizer.momentum == 0.5
    assert clf.n_iter_ == 2


def test_predict_log_proba_is_the_log_of_predict_proba_and_finite():
    for n_classes in (2, 3):
        X, y = first_input_task(64, 5, n_classes=n_classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LSTMClassifier(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
        np.testing.assert_allclose(clf.predict_log_proba(X), np.log(clf.predict_proba(X)),
                                   rtol=1e-12, atol=1e-12)
        # logits far beyond float64's rounding of a probability to 1 stay finite
        clf.network_.head_weight *= 1e4
        assert np.isfinite(clf.predict_log_proba(X)).all()
    tagger = LSTMClassifier(hidden_size=4, max_iter=1, return_sequences=True, random_state=0)
    ragged = [np.ones((n, 2)) * n for n in (2, 3, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tagger.fit(ragged, [np.arange(n) % 2 for n in (2, 3, 5)])
    for log_p, p in zip(tagger.predict_log_proba(ragged), tagger.predict_proba(ragged)):
        np.testing.assert_allclose(log_p, np.log(p), rtol=1e-12, atol=1e-12)


def test_sample_weight_of_ones_or_rescaled_changes_no_bit():
    X, y = first_input_task(96, 5, n_classes=3)
    ragged = [np.ones((n, 2)) * (n % 3) for n in range(1, 13)]
    tags = [np.arange(n) % 2 for n in range(1, 13)]
    w = np.random.default_rng(0).uniform(0.1, 3, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for make, data, target, weights in [
            (lambda: LSTMClassifier(hidden_size=8, max_iter=3, random_state=0), X, y, w),
            (lambda: LSTMRegressor(hidden_size=8, max_iter=3, early_stopping=True,
                                   validation_fraction=0.25, random_state=0),
             X, X[:, :, 0].sum(axis=1), w),
            (lambda: LSTMClassifier(hidden_size=4, max_iter=3, return_sequences=True,
                                    random_state=0), ragged, tags, w[:12]),
        ]:
            plain = make().fit(data, target)
            ones = make().fit(data, target, sample_weight=np.ones(len(target)))
            weighted = make().fit(data, target, sample_weight=weights)
            doubled = make().fit(data, target, sample_weight=2 * weights)  # exact in binary
            assert ones.loss_curve_ == plain.loss_curve_
            assert doubled.loss_curve_ == weighted.loss_curve_ != plain.loss_curve_
            for a, b in [(ones, plain), (doubled, weighted)]:
                for got, want in zip(a.network_.params, b.network_.params):
                    np.testing.assert_array_equal(got, want)


def test_sample_weight_moves_the_decision_towards_the_heavier_class():
    # labels are noise: the unweighted model predicts both classes; weighing
    # class 1 nine times as much makes it predict class 1 far more often
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4, 2)).astype(np.float32)
    y = rng.integers(0, 2, 300)
    kw = dict(hidden_size=8, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = LSTMClassifier(**kw).fit(X, y)
        heavy = LSTMClassifier(**kw).fit(X, y, sample_weight=np.where(y == 1, 9.0, 1.0))
    assert heavy.predict(X).mean() > 0.9 > plain.predict(X).mean()


@pytest.mark.parametrize("weights,match", [
    (-np.ones(40), "(?i)negative"),
    (np.ones(39), "sample_weight"),
    (np.zeros(40), "weight.*zero"),
    (np.full(40, np.nan), "NaN"),
])
def test_bad_sample_weight_is_refused_and_changes_nothing(weights, match):
    X, y = first_input_task(40, 4, n_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LSTMClassifier(hidden_size=4, max_iter=1, warm_start=True, random_state=0).fit(X, y)
    before = pickle.dumps(clf)
    for fit in (clf.fit, clf.partial_fit):
        with pytest.raises(ValueError, match=match):
            fit(X, y, sample_weight=weights)
    assert pickle.dumps(clf) == before


def test_early_stopping_split_without_weight_is_refused_before_training():
    X, y = first_input_task(40, 4, n_classes=2)
    weights = np.zeros(40)
    weights[:2] = 1.0  # the validation split of 8 samples gets none of them here
    clf = LSTMClassifier(hidden_size=4, early_stopping=True, validation_fraction=0.2,
                         random_state=0)
    with pytest.raises(ValueError, match="validation split .* only samples of sample_weight 0"):
        clf.fit(X, y, sample_weight=weights)
    assert not hasattr(clf, "network_")


@pytest.mark.parametrize("n, n_classes", [(5, 2), (10, 3)])
def test_early_stopping_when_the_validation_part_is_smaller_than_the_class_count(n, n_classes):
    # validation_fraction=0.1 holds out 1 sample: too few for a stratified
    # split, so the split is a plain random one (scikit-learn's splitter
    # would raise about its test_size, a name the user never passed)
    X, _ = first_input_task(n, 3, n_classes=n_classes)
    y = np.arange(n) % n_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LSTMClassifier(hidden_size=4, early_stopping=True, max_iter=2,
                             random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == 2


def test_early_stopping_split_is_stratified_where_it_can_be():
    y = np.array([0] * 30 + [1] * 10)
    Y = np.eye(2)[y]
    clf = LSTMClassifier(validation_fraction=0.2)
    for seed in range(5):
        train, val = clf._split_validation(40, Y, np.random.RandomState(seed))
        assert np.bincount(y[val], minlength=2).tolist() == [6, 2]
        assert sorted(np.concatenate([train, val]).tolist()) == list(range(40))


def test_score_takes_sample_weight_per_sequence():
    from sklearn.metrics import accuracy_score, r2_score
    X, y = sum_task(64)
    weights = np.random.default_rng(0).uniform(0, 2, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
    assert reg.score(X, y, sample_weight=weights) == pytest.approx(
        r2_score(y, reg.predict(X), sample_weight=weights))
    assert reg.score(X, y, sample_weight=weights) != pytest.approx(reg.score(X, y))
    # per timestep: each step weighs its sequence's weight
    ragged = [np.full((n, 1), 0.1 * n) for n in (2, 3, 5, 4)]
    labels = [np.arange(n) % 2 for n in (2, 3, 5, 4)]
    w = np.array([1.0, 0.0, 2.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tagger = LSTMClassifier(hidden_size=4, max_iter=3, return_sequences=True,
                                random_state=0).fit(ragged, labels)
    pred = np.concatenate(tagger.predict(ragged))
    expected = accuracy_score(np.concatenate(labels), pred,
                              sample_weight=np.repeat(w, [2, 3, 5, 4]))
    assert tagger.score(ragged, labels, sample_weight=w) == pytest.approx(expected)
    for model, data, target in [(reg, X, y), (tagger, ragged, labels)]:
        n = len(target)
        # scikit-learn's messages: its metrics' length check, or _check_sample_weight's
        with pytest.raises(ValueError, match=rf"inconsistent numbers of samples: \[{n}, {n}, "
                                             rf"{n + 1}\]|sample_weight.shape == \({n + 1},\)"):
            model.score(data, target, sample_weight=np.ones(n + 1))


def test_unpickled_layer_computes_with_the_parameters_it_is_given():
    layer = pickle.loads(pickle.dumps(LSTM(2, 4, random_state=0)))
    x = np.ones((3, 5, 2), np.float32)
    before, _ = layer.forward(x)
    layer.flat_parameters[...] = 0  # through the flat buffer, as the optimizers write
    after, _ = layer.forward(x)
    assert np.abs(before).max() > 0 and np.abs(after).max() == 0
    assert all(np.all(v == 0) for v in layer.state_dict().values())


def test_sgd_solver_and_l2_penalty_train():
    X, y = sum_task(200)
    reg = LSTMRegressor(hidden_size=16, solver="sgd", learning_rate_init=0.05, alpha=1e-4,
                        max_iter=40, random_state=0).fit(X, y)
    assert reg.loss_curve_[-1] < reg.loss_curve_[0] / 2
    big = LSTMRegressor(hidden_size=16, alpha=1.0, max_iter=20, random_state=0).fit(X, y)
    small = LSTMRegressor(hidden_size=16, alpha=0.0, max_iter=20, random_state=0).fit(X, y)
    assert np.abs(big.network_.head_weight).sum() < np.abs(small.network_.head_weight).sum()


def test_bidirectional_rnn_cell_and_float64():
    X, y = sum_task(100)
    for kw in (dict(bidirectional=True), dict(cell="rnn"), dict(cell="gru"),
               dict(cell="gru", num_layers=2, bidirectional=True, dropout=0.2),
               dict(dtype="float64")):
        reg = LSTMRegressor(hidden_size=8, max_iter=3, random_state=0, **kw).fit(X, y)
        assert reg.predict(X).dtype == np.float64
        assert np.all(np.isfinite(reg.predict(X)))


@pytest.mark.parametrize("how", ["partial_fit", "warm_start", "refit"])
def test_interrupted_training_leaves_model_unchanged(monkeypatch, how):
    """An interruption in the middle of training (here in the second epoch of
    a warm-start fit or of a fresh fit, or in the middle of a partial_fit)
    leaves every fitted attribute as it was: the weights, the loss curve
    training appends to, and the random generator that shuffling and dropout
    draw from (for the fresh fit, a RandomState given as random_state, which
    the fitted model holds too), so that the next call gives what it would
    have given without the failed one."""
    X, y = sum_task(96)
    kw = dict(hidden_size=8, max_iter=2, batch_size=16, dropout=0.3,
              random_state=np.random.RandomState(0) if how == "refit" else 0)
    reg = LSTMRegressor(**kw).fit(X, y)
    reg.partial_fit(X, y)  # continued once: a copied network shares the generator
    before = pickle.dumps(reg)
    untouched = pickle.loads(before)
    train_step, calls = LSTMRegressor._train_step, []

    def interrupted_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == (3 if how == "partial_fit" else 9):  # 6 batches an epoch
            raise KeyboardInterrupt
        return train_step(self, *args, **kwargs)

    monkeypatch.setattr(LSTMRegressor, "_train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        if how == "partial_fit":
            reg.partial_fit(X, y)
        else:
            reg.set_params(warm_start=how == "warm_start").fit(X, y)
    monkeypatch.undo()
    reg.set_params(warm_start=False)
    assert pickle.dumps(reg) == before
    reg.partial_fit(X, y)
    untouched.partial_fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), untouched.predict(X))


def test_diverging_fit_stops_with_clear_error_and_leaves_model_unchanged():
    X, y = sum_task(100)
    reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
    before = pickle.dumps(reg)
    pred = reg.predict(X)
    reg.set_params(learning_rate_init=1e30, clip_grad_norm=None, solver="sgd", warm_start=True,
                   max_iter=50)
    with pytest.raises(FloatingPointError, match="non-finite"):
        reg.fit(X * 1e3, y)
    np.testing.assert_array_equal(reg.predict(X), pred)
    assert all(np.all(np.isfinite(p)) for p in reg.network_.params)
    reg.set_params(learning_rate_init=0.003, clip_grad_norm=1.0, solver="adam", warm_start=False,
                   max_iter=2)
    assert pickle.dumps(reg) == before


def test_gru_learns_and_its_chrono_bias_sits_on_the_update_gate():
    X, y = sum_task(300)
    reg = LSTMRegressor(cell="gru", hidden_size=16, max_iter=40, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.9
    fresh = LSTMRegressor(cell="gru", hidden_size=16, max_iter=1, random_state=0).fit(X, y)
    H, state = 16, fresh.network_.lstm.state_dict()
    assert state["weight_ih_l0"].shape == (3 * H, 1)  # the columns of X are timesteps
    # after one epoch the update gate's chrono bias log(u), u >= 1, is still far above
    # the uniform +-1/sqrt(H) of the reset gate and the candidate
    assert state["bias_ih_l0"][H:2 * H].mean() > 1.0
    assert np.abs(state["bias_ih_l0"][:H]).max() < 0.5


def test_gru_token_tagger_with_return_sequences_and_two_layers():
    """Embedding -> 2-layer bidirectional GRU -> a label per step, on ragged token ids."""
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 12, int(n)) for n in rng.integers(3, 10, 120)]
    y = [(x >= 6).astype(int) for x in X]  # each step's label is its own token's half
    clf = LSTMClassifier(cell="gru", embedding_dim=8, hidden_size=16, num_layers=2,
                         bidirectional=True, return_sequences=True, max_iter=30,
                         random_state=0).fit(X, y)
    predicted = clf.predict(X)
    assert [len(p) for p in predicted] == [len(x) for x in X]
    assert clf.score(X, y) > 0.9
    assert clf.network_.lstm.state_dict()["weight_hh_l1_reverse"].shape == (48, 16)
