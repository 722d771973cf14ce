"""The demo CRM's web app: HTTP/JSON endpoints and an MCP server at ``/mcp``, one FastAPI app.

Both doors call the same :class:`~examples.crm.data.CrmStore` and return the same JSON
documents; the MCP tools return them as structured content (``structuredContent``), with the
same document serialised in a JSON text block for clients that read only text.

When a token is configured (``CRM_TOKEN`` for ``python -m examples.crm``), every request but
``GET /healthz`` must carry ``Authorization: Bearer <token>``, the MCP endpoint included. guard
holds that token and injects it; the agents it serves never see it.

``/slow``, ``/big`` and ``/not-json`` are test knobs for guard's failure-mode tests: an upstream
that is slow, answers too much, or answers something that is not JSON.
"""

from __future__ import annotations

import asyncio
import hmac
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field
from starlette.datastructures import Headers

from examples.crm.data import (
    CrmStore,
    RefundRejectedError,
    UnknownCustomerError,
    UnknownOrderError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from starlette.types import ASGIApp, Receive, Scope, Send

#: Upper bounds for the test knobs, so a typo cannot hang or exhaust the demo service.
MAX_SLOW_SECONDS = 120.0
MAX_BIG_BYTES = 64 * 1024 * 1024


class AddressUpdate(BaseModel):
    """Body of ``POST /customers/{customer_id}/address``."""

    postal_address: str = Field(min_length=1, max_length=500)


class RefundCreate(BaseModel):
    """Body of ``POST /refunds``."""

    order_id: str = Field(min_length=1, max_length=64)
    amount: float = Field(gt=0)
    reason: str = Field(min_length=1, max_length=2000)


class EmailCreate(BaseModel):
    """Body of ``POST /emails``."""

    customer_id: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1, max_length=20000)


class BearerTokenMiddleware:
    """Refuses (401) every request but the health check that lacks the bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 401 here, or pass the request on."""
        if scope["type"] == "http" and scope["path"] != "/healthz":
            scheme, _, presented = Headers(scope=scope).get("authorization", "").partition(" ")
            # The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.encode(), self._token
            ):
                response = JSONResponse(
                    {"detail": "missing or invalid bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


def create_app(db_path: Path, *, token: str | None = None, host: str = "127.0.0.1") -> FastAPI:
    """The CRM app on the SQLite file ``db_path`` (created and seeded on first start).

    ``token``: the bearer token every request must carry (``None``: no check). ``host``: the
    address it is served on; on loopback the MCP endpoint also refuses requests whose ``Host``
    or ``Origin`` is not loopback (the SDK's DNS-rebinding protection).
    """
    store = CrmStore(db_path)
    mcp_server = build_mcp_server(store)
    # Built before the lifespan runs: building it creates the session manager the lifespan runs.
    mcp_app = mcp_server.streamable_http_app(streamable_http_path="/mcp", host=host)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.initialize()
        async with mcp_server.session_manager.run():
            yield

    app = FastAPI(title="Demo CRM", version="1.0", lifespan=lifespan)
    if token is not None:
        app.add_middleware(BearerTokenMiddleware, token=token)
    _add_routes(app, store)
    # Last, so the routes above take precedence: the MCP app answers only /mcp.
    app.mount("/", mcp_app)
    return app


def _add_routes(app: FastAPI, store: CrmStore) -> None:  # noqa: C901 - one small handler per route
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/customers/{customer_id}")
    def get_customer(customer_id: str) -> dict[str, Any]:
        try:
            return store.customer(customer_id)
        except UnknownCustomerError:
            raise _unknown_customer() from None

    @app.get("/customers/{customer_id}/orders")
    def list_orders(customer_id: str) -> dict[str, Any]:
        try:
            return store.orders(customer_id)
        except UnknownCustomerError:
            raise _unknown_customer() from None

    @app.post("/customers/{customer_id}/address")
    def update_address(customer_id: str, update: AddressUpdate) -> dict[str, Any]:
        try:
            return store.update_address(customer_id, update.postal_address)
        except UnknownCustomerError:
            raise _unknown_customer() from None

    @app.post("/refunds")
    def create_refund(refund: RefundCreate) -> dict[str, Any]:
        try:
            return store.refund(refund.order_id, refund.amount, refund.reason)
        except UnknownOrderError:
            raise HTTPException(status_code=404, detail="unknown order") from None
        except RefundRejectedError:
            raise HTTPException(
                status_code=422, detail="amount exceeds what is left of the order total"
            ) from None

    @app.post("/emails")
    def queue_email(email: EmailCreate) -> dict[str, Any]:
        try:
            return store.queue_email(email.customer_id, email.subject, email.body)
        except UnknownCustomerError:
            raise _unknown_customer() from None

    @app.get("/slow")
    async def slow(
        seconds: Annotated[float, Query(ge=0, le=MAX_SLOW_SECONDS)] = 1.0,
    ) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/big")
    def big(bytes_: Annotated[int, Query(alias="bytes", ge=0, le=MAX_BIG_BYTES)]) -> Response:
        return Response(content=big_document(bytes_), media_type="application/json")

    @app.get("/not-json")
    def not_json() -> PlainTextResponse:
        return PlainTextResponse("this is not JSON\n")


def _unknown_customer() -> HTTPException:
    return HTTPException(status_code=404, detail="unknown customer")


def big_document(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least the 14 of ``{"padding":""}``)."""
    empty = b'{"padding":""}'
    return b'{"padding":"' + b"x" * max(0, size - len(empty)) + b'"}'


def build_mcp_server(store: CrmStore) -> MCPServer:
    """The MCP server: the read tools and ``send_email``, returning the HTTP endpoints' JSON."""
    server: MCPServer = MCPServer(
        "demo-crm",
        instructions="A demo customer system: look up customers, list orders, email customers.",
    )

    @server.tool()
    def lookup_customer(customer_id: str) -> dict[str, Any]:
        """Look up a customer by id: contact details, tier, internal notes and orders."""
        try:
            return store.customer(customer_id)
        except UnknownCustomerError:
            raise ToolError("unknown customer") from None

    @server.tool()
    def list_orders(customer_id: str) -> dict[str, Any]:
        """List a customer's orders: status, total, card last four, items and delivery note."""
        try:
            return store.orders(customer_id)
        except UnknownCustomerError:
            raise ToolError("unknown customer") from None

    @server.tool()
    def send_email(customer_id: str, subject: str, body: str) -> dict[str, Any]:
        """Queue an email to a customer; answers its id."""
        try:
            return store.queue_email(customer_id, subject, body)
        except UnknownCustomerError:
            raise ToolError("unknown customer") from None

    return server
