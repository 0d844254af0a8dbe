"""`nlstm.kernels.codegen.scratch.reusable`: a thread gets its working array back,
never another thread's, and the sweeps that use it give the same bits call
after call."""
import threading

import numpy as np

from nlstm.kernels import cpu
from nlstm.kernels.codegen.scratch import KEEP, reusable


def test_a_thread_gets_its_array_back_and_no_other_thread_gets_it():
    first = reusable("test role", (3, 5), np.float32)
    assert reusable("test role", (3, 5), np.float32) is first
    assert first.ctypes.data % 64 == 0 and first.flags.c_contiguous
    assert reusable("test role", (3, 6), np.float32) is not first  # another shape
    assert reusable("test role", (3, 5), np.float64) is not first  # another dtype
    assert reusable("test role", (3, 5), np.float32) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(reusable("test role", (3, 5),
                                                                   np.float32)))
    thread.start()
    thread.join()
    assert other[0] is not first


def test_only_the_most_recently_used_arrays_are_kept():
    first = reusable("kept", (4,), np.float64)
    for k in range(KEEP - 1):
        reusable(f"other {k}", (4,), np.float64)
    assert reusable("kept", (4,), np.float64) is first  # still among the last KEEP
    for k in range(KEEP):
        reusable(f"newer {k}", (4,), np.float64)
    assert reusable("kept", (4,), np.float64) is not first


def test_sweeps_that_reuse_their_working_arrays_repeat_bit_for_bit():
    rng = np.random.default_rng(0)
    T, B, F, H = 7, 5, 3, 4
    x = rng.standard_normal((T, B, F)).astype(np.float32)
    w_cat = rng.standard_normal((F + H + 1, 4 * H)).astype(np.float32) * 0.5
    w_hh = np.ascontiguousarray(w_cat[F:F + H].T)  # (4H, H)
    lengths = np.array([7, 3, 5, 1, 7])

    def forward_backward():
        hs, cs = np.zeros((T + 1, B, H), np.float32), np.zeros((T + 1, B, H), np.float32)
        gates = np.empty((T, B, 4 * H), np.float32)
        cpu.lstm_forward_sweep(x, w_cat, lengths, hs, cs, gates)
        d_h0, d_c0 = np.empty((B, H), np.float32), np.empty((B, H), np.float32)
        grads = cpu.lstm_backward(np.ones((T, B, H), np.float32), np.ones((B, H), np.float32),
                                  np.zeros((B, H), np.float32), w_hh, lengths, cs, gates, x, hs,
                                  None, d_h0, d_c0)
        return [hs, cs, gates, d_h0, d_c0, *[np.array(g) for g in grads]]

    first = forward_backward()
    reusable("backward dz", (1, 1, 1), np.float32)  # other arrays in between change nothing
    for again in (forward_backward(), forward_backward()):
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
