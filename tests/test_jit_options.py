"""One JIT-options policy for every kernel (`nlstm.kernels.runtime.jit_options`): every
compiled function takes one of its option sets, and no compiled code carries
LLVM's ``nnan``/``ninf`` flags, so a NaN reaches the loss and a diverging fit
is seen."""
import importlib
import pkgutil

import numpy as np
import pytest
from numba import njit
from numba.core.registry import CPUDispatcher

import nlstm.kernels
from nlstm import LSTM, LSTMRegressor
from nlstm.kernels.runtime import jit_options

POLICY = [jit_options.HELPER, jit_options.KERNEL, jit_options.STEP_KERNEL,
          jit_options.EXACT_KERNEL, jit_options.LAUNCHER]


def _cpu_dispatchers():
    for info in pkgutil.walk_packages(nlstm.kernels.__path__, "nlstm.kernels."):
        if "cuda" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module.__name__:
                yield f"{info.name.removeprefix('nlstm.kernels.')}.{name}", value


def test_every_cpu_kernel_takes_an_option_set_of_the_policy():
    found = dict(_cpu_dispatchers())
    assert len(found) >= 14, sorted(found)
    for name, dispatcher in found.items():
        options = {k: v for k, v in dispatcher.targetoptions.items()
                   if k not in ("parallel", "nopython", "boundscheck", "cache")}
        if type(dispatcher._cache).__name__ != "NullCache":  # cache=True
            options["cache"] = True
        assert options in POLICY, (name, options)
        if dispatcher.targetoptions.get("parallel"):
            assert options == jit_options.LAUNCHER, name


def test_the_fast_math_flags_leave_out_nnan_and_ninf():
    assert jit_options.FASTMATH.isdisjoint({"nnan", "ninf", "fast"})
    assert jit_options.HELPER["fastmath"] is jit_options.FASTMATH


@pytest.mark.slow  # compiles every kernel afresh
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_compiled_kernels_carry_no_nnan_or_ninf_flags():
    """Every kernel that does float math, compiled afresh from its source with
    its options (Numba keeps no IR of code loaded from its cache) for the
    first signature a forward and backward in each dtype gave it."""
    X = np.random.default_rng(0).standard_normal((8, 3, 2))
    for dtype in ("float32", "float64"):
        for cell in ("lstm", "rnn"):
            LSTMRegressor(hidden_size=3, cell=cell, dtype=dtype, max_iter=1).fit(
                X, X.sum(axis=(1, 2))).predict(X)
    checked = []
    for name, dispatcher in _cpu_dispatchers():
        if dispatcher.targetoptions.get("parallel") or not dispatcher.signatures:
            continue
        options = {k: v for k, v in dispatcher.targetoptions.items() if k != "cache"}
        fresh = njit(**options)(dispatcher.py_func)
        signature = dispatcher.signatures[0]
        fresh.compile(signature)
        ir = fresh.inspect_llvm(signature)
        for flag in (" nnan ", " ninf ", " fast "):
            assert flag not in ir, (name, flag)
        checked.append(name)
    assert {"cpu._lstm_inference_shard", "cpu._lstm_backward_shard",
            "plumbing.cpu_arrays._adam_step_kernel"} <= set(checked), checked


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_a_nan_weight_reaches_the_outputs_and_the_gradients(dtype, cell):
    layer = LSTM(2, 4, cell=cell, dtype=dtype, random_state=0)
    state = layer.state_dict()
    weights = state["weight_hh_l0"]
    layer.flat_parameters[layer.flat_parameters.size - 1] = np.nan  # last bias entry
    x = np.random.default_rng(0).standard_normal((3, 5, 2))
    out, _ = layer.forward(x)
    assert np.isnan(out).any()
    _, grads = layer.backward(np.ones_like(out))
    assert np.isnan(grads["weight_hh_l0"]).any()
    assert weights.shape == grads["weight_hh_l0"].shape
