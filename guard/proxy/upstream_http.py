"""Calls to HTTP upstreams: one connection pool, timeouts, no redirects, a size cap while reading.

Threat: the upstream is a system of record full of customer data, and guard injects a credential
the agent never holds. So a call goes only to the upstream's own base URL (the path is rendered
from the policy's template, each argument one encoded segment: see guard.proxy.policy), follows no
redirect (a redirect could carry the credential elsewhere), and reads at most the tool's
``max_response_bytes`` before giving up. An upstream failure never shows its body: it may hold PII.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from guard.proxy.errors import UpstreamError, UpstreamNotFoundError, UpstreamTimeoutError

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Connections kept open per upstream host.
POOL_CONNECTIONS = 20


@dataclass(frozen=True)
class UpstreamResponse:
    """A parsed JSON answer, its status and how long it took."""

    status: int
    document: Any
    seconds: float


class HttpUpstreamClient:
    """One pooled httpx client for every HTTP upstream of a process."""

    def __init__(self) -> None:
        self._client = httpx.Client(
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS
            ),
            trust_env=False,  # no proxy settings from the environment: only configured upstreams
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
        headers = {"Accept": "application/json"}
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        started = time.perf_counter()
        try:
            with self._client.stream(
                method,
                url,
                params={k: _param(v) for k, v in (query or {}).items()},
                json=dict(body) if body is not None else None,
                headers=headers,
                timeout=httpx.Timeout(timeout_seconds),
            ) as response:
                raw = _read_capped(response, tool, max_bytes)
                status = response.status_code
                content_type = response.headers.get("content-type", "")
        except httpx.TimeoutException:
            raise UpstreamTimeoutError(
                f"tool {tool!r}: the upstream did not answer within {timeout_seconds:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"tool {tool!r}: the upstream could not be reached ({type(exc).__name__})"
            ) from None
        seconds = time.perf_counter() - started
        if status == httpx.codes.NOT_FOUND:
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
        self._client.close()


def _param(value: Any) -> str:  # noqa: ANN401 - validated JSON argument values
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _read_capped(response: httpx.Response, tool: str, max_bytes: int) -> bytes:
    """The body, read chunk by chunk; past ``max_bytes`` the call fails and reading stops."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UpstreamError(f"tool {tool!r}: the upstream's answer is over {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise UpstreamError(f"tool {tool!r}: the upstream's answer is over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
