"""Estimator-level benchmarks: a fit epoch, predict, peak memory, the torch ratio."""
import tracemalloc
import warnings

from nlstm import LSTMRegressor

from .common import BY_NAME, GRID_NAMES, make_data


def _fit_one_epoch(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)


class EstimatorEpoch:
    params = [GRID_NAMES]
    param_names = ["B-T-F-H-N"]
    timeout = 600

    def setup(self, config):
        B, T, F, H, N = BY_NAME[config]
        self.X, self.y = make_data(T, F, N)
        self.model = LSTMRegressor(hidden_size=H, batch_size=B, learning_rate_init=1e-3,
                                   max_iter=1, random_state=0)
        _fit_one_epoch(self.model, self.X, self.y)  # JIT warm-up

    def time_fit_epoch(self, config):
        _fit_one_epoch(self.model, self.X, self.y)

    def time_predict(self, config):
        self.model.predict(self.X)

    def peakmem_fit_epoch(self, config):
        _fit_one_epoch(self.model, self.X, self.y)

    def track_predict_allocated_mib(self, config):
        """Peak of the NumPy arrays a predict call allocates (tracemalloc; a
        ``peakmem_`` would report the fit in ``setup``)."""
        tracemalloc.start()
        try:
            self.model.predict(self.X)
            return tracemalloc.get_traced_memory()[1] / 2 ** 20
        finally:
            tracemalloc.stop()

    track_predict_allocated_mib.unit = "MiB"


class TorchRatio:
    """How many times faster nlstm is than PyTorch's CPU LSTM or GRU (skipped without torch)."""
    params = [GRID_NAMES, ["lstm", "gru"]]
    param_names = ["B-T-F-H-N", "cell"]
    timeout = 900

    def setup(self, config, cell):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise NotImplementedError("torch is not installed") from None
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from compare_torch import measure
        B, T, F, H, N = BY_NAME[config]
        self.result = measure(B, T, F, H, N, repeats=2, cell=cell)

    def track_train_speedup(self, config, cell):
        return self.result[("torch", "train")] / self.result[("nlstm", "train")]

    def track_predict_speedup(self, config, cell):
        return self.result[("torch", "predict")] / self.result[("nlstm", "predict")]

    track_train_speedup.unit = "x"
    track_predict_speedup.unit = "x"
