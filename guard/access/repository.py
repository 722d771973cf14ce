"""All database queries of the access capability."""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

import structlog
from sqlalchemy import select

from guard.access.models import ApiKey

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import Row
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import PoolProxiedConnection

log = structlog.get_logger(__name__)

_READ_CHANGES: Final = "SELECT version FROM api_key_changes WHERE id = 1"


class ApiKeyRepository:
    """Queries on ``api_keys``; the caller's session scope commits or rolls back."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, key: ApiKey) -> ApiKey:
        """Stage a new key row and flush it (so a duplicate prefix fails here)."""
        self._session.add(key)
        self._session.flush()
        return key

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, if any."""
        return self._session.get(ApiKey, key_id)

    def get_by_prefix(self, prefix: str) -> ApiKey | None:
        """The key with this lookup prefix, if any."""
        return self._session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()

    def lookup(self, prefix: str) -> Row[Any] | None:
        """The key with this lookup prefix as a plain row (authentication: every request)."""
        return self._session.execute(
            select(ApiKey.__table__).where(ApiKey.prefix == prefix)
        ).first()

    def all(self, *, tenant: str | None = None) -> Sequence[ApiKey]:
        """Every key (of one tenant if given), oldest first."""
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if tenant is not None:
            query = query.where(ApiKey.tenant == tenant)
        return self._session.scalars(query).all()

    def mark_revoked(self, key: ApiKey, when: datetime) -> None:
        """Set ``revoked_at`` unless already revoked (the first revocation stands)."""
        if key.revoked_at is None:
            key.revoked_at = when
            self._session.flush()


class ApiKeyChangeCounter:
    """Reads ``api_key_changes.version`` (see :class:`ApiKeyChanges`) on every authentication.

    Over one connection of its own, kept open and in autocommit mode: each read is one
    single-row statement that sees every change committed before it, without what a session
    costs (a pool checkout, and on PostgreSQL the pool's liveness ping). Thread-safe. A read
    that fails answers None and closes the connection; the next read opens another.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._connection: PoolProxiedConnection | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def read(self) -> int | None:
        """The current version, or None if it cannot be read (then nothing may be trusted)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._open()
                cursor = self._connection.cursor()
                try:
                    cursor.execute(_READ_CHANGES)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception as exc:  # noqa: BLE001 - any driver error: fail closed, say which
                log.warning("api_keys.change_counter_unreadable", error=type(exc).__name__)
                self._close()
                return None
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Close the connection (a later read opens a new one)."""
        with self._lock:
            self._close()

    def _open(self) -> PoolProxiedConnection:
        connection = self._engine.raw_connection()
        connection.detach()  # its own: never returned to (nor counted in) the pool
        dbapi = connection.dbapi_connection
        if dbapi is None:  # pragma: no cover - a fresh raw connection always has one
            connection.close()
            raise RuntimeError("no DBAPI connection")
        self._engine.dialect.set_isolation_level(dbapi, "AUTOCOMMIT")
        # closed with this counter if nobody calls close() (services dropped without closing)
        self._finalizer = weakref.finalize(self, _close_quietly, connection)
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            _close_quietly(self._connection)
            self._connection = None


def _close_quietly(connection: PoolProxiedConnection) -> None:
    with contextlib.suppress(Exception):  # already broken: it is dropped either way
        connection.close()
