"""guard keeps one MCP session open per upstream between calls, and recovers when it breaks.

Real parts: the demo CRM's MCP server (the official SDK) on loopback, the MCP client guard uses
in production (``McpToolClient``), the shipped policies/tools.yaml and a real pins file.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest

from guard.access.principals import ROLES
from guard.proxy.errors import UpstreamError
from guard.proxy.mcp_upstream import McpToolClient, write_pins
from guard.proxy.policy import TOOLS_FILENAME, McpRoute, ToolSpec, load_tool_policy
from tests.fixtures.crm import Crm, serve_crm

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings

MARIA = "C1001"


def _spec(settings: Settings) -> ToolSpec:
    policy = load_tool_policy(settings.policies_dir / TOOLS_FILENAME, roles=ROLES)
    return policy.tools["lookup_customer_mcp"]


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[McpToolClient]:
    """A client whose pins file pins the CRM's tools as they are now."""
    pins = tmp_path / "tool-pins.json"
    client = McpToolClient(pins_path=pins)
    route = _spec(settings).upstream
    assert isinstance(route, McpRoute)
    listed = client.list_upstream_tools(route.upstream)
    write_pins(pins, {route.upstream.name: {name: t.digest for name, t in listed.items()}})
    yield client
    client.close()


def _open_sessions(client: McpToolClient) -> list[object]:
    loop = client._loop  # the sessions are what this module tests
    return [] if loop is None else list(loop._sessions.values())


def test_when_tools_are_called_twice_then_one_session_serves_both(
    client: McpToolClient, settings: Settings, crm: Crm
) -> None:
    spec = _spec(settings)
    first = client.call(spec, {"customer_id": MARIA})
    second = client.call(spec, {"customer_id": "C1002"})
    assert first["customer_id"] == MARIA
    assert second["customer_id"] == "C1002"
    assert first["email"] == crm.store.customer(MARIA)["email"]
    sessions = _open_sessions(client)
    assert len(sessions) == 1
    assert sessions[0].calls == 2  # type: ignore[attr-defined]


def test_when_the_upstream_restarts_between_calls_then_the_next_call_reopens_and_succeeds(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = secrets.token_urlsafe(16)
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_TOKEN", token)
    database = tmp_path / "crm.sqlite3"
    with serve_crm(database, token=token) as running:
        port = int(running.url.rsplit(":", 1)[1])
        monkeypatch.setenv("GUARD_UPSTREAM_CRM_MCP_URL", running.mcp_url)
        spec = _spec(settings)
        pins = tmp_path / "pins.json"
        client = McpToolClient(pins_path=pins)
        route = spec.upstream
        assert isinstance(route, McpRoute)
        listed = client.list_upstream_tools(route.upstream)
        write_pins(pins, {route.upstream.name: {n: t.digest for n, t in listed.items()}})
        try:
            assert client.call(spec, {"customer_id": MARIA})["customer_id"] == MARIA
            assert len(_open_sessions(client)) == 1
        except BaseException:
            client.close()
            raise
    try:
        # the same address, a new server: the kept connection is gone (a stateful upstream
        # would also have forgotten the session); the call still goes through, on one session
        with serve_crm(database, token=token, port=port):
            assert client.call(spec, {"customer_id": MARIA})["customer_id"] == MARIA
            assert len(_open_sessions(client)) == 1
    finally:
        client.close()


def test_when_the_upstream_is_down_then_the_call_fails_and_no_session_is_kept(
    client: McpToolClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_MCP_URL", "http://127.0.0.1:9/mcp")  # discard port
    spec = _spec(settings)
    with pytest.raises(UpstreamError) as caught:
        client.call(spec, {"customer_id": MARIA})
    assert "lookup_customer_mcp" in str(caught.value)
    assert MARIA not in str(caught.value)
    assert _open_sessions(client) == []


def test_when_the_upstream_credential_changes_then_the_next_call_uses_a_new_session(
    client: McpToolClient, settings: Settings, crm: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(settings)
    assert client.call(spec, {"customer_id": MARIA})["customer_id"] == MARIA
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_TOKEN", "a-rotated-token-the-crm-refuses")
    # the open session still carries the old credential and would have answered: the refusal
    # shows the call went out on a new session with the new one
    with pytest.raises(UpstreamError) as caught:
        client.call(spec, {"customer_id": MARIA})
    assert "a-rotated-token" not in str(caught.value)
    monkeypatch.setenv("GUARD_UPSTREAM_CRM_TOKEN", crm.token or "")
    assert client.call(spec, {"customer_id": MARIA})["customer_id"] == MARIA


def test_when_the_client_is_closed_then_a_later_call_opens_a_new_session(
    client: McpToolClient, settings: Settings
) -> None:
    spec = _spec(settings)
    client.call(spec, {"customer_id": MARIA})
    client.close()
    assert _open_sessions(client) == []
    assert client.call(spec, {"customer_id": MARIA})["customer_id"] == MARIA
    assert len(_open_sessions(client)) == 1
