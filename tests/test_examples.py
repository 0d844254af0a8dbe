"""Each example runs in a reduced mode and shows what it claims."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("statsmodels")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_range_memory_lstm_remembers_where_rnn_does_not(tmp_path):
    example = load_example("long_range_memory")
    results = example.run(**example.QUICK, output=str(tmp_path / "p.png"), quiet=True)
    assert results["rnn"]["accuracy"] <= 0.40  # chance is 0.25
    assert results["lstm"]["accuracy"] >= 0.60
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_sentiment_beats_the_majority_class(tmp_path):
    example = load_example("sentiment")
    results = example.run(**example.QUICK, output=str(tmp_path / "p.png"), quiet=True)
    assert results["n_train"] == 2400 and results["n_test"] == 600
    assert abs(results["majority"] - 0.5) < 0.02  # balanced labels
    assert results["accuracy"] >= results["majority"] + 0.08
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_sentiment_encoding_keeps_word_order_and_marks_unknown_words():
    example = load_example("sentiment")
    from sklearn.feature_extraction.text import CountVectorizer
    vectorizer = CountVectorizer().fit(["good film", "bad plot"])
    ids = vectorizer.vocabulary_
    (encoded,) = example.encode(["Film good, zebra!"], vectorizer)
    assert list(encoded) == [ids["film"] + 1, ids["good"] + 1, example.OUT_OF_VOCABULARY]


def test_char_generation_learns_and_samples_with_a_temperature(tmp_path):
    example = load_example("char_generation")
    results = example.run(**example.QUICK, temperatures=(0.5, 1.0), output=str(tmp_path / "p.png"),
                          quiet=True)
    assert results["bits_per_char"] < results["unigram"]
    assert all(len(s) == 80 for s in results["samples"].values())
    assert results["chars_per_second"]["stream"] > results["chars_per_second"]["window"]
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_char_generation_temperature_controls_randomness():
    import numpy as np

    from nlstm import LSTMClassifier
    example = load_example("char_generation")
    text = example.load_text()[:6_000]
    index, alphabet = example.build_alphabet(text, min_count=5)
    X, y = example.windows(example.encode(text, index))
    model = LSTMClassifier(embedding_dim=8, hidden_size=16, return_sequences=True, random_state=0)
    model.partial_fit(X, y, classes=np.arange(len(alphabet)))
    args = (model, alphabet, index, "The ", 40)
    # near-zero temperature is greedy: the same text whatever the random draws
    cold = {example.sample(*args, 1e-4, np.random.default_rng(seed)) for seed in range(3)}
    assert len(cold) == 1
    hot = {example.sample(*args, 1.0, np.random.default_rng(seed)) for seed in range(3)}
    assert len(hot) == 3


def test_forecasting_beats_the_naive_forecast(tmp_path):
    example = load_example("forecasting")
    results = example.run(**example.QUICK, output=str(tmp_path / "p.png"), quiet=True)
    assert results["n_test"] == 85
    mae = {name: err.mean() for name, err in results["mae"].items()}
    assert mae["LSTM"] < mae["naive"]
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_forecasting_windows_never_see_the_test_span():
    import numpy as np
    example = load_example("forecasting")
    series = np.arange(100.0)
    X, Y, anchor = example.make_windows(series, np.array([0, 10]))
    assert X.shape == (2, example.LOOKBACK, 1) and Y.shape == (2, example.HORIZON)
    np.testing.assert_array_equal(anchor, [35.0, 45.0])
    np.testing.assert_array_equal(Y[0], np.arange(1.0, 13.0))  # next 12 months, relative
    seasonal = example.seasonal_naive_with_drift(series, np.array([0]))
    np.testing.assert_allclose(seasonal[0], np.arange(36.0, 48.0))  # exact on a straight line


def test_cells_gated_ones_remember_where_the_rnn_does_not(tmp_path):
    example = load_example("cells")
    results = example.run(**example.QUICK, output=str(tmp_path / "p.png"), quiet=True)
    stories = results["stories"]
    assert stories["rnn"]["accuracy"] <= 0.40  # chance is 0.25
    assert stories["gru"]["accuracy"] >= 0.60 and stories["lstm"]["accuracy"] >= 0.60
    assert all(r["accuracy"] > 0.5 for r in results["sentences"].values())  # balanced labels
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_hyperparameter_study_ranks_every_hyperparameter(tmp_path):
    example = load_example("hyperparameters")
    results = example.run(**example.QUICK, output=str(tmp_path / "p.png"), quiet=True)
    assert sorted(results["order"]) == sorted(example.SPACE)
    assert all(0 <= eta <= 1 for eta in results["importance"].values())
    assert results["best_score"] > 0.1  # ten classes: chance is 0.1
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_importance_is_the_share_of_variance_between_bins():
    import numpy as np
    example = load_example("hyperparameters")
    values = np.repeat([1.0, 2.0, 3.0, 4.0], 5)
    assert example.importance(values, values * 2, log=False) == 1.0  # scores follow values
    rng = np.random.default_rng(0)
    noise = rng.normal(size=20)
    assert example.importance(rng.permutation(values), noise, log=False) < 0.5
