"""The estimators' model: optional embedding -> `LSTM` -> dropout -> linear head.

Forward and backward sit side by side; parameters are a list of arrays
(embedding, the LSTM's flat buffer, head weight, head bias) that the optimizers
update in place. Callers hold `nlstm._threads.kernel_threads`.
"""
import numpy as np

from ._threads import launch_lock
from .layer import LSTM


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
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.rng = rng
        self.embedding = None
        if embedding_dim is not None:
            # torch.nn.Embedding's initialisation: N(0, 1)
            self.embedding = rng.standard_normal((n_tokens, embedding_dim)).astype(self.dtype)
            n_inputs = embedding_dim
        self.lstm = LSTM(n_inputs, hidden_size, num_layers, bidirectional=bidirectional,
                         dropout=dropout, cell=cell, forget_bias=forget_bias,
                         chrono_max=chrono_max, dtype=dtype, device=device, random_state=rng)
        n_features = hidden_size * self.lstm.num_directions
        bound = 1.0 / np.sqrt(n_features)  # torch.nn.Linear's initialisation
        self.head_weight = rng.uniform(-bound, bound, (n_features, n_outputs)).astype(self.dtype)
        self.head_bias = rng.uniform(-bound, bound, n_outputs).astype(self.dtype)
        self._cache = None

    @property
    def params(self):
        """The parameter arrays, updated in place by the optimizers."""
        head = [self.lstm.flat_parameters, self.head_weight, self.head_bias]
        return head if self.embedding is None else [self.embedding] + head

    def weight_masks(self):
        """Per parameter: 1 where L2 applies (weights), 0 for biases."""
        lstm_mask = np.zeros_like(self.lstm.flat_parameters)
        flat_views = self.lstm._named_views(lstm_mask, self.lstm._param_shapes())
        for name, view in flat_views.items():
            if name.startswith("weight"):
                view[...] = 1
        masks = [lstm_mask, np.ones_like(self.head_weight), np.zeros_like(self.head_bias)]
        return masks if self.embedding is None else [np.ones_like(self.embedding)] + masks

    def forward(self, data, lengths, training=False):
        """Raw head output: (B, n_outputs), or (B, T, n_outputs) with return_sequences.

        data : (B, T, F) floats, or (B, T) token ids with an embedding.
        """
        x = self.embedding[data] if self.embedding is not None else data  # (B, T, F)
        with launch_lock():
            output, h_n, _ = self.lstm._forward(x, lengths, None, None, training,
                                                keep_cache=training,
                                                want_output=self.return_sequences)
        D = self.lstm.num_directions
        if self.return_sequences:
            features = output  # (B, T, D*H)
        else:  # last valid step of each direction of the top layer
            features = np.concatenate(list(h_n[-D:]), axis=1)  # (B, D*H)
        mask = None
        if training and self.dropout > 0:
            keep = 1.0 - self.dropout
            mask = (self.rng.random_sample(features.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
            features = features * mask
        z = features @ self.head_weight + self.head_bias
        if training:
            B, T = x.shape[:2]
            self._cache = dict(data=data, lengths=lengths, features=features, mask=mask,
                               shape=(B, T, D * self.lstm.hidden_size))
        return z

    def backward(self, d_z):
        """Gradients of every array in `params` from d(loss)/d(head output)."""
        cache = self._cache
        features = cache["features"]
        width = features.shape[-1]
        d_head_weight = features.reshape(-1, width).T @ d_z.reshape(-1, d_z.shape[-1])
        d_head_bias = d_z.reshape(-1, d_z.shape[-1]).sum(axis=0)
        d_features = d_z @ self.head_weight.T
        if cache["mask"] is not None:
            d_features *= cache["mask"]
        B, T, _ = cache["shape"]
        lstm = self.lstm
        if self.return_sequences:
            d_output = np.ascontiguousarray(d_features, dtype=self.dtype)
            d_h_n = None
        else:  # only the final state reaches the head: no output gradient
            D, H = lstm.num_directions, lstm.hidden_size
            d_output = None
            d_h_n = np.zeros((lstm.num_layers * D, B, H), self.dtype)
            d_h_n[-D:] = d_features.reshape(B, D, H).transpose(1, 0, 2)
        with launch_lock():
            d_x, d_lstm = lstm._backward(d_output, d_h_n,
                                         want_input_grad=self.embedding is not None)
        grads = [d_lstm, d_head_weight.astype(self.dtype), d_head_bias.astype(self.dtype)]
        if self.embedding is not None:
            d_embedding = np.zeros_like(self.embedding)
            valid = np.arange(T)[None, :] < cache["lengths"][:, None]  # (B, T)
            np.add.at(d_embedding, cache["data"][valid], d_x[valid])
            grads.insert(0, d_embedding)
        self._cache = None
        lstm._cache = None
        return grads
