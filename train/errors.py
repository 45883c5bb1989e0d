"""Error types that the command lines turn into exit code 2 with a one-line message."""


class UsageError(Exception):
    """Bad usage or bad input: reported as one line, exit code 2, no traceback."""


class DataError(UsageError):
    """A dataset is missing, empty, corrupt or in an unexpected layout."""


class CheckpointError(UsageError):
    """A checkpoint is missing, corrupt, or does not match the model being built."""
