"""Run a compiled block function over row blocks in parallel, compiling its
code once.

Why the kernels are not written as one ``prange`` loop each: Numba compiles
the body of a ``prange`` as a function of its own, then links that code into
three more modules (the gufunc wrapper, the parallel launcher, the kernel)
and optimises each of them and turns it into machine code again
(numba/numba#8085). A sweep's body, the large part of its code, was so
compiled four times: about 1.3 s of the 3.5 s cold compile of the forward
sweep, measured.

Here the body is a plain cached ``@njit`` function, ``block(k, r0, r1, *args)``
for block k, the rows ``[r0, r1)``, compiled once. The one parallel kernel,
`_run_blocks`, calls it through its address (a runtime argument, so the
kernel stays cacheable), so the parallel modules hold only a loop and a call.
The block's code is the same as a ``prange`` body's: results are bit for bit
those of the ``prange`` kernels.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, typeof, types
from numba.extending import intrinsic

try:  # what Numba's dispatcher keys its compiled versions on
    from numba._dispatcher import compute_fingerprint as _type_key
except ImportError:  # pragma: no cover - a future Numba without it
    _type_key = typeof


@intrinsic
def _call_block(typingctx, address, k, r0, r1, args):
    """Call the Numba-compiled function at ``address`` with ``(k, r0, r1, *args)``;
    True when it raised. Its signature must be ``(int64, int64, int64, *args)``
    returning None: `run_blocks` looks the address up for exactly that."""
    arg_types = [k, r0, r1, *args.types]

    def codegen(context, builder, signature, llargs):
        address_value, args_value = llargs[0], llargs[4]
        call_conv = context.call_conv
        function_type = call_conv.get_function_type(types.none, arg_types)
        function = builder.inttoptr(address_value, function_type.as_pointer())
        values = list(llargs[1:4]) + [builder.extract_value(args_value, i)
                                      for i in range(len(args.types))]
        status, _ = call_conv.call_function(builder, function, types.none, arg_types, values)
        return status.is_error

    return types.boolean(address, k, r0, r1, args), codegen


@intrinsic
def arguments_do_not_alias(typingctx):
    """Mark the calling jitted function's pointer arguments ``noalias``, as
    Numba marks a ``prange`` body's when it finds no aliases in it: LLVM may
    then vectorise loops without run-time overlap checks. Every block function
    calls it (without it the backward sweep was about 5% slower at 16 rows
    per shard, measured), so no array a block writes may overlap another of
    its arguments."""
    def codegen(context, builder, signature, args):
        for argument in builder.function.args:
            if isinstance(argument.type, ir.PointerType):
                argument.add_attribute("noalias")
        return context.get_dummy_value()

    return types.none(), codegen


@njit(parallel=True, cache=True, nogil=True)
def _run_blocks(address, bounds, args, failed):
    # bounds: (n_blocks + 1) row bounds; failed: (n_blocks) set where a block
    # raised. Returns whether one did (a NumPy ``failed.any()`` costs 2 us).
    for k in prange(len(bounds) - 1):
        failed[k] = _call_block(address, k, bounds[k], bounds[k + 1], args)
    any_failed = False
    for k in range(len(failed)):
        any_failed |= failed[k]
    return any_failed


_addresses = {}  # (block function, fingerprint of the argument types) -> address


def _address_of(block_function, args):
    """Address of ``block_function`` compiled for ``(int64, int64, int64, *args)``.

    Keyed by Numba's type fingerprint of the argument tuple (about 0.3 us, as
    the dispatcher itself does; one per argument took 4 us for ten), not by
    `numba.typeof` (about 8 us per array).
    """
    key = (block_function, _type_key(args))
    address = _addresses.get(key)
    if address is None:
        signature = (types.int64,) * 3 + tuple(typeof(a) for a in args)
        block_function.compile(signature)  # loads it from Numba's cache when there
        result = block_function.overloads[signature]
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
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
    failed = np.zeros(len(bounds) - 1, np.bool_)
    if _run_blocks(_address_of(block_function, args), bounds, args, failed):
        k = int(np.flatnonzero(failed)[0])
        block_function(k, bounds[k], bounds[k + 1], *args)
        raise RuntimeError(f"{block_function.__name__} failed in block {k} and did not "
                           "fail when run again")
