"""Hostile input gets a precise 4xx, never a 500; errors never echo input; the contract holds.

Every case here was a 500, a leak or a lie of the OpenAPI document before (issue 8).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pytest
import structlog
from click.testing import CliRunner
from fastapi import FastAPI, Request  # noqa: TC002 - FastAPI reads the test routes' annotations
from fastapi.responses import JSONResponse
from opentelemetry import _logs as otel_logs

from guard.api.app import create_app
from guard.cli import main
from guard.cligroup import EXIT_ADDRESS_UNAVAILABLE
from guard.config import Settings
from guard.logging import configure_logging
from tests.fixtures.server import serving

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from tests.fixtures.api import Api

EMAIL = "joe@example.org"
SURROGATE = b"x \\ud800 y"


class Response(Protocol):
    """An HTTP response as both httpx and httpx2 (Starlette's test client's choice) give it."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def assert_problem(response: Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["type"] == f"urn:guard:problem:{slug}"
    assert body["status"] == status
    assert body["title"] != "Error"
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def post_raw(api: Api, path: str, raw: bytes, role: str) -> Response:
    headers = {**api.headers(role), "content-type": "application/json"}
    response: Response = api.client.post(path, content=raw, headers=headers)
    return response


# ------------------------------------------------------------------ lone surrogates: 422


@pytest.mark.parametrize(
    ("path", "raw", "role", "field"),
    [
        ("/v1/redact", b'{"text": "' + SURROGATE + b'"}', "agent", "body.text"),
        ("/v1/redact", b'{"texts": ["ok", "' + SURROGATE + b'"]}', "agent", "body.texts.1"),
        ("/v1/detect", b'{"text": "' + SURROGATE + b'"}', "analyst", "body.text"),
        (
            "/v1/redact/json",
            b'{"document": {"a": ["' + SURROGATE + b'"]}}',
            "analyst",
            "body.document.<key>.0",
        ),
        (
            "/v1/redact/json",
            b'{"document": {"' + SURROGATE + b'": 1}}',
            "analyst",
            "body.document.<key>",
        ),
        (
            "/v1/reveal",
            b'{"text": "' + SURROGATE + b'", "reason": "customer asked"}',
            "supervisor",
            "body.text",
        ),
        ("/v1/records", b'{"extra": {"note": "' + SURROGATE + b'"}}', "agent", "body.extra.<key>"),
        ("/v1/records", b'{"extra": {"' + SURROGATE + b'": "v"}}', "agent", "body.extra.<key>"),
        ("/v1/records/search", b'{"email": "' + SURROGATE + b'"}', "agent", "body.email"),
    ],
)
def test_when_a_string_or_key_holds_a_lone_surrogate_then_422_names_the_field(
    api: Api, path: str, raw: bytes, role: str, field: str
) -> None:
    response = post_raw(api, path, raw, role)
    body = assert_problem(response, 422, "invalid-input")
    assert body["errors"] == [
        {"field": field, "problem": str(body["detail"]).removeprefix(f"{field}: ")}
    ]
    assert "surrogate" in str(body["detail"])


def test_when_a_surrogate_pair_is_escaped_then_it_is_accepted(api: Api) -> None:
    # a correctly paired escape is a real character (U+1F600), not an error
    response = post_raw(api, "/v1/redact", b'{"text": "smile \\ud83d\\ude00"}', "agent")
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["text"] == "smile \U0001f600"


def test_when_the_body_is_not_utf8_then_422(api: Api) -> None:
    response = post_raw(api, "/v1/redact", b'{"text": "caf\xe9"}', "agent")
    body = assert_problem(response, 422, "invalid-input")
    assert "UTF-8" in str(body["detail"])


# ------------------------------------------------------------------------- deep nesting


@pytest.mark.parametrize(
    "document",
    [
        "[" * 500 + "]" * 500,
        '{"a":' * 400 + "1" + "}" * 400,
        "[" * 200_000 + "]" * 200_000,  # far past the interpreter's stack, under the body limit
        '{"a": ' + "[" * 65 + "]" * 65 + "}",  # one level past the default limit of 64
    ],
    ids=["list-500", "object-400", "list-200000", "limit-plus-one"],
)
def test_when_a_document_nests_too_deep_then_422_says_the_limit(
    api: Api, document: str, capfd: pytest.CaptureFixture[str]
) -> None:
    raw = b'{"document": ' + document.encode() + b"}"
    response = post_raw(api, "/v1/redact/json", raw, "analyst")
    body = assert_problem(response, 422, "invalid-input")
    # "body.document" when the depth is measured, "body" when the decoder itself gave up
    assert body["detail"] in {
        f"{field}: JSON nested more than 64 levels deep (GUARD_MAX_JSON_DEPTH)"
        for field in ("body.document", "body")
    }
    assert "Traceback" not in "".join(capfd.readouterr())


def test_when_a_document_is_at_the_depth_limit_then_it_is_redacted(api: Api) -> None:
    document: object = EMAIL
    for _ in range(64):
        document = [document]
    response = api.client.post(
        "/v1/redact/json", json={"document": document}, headers=api.headers("analyst")
    )
    assert response.status_code == 200, response.text
    assert EMAIL not in response.text


# --------------------------------------------------------------------- other 500s: 4xx


def test_when_the_audit_cursor_overflows_then_422(api: Api) -> None:
    response = api.client.get(
        "/v1/audit/events",
        params={"cursor": str(2**63)},
        headers=api.headers("compliance_officer"),
    )
    body = assert_problem(response, 422, "invalid-input")
    assert str(body["detail"]).startswith("query.cursor: ")
    largest = api.client.get(
        "/v1/audit/events",
        params={"cursor": str(2**63 - 1)},
        headers=api.headers("compliance_officer"),
    )
    assert largest.status_code == 200, largest.text
    assert largest.json()["events"] == []


def test_when_a_chunked_body_goes_over_the_limit_then_413_not_400(api: Api) -> None:
    limit = api.settings.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(limit // 100_000 + 2):
            yield b"x" * 100_000
        yield b'"}'

    response = api.client.post(
        "/v1/redact",
        content=chunks(),
        headers={**api.headers("agent"), "content-type": "application/json"},
    )
    body = assert_problem(response, 413, "input-too-large")
    assert "GUARD_MAX_BODY_BYTES" in str(body["detail"])


# ------------------------------------------------------------------ leaks in responses


def test_when_a_json_key_is_pii_then_it_is_redacted(api: Api) -> None:
    response = api.client.post(
        "/v1/redact/json",
        json={"document": {EMAIL: {"plan": "pro"}, "other@example.org": 1}},
        headers=api.headers("analyst"),
    )
    assert response.status_code == 200, response.text
    assert EMAIL not in response.text
    assert "other@example.org" not in response.text
    body = response.json()
    assert len(body["document"]) == 2  # colliding redacted keys are kept apart
    assert {item["path"].lstrip("/") for item in body["items"]} == set(body["document"])
    assert all(item["in_key"] for item in body["items"])


def test_when_a_422_names_a_field_the_client_chose_then_it_is_not_echoed(api: Api) -> None:
    response = api.client.post(
        "/v1/redact", json={"text": "hi", EMAIL: 1}, headers=api.headers("agent")
    )
    body = assert_problem(response, 422, "invalid-input")
    assert EMAIL not in response.text
    assert body["errors"] == [{"field": "body.<key>", "problem": "Extra inputs are not permitted"}]


def test_when_a_record_is_not_found_then_neither_detail_nor_instance_echo_its_id(
    api: Api,
) -> None:
    response = api.client.get(f"/v1/records/{EMAIL}", headers=api.headers("agent"))
    body = assert_problem(response, 404, "not-found")
    assert EMAIL not in response.text
    assert body["instance"] == "/v1/records/{record_id}"


def test_when_no_route_matches_then_the_problem_has_no_instance(api: Api) -> None:
    response = api.client.get(f"/v1/nothing/{EMAIL}", headers=api.headers("agent"))
    body = assert_problem(response, 404, "not-found")
    assert "instance" not in body
    assert EMAIL not in response.text


def test_when_a_record_was_erased_then_410_has_a_title_and_no_id(api: Api) -> None:
    created = api.client.post("/v1/records", json={"email": EMAIL}, headers=api.headers("agent"))
    record_id = created.json()["id"]
    erased = api.client.delete(f"/v1/records/{record_id}", headers=api.headers("admin"))
    assert erased.status_code == 200, erased.text
    response = api.client.get(f"/v1/records/{record_id}", headers=api.headers("agent"))
    body = assert_problem(response, 410, "record-erased")
    assert body["title"] == "Gone"
    assert record_id not in response.text.replace(response.headers["x-request-id"], "")


@pytest.mark.parametrize(
    ("method", "path", "body", "role", "status"),
    [
        ("POST", "/v1/redact", {"text": EMAIL}, "agent", 200),
        ("POST", "/v1/reveal", {"text": "x", "reason": "because I must"}, "agent", 403),
        ("POST", "/v1/redact", {"text": EMAIL}, None, 401),
        ("POST", "/v1/redact", {}, "agent", 422),
        ("GET", "/v1/records/nope", None, "agent", 404),
        ("OPTIONS", "/v1/records/nope", None, "agent", 405),
    ],
)
def test_every_v1_response_forbids_caching(
    api: Api,
    method: str,
    path: str,
    body: dict[str, object] | None,
    role: str | None,
    status: int,
) -> None:
    headers = api.headers(role) if role else {}
    response = api.client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_when_options_is_sent_then_405_lists_every_method_of_the_path(api: Api) -> None:
    response = api.client.options("/v1/records/some-id", headers=api.headers("agent"))
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    search = api.client.get("/v1/records/search", headers=api.headers("agent"))
    # GET /v1/records/search is the read route (id "search"); POST is the search route
    assert search.status_code == 404


def test_when_the_body_is_sent_without_json_content_type_then_the_422_says_so(
    api: Api,
) -> None:
    response = api.client.post(
        "/v1/redact",
        content=b'{"text": "hi"}',
        headers={**api.headers("agent"), "content-type": "text/plain"},
    )
    body = assert_problem(response, 422, "invalid-input")
    assert "Content-Type: application/json" in str(body["detail"])


# ------------------------------------------------------- a real server: 500s and logs


def _app_with_test_routes(api: Api) -> FastAPI:
    """guard's app plus routes that exist only here: one fails, others log their marker."""
    app = create_app(services=api.services)
    log = structlog.get_logger("test")

    async def boom(_request: Request) -> JSONResponse:
        raise RuntimeError(EMAIL)  # a message that must not reach the log

    async def client_port(request: Request) -> JSONResponse:
        client = request.scope.get("client") or ("", 0)
        return JSONResponse({"port": client[1]})

    async def log_async(request: Request) -> JSONResponse:
        marker = request.headers["x-request-id"]
        for index in range(3):
            log.info("test.line", marker=marker, index=index)
            await asyncio.sleep(0.005)
        return JSONResponse({})

    def log_sync(request: Request) -> JSONResponse:  # runs in the threadpool
        marker = request.headers["x-request-id"]
        for index in range(3):
            log.info("test.line", marker=marker, index=index)
            time.sleep(0.005)
        return JSONResponse({})

    app.add_api_route("/test/boom", boom)
    app.add_route("/test/port", client_port)
    app.add_route("/test/log-async", log_async)
    app.add_api_route("/test/log-sync", log_sync)
    return app


def test_when_a_request_fails_with_500_then_the_keep_alive_connection_survives(
    api: Api, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _app_with_test_routes(api)
    with serving(app) as url, httpx.Client(base_url=url) as client:
        before = client.get("/test/port").json()["port"]
        failed = client.get("/test/boom", headers={"X-Request-ID": "req-boom-0001"})
        body = assert_problem(failed, 500, "internal")
        assert body["request_id"] == "req-boom-0001"
        assert EMAIL not in failed.text
        after = client.get("/test/port")
        assert after.status_code == 200
        assert after.json()["port"] == before  # the same TCP connection, not a new one
        redact = client.post("/v1/redact", json={"text": "hi"}, headers=api.headers("agent"))
        assert redact.status_code == 200, redact.text
    logs = "".join(capfd.readouterr())
    assert "Traceback" not in logs
    assert EMAIL not in logs


class _KeptLogger(otel_logs.Logger):
    """An OpenTelemetry logger that keeps every record it is given, enabled for all."""

    def __init__(self, name: str, records: list[str]) -> None:
        super().__init__(name)
        self.records = records

    def emit(self, record: object = None, **fields: object) -> None:
        self.records.append(repr((record, fields)))

    def enabled(self, **_: object) -> bool:
        return True


class _KeptLogs(otel_logs.LoggerProvider):
    """An OpenTelemetry logger provider whose loggers keep what they are given (as a
    deployment's exporter would ship it)."""

    def __init__(self) -> None:
        self.records: list[str] = []

    def get_logger(self, name: str, *args: object, **kwargs: object) -> otel_logs.Logger:
        del args, kwargs  # one kind of logger for every instrumentation scope
        return _KeptLogger(name, self.records)


def test_fastapi_own_telemetry_stays_off_with_a_global_logger_configured(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment's global OpenTelemetry logger does not switch FastAPI's telemetry on.

    FastAPI's native telemetry would observe every request and emit an escaping exception with
    its message (which may quote the request); guard switches it off and logs exception types
    only, through its own processors. Observed from inside a request: FastAPI marks the scope
    of every request it observes.
    """
    kept = _KeptLogs()
    monkeypatch.setattr(otel_logs, "get_logger_provider", lambda: kept)
    monkeypatch.setattr(otel_logs, "get_logger", kept.get_logger)
    app = _app_with_test_routes(api)

    async def observed(request: Request) -> JSONResponse:
        return JSONResponse({"observed": "fastapi.telemetry" in request.scope})

    app.add_route("/test/observed", observed)
    with serving(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/test/observed").json() == {"observed": False}
        assert_problem(client.get("/test/boom"), 500, "internal")
    assert kept.records == []


def test_every_log_line_of_a_request_carries_its_id_and_no_other(
    api: Api, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="json", log_level="info"))
    app = _app_with_test_routes(api)
    ids = [f"req-log-{n:04d}-{kind}" for n in range(12) for kind in ("async", "sync")]
    capfd.readouterr()
    with serving(app) as url:

        def call(request_id: str) -> int:
            kind = request_id.rsplit("-", 1)[1]
            with httpx.Client(base_url=url) as client:
                return client.get(
                    f"/test/log-{kind}", headers={"X-Request-ID": request_id}
                ).status_code

        threads = [threading.Thread(target=call, args=(rid,)) for rid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with httpx.Client(base_url=url) as client:
            assert_problem(
                client.get("/test/boom", headers={"X-Request-ID": "req-boom-0002"}),
                500,
                "internal",
            )
    structlog.get_logger("test").info("test.after")  # outside any request
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    test_lines = [line for line in lines if line["event"] == "test.line"]
    assert len(test_lines) == 3 * len(ids)
    for line in test_lines:
        assert line["request_id"] == line["marker"]
    failed = [line for line in lines if line["event"] == "request.failed"]
    assert failed == [
        {
            "event": "request.failed",
            "exception_type": "RuntimeError",
            "route": "/test/boom",
            "response_started": False,
            "request_id": "req-boom-0002",
            "level": "error",
            "timestamp": failed[0]["timestamp"],
        }
    ]
    (after,) = [line for line in lines if line["event"] == "test.after"]
    assert "request_id" not in after


# ------------------------------------------------------------------- guard serve, docs


def test_when_the_port_is_taken_then_serve_says_so_with_its_own_exit_code() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == EXIT_ADDRESS_UNAVAILABLE == 4
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "http://" not in result.output  # no banner


def test_the_docs_are_served_by_guard_itself(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "http://" not in html
    assert "https://" not in html
    assert "<script>" not in html  # no inline script: the CSP allows none
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in html
        assert api.client.get(asset).status_code == 200
    init = api.client.get("/docs/swagger-init.js")
    assert init.status_code == 200
    assert '"/openapi.json"' in init.text
    assert api.client.get("/redoc").status_code == 404


# ------------------------------------------------------------------------ the document


def test_the_openapi_document_says_what_the_api_does(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert spec["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    redact = spec["paths"]["/v1/redact"]["post"]
    assert redact["security"] == [{"bearer": []}, {"apiKey": []}]
    for status in ("401", "403", "413", "422", "429", "500", "503"):
        content = redact["responses"][status]["content"]
        assert list(content) == ["application/problem+json"], status
    assert {"404", "410"} <= set(spec["paths"]["/v1/records/{record_id}"]["get"]["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.parametrize(
    ("schema_name", "valid", "invalid"),
    [
        (
            "RedactRequest",
            [{"text": "a"}, {"texts": ["a"]}, {"text": "a", "texts": None}],
            [{}, {"text": "a", "texts": ["b"]}, {"text": None, "texts": None}, {"texts": []}],
        ),
        ("DetectRequest", [{"text": "a"}], [{}, {"channel": "note"}]),
        (
            "RecordSearchRequest",
            [{"email": "a@b.example"}, {"phone": "1", "email": None}],
            [{}, {"email": "a@b.example", "phone": "1"}],
        ),
    ],
)
def test_the_document_refuses_the_bodies_the_api_refuses(
    api: Api, schema_name: str, valid: list[object], invalid: list[object]
) -> None:
    import jsonschema_rs  # noqa: PLC0415 - installed with schemathesis (dev extra)

    schema = api.client.get("/openapi.json").json()["components"]["schemas"][schema_name]
    validator = jsonschema_rs.validator_for(schema)
    path = {"RedactRequest": "/v1/redact", "DetectRequest": "/v1/detect"}.get(
        schema_name, "/v1/records/search"
    )
    for body in valid:
        assert validator.is_valid(body), body
        response = api.client.post(path, json=body, headers=api.headers("supervisor"))
        assert response.status_code == 200, (body, response.text)
    for body in invalid:
        assert not validator.is_valid(body), body
        response = api.client.post(path, json=body, headers=api.headers("supervisor"))
        assert_problem(response, 422, "invalid-input")
