"""``mpi_glass select``: features, information-imbalance selections, regression, report.

Reads sim.h5, computes the 60 structural features of every configuration (configurations
split over ranks), then runs the study (``study.run_study``) whose independent work items
- candidate features of each greedy step, held-out folds, random draws - are spread over
the ranks through the distributor's ``map``.  The root rank writes select.h5, report.md,
report.json and figures/.
"""
from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from . import descriptors, dynamics
from .errors import InputError
from .progress import log
from .schema import SelectData, provenance_attrs, read_sim, write_select
from .store import check_writable_dir, file_sha256, publish, tmp_name


def load_simulation(path):
    """sim.h5 without the displacements, as a ``schema.SimData`` (one-line errors for bad
    files)."""
    return read_sim(path)


def time_index(times, wanted, what):
    """Index of the recorded time nearest to ``wanted`` (in log t); errors if none is near."""
    if not np.isfinite(wanted) or wanted <= 0:
        raise InputError(f"{what}: no valid time ({wanted!r}); is t_max past tau_alpha?")
    index = dynamics.nearest_time_index(times, wanted)
    if abs(np.log(times[index] / wanted)) > np.log(2.0):
        raise InputError(f"{what}: nearest recorded time {times[index]} is not within a "
                         f"factor 2 of {wanted:g} sweeps")
    return index


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

    @cached_property
    def sim_sha256(self):
        """SHA-256 of the input sim.h5, read once: both select.h5 and the report cite it."""
        return file_sha256(self.sim_path)

    def run(self):
        data = load_simulation(self.sim_path)
        if self.dist.is_root:
            check_writable_dir(self.out_dir)
            if self.path.exists() and not self.force:
                raise InputError(f"{self.path}: exists; use --force to overwrite")
        self.dist.barrier()
        values, names = self._features(data)
        check_features(values, names)
        if self.features_only:
            self._write(data, values, names, results=None)
            return self.path
        start = time.perf_counter()
        results, summary = self._study(data, values, names)
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
    def _propensity_times(self, data):
        sel, times = self.cfg.select, data.times
        wanted = data.tau_alpha if sel.time == "tau_alpha" else float(sel.time)
        main = time_index(times, wanted, "select.time")
        picked = {"main": main}
        if sel.second_time > 0:
            picked["second"] = time_index(times, sel.second_time, "select.second_time")
        return picked

    def _study(self, data, values, names):
        from .study import run_study
        picked = self._propensity_times(data)
        p_by_time = {label: data.p[:, k, :] for label, k in picked.items()}
        main = picked["main"]
        results = run_study(values, names, p_by_time, data.q[:, main, :], data.species,
                            self.cfg.select, mapper=self.dist, log=self._log,
                            seed=self.cfg.seed)
        results["tau_alpha"] = data.tau_alpha
        results["propensity_time"] = {label: int(data.times[k]) for label, k in picked.items()}
        results["timings"] = dict(results.get("timings", {}), **self.timings)
        return results, picked

    def _log(self, message):
        log(message, self.dist.is_root)

    # -- outputs --------------------------------------------------------------------------
    def _write(self, data, values, names, results):
        if not self.dist.is_root:
            return
        tmp = tmp_name(self.path)
        attrs = provenance_attrs(self.cfg, "select", extra={
            "sim_file": str(self.sim_path), "sim_sha256": self.sim_sha256})
        with h5py.File(tmp, "w") as f:
            write_select(f, SelectData.from_results(values, names, results, attrs))
        publish(tmp, self.path)
        log(f"wrote {self.path}")

    def _report(self, data, values, names, results, picked):
        from .report import write_report
        summary = _sim_summary(data, values, names, results, picked)
        provenance = {"sim_file": str(self.sim_path), "sim_sha256": self.sim_sha256,
                      "config_toml": self.cfg.source, "ranks": self.dist.size}
        write_report(self.out_dir, results, summary, provenance)
        log(f"wrote {self.out_dir / 'report.md'}, report.json and figures/")


def _sim_summary(data, values, names, results, picked):
    """What the figures need beyond the study's numbers (see report.write_report)."""
    from .report import summary_from_simulation
    return summary_from_simulation(data, values, names, results, picked)
