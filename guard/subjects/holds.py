"""Legal holds: what retention and erasure must leave alone while a hold stands.

A hold on a customer covers their record (notes included) and the audit events about them; a
hold on an incident covers every customer the incident affected, and the incident's evidence.
GDPR Art. 17(3)(e): erasure does not apply where the data is needed for legal claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from guard.incidents.models import IncidentCustomer
from guard.subjects.models import LegalHold

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SCOPE_CUSTOMER = "customer"
SCOPE_INCIDENT = "incident"


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
