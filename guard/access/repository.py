"""All database queries of the access capability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from guard.access.models import ApiKey

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import Row
    from sqlalchemy.orm import Session


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
