"""LOCO regression, Lasso selection and the random baseline (mpi_glass.regression).

References are independent of the code under test: sklearn's StandardScaler +
LinearRegression on pooled particles, sklearn's coordinate-descent Lasso, numpy's corrcoef,
and closed-form values.
"""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LinearRegression, lasso_path
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


def test_loco_curves_rejects_sets_of_the_wrong_sizes():
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    with pytest.raises(InputError, match="one set of each size"):
        rg.loco_curves(reg, [[[0], [0, 1], [0, 1]]] * 3)
    with pytest.raises(InputError, match="need d_max = 3"):
        rg.nested_selections([0, 1], 3)


def test_loco_curves_score_each_set():
    X, p, species = correlated_data()
    reg = rg.LocoRegression(X, p, species)
    sets = [[[4], [0, 6]], [[1], [2, 3]], [[5], [1, 5]]]
    rho = rg.loco_curves(reg, sets)
    for c in range(3):
        for d in (1, 2):
            np.testing.assert_array_equal(rho[c, d - 1], reg.pearson(c, [sets[c][d - 1]])[0])


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
    full = rg.loco_curves(reg, [rg.nested_selections(range(M), M)] * len(X))
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

def lasso_data(seed, C=3, N=300, M=12):
    """Raw features mixed by a random matrix (strongly correlated: the Lasso path drops
    features), a sparse target with mixed signs and noise."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((M, M)) * 0.6 + np.eye(M)
    X = rng.standard_normal((C, N, M)) @ mix * rng.uniform(0.5, 3, M) + rng.uniform(-5, 5, M)
    w = rng.standard_normal(M) * (rng.random(M) < 0.6)
    return X, X @ w + 2.0 * rng.standard_normal((C, N))


def sklearn_support(Z, y, alpha):
    model = Lasso(alpha=alpha, tol=1e-12, max_iter=200_000).fit(Z, y)
    return tuple(np.flatnonzero(model.coef_).tolist())


@pytest.mark.parametrize("seed", [0, 3])
def test_lasso_sets_are_the_exactly_d_supports_of_sklearn_lasso(seed):
    """Each set is the support of sklearn's coordinate-descent Lasso at an alpha inside its
    breakpoint interval (fitted on the training particles, StandardScaler'd), and no larger
    alpha of a fine grid gives d non-zero coefficients."""
    X, p = lasso_data(seed)
    M = X.shape[2]
    reg = rg.LocoRegression(X, p)
    sets = rg.lasso_selections(reg, M)[0]                  # fold 0: trained on 1 and 2
    Z = StandardScaler().fit_transform(X[1:].reshape(-1, M))
    y = p[1:].ravel()
    intervals = rg.lasso_intervals(*rg.lasso_path(*reg.training_moments(0)))
    grid = np.geomspace(intervals[0][0] * 0.999, intervals[-1][1] + 1e-3, 400)
    _, grid_coefs, _ = lasso_path(Z, y - y.mean(), alphas=grid, tol=1e-12, max_iter=100_000)
    grid_sizes = (grid_coefs != 0).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for d, chosen in enumerate(sets, start=1):
            assert len(chosen) == d
            high, low, support, _ = next(i for i in intervals if i[2] == tuple(chosen))
            assert sklearn_support(Z, y, 0.5 * (high + low)) == tuple(chosen)
            assert not np.any(grid_sizes[grid > high * (1 + 1e-9)] == d), d
    # the data exercise what the entry order got wrong: features leave the path
    assert any(not set(a) <= set(b) for a, b in zip(sets, sets[1:]))


def sparse_problem(N=3000, M=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, N, M))
    p = 1.0 * X[..., 2] - 0.6 * X[..., 7] + 0.3 * X[..., 4] + 0.5 * rng.standard_normal((2, N))
    return X, p


def test_lasso_finds_the_true_features_by_strength():
    X, p = sparse_problem()
    sets = rg.lasso_supports(*rg.LocoRegression(X, p).training_moments(0), 4)
    assert sets[:3] == [[2], [2, 7], [2, 4, 7]]


def test_lasso_tie_rule_keeps_the_largest_coefficients():
    """Features 1 and 2 enter together at alpha = 0.4 (worked out by hand: after feature 0
    enters, the residual correlations are 0.2 + alpha / 2 and 0.4); just below, w2 = 0.4 -
    alpha grows faster than w1 = (0.2 - alpha / 2) / 0.75, so d = 2 keeps {0, 2}, not the
    lower index 1."""
    R = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert rg.lasso_supports(R, np.array([1.0, 0.7, 0.4]), 100, 3) == [[0], [0, 2], [0, 1, 2]]


def test_lasso_that_cannot_reach_d_names_the_key():
    with pytest.raises(InputError, match="select.d_max: .*at most 1 of the 3"):
        rg.lasso_supports(np.ones((3, 3)), np.full(3, 0.5), 100, 2)
    rng = np.random.default_rng(0)       # 5 particles per configuration, 8 features
    reg = rg.LocoRegression(rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5)))
    with pytest.raises(InputError, match="select.d_max: the Lasso path of fold 0"):
        rg.lasso_selections(reg, 6)


def test_lasso_is_chosen_on_the_training_configurations_only():
    X, p = lasso_data(1)
    reg = rg.LocoRegression(X, p)
    p2 = p.copy()
    p2[0] = 3.0 * X[0, :, 5] + 1.0
    reg2 = rg.LocoRegression(X, p2)
    a, b = rg.lasso_selections(reg, 6), rg.lasso_selections(reg2, 6)
    assert a[0] == b[0]                  # fold 0 never reads configuration 0
    assert a[1] != b[1]                  # fold 1 trains on it


def test_summarise_structure():
    rho = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    out = rg.summarise(rho)
    assert out["d"] == [1, 2, 3]
    assert out["pearson_mean"] == pytest.approx(rho[:, :, 0].mean(axis=0).tolist())
    assert out["pearson_std"] == pytest.approx(rho[:, :, 0].std(axis=0).tolist())
    assert set(out["species"]) == {"S", "M", "L"}
    assert out["species"]["L"]["pearson_mean"] == pytest.approx(rho[:, :, 3].mean(axis=0))
