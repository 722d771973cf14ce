"""The tool proxy's HTTP front door against the real demo CRM on loopback (SQLite and PostgreSQL).

guard authenticates, authorizes per tool (Casbin), validates arguments, counts budgets, forwards
with a credential the agent never holds, and shows each role only its view of the answer.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fixtures.api import Api, OpenApi
    from tests.fixtures.crm import Crm

MARIA = "C1001"


def call(api: Api, role: str, tool: str, **arguments: Any) -> Any:
    return api.client.post(
        f"/v1/tools/{tool}/call", json={"arguments": arguments}, headers=api.headers(role)
    )


def events(api: Api) -> list[dict[str, Any]]:
    return api.services.audit.search_events(action="tool.call")


# ------------------------------------------------------------------------------- listing


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (
            "agent",
            {
                "lookup_customer",
                "list_orders",
                "update_address",
                "send_email",
                "lookup_customer_mcp",
            },
        ),
        (
            "supervisor",
            {
                "lookup_customer",
                "list_orders",
                "update_address",
                "send_email",
                "lookup_customer_mcp",
                "issue_refund",
            },
        ),
        ("analyst", {"lookup_customer", "list_orders"}),
    ],
)
def test_when_a_role_lists_tools_then_it_sees_only_those_it_may_call(
    api: Api, role: str, expected: set[str]
) -> None:
    response = api.client.get("/v1/tools", headers=api.headers(role))
    assert response.status_code == 200, response.text
    tools = response.json()["tools"]
    assert {t["name"] for t in tools} == expected
    lookup = next((t for t in tools if t["name"] == "lookup_customer"), None)
    assert lookup is not None
    assert lookup["input_schema"]["required"] == ["customer_id"]


def test_when_a_compliance_officer_asks_for_tools_then_403(api: Api) -> None:
    assert api.client.get("/v1/tools", headers=api.headers("compliance_officer")).status_code == 403


# ------------------------------------------------------------------------------ role views


def test_when_an_agent_looks_up_a_customer_then_it_gets_the_agent_view(api: Api, crm: Crm) -> None:
    raw = crm.store.customer(MARIA)
    response = call(api, "agent", "lookup_customer", customer_id=MARIA)
    assert response.status_code == 200, response.text
    shown = response.json()["content"]
    assert shown["name"] == raw["name"]
    assert shown["email"] == raw["email"]
    assert shown["phone"] != raw["phone"]
    assert shown["phone"].endswith(raw["phone"][-4:])
    assert "internal_notes" not in shown
    text = json.dumps(shown)
    # the order note repeats the phone and email: free text is scanned and redacted
    notes = [o.get("note") for o in shown["orders"] if o.get("note")]
    assert notes
    assert all(raw["phone"] not in note and raw["email"] not in note for note in notes)
    assert "4111 1111 1111 1111" not in text


def test_when_an_analyst_looks_up_a_customer_then_identifiers_are_pseudonyms(
    api: Api, crm: Crm
) -> None:
    raw = crm.store.customer(MARIA)
    first = call(api, "analyst", "lookup_customer", customer_id=MARIA).json()["content"]
    again = call(api, "analyst", "lookup_customer", customer_id=MARIA).json()["content"]
    text = json.dumps(first)
    for value in (raw["name"], raw["email"], raw["phone"], MARIA):
        assert value not in text
    assert first["name"].startswith("<PERSON_")
    assert first["name"] == again["name"]  # stable: analysts can still count and join
    assert "phone" not in first


def test_when_a_supervisor_looks_up_a_customer_then_notes_are_scanned_not_dropped(
    api: Api, crm: Crm
) -> None:
    raw = crm.store.customer(MARIA)
    shown = call(api, "supervisor", "lookup_customer", customer_id=MARIA).json()["content"]
    assert shown["phone"] == raw["phone"]
    assert "internal_notes" in shown
    assert "4111 1111 1111 1111" not in shown["internal_notes"]


# ---------------------------------------------------------------------- refusals and audit


def test_when_an_agent_calls_a_tool_it_may_not_then_403_is_audited(api: Api) -> None:
    response = call(api, "agent", "issue_refund", order_id="O50001", amount=1, reason="damaged")
    assert response.status_code == 403
    event = events(api)[-1]
    assert (event["decision"], event["resource"], event["details"]["reason"]) == (
        "deny",
        "tool:issue_refund",
        "forbidden",
    )


def test_when_the_tool_is_unknown_then_404_without_the_name(api: Api) -> None:
    response = call(api, "agent", "maria_lopez_export")
    assert response.status_code == 404
    assert "maria" not in response.text
    assert events(api)[-1]["resource"] == "tool:unknown"


@pytest.mark.parametrize(
    "customer_id",
    ["../admin", "C1001/../../etc", "%2e%2e", "http://evil.example/C1001", "C1001\x00", "", 1001],
)
def test_when_an_argument_is_bad_then_422_names_it_without_its_value(
    api: Api, customer_id: object
) -> None:
    response = call(api, "agent", "lookup_customer", customer_id=customer_id)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "customer_id" in detail
    if isinstance(customer_id, str) and customer_id:
        assert customer_id not in response.text


def test_when_an_argument_is_not_in_the_schema_then_422(api: Api) -> None:
    response = call(api, "agent", "lookup_customer", customer_id=MARIA, host="evil.example")
    assert response.status_code == 422


def test_when_a_call_succeeds_then_the_audit_has_the_customers_keyed_hash(api: Api) -> None:
    assert call(api, "agent", "lookup_customer", customer_id=MARIA).status_code == 200
    event = events(api)[-1]
    assert event["decision"] == "allow"
    assert event["customer"] == api.services.audit.customer_hash(MARIA)
    assert event["details"]["upstream_status"] == 200
    assert "latency_ms" in event["details"]
    assert MARIA not in json.dumps(event)


def test_when_the_upstream_has_no_such_customer_then_404(api: Api) -> None:
    response = call(api, "agent", "lookup_customer", customer_id="C9999999")
    assert response.status_code == 404
    assert events(api)[-1]["outcome"] == "failure"


def test_when_an_email_carries_a_secret_then_the_call_is_refused(api: Api, crm: Crm) -> None:
    before = len(crm.store.emails("C1002"))
    response = call(
        api,
        "agent",
        "send_email",
        customer_id="C1002",
        subject="Your account",
        body="As requested, your password is Tr0ub4dor&3 - please change it.",
    )
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:guard:problem:argument-refused"
    assert "Tr0ub4dor" not in response.text
    assert len(crm.store.emails("C1002")) == before  # nothing reached the upstream
    fine = call(
        api,
        "agent",
        "send_email",
        customer_id="C1002",
        subject="Your order",
        body="Your replacement ships tomorrow; you will get a tracking link.",
    )
    assert fine.status_code == 200, fine.text
    assert fine.json()["content"]["queued"] is True


# ------------------------------------------------------------------ budgets and failures


def _policy_copy(api_settings_dir: Path, tmp_path: Path, edit: Any) -> Path:
    policies = tmp_path / "policies"
    shutil.copytree(api_settings_dir, policies)
    data = yaml.safe_load((policies / "tools.yaml").read_text(encoding="utf-8"))
    edit(data)
    (policies / "tools.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return policies


def test_when_an_agent_reads_more_distinct_customers_than_its_budget_then_429(
    open_api: OpenApi, tmp_path: Path, api: Api
) -> None:
    def tighten(data: dict[str, Any]) -> None:
        for spec in data["tools"]:
            if spec["name"] == "lookup_customer":
                spec["budget"] = {"calls": 100, "customers": 2, "window_seconds": 3600}

    policies = _policy_copy(api.settings.policies_dir, tmp_path, tighten)
    with open_api(policies_dir=policies) as tight:
        for customer_id in ("C1001", "C1002", "C1001", "C1002"):
            assert (
                call(tight, "agent", "lookup_customer", customer_id=customer_id).status_code == 200
            )
        refused = call(tight, "agent", "lookup_customer", customer_id="C1003")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "C1003" not in refused.text
        event = tight.services.audit.search_events(action="tool.call")[-1]
        assert (event["decision"], event["details"]["reason"]) == ("deny", "budget-exceeded")
        # another agent has its own budget
        assert call(tight, "supervisor", "lookup_customer", customer_id="C1003").status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "slug"),
    [
        ("/slow?seconds=3", 504, "upstream-timeout"),
        ("/big?bytes=300000", 502, "upstream-failed"),
        ("/not-json", 502, "upstream-failed"),
    ],
)
def test_when_the_upstream_fails_then_a_clear_problem_and_nothing_of_its_body(
    open_api: OpenApi, tmp_path: Path, api: Api, path: str, status: int, slug: str
) -> None:
    route, _, query = path.partition("?")

    def add_tool(data: dict[str, Any]) -> None:
        data["tools"].append(
            {
                "name": "knob",
                "description": "A failure-mode endpoint of the demo CRM.",
                "input_schema": {"type": "object", "properties": {}, "additionalProperties": True},
                "upstream": {"name": "crm", "method": "GET", "path": route},
                "timeout_seconds": 1,
                "max_response_bytes": 100000,
                "views": {"agent": {"fields": [], "other_strings": "scan", "channel": "message"}},
            }
        )

    policies = _policy_copy(api.settings.policies_dir, tmp_path, add_tool)
    (policies / "policy.csv").write_text(
        (policies / "policy.csv").read_text(encoding="utf-8") + "p, agent, *, tool:knob, call\n",
        encoding="utf-8",
    )
    arguments = dict(part.split("=") for part in query.split("&") if part)
    with open_api(policies_dir=policies) as app:
        response = call(app, "agent", "knob", **arguments)
        assert response.status_code == status, response.text
        assert response.json()["type"] == f"urn:guard:problem:{slug}"
        assert "knob" in response.json()["detail"]
        event = app.services.audit.search_events(action="tool.call")[-1]
        assert (event["outcome"], event["details"]["reason"]) == ("failure", slug)


def test_when_the_upstream_is_down_then_502(
    monkeypatch: pytest.MonkeyPatch, open_api: OpenApi
) -> None:
    # read when the app starts (policies/tools.yaml is loaded then)
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_URL", "http://127.0.0.1:9")  # discard port: refused
    with open_api() as app:
        response = call(app, "agent", "lookup_customer", customer_id=MARIA)
        assert response.status_code == 502
        assert response.json()["type"] == "urn:guard:problem:upstream-failed"


def test_when_tools_pass_through_the_proxy_then_no_raw_value_is_stored_or_logged(
    api: Api, crm: Crm, capfd: pytest.CaptureFixture[str]
) -> None:
    raw = crm.store.customer(MARIA)
    for role in ("agent", "supervisor", "analyst"):
        call(api, role, "lookup_customer", customer_id=MARIA)
        call(api, role, "list_orders", customer_id=MARIA)
    call(api, "agent", "lookup_customer", customer_id="C1001/../x")
    trail = json.dumps(api.services.audit.search_events())
    mirror = api.settings.audit_jsonl_path
    stored = trail + (mirror.read_text(encoding="utf-8") if mirror and mirror.exists() else "")
    logs = "".join(capfd.readouterr())
    for value in (raw["name"], raw["email"], raw["phone"], "4111 1111 1111 1111", MARIA):
        assert value not in stored
        assert value not in logs


def test_when_a_tool_is_granted_in_one_tenant_then_another_tenants_agent_is_refused(
    open_api: OpenApi, tmp_path: Path, api: Api
) -> None:
    policies = _policy_copy(api.settings.policies_dir, tmp_path, lambda _data: None)
    grants = (policies / "policy.csv").read_text(encoding="utf-8")
    narrowed = grants.replace(
        "p, agent, *, tool:list_orders, call", "p, agent, acme, tool:list_orders, call"
    )
    assert narrowed != grants
    (policies / "policy.csv").write_text(narrowed, encoding="utf-8")
    with open_api(policies_dir=policies) as app:
        _, globex = app.services.api_keys.create(name="globex-agent", role="agent", tenant="globex")
        headers = {"Authorization": f"Bearer {globex}"}
        listed = app.client.get("/v1/tools", headers=headers).json()["tools"]
        assert "list_orders" not in {t["name"] for t in listed}
        refused = app.client.post(
            "/v1/tools/list_orders/call",
            json={"arguments": {"customer_id": MARIA}},
            headers=headers,
        )
        assert refused.status_code == 403
        assert call(app, "agent", "list_orders", customer_id=MARIA).status_code == 200
        event = app.services.audit.search_events(action="tool.call", tenant="globex")[-1]
        assert (event["decision"], event["details"]["reason"]) == ("deny", "forbidden")
