"""Peak memory of one fit epoch: nlstm against PyTorch's CPU LSTM on the speed grid.

For each (B, T, F, H, N) and each library, a fresh process builds the data,
records its resident memory, runs one training epoch (the same work as
``compare_torch.py``: ``LSTMRegressor.fit`` with ``max_iter=1`` against a plain
Adam loop over ``torch.nn.LSTM`` + a linear head) and reports how far its peak
resident memory (``ru_maxrss``) rose above that starting point. The Numba
cache is warmed first, so nlstm's number is the fit's arrays, not the compiler.

Usage: ``python benchmarks/compare_memory.py``
"""
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_torch import GRID  # noqa: E402

CHILD = """
import json, resource, sys, warnings
sys.path.insert(0, {here!r})
from compare_torch import make_data, NlstmRunner, TorchRunner

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

B, T, F, H, N = {config}
X, y = make_data(T, F, N)
lib = {lib!r}
# imported before the baseline: the growth counts the fit, not the library
if lib == "torch":
    import torch
else:
    import nlstm
warnings.simplefilter("ignore")
start = rss_mib()
runner = (TorchRunner if lib == "torch" else NlstmRunner)(B, T, F, H, N, X, y)  # one epoch
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(peak - start))
"""


def peak_growth_mib(lib, config):
    child = CHILD.format(here=str(HERE), config=config, lib=lib)
    out = subprocess.run([sys.executable, "-c", child],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    print("| B | T | F | H | N | fit-epoch peak MiB nlstm | torch | nlstm / torch |")
    print("|" + "---|" * 8)
    for config in GRID:
        peak_growth_mib("nlstm", config)  # warm the Numba cache
        nlstm_mib, torch_mib = peak_growth_mib("nlstm", config), peak_growth_mib("torch", config)
        B, T, F, H, N = config
        print(f"| {B} | {T} | {F} | {H} | {N} | {nlstm_mib:.0f} | {torch_mib:.0f} | "
              f"{nlstm_mib / torch_mib:.2f} |", flush=True)


if __name__ == "__main__":
    main()
