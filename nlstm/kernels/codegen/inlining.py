"""Have LLVM inline a jitted helper into every function that calls it.

Numba compiles a helper that a kernel calls (a cell helper in ``cpu.py``,
an activation in ``activations.py``) as a function of its own, links a copy
of its code into the kernel's module as a ``linkonce_odr`` definition, and
leaves inlining to LLVM's cost model. The backward cell, a large loop, was
not inlined: the kernel called it, and that cost determinism. A process that
compiles a kernel (an empty Numba cache) also compiles the helper as a
function of its own, and the JIT linker resolves the kernel's call to that
first definition of the symbol; a process that loads the kernel from the
cache has only the kernel's own copy of the helper, optimised a second time
inside the kernel's module. The two copies need not round alike under
``fastmath`` (contraction into FMAs, reassociation): the float64 backward
sweep's gradients differed in the last bits between the two kinds of process
(``tests/test_inlining_cache.py``). Inlining changed no speed: the backward
sweep with the cell called and with it inlined, alternated in one process,
ran 0.99-1.01x (the called helper's run-time overlap checks, which a kernel's
``noalias`` arguments would spare, cost nothing measurable).

`inline_into_callers()` does nothing when it runs: calling it in a jitted
function gives that function LLVM's ``alwaysinline`` attribute, so that every
kernel carries its own inlined copy, in the compiling process and in the
cache alike.
"""
from numba import types
from numba.extending import intrinsic


@intrinsic
def inline_into_callers(typingctx):
    """Mark the calling jitted function ``alwaysinline`` for LLVM."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.none(), codegen
