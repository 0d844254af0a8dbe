"""Truncated backpropagation through time (``tbptt_steps``): each batch read in chunks, the
state carried from chunk to chunk and the gradient stopped at each chunk's start, one update
per chunk — as a PyTorch loop with ``detach`` does it."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from nlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
RNG = np.random.default_rng(0)
LENGTHS = [11, 7, 4, 11, 9, 2]
X = [RNG.standard_normal((n, 2)) for n in LENGTHS]
Y = [np.cumsum(x[:, :1] - x[:, 1:], axis=0) for x in X]  # (T_i, 1)


def test_chunks_as_long_as_the_sequences_are_the_plain_fit():
    settings = dict(hidden_size=5, return_sequences=True, dtype="float64", max_iter=3,
                    batch_size=3, random_state=0)
    plain = LSTMRegressor(**settings).fit(X, Y)
    chunked = LSTMRegressor(tbptt_steps=max(LENGTHS), **settings).fit(X, Y)
    for p, q in zip(plain.network_.params, chunked.network_.params):
        np.testing.assert_array_equal(p, q)


def _torch_tbptt(torch, est, weights, X, Y, k, lr):
    """One epoch of truncated BPTT in PyTorch from the network ``weights``: batches in order,
    packed chunks of k steps, the state detached between chunks, plain SGD."""
    cell = est.network_.lstm.cell
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        2, est.hidden_size, est.num_layers, batch_first=True, dtype=torch.float64)
    rnn.load_state_dict({name: torch.from_numpy(w) for name, w in weights["layer"].items()})
    head = torch.nn.Linear(est.hidden_size, 1, dtype=torch.float64)
    head.weight.data = torch.from_numpy(weights["head_weight"].T.copy())
    head.bias.data = torch.from_numpy(weights["head_bias"].copy())
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr)
    pack = torch.nn.utils.rnn.pack_padded_sequence
    unpack = torch.nn.utils.rnn.pad_packed_sequence
    T = max(len(x) for x in X)
    data, target = np.zeros((len(X), T, 2)), np.zeros((len(X), T, 1))
    for i, (x, y) in enumerate(zip(X, Y)):
        data[i, :len(x)], target[i, :len(y)] = x, (y - est._y_mean) / est._y_scale
    lengths = np.array([len(x) for x in X])
    for b0 in range(0, len(X), est.batch_size):
        rows, state = np.arange(b0, min(b0 + est.batch_size, len(X))), None
        for start in range(0, lengths[rows].max(), k):
            running = lengths[rows] > start
            if state is not None:
                keep = torch.from_numpy(np.flatnonzero(running))
                state = (tuple(s[:, keep] for s in state) if isinstance(state, tuple)
                         else state[:, keep])
            rows = rows[running]
            n = np.minimum(lengths[rows] - start, k)
            stop = start + n.max()
            packed = pack(torch.from_numpy(data[rows, start:stop]), torch.from_numpy(n),
                          batch_first=True, enforce_sorted=False)
            out, state = rnn(packed, state)
            out = unpack(out, batch_first=True)[0]
            valid = torch.from_numpy(np.arange(stop - start)[None, :] < n[:, None])
            diff = head(out)[valid] - torch.from_numpy(target[rows, start:stop])[valid]
            loss = 0.5 * (diff ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                     else state.detach())
    return rnn, head


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chunks_carry_the_state_and_stop_the_gradient_as_torch_does(cell):
    torch = pytest.importorskip("torch")
    est = LSTMRegressor(hidden_size=4, num_layers=2, cell=cell, return_sequences=True,
                        dtype="float64", max_iter=1, batch_size=3, shuffle=False,
                        random_state=0).fit(X, Y)
    network = est.network_
    weights = {"layer": network.lstm.state_dict(), "head_weight": network.head_weight.copy(),
               "head_bias": network.head_bias.copy()}
    est.set_params(warm_start=True, solver="sgd", momentum=0.0, learning_rate_init=0.1,
                   clip_grad_norm=None, tbptt_steps=4).fit(X, Y)
    rnn, head = _torch_tbptt(torch, est, weights, X, Y, k=4, lr=0.1)
    got = est.network_.lstm.state_dict()
    for name, p in rnn.state_dict().items():
        np.testing.assert_allclose(got[name], p.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(est.network_.head_weight, head.weight.detach().numpy().T,
                               rtol=1e-10, atol=1e-12)
    assert not np.allclose(got["weight_hh_l0"], weights["layer"]["weight_hh_l0"])  # it moved


def test_a_long_recording_is_learned_in_chunks():
    """One recording of 3,000 steps whose labels need the last three inputs: chunks of 25
    steps learn it (the state carried across every chunk boundary), and the loss is the
    mean over its valid steps."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3000, 1))
    labels = (np.convolve(x[0, :, 0], np.ones(3))[:3000] > 0).astype(int)[None]
    clf = LSTMClassifier(hidden_size=16, return_sequences=True, tbptt_steps=25,
                         learning_rate_init=0.01, max_iter=4, random_state=0).fit(x, labels)
    assert clf.score(x, labels) > 0.95
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert all(type(v) is float for v in clf.loss_curve_)


def test_what_truncated_bptt_cannot_train_is_refused_before_any_change():
    x = RNG.standard_normal((8, 6, 2))
    with pytest.raises(ValueError, match="return_sequences"):
        LSTMRegressor(tbptt_steps=3, max_iter=1).fit(x, x.sum(axis=(1, 2)))
    with pytest.raises(ValueError, match="bidirectional"):
        LSTMRegressor(tbptt_steps=3, bidirectional=True, return_sequences=True,
                      max_iter=1).fit(x, x[:, :, 0])
    with pytest.raises(ValueError, match="tbptt_steps"):
        LSTMRegressor(tbptt_steps=0, return_sequences=True).fit(x, x[:, :, 0])
    fitted = LSTMRegressor(hidden_size=3, return_sequences=True, max_iter=1,
                           random_state=0).fit(x, x[:, :, 0])
    before = [p.copy() for p in fitted.network_.params]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="bidirectional"):
            fitted.set_params(tbptt_steps=2, bidirectional=True).partial_fit(x, x[:, :, 0])
    for p, q in zip(before, fitted.network_.params):
        np.testing.assert_array_equal(p, q)
