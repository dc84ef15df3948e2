"""Periodic cell grids and Verlet neighbour lists for a square box (numba kernels).

A Verlet list holds, for every particle i, the particles j whose minimum-image distance was
below a pair-dependent list radius (interaction cutoff + skin) when the list was built.  It is
stored compactly as CSR: row i is ``neighbours[start[i]:start[i + 1]]`` (uint32, so indexing
needs no negative-index wraparound), **sorted by particle index**.  A loop over a row
therefore meets the interacting neighbours in an order that depends only on which particles
interact, not on when the list was built or which idle skin members it carries, so a
floating-point sum over a row does not depend on the build either.

Building: particles are binned into cells at least half the largest list radius wide and a
5 x 5 block of cells is searched (6.25 r^2 of candidate area, against 9 r^2 for 3 x 3 cells of
side r).  The cells of one block row are contiguous in the cell-ordered copies of the
coordinates, so each row of the block is one or two straight scans that append candidates
without branching.  Each pair is tested once, from the particle earlier in cell order (the
forward half of its block: half the distance tests), and entered in both rows; transposing
the (symmetric) list then sorts the rows.  A box too narrow for the block is scanned whole;
the torus distance is a metric, so the skin argument holds for any box at least twice the
interaction cutoff.
"""
import math

import numpy as np
from numba import njit

#: Cells are at least 1 / SUBDIVISION of the largest list radius wide, and a
#: (2 SUBDIVISION + 1)^2 block of them is searched.  2 measured fastest (N = 4000).
SUBDIVISION = 2


@njit(cache=True, inline="always")
def minimum_image(d, box, half):
    """The periodic image of a coordinate difference |d| < 1.5 box nearest to zero."""
    d = d - box if d > half else d
    return d + box if d < -half else d


@njit(cache=True, inline="always")
def _cell_coordinate(x, scale, m):
    return min(max(int(x * scale), 0), m - 1)


@njit(cache=True)
def cell_grid(positions, box, min_side):
    """Bin particles (wrapped in [0, box)) into m x m square cells of side >= min_side.

    Returns (m, start, members): the particles of cell c = cy * m + cx are
    ``members[start[c]:start[c + 1]]``, in increasing index order (stable counting sort).
    """
    n = positions.shape[0]
    m = max(1, int(box / min_side))
    scale = m / box
    cell_of = np.empty(n, np.int64)
    start = np.zeros(m * m + 1, np.int64)
    for i in range(n):
        cell_of[i] = (_cell_coordinate(positions[i, 1], scale, m) * m
                      + _cell_coordinate(positions[i, 0], scale, m))
        start[cell_of[i] + 1] += 1
    for c in range(m * m):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        members[fill[cell_of[i]]] = i
        fill[cell_of[i]] += 1
    return m, start, members


@njit(cache=True, inline="always")
def _scan(lo, hi, xs, ys, ss, members, x, y, c0, c1, c2, box, half, row, length):
    """Append to row[length:] those of members[lo:hi] within the list radius of a particle
    at (x, y) whose squared radii against species 0, 1, 2 are c0, c1, c2."""
    for k in range(lo, hi):
        dx = minimum_image(xs[k] - x, box, half)
        dy = minimum_image(ys[k] - y, box, half)
        s = ss[k]
        cut2 = c0 if s == 0 else (c1 if s == 1 else c2)
        row[length] = members[k]          # written always, kept only if close: no branch
        length += dx * dx + dy * dy < cut2
    return length


@njit(cache=True)
def _block_row(cstart, m, reach, cx, cy, oy):
    """The cell ranges [a, b) and [c, d) covering the block's cells in grid row cy + oy
    (the second is empty unless the block wraps around the box in x)."""
    base = ((cy + oy) % m) * m
    lo, hi = cx - reach, cx + reach + 1
    a, b = base + max(lo, 0), base + min(hi, m)
    c = d = base
    if lo < 0:
        c, d = base + m + lo, base + m
    elif hi > m:
        d = base + hi - m
    return cstart[a], cstart[b], cstart[c], cstart[d]


@njit(cache=True)
def _forward_cells(cstart, m, reach, cx, cy):
    """The cell ranges [a, b) and [c, d) of cells cx + 1 ... cx + reach in grid row cy
    (the second is empty unless they wrap around the box in x)."""
    base = cy * m
    hi = cx + reach + 1
    a, b = base + cx + 1, base + min(hi, m)
    c = d = base
    if hi > m:
        d = base + hi - m
    return cstart[a], cstart[b], cstart[c], cstart[d]


@njit(cache=True)
def _append(out, used, row, length):
    """Append row[:length] to the growing array ``out``; returns (out, used)."""
    if used + length > out.shape[0]:
        bigger = np.empty(max(2 * out.shape[0], used + length), np.uint32)
        bigger[:used] = out[:used]
        out = bigger
    for k in range(length):
        out[used + k] = row[k]
    return out, used + length


@njit(cache=True)
def _sorted_rows(start, nbr):
    """The rows of a symmetric CSR pattern, each sorted by index, by transposing it.

    Filling row j with every i that lists j, for i in increasing order, is a counting sort:
    the transpose of a symmetric pattern is itself, with every row in order.
    """
    fill = start[:-1].copy()
    out = np.empty_like(nbr)
    for i in range(start.shape[0] - 1):
        for k in range(start[i], start[i + 1]):
            j = nbr[k]
            out[fill[j]] = i
            fill[j] += 1
    return out


@njit(cache=True)
def _symmetric_rows(members, hstart, half):
    """The full CSR list, rows sorted by index, from each pair found once: half row p
    (``half[hstart[p]:hstart[p + 1]]``) holds the partners of particle members[p]."""
    n = members.shape[0]
    start = np.zeros(n + 1, np.int64)
    for p in range(n):
        start[members[p] + 1] += hstart[p + 1] - hstart[p]
        for k in range(hstart[p], hstart[p + 1]):
            start[half[k] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    nbr = np.empty(start[n], np.uint32)
    for p in range(n):
        i = members[p]
        for k in range(hstart[p], hstart[p + 1]):
            j = half[k]
            nbr[fill[i]] = j
            nbr[fill[j]] = i
            fill[i] += 1
            fill[j] += 1
    return start, _sorted_rows(start, nbr)


@njit(cache=True)
def verlet_list(positions, species, box, cut2):
    """CSR neighbour list of pairs with minimum-image distance^2 < cut2[species_i, species_j].

    ``cut2`` is a symmetric (3, 3) table of squared list radii.  Returns (start int64 (N+1,),
    neighbours uint32): row i, sorted by index and without i, is
    ``neighbours[start[i]:start[i + 1]]``.
    """
    n, half, reach = positions.shape[0], 0.5 * box, SUBDIVISION
    m, cstart, members = cell_grid(positions, box, math.sqrt(cut2.max()) / reach)
    whole = m < 2 * reach + 1       # the block would wrap onto itself: scan everything
    xs, ys, ss = np.empty(n), np.empty(n), np.empty(n, np.int64)
    for k in range(n):              # cell-ordered copies: the scans read memory in order
        j = members[k]
        xs[k], ys[k], ss[k] = positions[j, 0], positions[j, 1], species[j]
    scale = m / box
    hstart = np.zeros(n + 1, np.int64)
    row = np.empty(n, np.int64)
    out = np.empty(max(16, 32 * n), np.uint32)
    # Each pair is found once, from the particle earlier in cell order: the rest of its own
    # cell, the next `reach` cells of its grid row, and the next `reach` rows of its block.
    for p in range(n):
        x, y, a = xs[p], ys[p], ss[p]
        c0, c1, c2 = cut2[a, 0], cut2[a, 1], cut2[a, 2]
        if whole:
            length = _scan(p + 1, n, xs, ys, ss, members, x, y, c0, c1, c2, box, half, row, 0)
        else:
            cx, cy = _cell_coordinate(x, scale, m), _cell_coordinate(y, scale, m)
            length = _scan(p + 1, cstart[cy * m + cx + 1], xs, ys, ss, members, x, y, c0, c1,
                           c2, box, half, row, 0)
            a0, b0, a1, b1 = _forward_cells(cstart, m, reach, cx, cy)
            length = _scan(a0, b0, xs, ys, ss, members, x, y, c0, c1, c2, box, half, row,
                           length)
            length = _scan(a1, b1, xs, ys, ss, members, x, y, c0, c1, c2, box, half, row,
                           length)
            for oy in range(1, reach + 1):
                a0, b0, a1, b1 = _block_row(cstart, m, reach, cx, cy, oy)
                length = _scan(a0, b0, xs, ys, ss, members, x, y, c0, c1, c2, box, half,
                               row, length)
                length = _scan(a1, b1, xs, ys, ss, members, x, y, c0, c1, c2, box, half,
                               row, length)
        out, hstart[p + 1] = _append(out, hstart[p], row, length)
    return _symmetric_rows(members, hstart, out[:hstart[n]])
