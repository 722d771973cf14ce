"""Errors of the export path. Messages name the source, row and column, never a cell value."""

from __future__ import annotations

from guard.errors import GuardError


class ExportError(GuardError):
    """An export that cannot go on; nothing is written at the output path."""

    status_code = 422
    type_slug = "export-failed"


class ExportInputError(ExportError):
    """Input data that does not fit: the message says where (source, row, column) and what."""

    type_slug = "invalid-export-input"

    def __init__(
        self, problem: str, *, source: str, row: int | None = None, column: str | None = None
    ) -> None:
        where = [source]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")
        self.problem = problem
        self.source = source
        self.row = row
        self.column = column


class KAnonymityError(ExportError):
    """Quasi-identifier groups smaller than k, and the profile says to fail."""

    type_slug = "k-anonymity-violated"
