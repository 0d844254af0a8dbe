"""The model file: a portable ``.npz`` with a JSON header, written atomically, read with checks.

A file holds a header (format and nlstm versions, the estimator's class, its
hyperparameters, its fitted attributes, the network's input and output
widths) and arrays (the parameters, ``param_<i>``, and fitted arrays,
``fitted_<name>``). It is read with ``allow_pickle=False``: loading runs no
code from the file. This module owns the format: what a header must hold and
of which JSON types, which arrays may be there, and that every number is
finite. The estimators own what they save and how they rebuild themselves
(``_saved_state``, ``_from_saved_state``); they register their classes here.

Writes are atomic: the data goes to a temporary file in the same folder, is
flushed to disk, and is renamed over ``path`` only when complete, so a crash
mid-save never leaves a half-written file at ``path``. The file gets the
permissions a new file gets (the umask's), or keeps those of the file it
replaces.

The optimizer's state (Adam moments) is not saved: a loaded model predicts
exactly as the saved one, and ``warm_start``/``partial_fit`` restart the
optimizer.
"""
import json
import os
import re
import stat
import tempfile
import threading
import zipfile

import numpy as np
from sklearn.utils.validation import check_is_fitted

FORMAT_VERSION = 1
HEADER_FIELDS = {"format_version": int, "nlstm_version": str, "class": str, "params": dict,
                 "fitted": dict, "n_inputs": int, "n_outputs": int}
_ARRAY_NAME = re.compile(r"param_\d+|fitted_[A-Za-z_]+")
_classes = {}  # class name -> estimator class, filled by `register`
_umask_lock = threading.Lock()


def register(cls):
    """Make ``cls`` (an estimator with ``_saved_state``/``_from_saved_state``) loadable."""
    _classes[cls.__name__] = cls
    return cls


def save(estimator, path):
    """Write a fitted `LSTMRegressor`/`LSTMClassifier` to ``path`` (.npz), atomically.

    The file is a NumPy ``.npz`` with a JSON header (no pickles), readable by
    `load` in this and later versions of nlstm.

    Parameters
    ----------
    estimator : LSTMRegressor or LSTMClassifier
        A fitted estimator.
    path : str or path-like
        The file to write (replaced if it exists; its folder must exist).

    Returns
    -------
    str
        ``path``.

    See Also
    --------
    load : Read it back.

    Examples
    --------
    >>> import numpy as np
    >>> from nlstm import LSTMRegressor
    >>> X = np.random.default_rng(0).standard_normal((20, 5, 1))
    >>> reg = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, X.sum(axis=(1, 2)))
    >>> import os, tempfile
    >>> from nlstm import load, save
    >>> path = save(reg, os.path.join(tempfile.mkdtemp(), "model.npz"))
    >>> bool((load(path).predict(X) == reg.predict(X)).all())
    True
    """
    from . import __version__

    check_is_fitted(estimator, "network_")
    fields, arrays = estimator._saved_state()
    header = {"format_version": FORMAT_VERSION, "nlstm_version": __version__,
              "class": type(estimator).__name__, **fields}
    contents = dict(arrays, header=np.array(json.dumps(header, default=_to_builtin)))
    return _write_atomically(os.fspath(path), contents)


def load(path):
    """Read an estimator written by `save`.

    Parameters
    ----------
    path : str or path-like
        A file written by `save`.

    Returns
    -------
    estimator : LSTMRegressor or LSTMClassifier
        The fitted estimator, predicting exactly as the one saved.

    Raises
    ------
    OSError
        If the file cannot be opened (missing, a folder, no permission).
    ValueError
        If the file is not an nlstm model, is corrupted, holds anything `save`
        would not have written, or was written in a newer format version
        than this nlstm reads.

    See Also
    --------
    save : Write a model file.

    Examples
    --------
    >>> import numpy as np
    >>> from nlstm import LSTMRegressor
    >>> X = np.random.default_rng(0).standard_normal((20, 5, 1))
    >>> reg = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, X.sum(axis=(1, 2)))
    >>> import os, tempfile
    >>> from nlstm import load, save
    >>> path = save(reg, os.path.join(tempfile.mkdtemp(), "model.npz"))
    >>> load(path)
    LSTMRegressor(hidden_size=4, max_iter=2, random_state=0)
    """
    header, arrays = _read(path)
    cls = _classes[header["class"]]
    return cls._from_saved_state(header, arrays, path)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the header")


def _new_file_mode():
    """The permissions ``open`` gives a new file: 0o666 less the umask."""
    try:
        with open("/proc/self/status") as status:  # Linux: read without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:  # elsewhere: set and put back at once
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _write_atomically(path, contents):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # else mkstemp's error names its temporary file
        raise FileNotFoundError(f"cannot save to {path!r}: the folder {folder!r} does not exist")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # replacing a file: keep its permissions
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nlstm-", suffix=".npz.tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **contents)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read(path):
    """The header and arrays of a model file, checked against what `save` writes."""
    with open(path, "rb") as file:  # OSError (missing, a folder, no permission) as it is
        try:
            data = np.load(file, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError(f"it holds one {type(data).__name__} (a .npy file), not a model")
            with data:
                arrays = {name: data[name] for name in data.files}
            header = json.loads(str(arrays.pop("header")))
        except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError) as error:
            raise ValueError(f"{path} is not a readable nlstm model file (corrupted or not "
                             f"written by nlstm.save): {error}") from None
    _check_header(header, path)
    for name, array in arrays.items():
        if not _ARRAY_NAME.fullmatch(name):
            raise ValueError(f"{path} holds an array {name!r} that nlstm.save does not write")
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise ValueError(f"{path} is corrupted: its array {name!r} holds NaN or infinity")
        if array.dtype.kind not in "biufU":
            raise ValueError(f"{path} is corrupted: its array {name!r} has dtype {array.dtype}")
    return header, arrays


def _check_header(header, path):
    if not isinstance(header, dict):
        raise ValueError(f"{path} is corrupted: its header is not a JSON object")
    version = header.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ValueError(f"{path} was written in model format version {version} by nlstm "
                         f"{header.get('nlstm_version')}; this nlstm reads versions up to "
                         f"{FORMAT_VERSION}. Upgrade nlstm to load it.")
    if set(header) != set(HEADER_FIELDS):
        raise ValueError(f"{path} is corrupted: its header has the fields {sorted(header)}, "
                         f"nlstm.save writes {sorted(HEADER_FIELDS)}")
    for name, kind in HEADER_FIELDS.items():
        value = header[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{path} is corrupted: header field {name!r} is not a "
                             f"{kind.__name__}: {value!r}")
    if header["format_version"] < 1 or header["n_inputs"] < 1 or header["n_outputs"] < 1:
        raise ValueError(f"{path} is corrupted: header fields out of range")
    if header["class"] not in _classes:
        raise ValueError(f"{path} holds an unknown model class {header['class']!r}")
