"""Data subject requests: open, read, extend, package, download, erase, close.

Access (GDPR Art. 15), portability (Art. 20) and erasure (Art. 17). Both front doors
(``/v1/subjects`` and ``guard subjects``) and the console call this service; it never raises
HTTP errors.

Auditing: every action that changes something or lets data out (open, extend, package,
download, erase, close) is audited here, success or failure, so that each door records the
same event; the reads (list, show) are audited by the door that shows them, under its own
action. Each event names the request as its resource (``subject-request:<id>``) and the record
id as its customer, so the trail's keyed hash links the request to everything else about that
customer; details are counts, slugs and redacted reasons only. Events are written after the
transaction that made the change has committed (the audit chain takes its own write lock).

A customer is found through the tenant's blind indexes (RecordService.search) or by record id.
The officer's stated reasons (the identity check, an extension, closing) are redacted as a
message to a customer would be, and the customer's own name, email, phone, address, date of
birth and account id are scrubbed whether or not detection finds them, before they are stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from guard.errors import GuardError
from guard.incidents.service import reference
from guard.records.errors import RecordErasedError, RecordNotFoundError
from guard.records.models import ENCRYPTED_FIELDS
from guard.records.service import decode_cursor, encode_cursor
from guard.storage.engine import session_scope
from guard.subjects.deadlines import (
    FUTURE_TOLERANCE,
    MAX_EXTENSION_MONTHS,
    clock,
    due_at,
    earliest_receipt,
    extended_due_at,
)
from guard.subjects.errors import (
    AmbiguousCustomerError,
    CustomerErasedError,
    CustomerNotFoundError,
    LegalHoldError,
    PackageExpiredError,
    PackageNotFoundError,
    RequestClosedError,
    RequestConflictError,
    RequestNotFoundError,
    SubjectInputError,
)
from guard.subjects.holds import is_held
from guard.subjects.letter import LetterContext, cover_letter
from guard.subjects.models import REQUEST_KINDS, REQUEST_STATUSES, SubjectPackage, SubjectRequest
from guard.subjects.package import (
    AuditItem,
    BuiltPackage,
    PackageContents,
    audit_item,
    write_package,
)
from guard.subjects.policy import RETENTION_FILENAME, RetentionPolicy, load_retention_policy
from guard.subjects.repository import SubjectRepository
from guard.subjects.schemas import (
    MAX_REASON,
    MIN_REASON,
    PackageInfo,
    SubjectRequestPage,
    SubjectRequestRead,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from sqlalchemy.orm import Session, sessionmaker

    from guard.audit.service import AuditTrail
    from guard.config import Settings
    from guard.records.service import DecryptedRecord, RecordService
    from guard.redaction.reasons import RedactReason

#: Audit resource of a request: ``subject-request:<id>``; of actions on no known request.
RESOURCE_PREFIX = "subject-request:"
RESOURCE = "subjects"
#: The records' audit resource (guard/records/endpoints.py), for the erasure's records.erase.
RECORDS_RESOURCE = "records"
STATUS_OPEN = "open"
#: Kinds a package answers; erasure is answered by erasing.
PACKAGE_KINDS = frozenset({"access", "portability"})
RESOLUTIONS = ("fulfilled", "rejected")
#: A package is kept this long when policies/retention.yaml sets no ``subject_packages``.
DEFAULT_PACKAGE_DAYS = 30
MAX_PAGE = 200
#: Events read per transaction while a package is written.
EVENT_BATCH = 1000
#: Timeline entries a request's page shows at most.
MAX_TIMELINE = 500
#: A record's fields that identify the customer, and the tag each becomes in a stated reason.
KNOWN_FIELDS: dict[str, str] = {
    "full_name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "postal_address": "LOCATION",
    "date_of_birth": "DATE_OF_BIRTH",
}
_READ_FOR_KNOWN = (*KNOWN_FIELDS, "account")
#: Record fields a letter may list as held (``notes_redacted`` is guard's copy of ``notes``).
LETTER_FIELDS = tuple(name for name in ENCRYPTED_FIELDS if name != "notes_redacted")
_IDENTIFIER_WORDS = {
    "record_id": "record id",
    "email": "email address",
    "phone": "phone number",
    "account_id": "account id",
}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who acts: an API caller, an officer in the console, or ``cli``; and in which tenant."""

    principal: str
    tenant: str
    role: str | None = None
    #: The HTTP request's id (its events are stored under the request's audit id).
    request_id: str | None = None


@dataclass(frozen=True)
class NewPackage:
    """A package just made: the request, what the package holds, and its passphrase (once)."""

    request: SubjectRequestRead
    info: PackageInfo
    built: BuiltPackage


@dataclass(frozen=True)
class StoredPackage:
    """An encrypted archive to hand over; the repr never shows its bytes."""

    request_id: str
    archive: bytes
    sha256: str
    size: int
    expires_at: datetime

    @property
    def filename(self) -> str:
        """The download's file name (the request id, never the customer's name)."""
        return f"subject-request-{self.request_id}.zip"

    def __repr__(self) -> str:
        return f"StoredPackage(request_id={self.request_id!r}, size={self.size})"


@dataclass(frozen=True)
class TimelineItem:
    """One audited action on a request (the console's timeline)."""

    seq: int
    ts: datetime
    action: str
    outcome: str
    principal: str | None
    role: str | None


class SubjectService:
    """The data subject requests of one database; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        records: RecordService,
        audit: AuditTrail,
        redact: RedactReason,
        retention: RetentionPolicy | None = None,
        letter: Callable[[Settings, LetterContext], str] | None = None,
    ) -> None:
        self._settings = settings
        self._factory = session_factory
        self._records = records
        self._audit = audit
        self._redact = redact
        self._retention = retention
        self._letter = letter or cover_letter

    @property
    def retention(self) -> RetentionPolicy:
        """policies/retention.yaml (loaded on first use)."""
        if self._retention is None:
            self._retention = load_retention_policy(
                self._settings.policies_dir / RETENTION_FILENAME
            )
        return self._retention

    # ------------------------------------------------------------------ open

    def open(
        self,
        *,
        actor: Actor,
        kind: str,
        identity_check: str,
        record_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        account_id: str | None = None,
        received_at: datetime | None = None,
        now: datetime | None = None,
    ) -> SubjectRequestRead:
        """Register a request for the customer matching exactly one identifier."""
        now = now or _now()
        given = {
            name: value
            for name, value in (
                ("record_id", record_id),
                ("email", email),
                ("phone", phone),
                ("account_id", account_id),
            )
            if value is not None
        }
        by = next(iter(given)) if len(given) == 1 else "invalid"
        details: dict[str, str | int | bool] = {
            "kind": kind if kind in REQUEST_KINDS else "invalid",
            "by": by,
        }
        found: str | None = None
        try:
            if len(given) != 1:
                raise SubjectInputError("give exactly one of: record_id, email, phone, account_id")
            if kind not in REQUEST_KINDS:
                raise SubjectInputError(f"kind must be one of {', '.join(REQUEST_KINDS)}")
            _check_reason("identity_check", identity_check)
            received = _received(received_at, now)
            record = self._find(actor.tenant, by, given[by])
            found = record.id
            stated = self._redact(identity_check, actor.tenant, known_values(record))
            row = SubjectRequest(
                id=str(uuid.uuid4()),
                tenant=actor.tenant,
                kind=kind,
                status=STATUS_OPEN,
                record_id=record.id,
                identity_check=stated,
                opened_by=actor.principal,
                received_at=received,
                opened_at=now,
                due_at=due_at(received),
            )
            with session_scope(self._factory, write=True) as session:
                SubjectRepository(session).add(row)
        except GuardError as exc:
            if isinstance(exc, CustomerErasedError):
                found = given.get("record_id")
            self._failed(actor, "subjects.open", None, found, exc, details)
            raise
        self._event(actor, "subjects.open", row.id, row.record_id, details)
        return _read(row, None, now)

    def _find(self, tenant: str, by: str, value: str) -> DecryptedRecord:
        """The one active record of ``tenant`` the identifier names (its identifying fields)."""
        words = _IDENTIFIER_WORDS[by]
        if by == "record_id":
            if not _is_uuid(value):
                raise CustomerNotFoundError(f"no customer in this tenant matches this {words}")
            try:
                return self._records.read(tenant=tenant, record_id=value, only=_READ_FOR_KNOWN)
            except RecordNotFoundError:
                raise CustomerNotFoundError(
                    f"no customer in this tenant matches this {words}"
                ) from None
            except RecordErasedError:
                raise CustomerErasedError(
                    "this customer's record was erased; only its tombstone remains"
                ) from None
        found = self._records.search(
            tenant=tenant,
            email=value if by == "email" else None,
            phone=value if by == "phone" else None,
            account_id=value if by == "account_id" else None,
            only=_READ_FOR_KNOWN,
        )
        if not found:
            raise CustomerNotFoundError(f"no customer in this tenant matches this {words}")
        if len(found) > 1:
            raise AmbiguousCustomerError(
                f"{len(found)} customers in this tenant share this {words}; "
                "identify the customer by record id"
            )
        return found[0]

    # ------------------------------------------------------------------ read

    def get(
        self, *, tenant: str, request_id: str, now: datetime | None = None
    ) -> SubjectRequestRead:
        """One request of ``tenant`` with its clock and package."""
        now = now or _now()
        with session_scope(self._factory) as session:
            repo = SubjectRepository(session)
            row = _request(repo, tenant, request_id)
            package = repo.package_infos([row.id]).get(row.id)
            return _read(row, package, now)

    def list_requests(
        self,
        *,
        tenant: str,
        status: str | None = None,
        kind: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        now: datetime | None = None,
    ) -> SubjectRequestPage:
        """The tenant's requests by due date (soonest first), ``limit`` at a time."""
        now = now or _now()
        if status is not None and status not in REQUEST_STATUSES:
            raise SubjectInputError(f"status must be one of {', '.join(REQUEST_STATUSES)}")
        if kind is not None and kind not in REQUEST_KINDS:
            raise SubjectInputError(f"kind must be one of {', '.join(REQUEST_KINDS)}")
        if not 1 <= limit <= MAX_PAGE:
            raise SubjectInputError(f"limit must be between 1 and {MAX_PAGE}")
        after = decode_cursor(cursor) if cursor else None
        with session_scope(self._factory) as session:
            repo = SubjectRepository(session)
            rows = repo.page(tenant=tenant, status=status, kind=kind, after=after, limit=limit + 1)
            shown = rows[:limit]
            packages = repo.package_infos([row.id for row in shown])
            requests = [_read(row, packages.get(row.id), now) for row in shown]
        next_cursor = None
        if len(rows) > limit:
            last = shown[-1]
            next_cursor = encode_cursor(last.due_at, last.id)
        return SubjectRequestPage(requests=requests, next_cursor=next_cursor)

    def timeline(self, *, tenant: str, request_id: str) -> list[TimelineItem]:
        """The audited actions on one request, oldest first (from the audit trail)."""
        with session_scope(self._factory) as session:
            repo = SubjectRepository(session)
            row = _request(repo, tenant, request_id)
            rows = repo.request_events(
                tenant=tenant,
                customer_hash=self._audit.customer_hash(row.record_id),
                resource=RESOURCE_PREFIX + row.id,
                limit=MAX_TIMELINE,
            )
        return [TimelineItem(r.seq, r.ts, r.action, r.outcome, r.principal, r.role) for r in rows]

    def audit_view(
        self,
        actor: Actor,
        action: str,
        request: SubjectRequestRead | None = None,
        **details: str | int | bool,
    ) -> None:
        """Audit a read by a door (list, show): the request and its customer, when one."""
        self._event(
            actor,
            action,
            None if request is None else request.id,
            None if request is None else request.record_id,
            details,
        )

    # ------------------------------------------------------------------ extend, close

    def extend(
        self,
        *,
        actor: Actor,
        request_id: str,
        reason: str,
        months: int = MAX_EXTENSION_MONTHS,
        now: datetime | None = None,
    ) -> SubjectRequestRead:
        """Extend the deadline by ``months`` (1 or 2) further months: once, within the first."""
        now = now or _now()
        details: dict[str, str | int | bool] = {"months": months}
        row: SubjectRequest | None = None
        try:
            if not 1 <= months <= MAX_EXTENSION_MONTHS:
                raise SubjectInputError(f"months must be between 1 and {MAX_EXTENSION_MONTHS}")
            _check_reason("reason", reason)
            row = self._open_request(actor.tenant, request_id)
            _check_extendable(row, now)
            stated = self._redact(reason, actor.tenant, self._known(actor.tenant, row.record_id))
            with session_scope(self._factory, write=True) as session:
                repo = SubjectRepository(session)
                current = _still_open(repo, row)
                _check_extendable(current, now)
                current.due_at = extended_due_at(current.received_at, months)
                current.extension_reason = stated
                repo.flush()
                package = repo.package_infos([current.id]).get(current.id)
                view = _read(current, package, now)
        except GuardError as exc:
            self._failed(actor, "subjects.extend", row, None, exc, details)
            raise
        self._event(
            actor, "subjects.extend", view.id, view.record_id, {**details, "reason": stated}
        )
        return view

    def close(
        self,
        *,
        actor: Actor,
        request_id: str,
        outcome: str,
        reason: str,
        now: datetime | None = None,
    ) -> SubjectRequestRead:
        """Close the request as fulfilled (answered) or rejected (refused), saying why."""
        now = now or _now()
        details: dict[str, str | int | bool] = {
            "resolution": outcome if outcome in RESOLUTIONS else "invalid"
        }
        row: SubjectRequest | None = None
        try:
            if outcome not in RESOLUTIONS:
                raise SubjectInputError(f"outcome must be one of {', '.join(RESOLUTIONS)}")
            _check_reason("reason", reason)
            row = self._open_request(actor.tenant, request_id)
            stated = self._redact(reason, actor.tenant, self._known(actor.tenant, row.record_id))
            with session_scope(self._factory, write=True) as session:
                repo = SubjectRepository(session)
                current = _still_open(repo, row)
                _close(current, actor, outcome, stated, now)
                repo.flush()
                package = repo.package_infos([current.id]).get(current.id)
                view = _read(current, package, now)
        except GuardError as exc:
            self._failed(actor, "subjects.close", row, None, exc, details)
            raise
        self._event(actor, "subjects.close", view.id, view.record_id, {**details, "reason": stated})
        return view

    # ------------------------------------------------------------------ the package

    def package(self, *, actor: Actor, request_id: str, now: datetime | None = None) -> NewPackage:
        """Build, encrypt and store the answer to an access or portability request.

        The passphrase is in the result once; a new package replaces the request's previous
        one (whose passphrase nobody should need any more).
        """
        now = now or _now()
        row: SubjectRequest | None = None
        try:
            row = self._open_request(actor.tenant, request_id)
            if row.kind not in PACKAGE_KINDS:
                raise RequestConflictError(
                    f"this is an {row.kind} request: a package answers access and portability "
                    "requests (erase the customer instead)"
                )
            built = self._build(row, now)
            stored = self._store(row, actor, built, now)
        except GuardError as exc:
            self._failed(actor, "subjects.package", row, None, exc, {})
            raise
        self._event(
            actor,
            "subjects.package",
            stored.request.id,
            stored.request.record_id,
            {
                "audit_events": built.audit_events,
                "incidents": built.incidents,
                "files": len(built.files),
                "bytes": built.size,
            },
        )
        return stored

    def _build(self, row: SubjectRequest, now: datetime) -> BuiltPackage:
        try:
            record = self._records.read(tenant=row.tenant, record_id=row.record_id)
        except (RecordErasedError, RecordNotFoundError):
            raise CustomerErasedError(
                "this customer's record was erased; there is nothing left to package"
            ) from None
        customer_hash = self._audit.customer_hash(record.id)
        with session_scope(self._factory) as session:
            repo = SubjectRepository(session)
            head = repo.audit_head(tenant=row.tenant, customer_hash=customer_hash)
            incidents = [
                _incident(incident)
                for incident in repo.incidents_about(tenant=row.tenant, customer_hash=customer_hash)
            ]
            requests = [
                _own_request(r) for r in repo.for_customer(tenant=row.tenant, record_id=record.id)
            ]
        fields_held = tuple(name for name in LETTER_FIELDS if record.fields.get(name) is not None)

        def letter(events: int, files: tuple[str, ...]) -> str:
            return self._letter(
                self._settings,
                LetterContext(
                    tenant=row.tenant,
                    kind=row.kind,
                    request_id=row.id,
                    received_at=row.received_at,
                    due_at=row.due_at,
                    customer_name=record.fields.get("full_name"),
                    fields_held=fields_held,
                    audit_events=events,
                    incidents=len(incidents),
                    files=files,
                ),
            )

        contents = PackageContents(
            request_id=row.id,
            kind=row.kind,
            tenant=row.tenant,
            generated_at=now,
            record={
                "id": record.id,
                "status": record.status,
                "created_at": record.created_at,
                "updated_at": record.updated_at,
                "fields": dict(record.fields),
            },
            notes=record.fields.get("notes"),
            events=lambda: self._events(row.tenant, customer_hash, head),
            incidents=incidents,
            requests=requests,
            letter=letter,
        )
        return write_package(contents)

    def _events(self, tenant: str, customer_hash: str, until_seq: int) -> Iterator[AuditItem]:
        """The events about the customer up to ``until_seq``, a batch per short transaction."""
        after = 0
        while True:
            with session_scope(self._factory) as session:
                rows = SubjectRepository(session).audit_events(
                    tenant=tenant,
                    customer_hash=customer_hash,
                    after_seq=after,
                    until_seq=until_seq,
                    limit=EVENT_BATCH,
                )
            yield from (audit_item(r) for r in rows)
            if len(rows) < EVENT_BATCH:
                return
            after = int(rows[-1].seq)

    def _store(
        self, row: SubjectRequest, actor: Actor, built: BuiltPackage, now: datetime
    ) -> NewPackage:
        period = self.retention.period(row.tenant, "subject_packages")
        keep = timedelta(days=DEFAULT_PACKAGE_DAYS if period is None else period.amount)
        package = SubjectPackage(
            id=str(uuid.uuid4()),
            request_id=row.id,
            tenant=row.tenant,
            created_by=actor.principal,
            created_at=now,
            expires_at=now + keep,
            archive=built.archive,
            sha256=built.sha256,
            size=built.size,
        )
        with session_scope(self._factory, write=True) as session:
            repo = SubjectRepository(session)
            current = _still_open(repo, row)
            repo.delete_packages(tenant=row.tenant, request_ids=[row.id])
            repo.add_package(package)
            view = _read(current, package, now)
        info = view.package
        assert info is not None  # noqa: S101 - just stored
        return NewPackage(request=view, info=info, built=built)

    def download(
        self, *, actor: Actor, request_id: str, now: datetime | None = None
    ) -> StoredPackage:
        """The request's stored (encrypted) package, until it expires; audited."""
        now = now or _now()
        row: SubjectRequest | None = None
        try:
            with session_scope(self._factory) as session:
                repo = SubjectRepository(session)
                row = _request(repo, actor.tenant, request_id)
                package = repo.package(row.id, tenant=actor.tenant)
            # checked after the read committed: a rollback would expire ``row`` for the audit
            if package is None:
                raise PackageNotFoundError("this request has no package; make one first")
            if package.expires_at <= now:
                raise PackageExpiredError(
                    "this request's package has expired; make a new one (a new passphrase "
                    "comes with it)"
                )
            stored = StoredPackage(
                request_id=row.id,
                archive=package.archive,
                sha256=package.sha256,
                size=package.size,
                expires_at=package.expires_at,
            )
        except GuardError as exc:
            self._failed(actor, "subjects.download", row, None, exc, {})
            raise
        self._event(actor, "subjects.download", row.id, row.record_id, {"bytes": stored.size})
        return stored

    # ------------------------------------------------------------------ erasure

    def erase(
        self, *, actor: Actor, request_id: str, now: datetime | None = None
    ) -> SubjectRequestRead:
        """Crypto-shred the customer (RecordService.erase) unless a legal hold covers them.

        Then every package of the customer is deleted and the request closed as fulfilled.
        A record erased already (by another path) fulfils the request as it stands. The
        shredding is audited as ``records.erase`` (``via: subject-request``), as the records'
        own erasure is, and the request's action as ``subjects.erase``.
        """
        now = now or _now()
        row: SubjectRequest | None = None
        try:
            row = self._open_request(actor.tenant, request_id)
            if row.kind != "erasure":
                raise RequestConflictError(
                    f"this is an {row.kind} request: only an erasure request erases the "
                    "customer (open one with kind erasure)"
                )
            shredded = self._shred(row)
            if shredded:
                # the records' own event, as DELETE /v1/records/{id} writes it: whichever door
                # shredded a record, the trail (and the erasure-burst rule) has records.erase
                self._audit.record(
                    action="records.erase",
                    resource=RECORDS_RESOURCE,
                    decision="allow",
                    outcome="success",
                    principal=actor.principal,
                    role=actor.role,
                    tenant=actor.tenant,
                    request_id=actor.request_id,
                    customer=row.record_id,
                    details={"crypto_shredded": True, "via": "subject-request"},
                )
            outcome = (
                "erased: the record's data key and every encrypted field were destroyed "
                "(crypto-shredding)"
                if shredded
                else "erased: the record had already been erased"
            )
            with session_scope(self._factory, write=True) as session:
                repo = SubjectRepository(session)
                current = _still_open(repo, row)
                mine = repo.for_customer(tenant=row.tenant, record_id=row.record_id)
                deleted = repo.delete_packages(tenant=row.tenant, request_ids=[r.id for r in mine])
                _close(current, actor, "fulfilled", outcome, now)
                repo.flush()
                view = _read(current, None, now)
        except GuardError as exc:
            self._failed(actor, "subjects.erase", row, None, exc, {})
            raise
        self._event(
            actor,
            "subjects.erase",
            view.id,
            view.record_id,
            {"crypto_shredded": shredded, "packages_deleted": deleted},
        )
        return view

    def _shred(self, row: SubjectRequest) -> bool:
        """Erase the record unless a legal hold covers it; False if it was erased already.

        The hold is checked in the erasing transaction, with the record's row locked: placing
        a hold on the customer locks the same row, so the two cannot cross.
        """
        customer_hash = self._audit.customer_hash(row.record_id)

        def unless_held(session: Session) -> None:
            if is_held(
                session, tenant=row.tenant, record_id=row.record_id, customer_hash=customer_hash
            ):
                raise LegalHoldError(
                    "a legal hold covers this customer: erasure is refused (GDPR Art. 17(3)(e)); "
                    "close the request as rejected, or erase once the hold is released"
                )

        try:
            self._records.erase(tenant=row.tenant, record_id=row.record_id, unless=unless_held)
        except RecordErasedError:
            return False
        except RecordNotFoundError:  # a request is opened only for a record of its tenant
            raise CustomerNotFoundError("no customer in this tenant matches this request") from None
        return True

    # ------------------------------------------------------------------ helpers

    def _open_request(self, tenant: str, request_id: str) -> SubjectRequest:
        with session_scope(self._factory) as session:
            row = _request(SubjectRepository(session), tenant, request_id)
        if row.status != STATUS_OPEN:
            raise RequestClosedError(
                f"this request is closed ({row.status}); it takes no further action"
            )
        return row

    def _known(self, tenant: str, record_id: str) -> dict[str, str]:
        """The customer's identifying values (none once erased), to scrub from reasons."""
        try:
            record = self._records.read(tenant=tenant, record_id=record_id, only=_READ_FOR_KNOWN)
        except (RecordErasedError, RecordNotFoundError):
            return {}
        return known_values(record)

    def _event(
        self,
        actor: Actor,
        action: str,
        request_id: str | None,
        customer: str | None,
        details: Mapping[str, str | int | bool],
        *,
        outcome: str = "success",
    ) -> None:
        self._audit.record(
            action=action,
            resource=RESOURCE_PREFIX + request_id if request_id else RESOURCE,
            decision="allow",
            outcome=outcome,
            principal=actor.principal,
            role=actor.role,
            tenant=actor.tenant,
            request_id=actor.request_id,
            customer=customer,
            details=details,
        )

    def _failed(
        self,
        actor: Actor,
        action: str,
        row: SubjectRequest | None,
        customer: str | None,
        exc: GuardError,
        details: Mapping[str, str | int | bool],
    ) -> None:
        """Audit a refused or failed action: its reason slug; the request if it was found."""
        self._event(
            actor,
            action,
            None if row is None else row.id,
            customer if row is None else row.record_id,
            {**details, "reason": exc.type_slug},
            outcome="failure",
        )


# ---------------------------------------------------------------------- module helpers


def known_values(record: DecryptedRecord) -> dict[str, str]:
    """The record's identifying values and their tags (what a stated reason must not hold)."""
    known = {
        str(record.fields[name]): tag
        for name, tag in KNOWN_FIELDS.items()
        if record.fields.get(name)
    }
    account = record.fields.get("account")
    if isinstance(account, dict) and isinstance(account.get("account_id"), str):
        known[account["account_id"]] = "ACCOUNT_ID"
    return known


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _request(repo: SubjectRepository, tenant: str, request_id: str) -> SubjectRequest:
    """The tenant's request, or "not found" (also for an id no request can have)."""
    row = repo.get(request_id, tenant=tenant) if _is_uuid(request_id) else None
    if row is None:
        raise RequestNotFoundError("no subject request with this id in this tenant")
    return row


def _still_open(repo: SubjectRepository, row: SubjectRequest) -> SubjectRequest:
    """The request locked for this transaction, still open (another action may have closed it)."""
    current = repo.get(row.id, tenant=row.tenant, for_update=True)
    if current is None:  # pragma: no cover - requests are never deleted but with their tenant
        raise RequestNotFoundError("no subject request with this id in this tenant")
    if current.status != STATUS_OPEN:
        raise RequestClosedError(
            f"this request is closed ({current.status}); it takes no further action"
        )
    return current


def _check_extendable(row: SubjectRequest, now: datetime) -> None:
    if row.extension_reason is not None:
        raise RequestConflictError(
            "the deadline was extended once already; GDPR Art. 12(3) allows one extension "
            "of up to two months"
        )
    if now > row.due_at:
        raise RequestConflictError(
            "the one-month deadline has passed: an extension must be decided, and the "
            "customer told, within it (GDPR Art. 12(3))"
        )


def _close(row: SubjectRequest, actor: Actor, status: str, outcome: str, now: datetime) -> None:
    row.status = status
    row.closed_at = now
    row.closed_by = actor.principal
    row.outcome = outcome


def _check_reason(name: str, text: str) -> None:
    if not isinstance(text, str) or len(text.strip()) < MIN_REASON:
        raise SubjectInputError(f"{name}: say it in at least {MIN_REASON} characters")
    if len(text) > MAX_REASON:
        raise SubjectInputError(f"{name}: at most {MAX_REASON} characters")


def _received(received_at: datetime | None, now: datetime) -> datetime:
    """When the request was received: not in the future, not before the oldest answerable."""
    if received_at is None:
        return now
    if received_at.tzinfo is None:
        raise SubjectInputError("received_at needs a time zone (e.g. 2024-05-01T09:30:00Z)")
    received = received_at.astimezone(UTC)
    if received > now + FUTURE_TOLERANCE:
        raise SubjectInputError("received_at is in the future")
    if received < earliest_receipt(now):
        raise SubjectInputError(
            "received_at is more than 3 months ago: even an extended deadline would have "
            "passed; check the date"
        )
    return received


def _read(row: SubjectRequest, package: SubjectPackage | None, now: datetime) -> SubjectRequestRead:
    ticking = clock(row.due_at, now=now, closed_at=row.closed_at)
    return SubjectRequestRead(
        id=row.id,
        kind=row.kind,
        status=row.status,
        record_id=row.record_id,
        identity_check=row.identity_check,
        opened_by=row.opened_by,
        received_at=row.received_at,
        opened_at=row.opened_at,
        due_at=row.due_at,
        time_left_seconds=ticking.time_left_seconds,
        overdue=ticking.overdue,
        extended=row.extension_reason is not None,
        extension_reason=row.extension_reason,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        outcome=row.outcome,
        package=None
        if package is None
        else PackageInfo(
            created_at=package.created_at,
            expires_at=package.expires_at,
            sha256=package.sha256,
            size=package.size,
        ),
    )


def _own_request(row: SubjectRequest) -> dict[str, Any]:
    """A request as the customer's package lists it: no staff names."""
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "received_at": row.received_at,
        "due_at": row.due_at,
        "identity_check": row.identity_check,
        "extended": row.extension_reason is not None,
        "extension_reason": row.extension_reason,
        "closed_at": row.closed_at,
        "outcome": row.outcome,
    }


def _incident(row: Any) -> dict[str, Any]:  # noqa: ANN401 - an Incident row
    """An incident as the customer's package lists it: no other customer, no staff."""
    return {
        "id": row.id,
        "reference": reference(row.number),
        "title": row.title,
        "opened_at": row.became_aware_at,
        "status": row.status,
        "customers_notified_at": row.customers_notified_at,
        "closed_at": row.closed_at,
    }
