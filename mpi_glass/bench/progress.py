"""Cost of run-wide progress under MPI: ``mpi_glass bench progress --ranks 8``.

Every rank runs the MC kernel on its own N = 1000 liquid, in segments of 100 sweeps cut like
the start of a ``simulate`` trajectory: one kernel call per log-spaced recording time (8 per
decade: 1, 2, 3, 4, 5, 6, 7, 10, 13, ... 100 sweeps, the densest stretch of a real record),
each followed by a report to a ``parallel.ProgressCounter`` (rank 0 also reads the total) as
``simulate`` does.  Silent twin segments (same calls, no reports) alternate with them, so the
two are measured side by side in one run, in CPU time of the thread: ranks sharing cores do
not distort them.  A third kind reports after every single sweep, a worst case far beyond
``simulate``'s cadence.  The run happens in an empty folder that is checked afterwards, and
the write system calls of the loop are counted (``/proc/self/io``, Linux): progress writes no
files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["progress_cost"]

#: The system each rank simulates, and the sweeps of one measured segment.
_N = 1000
_TEMPERATURE = 0.5
_SEGMENT = 100


def progress_cost(ranks=8, seconds=20.0):
    """Run the measurement under ``mpiexec -n ranks`` in an empty folder; returns the figures.

    Keys: ``extra_cpu_percent`` (the cost: extra CPU time of a reporting segment over its
    silent twin, mean over all pairs of all ranks, with its standard error),
    ``ab_cpu_ratio`` (total CPU of the reporting segments over the silent ones),
    ``in_call_percent`` (CPU time measured inside the progress calls over the reporting
    segments' CPU, worst rank; an overstatement: the first Python statement after a long
    kernel call pays a cache refill that the silent twin pays in its next statement), the
    same for reports after every sweep (``in_call_percent_every_sweep``),
    ``microseconds_per_report`` (worst rank),
    ``counted_equals_done`` (rank 0's final total equals the work all ranks did),
    ``write_syscalls_in_loop`` (all ranks, the loop only) and ``files_created``.
    """
    from .simulate import _mpiexec
    with tempfile.TemporaryDirectory(prefix="mpi_glass_progress_") as work:
        cmd = [_mpiexec(), "-n", str(int(ranks)), sys.executable, "-m",
               "mpi_glass.bench.progress", "--seconds", str(float(seconds))]
        proc = subprocess.run(cmd, cwd=work, check=True, capture_output=True, text=True,
                              env=os.environ.copy())
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["files_created"] = sorted(os.listdir(work))
    return result


def _write_syscalls():
    """Write system calls of this process so far (Linux), else None."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return None
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("syscw")))


def _liquid(seed):
    from ..mc import initial_configuration, new_rng_state, run_sweeps
    from ..model import PAPER_DENSITY, PAPER_FRACTIONS, box_side, composition_counts, \
        species_array
    counts = composition_counts(_N, PAPER_FRACTIONS)
    box = box_side(_N, PAPER_DENSITY)
    rng = new_rng_state(np.random.SeedSequence([seed]))
    pos = initial_configuration(counts, box, rng)
    img = np.zeros((_N, 2), np.int64)
    species = species_array(counts)
    run_sweeps(pos, img, species, box, rng, 20, _TEMPERATURE, 0.12)     # compile, relax
    return pos, img, species, box, rng


def _measure(seconds):
    """One rank's share: rotate through the three kinds of segment for ``seconds`` of wall."""
    from ..dynamics import log_times
    from ..mc import run_sweeps
    from ..parallel import Distributor
    dist = Distributor()
    pos, img, species, box, rng = _liquid(dist.rank)
    counter = dist.progress_counter()
    calls = {"cadence": np.diff(log_times(_SEGMENT, 8), prepend=0),
             "silent": np.diff(log_times(_SEGMENT, 8), prepend=0),
             "every_sweep": np.ones(_SEGMENT, np.int64)}
    cpu = {kind: 0.0 for kind in calls}
    paired = []                 # (reporting, silent) CPU seconds of each pair of segments
    in_calls = {kind: 0.0 for kind in calls}
    reports = {kind: 0 for kind in calls}
    segments = 0
    writes = _write_syscalls()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for kind, lengths in calls.items():
            start = time.thread_time()
            for sweeps in lengths:
                run_sweeps(pos, img, species, box, rng, int(sweeps), _TEMPERATURE, 0.12)
                if kind != "silent":
                    call = time.thread_time()
                    counter.add(int(sweeps) * _N)
                    if dist.is_root:
                        counter.total()
                    in_calls[kind] += time.thread_time() - call
                    reports[kind] += 1
            cpu[kind] += time.thread_time() - start
            if kind != "every_sweep":
                paired.append(time.thread_time() - start)
        segments += 1
    writes = None if writes is None else _write_syscalls() - writes
    total = counter.close()
    return dist, dict(cpu=cpu, in_calls=in_calls, reports=reports, segments=segments,
                      paired=paired,
                      writes=writes, counted=total, done=counter.mine)


def _summary(parts, counted):
    def overhead(kind):
        return 100.0 * max(p["in_calls"][kind] / p["cpu"][kind] for p in parts)

    writes = [p["writes"] for p in parts]
    pairs = np.array([pair for p in parts for pair in zip(p["paired"][::2], p["paired"][1::2])])
    extra = 100.0 * (pairs[:, 0] / pairs[:, 1] - 1.0)
    return {"ranks": len(parts), "n": _N, "segments_per_rank": parts[0]["segments"],
            "reports_per_segment": parts[0]["reports"]["cadence"] // parts[0]["segments"],
            "extra_cpu_percent": float(extra.mean()),
            "extra_cpu_percent_stderr": float(extra.std(ddof=1) / math.sqrt(len(extra))),
            "ab_cpu_ratio": (sum(p["cpu"]["cadence"] for p in parts)
                             / sum(p["cpu"]["silent"] for p in parts)),
            "in_call_percent": overhead("cadence"),
            "in_call_percent_every_sweep": overhead("every_sweep"),
            "microseconds_per_report": 1e6 * max(
                sum(p["in_calls"].values()) / sum(p["reports"].values()) for p in parts),
            "counted_equals_done": counted == sum(p["done"] for p in parts),
            "write_syscalls_in_loop": None if None in writes else sum(writes)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    dist, mine = _measure(args.seconds)
    parts = dist.gather(mine)
    if dist.is_root:
        print(json.dumps(_summary(parts, mine["counted"])))


if __name__ == "__main__":
    main()
