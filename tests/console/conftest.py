"""A live guard on a loopback port and Debian's Chromium driving its console (Playwright).

Each test gets its own server on a fresh database (SQLite and PostgreSQL, ``db_settings``),
sharing the session's analysis pool, with an API key per role (tenant acme) and a small history
made through the real API: customer records holding known PII, a redaction, ten requests an
agent may not make and the incident the scanner opens for them. One headless Chromium serves the
browser tests (launched by its path: ``make test`` installs Debian's package, nothing downloads a
browser); every test gets its own browser context, so cookies never leak between tests.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from guard.api.app import create_app
from guard.api.services import Services, build_services
from guard.incidents.scanner import IncidentScanner
from tests.fixtures.server import serving

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    from playwright.sync_api import Browser, BrowserContext, Page

    from guard.config import Settings
    from guard.detection.executor import AnalysisExecutor

    #: Opens a served guard with settings changed (``seeded=True``: with :func:`seed`'s history).
    OpenConsole = Callable[..., AbstractContextManager["Console"]]
    #: A fresh browser context on a console's server, and its first page.
    OpenPage = Callable[["Console"], Page]

CHROMIUM = Path("/usr/bin/chromium")
#: The screenshots' size (docs/console/*.png), and every test's window.
VIEWPORT = {"width": 1280, "height": 800}
#: How long an expectation waits: pages are local and small (generous for a loaded machine).
TIMEOUT_MS = 10_000
ROLES = ("agent", "supervisor", "compliance_officer", "analyst", "admin")
#: How many requests the agent makes that it may not: the denials rule opens an incident at ten.
DENIALS = 10

#: Customers whose data must never appear on a console page (they reach guard through the API).
CUSTOMERS: tuple[dict[str, Any], ...] = (
    {
        "full_name": "Marguerite Oyelaran-Fitzwilliam",
        "email": "marguerite.oyelaran@example.org",
        "phone": "+44 20 7946 0958",
        "postal_address": "17 Quillfeather Lane, Dunmarrow DM4 7QX",
        "date_of_birth": "1971-03-29",
        "account": {"account_id": "AC-884172", "plan": "pro"},
        "notes": "Marguerite called from +44 20 7946 0958 about her refund.",
    },
    {
        "full_name": "Thaddeus Wrenford-Achebe",
        "email": "t.wrenford@example.net",
        "phone": "+1 415 555 0137",
        "postal_address": "4 Larkspur Court, Emberfield ZZ9 1AB",
        "date_of_birth": "1988-11-02",
        "account": {"account_id": "AC-551930", "plan": "basic"},
    },
)
#: The raw values a sweep looks for (each distinctive enough to never occur by chance).
PII_VALUES: tuple[str, ...] = tuple(
    value
    for customer in CUSTOMERS
    for value in (
        customer["full_name"],
        customer["email"],
        customer["phone"],
        customer["postal_address"],
        customer["date_of_birth"],
        customer["account"]["account_id"],
    )
)


@dataclass
class Console:
    """A served guard: its base URL, services, an API key per role and what was seeded."""

    url: str
    services: Services
    settings: Settings
    keys: dict[str, str]
    #: Each role's principal id (what the audit trail's Principal column holds).
    principals: dict[str, str]
    #: An HTTP client on the server's API (no cookies: every call names its key).
    api: httpx.Client
    #: Ids of the customer records made by :func:`seed` (the customers of CUSTOMERS).
    record_ids: list[str] = field(default_factory=list)
    #: The id of the incident the scanner opened for the agent's denials.
    incident_id: str | None = None

    def headers(self, role: str) -> dict[str, str]:
        """The API's Authorization header for ``role``'s key."""
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def incident(self) -> str:
        """The seeded incident's id (the console's /console/incidents/{id})."""
        assert self.incident_id is not None, "this console was opened without seeded=True"
        return self.incident_id


def seed(console: Console) -> None:
    """History made through the real API, as agents at work and one probing agent leave it.

    The agent stores each customer, reads the record back, looks one up by email and redacts a
    message quoting them; then it asks for the audit trail ten times (refused each time) and the
    scanner, as ``guard serve``'s worker would, opens an incident for the denials.
    """
    api, agent = console.api, console.headers("agent")
    for customer in CUSTOMERS:
        created = api.post("/v1/records", json=customer, headers=agent)
        assert created.status_code == 201, created.text
        record_id = created.json()["id"]
        console.record_ids.append(record_id)
        read = api.get(f"/v1/records/{record_id}", headers=agent)
        assert read.status_code == 200, read.text
    found = api.post("/v1/records/search", json={"email": CUSTOMERS[0]["email"]}, headers=agent)
    assert found.status_code == 200, found.text
    first = CUSTOMERS[0]
    text = f"Dear {first['full_name']}, we will call you on {first['phone']} or {first['email']}."
    redacted = api.post("/v1/redact", json={"text": text}, headers=agent)
    assert redacted.status_code == 200, redacted.text
    for _ in range(DENIALS):
        refused = api.get("/v1/audit/events", headers=agent)
        assert refused.status_code == 403, refused.text
    services = console.services
    IncidentScanner(
        settings=console.settings,
        session_factory=services.session_factory,
        trail=services.audit,
    ).scan()
    listed = api.get("/v1/incidents", headers=console.headers("compliance_officer"))
    assert listed.status_code == 200, listed.text
    (incident,) = listed.json()["incidents"]
    console.incident_id = incident["id"]


@pytest.fixture
def open_console(
    db_settings: Settings, analysis: AnalysisExecutor, tmp_path: Path
) -> Iterator[OpenConsole]:
    """Open a served guard with settings changed; ``seeded=True`` adds :func:`seed`'s history."""
    opened_services: list[Services] = []

    @contextmanager
    def opened(*, seeded: bool = False, **updates: object) -> Iterator[Console]:
        settings = db_settings.model_copy(
            update={
                "audit_jsonl_path": tmp_path / "audit.jsonl",
                "keys_dir": tmp_path / "keys",
                **updates,
            }
        )
        services = build_services(settings, analysis=analysis)
        opened_services.append(services)
        keys, principals = {}, {}
        for role in ROLES:
            principal, keys[role] = services.api_keys.create(
                name=f"test-{role}", role=role, tenant="acme"
            )
            principals[role] = principal.id
        with (
            serving(create_app(services=services), lifespan="on") as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            console = Console(
                url=url,
                services=services,
                settings=settings,
                keys=keys,
                principals=principals,
                api=client,
            )
            if seeded:
                seed(console)
            yield console

    yield opened
    for services in opened_services:
        services.engine.dispose()


@pytest.fixture
def console(open_console: OpenConsole) -> Iterator[Console]:
    """A served guard with :func:`seed`'s history (a fresh database per test)."""
    with open_console(seeded=True) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium per test module, driven by Playwright through its path.

    Module scope: Playwright's own event loop and the browser process end with the browser tests
    instead of running alongside the rest of the suite.
    """
    if not CHROMIUM.is_file():  # a failure, not a skip: `make test` installs it
        pytest.fail(f"{CHROMIUM} not found: run `make test` or apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open a new browser context (no cookies) on a console's server; closed after the test."""
    contexts: list[BrowserContext] = []

    def opened(console: Console) -> Page:
        context = browser.new_context(
            base_url=console.url,
            viewport=VIEWPORT,  # type: ignore[arg-type] # a ViewportSize TypedDict
            accept_downloads=True,
            # far from UTC: the console shows times in the officer's zone, not the browser's
            timezone_id="Pacific/Auckland",
            locale="en-GB",
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield opened
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: OpenPage, console: Console) -> Page:
    """A page with no session yet on ``console``'s server."""
    return open_page(console)
