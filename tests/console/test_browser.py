"""The console in a real browser: what a compliance officer does, and what others cannot do.

Debian's Chromium, driven by Playwright (conftest.py), signs in, searches and pages the audit
trail, opens an event, exports CSV, verifies the chain, downloads an evidence bundle and checks
it offline, works an incident to closed, and signs out; elements are found by their role and
label, as a person with a screen reader finds them. The security tests come without a session,
with an agent's, with a planted cookie, after the idle timeout, with forms posted without their
CSRF token or from another site; every page is checked for its headers, for script and for raw
customer data. The README's screenshots (docs/console/*.png) are taken here as well.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from playwright.sync_api import Page, expect

from guard.audit.cli import audit as audit_cli
from guard.config import PROJECT_ROOT
from tests.console.conftest import CUSTOMERS, DENIALS, PII_VALUES, Console

if TYPE_CHECKING:
    from playwright.sync_api import Locator

    from tests.console.conftest import OpenConsole, OpenPage

SCREENSHOTS = PROJECT_ROOT / "docs" / "console"
COOKIE = "guard_console"
#: The console's page size: one more matching event than this makes a "Next page".
PAGE_SIZE = 50
#: The audit search's fields that are a choice (the others are typed).
SELECTS = frozenset({"Decision", "Outcome"})
EVENT_LINK = re.compile(r"^Event \d+$")
EMAIL = CUSTOMERS[0]["email"]
PHONE = CUSTOMERS[0]["phone"]
#: A note an officer writes about the customer: guard redacts it before it is stored.
NOTE = f"Called the customer back at {EMAIL} and on {PHONE}; the agent's lead is informed."
NOTE_START = "Called the customer back at"


# ---------------------------------------------------------------------- what an officer does


def follow(page: Page, target: Locator) -> None:
    """Click a link or button that loads a page; return once that new page has loaded.

    A click does not wait for the navigation it starts, and the old page often has the same
    heading and table: reading right after the click could read the old page.
    """
    with page.expect_event("framenavigated"):
        target.click()
    page.wait_for_load_state()


def sign_in(page: Page, key: str) -> None:
    """Open the sign-in page, type the key into "API key", press "Sign in"."""
    page.goto("/console/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill(key)
    follow(page, page.get_by_role("button", name="Sign in"))


def go_to(page: Page, link: str) -> None:
    """Follow a link of the console's navigation and wait for that page's heading."""
    follow(page, page.get_by_role("navigation").get_by_role("link", name=link, exact=True))
    expect(page.get_by_role("heading", name=link, level=1)).to_be_visible()


def search(page: Page, **fields: str) -> None:
    """Fill the audit search's fields by their labels (selects chosen), press "Search"."""
    for label, value in fields.items():
        field = page.get_by_label(label, exact=True)
        if label in SELECTS:
            field.select_option(value)
        else:
            field.fill(value)
    follow(page, page.get_by_role("button", name="Search"))
    expect(page.get_by_role("heading", name="Audit search")).to_be_visible()


def event_links(page: Page) -> Locator:
    """The "Event N" links of the results table."""
    return page.get_by_role("table", name="Events").get_by_role("link", name=EVENT_LINK)


def shown_seqs(page: Page) -> list[int]:
    """The sequence numbers of the events the results table shows, in its order."""
    return [int(name.split()[1]) for name in event_links(page).all_inner_texts()]


def open_incident(page: Page, reference: str = "INC-0001") -> None:
    """From the Incidents page, open an incident by its reference."""
    go_to(page, "Incidents")
    follow(page, page.get_by_role("table", name="Incidents").get_by_role("link", name=reference))
    expect(page.get_by_role("heading", name=re.compile(f"^{reference}: "), level=1)).to_be_visible()


def all_event_seqs(page: Page) -> list[int]:
    """Every event the officer's search lists, following "Next page" to the end."""
    page.goto("/console/audit")
    seqs = shown_seqs(page)
    next_page = page.get_by_role("link", name="Next page")
    while next_page.count():
        follow(page, next_page)
        seqs += shown_seqs(page)
    return seqs


def officer_pages(console: Console) -> list[str]:
    """One URL of each kind of page an officer reads (an event: the first)."""
    incident = console.incident()
    return [
        "/console",
        "/console/audit",
        "/console/audit?role=agent&decision=deny",
        "/console/audit/events/1",
        "/console/verify",
        "/console/incidents",
        "/console/incidents?status=open",
        f"/console/incidents/{incident}",
        f"/console/incidents/{incident}/notices/authority",
        "/console/keys",
    ]


@pytest.fixture
def officer(page: Page, console: Console) -> Page:
    """The page, signed in as the compliance officer (on the Overview)."""
    sign_in(page, console.keys["compliance_officer"])
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    return page


def test_when_an_officer_mistypes_the_key_then_sign_in_fails_and_the_right_key_opens_the_overview(
    page: Page, console: Console
) -> None:
    wrong = "gk_AAAAAAAA_" + "w" * 43
    page.goto("/console/login")
    page.get_by_label("API key").fill(wrong)
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        follow(page, page.get_by_role("button", name="Sign in"))
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Sign-in failed")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert COOKIE not in {cookie["name"] for cookie in page.context.cookies()}
    assert "w" * 43 not in page.content()  # the key typed is not echoed

    page.get_by_label("API key").fill(console.keys["compliance_officer"])
    follow(page, page.get_by_role("button", name="Sign in"))
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page).to_have_url(f"{console.url}/console")
    for section in ("Audit chain", "Open incidents", "Last 24 hours"):
        expect(page.get_by_role("heading", name=section, level=2)).to_be_visible()
    navigation = page.get_by_role("navigation")
    for link in ("Overview", "Audit search", "Verify", "Incidents", "Keys"):
        expect(navigation.get_by_role("link", name=link, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("region", name="Open incidents")).to_contain_text("INC-0001")
    # the chart, and the same figures as a table for whoever cannot see it
    expect(page.get_by_role("img", name=re.compile("Denials"))).to_be_visible()
    page.get_by_text("The figures").click()
    per_hour = page.get_by_role("table", name="Per hour")
    expect(per_hour).to_be_visible()
    denials = [
        int(row.get_by_role("cell").nth(1).inner_text())
        for row in per_hour.get_by_role("row").all()[1:]
    ]
    assert sum(denials) == DENIALS
    # times in the officer's zone (UTC by default), whatever the browser's zone (Auckland)
    expect(page.get_by_role("contentinfo")).to_contain_text("Times in UTC")
    shown = page.locator("time").first
    title = shown.get_attribute("title")
    assert title is not None
    assert title.endswith(" UTC")
    assert title.startswith(shown.inner_text())


def test_when_an_officer_searches_the_trail_then_each_filter_narrows_it_and_an_event_opens(
    officer: Page, console: Console
) -> None:
    go_to(officer, "Audit search")
    search(officer, Role="agent", Decision="deny")
    expect(event_links(officer)).to_have_count(DENIALS)
    assert "decision=deny" in officer.url  # a GET form: the search is a link to keep
    results = officer.get_by_role("table", name="Events")
    expect(results).not_to_contain_text("allow")

    search(officer, Role="", Decision="", Principal=console.principals["agent"], Outcome="success")
    agent_events = shown_seqs(officer)
    assert agent_events
    search(officer, Principal=console.principals["compliance_officer"], Outcome="")
    assert not set(shown_seqs(officer)) & set(agent_events)

    # a customer by the id guard gave their record: matched through its keyed hash
    search(officer, Principal="", **{"Customer id": console.record_ids[0]})
    expect(event_links(officer)).not_to_have_count(0)
    expect(results).to_contain_text("records.create")
    expect(results).to_contain_text("records.read")
    expect(results).not_to_contain_text(console.record_ids[0])

    search(officer, **{"Customer id": "", "From": "2001-01-01T00:00", "Until": "2001-01-02T00:00"})
    expect(event_links(officer)).to_have_count(0)
    expect(results).to_contain_text("No events match.")
    search(officer, Until="")
    expect(event_links(officer)).not_to_have_count(0)

    search(officer, From="", Action="records.create")
    expect(event_links(officer)).to_have_count(len(CUSTOMERS))
    link = event_links(officer).first
    name = link.inner_text()
    seq = int(name.split()[1])
    follow(officer, link)
    expect(officer.get_by_role("heading", name=name, exact=True, level=1)).to_be_visible()
    expect(officer).to_have_url(f"{console.url}/console/audit/events/{seq}")
    (stored,) = [e for e in console.services.audit.search_events(limit=1000) if e["seq"] == seq]
    main = officer.get_by_role("main")
    facts = ("records.create", console.principals["agent"], stored["hash"], stored["prev_hash"])
    for fact in facts:
        expect(main).to_contain_text(fact)
    expect(main).to_contain_text(stored["customer"])  # the keyed hash, not the record id
    expect(main).not_to_contain_text(console.record_ids[0])
    follow(officer, officer.get_by_role("link", name="Back to the search"))
    expect(officer.get_by_role("heading", name="Audit search")).to_be_visible()


def test_when_more_events_match_than_a_page_then_next_page_shows_the_rest_and_csv_has_all(
    officer: Page, console: Console
) -> None:
    extra = PAGE_SIZE + 5 - DENIALS
    for _ in range(extra):  # the agent keeps asking for the audit trail
        refused = console.api.get("/v1/audit/events", headers=console.headers("agent"))
        assert refused.status_code == 403
    go_to(officer, "Audit search")
    search(officer, Role="agent", Decision="deny")
    first = shown_seqs(officer)
    assert len(first) == PAGE_SIZE
    assert first == sorted(first)
    follow(officer, officer.get_by_role("link", name="Next page"))
    second = shown_seqs(officer)
    assert len(second) == DENIALS + extra - PAGE_SIZE
    assert min(second) > max(first)
    expect(officer.get_by_role("link", name="Next page")).to_have_count(0)
    expect(officer.get_by_label("Decision")).to_have_value("deny")  # the filters stay
    expect(officer.get_by_label("Role", exact=True)).to_have_value("agent")

    with officer.expect_download() as downloading:
        officer.get_by_role("link", name="Export CSV").click()
    download = downloading.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [int(row["seq"]) for row in rows] == first + second  # the filter, every page
    assert {(row["role"], row["decision"]) for row in rows} == {("agent", "deny")}


def test_when_an_officer_verifies_and_downloads_a_bundle_then_it_checks_offline(
    officer: Page, console: Console, tmp_path: Path
) -> None:
    go_to(officer, "Verify")
    follow(officer, officer.get_by_role("button", name="Verify the chain"))
    expect(officer.get_by_role("status")).to_contain_text("intact")
    last = len(console.services.audit.search_events(limit=1000))
    officer.get_by_label("From seq").fill("1")
    officer.get_by_label("To seq").fill(str(last))
    with officer.expect_download() as downloading:
        officer.get_by_role("button", name="Download evidence bundle").click()
    bundle = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(bundle)
    assert bundle.suffix == ".zip"

    # offline: the bundle and its public key only (the check itself is then audited)
    checked = CliRunner().invoke(audit_cli, ["verify-bundle", str(bundle)], obj=console.settings)
    assert checked.exit_code == 0, checked.output
    assert f"evidence bundle intact: events 1..{last}" in checked.output

    # one event's decision changed inside the ZIP: the check fails
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "events.jsonl":
                edited = data.replace(b'"decision":"deny"', b'"decision":"allow"', 1)
                assert edited != data
                data = edited
            target.writestr(item, data)
    refused = CliRunner().invoke(audit_cli, ["verify-bundle", str(tampered)], obj=console.settings)
    assert refused.exit_code != 0
    assert "evidence bundle broken" in refused.output

    go_to(officer, "Overview")  # which remembers the verification
    expect(officer.get_by_role("region", name="Audit chain")).to_contain_text("intact")


def test_when_an_officer_works_an_incident_to_closed_and_signs_out_then_the_pages_are_gone(
    officer: Page, console: Console
) -> None:
    open_incident(officer)
    for section in ("Deadlines", "Evidence", "Runbook", "Timeline", "Notices"):
        expect(officer.get_by_role("heading", name=section, exact=True, level=2)).to_be_visible()
    timeline = officer.get_by_role("region", name="Timeline")

    follow(officer, officer.get_by_role("button", name="Mark read-evidence done"))
    expect(officer.get_by_role("button", name="Mark read-evidence not done")).to_be_visible()
    expect(officer.get_by_role("button", name="Mark trace-principal done")).to_be_visible()

    officer.get_by_label("Note", exact=True).fill(NOTE)
    follow(officer, officer.get_by_role("button", name="Add note"))
    expect(timeline).to_contain_text(NOTE_START)
    expect(timeline).not_to_contain_text(EMAIL)  # redacted before it was stored
    expect(timeline).not_to_contain_text(PHONE)

    for status in ("triaged", "contained", "resolved", "closed"):
        officer.get_by_label("New status").select_option(status)
        follow(officer, officer.get_by_role("button", name="Move"))
        expect(timeline).to_contain_text(f"to: {status}")
    expect(officer.get_by_role("button", name="Move")).to_have_count(0)  # closed is the end

    follow(officer, officer.get_by_role("link", name="Authority notice"))
    expect(officer.get_by_role("heading", name="Authority notice: INC-0001")).to_be_visible()

    go_to(officer, "Incidents")
    officer.get_by_label("Status").select_option("closed")
    follow(officer, officer.get_by_role("button", name="Filter"))
    incidents = officer.get_by_role("table", name="Incidents")
    expect(incidents.get_by_role("link", name="INC-0001")).to_be_visible()
    officer.get_by_label("Status").select_option("open")
    follow(officer, officer.get_by_role("button", name="Filter"))
    expect(incidents.get_by_role("link", name="INC-0001")).to_have_count(0)
    expect(incidents).to_contain_text("No incidents.")

    open_incident(officer)
    follow(officer, officer.get_by_role("button", name="Sign out"))
    expect(officer.get_by_role("heading", name="Sign in")).to_be_visible()
    assert COOKIE not in {cookie["name"] for cookie in officer.context.cookies()}
    officer.go_back()  # the incident's page is not cached: it is asked for again, and refused
    expect(officer.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(officer).to_have_url(f"{console.url}/console/login")
    officer.goto(f"/console/incidents/{console.incident()}")
    expect(officer.get_by_role("heading", name="Sign in")).to_be_visible()


# ---------------------------------------------------------------------- what others cannot do


def test_when_someone_may_not_see_a_page_then_it_sends_them_to_sign_in_or_is_not_allowed(
    page: Page, console: Console
) -> None:
    incident = console.incident()
    pages = [*officer_pages(console), "/console/audit/export?format=csv"]
    opened = ("/console", "/console/audit", f"/console/incidents/{incident}")
    for path in opened:  # no session: the browser lands on the sign-in page
        page.goto(path)
        expect(page).to_have_url(f"{console.url}/console/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    for path in pages:  # ... from every page (asked with the browser's cookies, none)
        answer = page.request.get(path, max_redirects=0)
        assert answer.status == 303, path
        assert answer.headers["location"] == "/console/login", path
    for path in (
        "/console/verify",
        "/console/verify/bundle",
        f"/console/incidents/{incident}/transition",
        f"/console/incidents/{incident}/notes",
        f"/console/incidents/{incident}/steps/read-evidence",
    ):  # ... and every form
        answer = page.request.post(path, form={"csrf_token": "x"}, max_redirects=0)
        assert answer.status == 303, path
        assert answer.headers["location"] == "/console/login", path

    sign_in(page, console.keys["agent"])  # an agent's session: not allowed anywhere
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    for path in opened:
        shown = page.goto(path)
        assert shown is not None
        assert shown.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    for path in pages:
        answer = page.request.get(path, max_redirects=0)
        assert answer.status == 403, path
        assert "<h1>Not allowed</h1>" in answer.text(), path
        assert "INC-0001" not in answer.text(), path
    follow(page, page.get_by_role("button", name="Sign out"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_when_a_form_comes_without_its_token_or_from_another_site_then_nothing_changes(
    officer: Page, console: Console
) -> None:
    incident = console.incident()
    open_incident(officer)
    token = officer.locator("input[name='csrf_token']").first.get_attribute("value")
    assert token
    forms = {
        f"/console/incidents/{incident}/notes": {"note": "a forged note"},
        f"/console/incidents/{incident}/transition": {"status": "triaged"},
        f"/console/incidents/{incident}/steps/read-evidence": {"done": "true"},
        "/console/verify": {"first_seq": "1"},
        "/console/verify/bundle": {"first_seq": "1", "last_seq": "5"},
        "/console/logout": {"bye": "1"},
    }
    for path, form in forms.items():
        for wrong in ({}, {"csrf_token": "not-the-token"}, {"csrf_token": ""}):
            answer = officer.request.post(path, form={**form, **wrong}, max_redirects=0)
            assert answer.status == 403, (path, wrong)

    # a page of another site posting the form, with the officer's own token even:
    # SameSite=Strict keeps the session cookie home, so the post arrives signed out
    attacker = officer.context.new_page()
    prize = (
        f'<form method="post" action="{console.url}/console/incidents/{incident}/notes">'
        '<input type="hidden" name="note" value="a cross-site note">'
        f'<input type="hidden" name="csrf_token" value="{token}">'
        "<button>Claim your prize</button></form>"
    )
    attacker.route(
        "http://prizes.example/",
        lambda route: route.fulfill(status=200, content_type="text/html", body=prize),
    )
    attacker.goto("http://prizes.example/")
    follow(attacker, attacker.get_by_role("button", name="Claim your prize"))
    expect(attacker.get_by_role("heading", name="Sign in")).to_be_visible()

    officer.reload()  # still signed in, and nothing changed
    timeline = officer.get_by_role("region", name="Timeline")
    expect(timeline).not_to_contain_text("a forged note")
    expect(timeline).not_to_contain_text("a cross-site note")
    expect(timeline).not_to_contain_text("to: triaged")
    expect(officer.get_by_role("button", name="Mark read-evidence done")).to_be_visible()
    # the same post with the page's token, from the console: accepted (the token was the point)
    answer = officer.request.post(
        f"/console/incidents/{incident}/notes",
        form={"note": "a genuine note", "csrf_token": token},
        max_redirects=0,
    )
    assert answer.status == 303
    officer.reload()
    expect(timeline).to_contain_text("a genuine note")


def test_when_a_session_cookie_is_planted_then_sign_in_replaces_it(
    open_console: OpenConsole, open_page: OpenPage
) -> None:
    planted = "planted-by-an-attacker-" + "p" * 20
    with open_console() as console:
        page = open_page(console)
        page.context.add_cookies(
            [{"name": COOKIE, "value": planted, "domain": "127.0.0.1", "path": "/console"}]
        )
        page.goto("/console")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # it is no session
        sign_in(page, console.keys["compliance_officer"])
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        (cookie,) = [c for c in page.context.cookies() if c["name"] == COOKIE]
        assert cookie["value"] != planted
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/console"
        # signed out and in again: a new session again, and the first one's cookie is worthless
        follow(page, page.get_by_role("button", name="Sign out"))
        sign_in(page, console.keys["compliance_officer"])
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        (again,) = [c for c in page.context.cookies() if c["name"] == COOKIE]
        assert again["value"] not in {planted, cookie["value"]}
        replay = open_page(console)
        replay.context.add_cookies(
            [{"name": COOKIE, "value": cookie["value"], "domain": "127.0.0.1", "path": "/console"}]
        )
        replay.goto("/console")
        expect(replay.get_by_role("heading", name="Sign in")).to_be_visible()


def test_when_an_officer_is_idle_past_the_timeout_then_the_session_ends(
    open_console: OpenConsole, open_page: OpenPage
) -> None:
    idle_seconds = 1.0
    with open_console(console_idle_minutes=idle_seconds / 60) as console:
        page = open_page(console)
        sign_in(page, console.keys["compliance_officer"])
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        time.sleep(idle_seconds + 0.2)
        follow(page, page.get_by_role("navigation").get_by_role("link", name="Audit search"))
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.go_back()  # and the page before is gone too
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_when_an_officer_reads_every_page_then_none_has_script_or_customer_data(
    officer: Page, console: Console
) -> None:
    # a note naming the customer (redacted when stored), and a verification on the overview
    open_incident(officer)
    officer.get_by_label("Note", exact=True).fill(NOTE)
    follow(officer, officer.get_by_role("button", name="Add note"))
    expect(officer.get_by_role("region", name="Timeline")).to_contain_text(NOTE_START)
    go_to(officer, "Verify")
    follow(officer, officer.get_by_role("button", name="Verify the chain"))
    expect(officer.get_by_role("status")).to_contain_text("intact")

    violations: list[str] = []
    officer.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    pages = [*officer_pages(console), "/console/login"]
    pages += [f"/console/audit?customer={record_id}" for record_id in console.record_ids]
    for path in pages:  # in the browser: the policy, the page's own markup and what it shows
        answer = officer.goto(path)
        assert answer is not None
        assert answer.status == 200, path
        assert_console_headers(answer.headers, path)
        assert_no_script(officer, path)
        assert_no_pii(officer.content(), path)
        text = officer.get_by_role("main").inner_text()
        assert [record for record in console.record_ids if record in text] == [], path
    assert violations == []

    events = all_event_seqs(officer)  # every event the trail holds, each page as served
    assert len(events) > DENIALS + 2 * len(CUSTOMERS)
    for seq in events:
        path = f"/console/audit/events/{seq}"
        served = officer.request.get(path)
        assert served.status == 200, path
        assert_console_headers(served.headers, path)
        html = served.text()
        assert "<script" not in html.casefold(), path
        assert_no_pii(html, path)
        assert [record for record in console.record_ids if record in html] == [], path


def assert_console_headers(headers: dict[str, str], path: str) -> None:
    """The console's security headers are there, and the policy allows no script."""
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy, path
    assert "script-src" not in policy, path
    assert "unsafe-inline" not in policy, path
    assert headers["x-content-type-options"] == "nosniff", path
    assert headers["referrer-policy"] == "no-referrer", path
    assert headers["x-frame-options"] == "DENY", path
    assert headers["cache-control"] == "no-store", path


def assert_no_script(page: Page, path: str) -> None:
    """No script element, no event handler attribute, no javascript: URL; the own stylesheet."""
    expect(page.locator("script")).to_have_count(0)
    handlers = page.evaluate(
        """() => [...document.querySelectorAll('*')].flatMap(element =>
            [...element.attributes]
                .filter(a => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value))
                .map(a => element.tagName + ' ' + a.name))"""
    )
    assert handlers == [], path
    assert page.evaluate("() => document.styleSheets.length") >= 1, path


def assert_no_pii(html: str, path: str) -> None:
    """None of the customers' values is anywhere in the page (markup and attributes too)."""
    folded = html.casefold()
    assert [value for value in PII_VALUES if value.casefold() in folded] == [], path


# ---------------------------------------------------------------------- the README's pictures


@pytest.fixture
def sqlite_only(request: pytest.FixtureRequest) -> None:
    """Skip the PostgreSQL run before its server starts (``usefixtures`` sets it up first)."""
    if request.node.callspec.params["db_settings"] != "sqlite":
        pytest.skip("the screenshots are taken once, from the SQLite run")


@pytest.mark.usefixtures("sqlite_only")
def test_screenshots_of_the_main_pages(officer: Page, tmp_path: Path) -> None:
    # Every run takes them; GUARD_UPDATE_SCREENSHOTS=1 writes them over the README's copies
    # (they change with the times and ids shown, so a plain test run leaves the tree clean).
    folder = SCREENSHOTS if os.environ.get("GUARD_UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> None:
        officer.screenshot(path=folder / f"{name}.png", animations="disabled", caret="hide")

    shoot("overview")
    go_to(officer, "Audit search")
    search(officer, Role="agent")
    shoot("audit-search")
    search(officer, Role="", Action="records.create")  # an event about a customer
    follow(officer, event_links(officer).first)
    shoot("event")
    go_to(officer, "Verify")
    follow(officer, officer.get_by_role("button", name="Verify the chain"))
    expect(officer.get_by_role("status")).to_contain_text("intact")
    shoot("verify")
    go_to(officer, "Incidents")
    shoot("incidents")
    open_incident(officer)
    follow(officer, officer.get_by_role("button", name="Mark read-evidence done"))
    officer.get_by_label("New status").select_option("triaged")
    follow(officer, officer.get_by_role("button", name="Move"))
    expect(officer.get_by_role("region", name="Timeline")).to_contain_text("to: triaged")
    shoot("incident")
    assert sorted(path.name for path in folder.glob("*.png")) == sorted(
        f"{name}.png"
        for name in ("overview", "audit-search", "event", "verify", "incidents", "incident")
    )
