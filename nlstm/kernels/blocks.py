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
for block k, the rows ``[r0, r1)``, compiled once. The parallel kernel calls
it through its address (a runtime argument, so the kernel stays cacheable), so
the parallel modules hold only a loop and a call. The block's code is the same
as a ``prange`` body's: results are bit for bit those of the ``prange`` kernels.

A parallel kernel still costs 0.3-0.6 s to compile in a fresh process, and one
typed on the arguments would be compiled again for each argument-type
combination (four in a first fit and predict). So there is one parallel
kernel, `_run_trampolines`, whose arguments are the same whatever the block:
the address of a *trampoline* and the address of a *payload*. `_launch`, a
plain ``@njit`` function compiled for each type of the arguments (0.1-0.3 s,
not parallel), stores the block's address and the arguments in a stack slot
(the payload, alive while it runs the kernel) and defines the trampoline in its
own module: ``(k, r0, r1, payload)`` -> the block function called with
``(k, r0, r1, *args)``. The cold start of a first fit and predict measured
7.8-11.1 s against 10.8-13.8 s with one parallel kernel per argument types
(six alternated rounds); calls cost the same (9.0 against 8.8 us).
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, typeof, types
from numba.core import cgutils
from numba.extending import intrinsic

try:  # what Numba's dispatcher keys its compiled versions on
    from numba._dispatcher import compute_fingerprint as _type_key
except ImportError:  # pragma: no cover - a future Numba without it
    _type_key = typeof


@intrinsic
def _pack_arguments(typingctx, address, args):
    """Store ``(address, args)`` in a stack slot of the calling function and
    return the slot's address: the payload a trampoline (`_trampoline_address`)
    reads. The slot lives until the calling function returns."""
    def codegen(context, builder, signature, llargs):
        address_value, args_value = llargs
        slot = cgutils.alloca_once(builder, _payload_type(context, args))
        builder.store(address_value, cgutils.gep_inbounds(builder, slot, 0, 0))
        builder.store(args_value, cgutils.gep_inbounds(builder, slot, 0, 1))
        return builder.ptrtoint(slot, ir.IntType(64))

    return types.int64(address, args), codegen


def _payload_type(context, args):
    # {block function's address, the arguments tuple as Numba stores it}
    return ir.LiteralStructType([ir.IntType(64), context.get_value_type(args)])


@intrinsic
def _trampoline_address(typingctx, args):
    """Address of a function ``i1 (i64 k, i64 r0, i64 r1, i64 payload)``,
    defined in the calling function's module for this type of ``args``, that
    calls the block function named in the payload (`_pack_arguments`) with
    ``(k, r0, r1, *args)`` and returns True when it raised. Its signature is
    the same for every block function and every ``args``: the one parallel
    kernel, `_run_trampolines`, calls them all."""
    arg_types = [types.int64] * 3 + list(args.types)

    def codegen(context, builder, signature, llargs):
        i64 = ir.IntType(64)
        module = builder.module
        trampoline = ir.Function(module, ir.FunctionType(ir.IntType(1), [i64] * 4),
                                 name=module.get_unique_name("nlstm_block_trampoline"))
        trampoline.linkage = "internal"
        body = ir.IRBuilder(trampoline.append_basic_block("entry"))
        k, r0, r1, payload_address = trampoline.args
        payload = body.inttoptr(payload_address, _payload_type(context, args).as_pointer())
        address = body.load(cgutils.gep_inbounds(body, payload, 0, 0))
        args_value = body.load(cgutils.gep_inbounds(body, payload, 0, 1))
        call_conv = context.call_conv
        function_type = call_conv.get_function_type(types.none, arg_types)
        function = body.inttoptr(address, function_type.as_pointer())
        values = [k, r0, r1] + [body.extract_value(args_value, i) for i in range(len(args))]
        status, _ = call_conv.call_function(body, function, types.none, arg_types, values)
        body.ret(status.is_error)
        return builder.ptrtoint(trampoline, i64)

    return types.int64(args), codegen


@intrinsic
def _call_trampoline(typingctx, trampoline, k, r0, r1, payload):
    """Call the trampoline at address ``trampoline``; True when the block raised."""
    def codegen(context, builder, signature, llargs):
        i64 = ir.IntType(64)
        function_type = ir.FunctionType(ir.IntType(1), [i64] * 4)
        function = builder.inttoptr(llargs[0], function_type.as_pointer())
        return builder.call(function, llargs[1:])

    return types.boolean(trampoline, k, r0, r1, payload), codegen


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
def _run_trampolines(trampoline, bounds, payload, failed):
    # bounds: (n_blocks + 1) row bounds; failed: (n_blocks) set where a block raised
    for k in prange(len(bounds) - 1):
        failed[k] = _call_trampoline(trampoline, k, bounds[k], bounds[k + 1], payload)


@njit(cache=True, nogil=True)
def _launch(address, bounds, args, failed):
    # compiled for each type of args, but not parallel: cheap to compile
    _run_trampolines(_trampoline_address(args), bounds, _pack_arguments(address, args), failed)


_addresses = {}  # (block function, fingerprints of the arguments' types) -> address


def _address_of(block_function, args):
    """Address of ``block_function`` compiled for ``(int64, int64, int64, *args)``.

    Keyed by Numba's type fingerprints of the arguments (about 0.3 us each, as
    the dispatcher itself does), not by `numba.typeof` (about 8 us per array).
    """
    key = (block_function, tuple(_type_key(a) for a in args))
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
    _launch(_address_of(block_function, args), bounds, args, failed)
    if failed.any():
        k = int(np.flatnonzero(failed)[0])
        block_function(k, bounds[k], bounds[k + 1], *args)
        raise RuntimeError(f"{block_function.__name__} failed in block {k} and did not "
                           "fail when run again")
