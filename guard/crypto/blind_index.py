"""Blind indexes: keyed hashes that let guard find a record by email, phone or account id.

Threat: an index over encrypted data leaks what it indexes. A plain hash of an email can be
reversed by hashing a list of candidate emails; an HMAC cannot without the key. The key is
derived from the master key for this purpose only (``guard/blind-index/v1``) and per tenant and
field, so one tenant's index values cannot be matched against another's, and an email's index
never equals a phone's. What remains visible is equality: two records with the same email have
the same index value (that is what makes the lookup work); record ids are random and the index
carries nothing else. Callers normalise values first (case-folded email, phone digits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard.crypto.keys import load_master_key
from guard.crypto.primitives import HMAC_KEY_BYTES, hmac_sha256

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.crypto.keys import MasterKey

BLIND_INDEX_PURPOSE = b"guard/blind-index/v1/"


class BlindIndexer:
    """HMAC-SHA256 blind indexes under per-tenant keys derived from the master key."""

    __slots__ = ("_cache", "_master")

    def __init__(self, master: MasterKey) -> None:
        self._master = master
        self._cache: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> BlindIndexer:
        """The indexer over the configured master key (see guard.crypto.keys)."""
        return cls(load_master_key(settings))

    def _key(self, tenant: str) -> bytes:
        key = self._cache.get(tenant)
        if key is None:
            if not tenant:
                raise ValueError("tenant must not be empty")
            key = self._master.derive(BLIND_INDEX_PURPOSE + tenant.encode("utf-8"), HMAC_KEY_BYTES)
            self._cache[tenant] = key
        return key

    def index(self, *, tenant: str, field: str, value: str) -> str:
        """The blind index (64 hex digits) of an already normalised ``value`` of ``field``."""
        digest = hmac_sha256(self._key(tenant), field.encode("utf-8"), value.encode("utf-8"))
        return digest.hex()

    def __repr__(self) -> str:
        return f"BlindIndexer(master={self._master!r}, tenants={len(self._cache)})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("BlindIndexer cannot be pickled")
