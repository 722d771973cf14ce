"""The demo CRM over real HTTP and a real MCP client from the SDK, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from examples.crm.data import CUSTOMER_COUNT, CrmStore, seed_rows
from tests.fixtures.crm import Crm, serve_crm

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from mcp_types import CallToolResult

T = TypeVar("T")


@pytest.fixture
def client(crm: Crm) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=crm.url, headers=crm.headers(), timeout=10) as http:
        yield http


# --- data ---------------------------------------------------------------------------------


def test_when_seeded_twice_then_the_rows_are_the_same() -> None:
    assert seed_rows() == seed_rows()


def test_when_started_then_fifty_customers_from_c1001(crm: Crm) -> None:
    ids = crm.store.customer_ids()
    assert len(ids) == CUSTOMER_COUNT
    assert ids[0] == "C1001"
    assert ids[-1] == "C1050"


def test_when_started_again_on_the_same_file_then_it_is_not_seeded_twice(tmp_path: Path) -> None:
    store = CrmStore(tmp_path / "crm.sqlite3")
    store.initialize()
    store.update_address("C1001", "1 New Street")
    store.initialize()
    assert len(store.customer_ids()) == CUSTOMER_COUNT
    assert store.customer("C1001")["postal_address"] == "1 New Street"


def test_when_seeded_then_free_text_holds_the_pii_guard_must_find() -> None:
    customers, orders = seed_rows()
    colleagues = ("Priya Natarajan", "Tom Becker", "Aisha Okafor", "Lars Eriksen", "Mei Chen")
    notes = [row[6] for row in customers]
    assert all(any(name in note for name in colleagues) for note in notes)
    assert any("4111 1111 1111 1111" in note for note in notes)
    order_notes = [row[7] or "" for row in orders]
    assert any("@example." in note for note in order_notes)
    assert any("-555-01" in note for note in order_notes)


# --- HTTP ---------------------------------------------------------------------------------


def test_when_customer_is_looked_up_then_it_comes_with_its_orders(client: httpx.Client) -> None:
    response = client.get("/customers/C1001")
    assert response.status_code == 200
    customer = response.json()
    assert customer["name"] == "Maria Lopez"
    assert customer["email"] == "maria.lopez@example.com"
    assert "4111 1111 1111 1111" in customer["internal_notes"]
    assert set(customer) == {
        "customer_id",
        "name",
        "email",
        "phone",
        "postal_address",
        "tier",
        "internal_notes",
        "orders",
    }
    order = customer["orders"][0]
    assert set(order) == {
        "order_id",
        "placed_on",
        "status",
        "total",
        "card_last4",
        "items",
        "note",
    }
    assert order["total"] == pytest.approx(
        sum(item["quantity"] * item["unit_price"] for item in order["items"])
    )


def test_when_orders_are_listed_then_they_match_the_customer_document(
    client: httpx.Client,
) -> None:
    orders = client.get("/customers/C1007/orders")
    assert orders.status_code == 200
    assert orders.json() == {
        "customer_id": "C1007",
        "orders": client.get("/customers/C1007").json()["orders"],
    }


@pytest.mark.parametrize(
    "path", ["/customers/C9999", "/customers/C9999/orders", "/customers/nobody"]
)
def test_when_customer_is_unknown_then_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown customer"}


def test_when_address_is_updated_then_the_customer_shows_it(client: httpx.Client) -> None:
    response = client.post("/customers/C1010/address", json={"postal_address": "9 Quay Road"})
    assert response.status_code == 200
    assert response.json()["postal_address"] == "9 Quay Road"
    assert client.get("/customers/C1010").json()["postal_address"] == "9 Quay Road"
    unknown = client.post("/customers/C9999/address", json={"postal_address": "x"})
    assert unknown.status_code == 404
    assert client.post("/customers/C1010/address", json={}).status_code == 422


def test_when_refund_fits_the_order_then_approved_and_more_is_refused(
    client: httpx.Client,
) -> None:
    total = client.get("/customers/C1001").json()["orders"][0]["total"]
    first = client.post(
        "/refunds", json={"order_id": "O50001", "amount": 10.0, "reason": "late delivery"}
    )
    assert first.status_code == 200
    assert first.json() | {"refund_id": "-"} == {
        "refund_id": "-",
        "order_id": "O50001",
        "customer_id": "C1001",
        "amount": 10.0,
        "status": "approved",
    }
    too_much = client.post("/refunds", json={"order_id": "O50001", "amount": total, "reason": "x"})
    assert too_much.status_code == 422
    unknown = client.post("/refunds", json={"order_id": "O1", "amount": 1, "reason": "x"})
    assert unknown.status_code == 404
    negative = client.post("/refunds", json={"order_id": "O50001", "amount": -5, "reason": "x"})
    assert negative.status_code == 422


def test_when_email_is_sent_then_it_is_queued_and_recorded(client: httpx.Client, crm: Crm) -> None:
    response = client.post(
        "/emails", json={"customer_id": "C1020", "subject": "Your order", "body": "On its way."}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["queued"] is True
    assert body["id"].startswith("E")
    assert crm.store.emails("C1020")[-1]["subject"] == "Your order"
    unknown = client.post("/emails", json={"customer_id": "C9999", "subject": "s", "body": "b"})
    assert unknown.status_code == 404


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", "Bearer {token}x", "{token}"],
)
@pytest.mark.parametrize("path", ["/customers/C1001", "/slow?seconds=0", "/mcp"])
def test_when_token_is_missing_or_wrong_then_401(
    crm: Crm, authorization: str | None, path: str
) -> None:
    assert crm.token is not None
    headers = (
        {} if authorization is None else {"Authorization": authorization.format(token=crm.token)}
    )
    response = httpx.get(f"{crm.url}{path}", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert crm.token not in response.text


def test_when_scheme_is_lower_case_then_the_token_is_accepted(crm: Crm) -> None:
    headers = {"Authorization": f"bearer {crm.token}"}
    response = httpx.get(f"{crm.url}/customers/C1001", headers=headers, timeout=10)
    assert response.status_code == 200


def test_when_token_is_missing_then_health_still_answers(crm: Crm) -> None:
    response = httpx.get(f"{crm.url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_when_no_token_is_configured_then_requests_need_none(tmp_path: Path) -> None:
    with serve_crm(tmp_path / "crm.sqlite3", token=None) as open_crm:
        response = httpx.get(f"{open_crm.url}/customers/C1001", timeout=10)
    assert response.status_code == 200


# --- test knobs ---------------------------------------------------------------------------


def test_when_slow_is_asked_then_it_answers_late(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/slow", params={"seconds": 0.3})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        client.get("/slow", params={"seconds": 2}, timeout=0.2)


@pytest.mark.parametrize("size", [14, 1000, 300_000])
def test_when_big_is_asked_then_exactly_that_many_bytes_of_json(
    client: httpx.Client, size: int
) -> None:
    response = client.get("/big", params={"bytes": size})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert len(response.content) == size
    assert set(response.json()) == {"padding"}


def test_when_knobs_are_out_of_range_then_422(client: httpx.Client) -> None:
    assert client.get("/big", params={"bytes": 10**9}).status_code == 422
    assert client.get("/slow", params={"seconds": -1}).status_code == 422


def test_when_not_json_is_asked_then_plain_text(client: httpx.Client) -> None:
    response = client.get("/not-json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    with pytest.raises(json.JSONDecodeError):
        response.json()


# --- MCP ----------------------------------------------------------------------------------


def with_mcp_session(crm: Crm, action: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Open a real SDK client session to the CRM's /mcp, run ``action`` in it, close it."""

    async def run() -> T:
        async with (
            httpx2.AsyncClient(headers=crm.headers(), timeout=10) as http,
            streamable_http_client(crm.mcp_url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await action(session)

    return asyncio.run(run())


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content, after checking the text block carries the same JSON."""
    assert not result.is_error
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    [block] = result.content
    assert isinstance(block, TextContent)
    assert json.loads(block.text) == content
    return content


def test_when_mcp_tools_are_listed_then_the_three_tools_with_schemas(crm: Crm) -> None:
    async def list_tools(session: ClientSession) -> dict[str, dict[str, Any]]:
        listing = await session.list_tools()
        return {tool.name: tool.input_schema for tool in listing.tools}

    schemas = with_mcp_session(crm, list_tools)
    assert set(schemas) == {"lookup_customer", "list_orders", "send_email"}
    assert schemas["lookup_customer"]["required"] == ["customer_id"]
    assert set(schemas["send_email"]["required"]) == {"customer_id", "subject", "body"}


def test_when_mcp_tools_are_called_then_they_return_the_http_json(
    crm: Crm, client: httpx.Client
) -> None:
    async def call(session: ClientSession) -> list[CallToolResult]:
        return [
            await session.call_tool("lookup_customer", {"customer_id": "C1002"}),
            await session.call_tool("list_orders", {"customer_id": "C1002"}),
        ]

    customer, orders = with_mcp_session(crm, call)
    assert structured(customer) == client.get("/customers/C1002").json()
    assert structured(orders) == client.get("/customers/C1002/orders").json()


def test_when_mcp_send_email_is_called_then_it_is_queued(crm: Crm) -> None:
    async def call(session: ClientSession) -> CallToolResult:
        arguments = {"customer_id": "C1030", "subject": "Refund", "body": "Your refund is done."}
        return await session.call_tool("send_email", arguments)

    sent = structured(with_mcp_session(crm, call))
    assert sent["queued"] is True
    assert crm.store.emails("C1030")[-1]["body"] == "Your refund is done."


def test_when_mcp_customer_is_unknown_then_a_tool_error(crm: Crm) -> None:
    async def call(session: ClientSession) -> CallToolResult:
        return await session.call_tool("lookup_customer", {"customer_id": "C9999"})

    result = with_mcp_session(crm, call)
    assert result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    assert "unknown customer" in block.text


def test_when_mcp_client_has_no_token_then_it_cannot_connect(crm: Crm) -> None:
    async def connect() -> None:
        async with (
            httpx2.AsyncClient(timeout=10) as http,
            streamable_http_client(crm.mcp_url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()

    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK's wrapping of a 401 varies
        asyncio.run(connect())
