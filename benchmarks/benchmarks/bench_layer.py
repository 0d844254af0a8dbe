"""The layer's forward and backward on the speed grid (one batch), for the LSTM and the GRU."""
import time

import numpy as np

from nlstm import LSTM

from .common import BY_NAME, GRID_NAMES, forward_flops


class LayerForwardBackward:
    params = [GRID_NAMES, ["lstm", "gru"]]
    param_names = ["B-T-F-H-N", "cell"]
    timeout = 300

    def setup(self, config, cell):
        B, T, F, H, _ = BY_NAME[config]
        self.x = np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)
        self.layer = LSTM(F, H, cell=cell, random_state=0)
        out, _ = self.layer.forward(self.x)  # JIT warm-up
        self.d_out = np.ones_like(out)
        self.layer.backward(self.d_out)

    def time_forward(self, config, cell):
        self.layer.forward(self.x)

    def time_forward_backward(self, config, cell):
        self.layer.forward(self.x)
        self.layer.backward(self.d_out)

    def track_forward_gflops(self, config, cell):
        B, T, F, H, _ = BY_NAME[config]
        start = time.perf_counter()
        for _ in range(3):
            self.layer.forward(self.x)
        flops = forward_flops(T, F, H, B) * (3 / 4 if cell == "gru" else 1)  # torch's gate count
        return flops * 3 / (time.perf_counter() - start) / 1e9

    track_forward_gflops.unit = "GFLOP/s"

    def track_forward_backward_gflops(self, config, cell):
        B, T, F, H, _ = BY_NAME[config]
        start = time.perf_counter()
        for _ in range(3):
            self.layer.forward(self.x)
            self.layer.backward(self.d_out)
        flops = forward_flops(T, F, H, B) * (3 / 4 if cell == "gru" else 1)
        return 3 * flops * 3 / (time.perf_counter() - start) / 1e9

    track_forward_backward_gflops.unit = "GFLOP/s"


class LayerForwardBackwardFloat64:
    """float64 on the two smaller grid configs: tracks the vectorised float64
    tanh (the C library's scalar tanh made float64 about 10x slower)."""
    params = [GRID_NAMES[:2]]
    param_names = ["B-T-F-H-N"]
    timeout = 300

    def setup(self, config):
        B, T, F, H, _ = BY_NAME[config]
        self.x = np.random.default_rng(0).standard_normal((B, T, F))
        self.layer = LSTM(F, H, dtype="float64", random_state=0)
        out, _ = self.layer.forward(self.x)  # JIT warm-up
        self.d_out = np.ones_like(out)
        self.layer.backward(self.d_out)

    def time_forward_backward(self, config):
        self.layer.forward(self.x)
        self.layer.backward(self.d_out)
