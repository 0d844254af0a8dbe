"""Each example runs in a reduced mode and shows what it claims."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_range_memory_lstm_remembers_where_rnn_does_not(tmp_path):
    example = load_example("long_range_memory")
    results = example.run(length=30, n_train=600, epochs=6, output=str(tmp_path / "p.png"),
                          quiet=True)
    assert results["rnn"]["accuracy"] <= 0.40  # chance is 0.25
    assert results["lstm"]["accuracy"] >= 0.60
    assert (tmp_path / "p.png").stat().st_size > 10_000
