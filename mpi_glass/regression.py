"""Predicting propensity from selected features (paper Sec. III D, Figs. 7-10).

Leave-one-configuration-out (LOCO) ordinary least squares: to predict configuration c, the
linear model p = w . X_S + w0 (Eq. 17) is fitted on the particles of every *other*
configuration, the features standardised with the mean and (population) standard deviation
of that training set only, and scored by the Pearson coefficient rho(p, p_hat) over the
particles of c - all species together, and per species (S, M, L; Fig. 9).

How it is computed
------------------
OLS only needs first and second moments, so each configuration is reduced once to the
count, mean and centred scatter matrix of (X, p), overall and per species.  The training
moments of a fold are these combined over the other configurations (Chan's pairwise update,
exact and free of the cancellation of raw moments).  A model on any subset S of features
is then a d x d solve of the standardised normal equations, and rho(p, p_hat) on the test
configuration follows from the test moments:

    rho = cov(p, X_S) b / sqrt(var(p) * b' cov(X_S, X_S) b).

This is the same estimator as ``StandardScaler`` + ``LinearRegression`` on the pooled
training particles (the tests check it against sklearn), but one model costs O(d^3) instead
of O(N C d^2), which is what makes 1,000 random subsets per d affordable.

Selections compared (each gives, per fold c and size d, the set of d features used to
predict c):

* information-imbalance selections (``mpi_glass.imbalance``; chosen by ``study``): the
  first d features of a greedy's order, so nested in d (``nested_selections``);
* Lasso (``lasso_supports``): as the paper defines it, the support of the Lasso solution
  with exactly d non-zero coefficients, read from the breakpoints of the exact LARS-Lasso
  path on the training configurations; not nested in general (features can leave the path);
* random (``random_curves``): 1,000 seeded uniform d-subsets per d, rho averaged over draws.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import lars_path_gram

from .errors import InputError
from .mapper import SerialMapper
from .model import SPECIES_NAMES

__all__ = ["SPECIES", "GROUPS", "RANDOM_STREAM", "DRAWS_PER_BLOCK", "LASSO_ZERO",
           "LocoRegression", "loco_curves", "random_subset", "random_curves", "lasso_path",
           "lasso_intervals", "lasso_supports", "lasso_selections", "nested_selections",
           "summarise"]

#: Particle groups of the paper's model scored separately: every particle, then species
#: codes 0, 1, 2 (``LocoRegression(species_names=...)`` names another model's).
SPECIES = SPECIES_NAMES
GROUPS = ("all",) + SPECIES
#: Random-baseline streams are SeedSequence([seed, RANDOM_STREAM, d, draw]).  The tag keeps
#: them apart from other streams of the same seed: SeedSequence pads short entropy with
#: zeros, so ([s, c]) and ([s, c, 0]) would otherwise be the same stream.
RANDOM_STREAM = 0x52414E44  # "RAND"
#: Random draws per work item.  Fixed (not derived from the rank count), so the blocks and
#: hence every summation order are the same for any number of ranks.
DRAWS_PER_BLOCK = 50


# ---------------------------------------------------------------------------------------
# Moments
# ---------------------------------------------------------------------------------------

def _moments(Z):
    """(n, mean, centred scatter) of the rows of Z (n, K)."""
    mean = Z.mean(axis=0)
    centred = Z - mean
    return len(Z), mean, centred.T @ centred


def _combine(parts):
    """Moments of the union of disjoint row sets (Chan et al.'s pairwise formula)."""
    n = sum(part[0] for part in parts)
    mean = sum(part[0] * part[1] for part in parts) / n
    scatter = sum(s + m_n * np.outer(m - mean, m - mean) for m_n, m, s in parts)
    return n, mean, scatter


class LocoRegression:
    """Leave-one-configuration-out OLS of p on raw features, from per-configuration moments.

    features: (C, N, M) raw feature values; p: (C, N) propensity; species: (C, N) codes
    0 ... K - 1 of ``species_names`` (default the paper's S, M, L), or None (then only the
    all-particle group is scored).

    Examples
    --------
    p is feature 0 plus noise: feature 0 predicts the held-out configuration, feature 1 not.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40, 4))                      # C = 3, N = 40, M = 4
    >>> reg = LocoRegression(X, X[..., 0] + 0.1 * rng.standard_normal((3, 40)))
    >>> reg.pearson(0, [[0], [1]]).round(2).tolist()             # (subsets, groups)
    [[0.99], [-0.02]]
    """

    def __init__(self, features, p, species=None, species_names=SPECIES):
        features = np.asarray(features, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        if features.ndim != 3 or p.shape != features.shape[:2]:
            raise InputError(f"regression: features (C, N, M) and p (C, N) expected, got "
                             f"{features.shape} and {p.shape}")
        self.C, self.N, self.M = features.shape
        if self.C < 2:
            raise InputError(f"regression: leave-one-configuration-out needs at least 2 "
                             f"configurations, got {self.C}")
        self.features, self.p = features, p
        self.groups = ("all",) + tuple(species_names) if species is not None else ("all",)
        self._test = [self._group_moments(c, species) for c in range(self.C)]
        self._train = [self._standardised(_combine([self._test[k][0] for k in range(self.C)
                                                    if k != c])) for c in range(self.C)]

    # -- moments ------------------------------------------------------------------------
    def _group_moments(self, c, species):
        """Moments of (X, p) of configuration c: all particles, then each species."""
        Z = np.column_stack([self.features[c], self.p[c]])
        masks = [np.ones(self.N, bool)]
        if species is not None:
            masks += [np.asarray(species[c]) == code for code in range(len(self.groups) - 1)]
        return [_moments(Z[mask]) if mask.sum() >= 2 else None for mask in masks]

    def _standardised(self, moments):
        """Standardised normal equations (R, r) of a row set, and what undoes the scaling.

        R is the correlation matrix of the features, r their correlation with p; a
        constant feature (zero variance) would make the system singular and is an error.
        """
        n, mean, scatter = moments
        cov = scatter / n
        scale = np.sqrt(np.diag(cov)[:self.M])
        if np.any(scale == 0):
            raise InputError(f"regression: feature {int(np.argmin(scale))} is constant on the "
                             "training configurations")
        R = cov[:self.M, :self.M] / np.outer(scale, scale)
        r = cov[:self.M, self.M] / scale
        return {"n": n, "R": R, "r": r, "mean": mean, "scale": scale}

    def training_moments(self, fold):
        """(R, r, n) of the training set of ``fold`` (every configuration but ``fold``)."""
        train = self._train[fold]
        return train["R"], train["r"], train["n"]

    # -- models -------------------------------------------------------------------------
    def coefficients(self, fold, subsets):
        """Raw-unit OLS weights (B, d) and intercepts (B,) for index subsets (B, d)."""
        train = self._train[fold]
        subsets = np.atleast_2d(np.asarray(subsets, dtype=np.int64))
        R = train["R"][subsets[:, :, None], subsets[:, None, :]]
        r = train["r"][subsets]
        beta = _solve(R, r) / train["scale"][subsets]
        intercept = train["mean"][self.M] - np.einsum("bd,bd->b", beta,
                                                      train["mean"][subsets])
        return beta, intercept

    def predict(self, fold, subset):
        """p_hat (N,) of configuration ``fold`` from the model trained without it."""
        beta, intercept = self.coefficients(fold, [subset])
        return self.features[fold][:, subset] @ beta[0] + intercept[0]

    def pearson(self, fold, subsets):
        """rho(p, p_hat) on configuration ``fold``, shape (B, groups), for subsets (B, d).

        A group with fewer than two particles, or a constant prediction, scores NaN.
        """
        subsets = np.atleast_2d(np.asarray(subsets, dtype=np.int64))
        beta, _ = self.coefficients(fold, subsets)
        out = np.full((len(subsets), len(self.groups)), np.nan)
        for g, moments in enumerate(self._test[fold]):
            if moments is not None:
                out[:, g] = _group_pearson(moments[2], subsets, beta, self.M)
        return out


def _solve(R, r):
    """Batched solve of R b = r; a singular system (exactly collinear features) falls back
    to the minimum-norm least-squares solution, as ``LinearRegression`` would."""
    try:
        return np.linalg.solve(R, r[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(R) @ r[..., None])[..., 0]


def _group_pearson(scatter, subsets, beta, target):
    """rho(p, X_S b) of one particle group from its centred scatter matrix (any scale)."""
    S_xx = scatter[subsets[:, :, None], subsets[:, None, :]]
    cov = np.einsum("bd,bd->b", scatter[target, subsets], beta)
    var_hat = np.einsum("bd,bde,be->b", beta, S_xx, beta)
    var_p = scatter[target, target]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(var_hat * var_p)
    return np.where((var_hat > 0) & (var_p > 0), rho, np.nan)


# ---------------------------------------------------------------------------------------
# Curves rho(d)
# ---------------------------------------------------------------------------------------

def loco_curves(reg, selections):
    """rho[c, d-1, group] for per-fold feature sets ``selections[c][d-1]`` (d indices each;
    ``nested_selections`` turns a greedy's ordered list into such sets).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40, 4))                      # C = 3, N = 40, M = 4
    >>> reg = LocoRegression(X, X[..., 0] + 0.1 * rng.standard_normal((3, 40)))
    >>> loco_curves(reg, [[[0], [0, 1]]] * 3)[:, :, 0].round(2).tolist()
    [[0.99, 0.99], [1.0, 1.0], [1.0, 1.0]]
    """
    if len(selections) != reg.C:
        raise InputError(f"regression: {len(selections)} selections for {reg.C} folds")
    d_max = len(selections[0])
    rho = np.empty((reg.C, d_max, len(reg.groups)))
    for c, sets in enumerate(selections):
        if [len(s) for s in sets] != list(range(1, d_max + 1)):
            raise InputError(f"regression: fold {c} needs one set of each size 1 ... {d_max}")
        for d, subset in enumerate(sets, start=1):
            rho[c, d - 1] = reg.pearson(c, [list(subset)])[0]
    return rho


def random_subset(seed, d, draw, m):
    """The ``draw``-th random d-subset of range(m) (sorted), a pure function of its key.

    Examples
    --------
    >>> random_subset(0, 2, 0, 4).tolist(), random_subset(0, 2, 0, 4).tolist()
    ([2, 3], [2, 3])
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, RANDOM_STREAM, d, draw]))
    return np.sort(rng.choice(m, size=d, replace=False))


def random_curves(reg, d_max, draws, seed=0, mapper=None):
    """Random-selection baseline: rho[c, d-1, group] averaged over ``draws`` subsets per d.

    Draw j at size d is ``random_subset(seed, d, j, M)``, the same subset for every fold.
    Work items are (d, block of DRAWS_PER_BLOCK draws) spread over the mapper; the average
    is taken after gathering, in draw order, so the result is identical for any rank count.
    Also returns the standard deviation over draws, rho_draw_std[c, d-1, group].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40, 4))                      # C = 3, N = 40, M = 4
    >>> reg = LocoRegression(X, X[..., 0] + 0.1 * rng.standard_normal((3, 40)))
    >>> mean, std = random_curves(reg, d_max=2, draws=4)
    >>> mean.shape, std.shape
    ((3, 2, 1), (3, 2, 1))
    """
    mapper = mapper or SerialMapper()
    blocks = [(d, start, min(draws, start + DRAWS_PER_BLOCK))
              for d in range(1, d_max + 1) for start in range(0, draws, DRAWS_PER_BLOCK)]

    def item(i):
        d, start, stop = blocks[i]
        subsets = np.array([random_subset(seed, d, j, reg.M) for j in range(start, stop)])
        return np.stack([reg.pearson(c, subsets) for c in range(reg.C)])  # (C, B, G)

    parts = mapper.map(item, len(blocks))
    mean = np.empty((reg.C, d_max, len(reg.groups)))
    std = np.empty_like(mean)
    for d in range(1, d_max + 1):
        rho = np.concatenate([part for part, blk in zip(parts, blocks) if blk[0] == d], axis=1)
        with warnings.catch_warnings():  # an all-NaN species group stays NaN quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            mean[:, d - 1] = np.nanmean(rho, axis=1)
            std[:, d - 1] = np.nanstd(rho, axis=1)
    return mean, std


# ---------------------------------------------------------------------------------------
# Lasso selection
# ---------------------------------------------------------------------------------------

#: A path coefficient counts as zero below this fraction of the path's largest |coefficient|.
#: sklearn's LARS writes a dropped feature's coefficient as prev + gamma * direction, which
#: cancels only to rounding (~1e-16 relative); genuine coefficients inside a breakpoint
#: interval are far above 1e-9 of the largest.
LASSO_ZERO = 1e-9


def lasso_path(R, r, n):
    """The Lasso path of standardised data: breakpoints alphas (K,) decreasing and the
    coefficients there, coefs (M, K), with rounding residues of dropped features zeroed.

    Computed exactly by LARS (``lars_path_gram``, method "lasso") on the Gram matrix n R and
    the correlations n r, so alpha is in the units of ``sklearn.linear_model.Lasso`` fitted
    on the standardised features: minimise |p - Z w|^2 / (2 n) + alpha |w|_1.

    Examples
    --------
    One feature correlated 0.9 with p, the other not at all: it enters at alpha = 0.9.

    >>> alphas, coefs = lasso_path(np.eye(2), np.array([0.9, 0.0]), n=100)
    >>> alphas.tolist(), coefs.round(12).tolist()
    ([0.9, 0.0], [[0.0, 0.9], [0.0, 0.0]])
    """
    with warnings.catch_warnings():  # collinear features: LARS drops them and says so
        warnings.simplefilter("ignore", ConvergenceWarning)
        alphas, _, coefs = lars_path_gram(Xy=r * n, Gram=R * n, n_samples=n, method="lasso")
    coefs = np.array(coefs, dtype=np.float64)
    largest = np.abs(coefs).max(initial=0.0)
    coefs[np.abs(coefs) <= LASSO_ZERO * largest] = 0.0
    return np.asarray(alphas, dtype=np.float64), coefs


def lasso_intervals(alphas, coefs):
    """(alpha_high, alpha_low, support, coefficients at the midpoint) of each breakpoint
    interval of a Lasso path.

    Inside an interval the solution is the linear interpolation of its two ends and no
    coefficient changes sign, so the support of every alpha strictly inside it is the set
    of features non-zero at either end.  Intervals of zero length (several events at one
    alpha) contain no alpha and are skipped.

    Examples
    --------
    >>> high, low, support, mid = lasso_intervals(*lasso_path(np.eye(2), np.array([0.9, 0.0]),
    ...                                                       n=100))[0]
    >>> high, low, support, mid.round(12).tolist()
    (0.9, 0.0, (0,), [0.45, 0.0])
    """
    nonzero = coefs != 0
    return [(float(alphas[k]), float(alphas[k + 1]),
             tuple(np.flatnonzero(nonzero[:, k] | nonzero[:, k + 1]).tolist()),
             0.5 * (coefs[:, k] + coefs[:, k + 1]))
            for k in range(len(alphas) - 1) if alphas[k + 1] < alphas[k]]


def lasso_supports(R, r, n, d_max, where="the Lasso path"):
    """The paper's Lasso selections: for d = 1 ... d_max, the d features of the Lasso
    solution with exactly d non-zero coefficients at the largest such alpha.

    Read exactly from the breakpoints of the Lasso path of the standardised data (R, r, n)
    (``lasso_path``, ``lasso_intervals``): the answer for d is the support of the first
    breakpoint interval, from alpha_max down, with d features.  Features may leave the
    path, so the sets need not be nested in d.  Tie rule: where no alpha gives exactly d
    non-zero coefficients (several features entering at one breakpoint), the first
    interval with more than d is taken and the d largest |coefficients| at its midpoint
    kept (ties: lower index).  Returns sets[d - 1], sorted lists of d feature indices.

    Raises ``InputError`` naming ``select.d_max`` (and ``where``) if the path never has
    d_max features active (exactly collinear features, fewer particles than features).

    Examples
    --------
    >>> lasso_supports(np.eye(3), np.array([0.2, 0.9, 0.5]), n=100, d_max=3)
    [[1], [1, 2], [0, 1, 2]]
    """
    m = len(r)
    if not 1 <= d_max <= m:
        raise InputError(f"select.d_max: must lie in [1, {m}] for the Lasso, got {d_max}")
    intervals = lasso_intervals(*lasso_path(R, r, n))
    most = max((len(support) for _, _, support, _ in intervals), default=0)
    if most < d_max:
        raise InputError(f"select.d_max: {where} activates at most {most} of the {m} "
                         f"features (collinear features?), so d = {d_max} cannot be "
                         f"reached; lower select.d_max")
    sets = []
    for d in range(1, d_max + 1):
        exact = next((support for _, _, support, _ in intervals if len(support) == d), None)
        if exact is None:
            coef = next(mid for _, _, support, mid in intervals if len(support) > d)
            exact = sorted(range(m), key=lambda j: (-abs(coef[j]), j))[:d]
        sets.append(sorted(int(j) for j in exact))
    return sets


def lasso_selections(reg, d_max):
    """Per fold c, ``lasso_supports`` on the training configurations (every one but c),
    standardised with the training moments: the Lasso baseline of both protocols (the
    authors fit their Lasso on X_train, y_train).  Returns sets[c][d - 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40, 4))                      # C = 3, N = 40, M = 4
    >>> reg = LocoRegression(X, X[..., 0] + 0.1 * rng.standard_normal((3, 40)))
    >>> lasso_selections(reg, d_max=1)
    [[[0]], [[0]], [[0]]]
    """
    return [lasso_supports(*reg.training_moments(c), d_max,
                           where=f"the Lasso path of fold {c} (training configurations)")
            for c in range(reg.C)]


def nested_selections(order, d_max):
    """The sets [order[:1], order[:2], ..., order[:d_max]] of a greedy's ordered list.

    Examples
    --------
    >>> nested_selections([3, 1, 2], 2)
    [[3], [3, 1]]
    """
    if len(order) < d_max:
        raise InputError(f"regression: an order of {len(order)} features, need d_max = {d_max}")
    return [[int(j) for j in order[:d]] for d in range(1, d_max + 1)]


# ---------------------------------------------------------------------------------------
# Summaries (JSON-ready)
# ---------------------------------------------------------------------------------------

def summarise(rho, groups=GROUPS):
    """Mean and standard deviation (over configurations, NaN-aware, ddof 0) of rho[c, d, g].

    Returns {"d", "pearson" (C x D), "pearson_mean", "pearson_std", "species": {S, M, L: same
    three keys}} with plain lists.

    Examples
    --------
    >>> summary = summarise(np.array([[[0.5]], [[0.7]]]), groups=("all",))   # C = 2, D = 1
    >>> summary["d"], round(summary["pearson_mean"][0], 12), round(summary["pearson_std"][0], 12)
    ([1], 0.6, 0.1)
    """
    C, D, _ = rho.shape

    def stats(values):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {"pearson": values.tolist(),
                    "pearson_mean": np.nanmean(values, axis=0).tolist(),
                    "pearson_std": np.nanstd(values, axis=0).tolist()}

    out = {"d": list(range(1, D + 1)), **stats(rho[:, :, 0])}
    out["species"] = {name: stats(rho[:, :, g]) for g, name in enumerate(groups) if g > 0}
    return out
