"""Benchmark of the information imbalance, and the synthetic feature pool it runs on."""
from __future__ import annotations

import math
import time

import numpy as np

from ..imbalance import imbalance_pair, standardise, supervised_greedy, unsupervised_greedy
from . import peak_rss_mb

__all__ = ["synthetic_features", "benchmark"]


def synthetic_features(n, m, seed=0, families=6, rho=0.8):
    """Standardised toy pool shaped like ours: ``families`` blocks of columns correlated
    along the block (AR(1), like one descriptor at growing coarse-graining lengths), and a
    propensity-like p built from three of them plus noise.  Returns (X, p, informative)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m))
    X = np.empty((n, m))
    per = max(1, m // families)
    for col in range(m):
        fresh = col % per == 0
        X[:, col] = z[:, col] if fresh else rho * X[:, col - 1] + math.sqrt(1 - rho**2) * z[:, col]
    informative = [min(m - 1, 1), min(m - 1, per + 2), min(m - 1, 2 * per + 4)]
    w = np.array([1.0, 0.7, -0.5])
    p = X[:, informative] @ w[:len(informative)] + 0.5 * rng.standard_normal(n)
    return standardise(X), standardise(p), informative


def benchmark(n=4000, m=60, d=15, seed=0):
    """Seconds for one Delta pair and both greedy selections (one configuration, this
    process), plus peak resident memory; numba compilation is excluded by a warm-up."""
    Xw, pw, _ = synthetic_features(30, 6, seed)
    imbalance_pair(Xw[:, :2], pw)
    imbalance_pair(Xw[:, :2], Xw)
    supervised_greedy([Xw], [pw], d_max=3)
    unsupervised_greedy([Xw], d_max=3)

    X, p, _ = synthetic_features(n, m, seed)
    d = min(d, m)
    result = {"n": n, "m": m, "d": d}
    start = time.perf_counter()
    imbalance_pair(X[:, :d], p)
    result["pair_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    supervised_greedy([X], [p], d_max=d)
    result["supervised_greedy_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    unsupervised_greedy([X], d_max=d)
    result["unsupervised_greedy_seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = peak_rss_mb()
    return result
