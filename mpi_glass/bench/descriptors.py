"""Benchmark of the structural descriptors on a dense stand-in configuration."""
from __future__ import annotations

import math
import time

import numpy as np

from ..descriptors import (DEFAULT_LENGTHS, _checked_lengths, _checked_system, _coarse_grain,
                           _local, compute_features)
from ..model import PAPER_DENSITY, PAPER_FRACTIONS, box_side, composition_counts, species_array

__all__ = ["benchmark", "dense_configuration"]


def benchmark(n=4000, seed=0):
    """Seconds for the 60 default features of one dense configuration of n particles.

    The configuration (``dense_configuration``) has the paper's density and composition: the
    cost depends on the density (pairs within R_N), not on the details of the structure.
    Numba compilation is excluded.
    """
    compute_features(*dense_configuration(64, seed))        # compile / load the cache
    system = _checked_system(*dense_configuration(n, seed))
    lengths = _checked_lengths(DEFAULT_LENGTHS)
    start = time.perf_counter()
    local = _local(system)
    middle = time.perf_counter()
    values = _coarse_grain(system, local, lengths)
    end = time.perf_counter()
    return {"n": int(n), "m": int(values.shape[1]), "seconds_total": end - start,
            "seconds_local": middle - start, "seconds_coarse_grain": end - middle}


def dense_configuration(n, seed, density=PAPER_DENSITY, composition=PAPER_FRACTIONS):
    """Dense disordered stand-in: jittered triangular lattice, shuffled paper composition.

    Returns (positions (n, 2), species (n,), box side).
    """
    rng = np.random.default_rng(seed)
    side = box_side(n, density)
    rows = max(1, int(round(math.sqrt(n * math.sqrt(3.0) / 2.0))))
    cols = -(-n // rows)
    i, j = np.divmod(np.arange(rows * cols), cols)
    sites = np.stack([(j + 0.5 * (i % 2)) / cols, i / rows], axis=1) * side
    sites = sites[rng.permutation(len(sites))[:n]]
    positions = sites + rng.uniform(-0.15, 0.15, size=sites.shape) * side / cols
    species = rng.permutation(species_array(composition_counts(n, composition)))
    return positions, species, side
