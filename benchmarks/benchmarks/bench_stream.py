"""Streams and truncated BPTT (issue #44): one step of 1 and 64 streams, a 10,000-step
sequence in chunks of 100 against predict on the whole, and what a truncated-BPTT epoch
on a long recording allocates against the plain fit."""
import tracemalloc
import warnings

import numpy as np

from nlstm import LSTMRegressor

F, H = 4, 64


def _fit(**settings):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 30, F)).astype(np.float32)
    y = np.cumsum(X[:, :, 0], axis=1) if settings.get("return_sequences") else X[:, :, 0].sum(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LSTMRegressor(hidden_size=H, max_iter=1, random_state=0, **settings).fit(X, y)


class StreamStep:
    params = [[1, 64]]
    param_names = ["n_streams"]

    def setup(self, n_streams):
        self.stream = _fit(n_jobs=1).stream(n_streams=n_streams)
        self.x = np.ones((n_streams, 1, F), np.float32)
        self.stream.predict(self.x)  # JIT warm-up

    def time_one_step(self, n_streams):
        self.stream.predict(self.x)


class StreamChunks:
    def setup(self):
        self.model = _fit(return_sequences=True)
        self.x = np.random.default_rng(1).standard_normal((1, 10_000, F)).astype(np.float32)
        self.time_chunks_of_100()
        self.model.predict(self.x[:, :100])

    def time_chunks_of_100(self):
        stream = self.model.stream()
        for start in range(0, 10_000, 100):
            stream.predict(self.x[:, start:start + 100])

    def time_predict_whole(self):
        self.model.predict(self.x)


class TruncatedBPTT:
    """One epoch on one recording of 100,000 steps: peak NumPy allocation (tracemalloc)."""
    params = [[100, None]]
    param_names = ["tbptt_steps"]
    timeout = 300

    def setup(self, tbptt_steps):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((1, 100_000, F)).astype(np.float32)
        self.y = np.convolve(self.x[0, :, 0], np.ones(5), "same")[None]
        self._fit(tbptt_steps, self.x[:, :500], self.y[:, :500])  # JIT warm-up

    @staticmethod
    def _fit(tbptt_steps, x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            LSTMRegressor(hidden_size=H, return_sequences=True, tbptt_steps=tbptt_steps,
                          max_iter=1, random_state=0).fit(x, y)

    def time_fit_epoch(self, tbptt_steps):
        self._fit(tbptt_steps, self.x, self.y)

    def track_fit_allocated_mib(self, tbptt_steps):
        tracemalloc.start()
        try:
            self._fit(tbptt_steps, self.x, self.y)
            return tracemalloc.get_traced_memory()[1] / 2 ** 20
        finally:
            tracemalloc.stop()

    track_fit_allocated_mib.unit = "MiB"
