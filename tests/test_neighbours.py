"""The cell module: one binning, every periodic image, incremental cells; against brute force."""
import numpy as np
import pytest

from mpi_glass import neighbours as nb


@pytest.mark.parametrize("box, shape", [((10.0, 10.0), (4, 4)), ((7.3, 12.1), (3, 5)),
                                         ((5.0, 5.0), (1, 1))])
def test_cell_grid_is_a_stable_sort_by_floor_of_position(box, shape):
    rng = np.random.default_rng(1)
    box, shape = np.array(box), np.array(shape)
    pos = rng.uniform(0, 1, (300, 2)) * box
    pos[:5] = np.array([[0.0, 0.0], [box[0] / shape[0], 0.0]] * 2 + [[0.0, 0.0]])  # on edges
    start, members, cell_xy = nb.cell_grid(pos, box, shape)
    xy = np.minimum(np.floor(pos / (box / shape)).astype(np.int64), shape - 1)
    assert np.array_equal(cell_xy, xy)
    cell = xy[:, 1] * shape[0] + xy[:, 0]
    assert np.array_equal(members, np.argsort(cell, kind="stable"))
    assert np.array_equal(start, np.searchsorted(cell[members], np.arange(shape.prod() + 1)))


@pytest.mark.parametrize("box, radius", [((12.0, 12.0), 3.0), ((6.0, 9.0), 20.0)])
def test_image_cells_find_every_image_within_the_radius_once(box, radius):
    rng = np.random.default_rng(2)
    box = np.array(box)
    pos = rng.uniform(0, 1, (40, 2)) * box
    cells = nb.ImageCells(pos, np.zeros(40, np.int64), box, radius, 0.5)
    i = 7
    home = cells.cell_xy[np.flatnonzero(cells.order == i)[0]]
    found = []
    for offset in cells.stencil:
        c, sx, sy = nb.image_cell(home[0], home[1], offset, cells.shape, box)
        for k in range(cells.start[c], cells.start[c + 1]):
            d = cells.positions[k] + (sx, sy) - pos[i]
            if 0 < d @ d < radius**2:
                found.append(np.round(d, 9).tolist())
    reach = int(np.ceil(radius / box.min())) + 1       # brute force over enough images
    brute = [np.round(pos[j] + (a * box[0], b * box[1]) - pos[i], 9).tolist()
             for j in range(40) for a in range(-reach, reach + 1)
             for b in range(-reach, reach + 1)]
    brute = [d for d in brute if 0 < np.dot(d, d) < radius**2]
    assert sorted(found) == sorted(brute)


def test_linked_cells_answer_like_brute_force():
    rng = np.random.default_rng(3)
    box, n = 9.0, 60
    species = rng.integers(0, 3, n).astype(np.int8)
    min_sep2 = np.array([[0.5, 0.6, 0.7], [0.6, 0.8, 0.9], [0.7, 0.9, 1.0]])
    m, head, nxt = nb.linked_cells(n, box, 1.0)
    pos = np.zeros((n, 2))
    for i in range(n):
        x, y = rng.uniform(0, box, 2)
        cx, cy = nb.linked_cell_of(x, y, m, box)
        d = pos[:i] - (x, y)
        d -= box * np.round(d / box)
        brute = bool(np.all((d**2).sum(1) >= min_sep2[species[i], species[:i]]))
        assert nb.clear_of(pos, species, head, nxt, m, cx, cy, x, y, species[i], box,
                           min_sep2) == brute
        pos[i] = x, y
        nb.add_to_cell(head, nxt, m, cx, cy, i)


def brute_force_rows(pos, species, sides, cut2):
    """Rows j != i with minimum-image distance^2 < cut2[s_i, s_j] in an Lx x Ly box, all
    pairs in plain numpy."""
    d = pos[None, :, :] - pos[:, None, :]
    d -= sides * np.rint(d / sides)
    close = (d**2).sum(-1) < cut2[species[:, None], species[None, :]]
    np.fill_diagonal(close, False)
    return [np.flatnonzero(row).tolist() for row in close]


@pytest.mark.parametrize("sides, scale", [((9.0, 14.0), 1.0), ((14.0, 9.0), 1.0),
                                          ((4.5, 14.0), 1.6)])   # 4.5: too narrow, scanned whole
@pytest.mark.parametrize("as_tuple", [True, False])
def test_verlet_list_in_a_rectangle_matches_brute_force(sides, scale, as_tuple):
    """Lx != Ly, with pairs placed across each edge and the corner; the list radius differs
    by species pair.  verlet_pairs finds the same pairs, once each, with their distance^2."""
    rng = np.random.default_rng(11)
    lx, ly = sides
    n = 260
    pos = rng.uniform(0, 1, (n, 2)) * sides
    pos[:8] = [[0.1, 3.0], [lx - 0.2, 3.1], [2.0, 0.05], [2.3, ly - 0.3],
               [0.02, 0.03], [lx - 0.1, ly - 0.1], [lx / 2, 0.1], [lx / 2, ly - 0.2]]
    species = rng.integers(0, 3, n).astype(np.uint8)
    cut2 = (scale * np.array([[0.9, 1.0, 1.1], [1.0, 1.2, 1.3], [1.1, 1.3, 1.4]])) ** 2
    box = sides if as_tuple else np.array(sides)
    start, nbr = nb.verlet_list(pos, species, box, cut2)
    rows = [nbr[start[i]:start[i + 1]].tolist() for i in range(n)]
    brute = brute_force_rows(pos, species, np.array(sides), cut2)
    assert rows == brute
    assert 1 in rows[0] and 3 in rows[2] and 5 in rows[4] and 7 in rows[6]  # across edges
    first, hstart, partners, r2 = nb.verlet_pairs(pos, species, box, cut2)
    pairs = sorted((min(first[p], j), max(first[p], j)) for p in range(n)
                   for j in partners[hstart[p]:hstart[p + 1]])
    assert pairs == sorted((i, j) for i in range(n) for j in brute[i] if i < j)
    for p in range(n):
        for k in range(hstart[p], hstart[p + 1]):
            d = pos[partners[k]] - pos[first[p]]
            d -= np.array(sides) * np.rint(d / sides)
            assert r2[k] == pytest.approx(d @ d, rel=1e-12)


def test_a_float_box_is_the_square_of_that_side():
    rng = np.random.default_rng(12)
    pos = rng.uniform(0, 8.0, (150, 2))
    species = rng.integers(0, 3, 150).astype(np.uint8)
    cut2 = np.full((3, 3), 1.3**2)
    a = nb.verlet_list(pos, species, 8.0, cut2)
    b = nb.verlet_list(pos, species, (8.0, 8.0), cut2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert nb.box_sides(8.0) == (8.0, 8.0) and nb.box_sides([3, 4]) == (3.0, 4.0)
