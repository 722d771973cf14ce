"""Records round trip, blind-index search, pagination, erasure, and attacks that fail closed."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy
from sqlalchemy import text

from guard.crypto.envelope import WrappedKey
from guard.crypto.errors import IntegrityError, KeyConfigurationError
from guard.errors import InvalidInputError
from guard.records.errors import (
    RecordErasedError,
    RecordInputError,
    RecordIntegrityError,
    RecordNotFoundError,
)
from guard.records.models import BLIND_INDEXES, ENCRYPTED_FIELDS
from guard.records.repository import SqlDataKeyStore
from guard.records.schemas import RecordCreate, RecordUpdate
from guard.records.service import normalise_for_index

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.crypto.envelope import EnvelopeCipher
    from guard.records.service import RecordService

ALICE: dict[str, Any] = {
    "full_name": "Alice Marchetti",
    "email": "Alice.Marchetti@example.org",
    "phone": "+44 20 7946 0321",
    "postal_address": "14 Larkspur Lane, Bristol BS1 4DJ",
    "date_of_birth": date(1984, 3, 9),
    "account": {"account_id": "AC-778812", "plan": "pro", "seats": 3},
    "notes": "Called about a refund. Her husband Roberto Marchetti asked to be added.",
    "extra": {"preferred_language": "it", "vip": True},
}
PLAINTEXTS = (
    "Alice Marchetti",
    "Alice.Marchetti@example.org",
    "alice.marchetti@example.org",
    "7946 0321",
    "Larkspur",
    "AC-778812",
    "Roberto",
    "refund",
    "1984-03-09",
    "preferred_language",
)


def create(records: RecordService, tenant: str = "acme", **overrides: Any) -> str:
    return records.create(tenant=tenant, data=RecordCreate(**{**ALICE, **overrides})).id


def raw(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.begin() as conn:
        result = conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


def ciphertext(engine: Engine, record_id: str, column: str) -> bytes:
    (row,) = raw(engine, f"SELECT {column} FROM customer_records WHERE id = :id", id=record_id)  # noqa: S608 - column names are test constants
    return bytes(row[0])


def put(engine: Engine, record_id: str, column: str, value: object) -> None:
    raw(engine, f"UPDATE customer_records SET {column} = :v WHERE id = :id", v=value, id=record_id)  # noqa: S608 - column names are test constants


# ------------------------------------------------------------------------- round trip


def test_when_created_then_read_returns_every_field(records: RecordService) -> None:
    record_id = create(records)
    record = records.read(tenant="acme", record_id=record_id)
    assert record.status == "active"
    fields = record.fields
    assert fields["full_name"] == ALICE["full_name"]
    assert fields["email"] == ALICE["email"]
    assert fields["date_of_birth"] == "1984-03-09"
    assert fields["account"] == ALICE["account"]
    assert fields["extra"] == ALICE["extra"]
    assert fields["notes"] == ALICE["notes"]
    assert "Roberto" not in fields["notes_redacted"]
    assert "refund" in fields["notes_redacted"]
    assert "Roberto" not in repr(record)


def test_when_updated_then_changed_fields_change_and_others_stay(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records)
    name_before = ciphertext(engine, record_id, "full_name")
    updated = records.update(
        tenant="acme",
        record_id=record_id,
        changes=RecordUpdate(
            email="alice@new.example", notes="She wants paper bills from now on.", phone=None
        ),
    )
    assert updated.fields["email"] == "alice@new.example"
    assert updated.fields["phone"] is None
    assert updated.fields["notes_redacted"] == "She wants paper bills from now on."
    assert updated.updated_at >= updated.created_at
    assert ciphertext(engine, record_id, "full_name") == name_before
    again = records.read(tenant="acme", record_id=record_id)
    assert again.fields == updated.fields
    assert records.search(tenant="acme", email="alice@new.example")[0].id == record_id
    assert records.search(tenant="acme", email=ALICE["email"]) == []
    assert records.search(tenant="acme", phone=ALICE["phone"]) == []


def test_when_notes_hold_pii_then_entity_counts_are_reported(records: RecordService) -> None:
    record = records.create(tenant="acme", data=RecordCreate(**ALICE))
    assert record.entity_counts.get("PERSON", 0) >= 1


def test_when_record_is_of_another_tenant_then_not_found(records: RecordService) -> None:
    record_id = create(records, tenant="acme")
    with pytest.raises(RecordNotFoundError):
        records.read(tenant="globex", record_id=record_id)
    with pytest.raises(RecordNotFoundError):
        records.update(tenant="globex", record_id=record_id, changes=RecordUpdate(notes="x"))
    with pytest.raises(RecordNotFoundError):
        records.erase(tenant="globex", record_id=record_id)


# ------------------------------------------------------------------------------ search


def test_when_searching_by_blind_index_then_normalised_exact_matches_are_found(
    records: RecordService,
) -> None:
    alice = create(records)
    bob = create(
        records,
        full_name="Bob Stone",
        email="bob@example.org",
        phone="0161 496 0000",
        account={"account_id": "AC-1"},
    )
    create(records, tenant="globex")  # same email in another tenant: never found from acme
    assert [r.id for r in records.search(tenant="acme", email=" ALICE.marchetti@EXAMPLE.org")] == [
        alice
    ]
    assert [r.id for r in records.search(tenant="acme", phone="+44 (20) 7946-0321")] == [alice]
    assert [r.id for r in records.search(tenant="acme", account_id="AC-1")] == [bob]
    assert records.search(tenant="acme", email="nobody@example.org") == []
    found = records.search(tenant="acme", email="bob@example.org")
    assert found[0].fields["full_name"] == "Bob Stone"


@pytest.mark.parametrize(
    ("region", "stored", "asked"),
    [
        ("US", "+1 415 555 0100", "(415) 555-0100"),
        ("US", "415.555.0100", "+14155550100"),
        ("US", "+1-415-555-0100", "1 415 555 0100"),
        ("GB", "+44 20 7946 0321", "020 7946 0321"),
        ("US", "ext. 12 34", "1234"),  # not a phone number: its digits
    ],
)
def test_phone_numbers_are_found_whatever_their_formatting(
    records: RecordService, region: str, stored: str, asked: str
) -> None:
    records.settings = records.settings.model_copy(update={"default_phone_region": region})
    record_id = create(records, phone=stored)
    assert [r.id for r in records.search(tenant="acme", phone=asked)] == [record_id]
    assert normalise_for_index("phone", "+1 415 555 0100") == "+14155550100"


def test_when_search_names_no_or_two_criteria_then_it_is_refused(records: RecordService) -> None:
    with pytest.raises(RecordInputError, match="exactly one"):
        records.search(tenant="acme")
    with pytest.raises(RecordInputError, match="exactly one"):
        records.search(tenant="acme", email="a@b.example", phone="1")


def test_when_blind_indexes_are_stored_then_they_differ_per_tenant(
    records: RecordService, engine: Engine
) -> None:
    acme = create(records, tenant="acme")
    globex = create(records, tenant="globex")
    a = raw(engine, "SELECT email_bi FROM customer_records WHERE id = :id", id=acme)[0][0]
    g = raw(engine, "SELECT email_bi FROM customer_records WHERE id = :id", id=globex)[0][0]
    assert a
    assert g
    assert a != g


# -------------------------------------------------------------------------- pagination


def test_when_listing_then_pages_cover_every_record_once_without_decrypting(
    records: RecordService,
) -> None:
    ids = {create(records, email=f"c{i}@example.org") for i in range(7)}
    create(records, tenant="globex")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = records.list_page(tenant="acme", cursor=cursor, limit=3)
        pages += 1
        assert all(r.fields == {} for r in page.records)
        seen.extend(r.id for r in page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 7
    assert set(seen) == ids


@pytest.mark.parametrize("cursor", ["garbage!", "bm90LWEtY3Vyc29y"])
def test_when_cursor_is_malformed_then_it_is_refused(records: RecordService, cursor: str) -> None:
    with pytest.raises(RecordInputError, match="cursor"):
        records.list_page(tenant="acme", cursor=cursor)


# ------------------------------------------------------------------------------ erasure


def test_when_erased_then_no_key_decrypts_the_ciphertext_and_a_tombstone_remains(
    records: RecordService, cipher: EnvelopeCipher, engine: Engine
) -> None:
    record_id = create(records)
    other_id = create(records, email="other@example.org")
    backup = {name: ciphertext(engine, record_id, name) for name in ENCRYPTED_FIELDS}
    (row,) = raw(
        engine,
        "SELECT field_key_version, kek_version FROM customer_records WHERE id = :id",
        id=record_id,
    )
    field_version = int(row[0])

    tombstone = records.erase(tenant="acme", record_id=record_id)

    assert tombstone.status == "erased"
    (stored,) = raw(engine, "SELECT * FROM customer_records WHERE id = :id", id=record_id)
    stored_map = dict(stored._mapping)
    assert stored_map["status"] == "erased"
    assert stored_map["tenant"] == "acme"
    assert stored_map["created_at"] is not None
    for column in (*ENCRYPTED_FIELDS, "wrapped_key", "kek_version", "field_key_version"):
        assert stored_map[column] is None, column
    for column in BLIND_INDEXES.values():
        assert stored_map[column] is None, column
    with pytest.raises(RecordErasedError):
        records.read(tenant="acme", record_id=record_id)
    with pytest.raises(RecordErasedError):
        records.update(tenant="acme", record_id=record_id, changes=RecordUpdate(notes="x"))
    assert records.search(tenant="acme", email=ALICE["email"]) == []
    listed = records.list_page(tenant="acme").records
    assert {r.id: r.status for r in listed}[record_id] == "erased"

    # Every data key that still exists, under every KEK version in use, fails on the backup.
    candidate_keys = [
        cipher.unwrap_data_key(wrapped, tenant=tenant, customer=customer)
        for _, tenant, customer, wrapped in SqlDataKeyStore(records._factory).iter_wrapped(100)
    ]
    fresh_key, fresh_wrapped = cipher.new_data_key(tenant="acme", customer=record_id)
    candidate_keys.append(fresh_key)
    versions = {field_version, fresh_wrapped.kek_version, 0}
    assert candidate_keys
    for name, blob in backup.items():
        for key in candidate_keys:
            for version in versions:
                with pytest.raises(IntegrityError):
                    cipher.decrypt_field(
                        key,
                        blob,
                        tenant="acme",
                        customer=record_id,
                        field=name,
                        kek_version=version,
                    )
    assert records.read(tenant="acme", record_id=other_id).fields["email"] == "other@example.org"


def test_when_erased_twice_then_the_second_is_refused(records: RecordService) -> None:
    record_id = create(records)
    records.erase(tenant="acme", record_id=record_id)
    with pytest.raises(RecordErasedError):
        records.erase(tenant="acme", record_id=record_id)


# ------------------------------------------------------------------------ nothing in clear


def test_when_the_erasure_check_refuses_inside_the_transaction_then_nothing_is_shredded(
    records: RecordService,
) -> None:
    record_id = create(records)
    seen: list[bool] = []

    def held(session: Session) -> None:
        # runs with the row locked, in the erasing transaction (a legal hold is checked here)
        seen.append(session.in_transaction())
        raise InvalidInputError("held")

    with pytest.raises(InvalidInputError, match="held"):
        records.erase(tenant="acme", record_id=record_id, unless=held)
    assert seen == [True]
    assert records.read(tenant="acme", record_id=record_id).fields["full_name"]


def test_when_database_is_dumped_then_no_plaintext_appears(
    records: RecordService, engine: Engine, db_settings: Settings
) -> None:
    record_id = create(records)
    records.update(tenant="acme", record_id=record_id, changes=RecordUpdate(phone=ALICE["phone"]))
    dump: list[str] = []
    for table in sqlalchemy.inspect(engine).get_table_names():
        for row in raw(engine, f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the catalogue
            for value in row:
                if isinstance(value, bytes | memoryview):
                    dump.append(bytes(value).decode("latin-1"))
                else:
                    dump.append(str(value))
    text_dump = "\n".join(dump)
    if db_settings.sqlalchemy_url.startswith("sqlite"):
        path = db_settings.sqlalchemy_url.removeprefix("sqlite:///")
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as handle:  # noqa: PTH123 - raw file bytes
                    text_dump += handle.read().decode("latin-1")
            except FileNotFoundError:
                pass
    for plaintext in PLAINTEXTS:
        assert plaintext not in text_dump, plaintext
    assert record_id in text_dump


# -------------------------------------------------------------------------------- attacks


def test_when_a_ciphertext_is_tampered_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records)
    blob = bytearray(ciphertext(engine, record_id, "email"))
    blob[-1] ^= 0x01
    put(engine, record_id, "email", bytes(blob))
    with pytest.raises(RecordIntegrityError, match="'email' failed authentication") as caught:
        records.read(tenant="acme", record_id=record_id)
    assert "Alice" not in str(caught.value)


def test_when_a_ciphertext_is_truncated_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records)
    put(engine, record_id, "notes", ciphertext(engine, record_id, "notes")[:10])
    with pytest.raises(IntegrityError):
        records.read(tenant="acme", record_id=record_id)


def test_when_a_ciphertext_is_swapped_between_customers_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    alice = create(records)
    bob = create(records, full_name="Bob Stone", email="bob@example.org")
    put(engine, bob, "email", ciphertext(engine, alice, "email"))
    with pytest.raises(IntegrityError):
        records.read(tenant="acme", record_id=bob)


def test_when_a_ciphertext_is_moved_between_fields_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records)
    put(engine, record_id, "full_name", ciphertext(engine, record_id, "email"))
    with pytest.raises(IntegrityError, match="full_name"):
        records.read(tenant="acme", record_id=record_id)


def test_when_a_ciphertext_is_copied_between_tenants_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    acme = create(records, tenant="acme")
    globex = create(records, tenant="globex")
    put(engine, acme, "email", ciphertext(engine, globex, "email"))
    with pytest.raises(IntegrityError):
        records.read(tenant="acme", record_id=acme)


def test_when_a_row_is_moved_to_another_tenant_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records, tenant="acme")
    put(engine, record_id, "tenant", "globex")
    with pytest.raises(IntegrityError, match="data key"):
        records.read(tenant="globex", record_id=record_id)


def test_when_a_wrapped_key_is_swapped_between_customers_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    alice = create(records)
    bob = create(records, email="bob@example.org")
    put(engine, bob, "wrapped_key", ciphertext(engine, alice, "wrapped_key"))
    with pytest.raises(IntegrityError):
        records.read(tenant="acme", record_id=bob)


def test_when_the_field_key_version_is_changed_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records)
    raw(
        engine,
        "UPDATE customer_records SET field_key_version = field_key_version + 1 WHERE id = :id",
        id=record_id,
    )
    with pytest.raises(IntegrityError):
        records.read(tenant="acme", record_id=record_id)


def test_when_the_kek_version_is_changed_then_read_fails_closed(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records)
    raw(
        engine,
        "UPDATE customer_records SET kek_version = kek_version + 1 WHERE id = :id",
        id=record_id,
    )
    with pytest.raises((IntegrityError, KeyConfigurationError)):
        records.read(tenant="acme", record_id=record_id)


# ------------------------------------------------------------------------ data key store


def test_when_the_data_key_store_replaces_then_it_compares_and_sets(
    records: RecordService, session_factory: sessionmaker[Session], cipher: EnvelopeCipher
) -> None:
    ids = {create(records, email=f"k{i}@example.org") for i in range(5)}
    erased = create(records)
    records.erase(tenant="acme", record_id=erased)
    store = SqlDataKeyStore(session_factory)
    listed = list(store.iter_wrapped(2))
    assert {key_id for key_id, *_ in listed} == ids
    counts = store.count_by_version()
    assert sum(counts.values()) == 5

    key_id, tenant, customer, old = listed[0]
    assert (tenant, customer) == ("acme", key_id)
    data_key = cipher.unwrap_data_key(old, tenant=tenant, customer=customer)
    new = WrappedKey(kek_version=old.kek_version + 100, wrapped=b"not-a-real-wrapping")
    assert store.replace_wrapped(key_id, old, new) is True
    assert store.replace_wrapped(key_id, old, new) is False  # stale: already replaced
    assert store.count_by_version()[old.kek_version + 100] == 1
    assert store.replace_wrapped(erased, old, new) is False
    assert data_key


def test_a_read_decrypts_only_the_fields_asked_for(records: RecordService, engine: Engine) -> None:
    record_id = create(records)
    blob = bytearray(ciphertext(engine, record_id, "date_of_birth"))
    blob[-1] ^= 0x01
    put(engine, record_id, "date_of_birth", bytes(blob))
    shown = records.read(tenant="acme", record_id=record_id, only={"email", "notes_redacted"})
    assert set(shown.fields) == {"email", "notes_redacted"}
    with pytest.raises(RecordIntegrityError, match="date_of_birth"):
        records.read(tenant="acme", record_id=record_id)
