"""Scale-out on Dask: train over the blocks of a dask array, predict block by block.

Requires the ``dask`` extra (``pip install "nlstm[dask]"``); importing nlstm
never imports dask. Hyper-parameter search needs no helper: run scikit-learn's
``GridSearchCV`` under joblib's dask backend (see the README, "Scaling out").

Why a helper rather than dask-ml's ``Incremental``: with dask-ml 2025.1.0 and
dask 2026.8 ``Incremental.fit`` hands ``partial_fit`` the *name* of each block
(a string such as ``'array-b145…'``) instead of the block, so it cannot train
any estimator. `partial_fit_blocks` does the same job in a few lines of
``dask.delayed``: the model travels to each block in turn (it is small; the
blocks may not be), so only one block needs to be in memory at a time.
"""
import copy

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

__all__ = ["partial_fit_blocks", "predict_blocks"]

PREDICT_METHODS = ("predict", "predict_proba")


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as error:  # pragma: no cover - exercised only without dask
        raise ImportError("nlstm.scale_out needs dask: pip install 'nlstm[dask]'") from error
    return dask, da


def _check_dask_array(X, name):
    _, da = _import_dask()
    if not isinstance(X, da.Array):
        raise TypeError(f"{name} must be a dask array, got {type(X).__name__}; "
                        f"for in-memory data call the estimator directly")
    if X.ndim < 1 or any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(f"{name} must have known chunk sizes along axis 0 "
                         f"(call {name}.compute_chunk_sizes() first)")
    return X.rechunk({axis: -1 for axis in range(1, X.ndim)})  # blocks split rows only


def _partial_fit_block(model, X_block, y_block, classes, weight_block):
    """``partial_fit`` on one block; a block whose weights are all zero has
    nothing to teach and is passed over (``partial_fit`` would refuse it)."""
    if weight_block is not None and not np.any(np.asarray(weight_block) > 0):
        return model
    if classes is not None:  # every call may repeat them; the first needs them
        model.partial_fit(X_block, y_block, classes=classes, sample_weight=weight_block)
    else:
        model.partial_fit(X_block, y_block, sample_weight=weight_block)
    return model


def partial_fit_blocks(estimator, X, y, *, sample_weight=None, classes=None, epochs=1,
                       shuffle_blocks=True, random_state=None):
    """``partial_fit`` over the blocks of dask arrays, one block at a time.

    Each block is loaded where it lives (a worker of the current
    ``dask.distributed`` client, or the local scheduler) and the model is sent
    to it, so the data never has to fit in memory at once. Blocks run in a
    chain: block k+1 starts from the weights block k left.

    Parameters
    ----------
    estimator : LSTMRegressor or LSTMClassifier
        Used as is (fitted or not), never modified: a fitted copy is returned.
    X : dask array of shape (n, T, F), (n, T) or (n, T) token ids
        Chunked along axis 0 (other axes are joined into one chunk).
    y : dask array of shape (n,) or (n, k)
        Targets, with the same row chunks as ``X``.
    sample_weight : dask array of shape (n,) or (n, T), optional
        Weights per sequence (or per timestep with ``return_sequences``),
        sent with each block to ``partial_fit``. As there, they are rescaled
        to average 1 within each call, so they weigh samples against the
        others of the same block, not against other blocks. A block whose
        weights are all 0 is passed over.
    classes : array-like, optional
        All class labels (classifiers only). If omitted for an unfitted
        classifier they are computed from ``y`` with one pass over it.
    epochs : int, default=1
        Passes over all blocks.
    shuffle_blocks : bool, default=True
        Visit the blocks in a new random order every epoch.
    random_state : int, RandomState or None
        Seeds the block order.

    Returns
    -------
    estimator
        The trained copy.

    See Also
    --------
    predict_blocks : Predictions over dask arrays.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from nlstm import LSTMRegressor
    >>> from nlstm.scale_out import partial_fit_blocks
    >>> X = np.random.default_rng(0).standard_normal((60, 5, 2))
    >>> X_blocks = da.from_array(X, chunks=(20, 5, 2))  # three blocks of 20 sequences
    >>> y_blocks = da.from_array(X[:, :, 0].sum(axis=1), chunks=20)
    >>> reg = partial_fit_blocks(LSTMRegressor(hidden_size=8, random_state=0),
    ...                          X_blocks, y_blocks, epochs=2, random_state=0)
    >>> reg.n_iter_  # one partial_fit per block and epoch
    6
    """
    dask, _ = _import_dask()
    if not hasattr(estimator, "partial_fit"):
        raise TypeError(f"estimator must have partial_fit, got {type(estimator).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(shuffle_blocks, (bool, np.bool_)):
        raise TypeError(f"shuffle_blocks must be True or False, got {shuffle_blocks!r}")
    rng = check_random_state(random_state)
    X = _check_dask_array(X, "X")
    y = _check_dask_array(y, "y")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have different numbers of rows: {X.shape[0]} and {y.shape[0]}")
    y = y.rechunk({0: X.chunks[0]})
    if sample_weight is not None:
        sample_weight = _check_dask_array(sample_weight, "sample_weight")
        if sample_weight.shape[0] != X.shape[0]:
            raise ValueError(f"X and sample_weight have different numbers of rows: "
                             f"{X.shape[0]} and {sample_weight.shape[0]}")
        sample_weight = sample_weight.rechunk({0: X.chunks[0]})

    fitted = hasattr(estimator, "n_features_in_")
    model = copy.deepcopy(estimator) if fitted else clone(estimator)
    if not is_classifier(model):
        classes = None
    elif classes is None and not hasattr(model, "classes_"):
        classes = np.unique(y.compute())
    x_blocks = X.to_delayed().ravel()
    y_blocks = y.to_delayed().ravel()
    weight_blocks = ([None] * len(x_blocks) if sample_weight is None
                     else sample_weight.to_delayed().ravel())
    result = dask.delayed(model)
    for _ in range(epochs):
        order = rng.permutation(len(x_blocks)) if shuffle_blocks else np.arange(len(x_blocks))
        for k in order:
            result = dask.delayed(_partial_fit_block, pure=False)(
                result, x_blocks[k], y_blocks[k], classes, weight_blocks[k])
    model = result.compute()
    if not hasattr(model, "n_features_in_"):
        raise ValueError("every block's sample weights are 0: there was nothing to train on")
    return model


def _apply_block(X_block, estimator, method):
    return getattr(estimator, method)(X_block)


def predict_blocks(estimator, X, method="predict"):
    """Lazy predictions over a dask array, computed block by block on the workers.

    Parameters
    ----------
    estimator : fitted LSTMRegressor or LSTMClassifier
        Sent to the workers once.
    X : dask array of shape (n, T, F) or (n, T)
        Sequences (or token ids), chunked along axis 0.
    method : {"predict", "predict_proba"}
        The estimator's method to apply to each block.

    Returns
    -------
    dask array
        Rows chunked like ``X``; call ``.compute()`` (or store it) to run.

    See Also
    --------
    partial_fit_blocks : Training over dask arrays.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from nlstm import LSTMRegressor
    >>> from nlstm.scale_out import predict_blocks
    >>> X = np.random.default_rng(0).standard_normal((60, 5, 2))
    >>> reg = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, X.sum(axis=(1, 2)))
    >>> lazy = predict_blocks(reg, da.from_array(X, chunks=(20, 5, 2)))
    >>> bool(np.allclose(lazy.compute(), reg.predict(X)))
    True
    """
    if method not in PREDICT_METHODS:
        raise ValueError(f"method must be one of {PREDICT_METHODS}, got {method!r}")
    if not hasattr(estimator, method):
        raise TypeError(f"{type(estimator).__name__} has no {method}")
    check_is_fitted(estimator)
    X = _check_dask_array(X, "X")
    # The output's trailing shape and dtype, from the first row (also checks X's form).
    probe = np.asarray(getattr(estimator, method)(X[:1].compute()))
    out_ndim = probe.ndim
    extra = {}
    if out_ndim < X.ndim:
        extra["drop_axis"] = list(range(out_ndim, X.ndim))
    elif out_ndim > X.ndim:
        extra["new_axis"] = list(range(X.ndim, out_ndim))
    chunks = (X.chunks[0],) + tuple((size,) for size in probe.shape[1:])
    return X.map_blocks(_apply_block, estimator, method, dtype=probe.dtype,
                        chunks=chunks, meta=probe[:0], **extra)
