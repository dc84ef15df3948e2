"""Cells and neighbours, the one place that bins particles: Verlet lists, cells over periodic
images, and the incremental cells of random sequential addition (numba kernels).

Callers and the guarantee each relies on:

* ``verlet_list`` (MC moves, cage and bond neighbours of ``dynamics``): rows sorted by index;
* ``verlet_pairs`` (``mc``'s banded lists): the same pairs, each once, with the squared
  distance the search computed, bit for bit ``fixedpoint.squared_distance``;
* ``ImageCells`` + ``image_cell`` (``descriptors``): every periodic image within a radius,
  even a radius larger than the box (R_N = 20 > L/2 for small systems);
* ``linked_cells`` / ``add_to_cell`` / ``clear_of`` (``mc.initial_configuration``): cells filled
  one particle at a time, queried before each insertion.

A Verlet list holds, for every particle i, the particles j whose minimum-image distance was
below a pair-dependent list radius (interaction cutoff + skin) when the list was built; the
box is square (a float: the MC's) or rectangular ((Lx, Ly): imported data), each side at
least twice the largest list radius.  It is stored compactly as CSR: row i is
``neighbours[start[i]:start[i + 1]]`` (uint32, so indexing needs no negative-index
wraparound), **sorted by particle index**.  A loop over a row
therefore meets the interacting neighbours in an order that depends only on which particles
interact, not on when the list was built or which idle skin members it carries, so a
floating-point sum over a row does not depend on the build either.

Building: particles are binned into cells at least half the largest list radius wide and a
5 x 5 block of cells is searched (6.25 r^2 of candidate area, against 9 r^2 for 3 x 3 cells of
side r).  The cells of one block row are contiguous in the cell-ordered copies of the
coordinates, so each row of the block is one or two straight scans that append candidates
without branching.  Each pair is tested once, from the particle earlier in cell order (the
forward half of its block: half the distance tests), and entered in both rows; transposing
the (symmetric) list then sorts the rows.  A box too narrow for the block (in x or in y) is
scanned whole; the torus distance is a metric, so the skin argument holds for any box at
least twice the interaction cutoff.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

__all__ = ["verlet_list", "verlet_pairs", "box_sides", "cell_grid", "ImageCells", "image_cell",
           "minimum_image", "linked_cells", "linked_cell_of", "add_to_cell", "clear_of"]

#: Cells are at least 1 / SUBDIVISION of the largest list radius wide, and a
#: (2 SUBDIVISION + 1)^2 block of them is searched.  2 measured fastest (N = 4000).
SUBDIVISION = 2


def box_sides(box):
    """(Lx, Ly) of a periodic box given as one side (square) or two, in Python and in kernels.

    In a kernel a float box stays that very value on both sides (the MC's square box: same
    arithmetic, same bits as before rectangles), a 2-tuple or 2-array gives its entries.

    Examples
    --------
    >>> box_sides(10.0), box_sides((9.0, 14.0)), box_sides(np.array([9.0, 14.0]))
    ((10.0, 10.0), (9.0, 14.0), (9.0, 14.0))
    """
    sides = np.broadcast_to(np.asarray(box, dtype=np.float64), (2,))
    return float(sides[0]), float(sides[1])


@overload(box_sides, inline="always")
def _box_sides_in_kernels(box):
    if isinstance(box, types.Float):
        return lambda box: (box, box)
    if isinstance(box, types.Integer):
        return lambda box: (float(box), float(box))
    if isinstance(box, (types.Array, types.BaseTuple)):
        return lambda box: (float(box[0]), float(box[1]))
    return None


@njit(cache=True, inline="always")
def minimum_image(d, box, half):
    """The periodic image of a coordinate difference |d| < 1.5 box nearest to zero."""
    d = d - box if d > half else d
    return d + box if d < -half else d


@njit(cache=True)
def cell_grid(positions, box, shape):
    """Bin particles (wrapped in [0, Lx) x [0, Ly)) into shape[0] x shape[1] cells.

    Cell (cx, cy) covers [cx w_x, (cx + 1) w_x) x [cy w_y, (cy + 1) w_y), w = box / shape.
    Returns (start, members, cell_xy): the particles of cell c = cy * shape[0] + cx are
    ``members[start[c]:start[c + 1]]`` in increasing index order (a stable counting sort), and
    ``cell_xy[i]`` is particle i's (cx, cy).  The one binning of every cell list here.
    """
    n = positions.shape[0]
    mx, my = shape[0], shape[1]
    wx, wy = box[0] / mx, box[1] / my
    cell_xy = np.empty((n, 2), np.int64)
    start = np.zeros(mx * my + 1, np.int64)
    for i in range(n):
        cell_xy[i, 0] = min(int(positions[i, 0] // wx), mx - 1)
        cell_xy[i, 1] = min(int(positions[i, 1] // wy), my - 1)
        start[cell_xy[i, 1] * mx + cell_xy[i, 0] + 1] += 1
    for c in range(mx * my):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        c = cell_xy[i, 1] * mx + cell_xy[i, 0]
        members[fill[c]] = i
        fill[c] += 1
    return start, members, cell_xy


@njit(cache=True, inline="always")
def _scan(lo, hi, xs, ys, ss, members, x, y, radii2, lx, hx, ly, hy, row, dist, length):
    """Append to row[length:] those of members[lo:hi] within the list radius of a particle
    at (x, y) whose squared radii against species s are radii2[s], and their squared
    distances to dist[length:]; the box is lx x ly, hx and hy its half sides."""
    for k in range(lo, hi):
        dx = minimum_image(xs[k] - x, lx, hx)
        dy = minimum_image(ys[k] - y, ly, hy)
        cut2 = radii2[ss[k]]
        r2 = dx * dx + dy * dy
        row[length] = members[k]          # written always, kept only if close: no branch
        dist[length] = r2
        length += r2 < cut2
    return length


@njit(cache=True)
def _block_row(cstart, m, my, reach, cx, cy, oy):
    """The cell ranges [a, b) and [c, d) covering the block's cells in grid row cy + oy of
    an m x my grid (the second is empty unless the block wraps around the box in x)."""
    base = ((cy + oy) % my) * m
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
    """The cell ranges [a, b) and [c, d) of cells cx + 1 ... cx + reach in grid row cy of a
    grid m cells wide (the second is empty unless they wrap around the box in x)."""
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
        bigger = np.empty(max(2 * out.shape[0], used + length), out.dtype)
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
def _half_pairs(positions, species, box, cut2, with_r2):
    """Every pair within its list radius, found once (see ``verlet_pairs``); the squared
    distances only ``with_r2`` (else an empty array)."""
    lx, ly = box_sides(box)
    n, hx, hy, reach = positions.shape[0], 0.5 * lx, 0.5 * ly, SUBDIVISION
    mx = max(1, int(lx / (math.sqrt(cut2.max()) / reach)))   # cells >= radius / reach wide
    my = max(1, int(ly / (math.sqrt(cut2.max()) / reach)))
    cstart, members, cell_xy = cell_grid(positions, np.array([lx, ly]), np.array([mx, my]))
    whole = min(mx, my) < 2 * reach + 1     # the block would wrap onto itself: scan all
    xs, ys, ss = np.empty(n), np.empty(n), np.empty(n, np.uint64)
    for k in range(n):              # cell-ordered copies: the scans read memory in order
        j = members[k]
        xs[k], ys[k], ss[k] = positions[j, 0], positions[j, 1], species[j]
    hstart = np.zeros(n + 1, np.int64)
    row, dist = np.empty(n, np.int64), np.empty(n)
    out = np.empty(max(16, 32 * n), np.uint32)
    out_r2 = np.empty(max(16, 32 * n) if with_r2 else 0)
    # Each pair is found once, from the particle earlier in cell order: the rest of its own
    # cell, the next `reach` cells of its grid row, and the next `reach` rows of its block.
    for p in range(n):
        x, y, a = xs[p], ys[p], ss[p]
        radii2 = cut2[a]
        if whole:
            length = _scan(p + 1, n, xs, ys, ss, members, x, y, radii2, lx, hx, ly, hy, row,
                           dist, 0)
        else:
            cx, cy = cell_xy[members[p], 0], cell_xy[members[p], 1]
            length = _scan(p + 1, cstart[cy * mx + cx + 1], xs, ys, ss, members, x, y, radii2,
                           lx, hx, ly, hy, row, dist, 0)
            a0, b0, a1, b1 = _forward_cells(cstart, mx, reach, cx, cy)
            length = _scan(a0, b0, xs, ys, ss, members, x, y, radii2, lx, hx, ly, hy, row,
                           dist, length)
            length = _scan(a1, b1, xs, ys, ss, members, x, y, radii2, lx, hx, ly, hy, row,
                           dist, length)
            for oy in range(1, reach + 1):
                a0, b0, a1, b1 = _block_row(cstart, mx, my, reach, cx, cy, oy)
                length = _scan(a0, b0, xs, ys, ss, members, x, y, radii2, lx, hx, ly, hy,
                               row, dist, length)
                length = _scan(a1, b1, xs, ys, ss, members, x, y, radii2, lx, hx, ly, hy,
                               row, dist, length)
        if with_r2:
            out_r2, _ = _append(out_r2, hstart[p], dist, length)
        out, hstart[p + 1] = _append(out, hstart[p], row, length)
    return members, hstart, out[:hstart[n]], out_r2[:hstart[n]]


@njit(cache=True)
def verlet_pairs(positions, species, box, cut2):
    """Every pair with minimum-image distance^2 < cut2[species_i, species_j], once, with
    that distance^2: for the callers that order rows themselves (``mc``'s banded lists).
    ``box`` is a side (square) or (Lx, Ly), as for ``verlet_list``.

    Returns (first, hstart, partners, r2): the partners of particle first[p] are
    ``partners[hstart[p]:hstart[p + 1]]`` (each pair listed from one end only) and r2[k] is
    the squared distance of pair k, ``fixedpoint.squared_distance`` of partners[k] from
    first[p] to the bit (and, the minimum image being odd, of first[p] from partners[k]).
    """
    return _half_pairs(positions, species, box, cut2, True)


@njit(cache=True)
def verlet_list(positions, species, box, cut2):
    """CSR neighbour list of pairs with minimum-image distance^2 < cut2[species_i, species_j].

    ``cut2`` is a symmetric (K, K) table of squared list radii, K the model's species.  Returns (start int64 (N+1,),
    neighbours uint32): row i, sorted by index and without i, is
    ``neighbours[start[i]:start[i + 1]]``.  ``box`` is the side of a square box (a float:
    the MC's, compiled as such) or the sides (Lx, Ly) of a rectangular one (a 2-tuple or
    2-array); each side must be at least twice the largest list radius (one image a pair).

    Examples
    --------
    >>> pos = np.array([[1.0, 1.0], [2.0, 1.0], [6.0, 1.0]])
    >>> start, nbr = verlet_list(pos, np.zeros(3, np.int64), 10.0, np.full((3, 3), 4.0))
    >>> start.tolist(), nbr.tolist()
    ([0, 1, 2, 2], [1, 0])

    A rectangle: 0 and 2 are neighbours across the short side only.

    >>> pos = np.array([[1.0, 0.5], [1.0, 3.0], [1.0, 5.5]])
    >>> start, nbr = verlet_list(pos, np.zeros(3, np.int64), (10.0, 6.0), np.full((3, 3), 4.0))
    >>> start.tolist(), nbr.tolist()
    ([0, 1, 1, 2], [2, 0])
    """
    members, hstart, half, _ = _half_pairs(positions, species, box, cut2, False)
    return _symmetric_rows(members, hstart, half)


# --- cells over periodic images (every image within a radius, any box) -----------------

class ImageCells:
    """Particles sorted by cell, and the cell offsets that can hold images within ``radius``.

    ``positions`` (N, 2) lie in [0, Lx) x [0, Ly), ``box`` is (Lx, Ly); cells (``cell_grid``)
    are about ``fraction * radius`` wide.  An offset (dx, dy) from cell (cx, cy) names the
    unwrapped cell (cx + dx, cy + dy): its particles, shifted by whole boxes, are each image
    exactly once, whatever the box size, so every image within the radius is found even when
    the radius exceeds the box.
    """

    def __init__(self, positions, species, box, radius, fraction):
        n = len(positions)
        # at most ~16 N cells: a sparse system in a huge box would visit empty cells
        most = 4 * math.isqrt(n) + 1
        self.shape = np.clip(box // (fraction * radius), 1, most).astype(np.int64)
        width = box / self.shape
        self.start, self.order, xy = cell_grid(positions, box, self.shape)
        self.cell_xy = np.ascontiguousarray(xy[self.order])
        self.positions = np.ascontiguousarray(positions[self.order])
        self.species = np.ascontiguousarray(species[self.order])
        self.stencil = _stencil(width, radius)
        dx, dy = self.stencil.T
        self.half_stencil = np.ascontiguousarray(self.stencil[(dy > 0) | ((dy == 0) & (dx > 0))])
        self.max_candidates = len(self.stencil) * int(np.diff(self.start).max())

    def unsort(self, values):
        """Values per cell-ordered particle back in the callers' particle order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out


def _stencil(width, radius):
    """Cell offsets whose closest point to the home cell is nearer than ``radius``."""
    k = np.ceil(radius / width).astype(np.int64)
    dx, dy = np.meshgrid(np.arange(-k[0], k[0] + 1), np.arange(-k[1], k[1] + 1), indexing="ij")
    gap_x = np.maximum(np.abs(dx) - 1, 0) * width[0]
    gap_y = np.maximum(np.abs(dy) - 1, 0) * width[1]
    keep = gap_x**2 + gap_y**2 < radius**2
    return np.ascontiguousarray(np.stack([dx[keep], dy[keep]], axis=1))


@njit(cache=True, inline="always")
def image_cell(hx, hy, offset, shape, box):
    """(cell index, image shift x, shift y) of the unwrapped cell (hx, hy) + offset."""
    ux = hx + offset[0]
    uy = hy + offset[1]
    wx = ux % shape[0]  # numba follows Python: the remainder has the sign of the divisor
    wy = uy % shape[1]
    return wx + shape[0] * wy, (ux // shape[0]) * box[0], (uy // shape[1]) * box[1]


# --- incremental linked cells (random sequential addition) -------------------------------

@njit(cache=True)
def linked_cells(n, box, cell_side):
    """Empty m x m linked cells for up to n particles: (m, head, next).

    ``head[c]`` is the last particle added to cell c and ``next[i]`` the one added before i in
    the same cell (-1 ends a list); ``add_to_cell`` inserts, ``clear_of`` queries.
    """
    m = max(1, int(box / cell_side))
    return m, np.full(m * m, -1, np.int64), np.full(n, -1, np.int64)


@njit(cache=True, inline="always")
def linked_cell_of(x, y, m, box):
    """(cx, cy) of a point in [0, box)^2 among m x m cells."""
    return min(int(x * m / box), m - 1), min(int(y * m / box), m - 1)


@njit(cache=True, inline="always")
def add_to_cell(head, nxt, m, cx, cy, i):
    """Insert particle i into cell (cx, cy)."""
    c = cy * m + cx
    nxt[i] = head[c]
    head[c] = i


@njit(cache=True)
def clear_of(pos, species, head, nxt, m, cx, cy, x, y, a, box, min_sep2):
    """Whether a particle of species a at (x, y) in cell (cx, cy) keeps at least
    sqrt(min_sep2[a, b]) from every particle already in the cells (minimum image).

    The 3 x 3 cells around (cx, cy) suffice when cells are at least the largest separation
    wide; fewer than 3 cells a side are searched whole.
    """
    half = 0.5 * box
    for oy in range(-1, 2) if m >= 3 else range(m):
        for ox in range(-1, 2) if m >= 3 else range(m):
            j = head[((cy + oy) % m) * m + (cx + ox) % m]
            while j >= 0:
                dx = minimum_image(pos[j, 0] - x, box, half)
                dy = minimum_image(pos[j, 1] - y, box, half)
                if dx * dx + dy * dy < min_sep2[a, species[j]]:
                    return False
                j = nxt[j]
    return True
