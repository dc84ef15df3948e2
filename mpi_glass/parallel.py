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
import socket
import sys
import time

import h5py
import numpy as np

from .errors import InputError

#: Tags of the progress messages: their own channel, and one tag per counter (cycling through
#: _PROGRESS_TAGS), so the root never takes a fast rank's next-stage report for this stage's.
_PROGRESS_TAG = 1000
_PROGRESS_TAGS = 20000

#: Variables a launcher (mpiexec/mpirun of MPICH or Open MPI, srun with PMI-2 or PMIx) sets
#: in each process it starts: sizes of the job, and ranks within it.  SLURM's own SLURM_*
#: variables are not used: a batch script's single process carries them too.
LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                      "OMPI_COMM_WORLD_LOCAL_SIZE")
LAUNCHER_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID")


def launcher_processes(environ=None):
    """How many processes a launcher started this one among (1 when not launched as several).

    A size variable above 1, or a rank variable above 0, means we are one of several.
    """
    environ = os.environ if environ is None else environ
    size = 1
    for name in LAUNCHER_SIZE_VARS:
        size = max(size, _int_var(environ, name, 1))
    for name in LAUNCHER_RANK_VARS:
        size = max(size, _int_var(environ, name, 0) + 1)
    return size


def _int_var(environ, name, default):
    try:
        return int(environ.get(name, default))
    except ValueError:
        return default


def _world_communicator():
    """MPI.COMM_WORLD, or None when mpi4py is absent or disabled (MPI_GLASS_SERIAL=1).

    A process started by a launcher as one of several must not fall back to serial mode:
    every copy would believe it is rank 0 of 1 and they would race on the same files.
    """
    launched = launcher_processes()
    if os.environ.get("MPI_GLASS_SERIAL") == "1":
        if launched > 1:
            raise InputError(f"started by a launcher as one of {launched} processes, but "
                             f"MPI_GLASS_SERIAL=1 disables MPI: unset it, or run without "
                             f"mpiexec/srun")
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        if launched > 1:
            raise InputError(f"started by a launcher as one of {launched} processes, but "
                             f"mpi4py is not installed: pip install -e '.[laptop]' (or the "
                             f"'mpi' extra on a cluster), or run without mpiexec/srun") from None
        return None
    if MPI.COMM_WORLD.Get_size() == 1 and launched > 1:
        raise InputError(f"started by a launcher as one of {launched} processes, but MPI "
                         f"sees one: mpi4py was built for another MPI than this mpiexec; use "
                         f"the mpiexec that matches mpi4py (e.g. .venv/bin/mpiexec)")
    return MPI.COMM_WORLD


__all__ = ["Distributor", "ProgressCounter", "serial"]


class Distributor:
    """Rank bookkeeping and the few collectives the pipeline needs.

    Parameters
    ----------
    comm : "world", an mpi4py communicator, or None
        "world": MPI.COMM_WORLD when mpi4py is there and MPI_GLASS_SERIAL is not 1; None:
        one rank without MPI.

    Examples
    --------
    >>> dist = serial()
    >>> dist.rank, dist.size, dist.map(lambda i: i * i, 4)
    (0, 1, [0, 1, 4, 9])
    >>> dist.my_items([3.0, 1.0, 2.0])
    [0, 1, 2]
    """

    def __init__(self, comm="world"):
        self.comm = _world_communicator() if comm == "world" else comm
        self.rank = self.comm.Get_rank() if self.comm is not None else 0
        self.size = self.comm.Get_size() if self.comm is not None else 1
        self._counters = 0          # progress counters made so far: the same on every rank

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

    def root_decides(self, decide):
        """Run ``decide()`` on the root only and give its result to every rank.

        An InputError raised there is raised on every rank, so all of them stop together
        (nobody is left waiting in a collective).
        """
        outcome = None
        if self.is_root:
            try:
                outcome = ("ok", decide())
            except InputError as exc:
                outcome = ("error", str(exc))
        kind, value = self.bcast(outcome)
        if kind == "error":
            raise InputError(value)
        return value

    def ranks_on_this_host(self):
        """How many ranks of this job run on this rank's host (they share its memory)."""
        host = socket.gethostname()
        return sum(1 for other in self.allgather(host) if other == host)

    def any(self, flag):
        """True on every rank if any rank passed True."""
        return any(self.allgather(bool(flag)))

    def abort(self, status):
        """End every rank: used after a one-line error on one rank."""
        if self.parallel:
            sys.stdout.flush()
            sys.stderr.flush()
            if "OMPI_COMM_WORLD_SIZE" not in os.environ:
                # MPICH prints its own line at MPI_Abort (ours is out).  Open MPI sends its
                # abort notice through mpirun, and a closed stderr only garbles it.
                _silence_stderr()
            self.comm.Abort(status)
        raise SystemExit(status)

    def progress_counter(self, every=2.0):
        """A ``ProgressCounter`` over this distributor's ranks (see there).

        Every rank makes its counters in the same order, so the n-th counter of each rank
        shares the n-th tag with its peers and with no other counter in flight.
        """
        self._counters += 1
        return ProgressCounter(self, every,
                               tag=_PROGRESS_TAG + self._counters % _PROGRESS_TAGS)

    # -- parallel HDF5 ------------------------------------------------------------------
    def collective_io_available(self):
        """Whether ranks can write one HDF5 file together (h5py built with MPI)."""
        return self.parallel and h5py.get_config().mpi and os.environ.get(
            "MPI_GLASS_NO_MPIO") != "1"

    def open_h5(self, path, mode):
        """h5py.File opened collectively with the mpio driver (all ranks must call)."""
        return h5py.File(path, mode, driver="mpio", comm=self.comm)


class ProgressCounter:
    """Run-wide count of work done, summed on the root by point-to-point messages.

    Every rank calls ``add(n)`` as it works.  A non-root rank sends its running total to the
    root with a non-blocking send at most every ``every`` seconds, and only once its previous
    send has completed, so at most one message per rank is ever in flight and a busy root
    never holds anyone up.  The root reads what has arrived in ``total()`` (at most every
    ``every`` seconds too).  No rank waits for another until ``close()``, the end of a stage:
    each rank sends its final count and the root receives them all, updating as they come.
    Nothing touches the filesystem.  With one rank (or no MPI) it is a plain counter: the
    same code path.

    Examples
    --------
    >>> counter = serial().progress_counter()
    >>> counter.add(1000); counter.add(500)
    >>> counter.total(), counter.close()
    (1500, 1500)
    """

    def __init__(self, dist, every=2.0, tag=_PROGRESS_TAG):
        self.comm = dist.comm if dist.parallel else None
        self.tag = tag
        self.is_root, self.every = dist.is_root, float(every)
        self.mine = 0
        self.latest = np.zeros(dist.size, np.int64)     # root: each rank's last report
        self.final = np.zeros(dist.size, bool)          # root: who has closed
        self.final[dist.rank] = True
        self._request = None
        self._message = np.zeros(2, np.int64)           # (count, closed) being sent
        self._last = -float("inf")

    def add(self, n):
        """Count ``n`` more units of work done on this rank."""
        self.mine += int(n)
        if self.comm is None or self.is_root:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        if self._request is not None and not self._request.Test():
            return
        self._send(closed=False)
        self._last = now

    def total(self):
        """Work done on all ranks as far as the root knows (another rank: its own count)."""
        if self.comm is not None and self.is_root:
            now = time.monotonic()
            if now - self._last >= self.every:
                self._receive()
                self._last = now
        return self.mine + int(self.latest.sum())

    def close(self, on_update=None, poll=0.05):
        """End of a stage: the root learns every rank's final count; returns the total.

        ``on_update(total)`` is called on the root whenever counts arrive.  The root sleeps
        between polls: a blocking MPI wait would spin a core that a rank still at work may
        need when ranks share cores.
        """
        if self.comm is not None and not self.is_root:
            if self._request is not None:
                self._request.Wait()
            self._send(closed=True)
            self._request.Wait()
            return self.mine
        while not self.final.all():
            if self._receive() and on_update is not None:
                on_update(self.mine + int(self.latest.sum()))
            else:
                time.sleep(poll)
        total = self.mine + int(self.latest.sum())
        if on_update is not None:
            on_update(total)
        return total

    def _send(self, closed):
        self._message[:] = (self.mine, closed)
        self._request = self.comm.Isend(self._message, dest=0, tag=self.tag)

    def _receive(self):
        """Take every progress message that has arrived; returns how many."""
        from mpi4py import MPI
        status, message, count = MPI.Status(), np.empty(2, np.int64), 0
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=self.tag, status=status):
            source = status.Get_source()
            self.comm.Recv(message, source=source, tag=self.tag)
            self.latest[source] = message[0]
            self.final[source] |= bool(message[1])
            count += 1
        return count


def _silence_stderr():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
    except (OSError, ValueError):
        pass


def serial():
    """A one-rank distributor that never touches MPI (notebooks, tests)."""
    return Distributor(comm=None)
