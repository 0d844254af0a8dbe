"""Test-session setup.

``SCIPY_ARRAY_API=1`` must be set before scipy is first imported: without it,
scikit-learn's estimator checks skip their array-API input check (for our
estimators it runs with the NumPy namespace only).

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is first imported: the
CUDA kernels are checked on Numba's CPU simulator of a GPU. On a machine with
an NVIDIA GPU, run the tests with ``NUMBA_ENABLE_CUDASIM=0`` to check them on it.
pytest's ``filterwarnings`` setting imports numba before this file runs, so
numba's configuration is re-read here (``numba.cuda`` is not imported yet).

Numba caches nlstm's kernels in the user's cache folder, in a subfolder named
by a digest of the kernel sources (`nlstm.kernels.runtime.cache_location`), so an edit
of any kernel file gives the tests freshly compiled code.
"""
import os

import pytest

os.environ.setdefault("SCIPY_ARRAY_API", "1")
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from numba.core import config as _numba_config  # noqa: E402

_numba_config.reload_config()


@pytest.fixture(scope="module")
def client():
    """A ``LocalCluster`` of 2 worker processes, one thread each, and its client."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client
