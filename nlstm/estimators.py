"""``LSTMRegressor`` and ``LSTMClassifier``: scikit-learn estimators over `SequenceNetwork`.

Shaped like scikit-learn's MLP: ``fit`` and ``partial_fit`` both call
``_fit(incremental=...)``; early stopping restores the best weights; fitted
attributes end in ``_``. A failed ``fit``/``partial_fit`` restores the
estimator exactly as it was before the call.
"""
import copy
import functools
import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state, column_or_1d, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

# sklearn.metrics and sklearn.model_selection are imported where they are used
# (scores, early stopping's split), as scikit-learn's own mixins do: a plain
# fit and predict use neither, and importing them cost 0.09-0.13 s of every
# process's start (measured after sklearn.base).
from . import _losses, persistence
from ._data import holds_sequences, pad_targets, read_X, unpad, valid_steps
from ._device import check_device
from ._network import SequenceNetwork
from ._threads import kernel_threads
from ._validation import DTYPES
from .optimizers import AdamOptimizer, SGDOptimizer, clip_grad_norm

PREDICT_BATCH = 1024  # sequences per forward pass in predict


def _step_weights(weights, lengths):
    """One weight per valid timestep, in `valid_steps` order, from one per
    sequence ``(n,)`` or per timestep ``(n, T)`` (None stays None)."""
    if weights is None:
        return None
    return np.repeat(weights, lengths) if weights.ndim == 1 else valid_steps(weights, lengths)


def _mean_and_scale(values, weights):
    """Weighted mean and standard deviation of the targets (rows of ``values``
    (n, k)), per output, for standardising them.

    The squared deviations overflow float64 beyond about 1e154; only there is
    the deviation computed from deviations divided by their largest, so that
    ordinary targets keep the bits of the plain formula.

    Raises
    ------
    ValueError
        Where even the mean is beyond float64 (values near 1.8e308).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.average(values, axis=0, weights=weights)
        deviations = values - mean
        scale = np.sqrt(np.average(deviations ** 2, axis=0, weights=weights))
        if not np.isfinite(scale).all():
            peak = np.abs(deviations).max(axis=0)
            peak = np.where(peak > 0, peak, 1.0)
            scale = peak * np.sqrt(np.average((deviations / peak) ** 2, axis=0, weights=weights))
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise ValueError("y holds values too large to standardise in float64 (their mean or "
                         "spread overflows; largest magnitude "
                         f"{np.abs(values).max():.3g}); scale y")
    return mean, scale


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _transaction(method):
    """Run a training call on a working copy of the estimator, and put the
    copy's attributes in place only when it returns.

    A call that fails (bad input, a diverging fit, an interrupt) leaves the
    estimator exactly as it was, and threads predicting meanwhile never see a
    half-built state: the estimator's attributes change in one step, at the
    end. The copy shares the attribute values; what training changes in place
    is copied first (the lists ``loss_curve_`` and ``validation_scores_``;
    `_fit` trains copies of the network and the optimizer), except the random
    generator ``_rng``, whose state is put back on failure (predictions never
    read it)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        work = object.__new__(type(self))
        work.__dict__.update(self.__dict__)
        for name in ("loss_curve_", "validation_scores_"):
            if name in work.__dict__:
                work.__dict__[name] = list(work.__dict__[name])
        rng = self.__dict__.get("_rng")
        rng_state = None if rng is None else rng.get_state()
        try:
            method(work, *args, **kwargs)
        except BaseException:
            if rng is not None:
                rng.set_state(rng_state)
            raise
        self.__dict__ = work.__dict__
        return self

    return wrapper


class _BaseLSTM(BaseEstimator):
    """Shared fitting, validation and prediction machinery."""

    _parameter_constraints = {
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "cell": [StrOptions({"lstm", "gru", "rnn"})],
        "forget_bias": [StrOptions({"chrono"}), Interval(Real, None, None, closed="neither")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), None],
        "return_sequences": ["boolean"],
        "solver": [StrOptions({"adam", "sgd"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "tbptt_steps": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_jobs": [Interval(Integral, None, -1, closed="right"),
                   Interval(Integral, 1, None, closed="left"), None],
        "dtype": [StrOptions(set(DTYPES))],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    def __init__(self, hidden_size=64, num_layers=1, *, bidirectional=False, cell="lstm",
                 forget_bias="chrono", dropout=0.0, embedding_dim=None, return_sequences=False,
                 solver="adam", learning_rate_init=0.003, momentum=0.9, batch_size=32,
                 tbptt_steps=None, max_iter=200, shuffle=True, clip_grad_norm=1.0, alpha=0.0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 warm_start=False, random_state=None, verbose=False, n_jobs=None,
                 dtype="float32", device="cpu"):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.cell = cell
        self.forget_bias = forget_bias
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.return_sequences = return_sequences
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.batch_size = batch_size
        self.tbptt_steps = tbptt_steps
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.clip_grad_norm = clip_grad_norm
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.dtype = dtype
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------
    # input validation
    # ------------------------------------------------------------------
    def _validate_X(self, X, reset):
        """Returns ``(data, lengths, form)``: padded (n, T, F) floats or (n, T)
        token ids, valid steps per sequence, and the input form (`_data.read_X`)."""
        data, lengths, form = read_X(self, X, reset=reset, dtype=DTYPES[self.dtype],
                                     tokens=self.embedding_dim is not None,
                                     fitted_form=None if reset else self._input_form_)
        if reset:
            self._input_form_ = form
        return data, lengths, form

    @staticmethod
    def _sequence_targets(y, lengths):
        """Per-timestep targets padded to (n, T[, k]): from one array per
        sequence (a list, an object array or a Series; ragged or not), or from
        an array of that shape (values past each sequence's length ignored)."""
        if holds_sequences(y):
            return pad_targets(y, lengths)
        y = np.asarray(y)
        if y.ndim < 2 or y.shape[0] != len(lengths) or y.shape[1] != lengths.max():
            raise ValueError(f"with return_sequences=True, y must have one target per timestep: "
                             f"shape ({len(lengths)}, {lengths.max()}[, n_outputs]) or one "
                             f"sequence of targets per sequence of X, got shape {y.shape}")
        return y

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def _build_network(self, n_inputs, n_outputs, lengths, rng, device=None):
        """The network for these hyperparameters; ``device`` overrides ``self.device``."""
        return SequenceNetwork(
            n_inputs, n_outputs, hidden_size=self.hidden_size, num_layers=self.num_layers,
            bidirectional=self.bidirectional, cell=self.cell, forget_bias=self.forget_bias,
            chrono_max=float(min(lengths.max(), self.tbptt_steps or lengths.max())),
            dropout=self.dropout,
            embedding_dim=self.embedding_dim, n_tokens=getattr(self, "n_tokens_", 0),
            return_sequences=self.return_sequences, dtype=self.dtype,
            device=self.device if device is None else device, rng=rng)

    def _check_network_unchanged(self):
        """A continued fit (``warm_start``, `partial_fit`) trains the fitted
        network: parameters that shape it must still be those it was built with."""
        network = self.network_
        lstm = network.lstm
        built_with = {
            "hidden_size": lstm.hidden_size, "num_layers": lstm.num_layers,
            "bidirectional": lstm.bidirectional, "cell": lstm.cell,
            "embedding_dim": None if network.embedding is None else network.embedding.shape[1],
            "return_sequences": network.return_sequences, "dtype": lstm.dtype,
        }
        for name, value in built_with.items():
            if getattr(self, name) != value:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is set, but the fitted network was built "
                    f"with {name}={value!r}; warm_start and partial_fit continue that network. "
                    f"Set warm_start=False (or fit a clone) to build a new one")

    def _optimizer_solver(self):
        return "adam" if isinstance(self._optimizer, AdamOptimizer) else "sgd"

    def _make_optimizer(self, params):
        if self.solver == "adam":
            return AdamOptimizer(params, self.learning_rate_init)
        return SGDOptimizer(params, self.learning_rate_init, self.momentum)

    @_transaction
    def fit(self, X, y, sample_weight=None):
        """Fit the model to sequences X and targets y.

        Parameters
        ----------
        X : array-like (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences, or token ids when ``embedding_dim`` is set.
        y : array-like
            One target per sequence, or per timestep with ``return_sequences``.
        sample_weight : array-like of shape (n,), optional
            Weight of each sequence in the loss (with ``return_sequences``, of
            each of its timesteps; there also one weight per timestep, an
            ``(n, T)`` array or a list of ``(T_i,)`` arrays); non-negative, not
            all zero. They are rescaled to average 1 over what the loss
            averages (sequences, or valid timesteps), so the learning rate
            means the same with and without them.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def _check_weights(self, sample_weight, lengths):
        """Validated sample weights (float64, non-negative, finite), or None:
        ``(n,)``, one a sequence, or with ``return_sequences`` also one a
        timestep, ``(n, T)`` or a list of ``(T_i,)`` arrays (zero past each
        length)."""
        if sample_weight is None:
            return None
        n = len(lengths)
        if self.return_sequences and holds_sequences(sample_weight):  # one array a sequence
            sample_weight = pad_targets(sample_weight, lengths, name="sample_weight")
        if self.return_sequences and np.ndim(sample_weight) == 2:  # one weight a timestep
            weights = check_array(sample_weight, dtype=np.float64, input_name="sample_weight")
            if weights.shape != (n, lengths.max()):
                raise ValueError(f"sample_weight per timestep must have shape "
                                 f"({n}, {lengths.max()}), got {weights.shape}")
            if weights.min() < 0:
                raise ValueError("Negative values in data passed to sample_weight")
            return np.where(np.arange(weights.shape[1]) < lengths[:, None], weights, 0.0)
        return _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64,
                                    ensure_non_negative=True)

    def _normalised_weights(self, weights, lengths):
        """``weights`` rescaled to average 1 over what the loss averages: the
        sequences, or with ``return_sequences`` their valid timesteps (so
        weights given per sequence and the same given per step train alike),
        so the learning rate means the same with and without them. Divided by
        their largest first: weights near 1e308 or 5e-324 would overflow the
        sum or its reciprocal, and results must not depend on the weights'
        overall scale."""
        if weights is None:
            return None
        valid = _step_weights(weights, lengths) if self.return_sequences else weights
        peak = valid.max()
        if not peak > 0:
            raise ValueError("Sample weights must contain at least one non-zero number")
        return weights / peak * (valid.size / (valid / peak).sum())

    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        self._validate_params()
        check_device(self.device)
        if self.tbptt_steps is not None and not self.return_sequences:
            raise ValueError("tbptt_steps needs return_sequences=True: with one target per "
                             "sequence only the last chunk would reach the loss")
        if self.tbptt_steps is not None and self.bidirectional:
            raise ValueError("tbptt_steps cannot train a bidirectional model: its reverse "
                             "direction reads each sequence from its end, not chunk by chunk")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, "
                             "but the target y is None")
        continuing = hasattr(self, "network_") and (incremental or self.warm_start)
        if continuing:
            self._check_network_unchanged()
        data, lengths, form = self._validate_X(X, reset=not continuing)
        weights = self._normalised_weights(self._check_weights(sample_weight, lengths), lengths)
        Y = self._validate_targets(y, lengths, form, reset=not continuing, classes=classes,
                                   weights=weights)
        if Y.shape[0] != data.shape[0]:
            raise ValueError("X and y have different numbers of samples: "
                             f"{data.shape[0]} and {Y.shape[0]}")
        if continuing:
            # training runs on copies of the network and the optimizer; the
            # copy shares the random generator (its dropout masks), as a new
            # network does, and `_transaction` puts the generator's state
            # back if the call fails (a deep copy of it cost 0.3 ms: most of a
            # small partial_fit)
            rng = self._rng
            network = copy.deepcopy(self.network_, {id(rng): rng})
            # settings of training, not of the network, take their current values
            network.lstm.device = self.device  # set_params(device=...) between calls
            network.set_dropout(self.dropout)
            if self._optimizer_solver() == self.solver:
                optimizer = copy.deepcopy(self._optimizer)
                if self.solver == "sgd":
                    optimizer.momentum = self.momentum
            else:  # another solver's state cannot carry over
                optimizer = self._make_optimizer(network.params)
        else:
            network, optimizer, rng = self._new_network(data, lengths, Y)
        optimizer.learning_rate = self.learning_rate_init
        try:
            # on a GPU, parameters and optimizer state stay there for the whole
            # training and come back to the host at its end (on the CPU: no-ops)
            with kernel_threads(self.n_jobs), network.resident(), \
                    optimizer.resident(network.arrays):
                self._train(network, optimizer, data, lengths, Y, weights, rng,
                            n_epochs=1 if incremental else self.max_iter,
                            early_stopping=self.early_stopping and not incremental)
        finally:
            network.lstm.release_workspace()
        # the loss and gradient are checked before each update; the last
        # update itself can overflow (a huge learning rate)
        if not all(np.isfinite(p).all() for p in network.params):
            raise FloatingPointError(
                f"the model's parameters became non-finite in the last update (epoch "
                f"{self.n_iter_}); the model was left as it was before this call. Try a "
                f"smaller learning_rate_init.")
        self.network_, self._optimizer, self._rng = network, optimizer, rng
        return self

    def _new_network(self, data, lengths, Y):
        """A fresh fit's start, from its validated data: ``(network, optimizer, rng)``
        seeded by ``random_state``, and empty training curves."""
        rng = check_random_state(self.random_state)
        network = self._build_network(data.shape[-1] if data.ndim == 3 else 1, Y.shape[-1],
                                      lengths, rng)
        optimizer = self._make_optimizer(network.params)
        self.loss_curve_, self.validation_scores_, self.n_iter_ = [], [], 0
        self.best_loss_, self.best_validation_score_ = np.inf, -np.inf
        self._no_improvement_count = 0
        return network, optimizer, rng

    def _split_validation(self, n, Y, rng):
        """Indices of the training and validation parts for early stopping:
        stratified by class for a classifier where both parts can hold every
        class (each class has two members, and each part at least as many
        samples as there are classes), else a plain random split, as for a
        regressor, rather than the splitter's error about ``test_size``."""
        stratify = None
        if isinstance(self, ClassifierMixin) and not self.return_sequences:
            labels = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0]
            counts = np.bincount(labels.astype(np.int64))
            n_classes = np.count_nonzero(counts)
            n_val = math.ceil(self.validation_fraction * n)  # as train_test_split sizes it
            if counts[counts > 0].min() >= 2 and min(n_val, n - n_val) >= n_classes:
                stratify = labels
        from sklearn.model_selection import train_test_split  # imported on use: see the top
        train, val = train_test_split(np.arange(n), test_size=self.validation_fraction,
                                      random_state=rng, stratify=stratify)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"early_stopping needs both a training and a validation sample; "
                             f"{n} samples with validation_fraction={self.validation_fraction} "
                             f"leave one of them empty")
        return train, val

    def _train(self, network, optimizer, data, lengths, Y, weights, rng, n_epochs,
               early_stopping):
        n = data.shape[0]
        train_idx, val_idx = (self._split_validation(n, Y, rng) if early_stopping
                              else (np.arange(n), None))
        if weights is not None and early_stopping:
            for part, idx in (("training", train_idx), ("validation", val_idx)):
                if not weights[idx].sum() > 0:
                    raise ValueError(
                        f"early_stopping's {part} split ({len(idx)} samples, "
                        f"validation_fraction={self.validation_fraction}) holds only samples of "
                        f"sample_weight 0; give more samples weight, or another random_state")
        masks = network.weight_masks() if self.alpha > 0 else None
        best_params = None
        for _ in range(n_epochs):
            start = time.perf_counter()
            order = rng.permutation(train_idx) if self.shuffle else train_idx
            total = 0.0
            for batch in gen_batches(len(order), self.batch_size):
                total += self._train_batch(network, optimizer, data, lengths, Y, weights,
                                           np.sort(order[batch]), masks)
            epoch_loss = total / self._loss_count(lengths, train_idx)
            score = None
            if early_stopping:
                score = self._validation_score(network, data[val_idx], lengths[val_idx],
                                               Y[val_idx],
                                               None if weights is None else weights[val_idx])
            stop, best = self._record_epoch(epoch_loss, score, time.perf_counter() - start)
            if best:
                best_params = [network.arrays.copy(p) for p in network.params]
            if stop:
                break
        else:
            self._warn_not_converged(n_epochs)
        if early_stopping and best_params is not None:
            for p, best in zip(network.params, best_params):
                network.arrays.assign(p, best)

    def _record_epoch(self, epoch_loss, score, seconds):
        """Book an epoch's loss (and validation score, None without early
        stopping). Returns ``(stop, best)``: whether ``n_iter_no_change`` epochs
        have passed without an improvement by ``tol``, and whether the score is
        the best yet (the weights to keep)."""
        self.n_iter_ += 1
        self.loss_curve_.append(epoch_loss)
        best = False
        if score is not None:
            self.validation_scores_.append(score)
            improved = score > self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                best = True
        else:
            improved = epoch_loss < self.best_loss_ - self.tol
        self.best_loss_ = min(self.best_loss_, epoch_loss)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        if self.verbose:
            val = f", validation score = {score:.4f}" if score is not None else ""
            print(f"Epoch {self.n_iter_}: loss = {epoch_loss:.6f}{val}, {seconds:.2f}s",
                  flush=True)
        stop = self._no_improvement_count >= self.n_iter_no_change
        if stop and self.verbose:
            print(f"Stopping: no improvement above tol={self.tol} for "
                  f"{self.n_iter_no_change} consecutive epochs.", flush=True)
        return stop, best

    def _warn_not_converged(self, n_epochs):
        if n_epochs > 1:
            warnings.warn(f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)

    def _train_batch(self, network, optimizer, data, lengths, Y, weights, idx, masks):
        """One mini-batch of the rows ``idx`` (sorted): one update, or one per chunk
        with truncated BPTT. Returns the loss summed over what an epoch's loss
        averages (see `_loss_count`)."""
        if self.tbptt_steps is not None:
            return self._train_chunks(network, optimizer, data, lengths, Y, weights, idx, masks)
        loss = self._train_step(network, optimizer, data[idx], lengths[idx], Y[idx],
                                None if weights is None else weights[idx], masks)
        return loss * len(idx)

    def _loss_count(self, lengths, idx):
        """What an epoch's loss is the mean over: the sequences ``idx``, or their
        valid steps with truncated BPTT."""
        return len(idx) if self.tbptt_steps is None else int(lengths[idx].sum())

    def _train_chunks(self, network, optimizer, data, lengths, Y, weights, idx, masks):
        """Truncated backpropagation through time over the batch ``idx``: chunks
        of `tbptt_steps` steps in order, one `_train_step` each, the state of
        each chunk's end starting the next (rows whose sequence has ended drop
        out). Returns the chunks' losses summed over their valid steps."""
        k, arrays = self.tbptt_steps, network.arrays
        state, total = None, 0.0
        rows = idx  # the batch's rows still running, in order
        for start in range(0, int(lengths[idx].max()), k):
            running = lengths[rows] > start
            if state is not None and not running.all():  # carry the state of those left
                state = tuple(None if part is None else part[:, running] for part in state)
            rows = rows[running]
            chunk_lengths = np.minimum(lengths[rows] - start, k)
            stop = start + int(chunk_lengths.max())
            chunk_weights = None
            if weights is not None:
                chunk_weights = weights[rows, start:stop] if weights.ndim == 2 else weights[rows]
            loss, state = self._train_step(network, optimizer, data[rows, start:stop],
                                           chunk_lengths, Y[rows, start:stop], chunk_weights,
                                           masks, initial_state=state)
            state = tuple(None if part is None else arrays.to_host(part) for part in state)
            total += loss * int(chunk_lengths.sum())
        return total

    def _train_step(self, network, optimizer, data, lengths, Y, weights, masks,
                    initial_state=None):
        """One mini-batch: forward, loss, backward, clip, update. Returns the loss,
        and with truncated BPTT also the final state (the next chunk's ``initial_state``).

        The loss and its gradient w.r.t. the head output are computed on the
        host (``(B, n_outputs)`` values); everything else runs on the
        network's device."""
        arrays = network.arrays
        chunked = self.tbptt_steps is not None
        z = network.forward(data, lengths, training=True, initial_state=initial_state,
                            with_state=chunked)
        if chunked:
            z, final_state = z
        z = arrays.to_host(z)
        params = network.params
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are caught below
            loss, d_z = self._loss_and_grad(z, Y, lengths, weights)
            if self.alpha > 0:
                loss += 0.5 * self.alpha * sum(arrays.masked_sum_squares(p, m)
                                               for p, m in zip(params, masks))
            grads = network.backward(d_z.astype(network.dtype, copy=False))
            if self.alpha > 0:
                for g, p, m in zip(grads, params, masks):
                    arrays.add_l2_grad(g, p, m, self.alpha)
            norm = clip_grad_norm(grads, self.clip_grad_norm, arrays)
        if not (np.isfinite(loss) and np.isfinite(norm)):
            raise FloatingPointError(
                f"the training loss became non-finite (loss={loss}, gradient norm={norm}) in "
                f"epoch {self.n_iter_ + 1}; the model was left as it was before this call. "
                f"Try a smaller learning_rate_init, a clip_grad_norm, or scaled inputs.")
        with np.errstate(over="ignore", invalid="ignore"):  # checked at the end of the fit
            optimizer.update_params(params, grads)
        return (loss, final_state) if chunked else loss

    def _loss_and_grad(self, z, Y, lengths, weights=None):
        """Loss over valid items (each weighing its sequence's weight) and its
        gradient w.r.t. the head output z."""
        if not self.return_sequences:
            return self._loss_function(z, Y, weights)
        valid = np.arange(z.shape[1])[None, :] < lengths[:, None]  # (B, T)
        loss, d_valid = self._loss_function(z[valid], Y[valid], _step_weights(weights, lengths))
        d_z = np.zeros_like(z)
        d_z[valid] = d_valid
        return loss, d_z

    # ------------------------------------------------------------------
    # persistence (the file format is `nlstm.persistence`'s)
    # ------------------------------------------------------------------
    # Fitted attributes a model file keeps, each with the check its stored
    # value must pass; ``_SAVED_REQUIRED`` are those every fitted model has.
    _SAVED_SCALARS = {
        "n_features_in_": lambda v: _is_int(v) and v >= 1,
        "n_tokens_": lambda v: _is_int(v) and v >= 1,
        "n_outputs_": lambda v: _is_int(v) and v >= 1,
        "_squeeze_output": lambda v: isinstance(v, bool),
        "_input_form_": lambda v: v in ("table", "sequences", "list"),
        "n_iter_": lambda v: _is_int(v) and v >= 0,
        "best_loss_": lambda v: _is_real(v) and not math.isnan(v),
        "best_validation_score_": lambda v: _is_real(v) and not math.isnan(v),
        "loss_curve_": lambda v: isinstance(v, list) and all(_is_real(x) and math.isfinite(x)
                                                             for x in v),
        "validation_scores_": lambda v: isinstance(v, list) and all(
            _is_real(x) and math.isfinite(x) for x in v),
    }
    _SAVED_ARRAYS = {
        "classes_": lambda a: a.ndim == 1 and len(a) >= 2,
        "feature_names_in_": lambda a: a.ndim == 1 and a.dtype.kind == "U",
        "_y_mean": lambda a: a.ndim == 1 and a.dtype.kind == "f",
        "_y_scale": lambda a: a.ndim == 1 and a.dtype.kind == "f" and (a > 0).all(),
    }
    _SAVED_REQUIRED = {"n_features_in_", "_input_form_", "n_iter_", "loss_curve_"}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        persistence.register(cls)

    def save(self, path):
        """Write the fitted model to ``path`` as a portable ``.npz`` file (atomic).

        See `nlstm.persistence` for the format. Load it with `nlstm.load`.

        Parameters
        ----------
        path : str or path-like
            The file to write (replaced if it exists).

        Returns
        -------
        None
        """
        return persistence.save(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by `save`; it must be of this class.

        Parameters
        ----------
        path : str or path-like
            A file written by `save` or `nlstm.save`.

        Returns
        -------
        estimator : instance of this class
        """
        estimator = persistence.load(path)
        if not isinstance(estimator, cls):
            raise ValueError(f"{path} holds a {type(estimator).__name__}, not a {cls.__name__}")
        return estimator

    def stream(self, n_streams=1, initial_state=None):
        """A `Stream` that carries the recurrent state across calls.

        Its ``predict`` takes the next steps of ``n_streams`` sequences and
        returns, for every new step, what `predict` gives for the sequence
        ending there; classifiers also have ``predict_proba``, and token
        models that predict the next token ``sample``. Bidirectional models
        cannot stream.

        Parameters
        ----------
        n_streams : int, default=1
            Sequences carried side by side.
        initial_state : array or (array, array), optional
            A state as `Stream.state` gives it (zeros when None).

        Returns
        -------
        Stream

        Examples
        --------
        >>> import numpy as np
        >>> from nlstm import LSTMRegressor
        >>> X = np.random.default_rng(0).standard_normal((50, 10, 2))
        >>> reg = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0)
        >>> reg = reg.fit(X, X.sum(axis=(1, 2)))
        >>> s = reg.stream()
        >>> first, rest = s.predict(X[:1, :4]), s.predict(X[:1, 4:])  # 4 steps, then 6
        >>> first.shape, rest.shape
        ((1, 4), (1, 6))
        >>> bool(np.isclose(rest[0, -1], reg.predict(X[:1])[0]))  # the whole sequence's
        True
        """
        from .streams import Stream  # imported on use: its kernels' module is not needed before
        return Stream(self, n_streams, initial_state)

    def _saved_state(self):
        """What a model file keeps: ``(header fields, arrays)`` (see `nlstm.persistence`)."""
        params = self.get_params()
        if not isinstance(params.get("random_state"), (int, type(None))):
            params["random_state"] = None  # a RandomState object has no portable form
        network = self.network_
        fields = {
            "params": params,
            "fitted": {k: getattr(self, k) for k in self._SAVED_SCALARS if hasattr(self, k)},
            "n_inputs": network.lstm.input_size,
            "n_outputs": int(network.head_bias.shape[0]),
        }
        arrays = {f"param_{i}": p for i, p in enumerate(network.params)}
        for name in self._SAVED_ARRAYS:
            if hasattr(self, name):
                value = np.asarray(getattr(self, name))
                if value.dtype == object:
                    value = value.astype(str) if name == "feature_names_in_" else value
                    if value.dtype == object:
                        raise TypeError(f"cannot save {name} of mixed types; "
                                        "use labels of one type")
                arrays[f"fitted_{name}"] = value
        return fields, arrays

    @classmethod
    def _from_saved_state(cls, header, arrays, path):
        """Rebuild a model from a file's contents (`_saved_state`'s), checking
        each value against what `_saved_state` writes.

        Raises
        ------
        ValueError
            For a parameter, fitted attribute or array `save` would not have written.
        """
        def corrupted(what):
            return ValueError(f"{path} is corrupted: {what}")

        unknown = set(header["params"]) - set(cls().get_params())
        if unknown:
            raise corrupted(f"unknown parameters {sorted(unknown)}")
        estimator = cls(**header["params"])
        try:
            estimator._validate_params()
        except (ValueError, TypeError) as error:
            raise corrupted(f"a parameter is invalid: {error}") from None
        fitted = header["fitted"]
        for name, value in fitted.items():
            if name not in cls._SAVED_SCALARS:
                raise corrupted(f"unknown fitted attribute {name!r}")
            if not cls._SAVED_SCALARS[name](value):
                raise corrupted(f"fitted attribute {name!r} has the value {value!r}")
            setattr(estimator, name, value)
        for key, value in arrays.items():
            if key.startswith("fitted_"):
                name = key[len("fitted_"):]
                if name not in cls._SAVED_ARRAYS or not cls._SAVED_ARRAYS[name](value):
                    raise corrupted(f"unexpected fitted array {name!r} of shape {value.shape}")
                setattr(estimator, name, value)
        missing = cls._SAVED_REQUIRED - set(vars(estimator))
        if estimator.embedding_dim is not None:
            missing |= {"n_tokens_"} - set(vars(estimator))
        if missing:
            raise corrupted(f"fitted attributes {sorted(missing)} are missing")
        rng = check_random_state(estimator.random_state)
        # Built on the CPU: a model saved with device="cuda" must load on a machine
        # without a GPU. Its `device` parameter is kept; the next fit/predict checks
        # it (and names what is missing), and set_params(device="cpu") moves it.
        try:
            network = estimator._build_network(header["n_inputs"], header["n_outputs"],
                                               np.ones(1, dtype=np.int64), rng, device="cpu")
        except ValueError as error:
            raise corrupted(f"its network cannot be built: {error}") from None
        params = network.params
        names = [f"param_{i}" for i in range(len(params))]
        if {k for k in arrays if k.startswith("param_")} - set(names):
            raise corrupted("it holds more parameter arrays than its network has")
        stored = [arrays.get(name) for name in names]
        for i, (target, value) in enumerate(zip(params, stored)):
            if value is None or value.shape != target.shape or value.dtype.kind != "f":
                raise corrupted(f"parameter {i} is missing or has the wrong shape or dtype")
        for target, value in zip(params, stored):
            target[...] = value
        estimator.network_ = network
        estimator._optimizer = estimator._make_optimizer(params)
        estimator._rng = rng
        estimator._no_improvement_count = 0
        return estimator

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------
    def _raw_predict(self, X):
        """Head outputs for X: (n, k) or (n, T, k); plus lengths and form."""
        check_is_fitted(self, "network_")
        check_device(self.device)
        self.network_.lstm.device = self.device  # set_params(device=...) after fit
        data, lengths, form = self._validate_X(X, reset=False)
        with kernel_threads(self.n_jobs), self.network_.resident(write_back=False):
            z = self._forward_in_batches(self.network_, data, lengths)
        return z, lengths, form

    @staticmethod
    def _forward_in_batches(network, data, lengths):
        """Head outputs for all rows, on the host."""
        outputs = []
        to_host = network.arrays.to_host
        # plain slices, not sklearn's gen_batches: its parameter validation
        # costs about 45 us per call, 1% of a small predict (measured)
        for start in range(0, data.shape[0], PREDICT_BATCH):
            d, n = data[start:start + PREDICT_BATCH], lengths[start:start + PREDICT_BATCH]
            if len(n) == 1:  # a one-row GEMM rounds differently (BLAS GEMV path): pad to two
                z = to_host(network.forward(np.concatenate([d, d]), np.concatenate([n, n])))
                outputs.append(z[:1])
            else:
                outputs.append(to_host(network.forward(d, n)))
        return np.concatenate(outputs)

    def _sequence_output(self, values, lengths, form):
        """Per-timestep results as an array, or a list for ragged input."""
        return unpad(values, lengths) if form == "list" else values

    def _metric(self, metric, true, pred, lengths, weights):
        """``metric(true, pred, sample_weight=...)`` over the sequences, or with
        ``return_sequences`` over all valid timesteps, each weighing its
        sequence's weight. ``weights``: (n,) validated, or None."""
        if self.return_sequences:
            return metric(valid_steps(true, lengths), valid_steps(pred, lengths),
                          sample_weight=_step_weights(weights, lengths))
        return metric(true, pred, sample_weight=weights)


_PARAMETERS_DOC = '''    Parameters
    ----------
    hidden_size : int, default=64
        Units per LSTM layer and direction.
    num_layers : int, default=1
        Stacked LSTM layers.
    bidirectional : bool, default=False
        Also read each sequence backwards.
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        ``"gru"`` is torch.nn.GRU's cell, ``"rnn"`` a plain tanh RNN.
    forget_bias : float or "chrono", default="chrono"
        Initial bias of the gate that keeps the state (the LSTM's forget gate,
        the GRU's update gate; the RNN has none); ``"chrono"`` takes its time
        scale from the longest training sequence.
    dropout : float in [0, 1), default=0.0
        Dropout between LSTM layers and before the head, in training.
    embedding_dim : int or None, default=None
        If set, X holds integer token ids embedded in this many dimensions.
    return_sequences : bool, default=False
        Predict at every timestep instead of once per sequence.
    solver : {"adam", "sgd"}, default="adam"
    learning_rate_init : float, default=0.003
        Step size of the optimizer.
    momentum : float, default=0.9
        SGD momentum.
    batch_size : int, default=32
        Sequences per gradient step.
    tbptt_steps : int or None, default=None
        Truncated backpropagation through time, for sequences too long to
        unroll (``return_sequences=True``, one direction): each batch is cut
        into chunks of this many steps, read in order with the state carried
        from chunk to chunk, one gradient step per chunk, the gradient stopped
        at the chunk's start. Memory then grows with ``tbptt_steps``, not with
        the sequences' length. ``"chrono"`` takes its time scale from it.
    max_iter : int, default=200
        Epochs.
    shuffle : bool, default=True
        Shuffle the sequences every epoch.
    clip_grad_norm : float or None, default=1.0
        Global gradient-norm clipping.
    alpha : float, default=0.0
        L2 penalty: ``alpha * W`` added to the gradient of every weight matrix.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its score has
        not improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the
        best weights.
    validation_fraction : float, default=0.1
        Share of the training data held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without an improvement by ``tol`` before training stops.
    tol : float, default=1e-4
        The improvement of the loss (or validation score) that counts.
    warm_start : bool, default=False
        Continue from the fitted weights on the next `fit`.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the shuffling, dropout and the validation
        split.
    verbose : bool, default=False
        Print loss, validation score and seconds per epoch.
    n_jobs : int or None, default=None
        Numba threads for the call (None: Numba's current setting, -1: all).
    dtype : {"float32", "float64"}, default="float32"
    device : {"cpu", "cuda"}, default="cpu"

'''


class LSTMRegressor(RegressorMixin, _BaseLSTM):
    """LSTM regression of one value (or several) per sequence or per timestep.

    A linear head on the last valid hidden state (or on every step with
    ``return_sequences=True``) trained on squared error. Targets are
    standardised internally; predictions are in the original units and
    ``loss_curve_`` is on the standardised scale.

%(parameters)s    Attributes
    ----------
    n_features_in_ : int
        Columns of a 2-d X (timesteps), else features per timestep.
    n_outputs_ : int
    loss_curve_, validation_scores_ : list of float
    best_loss_, best_validation_score_ : float
    n_iter_ : int
    network_ : SequenceNetwork

    See Also
    --------
    LSTMClassifier : The same model for labels.
    nlstm.SequenceScaler : Scaling of sequence features before the model.

    Examples
    --------
    >>> import numpy as np
    >>> from nlstm import LSTMRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 10, 2)).astype(np.float32)  # 200 sequences of 10 steps
    >>> y = X[:, :, 0].sum(axis=1)                                   # a sum over time
    >>> reg = LSTMRegressor(hidden_size=16, max_iter=30, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> reg.score(X, y) > 0.9  # R^2
    True
    >>> ragged = [rng.standard_normal((n, 2)) for n in (4, 12, 7)]  # any lengths
    >>> reg.predict(ragged).shape
    (3,)
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    _loss_function = staticmethod(_losses.squared_error_loss)

    def _validate_targets(self, y, lengths, form, reset, classes=None, weights=None):
        """Standardised targets (n, k), or (n, T, k) with return_sequences
        (mean and scale weighted by the sample weights when given)."""
        if self.return_sequences:
            y = self._sequence_targets(y, lengths)  # (n, T) or (n, T, k)
            y = check_array(y.reshape(len(y), -1), dtype=np.float64,
                            input_name="y").reshape(y.shape)
            squeeze = y.ndim == 2
            Y = y[:, :, None] if squeeze else y
            flat = valid_steps(Y, lengths)
        else:
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
            if y.ndim not in (1, 2):
                raise ValueError("y must be 1-d or 2-d (n_samples, n_outputs), "
                                 f"got shape {y.shape}")
            squeeze = y.ndim == 1
            Y = flat = y[:, None] if squeeze else y
        if reset:
            self.n_outputs_ = Y.shape[-1]
            self._squeeze_output = squeeze
            flat_weights = _step_weights(weights, lengths) if self.return_sequences else weights
            self._y_mean, scale = _mean_and_scale(flat, flat_weights)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        elif Y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[-1]} outputs, but the model was fit with "
                             f"{self.n_outputs_}")
        return ((Y - self._y_mean) / self._y_scale).astype(DTYPES[self.dtype])

    @_transaction
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights.

        Parameters
        ----------
        X : array-like or list of sequences
            As for `fit`.
        y : array-like
            As for `fit`.
        sample_weight : array-like, optional
            As for `fit`.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _predict_values(self, X):
        """Predictions in original units, (n, k) or (n, T, k), with lengths and form."""
        z, lengths, form = self._raw_predict(X)
        return z.astype(np.float64) * self._y_scale + self._y_mean, lengths, form

    def _head_scaling(self):
        """``(scale, shift)``: the head's outputs ``z`` in the targets' units are
        ``z * scale + shift``, as `_predict_values` computes them (streams and the
        ONNX export fold this into their own head)."""
        return self._y_scale, self._y_mean

    def predict(self, X):
        """Predicted values.

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences in any form `fit` takes.

        Returns
        -------
        y_pred : ndarray of shape (n,) or (n, n_outputs), or list
            Per timestep with ``return_sequences``: (n, T[, n_outputs]), or a
            list of (T_i[, n_outputs]) arrays when X is a list.
        """
        pred, lengths, form = self._predict_values(X)
        if self._squeeze_output:
            pred = pred[..., 0]
        return self._sequence_output(pred, lengths, form) if self.return_sequences else pred

    def _validation_score(self, network, data, lengths, Y, weights=None):
        from sklearn.metrics import r2_score  # imported on use: see the top
        z = self._forward_in_batches(network, data, lengths)
        return self._metric(r2_score, Y, z, lengths, weights)

    def score(self, X, y, sample_weight=None):
        """R^2 of the predictions (over all valid timesteps with
        ``return_sequences``, each weighing its sequence's ``sample_weight``).

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences in any form `fit` takes.
        y : array-like
            True values, shaped as for `fit`.
        sample_weight : array-like, optional
            Weights as for `fit`.

        Returns
        -------
        score : float
        """
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        from sklearn.metrics import r2_score  # imported on use: see the top
        pred, lengths, form = self._predict_values(X)
        y = np.asarray(self._sequence_targets(y, lengths), dtype=np.float64)
        y = y[:, :, None] if y.ndim == 2 else y
        return self._metric(r2_score, y, pred, lengths, self._check_weights(sample_weight, lengths))


class LSTMClassifier(ClassifierMixin, _BaseLSTM):
    """LSTM classification of each sequence (or each timestep).

    A linear head on the last valid hidden state (or on every step with
    ``return_sequences=True``): sigmoid and log loss for two classes, softmax
    and cross-entropy for more. Labels may be of any type (strings too).
    The classic sentiment model, embedding -> 2-layer LSTM with dropout ->
    sigmoid, is ``LSTMClassifier(embedding_dim=..., num_layers=2, dropout=...)``.

%(parameters)s    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    n_features_in_, loss_curve_, validation_scores_, best_loss_,
    best_validation_score_, n_iter_, network_ : as for `LSTMRegressor`

    See Also
    --------
    LSTMRegressor : The same model for numbers.

    Examples
    --------
    >>> import numpy as np
    >>> from nlstm import LSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 10, 2)).astype(np.float32)
    >>> y = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
    >>> clf = LSTMClassifier(hidden_size=16, max_iter=30, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['down', 'up'], dtype='<U4')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> clf.score(X, y) > 0.9
    True

    Token ids (here 0..49) go through an embedding:

    >>> tokens = rng.integers(0, 50, (100, 8))
    >>> clf = LSTMClassifier(embedding_dim=8, hidden_size=8, max_iter=2, random_state=0)
    >>> clf.fit(tokens, tokens[:, 0] %% 2).n_tokens_
    50
    """

    def _loss_function(self, z, Y, weights=None):
        if len(self.classes_) == 2:
            return _losses.binary_log_loss(z, Y, weights)
        return _losses.cross_entropy_loss(z, Y, weights)

    def _validate_targets(self, y, lengths, form, reset, classes=None, weights=None):
        """Encoded targets: (n, 1) in {0, 1} for two classes, else one-hot (n, K);
        (n, T, .) with return_sequences."""
        if self.return_sequences:
            y = np.asarray(self._sequence_targets(y, lengths))
            if y.ndim != 2:
                raise ValueError(f"with return_sequences=True, y must hold one label per "
                                 f"timestep, shape (n, T), got {y.shape}")
            labels = valid_steps(y, lengths)
        else:
            y = labels = column_or_1d(y, warn=True)
        check_classification_targets(labels)
        if reset:
            if classes is None and getattr(self, "_partial", False):
                raise ValueError("classes must be passed on the first call to partial_fit")
            classes_ = np.unique(labels if classes is None else np.asarray(classes))
            known = f"classes={classes!r}"
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={classes!r} differs from the classes of the previous "
                                 f"calls, {self.classes_!r}")
            classes_ = self.classes_
            known = f"classes_ {self.classes_!r}"
        # before the count: classes=['a'] with y of 'a' and 'b' is a label missing from classes
        unseen = np.setdiff1d(labels, classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not in {known}: {unseen.tolist()!r}")
        if len(classes_) < 2:  # only a first call: a fitted model has at least 2
            where = "the data contain" if classes is None else "classes holds"
            raise ValueError(f"{type(self).__name__} needs at least 2 classes, but {where} "
                             f"only one class: {classes_.tolist()[0]!r}")
        self.classes_ = classes_
        index = np.minimum(np.searchsorted(self.classes_, y), len(self.classes_) - 1)
        if len(self.classes_) == 2:
            Y = (index == 1)[..., None]
        else:
            Y = np.eye(len(self.classes_), dtype=bool)[index]
        return Y.astype(DTYPES[self.dtype])

    @_transaction
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights.

        Parameters
        ----------
        X : array-like or list of sequences
            As for `fit`.
        y : array-like
            As for `fit`.
        classes : array-like, optional
            All class labels; required on the first call.
        sample_weight : array-like, optional
            As for `fit`.

        Returns
        -------
        self
        """
        self._partial = True
        try:
            return self._fit(X, y, incremental=True, classes=classes,
                             sample_weight=sample_weight)
        finally:
            del self._partial

    def _head_scaling(self):
        """``(scale, shift)`` of the head's outputs: the logits as they are."""
        return 1.0, 0.0

    def _probabilities(self, z):
        """Class probabilities from head outputs ``z`` (..., k), in float64."""
        z = z.astype(np.float64)
        return (_losses.binary_proba(z) if len(self.classes_) == 2
                else _losses.multiclass_proba(z))

    def predict_proba(self, X):
        """Class probabilities, rows summing to 1.

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences in any form `fit` takes.

        Returns
        -------
        proba : ndarray of shape (n, n_classes), or list
            Per timestep with ``return_sequences``: (n, T, n_classes), or a
            list of (T_i, n_classes) arrays when X is a list.
        """
        z, lengths, form = self._raw_predict(X)
        proba = self._probabilities(z)
        return self._sequence_output(proba, lengths, form) if self.return_sequences else proba

    def predict_log_proba(self, X):
        """Logarithm of `predict_proba`, computed from the logits (finite where
        a probability rounds to 0).

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences in any form `fit` takes.

        Returns
        -------
        log_proba : ndarray or list
            Shaped as `predict_proba`'s result.
        """
        z, lengths, form = self._raw_predict(X)
        z = z.astype(np.float64)
        log_proba = (_losses.binary_log_proba(z) if len(self.classes_) == 2
                     else _losses.multiclass_log_proba(z))
        return (self._sequence_output(log_proba, lengths, form) if self.return_sequences
                else log_proba)

    def _predict_labels(self, X):
        """Predicted labels (n,) or (n, T), with lengths and form."""
        z, lengths, form = self._raw_predict(X)
        labels = self.classes_[self._probabilities(z).argmax(axis=-1)]
        return labels, lengths, form

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences in any form `fit` takes.

        Returns
        -------
        labels : ndarray of shape (n,), or list
            Per timestep with ``return_sequences``: (n, T), or a list of
            (T_i,) arrays when X is a list.
        """
        labels, lengths, form = self._predict_labels(X)
        return self._sequence_output(labels, lengths, form) if self.return_sequences else labels

    def _validation_score(self, network, data, lengths, Y, weights=None):
        from sklearn.metrics import accuracy_score  # imported on use: see the top
        z = self._forward_in_batches(network, data, lengths)
        pred = self._probabilities(z).argmax(axis=-1)
        true = Y[..., 0] if Y.shape[-1] == 1 else Y.argmax(axis=-1)
        return self._metric(accuracy_score, true, pred, lengths, weights)

    def score(self, X, y, sample_weight=None):
        """Accuracy (over all valid timesteps with ``return_sequences``, each
        weighing its sequence's ``sample_weight``).

        Parameters
        ----------
        X : array-like of shape (n, T) or (n, T, F), or list of (T_i, F) arrays
            Sequences in any form `fit` takes.
        y : array-like
            True labels, shaped as for `fit`.
        sample_weight : array-like, optional
            Weights as for `fit`.

        Returns
        -------
        score : float
        """
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        from sklearn.metrics import accuracy_score  # imported on use: see the top
        pred, lengths, form = self._predict_labels(X)
        y = np.asarray(self._sequence_targets(y, lengths))
        return self._metric(accuracy_score, y, pred, lengths,
                            self._check_weights(sample_weight, lengths))


for _estimator in (LSTMRegressor, LSTMClassifier):
    if _estimator.__doc__:  # None under python -OO
        _estimator.__doc__ %= {"parameters": _PARAMETERS_DOC}
