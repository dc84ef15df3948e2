"""Exception types and the exit statuses of the command line.

Anything a user can get wrong (a config key, a file, a dataset, an array handed to the API)
raises InputError with a one-line message naming the thing, what was expected and the way
out.  The CLI prints it as one line and exits with status 2; it subclasses ValueError so
library users can catch it the usual way.  Any other exception is a bug in mpi_glass: the
CLI exits 1 and asks for a report.  A run stopped by a signal exits 75 (EX_TEMPFAIL: rerun
the same command to resume).
"""

EXIT_OK = 0
EXIT_INTERNAL = 1       #: a bug: please report it (the traceback is shown with --debug)
EXIT_INPUT = 2          #: bad input: config, files, command line, environment
EXIT_INTERRUPTED = 75   #: EX_TEMPFAIL: stopped by a signal after checkpointing; rerun to resume


class InputError(ValueError):
    """Bad user input: the message is one line that names the key, file or array.

    ``same_on_every_rank`` says whether every rank meets the same error (a config, a file
    every rank reads): then only rank 0 prints it.  A file one rank reads alone (a chain's
    checkpoint) passes False, so that rank prints it.
    """

    def __init__(self, message, same_on_every_rank=True):
        super().__init__(message)
        self.same_on_every_rank = same_on_every_rank


class Interrupted(Exception):
    """A signal asked us to stop; every active chain has been checkpointed."""
