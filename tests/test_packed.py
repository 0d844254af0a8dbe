"""The sweeps' step product with packed weights (`nlstm.kernels.codegen.packed`)
against NumPy: every panel and row remainder, both dtypes, the tiles where
the CPU has AVX-512 and the BLAS fallback elsewhere."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from nlstm.kernels.codegen import packed
from nlstm.kernels.codegen.blas import gemm_address
from nlstm.kernels.codegen.packed import pack_panels, packed_gemm

# (M, K, N): rows around the 8-row tiles and their 4/2/1 remainders, widths
# around the 32-column float32 and 16-column float64 panels, the sweeps' shapes
SHAPES = [(1, 1, 1), (3, 5, 7), (8, 16, 32), (15, 9, 33), (16, 41, 128), (13, 66, 250),
          (7, 100, 16), (17, 3, 65), (2, 200, 48), (33, 129, 96)]


@njit
def _product(blas, a, panels, out):
    packed_gemm(blas, a, panels, out)


@njit
def _product_of_rows(blas, a, panels, out, r0, r1):
    packed_gemm(blas, a[r0:r1], panels, out[r0:r1])  # a block's rows, as in the sweeps


def _operands(shape, dtype, seed=0):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_packed_product_matches_numpy(dtype, shape):
    a, w = _operands(shape, dtype)
    out = np.full((shape[0], shape[2]), np.nan, dtype)
    _product(gemm_address(dtype), a, pack_panels(w), out)
    want = a.astype(np.float64) @ w.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)


def test_packed_product_with_no_depth_writes_zeros():
    out = np.full((3, 40), np.nan, np.float32)
    _product(gemm_address(np.float32), np.empty((3, 0), np.float32),
             pack_panels(np.empty((0, 40), np.float32)), out)
    assert not out.any()


def test_packed_product_writes_only_its_rows_and_columns():
    a, w = _operands((10, 6, 40), np.float32)
    out = np.zeros((10, 40), np.float32)
    _product_of_rows(gemm_address(np.float32), a, pack_panels(w), out, 3, 8)
    np.testing.assert_allclose(out[3:8], a[3:8] @ w, rtol=1e-5, atol=1e-5)
    assert not out[:3].any() and not out[8:].any()


@pytest.mark.skipif(not packed.USE_TILES, reason="the tiles run where Numba compiles for AVX-512")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_rows_product_does_not_depend_on_the_rows_around_it(dtype):
    """Each output is one multiply-add chain over k, whichever tile (8, 4, 2
    or 1 rows) computes it: the same bits for a row alone or in a block."""
    a, w = _operands((23, 70, 100), dtype)
    panels, blas = pack_panels(w), gemm_address(dtype)
    whole = np.empty((23, 100), dtype)
    _product(blas, a, panels, whole)
    for r0, r1 in [(0, 1), (5, 6), (22, 23), (3, 10), (1, 20)]:
        part = np.empty((r1 - r0, 100), dtype)
        _product(blas, a[r0:r1].copy(), panels, part)
        np.testing.assert_array_equal(part, whole[r0:r1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_columns", [1, 31, 32, 33, 64, 100])
def test_panels_hold_the_scaled_weights_aligned_and_zero_padded(dtype, n_columns):
    rng = np.random.default_rng(n_columns)
    w = rng.standard_normal((9, n_columns)).astype(dtype)
    scales = rng.choice([0.5, 1.0], n_columns).astype(dtype)
    panels = pack_panels(w, scales)
    assert panels.ctypes.data % 64 == 0 and panels.flags.c_contiguous and panels.dtype == dtype
    n_panels, depth, width = panels.shape
    assert depth == 9 and n_panels * width >= n_columns > (n_panels - 1) * width
    unpacked = panels.transpose(1, 0, 2).reshape(9, n_panels * width)
    np.testing.assert_array_equal(unpacked[:, :n_columns], w * scales)  # halving is exact
    assert not unpacked[:, n_columns:].any()


def test_gate_panels_halve_the_sigmoid_gates_exactly():
    from nlstm.kernels.cpu import gate_panels
    H = 16
    w_cat = np.random.default_rng(0).standard_normal((9, 4 * H)).astype(np.float32) / 7
    panels = gate_panels(w_cat)
    unpacked = panels.transpose(1, 0, 2).reshape(9, -1)[:, :4 * H]
    want = w_cat.copy()
    want[:, :2 * H] /= 2
    want[:, 3 * H:] /= 2
    np.testing.assert_array_equal(unpacked, want)


@pytest.mark.slow  # starts a process
def test_without_avx512_the_product_is_the_blas_one():
    """Compiled for an AVX2 CPU (run on this one), `packed_gemm` takes one
    panel, the whole matrix, and calls the BLAS: the same contract."""
    code = """if True:
        import numpy as np
        from numba import njit
        from nlstm.kernels.codegen import packed
        from nlstm.kernels.codegen.blas import gemm_address
        assert not packed.USE_TILES
        @njit
        def product(blas, a, panels, out):
            packed.packed_gemm(blas, a, panels, out)
        rng = np.random.default_rng(0)
        for m, k, n in [(1, 1, 1), (13, 66, 250), (16, 41, 128)]:
            a = rng.standard_normal((m, k)).astype(np.float32)
            w = rng.standard_normal((k, n)).astype(np.float32)
            panels = packed.pack_panels(w, np.full(n, 0.5, np.float32))
            assert panels.shape == (1, k, n)
            out = np.empty((m, n), np.float32)
            product(gemm_address(np.float32), a, panels, out)
            np.testing.assert_allclose(out, a @ (w / 2), rtol=1e-5, atol=1e-5)
        print("ok")
    """
    env = dict(os.environ, NUMBA_CPU_NAME="haswell",
               NUMBA_CPU_FEATURES="+64bit,+avx,+avx2,+fma,+sse,+sse2,+sse3,+ssse3,+sse4.1,"
                                  "+sse4.2,+popcnt,+cx16,+cmov,+f16c,+bmi,+bmi2,+lzcnt")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the AVX2 target runs on x86 only")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok"]
