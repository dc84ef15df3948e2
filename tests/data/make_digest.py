#!/usr/bin/env python3
"""Reference digest of the pipeline's numbers: the proof that a refactoring changed nothing.

Runs ``simulate`` then ``select`` serially on ``tests/data/digest.toml`` (seconds) and
returns the SHA-256 of every array of sim.h5, of select's numeric results and of every
number of report.json, keyed by a *logical* name (the quantity, not where the file keeps
it), so the digest survives a change of file layout.  ``tests/test_digest.py`` recomputes it
and compares with ``tests/data/digest.json``.

A change that is *meant* to change the numbers (a new MC kernel, new proposals, another
Lasso) regenerates the reference with one command, from the repository root::

    .venv/bin/python tests/data/make_digest.py --write
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "digest.toml"
REFERENCE = HERE / "digest.json"

#: report.json keys that are not results: wall times, paths, hashes of the file layout.
NOT_RESULTS = ("timings", "provenance", "figures")


def run_pipeline(out_dir):
    """simulate + select on the digest config, serially; returns the output folder."""
    from mpi_glass.config import load_config
    from mpi_glass.parallel import serial
    from mpi_glass.selection import Selection
    from mpi_glass.simulate import Simulation

    cfg = load_config(CONFIG)
    out_dir = Path(out_dir)
    sim_path = Simulation(cfg, out_dir, serial()).run()
    Selection(cfg, out_dir, sim_path, serial()).run()
    return out_dir


def sha256_of(value):
    """SHA-256 of an array's dtype, shape and bytes; of UTF-8 text for lists of strings."""
    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        text = "\n".join(v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel())
        return hashlib.sha256(f"{array.shape}|".encode() + text.encode()).hexdigest()
    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}|{array.shape}|".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def sim_arrays(path):
    """{logical name: array} of every array of sim.h5 (logical name: its path in schema 1)."""
    from mpi_glass.schema import SIM_FIELDS, read_sim
    data = read_sim(path, displacements=True)
    return {spec.path.lstrip("/"): getattr(data, name) for name, spec in SIM_FIELDS.items()
            if not name.endswith("_index") and getattr(data, name) is not None}


def select_arrays(path):
    """{logical name: array} of select.h5's features and per-configuration selections."""
    from mpi_glass.schema import read_select
    data = read_select(path)
    found = {"features/values": data.feature_values, "features/names": data.feature_names}
    for method in ("supervised", "unsupervised"):
        for key in ("names", "delta_forward", "delta_backward"):
            for c, row in enumerate(getattr(data, f"{method}_{key}")):
                found[f"{method}/{c}/{key}"] = row
    return found


def report_numbers(path):
    """{top-level key: canonical JSON} of report.json without timings and provenance."""
    doc = json.loads(Path(path).read_text())
    return {f"report/{key}": json.dumps(value, sort_keys=True)
            for key, value in doc.items() if key not in NOT_RESULTS}


def digest(out_dir):
    """{logical name: SHA-256} of everything ``run_pipeline`` computed."""
    out_dir = Path(out_dir)
    entries = {f"sim/{k}": sha256_of(v) for k, v in sim_arrays(out_dir / "sim.h5").items()}
    entries.update({f"select/{k}": sha256_of(v)
                    for k, v in select_arrays(out_dir / "select.h5").items()})
    entries.update({k: hashlib.sha256(v.encode()).hexdigest()
                    for k, v in report_numbers(out_dir / "report.json").items()})
    return dict(sorted(entries.items()))


def compute():
    with tempfile.TemporaryDirectory() as tmp:
        return digest(run_pipeline(Path(tmp) / "out"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help=f"overwrite the reference {REFERENCE.name} (else print)")
    args = parser.parse_args(argv)
    result = compute()
    text = json.dumps(result, indent=1) + "\n"
    if args.write:
        REFERENCE.write_text(text)
        print(f"wrote {REFERENCE} ({len(result)} entries)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
