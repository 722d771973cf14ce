"""Purpose keys (wrapped, shreddable) and manifests with the audit events that reference them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from sqlalchemy import select

from guard.audit.models import AuditEvent
from guard.audit.service import AuditTrail
from guard.crypto.envelope import (
    CombinedDataKeyStore,
    EnvelopeCipher,
    retire_version,
    rewrap_all,
)
from guard.crypto.errors import KeyConfigurationError
from guard.crypto.providers import load_key_provider
from guard.export.models import ExportManifest, ExportPurposeKey
from guard.export.profile import parse_profile
from guard.export.service import (
    ExportService,
    ManifestNotFoundError,
    PurposeKeyStore,
    PurposeShreddedError,
)
from guard.export.transform import RunResult, make_plan
from guard.records.repository import SqlDataKeyStore
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.detection.engine import Detector


@pytest.fixture
def service(
    db_settings: Settings, engine: Engine, session_factory: sessionmaker[Session]
) -> ExportService:
    del engine
    cipher = EnvelopeCipher(load_key_provider(db_settings, create=True))
    return ExportService(session_factory, cipher, AuditTrail(db_settings, session_factory))


def _events(factory: sessionmaker[Session]) -> list[AuditEvent]:
    with session_scope(factory) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all())


def test_a_purpose_key_is_made_once_stored_wrapped_and_audited(
    service: ExportService, session_factory: sessionmaker[Session]
) -> None:
    first = service.purpose_key(tenant="acme", purpose="research")
    again = service.purpose_key(tenant="acme", purpose="research")
    other_purpose = service.purpose_key(tenant="acme", purpose="billing")
    other_tenant = service.purpose_key(tenant="globex", purpose="research")
    assert first.material == again.material
    assert first.generation == 1
    assert len({first.material, other_purpose.material, other_tenant.material}) == 3
    assert first.material.hex() not in repr(first)
    with session_scope(session_factory) as session:
        rows = session.scalars(select(ExportPurposeKey)).all()
        assert len(rows) == 3
        assert all(first.material not in (r.wrapped_key or b"") for r in rows)
    created = [e for e in _events(session_factory) if e.action == "export.purpose_key_create"]
    assert len(created) == 3


def test_shredding_a_purpose_makes_its_key_unrecoverable(
    service: ExportService, session_factory: sessionmaker[Session]
) -> None:
    old = service.purpose_key(tenant="acme", purpose="research")
    assert service.shred_purpose(tenant="acme", purpose="research", principal="cli") == 1
    with session_scope(session_factory) as session:
        row = session.scalars(select(ExportPurposeKey)).one()
        assert row.wrapped_key is None
        assert row.shredded_at is not None
    with pytest.raises(PurposeShreddedError, match="shredded"):
        service.purpose_key(tenant="acme", purpose="research", create=False)
    with pytest.raises(PurposeShreddedError, match="already shredded"):
        service.shred_purpose(tenant="acme", purpose="research", principal="cli")
    fresh = service.purpose_key(tenant="acme", purpose="research")
    assert fresh.generation == 2
    assert fresh.material != old.material
    listed = service.purposes(tenant="acme")
    assert [(p["generation"], p["state"]) for p in listed] == [(1, "shredded"), (2, "active")]
    shred = [e for e in _events(session_factory) if e.action == "export.purpose_shred"]
    assert json.loads(shred[0].details or "{}")["generation"] == 1


def test_a_manifest_is_stored_and_its_audit_event_references_it(
    service: ExportService,
    session_factory: sessionmaker[Session],
    db_settings: Settings,
    detector: Detector,
) -> None:
    profile = parse_profile(
        "t", {"purpose": "research", "columns": {"id": "keep", "note": "scan"}}, source="test"
    )
    table = pa.table({"id": [1, 2], "note": ["Call Ann Lee", "ok"]})
    plan = make_plan(
        profile, table.schema, table, tenant="acme", settings=db_settings, detector=detector
    )
    result = RunResult(
        engine="local",
        workers=2,
        plan=plan,
        input_path="in.parquet",
        output_path="out.parquet",
        input_format="parquet",
        output_format="parquet",
        rows_in=2,
        rows_out=2,
        rows_suppressed=0,
        input_sha256="a" * 64,
        output_sha256="b" * 64,
        entity_counts={"PERSON": 1},
        kanon=None,
        seconds=0.5,
    )
    info = service.record(result, tenant="acme", principal="cli", generation=1)
    stored = service.manifest(tenant="acme", manifest_id=info.id)
    assert stored.document["columns"][1] == {
        "column": "note",
        "action": "scan",
        "source": "profile",
    }
    assert stored.document["input"]["sha256"] == "a" * 64
    assert stored.document["profile"]["sha256"] == profile.sha256
    event = next(e for e in _events(session_factory) if e.action == "export.run")
    details = json.loads(event.details or "{}")
    assert details["manifest_id"] == info.id
    assert details["manifest_sha256"] == info.sha256
    assert (details["rows_in"], details["rows_out"], details["purpose"]) == (2, 2, "research")
    assert [m.id for m in service.manifests(tenant="acme")] == [info.id]
    assert service.manifests(tenant="globex") == []
    with pytest.raises(ManifestNotFoundError):
        service.manifest(tenant="globex", manifest_id=info.id)
    # a manifest changed in the database no longer matches the hash its audit event holds
    with session_scope(session_factory, write=True) as session:
        row = session.scalars(select(ExportManifest)).one()
        row.document = row.document.replace('"rows":2', '"rows":9')
    with pytest.raises(Exception, match="does not match its sha256"):
        service.manifest(tenant="acme", manifest_id=info.id)
    with session_scope(session_factory) as session:
        assert session.scalars(select(ExportManifest)).one().rows_in == 2


def test_key_rotation_rewraps_purpose_keys_and_retire_waits_for_them(
    service: ExportService, db_settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    key = service.purpose_key(tenant="acme", purpose="research")
    cipher = EnvelopeCipher(load_key_provider(db_settings))
    store = CombinedDataKeyStore(SqlDataKeyStore(session_factory), PurposeKeyStore(session_factory))
    old = cipher.provider.current_version()
    assert store.count_by_version() == {old: 1}
    target = cipher.provider.create_version()
    with pytest.raises(KeyConfigurationError, match="still wraps 1 data key"):
        retire_version(cipher.provider, store, old)
    report = rewrap_all(cipher, store, target_version=target)
    assert (report.rewrapped, report.complete) == (1, True)
    retire_version(cipher.provider, store, old)
    again = service.purpose_key(tenant="acme", purpose="research", create=False)
    assert (again.material, again.generation) == (key.material, 1)
