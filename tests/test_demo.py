"""The README's main job, `python -m nlstm demo`, in a reduced mode."""
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_demo_beats_baseline_and_writes_plot(tmp_path):
    from nlstm.demo import run
    results = run(output=str(tmp_path / "demo.png"), max_iter=15, quiet=True)
    assert results["lstm_accuracy"] > 0.85
    assert results["lstm_accuracy"] > results["majority_accuracy"] + 0.7
    assert (tmp_path / "demo.png").stat().st_size > 10_000


@pytest.mark.slow  # starts a process
def test_module_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nlstm", "demo", "--max-iter", "2", "--output",
                          str(tmp_path / "d.png")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "accuracy" in out.stdout and "majority class" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "nlstm"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
