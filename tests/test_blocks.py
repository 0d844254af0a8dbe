"""run_blocks runs a compiled block function on every row block, in parallel,
without linking the block's code into the parallel kernel (nlstm.kernels.codegen.blocks)."""
import math
import re
import sys

import numpy as np
import pytest
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from nlstm.kernels.codegen import blocks


@njit
def _label_rows(k, r0, r1, scale, out):
    for r in range(r0, r1):
        out[r, 0] = k
        out[r, 1] = r0
        out[r, 2] = math.sqrt(r1 * scale)  # @sqrt shows where this code is linked


@njit
def _fail_on_second_block(k, r0, r1, out):
    if k == 1:
        raise ValueError("block 1 refuses")
    for r in range(r0, r1):
        out[r] = 1.0


def test_every_block_runs_once_with_its_index_and_rows():
    bounds = np.array([0, 3, 4, 9, 9, 12], np.int64)  # an empty block too
    out = np.full((12, 3), -1.0)
    blocks.run_blocks(_label_rows, bounds, 2.0, out)
    expected = np.full((12, 3), -1.0)
    for k in range(len(bounds) - 1):
        r0, r1 = bounds[k], bounds[k + 1]
        expected[r0:r1] = [k, r0, math.sqrt(r1 * 2.0)]
    np.testing.assert_array_equal(out, expected)


def test_an_exception_in_a_block_reaches_the_caller():
    out = np.zeros(8)
    with pytest.raises(ValueError, match="block 1 refuses"):
        blocks.run_blocks(_fail_on_second_block, np.array([0, 4, 8], np.int64), out)


def _label_rows_in_prange(bounds, scale, out):  # the usual way: the block inside prange
    for k in prange(len(bounds) - 1):
        _label_rows(k, bounds[k], bounds[k + 1], scale, out)


def test_the_parallel_kernel_calls_the_block_without_linking_its_code():
    """The point of run_blocks: the block's code is compiled once, not once
    more inside each module of the parallel kernel (numba#8085), nor inside
    the launcher that passes it its arguments. Control: a prange kernel
    calling the block directly does contain it."""
    out = np.zeros((4, 3))
    bounds = np.array([0, 2, 4], np.int64)
    linked = njit(parallel=True)(_label_rows_in_prange)
    linked(bounds, 1.0, out)
    assert "@sqrt" in linked.inspect_llvm(linked.signatures[0])

    out[:] = 0
    address = blocks._address_of(_label_rows, (1.0, out))
    # fresh compilations, whose IR can be shown
    kernel = njit(parallel=True)(blocks._run_blocks.py_func)
    kernel(0, 0, np.zeros(1, np.int64), 0, np.zeros(0, np.bool_))  # no blocks
    launch = njit(blocks._launch.py_func)
    kernel_address = blocks._compiled_address(kernel, kernel.signatures[0])
    launch(kernel_address, address, bounds, (1.0, out), np.zeros(2, np.bool_))
    np.testing.assert_array_equal(out[:, 0], [0, 0, 1, 1])  # the call through the addresses ran
    assert "@sqrt" not in kernel.inspect_llvm(kernel.signatures[0])
    assert "@sqrt" not in launch.inspect_llvm(launch.signatures[0])


def test_one_parallel_kernel_serves_every_block_function_and_argument_types():
    """Only the small launcher is compiled per argument-type combination;
    the parallel kernel (0.3-0.6 s to compile each) is compiled once."""
    blocks.run_blocks(_label_rows, np.array([0, 2, 4], np.int64), 1.0, np.zeros((4, 3)))
    blocks.run_blocks(_label_rows, np.array([0, 2, 4], np.int64), 1, np.zeros((4, 3)))
    blocks.run_blocks(_scale_rows, np.array([0, 1, 2], np.int64), np.ones(2, np.float32),
                      np.zeros(2, np.float32))
    assert len(blocks._launch.overloads) >= 3
    assert len(blocks._run_blocks.overloads) == 1


@njit
def _scale_rows(k, r0, r1, x, out):
    blocks.arguments_do_not_alias()
    for r in range(r0, r1):
        out[r] = 2 * x[r]


def test_block_arguments_are_marked_noalias():
    x = np.arange(6.0)
    out = np.zeros(6)
    blocks.run_blocks(_scale_rows, np.array([0, 3, 6], np.int64), x, out)
    np.testing.assert_array_equal(out, 2 * x)
    blocks.run_blocks(_label_rows, np.array([0, 2, 4], np.int64), 1.0, np.zeros((4, 3)))
    for function, marked in ((_scale_rows, True), (_label_rows, False)):
        ir = function.inspect_llvm(function.signatures[0])
        definition = next(line for line in ir.splitlines()
                          if line.startswith("define") and function.__name__ in line)
        # the data pointer of the array argument "out" (field 4 of Numba's array struct):
        # "ptr noalias" with LLVM's opaque pointers (llvmlite 0.50-0.51 here), "float* noalias"
        # with typed ones (llvmlite 0.42, with Numba 0.59, the oldest nlstm supports)
        assert bool(re.search(r"(?:\bptr|\*) noalias [^,]*%arg\.out\.4\b", definition)) is marked


def test_bounds_of_another_integer_type_or_layout_are_taken_as_int64():
    """The one parallel kernel is compiled for C-contiguous int64 bounds;
    run_blocks converts others rather than passing them as if they were."""
    expected = np.zeros((4, 3))
    blocks.run_blocks(_label_rows, np.array([0, 2, 4], np.int64), 1.0, expected)
    for bounds in (np.array([0, 2, 4], np.int32), np.array([0, 9, 2, 9, 4], np.int64)[::2]):
        out = np.zeros((4, 3))
        blocks.run_blocks(_label_rows, bounds, 1.0, out)
        np.testing.assert_array_equal(out, expected)


@intrinsic
def _has_meminfo(typingctx, array):
    """Whether ``array`` carries Numba's memory info (its reference count)."""
    def codegen(context, builder, signature, args):
        meminfo = context.make_array(array)(context, builder, value=args[0]).meminfo
        return builder.icmp_unsigned("!=", meminfo, cgutils.get_null_value(meminfo.type))

    return types.boolean(array), codegen


@njit
def _sum_rows_of_views(values):  # a helper that gets views of a block's argument
    return values.sum()


@njit
def _views_and_scratch(k, r0, r1, x, out, seen):
    blocks.arguments_do_not_alias()
    scratch = np.empty((r1 - r0, x.shape[1]))  # the block's own array
    for r in range(r0, r1):
        row = x[r]  # a view of an argument
        for j in range(x.shape[1]):
            scratch[r - r0, j] = 2 * row[j]
        out[r] = _sum_rows_of_views(scratch[r - r0:r - r0 + 1]) + _sum_rows_of_views(x[r:r + 1])
    copied = x[r0:r1].copy()
    seen[k, 0] = _has_meminfo(x)
    seen[k, 1] = _has_meminfo(x[r0:r1])
    seen[k, 2] = _has_meminfo(scratch)
    seen[k, 3] = _has_meminfo(copied)


def test_blocks_borrow_argument_arrays_without_reference_counting():
    """The blocks get the caller's arrays without Numba's memory info, so that
    their views are not reference-counted on a counter all threads share;
    arrays a block makes itself keep theirs, and views, helper calls and
    copies work as usual. The caller's arrays keep their reference counts."""
    x = np.arange(12.0).reshape(6, 2)
    out = np.zeros(6)
    seen = np.zeros((2, 4), np.bool_)
    references = sys.getrefcount(x), sys.getrefcount(out)
    blocks.run_blocks(_views_and_scratch, np.array([0, 3, 6], np.int64), x, out, seen)
    np.testing.assert_array_equal(out, 3 * x.sum(axis=1))
    np.testing.assert_array_equal(seen, [[False, False, True, True]] * 2)
    assert (sys.getrefcount(x), sys.getrefcount(out)) == references
    # called through its dispatcher (as run_blocks does to re-raise), a block
    # gets counted arrays: the probe does tell the two apart
    _views_and_scratch(0, 0, 3, x, out, seen)
    assert seen[0, 0] and seen[0, 1]
