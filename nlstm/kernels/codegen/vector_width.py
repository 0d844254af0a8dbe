"""Let LLVM vectorise nlstm's kernels with the CPU's widest vectors.

LLVM's x86 backend prefers 256-bit vectors on Intel CPUs with AVX-512 (the
``prefer-256-bit`` tuning, kept from Skylake-SP, whose clock dropped under
512-bit code), so Numba's loops use half of the vector width these CPUs have.
Numba has no per-function setting for it, and ``NUMBA_CPU_FEATURES`` would
change every Numba function of the process, the user's own included.

`use_wide_vectors()` does nothing when it runs: calling it in a jitted function
gives *that* function LLVM's ``"prefer-vector-width"="512"`` attribute, so the
loop vectoriser may use 512-bit vectors there. The kernels call it in each
function whose loops carry the gate math: the cell helpers (compiled, and
vectorised, as functions of their own) and each block function (the body of
a kernel, ``nlstm.kernels.codegen.blocks``). On a CPU without AVX-512 the
attribute changes nothing (LLVM cannot go wider than the CPU).

llvmlite's attribute set only takes the attribute names it lists and has no
string attributes; the attribute is added to the set as the string LLVM reads
(``tests/test_vector_width.py`` checks that it reaches the compiled code).
"""
from numba import types
from numba.extending import intrinsic

WIDE_VECTOR_ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def use_wide_vectors(typingctx):
    """Give the calling jitted function 512-bit preferred vector width."""
    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, WIDE_VECTOR_ATTRIBUTE)  # bypasses llvmlite's list
        return context.get_dummy_value()

    return types.none(), codegen
