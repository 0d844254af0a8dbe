"""`nlstm.to_onnx`: the exported graph, run by onnxruntime and by OpenVINO (the oracles),
gives nlstm's predictions, probabilities, labels and layer outputs, ragged batches included,
and a stateful export run a chunk at a time gives the whole sequence's results."""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from nlstm import LSTM, LSTMClassifier, LSTMRegressor, to_onnx

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
RTOL, ATOL = 1e-5, 1e-6
RNG = np.random.default_rng(0)
N, T = 30, 9
X3 = RNG.standard_normal((N, T, 3))
TOKENS = RNG.integers(0, 12, (N, T))
LENGTHS = np.array([9, 4, 7, 1, 9, 2])  # the ragged batch the runtimes read


def run_onnxruntime(model, feed):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feed)))


def run_openvino(model, feed):
    """OpenVINO's CPU plugin with the batch's static shapes (under dynamic shapes its
    recurrent ops ignore sequence_lens, OpenVINO 2026.4) in float32 (not its bf16 default)."""
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    network = core.read_model(model.SerializeToString(), b"")
    network.reshape({name: list(value.shape) for name, value in feed.items()})
    compiled = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(feed)
    names = [o.name for o in model.graph.output]  # OpenVINO may rename them: in graph order
    return dict(zip(names, (result[o] for o in compiled.outputs)))


RUNTIMES = [run_onnxruntime, run_openvino]


def ragged(data, lengths):
    return [row[:n] for row, n in zip(data, lengths)]


CONFIGS = {
    "regressor-lstm": (LSTMRegressor, dict(), "numbers", "sum"),
    "regressor-gru-2-layers-bidirectional-float64": (
        LSTMRegressor, dict(cell="gru", num_layers=2, bidirectional=True, dtype="float64"),
        "numbers", "sum"),
    "regressor-rnn-3-layers-per-step-2-outputs": (
        LSTMRegressor, dict(cell="rnn", num_layers=3, return_sequences=True), "numbers",
        "cumsum2"),
    "regressor-lstm-2-layers-bidirectional-per-step-dropout": (
        LSTMRegressor, dict(num_layers=2, bidirectional=True, return_sequences=True,
                            dropout=0.3), "numbers", "cumsum"),
    "regressor-gru-2-outputs-float64": (
        LSTMRegressor, dict(cell="gru", dtype="float64"), "numbers", "sum2"),
    "regressor-lstm-table": (LSTMRegressor, dict(num_layers=2), "table", "sum"),
    "classifier-lstm-binary-tokens-2-layers": (
        LSTMClassifier, dict(embedding_dim=4, num_layers=2), "tokens", "binary"),
    "classifier-gru-strings-float64": (
        LSTMClassifier, dict(cell="gru", dtype="float64"), "numbers", "strings"),
    "classifier-rnn-bidirectional-tokens-per-step": (
        LSTMClassifier, dict(cell="rnn", bidirectional=True, embedding_dim=4,
                             return_sequences=True), "tokens", "per-step"),
    "classifier-lstm-3-layers-float64-tokens-per-step": (
        LSTMClassifier, dict(num_layers=3, dtype="float64", embedding_dim=3,
                             return_sequences=True), "tokens", "per-step"),
}


def fitted(name):
    cls, params, inputs, targets = CONFIGS[name]
    X = {"numbers": X3, "table": X3[:, :, 0], "tokens": TOKENS}[inputs]
    signal = X3[:, :, 0]
    y = {"sum": signal.sum(axis=1),
         "sum2": np.stack([signal.sum(axis=1), X3[:, :, 1].mean(axis=1)], axis=1),
         "cumsum": np.cumsum(signal, axis=1),
         "cumsum2": np.stack([np.cumsum(signal, axis=1), signal], axis=2),
         "binary": (signal.sum(axis=1) > 0).astype(int),
         "strings": np.array(["low", "mid", "high"])[np.digitize(signal.sum(axis=1), [-1, 1])],
         "per-step": (TOKENS % 3)}[targets]
    est = cls(hidden_size=6, max_iter=3, random_state=0, **params).fit(X, y)
    return est, X


def expected(est, X, lengths):
    """nlstm's outputs for the ragged batch, padded as the graph pads them."""
    rows = ragged(X, lengths) if est._input_form_ != "table" else X
    out = {}
    if hasattr(est, "classes_"):
        out["probabilities"], out["label"] = est.predict_proba(rows), est.predict(rows)
    else:
        out["predictions"] = est.predict(rows)
    return out


def valid_steps(values, lengths):
    """Per-step outputs (B, T, ...) as a list of their valid steps."""
    return [v[:n] for v, n in zip(values, lengths)]


@pytest.mark.parametrize("runtime", RUNTIMES, ids=["onnxruntime", "openvino"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_exported_estimators_predict_as_nlstm_does(name, runtime):
    est, X = fitted(name)
    table = est._input_form_ == "table"
    lengths = np.full(len(LENGTHS), T) if table else LENGTHS
    model = to_onnx(est, lengths=not table)
    batch = X[:len(lengths)]
    if est.network_.embedding is None:
        batch = batch.astype(est.network_.dtype)
    feed = {"X": batch} if table else {"X": batch, "lengths": lengths}
    got, want = runtime(model, feed), expected(est, X[:len(lengths)], lengths)
    assert set(got) >= set(want) | {"h_n"}
    for key, value in want.items():
        if est.return_sequences:
            pairs = zip(valid_steps(got[key], lengths), value)
        else:
            pairs = [(got[key], value)]
        for g, w in pairs:
            if key == "label":
                np.testing.assert_array_equal(g.astype(w.dtype), w)
            else:
                np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("runtime", RUNTIMES, ids=["onnxruntime", "openvino"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_exported_layers_give_the_output_and_final_state(cell, runtime):
    layer = LSTM(3, 5, num_layers=2, bidirectional=True, cell=cell, random_state=0)
    x = X3[:6].astype(np.float32)
    h0 = RNG.standard_normal((4, 6, 5)).astype(np.float32)
    initial = (h0, -h0) if cell == "lstm" else h0
    output, state = layer.forward(x, lengths=LENGTHS, initial_state=initial)
    feed = {"X": x, "lengths": LENGTHS, "initial_h": h0}
    if cell == "lstm":
        feed["initial_c"] = -h0
    got = runtime(to_onnx(layer, lengths=True, stateful=True), feed)
    np.testing.assert_allclose(got["output"], output, rtol=RTOL, atol=ATOL)
    for key, value in zip(("h_n", "c_n"), state if cell == "lstm" else [state]):
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("runtime", RUNTIMES, ids=["onnxruntime", "openvino"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_stateful_export_run_a_chunk_at_a_time_equals_the_whole_sequence(cell, runtime):
    est = LSTMRegressor(hidden_size=6, num_layers=2, cell=cell, return_sequences=True,
                        max_iter=2, random_state=0).fit(X3, np.cumsum(X3[:, :, 0], axis=1))
    model = to_onnx(est, stateful=True)
    batch = X3[:3].astype(np.float32)
    zeros = np.zeros((2, 3, 6), np.float32)
    state = {"initial_h": zeros, "initial_c": zeros} if cell == "lstm" else {"initial_h": zeros}
    pieces = []
    for start, stop in ((0, 1), (1, 4), (4, 5), (5, T)):  # one step, then chunks
        got = runtime(model, {"X": batch[:, start:stop], **state})
        pieces.append(got["predictions"])
        state = {f"initial_{k}": got[f"{k}_n"] for k in ("h", "c") if f"{k}_n" in got}
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), est.predict(batch),
                               rtol=RTOL, atol=ATOL)
    whole = runtime(model, {"X": batch, **{k: np.zeros_like(v) for k, v in state.items()}})
    np.testing.assert_allclose(whole["h_n"], state["initial_h"], rtol=RTOL, atol=ATOL)


def test_the_export_round_trips_through_a_file_and_passes_the_checker(tmp_path):
    est, X = fitted("classifier-lstm-binary-tokens-2-layers")
    model = to_onnx(est, lengths=True)
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    loaded = onnx.load(path)
    assert loaded.SerializeToString() == model.SerializeToString()
    feed = {"X": X[:6], "lengths": LENGTHS}
    a, b = run_onnxruntime(model, feed), run_onnxruntime(loaded, feed)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert [i.name for i in model.graph.input] == ["X", "lengths"]
    assert [o.name for o in model.graph.output] == ["label", "probabilities", "h_n", "c_n"]
    assert {o.op_type for o in model.graph.node} >= {"LSTM", "Gather"}


def test_what_cannot_be_exported_is_refused_clearly():
    with pytest.raises(NotFittedError):
        to_onnx(LSTMRegressor())
    with pytest.raises(TypeError, match="exports an LSTMRegressor"):
        to_onnx(object())
    bidirectional = LSTMRegressor(hidden_size=3, bidirectional=True, max_iter=1).fit(
        X3, X3.sum(axis=(1, 2)))
    with pytest.raises(ValueError, match="bidirectional"):
        to_onnx(bidirectional, stateful=True)
    for opset in (13, 10_000, 17.0, True):
        with pytest.raises(ValueError, match="opset"):
            to_onnx(bidirectional, opset=opset)
    for name in ("stateful", "lengths"):
        with pytest.raises(TypeError, match=name):
            to_onnx(bidirectional, **{name: "yes"})
    from nlstm.onnx_export import _classes_tensor  # labels fit accepts all export
    with pytest.raises(ValueError, match="labels of one type"):
        _classes_tensor(np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]"))


@pytest.mark.parametrize("runtime", RUNTIMES, ids=["onnxruntime", "openvino"])
def test_skl2onnx_converts_pipelines_of_the_scaler_and_the_estimators(runtime):
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx as skl2onnx_to_onnx
    from sklearn.pipeline import make_pipeline

    from nlstm import SequenceScaler
    from nlstm.skl2onnx_converters import register
    register()
    X = (X3 * 5 + 3).astype(np.float32)  # far from standardised: the scaler matters
    labels = np.array(["low", "mid", "high"])[np.digitize(X3[:, :, 0].sum(axis=1), [-1, 1])]
    regressor = make_pipeline(SequenceScaler(), LSTMRegressor(hidden_size=6, max_iter=3,
                                                              random_state=0))
    classifier = make_pipeline(SequenceScaler(), LSTMClassifier(hidden_size=6, cell="gru",
                                                                max_iter=3, random_state=0))
    regressor.fit(X, X3.sum(axis=(1, 2)))
    classifier.fit(X, labels)
    got = runtime(skl2onnx_to_onnx(regressor, X[:1], target_opset=17), {"X": X[:6]})
    np.testing.assert_allclose(got["variable"], regressor.predict(X[:6]), rtol=RTOL, atol=ATOL)
    got = runtime(skl2onnx_to_onnx(classifier, X[:1], target_opset=17), {"X": X[:6]})
    np.testing.assert_allclose(got["probabilities"], classifier.predict_proba(X[:6]),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got["label"], classifier.predict(X[:6]))
    tokens = LSTMClassifier(embedding_dim=3, hidden_size=4, max_iter=2, random_state=0).fit(
        TOKENS, TOKENS[:, 0] % 2)
    got = runtime(skl2onnx_to_onnx(tokens, TOKENS[:1], target_opset=17), {"X": TOKENS[:6]})
    np.testing.assert_array_equal(got["label"], tokens.predict(TOKENS[:6]))
