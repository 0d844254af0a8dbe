"""The functions a device's two modules must define, with the same parameters.

The layer, the network and the optimizers reach the kernels only through these
names, on the modules `nlstm._device` picks: `KERNELS` on `nlstm.kernels.cpu`
or `nlstm.kernels.cuda` (the recurrent sweeps and the products around them),
`ARRAYS` on `nlstm.kernels.plumbing.cpu_arrays` or `nlstm.kernels.plumbing.cuda_arrays` (the
plumbing between kernels). A new device is a new pair of modules with these
functions; `missing` names what one lacks.
"""
import inspect

KERNELS = (
    "matmul_rows", "weight_grads", "reverse_within_lengths", "zero_after_lengths",
    "lstm_forward_sweep", "lstm_inference_sweep", "lstm_backward_sweep", "lstm_backward",
    "gru_forward_sweep", "gru_inference_sweep", "gru_backward",
    "rnn_forward_sweep", "rnn_backward_sweep",
)

ARRAYS = (
    # host/device edges and allocation
    "to_device", "to_host", "empty", "zeros", "copy", "assign",
    # layout
    "swap_leading_axes", "take_columns", "concat_columns", "stack_weights", "final_features",
    "final_state_grad",
    # embedding and head
    "embedding_lookup", "embedding_grad", "linear", "linear_grads",
    # element-wise, dropout and reductions
    "add_into", "multiply", "multiply_into", "scale_into", "dropout_mask", "sum_squares",
    "masked_sum_squares", "add_l2_grad",
    # optimizer steps
    "sgd_step", "adam_step",
)


def parameters(function):
    """The parameter names of a Python or Numba-compiled function."""
    return list(inspect.signature(getattr(function, "py_func", function)).parameters)


def missing(module, names, reference=None):
    """The names of ``names`` that ``module`` does not define as a function, or
    defines with other parameters than ``reference`` (a module) does."""
    wrong = []
    for name in names:
        function = getattr(module, name, None)
        if not callable(function):
            wrong.append(name)
        elif reference is not None and parameters(function) != parameters(getattr(reference, name)):
            wrong.append(name)
    return wrong
