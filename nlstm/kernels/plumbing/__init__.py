"""Device plumbing: the arrays between kernels (`cpu_arrays`, `cuda_arrays`) and the
low-level CUDA pieces beneath them (`cuda_device`)."""
