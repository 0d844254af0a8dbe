"""Thread control around kernel launches.

Three rules (``docs/design.md``, "Parallelism and determinism" and "The
threading layer"), kept in one place:

* BLAS runs single-threaded while Numba's threads run kernels that call it
  (a multi-threaded BLAS inside ``prange`` oversubscribes the cores). The limit
  is process-wide, so it is reference-counted: the first caller in sets it, the
  last one out restores the user's setting, whatever the threads interleave.
  The BLAS libraries are found once (`_blas_controllers`): a fresh
  ``threadpool_limits`` re-reads the process's loaded libraries each time,
  about 1 ms per call, which is most of a small ``predict``.
* ``n_jobs`` sets Numba's thread count for one call and restores it afterwards.
* Launches are serialised by a process-wide lock: each already uses every
  core it was given, and Numba's ``workqueue`` layer (where it runs; see
  `nlstm.kernels.runtime.threading_layer` for which layer does) aborts the process
  when two Python threads launch parallel kernels at once.
"""
import contextlib
import threading

import numba
from threadpoolctl import ThreadpoolController

_launch_lock = threading.RLock()
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved_limits = None
_blas_libraries = None


def _blas_controllers():
    """threadpoolctl's controllers of the process's BLAS libraries, found once.

    The kernels' BLAS (`nlstm.kernels.codegen.blas.routines`: the ``scipy-openblas32``
    wheel's library, else SciPy's) is loaded first, so that the scan finds it;
    so is SciPy's (``scipy.linalg.cython_blas``), which other Numba code calls.
    """
    global _blas_libraries
    if _blas_libraries is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)

        from .kernels.codegen.blas import routines
        routines()  # loads the BLAS the kernels call
        _blas_libraries = [library for library in ThreadpoolController().lib_controllers
                           if library.user_api == "blas"]
    return _blas_libraries


def resolve_n_jobs(n_jobs):
    """Number of Numba threads for ``n_jobs`` (joblib's convention).

    ``None`` keeps the current thread count, ``-1`` means all of Numba's
    threads, ``-2`` all but one, and a positive number is capped at the
    number of threads Numba was started with.
    """
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return numba.get_num_threads()
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return min(n_jobs, available)


@contextlib.contextmanager
def single_threaded_blas():
    """Hold BLAS at one thread while the block runs (re-entrant, thread-safe)."""
    global _blas_users, _blas_saved_limits
    with _blas_lock:
        if _blas_users == 0:
            # each library's own controller: 8 us per predict, against 25 us
            # for a ThreadpoolController.limit and its restore (measured)
            libraries = _blas_controllers()
            _blas_saved_limits = [library.num_threads for library in libraries]
            for library in libraries:
                library.set_num_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for library, limit in zip(_blas_controllers(), _blas_saved_limits):
                    library.set_num_threads(limit)
                _blas_saved_limits = None


@contextlib.contextmanager
def kernel_threads(n_jobs=None):
    """Run the block with ``n_jobs`` Numba threads and single-threaded BLAS.

    Yields nothing: the kernels split their work by the size of Numba's thread
    pool, never by the thread count of the call (`nlstm.kernels.cpu.shard_bounds`).
    """
    n_threads = resolve_n_jobs(n_jobs)
    previous = numba.get_num_threads()
    with single_threaded_blas():
        numba.set_num_threads(n_threads)
        try:
            yield
        finally:
            numba.set_num_threads(previous)


def launch_lock():
    """The lock that serialises parallel kernel launches across Python threads."""
    return _launch_lock
