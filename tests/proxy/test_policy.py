"""policies/tools.yaml: the loader, its errors, argument validation and path rendering."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from guard.access.principals import ROLES
from guard.errors import InvalidInputError, PolicyError
from guard.proxy.policy import (
    TOOLS_FILENAME,
    Budget,
    HttpRoute,
    HttpUpstream,
    McpRoute,
    ToolSpec,
    customer_value,
    load_tool_policy,
    parse_tool_policy,
    render_path,
    validate_arguments,
)

SHIPPED = Path(__file__).resolve().parents[2] / "policies" / TOOLS_FILENAME

BASE: dict[str, Any] = {
    "version": 1,
    "upstreams": {
        "crm": {"kind": "http", "default_base_url": "http://127.0.0.1:8481"},
        "crm_mcp": {"kind": "mcp", "default_url": "http://127.0.0.1:8481/mcp"},
    },
    "tools": [
        {
            "name": "lookup_customer",
            "description": "Look up a customer.",
            "input_schema": {
                "type": "object",
                "properties": {"customer_id": {"type": "string", "pattern": "^C[0-9]{4}$"}},
                "required": ["customer_id"],
                "additionalProperties": False,
            },
            "upstream": {"name": "crm", "method": "GET", "path": "/customers/{customer_id}"},
            "customer_argument": "customer_id",
            "views": {
                "agent": {
                    "fields": [
                        {"pointer": "/name", "action": "clear"},
                        {"pointer": "/phone", "action": "mask", "params": {"chars_to_keep": 4}},
                        {"pointer": "/orders/*/card_last4", "action": "clear"},
                    ]
                }
            },
            "budget": {"calls": 10, "customers": 3, "window_seconds": 60},
        }
    ],
}


def parse(data: Any) -> Any:
    return parse_tool_policy(data, roles=ROLES, source="tools.yaml", environ={})


def broken(path: str, value: Any) -> dict[str, Any]:
    """BASE with the item at a dotted path (list indices as numbers) replaced, or removed."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is REMOVE:
        del node[key]
    else:
        node[key] = value
    return data


REMOVE = object()


def test_when_the_shipped_policy_is_loaded_then_every_tool_is_there() -> None:
    policy = load_tool_policy(SHIPPED, roles=ROLES, environ={})
    assert set(policy.tools) == {
        "lookup_customer",
        "list_orders",
        "update_address",
        "issue_refund",
        "send_email",
        "lookup_customer_mcp",
    }
    lookup = policy.tools["lookup_customer"]
    assert isinstance(lookup.upstream, HttpRoute)
    assert lookup.upstream.upstream.base_url == "http://127.0.0.1:8481"
    assert lookup.upstream.placeholders == ("customer_id",)
    assert lookup.budget == Budget(calls=120, customers=30, window_seconds=3600)
    assert set(lookup.views) == {"agent", "supervisor", "admin", "analyst"}
    assert policy.tools["send_email"].sends_data is True
    mcp = policy.tools["lookup_customer_mcp"].upstream
    assert isinstance(mcp, McpRoute)
    assert mcp.tool == "lookup_customer"
    assert mcp.upstream.url == "http://127.0.0.1:8481/mcp"
    assert "compliance_officer" not in {role for t in policy.tools.values() for role in t.views}


def test_when_the_url_env_is_set_then_it_wins_over_the_default() -> None:
    policy = load_tool_policy(
        SHIPPED,
        roles=ROLES,
        environ={"GUARD_UPSTREAM_CRM_URL": "http://10.0.0.5:9000/", "GUARD_UPSTREAM_CRM_TOKEN": ""},
    )
    assert policy.upstreams["crm"].base_url == "http://10.0.0.5:9000"  # type: ignore[union-attr]
    assert policy.upstreams["crm"].credential() is None


def test_when_a_credential_is_set_then_it_is_read_lazily_and_never_in_repr() -> None:
    environ: dict[str, str] = {}
    policy = load_tool_policy(SHIPPED, roles=ROLES, environ=environ)
    upstream = policy.upstreams["crm"]
    assert upstream.credential() is None
    environ["GUARD_UPSTREAM_CRM_TOKEN"] = "s3cret-token-value"
    assert upstream.credential() == "s3cret-token-value"
    assert "s3cret" not in repr(policy)
    assert "s3cret" not in repr(upstream)


def test_when_the_env_url_is_bad_then_load_fails_naming_the_upstream() -> None:
    with pytest.raises(PolicyError, match=r"upstreams\.crm: GUARD_UPSTREAM_CRM_URL: must be"):
        load_tool_policy(SHIPPED, roles=ROLES, environ={"GUARD_UPSTREAM_CRM_URL": "ftp://x"})


T0 = re.escape("tools[0] (tool 'lookup_customer')")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "tools.0.views.agent.fields.2.pointer",
            "orders/*/card_last4",
            rf"{T0}\.views\.agent\.fields\[2\]\.pointer: a pointer starts with '/'",
        ),
        (
            "tools.0.views.agent.fields.1.pointer",
            "/ph~2one",
            rf"{T0}\.views\.agent\.fields\[1\]\.pointer: '~' must be followed by 0 or 1",
        ),
        (
            "tools.0.views.agent.fields.0.action",
            "show",
            rf"{T0}\.views\.agent\.fields\[0\]\.action: Input should be",
        ),
        (
            "tools.0.views.agent.fields.1.params",
            {"chars_to_keep": 65},
            rf"{T0}\.views\.agent\.fields\[1\]: invalid params for 'mask': chars_to_keep",
        ),
        (
            "tools.0.views.agent.fields.1.params",
            {"chars_to_keep": -1},
            rf"{T0}\.views\.agent\.fields\[1\]: invalid params for 'mask'",
        ),
        (
            "tools.0.views.agent.fields.0.params",
            {"entity": "person"},
            rf"{T0}\.views\.agent\.fields\[0\]: 'clear' takes no params; not entity",
        ),
        (
            "tools.0.views.agent.fields.1",
            {"pointer": "/x", "action": "redact", "params": {"entity": "email"}},
            rf"{T0}\.views\.agent\.fields\[1\]: params\.entity must be an UPPER_SNAKE_CASE",
        ),
        (
            "tools.0.views.agent.fields.2",
            {"pointer": "/name", "action": "drop"},
            rf"{T0}\.views\.agent: pointer '/name' has more than one rule",
        ),
        (
            "tools.0.views.agent.channel",
            "sms",
            rf"{T0}\.views\.agent\.channel: Input should be",
        ),
        ("tools.0.views.auditor", {}, rf"{T0}\.views: unknown role\(s\) auditor"),
        ("tools.0.name", "Lookup-Customer", r"tools\[0\] \(tool 'Lookup-Customer'\)\.name"),
        ("tools.0.budget.calls", 0, rf"{T0}\.budget\.calls: Input should be greater than 0"),
        ("tools.0.budget.customers", -3, rf"{T0}\.budget\.customers: Input should be greater"),
        ("tools.0.budget.window_seconds", 0, rf"{T0}\.budget\.window_seconds: Input should be"),
        ("tools.0.timeout_seconds", 0, rf"{T0}\.timeout_seconds: Input should be greater"),
        ("tools.0.timeout_seconds", 61, rf"{T0}\.timeout_seconds: Input should be less"),
        (
            "tools.0.max_response_bytes",
            10 * 1024 * 1024 + 1,
            rf"{T0}\.max_response_bytes: Input should be less",
        ),
        (
            "tools.0.input_schema",
            {"type": "object", "properties": {"customer_id": {"type": "strin"}}},
            rf"{T0}\.input_schema: not a valid JSON Schema",
        ),
        (
            "tools.0.input_schema",
            {"type": "string"},
            rf"{T0}\.input_schema: must have type: object",
        ),
        (
            "tools.0.upstream.path",
            "/customers/{id}",
            rf"{T0}: upstream\.path: {{id}} is not an input_schema property",
        ),
        (
            "tools.0.upstream.path",
            "/customers/../{customer_id}",
            rf"{T0}\.upstream\.path: path must not contain '\.', '\.\.'",
        ),
        (
            "tools.0.upstream.path",
            "//evil.example/{customer_id}",
            rf"{T0}\.upstream\.path: path must start with a single '/'",
        ),
        (
            "tools.0.upstream.path",
            "/customers/{customer_id}?x=1",
            rf"{T0}\.upstream\.path: path must not contain '\?'",
        ),
        (
            "tools.0.upstream",
            {"name": "crm", "method": "GET"},
            rf"{T0}\.upstream: an HTTP route needs both method and path",
        ),
        (
            "tools.0.upstream",
            {"name": "crm", "tool": "lookup"},
            rf"{T0}\.upstream: an HTTP upstream needs method and path",
        ),
        (
            "tools.0.upstream",
            {"name": "crm_mcp", "method": "GET", "path": "/c/{customer_id}"},
            rf"{T0}\.upstream: an MCP upstream needs tool",
        ),
        (
            "tools.0.upstream.name",
            "billing",
            rf"{T0}\.upstream\.name: unknown upstream \(known: crm, crm_mcp\)",
        ),
        (
            "tools.0.customer_argument",
            "account",
            rf"{T0}: customer_argument: not an input_schema property",
        ),
        ("tools.0.input_schema.required", [], rf"{T0}: upstream\.path: {{customer_id}} must be"),
        (
            "tools.0.customer_argument",
            REMOVE,
            rf"{T0}: budget\.customers needs a customer_argument",
        ),
        ("tools.0.surprise", 1, rf"{T0}\.surprise: Extra inputs are not permitted"),
        ("upstreams.crm.default_base_url", "http://u:p@h", r"must not hold credentials"),
        ("upstreams.crm.credential_env", "crm-token", r"UPPER_SNAKE_CASE"),
        ("version", 2, r"version: Input should be 1"),
    ],
)
def test_when_the_policy_is_broken_then_load_fails_naming_tool_and_field(
    path: str, value: Any, expected: str
) -> None:
    with pytest.raises(PolicyError, match=expected) as info:
        parse(broken(path, value))
    assert str(info.value).startswith("tools.yaml: ")


def test_when_two_tools_share_a_name_then_load_fails() -> None:
    data = copy.deepcopy(BASE)
    data["tools"].append(copy.deepcopy(data["tools"][0]))
    with pytest.raises(PolicyError, match=r"tools\[1\] \(tool 'lookup_customer'\)\.name: another"):
        parse(data)


def test_when_the_file_is_not_yaml_then_load_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("tools: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_tool_policy(path, roles=ROLES)


def test_when_roles_are_restricted_then_views_for_other_roles_are_refused() -> None:
    with pytest.raises(PolicyError, match=r"unknown role\(s\) agent"):
        parse_tool_policy(BASE, roles=("supervisor",), environ={})


# --- arguments --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> ToolSpec:
    policy = load_tool_policy(SHIPPED, roles=ROLES, environ={})
    return policy.tools["update_address"]


def test_when_arguments_are_valid_then_nothing_is_raised(spec: ToolSpec) -> None:
    arguments = {"customer_id": "C1001", "postal_address": "1 Main St"}
    validate_arguments(spec, arguments)
    assert customer_value(spec, arguments) == "C1001"


SECRET = "alice.secret@example.org"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"customer_id": SECRET, "postal_address": "x"},
            "arguments.customer_id: does not match the required pattern",
        ),
        ({"customer_id": "C1001"}, "arguments: missing required argument(s): postal_address"),
        (
            {"customer_id": "C1001", "postal_address": "x", "note": SECRET},
            "arguments: unexpected argument(s): note",
        ),
        (
            {"customer_id": "C1001", "postal_address": "x", SECRET: 1},
            "arguments: unexpected argument(s): 1 member(s)",
        ),
        (
            {"customer_id": ["C1001", SECRET], "postal_address": "x"},
            "arguments.customer_id: must be of type string",
        ),
        (
            {"customer_id": "C1001", "postal_address": SECRET * 30},
            "arguments.postal_address: is too long",
        ),
        ([SECRET], "arguments: must be a JSON object"),
    ],
)
def test_when_arguments_are_invalid_then_the_error_names_the_argument_never_the_value(
    spec: ToolSpec, arguments: Any, expected: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_arguments(spec, arguments)
    assert expected in str(info.value)
    assert "alice" not in str(info.value)
    assert info.value.status_code == 422


# --- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("..", "'.' or '..'"),
        (".", "'.' or '..'"),
        ("../x", "must not contain '/'"),
        ("a/b", "must not contain '/'"),
        ("%2f", "'%'"),
        ("..%2f..%2fadmin", "'%'"),
        ("a\\b", "'\\'"),
        ("http://evil.example", "must not contain '/'"),
        ("http:evil", "must not start with a URL scheme"),
        ("javascript:x", "must not start with a URL scheme"),
        ("evil.example:80", "must not start with a URL scheme"),
        ("\x00", "control characters"),
        ("C1001\r\nHost: evil", "control characters"),
        ("", "must not be empty"),
        (True, "must be a string or an integer"),
        (None, "must be a string or an integer"),
        ({"a": 1}, "must be a string or an integer"),
        ("x" * 1025, "longer than"),
    ],
)
def test_when_a_path_value_could_escape_then_it_is_refused_naming_the_argument(
    value: Any, reason: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        render_path("/customers/{customer_id}/orders", {"customer_id": value})
    message = str(info.value)
    assert message.startswith("arguments.customer_id: ")
    assert reason in message
    assert "evil" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C1001", "/customers/C1001/orders"),
        (1001, "/customers/1001/orders"),
        ("Jane Doe", "/customers/Jane%20Doe/orders"),
        ("a?b#c", "/customers/a%3Fb%23c/orders"),
        ("...", "/customers/.../orders"),
        ("é", "/customers/%C3%A9/orders"),
        ("12:30", "/customers/12%3A30/orders"),
    ],
)
def test_when_a_path_value_is_safe_then_it_is_one_encoded_segment(
    value: Any, expected: str
) -> None:
    assert render_path("/customers/{customer_id}/orders", {"customer_id": value}) == expected


def test_when_a_placeholder_argument_is_missing_then_it_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"arguments\.customer_id: required"):
        render_path("/customers/{customer_id}", {})


def test_when_joined_to_the_base_url_then_the_host_never_changes() -> None:
    upstream = HttpUpstream("crm", "http://127.0.0.1:8481")
    import httpx  # noqa: PLC0415 - only this test joins URLs the way the proxy does

    for value in ["C1", "@evil.example", "#x", "?y", "~root"]:
        url = upstream.base_url + render_path("/customers/{customer_id}", {"customer_id": value})
        assert httpx.URL(url).host == "127.0.0.1"
        assert httpx.URL(url).path.startswith("/customers/")


def test_when_the_shipped_yaml_is_valid_yaml_then_x_keys_hold_only_anchors() -> None:
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert {key for key in data if key.startswith("x-")} == {"x-views", "x-schemas"}
