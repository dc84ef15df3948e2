"""Readers of other engines' data for ``mpi_glass import``.

A reader turns the files of one configuration into what ``simfile`` needs from any source
of dynamics: the configuration at t = 0 (positions wrapped into [0, L_x) x [0, L_y)), the
species codes of the model, the box sides (L_x, L_y), the recording steps since t = 0 and
each replica's unwrapped displacements (R, T, N, 2).  Everything else - p, q, F_s^CR, tau_alpha - is
computed by the same code as for simulate's own trajectories (``simfile.observables``).

Formats (``[import] format``):

* ``lammps-dump``: LAMMPS text dumps (``dump custom``), one file per replica, one frame per
  recorded timestep; columns ``id type`` and ``xu yu`` (unwrapped), or ``x y`` with ``ix iy``
  images, or ``x y`` alone (then unwrapped by the minimum image between successive frames,
  which needs every particle to move less than half a side between recorded frames).  Ids
  may come in any order; a ``z`` column is accepted when it is constant (2-D data).
* ``gsd``: HOOMD-blue GSD files through the ``gsd`` package, one file per replica, 2-D
  orthogonal boxes; unwrapped with ``particles/image`` when the file records it in every
  frame, else by the minimum image between successive frames.  Type names map to species by name.
* ``npz``: one NPZ (or HDF5) file per configuration with GlassBench-style arrays ``types``
  (N,), ``initial_positions`` (N, 2), optionally ``box``, and one propensity array (N,) per
  time (``import.propensity_keys``): p is taken from the file, no trajectories.

The first frame of a trajectory is t = 0; the recorded times are the later frames' steps
minus the first one's.  Every replica of every configuration must record the same steps,
the same particle ids with the same types, in the same periodic box, and the
replicas of one configuration must start from the same positions (within
``import.start_tolerance``).  Anything else is a one-line ``InputError`` naming the file.

Boxes are orthogonal and periodic in x and y: square or rectangular (L_x != L_y); a tilted
(triclinic) box is refused.  Each side must exceed twice the bond radius that the
observables follow (``dynamics.check_sides``, checked by ``importing``).

The model enters here only through ``model_species`` (the names that types map to); the
cage and bond cutoffs (sigma_ab) enter through ``simfile.observables``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .validation import check_box

__all__ = ["model_species", "species_codes", "source_paths", "read_lammps_dump", "read_gsd",
           "read_configuration", "read_propensity_file", "SourceFile", "Replica"]


def model_species(cfg):
    """The species names of the config's model, in code order (the seam to the model).

    Examples
    --------
    >>> from mpi_glass.config import load_config
    >>> model_species(load_config("ci"))
    ('S', 'M', 'L')
    """
    return tuple(cfg.model.species_names)


def species_codes(raw, names, types=(), first_type=1, where="types"):
    """Species codes (int8) of the model for the types of a source file.

    Parameters
    ----------
    raw : array_like
        Integer type codes (LAMMPS types 1, 2, ...; ``first_type`` is the model's first
        species) or type names.
    names : sequence of str
        The model's species names (``model_species``).
    types : sequence of str
        ``import.types``: the species named by the integer types in order; empty: the
        model's species in order.  Unused for names.
    first_type : int
        The integer code of the first species (1 for LAMMPS).
    where : str
        Names the file in error messages.

    Examples
    --------
    >>> species_codes([1, 3, 2], ("S", "M", "L")).tolist()
    [0, 2, 1]
    >>> species_codes(["L", "S"], ("S", "M", "L")).tolist()
    [2, 0]
    >>> species_codes([1, 2], ("S", "M", "L"), types=("L", "S")).tolist()
    [2, 0]
    """
    raw = np.asarray(raw)
    names = tuple(names)
    if raw.dtype.kind in "iu" or (raw.dtype.kind in "US" and _all_integers(raw)):
        order = tuple(types) or names
        index = raw.astype(np.int64) - first_type
        bad = (index < 0) | (index >= len(order))
        if bad.any():
            raise InputError(f"{where}: type {int(raw[bad][0])} names no species of the model "
                             f"({', '.join(names)}); map the types with import.types")
        lookup = np.array([names.index(name) for name in order], dtype=np.int8)
        return lookup[index]
    labels = raw.astype(str)
    unknown = sorted(set(labels.tolist()) - set(names))
    if unknown:
        raise InputError(f"{where}: particle types {', '.join(unknown)} are not species of "
                         f"the model ({', '.join(names)})")
    return np.array([names.index(name) for name in labels.tolist()], dtype=np.int8)


def _all_integers(tokens):
    return all(str(t).lstrip("-").isdigit() for t in np.unique(tokens))


def check_types_key(types, names, origin="import.types"):
    """``import.types`` must name species of the model."""
    wrong = [t for t in types if t not in names]
    if wrong:
        raise InputError(f"{origin}: {', '.join(wrong)} not species of the model "
                         f"({', '.join(names)})")


# --- which files --------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceFile:
    """One source file: the name the pattern gave, its path, size and SHA-256."""
    name: str
    path: Path
    size: int
    sha256: str

    @classmethod
    def of(cls, name, path):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return cls(name, Path(path), Path(path).stat().st_size, digest.hexdigest())


def source_paths(imp, base="."):
    """{(c, r): (name, path)} of every source file; r = 0 only for npz.

    The pattern's ``{c}`` and ``{r}`` count from 0; a pattern that cannot tell two sources
    apart, or a file that does not exist, is a one-line error naming import.path.

    Examples
    --------
    >>> from mpi_glass.config import ImportConfig
    >>> imp = ImportConfig(path="c{c}/r{r}.dump", configurations=1, replicas=2)
    >>> source_paths(imp, "runs")
    Traceback (most recent call last):
    ...
    mpi_glass.errors.InputError: runs/c0/r0.dump: no such file (import.path 'c{c}/r{r}.dump' with c = 0, r = 0); check the pattern and import.configurations/replicas
    """
    return _source_paths(imp, base, check=True)


def _source_paths(imp, base, check):
    replicas = 1 if imp.format == "npz" else imp.replicas
    needed = {"c": imp.configurations > 1, "r": replicas > 1}
    for key, wanted in needed.items():
        if wanted and "{" + key + "}" not in imp.path:
            raise InputError(f"import.path: {imp.path!r} must contain {{{key}}} to tell the "
                             f"{'configurations' if key == 'c' else 'replicas'} apart")
    paths = {}
    for c in range(imp.configurations):
        for r in range(replicas):
            try:
                name = imp.path.format(c=c, r=r)
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(f"import.path: {imp.path!r} is not a pattern over {{c}} and "
                                 f"{{r}} ({type(exc).__name__}: {exc})") from None
            path = Path(base) / name
            if check and not path.is_file():
                raise InputError(f"{path}: no such file (import.path {imp.path!r} with c = {c}"
                                 + (f", r = {r}" if imp.format != "npz" else "")
                                 + "); check the pattern and import.configurations/replicas")
            paths[(c, r)] = (name, path)
    return paths


def source_shape(fmt, path):
    """(frames, particles) of a trajectory source from its first frame alone, cheaply (the
    memory estimate); None when that frame cannot tell (the reader will say why).  A dump's
    frame count is its size over its first frame's: exact for frames of equal width.

    Examples
    --------
    >>> import tempfile, os
    >>> frame = ("ITEM: TIMESTEP\\n{}\\nITEM: NUMBER OF ATOMS\\n1\\nITEM: BOX BOUNDS pp pp pp\\n"
    ...          "0 10\\n0 10\\n-0.5 0.5\\nITEM: ATOMS id type x y\\n1 1 1.0 5.0\\n")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "r0.dump")
    ...     with open(path, "w") as fh:
    ...         _ = fh.write(frame.format(0) + frame.format(1) + frame.format(2))
    ...     source_shape("lammps-dump", path)
    (3, 1)
    """
    try:
        if fmt == "lammps-dump":
            return _dump_shape(path)
        if fmt == "gsd":
            import gsd.hoomd
            with gsd.hoomd.open(str(path), "r") as trajectory:
                return len(trajectory), int(trajectory[0].particles.N)
    except Exception:   # noqa: BLE001 - any failure here is the reader's to report
        return None
    return None


def _dump_shape(path):
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        head = [fh.readline() for _ in range(4)]
        if not head[0].startswith(b"ITEM: TIMESTEP"):
            return None
        n = int(head[3])
        frame_bytes = sum(map(len, head)) + sum(len(fh.readline()) for _ in range(5 + n))
    return max(1, round(size / frame_bytes)), n


# --- one trajectory file --------------------------------------------------------------------

@dataclass
class Replica:
    """One trajectory as read: steps (F,), box sides (L_x, L_y) (2,), ids (N,) sorted, raw
    types (N,), positions at t = 0 wrapped into the box (N, 2), displacements (F - 1, N, 2)
    since t = 0."""
    steps: np.ndarray
    box: np.ndarray
    ids: np.ndarray
    types: np.ndarray
    positions0: np.ndarray
    displacements: np.ndarray


def _box_sides(where, sides):
    """The sides (L_x, L_y) of an orthogonal box as float64 (2,), from one side (a square) or
    the first two of several, both positive and finite (``validation.check_box``).

    Examples
    --------
    >>> _box_sides("r0.dump", [9.0, 14.0, 1.0]).tolist(), _box_sides("c0.npz", 12.0).tolist()
    ([9.0, 14.0], [12.0, 12.0])
    """
    sides = np.atleast_1d(np.asarray(sides, dtype=np.float64)).ravel()[:2]
    try:
        return check_box(sides)
    except InputError:
        raise InputError(f"{where}: box {box_text(sides)}: the sides must be positive") from None


def box_text(sides):
    """A box for messages: "L" when square, "L_x x L_y" when not.

    Examples
    --------
    >>> box_text(np.array([10.0, 10.0])), box_text([9.0, 14.5])
    ('10', '9 x 14.5')
    """
    lx, ly = (float(v) for v in np.broadcast_to(np.asarray(sides, dtype=np.float64), (2,)))
    return f"{lx:g}" if lx == ly else f"{lx:g} x {ly:g}"


def _unwrap(frames_xy, side, images=None):
    """Unwrapped positions (F, N, 2) from wrapped ones: with images, x + i L; without, by the
    minimum image between successive frames.  ``side`` is (L_x, L_y) (or one side)."""
    if images is not None:
        return frames_xy + images * side
    steps = np.diff(frames_xy, axis=0)
    steps -= side * np.rint(steps / side)
    return np.concatenate([frames_xy[:1], frames_xy[:1] + np.cumsum(steps, axis=0)])


def _replica(where, steps, side, ids, types, unwrapped, lo):
    """A ``Replica`` from unwrapped positions (F, N, 2) in frame order and the box origin."""
    if len(steps) < 2:
        raise InputError(f"{where}: {len(steps)} frame(s); need t = 0 and at least one later "
                         f"frame")
    if np.any(np.diff(steps) <= 0):
        raise InputError(f"{where}: timesteps are not increasing ({steps.tolist()[:6]} ...)")
    positions0 = np.mod(unwrapped[0] - lo, side)
    positions0[positions0 >= side] = 0.0           # -tiny mod L rounds up to L
    return Replica(np.asarray(steps, dtype=np.int64), side, ids, types, positions0,
                   (unwrapped[1:] - unwrapped[0]).astype(np.float32))


def _check_flat(where, z):
    """A z column is fine when constant (2-D data written by a 3-D-minded tool)."""
    if z is not None and np.ptp(z) > 0:
        raise InputError(f"{where}: 3-D data (z varies by {np.ptp(z):.3g}); mpi_glass is "
                         f"2-D only")


# --- LAMMPS dump --------------------------------------------------------------------------

def read_lammps_dump(path):
    """One LAMMPS text dump (``dump custom``) as a ``Replica``.

    Parameters
    ----------
    path : str or Path
        The dump: frames ``ITEM: TIMESTEP``, ``NUMBER OF ATOMS``, ``BOX BOUNDS`` (periodic,
        orthogonal) and ``ATOMS id type ...`` with ``xu yu``, or ``x y`` (with or without
        ``ix iy``), or their scaled forms ``xsu ysu``, ``xs ys``; an optional z column must
        be constant.

    Returns
    -------
    Replica
        Ids sorted; raw types (str) as in the file.

    Examples
    --------
    >>> import tempfile, os
    >>> frame = ("ITEM: TIMESTEP\\n{}\\nITEM: NUMBER OF ATOMS\\n2\\nITEM: BOX BOUNDS pp pp pp\\n"
    ...          "0 10\\n0 10\\n-0.5 0.5\\nITEM: ATOMS id type x y\\n2 1 9.9 5\\n1 2 {} 5\\n")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "r0.dump")
    ...     with open(path, "w") as fh:
    ...         _ = fh.write(frame.format(0, 1.0) + frame.format(100, 1.5))
    ...     rep = read_lammps_dump(path)
    >>> rep.steps.tolist(), rep.ids.tolist(), rep.types.tolist()
    ([0, 100], [1, 2], ['2', '1'])
    >>> rep.displacements[0].round(6).tolist()
    [[0.5, 0.0], [0.0, 0.0]]
    """
    where = str(path)
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read as a LAMMPS text dump ({exc})") from None
    frames = list(_dump_frames(where, lines))
    if not frames:
        raise InputError(f"{where}: no 'ITEM: TIMESTEP' frame; not a LAMMPS text dump")
    steps = np.array([f["step"] for f in frames], dtype=np.int64)
    lo, sides = frames[0]["lo"], frames[0]["sides"]
    for f in frames[1:]:
        if not (np.array_equal(f["lo"], lo) and np.array_equal(f["sides"], sides)):
            raise InputError(f"{where}: the box changes at timestep {f['step']}; mpi_glass "
                             f"needs a fixed box")
    side = _box_sides(where, sides)
    ids, types = frames[0]["ids"], frames[0]["types"]
    for f in frames[1:]:
        if not np.array_equal(f["ids"], ids):
            raise InputError(f"{where}: the particle ids at timestep {f['step']} differ from "
                             f"the first frame's")
        if not np.array_equal(f["types"], types):
            raise InputError(f"{where}: particle types change at timestep {f['step']}")
    xy = np.stack([f["xy"] for f in frames])
    images = np.stack([f["images"] for f in frames]) if frames[0]["images"] is not None \
        else None
    unwrapped = xy if frames[0]["unwrapped"] else _unwrap(xy, side, images)
    _check_flat(where, np.concatenate([f["z"] for f in frames])
                if frames[0]["z"] is not None else None)
    return _replica(where, steps, side, ids, types, unwrapped, lo)


def _dump_frames(where, lines):
    """Parse the frames of a dump: {step, lo, sides, ids, types, xy, images, z, unwrapped}."""
    k, total = 0, len(lines)
    layout = None
    while k < total:
        if lines[k].startswith(("ITEM: UNITS", "ITEM: TIME\n", "ITEM: TIME ")) or \
                lines[k].strip() == "ITEM: TIME":      # dump_modify units/time yes
            k += 2
            continue
        if not lines[k].startswith("ITEM: TIMESTEP"):
            if lines[k].strip():
                raise InputError(f"{where}: line {k + 1}: expected 'ITEM: TIMESTEP', got "
                                 f"{lines[k][:40]!r}")
            k += 1
            continue
        try:
            step = int(lines[k + 1].split()[0])
            assert lines[k + 2].startswith("ITEM: NUMBER OF ATOMS")
            n = int(lines[k + 3])
            bounds = lines[k + 4].split()
            assert bounds[:3] == ["ITEM:", "BOX", "BOUNDS"]
            box = np.array([[float(v) for v in lines[k + 5 + d].split()[:2]] for d in range(2)])
            header = lines[k + 8].split()
            assert header[:2] == ["ITEM:", "ATOMS"]
            rows = lines[k + 9:k + 9 + n]
            assert len(rows) == n
        except (IndexError, ValueError, AssertionError):
            raise InputError(f"{where}: line {k + 1}: a frame that is not a LAMMPS text dump "
                             f"frame (truncated?)") from None
        if any(tilt in bounds for tilt in ("xy", "xz", "yz")):
            raise InputError(f"{where}: triclinic box; mpi_glass handles orthogonal (square or "
                             f"rectangular) boxes only")
        if bounds[3:5] != ["pp", "pp"]:
            raise InputError(f"{where}: box bounds {' '.join(bounds[3:])}: x and y must be "
                             f"periodic (pp)")
        columns = header[2:]
        if layout is None:
            layout, first_columns = _dump_layout(where, columns), columns
        elif columns != first_columns:
            raise InputError(f"{where}: the columns change at timestep {step}")
        yield _dump_frame(where, step, box, _dump_table(where, step, rows, len(columns)),
                          layout)
        k += 9 + n


def _dump_table(where, step, rows, width):
    """The rows of a frame as an (n, width) array: float64 when every entry is a number (C
    speed), else strings (type labels)."""
    text = " ".join(rows)
    table = np.fromstring(text, sep=" ")       # stops at the first non-number
    if table.size != len(rows) * width:
        table = np.array(text.split())
        if table.size != len(rows) * width:
            raise InputError(f"{where}: timestep {step}: expected {len(rows)} rows of "
                             f"{width} columns")
    return table.reshape(len(rows), width)


#: Coordinate columns of a dump, in order of preference: (x, y names, unwrapped, scaled).
_DUMP_COORDINATES = (("xu", "yu", True, False), ("x", "y", False, False),
                     ("xsu", "ysu", True, True), ("xs", "ys", False, True))


def _dump_layout(where, columns):
    """Column indices of id, type, the coordinates (x y, xu yu, xs ys or xsu ysu), ix iy and
    z, whether the coordinates are unwrapped and scaled; or a one-line error."""
    col = {name: j for j, name in enumerate(columns)}
    missing = [name for name in ("id", "type") if name not in col]
    found = [(col[x], col[y], unwrapped, scaled)
             for x, y, unwrapped, scaled in _DUMP_COORDINATES if x in col and y in col]
    if not found:
        missing.append("x y (or xu yu, xs ys, xsu ysu)")
    if missing:
        raise InputError(f"{where}: ATOMS columns {' '.join(columns)} lack {', '.join(missing)}"
                         f"; write 'dump custom ... id type x y ix iy' (or xu yu)")
    x, y, unwrapped, scaled = found[0]
    images = (col["ix"], col["iy"]) if "ix" in col and "iy" in col and not unwrapped else None
    z = col.get("zu", col.get("z", col.get("zsu", col.get("zs"))))
    return col["id"], col["type"], (x, y), images, z, unwrapped, scaled


def _dump_frame(where, step, box, table, layout):
    id_col, type_col, xy_cols, image_cols, z_col, unwrapped, scaled = layout
    try:
        ids = _whole(table[:, id_col])
        xy = table[:, list(xy_cols)].astype(np.float64)
        if scaled:                  # fractions of the box from its lower bound
            xy = box[:, 0] + xy * (box[:, 1] - box[:, 0])
        images = _whole(table[:, list(image_cols)]) if image_cols else None
        z = table[:, z_col].astype(np.float64) if z_col is not None else None
    except ValueError:
        raise InputError(f"{where}: timestep {step}: a number column holds text") from None
    order = np.argsort(ids, kind="stable")
    if np.any(np.diff(ids[order]) == 0):
        raise InputError(f"{where}: timestep {step}: particle ids repeat")
    types = table[order, type_col]
    types = _whole(types).astype(str) if types.dtype.kind == "f" else types
    return dict(step=step, lo=box[:, 0], sides=box[:, 1] - box[:, 0], ids=ids[order],
                types=types, xy=xy[order],
                images=None if images is None else images[order],
                z=None if z is None else z[order], unwrapped=unwrapped)


def _whole(column):
    """Integers from a number or text column; a fraction is not an id, type or image."""
    value = column.astype(np.float64)
    if np.any(value != np.rint(value)):
        raise ValueError("not whole numbers")
    return value.astype(np.int64)


# --- HOOMD-blue GSD -----------------------------------------------------------------------

def read_gsd(path):
    """One HOOMD-blue GSD trajectory as a ``Replica`` (types as names).

    Examples
    --------
    >>> rep = read_gsd("replica.gsd")                           # doctest: +SKIP
    >>> rep.steps, rep.types[:3]                                # doctest: +SKIP
    """
    where = str(path)
    try:
        import gsd.hoomd
    except ImportError:
        raise InputError(f"{where}: reading GSD files needs the 'gsd' package "
                         f"(pip install 'mpi_glass[import]')") from None
    try:
        trajectory = gsd.hoomd.open(str(path), "r")
    except Exception as exc:   # noqa: BLE001 - gsd raises several kinds for a foreign file
        raise InputError(f"{where}: not a readable GSD file ({type(exc).__name__})") from None
    with trajectory:
        frames = [trajectory[i] for i in range(len(trajectory))]
        images_recorded = all(trajectory.file.chunk_exists(frame=i, name="particles/image")
                              for i in range(len(trajectory)))
    if not frames:
        raise InputError(f"{where}: no frames")
    first = frames[0]
    box = np.asarray(first.configuration.box, dtype=np.float64)
    names = list(first.particles.types)
    n = first.particles.N
    for f in frames[1:]:
        if not np.array_equal(np.asarray(f.configuration.box, dtype=np.float64), box):
            raise InputError(f"{where}: the box changes at step {f.configuration.step}; "
                             f"mpi_glass needs a fixed box")
        if f.particles.N != n or list(f.particles.types) != names or \
                not np.array_equal(f.particles.typeid, first.particles.typeid):
            raise InputError(f"{where}: the particles or their types change at step "
                             f"{f.configuration.step}")
    if np.any(box[3:] != 0):
        raise InputError(f"{where}: tilted box; mpi_glass handles orthogonal (square or "
                         f"rectangular) boxes only")
    side = _box_sides(where, box[:2])
    positions = np.stack([np.asarray(f.particles.position, dtype=np.float64) for f in frames])
    if first.configuration.dimensions != 2:
        _check_flat(where, positions[..., 2].ravel())
    images = np.stack([np.asarray(f.particles.image[:, :2], dtype=np.int64) for f in frames]) \
        if images_recorded else None
    unwrapped = _unwrap(positions[..., :2], side, images)
    steps = np.array([f.configuration.step for f in frames], dtype=np.int64)
    types = np.array([names[t] for t in first.particles.typeid])
    return _replica(where, steps, side, np.arange(n), types, unwrapped, -side / 2.0)


# --- one configuration from its replicas ---------------------------------------------------

def read_configuration(imp, names, files, c):
    """Configuration c from its R trajectory files: the dict ``simfile.Trajectories.load``
    returns, plus ``steps`` (T,) since t = 0, ``box`` and ``ids`` for the cross-checks.

    ``files`` maps (c, r) to ``SourceFile``; ``names`` are the model's species.
    """
    reader = read_lammps_dump if imp.format == "lammps-dump" else read_gsd
    replicas = [(files[(c, r)], reader(files[(c, r)].path)) for r in range(imp.replicas)]
    (ref_file, ref), where = replicas[0], str(replicas[0][0].path)
    for source, rep in replicas[1:]:
        _same_trajectory_frame(imp, ref_file, ref, source, rep)
    species = species_codes(ref.types, names, imp.types, 1, where)
    return dict(positions=ref.positions0, species=species,
                displacements=np.stack([rep.displacements for _, rep in replicas]),
                steps=ref.steps - ref.steps[0], box=ref.box, ids=ref.ids)


def _same_trajectory_frame(imp, ref_file, ref, source, rep):
    """The replicas of one configuration: same steps, box, ids, types and start."""
    where, first = str(source.path), str(ref_file.path)
    if not np.array_equal(rep.steps - rep.steps[0], ref.steps - ref.steps[0]):
        raise InputError(f"{where}: frames at steps {_steps_text(rep.steps)} but "
                         f"{first} has {_steps_text(ref.steps)}; every replica must record "
                         f"the same times")
    if not np.array_equal(rep.box, ref.box):
        raise InputError(f"{where}: box {box_text(rep.box)} differs from {first}'s "
                         f"{box_text(ref.box)}")
    if not np.array_equal(rep.ids, ref.ids):
        raise InputError(f"{where}: particle ids differ from {first}'s")
    if not np.array_equal(rep.types, ref.types):
        raise InputError(f"{where}: particle types differ from {first}'s")
    gap = rep.positions0 - ref.positions0
    gap -= ref.box * np.rint(gap / ref.box)
    worst = float(np.hypot(gap[:, 0], gap[:, 1]).max())
    if worst > imp.start_tolerance:
        raise InputError(f"{where}: starts up to {worst:.3g} sigma_LS away from {first}'s "
                         f"first frame (tolerance import.start_tolerance = "
                         f"{imp.start_tolerance:g}); replicas must start from one "
                         f"configuration")


def _steps_text(steps):
    steps = steps.tolist()
    return str(steps) if len(steps) <= 6 else f"[{steps[0]}, {steps[1]}, ..., {steps[-1]}] " \
                                              f"({len(steps)} frames)"


# --- per-configuration propensity files -----------------------------------------------------

def read_propensity_file(imp, names, source):
    """One GlassBench-style NPZ/HDF5 file: positions at t = 0, species, box and p (T, N).

    Examples
    --------
    >>> one = read_propensity_file(imp, ("S", "M", "L"), source)   # doctest: +SKIP
    """
    where = str(source.path)
    arrays = _load_arrays(where, source.path, ("types", "initial_positions", "box",
                                               *imp.propensity_keys))
    for key in ("types", "initial_positions", *imp.propensity_keys):
        if key not in arrays:
            raise InputError(f"{where}: no array '{key}'")
    positions = np.asarray(arrays["initial_positions"], dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] not in (2, 3):
        raise InputError(f"{where}: initial_positions: expected (N, 2), got {positions.shape}")
    if positions.shape[1] == 3:
        _check_flat(where, positions[:, 2])
    n = len(positions)
    if "box" in arrays:
        side = _box_sides(where, arrays["box"])
    elif np.all(np.asarray(imp.box) > 0):
        side = _box_sides("import.box", imp.box)
    else:
        raise InputError(f"{where}: no 'box' array; give the box as import.box (a side, or "
                         f"[L_x, L_y])")
    types = np.asarray(arrays["types"])
    if types.shape != (n,):
        raise InputError(f"{where}: types: expected ({n},), got {types.shape}")
    p = []
    for key in imp.propensity_keys:
        value = np.asarray(arrays[key], dtype=np.float64)
        if value.shape != (n,) or not np.all(np.isfinite(value)):
            raise InputError(f"{where}: {key}: expected {n} finite propensities, got shape "
                             f"{value.shape}")
        p.append(value)
    return dict(positions=_wrapped(positions[:, :2], side), box=side,
                species=species_codes(types, names, imp.types, imp.first_type, where),
                p=np.stack(p))


def _wrapped(positions, side):
    out = np.mod(positions, side)
    out[out >= side] = 0.0
    return out


def _load_arrays(where, path, keys):
    """The named arrays of an NPZ or HDF5 file (whichever it is), those present."""
    try:
        if str(path).endswith((".h5", ".hdf5")):
            import h5py
            with h5py.File(path, "r") as f:
                return {key: f[key][()] for key in keys if key in f}
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys if key in data.files}
    except Exception as exc:   # noqa: BLE001 - zip, pickle and HDF5 errors alike
        raise InputError(f"{where}: not a readable NPZ or HDF5 file ({type(exc).__name__})") \
            from None


def propensity_steps(imp):
    """import.propensity_times as whole steps of import.time_per_step (int64)."""
    times = np.asarray(imp.propensity_times, dtype=np.float64)
    steps = np.rint(times / imp.time_per_step)
    if np.any(np.abs(steps * imp.time_per_step - times) > 1e-9 * np.maximum(times, 1.0)):
        raise InputError(f"import.propensity_times: {imp.propensity_times} are not whole "
                         f"multiples of import.time_per_step = {imp.time_per_step:g}")
    return steps.astype(np.int64)
