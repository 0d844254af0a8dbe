"""``python -m nlstm demo``: the main job, a real fit on real data.

scikit-learn's handwritten digits (1,797 scans of 8x8 pixels, shipped inside
scikit-learn) are read as sequences of 8 rows of 8 pixels. An LSTM classifier
reads each image row by row; the script prints test accuracy beside the
majority-class baseline and a logistic regression on the raw pixels, the fit
time, and writes a plot of the loss curve and some test predictions.
"""
import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from .estimators import LSTMClassifier


def run(output="nlstm-demo.png", max_iter=60, quiet=False):
    """Fit, print the metrics and write the plot. Returns the metrics as a dict."""
    digits = load_digits()
    X = (digits.data / 16.0).reshape(-1, 8, 8).astype(np.float32)  # (n, T=8 rows, F=8 pixels)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, stratify=digits.target, random_state=0)

    clf = LSTMClassifier(hidden_size=64, max_iter=max_iter, random_state=0)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    pred = clf.predict(X_test)

    majority = np.bincount(y_train).argmax()
    logistic = LogisticRegression(max_iter=2000).fit(X_train.reshape(len(X_train), -1), y_train)
    results = {
        "lstm_accuracy": accuracy_score(y_test, pred),
        "lstm_macro_f1": f1_score(y_test, pred, average="macro"),
        "majority_accuracy": accuracy_score(y_test, np.full_like(y_test, majority)),
        "logistic_accuracy": logistic.score(X_test.reshape(len(X_test), -1), y_test),
        "fit_seconds": fit_seconds,
        "epochs": clf.n_iter_,
    }
    if not quiet:
        print(f"nlstm demo: digits read row by row ({len(X_train)} train / {len(X_test)} test "
              f"sequences of 8 steps x 8 pixels)")
        print(f"  LSTMClassifier(hidden_size=64): accuracy {results['lstm_accuracy']:.4f}, "
              f"macro F1 {results['lstm_macro_f1']:.4f}")
        print(f"  baseline, majority class:       accuracy {results['majority_accuracy']:.4f}")
        print(f"  baseline, logistic regression:  accuracy {results['logistic_accuracy']:.4f}")
        print(f"  fit time: {fit_seconds:.2f} s for {clf.n_iter_} epochs "
              f"({fit_seconds / clf.n_iter_:.3f} s per epoch)")
    if output:
        _plot(clf, X_test, y_test, pred, output)
        if not quiet:
            print(f"  plot written to {output}")
    return results


def _plot(clf, X_test, y_test, pred, output):
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "the demo's plot needs matplotlib: pip install 'nlstm[examples]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 4))
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(np.arange(1, len(clf.loss_curve_) + 1), clf.loss_curve_)
    ax.set(xlabel="epoch", ylabel="training cross-entropy", title="LSTM on digits, row by row")
    for k in range(8):
        sub = fig.add_subplot(2, 8, 5 + (k // 4) * 8 + k % 4)
        sub.imshow(X_test[k], cmap="gray_r")
        colour = "green" if pred[k] == y_test[k] else "red"
        sub.set_title(f"pred {pred[k]}", color=colour, fontsize=9)
        sub.axis("off")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nlstm demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="nlstm-demo.png", help="where to write the plot")
    parser.add_argument("--max-iter", type=int, default=60, help="training epochs")
    args = parser.parse_args(argv)
    run(args.output, args.max_iter)
