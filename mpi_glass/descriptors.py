r"""Structural descriptors of Sharma, Liu & Ozawa (2024), Sec. II B (Eqs. 5-10).

Local descriptors of particle i (species a_i; pair tables sigma, eps of a ``model.PairModel``,
by default the paper's):

- u_i = 1/2 sum_{j != i} V_{a_i a_j}(r_ij), the model's pair potential (the paper's: smoothed
  LJ cut at 2.5 sigma_ab).
- z_i = #{j : r_ij < 1.5 sigma_{a_i a_j}}, the neighbours used by Psi6 and Theta too.
- Psi6_i = |sum_j exp(6 i theta_ij)| / z_i, theta_ij the angle of r_j - r_i with the x axis.
- Theta_i (Tong & Tanaka) = (1/z_i) sum_<jk> |theta_jk - theta_ref_jk|: the neighbours sorted
  by angle give z_i angularly consecutive pairs <jk> (with wrap-around); theta_jk is the
  counter-clockwise gap from j to k (the z_i gaps sum to 2 pi), and theta_ref_jk the angle at i
  of the triangle of touching discs with sides sigma_ij, sigma_ik and sigma_jk (opposite),
        cos theta_ref = (sigma_ij^2 + sigma_ik^2 - sigma_jk^2) / (2 sigma_ij sigma_ik),
  with the pair table (the model is non-additive).

Few neighbours, decided here (the paper never meets them in a dense liquid):

- z_i = 0: empty sums over max(z_i, 1), so Psi6_i = 0 and Theta_i = 0; no NaN ever.
- z_i = 1: Psi6_i = 1 as defined; the wrap-around rule taken literally pairs the single
  neighbour with itself across a full turn, theta = 2 pi, so Theta_i = 2 pi - theta_ref(j, j):
  the largest value, as suits an isolated particle.
- z_i = 2: two pairs, gaps g and 2 pi - g (a gap can exceed pi only when all neighbours lie
  on one side; we keep the gap, not the angle between the bonds, so the gaps always sum to 2 pi).

Coarse graining (Eqs. 8-10) with w_ij = exp(-r_ij / l) over every particle j, i itself
included (r = 0, w = 1), and every periodic image of j, with r_ij < R_N = 20 sigma_LS, so
boxes smaller than 2 R_N are exact (a box tiled k x k gives the same features):

    rho_i(l) = sum_j w_ij,   phi_i(l) = sum_j sigma_{a_i a_j}^2 w_ij,
    x_i(l)   = sum_j x_j w_ij / rho_i(l)   for x in (u, Psi6, Theta, z).

The local descriptors sum over periodic images as well (a particle may meet its own image in
a box smaller than 2 x 2.5 sigma_LL).  Two distinct particles at the same point are an error.

Cost (~1300 images within R_N per particle, ten lengths): each unordered pair of particle
images is visited once, cell pair by cell pair, and its distance feeds both ends, all lengths
and all six sums.  exp(-r/l) is evaluated only for the lengths l whose double 2l is not in the
list, the others are squares, exp(-r/l) = exp(-r/2l)^2: 5 exponentials per pair for the default
lengths.  ``mpi_glass bench descriptors`` times N = 4000.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .errors import InputError
from .model import DEFAULT_MODEL, pair_energy_x2
from .neighbours import ImageCells, image_cell
from .validation import check_box, check_configuration

__all__ = ["compute_features", "local_descriptors", "feature_names", "DESCRIPTOR_ORDER",
           "DEFAULT_LENGTHS", "R_N", "Z_CUT"]

#: Order of the descriptor blocks in the feature matrix; each block runs over the lengths.
DESCRIPTOR_ORDER = ("rho", "phi", "u", "psi6", "theta", "z")
#: Coarse-graining lengths l = 0.5, 1.0, ..., 5.0 (sigma_LS).
DEFAULT_LENGTHS = tuple(0.5 * m for m in range(1, 11))
#: Coarse-graining radius R_N (sigma_LS).
R_N = 20.0
#: Neighbours of z, Psi6 and Theta: r < Z_CUT sigma_ab.
Z_CUT = 1.5
#: Cell sides aimed at by the two cell lists, as fractions of their search radius: small cells
#: waste fewer distance tests on the corners of the search square, at more cells to visit.
_LOCAL_CELLS = 0.5
_COARSE_CELLS = 0.15
#: More images than this within R_N of a particle (a liquid has ~1300) is a mistake in the
#: box or the units, not a configuration to spend hours on.
_MAX_IMAGES = 100_000
_TWO_PI = 2.0 * math.pi


def local_range(model):
    """Range of the local descriptors: the largest pair cutoff, and at least the z cutoff."""
    return max(model.max_cutoff, Z_CUT * float(model.sigma.max()))


# -- public API ----------------------------------------------------------------------------

def feature_names(lengths=DEFAULT_LENGTHS):
    """Column names of ``compute_features``: ``rho_l0.5`` ... ``z_l5.0``, blocks in order.

    Lengths print with one decimal (``theta_l2.0``) unless that would round them (``l0.25``).

    Examples
    --------
    >>> feature_names([1.0, 0.25])[:3]
    ['rho_l1.0', 'rho_l0.25', 'phi_l1.0']
    """
    lengths = _checked_lengths(lengths)
    return [f"{name}_l{_length_label(ell)}" for name in DESCRIPTOR_ORDER for ell in lengths]


def local_descriptors(positions, species, box, model=DEFAULT_MODEL):
    """Per-particle ``dict(u=, z=, psi6=, theta=)`` (float64; z int64) of one configuration.

    Parameters
    ----------
    positions : array_like, shape (N, 2)
    species : array_like of int, shape (N,)
        Species indices of ``model`` (the paper's: 0 S, 1 M, 2 L).
    box : float or (float, float)
        Side of the square box, or (Lx, Ly).
    model : PairModel
        The pair model (default the paper's).

    Examples
    --------
    >>> local_descriptors([[1.0, 1.0], [2.0, 1.0], [6.0, 5.0]], [2, 2, 0], 10.0)["z"].tolist()
    [1, 1, 0]
    """
    return _local(_checked_system(positions, species, box, model))


def compute_features(positions, species, box, lengths=DEFAULT_LENGTHS, model=DEFAULT_MODEL):
    """All coarse-grained features of one configuration: ``(values (N, 6 L), names)``.

    Parameters
    ----------
    positions, species, box, model
        As in ``local_descriptors``.
    lengths : sequence of float
        Coarse-graining lengths l (sigma_LS), default 0.5, 1.0, ..., 5.0.

    Returns
    -------
    values : numpy.ndarray, float64, shape (N, 6 len(lengths))
        Blocks rho, phi, u, psi6, theta, z (``DESCRIPTOR_ORDER``), each over ``lengths`` in
        the given order.
    names : list of str
        As in ``feature_names``.

    Examples
    --------
    >>> values, names = compute_features([[1.0, 1.0], [2.0, 1.0], [6.0, 5.0]], [2, 2, 0], 10.0)
    >>> values.shape, names[0], names[-1]
    ((3, 60), 'rho_l0.5', 'z_l5.0')
    """
    system = _checked_system(positions, species, box, model)
    lengths = _checked_lengths(lengths)
    images = len(system.positions) * math.pi * R_N**2 / system.box.prod()
    if images > _MAX_IMAGES:
        raise InputError(f"box: {len(system.positions)} particles in {system.box.tolist()} put "
                         f"~{images:.0f} images within R_N = {R_N:g} of each (a liquid: ~1300)")
    local = _local(system)
    return _coarse_grain(system, local, lengths), feature_names(lengths)


# -- input ---------------------------------------------------------------------------------

class _System(NamedTuple):
    """A validated configuration: positions wrapped into [0, L), species int64, box (2,),
    and its pair model."""
    positions: np.ndarray
    species: np.ndarray
    box: np.ndarray
    model: object = DEFAULT_MODEL


def _checked_system(positions, species, box, model=DEFAULT_MODEL):
    sides = check_box(box)
    positions, species = check_configuration(positions, species, sides, wrap=True,
                                             species_names=model.species_names)
    return _System(positions, species.astype(np.int64), sides, model)


def _checked_lengths(lengths):
    ell = np.asarray(lengths, dtype=float)
    if ell.ndim != 1 or len(ell) == 0 or not np.all(np.isfinite(ell)) or np.any(ell <= 0):
        raise InputError(f"lengths: expected a non-empty list of positive lengths, "
                         f"got {lengths!r}")
    return ell


def _length_label(ell):
    return f"{ell:.1f}" if round(ell, 1) == ell else f"{ell:g}"


# -- local descriptors ---------------------------------------------------------------------

def _local(system):
    model = system.model
    cells = ImageCells(system.positions, system.species, system.box, local_range(model),
                       _LOCAL_CELLS)
    u, z, psi6, theta, clash = _local_kernel(
        cells.positions, cells.species, system.box, cells.cell_xy, cells.start, cells.shape,
        cells.stencil, model.sigma2, model.epsilon, model.pair_forms, model.theta_reference,
        cells.max_candidates)
    if clash >= 0:
        i = cells.order[clash]
        raise InputError(f"positions: particle {i} coincides with another particle or image")
    return {name: cells.unsort(x) for name, x in
            (("u", u), ("z", z), ("psi6", psi6), ("theta", theta))}


@njit(cache=True)
def _local_kernel(pos, spec, box, cell_xy, start, shape, stencil, sigma2, eps, forms, theta_ref,
                  capacity):
    """u, z, Psi6, Theta per particle, and the first particle that sits on another (or -1)."""
    n, k_species = pos.shape[0], sigma2.shape[0]
    u = np.zeros(n)
    z = np.zeros(n, dtype=np.int64)
    psi6 = np.zeros(n)
    theta = np.zeros(n)
    angles = np.empty(capacity)
    kinds = np.empty(capacity, dtype=np.int64)
    for i in range(n):
        a = spec[i]
        energy = 0.0
        m = 0
        for s in range(stencil.shape[0]):
            c, sx, sy = image_cell(cell_xy[i, 0], cell_xy[i, 1], stencil[s], shape, box)
            for j in range(start[c], start[c + 1]):
                dx = pos[j, 0] + sx - pos[i, 0]
                dy = pos[j, 1] + sy - pos[i, 1]
                r2 = dx * dx + dy * dy
                if r2 == 0.0:
                    if j == i and sx == 0.0 and sy == 0.0:
                        continue  # the particle itself
                    return u, z, psi6, theta, i
                b = spec[j]
                x2 = r2 / sigma2[a, b]
                energy += pair_energy_x2(x2, eps[a, b], forms, k_species * a + b)
                if x2 < Z_CUT * Z_CUT:
                    angles[m] = math.atan2(dy, dx)
                    kinds[m] = b
                    m += 1
        u[i] = 0.5 * energy
        z[i] = m
        psi6[i] = _bond_order(angles[:m])
        theta[i] = _steric_order(angles[:m], kinds[:m], theta_ref[a])
    return u, z, psi6, theta, -1


@njit(cache=True)
def _bond_order(angles):
    """|sum_j exp(6 i theta_j)| / z, and 0 without neighbours."""
    re = 0.0
    im = 0.0
    for t in angles:
        re += math.cos(6.0 * t)
        im += math.sin(6.0 * t)
    return math.sqrt(re * re + im * im) / max(angles.size, 1)


@njit(cache=True)
def _steric_order(angles, kinds, theta_ref):
    """Tong-Tanaka Theta from the neighbours' angles and species; theta_ref[b, c] for centre a."""
    z = angles.size
    if z == 0:
        return 0.0
    order = np.argsort(angles)
    total = 0.0
    for k in range(z):
        j = order[k]
        nxt = order[(k + 1) % z]
        gap = angles[nxt] - angles[j]
        if k == z - 1:
            gap += _TWO_PI  # the wrap-around pair (a full turn when z = 1)
        total += abs(gap - theta_ref[kinds[j], kinds[nxt]])
    return total / z


# -- coarse graining -----------------------------------------------------------------------

def _coarse_grain(system, local, lengths):
    """Feature matrix (N, 6 L) from the local descriptors, blocks in DESCRIPTOR_ORDER."""
    cells = ImageCells(system.positions, system.species, system.box, R_N, _COARSE_CELLS)
    x = np.stack([local[name] for name in ("u", "psi6", "theta", "z")], axis=1)
    x = np.ascontiguousarray(x[cells.order], dtype=float)
    source = _square_sources(lengths)
    sums = _coarse_kernel(cells.positions, cells.species, system.box, cells.start, cells.shape,
                          cells.half_stencil, system.model.sigma2, x, 1.0 / lengths, source,
                          np.argsort(-lengths, kind="stable"))
    sums[:, 2:, :] /= sums[:, :1, :]  # x_bar = sum x_j w_ij / rho_i (rho_i >= 1: no NaN)
    return cells.unsort(sums.reshape(len(sums), -1))


def _square_sources(lengths):
    """For each length l, the index of 2 l in the list (exp(-r/l) = exp(-r/2l)^2), else -1.

    Exact comparison is right: doubling is exact in binary, so the double nearest a decimal
    2 l is twice the double nearest l (0.7 and 1.4 pair up).
    """
    source = np.full(len(lengths), -1, dtype=np.int64)
    for k, ell in enumerate(lengths):
        double = np.flatnonzero(lengths == 2.0 * ell)
        if len(double):
            source[k] = double[0]
    return source


@njit(cache=True)
def _coarse_kernel(pos, spec, box, start, shape, half_stencil, sigma2, x, inv_lengths, source,
                   by_length_desc):
    """sums[i, f, l] = sum_j y_f(i, j) exp(-r_ij / l), y = (1, sigma_ij^2, x_j...).

    Each unordered pair of particle images is met once and feeds both ends: a cell meets
    itself (pairs i < j) and the cells of the half stencil (all pairs, an image of i itself
    included: its mirror image, across the other half, lies at the same distance).  Going
    cell pair by cell pair keeps the few rows of ``sums`` being updated in the L1 cache.
    """
    n_len = inv_lengths.size
    sums = np.zeros((pos.shape[0], 2 + x.shape[1], n_len))
    capacity = np.max(np.diff(start)) ** 2  # pairs of one cell pair
    r = np.empty(capacity)
    pair = np.empty((capacity, 2), dtype=np.int64)
    w = np.empty((capacity, n_len))
    for home in range(start.size - 1):
        for s in range(-1, half_stencil.shape[0]):
            if s < 0:
                m = _cell_pairs(pos, start, home, home, 0.0, 0.0, True, r, pair)
            else:
                c, sx, sy = image_cell(home % shape[0], home // shape[0], half_stencil[s],
                                         shape, box)
                m = _cell_pairs(pos, start, home, c, sx, sy, False, r, pair)
            _weights(r[:m], inv_lengths, source, by_length_desc, w)
            for k in range(m):
                i, j = pair[k]
                s2 = sigma2[spec[i], spec[j]]
                _accumulate(sums[i], w[k], s2, x[j])
                _accumulate(sums[j], w[k], s2, x[i])
    ones = np.ones(n_len)
    for i in range(pos.shape[0]):
        _accumulate(sums[i], ones, sigma2[spec[i], spec[i]], x[i])  # i itself, r = 0
    return sums


@njit(cache=True, inline="always")
def _cell_pairs(pos, start, a, b, sx, sy, same, r, pair):
    """Pairs (i in cell a, j in cell b shifted by (sx, sy)) nearer than R_N; j > i if same."""
    r2_max = R_N * R_N
    m = 0
    for i in range(start[a], start[a + 1]):
        for j in range(i + 1 if same else start[b], start[b + 1]):
            dx = pos[j, 0] + sx - pos[i, 0]
            dy = pos[j, 1] + sy - pos[i, 1]
            r2 = dx * dx + dy * dy
            if r2 < r2_max:
                r[m] = math.sqrt(r2)
                pair[m, 0] = i
                pair[m, 1] = j
                m += 1
    return m


@njit(cache=True, inline="always")
def _accumulate(out, w, s2, x):
    """out[:, l] += w_l * (1, s2, x...)."""
    for l in range(w.size):
        out[0, l] += w[l]
        out[1, l] += s2 * w[l]
    for f in range(x.size):
        for l in range(w.size):
            out[2 + f, l] += x[f] * w[l]


@njit(cache=True)
def _weights(r, inv_lengths, source, by_length_desc, w):
    """w[k, l] = exp(-r_k / l); longest lengths first so that squares find their source."""
    for l in by_length_desc:
        src = source[l]
        if src < 0:
            for k in range(r.size):
                w[k, l] = math.exp(-r[k] * inv_lengths[l])
        else:
            for k in range(r.size):
                w[k, l] = w[k, src] * w[k, src]
