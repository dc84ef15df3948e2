"""The mapper protocol: how kernels' orchestration spreads independent work items.

A mapper has ``size`` (how many workers share the items: it only sets block counts, never a
result) and ``map(fn, n)``, which returns ``[fn(i) for i in range(n)]`` on every caller, in
index order.  ``SerialMapper`` runs everything here; ``mpi_glass.parallel.Distributor`` offers
the same with the indices spread over MPI ranks and the results allgathered.  Code that takes
a mapper (the greedy selections, the regression study) never imports MPI.
"""
from __future__ import annotations

__all__ = ["SerialMapper"]


class SerialMapper:
    """Every work item on this process, in index order.

    Examples
    --------
    >>> SerialMapper().map(lambda i: i * i, 4)
    [0, 1, 4, 9]
    """

    size = 1

    def map(self, fn, n):
        """``[fn(i) for i in range(n)]``."""
        return [fn(i) for i in range(n)]
