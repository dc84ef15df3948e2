"""The model: species tables, the smoothed Lennard-Jones potential and composition helpers.

Reference values come from independent routes: the smoothing polynomial is re-derived here by
solving its defining linear system, derivatives are finite differences of ``pair_potential``.
"""
import math

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


def one_sided(r0, side, sigma, eps, h=1e-3):
    """V, V', V'' at r0 from one side: a degree-4 fit to 8 samples on that side only."""
    k = np.arange(1, 9)
    values = model.pair_potential(r0 + side * k * h, sigma, eps)
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
        got = np.array([model.pair_energy_x2((x / sigma)**2, eps) for x in r])
        assert np.allclose(got, expected, rtol=1e-13, atol=1e-15)
        # The branch-free variant the MC kernel vectorises is the same arithmetic.
        unit = np.array([eps * model.reduced_pair_energy_x2((x / sigma)**2) for x in r])
        assert np.array_equal(unit, got)


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
