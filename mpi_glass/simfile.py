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

from . import dynamics, equilibrium
from .mc import SWAP_PAIRS
from .store import load_npz, publish, tmp_name, write_provenance

TRAJECTORY_STAGE = 1


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
    return dict(positions=eq["positions"], species=eq["species"], energy=eq["energy"],
                overlap=eq["overlap"], pair_swaps=eq["pair_swaps"],
                sweeps=int(eq["sweeps_done"]), certificate=sim.certificate(eq),
                p=p, q=q, fs=fs), disp


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
            cert = sim.certificate(eq)
            mine[int(c)] = (dynamics.propensities(disp, eq["positions"], eq["species"],
                                                  sim.box)[2], bool(cert and cert.certified))
        done = {}
        for part in sim.dist.allgather(mine):
            done.update(part)
        results[ens.index] = [np.array([done[c][k] for c in range(ens.configurations)])
                              for k in (0, 1)]
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
    conf["energy_series"].attrs["description"] = ("U/N during equilibration at energy_times; "
                                                  "NaN after a chain stopped certified")
    every = cfg.equilibration.sample_every
    conf["energy_times"] = np.arange(1, conf["energy_series"].shape[1] + 1, dtype=np.int64) * every
    conf["energy_times"].attrs["units"] = "MC sweeps"
    _write_certificate(conf.create_group("certificate"), cfg, [summaries[c] for c in range(C)])

    dyn = f.create_group("dynamics")
    dyn["times"] = main.times.astype(np.int64)
    dyn["times"].attrs["units"] = "MC sweeps"
    fs = stack("fs")
    dyn["fs_cr"] = fs
    dyn["fs_cr"].attrs["k"] = 6.3
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


#: (name, dtype, units, description) of the per-configuration certificate datasets.
_CERTIFICATE_FIELDS = (
    ("certified", bool, "", "stationary and decorrelated: an equilibrium sample"),
    ("stationary", bool, "", "|drift| <= 2 drift_error"),
    ("drift", float, "epsilon_LS per particle",
     "<U>/N over the last quarter minus over the third quarter of the run"),
    ("drift_error", float, "epsilon_LS per particle",
     "standard error of drift, blocking analysis of both quarters"),
    ("decorrelated", bool, "", "overlap < threshold"),
    ("overlap", float, "", "normalised species-resolved collective overlap q (a = 0.3 sigma_LS) "
                           "between reference_sweeps and sweeps_examined; 0: unrelated"),
    ("tau_eq", float, "MC sweeps", "lag at which q falls to 1/e (see tau_eq_kind)"),
    ("tau_eq_kind", np.int8, "", "0 measured, -1 tau_eq is an upper bound, +1 a lower bound"),
    ("sweeps_examined", np.int64, "MC sweeps", "length of the run at its last check point"),
    ("reference_sweeps", np.int64, "MC sweeps", "time of the reference (middle) configuration"),
)


def _write_certificate(g, cfg, summaries):
    """/configurations/certificate: every configuration's certificate and its swap counts."""
    g.attrs["description"] = ("equilibrium certificate of each configuration "
                              "(mpi_glass.equilibrium): stationary <U>/N and decorrelated "
                              "structure")
    g.attrs["threshold"] = cfg.equilibration.certificate_threshold
    g.attrs["overlap_radius"] = equilibrium.OVERLAP_RADIUS
    g.attrs["until"] = cfg.equilibration.until
    certs = [s["certificate"] for s in summaries]
    for name, dtype, units, description in _CERTIFICATE_FIELDS:
        values = [_certificate_value(cert, name) for cert in certs]
        g[name] = np.array(values, dtype=dtype)
        g[name].attrs["units"] = units
        g[name].attrs["description"] = description
    columns = (("sweeps", np.array([s["sweeps"] for s in summaries], np.int64), "MC sweeps",
                "equilibration sweeps run"),
               ("overlap_series", np.stack([s["overlap"] for s in summaries]), "",
                "q at energy_times against the previous check point's configuration"),
               ("swap_accepted", np.stack([s["pair_swaps"][0] for s in summaries]), "",
                "accepted swaps per species pair (pairs attribute)"),
               ("swap_attempted", np.stack([s["pair_swaps"][1] for s in summaries]), "",
                "attempted swaps per species pair (pairs attribute)"))
    for name, values, units, description in columns:
        g[name] = values
        g[name].attrs["units"] = units
        g[name].attrs["description"] = description
    for name in ("swap_accepted", "swap_attempted"):
        g[name].attrs["pairs"] = ",".join(SWAP_PAIRS)


def _certificate_value(cert, name):
    """A field of a certificate (None: too short to examine, so not certified)."""
    if cert is None:
        return {"tau_eq_kind": equilibrium.TAU_ABOVE}.get(name, False if name in (
            "certified", "stationary", "decorrelated") else (0 if "sweeps" in name else np.nan))
    renamed = {"sweeps_examined": "sweeps"}.get(name, name)
    return getattr(cert, renamed) if name != "certified" else cert.certified


def _write_scan(f, sim, scan):
    ens = sim.ensembles[1:]
    g = f.create_group("relaxation_scan")
    g["temperatures"] = np.array([e.temperature for e in ens])
    g["times"] = ens[0].times.astype(np.int64)
    g["fs_cr"] = np.stack([scan[e.index][0] for e in ens])
    g["tau_alpha"] = np.array([dynamics.tau_alpha(e.times, scan[e.index][0].mean(axis=0))
                               for e in ens])
    g["certified"] = np.stack([scan[e.index][1] for e in ens])
    g["certified"].attrs["description"] = "equilibrium certificate of each scan configuration"
    g["tau_alpha"].attrs["units"] = "MC sweeps"


def _log_summary(sim, summaries):
    if not sim.dist.is_root:
        return
    from .progress import log
    main = sim.ensembles[0]
    fs = np.stack([summaries[c]["fs"] for c in range(main.configurations)])
    tau = dynamics.tau_alpha(main.times, fs.mean(axis=0))
    flagged = [c for c in range(main.configurations)
               if not (summaries[c]["certificate"] and summaries[c]["certificate"].certified)]
    log(f"equilibrium certificate: {main.configurations - len(flagged)} of "
        f"{main.configurations} configurations certified"
        + (f"; NOT certified (kept, flagged in sim.h5): {flagged}" if flagged else ""))
    log(f"tau_alpha = {tau:.4g} sweeps (F_s^CR = 1/e); wrote {sim.path}")
    log("timings (s): " + json.dumps({k: round(v, 2) for k, v in sim.timings.items()}))
