"""Engines and sessions: the embedded SQLite file by default, PostgreSQL in production.

SQLite runs in WAL mode with a busy timeout, foreign keys on and full fsync on commit (audit
events must survive a crash). The driver's own implicit transactions are switched off so that
guard emits ``BEGIN`` itself: a caller that must serialise writers (the audit chain) asks for
``BEGIN IMMEDIATE`` through the :data:`SQLITE_BEGIN_IMMEDIATE` execution option.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection, Engine

    from guard.config import Settings

#: Execution option: on SQLite, start the transaction with ``BEGIN IMMEDIATE`` (write lock now).
SQLITE_BEGIN_IMMEDIATE = "guard_sqlite_begin_immediate"
#: Milliseconds a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _sqlite_on_connect_with(synchronous: str) -> Any:  # noqa: ANN401 - an event listener
    def on_connect(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DB-API
        # isolation_level None: pysqlite stops issuing its own BEGIN; _sqlite_on_begin does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return on_connect


def _sqlite_on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine_for(settings: Settings) -> Engine:
    """The engine for ``settings.sqlalchemy_url`` with guard's per-backend tuning."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        synchronous = "FULL" if settings.sqlite_synchronous == "full" else "NORMAL"
        event.listen(engine, "connect", _sqlite_on_connect_with(synchronous))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sqlalchemy.create_engine(url, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error; services never commit.

    ``write``: the unit reads and then writes; on SQLite it takes the write lock at ``BEGIN``
    (``BEGIN IMMEDIATE``), so a concurrent writer makes it wait rather than fail with
    "database is locked" when its read snapshot turns stale. PostgreSQL callers lock the rows
    they read with ``FOR UPDATE`` instead.
    """
    session = factory()
    try:
        if write:
            session.connection(execution_options=cast("Any", {SQLITE_BEGIN_IMMEDIATE: True}))
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
