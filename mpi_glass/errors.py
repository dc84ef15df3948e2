"""The one exception type for bad user input.

Anything a user can get wrong (a config key, a file, a dataset, an array handed to the API)
raises InputError with a one-line message naming the thing and what was expected.  The CLI
prints it as one line and exits with status 2; it subclasses ValueError so library users can
catch it the usual way.
"""


class InputError(ValueError):
    """Bad user input: the message is one line that names the key, file or array."""
