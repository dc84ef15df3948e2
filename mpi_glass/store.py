"""Files on disk: output folders, atomic writes, hashes, config comparisons.

Every output is written under a temporary name and renamed when complete, so a reader never
sees a half-written file.  What the files hold - every dataset and attribute of sim.h5,
select.h5 and the chain checkpoints - is declared in ``schema``.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import zipfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError

def default_out_dir(cfg):
    return Path("mpi_glass_out") / cfg.name


def check_writable_dir(path):
    """Create ``path`` if needed and make sure we can write there (one-line error if not)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create output directory ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: output directory is not writable")
    return path


def tmp_name(path):
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def publish(tmp, final):
    """Atomically move a finished temporary file to its final name."""
    os.replace(tmp, final)


def save_npz_atomic(path, **arrays):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_npz(path):
    """A checkpoint's arrays; a damaged file is an InputError that says how to recover."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError, OSError) as exc:
        raise InputError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc}); delete "
                         f"this file to recompute its chain, or use --force to start over",
                         same_on_every_rank=False) from None


def read_json(path, what, way_out):
    """A JSON file we wrote; a damaged one is an InputError naming the file and the way out."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: damaged {what} ({type(exc).__name__}); {way_out}") from None


def write_json_atomic(path, obj):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_physics(path):
    """The physics dict a finished file was made with (None if unreadable)."""
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["physics_json"])
    except (OSError, KeyError, ValueError):
        return None


def first_difference(a, b, prefix=""):
    """Dotted name of the first key whose value differs between two nested dicts."""
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            diff = first_difference(va, vb, f"{prefix}{key}.")
            if diff:
                return diff
        elif _normal(va) != _normal(vb):
            return prefix + key
    return None


def _normal(value):
    return json.loads(json.dumps(value, default=_json_default))


# -- the lock of an output folder ---------------------------------------------------------
LOCK_NAME = "mpi_glass.lock"


class FolderLock:
    """Exclusive lock of an output folder: ``mpi_glass.lock`` holding host, pid and start.

    The kernel's ``flock`` decides who holds it (released even on kill -9).  The record in
    the file names the holder for the refusal message, and lets a leftover file of a dead
    process on this host be taken over.  Where the filesystem cannot ``flock``, the record
    alone decides: a live pid on this host, or any record from another host, is refused.
    """

    def __init__(self, folder, command):
        self.path = Path(folder) / LOCK_NAME
        self.command = command
        self.fd = None

    def acquire(self):
        """Take the lock or raise InputError naming its holder; returns a takeover note or None."""
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
                    f"{holder.get('host')}, which is no longer running")
        record = dict(host=socket.gethostname(), pid=os.getpid(), command=self.command,
                      started=datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M:%S UTC"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return note

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
    present = [name for name in names if (stage / name).exists()]
    write_json_atomic(stage / _STAGED_MANIFEST, {"owned": list(names), "new": present})
    _swap(folder, owner)


def recover_staged(folder, owner):
    """Finish a swap a kill cut short, or drop an unfinished staging folder (start of a run)."""
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
