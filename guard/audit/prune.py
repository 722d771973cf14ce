"""Pruning the audit trail for retention: remove the oldest events under a signed seal.

Threat: the chain is only evidence while every stored event can be checked, and an operator who
may delete old events (storage limitation, GDPR Art. 5(1)(e)) could otherwise also delete
inconvenient ones, or hide tampering by deleting the tampered rows. So a prune removes only a
*prefix* of the chain (events 1..N, or the events after the previous seal up to N), only after
those events verify (hash, HMAC, links, the checkpoints among them: a prune never launders an
edit), and only together with a seal: an Ed25519 signature under the checkpoint key over N, the
hash of event N, the time and the number of events removed (:func:`~guard.audit.chain.
prune_payload`, its own tag). Seal, deletion and the checkpoints up to N go in one transaction.
``guard audit verify`` then checks the seals and walks from N + 1 with the sealed hash as the
previous one, so every later edit, deletion or insertion is found as before. On PostgreSQL the
append-only trigger lets a DELETE through only below a seal the same transaction names.

What may go is decided by :class:`PruneRules`: each event is past its own tenant's period (the
default for events without a tenant), is not about a held customer (keyed hash), is before the
evidence of any held incident, before the head (an empty table would restart the chain at seq 1)
and not beyond a ceiling (the incident scanner's cursor: every event is evaluated by the rules
before it can go). The chain is global, so the first event that must stay ends the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from guard.audit.chain import prune_payload
from guard.audit.repository import AuditRepository
from guard.audit.verify import check_prefix, newest_start

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Row
    from sqlalchemy.orm import Session

    from guard.crypto.audit_keys import AuditKeys

#: Rows read per query while looking for the end of the prunable prefix.
SCAN_BATCH = 5_000

#: Why a prefix ends (the event after it must stay, or a limit was reached).
STOP_RETAINED = "retained"
STOP_HELD_CUSTOMER = "held-customer"
STOP_HELD_INCIDENT = "held-incident"
STOP_HEAD = "head"
STOP_SCANNER = "scanner"
STOP_BATCH = "batch"


@dataclass(frozen=True)
class PruneRules:
    """Which events may be pruned: periods per tenant, holds, and a ceiling."""

    #: Named tenant -> its events older than this may go; None: that tenant keeps its events.
    cutoffs: Mapping[str, datetime | None]
    #: For events of other tenants and events without a tenant; None: they are kept.
    default_cutoff: datetime | None
    #: Keyed customer hashes a legal hold covers: events about them stay.
    held_customers: frozenset[str] = frozenset()
    #: The first event of a held incident's evidence: it and every later event stay.
    held_from_seq: int | None = None
    #: Never prune beyond this seq (the incident scanner's cursor, the head when a run began);
    #: None: no ceiling but the head.
    ceiling_seq: int | None = None
    #: What the ceiling is, for the report (one of the ``STOP_*`` slugs).
    ceiling_stop: str = STOP_SCANNER

    def stop_reason(self, row: Row[object]) -> str | None:
        """Why this event must stay, or None if it may go (holds and periods; not limits)."""
        if row.customer is not None and row.customer in self.held_customers:
            return STOP_HELD_CUSTOMER
        tenant = row.tenant
        cutoff = (
            self.cutoffs[tenant]
            if tenant is not None and tenant in self.cutoffs
            else self.default_cutoff
        )
        if cutoff is None or row.ts >= cutoff:
            return STOP_RETAINED
        return None


@dataclass(frozen=True)
class PrefixPlan:
    """The prunable prefix: events ``first_seq``..``through_seq`` (none when through < first)."""

    first_seq: int
    through_seq: int
    #: Why it ends there (one of the ``STOP_*`` slugs).
    stop: str

    @property
    def events(self) -> int:
        """How many events the prefix holds."""
        return max(0, self.through_seq - self.first_seq + 1)


@dataclass(frozen=True)
class PruneSeal:
    """A seal written by :meth:`AuditPruner.prune`."""

    seq: int
    head_hash: str
    ts: datetime
    events_removed: int


class AuditPruner:
    """Plans and performs prunes of the audit trail inside the caller's transaction."""

    def __init__(self, keys: AuditKeys, *, scan_batch: int = SCAN_BATCH) -> None:
        self._keys = keys
        self._scan_batch = scan_batch

    def plan(self, session: Session, rules: PruneRules, *, limit: int | None = None) -> PrefixPlan:
        """The longest prunable prefix now (at most ``limit`` events); reads only."""
        repo = AuditRepository(session)
        start = newest_start(repo, self._keys)
        head = repo.head()
        return self._plan(repo, rules, start.seq, 0 if head is None else head[0], limit)

    def prune(
        self, session: Session, rules: PruneRules, *, limit: int
    ) -> tuple[PrefixPlan, PruneSeal | None]:
        """Seal and remove the prunable prefix (at most ``limit`` events); the plan and seal.

        The seal is None when the prefix is empty (the plan says why).

        The caller's session must be a write transaction (on SQLite ``BEGIN IMMEDIATE``); it
        commits seal and deletion together, or neither. The chain lock is held meanwhile, so
        the head cannot move under the plan.
        """
        repo = AuditRepository(session)
        repo.lock_chain()
        start = newest_start(repo, self._keys)
        head = repo.head()
        plan = self._plan(repo, rules, start.seq, 0 if head is None else head[0], limit)
        if plan.events == 0:
            return plan, None
        head_hash = check_prefix(repo, self._keys, start, plan.through_seq)
        now = datetime.now(UTC)
        removed = plan.through_seq - (start.seq - 1)
        signature = self._keys.sign_checkpoint(
            prune_payload(plan.through_seq, head_hash, now, removed)
        )
        repo.insert_prune(
            {
                "seq": plan.through_seq,
                "head_hash": head_hash,
                "ts": now,
                "events_removed": removed,
                "signature": signature.hex(),
                "key_id": self._keys.signing_key_id,
            }
        )
        deleted = repo.delete_through(plan.through_seq)
        if deleted != plan.events:  # pragma: no cover - check_prefix saw every one of them
            msg = f"pruning removed {deleted} events where {plan.events} were verified"
            raise RuntimeError(msg)
        return plan, PruneSeal(
            seq=plan.through_seq, head_hash=head_hash, ts=now, events_removed=removed
        )

    def _plan(
        self,
        repo: AuditRepository,
        rules: PruneRules,
        first_seq: int,
        head_seq: int,
        limit: int | None,
    ) -> PrefixPlan:
        # the limits first: the prefix never reaches the head, held evidence, the scanner's
        # cursor or the batch size; the scan then stops at the first event that must stay
        ceiling, stop = head_seq - 1, STOP_HEAD
        for bound, reason in (
            (None if rules.held_from_seq is None else rules.held_from_seq - 1, STOP_HELD_INCIDENT),
            (rules.ceiling_seq, rules.ceiling_stop),
            (None if limit is None else first_seq - 1 + limit, STOP_BATCH),
        ):
            if bound is not None and bound < ceiling:
                ceiling, stop = bound, reason
        after = first_seq - 1
        while after < ceiling:
            rows = repo.prefix_rows(after, limit=min(self._scan_batch, ceiling - after))
            if not rows:
                break
            for row in rows:
                kept = rules.stop_reason(row)
                if kept is not None:
                    return PrefixPlan(first_seq=first_seq, through_seq=row.seq - 1, stop=kept)
            after = rows[-1].seq
        return PrefixPlan(first_seq=first_seq, through_seq=max(ceiling, first_seq - 1), stop=stop)
