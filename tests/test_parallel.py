"""The distributor: deterministic split and index-ordered map, serial and under MPI."""
import numpy as np
import pytest

from mpi_glass.parallel import Distributor, serial


class FakeComm:
    """Enough of a communicator to test the split logic at any size without MPI."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_assignment_covers_every_item_once_and_balances(size):
    costs = np.random.default_rng(0).integers(1, 10, size=23)
    owners = [Distributor(FakeComm(r, size)).my_items(costs) for r in range(size)]
    flat = sorted(i for part in owners for i in part)
    assert flat == list(range(23))
    loads = [costs[part].sum() for part in owners]
    assert max(loads) - min(loads) <= costs.max()


def test_serial_map_in_order():
    assert serial().map(lambda i: i * i, 5) == [0, 1, 4, 9, 16]


@pytest.mark.mpi(min_size=2)
def test_map_identical_on_all_ranks():
    dist = Distributor()
    result = dist.map(lambda i: (i, np.sin(i)), 11)
    assert [r[0] for r in result] == list(range(11))
    everyone = dist.allgather(result)
    assert all(other == result for other in everyone)


@pytest.mark.mpi(min_size=2)
def test_to_root_moves_data():
    dist = Distributor()
    got = dist.to_root(np.arange(3) + dist.rank, owner=1)
    if dist.is_root:
        assert np.array_equal(got, np.arange(3) + 1)
    else:
        assert got is None


# -- run-wide progress counter ----------------------------------------------------------------

def test_serial_progress_counter_is_a_plain_counter():
    counter = serial().progress_counter()
    seen = []
    for n in (3, 4, 5):
        counter.add(n)
    assert counter.total() == 12
    assert counter.close(seen.append) == 12 and seen == [12]


@pytest.mark.mpi(min_size=2)
def test_progress_counter_sums_every_rank_on_the_root():
    dist = Distributor()
    counter = dist.progress_counter(every=0.0)      # report at every add
    for step in range(50):
        counter.add(dist.rank + 1)
        counter.total()
    seen = []
    total = counter.close(seen.append)
    expected = 50 * sum(r + 1 for r in range(dist.size))
    if dist.is_root:
        assert total == expected and seen[-1] == expected
        assert seen == sorted(seen)                  # counts only grow
    else:
        assert total == 50 * (dist.rank + 1) and seen == []
    # A second stage starts from a clean channel: nothing of the first is left over.
    again = dist.progress_counter(every=0.0)
    again.add(1)
    assert again.close() == (dist.size if dist.is_root else 1)
