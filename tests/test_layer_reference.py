"""The Numba layer against the slow NumPy reference, and finite differences."""
import itertools

import numpy as np
import pytest
from reference import reference_backward, reference_forward

from nlstm import LSTM
from nlstm._threads import kernel_threads

F, H, B, T = 3, 4, 5, 6
RAGGED = np.array([6, 2, 5, 1, 3])
TOL = {"float64": 1e-10, "float32": 2e-5}


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def make_inputs(seed, cell, num_layers, bidirectional):
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, F))
    h0 = rng.standard_normal((num_layers * D, B, H)) * 0.5
    c0 = rng.standard_normal((num_layers * D, B, H)) * 0.5 if cell == "lstm" else None
    d_out = rng.standard_normal((B, T, D * H))
    d_h_n = rng.standard_normal((num_layers * D, B, H))
    d_c_n = rng.standard_normal((num_layers * D, B, H)) if cell == "lstm" else None
    return x, h0, c0, d_out, d_h_n, d_c_n


CASES = list(itertools.product(["lstm", "gru", "rnn"], [1, 2, 3], [False, True],
                               ["equal", "ragged"], ["float64", "float32"]))


@pytest.mark.parametrize("cell,num_layers,bidirectional,lengths_kind,dtype", CASES)
def test_forward_backward_match_reference(cell, num_layers, bidirectional, lengths_kind, dtype):
    layer = LSTM(F, H, num_layers, bidirectional=bidirectional, cell=cell, dtype=dtype,
                 random_state=1)
    x, h0, c0, d_out, d_h_n, d_c_n = make_inputs(2, cell, num_layers, bidirectional)
    lengths = RAGGED if lengths_kind == "ragged" else np.full(B, T)
    init = (h0, c0) if cell == "lstm" else h0
    out, state = layer.forward(x, lengths=lengths, initial_state=init)
    d_x, grads = layer.backward(d_out, d_h_n, d_c_n)

    params = layer.state_dict()
    ref_out, ref_h, ref_c, tape = reference_forward(params, x, lengths, cell, num_layers,
                                                    bidirectional, h0, c0)
    ref_dx, ref_grads, ref_dh0, ref_dc0 = reference_backward(
        params, tape, d_out, lengths, cell, num_layers, bidirectional, F, d_h_n, d_c_n)
    tol = TOL[dtype]
    assert out.dtype == np.dtype(dtype)
    assert rel_err(out, ref_out) < tol
    h_n = state[0] if cell == "lstm" else state
    assert rel_err(h_n, ref_h) < tol
    if cell == "lstm":
        assert rel_err(state[1], ref_c) < tol
    assert rel_err(d_x, ref_dx) < tol
    for name in params:
        assert rel_err(grads[name], ref_grads[name]) < tol, name
    d_init = layer.d_initial_state
    assert rel_err(d_init[0] if cell == "lstm" else d_init, ref_dh0) < tol
    if cell == "lstm":
        assert rel_err(d_init[1], ref_dc0) < tol
    for b, n in enumerate(lengths):
        assert np.all(out[b, n:] == 0)


def test_dropout_between_layers_matches_reference_with_same_masks():
    layer = LSTM(F, H, 3, bidirectional=True, dropout=0.4, dtype="float64", random_state=3)
    x, _, _, d_out, _, _ = make_inputs(4, "lstm", 3, True)
    out, _ = layer.forward(x, lengths=RAGGED, training=True)
    masks = layer._cache.dropout_masks[:-1]
    assert all(m is not None for m in masks)
    assert any((m == 0).any() for m in masks)  # something was dropped
    d_x, grads = layer.backward(d_out)
    masks_bt = [m.transpose(1, 0, 2) for m in masks]  # (T, B, .) -> (B, T, .)
    params = layer.state_dict()
    ref_out, _, _, tape = reference_forward(params, x, RAGGED, "lstm", 3, True,
                                            dropout_masks=masks_bt)
    ref_dx, ref_grads, _, _ = reference_backward(params, tape, d_out, RAGGED, "lstm", 3, True, F,
                                                 dropout_masks=masks_bt)
    assert rel_err(out, ref_out) < 1e-10
    assert rel_err(d_x, ref_dx) < 1e-10
    for name in params:
        assert rel_err(grads[name], ref_grads[name]) < 1e-10
    # no dropout at inference
    out_eval, _ = layer.forward(x, lengths=RAGGED)
    ref_eval, _, _, _ = reference_forward(params, x, RAGGED, "lstm", 3, True)
    assert rel_err(out_eval, ref_eval) < 1e-10


def _loss(layer, x, lengths, init, w_out, w_h, w_c):
    out, state = layer.forward(x, lengths=lengths, initial_state=init)
    h_n, c_n = state if layer.cell == "lstm" else (state, None)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    if c_n is not None:
        loss += (c_n * w_c).sum()
    return loss


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("lstm", True), ("gru", True),
                                                ("rnn", True)])
def test_finite_difference_gradients(cell, bidirectional):
    """Central differences in float64 for every parameter entry and every input entry."""
    num_layers = 2
    layer = LSTM(2, 3, num_layers, bidirectional=bidirectional, cell=cell, dtype="float64",
                 random_state=5)
    rng = np.random.default_rng(6)
    D = 2 if bidirectional else 1
    Bs, Ts = 3, 4
    x = rng.standard_normal((Bs, Ts, 2))
    lengths = np.array([4, 2, 3])
    h0 = rng.standard_normal((num_layers * D, Bs, 3)) * 0.5
    c0 = rng.standard_normal((num_layers * D, Bs, 3)) * 0.5
    init = (h0, c0) if cell == "lstm" else h0
    w_out = rng.standard_normal((Bs, Ts, D * 3))
    w_h = rng.standard_normal(h0.shape)
    w_c = rng.standard_normal(h0.shape)

    _loss(layer, x, lengths, init, w_out, w_h, w_c)
    d_x, grads = layer.backward(w_out, w_h, w_c if cell == "lstm" else None)
    grads = {k: v.copy() for k, v in grads.items()}
    eps = 1e-6

    def numeric(array, index):
        old = array[index]
        array[index] = old + eps
        plus = _loss(layer, x, lengths, init, w_out, w_h, w_c)
        array[index] = old - eps
        minus = _loss(layer, x, lengths, init, w_out, w_h, w_c)
        array[index] = old
        return (plus - minus) / (2 * eps)

    for name, param in layer._params.items():
        num = np.array([numeric(param, i) for i in np.ndindex(param.shape)]).reshape(param.shape)
        assert rel_err(grads[name], num) <= 1e-6, name
    num_x = np.array([numeric(x, i) for i in np.ndindex(x.shape)]).reshape(x.shape)
    for b, n in enumerate(lengths):
        assert np.all(d_x[b, n:] == 0)  # padding does not influence anything
    assert rel_err(d_x, num_x) <= 1e-6


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stepping_one_timestep_at_a_time_equals_whole_sequence(cell):
    """Forward carrying initial_state step by step, and backward chaining
    d_initial_state step by step, equal the whole-sequence run."""
    layer = LSTM(F, H, 2, cell=cell, dtype="float64", random_state=7)
    x, _, _, d_out, _, _ = make_inputs(8, cell, 2, False)
    out, state = layer.forward(x)
    d_x_full, grads_full = layer.backward(d_out)
    grads_full = {k: v.copy() for k, v in grads_full.items()}

    states, outs = [None], []
    for t in range(T):
        o, state_t = layer.forward(x[:, t:t + 1], initial_state=states[-1])
        states.append(state_t)
        outs.append(o)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), out, rtol=0, atol=1e-14)
    final = states[-1]
    for a, b in zip(final if cell == "lstm" else [final], state if cell == "lstm" else [state]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)

    grads_sum = {k: np.zeros_like(v) for k, v in grads_full.items()}
    d_x_steps = np.zeros_like(x)
    d_state = (None, None)
    for t in range(T - 1, -1, -1):
        layer.forward(x[:, t:t + 1], initial_state=states[t])
        d_xt, g = layer.backward(d_out[:, t:t + 1], *d_state[:1 if cell == "rnn" else 2])
        for k in g:
            grads_sum[k] += g[k]
        d_x_steps[:, t:t + 1] = d_xt
        d_state = layer.d_initial_state if cell == "lstm" else (layer.d_initial_state,)
    np.testing.assert_allclose(d_x_steps, d_x_full, rtol=1e-10, atol=1e-13)
    for k in grads_full:
        np.testing.assert_allclose(grads_sum[k], grads_full[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell,num_layers,bidirectional", [("lstm", 2, True), ("gru", 2, True),
                                                           ("rnn", 1, False)])
def test_skipping_the_input_gradient_leaves_parameter_gradients_unchanged(cell, num_layers,
                                                                          bidirectional):
    """Estimators fed with data (no embedding) do not need d_x and skip its GEMM."""
    layer = LSTM(F, H, num_layers, bidirectional=bidirectional, cell=cell, dtype="float64",
                 random_state=1)
    x, h0, c0, d_out, d_h_n, d_c_n = make_inputs(3, cell, num_layers, bidirectional)
    layer.forward(x, lengths=RAGGED)
    d_x, grads = layer.backward(d_out, d_h_n, d_c_n)
    expected = np.concatenate([grads[name].ravel() for name in grads])
    layer.forward(x, lengths=RAGGED)
    d_none, flat = layer.backward_on_device(d_out, d_h_n, d_c_n, want_input_grad=False)
    assert d_none is None
    assert d_x.shape == x.shape and np.abs(d_x).max() > 0
    np.testing.assert_array_equal(flat, expected)


@pytest.mark.parametrize("cell,num_layers,bidirectional", [("lstm", 2, True), ("lstm", 1, False),
                                                           ("gru", 2, True), ("rnn", 2, True)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_output_gradient_gives_the_bits_of_a_zero_one(cell, num_layers, bidirectional, dtype):
    """A model whose loss sees only the final state passes no output gradient
    (the sweeps then allocate and read no (T, B, H) zeros): same gradients,
    bit for bit, as an explicit zero output gradient."""
    layer = LSTM(F, H, num_layers, bidirectional=bidirectional, cell=cell, dtype=dtype,
                 random_state=1)
    x, h0, c0, d_out, d_h_n, d_c_n = make_inputs(4, cell, num_layers, bidirectional)
    init = (h0, c0) if cell == "lstm" else h0
    # `_backward` takes validated arrays of the layer's dtype
    d_out, d_h_n = d_out.astype(dtype), d_h_n.astype(dtype)
    d_c_n = None if d_c_n is None else d_c_n.astype(dtype)
    layer.forward(x, lengths=RAGGED, initial_state=init)
    with kernel_threads():
        d_x_zero, flat_zero = layer.backward_on_device(np.zeros_like(d_out), d_h_n, d_c_n)
    d_initial_zero = layer.d_initial_state
    layer.forward(x, lengths=RAGGED, initial_state=init)
    with kernel_threads():
        d_x_none, flat_none = layer.backward_on_device(None, d_h_n, d_c_n)
    np.testing.assert_array_equal(flat_none, flat_zero)
    np.testing.assert_array_equal(d_x_none, d_x_zero)
    for got, want in zip(np.atleast_1d(layer.d_initial_state), np.atleast_1d(d_initial_zero)):
        np.testing.assert_array_equal(got, want)
    assert np.abs(flat_none).max() > 0


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, True)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden_size", [H, 37])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_prediction_path_gives_the_forward_results_bit_for_bit(num_layers, bidirectional, dtype,
                                                               hidden_size, cell):
    """The estimators predict through the batch-first inference sweeps (no saved
    activations, the reverse direction read in place); they must give exactly
    what the training forward gives, with ragged lengths and an initial state.
    37 hidden units: the cell loops run vector bodies and scalar remainders."""
    layer = LSTM(F, hidden_size, num_layers, bidirectional=bidirectional, dtype=dtype,
                 cell=cell, random_state=1)
    x, *_ = make_inputs(4, cell, num_layers, bidirectional)
    rng = np.random.default_rng(5)
    D = 2 if bidirectional else 1
    h0, c0 = (rng.standard_normal((num_layers * D, B, hidden_size)) * 0.5 for _ in range(2))
    init = (h0, c0) if cell == "lstm" else h0
    x, lengths, h0, c0 = layer._check_forward_args(x, RAGGED, init, False)
    out, state = layer.forward(x, lengths=lengths, initial_state=init)
    h_n, c_n = state if cell == "lstm" else (state, None)
    for want_output in (True, False):
        with kernel_threads():
            got_out, got_h, got_c = layer.forward_on_device(
                x, lengths, h0, c0, training=False, keep_activations=False,
                want_output=want_output)
        if want_output:
            np.testing.assert_array_equal(got_out, out)
        else:
            assert got_out is None
        np.testing.assert_array_equal(got_h, h_n)
        if cell == "lstm":
            np.testing.assert_array_equal(got_c, c_n)
        else:
            assert got_c is None


def assert_matches_reference_and_prediction_path(layer, x, lengths, d_out, bidirectional=False):
    """Forward and backward of a one-layer float64 ``layer`` against the NumPy
    reference, and the prediction path against the forward, bit for bit."""
    out, (h_n, c_n) = layer.forward(x, lengths=lengths)
    d_x, grads = layer.backward(d_out)
    params = layer.state_dict()
    ref_out, ref_h, ref_c, tape = reference_forward(params, x, lengths, "lstm", 1, bidirectional)
    ref_dx, ref_grads, _, _ = reference_backward(params, tape, d_out, lengths, "lstm", 1,
                                                 bidirectional, x.shape[2])
    for got, want in [(out, ref_out), (h_n, ref_h), (c_n, ref_c), (d_x, ref_dx)]:
        assert rel_err(got, want) < TOL["float64"]
    for name in params:
        assert rel_err(grads[name], ref_grads[name]) < TOL["float64"], name
    x, lengths, h0, c0 = layer._check_forward_args(x, lengths, None, False)
    with kernel_threads():
        got_out, got_h, got_c = layer.forward_on_device(x, lengths, h0, c0, training=False,
                                               keep_activations=False, want_output=True)
    np.testing.assert_array_equal(got_out, out)
    np.testing.assert_array_equal(got_h, h_n)
    np.testing.assert_array_equal(got_c, c_n)


def test_cell_chunks_of_rows_match_reference():
    """The forward sweeps activate the gates chunk by chunk of rows
    (``cpu.CELL_CHUNK`` pre-activations per chunk): at 700 hidden units a chunk
    holds 2 rows, so a shard of 4-5 rows ends with a partial chunk. Forward,
    backward and the prediction path against the NumPy reference."""
    from nlstm.kernels.cpu import CELL_CHUNK

    hidden, batch = 700, 9
    assert CELL_CHUNK // (4 * hidden) == 2  # the case this test is for
    layer = LSTM(F, hidden, dtype="float64", random_state=2)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((batch, T, F))
    lengths = np.array([6, 2, 5, 1, 3, 6, 4, 6, 1])
    d_out = rng.standard_normal((batch, T, hidden))
    assert_matches_reference_and_prediction_path(layer, x, lengths, d_out)


def test_sweeps_in_blocks_of_rows_match_reference():
    """With small gates (``4H * itemsize <= 1 KiB``) the sweeps run the batch in
    blocks of about ``cpu.SWEEP_BLOCK_ROWS`` rows, more blocks than threads:
    100 rows make 3 blocks of 33-34. Both directions, ragged rows, against the
    NumPy reference, and the prediction path against the training forward."""
    from nlstm.kernels.cpu import SWEEP_BLOCK_ROWS, shard_bounds, sweep_bounds

    hidden, batch = 8, 100
    bounds = sweep_bounds(batch, 4 * hidden, 8)
    assert len(bounds) - 1 == batch // SWEEP_BLOCK_ROWS > len(shard_bounds(batch)) - 1
    layer = LSTM(F, hidden, bidirectional=True, dtype="float64", random_state=2)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((batch, T, F))
    lengths = rng.integers(1, T + 1, size=batch)
    d_out = rng.standard_normal((batch, T, 2 * hidden))
    assert_matches_reference_and_prediction_path(layer, x, lengths, d_out, bidirectional=True)
