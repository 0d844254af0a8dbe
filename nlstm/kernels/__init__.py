"""Compute kernels, by layer:

* the cell math: `cpu` (Numba, parallel over the batch) and `cuda` (its
  numba.cuda twin), `activations`, and `contracts` (what the twins share);
* `plumbing`: the arrays between kernels, per device;
* `codegen`: LLVM-level code beneath the CPU kernels (BLAS calls, the parallel
  region, packed products, inlining, vector width);
* `runtime`: how Numba is set up (JIT options, threading layer, cache folder).

Importing the package puts nlstm's cache locator in place before any kernel is
decorated (`runtime.cache_location`): compiled kernels go to the user's cache
folder, never into the installed package.
"""
from .runtime import cache_location

cache_location.install()
