"""Budgets that extend (issue 16) and checkpoints that carry their physics (issue 17).

A raised equilibration budget or t_max continues every chain from its checkpoint, and the
result is bit-identical to a run started with the larger budget; a lowered one, a checkpoint
of other physics or of the old check-point schedule is refused in one line; an interrupted
--force run resumes.  Each comparison is with a fresh run of the larger config, and the
sweeps actually run are counted, so a recomputation from scratch cannot pass for a
continuation.
"""
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import (assert_identical_files, assert_on_every_rank, cli, shared_folder,
                      write_config)
from mpi_glass import continuation, equilibrium, mc
from mpi_glass.config import load_config
from mpi_glass.errors import InputError, Interrupted
from mpi_glass.parallel import Distributor, serial
from mpi_glass.schema import ChainState
from mpi_glass.simulate import Simulation

CHECKPOINTS = "sim.h5.checkpoint"


def _config(folder, eq_sweeps, t_max=100, **replace):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return load_config(write_config(folder, eq_sweeps=eq_sweeps, t_max=t_max, **replace))


def _run(cfg, out, force=False, dist=None):
    return Simulation(cfg, out, dist or serial(), force=force).run()


class SweepCounter:
    """Counts the MC sweeps run, by kind: 'eq' (with swaps) and 'tr' (plain MC)."""

    def __init__(self, monkeypatch):
        self.sweeps = {"eq": 0, "tr": 0}
        real = mc.run_sweeps

        def counting(*args, **kwargs):
            self.sweeps["eq" if len(args) == 9 else "tr"] += int(args[5])
            return real(*args, **kwargs)

        monkeypatch.setattr(mc, "run_sweeps", counting)


def _sweeps_done(out, prefix):
    return {path.name: ChainState.load(path).sweeps_done
            for path in sorted((Path(out) / CHECKPOINTS).glob(f"{prefix}_*.npz"))}


def _interrupted_after_the_chains(cfg, out, monkeypatch, force=False):
    """Run every chain to its end, then stop as a signal would, before sim.h5 is written."""
    def interrupted(self):
        raise Interrupted("SIGTERM")
    with monkeypatch.context() as patch:
        patch.setattr(Simulation, "_assemble", interrupted)
        with pytest.raises(Interrupted):
            _run(cfg, out, force=force)


def _one_line(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- the schedule -------------------------------------------------------------------------
def test_certified_check_points_do_not_depend_on_the_budget():
    assert equilibrium.check_points(1000, extendable=True) == [16, 32, 64, 128, 256, 512]
    for small, large in ((20, 1000), (100, 128), (513, 4000)):
        few = equilibrium.check_points(small, extendable=True)
        assert equilibrium.check_points(large, extendable=True)[:len(few)] == few
    assert equilibrium.check_points(1000) == [16, 32, 63, 125, 250, 500, 1000]  # fixed length
    assert equilibrium.next_check_point(700, sample_every=10) == 1280
    assert equilibrium.next_check_point(1280, sample_every=10) == 2560


def test_growth_rules():
    old = {"seed": 1, "equilibration": {"until": "certified", "sweeps": 700},
           "dynamics": {"t_max": 100, "extra_times": [50], "configurations": 3}}
    grown = json.loads(json.dumps(old))
    grown["equilibration"]["sweeps"] = 5000
    grown["dynamics"].update(t_max=400, extra_times=(50, 900), configurations=4)  # as config
    assert continuation.growth_problem(old, grown) is None
    assert continuation.growth_problem(grown, old)[0] == "dynamics.configurations"
    assert continuation.growth_problem(grown, old, lower_ok=True) is None
    fixed = {**old, "equilibration": {"until": "sweeps", "sweeps": 700}}
    longer = {**old, "equilibration": {"until": "sweeps", "sweeps": 900}}
    assert continuation.growth_problem(fixed, longer) == ("equilibration.sweeps",
                                                          "equilibration.sweeps differs")
    assert continuation.growth_problem(old, {**old, "seed": 2}) == ("seed", "seed differs")


# -- 1. a raised budget continues every chain ----------------------------------------------
def test_raised_budget_continues_every_chain_bit_identically(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(_config(tmp_path / "b1", 10400), out)     # check points 5120, 10240 (20480)
    before = _sweeps_done(out, "eq")
    larger = _config(tmp_path / "b2", 20800)
    counter = SweepCounter(monkeypatch)
    continued = _run(larger, out)                    # no --force: it continues
    after = _sweeps_done(out, "eq")
    grew = [name for name in before if after[name] > before[name]]
    assert grew and len(grew) < len(before), "want chains both certified and continued"
    assert counter.sweeps["eq"] == sum(after[n] - before[n] for n in before)
    monkeypatch.undo()
    assert_identical_files(_run(larger, tmp_path / "fresh"), continued)


def test_the_chains_of_an_ensemble_stop_together_where_they_are_certified_together(tmp_path):
    """The certified mode's stop is the ensemble's: every chain of an ensemble ends at the
    first check point where all are certified *together* (pooled tau_int, R-hat), or at the
    budget, judged here again from the kept records at every check point.  Some chain was
    certified on its own at an earlier check point: under a per-chain stop it would have
    stopped there, and the ensemble's verdict could then never send it on."""
    budget = 20480
    cfg = _config(tmp_path / "c", budget, **{"seed = 11": "seed = 12",   # a seed that shows it
                                             "temperature = 0.8": "temperature = 1.5",
                                             "temperatures = [1.5]": "temperatures = [1.2]"})
    out = tmp_path / "out"
    _run(cfg, out)
    eq, every = cfg.equilibration, cfg.equilibration.sample_every
    settled = alone_earlier = 0
    for ensemble, configurations in ((0, 3), (1, 2)):
        states = [ChainState.load(out / CHECKPOINTS / f"eq_e{ensemble}_c{c}.npz")
                  for c in range(configurations)]
        stops = {st.sweeps_done for st in states}
        assert len(stops) == 1, f"ensemble {ensemble}: chains stopped apart at {stops}"
        end = stops.pop() // every
        records = [(st.energy, st.overlap) for st in states]
        together = [k for k in equilibrium.check_points(end, extendable=True)[1:]
                    if all(c.certified for c in equilibrium.certify_together(records, k, eq))]
        assert together in ([end], []) and (together or end == budget // every), together
        settled += bool(together)
        for st in states:
            alone_earlier += any(
                equilibrium.certify(st.energy[:k], st.overlap[:k], every, k // 2,
                                    eq.certificate_threshold, eq.certificate_sigmas,
                                    eq.certificate_min_effective).certified
                for k in equilibrium.check_points(end, extendable=True)[1:-1])
    assert settled and alone_earlier, "want an ensemble stopped early, a chain certified alone"


def test_raised_t_max_and_extra_times_continue_every_trajectory(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(_config(tmp_path / "a", 700, t_max=100), out)
    longer = _config(tmp_path / "b", 700, t_max=600,     # extra_times lie within t_max
                     **{"per_decade = 4": "per_decade = 4\nextra_times = [450]"})
    counter = SweepCounter(monkeypatch)
    continued = _run(longer, out)
    assert counter.sweeps == {"eq": 0, "tr": 3 * 2 * (600 - 100)}   # C x R trajectories
    monkeypatch.undo()
    assert_identical_files(_run(longer, tmp_path / "fresh"), continued)


# -- 2. a budget spent uncertified --------------------------------------------------------
def test_budget_spent_uncertified_exits_2_in_one_line_and_is_continued(tmp_path):
    strict = {"require_certificate = false": "require_certificate = true"}
    config = write_config(tmp_path, eq_sweeps=700, **strict)
    out = tmp_path / "out"
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert [entry for entry in proc.stderr.splitlines() if "error:" in entry] == [line]
    for fragment in ("configuration 0 at T = 0.8", "drift", "2.5 sigma", "effective samples",
                     "q = ",
                     "equilibration.sweeps = 700", "raise equilibration.sweeps to 1280",
                     "without --force", "require_certificate = false"):
        assert fragment in line, line
    assert len(list((out / CHECKPOINTS).glob("eq_*.npz"))) == 5     # every chain kept
    larger = _config(tmp_path / "b2", 1500)
    cli("simulate", "--config", tmp_path / "b2" / "tiny.toml", "--out", out)
    assert_identical_files(_run(larger, tmp_path / "fresh"), out / "sim.h5")


# -- 3. bad input: lowered budgets, old and foreign checkpoints ------------------------------
def test_lowered_budget_is_refused_naming_both_numbers(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(_config(tmp_path / "a", 1500), out)
    ran = max(_sweeps_done(out, "eq").values())
    assert ran == 1500
    lower = _config(tmp_path / "b", 700)
    with pytest.raises(InputError) as finished:
        _run(lower, out)
    _one_line(finished, "equilibration.sweeps = 700 is below the 1500", "--force")
    (out / "sim.h5").unlink()                  # as if the 1500 run had been interrupted
    with pytest.raises(InputError) as interrupted:
        _run(lower, out)
    _one_line(interrupted, "already ran 1500 sweeps", "allows 700", "--force")
    with pytest.raises(InputError) as trajectories:
        _run(_config(tmp_path / "c", 1500, t_max=50), out)
    _one_line(trajectories, "already ran 100 sweeps", "dynamics.t_max now allows 50")
    assert not (out / "sim.h5").exists()


def test_checkpoint_of_the_old_schedule_is_refused_then_recomputed_with_force(tmp_path):
    cfg, out = _config(tmp_path, 700), tmp_path / "out"
    _run(cfg, out)
    (out / "sim.h5").unlink()
    old = out / CHECKPOINTS / "eq_e0_c1.npz"      # as written before chains had physics
    with np.load(old) as data:
        arrays = {key: data[key] for key in data.files if key != "physics_json"}
    np.savez(old, **arrays)
    with pytest.raises(InputError) as refused:
        _run(cfg, out)
    _one_line(refused, str(old), "earlier mpi_glass", "--force")
    recomputed = _run(cfg, out, force=True)
    assert_identical_files(_run(cfg, tmp_path / "fresh"), recomputed)


def test_checkpoint_of_another_temperature_is_refused_without_run_json(tmp_path, monkeypatch):
    """Issue 17, E3-E5: the chains themselves, not run.json, guard against a changed config."""
    out = tmp_path / "out"
    _interrupted_after_the_chains(_config(tmp_path / "a", 700), out, monkeypatch)
    (out / CHECKPOINTS / "run.json").unlink()
    hotter = write_config(tmp_path / "a", eq_sweeps=700,
                          **{"temperature = 0.8": "temperature = 0.9"})
    proc = cli("simulate", "--config", hotter, "--out", out, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "temperature is 0.8 there, 0.9 in the config" in proc.stderr
    assert "--force" in proc.stderr and not (out / "sim.h5").exists()


def test_fixed_length_changed_without_run_json_is_refused(tmp_path, monkeypatch):
    fixed = {'until = "certified"': 'until = "sweeps"'}
    out = tmp_path / "out"
    _interrupted_after_the_chains(_config(tmp_path / "a", 400, **fixed), out, monkeypatch)
    (out / CHECKPOINTS / "run.json").unlink()
    with pytest.raises(InputError) as refused:
        _run(_config(tmp_path / "b", 800, **fixed), out)
    _one_line(refused, "eq_e0_c0.npz", "equilibration.length is 400 there, 800 in the config",
              "--force")


def test_foreign_checkpoint_never_mixes_into_a_continued_run(tmp_path):
    """Checkpoints are kept after a finished run (for extension): a foreign one planted among
    them is refused, and --force recomputes that chain alone."""
    out = tmp_path / "out"
    _run(_config(tmp_path / "a", 700), out)
    assert (out / CHECKPOINTS / "eq_e0_c0.npz").exists(), "checkpoints are kept"
    other = tmp_path / "other"
    _run(_config(tmp_path / "b", 700, **{"temperature = 0.8": "temperature = 0.9"}), other)
    os.replace(other / CHECKPOINTS / "eq_e0_c2.npz", out / CHECKPOINTS / "eq_e0_c2.npz")
    longer = _config(tmp_path / "c", 700, t_max=300)
    with pytest.raises(InputError) as refused:
        _run(longer, out)
    _one_line(refused, "eq_e0_c2.npz: checkpoint of another run", "temperature")
    continued = _run(longer, out, force=True)
    assert_identical_files(_run(longer, tmp_path / "fresh"), continued)


# -- 4. an interrupted --force run resumes (issue 17, I11) ---------------------------------
def test_interrupted_force_run_resumes_when_rerun_with_force(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(_config(tmp_path / "a", 700), out)
    other = _config(tmp_path / "b", 700, **{"temperature = 0.8": "temperature = 0.9"})
    _interrupted_after_the_chains(other, out, monkeypatch, force=True)
    with h5py.File(out / "sim.h5") as f:             # the old file stays until replaced
        assert json.loads(f.attrs["physics_json"])["system"]["temperature"] == 0.8
    counter = SweepCounter(monkeypatch)
    resumed = _run(other, out, force=True)
    assert counter.sweeps == {"eq": 0, "tr": 0}, "the rerun started over"
    monkeypatch.undo()
    assert_identical_files(_run(other, tmp_path / "fresh"), resumed)


# -- under mpiexec -n 2 ---------------------------------------------------------------------
@pytest.mark.mpi(min_size=2)
def test_raised_budget_continues_under_two_ranks():
    dist = Distributor()
    folder = shared_folder(dist)
    if dist.is_root:
        for name, sweeps in (("b1", 700), ("b2", 1500)):
            (folder / name).mkdir()
            write_config(folder / name, eq_sweeps=sweeps, t_max=100)
    dist.barrier()
    small, large = (load_config(folder / name / "tiny.toml") for name in ("b1", "b2"))
    _run(small, folder / "out", dist=dist)
    continued = _run(large, folder / "out", dist=dist)

    def check():
        assert_identical_files(_run(large, folder / "serial"), continued)

    assert_on_every_rank(dist, check)


def test_recording_time_inside_a_trajectory_already_run_is_refused(tmp_path):
    out = tmp_path / "out"
    _run(_config(tmp_path / "a", 700, t_max=100), out)   # grid 1, 2, 3, 6, 10, 18, 32, 56, 100
    inside = _config(tmp_path / "b", 700, t_max=100,
                     **{"per_decade = 4": "per_decade = 4\nextra_times = [50]"})
    with pytest.raises(InputError) as refused:
        _run(inside, out)
    _one_line(refused, "tr_e0_c0_r0.npz: recording time 50 lies inside the 100 sweeps",
              "extra_times", "--force")
    recomputed = _run(inside, out, force=True)
    assert_identical_files(_run(inside, tmp_path / "fresh"), recomputed)


def test_interrupted_extension_resumes_bit_identically(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(_config(tmp_path / "a", 700), out)
    larger = _config(tmp_path / "b", 1500)
    simulation = Simulation(larger, out, serial())
    real, calls = mc.run_sweeps, []

    def signalled_midway(*args, **kwargs):      # SIGTERM while a chain is being extended
        calls.append(1)
        if len(calls) == 20:
            simulation.stop.raised = "SIGTERM"
        return real(*args, **kwargs)

    monkeypatch.setattr(mc, "run_sweeps", signalled_midway)
    with pytest.raises(Interrupted):
        simulation.run()
    monkeypatch.undo()
    with h5py.File(out / "sim.h5") as f:             # the finished file is untouched
        assert json.loads(f.attrs["physics_json"])["equilibration"]["sweeps"] == 700
    extended = sorted(_sweeps_done(out, "eq").values())
    assert 700 < extended[-1] < 1500, extended
    resumed = _run(larger, out)
    assert_identical_files(_run(larger, tmp_path / "fresh"), resumed)
