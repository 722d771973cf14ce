"""The hash chain: canonical encoding of events and checkpoints, and sealing of new events.

Threat: an attacker with write access to the database edits, deletes, inserts or reorders
events to hide what a principal did. Each event's hash covers every field, including its
sequence number and the previous event's hash, so any change breaks the chain from that point;
the HMAC over the hash (key outside the database, see :mod:`guard.crypto.audit_keys`) stops an
attacker from simply recomputing the chain; signed checkpoints fix the head at intervals so that
cutting events off the end is detected too. Retention removes the oldest events only under a
signed prune seal (:func:`prune_payload`): the hash of the last removed event, from which the
chain goes on. Encodings here are canonical (fixed field order,
compact JSON, UTC microsecond timestamps) so that every process and every database yields the
same bytes for the same event.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from guard.crypto.audit_keys import AuditKeys

#: prev_hash of the first event.
GENESIS_HASH = "0" * 64
#: Tag at the start of every hashed event; a new encoding gets a new tag.
EVENT_TAG = "guard-audit-event/v1"
CHECKPOINT_TAG = "guard-audit-checkpoint/v1"
#: Tag of a prune seal: a signature over the last event of a removed prefix (retention).
PRUNE_TAG = "guard-audit-prune/v1"

#: The content fields of an event, in hashing order (seq and prev_hash are added around them).
CONTENT_FIELDS = (
    "ts",
    "principal",
    "role",
    "tenant",
    "action",
    "resource",
    "decision",
    "outcome",
    "request_id",
    "customer",
    "entity_counts",
    "details",
)


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys: the one encoding hashed, stored and compared."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_ts(ts: datetime) -> str:
    """A timestamp as UTC ISO 8601 with microseconds, e.g. ``2025-01-31T09:15:00.000001Z``."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime in the audit chain")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(seq: int, prev_hash: str, content: Mapping[Any, Any]) -> str:
    """SHA-256 (hex) of the canonical encoding of one event with its position in the chain."""
    fields: list[object] = [EVENT_TAG, seq]
    for name in CONTENT_FIELDS:
        value = content[name]
        fields.append(format_ts(value) if name == "ts" else value)
    fields.append(prev_hash)
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def seal_event(
    content: Mapping[str, Any], *, seq: int, prev_hash: str, keys: AuditKeys
) -> dict[str, Any]:
    """The full row of a new event: content plus seq, prev_hash, hash and hmac."""
    digest = event_hash(seq, prev_hash, content)
    return {
        **{name: content[name] for name in CONTENT_FIELDS},
        "seq": seq,
        "prev_hash": prev_hash,
        "hash": digest,
        "hmac": keys.chain_mac(digest),
    }


def checkpoint_payload(seq: int, head_hash: str, ts: datetime) -> bytes:
    """The bytes a checkpoint signature covers."""
    return canonical_json([CHECKPOINT_TAG, seq, head_hash, format_ts(ts)]).encode("utf-8")


def prune_payload(seq: int, head_hash: str, ts: datetime, events_removed: int) -> bytes:
    """The bytes a prune seal's signature covers: the prefix's last event and its size.

    Its own tag keeps a checkpoint's signature from passing as a seal's, and the other way round.
    """
    return canonical_json([PRUNE_TAG, seq, head_hash, format_ts(ts), events_removed]).encode(
        "utf-8"
    )
