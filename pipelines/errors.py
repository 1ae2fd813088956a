"""User-facing errors: one line that names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path


class ArenatreeError(Exception):
    """An error the CLI prints as one line (no traceback) and exits non-zero on."""


class InputError(ArenatreeError):
    """Bad input data.

    Rendered as ``FILE:LINE: field 'FIELD': MESSAGE``; ``line`` is 1-based (a line of a text
    file, or a record number where the format has no lines, then said as ``record N``).
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        unit: str = "line",
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        if line is None:
            where = self.path
        elif unit == "line":
            where = f"{self.path}:{line}"
        else:
            where = f"{self.path}: {unit} {line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class StoreBusyError(ArenatreeError):
    """The database stayed locked by another process for longer than the wait allowed."""


class NotApplicable(ArenatreeError, ValueError):
    """An analysis the data cannot support (style control without answer texts, ...): the
    message is the one sentence that says why."""
