"""The layer reuses its working memory from call to call: results must not
change, returned arrays must never be reused, and copies must not carry it."""
import copy
import pickle

import numpy as np
import pytest

from nlstm import LSTM, LSTMRegressor


def batch(seed, B, T, F, D, H):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    d_out = rng.standard_normal((B, T, D * H)).astype(np.float32)
    return x, lengths, d_out


def step(layer, x, lengths, d_out):
    out, state = layer.forward(x, lengths=lengths, training=True)
    d_x, grads = layer.backward(d_out)
    return out, state, d_x, {k: v.copy() for k, v in grads.items()}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_batch_gives_the_same_results_after_other_batches(cell):
    F, H = 3, 8
    layer = LSTM(F, H, 2, bidirectional=True, cell=cell, random_state=0)
    fresh = copy.deepcopy(layer)
    first = batch(1, 6, 9, F, 2, H)
    want = step(fresh, *first)
    got_first = step(layer, *first)
    step(layer, *batch(2, 6, 9, F, 2, H))  # same shapes: reuses every buffer
    step(layer, *batch(3, 4, 5, F, 2, H))  # other shapes
    again = step(layer, *first)
    for got in (got_first, again):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[2], want[2])
        for name in want[3]:
            np.testing.assert_array_equal(got[3][name], want[3][name])
    # what the first call returned was not overwritten by the later ones
    np.testing.assert_array_equal(got_first[0], want[0])
    np.testing.assert_array_equal(got_first[2], want[2])


def test_pickles_and_copies_leave_out_the_working_memory():
    layer = LSTM(4, 32, random_state=0)
    size_before = len(pickle.dumps(layer))
    step(layer, *batch(0, 64, 50, 4, 1, 32))
    workspace_bytes = sum(a.nbytes for a in layer._workspace.values())
    assert workspace_bytes > 10 * size_before  # kept for the next batch
    data = pickle.dumps(layer)
    assert len(data) < 2 * size_before
    for copied in (pickle.loads(data), copy.deepcopy(layer)):
        assert copied._workspace == {} and copied._cache is None
    layer.release_workspace()
    assert layer._workspace == {}


def test_fit_releases_the_working_memory():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 6, 2)), rng.standard_normal(40)
    reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
    assert reg.network_.lstm._workspace == {}
    reg.partial_fit(X, y)
    assert reg.network_.lstm._workspace == {}
