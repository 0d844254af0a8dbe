"""Turning the inputs users pass into padded sequence batches.

Three forms of X are accepted:

* ``"table"``: a 2-d array ``(n, T)`` (or anything scikit-learn reads as one,
  a list of equal-length lists, a DataFrame). Its columns are the timesteps of
  a one-feature sequence, or token ids when the estimator has an embedding.
  As for every scikit-learn estimator, the number of columns is fixed at fit.
* ``"sequences"``: a 3-d array ``(n, T, F)``; T may change after fit, F may not.
* ``"list"``: a list of ``(T_i, F)`` arrays (or ``(T_i,)``: one feature, or
  token ids) of different lengths, padded here and run with their lengths,
  never truncated.
"""
import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array

from ._validation import cast_within_range


def input_form(X):
    """Which of the three forms X has (see the module docstring).

    A 1-d container of sequences (an object array or a pandas Series holding
    one array a row, as a DataFrame column of sequences gives) is a list.

    Raises
    ------
    ValueError
        For an array of any other dimension than 2 or 3, naming the forms
        accepted (scikit-learn's own message would ask for a 2-d array only).
    """
    if sp.issparse(X):
        return "table"  # scikit-learn's validation explains what is wrong with sparse input
    ndim = getattr(X, "ndim", None)
    if ndim == 1 and getattr(X, "dtype", None) == object:
        X = list(X)  # an object array or Series of sequences: read as the list it holds
        ndim = None
    if ndim is None and isinstance(X, (list, tuple)):
        if len(X) == 0:
            return "list"  # reported as "no samples" by pad_sequence_list
        try:
            ndim = np.asarray(X).ndim
        except ValueError:  # inhomogeneous: sequences of different lengths
            return "list"
        if ndim == 1 and hasattr(X[0], "__len__") and not isinstance(X[0], str):
            return "list"  # a list of arrays that numpy could not stack
    if ndim is not None and ndim not in (2, 3):
        shape = np.shape(X)  # X.shape where X has one, else that of the array it makes
        hint = (". Reshape your data: one sequence of T steps is X.reshape(1, -1), or "
                "X.reshape(1, -1, F) with F features" if ndim == 1 else "")
        raise ValueError(f"X must be a 3-d array (n_samples, T, F), a 2-d array (n_samples, T) "
                         f"or a list of (T_i, F) or (T_i,) sequences; got a {ndim}-d array of "
                         f"shape {shape}{hint}")
    return "sequences" if ndim == 3 else "table"


def check_token_ids(ids, name="X"):
    """Token ids: non-negative integers (floats holding integers are accepted)."""
    if ids.size and (not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids))):
        raise ValueError(f"{name} must hold integer token ids when embedding_dim is set")
    if ids.size and ids.min() < 0:
        raise ValueError(f"{name} must hold non-negative token ids, got {ids.min()}")
    return ids.astype(np.int64)


def pad_sequence_list(X, dtype, tokens):
    """Validate a list of sequences and pad it.

    Returns
    -------
    data : ndarray, (n, T_max, F) float, or (n, T_max) int64 ids when ``tokens``
    lengths : ndarray, (n,) int64
    """
    if len(X) == 0:
        raise ValueError("X holds no sequences (0 samples); at least 1 is required")
    seqs = []
    for i, seq in enumerate(X):
        arr = check_array(seq, ensure_2d=False, dtype="numeric", ensure_min_samples=0,
                          input_name=f"X[{i}]")
        if tokens:
            if arr.ndim != 1:
                raise ValueError(f"X[{i}] must be a 1-d sequence of token ids, got shape {arr.shape}")
            arr = check_token_ids(arr, f"X[{i}]")
        else:
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(f"X[{i}] must be a (T_i, F) or (T_i,) array, got shape {arr.shape}")
            if arr.shape[1] == 0:
                raise ValueError(f"X[{i}] has 0 features; at least 1 is required")
            arr = cast_within_range(arr, dtype, f"X[{i}]")
        if arr.shape[0] == 0:
            raise ValueError(f"X[{i}] is an empty sequence; every sequence needs >= 1 timestep")
        seqs.append(arr)
    if not tokens:
        n_features = {s.shape[1] for s in seqs}
        if len(n_features) > 1:
            raise ValueError(f"all sequences in X must have the same number of features, "
                             f"got {sorted(n_features)}")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    shape = (len(seqs), lengths.max()) + (() if tokens else (seqs[0].shape[1],))
    data = np.zeros(shape, dtype=np.int64 if tokens else dtype)
    for i, s in enumerate(seqs):
        data[i, :len(s)] = s
    return data, lengths


def pad_targets(y_seqs, lengths):
    """Pad per-timestep targets given as a list, one ``(T_i,)`` or ``(T_i, k)`` array a sequence."""
    arrays = [np.asarray(v) for v in y_seqs]
    for i, (a, n) in enumerate(zip(arrays, lengths)):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"y[{i}] must have one target per timestep of X[{i}] ({n}), "
                             f"got shape {a.shape}")
    trailing = {a.shape[1:] for a in arrays}
    if len(trailing) > 1:
        raise ValueError("all target sequences in y must have the same number of outputs")
    out = np.zeros((len(arrays), int(max(lengths))) + trailing.pop(), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return out


def unpad(values, lengths):
    """Split per-timestep results back into a list of ``(T_i, ...)`` arrays."""
    return [values[i, :n] for i, n in enumerate(lengths)]


def valid_steps(values, lengths):
    """Stack the valid timesteps of ``(n, T, ...)`` values into ``(sum(lengths), ...)``."""
    return np.concatenate(unpad(values, lengths), axis=0)
