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
