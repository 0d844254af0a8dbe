"""Code compiled in the process and code loaded from Numba's cache give the same bits.

Numba writes a compiled kernel to its cache and a later process runs that,
while the compiling process runs what it built in memory. The two differed
while the kernels *called* their helpers (`nlstm.kernels.codegen.inlining`): the
compiling process also compiled each helper as a function of its own and the
kernel's call went to that copy, whereas a process loading the kernel from the
cache ran the kernel's own copy, optimised anew inside the kernel's module.
The float64 backward sweep's gradients differed in the last bits, and a float32
change to the derivatives made a fit on Dask workers stop matching the same fit
in process. The helpers are now inlined into every kernel. This test runs the
layer's forward and backward in a fresh process with an empty cache, then in one
that loads the cache, and compares the bits.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # starts processes; -m 'not slow' leaves it out

SCRIPT = """
import sys
import numpy as np
from nlstm import LSTM
rng = np.random.default_rng(0)
for dtype in ("float32", "float64"):
    layer = LSTM(2, 8, 2, bidirectional=True, dtype=dtype, random_state=0)
    x = rng.normal(size=(16, 12, 2))
    out, _ = layer.forward(x, lengths=rng.integers(1, 13, 16))
    d_x, grads = layer.backward(rng.normal(size=out.shape), rng.normal(size=(4, 16, 8)),
                                rng.normal(size=(4, 16, 8)))
    results = dict(out=out, d_x=d_x, **grads)
    np.savez(sys.argv[1] + dtype, **results)
"""


def _run(folder, cache, name):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    subprocess.run([sys.executable, "-c", SCRIPT, str(folder / name)], env=env, check=True)
    return {dtype: np.load(folder / f"{name}{dtype}.npz") for dtype in ("float32", "float64")}


@pytest.fixture(scope="module")
def compiled_and_cached(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numba-cache-bits")
    cache = folder / "numba-cache"
    compiled = _run(folder, cache, "compiled")  # empty cache: compiles, then writes it
    assert any(cache.rglob("*.nbc")), "the first process wrote no cache"
    return compiled, _run(folder, cache, "cached")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_and_cached_kernels_give_the_same_bits(compiled_and_cached, dtype):
    compiled, cached = compiled_and_cached
    for key in compiled[dtype].files:
        np.testing.assert_array_equal(cached[dtype][key], compiled[dtype][key], err_msg=key)
