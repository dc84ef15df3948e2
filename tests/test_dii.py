"""The Differentiable Information Imbalance: kernels against an independent brute force,
the gradient against finite differences, the optimiser and the backward elimination."""
import numpy as np
import pytest

from mpi_glass.imbalance.dii import DiiTarget, dii_value_and_grad


# ---------------------------------------------------------------------------------------
# Independent reference: dense N x N NumPy, ranks by counting, gradient by the chain rule
# written for whole matrices (no code shared with the kernels)
# ---------------------------------------------------------------------------------------

def brute_ranks(B):
    """r[i, j] = 1 + #{m != i, j: d_im < d_ij} + 1/2 #{m != i, j: d_im = d_ij}; r[i, i] = 0."""
    B = B.reshape(len(B), -1)
    D = ((B[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    n = len(B)
    r = np.zeros((n, n))
    for i in range(n):
        others = np.delete(D[i], i)
        for j in range(n):
            if j != i:
                t = D[i, j]
                r[i, j] = 1 + (others < t).sum() + 0.5 * ((others == t).sum() - 1)
    return r


def brute_dii(X, B, w, k=1, factor=0.1, rule="adaptive"):
    """DII and gradient from dense matrices; lambda's dependence on w included."""
    n, M = X.shape
    diff2 = (X[:, None, :] - X[None, :, :]) ** 2          # (N, N, M)
    D = diff2 @ (w * w)
    R = brute_ranks(B)
    off = ~np.eye(n, dtype=bool)
    Dm = np.where(off, D, np.inf)
    kth = np.argsort(Dm, axis=1, kind="stable")[:, k - 1]   # first of ties, like ours
    dk = Dm[np.arange(n), kth]
    dk_dw = 2 * w * diff2[np.arange(n), kth]              # (N, M)
    if rule == "adaptive":
        lam = factor * dk
        dlam_dw = factor * dk_dw
    else:
        lam = np.full(n, factor * dk.mean())
        dlam_dw = np.broadcast_to(factor * dk_dw.mean(0), (n, M))
    zero = lam == 0                  # limit lambda -> 0: uniform over the coincident points
    safe = np.where(zero, 1.0, lam)
    S = -Dm / safe[:, None]
    S -= S.max(1, keepdims=True)
    C = np.exp(S)
    C[zero] = (Dm[zero] == 0)
    C /= C.sum(1, keepdims=True)
    L = (C * R).sum(1)
    G = C * (R - L[:, None])                              # dL_i / ds_ij
    G[~off | zero[:, None]] = 0                           # no gradient from lambda = 0 rows
    dD = -G / safe[:, None]                               # dL_i / dD_ij
    dlam = (G * np.where(off, D, 0)).sum(1) / safe ** 2   # dL_i / dlambda_i
    grad = 2 * w * np.einsum("ij,ijm->m", dD, diff2) + (dlam[:, None] * dlam_dw).sum(0)
    scale = 2.0 / n ** 2
    return L.sum() * scale, grad * scale


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 5))
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.standard_normal(300)
    w = rng.uniform(0.2, 1.5, 5)
    return X, y, w


@pytest.mark.parametrize("rule", ["adaptive", "global"])
@pytest.mark.parametrize("k", [1, 3])
def test_value_and_gradient_equal_brute_force(data, rule, k):
    X, y, w = data
    value, grad = dii_value_and_grad(X, y, w, k=k, rule=rule)
    ref_value, ref_grad = brute_dii(X, y, w, k=k, rule=rule)
    assert abs(value - ref_value) <= 1e-12 * ref_value
    assert rel(grad, ref_grad) <= 1e-12


def test_ties_in_target_and_features_equal_brute_force():
    rng = np.random.default_rng(4)
    X = rng.integers(0, 4, (200, 3)).astype(float) + 0.01 * rng.standard_normal((200, 3))
    X[50:60] = X[40:50]                                  # duplicate points in A
    y = rng.integers(0, 6, 200).astype(float)           # heavy ties in the target
    w = np.array([1.0, 0.7, 0.4])
    for target in (y, np.c_[y, rng.integers(0, 2, 200).astype(float)]):
        value, grad = dii_value_and_grad(X, target, w, factor=0.5)
        ref_value, ref_grad = brute_dii(X, target, w, factor=0.5)
        assert abs(value - ref_value) <= 1e-12 * ref_value
        assert rel(grad, ref_grad) <= 1e-12


def test_multidimensional_target_equals_brute_force(data):
    X, y, w = data
    B = np.c_[y, X[:, 2]]
    value, grad = dii_value_and_grad(X, B, w, k=2)
    ref_value, ref_grad = brute_dii(X, B, w, k=2)
    assert abs(value - ref_value) <= 1e-12 * ref_value
    assert rel(grad, ref_grad) <= 1e-12


def test_target_ranks_1d_equal_counting():
    y = np.array([0.0, 2.0, 1.0, 1.0, 3.0, 2.0, 0.0, -1.0])
    ref = brute_ranks(y)
    target = DiiTarget(y)
    for i in range(len(y)):
        assert target.ranks(i).tolist() == ref[i].tolist()


@pytest.mark.parametrize("rule", ["adaptive", "global"])
def test_gradient_equals_finite_differences(data, rule):
    X, y, w = data
    X, y = X[:120], y[:120]
    _, grad = dii_value_and_grad(X, y, w, k=2, rule=rule)
    h = 1e-6
    fd = np.empty_like(w)
    for a in range(len(w)):
        up, down = w.copy(), w.copy()
        up[a] += h
        down[a] -= h
        fd[a] = (dii_value_and_grad(X, y, up, k=2, rule=rule)[0]
                 - dii_value_and_grad(X, y, down, k=2, rule=rule)[0]) / (2 * h)
    assert rel(grad, fd) <= 1e-5


def test_zero_weights_are_skipped_and_have_zero_gradient(data):
    X, y, w = data
    w = w.copy()
    w[2] = 0.0
    value, grad = dii_value_and_grad(X, y, w)
    ref_value, ref_grad = brute_dii(X, y, w)
    assert grad[2] == 0.0
    assert abs(value - ref_value) <= 1e-12 * ref_value
    assert rel(grad, ref_grad) <= 1e-12


def test_block_split_does_not_change_bits(data):
    """Any distribution of the row blocks gives the same bits (the sum is in block order)."""
    X, y, w = data

    class Reversed:
        size = 3

        def map(self, fn, n):                # items computed in another order
            out = {i: fn(i) for i in reversed(range(n))}
            return [out[i] for i in range(n)]
    a = dii_value_and_grad(X, y, w)
    b = dii_value_and_grad(X, y, w, mapper=Reversed())
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
