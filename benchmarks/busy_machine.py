"""A fit on a busy machine: the demo's model with and without one competing CPU-bound process.

The demo's fit (digits read row by row, ``LSTMClassifier(hidden_size=64)``,
a fixed number of epochs so that every run does the same work) is timed with
the default ``n_jobs`` and with ``n_jobs=1``, on a quiet machine and while one
other process spins a core (``while True: pass``). Each measurement runs in a
fresh process (the order alternates between the settings) and the table gives
medians. With as many Numba threads as cores, a parallel region waits for its
slowest thread, and a thread sharing its core with the other process can lose
its core for a whole scheduler time slice.

Usage: ``python benchmarks/busy_machine.py [--rounds 3] [--epochs 20]``
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

FIT = """
import json, sys, time, warnings
import numpy as np
from sklearn.datasets import load_digits
from nlstm import LSTMClassifier
warnings.simplefilter("ignore")
n_jobs = None if sys.argv[1] == "None" else int(sys.argv[1])
digits = load_digits()
X = (digits.data / 16.0).reshape(-1, 8, 8).astype(np.float32)
clf = LSTMClassifier(hidden_size=64, max_iter=1, random_state=0, n_jobs=n_jobs)
clf.fit(X[:64], digits.target[:64])  # compiled or loaded from the cache before the clock starts
clf.set_params(max_iter=int(sys.argv[2]), tol=0.0, n_iter_no_change=10**6)
start = time.perf_counter()
clf.fit(X, digits.target)
print(json.dumps(time.perf_counter() - start))
"""

SPIN = "while True: pass"


def timed_fit(n_jobs, epochs):
    out = subprocess.run([sys.executable, "-c", FIT, str(n_jobs), str(epochs)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    settings = [("quiet", None), ("quiet", 1), ("busy", None), ("busy", 1)]
    times = {s: [] for s in settings}
    for _ in range(args.rounds):
        for load, n_jobs in settings:
            spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if load == "busy" else None
            try:
                time.sleep(0.2 if spinner else 0)
                times[load, n_jobs].append(timed_fit(n_jobs, args.epochs))
            finally:
                if spinner:
                    spinner.kill()
                    spinner.wait()
    print(f"fit of {args.epochs} epochs on the digits (1,797 sequences of 8 x 8), "
          f"medians of {args.rounds} fresh processes")
    print("| machine | n_jobs=None (default) s | n_jobs=1 s | default / n_jobs=1 |")
    print("|---|---|---|---|")
    for load in ("quiet", "busy"):
        default, one = (statistics.median(times[load, n]) for n in (None, 1))
        print(f"| {load} | {default:.3f} | {one:.3f} | {default / one:.2f} |")


if __name__ == "__main__":
    main()
