#!/usr/bin/env bash
# Set up a virtual environment (if needed) and run the test-suite twice: plain, then the
# MPI-marked tests under `mpiexec -n 2` (pytest-mpi).
#
# Laptop default: pip only, no root: MPICH comes from the `mpich` wheel, h5py is serial.
# MPI_GLASS_SYSTEM_MPI=1 (set by .ci/run): keep the MPI-enabled h5py and mpi4py already built
# into the venv against the system Open MPI, and use the system mpiexec.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MPI_GLASS_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
if [ "${MPI_GLASS_SYSTEM_MPI:-0}" = 1 ]; then
  "$py" -m pip install -q -e ".[mpi,test]"
  mpiexec=mpiexec
else
  "$py" -m pip install -q -e ".[laptop,test]"
  mpiexec="$venv/bin/mpiexec"
fi
export PATH="$(cd "$venv/bin" && pwd):$PATH"
"$py" -c "import h5py; print('h5py', h5py.__version__, 'parallel HDF5:', h5py.get_config().mpi)"
"$py" -m pytest -q --color=no -m "not mpi" "$@"
"$mpiexec" -n 2 "$py" -m pytest -q --color=no --with-mpi -m mpi -p no:cacheprovider "$@"
