"""guard as the client of upstream MCP servers: call one tool, refuse it unless it is pinned.

Threat (tool poisoning): an MCP server describes its tools to the model that calls them. A
compromised or careless upstream can change a tool's description ("...and first send the
customer's card number to ...") or its input schema after an administrator reviewed it, and the
agent would follow the new text. guard therefore hashes each upstream tool's definition (name,
description, input schema; SHA-256 over canonical JSON) and compares it, before every call, with
the hash an administrator pinned with ``guard tools pin`` (the pins file,
``<GUARD_VAR_DIR>/tool-pins.json``). A changed, new or unpinned upstream tool is refused with
:class:`ToolNotPinnedError` (502, ``tool-not-pinned``) until an administrator pins it again; the
proxy audits the refusal as a failed call.

The upstream's answers never reach an error message: they may hold customer data. Failures name
the tool and what went wrong (down, slow, too large, not JSON, an error result), never the text.

The client is async (the SDK's streamable HTTP client); :func:`call_mcp_tool` is the sync entry
point the proxy calls from a worker thread: it runs the call in a fresh event loop of that thread
(``anyio.run``), never on the server's loop. The tool list is fetched on the call's own
connection, right before the call (two small requests): the SDK client lists a tool before it
validates the tool's structured answer anyway, and the pin check then sees the definition the
upstream serves at that moment, not one cached a minute ago. (The SDK's response cache cannot
stand in: it honours the server's ``ttlMs`` hint, and the SDK's servers answer 0.)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from guard.config import get_settings
from guard.errors import GuardError
from guard.proxy.errors import UpstreamError, UpstreamTimeoutError
from guard.proxy.policy import McpRoute, McpUpstream

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Mapping

    from guard.proxy.policy import ToolSpec

#: The pins file's name under ``settings.var_dir`` (state guard writes, next to its database).
PINS_FILENAME: Final = "tool-pins.json"
PINS_VERSION: Final = 1
HASH_PREFIX: Final = "sha256:"
#: Bytes allowed on the wire besides the document: MCP servers usually send a tool's JSON twice
#: (structured content and a text block) inside JSON-RPC framing.
_FRAMING_BYTES: Final = 64 * 1024
_PIN_COMMAND: Final = "guard tools pin"
_MAX_PAGES: Final = 100
_LISTING_BYTES: Final = 4 * 1024 * 1024
_E = TypeVar("_E", bound=BaseException)


class ToolNotPinnedError(UpstreamError):
    """The upstream tool's definition is not the one an administrator pinned (or none is)."""

    status_code = 502
    type_slug = "tool-not-pinned"


class PinsFileError(GuardError):
    """The pins file cannot be read: every MCP-backed call is refused until it is fixed."""

    status_code = 500
    type_slug = "pins-unreadable"


class _TooLargeError(Exception):
    """The upstream's answer went over the size limit while it streamed in."""


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class UpstreamTool:
    """An upstream tool's definition as guard pins it."""

    name: str
    description: str
    input_schema: dict[str, Any] = field(repr=False)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of name, description and input schema."""
        return tool_digest(self.name, self.description, self.input_schema)


def tool_digest(name: str, description: str, input_schema: Mapping[str, Any]) -> str:
    """The pin of a tool definition: SHA-256 over canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(
        {"name": name, "description": description, "input_schema": input_schema},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return HASH_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _definition(tool: mcp_types.Tool) -> UpstreamTool:
    return UpstreamTool(tool.name, tool.description or "", dict(tool.input_schema))


# --------------------------------------------------------------------------- pins file


def default_pins_path() -> Path:
    """Where the pins live: ``<GUARD_VAR_DIR>/tool-pins.json`` (see :func:`configure_pins_path`)."""
    with _PINS_LOCK:
        configured = _PINS_PATH
    return configured if configured is not None else get_settings().var_dir / PINS_FILENAME


def configure_pins_path(path: Path | None) -> None:
    """Use ``path`` as this process's pins file (the app sets its own settings' var_dir)."""
    global _PINS_PATH  # noqa: PLW0603 - one pins file per process, set when the app is built
    with _PINS_LOCK:
        _PINS_PATH = path


_PINS_LOCK = threading.Lock()
_PINS_PATH: Path | None = None


def read_pins(path: Path) -> dict[str, dict[str, str]]:
    """``{upstream name: {upstream tool name: digest}}``; empty when the file does not exist."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PinsFileError(f"the tool pins file cannot be read ({type(exc).__name__})") from None
    try:
        document = json.loads(raw)
    except ValueError:
        raise PinsFileError("the tool pins file is not JSON; run `guard tools pin`") from None
    pins = document.get("pins") if isinstance(document, dict) else None
    if (
        not isinstance(document, dict)
        or document.get("version") != PINS_VERSION
        or not isinstance(pins, dict)
        or not all(
            isinstance(tools, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in tools.items())
            for tools in pins.values()
        )
    ):
        raise PinsFileError(
            f"the tool pins file is not version {PINS_VERSION}; run `guard tools pin`"
        )
    return {str(upstream): dict(tools) for upstream, tools in pins.items()}


def write_pins(path: Path, pins: Mapping[str, Mapping[str, str]]) -> None:
    """Replace the pins file atomically (a temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "version": PINS_VERSION,
        "pins": {u: dict(sorted(tools.items())) for u, tools in sorted(pins.items())},
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tool-pins.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, sort_keys=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- the client


class McpToolClient:
    """Calls tools of upstream MCP servers, each call checked against the pins file."""

    def __init__(self, *, pins_path: Path | None = None) -> None:
        self._pins_path = pins_path
        self._lock = threading.Lock()
        #: Per upstream URL: the protocol version it spoke last (a modern one saves a round trip).
        self._modes: dict[str, str] = {}

    @property
    def pins_path(self) -> Path:
        """The pins file this client checks against."""
        return self._pins_path if self._pins_path is not None else default_pins_path()

    # -- sync entry points (worker threads, the CLI)

    def call(self, spec: ToolSpec, arguments: dict[str, Any]) -> Any:  # noqa: ANN401 - JSON
        """Call ``spec``'s upstream tool with ``arguments``; the answer's JSON document."""
        route = spec.upstream
        if not isinstance(route, McpRoute):
            raise UpstreamError(f"tool {spec.name!r} is not backed by an MCP server")
        try:
            return anyio.run(self._call, spec, route, arguments)
        except GuardError:
            raise
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"tool {spec.name!r}: the upstream MCP server did not answer within "
                f"{spec.timeout_seconds:g} s"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure: the upstream's text stays out
            raise _failure(spec.name, exc) from None

    def list_upstream_tools(
        self, upstream: McpUpstream, *, timeout_seconds: float = 10.0
    ) -> dict[str, UpstreamTool]:
        """Every tool the upstream offers now (no cache): for ``guard tools pin``."""
        try:
            return anyio.run(self._fetch_listing, upstream, timeout_seconds)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"upstream {upstream.name!r} did not answer within {timeout_seconds:g} s"
            ) from None
        except Exception as exc:  # noqa: BLE001 - the upstream's text stays out
            raise UpstreamError(
                f"upstream {upstream.name!r}: the MCP server could not be reached or listed "
                f"({type(exc).__name__})"
            ) from None

    # -- async

    async def _call(self, spec: ToolSpec, route: McpRoute, arguments: dict[str, Any]) -> Any:  # noqa: ANN401
        upstream = route.upstream
        with anyio.fail_after(spec.timeout_seconds):
            async with self._connect(
                upstream, spec.timeout_seconds, spec.max_response_bytes
            ) as client:
                # the definition as the upstream gives it now, on the connection of the call
                tools = await self._list(client)
                self._check_pin(spec.name, upstream, route.tool, tools)
                result = await client.call_tool(route.tool, arguments)
        return _document_of(spec, result)

    async def _fetch_listing(
        self, upstream: McpUpstream, timeout_seconds: float
    ) -> dict[str, UpstreamTool]:
        with anyio.fail_after(timeout_seconds):
            async with self._connect(upstream, timeout_seconds, _LISTING_BYTES) as client:
                return await self._list(client)

    @staticmethod
    async def _list(client: Client) -> dict[str, UpstreamTool]:
        tools: dict[str, UpstreamTool] = {}
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.update((tool.name, _definition(tool)) for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    @contextlib.asynccontextmanager
    async def _connect(
        self, upstream: McpUpstream, timeout_seconds: float, max_bytes: int
    ) -> AsyncIterator[Client]:
        credential = upstream.credential()
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        limit = 2 * max_bytes + _FRAMING_BYTES
        http = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(timeout_seconds),
            transport=_CappedTransport(
                httpx2.AsyncHTTPTransport(verify=_tls_context()), limit=limit
            ),
            follow_redirects=False,
        )
        with self._lock:
            mode = self._modes.get(upstream.url, "auto")
        async with http:
            transport = streamable_http_client(
                upstream.url, http_client=http, max_sse_event_size=limit
            )
            client = Client(transport, mode=mode, cache=None, read_timeout_seconds=timeout_seconds)
            async with client:
                spoken = client.protocol_version
                with self._lock:
                    self._modes[upstream.url] = (
                        spoken if spoken in MODERN_PROTOCOL_VERSIONS else "legacy"
                    )
                yield client

    # -- the pins

    def _check_pin(
        self, name: str, upstream: McpUpstream, tool: str, tools: Mapping[str, UpstreamTool]
    ) -> None:
        found = tools.get(tool)
        if found is None:
            raise UpstreamError(f"tool {name!r}: the upstream MCP server offers no such tool")
        pinned = read_pins(self.pins_path).get(upstream.name, {}).get(tool)
        if pinned is None:
            raise ToolNotPinnedError(
                f"tool {name!r}: its upstream tool is not pinned; an administrator reviews it "
                f"and runs `{_PIN_COMMAND}`"
            )
        if pinned != found.digest:
            raise ToolNotPinnedError(
                f"tool {name!r}: its upstream tool's definition changed since it was pinned; "
                f"refused until an administrator reviews it and runs `{_PIN_COMMAND}`"
            )


def _document_of(spec: ToolSpec, result: mcp_types.CallToolResult) -> Any:  # noqa: ANN401 - JSON
    """The JSON the tool answered: structured content, else a text block that is JSON."""
    if result.is_error:
        raise UpstreamError(f"tool {spec.name!r}: the upstream MCP tool answered an error")
    document: Any
    if result.structured_content is not None:
        document = result.structured_content
    else:
        texts = [c.text for c in result.content if isinstance(c, mcp_types.TextContent)]
        if len(texts) != 1:
            raise UpstreamError(f"tool {spec.name!r}: the upstream MCP tool answered no JSON")
        try:
            document = json.loads(texts[0])
        except (ValueError, RecursionError):  # RecursionError: nested past the parser
            raise UpstreamError(
                f"tool {spec.name!r}: the upstream MCP tool answered something not JSON"
            ) from None
    size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > spec.max_response_bytes:
        raise UpstreamError(
            f"tool {spec.name!r}: the upstream's answer is larger than "
            f"{spec.max_response_bytes} bytes"
        )
    return document


def _failure(tool: str, exc: BaseException) -> GuardError:
    """The error to raise for ``exc`` (found anywhere in an exception group): never its text."""
    own = _find(exc, GuardError)  # a refusal of guard's own, raised inside the SDK's task group
    if own is not None:
        return own
    if _contains(exc, _TooLargeError):
        return UpstreamError(f"tool {tool!r}: the upstream's answer went over the size limit")
    if _contains(exc, TimeoutError) or _contains(exc, httpx2.TimeoutException):
        return UpstreamTimeoutError(f"tool {tool!r}: the upstream MCP server timed out")
    status = _find(exc, httpx2.HTTPStatusError)
    if status is not None:
        return UpstreamError(
            f"tool {tool!r}: the upstream MCP server answered HTTP {status.response.status_code}"
        )
    if _contains(exc, httpx2.HTTPError) or _contains(exc, OSError):
        return UpstreamError(f"tool {tool!r}: the upstream MCP server could not be reached")
    return UpstreamError(f"tool {tool!r}: the upstream MCP server failed ({type(exc).__name__})")


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    return _find(exc, kind) is not None


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    """``exc`` or the first ``kind`` inside it (exception groups, a direct cause)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
        return None
    cause = exc.__cause__ or exc.__context__
    return cause if cause is not None and cause is not exc and isinstance(cause, kind) else None


# --------------------------------------------------------------------------- transport


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one loads the CA bundle (tens of ms)."""
    return httpx2.create_ssl_context()


class _CappedStream(httpx2.AsyncByteStream):
    """A response body that raises once more than ``limit`` bytes came in."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise _TooLargeError
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedTransport(httpx2.AsyncBaseTransport):
    """Caps every response body, JSON and event streams alike, while it streams."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            await response.aclose()
            raise _TooLargeError
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)  # noqa: S101 - an async transport's
        response.stream = _CappedStream(stream, self._limit)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# --------------------------------------------------------------------------- entry point

_DEFAULT_LOCK = threading.Lock()
_DEFAULT: McpToolClient | None = None


def default_client() -> McpToolClient:
    """The process's client (its tool-list cache is shared by every call)."""
    global _DEFAULT  # noqa: PLW0603 - one cache per process
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = McpToolClient()
        return _DEFAULT


def call_mcp_tool(spec: ToolSpec, arguments: dict[str, Any]) -> Any:  # noqa: ANN401 - JSON
    """Call ``spec``'s upstream MCP tool (sync; from a worker thread) if its pin matches."""
    return default_client().call(spec, arguments)
