"""Multi-step forecasting of atmospheric CO2 at Mauna Loa, against naive baselines.

Data: weekly CO2 concentration (ppm) at Mauna Loa, March 1958 to December 2001, as
shipped in ``statsmodels.datasets.co2`` (installed by nlstm's ``examples`` extra);
averaged to 526 months, gaps filled by linear interpolation.

The model reads the last 36 months and forecasts the next 12 at once
(``LSTMRegressor`` with 12 outputs). It works on changes: inputs are the window minus
its last value, targets the next 12 months minus that same value, so the trend the
model learns carries over to levels it never saw in training (the series keeps
rising). The last 96 months are held out; every window that ends in them is a test
forecast. Baselines: the last value held flat ("naive"), and the same month one year
earlier plus the trend of the past year ("seasonal naive with drift").

Prints the test mean absolute error at each horizon for all three and writes
``forecasting.png`` (forecasts from four origins against the truth, and error by
horizon). ``--quick`` runs a reduced version.
"""
import argparse
import time
import warnings

import numpy as np

from nlstm import LSTMRegressor

LOOKBACK, HORIZON, N_TEST_MONTHS = 36, 12, 96


def load_monthly_co2():
    """(dates, ppm): monthly means of the statsmodels weekly series."""
    from statsmodels.datasets import co2
    weekly = co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate()
    return monthly.index.to_numpy(), monthly.to_numpy(dtype=np.float64)


def make_windows(series, starts):
    """Inputs (n, LOOKBACK, 1) and targets (n, HORIZON), both relative to each window's
    last value, plus that value (n,)."""
    X = np.stack([series[s:s + LOOKBACK] for s in starts])
    Y = np.stack([series[s + LOOKBACK:s + LOOKBACK + HORIZON] for s in starts])
    anchor = X[:, -1].copy()
    return (X - anchor[:, None])[:, :, None], Y - anchor[:, None], anchor


def seasonal_naive_with_drift(series, starts):
    """Value 12 months before each target month, plus the past year's average change."""
    forecasts = []
    for s in starts:
        history = series[:s + LOOKBACK]
        drift = (history[-1] - history[-13]) / 12.0
        h = np.arange(1, HORIZON + 1)
        forecasts.append(history[-12 + (h - 1) % 12] + drift * 12 * ((h - 1) // 12 + 1))
    return np.array(forecasts)


QUICK = dict(epochs=15, hidden_size=16)  # the reduced run: --quick, and the tests


def run(epochs=150, hidden_size=64, output="forecasting.png", quiet=False):
    dates, series = load_monthly_co2()
    n_windows = len(series) - LOOKBACK - HORIZON + 1
    last_train_start = len(series) - N_TEST_MONTHS - LOOKBACK - HORIZON
    train_starts = np.arange(0, last_train_start + 1)                 # targets before the test span
    test_starts = np.arange(len(series) - N_TEST_MONTHS - LOOKBACK, n_windows)  # targets in it
    X_train, Y_train, _ = make_windows(series, train_starts)
    X_test, Y_test, anchor = make_windows(series, test_starts)
    truth = Y_test + anchor[:, None]

    model = LSTMRegressor(hidden_size=hidden_size, batch_size=32, learning_rate_init=0.003,
                          max_iter=epochs, early_stopping=True, validation_fraction=0.15,
                          n_iter_no_change=20, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train.astype(np.float32), Y_train)
    seconds = time.perf_counter() - start
    lstm = model.predict(X_test.astype(np.float32)) + anchor[:, None]
    naive = np.repeat(anchor[:, None], HORIZON, axis=1)
    seasonal = seasonal_naive_with_drift(series, test_starts)

    mae = {name: np.abs(f - truth).mean(axis=0)
           for name, f in [("LSTM", lstm), ("seasonal naive + drift", seasonal), ("naive", naive)]}
    results = {"mae": mae, "seconds": seconds, "epochs": model.n_iter_,
               "n_train": len(X_train), "n_test": len(X_test)}
    if not quiet:
        print(f"{len(series)} months; {len(X_train)} training windows, {len(X_test)} test "
              f"forecasts (targets in the last {N_TEST_MONTHS} months)")
        print(f"LSTM {hidden_size}: {model.n_iter_} epochs, {seconds:.1f} s")
        print("test mean absolute error (ppm) at horizon 1, 3, 6, 12 months and overall:")
        for name, err in mae.items():
            print(f"  {name:24s} {err[0]:5.2f} {err[2]:5.2f} {err[5]:5.2f} {err[11]:5.2f}   "
                  f"overall {err.mean():.2f}")
    if output:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4),
                                          gridspec_kw={"width_ratios": [1.8, 1]})
        shown = slice(len(series) - N_TEST_MONTHS - 24, None)
        left.plot(dates[shown], series[shown], color="black", lw=1, label="observed")
        for k, i in enumerate(np.linspace(0, len(test_starts) - 1, 4).astype(int)):
            months = dates[test_starts[i] + LOOKBACK:test_starts[i] + LOOKBACK + HORIZON]
            left.plot(months, lstm[i], color="tab:blue", lw=2, label="LSTM" if k == 0 else None)
            left.plot(months, seasonal[i], color="tab:orange", ls="--",
                      label="seasonal naive + drift" if k == 0 else None)
            left.plot(months, naive[i], color="gray", ls=":", label="naive" if k == 0 else None)
        left.axvline(dates[len(series) - N_TEST_MONTHS], color="gray", lw=0.5)
        left.set(ylabel="CO2 (ppm)", title="12-month forecasts from four test origins")
        left.legend(fontsize=8)
        for name, err in mae.items():
            right.plot(np.arange(1, HORIZON + 1), err, marker="o", label=name)
        right.set(xlabel="horizon (months)", ylabel="test MAE (ppm)", title="Error by horizon")
        right.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(output, dpi=100)
        plt.close(fig)
        if not quiet:
            print(f"plot written to {output}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run (for tests)")
    parser.add_argument("--output", default="forecasting.png")
    args = parser.parse_args()
    run(output=args.output, **(QUICK if args.quick else {}))
