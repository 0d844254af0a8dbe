"""Working arrays that a thread gets back on its next call instead of fresh memory.

A training step packs the step weights and fills chunks of gate gradients,
about 2 MB at H = 128, that no caller ever sees. Fresh each batch, they cost
page faults wherever glibc maps large blocks anew on every call: in a Dask
worker, whose nanny sets ``MALLOC_TRIM_THRESHOLD_`` (which also freezes
glibc's mmap threshold at 128 KiB), an epoch took 0.66-0.71 s against
0.51-0.56 s (benchmarks/HISTORY.md, session 37). Each thread keeps its own,
so threads never share one: the `KEEP` most recently used, `KEEP_BYTES` in
all at most (a GRU's training step uses 10).
"""
import threading
from collections import OrderedDict

import numpy as np

from .blas import aligned_empty

KEEP = 16  # arrays kept per thread, the least recently used dropped first
KEEP_BYTES = 64 * 2**20  # and no more bytes than this per thread
_thread = threading.local()


def reusable(role, shape, dtype):
    """An uninitialised, 64-byte aligned C array for ``role`` (a name), the
    same one the calling thread got for the same role, shape and dtype last
    time. Only for arrays that never leave the function asking for them: the
    thread's next request overwrites them."""
    arrays = getattr(_thread, "arrays", None)
    if arrays is None:
        arrays = _thread.arrays = OrderedDict()
    key = (role, tuple(shape), np.dtype(dtype).str)
    array = arrays.pop(key, None)
    if array is None:
        array = aligned_empty(tuple(shape), dtype)
    arrays[key] = array
    while len(arrays) > KEEP or (len(arrays) > 1 and
                                 sum(a.nbytes for a in arrays.values()) > KEEP_BYTES):
        arrays.popitem(last=False)
    return array
