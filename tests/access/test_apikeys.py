"""API key lifecycle on SQLite and PostgreSQL: create, authenticate, revoke, expire, tamper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy

from guard.access.apikeys import ApiKeyService, hash_key
from guard.access.errors import AuthenticationError, PrincipalNotFoundError
from guard.errors import InvalidInputError
from tests.access.recording import RecordingAudit

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    return session_factory


@pytest.fixture
def audit() -> RecordingAudit:
    return RecordingAudit()


@pytest.fixture
def service(factory: sessionmaker[Session], audit: RecordingAudit) -> ApiKeyService:
    return ApiKeyService(factory, audit=audit)


def test_when_a_key_is_created_then_it_authenticates_as_its_principal(
    service: ApiKeyService,
) -> None:
    principal, key = service.create(name="desk 7", role="agent", tenant="acme")
    assert key.startswith("gk_")
    assert len(key) == 55
    assert service.authenticate(key) == principal
    assert (principal.role, principal.tenant, principal.kind) == ("agent", "acme", "api_key")


def test_when_a_key_is_revoked_then_it_is_rejected(service: ApiKeyService) -> None:
    principal, key = service.create(name="desk", role="supervisor", tenant="acme")
    service.revoke(principal.id)
    with pytest.raises(AuthenticationError, match="revoked") as caught:
        service.authenticate(key)
    assert key not in str(caught.value)
    service.revoke(principal.id)  # harmless twice
    assert [info.status(datetime.now(UTC)) for info in service.list()] == ["revoked"]


def test_when_a_key_has_expired_then_it_is_rejected(factory: sessionmaker[Session]) -> None:
    created = datetime(2030, 1, 1, tzinfo=UTC)
    _, key = ApiKeyService(factory, clock=lambda: created).create(
        name="temp", role="analyst", tenant="acme", expires_in=timedelta(days=1)
    )
    just_before = ApiKeyService(factory, clock=lambda: created + timedelta(hours=23))
    assert just_before.authenticate(key).role == "analyst"
    after = ApiKeyService(factory, clock=lambda: created + timedelta(days=1, seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        after.authenticate(key)


def _tampered(key: str) -> list[str]:
    last = "A" if key[-1] != "A" else "B"
    prefix_char = "A" if key[3] != "A" else "B"
    return [
        key[:-1] + last,  # secret changed
        key[:3] + prefix_char + key[4:],  # prefix changed
        key + "x",  # too long
        key[:-1],  # too short
        key.replace("gk_", "gx_", 1),
        "",
        "gk_" + "a" * 8 + "_" + "b" * 43,  # well-formed but unknown
        key.upper(),
    ]


def test_when_a_key_is_tampered_then_it_is_rejected_without_echoing_it(
    service: ApiKeyService,
) -> None:
    _, key = service.create(name="desk", role="admin", tenant="acme")
    for candidate in _tampered(key):
        with pytest.raises(AuthenticationError) as caught:
            service.authenticate(candidate)
        assert caught.value.status_code == 401
        assert not candidate or candidate not in caught.value.message
        assert key[12:] not in caught.value.message


def test_when_keys_are_stored_then_no_row_holds_the_key_or_its_secret(
    service: ApiKeyService, engine: Engine
) -> None:
    keys = [service.create(name=f"k{i}", role="agent", tenant="acme")[1] for i in range(3)]
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT * FROM api_keys")).all()
    dump = repr([tuple(row) for row in rows])
    assert len(rows) == 3
    for key in keys:
        secret = key[12:]
        assert key not in dump
        assert secret not in dump
        assert hash_key(key) in dump


def test_when_listing_then_tenants_are_separated_and_no_secret_is_listed(
    service: ApiKeyService,
) -> None:
    _, acme_key = service.create(name="a", role="agent", tenant="acme")
    service.create(name="g", role="admin", tenant="globex")
    acme = service.list("acme")
    assert [(i.name, i.tenant) for i in acme] == [("a", "acme")]
    assert len(service.list()) == 2
    assert acme_key not in repr(acme)
    assert acme_key[12:] not in repr(service.list())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "root"}, "role"),
        ({"tenant": "*"}, "tenant"),
        ({"tenant": "Acme Corp"}, "tenant"),
        ({"name": "   "}, "name"),
        ({"expires_in": timedelta(0)}, "expires_in"),
    ],
    ids=["unknown-role", "wildcard-tenant", "bad-tenant", "blank-name", "zero-expiry"],
)
def test_when_creating_with_bad_fields_then_nothing_is_written(
    service: ApiKeyService, fields: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"name": "x", "role": "agent", "tenant": "acme", **fields}
    with pytest.raises(InvalidInputError, match=message):
        service.create(**arguments)
    assert service.list() == []


def test_when_revoking_an_unknown_id_then_not_found(service: ApiKeyService) -> None:
    with pytest.raises(PrincipalNotFoundError):
        service.revoke("00000000-0000-0000-0000-000000000000")


def test_when_keys_are_created_and_revoked_then_each_change_is_audited_without_the_key(
    service: ApiKeyService, audit: RecordingAudit
) -> None:
    principal, key = service.create(name="desk", role="agent", tenant="acme")
    service.revoke(principal.id)
    service.list()
    actions = [(e["action"], e["tenant"], e["outcome"]) for e in audit.events]
    assert actions == [
        ("principal.create", "acme", "success"),
        ("principal.revoke", "acme", "success"),
        ("principal.list", None, "success"),
    ]
    assert key not in repr(audit.events)
    assert key[12:] not in repr(audit.events)
