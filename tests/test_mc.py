"""The Monte Carlo engine against independent references.

Energies are checked against an O(N^2) all-pairs sum written here with ``model.pair_potential``;
the neighbour list against all pairs; sampling against the Boltzmann weight of two particles;
the random stream and the image bookkeeping against a pure-Python xoshiro256**.
"""
import itertools

import numpy as np
import pytest
from numba import njit
from scipy import integrate, stats

from mpi_glass import mc, model, neighbours
from mpi_glass.bench import mc as bench_mc
from mpi_glass.errors import InputError
from mpi_glass.fixedpoint import UNIT, pair_units, squared_distance
from mpi_glass.model import SIGMA, PairModel

MASK = (1 << 64) - 1
PAPER = model.SHARMA2024

#: Models the engine must handle: the shipped ones, one of 4 species and one of 2 whose
#: species are not in size order, and the paper's with its species listed L, S, M.
QUAD = PairModel("quad", ("W", "X", "Y", "Z"),
                 sigma=[[1.0, 0.9, 1.05, 1.1], [0.9, 0.8, 0.85, 0.95], [1.05, 0.85, 1.1, 1.12],
                        [1.1, 0.95, 1.12, 1.2]],
                 epsilon=[[1.0, 0.8, 1.0, 0.7], [0.8, 0.6, 0.9, 0.8], [1.0, 0.9, 0.7, 1.1],
                          [0.7, 0.8, 1.1, 0.9]], form="lj/cut", cutoff=2.2)
DUO = PairModel("duo", ("big", "small"), sigma=[[1.0, 0.95], [0.95, 0.9]],
                epsilon=[[1.0, 1.1], [1.1, 0.8]], form="lj/poly", cutoff=2.5)
_P = [2, 0, 1]
LSM = PairModel("lsm", ("L", "S", "M"), sigma=PAPER.sigma[np.ix_(_P, _P)],
                epsilon=PAPER.epsilon[np.ix_(_P, _P)], form="lj/smooth", cutoff=2.5, inner=2.0)
#: Per-pair cutoffs and inner radii, not ordered by size: the bands of a row cannot be rings.
PER_PAIR = PairModel("per-pair", ("S", "M", "L"), sigma=PAPER.sigma, epsilon=PAPER.epsilon,
                     form="lj/smooth",
                     cutoff=[[2.5, 1.8, 2.2], [1.8, 2.0, 2.5], [2.2, 2.5, 1.5]],
                     inner=[[2.0, 1.5, 1.9], [1.5, 1.6, 2.1], [1.9, 2.1, 1.2]])
MODELS = [PAPER, model.KA2D, QUAD, DUO, LSM, PER_PAIR]


# --- independent references --------------------------------------------------------------

def brute_energy(pos, species, box, m=PAPER):
    """sum_{i<j} V(|r_ij|) over all pairs, nearest periodic image."""
    d = pos[None, :, :] - pos[:, None, :]
    d -= box * np.round(d / box)
    r = np.sqrt((d**2).sum(-1))
    i, j = np.triu_indices(len(pos), 1)
    a, b = species[i], species[j]
    total = 0.0
    for pa, pb in itertools.product(range(m.n_species), repeat=2):
        on = (a == pa) & (b == pb)
        total += np.sum(model.pair_potential(r[i, j][on], m.sigma[pa, pb], m.epsilon[pa, pb],
                                             m, pair=(pa, pb)))
    return float(total)


def brute_energy_units(pos, species, box, m=PAPER):
    """The engine's fixed-point energy written out in numpy: every pair's eps V in the
    operation order of ``model.reduced_pair_energy_x2``, capped, rounded half-to-even to
    multiples of UNIT, summed as Python ints."""
    i, j = np.triu_indices(len(pos), 1)
    d = pos[j] - pos[i]
    d = np.where(d > 0.5 * box, d - box, d)
    d = np.where(d < -0.5 * box, d + box, d)
    a, b = species[i], species[j]
    x2 = (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) * (1.0 / m.sigma**2)[a, b]
    k = m.n_species
    forms = np.array([[m.form_of(p, q) for q in range(k)] for p in range(k)])
    x_in2, x_c2, x_in, c0, c2, c4, a0, a1, a2, a3, a4 = forms[a, b].T
    inv6 = 1.0 / (x2 * x2 * x2)
    lj = 4.0 * inv6 * (inv6 - 1.0) + (c0 + x2 * (c2 + x2 * c4))
    t = np.sqrt(x2) - x_in
    poly = a0 + t * (a1 + t * (a2 + t * (a3 + t * a4)))
    v = np.where(x2 < x_in2, lj, np.where(x2 < x_c2, poly, 0.0))
    e = np.minimum((m.epsilon / UNIT)[a, b] * v, 2.0**18 / UNIT)
    return int(np.rint(e).astype(np.int64).sum())


class PyXoshiro:
    """xoshiro256** in plain Python integers (Blackman & Vigna's reference algorithm)."""

    def __init__(self, state):
        self.s = [int(w) for w in state]

    def next(self):
        s0, s1, s2, s3 = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK   # noqa: E731
        result = (rotl((s1 * 5) & MASK, 7) * 9) & MASK
        t = (s1 << 17) & MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        self.s = [s0, s1, s2, rotl(s3, 45)]
        return result


# --- systems -----------------------------------------------------------------------------

def liquid(n, seed, density=1.024, m=PAPER):
    """A fresh random start of the paper's composition (equal fractions under another
    model): (pos, images, species, box, rng)."""
    fractions = model.PAPER_FRACTIONS if m is PAPER else [1 / m.n_species] * m.n_species
    counts = model.composition_counts(n, fractions, m.n_species)
    box = model.box_side(n, density)
    rng = mc.new_rng_state(np.random.SeedSequence(seed))
    pos = mc.initial_configuration(counts, box, rng, m)
    return pos, np.zeros((n, 2), np.int64), model.species_array(counts), box, rng


def build_lists(pos, species, box, skin, banded, m=PAPER):
    """The engine's lists (``mc._build_lists``) as ``run_sweeps`` builds them with swaps."""
    cut2 = np.full_like(m.sigma, (m.max_cutoff + skin)**2)
    return mc._build_lists(pos, species.view(np.uint8), box, cut2,
                           (m.cutoff_table + skin)**2, m.size_rank, banded)


def copy_state(state):
    return tuple(x.copy() if isinstance(x, np.ndarray) else x for x in state)


def same_bits(*pairs):
    return all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in pairs)


# --- energies ----------------------------------------------------------------------------

def test_total_and_particle_energies_equal_brute_force():
    for n, density in ((40, 1.0), (300, 1.024)):     # a box of < 5 cells, and a cell grid
        pos, _, species, box, _ = liquid(n, 7, density)
        expected = brute_energy(pos, species, box)
        assert mc.total_energy(pos, species, box) == pytest.approx(expected, rel=1e-12)
        assert mc.particle_energies(pos, species, box).sum() == pytest.approx(expected,
                                                                               rel=1e-12)


@pytest.mark.parametrize("swap_probability,skin,temperature,delta", [
    (0.0, mc.SKIN, 0.5, 0.12), (0.5, 0.1, 0.5, 0.12), (0.0, 0.22, 2.0, 0.3)])
def test_tracked_energy_equals_brute_force(swap_probability, skin, temperature, delta):
    """The sum of accepted dE follows the all-pairs energy over thousands of moves (thin
    skins and long steps put the list-rebuild rule to work)."""
    pos, img, species, box, rng = liquid(100, 11)
    composition = np.bincount(species, minlength=3)
    tracked = brute_energy(pos, species, box)
    accepted = swaps = 0
    for _ in range(10):
        st = mc.run_sweeps(pos, img, species, box, rng, 10, temperature, delta,
                           swap_probability, skin=skin)
        tracked += st.energy_change
        accepted += st.moves_accepted
        swaps += st.swaps_accepted
        assert abs(tracked - brute_energy(pos, species, box)) / len(pos) <= 1e-10
    assert accepted > 2000
    assert np.array_equal(np.bincount(species, minlength=3), composition)
    assert (swaps > 10) == (swap_probability > 0)


# --- neighbour list ----------------------------------------------------------------------

@pytest.mark.parametrize("n,box", [(60, 6.2), (300, 15.0), (1500, 38.0)])
def test_verlet_list_equals_all_pairs(n, box):
    rng = np.random.default_rng(n)
    pos = rng.uniform(0.0, box, (n, 2))
    edge = [0.0, 1e-13, box / 2, np.nextafter(box, 0.0), box - 1e-13]
    pos[:20, 0] = rng.choice(edge, 20)           # particles on and near the box edges
    pos[10:30, 1] = rng.choice(edge, 20)
    species = rng.integers(0, 3, n).astype(np.int8)
    cut2 = (model.X_CUT * SIGMA + 0.4)**2
    start, nbr = neighbours.verlet_list(pos, species, box, cut2)
    d = pos[None, :, :] - pos[:, None, :]
    d -= box * np.round(d / box)
    close = ((d**2).sum(-1) < cut2[species[:, None], species[None, :]]) & ~np.eye(n, dtype=bool)
    assert start[-1] == close.sum()
    for i in range(n):
        assert np.array_equal(nbr[start[i]:start[i + 1]], np.flatnonzero(close[i]))


@pytest.mark.parametrize("n,box", [(60, 6.2), (300, 15.0)])
def test_verlet_pairs_give_each_close_pair_once_with_its_distance(n, box):
    """The pairs of verlet_pairs are the list's, once each, with the squared distance
    fixedpoint.squared_distance gives from either end, to the bit."""
    rng = np.random.default_rng(n)
    pos = rng.uniform(0.0, box, (n, 2))
    pos[:20, 0] = rng.choice([0.0, 1e-13, box / 2, np.nextafter(box, 0.0)], 20)
    species = rng.integers(0, 3, n).astype(np.int8)
    cut2 = (model.X_CUT * SIGMA + 0.4)**2
    first, hstart, partners, r2 = neighbours.verlet_pairs(pos, species, box, cut2)
    start, nbr = neighbours.verlet_list(pos, species, box, cut2)
    found = []
    for p, i in enumerate(first):
        for k in range(hstart[p], hstart[p + 1]):
            j = int(partners[k])
            found.append((min(i, j), max(i, j)))
            for a, b in ((i, j), (j, i)):
                assert r2[k] == squared_distance(pos, b, pos[a, 0], pos[a, 1], box, box / 2)
    listed = [(i, int(j)) for i in range(n) for j in nbr[start[i]:start[i + 1]] if i < j]
    assert sorted(found) == listed


def test_banded_rows_hold_the_list_banded_by_distance():
    """A banded row is the unbanded row, ordered so that band c holds exactly the entries
    whose distance at the build gives band c (``mc._band``)."""
    pos, _, species, box, _ = liquid(400, 5)
    uspecies = species.view(np.uint8)
    band_cut2 = (PAPER.cutoff_table + mc.SKIN)**2
    start, nbr, ends = build_lists(pos, species, box, mc.SKIN, True)
    plain_start, plain_nbr, _ = build_lists(pos, species, box, mc.SKIN, False)
    assert np.array_equal(start, plain_start)
    for i in range(400):
        row = nbr[start[i]:start[i + 1]]
        assert np.array_equal(np.sort(row), plain_nbr[start[i]:start[i + 1]])
        bounds = [start[i], *ends[i], start[i + 1]]
        for c in range(4):
            for j in nbr[bounds[c]:bounds[c + 1]]:
                r2 = squared_distance(pos, j, pos[i, 0], pos[i, 1], box, box / 2)
                assert mc._band(r2, uspecies[j], band_cut2, PAPER.size_rank) == c


# --- sampling ----------------------------------------------------------------------------

def test_two_particles_sample_the_boltzmann_weight():
    """The minimum-image distance of an S and an L particle (sigma = eps = 1) has density
    r exp(-V(r) / T) for r < L / 2 (the annulus lies inside the periodic cell there)."""
    box, temperature = 8.0, 1.0
    pos = np.array([[1.0, 1.0], [3.0, 2.0]])
    img = np.zeros((2, 2), np.int64)
    species = np.array([0, 2], np.int8)
    rng = mc.new_rng_state(np.random.SeedSequence(2024))
    samples = np.empty(20000)
    for k in range(samples.size):
        mc.run_sweeps(pos, img, species, box, rng, 5, temperature, 3.5, skin=2.6)
        d = pos[1] - pos[0]
        samples[k] = np.hypot(*(d - box * np.round(d / box)))
    edges = np.array([0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 2.0, 2.5, 3.0, 3.5, 4.0])
    observed = np.histogram(samples, edges)[0]
    weight = lambda r: r * np.exp(-model.pair_potential(r, 1.0, 1.0) / temperature)  # noqa
    mass = np.array([integrate.quad(weight, lo, hi)[0] for lo, hi in zip(edges, edges[1:])])
    expected = observed.sum() * mass / mass.sum()
    chi2 = np.sum((observed - expected)**2 / expected)
    assert stats.chi2.sf(chi2, len(observed) - 1) > 1e-3, (observed, expected.round())


def test_swaps_sample_species_assignments_by_boltzmann_weight():
    """With swaps only, four fixed particles (S, S, M, L) visit the 12 distinct species
    assignments with probabilities exp(-E_k / T) / Z (exact enumeration): the S<->M / M<->L
    proposal is symmetric and connects them all, and S<->L is never proposed."""
    box, temperature = 6.0, 1.0
    pos = np.array([[1.0, 1.0], [2.1, 1.2], [1.4, 2.3], [2.5, 2.4]])
    img = np.zeros((4, 2), np.int64)
    species = np.array([0, 0, 1, 2], np.int8)
    rng = mc.new_rng_state(np.random.SeedSequence(7))
    states = sorted(set(itertools.permutations([0, 0, 1, 2])))
    index = {s: k for k, s in enumerate(states)}
    weights = np.exp([-brute_energy(pos, np.array(s), box) / temperature for s in states])
    observed = np.zeros(len(states))
    attempted = np.zeros(3, np.int64)
    for _ in range(30000):
        attempted += mc.run_sweeps(pos, img, species, box, rng, 1, temperature, 0.12,
                                   1.0).pair_swaps_attempted
        observed[index[tuple(species)]] += 1
    assert np.array_equal(pos[0], [1.0, 1.0]) and attempted[1] == 0 and attempted[[0, 2]].min() > 0
    expected = observed.sum() * weights / weights.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3, (observed, expected.round())


# --- reproducibility ---------------------------------------------------------------------

def test_same_seed_same_run_other_seed_other_run():
    def run(seed):
        pos, img, species, box, rng = liquid(80, seed)
        mc.run_sweeps(pos, img, species, box, rng, 20, 0.8, 0.12, 0.2)
        return pos, img, species, rng
    a, b, c = run(3), run(3), run(4)
    assert same_bits(*zip(a, b))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("swap_probability", [0.0, 0.3])
def test_split_calls_and_skins_are_bit_identical(swap_probability):
    """run_sweeps(a); run_sweeps(b) == run_sweeps(a + b), bit for bit, for any split and skin
    (the list is rebuilt at other moments, with other skin members, every time)."""
    base = liquid(150, 5)

    def run(splits, skin=mc.SKIN):
        pos, img, species, box, rng = copy_state(base)
        builds = 0
        for sweeps in splits:
            builds += mc.run_sweeps(pos, img, species, box, rng, sweeps, 1.0, 0.12,
                                    swap_probability, skin=skin).list_builds
        return (pos, img, species, rng), builds

    reference, builds = run([40], skin=0.25)
    assert builds > 5     # rebuilt inside the call, not only at its start
    for splits in ([1, 1, 1, 2, 35], [13, 27], [20, 0, 20]):
        assert same_bits(*zip(reference, run(splits)[0])), splits
    for skin in (0.4, 1.5):
        assert same_bits(*zip(reference, run([40], skin)[0])), skin


def _changes(pos, species, box, skin, trials, swaps, m=PAPER):
    """dE (units) of each (i, dx, dy, b) of ``trials``, as a move and as a relabelling,
    through the engine's kernels on a list built with ``skin``."""
    uspecies, tb = species.view(np.uint8), mc.engine_tables(m)
    start, nbr, ends = build_lists(pos, species, box, skin, swaps, m)
    half, out = 0.5 * box, []
    for i, dx, dy, b in trials:
        xn, yn = (pos[i, 0] + dx) % box, (pos[i, 1] + dy) % box
        out.append(mc._move_change(pos, uspecies, start, nbr, ends, i, xn, yn, box, half, tb))
        out.append(mc._relabel_change(pos, uspecies, start, nbr, ends, i, b, -1, box, half,
                                      tb))
    return np.array(out)


@pytest.mark.parametrize("m", MODELS, ids=lambda m: m.name)
def test_energy_change_does_not_depend_on_the_list(m):
    """dE of a trial is bit-identical whichever skin the list was built with and whether
    its rows are banded: the kernel sums the interacting pairs exactly -- also for models
    whose cutoffs do not grow with the species index or the size rank.  (Positions alone
    could not show this: rounding in dE changes them only by flipping a Metropolis
    decision.)  dE agrees with the all-pairs O(N^2) energy to the grid's rounding."""
    pos, _, species, box, _ = liquid(300, 4, m=m)
    rng = np.random.default_rng(0)
    trials = [(i, *rng.uniform(-0.06, 0.06, 2), b) for i, b in
              zip(rng.integers(0, 300, 500), rng.integers(0, m.n_species, 500))]
    reference = _changes(pos, species, box, 0.09, trials, True, m)
    for skin, swaps in ((0.3, True), (1.2, True), (0.3, False)):    # all above 0.06 sqrt(2)
        assert same_bits((reference, _changes(pos, species, box, skin, trials, swaps, m)))
    expected = []
    for i, dx, dy, b in trials[:50]:
        moved = pos.copy()
        moved[i] = (moved[i] + [dx, dy]) % box
        relabelled = species.copy()
        relabelled[i] = b
        before = brute_energy(pos, species, box, m)
        expected += [brute_energy(moved, species, box, m) - before,
                     brute_energy(pos, relabelled, box, m) - before]
    # each of the <= 2 x 60 rounded pair energies is off by at most UNIT / 2
    assert np.allclose(reference[:100] * UNIT, expected, rtol=0, atol=60 * UNIT)


@pytest.mark.parametrize("m", MODELS, ids=lambda m: m.name)
def test_energy_ledger_is_exact(m):
    """The sum of the accepted dE equals the change of the fixed-point energy exactly --
    computed here independently, with numpy over all pairs -- through moves, swaps and
    many list rebuilds: the ledger cannot drift (every model)."""
    pos, img, species, box, rng = liquid(120, 12, m=m)
    start = brute_energy_units(pos, species, box, m)
    assert mc.total_energy_units(pos, species, box, m) == start
    assert mc.total_energy(pos, species, box, m) == pytest.approx(
        brute_energy(pos, species, box, m), rel=1e-12, abs=1e-9)
    total = builds = swaps = 0
    for swap_probability, skin in ((0.0, 0.1), (0.4, 0.1), (0.0, mc.SKIN)):
        st = mc.run_sweeps(pos, img, species, box, rng, 30, 0.7, 0.12, swap_probability,
                           skin=skin, model=m)
        total += st.energy_change_units
        builds += st.list_builds
        swaps += st.swaps_accepted
        assert st.energy_change == st.energy_change_units * UNIT
    assert builds > 10 and swaps > 10
    assert brute_energy_units(pos, species, box, m) - start == total
    assert mc.total_energy_units(pos, species, box, m) - start == total


# --- early rejection of swaps ------------------------------------------------------------

@njit
def _full_swap_chain(pos, species, box, rng, n_trials, beta, tb):
    """Swap trials drawing the engine's random stream, each dE summed in full over all N
    particles (``fixedpoint.pair_units``; no list, no bands, no early rejection)."""
    n, half, accepted = pos.shape[0], 0.5 * box, 0
    k_species = tb.n_species
    for _ in range(n_trials):
        mc._uniform(rng)                        # the engine's swap-or-move draw
        i, j = mc._swap_proposal(rng, species, tb)
        u = mc._uniform(rng)
        de = 0
        for p, new in ((i, species[j]), (j, species[i])):
            for k in range(n):
                if k != i and k != j:
                    r2 = squared_distance(pos, k, pos[p, 0], pos[p, 1], box, half)
                    for s, sign in ((new, 1), (species[p], -1)):
                        t = k_species * s + species[k]
                        de += sign * pair_units(r2 * tb.inv_sigma2[t], tb.eps_units[t],
                                                tb.forms, t)
        if de <= 0 or u < np.exp(-beta * (de * UNIT)):
            species[i], species[j] = species[j], species[i]
            accepted += 1
    return accepted


@pytest.mark.parametrize("temperature", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("m", MODELS, ids=lambda m: m.name)
def test_swaps_cut_short_give_the_chain_of_full_evaluation(temperature, m):
    """Swap trials that stop summing once the rejection is certain (``_growth_change``,
    with the floor the model computes) make, bit for bit, the chain of trials that sum
    every pair -- for every model."""
    pos, img, species, box, rng = liquid(150, 8, m=m)
    mc.run_sweeps(pos, img, species, box, rng, 10, 1.0, 0.12, model=m)
    ref_species, ref_rng = species.copy(), rng.copy()
    st = mc.run_sweeps(pos, img, species, box, rng, 15, temperature, 0.12, 1.0, model=m)
    accepted = _full_swap_chain(pos, ref_species.view(np.uint8), box, ref_rng, 15 * 150,
                                1.0 / temperature, mc.engine_tables(m))
    assert st.swaps_accepted == accepted > 2
    assert same_bits((species, ref_species), (rng, ref_rng))


def test_growth_change_is_exact_or_certainly_rejected():
    """_growth_change returns the exact dE of a growing particle, or -- cut short -- a value
    at or above the limit when the exact dE is at or above it too; both happen."""
    pos, _, species, box, _ = liquid(300, 4)
    uspecies, tb = species.view(np.uint8), mc.engine_tables(PAPER)
    lists = build_lists(pos, species, box, mc.SKIN, True)
    rng = np.random.default_rng(3)
    cut_short = exact = 0
    for i in np.flatnonzero(species < 2)[:200]:
        b = uspecies[i] + 1
        full = mc._relabel_change(pos, uspecies, *lists, i, b, -1, box, 0.5 * box, tb)
        for limit in rng.integers(-2**36, 2**38, 5):
            got = mc._growth_change(pos, uspecies, *lists, i, b, -1, box, 0.5 * box, 7, limit,
                                    tb)
            if got == full + 7:
                exact += 1
            else:
                cut_short += 1
                assert got >= limit and full + 7 >= limit
    assert cut_short > 50 and exact > 50


@pytest.mark.parametrize("m", MODELS, ids=lambda m: m.name)
def test_growth_floor_bounds_every_pair(m):
    """No pair energy falls by more than the model's floor when a particle changes from
    species a to a swap partner b, at any distance: r sampled every 7e-7 sigma on points
    offset from the model's own scan, energies in plain float from ``model.pair_potential``
    with the grid's cap.  For the paper's model the floor is the hand-worked one's
    (-0.622, -0.705 eps_LS for S -> M, M -> L) within 0.05 eps_LS; elsewhere it is loose by
    at most 0.1 eps plus 1 % of the change (slope x sample spacing in the steep short range)."""
    r = np.arange(1, int(m.max_cutoff / 7e-7) + 2) * 7e-7 + 3.1e-7
    k = m.n_species
    for a, b in zip(*np.nonzero(m.swap_partners)):
        def capped(c, s):
            return np.minimum(model.pair_potential(r, m.sigma[c, s], m.epsilon[c, s], m,
                                                   pair=(c, s)), 2**18)
        change = min(np.min(capped(b, s) - capped(a, s)) for s in range(k))
        floor = m.growth_floor_units[k * a + b] * UNIT
        assert floor <= min(change, 0.0) - 1e-3
        assert floor > change - 0.1 - 1e-2 * abs(change)
    if m is PAPER:
        assert np.allclose(m.growth_floor_units[[1, 5]] * UNIT, [-0.622, -0.705], atol=0.05)


def test_rejection_limit_rejects_every_larger_change():
    rng = np.random.default_rng(5)
    us = np.concatenate([rng.uniform(0, 1, 300), 1 - 2.0**-np.arange(1, 53),
                         2.0**-np.arange(1, 53), [0.0]])
    for beta in (1 / 0.3, 2.0, 1.0, 1 / 3.0):
        for u in us:
            limit = mc._rejection_limit(u, beta)
            assert limit >= 1
            if limit < 2**62:
                assert not any(mc._metropolis(u, beta, limit + k)
                               for k in (0, 1, 1000, 2**30, 2**40))
                # and it is tight: 1e-5 kT below it, Metropolis still accepts
                below = limit - int(1e-5 / (beta * UNIT))
                assert below < 1 or mc._metropolis(u, beta, below)


@njit
def _float_metropolis(pos, img, species, box, rng, n_trials, beta, delta, sigma, epsilon,
                      form):
    """An independent Metropolis chain drawing the engine's random stream: dE in plain
    floating point over all N particles with ``model.pair_energy_x2``, no list, no grid."""
    n, half, accepted = pos.shape[0], 0.5 * box, 0
    for _ in range(n_trials):
        i = mc._below(rng, n)
        ux, uy = mc._uniform_pair(rng)
        u = mc._uniform(rng)
        xn, sx = mc._wrap(pos[i, 0] + (ux - 0.5) * delta, box)
        yn, sy = mc._wrap(pos[i, 1] + (uy - 0.5) * delta, box)
        de = 0.0
        for j in range(n):
            if j != i:
                a, b = species[i], species[j]
                inv_s2, eps = 1.0 / sigma[a, b]**2, epsilon[a, b]
                for x, y, sign in ((xn, yn, 1.0), (pos[i, 0], pos[i, 1], -1.0)):
                    rx = neighbours.minimum_image(pos[j, 0] - x, box, half)
                    ry = neighbours.minimum_image(pos[j, 1] - y, box, half)
                    de += sign * model.pair_energy_x2((rx * rx + ry * ry) * inv_s2, eps, form, 0)
        if de <= 0.0 or u < np.exp(-beta * de):
            pos[i, 0], pos[i, 1] = xn, yn
            img[i, 0] += sx
            img[i, 1] += sy
            accepted += 1
    return accepted


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_statics_and_acceptance_match_a_floating_point_chain(temperature):
    """The grid moves no physics: from the same start and random stream, N = 1000 particles
    follow the same trajectory as a plain floating-point Metropolis chain (rounding at
    2^-33 eps could flip only a decision within ~1e-9 of its threshold), so the acceptance
    rate and <U>/N -- here the all-pairs energy of that trajectory -- agree."""
    pos, img, species, box, rng = liquid(1000, 31)
    mc.run_sweeps(pos, img, species, box, rng, 20, temperature, 0.12, 0.2)
    other = copy_state((pos, img, species, box, rng))
    engine_u, float_u, accepted, float_accepted = [], [], 0, 0
    for _ in range(4):
        accepted += mc.run_sweeps(pos, img, species, box, rng, 10, temperature,
                                  0.12).moves_accepted
        float_accepted += _float_metropolis(other[0], other[1], other[2].view(np.uint8),
                                            box, other[4], 10 * 1000, 1 / temperature, 0.12,
                                            PAPER.sigma, PAPER.epsilon, PAPER.form_vector)
        engine_u.append(mc.total_energy(pos, species, box) / 1000)
        float_u.append(brute_energy(other[0], species, box) / 1000)
    assert accepted == float_accepted and 0.2 < accepted / 40000 < 0.9
    assert np.allclose(engine_u, float_u, rtol=0, atol=1e-12)
    assert same_bits((pos, other[0]), (img, other[1]), (rng, other[4]))


def test_stream_and_images_of_a_free_particle():
    """A lone particle accepts every move: its unwrapped path is the sum of the steps drawn
    from an independent xoshiro256** (three draws a trial: particle, step, acceptance)."""
    box, delta = 6.0, 2.5
    pos, img = np.array([[0.5, 5.9]]), np.zeros((1, 2), np.int64)
    rng = mc.new_rng_state(np.random.SeedSequence(99))
    reference = PyXoshiro(rng)
    start = pos.copy()
    steps = np.zeros(2)
    st = mc.run_sweeps(pos, img, np.array([1], np.int8), box, rng, 3000, 0.5, delta, skin=2.0)
    for _ in range(3000):
        reference.next()                          # the particle (Lemire, n = 1: one draw)
        r = reference.next()
        steps += (np.array([r >> 32, r & 0xFFFFFFFF]) / 2.0**32 - 0.5) * delta
        reference.next()                          # the acceptance uniform
    assert st.moves_accepted == st.moves_attempted == 3000
    assert [int(w) for w in rng] == reference.s
    assert np.allclose(mc.unwrap(pos, img, box) - start, steps, rtol=0, atol=1e-9)
    assert np.all((pos >= 0) & (pos < box)) and np.abs(img).max() > 3


def test_images_keep_paths_continuous():
    pos, img, species, box, rng = liquid(120, 8)
    pos[:5, 0] = box - 1e-3                        # start some particles on the edge
    previous = mc.unwrap(pos, img, box)
    for _ in range(30):
        mc.run_sweeps(pos, img, species, box, rng, 1, 1.0, 0.12)
        now = mc.unwrap(pos, img, box)
        assert np.all((pos >= 0) & (pos < box))
        assert np.abs(now - previous).max() < 1.0     # no jumps of a box length
        previous = now
    assert np.any(img != 0)


def test_rng_state_is_an_ordinary_uint64_array():
    a = mc.new_rng_state(np.random.SeedSequence(1))
    assert a.dtype == np.uint64 and a.shape == (4,)
    assert np.array_equal(a, mc.new_rng_state(np.random.SeedSequence(1)))
    assert not np.array_equal(a, mc.new_rng_state(np.random.SeedSequence(2)))


# --- initial configurations and bad input ------------------------------------------------

def test_initial_configuration():
    pos, _, species, box, _ = liquid(500, 21)
    assert pos.shape == (500, 2) and np.all((pos >= 0) & (pos < box))
    d = pos[None, :, :] - pos[:, None, :]
    d -= box * np.round(d / box)
    r = np.sqrt((d**2).sum(-1)) + np.eye(500) * box
    assert np.all(r >= 0.85 * SIGMA[species[:, None], species[None, :]] * (1 - 1e-12))
    assert np.array_equal(pos, liquid(500, 21)[0])
    dense, _, _, dense_box, _ = liquid(400, 1, density=2.5)     # falls back to a lattice
    assert len(np.unique(dense.round(9), axis=0)) == 400
    assert np.all((dense >= 0) & (dense < dense_box))


def test_bad_input_is_refused():
    pos, img, species, box, rng = liquid(60, 2)
    with pytest.raises(InputError, match="box"):
        mc.run_sweeps(pos, img, species, 5.0, rng, 1, 1.0, 0.12)
    with pytest.raises(InputError, match="images"):
        mc.run_sweeps(pos, img.astype(np.int32), species, box, rng, 1, 1.0, 0.12)
    with pytest.raises(InputError, match="species"):
        mc.run_sweeps(pos, img, species.astype(np.int64), box, rng, 1, 1.0, 0.12)
    with pytest.raises(InputError, match="temperature"):
        mc.run_sweeps(pos, img, species, box, rng, 1, 0.0, 0.12)
    with pytest.raises(InputError, match="delta_max"):
        mc.run_sweeps(pos, img, species, box, rng, 1, 1.0, box)
    with pytest.raises(InputError, match="positions"):
        mc.run_sweeps(pos + box, img, species, box, rng, 1, 1.0, 0.12)
    with pytest.raises(InputError, match="box"):
        mc.total_energy(pos, species, 5.0)


def test_benchmark_reports_throughput():
    result = bench_mc.benchmark(n=300, temperature=1.0, sweeps=5)
    for key in ("trials_per_second_cpu", "trials_per_second_wall", "acceptance", "n",
                "temperature", "sweeps", "ns_per_trial", "mean_neighbours",
                "ns_per_trial_list_builds", "ns_per_trial_pair_evaluation", "ns_per_trial_rest",
                "swap_trials_per_second_cpu", "equilibration_trials_per_second_cpu"):
        assert key in result
    assert result["n"] == 300 and 0 < result["acceptance"] < 1
    assert 10 < result["mean_neighbours"] < 60
