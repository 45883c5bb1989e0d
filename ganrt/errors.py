"""The error types every stage raises, and the exit code each one means on a command line.

Design rule (design.md section 6): bad usage or input exits 2 with one line and no
traceback; a bug exits 1. `UsageError` and its subclasses are the first kind, whatever
stage raises them, so each CLI needs one `except UsageError` and `exit_code`.
"""
from __future__ import annotations


class UsageError(Exception):
    """Bad usage or bad input: reported as one line, exit code 2, no traceback."""

    exit_code = 2


class DataError(UsageError):
    """A dataset is missing, empty, corrupt or in an unexpected layout."""


class CheckpointError(UsageError):
    """A checkpoint is missing, corrupt, or does not match the model being built."""


class ArtifactError(UsageError):
    """An artifact is missing, corrupt, or lacks what was asked of it."""


class BackendUnavailable(UsageError, RuntimeError):
    """A backend cannot run on this machine; the message says what to install or change."""


class FeedError(UsageError, ValueError):
    """Feeds that do not match the model's input spec (names, dtype, rank, dims, sizes, labels)."""


class InputError(UsageError, ValueError):
    """Bad input from a caller (image, label, count): a 4xx in the service, exit 2 in the CLI."""


class UnknownLabel(InputError):
    """A label outside the model's classes."""


class BadImage(InputError):
    """Bytes or arrays that are not a usable image."""


class ImageTooLarge(InputError):
    """An image with more pixels than allowed."""


class ImageTooSmall(BadImage):
    """An image smaller than the model's smallest input."""


class UnsupportedOperation(InputError):
    """The artifact cannot do this (e.g. translate with a noise-to-image model)."""


def exit_code(error: BaseException) -> int:
    """The exit code a command line returns for `error`: 2 for usage errors, 130 for Ctrl-C, else 1."""
    if isinstance(error, KeyboardInterrupt):
        return 130
    return int(getattr(error, "exit_code", 1))
