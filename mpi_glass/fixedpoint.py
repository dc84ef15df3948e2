"""Pair energies on a fixed-point grid, so that sums of them are exact in any order.

The Monte Carlo engine rounds every pair energy eps_ab V(r) to the nearest multiple of
``UNIT`` = 2^-32 eps_LS and adds the resulting integers.  Integer addition is associative,
so an energy change summed over a neighbour-list row has the same bits whatever the order
of the row, the skin members it carries (they add exactly 0) or the lanes a vectorised loop
splits it into -- which is what lets the engine's inner loop vectorise in one pass without
giving up bit-identical restarts.  Each pair's value is a function of that pair's
minimum-image vector alone, so the total ``energy_units`` is a function of the
configuration and the sum of the accepted changes equals its change exactly (no drift).

Rounding uses the 1.5 * 2^52 trick: adding it to a double below 2^51 in magnitude rounds
to the nearest integer (ties to even) in plain IEEE arithmetic, and the integer is then the
low bits of the sum.  It vectorises on any x86-64 (AVX2 has no packed double-to-int64
conversion) and needs no fast-math.  A pair energy is clamped at ``CAP`` = 2^18 eps_LS so
the scaled value stays below 2^50: V exceeds it only at r < 0.39 sigma_ab, a state of
Boltzmann weight exp(-2^18 / T), so no physics is lost.  Below the cap each pair energy is
within UNIT / 2 (1.2e-10 eps_LS) of ``model.pair_potential``.
"""
import numpy as np
from numba import njit

from .floatbits import float_bits
from .model import DEFAULT_MODEL, reduced_pair_energy_x2
from .neighbours import minimum_image, verlet_list

__all__ = ["UNIT", "CAP", "ROUNDER_BITS", "epsilon_units_flat", "growth_floor_units",
           "biased_units", "pair_units", "squared_distance", "energy_units"]

#: The energy grid (eps_LS): energies in the engine are integers times UNIT.
UNIT = 2.0**-32
#: Largest pair energy (eps_LS) the grid represents; larger values are clamped to it.
CAP = 2.0**18

_CAP_UNITS = CAP / UNIT
_ROUNDER = 1.5 * 2.0**52
#: The bit pattern of ``_ROUNDER``: ``biased_units`` returns value + ROUNDER_BITS.
ROUNDER_BITS = int(np.float64(_ROUNDER).view(np.int64))

#: Samples per sigma_ab of the scan behind ``growth_floor_units``.
_FLOOR_SAMPLES = 200_000


def epsilon_units_flat(model):
    """eps_ab / UNIT, flat (K a + b); exact, UNIT being a power of 2."""
    return (model.epsilon / UNIT).ravel()


def growth_floor_units(model):
    """Flat (K a + b) lower bounds, in UNIT, on eps_bs V_bs(r) - eps_as V_as(r) on the grid,
    over every distance r and partner species s: how far one pair's energy can fall when a
    particle of species a becomes b.  ``mc`` stops a swap's sum early once the partial sum
    plus this floor for every entry left reaches the rejection limit.

    Both energies are evaluated by ``pair_units`` itself (capping and rounding included) on
    ``_FLOOR_SAMPLES`` points per sigma up to the largest cutoff.  Between two neighbouring
    samples the new energy is at least the smaller and the old one at most the larger of
    their two values wherever they are monotone, which they are but near the new one's
    minimum, where it is flat (a dip of ~h^2 V'' / 8, 1e-10 eps); a margin of 1 % of the
    largest eps_ab plus 4 UNIT covers that many times over.  ``tests/test_mc.py`` checks
    the floor against a scan 7 times finer on shifted points, and the early rejection bit
    for bit against the full sum, for every named model.
    """
    k = model.n_species
    r = np.arange(1, int(_FLOOR_SAMPLES * model.max_cutoff) + 2) / _FLOOR_SAMPLES
    floor = np.zeros(k * k, np.int64)
    eps_units = epsilon_units_flat(model)
    margin = int(0.01 * eps_units.max()) + 4
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            worst = 0
            for s in range(k):
                new = _units_on(r * r / model.sigma[b, s]**2, eps_units[k * b + s],
                                model.form_of(b, s))
                old = _units_on(r * r / model.sigma[a, s]**2, eps_units[k * a + s],
                                model.form_of(a, s))
                lower = np.minimum(new[1:], new[:-1]) - np.maximum(old[1:], old[:-1])
                worst = min(worst, int(lower.min()) - margin)
            floor[k * a + b] = worst
    floor.setflags(write=False)
    return floor


@njit(cache=True)
def _units_on(x2, eps_units, form):
    out = np.empty(x2.size, np.int64)
    for k in range(x2.size):
        out[k] = pair_units(x2[k], eps_units, form, 0)
    return out


@njit(cache=True, inline="always", error_model="numpy")
def biased_units(x2, eps_units, forms, pair):
    """round(min(eps V(x), CAP) / UNIT) + ROUNDER_BITS for x2 = (r / sigma_ab)^2,
    eps_units = eps_ab / UNIT and flat pair ``pair`` of the model's ``pair_forms`` (as
    ``model.reduced_pair_energy_x2``).  The bias cancels in
    differences, which is all the engine needs; ``pair_units`` removes it.

    Examples
    --------
    >>> from mpi_glass.model import named
    >>> m = named("sharma2024")
    >>> eps_units = epsilon_units_flat(m)[3 * 0 + 2]          # the S-L pair (sigma_LS = 1)
    >>> (biased_units(2.25, eps_units, m.pair_forms, 2) - ROUNDER_BITS
    ...  == pair_units(2.25, eps_units, m.pair_forms, 2))
    True
    """
    e = min(eps_units * reduced_pair_energy_x2(x2, forms, pair), _CAP_UNITS)
    return float_bits(e + _ROUNDER)


@njit(cache=True, inline="always", error_model="numpy")
def pair_units(x2, eps_units, forms, pair):
    """The pair energy on the grid, in units of UNIT (int64).

    Examples
    --------
    Within half a grid step of the model's potential (S-L pair at r = 1.5 sigma_LS):

    >>> from mpi_glass.model import SHARMA2024 as m, pair_potential
    >>> units = pair_units(1.5**2, epsilon_units_flat(m)[2], m.pair_forms, 2)
    >>> bool(abs(units * UNIT - pair_potential(1.5, m.sigma[0, 2], m.epsilon[0, 2])) <= UNIT / 2)
    True
    """
    return biased_units(x2, eps_units, forms, pair) - ROUNDER_BITS


@njit(cache=True, inline="always")
def squared_distance(pos, j, x, y, box, half):
    """|r_j - (x, y)|^2, minimum image: the one formula every pair energy is computed by, so
    that a pair's value is the same from either end and at any time.

    Examples
    --------
    >>> squared_distance(np.array([[0.5, 0.5]]), 0, 9.5, 0.5, 10.0, 5.0)   # across the edge
    1.0
    """
    rx = minimum_image(pos[j, 0] - x, box, half)
    ry = minimum_image(pos[j, 1] - y, box, half)
    return rx * rx + ry * ry


@njit(cache=True)
def _energy_units(pos, species, box, start, nbr, n_species, inv_sigma2, eps_units, forms):
    half, total = 0.5 * box, np.int64(0)
    for i in range(pos.shape[0]):
        ak = np.uint64(n_species) * species[i]
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            if j > i:
                t = ak + species[j]
                r2 = squared_distance(pos, j, pos[i, 0], pos[i, 1], box, half)
                total += pair_units(r2 * inv_sigma2[t], eps_units[t], forms, t)
    return total


def energy_units(positions, species, box, model=DEFAULT_MODEL):
    """Total potential energy of a configuration on the grid, an exact Python int (times
    ``UNIT`` gives eps_LS).  positions (N, 2) in [0, box), species (N,) int8.

    Examples
    --------
    >>> units = energy_units(np.array([[1.0, 1.0], [2.5, 1.0]]), np.array([0, 2]), 8.0)
    >>> type(units), round(units * UNIT, 8)
    (<class 'int'>, -0.2913449)
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    uspecies = np.ascontiguousarray(species, dtype=np.int8).view(np.uint8)
    start, nbr = verlet_list(positions, uspecies, float(box), model.energy_cut2)
    return int(_energy_units(positions, uspecies, float(box), start, nbr, model.n_species,
                             model.inv_sigma2_flat, epsilon_units_flat(model),
                             model.pair_forms))
