"""Calls to HTTP upstreams: one connection pool, timeouts, no redirects, a size cap while reading.

Threat: the upstream is a system of record full of customer data, and guard injects a credential
the agent never holds. So a call goes only to the upstream's own base URL (the path is rendered
from the policy's template, each argument one encoded segment: see guard.proxy.policy), follows no
redirect (a redirect could carry the credential elsewhere), and reads at most the tool's
``max_response_bytes`` before giving up. An upstream failure never shows its body: it may hold PII.

The client is httpcore's connection pool, the transport httpx itself is built on, used without
httpx's request and response models: those cost 0.2-0.7 ms a call (measured against the demo
CRM), and a call through the proxy pays this client on top of what a direct call costs. httpcore
follows no redirect and reads no proxy settings from the environment: only configured upstreams
are ever contacted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpcore

from guard.proxy.errors import UpstreamError, UpstreamNotFoundError, UpstreamTimeoutError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: Connections kept open per upstream host.
POOL_CONNECTIONS = 20

_NOT_FOUND = 404
_JSON = b"application/json"


@dataclass(frozen=True)
class UpstreamResponse:
    """A parsed JSON answer, its status and how long it took."""

    status: int
    document: Any
    seconds: float


class HttpUpstreamClient:
    """One pooled client for every HTTP upstream of a process."""

    def __init__(self) -> None:
        self._pool = httpcore.ConnectionPool(
            max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS
        )

    def call(
        self,
        *,
        tool: str,
        method: str,
        url: str,
        query: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        credential: str | None,
        timeout_seconds: float,
        max_bytes: int,
    ) -> UpstreamResponse:
        """Send the call and parse its JSON answer, or raise an Upstream*Error naming ``tool``."""
        url, headers, content = _request(url, query, body, credential)
        timeouts = {
            "connect": timeout_seconds,
            "read": timeout_seconds,
            "write": timeout_seconds,
            "pool": timeout_seconds,
        }
        started = time.perf_counter()
        try:
            with self._pool.stream(
                method,
                url,
                headers=headers,
                content=content,
                extensions={"timeout": timeouts},
            ) as response:
                status = response.status
                content_type = _header(response.headers, b"content-type")
                declared = _header(response.headers, b"content-length")
                raw = _read_capped(response.iter_stream(), declared, tool, max_bytes)
        except UpstreamError:  # over the size limit while reading
            raise
        except httpcore.TimeoutException:
            raise UpstreamTimeoutError(
                f"tool {tool!r}: the upstream did not answer within {timeout_seconds:g} s"
            ) from None
        except Exception as exc:  # noqa: BLE001 - network and protocol errors: named by type
            raise UpstreamError(
                f"tool {tool!r}: the upstream could not be reached ({type(exc).__name__})"
            ) from None
        seconds = time.perf_counter() - started
        if status == _NOT_FOUND:
            raise UpstreamNotFoundError(f"tool {tool!r}: the upstream has no such object")
        if not 200 <= status < 300:  # noqa: PLR2004 - the success range
            # redirects included: following one could send the credential elsewhere
            raise UpstreamError(f"tool {tool!r}: the upstream answered {status}")
        if "json" not in content_type:
            raise UpstreamError(f"tool {tool!r}: the upstream did not answer JSON")
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # nested past the parser
            raise UpstreamError(f"tool {tool!r}: the upstream's JSON is malformed") from None
        return UpstreamResponse(status=status, document=document, seconds=seconds)

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()


def _request(
    url: str,
    query: Mapping[str, Any] | None,
    body: Mapping[str, Any] | None,
    credential: str | None,
) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    """The URL with its query string, the headers (the credential injected) and the body."""
    headers = [(b"Accept", _JSON)]
    if credential:
        headers.append((b"Authorization", f"Bearer {credential}".encode()))
    content = b""
    if body is not None:
        content = json.dumps(dict(body), separators=(",", ":")).encode("utf-8")
        headers.append((b"Content-Type", _JSON))
    if query:
        url = f"{url}?{urlencode({k: _param(v) for k, v in query.items()})}"
    return url, headers, content


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    """The first value of header ``name`` (lower-case), decoded as Latin-1; empty if none."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").lower()
    return ""


def _param(value: Any) -> str:  # noqa: ANN401 - validated JSON argument values
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _read_capped(chunks: Iterable[bytes], declared: str, tool: str, max_bytes: int) -> bytes:
    """The body, read chunk by chunk; past ``max_bytes`` the call fails and reading stops."""
    if declared.isdigit() and int(declared) > max_bytes:
        raise UpstreamError(f"tool {tool!r}: the upstream's answer is over {max_bytes} bytes")
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise UpstreamError(f"tool {tool!r}: the upstream's answer is over {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)
