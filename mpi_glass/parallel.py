"""The distributor: the only module that imports mpi4py.

Everything else sees a ``Distributor`` with a rank, a size, a deterministic work split, a
``map`` for independent work items and an ``open_h5`` that returns a collectively opened
parallel-HDF5 file when h5py was built with MPI.  Serial mode (mpi4py missing, MPI not
wanted, or one rank) is the same object with size 1, so there is one code path.

Determinism: work items are identified by their index, never by the rank that computes
them; ``map`` returns results in index order, so any rank count gives the same answer.
"""
from __future__ import annotations

import os
import sys

import h5py
import numpy as np


def _world_communicator():
    """MPI.COMM_WORLD, or None when mpi4py is absent or disabled (MPI_GLASS_SERIAL=1)."""
    if os.environ.get("MPI_GLASS_SERIAL") == "1":
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


class Distributor:
    """Rank bookkeeping and the few collectives the pipeline needs."""

    def __init__(self, comm="world"):
        self.comm = _world_communicator() if comm == "world" else comm
        self.rank = self.comm.Get_rank() if self.comm is not None else 0
        self.size = self.comm.Get_size() if self.comm is not None else 1

    @property
    def is_root(self):
        return self.rank == 0

    @property
    def parallel(self):
        return self.size > 1

    # -- work split -------------------------------------------------------------------
    def assign(self, costs):
        """Owner rank of each work item: longest-processing-time-first greedy, deterministic.

        ``costs`` are relative costs (e.g. sweeps x particles); ties go to the lowest rank, so
        every rank computes the same assignment without communicating.
        """
        costs = np.asarray(costs, dtype=float)
        load = np.zeros(self.size)
        owner = np.empty(len(costs), dtype=np.int64)
        for item in np.argsort(-costs, kind="stable"):
            rank = int(np.argmin(load))
            owner[item] = rank
            load[rank] += costs[item]
        return owner

    def my_items(self, costs):
        """Indices of the work items this rank owns, in increasing order."""
        return [int(i) for i in np.flatnonzero(self.assign(costs) == self.rank)]

    def map(self, fn, n):
        """[fn(i) for i in range(n)] with the indices split over ranks, on every rank."""
        mine = [(i, fn(i)) for i in range(self.rank, n, self.size)]
        if not self.parallel:
            return [value for _, value in mine]
        results = [None] * n
        for part in self.comm.allgather(mine):
            for i, value in part:
                results[i] = value
        return results

    # -- collectives (no-ops in serial mode) -----------------------------------------
    def barrier(self):
        if self.parallel:
            self.comm.Barrier()

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0) if self.parallel else obj

    def gather(self, obj):
        """List of every rank's obj on the root, None elsewhere."""
        if not self.parallel:
            return [obj]
        return self.comm.gather(obj, root=0)

    def allgather(self, obj):
        return self.comm.allgather(obj) if self.parallel else [obj]

    def to_root(self, obj, owner):
        """Move ``obj`` from rank ``owner`` to the root (point-to-point); None elsewhere."""
        if owner == 0 or not self.parallel:
            return obj if self.is_root else None
        if self.rank == owner:
            self.comm.send(obj, dest=0, tag=17)
        elif self.is_root:
            return self.comm.recv(source=owner, tag=17)
        return None

    def any(self, flag):
        """True on every rank if any rank passed True."""
        return any(self.allgather(bool(flag)))

    def abort(self, status):
        """End every rank: used after a one-line error on one rank."""
        if self.parallel:
            sys.stdout.flush()
            sys.stderr.flush()
            self.comm.Abort(status)
        raise SystemExit(status)

    # -- parallel HDF5 ------------------------------------------------------------------
    def collective_io_available(self):
        """Whether ranks can write one HDF5 file together (h5py built with MPI)."""
        return self.parallel and h5py.get_config().mpi and os.environ.get(
            "MPI_GLASS_NO_MPIO") != "1"

    def open_h5(self, path, mode):
        """h5py.File opened collectively with the mpio driver (all ranks must call)."""
        return h5py.File(path, mode, driver="mpio", comm=self.comm)


def serial():
    """A one-rank distributor that never touches MPI (notebooks, tests)."""
    return Distributor(comm=None)
