"""Legal holds and the retention schedule and runs over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from guard.incidents.models import Incident
from guard.records.models import CustomerRecord
from guard.storage.engine import session_scope
from guard.subjects.holds import HoldService
from guard.subjects.retention import build_retention_service
from tests.subjects.conftest import ALICE, create, problem

if TYPE_CHECKING:
    from httpx2 import Response

    from tests.fixtures.api import Api

HOLDS = "/v1/retention/holds"
#: Names the customer, their email and a matter: the stored reason keeps only the matter.
REASON = "Philippa Quennell-Abernathy (philippa.quennell@example.org) sued us, matter 2291"


def place(api: Api, role: str = "compliance_officer", **body: Any) -> Response:
    return api.client.post(HOLDS, json=body, headers=api.headers(role))


def incident(api: Api, tenant: str | None) -> str:
    incident_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    with session_scope(api.services.session_factory) as session:
        number = 1 + session.query(Incident).count()
        session.add(
            Incident(
                id=incident_id,
                number=number,
                tenant=tenant,
                title="Repeated denials",
                rule_id="repeated-denials",
                rule_title="Repeated denials",
                description="Repeated denials",
                severity="medium",
                status="open",
                group_key="0" * 64,
                group_values="{}",
                runbook="default",
                opened_at=now,
                became_aware_at=now,
                updated_at=now,
                first_event_at=now,
                last_event_at=now,
                first_seq=1,
                last_seq=2,
                hits=1,
                entity_types="[]",
                actions="[]",
                chain_detail="not yet verified",
            )
        )
    return incident_id


def trail_text(api: Api) -> str:
    return json.dumps(api.services.audit.search_events(limit=10_000))


def test_when_an_officer_places_and_releases_a_hold_then_the_reason_is_redacted_and_audited(
    api: Api,
) -> None:
    record_id = create(api, ALICE)
    placed = place(api, scope="customer", target=record_id, reason=REASON)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["scope"], hold["target"], hold["active"]) == ("customer", record_id, True)
    assert "matter 2291" in hold["reason"]
    for value in ("Philippa", "Quennell", "philippa.quennell@example.org"):
        assert value not in hold["reason"]
        assert value not in trail_text(api)
    listed = api.client.get(HOLDS, headers=api.headers("compliance_officer")).json()
    assert [h["id"] for h in listed["holds"]] == [hold["id"]]

    released = api.client.post(
        f"{HOLDS}/{hold['id']}/release", headers=api.headers("compliance_officer")
    )
    assert released.status_code == 200, released.text
    assert released.json()["active"] is False
    again = api.client.post(f"{HOLDS}/{hold['id']}/release", headers=api.headers("admin"))
    problem(again, 409, "hold-released")
    assert api.client.get(HOLDS, headers=api.headers("admin")).json() == {"holds": []}
    everything = api.client.get(
        HOLDS, params={"include_released": "true"}, headers=api.headers("admin")
    ).json()
    assert [h["id"] for h in everything["holds"]] == [hold["id"]]

    audit = api.services.audit
    holds = audit.search_events(action="retention.hold")
    assert [(e["outcome"], e["details"]["hold_id"], e["details"]["scope"]) for e in holds] == [
        ("success", hold["id"], "customer")
    ]
    assert holds[0]["customer"] == audit.customer_hash(record_id)
    releases = audit.search_events(action="retention.release")
    assert [(e["outcome"], e["details"].get("reason")) for e in releases] == [
        ("success", None),
        ("failure", "hold-released"),
    ]


def test_when_the_role_may_not_hold_then_it_is_refused_and_audited(api: Api) -> None:
    record_id = create(api, ALICE)
    for role in ("agent", "supervisor", "analyst"):
        problem(
            place(api, role, scope="customer", target=record_id, reason=REASON), 403, "forbidden"
        )
        listed = api.client.get(HOLDS, headers=api.headers(role))
        problem(listed, 403, "forbidden")
        problem(api.client.get("/v1/retention", headers=api.headers(role)), 403, "forbidden")
    problem(api.client.get(HOLDS), 401, "unauthenticated")
    assert api.client.get(HOLDS, headers=api.headers("admin")).status_code == 200
    denied = api.services.audit.search_events(decision="deny")
    assert {e["action"] for e in denied} >= {"retention.hold", "retention.read"}
    assert api.services.audit.search_events(action="retention.hold", decision="allow") == []


#: (body, status, problem slug); ``{record}`` is replaced by an existing record's id.
BAD_REQUESTS: list[tuple[dict[str, Any], int, str]] = [
    ({"scope": "customer", "target": str(uuid.uuid4()), "reason": REASON}, 404, "not-found"),
    ({"scope": "customer", "target": "not-a-record-id", "reason": REASON}, 404, "not-found"),
    ({"scope": "incident", "target": str(uuid.uuid4()), "reason": REASON}, 404, "not-found"),
    ({"scope": "customer", "target": "{record}"}, 422, "invalid-input"),
    ({"scope": "customer", "target": "{record}", "reason": "  ab   "}, 422, "invalid-input"),
    ({"scope": "customer", "target": "{record}", "reason": "x" * 1001}, 422, "invalid-input"),
    ({"scope": "everything", "target": "{record}", "reason": REASON}, 422, "invalid-input"),
    ({"scope": "customer", "target": "{record}", "reason": REASON, "x": 1}, 422, "invalid-input"),
    ({"scope": "customer", "target": "9" * 37, "reason": REASON}, 422, "invalid-input"),
]


def test_when_a_hold_request_is_bad_then_the_answer_is_precise_and_nothing_is_stored(
    api: Api,
) -> None:
    record_id = create(api, ALICE)
    for body, status, slug in BAD_REQUESTS:
        sent = {
            key: value.format(record=record_id) if isinstance(value, str) else value
            for key, value in body.items()
        }
        answer = place(api, **sent)
        detail = problem(answer, status, slug)
        assert REASON not in answer.text
        assert "matter" not in json.dumps(detail)
        if sent.get("target") and sent["target"] != record_id:
            assert sent["target"] not in answer.text
    assert HoldService(api.services.session_factory).list_holds(tenant=None) == []
    assert "matter 2291" not in trail_text(api)
    # refusals that reached the route are audited with their reason (the rest by the request)
    failures = api.services.audit.search_events(action="retention.hold", outcome="failure")
    assert [e["details"]["reason"] for e in failures] == [
        "not-found",
        "not-found",
        "not-found",
        "invalid-input",
    ]


def test_when_the_target_is_another_tenants_then_it_is_not_found(api: Api) -> None:
    from guard.records.endpoints import build_record_service  # noqa: PLC0415
    from guard.records.schemas import RecordCreate  # noqa: PLC0415

    theirs = build_record_service(api.services).create(
        tenant="globex", data=RecordCreate(full_name="Someone Else")
    )
    problem(place(api, scope="customer", target=theirs.id, reason=REASON), 404, "not-found")
    problem(
        place(api, scope="incident", target=incident(api, "globex"), reason=REASON),
        404,
        "not-found",
    )
    # an incident of the tenant, and a system-wide one, can be held
    for tenant in ("acme", None):
        held = place(api, scope="incident", target=incident(api, tenant), reason="evidence")
        assert held.status_code == 201, held.text
    # another tenant's hold cannot be released (or seen) from acme
    foreign = HoldService(api.services.session_factory).place(
        tenant="globex",
        scope="customer",
        target=theirs.id,
        reason="their matter",
        placed_by="globex-officer",
        redact=lambda text, _known: text,
    )
    released = api.client.post(
        f"{HOLDS}/{foreign.id}/release", headers=api.headers("compliance_officer")
    )
    problem(released, 404, "not-found")
    listed = api.client.get(HOLDS, headers=api.headers("compliance_officer")).json()
    assert foreign.id not in {h["id"] for h in listed["holds"]}
    failures = api.services.audit.search_events(action="retention.hold", outcome="failure")
    assert [e["details"]["reason"] for e in failures] == ["not-found", "not-found"]


def test_when_an_officer_reads_the_schedule_and_runs_then_only_their_tenant_shows(
    api: Api,
) -> None:
    schedule = api.client.get("/v1/retention", headers=api.headers("compliance_officer"))
    assert schedule.status_code == 200, schedule.text
    body = schedule.json()
    periods = {p["kind"]: p["text"] for p in body["periods"]}
    assert periods == {
        "notes": "365 days",
        "records": "36 months",
        "audit": "6 years",
        "subject_packages": "30 days",
    }
    assert (body["tenant"], body["own_entry"]) == ("acme", True)

    from guard.records.endpoints import build_record_service  # noqa: PLC0415
    from guard.records.schemas import RecordCreate  # noqa: PLC0415

    records = build_record_service(api.services)
    ours = records.create(tenant="acme", data=RecordCreate(full_name="Old Customer"))
    theirs = [
        records.create(tenant="globex", data=RecordCreate(full_name=f"Old {n}")) for n in (1, 2)
    ]
    long_ago = datetime.now(UTC) - timedelta(days=5 * 365)
    with session_scope(api.services.session_factory) as session:
        session.execute(
            update(CustomerRecord)
            .where(CustomerRecord.id.in_([ours.id, *(r.id for r in theirs)]))
            .values(updated_at=long_ago)
        )
    service = build_retention_service(
        api.settings, api.services.session_factory, api.services.audit
    )
    report = service.run(started_by="test")
    assert report.total("records") == 3
    runs = api.client.get("/v1/retention/runs", headers=api.headers("compliance_officer"))
    assert runs.status_code == 200, runs.text
    (run,) = runs.json()["runs"]
    assert (run["id"], run["status"]) == (report.run_id, "finished")
    assert run["removed"]["records"] == 1  # acme's one, not globex's two
    assert "globex" not in runs.text
    actions = {e["action"] for e in api.services.audit.search_events(tenant="acme")}
    assert {"retention.schedule", "retention.runs"} <= actions
