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
point the proxy calls from a worker thread: it runs the call on an event loop of its own thread
(``_SessionLoop``), never on the server's loop. That loop keeps one session open per upstream
between calls, so a call costs two requests on a warm connection instead of a handshake, a new
connection and a session teardown. The tool list is still fetched right before every call, on
the call's session: the SDK client lists a tool before it validates the tool's structured
answer anyway, and the pin check then sees the definition the upstream serves at that moment,
not one cached a minute ago. (The SDK's response cache cannot stand in: it honours the server's
``ttlMs`` hint, and the SDK's servers answer 0.)
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
import anyio.abc
import anyio.from_thread
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
    from collections.abc import AsyncIterator, Callable, Mapping

    from guard.proxy.policy import ToolSpec

    #: Opens one session's client (``McpToolClient._connect`` with its upstream and key).
    _Connect = Callable[[], contextlib.AbstractAsyncContextManager[Client]]

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
        #: The event loop (in a thread of its own) that holds the open sessions, once started.
        self._loop: _SessionLoop | None = None

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
            return self._session_loop().portal.call(self._call, spec, route, arguments)
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

    def close(self) -> None:
        """Close the open sessions and stop their event loop; a later call starts them again."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()

    def _session_loop(self) -> _SessionLoop:
        with self._lock:
            if self._loop is None:
                self._loop = _SessionLoop()
            return self._loop

    async def _call(self, spec: ToolSpec, route: McpRoute, arguments: dict[str, Any]) -> Any:  # noqa: ANN401
        """List (for the pin check) and call on the upstream's open session.

        The session is kept between calls: opening one costs the MCP handshake (initialize and
        its notification) and a new connection, which was most of a call's time. The listing
        is still read on every call, right before it, so the pin check sees the definition the
        upstream serves now. A session that fails while listing (the upstream restarted, or
        forgot the session) is replaced once and the listing read again: listing changes
        nothing upstream. A call that fails or runs out of time is never retried (the tool may
        have acted); its session is closed, and the next call opens a new one.
        """
        upstream = route.upstream
        loop = self._session_loop()
        key = _SessionKey(
            url=upstream.url,
            credential=upstream.credential() or "",
            timeout_seconds=spec.timeout_seconds,
            max_bytes=spec.max_response_bytes,
        )
        with anyio.fail_after(spec.timeout_seconds):
            session = await loop.session(key, lambda: self._connect(upstream, key))
            try:
                tools = await self._list(session.client)
            except Exception:
                await loop.discard(session)
                if session.calls == 0:
                    raise
                session = await loop.session(key, lambda: self._connect(upstream, key))
                tools = await self._list(session.client)
            self._check_pin(spec.name, upstream, route.tool, tools)
            session.calls += 1
            try:
                result = await session.client.call_tool(route.tool, arguments)
            except BaseException:
                await loop.discard(session)
                raise
        return _document_of(spec, result)

    async def _fetch_listing(
        self, upstream: McpUpstream, timeout_seconds: float
    ) -> dict[str, UpstreamTool]:
        key = _SessionKey(
            url=upstream.url,
            credential=upstream.credential() or "",
            timeout_seconds=timeout_seconds,
            max_bytes=_LISTING_BYTES,
        )
        with anyio.fail_after(timeout_seconds):
            async with self._connect(upstream, key) as client:
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
    async def _connect(self, upstream: McpUpstream, key: _SessionKey) -> AsyncIterator[Client]:
        credential, timeout_seconds = key.credential, key.timeout_seconds
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        limit = 2 * key.max_bytes + _FRAMING_BYTES
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


# --------------------------------------------------------------------------- open sessions


@dataclass(frozen=True)
class _SessionKey:
    """What a session is opened with: calls that differ in any of it get sessions of their own.

    The credential is part of it, so a rotated upstream credential opens a new session at the
    next call (the old one is closed when it is next found stale or at shutdown).
    """

    url: str
    credential: str = field(repr=False)
    timeout_seconds: float
    max_bytes: int


@dataclass(eq=False)
class _Session:
    """One open MCP session with an upstream, used by many calls (the SDK multiplexes them)."""

    key: _SessionKey
    client: Client
    stop: anyio.Event
    #: Tool calls made on it; a session that never served a call is not worth a second try.
    calls: int = 0


class _SessionLoop:
    """An event loop in a thread of its own that keeps upstream sessions open between calls.

    The SDK's client is async and ties its connection to the task that opened it: each session
    lives in a task of this loop (opened, then parked until it is told to stop), and calls from
    the server's worker threads run on this loop through an anyio blocking portal. One loop
    per process; nothing here ever runs on the server's own loop.
    """

    def __init__(self) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal(name="guard-mcp-upstreams")
        self.portal = self._portal_cm.__enter__()
        self._sessions: dict[_SessionKey, _Session] = {}
        self._opening: dict[_SessionKey, anyio.Lock] = {}
        self._keeper, self._group = self.portal.start_task(self._keep, name="guard-mcp-keeper")

    async def _keep(self, *, task_status: anyio.abc.TaskStatus[anyio.abc.TaskGroup]) -> None:
        """Hold the task group the sessions run in until the loop closes."""
        async with anyio.create_task_group() as group:
            task_status.started(group)
            await anyio.sleep_forever()

    def close(self) -> None:
        """Stop every session's task (closing its connection), then the loop."""
        try:
            self.portal.call(self._stop_all)
            self._keeper.cancel()
        finally:
            self._portal_cm.__exit__(None, None, None)

    async def _stop_all(self) -> None:
        for session in list(self._sessions.values()):
            session.stop.set()
        self._sessions.clear()

    async def session(
        self,
        key: _SessionKey,
        connect: Callable[[], contextlib.AbstractAsyncContextManager[Client]],
    ) -> _Session:
        """The open session for ``key``, opening one (once, however many callers wait) if none."""
        existing = self._sessions.get(key)
        if existing is not None:
            return existing
        lock = self._opening.setdefault(key, anyio.Lock())
        async with lock:
            existing = self._sessions.get(key)
            if existing is not None:
                return existing
            session = await self._open(key, connect)
            self._sessions[key] = session
            return session

    async def discard(self, session: _Session) -> None:
        """Close ``session`` (its task ends) and forget it, if it is still the current one."""
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
        session.stop.set()

    async def _open(
        self,
        key: _SessionKey,
        connect: Callable[[], contextlib.AbstractAsyncContextManager[Client]],
    ) -> _Session:
        opened: dict[str, Any] = {}
        ready = anyio.Event()
        stop = anyio.Event()

        async def hold() -> None:
            try:
                async with connect() as client:
                    opened["session"] = _Session(key=key, client=client, stop=stop)
                    ready.set()
                    await stop.wait()
            except BaseException as exc:  # handed to the caller waiting to open; never raised
                # here, where it would cancel every other session of the loop
                opened.setdefault("error", exc)
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
            finally:
                session = opened.get("session")
                if session is not None and self._sessions.get(key) is session:
                    del self._sessions[key]  # the connection ended: the next call reopens
                ready.set()

        self._group.start_soon(hold, name="guard-mcp-session")
        try:
            await ready.wait()
        except BaseException:
            stop.set()  # the caller gave up (its time ran out): the half-open session goes
            raise
        if "session" not in opened:
            raise opened.get("error") or UpstreamError("the upstream MCP session did not open")
        session: _Session = opened["session"]
        return session


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


def close_default_client() -> None:
    """Close the process's client's open sessions (at shutdown); a later call reopens them."""
    with _DEFAULT_LOCK:
        client = _DEFAULT
    if client is not None:
        client.close()


def call_mcp_tool(spec: ToolSpec, arguments: dict[str, Any]) -> Any:  # noqa: ANN401 - JSON
    """Call ``spec``'s upstream MCP tool (sync; from a worker thread) if its pin matches."""
    return default_client().call(spec, arguments)
