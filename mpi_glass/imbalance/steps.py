"""Greedy-step kernels: one step of the supervised or unsupervised search, pruned and exact.

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
"""
import numpy as np
from numba import njit

from .kernels import (_BLOCK, _block_min, _insert, _knn_1d, _rank_sum_1d, _rank_sum_row, _row_knn,
                      _side_gaps, _sorted_columns, _sqdist_pair, _sqdist_row, _weighted)

#: Points with the smallest base distance used to bound each candidate's neighbour distance.
_SEEDS = 8
#: Quantiles of the candidates' bounds that cut the scan order into lazily sorted tiers.
_TIER_QUANTILES = (0.5, 0.75, 0.9, 1.0)


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


@njit(cache=True, inline="always")
def _next_within(base, limit, i, m):
    """The first point m' >= m other than i with base[m'] <= limit (len(base) if none).

    Whole blocks whose minimum exceeds the limit are skipped at once (``_block_min``): few
    points qualify.  Inlined, so the callers' loops compile as if written out (measured:
    greedy steps within 1.3 % of the two written-out loops it replaces, ``bench imbalance``
    N = 4000, M = 60, d = 15, CPU time, inside the run-to-run noise).
    """
    n = base.shape[0]
    while m < n:
        if m % _BLOCK == 0:
            while m < n and _block_min(base, m) > limit:
                m += _BLOCK
            if m >= n:
                break
        end = min(m + _BLOCK - m % _BLOCK, n)
        while m < end:
            if base[m] <= limit and m != i:
                return m
            m += 1
    return n


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
    m = _next_within(base, last, i, 0)
    while m < n:
        b = base[m]
        t = 0
        while b > cuts[t]:
            t += 1
        order[t, count[t]] = m
        count[t] += 1
        m = _next_within(base, last, i, m + 1)
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
        fl, fr = _side_gaps(s, v, left, right)
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
    m = _next_within(base, reach, i, 0)
    while m < n:
        b = base[m]
        xm = CtT[m]
        for c in range(t.shape[0]):
            d = xi[c] - xm[c]
            total = b + d * d
            lt[c] += total < t[c]
            le[c] += total <= t[c]
        m = _next_within(base, reach, i, m + 1)


@njit(cache=True)
def _new_scan(n, k, nc, Bt):
    """Scratch of one step's pruned scans, shared by all rows and candidates: (top, nb,
    buf_idx, buf_val, seed_val, seed_idx, bounds, tiers, bs, bo, bpos), the last three the
    sorted base column when the base has one (``_order_scans``)."""
    seeds = max(_SEEDS, k)
    bs, bo, bpos = _sorted_columns(Bt if Bt.shape[0] == 1 else Bt[:0])
    return (np.empty(k), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n),
            np.empty(seeds), np.empty(seeds, np.int64), np.empty(nc), _new_tiers(n),
            bs, bo, bpos)


@njit(cache=True, inline="always")
def _plan_scans(scan, base, Ct, i):
    """Bound every candidate's k-th distance in row i by the seeds; lay out the scan order."""
    top, _, _, _, seed_val, seed_idx, bounds, tiers, bs, bo, bpos = scan
    n_seed = _seeds(base, i, seed_val, seed_idx)
    for c in range(Ct.shape[0]):
        bounds[c] = _seed_bound(base, Ct[c], i, seed_idx, n_seed, top)
    _order_scans(base, i, bounds, tiers, bs, bo, bpos)


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
    pnb = np.empty(n, np.int64)
    scan = _new_scan(n, k, nc, Bt)
    top, nb, buf_idx, buf_val, _, _, bounds, tiers, _, _, _ = scan
    for i in range(n):
        _sqdist_row(Bt, i, base)
        p_less, p_tie = 0, 0
        if base_backward or cand_backward:
            p_less, p_tie = _knn_1d(ps, po, ppos, i, k, pnb)
        if base_backward:
            bwd_base += _rank_sum_row(base, i, pnb, p_less, p_tie, k)
        _plan_scans(scan, base, Ct, i)
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
    scan = _new_scan(n, k, nc, Bt)
    top, nb, buf_idx, buf_val, _, _, bounds, tiers, _, _, _ = scan
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
            _plan_scans(scan, base, Ct, i)
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
