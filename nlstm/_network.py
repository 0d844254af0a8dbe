"""The estimators' model: optional embedding -> `LSTM` -> dropout -> linear head.

Forward and backward sit side by side; parameters are a list of arrays
(embedding, the LSTM's flat buffer, head weight, head bias) that the optimizers
update in place. Callers hold `nlstm._threads.kernel_threads`.

On a GPU the network computes inside `SequenceNetwork.resident`: parameters,
activations and gradients stay on the device, and `forward`/`backward` take
and return device arrays (host arguments are copied up first). The array
plumbing comes from `nlstm.kernels.plumbing.cpu_arrays` or `.cuda_arrays`.
"""
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from ._device import device_copies
from ._threads import launch_lock
from .layer import LSTM

# Values of the embedding table drawn per call of the random generator (whole rows):
# the float64 draws take about 8 MiB at a time, whatever the table's size.
_EMBEDDING_DRAW_VALUES = 1 << 20


class HeadActivations(NamedTuple):
    """What a training `SequenceNetwork.forward` keeps for its backward (on the device)."""
    data: object      # (B, T, F) inputs, or (B, T) token ids
    lengths: object   # (B,) int64
    features: object  # (B, D*H) or (B, T, D*H): the head's input, after dropout
    mask: object      # the dropout mask on the features, or None


def _embedding_table(rng, n_tokens, embedding_dim, dtype):
    """torch.nn.Embedding's initialisation, N(0, 1), as a ``(n_tokens,
    embedding_dim)`` table of ``dtype``.

    The table has a row for every id up to the largest seen at fit, so a huge
    id asks for a huge table; one that cannot be allocated raises a
    ValueError that says so, instead of NumPy's MemoryError. The values are
    drawn in chunks of rows, giving the bits of one ``rng.standard_normal``
    call for the whole table without its float64 copy.
    """
    try:
        table = np.empty((n_tokens, embedding_dim), dtype)
    except (MemoryError, ValueError):  # ValueError: "array is too big" for NumPy itself
        gib = n_tokens * embedding_dim * np.dtype(dtype).itemsize / 2**30
        raise ValueError(
            f"X's largest token id is {n_tokens - 1}, so the embedding needs a table of "
            f"{n_tokens} x {embedding_dim} {np.dtype(dtype).name} values ({gib:.3g} GiB), which "
            f"could not be allocated. The table has a row for every id from 0 to the largest: "
            f"map the tokens to consecutive ids 0..V-1 first (for example with a "
            f"CountVectorizer vocabulary or sklearn.preprocessing.OrdinalEncoder)") from None
    rows = max(1, _EMBEDDING_DRAW_VALUES // embedding_dim)
    for r0 in range(0, n_tokens, rows):
        table[r0:r0 + rows] = rng.standard_normal((min(rows, n_tokens - r0), embedding_dim))
    return table


class SequenceNetwork:
    """Embedding (when ``n_tokens``), a stacked LSTM and a linear head.

    Parameters
    ----------
    n_inputs : int
        Features per timestep (ignored with an embedding).
    n_outputs : int
        Head outputs (regression targets or logits).
    hidden_size, num_layers, bidirectional, cell, forget_bias, chrono_max, dtype
        Passed to `LSTM`.
    dropout : float
        Between LSTM layers and on the features entering the head, in training.
    embedding_dim : int or None
        Width of the token embedding; None for numeric input.
    n_tokens : int
        Vocabulary size (rows of the embedding).
    return_sequences : bool
        Head on every timestep instead of the last valid one.
    rng : numpy.random.RandomState
        Initialisation and dropout.
    """

    def __init__(self, n_inputs, n_outputs, *, hidden_size, num_layers, bidirectional, cell,
                 forget_bias, chrono_max, dropout, embedding_dim, n_tokens, return_sequences,
                 dtype, rng, device="cpu"):
        self.dtype = np.dtype(dtype)
        self.return_sequences = return_sequences
        self.rng = rng
        self.embedding = None
        if embedding_dim is not None:
            self.embedding = _embedding_table(rng, n_tokens, embedding_dim, self.dtype)
            n_inputs = embedding_dim
        self.lstm = LSTM(n_inputs, hidden_size, num_layers, bidirectional=bidirectional,
                         cell=cell, forget_bias=forget_bias, chrono_max=chrono_max, dtype=dtype,
                         device=device, random_state=rng)
        self.set_dropout(dropout)
        n_features = hidden_size * self.lstm.num_directions
        bound = 1.0 / np.sqrt(n_features)  # torch.nn.Linear's initialisation
        self.head_weight = rng.uniform(-bound, bound, (n_features, n_outputs)).astype(self.dtype)
        self.head_bias = rng.uniform(-bound, bound, n_outputs).astype(self.dtype)
        self._cache = None

    def set_dropout(self, dropout):
        """Dropout on the head's input and between the LSTM's layers. With one
        layer the LSTM gets 0: its own dropout acts between layers only (and
        warns that it does nothing there), while this model's is not idle."""
        self.dropout = dropout
        self.lstm.dropout = dropout if self.lstm.num_layers > 1 else 0.0

    @property
    def arrays(self):
        """The array-plumbing module of the network's device."""
        return self.lstm.arrays

    @contextmanager
    def resident(self, write_back=True):
        """Keep every parameter on the network's device for the block (see
        `LSTM.resident`): copied there on entry and, with ``write_back``, into
        the host arrays on exit. `params` gives the device arrays meanwhile.
        On the CPU this does nothing. A GPU block holds the process's launch
        lock (other Python threads wait instead of seeing a half-moved network)."""
        if self.lstm.device == "cpu":
            yield
            return
        with launch_lock():
            if self.lstm.is_resident:  # nested
                yield
                return
            host = (self.embedding, self.head_weight, self.head_bias)
            with device_copies(self.arrays, host, write_back) as device:
                self.embedding, self.head_weight, self.head_bias = device
                try:
                    with self.lstm.resident(write_back):
                        yield
                finally:
                    self.embedding, self.head_weight, self.head_bias = host

    @property
    def params(self):
        """The parameter arrays, updated in place by the optimizers (device
        arrays inside `resident` on a GPU)."""
        head = [self.lstm.flat_parameters, self.head_weight, self.head_bias]
        return head if self.embedding is None else [self.embedding] + head

    def weight_masks(self):
        """Per parameter: 1 where L2 applies (weights), 0 for biases. On the
        network's device."""
        masks = [self.lstm.weight_mask(), np.ones(self.head_weight.shape, self.dtype),
                 np.zeros(self.head_bias.shape, self.dtype)]
        if self.embedding is not None:
            masks.insert(0, np.ones(self.embedding.shape, self.dtype))
        return [self.arrays.to_device(m) for m in masks]

    def forward(self, data, lengths, training=False, initial_state=None, with_state=False):
        """Raw head output: (B, n_outputs), or (B, T, n_outputs) with return_sequences,
        on the network's device.

        data : (B, T, F) floats, or (B, T) token ids with an embedding.
        lengths : (B,) int64 valid steps per row.
        initial_state : ``(h_0, c_0)``, each (num_layers*D, B, H) (``c_0`` None but
            for an LSTM), or None for zeros. No gradient reaches it: truncated
            backpropagation through time carries the state, not its gradient.
        with_state : also return the final state ``(h_n, c_n)``, taken at each
            row's last valid step.
        """
        arrays = self.arrays
        data, device_lengths = arrays.to_device(data), arrays.to_device(lengths)
        x = (arrays.embedding_lookup(self.embedding, data) if self.embedding is not None
             else data)  # (B, T, F)
        h_0, c_0 = (None, None) if initial_state is None else initial_state
        with launch_lock():
            output, h_n, c_n = self.lstm.forward_on_device(x, device_lengths, h_0, c_0, training,
                                                           keep_activations=training,
                                                           want_output=self.return_sequences)
        D = self.lstm.num_directions
        if self.return_sequences:
            features = output  # (B, T, D*H)
        else:  # last valid step of each direction of the top layer
            features = arrays.final_features(h_n, D)  # (B, D*H)
        mask = None
        if training and self.dropout > 0:
            mask = arrays.dropout_mask(features.shape, 1.0 - self.dropout, self.rng, self.dtype)
            features = arrays.multiply(features, mask)
        z = arrays.linear(features, self.head_weight, self.head_bias)
        if training:
            self._cache = HeadActivations(data, device_lengths, features, mask)
        return (z, (h_n, c_n)) if with_state else z

    def backward(self, d_z):
        """Gradients of every array in `params` from d(loss)/d(head output)
        ``d_z`` (of the network's dtype), on the network's device."""
        arrays = self.arrays
        cache = self._cache
        d_z = arrays.to_device(d_z)
        d_head_weight, d_head_bias, d_features = arrays.linear_grads(
            cache.features, d_z, self.head_weight)
        if cache.mask is not None:
            arrays.multiply_into(d_features, cache.mask)
        lstm = self.lstm
        if self.return_sequences:
            d_output, d_h_n = d_features, None
        else:  # only the final state reaches the head: no output gradient
            d_output = None
            d_h_n = arrays.final_state_grad(d_features, lstm.num_layers * lstm.num_directions,
                                            lstm.num_directions)
        with launch_lock():
            d_x, d_lstm = lstm.backward_on_device(d_output, d_h_n,
                                                  want_input_grad=self.embedding is not None)
        grads = [d_lstm, d_head_weight, d_head_bias]
        if self.embedding is not None:
            grads.insert(0, arrays.embedding_grad(self.embedding.shape, cache.data,
                                                  cache.lengths, d_x))
        self._cache = None
        lstm.discard_activations()
        return grads
