"""Hostile users and environments (issue 17): a disk that fills up, links planted in the
output folder, inputs that are not files, configs select could never use, edited or damaged
sim files, and signals at any moment, serial and under mpiexec.

The disk-full cases run on a small tmpfs when this machine lets us mount one (root, as in
CI); elsewhere the same runs get an injected ENOSPC, so nothing is skipped.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT, cli, mpiexec, open_mpi, start_cli, stop_run, write_config
from mpi_glass import safefs, signals
from mpi_glass.config import load_config
from mpi_glass.errors import InputError, Interrupted
from mpi_glass.memory import estimate_table, simulate_disk_parts
from mpi_glass.outdir import LOCK_NAME, FolderLock
from mpi_glass.parallel import serial
from mpi_glass.simulate import Simulation

#: select kept small: 12 features, d up to 2, 5 random draws, the propensity at 50 sweeps.
#: select that runs for a minute or more (thousands of random draws): a target for signals.
SELECT_LONG = {"[relaxation_scan]": "[select]\ntime = 50\nrandom_draws = 20000\n"
                                    "[relaxation_scan]"}


def one_line_error(proc, *fragments, status=2):
    """Exit ``status`` and exactly one error line (the last line) holding every fragment."""
    assert proc.returncode == status, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and proc.stderr.strip().endswith(lines[0]), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _copy_sim(finished, folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sim.h5").write_bytes((finished[1] / "sim.h5").read_bytes())
    return folder


# -- A: a full disk --------------------------------------------------------------------------
class Disk:
    """A small filesystem to fill: a tmpfs if we may mount one, else a plain folder whose
    runs get ENOSPC injected at the same point."""

    def __init__(self, path, real):
        self.path, self.real = path, real

    @property
    def filler(self):
        return self.path / "filler"

    def free_space(self):
        """Make room again (the user's fix)."""
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    real = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True).returncode == 0
    yield Disk(mount, real)
    if real:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


#: Runs the CLI with a hook that fills the disk (or injects ENOSPC) just before the write
#: named by argv[1]: a checkpoint, sim.h5 or select.h5 about to be created, or ("-during")
#: being written.
_FILL_AND_RUN = textwrap.dedent('''
    import errno, os, sys
    import h5py, numpy
    where, real, filler = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    sys.argv = ["mpi_glass"] + sys.argv[4:]

    def fill():
        if not real:
            def full(*args, **kwargs):
                raise OSError(errno.ENOSPC, "No space left on device")
            h5py.Dataset.__setitem__ = full
            h5py.Group.create_dataset = full
            numpy.savez = full
            return
        with open(filler, "wb", buffering=0) as fh:
            for size in (1 << 20, 1 << 12, 1):
                try:
                    while True:
                        fh.write(b"x" * size)
                except OSError:
                    pass

    def hooked(module, name):
        original = getattr(module, name)
        def call(*args, **kwargs):
            fill()
            return original(*args, **kwargs)
        setattr(module, name, call)

    import mpi_glass.schema, mpi_glass.simfile, mpi_glass.selection
    {"checkpoint": lambda: hooked(mpi_glass.schema, "save_npz_atomic"),
     "sim": lambda: hooked(mpi_glass.simfile, "new_h5_with_room"),
     "sim-during": lambda: hooked(mpi_glass.simfile, "write_sim"),
     "select": lambda: hooked(mpi_glass.selection, "new_h5_with_room"),
     "select-during": lambda: hooked(mpi_glass.selection, "write_select")}[where]()
    from mpi_glass.cli import main
    sys.exit(main())
''')


def _run_filling(where, disk, *args):
    env = dict(os.environ, MPI_GLASS_SERIAL="1")
    return subprocess.run([sys.executable, "-c", _FILL_AND_RUN, where, str(int(disk.real)),
                           str(disk.filler), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def _leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if ".tmp" in p.name or ".staging" in p.name or p.name == "filler")


@pytest.mark.parametrize("where, file_named", [("checkpoint", ".npz.tmp.npz"),
                                               ("sim", "sim.h5.tmp")])
def test_disk_full_during_simulate_is_one_line_and_a_rerun_resumes(small_disk, tmp_path,
                                                                    where, file_named):
    config = write_config(tmp_path)
    out = small_disk.path / "out"
    proc = _run_filling(where, small_disk, "simulate", "--config", config, "--out", out)
    line = one_line_error(proc, file_named, "disk full", "needs about", "rerun")
    assert "Segmentation" not in proc.stderr and proc.returncode == 2, line
    small_disk.free_space()
    assert _leftovers(out) == []
    rerun = cli("simulate", "--config", config, "--out", out)
    assert "resuming from checkpoints" in rerun.stderr
    with h5py.File(out / "sim.h5") as f:
        assert f["propensity/p"].shape[0] == 3


def test_a_disk_that_fills_while_sim_h5_is_written(small_disk, tmp_path):
    """sim.h5's space is reserved before HDF5 writes: a disk that fills meanwhile does not
    stop it (on a real filesystem).  An injected failure inside HDF5 still ends in one line,
    without a crash and without the temporary file."""
    config = write_config(tmp_path)
    out = small_disk.path / "out"
    proc = _run_filling("sim-during", small_disk, "simulate", "--config", config, "--out", out)
    if small_disk.real:
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out / "sim.h5") as f:
            assert f["propensity/p"].shape[0] == 3
    else:
        one_line_error(proc, "sim.h5.tmp", "disk full")
        assert _leftovers(out) == []


def test_disk_full_during_select_keeps_the_old_outputs(small_disk, finished):
    config, _ = finished
    out = _copy_sim(finished, small_disk.path / "out")
    proc = _run_filling("select", small_disk, "select", "--config", config, "--out", out,
                        "--features-only")
    one_line_error(proc, "select.h5", "disk full", "needs about")
    small_disk.free_space()
    assert _leftovers(out) == [] and sorted(p.name for p in out.iterdir()) == ["sim.h5"]
    cli("select", "--config", config, "--out", out, "--features-only")
    assert (out / "select.h5").exists()


def test_a_folder_without_room_is_refused_naming_both_numbers(tmp_path, monkeypatch):
    cfg = load_config(write_config(tmp_path))
    monkeypatch.setattr(safefs, "free_bytes", lambda folder: 50_000)
    with pytest.raises(InputError, match=r"needs about .* of disk \(sim.h5 .*checkpoints .*"
                                         r"\), 48.8 kB free there"):
        Simulation(cfg, tmp_path / "out", serial()).run()
    assert not list((tmp_path / "out").glob("sim.h5.checkpoint/*.npz"))


def test_disk_estimate_bounds_what_simulate_writes(tmp_path):
    """The estimate is an upper bound of sim.h5 and of the checkpoint folder (kept after
    the run), and not a wild one (at most twice the truth plus the fixed overhead)."""
    cfg = load_config(write_config(tmp_path))
    path = Simulation(cfg, tmp_path / "out", serial()).run()
    kept = sum(p.stat().st_size for p in (tmp_path / "out" / "sim.h5.checkpoint").iterdir())
    parts = simulate_disk_parts(cfg)
    assert path.stat().st_size <= parts["sim.h5"] <= 2 * path.stat().st_size + 300_000
    assert kept <= parts["checkpoints"] <= 2 * kept + 300_000
    assert "disk space in the output folder" in estimate_table(cfg)


def test_is_disk_full_sees_hdf5s_wording():
    exc = RuntimeError("Can't decrement id ref count (file write failed: time = x, errno = 28,"
                       " error message = 'No space left on device')")
    assert safefs.is_disk_full(exc) and not safefs.is_disk_full(RuntimeError("boom"))
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError:
            raise RuntimeError("Disable slist on flush dest failure failed")
    except RuntimeError as chained:
        assert safefs.is_disk_full(chained)


# -- D, K: links and wrong file types in the output folder, inputs that are not files --------
@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("precious data\n")
    return path


@pytest.mark.parametrize("name", [LOCK_NAME, "sim.h5.tmp", "sim.h5.checkpoint"])
def test_simulate_refuses_a_planted_link_before_any_work(tmp_path, victim, name):
    config = write_config(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    proc = cli("simulate", "--config", config, "--out", out, check=False)
    one_line_error(proc, name, "symbolic link")
    assert victim.read_text() == "precious data\n"
    assert sorted(p.name for p in out.iterdir()) == [name]


def test_a_link_at_a_checkpoints_temporary_name_is_refused(tmp_path, victim):
    config = write_config(tmp_path)
    ckpt = tmp_path / "out" / "sim.h5.checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "eq_e0_c0.npz.tmp.npz").symlink_to(victim)
    proc = cli("simulate", "--config", config, "--out", tmp_path / "out", check=False)
    one_line_error(proc, "eq_e0_c0.npz.tmp.npz", "symbolic link")
    assert victim.read_text() == "precious data\n"
    assert [p.name for p in ckpt.iterdir()] == ["eq_e0_c0.npz.tmp.npz"]


def test_temporary_files_are_created_exclusively_never_through_a_link(tmp_path, victim):
    """A link planted after the up-front check (a race) is refused, not written through."""
    from mpi_glass.store import save_npz_atomic
    target = tmp_path / "ckpt.npz"
    (tmp_path / "ckpt.npz.tmp.npz").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        save_npz_atomic(target, a=np.zeros(3))
    assert victim.read_text() == "precious data\n" and not target.exists()
    fd = safefs.create_new(tmp_path / "fresh.tmp")
    os.close(fd)
    os.unlink(tmp_path / "fresh.tmp")


@pytest.mark.parametrize("name", [".select.staging", ".select.old"])
def test_select_refuses_a_planted_staging_or_old_link_before_computing(finished, tmp_path,
                                                                      name):
    config, _ = finished
    out = _copy_sim(finished, tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (out / name).symlink_to(elsewhere)
    proc = cli("select", "--config", config, "--out", out, check=False)
    one_line_error(proc, name, "symbolic link")
    assert "features:" not in proc.stderr            # refused before any computation
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "sim.h5"])


def test_a_lock_that_is_a_directory_is_bad_input(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "out" / LOCK_NAME).mkdir(parents=True)
    proc = cli("simulate", "--config", config, "--out", tmp_path / "out", check=False)
    one_line_error(proc, LOCK_NAME, "is a directory", "remove it")


def test_a_live_pid_holding_no_lock_is_not_called_gone(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({
            "host": __import__("socket").gethostname(), "pid": sleeper.pid}))
        lock = FolderLock(tmp_path, "me")
        note = lock.acquire()
        lock.release()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "holds no lock" in note and "no longer running" not in note


@pytest.mark.parametrize("what", ["sim", "config"])
def test_a_fifo_as_input_is_refused_without_blocking(tmp_path, what):
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    args = (["select", "--sim", fifo, "--out", tmp_path / "out"] if what == "sim"
            else ["simulate", "--config", fifo, "--out", tmp_path / "out"])
    proc = cli(*args, check=False, timeout=60)
    one_line_error(proc, str(fifo), "a FIFO, not a regular file")


# -- G: configs that select could never use, decided up front --------------------------------
@pytest.mark.parametrize("replace, message", [
    ({"configurations = 3": "configurations = 1"}, "dynamics.configurations: select's leave"),
    ({"[relaxation_scan]": "[select]\nd_max = 13\nlengths = [1.0, 2.0]\n[relaxation_scan]"},
     "select.d_max: 13 exceeds the 12 features"),
    ({"[relaxation_scan]": "[select]\ntime = 5000\n[relaxation_scan]"},
     "select.time: 5000 sweeps lies outside the recorded times 1 ... 200"),
    ({"[relaxation_scan]": "[select]\nsecond_time = 900\n[relaxation_scan]"},
     "select.second_time: 900 sweeps lies outside"),
    ({"[relaxation_scan]": "[select]\nk = 150\n[relaxation_scan]"},
     "select.k: must be below the 150 particles"),
    ({"per_decade = 4": "per_decade = 4\nextra_times = [5000]"},
     "dynamics.extra_times: 5000 lies beyond dynamics.t_max = 200"),
])
def test_simulate_refuses_what_select_would_refuse_before_running(tmp_path, replace, message):
    config = write_config(tmp_path, **replace)
    start = time.monotonic()
    proc = cli("simulate", "--config", config, "--out", tmp_path / "out", check=False)
    one_line_error(proc, message)
    assert not (tmp_path / "out").exists() and time.monotonic() - start < 30


def test_an_empty_config_file_is_refused(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("  \n")
    proc = cli("simulate", "--config", empty, "--out", tmp_path / "out", check=False)
    one_line_error(proc, "empty config; pass no --config for the defaults")


# -- H: sim files that were edited or damaged ------------------------------------------------
def test_select_refuses_a_config_toml_that_contradicts_physics_json(finished, tmp_path):
    out = _copy_sim(finished, tmp_path / "out")
    with h5py.File(out / "sim.h5", "r+") as f:
        f.attrs["config_toml"] = str(f.attrs["config_toml"]).replace("temperature = 0.8",
                                                                     "temperature = 0.4")
    proc = cli("select", "--out", out, check=False)
    one_line_error(proc, "config_toml and physics_json attributes disagree",
                   "system.temperature", "0.4", "0.8")


@pytest.mark.parametrize("dataset, what", [("propensity/p", "p of configuration 1"),
                                           ("configurations/positions",
                                            "positions of configuration 1")])
def test_a_nan_in_the_data_names_the_file_and_the_configuration(finished, tmp_path, dataset,
                                                               what):
    config, _ = finished
    out = _copy_sim(finished, tmp_path / "out")
    with h5py.File(out / "sim.h5", "r+") as f:
        values = f[dataset][()]
        values[1, ..., 0] = np.nan
        f[dataset][...] = values
    proc = cli("select", "--config", config, "--out", out, check=False)
    one_line_error(proc, str(out / "sim.h5"), what, "NaN", "rerun 'mpi_glass simulate --force'",
                   "config tiny")


def test_a_data_error_found_later_names_the_file_and_the_config(finished, tmp_path):
    config = write_config(tmp_path, **{"[relaxation_scan]": "[select]\ntime = 'tau_alpha'\n"
                                                             "d_max = 2\nlengths = [1.0, 2.0]\n"
                                                             "[relaxation_scan]"})
    out = _copy_sim(finished, tmp_path / "out")
    with h5py.File(out / "sim.h5", "r+") as f:
        f["dynamics/tau_alpha"][...] = np.nan
    proc = cli("select", "--config", config, "--out", out, check=False)
    one_line_error(proc, str(out / "sim.h5"), "(config tiny)", "select.time")


# -- C4: a select that completes an interrupted swap -----------------------------------------
def test_a_select_that_completes_an_interrupted_swap_exits_0(finished, tmp_path):
    config, _ = finished
    out = _copy_sim(finished, tmp_path / "out")
    stage = out / ".select.staging"
    stage.mkdir()
    with h5py.File(stage / "select.h5", "w") as f:     # a run's new set, staged ...
        f.attrs["features_only"] = False
    (stage / "report.md").write_text("new report")
    (stage / "report.json").write_text("{}")
    (out / "select.h5").write_text("old")
    (stage / "STAGED_COMPLETE.json").write_text(json.dumps({
        "owned": ["select.h5", "report.md", "report.json", "figures"],
        "new": ["select.h5", "report.md", "report.json"]}))
    (out / ".select.old").mkdir()
    os.replace(out / "select.h5", out / ".select.old" / "select.h5")
    os.replace(stage / "select.h5", out / "select.h5")  # ... then killed mid-swap
    proc = cli("select", "--config", config, "--out", out, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "finished replacing the outputs" in proc.stderr and "features:" not in proc.stderr
    assert (out / "report.md").read_text() == "new report"
    assert not (out / ".select.staging").exists() and not (out / ".select.old").exists()


# -- I: signals ------------------------------------------------------------------------------
def _wait_for_line(proc, fragment, timeout=120):
    """Read stderr until a line holds ``fragment``; returns what was read."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if fragment in line:
            return seen
    pytest.fail(f"never saw {fragment!r}:\n{''.join(seen)}")


def _finish(proc, sig, seen):
    code = stop_run(proc, sig)
    rest = proc.stderr.read()
    return code, "".join(seen) + rest


def _interrupt_line(text, sig):
    """One line, the last, says which signal stopped the run; no traceback, no MPI banner
    (Open MPI's mpirun runs with -q, as the README says: ``conftest.launcher``)."""
    lines = text.strip().splitlines()
    stops = [line for line in lines if "stopped by" in line or "error:" in line]
    assert len(stops) == 1 and f"stopped by {sig}" in lines[-1], text
    assert "Traceback" not in text and "internal error" not in text, text
    assert "YOUR APPLICATION" not in text and "MPI_Abort" not in text, text


@pytest.mark.parametrize("sig, ranks", [(signal.SIGTERM, None), (signal.SIGUSR1, None),
                                        (signal.SIGINT, None), (signal.SIGTERM, 2),
                                        (signal.SIGUSR1, 2)])
def test_a_signal_during_select_keeps_the_outputs_and_exits_75(finished, tmp_path, sig, ranks):
    config = write_config(tmp_path, **SELECT_LONG)
    out = _copy_sim(finished, tmp_path / "out")
    proc = start_cli("select", "--config", config, "--out", out, ranks=ranks)
    seen = _wait_for_line(proc, "features:")
    time.sleep(1.0)
    code, text = _finish(proc, sig, seen)
    assert code == 75 or (ranks and open_mpi() and sig == signal.SIGTERM), text
    _interrupt_line(text, sig.name)
    # (MPI_Abort leaves the lock file; the kernel has released its flock: taken over later)
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) == ["sim.h5"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_signal_during_start_up_is_not_lost(tmp_path, sig):
    """Sent while Python imports numpy, numba and MPI: still one line and 75."""
    config = write_config(tmp_path)
    proc = start_cli("simulate", "--config", config, "--out", tmp_path / "out")
    time.sleep(0.15)
    code, text = _finish(proc, sig, [])
    assert code == 75, text
    _interrupt_line(text, sig.name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGUSR1])
def test_sigint_and_sigusr1_during_simulate_checkpoint_and_exit_75(tmp_path, sig):
    config = write_config(tmp_path, eq_sweeps=3000, t_max=3000)
    out = tmp_path / "out"
    for delay in (0.0, 0.3, 0.7):
        proc = start_cli("simulate", "--config", config, "--out", out)
        seen = _wait_for_line(proc, "equilibrate")
        time.sleep(delay)
        code, text = _finish(proc, sig, seen)
        assert code == 75, text
        _interrupt_line(text, sig.name)
    assert list((out / "sim.h5.checkpoint").glob("*.npz"))


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_a_signal_during_simulate_under_mpiexec_checkpoints_and_exits_75(tmp_path, sig):
    config = write_config(tmp_path, eq_sweeps=3000, t_max=3000)
    out = tmp_path / "out"
    proc = start_cli("simulate", "--config", config, "--out", out, ranks=2,
                     env={"MPI_GLASS_SIGNAL_GRACE": "1"})
    seen = _wait_for_line(proc, "equilibrate")
    time.sleep(0.5)
    code, text = _finish(proc, sig, seen)
    # Open MPI's mpirun, itself hit by SIGTERM, exits 1 whatever its ranks did (README)
    assert code == 75 or (open_mpi() and sig == signal.SIGTERM), text
    _interrupt_line(text, sig.name)
    assert list((out / "sim.h5.checkpoint").glob("*.npz"))


def test_signal_contract_in_process():
    previous = signals.install()
    try:
        signals.reset()
        with pytest.raises(Interrupted, match="SIGTERM"):
            signal.raise_signal(signal.SIGTERM)
        signals.reset()
        signals.defer()
        signal.raise_signal(signal.SIGINT)
        assert signals.received() == "SIGINT"
        with pytest.raises(Interrupted, match="SIGINT"):
            signals.check()
    finally:
        signals.reset()
        signals.restore(previous)


def test_a_signal_handled_where_python_cannot_raise_is_raised_after_with_no_traceback(capsys):
    """CI saw it: SIGUSR1 landed in a weakref callback of importlib's module locks, where an
    exception is only printed ("Exception ignored in ...") and dropped."""
    class SignalledWhileCollected:
        def __del__(self):
            signal.raise_signal(signal.SIGUSR1)    # its handler runs inside __del__

    hook_before = sys.unraisablehook
    previous = signals.install()
    try:
        signals.reset()
        with pytest.raises(Interrupted, match="SIGUSR1"):
            SignalledWhileCollected()                # collected at once: __del__ runs
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:       # the ordinary code that follows
                pass
        assert "Traceback" not in capsys.readouterr().err
    finally:
        signals.reset()
        signals.restore(previous)
    assert sys.unraisablehook is hook_before


def test_sigusr1_reaches_our_handler_after_mpi_initialisation():
    """MPICH takes SIGUSR1 when MPI starts; the CLI installs its handler again after."""
    code = textwrap.dedent('''
        import signal, sys
        from mpi_glass import cli, signals
        seen = []
        def command(args, dist):
            seen.append(signal.getsignal(signal.SIGUSR1) is signals._handler)
        cli._COMMANDS["config"] = command
        status = cli.main(["config"])
        print(seen[0], status)
    ''')
    proc = subprocess.run([mpiexec(), "-n", "1", sys.executable, "-c", code],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.stdout.split() == ["True", "0"], proc.stderr
