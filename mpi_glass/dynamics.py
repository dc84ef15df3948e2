"""Dynamical observables of iso-configurational Monte Carlo (paper Sec. II A, Eqs. 1-4).

All functions take plain numpy arrays; nothing here knows about MPI or files.  Positions are
those of the configuration at t = 0, wrapped into the periodic box [0, L_x) x [0, L_y) (a
square box is given by its side, a rectangular one by (L_x, L_y));
displacements are raw *unwrapped* displacements Delta r_i(t) = r_i(t) - r_i(0), shaped
(..., N, 2) with any leading axes (times, replicas).  Lengths are in sigma_LS, times in MC
sweeps, species are indices of a ``model.PairModel`` (``model=``, default the paper's, with
0 = S, 1 = M, 2 = L), whose sigma_ab scales the cage and bond radii.

Definitions
-----------
Cage neighbours NN_i: the particles j != i with minimum-image distance
|r_ij(0)| < 1.4 sigma_{a_i a_j} at t = 0; n_i = |NN_i|.  (``cage_neighbours``)

Cage-relative displacement (Eq. 2), after removing the centre-of-mass drift:

    Delta r_i^CR(t) = Delta r_i(t) - (1/n_i) sum_{j in NN_i} Delta r_j(t).

Subtracting the particle mean displacement first (the paper removes the MC drift) changes
nothing for n_i > 0 - the same vector leaves both terms - but it is done explicitly, so an
isolated particle (n_i = 0, which keeps its own displacement) is measured in the
centre-of-mass frame like everything else.  (``cage_relative``)

Self-intermediate scattering function (Eq. 1), isotropic in 2-D: averaging
exp(-i k . Delta r) over the directions of k gives the Bessel function J0(k |Delta r|), so

    F_s^CR(k, t) = (1/N) sum_i J0(k |Delta r_i^CR(t)|),   k = 6.3,

and the paper's time average becomes the average over the R iso-configurational replicas.
tau_alpha is the first time at which F_s^CR = 1/e.  (``fs_cr``, ``tau_alpha``)

Propensities over the iso-configurational ensemble <...>_iso (the R replicas):

    p_i(t) = < |Delta r_i^CR(t)| >_iso                                          (Eq. 3)
    q_i(t) = < n_i(t) / n_i(0) >_iso                                            (Eq. 4)

with n_i(t) the number of initial neighbours NN_i still within 1.8 sigma_ab at time t.
(``propensities``, ``bond_survival``)

Recording times are log-spaced whole sweeps (``log_times``).  The propensities that
``select`` studies at tau_alpha (or any time between recorded ones) are interpolated
linearly in log t between the two recorded times that bracket it (``interpolate_in_time``);
at 8 times per decade the nearest recorded time (``nearest_time_index``) can be 15 % away.
"""
import math

import numpy as np
from numba import njit
from scipy.special import j0

from .errors import InputError
from .model import DEFAULT_MODEL
from .neighbours import box_sides, verlet_list
from .validation import (check_box, check_configuration, check_positive_time, check_times,
                         check_whole_number)

__all__ = ["cage_neighbours", "cage_relative", "fs_cr", "bond_survival", "propensities",
           "tau_alpha", "log_times", "nearest_time_index", "interpolate_in_time",
           "check_sides", "CAGE_FACTOR", "BOND_FACTOR", "K_DEFAULT"]

CAGE_FACTOR = 1.4       #: cage / initial-bond radius, in units of sigma_ab (paper)
BOND_FACTOR = 1.8       #: a bond survives while r_ij < 1.8 sigma_ab (paper)
K_DEFAULT = 6.3         #: wavenumber of F_s^CR, near the first peak of S(k) (paper)
INV_E = math.exp(-1.0)


# --- neighbours at t = 0 ---------------------------------------------------------------------

def cage_neighbours(positions0, species, box, cutoff_factor=CAGE_FACTOR, model=DEFAULT_MODEL):
    """Cage neighbours NN_i at t = 0: j != i with |r_ij| < cutoff_factor * sigma_{a_i a_j}.

    Parameters
    ----------
    positions0 : array_like, shape (N, 2)
        The configuration at t = 0 (wrapped into the box here).
    species : array_like of int, shape (N,)
        Species indices of ``model`` (the paper's: 0 S, 1 M, 2 L).
    box : float or (float, float)
        Side of the square box, or the sides (L_x, L_y) of a rectangular one; each must
        exceed twice the neighbour cutoff.
    cutoff_factor : float
        The radius in units of sigma_ab (1.4, the paper's cage).
    model : PairModel
        The pair model whose sigma_ab scale the radius (default the paper's).

    Returns
    -------
    offsets : numpy.ndarray, int64, shape (N + 1,)
    indices : numpy.ndarray, int64
        The neighbours of i are ``indices[offsets[i]:offsets[i + 1]]``, sorted by index; the
        lists are symmetric.  Built with ``neighbours.verlet_list``, O(N) for a liquid.

    Examples
    --------
    >>> offsets, indices = cage_neighbours([[1.0, 1.0], [2.0, 1.0], [6.0, 1.0]], [2, 2, 2], 10.0)
    >>> offsets.tolist(), indices.tolist()
    ([0, 1, 2, 2], [1, 0])

    In a 10 x 6 box, particles 0 and 2 are neighbours across y = 0:

    >>> cage_neighbours([[1.0, 0.5], [1.0, 3.0], [1.0, 5.5]], [2, 2, 2], (10.0, 6.0))[1].tolist()
    [2, 0]
    """
    positions0, species, box = _configuration(positions0, species, box, cutoff_factor, model)
    cut2 = (cutoff_factor * model.sigma) ** 2
    offsets, indices = verlet_list(positions0, species.view(np.uint8), box, cut2)
    return offsets, indices.astype(np.int64)


# --- cage-relative displacement and F_s ------------------------------------------------------

def cage_relative(displacements, offsets, indices):
    """Delta r^CR (Eq. 2) of displacements shaped (..., N, 2), drift removed; float64.

    Particles with no cage neighbour keep their (drift-removed) displacement.

    Parameters
    ----------
    displacements : array_like, shape (..., N, 2)
        Unwrapped displacements since t = 0.
    offsets, indices : array_like of int
        Cage neighbours in CSR form (``cage_neighbours``).

    Returns
    -------
    numpy.ndarray, float64, shape like ``displacements``
        Each displacement minus the mean displacement of its cage neighbours.

    Examples
    --------
    Particles 0 and 1 are each other's cage; particle 1 moves by 0.3 (drift removed first):

    >>> d = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.0]])
    >>> cage_relative(d, [0, 1, 2, 2], [1, 0]).round(2).tolist()
    [[-0.3, 0.0], [0.3, 0.0], [-0.1, 0.0]]
    """
    offsets, indices = _csr(offsets, indices)
    d = _displacements(displacements, offsets)
    d = d - d.mean(axis=-2, keepdims=True)   # centre-of-mass drift; exact no-op for n_i > 0
    flat = np.ascontiguousarray(d.reshape(-1, d.shape[-2], 2))
    out = np.empty_like(flat)
    _cage_relative_kernel(flat, offsets, indices, out)
    return out.reshape(d.shape)


@njit(cache=True)
def _cage_relative_kernel(d, offsets, indices, out):
    for b in range(d.shape[0]):
        for i in range(d.shape[1]):
            lo, hi = offsets[i], offsets[i + 1]
            sx = sy = 0.0
            for k in range(lo, hi):
                sx += d[b, indices[k], 0]
                sy += d[b, indices[k], 1]
            n = max(hi - lo, 1)             # n_i = 0: sums are 0, the displacement stays
            out[b, i, 0] = d[b, i, 0] - sx / n
            out[b, i, 1] = d[b, i, 1] - sy / n


def fs_cr(dcr, k=K_DEFAULT):
    """Isotropic self-intermediate scattering function of displacements (Eq. 1).

    Parameters
    ----------
    dcr : array_like, shape (..., N, 2)
        Cage-relative displacements (``cage_relative``).
    k : float
        Wavenumber (6.3, near the first peak of S(k)).

    Returns
    -------
    numpy.ndarray, shape dcr.shape[:-2]
        The mean over particles of J0(k |dcr|).

    Examples
    --------
    >>> float(fs_cr(np.zeros((5, 2))))        # nobody moved
    1.0
    """
    dcr = np.asarray(dcr, dtype=np.float64)
    if dcr.ndim < 2 or dcr.shape[-1] != 2:
        raise InputError(f"dcr: expected displacements shaped (..., N, 2), got {dcr.shape}")
    return j0(k * np.hypot(dcr[..., 0], dcr[..., 1])).mean(axis=-1)


# --- bond breaking ---------------------------------------------------------------------------

def bond_survival(displacements, positions0, species, box, offsets, indices,
                  cutoff_factor=BOND_FACTOR, model=DEFAULT_MODEL):
    """n_i(t) / n_i(0) for displacements shaped (..., N, 2); returns shape (..., N).

    n_i(t) counts the initial neighbours (the CSR lists, normally ``cage_neighbours`` at
    1.4 sigma) whose minimum-image distance at time t, with r(t) = r(0) + Delta r(t), is
    below cutoff_factor * sigma_ab.  The count is instantaneous: a neighbour that leaves and
    comes back counts again.  A particle without initial neighbours has nothing to lose:
    its ratio is 1.

    Parameters
    ----------
    displacements : array_like, shape (..., N, 2)
        Unwrapped displacements since t = 0.
    positions0, species, box
        The configuration at t = 0, as for ``cage_neighbours``.
    offsets, indices : array_like of int
        The initial neighbours in CSR form.
    cutoff_factor : float
        Survival radius in units of sigma_ab (1.8, the paper's).
    model : PairModel
        The pair model (default the paper's).

    Examples
    --------
    Particle 1 leaves its only neighbour 0 behind; particle 2 never had one:

    >>> pos0 = [[1.0, 1.0], [2.0, 1.0], [6.0, 1.0]]
    >>> offsets, indices = cage_neighbours(pos0, [2, 2, 2], 10.0)
    >>> d = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    >>> bond_survival(d, pos0, [2, 2, 2], 10.0, offsets, indices).tolist()
    [0.0, 0.0, 1.0]
    """
    offsets, indices = _csr(offsets, indices)
    d = _displacements(displacements, offsets)
    bonds = _bonds(positions0, species, box, offsets, indices, cutoff_factor, model)
    return _survival(d, bonds)


def _survival(d, bonds):
    flat = np.ascontiguousarray(d.reshape(-1, d.shape[-2], 2), dtype=np.float64)
    out = np.empty(flat.shape[:2])
    _survival_kernel(flat, *bonds, out)
    return out.reshape(d.shape[:-1])


def _bonds(positions0, species, box, offsets, indices, cutoff_factor, model):
    """(offsets, indices, r0, cut2, sides): per bond k = (i, indices[k]) the t = 0
    minimum-image vector r_j - r_i and the squared survival radius; sides (L_x, L_y).
    Following a bond from its t = 0 vector needs no positions later on, and unwrapped
    displacements of any size are fine."""
    positions0, species, box = _configuration(positions0, species, box, cutoff_factor, model)
    i = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    r0 = positions0[indices] - positions0[i]
    r0 -= box * np.rint(r0 / box)
    cut2 = (cutoff_factor * model.sigma[species[i], species[indices]]) ** 2
    return offsets, indices, r0, cut2, box


@njit(cache=True)
def _survival_kernel(d, offsets, indices, r0, cut2, box, out):
    lx, ly = box_sides(box)
    for b in range(d.shape[0]):
        for i in range(d.shape[1]):
            lo, hi = offsets[i], offsets[i + 1]
            kept = 0
            for k in range(lo, hi):
                j = indices[k]
                dx = r0[k, 0] + d[b, j, 0] - d[b, i, 0]
                dy = r0[k, 1] + d[b, j, 1] - d[b, i, 1]
                dx -= lx * math.floor(dx / lx + 0.5)    # minimum image, any distance
                dy -= ly * math.floor(dy / ly + 0.5)
                kept += dx * dx + dy * dy < cut2[k]
            out[b, i] = kept / (hi - lo) if hi > lo else 1.0


# --- propensities of one configuration -------------------------------------------------------

def propensities(displacements_replicas, positions0, species, box, model=DEFAULT_MODEL):
    """p (T, N), q (T, N) and F_s^CR (T,) of one configuration from its R replicas.

    ``displacements_replicas`` is (R, T, N, 2) (float32 is fine).  Replicas are processed
    one at a time, so the extra memory is O(T N) whatever R is.

    Parameters
    ----------
    displacements_replicas : array_like, shape (R, T, N, 2)
        Unwrapped displacements of each replica at each recorded time.
    positions0, species, box, model
        The configuration at t = 0 and its model, as for ``cage_neighbours``.

    Returns
    -------
    p : numpy.ndarray, shape (T, N)
        Replica mean of |Delta r^CR| (the propensity).
    q : numpy.ndarray, shape (T, N)
        Replica mean of the bond survival.
    fs : numpy.ndarray, shape (T,)
        Replica mean of F_s^CR.

    Examples
    --------
    Two replicas, one time, nobody moved:

    >>> pos0 = [[1.0, 1.0], [2.0, 1.0], [6.0, 1.0]]
    >>> p, q, fs = propensities(np.zeros((2, 1, 3, 2)), pos0, [2, 2, 2], 10.0)
    >>> p.tolist(), q.tolist(), fs.tolist()
    ([[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]], [1.0])
    """
    disp = np.asarray(displacements_replicas)
    if disp.ndim != 4 or disp.shape[-1] != 2 or disp.shape[0] < 1:
        raise InputError(f"displacements: expected (R, T, N, 2) with R >= 1, got {disp.shape}")
    offsets, indices = cage_neighbours(positions0, species, box, model=model)
    bonds = _bonds(positions0, species, box, offsets, indices, BOND_FACTOR, model)
    n_rep, n_times, n = disp.shape[:3]
    p, q, fs = np.zeros((n_times, n)), np.zeros((n_times, n)), np.zeros(n_times)
    for replica in disp:
        dcr = cage_relative(replica, offsets, indices)
        p += np.hypot(dcr[..., 0], dcr[..., 1])
        fs += fs_cr(dcr)
        q += _survival(replica, bonds)
    return p / n_rep, q / n_rep, fs / n_rep


# --- times -----------------------------------------------------------------------------------

def tau_alpha(times, fs):
    """First time at which fs falls to 1/e, interpolating fs linearly in log t.

    Examples
    --------
    >>> round(tau_alpha([1, 10, 100], [0.9, 0.5, 0.1]), 2)
    21.39

    The crossing is bracketed by the last recorded time with fs > 1/e and the next one
    (fs <= 1/e).  NaN when fs never reaches 1/e, or when it is already there at the first
    recorded positive time (the crossing lies below the record and log t has no
    interpolation down to t = 0).  A t = 0 entry (fs = 1) may lead the record.
    """
    times, fs = np.asarray(times, dtype=np.float64), np.asarray(fs, dtype=np.float64)
    check_times(times)
    if fs.shape != times.shape:
        raise InputError(f"fs: expected shape {times.shape} like times, got {fs.shape}")
    below = np.flatnonzero(fs <= INV_E)
    if below.size == 0 or below[0] == 0 or times[below[0] - 1] <= 0.0:
        return float("nan")
    k = below[0]
    if fs[k] == INV_E:              # hit at a recorded time: return it exactly
        return float(times[k])
    (t0, t1), (f0, f1) = times[k - 1:k + 1], fs[k - 1:k + 1]
    s = (f0 - INV_E) / (f0 - f1)
    return float(math.exp(math.log(t0) + s * (math.log(t1) - math.log(t0))))


def log_times(t_max, per_decade=8, extra=()):
    """Recording times (int64, sorted, unique): 10^(k / per_decade) rounded to whole sweeps,
    from 1 to t_max inclusive, merged with the explicit ``extra`` times.

    Examples
    --------
    >>> log_times(100, per_decade=4).tolist()
    [1, 2, 3, 6, 10, 18, 32, 56, 100]

    An extra time beyond t_max is recorded too (the run then lasts until it); the log grid
    still stops at t_max.  Rounding merges the coincident small times (1, 2, 3, ...).
    """
    t_max = check_whole_number(t_max, "log_times: t_max")
    per_decade = check_whole_number(per_decade, "log_times: per_decade")
    extra = [check_whole_number(t, "log_times: extra time") for t in extra]
    if any(b <= a for a, b in zip(extra, extra[1:])):
        raise InputError(f"log_times: extra times must be increasing, got {extra}")
    top = math.floor(per_decade * math.log10(t_max) + 1e-9)
    grid = np.rint(10.0 ** (np.arange(top + 1) / per_decade)).astype(np.int64)
    merged = np.concatenate([grid[grid <= t_max], [t_max], np.asarray(extra, np.int64)])
    return np.unique(merged)


def nearest_time_index(times, t):
    """Index of the recorded time nearest to t > 0 in log t (ties: the earlier time).

    Examples
    --------
    >>> nearest_time_index([1, 10, 100], 40)
    2

    t = 0 entries are never nearest.
    """
    times = np.asarray(times, dtype=np.float64)
    check_times(times)
    t = check_positive_time(t)
    with np.errstate(divide="ignore"):
        distance = np.abs(np.log(times) - math.log(t))
    return int(np.argmin(distance))


def interpolate_in_time(times, values, t):
    """values (T, ...) at time t, linear in log t between the recorded times bracketing t.

    t must lie within the positive recorded times (no extrapolation).  ``select`` reads the
    propensities at tau_alpha and at the second time this way.

    Examples
    --------
    >>> interpolate_in_time([1, 10, 100], [[0.0], [1.0], [2.0]], 10 ** 1.5).round(12)
    array([1.5])
    """
    times, values = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
    check_times(times)
    if values.shape[:1] != times.shape:
        raise InputError(f"values: expected {len(times)} rows like times, got {values.shape}")
    t, positive = check_positive_time(t), times[times > 0]
    if positive.size == 0 or not positive[0] <= t <= positive[-1]:
        raise InputError(f"t = {t:g} lies outside the positive recorded times of "
                         f"{times[0]:g} ... {times[-1]:g}")
    k = int(np.searchsorted(times, t))          # times[k - 1] < t <= times[k]
    if times[k] == t:
        return values[k].copy()
    s = math.log(t / times[k - 1]) / math.log(times[k] / times[k - 1])   # times[k - 1] > 0
    return (1.0 - s) * values[k - 1] + s * values[k]


# --- input checks ----------------------------------------------------------------------------

def check_sides(box, cutoff_factor=BOND_FACTOR, model=DEFAULT_MODEL, where="box"):
    """Sides (L_x, L_y) of a box (a side or two) in which every neighbour within
    cutoff_factor * sigma_ab is one periodic image: each side above twice that reach.

    The bond radius (1.8 sigma_ab) is the farthest ``propensities`` looks; ``where`` names
    the box in the one-line error (a file, a key).

    Examples
    --------
    >>> check_sides((9.0, 14.0)).tolist()
    [9.0, 14.0]
    >>> check_sides((9.0, 4.0), where="r0.dump: box")
    Traceback (most recent call last):
    ...
    mpi_glass.errors.InputError: r0.dump: box: side L_y = 4 must exceed twice the neighbour reach 2.116 (1.8 sigma_LL); the minimum image needs a larger box
    """
    sides = check_box(box)
    sigma = model.sigma
    reach = cutoff_factor * sigma.max()
    if not reach > 0:
        raise InputError(f"{where}: the neighbour reach {reach:g} (cutoff_factor "
                         f"{cutoff_factor:g}) must be positive")
    for name, side in zip(("L_x", "L_y"), sides):
        if not side > 2.0 * reach:      # one image per pair: the minimum image is the bond
            a, b = np.unravel_index(np.argmax(sigma), sigma.shape)
            pair = model.species_names[a] + model.species_names[b]
            raise InputError(f"{where}: side {name} = {side:g} must exceed twice the "
                             f"neighbour reach {reach:.4g} ({cutoff_factor:g} sigma_{pair}); "
                             f"the minimum image needs a larger box")
    return sides


def _configuration(positions0, species, box, cutoff_factor, model):
    """Validated (positions float64 wrapped into the box, species int8, sides (2,))."""
    box = check_sides(box, cutoff_factor, model)
    positions0, species = check_configuration(positions0, species, box, wrap=True,
                                              species_names=model.species_names)
    return positions0, species, box


def _csr(offsets, indices):
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    n = len(offsets) - 1
    if offsets.ndim != 1 or n < 0 or offsets[0] != 0 or offsets[-1] != len(indices) \
            or np.any(np.diff(offsets) < 0) or np.any((indices < 0) | (indices >= n)):
        raise InputError("offsets, indices: not a CSR neighbour list of N particles")
    return offsets, indices


def _displacements(displacements, offsets):
    d = np.asarray(displacements, dtype=np.float64)
    n = len(offsets) - 1
    if d.ndim < 2 or d.shape[-2:] != (n, 2):
        raise InputError(f"displacements: expected (..., {n}, 2) to match the neighbour "
                         f"lists, got {d.shape}")
    return d
