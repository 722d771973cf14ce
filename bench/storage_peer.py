"""The storage peer of the benchmarks: a plain copy of a guard table, to time raw SQL against.

``raw_table_like`` builds a table with the same columns, types and indexes as one of guard's
(no triggers, no chain, no crypto), so a benchmark can INSERT and SELECT the very rows guard
wrote and report guard's overhead as a ratio of what the database alone costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Column, Index, MetaData, Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def raw_table_like(source: Table, name: str, engine: Engine) -> Table:
    """Create ``name`` in ``engine``'s database shaped like ``source``; return it."""
    meta = MetaData()
    raw = Table(
        name,
        meta,
        *(
            Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in source.columns
        ),
    )
    for index in source.indexes:
        Index(f"bench_{index.name}", *(raw.c[c.name] for c in index.columns))
    meta.create_all(engine)
    return raw
