"""All database queries of the records capability, and the data-key store used by rotation."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import load_only

from guard.crypto.envelope import WrappedKey
from guard.records.models import BLIND_INDEXES, STATUS_ACTIVE, CustomerRecord
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Mapping, Sequence
    from datetime import datetime

    from sqlalchemy import ColumnElement, CompoundSelect, Select
    from sqlalchemy.orm import Session, sessionmaker

#: Most digests one :meth:`RecordRepository.match_indexes` call may look up (all columns
#: together): a huge message cannot turn into an enormous ``IN`` list.
MAX_MATCH_DIGESTS = 500
_INDEX_COLUMNS = frozenset(BLIND_INDEXES.values())


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

    def get_fields(
        self, record_id: str, *, tenant: str, fields: Collection[str]
    ) -> CustomerRecord | None:
        """Like :meth:`get`, loading only the key columns and the ciphertexts of ``fields``.

        A detached, read-only copy of the row (one cached statement, no ORM identity map):
        the cheap read of the message guard's per-check lookup.
        """
        row = (
            self._session.execute(
                _fields_statement(tuple(sorted(fields))), {"record_id": record_id, "tenant": tenant}
            )
            .mappings()
            .one_or_none()
        )
        return None if row is None else CustomerRecord(**row)

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

    def match_indexes(
        self, *, tenant: str, digests: Mapping[str, Collection[str]]
    ) -> list[tuple[str, str, str]]:
        """(record id, column, digest) for each blind index of an active record that matches.

        ``digests`` maps blind-index columns (values of ``BLIND_INDEXES``) to the digests to look
        for; one query covers them all. A record matching several digests yields several
        tuples, ordered by record id and column. No digests: no query. Over
        :data:`MAX_MATCH_DIGESTS` distinct digests, or a column that is not a blind index:
        ``ValueError``.
        """
        wanted: dict[str, frozenset[str]] = {}
        for column, values in digests.items():
            if column not in _INDEX_COLUMNS:
                raise ValueError(f"{column!r} is not a blind-index column")
            if isinstance(values, str):
                raise TypeError(f"digests of {column!r} must be a collection of strings")
            if values:
                wanted[column] = frozenset(values)
        total = sum(len(values) for values in wanted.values())
        if total > MAX_MATCH_DIGESTS:
            raise ValueError(f"{total} digests to match; at most {MAX_MATCH_DIGESTS} per call")
        if not wanted:
            return []
        rows = self._session.execute(
            _match_statement(tuple(sorted(wanted))),
            {
                "tenant": tenant,
                "active": STATUS_ACTIVE,
                # sorted: the same digests always give the same parameters
                **{f"d_{column}": sorted(values) for column, values in wanted.items()},
            },
        ).all()
        return [(str(record_id), str(column), str(digest)) for record_id, column, digest in rows]

    def unindexed_names(self, *, after: str, limit: int) -> Sequence[CustomerRecord]:
        """Up to ``limit`` active records after id ``after`` with a full name but no name index.

        In id order, every tenant; only what decrypting the name needs is loaded (the rows
        are read-only snapshots for :meth:`set_full_name_index`).
        """
        return self._session.scalars(
            select(CustomerRecord)
            .options(
                load_only(
                    CustomerRecord.tenant,
                    CustomerRecord.status,
                    CustomerRecord.wrapped_key,
                    CustomerRecord.kek_version,
                    CustomerRecord.field_key_version,
                    CustomerRecord.full_name,
                )
            )
            .where(*_unindexed_name(), CustomerRecord.id > after)
            .order_by(CustomerRecord.id)
            .limit(limit)
        ).all()

    def count_unindexed_names(self) -> int:
        """How many active records have a full name but no name index (every tenant)."""
        return int(
            self._session.execute(
                select(func.count()).select_from(CustomerRecord).where(*_unindexed_name())
            ).scalar_one()
        )

    def set_full_name_index(self, record_id: str, *, full_name: bytes, digest: str) -> bool:
        """Compare-and-set the name index of one record; True if stored.

        Stored only if the row is still active, still unindexed and still holds the
        ``full_name`` ciphertext the digest was computed from.
        """
        result = self._session.execute(
            update(CustomerRecord)
            .where(
                CustomerRecord.id == record_id,
                CustomerRecord.status == STATUS_ACTIVE,
                CustomerRecord.full_name_bi.is_(None),
                CustomerRecord.full_name == full_name,
            )
            .values(full_name_bi=digest)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

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

    # ------------------------------------------------------------------------ retention

    def tenants(self) -> list[str]:
        """Every tenant that has records (tombstones count: they are data of the tenant)."""
        return list(
            self._session.scalars(
                select(CustomerRecord.tenant).distinct().order_by(CustomerRecord.tenant)
            )
        )

    def active_rows(
        self, *, tenant: str, record_ids: Collection[str], for_update: bool = False
    ) -> Sequence[CustomerRecord]:
        """The active records of ``tenant`` among ``record_ids``, in id order."""
        if not record_ids:
            return []
        query = (
            select(CustomerRecord)
            .where(
                CustomerRecord.tenant == tenant,
                CustomerRecord.status == STATUS_ACTIVE,
                CustomerRecord.id.in_(sorted(record_ids)),
            )
            .order_by(CustomerRecord.id)
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).all()

    def inactive_since(
        self, *, tenant: str, before: datetime, after_id: str, limit: int, for_update: bool = False
    ) -> Sequence[str]:
        """Ids of active records of ``tenant`` not updated since ``before``, after ``after_id``.

        In id order, at most ``limit`` (a keyset page: pass the last id back). ``for_update``
        locks them until commit, so an update racing retention either lands first (and the
        record is no longer a candidate) or waits for the erasure.
        """
        query = (
            select(CustomerRecord.id)
            .where(
                CustomerRecord.tenant == tenant,
                CustomerRecord.status == STATUS_ACTIVE,
                CustomerRecord.updated_at < before,
                CustomerRecord.id > after_id,
            )
            .order_by(CustomerRecord.id)
            .limit(limit)
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).all()

    def notes_written_before(
        self, *, tenant: str, before: datetime, after_id: str, limit: int, for_update: bool = False
    ) -> Sequence[str]:
        """Ids of active records of ``tenant`` whose notes were last written before ``before``.

        When the notes were written is ``notes_written_at``, or ``updated_at`` on rows written
        before that column existed. Id order, keyset paged and locked like
        :meth:`inactive_since`.
        """
        written = func.coalesce(CustomerRecord.notes_written_at, CustomerRecord.updated_at)
        query = (
            select(CustomerRecord.id)
            .where(
                CustomerRecord.tenant == tenant,
                CustomerRecord.status == STATUS_ACTIVE,
                or_(CustomerRecord.notes.is_not(None), CustomerRecord.notes_redacted.is_not(None)),
                written < before,
                CustomerRecord.id > after_id,
            )
            .order_by(CustomerRecord.id)
            .limit(limit)
        )
        if for_update:
            query = query.with_for_update()
        return self._session.scalars(query).all()


def _unindexed_name() -> tuple[ColumnElement[bool], ...]:
    return (
        CustomerRecord.status == STATUS_ACTIVE,
        CustomerRecord.full_name.is_not(None),
        CustomerRecord.full_name_bi.is_(None),
    )


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


@functools.cache
def _match_statement(columns: tuple[str, ...]) -> CompoundSelect[Any]:
    """The lookup over ``columns``, built once per set of columns: only parameters change.

    One indexed SELECT per column, joined by UNION ALL: an OR across columns would make SQLite
    scan the whole tenant instead of using each (tenant, column) index. The digests are one
    expanding parameter per column, so building the statement costs nothing per call (building
    an ``IN`` of literals coerced every value, about a fifth of a lookup's time).
    """
    branches = [
        select(
            CustomerRecord.id.label("record_id"),
            # a constant from BLIND_INDEXES (checked by the caller), never caller text
            literal_column(f"'{column}'", String).label("column"),
            getattr(CustomerRecord, column).label("digest"),
        ).where(
            CustomerRecord.tenant == bindparam("tenant"),
            CustomerRecord.status == bindparam("active"),
            getattr(CustomerRecord, column).in_(bindparam(f"d_{column}", expanding=True)),
        )
        for column in columns
    ]
    query = union_all(*branches)
    return query.order_by(query.selected_columns.record_id, query.selected_columns.column)


@functools.cache
def _fields_statement(fields: tuple[str, ...]) -> Select[Any]:
    """SELECT of one record's key columns and the ciphertexts of ``fields``, built once."""
    return select(
        CustomerRecord.id,
        CustomerRecord.tenant,
        CustomerRecord.status,
        CustomerRecord.wrapped_key,
        CustomerRecord.kek_version,
        CustomerRecord.field_key_version,
        *(getattr(CustomerRecord, name) for name in fields),
    ).where(
        CustomerRecord.id == bindparam("record_id"), CustomerRecord.tenant == bindparam("tenant")
    )
