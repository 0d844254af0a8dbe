"""skl2onnx converters for nlstm's estimators and `SequenceScaler`, so that
``skl2onnx.to_onnx`` converts them, alone or in a ``Pipeline``.

skl2onnx carries 3-d inputs: ``to_onnx(model, X[:1])`` declares ``X`` as
``(None, T, F)`` from a sample, and a pipeline hands each step's output to
the next. The converters write the graph of `nlstm.onnx_export` into
skl2onnx's container (`_ContainerGraph`), so both exports are the same graph;
a regressor's output is skl2onnx's ``variable``, a classifier's ``label`` and
``probabilities`` (no ZipMap). For ``lengths`` or ``stateful`` inputs, use
`nlstm.to_onnx`.
"""
import numpy as np

from .estimators import LSTMClassifier, LSTMRegressor
from .onnx_export import MIN_OPSET, _classes_tensor, write_estimator
from .preprocessing import SequenceScaler

__all__ = ["register"]


class _ContainerGraph:
    """`nlstm.onnx_export._Graph`'s interface on skl2onnx's scope and container."""

    def __init__(self, scope, container):
        from onnx import TensorProto, numpy_helper
        self._scope, self._container = scope, container
        self._tensor_proto, self._numpy_helper = TensorProto, numpy_helper
        self.opset = container.target_opset

    def name(self, prefix):
        return self._scope.get_unique_variable_name(prefix)

    def constant(self, prefix, array):
        name, array = self.name(prefix), np.asarray(array)
        if array.dtype == object:  # strings: string_data, not raw bytes
            self._container.add_initializer(name, self._tensor_proto.STRING, list(array.shape),
                                            [str(s).encode() for s in array.ravel()])
        else:
            self._container.add_initializer(name, None, None,
                                            self._numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, outputs=1, **attributes):
        if isinstance(outputs, int):
            outputs = [self.name(op.lower()) for _ in range(outputs)]
        self._container.add_node(op, list(inputs), list(outputs),
                                 name=self._scope.get_unique_operator_name(op),
                                 op_version=self.opset, **attributes)
        return outputs[0] if len(outputs) == 1 else outputs


def _types():
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    return {"float32": FloatTensorType, "float64": DoubleTensorType, "i": Int64TensorType,
            "f": DoubleTensorType, "b": BooleanTensorType, "O": StringTensorType}


def _parse_estimator(scope, model, inputs, custom_parsers=None):
    """Declare the operator and its outputs: ``variable``, or ``label`` and ``probabilities``."""
    operator = scope.declare_local_operator(_ALIASES[type(model)], model)
    operator.inputs = inputs
    names = ["label", "probabilities"] if hasattr(model, "classes_") else ["variable"]
    for name in names:
        variable = scope.declare_local_variable(name, _types()["float32"]())
        operator.outputs.append(variable)
    return operator.outputs


def _estimator_shapes(operator):
    model = operator.raw_operator
    types = _types()
    per_step = [None, None] if model.return_sequences else [None]
    float_type = types[model.dtype]
    if hasattr(model, "classes_"):
        label_kind = _classes_tensor(model.classes_).dtype.kind
        operator.outputs[0].type = types[label_kind](per_step)
        operator.outputs[1].type = float_type(per_step + [len(model.classes_)])
    else:
        k = model.network_.head_bias.shape[0]
        operator.outputs[0].type = float_type(per_step if model._squeeze_output
                                              else per_step + [k])


def _convert_estimator(scope, operator, container):
    model = operator.raw_operator
    if container.target_opset < MIN_OPSET:
        raise ValueError(f"nlstm's estimators need opset {MIN_OPSET} or later, got "
                         f"target_opset={container.target_opset}")
    g = _ContainerGraph(scope, container)
    produced = write_estimator(g, model, operator.inputs[0].full_name)
    names = ["label", "probabilities"] if hasattr(model, "classes_") else ["predictions"]
    for name, variable in zip(names, operator.outputs):
        g.node("Identity", [produced[name]], [variable.full_name])


def _scaler_shapes(operator):
    operator.outputs[0].type = operator.inputs[0].type.__class__(
        operator.inputs[0].type.shape)


def _convert_scaler(scope, operator, container):
    """``(X - mean_) / scale_`` over the last axis, in the input's float type."""
    model = operator.raw_operator
    g = _ContainerGraph(scope, container)
    dtype = (np.float64 if operator.inputs[0].type.__class__.__name__ == "DoubleTensorType"
             else np.float32)
    centred = g.node("Sub", [operator.inputs[0].full_name,
                             g.constant("mean", model.mean_.astype(dtype))])
    g.node("Div", [centred, g.constant("scale", model.scale_.astype(dtype))],
           [operator.outputs[0].full_name])


_ALIASES = {LSTMRegressor: "NlstmLSTMRegressor", LSTMClassifier: "NlstmLSTMClassifier",
            SequenceScaler: "NlstmSequenceScaler"}


def register():
    """Register nlstm's converters with skl2onnx (once per process is enough).

    Afterwards ``skl2onnx.to_onnx(model, X[:1])`` converts an `LSTMRegressor`,
    an `LSTMClassifier`, a `SequenceScaler` and pipelines of them. Inputs are
    declared from the sample: ``(None, T, F)`` floats, or ``(None, T)`` int64
    token ids; the graph is `nlstm.to_onnx`'s, without ``lengths`` and
    ``stateful`` inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from skl2onnx import to_onnx
    >>> from nlstm import LSTMRegressor, SequenceScaler
    >>> from nlstm.skl2onnx_converters import register
    >>> register()
    >>> X = np.random.default_rng(0).standard_normal((40, 6, 2)).astype(np.float32)
    >>> pipe = make_pipeline(SequenceScaler(), LSTMRegressor(hidden_size=8, max_iter=2))
    >>> pipe = pipe.fit(X, X.sum(axis=(1, 2)))
    >>> model = to_onnx(pipe, X[:1], target_opset=17)
    >>> [o.name for o in model.graph.output]
    ['variable']
    """
    from skl2onnx import update_registered_converter
    for cls in (LSTMRegressor, LSTMClassifier):
        update_registered_converter(cls, _ALIASES[cls], _estimator_shapes, _convert_estimator,
                                    parser=_parse_estimator)
    update_registered_converter(SequenceScaler, _ALIASES[SequenceScaler], _scaler_shapes,
                                _convert_scaler)
