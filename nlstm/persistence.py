"""Saving fitted estimators to a portable ``.npz`` file and loading them back.

The file holds the hyperparameters (JSON), the fitted attributes, every
parameter array, the nlstm version and a format version. It is read with
``allow_pickle=False``: loading runs no code from the file. Writes are atomic:
the data goes to a temporary file in the same folder, is flushed to disk, and
is renamed over ``path`` only when complete, so a crash mid-save never leaves a
half-written file at ``path``.

The optimizer's state (Adam moments) is not saved: a loaded model predicts
exactly as the saved one, and ``warm_start``/``partial_fit`` restart the
optimizer.
"""
import json
import os
import tempfile
import zipfile

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

FORMAT_VERSION = 1
_FITTED_ARRAYS = ("classes_", "feature_names_in_", "_y_mean", "_y_scale")
_FITTED_SCALARS = ("n_features_in_", "n_tokens_", "n_outputs_", "_squeeze_output", "_input_form_",
                   "n_iter_", "best_loss_", "best_validation_score_", "loss_curve_",
                   "validation_scores_")


def _json_params(estimator):
    params = estimator.get_params()
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None  # a RandomState object has no portable form
    return params


def save(estimator, path):
    """Write a fitted `LSTMRegressor`/`LSTMClassifier` to ``path`` (.npz), atomically."""
    from . import __version__

    check_is_fitted(estimator, "network_")
    network = estimator.network_
    header = {
        "format_version": FORMAT_VERSION,
        "nlstm_version": __version__,
        "class": type(estimator).__name__,
        "params": _json_params(estimator),
        "fitted": {k: getattr(estimator, k) for k in _FITTED_SCALARS if hasattr(estimator, k)},
        "n_inputs": network.lstm.input_size,
        "n_outputs": int(network.head_bias.shape[0]),
    }
    arrays = {f"param_{i}": p for i, p in enumerate(network.params)}
    for name in _FITTED_ARRAYS:
        if hasattr(estimator, name):
            value = np.asarray(getattr(estimator, name))
            if value.dtype == object:
                value = value.astype(str) if name == "feature_names_in_" else value
                if value.dtype == object:
                    raise TypeError(f"cannot save {name} of mixed types; use labels of one type")
            arrays[f"fitted_{name}"] = value
    arrays["header"] = np.array(json.dumps(header, default=_to_builtin))

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # else mkstemp's error names its temporary file
        raise FileNotFoundError(f"cannot save to {path!r}: the folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nlstm-", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the header")


def load(path):
    """Read an estimator written by `save`.

    Raises
    ------
    ValueError
        If the file is not an nlstm model, is corrupted, or was written by a
        newer format version than this nlstm reads.
    """
    from . import estimators

    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {k: data[k] for k in data.files}
        header = json.loads(str(contents.pop("header")))
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable nlstm model file (corrupted or not "
                         f"written by nlstm.save): {exc}") from None
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} was written in model format version {version} by nlstm "
                         f"{header.get('nlstm_version')}; this nlstm reads versions up to "
                         f"{FORMAT_VERSION}. Upgrade nlstm to load it.")
    cls = {"LSTMRegressor": estimators.LSTMRegressor,
           "LSTMClassifier": estimators.LSTMClassifier}.get(header.get("class"))
    if cls is None:
        raise ValueError(f"{path} holds an unknown model class {header.get('class')!r}")
    estimator = cls(**header["params"])
    for name, value in header["fitted"].items():
        setattr(estimator, name, value)
    for name in _FITTED_ARRAYS:
        if f"fitted_{name}" in contents:
            setattr(estimator, name, contents[f"fitted_{name}"])
    rng = check_random_state(estimator.random_state)
    lengths = np.ones(1, dtype=np.int64)
    # Built on the CPU: a model saved with device="cuda" must load on a machine
    # without a GPU. Its `device` parameter is kept; the next fit/predict checks
    # it (and names what is missing), and set_params(device="cpu") moves it.
    network = estimator._build_network(header["n_inputs"], header["n_outputs"], lengths, rng,
                                       device="cpu")
    params = network.params
    stored = [contents.get(f"param_{i}") for i in range(len(params))]
    for i, (target, value) in enumerate(zip(params, stored)):
        if value is None or value.shape != target.shape:
            raise ValueError(f"{path} is corrupted: parameter {i} is missing or has the "
                             f"wrong shape")
        target[...] = value
    estimator.network_ = network
    estimator._optimizer = estimator._make_optimizer(params)
    estimator._rng = rng
    estimator._no_improvement_count = 0
    return estimator
