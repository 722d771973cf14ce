"""/v1/incidents as a compliance officer works it: clocks, transitions, steps, notices."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from guard.incidents.sigma import RuleSet
from tests.incidents.helpers import deny, records_read_by_a_supervisor, scanner_for

if TYPE_CHECKING:
    from tests.fixtures.api import Api

OFFICER = "compliance_officer"


def opened_incident(api: Api) -> dict[str, object]:
    """Ten refusals of an agent, scanned: the repeated-denials incident, as an officer sees it."""
    deny(api, 10)
    scanner_for(api).scan()
    response = api.client.get("/v1/incidents", headers=api.headers(OFFICER))
    (incident,) = response.json()["incidents"]
    detail = api.client.get(f"/v1/incidents/{incident['id']}", headers=api.headers(OFFICER))
    assert detail.status_code == 200
    return detail.json()  # type: ignore[no-any-return]


def the_incident(api: Api) -> dict[str, object]:
    (incident,) = api.client.get("/v1/incidents", headers=api.headers(OFFICER)).json()["incidents"]
    return incident  # type: ignore[no-any-return]


@pytest.mark.parametrize("role", ["agent", "supervisor", "analyst"])
def test_when_a_role_without_incident_rights_asks_then_it_is_refused(api: Api, role: str) -> None:
    assert api.client.get("/v1/incidents", headers=api.headers(role)).status_code == 403


def test_when_an_incident_opens_then_the_72_hour_and_60_day_clocks_run_from_awareness(
    api: Api,
) -> None:
    detail = opened_incident(api)
    aware = datetime.fromisoformat(str(detail["became_aware_at"]))
    clocks = {d["name"]: d for d in detail["deadlines"]}  # type: ignore[attr-defined]
    assert datetime.fromisoformat(clocks["authority"]["due_at"]) == aware + timedelta(hours=72)
    assert datetime.fromisoformat(clocks["individuals"]["due_at"]) == aware + timedelta(days=60)
    assert 71 * 3600 < clocks["authority"]["seconds_left"] <= 72 * 3600
    assert clocks["authority"]["overdue"] is False
    assert "Art. 33" in clocks["authority"]["basis"]


def test_when_the_authority_is_notified_then_its_clock_stops(api: Api) -> None:
    detail = opened_incident(api)
    response = api.client.post(
        f"/v1/incidents/{detail['id']}/notified",
        headers=api.headers(OFFICER),
        json={"party": "authority"},
    )
    assert response.status_code == 200
    clocks = {d["name"]: d for d in response.json()["deadlines"]}
    assert clocks["authority"]["met_at"] is not None
    assert clocks["individuals"]["met_at"] is None


def test_when_an_officer_moves_an_incident_forward_then_each_step_is_on_the_timeline(
    api: Api,
) -> None:
    detail = opened_incident(api)
    url = f"/v1/incidents/{detail['id']}/transitions"
    for status in ("triaged", "contained", "resolved", "closed"):
        response = api.client.post(url, headers=api.headers(OFFICER), json={"status": status})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    final = response.json()
    transitions = [e for e in final["timeline"] if e["kind"] == "transition"]
    assert [(e["facts"]["from"], e["facts"]["to"]) for e in transitions] == [
        ("open", "triaged"),
        ("triaged", "contained"),
        ("contained", "resolved"),
        ("resolved", "closed"),
    ]
    assert final["closed_at"] is not None
    assert all(e["actor"] for e in transitions)


@pytest.mark.parametrize(("first", "then"), [("closed", "open"), ("contained", "triaged")])
def test_when_a_transition_goes_backwards_then_409_and_nothing_changes(
    api: Api, first: str, then: str
) -> None:
    detail = opened_incident(api)
    url = f"/v1/incidents/{detail['id']}/transitions"
    assert (
        api.client.post(url, headers=api.headers(OFFICER), json={"status": first}).status_code
        == 200
    )
    response = api.client.post(url, headers=api.headers(OFFICER), json={"status": then})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("invalid-transition")
    after = api.client.get(f"/v1/incidents/{detail['id']}", headers=api.headers(OFFICER)).json()
    assert after["status"] == first


def test_when_the_status_is_not_a_status_then_422_names_the_field(api: Api) -> None:
    detail = opened_incident(api)
    response = api.client.post(
        f"/v1/incidents/{detail['id']}/transitions",
        headers=api.headers(OFFICER),
        json={"status": "exploded"},
    )
    assert response.status_code == 422
    assert "status" in str(response.json())


def test_when_a_step_is_ticked_then_the_checklist_shows_who_and_when(api: Api) -> None:
    detail = opened_incident(api)
    step = detail["checklist"][0]  # type: ignore[index]
    response = api.client.put(
        f"/v1/incidents/{detail['id']}/steps/{step['id']}",
        headers=api.headers(OFFICER),
        json={"done": True},
    )
    assert response.status_code == 200
    after = api.client.get(f"/v1/incidents/{detail['id']}", headers=api.headers(OFFICER)).json()
    (ticked,) = [s for s in after["checklist"] if s["done"]]
    assert ticked["id"] == step["id"]
    assert ticked["done_by"]
    assert any(e["kind"] == "step" for e in after["timeline"])
    missing = api.client.put(
        f"/v1/incidents/{detail['id']}/steps/no-such-step",
        headers=api.headers(OFFICER),
        json={"done": True},
    )
    assert missing.status_code == 404


def test_when_the_runbook_has_phases_then_every_nist_function_is_in_the_checklist(
    api: Api,
) -> None:
    detail = opened_incident(api)
    phases = {step["phase"] for step in detail["checklist"]}  # type: ignore[attr-defined]
    assert phases == {"detect", "contain", "eradicate", "recover", "notify", "learn"}


def test_when_a_note_holds_personal_data_then_it_is_stored_redacted(api: Api) -> None:
    detail = opened_incident(api)
    response = api.client.post(
        f"/v1/incidents/{detail['id']}/notes",
        headers=api.headers(OFFICER),
        json={"note": "Called the customer at jane.roe@example.com about it"},
    )
    assert response.status_code == 201
    assert "jane.roe@example.com" not in response.text
    after = api.client.get(f"/v1/incidents/{detail['id']}", headers=api.headers(OFFICER)).text
    assert "jane.roe@example.com" not in after


def test_when_an_incident_id_is_unknown_or_malformed_then_404_without_echo(api: Api) -> None:
    for incident_id in ("5b0c8d4e-1111-4a8e-9d1a-000000000001", "x'; DROP TABLE incidents"):
        response = api.client.get(f"/v1/incidents/{incident_id}", headers=api.headers(OFFICER))
        assert response.status_code in (404, 422)
        assert "DROP" not in response.text


def test_when_an_officer_of_another_tenant_asks_then_the_incident_is_not_found(
    api: Api,
) -> None:
    detail = opened_incident(api)
    _, key = api.services.api_keys.create(name="globex-officer", role=OFFICER, tenant="globex")
    headers = {"Authorization": f"Bearer {key}"}
    assert api.client.get(f"/v1/incidents/{detail['id']}", headers=headers).status_code == 404
    assert api.client.get("/v1/incidents", headers=headers).json()["incidents"] == []


def test_when_the_authority_notice_is_drafted_then_it_holds_the_art_33_items_and_no_names(
    api: Api,
) -> None:
    records_read_by_a_supervisor(
        api, [("Jane Roe", "jane@example.com"), ("Ann Lee", "ann@example.com")]
    )
    incident = the_incident(api)
    assert incident["affected_customers"] == 2
    response = api.client.get(
        f"/v1/incidents/{incident['id']}/notices/authority", headers=api.headers(OFFICER)
    )
    assert response.status_code == 200
    text = response.json()["text"]
    assert "Jane" not in text
    assert "jane@example.com" not in text
    assert "2" in text  # approximate number of people
    assert "dpo@" in text  # the contact point


def test_when_affected_customers_are_resolved_then_their_record_ids_come_back_audited(
    api: Api,
) -> None:
    ids = records_read_by_a_supervisor(
        api, [("Jane Roe", "jane@example.com"), ("Ann Lee", "ann@example.com")]
    )
    incident = the_incident(api)
    response = api.client.post(
        f"/v1/incidents/{incident['id']}/customers/resolve", headers=api.headers(OFFICER)
    )
    assert response.status_code == 200
    assert sorted(response.json()["record_ids"]) == sorted(ids)
    assert response.json()["unresolved"] == 0
    (event,) = api.services.audit.search_events(action="incidents.resolve")
    assert event["details"]["results"] == 2


def test_when_customer_notices_are_rendered_then_each_is_addressed_and_audited_per_customer(
    api: Api,
) -> None:
    ids = records_read_by_a_supervisor(
        api, [("Jane Roe", "jane@example.com"), ("Ann Lee", "ann@example.com")]
    )
    incident = the_incident(api)
    url = f"/v1/incidents/{incident['id']}/notices/customers"
    refused = api.client.post(url, headers=api.headers("supervisor"), json={"reason": "notify"})
    assert refused.status_code == 403
    response = api.client.post(url, headers=api.headers(OFFICER), json={"reason": "Art. 34 notice"})
    assert response.status_code == 200, response.text
    notices = {n["record_id"]: n["text"] for n in response.json()["notices"]}
    assert set(notices) == set(ids)
    assert "Jane" in notices[ids[0]]
    assert "Ann" in notices[ids[1]]
    events = api.services.audit.search_events(action="incidents.notice")
    customers = {e["customer"] for e in events if e["details"].get("party") == "customer"}
    assert customers == {api.services.audit.customer_hash(i) for i in ids}
    assert all("Jane" not in str(e) for e in events)


def test_when_no_reason_is_given_for_customer_notices_then_422(api: Api) -> None:
    records_read_by_a_supervisor(api, [("Jane Roe", "jane@example.com")])
    incident = the_incident(api)
    response = api.client.post(
        f"/v1/incidents/{incident['id']}/notices/customers", headers=api.headers(OFFICER), json={}
    )
    assert response.status_code == 422


def test_when_the_register_is_exported_then_every_incident_is_a_row(api: Api) -> None:
    opened_incident(api)
    as_json = api.client.get("/v1/incidents/register", headers=api.headers(OFFICER))
    assert as_json.status_code == 200
    (entry,) = as_json.json()["incidents"]
    assert entry["reference"].startswith("INC-")
    as_csv = api.client.get("/v1/incidents/register?format=csv", headers=api.headers(OFFICER))
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["reference"] for row in rows] == [entry["reference"]]
    assert (
        api.client.get(
            "/v1/incidents/register?format=xml", headers=api.headers(OFFICER)
        ).status_code
        == 422
    )


def test_when_officers_work_incidents_then_every_call_is_audited(api: Api) -> None:
    detail = opened_incident(api)
    api.client.post(
        f"/v1/incidents/{detail['id']}/transitions",
        headers=api.headers(OFFICER),
        json={"status": "triaged"},
    )
    actions = {e["action"] for e in api.services.audit.search_events(limit=1000)}
    assert {"incidents.list", "incidents.read", "incidents.transition"} <= actions


FAILED_SIGN_IN = """
title: A console sign-in failed
id: 2b7e3f10-5d1e-4f9b-9a59-1c0d2f1b7e02
status: test
description: Someone failed to sign in to the console.
level: low
logsource:
  product: guard
  service: audit
detection:
  selection:
    action: console.login
    decision: deny
  condition: selection
runbook: unauthorized-access
"""


def test_when_a_system_wide_incident_gets_a_note_then_it_is_redacted_too(api: Api) -> None:
    form = api.client.get("/console/login").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    api.client.post("/console/login", data={"api_key": "gk_wrong_x", "csrf_token": token})
    scanner_for(api, RuleSet.from_yaml(FAILED_SIGN_IN)).scan()
    incident = the_incident(api)
    assert incident["tenant"] is None  # no principal, no tenant: everyone's officers see it
    response = api.client.post(
        f"/v1/incidents/{incident['id']}/notes",
        headers=api.headers(OFFICER),
        json={"note": "Asked jane.roe@example.com whether it was her"},
    )
    assert response.status_code == 201, response.text
    assert "jane.roe@example.com" not in response.text
