"""Files on disk: output folders, atomic writes, hashes, config comparisons.

Every output is written under a temporary name and renamed when complete, so a reader never
sees a half-written file.  What the files hold - every dataset and attribute of sim.h5,
select.h5 and the chain checkpoints - is declared in ``schema``.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError
from .safefs import claim_new, create_new, writing


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


def write_atomically(path, write, need=0):
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it to ``path``:
    a reader never sees half a file.  The temporary name is never a planted link, and is
    removed if ``write`` fails (a full disk: one line, ``safefs.DiskFull``)."""
    tmp = tmp_name(path)
    with writing(tmp, need):
        claim_new(tmp)
        write(tmp)
    publish(tmp, path)


def save_npz_atomic(path, **arrays):
    """Save a checkpoint: created exclusively (never through a link), fsynced, renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    need = sum(np.asarray(a).nbytes for a in arrays.values())
    with writing(tmp, need) as closers:
        fh = closers.add(os.fdopen(create_new(tmp), "wb"))
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
    publish(tmp, path)


def load_npz(path, keys=None):
    """A checkpoint's arrays (only ``keys``, those present, if given: the others are not
    read); a damaged file is an InputError that says how to recover."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files if keys is None or key in keys}
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
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text), need=len(text.encode()))


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
