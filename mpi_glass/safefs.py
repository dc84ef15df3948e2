"""Files in an output folder someone else can write to, on a disk that can fill up.

* Links: nothing mpi_glass creates, truncates, renames or removes in its output folder ever
  follows a symbolic link.  ``refuse_planted`` checks the names a command will touch before
  any computation (one line, exit 2); ``create_new`` creates a file with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a link planted later is refused too, never written
  through.
* Inputs (a config, sim.h5) must be regular files: a FIFO or a device would block in
  ``open`` or be read forever (``check_regular_input``).
* A full disk: ``writing`` wraps the writing of one temporary file; on any failure it
  closes what the writer registered, removes the file, and turns "no space left" (however
  HDF5 words it) into one line naming the file and the bytes it needs.  ``free_bytes`` and
  ``check_room`` refuse a folder without room before a long run.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> fd = create_new(folder / "a.tmp"); os.close(fd)
>>> (folder / "b").symlink_to(folder / "a.tmp")
>>> refuse_planted(folder, {"b": "file"})
Traceback (most recent call last):
...
mpi_glass.errors.InputError: .../b: is a symbolic link (to .../a.tmp); mpi_glass never writes through links in its output folder: remove it
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

#: errno values meaning the disk (or the quota) is full.
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: How HDF5 words a full disk inside its messages (it loses the errno on the way up).
_FULL_TEXTS = ("errno = 28", "errno = 122", "No space left on device", "Disk quota exceeded")

_KINDS = {"file": (stat.S_ISREG, "a regular file"), "dir": (stat.S_ISDIR, "a directory")}


class DiskFull(InputError):
    """The disk filled up while writing a file: free space, rerun to resume."""


def _type_name(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def refuse_planted(folder, names):
    """Refuse (InputError) a symbolic link, or a file of the wrong type, at any of ``names``.

    ``names``: {name inside ``folder``: "file" or "dir"}, what that name must be if it exists.
    """
    for name, kind in names.items():
        path = Path(folder) / name
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise InputError(f"{path}: is a symbolic link (to {os.readlink(path)}); mpi_glass "
                             f"never writes through links in its output folder: remove it")
        test, wanted = _KINDS[kind]
        if not test(mode):
            raise InputError(f"{path}: is {_type_name(mode)}, expected {wanted} (or nothing); "
                             f"move it away or remove it")


def refuse_links_inside(folder):
    """Refuse a symbolic link or a special file (FIFO, device) among ``folder``'s entries."""
    try:
        entries = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in entries:
        mode = os.lstat(Path(folder) / name).st_mode
        refuse_planted(folder, {name: "dir" if stat.S_ISDIR(mode) else "file"})


def create_new(path, mode=0o644):
    """Create ``path`` for writing, never through a link; a stale regular file is replaced.

    Returns the file descriptor.  A link or another type of file at ``path`` is refused.
    """
    path = Path(path)
    refuse_planted(path.parent, {path.name: "file"})
    try:
        os.unlink(path)     # a leftover of a killed run (unlink never follows a link)
    except FileNotFoundError:
        pass
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise InputError(f"{path}: appeared while mpi_glass was creating it; another program "
                         f"writes in this folder: stop it and rerun") from None


def claim_new(path):
    """Make sure ``path`` can be created by a library that opens it by name (HDF5 with mode
    "x", which is O_EXCL, so it never follows a link): drop a stale regular file there."""
    os.close(create_new(path))
    os.unlink(path)


def new_h5_with_room(path, need):
    """Create an empty HDF5 file at ``path`` (never through a link) with ``need`` bytes of
    disk reserved; the writer then opens it with mode "r+".

    HDF5 does not survive a write that fails for want of space: the objects of the file can
    no longer be closed, and freeing them later crashes the interpreter.  So the space is
    reserved first (``fallocate``: a full disk fails here, cleanly), and HDF5 writes
    into blocks it already owns; it trims the file to its real size when it closes it.
    """
    import h5py
    with writing(path, need) as closers:
        claim_new(path)
        closers.add(h5py.File(path, "x")).close()
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        try:
            reserve(fd, need)
        finally:
            os.close(fd)


def reserve(fd, size):
    """Allocate ``size`` bytes to the open file ``fd`` (Linux ``fallocate``).

    A full disk raises OSError(ENOSPC).  Where the filesystem cannot allocate ahead (NFS v3,
    another OS) nothing is done: glibc's ``posix_fallocate`` would emulate it by writing
    every block, far too slow for a large file there; the write is guarded anyway.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):
        return
    fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if fallocate(fd, 0, 0, int(size)) != 0:
        code = ctypes.get_errno()
        if code in FULL_ERRNOS:
            raise OSError(code, os.strerror(code))


def check_regular_input(path, what):
    """Refuse an input that is not a regular file (a FIFO would block ``open``)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return      # missing or unreadable: the reader says so in its own words
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {_type_name(mode)}, not a regular file; pass the {what} "
                         f"file itself")


def remove_quietly(path):
    """Remove a temporary file or folder of ours (never following a link); ignore errors."""
    path = Path(path)
    if path.is_symlink():
        return      # not ours: planted (refused elsewhere), and never followed
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        pass


def free_bytes(folder):
    """Bytes an unprivileged user may still write in ``folder``'s filesystem (None if unknown)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def is_disk_full(exc):
    """Whether ``exc`` (or an exception it was raised from or during) means a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if any(text in str(exc) for text in _FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path, need):
    """The one-line DiskFull for ``path``, which needs about ``need`` bytes."""
    from .memory import human
    free = free_bytes(Path(path).parent)
    have = "" if free is None else f", {human(free)} free"
    return DiskFull(f"{path}: disk full while writing it (needs about {human(need)}{have}); "
                    f"free space and rerun the same command to resume", same_on_every_rank=False)


class _Closers(list):
    def add(self, closer):
        self.append(closer)
        return closer


@contextmanager
def writing(path, need):
    """Write the temporary file (or folder) ``path`` in the block, about ``need`` bytes.

    Yields a list: ``.add(obj)`` registers an open h5py file (or anything with ``close``)
    to close before ``path`` is removed.  On any failure the registered objects are closed,
    errors of their closing ignored - HDF5 must close a file whose write failed, or it
    crashes later when the objects are freed - and ``path`` is removed.  A full disk raises
    ``DiskFull``; anything else is re-raised.
    """
    closers = _Closers()
    try:
        yield closers
    except BaseException as exc:
        for obj in reversed(closers):
            try:
                obj.close()
            except Exception:   # noqa: BLE001 - a failed write fails its close too
                pass
        remove_quietly(path)
        if isinstance(exc, Exception) and not isinstance(exc, InputError) \
                and is_disk_full(exc):      # (an inner file's DiskFull says it already)
            raise disk_full_error(path, need) from None
        raise


def check_room(folder, parts, command):
    """Refuse (InputError) when ``folder`` has less free space than ``sum(parts)``.

    ``parts``: {what: bytes still to be written}.  Returns the bytes needed.
    """
    from .memory import human
    need = sum(parts.values())
    free = free_bytes(folder)
    if free is None or need <= free:
        return need
    detail = ", ".join(f"{what} {human(size)}" for what, size in parts.items())
    raise InputError(f"{folder}: {command} needs about {human(need)} of disk ({detail}), "
                     f"{human(free)} free there; free space or choose another --out")
