"""The kernels' matrix product (`nlstm.kernels.codegen.blas.gemm`) against NumPy, for
every operand layout the kernels pass, through both BLAS it may call."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from nlstm.kernels.codegen.blas import (
    _scipy_address,
    aligned,
    aligned_empty,
    gemm,
    gemm_address,
    routines,
)


@njit
def _product(blas, a, b, out):
    gemm(blas, a, b, out)


@njit
def _product_of_transpose(blas, a_t, b, out):
    gemm(blas, a_t.T, b, out)  # a_t.T: columns contiguous, as in the weight gradients


@njit
def _product_of_rows(blas, a, b, out, r0, r1):
    gemm(blas, a[r0:r1], b, out[r0:r1])  # row blocks, as in the sweeps


def _addresses(dtype):
    return {"kernels": gemm_address(dtype),
            "scipy": _scipy_address("sgemm" if dtype == np.float32 else "dgemm")}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 7, 3), (64, 41, 128), (1, 4, 8), (3, 1, 5), (4, 6, 1),
                                   (2, 0, 3)])
def test_gemm_matches_numpy_for_each_layout(dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, blas in _addresses(dtype).items():
        for b_layout in (b, np.asfortranarray(b)):
            out = np.full((m, n), np.nan, dtype)  # K = 0 must still write zeros
            _product(blas, a, b_layout, out)
            np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=name)
        out = np.full((m, n), np.nan, dtype)
        _product_of_transpose(blas, np.ascontiguousarray(a.T), b, out)
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=name)


def test_gemm_writes_only_its_rows():
    a = np.arange(60, dtype=np.float32).reshape(10, 6)
    b = np.ones((6, 4), np.float32)
    out = np.zeros((10, 4), np.float32)
    _product_of_rows(gemm_address(np.float32), a, b, out, 3, 8)
    np.testing.assert_array_equal(out[3:8], a[3:8] @ b)
    assert not out[:3].any() and not out[8:].any()


@pytest.mark.slow  # starts a process
def test_kernels_use_the_openblas_wheel_when_installed_without_importing_it():
    """With ``scipy-openblas32`` installed (a dependency where it has wheels)
    the kernels call its library, loaded privately: importing its package
    would load it into the process's global symbol scope."""
    if importlib.util.find_spec("scipy_openblas32") is None:
        assert routines()["source"] == "scipy.linalg.cython_blas"
        return
    assert "scipy_openblas32" in routines()["source"]
    code = ("import sys, nlstm, nlstm.kernels.codegen.blas as b; "
            "print('scipy_openblas32' in sys.modules, "
            "'scipy_openblas32' in b.routines()['source'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "True"]


def _misaligned(shape, dtype, offset):
    """A C-contiguous array whose data starts ``offset`` bytes past a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = np.empty(nbytes + 128, np.uint8)
    start = -buffer.ctypes.data % 64 + offset
    array = buffer[start:start + nbytes].view(dtype).reshape(shape)
    array[...] = np.arange(array.size).reshape(shape)
    return array


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(69, 256), (7,), (0, 3), (1, 1)])
def test_aligned_empty_starts_on_a_64_byte_boundary(dtype, shape):
    array = aligned_empty(shape, dtype)
    assert array.size == 0 or array.ctypes.data % 64 == 0  # an empty array has no data
    assert array.shape == shape and array.dtype == dtype and array.flags.c_contiguous
    assert array.flags.writeable and array.flags.aligned


@pytest.mark.parametrize("offset", [0, 16, 32, 48])
def test_aligned_copies_only_misaligned_weights_and_keeps_their_order(offset):
    w = _misaligned((69, 256), np.float32, offset)
    result = aligned(w)
    assert result.ctypes.data % 64 == 0 and result.flags.c_contiguous
    np.testing.assert_array_equal(result, w)
    assert (result is w) == (offset == 0)
    w_t = aligned(w.T)  # the .T of a C array stays F-ordered: the kernels' types do not change
    assert w_t.ctypes.data % 64 == 0 and w_t.flags.f_contiguous
    np.testing.assert_array_equal(w_t, w.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacked_weights_are_aligned_so_the_sweeps_do_not_copy_them(dtype):
    from nlstm.kernels.plumbing.cpu_arrays import stack_weights
    F, H = 3, 8
    w_ih, w_hh = _misaligned((4 * H, F), dtype, 16), _misaligned((4 * H, H), dtype, 48)
    b_ih, b_hh = np.arange(4 * H, dtype=dtype), np.ones(4 * H, dtype)
    stacked = stack_weights(w_ih, w_hh, b_ih, b_hh)
    assert stacked.ctypes.data % 64 == 0 and stacked.flags.c_contiguous
    assert aligned(stacked) is stacked
    np.testing.assert_array_equal(stacked, np.concatenate([w_ih.T, w_hh.T, (b_ih + b_hh)[None]]))
