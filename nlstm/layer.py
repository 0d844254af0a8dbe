"""``nlstm.LSTM``: a stacked, optionally bidirectional LSTM or tanh-RNN layer.

NumPy in, NumPy out, with PyTorch's parameter names, shapes and semantics
(batch-first input, packed-sequence handling of ragged lengths). The compute is
in `nlstm.kernels.cpu` (or `nlstm.kernels.cuda`, same functions, for
``device="cuda"``); this module validates arguments, lays data out time-major
for training (prediction stays batch-first), and chains layers and directions.
"""
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import check_random_state

from . import _init
from ._device import DEVICES, arrays_for, check_device, device_copies, kernels_for
from ._threads import kernel_threads, launch_lock
from ._validation import (
    CELLS,
    DTYPES,
    as_float_array,
    check_bool,
    check_choice,
    check_float,
    check_forget_bias,
    check_int,
    check_lengths,
    finite_within_lengths,
)


@dataclass
class DirectionActivations:
    """What the forward sweep of one layer direction keeps for its backward,
    on the layer's device, time-major."""
    inputs: object        # (T, B, F) the sweep's input (reversed within lengths for d = 1)
    hs: object            # (T+1, B, H) hidden states; hs[0] the initial state
    cs: object = None     # (T+1, B, H) cell states (LSTM)
    gates: object = None  # (T, B, 4H) LSTM: gates i, f, g, o; GRU: r, z, n, W_hn h + b_hn


@dataclass
class Activations:
    """What a training `LSTM.forward_on_device` keeps for `LSTM.backward_on_device`."""
    shape: tuple    # (B, T)
    lengths: object  # (B,) int64, on the layer's device
    layers: list = field(default_factory=list)  # [k][d]: DirectionActivations
    dropout_masks: list = field(default_factory=list)  # [k]: mask on layer k's output, or None


class LSTM:
    """Multi-layer LSTM (or tanh RNN) with a NumPy interface.

    Parameters
    ----------
    input_size : int
        Features per timestep.
    hidden_size : int
        Units per direction.
    num_layers : int, default=1
        Stacked layers; each takes the previous one's output sequence.
    bidirectional : bool, default=False
        Add a direction that reads each sequence from its own end.
    dropout : float in [0, 1), default=0.0
        Dropout on the outputs of every layer but the last, in training only
        (with one layer it has no effect, and a warning says so).
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        ``"gru"`` is ``torch.nn.GRU`` (gates r, z, n); ``"rnn"`` is a plain
        ``tanh`` RNN, as ``torch.nn.RNN``.
    forget_bias : float or "chrono", default=1.0
        Starting bias of the gate that keeps the state: the LSTM's forget gate,
        the GRU's update gate z (``h' = z * h + (1 - z) * n``); the RNN has
        none. A number added to PyTorch's uniform initialisation, or
        ``"chrono"`` initialisation, which needs ``chrono_max``. Only the
        starting point changes, never the math (``forget_bias=0`` starts
        from PyTorch's initialisation).
    chrono_max : float, optional
        Longest time scale for ``forget_bias="chrono"``.
    dtype : {"float32", "float64"}, default="float32"
    device : {"cpu", "cuda"}, default="cpu"
        Where the kernels run. ``"cuda"`` runs the `nlstm.kernels.cuda`
        kernels (same results within float tolerance); it needs numba-cuda and
        a GPU, and says which is missing. The parameters' home is the host;
        a `forward` or `backward` call copies them to the GPU once and its
        results back. Inside `resident` they stay on the GPU across calls
        (the estimators train that way).
    random_state : int, RandomState or None
        Seeds initialisation and dropout.

    Attributes
    ----------
    num_directions : int
        2 if bidirectional else 1.
    d_initial_state : tuple or ndarray
        After `backward`: gradient w.r.t. the initial state, ``(d_h_0, d_c_0)``
        for an LSTM and ``d_h_0`` for an RNN, each ``(num_layers*D, B, H)``.

    Examples
    --------
    >>> import numpy as np
    >>> from nlstm import LSTM
    >>> layer = LSTM(3, 8, num_layers=2, random_state=0)
    >>> out, (h_n, c_n) = layer.forward(np.ones((4, 5, 3)), lengths=[5, 3, 2, 1])
    >>> out.shape, h_n.shape
    ((4, 5, 8), (2, 4, 8))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False,
                 dropout=0.0, cell="lstm", forget_bias=1.0, chrono_max=None,
                 dtype="float32", device="cpu", random_state=None):
        self.input_size = check_int(input_size, "input_size", min_val=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", min_val=1)
        self.num_layers = check_int(num_layers, "num_layers", min_val=1)
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.dropout = check_float(dropout, "dropout", min_val=0, max_val=1,
                                   include_boundaries="left")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout acts between stacked layers only, so dropout={dropout} has "
                          f"no effect with num_layers=1 (as in torch.nn.LSTM)", UserWarning,
                          stacklevel=2)
        self.cell = check_choice(cell, "cell", CELLS)
        self.dtype = check_choice(dtype, "dtype", DTYPES)
        self.forget_bias = check_forget_bias(forget_bias, chrono_max, DTYPES[self.dtype])
        self.chrono_max = chrono_max
        self.device = check_choice(device, "device", DEVICES)
        check_device(self.device)
        self._np_dtype = DTYPES[self.dtype]
        self._rng = check_random_state(random_state)
        self.num_directions = 2 if self.bidirectional else 1
        self._n_gates = CELLS[self.cell]
        self._flat, self._params = self._allocate(self._np_dtype)
        _init.uniform_init(self._params, self.hidden_size, self._rng)
        if self.cell in ("lstm", "gru"):
            _init.apply_forget_bias(self._params, self.hidden_size, self.forget_bias,
                                    self.chrono_max, self._rng, self.cell)
        self._cache = None
        self._workspace = {}  # arrays reused from call to call (`_buffer`)
        self._resident = None  # (flat, named views) on the device, inside `resident`
        self.d_initial_state = None

    def __repr__(self):
        defaults = {"num_layers": 1, "bidirectional": False, "dropout": 0.0, "cell": "lstm",
                    "forget_bias": 1.0, "chrono_max": None, "dtype": "float32",
                    "device": "cpu"}
        changed = [f"{name}={getattr(self, name)!r}" for name, default in defaults.items()
                   if getattr(self, name) != default]
        return f"LSTM({', '.join([str(self.input_size), str(self.hidden_size)] + changed)})"

    # ------------------------------------------------------------------
    # parameters
    # ------------------------------------------------------------------
    def _param_shapes(self):
        """PyTorch's names and shapes, in ``torch.nn.LSTM.state_dict()`` order."""
        GH, H = self._n_gates * self.hidden_size, self.hidden_size
        shapes = {}
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else H * self.num_directions
            for suffix in ("", "_reverse")[:self.num_directions]:
                shapes[f"weight_ih_l{k}{suffix}"] = (GH, in_size)
                shapes[f"weight_hh_l{k}{suffix}"] = (GH, H)
                shapes[f"bias_ih_l{k}{suffix}"] = (GH,)
                shapes[f"bias_hh_l{k}{suffix}"] = (GH,)
        return shapes

    def _allocate(self, dtype):
        """One flat buffer and a dict of named views into it."""
        shapes = self._param_shapes()
        flat = np.zeros(sum(math.prod(s) for s in shapes.values()), dtype=dtype)
        return flat, self._named_views(flat, shapes)

    @staticmethod
    def _named_views(flat, shapes):
        """Views of ``flat`` with the given names and shapes, laid end to end.
        Runs for every training batch (the gradients' views): `math.prod`, not
        ``np.prod`` (4 us a call), made a near-empty model's epoch 1.12x faster."""
        views, offset = {}, 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            views[name] = flat[offset:offset + size].reshape(shape)
            offset += size
        return views

    @property
    def flat_parameters(self):
        """All parameters as one 1-d array (a view: writing to it changes the
        layer). Inside `resident` on a GPU: the device copy."""
        return self._flat if self._resident is None else self._resident[0]

    @property
    def arrays(self):
        """The array-plumbing module of this layer's device."""
        return arrays_for(self.device)

    @contextmanager
    def resident(self, write_back=True):
        """Keep the parameters on the layer's device for the block.

        On a GPU the parameters are copied there once on entry; every call in
        the block uses (and an optimizer updates) that copy, and on exit it is
        copied back into the host arrays (unless ``write_back`` is False).
        On the CPU this does nothing. Blocks may nest; the outermost one
        copies. A GPU block holds the process's launch lock, so other Python
        threads wait for it instead of seeing the layer half-moved.

        Parameters
        ----------
        write_back : bool, default=True
            Copy the device's parameters back into the host arrays on exit.
        """
        write_back = check_bool(write_back, "write_back")
        if self.device == "cpu":
            yield
            return
        with launch_lock():
            if self._resident is not None:  # nested
                yield
                return
            with device_copies(self.arrays, [self._flat], write_back) as (flat,):
                self._resident = (flat, self._named_views(flat, self._param_shapes()))
                try:
                    yield
                finally:
                    self._resident = None
                    # no device array outlives the block: on a real GPU one
                    # cannot be deep-copied (partial_fit copies the network)
                    self.d_initial_state = self._initial_state_grad_on_host()

    def _initial_state_grad_on_host(self):
        """`d_initial_state` as NumPy arrays (None stays None)."""
        grad = self.d_initial_state
        if grad is None:
            return None
        if isinstance(grad, tuple):
            return tuple(self.arrays.to_host(g) for g in grad)
        return self.arrays.to_host(grad)

    def _kernel_params(self):
        """Named parameter arrays on the layer's device (callers on a GPU hold
        `resident`)."""
        if self._resident is not None:
            return self._resident[1]
        if self.device != "cpu":
            raise RuntimeError("internal error: GPU parameters used outside LSTM.resident")
        return self._params

    def state_dict(self):
        """Copies of the parameters under PyTorch's names, as NumPy arrays.

        Returns
        -------
        dict of str to ndarray
            ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ... as in
            ``torch.nn.LSTM.state_dict()`` (``_reverse`` for the second direction).
        """
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict):
        """Load parameters from a dict of arrays (PyTorch's names and shapes).

        All entries are checked before any is written, so a bad dict leaves the
        layer unchanged.

        Parameters
        ----------
        state_dict : mapping of str to array-like
            Every parameter of the layer, as `state_dict` gives them (a
            ``torch.nn.LSTM``'s state dict converted to NumPy works as is).
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        expected, given = set(self._params), set(state_dict)
        if expected != given:
            raise ValueError(f"state_dict keys do not match this layer: missing "
                             f"{sorted(expected - given)}, unexpected {sorted(given - expected)}")
        checked = {}
        for name, target in self._params.items():
            value = state_dict[name]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            arr = as_float_array(value, f"state_dict[{name!r}]", self._np_dtype)
            if arr.shape != target.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {arr.shape}, "
                                 f"expected {target.shape}")
            checked[name] = arr
        for name, arr in checked.items():
            self._params[name][...] = arr
        self._cache = None

    # ------------------------------------------------------------------
    # working memory
    # ------------------------------------------------------------------
    def _buffer(self, key, shape):
        """An uninitialised array for one role (``key``), reused by the next
        call that asks for the same role and shape.

        Training allocates the same large activations batch after batch; fresh
        memory costs page faults on first touch (6,500 -> 1,000 per epoch at
        H = 256 and 512 with reuse; 2-10% of an epoch in alternated runs).
        Only internal arrays come from here, never one that is returned to the
        caller.
        """
        key = (self.device, key)
        array = self._workspace.get(key)
        if array is None or array.shape != shape:
            array = self._workspace[key] = self.arrays.empty(shape, self._np_dtype)
        return array

    @property
    def is_resident(self):
        """True inside a `resident` block on a GPU (the parameters are on the device)."""
        return self._resident is not None

    def weight_mask(self):
        """Where an L2 penalty applies: 1 over the weights, 0 over the biases.

        Returns
        -------
        ndarray of shape (n_params,)
            A mask shaped like `flat_parameters`, on the host.
        """
        mask = np.zeros(self._flat.shape, self._np_dtype)
        for name, view in self._named_views(mask, self._param_shapes()).items():
            if name.startswith("weight"):
                view[...] = 1
        return mask

    def discard_activations(self):
        """Drop what the last training forward kept for backward."""
        self._cache = None

    def release_workspace(self):
        """Free the working memory kept between calls (the estimators do this
        at the end of ``fit``); the next call allocates it again."""
        self._workspace = {}
        self._cache = None

    def __getstate__(self):
        # pickles and deep copies leave out the working memory, the activations
        # saved for backward and the named views, which `__setstate__` makes
        # again: copied, they would be arrays of their own, and the kernels
        # would no longer see what an optimizer writes into `flat_parameters`
        state = self.__dict__.copy()
        del state["_params"]
        state["_workspace"], state["_cache"], state["_resident"] = {}, None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._params = self._named_views(self._flat, self._param_shapes())

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def _check_forward_args(self, x, lengths, initial_state, training):
        x = as_float_array(x, "x", self._np_dtype, ndim=3, check_finite=False)
        B, T, F = x.shape
        if B == 0 or T == 0:
            raise ValueError("x must have at least one sequence and one timestep, "
                             f"got shape {x.shape}")
        if F != self.input_size:
            raise ValueError(f"x has {F} features per timestep, but this layer was built "
                             f"with input_size={self.input_size}")
        lengths = check_lengths(lengths, B, T)
        x = finite_within_lengths(x, lengths, "x")
        check_bool(training, "training")
        state_shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if initial_state is None:
            h0 = c0 = None
        elif self.cell == "lstm":
            if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
                raise TypeError("initial_state of an LSTM must be a tuple (h_0, c_0)")
            h0, c0 = (self._check_state(s, n, state_shape)
                      for s, n in zip(initial_state, ("h_0", "c_0")))
        else:
            h0, c0 = self._check_state(initial_state, "h_0", state_shape), None
        return x, lengths, h0, c0

    def _check_state(self, state, name, shape):
        arr = as_float_array(state, f"initial_state {name}", self._np_dtype, ndim=3)
        if arr.shape != shape:
            raise ValueError(f"initial_state {name} must have shape {shape} "
                             f"(num_layers*num_directions, batch, hidden_size), got {arr.shape}")
        return arr

    def forward(self, x, lengths=None, initial_state=None, training=False):
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        x : array-like, shape (B, T, input_size)
            Batch-first input. Values past a sequence's length are ignored.
        lengths : array-like of int, shape (B,), optional
            Valid steps per sequence, in ``[1, T]``; default all ``T``.
        initial_state : optional
            ``(h_0, c_0)`` for an LSTM, ``h_0`` for an RNN, each
            ``(num_layers*D, B, hidden_size)``; default zeros.
        training : bool, default=False
            Apply dropout between layers.

        Returns
        -------
        output : ndarray, shape (B, T, D*hidden_size)
            Last layer's hidden states, zero past each sequence's length.
        state : ``(h_n, c_n)`` for an LSTM, ``h_n`` for an RNN
            Each ``(num_layers*D, B, hidden_size)``, taken at each sequence's
            last valid step (for the reverse direction: after reading step 0).
        """
        x, lengths, h0, c0 = self._check_forward_args(x, lengths, initial_state, training)
        arrays = self.arrays
        with kernel_threads(), launch_lock(), self.resident(write_back=False):
            output, h_n, c_n = (arrays.to_host(a) if a is not None else None for a in
                                self.forward_on_device(x, lengths, h0, c0, training))
        return output, ((h_n, c_n) if self.cell == "lstm" else h_n)

    # ------------------------------------------------------------------
    # the network's face: validated arrays, on the layer's device
    # ------------------------------------------------------------------
    def forward_on_device(self, x, lengths, h0, c0, training, keep_activations=True,
                          want_output=True):
        """Forward on validated arrays, for `nlstm._network` and `forward`.

        Callers hold `kernel_threads` and the launch lock. Host arguments are
        copied to the device first (on the CPU: nothing to do).

        Parameters
        ----------
        x : array of shape (B, T, input_size)
            Checked input, of the layer's dtype.
        lengths : array of shape (B,), int64
            Valid steps per row, each in 1..T.
        h0, c0 : array of shape (num_layers*D, B, hidden_size) or None
            The initial state (None: zeros; ``c0`` LSTM only).
        training : bool
            Apply dropout between layers.
        keep_activations : bool, default=True
            Keep the `Activations` that `backward_on_device` needs.
        want_output : bool, default=True
            Make the (B, T, D*H) output; callers that use only the final
            state skip its batch-first copy.

        Returns
        -------
        output : device array of shape (B, T, D*hidden_size), or None
        h_n, c_n : device arrays of shape (num_layers*D, B, hidden_size)
            The final state (``c_n`` None but for the LSTM).
        """
        if self.cell != "rnn" and not keep_activations and not training:
            return self._inference_forward(x, lengths, h0, c0, want_output)
        kernels = kernels_for(self.device)  # nlstm.kernels.cpu or .cuda
        arrays = self.arrays                # nlstm.kernels.plumbing.cpu_arrays or .cuda_arrays
        B, T, _ = x.shape
        H, D, dtype = self.hidden_size, self.num_directions, self._np_dtype
        state_shape = (self.num_layers * D, B, H)
        h0 = arrays.zeros(state_shape, dtype) if h0 is None else arrays.to_device(h0)
        if self.cell == "lstm":
            c0 = arrays.zeros(state_shape, dtype) if c0 is None else arrays.to_device(c0)
        lengths = arrays.to_device(lengths)
        layer_input = arrays.swap_leading_axes(arrays.to_device(x))  # (T, B, F)
        h_n = arrays.empty(state_shape, dtype)
        c_n = arrays.empty(state_shape, dtype) if self.cell == "lstm" else None
        cache = Activations(shape=(B, T), lengths=lengths)
        for k in range(self.num_layers):
            outputs, saved = [], []
            need_output = want_output or k < self.num_layers - 1
            for d in range(D):
                idx = k * D + d
                inputs = layer_input
                if d == 1:  # the reverse direction reads each sequence from its end
                    inputs = kernels.reverse_within_lengths(
                        layer_input, lengths, arrays.empty(layer_input.shape, dtype))
                state = self._direction_forward(k, d, inputs, lengths, h0[idx],
                                                None if c0 is None else c0[idx],
                                                keep_activations)
                hs = state.hs
                arrays.assign(h_n[idx], hs[T])
                if c_n is not None:
                    arrays.assign(c_n[idx], state.cs[T])
                out = (kernels.zero_after_lengths(arrays.copy(hs[1:]), lengths)
                       if need_output else None)
                if d == 1 and out is not None:
                    out = kernels.reverse_within_lengths(out, lengths,
                                                         arrays.empty(out.shape, dtype))
                outputs.append(out)
                saved.append(state if keep_activations else None)
            if not need_output:
                layer_output = None
            elif D == 1:
                layer_output = outputs[0]
            else:
                layer_output = arrays.concat_columns(outputs)
            if training and self.dropout > 0 and k < self.num_layers - 1:
                mask = arrays.dropout_mask(layer_output.shape, 1.0 - self.dropout, self._rng,
                                           dtype)
                layer_output = arrays.multiply(layer_output, mask)
                cache.dropout_masks.append(mask)
            else:
                cache.dropout_masks.append(None)
            cache.layers.append(saved)
            layer_input = layer_output
        if keep_activations:
            self._cache = cache
        output = arrays.swap_leading_axes(layer_input) if want_output else None
        return output, h_n, c_n  # output: (B, T, D*H)

    def _inference_forward(self, x, lengths, h0, c0, want_output):
        """LSTM and GRU forward for prediction: batch-first throughout and no saved
        activations. Each direction's inference sweep reads the layer input
        (B, T, F) as it is (the reverse direction from each row's end) and
        writes its columns of the layer output (B, T, D*H) in place, so there
        are no time-major or reversed copies; the top layer writes no output
        unless ``want_output``. Same arguments and results as `_forward`."""
        kernels = kernels_for(self.device)
        arrays = self.arrays
        B, T, _ = x.shape
        H, D, dtype = self.hidden_size, self.num_directions, self._np_dtype
        state_shape = (self.num_layers * D, B, H)
        # the sweeps update the state in place: h_n, c_n start as the initial state
        h_n = arrays.zeros(state_shape, dtype) if h0 is None else arrays.copy(arrays.to_device(h0))
        c_n = None
        if self.cell == "lstm":
            c_n = (arrays.zeros(state_shape, dtype) if c0 is None
                   else arrays.copy(arrays.to_device(c0)))
        lengths = arrays.to_device(lengths)
        layer_input = arrays.to_device(x)  # (B, T, F)
        for k in range(self.num_layers):
            last = k == self.num_layers - 1
            layer_output = (arrays.empty((B, T, D * H), dtype) if want_output or not last
                            else None)  # (B, T, D*H)
            for d in range(D):
                idx = k * D + d
                if self.cell == "gru":
                    kernels.gru_inference_sweep(layer_input, *self._direction_params(k, d),
                                                lengths, h_n[idx], layer_output, column=d * H,
                                                reverse=d == 1)
                else:
                    kernels.lstm_inference_sweep(layer_input, self._stacked_weights(k, d),
                                                 lengths, h_n[idx], c_n[idx], layer_output,
                                                 column=d * H, reverse=d == 1)
            layer_input = layer_output
        return layer_input, h_n, c_n  # output: (B, T, D*H) or None

    def _stacked_weights(self, k, d):
        """``[W_ih^T; W_hh^T; b_ih + b_hh]`` of layer k, direction d: (F+H+1, GH)."""
        return self.arrays.stack_weights(*self._direction_params(k, d))

    def _direction_params(self, k, d):
        """``(W_ih, W_hh, b_ih, b_hh)`` of layer k, direction d, on the layer's device."""
        suffix = "_reverse" if d == 1 else ""
        params = self._kernel_params()
        return tuple(params[f"{kind}_l{k}{suffix}"]
                     for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _direction_forward(self, k, d, inputs, lengths, h0, c0, keep=True):
        """Sweep one layer direction. Returns its `DirectionActivations` (kept
        for backward with ``keep``: arrays reused from call to call)."""
        kernels = kernels_for(self.device)  # nlstm.kernels.cpu or .cuda
        arrays = self.arrays
        T, B, F = inputs.shape
        H, G = self.hidden_size, self._n_gates
        # kept for backward: reused from batch to batch; else fresh
        empty = self._buffer if keep else (lambda key, shape: arrays.empty(shape, self._np_dtype))
        hs = empty(("hs", k, d), (T + 1, B, H))  # (T+1, B, H)
        arrays.assign(hs[0], h0)
        if self.cell == "gru":
            gates = empty(("gates", k, d), (T, B, 4 * H))  # (T, B, 4H): r, z, n, W_hn h + b_hn
            kernels.gru_forward_sweep(inputs, *self._direction_params(k, d), lengths, hs, gates)
            return DirectionActivations(inputs, hs, gates=gates)
        w_cat = self._stacked_weights(k, d)  # (F+H+1, GH)
        if self.cell == "lstm":
            cs = empty(("cs", k, d), (T + 1, B, H))  # (T+1, B, H)
            arrays.assign(cs[0], c0)
            gates = empty(("gates", k, d), (T, B, G * H))  # (T, B, GH)
            kernels.lstm_forward_sweep(inputs, w_cat, lengths, hs, cs, gates)
            return DirectionActivations(inputs, hs, cs, gates)
        kernels.rnn_forward_sweep(inputs, w_cat, lengths, hs)
        return DirectionActivations(inputs, hs)

    # ------------------------------------------------------------------
    # backward
    # ------------------------------------------------------------------
    def backward(self, d_output, d_h_n=None, d_c_n=None):
        """Backpropagate through the last `forward` call.

        Parameters
        ----------
        d_output : array-like, shape (B, T, D*hidden_size)
            Gradient of the loss w.r.t. ``output``; entries past a sequence's
            length are ignored (those outputs are constant zeros).
        d_h_n, d_c_n : array-like, shape (num_layers*D, B, hidden_size), optional
            Gradient w.r.t. the final state (``d_c_n``: LSTM only).

        Returns
        -------
        d_x : ndarray, shape (B, T, input_size)
        grads : dict
            Gradient of every parameter, keyed like `state_dict`. The gradient
            w.r.t. the initial state is left in `d_initial_state`.
        """
        if self._cache is None:
            raise RuntimeError("backward needs a preceding forward call on this layer")
        B, T = self._cache.shape
        D, H = self.num_directions, self.hidden_size
        d_output = as_float_array(d_output, "d_output", self._np_dtype, ndim=3,
                                  check_finite=False)
        if d_output.shape != (B, T, D * H):
            raise ValueError(f"d_output must have the forward output's shape {(B, T, D * H)}, "
                             f"got {d_output.shape}")
        d_output = finite_within_lengths(d_output, self.arrays.to_host(self._cache.lengths),
                                         "d_output")
        state_shape = (self.num_layers * D, B, H)
        d_h_n = self._check_state_grad(d_h_n, "d_h_n", state_shape)
        if self.cell == "lstm":
            d_c_n = self._check_state_grad(d_c_n, "d_c_n", state_shape)
        elif d_c_n is not None:
            raise ValueError("d_c_n is only defined for cell='lstm'")
        arrays = self.arrays
        with kernel_threads(), launch_lock(), self.resident(write_back=False):
            d_x, flat_grad = (arrays.to_host(a)
                              for a in self.backward_on_device(d_output, d_h_n, d_c_n))
        self.d_initial_state = self._initial_state_grad_on_host()
        return d_x, self._named_views(flat_grad, self._param_shapes())

    def _check_state_grad(self, value, name, shape):
        if value is None:
            return None
        arr = as_float_array(value, name, self._np_dtype, ndim=3)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        return arr

    def backward_on_device(self, d_output, d_h_n=None, d_c_n=None, want_input_grad=True):
        """Backward on validated arrays, for `nlstm._network` and `backward`.

        Callers hold `kernel_threads` and the launch lock. Arrays are on the
        layer's device (host arguments are copied there first).

        Parameters
        ----------
        d_output : array of shape (B, T, D*hidden_size) or None
            Gradient w.r.t. the output; None is zero (a model using only the
            final state needs no array of zeros transposed and copied).
        d_h_n, d_c_n : array of shape (num_layers*D, B, hidden_size) or None
            Gradient w.r.t. the final state (None: zero; ``d_c_n`` LSTM only).
        want_input_grad : bool, default=True
            Compute ``d_x``; a network whose inputs are data, not trained
            embeddings, skips the first layer's input-gradient GEMM, as
            autograd does.

        Returns
        -------
        d_x : device array of shape (B, T, input_size), or None
        flat_grad : device array of shape (n_params,)
            The gradient of `flat_parameters`.
        """
        kernels = kernels_for(self.device)  # nlstm.kernels.cpu or .cuda
        arrays = self.arrays                # nlstm.kernels.plumbing.cpu_arrays or .cuda_arrays
        cache = self._cache
        lengths = cache.lengths
        B, T = cache.shape
        D, H, dtype = self.num_directions, self.hidden_size, self._np_dtype
        state_shape = (self.num_layers * D, B, H)
        d_h_n = arrays.zeros(state_shape, dtype) if d_h_n is None else arrays.to_device(d_h_n)
        if self.cell == "lstm":
            d_c_n = arrays.zeros(state_shape, dtype) if d_c_n is None else arrays.to_device(d_c_n)
        flat_grad = arrays.zeros(self._flat.shape, dtype)
        grads = self._named_views(flat_grad, self._param_shapes())
        d_h0 = arrays.empty(state_shape, dtype)
        d_c0 = arrays.empty(state_shape, dtype) if d_c_n is not None else None
        if d_output is None:
            d_layer = None  # the sweeps' "no output gradient"
        else:
            d_layer = kernels.zero_after_lengths(
                arrays.swap_leading_axes(arrays.to_device(d_output)), lengths)
        for k in range(self.num_layers - 1, -1, -1):
            in_size = self.input_size if k == 0 else D * H
            need_d_input = k > 0 or want_input_grad
            d_input = arrays.zeros((T, B, in_size), dtype) if need_d_input else None
            for d in range(D):
                idx = k * D + d
                d_out = None if d_layer is None else arrays.take_columns(d_layer, d * H,
                                                                           (d + 1) * H)
                if d == 1 and d_out is not None:
                    d_out = kernels.reverse_within_lengths(d_out, lengths,
                                                           arrays.empty(d_out.shape, dtype))
                d_in = self._direction_backward(
                    k, d, cache.layers[k][d], d_out, d_h_n[idx],
                    None if d_c_n is None else d_c_n[idx], lengths, grads, d_h0, d_c0,
                    need_d_input)
                if not need_d_input:
                    continue
                if d == 1:
                    d_in = kernels.reverse_within_lengths(d_in, lengths,
                                                          arrays.empty(d_in.shape, dtype))
                arrays.add_into(d_input, d_in)
            if k > 0 and cache.dropout_masks[k - 1] is not None:
                arrays.multiply_into(d_input, cache.dropout_masks[k - 1])
            d_layer = d_input
        self.d_initial_state = (d_h0, d_c0) if self.cell == "lstm" else d_h0
        if d_layer is None:
            return None, flat_grad
        return arrays.swap_leading_axes(d_layer), flat_grad

    def _direction_backward(self, k, d, saved, d_out, d_h_n, d_c_n, lengths, grads,
                            d_h0, d_c0, want_input_grad=True):
        """BPTT of one layer direction; fills ``grads`` and returns d(inputs)
        (T, B, F), or None unless ``want_input_grad``."""
        kernels = kernels_for(self.device)  # nlstm.kernels.cpu or .cuda
        arrays = self.arrays
        T, B, F = saved.inputs.shape
        H, GH = self.hidden_size, self._n_gates * self.hidden_size
        suffix = "_reverse" if d == 1 else ""
        idx = k * self.num_directions + d
        w_ih, w_hh, _, _ = self._direction_params(k, d)
        hs = saved.hs
        # (T, B, GH) gradient of the gate pre-activations (the GRU's: of
        # W_ih x + b_ih): the LSTM and the GRU keep it only for the input gradient
        d_pre = (self._buffer("d_pre", (T, B, GH))
                 if want_input_grad or self.cell == "rnn" else None)
        if self.cell == "lstm":  # the sweep and the weight gradients in one
            d_w_ih, d_w_hh, d_b = kernels.lstm_backward(
                d_out, d_h_n, d_c_n, w_hh, lengths, saved.cs, saved.gates,
                saved.inputs, hs, d_pre, d_h0[idx], d_c0[idx])
            d_b_ih = d_b_hh = d_b
        elif self.cell == "gru":  # b_hn sits inside r's product: two bias gradients
            d_w_ih, d_w_hh, d_b_ih, d_b_hh = kernels.gru_backward(
                d_out, d_h_n, w_hh, lengths, hs, saved.gates, saved.inputs, d_pre, d_h0[idx])
        else:
            kernels.rnn_backward_sweep(d_out, d_h_n, w_hh, lengths, hs, d_pre, d_h0[idx])
            d_w_ih, d_w_hh, d_b = kernels.weight_grads(
                d_pre.reshape(T * B, GH), saved.inputs.reshape(T * B, F),
                hs[:-1].reshape(T * B, H))
            d_b_ih = d_b_hh = d_b
        arrays.assign(grads[f"weight_ih_l{k}{suffix}"], d_w_ih)
        arrays.assign(grads[f"weight_hh_l{k}{suffix}"], d_w_hh)
        arrays.assign(grads[f"bias_ih_l{k}{suffix}"], d_b_ih)
        arrays.assign(grads[f"bias_hh_l{k}{suffix}"], d_b_hh)
        if not want_input_grad:
            return None
        d_inputs = arrays.empty((T, B, F), self._np_dtype)
        kernels.matmul_rows(d_pre.reshape(T * B, GH), w_ih, d_inputs.reshape(T * B, F))
        return d_inputs
