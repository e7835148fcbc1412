"""User-facing errors: one line that names the file or value and the problem."""


class MelbenchError(Exception):
    """An error the CLI prints as one line (exit code 2), without a traceback.

    Raise it for anything a user can fix: a bad file, an unknown name, a wrong option.
    """
