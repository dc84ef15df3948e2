"""Benchmark of the Differentiable Information Imbalance: one epoch, a full selection, memory."""
from __future__ import annotations

import time

import numpy as np

from ..errors import InputError
from ..imbalance.dii import DiiTarget, dii_value_and_grad
from ..imbalance.dii_select import DiiSettings, backward_elimination
from ..mapper import SerialMapper
from . import peak_rss_mb
from .imbalance import synthetic_features

__all__ = ["benchmark"]


def benchmark(n=4000, m=60, d=15, epochs=3, elimination=True, mapper=None):
    """Seconds per epoch (DII value and exact gradient, all m features, full batch), seconds
    of a full backward elimination to d (default ``DiiSettings``: 100 + 20 epochs per step),
    each as wall and as this rank's CPU seconds, and the peak resident memory of each rank
    (MB).  Row blocks are spread over the mapper's
    ranks; numba compilation is excluded by a warm-up."""
    if min(n, m, d, epochs) < 1 or n < 3:
        raise InputError(f"bench dii: need --n >= 3 and --m, --d, --epochs >= 1, got "
                         f"n={n}, m={m}, d={d}, epochs={epochs}")
    if d > m:
        raise InputError(f"bench dii: --d {d} exceeds the {m} features (--m)")
    mapper = mapper or SerialMapper()
    Xw, pw, _ = synthetic_features(300, 6, 0)
    backward_elimination([Xw], [pw], 2, DiiSettings(epochs=2, refit_epochs=1), mapper)
    X, p, _ = synthetic_features(n, m, 0)
    Xt, target, w = np.ascontiguousarray(X.T), DiiTarget(p), np.ones(m)
    result = {"n": n, "m": m, "d": d, "ranks": int(getattr(mapper, "size", 1)),
              "epochs_timed": epochs}
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        dii_value_and_grad(None, target, w, Xt=Xt, mapper=mapper)
    result["seconds_per_epoch"] = (time.perf_counter() - start) / epochs
    # CPU seconds of this rank: on a shared machine closer to what the work costs.
    result["cpu_seconds_per_epoch"] = (time.process_time() - cpu) / epochs
    if elimination:
        settings = DiiSettings()
        start, cpu = time.perf_counter(), time.process_time()
        chosen = backward_elimination([X], [p], d, settings, mapper)
        result["elimination_seconds"] = time.perf_counter() - start
        result["elimination_cpu_seconds"] = time.process_time() - cpu
        result["elimination_epochs"] = settings.epochs
        result["elimination_refit_epochs"] = settings.refit_epochs
        result["selected_first_3"] = chosen.order[:3]
    peaks = getattr(mapper, "allgather", lambda x: [x])(peak_rss_mb())
    result["peak_rss_mb_per_rank"] = [float(x) for x in peaks]
    return result
