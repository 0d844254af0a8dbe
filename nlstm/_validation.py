"""Argument checks shared by the layer and the estimators.

Every check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right
kind, bad value) with a message that names the argument, before any kernel runs.
"""
import numbers

import numpy as np
from sklearn.utils import check_scalar

DTYPES = {"float32": np.float32, "float64": np.float64}
CELLS = {"lstm": 4, "gru": 3, "rnn": 1}  # cell name -> number of gates


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices`` (strings), else raise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_int(value, name, min_val=None, max_val=None):
    """An integer (not a bool) within bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    check_scalar(int(value), name, numbers.Integral, min_val=min_val, max_val=max_val)
    return int(value)


def check_float(value, name, min_val=None, max_val=None, include_boundaries="both"):
    """A real number (not a bool) within bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    check_scalar(float(value), name, numbers.Real, min_val=min_val, max_val=max_val,
                 include_boundaries=include_boundaries)
    return float(value)


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_forget_bias(forget_bias, chrono_max, dtype=np.float64):
    """``forget_bias`` is a finite number that a ``dtype`` bias holds, or
    ``"chrono"`` (which needs ``chrono_max``)."""
    if isinstance(forget_bias, str):
        check_choice(forget_bias, "forget_bias", {"chrono"})
        if chrono_max is None:
            raise ValueError("forget_bias='chrono' needs chrono_max (the longest time "
                             "scale to remember, usually the longest sequence length)")
        check_float(chrono_max, "chrono_max", min_val=1)
        return forget_bias
    forget_bias = check_float(forget_bias, "forget_bias")
    limit = float(np.finfo(dtype).max) / 2  # the bias is this plus a small random start
    if abs(forget_bias) > limit:
        raise ValueError(f"forget_bias={forget_bias!r} is beyond what a {np.dtype(dtype).name} "
                         f"bias can hold (|forget_bias| <= {limit:.3g}); forget biases of "
                         f"1 to 5 are usual")
    return forget_bias


def as_float_array(x, name, dtype, ndim=None, check_finite=True):
    """Convert to a C-contiguous float array of ``dtype``, rejecting non-numbers,
    complex numbers, wrong ``ndim`` and (unless ``check_finite`` is False, for
    arrays whose padding the caller checks: `finite_within_lengths`) NaN/inf."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold numbers, got objects that are not") from None
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real; complex numbers are not supported")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    if check_finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return cast_within_range(arr, dtype, name)


def finite_within_lengths(arr, lengths, name):
    """``arr`` (B, T, ...) if every value within each row's length is finite,
    raising a ValueError naming ``name`` otherwise. Values past a row's length
    are ignored, as a packed sequence ignores them: non-finite ones there are
    replaced by zeros in a copy (a NaN times a zero gradient would still be
    NaN in the weight-gradient products)."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return arr
    rows, steps = np.nonzero(bad.reshape(bad.shape[0], bad.shape[1], -1).any(axis=2))
    inside = steps < lengths[rows]
    if inside.any():
        raise ValueError(f"{name} contains NaN or infinity (first at [{rows[inside][0]}, "
                         f"{steps[inside][0]}], within that sequence's length)")
    return np.where(bad, np.zeros((), arr.dtype), arr)


def cast_within_range(arr, dtype, name):
    """``arr`` (numbers) as a C-contiguous array of ``dtype``.

    Raises ``ValueError`` where a value is too large for ``dtype``: NumPy casts
    float64 values beyond float32's range (about 3.4e38) to infinity, which the
    kernels would carry into NaN losses and predictions.
    """
    with np.errstate(over="ignore"):  # reported below, naming the array
        out = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" and out.dtype.itemsize < arr.dtype.itemsize and arr.size \
            and not np.isfinite(out).all() and np.isfinite(arr[~np.isfinite(out)]).any():
        raise ValueError(
            f"{name} holds values too large for {out.dtype} (largest magnitude "
            f"{np.abs(arr[np.isfinite(arr)]).max():.3g}, {out.dtype} holds up to "
            f"{np.finfo(out.dtype).max:.3g}); "
            f"scale {name}, or use dtype='float64'")
    return out


def check_lengths(lengths, batch_size, n_steps):
    """Per-sequence lengths: integers in ``[1, n_steps]``, one per batch row."""
    if lengths is None:
        return np.full(batch_size, n_steps, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != batch_size:
        raise ValueError(f"lengths must have shape ({batch_size},) (one per sequence), "
                         f"got shape {arr.shape}")
    if arr.min() < 1 or arr.max() > n_steps:
        raise ValueError(f"lengths must lie in [1, {n_steps}] (the number of timesteps), "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return np.array(arr, dtype=np.int64, order="C")  # a copy: the caller may change theirs
