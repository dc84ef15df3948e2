"""Propensities by their definitions in plain numpy, over all pairs (O(N^2)): the independent
reference of ``mpi_glass.dynamics`` for ``test_dynamics`` and of imported data for
``test_import``."""
import numpy as np
from scipy.special import j0

from mpi_glass.model import SIGMA


def numpy_cage(pos, species, sides):
    """(r0 (N, N, 2) minimum-image r_j - r_i, cage (N, N) bool) over all pairs in numpy."""
    sigma = SIGMA[species[:, None], species[None, :]]
    r0 = pos[None, :, :] - pos[:, None, :]
    r0 -= sides * np.rint(r0 / sides)
    return r0, (np.hypot(r0[..., 0], r0[..., 1]) < 1.4 * sigma) & ~np.eye(len(pos), dtype=bool)


def numpy_cage_relative(cage, d):
    """Delta r^CR of one frame d (N, 2): drift removed, minus the cage mean (n_i > 0)."""
    n0 = cage.sum(axis=1)
    d = d - d.mean(axis=0)
    return d - np.where(n0[:, None] > 0, (cage @ d) / np.maximum(n0, 1)[:, None], 0.0)


def numpy_propensities(pos, species, sides, disp):
    """p, q (T, N) and F_s^CR (T,) by the definitions, over all pairs: cage neighbours within
    1.4 sigma_ab at t = 0, centre-of-mass drift removed, bonds surviving within 1.8 sigma_ab,
    F_s = <J0(6.3 |dr^CR|)>; disp (R, T, N, 2); sides (L_x, L_y), the minimum image taken
    side by side."""
    sigma = SIGMA[species[:, None], species[None, :]]
    r0, cage = numpy_cage(pos, species, sides)
    n0 = cage.sum(axis=1)
    p, q = np.zeros(disp.shape[1:3]), np.zeros(disp.shape[1:3])
    fs = np.zeros(disp.shape[1])
    for replica in disp:
        for t, d in enumerate(replica.astype(np.float64)):
            dcr = numpy_cage_relative(cage, d)
            d = d - d.mean(axis=0)
            p[t] += np.hypot(dcr[:, 0], dcr[:, 1])
            fs[t] += j0(6.3 * np.hypot(dcr[:, 0], dcr[:, 1])).mean()
            rt = r0 + d[None, :, :] - d[:, None, :]
            rt -= sides * np.rint(rt / sides)
            kept = (np.hypot(rt[..., 0], rt[..., 1]) < 1.8 * sigma) & cage
            q[t] += np.where(n0 > 0, kept.sum(axis=1) / np.maximum(n0, 1), 1.0)
    return p / len(disp), q / len(disp), fs / len(disp)
