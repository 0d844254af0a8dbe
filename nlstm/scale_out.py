"""Scale-out on Dask: data-parallel training on a cluster (`fit_distributed`),
training over the blocks of a dask array in a chain (`partial_fit_blocks`), and
prediction block by block (`predict_blocks`).

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
import time
import uuid
import warnings
from typing import NamedTuple

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

__all__ = ["fit_distributed", "partial_fit_blocks", "predict_blocks"]

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


def _check_blocks(X, y, sample_weight):
    """X, y and the weights (or None) as dask arrays whose blocks hold the same rows."""
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
    return X, y, sample_weight


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
    X, y, sample_weight = _check_blocks(X, y, sample_weight)

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


class _Epoch(NamedTuple):
    """An epoch's futures in `fit_distributed`."""
    rounds: list   # per round, its replicas' `_local_sgd.RoundResult`
    end: object    # the `_local_sgd.Round` after the last round (its averaged model)
    scores: list   # per block, its validation sums (early stopping)

    def futures(self):
        return [f for replicas in self.rounds if replicas for f in replicas] + \
            [self.end] + self.scores


def _get_client(client):
    try:
        from distributed import Client, get_client
    except ImportError as error:  # pragma: no cover - exercised only without distributed
        raise ImportError("fit_distributed needs dask.distributed: "
                          "pip install 'nlstm[dask]'") from error
    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a dask.distributed Client, got "
                            f"{type(client).__name__}")
        return client
    try:
        return get_client()
    except ValueError:
        raise ValueError("fit_distributed needs a dask.distributed Client: pass client=, or "
                         "create one first (Client(LocalCluster()) on one machine)") from None


def _targets(client, estimator, X, y, sample_weight, classes):
    """The whole data set's `_local_sgd.Targets`, computed on the cluster (only
    these few numbers come back)."""
    _, da = _import_dask()

    def compute(*lazy):
        return client.gather(client.compute(list(lazy)))

    from ._local_sgd import Targets
    lazy = {}
    if sample_weight is not None:
        lazy["weight_sum"], lazy["weight_max"] = sample_weight.sum(), sample_weight.max()
    if estimator.embedding_dim is not None:
        lazy["n_tokens"] = X.max()
    if is_classifier(estimator) and classes is None:
        lazy["classes"] = da.unique(y)
    values = dict(zip(lazy, compute(*lazy.values()))) if lazy else {}
    weight_factor = 1.0
    if sample_weight is not None:
        if not values["weight_max"] > 0:
            raise ValueError("Sample weights must contain at least one non-zero number")
        weight_factor = sample_weight.size / float(values["weight_sum"])
    n_tokens = int(values["n_tokens"]) + 1 if "n_tokens" in values else None
    if is_classifier(estimator):
        found = values.get("classes", classes)
        return Targets(None, None, np.asarray(found), n_tokens, weight_factor)
    flat = y.reshape(-1, 1) if y.ndim == (2 if estimator.return_sequences else 1) \
        else y.reshape(-1, y.shape[-1])
    flat = flat.astype(np.float64)
    if sample_weight is None:
        w = None
    else:  # one weight per row of flat: per sequence, repeated over the steps
        w = sample_weight.astype(np.float64)
        if estimator.return_sequences and w.ndim == 1:
            w = da.repeat(w, y.shape[1])
        w = w.reshape(-1)
    [mean] = compute(flat.mean(axis=0) if w is None
                     else (flat * w[:, None]).sum(axis=0) / w.sum())
    squared = (flat - mean) ** 2
    [var] = compute(squared.mean(axis=0) if w is None
                    else (squared * w[:, None]).sum(axis=0) / w.sum())
    scale = np.sqrt(var)
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        if bool(compute(da.isnan(y).any())[0]):
            raise ValueError("Input y contains NaN.")
        raise ValueError("y holds infinity, or values too large to standardise in float64 "
                         "(scale y)")
    return Targets(mean, np.where(scale > 0, scale, 1.0), None, n_tokens, weight_factor)


def fit_distributed(estimator, X, y, *, sample_weight=None, classes=None, sync_every=16,
                    client=None, timings=None):
    """Data-parallel training on a ``dask.distributed`` cluster by periodic model
    averaging ("local SGD").

    Every block of rows of ``X`` is a replica, trained by a task on the worker
    that holds the block, with the estimator's settings (solver, batch size,
    learning rate, epochs as ``max_iter``, early stopping, ...). Every
    ``sync_every`` mini-batches the replicas' parameters and optimizer states
    (moments, velocities) are averaged, weighted by the samples each replica
    trained on, and the next round starts every replica from that one model.
    Each replica averages the previous round's replicas itself, so the rounds
    run on the cluster without waiting for the client, which reads each
    epoch's averaged model (to record the loss, and for early stopping) while
    the next epoch runs. Only parameters travel; the data stay where the
    blocks are. Averaging the optimizer state too makes every round a pure
    function of the previous round's replicas, so a task lost with its worker
    is run again elsewhere with the same result.

    Parameters
    ----------
    estimator : LSTMRegressor or LSTMClassifier
        Its parameters set the training; it is not changed (a fitted clone is
        returned, a fresh fit as ``fit`` makes one).
    X : dask array of shape (n, T, F), or (n, T) token ids or a one-feature table
        Chunked along axis 0: each chunk is a replica.
    y : dask array of shape (n,), (n, k), or (n, T[, k]) with ``return_sequences``
        Targets, chunked (or rechunked) as ``X``.
    sample_weight : dask array of shape (n,) or (n, T), optional
        Weights per sequence (or per timestep with ``return_sequences``),
        rescaled to average 1 over the whole data set.
    classes : array-like, optional
        The class labels (classifiers); found with one pass over ``y`` if omitted.
    sync_every : int, default=16
        Mini-batches each replica runs between two averagings.
    client : distributed.Client, optional
        Default: the current client.
    timings : dict, optional
        Filled with lists: ``"epoch_seconds"`` and ``"round_seconds"`` (the
        wall time from the end of the epoch's or round's predecessor to its
        own end, as the client sees it: the client records an epoch while the
        next one runs), and ``"round_task_seconds"`` (per averaging round, each
        replica's training time; a round's wall time less its critical path is
        the cost of the synchronisation).

    Returns
    -------
    estimator
        A fitted clone: ``predict``, ``save``, ``stream`` and ``to_onnx`` work
        as after ``fit``; ``loss_curve_`` holds each epoch's loss averaged over
        the replicas, and with ``early_stopping`` ``validation_scores_`` the
        score on ``validation_fraction`` of every block, held out.

    Raises
    ------
    ValueError
        For bad arguments, and what a block's training raised (the estimator
        is unchanged).
    TypeError
        For an estimator that is not nlstm's, X or y that are not dask arrays,
        a ``client`` that is not a Client, ``timings`` that is not a dict.

    See Also
    --------
    partial_fit_blocks : One model carried from block to block (no parallelism).

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from nlstm import LSTMRegressor
    >>> from nlstm.scale_out import fit_distributed
    >>> X = np.random.default_rng(0).standard_normal((80, 5, 2))
    >>> with LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster, \\
    ...         Client(cluster) as client:
    ...     reg = fit_distributed(LSTMRegressor(hidden_size=8, max_iter=3, random_state=0),
    ...                           da.from_array(X, chunks=(40, 5, 2)),
    ...                           da.from_array(X.sum(axis=(1, 2)), chunks=40), sync_every=2)
    >>> reg.n_iter_, reg.predict(X[:2]).shape
    (3, (2,))
    """
    from . import _local_sgd
    client = _get_client(client)
    if not hasattr(estimator, "_train_batch"):
        raise TypeError(f"estimator must be an LSTMRegressor or LSTMClassifier, got "
                        f"{type(estimator).__name__}")
    if isinstance(sync_every, bool) or not isinstance(sync_every, (int, np.integer)) \
            or sync_every < 1:
        raise ValueError(f"sync_every must be a positive integer, got {sync_every!r}")
    estimator._validate_params()
    X, y, sample_weight = _check_blocks(X, y, sample_weight)
    if estimator.early_stopping and min(X.chunks[0]) < 2:
        raise ValueError("early_stopping holds out part of every block: each block needs at "
                         "least 2 rows")
    if timings is not None and not isinstance(timings, dict):
        raise TypeError(f"timings must be a dict (to fill) or None, got {type(timings).__name__}")
    timings = {} if timings is None else timings
    timings.update(epoch_seconds=[], round_seconds=[], round_task_seconds=[])
    targets = _targets(client, estimator, X, y, sample_weight, classes)
    seed = check_random_state(estimator.random_state).randint(2**31 - 1)
    token = uuid.uuid4().hex[:12]  # this call's task names

    x_blocks, y_blocks = X.to_delayed().ravel(), y.to_delayed().ravel()
    w_blocks = ([None] * len(x_blocks) if sample_weight is None
                else sample_weight.to_delayed().ravel())
    def on_cluster(*parts):  # the blocks as futures, computed where the scheduler puts them
        return [None if part is None else client.compute(part) for part in parts]

    first = on_cluster(x_blocks[0], y_blocks[0], w_blocks[0])
    model = client.submit(_local_sgd.initial_model, estimator, *first, targets,
                          key=f"nlstm-init-{token}").result()
    blocks = [client.submit(_local_sgd.prepare_block, model, *on_cluster(xb, yb, wb),
                            targets.weight_factor, [seed, b], key=f"nlstm-block-{token}-{b}")
              for b, (xb, yb, wb) in enumerate(zip(x_blocks, y_blocks, w_blocks))]
    n_batches = client.gather([client.submit(_local_sgd.n_batches, model, block, key=f"nlstm-"
                                             f"batches-{token}-{b}")
                               for b, block in enumerate(blocks)])

    def submit_epoch(epoch, previous):
        """All of an epoch's tasks, chained to ``previous`` (the last round's
        replicas, or the fit's first `Round`): each replica of a round starts by
        averaging the previous round's replicas itself, so no round waits for the
        client. Returns the epoch's last replicas and its `_Epoch`."""
        rounds = []
        for r, first_batch in enumerate(range(0, max(n_batches), sync_every)):
            previous = [client.submit(_local_sgd.train_round, block, [seed, epoch, b],
                                      first_batch, first_batch + sync_every, r == 0, *previous,
                                      key=f"nlstm-round-{token}-{epoch}-{r}-{b}")
                        for b, block in enumerate(blocks) if first_batch < n_batches[b]]
            rounds.append(previous)
        end = client.submit(_local_sgd.average_round, *previous,
                            key=f"nlstm-average-{token}-{epoch}")
        scores = [client.submit(_local_sgd.validation_sums, end, block,
                                key=f"nlstm-score-{token}-{epoch}-{b}")
                  for b, block in enumerate(blocks)] if estimator.early_stopping else []
        return previous, _Epoch(rounds, end, scores)

    # the client records each epoch (the loss curve, early stopping) while the
    # next one already runs on the cluster; only an epoch's averaged model and
    # validation sums come back
    record, best = model, None
    began = round_began = time.perf_counter()
    previous, current = submit_epoch(0, [client.submit(_local_sgd.start_fit, model,
                                                       key=f"nlstm-start-{token}")])
    try:
        for epoch in range(estimator.max_iter):
            ahead = None
            if epoch + 1 < estimator.max_iter:
                previous, ahead = submit_epoch(epoch + 1, previous)
            for r, replicas in enumerate(current.rounds):  # in order: each needs the one before
                for replica in replicas:
                    if replica.exception() is not None:  # waits; no data comes back
                        replica.result()  # raises the task's error
                current.rounds[r] = None  # the cluster frees a round once the next used it
                timings["round_seconds"].append(time.perf_counter() - round_began)
                round_began = time.perf_counter()
            model, summaries = current.end.result()
            total = sum(loss_sum for loss_sum, _, _ in summaries)
            count = sum(loss_count for _, loss_count, _ in summaries)
            timings["round_task_seconds"] += [seconds for _, _, seconds in summaries]
            score = (_local_sgd.combine_validation(model, client.gather(current.scores))
                     if current.scores else None)
            seconds = round_began - began  # from the previous epoch's last round to this one's
            began = round_began
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stop, is_best = record._record_epoch(total / count, score, seconds)
            if is_best:
                best = model
            timings["epoch_seconds"].append(seconds)
            if stop:
                break
            current = ahead
        else:
            record._warn_not_converged(estimator.max_iter)
    finally:  # a stop or an error: what was submitted ahead is not needed
        client.cancel([f for e in (current, ahead) if e is not None for f in e.futures()])
    trained = best if best is not None else model
    record.network_, record._optimizer = trained.network_, trained._optimizer
    model = record
    if not all(np.isfinite(p).all() for p in model.network_.params):
        raise FloatingPointError("the model's parameters became non-finite; try a smaller "
                                 "learning_rate_init")
    return model
