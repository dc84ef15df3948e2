"""Exact information-imbalance kernels: row helpers, 1-D fast paths and pair kernels.

Nothing N x N is ever built: the kernels stream the rows i, so memory is O(N M).  Squared
distances are accumulated column by column in one fixed order (``_sqdist_row``,
``_sqdist_pair``), so "base + candidate term" in the greedy search is bit-identical to the
distance on the column subset, and every code path sees the same ties.

* General kernel (``_pair_rows`` without a sorted B, the reference for all fast paths): per
  row, distances in A and B; i's k nearest (with ties) in one, their ranks in the other by
  counting over the row (from the sorted row when a tie group is large).
* 1-D spaces (the propensity, a single feature): one sort.  On each side of i the computed
  (x_i - x_m)^2 is monotone along the sorted order (rounding is monotone), so neighbours and
  exact tie-aware rank counts are binary searches: O(log N) per rank.

Kernels return sums of weighted ranks; Delta = 2 * sum / (N^2 k) (see ``pairs``).
"""
import numpy as np
from numba import njit

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


@njit(cache=True, inline="always")
def _side_gaps(s, v, left, right):
    """Squared gaps from v to s[left] and to s[right] (inf past either end of the sorted s):
    the next candidates of a 1-D walk outward from v's position."""
    fl = np.inf
    if left >= 0:
        fl = (v - s[left]) * (v - s[left])
    fr = np.inf
    if right < s.shape[0]:
        fr = (v - s[right]) * (v - s[right])
    return fl, fr


@njit(cache=True)
def _knn_1d(s, order, pos, i, k, nb):
    """i's k nearest in 1-D with ties, as (L, T) and nb like ``_row_knn``."""
    p = pos[i]
    v = s[p]
    left, right, vk = p - 1, p + 1, 0.0
    for _ in range(k):  # merge the two monotone sides: the k-th value picked is the k-th distance
        fl, fr = _side_gaps(s, v, left, right)
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
def _pair_rows(At, Bt, k, b_sorted=None):
    """Both directions from A's full rows.

    Without ``b_sorted`` B's side also comes from full rows: the general kernel, the reference
    all fast paths are tested against.  With ``b_sorted`` = (sorted b, argsort, positions) of a
    1-D B (``Bt`` one row, b), B's side is the 1-D fast path.  ``b_sorted is None`` is decided
    at compile time, so each variant is its own specialisation with no branch in the loop.
    """
    n = At.shape[1]
    da = np.empty(n)
    db = np.empty(n)
    top = np.empty(k)
    nb = np.empty(n, np.int64)
    s_ab = 0.0
    s_ba = 0.0
    for i in range(n):
        _sqdist_row(At, i, da)
        n_less, n_tie = _row_knn(da, i, k, top, nb)
        if b_sorted is None:
            _sqdist_row(Bt, i, db)
            s_ab += _rank_sum_row(db, i, nb, n_less, n_tie, k)
            n_less, n_tie = _row_knn(db, i, k, top, nb)
        else:
            bs, bo, bpos = b_sorted
            s_ab += _rank_sum_1d(bs, bpos, Bt[0], i, nb, n_less, n_tie, k)
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


@njit(cache=True)
def _sqdist_pair(Xt, i, j):
    """One entry of ``_sqdist_row``, summed in the same order (so bit-identical)."""
    out = 0.0
    for s in range(Xt.shape[0]):
        d = Xt[s, i] - Xt[s, j]
        out += d * d
    return out
