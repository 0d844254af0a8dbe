"""The README's code runs as written, and the help users reach for says what it should.

Every ```python block of the README is executed on its own, in a fresh namespace in a
temporary folder; a block that imports an optional package (PyTorch, Dask) is skipped
where that package is not installed.
"""
import ast
import importlib.util
import pydoc
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from nlstm import LSTM, LSTMClassifier, LSTMRegressor, SequenceScaler

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _imported_packages(code):
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_the_readme_has_code_to_run():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_python_block_runs(number, tmp_path, monkeypatch):
    code = BLOCKS[number]
    for package in set(_imported_packages(code)):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"block {number} imports {package}, which is not installed")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
        exec(compile(code, f"README.md, python block {number}", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("estimator", [LSTMRegressor, LSTMClassifier])
def test_help_of_each_estimator_lists_its_parameters(estimator):
    text = pydoc.render_doc(estimator, renderer=pydoc.plaintext)
    for name in estimator().get_params():
        assert re.search(rf"\n \|  {name} : ", text), name
    assert "Same as" not in text


def test_help_of_the_scaler_lists_its_parameters():
    text = pydoc.render_doc(SequenceScaler, renderer=pydoc.plaintext)
    for name in SequenceScaler().get_params():
        assert re.search(rf"\n \|  {name} : ", text), name


def test_the_layer_has_a_repr_that_rebuilds_it():
    layer = LSTM(3, 16, num_layers=2, bidirectional=True, cell="rnn", dtype="float64")
    assert repr(layer) == ("LSTM(3, 16, num_layers=2, bidirectional=True, cell='rnn', "
                           "dtype='float64')")
    assert repr(eval(repr(layer), {"LSTM": LSTM})) == repr(layer)
    assert repr(LSTM(1, 2)) == "LSTM(1, 2)"


@pytest.mark.slow  # starts processes
def test_command_line_help_exits_zero_and_unknown_commands_do_not():
    for flag in ("--help", "-h"):
        done = subprocess.run([sys.executable, "-m", "nlstm", flag], capture_output=True,
                              text=True)
        assert done.returncode == 0 and "usage: python -m nlstm" in done.stdout
        assert "demo" in done.stdout
    done = subprocess.run([sys.executable, "-m", "nlstm", "fly"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown command 'fly'" in done.stderr
    done = subprocess.run([sys.executable, "-m", "nlstm", "demo", "--help"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "--max-iter" in done.stdout
