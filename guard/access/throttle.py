"""Refusals of unauthenticated clients: failed authentication limited, audited per window.

Threat: anyone can send wrong keys. Unchecked, that is a way to guess keys as fast as the
server answers, and, since every refusal is a durable audit event, a way to grow the trail and
keep its single writer busy (500 bad keys: 500 events in 2 s). So failed authentication is
limited per client address and key prefix (and, ten times as loosely, per address whatever the
prefix, so rotating prefixes does not escape the limit): past the limit, the client gets 429
with ``Retry-After`` until its window closes. Refusals of unauthenticated clients (401, 429, and
404/405/413/422 before any credential was checked) are all accounted for, none flooded: the
first refusal of a client in a window is recorded as its own event (with its request id); the
rest are counted, per HTTP status, into one ``auth.refusals`` event written when the window
closes (on the client's next refusal, by the periodic flush of the audit middleware, or at
shutdown). Client addresses enter the trail only as keyed hashes.

The limiter is hand-written rather than taken from a rate-limit library on purpose: the limit
and the audit aggregate must share one window per client for the counts to add up exactly, and
a library's limiter would keep a second notion of that window. State is per process: with N
processes a client may get N times the limit (still bounded), documented in the README.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from guard.access.audit import AuditRecorder

#: The per-address limit is this many times the per-(address, prefix) limit.
CLIENT_LIMIT_FACTOR: Final = 10
#: Windows kept at most; past it the oldest is closed early (its aggregate written).
MAX_TRACKED_CLIENTS: Final = 10_000
AGGREGATE_ACTION: Final = "auth.refusals"
AGGREGATE_RESOURCE: Final = "client"
THROTTLED_STATUS: Final = 429


@dataclass
class _Window:
    """One client's refusals since ``opened`` (monotonic seconds)."""

    opened: float
    opened_at: datetime
    #: Failed authentications in the window, in all and per key prefix (what the limit counts).
    failures: int = 0
    per_prefix: Counter[str] = field(default_factory=Counter)
    #: Refusals not recorded as their own event, per HTTP status (what the aggregate holds).
    aggregated: Counter[int] = field(default_factory=Counter)
    first_recorded: bool = False


@dataclass(frozen=True)
class Aggregate:
    """The refusals of one client in one window that are not events of their own."""

    client: str
    opened_at: datetime
    by_status: dict[int, int]

    @property
    def count(self) -> int:
        """How many refused requests the aggregate stands for."""
        return sum(self.by_status.values())


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RefusalThrottle:
    """Limits failed authentication per client and key prefix; aggregates refusals per window."""

    def __init__(
        self,
        *,
        audit: AuditRecorder,
        limit: int,
        window_seconds: float,
        client_hash: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._audit = audit
        self._limit = limit
        self._client_limit = limit * CLIENT_LIMIT_FACTOR
        self._window = window_seconds
        self._client_hash = client_hash
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    @property
    def window_seconds(self) -> float:
        """The length of one window."""
        return self._window

    def check(self, client: str, prefix: str) -> int | None:
        """Seconds to wait if ``client`` may not try ``prefix`` now (the refusal is counted)."""
        now = self._clock()
        retry_after = None
        with self._lock:
            closed = self._take_closed(client, now)
            window = self._windows.get(client)
            if window is not None and (
                window.per_prefix[prefix] >= self._limit or window.failures >= self._client_limit
            ):
                window.aggregated[THROTTLED_STATUS] += 1
                retry_after = max(1, math.ceil(window.opened + self._window - now))
        self._write(closed)
        return retry_after

    def refused(self, client: str, *, status: int, prefix: str | None = None) -> bool:
        """Count a refusal of ``client``; True if it is the first of its window.

        The first is to be recorded as an event of its own by the caller; later ones are in
        the window's aggregate. ``prefix`` marks a failed authentication (counted by the limit).
        """
        now = self._clock()
        with self._lock:
            closed = self._take_closed(client, now)
            window = self._windows.get(client)
            if window is None:
                window = _Window(opened=now, opened_at=self._wall_clock())
                self._windows[client] = window
                if len(self._windows) > MAX_TRACKED_CLIENTS:
                    _, oldest = self._windows.popitem(last=False)
                    closed.append(self._aggregate_of(client, oldest))
            if prefix is not None:
                window.failures += 1
                window.per_prefix[prefix] += 1
            first = not window.first_recorded
            if first:
                window.first_recorded = True
            else:
                window.aggregated[status] += 1
        self._write(closed)
        return first

    def flush_due(self) -> int:
        """Write the aggregates of every closed window; return how many events were written."""
        now = self._clock()
        with self._lock:
            due = [c for c, w in self._windows.items() if now >= w.opened + self._window]
            closed = [self._aggregate_of(c, self._windows.pop(c)) for c in due]
        return self._write(closed)

    def flush_all(self) -> int:
        """Write every window's aggregate now (at shutdown); return how many were written."""
        with self._lock:
            closed = [self._aggregate_of(c, w) for c, w in self._windows.items()]
            self._windows.clear()
        return self._write(closed)

    def _take_closed(self, client: str, now: float) -> list[Aggregate]:
        window = self._windows.get(client)
        if window is None or now < window.opened + self._window:
            return []
        del self._windows[client]
        return [self._aggregate_of(client, window)]

    @staticmethod
    def _aggregate_of(client: str, window: _Window) -> Aggregate:
        return Aggregate(
            client=client, opened_at=window.opened_at, by_status=dict(window.aggregated)
        )

    def _write(self, aggregates: list[Aggregate]) -> int:
        written = 0
        for index, aggregate in enumerate(aggregates):
            if aggregate.count == 0:
                continue
            try:
                self._record(aggregate)
            except BaseException:
                # keep what could not be written, so the next flush (or shutdown) retries it
                self._restore(aggregates[index:])
                raise
            written += 1
        return written

    def _restore(self, aggregates: list[Aggregate]) -> None:
        with self._lock:
            for aggregate in aggregates:
                window = self._windows.get(aggregate.client)
                if window is None:
                    window = _Window(
                        opened=self._clock(), opened_at=aggregate.opened_at, first_recorded=True
                    )
                    self._windows[aggregate.client] = window
                window.aggregated.update(aggregate.by_status)

    def _record(self, aggregate: Aggregate) -> None:
        details: dict[str, str | int | bool] = {
            "aggregate": True,
            "refusals": aggregate.count,
            "client_hash": self._client_hash(aggregate.client),
            "window_start": aggregate.opened_at.isoformat(timespec="seconds"),
            "window_ms": round(self._window * 1000),
        }
        for status, count in sorted(aggregate.by_status.items()):
            details[f"status_{status}"] = count
        self._audit.record(
            action=AGGREGATE_ACTION,
            resource=AGGREGATE_RESOURCE,
            decision="deny",
            outcome="failure",
            # an id of its own: the aggregate belongs to no one request (and must not be taken
            # for the request that happened to close the window)
            request_id=f"agg-{uuid.uuid4().hex}",
            details=details,
        )
