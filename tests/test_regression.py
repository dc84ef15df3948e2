"""LOCO regression, Lasso selection and the random baseline (mpi_glass.regression).

References are independent of the code under test: sklearn's StandardScaler +
LinearRegression on pooled particles, numpy's corrcoef, and closed-form values.
"""
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import ShuffledMapper
from mpi_glass import regression as rg
from mpi_glass.errors import InputError


def correlated_data(C=3, N=400, M=7, seed=1):
    """Raw features with offsets, scales and collinearity; p linear in two of them."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((C, N, M)) * rng.uniform(0.5, 3, M) + rng.uniform(-5, 5, M)
    X[..., 1] += 0.9 * X[..., 0]
    p = X[..., 0] - 0.5 * X[..., 3] + rng.standard_normal((C, N))
    species = rng.integers(0, 3, (C, N))
    return X, p, species


@pytest.mark.parametrize("subset", [[0], [0, 3], [1, 2, 5], list(range(7))])
def test_loco_matches_sklearn_pipeline(subset):
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    for c in range(len(X)):
        train = [k for k in range(len(X)) if k != c]
        model = make_pipeline(StandardScaler(), LinearRegression())
        model.fit(X[train][:, :, subset].reshape(-1, len(subset)), p[train].ravel())
        expected = model.predict(X[c][:, subset])
        np.testing.assert_allclose(reg.predict(c, subset), expected, rtol=0, atol=1e-9)
        rho = reg.pearson(c, [subset])[0]
        assert rho[0] == pytest.approx(np.corrcoef(p[c], expected)[0, 1], abs=1e-10)
        for code in range(3):
            mask = species[c] == code
            assert rho[1 + code] == pytest.approx(
                np.corrcoef(p[c][mask], expected[mask])[0, 1], abs=1e-10)


def test_test_configuration_never_enters_its_own_model():
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    p2 = p.copy()
    p2[1] = np.random.default_rng(9).standard_normal(p.shape[1])
    reg2 = rg.LocoRegression(X, p2, species)
    np.testing.assert_array_equal(reg.predict(1, [0, 3]), reg2.predict(1, [0, 3]))
    assert not np.allclose(reg.predict(0, [0, 3]), reg2.predict(0, [0, 3]))


def test_species_group_too_small_scores_nan():
    X, p, species = correlated_data()
    species[0] = 0
    species[0, 0] = 2  # one L particle: no correlation can be computed
    rho = rg.LocoRegression(X, p, species).pearson(0, [[0, 3]])[0]
    assert np.isfinite(rho[:2]).all()
    assert np.isnan(rho[2:]).all()


def test_without_species_only_all_particles():
    X, p, _ = correlated_data()
    reg = rg.LocoRegression(X, p, None)
    assert reg.groups == ("all",)
    assert reg.pearson(0, [[0]]).shape == (1, 1)


def test_needs_two_configurations():
    X, p, species = correlated_data(C=1)
    with pytest.raises(InputError, match="at least 2 configurations"):
        rg.LocoRegression(X, p, species)


def test_loco_curves_rejects_short_orders():
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    with pytest.raises(InputError, match="need d_max"):
        rg.loco_curves(reg, [[0, 1]] * 3, d_max=3)


# -- random baseline ---------------------------------------------------------------------

def test_random_subsets_are_keyed_and_distinct():
    a = rg.random_subset(7, 3, 0, 10)
    np.testing.assert_array_equal(a, rg.random_subset(7, 3, 0, 10))
    assert len(set(a.tolist())) == 3 and a.min() >= 0 and a.max() < 10
    draws = {tuple(rg.random_subset(7, 3, j, 10)) for j in range(40)}
    assert len(draws) > 20  # 120 possible subsets: 40 draws are not all the same
    other_seed = [tuple(rg.random_subset(8, 3, j, 10)) for j in range(10)]
    assert other_seed != [tuple(rg.random_subset(7, 3, j, 10)) for j in range(10)]


def test_random_at_full_pool_equals_full_model():
    """At d = M every draw is the whole pool, so the mean is the full OLS model's rho."""
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    M = X.shape[2]
    mean, std = rg.random_curves(reg, M, draws=30, seed=3)
    full = rg.loco_curves(reg, [list(range(M))] * len(X), M)
    np.testing.assert_allclose(mean[:, M - 1], full[:, M - 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(std[:, M - 1], 0.0, atol=1e-12)


def test_random_mean_is_the_average_of_its_draws():
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    draws, d = 7, 2
    mean, _ = rg.random_curves(reg, 2, draws=draws, seed=5)
    by_hand = np.mean([reg.pearson(0, [rg.random_subset(5, d, j, X.shape[2])])[0]
                       for j in range(draws)], axis=0)
    np.testing.assert_allclose(mean[0, d - 1], by_hand, rtol=0, atol=1e-12)


def test_random_curves_independent_of_mapper_order():
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    serial = rg.random_curves(reg, 4, draws=120, seed=2)
    shuffled = rg.random_curves(reg, 4, draws=120, seed=2, mapper=ShuffledMapper(3, size=4))
    for a, b in zip(serial, shuffled):
        np.testing.assert_array_equal(a, b)


# -- Lasso selection ---------------------------------------------------------------------

def sparse_problem(N=3000, M=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, N, M))
    p = 1.0 * X[..., 2] - 0.6 * X[..., 7] + 0.3 * X[..., 4] + 0.5 * rng.standard_normal((2, N))
    return X, p


def test_lasso_order_finds_the_true_features_by_strength():
    X, p = sparse_problem()
    reg = rg.LocoRegression(X, p)
    R, r, n = reg.training_moments(0)
    assert rg.lasso_order(R, r, n, 3) == [2, 7, 4]


def test_lasso_orders_are_nested_and_exact_length():
    X, p = sparse_problem()
    R, r, n = rg.LocoRegression(X, p).training_moments(1)
    longest = rg.lasso_order(R, r, n, 10)
    assert sorted(longest) == list(range(10))
    for d in range(1, 11):
        assert rg.lasso_order(R, r, n, d) == longest[:d]


def test_lasso_completes_by_correlation_when_features_never_enter():
    """Orthogonal features uncorrelated with p never enter the path: the documented rule
    puts them after the entered ones, by |r| then index."""
    R = np.eye(4)
    assert rg.lasso_order(R, np.array([0.3, 0.5, 0.0, 0.0]), 100, 4) == [1, 0, 2, 3]
    assert rg.lasso_order(R, np.array([0.0, 0.0, 0.4, 0.0]), 100, 4) == [2, 0, 1, 3]


def test_lasso_order_rejects_bad_d():
    with pytest.raises(InputError, match="d must lie"):
        rg.lasso_order(np.eye(3), np.ones(3) * 0.1, 10, 4)


def test_lasso_protocols_use_different_data():
    X, p = sparse_problem(seed=3)
    reg = rg.LocoRegression(X, p)
    honest = rg.lasso_orders(reg, 3, "honest")
    paper = rg.lasso_orders(reg, 3, "paper")
    assert honest[0] == paper[1] and honest[1] == paper[0]  # C = 2: the other one


def test_summarise_structure():
    rho = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    out = rg.summarise(rho)
    assert out["d"] == [1, 2, 3]
    assert out["pearson_mean"] == pytest.approx(rho[:, :, 0].mean(axis=0).tolist())
    assert out["pearson_std"] == pytest.approx(rho[:, :, 0].std(axis=0).tolist())
    assert set(out["species"]) == {"S", "M", "L"}
    assert out["species"]["L"]["pearson_mean"] == pytest.approx(rho[:, :, 3].mean(axis=0))
