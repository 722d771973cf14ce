"""API keys: creation (shown once), authentication, revocation, listing.

Threat: a stolen database dump, a log line or an error message handing out working keys, and
guessing or forging keys. A key is ``gk_<prefix>_<secret>`` with 256 bits of secret from
``secrets``; only its SHA-256 is stored (a slow hash adds nothing for a random 256-bit secret),
next to the public prefix used to find the row. Comparison is constant-time, an unknown prefix
costs the same comparison, and every failure — malformed, unknown, tampered, expired, revoked —
raises the same kind of error whose message never contains the key.

A process remembers the keys it verified (by prefix: the stored hash, the principal and the
expiry), so that a known key costs no query for its row. The memory is trusted only together
with the database's count of changes to ``api_keys`` (``api_key_changes``, kept by triggers in
the transaction of each change): every authentication reads the count first, and a memory made
under another count is not used. So a revocation takes effect at once in every process on the
database, whoever made it; expiry is checked against the clock on every call; and when the count
cannot be read nothing is remembered or trusted (every call reads the key's row, as before).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from guard.access.errors import AuthenticationError, PrincipalNotFoundError
from guard.access.models import ApiKey
from guard.access.principals import Principal, validate_name, validate_role, validate_tenant
from guard.access.repository import ApiKeyChangeCounter, ApiKeyRepository
from guard.errors import InvalidInputError
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable

    from sqlalchemy import Row
    from sqlalchemy.orm import Session, sessionmaker

    from guard.access.audit import AuditRecorder

KEY_PREFIX: Final = "gk_"
PREFIX_LENGTH: Final = 8
SECRET_BYTES: Final = 32
_KEY_PATTERN: Final = re.compile(r"gk_([A-Za-z0-9_-]{8})_([A-Za-z0-9_-]{43})")
_MAX_KEY_LENGTH: Final = 64
_PREFIX_ATTEMPTS: Final = 5
#: Compared against when the prefix is unknown, so that path costs the same work.
_DUMMY_HASH: Final = hashlib.sha256(b"guard: no such key").hexdigest()
_INVALID: Final = "invalid API key"
#: Most verified keys a process remembers; past it the memory starts again.
MAX_REMEMBERED_KEYS: Final = 4096


def _utcnow() -> datetime:
    return datetime.now(UTC)


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 of the whole key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: never the key or its hash."""

    id: str
    name: str
    role: str
    tenant: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _info(row: ApiKey | Row[Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        tenant=row.tenant,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


@dataclass(frozen=True, slots=True)
class _Verified:
    """A key this process verified: valid as long as ``api_keys`` is still at ``version``."""

    key_hash: str
    principal: Principal
    expires_at: datetime | None
    version: int


class ApiKeyService:
    """Create, authenticate, revoke and list API keys; every change is audited if given."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        audit: AuditRecorder | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._session_factory = session_factory
        self._audit = audit
        self._clock = clock
        self._changes = ApiKeyChangeCounter(session_factory.kw["bind"])
        self._verified: dict[str, _Verified] = {}
        self._verified_version: int | None = None
        self._verified_lock = threading.Lock()

    def close(self) -> None:
        """Forget the verified keys and close the connection the change count is read on."""
        with self._verified_lock:
            self._verified.clear()
        self._changes.close()

    def create(
        self,
        *,
        name: str,
        role: str,
        tenant: str,
        expires_in: timedelta | None = None,
        actor: Principal | None = None,
    ) -> tuple[Principal, str]:
        """A new key's principal and the key itself; the key cannot be shown again."""
        validate_name(name)
        validate_role(role)
        validate_tenant(tenant)
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInputError("expires_in: must be positive")
        now = self._clock()
        with session_scope(self._session_factory) as session:
            repository = ApiKeyRepository(session)
            for _ in range(_PREFIX_ATTEMPTS):
                prefix = secrets.token_urlsafe(6)
                if repository.get_by_prefix(prefix) is None:
                    break
            else:  # pragma: no cover - 48 random bits colliding five times running
                raise InvalidInputError("could not allocate a unique key prefix; try again")
            key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
            row = repository.add(
                ApiKey(
                    id=str(uuid.uuid4()),
                    prefix=prefix,
                    key_hash=hash_key(key),
                    name=name,
                    role=role,
                    tenant=tenant,
                    created_at=now,
                    expires_at=now + expires_in if expires_in is not None else None,
                    revoked_at=None,
                )
            )
            principal = Principal(id=row.id, name=name, role=role, tenant=tenant, kind="api_key")
        self._record(
            "principal.create",
            key_id=principal.id,
            tenant=tenant,
            actor=actor,
            details={"key_role": role, "expires": expires_in is not None},
        )
        return principal, key

    def authenticate(self, key: str) -> Principal:
        """The principal of a valid key; AuthenticationError (without the key) otherwise."""
        match = (
            _KEY_PATTERN.fullmatch(key)
            if isinstance(key, str) and len(key) <= _MAX_KEY_LENGTH
            else None
        )
        if match is None:
            raise AuthenticationError(f"{_INVALID}: not of the form gk_<prefix>_<secret>")
        presented = hash_key(key)
        prefix = match.group(1)
        # read before the row: a memory made from the row is then never newer than its count
        version = self._changes.read()
        known = self._verified.get(prefix) if version is not None else None
        if (
            known is not None
            and known.version == version
            and hmac.compare_digest(presented, known.key_hash)
        ):
            if known.expires_at is not None and known.expires_at <= self._clock():
                raise AuthenticationError(f"{_INVALID}: the key is expired")
            return known.principal
        with session_scope(self._session_factory) as session:
            row = ApiKeyRepository(session).lookup(prefix)
            stored = row.key_hash if row is not None else _DUMMY_HASH
            if not hmac.compare_digest(presented, stored) or row is None:
                raise AuthenticationError(f"{_INVALID}: unknown or wrong key")
            info = _info(row)
        status = info.status(self._clock())
        if status != "active":
            raise AuthenticationError(f"{_INVALID}: the key is {status}")
        principal = Principal(
            id=info.id, name=info.name, role=info.role, tenant=info.tenant, kind="api_key"
        )
        if version is not None:
            self._remember(prefix, _Verified(stored, principal, info.expires_at, version))
        return principal

    def _remember(self, prefix: str, verified: _Verified) -> None:
        """Keep a verified key; memories made under an older count of changes are dropped."""
        with self._verified_lock:
            if self._verified_version != verified.version:
                self._verified.clear()
                self._verified_version = verified.version
            elif len(self._verified) >= MAX_REMEMBERED_KEYS:
                self._verified.clear()
            self._verified[prefix] = verified

    def revoke(
        self, key_id: str, *, tenant: str | None = None, actor: Principal | None = None
    ) -> None:
        """Revoke a key by id (within ``tenant`` if given); it stops working at once."""
        with session_scope(self._session_factory) as session:
            repository = ApiKeyRepository(session)
            row = repository.get(key_id)
            # another tenant's key is reported as missing, not as forbidden: no probing
            if row is None or (tenant is not None and row.tenant != tenant):
                raise PrincipalNotFoundError("no API key with this id")
            tenant = row.tenant
            repository.mark_revoked(row, self._clock())
        self._record("principal.revoke", key_id=key_id, tenant=tenant, actor=actor, details={})

    def list(
        self, tenant: str | None = None, *, actor: Principal | None = None
    ) -> builtins.list[ApiKeyInfo]:
        """Every key (of one tenant if given), without keys or hashes."""
        if tenant is not None:
            validate_tenant(tenant)
        with session_scope(self._session_factory) as session:
            keys = [_info(row) for row in ApiKeyRepository(session).all(tenant=tenant)]
        self._record(
            "principal.list", key_id="*", tenant=tenant, actor=actor, details={"count": len(keys)}
        )
        return keys

    def _record(
        self,
        action: str,
        *,
        key_id: str,
        tenant: str | None,
        actor: Principal | None,
        details: dict[str, str | int | bool],
    ) -> None:
        if self._audit is None:
            return
        self._audit.record(
            action=action,
            resource=f"api_key:{key_id}",
            decision="allow",
            outcome="success",
            principal=actor.id if actor else None,
            role=actor.role if actor else None,
            tenant=tenant,
            details=details,
        )
