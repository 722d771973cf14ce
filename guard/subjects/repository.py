"""All queries of data subject requests: requests, packages, and what a package reads.

A package reads the audit events and incidents about one customer: both tables know the
customer only by the audit trail's keyed hash of the record id, so these queries take that
hash (never the id) and stay inside the request's tenant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import defer

from guard.audit.models import AuditEvent
from guard.incidents.models import Incident, IncidentCustomer
from guard.subjects.models import SubjectPackage, SubjectRequest

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import Session


class SubjectRepository:
    """Queries over subject_requests and subject_packages (and the reads a package needs)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # ------------------------------------------------------------------ requests

    def add(self, row: SubjectRequest) -> SubjectRequest:
        """Insert a request."""
        self._session.add(row)
        self._session.flush()
        return row

    def get(
        self, request_id: str, *, tenant: str, for_update: bool = False
    ) -> SubjectRequest | None:
        """The tenant's request with this id (another tenant's is None); locked if asked."""
        query = select(SubjectRequest).where(
            SubjectRequest.id == request_id, SubjectRequest.tenant == tenant
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).one_or_none()

    def page(
        self,
        *,
        tenant: str,
        status: str | None,
        kind: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> Sequence[SubjectRequest]:
        """Up to ``limit`` requests of ``tenant`` by (due date, id), after the keyset cursor."""
        query = select(SubjectRequest).where(SubjectRequest.tenant == tenant)
        if status is not None:
            query = query.where(SubjectRequest.status == status)
        if kind is not None:
            query = query.where(SubjectRequest.kind == kind)
        if after is not None:
            due, request_id = after
            query = query.where(
                or_(
                    SubjectRequest.due_at > due,
                    and_(SubjectRequest.due_at == due, SubjectRequest.id > request_id),
                )
            )
        return self._session.scalars(
            query.order_by(SubjectRequest.due_at, SubjectRequest.id).limit(limit)
        ).all()

    def for_customer(self, *, tenant: str, record_id: str) -> Sequence[SubjectRequest]:
        """Every request of the customer in ``tenant``, oldest first."""
        return self._session.scalars(
            select(SubjectRequest)
            .where(SubjectRequest.tenant == tenant, SubjectRequest.record_id == record_id)
            .order_by(SubjectRequest.received_at, SubjectRequest.id)
        ).all()

    def flush(self) -> None:
        """Send staged changes (a failure surfaces inside the service call)."""
        self._session.flush()

    # ------------------------------------------------------------------ packages

    def add_package(self, row: SubjectPackage) -> None:
        """Insert a package."""
        self._session.add(row)
        self._session.flush()

    def package_infos(self, request_ids: Collection[str]) -> dict[str, SubjectPackage]:
        """The newest package of each request, without its archive (metadata only)."""
        if not request_ids:
            return {}
        rows = self._session.scalars(
            select(SubjectPackage)
            .options(defer(SubjectPackage.archive))
            .where(SubjectPackage.request_id.in_(list(request_ids)))
            .order_by(SubjectPackage.created_at, SubjectPackage.id)
        ).all()
        return {row.request_id: row for row in rows}  # the newest wins

    def package(self, request_id: str, *, tenant: str) -> SubjectPackage | None:
        """The newest package of the request, archive included."""
        return self._session.scalars(
            select(SubjectPackage)
            .where(SubjectPackage.request_id == request_id, SubjectPackage.tenant == tenant)
            .order_by(SubjectPackage.created_at.desc(), SubjectPackage.id.desc())
            .limit(1)
        ).one_or_none()

    def delete_packages(self, *, tenant: str, request_ids: Collection[str]) -> int:
        """Delete every package of these requests; how many."""
        if not request_ids:
            return 0
        result = self._session.execute(
            delete(SubjectPackage)
            .where(
                SubjectPackage.tenant == tenant,
                SubjectPackage.request_id.in_(list(request_ids)),
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # ------------------------------------------------------------------ what a package reads

    def audit_head(self, *, tenant: str, customer_hash: str) -> int:
        """The newest seq of an event about the customer (0: none): a package's upper bound."""
        found = self._session.execute(
            select(func.max(AuditEvent.seq)).where(*_about(tenant, customer_hash))
        ).scalar_one_or_none()
        return int(found or 0)

    def audit_events(
        self, *, tenant: str, customer_hash: str, after_seq: int, until_seq: int, limit: int
    ) -> Sequence[Any]:
        """One keyset batch of the events about the customer, in seq order, up to ``until_seq``.

        The principal is read only to tell the command line and guard itself apart from staff;
        the package never names a principal.
        """
        return self._session.execute(
            select(
                AuditEvent.seq,
                AuditEvent.ts,
                AuditEvent.principal,
                AuditEvent.role,
                AuditEvent.action,
                AuditEvent.decision,
                AuditEvent.outcome,
                AuditEvent.details,
            )
            .where(
                *_about(tenant, customer_hash),
                AuditEvent.seq > after_seq,
                AuditEvent.seq <= until_seq,
            )
            .order_by(AuditEvent.seq)
            .limit(limit)
        ).all()

    def incidents_about(self, *, tenant: str, customer_hash: str) -> Sequence[Incident]:
        """Incidents of the tenant (or system-wide) whose affected customers include this one."""
        return self._session.scalars(
            select(Incident)
            .join(IncidentCustomer, IncidentCustomer.incident_id == Incident.id)
            .where(
                IncidentCustomer.customer_hash == customer_hash,
                or_(Incident.tenant == tenant, Incident.tenant.is_(None)),
            )
            .order_by(Incident.number)
        ).all()

    def request_events(
        self, *, tenant: str, customer_hash: str, resource: str, limit: int
    ) -> Sequence[Any]:
        """The events of one request (its resource), oldest first: the console's timeline."""
        return self._session.execute(
            select(
                AuditEvent.seq,
                AuditEvent.ts,
                AuditEvent.principal,
                AuditEvent.role,
                AuditEvent.action,
                AuditEvent.outcome,
            )
            .where(*_about(tenant, customer_hash), AuditEvent.resource == resource)
            .order_by(AuditEvent.seq)
            .limit(limit)
        ).all()


def _about(tenant: str, customer_hash: str) -> tuple[ColumnElement[bool], ...]:
    """Events about the customer in the tenant, or by guard's operators (no tenant).

    Another tenant's events naming the same record id can only be refused probes of it: they
    are that tenant's, not this customer's relationship with this tenant.
    """
    return (
        AuditEvent.customer == customer_hash,
        or_(AuditEvent.tenant == tenant, AuditEvent.tenant.is_(None)),
    )
