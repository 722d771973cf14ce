"""Helpers of the incident tests: a scanner over an app's database, refusals, the list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.incidents.scanner import IncidentScanner
from guard.incidents.sigma import RuleSet

if TYPE_CHECKING:
    from tests.fixtures.api import Api

DENIALS_RULE = "74f7693c-b718-46bc-8068-7022bf2361db"

SUPERVISOR_READS = """
title: A supervisor read a customer record
id: 6a3c3a51-5d1e-4f9b-9a59-1c0d2f1b7e01
status: test
description: A supervisor read a customer's record.
level: high
logsource:
  product: guard
  service: audit
detection:
  selection:
    action: records.read
    role: supervisor
  condition: selection
runbook: bulk-access
"""


def scanner_for(api: Api, rules: RuleSet | None = None) -> IncidentScanner:
    """A scanner over the api's database, as guard serve's background worker builds it."""
    services = api.services
    return IncidentScanner(
        settings=api.settings,
        session_factory=services.session_factory,
        trail=services.audit,
        rules=rules,
    )


def deny(api: Api, times: int, role: str = "agent") -> None:
    """``times`` requests the role may not make (an agent reading the audit trail): 403s."""
    for _ in range(times):
        response = api.client.get("/v1/audit/events", headers=api.headers(role))
        assert response.status_code == 403


def incidents(api: Api, role: str = "compliance_officer") -> list[dict[str, Any]]:
    response = api.client.get("/v1/incidents", headers=api.headers(role))
    assert response.status_code == 200, response.text
    return response.json()["incidents"]  # type: ignore[no-any-return]


def records_read_by_a_supervisor(api: Api, people: list[tuple[str, str]]) -> list[str]:
    """Records created by an agent and read by a supervisor; scanned with SUPERVISOR_READS."""
    ids = []
    for name, email in people:
        created = api.client.post(
            "/v1/records", headers=api.headers("agent"), json={"full_name": name, "email": email}
        )
        assert created.status_code == 201
        ids.append(created.json()["id"])
    for record_id in ids:
        assert (
            api.client.get(
                f"/v1/records/{record_id}", headers=api.headers("supervisor")
            ).status_code
            == 200
        )
    scanner_for(api, RuleSet.from_yaml(SUPERVISOR_READS)).scan()
    return ids
