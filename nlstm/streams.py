"""Streams: a fitted estimator's recurrent state carried from call to call.

``est.stream()`` returns a `Stream` that reads new timesteps of ``n_streams``
sequences a chunk at a time, keeping the state of every layer between calls:
online prediction from a live sensor, or text generated one token at a time
(`Stream.sample`). A step's prediction is what ``predict`` gives for the
sequence that ends there (a ``return_sequences`` model: that step's output).

A stream copies the network the estimator had when the stream was made: it
never changes the estimator, and a later ``fit`` or ``partial_fit`` does not
change the stream. It runs on the CPU, whatever device trained the model, through
`nlstm.kernels.stream` (all layers and the head in one call per chunk, the
weights packed once); a chunk that is a C-contiguous array of the model's
form is read without the checks ``predict`` makes of arbitrary input, and any
other goes through them.
"""
import threading

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ._data import check_token_ids, check_vocabulary, read_sequence_array
from ._threads import kernel_threads, launch_lock
from ._validation import as_float_array, cast_within_range, check_float, check_int
from .kernels.stream import StreamKernel


class Stream:
    """The recurrent state of ``n_streams`` sequences, fed a chunk of steps at a time.

    Made by ``LSTMRegressor.stream`` or ``LSTMClassifier.stream``; see there.
    Calls from several threads on one stream run one after another; separate
    streams of one model run concurrently.
    """

    def __init__(self, estimator, n_streams=1, initial_state=None):
        check_is_fitted(estimator, "network_")
        self._n_streams = check_int(n_streams, "n_streams", min_val=1)
        self._estimator = estimator
        network = estimator.network_
        layer = network.lstm
        if layer.bidirectional:
            raise ValueError("a bidirectional model cannot stream: its reverse direction reads "
                             "each sequence from its end, which a stream has not seen yet")
        self._shape = (layer.num_layers, self._n_streams, layer.hidden_size)
        self._lstm_cell = layer.cell == "lstm"
        self._dtype = network.dtype
        self._tokens = network.embedding is not None
        self._n_features = 1 if estimator._input_form_ == "table" else layer.input_size
        params = layer.state_dict()  # host copies, whatever the device
        layers = [tuple(params[f"{kind}_l{k}"] for kind in
                        ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                  for k in range(layer.num_layers)]
        scale, shift = estimator._head_scaling()
        self._kernel = StreamKernel(
            layer.cell, layers, np.array(network.head_weight), np.array(network.head_bias),
            scale, shift, None if network.embedding is None else np.array(network.embedding),
            self._n_streams)
        self._lock = threading.Lock()
        self._last_proba = None
        self.reset()
        if initial_state is not None:
            self._state = self._check_state(initial_state)

    @property
    def n_streams(self):
        """How many sequences the stream carries."""
        return self._n_streams

    @property
    def state(self):
        """A copy of the state: h (num_layers, n_streams, hidden_size), or for an LSTM
        the pair (h, c); pass it as ``initial_state`` to resume from it."""
        with self._lock:
            h, c = self._state
            return (h.copy(), c.copy()) if self._lstm_cell else h.copy()

    def reset(self):
        """Back to the zero state of a new sequence."""
        zeros = np.zeros(self._shape, self._dtype)
        with self._lock:
            self._state = (zeros, zeros.copy() if self._lstm_cell else None)
            self._last_proba = None

    def _check_state(self, state):
        """``state`` as (h, c) arrays of the stream's shape and dtype (c None but for an LSTM)."""
        if self._lstm_cell:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError("the state of an LSTM stream is a pair (h, c)")
            parts = state
        else:
            parts = (state, None)
        checked = []
        for name, part in zip(("h", "c"), parts):
            if part is None:
                checked.append(None)
                continue
            array = as_float_array(part, f"initial_state {name}", self._dtype.type, ndim=3)
            if array.shape != self._shape:
                raise ValueError(f"initial_state {name} must have shape {self._shape} "
                                 f"(num_layers, n_streams, hidden_size), got {array.shape}")
            checked.append(array.copy())  # the stream advances it in place
        return tuple(checked)

    def _read_chunk(self, chunk):
        """The chunk as the kernel reads it, checked as ``predict`` checks X:
        (n_streams, T_c, F) of the model's dtype, or (n_streams, T_c) int64 token ids."""
        est = self._estimator
        if self._tokens:
            ids = check_array(chunk, dtype="numeric", input_name="chunk")
            data = check_token_ids(ids, "chunk")
            check_vocabulary(data, est.n_tokens_, "chunk")
        else:
            array = np.asarray(chunk)
            if array.ndim != 3:
                raise ValueError("chunk must be a 3-d array (n_streams, T_c, n_features) of "
                                 f"numbers, got shape {array.shape}")
            data = cast_within_range(read_sequence_array(array, [np.float64, np.float32]),
                                     self._dtype.type, "chunk")
            if data.shape[2] != self._n_features:
                raise ValueError(f"chunk has {data.shape[2]} features per step, but the model "
                                 f"was fit with {self._n_features}")
        if data.shape[0] != self._n_streams:  # (check_array and read_sequence_array refuse T=0)
            raise ValueError(f"chunk holds {data.shape[0]} streams, but this stream carries "
                             f"{self._n_streams}")
        return np.ascontiguousarray(data)

    def _plain_chunk(self, chunk):
        """The chunk as the kernel reads it when it is an array of the model's form
        (the kernel then checks its values), else None."""
        if type(chunk) is not np.ndarray or chunk.shape[:1] != (self._n_streams,):
            return None
        if self._tokens:
            if chunk.ndim != 2 or chunk.dtype.kind not in "iu":
                return None
            data = chunk.astype(np.int64, copy=False)  # a wrapped uint64 turns negative: refused
        else:
            if chunk.ndim != 3 or chunk.shape[2] != self._n_features or chunk.dtype not in (
                    np.float32, np.float64):
                return None
            if chunk.dtype == self._dtype:
                data = chunk
            else:
                with np.errstate(over="ignore"):  # beyond float32: inf, refused by the kernel
                    data = chunk.astype(self._dtype)
        if data.shape[1] == 0:
            return None
        return np.ascontiguousarray(data)

    def _step(self, chunk):
        """Head values (n_streams, T_c, n_outputs), float64, for the chunk: predictions
        of a regressor, logits of a classifier. The state moves on only when the
        chunk could be read."""
        data = self._plain_chunk(chunk)
        if data is None:
            data = self._read_chunk(chunk)
        h, c = self._state
        if self._kernel.parallel:
            with kernel_threads(self._estimator.n_jobs), launch_lock():
                out = self._kernel.run(data, h, c)
        else:
            out = self._kernel.run(data, h, c)
        if out is None:  # a value the kernel refused: predict's checks name it
            self._read_chunk(chunk)
            raise ValueError("chunk holds values the model cannot read")
        return out

    def predict(self, chunk):
        """Predictions for each new step of every stream.

        Parameters
        ----------
        chunk : array-like of shape (n_streams, T_c, n_features), or (n_streams, T_c)
            The next ``T_c`` steps of every stream (token ids with an embedding).

        Returns
        -------
        ndarray of shape (n_streams, T_c) or (n_streams, T_c, n_outputs)
            What ``predict`` gives for each sequence ending at each new step (a
            classifier: the labels).
        """
        with self._lock:
            values = self._step(chunk)
            est = self._estimator
            if hasattr(est, "classes_"):
                proba = est._probabilities(values)
                self._last_proba = proba[:, -1]
                return est.classes_[proba.argmax(axis=-1)]
            return values[..., 0] if est._squeeze_output else values

    def predict_proba(self, chunk):
        """Class probabilities for each new step (classifiers).

        Parameters
        ----------
        chunk : array-like of shape (n_streams, T_c, n_features), or (n_streams, T_c)
            The next steps of every stream.

        Returns
        -------
        ndarray of shape (n_streams, T_c, n_classes)
        """
        if not hasattr(self._estimator, "classes_"):
            raise AttributeError("predict_proba is for classifiers")
        with self._lock:
            proba = self._estimator._probabilities(self._step(chunk))
            self._last_proba = proba[:, -1]
            return proba

    def sample(self, n_steps, temperature=1.0, random_state=None):
        """Generate tokens: draw each next token from the last step's class
        probabilities sharpened by ``temperature``, feed it back, repeat.

        For token models trained with ``return_sequences=True`` whose classes are
        token ids (the next token). Predict a chunk first (the prompt). Classes
        beyond the embedding's vocabulary (ids never seen in X at fit) cannot be
        fed back and are never drawn.

        Parameters
        ----------
        n_steps : int
            Tokens to generate per stream.
        temperature : float, default=1.0
            ``p_i ** (1 / temperature)``, renormalised; 0 takes the most likely token.
        random_state : int, RandomState or None
            Seeds the draws.

        Returns
        -------
        ndarray of shape (n_streams, n_steps)
            The tokens drawn.
        """
        est = self._estimator
        if not self._tokens or not hasattr(est, "classes_"):
            raise ValueError("sample needs a token classifier (embedding_dim set) whose classes "
                             "are token ids")
        classes = est.classes_
        if classes.dtype.kind not in "iu" or classes.min() < 0:
            raise ValueError("sample needs classes that are token ids (non-negative integers), "
                             f"got classes of dtype {classes.dtype}")
        readable = classes < est.n_tokens_  # the ids the embedding can read back
        if not readable.any():
            raise ValueError(f"none of the classes is a token id of the model's vocabulary "
                             f"(0..{est.n_tokens_ - 1})")
        n_steps = check_int(n_steps, "n_steps", min_val=1)
        temperature = check_float(temperature, "temperature", min_val=0)
        rng = check_random_state(random_state)
        with self._lock:
            if self._last_proba is None:
                raise ValueError("predict a chunk first: sample continues from the last step")
            tokens = np.empty((self._n_streams, n_steps), dtype=np.int64)
            proba = self._last_proba
            for t in range(n_steps):
                proba = np.where(readable, proba, 0.0)
                if temperature == 0:
                    index = proba.argmax(axis=1)
                else:
                    logits = np.log(np.maximum(proba, 1e-300)) / temperature
                    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
                    weights = np.where(readable, weights, 0.0)
                    weights /= weights.sum(axis=1, keepdims=True)
                    index = np.array([rng.choice(len(classes), p=w) for w in weights])
                tokens[:, t] = classes[index]
                z = self._step(tokens[:, t:t + 1])
                proba = est._probabilities(z)[:, -1]
            self._last_proba = proba
            return tokens
