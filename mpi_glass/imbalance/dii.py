"""The Differentiable Information Imbalance (DII) and its exact gradient, streamed over rows.

Definition (Wild et al., Nat. Commun. 2025): feature weights w define the distances of space A,

    d2_ij(w) = sum_a w_a^2 (x_ia - x_ja)^2 ,

the nearest-neighbour indicator of the Information Imbalance is smoothed by a softmax,

    c_ij = exp(-d2_ij / lambda_i) / sum_{m != i} exp(-d2_im / lambda_i) ,

and DII(w) = 2 / N^2 * sum_i sum_{j != i} c_ij r^B_ij, with r^B_ij the rank of j among i's
neighbours in the target space B (the propensity, or the full feature space).  Ranks follow
the II's tie rule (``mpi_glass.imbalance``): mid-ranks, r = 1 + #closer + 1/2 #tied.

lambda (DADApy's default, ``DiffImbalance(point_adapt_lambda=True, k_init=k_final=1)``):
``"adaptive"``: lambda_i = factor * d2 to i's k-th nearest neighbour in the *current* weighted
space, recomputed at every evaluation; ``"global"``: one lambda = factor * the mean over i of
that distance (DADApy's ``point_adapt_lambda=False``).  Like DADApy (whose JAX gradient flows
through lambda) the gradient here is exact *including* lambda's dependence on w; where several
points tie for the k-th place the derivative of that order statistic is taken along the first
of them (a one-sided derivative: the function has a kink there).  lambda_i = 0 (i's k nearest
all coincide with i in the weighted space) is the limit lambda -> 0: c is uniform over the
points at distance 0 and that row contributes no gradient.

Streaming: row i needs its N weighted distances (O(N M) to build), its N target ranks (1-D
target: an outward merge from i in one sorted copy of the target, O(N); several target
columns: a sort of i's target distances), and two passes for the gradient.  Memory is O(N M);
nothing N x N exists.  Rows are cut into fixed blocks of ``ROW_BLOCK`` whatever the number of
ranks; each block sums its rows in order, and the blocks' partial sums are added in block
order on every rank, so the value and gradient are bit-identical for any rank count.

Examples
--------
Weights that single out the feature the target is made from give a lower DII:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((200, 3))
>>> y = X[:, 0] + 0.01 * rng.standard_normal(200)
>>> good = dii_value_and_grad(X, y, np.array([1.0, 0.0, 0.0]))[0]
>>> bad = dii_value_and_grad(X, y, np.array([0.0, 1.0, 1.0]))[0]
>>> bool(good < 0.1 < 0.6 < bad)
True
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..floatbits import bits_float
from ..mapper import SerialMapper
from .kernels import _insert, _sorted_1d

__all__ = ["ROW_BLOCK", "LAMBDA_RULES", "DiiTarget", "dii_value_and_grad", "dii_target"]

#: Rows per work item: fixes the reduction order, so results do not depend on the rank count.
ROW_BLOCK = 128
LAMBDA_RULES = ("adaptive", "global")
#: Softmax weights below exp(-_EXP_FLOOR) of the row's largest are set to 0 (see _softmax_row).
_EXP_FLOOR = 690.0


# ---------------------------------------------------------------------------------------
# Target ranks of one row
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _ranks_1d(s, order, pos, i, ranks, merged):
    """ranks[j] = mid-rank of j among i's neighbours in the 1-D target (s sorted, order its
    argsort, pos the place of each point in s); ranks[i] = 0.  ``merged`` (N,) int64 scratch.

    An outward merge from i's place: on each side the computed (s_p - s_q)^2 is monotone along
    the sorted order, so the merge meets distances in ascending order, and equal distances
    (from either side) one after the other.  Each point first gets 1 + #merged before it; a
    run of equal distances, once it ends, gets its mid-rank 1 + #closer + (size - 1) / 2.
    The merge picks its side by selects, not branches: on a continuous target the side is
    a coin flip that a branch predictor loses half the time (2x slower).  O(N) per row.
    """
    n = s.shape[0]
    p = pos[i]
    v = s[p]
    ranks[i] = 0.0
    left, right = p - 1, p + 1
    run_start, run_gap = 0, -1.0
    for k in range(n - 1):
        gl = v - s[max(left, 0)]
        gr = v - s[min(right, n - 1)]
        fl = gl * gl if left >= 0 else np.inf
        fr = gr * gr if right < n else np.inf
        take_left = fl <= fr
        gap = fl if take_left else fr
        j = order[left if take_left else right]
        merged[k] = j
        ranks[j] = 1.0 + k
        if gap != run_gap:
            _tie_run(ranks, merged, run_start, k)
            run_start, run_gap = k, gap
        left -= take_left
        right += 1 - take_left
    _tie_run(ranks, merged, run_start, n - 1)


@njit(cache=True, inline="always")
def _tie_run(ranks, merged, lo, hi):
    """The points merged at lo..hi-1 share one distance: give them its mid-rank."""
    if hi - lo > 1:
        r = 1.0 + lo + 0.5 * (hi - lo - 1)
        for u in range(lo, hi):
            ranks[merged[u]] = r


@njit(cache=True)
def _ranks_nd(Bt, i, dist, ranks):
    """ranks[j] = mid-rank of j among i's neighbours in the target columns Bt (K, N);
    ranks[i] = 0.  Distances summed column by column in order, sorted once per row."""
    n = Bt.shape[1]
    dist[:] = 0.0
    for s in range(Bt.shape[0]):
        xi = Bt[s, i]
        row = Bt[s]
        for m in range(n):
            d = xi - row[m]
            dist[m] += d * d
    dist[i] = -1.0            # i first: it is no neighbour of itself
    order = np.argsort(dist, kind="mergesort")
    ranks[i] = 0.0
    q = 1
    while q < n:
        end = q + 1
        while end < n and dist[order[end]] == dist[order[q]]:
            end += 1
        r = 1.0 + (q - 1) + 0.5 * (end - q - 1)
        for u in range(q, end):
            ranks[order[u]] = r
        q = end


# ---------------------------------------------------------------------------------------
# Weighted distances and lambda
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _weighted_row(Xt, w2, i, d2):
    """d2[m] = sum_a w2[a] (x_ia - x_ma)^2 over the (active) feature rows of Xt, added one
    feature after the other in index order.  Four features per pass over d2 (fewer loads and
    stores), still added left to right, so the bits equal the one-feature-per-pass loop."""
    d2[:] = 0.0
    n_feat = Xt.shape[0]
    a = 0
    while a + 4 <= n_feat:
        x0, x1, x2, x3 = Xt[a, i], Xt[a + 1, i], Xt[a + 2, i], Xt[a + 3, i]
        w0, w1, w2_, w3 = w2[a], w2[a + 1], w2[a + 2], w2[a + 3]
        r0, r1, r2, r3 = Xt[a], Xt[a + 1], Xt[a + 2], Xt[a + 3]
        for m in range(d2.shape[0]):
            e0 = x0 - r0[m]
            e1 = x1 - r1[m]
            e2 = x2 - r2[m]
            e3 = x3 - r3[m]
            d2[m] = (((d2[m] + w0 * (e0 * e0)) + w1 * (e1 * e1)) + w2_ * (e2 * e2)) \
                + w3 * (e3 * e3)
        a += 4
    while a < n_feat:
        xi = Xt[a, i]
        row = Xt[a]
        wa = w2[a]
        for m in range(d2.shape[0]):
            e = xi - row[m]
            d2[m] += wa * (e * e)
        a += 1


@njit(cache=True)
def _kth(d2, i, k, top):
    """(k-th smallest d2[m], m != i; the first m attaining it)."""
    top[:] = np.inf
    for m in range(d2.shape[0]):
        if m != i and d2[m] < top[k - 1]:
            _insert(top, d2[m])
    vk = top[k - 1]
    for m in range(d2.shape[0]):
        if m != i and d2[m] == vk:
            return vk, m
    return vk, -1


@njit(cache=True)
def _kth_block(Xt, w, lo, hi, k):
    """Sum over rows lo..hi-1 of d2 to the k-th neighbour, and of its per-feature squared
    differences (the global lambda's value and the direction of its derivative)."""
    n_feat, n = Xt.shape
    w2 = w * w
    d2 = np.empty(n)
    top = np.empty(k)
    total = 0.0
    dsq = np.zeros(n_feat)
    for i in range(lo, hi):
        _weighted_row(Xt, w2, i, d2)
        vk, nb = _kth(d2, i, k, top)
        total += vk
        for a in range(n_feat):
            e = Xt[a, i] - Xt[a, nb]
            dsq[a] += e * e
    return total, dsq


# ---------------------------------------------------------------------------------------
# exp(-x), vectorisable
# ---------------------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10   # fdlibm's split
_ROUNDER = 1.5 * 2.0**52
_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(14))


@njit(cache=True, inline="always")
def _exp_neg(x):
    """exp(-x) for 0 <= x < 700, within 1 ulp of ``np.exp`` (checked on 2e6 points by
    ``tests/test_dii.py``), branch-free, so the softmax loop vectorises: numba's ``np.exp`` is
    a libm call per element (10 ns; without Intel's SVML numba cannot vectorise it), this is
    1.4 ns.  x = k ln 2 - r with k the nearest integer (rounded by the 1.5 2^52 trick),
    e^-x = 2^-k e^r, e^r by its Taylor series to r^13 (|r| <= ln2 / 2: the remainder is
    below 2^-53), 2^-k built from its exponent bits."""
    k = (x * _LOG2E + _ROUNDER) - _ROUNDER
    r = (k * _LN2_HI - x) + k * _LN2_LO
    c = _TAYLOR
    p = c[13]
    p = c[12] + r * p
    p = c[11] + r * p
    p = c[10] + r * p
    p = c[9] + r * p
    p = c[8] + r * p
    p = c[7] + r * p
    p = c[6] + r * p
    p = c[5] + r * p
    p = c[4] + r * p
    p = c[3] + r * p
    p = c[2] + r * p
    p = 1.0 + r * p
    p = 1.0 + r * p
    return p * bits_float((np.int64(1023) - np.int64(k)) << 52)


# ---------------------------------------------------------------------------------------
# The row block: value and gradient
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _row_min(d2, i):
    dmin = np.inf
    for m in range(d2.shape[0]):
        if m != i and d2[m] < dmin:
            dmin = d2[m]
    return dmin


@njit(cache=True)
def _softmax_row(d2, i, lam, dmin, ranks, c):
    """c = exp(-(d2 - dmin) / lam) over m != i (c[i] = 0; dmin, the row's smallest distance,
    subtracted for stability), *not* normalised; returns (L_i = sum_m c_m r_m / z, z).
    lam = 0: the limit, c uniform over the points at the smallest distance.

    Two passes: the weights alone (a loop LLVM vectorises, ``_exp_neg``), then the two sums
    in index order (float sums do not vectorise without reordering them)."""
    n = d2.shape[0]
    d2[i] = np.inf             # i is no neighbour of itself: weight exactly 0, no branch
    if lam <= 0.0:
        for m in range(n):
            c[m] = 1.0 if d2[m] == dmin else 0.0
    else:
        scale = 1.0 / lam
        for m in range(n):
            x = (d2[m] - dmin) * scale
            # Below exp(-_EXP_FLOOR) ~ 1e-300 of the largest weight a point adds nothing a
            # float64 sum can hold; setting it to 0 avoids subnormal arithmetic (100x slower).
            c[m] = _exp_neg(x) if x < _EXP_FLOOR else 0.0
    d2[i] = 0.0
    z = 0.0
    s = 0.0
    for m in range(n):
        z += c[m]
        s += c[m] * ranks[m]
    return s / z, z


@njit(cache=True)
def _weighted_sq_diffs(X, i, g, acc):
    """acc[a] = sum_m g[m] (x_ia - x_ma)^2: points outer, features inner (row-major X), so
    each feature keeps its own accumulator - vectorised across features, summed in m order."""
    acc[:] = 0.0
    xi = X[i]
    for m in range(X.shape[0]):
        gm = g[m]
        if gm == 0.0:
            continue
        xm = X[m]
        for a in range(X.shape[1]):
            e = xi[a] - xm[a]
            acc[a] += gm * (e * e)


@njit(cache=True)
def _dii_block(X, Xt, w, lo, hi, Bt, bs, bo, bpos, k, factor, lam_global):
    """Sum over rows lo..hi-1 of L_i = sum_j c_ij r_ij and of dL_i/dw, on the active features
    X (N, d) and Xt = X.T with weights w (d,).

    ``lam_global`` > 0: that lambda for every row (its own derivative is added by the
    caller); else lambda_i = factor * d2 to i's k-th neighbour (adaptive).  ``bs`` non-empty:
    1-D target sorted (values, argsort, positions); else target columns ``Bt``.
    Also returns sum_i dL_i/dlambda (used with a global lambda).
    """
    n_feat, n = Xt.shape
    w2 = w * w
    d2 = np.empty(n)
    c = np.empty(n)
    ranks = np.empty(n)
    scratch = np.empty(n)
    merged = np.empty(n, np.int64)
    top = np.empty(k)
    acc = np.empty(n_feat)
    grad = np.zeros(n_feat)
    loss = 0.0
    dlam_total = 0.0
    one_d = bs.shape[0] > 0
    for i in range(lo, hi):
        _weighted_row(Xt, w2, i, d2)
        if one_d:
            _ranks_1d(bs, bo, bpos, i, ranks, merged)
        else:
            _ranks_nd(Bt, i, scratch, ranks)
        nb = -1
        if lam_global > 0.0:
            lam = lam_global
            dmin = _row_min(d2, i)
        else:
            vk, nb = _kth(d2, i, k, top)
            lam = factor * vk
            dmin = top[0]                      # the k smallest, ascending
        li, z = _softmax_row(d2, i, lam, dmin, ranks, c)
        loss += li
        if lam <= 0.0:
            continue
        # g_m = dL_i/ds_m = c_m (r_m - L_i) with s_m = -d2_m / lambda (kept in c).
        dlam = 0.0
        inv_z = 1.0 / z
        for m in range(n):
            g = (c[m] * inv_z) * (ranks[m] - li)
            c[m] = g
            dlam += g * d2[m]
        dlam /= lam * lam                      # dL_i/dlambda
        _weighted_sq_diffs(X, i, c, acc)
        for a in range(n_feat):
            via_lambda = 0.0
            if nb >= 0:
                e = X[i, a] - X[nb, a]
                via_lambda = dlam * factor * (e * e)
            grad[a] += 2.0 * w[a] * (-acc[a] / lam + via_lambda)
        dlam_total += dlam
    return loss, grad, dlam_total


# ---------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------

class DiiTarget:
    """The target space B, prepared once: a 1-D target sorted, or several columns transposed.

    Parameters
    ----------
    target : (N,) or (N, K) array
        The target (e.g. the propensity, or the standardised feature space).
    """

    def __init__(self, target):
        target = np.asarray(target, dtype=np.float64)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        self.n = target.shape[0]
        self.one_d = target.ndim == 1
        if self.one_d:
            _, self.s, self.order, self.pos = _sorted_1d(target)
            self.Bt = np.empty((0, self.n))
        else:
            self.Bt = np.ascontiguousarray(target.T)
            self.s = np.empty(0)
            self.order = self.pos = np.empty(0, np.int64)

    def ranks(self, i):
        """Mid-ranks of every point among i's neighbours in the target (i itself: 0).

        Examples
        --------
        >>> DiiTarget(np.array([0.0, 1.0, 1.0, 3.0])).ranks(0).tolist()
        [0.0, 1.5, 1.5, 3.0]
        """
        out = np.empty(self.n)
        if self.one_d:
            _ranks_1d(self.s, self.order, self.pos, i, out, np.empty(self.n, np.int64))
        else:
            _ranks_nd(self.Bt, i, np.empty(self.n), out)
        return out


def dii_target(target):
    """``DiiTarget(target)`` unless it already is one."""
    return target if isinstance(target, DiiTarget) else DiiTarget(target)


def dii_value_and_grad(X, target, w, k=1, factor=0.1, rule="adaptive", mapper=None, Xt=None):
    """DII(w) and its exact gradient dDII/dw, streamed over row blocks.

    Parameters
    ----------
    X : (N, M) array
        Features (standardised by the caller); ignored if ``Xt`` (M, N) is given.
    target : (N,), (N, K) array or DiiTarget
        The target space B.
    w : (M,) array
        Feature weights; features with w = 0 are skipped (their gradient is 0, exactly the
        derivative there: d2 depends on w_a^2).
    k, factor, rule : int, float, {"adaptive", "global"}
        lambda_i = factor * d2 to the k-th neighbour (adaptive) or factor * its mean (global).
    mapper : object with ``map(fn, n)``
        Spreads the row blocks (``ROW_BLOCK``) over ranks; the sum is in block order.

    Returns
    -------
    (float, (M,) array)

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> X = rng.standard_normal((50, 2))
    >>> value, grad = dii_value_and_grad(X, X[:, 0], np.array([1.0, 1.0]))
    >>> bool(grad[0] < 0 < grad[1])          # more weight on the target's feature helps
    True
    """
    mapper = mapper or SerialMapper()
    if Xt is None:
        Xt = np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)
    target = dii_target(target)
    w = np.asarray(w, dtype=np.float64)
    active = np.flatnonzero(w != 0.0)
    Xat = np.ascontiguousarray(Xt[active])          # the active features only: (d, N)
    Xa = np.ascontiguousarray(Xat.T)                # and row-major (N, d) for the gradient
    wa = np.ascontiguousarray(w[active])
    n = Xt.shape[1]
    blocks = [(lo, min(lo + ROW_BLOCK, n)) for lo in range(0, n, ROW_BLOCK)]
    lam_global, dlam_dw = 0.0, None
    if rule == "global":
        parts = mapper.map(lambda b: _kth_block(Xat, wa, *blocks[b], k), len(blocks))
        total, dsq = _ordered_sum(parts)
        lam_global = factor * total / n
        dlam_dw = factor * 2.0 * wa * dsq / n
        if lam_global <= 0.0:
            raise ValueError("global lambda is 0: every point's k-th neighbour coincides "
                             "with it in the weighted space")
    parts = mapper.map(lambda b: _dii_block(Xa, Xat, wa, *blocks[b], target.Bt, target.s,
                                            target.order, target.pos, k, factor,
                                            lam_global), len(blocks))
    loss, grad_active, dlam = _ordered_sum(parts)
    if dlam_dw is not None:
        grad_active = grad_active + dlam * dlam_dw
    scale = 2.0 / (n * n)
    grad = np.zeros(len(w))
    grad[active] = grad_active * scale
    return loss * scale, grad


def _ordered_sum(parts):
    """Element-wise sum of the blocks' tuples, in block order (the fixed reduction order)."""
    totals = [part for part in parts[0]]
    for part in parts[1:]:
        totals = [a + b for a, b in zip(totals, part)]
    return totals
