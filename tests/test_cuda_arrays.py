"""Training that stays on the GPU: `nlstm.kernels.plumbing.cuda_arrays` against
`nlstm.kernels.plumbing.cpu_arrays`, what crosses the bus during a fit, and fits with
every estimator option on both devices.

In CI these run on Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set in
``conftest.py``). Tolerances: relative 1e-4 in float32, 1e-9 in float64.
"""
import inspect
import warnings

import numpy as np
import pytest

from nlstm.kernels import contracts
from nlstm.kernels.plumbing import cpu_arrays

cuda_arrays = pytest.importorskip("nlstm.kernels.plumbing.cuda_arrays")
from numba import cuda  # noqa: E402  (after the skip: numba.cuda may be missing)

pytestmark = pytest.mark.cuda_sim  # deselect with -m 'not cuda_sim'

RTOL = {np.float32: 1e-4, np.float64: 1e-9}
DTYPES = [np.float32, np.float64]


def close(actual, expected, dtype):
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    tol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(cuda_arrays.to_host(actual), expected, rtol=tol, atol=tol * scale)


def public_functions(module):
    return {name for name, f in vars(module).items()
            if inspect.isfunction(f) and not name.startswith("_")
            and f.__module__ == module.__name__}


def test_the_array_contract_with_the_cpu_modules_parameters():
    assert public_functions(cuda_arrays) == set(contracts.ARRAYS)
    assert contracts.missing(cuda_arrays, contracts.ARRAYS, reference=cpu_arrays) == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_layout_functions_match_the_cpu(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 5)).astype(dtype)
    up = cuda_arrays.to_device
    close(cuda_arrays.swap_leading_axes(up(x)), cpu_arrays.swap_leading_axes(x), dtype)
    close(cuda_arrays.take_columns(up(x), 1, 4), cpu_arrays.take_columns(x, 1, 4), dtype)
    parts = [x, x[:, :, :2].copy()]
    close(cuda_arrays.concat_columns([up(p) for p in parts]), cpu_arrays.concat_columns(parts),
          dtype)
    w_ih, w_hh = rng.normal(size=(8, 3)).astype(dtype), rng.normal(size=(8, 2)).astype(dtype)
    b_ih, b_hh = rng.normal(size=8).astype(dtype), rng.normal(size=8).astype(dtype)
    close(cuda_arrays.stack_weights(up(w_ih), up(w_hh), up(b_ih), up(b_hh)),
          cpu_arrays.stack_weights(w_ih, w_hh, b_ih, b_hh), dtype)
    h_n = rng.normal(size=(4, 3, 2)).astype(dtype)  # 2 layers x 2 directions
    features = cpu_arrays.final_features(h_n, 2)
    close(cuda_arrays.final_features(up(h_n), 2), features, dtype)
    close(cuda_arrays.final_state_grad(up(features), 4, 2),
          cpu_arrays.final_state_grad(features, 4, 2), dtype)
    close(cuda_arrays.zeros((2, 3), dtype), np.zeros((2, 3)), dtype)
    close(cuda_arrays.copy(up(x)), x, dtype)
    target = cuda_arrays.empty(x.shape, dtype)
    cuda_arrays.assign(target, up(x))
    close(target, x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_head_functions_match_the_cpu(dtype):
    rng = np.random.default_rng(1)
    up = cuda_arrays.to_device
    table = rng.normal(size=(7, 3)).astype(dtype)
    ids = np.array([[1, 6, 1, 0], [2, 2, 5, 3]], dtype=np.int64)  # repeated tokens
    lengths = np.array([4, 2], dtype=np.int64)
    close(cuda_arrays.embedding_lookup(up(table), up(ids)), cpu_arrays.embedding_lookup(table, ids),
          dtype)
    d_x = rng.normal(size=(2, 4, 3)).astype(dtype)
    close(cuda_arrays.embedding_grad(table.shape, up(ids), up(lengths), up(d_x)),
          cpu_arrays.embedding_grad(table.shape, ids, lengths, d_x), dtype)
    weight, bias = rng.normal(size=(5, 2)).astype(dtype), rng.normal(size=2).astype(dtype)
    for shape in [(6, 5), (3, 4, 5)]:  # final state, or every step (return_sequences)
        x = rng.normal(size=shape).astype(dtype)
        d_z = rng.normal(size=shape[:-1] + (2,)).astype(dtype)
        close(cuda_arrays.linear(up(x), up(weight), up(bias)), cpu_arrays.linear(x, weight, bias),
              dtype)
        for got, want in zip(cuda_arrays.linear_grads(up(x), up(d_z), up(weight)),
                             cpu_arrays.linear_grads(x, d_z, weight)):
            close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_element_wise_and_optimizer_steps_match_the_cpu(dtype):
    rng = np.random.default_rng(2)
    # more elements than the reduction's partial sums, so that they stride
    n = cuda_arrays.REDUCE_THREADS * 2 + 37
    p, g, mask = (rng.normal(size=n).astype(dtype) for _ in range(3))
    up = cuda_arrays.to_device
    tol = RTOL[np.dtype(dtype).type]
    assert cuda_arrays.sum_squares(up(g)) == pytest.approx(cpu_arrays.sum_squares(g), rel=tol)
    assert (cuda_arrays.masked_sum_squares(up(p), up(mask))
            == pytest.approx(cpu_arrays.masked_sum_squares(p, mask), rel=tol))

    def both(function, *args, scalars=()):
        """Run an in-place function on copies for both devices; return them."""
        host = [a.copy() for a in args]
        device = [up(a) for a in args]
        getattr(cpu_arrays, function)(*host, *scalars)
        getattr(cuda_arrays, function)(*device, *scalars)
        for got, want in zip(device, host):
            close(got, want, dtype)

    both("add_into", p, g)
    both("multiply_into", p, g)
    close(cuda_arrays.multiply(up(p), up(g)), cpu_arrays.multiply(p, g), dtype)
    both("add_l2_grad", g, p, mask, scalars=(0.01,))
    both("scale_into", g, scalars=(0.37,))
    both("sgd_step", p, g, rng.normal(size=n).astype(dtype), scalars=(0.1, 0.9))
    m, v = rng.normal(size=n).astype(dtype), rng.uniform(0, 1, n).astype(dtype)
    both("adam_step", p, g, m, v, scalars=(0.9, 0.999, 0.003, 1.2, 1e-8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_masks_on_the_device(dtype):
    shape, keep = (20, 10, 20), 0.7
    mask = cuda_arrays.to_host(
        cuda_arrays.dropout_mask(shape, keep, np.random.RandomState(0), dtype))
    assert mask.shape == shape and mask.dtype == dtype
    scale = np.dtype(dtype).type(1) / np.dtype(dtype).type(keep)
    assert set(np.unique(mask)) == {0, scale}
    kept = (mask > 0).mean()
    assert abs(kept - keep) < 4 * np.sqrt(keep * (1 - keep) / mask.size)  # 4 sigma
    # independent units: neighbours along every axis are uncorrelated
    for axis in range(3):
        along = np.moveaxis(mask > 0, axis, 0)
        a, b = along[1:].ravel(), along[:-1].ravel()
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(a.size)  # 4 sigma
    again = cuda_arrays.to_host(
        cuda_arrays.dropout_mask(shape, keep, np.random.RandomState(0), dtype))
    np.testing.assert_array_equal(again, mask)  # seeded by the host RNG: reproducible
    rng = np.random.RandomState(0)
    first, second = (cuda_arrays.to_host(cuda_arrays.dropout_mask(shape, keep, rng, dtype))
                     for _ in range(2))
    assert (first != second).mean() > 0.3  # a new mask per call
    everything = cuda_arrays.to_host(cuda_arrays.dropout_mask((50,), 1.0, rng, dtype))
    np.testing.assert_array_equal(everything, 1)


class _BusCounter:
    """Bytes copied host -> device and device -> host while installed."""

    def __init__(self, monkeypatch):
        self.up = self.down = 0
        self._in_to_device = False
        device_array_type = type(cuda.device_array(1))
        original_to_device = cuda.to_device
        original_to_host = device_array_type.copy_to_host
        original_copy_to_device = device_array_type.copy_to_device

        def to_device(array, *args, **kwargs):
            # on a GPU (not on the simulator) to_device calls copy_to_device:
            # the bytes are counted here, once
            self.up += np.asarray(array).nbytes
            self._in_to_device = True
            try:
                return original_to_device(array, *args, **kwargs)
            finally:
                self._in_to_device = False

        def copy_to_host(array, *args, **kwargs):
            self.down += array.nbytes
            return original_to_host(array, *args, **kwargs)

        def copy_to_device(array, source, *args, **kwargs):
            # a host array crosses the bus
            if not hasattr(source, "copy_to_host") and not self._in_to_device:
                self.up += np.asarray(source).nbytes
            return original_copy_to_device(array, source, *args, **kwargs)

        monkeypatch.setattr(cuda, "to_device", to_device)
        monkeypatch.setattr(device_array_type, "copy_to_host", copy_to_host)
        monkeypatch.setattr(device_array_type, "copy_to_device", copy_to_device)


def test_a_fit_copies_parameters_once_and_only_batch_edges_per_step(monkeypatch):
    """Parameters and optimizer state cross the bus once each way per fit;
    per step only the batch, its lengths, the head output and its gradient,
    and a scalar per gradient norm do."""
    from nlstm import LSTMRegressor
    rng = np.random.default_rng(3)
    n, T, F, H, B = 8, 2, 2, 6, 4
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = X[:, :, 0].sum(axis=1)
    counter = _BusCounter(monkeypatch)
    totals = {}
    for epochs in (1, 2):
        counter.up = counter.down = 0
        model = LSTMRegressor(hidden_size=H, max_iter=epochs, batch_size=B, shuffle=False,
                              clip_grad_norm=1.0, device="cuda", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs only
            model.fit(X, y)
        totals[epochs] = (counter.up, counter.down)
    n_params = sum(p.size for p in model.network_.params)
    extra_steps = n // B  # one more epoch
    per_step_up = (totals[2][0] - totals[1][0]) / extra_steps
    per_step_down = (totals[2][1] - totals[1][1]) / extra_steps
    batch_edges = B * T * F * 4 + B * 8 + B * 4  # inputs, lengths, d(loss)/d(output)
    assert per_step_up <= batch_edges
    assert per_step_down <= B * 4 + 4 * 4  # head output, one norm partial per parameter array
    # the parameters (and the two Adam moments) did cross, once per fit
    assert totals[1][0] >= 3 * n_params * 4 and totals[1][1] >= 3 * n_params * 4
    assert 4 * n_params * 4 > batch_edges  # so a per-step parameter copy would have shown


# Two layers and dropout between them are checked on the layer
# (test_cuda.py); the simulator runs a GPU thread as a Python thread, so
# these fits are kept to one layer, two steps and a handful of rows.
FIT_CASES = {
    "sentiment-style: embedding, bidirectional": dict(
        estimator="classifier", tokens=True,
        params=dict(embedding_dim=3, bidirectional=True)),
    "per-step regression, L2, clipping, SGD": dict(
        estimator="regressor", tokens=False,
        params=dict(return_sequences=True, alpha=0.01, clip_grad_norm=0.5, solver="sgd",
                    learning_rate_init=0.05)),
    "early stopping, tanh RNN, three classes": dict(
        estimator="classifier", tokens=False, classes=3,
        params=dict(cell="rnn", early_stopping=True, validation_fraction=0.375, max_iter=2,
                    n_iter_no_change=5)),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fits_with_every_option_match_the_cpu(case):
    """float64, where the devices agree to 1e-9 after three epochs of updates
    (in float32, Adam's normalised steps magnify rounding differences of
    near-zero gradients past 1e-4 after a few epochs; the two-epoch float32 fit
    is checked in test_cuda.py)."""
    from nlstm import LSTMClassifier, LSTMRegressor
    spec = FIT_CASES[case]
    dtype = "float64"
    rng = np.random.default_rng(4)
    n, T = 8, 2
    if spec["tokens"]:
        X = rng.integers(0, 5, size=(n, T))
    else:
        X = rng.normal(size=(n, T, 2)).astype(dtype)
    if spec["estimator"] == "regressor":
        y = rng.normal(size=(n, T) if spec["params"].get("return_sequences") else n)
        make = LSTMRegressor
    else:
        y = np.arange(n) % spec.get("classes", 2)
        make = LSTMClassifier
    fitted = []
    for device in ("cpu", "cuda"):
        settings = dict(hidden_size=3, max_iter=1, batch_size=4, dtype=dtype, device=device,
                        random_state=0)
        model = make(**{**settings, **spec["params"]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: 2 epochs only
            model.fit(X, y)
            model.partial_fit(X, y)  # continues from the host copy of the state
        fitted.append(model)
    cpu_model, gpu_model = fitted
    tol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(gpu_model.loss_curve_, cpu_model.loss_curve_, rtol=tol)
    if spec["params"].get("early_stopping"):
        np.testing.assert_allclose(gpu_model.validation_scores_, cpu_model.validation_scores_)
    for a, b in zip(gpu_model.network_.params, cpu_model.network_.params):
        assert isinstance(a, np.ndarray)  # back on the host after fit
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    state = "velocities" if spec["params"].get("solver") == "sgd" else "ms"
    for a, b in zip(getattr(gpu_model._optimizer, state), getattr(cpu_model._optimizer, state)):
        assert isinstance(a, np.ndarray)  # the optimizer state too
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu_model.predict(X), cpu_model.predict(X), rtol=tol, atol=tol)


def test_dropout_fit_on_the_device_trains_and_is_reproducible():
    """Masks differ from the CPU's bits, so only the GPU is compared with itself."""
    from nlstm import LSTMClassifier
    rng = np.random.default_rng(5)
    X = rng.integers(0, 6, size=(8, 2))
    y = (X == 1).any(axis=1).astype(int)
    runs = []
    for _ in range(2):
        model = LSTMClassifier(hidden_size=4, embedding_dim=3, num_layers=2, dropout=0.4,
                               max_iter=1, batch_size=8, device="cuda", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
        runs.append(model)
    first, second = runs
    np.testing.assert_array_equal(first.loss_curve_, second.loss_curve_)
    for a, b in zip(first.network_.params, second.network_.params):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(first.loss_curve_))
    no_dropout = LSTMClassifier(hidden_size=4, embedding_dim=3, num_layers=2, max_iter=1,
                                batch_size=8, device="cuda", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        no_dropout.fit(X, y)
    assert first.loss_curve_ != no_dropout.loss_curve_  # the masks did act


def test_concurrent_predicts_on_one_gpu_model():
    """Residency swaps the network's arrays for device copies; two threads
    predicting with one model must both get the sequential answer."""
    from concurrency import results_from_threads

    from nlstm import LSTMRegressor
    rng = np.random.default_rng(6)
    X = rng.normal(size=(6, 2, 2)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LSTMRegressor(hidden_size=3, max_iter=1, batch_size=3, device="cuda",
                              random_state=0).fit(X, X[:, :, 0].sum(axis=1))
    expected = model.predict(X)
    for result in results_from_threads(lambda i: model.predict(X), 3):
        np.testing.assert_array_equal(result, expected)
    assert all(isinstance(p, np.ndarray) for p in model.network_.params)


def device_arrays_in(obj, path="model", seen=None):
    """Paths of the device arrays reachable from ``obj``'s attributes."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (type, np.ndarray, np.generic, str, bytes)):
        return []
    seen.add(id(obj))
    if hasattr(obj, "copy_to_host"):
        return [path]
    if isinstance(obj, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    else:
        children = [(f"{path}.{k}", v) for k, v in getattr(obj, "__dict__", {}).items()]
    return [p for child_path, child in children for p in device_arrays_in(child, child_path, seen)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_gpu_model_keeps_no_device_array_between_calls(cell):
    """On a real GPU a device array cannot be deep-copied (so a partial_fit,
    which copies the network, failed after a GPU fit) or pickled: after fit,
    partial_fit and predict the model holds host arrays only."""
    import copy
    import pickle

    from nlstm import LSTMRegressor
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3, 2)).astype(np.float32)
    y = X[:, :, 0].sum(axis=1)
    model = LSTMRegressor(hidden_size=3, max_iter=1, batch_size=3, cell=cell, device="cuda",
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in (model.fit, model.partial_fit):
            step(X, y)
            assert device_arrays_in(model) == [], step.__name__
    model.predict(X)
    assert device_arrays_in(model) == []
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X), model.predict(X))
    np.testing.assert_array_equal(copy.deepcopy(model).predict(X), model.predict(X))


def test_a_gpu_model_streams_and_exports_from_its_host_arrays():
    """Streams run on the CPU and the ONNX export reads host copies, whatever the device
    that trained the model: both give its predictions."""
    from nlstm import LSTMRegressor
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 4, 2)).astype(np.float32)
    model = LSTMRegressor(hidden_size=3, max_iter=1, batch_size=3, device="cuda",
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, X[:, :, 0].sum(axis=1))
    want = model.predict(X)
    stream = model.stream(n_streams=6)
    steps = np.concatenate([stream.predict(X[:, t:t + 1]) for t in range(4)], axis=1)
    np.testing.assert_allclose(steps[:, -1], want, rtol=1e-5, atol=1e-6)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from nlstm import to_onnx
    session = ort.InferenceSession(to_onnx(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["predictions"], {"X": X})[0], want,
                               rtol=1e-5, atol=1e-6)
