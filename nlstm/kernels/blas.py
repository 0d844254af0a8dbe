"""The matrix product the CPU kernels call: ``gemm(blas, a, b, out)``, ``out = a @ b``.

Numba's ``np.dot`` calls the BLAS bundled with SciPy (OpenBLAS 0.3.30 in
SciPy 1.17's wheels). The OpenBLAS project's own wheel, ``scipy-openblas32``
(the build NumPy and SciPy bundle, in its latest release), multiplies the
shapes of nlstm's sweeps 7-16% faster on an AVX-512 CPU (single-threaded,
alternated, 0.3.34 against 0.3.30: (128, 641) @ (641, 2048) 74.5 against
63.7 GFLOP/s, (128, 2048) @ (2048, 512) 84.8 against 75.0). So the kernels
call ``sgemm``/``dgemm`` through an address: that wheel's when it is
installed, else SciPy's (the function ``np.dot`` calls). `routines` finds
them once per process; the kernels take them as a run-time argument, so they
stay cacheable.

The wheel's library is loaded privately (``RTLD_LOCAL``) from its folder,
without importing its package, whose import loads it into the process's
global symbol scope, where SciPy's own modules would bind to it. threadpoolctl
sees it like any loaded BLAS (``nlstm._threads`` holds it at one thread while
kernels run).

Both are the Fortran interface (column-major, every argument by pointer):
``out^T = b^T @ a^T`` in column-major terms, so ``b`` is BLAS's first operand.
"""
import ctypes
import importlib.util
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_routines = None


def _wheel_library():
    """``(library, sgemm address, dgemm address)`` of the ``scipy-openblas32``
    wheel, its library loaded privately; None when it is not installed."""
    spec = importlib.util.find_spec("scipy_openblas32")  # finds it, imports nothing
    if spec is None or not spec.submodule_search_locations:
        return None
    lib_dir = os.path.join(spec.submodule_search_locations[0], "lib")
    if not os.path.isdir(lib_dir):
        return None
    for name in sorted(os.listdir(lib_dir)):
        if not name.startswith("libscipy_openblas") or not name.endswith((".so", ".dylib", ".dll")):
            continue
        try:
            library = ctypes.CDLL(os.path.join(lib_dir, name), mode=getattr(os, "RTLD_LOCAL", 0))
            sgemm, dgemm = (ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
                            for symbol in ("scipy_sgemm_", "scipy_dgemm_"))
        except (OSError, AttributeError):
            continue
        return library, sgemm, dgemm
    return None


def _scipy_address(name):
    """Address of ``scipy.linalg.cython_blas``'s ``name`` (what Numba's np.dot calls)."""
    from scipy.linalg import cython_blas
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                  ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def routines():
    """``{np.float32: address of sgemm, np.float64: of dgemm, "source": ...}``,
    found once per process."""
    global _routines
    if _routines is None:
        wheel = _wheel_library()
        if wheel is not None:
            library, sgemm, dgemm = wheel
            _routines = {np.dtype(np.float32): sgemm, np.dtype(np.float64): dgemm,
                         "source": library._name, "library": library}
        else:
            _routines = {np.dtype(np.float32): _scipy_address("sgemm"),
                         np.dtype(np.float64): _scipy_address("dgemm"),
                         "source": "scipy.linalg.cython_blas"}
    return _routines


def gemm_address(dtype):
    """The address `gemm` takes for arrays of ``dtype`` (float32 or float64)."""
    return routines()[np.dtype(dtype)]


@intrinsic
def _call_gemm(typingctx, address, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
               c, ldc):
    """Call the Fortran ``?gemm`` at ``address``; ``a``, ``b``, ``c`` are data
    addresses (integers), the dtype is ``alpha``'s."""
    float_type = alpha

    def codegen(context, builder, signature, args):
        (address_value, trans_a_value, trans_b_value, m_value, n_value, k_value, alpha_value,
         a_value, lda_value, b_value, ldb_value, beta_value, c_value, ldc_value) = args
        int32, char = ir.IntType(32), ir.IntType(8)
        real = context.get_value_type(float_type)

        def slot(value, llvm_type, from_type=None):
            if from_type is not None:
                value = context.cast(builder, value, from_type, types.int32)
            pointer = cgutils.alloca_once(builder, llvm_type)
            builder.store(value, pointer)
            return pointer

        def char_slot(value):
            return slot(builder.trunc(value, char), char)

        def data(value):
            return builder.inttoptr(value, real.as_pointer())

        arguments = [char_slot(trans_a_value), char_slot(trans_b_value),
                     slot(m_value, int32, types.int64), slot(n_value, int32, types.int64),
                     slot(k_value, int32, types.int64), slot(alpha_value, real),
                     data(a_value), slot(lda_value, int32, types.int64),
                     data(b_value), slot(ldb_value, int32, types.int64),
                     slot(beta_value, real), data(c_value), slot(ldc_value, int32, types.int64)]
        function_type = ir.FunctionType(ir.VoidType(), [a.type for a in arguments])
        function = builder.inttoptr(address_value, function_type.as_pointer())
        builder.call(function, arguments)
        return context.get_dummy_value()

    integer = types.int64
    return types.none(address, integer, integer, integer, integer, integer, float_type,
                      types.uintp, integer, types.uintp, integer, float_type, types.uintp,
                      integer), codegen


_N, _T = ord("N"), ord("T")


@njit(cache=True)
def _operand(x):
    """(transpose flag, leading dimension) of 2-d ``x`` read as column-major
    ``x^T``: a row-major matrix is its transpose in column-major terms."""
    size = x.itemsize
    if x.strides[1] == size or x.shape[1] <= 1:  # rows contiguous: x^T as stored
        return _N, max(1, x.strides[0] // size, x.shape[1])
    return _T, max(1, x.strides[1] // size, x.shape[0])  # columns contiguous (x.T of a C array)


@njit(cache=True)
def gemm(blas, a, b, out):
    """``out[:] = a @ b`` through the BLAS at address ``blas`` (`gemm_address`).

    a : (M, K), b : (K, N), out : (M, N); each with one unit stride (rows or
    columns contiguous, e.g. a row slice of a C array or the ``.T`` of one),
    ``out`` rows contiguous; all of one float dtype. The same contract as
    Numba's ``np.dot(a, b, out)``, which needs contiguous arrays.
    """
    m, k = a.shape
    n = b.shape[1]
    trans_b, ldb = _operand(b)
    trans_a, lda = _operand(a)
    ldc = max(1, out.strides[0] // out.itemsize, n)
    # column-major: out^T (n, m) = b^T (n, k) @ a^T (k, m)
    _call_gemm(blas, trans_b, trans_a, n, m, k, out.dtype.type(1), b.ctypes.data, ldb,
               a.ctypes.data, lda, out.dtype.type(0), out.ctypes.data, ldc)


# Loaded at import (1.7 ms, measured): threadpoolctl then sees the same BLAS
# libraries before and after a first fit, so a user's ``threadpool_limits``
# entered before it covers this one too.
routines()
