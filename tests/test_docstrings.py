"""The examples in the public docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["mpi_glass.validation", "mpi_glass.mapper", "mpi_glass.imbalance",
           "mpi_glass.imbalance.pairs", "mpi_glass.imbalance.greedy", "mpi_glass.neighbours",
           "mpi_glass.dynamics", "mpi_glass.descriptors", "mpi_glass.model",
           "mpi_glass.parallel", "mpi_glass.config", "mpi_glass.mc", "mpi_glass.fixedpoint",
           "mpi_glass.equilibrium", "mpi_glass.regression", "mpi_glass.study",
           "mpi_glass.schema", "mpi_glass.continuation", "mpi_glass.methods",
           "mpi_glass.imbalance.dii", "mpi_glass.imbalance.dii_select", "mpi_glass.importers",
           "mpi_glass.ensembles", "mpi_glass.bench.certificate", "mpi_glass.safefs",
           "mpi_glass.signals", "mpi_glass.kernel_cache"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
