"""The API end to end: real database, real Casbin policy, real model, real audit trail."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import sqlalchemy
from fastapi.routing import APIRoute, iter_route_contexts

from guard.api.app import create_app
from guard.api.health import PUBLIC_PATHS
from guard.api.security import permission_of
from guard.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings
    from tests.fixtures.api import Api

PII = {
    "name": "Joseph Banter",
    "email": "josephb8@email.com",
    "phone": "(845) 450-5693",
    "card": "4929-3813-3266-4295",
    "password": "Tr0ub4dor&3",
}
CHAT = (
    f"Hi, my name is {PII['name']}. Mail {PII['email']} or call {PII['phone']}. "
    f"Card {PII['card']}, password is {PII['password']}."
)


def is_problem(response: object, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["type"] == f"urn:guard:problem:{slug}"
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    return body


def test_every_route_declares_a_permission_except_health_and_metrics(api: Api) -> None:
    app = api.client.app
    # FastAPI groups included routers: walk the effective routes, not app.routes' top level
    contexts = list(iter_route_contexts(app.routes))  # type: ignore[attr-defined]
    api_routes = [c for c in contexts if isinstance(c.original_route, APIRoute)]
    assert len(api_routes) > 20
    unguarded = [
        context.path
        for context in api_routes
        if context.path not in PUBLIC_PATHS and permission_of(context.original_route) is None  # type: ignore[arg-type]
    ]
    assert unguarded == []


def test_health_readiness_and_metrics_answer_without_credentials(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "model": "ok", "keys": "ok"}
    api.client.post("/v1/redact", json={"text": CHAT}, headers=api.headers("agent"))
    api.client.post("/v1/redact", json={"text": CHAT})
    metrics = api.client.get("/metrics").text
    assert 'guard_requests_total{method="POST",route="/v1/redact",status="200"} 1.0' in metrics
    assert 'guard_entities_found_total{entity_type="EMAIL_ADDRESS"} 1.0' in metrics
    assert "guard_access_denials_total" in metrics
    assert "guard_request_duration_seconds_bucket" in metrics


def test_when_an_agent_redacts_a_batch_then_no_value_comes_back(api: Api) -> None:
    response = api.client.post(
        "/v1/redact",
        json={"texts": [CHAT, "nothing to see"], "channel": "message", "scope": "conv-1"},
        headers=api.headers("agent"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == 2
    first = body["results"][0]
    for value in PII.values():
        assert value not in first["text"]
    assert {e["entity_type"] for e in first["entities"]} >= {"PERSON", "EMAIL_ADDRESS", "PASSWORD"}
    assert body["results"][1] == {"text": "nothing to see", "entities": []}
    assert body["request_id"] == response.headers["x-request-id"]


def test_when_detecting_then_offsets_and_types_are_returned(api: Api) -> None:
    response = api.client.post("/v1/detect", json={"text": CHAT}, headers=api.headers("analyst"))
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    found = {(CHAT[e["start"] : e["end"]], e["entity_type"]) for e in result["entities"]}
    assert (PII["email"], "EMAIL_ADDRESS") in found
    assert PII["email"] not in response.text


def test_when_a_json_document_is_redacted_then_fields_and_strings_are_covered(api: Api) -> None:
    document = {"customer": {"email": "x", "notes": [CHAT]}, "count": 2}
    response = api.client.post(
        "/v1/redact/json", json={"document": document}, headers=api.headers("analyst")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["document"]["count"] == 2
    assert body["document"]["customer"]["email"].startswith("<EMAIL_ADDRESS")
    assert PII["email"] not in json.dumps(body)
    assert any(
        item["path"] == "/customer/email" and item["by_field_name"] for item in body["items"]
    )


def test_when_a_supervisor_reveals_a_note_then_values_return_and_the_reason_is_audited(
    api: Api,
) -> None:
    note = api.client.post(
        "/v1/redact", json={"text": CHAT, "channel": "note"}, headers=api.headers("agent")
    ).json()["results"][0]["text"]
    assert PII["email"] not in note
    denied = api.client.post(
        "/v1/reveal",
        json={"text": note, "reason": "customer asked for a callback"},
        headers=api.headers("agent"),
    )
    is_problem(denied, 403, "forbidden")
    revealed = api.client.post(
        "/v1/reveal",
        json={"text": note, "reason": f"callback requested by {PII['name']}"},
        headers=api.headers("supervisor"),
    )
    assert revealed.status_code == 200, revealed.text
    assert PII["email"] in revealed.json()["text"]
    foreign = api.client.post(
        "/v1/reveal",
        json={"text": note, "reason": "trying another tenant's tokens"},
        headers=api.headers("other_tenant_supervisor"),
    )
    assert foreign.status_code == 422
    assert PII["email"] not in foreign.text


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "no credentials"),
        ({"Authorization": "Basic abc"}, "Bearer"),
        ({"Authorization": "Bearer gk_nope_nope"}, ""),
        ({"X-API-Key": "gk_AAAAAAAA_" + "x" * 43}, ""),
        ({"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}, "bearer tokens are not configured"),
    ],
)
def test_when_credentials_are_missing_or_wrong_then_401_problem(
    api: Api, headers: dict[str, str], detail: str
) -> None:
    response = api.client.post("/v1/redact", json={"text": CHAT}, headers=headers)
    body = is_problem(response, 401, "unauthenticated")
    assert detail in str(body["detail"])
    assert response.headers["www-authenticate"] == "Bearer"
    for value in PII.values():
        assert value not in response.text


@pytest.mark.parametrize(
    ("role", "method", "path", "payload"),
    [
        ("compliance_officer", "post", "/v1/redact", {"text": "hi"}),
        ("agent", "post", "/v1/reveal", {"text": "hi", "reason": "because I want it"}),
        ("agent", "get", "/v1/audit/events", None),
        ("analyst", "post", "/v1/admin/policies/reload", None),
    ],
)
def test_when_a_role_lacks_the_permission_then_403_and_the_denial_is_audited(
    api: Api, role: str, method: str, path: str, payload: dict[str, str] | None
) -> None:
    response = api.client.request(method.upper(), path, json=payload, headers=api.headers(role))
    is_problem(response, 403, "forbidden")
    events = api.services.audit.search_events(decision="deny")
    assert any(e["request_id"] == response.headers["x-request-id"] for e in events)


@pytest.mark.parametrize(
    ("payload", "status", "slug", "field"),
    [
        ({"text": "a", "texts": ["b"]}, 422, "invalid-input", "exactly one of"),
        ({}, 422, "invalid-input", "exactly one of"),
        ({"text": 42}, 422, "invalid-input", "body.text"),
        ({"text": "a", "channel": "fax"}, 422, "invalid-input", "body.channel"),
        ({"text": "a", "color": "red"}, 422, "invalid-input", "body.<key>: Extra inputs"),
        ({"texts": []}, 422, "invalid-input", "body.texts: give at least one"),
        ({"texts": ["a"] * 300}, 422, "invalid-input", "batch limit of 256"),
    ],
)
def test_when_a_request_is_invalid_then_the_problem_names_the_field(
    api: Api, payload: dict[str, object], status: int, slug: str, field: str
) -> None:
    response = api.client.post("/v1/redact", json=payload, headers=api.headers("agent"))
    body = is_problem(response, status, slug)
    assert field in str(body["detail"])


def test_when_a_text_is_too_long_then_413_names_it(api: Api) -> None:
    big = "x" * (api.settings.max_text_bytes + 1)
    response = api.client.post(
        "/v1/redact", json={"texts": ["ok", big]}, headers=api.headers("agent")
    )
    body = is_problem(response, 413, "input-too-large")
    assert "body.texts.1" in str(body["detail"])


def test_when_the_body_is_too_large_then_413_before_parsing(api: Api) -> None:
    payload = json.dumps({"text": "y" * (api.settings.max_body_bytes + 10)})
    response = api.client.post(
        "/v1/redact",
        content=payload,
        headers={**api.headers("agent"), "content-type": "application/json"},
    )
    body = is_problem(response, 413, "input-too-large")
    assert "GUARD_MAX_BODY_BYTES" in str(body["detail"])


def test_when_json_is_malformed_then_422_without_echoing_it(api: Api) -> None:
    response = api.client.post(
        "/v1/redact",
        content=b'{"text": "' + PII["email"].encode() + b'"',
        headers={**api.headers("agent"), "content-type": "application/json"},
    )
    is_problem(response, 422, "invalid-input")
    assert PII["email"] not in response.text


def test_when_a_request_id_is_given_then_it_is_used_everywhere(api: Api) -> None:
    response = api.client.post(
        "/v1/redact", json={}, headers={**api.headers("agent"), "X-Request-ID": "req-12345678"}
    )
    assert response.headers["x-request-id"] == "req-12345678"
    assert response.json()["request_id"] == "req-12345678"


def test_openapi_docs_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert "/v1/redact" in spec["paths"]
    assert api.client.get("/docs").status_code == 200


def test_when_pii_goes_through_every_endpoint_then_it_is_stored_and_logged_nowhere(
    api: Api, capfd: pytest.CaptureFixture[str]
) -> None:
    sent = [
        ("/v1/redact", {"text": CHAT}, "agent"),
        ("/v1/redact", {"texts": [CHAT], "channel": "note"}, "agent"),
        ("/v1/redact", {"text": CHAT, "channel": "export"}, "analyst"),
        ("/v1/detect", {"text": CHAT}, "agent"),
        ("/v1/redact/json", {"document": {"email": PII["email"], "note": CHAT}}, "analyst"),
        ("/v1/redact", {"text": CHAT, "color": PII["email"]}, "agent"),
        (
            "/v1/reveal",
            {"text": CHAT, "reason": f"asked by {PII['name']} {PII['email']}"},
            "supervisor",
        ),
        ("/v1/redact", {"text": CHAT}, "compliance_officer"),
    ]
    for path, payload, role in sent:
        api.client.post(path, json=payload, headers=api.headers(role))
    _exercise_records(api)
    _exercise_exports(api)
    _exercise_subjects(api)
    _exercise_hostile_paths(api)
    api.client.get("/v1/audit/events", headers=api.headers("compliance_officer"))
    dump = _dump_database(api)
    audit_file = api.settings.audit_jsonl_path
    assert audit_file is not None
    stored = dump + (audit_file.read_text(encoding="utf-8") if audit_file.exists() else "")
    logs = "".join(capfd.readouterr())
    for value in PII.values():
        assert value not in stored, f"a {value!r} reached the database or audit file"
        assert value not in logs


def _exercise_hostile_paths(api: Api) -> None:
    """PII in paths and request ids: refused, forbidden, unknown, unmatched; each audited."""
    bad_key = {"Authorization": "Bearer gk_AAAAAAAA_" + "x" * 43}
    for value in PII.values():
        quoted = quote(value, safe="")
        calls: list[tuple[str, str, dict[str, str]]] = [
            ("GET", f"/v1/records/{quoted}", bad_key),  # unauthenticated
            ("GET", f"/v1/records/{quoted}", {}),  # no credentials
            ("DELETE", f"/v1/records/{quoted}", api.headers("agent")),  # forbidden
            ("GET", f"/v1/records/{quoted}", api.headers("agent")),  # not found
            ("GET", f"/v1/{quoted}%00", api.headers("agent")),  # unmatched
            ("PUT", f"/v1/records/{quoted}", bad_key),  # method not allowed
        ]
        for method, path, headers in calls:
            response = api.client.request(method, path, headers=headers)
            assert response.status_code < 500, (method, response.text)
            assert value not in response.text


def _exercise_subjects(api: Api) -> None:
    """Subject requests, the encrypted package, erasure, legal holds, retention, RoPA, notice."""
    record = {"full_name": PII["name"], "email": PII["email"], "phone": PII["phone"], "notes": CHAT}
    created = api.client.post("/v1/records", json=record, headers=api.headers("agent"))
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    officer = api.headers("compliance_officer")
    check = f"{PII['name']} called from {PII['phone']}, confirmed {PII['email']}"
    responses: list[Any] = []

    def call(method: str, path: str, body: dict[str, object] | None = None) -> Any:
        response = api.client.request(method, path, json=body, headers=officer)
        assert response.status_code < 500, (path, response.text)
        responses.append(response)
        return response

    opened = call(
        "POST",
        "/v1/subjects/requests",
        {"kind": "access", "email": PII["email"], "identity_check": check},
    )
    assert opened.status_code == 201, opened.text
    request = f"/v1/subjects/requests/{opened.json()['id']}"
    call("GET", "/v1/subjects/requests")
    call("GET", request)
    call("POST", f"{request}/extend", {"months": 1, "reason": f"records of {PII['name']} archived"})
    assert call("POST", f"{request}/package").status_code == 201
    assert call("GET", f"{request}/package").status_code == 200
    call("POST", f"{request}/close", {"outcome": "fulfilled", "reason": f"sent to {PII['email']}"})
    call(
        "POST",
        "/v1/subjects/requests",
        {"kind": "access", "email": "x" + PII["email"], "identity_check": check},
    )
    hold = call(
        "POST",
        "/v1/retention/holds",
        {"scope": "customer", "target": record_id, "reason": f"{PII['name']} sued, {PII['email']}"},
    )
    assert hold.status_code == 201, hold.text
    erasure = call(
        "POST",
        "/v1/subjects/requests",
        {"kind": "erasure", "phone": PII["phone"], "identity_check": check},
    )
    erase = f"/v1/subjects/requests/{erasure.json()['id']}/erase"
    assert call("POST", erase, {"confirm": True}).status_code == 409  # held
    call("GET", "/v1/retention/holds?include_released=true")
    call("POST", f"/v1/retention/holds/{hold.json()['id']}/release")
    assert call("POST", erase, {"confirm": True}).status_code == 200
    for path in ("/v1/retention", "/v1/retention/runs", "/v1/compliance/ropa?format=md"):
        call("GET", path)
    call("GET", "/v1/compliance/ropa?format=json")
    call("GET", "/v1/compliance/notice")
    for response in responses:
        for value in PII.values():
            assert value.encode() not in response.content


def _exercise_exports(api: Api) -> None:
    """The streaming export: redacted rows, a refused body, the manifests an officer reads."""
    ndjson = {**api.headers("analyst"), "Content-Type": "application/x-ndjson"}
    row = {
        "conversation_id": "c-1",
        "message_id": 1,
        "customer_id": PII["email"],
        "author": "customer",
        "sent_at": "2024-05-01",
        "text": CHAT,
    }
    url = "/v1/exports/redact?profile=chat_transcripts"
    done = api.client.post(url, content=json.dumps(row) + "\n", headers=ndjson)
    assert done.status_code == 200, done.text
    missing = {k: v for k, v in row.items() if k != "author"}
    refused = api.client.post(url, content=json.dumps(missing) + "\n", headers=ndjson)
    assert refused.status_code == 422
    officer = api.headers("compliance_officer")
    listed = api.client.get("/v1/exports/manifests", headers=officer)
    manifest_id = listed.json()["manifests"][0]["id"]
    shown = api.client.get(f"/v1/exports/manifests/{manifest_id}", headers=officer)
    for response in (done, refused, listed, shown):
        for value in PII.values():
            assert value not in response.text


def _exercise_records(api: Api) -> None:
    """Every records route with PII in fields, notes, search and reveal reason."""
    record = {
        "full_name": PII["name"],
        "email": PII["email"],
        "phone": PII["phone"],
        "notes": CHAT,
        "extra": {"card": PII["card"]},
        "account": {"account_id": PII["password"]},
    }
    created = api.client.post("/v1/records", json=record, headers=api.headers("agent"))
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    calls: list[tuple[str, str, dict[str, object] | None, str]] = [
        ("GET", f"/v1/records/{record_id}", None, "analyst"),
        ("PATCH", f"/v1/records/{record_id}", {"notes": CHAT, "phone": "bad\x00"}, "agent"),
        ("PATCH", f"/v1/records/{record_id}", {"notes": f"{CHAT} again"}, "agent"),
        ("POST", "/v1/records/search", {"email": PII["email"]}, "agent"),
        ("POST", "/v1/records/search", {"phone": PII["phone"], "email": PII["email"]}, "agent"),
        ("POST", f"/v1/records/{record_id}/reveal", {"reason": f"for {PII['name']}"}, "supervisor"),
        ("POST", "/v1/records", {**record, "email": {"x": PII["email"]}}, "agent"),
        ("GET", "/v1/records", None, "compliance_officer"),
        ("DELETE", f"/v1/records/{record_id}", None, "admin"),
        ("GET", f"/v1/records/{record_id}", None, "agent"),
    ]
    _exercise_messages(api, record_id)
    for method, path, body, role in calls:
        response = api.client.request(method, path, json=body, headers=api.headers(role))
        assert response.status_code < 500, response.text
        if role in {"analyst", "compliance_officer", "admin"}:  # views and tombstones
            for value in PII.values():
                assert value not in response.text, (method, path)


def _dump_database(api: Api) -> str:
    engine = api.services.engine
    inspector = sqlalchemy.inspect(engine)
    chunks: list[str] = []
    with engine.connect() as connection:
        for table in inspector.get_table_names():
            rows = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))  # noqa: S608 - table names from the inspector
            chunks.extend(repr(tuple(row)) for row in rows)
    assert chunks, "the database should hold audit events by now"
    return "\n".join(chunks)


def test_the_app_refuses_to_start_without_a_model(db_settings: Settings, tmp_path: Path) -> None:
    settings = db_settings.model_copy(update={"cache_dir": tmp_path})
    with pytest.raises(ModelNotAvailableError):
        create_app(settings)


def test_when_an_admin_manages_keys_then_a_new_key_works_until_revoked(api: Api) -> None:
    created = api.client.post(
        "/v1/admin/principals",
        json={"name": "desk-7", "role": "agent"},
        headers=api.headers("admin"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tenant"] == "acme"
    new_key = body["key"]
    headers = {"Authorization": f"Bearer {new_key}"}
    assert api.client.post("/v1/detect", json={"text": "hi"}, headers=headers).status_code == 200
    listed = api.client.get("/v1/admin/principals", headers=api.headers("admin"))
    assert new_key not in listed.text
    assert any(p["id"] == body["id"] for p in listed.json())
    revoked = api.client.delete(f"/v1/admin/principals/{body['id']}", headers=api.headers("admin"))
    assert revoked.status_code == 204
    is_problem(
        api.client.post("/v1/detect", json={"text": "hi"}, headers=headers), 401, "unauthenticated"
    )


def test_when_an_admin_reloads_policies_then_a_broken_policy_keeps_the_old_one(
    api: Api, tmp_path: Path
) -> None:
    assert api.client.post("/v1/admin/policies/reload", headers=api.headers("admin")).json() == {
        "status": "reloaded"
    }
    broken = tmp_path / "policies"
    shutil.copytree(api.settings.policies_dir, broken)
    (broken / "policy.csv").write_text("p, wizard, *, text, redact\n", encoding="utf-8")
    api.services.access._policies_dir = broken  # as if policies/ had been edited in place
    response = api.client.post("/v1/admin/policies/reload", headers=api.headers("admin"))
    is_problem(response, 500, "invalid-policy")
    # the policy in force still lets an agent redact
    ok = api.client.post("/v1/redact", json={"text": "hi"}, headers=api.headers("agent"))
    assert ok.status_code == 200


def test_when_a_compliance_officer_checks_a_decision_then_it_is_explained(api: Api) -> None:
    response = api.client.get(
        "/v1/admin/policies/check",
        params={"role": "agent", "action": "reveal", "resource": "token"},
        headers=api.headers("compliance_officer"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["allowed"] is False
    assert "denied by default" in body["reason"]


def test_when_the_keyring_is_gone_then_the_service_is_not_ready(api: Api) -> None:
    assert api.client.get("/readyz").status_code == 200
    api.settings.keyring_file.unlink()
    not_ready = is_problem(api.client.get("/readyz"), 503, "unavailable")
    assert not_ready["checks"]["keys"] == "unavailable (KeyConfigurationError)"  # type: ignore[index]


def _exercise_messages(api: Api, record_id: str) -> None:
    """The message guard: own data, a block for the same data with no customer, a 404."""
    bodies: list[dict[str, object]] = [
        {"text": CHAT, "customer_id": record_id, "customer_last_message": CHAT},
        {"text": CHAT, "channel": "note", "customer_id": record_id},
        {"text": CHAT},  # nobody's conversation: the record's data blocks
        {"text": CHAT, "customer_id": PII["email"]},  # not an id: 404, audited hashed
        {"text": CHAT, "customer_id": record_id, "conversation_id": PII["phone"]},
    ]
    verdicts = []
    for body in bodies:
        response = api.client.post("/v1/messages/check", json=body, headers=api.headers("agent"))
        assert response.status_code < 500, response.text
        verdicts.append(response.json().get("verdict"))
        if response.json().get("verdict") == "block":
            for value in PII.values():
                assert value not in response.text
    assert verdicts[2] == "block"
