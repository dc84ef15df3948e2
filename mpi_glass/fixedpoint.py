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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .model import EPSILON, SIGMA, X_CUT, reduced_pair_energy_x2
from .neighbours import minimum_image, verlet_list

__all__ = ["UNIT", "CAP", "ROUNDER_BITS", "INV_SIGMA2_FLAT", "EPSILON_UNITS_FLAT",
           "ENERGY_CUT2", "biased_units", "pair_units", "squared_distance", "energy_units"]

#: The energy grid (eps_LS): energies in the engine are integers times UNIT.
UNIT = 2.0**-32
#: Largest pair energy (eps_LS) the grid represents; larger values are clamped to it.
CAP = 2.0**18

_CAP_UNITS = CAP / UNIT
_ROUNDER = 1.5 * 2.0**52
#: The bit pattern of ``_ROUNDER``: ``biased_units`` returns value + ROUNDER_BITS.
ROUNDER_BITS = int(np.float64(_ROUNDER).view(np.int64))

#: Flat (3 a + b) tables of 1 / sigma_ab^2 and eps_ab / UNIT (exact: UNIT is a power of 2).
INV_SIGMA2_FLAT = (1.0 / SIGMA**2).ravel()
EPSILON_UNITS_FLAT = (EPSILON / UNIT).ravel()

#: Squared list radius of interactions alone: a hair over r_c so that rounding can never
#: drop an interacting pair.
ENERGY_CUT2 = (X_CUT * SIGMA * (1.0 + 1e-9))**2


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE bit pattern of a float64 as an int64 (a register move, vectorisable)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@njit(cache=True, inline="always", error_model="numpy")
def biased_units(x2, eps_units):
    """round(min(eps V(x), CAP) / UNIT) + ROUNDER_BITS for x2 = (r / sigma_ab)^2 and
    eps_units = eps_ab / UNIT.  The bias cancels in differences, which is all the engine
    needs; ``pair_units`` removes it.

    Examples
    --------
    >>> eps_units = EPSILON_UNITS_FLAT[3 * 0 + 2]          # the S-L pair (sigma_LS = 1)
    >>> biased_units(2.25, eps_units) - ROUNDER_BITS == pair_units(2.25, eps_units)
    True
    """
    e = min(eps_units * reduced_pair_energy_x2(x2), _CAP_UNITS)
    return _float_bits(e + _ROUNDER)


@njit(cache=True, inline="always", error_model="numpy")
def pair_units(x2, eps_units):
    """The pair energy on the grid, in units of UNIT (int64).

    Examples
    --------
    Within half a grid step of the model's potential (S-L pair at r = 1.5 sigma_LS):

    >>> from mpi_glass.model import pair_potential
    >>> units = pair_units(1.5**2, EPSILON_UNITS_FLAT[2])
    >>> bool(abs(units * UNIT - pair_potential(1.5, SIGMA[0, 2], EPSILON[0, 2])) <= UNIT / 2)
    True
    """
    return biased_units(x2, eps_units) - ROUNDER_BITS


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
def _energy_units(pos, species, box, start, nbr):
    half, total = 0.5 * box, np.int64(0)
    for i in range(pos.shape[0]):
        a3 = np.uint64(3) * species[i]
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            if j > i:
                t = a3 + species[j]
                r2 = squared_distance(pos, j, pos[i, 0], pos[i, 1], box, half)
                total += pair_units(r2 * INV_SIGMA2_FLAT[t], EPSILON_UNITS_FLAT[t])
    return total


def energy_units(positions, species, box):
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
    start, nbr = verlet_list(positions, uspecies, float(box), ENERGY_CUT2)
    return int(_energy_units(positions, uspecies, float(box), start, nbr))
