"""Every request ends in one audit event with its true outcome, and no raw identifier in it.

Hostile paths, headers and bodies; unauthenticated floods (limited, aggregated, counted
exactly); JWT subjects that are identifiers or forged log lines; spoofed request ids; a store
that fails (fail closed); and a real uvicorn server for what only a socket can send.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import jwt
import pytest
import sqlalchemy
import uvicorn
from click.testing import CliRunner
from pydantic import SecretStr

from guard.access.throttle import AGGREGATE_ACTION
from guard.api.app import create_app
from guard.audit.cli import audit as audit_cli

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fixtures.api import Api, OpenApi

EMAIL = "joe@example.org"
BAD_KEY = "gk_AAAAAAAA_" + "x" * 43
ISSUER = "https://idp.example"
SECRET = "s" * 48


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def all_events(api: Api) -> list[dict[str, Any]]:
    """Every event after the fixture's own (the creation of its keys)."""
    events = api.services.audit.search_events(limit=100_000)
    return [e for e in events if e["action"] != "principal.create"]


def stored(api: Api) -> str:
    """Every row of every table and the JSONL mirror, as text."""
    engine = api.services.engine
    chunks: list[str] = []
    with engine.connect() as connection:
        for table in sqlalchemy.inspect(engine).get_table_names():
            rows = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))  # noqa: S608 - names from the inspector
            chunks.extend(repr(tuple(row)) for row in rows)
    mirror = api.settings.audit_jsonl_path
    assert mirror is not None
    return "\n".join(chunks) + (mirror.read_text(encoding="utf-8") if mirror.exists() else "")


def verify_passes(api: Api) -> None:
    result = CliRunner().invoke(audit_cli, ["verify"], obj=api.settings)
    assert result.exit_code == 0, result.output
    assert "intact" in result.output


def refusal_total(events: list[dict[str, Any]]) -> int:
    """Refused unauthenticated requests the trail accounts for: own events plus aggregates."""
    own = [
        e
        for e in events
        if e["principal"] is None and e["decision"] == "deny" and e["action"] != AGGREGATE_ACTION
    ]
    aggregated = sum(
        int(e["details"]["refusals"]) for e in events if e["action"] == AGGREGATE_ACTION
    )
    return len(own) + aggregated


# (method, path, body or None, extra headers, a marker that must not be stored)
HOSTILE: list[tuple[str, str, Any, dict[str, Any], str]] = [
    ("GET", "/v1/records/" + "a" * 300, None, {}, "a" * 250),
    ("GET", "/v1/qq%00qq", None, {}, "qq\x00qq"),
    ("GET", "/v1/records/%E2%80%AEqr%0A%0Dforged", None, {}, "forged"),
    ("GET", "/v1/records/%FF%FEqsqsqs", None, {}, "qsqsqs"),
    ("GET", f"/v1/records/{EMAIL}", None, {}, EMAIL),
    ("DELETE", f"/v1/records/{EMAIL}", None, {}, EMAIL),
    ("GET", "/v1/" + "z" * 5000, None, {}, "z" * 100),
    ("GET", "/v1/qqunknown%00qq", None, {}, "qqunknown"),
    ("GET", "/healthz/" + "q" * 3000, None, {}, "q" * 100),
    ("PUT", "/v1/redact", None, {}, "-"),
    ("FOO", "/v1/redact", None, {}, "-"),
    ("POST", "/v1/redact", {"text": 42}, {}, "-"),
    ("POST", "/v1/redact", b'{"text": "' + EMAIL.encode() + b'"', {}, EMAIL),
    ("POST", "/v1/redact", {"text": "hi", EMAIL: 1}, {}, EMAIL),
    ("POST", "/v1/redact", {"text": "hi"}, {"x-custom": b"\xc3\xa9\x01\x7f"}, "-"),
    ("POST", "/v1/redact", {"text": "hi"}, {"x-request-id": "not a valid id!"}, "not a valid"),
    ("GET", "/v1/audit/events?cursor=" + "9" * 30, None, {}, "9" * 30),
    ("POST", "/v1/admin/principals", {"name": "x", "role": "emperor"}, {}, "emperor"),
]


def send(api: Api, method: str, path: str, body: Any, headers: dict[str, Any]) -> Any:
    if isinstance(body, bytes):
        headers = {**headers, "content-type": "application/json"}
        return api.client.request(method, path, content=body, headers=headers)
    return api.client.request(method, path, json=body, headers=headers)


def test_when_a_record_id_holds_a_nul_byte_then_one_event_and_no_server_error(api: Api) -> None:
    response = api.client.get("/v1/records/qq%00qq", headers=api.headers("agent"))
    (event,) = all_events(api)
    assert event["request_id"] == response.headers["x-request-id"]
    assert "qq\x00qq" not in stored(api)
    assert response.status_code < 500


@pytest.mark.parametrize("who", ["agent", "admin"])
def test_when_paths_headers_and_bodies_are_hostile_then_each_request_has_one_true_event(
    api: Api, who: str
) -> None:
    for method, path, body, headers, marker in HOSTILE:
        before = len(all_events(api))
        response = send(api, method, path, body, {**api.headers(who), **headers})
        assert response.status_code < 500, (method, path[:40], response.text)
        events = all_events(api)
        if path.startswith("/healthz"):  # an unknown path under a probe is still a 404 ...
            assert response.status_code == 404
        assert len(events) == before + 1, (method, path[:40], events[before:])
        event = events[-1]
        assert event["request_id"] == response.headers["x-request-id"]
        if event["action"].startswith("http."):
            assert event["details"]["status"] == response.status_code
            assert event["action"] == f"http.{method.lower()}"
            if response.headers["content-type"].startswith("application/problem+json"):
                slug = response.json()["type"].rsplit(":", 1)[1]
                assert event["details"]["problem"] == slug
        assert "/" not in event["resource"] or event["resource"].startswith("/v1/")
        if event["resource"] == "unmatched":
            assert len(event["details"]["path_hash"]) == 64
        if marker != "-":
            assert marker not in stored(api), (method, path[:40])
    verify_passes(api)


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [({"Authorization": f"Bearer {BAD_KEY}"}, 401), ({}, 401)],
    ids=["bad-key", "no-key"],
)
def test_when_a_bad_key_asks_for_an_email_path_then_no_email_is_stored_anywhere(
    api: Api, credentials: dict[str, str], expected: int
) -> None:
    response = api.client.get(f"/v1/records/{EMAIL}", headers=credentials)
    assert response.status_code == expected
    assert EMAIL not in response.text
    (event,) = [e for e in all_events(api) if e["decision"] == "deny"]
    assert event["resource"] == "/v1/records/{record_id}"
    assert event["details"]["path_hash"] == api.services.audit.path_params_hash(
        {"record_id": EMAIL}
    )
    assert event["details"]["reason"] == "unauthenticated"
    assert EMAIL not in stored(api)


def test_when_a_role_is_forbidden_on_an_email_path_then_the_denial_holds_no_email(
    api: Api,
) -> None:
    response = api.client.delete(f"/v1/records/{EMAIL}", headers=api.headers("agent"))
    assert response.status_code == 403
    (event,) = [e for e in all_events(api) if e["decision"] == "deny"]
    assert event["resource"] == "/v1/records/{record_id}"
    assert event["details"]["reason"] == "forbidden"
    assert event["principal"] is not None
    assert EMAIL not in stored(api)


def test_when_bad_keys_flood_then_they_are_limited_and_every_one_is_counted_exactly(
    open_api: OpenApi,
) -> None:
    sent = 0
    with open_api(auth_failure_limit=3, auth_failure_window_seconds=3600) as api:
        statuses = []
        for n in range(20):
            if n % 2:
                response = api.client.post(
                    "/v1/redact", json={"text": "hi"}, headers=bearer(BAD_KEY)
                )
            else:
                response = api.client.get("/v1/records/" + "a" * 300, headers=bearer(BAD_KEY))
            statuses.append(response.status_code)
            sent += 1
        assert statuses[:3] == [401, 401, 401]
        assert set(statuses[3:]) == {429}, statuses
        throttled = api.client.post("/v1/redact", json={}, headers=bearer(BAD_KEY))
        sent += 1
        assert throttled.status_code == 429
        assert throttled.headers["content-type"].startswith("application/problem+json")
        assert throttled.json()["type"] == "urn:guard:problem:too-many-requests"
        assert 1 <= int(throttled.headers["retry-after"]) <= 3600
        for _ in range(5):  # unknown paths and no credentials: refused, aggregated with them
            assert api.client.get("/v1/nowhere").status_code == 404
            sent += 1
        other_prefix = "gk_BBBBBBBB_" + "y" * 43
        assert api.client.get("/v1/records", headers=bearer(other_prefix)).status_code == 401
        sent += 1
        # a working key (its own prefix) still works from the same client
        ok = api.client.post("/v1/redact", json={"text": "hi"}, headers=api.headers("agent"))
        assert ok.status_code == 200
        while_running = [e for e in all_events(api) if e["principal"] is None]
        assert len(while_running) == 1  # the first refusal; the rest wait in the aggregate
    # shutdown flushed the window's aggregate
    events = all_events(api)
    aggregates = [e for e in events if e["action"] == AGGREGATE_ACTION]
    assert len(aggregates) == 1
    details = aggregates[0]["details"]
    assert details["status_401"] == 2 + 1
    assert details["status_429"] == 17 + 1
    assert details["status_404"] == 5
    assert refusal_total(events) == sent
    assert "testclient" not in stored(api)
    verify_passes(api)


def test_when_a_window_closes_then_the_periodic_task_writes_its_aggregate(
    open_api: OpenApi,
) -> None:
    with open_api(auth_failure_limit=100, auth_failure_window_seconds=0.2) as api:
        for _ in range(4):
            assert api.client.get("/v1/records", headers=bearer(BAD_KEY)).status_code == 401
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            aggregates = api.services.audit.search_events(action=AGGREGATE_ACTION)
            if aggregates:
                break
            time.sleep(0.05)
        assert [a["details"]["refusals"] for a in aggregates] == [3]
        assert refusal_total(all_events(api)) == 4


def test_when_two_principals_send_the_same_request_id_then_their_events_stay_apart(
    api: Api,
) -> None:
    shared = "shared-correlation-1"
    first = api.client.post(
        "/v1/redact", json={"text": "hi"}, headers={**api.headers("agent"), "X-Request-ID": shared}
    )
    second = api.client.post(
        "/v1/redact",
        json={"text": "hi"},
        headers={**api.headers("supervisor"), "X-Request-ID": shared},
    )
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == shared
    events = [e for e in all_events(api) if e["action"] == "text.redact"]
    assert len(events) == 2
    assert {e["details"]["correlation_id"] for e in events} == {shared}
    ids = {e["request_id"] for e in events}
    assert len(ids) == 2
    assert shared not in ids
    officer = api.headers("compliance_officer")
    for event in events:
        found = api.client.get(
            "/v1/audit/events", params={"request_id": event["request_id"]}, headers=officer
        ).json()["events"]
        assert [e["principal"] for e in found] == [event["principal"]]
    none = api.client.get("/v1/audit/events", params={"request_id": shared}, headers=officer)
    assert none.json()["events"] == []


def test_when_a_body_is_invalid_then_the_authenticated_caller_has_its_one_event(api: Api) -> None:
    response = api.client.post("/v1/redact", json={"text": 42}, headers=api.headers("agent"))
    assert response.status_code == 422
    (event,) = all_events(api)
    agent = api.services.api_keys.authenticate(api.keys["agent"])
    assert (event["principal"], event["role"], event["tenant"]) == (agent.id, "agent", "acme")
    assert (event["decision"], event["outcome"]) == ("allow", "failure")
    assert event["details"] == {"status": 422, "problem": "invalid-input"}
    assert event["resource"] == "/v1/redact"


def test_when_a_role_is_unknown_then_the_422_lists_the_field_in_errors(api: Api) -> None:
    response = api.client.post(
        "/v1/admin/principals",
        json={"name": "desk", "role": "emperor"},
        headers=api.headers("admin"),
    )
    assert response.status_code == 422
    body = response.json()
    assert [e["field"] for e in body["errors"]] == ["body.role"]
    assert "emperor" not in response.text


def test_when_the_audit_store_fails_then_the_request_fails_closed(
    api: Api, capfd: pytest.CaptureFixture[str]
) -> None:
    with api.services.engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE audit_events RENAME TO audit_moved"))
    try:
        response = api.client.get(f"/v1/{EMAIL}")
        assert response.status_code == 500
        assert response.json()["type"] == "urn:guard:problem:audit-unavailable"
    finally:
        with api.services.engine.begin() as connection:
            connection.execute(sqlalchemy.text("ALTER TABLE audit_moved RENAME TO audit_events"))
    logs = "".join(capfd.readouterr())
    assert "audit.request_event_failed" in logs
    assert EMAIL not in logs


# ------------------------------------------------------------------------------------ JWT


def token(**overrides: object) -> str:
    claims: dict[str, object] = {
        "sub": "agent-7",
        "role": "agent",
        "tenant": "acme",
        "iss": ISSUER,
        "aud": "guard",
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    return jwt.encode(claims, SECRET, algorithm="HS256")


JWT_SETTINGS: dict[str, object] = {
    "jwt_secret": SecretStr(SECRET),
    "jwt_algorithms": ["HS256"],
    "jwt_issuer": ISSUER,
    "jwt_audience": "guard",
}


@pytest.mark.parametrize(
    ("subject", "status"),
    [
        (EMAIL, 200),
        ("s" * 300, 200),
        ("a\nforged log line", 401),
        ("nul\x00byte", 401),
    ],
    ids=["email", "300-chars", "newline", "nul"],
)
def test_when_a_jwt_subject_is_an_identifier_or_forged_then_it_is_never_stored(
    open_api: OpenApi, subject: str, status: int
) -> None:
    with open_api(**JWT_SETTINGS) as api:
        headers = {"Authorization": f"Bearer {token(sub=subject)}"}
        for _ in range(2):  # the second request of a token works (or fails) like the first
            response = api.client.post("/v1/detect", json={"text": "hi"}, headers=headers)
            assert response.status_code == status, response.text
        dump = stored(api)
        assert subject not in dump
        assert subject.rsplit("\n", maxsplit=1)[-1] not in dump
        events = all_events(api)
        jwt_service = api.services.jwt
        assert jwt_service is not None
        if status == 200:
            assert [e["principal"] for e in events] == [jwt_service.principal_id(subject)] * 2
        else:
            assert events[0]["details"]["reason"] == "unauthenticated"
        verify_passes(api)


def test_when_an_issuer_is_pinned_then_a_token_for_another_tenant_is_refused_and_audited(
    open_api: OpenApi,
) -> None:
    with open_api(**JWT_SETTINGS, jwt_issuer_tenants={ISSUER: ["acme"]}) as api:
        ok = api.client.post("/v1/detect", json={"text": "hi"}, headers=bearer(token()))
        assert ok.status_code == 200
        foreign = api.client.post(
            "/v1/detect", json={"text": "hi"}, headers=bearer(token(tenant="globex"))
        )
        assert foreign.status_code == 401
        (denied,) = [e for e in all_events(api) if e["decision"] == "deny"]
        assert denied["details"]["reason"] == "tenant-not-allowed"
        assert denied["request_id"] == foreign.headers["x-request-id"]


# ------------------------------------------------------------------------ a real server


@pytest.fixture
def server(api: Api) -> Iterator[tuple[Api, int]]:
    """The same app under uvicorn on a free port, for requests only a raw socket can send."""
    app = create_app(services=api.services)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.started
    port = running.servers[0].sockets[0].getsockname()[1]
    yield api, port
    running.should_exit = True
    thread.join(timeout=30)


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/records/" + b"b" * 6000,
        b"/v1/records/qq%00qq",
        b"/v1/records/qq\xc3\xa9\xff",
        b"/v1/qq%0d%0aforged",
        b"/v1/records/" + EMAIL.encode(),
    ],
    ids=["6000-chars", "nul", "raw-bytes", "crlf", "email"],
)
def test_when_a_real_server_gets_hostile_targets_then_each_answered_request_has_one_event(
    server: tuple[Api, int], target: bytes
) -> None:
    api, port = server
    key = api.keys["agent"].encode()
    answer = raw_request(
        port,
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        + key
        + b"\r\nX-Note: \xc3\xa9\x01\r\nConnection: close\r\n\r\n",
    )
    status = int(answer.split(b" ", 2)[1])
    events = all_events(api)
    if b"x-request-id" in answer.lower():  # answered by guard (not refused by the parser)
        assert len(events) == 1, events
        assert events[0]["request_id"].encode() in answer
    else:
        assert events == []
    dump = stored(api)
    for marker in ("b" * 100, "qq\x00qq", "forged", EMAIL):
        assert marker not in dump
    assert status < 500, answer[:300]


def test_when_a_client_goes_away_then_its_request_is_still_audited(
    server: tuple[Api, int],
) -> None:
    api, port = server
    key = api.keys["agent"].encode()
    body = b'{"text": "' + b"hello there " * 2000 + b'"}'
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/redact HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
            + key
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body[: len(body) // 2]
        )
    deadline = time.monotonic() + 30
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not events:
        events = all_events(api)
        time.sleep(0.05)
    assert len(events) == 1, events
    assert events[0]["outcome"] in {"failure", "error"}


def test_when_the_docs_and_health_are_read_then_no_event_is_written(api: Api) -> None:
    for path in ("/docs", "/docs/swagger-init.js", "/docs/assets/swagger-ui.css", "/openapi.json"):
        assert api.client.get(path).status_code == 200, path
    assert api.client.head("/docs/assets/swagger-ui.css").status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert api.client.get(path).status_code == 200, path
    assert all_events(api) == []
    # an unknown path next to them is still audited
    assert api.client.get("/docs-nothing-here").status_code == 404
    (event,) = all_events(api)
    assert event["resource"] == "unmatched"
