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

from typing import TYPE_CHECKING, Any

from guard.audit.chain import GENESIS_HASH, checkpoint_payload, event_hash
from guard.audit.repository import AuditRepository
from guard.audit.schemas import Finding, VerifyReport
from guard.crypto.audit_keys import AuditKeys
from guard.storage.engine import create_engine_for, make_session_factory, session_scope

if TYPE_CHECKING:
    from collections.abc import Sequence

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

    def run(self) -> None:
        heads = _check_checkpoint_signatures(self.repo.checkpoints(), self.keys)
        prev_hash = GENESIS_HASH
        expected_seq = 1
        for row in self.repo.stream_events(batch_size=self.batch_size):
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
            )
    return VerifyReport(ok=True, events_checked=walk.events, checkpoints_checked=walk.checkpoints)


def _walk_range(
    repo: AuditRepository, keys: AuditKeys, first_seq: int, last_seq: int, batch_size: int
) -> tuple[int, int]:
    """Check events ``first_seq - 1``..``last_seq``; (events, checkpoints) checked, or _Broken."""
    start = max(1, first_seq - 1)
    events = checkpoints = 0
    # only the checkpoints inside the range: their signatures, and the events they sign
    heads = _check_checkpoint_signatures(repo.checkpoints_between(start, last_seq), keys)
    expected_seq, prev_hash = start, None
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
