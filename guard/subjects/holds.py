"""Legal holds: what retention and erasure must leave alone while a hold stands.

A hold on a customer covers their record (notes included) and the audit events about them; a
hold on an incident covers every customer the incident affected, and the incident's evidence.
GDPR Art. 17(3)(e): erasure does not apply where the data is needed for legal claims.

Holds are placed and released by compliance officers (``/v1/retention/holds``, ``guard
retention holds``) on a target of their own tenant: a customer record, or an incident of the
tenant or a system-wide one. The reason is stored redacted (personal data in it, and the held
customer's own name, email and phone, are replaced before it reaches the table or the trail).
The queries here are the only ones on ``legal_holds``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select

from guard.errors import GuardError, InvalidInputError
from guard.incidents.models import Incident, IncidentCustomer
from guard.records.errors import RecordErasedError
from guard.records.models import CustomerRecord
from guard.storage.engine import session_scope
from guard.subjects.models import LegalHold

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from sqlalchemy.orm import Session, sessionmaker

    from guard.records.service import RecordService

SCOPE_CUSTOMER = "customer"
SCOPE_INCIDENT = "incident"
SCOPES: tuple[str, ...] = (SCOPE_CUSTOMER, SCOPE_INCIDENT)
#: A stated reason shorter than this (after trimming) is no reason.
MIN_REASON = 3
MAX_REASON = 1000
#: What the held customer's own values are replaced by in a reason (entity type per field).
_KNOWN_FIELDS = {"full_name": "PERSON", "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER"}


class HoldInputError(InvalidInputError):
    """A hold request guard will not accept (scope, target or reason), named in the message."""


class HoldTargetNotFoundError(GuardError):
    """No customer record or incident with this id in the caller's tenant."""

    status_code = 404
    type_slug = "not-found"


class HoldNotFoundError(GuardError):
    """No legal hold with this id in the caller's tenant (another tenant's is not found)."""

    status_code = 404
    type_slug = "not-found"


class HoldReleasedError(GuardError):
    """The hold was released already; a release is final (place a new hold instead)."""

    status_code = 409
    type_slug = "hold-released"


def is_held(session: Session, *, tenant: str, record_id: str, customer_hash: str) -> bool:
    """Whether an active hold covers the customer: on them, or on an incident affecting them.

    ``customer_hash`` is the audit trail's keyed hash of ``record_id``
    (:meth:`guard.audit.service.AuditTrail.customer_hash`), the key incidents know customers by.
    """
    direct = select(LegalHold.id).where(
        LegalHold.tenant == tenant,
        LegalHold.scope == SCOPE_CUSTOMER,
        LegalHold.target == record_id,
        LegalHold.released_at.is_(None),
    )
    if session.execute(direct.limit(1)).first() is not None:
        return True
    via_incident = (
        select(LegalHold.id)
        .join(IncidentCustomer, IncidentCustomer.incident_id == LegalHold.target)
        .where(
            LegalHold.tenant == tenant,
            LegalHold.scope == SCOPE_INCIDENT,
            LegalHold.released_at.is_(None),
            IncidentCustomer.customer_hash == customer_hash,
        )
    )
    return session.execute(via_incident.limit(1)).first() is not None


# ------------------------------------------------------------------ many at once (retention)


def held_records(session: Session, *, tenant: str, customers: Mapping[str, str]) -> set[str]:
    """The record ids among ``customers`` (record id -> keyed hash) an active hold covers.

    :func:`is_held` for a batch: two queries, whatever its size.
    """
    if not customers:
        return set()
    direct = session.scalars(
        select(LegalHold.target).where(
            LegalHold.tenant == tenant,
            LegalHold.scope == SCOPE_CUSTOMER,
            LegalHold.released_at.is_(None),
            LegalHold.target.in_(sorted(customers)),
        )
    ).all()
    via_incident = session.scalars(
        select(IncidentCustomer.customer_hash)
        .join(LegalHold, IncidentCustomer.incident_id == LegalHold.target)
        .where(
            LegalHold.tenant == tenant,
            LegalHold.scope == SCOPE_INCIDENT,
            LegalHold.released_at.is_(None),
            IncidentCustomer.customer_hash.in_(sorted(set(customers.values()))),
        )
    ).all()
    hashes = set(via_incident)
    return set(direct) | {record_id for record_id, digest in customers.items() if digest in hashes}


def held_customer_hashes(session: Session, *, hash_of: Callable[[str], str]) -> frozenset[str]:
    """Keyed hashes of every customer an active hold covers, in every tenant.

    For the audit trail, whose chain is global: ``hash_of`` turns a held record id into the
    hash the trail stores (:meth:`~guard.audit.service.AuditTrail.customer_hash`).
    """
    direct = session.scalars(
        select(LegalHold.target).where(
            LegalHold.scope == SCOPE_CUSTOMER, LegalHold.released_at.is_(None)
        )
    ).all()
    via_incident = session.scalars(
        select(IncidentCustomer.customer_hash)
        .join(LegalHold, IncidentCustomer.incident_id == LegalHold.target)
        .where(LegalHold.scope == SCOPE_INCIDENT, LegalHold.released_at.is_(None))
    ).all()
    return frozenset({hash_of(target) for target in direct} | set(via_incident))


def held_evidence_from(session: Session) -> int | None:
    """The first audit seq of any held incident's evidence (None: no incident is held)."""
    first: int | None = session.execute(
        select(func.min(Incident.first_seq))
        .join(LegalHold, LegalHold.target == Incident.id)
        .where(LegalHold.scope == SCOPE_INCIDENT, LegalHold.released_at.is_(None))
    ).scalar_one_or_none()
    return first


# ---------------------------------------------------------------------- placing and releasing


@dataclass(frozen=True)
class HoldInfo:
    """A legal hold as shown to officers (its reason is the redacted one stored)."""

    id: str
    tenant: str
    scope: str
    target: str
    reason: str
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the hold still stands."""
        return self.released_at is None


def _info(row: LegalHold) -> HoldInfo:
    return HoldInfo(
        id=row.id,
        tenant=row.tenant,
        scope=row.scope,
        target=row.target,
        reason=row.reason,
        placed_by=row.placed_by,
        placed_at=row.placed_at,
        released_by=row.released_by,
        released_at=row.released_at,
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def clean_reason(reason: str) -> str:
    """The reason trimmed, or HoldInputError if it is too short or too long (never echoed)."""
    cleaned = reason.strip()
    if len(cleaned) < MIN_REASON:
        raise HoldInputError(f"reason: state why the hold is placed (at least {MIN_REASON} chars)")
    if len(cleaned) > MAX_REASON:
        raise HoldInputError(f"reason: at most {MAX_REASON} characters")
    return cleaned


class HoldService:
    """Place, release and list legal holds; the API and ``guard retention holds`` share it.

    Callers audit (they know who asked and through which door); the service checks the target,
    redacts the reason through the callable it is given, and stores the hold.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], records: RecordService | None = None
    ) -> None:
        self._factory = session_factory
        self._records = records

    def check_target(self, *, tenant: str, scope: str, target: str) -> None:
        """HoldTargetNotFoundError unless ``target`` is a record or incident ``tenant`` sees."""
        if scope not in SCOPES:
            raise HoldInputError(f"scope: one of {', '.join(SCOPES)}")
        what = "customer record" if scope == SCOPE_CUSTOMER else "incident"
        missing = HoldTargetNotFoundError(f"no {what} with this id in this tenant")
        # ids are UUIDs: anything else (a NUL byte, 10 KB) names nothing and reaches no query
        if not _is_uuid(target):
            raise missing
        with session_scope(self._factory) as session:
            if scope == SCOPE_CUSTOMER:
                found = session.execute(
                    select(CustomerRecord.id).where(
                        CustomerRecord.id == target, CustomerRecord.tenant == tenant
                    )
                ).first()
            else:
                found = session.execute(
                    select(Incident.id).where(
                        Incident.id == target,
                        or_(Incident.tenant == tenant, Incident.tenant.is_(None)),
                    )
                ).first()
        if found is None:
            raise missing

    def known_values(self, *, tenant: str, scope: str, target: str) -> dict[str, str]:
        """The held customer's own name, email and phone (value -> entity type), to scrub.

        Decrypted for this alone and never stored; none for an incident or an erased record.
        """
        if scope != SCOPE_CUSTOMER or self._records is None:
            return {}
        try:
            record = self._records.read(tenant=tenant, record_id=target, only=set(_KNOWN_FIELDS))
        except RecordErasedError:
            return {}
        return {
            str(record.fields[name]): entity
            for name, entity in _KNOWN_FIELDS.items()
            if record.fields.get(name)
        }

    def place(
        self,
        *,
        tenant: str,
        scope: str,
        target: str,
        reason: str,
        placed_by: str,
        redact: Callable[[str, Mapping[str, str]], str],
    ) -> HoldInfo:
        """Check the target, redact the reason, store the hold; HoldTargetNotFoundError else.

        ``redact`` gets the trimmed reason and the held customer's own values (value -> entity
        type) and returns the reason as it may be stored.
        """
        cleaned = clean_reason(reason)
        self.check_target(tenant=tenant, scope=scope, target=target)
        stored = redact(cleaned, self.known_values(tenant=tenant, scope=scope, target=target))
        row = LegalHold(
            id=str(uuid.uuid4()),
            tenant=tenant,
            scope=scope,
            target=target,
            reason=stored[:MAX_REASON],
            placed_by=placed_by,
            placed_at=datetime.now(UTC),
        )
        with session_scope(self._factory, write=True) as session:
            if scope == SCOPE_CUSTOMER:
                # the row an erasure locks: a hold and an erasure of one customer never cross
                session.execute(
                    select(CustomerRecord.id)
                    .where(CustomerRecord.id == target, CustomerRecord.tenant == tenant)
                    .with_for_update()
                )
            session.add(row)
            session.flush()
            return _info(row)

    def release(self, *, tenant: str | None, hold_id: str, released_by: str) -> HoldInfo:
        """Release an active hold (of ``tenant``; None: any, the operator's command line)."""
        missing = HoldNotFoundError("no legal hold with this id in this tenant")
        if not _is_uuid(hold_id):
            raise missing
        with session_scope(self._factory, write=True) as session:
            query = select(LegalHold).where(LegalHold.id == hold_id)
            if tenant is not None:
                query = query.where(LegalHold.tenant == tenant)
            row = session.scalars(query.with_for_update()).one_or_none()
            if row is None:
                raise missing
            if row.released_at is not None:
                raise HoldReleasedError("this hold was released already")
            row.released_by = released_by
            row.released_at = datetime.now(UTC)
            session.flush()
            return _info(row)

    def list_holds(
        self, *, tenant: str | None, include_released: bool = False
    ) -> Sequence[HoldInfo]:
        """Holds of ``tenant`` (None: every tenant), newest first; active ones unless asked."""
        query = select(LegalHold)
        if tenant is not None:
            query = query.where(LegalHold.tenant == tenant)
        if not include_released:
            query = query.where(LegalHold.released_at.is_(None))
        with session_scope(self._factory) as session:
            rows = session.scalars(query.order_by(LegalHold.placed_at.desc(), LegalHold.id)).all()
            return [_info(row) for row in rows]
