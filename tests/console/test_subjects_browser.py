"""Subject requests in a real browser: the clocks an officer works to, one request's timeline.

Debian's Chromium, driven by Playwright (conftest.py), on a served guard (SQLite and
PostgreSQL). A customer and two requests are made through the real API; the officer signs in,
follows "Subject requests", sees the overdue request in red, filters, opens a request and
reads its timeline; no page holds the customer's data or any script.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from playwright.sync_api import Locator

    from tests.console.conftest import OpenConsole, OpenPage

CUSTOMER: dict[str, Any] = {
    "full_name": "Ottoline Featherstonehaugh-Mbeki",
    "email": "ottoline.fmbeki@example.org",
    "phone": "+44 20 7946 0555",
    "date_of_birth": "1966-02-14",
}
IDENTITY = "Ottoline answered the security questions on file"
#: ``--bad`` of console.css: what "in red" means on this console.
RED = "rgb(164, 14, 38)"


def follow(page: Page, target: Locator) -> None:
    """Click a link or button that loads a page; return once it has loaded."""
    with page.expect_event("framenavigated"):
        target.click()
    page.wait_for_load_state()


def test_when_an_officer_works_subject_requests_then_clocks_and_timeline_show_no_customer(
    open_console: OpenConsole, open_page: OpenPage
) -> None:
    with open_console() as console:
        created = console.api.post("/v1/records", json=CUSTOMER, headers=console.headers("agent"))
        assert created.status_code == 201, created.text
        record_id = created.json()["id"]
        officer = console.headers("compliance_officer")
        late = console.api.post(
            "/v1/subjects/requests",
            json={
                "kind": "access",
                "record_id": record_id,
                "identity_check": IDENTITY,
                "received_at": (datetime.now(UTC) - timedelta(days=45)).isoformat(),
            },
            headers=officer,
        ).json()
        fresh = console.api.post(
            "/v1/subjects/requests",
            json={"kind": "portability", "email": CUSTOMER["email"], "identity_check": IDENTITY},
            headers=officer,
        ).json()
        packaged = console.api.post(f"/v1/subjects/requests/{fresh['id']}/package", headers=officer)
        assert packaged.status_code == 201, packaged.text

        page = open_page(console)
        page.goto("/console/login")
        page.get_by_label("API key").fill(console.keys["compliance_officer"])
        follow(page, page.get_by_role("button", name="Sign in"))
        follow(
            page,
            page.get_by_role("navigation").get_by_role("link", name="Subject requests"),
        )
        expect(page.get_by_role("heading", name="Subject requests", level=1)).to_be_visible()
        table = page.get_by_role("table", name="Subject requests")
        rows = table.get_by_role("row")
        expect(rows).to_have_count(3)  # the header and two open requests, soonest due first
        expect(rows.nth(1)).to_contain_text("access")
        expect(rows.nth(2)).to_contain_text("portability")
        overdue = rows.nth(1).locator("strong.overdue")
        expect(overdue).to_have_text(re.compile(r"^overdue by \d+ d \d+ h$"))
        expect(overdue).to_have_css("color", RED)
        expect(rows.nth(2)).to_contain_text(re.compile(r"\d+ d \d+ h left"))
        expect(rows.nth(2).locator(".overdue")).to_have_count(0)

        page.get_by_label("Kind").select_option("portability")
        follow(page, page.get_by_role("button", name="Filter"))
        expect(table.get_by_role("row")).to_have_count(2)
        follow(page, table.get_by_role("link", name=f"Request {fresh['id'][:8]}"))
        expect(
            page.get_by_role("heading", name=f"Portability request {fresh['id'][:8]}", level=1)
        ).to_be_visible()
        timeline = page.get_by_role("region", name="Timeline")
        expect(timeline.get_by_role("listitem")).to_have_count(2)
        expect(timeline.get_by_role("listitem").nth(0)).to_contain_text("opened")
        expect(timeline.get_by_role("listitem").nth(1)).to_contain_text("package made")
        expect(page.locator("dl.facts")).to_contain_text("bytes, expires")

        html = page.content() + "".join(
            page.request.get(path).text()
            for path in ("/console/subjects", f"/console/subjects/{late['id']}")
        )
        folded = html.casefold()
        for value in (*CUSTOMER.values(), record_id, IDENTITY, packaged.json()["passphrase"]):
            assert value.casefold() not in folded, value
        expect(page.locator("script")).to_have_count(0)
        follow(page, page.get_by_role("button", name="Sign out"))
        page.goto(f"/console/subjects/{fresh['id']}")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
