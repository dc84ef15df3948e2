#!/usr/bin/env python3
"""Our exact streamed DII beside DADApy's ``DiffImbalance`` (JAX) on the same data and lambda.

Runs in a separate environment that has DADApy and JAX (never the project's venv)::

    python3 -m venv /work/venv-peers
    /work/venv-peers/bin/pip install dadapy jax numpy numba
    PYTHONPATH=. nice -n 10 /work/venv-peers/bin/python analysis/dii_vs_dadapy.py \
        > analysis/dii_vs_dadapy.txt

Data: N points with M = 60 standard-normal features, target y = x_0 + x_1^2 / 2 + noise
(continuous, so DADApy's argsort ranks and our mid-ranks agree).  Lambda: DADApy's default,
point-adaptive, factor 0.1 of the squared distance to the first neighbour in the current
weighted space - ours with ``rule="adaptive", factor=0.1, k=1``.

1. Same loss: DADApy trains (SGD) and records the DII before each step at the weights of
   that step; ours is evaluated at the same weights.  DADApy runs in float32 (JAX's default),
   so the two agree to its precision (relative ~1e-6), not to ours.
2. Time and peak memory: each measurement in its own subprocess (peak RSS from
   ``getrusage``; wall and CPU seconds - the CPU seconds are the fairer figure on a shared
   machine): DADApy's seconds per epoch (full batch, after the first, compiled, epoch)
   at N = 1000 and 4000; ours (value and gradient, one core, ``NUMBA_NUM_THREADS=1``) at
   N = 1000, 4000 and 40,000.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

M = 60
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, M))
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.standard_normal(n)
    return X, y


def peak_mb():
    """Peak resident memory of this process (VmHWM: starts afresh at exec, unlike ru_maxrss,
    which a child inherits from its parent's fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def same_loss(n, epochs=5):
    """DADApy's recorded DII at each step's weights, and ours at the same weights."""
    from dadapy import DiffImbalance
    from mpi_glass.imbalance.dii import dii_value_and_grad
    X, y = data(n)
    dii = DiffImbalance(X, y[:, None], num_epochs=epochs, point_adapt_lambda=True, k_init=1,
                        k_final=1, lambda_factor=0.1, optimizer_name="sgd", learning_rate=1e-1,
                        params_init=0.1 * np.ones(M) + 0.01 * np.arange(M) / M)
    weights, imbs = dii.train()
    rows = []
    for e in range(epochs):
        # imbs[e + 1] is the DII before step e + 1, at weights[e] (weights[0] = init).
        ours = dii_value_and_grad(X, y, np.asarray(weights[e], dtype=np.float64))[0]
        rows.append({"epoch": e, "dadapy": float(imbs[e + 1]), "ours": ours,
                     "relative_difference": abs(float(imbs[e + 1]) - ours) / ours})
    return rows


def timing_dadapy(n, epochs):
    import jax
    from dadapy import DiffImbalance
    X, y = data(n)
    dii = DiffImbalance(X, y[:, None], num_epochs=1, point_adapt_lambda=True, k_init=1,
                        k_final=1, lambda_factor=0.1, optimizer_name="adam",
                        learning_rate=1e-2)
    dii.train()                                           # compile
    # Each train() starts with one extra forward pass (its initial DII): it is included in
    # the time, so DADApy's per-epoch figure carries 1/epochs of a forward pass extra.
    dii.num_epochs = epochs
    start, cpu = time.perf_counter(), time.process_time()
    dii.train()
    seconds = (time.perf_counter() - start) / epochs
    return {"tool": "dadapy", "jax": jax.__version__, "n": n, "seconds_per_epoch": seconds,
            "cpu_seconds_per_epoch": (time.process_time() - cpu) / epochs,
            "peak_rss_mb": peak_mb()}


def timing_ours(n, epochs):
    from mpi_glass.imbalance.dii import DiiTarget, dii_value_and_grad
    X, y = data(n)
    Xt, target, w = np.ascontiguousarray(X.T), DiiTarget(y), np.ones(M)
    dii_value_and_grad(None, DiiTarget(y[:200]), w, Xt=np.ascontiguousarray(Xt[:, :200]))
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        dii_value_and_grad(None, target, w, Xt=Xt)
    seconds = (time.perf_counter() - start) / epochs
    return {"tool": "mpi_glass", "n": n, "seconds_per_epoch": seconds,
            "cpu_seconds_per_epoch": (time.process_time() - cpu) / epochs,
            "peak_rss_mb": peak_mb()}


def in_subprocess(kind, n, epochs):
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, __file__, kind, str(n), str(epochs)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    if len(sys.argv) == 4:             # a measurement in its own process
        kind, n, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        fn = timing_dadapy if kind == "dadapy" else timing_ours
        print(json.dumps(fn(n, epochs)))
        return
    print(f"# dii_vs_dadapy.py on {platform.node()}, {os.cpu_count()} cores, shared machine "
          f"(other jobs running): times are indicative, taken side by side in one run")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print("\n## Same loss (DADApy float32 vs ours float64), N = 1000, M = 60")
    for row in same_loss(1000):
        print(json.dumps(row))
    print("\n## Seconds per epoch (loss + gradient, full batch) and peak RSS")
    for kind, n, epochs in (("dadapy", 1000, 5), ("ours", 1000, 5), ("dadapy", 4000, 3),
                            ("ours", 4000, 3), ("ours", 40000, 1)):
        print(json.dumps(in_subprocess(kind, n, epochs)), flush=True)


if __name__ == "__main__":
    main()
