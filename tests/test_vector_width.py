"""The kernels ask LLVM for the CPU's widest vectors (nlstm.kernels.codegen.vector_width)."""
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

from nlstm.kernels import cpu
from nlstm.kernels.codegen.vector_width import WIDE_VECTOR_ATTRIBUTE, use_wide_vectors
from nlstm.kernels.runtime import jit_options

HOST_HAS_AVX512 = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


@njit(fastmath=True)
def _scaled(x, factor):
    use_wide_vectors()
    out = np.empty_like(x)
    for j in range(x.shape[0]):
        out[j] = x[j] * factor
    return out


@njit(fastmath=True)
def _scaled_default_width(x, factor):
    out = np.empty_like(x)
    for j in range(x.shape[0]):
        out[j] = x[j] * factor
    return out


def test_the_attribute_reaches_the_function_and_changes_nothing_else():
    x = np.arange(100, dtype=np.float32)
    np.testing.assert_array_equal(_scaled(x, np.float32(3)), x * 3)
    np.testing.assert_array_equal(_scaled_default_width(x, np.float32(3)), x * 3)
    assert WIDE_VECTOR_ATTRIBUTE in _scaled.inspect_llvm(_scaled.signatures[0])
    default_ir = _scaled_default_width.inspect_llvm(_scaled_default_width.signatures[0])
    assert WIDE_VECTOR_ATTRIBUTE not in default_ir


@pytest.mark.skipif(not HOST_HAS_AVX512, reason="512-bit vectors need an AVX-512 CPU")
def test_the_gate_math_of_the_kernels_runs_on_512_bit_vectors():
    """The gate activations (`_gate_tanh`, a helper) and the inference
    sweep's shard function (the block that `run_blocks` runs on each thread,
    which holds the rest of the cell) both compile to zmm (512-bit)
    instructions on an AVX-512 CPU. Compiled afresh from the kernel's Python
    source: Numba cannot show the machine code of a kernel loaded from its
    cache."""
    options = {k: v for k, v in jit_options.KERNEL.items() if k != "cache"}
    shard = njit(**options)(cpu._lstm_inference_shard.py_func)
    B, T, F, H = 4, 3, 2, 64
    x = np.zeros((B, T, F), np.float32)
    w_cat = np.zeros((F + H + 1, 4 * H), np.float32)
    h, c = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
    shard(0, 0, B, cpu.gemm_address(np.float32), x, cpu.gate_panels(w_cat),
          np.full(B, T, np.int64), False, h, c, np.empty((0, 0, 0), np.float32), 0)
    # the cell's tanh (clamp and saturation compares, division) on zmm
    # registers; the step product's tiles (`packed`) are 512-bit code of their
    # own and would pass "zmm" anyway
    shard_asm = shard.inspect_asm(shard.signatures[0])
    for instruction in ("vcmp[a-z]*ps", "vdivps"):
        assert re.search(rf"\t{instruction}\t[^\n]*zmm", shard_asm), instruction
    cell = cpu._gate_tanh
    assert "zmm" in cell.inspect_asm(cell.signatures[0])
