"""Numba's threading layer: TBB where it is installed, and forked children that stay alive.

Numba runs parallel regions on the first of TBB, OpenMP and its own
``workqueue`` that loads. On a 2-core machine (see ``docs/design.md``):

* GNU OpenMP's workers spin after each region, which slows a fit beside
  another busy process, and its pool is not fork-safe: Numba terminates a
  forked child that starts a parallel region.
* ``workqueue`` is fork-safe but slow to launch.
* TBB is fork-safe, as fast as OpenMP, and its workers yield to other
  processes.

So nlstm depends on the ``tbb`` wheel where one exists (Linux and Windows on
x86-64). Its library lies in the environment's ``lib`` folder, which the
loader does not search in a virtual environment, so Numba would not find it:
`make_tbb_loadable` loads it by its path first. Elsewhere Numba picks OpenMP
or ``workqueue``; `parallel_regions_allowed` is then false in a child forked
from a process whose OpenMP pool ran, and the kernels run their blocks one
after another there (same blocks, same bits).
"""
import ctypes
import os
import sys

import numba

_TBB_LIBRARY = {"linux": "libtbb.so.12", "win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}
_forked_from_openmp = False


def _layer_started():
    """The threading layer Numba runs, or None before its first parallel region."""
    try:
        return numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized."
        return None


def make_tbb_loadable():
    """Load the ``tbb`` wheel's library by its path, so that Numba's default
    choice (TBB first) finds it. Returns whether it was loaded.

    Does nothing where the user chose a layer (``NUMBA_THREADING_LAYER``),
    where a layer already runs, or where the ``tbb`` distribution is absent.
    """
    if str(numba.config.THREADING_LAYER).lower() != "default" or _layer_started() is not None:
        return False
    library = _TBB_LIBRARY.get(sys.platform)
    try:
        from importlib import metadata
        files = metadata.files("tbb") or []
    except Exception:  # PackageNotFoundError, or unreadable metadata
        return False
    for file in files:
        if file.name == library:
            try:
                ctypes.CDLL(str(file.locate()), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            except OSError:
                return False
            return True
    return False


def parallel_regions_allowed():
    """False in a child forked from a process whose OpenMP pool had started."""
    return not _forked_from_openmp


def _after_fork_in_child():
    global _forked_from_openmp
    if _layer_started() == "omp":
        _forked_from_openmp = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
