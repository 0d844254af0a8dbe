"""save/load: exact round trips, atomic writes, clear errors on bad files."""
import json
import os
import pickle

import numpy as np
import pytest

import nlstm
from nlstm import LSTMClassifier, LSTMRegressor
from nlstm import persistence

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5, 2))
    y = X[:, :, 0].sum(axis=1)
    tokens = [rng.integers(0, 20, int(n)) for n in rng.integers(2, 8, 60)]
    return {
        "reg": (LSTMRegressor(hidden_size=8, num_layers=2, bidirectional=True, max_iter=2,
                              random_state=0).fit(X, y), X),
        "clf": (LSTMClassifier(hidden_size=8, max_iter=2, random_state=0)
                .fit(X, np.where(y > 0, "pos", "neg")), X),
        "tok": (LSTMClassifier(embedding_dim=4, hidden_size=8, cell="rnn", max_iter=2,
                               random_state=0).fit(tokens, rng.integers(0, 3, 60)), tokens),
    }


@pytest.mark.parametrize("name", ["reg", "clf", "tok"])
def test_save_load_round_trip_is_exact(models, name, tmp_path):
    model, X = models[name]
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = nlstm.load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.loss_curve_ == model.loss_curve_
    assert type(model).load(path).n_features_in_ == model.n_features_in_
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
    assert header["nlstm_version"] == nlstm.__version__
    assert header["format_version"] == persistence.FORMAT_VERSION


def test_loaded_model_can_keep_training(models, tmp_path):
    model, X = models["reg"]
    model.save(tmp_path / "m.npz")
    loaded = LSTMRegressor.load(tmp_path / "m.npz").set_params(warm_start=True, max_iter=1)
    loaded.fit(X, X[:, :, 0].sum(axis=1))
    assert loaded.n_iter_ == model.n_iter_ + 1


def test_pickle_round_trip(models):
    model, X = models["clf"]
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict_proba(X),
                                  model.predict_proba(X))


def test_crash_mid_save_leaves_previous_file_intact(models, tmp_path, monkeypatch):
    model, _ = models["reg"]
    path = tmp_path / "m.npz"
    model.save(path)
    original = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(persistence.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        models["clf"][0].save(path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def test_corrupted_or_foreign_files_raise_clear_errors(models, tmp_path):
    model, _ = models["reg"]
    path = tmp_path / "m.npz"
    model.save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable nlstm model"):
        nlstm.load(tmp_path / "truncated.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a readable nlstm model"):
        nlstm.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        nlstm.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="not a LSTMClassifier|not a"):
        LSTMClassifier.load(path)


def test_newer_format_version_is_refused(models, tmp_path):
    model, _ = models["reg"]
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    header = json.loads(str(contents["header"]))
    header["format_version"] = persistence.FORMAT_VERSION + 1
    contents["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "future.npz", **contents)
    with pytest.raises(ValueError, match="format version 2.*Upgrade nlstm"):
        nlstm.load(tmp_path / "future.npz")


def test_save_needs_a_fitted_model(tmp_path):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        LSTMRegressor().save(tmp_path / "m.npz")


def test_save_into_a_missing_folder_names_that_folder(models, tmp_path):
    """Not the temporary file the atomic write would have used."""
    target = tmp_path / "no-such-folder" / "m.npz"
    with pytest.raises(FileNotFoundError, match=r"no-such-folder' does not exist"):
        models["reg"][0].save(target)
    assert not target.parent.exists()
