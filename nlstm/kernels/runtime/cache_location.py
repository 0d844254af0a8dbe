"""Where Numba caches nlstm's compiled kernels: a folder of the user's, never the install.

Numba's default writes ``*.nbi``/``*.nbc`` files into ``__pycache__`` beside
the sources, inside site-packages. ``pip uninstall`` leaves them (and their
folders) behind, and a later ``pip install -e .`` then imported the leftover
``nlstm`` folder as an empty namespace package ("cannot import name ...
(unknown location)"). Here nlstm's kernels are cached under the user's cache
folder (``~/.cache/nlstm`` on Linux), in a subfolder named by a digest of the
kernel sources: Numba re-checks a cached kernel against its own file only, so
an edit of a helper in another file (``activations.py``, say) must lead to a
new folder, not to the old compiled code. Where that folder cannot be written
(a read-only home), a folder in the system's temporary directory serves.
``NUMBA_CACHE_DIR``, when set, takes precedence, as for all Numba code.

`install` puts the locator first among Numba's (after ``NUMBA_CACHE_DIR``'s);
it claims only the files of this package.
"""
import hashlib
import os
import tempfile
from pathlib import Path

from numba.core import caching, config

_KERNELS = Path(__file__).resolve().parent.parent  # nlstm/kernels


def _source_digest():
    digest = hashlib.sha256()
    for source in sorted(_KERNELS.rglob("*.py")):
        digest.update(source.relative_to(_KERNELS).as_posix().encode() + b"\0"
                      + source.read_bytes())
    return digest.hexdigest()[:16]


def _user_cache_root():
    from numba.misc.appdirs import AppDirs  # the helper Numba's own user-wide cache uses
    return Path(AppDirs(appname="nlstm", appauthor=False).user_cache_dir)


def _temporary_root():
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"nlstm-cache-{user}"


_DIGEST = _source_digest()
ROOTS = (_user_cache_root(), _temporary_root())  # in order of preference


class NlstmCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Caches the functions of nlstm's own files under ``<root>/<digest>/``."""

    def __init__(self, py_func, py_file, root):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(root / _DIGEST / self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        if config.CACHE_DIR or not Path(py_file).resolve().is_relative_to(_KERNELS.parent):
            return None
        for root in ROOTS:
            locator = cls(py_func, py_file, root)
            try:
                locator.ensure_cache_path()
            except OSError:  # not writable: the next root
                continue
            return locator
        return None


def cache_folder():
    """The folder nlstm's compiled kernels are cached in (None: Numba's own choice)."""
    if config.CACHE_DIR:
        return Path(config.CACHE_DIR)
    for root in ROOTS:
        if (root / _DIGEST).is_dir():
            return root / _DIGEST
    return None


def install():
    """Put `NlstmCacheLocator` right after Numba's ``NUMBA_CACHE_DIR`` locator."""
    # CacheImpl since Numba 0.61 or so, _CacheImpl before
    implementation = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locators = implementation._locator_classes
    if NlstmCacheLocator not in locators:
        locators.insert(1, NlstmCacheLocator)
