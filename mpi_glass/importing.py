"""``mpi_glass import``: another engine's trajectories, or propensities, as sim.h5.

The readers are in ``importers``.  This module runs the command the way ``simulate`` runs:
the output folder is locked for the run, sim.h5 is written under a temporary name and
renamed when complete, an existing one is only replaced with ``--force`` (the same config
and the same source files again: nothing to do).

Configurations are split over ranks exactly as ``simfile.gather_observables`` splits them:
the owner of configuration c reads (and hashes) its R files, so nothing moves but the
results; p, q, F_s^CR and tau_alpha then come from ``simfile``, the code that serves
simulate's own trajectories.  A bad file on any rank stops every rank with the message of
the lowest configuration at fault, so the outcome does not depend on the rank count.
Equilibrium certificates are absent: the report calls the equilibrium "external".
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .errors import InputError
from .dynamics import BOND_FACTOR, CAGE_FACTOR, check_sides
from .importers import (SourceFile, box_text, check_types_key, model_species, propensity_steps,
                        read_configuration, read_propensity_file, source_paths, source_shape)
from .outdir import folder_lock
from .progress import log
from .schema import SimData, provenance_attrs
from .simfile import Trajectories, gather_observables, io_path, relaxation, write_sim_data
from .store import check_writable_dir, first_difference, read_physics

__all__ = ["Import"]


class Import:
    """One ``import`` run: a config with ``[import]``, its folder, the output folder.

    Parameters
    ----------
    cfg : config.Config
        With ``cfg.imported`` set.
    out_dir : str or Path
        Where sim.h5 goes.
    dist : parallel.Distributor
    force : bool
        Replace an existing sim.h5.
    base : str or Path
        The folder ``import.path`` is relative to (the config file's).
    """

    def __init__(self, cfg, out_dir, dist, force=False, base="."):
        if cfg.imported is None:
            raise InputError(f"config '{cfg.name}': no [import] table; 'mpi_glass import' "
                             f"needs one (format, path, configurations, replicas, ...)")
        self.cfg, self.imp, self.dist, self.force = cfg, cfg.imported, dist, force
        self.out_dir, self.base = Path(out_dir), Path(base)
        self.path = self.out_dir / "sim.h5"
        self.names = model_species(cfg)
        self.timings = {}

    def run(self):
        """Import to a finished sim.h5 (every rank calls); returns its path."""
        check_types_key(self.imp.types, self.names)
        self.dist.root_decides(lambda: check_writable_dir(self.out_dir))
        with folder_lock(self.out_dir, self.dist, "mpi_glass import"):
            paths = self.dist.root_decides(lambda: source_paths(self.imp, self.base))
            if self.dist.root_decides(lambda: self._finished_already(paths)):
                return self.path
            self._refuse_if_too_big(paths)
            start = time.perf_counter()
            if self.imp.format == "npz":
                data, displacements = self._propensities(paths), None
            else:
                data, displacements = self._trajectories(paths)
            self.timings["read_and_observables"] = time.perf_counter() - start
            write_sim_data(self.path, data, self.dist, self.timings, displacements)
            self._log_summary(data)
        return self.path

    # -- the sources ----------------------------------------------------------------------
    def _finished_already(self, paths):
        """An existing sim.h5 of the same config and the same files is kept; anything else
        needs --force (root)."""
        if not self.path.exists() or self.force:
            return False
        physics = read_physics(self.path)
        if physics is None:
            raise InputError(f"{self.path}: exists but is not a readable mpi_glass sim file; "
                             f"move it away, or use --force to overwrite it")
        diff = first_difference(physics, self.cfg.physics_dict())
        if diff is not None:
            raise InputError(f"{self.path}: exists and was made with a different config "
                             f"({diff} differs); use --force to overwrite")
        from .schema import read_sim
        recorded = read_sim(self.path).import_sha256
        current = [SourceFile.of(name, path).sha256 for name, path in paths.values()]
        if recorded is None or list(recorded) != current:
            raise InputError(f"{self.path}: exists and was imported from other files (the "
                             f"sources changed); use --force to overwrite")
        log(f"{self.path} is complete for this config and these files; nothing to do")
        return True

    def _refuse_if_too_big(self, paths):
        """Before reading anything large: the estimate from each source's first frame."""
        if self.imp.format == "npz":        # per-particle arrays only, no trajectories
            return
        from .memory import import_parts, refuse_if_too_big

        def parts():
            shapes = {name: source_shape(self.imp.format, path) for name, path in paths.values()}
            sizes = {name: Path(path).stat().st_size for name, path in paths.values()}
            return import_parts(self.imp, shapes, sizes, self.dist.size)
        refuse_if_too_big(self.dist, "import", self.dist.root_decides(parts))

    def _owner(self):
        replicas = 1 if self.imp.format == "npz" else self.imp.replicas
        return self.dist.assign([replicas] * self.imp.configurations)

    def _read_owned(self, paths, read):
        """{c: read(c, files)} of this rank's configurations and the SourceFiles it read; an
        InputError on any rank is raised on every rank (the lowest configuration's)."""
        from .simulate import _StageProgress
        owner, mine, files, error = self._owner(), {}, {}, None
        progress = _StageProgress(self.dist, "import", total=len(paths), done_before=0,
                                  unit="files")
        for c in np.flatnonzero(owner == self.dist.rank):
            c = int(c)
            try:
                here = {key: SourceFile.of(*paths[key]) for key in paths if key[0] == c}
                mine[c] = read(c, here)
                files.update(here)
            except InputError as exc:
                error = (c, str(exc))
                break
            progress.advance(len(here))
        progress.finish()
        errors = [e for e in self.dist.allgather(error) if e is not None]
        if errors:
            raise InputError(min(errors)[1])
        return mine, files

    def _consistent(self, meta, files):
        """Every configuration records the same steps, particle count and box sides (all
        ranks hold ``meta`` {c: (steps, n, box (2,))})."""
        first = meta[0]
        name = {key[0]: f.name for key, f in sorted(files.items(), reverse=True)}
        for c in range(1, self.imp.configurations):
            steps, n, box = meta[c]
            if not np.array_equal(steps, first[0]):
                raise InputError(f"{name[c]}: frames at other times since t = 0 than "
                                 f"{name[0]}'s; every configuration must record the same "
                                 f"times")
            if n != first[1]:
                raise InputError(f"{name[c]}: {n} particles, {name[0]} has {first[1]}")
            if not np.array_equal(box, first[2]):
                raise InputError(f"{name[c]}: box {box_text(box)}, {name[0]} has "
                                 f"{box_text(first[2])}")

    # -- trajectories: LAMMPS dumps and GSD files ------------------------------------------
    def _trajectories(self, paths):
        C, R = self.imp.configurations, self.imp.replicas
        log(f"import: {C} configurations x {R} replicas ({self.imp.format}) from "
            f"{self.base / self.imp.path}", self.dist.is_root)

        def read(c, files):
            return read_configuration(self.imp, self.names, files, c)

        mine, files = self._read_owned(paths, read)
        meta = {}
        for part in self.dist.allgather({c: (v["steps"], len(v["species"]), v["box"])
                                         for c, v in mine.items()}):
            meta.update(part)
        every_file = {}
        for part in self.dist.allgather(files):
            every_file.update(part)
        self._consistent(meta, every_file)
        steps, n, box = meta[0]
        first = every_file[min(every_file)].name
        check_sides(box, max(CAGE_FACTOR, BOND_FACTOR), self.cfg.model, where=f"{first}: box")
        source = Trajectories(C, R, n, box, steps[1:], load=lambda c: _trajectory_of(mine[c]),
                              model=self.cfg.model, time_unit=self.imp.time_unit,
                              time_per_step=self.imp.time_per_step)
        summaries, owner, my_disp = gather_observables(source, self.dist)
        stack = lambda key: np.stack([summaries[c][key] for c in range(C)])  # noqa: E731
        fs = stack("fs")
        data = SimData(positions=stack("positions"), species=stack("species").astype(np.int8),
                       times=source.times, p=stack("p"), q=stack("q"), fs_cr=fs,
                       **relaxation(source.physical_times, fs),
                       attrs=self._attrs(n, box), **self._provenance(every_file))
        return data, (source.displacement_shape, owner, my_disp)

    # -- propensities: NPZ / HDF5 per configuration ------------------------------------------
    def _propensities(self, paths):
        C = self.imp.configurations
        log(f"import: {C} configurations of propensities ({self.imp.format}) from "
            f"{self.base / self.imp.path}", self.dist.is_root)
        steps = propensity_steps(self.imp)

        def read(c, files):
            return read_propensity_file(self.imp, self.names, files[(c, 0)])

        mine, files = self._read_owned(paths, read)
        every_file = {}
        for part in self.dist.allgather(files):
            every_file.update(part)
        summaries = {}
        for part in self.dist.allgather(mine):
            summaries.update(part)
        meta = {c: (steps, len(s["species"]), s["box"]) for c, s in summaries.items()}
        self._consistent(meta, every_file)
        n, box = meta[0][1], meta[0][2]
        stack = lambda key: np.stack([summaries[c][key] for c in range(C)])  # noqa: E731
        tau = self.imp.tau_alpha if self.imp.tau_alpha > 0 else float("nan")
        data = SimData(positions=stack("positions"), species=stack("species").astype(np.int8),
                       times=steps, p=stack("p"), tau_alpha=tau, attrs=self._attrs(n, box),
                       **self._provenance(every_file))
        return data

    # -- the file ---------------------------------------------------------------------------
    def _attrs(self, n, box):
        """The sim file's attributes; ``box`` (L_x, L_y), the density n / (L_x L_y)."""
        temperature = self.imp.temperature if self.imp.temperature > 0 else float("nan")
        sides = np.broadcast_to(np.asarray(box, dtype=np.float64), (2,)).copy()
        return provenance_attrs(self.cfg, "sim", extra={
            "n": n, "box": sides, "density": n / float(sides[0] * sides[1]),
            "temperature": temperature, "time_unit": self.imp.time_unit,
            "time_per_step": self.imp.time_per_step, "imported_format": self.imp.format,
            "io_path": io_path(self.dist), "ranks": self.dist.size})

    @staticmethod
    def _provenance(files):
        ordered = [files[key] for key in sorted(files)]
        return dict(import_files=np.array([f.name for f in ordered]),
                    import_sizes=np.array([f.size for f in ordered], dtype=np.int64),
                    import_sha256=np.array([f.sha256 for f in ordered]))

    def _log_summary(self, data):
        if not self.dist.is_root:
            return
        tau = (f"tau_alpha = {data.tau_alpha:.4g} {data.time_unit}"
               if np.isfinite(data.tau_alpha) else "tau_alpha unknown")
        log(f"{tau}; equilibrium certificates: external (imported); wrote {self.path}")
        log("timings (s): " + json.dumps({k: round(v, 2) for k, v in self.timings.items()}))


def _trajectory_of(configuration):
    """What ``Trajectories.load`` hands on of a configuration read by ``importers``."""
    return {key: configuration[key] for key in ("positions", "species", "displacements")}
