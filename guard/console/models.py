"""The console's server-side sessions: the cookie holds a random token, the table its hash."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy resolves Mapped[...] at run time

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime


class ConsoleSession(Base):
    """One signed-in officer: who, until when, and the CSRF token of their forms."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires", "expires_at"),)

    #: sha256 of the cookie's token: a copy of the table signs no one in.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(200), nullable=False)
    principal_name: Mapped[str] = mapped_column(String(200), nullable=False)
    principal_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    role: Mapped[str] = mapped_column(String(64), nullable=False)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    #: The absolute end (sign-in + GUARD_CONSOLE_SESSION_HOURS).
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
