"""Input checks shared by every kernel's public wrapper, scikit-learn style.

Each ``check_*`` takes what a user may pass (numbers, lists, arrays of any dtype), returns the
canonical form the kernels want (float64 / int8, C-contiguous, wrapped) and raises one
``InputError`` line naming the argument and what was expected.  One contract everywhere:

* a **box** is a positive finite side L or a pair (Lx, Ly); ``check_box`` returns the pair,
  ``check_square_box`` the side of a square box (optionally with a smallest allowed side);
* a **configuration** is positions (N, 2) finite, N >= 1, and species (N,) integers 0, 1, 2
  (S, M, L); positions are wrapped into [0, L) or, for in-place MC state, required there;
* **times** are MC sweeps: a record is finite, non-negative and strictly increasing; a time
  to look up is positive; a duration is a positive whole number;
* **points** of the information imbalance are (N,) or (N, d) finite floats with N >= 3.

Examples
--------
>>> check_square_box((12.5, 12.5))
12.5
>>> check_box(10.0)
array([10., 10.])
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .model import SPECIES_NAMES

__all__ = ["check_box", "check_square_box", "check_configuration", "check_times",
           "check_positive_time", "check_whole_number", "check_points", "check_not_constant",
           "check_consistent_length", "check_k", "check_feature_sets", "check_targets",
           "column_label"]


# --- box and configuration ---------------------------------------------------------------

def check_box(box):
    """Sides (Lx, Ly) of a periodic box given as one positive side or a pair.

    Parameters
    ----------
    box : float or sequence of two floats

    Returns
    -------
    numpy.ndarray
        float64 array of shape (2,).

    Examples
    --------
    >>> check_box([3.0, 4.0])
    array([3., 4.])
    """
    try:
        sides = np.array(np.broadcast_to(np.asarray(box, dtype=float), (2,)))
    except (TypeError, ValueError):
        sides = None
    if sides is None or np.ndim(box) > 1 or not np.all(np.isfinite(sides)) or np.any(sides <= 0):
        raise InputError(f"box: expected a positive side or two positive sides (Lx, Ly), "
                         f"got {box!r}")
    return sides


def check_square_box(box, min_side=0.0, why=""):
    """Side L of a square box given as L or (L, L), at least ``min_side``.

    Parameters
    ----------
    box : float or sequence of two equal floats
    min_side : float
        Smallest allowed side (e.g. twice the interaction cutoff).
    why : str
        What ``min_side`` is, for the error message.

    Returns
    -------
    float

    Examples
    --------
    >>> check_square_box(8.0, min_side=5.0, why="twice the cutoff")
    8.0
    """
    sides = check_box(box)
    if sides[0] != sides[1]:
        raise InputError(f"box: expected one side or two equal sides, got {box!r}")
    side = float(sides[0])
    if side < min_side:
        raise InputError(f"box: side {side:g} must be at least {why or 'the smallest side'} "
                         f"{min_side:.4g}")
    return side


def check_configuration(positions, species, box, wrap=True, species_names=SPECIES_NAMES):
    """Positions and species of one configuration in a validated box.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
        Finite coordinates, N >= 1.
    species : array_like of int, shape (N,)
        Labels 0 (S), 1 (M), 2 (L).
    box : float or numpy.ndarray of shape (2,)
        Already validated by ``check_box`` or ``check_square_box``.
    wrap : bool
        True: positions are wrapped into [0, L).  False: they must already lie there (state
        that a kernel updates in place).
    species_names : tuple of str
        The model's species (``PairModel.species_names``; default the paper's S, M, L):
        labels run over 0 ... K - 1.

    Returns
    -------
    positions : numpy.ndarray, float64, C-contiguous, shape (N, 2)
    species : numpy.ndarray, int8, C-contiguous, shape (N,)

    Examples
    --------
    >>> pos, spec = check_configuration([[11.0, -1.0]], [2], 10.0)
    >>> pos.tolist(), spec.tolist()
    ([[1.0, 9.0]], [2])
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2 or len(pos) == 0:
        raise InputError(f"positions: expected shape (N, 2) with N >= 1, got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise InputError("positions: contain NaN or infinite values")
    spec = np.asarray(species)
    if spec.shape != (len(pos),) or not np.issubdtype(spec.dtype, np.integer):
        raise InputError(f"species: expected {len(pos)} integers, got {spec.dtype} array of "
                         f"shape {spec.shape}")
    if spec.min() < 0 or spec.max() >= len(species_names):
        labels = ", ".join(f"{a} ({name})" for a, name in enumerate(species_names))
        raise InputError(f"species: labels must be {labels}; got {spec.min()}..{spec.max()}")
    if wrap:
        pos = np.mod(pos, box)
        pos[pos >= box] = 0.0       # np.mod(-1e-17, L) rounds to L itself
    elif not np.all((pos >= 0.0) & (pos < box)):
        raise InputError(f"positions: must lie in [0, {np.max(box):g}) (wrapped)")
    return np.ascontiguousarray(pos), np.ascontiguousarray(spec, dtype=np.int8)


# --- times (MC sweeps) -------------------------------------------------------------------

def check_times(times, what="times"):
    """A record of times: float64, 1-D, non-empty, finite, >= 0 and strictly increasing.

    Examples
    --------
    >>> check_times([0, 1, 10]).tolist()
    [0.0, 1.0, 10.0]
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise InputError(f"{what}: expected a non-empty 1-D array, got shape {times.shape}")
    if not np.all(np.isfinite(times)) or times[0] < 0 or np.any(np.diff(times) <= 0):
        raise InputError(f"{what}: must be finite, non-negative and strictly increasing")
    return times


def check_positive_time(t, what="t"):
    """A positive finite time in sweeps, as a float.

    Examples
    --------
    >>> check_positive_time(3)
    3.0
    """
    t = float(t)
    if not math.isfinite(t) or t <= 0:
        raise InputError(f"{what}: expected a positive time in sweeps, got {t!r}")
    return t


def check_whole_number(value, what):
    """A positive integer given as an int or an integral float (not a bool or a string).

    Examples
    --------
    >>> check_whole_number(1e3, "t_max")
    1000
    """
    number = isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, bool) and math.isfinite(value)
    if not (number and value == int(value) and value >= 1):
        raise InputError(f"{what}: expected a positive whole number of sweeps, got {value!r}")
    return int(value)


# --- points and feature matrices (information imbalance) ---------------------------------

def column_label(j, names=None):
    """How an error names column j: by name when names are given."""
    return f"'{names[j]}' (column {j})" if names is not None else f"column {j}"


def check_points(A, what):
    """A as a float64 (N, d) array of finite values with N >= 3 ((N,) becomes (N, 1)).

    Examples
    --------
    >>> check_points([1, 2, 3], "p").shape
    (3, 1)
    """
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
        raise InputError(f"{what}: {column_label(int(np.argmin(finite)))} contains NaN or inf")
    return A


def check_not_constant(A, what, names=None):
    """Refuse a constant column of the (N, d) array A."""
    constant = np.ptp(A, axis=0) == 0
    if constant.any():
        raise InputError(f"{what}: {column_label(int(np.argmax(constant)), names)} is constant")


def check_consistent_length(a, b, what):
    """Refuse two point sets of different lengths."""
    if len(a) != len(b):
        raise InputError(f"{what}: {len(a)} points against {len(b)}; lengths must match")


def check_k(k, n, what):
    """Neighbour count k: an integer with 1 <= k < N."""
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise InputError(f"{what}: k must be an integer with 1 <= k < N = {n}, got {k!r}")


def check_feature_sets(X_list, what):
    """Feature matrices, one per configuration (a single 2-D array is one), all with the same
    number of columns, none of them constant; returns a list of float64 (N_c, M) arrays."""
    if isinstance(X_list, np.ndarray) and X_list.ndim == 2:
        X_list = [X_list]
    Xs = [check_points(X, f"{what}[{c}]") for c, X in enumerate(X_list)]
    if not Xs:
        raise InputError(f"{what}: no configurations given")
    for c, X in enumerate(Xs):
        check_not_constant(X, f"{what}[{c}]")
        if X.shape[1] != Xs[0].shape[1]:
            raise InputError(f"{what}[{c}]: {X.shape[1]} features, but {what}[0] has "
                             f"{Xs[0].shape[1]}")
    return Xs


def check_targets(p_list, Xs, what):
    """One non-constant 1-D target per feature matrix of ``Xs``, of matching length."""
    if isinstance(p_list, np.ndarray) and p_list.ndim == 1:
        p_list = [p_list]
    if len(p_list) != len(Xs):
        raise InputError(f"{what}: {len(p_list)} targets for {len(Xs)} configurations")
    ps = []
    for c, (p, X) in enumerate(zip(p_list, Xs)):
        p = check_points(p, f"{what}[{c}]")
        if p.shape[1] != 1:
            raise InputError(f"{what}[{c}]: expected a 1-D target, got shape {p.shape}")
        check_consistent_length(X, p, f"{what}[{c}]")
        check_not_constant(p, f"{what}[{c}]")
        ps.append(p[:, 0])
    return ps
