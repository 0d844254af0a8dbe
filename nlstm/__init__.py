"""nlstm: LSTM networks in Numba kernels, with a scikit-learn estimator API."""
__version__ = "0.1.0"

from .estimators import LSTMClassifier, LSTMRegressor
from .layer import LSTM
from .onnx_export import to_onnx
from .persistence import load, save
from .preprocessing import SequenceScaler

__all__ = ["LSTM", "LSTMClassifier", "LSTMRegressor", "SequenceScaler", "load", "save",
           "to_onnx", "__version__"]
