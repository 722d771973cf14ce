"""POST /v1/exports/redact: rows streamed in and out through a profile; manifests for officers."""

from __future__ import annotations

import json
import re
import socket
import time
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from guard.api.app import create_app
from guard.audit.models import AuditEvent
from guard.storage.engine import session_scope
from tests.fixtures.server import serving

if TYPE_CHECKING:
    from tests.fixtures.api import Api

URL = "/v1/exports/redact?profile=chat_transcripts"
NDJSON = {"Content-Type": "application/x-ndjson"}
SECRET_EMAIL = "wilhelmina.vandersloot@example.org"
SECRET_NAME = "Wilhelmina Vandersloot"


def _row(i: int) -> dict[str, object]:
    return {
        "conversation_id": f"c-{i // 3}",
        "message_id": i,
        "customer_id": f"CUST-{1000 + i % 7}",
        "author": "customer" if i % 2 else "agent",
        "sent_at": f"2024-0{1 + i % 9}-1{i % 10}T10:00:00Z",
        "text": f"Hi, this is {SECRET_NAME}, write to {SECRET_EMAIL} about order {i}.",
    }


def _ndjson(rows: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _events(api: Api, action: str) -> list[AuditEvent]:
    with session_scope(api.services.session_factory) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).all()
        )


def test_an_analyst_streams_ndjson_through_a_profile(api: Api) -> None:
    rows = [_row(i) for i in range(700)]
    response = api.client.post(
        URL, content=_ndjson(rows), headers={**api.headers("analyst"), **NDJSON}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    out = [json.loads(line) for line in response.text.splitlines()]
    assert len(out) == 700
    assert SECRET_EMAIL not in response.text
    assert "Vandersloot" not in response.text
    first = out[0]
    assert first["message_id"] == 0
    assert first["author"] == "agent"
    assert first["sent_at"] == "2024-01"
    assert re.fullmatch(r"<ACCOUNT_ID_[0-9a-f]{12}>", first["customer_id"])
    assert out[7]["customer_id"] == first["customer_id"]  # same customer, same pseudonym
    assert "<EMAIL_ADDRESS_" in first["text"]
    # the manifest named in the header is stored, and the audit event references it
    manifest_id = response.headers["guard-export-manifest"]
    runs = _events(api, "export.run")
    assert len(runs) == 1
    assert runs[0].outcome == "success"
    details = json.loads(runs[0].details or "{}")
    assert details["manifest_id"] == manifest_id
    assert (details["rows_in"], details["rows_out"]) == (700, 700)
    officer = api.client.get(
        f"/v1/exports/manifests/{manifest_id}", headers=api.headers("compliance_officer")
    )
    assert officer.status_code == 200
    document = officer.json()["document"]
    assert document["input"]["rows"] == 700
    assert document["engine"] == "api"
    assert document["output"]["sha256"] != document["input"]["sha256"]
    listed = api.client.get("/v1/exports/manifests", headers=api.headers("compliance_officer"))
    assert [m["id"] for m in listed.json()["manifests"]] == [manifest_id]
    # another tenant sees nothing of it
    other = api.client.get(
        f"/v1/exports/manifests/{manifest_id}", headers=api.headers("other_tenant_supervisor")
    )
    assert other.status_code == 403


def test_csv_in_csv_out_with_quoted_newlines(api: Api) -> None:
    body = (
        "conversation_id,message_id,customer_id,author,sent_at,text\r\n"
        'c-1,1,CUST-1,customer,2024-05-02,"Line one\nmail me at '
        + SECRET_EMAIL
        + '"\r\nc-1,2,CUST-1,agent,2024-05-03,ok\r\n'
    )
    response = api.client.post(
        URL, content=body.encode(), headers={**api.headers("analyst"), "Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.split("\n")
    assert lines[0] == "conversation_id,message_id,customer_id,author,sent_at,text"
    assert SECRET_EMAIL not in response.text
    assert '"Line one\nmail me at <EMAIL_ADDRESS_' in response.text


def test_refusals_are_problems_that_never_echo_a_value(api: Api) -> None:
    analyst = api.headers("analyst")
    cases = [
        (URL, {**analyst, "Content-Type": "application/json"}, b"{}", 415),
        ("/v1/exports/redact?profile=nope", {**analyst, **NDJSON}, b'{"a":1}\n', 404),
        ("/v1/exports/redact?profile=Bad!", {**analyst, **NDJSON}, b'{"a":1}\n', 422),
        # k-anonymity needs every row: refused on the stream
        ("/v1/exports/redact?profile=support_analytics", {**analyst, **NDJSON}, b"{}\n", 422),
        (URL, {**api.headers("agent"), **NDJSON}, _ndjson([_row(1)]), 403),
        (URL, {**api.headers("compliance_officer"), **NDJSON}, _ndjson([_row(1)]), 403),
        (URL, {**analyst, **NDJSON}, b"", 422),
    ]
    for url, headers, body, status in cases:
        response = api.client.post(url, content=body, headers=headers)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    # a first batch that does not fit the profile: a 422 naming the column, not the value
    missing = {k: v for k, v in _row(1).items() if k != "author"}
    response = api.client.post(URL, content=_ndjson([missing]), headers={**analyst, **NDJSON})
    assert response.status_code == 422
    assert "column 'author'" in response.json()["detail"]
    assert SECRET_EMAIL not in response.text
    failures = [e for e in _events(api, "export.run") if e.outcome == "failure"]
    assert failures, "a refused export is audited"


def test_a_bad_row_mid_stream_ends_with_an_error_line_and_an_aborted_response(
    api: Api,
) -> None:
    rows = _ndjson([_row(i) for i in range(2000)]) + b'"' + SECRET_EMAIL.encode() + b'"\n'
    with (
        serving(create_app(services=api.services)) as base,
        httpx.Client(base_url=base, timeout=60) as client,
        client.stream(
            "POST", URL, content=rows, headers={**api.headers("analyst"), **NDJSON}
        ) as response,
    ):
        assert response.status_code == 200
        received = b""
        aborted = False
        try:
            for chunk in response.iter_bytes():
                received += chunk
        except httpx.RemoteProtocolError:
            aborted = True
    assert aborted, "the response must not look complete"
    last = json.loads(received.splitlines()[-1])
    problem = last["guard_error"]
    assert problem["status"] == 422
    assert "row 2001" in problem["detail"]
    assert SECRET_EMAIL not in received.decode()
    failures = [e for e in _events(api, "export.run") if e.outcome == "failure"]
    assert len(failures) == 1
    assert json.loads(failures[0].details or "{}")["reason"] == "invalid-export-input"


def test_rows_come_out_before_the_body_has_been_sent(api: Api) -> None:
    """Streamed, not read whole: the first redacted rows arrive while the client still sends."""
    with serving(create_app(services=api.services)) as base:
        port = int(base.rsplit(":", 1)[1])
        conn = socket.create_connection(("127.0.0.1", port), timeout=60)
        try:
            conn.sendall(
                (
                    f"POST {URL} HTTP/1.1\r\nHost: guard\r\n"
                    f"Authorization: Bearer {api.keys['analyst']}\r\n"
                    "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                ).encode()
            )

            def chunk(data: bytes) -> bytes:
                return f"{len(data):x}\r\n".encode() + data + b"\r\n"

            # the first 1,200 rows (past the sample, the typing window and a batch), then wait
            conn.sendall(chunk(_ndjson([_row(i) for i in range(1200)])))
            seen = b""
            deadline = time.monotonic() + 60
            while b"message_id" not in seen:
                assert time.monotonic() < deadline, "no row came back while the body was open"
                seen += conn.recv(65536)
            assert seen.startswith(b"HTTP/1.1 200")
            # the body is still open: now send the rest and end it
            conn.sendall(chunk(_ndjson([_row(i) for i in range(1200, 1300)])) + b"0\r\n\r\n")
            while not seen.endswith(b"0\r\n\r\n"):
                data = conn.recv(65536)
                if not data:
                    break
                seen += data
        finally:
            conn.close()
    assert seen.count(b'"message_id"') == 1300
    assert SECRET_EMAIL.encode() not in seen
