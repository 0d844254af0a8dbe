"""`nlstm.kernels.contracts`: the CPU modules define every function of the device contract,
and the layer, the network and the optimizers call nothing else on them. (The CUDA twins are
checked against the CPU modules in test_cuda.py and test_cuda_arrays.py.)"""
import inspect
import re
from pathlib import Path

import pytest

import nlstm
from nlstm.kernels import contracts, cpu
from nlstm.kernels.plumbing import cpu_arrays

PACKAGE = Path(nlstm.__file__).parent


def test_the_cpu_modules_define_the_contract():
    assert contracts.missing(cpu, contracts.KERNELS) == []
    assert contracts.missing(cpu_arrays, contracts.ARRAYS) == []


def test_every_public_array_function_is_in_the_contract():
    public = {name for name, f in vars(cpu_arrays).items()
              if inspect.isfunction(f) and not name.startswith("_")
              and f.__module__ == cpu_arrays.__name__}
    assert public == set(contracts.ARRAYS)


def test_missing_names_absent_functions_and_other_parameters():
    class Twin:
        @staticmethod
        def matmul_rows(a, b):  # one parameter short of the CPU's
            pass
    assert contracts.missing(Twin, ["matmul_rows"]) == []
    assert contracts.missing(Twin, ["matmul_rows"], reference=cpu) == ["matmul_rows"]
    assert contracts.missing(Twin, ["weight_grads"]) == ["weight_grads"]


@pytest.mark.parametrize("module, variable, names", [
    ("layer.py", "kernels", contracts.KERNELS),
    ("layer.py", "arrays", contracts.ARRAYS),
    ("_network.py", "arrays", contracts.ARRAYS),
    ("optimizers.py", "arrays", contracts.ARRAYS),
])
def test_the_orchestration_calls_only_the_contract(module, variable, names):
    source = (PACKAGE / module).read_text()
    called = set(re.findall(rf"\b{variable}\.([a-z_]+)\(", source))
    assert called, f"{module} calls no {variable}.* function: the check reads nothing"
    assert called <= set(names), called - set(names)
