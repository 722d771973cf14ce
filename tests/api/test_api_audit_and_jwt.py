"""Compliance review over the API, and JWT bearer tokens end to end."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guard.api.app import create_app
from guard.api.services import build_services

if TYPE_CHECKING:
    from collections.abc import Iterator

    from guard.config import Settings
    from guard.detection.engine import Detector
    from tests.fixtures.api import Api

SECRET = "s" * 48


def test_when_a_compliance_officer_searches_then_only_their_tenant_and_pages_by_cursor(
    api: Api,
) -> None:
    for _ in range(3):
        api.client.post("/v1/redact", json={"text": "mail a@b.co"}, headers=api.headers("agent"))
    api.client.post(
        "/v1/redact", json={"text": "hi"}, headers=api.headers("other_tenant_supervisor")
    )
    officer = api.headers("compliance_officer")
    first = api.client.get(
        "/v1/audit/events", params={"action": "text.redact", "limit": 2}, headers=officer
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["events"]) == 2
    assert all(e["tenant"] == "acme" and e["action"] == "text.redact" for e in page["events"])
    assert page["events"][0]["entity_counts"] == {"EMAIL_ADDRESS": 1}
    second = api.client.get(
        "/v1/audit/events",
        params={"action": "text.redact", "limit": 2, "cursor": page["next_cursor"]},
        headers=officer,
    ).json()
    assert len(second["events"]) == 1
    seqs = [e["seq"] for e in page["events"] + second["events"]]
    assert seqs == sorted(set(seqs))


def test_when_searching_by_customer_then_the_keyed_hash_matches_and_the_id_is_not_stored(
    api: Api,
) -> None:
    api.services.audit.record(
        action="records.read",
        resource="records",
        decision="allow",
        outcome="success",
        principal="someone",
        role="agent",
        tenant="acme",
        customer="cust-0042",
    )
    response = api.client.get(
        "/v1/audit/events",
        params={"customer": "cust-0042"},
        headers=api.headers("compliance_officer"),
    )
    events = response.json()["events"]
    assert [e["action"] for e in events] == ["records.read"]
    assert events[0]["customer"] != "cust-0042"
    assert "cust-0042" not in response.text


def test_when_the_trail_is_read_then_the_reading_is_audited_and_the_chain_verifies(
    api: Api,
) -> None:
    officer = api.headers("compliance_officer")
    api.client.get("/v1/audit/events", headers=officer)
    report = api.client.get("/v1/audit/verify", headers=officer).json()
    assert report["ok"] is True
    assert report["events_checked"] >= 1
    actions = [e["action"] for e in api.services.audit.search_events(tenant="acme")]
    assert "audit.search" in actions
    assert "audit.verify" in actions


@pytest.fixture
def jwt_client(db_settings: Settings, detector: Detector) -> Iterator[TestClient]:
    settings = db_settings.model_copy(
        update={
            "jwt_secret": SecretStr(SECRET),
            "jwt_algorithms": ["HS256"],
            "jwt_issuer": "https://idp.example",
            "jwt_audience": "guard",
        }
    )
    services = build_services(settings, detector=detector)
    with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
        yield client
    services.engine.dispose()


def token(**overrides: object) -> str:
    claims: dict[str, object] = {
        "sub": "agent-7",
        "role": "agent",
        "tenant": "acme",
        "iss": "https://idp.example",
        "aud": "guard",
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_when_a_valid_jwt_is_sent_then_its_role_and_tenant_apply(jwt_client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    assert jwt_client.post("/v1/detect", json={"text": "hi"}, headers=headers).status_code == 200
    reveal = jwt_client.post(
        "/v1/reveal", json={"text": "x", "reason": "just curious today"}, headers=headers
    )
    assert reveal.status_code == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
        {"role": "emperor"},
    ],
)
def test_when_a_jwt_is_expired_foreign_or_escalated_then_401(
    jwt_client: TestClient, claims: dict[str, object]
) -> None:
    headers = {"Authorization": f"Bearer {token(**claims)}"}
    response = jwt_client.post("/v1/detect", json={"text": "hi"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
