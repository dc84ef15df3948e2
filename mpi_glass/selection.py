"""``mpi_glass select``: features, information-imbalance selections, regression, report.

Reads sim.h5, computes the 60 structural features of every configuration (configurations
split over ranks), then runs the study (``study.run_study``) whose independent work items
- candidate features of each greedy step, held-out folds, random draws - are spread over
the ranks through the distributor's ``map``.  The root rank writes select.h5, report.md,
report.json and figures/.
"""
from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from . import descriptors, dynamics
from .config import time_spec
from .errors import InputError
from .progress import log
from .schema import (MC_TIME_UNIT, SelectData, open_file, provenance_attrs, read_sim,
                     write_select)
from .outdir import commit_staged, folder_lock, recover_staged, staging_dir
from .memory import select_disk_parts
from .safefs import check_room, new_h5_with_room, writing
from .store import check_writable_dir, file_sha256, first_difference

#: What one select run owns in its output folder; a run replaces the whole set together.
OUTPUTS = ("select.h5", "report.md", "report.json", "figures")


def config_for_sim(sim_path, given=None):
    """The config select runs with: ``given`` if its physics matches the sim file's, else
    (``given`` None) the config stored in the sim file.  A mismatch is an InputError naming
    the first differing key, so select.h5 and the report never describe other data.
    """
    from .config import parse_config
    with open_file(sim_path, "sim") as f:
        stored_toml = str(f.attrs.get("config_toml", ""))
        stored_name = str(f.attrs.get("config_name", "sim"))
        try:
            physics = json.loads(f.attrs["physics_json"])
        except (KeyError, ValueError):
            raise InputError(f"{sim_path}: no physics_json attribute (written by an older or "
                             f"foreign program); rerun 'mpi_glass simulate'") from None
    stored = parse_config(stored_toml, origin=f"{sim_path} (its stored config)",
                          name=stored_name)
    mismatch = first_difference(physics, stored.physics_dict())
    if mismatch is not None:
        raise InputError(f"{sim_path}: its config_toml and physics_json attributes disagree "
                         f"({mismatch}: {_lookup(stored.physics_dict(), mismatch)!r} in "
                         f"config_toml, {_lookup(physics, mismatch)!r} in physics_json, which "
                         f"the data were made with); the file was edited: rerun "
                         f"'mpi_glass simulate --force'")
    if given is None:
        return stored
    wanted = given.physics_dict()
    diff = first_difference(physics, wanted)
    if diff is not None:
        raise InputError(f"{sim_path}: made with another config than --config '{given.name}' "
                         f"({diff}: {_lookup(physics, diff)!r} in the file, "
                         f"{_lookup(wanted, diff)!r} in the config); pass the "
                         f"config it was made with, or leave out --config to use the file's")
    return given


def _lookup(nested, dotted):
    for key in dotted.split("."):
        nested = nested.get(key) if isinstance(nested, dict) else None
    return nested


def propensity_times(sel, times, tau_alpha, unit=MC_TIME_UNIT):
    """{label: time} of the propensities the study uses: "main" (``select.time``) and
    "second" (``select.second_time``, if not 0), in the sim file's time ``unit`` like
    ``times``.  Fractions of tau_alpha are resolved here; a time outside the recorded range
    is a one-line error naming its key."""
    picked = {"main": _resolve_time(sel.time, "select.time", times, tau_alpha, unit)}
    if time_spec(sel.second_time, "select.second_time", zero_ok=True)[0] > 0:
        picked["second"] = _resolve_time(sel.second_time, "select.second_time", times,
                                         tau_alpha, unit)
    return picked


def _resolve_time(text, key, times, tau_alpha, unit):
    value, relative = time_spec(text, key)
    if relative and not np.isfinite(tau_alpha):
        longer = "raise dynamics.t_max" if unit == MC_TIME_UNIT else "record longer"
        raise InputError(f"{key}: tau_alpha is undefined (F_s^CR does not fall to 1/e by "
                         f"the last recorded time {times[-1]:g} {unit}, or was not imported); "
                         f"{longer} or give {key} in {unit}")
    wanted = value * tau_alpha if relative else value
    positive = times[times > 0]
    if not positive[0] <= wanted <= positive[-1]:
        raise InputError(f"{key}: {wanted:.6g} {unit} lies outside the recorded times "
                         f"{positive[0]:g} ... {positive[-1]:g} {unit}")
    return float(wanted)


def propensity_at(times, values, t):
    """values (C, T, N) at time t (in the unit of ``times``), linear in log t between the two
    recorded times that bracket t (``dynamics.interpolate_in_time``): (C, N); None stays
    None (q of imported propensities)."""
    if values is None:
        return None
    return dynamics.interpolate_in_time(times, np.moveaxis(values, 1, 0), t)


def check_sim_data(path, data, config_name):
    """NaN/inf or impossible labels in sim.h5's arrays: one line naming the file, the
    configuration and the way out (the data of simulate are always finite)."""
    way_out = f"the file is damaged; rerun 'mpi_glass simulate --force' (config {config_name})"
    for what, values in (("positions", data.positions), ("p", data.p), ("q", data.q)):
        bad = [c for c, block in enumerate(values) if not np.all(np.isfinite(block))]
        if bad:
            raise InputError(f"{path}: {what} of configuration {bad[0]} contains NaN or inf; "
                             f"{way_out}")
    species = np.asarray(data.species)
    bad = [c for c, block in enumerate(species) if not np.isin(block, (0, 1, 2)).all()]
    if bad:
        raise InputError(f"{path}: species of configuration {bad[0]} holds labels other than "
                         f"0, 1, 2; {way_out}")


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
        """Compute, then replace the folder's select outputs as one set (root writes).

        The folder is locked for the run; the new outputs are written into a staging folder
        and swapped in only when all are complete, so a kill leaves the old set in place.
        """
        from .memory import refuse_if_too_big, select_parts
        refuse_if_too_big(self.dist, "select", select_parts(self.cfg, self.dist.size))
        self.dist.root_decides(lambda: check_writable_dir(self.out_dir))
        with folder_lock(self.out_dir, self.dist, "mpi_glass select"):
            if self.dist.root_decides(self._check_outputs):
                return self.path
            with self._naming_the_data():
                data = read_sim(self.sim_path)     # without the displacements
                check_sim_data(self.sim_path, data, self.cfg.name)
                picked = None if self.features_only else \
                    propensity_times(self.cfg.select, data.physical_times, data.tau_alpha,
                                     data.time_unit)
                values, names = self._features(data)
                check_features(values, names)
                results = summary = None
                if not self.features_only:
                    start = time.perf_counter()
                    results, summary = self._study(data, values, names, picked)
                    self.timings["study"] = time.perf_counter() - start
            if self.dist.is_root:
                self._write_outputs(data, values, names, results, summary)
            self.dist.barrier()
        return self.path

    @contextmanager
    def _naming_the_data(self):
        """An error about the data names the sim file and the config it was read with."""
        try:
            yield
        except InputError as exc:
            if str(self.sim_path) in str(exc):
                raise
            raise InputError(f"{self.sim_path} (config {self.cfg.name}): {exc}",
                             exc.same_on_every_rank) from None

    def _check_outputs(self):
        """Refuse to replace finished outputs without --force (root); a features-only
        select.h5 is completed by a full run without it.  Returns True when there is nothing
        left to do: an interrupted run's swap, finished here, put its outputs in place."""
        if recover_staged(self.out_dir, "select"):
            log(f"finished replacing the outputs in {self.out_dir} that an interrupted run "
                f"had left half swapped")
            if self.path.exists() and not self.force and (
                    self.features_only or not _is_features_only(self.path)):
                return True    # the interrupted run's outputs are in place: its work is done
        check_room(self.out_dir, select_disk_parts(self.cfg), "select")
        if not self.path.exists() or self.force:
            return False
        if not self.features_only and _is_features_only(self.path):
            log(f"{self.path} holds features only: completing it with the selections")
            return False
        raise InputError(f"{self.path}: exists; use --force to replace it (and report.md, "
                         f"report.json, figures/)")

    def _write_outputs(self, data, values, names, results, summary):
        """Write the new set into the staging folder, then swap it in.  A failure (a full
        disk) removes the staging folder; the old set stays."""
        stage = staging_dir(self.out_dir, "select")
        stage.mkdir()
        with writing(stage, sum(select_disk_parts(self.cfg).values())):
            self._write(stage / self.path.name, values, names, results, data.time_unit)
            if results is not None:
                self._report(stage, data, values, names, results, summary)
        commit_staged(self.out_dir, "select", OUTPUTS)
        log(f"wrote {self.path}" + ("" if results is None else
                                    f", {self.out_dir / 'report.md'}, report.json, figures/"))

    # -- features ---------------------------------------------------------------------
    def _features(self, data):
        start = time.perf_counter()
        positions, species = data.positions, data.species
        C = len(positions)
        lengths = self.cfg.select.lengths
        log(f"features: {C} configurations x {6 * len(lengths)} features", self.dist.is_root)
        mine = {c: descriptors.compute_features(positions[c], species[c], data.box,
                                                lengths=lengths, model=self.cfg.model)[0]
                for c in self.dist.my_items([1.0] * C)}
        gathered = {}
        for part in self.dist.allgather(mine):
            gathered.update(part)
        self.timings["features"] = time.perf_counter() - start
        return np.stack([gathered[c] for c in range(C)]), descriptors.feature_names(lengths)

    # -- the study ----------------------------------------------------------------------
    def _study(self, data, values, names, picked):
        """The study at the propensity times ``picked`` ({label: time}); returns the
        results and the propensities at the main time, {"p": (C, N), "q": (C, N) or None}."""
        from .imbalance.dii_select import DiiSettings
        from .study import run_study
        times = data.physical_times
        p_by_time = {label: propensity_at(times, data.p, t) for label, t in picked.items()}
        at_main = {"p": p_by_time["main"], "q": propensity_at(times, data.q, picked["main"])}
        results = run_study(values, names, p_by_time, at_main["q"], data.species,
                            self.cfg.select, mapper=self.dist, log=self._log,
                            seed=self.cfg.seed, tau_alpha=data.tau_alpha,
                            dii=DiiSettings(**dataclasses.asdict(self.cfg.dii)),
                            species_names=self.cfg.model.species_names)
        if data.certificate_certified is not None:
            results["certified"] = [bool(x) for x in data.certificate_certified]
        if data.certificate_verdict is not None:
            results["certificate"] = _certificate_summary(data)
        if data.scan_certified is not None:     # the scan obeys the same certificate rules
            results["scan_certified"] = {f"{t:g}": [bool(x) for x in ok] for t, ok in
                                         zip(data.scan_temperatures, data.scan_certified)}
        if data.imported:
            results["equilibrium"] = "external"
        results["propensity_time"] = picked
        results["time_unit"] = data.time_unit
        results["timings"] = dict(results.get("timings", {}), **self.timings)
        return results, at_main

    def _log(self, message):
        log(message, self.dist.is_root)

    # -- outputs --------------------------------------------------------------------------
    def _write(self, path, values, names, results, time_unit):
        attrs = provenance_attrs(self.cfg, "select", extra={
            "sim_file": str(self.sim_path), "sim_sha256": self.sim_sha256,
            "features_only": results is None, "time_unit": time_unit})
        need = select_disk_parts(self.cfg)["select.h5"]
        new_h5_with_room(path, need)
        with writing(path, need) as closers:
            f = closers.add(h5py.File(path, "r+"))
            write_select(f, SelectData.from_results(values, names, results, attrs))
            f.close()

    def _report(self, folder, data, values, names, results, at_main):
        from .report import summary_from_simulation, write_report
        summary = summary_from_simulation(data, values, names, results, at_main,
                                          model=self.cfg.model)
        provenance = {"sim_file": str(self.sim_path), "sim_sha256": self.sim_sha256,
                      "config_toml": self.cfg.source, "ranks": self.dist.size}
        write_report(folder, results, summary, provenance, run_name=self.cfg.name)


def _is_features_only(path):
    """Whether an existing select.h5 was written by ``select --features-only``."""
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("features_only", False))
    except OSError:
        return False


def _certificate_summary(data):
    """The certificate's verdicts and error-bar quantities per configuration, JSON-ready
    (NaN as None), for the report's certificate lines."""
    def number(x):
        x = float(x)
        return x if np.isfinite(x) else None
    return {"verdict": [int(v) for v in data.certificate_verdict],
            "tau_int": [number(t) for t in data.certificate_tau_int],
            "effective_samples": [number(e) for e in data.certificate_effective_samples],
            "min_effective": number(data.certificate_min_effective),
            "rhat": number(data.certificate_rhat),
            "rhat_limit": number(data.certificate_rhat_limit)}
