"""The JIT options of every kernel, in one place (tested in ``tests/test_jit_options.py``).

* `FASTMATH`: LLVM's fast-math flags but ``nnan`` and ``ninf``. The kernels may
  reassociate, contract into FMAs and use approximate functions, but never
  assume that no NaN or infinity occurs: a diverging fit must still see NaN
  (with ``nnan`` LLVM may fold a NaN through a clamp or a ``x * 0``).
* ``error_model="numpy"``: a float division gives inf/NaN, not a Python
  ``ZeroDivisionError``, whose check stops LLVM from vectorising any loop
  that divides (the rational tanh does: 3.4 -> 0.7 ns per value).

The option sets:

* `HELPER`: jitted helpers and ``@overload`` implementations inlined into
  the kernels (`inlining.inline_into_callers`): the activations, the cells,
  the packed tiles;
* `KERNEL`: the cached block functions that `blocks.run_blocks` runs;
* `STEP_KERNEL`: block functions that are also called directly, from any
  thread (a stream's step, `nlstm.kernels.stream`): the GIL released;
* `EXACT_KERNEL`: cached kernels whose arithmetic must stay IEEE-exact as
  written (the optimizer steps, which match ``torch.optim`` operation for
  operation);
* `LAUNCHER`: the cached functions that only launch others (no float math).
"""
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # a set: what Numba accepts

HELPER = {"fastmath": FASTMATH, "error_model": "numpy"}
KERNEL = {"cache": True, **HELPER}
STEP_KERNEL = {**KERNEL, "nogil": True}
EXACT_KERNEL = {"cache": True, "nogil": True, "error_model": "numpy"}
LAUNCHER = {"cache": True, "nogil": True}
