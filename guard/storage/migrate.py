"""Run Alembic migrations from code: at every start-up, from any number of processes at once.

Concurrent start-ups are serialised by the database itself: a transaction-level advisory lock
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite. The whole upgrade runs in that one transaction
(both databases have transactional DDL), so a second process waits, then finds head and
does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from guard.storage.engine import SQLITE_BEGIN_IMMEDIATE, is_sqlite

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: The Alembic scripts ship inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Advisory lock key for migrations ("guard-mg" as a number); shared by every guard process.
_MIGRATION_LOCK_KEY = 0x67756172642D6D67


def alembic_config() -> Config:
    """An Alembic config pointing at guard's migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Migrate the database to the newest revision; safe to call concurrently and repeatedly."""
    config = alembic_config()
    with engine.connect() as connection:
        if is_sqlite(connection):
            # Connection.execution_options() sets the option in place.
            connection.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
