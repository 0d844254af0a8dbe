"""Cold start in a fresh process: import, first small fit and predict."""
import os
import subprocess
import sys
import tempfile

SCRIPT = """
import time; start = time.perf_counter()
import numpy as np, warnings
warnings.simplefilter("ignore")
from nlstm import LSTMRegressor
X = np.random.default_rng(0).standard_normal((64, 10, 3)).astype(np.float32)
LSTMRegressor(hidden_size=8, max_iter=1).fit(X, X[:, :, 0].sum(1)).predict(X)
print(time.perf_counter() - start)
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


class ColdStart:
    timeout = 300
    number = 1
    repeat = 1

    def track_first_fit_empty_numba_cache(self):
        with tempfile.TemporaryDirectory() as cache:
            return _run(cache)

    def track_first_fit_warm_numba_cache(self):
        with tempfile.TemporaryDirectory() as cache:
            _run(cache)
            return _run(cache)

    track_first_fit_empty_numba_cache.unit = "seconds"
    track_first_fit_warm_numba_cache.unit = "seconds"
