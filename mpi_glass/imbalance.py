"""Information Imbalance (II) and greedy feature selection (paper Sec. II C, III A-C).

Definition
----------
For N points described in two spaces A and B (Euclidean distances, the point itself excluded
everywhere),

    Delta(A -> B) = 2 / (N^2 k) * sum_i sum_{j in kNN_A(i)} r^B_ij ,

where r^B_ij is the rank of j among i's neighbours in B.  Ties (duplicate points, discrete
features) follow one rule: Delta is its expectation when every tie is broken uniformly at
random.  Hence

    r^B_ij = 1 + #{m != i,j : d^B_im < d^B_ij} + 1/2 #{m != i,j : d^B_im = d^B_ij},

and when T points tie for i's last places in A (L points strictly closer, L < k <= L + T),
each of them carries the weight (k - L) / T.  Delta ~ 0: A predicts B's neighbourhoods;
Delta ~ 1: A says nothing about B.

Algorithm
---------
Nothing N x N is ever built: the kernels stream the rows i, so memory is O(N M).  Squared
distances are accumulated column by column in one fixed order (``_sqdist_row``,
``_sqdist_pair``), so "base + candidate term" in the greedy search is bit-identical to the
distance on the column subset, and every code path sees the same ties.

* General kernel (``_pair_general``, the reference for all fast paths): per row, distances in A
  and B; i's k nearest (with ties) in one, their ranks in the other by counting over the row
  (from the sorted row when a tie group is large).
* 1-D spaces (the propensity, a single feature): one sort.  On each side of i the computed
  (x_i - x_m)^2 is monotone along the sorted order (rounding is monotone), so neighbours and
  exact tie-aware rank counts are binary searches: O(log N) per rank.
* Greedy step with selected set S: per row i the base b_m = sum_{s in S} (x_is - x_ms)^2 is
  computed once (O(N |S|)) and shared by all candidates c.  Adding a square only increases
  distances, so i's k-th distance in S + c is at most the best total of a few seeds (smallest
  b), and only points with b below that bound matter.  They are laid out in tiers of growing b
  (cut at quantiles of the candidates' bounds, each tier sorted when a scan first reaches it;
  for a one-column base, an outward merge in the column's global sort), and each candidate
  scans in b order until b exceeds its current k-th best.  Exact; a step costs
  O(N^2 |S|) plus O(N x few x M) instead of O(N^2 M).
* Supervised: Delta(S+c -> p) ranks the neighbours found in p by binary search.
  Delta(p -> X_d) is only needed for the chosen set: it is computed in the next step, whose
  base is X_d, for O(N) per row; the noise-control pass supplies the last one.
* Unsupervised: i's full-space k nearest and its 64 smallest full distances (sorted) are
  computed once per configuration.  Delta(S+c -> X_full) ranks the S+c neighbours' full
  distances in that prefix by binary search, or beyond it by one dense pass over i's full row
  shared by all such queries of the row.  Delta(X_full -> S+c) ranks i's full-space neighbour
  in every S+c at once: a count over the points with b below its largest distance,
  vectorised across candidates.

Parallel work is expressed through a ``mapper`` (``map(fn, n) -> [fn(i) for i in range(n)]``):
each greedy step's work items are (configuration, candidate block) pairs, each a pure function
of its index whose per-candidate results do not depend on the block composition, so every
rank count gives identical selections.
"""
from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit

from .errors import InputError

#: Points with the smallest base distance used to bound each candidate's neighbour distance.
_SEEDS = 8
#: Quantiles of the candidates' bounds that cut the scan order into lazily sorted tiers.
_TIER_QUANTILES = (0.5, 0.75, 0.9, 1.0)
#: Sorted smallest full-space distances kept per point for the unsupervised rank queries.
_PREFIX = 64
#: Above this many neighbours of one row, ranks come from the sorted row, not row passes.
_MANY_TIES = 16
#: Block length of the passes that skip whole blocks by their minimum (few points qualify).
_BLOCK = 64


# ---------------------------------------------------------------------------------------
# Row helpers
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _sqdist_row(Xt, i, out):
    """out[m] = sum_s (Xt[s, i] - Xt[s, m])^2, columns summed in order (so out[i] == 0)."""
    out[:] = 0.0
    for s in range(Xt.shape[0]):
        xi = Xt[s, i]
        row = Xt[s]
        for m in range(out.shape[0]):
            d = xi - row[m]
            out[m] += d * d


@njit(cache=True)
def _block_min(a, start):
    """Minimum of a[start:start + _BLOCK]: lets threshold passes skip most points at ~0.4 ns
    each instead of a data-dependent branch per point."""
    low = np.inf
    for m in range(start, min(start + _BLOCK, a.shape[0])):
        low = min(low, a[m])
    return low


@njit(cache=True)
def _insert(top, t):
    """Insert t into the ascending array top, dropping its largest entry."""
    j = top.shape[0] - 1
    while j > 0 and top[j - 1] > t:
        top[j] = top[j - 1]
        j -= 1
    top[j] = t


@njit(cache=True)
def _row_knn(dist, i, k, top, nb):
    """i's k nearest in a full distance row, ties included.

    Returns (L, T): nb[:L] strictly inside the k-th distance, nb[L:L+T] at it.
    """
    top[:] = np.inf
    n = dist.shape[0]
    for start in range(0, n, _BLOCK):
        if _block_min(dist, start) >= top[k - 1]:
            continue
        for m in range(start, min(start + _BLOCK, n)):
            if m != i and dist[m] < top[k - 1]:
                _insert(top, dist[m])
    return _split_knn_row(dist, i, top[k - 1], nb)


@njit(cache=True)
def _split_knn_row(dist, i, vk, nb):
    n_less = 0
    for m in range(dist.shape[0]):
        if m != i and dist[m] < vk:
            nb[n_less] = m
            n_less += 1
    n_tie = 0
    for m in range(dist.shape[0]):
        if m != i and dist[m] == vk:
            nb[n_less + n_tie] = m
            n_tie += 1
    return n_less, n_tie


@njit(cache=True)
def _rank_row(dist, i, j):
    """Tie-averaged rank of j among i's neighbours, counted over a full row (dist[i] == 0)."""
    t = dist[j]
    lt = 0
    le = 0
    for m in range(dist.shape[0]):
        lt += dist[m] < t
        le += dist[m] <= t
    # Remove i itself (distance 0) and j (distance t) from the counts.
    if t > 0.0:
        lt -= 1
    le -= 2
    return 1.0 + lt + 0.5 * (le - lt)


@njit(cache=True)
def _weighted(k, n_less, n_tie, sum_less, sum_tie):
    """Row contribution: the tied last places share the (k - L) remaining places."""
    return sum_less + (k - n_less) / n_tie * sum_tie


@njit(cache=True)
def _rank_sum_row(dist, i, nb, n_less, n_tie, k):
    """Weighted rank sum of i's neighbours nb in the space of the row ``dist``."""
    if n_less + n_tie > _MANY_TIES:  # a big tie group: sort the row once, binary-search each
        others = dist.copy()
        others[i] = np.inf
        return _rank_sum_sorted(np.sort(others)[:-1], dist, nb, n_less, n_tie, k)
    less = 0.0
    for q in range(n_less):
        less += _rank_row(dist, i, nb[q])
    tie = 0.0
    for q in range(n_less, n_less + n_tie):
        tie += _rank_row(dist, i, nb[q])
    return _weighted(k, n_less, n_tie, less, tie)


@njit(cache=True)
def _rank_sum_sorted(sorted_row, dist, nb, n_less, n_tie, k):
    """Ranks in a space whose row (without i) is sorted once: two binary searches each."""
    less = 0.0
    tie = 0.0
    for q in range(n_less + n_tie):
        t = dist[nb[q]]
        lt = np.searchsorted(sorted_row, t, side="left")
        le = np.searchsorted(sorted_row, t, side="right")
        r = 1.0 + lt + 0.5 * (le - lt - 1)
        if q < n_less:
            less += r
        else:
            tie += r
    return _weighted(k, n_less, n_tie, less, tie)


# ---------------------------------------------------------------------------------------
# One-dimensional spaces: one sort, binary searches
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _start_left(s, p, t, strict):
    """Smallest lo <= p with (s[p] - s[q])^2 < t (or <= t) for every q in [lo, p)."""
    v = s[p]
    lo, hi = 0, p
    while lo < hi:
        mid = (lo + hi) >> 1
        d = v - s[mid]
        f = d * d
        if (f < t) if strict else (f <= t):
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def _end_right(s, p, t, strict):
    """Largest hi > p with (s[p] - s[q])^2 < t (or <= t) for every q in (p, hi)."""
    v = s[p]
    lo, hi = p + 1, s.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        d = v - s[mid]
        f = d * d
        if (f < t) if strict else (f <= t):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _rank_1d(s, pos, x, i, j):
    """Rank of j among i's neighbours in the 1-D space x (s = sorted x, pos = rank of x)."""
    d = x[i] - x[j]
    t = d * d
    p = pos[i]
    lt = _end_right(s, p, t, True) - _start_left(s, p, t, True) - 1
    le = _end_right(s, p, t, False) - _start_left(s, p, t, False) - 1
    return 1.0 + lt + 0.5 * (le - lt - 1)  # j itself is among the le


@njit(cache=True)
def _knn_1d(s, order, pos, i, k, nb):
    """i's k nearest in 1-D with ties, as (L, T) and nb like ``_row_knn``."""
    p = pos[i]
    v = s[p]
    n = s.shape[0]
    left, right, vk = p - 1, p + 1, 0.0
    for _ in range(k):  # merge the two monotone sides: the k-th value picked is the k-th distance
        fl = np.inf
        if left >= 0:
            fl = (v - s[left]) * (v - s[left])
        fr = np.inf
        if right < n:
            fr = (v - s[right]) * (v - s[right])
        if fl <= fr:
            vk, left = fl, left - 1
        else:
            vk, right = fr, right + 1
    lo = _start_left(s, p, vk, False)
    hi = _end_right(s, p, vk, False)
    n_less = 0
    n_tie = 0
    for q in range(lo, hi):
        if q != p:
            d = v - s[q]
            if d * d < vk:
                nb[n_less] = order[q]
                n_less += 1
    for q in range(lo, hi):
        if q != p:
            d = v - s[q]
            if d * d == vk:
                nb[n_less + n_tie] = order[q]
                n_tie += 1
    return n_less, n_tie


@njit(cache=True)
def _rank_sum_1d(s, pos, x, i, nb, n_less, n_tie, k):
    less = 0.0
    for q in range(n_less):
        less += _rank_1d(s, pos, x, i, nb[q])
    tie = 0.0
    for q in range(n_less, n_less + n_tie):
        tie += _rank_1d(s, pos, x, i, nb[q])
    return _weighted(k, n_less, n_tie, less, tie)


@njit(cache=True)
def _sorted_columns(Ct):
    """Sorted values, argsort and positions of each candidate column (1-D fast path)."""
    nc, n = Ct.shape
    cs = np.empty((nc, n))
    co = np.empty((nc, n), np.int64)
    cpos = np.empty((nc, n), np.int64)
    for c in range(nc):
        co[c] = np.argsort(Ct[c], kind="mergesort")
        cs[c] = Ct[c][co[c]]
        cpos[c][co[c]] = np.arange(n)
    return cs, co, cpos


def _sorted_1d(x):
    """(x, sorted x, argsort, position of each point in the sorted order)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    pos = np.empty_like(order)
    pos[order] = np.arange(len(x))
    return x, x[order], order, pos


# ---------------------------------------------------------------------------------------
# Pair kernels (sums of weighted ranks; Delta = 2 * sum / (N^2 k))
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _pair_general(At, Bt, k):
    """Both directions from full rows: the reference all fast paths are tested against."""
    n = At.shape[1]
    da = np.empty(n)
    db = np.empty(n)
    top = np.empty(k)
    nb = np.empty(n, np.int64)
    s_ab = 0.0
    s_ba = 0.0
    for i in range(n):
        _sqdist_row(At, i, da)
        _sqdist_row(Bt, i, db)
        n_less, n_tie = _row_knn(da, i, k, top, nb)
        s_ab += _rank_sum_row(db, i, nb, n_less, n_tie, k)
        n_less, n_tie = _row_knn(db, i, k, top, nb)
        s_ba += _rank_sum_row(da, i, nb, n_less, n_tie, k)
    return s_ab, s_ba


@njit(cache=True)
def _pair_target_1d(At, b, bs, bo, bpos, k):
    """Both directions between a multi-dimensional A and a 1-D target b."""
    n = At.shape[1]
    da = np.empty(n)
    top = np.empty(k)
    nb = np.empty(n, np.int64)
    s_ab = 0.0
    s_ba = 0.0
    for i in range(n):
        _sqdist_row(At, i, da)
        n_less, n_tie = _row_knn(da, i, k, top, nb)
        s_ab += _rank_sum_1d(bs, bpos, b, i, nb, n_less, n_tie, k)
        n_less, n_tie = _knn_1d(bs, bo, bpos, i, k, nb)
        s_ba += _rank_sum_row(da, i, nb, n_less, n_tie, k)
    return s_ab, s_ba


@njit(cache=True)
def _pair_1d(a, as_, ao, apos, b, bs, bo, bpos, k):
    """Both directions between two 1-D spaces: O(N log N) without ties."""
    n = a.shape[0]
    nb = np.empty(n, np.int64)
    s_ab = 0.0
    s_ba = 0.0
    for i in range(n):
        n_less, n_tie = _knn_1d(as_, ao, apos, i, k, nb)
        s_ab += _rank_sum_1d(bs, bpos, b, i, nb, n_less, n_tie, k)
        n_less, n_tie = _knn_1d(bs, bo, bpos, i, k, nb)
        s_ba += _rank_sum_1d(as_, apos, a, i, nb, n_less, n_tie, k)
    return s_ab, s_ba


# ---------------------------------------------------------------------------------------
# Greedy step kernels: base distances shared by all candidates, pruned scans
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _seeds(base, i, vals, idx):
    """The len(vals) points with the smallest base distance (any valid bound needs >= k)."""
    vals[:] = np.inf
    n = base.shape[0]
    last = vals.shape[0] - 1
    for start in range(0, n, _BLOCK):
        if _block_min(base, start) >= vals[last]:
            continue
        for m in range(start, min(start + _BLOCK, n)):
            b = base[m]
            if m != i and b < vals[last]:
                j = last
                while j > 0 and vals[j - 1] > b:
                    vals[j] = vals[j - 1]
                    idx[j] = idx[j - 1]
                    j -= 1
                vals[j] = b
                idx[j] = m
    return min(vals.shape[0], n - 1)


@njit(cache=True)
def _seed_bound(base, x, i, seed_idx, n_seed, top):
    """k-th smallest total over the seeds (k = len(top)): an upper bound on i's k-th
    distance in the space base + x."""
    top[:] = np.inf
    for q in range(n_seed):
        m = seed_idx[q]
        d = x[i] - x[m]
        t = base[m] + d * d
        if t < top[-1]:
            _insert(top, t)
    return top[-1]


@njit(cache=True)
def _make_tiers(base, i, bounds, tiers):
    """Collect the points a scan may need (base <= largest bound) in tiers of growing base.

    Tier cuts are quantiles of the candidates' bounds.  Only the first tier is sorted now;
    the others are sorted when a scan first reaches them (most candidates never do), and
    points beyond the largest bound are never needed at all.
    """
    order, count, cuts, done = tiers
    ranked = np.sort(bounds)
    n_tiers = cuts.shape[0]
    for t in range(n_tiers):
        cuts[t] = ranked[int(_TIER_QUANTILES[t] * (ranked.shape[0] - 1))]
    count[:] = 0
    last = cuts[-1]
    n = base.shape[0]
    for start in range(0, n, _BLOCK):
        if _block_min(base, start) > last:
            continue
        for m in range(start, min(start + _BLOCK, n)):
            b = base[m]
            if b <= last and m != i:
                t = 0
                while b > cuts[t]:
                    t += 1
                order[t, count[t]] = m
                count[t] += 1
    done[:] = False
    _sort_tier(tiers, base, 0)


@njit(cache=True)
def _sort_tier(tiers, base, t):
    order, count, cuts, done = tiers
    if not done[t]:
        seg = order[t, :count[t]]
        seg[:] = seg[np.argsort(base[seg])]
        done[t] = True


@njit(cache=True)
def _new_tiers(n):
    """(order, tier sizes, tier cuts, tier sorted?) scratch for ``_make_tiers``."""
    n_tiers = len(_TIER_QUANTILES)
    return (np.empty((n_tiers, n - 1), np.int64), np.zeros(n_tiers, np.int64),
            np.empty(n_tiers), np.zeros(n_tiers, np.bool_))


@njit(cache=True)
def _tiers_1d(s, order_1d, p, cut, tiers):
    """``_make_tiers`` for a one-column base: the base order is an outward merge from i in
    the column's global sort (the two sides are monotone), so no per-row sort is needed."""
    order, count, cuts, done = tiers
    v = s[p]
    left, right, q = p - 1, p + 1, 0
    while True:
        fl = np.inf
        if left >= 0:
            fl = (v - s[left]) * (v - s[left])
        fr = np.inf
        if right < s.shape[0]:
            fr = (v - s[right]) * (v - s[right])
        if min(fl, fr) > cut:
            break
        if fl <= fr:
            order[0, q] = order_1d[left]
            left -= 1
        else:
            order[0, q] = order_1d[right]
            right += 1
        q += 1
    count[:] = 0
    count[0] = q
    cuts[:] = cut
    done[:] = True


@njit(cache=True)
def _order_scans(base, i, bounds, tiers, bs, bo, bpos):
    """Scan order for row i: the 1-D merge when the base has one column, else tiers."""
    if bs.shape[0] == 1:
        _tiers_1d(bs[0], bo[0], bpos[0, i], bounds.max(), tiers)
    else:
        _make_tiers(base, i, bounds, tiers)


@njit(cache=True)
def _scan_knn(tiers, base, x, i, k, bound, top, buf_idx, buf_val, nb):
    """i's k nearest under base + (x_i - x_m)^2, scanning in base order until base > k-th best.

    Exact: a point with base above the current k-th best total cannot beat or tie it.
    Returns (L, T) with nb like ``_row_knn``.
    """
    order, count, cuts, done = tiers
    top[:] = np.inf
    thr = bound
    n_buf = 0
    xi = x[i]
    for tier in range(cuts.shape[0]):
        if tier > 0 and cuts[tier - 1] >= thr:  # the whole tier lies beyond the k-th best
            break
        _sort_tier(tiers, base, tier)
        for q in range(count[tier]):
            m = order[tier, q]
            b = base[m]
            if b > thr:
                break
            d = xi - x[m]
            t = b + d * d
            if t <= thr:
                buf_idx[n_buf] = m
                buf_val[n_buf] = t
                n_buf += 1
                if t < top[k - 1]:
                    _insert(top, t)
                    thr = min(thr, top[k - 1])
    vk = top[k - 1]
    n_less = 0
    for q in range(n_buf):
        if buf_val[q] < vk:
            nb[n_less] = buf_idx[q]
            n_less += 1
    n_tie = 0
    for q in range(n_buf):
        if buf_val[q] == vk:
            nb[n_less + n_tie] = buf_idx[q]
            n_tie += 1
    return n_less, n_tie


@njit(cache=True)
def _rank_dense(base, CtT, i, j, t, lt, le):
    """Tie-averaged rank of j among i's neighbours in base + candidate c, for every c at once.

    Only points with base below the largest of j's distances t[c] can be closer or tie; over
    them the count is a dense loop across candidates (CtT is (N, candidates)), which
    vectorises - much faster than per-candidate scans when |S| is small and balls are large.
    """
    xi = CtT[i]
    xj = CtT[j]
    for c in range(t.shape[0]):
        d = xi[c] - xj[c]
        t[c] = base[j] + d * d
    reach = t.max()
    lt[:] = 0
    le[:] = 0
    n = base.shape[0]
    for start in range(0, n, _BLOCK):
        if _block_min(base, start) > reach:
            continue
        for m in range(start, min(start + _BLOCK, n)):
            b = base[m]
            if b > reach or m == i:
                continue
            xm = CtT[m]
            for c in range(t.shape[0]):
                d = xi[c] - xm[c]
                total = b + d * d
                lt[c] += total < t[c]
                le[c] += total <= t[c]


@njit(cache=True)
def _supervised_rows(Bt, Ct, p, ps, po, ppos, k, cand_backward, base_backward):
    """One greedy step for one configuration, base = selected columns Bt (|S| >= 1).

    Returns per candidate c: sum for Delta(S+c -> p), and if ``cand_backward`` for
    Delta(p -> S+c); and if ``base_backward`` the sum for Delta(p -> S).
    """
    n = p.shape[0]
    nc = Ct.shape[0]
    fwd = np.zeros(nc)
    bwd = np.zeros(nc)
    bwd_base = 0.0
    base = np.empty(n)
    total = np.empty(n)
    top = np.empty(k)
    nb = np.empty(n, np.int64)
    pnb = np.empty(n, np.int64)
    buf_idx = np.empty(n, np.int64)
    buf_val = np.empty(n)
    seed_val = np.empty(max(_SEEDS, k))
    seed_idx = np.empty(max(_SEEDS, k), np.int64)
    bounds = np.empty(nc)
    tiers = _new_tiers(n)
    bs, bo, bpos = _sorted_columns(Bt if Bt.shape[0] == 1 else Bt[:0])
    for i in range(n):
        _sqdist_row(Bt, i, base)
        p_less, p_tie = 0, 0
        if base_backward or cand_backward:
            p_less, p_tie = _knn_1d(ps, po, ppos, i, k, pnb)
        if base_backward:
            bwd_base += _rank_sum_row(base, i, pnb, p_less, p_tie, k)
        n_seed = _seeds(base, i, seed_val, seed_idx)
        for c in range(nc):
            bounds[c] = _seed_bound(base, Ct[c], i, seed_idx, n_seed, top)
        _order_scans(base, i, bounds, tiers, bs, bo, bpos)
        for c in range(nc):
            n_less, n_tie = _scan_knn(tiers, base, Ct[c], i, k, bounds[c], top,
                                      buf_idx, buf_val, nb)
            fwd[c] += _rank_sum_1d(ps, ppos, p, i, nb, n_less, n_tie, k)
            if cand_backward:  # only for the one-column noise control: O(N) per row is fine
                for m in range(n):
                    d = Ct[c, i] - Ct[c, m]
                    total[m] = base[m] + d * d
                bwd[c] += _rank_sum_row(total, i, pnb, p_less, p_tie, k)
    return fwd, bwd, bwd_base


@njit(cache=True)
def _sqdist_pair(Xt, i, j):
    """One entry of ``_sqdist_row``, summed in the same order (so bit-identical)."""
    out = 0.0
    for s in range(Xt.shape[0]):
        d = Xt[s, i] - Xt[s, j]
        out += d * d
    return out


@njit(cache=True)
def _full_space(Ft, k, n_prefix):
    """Fixed full-space data of the unsupervised search, computed once per configuration.

    Returns i's k nearest with ties in CSR form (ptr, idx, n_less: idx[ptr[i]:ptr[i]+n_less[i]]
    strictly inside, the rest tied at the k-th distance) and ``prefix[i]``, the n_prefix
    smallest full distances of i (others than i), sorted: ranks below prefix[i, -1] are then
    two binary searches instead of a pass over the row.
    """
    n = Ft.shape[1]
    full = np.empty(n)
    top = np.empty(k)
    nb = np.empty(n, np.int64)
    ptr = np.zeros(n + 1, np.int64)
    n_less = np.empty(n, np.int64)
    idx = np.empty(2 * k * n, np.int64)
    prefix = np.empty((n, n_prefix))
    for i in range(n):
        _sqdist_row(Ft, i, full)
        n_less[i], n_tie = _row_knn(full, i, k, top, nb)
        if ptr[i] + n_less[i] + n_tie > idx.shape[0]:  # heavy ties: grow the CSR store
            idx = np.concatenate((idx, np.empty(idx.shape[0] + n_less[i] + n_tie, np.int64)))
        idx[ptr[i]:ptr[i] + n_less[i] + n_tie] = nb[:n_less[i] + n_tie]
        ptr[i + 1] = ptr[i] + n_less[i] + n_tie
        prefix[i] = np.inf
        for m in range(n):
            if m != i and full[m] < prefix[i, -1]:
                _insert(prefix[i], full[m])
    return ptr, idx[:ptr[n]], n_less, prefix


@njit(cache=True)
def _answer_queries(Ft, i, prefix_i, queries, n_q, row_less, row_tie, full):
    """Add the full-space ranks of i's queried neighbours q_j to the per-candidate row sums.

    Distances below the stored prefix are ranked by binary search; the rest ("late") by one
    dense pass over i's full row, computed only if some query needs it.
    """
    q_j, q_c, q_tie = queries
    last = prefix_i[-1]
    t = np.empty(n_q)
    late = np.empty(n_q, np.int64)
    n_late = 0
    for q in range(n_q):
        t_q = _sqdist_pair(Ft, i, q_j[q])
        if t_q < last:  # every value <= t_q is inside the prefix
            lt = np.searchsorted(prefix_i, t_q, side="left")
            le = np.searchsorted(prefix_i, t_q, side="right")
            _add_rank(q_c[q], q_tie[q], 1.0 + lt + 0.5 * (le - lt - 1), row_less, row_tie)
        else:
            late[n_late] = q
            t[n_late] = t_q
            n_late += 1
    if n_late == 0:
        return
    _sqdist_row(Ft, i, full)
    full[i] = np.inf  # i is no neighbour of itself
    lt = np.zeros(n_late, np.int64)
    le = np.zeros(n_late, np.int64)
    for m in range(full.shape[0]):
        f = full[m]
        for r in range(n_late):
            lt[r] += f < t[r]
            le[r] += f <= t[r]
    for r in range(n_late):
        q = late[r]
        _add_rank(q_c[q], q_tie[q], 1.0 + lt[r] + 0.5 * (le[r] - lt[r] - 1), row_less, row_tie)


@njit(cache=True)
def _add_rank(c, tie, r, row_less, row_tie):
    if tie:
        row_tie[c] += r
    else:
        row_less[c] += r


@njit(cache=True)
def _ask(nb, n_less, n_tie, c, queries, n_q):
    """Queue the full-space rank queries of candidate c's neighbours (growing the queue under
    heavy ties); returns the queue and its new length."""
    q_j, q_c, q_tie = queries
    need = n_q + n_less + n_tie
    if need > q_j.shape[0]:
        size = max(need, 2 * q_j.shape[0])
        q_j = np.concatenate((q_j, np.empty(size - q_j.shape[0], q_j.dtype)))
        q_c = np.concatenate((q_c, np.empty(size - q_c.shape[0], q_c.dtype)))
        q_tie = np.concatenate((q_tie, np.empty(size - q_tie.shape[0], q_tie.dtype)))
    for q in range(n_less + n_tie):
        q_j[n_q] = nb[q]
        q_c[n_q] = c
        q_tie[n_q] = q >= n_less
        n_q += 1
    return (q_j, q_c, q_tie), n_q


@njit(cache=True)
def _unsupervised_rows(Ft, Bt, Ct, k, f_ptr, f_idx, f_less, prefix):
    """One unsupervised greedy step for one configuration, base = selected columns Bt.

    With |S| = 0 (Bt has no rows) every candidate alone is a 1-D space: sorted fast path.
    Returns per candidate c the sums for Delta(S+c -> full) and Delta(full -> S+c).
    """
    n = Ft.shape[1]
    nc = Ct.shape[0]
    one_d = Bt.shape[0] == 0
    fwd = np.zeros(nc)
    bwd = np.zeros(nc)
    full = np.empty(n)
    base = np.zeros(n)
    top = np.empty(k)
    nb = np.empty(n, np.int64)
    buf_idx = np.empty(n, np.int64)
    buf_val = np.empty(n)
    seed_val = np.empty(max(_SEEDS, k))
    seed_idx = np.empty(max(_SEEDS, k), np.int64)
    bounds = np.empty(nc)
    tiers = _new_tiers(n)
    n_less = np.empty(nc, np.int64)
    n_tie = np.empty(nc, np.int64)
    row_less = np.empty(nc)
    row_tie = np.empty(nc)
    t = np.empty(nc)
    lt = np.empty(nc, np.int64)
    le = np.empty(nc, np.int64)
    queries = (np.empty(2 * nc * k, np.int64), np.empty(2 * nc * k, np.int64),
               np.empty(2 * nc * k, np.bool_))
    CtT = np.ascontiguousarray(Ct.T)
    cs, co, cpos = _sorted_columns(Ct if one_d else Ct[:0])
    bs, bo, bpos = _sorted_columns(Bt if Bt.shape[0] == 1 else Bt[:0])
    for i in range(n):
        fnb = f_idx[f_ptr[i]:f_ptr[i + 1]]
        fl = f_less[i]
        ft = fnb.shape[0] - fl
        # Delta(full -> S+c): ranks of i's full-space neighbours in every S+c.
        row_less[:] = 0.0
        row_tie[:] = 0.0
        for c in range(nc):
            if one_d:
                bwd[c] += _rank_sum_1d(cs[c], cpos[c], Ct[c], i, fnb, fl, ft, k)
        if not one_d:
            _sqdist_row(Bt, i, base)
            for q in range(fnb.shape[0]):
                _rank_dense(base, CtT, i, fnb[q], t, lt, le)
                for c in range(nc):
                    _add_rank(c, q >= fl, 1.0 + lt[c] + 0.5 * (le[c] - lt[c] - 1),
                              row_less, row_tie)
            for c in range(nc):
                bwd[c] += _weighted(k, fl, ft, row_less[c], row_tie[c])
            n_seed = _seeds(base, i, seed_val, seed_idx)
            for c in range(nc):
                bounds[c] = _seed_bound(base, Ct[c], i, seed_idx, n_seed, top)
            _order_scans(base, i, bounds, tiers, bs, bo, bpos)
        # Delta(S+c -> full): i's nearest in every S+c, then their ranks in the full space.
        n_q = 0
        for c in range(nc):
            if one_d:
                n_less[c], n_tie[c] = _knn_1d(cs[c], co[c], cpos[c], i, k, nb)
            else:
                n_less[c], n_tie[c] = _scan_knn(tiers, base, Ct[c], i, k, bounds[c], top,
                                                buf_idx, buf_val, nb)
            queries, n_q = _ask(nb, n_less[c], n_tie[c], c, queries, n_q)
        row_less[:] = 0.0
        row_tie[:] = 0.0
        _answer_queries(Ft, i, prefix[i], queries, n_q, row_less, row_tie, full)
        for c in range(nc):
            fwd[c] += _weighted(k, n_less[c], n_tie[c], row_less[c], row_tie[c])
    return fwd, bwd


# ---------------------------------------------------------------------------------------
# Input checks (one-line InputError each)
# ---------------------------------------------------------------------------------------

def _column(j, names=None):
    return f"'{names[j]}' (column {j})" if names is not None else f"column {j}"


def _points(A, what):
    """A as a float64 (N, d) array of finite values with N >= 3."""
    try:
        A = np.asarray(A, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a numeric array") from None
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[1] == 0:
        raise InputError(f"{what}: expected an (N,) or (N, d) array, got shape {A.shape}")
    if A.shape[0] < 3:
        raise InputError(f"{what}: needs at least 3 points, got {A.shape[0]}")
    finite = np.isfinite(A).all(axis=0)
    if not finite.all():
        raise InputError(f"{what}: {_column(int(np.argmin(finite)))} contains NaN or inf")
    return A


def _not_constant(A, what, names=None):
    constant = np.ptp(A, axis=0) == 0
    if constant.any():
        raise InputError(f"{what}: {_column(int(np.argmax(constant)), names)} is constant")


def _same_length(a, b, what):
    if len(a) != len(b):
        raise InputError(f"{what}: {len(a)} points against {len(b)}; lengths must match")


def _check_k(k, n, what):
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise InputError(f"{what}: k must be an integer with 1 <= k < N = {n}, got {k!r}")


def _configurations(X_list, what):
    """Standardised feature matrices, one per configuration, all with the same M columns."""
    if isinstance(X_list, np.ndarray) and X_list.ndim == 2:
        X_list = [X_list]
    Xs = [_points(X, f"{what}[{c}]") for c, X in enumerate(X_list)]
    if not Xs:
        raise InputError(f"{what}: no configurations given")
    for c, X in enumerate(Xs):
        _not_constant(X, f"{what}[{c}]")
        if X.shape[1] != Xs[0].shape[1]:
            raise InputError(f"{what}[{c}]: {X.shape[1]} features, but {what}[0] has "
                             f"{Xs[0].shape[1]}")
    return Xs


def _targets(p_list, Xs, what):
    if isinstance(p_list, np.ndarray) and p_list.ndim == 1:
        p_list = [p_list]
    if len(p_list) != len(Xs):
        raise InputError(f"{what}: {len(p_list)} targets for {len(Xs)} configurations")
    ps = []
    for c, (p, X) in enumerate(zip(p_list, Xs)):
        p = _points(p, f"{what}[{c}]")
        if p.shape[1] != 1:
            raise InputError(f"{what}[{c}]: expected a 1-D target, got shape {p.shape}")
        _same_length(X, p, f"{what}[{c}]")
        _not_constant(p, f"{what}[{c}]")
        ps.append(p[:, 0])
    return ps


def _pool(candidates, m, d_max):
    pool = list(range(m)) if candidates is None else sorted({int(c) for c in candidates})
    if not pool or pool[0] < 0 or pool[-1] >= m:
        raise InputError(f"candidates: feature indices must lie in [0, {m}), got {candidates!r}")
    if not isinstance(d_max, (int, np.integer)) or not 1 <= d_max <= len(pool):
        raise InputError(f"d_max: must be an integer in [1, {len(pool)}] (the number of "
                         f"candidate features), got {d_max!r}")
    return pool


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------

def standardise(X, names=None, label=""):
    """Zero mean, unit variance per column (population std); shape is kept.

    Raises InputError naming the column (by name if ``names`` is given) for NaN/inf or a
    constant column (peak-to-peak 0, or std below 1e-12 of |mean|: rounding noise only).
    """
    prefix = f"{label}: " if label else "features: "
    X = np.asarray(X, dtype=np.float64)
    X2 = X.reshape(len(X), -1)
    finite = np.isfinite(X2).all(axis=0)
    if not finite.all():
        raise InputError(f"{prefix}feature {_column(int(np.argmin(finite)), names)} "
                         "contains NaN or inf")
    mean = X2.mean(axis=0)
    std = X2.std(axis=0)
    constant = (np.ptp(X2, axis=0) == 0) | (std <= 1e-12 * np.abs(mean))
    if constant.any():
        raise InputError(f"{prefix}feature {_column(int(np.argmax(constant)), names)} "
                         "is constant")
    return ((X2 - mean) / std).reshape(X.shape)


def imbalance_pair(A, B, k=1):
    """(Delta(A -> B), Delta(B -> A)) from one pass over the rows; A, B shape (N, d) or (N,).

    No standardisation is done here.  A 1-D side uses the sorted fast path.
    """
    A = _points(A, "imbalance: A")
    B = _points(B, "imbalance: B")
    _same_length(A, B, "imbalance: A and B")
    n = len(A)
    _check_k(k, n, "imbalance")
    if A.shape[1] == 1 and B.shape[1] == 1:
        s_ab, s_ba = _pair_1d(*_sorted_1d(A[:, 0]), *_sorted_1d(B[:, 0]), k)
    elif B.shape[1] == 1:
        s_ab, s_ba = _pair_target_1d(np.ascontiguousarray(A.T), *_sorted_1d(B[:, 0]), k)
    elif A.shape[1] == 1:
        s_ba, s_ab = _pair_target_1d(np.ascontiguousarray(B.T), *_sorted_1d(A[:, 0]), k)
    else:
        s_ab, s_ba = _pair_general(np.ascontiguousarray(A.T), np.ascontiguousarray(B.T), k)
    scale = 2.0 / (n * n * k)
    return scale * s_ab, scale * s_ba


def imbalance(A, B, k=1):
    """Delta(A -> B): how badly A's nearest neighbours predict B's (0 perfect, ~1 none)."""
    return imbalance_pair(A, B, k)[0]


def single_feature_table(X, p, k=1):
    """Per feature of a standardised (N, M) X: Delta(X_m -> p), Delta(p -> X_m), Pearson."""
    X = _points(X, "X")
    _not_constant(X, "X")
    p = _targets([p], [X], "p")[0]
    _check_k(k, len(p), "single_feature_table")
    target = _sorted_1d(p)
    pairs = np.array([_pair_1d(*_sorted_1d(X[:, m]), *target, k) for m in range(X.shape[1])])
    pairs *= 2.0 / (len(p) ** 2 * k)
    xs = (X - X.mean(axis=0)) / X.std(axis=0)
    pearson = xs.T @ ((p - p.mean()) / p.std()) / len(p)
    return {"delta_x_to_p": pairs[:, 0], "delta_p_to_x": pairs[:, 1], "pearson": pearson}


class SerialMapper:
    """The default mapper: every work item on this process, in index order.

    A distributor (e.g. ``mpi_glass.parallel.Distributor``) offers the same ``map`` with the
    indices spread over ranks and the results allgathered; its ``size`` sets the block count.
    """

    size = 1

    def map(self, fn, n):
        return [fn(i) for i in range(n)]


@dataclass
class GreedyResult:
    """Outcome of a greedy selection; C configurations, d_max steps (row d-1: d features).

    ``delta_forward[d-1, c]`` is Delta(X_d -> target) and ``delta_backward[d-1, c]`` is
    Delta(target -> X_d), the target being the propensity p (supervised) or the full feature
    set X_full (unsupervised): "forward" always asks how well the selected X_d predicts the
    target.  ``objective[d-1]`` is the quantity minimised at step d, averaged over
    configurations: mean Delta(X_d -> p) (supervised) or mean
    (Delta(X_full -> X_d) + Delta(X_d -> X_full)) / sqrt(2) (unsupervised).
    ``noise_forward[c]`` / ``noise_backward[c]`` (supervised only): Delta((X_dmax, g) -> p)
    and Delta(p -> (X_dmax, g)) with g a unit-variance Gaussian noise column.
    """

    kind: str
    selected: list
    delta_forward: np.ndarray
    delta_backward: np.ndarray
    objective: np.ndarray
    noise_forward: np.ndarray = field(default=None)
    noise_backward: np.ndarray = field(default=None)

    def as_dict(self):
        """Plain lists and floats (for JSON reports)."""
        return {key: (value.tolist() if isinstance(value, np.ndarray) else value)
                for key, value in asdict(self).items()}


def _n_blocks(mapper, n_conf, n_cand):
    """Candidate blocks per configuration so that C x blocks items split evenly over ranks.

    Only speed depends on it: a candidate's Delta does not depend on its block mates.
    """
    size = max(1, int(getattr(mapper, "size", 1)))
    return max(1, min(n_cand, size // math.gcd(n_conf, size)))


def _run_step(mapper, n_conf, cands, item):
    """Evaluate ``item(c, block, first_block)`` over configurations x candidate blocks.

    Returns the per-item results regrouped as [configuration][block].
    """
    blocks = _n_blocks(mapper, n_conf, len(cands))
    chunks = np.array_split(np.asarray(cands, dtype=np.int64), blocks)

    def fn(index):
        c, b = divmod(index, blocks)
        return item(c, chunks[b], b == 0)

    results = mapper.map(fn, n_conf * blocks)
    return [results[c * blocks:(c + 1) * blocks] for c in range(n_conf)]


def supervised_greedy(X_list, p_list, d_max=15, mapper=None, noise_seed=0, candidates=None,
                      k=1):
    """Greedy selection minimising the configuration mean of Delta(X_d -> p) (paper Sec. III B).

    X_list: standardised (N_c, M) arrays, one per configuration; p_list: matching (N_c,)
    targets.  Each step adds the candidate with the lowest mean Delta(X_d -> p) (ties: lowest
    feature index).  A final control pass appends a Gaussian noise column g_c drawn from
    ``default_rng(SeedSequence([noise_seed, c]))``.  See ``GreedyResult`` for the fields.
    """
    mapper = mapper or SerialMapper()
    Xs = _configurations(X_list, "X_list")
    ps = _targets(p_list, Xs, "p_list")
    pool = _pool(candidates, Xs[0].shape[1], d_max)
    for c, X in enumerate(Xs):
        _check_k(k, len(X), f"X_list[{c}]")
    Xts = [np.ascontiguousarray(X.T) for X in Xs]
    targets = [_sorted_1d(p) for p in ps]
    scales = [2.0 / (len(p) ** 2 * k) for p in ps]
    n_conf = len(Xs)
    selected = []

    def item(c, cands, first, noise=None):
        Ct = Xts[c][cands] if noise is None else noise[None, :]
        if not selected:  # each candidate alone: a 1-D space
            fwd = np.array([_pair_1d(*_sorted_1d(x), *targets[c], k)[0] for x in Ct])
            return scales[c] * fwd, None, None
        fwd, bwd, bwd_base = _supervised_rows(Xts[c][selected], Ct, *targets[c], k,
                                              noise is not None, first)
        return scales[c] * fwd, scales[c] * bwd, scales[c] * bwd_base if first else None

    forward = np.empty((d_max, n_conf))
    backward = np.empty((d_max, n_conf))
    for step in range(d_max):
        left = [f for f in pool if f not in selected]
        grouped = _run_step(mapper, n_conf, left, item)
        fwd = np.array([np.concatenate([r[0] for r in blocks]) for blocks in grouped])
        if step > 0:  # this step's base is X_{step}: its backward term came for free
            backward[step - 1] = [blocks[0][2] for blocks in grouped]
        best = int(np.argmin(fwd.mean(axis=0)))
        selected.append(left[best])
        forward[step] = fwd[:, best]

    noises = [np.random.default_rng(np.random.SeedSequence([noise_seed, c]))
              .standard_normal(len(X)) for c, X in enumerate(Xs)]
    control = mapper.map(lambda c: item(c, None, True, noises[c]), n_conf)
    backward[d_max - 1] = [r[2] for r in control]
    return GreedyResult("supervised", [int(f) for f in selected], forward, backward,
                        forward.mean(axis=1),
                        noise_forward=np.array([r[0][0] for r in control]),
                        noise_backward=np.array([r[1][0] for r in control]))


def unsupervised_greedy(X_list, d_max=15, mapper=None, candidates=None, k=1):
    """Greedy selection minimising the configuration mean of the symmetrised imbalance
    (Delta(X_full -> X_d) + Delta(X_d -> X_full)) / sqrt(2) (paper Sec. III C, Eq. 16).

    X_full is every column of each standardised (N_c, M) array; ``candidates`` only restricts
    which columns may be selected.  delta_forward is Delta(X_d -> X_full), delta_backward is
    Delta(X_full -> X_d).
    """
    mapper = mapper or SerialMapper()
    Xs = _configurations(X_list, "X_list")
    pool = _pool(candidates, Xs[0].shape[1], d_max)
    for c, X in enumerate(Xs):
        _check_k(k, len(X), f"X_list[{c}]")
    Xts = [np.ascontiguousarray(X.T) for X in Xs]
    scales = [2.0 / (len(X) ** 2 * k) for X in Xs]
    n_conf = len(Xs)
    selected = []

    # Full-space neighbours and sorted distance prefixes never change: one item per config.
    spaces = mapper.map(lambda c: _full_space(Xts[c], k, min(_PREFIX, len(Xs[c]) - 1)),
                        n_conf)

    def item(c, cands, first):
        Ft = Xts[c]
        fwd, bwd = _unsupervised_rows(Ft, Ft[selected], Ft[cands], k, *spaces[c])
        return scales[c] * fwd, scales[c] * bwd

    forward = np.empty((d_max, n_conf))
    backward = np.empty((d_max, n_conf))
    objective = np.empty(d_max)
    for step in range(d_max):
        left = [f for f in pool if f not in selected]
        grouped = _run_step(mapper, n_conf, left, item)
        fwd = np.array([np.concatenate([r[0] for r in blocks]) for blocks in grouped])
        bwd = np.array([np.concatenate([r[1] for r in blocks]) for blocks in grouped])
        symmetric = ((fwd + bwd) / math.sqrt(2.0)).mean(axis=0)
        best = int(np.argmin(symmetric))
        selected.append(left[best])
        forward[step], backward[step] = fwd[:, best], bwd[:, best]
        objective[step] = symmetric[best]
    return GreedyResult("unsupervised", [int(f) for f in selected], forward, backward,
                        objective)


# ---------------------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------------------

def synthetic_features(n, m, seed=0, families=6, rho=0.8):
    """Standardised toy pool shaped like ours: ``families`` blocks of columns correlated
    along the block (AR(1), like one descriptor at growing coarse-graining lengths), and a
    propensity-like p built from three of them plus noise.  Returns (X, p, informative)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m))
    X = np.empty((n, m))
    per = max(1, m // families)
    for col in range(m):
        fresh = col % per == 0
        X[:, col] = z[:, col] if fresh else rho * X[:, col - 1] + math.sqrt(1 - rho**2) * z[:, col]
    informative = [min(m - 1, 1), min(m - 1, per + 2), min(m - 1, 2 * per + 4)]
    w = np.array([1.0, 0.7, -0.5])
    p = X[:, informative] @ w[:len(informative)] + 0.5 * rng.standard_normal(n)
    return standardise(X), standardise(p), informative


def benchmark(n=4000, m=60, d=15, seed=0):
    """Seconds for one Delta pair and both greedy selections (one configuration, this
    process), plus peak resident memory; numba compilation is excluded by a warm-up."""
    Xw, pw, _ = synthetic_features(30, 6, seed)
    imbalance_pair(Xw[:, :2], pw)
    imbalance_pair(Xw[:, :2], Xw)
    supervised_greedy([Xw], [pw], d_max=3)
    unsupervised_greedy([Xw], d_max=3)

    X, p, _ = synthetic_features(n, m, seed)
    d = min(d, m)
    result = {"n": n, "m": m, "d": d}
    start = time.perf_counter()
    imbalance_pair(X[:, :d], p)
    result["pair_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    supervised_greedy([X], [p], d_max=d)
    result["supervised_greedy_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    unsupervised_greedy([X], d_max=d)
    result["unsupervised_greedy_seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result
