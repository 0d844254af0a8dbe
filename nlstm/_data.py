"""Turning the inputs users pass into padded sequence batches, and results back.

Three forms of X are accepted, told apart by the container, never by the
lengths of what it holds (equal lengths must not turn a list into a table):

* ``"table"``: a 2-d array ``(n, T)`` (or what scikit-learn reads as one: a
  DataFrame, an object with ``__array__``). Its columns are the timesteps of
  a one-feature sequence, or token ids when the estimator has an embedding.
  As for every scikit-learn estimator, the number of columns is fixed at fit.
* ``"sequences"``: a 3-d array ``(n, T, F)``; T may change after fit, F may not.
* ``"list"``: a list or tuple of sequences, or a 1-d object array or pandas
  Series holding one a row (a DataFrame column of sequences): each a
  ``(T_i, F)`` or ``(T_i,)`` array-like (one feature, or token ids), padded
  here and run with its length, never truncated.

`read_X` is the estimators' whole path from X to a padded batch; the
`SequenceScaler` reads X with the same pieces (`read_table`,
`read_sequence_array`, `check_sequence_list`, `record_n_features`).
"""
import functools

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from ._validation import cast_within_range

_INT64_MAX = np.iinfo(np.int64).max


def _is_scalar(value):
    """Whether ``value`` is one number or string (not a sequence of them)."""
    try:
        return np.ndim(value) == 0
    except ValueError:  # a ragged nested sequence: not a scalar
        return False


def holds_sequences(obj):
    """Whether ``obj`` is a container of sequences: a list or tuple whose first
    item is not a single number, or a 1-d object array or Series."""
    if isinstance(obj, (list, tuple)):
        return len(obj) == 0 or not _is_scalar(obj[0])
    return getattr(obj, "ndim", None) == 1 and getattr(obj, "dtype", None) == np.dtype(object)


def input_form(X):
    """Which of the three forms X has (see the module docstring).

    Raises
    ------
    ValueError
        For an array of any other dimension than 2 or 3, naming the forms
        accepted (scikit-learn's own message would ask for a 2-d array only).
    """
    if sp.issparse(X):
        return "table"  # scikit-learn's validation explains what is wrong with sparse input
    if holds_sequences(X):
        return "list"  # an empty one is reported as "no samples" by pad_sequence_list
    ndim = 1 if isinstance(X, (list, tuple)) else getattr(X, "ndim", None)
    if ndim is None:
        ndim = np.asarray(X).ndim
    if ndim not in (2, 3):
        try:
            shape = f" of shape {np.shape(X)}"  # X.shape where X has one
        except ValueError:
            shape = ""
        hint = (". Reshape your data: one sequence of T steps is X.reshape(1, -1), or "
                "X.reshape(1, -1, F) with F features" if ndim == 1 else "")
        raise ValueError(f"X must be a 3-d array (n_samples, T, F), a 2-d array (n_samples, T) "
                         f"or a list of (T_i, F) or (T_i,) sequences; got a {ndim}-d array"
                         f"{shape}{hint}")
    return "sequences" if ndim == 3 else "table"


def check_token_ids(ids, name="X"):
    """Token ids (a numeric array) as int64, checked in their own dtype first:
    a cast of uint64 ids from 2**63 or of float ids beyond int64 would wrap them
    into other (or negative) ids. Floats holding integers are accepted."""
    kind = ids.dtype.kind
    if kind not in "iuf":
        raise ValueError(f"{name} must hold integer token ids when embedding_dim is set, "
                         f"got dtype {ids.dtype}")
    if ids.size == 0:
        return ids.astype(np.int64)
    if kind == "f" and not (np.all(np.isfinite(ids)) and np.all(ids == np.round(ids))):
        raise ValueError(f"{name} must hold integer token ids when embedding_dim is set")
    smallest, largest = ids.min(), ids.max()
    if smallest < 0:
        raise ValueError(f"{name} must hold non-negative token ids, got {smallest}")
    # compared in the ids' own dtype (NumPy 1 compares uint64 with int as float64)
    beyond = (largest > np.uint64(_INT64_MAX) if kind == "u" and ids.dtype.itemsize == 8
              else kind == "f" and largest >= 2.0 ** 63)
    if beyond:
        largest = int(largest) if kind in "iu" else f"{largest:.6g}"
        raise ValueError(f"{name} holds token id {largest}, beyond the largest id an "
                         f"embedding can have ({_INT64_MAX}); map the tokens to consecutive "
                         f"ids 0..V-1 first")
    return ids.astype(np.int64)


def check_vocabulary(ids, n_tokens, name="X"):
    """Refuse token ids beyond the vocabulary seen at fit (ids 0..n_tokens-1)."""
    if ids.size and ids.max() >= n_tokens:
        raise ValueError(f"{name} holds token id {ids.max()}, but the vocabulary seen at fit "
                         f"has ids 0..{n_tokens - 1}")


def check_sequence_list(X, dtype="numeric"):
    """The sequences of a ``"list"``-form X, each read by scikit-learn's
    ``check_array`` (named ``X[i]``) and checked here: ``(T_i,)`` or
    ``(T_i, F)`` with ``T_i >= 1`` and ``F >= 1``, one ``F`` for all.

    Returns
    -------
    sequences : list of ndarray, each as given (a 1-d one stays 1-d)
    n_features : int
    """
    if len(X) == 0:
        raise ValueError("X holds no sequences (0 samples); at least 1 is required")
    sequences = []
    for i, seq in enumerate(X):
        arr = check_array(seq, ensure_2d=False, dtype=dtype, ensure_min_samples=0,
                          input_name=f"X[{i}]")
        if arr.ndim not in (1, 2):
            raise ValueError(f"X[{i}] must be a (T_i, F) or (T_i,) array, got shape {arr.shape}")
        if arr.ndim == 2 and arr.shape[1] == 0:
            raise ValueError(f"X[{i}] has 0 features; at least 1 is required")
        if arr.shape[0] == 0:
            raise ValueError(f"X[{i}] is an empty sequence; every sequence needs >= 1 timestep")
        sequences.append(arr)
    n_features = {1 if s.ndim == 1 else s.shape[1] for s in sequences}
    if len(n_features) > 1:
        raise ValueError(f"all sequences in X must have the same number of features, "
                         f"got {sorted(n_features)}")
    return sequences, n_features.pop()


def pad_sequence_list(X, dtype, tokens):
    """Validate a list of sequences (`check_sequence_list`) and pad it.

    Returns
    -------
    data : ndarray, (n, T_max, F) float, or (n, T_max) int64 ids when ``tokens``
    lengths : ndarray, (n,) int64
    """
    sequences, n_features = check_sequence_list(X)
    seqs = []
    for i, arr in enumerate(sequences):
        if tokens:
            if arr.ndim != 1:
                raise ValueError(f"X[{i}] must be a 1-d sequence of token ids, "
                                 f"got shape {arr.shape}")
            seqs.append(check_token_ids(arr, f"X[{i}]"))
        else:
            seqs.append(cast_within_range(arr.reshape(len(arr), -1), dtype, f"X[{i}]"))
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    shape = (len(seqs), lengths.max()) + (() if tokens else (n_features,))
    data = np.zeros(shape, dtype=np.int64 if tokens else dtype)
    for i, s in enumerate(seqs):
        data[i, :len(s)] = s
    return data, lengths


def pad_targets(y_seqs, lengths, name="y"):
    """Pad per-timestep targets given one ``(T_i,)`` or ``(T_i, k)`` array a
    sequence, in the dtype that holds them all (labels of every width, floats
    beside ints); steps past a sequence's length hold zeros."""
    arrays = [np.asarray(v) for v in y_seqs]
    if len(arrays) != len(lengths):
        raise ValueError(f"X has {len(lengths)} sequences but {name} has {len(arrays)}")
    for i, (a, n) in enumerate(zip(arrays, lengths)):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"{name}[{i}] must have one value per timestep of X[{i}] ({n}), "
                             f"got shape {a.shape}")
    trailing = {a.shape[1:] for a in arrays}
    if len(trailing) > 1:
        raise ValueError(f"all sequences in {name} must have the same number of outputs")
    try:
        dtype = functools.reduce(np.promote_types, {a.dtype for a in arrays})
    except TypeError:  # labels of kinds NumPy will not promote (numbers and strings)
        dtype = np.dtype(object)
    out = np.zeros((len(arrays), int(max(lengths))) + trailing.pop(), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return out


def unpad(values, lengths):
    """Split per-timestep results back into a list of ``(T_i, ...)`` arrays."""
    return [values[i, :n] for i, n in enumerate(lengths)]


def valid_steps(values, lengths):
    """Stack the valid timesteps of ``(n, T, ...)`` values into ``(sum(lengths), ...)``."""
    return np.concatenate(unpad(values, lengths), axis=0)


FORM_NAMES = {"table": "2-d array (its columns are timesteps)", "sequences": "3-d array",
              "list": "list of sequences"}


def read_table(owner, X, reset, dtype):
    """A ``"table"``-form X through scikit-learn's ``validate_data`` (which
    records or checks ``owner``'s ``n_features_in_`` and ``feature_names_in_``),
    its messages told in timesteps."""
    try:
        return validate_data(owner, X, reset=reset, dtype=dtype)
    except ValueError as error:
        name = type(owner).__name__
        if not reset and "inhomogeneous" in str(error):  # sequences of several lengths
            raise ValueError(
                f"X holds sequences of several lengths, but {name} was fit on a 2-d X, whose "
                f"{owner.n_features_in_} columns are the timesteps of one-feature sequences, "
                f"fixed at fit. To use sequences of other lengths, fit on a 3-d array "
                f"(n, T, 1) or a list of sequences") from None
        if reset or "features as input" not in str(error):
            raise
        # scikit-learn's message about the column count, then what columns are here
        raise ValueError(
            f"{str(error).rstrip('.')}: the columns of a 2-d X are the timesteps of "
            f"one-feature sequences, fixed at fit. To use sequences of other "
            f"lengths, fit on a 3-d array (n, T, 1) or a list of sequences") from None


def read_sequence_array(X, dtype):
    """A ``"sequences"``-form X: a 3-d array ``(n, T, F)`` with T, F >= 1."""
    X = check_array(X, allow_nd=True, dtype=dtype, input_name="X")
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"X must have at least 1 timestep and 1 feature, got shape {X.shape}")
    return X


def record_n_features(owner, n_features, reset):
    """Set ``owner.n_features_in_`` at fit (forgetting feature names), or check
    X against it after: what ``validate_data`` does for tables."""
    if reset:
        owner.n_features_in_ = n_features
        if hasattr(owner, "feature_names_in_"):
            del owner.feature_names_in_
    elif n_features != owner.n_features_in_:
        raise ValueError(f"X has {n_features} features, but {type(owner).__name__} is "
                         f"expecting {owner.n_features_in_} features as input")


def _form_after_fit(X, form, fitted_form):
    """The form a later call reads X in, given the form seen at fit."""
    if form == "table" and fitted_form != "table":
        # a model fit on sequences reads the rows of a table as equal-length sequences
        return list(check_array(X, dtype="numeric", input_name="X")), "list"
    if form == "list" and fitted_form == "table":
        # the rows of the table fit on are one-feature sequences: so are these,
        # if they have the table's number of steps (`read_table` checks)
        return X, "table"
    if form != fitted_form and fitted_form == "table":
        raise ValueError(f"X was a {FORM_NAMES[fitted_form]} at fit, but a {FORM_NAMES[form]} "
                         f"now; pass the same kind of input")
    return X, form


def read_X(owner, X, *, reset, dtype, tokens, fitted_form=None):
    """Validate an estimator's X in any form and pad it into one batch.

    At fit (``reset``) this records ``owner``'s ``n_features_in_`` (and
    ``n_tokens_`` with ``tokens``); after fit it checks X against them and
    reads it as ``fitted_form``, the form seen at fit, requires.

    Returns
    -------
    data : ndarray, (n, T, F) of ``dtype``, or (n, T) int64 token ids with ``tokens``
    lengths : ndarray, (n,) int64 valid steps per sequence
    form : {"table", "sequences", "list"}
    """
    form = input_form(X)
    if not reset and not tokens:
        X, form = _form_after_fit(X, form, fitted_form)
    # A 2-d array of numbers is a table: its columns (timesteps) are fixed at fit.
    # Token ids in a 2-d array are sequences (one token per step), so their
    # length may change after fit, like a list's.
    if form == "table" and not tokens:
        X = read_table(owner, X, reset, [np.float64, np.float32])
        data = cast_within_range(X, dtype, "X")[:, :, None]  # (n, T, 1)
    else:
        if form == "table":
            data = check_token_ids(check_array(X, dtype="numeric", input_name="X"))  # (n, T)
        elif form == "sequences":
            if tokens:
                raise ValueError("with embedding_dim set, X must hold token ids: a 2-d "
                                 "array (n, T) or a list of 1-d arrays, not a 3-d array")
            data = cast_within_range(read_sequence_array(X, [np.float64, np.float32]), dtype,
                                     "X")  # (n, T, F)
        else:
            data, lengths = pad_sequence_list(X, dtype, tokens)
        record_n_features(owner, 1 if tokens else data.shape[2], reset)
    if form != "list":
        lengths = np.full(data.shape[0], data.shape[1], dtype=np.int64)
    if tokens:
        if reset:
            owner.n_tokens_ = int(data.max()) + 1
        else:
            check_vocabulary(data, owner.n_tokens_)
    return data, lengths, form
