"""Parallel efficiency of ``simulate``: the same work at several rank counts, side by side."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import load_config
from ..schema import read_sim

__all__ = ["simulate_efficiency"]

#: Work for the efficiency benchmark: 4 configurations x 4 replicas of N = 1000, so 1 and 2
#: ranks get identical shares; long enough (~1e8 trial moves) that start-up is a few percent.
SIMULATE_BENCH_TOML = """
name = "bench"
seed = 1
[system]
n = 1000
temperature = 0.5
[equilibration]
sweeps = 4000
swap_probability = 0.2
sample_every = 100
until = "sweeps"                # fixed length: the same work every run
[dynamics]
configurations = 4
replicas = 4
t_max = 5000
per_decade = 8
[relaxation_scan]
temperatures = []
"""


def _mpiexec():
    """The mpiexec beside this Python (the venv's MPICH), else the one on PATH."""
    local = Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else (shutil.which("mpiexec") or "mpiexec")


def simulate_efficiency(rank_counts):
    """Aggregate trial-move rate of ``simulate`` on the same work at each rank count."""
    work = tempfile.mkdtemp(prefix="mpi_glass_bench_")
    try:
        config = Path(work, "bench.toml")
        config.write_text(SIMULATE_BENCH_TOML)
        cfg = load_config(config)
        trials = cfg.system.n * (cfg.dynamics.configurations * cfg.equilibration.sweeps
                                 + cfg.dynamics.configurations * cfg.dynamics.replicas
                                 * cfg.dynamics.t_max)
        result = {"trials": trials, "n": cfg.system.n}
        for k in rank_counts:
            out = Path(work, f"ranks{k}")
            cmd = [_mpiexec(), "-n", str(k), sys.executable, "-m", "mpi_glass", "simulate",
                   "--config", str(config), "--out", str(out)]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=os.environ.copy())
            wall = time.perf_counter() - start
            timings = json.loads(read_sim(out / "sim.h5").attrs["timings_json"])
            chains = timings["equilibrate"] + timings["trajectories"]
            result[f"wall_seconds_{k}"] = wall
            result[f"chain_seconds_{k}"] = chains
            result[f"trials_per_second_{k}"] = trials / chains
            io = timings["observables"] + timings["write"]
            result[f"recording_and_io_fraction_{k}"] = io / (chains + io)
        base = rank_counts[0]
        for k in rank_counts[1:]:
            result[f"efficiency_{k}"] = (result[f"trials_per_second_{k}"]
                                         / result[f"trials_per_second_{base}"] * base / k)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
