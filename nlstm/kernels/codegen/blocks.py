"""Run a compiled block function over row blocks in parallel (`run_blocks`),
compiling its code once and one parallel kernel for all block functions.

A kernel's body is a plain cached ``@njit`` function ``block(k, r0, r1, *args)``
for block k and the rows ``[r0, r1)``, compiled once. The one parallel kernel,
`_run_blocks`, knows nothing of the block's arguments, so it too is compiled
once: it gets the block's address, the address of the arguments (a tuple
stored on `_launch`'s stack) and the address of an *unpacker*, a small
function that loads that tuple and calls the block. Each argument-type
combination compiles only `_launch` and its unpacker. Results are bit for bit
those of a ``prange`` kernel; the block gets its argument arrays without their
reference count (`_borrowed`).

Why not one ``prange`` loop per kernel: Numba compiles a ``prange`` body into
four modules (numba/numba#8085), which doubled the cold start
(``docs/design.md``, "Inside the CPU kernels").
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, typeof, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..runtime.jit_options import LAUNCHER
from ..runtime.threading_layer import make_tbb_loadable, parallel_regions_allowed

try:  # what Numba's dispatcher keys its compiled versions on
    from numba._dispatcher import compute_fingerprint as _type_key
except ImportError:  # pragma: no cover - a future Numba without it
    _type_key = typeof

_INT64 = ir.IntType(64)
# i1 unpacker(i64 block address, i64 k, i64 r0, i64 r1, i64 arguments address)
_UNPACKER_TYPE = ir.FunctionType(ir.IntType(1), [_INT64] * 5)


def _as_int64(context, builder, value, value_type):
    return context.cast(builder, value, value_type, types.int64)


@intrinsic
def _call_unpacker(typingctx, unpacker, block, k, r0, r1, arguments):
    """``unpacker(block, k, r0, r1, arguments)`` for the unpacker at address
    ``unpacker`` (see `_unpacker`): True when the block raised."""
    operands = (unpacker, block, k, r0, r1, arguments)
    if not all(isinstance(x, types.Integer) for x in operands):
        return None

    def codegen(context, builder, signature, llargs):
        values = [_as_int64(context, builder, v, t) for v, t in zip(llargs, operands)]
        function = builder.inttoptr(values[0], _UNPACKER_TYPE.as_pointer())
        return builder.call(function, values[1:])

    return types.boolean(*operands), codegen


def _borrowed(context, builder, value, value_type):
    """``value`` as the block gets it: an array with no memory-info pointer
    (as `numba.carray` makes), anything else unchanged.

    Every view a block takes of an argument array (a row ``hs[t, b]``, a
    slice passed to a helper) is reference-counted on the array's memory
    info, an atomic add and subtract on a counter that all blocks share:
    the blocks' threads then fight over one cache line at every row of every
    step (a forward step ran 1.7x slower on two threads than on one).
    Without the memory info the counting is a null check. The arrays stay
    alive without it: the caller of `run_blocks` holds them until every
    block has returned, and a block keeps no reference to them.
    """
    if not isinstance(value_type, types.Array):
        return value
    array = context.make_array(value_type)(context, builder, value=value)
    array.meminfo = cgutils.get_null_value(array.meminfo.type)
    return array._getvalue()


def _unpacker(context, module, arguments_type):
    """The unpacker of ``arguments_type`` (a tuple type) in ``module``, defined
    there on first use: it loads the tuple stored at its last argument and
    calls the block function at its first, ``block(k, r0, r1, *tuple)``, with
    Numba's calling convention, returning whether the block raised."""
    function = cgutils.get_or_insert_function(module, _UNPACKER_TYPE, "nlstm_block_unpacker")
    if not function.is_declaration:
        return function
    function.linkage = "internal"
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    block, k, r0, r1, arguments = function.args
    stored = builder.inttoptr(arguments, context.get_value_type(arguments_type).as_pointer())
    unpacked = builder.load(stored)
    argument_types = [types.int64] * 3 + list(arguments_type.types)
    call_conv = context.call_conv
    block_type = call_conv.get_function_type(types.none, argument_types)
    values = [k, r0, r1] + [_borrowed(context, builder, builder.extract_value(unpacked, i), t)
                            for i, t in enumerate(arguments_type.types)]
    status, _ = call_conv.call_function(builder, builder.inttoptr(block, block_type.as_pointer()),
                                        types.none, argument_types, values)
    builder.ret(status.is_error)
    return function


@intrinsic
def _call_kernel(typingctx, kernel, block, bounds, args, failed):
    """Call `_run_blocks`, compiled, at address ``kernel``, for the block
    function at address ``block`` with the tuple ``args``: stores ``args`` on
    the stack and passes its address and that of its unpacker."""
    def is_vector(array, dtype):  # the layout `_run_blocks` is compiled for
        return (isinstance(array, types.Array) and array.dtype == dtype and array.ndim == 1
                and array.layout == "C")

    if not (isinstance(kernel, types.Integer) and isinstance(block, types.Integer)
            and isinstance(args, types.BaseTuple) and is_vector(bounds, types.int64)
            and is_vector(failed, types.boolean)):
        return None

    def codegen(context, builder, signature, llargs):
        kernel_value, block_value, bounds_value, args_value, failed_value = llargs
        stored = cgutils.alloca_once_value(builder, args_value)
        unpacker = _unpacker(context, builder.module, args)
        kernel_types = [types.int64, types.int64, bounds, types.int64, failed]
        values = [builder.ptrtoint(unpacker, _INT64),
                  _as_int64(context, builder, block_value, block), bounds_value,
                  builder.ptrtoint(stored, _INT64), failed_value]
        call_conv = context.call_conv
        kernel_type = call_conv.get_function_type(types.boolean, kernel_types)
        function = builder.inttoptr(_as_int64(context, builder, kernel_value, kernel),
                                    kernel_type.as_pointer())
        status, any_failed = call_conv.call_function(builder, function, types.boolean,
                                                     kernel_types, values)
        with builder.if_then(status.is_error, likely=False):
            call_conv.return_status_propagate(builder, status)
        return any_failed

    return types.boolean(kernel, block, bounds, args, failed), codegen


@intrinsic
def arguments_do_not_alias(typingctx):
    """Mark the calling jitted function's pointer arguments ``noalias``, as
    Numba marks a ``prange`` body's when it finds no aliases in it: LLVM may
    then vectorise loops without run-time overlap checks. Every block function
    calls it, so no array a block writes may overlap another of its
    arguments."""
    def codegen(context, builder, signature, args):
        for argument in builder.function.args:
            if isinstance(argument.type, ir.PointerType):
                argument.add_attribute("noalias")
        return context.get_dummy_value()

    return types.none(), codegen


@njit(parallel=True, **LAUNCHER)
def _run_blocks(unpacker, block, bounds, arguments, failed):
    # unpacker, block, arguments: addresses (see `_call_kernel`); bounds:
    # (n_blocks + 1) row bounds; failed: (n_blocks) set where a block raised.
    # Returns whether one did (cheaper than a NumPy ``failed.any()``).
    for k in prange(len(bounds) - 1):
        failed[k] = _call_unpacker(unpacker, block, k, bounds[k], bounds[k + 1], arguments)
    any_failed = False
    for k in range(len(failed)):
        any_failed |= failed[k]
    return any_failed


@njit(**LAUNCHER)
def _run_blocks_serially(unpacker, block, bounds, arguments, failed):
    # `_run_blocks` without a parallel region: the same blocks one after
    # another, for a forked child that may not start one (`threading_layer`)
    any_failed = False
    for k in range(len(bounds) - 1):
        failed[k] = _call_unpacker(unpacker, block, k, bounds[k], bounds[k + 1], arguments)
        any_failed |= failed[k]
    return any_failed


@njit(**LAUNCHER)
def _launch(kernel, block, bounds, args, failed):
    # compiled once per argument-type combination: no parallel region of its own
    return _call_kernel(kernel, block, bounds, args, failed)


_kernels = {}  # `_run_blocks` or `_run_blocks_serially` -> its address, compiled
_addresses = {}  # (block function, fingerprint of the argument types) -> address
make_tbb_loadable()  # before any parallel region starts Numba's threading layer


def _compiled_address(dispatcher, signature):
    result = dispatcher.overloads[signature]
    return result.library.get_pointer_to_function(result.fndesc.llvm_func_name)


def _kernel_address():
    """Address of `_run_blocks` (of `_run_blocks_serially` where this process
    may not start a parallel region). Compiled (or loaded from Numba's cache)
    and run once with no blocks through its dispatcher, which starts Numba's
    threading layer that its parallel region calls."""
    runner = _run_blocks if parallel_regions_allowed() else _run_blocks_serially
    address = _kernels.get(runner)
    if address is None:
        bounds, failed = np.zeros(1, np.int64), np.zeros(0, np.bool_)
        runner(0, 0, bounds, 0, failed)
        address = _kernels[runner] = _compiled_address(
            runner, (types.int64, types.int64, typeof(bounds), types.int64, typeof(failed)))
    return address


def _address_of(block_function, args):
    """Address of ``block_function`` compiled for ``(int64, int64, int64, *args)``.

    Keyed by Numba's type fingerprint of the argument tuple, as the
    dispatcher itself does: far cheaper than `numba.typeof` per array.
    """
    key = (block_function, _type_key(args))
    address = _addresses.get(key)
    if address is None:
        signature = (types.int64,) * 3 + tuple(typeof(a) for a in args)
        block_function.compile(signature)  # loads it from Numba's cache when there
        address = _compiled_address(block_function, signature)
        _addresses[key] = address
    return address


def run_blocks(block_function, bounds, *args):
    """Call ``block_function(k, bounds[k], bounds[k + 1], *args)`` for every
    block k, in parallel on Numba's threads.

    Parameters
    ----------
    block_function : numba dispatcher
        A ``@njit(cache=True)`` function ``(k, r0, r1, *args) -> None`` for
        block k, rows ``[r0, r1)``, that writes only its own block's parts of
        the outputs and calls `arguments_do_not_alias`.
    bounds : ndarray of int64, shape (n_blocks + 1,)
        Increasing row bounds.
    *args
        Passed unchanged to every call (arrays are shared, not copied). An
        array the blocks write must not overlap any other argument.

    Raises
    ------
    Exception
        Whatever a block raised (a ``MemoryError`` when a scratch array could
        not be allocated): the first failed block is run again through the
        dispatcher, which raises the exception with Numba's message.
    """
    bounds = np.ascontiguousarray(bounds, np.int64)  # what `_run_blocks` is compiled for
    failed = np.zeros(len(bounds) - 1, np.bool_)
    if _launch(_kernel_address(), _address_of(block_function, args), bounds, args, failed):
        k = int(np.flatnonzero(failed)[0])
        block_function(k, bounds[k], bounds[k + 1], *args)
        raise RuntimeError(f"{block_function.__name__} failed in block {k} and did not "
                           "fail when run again")
