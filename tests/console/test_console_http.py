"""The console over HTTP: sessions, CSRF, headers, authorization, audit, no PII on any page.

The browser tests (test_browser.py) do what an officer does in Chromium; these check the
security properties request by request, fast, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.api import Api, api, open_api
from tests.incidents.helpers import deny, records_read_by_a_supervisor, scanner_for

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.fixtures.api import OpenApi

__all__ = ["api", "open_api"]

PAGES = (
    "/console",
    "/console/audit",
    "/console/audit/events/1",
    "/console/verify",
    "/console/incidents",
    "/console/keys",
)
PII = {
    "name": "Margarethe Vandersloot",
    "email": "m.vandersloot@example.org",
    "phone": "+1 415 555 0199",
}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> str:
    """Sign in through the form; the session's CSRF token (from the next page)."""
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"api_key": key, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console"
    return csrf_of(client.get("/console").text)


@pytest.mark.parametrize("path", PAGES)
def test_when_there_is_no_session_then_every_page_sends_you_to_sign_in(api: Api, path: str) -> None:
    response = api.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


def test_when_a_page_is_served_then_the_security_headers_are_there_and_no_script(
    api: Api,
) -> None:
    sign_in(api.client, api.keys["compliance_officer"])
    for path in ("/console/login", *PAGES):
        response = api.client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "<script" not in response.text.lower()
        assert re.search(r"<[^>]+\son[a-z]+\s*=", response.text) is None  # no inline handlers


def test_when_signed_in_then_the_cookie_is_httponly_strict_and_new(api: Api) -> None:
    api.client.cookies.set("guard_console", "a-token-an-attacker-planted", path="/console")
    form = api.client.get("/console/login")
    response = api.client.post(
        "/console/login",
        data={"api_key": api.keys["compliance_officer"], "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "guard_console=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    assert token != "a-token-an-attacker-planted"
    assert len(token) >= 40


def test_when_a_forged_cookie_is_sent_then_it_is_no_session(api: Api) -> None:
    api.client.cookies.set("guard_console", "x" * 43, path="/console")
    assert api.client.get("/console", follow_redirects=False).status_code == 303


def test_when_the_key_is_wrong_then_sign_in_fails_audited_and_names_nothing(api: Api) -> None:
    form = api.client.get("/console/login")
    response = api.client.post(
        "/console/login", data={"api_key": "gk_nope_secret", "csrf_token": csrf_of(form.text)}
    )
    assert response.status_code == 401
    assert "Sign-in failed" in response.text
    assert "gk_nope_secret" not in response.text
    (event,) = api.services.audit.search_events(action="console.login")
    assert (event["decision"], event["outcome"]) == ("deny", "failure")


def test_when_the_sign_in_form_has_no_csrf_token_then_it_is_refused(api: Api) -> None:
    api.client.get("/console/login")
    response = api.client.post(
        "/console/login", data={"api_key": api.keys["compliance_officer"]}, follow_redirects=False
    )
    assert response.status_code == 403
    assert api.client.get("/console", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("path", ["/console/audit", "/console/verify", "/console/incidents"])
def test_when_an_agent_signs_in_then_officer_pages_are_not_allowed_and_audited(
    api: Api, path: str
) -> None:
    sign_in(api.client, api.keys["agent"])
    response = api.client.get(path)
    assert response.status_code == 403
    assert "Not allowed" in response.text
    denied = api.services.audit.search_events(action="console.denied")
    assert denied
    assert denied[-1]["decision"] == "deny"


def test_when_a_form_is_posted_without_its_csrf_token_then_it_is_refused(api: Api) -> None:
    sign_in(api.client, api.keys["compliance_officer"])
    assert api.client.post("/console/verify", data={}).status_code == 403
    assert api.client.post("/console/verify", data={"csrf_token": "guess"}).status_code == 403
    assert api.services.audit.search_events(action="audit.verify") == []


def test_when_signed_out_then_the_session_is_gone_on_the_server(api: Api) -> None:
    csrf = sign_in(api.client, api.keys["compliance_officer"])
    token = api.client.cookies.get("guard_console")
    response = api.client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    api.client.cookies.set("guard_console", str(token), path="/console")  # replayed
    assert api.client.get("/console", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "expiry", [{"console_idle_minutes": 0.002}, {"console_session_hours": 0.00004}]
)
def test_when_a_session_outlives_its_expiry_then_it_ends(
    open_api: OpenApi, expiry: dict[str, float]
) -> None:
    with open_api(**expiry) as api:
        sign_in(api.client, api.keys["compliance_officer"])
        time.sleep(0.25)
        assert api.client.get("/console", follow_redirects=False).status_code == 303


def test_when_an_officer_views_and_searches_then_each_is_an_audit_event(api: Api) -> None:
    sign_in(api.client, api.keys["compliance_officer"])
    api.client.get("/console")
    api.client.get("/console/audit", params={"action": "console.login", "decision": "allow"})
    actions = [e["action"] for e in api.services.audit.search_events(limit=1000)]
    assert "console.overview" in actions
    search = api.services.audit.search_events(action="audit.search")[-1]
    assert search["details"]["filters"] == "action,decision"
    assert search["details"]["door"] == "console"


def test_when_a_customer_is_searched_then_the_id_is_matched_by_its_hash_and_not_kept(
    api: Api,
) -> None:
    created = api.client.post(
        "/v1/records", headers=api.headers("agent"), json={"full_name": "Ann Lee"}
    ).json()
    sign_in(api.client, api.keys["compliance_officer"])
    page = api.client.get("/console/audit", params={"customer": created["id"]})
    assert "records.create" in page.text
    events = api.services.audit.search_events(action="audit.search")
    assert created["id"] not in str(events)
    assert events[-1]["customer"] == api.services.audit.customer_hash(created["id"])


def test_when_the_filter_is_malformed_then_the_page_says_which_field(api: Api) -> None:
    sign_in(api.client, api.keys["compliance_officer"])
    response = api.client.get("/console/audit", params={"since": "yesterday-ish"})
    assert response.status_code == 400
    assert "From:" in response.text
    assert api.client.get("/console/audit", params={"decision": "maybe"}).status_code == 400


def test_when_the_trail_is_exported_from_the_console_then_the_csv_has_the_filtered_events(
    api: Api,
) -> None:
    deny(api, 3)
    sign_in(api.client, api.keys["compliance_officer"])
    response = api.client.get("/console/audit/export", params={"decision": "deny", "format": "csv"})
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("seq,")
    assert len(lines) == 4
    assert api.services.audit.search_events(action="audit.export")[-1]["details"]["format"] == "csv"


def test_when_an_officer_works_an_incident_in_the_console_then_it_moves_forward_only(
    api: Api,
) -> None:
    deny(api, 10)
    scanner_for(api).scan()
    csrf = sign_in(api.client, api.keys["compliance_officer"])
    listing = api.client.get("/console/incidents")
    (incident_id,) = set(re.findall(r'href="/console/incidents/([0-9a-f-]{36})"', listing.text))
    url = f"/console/incidents/{incident_id}"
    moved = api.client.post(f"{url}/transition", data={"status": "contained", "csrf_token": csrf})
    assert moved.status_code == 200  # followed the redirect back to the incident
    assert "<dd>contained</dd>" in moved.text
    back = api.client.post(f"{url}/transition", data={"status": "triaged", "csrf_token": csrf})
    assert back.status_code == 409
    assert "only move forward" in back.text
    noted = api.client.post(
        f"{url}/notes", data={"note": "Rang m.vandersloot@example.org", "csrf_token": csrf}
    )
    assert "m.vandersloot@example.org" not in noted.text
    step = re.search(r'action="/console/incidents/[^/]+/steps/([a-z0-9-]+)"', noted.text)
    assert step is not None
    ticked = api.client.post(
        f"{url}/steps/{step.group(1)}", data={"done": "true", "csrf_token": csrf}
    )
    assert f"Mark {step.group(1)} not done" in ticked.text
    actions = {e["action"] for e in api.services.audit.search_events(limit=1000)}
    assert {"incidents.transition", "incidents.note", "incidents.step"} <= actions


def test_when_pii_is_in_the_data_then_no_console_page_shows_it(api: Api) -> None:
    created = api.client.post(
        "/v1/records",
        headers=api.headers("agent"),
        json={"full_name": PII["name"], "email": PII["email"], "phone": PII["phone"]},
    ).json()
    api.client.post(
        "/v1/redact", headers=api.headers("agent"), json={"text": f"Mail {PII['email']}"}
    )
    api.client.post(
        f"/v1/records/{created['id']}/reveal",
        headers=api.headers("supervisor"),
        json={"reason": f"{PII['name']} called about {PII['phone']}"},
    )
    deny(api, 10)
    scanner_for(api).scan()
    sign_in(api.client, api.keys["admin"])
    pages = [*PAGES, "/console/audit?cursor=0"]
    listing = api.client.get("/console/incidents").text
    pages += [
        f"/console/incidents/{i}"
        for i in re.findall(r'href="/console/incidents/([0-9a-f-]{36})"', listing)
    ]
    events = api.client.get("/console/audit").text
    pages += [
        f"/console/audit/events/{s}" for s in re.findall(r"/console/audit/events/(\d+)", events)
    ]
    for path in pages:
        text = api.client.get(path).text
        for value in (*PII.values(), created["id"]):
            assert value not in text, f"{path} shows raw data"


def test_when_an_officer_drafts_customer_notices_then_each_is_addressed_and_audited(
    api: Api,
) -> None:
    ids = records_read_by_a_supervisor(api, [("Jane Roe", "jane@example.com")])
    csrf = sign_in(api.client, api.keys["compliance_officer"])
    listing = api.client.get("/console/incidents")
    (incident_id,) = set(re.findall(r'href="/console/incidents/([0-9a-f-]{36})"', listing.text))
    url = f"/console/incidents/{incident_id}/notices/customers"
    no_reason = api.client.post(url, data={"reason": "", "csrf_token": csrf})
    assert no_reason.status_code == 400
    assert "Reason:" in no_reason.text
    drafted = api.client.post(url, data={"reason": "Art. 34 notice", "csrf_token": csrf})
    assert drafted.status_code == 200
    assert "Jane" in drafted.text
    (event,) = [
        e
        for e in api.services.audit.search_events(action="incidents.notice")
        if e["details"].get("party") == "customer"
    ]
    assert event["customer"] == api.services.audit.customer_hash(ids[0])
    assert event["details"]["door"] == "console"
