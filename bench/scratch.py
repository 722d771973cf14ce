"""What the benchmarks share: scratch databases and the storage peer.

``ScratchDatabase`` is a fresh SQLite file or PostgreSQL schema (``GUARD_BENCH_POSTGRES_URL``,
the local test server by default) that is dropped afterwards, so a benchmark never touches real
data. ``raw_table_like`` builds a plain copy of one of guard's tables (same columns, types and
indexes; no triggers, chain or crypto) so a benchmark can INSERT and SELECT the very rows guard
wrote and report guard's overhead as a ratio of what the database alone costs.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import sqlalchemy
from sqlalchemy import Column, Index, MetaData, Table, text

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

POSTGRES_URL = os.environ.get(
    "GUARD_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _run_admin(sql: str) -> None:
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


class ScratchDatabase:
    """The URL of a fresh SQLite file (``sqlite``) or PostgreSQL schema (``postgresql``)."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.schema: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
            return
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        _run_admin(f'CREATE SCHEMA "{self.schema}"')
        self.url = (
            sqlalchemy.engine.make_url(POSTGRES_URL)
            .update_query_dict({"options": f"-csearch_path={self.schema}"})
            .render_as_string(hide_password=False)
        )

    def drop(self) -> None:
        """Drop the PostgreSQL schema (SQLite files go with the temporary directory)."""
        if self.schema is not None:
            _run_admin(f'DROP SCHEMA "{self.schema}" CASCADE')


def postgres_available() -> bool:
    """Whether the benchmark PostgreSQL answers."""
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except sqlalchemy.exc.OperationalError:
        return False
    return True


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
