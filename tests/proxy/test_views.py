"""Role views of tool responses: pointer rules, wildcards, the batch scan of every other string."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from guard.access.principals import ROLES
from guard.crypto.keys import MasterKey, RedactionKeys
from guard.errors import GuardError, InvalidInputError
from guard.proxy.policy import (
    TOOLS_FILENAME,
    RoleView,
    ToolPolicy,
    load_tool_policy,
    parse_tool_policy,
)
from guard.proxy.views import MAX_DEPTH, apply_view

SHIPPED = Path(__file__).resolve().parents[2] / "policies" / TOOLS_FILENAME
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(r"\+?\d[\d ()-]{7,}\d")

CUSTOMER: dict[str, Any] = {
    "customer_id": "C1007",
    "name": "Alice Marchetti",
    "email": "alice@example.org",
    "phone": "+44 20 7946 0321",
    "postal_address": "14 Larkspur Lane, Bristol",
    "tier": "gold",
    "internal_notes": "Paid with 4111 1111 1111 1111; ask Roberto before refunds.",
    "orders": [
        {
            "order_id": "O1001",
            "placed_on": "2024-01-09",
            "status": "shipped",
            "total": 42.5,
            "card_last4": "1111",
            "items": [{"sku": "K-1", "name": "Kettle", "quantity": 1, "unit_price": 42.5}],
            "note": "Leave with neighbour, call +44 20 7946 0999 first.",
        },
        {
            "order_id": "O1002",
            "placed_on": "2024-02-01",
            "status": "refunded",
            "total": 10,
            "card_last4": "2222",
            "items": [],
            "note": None,
        },
    ],
}


class ScanRecorder:
    """Stands in for the lead's detection + redaction: emails and phones become tags."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[tuple[str, list[str]]]:
        self.calls.append(list(texts))
        results = []
        for text in texts:
            found: list[str] = []

            def tag(kind: str, found: list[str] = found) -> Any:
                def replace(_: re.Match[str]) -> str:
                    found.append(kind)
                    return f"<{kind}>"

                return replace

            redacted = EMAIL.sub(tag("EMAIL_ADDRESS"), text)
            redacted = PHONE.sub(tag("PHONE_NUMBER"), redacted)
            results.append((redacted, found))
        return results


@pytest.fixture(scope="module")
def policy() -> ToolPolicy:
    return load_tool_policy(SHIPPED, roles=ROLES, environ={})


@pytest.fixture(scope="module")
def keys() -> RedactionKeys:
    return RedactionKeys(MasterKey(bytes(range(7, 39))))


def view_of(policy: ToolPolicy, role: str, tool: str = "lookup_customer") -> RoleView:
    return policy.tools[tool].views[role]


def show(
    document: Any, view: RoleView, keys: RedactionKeys, tenant: str = "acme"
) -> tuple[Any, dict[str, int], ScanRecorder]:
    scan = ScanRecorder()
    shown, counts = apply_view(document, view, redact_strings=scan, tenant=tenant, keys=keys)
    return shown, dict(counts), scan


def test_when_an_agent_looks_up_a_customer_then_they_see_what_serving_needs(
    policy: ToolPolicy, keys: RedactionKeys
) -> None:
    original = copy.deepcopy(CUSTOMER)
    shown, counts, scan = show(CUSTOMER, view_of(policy, "agent"), keys)

    assert original == CUSTOMER  # the input is never modified
    assert shown["name"] == "Alice Marchetti"
    assert shown["email"] == "alice@example.org"
    assert shown["phone"] == "************0321"
    assert "internal_notes" not in shown
    assert [order["card_last4"] for order in shown["orders"]] == ["1111", "2222"]
    assert shown["orders"][0]["items"] == CUSTOMER["orders"][0]["items"]
    assert shown["orders"][0]["note"] == "Leave with neighbour, call <PHONE_NUMBER> first."
    assert shown["orders"][1]["note"] is None
    assert shown["orders"][0]["total"] == 42.5
    # one batch: exactly the strings no rule names (the order notes, not items or cards)
    assert scan.calls == [[CUSTOMER["orders"][0]["note"]]]
    assert counts == {"PHONE_NUMBER": 2, "drop": 1}


def test_when_a_supervisor_looks_up_then_more_is_clear_but_free_text_is_scanned(
    policy: ToolPolicy, keys: RedactionKeys
) -> None:
    shown, _, scan = show(CUSTOMER, view_of(policy, "supervisor"), keys)
    assert shown["phone"] == "+44 20 7946 0321"
    assert "internal_notes" in shown
    assert len(scan.calls) == 1
    assert set(scan.calls[0]) == {CUSTOMER["internal_notes"], CUSTOMER["orders"][0]["note"]}


def test_when_an_analyst_looks_up_then_identifiers_are_stable_pseudonyms(
    policy: ToolPolicy, keys: RedactionKeys
) -> None:
    view = view_of(policy, "analyst")
    shown, counts, scan = show(CUSTOMER, view, keys)
    again, _, _ = show(copy.deepcopy(CUSTOMER), view, keys)
    other_tenant, _, _ = show(CUSTOMER, view, keys, tenant="globex")

    assert re.fullmatch(r"<PERSON_[0-9a-f]{6}>", shown["name"])
    assert re.fullmatch(r"<EMAIL_ADDRESS_[0-9a-f]{6}>", shown["email"])
    assert re.fullmatch(r"<ORDER_ID_[0-9a-f]{6}>", shown["orders"][0]["order_id"])
    assert shown == again  # stable per tenant
    assert other_tenant["name"] != shown["name"]  # but not across tenants
    for dropped in ("phone", "postal_address", "internal_notes"):
        assert dropped not in shown
    assert all("card_last4" not in order and "note" not in order for order in shown["orders"])
    assert shown["tier"] == "gold"
    assert scan.calls == []  # every string is handled by a rule: no detection at all
    assert counts["PERSON"] == 1
    assert counts["ORDER_ID"] == 2
    assert "Alice" not in repr(shown)


def test_when_the_same_view_serves_list_orders_then_wildcards_follow_arrays(
    policy: ToolPolicy, keys: RedactionKeys
) -> None:
    document = {"customer_id": "C1007", "orders": CUSTOMER["orders"]}
    shown, _, _ = show(document, view_of(policy, "agent", "list_orders"), keys)
    assert [order["order_id"] for order in shown["orders"]] == ["O1001", "O1002"]


def make_view(fields: list[dict[str, Any]], **extra: Any) -> RoleView:
    data = {
        "version": 1,
        "upstreams": {"u": {"kind": "http", "default_base_url": "http://127.0.0.1:1"}},
        "tools": [
            {
                "name": "t",
                "description": "d",
                "input_schema": {"type": "object"},
                "upstream": {"name": "u", "method": "GET", "path": "/x"},
                "views": {"agent": {"fields": fields, **extra}},
            }
        ],
    }
    return parse_tool_policy(data, roles=ROLES, environ={}).tools["t"].views["agent"]


def test_when_rules_overlap_then_the_first_matching_rule_wins(keys: RedactionKeys) -> None:
    view = make_view(
        [
            {"pointer": "/orders/0/note", "action": "clear"},
            {"pointer": "/orders/*/note", "action": "redact", "params": {"entity": "NOTE"}},
        ]
    )
    shown, counts, _ = show({"orders": [{"note": "a"}, {"note": "b"}]}, view, keys)
    assert shown == {"orders": [{"note": "a"}, {"note": "<NOTE>"}]}
    assert counts == {"NOTE": 1}


def test_when_a_rule_names_a_container_then_it_covers_every_leaf(keys: RedactionKeys) -> None:
    view = make_view(
        [
            {"pointer": "/contact", "action": "mask", "params": {"chars_to_keep": 2}},
            {"pointer": "/contact/email", "action": "clear"},
            {"pointer": "/flags", "action": "redact"},
        ]
    )
    document = {"contact": {"email": "a@b.co", "ids": [12345, None]}, "flags": [True, 3.5]}
    shown, counts, _ = show(document, view, keys)
    assert shown == {
        "contact": {"email": "****co", "ids": ["***45", None]},
        "flags": ["<REDACTED>", "<REDACTED>"],
    }
    assert counts == {"mask": 2, "REDACTED": 2}


def test_when_drop_names_array_elements_then_they_are_removed(keys: RedactionKeys) -> None:
    view = make_view(
        [{"pointer": "/items/*/secret", "action": "drop"}, {"pointer": "/tags/1", "action": "drop"}]
    )
    document = {"items": [{"secret": "s", "k": 1}, {"k": 2}], "tags": [1, 2, 3]}
    shown, counts, _ = show(document, view, keys)
    assert shown == {"items": [{"k": 1}, {"k": 2}], "tags": [1, 3]}
    assert counts == {"drop": 2}


def test_when_other_strings_drop_then_unnamed_strings_become_null(keys: RedactionKeys) -> None:
    view = make_view([{"pointer": "/id", "action": "clear"}], other_strings="drop")
    shown, _, scan = show({"id": "C1", "bio": "Alice", "n": 3, "list": ["x", 4]}, view, keys)
    assert shown == {"id": "C1", "bio": None, "n": 3, "list": [None, 4]}
    assert scan.calls == []


def test_when_every_string_is_unnamed_then_one_batch_sees_them_all_in_place(
    keys: RedactionKeys,
) -> None:
    view = make_view([])
    document = {
        "a": "mail bob@example.org",
        "b": ["x", {"c": "call +1 555 010 9999"}],
        "email@example.org": 1,  # keys are kept, never scanned
    }
    shown, counts, scan = show(document, view, keys)
    assert len(scan.calls) == 1
    assert sorted(scan.calls[0]) == sorted(["mail bob@example.org", "x", "call +1 555 010 9999"])
    assert shown == {
        "a": "mail <EMAIL_ADDRESS>",
        "b": ["x", {"c": "call <PHONE_NUMBER>"}],
        "email@example.org": 1,
    }
    assert counts == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}


def test_when_the_document_is_a_bare_string_then_it_is_scanned(keys: RedactionKeys) -> None:
    shown, _, _ = show("write to bob@example.org", make_view([]), keys)
    assert shown == "write to <EMAIL_ADDRESS>"


def test_when_cleared_subtrees_are_returned_then_they_are_copies(keys: RedactionKeys) -> None:
    document = {"items": [{"k": 1}]}
    shown, _, _ = show(document, make_view([{"pointer": "/items", "action": "clear"}]), keys)
    shown["items"][0]["k"] = 99
    assert document == {"items": [{"k": 1}]}


def test_when_the_document_nests_too_deep_then_it_is_refused(keys: RedactionKeys) -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="nested deeper than 64"):
        show(deep, make_view([]), keys)
    with pytest.raises(InvalidInputError, match="nested deeper than 64"):
        show({"a": deep}, make_view([{"pointer": "/a", "action": "clear"}]), keys)


def test_when_the_document_holds_non_json_then_it_is_refused(keys: RedactionKeys) -> None:
    with pytest.raises(InvalidInputError, match="not JSON"):
        show({"a": object()}, make_view([]), keys)


def test_when_the_scan_returns_the_wrong_shape_then_nothing_is_returned(
    keys: RedactionKeys,
) -> None:
    with pytest.raises(GuardError, match="different number"):
        apply_view(
            {"a": "x", "b": "y"},
            make_view([]),
            redact_strings=lambda texts: [(texts[0], [])],
            tenant="acme",
            keys=keys,
        )
