"""Parity with torch.nn.LSTM / GRU / RNN through state_dict (test-only dependency)."""
import numba
import numpy as np
import pytest

from nlstm import LSTM

torch = pytest.importorskip("torch")

TOL = {"float64": 1e-9, "float32": 2e-4}


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def run_torch(module, x, lengths, h0, c0, d_out, d_h_n, d_c_n):
    xt = torch.from_numpy(x).requires_grad_()
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False)
    h0t = torch.from_numpy(h0)
    if c0 is not None:
        out, (h_n, c_n) = module(packed, (h0t, torch.from_numpy(c0)))
    else:
        out, h_n = module(packed, h0t)
        c_n = None
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    loss = (out * torch.from_numpy(d_out)).sum() + (h_n * torch.from_numpy(d_h_n)).sum()
    if c_n is not None:
        loss = loss + (c_n * torch.from_numpy(d_c_n)).sum()
    loss.backward()
    grads = {k: v.grad.numpy() for k, v in module.named_parameters()}
    return (out.detach().numpy(), h_n.detach().numpy(),
            None if c_n is None else c_n.detach().numpy(), xt.grad.numpy(), grads)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_parity_with_torch(cell, dtype, n_threads):
    if n_threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    F, H, L, B, T = 5, 7, 2, 9, 12
    layer = LSTM(F, H, L, bidirectional=True, cell=cell, dtype=dtype, random_state=0)
    tdtype = getattr(torch, dtype)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        F, H, L, batch_first=True, bidirectional=True).to(tdtype)
    # weights go nlstm -> torch here; the reverse way is tested below
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, F)).astype(dtype)
    lengths = np.array([12, 3, 7, 1, 12, 5, 9, 2, 11])
    h0 = rng.standard_normal((2 * L, B, H)).astype(dtype)
    c0 = rng.standard_normal((2 * L, B, H)).astype(dtype) if cell == "lstm" else None
    d_out = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    d_h_n = rng.standard_normal((2 * L, B, H)).astype(dtype)
    d_c_n = rng.standard_normal((2 * L, B, H)).astype(dtype) if cell == "lstm" else None

    t_out, t_h, t_c, t_dx, t_grads = run_torch(module, x, lengths, h0, c0, d_out, d_h_n, d_c_n)
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        init = (h0, c0) if cell == "lstm" else h0
        out, state = layer.forward(x, lengths=lengths, initial_state=init)
        d_x, grads = layer.backward(d_out, d_h_n, d_c_n)
    finally:
        numba.set_num_threads(previous)
    tol = TOL[dtype]
    assert rel_err(out, t_out) <= tol
    if cell == "lstm":
        assert rel_err(state[0], t_h) <= tol
        assert rel_err(state[1], t_c) <= tol
    else:
        assert rel_err(state, t_h) <= tol
    assert rel_err(d_x, t_dx) <= tol
    assert set(grads) == set(t_grads)
    for name in grads:
        assert rel_err(grads[name], t_grads[name]) <= tol, name


# (F, H, B): (3, 65, 64), (64, 50, 64) and (64, 100, 64) are shapes where
# OpenBLAS rounds a GEMM row differently for different row counts, which broke
# this when the batch shards followed the call's thread count; at (8, 24, 150)
# and (64, 50, 130) the LSTM sweeps run more blocks of rows than threads
# (`cpu.sweep_bounds`)
@pytest.mark.parametrize("F, H, B", [(6, 16, 37), (3, 65, 64), (64, 50, 64), (64, 100, 64),
                                     (8, 24, 150), (64, 50, 130)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_results_identical_for_1_and_2_threads(cell, F, H, B):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    layer = LSTM(F, H, 2, bidirectional=True, cell=cell, random_state=0)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, 20, F)).astype(np.float32)
    lengths = rng.integers(1, 21, size=B)
    d_out = rng.standard_normal((B, 20, 2 * H)).astype(np.float32)
    results = []
    previous = numba.get_num_threads()
    try:
        for n in (1, 2):
            numba.set_num_threads(n)
            out, _ = layer.forward(x, lengths=lengths)
            d_x, grads = layer.backward(d_out)
            results.append((out, d_x, {k: v.copy() for k, v in grads.items()}))
    finally:
        numba.set_num_threads(previous)
    (o1, dx1, g1), (o2, dx2, g2) = results
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_weights_from_torch_give_torch_numbers():
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 8, 1, batch_first=True)
    layer = LSTM(4, 8, forget_bias="chrono", chrono_max=50, random_state=0)  # init must not matter
    layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 10, 4)).astype(np.float32)
    with torch.no_grad():
        ref, _ = module(torch.from_numpy(x))
    out, _ = layer.forward(x)
    assert rel_err(out, ref.numpy()) <= 2e-4
    assert layer.state_dict().keys() == module.state_dict().keys()


def test_fast_float32_activations_within_tolerance_of_torch():
    from numba import njit

    from nlstm.kernels.activations import sigmoid, tanh

    @njit
    def apply(x, out_t, out_s):
        for i in range(x.size):
            out_t[i] = tanh(x[i])
            out_s[i] = sigmoid(x[i])

    x = np.linspace(-30, 30, 200_001).astype(np.float32)
    out_t, out_s = np.empty_like(x), np.empty_like(x)
    apply(x, out_t, out_s)
    xt = torch.from_numpy(x)
    assert np.abs(out_t - torch.tanh(xt).numpy()).max() < 1e-6
    assert np.abs(out_s - torch.sigmoid(xt).numpy()).max() < 1e-6
    assert np.all(np.abs(out_t) <= 1) and np.all((out_s >= 0) & (out_s <= 1))
