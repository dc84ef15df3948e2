"""``python -m mpi_glass`` is the ``mpi_glass`` command."""
import sys

from . import signals

signals.start_up()      # first: a stop signal during the imports below is not lost (it is
                        # recorded, and acted on once main() has started)

from .cli import main  # noqa: E402

sys.exit(main())
