"""sim.h5: from trajectories to one self-describing file.

A source of dynamics - simulate's finished chains, or another engine's files read by
``importers`` - is a ``Trajectories``: the configurations at t = 0, their species, the box,
the recording times and each replica's displacements.  Everything else sim.h5 holds about
the dynamics (p, q, F_s^CR, tau_alpha) comes from that through one route,
``gather_observables`` (``observables`` per configuration, ``relaxation`` over them).

Configurations are split over ranks; the owner of configuration c loads its trajectories,
computes p, q and F_s^CR (``dynamics.propensities``) and writes its slice.
With an MPI-enabled h5py every rank writes its own slices of one file collectively
(``driver='mpio'``); otherwise each owner sends its slices to the root, which writes.  The
file's ``io_path`` attribute says which.  Small per-configuration results (p, q, F_s, the
configurations) are allgathered first so every rank can write identical attributes.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import h5py
import numpy as np

from . import dynamics, equilibrium
from .model import PairModel
from .schema import (EQUILIBRATE, MC_TIME_PER_STEP, MC_TIME_UNIT, SIM_FIELDS, TRAJECTORY,
                     ChainState, SimData, checkpoint_name, provenance_attrs, write_sim)
from .memory import DISK_MARGIN, FILE_OVERHEAD_BYTES
from .safefs import new_h5_with_room, writing
from .store import publish, tmp_name


@dataclass(frozen=True)
class Trajectories:
    """What a source of dynamics hands to ``gather_observables``: simulate's finished chains
    or another engine's files (``importers``).

    ``load(c)`` returns a dict with the configuration at t = 0 (``positions`` (N, 2) wrapped
    into the box, ``species`` (N,)), ``displacements`` (R, T, N, 2) float32 unwrapped since
    t = 0 at ``times``, and anything else the source wants carried to its SimData (simulate:
    energy series and certificate).  ``times`` are whole steps since t = 0; one step lasts
    ``time_per_step`` in ``time_unit``.
    """
    configurations: int
    replicas: int
    n: int
    box: float          # the side of a square box, or (L_x, L_y) (imported data)
    times: np.ndarray
    load: Callable
    model: PairModel
    time_unit: str = MC_TIME_UNIT
    time_per_step: float = MC_TIME_PER_STEP

    @property
    def physical_times(self):
        return np.asarray(self.times, dtype=np.float64) * self.time_per_step

    @property
    def displacement_shape(self):
        return (self.configurations, self.replicas, len(self.times), self.n, 2)


def observables(displacements, positions0, species, box, model):
    """p (T, N), q (T, N) and F_s^CR (T,) of one configuration from its R trajectories.

    The one route from trajectories to observables, for simulate's chains and imported
    ones alike; returns {"p", "q", "fs"}.  (The cage and bond cutoffs are the model's
    sigma_ab.)
    """
    p, q, fs = dynamics.propensities(displacements, positions0, species, box, model)
    return {"p": p, "q": q, "fs": fs}


def relaxation(times, fs):
    """tau_alpha of the configuration-mean F_s^CR and of each configuration's, from fs (C, T)
    at ``times`` (in the file's time unit)."""
    return {"tau_alpha": dynamics.tau_alpha(times, fs.mean(axis=0)),
            "tau_alpha_per_configuration": np.array([dynamics.tau_alpha(times, row)
                                                     for row in fs])}


def _owner_of_configurations(dist, configurations, replicas):
    return dist.assign([replicas] * configurations)


def gather_observables(source, dist):
    """Every configuration's observables, configurations split over ranks by their owner.

    Returns (summaries {c: dict, identical on every rank}, owner (C,), my displacements
    {c: (R, T, N, 2)} of the configurations this rank owns).  A summary is ``source.load``'s
    dict without the displacements, plus ``observables``' p, q and fs.
    """
    owner = _owner_of_configurations(dist, source.configurations, source.replicas)
    mine, my_disp = {}, {}
    for c in np.flatnonzero(owner == dist.rank):
        loaded = dict(source.load(int(c)))
        disp = loaded.pop("displacements")
        loaded.update(observables(disp, loaded["positions"], loaded["species"], source.box,
                                  source.model))
        mine[int(c)], my_disp[int(c)] = loaded, disp
    summaries = {}
    for part in dist.allgather(mine):
        summaries.update(part)
    return summaries, owner, my_disp


def _examined_records(eq):
    """What ``equilibrium.ensemble_certificates`` needs of a chain, small enough to gather."""
    return SimpleNamespace(energy=eq.energy, overlap=eq.overlap,
                           checked_sample=eq.checked_sample,
                           checked_reference=eq.checked_reference)


def _judge_together(cfg, summaries, configurations):
    """Each summary's ``certificate``: the chains of one ensemble judged together
    (``equilibrium.ensemble_certificates``: pooled tau_int, split-R-hat)."""
    certs = equilibrium.ensemble_certificates(
        [summaries[c]["checked"] for c in range(configurations)], cfg.equilibration)
    for c, cert in enumerate(certs):
        summaries[c]["certificate"] = cert
    return summaries


def _chain_trajectories(cfg, ensemble, ckpt_dir):
    """simulate's finished chains of one ensemble as ``Trajectories``."""
    def load(c):
        def chain(stage, r=-1):
            return ChainState.load(ckpt_dir / checkpoint_name(stage, ensemble.index, c, r))
        eq = chain(EQUILIBRATE)
        disp = np.stack([chain(TRAJECTORY, r).records for r in range(ensemble.replicas)])
        return dict(positions=eq.positions, species=eq.species, displacements=disp,
                    energy=eq.energy, overlap=eq.overlap, pair_swaps=eq.pair_swaps,
                    sweeps=eq.sweeps_done, checked=_examined_records(eq))
    return Trajectories(ensemble.configurations, ensemble.replicas, cfg.system.n, cfg.box,
                        ensemble.times.astype(np.int64), load, cfg.model)


def write_sim_file(path, cfg, ensembles, ckpt_dir, dist, timings):
    """Assemble sim.h5 at ``path`` from the finished chains' checkpoints (every rank calls).

    ``ensembles``: the main ensemble then the relaxation-scan ones (``simulate.Ensemble``);
    ``timings`` (dict of seconds) is completed with the observables and writing stages.
    """
    t0 = time.perf_counter()
    main = _chain_trajectories(cfg, ensembles[0], ckpt_dir)
    summaries, owner, my_disp = gather_observables(main, dist)
    _judge_together(cfg, summaries, main.configurations)
    scan = _scan_results(cfg, ckpt_dir, ensembles[1:], dist)
    timings["observables"] = time.perf_counter() - t0
    data = _sim_data(cfg, main, summaries, scan, attrs=provenance_attrs(cfg, "sim", extra={
        "io_path": io_path(dist), "ranks": dist.size, "time_unit": main.time_unit,
        "time_per_step": main.time_per_step}))
    write_sim_data(path, data, dist, timings, (main.displacement_shape, owner, my_disp))
    _log_summary(path, data, timings, dist)


def io_path(dist):
    """How sim.h5 is written: collectively by every rank, or gathered on the root."""
    return "mpio" if dist.collective_io_available() else "root-gather"


def write_sim_data(path, data, dist, timings, displacements=None):
    """Write ``data`` to a temporary name and rename it to ``path`` when complete.

    ``displacements`` = (shape (C, R, T, N, 2), owner (C,), {c: block} of this rank) writes
    /dynamics/displacements slice by slice: each owner writes its own (collective HDF5) or
    sends it to the root.  ``timings`` gets the writing time and goes into the file.
    """
    start = time.perf_counter()
    tmp = tmp_name(path)
    collective = dist.collective_io_available()
    need = _file_bytes(data, displacements)
    dist.root_decides(lambda: new_h5_with_room(tmp, need))   # a full disk: refused here
    with writing(tmp, need) as closers:
        if collective:
            f = closers.add(dist.open_h5(tmp, "r+"))
        elif dist.is_root:
            f = closers.add(h5py.File(tmp, "r+"))
        else:
            f = None
        if f is not None:
            write_sim(f, data, displacement_shape=displacements[0] if displacements else None)
        if displacements:
            _write_displacements(f, dist, *displacements[1:], collective)
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


def _file_bytes(data, displacements):
    """Upper estimate of the file's size: its arrays, the displacements, HDF5's overhead."""
    arrays = sum(value.nbytes for value in vars(data).values() if isinstance(value, np.ndarray))
    if displacements:
        arrays += int(np.prod(displacements[0])) * 4
    return int(DISK_MARGIN * arrays) + FILE_OVERHEAD_BYTES


def _write_displacements(f, dist, owner, my_disp, collective):
    """The big dataset: each owner writes its slice, or sends it to the root."""
    dset = f[SIM_FIELDS["displacements"].path] if f is not None else None
    for c in range(len(owner)):
        if collective:
            if c in my_disp:
                dset[c] = my_disp[c]
        else:
            block = dist.to_root(my_disp.get(c), int(owner[c]))
            if dist.is_root:
                dset[c] = block


def _scan_results(cfg, ckpt_dir, scan_ensembles, dist):
    """F_s^CR(t) and the certificate verdict of each configuration of each scan temperature
    (ensembles 1..), configurations split over ranks: [(ensemble, fs, certified)]."""
    results = []
    for ens in scan_ensembles:
        summaries, _, _ = gather_observables(_chain_trajectories(cfg, ens, ckpt_dir), dist)
        _judge_together(cfg, summaries, ens.configurations)
        per_c = [summaries[c] for c in range(ens.configurations)]
        results.append((ens, np.array([s["fs"] for s in per_c]),
                        np.array([bool(s["certificate"] and s["certificate"].certified)
                                  for s in per_c])))
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
        energy_series=energy, times=main.times, fs_cr=fs,
        **relaxation(main.physical_times, fs), p=stack("p"), q=stack("q"), attrs=attrs,
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
_FROM_CERTIFICATE = {"certified": False, "verdict": equilibrium.TOO_SHORT,
                     "stationary": False, "drift": np.nan, "drift_error": np.nan,
                     "tau_int": np.nan, "effective_samples": 0.0,
                     "decorrelated": False, "overlap": np.nan,
                     "tau_eq": np.nan, "tau_eq_kind": equilibrium.TAU_ABOVE,
                     "sweeps_examined": 0, "reference_sweeps": 0}


def _certificate_arrays(cfg, summaries):
    """The SimData certificate_* fields from each configuration's summary."""
    certs = [s["certificate"] for s in summaries]
    renamed = {"sweeps_examined": "sweeps"}
    arrays = {f"certificate_{name}": np.array([
        getattr(cert, renamed.get(name, name)) if cert else missing for cert in certs])
        for name, missing in _FROM_CERTIFICATE.items()}
    examined = [cert for cert in certs if cert] or [None]
    arrays.update(
        certificate_threshold=cfg.equilibration.certificate_threshold,
        certificate_sigmas=cfg.equilibration.certificate_sigmas,
        certificate_min_effective=cfg.equilibration.certificate_min_effective,
        certificate_rhat=examined[0].rhat if examined[0] else np.nan,
        certificate_rhat_limit=examined[0].rhat_limit if examined[0] else np.nan,
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
    log(f"tau_alpha = {data.tau_alpha:.4g} {data.time_unit} (F_s^CR = 1/e); wrote {path}")
    log("timings (s): " + json.dumps({k: round(v, 2) for k, v in timings.items()}))
