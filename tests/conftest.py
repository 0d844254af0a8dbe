"""Test-session setup.

``SCIPY_ARRAY_API=1`` must be set before scipy is first imported: without it,
scikit-learn's estimator checks skip their array-API input check (for our
estimators it runs with the NumPy namespace only).

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is first imported: the
CUDA kernels are checked on Numba's CPU simulator of a GPU. On a machine with
an NVIDIA GPU, run the tests with ``NUMBA_ENABLE_CUDASIM=0`` to check them on it.
pytest's ``filterwarnings`` setting imports numba before this file runs, so
numba's configuration is re-read here (``numba.cuda`` is not imported yet).

``NUMBA_CACHE_DIR`` (unless already set) is a directory named by a digest of
the sources in ``nlstm/kernels``. Numba invalidates a function's cache when
its own file changes, not when a function it calls from another file does
(numba's documented limitation), so after an edit of ``activations.py``,
``blas.py``, ``blocks.py``, ``inlining.py``, ``packed.py`` or ``vector_width.py`` the in-tree cache would keep
running the old compiled code under the tests. A new digest gives a new,
empty directory; the directories of other digests are removed.
"""
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

os.environ.setdefault("SCIPY_ARRAY_API", "1")
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def _kernel_cache_dir():
    """``.numba-cache/<digest of nlstm/kernels/*.py>`` beside the package
    (found without importing it: its kernels compile against the cache
    directory set here); directories of other digests are removed."""
    package = Path(importlib.util.find_spec("nlstm").submodule_search_locations[0])
    digest = hashlib.sha256()
    for source in sorted((package / "kernels").glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    name = digest.hexdigest()[:16]
    caches = package.parent / ".numba-cache"
    if caches.is_dir():
        for stale in caches.iterdir():
            if stale.name != name:
                shutil.rmtree(stale, ignore_errors=True)
    return str(caches / name)


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = _kernel_cache_dir()

from numba.core import config as _numba_config  # noqa: E402

_numba_config.reload_config()
