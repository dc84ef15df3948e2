"""Information imbalance: kernels against plain references, limits, greedy selections.

The references below use full N x N distance matrices and explicit rank counts, written
independently of ``mpi_glass.imbalance``; the tie rule is checked once more by enumerating
every tie-breaking order on a tiny data set.
"""
import itertools
import math

import numpy as np
import pytest

from conftest import ShuffledMapper
from mpi_glass import imbalance as ii
from mpi_glass.imbalance import kernels, steps
from mpi_glass.errors import InputError


# -- plain references ------------------------------------------------------------------

def sq_distances(X):
    """Squared Euclidean distance matrix, columns added in order."""
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    D = np.zeros((len(X), len(X)))
    for col in X.T:
        D += (col[:, None] - col[None, :]) ** 2
    return D


def reference_delta(A, B, k=1):
    """Delta(A -> B) from the definition: tie-averaged ranks, fractional last places."""
    DA, DB = sq_distances(A), sq_distances(B)
    n = len(DA)
    total = 0.0
    for i in range(n):
        others = np.delete(np.arange(n), i)
        a, b = DA[i, others], DB[i, others]
        kth = np.sort(a)[k - 1]
        inside, tied = a < kth, a == kth
        weight = inside * 1.0 + tied * (k - inside.sum()) / tied.sum()
        for q in np.flatnonzero(weight):
            rest = np.delete(b, q)
            rank = 1 + np.sum(rest < b[q]) + 0.5 * np.sum(rest == b[q])
            total += weight[q] * rank
    return 2 * total / (n * n * k)


def literal_delta(A, B, k=1):
    """Delta(A -> B) averaged over every tie-breaking order, enumerated.

    Each tie-break is a priority permutation of the other points (distance first, then
    priority); A's and B's tie-breaks are independent and uniform.
    """
    DA, DB = sq_distances(A), sq_distances(B)
    n = len(DA)
    total = 0.0
    for i in range(n):
        others = [m for m in range(n) if m != i]
        perms = list(itertools.permutations(range(n - 1)))
        mean_rank_b = np.zeros(n - 1)
        for prio in perms:
            order = sorted(range(n - 1), key=lambda q: (DB[i, others[q]], prio[q]))
            for r, q in enumerate(order):
                mean_rank_b[q] += (r + 1) / len(perms)
        for prio in perms:
            order = sorted(range(n - 1), key=lambda q: (DA[i, others[q]], prio[q]))
            total += sum(mean_rank_b[q] for q in order[:k]) / len(perms)
    return 2 * total / (n * n * k)


def general(A, B, k=1):
    """The module's general (full-row) kernel, both directions, as Delta values."""
    A = np.asarray(A, float).reshape(len(A), -1)
    B = np.asarray(B, float).reshape(len(B), -1)
    s = kernels._pair_rows(np.ascontiguousarray(A.T), np.ascontiguousarray(B.T), k)
    return np.array(s) * 2 / (len(A) ** 2 * k)


def sample(rng, n, d, ties):
    """Continuous Gaussian data, or integer-valued data with exact ties and duplicate rows."""
    if not ties:
        return rng.standard_normal((n, d))
    X = rng.integers(0, 3, (n, d)).astype(float)
    X[:5] = X[5:10]
    return X


# -- the definition --------------------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_matches_bruteforce_reference(ties, k):
    rng = np.random.default_rng(10 + k + 2 * ties)
    for d_a, d_b in itertools.product([1, 2, 15], repeat=2):
        A, B = sample(rng, 60, d_a, ties), sample(rng, 60, d_b, ties)  # tie groups > 16
        want = (reference_delta(A, B, k), reference_delta(B, A, k))
        assert ii.imbalance_pair(A, B, k) == pytest.approx(want, abs=1e-12), (d_a, d_b)
        assert general(A, B, k) == pytest.approx(want, abs=1e-12), (d_a, d_b)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_tie_rule_is_the_average_over_tie_breaking(k):
    A = np.array([[0, 0], [1, 0], [0, 1], [1, 0], [2, 2], [1, 1]], float)  # a duplicate
    B = np.array([0, 1, 1, 2, 1, 0], float)
    for X, Y in [(A, B), (B, A), (A[:, :1], B)]:
        want = literal_delta(X, Y, k)
        assert want == pytest.approx(reference_delta(X, Y, k), abs=1e-12)
        assert ii.imbalance(X, Y, k) == pytest.approx(want, abs=1e-12)


def test_self_imbalance_is_its_minimum():
    A = np.random.default_rng(1).standard_normal((300, 3))
    assert ii.imbalance(A, A) == pytest.approx(2 / 300, abs=1e-15)  # every rank is 1
    assert ii.imbalance(A, A, k=3) == pytest.approx((3 + 1) / 300, abs=1e-15)


def test_independent_spaces_give_one():
    # Without information r is uniform on 1..N-1: E[Delta] = 1, sd(Delta) ~ 1/sqrt(3N) per
    # direction (rows taken as independent); allow 5 standard errors.
    n = 3000
    rng = np.random.default_rng(7)
    forward, backward = ii.imbalance_pair(rng.standard_normal((n, 2)),
                                          rng.standard_normal((n, 3)))
    tolerance = 5 / math.sqrt(3 * n)
    assert abs(forward - 1) < tolerance and abs(backward - 1) < tolerance


def test_invariant_under_point_permutation_and_rescaling():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((200, 4)), rng.standard_normal((200, 2))
    B[:, 0] += A[:, 0]
    base = ii.imbalance_pair(A, B, k=2)
    perm = rng.permutation(200)
    assert ii.imbalance_pair(A[perm], B[perm], k=2) == pytest.approx(base, abs=1e-12)
    assert ii.imbalance_pair(2.5 * A, B, k=2) == pytest.approx(base, abs=1e-12)


# -- fast paths against the general kernel -----------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
def test_one_dimensional_fast_paths(ties):
    rng = np.random.default_rng(4)
    A, p = sample(rng, 400, 5, ties), sample(rng, 400, 1, ties)[:, 0]
    for k in (1, 3):
        assert ii.imbalance_pair(A, p, k) == pytest.approx(general(A, p, k), abs=1e-12)
        assert ii.imbalance_pair(p, A, k) == pytest.approx(general(p, A, k), abs=1e-12)
        assert ii.imbalance_pair(A[:, 0], p, k) == pytest.approx(general(A[:, 0], p, k),
                                                                 abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_incremental_greedy_kernels(ties, k):
    """Base distances reused + pruned scans == recomputing Delta on the column subset."""
    rng = np.random.default_rng(20 + k + ties)
    X, p = sample(rng, 120, 8, ties), sample(rng, 120, 1, ties)[:, 0]
    Xt = np.ascontiguousarray(X.T)
    spaces = steps._full_space(Xt, k, 10)
    for S in ([], [2], [2, 5], [1, 3, 6, 7]):
        C = [c for c in range(8) if c not in S]
        scale = 2 / (120 ** 2 * k)
        u_fwd, u_bwd = steps._unsupervised_rows(Xt, Xt[S], Xt[C], k, *spaces)
        if S:
            s_fwd, s_bwd, s_base = steps._supervised_rows(Xt[S], Xt[C], *kernels._sorted_1d(p), k,
                                                       True, True)
            assert s_base * scale == pytest.approx(general(p, X[:, S], k)[0], abs=1e-12)
        for q, c in enumerate(C):
            cols = S + [c]
            assert np.array([u_fwd[q], u_bwd[q]]) * scale == pytest.approx(
                general(X[:, cols], X, k), abs=1e-12)
            if S:
                assert np.array([s_fwd[q], s_bwd[q]]) * scale == pytest.approx(
                    general(X[:, cols], p, k), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_greedy_records_match_recomputation(ties):
    rng = np.random.default_rng(5)
    Xs = [sample(rng, 90, 7, ties) for _ in range(2)]
    ps = [sample(rng, 90, 1, ties)[:, 0] for _ in range(2)]
    sup = ii.supervised_greedy(Xs, ps, d_max=4, noise_seed=9)
    uns = ii.unsupervised_greedy(Xs, d_max=4)
    for c in range(2):
        for d in range(4):
            assert (sup.delta_forward[d, c], sup.delta_backward[d, c]) == pytest.approx(
                reference_pair(Xs[c][:, sup.selected[:d + 1]], ps[c]), abs=1e-12)
            assert (uns.delta_forward[d, c], uns.delta_backward[d, c]) == pytest.approx(
                reference_pair(Xs[c][:, uns.selected[:d + 1]], Xs[c]), abs=1e-12)
        noise = np.random.default_rng(np.random.SeedSequence([9, c])).standard_normal(90)
        with_noise = np.column_stack([Xs[c][:, sup.selected], noise])
        assert (sup.noise_forward[c], sup.noise_backward[c]) == pytest.approx(
            reference_pair(with_noise, ps[c]), abs=1e-12)
    assert np.allclose(sup.objective, sup.delta_forward.mean(axis=1))
    assert np.allclose(uns.objective,
                       ((uns.delta_forward + uns.delta_backward) / math.sqrt(2)).mean(axis=1))


def reference_pair(A, B):
    return reference_delta(A, B), reference_delta(B, A)


# -- greedy selections on data with a known answer -----------------------------------------

def test_supervised_greedy_finds_the_informative_features():
    rng = np.random.default_rng(11)
    Xs, ps = [], []
    for _ in range(2):
        X = rng.standard_normal((500, 20))
        p = X[:, 3] + 0.8 * X[:, 7] - 0.6 * X[:, 12] + 0.3 * rng.standard_normal(500)
        Xs.append(ii.standardise(X))
        ps.append(ii.standardise(p))
    result = ii.supervised_greedy(Xs, ps, d_max=4)
    assert set(result.selected[:3]) == {3, 7, 12}
    assert np.all(np.diff(result.objective[:3]) < 0)
    assert result.noise_forward.mean() > result.delta_forward[-1].mean()


def test_unsupervised_greedy_picks_one_copy_of_each_latent():
    rng = np.random.default_rng(12)
    latent = rng.standard_normal((400, 3))
    copies = np.repeat(latent, 4, axis=1) + 0.05 * rng.standard_normal((400, 12))
    columns = rng.permutation(12)
    X = ii.standardise(copies[:, columns])
    group = columns // 4  # latent behind each column of X
    result = ii.unsupervised_greedy([X], d_max=4)
    assert sorted(group[result.selected[:3]]) == [0, 1, 2]


def test_results_do_not_depend_on_the_mapper():
    rng = np.random.default_rng(13)
    Xs = [ii.standardise(rng.standard_normal((150, 9))) for _ in range(2)]
    ps = [X[:, 2] + 0.5 * rng.standard_normal(150) for X in Xs]
    for run in (lambda m: ii.supervised_greedy(Xs, ps, d_max=5, mapper=m),
                lambda m: ii.unsupervised_greedy(Xs, d_max=5, mapper=m)):
        serial, shuffled = run(ii.SerialMapper()), run(ShuffledMapper(1, size=3))
        for key, value in serial.as_dict().items():
            assert shuffled.as_dict()[key] == value, key


def test_candidates_restrict_the_pool():
    rng = np.random.default_rng(14)
    X = ii.standardise(rng.standard_normal((100, 6)))
    p = X[:, 0] + 0.3 * rng.standard_normal(100)
    result = ii.supervised_greedy([X], [p], d_max=3, candidates=[1, 2, 4])
    assert sorted(result.selected) == [1, 2, 4]


# -- tables and standardisation ----------------------------------------------------------

def test_single_feature_table():
    rng = np.random.default_rng(15)
    X = ii.standardise(rng.standard_normal((200, 4)))
    p = X[:, 1] - 0.5 * X[:, 3] + rng.standard_normal(200)
    table = ii.single_feature_table(X, p)
    for m in range(4):
        assert (table["delta_x_to_p"][m], table["delta_p_to_x"][m]) == pytest.approx(
            reference_pair(X[:, m], p), abs=1e-12)
        assert table["pearson"][m] == pytest.approx(np.corrcoef(X[:, m], p)[0, 1], abs=1e-12)


def test_standardise():
    X = np.random.default_rng(16).normal(3.0, 2.0, (50, 3))
    Z = ii.standardise(X)
    assert np.allclose(Z.mean(axis=0), 0) and np.allclose(Z.std(axis=0), 1)
    assert ii.standardise(X[:, 0]).shape == (50,)


# -- bad input -----------------------------------------------------------------------------

def one_line_error(fn, *words):
    with pytest.raises(InputError) as err:
        fn()
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_bad_input():
    rng = np.random.default_rng(17)
    X = rng.standard_normal((20, 4))
    p = rng.standard_normal(20)
    nan = X.copy()
    nan[3, 2] = np.nan
    inf = X.copy()
    inf[0, 1] = np.inf
    constant = X.copy()
    constant[:, 1] = 4.0
    one_line_error(lambda: ii.imbalance(nan, p), "column 2", "NaN")
    one_line_error(lambda: ii.supervised_greedy([inf], [p]), "column 1", "NaN or inf")
    one_line_error(lambda: ii.supervised_greedy([X], [np.full(20, np.nan)], d_max=2), "NaN")
    one_line_error(lambda: ii.standardise(constant, names=["a", "b", "c", "d"], label="c0"),
                   "'b'", "constant", "c0")
    one_line_error(lambda: ii.standardise(nan), "column 2", "NaN")
    one_line_error(lambda: ii.supervised_greedy([constant], [p], d_max=2), "column 1",
                   "constant")
    one_line_error(lambda: ii.supervised_greedy([X], [np.ones(20)], d_max=2), "constant")
    one_line_error(lambda: ii.unsupervised_greedy([constant], d_max=2), "constant")
    one_line_error(lambda: ii.imbalance(X[:2], p[:2]), "at least 3")
    one_line_error(lambda: ii.supervised_greedy([X], [p], d_max=5), "d_max")
    one_line_error(lambda: ii.unsupervised_greedy([X], d_max=0), "d_max")
    one_line_error(lambda: ii.imbalance(X, p[:19]), "match")
    one_line_error(lambda: ii.supervised_greedy([X], [p[:19]], d_max=2), "match")
    one_line_error(lambda: ii.supervised_greedy([X, X], [p], d_max=2), "2 configurations")
    one_line_error(lambda: ii.imbalance(X, p, k=0), "k")
    one_line_error(lambda: ii.imbalance(X, p, k=20), "k")
    one_line_error(lambda: ii.unsupervised_greedy([X], d_max=2, k=20), "k")
    one_line_error(lambda: ii.supervised_greedy([X], [p], d_max=2, candidates=[7]),
                   "candidates")
