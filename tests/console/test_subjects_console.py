"""The console's subject requests over HTTP: clocks, a request's timeline, no customer data.

Requests are opened, extended and packaged through the real API; the pages are read as an
officer signed in through the form, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.fixtures.api import Api, api, open_api

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

__all__ = ["api", "open_api"]

OFFICER = "compliance_officer"
CUSTOMER: dict[str, Any] = {
    "full_name": "Clementine Ashworth-Obuya",
    "email": "clementine.ashworth@example.org",
    "phone": "+44 20 7946 0777",
    "postal_address": "2 Tallowmere Yard, Brackenford BF3 8RW",
    "date_of_birth": "1984-06-09",
}
IDENTITY = "Clementine confirmed her date of birth and the postcode on file"


def sign_in(client: TestClient, key: str) -> None:
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/console/login",
        data={"api_key": key, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def requests_made(api: Api) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A customer; an access request received 40 days ago (overdue) and a fresh erasure one."""
    created = api.client.post("/v1/records", json=CUSTOMER, headers=api.headers("agent"))
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    officer = api.headers(OFFICER)
    late = api.client.post(
        "/v1/subjects/requests",
        json={
            "kind": "access",
            "email": CUSTOMER["email"],
            "identity_check": IDENTITY,
            "received_at": (datetime.now(UTC) - timedelta(days=40)).isoformat(),
        },
        headers=officer,
    )
    fresh = api.client.post(
        "/v1/subjects/requests",
        json={"kind": "erasure", "record_id": record_id, "identity_check": IDENTITY},
        headers=officer,
    )
    assert late.status_code == fresh.status_code == 201, (late.text, fresh.text)
    return record_id, late.json(), fresh.json()


def assert_no_customer_data(html: str, record_id: str) -> None:
    folded = html.casefold()
    for value in (*CUSTOMER.values(), record_id, "Clementine"):
        assert value.casefold() not in folded, value


def test_when_an_officer_lists_requests_then_each_has_its_clock_and_overdue_is_red(
    api: Api,
) -> None:
    record_id, late, fresh = requests_made(api)
    sign_in(api.client, api.keys[OFFICER])
    page = api.client.get("/console/subjects")
    assert page.status_code == 200
    html = page.text
    assert html.index(late["id"][:8]) < html.index(fresh["id"][:8])  # soonest due first
    overdue = re.search(r'<strong class="overdue">overdue by (\d+) d \d+ h</strong>', html)
    assert overdue is not None
    assert 8 <= int(overdue.group(1)) <= 11
    assert re.search(r"<td>2[7-9] d \d+ h left</td>|<td>3[01] d \d+ h left</td>", html)
    assert f'href="/console/subjects/{late["id"]}"' in html
    assert "<script" not in html.casefold()
    assert_no_customer_data(html, record_id)
    erasures = api.client.get("/console/subjects", params={"kind": "erasure"}).text
    assert fresh["id"][:8] in erasures
    assert late["id"][:8] not in erasures
    closed = api.client.get("/console/subjects", params={"status": "fulfilled"}).text
    assert "No requests." in closed
    views = api.services.audit.search_events(action="console.subjects")
    assert [e["details"]["results"] for e in views] == [2, 1, 0]


def test_when_an_officer_opens_a_request_then_its_timeline_comes_from_the_trail(
    api: Api,
) -> None:
    record_id, late, _fresh = requests_made(api)
    officer = api.headers(OFFICER)
    url = f"/v1/subjects/requests/{late['id']}"
    made = api.client.post(f"{url}/package", headers=officer)
    assert made.status_code == 201, made.text
    refused = api.client.post(f"{url}/extend", json={"reason": "late already"}, headers=officer)
    assert refused.status_code == 409  # the first month is over: no extension
    sign_in(api.client, api.keys[OFFICER])
    page = api.client.get(f"/console/subjects/{late['id']}")
    assert page.status_code == 200
    html = page.text
    timeline = html[html.index('<section aria-labelledby="timeline">') :]
    entries = re.findall(r"<li>.*?</li>", timeline, flags=re.DOTALL)
    words = [re.sub(r"<[^>]+>", "", e).split(" · ")[1].split(" by ")[0] for e in entries]
    assert words == ["opened", "package made", "deadline extended (refused)"]
    assert '<strong class="overdue">overdue by' in html
    assert made.json()["passphrase"] not in html
    assert IDENTITY not in html
    assert_no_customer_data(html, record_id)
    (read,) = [
        e
        for e in api.services.audit.search_events(action="subjects.read")
        if e["details"].get("door") == "console"
    ]
    assert read["customer"] == api.services.audit.customer_hash(record_id)


def test_when_the_request_is_unknown_or_the_role_not_allowed_then_nothing_is_shown(
    api: Api,
) -> None:
    _record_id, late, _fresh = requests_made(api)
    assert api.client.get("/console/subjects", follow_redirects=False).status_code == 303
    _, key = api.services.api_keys.create(name="globex-officer", role=OFFICER, tenant="globex")
    sign_in(api.client, key)
    for path in (f"/console/subjects/{late['id']}", f"/console/subjects/{uuid.uuid4()}"):
        missing = api.client.get(path)
        assert missing.status_code == 404
        assert "There is no such request in your tenant." in missing.text
    assert late["id"][:8] not in api.client.get("/console/subjects").text
    for role in ("agent", "analyst", "supervisor"):
        sign_in(api.client, api.keys[role])
        for path in ("/console/subjects", f"/console/subjects/{late['id']}"):
            refused = api.client.get(path)
            assert refused.status_code == 403, (role, path)
            assert late["id"] not in refused.text
    denied = [
        e
        for e in api.services.audit.search_events(action="console.denied")
        if e["decision"] == "deny"
    ]
    assert len(denied) == 6
