"""mpi_glass: which structure controls glassy dynamics? Iso-configurational Monte Carlo,
structural descriptors and information-imbalance feature selection, serial or under MPI."""
from .kernel_cache import refresh as _refresh_kernel_cache

__version__ = "0.1.0"

# Before any kernel is loaded: numba's cache would keep kernels that inline an edited module.
_refresh_kernel_cache()
