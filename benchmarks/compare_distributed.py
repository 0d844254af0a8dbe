"""The distributed fit (`nlstm.scale_out.fit_distributed`) on 1 and 2 workers.

One data set of N=4096 sequences (T=50, F=8), ``LSTMRegressor(hidden_size=128,
batch_size=32)``, in 2 blocks of rows (2 replicas), on ``LocalCluster``s of
worker processes with one thread each (and ``NUMBA_NUM_THREADS=1``): 1 worker
(the replicas take turns) against 2 workers (one each). For each
``sync_every``: the median epoch wall time, and the cost of one
synchronisation: a round's wall time less its replicas' training (their sum on
1 worker, where they take turns; the longest on 2), averaged over the rounds:
each replica fetching the others' parameters and optimizer state, averaging
them, and Dask's scheduling; and a replica's median training time per round
(on 2 workers the two share the machine's memory system and its 2 cores with
the scheduler and the client). Both clusters stay up and their fits alternate, 5 times
each (the
machine's speed drifts). The fits of 1 and 2 workers give the same parameters
(checked).

With ``--no-malloc-trim`` the workers start without the
``MALLOC_TRIM_THRESHOLD_=65536`` that Dask's nanny sets by default (config
``distributed.nanny.pre-spawn-environ``): glibc then keeps freed memory for
reuse instead of giving back every free above 64 KiB, and the fresh pages
that each training batch's arrays otherwise fault in are not needed.

Usage: ``python benchmarks/compare_distributed.py [--no-malloc-trim]``
"""
import sys
import warnings

import numpy as np

N, T, F, H, B = 4096, 50, 8, 128, 32
EPOCHS = 3
REPEATS = 5


def main():
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from nlstm import LSTMRegressor
    from nlstm.scale_out import fit_distributed
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, T, F)).astype(np.float32)
    y = X[:, -5:, 0].sum(axis=1)
    estimator = LSTMRegressor(hidden_size=H, batch_size=B, max_iter=EPOCHS, random_state=0)
    clusters = {}
    for n_workers in (1, 2):
        # each worker's Numba pool as large as its thread count (Numba fixes the pool's
        # size when a process starts it); both clusters stay up, their fits alternate
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"})
        client = Client(cluster, set_as_default=False)
        blocks = (da.from_array(X, chunks=(N // 2, T, F)), da.from_array(y, chunks=N // 2))
        blocks = tuple(client.persist(b) for b in blocks)
        fit_distributed(estimator.set_params(max_iter=1), *blocks,
                        client=client)  # kernels compiled (or loaded) on every worker
        clusters[n_workers] = (cluster, client, blocks)
    estimator.set_params(max_iter=EPOCHS)
    trim = dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_")
    print(f"N={N}, T={T}, F={F}, H={H}, batch_size={B}; 2 blocks of {N // 2} rows; "
          f"medians over {REPEATS} alternated fits of {EPOCHS} epochs each; workers' "
          f"MALLOC_TRIM_THRESHOLD_: {trim}\n")
    print("| sync_every | rounds per epoch | epoch s, 1 worker | epoch s, 2 workers | speed-up "
          "| s per sync, 1 worker | s per sync, 2 workers | replica's round, 1 worker "
          "| 2 workers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sync_every in (1, 4, 16, 32, 64):
        epochs, syncs, tasks, models = {1: [], 2: []}, {1: [], 2: []}, {1: [], 2: []}, {}
        for _ in range(REPEATS):
            for n_workers, (_, client, blocks) in clusters.items():
                timings = {}
                models[n_workers] = fit_distributed(estimator, *blocks, sync_every=sync_every,
                                                    client=client, timings=timings)
                critical = [sum(t) if n_workers == 1 else max(t)
                            for t in timings["round_task_seconds"]]
                epochs[n_workers] += timings["epoch_seconds"]
                syncs[n_workers] += list(np.array(timings["round_seconds"]) - critical)
                tasks[n_workers] += [s for t in timings["round_task_seconds"] for s in t]
        rounds = len(timings["round_seconds"]) // EPOCHS
        one, two = np.median(epochs[1]), np.median(epochs[2])
        same = all(np.array_equal(p, q) for p, q in zip(models[1].network_.params,
                                                        models[2].network_.params))
        print(f"| {sync_every} | {rounds} | {one:.2f} | {two:.2f} | {one / two:.2f}x | "
              f"{np.mean(syncs[1]) * 1e3:.0f} ms | {np.mean(syncs[2]) * 1e3:.0f} ms | "
              f"{np.median(tasks[1]):.3f} s | {np.median(tasks[2]):.3f} s |"
              + ("" if same else " (parameters differ!)"), flush=True)
    size = sum(p.nbytes for p in models[1].network_.params)
    print(f"\nparameters: {size / 2**20:.2f} MiB (and Adam's two moments as much again, each way)")
    for cluster, client, _ in clusters.values():
        client.close()
        cluster.close()


if __name__ == "__main__":
    if "--no-malloc-trim" in sys.argv[1:]:
        import dask
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    main()
