"""The CPU backward sweep with the weight gradients inside it (`cpu.lstm_backward`)
against the sweep followed by the separate weight-gradient GEMMs."""
import numba
import numpy as np
import pytest

from nlstm._threads import kernel_threads
from nlstm.kernels import cpu

TOLERANCE = {np.float32: 2e-6, np.float64: 1e-13}  # relative to the largest gradient


def _problem(T, B, F, H, dtype, seed=0):
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return (0.5 * rng.normal(size=shape)).astype(dtype)

    x, w_cat = normal(T, B, F), normal(F + H + 1, 4 * H)
    lengths = rng.integers(1, T + 1, B).astype(np.int64)
    lengths[0] = T
    hs, cs = np.zeros((T + 1, B, H), dtype), np.zeros((T + 1, B, H), dtype)
    hs[0], cs[0] = normal(B, H), normal(B, H)
    gates = np.zeros((T, B, 4 * H), dtype)
    with kernel_threads():
        cpu.lstm_forward_sweep(x, w_cat, lengths, hs, cs, gates)
    d_hs = cpu.zero_after_lengths(normal(T, B, H), lengths)
    return dict(d_hs=d_hs, d_h_n=normal(B, H), d_c_n=normal(B, H),
                w_hh=np.ascontiguousarray(w_cat[F:F + H].T), lengths=lengths, cs=cs,
                gates=gates), x, hs


def _separate(sweep, x, hs):
    T, B, F = x.shape
    H = hs.shape[2]
    d_pre, d_h0, d_c0 = (np.zeros((T, B, 4 * H), x.dtype), np.zeros((B, H), x.dtype),
                         np.zeros((B, H), x.dtype))
    with kernel_threads():
        cpu.lstm_backward_sweep(**sweep, d_pre=d_pre, d_h0=d_h0, d_c0=d_c0)
        grads = cpu.weight_grads(d_pre.reshape(T * B, 4 * H), x.reshape(T * B, F),
                                 hs[:-1].reshape(T * B, H))
    return grads, d_pre, d_h0, d_c0


def _joined(sweep, x, hs, keep_d_pre=True, n_jobs=None):
    T, B, _ = x.shape
    H = hs.shape[2]
    d_pre = np.zeros((T, B, 4 * H), x.dtype) if keep_d_pre else None
    d_h0, d_c0 = np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)
    with kernel_threads(n_jobs):
        grads = cpu.lstm_backward(**sweep, inputs=x, hs=hs, d_pre=d_pre, d_h0=d_h0, d_c0=d_c0)
    return tuple(g.copy() for g in grads), d_pre, d_h0, d_c0


# (T, B, F, H): a batch split into 2 blocks (and 4 at 64 rows), a short last
# chunk (T not a multiple of the chunk's steps), a batch of one row (the
# separate path), ragged lengths throughout
SHAPES = [(37, 32, 3, 8), (200, 32, 1, 64), (10, 64, 5, 16), (9, 1, 2, 4), (33, 7, 2, 5)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("no_output_grad", [False, True])
def test_joined_weight_gradients_match_the_separate_ones(shape, dtype, no_output_grad):
    sweep, x, hs = _problem(*shape, dtype)
    if no_output_grad:
        sweep["d_hs"] = None
    want_grads, want_d_pre, want_d_h0, want_d_c0 = _separate(sweep, x, hs)
    for keep_d_pre in (True, False):
        grads, d_pre, d_h0, d_c0 = _joined(sweep, x, hs, keep_d_pre)
        for got, want in zip(grads, want_grads):
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * scale)
        # the sweep itself is unchanged: the same bits
        np.testing.assert_array_equal(d_h0, want_d_h0)
        np.testing.assert_array_equal(d_c0, want_d_c0)
        if keep_d_pre:
            np.testing.assert_array_equal(d_pre, want_d_pre)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("shape", [(37, 32, 3, 8), (10, 64, 5, 16)], ids=str)
def test_joined_weight_gradients_do_not_depend_on_the_thread_count(shape):
    sweep, x, hs = _problem(*shape, np.float32)
    one, _, _, _ = _joined(sweep, x, hs, False, n_jobs=1)
    two, _, _, _ = _joined(sweep, x, hs, False, n_jobs=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
