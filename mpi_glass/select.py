"""``mpi_glass select``: features, information-imbalance selections, regression, report.

Reads sim.h5, computes the 60 structural features of every configuration (configurations
split over ranks), then runs the study (``study.run_study``) whose independent work items
- candidate features of each greedy step, held-out folds, random draws - are spread over
the ranks through the distributor's ``map``.  The root rank writes select.h5, report.md,
report.json and figures/.
"""
from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from . import descriptors, dynamics
from .config import time_spec
from .errors import InputError
from .progress import log
from .schema import SelectData, provenance_attrs, read_sim, write_select
from .store import check_writable_dir, file_sha256, publish, tmp_name


def load_simulation(path):
    """sim.h5 without the displacements, as a ``schema.SimData`` (one-line errors for bad
    files)."""
    return read_sim(path)


def propensity_times(sel, times, tau_alpha):
    """{label: time in sweeps} of the propensities the study uses: "main" (``select.time``)
    and "second" (``select.second_time``, if not 0).  Fractions of tau_alpha are resolved
    here; a time outside the recorded range is a one-line error naming its key."""
    picked = {"main": _resolve_time(sel.time, "select.time", times, tau_alpha)}
    if time_spec(sel.second_time, "select.second_time", zero_ok=True)[0] > 0:
        picked["second"] = _resolve_time(sel.second_time, "select.second_time", times,
                                         tau_alpha)
    return picked


def _resolve_time(text, key, times, tau_alpha):
    value, relative = time_spec(text, key)
    if relative and not np.isfinite(tau_alpha):
        raise InputError(f"{key}: tau_alpha is undefined because F_s^CR never falls to 1/e by "
                         f"the last recorded time ({times[-1]} sweeps); raise dynamics.t_max "
                         f"or give {key} in sweeps")
    wanted = value * tau_alpha if relative else value
    positive = times[times > 0]
    if not positive[0] <= wanted <= positive[-1]:
        raise InputError(f"{key}: {wanted:.6g} sweeps lies outside the recorded times "
                         f"{positive[0]} ... {positive[-1]} sweeps")
    return float(wanted)


def propensity_at(times, values, t):
    """values (C, T, N) at time t (sweeps), linear in log t between the two recorded times
    that bracket t (``dynamics.interpolate_in_time``): (C, N)."""
    return dynamics.interpolate_in_time(times, np.moveaxis(values, 1, 0), t)


def check_features(values, names):
    """NaN or constant features are errors naming the feature and the configuration."""
    for c, block in enumerate(values):
        bad = ~np.all(np.isfinite(block), axis=0)
        if bad.any():
            raise InputError(f"feature {names[int(np.argmax(bad))]} is not finite in "
                             f"configuration {c}")
        flat = np.ptp(block, axis=0) == 0
        if flat.any():
            raise InputError(f"feature {names[int(np.argmax(flat))]} is constant in "
                             f"configuration {c}")


class Selection:
    def __init__(self, cfg, out_dir, sim_path, dist, force=False, features_only=False):
        self.cfg, self.dist, self.force = cfg, dist, force
        self.out_dir, self.sim_path = Path(out_dir), Path(sim_path)
        self.features_only = features_only
        self.path = self.out_dir / "select.h5"
        self.timings = {}

    def run(self):
        data = load_simulation(self.sim_path)
        if self.dist.is_root:
            check_writable_dir(self.out_dir)
            if self.path.exists() and not self.force:
                raise InputError(f"{self.path}: exists; use --force to overwrite")
        self.dist.barrier()
        picked = None if self.features_only else \
            propensity_times(self.cfg.select, data.times, data.tau_alpha)
        values, names = self._features(data)
        check_features(values, names)
        if self.features_only:
            self._write(data, values, names, results=None)
            return self.path
        start = time.perf_counter()
        results, summary = self._study(data, values, names, picked)
        self.timings["study"] = time.perf_counter() - start
        self._write(data, values, names, results)
        if self.dist.is_root:
            self._report(data, values, names, results, summary)
        self.dist.barrier()
        return self.path

    # -- features ---------------------------------------------------------------------
    def _features(self, data):
        start = time.perf_counter()
        positions, species = data.positions, data.species
        C = len(positions)
        lengths = self.cfg.select.lengths
        log(f"features: {C} configurations x {6 * len(lengths)} features", self.dist.is_root)
        mine = {c: descriptors.compute_features(positions[c], species[c], data.box,
                                                lengths=lengths)[0]
                for c in self.dist.my_items([1.0] * C)}
        gathered = {}
        for part in self.dist.allgather(mine):
            gathered.update(part)
        self.timings["features"] = time.perf_counter() - start
        return np.stack([gathered[c] for c in range(C)]), descriptors.feature_names(lengths)

    # -- the study ----------------------------------------------------------------------
    def _study(self, data, values, names, picked):
        """The study at the propensity times ``picked`` ({label: sweeps}); returns the
        results and the propensities at the main time, {"p": (C, N), "q": (C, N)}."""
        from .study import run_study
        times = data.times
        p_by_time = {label: propensity_at(times, data.p, t) for label, t in picked.items()}
        at_main = {"p": p_by_time["main"], "q": propensity_at(times, data.q, picked["main"])}
        results = run_study(values, names, p_by_time, at_main["q"], data.species,
                            self.cfg.select, mapper=self.dist, log=self._log,
                            seed=self.cfg.seed)
        results["tau_alpha"] = data.tau_alpha
        results["propensity_time"] = picked
        results["timings"] = dict(results.get("timings", {}), **self.timings)
        return results, at_main

    def _log(self, message):
        log(message, self.dist.is_root)

    # -- outputs --------------------------------------------------------------------------
    def _write(self, data, values, names, results):
        if not self.dist.is_root:
            return
        tmp = tmp_name(self.path)
        attrs = provenance_attrs(self.cfg, "select", extra={
            "sim_file": str(self.sim_path), "sim_sha256": file_sha256(self.sim_path)})
        with h5py.File(tmp, "w") as f:
            write_select(f, SelectData.from_results(values, names, results, attrs))
        publish(tmp, self.path)
        log(f"wrote {self.path}")

    def _report(self, data, values, names, results, at_main):
        from .report import summary_from_simulation, write_report
        summary = summary_from_simulation(data, values, names, results, at_main)
        provenance = {"sim_file": str(self.sim_path), "sim_sha256": file_sha256(self.sim_path),
                      "config_toml": self.cfg.source, "ranks": self.dist.size}
        write_report(self.out_dir, results, summary, provenance, run_name=self.cfg.name)
        log(f"wrote {self.out_dir / 'report.md'}, report.json and figures/")


