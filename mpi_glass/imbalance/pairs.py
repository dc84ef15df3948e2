"""Information imbalance of two spaces, and the per-feature table (public functions).

Delta(A -> B) = 2 / (N^2 k) * sum_i sum_{j in kNN_A(i)} r^B_ij, ties broken uniformly at random
in expectation (see the package docstring).  These wrappers validate their input, pick the
fastest exact kernel of ``kernels`` for the shapes given and scale the rank sums.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..validation import (check_consistent_length, check_k, check_not_constant, check_points,
                          check_targets, column_label)
from .kernels import _pair_1d, _pair_rows, _sorted_1d

__all__ = ["standardise", "imbalance_pair", "imbalance", "single_feature_table"]


def standardise(X, names=None, label=""):
    """Zero mean, unit variance per column (population standard deviation).

    Parameters
    ----------
    X : array_like, shape (N,) or (N, M)
    names : sequence of str, optional
        Column names, used in error messages.
    label : str
        Prefix of error messages (default "features").

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``X``.

    Raises
    ------
    InputError
        Naming the column, for NaN/inf or a constant column (peak-to-peak 0, or standard
        deviation below 1e-12 of |mean|: rounding noise only).

    Examples
    --------
    >>> standardise([1.0, 2.0, 3.0]).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """
    prefix = f"{label}: " if label else "features: "
    X = np.asarray(X, dtype=np.float64)
    X2 = X.reshape(len(X), -1)
    finite = np.isfinite(X2).all(axis=0)
    if not finite.all():
        raise InputError(f"{prefix}feature {column_label(int(np.argmin(finite)), names)} "
                         "contains NaN or inf")
    mean = X2.mean(axis=0)
    std = X2.std(axis=0)
    constant = (np.ptp(X2, axis=0) == 0) | (std <= 1e-12 * np.abs(mean))
    if constant.any():
        raise InputError(f"{prefix}feature {column_label(int(np.argmax(constant)), names)} "
                         "is constant")
    return ((X2 - mean) / std).reshape(X.shape)


def imbalance_pair(A, B, k=1):
    """Both information imbalances, Delta(A -> B) and Delta(B -> A), from one pass over rows.

    Parameters
    ----------
    A, B : array_like, shape (N,) or (N, d)
        The same N points in two spaces (Euclidean distances).  Not standardised here.
    k : int
        Nearest neighbours per point, 1 <= k < N.

    Returns
    -------
    (float, float)
        Delta(A -> B), Delta(B -> A): about 0 when one space predicts the other's
        neighbourhoods, about 1 when it says nothing about them.

    Examples
    --------
    >>> x = np.arange(100.0) ** 1.5        # distinct gaps: no ties
    >>> imbalance_pair(x, x)               # same neighbours in both spaces: the minimum, 2 / N
    (0.02, 0.02)
    """
    A = check_points(A, "imbalance: A")
    B = check_points(B, "imbalance: B")
    check_consistent_length(A, B, "imbalance: A and B")
    n = len(A)
    check_k(k, n, "imbalance")
    if A.shape[1] == 1 and B.shape[1] == 1:
        s_ab, s_ba = _pair_1d(*_sorted_1d(A[:, 0]), *_sorted_1d(B[:, 0]), k)
    elif B.shape[1] == 1:
        s_ab, s_ba = _pair_rows(np.ascontiguousarray(A.T), B.T.copy(), k, _sorted_1d(B[:, 0])[1:])
    elif A.shape[1] == 1:
        s_ba, s_ab = _pair_rows(np.ascontiguousarray(B.T), A.T.copy(), k, _sorted_1d(A[:, 0])[1:])
    else:
        s_ab, s_ba = _pair_rows(np.ascontiguousarray(A.T), np.ascontiguousarray(B.T), k)
    scale = 2.0 / (n * n * k)
    return scale * s_ab, scale * s_ba


def imbalance(A, B, k=1):
    """Delta(A -> B): how badly A's nearest neighbours predict B's (0 perfect, ~1 none).

    Parameters and input rules as ``imbalance_pair``.

    Examples
    --------
    >>> x = np.arange(100.0) ** 1.5
    >>> shuffled = np.random.default_rng(0).permutation(x)
    >>> round(imbalance(x, shuffled), 2)   # unrelated spaces: about 1
    1.06
    """
    return imbalance_pair(A, B, k)[0]


def single_feature_table(X, p, k=1):
    """Each feature alone against a target: Delta both ways and the Pearson correlation.

    Parameters
    ----------
    X : array_like, shape (N, M)
        Standardised features, no constant column.
    p : array_like, shape (N,)
        The target (e.g. the propensity).
    k : int
        Nearest neighbours, 1 <= k < N.

    Returns
    -------
    dict
        ``delta_x_to_p``, ``delta_p_to_x`` and ``pearson``: float64 arrays of shape (M,).

    Examples
    --------
    >>> p = np.arange(100.0) ** 1.5
    >>> X = standardise(np.column_stack([p, np.random.default_rng(0).permutation(p)]))
    >>> single_feature_table(X, p)["delta_x_to_p"].round(2).tolist()
    [0.02, 0.96]
    """
    X = check_points(X, "X")
    check_not_constant(X, "X")
    p = check_targets([p], [X], "p")[0]
    check_k(k, len(p), "single_feature_table")
    target = _sorted_1d(p)
    pairs = np.array([_pair_1d(*_sorted_1d(X[:, m]), *target, k) for m in range(X.shape[1])])
    pairs *= 2.0 / (len(p) ** 2 * k)
    xs = (X - X.mean(axis=0)) / X.std(axis=0)
    pearson = xs.T @ ((p - p.mean()) / p.std()) / len(p)
    return {"delta_x_to_p": pairs[:, 0], "delta_p_to_x": pairs[:, 1], "pearson": pearson}
