"""LLVM-level code generation beneath the kernels: the BLAS calls (`blas`), the one
parallel region (`blocks`), the packed step products (`packed`), inlining and vector width."""
