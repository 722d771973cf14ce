"""Group commit: concurrent audit events of one process share one transaction and one fsync.

Every audited request used to wait for its own durable commit, one after another: with
``synchronous=FULL`` (SQLite) or a flushed WAL (PostgreSQL) that is one fsync per request, and
the chain lock serialises them. Here a caller hands its event to :meth:`ChainWriter.append`
and waits; one caller at a time is the *leader*: it takes every event waiting at that moment
(up to ``max_group``), appends them in one transaction under the chain lock, commits, and
wakes each waiter with its own sealed row. Whoever arrives while a commit is in flight waits
for the next one, which one of them leads. Nothing waits on a timer: a lone event is committed
at once, and groups form only from what queues up behind a commit in flight.

Guarantees, unchanged from one-event-per-transaction: the chain order is the commit order (seq,
prev_hash and the timestamp are taken under the lock, inside the group's transaction); an
``append`` returns only after the commit that holds its event is durable, so a crash loses no
event a caller was told was written; checkpoints, verification and several processes on one
database work as before (each process groups its own callers; processes take turns on the lock).
If a group's transaction fails, each of its events is retried alone, so a bad event fails only
its own caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from guard.audit.chain import GENESIS_HASH, checkpoint_payload, seal_event
from guard.audit.repository import AuditRepository
from guard.storage.engine import SQLITE_BEGIN_IMMEDIATE, session_scope

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy import Connection
    from sqlalchemy.orm import Session, sessionmaker

    from guard.crypto.audit_keys import AuditKeys

#: Most events in one transaction: bounds a group's time under the lock and its memory.
DEFAULT_MAX_GROUP = 256
#: Bytes of the turn count at the start of the turn file (big-endian).
_TURN_BYTES = 8


class _Pending:
    """One caller's event, waiting for the commit that holds it (or to lead the next one)."""

    __slots__ = ("content", "error", "lead", "ready", "row")

    def __init__(self, content: Mapping[str, Any]) -> None:
        self.content = content
        self.row: dict[str, Any] | None = None
        self.error: BaseException | None = None
        #: Set by the previous leader: this caller commits the next group.
        self.lead = False
        self.ready = threading.Event()


class ChainWriter:
    """Appends this process's audit events to the chain, group-committing concurrent ones."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        keys: AuditKeys,
        *,
        checkpoint_events: int,
        checkpoint_seconds: float,
        max_group: int = DEFAULT_MAX_GROUP,
    ) -> None:
        self._factory = factory
        self._keys = keys
        self._checkpoint_events = checkpoint_events
        self._checkpoint_every = timedelta(seconds=checkpoint_seconds)
        self._max_group = max_group
        self._mutex = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        # The newest checkpoint this process knows of. Another process may have written a newer
        # one, which only makes a checkpoint less due: a "not due" from this cache is always
        # right, and a "due" is confirmed against the table. Saves a query on most groups.
        self._known_checkpoint: tuple[int, datetime] | None = None
        # SQLite file databases: the file beside them that orders appending processes
        self._lock_path = _turn_file(factory)
        self._lock_fd: int | None = None
        # The head this process wrote last, and the turn count right after its group: while
        # the turn file still shows that count, no group of any process came after it, and the
        # head needs no query (see ``_turn``).
        self._head: tuple[int, str, datetime] | None = None
        self._head_turn: int | None = None
        # SQLite files: the connection groups are appended on (``_transaction``), opened on use
        self._connection: Connection | None = None
        self._connection_finalizer: weakref.finalize[Any, Any] | None = None
        #: Groups committed and events in them (for the benchmark and the metrics).
        self.groups = 0
        self.events = 0

    def close(self) -> None:
        """Close the turn file (if any) and the connection; appending after this reopens them."""
        with self._mutex:
            self._close_connection()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def waiting(self) -> int:
        """Events queued behind the commit in flight."""
        with self._mutex:
            return len(self._queue)

    @property
    def leading(self) -> bool:
        """Whether a caller is committing a group now."""
        with self._mutex:
            return self._leading

    def append(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event (validated, canonical content); return its row once durable."""
        pending = _Pending(content)
        with self._mutex:
            self._queue.append(pending)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            pending.ready.wait()
            if not pending.lead:
                return _result(pending)
        self._lead()
        return _result(pending)

    def _lead(self) -> None:
        """Commit one group (which holds this caller's event), then pass the lead on."""
        with self._mutex:
            group = self._queue[: self._max_group]
            del self._queue[: self._max_group]
        try:
            self._commit(group)
        finally:
            with self._mutex:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.ready.set()
                else:
                    self._leading = False

    def _commit(self, group: Sequence[_Pending]) -> None:
        try:
            rows = self._append_group([pending.content for pending in group])
        except BaseException as exc:  # noqa: BLE001 - handed to each caller, who raises it
            if len(group) == 1:
                _fail(group[0], exc)
                return
            # one bad event must not fail its neighbours: each is tried on its own
            for pending in group:
                self._commit([pending])
            return
        for pending, row in zip(group, rows, strict=True):
            pending.row = row
            if not pending.lead:
                pending.ready.set()
        self.groups += 1
        self.events += len(group)

    def _append_group(self, contents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Lock the chain, read its head, insert the sealed events; one transaction."""
        self._head, known = None, self._head  # whatever happens below, it is read again
        with self._turn() as turn, self._transaction() as connection:
            repo = AuditRepository(connection)
            repo.lock_chain()
            fresh = turn is not None and known is not None and turn == self._head_turn
            head = known if fresh else repo.head_state()
            seq, prev_hash = (0, GENESIS_HASH) if head is None else (head[0], head[1])
            # Timestamps are taken under the lock, and never before the head's (another host's
            # clock may run ahead): ts never goes back along seq, so a time range is a seq range.
            now = datetime.now(UTC)
            ts = now if head is None else max(now, head[2])
            rows = []
            for content in contents:
                seq += 1
                row = seal_event(
                    {**content, "ts": ts}, seq=seq, prev_hash=prev_hash, keys=self._keys
                )
                rows.append(row)
                prev_hash = row["hash"]
            repo.insert_events(rows)
            last = rows[-1]
            if self._checkpoint_due(repo, last["seq"], ts):
                self._checkpoint(repo, last["seq"], last["hash"], ts)
        # committed: the head is this group's last event, as of the turn this group counted
        if turn is not None:
            self._head, self._head_turn = (last["seq"], last["hash"], ts), turn + 1
        return rows

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection | Session]:
        """The group's transaction, committed if the block succeeds (SQLite: ``BEGIN IMMEDIATE``).

        On a SQLite file, only the leader of this process appends, one group at a time, so one
        connection of the writer's own serves every group: no pool checkout and return per
        group (about 65 µs of the ~0.3 ms an append costs besides its fsync). A group that fails
        closes it (it may be what failed); the next group opens another. Elsewhere (PostgreSQL)
        each group takes a pooled connection as before: the pool's liveness check on checkout is
        what carries an append over a database restart, which a kept connection would fail on.
        """
        if self._lock_path is None:
            with session_scope(self._factory) as session:
                session.connection(execution_options=cast("Any", {SQLITE_BEGIN_IMMEDIATE: True}))
                yield session
            return
        connection = self._connection
        if connection is None:
            engine = self._factory.kw["bind"]
            connection = engine.connect().execution_options(
                **cast("Any", {SQLITE_BEGIN_IMMEDIATE: True})
            )
            connection.detach()  # its own: never returned to (nor counted in) the pool
            # closed with this writer if nobody calls close() (a trail dropped without closing)
            self._connection_finalizer = weakref.finalize(self, connection.close)
            self._connection = connection
        try:
            with connection.begin():
                yield connection
        except BaseException:
            self._close_connection()
            raise

    def _close_connection(self) -> None:
        if self._connection_finalizer is not None:
            self._connection_finalizer()  # closes the connection, once
            self._connection_finalizer = None
        self._connection = None

    @contextlib.contextmanager
    def _turn(self) -> Iterator[int | None]:
        """Wait for this writer's turn on a SQLite file among processes; nothing elsewhere.

        Several processes (``guard serve``'s workers) append to one SQLite file. SQLite's own
        write lock makes a waiting process poll with sleeps that grow to 100 ms, so under load
        one writer can starve for seconds while another keeps re-taking the lock. A blocking
        ``flock`` on a file beside the database queues them in the kernel instead, woken the
        moment the holder commits. Only group commits take it (they never nest), so it cannot
        deadlock; other writers still meet SQLite's lock as before. PostgreSQL queues on its
        advisory lock already.

        Yields the turn count: the file holds how many groups began (8 bytes), and each group
        adds one *before* its transaction begins. A process whose last group left the count at
        N and finds N again knows no group of any process has begun since, so the head it wrote
        is still the head and is not read again (a query per group saved). A group that fails
        after counting only makes the next one read the head. None: no turn file (PostgreSQL,
        in-memory SQLite), the head is always read.
        """
        if self._lock_path is None:
            yield None
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            stored = os.pread(self._lock_fd, _TURN_BYTES, 0)
            turn = int.from_bytes(stored, "big") if len(stored) == _TURN_BYTES else 0
            os.pwrite(self._lock_fd, (turn + 1).to_bytes(_TURN_BYTES, "big"), 0)
            yield turn
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _checkpoint_due(self, repo: AuditRepository, seq: int, now: datetime) -> bool:
        known = self._known_checkpoint
        if known is not None and not self._due(seq, now, known):
            return False
        last = repo.last_checkpoint()
        if last is None:
            last = (0, repo.first_event_ts() or now)
        self._known_checkpoint = last
        return self._due(seq, now, last)

    def _due(self, seq: int, now: datetime, since: tuple[int, datetime]) -> bool:
        since_seq, since_ts = since
        return (
            seq - since_seq >= self._checkpoint_events or now - since_ts >= self._checkpoint_every
        )

    def _checkpoint(self, repo: AuditRepository, seq: int, head_hash: str, ts: datetime) -> None:
        signature = self._keys.sign_checkpoint(checkpoint_payload(seq, head_hash, ts))
        repo.insert_checkpoint(
            {
                "seq": seq,
                "head_hash": head_hash,
                "ts": ts,
                "signature": signature.hex(),
                "key_id": self._keys.signing_key_id,
            }
        )
        self._known_checkpoint = (seq, ts)


def _turn_file(factory: sessionmaker[Session]) -> str | None:
    """``<database>.audit-lock`` for a SQLite file database; None for others (and memory)."""
    bind = factory.kw.get("bind")
    url = getattr(bind, "url", None)
    if url is None or url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}.audit-lock"


def _fail(pending: _Pending, exc: BaseException) -> None:
    pending.error = exc
    if not pending.lead:
        pending.ready.set()


def _result(pending: _Pending) -> dict[str, Any]:
    if pending.error is not None:
        raise pending.error
    if pending.row is None:  # pragma: no cover - a leader always settles its own group
        raise RuntimeError("audit event neither written nor failed")
    return pending.row
