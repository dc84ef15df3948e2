"""Dynamical observables against references written out plainly (brute force, by hand)."""
import math

import numpy as np
import pytest
from scipy.special import j0

from mpi_glass import dynamics
from mpi_glass.errors import InputError
from mpi_glass.model import SIGMA
from propensity_reference import numpy_cage, numpy_cage_relative, numpy_propensities

S, L = 0, 2


def random_configuration(n, box, seed):
    """Random positions with a few particles pinned against every edge and corner."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.0, box, size=(n, 2))
    eps = 0.02
    pos[:8] = [[eps, 1.0], [box - eps, 1.0], [2.0, eps], [2.0, box - eps],
               [eps, eps], [box - eps, box - eps], [eps, box - eps], [box - eps, eps]]
    return pos, rng.integers(0, 3, size=n).astype(np.int8)


def brute_force_neighbours(pos, species, box, factor, sigma=SIGMA):
    SIGMA = sigma   # noqa: N806 - the paper's table unless another model's is given
    rows = []
    for i in range(len(pos)):
        row = []
        for j in range(len(pos)):
            d = pos[j] - pos[i]
            d -= box * np.round(d / box)
            if j != i and math.hypot(*d) < factor * SIGMA[species[i], species[j]]:
                row.append(j)
        rows.append(row)
    return rows


def rows_of(offsets, indices):
    return [list(indices[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]


def hand_system():
    """Three S particles in a row 0.7 apart (1.4 sigma_SS = 0.866: 0-1 and 1-2 are
    neighbours, 0-2 at 1.4 are not) and one isolated particle 3."""
    pos = np.array([[1.0, 1.0], [1.7, 1.0], [2.4, 1.0], [6.0, 6.0]])
    return pos, np.zeros(4, np.int8), 10.0


# --- neighbours ------------------------------------------------------------------------------

@pytest.mark.parametrize("n, box, factor", [(300, 12.0, 1.4), (60, 5.0, 1.4), (300, 12.0, 1.8)])
def test_cage_neighbours_match_brute_force(n, box, factor):
    pos, species = random_configuration(n, box, seed=n)
    offsets, indices = dynamics.cage_neighbours(pos, species, box, cutoff_factor=factor)
    assert offsets.dtype == indices.dtype == np.int64
    assert rows_of(offsets, indices) == brute_force_neighbours(pos, species, box, factor)


def test_cage_neighbours_across_the_boundary():
    box = 8.0
    pos = np.array([[0.05, 4.0], [box - 0.05, 4.0], [4.0, 0.1], [4.0, box - 0.1]])
    offsets, indices = dynamics.cage_neighbours(pos, np.array([L, L, S, S]), box)
    assert rows_of(offsets, indices) == [[1], [0], [3], [2]]


def test_cage_neighbours_rejects_bad_input():
    pos = np.zeros((3, 2))
    with pytest.raises(InputError):
        dynamics.cage_neighbours(pos, [0, 1], 10.0)
    with pytest.raises(InputError):
        dynamics.cage_neighbours(pos, [0, 1, 3], 10.0)
    with pytest.raises(InputError):
        dynamics.cage_neighbours(pos, [0, 1, 2], 3.0)     # box below twice the cutoff


# --- cage-relative displacements -------------------------------------------------------------

def test_uniform_translation_has_no_cage_relative_displacement():
    pos, species = random_configuration(200, 10.0, seed=1)
    offsets, indices = dynamics.cage_neighbours(pos, species, 10.0)
    shift = np.array([0.37, -1.2])
    for shape in [(200, 2), (5, 200, 2), (3, 5, 200, 2)]:
        d = np.broadcast_to(shift, shape)
        assert np.allclose(dynamics.cage_relative(d, offsets, indices), 0.0, atol=1e-13)


def test_single_moved_particle():
    """Only particle i moves, by delta: it sees delta, each neighbour j of i sees
    -delta / n_j, everybody else nothing."""
    n = 200
    pos, species = random_configuration(n, 10.0, seed=2)
    offsets, indices = dynamics.cage_neighbours(pos, species, 10.0)
    rows = rows_of(offsets, indices)
    i = max(range(n), key=lambda k: len(rows[k]))
    delta = np.array([0.3, -0.1])
    d = np.zeros((n, 2))
    d[i] = delta
    expected = np.zeros((n, 2))
    expected[i] = delta
    for j in rows[i]:
        expected[j] = -delta / len(rows[j])
    assert np.allclose(dynamics.cage_relative(d, offsets, indices), expected, atol=1e-14)


def test_cage_relative_by_hand():
    pos, species, box = hand_system()
    offsets, indices = dynamics.cage_neighbours(pos, species, box)
    assert rows_of(offsets, indices) == [[1], [0, 2], [1], []]
    d = np.array([[0.1, 0.0], [0.0, 0.2], [0.3, 0.3], [-0.2, 0.1]])
    expected = np.array([
        [0.1, -0.2],        # d0 - d1
        [-0.2, 0.05],       # d1 - (d0 + d2) / 2
        [0.3, 0.1],         # d2 - d1
        [-0.25, -0.05],     # isolated: d3 minus the mean displacement (0.05, 0.15)
    ])
    assert np.allclose(dynamics.cage_relative(d, offsets, indices), expected, atol=1e-15)


def test_cage_relative_rejects_mismatched_shapes():
    offsets, indices = dynamics.cage_neighbours(*hand_system())
    with pytest.raises(InputError):
        dynamics.cage_relative(np.zeros((5, 2)), offsets, indices)
    with pytest.raises(InputError):
        dynamics.cage_relative(np.zeros((4, 2)), offsets, indices + 10)


# --- F_s -------------------------------------------------------------------------------------

def test_fs_is_one_without_displacement():
    assert np.all(dynamics.fs_cr(np.zeros((3, 7, 50, 2))) == 1.0)


def test_fs_is_the_direction_average_of_the_plane_wave():
    rng = np.random.default_rng(3)
    dcr = rng.normal(scale=0.4, size=(4, 30, 2))
    angles = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    k = 6.3 * np.stack([np.cos(angles), np.sin(angles)], axis=1)      # (A, 2)
    plane_wave = np.cos(np.einsum("tnx,ax->tna", dcr, k)).mean(axis=(1, 2))
    fs = dynamics.fs_cr(dcr)
    assert fs.shape == (4,)
    assert np.allclose(fs, plane_wave, atol=1e-12)
    assert np.allclose(fs, j0(6.3 * np.linalg.norm(dcr, axis=-1)).mean(axis=1), atol=1e-15)


# --- bond survival and propensities ----------------------------------------------------------

def brute_force_survival(pos, species, box, disp, factor_in=1.4, factor_out=1.8):
    now = pos + disp
    out = []
    for i, row in enumerate(brute_force_neighbours(pos, species, box, factor_in)):
        kept = 0
        for j in row:
            d = now[j] - now[i]
            d -= box * np.round(d / box)
            kept += math.hypot(*d) < factor_out * SIGMA[species[i], species[j]]
        out.append(kept / len(row) if row else 1.0)
    return np.array(out)


def test_bond_survival_matches_brute_force():
    box = 10.0
    pos, species = random_configuration(200, box, seed=4)
    disp = np.random.default_rng(5).normal(scale=0.5, size=(3, 200, 2))
    disp[2] += 3.5 * box       # unwrapped displacements may be many boxes long
    offsets, indices = dynamics.cage_neighbours(pos, species, box)
    got = dynamics.bond_survival(disp, pos, species, box, offsets, indices)
    assert got.shape == (3, 200)
    for t in range(3):
        assert np.allclose(got[t], brute_force_survival(pos, species, box, disp[t]))


def pair_system(box=10.0):
    """Two L particles across the x boundary, 1.0 apart (< 1.4 sigma_LL), far from a third."""
    pos = np.array([[box - 0.5, 2.0], [0.5, 2.0], [5.0, 7.0]])
    return pos, np.array([L, L, S], np.int8), box


def test_bond_breaks_beyond_1p8_sigma_and_counts_again_when_back():
    pos, species, box = pair_system()
    reach = 1.8 * SIGMA[L, L]
    x_out = [0.0, reach - 1.0 - 1e-6, reach - 1.0 + 1e-6, 4.0, 0.0]   # moves of particle 1
    disp = np.zeros((len(x_out), 3, 2))
    disp[:, 1, 0] = x_out
    offsets, indices = dynamics.cage_neighbours(pos, species, box)
    q = dynamics.bond_survival(disp, pos, species, box, offsets, indices)
    # instantaneous definition: the bond is back at the last time
    assert q[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert q[:, 1].tolist() == q[:, 0].tolist()
    assert np.all(q[:, 2] == 1.0)       # no initial neighbour: nothing to lose


def test_frozen_system_has_p_zero_q_one():
    pos, species = random_configuration(150, 9.0, seed=6)
    p, q, fs = dynamics.propensities(np.zeros((3, 4, 150, 2), np.float32), pos, species, 9.0)
    assert p.shape == q.shape == (4, 150) and fs.shape == (4,)
    assert np.all(p == 0.0) and np.all(q == 1.0) and np.all(fs == 1.0)


def test_propensities_average_over_replicas():
    pos, species, box = pair_system()
    disp = np.zeros((2, 1, 3, 2))
    disp[1, 0, 1] = [3.0, 0.0]          # replica 1 breaks the 0-1 bond, replica 0 does not
    p, q, fs = dynamics.propensities(disp, pos, species, box)
    assert np.allclose(q[0], [0.5, 0.5, 1.0])
    # replica 1, drift-removed d = (-1, 0), (2, 0), (-1, 0): 0 and 1 see each other,
    # 2 is isolated and keeps its own
    dcr = np.array([[-3.0, 0.0], [3.0, 0.0], [-1.0, 0.0]])
    assert np.allclose(p[0], np.linalg.norm(dcr, axis=1) / 2)
    assert np.allclose(fs, (1.0 + j0(6.3 * np.linalg.norm(dcr, axis=1)).mean()) / 2)


def test_propensities_agree_with_the_parts():
    box = 10.0
    pos, species = random_configuration(200, box, seed=7)
    disp = np.random.default_rng(8).normal(scale=0.4, size=(3, 5, 200, 2)).astype(np.float32)
    p, q, fs = dynamics.propensities(disp, pos, species, box)
    offsets, indices = dynamics.cage_neighbours(pos, species, box)
    dcr = dynamics.cage_relative(disp, offsets, indices)
    assert np.allclose(p, np.linalg.norm(dcr, axis=-1).mean(axis=0))
    assert np.allclose(fs, dynamics.fs_cr(dcr).mean(axis=0))
    assert np.allclose(q, dynamics.bond_survival(disp, pos, species, box, offsets,
                                                 indices).mean(axis=0))


# --- rectangular boxes (imported data) -------------------------------------------------------

def rectangle_configuration(n, sides, seed):
    """Random positions in an Lx x Ly box with particles pinned against every edge and
    corner, pairs close across each edge."""
    rng = np.random.default_rng(seed)
    lx, ly = sides
    pos = rng.uniform(0.0, 1.0, size=(n, 2)) * sides
    eps = 0.02
    pos[:8] = [[eps, 1.0], [lx - eps, 1.0], [2.0, eps], [2.0, ly - eps],
               [eps, eps], [lx - eps, ly - eps], [eps, ly - eps], [lx - eps, eps]]
    return pos, rng.integers(0, 3, size=n).astype(np.int8)


@pytest.mark.parametrize("sides", [(9.0, 14.0), (14.0, 9.0)])
@pytest.mark.parametrize("factor", [1.4, 1.8])
def test_cage_neighbours_in_a_rectangle_match_brute_force(sides, factor):
    pos, species = rectangle_configuration(300, np.array(sides), seed=21)
    offsets, indices = dynamics.cage_neighbours(pos, species, sides, cutoff_factor=factor)
    rows = rows_of(offsets, indices)
    assert rows == brute_force_neighbours(pos, species, np.array(sides), factor)
    assert 1 in rows[0] and 3 in rows[2] and 5 in rows[4]      # across x, y and the corner


def test_bond_survival_in_a_rectangle_matches_brute_force():
    sides = np.array([9.0, 14.0])
    pos, species = rectangle_configuration(250, sides, seed=22)
    disp = np.random.default_rng(23).normal(scale=0.5, size=(3, 250, 2))
    disp[2] += 3.5 * sides      # unwrapped displacements many boxes long, unequal in x, y
    offsets, indices = dynamics.cage_neighbours(pos, species, sides)
    got = dynamics.bond_survival(disp, pos, species, sides, offsets, indices)
    for t in range(3):
        assert np.allclose(got[t], brute_force_survival(pos, species, sides, disp[t]))


def test_propensities_in_a_rectangle_match_numpy():
    """p, q, F_s^CR and the cage-relative displacements in a 9 x 14 box against the plain
    numpy definitions; a bond stretched across the short side breaks only there."""
    sides = np.array([9.0, 14.0])
    pos, species = rectangle_configuration(200, sides, seed=24)
    disp = np.random.default_rng(25).normal(scale=0.45, size=(3, 4, 200, 2))
    disp[:, 3] += [4.5, 7.0]    # half a box each way: a pure drift, removed
    p, q, fs = dynamics.propensities(disp.astype(np.float32), pos, species, tuple(sides))
    ref_p, ref_q, ref_fs = numpy_propensities(pos, species, sides,
                                              disp.astype(np.float32).astype(np.float64))
    assert np.allclose(p, ref_p, rtol=1e-12, atol=1e-12)
    assert np.allclose(fs, ref_fs, rtol=0, atol=1e-12)
    assert np.array_equal(q, ref_q)
    offsets, indices = dynamics.cage_neighbours(pos, species, sides)
    dcr = dynamics.cage_relative(disp[1], offsets, indices)
    cage = numpy_cage(pos, species, sides)[1]
    for t in range(4):
        assert np.allclose(dcr[t], numpy_cage_relative(cage, disp[1, t]), atol=1e-13)


@pytest.mark.parametrize("sides, name", [((9.0, 4.0), "L_y = 4"), ((4.2, 9.0), "L_x = 4.2")])
def test_a_side_too_short_for_the_reach_is_refused_by_name(sides, name):
    """Both sides exceed twice the cage reach (1.4 sigma_LL = 1.65) but one not twice the
    bond reach (1.8 sigma_LL = 2.12) that propensities follow: refused, naming that side."""
    pos, species = rectangle_configuration(20, np.array(sides), seed=26)
    dynamics.cage_neighbours(pos, species, sides)
    with pytest.raises(InputError, match=f"box: side {name} must exceed twice the neighbour "
                                         f"reach 2.116"):
        dynamics.propensities(np.zeros((1, 1, 20, 2)), pos, species, sides)


# --- times -----------------------------------------------------------------------------------

@pytest.mark.parametrize("per_decade", [8, 64])
def test_tau_alpha_of_an_exponential(per_decade):
    tau = 1234.0
    times = dynamics.log_times(10**5, per_decade).astype(float)
    rtol = 1e-2 if per_decade == 8 else 1e-5
    assert dynamics.tau_alpha(times, np.exp(-times / tau)) == pytest.approx(tau, rel=rtol)
    with_zero = np.concatenate([[0.0], times])
    assert dynamics.tau_alpha(with_zero, np.exp(-with_zero / tau)) == pytest.approx(tau, rel=rtol)


def test_tau_alpha_at_a_recorded_time_and_unresolved_cases():
    times = np.array([1.0, 10.0, 100.0])
    assert dynamics.tau_alpha(times, [0.9, math.exp(-1.0), 0.1]) == 10.0
    assert math.isnan(dynamics.tau_alpha(times, [0.9, 0.8, 0.5]))        # never crossed
    assert math.isnan(dynamics.tau_alpha(times, [0.3, 0.2, 0.1]))        # before the record
    assert math.isnan(dynamics.tau_alpha([0.0, 1.0, 10.0], [1.0, 0.3, 0.1]))


def test_tau_alpha_is_the_first_crossing_interpolated_in_log_t():
    # fs falls from 0.5 to 2/e - 0.5, so 1/e is reached halfway: log10 t = 1.5; the later
    # rise back above 1/e does not matter
    fs = [0.9, 0.5, 2.0 / math.e - 0.5, 0.6]
    got = dynamics.tau_alpha([1.0, 10.0, 100.0, 1000.0], fs)
    assert got == pytest.approx(10**1.5, rel=1e-12)


def test_tau_alpha_rejects_bad_times():
    with pytest.raises(InputError):
        dynamics.tau_alpha([1.0, 1.0, 2.0], [1.0, 0.5, 0.1])
    with pytest.raises(InputError):
        dynamics.tau_alpha([1.0, 2.0], [1.0, 0.5, 0.1])


def test_log_times_properties():
    t = dynamics.log_times(10**4, 8)
    assert t.dtype == np.int64 and t[0] == 1 and t[-1] == 10**4
    assert np.all(np.diff(t) > 0)
    assert t[t < 10].tolist() == [1, 2, 3, 4, 6, 7]       # 10^(k/8) rounded, merged
    for lo in (10, 100, 1000):                            # eight per decade once resolved
        assert np.count_nonzero((t >= lo) & (t < 10 * lo)) == 8
    assert dynamics.log_times(1000, 1).tolist() == [1, 10, 100, 1000]
    assert dynamics.log_times(5000, 1).tolist() == [1, 10, 100, 1000, 5000]
    assert dynamics.log_times(1).tolist() == [1]


def test_log_times_extra_times():
    t = dynamics.log_times(1000, 4, extra=(5, 10, 250))
    assert 250 in t and 5 in t and np.all(np.diff(t) > 0) and t[-1] == 1000
    beyond = dynamics.log_times(1000, 4, extra=[5000])
    assert beyond[-1] == 5000 and 1000 in beyond
    assert beyond[:-1].tolist() == dynamics.log_times(1000, 4).tolist()


@pytest.mark.parametrize("args", [(0,), (-10,), (2.5,), (True,), ("100",), (100, 0),
                                  (100, 8, (5, 3)), (100, 8, (0, 3)), (100, 8, (3, 3)),
                                  (100, 8, (1.5,))])
def test_log_times_rejects_bad_input(args):
    with pytest.raises(InputError) as info:
        dynamics.log_times(*args)
    assert "\n" not in str(info.value) and str(info.value).startswith("log_times")


def test_nearest_time_index_is_nearest_in_log_t():
    times = np.array([0, 1, 10, 100, 1000])
    assert dynamics.nearest_time_index(times, 30.0) == 2      # log: 30 is nearer 10 than 100
    assert dynamics.nearest_time_index(times, 40.0) == 3
    assert dynamics.nearest_time_index(times, 1e-3) == 1      # t = 0 is never nearest
    assert dynamics.nearest_time_index(times, 1e9) == 4
    with pytest.raises(InputError):
        dynamics.nearest_time_index(times, 0.0)


def test_interpolate_in_time_is_linear_in_log_t():
    times = np.array([0, 1, 10, 100])
    values = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 6.0], [4.0, 8.0]])
    assert np.allclose(dynamics.interpolate_in_time(times, values, 10**0.5), [1.5, 5.5])
    assert np.allclose(dynamics.interpolate_in_time(times, values, 10**1.25), [2.5, 6.5])
    assert dynamics.interpolate_in_time(times, values, 10).tolist() == [2.0, 6.0]
    assert dynamics.interpolate_in_time(times, values, 1).tolist() == [1.0, 5.0]
    assert dynamics.interpolate_in_time(times, values, 100).tolist() == [4.0, 8.0]
    for outside in (0.5, 101.0):
        with pytest.raises(InputError):
            dynamics.interpolate_in_time(times, values, outside)


def test_cage_and_bond_radii_follow_the_model():
    """KA2D's sigma_ab (non-additive, A-B pairs closer than either A-A or B-B) set the cage
    neighbours and the bond survival radius."""
    from mpi_glass.model import named
    m = named("ka2d")
    rng = np.random.default_rng(4)
    box = 9.0
    pos = rng.uniform(0, box, (90, 2))
    species = rng.integers(0, 3, 90).astype(np.int8)
    offsets, indices = dynamics.cage_neighbours(pos, species, box, model=m)
    assert rows_of(offsets, indices) == brute_force_neighbours(pos, species, box, 1.4, m.sigma)
    q = dynamics.bond_survival(np.zeros((1, 90, 2)), pos, species, box, offsets, indices,
                               model=m)
    assert np.all(q == 1.0)
