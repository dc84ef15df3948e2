"""Information Imbalance (II) and greedy feature selection (paper Sec. II C, III A-C).

Definition
----------
For N points described in two spaces A and B (Euclidean distances, the point itself excluded
everywhere),

    Delta(A -> B) = 2 / (N^2 k) * sum_i sum_{j in kNN_A(i)} r^B_ij ,

where r^B_ij is the rank of j among i's neighbours in B.  Ties (duplicate points, discrete
features) follow one rule: Delta is its expectation when every tie is broken uniformly at
random.  Hence

    r^B_ij = 1 + #{m != i,j : d^B_im < d^B_ij} + 1/2 #{m != i,j : d^B_im = d^B_ij},

and when T points tie for i's last places in A (L points strictly closer, L < k <= L + T),
each of them carries the weight (k - L) / T.  Delta ~ 0: A predicts B's neighbourhoods;
Delta ~ 1: A says nothing about B.

Layout
------
``kernels``  numba kernels of the exact Delta (row helpers, 1-D fast paths, pair kernels);
``steps``    numba kernels of one pruned greedy step (supervised, unsupervised);
``pairs``    the public Delta functions (validation, kernel choice, scaling);
``greedy``   the greedy searches (orchestration over a mapper, ``GreedyResult``).
Input checks come from ``mpi_glass.validation``, the mapper protocol from ``mpi_glass.mapper``,
synthetic data and the benchmark from ``mpi_glass.bench.imbalance``.

Examples
--------
>>> import numpy as np
>>> from mpi_glass.imbalance import imbalance_pair
>>> x = np.arange(100.0) ** 1.5        # distinct gaps: no ties
>>> imbalance_pair(x, x)               # same neighbours in both spaces: the minimum, 2 / N
(0.02, 0.02)
"""
from ..mapper import SerialMapper
from .greedy import GreedyResult, supervised_greedy, unsupervised_greedy
from .pairs import imbalance, imbalance_pair, single_feature_table, standardise

__all__ = ["imbalance", "imbalance_pair", "single_feature_table", "standardise",
           "supervised_greedy", "unsupervised_greedy", "GreedyResult", "SerialMapper"]
