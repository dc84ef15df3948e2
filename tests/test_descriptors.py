"""Structural descriptors against plain brute-force loops, freud, lattices and symmetries."""
import math

import numpy as np
import pytest

from mpi_glass import descriptors as D
from mpi_glass.errors import InputError
from mpi_glass.model import EPSILON, SIGMA, box_side, composition_counts, pair_potential, \
    species_array

LOCAL = ("u", "z", "psi6", "theta")


# -- configurations ------------------------------------------------------------------------

def dense_disordered(n, seed, box=None, density=1.024):
    """Random discs of the paper's composition pushed apart by a soft contact repulsion.

    Packing fraction ~0.64 (below 2D jamming), so the overlaps relax (r > 0.95 sigma_ab): dense
    and disordered like a liquid (mean z ~ 5.7), without the energies of uniform random points.
    """
    rng = np.random.default_rng(seed)
    box = np.broadcast_to(box_side(n, density) if box is None else box, (2,)).astype(float)
    pos = rng.uniform(0.0, 1.0, (n, 2)) * box
    species = rng.permutation(species_array(composition_counts(n, (0.44, 0.20, 0.36))))
    sigma = SIGMA[species[:, None], species[None, :]]
    for _ in range(100):
        d = pos[None, :, :] - pos[:, None, :]
        d -= box * np.round(d / box)
        r = np.hypot(d[..., 0], d[..., 1])
        np.fill_diagonal(r, np.inf)
        push = np.clip(1.0 - r / sigma, 0.0, None) / r
        pos = (pos - 0.3 * np.einsum("ij,ijk->ik", push, d)) % box
    return pos, species, box


@pytest.fixture(scope="module")
def small():
    """150 particles in a box of ~12 sigma: far smaller than 2 R_N, so images matter."""
    return dense_disordered(150, seed=1)


@pytest.fixture(scope="module")
def medium():
    return dense_disordered(400, seed=2)


def triangular_lattice(spacing, nx=12, ny=12):
    i, j = np.divmod(np.arange(nx * ny), nx)
    pos = np.stack([(j + 0.5 * (i % 2)) * spacing, i * spacing * math.sqrt(3) / 2], axis=1)
    return pos, np.array([nx * spacing, ny * spacing * math.sqrt(3) / 2])


# -- brute force, written plainly ----------------------------------------------------------

def image_shifts(box, radius):
    """Every box translation that can bring a particle within ``radius`` of another."""
    kx, ky = (int(math.ceil(radius / side)) + 1 for side in box)
    return np.array([(a * box[0], b * box[1]) for a in range(-kx, kx + 1)
                     for b in range(-ky, ky + 1)])


def all_images(pos, box, i, radius):
    """(partner index, vector from i) of every image of every particle, i itself excluded."""
    shifts = image_shifts(box, radius)
    vec = (pos[None, :, :] + shifts[:, None, :] - pos[i]).reshape(-1, 2)
    index = np.tile(np.arange(len(pos)), len(shifts))
    itself = (index == i) & np.all(np.repeat(shifts, len(pos), axis=0) == 0, axis=1)
    return index[~itself], vec[~itself]


def reference_angle(s_ij, s_ik, s_jk):
    return math.acos((s_ij**2 + s_ik**2 - s_jk**2) / (2 * s_ij * s_ik))


def brute_local(pos, species, box, sigma=SIGMA, epsilon=EPSILON, model=None):
    SIGMA = sigma   # noqa: N806 - the paper's tables by default, another model's if given
    box = np.broadcast_to(box, (2,)).astype(float)
    out = {name: np.zeros(len(pos)) for name in LOCAL}
    reach = 2.5 * SIGMA.max() if model is None else model.max_cutoff
    for i in range(len(pos)):
        j, vec = all_images(pos, box, i, reach)
        r = np.hypot(vec[:, 0], vec[:, 1])
        a, b = species[i], species[j]
        for s in np.unique(b):      # pair by pair: a model may give each pair its own cutoff
            out["u"][i] += 0.5 * pair_potential(r[b == s], SIGMA[a, s], epsilon[a, s], model,
                                                pair=None if model is None else (a, s)).sum()
        near = r < 1.5 * SIGMA[a, b]
        angles = np.arctan2(vec[near, 1], vec[near, 0])
        z = len(angles)
        out["z"][i] = z
        if z == 0:
            continue
        out["psi6"][i] = abs(np.exp(6j * angles).sum()) / z
        order = np.argsort(angles)
        kinds = b[near][order]
        gaps = np.diff(np.append(angles[order], angles[order][0] + 2 * math.pi))
        total = 0.0
        for k in range(z):
            s, t = kinds[k], kinds[(k + 1) % z]
            total += abs(gaps[k] - reference_angle(SIGMA[a, s], SIGMA[a, t], SIGMA[s, t]))
        out["theta"][i] = total / z
    return out


def brute_features(pos, species, box, lengths):
    box = np.broadcast_to(box, (2,)).astype(float)
    local = brute_local(pos, species, box)
    x = np.stack([local[name] for name in ("u", "psi6", "theta", "z")], axis=1)
    blocks = np.zeros((len(pos), 6, len(lengths)))
    for i in range(len(pos)):
        j, vec = all_images(pos, box, i, D.R_N)
        r = np.hypot(vec[:, 0], vec[:, 1])
        keep = r < D.R_N
        j = np.append(j[keep], i)          # i itself, at r = 0
        r = np.append(r[keep], 0.0)
        for l, ell in enumerate(lengths):
            w = np.exp(-r / ell)
            rho = w.sum()
            blocks[i, 0, l] = rho
            blocks[i, 1, l] = (SIGMA[species[i], species[j]] ** 2 * w).sum()
            blocks[i, 2:, l] = (x[j] * w[:, None]).sum(axis=0) / rho
    return blocks.reshape(len(pos), -1)


# -- against brute force -------------------------------------------------------------------

def test_local_descriptors_match_brute_force(small):
    got = D.local_descriptors(*small)
    want = brute_local(*small)
    assert got["z"].dtype == np.int64
    np.testing.assert_array_equal(got["z"], want["z"])
    for name in ("u", "psi6", "theta"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("lengths", [D.DEFAULT_LENGTHS, (1.3, 0.25, 0.5, 2.6)])
def test_features_match_brute_force(small, lengths):
    values, names = D.compute_features(*small, lengths=lengths)
    assert values.shape == (150, 6 * len(lengths)) and values.dtype == np.float64
    assert names == D.feature_names(lengths)
    np.testing.assert_allclose(values, brute_features(*small, lengths), rtol=1e-11, atol=1e-13)


def test_rectangular_box_matches_brute_force():
    pos, species, box = dense_disordered(120, seed=5, box=(13.0, 9.0))
    lengths = (0.5, 5.0)
    values, _ = D.compute_features(pos, species, box, lengths=lengths)
    np.testing.assert_allclose(values, brute_features(pos, species, box, lengths),
                               rtol=1e-11, atol=1e-13)


# -- lattices ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [0, 1, 2])
def test_perfect_triangular_lattice(kind):
    pos, box = triangular_lattice(SIGMA[kind, kind])
    species = np.full(len(pos), kind)
    local = D.local_descriptors(pos, species, box)
    np.testing.assert_array_equal(local["z"], 6)
    np.testing.assert_allclose(local["psi6"], 1.0, atol=1e-12)
    np.testing.assert_allclose(local["theta"], 0.0, atol=1e-12)
    values, _ = D.compute_features(pos, species, box)
    # every site is equivalent, images included: each feature is the same for all particles
    np.testing.assert_allclose(values, np.broadcast_to(values[0], values.shape), rtol=1e-12,
                               atol=1e-12)


def test_perturbed_lattice_is_less_ordered():
    pos, box = triangular_lattice(SIGMA[2, 2])
    pos = pos + np.random.default_rng(3).normal(0.0, 0.02, pos.shape)
    local = D.local_descriptors(pos, np.full(len(pos), 2), box)
    assert np.all(local["z"] == 6)
    assert np.all(local["theta"] > 1e-4)
    assert np.all(local["psi6"] < 1.0)


# -- freud ---------------------------------------------------------------------------------

def test_z_and_psi6_match_freud(medium):
    freud = pytest.importorskip("freud")
    pos, species, box = medium
    points = np.column_stack([pos - box / 2, np.zeros(len(pos))])
    fbox = freud.box.Box(Lx=box[0], Ly=box[1], is2D=True)
    query = freud.locality.AABBQuery(fbox, points).query(
        points, {"r_max": 1.5 * SIGMA.max(), "exclude_ii": True})
    nlist = query.toNeighborList()
    cut = 1.5 * SIGMA[species[nlist.query_point_indices], species[nlist.point_indices]]
    nlist.filter(nlist.distances < cut)
    hexatic = freud.order.Hexatic(k=6).compute((fbox, points), neighbors=nlist)
    local = D.local_descriptors(pos, species, box)
    np.testing.assert_array_equal(local["z"], nlist.neighbor_counts)
    # freud divides by the neighbour count too, but works in single precision
    np.testing.assert_allclose(local["psi6"], np.abs(hexatic.particle_order), atol=2e-5)
    assert local["z"].mean() > 5  # a dense liquid, not a trivial check


# -- periodicity and symmetries ------------------------------------------------------------

@pytest.mark.parametrize("copies", [2, 3])
def test_tiled_box_gives_the_same_features(copies):
    pos, species, box = dense_disordered(80, seed=4)
    shifts = np.array([(a, b) for a in range(copies) for b in range(copies)]) * box
    tiled = (pos[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
    values, _ = D.compute_features(pos, species, box)
    big, _ = D.compute_features(tiled, np.tile(species, copies**2), copies * box)
    np.testing.assert_allclose(big[:len(pos)], values, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(big[-len(pos):], values, rtol=1e-11, atol=1e-13)


def test_relabelling_and_translation_do_not_change_features(small):
    pos, species, box = small
    values, _ = D.compute_features(pos, species, box)
    perm = np.random.default_rng(7).permutation(len(pos))
    permuted, _ = D.compute_features(pos[perm], species[perm], box)
    np.testing.assert_allclose(permuted, values[perm], rtol=1e-11, atol=1e-13)
    moved, _ = D.compute_features(pos + np.array([3.7, -41.2]), species, box)
    np.testing.assert_allclose(moved, values, rtol=1e-11, atol=1e-13)


def test_short_length_sees_only_the_particle_itself(small):
    pos, species, box = small
    values, _ = D.compute_features(pos, species, box, lengths=(1e-3,))
    local = D.local_descriptors(pos, species, box)
    rho, phi, u, psi6, theta, z = values.T
    np.testing.assert_allclose(rho, 1.0, rtol=1e-15)
    np.testing.assert_allclose(phi, SIGMA[species, species] ** 2, rtol=1e-15)
    for got, name in ((u, "u"), (psi6, "psi6"), (theta, "theta"), (z, "z")):
        np.testing.assert_allclose(got, local[name], rtol=1e-14, err_msg=name)


@pytest.mark.parametrize("kind", [0, 2])
def test_phi_is_sigma_squared_times_rho_for_one_species(small, kind):
    pos, _, box = small
    values, _ = D.compute_features(pos, np.full(len(pos), kind), box)
    rho, phi = values[:, :10], values[:, 10:20]
    np.testing.assert_allclose(phi, SIGMA[kind, kind] ** 2 * rho, rtol=1e-14)


# -- few neighbours ------------------------------------------------------------------------

def test_isolated_and_paired_particles_are_finite():
    box = 100.0
    pos = np.array([[10.0, 10.0], [60.0, 60.0], [61.0, 60.0]])
    species = np.array([0, 2, 0])
    local = D.local_descriptors(pos, species, box)
    assert local["z"].tolist() == [0, 1, 1]
    assert local["psi6"].tolist() == [0.0, 1.0, 1.0]
    assert local["theta"][0] == 0.0
    # one neighbour: the wrap-around pair is the neighbour with itself, a full turn apart
    for i, (a, b) in ((1, (2, 0)), (2, (0, 2))):
        ref = reference_angle(SIGMA[a, b], SIGMA[a, b], SIGMA[b, b])
        assert local["theta"][i] == pytest.approx(2 * math.pi - ref, rel=1e-14)
    values, _ = D.compute_features(pos, species, box)
    assert np.all(np.isfinite(values))


def test_particle_meets_its_own_image_in_a_tiny_box():
    local = D.local_descriptors([[0.3, 0.4]], [2], 1.1)
    assert local["z"][0] == 8  # 4 images at 1.1, 4 at 1.1 sqrt(2)
    values, _ = D.compute_features([[0.3, 0.4]], [2], 1.1, lengths=(1.0,))
    shifts = image_shifts((1.1, 1.1), D.R_N)
    r = np.hypot(*shifts.T)
    assert values[0, 0] == pytest.approx(np.exp(-r[r < D.R_N]).sum(), rel=1e-12)


# -- API -----------------------------------------------------------------------------------

def test_feature_names_and_order():
    names = D.feature_names()
    assert len(names) == 60 and names[0] == "rho_l0.5" and names[-1] == "z_l5.0"
    assert names[D.DESCRIPTOR_ORDER.index("theta") * 10 + 3] == "theta_l2.0"
    assert D.feature_names([0.25, 1.0]) == [f"{d}_l{l}" for d in D.DESCRIPTOR_ORDER
                                            for l in ("0.25", "1.0")]


@pytest.mark.parametrize("args, key", [
    (([[0.0, 0.0, 0.0]], [0], 5.0), "positions"),
    ((np.zeros((0, 2)), np.zeros(0, int), 5.0), "positions"),
    (([[np.nan, 0.0]], [0], 5.0), "positions"),
    (([[0.0, 0.0]], [3], 5.0), "species"),
    (([[0.0, 0.0]], [-1], 5.0), "species"),
    (([[0.0, 0.0]], [0.0], 5.0), "species"),
    (([[0.0, 0.0], [1.0, 1.0]], [0], 5.0), "species"),
    (([[0.0, 0.0]], [0], 0.0), "box"),
    (([[0.0, 0.0]], [0], (5.0, np.inf)), "box"),
    (([[0.0, 0.0]], [0], (5.0, 5.0, 5.0)), "box"),
    (([[0.0, 0.0]], [0], "big"), "box"),
    (([[1.0, 1.0], [6.0, 1.0]], [0, 1], 5.0), "positions"),  # the same point, mod box
    (([[0.0, 0.0], [0.5, 0.5]], [0, 1], 0.01), "box"),  # absurd density
])
def test_bad_input_raises_one_line_input_error(args, key):
    with pytest.raises(InputError) as info:
        D.compute_features(*args)
    message = str(info.value)
    assert message.startswith(key) and "\n" not in message


@pytest.mark.parametrize("lengths", [(), (0.5, -1.0), (np.nan,), [[1.0]]])
def test_bad_lengths_raise_input_error(lengths):
    with pytest.raises(InputError, match="^lengths"):
        D.compute_features([[0.0, 0.0]], [0], 5.0, lengths=lengths)


def test_local_descriptors_of_another_model_equal_brute_force():
    """KA2D (lj/poly, non-additive sigma, species not in size order), a 2-species model and
    one with per-pair cutoffs (WCA between unlike species): u, z, Psi6 and Theta against
    the brute-force loops with that model's tables."""
    from mpi_glass.model import PairModel, named
    duo = PairModel("duo", ("big", "small"), [[1.0, 0.95], [0.95, 0.9]],
                    [[1.0, 1.1], [1.1, 0.8]], form="lj/cut", cutoff=2.2)
    wca = 2.0**(1 / 6)
    mixed = PairModel("mixed", ("big", "small"), [[1.0, 0.95], [0.95, 0.9]],
                      [[1.0, 1.1], [1.1, 0.8]], form="lj/cut",
                      cutoff=[[2.5, wca], [wca, 2.2]])
    for m in (named("ka2d"), duo, mixed):
        pos, species, box = dense_disordered(120, 3)
        species = species % m.n_species
        got = D.local_descriptors(pos, species, box, model=m)
        expected = brute_local(pos, species, box, m.sigma, m.epsilon, m)
        for name in LOCAL:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{m.name} {name}")
        values, _ = D.compute_features(pos, species, box, lengths=[1.0], model=m)
        assert np.all(np.isfinite(values))
