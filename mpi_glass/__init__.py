"""mpi_glass: which structure controls glassy dynamics? Iso-configurational Monte Carlo,
structural descriptors and information-imbalance feature selection, serial or under MPI."""
__version__ = "0.1.0"
