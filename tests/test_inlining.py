"""The kernels carry their helpers inlined (nlstm.kernels.codegen.inlining).

A kernel that *calls* a helper runs different code in the process that
compiles it (the call goes to the helper compiled as a function of its own)
and in a process that loads it from Numba's cache (the kernel's own copy of
the helper): different bits (``tests/test_inlining_cache.py``). Checked on the
kernels compiled afresh from their Python source: Numba cannot show the code
of a kernel loaded from its cache.
"""
import re

import numpy as np
import pytest
from numba import njit

from nlstm.kernels import cpu
from nlstm.kernels.codegen.inlining import inline_into_callers
from nlstm.kernels.runtime import jit_options


@njit
def _doubled(x):
    inline_into_callers()
    return 2 * x


@njit
def _doubled_plain(x):
    return 2 * x


def test_the_attribute_reaches_the_function_and_changes_nothing_else():
    assert _doubled(3.5) == _doubled_plain(3.5) == 7.0
    marked = _doubled.inspect_llvm(_doubled.signatures[0])
    plain = _doubled_plain.inspect_llvm(_doubled_plain.signatures[0])
    assert "alwaysinline" in marked
    assert "alwaysinline" not in plain


def _calls_to_nlstm_helpers(llvm_ir, kernel_name):
    """Names of the nlstm functions that the module calls, other than the
    kernel itself (which its Python wrapper calls)."""
    called = set(re.findall(r"call [^@\n]*@(_ZN\w*nlstm\w*)", llvm_ir))
    return sorted(name for name in called if kernel_name not in name)


def _fresh(block_function):
    options = {k: v for k, v in jit_options.KERNEL.items() if k != "cache"}
    return njit(**options)(block_function.py_func)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_sweeps_call_no_helper(dtype):
    """The forward and backward LSTM shards, compiled afresh, contain no call
    to another nlstm function: the cells (`_gate_tanh`, `_lstm_cell_backward`)
    and the activations and derivatives are inlined."""
    B, T, F, H = 4, 3, 2, 16
    rng = np.random.default_rng(0)
    x = rng.normal(size=(T, B, F)).astype(dtype)
    w_cat = rng.normal(size=(F + H + 1, 4 * H)).astype(dtype)
    lengths = np.full(B, T, np.int64)
    hs, cs = np.zeros((T + 1, B, H), dtype), np.zeros((T + 1, B, H), dtype)
    gates, d_pre = np.zeros((T, B, 4 * H), dtype), np.zeros((T, B, 4 * H), dtype)
    blas = cpu.gemm_address(np.dtype(dtype))
    forward = _fresh(cpu._lstm_forward_shard)
    forward(0, 0, B, blas, x, cpu.gate_panels(w_cat), lengths, hs, cs, gates)
    backward = _fresh(cpu._lstm_backward_shard)
    d_h = rng.normal(size=(B, H)).astype(dtype)
    parts = np.zeros((1, F + H + 1, 4 * H), dtype)
    backward(0, 0, B, blas, np.zeros((T, B, H), dtype), d_h, d_h,
             cpu.pack_panels(np.ascontiguousarray(w_cat[F:F + H].T)), lengths, cs, gates, d_pre,
             np.zeros((B, H), dtype), np.zeros((B, H), dtype), x, hs, parts, 2,
             np.empty((1, 2 * B, 4 * H), dtype), np.empty((1, 2 * B, F + H + 1), dtype))
    assert np.isfinite(d_pre).all() and np.abs(d_pre).sum() > 0
    assert np.isfinite(parts).all() and np.abs(parts).sum() > 0
    for shard in (forward, backward):
        llvm_ir = shard.inspect_llvm(shard.signatures[0])
        assert _calls_to_nlstm_helpers(llvm_ir, shard.py_func.__name__) == []
