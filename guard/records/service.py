"""Customer records: encrypt on write, decrypt on read, blind-index search, crypto-shredding.

Threat: a stolen database or backup, or a curious insider with SQL access. Every sensitive
field is stored as AES-GCM ciphertext under the record's own data key (see guard.crypto), with
associated data naming tenant, record, field and ``field_key_version``, so a ciphertext copied
to another row, field or tenant fails to decrypt instead of showing the wrong customer's data.
Exact lookups use HMAC blind indexes keyed per tenant and field. Erasure deletes the wrapped
data key: every copy of the record's ciphertext, backups included, becomes undecryptable.

Blind indexes reveal equality, and the outgoing-message guard looks up identifiers found in a
draft through them (:meth:`RecordService.match_identifiers`). Those lookups answer "which
records hold this value", so they are bounded per call, return record ids and kinds only, and
database errors propagate: a lookup that cannot run must make the caller fail closed, never
read as "no match".

Field AAD key version: ``field_key_version`` is the KEK version that wrapped the data key when
the record was created. It is fixed for the record's life (rotation re-wraps the data key and
changes ``kek_version`` only), and every field of the record is bound to it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import phonenumbers

from guard.crypto.envelope import WrappedKey
from guard.crypto.errors import IntegrityError, UnknownKeyVersionError
from guard.records.errors import (
    RecordErasedError,
    RecordInputError,
    RecordIntegrityError,
    RecordNotFoundError,
)
from guard.records.models import (
    BLIND_INDEXES,
    ENCRYPTED_FIELDS,
    STATUS_ACTIVE,
    STATUS_ERASED,
    CustomerRecord,
)
from guard.records.repository import MAX_MATCH_DIGESTS, RecordRepository
from guard.records.views import VIEWS_FILENAME, ViewPolicy, load_view_policy
from guard.storage.engine import session_scope

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.crypto.blind_index import BlindIndexer
    from guard.crypto.envelope import EnvelopeCipher
    from guard.crypto.keys import RedactionKeys
    from guard.detection.executor import Analyzer
    from guard.records.schemas import RecordCreate, RecordUpdate
    from guard.redaction.service import Redactor

#: Fields stored as JSON text inside their ciphertext.
_JSON_FIELDS = frozenset({"account", "extra"})
#: The notes and their redacted copy: what retention's notes period removes.
_NOTES_FIELDS = frozenset({"notes", "notes_redacted"})
#: Fields a caller writes (``notes_redacted`` is derived from ``notes``).
_INPUT_FIELDS = tuple(name for name in ENCRYPTED_FIELDS if name != "notes_redacted")
NOTE_CHANNEL = "note"
MAX_PAGE = 200
MAX_SEARCH_RESULTS = 50
#: Most distinct values one :meth:`RecordService.match_identifiers` call may look up.
MAX_IDENTIFIER_LOOKUPS = MAX_MATCH_DIGESTS
#: Nonspacing and enclosing marks: accents, cedillas, dots, vowel points (dropped from names).
_DROPPED_MARKS = frozenset({"Mn", "Me"})
#: Lower-case letters whose diacritic is part of the letter (no decomposition to strip), and
#: ligatures, folded to what people type without them. Turkish dotless i must meet ``i``:
#: an all-caps ``I`` case-folds to ``i``.
_LETTER_FOLDS = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ħ": "h",
        "ŧ": "t",
        "\N{LATIN SMALL LETTER DOTLESS I}": "i",
        "æ": "ae",
        "œ": "oe",
    }
)


@dataclass(frozen=True)
class DecryptedRecord:
    """A record's metadata and decrypted fields; its repr never shows a value."""

    id: str
    tenant: str
    status: str
    created_at: datetime
    updated_at: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    #: Entity types found in the notes written by this call (create / update), for the audit.
    entity_counts: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = sorted(k for k, v in self.fields.items() if v is not None)
        return f"DecryptedRecord(id={self.id!r}, status={self.status!r}, fields={shown!r})"


@dataclass(frozen=True)
class IndexMatch:
    """An active record whose blind index of ``kind`` equals that of ``value``.

    ``value`` is the caller's raw input that matched (to map back to its place in a text);
    the repr leaves it out.
    """

    record_id: str
    kind: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class Identification:
    """Who a text's identifiers belong to, and the conversation customer's name.

    The repr shows neither the name nor the matched values.
    """

    customer_name: str | None = field(repr=False)
    matches: list[IndexMatch]


@dataclass
class BackfillReport:
    """What a name-index backfill did. Failed entries are record ids (random UUIDs), never names."""

    #: Records whose full_name_bi this run wrote.
    indexed: int = 0
    #: Changed or erased between read and write (the writer indexed it, or nothing is left).
    skipped: int = 0
    #: Names with no letter or digit: nothing to index; they stay NULL and are read again.
    blank: int = 0
    #: Records whose data key or name failed authentication: investigate these.
    failed: list[str] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class RecordListPage:
    """Metadata of one page of records and the cursor of the next, if any."""

    records: list[DecryptedRecord]
    next_cursor: str | None


def normalise_phone(value: str, region: str) -> str:
    """A phone number's index form: E.164 when it parses, otherwise its digits.

    ``region`` reads national forms, so ``+1 415 555 0100``, ``(415) 555-0100`` and
    ``415.555.0100`` (US) all index alike.
    """
    with contextlib.suppress(phonenumbers.NumberParseException):
        number = phonenumbers.parse(value, region)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return "".join(ch for ch in value if ch.isdigit())


def normalise_name(value: str) -> str:
    """A full name's index form: equal for the same name however it is presented.

    NFKC, case-folded, diacritics stripped (NFKD, nonspacing marks dropped, a few letters
    with built-in strokes folded), invisible format characters (soft hyphen, zero-width
    joiners) dropped, and every run of other characters that are not letters, digits or
    spacing marks made one space, trimmed. ``"José  O'Brien"``, ``"jose o brien"`` and
    ``"JOSE O\u2019BRIEN"`` (typographic apostrophe) are equal; ``"Jose Brien"`` is not.
    Empty: nothing to index.

    Exact match modulo presentation, not fuzzy: no nicknames, transliteration or homoglyph
    folding (Cyrillic a, U+0430, is not Latin a).
    """
    text = unicodedata.normalize("NFKC", value).casefold()
    # Case-folding can add marks (``İ`` becomes ``i`` + dot above), so decompose after it.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_MARKS)
    text = unicodedata.normalize("NFC", text).translate(_LETTER_FOLDS)
    out: list[str] = []
    gap = False
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LNM":  # letters, digits, spacing marks (Indic vowel signs)
            if gap and out:
                out.append(" ")
            gap = False
            out.append(ch)
        elif category != "Cf":  # format characters are invisible: not a word break
            gap = True
    return "".join(out)


def normalise_for_index(kind: str, value: str, *, phone_region: str = "US") -> str:
    """The form a blind index is computed over.

    Case-folded email, E.164 phone, :func:`normalise_name` for ``full_name``, trimmed id.
    """
    if kind == "email":
        return value.strip().casefold()
    if kind == "phone":
        return normalise_phone(value, phone_region)
    if kind == "full_name":
        return normalise_name(value)
    return value.strip()


def encode_cursor(created_at: datetime, record_id: str) -> str:
    """An opaque keyset cursor (creation time and id of the last record on a page)."""
    raw = f"{created_at.astimezone(UTC).isoformat()}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Parse a cursor from :func:`encode_cursor`, or fail naming the parameter."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, record_id = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        uuid.UUID(record_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise RecordInputError("cursor is malformed; pass back a next_cursor") from None
    if created_at.tzinfo is None:
        raise RecordInputError("cursor is malformed; pass back a next_cursor")
    return created_at, record_id


def _now() -> datetime:
    return datetime.now(UTC)


def _serialise(name: str, value: Any) -> str:  # noqa: ANN401 - validated schema values
    if name in _JSON_FIELDS:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _deserialise(name: str, text: str) -> Any:  # noqa: ANN401 - JSON fields
    return json.loads(text) if name in _JSON_FIELDS else text


class RecordService:
    """Create, read, update, search, list and erase customer records of one tenant at a time."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        cipher: EnvelopeCipher,
        indexer: BlindIndexer,
        analyzer: Analyzer,
        redactor: Redactor,
        views: ViewPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._factory = session_factory
        self._cipher = cipher
        self._indexer = indexer
        self._analyzer = analyzer
        self._redactor = redactor
        self.views = views or load_view_policy(settings.policies_dir / VIEWS_FILENAME)

    def current_key_version(self) -> int:
        """The KEK version new records are wrapped under.

        It asks the key provider, so it doubles as a readiness probe: the keyring or HSM is
        there and unlocks.
        """
        return self._cipher.provider.current_version()

    @property
    def redaction_keys(self) -> RedactionKeys:
        """The redaction keys behind pseudonym views."""
        return self._redactor.keys

    # ------------------------------------------------------------------------- writes

    def create(
        self, *, tenant: str, data: RecordCreate, only: Collection[str] | None = None
    ) -> DecryptedRecord:
        """Encrypt and store a new record; notes are stored in full and redacted.

        ``only`` (here and in the other calls that return fields): the stored fields to decrypt
        for the caller, e.g. :meth:`ViewPolicy.stored_fields` of its role; default all.
        """
        record_id = str(uuid.uuid4())
        data_key, wrapped = self._cipher.new_data_key(tenant=tenant, customer=record_id)
        now = _now()
        row = CustomerRecord(
            id=record_id,
            tenant=tenant,
            status=STATUS_ACTIVE,
            created_at=now,
            updated_at=now,
            wrapped_key=wrapped.wrapped,
            kek_version=wrapped.kek_version,
            field_key_version=wrapped.kek_version,
        )
        values = {name: getattr(data, name) for name in _INPUT_FIELDS}
        counts = self._write_fields(row, data_key, values)
        with session_scope(self._factory) as session:
            RecordRepository(session).add(row)
        return self._decrypted(row, data_key, counts, only)

    def update(
        self,
        *,
        tenant: str,
        record_id: str,
        changes: RecordUpdate,
        only: Collection[str] | None = None,
    ) -> DecryptedRecord:
        """Re-encrypt the fields sent (``null`` clears one); other ciphertexts are untouched."""
        values = {name: getattr(changes, name) for name in changes.model_fields_set}
        with session_scope(self._factory, write=True) as session:
            repo = RecordRepository(session)
            row = self._active(repo, tenant=tenant, record_id=record_id, for_update=True)
            data_key = self._data_key(row)
            counts = self._write_fields(row, data_key, values)
            row.updated_at = _now()
            repo.flush()
            return self._decrypted(row, data_key, counts, only)

    def erase(
        self,
        *,
        tenant: str,
        record_id: str,
        unless: Callable[[Session], None] | None = None,
    ) -> DecryptedRecord:
        """Crypto-shred: drop the wrapped data key and every ciphertext; keep a tombstone.

        ``unless`` runs in the erasing transaction once the record's row is locked, and stops
        the erasure by raising: a check (a legal hold) that nothing can change in between.
        """
        with session_scope(self._factory, write=True) as session:
            repo = RecordRepository(session)
            row = self._active(repo, tenant=tenant, record_id=record_id, for_update=True)
            if unless is not None:
                unless(session)
            _shred(row, _now())
            repo.flush()
            return _metadata(row)

    def erase_many(self, session: Session, *, tenant: str, record_ids: Sequence[str]) -> list[str]:
        """Crypto-shred many records of ``tenant`` in the caller's transaction; the ids erased.

        The same shredding as :meth:`erase`, for retention's batches: each batch commits its
        erasures together with its progress (the caller's session commits or rolls back).
        Records no longer active (erased meanwhile) are left alone, so a repeated batch erases
        nothing twice.
        """
        repo = RecordRepository(session)
        now = _now()
        rows = repo.active_rows(tenant=tenant, record_ids=record_ids, for_update=True)
        for row in rows:
            _shred(row, now)
        repo.flush()
        return [row.id for row in rows]

    def remove_notes_many(
        self, session: Session, *, tenant: str, record_ids: Sequence[str]
    ) -> list[str]:
        """Crypto-shred the notes of many records in the caller's transaction; the ids done.

        Both ciphertexts of the notes (``notes``, ``notes_redacted``) are dropped and the record
        is re-keyed: its other fields are decrypted and encrypted again under a fresh data key,
        and the old wrapped key is dropped, so a copy of the notes ciphertext that survives
        elsewhere (a replica, an export of the table, a backup once the KEK version that
        wrapped the old key is retired) cannot be decrypted with any key guard still holds.
        Removing notes is not activity: ``updated_at`` is left as it was (retention's
        "inactive" clock), ``notes_written_at`` is cleared. Records no longer active are left
        alone. A record whose key or fields fail authentication raises RecordIntegrityError
        (the whole batch rolls back: nothing is half re-keyed).
        """
        repo = RecordRepository(session)
        rows = repo.active_rows(tenant=tenant, record_ids=record_ids, for_update=True)
        for row in rows:
            self._rekey_without_notes(row)
        repo.flush()
        return [row.id for row in rows]

    def _rekey_without_notes(self, row: CustomerRecord) -> None:
        old_key = self._data_key(row)
        kept = {
            name: self._decrypt_text(row, old_key, name)
            for name in ENCRYPTED_FIELDS
            if name not in _NOTES_FIELDS and getattr(row, name) is not None
        }
        new_key, wrapped = self._cipher.new_data_key(tenant=row.tenant, customer=row.id)
        # field_key_version (the fields' associated data) stays: only the data key changes,
        # as in a rotation; the fields are sealed again under the new key
        row.wrapped_key, row.kek_version = wrapped.wrapped, wrapped.kek_version
        for name, text in kept.items():
            setattr(row, name, self._encrypt(row, new_key, name, text))
        row.notes = None
        row.notes_redacted = None
        row.notes_written_at = None

    # -------------------------------------------------------------------------- reads

    def read(
        self, *, tenant: str, record_id: str, only: Collection[str] | None = None
    ) -> DecryptedRecord:
        """The record decrypted (callers apply a role view before showing it)."""
        with session_scope(self._factory) as session:
            row = self._active(RecordRepository(session), tenant=tenant, record_id=record_id)
        return self._decrypted(row, self._data_key(row), only=only)

    def search(
        self,
        *,
        tenant: str,
        email: str | None = None,
        phone: str | None = None,
        account_id: str | None = None,
        limit: int = MAX_SEARCH_RESULTS,
        only: Collection[str] | None = None,
    ) -> list[DecryptedRecord]:
        """Active records matching exactly one of email, phone or account id (blind index)."""
        given = (("email", email), ("phone", phone), ("account_id", account_id))
        criteria = {kind: value for kind, value in given if value is not None}
        if len(criteria) != 1:
            raise RecordInputError("search needs exactly one of: email, phone, account_id")
        ((kind, value),) = criteria.items()
        digest = self._index(tenant, kind, value)
        if digest is None:
            raise RecordInputError(f"{kind} must not be empty")
        limit = max(1, min(limit, MAX_SEARCH_RESULTS))
        with session_scope(self._factory) as session:
            rows = RecordRepository(session).find_by_index(
                tenant=tenant, column=BLIND_INDEXES[kind], digest=digest, limit=limit
            )
        return [self._decrypted(row, self._data_key(row), only=only) for row in rows]

    def match_identifiers(
        self, *, tenant: str, values: Mapping[str, Collection[str]]
    ) -> list[IndexMatch]:
        """Active records of ``tenant`` holding any of ``values``, through one indexed query.

        ``values`` maps kinds (``email``, ``phone``, ``account_id``, ``full_name``) to raw
        strings as found, e.g. in a draft message; each is normalised as stored values are
        (phone numbers read with the configured region). One :class:`IndexMatch` per record,
        kind and raw value that matched; values with nothing to index are ignored. At most
        :data:`MAX_IDENTIFIER_LOOKUPS` distinct values per call. Database errors propagate:
        callers fail closed.
        """
        return self.identify(tenant=tenant, values=values).matches

    def identify(
        self,
        *,
        tenant: str,
        values: Mapping[str, Collection[str]],
        customer_id: str | None = None,
    ) -> Identification:
        """:meth:`match_identifiers`, and the name of ``customer_id``, in one transaction.

        The message guard's one trip to the database: who the identifiers of a draft belong
        to, and the conversation customer's name (decrypted; only that field is loaded). A
        ``customer_id`` that names no record of the tenant raises RecordNotFoundError, an erased
        one RecordErasedError.
        """
        digests, raw_by_digest = self._digests(tenant, values)
        if customer_id is None and not digests:
            return Identification(customer_name=None, matches=[])
        row = None
        rows: list[tuple[str, str, str]] = []
        with session_scope(self._factory) as session:
            repo = RecordRepository(session)
            if customer_id is not None:
                row = repo.get_fields(customer_id, tenant=tenant, fields=("full_name",))
                if row is None:
                    raise RecordNotFoundError(f"no record {customer_id!r} in this tenant")
                if row.status == STATUS_ERASED:
                    raise RecordErasedError(f"record {customer_id!r} was erased")
            if digests:
                rows = repo.match_indexes(tenant=tenant, digests=digests)
        name = None
        if row is not None and row.full_name is not None:
            name = self._decrypt(row, self._data_key(row), "full_name")
        kind_of = {column: kind for kind, column in BLIND_INDEXES.items()}
        matches = [
            IndexMatch(record_id=record_id, kind=kind_of[column], value=raw)
            for record_id, column, digest in rows
            for raw in raw_by_digest[column, digest]
        ]
        return Identification(customer_name=name, matches=matches)

    def _digests(
        self, tenant: str, values: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
        """Blind indexes of ``values`` per column, and the raw values behind each digest."""
        raw_by_digest: dict[tuple[str, str], list[str]] = {}
        digests: dict[str, set[str]] = {}
        looked_up = 0
        for kind, raws in values.items():
            column = BLIND_INDEXES.get(kind)
            if column is None:
                raise RecordInputError(
                    f"cannot look up {kind!r}; kinds are: {', '.join(BLIND_INDEXES)}"
                )
            if isinstance(raws, str):
                raise TypeError(f"values of {kind!r} must be a collection of strings")
            distinct = list(dict.fromkeys(raws))
            looked_up += len(distinct)
            if looked_up > MAX_IDENTIFIER_LOOKUPS:
                raise RecordInputError(
                    f"too many identifiers to look up at once (at most {MAX_IDENTIFIER_LOOKUPS})"
                )
            for raw in distinct:
                digest = self._index(tenant, kind, raw)
                if digest is not None:
                    digests.setdefault(column, set()).add(digest)
                    raw_by_digest.setdefault((column, digest), []).append(raw)
        return digests, raw_by_digest

    def list_page(
        self, *, tenant: str, cursor: str | None = None, limit: int = 50
    ) -> RecordListPage:
        """Metadata of a page of the tenant's records (tombstones included), nothing decrypted."""
        if not 1 <= limit <= MAX_PAGE:
            raise RecordInputError(f"limit must be between 1 and {MAX_PAGE}")
        after = decode_cursor(cursor) if cursor else None
        with session_scope(self._factory) as session:
            rows = RecordRepository(session).page(tenant=tenant, after=after, limit=limit + 1)
        records = [_metadata(row) for row in rows[:limit]]
        last = records[-1] if len(rows) > limit else None
        next_cursor = encode_cursor(last.created_at, last.id) if last is not None else None
        return RecordListPage(records=records, next_cursor=next_cursor)

    # ----------------------------------------------------------------------- backfill

    def count_unindexed_names(self) -> int:
        """Active records (every tenant) with a full name but no name index yet."""
        with session_scope(self._factory) as session:
            return RecordRepository(session).count_unindexed_names()

    def backfill_name_index(
        self,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        *,
        report: BackfillReport | None = None,
    ) -> BackfillReport:
        """Index the full names of records written before the name index existed, resumably.

        Batches in id order: each is read in one short transaction, decrypted outside any,
        and written in another, row by row compare-and-set (a row changed or erased meanwhile
        is skipped; its writer keeps the index current). Killed halfway, a second run takes
        only rows still unindexed. A record failing authentication is listed in
        ``report.failed`` and the run goes on. ``progress`` gets the number of rows of each
        finished batch; ``report`` (filled in place) keeps the counts of an interrupted run.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        report = report if report is not None else BackfillReport()
        started = time.perf_counter()
        last_id = ""
        try:
            while True:
                with session_scope(self._factory) as session:
                    rows = RecordRepository(session).unindexed_names(
                        after=last_id, limit=batch_size
                    )
                if not rows:
                    return report
                last_id = rows[-1].id
                writes = self._name_digests(rows, report)
                if writes:
                    with session_scope(self._factory, write=True) as session:
                        repo = RecordRepository(session)
                        stored = sum(
                            repo.set_full_name_index(record_id, full_name=ciphertext, digest=digest)
                            for record_id, ciphertext, digest in writes
                        )
                    report.indexed += stored
                    report.skipped += len(writes) - stored
                report.batches += 1
                if progress is not None:
                    progress(len(rows))
                if len(rows) < batch_size:
                    return report
        finally:
            report.seconds = time.perf_counter() - started

    def _name_digests(
        self, rows: Sequence[CustomerRecord], report: BackfillReport
    ) -> list[tuple[str, bytes, str]]:
        """(record id, full_name ciphertext, digest) for each row whose name indexes."""
        writes: list[tuple[str, bytes, str]] = []
        for row in rows:
            ciphertext = row.full_name
            if ciphertext is None:  # pragma: no cover - filtered by the query
                continue
            try:
                name = self._decrypt(row, self._data_key(row), "full_name")
            except RecordIntegrityError:
                report.failed.append(row.id)
                continue
            digest = self._index(row.tenant, "full_name", name)
            if digest is None:
                report.blank += 1
            else:
                writes.append((row.id, ciphertext, digest))
        return writes

    # ------------------------------------------------------------------------ helpers

    def _active(
        self, repo: RecordRepository, *, tenant: str, record_id: str, for_update: bool = False
    ) -> CustomerRecord:
        row = repo.get(record_id, tenant=tenant, for_update=for_update)
        if row is None:
            raise RecordNotFoundError(f"no record {record_id!r} in this tenant")
        if row.status == STATUS_ERASED:
            raise RecordErasedError(f"record {record_id!r} was erased")
        return row

    def _data_key(self, row: CustomerRecord) -> bytes:
        if row.wrapped_key is None or row.kek_version is None:
            raise RecordIntegrityError(f"record {row.id!r} has no data key")
        try:
            return self._cipher.unwrap_data_key(
                WrappedKey(kek_version=row.kek_version, wrapped=row.wrapped_key),
                tenant=row.tenant,
                customer=row.id,
            )
        except UnknownKeyVersionError as exc:
            raise RecordIntegrityError(f"record {row.id!r}: {exc.message}") from None
        except IntegrityError:
            raise RecordIntegrityError(
                f"record {row.id!r}: its data key failed authentication"
            ) from None

    def _aad_version(self, row: CustomerRecord) -> int:
        if row.field_key_version is None:
            raise RecordIntegrityError(f"record {row.id!r} has no field key version")
        return row.field_key_version

    def _encrypt(self, row: CustomerRecord, data_key: bytes, name: str, text: str) -> bytes:
        return self._cipher.encrypt_field(
            data_key,
            text,
            tenant=row.tenant,
            customer=row.id,
            field=name,
            kek_version=self._aad_version(row),
        )

    def _decrypt(self, row: CustomerRecord, data_key: bytes, name: str) -> Any:  # noqa: ANN401 - JSON
        if getattr(row, name) is None:
            return None
        text = self._decrypt_text(row, data_key, name)
        try:
            return _deserialise(name, text)
        except json.JSONDecodeError:  # authenticated, so only a writer bug could cause this
            raise RecordIntegrityError(f"record {row.id!r}: field {name!r} is malformed") from None

    def _decrypt_text(self, row: CustomerRecord, data_key: bytes, name: str) -> str:
        ciphertext: bytes = getattr(row, name)
        try:
            text = self._cipher.decrypt_field(
                data_key,
                ciphertext,
                tenant=row.tenant,
                customer=row.id,
                field=name,
                kek_version=self._aad_version(row),
            )
        except IntegrityError:
            raise RecordIntegrityError(
                f"record {row.id!r}: field {name!r} failed authentication "
                "(tampered, or copied from another record, field or tenant)"
            ) from None
        return text

    def _write_fields(
        self, row: CustomerRecord, data_key: bytes, values: Mapping[str, Any]
    ) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for name, value in values.items():
            if value is None:
                setattr(row, name, None)
            else:
                setattr(row, name, self._encrypt(row, data_key, name, _serialise(name, value)))
            if name == "notes":
                redacted = None
                if value is not None:
                    entities = self._analyzer.analyze(value, tenant=row.tenant)
                    result = self._redactor.redact_text(
                        value, entities, channel=NOTE_CHANNEL, tenant=row.tenant
                    )
                    counts.update(item.entity_type for item in result.items)
                    redacted = self._encrypt(row, data_key, "notes_redacted", result.text)
                row.notes_redacted = redacted
                # retention keeps notes N days from this (policies/retention.yaml)
                row.notes_written_at = _now() if value is not None else None
        self._reindex(row, values)
        return dict(counts)

    def _reindex(self, row: CustomerRecord, values: Mapping[str, Any]) -> None:
        if "email" in values:
            row.email_bi = self._index_or_none(row.tenant, "email", values["email"])
        if "phone" in values:
            row.phone_bi = self._index_or_none(row.tenant, "phone", values["phone"])
        if "account" in values:
            account = values["account"] or {}
            row.account_id_bi = self._index_or_none(
                row.tenant, "account_id", account.get("account_id")
            )
        if "full_name" in values:
            row.full_name_bi = self._index_or_none(row.tenant, "full_name", values["full_name"])

    def _index_or_none(self, tenant: str, kind: str, value: str | None) -> str | None:
        return None if value is None else self._index(tenant, kind, value)

    def _index(self, tenant: str, kind: str, value: str) -> str | None:
        normalised = normalise_for_index(
            kind, value, phone_region=self.settings.default_phone_region
        )
        if not normalised:
            return None
        return self._indexer.index(tenant=tenant, field=kind, value=normalised)

    def _decrypted(
        self,
        row: CustomerRecord,
        data_key: bytes,
        counts: dict[str, int] | None = None,
        only: Collection[str] | None = None,
    ) -> DecryptedRecord:
        # Fields the caller will not be shown are never decrypted (less plaintext in memory).
        names = ENCRYPTED_FIELDS if only is None else [n for n in ENCRYPTED_FIELDS if n in only]
        fields = {name: self._decrypt(row, data_key, name) for name in names}
        return DecryptedRecord(
            id=row.id,
            tenant=row.tenant,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            fields=fields,
            entity_counts=counts or {},
        )


def _shred(row: CustomerRecord, now: datetime) -> None:
    """Crypto-shred one record: drop its wrapped data key, every ciphertext and blind index."""
    row.wrapped_key = None
    row.kek_version = None
    row.field_key_version = None
    for name in ENCRYPTED_FIELDS:
        setattr(row, name, None)
    for column in BLIND_INDEXES.values():
        setattr(row, column, None)
    row.status = STATUS_ERASED
    row.updated_at = now


def _metadata(row: CustomerRecord) -> DecryptedRecord:
    return DecryptedRecord(
        id=row.id,
        tenant=row.tenant,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
