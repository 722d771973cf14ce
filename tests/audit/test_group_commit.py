"""Group commit: events queued behind a commit share the next one; each caller gets its own row,
a bad event fails only its caller, and an event is acknowledged only once it is durable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from guard.audit.repository import AuditRepository
from guard.storage.engine import SQLITE_BEGIN_IMMEDIATE, session_scope
from tests.audit.conftest import record_events

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.audit.service import AuditTrail
    from guard.config import Settings

CALLERS = 20


def _content(**overrides: Any) -> dict[str, Any]:
    """An event as the processors hand it to the writer (validated, canonical)."""
    return {
        "principal": "agent-7",
        "role": "agent",
        "tenant": "acme",
        "action": "redact",
        "resource": "text",
        "decision": "allow",
        "outcome": "success",
        "request_id": None,
        "customer": None,
        "entity_counts": "{}",
        "details": "{}",
        **overrides,
    }


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _holding_the_chain_lock(
    factory: sessionmaker[Session], trail: AuditTrail, queued: int, start: Callable[[], None]
) -> None:
    """Hold the chain lock (as another appender would) until ``queued`` events wait behind."""
    with session_scope(factory) as session:
        session.connection(execution_options=cast("Any", {SQLITE_BEGIN_IMMEDIATE: True}))
        AuditRepository(session).lock_chain()
        start()
        _wait_for(lambda: trail.writer.waiting >= queued, f"{queued} queued events")


def _lead_then_queue(
    trail: AuditTrail, leader: threading.Thread, followers: list[threading.Thread]
) -> Callable[[], None]:
    """Start ``leader`` and let it take its group, then start the ``followers`` behind it."""

    def start() -> None:
        leader.start()
        _wait_for(
            lambda: trail.writer.leading and trail.writer.waiting == 0,
            "the leader to take its group",
        )
        for thread in followers:
            thread.start()

    return start


def test_when_events_queue_behind_a_commit_then_they_share_the_next_one(
    trail: AuditTrail, factory: sessionmaker[Session]
) -> None:
    record_events(trail, 1)
    groups_before = trail.writer.groups
    seqs: dict[int, int] = {}
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            seqs[n] = record_events(trail, 1, principal=f"caller-{n}")[0]
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    # the first caller leads and waits for the lock; the other 19 queue behind its commit
    start = _lead_then_queue(trail, threads[0], threads[1:])
    _holding_the_chain_lock(factory, trail, CALLERS - 1, start)
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert trail.writer.groups - groups_before == 2
    assert sorted(seqs.values()) == list(range(2, CALLERS + 2))
    # each caller got its own event back
    events = {event["seq"]: event for event in trail.search_events()}
    assert all(events[seq]["principal"] == f"caller-{n}" for n, seq in seqs.items())
    report = trail.verify()
    assert report.ok, report
    assert report.events_checked == CALLERS + 1


def test_when_one_event_of_a_group_cannot_be_stored_then_only_its_caller_fails(
    trail: AuditTrail, factory: sessionmaker[Session], engine: Engine
) -> None:
    record_events(trail, 1)
    results: dict[str, object] = {}

    def caller(name: str, content: dict[str, Any]) -> None:
        try:
            results[name] = trail.writer.append(content)["seq"]
        except IntegrityError as exc:
            results[name] = exc

    # 'maybe' breaks the decision CHECK constraint: the database refuses that row alone
    contents = {
        "first": _content(principal="first"),
        "bad": _content(principal="bad", decision="maybe"),
        "third": _content(principal="third"),
    }
    leader = threading.Thread(target=caller, args=("leader", _content(principal="leader")))
    threads = [threading.Thread(target=caller, args=item) for item in contents.items()]

    start = _lead_then_queue(trail, leader, threads)
    _holding_the_chain_lock(factory, trail, len(threads), start)
    for thread in [leader, *threads]:
        thread.join(timeout=60)

    assert isinstance(results["bad"], IntegrityError)
    good = sorted(cast("int", results[name]) for name in ("leader", "first", "third"))
    assert good == [2, 3, 4]
    with engine.connect() as conn:
        principals = conn.execute(text("SELECT principal FROM audit_events ORDER BY seq")).all()
    assert "bad" not in {row.principal for row in principals}
    assert trail.verify().ok


_APPENDER = """
import sys, threading
from pathlib import Path
from pydantic import SecretStr
from guard.audit.service import AuditTrail
from guard.config import Settings

url, keys_dir, var_dir = sys.argv[1:4]
settings = Settings(database_url=SecretStr(url), keys_dir=Path(keys_dir), var_dir=Path(var_dir))
trail = AuditTrail(settings)
lock = threading.Lock()

def append(worker):
    for i in range(100_000):
        request_id = f"w{worker}-{i}"
        seq = trail.record(action="redact", resource="text", decision="allow", outcome="success",
                           principal="load", role="agent", tenant="acme", request_id=request_id)
        with lock:  # told the client: the event is durable
            print(request_id, seq, flush=True)

threads = [threading.Thread(target=append, args=(w,)) for w in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


@pytest.fixture
def appender(audit_settings: Settings) -> Iterator[subprocess.Popen[str]]:
    assert audit_settings.database_url is not None
    process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
        [
            sys.executable,
            "-c",
            _APPENDER,
            audit_settings.database_url.get_secret_value(),
            str(audit_settings.keys_dir),
            str(audit_settings.var_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    assert process.stdout is not None
    process.stdout.close()


def test_when_the_process_is_killed_mid_load_then_every_acknowledged_event_is_stored(
    appender: subprocess.Popen[str], trail: AuditTrail, engine: Engine
) -> None:
    assert appender.stdout is not None
    acknowledged: dict[str, int] = {}
    for line in appender.stdout:
        request_id, seq = line.split()
        acknowledged[request_id] = int(seq)
        if len(acknowledged) == 300:
            os.kill(appender.pid, signal.SIGKILL)
            break
    # anything already printed before the kill was acknowledged too
    for line in appender.stdout:
        request_id, seq = line.split()
        acknowledged[request_id] = int(seq)
    appender.wait(timeout=30)
    assert appender.returncode == -signal.SIGKILL

    with engine.connect() as conn:
        stored: dict[str, int] = dict(
            conn.execute(
                text("SELECT request_id, seq FROM audit_events WHERE principal = 'load'")
            ).all()
        )
    assert len(acknowledged) >= 300
    missing = {rid: seq for rid, seq in acknowledged.items() if stored.get(rid) != seq}
    assert missing == {}
    report = trail.verify()
    assert report.ok, report
    assert report.events_checked == len(stored)


# ------------------------------------------------------------------------- the head, remembered


def _head_queries(engine: Engine) -> Callable[[], int]:
    """A counter of the head queries (newest event by seq) the engine runs from now on."""
    from sqlalchemy import event  # noqa: PLC0415 - only these tests listen

    seen = [0]

    def count(*args: Any) -> None:
        statement = str(args[2]).lower()
        if "from audit_events" in statement and "order by audit_events.seq desc" in statement:
            seen[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    return lambda: seen[0]


def test_when_one_writer_appends_alone_then_it_reads_the_head_once(
    trail: AuditTrail, engine: Engine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the head is remembered across groups on SQLite files (the turn file)")
    queries = _head_queries(engine)
    record_events(trail, 6)
    assert queries() == 1  # the first group reads it; the others know it
    assert trail.verify().ok


def test_when_two_writers_take_turns_then_each_reads_the_head_the_other_moved(
    audit_settings: Settings, factory: sessionmaker[Session], engine: Engine
) -> None:
    # two trails on one file, as two worker processes are: each has its own turn-file handle
    from guard.audit.service import AuditTrail  # noqa: PLC0415

    first, second = AuditTrail(audit_settings, factory), AuditTrail(audit_settings, factory)
    queries = _head_queries(engine)
    seqs = []
    for _ in range(4):
        seqs += record_events(first, 2)
        seqs += record_events(second, 1)
    assert seqs == list(range(seqs[0], seqs[0] + 12))  # no gap, no fork: one chain
    report = first.verify()
    assert report.ok
    if engine.dialect.name == "sqlite":
        # each switch of writer reads the head again; a writer's second event in a row does not
        assert queries() == 8
    first.writer.close()
    second.writer.close()


def test_when_a_group_fails_then_the_next_one_reads_the_head_again(
    trail: AuditTrail, engine: Engine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the head is remembered across groups on SQLite files (the turn file)")
    record_events(trail, 1)
    queries = _head_queries(engine)
    with pytest.raises(IntegrityError):
        trail.writer.append(_content(action=None))  # NOT NULL: the transaction fails
    record_events(trail, 1)
    assert queries() == 1  # the failed group trusted the head it knew; the next reads it
    assert trail.verify().ok
