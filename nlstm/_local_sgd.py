"""The tasks of `nlstm.scale_out.fit_distributed`, and the averaging between them.

Each task is a pure function of its arguments (a model, a block of data, seeds),
so Dask may run it again on another worker after a worker is lost and get the
same bits (the kernels' results do not depend on the thread count; every
worker of one cluster has the same Numba thread pool size).

A fit is periodic model averaging ("local SGD"; Zinkevich et al. 2010, Lin et
al. 2020): every block of rows is a replica that trains on its own rows, and
every ``sync_every`` mini-batches the replicas' parameters and optimizer
states are averaged, weighted by the samples each trained on, and the next
round starts every replica from that one model. Each replica averages the
previous round's replicas itself at the start of its task (all compute the
same bits), so rounds follow each other on the cluster without waiting for
the client, which only reads each epoch's averaged model.
"""
import copy
import math
import time
from typing import NamedTuple

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.utils import gen_batches

from ._threads import kernel_threads


class Targets(NamedTuple):
    """What the whole data set fixes before training: the regressor's target
    scaling, the classifier's labels, the vocabulary, and the factor that makes
    the sample weights average 1."""
    y_mean: object
    y_scale: object
    classes: object
    n_tokens: object
    weight_factor: object


class Block(NamedTuple):
    """A block of rows as training reads it (on the worker that holds it)."""
    data: np.ndarray      # (n, T, F) or (n, T) token ids
    lengths: np.ndarray   # (n,)
    Y: np.ndarray         # encoded or standardised targets
    weights: object       # (n,) or (n, T) normalised weights, or None
    train: np.ndarray     # the rows to train on
    validation: np.ndarray  # the rows held out for early stopping (maybe empty)


class Round(NamedTuple):
    """Where a round starts: the model (parameters and optimizer state) and the
    summaries of the epoch's rounds before it."""
    model: object
    summaries: list  # per round: (loss_sum, loss_count, [each replica's seconds])


class RoundResult(NamedTuple):
    """One replica's round: its model after its batches, and what it trained."""
    model: object          # a copy of the round's model with the replica's parameters
    summaries: list        # the round's start's summaries (see `Round`)
    loss_sum: float        # summed as `_BaseLSTM._train_batch` sums
    loss_count: int        # what that sum is over
    samples: int           # rows trained on: the replica's weight in the average
    seconds: float         # the replica's training time (not its averaging)


def _n_jobs(model):
    """One Numba thread per worker thread unless the estimator asks for more."""
    return 1 if model.n_jobs is None else model.n_jobs


def initial_model(estimator, X_block, y_block, weight_block, targets):
    """A fresh fit's model, built from a first block as ``fit`` builds it, with the
    whole data set's `Targets`: fitted attributes, network, optimizer, rng."""
    model = clone(estimator)
    model._validate_params()
    data, lengths, form = model._validate_X(X_block, reset=True)
    if targets.n_tokens is not None:
        model.n_tokens_ = targets.n_tokens
    weights = model._check_weights(weight_block, lengths)
    Y = model._validate_targets(y_block, lengths, form, reset=True, classes=targets.classes,
                                weights=weights)
    if not is_classifier(model):
        model._y_mean, model._y_scale = targets.y_mean, targets.y_scale
    network, optimizer, rng = model._new_network(data, lengths, Y)
    optimizer.learning_rate = model.learning_rate_init
    model.network_, model._optimizer, model._rng = network, optimizer, rng
    return model


def prepare_block(model, X_block, y_block, weight_block, weight_factor, holdout_seed):
    """Validate and encode one block with the fitted attributes of ``model``, and
    choose its held-out rows (early stopping's share of the block, at random)."""
    data, lengths, form = model._validate_X(X_block, reset=False)
    weights = model._check_weights(weight_block, lengths)
    if weights is not None:
        weights = weights * weight_factor
    Y = model._validate_targets(y_block, lengths, form, reset=False, weights=weights)
    n = len(lengths)
    rows = np.arange(n)
    validation = rows[:0]
    if model.early_stopping:
        n_validation = min(n - 1, math.ceil(model.validation_fraction * n))
        shuffled = np.random.default_rng(holdout_seed).permutation(n)
        validation, rows = np.sort(shuffled[:n_validation]), np.sort(shuffled[n_validation:])
    return Block(data, lengths, Y, weights, rows, validation)


def n_batches(model, block):
    return math.ceil(len(block.train) / model.batch_size)


def start_fit(model):
    """The first `Round`: ``model`` as the client made it (a task, so that Dask
    can run it again if the worker holding it is lost)."""
    return Round(model, [])


def train_round(block, epoch_seed, first_batch, stop_batch, new_epoch, *previous):
    """Mini-batches ``first_batch`` to ``stop_batch`` of one epoch of the block's
    training rows (shuffled by ``epoch_seed``), from the round's start: the
    fit's first `Round`, or the previous round's replicas (`RoundResult`
    objects), which this replica averages itself (`average_round`):
    every replica computes the same bits, so no separate averaging task and no
    trip through the client sit between two rounds. ``new_epoch``: the first
    round of an epoch (its summaries start afresh). Nothing passed in is changed."""
    if isinstance(previous[0], Round):  # the fit's start, which Dask holds: train a copy
        start = previous[0]
        model = _own_copy(start.model)
    else:  # averaged here: a model of this task's own
        start = average_round(*previous)
        model = start.model
    if new_epoch:
        start = Round(model, [])
    began = time.perf_counter()
    network, optimizer = model.network_, model._optimizer
    rng = np.random.default_rng(epoch_seed)
    order = rng.permutation(block.train) if model.shuffle else block.train
    network.rng = np.random.RandomState(rng.integers(2**31 - 1, size=4))  # this round's dropout
    batches = list(gen_batches(len(order), model.batch_size))[first_batch:stop_batch]
    total, count, samples = 0.0, 0, 0
    with kernel_threads(_n_jobs(model)), network.resident(), \
            optimizer.resident(network.arrays):
        masks = network.weight_masks() if model.alpha > 0 else None
        for batch in batches:
            idx = np.sort(order[batch])
            total += model._train_batch(network, optimizer, block.data, block.lengths, block.Y,
                                        block.weights, idx, masks)
            count += model._loss_count(block.lengths, idx)
            samples += len(idx)
    network.lstm.release_workspace()  # not kept with the result
    return RoundResult(model, start.summaries, total, count, samples,
                       time.perf_counter() - began)


def average_round(*results):
    """The `Round` after ``results``, the replicas of one round: their models
    averaged (`average`), with the round's summary added."""
    summary = (sum(r.loss_sum for r in results), sum(r.loss_count for r in results),
               [r.seconds for r in results])
    return Round(average(results), results[0].summaries + [summary])


def average(results):
    """A copy of the first replica's model holding the replicas' parameters and
    optimizer states averaged, each weighted by the samples it trained on (in
    float64, in the replicas' order); Adam's step count is the largest replica's."""
    models = [r.model for r in results]
    merged = _own_copy(models[0])
    optimizer = merged._optimizer
    weights = np.array([r.samples for r in results], np.float64)
    weights /= weights.sum()
    for p, parts in zip(merged.network_.params, zip(*(m.network_.params for m in models))):
        _mean_into(p, parts, weights)
    for name in optimizer._state_names:
        for p, parts in zip(getattr(optimizer, name),
                            zip(*(getattr(m._optimizer, name) for m in models))):
            _mean_into(p, parts, weights)
    if hasattr(optimizer, "t"):
        optimizer.t = max(m._optimizer.t for m in models)
    return merged


_MEAN_CHUNK = 4096  # elements: float64 temporaries of 32 KiB


def _own_copy(model):
    """A copy of the estimator ``model`` with a network and optimizer of its own
    (deep copies) and everything else shared: what a task may train or
    overwrite without touching the model Dask passed it."""
    copied = copy.copy(model)
    copied.network_ = copy.deepcopy(model.network_)
    copied._optimizer = copy.deepcopy(model._optimizer)
    return copied


def _mean_into(out, arrays, weights):
    """``out[...] = sum(w * a)`` over ``weights`` and ``arrays``, summed in float64,
    a slice at a time: small temporaries stay in cache, and well below the
    size at which glibc maps fresh pages for each one (a Dask worker's
    ``MALLOC_TRIM_THRESHOLD_`` made whole-array temporaries cost 5 ms a round)."""
    out, flats = out.reshape(-1), [a.reshape(-1) for a in arrays]
    for start in range(0, out.size, _MEAN_CHUNK):
        part = slice(start, start + _MEAN_CHUNK)
        total = weights[0] * flats[0][part].astype(np.float64)
        for w, flat in zip(weights[1:], flats[1:]):
            total += w * flat[part]
        out[part] = total


def validation_sums(state, block):
    """Sums from which the validation score of all blocks follows
    (`combine_validation`), for the model of the `Round` ``state``: per
    output, for a regressor, the weight, the weighted target and its square
    and the weighted squared error (on the standardised scale, where R^2 is
    the same); for a classifier the weight and the weight of the rows
    predicted right."""
    model, rows = state.model, block.validation
    if len(rows) == 0:
        return None
    data, lengths, Y = block.data[rows], block.lengths[rows], block.Y[rows]
    with kernel_threads(_n_jobs(model)), model.network_.resident(write_back=False):
        z = model._forward_in_batches(model.network_, data, lengths)
    weights = None if block.weights is None else block.weights[rows]
    if model.return_sequences:  # every step of a dask array's rows is valid
        T = Y.shape[1]
        w = np.ones(Y.shape[:2]) if weights is None else (
            np.repeat(weights[:, None], T, axis=1) if weights.ndim == 1 else weights)
        w, z, Y = w.reshape(-1), z.reshape(-1, z.shape[-1]), Y.reshape(-1, Y.shape[-1])
    else:
        w = np.ones(len(rows)) if weights is None else weights
    if is_classifier(model):
        predicted = model._probabilities(z).argmax(axis=-1)
        true = Y[:, 0] if Y.shape[-1] == 1 else Y.argmax(axis=-1)
        return np.array([w.sum(), (w * (predicted == true)).sum()])
    y = Y.astype(np.float64)
    error = y - z.astype(np.float64)
    return np.stack([np.full(y.shape[1], w.sum()), w @ y, w @ (y * y), w @ (error * error)])


def combine_validation(model, sums):
    """The validation score (accuracy, or R^2 averaged over outputs) of all blocks."""
    sums = [s for s in sums if s is not None]
    total = sum(sums)
    if is_classifier(model):
        return float(total[1] / total[0])
    weight, first, second, squared_error = total
    spread = second - first ** 2 / weight
    r2 = np.where(spread > 0, 1 - squared_error / np.where(spread > 0, spread, 1), 0.0)
    return float(r2.mean())
