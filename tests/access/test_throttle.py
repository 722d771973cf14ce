"""The refusal throttle: failed authentication limited per client and prefix, counts exact."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from guard.access.throttle import AGGREGATE_ACTION, CLIENT_LIMIT_FACTOR, RefusalThrottle
from tests.access.recording import RecordingAudit

WINDOW = 60.0
LIMIT = 3


class Clock:
    """Monotonic seconds that the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_hash(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()


def throttle(audit: RecordingAudit, clock: Clock, *, limit: int = LIMIT) -> RefusalThrottle:
    return RefusalThrottle(
        audit=audit,
        limit=limit,
        window_seconds=WINDOW,
        client_hash=fake_hash,
        clock=clock,
        wall_clock=lambda: datetime(2024, 5, 1, tzinfo=UTC),
    )


def fail(subject: RefusalThrottle, client: str, prefix: str) -> str:
    """One authentication attempt that fails; what happened to it."""
    retry = subject.check(client, prefix)
    if retry is not None:
        return f"429:{retry}"
    return "recorded" if subject.refused(client, status=401, prefix=prefix) else "aggregated"


def aggregates(audit: RecordingAudit) -> list[dict[str, object]]:
    return [e["details"] for e in audit.events if e["action"] == AGGREGATE_ACTION]


def test_when_a_client_fails_past_the_limit_then_it_waits_until_the_window_closes() -> None:
    audit, clock = RecordingAudit(), Clock()
    subject = throttle(audit, clock)
    outcomes = [fail(subject, "10.0.0.1", "key:AAAAAAAA") for _ in range(LIMIT)]
    assert outcomes == ["recorded", "aggregated", "aggregated"]
    clock.now += 20
    assert fail(subject, "10.0.0.1", "key:AAAAAAAA") == "429:40"
    # another client, and another prefix of the same client, are not held back by it
    assert fail(subject, "10.0.0.2", "key:AAAAAAAA") == "recorded"
    assert fail(subject, "10.0.0.1", "key:BBBBBBBB") == "aggregated"
    clock.now += 40
    assert fail(subject, "10.0.0.1", "key:AAAAAAAA") == "recorded"


def test_when_a_client_rotates_prefixes_then_the_per_client_limit_stops_it() -> None:
    audit, clock = RecordingAudit(), Clock()
    subject = throttle(audit, clock)
    total = LIMIT * CLIENT_LIMIT_FACTOR
    outcomes = [fail(subject, "10.0.0.9", f"key:{n:08d}") for n in range(total + 5)]
    assert outcomes[:total].count("429:60") == 0
    assert outcomes[total:] == ["429:60"] * 5


def test_when_windows_close_then_every_refusal_is_counted_exactly_once() -> None:
    audit, clock = RecordingAudit(), Clock()
    subject = throttle(audit, clock)
    sent = 0
    for _ in range(25):
        fail(subject, "10.0.0.1", "key:AAAAAAAA")
        subject.refused("10.0.0.1", status=404)
        sent += 2
    for _ in range(4):
        fail(subject, "10.0.0.3", "none")
        sent += 1
    clock.now += WINDOW
    assert subject.flush_due() == 2
    assert subject.flush_due() == 0
    individual = [e for e in audit.events if e["action"] != AGGREGATE_ACTION]
    assert individual == []  # the caller records the firsts; the throttle only says which
    counted = sum(int(d["refusals"]) for d in aggregates(audit))  # type: ignore[call-overload]
    assert counted + 2 == sent  # one first refusal per client, recorded by the caller
    (first, second) = aggregates(audit)
    assert first["status_401"] == LIMIT - 1
    assert first["status_404"] == 25
    assert first["status_429"] == 25 - LIMIT
    assert first["client_hash"] == fake_hash("10.0.0.1")
    assert first["window_ms"] == 60_000
    assert first["aggregate"] is True
    assert second["refusals"] == 3
    assert all("10.0.0" not in str(e) for e in audit.events)


def test_when_the_next_refusal_comes_after_the_window_then_the_old_window_is_flushed() -> None:
    audit, clock = RecordingAudit(), Clock()
    subject = throttle(audit, clock)
    for _ in range(3):
        fail(subject, "10.0.0.1", "jwt")
    clock.now += WINDOW + 1
    assert fail(subject, "10.0.0.1", "jwt") == "recorded"
    assert [d["refusals"] for d in aggregates(audit)] == [2]
    assert audit.events[0]["request_id"].startswith("agg-")
    assert audit.events[0]["decision"] == "deny"


def test_when_shutting_down_then_open_windows_are_flushed() -> None:
    audit, clock = RecordingAudit(), Clock()
    subject = throttle(audit, clock)
    for _ in range(5):
        subject.refused("10.0.0.1", status=404)
    subject.refused("10.0.0.2", status=404)  # a first only: nothing to aggregate
    assert subject.flush_all() == 1
    assert [d["refusals"] for d in aggregates(audit)] == [4]
    assert subject.flush_all() == 0


class FailingAudit(RecordingAudit):
    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def record(self, **fields: object) -> int:
        if self.failing:
            raise OSError("disk full")
        return super().record(**fields)  # type: ignore[arg-type]


def test_when_an_aggregate_cannot_be_written_then_its_counts_are_kept_for_the_next_flush() -> None:
    audit, clock = FailingAudit(), Clock()
    subject = throttle(audit, clock)
    for _ in range(4):
        subject.refused("10.0.0.1", status=404)
    with pytest.raises(OSError, match="disk full"):
        subject.flush_all()
    audit.failing = False
    assert subject.flush_all() == 1
    assert [d["refusals"] for d in aggregates(audit)] == [3]
