"""Exceptions, one per failure family. Each names the file, record or field at fault."""

from __future__ import annotations


class O3VideoError(Exception):
    """Base class of every error this package raises on purpose."""


class VideoDecodeError(O3VideoError):
    """A video (or image list) could not be read: missing, not a video, corrupt, empty.

    The message always starts with the path (or ``<frames>`` for in-memory input).
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class UnknownFamilyError(O3VideoError):
    """A model config names an architecture no registered family handles."""


class BoxSpaceError(O3VideoError, ValueError):
    """A box conversion lacks the sizes it needs, or names an unknown space."""


class DataError(O3VideoError):
    """A data file or record is unusable: malformed JSON, a bad record, missing media.

    The message names the file and, where known, the record ``index`` (0-based position in
    the file) and ``field``; both are also attributes, with every ``issues`` found.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        index: int | None = None,
        field: str | None = None,
        issues: tuple[object, ...] = (),
    ) -> None:
        self.path = path
        self.index = index
        self.field = field
        self.issues = issues
        super().__init__(message)
