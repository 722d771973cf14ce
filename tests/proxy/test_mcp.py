"""The MCP front door end to end: a real SDK client against guard served by uvicorn on loopback,
guard calling the demo CRM (its HTTP endpoints and its MCP server) as the upstream.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import httpx2
import mcp_types
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from guard.api.app import create_app
from guard.proxy.cli import tools
from guard.proxy.mcp_upstream import PINS_FILENAME, read_pins, write_pins
from tests.fixtures.server import serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tests.fixtures.api import Api
    from tests.fixtures.crm import Crm

MARIA = "C1001"


@pytest.fixture
def guard_url(api: Api) -> Iterator[str]:
    """guard (the api fixture's services) served by uvicorn on a free loopback port."""
    with serving(create_app(services=api.services), lifespan="on", graceful=2) as url:
        yield f"{url}/mcp"


@asynccontextmanager
async def connected(url: str, key: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def list_names(url: str, key: str) -> set[str]:
    async def run() -> set[str]:
        async with connected(url, key) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    return anyio.run(run)


def call(url: str, key: str, tool: str, **arguments: Any) -> mcp_types.CallToolResult:
    async def run() -> mcp_types.CallToolResult:
        async with connected(url, key) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(run)


def text_of(result: mcp_types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, mcp_types.TextContent))


def pin(api: Api, *args: str) -> str:
    outcome = CliRunner().invoke(tools, ["pin", *args], obj=api.settings)
    assert outcome.exit_code == 0, outcome.output
    return outcome.output


# ------------------------------------------------------------------------------- listing


def test_when_an_agent_lists_tools_then_it_sees_the_agent_tools_with_schemas(
    api: Api, guard_url: str
) -> None:
    async def run() -> list[mcp_types.Tool]:
        async with connected(guard_url, api.keys["agent"]) as client:
            return (await client.list_tools()).tools

    listed = {tool.name: tool for tool in anyio.run(run)}
    assert set(listed) == {
        "lookup_customer",
        "list_orders",
        "update_address",
        "send_email",
        "lookup_customer_mcp",
    }
    assert listed["lookup_customer"].input_schema["required"] == ["customer_id"]
    assert api.services.audit.search_events(action="tools.list")


def test_when_an_analyst_lists_tools_then_it_sees_fewer(api: Api, guard_url: str) -> None:
    agent = list_names(guard_url, api.keys["agent"])
    analyst = list_names(guard_url, api.keys["analyst"])
    assert analyst == {"lookup_customer", "list_orders"}
    assert analyst < agent


@pytest.mark.usefixtures("api")
def test_when_no_credentials_then_401_before_any_mcp(guard_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    response = httpx.post(guard_url, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    wrong = httpx.post(guard_url, json=body, headers={**headers, "Authorization": "Bearer gk_x"})
    assert wrong.status_code == 401


def test_when_a_role_may_not_use_tools_then_403(api: Api, guard_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}
    response = httpx.post(
        guard_url,
        json=body,
        headers={
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {api.keys['compliance_officer']}",
        },
    )
    assert response.status_code == 403


def test_when_the_host_is_not_allowed_then_refused(api: Api, guard_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(
        guard_url,
        json=body,
        headers={
            "Host": "evil.example",
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {api.keys['agent']}",
        },
    )
    assert response.status_code in {400, 403, 421}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # nested past Python's JSON parser
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_customer",'
        b'"arguments":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}}",
        b"\xff\xfe not json",
    ],
    ids=["deep-array", "deep-arguments", "not-utf8"],
)
def test_when_the_body_is_hostile_then_a_clear_4xx_and_no_call(
    api: Api, guard_url: str, body: bytes
) -> None:
    response = httpx.post(
        guard_url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {api.keys['agent']}",
        },
    )
    assert 400 <= response.status_code < 500, response.text[:200]
    assert not api.services.audit.search_events(action="tool.call")


# ------------------------------------------------------------------------------- calling


def test_when_an_agent_calls_lookup_then_it_gets_the_agent_view(
    api: Api, guard_url: str, crm: Crm
) -> None:
    raw = crm.store.customer(MARIA)
    result = call(guard_url, api.keys["agent"], "lookup_customer", customer_id=MARIA)
    assert not result.is_error, text_of(result)
    document = result.structured_content
    assert document is not None
    assert document["name"] == raw["name"]
    assert document["phone"] != raw["phone"]
    assert document["phone"].endswith(raw["phone"][-4:])
    assert "internal_notes" not in document
    assert json.loads(text_of(result)) == document
    assert raw["internal_notes"] not in text_of(result)


def test_when_an_analyst_calls_lookup_then_it_gets_pseudonyms(
    api: Api, guard_url: str, crm: Crm
) -> None:
    raw = crm.store.customer(MARIA)
    result = call(guard_url, api.keys["analyst"], "lookup_customer", customer_id=MARIA)
    assert not result.is_error, text_of(result)
    document = result.structured_content
    assert document is not None
    assert raw["name"] not in json.dumps(document)
    assert raw["email"] not in json.dumps(document)


def test_when_a_tool_is_forbidden_then_a_tool_error_names_no_value(
    api: Api, guard_url: str
) -> None:
    result = call(
        guard_url,
        api.keys["analyst"],
        "send_email",
        customer_id=MARIA,
        subject="hello",
        body="secret body 4111 1111 1111 1111",
    )
    assert result.is_error
    assert "send_email" in text_of(result)
    assert "4111" not in text_of(result)
    assert "secret body" not in text_of(result)


def test_when_arguments_are_invalid_or_the_tool_unknown_then_tool_errors(
    api: Api, guard_url: str
) -> None:
    bad = call(guard_url, api.keys["agent"], "lookup_customer", customer_id="../admin")
    assert bad.is_error
    assert "../admin" not in text_of(bad)
    unknown = call(guard_url, api.keys["agent"], "drop_tables")
    assert unknown.is_error


# ------------------------------------------------------------------------------- pins


def test_an_mcp_backed_tool_works_once_pinned_and_is_refused_when_it_drifts(
    api: Api, guard_url: str, crm: Crm
) -> None:
    key = api.keys["agent"]
    unpinned = call(guard_url, key, "lookup_customer_mcp", customer_id=MARIA)
    assert unpinned.is_error
    assert "not pinned" in text_of(unpinned)

    output = pin(api)
    assert "lookup_customer_mcp" in output
    assert "new" in output
    pins = read_pins(api.settings.var_dir / PINS_FILENAME)
    assert pins["crm_mcp"]["lookup_customer"].startswith("sha256:")

    pinned = call(guard_url, key, "lookup_customer_mcp", customer_id=MARIA)
    assert not pinned.is_error, text_of(pinned)
    document = pinned.structured_content
    assert document is not None
    raw = crm.store.customer(MARIA)
    assert "internal_notes" not in document
    assert document["phone"] != raw["phone"]

    # the upstream's definition no longer matches the pin (as if its description had changed)
    write_pins(
        api.settings.var_dir / PINS_FILENAME, {"crm_mcp": {"lookup_customer": "sha256:" + "0" * 64}}
    )
    drifted = call(guard_url, key, "lookup_customer_mcp", customer_id=MARIA)
    assert drifted.is_error
    assert "changed since it was pinned" in text_of(drifted)
    refused = api.services.audit.search_events(action="tool.call")
    assert any(
        e["outcome"] == "failure" and e["details"].get("reason") == "tool-not-pinned"
        for e in refused
    )

    again = pin(api, "--tool", "lookup_customer_mcp")
    assert "changed" in again
    assert not call(guard_url, key, "lookup_customer_mcp", customer_id=MARIA).is_error
    assert api.services.audit.search_events(action="tools.pin")


def test_every_mcp_call_leaves_an_audit_event(api: Api, guard_url: str) -> None:
    before = len(api.services.audit.search_events(action="tool.call"))
    call(guard_url, api.keys["agent"], "lookup_customer", customer_id=MARIA)
    call(guard_url, api.keys["analyst"], "send_email", customer_id=MARIA, subject="s", body="b")
    call(guard_url, api.keys["agent"], "drop_tables")
    events = api.services.audit.search_events(action="tool.call")
    assert len(events) == before + 3
    assert {e["decision"] for e in events} >= {"allow", "deny"}
    assert {e["resource"] for e in events} >= {"tool:lookup_customer", "tool:send_email"}
