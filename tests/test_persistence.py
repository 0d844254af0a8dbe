"""save/load: exact round trips, atomic writes, clear errors on bad files."""
import json
import os
import pickle

import numpy as np
import pytest

import nlstm
from nlstm import LSTMClassifier, LSTMRegressor, persistence

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
        "gru": (LSTMRegressor(cell="gru", hidden_size=8, num_layers=2, bidirectional=True,
                              max_iter=2, random_state=0).fit(X, y), X),
    }


@pytest.mark.parametrize("name", ["reg", "clf", "tok", "gru"])
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


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_has_the_permissions_of_a_new_file_or_of_the_one_it_replaces(models,
                                                                                tmp_path):
    model, _ = models["reg"]
    old_umask = os.umask(0o022)
    try:
        model.save(tmp_path / "new.npz")
        assert (tmp_path / "new.npz").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        model.save(tmp_path / "private.npz")
        assert (tmp_path / "private.npz").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old_umask)
    existing = tmp_path / "shared.npz"
    existing.write_bytes(b"old")
    existing.chmod(0o664)
    model.save(existing)
    assert existing.stat().st_mode & 0o777 == 0o664


def test_os_errors_name_the_path_and_are_not_called_corruption(models, tmp_path, monkeypatch):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        nlstm.load(tmp_path)
    path = models["reg"][0].save(tmp_path / "m.npz")

    def denied(file, mode="r"):  # what open raises for a file of mode 0 (unless root)
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(persistence, "open", denied, raising=False)
    with pytest.raises(PermissionError, match="m.npz"):
        nlstm.load(path)


def test_a_npy_file_is_not_a_model(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"not a readable nlstm model.*\.npy"):
        nlstm.load(tmp_path / "array.npy")


def _rewrite(path, target, edit):
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    header = json.loads(str(contents["header"]))
    edit(header, contents)
    contents["header"] = np.array(json.dumps(header))
    np.savez(target, **contents)
    return target


def _set(section, key, value):
    def edit(header, contents):
        header[section][key] = value
    return edit


CRAFTED = [
    ("unknown parameter", _set("params", "bogus", 1), "unknown parameters"),
    ("invalid parameter", _set("params", "hidden_size", -3), "hidden_size"),
    ("method as a fitted key", _set("fitted", "predict", 1), "unknown fitted attribute 'predict'"),
    ("private fitted key", _set("fitted", "_rng", 1), "unknown fitted attribute '_rng'"),
    ("fitted of the wrong type", _set("fitted", "n_features_in_", "2"), "n_features_in_"),
    ("NaN loss", _set("fitted", "loss_curve_", [float("nan")]), "loss_curve_"),
    ("missing fitted", lambda h, c: h["fitted"].pop("n_features_in_"), "missing"),
    ("extra header field", lambda h, c: h.update(run="os.system"), "header has the fields"),
    ("header field of the wrong type", lambda h, c: h.update(n_inputs="2"), "n_inputs"),
    ("NaN parameter", lambda h, c: c["param_0"].__setitem__(0, np.nan), "NaN or infinity"),
    ("infinite y scale", lambda h, c: c["fitted__y_scale"].__setitem__(0, np.inf),
     "NaN or infinity"),
    ("zero y scale", lambda h, c: c["fitted__y_scale"].__setitem__(0, 0.0), "_y_scale"),
    ("extra array", lambda h, c: c.update(payload=np.zeros(2)), "'payload'"),
    ("parameter of another shape", lambda h, c: c.update(param_0=np.zeros(3)), "parameter 0"),
    ("extra parameter", lambda h, c: c.update(param_9=np.zeros(3)), "more parameter arrays"),
    ("unknown class", lambda h, c: h.update({"class": "Popen"}), "unknown model class"),
]


@pytest.mark.parametrize("label,edit,match", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_files_are_refused(models, tmp_path, label, edit, match):
    """The header and arrays are checked against what save writes: nothing
    else is set on the estimator, and no value save could not have written
    is trusted."""
    model, _ = models["reg"]
    path = model.save(tmp_path / "m.npz")
    crafted = _rewrite(path, tmp_path / "crafted.npz", edit)
    with pytest.raises(ValueError, match=match):
        nlstm.load(crafted)
