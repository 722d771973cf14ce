"""The audit trail: events go through a dedicated structlog processor chain into the store.

Threat: an audit trail that holds raw customer data becomes the breach; one that callers can
fill with arbitrary fields soon does. The processors in front of the store therefore validate
the required fields and their vocabularies, replace identifiers (``customer`` and ``*_id``-style
detail keys) by keyed hashes, and refuse any key that looks like it carries a payload (text,
value, email, phone, name, ...), before the last processor appends the event to the chain
under a database lock. Refusals raise :class:`AuditInputError` naming the field, never the
value. This logger is separate from operational logging: nothing here is ever printed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import UTC
from typing import IO, TYPE_CHECKING, Any

import structlog

from guard.audit.chain import canonical_json
from guard.audit.context import current_request_audit
from guard.audit.errors import AuditInputError, AuditStoreError
from guard.audit.repository import AuditRepository
from guard.audit.schemas import AuditEventRead, AuditFilters, AuditPage, ExportFormat
from guard.audit.writer import ChainWriter
from guard.crypto.audit_keys import AuditKeys
from guard.storage.engine import (
    create_engine_for,
    make_session_factory,
    session_scope,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from structlog.typing import EventDict, Processor, WrappedLogger

    from guard.audit.models import AuditEvent
    from guard.audit.schemas import VerifyReport
    from guard.config import Settings

log = structlog.get_logger(__name__)

DECISIONS = frozenset({"allow", "deny"})
OUTCOMES = frozenset({"success", "failure", "error"})
#: Field name -> maximum length (the column sizes).
_OPTIONAL_FIELDS = {"principal": 200, "role": 64, "tenant": 63, "request_id": 64}
_ALLOWED_FIELDS = frozenset(
    {
        "action",
        "resource",
        "decision",
        "outcome",
        "customer",
        "entity_counts",
        "details",
        *_OPTIONAL_FIELDS,
    }
)
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL_SHAPED = re.compile(r"[^\s@]+@[^\s@]+\.[A-Za-z]{2,}")
#: Words that, as a key or a ``_``-separated part of one, mean the value is probably raw data.
PAYLOAD_WORDS = frozenset(
    {
        "text",
        "texts",
        "value",
        "values",
        "payload",
        "body",
        "document",
        "content",
        "message",
        "email",
        "phone",
        "name",
        "names",
        "address",
        "ssn",
        "card",
        "iban",
        "dob",
        "birthdate",
        "password",
        "secret",
        "raw",
    }
)
#: Detail keys whose values are identifiers: stored as keyed hashes (kind = key without _id).
IDENTIFIER_DETAIL_KEYS = frozenset({"customer_id", "account_id", "user_id", "subject_id"})
MAX_DETAILS = 32
MAX_RESOURCE = 200
MAX_DETAIL_STRING = 500
MAX_EXPORT_BATCH = 1000


def _looks_like_payload(key: str) -> bool:
    lowered = key.lower()
    return lowered in PAYLOAD_WORDS or any(part in PAYLOAD_WORDS for part in lowered.split("_"))


# ------------------------------------------------------------------------------ processors


def _check_core(event_dict: EventDict) -> None:
    action = event_dict.get("action")
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise AuditInputError("audit field 'action' must be a dotted name of 1-64 characters")
    resource = event_dict.get("resource")
    if not isinstance(resource, str) or not 0 < len(resource) <= MAX_RESOURCE:
        raise AuditInputError(f"audit field 'resource' must be 1-{MAX_RESOURCE} characters")
    if _CONTROL.search(resource):
        raise AuditInputError("audit field 'resource' contains control characters")
    if event_dict.get("decision") not in DECISIONS:
        raise AuditInputError("audit field 'decision' must be 'allow' or 'deny'")
    if event_dict.get("outcome") not in OUTCOMES:
        raise AuditInputError("audit field 'outcome' must be 'success', 'failure' or 'error'")
    for name, limit in _OPTIONAL_FIELDS.items():
        value = event_dict.setdefault(name, None)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise AuditInputError(f"audit field '{name}' must be text of at most {limit} chars")
    customer = event_dict.setdefault("customer", None)
    if customer is not None and (not isinstance(customer, str) or not customer):
        raise AuditInputError("audit field 'customer' must be a non-empty identifier")


def _checked_counts(counts: Mapping[Any, Any]) -> dict[str, int]:
    for entity, count in counts.items():
        if not isinstance(entity, str) or not _KEY.fullmatch(entity):
            raise AuditInputError("audit field 'entity_counts' has a malformed entity type")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise AuditInputError(f"audit entity count for {entity} must be an integer >= 0")
    return dict(counts)


def _checked_details(details: Mapping[Any, Any]) -> dict[str, str | int | bool]:
    if len(details) > MAX_DETAILS:
        raise AuditInputError(f"audit field 'details' has more than {MAX_DETAILS} keys")
    for key, value in details.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise AuditInputError("audit field 'details' has a malformed key")
        if not isinstance(value, str | int | bool):
            raise AuditInputError(f"audit detail '{key}' must be text, integer or boolean")
        if isinstance(value, str) and len(value) > MAX_DETAIL_STRING:
            raise AuditInputError(f"audit detail '{key}' is longer than {MAX_DETAIL_STRING}")
    return dict(details)


def require_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Check required fields, vocabularies, types and sizes; refuse unknown top-level keys."""
    unknown = set(event_dict) - _ALLOWED_FIELDS
    if unknown:
        raise AuditInputError(f"audit event has unknown fields: {', '.join(sorted(unknown))}")
    _check_core(event_dict)
    event_dict["entity_counts"] = _checked_counts(event_dict.get("entity_counts") or {})
    event_dict["details"] = _checked_details(event_dict.get("details") or {})
    return event_dict


class HashIdentifiers:
    """Replace ``customer`` and identifier detail values by keyed hashes."""

    def __init__(self, keys: AuditKeys) -> None:
        self._keys = keys

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        """Hash identifiers in place."""
        customer = event_dict["customer"]
        if customer is not None:
            event_dict["customer"] = self._keys.identifier_hash("customer", customer)
        details: dict[str, Any] = event_dict["details"]
        for key in IDENTIFIER_DETAIL_KEYS.intersection(details):
            value = details[key]
            if not isinstance(value, str):
                raise AuditInputError(f"audit detail '{key}' must be an identifier (text)")
            details[key] = self._keys.identifier_hash(key.removesuffix("_id"), value)
        return event_dict


def refuse_payloads(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Refuse detail keys that look like raw payloads and email-shaped detail values."""
    details: dict[str, Any] = event_dict["details"]
    for key, value in details.items():
        if _looks_like_payload(key):
            raise AuditInputError(
                f"audit detail '{key}' looks like raw data; record counts, types or hashes"
            )
        if isinstance(value, str) and _EMAIL_SHAPED.search(value):
            raise AuditInputError(f"audit detail '{key}' looks like it holds an email address")
    return event_dict


def canonicalize(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Encode entity counts and details as canonical JSON text, as stored and hashed."""
    event_dict["entity_counts"] = canonical_json(event_dict["entity_counts"])
    event_dict["details"] = canonical_json(event_dict["details"])
    return event_dict


class AppendToChain:
    """Final processor: append the event to the chain through this process's group commit.

    The event is durable when this returns: see :mod:`guard.audit.writer` for how concurrent
    events share one transaction, and why the chain order is still the commit order.
    """

    def __init__(self, writer: ChainWriter) -> None:
        self._writer = writer

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        """Hand the validated event to the writer; the stored row comes back once committed."""
        return self._writer.append(event_dict)


def event_to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as a JSON-ready dict (counts and details decoded, ts as ISO 8601)."""
    out = dict(row)
    out["ts"] = row["ts"].astimezone(UTC).isoformat()
    out["entity_counts"] = json.loads(row["entity_counts"])
    out["details"] = json.loads(row["details"])
    return out


class _AuditSink:
    """What the processor chain hands the appended row to: the optional JSONL mirror."""

    def __init__(self, jsonl_path: Path | None) -> None:
        self._jsonl_path = jsonl_path

    def append(self, **row: Any) -> int:  # noqa: ANN401 - structlog passes the event dict
        """Mirror the committed row to the JSONL file (if configured); return its seq."""
        if self._jsonl_path is not None:
            line = canonical_json(event_to_json(row)) + "\n"
            try:
                self._jsonl_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._jsonl_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8"))
                finally:
                    os.close(fd)
            except OSError as exc:
                # The database holds the event; the mirror is a convenience for log shippers.
                log.warning("audit_jsonl_mirror_failed", seq=row["seq"], error=exc.strerror)
        return int(row["seq"])


class _AuditLogger(structlog.BoundLoggerBase):
    """A structlog bound logger whose one method appends an audit event."""

    def append(self, **fields: Any) -> int:  # noqa: ANN401 - validated by the processors
        """Run the processors; the sink returns the new event's seq."""
        seq: int = self._proxy_to_logger("append", None, **fields)
        return seq


class AuditTrail:
    """Record, search, export and verify the audit trail; the only writer of audit events."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session] | None = None,
        keys: AuditKeys | None = None,
    ) -> None:
        self._settings = settings
        self._engine: Engine | None = None
        if session_factory is None:
            self._engine = create_engine_for(settings)
            session_factory = make_session_factory(self._engine)
        self._factory = session_factory
        self._keys = keys or AuditKeys.from_settings(settings)
        self._writer = ChainWriter(
            session_factory,
            self._keys,
            checkpoint_events=settings.audit_checkpoint_events,
            checkpoint_seconds=settings.audit_checkpoint_seconds,
        )
        processors: list[Processor] = [
            require_fields,
            HashIdentifiers(self._keys),
            refuse_payloads,
            canonicalize,
            AppendToChain(self._writer),
        ]
        self._logger = _AuditLogger(
            _AuditSink(settings.audit_jsonl_path), processors=processors, context={}
        )

    @property
    def keys(self) -> AuditKeys:
        """The audit keys in use."""
        return self._keys

    @property
    def writer(self) -> ChainWriter:
        """The appender of this process (group commit); its counters show the grouping."""
        return self._writer

    def record(
        self,
        *,
        action: str,
        resource: str,
        decision: str,
        outcome: str,
        principal: str | None = None,
        role: str | None = None,
        tenant: str | None = None,
        request_id: str | None = None,
        entity_counts: Mapping[str, int] | None = None,
        customer: str | None = None,
        details: Mapping[str, str | int | bool] | None = None,
    ) -> int:
        """Append one event to the chain; return its sequence number.

        Inside an HTTP request (see :mod:`guard.audit.context`) an event for that request is
        stored under guard's own request id, with the client's ``X-Request-ID`` as
        ``correlation_id``, and the request is marked as audited once the event is written.
        """
        request = current_request_audit()
        if request is not None and request.owns(request_id):
            request_id = request.audit_request_id
            if request.correlation_id is not None:
                details = {**(details or {}), "correlation_id": request.correlation_id}
        else:
            request = None
        try:
            seq = self._logger.append(
                action=action,
                resource=resource,
                decision=decision,
                outcome=outcome,
                principal=principal,
                role=role,
                tenant=tenant,
                request_id=request_id,
                entity_counts=entity_counts,
                customer=customer,
                details=details,
            )
        except AuditInputError:
            raise
        except Exception as exc:
            if isinstance(exc, AuditStoreError) or not _is_database_error(exc):
                raise
            log.exception("audit_append_failed", action=action)
            raise AuditStoreError("the audit trail could not record the event") from None
        if request is not None:
            request.mark_audited()
        return seq

    def latest_seq(self, action: str, *, outcome: str = "success") -> int | None:
        """The seq of the newest ``action`` event with ``outcome`` (e.g. the last reload)."""
        with session_scope(self._factory) as session:
            return AuditRepository(session).latest_seq(action, outcome=outcome)

    def customer_hash(self, customer: str) -> str:
        """The keyed hash under which events about ``customer`` are stored."""
        return self._keys.identifier_hash("customer", customer)

    def path_params_hash(self, params: Mapping[str, object]) -> str:
        """Keyed hash of a matched route's path parameters (``path_hash`` in events).

        The parameters are hashed as ASCII-escaped JSON with sorted keys, so any value (control
        characters, lone surrogates, 10 KB ids) hashes without error; an investigator holding
        the audit keys can check whether ``{"record_id": "..."}`` was asked for.
        """
        text = json.dumps({str(k): str(v) for k, v in params.items()}, sort_keys=True)
        return self._keys.identifier_hash("path_params", text)

    def raw_path_hash(self, raw_path: bytes) -> str:
        """Keyed hash of a path no route matched, as sent (percent-encoded bytes)."""
        return self._keys.identifier_hash("path", raw_path.decode("latin-1"))

    def client_hash(self, address: str) -> str:
        """Keyed hash of a client address (addresses are personal data: never stored raw)."""
        return self._keys.identifier_hash("client", address.encode("utf-8", "replace").decode())

    def search(
        self, filters: AuditFilters, *, limit: int = 100, cursor: int | None = None
    ) -> AuditPage:
        """Events matching ``filters`` after ``cursor`` (a seq), oldest first."""
        if limit < 1:
            raise AuditInputError("limit must be at least 1")
        customer_hash = None if filters.customer is None else self.customer_hash(filters.customer)
        with session_scope(self._factory) as session:
            rows = AuditRepository(session).search(
                filters, customer_hash=customer_hash, limit=limit + 1, after_seq=cursor or 0
            )
            events = [_read(row) for row in rows[:limit]]
        next_cursor = events[-1].seq if len(rows) > limit else None
        return AuditPage(events=events, next_cursor=next_cursor)

    def search_events(self, *, limit: int = 1000, **filters: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - AuditFilters fields, validated there
        """Matching events as JSON-ready dicts (a convenience for tests and tools)."""
        page = self.search(AuditFilters(**filters), limit=limit)
        return [event.model_dump(mode="json") for event in page.events]

    def iter_events(self, filters: AuditFilters) -> Iterator[AuditEventRead]:
        """Every event matching ``filters``, in batches."""
        cursor: int | None = None
        while True:
            page = self.search(filters, limit=MAX_EXPORT_BATCH, cursor=cursor)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def export(self, filters: AuditFilters, fmt: ExportFormat, out: IO[str]) -> int:
        """Write matching events to ``out`` as JSONL or CSV; return how many."""
        count = -1 if fmt == "csv" else 0  # the CSV header is a line, not an event
        for line in self.export_lines(filters, fmt):
            out.write(line)
            count += 1
        return max(count, 0)

    def export_lines(self, filters: AuditFilters, fmt: ExportFormat) -> Iterator[str]:
        """Matching events as JSONL or CSV lines (a CSV header first), one at a time."""
        if fmt == "jsonl":
            for event in self.iter_events(filters):
                yield event.model_dump_json() + "\n"
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for event in self.iter_events(filters):
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            data = event.model_dump(mode="json")
            writer.writerow([_csv_cell(data[column]) for column in CSV_COLUMNS])
        yield buffer.getvalue()

    def verify(self, *, batch_size: int = 10_000) -> VerifyReport:
        """Verify the whole chain and its checkpoints (see :mod:`guard.audit.verify`)."""
        from guard.audit.verify import verify_chain  # noqa: PLC0415 - verify imports service

        return verify_chain(self._factory, self._keys, batch_size=batch_size)

    def evidence_bundle(self, *, first_seq: int, last_seq: int) -> bytes:
        """A signed evidence bundle (a ZIP) of events ``first_seq``..``last_seq``.

        See :mod:`guard.audit.bundle`; a range that is empty, reversed, larger than a million
        events or beyond the head raises :class:`AuditInputError`. Recording that a bundle was
        made is the caller's (it knows who asked).
        """
        from guard.audit.bundle import build_bundle  # noqa: PLC0415 - ZIP code loads on use

        return build_bundle(
            self._factory, self._keys, self._settings, first_seq=first_seq, last_seq=last_seq
        )

    def close(self) -> None:
        """Dispose of the engine this trail created (if any), and the writer's turn file."""
        self._writer.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


CSV_COLUMNS = tuple(AuditEventRead.model_fields)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not execute as a formula."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return canonical_json(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _read(row: AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        seq=row.seq,
        ts=row.ts,
        principal=row.principal,
        role=row.role,
        tenant=row.tenant,
        action=row.action,
        resource=row.resource,
        decision=row.decision,
        outcome=row.outcome,
        request_id=row.request_id,
        customer=row.customer,
        entity_counts=json.loads(row.entity_counts),
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
        hmac=row.hmac,
    )


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - only on the error path

    return isinstance(exc, SQLAlchemyError)
