"""Verify the audit chain: find the first edited, deleted, inserted or reordered event.

Threat: the audit trail is only evidence if tampering shows. Verification streams every event
in sequence order and checks, for each: the sequence has no gap (a deletion), the HMAC over the
stored hash is guard's (a forged or inserted row fails it: the key is not in the database), the
hash recomputed from the row's fields matches (an edit), and the row links to its predecessor
(a genuine event moved to another position, i.e. reordering). Signed checkpoints are checked
against the events at their sequence numbers, and a head behind the last signed checkpoint means
events were cut off the end (truncation). Limits: cutting events off the end *after* the last
checkpoint, together with any checkpoints after them, is only visible against an external copy
(the JSONL mirror, a log shipper); checkpoints every N events or T seconds bound that window.
Rows are streamed in keyset batches, so memory stays flat for millions of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from guard.audit.chain import GENESIS_HASH, checkpoint_payload, event_hash, prune_payload
from guard.audit.repository import AuditRepository
from guard.audit.schemas import Finding, VerifyReport
from guard.crypto.audit_keys import AuditKeys
from guard.errors import GuardError
from guard.storage.engine import create_engine_for, make_session_factory, session_scope

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import Row
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings

DEFAULT_BATCH_SIZE = 10_000


class _Broken(Exception):  # noqa: N818 - control flow inside this module, not an error type
    def __init__(self, seq: int, finding: Finding, detail: str) -> None:
        super().__init__(detail)
        self.seq = seq
        self.finding = finding
        self.detail = detail


def _check_checkpoint_signatures(
    checkpoints: Sequence[Row[Any]], keys: AuditKeys
) -> dict[int, str]:
    """Map seq to signed head hash for every checkpoint; the first bad signature breaks."""
    heads: dict[int, str] = {}
    expected_key = keys.key_id
    for checkpoint in checkpoints:
        try:
            signature = bytes.fromhex(checkpoint.signature)
        except ValueError:
            signature = b""
        payload = checkpoint_payload(checkpoint.seq, checkpoint.head_hash, checkpoint.ts)
        if checkpoint.key_id != expected_key or not keys.checkpoint_signature_ok(
            payload, signature
        ):
            raise _Broken(checkpoint.seq, "edited", "checkpoint signature invalid")
        heads[checkpoint.seq] = checkpoint.head_hash
    return heads


@dataclass(frozen=True, slots=True)
class ChainStart:
    """Where the stored chain begins: seq 1 after genesis, or after the newest prune seal."""

    #: The first event that must be stored.
    seq: int
    #: The hash that event links to (``prev_hash``).
    prev_hash: str
    #: Events up to here were pruned under signed seals (None: nothing pruned).
    pruned_through: int | None = None
    pruned_at: datetime | None = None
    seals: int = 0


def _check_seals(seals: Sequence[Row[Any]], keys: AuditKeys, *, tiled: bool = True) -> ChainStart:
    """Check every prune seal's signature and (``tiled``) that they tile the removed prefix."""
    expected_key = keys.key_id
    through = 0
    for seal in seals:
        try:
            signature = bytes.fromhex(seal.signature)
        except ValueError:
            signature = b""
        payload = prune_payload(seal.seq, seal.head_hash, seal.ts, seal.events_removed)
        if seal.key_id != expected_key or not keys.checkpoint_signature_ok(payload, signature):
            raise _Broken(seal.seq, "edited", "prune seal signature invalid")
        if tiled and seal.events_removed != seal.seq - through:
            raise _Broken(
                through + 1,
                "deleted",
                f"prune seals do not cover events {through + 1}..{seal.seq - seal.events_removed}",
            )
        through = seal.seq
    if not seals:
        return ChainStart(seq=1, prev_hash=GENESIS_HASH)
    last = seals[-1]
    return ChainStart(
        seq=last.seq + 1,
        prev_hash=last.head_hash,
        pruned_through=last.seq,
        pruned_at=last.ts,
        seals=len(seals),
    )


class BrokenChainError(GuardError):
    """The chain fails verification where an operation needs it intact (pruning)."""

    status_code = 409
    type_slug = "audit-chain-broken"

    @classmethod
    def at(cls, broken: _Broken, what: str) -> BrokenChainError:
        """The error for a walk that broke; names the seq and finding, never event content."""
        return cls(
            f"{what} fails verification at seq {broken.seq}: {broken.finding} "
            f"({broken.detail}); nothing was pruned; run `guard audit verify`"
        )


def chain_start(repo: AuditRepository, keys: AuditKeys) -> ChainStart:
    """Where the stored chain begins, every prune seal checked (BrokenChainError if one fails)."""
    try:
        return _check_seals(repo.prunes(), keys)
    except _Broken as broken:
        raise BrokenChainError.at(broken, "a prune seal of the audit trail") from None


def newest_start(repo: AuditRepository, keys: AuditKeys) -> ChainStart:
    """Where the stored chain begins, only the newest prune seal checked (BrokenChainError).

    What a prune links its checks from: the newest seal's signature vouches for the hash the
    next event must link to. Checking every older seal again on each batch would make pruning
    quadratic; :func:`verify_chain` checks them all.
    """
    seal = repo.last_prune()
    try:
        return _check_seals([] if seal is None else [seal], keys, tiled=False)
    except _Broken as broken:
        raise BrokenChainError.at(broken, "the newest prune seal of the audit trail") from None


def _walk_prefix(
    repo: AuditRepository, keys: AuditKeys, start: ChainStart, through_seq: int, batch_size: int
) -> str:
    heads = _check_checkpoint_signatures(repo.checkpoints_between(start.seq, through_seq), keys)
    prev_hash, expected_seq = start.prev_hash, start.seq
    for row in repo.stream_events(
        batch_size=batch_size, after_seq=start.seq - 1, until_seq=through_seq
    ):
        _check_event(row, expected_seq, prev_hash, keys)
        signed = heads.get(row.seq)
        if signed is not None and signed != row.hash:
            raise _Broken(row.seq, "edited", "event differs from signed checkpoint")
        prev_hash, expected_seq = row.hash, expected_seq + 1
    if expected_seq <= through_seq:
        raise _Broken(expected_seq, "deleted", f"event {expected_seq} missing")
    return prev_hash


def check_prefix(
    repo: AuditRepository,
    keys: AuditKeys,
    start: ChainStart,
    through_seq: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> str:
    """Verify events ``start.seq``..``through_seq`` before they are pruned; the last one's hash.

    A prune must never launder tampering: once sealed, a removed event cannot be checked any
    more, so every event to remove (and every checkpoint among them) must verify first, linked
    from the chain's current start. Raises :class:`BrokenChainError` naming the first problem.
    """
    try:
        return _walk_prefix(repo, keys, start, through_seq, batch_size)
    except _Broken as broken:
        what = f"the prefix {start.seq}..{through_seq} to prune"
        raise BrokenChainError.at(broken, what) from None


def _check_event(row: Row[Any], expected_seq: int, prev_hash: str, keys: AuditKeys) -> None:
    if row.seq != expected_seq:
        missing = (
            f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}..{row.seq - 1}"
        )
        raise _Broken(expected_seq, "deleted", f"sequence gap, event {missing} missing")
    if not keys.chain_mac_ok(row.hash, row.hmac):
        raise _Broken(row.seq, "inserted", "HMAC mismatch, event not written by guard")
    linked = row.prev_hash == prev_hash
    fields = row._mapping  # noqa: SLF001 - Row._mapping is SQLAlchemy's public mapping view
    if event_hash(row.seq, row.prev_hash, fields) != row.hash:
        if linked:
            raise _Broken(row.seq, "edited", "hash mismatch")
        raise _Broken(row.seq, "reordered", "genuine event out of place")
    if not linked:
        raise _Broken(row.seq, "inserted", "event does not link to its predecessor")


class _Walk:
    """One pass over the chain; counts what it checked before the first problem."""

    def __init__(self, repo: AuditRepository, keys: AuditKeys, batch_size: int) -> None:
        self.repo = repo
        self.keys = keys
        self.batch_size = batch_size
        self.events = 0
        self.checkpoints = 0
        self.start = ChainStart(seq=1, prev_hash=GENESIS_HASH)

    def run(self) -> None:
        self.start = _check_seals(self.repo.prunes(), self.keys)
        pruned = self.start.pruned_through or 0
        heads = {
            seq: head
            for seq, head in _check_checkpoint_signatures(
                self.repo.checkpoints(), self.keys
            ).items()
            if seq > pruned  # a prune deletes the checkpoints it covers; any left sign nothing
        }
        prev_hash = self.start.prev_hash
        expected_seq = self.start.seq
        for row in self.repo.stream_events(batch_size=self.batch_size):
            if row.seq <= pruned:
                raise _Broken(row.seq, "inserted", f"event inside the prefix sealed at {pruned}")
            _check_event(row, expected_seq, prev_hash, self.keys)
            signed = heads.get(row.seq)
            if signed is not None:
                if signed != row.hash:
                    raise _Broken(row.seq, "edited", "event differs from signed checkpoint")
                self.checkpoints += 1
            prev_hash = row.hash
            expected_seq += 1
            self.events += 1
        if heads and max(heads) >= expected_seq:
            raise _Broken(
                expected_seq,
                "truncated",
                f"head at seq {expected_seq - 1} is behind the checkpoint at seq {max(heads)}",
            )


def verify_chain(
    factory: sessionmaker[Session], keys: AuditKeys, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> VerifyReport:
    """Verify every event and checkpoint; report the first problem, if any."""
    with session_scope(factory) as session:
        _one_snapshot(session)
        walk = _Walk(AuditRepository(session), keys, batch_size)
        try:
            walk.run()
        except _Broken as broken:
            return VerifyReport(
                ok=False,
                events_checked=walk.events,
                checkpoints_checked=walk.checkpoints,
                first_bad_seq=broken.seq,
                finding=broken.finding,
                detail=broken.detail,
                **_start_fields(walk.start),
            )
    return VerifyReport(
        ok=True,
        events_checked=walk.events,
        checkpoints_checked=walk.checkpoints,
        **_start_fields(walk.start),
    )


def _one_snapshot(session: Session) -> None:
    """Read the whole walk from one snapshot (PostgreSQL: REPEATABLE READ).

    Under READ COMMITTED each statement sees the latest commit: a prune committed between
    reading the seals and reading the events would look like deleted events. SQLite's read
    transaction is one snapshot already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options=cast("Any", {"isolation_level": "REPEATABLE READ"}))


def _start_fields(start: ChainStart) -> dict[str, Any]:
    return {
        "verified_from_seq": start.seq,
        "pruned_through": start.pruned_through,
        "pruned_at": start.pruned_at,
        "seals_checked": start.seals,
    }


def _walk_range(
    repo: AuditRepository, keys: AuditKeys, first_seq: int, last_seq: int, batch_size: int
) -> tuple[int, int]:
    """Check events ``first_seq - 1``..``last_seq``; (events, checkpoints) checked, or _Broken."""
    start, prev_hash = max(1, first_seq - 1), None
    chain = _check_seals(repo.prunes(), keys)
    if chain.pruned_through is not None and start <= chain.pruned_through:
        if first_seq <= chain.pruned_through:
            raise _Broken(
                first_seq,
                "pruned",
                f"events 1..{chain.pruned_through} were removed by retention under a signed seal",
            )
        # the event before the range was pruned: the seal's signed hash stands in for it
        start, prev_hash = first_seq, chain.prev_hash
    events = checkpoints = 0
    # only the checkpoints inside the range: their signatures, and the events they sign
    heads = _check_checkpoint_signatures(repo.checkpoints_between(start, last_seq), keys)
    expected_seq = start
    for row in repo.stream_events(batch_size=batch_size, after_seq=start - 1, until_seq=last_seq):
        link = GENESIS_HASH if row.seq == 1 else prev_hash
        # the first row's own link cannot be checked without its predecessor: its hash
        # (which covers prev_hash) and HMAC are
        _check_event(row, expected_seq, row.prev_hash if link is None else link, keys)
        signed = heads.get(row.seq)
        if signed is not None:
            if signed != row.hash:
                raise _Broken(row.seq, "edited", "event differs from signed checkpoint")
            checkpoints += 1
        prev_hash, expected_seq = row.hash, expected_seq + 1
        events += 1
    if expected_seq <= last_seq:
        raise _Broken(expected_seq, "deleted", f"event {expected_seq} missing")
    return events, checkpoints


def verify_range(
    factory: sessionmaker[Session],
    keys: AuditKeys,
    *,
    first_seq: int,
    last_seq: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> VerifyReport:
    """Verify the events ``first_seq``..``last_seq``: the evidence of one incident.

    Each event in the range must be guard's (HMAC), unedited (hash), in place (links to its
    predecessor, no gap), and match any signed checkpoint in the range; the event before the
    range is checked too, since the first one links to it. Cheap for an incident's range,
    where :func:`verify_chain` reads the whole trail.
    """
    with session_scope(factory) as session:
        _one_snapshot(session)
        try:
            events, checkpoints = _walk_range(
                AuditRepository(session), keys, first_seq, last_seq, batch_size
            )
        except _Broken as broken:
            return VerifyReport(
                ok=False,
                events_checked=0,
                checkpoints_checked=0,
                first_bad_seq=broken.seq,
                finding=broken.finding,
                detail=broken.detail,
            )
    return VerifyReport(ok=True, events_checked=events, checkpoints_checked=checkpoints)


def verify(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    keys: AuditKeys | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> VerifyReport:
    """Verify the audit chain of the database ``settings`` point at."""
    keys = keys or AuditKeys.from_settings(settings)
    if session_factory is not None:
        return verify_chain(session_factory, keys, batch_size=batch_size)
    engine = create_engine_for(settings)
    try:
        return verify_chain(make_session_factory(engine), keys, batch_size=batch_size)
    finally:
        engine.dispose()
