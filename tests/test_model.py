"""The model: species tables, the smoothed Lennard-Jones potential and composition helpers.

Reference values come from independent routes: the smoothing polynomial is re-derived here by
solving its defining linear system, derivatives are finite differences of ``pair_potential``.
"""
import math
import re

import numpy as np
import pytest

from mpi_glass import model
from mpi_glass.model import EPSILON, SIGMA

PAIRS = [(a, b) for a in range(3) for b in range(a, 3)]


def lj(x):
    """4 (x^-12 - x^-6) and its first two derivatives, unshifted."""
    return (4 * (x**-12 - x**-6), 4 * (-12 * x**-13 + 6 * x**-7),
            4 * (156 * x**-14 - 42 * x**-8))


def test_tables_follow_the_paper():
    s_ss, s_ll = 2 * math.sin(math.pi / 10), 2 * math.sin(math.pi / 5)
    assert SIGMA[0, 0] == pytest.approx(0.618, abs=1e-3) == s_ss
    assert SIGMA[2, 2] == pytest.approx(1.176, abs=1e-3) == s_ll
    assert SIGMA[0, 2] == 1.0
    assert SIGMA[1, 2] == pytest.approx((s_ll + 1) / 2)
    assert SIGMA[0, 1] == pytest.approx((1 + s_ss) / 2)
    assert SIGMA[1, 1] == pytest.approx((s_ll + s_ss) / 2)
    assert np.allclose(EPSILON, [[0.5, 0.75, 1.0], [0.75, 0.5, 0.75], [1.0, 0.75, 0.5]])
    assert np.array_equal(SIGMA, SIGMA.T) and np.array_equal(EPSILON, EPSILON.T)
    assert model.MAX_CUTOFF == pytest.approx(2.5 * s_ll)


def test_smoothing_polynomial_solves_its_defining_conditions():
    """Quartic P(t), t = x - 2: P' and P'' match LJ at x = 2 and P = P' = P'' = 0 at x = 2.5.
    P(0) then fixes the shift C: P(0) = LJ(2) + C."""
    def rows(t):
        return ([t**k for k in range(5)],
                [k * t**(k - 1) if k else 0.0 for k in range(5)],
                [k * (k - 1) * t**(k - 2) if k > 1 else 0.0 for k in range(5)])
    _, d1_at_0, d2_at_0 = rows(0.0)
    value_end, d1_end, d2_end = rows(0.5)
    _, lj_d1, lj_d2 = lj(2.0)
    coefficients = np.linalg.solve(np.array([d1_at_0, d2_at_0, value_end, d1_end, d2_end]),
                                   np.array([lj_d1, lj_d2, 0.0, 0.0, 0.0]))
    assert np.allclose(coefficients, model.POLY, rtol=1e-12, atol=1e-15)
    shift = coefficients[0] - lj(2.0)[0]
    assert shift == pytest.approx(model.LJ_SHIFT, rel=1e-12)
    assert model.LJ_SHIFT == 475 / 16384


def one_sided(r0, side, sigma, eps, h=1e-3, model_=None):
    """V, V', V'' at r0 from one side: a degree-4 fit to 8 samples on that side only."""
    k = np.arange(1, 9)
    values = model.pair_potential(r0 + side * k * h, sigma, eps, model_)
    fit = np.polynomial.Polynomial.fit(k, values, 4, domain=[-1, 1], window=[-1, 1])
    return fit(0.0), fit.deriv(1)(0.0) / (side * h), fit.deriv(2)(0.0) / h**2


@pytest.mark.parametrize("a,b", PAIRS)
def test_potential_is_twice_continuously_differentiable(a, b):
    sigma, eps = SIGMA[a, b], EPSILON[a, b]
    r_in, r_c = model.X_INNER * sigma, model.X_CUT * sigma
    left, right = one_sided(r_in, -1, sigma, eps), one_sided(r_in, +1, sigma, eps)
    assert left[0] == pytest.approx(right[0], abs=1e-9)
    assert left[1] == pytest.approx(right[1], abs=1e-6)
    assert left[2] == pytest.approx(right[2], abs=1e-3)
    inside = one_sided(r_c, -1, sigma, eps)
    assert np.allclose(inside, 0.0, atol=[1e-10, 1e-7, 1e-3])
    beyond = model.pair_potential(r_c + np.array([0.0, 1e-9, 0.1, 5.0]), sigma, eps)
    assert np.all(beyond == 0.0)


@pytest.mark.parametrize("a,b", PAIRS)
def test_analytic_derivative_matches_finite_differences(a, b):
    sigma, eps = SIGMA[a, b], EPSILON[a, b]
    r = np.linspace(0.85 * sigma, 2.6 * sigma, 57)
    h = 1e-6
    v = model.pair_potential
    fd = (v(r + h, sigma, eps) - v(r - h, sigma, eps)) / (2 * h)
    assert np.allclose(model.pair_potential_derivative(r, sigma, eps), fd, rtol=1e-6, atol=1e-8)


def test_scalar_kernels_equal_the_array_potential():
    rng = np.random.default_rng(3)
    for a, b in PAIRS:
        sigma, eps = SIGMA[a, b], EPSILON[a, b]
        r = sigma * rng.uniform(0.8, 2.8, 200)
        expected = model.pair_potential(r, sigma, eps)
        form = model.SHARMA2024.form_vector
        x2 = (r / sigma)**2
        got = np.array([model.pair_energy_x2(x, eps, form, 0) for x in x2])
        assert np.allclose(got, expected, rtol=1e-13, atol=1e-15)
        # The paper's formula written out with its published constants, in the operation
        # order of the engine before the model became data: the same bits.
        inv6 = 1.0 / (x2 * x2 * x2)
        lj = 4.0 * inv6 * (inv6 - 1.0) + 475.0 / 16384.0
        t = np.sqrt(x2) - 2.0
        a0, a1, a2, a3, a4 = (-533.0 / 16384.0, 93.0 / 512.0, -633.0 / 2048.0, 25.0 / 256.0,
                              111.0 / 1024.0)
        poly = a0 + t * (a1 + t * (a2 + t * (a3 + t * a4)))
        old = eps * np.where(x2 < 4.0, lj, np.where(x2 < 6.25, poly, 0.0))
        assert np.array_equal(got, old)


def test_well_depth():
    r = np.linspace(1.0, 1.5, 200001)
    v = model.pair_potential(r, 1.0, 1.0)
    assert v.min() == pytest.approx(-0.971, abs=5e-4)
    assert r[v.argmin()] == pytest.approx(2**(1 / 6), abs=1e-5)
    assert model.pair_potential(2**(1 / 6), 1.0, 1.0) == pytest.approx(-1 + 475 / 16384)


def test_composition_from_counts_and_fractions():
    assert list(model.composition_counts(4000, [1760, 800, 1440])) == [1760, 800, 1440]
    assert list(model.composition_counts(4000, [0.44, 0.2, 0.36])) == [1760, 800, 1440]
    counts = model.composition_counts(10, [1 / 3, 1 / 3, 1 / 3])
    assert counts.sum() == 10 and sorted(counts) == [3, 3, 4]
    assert list(model.composition_counts(7, [1.0, 0.0, 0.0])) == [7, 0, 0]
    species = model.species_array([2, 1, 3])
    assert species.dtype == np.int8 and list(species) == [0, 0, 1, 2, 2, 2]
    assert model.box_side(4000, 1.024) == pytest.approx(math.sqrt(4000 / 1.024))


@pytest.mark.parametrize("n,composition", [
    (4000, [1760, 800, 1000]),          # counts not summing to n
    (100, [0.5, 0.2, 0.2]),             # fractions not summing to 1
    (100, [0.5, -0.2, 0.7]),            # negative
    (100, [0.5, 0.5]),                  # not three species
    (100, [0.5, float("nan"), 0.5]),
])
def test_composition_errors(n, composition):
    with pytest.raises(ValueError):
        model.composition_counts(n, composition)


# --- the model as data ------------------------------------------------------------------------

def _numeric_poly_coefficients(xc):
    """c0, c2, c4 of lj/poly by a float linear solve: V, V', V'' of
    4 (x^-12 - x^-6) + c0 + c2 x^2 + c4 x^4 vanish at xc."""
    v, d1, d2 = lj(xc)
    rows = np.array([[1.0, xc**2, xc**4], [0.0, 2 * xc, 4 * xc**3], [0.0, 2.0, 12 * xc**2]])
    return np.linalg.solve(rows, -np.array([v, d1, d2]))


@pytest.mark.parametrize("xc", [2.5, 2.2, 3.0])
def test_lj_poly_coefficients_solve_their_conditions(xc):
    c0, c2, c4, *shell = model.form_coefficients("lj/poly", xc)
    assert np.allclose([c0, c2, c4], _numeric_poly_coefficients(xc), rtol=1e-10, atol=1e-14)
    assert shell == [0.0] * 5
    m = model.PairModel("p", ("A",), [[1.0]], [[1.0]], form="lj/poly", cutoff=xc)
    inside = one_sided(xc, -1, 1.0, 1.0, model_=m)
    assert np.allclose(inside, 0.0, atol=[1e-10, 1e-7, 1e-3])
    assert model.pair_potential(xc + np.array([0.0, 1e-9, 1.0]), 1.0, 1.0, m).tolist() == [0.0] * 3


def test_ka2d_is_the_glassbench_mixture():
    m = model.named("ka2d")
    assert m.species_names == ("A", "B", "C") and m.form == "lj/poly" and m.cutoff == 2.5
    assert m.sigma.tolist() == [[1.0, 0.8, 0.9], [0.8, 0.88, 0.8], [0.9, 0.8, 0.94]]
    assert m.epsilon.tolist() == [[1.0, 1.5, 0.75], [1.5, 0.5, 1.5], [0.75, 1.5, 0.75]]
    # size order B < C < A: partners B-C and C-A
    assert m.size_rank.tolist() == [2, 0, 1]
    assert {(a, b) for a, b in zip(*np.nonzero(m.swap_partners))} == {(0, 2), (2, 0), (1, 2),
                                                                       (2, 1)}
    # the B-C pair against the formula with float-solved coefficients
    r = np.linspace(0.7, 2.6, 1001) * 0.8
    c0, c2, c4 = _numeric_poly_coefficients(2.5)
    x = r / 0.8
    expected = np.where(x < 2.5, 1.5 * (lj(x)[0] + c0 + c2 * x**2 + c4 * x**4), 0.0)
    assert np.allclose(model.pair_potential(r, 0.8, 1.5, m), expected, rtol=1e-10, atol=1e-12)


def test_lj_cut_is_truncated_and_shifted():
    m = model.PairModel("c", ("A", "B"), [[1.0, 0.9], [0.9, 0.8]], [[1.0, 0.5], [0.5, 2.0]],
                        form="lj/cut", cutoff=2.5)
    r = 0.8 * np.linspace(0.8, 2.49, 50)
    expected = 2.0 * (lj(r / 0.8)[0] - lj(2.5)[0])
    assert np.allclose(model.pair_potential(r, 0.8, 2.0, m), expected, rtol=1e-13, atol=1e-15)
    assert model.pair_potential(2.5 * 0.8, 0.8, 2.0, m) == 0.0


def test_per_pair_cutoffs_give_each_pair_its_own_truncated_and_shifted_lj():
    """WCA between unlike species, LJ cut at 2.5 sigma between like ones: each pair against
    the formula written out with its own cutoff."""
    wca = 2.0**(1 / 6)
    m = model.PairModel("mixed", ("A", "B"), [[1.0, 0.8], [0.8, 0.88]],
                        [[1.0, 1.5], [1.5, 0.5]], form="lj/cut", cutoff=[[2.5, wca], [wca, 2.5]])
    assert not m.uniform_cutoff and m.pair_forms.shape == (4, 11)
    assert np.allclose(m.cutoff_table, [[2.5, 0.8 * wca], [0.8 * wca, 2.2]])
    for (a, b), xc in (((0, 0), 2.5), ((0, 1), wca), ((1, 0), wca), ((1, 1), 2.5)):
        sigma, eps = m.sigma[a, b], m.epsilon[a, b]
        r = sigma * np.linspace(0.8, 2.6, 200)
        x = r / sigma
        expected = np.where(x < xc, eps * (lj(x)[0] - lj(xc)[0]), 0.0)
        got = model.pair_potential(r, sigma, eps, m, pair=(a, b))
        assert np.allclose(got, expected, rtol=1e-13, atol=1e-15)
        assert np.array_equal(m.pair_forms[2 * a + b], m.form_of(a, b))
    with pytest.raises(ValueError, match="per-pair cutoffs"):
        m.form_vector


def test_a_constant_cutoff_table_is_the_uniform_model():
    """Same physics, same digest and the kernels' one-vector path."""
    paper = model.named("sharma2024")
    table = model.PairModel("t", paper.species_names, paper.sigma, paper.epsilon,
                            cutoff=np.full((3, 3), 2.5), inner=[[2.0] * 3] * 3)
    assert table.uniform_cutoff and table.cutoff == 2.5 and table.same_physics(paper)
    assert np.array_equal(table.pair_forms, paper.form_vector)


def test_paper_model_is_bit_identical_to_its_published_constants():
    m = model.named("sharma2024")
    assert m.form_vector.tolist() == [4.0, 6.25, 2.0, 475 / 16384, 0.0, 0.0, -533 / 16384,
                                      93 / 512, -633 / 2048, 25 / 256, 111 / 1024]
    assert model.DEFAULT_MODEL is m and m.digest() == model.named("sharma2024").digest()


def test_model_round_trips_and_digest_is_the_physics():
    m = model.named("ka2d")
    again = model.PairModel.from_dict(m.to_dict())
    assert again.digest() == m.digest() and np.array_equal(again.sigma, m.sigma)
    renamed = model.PairModel.from_dict({**m.to_dict(), "name": "other"})
    assert renamed.digest() == m.digest()
    assert model.named("sharma2024").digest() != m.digest()


@pytest.mark.parametrize("changes,match", [
    ({"sigma": [[1.0, 0.8], [0.8, 1.0], [1.0, 1.0]]}, "model.sigma: expected a square"),
    ({"sigma": [[1.0, 0.8], [0.9, 1.0]]}, "model.sigma: must be finite and symmetric"),
    ({"epsilon": [[1.0, 0.8], [0.7, 1.0]]}, "model.epsilon: must be finite and symmetric"),
    ({"sigma": [[1.0, 0.0], [0.0, 1.0]]}, "model.sigma: every sigma_ab must be > 0"),
    ({"cutoff": 1.5, "inner": 2.0}, "model.cutoff: the cutoff 1.5 must exceed the inner"),
    ({"cutoff": [[2.5, 1.9], [1.9, 2.5]]}, "model.cutoff: the cutoff [[2.5, 1.9], [1.9, 2.5]] "
                                           "must exceed the inner radius 2 of lj/smooth"),
    ({"cutoff": [[2.5, 2.2], [2.3, 2.5]]}, "model.cutoff: must be finite and symmetric"),
    ({"inner": [[2.0, 1.0, 1.0]]}, "model.inner: expected one number or a 2 x 2 table"),
    ({"cutoff": "far"}, "model.cutoff: expected a number or a 2 x 2 table"),
    ({"cutoff": 0.5, "form": "lj/cut"}, "model.cutoff: expected r_c / sigma_ab > 0.56"),
    ({"form": "lj/other"}, "model.form"),
    ({"species_names": ("A", "A")}, "model.species"),
])
def test_bad_models_are_refused_in_one_line(changes, match):
    fields = dict(name="x", species_names=("A", "B"), sigma=[[1.0, 0.8], [0.8, 1.0]],
                  epsilon=[[1.0, 0.5], [0.5, 1.0]], form="lj/smooth", cutoff=2.5, inner=2.0)
    fields.update(changes)
    with pytest.raises(model.InputError, match=re.escape(match)) as info:
        model.PairModel(**fields)
    assert "\n" not in str(info.value)


def test_derived_tables_follow_sigma():
    m = model.named("sharma2024")
    assert np.allclose(m.cutoff_table, 2.5 * m.sigma) and m.max_cutoff == model.MAX_CUTOFF
    assert m.swap_pair_names == ("S-M", "S-L", "M-L")
    assert m.pair_slot.reshape(3, 3).tolist() == [[-1, 0, 1], [0, -1, 2], [1, 2, -1]]
    assert m.disc_diameters == tuple(np.diag(m.sigma))
    # Theta's reference angle: an equilateral triangle of like discs
    assert m.theta_reference[2, 2, 2] == pytest.approx(np.pi / 3)
