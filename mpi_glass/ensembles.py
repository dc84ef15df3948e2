"""The ensembles of a run: the main one and those of the relaxation scan.

Its own module so that ``simulate`` (which runs them) and ``memory`` (which sizes them
before anything runs) both import it without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dynamics

__all__ = ["Ensemble", "build_ensembles"]


@dataclass(frozen=True)
class Ensemble:
    """Configurations x replicas at one temperature, recorded at ``times`` (sweeps)."""
    index: int
    temperature: float
    configurations: int
    replicas: int
    times: np.ndarray


def build_ensembles(cfg):
    """Ensemble 0 (system.temperature, the dynamics section), then one per scan temperature.

    Examples
    --------
    >>> from mpi_glass.config import load_config
    >>> [(e.index, e.temperature, e.configurations) for e in build_ensembles(load_config("ci"))]
    [(0, 1.2, 3), (1, 1.5, 2)]
    """
    dyn, scan = cfg.dynamics, cfg.relaxation_scan
    extra = tuple(int(t) for t in dyn.extra_times)
    main = Ensemble(0, cfg.system.temperature, dyn.configurations, dyn.replicas,
                    dynamics.log_times(dyn.t_max, dyn.per_decade, extra))
    scans = [Ensemble(i + 1, float(t), scan.configurations, scan.replicas,
                      dynamics.log_times(scan.t_max, dyn.per_decade, ()))
             for i, t in enumerate(scan.temperatures)]
    return [main] + scans
