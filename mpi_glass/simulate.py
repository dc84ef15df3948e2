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

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import continuation, equilibrium, mc, signals
from .ensembles import build_ensembles
from .errors import InputError, Interrupted
from .memory import refuse_if_too_big, simulate_parts
from .model import species_array
from .progress import Progress, log
from .schema import EQUILIBRATE, TRAJECTORY, ChainState, checkpoint_name
from .outdir import SIMULATE_NAMES, check_folder, folder_lock
from .memory import check_simulate_room
from .store import (check_writable_dir, first_difference, load_npz, read_json, read_physics,
                    write_json_atomic)

#: Sweeps per call into the MC kernel are capped so signals and progress are seen every
#: ~CHUNK_TRIALS trial moves (a few seconds); results do not depend on the chunking.
CHUNK_TRIALS = 20_000_000


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


def build_items(cfg, ensembles, stage):
    if stage == EQUILIBRATE:
        return [Item(EQUILIBRATE, e.index, c, -1, cfg.equilibration_sweeps)
                for e in ensembles for c in range(e.configurations)]
    return [Item(TRAJECTORY, e.index, c, r, int(e.times[-1]))
            for e in ensembles for c in range(e.configurations) for r in range(e.replicas)]


def _checkpoint_header(path):
    """The ``physics_json`` (None if absent), ``sweeps_done``, ``n_recorded`` and
    ``record_times`` of a chain checkpoint, without reading its big arrays."""
    arrays = load_npz(path, keys=("physics_json", "sweeps_done", "n_recorded", "record_times"))
    physics = arrays.get("physics_json")
    return {"physics_json": None if physics is None else str(physics),
            "sweeps_done": int(arrays.get("sweeps_done", 0)),
            "n_recorded": int(arrays.get("n_recorded", 0)),
            "record_times": arrays.get("record_times", np.zeros(0, np.int64))}


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

    @raised.setter
    def raised(self, name):
        signals.record(name)


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
        """Run (or resume, or continue with larger budgets) to a finished sim.h5; returns
        its path.

        The output folder is locked for the whole run.  A finished sim.h5 being replaced
        (--force, or continued) stays in place until the new one is complete and renamed
        over it.  The chain checkpoints are kept after the run: a later run whose budgets
        grew continues them (``continuation``).
        """
        from .config import check_what_select_needs
        check_what_select_needs(self.cfg)
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
        return self.path

    def _finished_already(self):
        """A finished file with the same physics is not redone; one whose budgets grew is
        continued from its checkpoints; any other needs --force."""
        if self.force or not self.path.exists():
            return False
        physics = read_physics(self.path)
        if physics is None:
            raise InputError(f"{self.path}: exists but is not a readable mpi_glass sim "
                             f"file (truncated or foreign); move it away, or use --force "
                             f"to overwrite it")
        if first_difference(physics, self.cfg.physics_dict()) is None:
            log(f"{self.path} is complete for this config; nothing to do")
            return True
        problem = continuation.growth_problem(physics, self.cfg.physics_dict())
        if problem is not None:
            key, why = problem
            way = ("" if why.endswith("differs") else
                   f": a lower budget would discard finished work; raise {key} back, or")
            raise InputError(f"{self.path}: exists and was made with a different config "
                             f"({why}){way or ';'} use --force to overwrite")
        if not self.ckpt_dir.is_dir():
            raise InputError(f"{self.path}: continuing it with larger budgets needs its chain "
                             f"checkpoints in {self.ckpt_dir}, which are gone; use --force "
                             f"to recompute it with this config")
        log(f"{self.path}: continuing its chains with the larger budgets of this config "
            f"(the file is replaced once the continued run is complete)")
        return False

    def _prepare_checkpoint_dir(self):
        """Create or reuse the per-chain checkpoint directory (root); its ``run.json`` names
        the config of the last run, for a one-line refusal naming the key that differs (the
        checkpoints themselves carry the physics of their chains)."""
        self.ckpt_dir.mkdir(exist_ok=True)
        manifest = self.ckpt_dir / "run.json"
        physics = self.cfg.physics_dict()
        if manifest.exists() and not self.force:
            old = read_json(manifest, "checkpoint manifest", "use --force to start over")
            problem = (continuation.growth_problem(old, physics, lower_ok=True)
                       if isinstance(old, dict) else ("run.json", "differs"))
            if problem is not None:
                raise InputError(f"{self.ckpt_dir}: checkpoint was made with a different "
                                 f"config ({problem[1]}); rerun with that config or use "
                                 f"--force to start over")
            log(f"resuming from checkpoints in {self.ckpt_dir}")
        self._check_checkpoints()
        write_json_atomic(manifest, physics)
        self._note_off_schedule_budget()

    def _note_off_schedule_budget(self):
        """In the certified mode, say when sweeps past the last check point go unexamined."""
        eq = self.cfg.equilibration
        if not self.cfg.certified_mode or eq.sweeps < 2 * equilibrium.MIN_CHECK_SAMPLES \
                * eq.sample_every:
            return
        above = equilibrium.next_check_point(eq.sweeps, eq.sample_every)
        if eq.sweeps != above // 2:
            log(f"note: check points lie at {equilibrium.MIN_CHECK_SAMPLES * eq.sample_every}"
                f" * 2^k sweeps; a chain not certified at {above // 2} runs on to "
                f"equilibration.sweeps = {eq.sweeps} unexamined, until a larger budget "
                f"continues it (a budget of {above} would examine it there)")

    def _check_checkpoints(self):
        """Every existing chain checkpoint must be this run's chain, not further than the
        budgets allow (root, before any computation).  Without --force a foreign one is
        refused in one line; with --force it is removed and its chain recomputed."""
        for stage in (EQUILIBRATE, TRAJECTORY):
            for item in build_items(self.cfg, self.ensembles, stage):
                path = self._item_path(item)
                problem = self._checkpoint_problem(item, path) if path.exists() else None
                if problem is None:
                    continue
                if not self.force:
                    raise InputError(problem)
                log(f"{problem.split(';')[0]}: recomputing this chain (--force)")
                path.unlink()

    def _checkpoint_problem(self, item, path):
        """One line (with the way out) saying why a checkpoint cannot continue, or None."""
        try:
            header = _checkpoint_header(path)
        except InputError as exc:        # damaged
            return str(exc)
        mismatch = continuation.chain_mismatch(path, header["physics_json"],
                                               self._chain_physics(item))
        if mismatch is not None:
            return (f"{mismatch}; rerun with the config that wrote it, or use --force to "
                    f"recompute this chain")
        done = header["sweeps_done"]
        if done > item.sweeps:
            key = ("equilibration.sweeps" if item.stage == EQUILIBRATE else
                   "dynamics.t_max" if item.ensemble == 0 else "relaxation_scan.t_max")
            return continuation.lowered_budget(path, done, item.sweeps, key)
        if item.stage == TRAJECTORY:
            time = continuation.unrecorded_time(header["record_times"], header["n_recorded"],
                                                done, self.ensembles[item.ensemble].times)
            if time is not None:
                return continuation.unrecorded_message(path, time, done)
        return None

    def _chain_physics(self, item):
        return continuation.chain_physics(self.cfg, item.stage,
                                          self.ensembles[item.ensemble].temperature)

    # -- chains -----------------------------------------------------------------------
    def _run_stage(self, stage, name):
        items = build_items(self.cfg, self.ensembles, stage)
        costs = [it.sweeps * self.n for it in items]
        mine = [items[i] for i in self.dist.my_items(costs)]
        done_before = (sum(self._sweeps_done(it) * self.n for it in items)
                       if self.dist.is_root else 0)
        progress = _StageProgress(self.dist, name, total=sum(costs), done_before=done_before)
        if stage == EQUILIBRATE and self.cfg.certified_mode:
            self._equilibrate_together(items, mine, progress)
        else:
            for item in mine:
                self._run_item(item, progress)
        progress.finish()

    def _equilibrate_together(self, items, mine, progress):
        """The certified mode: the chains of each ensemble advance in lockstep from check
        point to check point (16 sample_every 2^k sweeps); after each, rank 0 judges every
        ensemble there from its chains' records (``equilibrium.certify_together``), and an
        ensemble whose chains are all certified stops, all of them at that check point.  So
        a chain never stops on its own verdict only to be failed by the ensemble's (pooled
        tau_int, R-hat), and since each decision is a function of the records alone, a
        resumed or continued run takes the same decisions again, bit-identically.  Chains
        not certified at the last check point within the budget run on to it."""
        settled = set()
        for target, judged in self._round_targets(items):
            for item in mine:
                if item.ensemble not in settled:
                    self._equilibrate(item, progress, until=min(target, item.sweeps))
            if judged:
                self.dist.barrier()         # every chain of the round is on disk
                settled |= set(self.dist.root_decides(
                    lambda: self._settled_at(items, target, settled)))

    def _round_targets(self, items):
        """(sweeps, judged) of each round: the check points within the budget, then the
        budget itself when it is not one (run on to, not judged)."""
        sample_every = self.cfg.equilibration.sample_every
        budget = max(it.sweeps for it in items)
        points = equilibrium.check_points(budget // sample_every, extendable=True)[1:]
        rounds = [(p * sample_every, True) for p in points]
        if not rounds or rounds[-1][0] < budget:
            rounds.append((budget, False))
        return rounds

    def _settled_at(self, items, target, settled):
        """Rank 0: the ensembles (not yet settled) whose chains are all certified together
        at check point ``target``, each judgement logged."""
        eq = self.cfg.equilibration
        n = target // eq.sample_every
        newly = []
        for ens in self.ensembles:
            if ens.index in settled:
                continue
            chains = [it for it in items if it.ensemble == ens.index]
            states = [ChainState.load(self._item_path(it)) for it in chains]
            certs = equilibrium.certify_together([(st.energy, st.overlap) for st in states],
                                                 n, eq)
            ok = sum(c.certified for c in certs)
            rhat = ("" if math.isnan(certs[0].rhat) else
                    f"; R-hat {certs[0].rhat:.3f} (limit {certs[0].rhat_limit:.3f})")
            stop = ok == len(certs)
            log(f"T = {ens.temperature:g}, check point {target} sweeps: {ok} of {len(certs)} "
                f"configurations certified together{rhat}"
                + ("; they stop here" if stop else "; all go on"))
            if stop:
                newly.append(ens.index)
                beyond = [it.c for it, st in zip(chains, states) if st.sweeps_done > target]
                if beyond:
                    log(f"note: configurations {beyond} ran past this check point under an "
                        f"earlier config (fewer configurations); they are kept as they are")
        return newly

    def _sweeps_done(self, item):
        path = self._item_path(item)
        if not path.exists():
            return 0
        return min(_checkpoint_header(path)["sweeps_done"], item.sweeps)

    def _item_path(self, item):
        return self.ckpt_dir / item.file_name

    def _run_item(self, item, progress):
        if item.stage == EQUILIBRATE:
            self._equilibrate(item, progress, until=item.sweeps)
            return
        state = self._load_or_start(item)
        if state.done:
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
                                  self.cfg.mc.delta_max, model=self.cfg.model)
            state.mc_counts += np.array(stats[:4], dtype=np.int64)
            state.sweeps_done = target
            if k < len(points) and target == points[k]:
                self._record(item, state, k)
                state.n_recorded = k + 1
            progress.advance((target - done) * self.n)
            last_save = self._maybe_checkpoint(item, state, last_save)
        state.done = True
        state.save(self._item_path(item))

    def _equilibrate(self, item, progress, until):
        """Advance an equilibration chain to ``until`` sweeps (at most its budget),
        checkpointing on the way; a chain already there is left alone.  Where it stops in
        the certified mode is its ensemble's decision (``_equilibrate_together``)."""
        state = self._load_or_start(item)
        if state.sweeps_done >= until:
            return
        eq = self.cfg.equilibration
        chain = equilibrium.EquilibrationChain(
            state, box=self.box, temperature=self.ensembles[item.ensemble].temperature,
            delta_max=self.cfg.mc.delta_max, swap_probability=eq.swap_probability,
            sweeps=item.sweeps, sample_every=eq.sample_every,
            threshold=eq.certificate_threshold, extendable=self.cfg.certified_mode,
            sigmas=eq.certificate_sigmas, min_effective=eq.certificate_min_effective,
            model=self.cfg.model)
        chunk = max(1, CHUNK_TRIALS // self.n)
        last_save = (state.sweeps_done, time.monotonic())
        while state.sweeps_done < until:
            progress.advance(chain.advance(min(chunk, until - state.sweeps_done)) * self.n)
            last_save = self._maybe_checkpoint(item, state, last_save)
        state.save(self._item_path(item))

    def _check_certificates(self):
        """After equilibration (root): log every certificate, the chains of each ensemble
        judged together (``equilibrium.ensemble_certificates``); in the certified mode an
        uncertified configuration stops the run (unless require_certificate = false), its
        chain kept for a larger budget to continue."""
        eq = self.cfg.equilibration
        failed = []
        items = build_items(self.cfg, self.ensembles, EQUILIBRATE)
        for ens in self.ensembles:
            mine = [it for it in items if it.ensemble == ens.index]
            states = [ChainState.load(self._item_path(it)) for it in mine]
            for item, cert in zip(mine, equilibrium.ensemble_certificates(states, eq)):
                what = f"configuration {item.c} at T = {ens.temperature:g}"
                log(f"{what}: " + (cert.summary() if cert else "too short to certify"))
                if not (cert and cert.certified):
                    failed.append((what, cert))
        if failed and self.cfg.certified_mode and eq.require_certificate:
            raise InputError(not_certified_message(failed, self.cfg, self.ckpt_dir))

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
        state = self._continued(item, path) if path.exists() else None
        return state if state is not None else self._start(item)

    def _continued(self, item, path):
        """The checkpointed chain, fitted to this run's budgets (saved if that changed it);
        None when it must start over: a trajectory whose configuration's equilibration
        has since gone on (a raised budget), or, with --force, a damaged file."""
        try:
            state = ChainState.load(path)
        except InputError:
            if not self.force:
                raise
            return None
        if item.stage == EQUILIBRATE:
            n_samples = item.sweeps // self.cfg.equilibration.sample_every
            changed = continuation.resize_samples(state, n_samples)
        else:
            eq = ChainState.load(self._item_path(self._equilibration_of(item)))
            if (state.start.tobytes() != eq.positions.tobytes()
                    or state.species.tobytes() != eq.species.tobytes()):
                log(f"{path}: its configuration's equilibration has gone on since; this "
                    f"trajectory starts over from the new configuration")
                return None
            changed = continuation.remap_records(state, self.ensembles[item.ensemble].times,
                                                 path)     # its times were checked at start
        done = state.sweeps_done >= item.sweeps
        if changed or done != state.done:
            state.done = done
            state.save(path)
        return state

    @staticmethod
    def _equilibration_of(item):
        return Item(EQUILIBRATE, item.ensemble, item.c, -1, 0)

    def _start(self, item):
        """A new chain: an equilibration from a random start, or a trajectory from its
        configuration's equilibrated end."""
        physics = continuation.physics_text(self._chain_physics(item))
        if item.stage == EQUILIBRATE:
            rng = mc.new_rng_state(item.seed_sequence(self.cfg.seed))
            species = species_array(self.counts)
            positions = mc.initial_configuration(self.counts, self.box, rng, self.cfg.model)
            n_samples = item.sweeps // self.cfg.equilibration.sample_every
            extra = equilibrium.new_chain_records(positions, species, n_samples, self.cfg.model)
        else:
            eq = ChainState.load(self._item_path(self._equilibration_of(item)))
            rng = mc.new_rng_state(item.seed_sequence(self.cfg.seed))
            positions, species = eq.positions.copy(), eq.species.copy()
            times = self.ensembles[item.ensemble].times.astype(np.int64)
            extra = dict(start=positions.copy(), record_times=times,
                         records=np.zeros((times.size, self.n, 2), dtype=np.float32))
        return ChainState(positions=positions, images=np.zeros((self.n, 2), dtype=np.int64),
                          species=species, rng=rng, physics_json=physics, **extra)

    # -- the file -------------------------------------------------------------------
    def _assemble(self):
        from .simfile import write_sim_file
        write_sim_file(self.path, self.cfg, self.ensembles, self.ckpt_dir, self.dist,
                       self.timings)


def not_certified_message(failed, cfg, ckpt_dir):
    """One line for a budget spent uncertified: each configuration's certificate (its
    ``summary``, so every statistic the certificate has is named), and the key to raise.

    ``failed``: [(what, Certificate or None)], None for a chain too short to examine.
    """
    eq = cfg.equilibration
    verdicts = "; ".join(f"{what}: {cert.summary() if cert else 'too short to certify'}"
                         for what, cert in failed)
    return (f"{len(failed)} configuration{'s' * (len(failed) > 1)} not certified within "
            f"equilibration.sweeps = {eq.sweeps} ({verdicts}); raise equilibration.sweeps to "
            f"{equilibrium.next_check_point(eq.sweeps, eq.sample_every)} (the next check "
            f"point) and rerun the same command without --force: every chain continues from "
            f"{ckpt_dir}; or set equilibration.require_certificate = false to keep them "
            f"flagged")


class _StageProgress:
    """Run-wide progress of one stage on rank 0's bar.

    Ranks own different numbers of chains, so no collective may run inside the MC loop; the
    counts travel as non-blocking point-to-point messages (``parallel.ProgressCounter``) and
    rank 0 adds them up, without any file.
    """

    def __init__(self, dist, label, total, done_before, unit="trials"):
        self.counter = dist.progress_counter()
        self.done_before = done_before
        self.bar = Progress(label, total, unit=unit, enabled=dist.is_root,
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
