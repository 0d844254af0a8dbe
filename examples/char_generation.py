"""Character-level text generation on the Python documentation that ships with Python.

Data: ``pydoc_data.topics`` (the text ``help("if")`` and friends print), part of every
CPython installation: about 465,000 characters of English prose with code and grammar.
The model reads 64 characters and predicts the next character at every position
(``LSTMClassifier(return_sequences=True)`` with an embedding), then writes new text one
character at a time, sampling from its softmax sharpened or flattened by a temperature:
``p_i ~ p_i ** (1 / temperature)``.

Prints test bits per character beside unigram and bigram (character-pair) baselines and
samples at several temperatures; writes ``char_generation.png`` (the learning curve
against the baselines, with a sample). ``--quick`` runs a reduced version.
"""
import argparse
import time
import warnings
from pydoc_data.topics import topics

import numpy as np

from nlstm import LSTMClassifier

WINDOW = 64
RARE = "\x00"  # stands for characters seen fewer than 20 times


def load_text():
    """All topics in a fixed order, joined by blank lines."""
    return "\n\n".join(topics[name] for name in sorted(topics))


def build_alphabet(text, min_count=20):
    chars, counts = np.unique(list(text), return_counts=True)
    alphabet = [RARE] + [c for c, n in zip(chars, counts) if n >= min_count]
    return {c: i for i, c in enumerate(alphabet)}, alphabet


def encode(text, index):
    return np.array([index.get(c, 0) for c in text], dtype=np.int64)


def windows(ids):
    """Non-overlapping (inputs, next-character targets), each (n, WINDOW)."""
    n = (len(ids) - 1) // WINDOW
    X = ids[:n * WINDOW].reshape(n, WINDOW)
    y = ids[1:n * WINDOW + 1].reshape(n, WINDOW)
    return X, y


def ngram_bits(train, test, n_symbols):
    """Test bits per character of add-one-smoothed unigram and bigram models."""
    unigram = np.bincount(train, minlength=n_symbols) + 1.0
    unigram /= unigram.sum()
    pairs = np.ones((n_symbols, n_symbols))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)
    pairs /= pairs.sum(axis=1, keepdims=True)
    return -np.mean(np.log2(unigram[test[1:]])), -np.mean(np.log2(pairs[test[:-1], test[1:]]))


def model_bits(model, X, y):
    """Mean bits per character the model assigns to the true next characters."""
    proba = model.predict_proba(X)                      # (n, WINDOW, n_classes)
    column = np.searchsorted(model.classes_, y)          # classes_ are the sorted ids seen
    picked = np.take_along_axis(proba, column[..., None], axis=2)[..., 0]
    return -np.mean(np.log2(np.maximum(picked, 1e-12)))


def sample(model, alphabet, index, seed, length, temperature, rng):
    """``length`` new characters after ``seed``, drawn with the given temperature:
    a stream (`LSTMClassifier.stream`) reads the seed, then draws each character
    and feeds it back, one step a character, its state carried along."""
    stream = model.stream()
    stream.predict(encode(seed, index)[None, :])
    ids = stream.sample(length, temperature=temperature,
                        random_state=int(rng.integers(2 ** 31)))[0]
    return "".join(alphabet[i] for i in ids).replace(RARE, "?")


def sample_window(model, alphabet, index, seed, length, temperature, rng):
    """The same draw without a stream: every new character re-reads the last
    `WINDOW` characters from a zero state through ``predict_proba`` (how this
    example generated text before streams; kept to measure the difference)."""
    ids = list(encode(seed, index))
    for _ in range(length):
        context = np.asarray(ids[-WINDOW:], dtype=np.int64)[None, :]  # (1, up to WINDOW)
        p = model.predict_proba(context)[0, -1]          # next-character distribution
        logits = np.log(np.maximum(p, 1e-12)) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(model.classes_[rng.choice(len(p), p=p / p.sum())]))
    return "".join(alphabet[i] for i in ids[len(seed):]).replace(RARE, "?")


# the reduced run: --quick, and the tests
QUICK = dict(n_chars=40_000, epochs=2, hidden_size=64, sample_length=80)


def run(n_chars=300_000, epochs=15, hidden_size=128, sample_length=300,
        temperatures=(0.3, 0.7, 1.0), output="char_generation.png", quiet=False):
    text = load_text()[:n_chars]
    index, alphabet = build_alphabet(text)
    ids = encode(text, index)
    split = int(0.9 * len(ids))
    train_ids, test_ids = ids[:split], ids[split:]       # the last 10% of the text is test
    X_train, y_train = windows(train_ids)
    X_test, y_test = windows(test_ids)

    model = LSTMClassifier(embedding_dim=32, hidden_size=hidden_size, return_sequences=True,
                           batch_size=32, learning_rate_init=0.01, max_iter=epochs,
                           n_iter_no_change=epochs, random_state=0)
    curve = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):  # one epoch at a time, to record test bits per character
            model.partial_fit(X_train, y_train, classes=np.arange(len(alphabet)))
            curve.append(model_bits(model, X_test, y_test))
            if not quiet:
                print(f"epoch {len(curve)}: test {curve[-1]:.2f} bits/char "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    unigram, bigram = ngram_bits(train_ids, test_ids, len(alphabet))
    rng = np.random.default_rng(0)
    seed = "The \"while\" statement is used for"
    samples = {t: sample(model, alphabet, index, seed, sample_length, t, rng) for t in temperatures}
    speed = {}
    for name, method in (("window", sample_window), ("stream", sample)):
        start_sampling = time.perf_counter()
        method(model, alphabet, index, seed, sample_length, 0.7, rng)
        speed[name] = sample_length / (time.perf_counter() - start_sampling)
    results = {"bits_per_char": curve[-1], "curve": curve, "unigram": unigram, "bigram": bigram,
               "seconds": seconds, "samples": samples, "alphabet_size": len(alphabet),
               "chars_per_second": speed}
    if not quiet:
        print(f"{len(text)} characters of pydoc_data.topics, {len(alphabet)} symbols; "
              f"{len(X_train)} training windows of {WINDOW}")
        print(f"LSTM {hidden_size}: test {curve[-1]:.2f} bits/char after {epochs} epochs "
              f"({seconds:.1f} s)")
        print(f"bigram baseline: {bigram:.2f} bits/char; unigram baseline: {unigram:.2f} bits/char")
        print(f"generation: {speed['stream']:.0f} characters/s with a stream, "
              f"{speed['window']:.0f} re-reading a {WINDOW}-character window")
        for t, s in samples.items():
            print(f"\n--- temperature {t} ---\n{seed}{s}")
    if output:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4),
                                          gridspec_kw={"width_ratios": [1, 1.4]})
        left.plot(np.arange(1, epochs + 1), curve, marker="o", label="LSTM")
        left.axhline(bigram, color="tab:orange", ls="--", label="bigram")
        left.axhline(unigram, color="gray", ls=":", label="unigram")
        left.set(xlabel="epoch", ylabel="test bits per character",
                 title="Next-character prediction")
        left.legend()
        right.axis("off")
        shown = min(temperatures, key=lambda t: abs(t - 0.7))
        right.text(0, 1, f"sample, temperature {shown}:\n\n" + _wrap(seed + samples[shown]),
                   va="top", family="monospace", fontsize=7)
        fig.tight_layout()
        fig.savefig(output, dpi=100)
        plt.close(fig)
        if not quiet:
            print(f"\nplot written to {output}")
    return results


def _wrap(text, width=80):
    lines = []
    for paragraph in text.split("\n"):
        lines.extend(paragraph[i:i + width] for i in range(0, max(len(paragraph), 1), width))
    return "\n".join(lines[:24])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run (for tests)")
    parser.add_argument("--output", default="char_generation.png")
    args = parser.parse_args()
    run(output=args.output, **(QUICK if args.quick else {}))
