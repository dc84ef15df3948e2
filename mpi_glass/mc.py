"""Metropolis Monte Carlo for the ternary 2-D Lennard-Jones glass former (numba kernels).

Moves.  One sweep is N trials.  A displacement trial picks a particle uniformly and moves it
by a vector uniform in the square [-delta_max/2, delta_max/2)^2; a swap trial (chosen with
probability ``swap_probability``, equilibration only) exchanges the species of two particles
of species adjacent in size, S<->M or M<->L (``_swap_proposal``).  Both are accepted with
min(1, exp(-dE/T)).

Neighbours.  dE needs only the moved (or relabelled) particle's pairs, found in a Verlet list
(``neighbours``) of radius r_c,ab + skin.  Without swaps the radius is per species pair (an
S-S pair needs far fewer neighbours than L-L).  With swaps a species can change, so every
pair is listed within the largest cutoff + skin, but each row is banded by the cutoffs of
the species its particle could have: a displacement trial still reads only the pairs within
its own per-pair cutoffs + skin, and a swap trial the pairs within the larger of the two
species' cutoffs.  A pair missing from what a trial reads was at least r_c + skin apart at
the build, so it cannot interact while (how far the trial takes i from its build position)
+ (the farthest any particle has gone from its build position) <= skin; a trial that would
break this first rebuilds the list.  Using the trial particle's own reach rather than
assuming the two farthest particles meet rebuilds ~40% less often than the textbook skin/2
rule.

Energy changes.  Every pair energy is rounded to a fixed-point grid of 2^-32 eps_LS
(``fixedpoint``) and the changes are summed as int64.  Integer sums are exact in any order,
so one branch-free loop over the row evaluates the old and the new pair energies and sums
their difference, and LLVM vectorises it (gathers, packed division and square root) -- no
fast-math, no ordering pass.  The accepted changes add up exactly to the change of the
grid energy ``total_energy_units``: the energy ledger cannot drift.

Swap trials stop early.  A swap's dE is that of the particle that shrinks (summed in full)
plus that of the one that grows, which is large and positive for almost every proposal
(median +34 eps_LS at T = 0.5; 0.4 % of swaps are accepted).  The uniform u is drawn first,
so the smallest dE that Metropolis is certain to reject is known (``_rejection_limit``); the
growing particle's row is summed 16 entries at a time, and once the partial sum plus a
floor for each entry left (``PairModel.growth_floor_units``, scanned from the model) reaches that limit the trial is
rejected without the rest.  The decision is the one the full sum gives, bit for bit (the
full sum is at least the bound), and an accepted dE is always the full sum; at T = 0.5 it
skips about 40 % of the growing particle's row (87 % of swaps stop early).

Exact restarts.  All state is (positions, images, species, rng_state): the list is rebuilt at
the start of every call, and each dE depends only on the current positions and species --
pairs beyond the cutoff add exactly 0 and the integer sum does not depend on the order of
the row, so neither the skin nor the time of the last build can change a bit.
``run_sweeps(a); run_sweeps(b)`` is therefore bit-identical to ``run_sweeps(a + b)``, and to
any other skin.  The arithmetic is plain IEEE double (add, multiply, divide, square root,
all correctly rounded whether scalar or packed; no fused multiply-add, no fast-math), so the
same inputs give the same bits on any x86-64 CPU, with or without AVX-512.

Random numbers.  xoshiro256** (Blackman & Vigna 2018), implemented here in numba so the
stream is independent of numpy versions and its whole state is four uint64 words that a
checkpoint stores and restores exactly.  Seeded from a ``numpy.random.SeedSequence``.  Each
displacement trial takes three draws whatever its outcome: the particle (Lemire's unbiased
multiply-and-reject), the step (two 32-bit uniforms) and the acceptance uniform (53 bits).

Positions stay wrapped in [0, box); ``images`` (int64) counts box crossings, so
``unwrap(positions, images, box)`` is the continuous trajectory.  The box must be at least
twice the largest cutoff (else ``InputError``); it need not hold twice cutoff + skin, since
the torus distance is a metric and narrow boxes are simply searched whole.
"""
import math
from collections import namedtuple

import numpy as np
from numba import njit

from .errors import InputError
from .fixedpoint import UNIT, biased_units, energy_units, epsilon_units_flat, squared_distance
from .model import DEFAULT_MODEL, composition_counts, pair_energy_x2, species_array
from .neighbours import (add_to_cell, clear_of, linked_cell_of, linked_cells, minimum_image,
                         verlet_list, verlet_pairs)
from .validation import check_configuration, check_square_box

__all__ = ["SKIN", "SWAP_PAIRS", "MCStats", "EngineTables", "engine_tables", "new_rng_state",
           "particle_energies", "total_energy", "total_energy_units", "unwrap", "run_sweeps",
           "initial_configuration"]

EngineTables = namedtuple("EngineTables", ["n_species", "inv_sigma2", "eps_units", "forms",
                                           "partners", "growth_floor", "pair_slot", "level"])
EngineTables.__doc__ = """The model as the engine's kernels take it (``engine_tables``): flat
(K a + b) tables of 1 / sigma_ab^2, eps_ab / UNIT, swap partners (uint8), the early-rejection
floor of a -> b (``PairModel.growth_floor_units``) and the counter slot of {a, b}; the pair
forms (``PairModel.pair_forms``: one vector, or one row per flat pair); level[a], the size
rank of species a, which orders the bands of a row."""


def engine_tables(model):
    """The ``EngineTables`` of a ``PairModel`` (cached on nothing: cheap, and the model's own
    tables are cached)."""
    return EngineTables(np.int64(model.n_species), model.inv_sigma2_flat,
                        epsilon_units_flat(model), model.pair_forms,
                        np.ascontiguousarray(model.swap_partners.ravel()),
                        model.growth_floor_units, model.pair_slot, model.size_rank)

#: Entries summed between two checks of the early rejection of a swap (``_growth_change``).
_CHUNK = 16

#: Verlet skin (sigma_LS), tuned with ``benchmark`` at N = 4000 for T = 0.3 ... 1.0: thinner
#: skins rebuild too often, thicker ones drag too many idle pairs through every trial.
SKIN = 0.7

MCStats = namedtuple("MCStats", ["moves_accepted", "moves_attempted", "swaps_accepted",
                                 "swaps_attempted", "energy_change", "list_builds",
                                 "neighbours_examined", "energy_change_units",
                                 "pair_swaps_accepted", "pair_swaps_attempted"])
MCStats.__doc__ = """Counts of one ``run_sweeps`` call; ``energy_change`` is the sum of the
accepted dE (eps_LS), ``energy_change_units`` the same exactly, an integer number of
``fixedpoint.UNIT`` equal to the change of ``total_energy_units``; ``neighbours_examined``
counts list entries visited (for the benchmark); ``pair_swaps_*`` are (K (K - 1) / 2,) int64
arrays of swap counts per species pair, in the order of ``PairModel.swap_pairs``."""

#: Species pairs of the paper's model's swap counters (``PairModel.swap_pair_names``).
SWAP_PAIRS = DEFAULT_MODEL.swap_pair_names

# Slots of the int64 counter array the kernel fills; then, for P species pairs, P accepted
# and P attempted swap counters (slot ``PairModel.pair_slot``).
_MOVES_ACC, _MOVES, _SWAPS_ACC, _SWAPS, _BUILDS, _VISITED = range(6)
_PAIR_ACC = 6


# --- xoshiro256** -------------------------------------------------------------------------

def new_rng_state(seed_sequence):
    """Four uint64 words of xoshiro256** state drawn from a SeedSequence (or an int seed).

    Parameters
    ----------
    seed_sequence : numpy.random.SeedSequence or int
        The entropy; equal seeds give equal states.

    Returns
    -------
    ndarray of uint64, shape (4,)
        A valid (not all-zero) state, advanced in place by ``run_sweeps`` and
        ``initial_configuration``.

    Examples
    --------
    >>> state = new_rng_state(7)
    >>> state.dtype, state.shape, bool((state == new_rng_state(7)).all())
    (dtype('uint64'), (4,), True)
    """
    if not isinstance(seed_sequence, np.random.SeedSequence):
        seed_sequence = np.random.SeedSequence(seed_sequence)
    state = seed_sequence.generate_state(4, np.uint64)
    if not state.any():     # the one forbidden state (probability 2^-256)
        state[0] = 1
    return state


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def _next(s):
    """Advance the xoshiro256** state ``s`` in place and return the next uint64."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s[0], s[1], s[2], s[3] = s0, s1, s2, _rotl(s3, 45)
    return result


@njit(cache=True, inline="always")
def _uniform(s):
    """Uniform double in [0, 1) with 53 random bits."""
    return (_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _uniform_pair(s):
    """Two uniforms in [0, 1) with 32 random bits each, from one draw."""
    r = _next(s)
    scale = 1.0 / 4294967296.0
    return (r >> np.uint64(32)) * scale, (r & np.uint64(0xFFFFFFFF)) * scale


@njit(cache=True, inline="always")
def _below(s, n):
    """Unbiased integer in [0, n) for 0 < n < 2^32 (Lemire's multiply-and-reject)."""
    n64 = np.uint64(n)
    m = (_next(s) >> np.uint64(32)) * n64
    if (m & np.uint64(0xFFFFFFFF)) < n64:
        threshold = (np.uint64(0x100000000) - n64) % n64
        while (m & np.uint64(0xFFFFFFFF)) < threshold:
            m = (_next(s) >> np.uint64(32)) * n64
    return np.int64(m >> np.uint64(32))


# --- energies ----------------------------------------------------------------------------

@njit(cache=True)
def _pair_energies(pos, species, box, start, nbr, sigma2, epsilon, forms):
    """Per-particle sums sum_j V_ij over the list rows (each pair counted from both ends)."""
    half, k_species = 0.5 * box, sigma2.shape[0]
    e = np.zeros(pos.shape[0])
    for i in range(pos.shape[0]):
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            a, b = species[i], species[j]
            dx = minimum_image(pos[j, 0] - pos[i, 0], box, half)
            dy = minimum_image(pos[j, 1] - pos[i, 1], box, half)
            e[i] += pair_energy_x2((dx * dx + dy * dy) / sigma2[a, b], epsilon[a, b], forms,
                                   k_species * a + b)
    return e


def particle_energies(positions, species, box, model=DEFAULT_MODEL):
    """e_i = (1/2) sum_j V(r_ij), so that sum_i e_i is the total potential energy.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
        Coordinates (minimum image in the square box).
    species : array_like of int, shape (N,)
        Species indices of ``model`` (the paper's: 0 S, 1 M, 2 L).
    box : float
        Side of the square box, at least twice the largest cutoff.
    model : PairModel
        The pair model (default the paper's).

    Returns
    -------
    ndarray, shape (N,)
        Per-particle energies (eps_LS).

    Examples
    --------
    >>> pos = np.array([[1.0, 1.0], [2.5, 1.0]])
    >>> particle_energies(pos, np.array([0, 2], np.int8), 8.0)   # one S-L pair, half each
    array([-0.14567245, -0.14567245])
    """
    positions, species, box = _checked_configuration(positions, species, box, model)
    start, nbr = verlet_list(positions, species.view(np.uint8), box, model.energy_cut2)
    return 0.5 * _pair_energies(positions, species, box, start, nbr, model.sigma2,
                                model.epsilon, model.pair_forms)


def total_energy(positions, species, box, model=DEFAULT_MODEL):
    """Total potential energy sum_{i<j} V(r_ij) (minimum image, cell list, O(N)).

    Parameters and input rules as ``particle_energies``; returns a float (eps_LS).

    Examples
    --------
    >>> from mpi_glass.model import SHARMA2024 as m, pair_potential
    >>> pos = np.array([[1.0, 1.0], [2.5, 1.0]])
    >>> e = total_energy(pos, np.array([0, 2], np.int8), 8.0)
    >>> bool(np.isclose(e, pair_potential(1.5, m.sigma[0, 2], m.epsilon[0, 2])))
    True
    """
    return float(np.sum(particle_energies(positions, species, box, model)))


def total_energy_units(positions, species, box, model=DEFAULT_MODEL):
    """Total potential energy on the engine's fixed-point grid: an exact int, in units of
    ``fixedpoint.UNIT`` (pair energies rounded to it one by one, as the engine does).

    Parameters and input rules as ``particle_energies``.

    Examples
    --------
    >>> from mpi_glass.fixedpoint import UNIT
    >>> pos = np.array([[1.0, 1.0], [2.5, 1.0]])
    >>> units = total_energy_units(pos, np.array([0, 2], np.int8), 8.0)
    >>> type(units), round(units * UNIT, 8)
    (<class 'int'>, -0.2913449)
    """
    positions, species, box = _checked_configuration(positions, species, box, model)
    return energy_units(positions, species, box, model)


def unwrap(positions, images, box):
    """Continuous coordinates positions + images * box.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
        Wrapped coordinates in [0, box).
    images : array_like of int, shape (N, 2)
        Box crossings counted by ``run_sweeps``.
    box : float
        Side of the square box.

    Examples
    --------
    >>> unwrap(np.array([[0.5, 9.5]]), np.array([[1, -1]]), 10.0)
    array([[10.5, -0.5]])
    """
    return np.asarray(positions) + np.asarray(images) * _box_side(box)


# --- energy changes: one vectorised pass over a list row, summed on a fixed-point grid ----
#
# A trial compares particle i as it is (species a, at (x, y)) with i as proposed: at its new
# position (the wrapped one it will be stored at), or relabelled as species b.  One loop over
# the list row evaluates both pair energies of every entry branch-free and adds their
# difference as integers (``fixedpoint``): entries beyond the cutoff on both sides add exactly
# 0 and the integer sum is the same in any order, so LLVM vectorises the loop (gathers,
# packed division and square root) and the result still depends on the positions alone.
#
# Rows are banded for swaps.  With swaps on, a row holds every particle within the largest
# cutoff + skin, ordered in K + 1 bands by the species' size rank (``EngineTables.level``):
# an entry of species s is in band min{level[c] : r < r_c(c, s) + skin}, band K if none.  So
# every entry within r_c(a, s) + skin of a particle of species a sits in bands 0..level[a]: a
# displacement reads those, and relabelling a -> b reads bands 0..max(level[a], level[b]).
# (For a model whose cutoffs grow with the size rank, as the paper's, band c is exactly the
# ring between the cutoffs of levels c - 1 and c.)  ``ends[i, c]`` is the end of band c of
# row i.  Without swaps every row is one band.  Tables are flat, K a + b with unsigned
# species (a uint8 view): no index needs numba's negative-index wraparound.

@njit(cache=True, inline="always")
def _row(lo, hi):
    """The list entries lo..hi-1 as unsigned indices.  With signed ones numba guards every
    nbr[k] against negative (wraparound) indexing, and the vectorised loop then gathers the
    row entry by entry instead of loading it: 1.4x slower pair evaluation."""
    return range(np.uint64(lo), np.uint64(hi))


@njit(cache=True, inline="always", error_model="numpy")
def _move_change(pos, species, start, nbr, ends, i, xn, yn, box, half, tb):
    """E(i at (xn, yn)) - E(now) in units of ``fixedpoint.UNIT``."""
    x, y, a = pos[i, 0], pos[i, 1], species[i]
    ak = np.uint64(tb.n_species) * a
    forms = tb.forms        # read once: taken from tb inside the loop, it stops vectorisation
    de = np.int64(0)
    for k in _row(start[i], ends[i, tb.level[a]]):
        j = nbr[k]
        t = ak + species[j]
        inv_s2, eps = tb.inv_sigma2[t], tb.eps_units[t]
        de += (biased_units(squared_distance(pos, j, xn, yn, box, half) * inv_s2, eps, forms, t)
               - biased_units(squared_distance(pos, j, x, y, box, half) * inv_s2, eps, forms, t))
    return de


@njit(cache=True, inline="always", error_model="numpy")
def _relabel_sum(pos, species, nbr, lo, hi, i, b, skip, box, half, tb):
    """Sum of E(i as species b) - E(now) over the list entries lo..hi-1, in units, leaving
    out the pair with ``skip``."""
    x, y, a = pos[i, 0], pos[i, 1], species[i]
    k_species = np.uint64(tb.n_species)
    ak, bk = k_species * a, k_species * b
    inv_s2, eps_units, forms = tb.inv_sigma2, tb.eps_units, tb.forms
    de = np.int64(0)
    for k in _row(lo, hi):
        j = nbr[k]
        s = species[j]
        r2 = squared_distance(pos, j, x, y, box, half)
        change = (biased_units(r2 * inv_s2[bk + s], eps_units[bk + s], forms, bk + s)
                  - biased_units(r2 * inv_s2[ak + s], eps_units[ak + s], forms, ak + s))
        de += change * (j != skip)
    return de


@njit(cache=True, inline="always")
def _reach_band(i, a, b, ends, tb):
    """End of the bands of row i that a relabelling a <-> b reads."""
    return ends[i, max(tb.level[a], tb.level[b])]


@njit(cache=True, inline="always", error_model="numpy")
def _relabel_change(pos, species, start, nbr, ends, i, b, skip, box, half, tb):
    """E(i as species b) - E(now) in units, leaving out the pair with ``skip``."""
    return _relabel_sum(pos, species, nbr, start[i], _reach_band(i, species[i], b, ends, tb),
                        i, b, skip, box, half, tb)


@njit(cache=True, inline="always", error_model="numpy")
def _growth_change(pos, species, start, nbr, ends, i, b, skip, box, half, offset, limit, tb):
    """offset + E(i as species b) - E(now), in units, leaving out ``skip`` -- or, once that
    is certain to reach ``limit``, some value >= limit.

    The row is summed a chunk at a time; every entry not yet summed changes by at least
    ``tb.growth_floor[K a + b]`` (<= 0, ``PairModel.growth_floor_units``), so when the
    partial sum plus that floor for the rest reaches ``limit``, so does the full sum, and the
    partial sum (>= limit, the floor being negative) is returned.  A result below ``limit``
    is always the exact sum.
    """
    a = species[i]
    lo, hi = start[i], _reach_band(i, a, b, ends, tb)
    floor = tb.growth_floor[np.uint64(tb.n_species) * a + b]
    de = offset
    for first in range(lo, hi, _CHUNK):
        last = min(first + _CHUNK, hi)
        de += _relabel_sum(pos, species, nbr, first, last, i, b, skip, box, half, tb)
        if de + (hi - last) * floor >= limit:
            return de
    return de


# --- banded neighbour lists --------------------------------------------------------------

@njit(cache=True, inline="always")
def _band(r2, s, band_cut2, level):
    """The band of an entry of species s at squared distance r2 (see above): the lowest
    level among the species c whose radius r_c(c, s) + skin reaches r2; K if none does."""
    k = level.shape[0]
    band = k
    for c in range(k):
        if r2 < band_cut2[c, s]:
            band = min(band, level[c])
    return band


@njit(cache=True)
def _build_lists(pos, species, box, list_cut2, band_cut2, level, banded):
    """A Verlet list (``neighbours.verlet_list``) and its band ends (see above); banded,
    the rows are filled band by band straight from the pairs (``neighbours.verlet_pairs``),
    each pair's band taken from the distance the search computed."""
    n, k = pos.shape[0], level.shape[0]
    nb = k + 1                      # bands per row, the last one beyond every cutoff
    ends = np.empty((n, k), np.int64)
    if not banded:
        start, nbr = verlet_list(pos, species, box, list_cut2)
        for i in range(n):
            ends[i, :] = start[i + 1]
        return start, nbr, ends
    first, hstart, partners, r2 = verlet_pairs(pos, species, box, list_cut2)
    # Each pair's two bands (of j in row i, of i in row j) and the size of every band of
    # every row (flat, nb i + band), then a counting sort by band.
    band_of_j = np.empty(partners.shape[0], np.int64)
    band_of_i = np.empty(partners.shape[0], np.int64)
    fill = np.zeros(nb * n, np.int64)
    for p in range(n):
        i, a = first[p], species[first[p]]
        for q in range(hstart[p], hstart[p + 1]):
            j = partners[q]
            band_of_j[q] = _band(r2[q], species[j], band_cut2, level)
            band_of_i[q] = _band(r2[q], a, band_cut2, level)
            fill[nb * i + band_of_j[q]] += 1
            fill[nb * j + band_of_i[q]] += 1
    start = np.empty(n + 1, np.int64)
    offset = 0
    for i in range(n):
        start[i] = offset
        for c in range(nb):         # fill[nb i + c]: where band c of row i begins
            offset, fill[nb * i + c] = offset + fill[nb * i + c], offset
            if c < k:
                ends[i, c] = offset
    start[n] = offset
    nbr = np.empty(offset, np.uint32)
    for p in range(n):
        i = first[p]
        for q in range(hstart[p], hstart[p + 1]):
            j = partners[q]
            x, y = nb * i + band_of_j[q], nb * j + band_of_i[q]
            nbr[fill[x]] = j
            nbr[fill[y]] = i
            fill[x] += 1
            fill[y] += 1
    return start, nbr, ends


@njit(cache=True)
def _promote(start, nbr, ends, k, i, band):
    """Move entry i of row k down to ``band`` if it sits in a later one (band order within
    a row is all that matters: the sums do not depend on the order inside a band)."""
    x = start[k]
    while nbr[x] != i:
        x += 1
    c = 0
    while c < ends.shape[1] and x >= ends[k, c]:
        c += 1
    while c > band:                 # swap i with the first entry of its band, then
        first = ends[k, c - 1]      # move the band boundary past it
        nbr[x], nbr[first] = nbr[first], nbr[x]
        x = first
        ends[k, c - 1] += 1
        c -= 1


@njit(cache=True)
def _rebanded(pos, ref, species, start, nbr, ends, i, box, band_cut2, level):
    """After i changed species, put i into every band of its neighbours' rows that its new
    cutoffs require (by distance at the build, ``ref``, like the build itself).  Bands that
    i no longer needs keep it: a longer band is still a correct one."""
    half = 0.5 * box
    s = species[i]
    for q in range(start[i], start[i + 1]):
        k = nbr[q]
        band = _band(squared_distance(ref, k, ref[i, 0], ref[i, 1], box, half), s, band_cut2,
                     level)
        if band < level.shape[0]:
            _promote(start, nbr, ends, k, i, band)


# --- trial moves -------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _wrap(x, box):
    """x folded into [0, box) for |x| < 2 box, and the number of boxes it crossed."""
    shift = 0
    if x >= box:
        x -= box
        shift = 1
    elif x < 0.0:
        x += box
        shift = -1
        if x >= box:    # a tiny negative x rounds up to box: that is 0 in this box
            x -= box
            shift = 0
    return x, shift


@njit(cache=True, inline="always")
def _metropolis(u, beta, de_units):
    """Accept with probability min(1, exp(-beta dE)), given a uniform u in [0, 1)."""
    return de_units <= 0 or u < math.exp(-beta * (de_units * UNIT))


@njit(cache=True, inline="always")
def _rejection_limit(u, beta):
    """An integer L >= 1 such that ``_metropolis(u, beta, de)`` rejects every de >= L.

    For de >= L, beta dE >= -ln u + 1e-6, so exp(-beta dE) <= u e^(-1e-6): below u by far
    more than the few ulps by which exp, log and the products can be off.  (u = 0, or a
    limit beyond 2^62 -- only at absurd temperatures -- gives the largest int64: no early
    rejection.)
    """
    bound = (-math.log(u) + 1e-6) / (beta * UNIT) if u > 0.0 else math.inf
    if bound >= 2.0**62:
        return np.int64(2**63 - 1)
    return np.int64(math.ceil(bound)) + 1


@njit(cache=True, inline="always")
def _swap_proposal(rng, species, tb):
    """Two particles of species adjacent in size (``PairModel.swap_partners``; the paper's
    S<->M, M<->L): i uniform, then j uniform among the particles of the species adjacent to
    i's.

    Exchanges of species far apart in size (the paper's S<->L, sigma 0.62 vs 1.18) are
    essentially never accepted, so proposing them only wastes trials.  The proposal is
    symmetric: {i, j} of species (a, b) is proposed with probability
    (1/N) [1/N_adj(a) + 1/N_adj(b)] (i drawn first, or j), where N_adj(a) counts the
    particles adjacent in size to a; the exchange keeps every N_adj, and the reverse exchange
    is the same sum with the roles of i and j swapped.  Requires every species present to
    have a partner present (``_check_parameters``), else the rejection loop never ends.
    """
    n = species.shape[0]
    i = _below(rng, n)
    ak = np.uint64(tb.n_species) * species[i]
    j = _below(rng, n)
    while tb.partners[ak + species[j]] == 0:
        j = _below(rng, n)
    return i, j


@njit(cache=True, inline="always")
def _swap_trial(pos, ref, species, start, nbr, ends, box, rng, beta, band_cut2, counts, tb):
    """Metropolis trial of exchanging the species of two unlike particles; returns dE
    (units) if accepted, else 0.  The pair i-j itself keeps its energy, so it is left out
    of both rows."""
    i, j = _swap_proposal(rng, species, tb)
    a, b = species[i], species[j]
    u = _uniform(rng)
    half = 0.5 * box
    # The particle that shrinks first, in full; then the one that grows, which decides
    # almost every rejection, stopping as soon as the rejection is certain.
    grows, shrinks = (i, j) if tb.level[a] < tb.level[b] else (j, i)
    de = _relabel_change(pos, species, start, nbr, ends, shrinks, species[grows], grows, box,
                         half, tb)
    de = _growth_change(pos, species, start, nbr, ends, grows, species[shrinks], shrinks, box,
                        half, de, _rejection_limit(u, beta), tb)
    pair = tb.pair_slot[np.uint64(tb.n_species) * a + b]
    n_pairs = (counts.shape[0] - _PAIR_ACC) // 2
    counts[_SWAPS] += 1
    counts[_PAIR_ACC + n_pairs + pair] += 1
    counts[_VISITED] += (_reach_band(i, a, b, ends, tb) + _reach_band(j, a, b, ends, tb)
                         - start[i] - start[j])
    if not _metropolis(u, beta, de):    # also every de that _growth_change cut short
        return np.int64(0)
    species[i], species[j] = b, a
    _rebanded(pos, ref, species, start, nbr, ends, i, box, band_cut2, tb.level)
    _rebanded(pos, ref, species, start, nbr, ends, j, box, band_cut2, tb.level)
    counts[_SWAPS_ACC] += 1
    counts[_PAIR_ACC + pair] += 1
    return de


@njit(cache=True, error_model="numpy")
def _run_trials(pos, img, species, box, rng, n_trials, beta, delta, swap_probability,
                list_cut2, band_cut2, skin, counts, tb):
    """The engine: n_trials Metropolis trials in place; returns the sum of accepted dE in
    units of ``fixedpoint.UNIT``.

    The list stays valid while (how far the trial puts i from its build position) + (the
    farthest any particle has been from its build position) <= skin: then no pair missing
    from a row (or from the bands read) can be within its cutoff.  Otherwise the list is
    rebuilt before the trial.  The test compares squares, so it costs no square root.
    """
    n, half = pos.shape[0], 0.5 * box
    banded = swap_probability > 0.0
    start, nbr, ends = _build_lists(pos, species, box, list_cut2, band_cut2, tb.level, banded)
    ref = pos.copy()
    counts[_BUILDS] += 1
    farthest, limit2 = 0.0, skin * skin
    energy_change = np.int64(0)
    for _ in range(n_trials):
        if banded and _uniform(rng) < swap_probability:
            energy_change += _swap_trial(pos, ref, species, start, nbr, ends, box, rng, beta,
                                         band_cut2, counts, tb)
            continue
        # Three draws per trial whatever its outcome: the stream stays easy to reproduce.
        i = _below(rng, n)
        ux, uy = _uniform_pair(rng)
        u = _uniform(rng)
        xn, sx = _wrap(pos[i, 0] + (ux - 0.5) * delta, box)
        yn, sy = _wrap(pos[i, 1] + (uy - 0.5) * delta, box)
        reach2 = squared_distance(ref, i, xn, yn, box, half)
        if reach2 > limit2:
            start, nbr, ends = _build_lists(pos, species, box, list_cut2, band_cut2, tb.level,
                                            banded)
            ref[:] = pos
            counts[_BUILDS] += 1
            farthest, limit2 = 0.0, skin * skin
            reach2 = squared_distance(ref, i, xn, yn, box, half)
        de = _move_change(pos, species, start, nbr, ends, i, xn, yn, box, half, tb)
        counts[_MOVES] += 1
        counts[_VISITED] += ends[i, tb.level[species[i]]] - start[i]
        if _metropolis(u, beta, de):
            pos[i, 0], pos[i, 1] = xn, yn
            img[i, 0] += sx
            img[i, 1] += sy
            counts[_MOVES_ACC] += 1
            energy_change += de
            farthest = max(farthest, math.sqrt(reach2))
            limit2 = (skin - farthest)**2
    return energy_change


def run_sweeps(positions, images, species, box, rng_state, n_sweeps, temperature, delta_max,
               swap_probability=0.0, *, skin=SKIN, model=DEFAULT_MODEL):
    """Run ``n_sweeps`` x N Metropolis trials in place on (positions, images, species,
    rng_state); returns an ``MCStats``.

    positions (N, 2) float64 in [0, box) and images (N, 2) int64 are updated in place;
    species (N,) int8 (indices of ``model``'s species) changes only through swap moves;
    rng_state is the
    uint64 array from ``new_rng_state``.  ``skin`` changes speed, never the result.

    Parameters
    ----------
    positions, images, species, rng_state : ndarray
        The chain state, C-contiguous and writeable with the dtypes above.
    box : float
        Side of the square box, at least twice the largest cutoff.
    n_sweeps : int
        Sweeps of N trials each.
    temperature : float
        T in eps_LS (k_B = 1).
    delta_max : float
        Side of the square of displacement steps, at most half the box.
    swap_probability : float
        Probability that a trial is a swap trial (0 for physical dynamics).
    skin : float, keyword only
        Verlet skin (sigma_LS); must exceed the largest step.
    model : PairModel, keyword only
        The pair model (default the paper's).

    Returns
    -------
    MCStats

    Examples
    --------
    The accepted energy changes add up exactly to the change of the grid energy:

    >>> from mpi_glass.model import species_array
    >>> rng = new_rng_state(1)
    >>> species = species_array((4, 2, 3))
    >>> positions = initial_configuration((4, 2, 3), 8.0, rng)
    >>> images = np.zeros_like(positions, dtype=np.int64)
    >>> before = total_energy_units(positions, species, 8.0)
    >>> stats = run_sweeps(positions, images, species, 8.0, rng, 5, 1.0, 0.3)
    >>> stats.moves_attempted, before + stats.energy_change_units == total_energy_units(
    ...     positions, species, 8.0)
    (45, True)
    """
    box = _box_side(box, model)
    _check_state(positions, images, species, box, rng_state, model)
    n_sweeps, temperature, delta_max, swap_probability = _check_parameters(
        n_sweeps, temperature, delta_max, swap_probability, species, box, model)
    largest_step = delta_max / math.sqrt(2.0)    # half-diagonal of the trial square
    if not skin > largest_step:
        raise InputError(f"skin {skin:g} must exceed the largest trial step {largest_step:g}")
    # With swaps a species may change, so rows hold every pair within the largest cutoff.
    cut = model.cutoff_table
    list_cut = np.full_like(cut, cut.max()) if swap_probability > 0.0 else cut
    n_pairs = len(model.swap_pairs)
    counts = np.zeros(_PAIR_ACC + 2 * n_pairs, np.int64)
    # The slack keeps rounding in distances (~1e-15) from ever deciding list membership.
    de = _run_trials(positions, images, species.view(np.uint8), box, rng_state,
                     n_sweeps * positions.shape[0], 1.0 / temperature, delta_max,
                     swap_probability, (list_cut + skin)**2, (cut + skin)**2, skin - 1e-9,
                     counts, engine_tables(model))
    pairs = counts[_PAIR_ACC:]
    return MCStats(int(counts[_MOVES_ACC]), int(counts[_MOVES]), int(counts[_SWAPS_ACC]),
                   int(counts[_SWAPS]), float(de * UNIT), int(counts[_BUILDS]),
                   int(counts[_VISITED]), int(de), pairs[:n_pairs].copy(),
                   pairs[n_pairs:].copy())


# --- input checks ------------------------------------------------------------------------

def _box_side(box, model=DEFAULT_MODEL):
    """The side of the square box; it must hold twice the largest cutoff."""
    return check_square_box(box, 2.0 * model.max_cutoff, "twice the largest cutoff")


def _checked_configuration(positions, species, box, model):
    box = _box_side(box, model)
    positions, species = check_configuration(positions, species, box, wrap=False,
                                             species_names=model.species_names)
    return positions, species, box


def _check_state(positions, images, species, box, rng_state, model):
    """The in-place arrays must have the exact dtype, shape and layout the kernel writes."""
    n = positions.shape[0] if getattr(positions, "ndim", 0) == 2 else -1
    if n < 1:
        raise InputError("positions: expected an (N, 2) array with N >= 1")
    expected = (("positions", positions, np.float64, (n, 2)),
                ("images", images, np.int64, (n, 2)),
                ("species", species, np.int8, (n,)),
                ("rng_state", rng_state, np.uint64, (4,)))
    for name, arr, dtype, shape in expected:
        if not (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.shape == shape
                and arr.flags.c_contiguous and arr.flags.writeable):
            raise InputError(f"{name}: expected a writeable C-contiguous {np.dtype(dtype)} "
                             f"array of shape {shape}")
    _checked_configuration(positions, species, box, model)
    if not rng_state.any():
        raise InputError("rng_state: all-zero xoshiro256** state; use new_rng_state()")


def _check_parameters(n_sweeps, temperature, delta_max, swap_probability, species, box, model):
    if int(n_sweeps) != n_sweeps or n_sweeps < 0:
        raise InputError(f"n_sweeps: expected a non-negative integer, got {n_sweeps!r}")
    if not (math.isfinite(temperature) and temperature > 0.0):
        raise InputError(f"temperature: expected a positive number, got {temperature!r}")
    if not (math.isfinite(delta_max) and 0.0 < delta_max <= 0.5 * box):
        raise InputError(f"delta_max: expected a positive number up to half the box, got "
                         f"{delta_max!r}")
    if not 0.0 <= swap_probability <= 1.0:
        raise InputError(f"swap_probability: expected a number in [0, 1], got "
                         f"{swap_probability!r}")
    present = np.bincount(species.view(np.uint8), minlength=model.n_species) > 0
    partner_present = (model.swap_partners[present][:, present] > 0).any(axis=1)
    if not partner_present.all():
        # A species without a partner to exchange with: _swap_proposal would never end.
        swap_probability = 0.0
    return int(n_sweeps), float(temperature), float(delta_max), float(swap_probability)


# --- initial configuration ---------------------------------------------------------------

#: Random sequential addition keeps unlike centres at least this fraction of sigma_ab apart.
_RSA_SEPARATION = 0.85
_RSA_ATTEMPTS = 2000


@njit(cache=True)
def _sequential_addition(species, box, rng, min_sep2, cell_side, attempts):
    """Place particles (in the order given) uniformly at random, at least sqrt(min_sep2[a, b])
    from every placed one; returns (positions, ok)."""
    n = species.shape[0]
    m, head, nxt = linked_cells(n, box, cell_side)
    pos = np.zeros((n, 2))
    for i in range(n):
        placed = False
        for _ in range(attempts):
            x, y = _uniform(rng) * box, _uniform(rng) * box
            cx, cy = linked_cell_of(x, y, m, box)
            if clear_of(pos, species, head, nxt, m, cx, cy, x, y, species[i], box, min_sep2):
                placed = True
                break
        if not placed:
            return pos, False
        pos[i, 0], pos[i, 1] = x, y
        add_to_cell(head, nxt, m, cx, cy, i)
    return pos, True


@njit(cache=True)
def _lattice(n, box, rng):
    """A square-ish lattice filling the box, its sites in random order."""
    nx = int(math.ceil(math.sqrt(n)))
    ny = int(math.ceil(n / nx))
    pos = np.empty((n, 2))
    order = np.arange(nx * ny)
    for k in range(order.shape[0] - 1, 0, -1):     # Fisher-Yates
        r = _below(rng, k + 1)
        order[k], order[r] = order[r], order[k]
    for i in range(n):
        pos[i, 0] = (order[i] % nx + 0.5) * box / nx
        pos[i, 1] = (order[i] // nx + 0.5) * box / ny
    return pos


def initial_configuration(counts, box, rng_state, model=DEFAULT_MODEL):
    """Random start for species laid out as ``model.species_array(counts)``; (N, 2) float64.

    Random sequential addition, large particles first, with centres at least 0.85 sigma_ab
    apart (a moderate energy the first sweeps relax); if a particle cannot be placed in 2000
    tries (very dense systems) the particles go on a square lattice in random order instead.
    Advances ``rng_state``.

    Parameters
    ----------
    counts : sequence of int
        Particles of each species of ``model`` (the paper's: S, M, L).
    box : float
        Side of the square box, at least twice the largest cutoff.
    rng_state : ndarray of uint64, shape (4,)
        From ``new_rng_state``.
    model : PairModel
        The pair model (default the paper's).

    Examples
    --------
    >>> positions = initial_configuration((4, 2, 3), 8.0, new_rng_state(1))
    >>> positions.shape, bool(((positions >= 0) & (positions < 8.0)).all())
    ((9, 2), True)
    """
    box = _box_side(box, model)
    try:
        species = species_array(composition_counts(int(np.sum(counts)), counts,
                                                   model.n_species))
    except ValueError as exc:
        raise InputError(f"counts: {exc}") from None
    order = np.argsort(-model.size_rank[species], kind="stable")      # largest first
    sep = _RSA_SEPARATION * model.sigma
    placed, ok = _sequential_addition(species[order], box, rng_state, sep**2, sep.max(),
                                      _RSA_ATTEMPTS)
    if not ok:
        placed = _lattice(species.size, box, rng_state)
    positions = np.empty_like(placed)
    positions[order] = placed
    return positions
