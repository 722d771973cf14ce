"""All database queries of the records capability, and the data-key store used by rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select, update

from guard.crypto.envelope import WrappedKey
from guard.records.models import STATUS_ACTIVE, CustomerRecord
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session, sessionmaker


class RecordRepository:
    """Queries on ``customer_records``; the caller's session scope commits or rolls back."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, record: CustomerRecord) -> CustomerRecord:
        """Stage a new record and flush it."""
        self._session.add(record)
        self._session.flush()
        return record

    def get(
        self, record_id: str, *, tenant: str, for_update: bool = False
    ) -> CustomerRecord | None:
        """The record with this id in ``tenant``, if any (another tenant's is ``None``).

        ``for_update`` locks the row until commit (PostgreSQL), so an update racing an erasure
        cannot write ciphertext into the tombstone.
        """
        query = select(CustomerRecord).where(
            CustomerRecord.id == record_id, CustomerRecord.tenant == tenant
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).one_or_none()

    def find_by_index(
        self, *, tenant: str, column: str, digest: str, limit: int
    ) -> Sequence[CustomerRecord]:
        """Active records of ``tenant`` whose blind-index ``column`` equals ``digest``."""
        indexed = getattr(CustomerRecord, column)
        return self._session.scalars(
            select(CustomerRecord)
            .where(
                CustomerRecord.tenant == tenant,
                CustomerRecord.status == STATUS_ACTIVE,
                indexed == digest,
            )
            .order_by(CustomerRecord.created_at, CustomerRecord.id)
            .limit(limit)
        ).all()

    def page(
        self, *, tenant: str, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[CustomerRecord]:
        """Up to ``limit`` records of ``tenant`` after the (created_at, id) keyset cursor."""
        query = select(CustomerRecord).where(CustomerRecord.tenant == tenant)
        if after is not None:
            created_at, record_id = after
            query = query.where(
                or_(
                    CustomerRecord.created_at > created_at,
                    and_(CustomerRecord.created_at == created_at, CustomerRecord.id > record_id),
                )
            )
        return self._session.scalars(
            query.order_by(CustomerRecord.created_at, CustomerRecord.id).limit(limit)
        ).all()

    def flush(self) -> None:
        """Send staged changes (so a failure surfaces inside the service call)."""
        self._session.flush()


class SqlDataKeyStore:
    """The wrapped data keys of every record, for KEK rotation (``DataKeyStore`` protocol).

    Each batch runs in its own short transaction so rotation never holds locks for long, and
    :meth:`replace_wrapped` is a compare-and-set: a key erased or re-wrapped concurrently is
    left alone.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory

    def iter_wrapped(
        self, batch_size: int, *, not_version: int | None = None
    ) -> Iterator[tuple[str, str, str, WrappedKey]]:
        """Every (key id, tenant, customer, wrapped key), batch by batch in id order.

        ``not_version``: skip data keys already wrapped under this KEK version.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        last_id = ""
        while True:
            with session_scope(self._factory) as session:
                rows = session.execute(
                    select(
                        CustomerRecord.id,
                        CustomerRecord.tenant,
                        CustomerRecord.wrapped_key,
                        CustomerRecord.kek_version,
                    )
                    .where(
                        CustomerRecord.id > last_id,
                        CustomerRecord.wrapped_key.is_not(None),
                        CustomerRecord.kek_version.is_not(None),
                        *(
                            ()
                            if not_version is None
                            else (CustomerRecord.kek_version != not_version,)
                        ),
                    )
                    .order_by(CustomerRecord.id)
                    .limit(batch_size)
                ).all()
            for record_id, tenant, wrapped, version in rows:
                if wrapped is None or version is None:  # pragma: no cover - filtered above
                    continue
                # The customer of a data key is its record: the AAD names the record id.
                yield record_id, tenant, record_id, WrappedKey(kek_version=version, wrapped=wrapped)
            if len(rows) < batch_size:
                return
            last_id = rows[-1][0]

    def replace_wrapped(self, key_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        """Swap ``old`` for ``new`` only if the row still holds ``old``; True if replaced."""
        with session_scope(self._factory) as session:
            result = session.execute(
                update(CustomerRecord)
                .where(
                    and_(
                        CustomerRecord.id == key_id,
                        CustomerRecord.kek_version == old.kek_version,
                        CustomerRecord.wrapped_key == old.wrapped,
                    )
                )
                .values(wrapped_key=new.wrapped, kek_version=new.kek_version)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def count_by_version(self) -> dict[int, int]:
        """How many wrapped data keys each KEK version protects."""
        with session_scope(self._factory) as session:
            rows = session.execute(
                select(CustomerRecord.kek_version, func.count())
                .where(CustomerRecord.wrapped_key.is_not(None))
                .group_by(CustomerRecord.kek_version)
            ).all()
        return {int(version): int(count) for version, count in rows if version is not None}
