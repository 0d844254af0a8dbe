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


def test_a_thread_keeps_no_more_than_its_byte_budget(monkeypatch):
    from nlstm.kernels.codegen import scratch
    monkeypatch.setattr(scratch, "KEEP_BYTES", 3000)
    first, second = reusable("budget a", (1000,), np.uint8), reusable("budget b", (1000,), np.uint8)
    assert reusable("budget a", (1000,), np.uint8) is first  # 2,000 bytes kept: within
    third = reusable("budget c", (2500,), np.uint8)  # 4,500: the two older ones go
    assert reusable("budget c", (2500,), np.uint8) is third
    assert reusable("budget a", (1000,), np.uint8) is not first
    assert reusable("budget b", (1000,), np.uint8) is not second
    assert reusable("budget big", (5000,), np.uint8).nbytes == 5000  # alone, kept anyway


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
    reusable("backward chunk 0", (1, 1, 1), np.float32)  # other arrays between change nothing
    for again in (forward_backward(), forward_backward()):
        assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_the_gru_sweeps_repeat_bit_for_bit():
    rng = np.random.default_rng(1)
    T, B, F, H = 6, 4, 3, 5
    x = rng.standard_normal((T, B, F))
    w_ih, w_hh = rng.standard_normal((3 * H, F)) * 0.5, rng.standard_normal((3 * H, H)) * 0.5
    b_ih, b_hh = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    lengths = np.array([6, 2, 4, 6])

    def forward_backward():
        hs, gates = np.zeros((T + 1, B, H)), np.empty((T, B, 4 * H))
        cpu.gru_forward_sweep(x, w_ih, w_hh, b_ih, b_hh, lengths, hs, gates)
        d_pre, d_h0 = np.empty((T, B, 3 * H)), np.empty((B, H))
        grads = cpu.gru_backward(np.ones((T, B, H)), np.ones((B, H)), w_hh, lengths, hs, gates,
                                 x, d_pre, d_h0)
        return [hs, gates, d_pre, d_h0, *[np.array(g) for g in grads]]

    first = forward_backward()
    assert np.abs(first[-3]).sum() > 0  # d_w_hh
    for again in (forward_backward(), forward_backward()):
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
