"""The sweeps' step products with the weights packed once per call:
``packed_gemm(blas, a, panels, out)``, ``out = a @ w`` for ``panels = pack_panels(w)``.

Every step of a sweep multiplies a few rows (a block's ``[x_t, h_{t-1}, 1]``,
or its gate gradients) by the same weights. OpenBLAS copies ("packs") the
weight operand into its own layout on every call; this module packs it once
per call (the measured GFLOP/s: ``docs/performance.md``, "Packed step
products").

`pack_panels` lays ``w`` (K, N) out as panels of `panel_width` columns
(two AVX-512 vectors), each a contiguous ``(K, width)`` block,
zero-padded past N. A *tile* multiplies `TILE_ROWS` rows of ``a`` by one
panel, keeping its ``rows x width`` results in vector registers over the
whole depth K (8 rows x 2 vectors, 16 of AVX-512's 32 registers; 12 rows
spilled them and ran at half the speed): per step of k, two vector loads of
the panel, a broadcast of each row's ``a[r, k]`` and a fused multiply-add
per register.
The tiles are LLVM IR written here (`_tile`), so the register blocking does
not depend on what the loop vectoriser makes of a loop.

Each output is one chain of fused multiply-adds over k = 0 .. K-1, whatever
the number of rows, the tile that computes it or the thread: a row's result
does not depend on the rows around it (OpenBLAS's does, see
``cpu.shard_bounds``).

The tiles are used where Numba compiles for AVX-512 (its target machine's
features, ``NUMBA_CPU_FEATURES`` or the host's), the only vectors they were
measured with. Elsewhere `pack_panels` makes a single panel, the whole
matrix, and `packed_gemm` calls the BLAS (`blas.gemm`): AVX2 tiles were
slower than OpenBLAS's AVX-512 kernels on the same CPU, and a target without
hardware FMA would make each multiply-add a library call. `pack_panels` and
the compiled code read the same setting, and Numba's cache keys compiled
code on the features.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

from ..runtime.jit_options import HELPER
from .blas import aligned_empty, gemm
from .inlining import inline_into_callers


def _target_has_avx512():
    """Whether the CPU that Numba compiles for has AVX-512."""
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None \
        else get_host_cpu_features()
    return "+avx512f" in features.split(",")


USE_TILES = _target_has_avx512()
VECTOR_BYTES = 64  # the tiles' vectors: AVX-512's
# Rows per tile: 2 accumulator vectors a row, 16 of AVX-512's 32 registers.
TILE_ROWS = 8
# Panels per group: `packed_gemm` runs all row tiles over a group of panels
# that fit in this many bytes (half of a 1 MiB L2), so that each panel is read
# from memory once per call and the rows' ``a`` stay in L2.
PANEL_GROUP_BYTES = 512 * 1024


def panel_width(dtype):
    """Columns per panel of the tiles for weights of ``dtype``: two vectors."""
    return 2 * VECTOR_BYTES // np.dtype(dtype).itemsize


def panels_shape(w_shape, dtype):
    """The shape `pack_panels` gives a (K, N) matrix of ``dtype``."""
    K, N = w_shape
    if not USE_TILES:
        return (1, K, N)
    width = panel_width(dtype)
    return (-(-N // width), K, width)


def pack_panels(w, column_scales=None, out=None):
    """``w`` (K, N), times ``column_scales`` (N,) when given, as panels
    ``(ceil(N / width), K, width)`` for `packed_gemm`, ``width`` =
    `panel_width`, zero past column N, 64-byte aligned. Without the tiles,
    one panel ``(1, K, N)``: the matrix, aligned as OpenBLAS's small products
    want their weights (`blas.ALIGNMENT`). ``out``: a 64-byte aligned array
    of `panels_shape` to fill instead of a new one."""
    K, N = w.shape
    if column_scales is None:
        column_scales = np.ones(N, w.dtype)
    panels = aligned_empty(panels_shape(w.shape, w.dtype), w.dtype) if out is None else out
    if not USE_TILES:
        np.multiply(w, column_scales, out=panels[0])
        return panels
    width = panel_width(w.dtype)
    full, tail = divmod(N, width)
    if full:
        columns = w[:, :full * width].reshape(K, full, width).transpose(1, 0, 2)
        np.multiply(columns, column_scales[:full * width].reshape(full, 1, width),
                    out=panels[:full])
    if tail:
        np.multiply(w[:, full * width:], column_scales[full * width:], out=panels[full, :, :tail])
        panels[full, :, tail:] = 0
    return panels


def _splat(builder, value, lanes):
    """A vector of ``lanes`` copies of the scalar ``value`` (a broadcast)."""
    undef = ir.Constant(ir.VectorType(value.type, lanes), ir.Undefined)
    return builder.shuffle_vector(
        builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)), undef,
        ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def _lanes_below(builder, n, first, lanes):
    """The ``<lanes x i1>`` mask of lanes ``first + i < n`` (n: an i64 value)."""
    lane_type = ir.VectorType(ir.IntType(64), lanes)
    return builder.icmp_signed("<", ir.Constant(lane_type, [first + i for i in range(lanes)]),
                               _splat(builder, n, lanes))


def _vector_name(vector):
    """LLVM's name of a float vector type in intrinsic names: ``v16f32``, ``v8f64``."""
    return f"v{vector.count}{'f32' if str(vector.element) == 'float' else 'f64'}"


def _masked_store(module, vector):
    """LLVM's ``llvm.masked.store`` for ``vector`` (value, pointer, alignment, mask)."""
    pointer = vector.as_pointer()
    name = _vector_name(vector)
    # the pointer's part of the name: "p0" with opaque pointers, else the pointee too
    pointer_name = "p0" if str(pointer) == "ptr" else f"p0{name}"
    return cgutils.get_or_insert_function(
        module, ir.FunctionType(ir.VoidType(), [vector, pointer, ir.IntType(32),
                                                ir.VectorType(ir.IntType(1), vector.count)]),
        f"llvm.masked.store.{name}.{pointer_name}")


def _tile(rows):
    """The intrinsic ``tile(a, r0, panels, p, out)``: ``out[r0:r0+rows,
    p*width:(p+1)*width] = a[r0:r0+rows] @ w[:, p*width:(p+1)*width]``,
    columns past ``out``'s last one left out. ``a`` (M, K), ``panels`` (P, K,
    width) of `pack_panels` and ``out`` (M, N): C-contiguous, one float dtype."""

    @intrinsic
    def tile(typingctx, a, r0, panels, p, out):
        arrays = (a, panels, out)
        if not all(isinstance(x, types.Array) and x.layout == "C" for x in arrays):
            return None
        if (a.ndim, panels.ndim, out.ndim) != (2, 3, 2) or not all(
                isinstance(x, types.Integer) for x in (r0, p)):
            return None
        dtype = a.dtype
        if dtype not in (types.float32, types.float64) or {panels.dtype, out.dtype} != {dtype}:
            return None

        def codegen(context, builder, signature, args):
            a_value, r0_value, panels_value, p_value, out_value = args
            real = context.get_value_type(dtype)
            itemsize = context.get_abi_sizeof(real)
            lanes = VECTOR_BYTES // itemsize
            width = 2 * lanes
            vector = ir.VectorType(real, lanes)
            int64 = ir.IntType(64)

            def const(value):
                return ir.Constant(int64, value)

            def array(array_type, value):
                return context.make_array(array_type)(context, builder, value)

            A, W, Out = array(a, a_value), array(panels, panels_value), array(out, out_value)
            K = cgutils.unpack_tuple(builder, A.shape, 2)[1]
            n_columns = cgutils.unpack_tuple(builder, Out.shape, 2)[1]
            lda = builder.sdiv(cgutils.unpack_tuple(builder, A.strides, 2)[0], const(itemsize))
            ldc = builder.sdiv(cgutils.unpack_tuple(builder, Out.strides, 2)[0], const(itemsize))
            r0_ = context.cast(builder, r0_value, r0, types.int64)
            p_ = context.cast(builder, p_value, p, types.int64)
            column0 = builder.mul(p_, const(width))
            a_rows = builder.gep(A.data, [builder.mul(r0_, lda)])  # a[r0, 0]
            panel = builder.gep(W.data, [builder.mul(column0, K)])  # panels[p, 0, 0]
            c_tile = builder.gep(Out.data, [builder.add(builder.mul(r0_, ldc), column0)])
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector] * 3),
                f"llvm.fma.{_vector_name(vector)}")
            zero = ir.Constant(vector, [0.0] * lanes)

            # the loop over k: acc[r][v] += a[r0 + r, k] * panel[k, v*lanes:(v+1)*lanes]
            entry = builder.basic_block
            loop = builder.append_basic_block("tile.k")
            stores = builder.append_basic_block("tile.stores")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(int64)
            k.add_incoming(const(0), entry)
            acc = [[builder.phi(vector) for _ in range(2)] for _ in range(rows)]
            for row in acc:
                for value in row:
                    value.add_incoming(zero, entry)
            panel_k = builder.bitcast(builder.gep(panel, [builder.mul(k, const(width))]),
                                      vector.as_pointer())
            # unaligned loads (vmovups): as fast on `pack_panels`'s aligned rows, and
            # no fault on other arrays
            w_k = [builder.load(panel_k, align=itemsize),
                   builder.load(builder.gep(panel_k, [const(1)]), align=itemsize)]
            summed = []
            for r in range(rows):
                a_rk = builder.load(builder.gep(a_rows,
                                                [builder.add(builder.mul(const(r), lda), k)]))
                a_splat = _splat(builder, a_rk, lanes)
                summed.append([builder.call(fma, [a_splat, w_k[v], acc[r][v]]) for v in range(2)])
            k_next = builder.add(k, const(1))
            k.add_incoming(k_next, loop)
            for r in range(rows):
                for v in range(2):
                    acc[r][v].add_incoming(summed[r][v], loop)
            builder.cbranch(builder.icmp_signed("<", k_next, K), loop, stores)

            # the stores: whole vectors, or for a last, narrower panel vectors
            # masked to the columns that exist (one instruction each, no
            # scratch loop: a smaller function to compile)
            builder.position_at_end(stores)
            n_valid = builder.sub(n_columns, column0)
            c_vectors = []  # [r][v]: where out[r0 + r, column0 + v*lanes:] starts
            for r in range(rows):
                c_row = builder.bitcast(builder.gep(c_tile, [builder.mul(const(r), ldc)]),
                                        vector.as_pointer())
                c_vectors.append([builder.gep(c_row, [const(v)]) for v in range(2)])
            with builder.if_else(builder.icmp_signed(">=", n_valid, const(width))) as (
                    whole, narrow):
                with whole:
                    for r in range(rows):
                        for v in range(2):
                            builder.store(summed[r][v], c_vectors[r][v], align=itemsize)
                with narrow:
                    masks = [_lanes_below(builder, n_valid, v * lanes, lanes) for v in range(2)]
                    masked_store = _masked_store(builder.module, vector)
                    alignment = ir.Constant(ir.IntType(32), itemsize)
                    for r in range(rows):
                        for v in range(2):
                            builder.call(masked_store,
                                         [summed[r][v], c_vectors[r][v], alignment, masks[v]])
            return context.get_dummy_value()

        return types.none(a, r0, panels, p, out), codegen

    return tile


_tile_full = _tile(TILE_ROWS)
_tile_4, _tile_2, _tile_1 = _tile(4), _tile(2), _tile(1)


@njit(**HELPER)
def packed_gemm(blas, a, panels, out):
    """``out[:] = a @ w`` for ``panels = pack_panels(w)``.

    blas : `blas.gemm_address` of the dtype (used without the tiles)
    a : (M, K), panels : (P, K, width), out : (M, N) with N <= P * width;
    C-contiguous, one float dtype. Runs on the calling thread.
    """
    inline_into_callers()
    if not USE_TILES:  # a compile-time constant: one panel, the whole matrix
        gemm(blas, a, panels[0], out)
        return
    M, K = a.shape
    if K == 0:
        out[:] = 0
        return
    n_panels = panels.shape[0]
    group = max(1, PANEL_GROUP_BYTES // (K * panels.shape[2] * panels.itemsize))
    for p0 in range(0, n_panels, group):
        p1 = min(n_panels, p0 + group)
        r = 0
        while r + TILE_ROWS <= M:
            for p in range(p0, p1):
                _tile_full(a, r, panels, p, out)
            r += TILE_ROWS
        if M - r >= 4:
            for p in range(p0, p1):
                _tile_4(a, r, panels, p, out)
            r += 4
        if M - r >= 2:
            for p in range(p0, p1):
                _tile_2(a, r, panels, p, out)
            r += 2
        if M - r >= 1:
            for p in range(p0, p1):
                _tile_1(a, r, panels, p, out)
