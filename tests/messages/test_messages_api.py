"""POST /v1/messages/check end to end: real records, blind indexes, model, policy and audit.

Every test runs on SQLite and on PostgreSQL (the ``db_settings`` parameter behind ``api``).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fixtures.api import Api

JANE = {
    "full_name": "Jane Doe",
    "email": "jane.doe@example.com",
    "phone": "+1 415 555 0100",
    "account": {"account_id": "AC-20417"},
}
RAHUL = {
    "full_name": "Rahul Mehta",
    "email": "rahul.mehta@example.org",
    "phone": "(212) 555-0188",
    "account": {"account_id": "ZX-88231"},
}
CHECK = "/v1/messages/check"


@pytest.fixture
def people(customer: Callable[..., str]) -> dict[str, str]:
    return {"jane": customer(**JANE), "rahul": customer(**RAHUL)}


def check(api: Api, role: str = "agent", **body: Any) -> dict[str, Any]:
    response = api.client.post(CHECK, json=body, headers=api.headers(role))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def last_event(api: Api) -> dict[str, Any]:
    events = api.services.audit.search_events(action="message.check")
    assert events
    return events[-1]


# ----------------------------------------------------------------- another customer's data

FOREIGN = [
    ("email", "I have sent it to rahul.mehta@example.org as well.", "EMAIL_ADDRESS"),
    ("email, other case", "Copy sent to Rahul.Mehta@EXAMPLE.org today.", "EMAIL_ADDRESS"),
    ("phone", "You can reach him at (212) 555-0188 tomorrow.", "PHONE_NUMBER"),
    ("phone, other format", "I called 212.555.0188 about your order.", "PHONE_NUMBER"),
    ("phone, international", "The number on file is +1 212 555 0188.", "PHONE_NUMBER"),
    ("account id", "Your refund went to account ZX-88231 by mistake.", "ACCOUNT_ID"),
    ("account id, lower case", "I see zx-88231 on the ticket.", "ACCOUNT_ID"),
    ("full name", "I checked with Rahul Mehta and the parcel is on its way.", "PERSON"),
    ("full name, capitals", "This was ordered by RAHUL MEHTA last week.", "PERSON"),
]


@pytest.mark.parametrize(("case", "text", "entity_type"), FOREIGN, ids=[c[0] for c in FOREIGN])
def test_when_a_reply_holds_another_customers_identifier_then_it_is_blocked(
    api: Api, people: dict[str, str], case: str, text: str, entity_type: str
) -> None:
    response = api.client.post(
        CHECK, json={"text": text, "customer_id": people["jane"]}, headers=api.headers("agent")
    )
    assert response.status_code == 200, (case, response.text)
    body = response.json()
    assert body["verdict"] == "block", case
    assert "text" not in body
    blocking = [f for f in body["findings"] if f["reason"] == "other_customer"]
    assert [f["entity_type"] for f in blocking] == [entity_type], case
    assert blocking[0]["action"] == "block"
    # the finding names the kind of data only: not whose, not the value
    assert people["rahul"] not in response.text
    shown = json.dumps({k: v for k, v in body.items() if k != "request_id"}).casefold()
    for value in ("rahul.mehta@example.org", "212", "ZX-88231", "Rahul"):
        assert value.casefold() not in shown


@pytest.mark.parametrize("channel", ["message", "note"])
def test_when_a_note_or_message_holds_another_customers_email_then_both_block(
    api: Api, people: dict[str, str], channel: str
) -> None:
    body = check(
        api,
        text="Customer asked about rahul.mehta@example.org's order.",
        channel=channel,
        customer_id=people["jane"],
    )
    assert body["verdict"] == "block"


def test_when_no_customer_is_named_then_any_customers_identifier_blocks(
    api: Api, people: dict[str, str]
) -> None:
    del people
    body = check(api, text="Please write to jane.doe@example.com for the form.")
    assert body["verdict"] == "block"


def test_when_the_match_is_in_another_tenant_or_erased_then_it_does_not_block(
    api: Api, people: dict[str, str]
) -> None:
    headers = api.headers("other_tenant_supervisor")
    created = api.client.post("/v1/records", json={"email": "lee@globex.example"}, headers=headers)
    assert created.status_code == 201
    erased = api.client.delete(f"/v1/records/{people['rahul']}", headers=api.headers("admin"))
    assert erased.status_code == 200, erased.text
    body = check(
        api,
        text="Forwarded to lee@globex.example and rahul.mehta@example.org.",
        customer_id=people["jane"],
    )
    assert body["verdict"] == "redact"
    assert {f["reason"] for f in body["findings"]} == {"pii"}


# ----------------------------------------------------------------- the customer's own data


def test_when_the_reply_repeats_the_customers_own_email_and_name_then_it_is_allowed(
    api: Api, people: dict[str, str]
) -> None:
    text = "Hi Jane, I have sent the label to jane.doe@example.com. Thanks, Jane Doe's agent"
    body = check(api, text=text, customer_id=people["jane"])
    assert body["verdict"] == "allow", body
    assert body["text"] == text
    own = {(f["entity_type"], f["action"]) for f in body["findings"] if f["reason"] == "own_data"}
    assert ("EMAIL_ADDRESS", "keep") in own
    assert ("PERSON", "keep") in own


def test_when_the_reply_holds_the_customers_phone_then_the_policy_masks_it(
    api: Api, people: dict[str, str]
) -> None:
    body = check(api, text="We will call you on 415-555-0100 today.", customer_id=people["jane"])
    assert body["verdict"] == "redact"
    assert "415-555-0100" not in body["text"]
    assert body["text"].endswith("0100 today.")
    (own,) = [f for f in body["findings"] if f["reason"] == "own_data"]
    assert (own["entity_type"], own["action"]) == ("PHONE_NUMBER", "mask")


def test_when_a_note_holds_the_customers_phone_then_the_note_policy_keeps_it(
    api: Api, people: dict[str, str]
) -> None:
    text = "Called back on 415-555-0100."
    body = check(api, text=text, channel="note", customer_id=people["jane"])
    assert body["verdict"] == "allow", body
    assert body["text"] == text


def test_when_two_customers_share_a_phone_then_the_conversation_customer_owns_it(
    api: Api, people: dict[str, str], customer: Callable[..., str]
) -> None:
    customer(full_name="John Doe", phone=JANE["phone"])  # a family line
    body = check(api, text="Call 415 555 0100.", channel="note", customer_id=people["jane"])
    assert body["verdict"] == "allow", body


def test_when_pii_matches_nobody_then_it_is_redacted_per_the_channel(
    api: Api, people: dict[str, str]
) -> None:
    body = check(
        api, text="Write to returns@shop-partner.com for a label.", customer_id=people["jane"]
    )
    assert body["verdict"] == "redact"
    assert body["text"] == "Write to <EMAIL_ADDRESS> for a label."
    assert [f["reason"] for f in body["findings"]] == ["pii"]


def test_when_the_reply_has_nothing_to_flag_then_it_is_allowed_unchanged(
    api: Api, people: dict[str, str]
) -> None:
    text = "Thanks for waiting. Your refund will arrive within 3 to 5 business days."
    body = check(api, text=text, customer_id=people["jane"])
    assert (body["verdict"], body["text"], body["findings"]) == ("allow", text, [])


# -------------------------------------------------------------------------------- secrets

SECRETS = [
    ("password", "Your password is Tr0ub4dor&3, please change it.", "PASSWORD"),
    ("pin", "Confirmed, your PIN is 4921.", "PIN"),
    ("api key", "Use this key: sk-proj-4f9c2a7be1d84c6aa0b3e5f7d9c1b2a4", "API_KEY"),
    ("security answer", "Your mother's maiden name is Fernsby.", "SECURITY_ANSWER"),
]


@pytest.mark.parametrize("channel", ["message", "note"])
@pytest.mark.parametrize(("case", "text", "entity_type"), SECRETS, ids=[c[0] for c in SECRETS])
def test_when_a_reply_holds_a_secret_then_it_is_blocked_in_both_channels(
    api: Api, people: dict[str, str], channel: str, case: str, text: str, entity_type: str
) -> None:
    body = check(api, text=text, channel=channel, customer_id=people["jane"])
    assert body["verdict"] == "block", case
    assert "text" not in body
    secrets = [f for f in body["findings"] if f["reason"] == "secret"]
    assert [f["entity_type"] for f in secrets] == [entity_type]


# ---------------------------------------------------------------------------------- audit


def test_when_a_message_is_blocked_then_the_audit_names_both_customers_by_keyed_hash(
    api: Api, people: dict[str, str]
) -> None:
    check(api, text="Also cc rahul.mehta@example.org.", customer_id=people["jane"])
    event = last_event(api)
    trail = api.services.audit
    assert event["customer"] == trail.customer_hash(people["jane"])
    details = event["details"]
    assert details["verdict"] == "block"
    assert details["other_customer_findings"] == 1
    assert details["foreign_records"] == 1
    assert details["foreign_customers"] == trail.customer_hash(people["rahul"])
    assert event["entity_counts"] == {"EMAIL_ADDRESS": 1}
    assert people["rahul"] not in str(event)
    assert "rahul" not in str(event).casefold()


def test_when_a_message_is_allowed_then_the_audit_has_its_verdict_and_counts(
    api: Api, people: dict[str, str]
) -> None:
    check(api, text="Sent to jane.doe@example.com.", customer_id=people["jane"])
    details = last_event(api)["details"]
    assert details["verdict"] == "allow"
    assert details["own_data_findings"] == 1
    assert "foreign_customers" not in details


# -------------------------------------------------------------------- bad input and failure


@pytest.mark.parametrize(
    "customer_id",
    ["00000000-0000-4000-8000-000000000000", "not-a-record-id", "'; DROP TABLE x; --"],
)
def test_when_the_customer_does_not_exist_then_404_is_audited_without_the_id(
    api: Api, customer_id: str
) -> None:
    response = api.client.post(
        CHECK, json={"text": "Hello", "customer_id": customer_id}, headers=api.headers("agent")
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert customer_id not in response.text
    event = last_event(api)
    assert (event["outcome"], event["details"]["reason"]) == ("failure", "not-found")
    assert event["customer"] == api.services.audit.customer_hash(customer_id)


def test_when_the_customer_is_another_tenants_then_the_answer_is_the_same_404(
    api: Api, people: dict[str, str]
) -> None:
    del people
    created = api.client.post(
        "/v1/records", json=RAHUL, headers=api.headers("other_tenant_supervisor")
    )
    foreign = created.json()["id"]
    unknown = str(uuid.uuid4())
    answers = []
    for customer_id in (foreign, unknown):
        response = api.client.post(
            CHECK, json={"text": "Hello", "customer_id": customer_id}, headers=api.headers("agent")
        )
        body = response.json()
        answers.append((response.status_code, body["type"], body["detail"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": ""}, 422, "text"),
        ({"text": "   \n "}, 422, "text"),
        ({"text": 42}, 422, "text"),
        ({"text": ["a"]}, 422, "text"),
        ({"text": "hi", "channel": "export"}, 422, "channel"),
        ({"text": "hi", "customer_id": 7}, 422, "customer_id"),
        ({"text": "hi", "extra": 1}, 422, "body.<key>"),
        ({}, 422, "text"),
    ],
)
def test_when_the_body_is_bad_then_the_problem_names_the_field(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    response = api.client.post(CHECK, json=body, headers=api.headers("agent"))
    assert response.status_code == status, response.text
    assert field in response.json()["detail"]


def test_when_the_text_is_over_the_limit_then_413_names_the_field(
    open_api: Any,
) -> None:
    with open_api(max_message_chars=100) as api:
        for body, field in (
            ({"text": "x" * 101}, "text"),
            ({"text": "hi", "customer_last_message": "y" * 101}, "customer_last_message"),
        ):
            response = api.client.post(CHECK, json=body, headers=api.headers("agent"))
            assert response.status_code == 413, response.text
            assert response.json()["detail"].startswith(field)


@pytest.mark.parametrize("with_customer", [True, False])
def test_when_the_lookup_cannot_run_then_the_check_fails_closed_with_503(
    api: Api, people: dict[str, str], with_customer: bool
) -> None:
    with api.services.engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE customer_records RENAME TO gone"))
    body: dict[str, Any] = {"text": "Sent to rahul.mehta@example.org."}
    if with_customer:
        body["customer_id"] = people["jane"]
    response = api.client.post(CHECK, json=body, headers=api.headers("agent"))
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "urn:guard:problem:lookup-unavailable"
    assert "verdict" not in response.text
    event = last_event(api)
    assert (event["outcome"], event["details"]["reason"]) == ("failure", "lookup-unavailable")


@pytest.mark.parametrize("role", ["analyst", "compliance_officer"])
def test_when_a_role_without_the_permission_checks_then_403(api: Api, role: str) -> None:
    response = api.client.post(CHECK, json={"text": "Hello"}, headers=api.headers(role))
    assert response.status_code == 403


def test_when_unauthenticated_then_401(api: Api) -> None:
    assert api.client.post(CHECK, json={"text": "Hello"}).status_code == 401


# ------------------------------------------------------------------------------------ tone


def test_when_the_reply_needs_tone_advice_then_it_is_advised_and_never_blocks(
    api: Api, people: dict[str, str]
) -> None:
    body = check(
        api,
        text="You should have read the instructions. We can't do anything about it!!!",
        customer_id=people["jane"],
        customer_last_message="This is the third time I'm asking and nobody helps. Ridiculous.",
    )
    assert body["verdict"] == "allow"
    categories = {f["category"] for f in body["advice"]["findings"]}
    assert {"blame", "negative_language", "shouting"} <= categories
    assert all(f["suggestion"] for f in body["advice"]["findings"])
    assert body["advice"]["readability"]["words"] > 0
