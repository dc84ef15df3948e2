"""simulate end to end: the file, rank invariance, restart after SIGKILL/SIGTERM, bad input."""
import os
import random
import signal
import time

import h5py
import numpy as np
import pytest

from conftest import (assert_identical_files, assert_on_every_rank, cli, shared_folder, start_cli,
                      stop_run, write_config)
from mpi_glass.config import load_config
from mpi_glass.errors import InputError
from mpi_glass.parallel import Distributor, serial
from mpi_glass.schema import SIM_FIELDS
from mpi_glass.simulate import Simulation


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted serial run of the tiny config, shared by the comparisons."""
    folder = tmp_path_factory.mktemp("reference")
    cfg = load_config(write_config(folder))
    return cfg, Simulation(cfg, folder / "out", serial()).run()


def test_file_layout_and_physics(reference):
    cfg, path = reference
    C, R, N = 3, 2, cfg.system.n
    with h5py.File(path) as f:
        times = f["dynamics/times"][()]
        assert f["dynamics/displacements"].shape == (C, R, len(times), N, 2)
        assert f["propensity/p"].shape == (C, len(times), N)
        species = f["configurations/species"][()]
        for c in range(C):   # swaps conserve the composition
            assert list(np.bincount(species[c], minlength=3)) == list(cfg.counts)
        fs = f["dynamics/fs_cr"][()]
        assert np.all(fs <= 1.0) and np.all(np.diff(fs.mean(axis=0)) < 0.05)
        assert f.attrs["io_path"] == "root-gather" and f.attrs["config_toml"] == cfg.source
        assert f["configurations/certificate/certified"].shape == (C,)
        assert f["relaxation_scan/fs_cr"].shape[:2] == (1, 2)
        pos = f["configurations/positions"][()]
        assert np.all((pos >= 0) & (pos < f.attrs["box"][0]))
        found = {}   # the real file holds exactly the declared datasets, self-describing
        f.visititems(lambda name, obj: found.__setitem__("/" + name, dict(obj.attrs))
                     if isinstance(obj, h5py.Dataset) else None)
    assert sorted(found) == sorted(spec.path for name, spec in SIM_FIELDS.items()
                                   if not name.startswith("import_"))   # import only
    with h5py.File(path) as f:
        assert f.attrs["time_unit"] == "MC sweeps" and f.attrs["time_per_step"] == 1.0
    assert all(attrs["units"] and attrs["description"] for attrs in found.values())


def test_rerun_is_not_redone_and_foreign_config_is_refused(reference, tmp_path):
    cfg, path = reference
    before = path.stat().st_mtime_ns
    Simulation(cfg, path.parent, serial()).run()
    assert path.stat().st_mtime_ns == before
    other = load_config(write_config(tmp_path, t_max=100))
    with pytest.raises(InputError, match="different config .*dynamics.t_max.*--force"):
        Simulation(other, path.parent, serial()).run()


def test_two_ranks_equal_serial(reference, tmp_path):
    _, path = reference
    cli("simulate", "--config", write_config(tmp_path), "--out", tmp_path / "out", ranks=2)
    assert_identical_files(path, tmp_path / "out" / "sim.h5")


def _interrupt_then_resume(tmp_path, sig, ranks, seed):
    """Start a longer run, hit it with ``sig`` mid-way, rerun, return the final file."""
    config = write_config(tmp_path, eq_sweeps=1500, t_max=1500)
    out = tmp_path / "out"
    rng = random.Random(seed)
    for attempt in range(6):
        proc = start_cli("simulate", "--config", config, "--out", out, ranks=ranks)
        checkpoints = out / "sim.h5.checkpoint"
        deadline = time.monotonic() + 60
        while not list(checkpoints.glob("*.npz")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5) / (attempt + 1))
        if proc.poll() is None:
            code = stop_run(proc, sig)
            if not (out / "sim.h5").exists():
                break
        proc.wait()
        (out / "sim.h5").unlink(missing_ok=True)
    else:
        pytest.fail("the run always finished before it could be interrupted")
    assert checkpoints.exists(), "nothing was checkpointed before the interruption"
    cli("simulate", "--config", config, "--out", out, ranks=ranks)
    return out / "sim.h5", code


def _uninterrupted(tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    cfg = load_config(write_config(folder, eq_sweeps=1500, t_max=1500))
    return Simulation(cfg, folder / "out", serial()).run()


def test_sigkill_under_two_ranks_resumes_bit_identical(tmp_path):
    resumed, _ = _interrupt_then_resume(tmp_path, signal.SIGKILL, ranks=2, seed=1)
    assert_identical_files(_uninterrupted(tmp_path), resumed)


def test_sigterm_checkpoints_and_resumes_bit_identical(tmp_path):
    resumed, code = _interrupt_then_resume(tmp_path, signal.SIGTERM, ranks=None, seed=2)
    assert code == 75, "SIGTERM should checkpoint and exit with EX_TEMPFAIL"
    assert_identical_files(_uninterrupted(tmp_path), resumed)


def test_frozen_system_has_zero_p_and_unit_q(tmp_path):
    config = write_config(tmp_path, **{"[equilibration]": "[mc]\ndelta_max = 1e-12\n"
                                                          "[equilibration]"})
    cli("simulate", "--config", config, "--out", tmp_path / "out")
    with h5py.File(tmp_path / "out" / "sim.h5") as f:
        assert np.abs(f["propensity/p"][()]).max() < 1e-9
        assert np.all(f["propensity/q"][()] == 1.0)
        assert np.allclose(f["dynamics/fs_cr"][()], 1.0)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    config = write_config(tmp_path, eq_sweeps=1500, t_max=1500)
    out = tmp_path / "out"
    (out / "sim.h5.checkpoint").mkdir(parents=True)
    (out / "sim.h5.checkpoint" / "run.json").write_text('{"seed": 1}')
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "different config" in proc.stderr
    assert not (out / "sim.h5").exists()


@pytest.mark.parametrize("replace, message", [
    ({"replicas = 2": "replicas = 0"}, "dynamics.replicas: must be >= 1"),
    ({"configurations = 3": "configurations = 0"}, "dynamics.configurations: must be >= 1"),
    ({"per_decade = 4": "per_decade = 4\nextra_times = [90, 30]"}, "increasing"),
])
def test_bad_input_one_line_exit_2(tmp_path, replace, message):
    config = write_config(tmp_path, **replace)
    proc = cli("simulate", "--config", config, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out" / "sim.h5").exists()


def test_unwritable_output_directory(tmp_path, tiny_config):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = cli("simulate", "--config", tiny_config, "--out", blocker / "sub", check=False)
    assert proc.returncode == 2 and "cannot create output directory" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


# -- under mpiexec -n 2: both ranks in this process pair ------------------------------------
@pytest.mark.mpi(min_size=2)
def test_collective_and_root_gather_paths_equal_serial():
    dist = Distributor()
    folder = shared_folder(dist)
    if dist.is_root:
        write_config(folder)
    dist.barrier()
    cfg = load_config(folder / "tiny.toml")
    parallel_path = Simulation(cfg, folder / "parallel", dist).run()
    os.environ["MPI_GLASS_NO_MPIO"] = "1"
    try:
        gathered_path = Simulation(cfg, folder / "gathered", dist).run()
    finally:
        del os.environ["MPI_GLASS_NO_MPIO"]

    def check():
        serial_path = Simulation(cfg, folder / "serial", serial()).run()
        assert_identical_files(serial_path, parallel_path)
        assert_identical_files(serial_path, gathered_path)
        with h5py.File(parallel_path) as f:
            used = f.attrs["io_path"]
        if os.environ.get("MPI_GLASS_REQUIRE_MPIO") == "1":
            assert used == "mpio", "CI builds an MPI h5py: the collective path must be used"
        assert used == ("mpio" if h5py.get_config().mpi else "root-gather")

    assert_on_every_rank(dist, check)
