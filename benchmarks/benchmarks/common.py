"""Shared data and sizes for the asv benchmarks (the speed issue's grid)."""
import numpy as np

# (B, T, F, H, N): batch, timesteps, features, hidden, samples
GRID = [(32, 50, 8, 32, 1024), (64, 100, 32, 128, 512), (128, 100, 64, 256, 512),
        (32, 200, 1, 64, 512), (256, 50, 128, 512, 512), (1, 500, 4, 64, 32)]
GRID_NAMES = ["-".join(map(str, g)) for g in GRID]
BY_NAME = dict(zip(GRID_NAMES, GRID))


def make_data(T, F, N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, F)).astype(np.float32)
    y = X[:, :, 0].mean(axis=1)
    return X, y


def forward_flops(T, F, H, N):
    """GEMM work of one forward pass over N sequences (one layer)."""
    return 2.0 * T * N * (F + H) * 4 * H
