"""ORM tables of the access capability: API keys (hashes only, never the key), and their count.

The count of changes to ``api_keys`` tells a process whether a key it verified earlier still
stands (see :class:`ApiKeyChanges`).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLAlchemy resolves Mapped[...] at run time

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guard.storage.base import Base, UtcDateTime


class ApiKey(Base):
    """One API key: the lookup prefix and a SHA-256 of the full key, its role and tenant."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_prefix", "prefix", unique=True),
        Index("ix_api_keys_tenant", "tenant"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(8), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    tenant: Mapped[str] = mapped_column(String(63), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, prefix={self.prefix!r}, role={self.role!r})"


class ApiKeyChanges(Base):
    """One row (id 1) whose ``version`` goes up with every change to ``api_keys`` but inserts.

    Database triggers count the changes (migration 0011), in the transaction that makes them,
    so a revocation by guard, by the CLI on another host or by hand in SQL is counted alike.
    A process that remembers a verified key remembers the version it read first, and trusts
    the memory only while the version is unchanged (:mod:`guard.access.apikeys`).
    """

    __tablename__ = "api_key_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), nullable=False
    )
