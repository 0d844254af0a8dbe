"""Compile every CUDA kernel to PTX for compute capability 9.0 (run as a script).

Also checks that the float32 kernels do float32 arithmetic only. Exits 77 when
the CUDA compiler library (libNVVM) is missing; needs no GPU or driver.
"""
import sys

from numba import boolean, cuda, float32, float64, int64

from nlstm.kernels import cuda as kernels
from nlstm.kernels.plumbing import cuda_arrays as plumbing
from nlstm.kernels.plumbing import cuda_device as device


def signatures(f):
    """Each kernel's Python function and argument types for element type ``f``."""
    v1, c2, c3, a2 = f[::1], f[:, ::1], f[:, :, ::1], f[:, :]
    lengths = int64[::1]
    return {
        "matmul": (device.matmul_kernel(str(f)).py_func, (a2, a2, v1, a2, boolean, boolean)),
        "column_sums": (device.column_sums_kernel(str(f)).py_func, (a2, v1)),
        "reverse_within_lengths": (kernels._reverse_within_lengths_kernel.py_func,
                                   (c3, lengths, c3)),
        "zero_after_lengths": (kernels._zero_after_lengths_kernel.py_func, (c3, lengths)),
        "lstm_forward_sweep": (kernels._lstm_forward_sweep_kernel(str(f)).py_func,
                               (a2, lengths, c3, c3, c3)),
        "lstm_inference_sweep": (kernels._lstm_inference_sweep_kernel(str(f)).py_func,
                                 (c3, a2, lengths, boolean, a2, a2, c3, c3, int64)),
        "lstm_backward_sweep": (kernels._lstm_backward_sweep_kernel(str(f)).py_func,
                                (c3, a2, lengths, c3, c3, c3, a2, a2)),
        "rnn_forward_sweep": (kernels._rnn_forward_sweep_kernel.py_func, (c3, a2, lengths, c3)),
        "gru_stack": (kernels._gru_stack_kernel(str(f)).py_func, (c2, c2, v1, v1, c2)),
        "gru_recurrent": (kernels._gru_recurrent_kernel(str(f)).py_func, (c2, c2)),
        "gru_forward_sweep": (kernels._gru_forward_sweep_kernel(str(f)).py_func,
                              (a2, lengths, c3, c3)),
        "gru_inference_sweep": (kernels._gru_inference_sweep_kernel(str(f)).py_func,
                                (c3, a2, lengths, boolean, a2, c3, c3, int64)),
        "gru_backward_sweep": (kernels._gru_backward_sweep_kernel(str(f)).py_func,
                               (c3, c2, lengths, c3, c3, c3, c3, c2, c2)),
        "rnn_backward_sweep": (kernels._rnn_backward_sweep_kernel(str(f)).py_func,
                               (c3, a2, lengths, c3, c3, a2)),
        # nlstm.kernels.plumbing.cuda_arrays: the array plumbing of device-resident training
        "fill": (device.fill_kernel.py_func, (v1, f)),
        "swap_leading_axes": (plumbing._swap_leading_axes_kernel.py_func, (c3, c3)),
        "copy_columns": (plumbing._copy_columns_kernel.py_func, (c3, int64, c3, int64, int64)),
        "stack_weights": (plumbing._stack_weights_kernel.py_func, (c2, c2, v1, v1, c2)),
        "final_features": (plumbing._final_features_kernel.py_func, (c3, int64, c2, boolean)),
        "add": (plumbing._add_kernel.py_func, (v1, v1)),
        "multiply": (plumbing._multiply_kernel.py_func, (v1, v1)),
        "dropout_mask": (plumbing._dropout_mask_kernel(str(f)).py_func,
                         (int64, int64, int64, f, v1)),
        "embedding_lookup": (plumbing._embedding_lookup_kernel.py_func, (c2, int64[:, ::1], c3)),
        "embedding_grad": (plumbing._embedding_grad_kernel.py_func,
                           (int64[:, ::1], lengths, c3, c2)),
        "partial_sum_squares": (plumbing._partial_sum_squares_kernel(str(f)).py_func,
                                (v1, v1, boolean, v1)),
        "add_l2_grad": (plumbing._add_l2_grad_kernel.py_func, (v1, v1, v1, f)),
        "scale": (plumbing._scale_kernel.py_func, (v1, f)),
        "sgd_step": (plumbing._sgd_step_kernel.py_func, (v1, v1, v1, f, f)),
        "adam_step": (plumbing._adam_step_kernel.py_func, (v1, v1, v1, v1) + (f,) * 7),
    }


CC = (9, 0)


def compile_device_functions_without_a_driver():
    """numba 0.68's built-in CUDA target compiles a device function (here
    the grid group of ``cuda.cg.this_grid()``, which the persistent sweeps
    call) for the current device's compute capability, and asking for it
    needs a CUDA driver. Where there is none, it is given the capability
    compiled for here. (numba-cuda 0.30 compiled all the kernels on a GPU
    machine without this.)"""
    from numba.cuda import dispatcher
    try:
        dispatcher.get_current_device().compute_capability  # noqa: B018 (raises without a GPU)
    except Exception:  # no driver or no device; the error types differ by version

        class TargetDevice:
            compute_capability = CC

        dispatcher.get_current_device = TargetDevice


def main():
    compile_device_functions_without_a_driver()
    compiled = 0
    for f in (float32, float64):
        for name, (function, signature) in signatures(f).items():
            try:
                ptx, _ = cuda.compile_ptx(function, signature, cc=CC)
            except Exception as error:  # the library's own error types differ by version
                if "nvvm" in str(error).lower():
                    print(f"SKIP {type(error).__name__}: {str(error).splitlines()[0]}")
                    return 77
                raise
            assert ".target sm_90" in ptx, name
            # float32 kernels must not fall back to float64 arithmetic (a bare
            # float literal does that; on most GPUs float64 is 2-64x slower)
            assert f is float64 or ".f64" not in ptx, f"{name}: float64 ops in the float32 PTX"
            compiled += 1
    print(f"compiled {compiled}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
