"""sim.h5: from the finished chains to one self-describing file.

Configurations are split over ranks; the owner of configuration c loads its chains'
checkpoint files, computes p, q and F_s^CR (``dynamics.propensities``) and writes its slice.
With an MPI-enabled h5py every rank writes its own slices of one file collectively
(``driver='mpio'``); otherwise each owner sends its slices to the root, which writes.  The
file's ``io_path`` attribute says which.  Small per-configuration results (p, q, F_s, the
configurations) are allgathered first so every rank can write identical attributes.
"""
from __future__ import annotations

import json
import time

import h5py
import numpy as np

from . import dynamics
from .schema import (EQUILIBRATE, SIM_FIELDS, TRAJECTORY, ChainState, SimData,
                     checkpoint_name, provenance_attrs, write_sim)
from .store import publish, tmp_name


def _owner_of_configurations(dist, ensemble):
    costs = [ensemble.replicas] * ensemble.configurations
    return dist.assign(costs)


def _load_configuration(ckpt_dir, ensemble, c):
    """Equilibrated configuration c of an ensemble and its R trajectories' displacements."""
    def chain(stage, r=-1):
        return ChainState.load(ckpt_dir / checkpoint_name(stage, ensemble.index, c, r))

    disp = np.stack([chain(TRAJECTORY, r).records for r in range(ensemble.replicas)])
    return chain(EQUILIBRATE), disp


def _summarise_configuration(ckpt_dir, ensemble, c, box):
    eq, disp = _load_configuration(ckpt_dir, ensemble, c)
    p, q, fs = dynamics.propensities(disp, eq.positions, eq.species, box)
    counts = eq.mc_counts
    return dict(positions=eq.positions, species=eq.species, energy=eq.energy, p=p, q=q, fs=fs,
                swap_acceptance=counts[2] / max(counts[3], 1)), disp


def stationarity(series):
    """Drift of <U>/N between the two quarters of the second half of the series.

    Returns (drift, error, passed): error is the combined standard error of the two means
    from block averages (10 blocks each); the check passes when |drift| < 3 error.
    """
    half = np.asarray(series[len(series) // 2:], dtype=float)
    if len(half) < 20:
        return float("nan"), float("nan"), False
    first, second = np.array_split(half, 2)

    def mean_and_sem(x):
        blocks = np.array([b.mean() for b in np.array_split(x, 10)])
        return x.mean(), blocks.std(ddof=1) / np.sqrt(len(blocks))

    m1, e1 = mean_and_sem(first)
    m2, e2 = mean_and_sem(second)
    drift, error = m2 - m1, float(np.hypot(e1, e2))
    return float(drift), error, bool(abs(drift) < 3.0 * error or drift == 0.0)


def write_sim_file(path, cfg, ensembles, ckpt_dir, dist, timings):
    """Assemble sim.h5 at ``path`` from the finished chains' checkpoints (every rank calls).

    ``ensembles``: the main ensemble then the relaxation-scan ones (``simulate.Ensemble``);
    ``timings`` (dict of seconds) is completed with the observables and writing stages.
    """
    t0 = time.perf_counter()
    main = ensembles[0]
    owner = _owner_of_configurations(dist, main)
    mine, my_disp = {}, {}
    for c in np.flatnonzero(owner == dist.rank):
        mine[int(c)], my_disp[int(c)] = _summarise_configuration(ckpt_dir, main, int(c),
                                                                 cfg.box)
    summaries = {}
    for part in dist.allgather(mine):
        summaries.update(part)
    scan = _scan_results(ckpt_dir, ensembles[1:], dist, cfg.box)
    timings["observables"] = time.perf_counter() - t0

    start = time.perf_counter()
    tmp = tmp_name(path)
    collective = dist.collective_io_available()
    data = _sim_data(cfg, main, summaries, scan, attrs=provenance_attrs(cfg, "sim", extra={
        "io_path": "mpio" if collective else "root-gather", "ranks": dist.size}))
    if collective:
        f = dist.open_h5(tmp, "w")
    elif dist.is_root:
        f = h5py.File(tmp, "w")
    else:
        f = None
    shape = (main.configurations, main.replicas, len(main.times), cfg.system.n, 2)
    if f is not None:
        write_sim(f, data, displacement_shape=shape)
    _write_displacements(f, dist, main, owner, my_disp, collective)
    if f is not None:
        f.close()
    dist.barrier()
    timings["write"] = time.perf_counter() - start
    if dist.is_root:
        with h5py.File(tmp, "r+") as f:    # the timings are only known now
            f.attrs["timings_json"] = json.dumps({k: round(v, 3) for k, v in timings.items()})
        publish(tmp, path)
    dist.barrier()
    _log_summary(path, data, timings, dist)


def _write_displacements(f, dist, main, owner, my_disp, collective):
    """The big dataset: each owner writes its slice, or sends it to the root."""
    dset = f[SIM_FIELDS["displacements"].path] if f is not None else None
    for c in range(main.configurations):
        if collective:
            if c in my_disp:
                dset[c] = my_disp[c]
        else:
            block = dist.to_root(my_disp.get(c), int(owner[c]))
            if dist.is_root:
                dset[c] = block


def _scan_results(ckpt_dir, scan_ensembles, dist, box):
    """F_s^CR(t) of each scan temperature (ensembles 1..), configurations split over ranks."""
    results = []
    for ens in scan_ensembles:
        owner = _owner_of_configurations(dist, ens)
        mine = {}
        for c in np.flatnonzero(owner == dist.rank):
            eq, disp = _load_configuration(ckpt_dir, ens, int(c))
            mine[int(c)] = dynamics.propensities(disp, eq.positions, eq.species, box)[2]
        fs = {}
        for part in dist.allgather(mine):
            fs.update(part)
        results.append((ens, np.array([fs[c] for c in range(ens.configurations)])))
    return results


def _sim_data(cfg, main, summaries, scan, attrs):
    """Everything of sim.h5 but the displacements, identical on every rank."""
    C = main.configurations
    stack = lambda key: np.stack([summaries[c][key] for c in range(C)])  # noqa: E731
    energy = stack("energy")
    every = cfg.equilibration.sample_every
    checks = np.array([stationarity(summaries[c]["energy"]) for c in range(C)])
    fs = stack("fs")
    data = SimData(
        positions=stack("positions"), species=stack("species").astype(np.int8),
        energy_times=np.arange(1, energy.shape[1] + 1, dtype=np.int64) * every,
        energy_series=energy, stationarity_drift=checks[:, 0],
        stationarity_error=checks[:, 1], stationarity_passed=checks[:, 2].astype(bool),
        swap_acceptance=np.array([summaries[c]["swap_acceptance"] for c in range(C)]),
        times=main.times.astype(np.int64), fs_cr=fs,
        tau_alpha=dynamics.tau_alpha(main.times, fs.mean(axis=0)),
        tau_alpha_per_configuration=np.array([dynamics.tau_alpha(main.times, fs[c])
                                              for c in range(C)]),
        p=stack("p"), q=stack("q"), attrs=attrs)
    if scan:
        data.scan_temperatures = np.array([e.temperature for e, _ in scan])
        data.scan_times = scan[0][0].times.astype(np.int64)
        data.scan_fs_cr = np.stack([fs for _, fs in scan])
        data.scan_tau_alpha = np.array([dynamics.tau_alpha(e.times, fs.mean(axis=0))
                                        for e, fs in scan])
    return data


def _log_summary(path, data, timings, dist):
    if not dist.is_root:
        return
    from .progress import log
    for c in range(len(data.positions)):
        drift, err = data.stationarity_drift[c], data.stationarity_error[c]
        log(f"configuration {c}: stationarity "
            f"{'passed' if data.stationarity_passed[c] else 'FAILED'} "
            f"(drift of <U>/N {drift:+.2e} vs error {err:.1e})")
    log(f"tau_alpha = {data.tau_alpha:.4g} sweeps (F_s^CR = 1/e); wrote {path}")
    log("timings (s): " + json.dumps({k: round(v, 2) for k, v in timings.items()}))
