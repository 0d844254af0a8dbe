"""How Numba is set up for the kernels: JIT options, the threading layer, the cache folder."""
