"""``python -m mpi_glass`` is the ``mpi_glass`` command."""
import sys

from .cli import main

sys.exit(main())
