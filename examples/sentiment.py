"""Sentiment of movie-review sentences with the classic model: embedding -> 2-layer LSTM
with dropout -> sigmoid.

Data: 10,605 real sentences from Rotten Tomatoes reviews (Pang & Lee), each rated by at
least 20 people (Hutto & Gilbert 2014); shipped inside nlstm (`nlstm.datasets`), copied
from the source distribution of the ``vaderSentiment`` package. Label: positive when the
mean rating is above 0 (the 37 sentences rated exactly 0 are dropped). These are single
sentences, not whole reviews, so this is the harder sentence-level task.

Words are split and counted by scikit-learn's ``CountVectorizer``; each sentence becomes
its list of word ids (ragged: no padding, no truncation). Prints test accuracy beside the
majority class and a bag-of-words logistic regression, and writes ``sentiment.png``
(training loss and validation accuracy per epoch). ``--quick`` runs a reduced version.
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from nlstm import LSTMClassifier
from nlstm.datasets import load_movie_review_snippets

OUT_OF_VOCABULARY = 0  # word ids start at 1


def encode(texts, vectorizer):
    """Each text as an int64 array of word ids in reading order (0 = not in vocabulary)."""
    analyze = vectorizer.build_analyzer()
    ids = vectorizer.vocabulary_
    encoded = []
    for text in texts:
        words = [ids.get(word, -1) + 1 for word in analyze(text)] or [OUT_OF_VOCABULARY]
        encoded.append(np.asarray(words, dtype=np.int64))
    return encoded


QUICK = dict(n_samples=3000, epochs=3)  # the reduced run: --quick, and the tests


def run(n_samples=None, epochs=8, vocabulary=8000, output="sentiment.png", quiet=False):
    texts, ratings = load_movie_review_snippets()
    keep = ratings != 0
    texts = [t for t, k in zip(texts, keep) if k]
    labels = np.where(ratings[keep] > 0, "positive", "negative")
    if n_samples is not None:  # a stratified random subset (the file is sorted by source review)
        texts, _, labels, _ = train_test_split(texts, labels, train_size=n_samples,
                                               stratify=labels, random_state=0)
    train_texts, test_texts, y_train, y_test = train_test_split(
        texts, labels, test_size=0.2, random_state=0, stratify=labels)

    vectorizer = CountVectorizer(max_features=vocabulary).fit(train_texts)  # training words only
    X_train, X_test = encode(train_texts, vectorizer), encode(test_texts, vectorizer)

    model = LSTMClassifier(embedding_dim=64, hidden_size=64, num_layers=2, dropout=0.3,
                           batch_size=64, learning_rate_init=0.003,
                           max_iter=epochs, early_stopping=True, validation_fraction=0.1,
                           n_iter_no_change=3, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when max_iter is reached
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    accuracy = model.score(X_test, y_test)

    majority = np.mean(y_test == max(set(y_train), key=list(y_train).count))
    bag = LogisticRegression(max_iter=2000).fit(vectorizer.transform(train_texts), y_train)
    bag_accuracy = bag.score(vectorizer.transform(test_texts), y_test)
    results = {"accuracy": accuracy, "majority": majority, "bag_of_words": bag_accuracy,
               "seconds": seconds, "epochs": model.n_iter_, "loss_curve": model.loss_curve_,
               "validation_scores": model.validation_scores_,
               "n_train": len(X_train), "n_test": len(X_test)}
    if not quiet:
        print(f"{len(X_train)} training / {len(X_test)} test sentences, "
              f"{len(vectorizer.vocabulary_)} words in the vocabulary")
        print(f"LSTM (embedding 64, 2 x LSTM 64, dropout 0.3): test accuracy {accuracy:.3f} "
              f"after {model.n_iter_} epochs, {seconds:.1f} s")
        print(f"bag-of-words logistic regression:             test accuracy {bag_accuracy:.3f}")
        print(f"majority class:                               test accuracy {majority:.3f}")
        sample = ["a gorgeous , moving and funny film .", "a tedious , boring mess ."]
        for text, p in zip(sample, model.predict_proba(encode(sample, vectorizer))[:, 1]):
            print(f"  P(positive) = {p:.2f}  {text!r}")
    if output:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
        epochs_axis = np.arange(1, len(model.loss_curve_) + 1)
        left.plot(epochs_axis, model.loss_curve_, marker="o")
        left.set(xlabel="epoch", ylabel="training log loss", title="Training loss")
        right.plot(epochs_axis, model.validation_scores_, marker="o", label="LSTM (validation)")
        right.axhline(bag_accuracy, color="tab:green", ls="--", label="bag of words (test)")
        right.axhline(majority, color="gray", ls=":", label="majority (test)")
        right.set(xlabel="epoch", ylabel="accuracy", title=f"LSTM test accuracy {accuracy:.3f}")
        right.legend(loc="lower right")
        fig.suptitle("Movie-review sentences: embedding -> 2-layer LSTM -> sigmoid")
        fig.tight_layout()
        fig.savefig(output, dpi=100)
        plt.close(fig)
        if not quiet:
            print(f"plot written to {output}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run (for tests)")
    parser.add_argument("--output", default="sentiment.png")
    args = parser.parse_args()
    run(output=args.output, **(QUICK if args.quick else {}))
