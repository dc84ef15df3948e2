"""Data safety: --force never loses the old output, the folder lock, broken launches,
select against a foreign sim.h5, memory estimates, features-only upgrades, the one-line
messages for damaged files, and plain run names."""
import errno
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import h5py
import pytest

from conftest import cli, shared_folder, start_cli, stop_run, write_config
from mpi_glass.config import load_config, parse_config
from mpi_glass.errors import InputError
from mpi_glass.memory import check_fits, simulate_parts
from mpi_glass.parallel import Distributor, launcher_processes
from mpi_glass.progress import LOGGER, Progress, setup_logging
from mpi_glass.outdir import LOCK_NAME, FolderLock, commit_staged, folder_lock, recover_staged

#: select kept small: 12 features, d up to 2, 5 random draws, the propensity at 50 sweeps.


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the run to get going")
        time.sleep(0.05)


def _one_line_error(proc, *fragments):
    """Exit status 2 and one error line (the last) holding every fragment."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and proc.stderr.strip().endswith(lines[0]), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _long_running_simulate(tmp_path, out, *extra):
    """A simulate of a few seconds, started in its own session, once it has checkpointed."""
    config = write_config(tmp_path, eq_sweeps=3000, t_max=3000)
    proc = start_cli("simulate", "--config", config, "--out", out, *extra)
    _wait_for(lambda: list((out / "sim.h5.checkpoint").glob("*.npz")) or proc.poll() is not None)
    assert proc.poll() is None, "the run finished before it could be caught running"
    return proc


def _copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


# -- 1. --force keeps the finished output until the new one replaces it ---------------------
def test_killed_force_run_leaves_the_old_sim_file(finished, tmp_path):
    _, source = finished
    out = _copy(source, tmp_path)
    before = (out / "sim.h5").read_bytes()
    proc = _long_running_simulate(tmp_path, out, "--force")
    stop_run(proc, signal.SIGKILL)
    assert (out / "sim.h5").read_bytes() == before


def test_force_run_replaces_the_file_when_done(finished, tmp_path):
    config, source = finished
    out = _copy(source, tmp_path)
    other = write_config(tmp_path, t_max=100)
    cli("simulate", "--config", other, "--out", out, "--force")
    with h5py.File(out / "sim.h5") as f:
        assert json.loads(f.attrs["physics_json"])["dynamics"]["t_max"] == 100
    assert not (out / LOCK_NAME).exists()
    assert (out / "sim.h5.checkpoint" / "eq_e0_c0.npz").exists(), "kept for larger budgets"


# -- 2. the lock of the output folder -----------------------------------------------------
def test_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    first = FolderLock(tmp_path, "first")
    assert first.acquire() is None
    with pytest.raises(InputError, match=rf"{tmp_path} is in use by pid {os.getpid()} on "
                                         rf"{socket.gethostname()} since .*\(first\)"):
        FolderLock(tmp_path, "second").acquire()
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    second = FolderLock(tmp_path, "second")
    assert second.acquire() is None
    second.release()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    record = dict(host=socket.gethostname(), pid=_dead_pid(), started="yesterday")
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    lock = FolderLock(tmp_path, "me")
    note = lock.acquire()
    assert f"taking over the lock of pid {record['pid']}" in note
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_recorded_on_another_host_is_not_taken_over(tmp_path):
    record = dict(host="elsewhere.example", pid=1, started="today")
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with pytest.raises(InputError, match="in use by pid 1 on elsewhere.example since today"):
        FolderLock(tmp_path, "me").acquire()


def test_lock_of_an_earlier_run_of_a_requeued_slurm_job_is_taken_over(tmp_path, monkeypatch):
    record = dict(host="node17.example", pid=4242, started="before the requeue",
                  slurm_job=["9001", "0"])
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")        # the same run: still refused
    with pytest.raises(InputError, match="in use by pid 4242 on node17.example"):
        FolderLock(tmp_path, "me").acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "9002")            # another job: refused
    with pytest.raises(InputError, match="in use by pid 4242 on node17.example"):
        FolderLock(tmp_path, "me").acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")        # requeued: the earlier run is over
    lock = FolderLock(tmp_path, "me")
    assert "taking over the lock of pid 4242 on node17.example" in lock.acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["slurm_job"] == ["9001", "1"]
    lock.release()


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = FolderLock(tmp_path, "live")
    assert lock.acquire() is None          # no record yet: taken
    with pytest.raises(InputError, match=f"in use by pid {os.getpid()}"):
        FolderLock(tmp_path, "second").acquire()      # our own pid is alive
    lock.release()
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(host=socket.gethostname(), pid=dead)))
    stale = FolderLock(tmp_path, "after")
    assert f"pid {dead}" in stale.acquire()
    stale.release()


def test_second_simulate_on_a_busy_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    proc = _long_running_simulate(tmp_path, out)
    try:
        second = cli("simulate", "--config", tmp_path / "tiny.toml", "--out", out, check=False)
    finally:
        stop_run(proc, signal.SIGKILL)
    _one_line_error(second, f"{out} is in use by pid {proc.pid} on {socket.gethostname()} since")


def test_simulate_takes_over_the_lock_of_a_killed_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pid = _dead_pid()
    (out / LOCK_NAME).write_text(json.dumps(dict(host=socket.gethostname(), pid=pid,
                                                 started="earlier")))
    proc = cli("simulate", "--config", write_config(tmp_path), "--out", out)
    assert f"taking over the lock of pid {pid}" in proc.stderr
    assert (out / "sim.h5").exists() and not (out / LOCK_NAME).exists()


@pytest.mark.mpi(min_size=2)
def test_only_rank_0_locks_and_every_rank_hears_a_refusal():
    dist = Distributor()
    folder = shared_folder(dist, prefix="mpi_glass_lock_")
    refused = False
    with folder_lock(folder, dist, "outer"):
        try:
            with folder_lock(folder, dist, "inner"):
                pass
        except InputError as exc:
            refused = "is in use by pid" in str(exc)
    assert refused          # on every rank, before any further collective
    dist.barrier()
    assert not (folder / LOCK_NAME).exists()


# -- 3. started by a launcher as one of several, without working MPI ---------------------
def test_launcher_variables_are_recognised():
    assert launcher_processes({}) == 1
    assert launcher_processes({"PMI_SIZE": "1", "PMI_RANK": "0"}) == 1
    assert launcher_processes({"PMI_SIZE": "4"}) == 4
    assert launcher_processes({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert launcher_processes({"PMIX_RANK": "5"}) == 6
    assert launcher_processes({"MPI_LOCALNRANKS": "2"}) == 2


def test_mpi4py_of_another_mpi_than_the_launcher_is_refused(monkeypatch):
    import types
    world = types.SimpleNamespace(Get_size=lambda: 1, Get_rank=lambda: 0)
    fake = types.ModuleType("mpi4py")
    fake.MPI = types.SimpleNamespace(COMM_WORLD=world)
    monkeypatch.setitem(sys.modules, "mpi4py", fake)
    monkeypatch.delenv("MPI_GLASS_SERIAL", raising=False)
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(InputError, match="one of 4 processes, but MPI sees one"):
        Distributor()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert Distributor().size == 1


def test_mpiexec_with_mpi_disabled_refuses_on_every_rank(tmp_path):
    out = tmp_path / "out"
    proc = cli("simulate", "--config", write_config(tmp_path), "--out", out, ranks=2,
               env={"MPI_GLASS_SERIAL": "1"}, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 2 and all("one of 2 processes" in line and "MPI_GLASS_SERIAL" in line
                                   for line in lines), proc.stderr
    assert not out.exists()


def test_bad_input_under_mpiexec_always_prints_its_line(tmp_path):
    # Every rank meets a bad key; rank 0 says it, rank 1 stays silent and aborts.  Before the
    # grace wait rank 1's MPI_Abort often ended rank 0 first and the line was lost (1 run in
    # 4 to 2 in 3 on the development machine), so each of several runs must carry it.
    config = tmp_path / "bad.toml"
    config.write_text("[system]\nnn = 3\n")
    for attempt in range(4):
        out = tmp_path / f"out{attempt}"
        proc = cli("simulate", "--config", config, "--out", out, ranks=2, check=False)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(lines) == 1 and "unknown key 'nn'" in lines[0], proc.stderr
        assert not out.exists()


def test_launch_without_mpi4py_says_how_to_fix_it(tmp_path):
    fake = tmp_path / "no_mpi4py" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no mpi4py here')\n")
    out = tmp_path / "out"
    env = {"PYTHONPATH": str(fake.parent), "OMPI_COMM_WORLD_SIZE": "2",
           "OMPI_COMM_WORLD_RANK": "1", "MPI_GLASS_SERIAL": "0"}
    proc = cli("simulate", "--config", write_config(tmp_path), "--out", out, env=env,
               check=False)
    _one_line_error(proc, "one of 2 processes", "mpi4py is not installed", "laptop")
    assert not out.exists()


# -- 4. select against a sim.h5 of another config ------------------------------------------
def test_select_refuses_a_sim_file_of_other_physics(finished, tmp_path):
    _, source = finished
    other = write_config(tmp_path, **{"n = 150": "n = 200"})
    proc = cli("select", "--config", other, "--sim", source / "sim.h5", "--out",
               tmp_path / "sel", "--features-only", check=False)
    _one_line_error(proc, "system.n", "150", "200", "leave out --config")
    assert not (tmp_path / "sel" / "select.h5").exists()


def test_select_refuses_a_sim_file_of_another_model(finished, tmp_path):
    """A sim.h5 written with the paper's model is refused under another model (here KA2D,
    with every other key equal), and the file says which model it holds."""
    _, source = finished
    other = write_config(tmp_path)
    other.write_text(other.read_text() + '\n[model]\nname = "ka2d"\n')
    proc = cli("select", "--config", other, "--sim", source / "sim.h5", "--out",
               tmp_path / "sel", "--features-only", check=False)
    _one_line_error(proc, "model.", "leave out --config")
    assert not (tmp_path / "sel" / "select.h5").exists()
    with h5py.File(source / "sim.h5") as sim:
        assert json.loads(sim.attrs["model_json"])["name"] == "sharma2024"
        assert sim.attrs["species_names"] == "S,M,L"


def test_select_without_config_takes_the_sim_files(finished, tmp_path):
    _, source = finished
    cli("select", "--sim", source / "sim.h5", "--out", tmp_path / "sel", "--features-only")
    with h5py.File(source / "sim.h5") as sim, h5py.File(tmp_path / "sel" / "select.h5") as sel:
        for key in ("n", "temperature", "config_toml", "physics_json", "seed"):
            assert str(sel.attrs[key]) == str(sim.attrs[key]), key
        assert sel["features/values"].shape[1] == sim.attrs["n"]


# -- 5. memory ---------------------------------------------------------------------------
def test_huge_n_is_refused_up_front_with_the_estimate(tmp_path):
    config = write_config(tmp_path, **{"n = 150": "n = 2000000000"})
    out = tmp_path / "out"
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    _one_line_error(proc, "simulate: needs about", "TB of memory", "system.n")
    assert not out.exists()


def test_memory_check_compares_with_what_is_available(tmp_path):
    parts = simulate_parts(load_config(write_config(tmp_path)))
    need = check_fits("simulate", parts, 1, available=2**40)
    assert need > sum(parts.values())
    assert check_fits("simulate", parts, 2, available=2**40) == 2 * need
    with pytest.raises(InputError, match="2 ranks on this host"):
        check_fits("simulate", parts, 2, available=need)


def test_memory_estimate_grows_with_the_data(tmp_path):
    small = simulate_parts(load_config(write_config(tmp_path)))
    big = simulate_parts(load_config(write_config(tmp_path, **{"replicas = 2": "replicas = 20"})))
    key = next(k for k in small if "dynamics.replicas" in k)
    assert big[key] == 10 * small[key]


def test_config_memory_prints_the_estimate():
    proc = cli("config", "ci", "--memory", "--ranks", "4")
    assert "simulate:" in proc.stdout and "select:" in proc.stdout and "4 rank" in proc.stdout


# -- 6. select replaces its whole set; features-only is completed without --force --------
def test_features_only_is_completed_without_force_and_force_replaces_the_set(finished,
                                                                             tmp_path):
    config, source = finished
    out = _copy(source, tmp_path)
    cli("select", "--config", config, "--out", out, "--features-only")
    again = cli("select", "--config", config, "--out", out, "--features-only", check=False)
    _one_line_error(again, "select.h5: exists; use --force")
    cli("select", "--config", config, "--out", out)          # completes it: no --force needed
    with h5py.File(out / "select.h5") as f:
        assert not bool(f.attrs["features_only"]) and "supervised" in f
    assert (out / "report.md").exists() and (out / "figures").is_dir()
    cli("select", "--config", config, "--out", out, "--force", "--features-only")
    assert not (out / "report.md").exists() and not (out / "report.json").exists()
    assert not (out / "figures").exists()
    with h5py.File(out / "select.h5") as f:
        assert bool(f.attrs["features_only"]) and "supervised" not in f
    assert not list(out.glob(".select.*"))


def test_an_interrupted_swap_is_finished_by_the_next_run(tmp_path):
    owned = ("a.h5", "report.md", "figures")
    (tmp_path / "a.h5").write_text("old a")
    (tmp_path / "report.md").write_text("old report")
    stage = tmp_path / ".select.staging"
    stage.mkdir()
    (stage / "a.h5").write_text("new a")
    (stage / "figures").mkdir()
    (stage / "figures" / "f.png").write_text("new figure")
    # the manifest is written, a.h5 swapped in, then the kill: report.md is still the old one
    (stage / "STAGED_COMPLETE.json").write_text(json.dumps({"owned": list(owned),
                                                            "new": ["a.h5", "figures"]}))
    (tmp_path / ".select.old").mkdir()
    os.replace(tmp_path / "a.h5", tmp_path / ".select.old" / "a.h5")
    os.replace(stage / "a.h5", tmp_path / "a.h5")
    assert recover_staged(tmp_path, "select")
    assert (tmp_path / "a.h5").read_text() == "new a"
    assert (tmp_path / "figures" / "f.png").read_text() == "new figure"
    assert not (tmp_path / "report.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "figures"]


def test_an_unfinished_staging_folder_is_dropped(tmp_path):
    (tmp_path / "a.h5").write_text("old")
    (tmp_path / ".select.staging").mkdir()
    (tmp_path / ".select.staging" / "a.h5").write_text("half")
    assert not recover_staged(tmp_path, "select")
    assert (tmp_path / "a.h5").read_text() == "old" and not (tmp_path / ".select.staging").exists()
    stage = tmp_path / ".select.staging"
    stage.mkdir()
    (stage / "a.h5").write_text("new")
    commit_staged(tmp_path, "select", ("a.h5", "b.md"))
    assert (tmp_path / "a.h5").read_text() == "new" and not stage.exists()


# -- 7. damaged files: one line naming the file and the way out ----------------------------
def test_binary_config(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    proc = cli("simulate", "--config", config, "--out", tmp_path / "out", check=False)
    _one_line_error(proc, str(config), "not a TOML text file", "preset name")


def test_misspelt_preset_lists_the_presets(tmp_path):
    proc = cli("simulate", "--config", "lapotp", "--out", tmp_path / "out", check=False)
    _one_line_error(proc, "lapotp", "did you mean 'laptop'", "presets: laptop, paper, ci")


def _checkpoint_folder(tmp_path):
    config = write_config(tmp_path)
    out = tmp_path / "out"
    (out / "sim.h5.checkpoint").mkdir(parents=True)
    physics = load_config(config).physics_dict()
    (out / "sim.h5.checkpoint" / "run.json").write_text(json.dumps(physics))
    return config, out


def test_truncated_checkpoint(tmp_path):
    config, out = _checkpoint_folder(tmp_path)
    damaged = out / "sim.h5.checkpoint" / "eq_e0_c0.npz"
    damaged.write_bytes(b"PK\x03\x04 cut short")
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    _one_line_error(proc, f"{damaged}: damaged checkpoint", "delete this file", "--force")


def test_corrupt_run_json(tmp_path):
    config, out = _checkpoint_folder(tmp_path)
    (out / "sim.h5.checkpoint" / "run.json").write_text('{"seed": 11, "sys')
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    _one_line_error(proc, "run.json: damaged checkpoint manifest", "--force")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_sim_file_in_out(finished, tmp_path, damage):
    config, source = finished
    out = _copy(source, tmp_path)
    data = (out / "sim.h5").read_bytes()
    (out / "sim.h5").write_bytes(b"not hdf5 at all" if damage == "garbage"
                                 else data[:len(data) // 3])
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    _one_line_error(proc, "sim.h5: exists but is not a readable mpi_glass sim file", "--force")


def test_select_on_a_truncated_sim_file(finished, tmp_path):
    config, source = finished
    out = _copy(source, tmp_path)
    data = (out / "sim.h5").read_bytes()
    (out / "sim.h5").write_bytes(data[:len(data) // 3])
    proc = cli("select", "--config", config, "--out", out, "--features-only", check=False)
    _one_line_error(proc, "sim.h5: not a readable HDF5 file (truncated or foreign)",
                    "mpi_glass simulate --force")


# -- 8. the run name is a plain folder name -------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "a/b", "../up", "a\\\\b", " padded"])
def test_name_must_be_a_plain_folder_name(name):
    with pytest.raises(InputError, match="name: must be a plain folder name"):
        parse_config(f'name = "{name}"\n', origin="bad.toml")


def test_dot_dot_name_writes_nothing_outside(tmp_path):
    config = write_config(tmp_path, **{'name = "tiny"': 'name = ".."'})
    work = tmp_path / "work"
    work.mkdir()
    proc = cli("simulate", "--config", config, check=False, cwd=work)
    _one_line_error(proc, "plain folder name")
    assert not list(work.iterdir()) and not (tmp_path / "sim.h5").exists()


# -- the ETA --------------------------------------------------------------------------------
@pytest.fixture
def log_lines():
    stream = io.StringIO()
    setup_logging(0, logging.INFO, stream=stream)
    yield stream
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)


def test_no_eta_until_the_rate_is_measured_on_real_work(log_lines):
    now = [0.0]
    bar = Progress("run", total=1000, unit="trials", log_every=0.0, start_done=500,
                   stream=io.StringIO(), clock=lambda: now[0])
    for t, done in ((40.0, 510), (41.0, 520), (50.0, 610)):   # 40 s of compilation first
        now[0] = t
        bar.update(done)
    lines = log_lines.getvalue().splitlines()
    assert len(lines) == 3
    assert "ETA" not in lines[0] and "ETA" not in lines[1]
    assert lines[2].endswith("10 trials/s  ETA 0m39s")      # (1000 - 610) / 10 per second


def test_memory_and_simulate_do_not_import_each_other():
    """memory sizes a run before it starts; it needs the ensembles, not the simulation."""
    import subprocess
    import sys
    code = ("import sys, mpi_glass.memory; "
            "assert 'mpi_glass.simulate' not in sys.modules, 'memory imports simulate'")
    subprocess.run([sys.executable, "-c", code], check=True)
