"""Server-side sessions of the console: opened at sign-in, ended by sign-out or expiry.

The cookie carries 32 random bytes; the table holds their sha256, so reading the table signs no
one in. A session ends after ``GUARD_CONSOLE_IDLE_MINUTES`` without a request and
``GUARD_CONSOLE_SESSION_HOURS`` after sign-in, whichever first; every sign-in makes a new
session (a token known before sign-in is worth nothing after it: no fixation). Each session has
its own CSRF token, compared in constant time on every form post.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from guard.access.principals import Principal
from guard.console.models import ConsoleSession
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings

#: Only touch last_seen_at when it is this stale: most page views write nothing.
_TOUCH_EVERY = timedelta(seconds=30)
#: A cookie value longer than this is no token of ours (ours are 43 characters).
_MAX_TOKEN = 256


@dataclass(frozen=True)
class SignedIn:
    """The officer behind a console request."""

    principal: Principal
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a form's CSRF token is the session's (constant time)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class SessionStore:
    """Console sessions in guard's database."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._idle = timedelta(minutes=settings.console_idle_minutes)
        self._absolute = timedelta(hours=settings.console_session_hours)

    def open(self, principal: Principal, *, now: datetime | None = None) -> tuple[str, SignedIn]:
        """A new session for ``principal``: (the cookie's token, the session)."""
        now = now or datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        row = ConsoleSession(
            id=_digest(token),
            principal_id=principal.id,
            principal_name=principal.name[:200],
            principal_kind=principal.kind,
            role=principal.role,
            tenant=principal.tenant,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self._absolute,
        )
        with session_scope(self._factory) as session:
            # sessions that ended long ago go when new ones start: the table stays small
            session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            session.add(row)
        return token, _signed_in(row)

    def find(self, token: str | None, *, now: datetime | None = None) -> SignedIn | None:
        """The live session behind a cookie's token, or None (and an expired one is removed)."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        now = now or datetime.now(UTC)
        with session_scope(self._factory) as session:
            row = session.execute(
                select(ConsoleSession).where(ConsoleSession.id == _digest(token))
            ).scalar_one_or_none()
            if row is None:
                return None
            if now >= row.expires_at or now - row.last_seen_at >= self._idle:
                session.delete(row)
                return None
            if now - row.last_seen_at >= _TOUCH_EVERY:
                row.last_seen_at = now
            return _signed_in(row)

    def close(self, token: str | None) -> bool:
        """End the session behind ``token``; whether there was one."""
        if not token or len(token) > _MAX_TOKEN:
            return False
        with session_scope(self._factory) as session:
            result = session.execute(
                delete(ConsoleSession).where(ConsoleSession.id == _digest(token))
            )
            return bool(getattr(result, "rowcount", 0))


def _signed_in(row: ConsoleSession) -> SignedIn:
    principal = Principal(
        id=row.principal_id,
        name=row.principal_name,
        role=row.role,
        tenant=row.tenant,
        kind=row.principal_kind,  # type: ignore[arg-type] # written from a Principal
    )
    return SignedIn(principal=principal, csrf_token=row.csrf_token, expires_at=row.expires_at)
