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
from .schema import (EQUILIBRATE, SIM_FIELDS, TRAJECTORY, ChainState, SimData,
                     checkpoint_name, provenance_attrs, write_sim)
from .memory import sim_file_bytes
from .safefs import new_h5_with_room, writing
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


def _summarise_configuration(ckpt_dir, ensemble, c, cfg):
    eq, disp = _load_configuration(ckpt_dir, ensemble, c)
    p, q, fs = dynamics.propensities(disp, eq.positions, eq.species, cfg.box)
    return dict(positions=eq.positions, species=eq.species, energy=eq.energy,
                overlap=eq.overlap, pair_swaps=eq.pair_swaps, sweeps=eq.sweeps_done,
                certificate=equilibrium.chain_certificate(eq, cfg.equilibration),
                p=p, q=q, fs=fs), disp


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
        mine[int(c)], my_disp[int(c)] = _summarise_configuration(ckpt_dir, main, int(c), cfg)
    summaries = {}
    for part in dist.allgather(mine):
        summaries.update(part)
    scan = _scan_results(ckpt_dir, ensembles[1:], dist, cfg)
    timings["observables"] = time.perf_counter() - t0

    start = time.perf_counter()
    tmp = tmp_name(path)
    collective = dist.collective_io_available()
    data = _sim_data(cfg, main, summaries, scan, attrs=provenance_attrs(cfg, "sim", extra={
        "io_path": "mpio" if collective else "root-gather", "ranks": dist.size}))
    need = sim_file_bytes(cfg)
    dist.root_decides(lambda: new_h5_with_room(tmp, need))   # a full disk: refused here
    with writing(tmp, need) as closers:
        if collective:
            f = closers.add(dist.open_h5(tmp, "r+"))
        elif dist.is_root:
            f = closers.add(h5py.File(tmp, "r+"))
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
            f = closers.add(h5py.File(tmp, "r+"))    # the timings are only known now
            f.attrs["timings_json"] = json.dumps({k: round(v, 3) for k, v in timings.items()})
            f.close()
    if dist.is_root:
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


def _scan_results(ckpt_dir, scan_ensembles, dist, cfg):
    """F_s^CR(t) and the certificate verdict of each configuration of each scan temperature
    (ensembles 1..), configurations split over ranks: [(ensemble, fs, certified)]."""
    results = []
    for ens in scan_ensembles:
        owner = _owner_of_configurations(dist, ens)
        mine = {}
        for c in np.flatnonzero(owner == dist.rank):
            eq, disp = _load_configuration(ckpt_dir, ens, int(c))
            cert = equilibrium.chain_certificate(eq, cfg.equilibration)
            mine[int(c)] = (dynamics.propensities(disp, eq.positions, eq.species, cfg.box)[2],
                            bool(cert and cert.certified))
        done = {}
        for part in dist.allgather(mine):
            done.update(part)
        per_c = [done[c] for c in range(ens.configurations)]
        results.append((ens, np.array([fs for fs, _ in per_c]),
                        np.array([ok for _, ok in per_c])))
    return results


def _sim_data(cfg, main, summaries, scan, attrs):
    """Everything of sim.h5 but the displacements, identical on every rank."""
    C = main.configurations
    stack = lambda key: np.stack([summaries[c][key] for c in range(C)])  # noqa: E731
    energy = stack("energy")
    every = cfg.equilibration.sample_every
    fs = stack("fs")
    data = SimData(
        positions=stack("positions"), species=stack("species").astype(np.int8),
        energy_times=np.arange(1, energy.shape[1] + 1, dtype=np.int64) * every,
        energy_series=energy, times=main.times.astype(np.int64), fs_cr=fs,
        tau_alpha=dynamics.tau_alpha(main.times, fs.mean(axis=0)),
        tau_alpha_per_configuration=np.array([dynamics.tau_alpha(main.times, fs[c])
                                              for c in range(C)]),
        p=stack("p"), q=stack("q"), attrs=attrs,
        **_certificate_arrays(cfg, [summaries[c] for c in range(C)]))
    if scan:
        data.scan_temperatures = np.array([e.temperature for e, _, _ in scan])
        data.scan_times = scan[0][0].times.astype(np.int64)
        data.scan_fs_cr = np.stack([fs for _, fs, _ in scan])
        data.scan_tau_alpha = np.array([dynamics.tau_alpha(e.times, fs.mean(axis=0))
                                        for e, fs, _ in scan])
        data.scan_certified = np.stack([ok for _, _, ok in scan])
    return data


#: Certificate fields (SimData name without "certificate_") read from ``Certificate``, with
#: the value of a configuration never examined (too short: not certified).
_FROM_CERTIFICATE = {"certified": False, "stationary": False, "drift": np.nan,
                     "drift_error": np.nan, "decorrelated": False, "overlap": np.nan,
                     "tau_eq": np.nan, "tau_eq_kind": equilibrium.TAU_ABOVE,
                     "sweeps_examined": 0, "reference_sweeps": 0}


def _certificate_arrays(cfg, summaries):
    """The SimData certificate_* fields from each configuration's summary."""
    certs = [s["certificate"] for s in summaries]
    renamed = {"sweeps_examined": "sweeps"}
    arrays = {f"certificate_{name}": np.array([
        getattr(cert, renamed.get(name, name)) if cert else missing for cert in certs])
        for name, missing in _FROM_CERTIFICATE.items()}
    arrays.update(
        certificate_threshold=cfg.equilibration.certificate_threshold,
        certificate_sweeps=np.array([s["sweeps"] for s in summaries], dtype=np.int64),
        certificate_overlap_series=np.stack([s["overlap"] for s in summaries]),
        certificate_swap_accepted=np.stack([s["pair_swaps"][0] for s in summaries]),
        certificate_swap_attempted=np.stack([s["pair_swaps"][1] for s in summaries]))
    return arrays


def _log_summary(path, data, timings, dist):
    if not dist.is_root:
        return
    from .progress import log
    flagged = [int(c) for c in np.flatnonzero(~data.certificate_certified)]
    total = len(data.positions)
    log(f"equilibrium certificate: {total - len(flagged)} of {total} configurations certified"
        + (f"; NOT certified (kept, flagged in sim.h5): {flagged}" if flagged else ""))
    log(f"tau_alpha = {data.tau_alpha:.4g} sweeps (F_s^CR = 1/e); wrote {path}")
    log("timings (s): " + json.dumps({k: round(v, 2) for k, v in timings.items()}))
