"""Streams and truncated BPTT, measured: what issue #44 asks to show.

1. One step of one stream (F=4, H=64, float32): ``Stream.predict`` of a
   (1, 1, 4) chunk against a ``torch.nn.LSTMCell`` + ``torch.nn.Linear`` step
   under ``no_grad``, one thread each; and the layer's own path for one step
   (``LSTM.forward`` with ``initial_state``) for comparison.
2. 64 streams, one step at a time: the same with a (64, 1, 4) chunk (one thread each).
3. A 10,000-step sequence streamed in chunks of 100 against ``predict`` on the
   whole sequence (a ``return_sequences`` model; Numba's default threads).
4. Truncated BPTT: one epoch on one recording (F=4, H=64, ``tbptt_steps=100``)
   of 100,000 and 1,000,000 steps against the plain fit, each in a fresh
   process: peak resident memory above the process's start and time per step.

Usage: ``python benchmarks/compare_streams.py [--repeats 7] [--skip-memory]``
"""
import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np

F, H = 4, 64


def median_us(function, repeats, number):
    """Median over ``repeats`` of the mean time of ``number`` calls, in microseconds."""
    for _ in range(number // 10 + 1):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number * 1e6)
    return float(np.median(times))


def fitted_regressor(return_sequences=False, n_jobs=None):
    from nlstm import LSTMRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 30, F)).astype(np.float32)
    y = np.cumsum(X[:, :, 0], axis=1) if return_sequences else X[:, :, 0].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LSTMRegressor(hidden_size=H, max_iter=1, return_sequences=return_sequences,
                             n_jobs=n_jobs, random_state=0).fit(X, y)


def step_times(n_streams, repeats):
    """(nlstm stream step, torch LSTMCell + Linear step, nlstm layer.forward step) in us."""
    import numba
    import torch
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    reg = fitted_regressor(n_jobs=1)
    stream = reg.stream(n_streams=n_streams)
    x = np.random.default_rng(1).standard_normal((n_streams, 1, F)).astype(np.float32)
    ours = median_us(lambda: stream.predict(x), repeats, 2000)

    cell, head = torch.nn.LSTMCell(F, H), torch.nn.Linear(H, 1)
    xt = torch.from_numpy(x[:, 0])
    state = [torch.zeros(n_streams, H), torch.zeros(n_streams, H)]

    def torch_step():
        with torch.no_grad():
            state[:] = cell(xt, tuple(state))
            return head(state[0])
    theirs = median_us(torch_step, repeats, 2000)

    layer = reg.network_.lstm
    h = np.zeros((1, n_streams, H), np.float32)
    layer_step = median_us(lambda: layer.forward(x, initial_state=(h, h)), repeats, 300)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return ours, theirs, layer_step


def chunk_times(repeats):
    """(10,000 steps in chunks of 100 through a stream, predict on the whole) in ms."""
    reg = fitted_regressor(return_sequences=True)
    x = np.random.default_rng(2).standard_normal((1, 10_000, F)).astype(np.float32)

    def streamed():
        stream = reg.stream()
        for start in range(0, 10_000, 100):
            stream.predict(x[:, start:start + 100])
    return (median_us(streamed, repeats, 3) / 1e3,
            median_us(lambda: reg.predict(x), repeats, 3) / 1e3)


CHILD = """
import json, resource, time, warnings
import numpy as np
from nlstm import LSTMRegressor

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

T, k = {T}, {k}
rng = np.random.default_rng(0)
x = rng.standard_normal((1, T, {F})).astype(np.float32)
y = np.convolve(x[0, :, 0], np.ones(5), "same")[None]
warnings.simplefilter("ignore")
LSTMRegressor(hidden_size={H}, return_sequences=True, tbptt_steps=k, max_iter=1).fit(
    x[:, :500], y[:, :500])  # compiled (or loaded from the cache) before the baseline
start = rss_mib()
began = time.perf_counter()
LSTMRegressor(hidden_size={H}, return_sequences=True, tbptt_steps=k, max_iter=1,
              random_state=0).fit(x, y)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps([peak - start, seconds / T * 1e6]))
"""


def fit_memory(T, k):
    """(peak MiB above the start, us per step) of one epoch on one recording of T steps."""
    child = CHILD.format(T=T, k=k, F=F, H=H)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    print("| streams | nlstm stream step (us) | torch LSTMCell+Linear (us) | torch / nlstm | "
          "nlstm LSTM.forward step (us) |")
    print("|---|---|---|---|---|")
    for n_streams in (1, 64):
        ours, theirs, layer_step = step_times(n_streams, args.repeats)
        print(f"| {n_streams} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f}x | "
              f"{layer_step:.1f} |", flush=True)

    streamed, whole = chunk_times(args.repeats)
    print(f"\n10,000 steps: chunks of 100 through a stream {streamed:.2f} ms, predict on the "
          f"whole {whole:.2f} ms, ratio {streamed / whole:.2f}", flush=True)

    if args.skip_memory:
        return
    print("\n| steps | fit | peak MiB above start | us per step |")
    print("|---|---|---|---|")
    for T in (100_000, 1_000_000):
        for k, name in ((100, "tbptt_steps=100"), (None, "plain (whole sequence)")):
            mib, per_step = fit_memory(T, k)
            print(f"| {T:,} | {name} | {mib:.0f} | {per_step:.2f} |", flush=True)


if __name__ == "__main__":
    main()
