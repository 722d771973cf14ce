"""``/v1/subjects``: what an officer does over HTTP, and what nobody else can do.

Every test runs on SQLite and PostgreSQL (``db_settings`` behind ``api``), with real records
(real envelope encryption and blind indexes), real detection for the stated reasons, and the
real audit trail.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyzipper
import sqlalchemy

from guard.subjects.models import LegalHold
from guard.subjects.package import PASSPHRASE_ALPHABET
from tests.subjects.conftest import (
    ALICE,
    BOB,
    Customers,
    clear_values,
    create,
    open_request,
    problem,
)

if TYPE_CHECKING:
    import pytest

    from tests.fixtures.api import Api

OFFICER = "compliance_officer"
REQUESTS = "/v1/subjects/requests"
IDENTITY_CHECK = (
    "Philippa Quennell-Abernathy called from +44 20 7946 0321; confirmed date of birth "
    "1979-04-17 and postcode"
)


def events(api: Api, **filters: Any) -> list[dict[str, Any]]:
    return api.services.audit.search_events(tenant="acme", **filters)


def subject_events(api: Api) -> list[dict[str, Any]]:
    return [e for e in events(api) if e["action"].startswith("subjects.")]


def stored_requests(api: Api) -> int:
    with api.services.engine.connect() as connection:
        return int(
            connection.execute(
                sqlalchemy.text("SELECT count(*) FROM subject_requests")
            ).scalar_one()
        )


def opened(api: Api, record_id: str, kind: str = "access", **extra: Any) -> dict[str, Any]:
    response = open_request(
        api, kind=kind, record_id=record_id, identity_check=IDENTITY_CHECK, **extra
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------------- opening


def test_when_an_officer_opens_a_request_by_email_then_it_is_due_in_a_month_and_audited(
    api: Api, customers: Customers
) -> None:
    received = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    response = open_request(
        api,
        kind="access",
        email=ALICE["email"].upper(),  # the blind index normalises it
        identity_check=IDENTITY_CHECK,
        received_at=received.isoformat(),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["record_id"] == customers.alice
    assert body["status"] == "open"
    assert datetime.fromisoformat(body["received_at"]) == received
    assert datetime.fromisoformat(body["due_at"]).date() == _plus_one_month(received).date()
    assert 26 * 86_400 < body["time_left_seconds"] < 29 * 86_400
    assert body["overdue"] is False
    assert body["extended"] is False
    assert body["package"] is None
    # the identity check is stored redacted: none of the customer's own values remain
    for value in (*clear_values(ALICE), "Philippa", "Quennell"):
        assert value not in body["identity_check"], value
    assert "<PERSON" in body["identity_check"]
    (event,) = [e for e in subject_events(api) if e["action"] == "subjects.open"]
    assert event["outcome"] == "success"
    assert event["customer"] == api.services.audit.customer_hash(customers.alice)
    assert event["resource"] == f"subject-request:{body['id']}"
    assert event["details"]["kind"] == "access"
    assert event["details"]["by"] == "email"
    assert event["role"] == OFFICER


def _plus_one_month(when: datetime) -> datetime:
    from dateutil.relativedelta import relativedelta  # noqa: PLC0415

    return when + relativedelta(months=1)


def test_when_no_customer_matches_then_404_says_only_that_and_nothing_is_stored(
    api: Api, customers: Customers
) -> None:
    del customers
    unknown = "nobody.at.all@example.com"
    for body in (
        {"email": unknown},
        {"phone": "+1 212 555 0199"},
        {"account_id": "AC-000000"},
        {"record_id": str(uuid.uuid4())},
        {"record_id": "not-a-uuid"},
    ):
        response = open_request(api, kind="access", identity_check=IDENTITY_CHECK, **body)
        found = problem(response, 404, "not-found")
        assert found["detail"].startswith("no customer in this tenant matches this ")
        assert next(iter(body.values())) not in response.text
    assert stored_requests(api) == 0
    failures = [e for e in subject_events(api) if e["action"] == "subjects.open"]
    assert len(failures) == 5
    assert {e["outcome"] for e in failures} == {"failure"}
    assert {e["details"]["reason"] for e in failures} == {"not-found"}
    assert {e["customer"] for e in failures} == {None}


def test_when_several_customers_share_the_email_then_409_asks_for_the_record_id(
    api: Api, customers: Customers
) -> None:
    twin = create(api, {**BOB, "email": ALICE["email"]})
    response = open_request(api, kind="access", email=ALICE["email"], identity_check=IDENTITY_CHECK)
    found = problem(response, 409, "ambiguous-customer")
    assert "2 customers" in found["detail"]
    assert "record id" in found["detail"]
    for value in (customers.alice, twin, ALICE["email"]):
        assert value not in response.text
    assert stored_requests(api) == 0
    by_id = open_request(api, kind="access", record_id=twin, identity_check=IDENTITY_CHECK)
    assert by_id.status_code == 201, by_id.text


def test_when_another_tenant_asks_then_its_answers_equal_those_for_nothing(
    api: Api, customers: Customers
) -> None:
    _, key = api.services.api_keys.create(name="globex", role=OFFICER, tenant="globex")
    globex = {"Authorization": f"Bearer {key}"}
    mine = opened(api, customers.alice)
    for body in ({"record_id": customers.alice}, {"email": ALICE["email"]}):
        response = api.client.post(
            REQUESTS,
            json={"kind": "access", "identity_check": IDENTITY_CHECK, **body},
            headers=globex,
        )
        found = problem(response, 404, "not-found")
        assert "globex" not in found["detail"]
        assert "acme" not in found["detail"]
    theirs = api.client.get(f"{REQUESTS}/{mine['id']}", headers=globex)
    nothing = api.client.get(f"{REQUESTS}/{uuid.uuid4()}", headers=globex)
    assert (
        problem(theirs, 404, "not-found")["detail"] == problem(nothing, 404, "not-found")["detail"]
    )
    for action in ("package", "extend", "close"):
        body = {} if action == "package" else {"reason": "a reason for it", "outcome": "rejected"}
        if action == "extend":
            body = {"reason": "a reason for it"}
        refused = api.client.post(f"{REQUESTS}/{mine['id']}/{action}", json=body, headers=globex)
        problem(refused, 404, "not-found")
    listed = api.client.get(REQUESTS, headers=globex)
    assert listed.json()["requests"] == []
    # acme's request is untouched
    again = api.client.get(f"{REQUESTS}/{mine['id']}", headers=api.headers(OFFICER)).json()
    assert again["status"] == "open"
    assert again["extended"] is False
    assert again["package"] is None


def test_when_the_record_was_erased_then_410_like_records(api: Api, customers: Customers) -> None:
    erased = api.client.delete(f"/v1/records/{customers.alice}", headers=api.headers("admin"))
    assert erased.status_code == 200, erased.text
    response = open_request(
        api, kind="access", record_id=customers.alice, identity_check=IDENTITY_CHECK
    )
    found = problem(response, 410, "record-erased")
    assert customers.alice not in found["detail"]
    assert stored_requests(api) == 0
    (failure,) = [e for e in subject_events(api) if e["action"] == "subjects.open"]
    assert failure["outcome"] == "failure"
    assert failure["details"]["reason"] == "record-erased"
    assert failure["customer"] == api.services.audit.customer_hash(customers.alice)


#: A field wrong in the body, and where the 422 says it is.
WRONG_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "deletion"}, "body.kind"),
    ({"identity_check": None}, "body.identity_check"),
    ({"identity_check": "ok"}, "body.identity_check"),
    ({"received_at": "2024-05-01T09:30:00"}, "body.received_at"),  # no time zone
    ({"email": ALICE["email"]}, "body"),  # two identifiers
]


def test_when_a_field_is_wrong_then_422_names_it_and_nothing_is_stored(
    api: Api, customers: Customers
) -> None:
    for change, field in WRONG_FIELDS:
        body: dict[str, Any] = {
            "kind": "access",
            "record_id": customers.alice,
            "identity_check": IDENTITY_CHECK,
            **change,
        }
        body = {k: v for k, v in body.items() if v is not None}
        response = api.client.post(REQUESTS, json=body, headers=api.headers(OFFICER))
        found = problem(response, 422, "invalid-input")
        assert found["detail"].startswith(field), found
        assert ALICE["email"] not in response.text
        assert "Philippa" not in response.text
    assert stored_requests(api) == 0
    assert [e for e in subject_events(api) if e["outcome"] == "success"] == []


def test_when_received_at_is_out_of_range_then_422_says_why(api: Api, customers: Customers) -> None:
    for shift, detail in (
        (timedelta(days=1), "received_at is in the future"),
        (
            -timedelta(days=100),
            (
                "received_at is more than 3 months ago: even an extended deadline would have "
                "passed; check the date"
            ),
        ),
    ):
        response = open_request(
            api,
            kind="erasure",
            record_id=customers.alice,
            identity_check=IDENTITY_CHECK,
            received_at=(datetime.now(UTC) + shift).isoformat(),
        )
        assert problem(response, 422, "invalid-input")["detail"] == detail
    assert stored_requests(api) == 0
    failures = [e for e in subject_events(api) if e["action"] == "subjects.open"]
    assert [e["outcome"] for e in failures] == ["failure", "failure"]
    expected = {"kind": "erasure", "by": "record_id", "reason": "invalid-input"}
    assert [e["details"] for e in failures] == [expected, expected]


# ---------------------------------------------------------------------- reading


def test_when_requests_are_listed_then_soonest_due_first_filtered_and_paged(
    api: Api, customers: Customers
) -> None:
    now = datetime.now(UTC)
    late = opened(api, customers.alice, received_at=(now - timedelta(days=40)).isoformat())
    soon = opened(
        api, customers.bob, kind="erasure", received_at=(now - timedelta(days=20)).isoformat()
    )
    fresh = opened(api, customers.bob, kind="portability")
    officer = api.headers(OFFICER)
    listed = api.client.get(REQUESTS, headers=officer).json()
    assert [r["id"] for r in listed["requests"]] == [late["id"], soon["id"], fresh["id"]]
    first = listed["requests"][0]
    assert first["overdue"] is True
    assert first["time_left_seconds"] < 0
    erasures = api.client.get(REQUESTS, params={"kind": "erasure"}, headers=officer).json()
    assert [r["id"] for r in erasures["requests"]] == [soon["id"]]
    page = api.client.get(REQUESTS, params={"limit": 2}, headers=officer).json()
    assert [r["id"] for r in page["requests"]] == [late["id"], soon["id"]]
    rest = api.client.get(
        REQUESTS, params={"limit": 2, "cursor": page["next_cursor"]}, headers=officer
    ).json()
    assert [r["id"] for r in rest["requests"]] == [fresh["id"]]
    assert rest["next_cursor"] is None
    closed = api.client.get(REQUESTS, params={"status": "fulfilled"}, headers=officer).json()
    assert closed["requests"] == []
    problem(
        api.client.get(REQUESTS, params={"cursor": "%%%"}, headers=officer), 422, "invalid-input"
    )
    problem(api.client.get(REQUESTS, params={"kind": "x"}, headers=officer), 422, "invalid-input")
    shown = api.client.get(f"{REQUESTS}/{soon['id']}", headers=officer).json()
    assert shown["kind"] == "erasure"
    reads = [e for e in subject_events(api) if e["action"] == "subjects.read"]
    assert [e["customer"] for e in reads] == [api.services.audit.customer_hash(customers.bob)]


# ---------------------------------------------------------------------- extend and close


def test_when_the_deadline_is_extended_then_once_by_at_most_two_months(
    api: Api, customers: Customers
) -> None:
    request = opened(api, customers.alice)
    officer = api.headers(OFFICER)
    url = f"{REQUESTS}/{request['id']}/extend"
    too_long = api.client.post(url, json={"months": 3, "reason": "many systems"}, headers=officer)
    problem(too_long, 422, "invalid-input")
    reason = f"records of {ALICE['full_name']} are spread over three archives"
    extended = api.client.post(url, json={"months": 2, "reason": reason}, headers=officer)
    assert extended.status_code == 200, extended.text
    body = extended.json()
    received = datetime.fromisoformat(body["received_at"])
    from dateutil.relativedelta import relativedelta  # noqa: PLC0415

    assert datetime.fromisoformat(body["due_at"]) == received + relativedelta(months=3)
    assert body["extended"] is True
    assert "Philippa" not in body["extension_reason"]
    assert "three archives" in body["extension_reason"]
    again = api.client.post(url, json={"months": 1, "reason": "still more"}, headers=officer)
    assert "extended once already" in problem(again, 409, "request-conflict")["detail"]
    (event,) = [
        e
        for e in subject_events(api)
        if e["action"] == "subjects.extend" and e["outcome"] == "success"
    ]
    assert event["details"]["months"] == 2
    assert "Philippa" not in event["details"]["reason"]


def test_when_a_request_is_closed_then_it_refuses_every_further_action(
    api: Api, customers: Customers
) -> None:
    request = opened(api, customers.alice)
    officer = api.headers(OFFICER)
    url = f"{REQUESTS}/{request['id']}"
    closed = api.client.post(
        f"{url}/close",
        json={"outcome": "rejected", "reason": f"{ALICE['full_name']} withdrew the request"},
        headers=officer,
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "rejected"
    assert body["time_left_seconds"] is None
    assert body["overdue"] is False
    assert "Philippa" not in body["outcome"]
    for action, payload in (
        ("close", {"outcome": "fulfilled", "reason": "answered again"}),
        ("extend", {"reason": "more time please"}),
        ("package", None),
    ):
        refused = api.client.post(f"{url}/{action}", json=payload, headers=officer)
        problem(refused, 409, "request-closed")
    bad = api.client.post(
        f"{url}/close", json={"outcome": "done", "reason": "x" * 10}, headers=officer
    )
    problem(bad, 422, "invalid-input")
    failures = [e for e in subject_events(api) if e["outcome"] == "failure"]
    assert {e["details"]["reason"] for e in failures} == {"request-closed"}
    assert len(failures) == 3


# ---------------------------------------------------------------------- the package


def test_when_a_package_is_made_then_the_passphrase_is_shown_once_and_the_zip_downloads(
    api: Api, customers: Customers
) -> None:
    request = opened(api, customers.alice, kind="portability")
    officer = api.headers(OFFICER)
    url = f"{REQUESTS}/{request['id']}/package"
    problem(api.client.get(url, headers=officer), 404, "package-not-found")
    made = api.client.post(url, headers=officer)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    body = made.json()
    passphrase = body["passphrase"]
    groups = passphrase.split("-")
    assert [len(g) for g in groups] == [4] * 7
    assert set("".join(groups)) <= set(PASSPHRASE_ALPHABET)
    assert body["audit_events"] >= 5  # created, 3 reads, revealed (and the request opened)
    assert {f["name"] for f in body["files"]} >= {
        "record.json",
        "audit_events.csv",
        "manifest.json",
    }
    assert "another channel" in body["notice"]
    downloaded = api.client.get(url, headers=officer)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "application/zip"
    assert downloaded.headers["cache-control"] == "no-store"
    assert request["id"] in downloaded.headers["content-disposition"]
    assert downloaded.headers["guard-package-sha256"] == body["package"]["sha256"]
    with pyzipper.AESZipFile(io.BytesIO(downloaded.content)) as archive:
        archive.setpassword(passphrase.encode())
        record = json.loads(archive.read("record.json"))
    assert record["fields"]["email"] == ALICE["email"]
    # the passphrase is in that one response only: not in the database, the trail or the file
    dump = _dump_database(api)
    audit_file = api.settings.audit_jsonl_path
    assert audit_file is not None
    assert passphrase not in dump
    assert passphrase not in audit_file.read_text(encoding="utf-8")
    shown = api.client.get(f"{REQUESTS}/{request['id']}", headers=officer)
    assert passphrase not in shown.text
    assert shown.json()["package"]["sha256"] == body["package"]["sha256"]
    made_event = next(e for e in subject_events(api) if e["action"] == "subjects.package")
    assert made_event["details"] == {
        "audit_events": body["audit_events"],
        "incidents": 0,
        "files": len(body["files"]),
        "bytes": body["package"]["size"],
    }
    download = next(e for e in subject_events(api) if e["action"] == "subjects.download")
    assert download["customer"] == api.services.audit.customer_hash(customers.alice)


def test_when_a_package_is_asked_of_an_erasure_request_then_409(
    api: Api, customers: Customers
) -> None:
    request = opened(api, customers.alice, kind="erasure")
    made = api.client.post(f"{REQUESTS}/{request['id']}/package", headers=api.headers(OFFICER))
    assert "erasure request" in problem(made, 409, "request-conflict")["detail"]


# ---------------------------------------------------------------------- erasure


def test_when_a_legal_hold_covers_the_customer_then_erasure_is_refused_and_audited(
    api: Api, customers: Customers
) -> None:
    request = opened(api, customers.alice, kind="erasure")
    with api.services.session_factory.begin() as session:
        session.add(
            LegalHold(
                id=str(uuid.uuid4()),
                tenant="acme",
                scope="customer",
                target=customers.alice,
                reason="litigation: matter 2024-117",
                placed_by="counsel",
                placed_at=datetime.now(UTC),
            )
        )
    url = f"{REQUESTS}/{request['id']}/erase"
    refused = api.client.post(url, json={"confirm": True}, headers=api.headers(OFFICER))
    assert "Art. 17(3)(e)" in problem(refused, 409, "legal-hold")["detail"]
    record = api.client.get(f"/v1/records/{customers.alice}", headers=api.headers("agent"))
    assert record.status_code == 200  # nothing was shredded
    shown = api.client.get(f"{REQUESTS}/{request['id']}", headers=api.headers(OFFICER)).json()
    assert shown["status"] == "open"
    (failure,) = [e for e in subject_events(api) if e["action"] == "subjects.erase"]
    assert failure["outcome"] == "failure"
    assert failure["details"] == {"reason": "legal-hold"}
    assert failure["customer"] == api.services.audit.customer_hash(customers.alice)


def test_when_erasure_is_confirmed_then_the_record_is_shredded_and_packages_deleted(
    api: Api, customers: Customers
) -> None:
    officer = api.headers(OFFICER)
    access = opened(api, customers.alice)
    made = api.client.post(f"{REQUESTS}/{access['id']}/package", headers=officer)
    assert made.status_code == 201, made.text
    erasure = opened(api, customers.alice, kind="erasure")
    url = f"{REQUESTS}/{erasure['id']}/erase"
    unconfirmed = api.client.post(url, json={"confirm": False}, headers=officer)
    assert "confirm must be true" in problem(unconfirmed, 422, "invalid-input")["detail"]
    wrong_kind = api.client.post(
        f"{REQUESTS}/{access['id']}/erase", json={"confirm": True}, headers=officer
    )
    problem(wrong_kind, 409, "request-conflict")
    erased = api.client.post(url, json={"confirm": True}, headers=officer)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["status"] == "fulfilled"
    assert body["outcome"].startswith("erased: ")
    gone = api.client.get(f"/v1/records/{customers.alice}", headers=api.headers("agent"))
    assert gone.status_code == 410
    package = api.client.get(f"{REQUESTS}/{access['id']}/package", headers=officer)
    problem(package, 404, "package-not-found")
    bob = api.client.get(f"/v1/records/{customers.bob}", headers=api.headers("agent"))
    assert bob.status_code == 200
    event = next(
        e
        for e in subject_events(api)
        if e["action"] == "subjects.erase" and e["outcome"] == "success"
    )
    assert event["details"] == {"crypto_shredded": True, "packages_deleted": 1}
    (shredded,) = events(api, action="records.erase")  # what the erasure-burst rule watches
    assert shredded["customer"] == event["customer"]
    assert shredded["details"] == {"crypto_shredded": True, "via": "subject-request"}
    assert shredded["role"] == OFFICER
    again = api.client.post(url, json={"confirm": True}, headers=officer)
    problem(again, 409, "request-closed")


# ---------------------------------------------------------------------- who may


def test_when_a_role_other_than_officers_calls_any_route_then_403(
    api: Api, customers: Customers
) -> None:
    request = opened(api, customers.alice)
    url = f"{REQUESTS}/{request['id']}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        (
            "POST",
            REQUESTS,
            {"kind": "access", "record_id": customers.alice, "identity_check": IDENTITY_CHECK},
        ),
        ("GET", REQUESTS, None),
        ("GET", url, None),
        ("POST", f"{url}/extend", {"reason": "more time please"}),
        ("POST", f"{url}/package", None),
        ("GET", f"{url}/package", None),
        ("POST", f"{url}/erase", {"confirm": True}),
        ("POST", f"{url}/close", {"outcome": "rejected", "reason": "not allowed"}),
    ]
    for role in ("agent", "analyst", "supervisor"):
        for method, path, body in calls:
            response = api.client.request(method, path, json=body, headers=api.headers(role))
            problem(response, 403, "forbidden")
    assert stored_requests(api) == 1
    shown = api.client.get(url, headers=api.headers("admin")).json()  # admins inherit officers'
    assert shown["status"] == "open"
    assert shown["package"] is None


def test_when_pii_goes_through_every_route_then_it_is_stored_and_logged_nowhere(
    api: Api, customers: Customers, capfd: pytest.CaptureFixture[str]
) -> None:
    officer = api.headers(OFFICER)
    request = opened(api, customers.alice)
    url = f"{REQUESTS}/{request['id']}"
    naming = f"{ALICE['full_name']} at {ALICE['email']}, {ALICE['phone']}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", REQUESTS, {"kind": "access", "email": ALICE["email"], "identity_check": naming}),
        (
            "POST",
            REQUESTS,
            {"kind": "access", "email": "x" + ALICE["email"], "identity_check": naming},
        ),
        ("POST", f"{url}/extend", {"reason": naming}),
        ("POST", f"{url}/package", None),
        ("GET", f"{url}/package", None),
        ("POST", f"{url}/close", {"outcome": "fulfilled", "reason": f"sent to {naming}"}),
        ("GET", REQUESTS, None),
    ]
    for method, path, body in calls:
        response = api.client.request(method, path, json=body, headers=officer)
        assert response.status_code < 500, response.text
        if method == "GET" and path.endswith("/package"):
            continue  # encrypted: tested in test_package.py
        for value in clear_values(ALICE):
            assert value not in response.text, (path, value)
    stored = _dump_database(api)
    audit_file = api.settings.audit_jsonl_path
    assert audit_file is not None
    stored += audit_file.read_text(encoding="utf-8")
    logs = "".join(capfd.readouterr())
    for value in clear_values(ALICE):
        assert value not in stored, value
        assert value not in logs, value


def _dump_database(api: Api) -> str:
    engine = api.services.engine
    chunks: list[str] = []
    with engine.connect() as connection:
        for table in sqlalchemy.inspect(engine).get_table_names():
            rows = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))  # noqa: S608 - names from the inspector
            chunks.extend(repr(tuple(row)) for row in rows)
    return "\n".join(chunks)
