"""Metropolis Monte Carlo for the ternary 2-D Lennard-Jones glass former (numba kernels).

Moves.  One sweep is N trials.  A displacement trial picks a particle uniformly and moves it
by a vector uniform in the square [-delta_max/2, delta_max/2)^2; a swap trial (chosen with
probability ``swap_probability``, equilibration only) picks two particles of different
species uniformly and exchanges their species.  Both are accepted with min(1, exp(-dE/T)).

Neighbours.  dE needs only the moved (or relabelled) particle's pairs, found in a Verlet list
(``neighbours``) of radius r_c,ab + skin.  Without swaps the radius is per species pair (an
S-S pair needs far fewer neighbours than L-L); with swaps a species can change, so every pair
gets the largest.  A pair missing from the list was at least r_c + skin apart at the build,
so it cannot interact while (how far the trial takes i from its build position) + (the
farthest any particle has gone from its build position) <= skin; a trial that would break
this first rebuilds the list.  Using the trial particle's own reach rather than assuming
the two farthest particles meet rebuilds ~40% less often than the textbook skin/2 rule.

Energy changes.  A scalar pass over the row computes each pair's reduced squared distance
(r / sigma_ab)^2 before and after and keeps, in row order, the pairs within the cutoff on
either side; a branch-free loop over the kept pairs then evaluates ``model``'s pair energy
vectorised (its division and square root dominate the cost); the differences are summed in
four interleaved lanes.

Exact restarts.  All state is (positions, images, species, rng_state): the list is rebuilt at
the start of every call, and each dE depends only on the current positions -- list rows are
sorted by particle index, so the kept pairs and their order (hence the floating-point sums)
are the same whatever the skin or the time of the last build.  ``run_sweeps(a);
run_sweeps(b)`` is therefore bit-identical to ``run_sweeps(a + b)``, and to any other skin.
No fast-math is used, so results are plain IEEE arithmetic.

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
import time
from collections import namedtuple

import numpy as np
from numba import njit

from .errors import InputError
from .model import (EPSILON, MAX_CUTOFF, PAPER_DENSITY, PAPER_FRACTIONS, SIGMA, X_CUT, box_side,
                    composition_counts, pair_energy_x2, reduced_pair_energy_x2, species_array)
from .neighbours import (add_to_cell, clear_of, linked_cell_of, linked_cells, minimum_image,
                         verlet_list)
from .validation import check_configuration, check_square_box

#: Verlet skin (sigma_LS), tuned with ``benchmark`` at N = 4000 for T = 0.3 ... 1.0: thinner
#: skins rebuild too often, thicker ones drag too many idle pairs through every trial.
SKIN = 0.7

_CUT = X_CUT * SIGMA
#: The list radius of interactions alone: a hair over r_c so that no pair that
#: ``pair_energy_x2`` counts can be missed by rounding.
_ENERGY_CUT2 = (_CUT * (1.0 + 1e-9))**2

MCStats = namedtuple("MCStats", ["moves_accepted", "moves_attempted", "swaps_accepted",
                                 "swaps_attempted", "energy_change", "list_builds",
                                 "neighbours_examined"])
MCStats.__doc__ = """Counts of one ``run_sweeps`` call; ``energy_change`` is the sum of the
accepted dE; ``neighbours_examined`` counts list entries visited (for the benchmark)."""

# Slots of the int64 counter array the kernel fills.
_MOVES_ACC, _MOVES, _SWAPS_ACC, _SWAPS, _BUILDS, _VISITED = range(6)


# --- xoshiro256** -------------------------------------------------------------------------

def new_rng_state(seed_sequence):
    """Four uint64 words of xoshiro256** state drawn from a SeedSequence (or an int seed)."""
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
def _pair_energies(pos, species, box, start, nbr):
    """Per-particle sums sum_j V_ij over the list rows (each pair counted from both ends)."""
    half = 0.5 * box
    e = np.zeros(pos.shape[0])
    for i in range(pos.shape[0]):
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            a, b = species[i], species[j]
            dx = minimum_image(pos[j, 0] - pos[i, 0], box, half)
            dy = minimum_image(pos[j, 1] - pos[i, 1], box, half)
            e[i] += pair_energy_x2((dx * dx + dy * dy) / SIGMA[a, b]**2, EPSILON[a, b])
    return e


def particle_energies(positions, species, box):
    """e_i = (1/2) sum_j V(r_ij), so that sum_i e_i is the total potential energy."""
    positions, species, box = _checked_configuration(positions, species, box)
    start, nbr = verlet_list(positions, species, box, _ENERGY_CUT2)
    return 0.5 * _pair_energies(positions, species, box, start, nbr)


def total_energy(positions, species, box):
    """Total potential energy sum_{i<j} V(r_ij) (minimum image, cell list, O(N))."""
    return float(np.sum(particle_energies(positions, species, box)))


def unwrap(positions, images, box):
    """Continuous coordinates positions + images * box."""
    return np.asarray(positions) + np.asarray(images) * _box_side(box)


# --- energy changes: gather a list row, evaluate it vectorised, sum it in lanes ----------
#
# A trial compares particle i as it is (species a) with i as proposed: moved by (dx, dy), or
# relabelled as species b.  A scalar pass over the list row (indirect loads do not vectorise)
# computes both reduced squared distances per pair and keeps, in row order, only the pairs
# within the cutoff before or after -- the others add exactly zero.  The pair energies of the
# kept pairs are then evaluated in one branch-free loop that LLVM vectorises, which matters
# because the division and square root of V dominate, and summed in four interleaved lanes
# (the kept pairs do not depend on the list, so neither does the sum).  Tables are flat, 3 a + b
# with unsigned species (a uint8 view): no index needs numba's negative-index wraparound.
# The scratch rows are indexed in place, never sliced: a view would cost reference counting.

_INV_SIGMA2_FLAT = (1.0 / SIGMA**2).ravel()
_EPSILON_FLAT = EPSILON.ravel().copy()
_X2_CUT = X_CUT * X_CUT
_X2_A, _X2_B, _EPS_A, _EPS_B, _DV = range(5)     # scratch rows; _DV first holds keep flags
_FAR = 100.0    # a reduced squared distance beyond every cutoff: the pair adds exactly 0


@njit(cache=True, inline="always")
def _gather(pos, species, start, nbr, i, dx, dy, b, skip, box, half, scratch):
    """Fill scratch with the interacting pairs of row i now and as proposed; returns their
    number.  ``skip`` (a swap partner, whose pair a swap leaves unchanged) is left out."""
    lo, m = start[i], start[i + 1] - start[i]
    x, y = pos[i, 0], pos[i, 1]
    a3, b3 = np.uint64(3) * species[i], np.uint64(3) * b
    for q in range(m):
        j = nbr[lo + q]
        s = species[j]
        rx = minimum_image(pos[j, 0] - x, box, half)
        ry = minimum_image(pos[j, 1] - y, box, half)
        x2a = (rx * rx + ry * ry) * _INV_SIGMA2_FLAT[a3 + s]
        rx -= dx
        ry -= dy
        x2b = (rx * rx + ry * ry) * _INV_SIGMA2_FLAT[b3 + s]
        scratch[_X2_A, q] = x2a
        scratch[_X2_B, q] = x2b
        scratch[_EPS_A, q] = _EPSILON_FLAT[a3 + s]
        scratch[_EPS_B, q] = _EPSILON_FLAT[b3 + s]
        scratch[_DV, q] = 1.0 if (min(x2a, x2b) < _X2_CUT) & (j != skip) else 0.0
    return _compact(scratch, m)


@njit(cache=True, inline="always")
def _compact(scratch, m):
    """Move the flagged pairs to the front, in order; returns their number.  (A separate
    pass: compacting while gathering would make every store wait for all earlier pairs.)"""
    kept = 0
    for q in range(m):
        x2a, x2b = scratch[_X2_A, q], scratch[_X2_B, q]
        eps_a, eps_b = scratch[_EPS_A, q], scratch[_EPS_B, q]
        keep = scratch[_DV, q] > 0.0
        scratch[_X2_A, kept] = x2a
        scratch[_X2_B, kept] = x2b
        scratch[_EPS_A, kept] = eps_a
        scratch[_EPS_B, kept] = eps_b
        kept += keep
    return kept


@njit(cache=True, inline="always", error_model="numpy")
def _change(scratch, m):
    """E(proposed) - E(now) over the m gathered pairs.

    The gathered pairs are exactly the interacting ones, in index order, whatever skin
    members the list holds; summing them in four interleaved lanes (padded with zeros) is
    therefore as reproducible as a plain ordered sum, and four times shorter in latency.
    """
    padded = (m + 3) // 4 * 4
    for q in range(m, padded):
        scratch[_X2_A, q], scratch[_X2_B, q] = _FAR, _FAR
        scratch[_EPS_A, q], scratch[_EPS_B, q] = 0.0, 0.0
    for q in range(padded):
        scratch[_DV, q] = (scratch[_EPS_B, q] * reduced_pair_energy_x2(scratch[_X2_B, q])
                           - scratch[_EPS_A, q] * reduced_pair_energy_x2(scratch[_X2_A, q]))
    s0 = s1 = s2 = s3 = 0.0
    for q in range(0, padded, 4):
        s0 += scratch[_DV, q]
        s1 += scratch[_DV, q + 1]
        s2 += scratch[_DV, q + 2]
        s3 += scratch[_DV, q + 3]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _new_scratch(start):
    """Scratch rows as long as the longest list row, plus room to pad it to whole lanes."""
    return np.empty((5, np.max(start[1:] - start[:-1]) + 4))


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
def _metropolis(u, beta, de):
    """Accept with probability min(1, exp(-beta dE)), given a uniform u in [0, 1)."""
    return de <= 0.0 or u < math.exp(-beta * de)


@njit(cache=True, inline="always")
def _move_trial(pos, img, species, start, nbr, i, dx, dy, u, box, beta, scratch, counts):
    """Metropolis trial of moving particle i by (dx, dy); returns (accepted, dE)."""
    n = pos.shape[0]
    kept = _gather(pos, species, start, nbr, i, dx, dy, species[i], n, box, 0.5 * box,
                   scratch)
    de = _change(scratch, kept)
    counts[_MOVES] += 1
    counts[_VISITED] += start[i + 1] - start[i]
    if not _metropolis(u, beta, de):
        return False, de
    pos[i, 0], sx = _wrap(pos[i, 0] + dx, box)
    pos[i, 1], sy = _wrap(pos[i, 1] + dy, box)
    img[i, 0] += sx
    img[i, 1] += sy
    counts[_MOVES_ACC] += 1
    return True, de


@njit(cache=True, inline="always")
def _relabel_change(pos, species, start, nbr, i, b, skip, box, scratch, counts):
    """Energy change of i's pairs (but the one with ``skip``) if i's species became b."""
    kept = _gather(pos, species, start, nbr, i, 0.0, 0.0, b, skip, box, 0.5 * box, scratch)
    counts[_VISITED] += start[i + 1] - start[i]
    return _change(scratch, kept)


@njit(cache=True, inline="always")
def _swap_trial(pos, species, start, nbr, box, rng, beta, scratch, counts):
    """Metropolis trial of exchanging the species of two particles of different species,
    uniform among unlike pairs (a symmetric proposal); returns dE if accepted, else 0.
    The pair i-j itself keeps its energy, so it is left out of both rows."""
    n = pos.shape[0]
    i = _below(rng, n)
    j = _below(rng, n)
    while species[j] == species[i]:
        j = _below(rng, n)
    a, b = species[i], species[j]
    u = _uniform(rng)
    de = (_relabel_change(pos, species, start, nbr, i, b, j, box, scratch, counts)
          + _relabel_change(pos, species, start, nbr, j, a, i, box, scratch, counts))
    counts[_SWAPS] += 1
    if not _metropolis(u, beta, de):
        return 0.0
    species[i], species[j] = b, a
    counts[_SWAPS_ACC] += 1
    return de


@njit(cache=True, inline="always")
def _reach(pos, ref, i, dx, dy, box, half):
    """Distance of particle i, moved by (dx, dy), from where it was at the list build."""
    rx = minimum_image(pos[i, 0] + dx - ref[i, 0], box, half)
    ry = minimum_image(pos[i, 1] + dy - ref[i, 1], box, half)
    return math.sqrt(rx * rx + ry * ry)


@njit(cache=True, error_model="numpy")
def _run_trials(pos, img, species, box, rng, n_trials, beta, delta, swap_probability,
                list_cut2, skin, counts):
    """The engine: n_trials Metropolis trials in place; returns the sum of accepted dE.

    The list stays valid while (how far the trial puts i from its build position) + (the
    farthest any particle has been from its build position) <= skin: then no pair missing
    from a row can be within its cutoff.  Otherwise the list is rebuilt before the trial.
    """
    n, half = pos.shape[0], 0.5 * box
    start, nbr = verlet_list(pos, species, box, list_cut2)
    ref, scratch = pos.copy(), _new_scratch(start)
    counts[_BUILDS] += 1
    farthest = 0.0
    energy_change = 0.0
    for _ in range(n_trials):
        if swap_probability > 0.0 and _uniform(rng) < swap_probability:
            energy_change += _swap_trial(pos, species, start, nbr, box, rng, beta, scratch,
                                         counts)
            continue
        # Three draws per trial whatever its outcome: the stream stays easy to reproduce.
        i = _below(rng, n)
        ux, uy = _uniform_pair(rng)
        u = _uniform(rng)
        dx, dy = (ux - 0.5) * delta, (uy - 0.5) * delta
        reach = _reach(pos, ref, i, dx, dy, box, half)
        if reach + farthest > skin:
            start, nbr = verlet_list(pos, species, box, list_cut2)
            ref, scratch = pos.copy(), _new_scratch(start)
            counts[_BUILDS] += 1
            farthest = 0.0
            reach = _reach(pos, ref, i, dx, dy, box, half)
        accepted, de = _move_trial(pos, img, species, start, nbr, i, dx, dy, u, box, beta,
                                   scratch, counts)
        if accepted:
            energy_change += de
            farthest = max(farthest, reach)
    return energy_change


def run_sweeps(positions, images, species, box, rng_state, n_sweeps, temperature, delta_max,
               swap_probability=0.0, *, skin=SKIN):
    """Run ``n_sweeps`` x N Metropolis trials in place on (positions, images, species,
    rng_state); returns an ``MCStats``.

    positions (N, 2) float64 in [0, box) and images (N, 2) int64 are updated in place;
    species (N,) int8 (0 S, 1 M, 2 L) changes only through swap moves; rng_state is the
    uint64 array from ``new_rng_state``.  ``skin`` changes speed, never the result.
    """
    box = _box_side(box)
    _check_state(positions, images, species, box, rng_state)
    n_sweeps, temperature, delta_max, swap_probability = _check_parameters(
        n_sweeps, temperature, delta_max, swap_probability, species, box)
    largest_step = delta_max / math.sqrt(2.0)    # half-diagonal of the trial square
    if not skin > largest_step:
        raise InputError(f"skin {skin:g} must exceed the largest trial step {largest_step:g}")
    cut = np.full_like(_CUT, _CUT.max()) if swap_probability > 0.0 else _CUT
    counts = np.zeros(6, np.int64)
    # The slack keeps rounding in distances (~1e-15) from ever deciding list membership.
    de = _run_trials(positions, images, species.view(np.uint8), box, rng_state,
                     n_sweeps * positions.shape[0], 1.0 / temperature, delta_max,
                     swap_probability, (cut + skin)**2, skin - 1e-9, counts)
    return MCStats(int(counts[_MOVES_ACC]), int(counts[_MOVES]), int(counts[_SWAPS_ACC]),
                   int(counts[_SWAPS]), float(de), int(counts[_BUILDS]),
                   int(counts[_VISITED]))


# --- input checks ------------------------------------------------------------------------

def _box_side(box):
    """The side of the square box; it must hold twice the largest cutoff."""
    return check_square_box(box, 2.0 * MAX_CUTOFF, "twice the largest cutoff")


def _checked_configuration(positions, species, box):
    box = _box_side(box)
    positions, species = check_configuration(positions, species, box, wrap=False)
    return positions, species, box


def _check_state(positions, images, species, box, rng_state):
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
    _checked_configuration(positions, species, box)
    if not rng_state.any():
        raise InputError("rng_state: all-zero xoshiro256** state; use new_rng_state()")


def _check_parameters(n_sweeps, temperature, delta_max, swap_probability, species, box):
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
    if len(np.unique(species)) < 2:
        swap_probability = 0.0      # nothing to swap with
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


def initial_configuration(counts, box, rng_state):
    """Random start for species laid out as ``model.species_array(counts)``; (N, 2) float64.

    Random sequential addition, large particles first, with centres at least 0.85 sigma_ab
    apart (a moderate energy the first sweeps relax); if a particle cannot be placed in 2000
    tries (very dense systems) the particles go on a square lattice in random order instead.
    Advances ``rng_state``.
    """
    box = _box_side(box)
    try:
        species = species_array(composition_counts(int(np.sum(counts)), counts))
    except ValueError as exc:
        raise InputError(f"counts: {exc}") from None
    order = np.argsort(-species, kind="stable")      # L, then M, then S
    sep = _RSA_SEPARATION * SIGMA
    placed, ok = _sequential_addition(species[order], box, rng_state, sep**2, sep.max(),
                                      _RSA_ATTEMPTS)
    if not ok:
        placed = _lattice(species.size, box, rng_state)
    positions = np.empty_like(placed)
    positions[order] = placed
    return positions


# --- benchmark ---------------------------------------------------------------------------

def benchmark(n=4000, temperature=0.5, sweeps=None, seed=0, skin=SKIN):
    """Trial-move throughput of ``run_sweeps`` on the paper's system after a brief
    equilibration (swap moves, then plain moves); compile time excluded."""
    n = 4000 if n is None else int(n)
    temperature = 0.5 if temperature is None else float(temperature)
    sweeps = 400 if sweeps is None else int(sweeps)
    counts = composition_counts(n, PAPER_FRACTIONS)
    box = box_side(n, PAPER_DENSITY)
    rng = new_rng_state(np.random.SeedSequence(seed))
    pos = initial_configuration(counts, box, rng)
    img = np.zeros_like(pos, dtype=np.int64)
    species = species_array(counts)
    run_sweeps(pos, img, species, box, rng, 50, temperature, 0.12, 0.2, skin=skin)
    run_sweeps(pos, img, species, box, rng, 20, temperature, 0.12, skin=skin)
    cpu, wall = time.process_time(), time.perf_counter()
    stats = run_sweeps(pos, img, species, box, rng, sweeps, temperature, 0.12, skin=skin)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    trials = stats.moves_attempted
    return {"n": n, "temperature": temperature, "sweeps": sweeps, "skin": skin,
            "trials_per_second_cpu": trials / cpu, "trials_per_second_wall": trials / wall,
            "ns_per_trial": 1e9 * cpu / trials,
            "acceptance": stats.moves_accepted / trials,
            "mean_neighbours": stats.neighbours_examined / trials,
            "list_builds_per_sweep": stats.list_builds / sweeps}
