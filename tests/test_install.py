"""What nlstm writes on a machine: compiled kernels go to the user's cache, never into the install.

Numba used to cache the kernels in ``__pycache__`` inside site-packages; after
``pip uninstall`` those files kept the ``nlstm`` folder alive, and a later
``pip install -e .`` imported it as an empty namespace package.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nlstm

pytestmark = pytest.mark.slow  # starts processes; -m 'not slow' leaves it out

PACKAGE = Path(nlstm.__file__).resolve().parent
REPOSITORY = PACKAGE.parent

FIT = textwrap.dedent("""
    import warnings
    import numpy as np
    from nlstm import LSTMRegressor
    from nlstm.kernels.runtime.cache_location import cache_folder
    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).standard_normal((12, 4, 2))
    LSTMRegressor(hidden_size=4, max_iter=1).fit(X, X.sum(axis=(1, 2))).predict(X)
    print(cache_folder())
""")


def _cache_files(folder):
    return {p for pattern in ("*.nbi", "*.nbc") for p in Path(folder).rglob(pattern)}


def _environment(**overrides):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(overrides)
    return env


def test_compiled_kernels_are_cached_in_the_user_cache_not_in_the_package(tmp_path):
    before = _cache_files(PACKAGE)
    done = subprocess.run([sys.executable, "-c", FIT], env=_environment(
        XDG_CACHE_HOME=str(tmp_path)), capture_output=True, text=True, check=True)
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path / "nlstm"
    assert _cache_files(folder)
    assert _cache_files(PACKAGE) == before


def test_an_unwritable_user_cache_falls_back_to_the_temporary_folder(tmp_path):
    # /proc admits no new folder, even for root
    done = subprocess.run([sys.executable, "-c", FIT], env=_environment(
        XDG_CACHE_HOME="/proc/nlstm-test", TMPDIR=str(tmp_path)), capture_output=True,
        text=True, check=True)
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent.parent == tmp_path
    assert _cache_files(folder)


def _run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@pytest.mark.skipif(sys.platform == "win32", reason="the venv layout below is POSIX's")
def test_uninstall_then_editable_install_imports_the_package(tmp_path):
    """pip install .; a fit; pip uninstall; pip install -e .; import: in a new venv."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = _environment(XDG_CACHE_HOME=str(tmp_path / "cache"))
    source = tmp_path / "source"  # a copy: pip's build must not write into the checkout
    shutil.copytree(PACKAGE, source / "nlstm",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    _run(pip + ["install", str(source)], env=env)
    _run([python, "-c", FIT], env=env, cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env=env).stdout.strip())
    _run(pip + ["uninstall", "-y", "nlstm"], env=env)
    assert not (site / "nlstm").exists(), sorted(map(str, (site / "nlstm").rglob("*")))
    _run(pip + ["install", "--no-deps", "-e", str(source)], env=env)
    check = "from nlstm import LSTMRegressor; import nlstm; print(nlstm.__file__)"
    done = _run([python, "-c", check], env=env, cwd=tmp_path)
    assert Path(done.stdout.strip()).parent == source / "nlstm"
