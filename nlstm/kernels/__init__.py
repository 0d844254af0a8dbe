"""Compute kernels: `cpu` (Numba, parallel over the batch) and the activations they share."""
