"""The output folder of a run: an exclusive lock, and outputs replaced as one set.

* ``folder_lock``: one run per folder.  ``mpi_glass.lock`` is ``flock``ed for the run and
  names its holder (host, pid, start), so a second run is refused with who holds it, and a
  lock left by a killed process on this host is taken over.  Under MPI rank 0 holds it.
* ``commit_staged``/``recover_staged``: a command writes its whole new set of outputs into a
  staging folder, then swaps it in; a swap cut short by a kill is finished by the next run,
  so readers see the old set or the new one, never a mix (``select``).
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError
from .safefs import FULL_ERRNOS, disk_full_error, refuse_links_inside, refuse_planted
from .store import read_json, write_json_atomic

LOCK_NAME = "mpi_glass.lock"


class FolderLock:
    """Exclusive lock of an output folder: ``mpi_glass.lock`` holding host, pid and start.

    The kernel's ``flock`` decides who holds it (released even on kill -9).  The record in
    the file names the holder for the refusal message, and lets a leftover file of a dead
    process on this host be taken over.  Where the filesystem cannot ``flock``, the record
    alone decides: a live pid on this host, or any record from another host, is refused.
    One exception on any filesystem: a record left by an earlier run of the same requeued
    SLURM job is stale, since SLURM requeues a job only after its earlier run has ended.
    """

    def __init__(self, folder, command):
        self.path = Path(folder) / LOCK_NAME
        self.command = command
        self.fd = None

    def acquire(self):
        """Take the lock or raise InputError naming its holder; returns a takeover note or None."""
        for _ in range(10):
            fd = self._open()
            try:
                kernel_lock = _flock(fd)
            except BlockingIOError:
                holder = _read_record(fd)
                os.close(fd)
                raise InputError(self._busy(holder)) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)      # the holder released (unlinked) it meanwhile: lock the new one
        else:   # pragma: no cover - ten releases in a row
            raise InputError(f"{self.path}: could not take the lock; try again")
        holder = _read_record(fd)
        note = None
        if holder:
            if not _is_stale(holder, kernel_lock):
                os.close(fd)
                raise InputError(self._busy(holder))
            note = (f"{self.path}: taking over the lock of pid {holder.get('pid')} on "
                    f"{holder.get('host')}, " + ("which holds no lock on it (a dead run's "
                                                  "pid, since reused)" if _pid_alive(holder)
                                                  else "which is no longer running"))
        record = dict(host=socket.gethostname(), pid=os.getpid(), command=self.command,
                      started=datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M:%S UTC"), slurm_job=_slurm_incarnation())
        text = (json.dumps(record) + "\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, text, 0)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in FULL_ERRNOS:
                raise disk_full_error(self.path, len(text)) from None
            raise
        self.fd = fd
        return note

    def _open(self):
        """Open (create) the lock file, never through a link, never blocking on a FIFO."""
        refuse_planted(self.path.parent, {self.path.name: "file"})
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                         0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):   # planted meanwhile
                refuse_planted(self.path.parent, {self.path.name: "file"})
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            refuse_planted(self.path.parent, {self.path.name: "file"})
        return fd

    def release(self):
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)   # while still held: nobody sees a free stale file
        os.close(self.fd)
        self.fd = None

    def _busy(self, holder):
        holder = holder or {}
        return (f"{self.path.parent} is in use by pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} since {holder.get('started', '?')} "
                f"({holder.get('command', 'mpi_glass')}); wait for it to finish, or delete "
                f"{self.path} if that process is gone")


def _flock(fd):
    """True when the kernel granted the lock, False where the filesystem has no flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise BlockingIOError(exc.errno, exc.strerror) from None
        return False
    return True


def _same_file(fd, path):
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_record(fd):
    try:
        text = os.pread(fd, 4096, 0).decode()
        record = json.loads(text) if text.strip() else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _is_stale(holder, kernel_lock):
    """Whether a record left in the lock file belongs to a process that is gone."""
    if _earlier_incarnation_of_this_job(holder):
        return True       # SLURM requeues a job only once its earlier run has ended
    if holder.get("host") != socket.gethostname():
        return False      # cannot see another host's processes: never taken over
    if kernel_lock:
        return True       # the kernel says nobody holds it: the writer died (or pid reused)
    try:
        os.kill(int(holder.get("pid")), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, TypeError, ValueError):
        return False
    return False


def _pid_alive(holder):
    try:
        os.kill(int(holder.get("pid")), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _slurm_incarnation():
    """[job id, restart count] of the SLURM job this process runs in, or None outside SLURM.

    A requeued job keeps its id and raises ``SLURM_RESTART_COUNT``, possibly on another node.
    """
    job = os.environ.get("SLURM_JOB_ID")
    return [job, os.environ.get("SLURM_RESTART_COUNT", "0")] if job else None


def _earlier_incarnation_of_this_job(holder):
    """Whether the lock was left by an earlier run of this same (requeued) SLURM job."""
    mine, theirs = _slurm_incarnation(), holder.get("slurm_job")
    return (mine is not None and isinstance(theirs, list) and len(theirs) == 2
            and theirs[0] == mine[0] and theirs[1] != mine[1])


@contextmanager
def folder_lock(folder, dist, command):
    """Hold the folder's lock for the block; rank 0 takes it and tells the others."""
    lock = FolderLock(folder, command)
    note = dist.root_decides(lock.acquire)
    if note and dist.is_root:
        from .progress import warn
        warn(note)
    try:
        yield lock
    finally:
        if dist.is_root:
            lock.release()


# -- a set of outputs replaced together ----------------------------------------------------
_STAGED_MANIFEST = "STAGED_COMPLETE.json"


#: What simulate creates in its output folder (besides the lock), and their kinds.
SIMULATE_NAMES = {"sim.h5.tmp": "file", "sim.h5.checkpoint": "dir"}


def check_folder(folder, names, inside=()):
    """Refuse, before any computation, a planted link or a wrong type of file at ``names``
    ({name: "file" or "dir"}) or among the entries of the folders ``inside``."""
    refuse_planted(folder, {LOCK_NAME: "file", **names})
    for name in inside:
        refuse_links_inside(Path(folder) / name)


def staged_names(owner):
    """What a staged swap of ``owner`` creates in the folder: {name: kind}."""
    return {f".{owner}.staging": "dir", f".{owner}.old": "dir"}


def staging_dir(folder, owner):
    """Where ``owner`` (e.g. "select") writes its new outputs before they replace the old."""
    return Path(folder) / f".{owner}.staging"


def commit_staged(folder, owner, names):
    """Replace the outputs ``names`` of ``folder`` by those written into the staging folder.

    Names the staging folder lacks are removed: the new set replaces the whole old set.  A
    manifest written first makes the swap idempotent, so a swap cut short by a kill is
    finished by ``recover_staged`` on the next run; old files are moved aside, not deleted,
    until every new one is in place.
    """
    folder, stage = Path(folder), staging_dir(folder, owner)
    check_folder(folder, staged_names(owner))
    present = [name for name in names if (stage / name).exists()]
    write_json_atomic(stage / _STAGED_MANIFEST, {"owned": list(names), "new": present})
    _swap(folder, owner)


def recover_staged(folder, owner):
    """Finish a swap a kill cut short, or drop an unfinished staging folder (start of a run)."""
    check_folder(folder, staged_names(owner), inside=staged_names(owner))
    stage = staging_dir(folder, owner)
    if (stage / _STAGED_MANIFEST).exists():
        _swap(Path(folder), owner)
        return True
    shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(Path(folder) / f".{owner}.old", ignore_errors=True)
    return False


def _swap(folder, owner):
    stage, old = staging_dir(folder, owner), folder / f".{owner}.old"
    manifest = read_json(stage / _STAGED_MANIFEST, "staging manifest",
                         f"delete {stage} and rerun")
    old.mkdir(exist_ok=True)
    for name in manifest["owned"]:
        new, final = stage / name, folder / name
        if name in manifest["new"] and not new.exists():
            continue                   # moved in by the swap that was cut short
        if final.exists():
            if (old / name).exists():
                _remove(final)
            else:
                os.replace(final, old / name)
        if new.exists():
            os.replace(new, final)
    shutil.rmtree(stage)
    shutil.rmtree(old, ignore_errors=True)


def _remove(path):
    if Path(path).is_dir():
        shutil.rmtree(path)
    else:
        Path(path).unlink()
