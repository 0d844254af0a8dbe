"""CPU kernels of a stream (`nlstm.streams.Stream`): every layer of a
unidirectional network and its linear head over a chunk of steps, in one call.

A stream's step is latency-bound: at one stream, F = 4 and H = 64 the cell's
arithmetic takes about a microsecond, and the layer's general path spends far
more around it (checks, packing the weights, a launch per layer, the head in
NumPy). Here a `StreamKernel` packs the weights once, into one flat buffer,
and one block function runs all layers over its rows, each layer with the
inference sweep's own shard from `nlstm.kernels.cpu` (so the states have the
bits that ``predict``'s sweeps give the same rows), then the head. With one
block of rows the block function is called directly, with the GIL released,
so streams in other threads run beside it; with more, `run_blocks` runs the
blocks in parallel, as the sweeps do.

The streams run on the CPU whatever device trained the model: a step of a few
streams is too small for a GPU launch to pay.
"""
import math

import numpy as np
from numba import njit

from .codegen.blas import aligned_empty, gemm_address
from .codegen.blocks import arguments_do_not_alias, run_blocks
from .codegen.inlining import inline_into_callers
from .codegen.packed import pack_panels
from .codegen.vector_width import use_wide_vectors
from .cpu import (
    _gru_inference_shard,
    _lstm_inference_shard,
    _rnn_inference_shard,
    gate_panels,
    gru_panels,
    shard_bounds,
    sweep_bounds,
)
from .plumbing.cpu_arrays import stack_weights
from .runtime.jit_options import HELPER, STEP_KERNEL

# Each part of the packed weights starts on a 64-byte boundary (`pack_panels`'s alignment).
_ALIGN_BYTES = 64


@njit(**HELPER)
def _chunk_is_readable(x, ids, table):
    """Whether every value of the chunk can be read: finite numbers in ``x``
    (B, T, F), or with a ``table`` (V, E) token ids ``ids`` (B, T) in 0..V-1.
    Every block checks all rows, so no block writes a state when any row is bad."""
    inline_into_callers()
    if table.shape[0] > 0:
        n_tokens = table.shape[0]
        for b in range(ids.shape[0]):
            for t in range(ids.shape[1]):
                if ids[b, t] < 0 or ids[b, t] >= n_tokens:
                    return False
        return True
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            for j in range(x.shape[2]):
                if not math.isfinite(x[b, t, j]):
                    return False
    return True


@njit(**HELPER)
def _embed_rows(ids, table, x, b0, b1):
    """``x[b, t] = table[ids[b, t]]`` for the rows [b0, b1); x: (B, T, E)."""
    inline_into_callers()
    E = table.shape[1]
    for b in range(b0, b1):
        for t in range(ids.shape[1]):
            row, x_bt = table[ids[b, t]], x[b, t]  # (E)
            for j in range(E):
                x_bt[j] = row[j]


@njit(**HELPER)
def _chunk_rows(x, ids, table, bad, b0, b1):
    """Check the whole chunk (`_chunk_is_readable`; ``bad[0] = 1`` and False when a
    value cannot be read) and embed the rows [b0, b1) when chunks are token ids."""
    inline_into_callers()
    if not _chunk_is_readable(x, ids, table):
        bad[0] = 1
        return False
    if table.shape[0] > 0:
        _embed_rows(ids, table, x, b0, b1)
    return True


@njit(**HELPER)
def _panels(weights, part):
    """One part of the packed weights: ``part`` = (offset, P, K, width) -> (P, K, width)."""
    inline_into_callers()
    offset, n_panels, depth, width = part[0], part[1], part[2], part[3]
    return weights[offset:offset + n_panels * depth * width].reshape((n_panels, depth, width))


@njit(**HELPER)
def _head_rows(top, b0, b1, head_w, head_b, scale, shift, out):
    """``out[b, t] = (top[b, t] @ head_w + head_b) * scale + shift`` for the rows
    [b0, b1): the head in the network's dtype, then the target scaling in float64
    (as ``predict``). top: (B, T, H), head_w: (H, K), out: (B, T, K) float64."""
    inline_into_callers()
    T, K = out.shape[1], out.shape[2]
    z = np.empty(K, head_w.dtype)  # (K)
    for b in range(b0, b1):
        for t in range(T):
            h = top[b, t]  # (H)
            for k in range(K):
                z[k] = head_b[k]
            for j in range(h.shape[0]):
                h_j, w_j = h[j], head_w[j]  # (K)
                for k in range(K):
                    z[k] += h_j * w_j[k]
            out_bt = out[b, t]  # (K)
            for k in range(K):
                out_bt[k] = np.float64(z[k]) * scale[k] + shift[k]


@njit(**STEP_KERNEL)
def _lstm_stream_block(s, b0, b1, blas, x, ids, table, weights, layout, h, c, between,
                       lengths, head_w, head_b, scale, shift, out, bad):
    arguments_do_not_alias()
    use_wide_vectors()
    # x: (B, T, F) the chunk, or with a table (V, E) the rows of ids (B, T) written here
    # weights, layout: `StreamKernel`'s packed weights, layout (L, 3, 4) int64
    # h, c: (L, B, H) the state, carried in place; between: (2, B, T, H) layer outputs
    # out: (B, T, K) float64 head values; bad: (1,) set when the chunk cannot be read
    if not _chunk_rows(x, ids, table, bad, b0, b1):
        return
    for k in range(layout.shape[0]):
        inputs = x if k == 0 else between[(k - 1) % 2]  # (B, T, F) or (B, T, H)
        _lstm_inference_shard(s, b0, b1, blas, inputs, _panels(weights, layout[k, 0]),
                              lengths, False, h[k], c[k], between[k % 2], 0)
    _head_rows(between[(layout.shape[0] - 1) % 2], b0, b1, head_w, head_b, scale, shift,
               out)


@njit(**STEP_KERNEL)
def _gru_stream_block(s, b0, b1, blas, x, ids, table, weights, layout, h, c, between,
                      lengths, head_w, head_b, scale, shift, out, bad):
    arguments_do_not_alias()
    use_wide_vectors()
    # as `_lstm_stream_block`; layout[k] holds the three parts of `gru_panels`, c is unused
    if not _chunk_rows(x, ids, table, bad, b0, b1):
        return
    for k in range(layout.shape[0]):
        inputs = x if k == 0 else between[(k - 1) % 2]  # (B, T, F) or (B, T, H)
        _gru_inference_shard(s, b0, b1, blas, inputs, _panels(weights, layout[k, 0]),
                             _panels(weights, layout[k, 1]), _panels(weights, layout[k, 2]),
                             lengths, False, h[k], between[k % 2], 0)
    _head_rows(between[(layout.shape[0] - 1) % 2], b0, b1, head_w, head_b, scale, shift,
               out)


@njit(**STEP_KERNEL)
def _rnn_stream_block(s, b0, b1, blas, x, ids, table, weights, layout, h, c, between,
                      lengths, head_w, head_b, scale, shift, out, bad):
    arguments_do_not_alias()
    use_wide_vectors()
    # as `_lstm_stream_block`; layout[k, 0] is `pack_panels` of w_cat (F+H+1, H), c is unused
    if not _chunk_rows(x, ids, table, bad, b0, b1):
        return
    for k in range(layout.shape[0]):
        inputs = x if k == 0 else between[(k - 1) % 2]  # (B, T, F) or (B, T, H)
        _rnn_inference_shard(s, b0, b1, blas, inputs, _panels(weights, layout[k, 0]),
                             lengths, False, h[k], between[k % 2], 0)
    _head_rows(between[(layout.shape[0] - 1) % 2], b0, b1, head_w, head_b, scale, shift,
               out)


_BLOCKS = {"lstm": _lstm_stream_block, "gru": _gru_stream_block, "rnn": _rnn_stream_block}


def _layer_parts(cell, w_ih, w_hh, b_ih, b_hh):
    """The packed panels of one layer's step products, as the inference sweeps pack them."""
    if cell == "gru":
        return gru_panels(w_ih, w_hh, b_ih, b_hh)
    w_cat = stack_weights(w_ih, w_hh, b_ih, b_hh)  # (F+H+1, GH)
    return (gate_panels(w_cat),) if cell == "lstm" else (pack_panels(w_cat),)


def _pack_layers(cell, layers, dtype):
    """All layers' panels in one 64-byte aligned buffer: ``(weights, layout)``,
    layout (L, 3, 4) int64 holding each part's (offset, P, K, width)."""
    parts = [_layer_parts(cell, *params) for params in layers]
    align = _ALIGN_BYTES // np.dtype(dtype).itemsize
    layout = np.zeros((len(layers), 3, 4), np.int64)
    size = 0
    for k, layer_parts in enumerate(parts):
        for i, panels in enumerate(layer_parts):
            layout[k, i] = (size, *panels.shape)
            size += -(-panels.size // align) * align
    weights = aligned_empty((max(size, 1),), dtype)
    for k, layer_parts in enumerate(parts):
        for i, panels in enumerate(layer_parts):
            offset = layout[k, i, 0]
            weights[offset:offset + panels.size] = panels.ravel()
    return weights, layout


class StreamKernel:
    """A unidirectional network's forward for streams: its weights packed once,
    then one call per chunk for all layers and the head.

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}
        The recurrent cell.
    layers : list of tuple of ndarray
        ``(W_ih, W_hh, b_ih, b_hh)`` of each layer, PyTorch's shapes.
    head_weight : ndarray of shape (H, K)
        The linear head on the top layer's hidden state.
    head_bias : ndarray of shape (K,)
        Its bias.
    scale, shift : array-like of shape (K,) or scalar
        The head's outputs are returned as ``z * scale + shift`` in float64.
    embedding : ndarray of shape (V, E) or None
        The token table, when chunks are token ids.
    n_streams : int
        Rows of every chunk.
    """

    def __init__(self, cell, layers, head_weight, head_bias, scale, shift, embedding,
                 n_streams):
        dtype = head_weight.dtype
        self._block = _BLOCKS[cell]
        self._weights, self._layout = _pack_layers(cell, layers, dtype)
        self._head_weight = np.ascontiguousarray(head_weight)
        self._head_bias = np.ascontiguousarray(head_bias)
        K = head_bias.shape[0]
        self._scale = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, np.float64), (K,)))
        self._shift = np.ascontiguousarray(np.broadcast_to(np.asarray(shift, np.float64), (K,)))
        self._table = (np.empty((0, 1), dtype) if embedding is None
                       else np.ascontiguousarray(embedding))
        self._no_ids = np.empty((0, 0), np.int64)
        self._no_cell_state = np.empty((0, 0, 0), dtype)
        self._blas = gemm_address(dtype)
        H = layers[0][1].shape[1]
        self._hidden_size = H
        self._dtype = np.dtype(dtype)
        if cell == "rnn":
            self._bounds = shard_bounds(n_streams)
        else:
            self._bounds = sweep_bounds(n_streams, 4 * H, self._dtype.itemsize)
        self._bad = np.zeros(1, np.int64)
        self._scratch_steps = None  # the chunk length the scratch arrays are for
        self._scratch = None

    @property
    def parallel(self):
        """Whether a chunk runs as several blocks of rows (a parallel region:
        callers hold Numba's threads and the launch lock)."""
        return len(self._bounds) > 2

    def _scratch_for(self, B, T):
        """(between (2, B, T, H), lengths (B,), embedded (B, T, E) or None) for a
        chunk of T steps, kept from the last call of the same length."""
        if self._scratch_steps != T:
            between = np.empty((2, B, T, self._hidden_size), self._dtype)
            lengths = np.full(B, T, np.int64)
            embedded = None
            if self._table.shape[0] > 0:
                embedded = np.empty((B, T, self._table.shape[1]), self._dtype)
            self._scratch, self._scratch_steps = (between, lengths, embedded), T
        return self._scratch

    def run(self, data, h, c):
        """Advance the state over a chunk.

        Parameters
        ----------
        data : ndarray of shape (B, T, F) of the network's dtype, or (B, T) int64
            The chunk (token ids with an embedding), C-contiguous.
        h : ndarray of shape (L, B, H)
            The hidden state of every layer, advanced in place.
        c : ndarray of shape (L, B, H) or None
            The LSTM's cell state, advanced in place (None for the other cells).

        Returns
        -------
        ndarray of shape (B, T, K), float64, or None
            The head's values at every step; None when a value of the chunk
            cannot be read (not finite, or an id outside the table), and then
            the state is unchanged.
        """
        B, T = data.shape[0], data.shape[1]
        between, lengths, embedded = self._scratch_for(B, T)
        if embedded is None:
            x, ids = data, self._no_ids
        else:
            x, ids = embedded, data
        out = np.empty((B, T, self._head_bias.shape[0]), np.float64)
        self._bad[0] = 0
        arguments = (self._blas, x, ids, self._table, self._weights, self._layout, h,
                     self._no_cell_state if c is None else c, between, lengths,
                     self._head_weight, self._head_bias, self._scale, self._shift, out, self._bad)
        if self.parallel:
            run_blocks(self._block, self._bounds, *arguments)
        else:
            self._block(0, 0, B, *arguments)
        return None if self._bad[0] else out
