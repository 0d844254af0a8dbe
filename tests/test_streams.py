"""`nlstm.streams`: a fitted model fed a chunk of steps at a time, its state carried between
calls, gives what predict gives on the prefixes (or the whole sequences)."""
import pickle
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from nlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 13, 2))
Y = X[:, :, 0].sum(axis=1)
TOL = {"float64": 1e-12, "float32": 1e-6}


def chunks(sequence, sizes):
    """Split (n, T, ...) along T into chunks of the given sizes, cycled."""
    start, i = 0, 0
    while start < sequence.shape[1]:
        size = sizes[i % len(sizes)]
        yield sequence[:, start:start + size]
        start, i = start + size, i + 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_many_to_one_stream_equals_predict_on_every_prefix(cell, dtype):
    reg = LSTMRegressor(hidden_size=8, num_layers=2, cell=cell, dtype=dtype, max_iter=3,
                        random_state=0).fit(X, Y)
    stream_of = X[:3]
    prefixes = np.stack([reg.predict(stream_of[:, :t + 1]) for t in range(13)], axis=1)
    for sizes in ([1], [2, 3, 5], [13]):
        s = reg.stream(n_streams=3)
        got = np.concatenate([s.predict(c) for c in chunks(stream_of, sizes)], axis=1)
        assert got.shape == (3, 13)
        np.testing.assert_allclose(got, prefixes, rtol=TOL[dtype], atol=TOL[dtype])


def test_return_sequences_stream_equals_predict_proba_on_the_whole_sequences():
    labels = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
    clf = LSTMClassifier(hidden_size=8, return_sequences=True, dtype="float64", max_iter=3,
                         random_state=0).fit(X, labels)
    want = clf.predict_proba(X[:4])
    s = clf.stream(n_streams=4)
    got = np.concatenate([s.predict_proba(c) for c in chunks(X[:4], [4, 1])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    s.reset()
    np.testing.assert_array_equal(s.predict(X[:4]), clf.predict(X[:4]))


def test_state_resumes_a_stream_and_reset_starts_over():
    reg = LSTMRegressor(hidden_size=8, dtype="float64", max_iter=2, random_state=0).fit(X, Y)
    s = reg.stream(n_streams=2)
    s.predict(X[:2, :5])
    saved = s.state
    assert isinstance(saved, tuple) and saved[0].shape == (1, 2, 8)
    rest = s.predict(X[:2, 5:])
    resumed = reg.stream(n_streams=2, initial_state=saved).predict(X[:2, 5:])
    np.testing.assert_array_equal(resumed, rest)
    s.reset()
    np.testing.assert_array_equal(s.predict(X[:2, :5]), reg.stream(2).predict(X[:2, :5]))
    with pytest.raises(ValueError, match="shape"):
        reg.stream(n_streams=3, initial_state=saved)
    with pytest.raises(TypeError, match="pair"):
        reg.stream(n_streams=2, initial_state=saved[0])


def test_greedy_sampling_equals_the_chain_of_predictions():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 6, (60, 9))
    clf = LSTMClassifier(embedding_dim=4, hidden_size=8, return_sequences=True, max_iter=3,
                         random_state=0).fit(tokens[:, :-1], tokens[:, 1:])  # the next token
    prompt = tokens[:2, :3]
    s = clf.stream(n_streams=2)
    s.predict(prompt)
    drawn = s.sample(5, temperature=0)
    sequence = prompt
    for _ in range(5):  # greedy continuation through predict on the whole sequence
        sequence = np.concatenate([sequence, clf.predict(sequence)[:, -1:]], axis=1)
    np.testing.assert_array_equal(drawn, sequence[:, 3:])
    hot = clf.stream(2)
    hot.predict(prompt)
    again = clf.stream(2)
    again.predict(prompt)
    np.testing.assert_array_equal(hot.sample(6, temperature=1.5, random_state=3),
                                  again.sample(6, temperature=1.5, random_state=3))
    with pytest.raises(ValueError, match="predict a chunk first"):
        clf.stream(2).sample(3)


def test_bad_chunks_are_refused_and_leave_the_state_alone():
    reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, Y)
    s = reg.stream(n_streams=2)
    s.predict(X[:2, :4])
    before = s.state
    bad = X[:2, :3].copy()
    bad[1, 2, 0] = np.nan
    for chunk, match in [(X[:3, :2], "holds 3 streams"), (X[:2, :2, :1], "features"),
                         (bad, "NaN"), (X[:2, 0], "3-d"), (X[:2, :0], "timestep")]:
        with pytest.raises(ValueError, match=match):
            s.predict(chunk)
        for a, b in zip(s.state, before):
            np.testing.assert_array_equal(a, b)
    tok = LSTMClassifier(embedding_dim=3, hidden_size=4, max_iter=1, random_state=0).fit(
        RNG.integers(0, 5, (30, 4)), RNG.integers(0, 2, 30))
    with pytest.raises(ValueError, match="vocabulary"):
        tok.stream().predict([[1, 7]])
    with pytest.raises(ValueError, match="bidirectional"):
        LSTMRegressor(hidden_size=4, bidirectional=True, max_iter=1).fit(X, Y).stream()
    with pytest.raises(ValueError, match="token classifier"):
        s.sample(2)


def test_streams_never_change_the_model_and_run_in_threads():
    reg = LSTMRegressor(hidden_size=8, dtype="float64", max_iter=2, random_state=0).fit(X, Y)
    before = pickle.dumps(reg)
    def work(i, results):
        s = reg.stream(2)
        results[i] = np.concatenate([s.predict(c) for c in chunks(X[2 * i:2 * i + 2], [3])],
                                    axis=1)

    alone = [None] * 4
    for i in range(4):
        work(i, alone)
    results = [None] * 4

    threads = [threading.Thread(target=work, args=(i, results)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, alone):
        np.testing.assert_array_equal(got, want)
    shared = reg.stream(1)
    threads = [threading.Thread(target=shared.predict, args=(X[:1, :5],)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serial = reg.stream(1)
    for _ in range(3):
        serial.predict(X[:1, :5])
    np.testing.assert_array_equal(shared.state[0], serial.state[0])  # three chunks, in turn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert pickle.dumps(reg) == before


def test_bad_stream_and_sample_arguments_are_named():
    reg = LSTMRegressor(hidden_size=4, max_iter=1, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="n_streams"):
        reg.stream(n_streams=0)
    with pytest.raises(TypeError, match="n_streams"):
        reg.stream(n_streams=1.5)
    with pytest.raises(AttributeError, match="classifiers"):
        reg.stream().predict_proba(X[:1, :2])
    tokens = RNG.integers(0, 5, (40, 6))
    clf = LSTMClassifier(embedding_dim=3, hidden_size=4, return_sequences=True, max_iter=1,
                         random_state=0).fit(tokens[:, :-1], tokens[:, 1:])
    s = clf.stream()
    s.predict(tokens[:1, :3])
    for kwargs, error in [(dict(n_steps=0), ValueError), (dict(n_steps=2.0), TypeError),
                          (dict(n_steps=2, temperature=-1.0), ValueError),
                          (dict(n_steps=2, temperature=float("nan")), ValueError)]:
        name = "temperature" if "temperature" in kwargs else "n_steps"
        with pytest.raises(error, match=name):
            s.sample(**kwargs)


def test_plain_arrays_with_bad_values_get_predicts_errors_and_leave_the_state_alone():
    """Arrays of the model's form skip predict's checks: the kernel refuses what it cannot
    read, and the same error as predict's names it."""
    reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, Y)  # float32
    s = reg.stream(n_streams=2)
    s.predict(X[:2, :4])
    before = s.state
    huge, infinite = X[:2, :3].copy(), X[:2, :3].astype(np.float32)
    huge[0, 1, 1] = 1e39
    infinite[1, 0, 0] = np.inf
    for chunk, match in [(huge, "too large for float32"), (infinite, "infinity")]:
        with pytest.raises(ValueError, match=match):
            s.predict(chunk)
        for a, b in zip(s.state, before):
            np.testing.assert_array_equal(a, b)
    as32 = reg.stream(2, initial_state=before).predict(X[:2, 4:].astype(np.float32))
    np.testing.assert_array_equal(s.predict(X[:2, 4:]), as32)  # cast on the way in alike

    tokens = RNG.integers(0, 5, (30, 4))
    tok = LSTMClassifier(embedding_dim=3, hidden_size=4, cell="gru", max_iter=1,
                         random_state=0).fit(tokens, RNG.integers(0, 2, 30))
    t = tok.stream(n_streams=2)
    t.predict(tokens[:2])
    saved = t.state
    for ids, match in [(np.array([[1, 7], [0, 0]]), "vocabulary"),
                       (np.array([[1, -1], [0, 0]]), "non-negative"),
                       (np.array([[1, 2**64 - 1], [0, 0]], dtype=np.uint64), "beyond")]:
        with pytest.raises(ValueError, match=match):
            t.predict(ids)
        np.testing.assert_array_equal(t.state, saved)
    np.testing.assert_array_equal(t.predict(tokens[2:4].astype(np.int32)),
                                  tok.stream(2, initial_state=saved).predict(tokens[2:4]))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_two_layer_token_streams_equal_predict_proba_and_the_layers_final_state(cell):
    """Token ids, two layers, every cell: stepwise probabilities equal predict_proba on the
    whole sequences, and the carried state is the layer's own final state, bit for bit."""
    tokens = RNG.integers(0, 7, (50, 11))
    clf = LSTMClassifier(embedding_dim=5, hidden_size=6, num_layers=2, cell=cell,
                         return_sequences=True, dtype="float64", max_iter=2,
                         random_state=0).fit(tokens[:, :-1], tokens[:, 1:])
    s = clf.stream(n_streams=3)
    got = np.concatenate([s.predict_proba(c) for c in chunks(tokens[:3], [1, 4])], axis=1)
    np.testing.assert_allclose(got, clf.predict_proba(tokens[:3]), rtol=1e-12, atol=1e-12)
    network = clf.network_
    _, final = network.lstm.forward(network.embedding[tokens[:3]])
    for carried, want in zip(s.state if cell == "lstm" else [s.state],
                             final if cell == "lstm" else [final]):
        np.testing.assert_array_equal(carried, want)


def test_many_streams_run_in_parallel_blocks_with_the_bits_of_one_thread():
    """64 streams split into blocks of rows on Numba's threads: the same as predict on the
    prefixes, and the same bits at n_jobs=1."""
    X64 = np.random.default_rng(2).standard_normal((64, 6, 3))
    reg = LSTMRegressor(hidden_size=16, max_iter=1, random_state=0).fit(X64, X64.sum(axis=(1, 2)))
    s = reg.stream(n_streams=64)
    if not s._kernel.parallel:
        pytest.skip("Numba has one thread: a single block of rows")
    got = np.concatenate([s.predict(X64[:, t:t + 1]) for t in range(6)], axis=1)
    prefixes = np.stack([reg.predict(X64[:, :t + 1]) for t in range(6)], axis=1)
    np.testing.assert_allclose(got, prefixes, rtol=1e-5, atol=1e-6)
    one = reg.set_params(n_jobs=1).stream(n_streams=64)
    np.testing.assert_array_equal(
        np.concatenate([one.predict(X64[:, t:t + 1]) for t in range(6)], axis=1), got)


def test_a_stream_keeps_the_model_it_was_made_from():
    reg = LSTMRegressor(hidden_size=8, dtype="float64", max_iter=2, random_state=0).fit(X, Y)
    s, fresh = reg.stream(), reg.stream()
    first = s.predict(X[:1, :6])
    reg.partial_fit(X, Y)  # updates the fitted network in place of the old one
    assert not np.allclose(reg.stream().predict(X[:1, :6]), first)
    np.testing.assert_array_equal(fresh.predict(X[:1, :6]), first)
