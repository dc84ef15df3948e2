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
from .store import load_npz, publish, tmp_name, write_provenance


def _owner_of_configurations(sim, ensemble):
    costs = [ensemble.replicas] * ensemble.configurations
    return sim.dist.assign(costs)


def _load_configuration(sim, ensemble, c):
    """Equilibrated configuration c of an ensemble and its R trajectories' displacements."""
    eq = load_npz(sim.ckpt_dir / f"eq_e{ensemble.index}_c{c}.npz")
    disp = np.stack([load_npz(sim.ckpt_dir / f"tr_e{ensemble.index}_c{c}_r{r}.npz")["records"]
                     for r in range(ensemble.replicas)])
    return eq, disp


def _summarise_configuration(sim, ensemble, c):
    eq, disp = _load_configuration(sim, ensemble, c)
    p, q, fs = dynamics.propensities(disp, eq["positions"], eq["species"], sim.box)
    counts = eq["mc_counts"]
    return dict(positions=eq["positions"], species=eq["species"], energy=eq["energy"], p=p, q=q, fs=fs,
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


def write_sim_file(sim):
    dist = sim.dist
    t0 = time.perf_counter()
    main = sim.ensembles[0]
    owner = _owner_of_configurations(sim, main)
    mine, my_disp = {}, {}
    for c in np.flatnonzero(owner == dist.rank):
        mine[int(c)], my_disp[int(c)] = _summarise_configuration(sim, main, int(c))
    summaries = {}
    for part in dist.allgather(mine):
        summaries.update(part)
    scan = _scan_results(sim)
    sim.timings["observables"] = time.perf_counter() - t0

    start = time.perf_counter()
    tmp = tmp_name(sim.path)
    collective = dist.collective_io_available()
    if collective:
        f = dist.open_h5(tmp, "w")
    elif dist.is_root:
        f = h5py.File(tmp, "w")
    else:
        f = None
    if f is not None:
        _write_layout(f, sim, main, summaries, scan, "mpio" if collective else "root-gather")
    _write_displacements(sim, f, main, owner, my_disp, collective)
    if f is not None:
        f.close()
    dist.barrier()
    sim.timings["write"] = time.perf_counter() - start
    if dist.is_root:
        with h5py.File(tmp, "r+") as f:    # the timings are only known now
            f.attrs["timings_json"] = json.dumps(
                {k: round(v, 3) for k, v in sim.timings.items()})
        publish(tmp, sim.path)
    dist.barrier()
    _log_summary(sim, summaries)


def _write_displacements(sim, f, main, owner, my_disp, collective):
    """The big dataset: each owner writes its slice, or sends it to the root."""
    shape = (main.configurations, main.replicas, len(main.times), sim.n, 2)
    if f is not None:
        dset = f.create_dataset("dynamics/displacements", shape=shape, dtype=np.float32)
        dset.attrs["units"] = "sigma_LS"
        dset.attrs["description"] = "raw unwrapped displacements r_i(t) - r_i(0) per replica"
    dist = sim.dist
    for c in range(main.configurations):
        if collective:
            if c in my_disp:
                dset[c] = my_disp[c]
        else:
            block = dist.to_root(my_disp.get(c), int(owner[c]))
            if dist.is_root:
                dset[c] = block


def _scan_results(sim):
    """F_s^CR(t) of each scan temperature (ensembles 1..), configurations split over ranks."""
    results = {}
    for ens in sim.ensembles[1:]:
        owner = _owner_of_configurations(sim, ens)
        mine = {}
        for c in np.flatnonzero(owner == sim.dist.rank):
            eq, disp = _load_configuration(sim, ens, int(c))
            mine[int(c)] = dynamics.propensities(disp, eq["positions"], eq["species"],
                                                 sim.box)[2]
        fs = {}
        for part in sim.dist.allgather(mine):
            fs.update(part)
        results[ens.index] = np.array([fs[c] for c in range(ens.configurations)])
    return results


def _write_layout(f, sim, main, summaries, scan, io_path):
    cfg = sim.cfg
    C = main.configurations
    write_provenance(f, cfg, "sim", extra={
        "io_path": io_path, "ranks": sim.dist.size})
    stack = lambda key: np.stack([summaries[c][key] for c in range(C)])  # noqa: E731

    conf = f.create_group("configurations")
    conf["positions"] = stack("positions")
    conf["positions"].attrs["units"] = "sigma_LS"
    conf["species"] = stack("species").astype(np.int8)
    conf["species"].attrs["labels"] = "0 S, 1 M, 2 L"
    conf["energy_series"] = stack("energy")
    conf["energy_series"].attrs["units"] = "epsilon_LS per particle"
    every = cfg.equilibration.sample_every
    conf["energy_times"] = np.arange(1, conf["energy_series"].shape[1] + 1, dtype=np.int64) * every
    checks = np.array([stationarity(summaries[c]["energy"]) for c in range(C)])
    conf["stationarity_drift"] = checks[:, 0]
    conf["stationarity_error"] = checks[:, 1]
    conf["stationarity_passed"] = checks[:, 2].astype(bool)
    conf["swap_acceptance"] = np.array([summaries[c]["swap_acceptance"] for c in range(C)])

    dyn = f.create_group("dynamics")
    dyn["times"] = main.times.astype(np.int64)
    dyn["times"].attrs["units"] = "MC sweeps"
    fs = stack("fs")
    dyn["fs_cr"] = fs
    dyn["fs_cr"].attrs["k"] = dynamics.K_DEFAULT
    dyn["fs_cr"].attrs["tau_alpha"] = dynamics.tau_alpha(main.times, fs.mean(axis=0))
    dyn["fs_cr"].attrs["description"] = "cage-relative F_s(k, t), averaged over replicas"
    dyn["tau_alpha_per_configuration"] = np.array(
        [dynamics.tau_alpha(main.times, fs[c]) for c in range(C)])

    prop = f.create_group("propensity")
    prop["p"] = stack("p")
    prop["p"].attrs["units"] = "sigma_LS"
    prop["p"].attrs["description"] = "iso-configurational mean |cage-relative displacement|"
    prop["q"] = stack("q")
    prop["q"].attrs["description"] = "iso-configurational mean bond survival n_i(t)/n_i(0)"
    if scan:
        _write_scan(f, sim, scan)


def _write_scan(f, sim, scan):
    ens = sim.ensembles[1:]
    g = f.create_group("relaxation_scan")
    g["temperatures"] = np.array([e.temperature for e in ens])
    g["times"] = ens[0].times.astype(np.int64)
    g["fs_cr"] = np.stack([scan[e.index] for e in ens])
    g["tau_alpha"] = np.array([dynamics.tau_alpha(e.times, scan[e.index].mean(axis=0))
                               for e in ens])
    g["tau_alpha"].attrs["units"] = "MC sweeps"


def _log_summary(sim, summaries):
    if not sim.dist.is_root:
        return
    from .progress import log
    main = sim.ensembles[0]
    fs = np.stack([summaries[c]["fs"] for c in range(main.configurations)])
    tau = dynamics.tau_alpha(main.times, fs.mean(axis=0))
    for c in range(main.configurations):
        drift, err, ok = stationarity(summaries[c]["energy"])
        log(f"configuration {c}: stationarity {'passed' if ok else 'FAILED'} "
            f"(drift of <U>/N {drift:+.2e} vs error {err:.1e})")
    log(f"tau_alpha = {tau:.4g} sweeps (F_s^CR = 1/e); wrote {sim.path}")
    log("timings (s): " + json.dumps({k: round(v, 2) for k, v in sim.timings.items()}))
