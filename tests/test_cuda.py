"""The numba.cuda kernels against the CPU kernels, on tiny problems.

In CI these run on Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set in
``conftest.py``); with ``NUMBA_ENABLE_CUDASIM=0`` on a machine with a GPU they
run on the GPU. Tolerances: relative 1e-4 in float32, 1e-9 in float64.
"""
import numpy as np
import pytest

from nlstm.kernels import contracts, cpu

cuda_kernels = pytest.importorskip("nlstm.kernels.cuda")

pytestmark = pytest.mark.cuda_sim  # deselect with -m 'not cuda_sim'

RTOL = {np.float32: 1e-4, np.float64: 1e-9}
DTYPES = [np.float32, np.float64]
T, B, F, H = 4, 3, 2, 3
LENGTHS = np.array([4, 2, 1], dtype=np.int64)  # ragged: packed-sequence masking
# (T, B, F, H, lengths) of the sweep checks: tiny, and one with more (row, unit)
# items than a block of the persistent sweeps has threads, 5/4 as many, so that
# threads own several (on the simulator, which runs one block) or the grid has
# several blocks (on a GPU)
SWEEP_SIZES = {"tiny": (T, B, F, H, LENGTHS),
               "more items than threads": (3, 5, 2, cuda_kernels.SWEEP_THREADS // 4,
                                           np.array([3, 1, 3, 2, 1], dtype=np.int64))}
# the large size's indexing does not depend on the dtype: float32 only (each such case
# takes the simulator 15-25 s)
SWEEP_CASES = [(dtype, "tiny") for dtype in DTYPES] + [(np.float32, "more items than threads")]


def close(actual, expected, dtype):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def random(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


def test_the_kernel_contract_with_the_cpu_modules_parameters():
    assert contracts.missing(cuda_kernels, contracts.KERNELS, reference=cpu) == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_hoisted_products(dtype):
    rng = np.random.default_rng(0)
    # sizes that are not multiples of the tile, with more than one tile along K
    a, w_t = random(rng, (11, 6), dtype), random(rng, (6, 9), dtype)
    close(cuda_kernels.matmul_rows(a, w_t, np.empty((11, 9), dtype)),
          cpu.matmul_rows(a, w_t, np.empty((11, 9), dtype)), dtype)
    d_pre, inputs, h_prev = (random(rng, (10, 8), dtype), random(rng, (10, 5), dtype),
                             random(rng, (10, 3), dtype))
    for got, want in zip(cuda_kernels.weight_grads(d_pre, inputs, h_prev),
                         cpu.weight_grads(d_pre, inputs, h_prev)):
        close(got, want, dtype)


def test_reverse_and_zero_after_lengths():
    x = np.random.default_rng(1).normal(size=(T, B, 2))
    np.testing.assert_array_equal(cuda_kernels.reverse_within_lengths(x, LENGTHS, np.empty_like(x)),
                                  cpu.reverse_within_lengths(x, LENGTHS, np.empty_like(x)))
    np.testing.assert_array_equal(cuda_kernels.zero_after_lengths(x.copy(), LENGTHS),
                                  cpu.zero_after_lengths(x.copy(), LENGTHS))


def run_both(function, arrays, outputs):
    """Run the CPU and CUDA versions of ``function`` on copies of the same arrays."""
    results = []
    for module in (cpu, cuda_kernels):
        args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in arrays.items()}
        getattr(module, function)(**args)
        results.append({k: args[k] for k in outputs})
    return results


@pytest.mark.parametrize("dtype, size", SWEEP_CASES)
def test_lstm_forward_backward_and_inference_sweeps(dtype, size):
    T, B, F, H, lengths = SWEEP_SIZES[size]
    rng = np.random.default_rng(2)
    hs = np.zeros((T + 1, B, H), dtype)
    cs = np.zeros((T + 1, B, H), dtype)
    hs[0], cs[0] = random(rng, (B, H), dtype), random(rng, (B, H), dtype)
    # w_cat: [W_ih^T; W_hh^T; b]
    forward = dict(x=random(rng, (T, B, F), dtype), w_cat=random(rng, (F + H + 1, 4 * H), dtype),
                   lengths=lengths, hs=hs, cs=cs,
                   gates=np.zeros((T, B, 4 * H), dtype))
    want, got = run_both("lstm_forward_sweep", forward, ["hs", "cs", "gates"])
    for key in want:
        close(got[key], want[key], dtype)

    backward = dict(d_hs=cpu.zero_after_lengths(random(rng, (T, B, H), dtype), lengths),
                    d_h_n=random(rng, (B, H), dtype), d_c_n=random(rng, (B, H), dtype),
                    w_hh=np.ascontiguousarray(forward["w_cat"][F:F + H].T), lengths=lengths,
                    cs=want["cs"], gates=want["gates"],
                    d_pre=np.zeros((T, B, 4 * H), dtype), d_h0=np.zeros((B, H), dtype),
                    d_c0=np.zeros((B, H), dtype))
    want_b, got_b = run_both("lstm_backward_sweep", backward, ["d_pre", "d_h0", "d_c0"])
    for key in want_b:
        close(got_b[key], want_b[key], dtype)
    # no output gradient (None) against an explicit zero one
    want_z, _ = run_both("lstm_backward_sweep", dict(backward, d_hs=np.zeros((T, B, H), dtype)),
                         ["d_pre", "d_h0", "d_c0"])
    want_n, got_n = run_both("lstm_backward_sweep", dict(backward, d_hs=None),
                             ["d_pre", "d_h0", "d_c0"])
    for key in want_z:
        np.testing.assert_array_equal(want_n[key], want_z[key])
        close(got_n[key], want_z[key], dtype)

    # the sweep and the weight gradients in one, with and without d_pre
    both = dict(backward, inputs=forward["x"], hs=want["hs"])
    for d_pre in (np.zeros((T, B, 4 * H), dtype), None):
        results = []
        for module in (cpu, cuda_kernels):
            args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in both.items()}
            args["d_pre"] = None if d_pre is None else d_pre.copy()
            grads = module.lstm_backward(**args)
            results.append((grads, args))
        (want_g, want_a), (got_g, got_a) = results
        for got, expected in zip(got_g, want_g):
            close(got, expected, dtype)
        for key in ("d_h0", "d_c0") + (() if d_pre is None else ("d_pre",)):
            close(got_a[key], want_a[key], dtype)

    # the inference sweep is batch-first and writes its columns of a wider output
    x_batch_first = np.ascontiguousarray(forward["x"].transpose(1, 0, 2))  # (B, T, F)
    for reverse in (False, True):
        inference = dict(x=x_batch_first, w_cat=forward["w_cat"], lengths=lengths,
                         h=hs[0].copy(), c=cs[0].copy(), out=np.full((B, T, 2 * H), 7, dtype),
                         column=H, reverse=reverse)
        want_i, got_i = run_both("lstm_inference_sweep", inference, ["h", "c", "out"])
        for key in want_i:
            close(got_i[key], want_i[key], dtype)
        assert (got_i["out"][:, :, :H] == 7).all()  # the other columns are left alone
    # forward reading: the training sweep's states, batch-first
    want_i, got_i = run_both("lstm_inference_sweep", dict(inference, reverse=False), ["h", "out"])
    close(got_i["h"], want["hs"][T], dtype)  # the state at each row's last valid step
    close(got_i["out"][:, :, H:],
          cpu.zero_after_lengths(want["hs"][1:].copy(), lengths).transpose(1, 0, 2), dtype)


@pytest.mark.parametrize("dtype, size", SWEEP_CASES)
def test_rnn_forward_and_backward_sweeps(dtype, size):
    T, B, F, H, lengths = SWEEP_SIZES[size]
    rng = np.random.default_rng(3)
    hs = np.zeros((T + 1, B, H), dtype)
    hs[0] = random(rng, (B, H), dtype)
    forward = dict(x=random(rng, (T, B, F), dtype), w_cat=random(rng, (F + H + 1, H), dtype),
                   lengths=lengths, hs=hs)
    want, got = run_both("rnn_forward_sweep", forward, ["hs"])
    close(got["hs"], want["hs"], dtype)
    backward = dict(d_hs=cpu.zero_after_lengths(random(rng, (T, B, H), dtype), lengths),
                    d_h_n=random(rng, (B, H), dtype),
                    w_hh=np.ascontiguousarray(forward["w_cat"][F:F + H].T), lengths=lengths,
                    hs=want["hs"], d_pre=np.zeros((T, B, H), dtype),
                    d_h0=np.zeros((B, H), dtype))
    want_b, got_b = run_both("rnn_backward_sweep", backward, ["d_pre", "d_h0"])
    for key in want_b:
        close(got_b[key], want_b[key], dtype)
    want_z, _ = run_both("rnn_backward_sweep", dict(backward, d_hs=np.zeros((T, B, H), dtype)),
                         ["d_pre", "d_h0"])
    want_n, got_n = run_both("rnn_backward_sweep", dict(backward, d_hs=None), ["d_pre", "d_h0"])
    for key in want_z:
        np.testing.assert_array_equal(want_n[key], want_z[key])
        close(got_n[key], want_z[key], dtype)


@pytest.mark.parametrize("dtype, size", SWEEP_CASES)
def test_gru_forward_sweep_and_backward(dtype, size):
    T, B, F, H, lengths = SWEEP_SIZES[size]
    rng = np.random.default_rng(5)
    hs = np.zeros((T + 1, B, H), dtype)
    hs[0] = random(rng, (B, H), dtype)
    weights = dict(w_ih=random(rng, (3 * H, F), dtype), w_hh=random(rng, (3 * H, H), dtype),
                   b_ih=random(rng, (3 * H,), dtype), b_hh=random(rng, (3 * H,), dtype))
    forward = dict(x=random(rng, (T, B, F), dtype), **weights, lengths=lengths, hs=hs,
                   gates=np.zeros((T, B, 4 * H), dtype))
    want, got = run_both("gru_forward_sweep", forward, ["hs", "gates"])
    for key in want:
        close(got[key], want[key], dtype)
    backward = dict(d_hs=cpu.zero_after_lengths(random(rng, (T, B, H), dtype), lengths),
                    d_h_n=random(rng, (B, H), dtype), w_hh=weights["w_hh"], lengths=lengths,
                    hs=want["hs"], gates=want["gates"], inputs=forward["x"],
                    d_h0=np.zeros((B, H), dtype))
    for d_hs in (backward["d_hs"], None):  # None: only the final state reaches the loss
        for d_pre in (np.zeros((T, B, 3 * H), dtype), None):
            results = []
            for module in (cpu, cuda_kernels):
                args = {k: v.copy() if isinstance(v, np.ndarray) else v
                        for k, v in backward.items()}
                args["d_hs"] = None if d_hs is None else d_hs.copy()
                args["d_pre"] = None if d_pre is None else d_pre.copy()
                results.append((module.gru_backward(**args), args))
            (want_g, want_a), (got_g, got_a) = results
            for got_grad, expected in zip(got_g, want_g):
                close(got_grad, expected, dtype)
            for key in ("d_h0",) + (() if d_pre is None else ("d_pre",)):
                close(got_a[key], want_a[key], dtype)

    # the inference sweep is batch-first and writes its columns of a wider output
    x_batch_first = np.ascontiguousarray(forward["x"].transpose(1, 0, 2))  # (B, T, F)
    for reverse in (False, True):
        inference = dict(x=x_batch_first, **weights, lengths=lengths, h=hs[0].copy(),
                         out=np.full((B, T, 2 * H), 7, dtype), column=H, reverse=reverse)
        want_i, got_i = run_both("gru_inference_sweep", inference, ["h", "out"])
        for key in want_i:
            close(got_i[key], want_i[key], dtype)
        assert (got_i["out"][:, :, :H] == 7).all()  # the other columns are left alone
    # reading forward, the final state is the training sweep's
    got_h = run_both("gru_inference_sweep", dict(inference, reverse=False), ["h"])[1]["h"]
    close(got_h, want["hs"][T], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_layer_on_cuda_matches_cpu_forward_and_backward(cell, dtype, monkeypatch):
    """2 layers, bidirectional, ragged, dropout, initial state: every layer option.

    The GPU draws its dropout masks on the device (other bits than the CPU's),
    so both devices get the same masks here, to check that forward and
    backward apply them alike."""
    from nlstm import LSTM
    from nlstm.kernels.plumbing import cpu_arrays, cuda_arrays

    def same_masks(arrays):
        def dropout_mask(shape, keep, rng, dtype):
            mask = np.random.default_rng(shape).random(shape) < keep
            return arrays.to_device((mask / keep).astype(dtype))
        return dropout_mask

    for arrays in (cpu_arrays, cuda_arrays):
        monkeypatch.setattr(arrays, "dropout_mask", same_masks(arrays))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4, 2)).astype(dtype)
    h0 = rng.normal(size=(4, 3, 3)).astype(dtype)
    state = (h0, rng.normal(size=(4, 3, 3)).astype(dtype)) if cell == "lstm" else h0
    results = []
    for device in ("cpu", "cuda"):
        layer = LSTM(2, 3, num_layers=2, bidirectional=True, dropout=0.3, cell=cell,
                     dtype=dtype, device=device, random_state=0)
        out, final = layer.forward(x, lengths=LENGTHS, initial_state=state, training=True)
        d_out = np.random.default_rng(5).normal(size=out.shape).astype(dtype)
        d_x, grads = layer.backward(d_out)
        results.append((out, final, d_x, grads, layer.d_initial_state))
    (out, final, d_x, grads, d_init), (out_g, final_g, d_x_g, grads_g, d_init_g) = results
    tol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(out_g, out, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(final_g), np.asarray(final), rtol=tol, atol=tol)
    np.testing.assert_allclose(d_x_g, d_x, rtol=tol, atol=tol)
    for name in grads:
        np.testing.assert_allclose(grads_g[name], grads[name], rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_allclose(np.asarray(d_init_g), np.asarray(d_init), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_epoch_fit_on_cuda_matches_cpu(dtype):
    from nlstm import LSTMClassifier
    rng = np.random.default_rng(6)
    X = rng.normal(size=(8, 3, 2)).astype(dtype)
    y = np.where(X[:, 0, 0] > 0, "a", "b")
    fitted = []
    for device in ("cpu", "cuda"):
        model = LSTMClassifier(hidden_size=3, max_iter=2, batch_size=4, dtype=dtype,
                               device=device, random_state=0)
        with pytest.warns(Warning):  # ConvergenceWarning: 2 epochs only
            model.fit(X, y)
        fitted.append(model)
    cpu_model, gpu_model = fitted
    tol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu_model.loss_curve_, rtol=tol)
    for a, b in zip(gpu_model.network_.params, cpu_model.network_.params):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu_model.predict_proba(X), cpu_model.predict_proba(X),
                               rtol=tol, atol=tol)
