"""The one exception type for mistakes a user can fix: the CLI prints its message and exits non-zero."""


class UserError(Exception):
    """Bad input from a user (a file, an option, a name). The message is one sentence naming what is wrong."""
