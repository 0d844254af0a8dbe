"""Models used from other processes: forked, spawned and forkserver pools, and a bare fork.

A pool started with fork after a fit (Linux's default up to Python 3.13) used
to die: Numba had picked GNU OpenMP, whose pool a forked child may not use
(Numba terminates it), and the pool hung. nlstm now runs on TBB where its
wheel is installed, and with OpenMP a forked child runs the kernels' blocks
one after another (`nlstm.kernels.runtime.threading_layer`). Each case runs in a fresh
interpreter with a timeout, so a hang fails the test instead of the session.
"""
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

pytestmark = pytest.mark.slow  # starts processes; -m 'not slow' leaves it out

SCRIPT = textwrap.dedent("""
    import json, multiprocessing, os, sys, warnings
    import numba
    import numpy as np
    from nlstm import LSTMRegressor

    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).standard_normal((24, 6, 2)).astype(np.float32)
    model = LSTMRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, X.sum(axis=(1, 2)))

    def predict(_):
        return model.predict(X).tolist()

    if __name__ == "__main__":
        results = {"layer": numba.threading_layer(), "parent": predict(0)}
        for method in ("fork", "spawn", "forkserver"):
            with multiprocessing.get_context(method).Pool(2) as pool:
                results[method] = pool.map_async(predict, range(2)).get(timeout=120)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # a bare fork, as servers and job runners do
            os.write(writer, json.dumps(predict(0)).encode())
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as pipe:
            results["os.fork"] = json.loads(pipe.read())
        results["os.fork exit"] = os.waitpid(pid, 0)[1]
        print(json.dumps(results))
""")


def _run(tmp_path, layer):
    script = tmp_path / "processes.py"  # spawn and forkserver re-import the main module
    script.write_text(SCRIPT)
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layer", [None, "omp"], ids=["default layer", "OpenMP"])
def test_fitted_model_predicts_in_forked_spawned_and_forkserver_workers(tmp_path, layer):
    results = _run(tmp_path, layer)
    if layer is not None:
        assert results["layer"] == layer
    for method in ("fork", "spawn", "forkserver"):
        assert results[method] == [results["parent"]] * 2, method
    assert results["os.fork exit"] == 0
    assert results["os.fork"] == results["parent"]


def _tbb_installed():
    try:
        metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _tbb_installed(),
                    reason="the tbb wheel is a dependency on Linux and Windows x86-64 only")
def test_numba_runs_on_tbb_where_its_wheel_is_installed(tmp_path):
    assert _run(tmp_path, None)["layer"] == "tbb"
