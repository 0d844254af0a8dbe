"""The low-level CUDA pieces that `nlstm.kernels.cuda` (the cell sweeps) and
`nlstm.kernels.plumbing.cuda_arrays` (the array plumbing) both build on: launch geometry,
kernels built per dtype, the tiled GEMM, column sums, zero fill, and the
host/device edges of a call. It imports neither of them.

Importing this module needs ``numba.cuda`` (the ``numba-cuda`` package, or the
CUDA simulator: ``NUMBA_ENABLE_CUDASIM=1``).
"""

import numpy as np
from numba import config, cuda, from_dtype

# The simulator runs every GPU thread as a Python thread: smaller blocks there
# keep the CI checks quick (and make the GEMM loop over several tiles).
TILE = 4 if config.ENABLE_CUDASIM else 16          # edge of the GEMM's square tiles
ELEMENTWISE = 32 if config.ENABLE_CUDASIM else 128  # threads per element-wise block


def per_dtype(factory):
    """Build ``factory(scalar)``'s kernel once per dtype, where ``scalar`` is
    the NumPy scalar type (``np.float32``, ``np.float64``). Kernels make their
    constants with it, so that float32 kernels do float32 arithmetic only (a
    bare ``1.0`` is a float64 literal, which turns the whole expression into
    float64 arithmetic on the GPU)."""
    built = {}

    def kernel_for(dtype):
        dtype = np.dtype(dtype)
        if dtype not in built:
            built[dtype] = factory(dtype.type)
        return built[dtype]

    kernel_for.__doc__ = factory.__doc__
    return kernel_for


# --------------------------------------------------------------------------
# Tiled GEMM: out = op(a) @ b (+ bias)
# --------------------------------------------------------------------------
@per_dtype
def matmul_kernel(scalar):
    """The tiled GEMM kernel ``out = op(a) @ b (+ bias)``."""
    numba_type = from_dtype(np.dtype(scalar))

    @cuda.jit
    def kernel(a, b, bias, out, transpose_a, add_bias):
        # a: (N, K), or (K, N) read as its transpose; b: (K, M); out: (N, M)
        a_tile = cuda.shared.array((TILE, TILE), numba_type)
        b_tile = cuda.shared.array((TILE, TILE), numba_type)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        n_rows, n_cols = out.shape[0], out.shape[1]
        depth = b.shape[0]
        acc = numba_type(0.0)
        for k0 in range(0, depth, TILE):
            ka, kb = k0 + tx, k0 + ty
            if row < n_rows and ka < depth:
                a_tile[ty, tx] = a[ka, row] if transpose_a else a[row, ka]
            else:
                a_tile[ty, tx] = 0.0
            if col < n_cols and kb < depth:
                b_tile[ty, tx] = b[kb, col]
            else:
                b_tile[ty, tx] = 0.0
            cuda.syncthreads()
            for k in range(TILE):
                acc += a_tile[ty, k] * b_tile[k, tx]
            cuda.syncthreads()
        if row < n_rows and col < n_cols:
            if add_bias:
                acc += bias[col]
            out[row, col] = acc

    return kernel


def gemm(a, b, out, bias=None, transpose_a=False):
    """``out[:] = op(a) @ b (+ bias)`` on device arrays."""
    n_rows, n_cols = out.shape
    grid = ((n_cols + TILE - 1) // TILE, (n_rows + TILE - 1) // TILE)
    bias_arg = bias if bias is not None else out[0]  # unread when there is no bias
    matmul_kernel(out.dtype)[grid, (TILE, TILE)](
        a, b, bias_arg, out, transpose_a, bias is not None)


def on_device(array):
    """True for numba device arrays (real or simulated), False for NumPy arrays."""
    return hasattr(array, "copy_to_host")


def to_device(array):
    """``array`` on the GPU (a device array is returned as it is)."""
    return array if on_device(array) else cuda.to_device(np.ascontiguousarray(array))


def blocks_for(n):
    """Blocks of `ELEMENTWISE` threads for ``n`` elements."""
    return (n + ELEMENTWISE - 1) // ELEMENTWISE


# --------------------------------------------------------------------------
# Host/device edges
# --------------------------------------------------------------------------
class Edges:
    """Copies NumPy arguments to the device once and results back at the end."""

    def __init__(self):
        self._copy_back = []

    def input(self, array):
        return to_device(array)

    def input_or_zeros(self, array, shape, dtype):
        """`input`, or for None device zeros of ``shape`` (the CPU kernels'
        "no output gradient")."""
        if array is None:
            return zeros(shape, dtype)
        return self.input(array)

    def output(self, array, read=False):
        """A device array for ``array``; a host array is copied back by `finish`.
        Its contents are copied in only if the kernels ``read`` them too."""
        if on_device(array):
            return array
        device = cuda.to_device(array) if read else cuda.device_array(array.shape, array.dtype)
        self._copy_back.append((device, array))
        return device

    def finish(self):
        for device, host in self._copy_back:
            host[...] = device.copy_to_host()


@per_dtype
def column_sums_kernel(scalar):
    """Column sums, one thread per column, rows in order."""
    zero = scalar(0)

    @cuda.jit
    def kernel(x, out):
        # x: (N, M), out: (M,)
        m = cuda.grid(1)
        if m < out.shape[0]:
            acc = zero
            for r in range(x.shape[0]):
                acc += x[r, m]
            out[m] = acc

    return kernel


@cuda.jit
def fill_kernel(x, value):
    # x: (N,)
    i = cuda.grid(1)
    if i < x.shape[0]:
        x[i] = value


def flat_view(array):
    """The flat (N,) view of a C-contiguous device array."""
    return array.reshape(array.size)


def zeros(shape, dtype):
    """A device array of zeros."""
    out = cuda.device_array(shape, dtype)
    if out.size:
        fill_kernel[blocks_for(out.size), ELEMENTWISE](flat_view(out), np.dtype(dtype).type(0))
    return out
