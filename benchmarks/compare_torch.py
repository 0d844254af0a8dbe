"""Side by side: nlstm against PyTorch's CPU LSTM (or GRU: ``--cell gru``) on the speed grid.

For each (B, T, F, H, N), float32, one layer:

* training: seconds per epoch of ``LSTMRegressor(hidden_size=H, batch_size=B,
  learning_rate_init=1e-3).fit`` (one epoch) against a plain PyTorch loop doing
  the same work (Adam, MSE on a linear head over the last hidden state, same
  batch size, same N samples);
* inference: ``predict`` on all N samples against ``torch.nn.LSTM`` + head under
  ``torch.no_grad()`` on the whole array.

Runs alternate between the two libraries in one process on the same data; the
table holds medians. GFLOP/s count the GEMM work (2*T*N*(F+H)*4H for a forward
pass, 3x that for forward+backward); "% peak" is against this machine's float32
matrix-product speed measured with NumPy at 2048^3 just before each config (the
speed of a shared virtual machine drifts during a run; each row shows its own).

With ``--device cuda`` both libraries run on the GPU: nlstm's numba.cuda kernels
(``LSTMRegressor(device="cuda")``) against ``torch.nn.LSTM`` on CUDA (cuDNN, with
PyTorch's default settings), PyTorch holding the whole data set on the GPU
(nlstm uploads each batch: its fit takes host arrays). The peak is then
PyTorch's float32 matrix product at 8192^3 (TF32 off), and two more columns
give nlstm's CPU kernels on the same machine, and the largest relative
difference of the GPU predictions from the CPU ones for the same fitted model.

With ``--cell gru`` both libraries run the GRU (``cell="gru"`` against
``torch.nn.GRU``); the GFLOP/s then count its 3H gate columns.

With ``--exported`` (CPU only; informational) the fitted nlstm model is also
exported with ``nlstm.to_onnx`` and its predict timed in onnxruntime (default
session options) and OpenVINO (CPU plugin, the data's static shape, f32
inference precision), alternated with the others.

Usage: ``python benchmarks/compare_torch.py [--repeats 5] [--quick] [--device cpu|cuda]
[--cell lstm|gru] [--configs 0,3] [--exported]``
"""
import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

GRID = [(32, 50, 8, 32, 1024), (64, 100, 32, 128, 512), (128, 100, 64, 256, 512),
        (32, 200, 1, 64, 512), (256, 50, 128, 512, 512), (1, 500, 4, 64, 32)]


# After a multi-threaded product NumPy's OpenBLAS keeps its worker threads
# spinning for about 0.1 s, and on 2 cores that doubled PyTorch's and nlstm's
# predict times while it lasted (measured, benchmarks/HISTORY.md session 24):
# the peak measurement waits that out before the libraries are timed.
BLAS_SPIN_WAIT_S = 0.5


def gemm_peak_gflops(device="cpu", repeats=5):
    if device == "cuda":
        return _cuda_gemm_peak_gflops(repeats=repeats)
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    time.sleep(BLAS_SPIN_WAIT_S)
    return 2 * n ** 3 / best / 1e9


def _cuda_gemm_peak_gflops(n=8192, repeats=5):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 arithmetic, as nlstm's kernels
    a = torch.randn(n, n, device="cuda")
    a @ a
    torch.cuda.synchronize()
    best = min(_timed(lambda: (a @ a, torch.cuda.synchronize())) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def forward_flops(B, T, F, H, N, gates=4):
    return 2.0 * T * N * (F + H) * gates * H


def make_data(T, F, N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, F)).astype(np.float32)
    y = X[:, :, 0].mean(axis=1) + 0.1 * rng.standard_normal(N).astype(np.float32)
    return X, y


class NlstmRunner:
    def __init__(self, B, T, F, H, N, X, y, device="cpu", cell="lstm"):
        from nlstm import LSTMRegressor
        self.X, self.y = X, y
        self.model = LSTMRegressor(hidden_size=H, batch_size=B, learning_rate_init=1e-3,
                                   max_iter=1, random_state=0, device=device, cell=cell)
        self.train_epoch()  # JIT warm-up

    def train_epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(self.X, self.y)

    def predict(self):
        return self.model.predict(self.X)


class TorchRunner:
    def __init__(self, B, T, F, H, N, X, y, device="cpu", cell="lstm"):
        import torch
        self.torch = torch
        torch.manual_seed(0)
        module = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
        self.lstm = module(F, H, batch_first=True).to(device)
        self.head = torch.nn.Linear(H, 1).to(device)
        self.params = list(self.lstm.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=1e-3)
        self.X = torch.from_numpy(X).to(device)
        self.y = torch.from_numpy(y)[:, None].to(device)
        self.B = B
        # the GPU works asynchronously: an epoch ends when its last kernel does
        self._wait = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.train_epoch()

    def _forward(self, xb):
        _, state = self.lstm(xb)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        return self.head(h_n[-1])

    def train_epoch(self):
        torch = self.torch
        loss_fn = torch.nn.MSELoss()
        for start in range(0, len(self.X), self.B):
            xb, yb = self.X[start:start + self.B], self.y[start:start + self.B]
            self.opt.zero_grad()
            loss = loss_fn(self._forward(xb), yb)
            loss.backward()
            self.opt.step()
        self._wait()

    def predict(self):
        with self.torch.no_grad():
            return self._forward(self.X).cpu().numpy()  # on the host, as nlstm's


class ExportedRunner:
    """The fitted nlstm model, exported with ``nlstm.to_onnx``, predicting all N
    samples in onnxruntime or OpenVINO (predict only)."""

    def __init__(self, model, X, runtime):
        from nlstm import to_onnx
        exported = to_onnx(model).SerializeToString()
        if runtime == "onnxruntime":
            import onnxruntime
            session = onnxruntime.InferenceSession(exported, providers=["CPUExecutionProvider"])
            self._run = lambda: session.run(None, {"X": X})[0]
        else:
            import openvino
            core = openvino.Core()
            network = core.read_model(exported, b"")
            network.reshape({"X": list(X.shape)})
            compiled = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            request = compiled.create_infer_request()
            self._run = lambda: request.infer({"X": X})
        self.predict()

    def predict(self):
        return self._run()


def measure(B, T, F, H, N, repeats, device="cpu", cell="lstm", exported=False):
    X, y = make_data(T, F, N)
    runners = {"nlstm": NlstmRunner(B, T, F, H, N, X, y, device, cell),
               "torch": TorchRunner(B, T, F, H, N, X, y, device, cell)}
    if device == "cuda":  # context: nlstm's CPU kernels on the same machine
        runners["nlstm-cpu"] = NlstmRunner(B, T, F, H, N, X, y, "cpu", cell)
    if exported:
        for runtime in ("onnxruntime", "openvino"):
            runners[runtime] = ExportedRunner(runners["nlstm"].model, X, runtime)
    times = {(lib, task): [] for lib in runners for task in ("train", "predict")}
    for _ in range(repeats):  # alternate the libraries
        for lib, runner in runners.items():
            if hasattr(runner, "train_epoch"):
                times[(lib, "train")].append(_timed(runner.train_epoch))
            times[(lib, "predict")].append(_timed(runner.predict))
    times = {k: v for k, v in times.items() if v}
    medians = {k: statistics.median(v) for k, v in times.items()}
    if device == "cuda":
        medians["gpu_vs_cpu"] = gpu_cpu_difference(runners["nlstm"].model, X)
    return medians


def gpu_cpu_difference(model, X):
    """Largest difference of ``model``'s GPU predictions from its CPU ones,
    relative to the largest CPU prediction (the model is left on the GPU)."""
    on_gpu = model.predict(X)
    on_cpu = model.set_params(device="cpu").predict(X)
    model.set_params(device="cuda")
    return float(np.abs(on_gpu - on_cpu).max() / np.abs(on_cpu).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two repeats, for a smoke run")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--exported", action="store_true",
                        help="also time predict of the model exported to ONNX, in onnxruntime "
                             "and OpenVINO (CPU)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated indices into the grid (default: all)")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    grid = GRID if args.configs is None else [GRID[int(i)] for i in args.configs.split(",")]
    import numba
    import torch
    print(f"cell: {args.cell}; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; "
          f"numba threads {numba.get_num_threads()}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}", flush=True)
    if args.device == "cuda":
        from importlib.metadata import version
        print(f"GPU: {torch.cuda.get_device_name()}; numba-cuda {version('numba-cuda')}, "
              f"cuDNN {torch.backends.cudnn.version()}, numba {numba.__version__}", flush=True)
    # The machine's speed can drift during the run (a shared virtual machine):
    # the GEMM peak is measured just before every config, and that config's
    # "% peak" is against its own measurement.
    rows = []
    for B, T, F, H, N in grid:
        peak = gemm_peak_gflops(args.device)
        rows.append(((B, T, F, H, N), peak,
                     measure(B, T, F, H, N, repeats, args.device, args.cell,
                             exported=args.exported and args.device == "cpu")))
        print(f"measured {(B, T, F, H, N)}: {rows[-1][2]}", file=sys.stderr, flush=True)
    peaks = [peak for _, peak, _ in rows]
    where = "PyTorch on the GPU, 8192^3" if args.device == "cuda" else "NumPy, 2048^3"
    print(f"float32 GEMM peak ({where}), measured before each config: "
          f"{min(peaks):.0f}-{max(peaks):.0f} GFLOP/s; medians of {repeats} alternated runs\n")
    extra = (" nlstm CPU train | nlstm CPU predict | GPU vs CPU predict |"
             if args.device == "cuda" else "")
    if args.exported and args.device == "cpu":
        extra = " predict s onnxruntime (ratio) | predict s OpenVINO (ratio) |"
    print("| B | T | F | H | N | train s/epoch nlstm | torch | speed-up | predict s nlstm "
          "| torch | speed-up | fwd GFLOP/s (% peak) | fwd+bwd GFLOP/s (% peak) "
          "| GEMM peak GFLOP/s |" + extra)
    print("|" + "---|" * (14 + extra.count("|")))
    for (B, T, F, H, N), peak, m in rows:
        fwd = forward_flops(B, T, F, H, N, gates=3 if args.cell == "gru" else 4)
        tr_n, tr_t = m[("nlstm", "train")], m[("torch", "train")]
        pr_n, pr_t = m[("nlstm", "predict")], m[("torch", "predict")]
        g_fwd, g_train = fwd / pr_n / 1e9, 3 * fwd / tr_n / 1e9
        cells = (f" {m[('nlstm-cpu', 'train')]:.4f} | {m[('nlstm-cpu', 'predict')]:.4f} | "
                 f"{m['gpu_vs_cpu']:.1e} |" if args.device == "cuda" else "")
        if ("onnxruntime", "predict") in m:  # their time over nlstm's, as the other ratios
            cells = "".join(f" {m[(r, 'predict')]:.4f} ({m[(r, 'predict')] / pr_n:.2f}x) |"
                            for r in ("onnxruntime", "openvino"))
        print(f"| {B} | {T} | {F} | {H} | {N} | {tr_n:.4f} | {tr_t:.4f} | {tr_t / tr_n:.2f}x | "
              f"{pr_n:.4f} | {pr_t:.4f} | {pr_t / pr_n:.2f}x | "
              f"{g_fwd:.1f} ({100 * g_fwd / peak:.0f}%) | "
              f"{g_train:.1f} ({100 * g_train / peak:.0f}%) | {peak:.0f} |" + cells, flush=True)

if __name__ == "__main__":
    main()
