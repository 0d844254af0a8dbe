"""Compile every CUDA kernel to PTX for compute capability 9.0 (run as a script).

Also checks that the float32 kernels do float32 arithmetic only. Exits 77 when
the CUDA compiler library (libNVVM) is missing; needs no GPU or driver.
"""
import sys

from numba import boolean, cuda, float32, float64, int64

from nlstm.kernels import cuda as kernels


def signatures(f):
    """Each kernel's Python function and argument types for element type ``f``."""
    v1, c2, c3, a2 = f[::1], f[:, ::1], f[:, :, ::1], f[:, :]
    lengths = int64[::1]
    return {
        "matmul": (kernels._matmul_kernel(str(f)).py_func, (a2, a2, v1, a2, boolean, boolean)),
        "column_sums": (kernels._column_sums_kernel(str(f)).py_func, (a2, v1)),
        "reverse_within_lengths": (kernels._reverse_within_lengths_kernel.py_func, (c3, lengths, c3)),
        "zero_after_lengths": (kernels._zero_after_lengths_kernel.py_func, (c3, lengths)),
        "lstm_step_forward": (kernels._lstm_step_forward_kernel(str(f)).py_func,
                              (int64, c2, c3, lengths, a2, a2, a2, a2, c3)),
        "lstm_step_backward": (kernels._lstm_step_backward_kernel(str(f)).py_func,
                               (int64, c3, a2, a2, lengths, c3, c3, c3)),
        "take_recurrent_grad": (kernels._take_recurrent_grad_kernel.py_func, (int64, c2, lengths, a2)),
        "rnn_step_forward": (kernels._rnn_step_forward_kernel.py_func, (int64, c2, c3, lengths, c3)),
        "rnn_step_backward": (kernels._rnn_step_backward_kernel(str(f)).py_func,
                              (int64, c3, a2, lengths, c3, c3)),
    }


def main():
    compiled = 0
    for f in (float32, float64):
        for name, (function, signature) in signatures(f).items():
            try:
                ptx, _ = cuda.compile_ptx(function, signature, cc=(9, 0))
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
