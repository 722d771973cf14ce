"""Purpose keys and export manifests: what every way in (API, files, records, Spark) shares.

* :meth:`ExportService.purpose_key` returns the tenant's key for an export purpose, creating it
  (32 random bytes, wrapped under the current key-encryption key, bound to tenant, purpose and
  generation) the first time. Only the wrapped form is stored.
* :meth:`ExportService.shred_purpose` deletes it: every pseudonym and token ever made for that
  purpose becomes unlinkable. A later export for the purpose gets a new generation.
* :meth:`ExportService.record` stores a finished export's manifest (profile and its hash, row
  counts, checksums, column decisions, k-anonymity) and appends the audit event that
  references it by id and sha256, in that order, so an audit event never points at nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from guard.crypto.envelope import WrappedKey
from guard.crypto.errors import IntegrityError, UnknownKeyVersionError
from guard.export.errors import ExportError
from guard.export.models import ExportManifest, ExportPurposeKey
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from guard.audit.service import AuditTrail
    from guard.config import Settings
    from guard.crypto.envelope import EnvelopeCipher
    from guard.export.transform import RunResult

#: Audit resource of export events: ``export:<profile>``.
RESOURCE_PREFIX = "export:"


def _now() -> datetime:
    return datetime.now(UTC)


def _key_owner(purpose: str, generation: int) -> str:
    """What a purpose key's wrapping is bound to (with the tenant): purpose and generation."""
    return f"export-purpose:{purpose}#{generation}"


@dataclass(frozen=True, slots=True)
class PurposeKey:
    """A purpose key in clear, for one export; never logged, never pickled into a log."""

    tenant: str
    purpose: str
    generation: int
    material: bytes

    def __repr__(self) -> str:
        return f"PurposeKey({self.tenant!r}, {self.purpose!r}, generation={self.generation})"


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """A stored manifest's identity and summary."""

    id: str
    sha256: str
    profile: str
    purpose: str
    engine: str
    status: str
    rows_in: int
    rows_out: int
    created_at: datetime
    document: dict[str, Any]


class PurposeShreddedError(ExportError):
    """The purpose's key was shredded; nothing under it can be linked or revealed."""

    status_code = 410
    type_slug = "purpose-shredded"


class ManifestNotFoundError(ExportError):
    """No manifest with this id in this tenant."""

    status_code = 404
    type_slug = "not-found"


def canonical_json(document: dict[str, Any]) -> str:
    """The one serialisation a manifest is hashed in."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build_manifest(
    result: RunResult, *, manifest_id: str, tenant: str, principal: str, generation: int
) -> dict[str, Any]:
    """The manifest document of a finished export: no cell values, no key material."""
    report = result.plan.report()
    return {
        "manifest_version": 1,
        "id": manifest_id,
        "created_at": _now().isoformat(),
        "tenant": tenant,
        "principal": principal,
        "engine": result.engine,
        "workers": result.workers,
        "profile": {
            "name": report["profile"],
            "sha256": report["profile_sha256"],
            "purpose": report["purpose"],
            "purpose_key_generation": generation,
        },
        "input": {
            "path": result.input_path,
            "format": result.input_format,
            "rows": result.rows_in,
            "sha256": result.input_sha256,
        },
        "output": {
            "path": result.output_path,
            "format": result.output_format,
            "rows": result.rows_out,
            "sha256": result.output_sha256,
        },
        "rows_suppressed": result.rows_suppressed,
        "unknown_columns": report["unknown_columns"],
        "columns": report["columns"],
        "classification": report["classification"],
        "k_anonymity": result.kanon,
        "entity_counts": dict(sorted(result.entity_counts.items())),
        "seconds": round(result.seconds, 3),
        **({"engine_details": result.extra} if result.extra else {}),
    }


class PurposeKeyStore:
    """The wrapped purpose keys, as KEK rotation needs them (the ``DataKeyStore`` protocol).

    ``guard keys rotate`` re-wraps them with the customers' data keys, and ``guard keys
    retire`` refuses a version that still wraps one, so a retired KEK never silently shreds a
    purpose.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory

    def iter_wrapped(
        self, batch_size: int, *, not_version: int | None = None
    ) -> Iterator[tuple[str, str, str, WrappedKey]]:
        """(row id, tenant, owner, wrapped key) of every live purpose key, in id order."""
        last = 0
        while True:
            with session_scope(self._factory) as session:
                query = select(ExportPurposeKey).where(
                    ExportPurposeKey.id > last, ExportPurposeKey.wrapped_key.is_not(None)
                )
                if not_version is not None:
                    query = query.where(ExportPurposeKey.kek_version != not_version)
                rows = session.scalars(query.order_by(ExportPurposeKey.id).limit(batch_size)).all()
                found = [
                    (
                        str(r.id),
                        r.tenant,
                        _key_owner(r.purpose, r.generation),
                        WrappedKey(kek_version=r.kek_version or 0, wrapped=r.wrapped_key or b""),
                    )
                    for r in rows
                ]
            yield from found
            if len(rows) < batch_size:
                return
            last = rows[-1].id

    def replace_wrapped(self, key_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        """Swap ``old`` for ``new`` only if the row still holds ``old``."""
        with session_scope(self._factory, write=True) as session:
            row = session.get(ExportPurposeKey, int(key_id))
            if row is None or row.wrapped_key != old.wrapped or row.kek_version != old.kek_version:
                return False
            row.wrapped_key, row.kek_version = new.wrapped, new.kek_version
            return True

    def count_by_version(self) -> dict[int, int]:
        """How many live purpose keys each KEK version wraps."""
        with session_scope(self._factory) as session:
            rows = session.execute(
                select(ExportPurposeKey.kek_version, func.count())
                .where(ExportPurposeKey.wrapped_key.is_not(None))
                .group_by(ExportPurposeKey.kek_version)
            ).all()
        return {int(version): int(count) for version, count in rows if version is not None}


class ExportService:
    """Purpose keys, manifests and the export audit events of one database."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        cipher: EnvelopeCipher,
        audit: AuditTrail,
    ) -> None:
        self._factory = session_factory
        self._cipher = cipher
        self._audit = audit

    # ------------------------------------------------------------------ purpose keys

    def purpose_key(self, *, tenant: str, purpose: str, create: bool = True) -> PurposeKey:
        """The purpose's current key, made on first use (``create``)."""
        with session_scope(self._factory, write=create) as session:
            row = self._latest(session, tenant, purpose)
            if row is None or row.wrapped_key is None:
                if not create:
                    raise PurposeShreddedError(
                        f"export purpose {purpose!r} has no key"
                        + (" (shredded)" if row is not None else "")
                    )
                row = self._new_key(session, tenant, purpose, (row.generation + 1) if row else 1)
                created = True
            else:
                created = False
            wrapped = WrappedKey(kek_version=row.kek_version or 0, wrapped=row.wrapped_key or b"")
            generation = row.generation
        if created:
            self._audit.record(
                action="export.purpose_key_create",
                resource=f"{RESOURCE_PREFIX}purpose:{purpose}",
                decision="allow",
                outcome="success",
                tenant=tenant,
                details={"purpose": purpose, "generation": generation},
            )
        try:
            material = self._cipher.unwrap_data_key(
                wrapped, tenant=tenant, customer=_key_owner(purpose, generation)
            )
        except (IntegrityError, UnknownKeyVersionError):
            raise ExportError(
                f"the key of export purpose {purpose!r} failed to unwrap "
                "(tampered, or its key-encryption key was retired)"
            ) from None
        return PurposeKey(tenant, purpose, generation, material)

    def _latest(self, session: Session, tenant: str, purpose: str) -> ExportPurposeKey | None:
        return session.scalars(
            select(ExportPurposeKey)
            .where(ExportPurposeKey.tenant == tenant, ExportPurposeKey.purpose == purpose)
            .order_by(ExportPurposeKey.generation.desc())
            .limit(1)
        ).first()

    def _new_key(
        self, session: Session, tenant: str, purpose: str, generation: int
    ) -> ExportPurposeKey:
        # the envelope makes the key; only its wrapped form is stored
        _, wrapped = self._cipher.new_data_key(
            tenant=tenant, customer=_key_owner(purpose, generation)
        )
        row = ExportPurposeKey(
            tenant=tenant,
            purpose=purpose,
            generation=generation,
            kek_version=wrapped.kek_version,
            wrapped_key=wrapped.wrapped,
            created_at=_now(),
        )
        session.add(row)
        session.flush()
        return row

    def shred_purpose(self, *, tenant: str, purpose: str, principal: str) -> int:
        """Delete the purpose's key; return the generation shredded."""
        with session_scope(self._factory, write=True) as session:
            row = self._latest(session, tenant, purpose)
            if row is None or row.wrapped_key is None:
                raise PurposeShreddedError(
                    f"export purpose {purpose!r} has no key to shred"
                    + (" (already shredded)" if row is not None else "")
                )
            row.wrapped_key = None
            row.kek_version = None
            row.shredded_at = _now()
            generation = row.generation
        self._audit.record(
            action="export.purpose_shred",
            resource=f"{RESOURCE_PREFIX}purpose:{purpose}",
            decision="allow",
            outcome="success",
            principal=principal,
            tenant=tenant,
            details={"purpose": purpose, "generation": generation},
        )
        return generation

    def purposes(self, *, tenant: str) -> list[dict[str, Any]]:
        """Every purpose key generation of the tenant (no key material)."""
        with session_scope(self._factory) as session:
            rows = session.scalars(
                select(ExportPurposeKey)
                .where(ExportPurposeKey.tenant == tenant)
                .order_by(ExportPurposeKey.purpose, ExportPurposeKey.generation)
            ).all()
            return [
                {
                    "purpose": r.purpose,
                    "generation": r.generation,
                    "state": "shredded" if r.wrapped_key is None else "active",
                    "created_at": r.created_at.isoformat(),
                    "shredded_at": r.shredded_at.isoformat() if r.shredded_at else None,
                }
                for r in rows
            ]

    # ------------------------------------------------------------------ manifests

    def record(
        self,
        result: RunResult,
        *,
        tenant: str,
        principal: str,
        role: str | None = None,
        generation: int,
        request_id: str | None = None,
        manifest_id: str | None = None,
    ) -> ManifestInfo:
        """Store the manifest, then audit the export with a reference to it."""
        manifest_id = manifest_id or str(uuid.uuid4())
        document = build_manifest(
            result,
            manifest_id=manifest_id,
            tenant=tenant,
            principal=principal,
            generation=generation,
        )
        text = canonical_json(document)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        created = _now()
        with session_scope(self._factory, write=True) as session:
            session.add(
                ExportManifest(
                    id=manifest_id,
                    tenant=tenant,
                    principal=principal,
                    profile=result.plan.profile.name,
                    profile_sha256=result.plan.profile.sha256,
                    purpose=result.plan.profile.purpose,
                    engine=result.engine,
                    status="completed",
                    rows_in=result.rows_in,
                    rows_out=result.rows_out,
                    created_at=created,
                    document=text,
                    sha256=digest,
                )
            )
        self._audit.record(
            action="export.run",
            resource=f"{RESOURCE_PREFIX}{result.plan.profile.name}",
            decision="allow",
            outcome="success",
            principal=principal,
            role=role,
            tenant=tenant,
            request_id=request_id,
            entity_counts=result.entity_counts,
            details={
                "manifest_id": manifest_id,
                "manifest_sha256": digest,
                "profile": result.plan.profile.name,
                "profile_sha256": result.plan.profile.sha256,
                "purpose": result.plan.profile.purpose,
                "engine": result.engine,
                "format": result.output_format,
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
                "rows_suppressed": result.rows_suppressed,
            },
        )
        return ManifestInfo(
            manifest_id,
            digest,
            result.plan.profile.name,
            result.plan.profile.purpose,
            result.engine,
            "completed",
            result.rows_in,
            result.rows_out,
            created,
            document,
        )

    def record_failure(
        self,
        *,
        tenant: str,
        principal: str,
        profile: str,
        reason: str,
        engine: str,
        role: str | None = None,
        request_id: str | None = None,
        rows: int | None = None,
    ) -> None:
        """Audit an export that stopped (nothing left guard)."""
        details: dict[str, str | int | bool] = {"profile": profile, "engine": engine}
        details["reason"] = reason
        if rows is not None:
            details["rows_in"] = rows
        self._audit.record(
            action="export.run",
            resource=f"{RESOURCE_PREFIX}{profile}",
            decision="allow",
            outcome="failure",
            principal=principal,
            role=role,
            tenant=tenant,
            request_id=request_id,
            details=details,
        )

    def record_reveal(
        self, *, tenant: str, principal: str, purpose: str, tokens: int, reason: str
    ) -> None:
        """Audit a reveal of an export's tokens (``reason`` already redacted by the caller)."""
        self._audit.record(
            action="export.token_reveal",
            resource=f"{RESOURCE_PREFIX}purpose:{purpose}",
            decision="allow",
            outcome="success",
            principal=principal,
            tenant=tenant,
            details={"purpose": purpose, "tokens": tokens, "reason": reason},
        )

    def manifests(self, *, tenant: str, limit: int = 50) -> list[ManifestInfo]:
        """The tenant's latest manifests, newest first."""
        with session_scope(self._factory) as session:
            rows = session.scalars(
                select(ExportManifest)
                .where(ExportManifest.tenant == tenant)
                .order_by(ExportManifest.created_at.desc(), ExportManifest.id)
                .limit(limit)
            ).all()
            return [_info(row) for row in rows]

    def manifest(self, *, tenant: str, manifest_id: str) -> ManifestInfo:
        """One manifest of the tenant, checked against its stored sha256."""
        with session_scope(self._factory) as session:
            row = session.get(ExportManifest, manifest_id)
            if row is None or row.tenant != tenant:
                raise ManifestNotFoundError("no export manifest with this id in this tenant")
            info = _info(row)
        if hashlib.sha256(canonical_json(info.document).encode("utf-8")).hexdigest() != info.sha256:
            raise ExportError(f"export manifest {manifest_id} does not match its sha256")
        return info


def _info(row: ExportManifest) -> ManifestInfo:
    return ManifestInfo(
        row.id,
        row.sha256,
        row.profile,
        row.purpose,
        row.engine,
        row.status,
        row.rows_in,
        row.rows_out,
        row.created_at,
        json.loads(row.document),
    )


@contextlib.contextmanager
def export_service(settings: Settings) -> Iterator[ExportService]:
    """An ExportService over the configured database and key provider (commands, Spark jobs)."""
    from guard.audit.service import AuditTrail  # noqa: PLC0415 - heavy imports, once
    from guard.crypto.envelope import EnvelopeCipher  # noqa: PLC0415
    from guard.crypto.providers import load_key_provider  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        cipher = EnvelopeCipher(load_key_provider(settings))
        yield ExportService(factory, cipher, AuditTrail(settings, factory))
    finally:
        engine.dispose()
