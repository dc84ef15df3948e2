"""Up-front memory estimates of ``simulate``, ``select`` and ``import``, checked against this
host.

A run that cannot fit is refused before it writes anything, with the estimate and the key
to change, instead of growing until the kernel kills it.  The estimates count the large
arrays each rank holds at its peak (see the ``*_parts`` functions) with a margin for the
interpreter and libraries; ``mpi_glass config NAME --memory`` prints them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from .ensembles import build_ensembles
from .errors import InputError

#: Interpreter, numpy, numba and h5py before any array of ours (measured RSS ~150 MB).
BASELINE_BYTES = 300 * 2**20
#: Per particle in a running chain: positions, images, start (3 x 16 B), species and the
#: Verlet list (~40 neighbours incl. skin, int64) with its offsets.
CHAIN_BYTES_PER_PARTICLE = 3 * 16 + 1 + 48 * 8
#: Per particle while computing the 60 features: coarse-graining sums (6 x 10 lengths) and
#: the local descriptors.
FEATURE_BYTES_PER_PARTICLE = 6 * 10 * 8 + 64


def _recorded_times(cfg):
    return len(build_ensembles(cfg)[0].times)


def simulate_parts(cfg, ranks=1):
    """{what (key to change): bytes} held at the peak by the busiest rank of ``simulate``."""
    n, dyn = cfg.system.n, cfg.dynamics
    t = _recorded_times(cfg)
    owned = math.ceil(dyn.configurations / ranks)
    return {
        "one chain's state (system.n)": n * CHAIN_BYTES_PER_PARTICLE,
        "one trajectory's recorded displacements (dynamics.t_max, dynamics.per_decade)":
            t * n * 2 * 4,
        "displacements of the configurations a rank assembles, +1 on the root "
        "(dynamics.replicas)": (owned + 1) * dyn.replicas * t * n * 2 * 4,
        "p, q of every configuration, twice (dynamics.configurations)":
            2 * 2 * dyn.configurations * t * n * 8,
    }


def select_parts(cfg, ranks=1):
    """{what (key to change): bytes} held at the peak by a rank of ``select``."""
    n, c = cfg.system.n, cfg.dynamics.configurations
    m = 6 * len(cfg.select.lengths)
    t = _recorded_times(cfg)
    return {
        "p, q read from sim.h5 (dynamics.configurations)": 2 * c * t * n * 8,
        "features, gathered and standardised (select.lengths)": 3 * c * n * m * 8,
        "feature buffers of one configuration (system.n)": n * FEATURE_BYTES_PER_PARTICLE,
        "information-imbalance buffers (system.n)": 4 * n * m * 8,
    }


#: Bytes held per byte of a LAMMPS text dump while it is parsed: the text, its lines as
#: strings, the joined rows and their number table (measured 5.7-6.3 for 45-byte atom lines
#: with tracemalloc; shorter lines cost more per byte).
DUMP_PARSE_BYTES_PER_BYTE = 10
#: Bytes per particle and frame while a GSD file is read: its frames (float32 positions and
#: images), float64 positions, images and unwrapped positions.
GSD_PARSE_BYTES = 96


def import_parts(imp, shapes, sizes, ranks=1):
    """{what (key to change): bytes} held at the peak by the busiest rank of ``import``.

    ``shapes`` {file name: (frames, n)} from ``importers.source_shape`` (None entries are
    skipped), ``sizes`` {file name: bytes} of the source files.
    """
    known = [shape for shape in shapes.values() if shape is not None]
    if not known:
        return {}
    frames, n = max(f for f, _ in known), max(n for _, n in known)
    largest = max(sizes, key=sizes.get)
    parse = (DUMP_PARSE_BYTES_PER_BYTE * sizes[largest] if imp.format == "lammps-dump"
             else GSD_PARSE_BYTES * frames * n)
    owned = math.ceil(imp.configurations / ranks)
    return {
        f"{largest} while it is parsed (the largest source file)": parse,
        "displacements of the configurations a rank reads (import.configurations, "
        "import.replicas)": owned * imp.replicas * (frames - 1) * n * 2 * 4,
        "p, q of every configuration, twice (import.configurations)":
            2 * 2 * imp.configurations * frames * n * 8,
    }


#: Per file: HDF5 or zip structure, attributes (the config, the physics) and small arrays.
FILE_OVERHEAD_BYTES = 256 * 2**10
#: Safety factor on the disk estimates (they count the arrays, not the containers).
DISK_MARGIN = 1.1


def _samples(cfg):
    return cfg.equilibration_sweeps // cfg.equilibration.sample_every


def sim_file_bytes(cfg):
    """Upper estimate of sim.h5's size: displacements, p, q, configurations, series."""
    from .simulate import build_ensembles
    main = build_ensembles(cfg)[0]
    n, c, r, t = cfg.system.n, main.configurations, main.replicas, len(main.times)
    arrays = (c * r * t * n * 2 * 4          # displacements, float32
              + 2 * c * t * n * 8             # p, q
              + c * n * (2 * 8 + 1)           # positions, species
              + 5 * c * _samples(cfg) * 8     # energy, overlap, swap series
              + 2 * c * t * 8)                # F_s^CR and friends
    return int(DISK_MARGIN * arrays) + FILE_OVERHEAD_BYTES


def checkpoint_bytes(cfg):
    """Upper estimate of sim.h5.checkpoint/ once every chain is done (the peak: sim.h5 is
    written from it)."""
    from .simulate import build_ensembles
    n = cfg.system.n
    state = n * (2 * 8 + 2 * 8 + 1)            # positions, images, species
    total_bytes = 0
    for ens in build_ensembles(cfg):
        eq = state + n * (2 * 8 + 1) + 2 * _samples(cfg) * 8    # reference, energy, overlap
        traj = state + n * 2 * 8 + len(ens.times) * n * 2 * 4   # start, records
        total_bytes += ens.configurations * (eq + 4096 + ens.replicas * (traj + 4096))
    return int(DISK_MARGIN * total_bytes) + 4096


def simulate_disk_parts(cfg):
    """{what: bytes} simulate writes into its output folder at its peak."""
    return {"sim.h5": sim_file_bytes(cfg), "checkpoints": checkpoint_bytes(cfg)}


def select_disk_parts(cfg):
    """{what: bytes} select writes: select.h5 (features), the report and figures."""
    n, c, m = cfg.system.n, cfg.dynamics.configurations, 6 * len(cfg.select.lengths)
    return {"select.h5": int(DISK_MARGIN * c * n * m * 8) + FILE_OVERHEAD_BYTES,
            "report and figures": 2 * 2**20}


def check_simulate_room(cfg, folder, ckpt_dir):
    """Refuse a folder without room for sim.h5 and the checkpoints still to be written
    (those already in ``ckpt_dir``, a resumed run's, are counted as written)."""
    from .safefs import check_room
    parts = simulate_disk_parts(cfg)
    present = 0
    for entry in Path(ckpt_dir).glob("*.npz"):
        try:
            present += entry.stat().st_size
        except OSError:
            pass
    parts["checkpoints"] = max(parts["checkpoints"] - present, 0)
    return check_room(folder, parts, "simulate")


def total(parts):
    return BASELINE_BYTES + sum(parts.values())


def available_bytes():
    """Memory this process may still use: MemAvailable, capped by a cgroup limit; None if unknown."""
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not candidates and hasattr(os, "sysconf"):
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    room = _cgroup_room()
    if room is not None:
        candidates.append(room)
    return min(candidates) if candidates else None


def _cgroup_room():
    """Limit minus usage of this process's cgroup (v2, then v1); None without a limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
            if text == "max" or int(text) >= 2**60:
                return None
            return int(text) - int(Path(usage).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def human(n_bytes):
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes / 2**10:.3g} kB"


#: What to do about a run that does not fit, by command.
_ADVICE = {"import": "import fewer configurations per run, or spread the ranks over more "
                     "nodes"}


def check_fits(command, parts, ranks_here, available=None):
    """Refuse (InputError) when ``ranks_here`` ranks of ``parts`` exceed the available memory.

    The message gives the estimate and names the key of the largest part.
    """
    available = available_bytes() if available is None else available
    need = total(parts) * ranks_here
    if available is None or need <= available:
        return need
    largest = max(parts, key=parts.get)
    per_rank = f" ({ranks_here} ranks on this host x {human(total(parts))})" \
        if ranks_here > 1 else ""
    advice = _ADVICE.get(command, "reduce that key or system.n (every part grows with it), "
                                  "or spread the ranks over more nodes")
    raise InputError(f"{command}: needs about {human(need)} of memory{per_rank}, "
                     f"{human(available)} available; the largest part is {largest}: "
                     f"{human(parts[largest])}; {advice}")


def refuse_if_too_big(dist, command, parts):
    """``check_fits`` for this host's ranks, decided on the root for every rank."""
    from .progress import LOGGER
    ranks_here = dist.ranks_on_this_host()
    need = dist.root_decides(lambda: check_fits(command, parts, ranks_here))
    if dist.is_root:
        LOGGER.debug(f"{command}: memory estimate {human(need)} for {ranks_here} rank(s) on "
                     f"this host, {human(available_bytes() or 0)} available")
    return need


def estimate_table(cfg, ranks=1):
    """The estimate of both commands as text lines (``mpi_glass config NAME --memory``)."""
    lines = [f"memory estimate per rank for {cfg.name} with {ranks} rank(s):"]
    for command, parts in (("simulate", simulate_parts(cfg, ranks)),
                           ("select", select_parts(cfg, ranks))):
        lines.append(f"  {command}: {human(total(parts))} "
                     f"(incl. {human(BASELINE_BYTES)} for the interpreter)")
        for what, size in parts.items():
            lines.append(f"    {human(size):>9s}  {what}")
    available = available_bytes()
    if available is not None:
        lines.append(f"  available on this host now: {human(available)}")
    lines.append("disk space in the output folder:")
    for command, parts in (("simulate", simulate_disk_parts(cfg)),
                           ("select", select_disk_parts(cfg))):
        lines.append(f"  {command}: {human(sum(parts.values()))}")
        for what, size in parts.items():
            lines.append(f"    {human(size):>9s}  {what}")
    return "\n".join(lines)
