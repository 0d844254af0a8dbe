"""Export fitted models to ONNX (`to_onnx`), built on ONNX's own recurrent
operators (LSTM, GRU, RNN, with ``sequence_lens`` for ragged batches), so that
onnxruntime, OpenVINO and every other ONNX runtime serve them.

The graph is written through a small `_Graph` interface (names, initializers,
nodes): `to_onnx` fills an ``onnx.GraphProto`` with it, and the skl2onnx
converters (`nlstm.skl2onnx_converters`) fill skl2onnx's container with the
same calls.

Layouts: ONNX's recurrent operators are time-major, ``Y`` (T, D, B, H), with
the gates in the order i, o, f, c (LSTM) and z, r, h (GRU) where PyTorch and
nlstm use i, f, g, o and r, z, n; the GRU runs with ``linear_before_reset=1``,
PyTorch's placement of ``b_hn``.

Float64 models keep float64 inputs, outputs and head, but their recurrent
operators compute in float32: onnxruntime has no float64 kernels for LSTM, GRU
or RNN ("LSTM operator does not support double yet", onnxruntime 1.32), and
OpenVINO's CPU plugin computes them in float32 anyway.
"""
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._validation import check_bool

DEFAULT_OPSET = 17  # onnxruntime >= 1.13, OpenVINO >= 2023.0
MIN_OPSET = 14  # Reshape's allowzero and the recurrent ops' current definitions

# PyTorch's gate blocks, in ONNX's order: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h
_GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
_FLOAT, _DOUBLE, _INT32 = 1, 11, 6  # onnx.TensorProto's element types


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("exporting to ONNX needs the onnx package: "
                          'pip install "nlstm[onnx]"') from None
    return onnx


class _Graph:
    """The nodes and initializers of a graph being written, with unique names."""

    def __init__(self, opset):
        onnx = _onnx()
        self._helper, self._numpy_helper = onnx.helper, onnx.numpy_helper
        self.opset = opset
        self.nodes, self.initializers = [], []
        self._taken = set()

    def name(self, prefix):
        """A fresh name starting with ``prefix``."""
        name, i = prefix, 0
        while name in self._taken:
            i += 1
            name = f"{prefix}_{i}"
        self._taken.add(name)
        return name

    def constant(self, prefix, array):
        """An initializer holding ``array``; returns its name."""
        name = self.name(prefix)
        self.initializers.append(self._numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, outputs=1, **attributes):
        """Add an ``op`` node; ``outputs`` is a count (fresh names) or a list of
        names. Returns the output names (one name for one output)."""
        if isinstance(outputs, int):
            outputs = [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(self._helper.make_node(op, list(inputs), list(outputs),
                                                 name=self.name(f"{op}_node"), **attributes))
        return outputs[0] if len(outputs) == 1 else outputs


def _direction_weights(params, cell, k, D):
    """ONNX's W (D, G*H, F), R (D, G*H, H) and B (D, 2*G*H) of layer k from
    PyTorch-named parameters, the gate blocks reordered."""
    order = _GATE_ORDER[cell]

    def reorder(array):  # (G*H, ...) or (G*H,) in PyTorch's gate order -> ONNX's
        blocks = np.split(array, len(order))
        return np.concatenate([blocks[i] for i in order])

    W, R, B = [], [], []
    for d in range(D):
        suffix = f"l{k}" + ("_reverse" if d == 1 else "")
        W.append(reorder(params[f"weight_ih_{suffix}"]))
        R.append(reorder(params[f"weight_hh_{suffix}"]))
        B.append(np.concatenate([reorder(params[f"bias_ih_{suffix}"]),
                                 reorder(params[f"bias_hh_{suffix}"])]))
    return np.stack(W), np.stack(R), np.stack(B)


def _rows(g, name, start, stop):
    """``name[start:stop]`` along axis 0."""
    return g.node("Slice", [name, g.constant("start", np.array([start])),
                            g.constant("end", np.array([stop])),
                            g.constant("axis", np.array([0]))])


def _recurrent_stack(g, layer, x_batch_first, lengths, initial_h, initial_c):
    """The layer's ops on ``x_batch_first`` (B, T, F). Returns the name of the
    output (T, B, D*H), time-major, and the final state ``{"h_n": ..., "c_n":
    ...}`` (L*D, B, H) (``c_n`` for the LSTM only). ``lengths`` (B,) int64 or
    None; ``initial_h``/``initial_c`` (L*D, B, H) or None."""
    sequence_lens = None if lengths is None else g.node("Cast", [lengths], to=_INT32)
    params = {name: p.astype(np.float32) for name, p in layer.state_dict().items()}
    cell, D, H = layer.cell, layer.num_directions, layer.hidden_size
    in_float32 = layer.dtype != "float32"  # float64: the recurrent ops run in float32

    def to_float32(name):
        return g.node("Cast", [name], to=_FLOAT) if in_float32 and name is not None else name

    x = g.node("Transpose", [to_float32(x_batch_first)], perm=[1, 0, 2])  # (T, B, F)
    initial_h, initial_c = to_float32(initial_h), to_float32(initial_c)
    flatten = g.constant("shape_t_b_dh", np.array([0, 0, D * H], np.int64))
    h_parts, c_parts = [], []
    for k in range(layer.num_layers):
        W, R, B = _direction_weights(params, cell, k, D)
        inputs = [x, g.constant(f"W_l{k}", W), g.constant(f"R_l{k}", R),
                  g.constant(f"B_l{k}", B), sequence_lens or ""]
        for state in (initial_h, initial_c) if cell == "lstm" else (initial_h,):
            if state is None:
                inputs.append("")
            else:  # this layer's D rows of the (L*D, B, H) state
                inputs.append(_rows(g, state, k * D, (k + 1) * D))
        while inputs[-1] == "":
            inputs.pop()
        attributes = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
        if cell == "gru":
            attributes["linear_before_reset"] = 1
        n_outputs = 3 if cell == "lstm" else 2
        outputs = g.node(_OP[cell], inputs, n_outputs, **attributes)
        y = g.node("Transpose", [outputs[0]], perm=[0, 2, 1, 3])  # (T, D, B, H) -> (T, B, D, H)
        x = g.node("Reshape", [y, flatten])  # (T, B, D*H)
        h_parts.append(outputs[1])
        if cell == "lstm":
            c_parts.append(outputs[2])
    states = {"h_n": h_parts}
    if cell == "lstm":
        states["c_n"] = c_parts
    for key, parts in states.items():  # layer after layer: (L*D, B, H)
        states[key] = parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=0)
    if in_float32:
        x = g.node("Cast", [x], to=_DOUBLE)
        states = {key: g.node("Cast", [name], to=_DOUBLE) for key, name in states.items()}
    return x, states


def _head(g, est, features):
    """The estimator's outputs from the head's input ``features`` (B, D*H) or
    (B, T, D*H): {"predictions": name} for a regressor, {"label", "probabilities"}
    for a classifier."""
    network = est.network_
    dtype = network.dtype
    z = g.node("Add", [g.node("MatMul", [features, g.constant("head_weight",
                                                                network.head_weight)]),
                       g.constant("head_bias", network.head_bias)])
    if not hasattr(est, "classes_"):
        scale, shift = est._head_scaling()
        values = g.node("Add", [g.node("Mul", [z, g.constant("y_scale",
                                                               np.asarray(scale, dtype))]),
                                g.constant("y_mean", np.asarray(shift, dtype))])
        if est._squeeze_output:
            values = g.node("Squeeze", [values, g.constant("last_axis", np.array([-1]))])
        return {"predictions": values}
    if len(est.classes_) == 2:
        p = g.node("Sigmoid", [z])  # (..., 1)
        q = g.node("Sub", [g.constant("one", np.ones(1, dtype)), p])
        proba = g.node("Concat", [q, p], axis=-1)
    else:
        proba = g.node("Softmax", [z], axis=-1)
    index = g.node("ArgMax", [proba], axis=-1, keepdims=0)
    label = g.node("Gather", [g.constant("classes", _classes_tensor(est.classes_)), index],
                   axis=0)
    return {"label": label, "probabilities": proba}


def _classes_tensor(classes):
    """The labels as an ONNX-typed array (int64, double, bool or string)."""
    kind = classes.dtype.kind
    if kind in "iu":
        return classes.astype(np.int64)
    if kind == "f":
        return classes.astype(np.float64)
    if kind == "b":
        return classes
    if kind in "US" or (kind == "O" and all(isinstance(c, str) for c in classes)):
        return np.array([str(c) for c in classes], dtype=object)
    raise ValueError(f"cannot export labels of dtype {classes.dtype} to ONNX: use labels of "
                     "one type (integers, floats, booleans or strings)")


def write_estimator(g, est, x, lengths=None, initial_h=None, initial_c=None):
    """Write a fitted estimator's prediction into ``g``.

    ``x`` names the (B, T, F) floats, (B, T) token ids or, for a model fit on a
    table, the (B, T) one-feature sequences; ``lengths`` the (B,) int64 valid
    steps (None: all); ``initial_h``/``initial_c`` the (L, B, H) state (None:
    zeros). Returns {output name: graph name}, with "h_n" (and "c_n").
    """
    network = est.network_
    if network.embedding is not None:
        x = g.node("Gather", [g.constant("embedding", network.embedding), x], axis=0)
    elif est._input_form_ == "table":
        x = g.node("Unsqueeze", [x, g.constant("feature_axis", np.array([2]))])
    y, states = _recurrent_stack(g, network.lstm, x, lengths, initial_h, initial_c)
    L, D, H = network.lstm.num_layers, network.lstm.num_directions, network.lstm.hidden_size
    if network.return_sequences:
        features = g.node("Transpose", [y], perm=[1, 0, 2])  # (B, T, D*H)
    else:  # the top layer's final states, forward then reverse: (B, D*H)
        top = states["h_n"] if L == 1 else _rows(g, states["h_n"], (L - 1) * D, L * D)
        features = g.node("Reshape", [g.node("Transpose", [top], perm=[1, 0, 2]),
                                      g.constant("shape_b_dh", np.array([0, D * H], np.int64))])
    return {**_head(g, est, features), **states}


def write_layer(g, layer, x, lengths=None, initial_h=None, initial_c=None):
    """Write an `nlstm.LSTM` layer's forward into ``g``: {"output": (B, T, D*H),
    "h_n", "c_n"} (arguments as `write_estimator`'s, the state (L*D, B, H))."""
    y, states = _recurrent_stack(g, layer, x, lengths, initial_h, initial_c)
    return {"output": g.node("Transpose", [y], perm=[1, 0, 2]), **states}


def _check_model(model, stateful):
    """The layer or fitted estimator to export, and whether it is an estimator."""
    from .estimators import _BaseLSTM
    from .layer import LSTM
    if isinstance(model, LSTM):
        return False
    if not isinstance(model, _BaseLSTM):
        raise TypeError("to_onnx exports an LSTMRegressor, an LSTMClassifier or an nlstm.LSTM "
                        f"layer, got {type(model).__name__}")
    check_is_fitted(model, "network_")
    if stateful and model.network_.lstm.bidirectional:
        raise ValueError("stateful=True cannot export a bidirectional model: its reverse "
                         "direction reads each sequence from its end, which a step-by-step "
                         "server has not seen yet")
    return True


def _value_info(helper, name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def to_onnx(model, *, stateful=False, lengths=False, opset=None):
    """Export a fitted estimator or an `nlstm.LSTM` layer as an ONNX model.

    The graph uses ONNX's LSTM, GRU and RNN operators, so onnxruntime,
    OpenVINO and other ONNX runtimes run it without nlstm. Dropout is left out
    (inference).

    Parameters
    ----------
    model : LSTMRegressor, LSTMClassifier or LSTM
        A fitted estimator (any cell, 1 or more layers, either direction,
        float32 or float64, token ids, ``return_sequences``, several outputs),
        or a layer.
    stateful : bool, default=False
        Add the recurrent state as inputs ``"initial_h"`` (and ``"initial_c"``
        for an LSTM), (num_layers*D, batch, hidden_size), zeros to start,
        whose next values are the outputs ``"h_n"`` (and ``"c_n"``): a server
        feeds them back to run a sequence a chunk or a step at a time.
        Bidirectional estimators cannot be stateful.
    lengths : bool, default=False
        Add the input ``"lengths"`` (batch,) int64: each sequence's valid
        steps in a padded ragged batch (values past them are ignored, and
        per-step outputs there are not meaningful). Without it every
        sequence runs its full length.
    opset : int or None, default=None
        The ai.onnx opset, 14 or later (None: 17, which onnxruntime 1.13+ and
        OpenVINO 2023+ read).

    Returns
    -------
    onnx.ModelProto
        Inputs ``"X"`` ((batch, time, features) floats of the model's dtype;
        (batch, time) int64 token ids for an embedding model; (batch, T)
        floats for a model fit on a 2-d table). Outputs: a regressor's
        ``"predictions"`` in the targets' units, per step with
        ``return_sequences``; a classifier's ``"label"`` (the original
        labels) and ``"probabilities"``; a layer's ``"output"``; and the final
        state ``"h_n"`` (and ``"c_n"``), (num_layers*D, batch, hidden_size).

    Notes
    -----
    A float64 model keeps float64 inputs, outputs and head, but its recurrent
    operators compute in float32: onnxruntime has no float64 LSTM, GRU or RNN
    kernels, and OpenVINO's CPU plugin computes them in float32. Its outputs
    then match nlstm's within float32 rounding (1e-5 relative).

    OpenVINO's CPU plugin ignores ``sequence_lens`` under dynamic shapes
    (OpenVINO 2026.4): with ``lengths``, reshape the model to the batch's
    static shapes before compiling it, and ask for f32 inference precision
    (its default on CPUs with bf16 is bf16).

    Raises
    ------
    ImportError
        Without the onnx package (``pip install "nlstm[onnx]"``).
    ValueError
        For what cannot be exported (a bidirectional estimator with
        ``stateful=True``, labels of mixed types, an opset below 14).
    TypeError
        For a model that is not an estimator or a layer, and ``stateful`` or
        ``lengths`` that are not True or False.

    Examples
    --------
    >>> import numpy as np
    >>> import onnx
    >>> from nlstm import LSTMRegressor, to_onnx
    >>> X = np.random.default_rng(0).standard_normal((40, 6, 2)).astype(np.float32)
    >>> reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0)
    >>> reg = reg.fit(X, X.sum(axis=(1, 2)))
    >>> model = to_onnx(reg, lengths=True)
    >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    (['X', 'lengths'], ['predictions', 'h_n', 'c_n'])
    >>> onnx.checker.check_model(model, full_check=True)
    """
    onnx = _onnx()
    helper, TensorProto = onnx.helper, onnx.TensorProto
    if opset is None:
        opset = DEFAULT_OPSET
    largest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not (
            MIN_OPSET <= opset <= largest):
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {largest} (this onnx "
                         f"package's newest), got {opset!r}")
    stateful, lengths = check_bool(stateful, "stateful"), check_bool(lengths, "lengths")
    is_estimator = _check_model(model, stateful)
    layer = model.network_.lstm if is_estimator else model
    float_type = TensorProto.FLOAT if layer.dtype == "float32" else TensorProto.DOUBLE
    n_states = layer.num_layers * layer.num_directions
    g = _Graph(int(opset))
    for reserved in ("X", "lengths", "initial_h", "initial_c", "predictions", "label",
                     "probabilities", "output", "h_n", "c_n"):
        g.name(reserved)
    inputs = []
    if is_estimator and model.network_.embedding is not None:
        inputs.append(_value_info(helper, "X", TensorProto.INT64, ["batch", "time"]))
    elif is_estimator and model._input_form_ == "table":
        inputs.append(_value_info(helper, "X", float_type, ["batch", model.n_features_in_]))
    else:
        inputs.append(_value_info(helper, "X", float_type, ["batch", "time", layer.input_size]))
    if lengths:
        inputs.append(_value_info(helper, "lengths", TensorProto.INT64, ["batch"]))
    state_shape = [n_states, "batch", layer.hidden_size]
    initial_h = initial_c = None
    if stateful:
        initial_h = "initial_h"
        inputs.append(_value_info(helper, "initial_h", float_type, state_shape))
        if layer.cell == "lstm":
            initial_c = "initial_c"
            inputs.append(_value_info(helper, "initial_c", float_type, state_shape))
    write = write_estimator if is_estimator else write_layer
    produced = write(g, model, "X", "lengths" if lengths else None, initial_h, initial_c)
    outputs = []
    for name, graph_name in produced.items():
        g.node("Identity", [graph_name], [name])
        outputs.append(_output_info(helper, TensorProto, name, model, layer, float_type,
                                    state_shape))
    graph = helper.make_graph(g.nodes, type(model).__name__, inputs, outputs, g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                                   producer_name="nlstm")
    onnx_model.ir_version = min(onnx_model.ir_version, _ir_version_for(onnx, opset))
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _ir_version_for(onnx, opset):
    """The IR version of the onnx release that introduced ``opset`` (runtimes refuse newer)."""
    for ir_version, op_version in ((8, 17), (9, 19), (10, 22)):
        if opset <= op_version:
            return ir_version
    return onnx.IR_VERSION


def _output_info(helper, TensorProto, name, model, layer, float_type, state_shape):
    """The declared type and shape of one output."""
    if name in ("h_n", "c_n"):
        return _value_info(helper, name, float_type, state_shape)
    if name == "output":
        return _value_info(helper, name, float_type,
                           ["batch", "time", layer.num_directions * layer.hidden_size])
    per_step = ["batch", "time"] if model.network_.return_sequences else ["batch"]
    if name == "probabilities":
        return _value_info(helper, name, float_type, per_step + [len(model.classes_)])
    if name == "label":
        classes = _classes_tensor(model.classes_)
        elem = {"i": TensorProto.INT64, "f": TensorProto.DOUBLE, "b": TensorProto.BOOL,
                "O": TensorProto.STRING}[classes.dtype.kind]
        return _value_info(helper, name, elem, per_step)
    n_outputs = model.network_.head_bias.shape[0]
    return _value_info(helper, name, float_type,
                       per_step if model._squeeze_output else per_step + [n_outputs])
