"""The ternary two-dimensional Lennard-Jones glass former of Sharma, Liu & Ozawa (2024).

Species are indexed 0 = S (small), 1 = M (medium), 2 = L (large).  The pair potential is
Lennard-Jones, cut at r_c = 2.5 sigma_ab and made twice continuously differentiable by the
LAMMPS ``lj/smooth``-style quartic between r_in = 2.0 sigma_ab and r_c (DESIGN.md):

    x < 2:        V = eps [4 (x^-12 - x^-6) + C],   C = 475/16384
    2 <= x < 2.5: V = eps sum_k a_k (x - 2)^k
    x >= 2.5:     V = 0

with x = r / sigma_ab.  ``tests/test_model.py`` derives the coefficients independently
(matching V, V', V'' at x = 2 and V = V' = V'' = 0 at x = 2.5).

Units: lengths in sigma_LS, energies in eps_LS, temperature in eps_LS / k_B.
"""
import math

import numpy as np
from numba import njit

__all__ = ["SIGMA", "EPSILON", "SPECIES_NAMES", "N_SPECIES", "X_INNER", "X_CUT", "MAX_CUTOFF",
           "PAPER_COUNTS", "PAPER_FRACTIONS", "PAPER_DENSITY", "pair_potential",
           "pair_potential_derivative", "pair_energy_x2", "reduced_pair_energy_x2",
           "composition_counts", "box_side", "species_array"]

SPECIES_NAMES = ("S", "M", "L")
N_SPECIES = 3

#: The paper's system: 1760 S, 800 M and 1440 L particles of N = 4000 ...
PAPER_COUNTS = (1760, 800, 1440)
#: ... as fractions (0.44, 0.20, 0.36), which any N can use ...
PAPER_FRACTIONS = tuple(count / sum(PAPER_COUNTS) for count in PAPER_COUNTS)
#: ... at number density N / L^2 = 1.024.
PAPER_DENSITY = 1.024

_S_SS = 2.0 * math.sin(math.pi / 10.0)
_S_LL = 2.0 * math.sin(math.pi / 5.0)
_S_LS = 1.0
_E_SS, _E_LL, _E_LS = 0.5, 0.5, 1.0

#: sigma_ab, indexed [a, b] with 0 = S, 1 = M, 2 = L (symmetric).
SIGMA = np.array([
    [_S_SS, (_S_LS + _S_SS) / 2, _S_LS],
    [(_S_LS + _S_SS) / 2, (_S_LL + _S_SS) / 2, (_S_LL + _S_LS) / 2],
    [_S_LS, (_S_LL + _S_LS) / 2, _S_LL],
])
#: eps_ab, same indexing as SIGMA.
EPSILON = np.array([
    [_E_SS, (_E_LS + _E_SS) / 2, _E_LS],
    [(_E_LS + _E_SS) / 2, (_E_LL + _E_SS) / 2, (_E_LL + _E_LS) / 2],
    [_E_LS, (_E_LL + _E_LS) / 2, _E_LL],
])
SIGMA.setflags(write=False)
EPSILON.setflags(write=False)

X_INNER = 2.0       #: r_in / sigma_ab: start of the smoothing polynomial
X_CUT = 2.5         #: r_c / sigma_ab: the potential is exactly zero beyond
LJ_SHIFT = 475.0 / 16384.0
POLY = (-533.0 / 16384.0, 93.0 / 512.0, -633.0 / 2048.0, 25.0 / 256.0, 111.0 / 1024.0)
_A0, _A1, _A2, _A3, _A4 = POLY

#: Largest interaction range of the model, in sigma_LS (the L-L cutoff).
MAX_CUTOFF = X_CUT * float(SIGMA.max())


def pair_potential(r, sigma, epsilon):
    """V(r) for arrays of distances ``r`` and matching (broadcastable) sigma, epsilon."""
    r, sigma, epsilon = np.broadcast_arrays(np.asarray(r, float), sigma, epsilon)
    x = r / sigma
    lj = 4.0 * (x**-12 - x**-6) + LJ_SHIFT
    t = x - X_INNER
    poly = _A0 + t * (_A1 + t * (_A2 + t * (_A3 + t * _A4)))
    v = np.where(x < X_INNER, lj, np.where(x < X_CUT, poly, 0.0))
    return epsilon * v


def pair_potential_derivative(r, sigma, epsilon):
    """dV/dr, the negative of the radial force (used by tests and analysis)."""
    r, sigma, epsilon = np.broadcast_arrays(np.asarray(r, float), sigma, epsilon)
    x = r / sigma
    dlj = 4.0 * (-12.0 * x**-13 + 6.0 * x**-7)
    t = x - X_INNER
    dpoly = _A1 + t * (2 * _A2 + t * (3 * _A3 + t * 4 * _A4))
    dv = np.where(x < X_INNER, dlj, np.where(x < X_CUT, dpoly, 0.0))
    return epsilon * dv / sigma


@njit(cache=True, inline="always")
def pair_energy_x2(x2, epsilon):
    """V for a squared reduced distance x2 = (r / sigma_ab)^2; numba scalar kernel.

    Working with x^2 keeps the LJ branch free of square roots; only the smoothing shell
    (4 <= x2 < 6.25) needs one.
    """
    if x2 >= X_CUT * X_CUT:
        return 0.0
    if x2 < X_INNER * X_INNER:
        inv6 = 1.0 / (x2 * x2 * x2)
        return epsilon * (4.0 * inv6 * (inv6 - 1.0) + LJ_SHIFT)
    t = math.sqrt(x2) - X_INNER
    return epsilon * (_A0 + t * (_A1 + t * (_A2 + t * (_A3 + t * _A4))))


@njit(cache=True, inline="always", error_model="numpy")
def reduced_pair_energy_x2(x2):
    """V / eps_ab for x2 = (r / sigma_ab)^2, branch-free: both branches are evaluated and the
    right one selected, so loops over many pairs vectorise.  ``eps * reduced_pair_energy_x2(x2)``
    is bit-identical to ``pair_energy_x2(x2, eps)``: the same operations in the same order.
    """
    inv6 = 1.0 / (x2 * x2 * x2)
    lj = 4.0 * inv6 * (inv6 - 1.0) + LJ_SHIFT
    t = math.sqrt(x2) - X_INNER
    poly = _A0 + t * (_A1 + t * (_A2 + t * (_A3 + t * _A4)))
    v = poly if x2 < X_CUT * X_CUT else 0.0
    return lj if x2 < X_INNER * X_INNER else v


def composition_counts(n, composition):
    """Particle counts (n_S, n_M, n_L) from counts or fractions summing to 1.

    Fractions are turned into counts by largest-remainder rounding so the counts always sum
    to n; counts must sum to n exactly.

    Examples
    --------
    >>> composition_counts(1000, PAPER_FRACTIONS).tolist()
    [440, 200, 360]
    """
    comp = np.asarray(composition, dtype=float)
    if comp.shape != (N_SPECIES,) or np.any(comp < 0) or not np.all(np.isfinite(comp)):
        raise ValueError("composition must be three non-negative numbers (S, M, L)")
    if np.all(comp == np.round(comp)) and comp.sum() > 1.0 + 1e-12:
        counts = comp.astype(np.int64)
        if counts.sum() != n:
            raise ValueError(f"composition counts sum to {counts.sum()}, not n = {n}")
        return counts
    if abs(comp.sum() - 1.0) > 1e-9:
        raise ValueError(f"composition fractions sum to {comp.sum():g}, not 1")
    exact = comp * n
    counts = np.floor(exact).astype(np.int64)
    remainder = n - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def box_side(n, density):
    """Side L of the square box holding n particles at number density n / L^2.

    Examples
    --------
    >>> box_side(1000, 1.024)
    31.25
    """
    return math.sqrt(n / density)


def species_array(counts):
    """Species labels (int8) laid out S..., M..., L... for the given counts."""
    return np.repeat(np.arange(N_SPECIES, dtype=np.int8), counts)
