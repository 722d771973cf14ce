"""Alembic environment: every model module is imported so autogenerate sees all tables.

guard runs migrations through :func:`guard.storage.migrate.upgrade_to_head`, which passes its
own connection (already inside a locked transaction). The ``alembic`` command line works too:
it connects to ``GUARD_DATABASE_URL`` or the embedded SQLite file.
"""

from __future__ import annotations

import contextlib

from alembic import context
from sqlalchemy.engine import Connection

import guard.audit.models  # registers the audit tables on Base.metadata
import guard.console.models  # registers the console's sessions on Base.metadata
import guard.export.models  # registers the export tables on Base.metadata
import guard.incidents.models  # registers the incident tables on Base.metadata
import guard.records.models  # registers the records table on Base.metadata
import guard.subjects.models  # registers the subjects and retention tables on Base.metadata
from guard.storage.base import Base

with contextlib.suppress(ImportError):
    import guard.access.models  # noqa: F401 - registers the access tables when present

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the given connection, or one made from guard's settings."""
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    from guard.config import get_settings  # noqa: PLC0415 - only for the alembic CLI
    from guard.storage.engine import create_engine_for  # noqa: PLC0415

    engine = create_engine_for(get_settings())
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """Render SQL for the configured URL without connecting."""
    from guard.config import get_settings  # noqa: PLC0415 - only for the alembic CLI

    url = context.config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
