"""Greedy feature selection by information imbalance (paper Sec. III B-C): the orchestration.

Each step evaluates every remaining candidate on every configuration with the step kernels
(``steps``) and keeps the one with the best configuration-mean objective.  Parallel work goes
through a ``mapper`` (``mpi_glass.mapper``: ``map(fn, n) -> [fn(i) for i in range(n)]``): a
step's work items are (configuration, candidate block) pairs, each a pure function of its
index whose per-candidate results do not depend on the block composition, so every rank
count gives identical selections.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError
from ..mapper import SerialMapper
from ..validation import check_feature_sets, check_k, check_targets
from .kernels import _pair_1d, _sorted_1d
from .steps import _full_space, _supervised_rows, _unsupervised_rows

__all__ = ["GreedyResult", "supervised_greedy", "unsupervised_greedy"]

#: Sorted smallest full-space distances kept per point for the unsupervised rank queries.
_PREFIX = 64


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

    Parameters
    ----------
    X_list : list of array_like, each (N_c, M)
        Standardised features, one matrix per configuration (one 2-D array: one
        configuration).
    p_list : list of array_like, each (N_c,)
        The matching targets (propensities).
    d_max : int
        Steps: features selected, 1 <= d_max <= number of candidates.
    mapper : object with ``map(fn, n)``, optional
        Spreads the work items (default ``SerialMapper``; ``parallel.Distributor`` under MPI).
    noise_seed : int
        The control column g_c is ``default_rng(SeedSequence([noise_seed, c]))``'s normals.
    candidates : iterable of int, optional
        Columns that may be selected (default all).
    k : int
        Nearest neighbours in Delta.

    Returns
    -------
    GreedyResult
        Each step adds the candidate with the lowest mean Delta(X_d -> p) (ties: lowest
        feature index); a final pass appends the Gaussian noise control.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 4))
    >>> p = X[:, 2] + 0.1 * rng.standard_normal(200)
    >>> supervised_greedy([X], [p], d_max=2).selected[0]
    2
    """
    mapper = mapper or SerialMapper()
    Xs = check_feature_sets(X_list, "X_list")
    ps = check_targets(p_list, Xs, "p_list")
    pool = _pool(candidates, Xs[0].shape[1], d_max)
    for c, X in enumerate(Xs):
        check_k(k, len(X), f"X_list[{c}]")
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

    Parameters
    ----------
    X_list : list of array_like, each (N_c, M)
        Standardised features, one matrix per configuration; X_full is all M columns.
    d_max, mapper, candidates, k
        As in ``supervised_greedy``; ``candidates`` only restricts which columns may be
        selected, never X_full.

    Returns
    -------
    GreedyResult
        ``delta_forward`` is Delta(X_d -> X_full), ``delta_backward`` Delta(X_full -> X_d).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.standard_normal((200, 2))
    >>> X = np.column_stack([z[:, 0], z[:, 0], z[:, 1]])   # column 1 repeats column 0
    >>> sorted(unsupervised_greedy([X], d_max=2).selected)
    [0, 2]
    """
    mapper = mapper or SerialMapper()
    Xs = check_feature_sets(X_list, "X_list")
    pool = _pool(candidates, Xs[0].shape[1], d_max)
    for c, X in enumerate(Xs):
        check_k(k, len(X), f"X_list[{c}]")
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


def _pool(candidates, m, d_max):
    pool = list(range(m)) if candidates is None else sorted({int(c) for c in candidates})
    if not pool or pool[0] < 0 or pool[-1] >= m:
        raise InputError(f"candidates: feature indices must lie in [0, {m}), got {candidates!r}")
    if not isinstance(d_max, (int, np.integer)) or not 1 <= d_max <= len(pool):
        raise InputError(f"d_max: must be an integer in [1, {len(pool)}] (the number of "
                         f"candidate features), got {d_max!r}")
    return pool
