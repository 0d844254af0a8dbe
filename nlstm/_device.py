"""Which compute device a call runs on, and a clear error when it is unavailable."""
from contextlib import contextmanager

from .kernels import cpu
from .kernels.plumbing import cpu_arrays

DEVICES = ("cpu", "cuda")


def check_device(device):
    """Raise a clear error if ``device`` cannot be used here.

    ``"cpu"`` always works. ``"cuda"`` needs the ``numba-cuda`` package (the
    ``cuda`` extra: ``pip install "nlstm[cuda]"``) and a visible NVIDIA GPU, or
    Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests).
    """
    if device == "cpu":
        return
    if device != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    from numba.core import config
    if config.ENABLE_CUDASIM:
        return
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        raise RuntimeError("device='cuda' needs the numba-cuda package, which is not "
                           "installed: pip install 'nlstm[cuda]'") from None
    from numba import cuda
    if not cuda.is_available():
        raise RuntimeError("device='cuda' was requested, and numba-cuda is installed, but no "
                           "NVIDIA GPU (or CUDA driver) is visible on this machine")


def kernels_for(device):
    """The kernels module for ``device`` (checked first): `nlstm.kernels.cpu` or
    `nlstm.kernels.cuda`, which share their function names and signatures."""
    if device == "cpu":  # the common case first: called several times per batch
        return cpu
    check_device(device)
    from .kernels import cuda
    return cuda


def arrays_for(device):
    """The array-plumbing module for ``device`` (checked first):
    `nlstm.kernels.plumbing.cpu_arrays` or `nlstm.kernels.plumbing.cuda_arrays`, which share
    their function names and signatures."""
    if device == "cpu":  # the common case first: called several times per batch
        return cpu_arrays
    check_device(device)
    from .kernels.plumbing import cuda_arrays
    return cuda_arrays


@contextmanager
def device_copies(arrays, host_arrays, write_back=True):
    """Copies of ``host_arrays`` on ``arrays``' device for the block (None
    stays None); with ``write_back`` their contents go back into the host
    arrays on exit, error or not. The layer, the network and the optimizers
    keep their state on the GPU with this."""
    device = [None if a is None else arrays.to_device(a) for a in host_arrays]
    try:
        yield device
    finally:
        if write_back:
            for host, copy in zip(host_arrays, device):
                if host is not None:
                    host[...] = arrays.to_host(copy)
