"""``mpi_glass simulate``: equilibrium configurations and their iso-configurational dynamics.

The run is a set of independent Markov chains (work items):

* equilibration of configuration c of ensemble e (MC + optional swaps at T_e), and
* trajectory r of configuration c of ensemble e (plain translational MC, no swaps), which
  records unwrapped displacements at the ensemble's log-spaced times.

Ensemble 0 is the main run (C configurations x R replicas at system.temperature); ensembles
1.. are the optional relaxation scan (paper Fig. 1), one per scan temperature.  Items are
split over ranks by cost; every random stream is keyed by (seed, stage, e, c, r), never by
rank, and each item checkpoints itself to its own file, so any rank count - including a
restart on a different one - gives bit-identical data.  When all chains are done the owners
of each configuration compute p, q and F_s^CR, and the ranks write sim.h5 together
(parallel HDF5) or through the root.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dynamics, equilibrium, mc, signals
from .errors import InputError, Interrupted
from .model import species_array
from .progress import Progress, log
from .schema import EQUILIBRATE, TRAJECTORY, ChainState, checkpoint_name
from .outdir import SIMULATE_NAMES, check_folder, folder_lock
from .memory import check_simulate_room
from .store import (check_writable_dir, first_difference, read_json, read_physics,
                    write_json_atomic)

#: Sweeps per call into the MC kernel are capped so signals and progress are seen every
#: ~CHUNK_TRIALS trial moves (a few seconds); results do not depend on the chunking.
CHUNK_TRIALS = 20_000_000


@dataclass(frozen=True)
class Ensemble:
    index: int
    temperature: float
    configurations: int
    replicas: int
    times: np.ndarray


@dataclass(frozen=True)
class Item:
    stage: int
    ensemble: int
    c: int
    r: int          # -1 for an equilibration
    sweeps: int

    @property
    def file_name(self):
        return checkpoint_name(self.stage, self.ensemble, self.c, self.r)

    def seed_sequence(self, seed):
        return np.random.SeedSequence([seed, self.stage, self.ensemble, self.c, max(self.r, 0)])


def build_ensembles(cfg):
    dyn, scan = cfg.dynamics, cfg.relaxation_scan
    extra = tuple(int(t) for t in dyn.extra_times)
    main = Ensemble(0, cfg.system.temperature, dyn.configurations, dyn.replicas,
                    dynamics.log_times(dyn.t_max, dyn.per_decade, extra))
    scans = [Ensemble(i + 1, float(t), scan.configurations, scan.replicas,
                      dynamics.log_times(scan.t_max, dyn.per_decade, ()))
             for i, t in enumerate(scan.temperatures)]
    return [main] + scans


def build_items(cfg, ensembles, stage):
    if stage == EQUILIBRATE:
        return [Item(EQUILIBRATE, e.index, c, -1, cfg.equilibration_sweeps)
                for e in ensembles for c in range(e.configurations)]
    return [Item(TRAJECTORY, e.index, c, r, int(e.times[-1]))
            for e in ensembles for c in range(e.configurations) for r in range(e.replicas)]


class _StopFlag:
    """SIGTERM, SIGUSR1 (SLURM's warning before a time limit) or SIGINT, recorded by the
    handlers of ``signals`` and acted on at the end of the chunk, which checkpoints."""

    def install(self):
        signals.reset()       # a signal received before now has raised already
        signals.install_for_library()     # the CLI has installed all three already
        signals.defer()

    @property
    def raised(self):
        return signals.received()


class Simulation:
    """One ``simulate`` run: cfg + output directory + distributor."""

    def __init__(self, cfg, out_dir, dist, force=False):
        self.cfg, self.dist, self.force = cfg, dist, force
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "sim.h5"
        self.ckpt_dir = self.out_dir / "sim.h5.checkpoint"
        self.ensembles = build_ensembles(cfg)
        self.counts = cfg.counts
        self.n = cfg.system.n
        self.box = cfg.box
        self.stop = _StopFlag()
        self.timings = {}

    # -- orchestration --------------------------------------------------------------
    def run(self):
        """Run (or resume) to a finished sim.h5; returns its path.

        The output folder is locked for the whole run.  A finished sim.h5 being replaced
        (--force) stays in place until the new one is complete and renamed over it.
        """
        from .memory import refuse_if_too_big, simulate_parts
        refuse_if_too_big(self.dist, "simulate", simulate_parts(self.cfg, self.dist.size))
        self.dist.root_decides(lambda: check_writable_dir(self.out_dir))
        self.dist.root_decides(lambda: check_folder(self.out_dir, SIMULATE_NAMES,
                                                    inside=[self.ckpt_dir.name]))
        with folder_lock(self.out_dir, self.dist, "mpi_glass simulate"):
            if self.dist.root_decides(self._finished_already):
                return self.path
            self.dist.root_decides(self._prepare_checkpoint_dir)
            self.dist.root_decides(lambda: check_simulate_room(self.cfg, self.out_dir,
                                                               self.ckpt_dir))
            return self._run_locked()

    def _run_locked(self):
        self.stop.install()
        for stage, name in ((EQUILIBRATE, "equilibrate"), (TRAJECTORY, "trajectories")):
            start = time.perf_counter()
            self._run_stage(stage, name)
            self.dist.barrier()
            self.timings[name] = time.perf_counter() - start
            if stage == EQUILIBRATE:
                self.dist.root_decides(self._check_certificates)
        self._assemble()
        if self.dist.is_root:
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        self.dist.barrier()
        return self.path

    def _finished_already(self):
        """A finished file with the same physics is not redone; a different one needs --force."""
        exists = self.path.exists()
        if exists and not self.force:
            physics = read_physics(self.path)
            if physics is None:
                raise InputError(f"{self.path}: exists but is not a readable mpi_glass sim "
                                 f"file (truncated or foreign); move it away, or use --force "
                                 f"to overwrite it")
            diff = first_difference(physics, self.cfg.physics_dict())
            if diff is None:
                log(f"{self.path} is complete for this config; nothing to do")
                return True
            raise InputError(f"{self.path}: exists and was made with a different config "
                             f"({diff} differs); use --force to overwrite")
        return False

    def _prepare_checkpoint_dir(self):
        """Create, reuse or (with --force) reset the per-item checkpoint directory (root)."""
        if self.force:     # the finished file stays until the new one replaces it
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        manifest = self.ckpt_dir / "run.json"
        physics = self.cfg.physics_dict()
        if manifest.exists():
            old = read_json(manifest, "checkpoint manifest", "use --force to start over")
            diff = first_difference(old, physics)
            if diff is not None:
                raise InputError(f"{self.ckpt_dir}: checkpoint was made with a different "
                                 f"config ({diff} differs); rerun with that config or use "
                                 f"--force to start over")
            log(f"resuming from checkpoints in {self.ckpt_dir}")
        else:
            write_json_atomic(manifest, physics)

    # -- chains -----------------------------------------------------------------------
    def _run_stage(self, stage, name):
        items = build_items(self.cfg, self.ensembles, stage)
        costs = [it.sweeps * self.n for it in items]
        mine = [items[i] for i in self.dist.my_items(costs)]
        done_before = (sum(self._sweeps_done(it) * self.n for it in items)
                       if self.dist.is_root else 0)
        progress = _StageProgress(self.dist, name, total=sum(costs), done_before=done_before)
        for item in mine:
            self._run_item(item, progress)
        progress.finish()

    def _sweeps_done(self, item):
        path = self._item_path(item)
        if not path.exists():
            return 0
        return ChainState.load(path).sweeps_done

    def _item_path(self, item):
        return self.ckpt_dir / item.file_name

    def _run_item(self, item, progress):
        state = self._load_or_start(item)
        if state.done:
            return
        if item.stage == EQUILIBRATE:
            self._equilibrate(item, state, progress)
            return
        ens = self.ensembles[item.ensemble]
        points = self._record_points(item)
        chunk = max(1, CHUNK_TRIALS // self.n)
        last_save = (state.sweeps_done, time.monotonic())
        while state.sweeps_done < item.sweeps:
            done, k = state.sweeps_done, state.n_recorded
            target = min(item.sweeps, done + chunk, points[k] if k < len(points) else item.sweeps)
            stats = mc.run_sweeps(state.positions, state.images, state.species,
                                  self.box, state.rng, target - done, ens.temperature,
                                  self.cfg.mc.delta_max)
            state.mc_counts += np.array(stats[:4], dtype=np.int64)
            state.sweeps_done = target
            if k < len(points) and target == points[k]:
                self._record(item, state, k)
                state.n_recorded = k + 1
            progress.advance((target - done) * self.n)
            last_save = self._maybe_checkpoint(item, state, last_save)
        state.done = True
        state.save(self._item_path(item))

    def _equilibrate(self, item, state, progress):
        """Advance an equilibration chain to its end: certified (in the certified mode) or
        its sweeps spent, checkpointing on the way."""
        eq = self.cfg.equilibration
        chain = equilibrium.EquilibrationChain(
            state, box=self.box, temperature=self.ensembles[item.ensemble].temperature,
            delta_max=self.cfg.mc.delta_max, swap_probability=eq.swap_probability,
            sweeps=item.sweeps, sample_every=eq.sample_every,
            threshold=eq.certificate_threshold, stop_when_certified=self.cfg.certified_mode)
        chunk = max(1, CHUNK_TRIALS // self.n)
        last_save = (state.sweeps_done, time.monotonic())
        while not chain.done:
            progress.advance(chain.advance(chunk) * self.n)
            last_save = self._maybe_checkpoint(item, state, last_save)
        state.save(self._item_path(item))

    def _check_certificates(self):
        """After equilibration (root): log every certificate; in the certified mode an
        uncertified configuration stops the run (unless require_certificate = false)."""
        eq = self.cfg.equilibration
        failed = None
        for item in build_items(self.cfg, self.ensembles, EQUILIBRATE):
            cert = equilibrium.chain_certificate(ChainState.load(self._item_path(item)), eq)
            what = f"configuration {item.c} at T = {self.ensembles[item.ensemble].temperature:g}"
            log(f"{what}: " + (cert.summary() if cert else "too short to certify"))
            if failed is None and not (cert and cert.certified):
                failed = (what, cert)
        if failed and self.cfg.certified_mode and eq.require_certificate:
            what, cert = failed
            q = f" (q = {cert.overlap:.3f}, threshold {cert.threshold:g})" if cert else ""
            raise InputError(f"{what} is not certified within equilibration.sweeps = "
                             f"{eq.sweeps}{q}: raise equilibration.sweeps (rerun with --force) "
                             f"or set equilibration.require_certificate = false to keep it "
                             f"flagged")

    def _maybe_checkpoint(self, item, state, last_save):
        done, when = last_save
        ck = self.cfg.checkpoint
        now_done = state.sweeps_done
        due = (now_done - done >= ck.every_sweeps
               or time.monotonic() - when >= 60.0 * ck.every_minutes)
        if self.stop.raised:
            state.save(self._item_path(item))
            raise Interrupted(self.stop.raised)
        if due and now_done < item.sweeps:
            state.save(self._item_path(item))
            return now_done, time.monotonic()
        return last_save

    def _record_points(self, item):
        return [int(t) for t in self.ensembles[item.ensemble].times]

    def _record(self, item, state, k):
        unwrapped = mc.unwrap(state.positions, state.images, self.box)
        state.records[k] = (unwrapped - state.start).astype(np.float32)

    def _load_or_start(self, item):
        path = self._item_path(item)
        if path.exists():
            return ChainState.load(path)
        if item.stage == EQUILIBRATE:
            rng = mc.new_rng_state(item.seed_sequence(self.cfg.seed))
            species = species_array(self.counts)
            positions = mc.initial_configuration(self.counts, self.box, rng)
            n_samples = item.sweeps // self.cfg.equilibration.sample_every
            extra = equilibrium.new_chain_records(positions, species, n_samples)
        else:
            eq = ChainState.load(self.ckpt_dir / checkpoint_name(EQUILIBRATE, item.ensemble,
                                                                 item.c))
            rng = mc.new_rng_state(item.seed_sequence(self.cfg.seed))
            positions, species = eq.positions.copy(), eq.species.copy()
            n_times = len(self.ensembles[item.ensemble].times)
            extra = dict(start=positions.copy(),
                         records=np.zeros((n_times, self.n, 2), dtype=np.float32))
        return ChainState(positions=positions, images=np.zeros((self.n, 2), dtype=np.int64),
                          species=species, rng=rng, **extra)

    # -- the file -------------------------------------------------------------------
    def _assemble(self):
        from .simfile import write_sim_file
        write_sim_file(self.path, self.cfg, self.ensembles, self.ckpt_dir, self.dist,
                       self.timings)


class _StageProgress:
    """Run-wide progress of one stage on rank 0's bar.

    Ranks own different numbers of chains, so no collective may run inside the MC loop; the
    counts travel as non-blocking point-to-point messages (``parallel.ProgressCounter``) and
    rank 0 adds them up, without any file.
    """

    def __init__(self, dist, label, total, done_before):
        self.counter = dist.progress_counter()
        self.done_before = done_before
        self.bar = Progress(label, total, unit="trials", enabled=dist.is_root,
                            start_done=done_before)

    def advance(self, trials):
        self.counter.add(trials)
        if self.bar.enabled:
            self.bar.update(self.done_before + self.counter.total())

    def finish(self):
        """Wait (on rank 0, politely) for every rank's final count; close the bar."""
        self.counter.close(lambda total: self.bar.update(self.done_before + total))
        if self.bar.enabled:
            self.bar.done = self.bar.total
            self.bar.close()
