"""The records API end to end: roles, tenants, audit trail, erasure and reveal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from guard.api.app import create_app
from guard.api.services import Services, build_services

if TYPE_CHECKING:
    from collections.abc import Iterator

    from guard.config import Settings
    from guard.detection.engine import Detector

ROLES = ("agent", "supervisor", "compliance_officer", "analyst", "admin")
ALICE: dict[str, Any] = {
    "full_name": "Alice Marchetti",
    "email": "alice.marchetti@example.org",
    "phone": "+44 20 7946 0321",
    "postal_address": "14 Larkspur Lane, Bristol",
    "date_of_birth": "1984-03-09",
    "account": {"account_id": "AC-778812", "plan": "pro"},
    "notes": "Her husband Roberto Marchetti called about the refund.",
    "extra": {"vip": True},
}


@dataclass
class RecordsApi:
    client: TestClient
    services: Services
    keys: dict[str, str]

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def create(self, body: dict[str, Any] | None = None, role: str = "agent") -> str:
        response = self.client.post("/v1/records", json=body or ALICE, headers=self.as_(role))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
def api(db_settings: Settings, detector: Detector) -> Iterator[RecordsApi]:
    services = build_services(db_settings, detector=detector)
    keys = {}
    for role in ROLES:
        _, keys[role] = services.api_keys.create(name=f"t-{role}", role=role, tenant="acme")
    _, keys["globex_admin"] = services.api_keys.create(name="g", role="admin", tenant="globex")
    app = create_app(services=services)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield RecordsApi(client=client, services=services, keys=keys)
    services.engine.dispose()


def events(api: RecordsApi, action: str) -> list[dict[str, Any]]:
    return api.services.audit.search_events(action=action)


def test_when_agent_creates_and_reads_then_the_agent_view_is_returned(api: RecordsApi) -> None:
    record_id = api.create()
    response = api.client.get(f"/v1/records/{record_id}", headers=api.as_("agent"))
    assert response.status_code == 200
    body = response.json()
    assert body["view"] == "agent"
    assert body["fields"]["email"] == ALICE["email"]
    assert body["fields"]["phone"].endswith("0321")
    assert "7946" not in body["fields"]["phone"]
    assert "Roberto" not in body["fields"]["notes"]
    assert "date_of_birth" not in body["fields"]
    (read,) = events(api, "records.read")
    assert read["customer"] == api.services.audit.customer_hash(record_id)
    assert read["customer"] != record_id
    (created,) = events(api, "records.create")
    assert created["entity_counts"].get("PERSON", 0) >= 1


def test_when_each_role_reads_then_it_sees_its_view(api: RecordsApi) -> None:
    record_id = api.create()
    seen = {}
    for role in ROLES:
        response = api.client.get(f"/v1/records/{record_id}", headers=api.as_(role))
        assert response.status_code == 200, (role, response.text)
        seen[role] = response.json()["fields"]
    assert seen["compliance_officer"] == {}
    assert seen["analyst"]["email"].startswith("<EMAIL_ADDRESS_")
    assert "Alice" not in repr(seen["analyst"])
    assert seen["supervisor"]["notes"] == ALICE["notes"]
    assert seen["admin"]["phone"] == ALICE["phone"]


def test_when_agent_updates_then_changes_are_stored_and_audited(api: RecordsApi) -> None:
    record_id = api.create()
    response = api.client.patch(
        f"/v1/records/{record_id}",
        json={"email": "alice@new.example", "notes": "Call back tomorrow."},
        headers=api.as_("agent"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["fields"]["email"] == "alice@new.example"
    again = api.client.get(f"/v1/records/{record_id}", headers=api.as_("supervisor")).json()
    assert again["fields"]["notes"] == "Call back tomorrow."
    assert len(events(api, "records.update")) == 1


def test_when_searching_then_matches_are_found_by_blind_index(api: RecordsApi) -> None:
    record_id = api.create()
    response = api.client.post(
        "/v1/records/search",
        json={"email": "ALICE.Marchetti@example.org"},
        headers=api.as_("agent"),
    )
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["records"]] == [record_id]
    by_account = api.client.post(
        "/v1/records/search", json={"account_id": "AC-778812"}, headers=api.as_("agent")
    )
    assert len(by_account.json()["records"]) == 1
    none = api.client.post("/v1/records/search", json={}, headers=api.as_("agent"))
    assert none.status_code == 422
    assert "exactly one" in none.text
    two = api.client.post(
        "/v1/records/search",
        json={"email": "a@b.example", "phone": "123"},
        headers=api.as_("agent"),
    )
    assert two.status_code == 422
    assert "a@b.example" not in two.text
    searches = [e["details"] for e in events(api, "records.search")]
    assert {"by": "email", "matches": 1} in searches
    assert {"by": "account_id", "matches": 1} in searches


def test_when_listing_then_cursor_pagination_returns_metadata_only(api: RecordsApi) -> None:
    ids = {api.create({"email": f"c{i}@example.org"}) for i in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/v1/records", params=params, headers=api.as_("agent")).json()
        for record in page["records"]:
            assert set(record) == {"id", "status", "created_at", "updated_at"}
            seen.append(record["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(seen) == ids
    assert len(seen) == 5
    bad = api.client.get("/v1/records", params={"cursor": "zz"}, headers=api.as_("agent"))
    assert bad.status_code == 422


def test_when_another_tenant_asks_then_the_record_is_not_found(api: RecordsApi) -> None:
    record_id = api.create()
    for method, path in (
        ("GET", f"/v1/records/{record_id}"),
        ("DELETE", f"/v1/records/{record_id}"),
    ):
        response = api.client.request(method, path, headers=api.as_("globex_admin"))
        assert response.status_code == 404
        assert response.json()["type"].endswith("not-found")
    listed = api.client.get("/v1/records", headers=api.as_("globex_admin")).json()
    assert listed["records"] == []


def test_when_agent_erases_then_it_is_forbidden(api: RecordsApi) -> None:
    record_id = api.create()
    response = api.client.delete(f"/v1/records/{record_id}", headers=api.as_("agent"))
    assert response.status_code == 403


def test_when_admin_erases_then_tombstone_remains_and_audit_keeps_the_hash(
    api: RecordsApi,
) -> None:
    record_id = api.create()
    response = api.client.delete(f"/v1/records/{record_id}", headers=api.as_("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "erased"
    gone = api.client.get(f"/v1/records/{record_id}", headers=api.as_("admin"))
    assert gone.status_code == 410
    (erase,) = events(api, "records.erase")
    assert erase["customer"] == api.services.audit.customer_hash(record_id)
    assert erase["decision"] == "allow"
    listed = api.client.get("/v1/records", headers=api.as_("admin")).json()["records"]
    assert listed[0]["status"] == "erased"
    trail = repr(api.services.audit.search_events())
    assert record_id not in trail
    assert "Alice" not in trail


def test_when_supervisor_reveals_then_the_clear_record_and_redacted_reason_are_audited(
    api: RecordsApi,
) -> None:
    record_id = api.create()
    denied = api.client.post(
        f"/v1/records/{record_id}/reveal",
        json={"reason": "dispute handling"},
        headers=api.as_("agent"),
    )
    assert denied.status_code == 403
    response = api.client.post(
        f"/v1/records/{record_id}/reveal",
        json={"reason": "Chargeback dispute raised by Alice Marchetti"},
        headers=api.as_("supervisor"),
    )
    assert response.status_code == 200, response.text
    fields = response.json()["fields"]
    assert fields["notes"] == ALICE["notes"]
    assert "Roberto" not in fields["notes_redacted"]
    denial, reveal = events(api, "records.reveal")
    assert (denial["decision"], denial["role"]) == ("deny", "agent")
    assert reveal["decision"] == "allow"
    assert "Alice" not in reveal["details"]["reason"]
    assert "Chargeback" in reveal["details"]["reason"]
    assert reveal["customer"] == api.services.audit.customer_hash(record_id)
    short = api.client.post(
        f"/v1/records/{record_id}/reveal", json={}, headers=api.as_("supervisor")
    )
    assert short.status_code == 422


def test_when_a_stored_ciphertext_is_swapped_then_the_api_fails_closed(api: RecordsApi) -> None:
    alice = api.create()
    bob = api.create({"full_name": "Bob Stone", "email": "bob@example.org"})
    with api.services.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE customer_records SET full_name = "
                "(SELECT full_name FROM customer_records WHERE id = :alice) WHERE id = :bob"
            ),
            {"alice": alice, "bob": bob},
        )
    response = api.client.get(f"/v1/records/{bob}", headers=api.as_("supervisor"))
    assert response.status_code == 500
    assert response.json()["type"].endswith("record-integrity")
    assert "Alice" not in response.text
    assert "Bob" not in response.text
    (failure,) = [e for e in events(api, "records.read") if e["outcome"] == "failure"]
    assert failure["details"] == {"reason": "integrity"}


def test_when_unauthenticated_then_every_route_refuses(api: RecordsApi) -> None:
    for method, path in (
        ("POST", "/v1/records"),
        ("GET", "/v1/records"),
        ("POST", "/v1/records/search"),
        ("GET", "/v1/records/x"),
        ("PATCH", "/v1/records/x"),
        ("DELETE", "/v1/records/x"),
        ("POST", "/v1/records/x/reveal"),
    ):
        assert api.client.request(method, path).status_code == 401, (method, path)


def test_when_extra_attributes_nest_too_deep_then_the_record_is_refused(api: RecordsApi) -> None:
    deep: dict[str, object] = {"leaf": "x"}
    for _ in range(12):
        deep = {"a": deep}
    response = api.client.post("/v1/records", json={"extra": deep}, headers=api.as_("agent"))
    assert response.status_code == 422
    assert "nested more than 8 levels" in response.text
    shallow = {"a": {"b": [{"c": "ok"}]}}
    created = api.client.post("/v1/records", json={"extra": shallow}, headers=api.as_("agent"))
    assert created.status_code == 201, created.text
    assert (
        api.client.get("/v1/records", headers=api.as_("agent")).json()["records"][0]["id"]
        == (created.json()["id"])
    )


def test_when_a_record_is_missing_or_erased_then_the_attempt_is_audited(api: RecordsApi) -> None:
    record_id = api.create()
    assert (
        api.client.delete(f"/v1/records/{record_id}", headers=api.as_("admin")).status_code == 200
    )
    again = api.client.delete(f"/v1/records/{record_id}", headers=api.as_("admin"))
    assert again.status_code == 410
    assert again.json()["type"].endswith("record-erased")
    missing = api.client.get("/v1/records/no-such-record", headers=api.as_("agent"))
    assert missing.status_code == 404
    bad_cursor = api.client.get("/v1/records?cursor=!!", headers=api.as_("agent"))
    assert bad_cursor.status_code == 422
    failures = [
        (e["action"], e["details"]["reason"])
        for e in api.services.audit.search_events()
        if e["outcome"] == "failure"
    ]
    assert failures == [
        ("records.erase", "record-erased"),
        ("records.read", "not-found"),
        ("records.list", "invalid-input"),
    ]


def test_when_a_reveal_reason_names_the_customer_then_the_audit_never_holds_the_name(
    api: RecordsApi,
) -> None:
    # a rare name that a statistical NER may well miss: the record's own values are scrubbed
    created = api.client.post(
        "/v1/records",
        json={"full_name": "Margarethe Vandersloot", "email": "mv@example.org"},
        headers=api.as_("agent"),
    )
    record_id = created.json()["id"]
    response = api.client.post(
        f"/v1/records/{record_id}/reveal",
        json={"reason": "vandersloot called back; Margarethe asked about MV@example.org"},
        headers=api.as_("supervisor"),
    )
    assert response.status_code == 200
    (reveal,) = events(api, "records.reveal")
    reason = reveal["details"]["reason"]
    assert "andersloot" not in reason
    assert "Margarethe" not in reason
    assert "example.org" not in reason
    assert "called back" in reason
