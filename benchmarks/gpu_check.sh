#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, numba-cuda and a CUDA build of PyTorch: the CUDA tests on the
# GPU itself (not on the simulator), the PTX check among them, then compare_torch.py --device cuda.
# Logs go to $OUT (default ./gpu-logs). Run from the repository root:
#     bash benchmarks/gpu_check.sh [arguments for compare_torch.py, e.g. --repeats 3]
# The comparison runs even after failed tests; the exit status is non-zero if either failed.
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
export NUMBA_ENABLE_CUDASIM=0 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$python" -c "import numba, numpy, sklearn, scipy; from importlib.metadata import version as v
print('python', __import__('sys').version.split()[0], 'numba', numba.__version__, 'numba-cuda',
      v('numba-cuda'), 'numpy', numpy.__version__, 'scikit-learn', sklearn.__version__,
      'scipy', scipy.__version__)
from numba import cuda; cuda.detect()"
} 2>&1 | tee "$out/versions.txt"
timeout "${TEST_TIMEOUT:-300}" "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    tests/test_cuda_arrays.py tests/test_cuda_ptx.py 2>&1 | tee "$out/gpu-tests.log"
tests_status=$?
timeout "${BENCH_TIMEOUT:-400}" "$python" benchmarks/compare_torch.py --device cuda "$@" 2>&1 \
    | tee "$out/compare-cuda.log"
compare_status=$?
if [ "$tests_status" -ne 0 ] || [ "$compare_status" -ne 0 ]; then
    echo "gpu_check: tests exit $tests_status, comparison exit $compare_status" >&2
    exit 1
fi
