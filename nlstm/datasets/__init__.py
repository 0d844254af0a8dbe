"""Small real data sets that ship inside nlstm, for the examples and tests.

Nothing here is downloaded: every file lies in ``nlstm/datasets/data``.
"""
import gzip
from importlib import resources

import numpy as np

__all__ = ["load_movie_review_snippets"]


def load_movie_review_snippets():
    """10,605 sentences from Rotten Tomatoes movie reviews with human sentiment ratings.

    The sentences were cut from the 2,000 reviews of Pang & Lee (2004) and
    each was rated from -4 (most negative) to +4 (most positive) by at least
    20 people, averaged (Hutto & Gilbert, "VADER", ICWSM 2014). The file is
    ``movieReviewSnippets_GroundTruth.txt`` from the source distribution of
    the ``vaderSentiment`` package on PyPI (MIT licence, in
    ``data/LICENSE-vaderSentiment.txt``); the package's wheel leaves it out,
    so nlstm carries a gzipped copy.

    Returns
    -------
    texts : list of str, length 10605
        The sentences, as written.
    ratings : ndarray of shape (10605,), float64
        Mean human rating; ``ratings > 0`` is the usual positive label
        (49.4% of sentences; 0.35% are exactly 0).

    Examples
    --------
    >>> from nlstm.datasets import load_movie_review_snippets
    >>> texts, ratings = load_movie_review_snippets()
    >>> len(texts), ratings.shape
    (10605, (10605,))
    >>> float(ratings.min()) >= -4 and float(ratings.max()) <= 4
    True
    """
    source = resources.files(__name__) / "data" / "movie_review_snippets.tsv.gz"
    texts, ratings = [], []
    with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            _, rating, text = line.rstrip("\r\n").split("\t")
            texts.append(text)
            ratings.append(float(rating))
    return texts, np.asarray(ratings)
