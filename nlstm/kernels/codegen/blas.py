"""The matrix product the CPU kernels call: ``gemm(blas, a, b, out)``, ``out = a @ b``.

Numba's ``np.dot`` calls the BLAS bundled with SciPy (OpenBLAS 0.3.30 in
SciPy 1.17's wheels). The OpenBLAS project's own wheel, ``scipy-openblas32``
(the build NumPy and SciPy bundle, in its latest release), multiplies the
shapes of nlstm's sweeps faster on an AVX-512 CPU. So the kernels
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
import math
import os

import numpy as np
from llvmlite import ir
from numba import types
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


# Weights are the first operand OpenBLAS reads (``b`` of `gemm`). For the
# sweeps' small products at H = 64 a weight whose data does not start on a
# 64-byte boundary ran up to 2x slower; NumPy aligns arrays to 16 bytes only.
# (Numbers: benchmarks/HISTORY.md, session 35.)
ALIGNMENT = 64  # bytes: a cache line, one AVX-512 vector


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # math.prod: np.prod is slow on a tuple
    buffer = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


def aligned(array):
    """``array`` itself when its data starts on a 64-byte boundary, else a copy
    that does, in the same memory order (C, or F for the ``.T`` of a C array)."""
    if array.ctypes.data % ALIGNMENT == 0 and (array.flags.c_contiguous
                                               or array.flags.f_contiguous):
        return array
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        return aligned(array.T).T
    copy = aligned_empty(array.shape, array.dtype)
    copy[...] = array
    return copy


def gemm_address(dtype):
    """The address `gemm` takes for arrays of ``dtype`` (float32 or float64)."""
    return routines()[np.dtype(dtype)]


_N, _T = ord("N"), ord("T")


def _gemm_typing(beta, blas, a, b, out):
    """The signature and code of ``out[:] = a @ b + beta * out`` (see `gemm`),
    or None for arguments it does not take."""
    arrays = (a, b, out)
    if not isinstance(blas, types.Integer) or not all(
            isinstance(x, types.Array) and x.ndim == 2 for x in arrays):
        return None
    dtype = out.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None

    def codegen(context, builder, signature, args):
        blas_value, a_value, b_value, out_value = args
        int64, int32, char = ir.IntType(64), ir.IntType(32), ir.IntType(8)
        real = context.get_value_type(dtype)
        one = ir.Constant(int64, 1)
        itemsize = ir.Constant(int64, context.get_abi_sizeof(real))

        def view(array_type, value):
            array = context.make_array(array_type)(context, builder, value)
            return (array.data, cgutils.unpack_tuple(builder, array.shape, 2),
                    cgutils.unpack_tuple(builder, array.strides, 2))

        def largest(*values):
            result = values[0]
            for value in values[1:]:
                result = builder.select(builder.icmp_signed(">", value, result), value, result)
            return result

        def operand(shape, strides):
            """(transpose flag, leading dimension) of a 2-d array read as
            column-major: a row-major matrix is its transpose there."""
            rows_contiguous = builder.or_(builder.icmp_signed("==", strides[1], itemsize),
                                          builder.icmp_signed("<=", shape[1], one))
            flag = builder.select(rows_contiguous, ir.Constant(char, _N), ir.Constant(char, _T))
            lead = builder.select(
                rows_contiguous,
                largest(one, builder.sdiv(strides[0], itemsize), shape[1]),
                largest(one, builder.sdiv(strides[1], itemsize), shape[0]))  # x.T of a C array
            return flag, lead

        def slot(value, llvm_type):
            pointer = cgutils.alloca_once(builder, llvm_type)
            builder.store(value, pointer)
            return pointer

        def int_slot(value):
            return slot(builder.trunc(value, int32), int32)

        a_data, (m, k), a_strides = view(a, a_value)
        b_data, (_, n), b_strides = view(b, b_value)
        out_data, _, out_strides = view(out, out_value)
        trans_a, lda = operand((m, k), a_strides)
        trans_b, ldb = operand((k, n), b_strides)
        ldc = largest(one, builder.sdiv(out_strides[0], itemsize), n)
        # Fortran ?gemm, column-major: out^T (n, m) = b^T (n, k) @ a^T (k, m)
        arguments = [slot(trans_b, char), slot(trans_a, char), int_slot(n), int_slot(m),
                     int_slot(k), slot(ir.Constant(real, 1.0), real), b_data, int_slot(ldb),
                     a_data, int_slot(lda), slot(ir.Constant(real, beta), real), out_data,
                     int_slot(ldc)]
        function_type = ir.FunctionType(ir.VoidType(), [x.type for x in arguments])
        address = context.cast(builder, blas_value, blas, types.uintp)
        builder.call(builder.inttoptr(address, function_type.as_pointer()), arguments)
        return context.get_dummy_value()

    return types.none(blas, a, b, out), codegen


@intrinsic
def gemm(typingctx, blas, a, b, out):
    """``out[:] = a @ b`` through the BLAS at address ``blas`` (`gemm_address`).

    a : (M, K), b : (K, N), out : (M, N); each with one unit stride (rows or
    columns contiguous, e.g. a row slice of a C array or the ``.T`` of one),
    ``out`` rows contiguous; all of one float dtype. The same contract as
    Numba's ``np.dot(a, b, out)``, which needs contiguous arrays.

    An intrinsic rather than an ``@njit`` function: its few instructions are
    emitted inside each calling kernel, so it adds no compilation of its own
    (an ``@njit`` version compiled once per operand layout).
    """
    return _gemm_typing(0.0, blas, a, b, out)


@intrinsic
def gemm_add(typingctx, blas, a, b, out):
    """``out[:] += a @ b`` (BLAS's beta = 1), operands as `gemm`'s."""
    return _gemm_typing(1.0, blas, a, b, out)


# Loaded at import: threadpoolctl then sees the same BLAS
# libraries before and after a first fit, so a user's ``threadpool_limits``
# entered before it covers this one too.
routines()
