"""User-facing errors: one line that names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plain(value: Any) -> Any:
    """``value`` as a plain Python value for an error message: numpy scalars (``np.int64(2)``,
    ``np.float64(0.5)``, ``np.str_('a')``) become ``2``, ``0.5``, ``'a'``; anything else is returned
    as is. Format data values as ``repr(plain(v))`` or ``f"{plain(v)!r}"``, never ``f"{v!r}"``."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


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


class SnapshotError(ArenatreeError):
    """What a write session committed is stored, but the read snapshot could not be refreshed.

    ``stored`` says what is stored (e.g. "the import into 'votes' is stored"); ``reason`` is the
    operating system's (or DuckDB's) one-line account, e.g. "No space left on device".
    """

    def __init__(self, db: str | Path, reason: str, stored: str = "the changes are stored") -> None:
        self.db = str(db)
        self.reason = reason
        self.stored = stored
        super().__init__(
            f"{self.db}: {stored}, but its read copy could not be refreshed ({reason}), so "
            "'datasets', 'leaderboard' and the dashboard cannot show it yet; free space next to "
            "the database, then run 'arenatree datasets' to refresh the read copy"
        )

    def about(self, stored: str) -> SnapshotError:
        """The same error, saying ``stored`` instead (the caller knows what was written)."""
        return SnapshotError(self.db, self.reason, stored)


class StaleSnapshotError(ArenatreeError):
    """The read snapshot is older than the database and refreshing it failed just now."""

    def __init__(self, db: str | Path, reason: str) -> None:
        self.db = str(db)
        self.reason = reason
        super().__init__(
            f"{self.db}: the read copy is older than the database and could not be refreshed "
            f"({reason}); free space next to the database and try again (nothing stored is lost)"
        )


class StoreWriteError(ArenatreeError):
    """The database could not be written (disk full, read-only, I/O error): the transaction in
    progress rolled back; what earlier transactions committed is kept."""

    def __init__(
        self, db: str | Path, reason: str, lost: str = "the transaction in progress was rolled back"
    ) -> None:
        self.db = str(db)
        self.reason = reason
        self.lost = lost
        super().__init__(
            f"{self.db}: could not write to the database ({reason}); {lost}; free space next to "
            "the database and run the command again"
        )

    def about(self, lost: str) -> StoreWriteError:
        """The same error, saying ``lost`` instead (the caller knows what was not stored)."""
        return StoreWriteError(self.db, self.reason, lost)
