"""Numba's on-disk kernel cache, kept in step with the whole package's source.

numba keys each cached kernel on the source of the one file that defines it, not on the files
whose functions it inlines: after an edit of ``fixedpoint.py`` (or a ``git pull`` that changes
it), the cached engine of ``mc.py`` would go on running the old pair energy, silently.  So the
package keeps one digest of its kernel sources beside each of its cache directories; where the
digest differs, that directory's cache indexes are dropped and numba compiles afresh (once).
``mpi_glass/__init__.py`` calls ``refresh()`` on import, before any kernel is loaded.

The cache directories are those numba uses: ``__pycache__`` beside each source directory, or,
with ``NUMBA_CACHE_DIR`` set (the ``slurm/`` scripts do), the per-directory folders numba makes
there.  An install whose folders cannot be written is left alone: its sources do not change
in place.
"""
from __future__ import annotations

import hashlib
import os

__all__ = ["sources_digest", "cache_directories", "refresh"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_STAMP = "mpi_glass_sources.sha256"


def _source_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _defines_kernels(source):
    return b"\nfrom numba" in source or b"\nimport numba" in source


def sources_digest(root=_PACKAGE):
    """SHA-256 (hex) of the ``.py`` files under ``root`` that import numba (the ones kernels
    and the globals they freeze come from: an edit of the command line or the config costs no
    recompile), names and contents in a fixed order.

    Examples
    --------
    >>> len(sources_digest())
    64
    """
    digest = hashlib.sha256()
    for path in _source_files(root):
        with open(path, "rb") as f:
            source = f.read()
        if _defines_kernels(source):
            digest.update(os.path.relpath(path, root).encode() + b"\0" + source)
    return digest.hexdigest()


def cache_directories(root=_PACKAGE, cache_dir=None):
    """Where numba caches the kernels of each source directory under ``root``: its
    ``__pycache__``, or, given ``cache_dir`` (``NUMBA_CACHE_DIR``), numba's folder for it there
    (the directory's name and the SHA-1 of its absolute path)."""
    folders = sorted({os.path.dirname(p) for p in _source_files(root)})
    if not cache_dir:
        return [os.path.join(f, "__pycache__") for f in folders]
    return [os.path.join(cache_dir, "_".join([os.path.basename(f),
                                              hashlib.sha1(f.encode()).hexdigest()]))
            for f in folders]


def refresh(root=_PACKAGE, cache_dir=None):
    """Drop the cached kernel indexes of every cache directory whose stamp is not the digest
    of the sources under ``root``, then stamp it; returns the directories refreshed.

    Without ``cache_dir`` the one numba uses is taken from ``NUMBA_CACHE_DIR``.  Safe when
    several processes (MPI ranks) do it at once: a dropped index only means one more compile.
    """
    if cache_dir is None:
        cache_dir = os.environ.get("NUMBA_CACHE_DIR", "")
    digest = sources_digest(root)
    refreshed = []
    for folder in cache_directories(root, cache_dir):
        stamp = os.path.join(folder, _STAMP)
        try:
            with open(stamp) as f:
                if f.read() == digest:
                    continue
        except OSError:
            pass
        if _drop_indexes(folder) and _write_stamp(stamp, digest):
            refreshed.append(folder)
    return refreshed


def _drop_indexes(folder):
    """Remove numba's index files (``*.nbi``) in ``folder``: without its index a kernel's
    cached code is never loaded, and the next compile overwrites it.  False if the folder
    exists but cannot be changed."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for name in names:
        if name.endswith(".nbi"):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass            # another rank was first
            except OSError:
                return False
    return True


def _write_stamp(stamp, digest):
    try:
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        temporary = f"{stamp}.{os.getpid()}.tmp"
        with open(temporary, "w") as f:
            f.write(digest)
        os.replace(temporary, stamp)
        return True
    except OSError:
        return False
