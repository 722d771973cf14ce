"""Data subject tests: an app per test on SQLite and PostgreSQL, and customers with a history.

Two customers of tenant acme are made through the real API (an agent creates them, reads them,
a supervisor reveals one with a stated reason): each then has audit events of their own, so a
package can be checked for holding all of its customer's and none of the other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from guard.records.endpoints import build_record_service
from guard.redaction.reasons import reason_redactor
from guard.subjects.service import Actor, SubjectService
from tests.fixtures.api import Api, api, open_api

if TYPE_CHECKING:
    from httpx2 import Response

__all__ = ["Api", "api", "open_api"]

#: Values distinctive enough never to occur by chance in an archive, a log or a response.
ALICE: dict[str, Any] = {
    "full_name": "Philippa Quennell-Abernathy",
    "email": "philippa.quennell@example.org",
    "phone": "+44 20 7946 0321",
    "postal_address": "9 Wrenhollow Mews, Castlebridge CB7 2ZP",
    "date_of_birth": "1979-04-17",
    "account": {"account_id": "AC-730114", "plan": "pro"},
    "notes": "Philippa asked about a refund for order 58812; call back on Thursday.",
    "extra": {"preferred_language": "en-GB", "vip": True},
}
BOB: dict[str, Any] = {
    "full_name": "Barnaby Okonkwo-Lindqvist",
    "email": "barnaby.okonkwo@example.net",
    "phone": "+1 415 555 0172",
    "postal_address": "311 Saltmarsh Row, Fernhaven FH2 9QL",
    "date_of_birth": "1990-12-01",
    "account": {"account_id": "AC-118802", "plan": "basic"},
    "notes": "Barnaby reported a broken hinge; replacement shipped.",
}
#: The raw values of a customer that must never leave guard unencrypted.
CLEAR_KEYS = ("full_name", "email", "phone", "postal_address", "date_of_birth")


def clear_values(customer: dict[str, Any]) -> list[str]:
    """A customer's identifying values (and the account id)."""
    return [customer[key] for key in CLEAR_KEYS] + [customer["account"]["account_id"]]


def create(api: Api, customer: dict[str, Any]) -> str:
    """A record made by an agent through the API; its id."""
    created = api.client.post("/v1/records", json=customer, headers=api.headers("agent"))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def open_request(api: Api, role: str = "compliance_officer", **body: Any) -> Response:
    """``POST /v1/subjects/requests`` with ``body``."""
    return api.client.post("/v1/subjects/requests", json=body, headers=api.headers(role))


def problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    """The problem+json body of ``response``, checked: status, type, the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:guard:problem:{slug}", body
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@dataclass
class Customers:
    """Two customers of acme with a history each: their record ids."""

    alice: str
    bob: str


def history(api: Api, record_id: str, reads: int) -> None:
    """An agent reads the record ``reads`` times; a supervisor reveals it once."""
    for _ in range(reads):
        read = api.client.get(f"/v1/records/{record_id}", headers=api.headers("agent"))
        assert read.status_code == 200, read.text
    revealed = api.client.post(
        f"/v1/records/{record_id}/reveal",
        json={"reason": "refund dispute escalated by the team lead"},
        headers=api.headers("supervisor"),
    )
    assert revealed.status_code == 200, revealed.text


@pytest.fixture
def customers(api: Api) -> Customers:
    """Alice and Bob, each created, read and revealed (Alice more often than Bob)."""
    alice, bob = create(api, ALICE), create(api, BOB)
    history(api, alice, reads=3)
    history(api, bob, reads=2)
    return Customers(alice=alice, bob=bob)


@pytest.fixture
def subjects(api: Api) -> SubjectService:
    """A SubjectService over the app's own services (what the CLI and console build too)."""
    services = api.services
    return SubjectService(
        settings=api.settings,
        session_factory=services.session_factory,
        records=build_record_service(services),
        audit=services.audit,
        redact=reason_redactor(services.analysis, services.redactor),
    )


@pytest.fixture
def officer() -> Actor:
    """A compliance officer of acme, as the service sees one."""
    return Actor(principal="officer-1", tenant="acme", role="compliance_officer")
