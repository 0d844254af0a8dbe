"""Gate activations and their derivatives, side by side.

Every function here is usable inside ``@njit`` kernels. ``tanh`` and ``sigmoid``
dispatch on the argument's type at compile time:

* float64 uses ``tanh(a) = t / (t + 2)`` with ``t = expm1(2a)`` (``a = |x|``),
  ``expm1`` by the usual range reduction (``2a = n ln2 + r``, a degree-13
  polynomial in ``r``, the ``2^n`` built from its bits), within 3 ulp of the
  C library's ``tanh`` (``tests/test_activations.py``). LLVM vectorises it,
  where ``np.tanh`` is a scalar library call;
* float32 uses a clamped rational approximation of tanh (the 13/6 minimax form
  used by Eigen), which LLVM vectorises under ``fastmath`` where ``np.tanh``
  does not (PyPI's llvmlite has no SVML). Its error is at most 2.74e-7 (4.6
  float32 ulps, at |x| = 5.23), far inside the 2e-4 parity tolerance against PyTorch, and it
  is exactly +-1 wherever tanh rounds to +-1 in float32, so that saturated
  gates have exactly zero derivatives (``tests/test_activations.py``).

The LSTM kernels take the sigmoid gates as ``sigmoid(x) = (1 + tanh(x / 2)) / 2``:
they halve those gates' weight columns, so one tanh loop covers all four gates
(see ``cpu._gate_tanh``), and `sigmoid_from_tanh` finishes the sigmoid.

The derivatives are written in terms of the activation's *output*, which is
what the backward sweeps keep.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from .codegen.inlining import inline_into_callers
from .runtime.jit_options import HELPER

# Rational approximation tanh(x) ~ x * P(x^2) / Q(x^2) on |x| <= _TANH_CLAMP
# (0.99999976 there, the approximation's largest value).
_TANH_CLAMP = 7.90531110763549805
# From here on tanh(x), correctly rounded to float32, is 1: the float32 tanh
# returns exactly +-1, so a saturated gate has a derivative of exactly 0 (at
# 0.99999976 one keeps a derivative of 4.8e-7, and inputs of 1e6 a weight gradient).
_TANH_ONE_FLOAT32 = 9.010913848876953
_A1 = 4.89352455891786e-03
_A3 = 6.37261928875436e-04
_A5 = 1.48572235717979e-05
_A7 = 5.12229709037114e-08
_A9 = -8.60467152213735e-11
_A11 = 2.00018790482477e-13
_A13 = -2.76076847742355e-16
_B0 = 4.89352518554385e-03
_B2 = 2.26843463243900e-03
_B4 = 1.18534705686654e-04
_B6 = 1.19825839466702e-06




def tanh(x):  # pragma: no cover - replaced by the overload inside kernels
    return np.tanh(x)


def sigmoid(x):  # pragma: no cover - replaced by the overload inside kernels
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_from_tanh(t):  # pragma: no cover - replaced by the overload inside kernels
    """``sigmoid(x)`` given ``t = tanh(x / 2)``."""
    return 0.5 * t + 0.5


@njit(**HELPER)
def _horner(x, coefficients):
    """``c[0] x^(k-1) + c[1] x^(k-2) + ... + c[k-1]`` by Horner's rule, for the
    constant tuple ``coefficients`` (highest degree first); LLVM unrolls the
    loop, so the calling loop vectorises as if it were written out."""
    inline_into_callers()
    p = coefficients[0]
    for c in coefficients[1:]:
        p = x * p + c
    return p


@overload(tanh, jit_options=HELPER)
def _tanh_overload(x):
    if x == types.float32:
        clamp, one = np.float32(_TANH_CLAMP), np.float32(_TANH_ONE_FLOAT32)
        p_coefficients = tuple(np.float32(v) for v in (_A13, _A11, _A9, _A7, _A5, _A3, _A1))
        q_coefficients = tuple(np.float32(v) for v in (_B6, _B4, _B2, _B0))

        def impl(x):
            inline_into_callers()
            # comparisons that are false for NaN, so NaN passes through both
            c = math.copysign(clamp, x) if abs(x) > clamp else x
            c2 = c * c
            t = c * _horner(c2, p_coefficients) / _horner(c2, q_coefficients)
            return math.copysign(np.float32(1), x) if abs(x) >= one else t

        return impl
    if x == types.float64:
        return _tanh_float64
    return lambda x: np.tanh(x)


# float64 tanh through expm1 (see the module docstring). 2|x| = n ln2 + r with
# |r| <= ln2 / 2, ln2 split in two (fdlibm's, the high part with trailing zero
# bits, so that n * _LN2_HI is exact); expm1(r) by its Taylor polynomial to
# r^13 (the next term is below 1e-17 relative); then
# expm1(2|x|) = 2^n expm1(r) + (2^n - 1).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_TANH_ONE = 20.0  # tanh(x) rounds to 1 in float64 from here on
# 1/13!, 1/12!, ..., 1/1!: expm1(r) = r * (1 + r/2! + ... + r^12/13!)
_EXPM1_COEFFICIENTS = tuple(1.0 / math.factorial(k) for k in range(13, 0, -1))


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE 754 bits are the int64 ``bits``."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


def _tanh_float64(x):  # the float64 implementation the tanh overload returns
    inline_into_callers()
    a = abs(x)
    y = 2 * _TANH_ONE if a > _TANH_ONE else a + a  # NaN stays NaN
    n = math.floor(y * _LOG2E + 0.5)
    r = (y - n * _LN2_HI) - n * _LN2_LO
    p = r * _horner(r, _EXPM1_COEFFICIENTS)  # expm1(r)
    scale = _float64_from_bits((np.int64(n) + 1023) << 52)  # 2^n, 0 <= n <= 58
    t = scale * p + (scale - 1.0)  # expm1(2|x|)
    t = t / (t + 2.0)
    return t if x >= 0 else -t


@overload(sigmoid, jit_options=HELPER)
def _sigmoid_overload(x):
    if x == types.float32:
        half = np.float32(0.5)

        def impl(x):
            inline_into_callers()
            return sigmoid_from_tanh(tanh(half * x))

        return impl
    return lambda x: 1.0 / (1.0 + np.exp(-x))


@overload(sigmoid_from_tanh, jit_options=HELPER)
def _sigmoid_from_tanh_overload(t):
    # the constant in t's own type: a float64 0.5 would promote float32 math
    half = np.float32(0.5) if t == types.float32 else 0.5

    def impl(t):
        inline_into_callers()
        return half * t + half

    return impl


# Derivatives in terms of the outputs y = sigmoid(x) and y = tanh(x).
def sigmoid_grad(y):  # pragma: no cover - replaced by the overload inside kernels
    return y * (1 - y)


def tanh_grad(y):  # pragma: no cover - replaced by the overload inside kernels
    return 1 - y * y


def _one_like(y):
    """1 in the type of ``y``. Numba types ``1 - y`` as float64 for a float32
    ``y`` (int64 and float32 promote to float64): written so, the backward
    cell converted every float32 to float64 and back, at half the vector
    width."""
    return np.float32(1) if y == types.float32 else 1.0


@overload(sigmoid_grad, jit_options=HELPER)
def _sigmoid_grad_overload(y):
    one = _one_like(y)

    def impl(y):
        inline_into_callers()
        return y * (one - y)

    return impl


@overload(tanh_grad, jit_options=HELPER)
def _tanh_grad_overload(y):
    one = _one_like(y)

    def impl(y):
        inline_into_callers()
        return one - y * y

    return impl
