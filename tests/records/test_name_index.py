"""The full-name blind index: normalisation, upkeep on write, lookups, migration, backfill, CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import event, text

from guard.audit.service import AuditTrail
from guard.records.cli import records as records_group
from guard.records.errors import RecordInputError
from guard.records.models import BLIND_INDEXES
from guard.records.repository import MAX_MATCH_DIGESTS, RecordRepository
from guard.records.schemas import RecordCreate, RecordUpdate
from guard.records.service import (
    MAX_IDENTIFIER_LOOKUPS,
    BackfillReport,
    IndexMatch,
    RecordService,
    normalise_for_index,
    normalise_name,
)
from guard.storage.engine import make_session_factory, session_scope
from guard.storage.migrate import alembic_config, current_revision, upgrade_to_head

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from click.testing import Result
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.records.models import CustomerRecord

PEOPLE: list[dict[str, Any]] = [
    {
        "full_name": "José O'Brien",
        "email": "Jose.OBrien@example.org",
        "phone": "+1 415 555 0100",
        "account": {"account_id": "AC-100001"},
    },
    {
        "full_name": "Zoë Müller-Lüdenscheidt",
        "email": "zoe@example.org",
        "phone": "+1 415 555 0101",
        "account": {"account_id": "AC-100002"},
    },
    {
        "full_name": "Łukasz Żółć",
        "email": "lukasz@example.org",
        "phone": "+1 415 555 0102",
        "account": {"account_id": "AC-100003"},
    },
]


def create(records: RecordService, tenant: str = "acme", **fields: Any) -> str:
    return records.create(tenant=tenant, data=RecordCreate(**fields)).id


def name_index(engine: Engine, record_id: str) -> str | None:
    with engine.connect() as conn:
        value: str | None = conn.execute(
            text("SELECT full_name_bi FROM customer_records WHERE id = :id"), {"id": record_id}
        ).scalar_one()
    return value


def forget_name_indexes(engine: Engine) -> None:
    """Make every row look written before migration 0004."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer_records SET full_name_bi = NULL"))


def unindexed(engine: Engine) -> int:
    with engine.connect() as conn:
        count: int = conn.execute(
            text(
                "SELECT count(*) FROM customer_records "
                "WHERE full_name_bi IS NULL AND full_name IS NOT NULL AND status = 'active'"
            )
        ).scalar_one()
    return count


@pytest.fixture
def selects(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT (statement, parameters) sent on ``engine`` during the test."""
    seen: list[tuple[str, Any]] = []

    def spy(*args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, args[3]))

    event.listen(engine, "before_cursor_execute", spy)
    yield seen
    event.remove(engine, "before_cursor_execute", spy)


# ------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("José  O'Brien", "jose o brien"),
        ("jose o brien", "jose o brien"),
        ("JOSE O\u2019BRIEN", "jose o brien"),  # typographic apostrophe
        ("  José\tO'Brien \n", "jose o brien"),
        ("Jose\u0301 O'Brien", "jose o brien"),  # combining acute accent
        (
            "\uff2a\uff2f\uff33\uff25 \uff2f'\uff22\uff32\uff29\uff25\uff2e",
            "jose o brien",
        ),  # full-width forms (NFKC)
        ("Jo\u00adsé O'Brien", "jose o brien"),  # soft hyphen: invisible, not a word break
        ("Zoë Müller-Lüdenscheidt", "zoe muller ludenscheidt"),
        ("Straße", "strasse"),
        ("Łukasz Żółć", "lukasz zolc"),
        ("IŞIK", "isik"),
        ("I\u015f\u0131k", "isik"),  # Turkish dotless i
        ("İlkay", "ilkay"),
        ("Lætitia Søndergaard", "laetitia sondergaard"),
        ("Ἀθηνᾶ", "αθηνα"),
        ("Ana-María, Jr.", "ana maria jr"),
        ("Louis XIV 2nd", "louis xiv 2nd"),
        ("---", ""),
        ("   ", ""),
        ("", ""),
    ],
)
def test_when_a_name_is_normalised_then_presentation_is_ignored(
    written: str, expected: str
) -> None:
    assert normalise_name(written) == expected
    assert normalise_for_index("full_name", written) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Jose Brien", "José O'Brien"),
        ("Jose OBrien", "José O'Brien"),
        ("Jane Smith", "Jane Smyth"),
        ("Ann Lee", "Anne Lee"),
    ],
)
def test_when_names_differ_by_more_than_presentation_then_they_differ(one: str, other: str) -> None:
    assert normalise_name(one) != normalise_name(other)


def test_when_a_name_is_normalised_twice_then_nothing_changes() -> None:
    for name in ("José O'Brien", "Ἀθηνᾶ", "कोमल शर्मा", "ガトウ", "İSTANBUL"):
        once = normalise_name(name)
        assert normalise_name(once) == once


# ---------------------------------------------------------------------- upkeep on write


def test_when_created_then_the_name_is_indexed_like_any_spelling_of_it(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records, full_name="José O'Brien")
    digest = name_index(engine, record_id)
    assert digest is not None
    assert len(digest) == 64
    other_spelling = create(records, full_name="JOSE O\u2019BRIEN")
    assert name_index(engine, other_spelling) == digest
    assert name_index(engine, create(records, full_name="Jose Brien")) != digest
    assert name_index(engine, create(records, full_name="José O'Brien", tenant="globex")) not in {
        None,
        digest,
    }


def test_when_created_without_a_name_or_with_a_blank_one_then_there_is_no_index(
    records: RecordService, engine: Engine
) -> None:
    assert name_index(engine, create(records, email="a@example.org")) is None
    assert name_index(engine, create(records, full_name=" - ")) is None


def test_when_updated_then_the_index_follows_the_name(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records, full_name="José O'Brien", email="jose@example.org")
    first = name_index(engine, record_id)

    records.update(tenant="acme", record_id=record_id, changes=RecordUpdate(email="j@example.org"))
    assert name_index(engine, record_id) == first

    records.update(tenant="acme", record_id=record_id, changes=RecordUpdate(full_name="Jo Brien"))
    second = name_index(engine, record_id)
    assert second not in {None, first}
    assert [
        m.record_id
        for m in records.match_identifiers(tenant="acme", values={"full_name": ["jo brien"]})
    ] == [record_id]
    assert records.match_identifiers(tenant="acme", values={"full_name": ["José O'Brien"]}) == []

    records.update(tenant="acme", record_id=record_id, changes=RecordUpdate(full_name=None))
    assert name_index(engine, record_id) is None


def test_when_erased_then_every_blind_index_is_cleared(
    records: RecordService, engine: Engine
) -> None:
    record_id = create(records, **PEOPLE[0])
    records.erase(tenant="acme", record_id=record_id)
    columns = ", ".join(BLIND_INDEXES.values())
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT {columns} FROM customer_records WHERE id = :id"),  # noqa: S608 - constants
            {"id": record_id},
        ).one()
    assert "full_name_bi" in BLIND_INDEXES.values()
    assert tuple(row) == (None,) * len(BLIND_INDEXES)


# ------------------------------------------------------------------------------ lookups


@pytest.mark.parametrize(
    ("kind", "written"),
    [
        ("email", "JOSE.OBRIEN@EXAMPLE.ORG"),
        ("email", "  jose.obrien@example.org "),
        ("phone", "(415) 555-0100"),
        ("phone", "415.555.0100"),
        ("account_id", " AC-100001 "),
        ("full_name", "jose o'brien"),
        ("full_name", "JOSÉ   O\u2019BRIEN"),
    ],
)
def test_when_an_identifier_is_written_differently_then_it_is_still_found(
    records: RecordService, kind: str, written: str
) -> None:
    ids = [create(records, **person) for person in PEOPLE]
    matches = records.match_identifiers(tenant="acme", values={kind: [written]})
    assert matches == [IndexMatch(record_id=ids[0], kind=kind, value=written)]


def test_when_several_kinds_are_looked_up_then_one_query_answers_all(
    records: RecordService, selects: list[tuple[str, Any]]
) -> None:
    ids = [create(records, **person) for person in PEOPLE]
    selects.clear()
    matches = records.match_identifiers(
        tenant="acme",
        values={
            "email": ["zoe@example.org", "nobody@example.org"],
            "phone": ["+1 415 555 0102"],
            "account_id": ["AC-100001"],
            "full_name": ["zoe muller ludenscheidt", "Zoë Müller Lüdenscheidt", "Nobody"],
        },
    )
    assert len(selects) == 1
    found = {(m.record_id, m.kind, m.value) for m in matches}
    assert found == {
        (ids[1], "email", "zoe@example.org"),
        (ids[2], "phone", "+1 415 555 0102"),
        (ids[0], "account_id", "AC-100001"),
        # two raw spellings of one name: each is reported, to be mapped back to its offsets
        (ids[1], "full_name", "zoe muller ludenscheidt"),
        (ids[1], "full_name", "Zoë Müller Lüdenscheidt"),
    }
    assert len(matches) == len(found)


def test_on_sqlite_a_lookup_uses_the_tenant_indexes_rather_than_scanning_the_tenant(
    records: RecordService, engine: Engine, selects: list[tuple[str, Any]]
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("query plans are checked on SQLite (PostgreSQL plans tiny tables as scans)")
    create(records, **PEOPLE[0])
    selects.clear()
    records.match_identifiers(
        tenant="acme",
        values={"email": ["a@example.org"], "phone": ["+1 415 555 0100"], "full_name": ["Jo"]},
    )
    ((statement, parameters),) = selects
    with engine.connect() as conn:
        plan = [
            row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    searches = [step for step in plan if "customer_records" in step]
    assert len(searches) == 3, plan
    for column in ("email_bi", "phone_bi", "full_name_bi"):
        assert any(
            f"ix_customer_records_tenant_{column} (tenant=? AND {column}=?)" in step
            for step in searches
        ), plan


def test_when_another_tenant_or_an_erased_record_holds_the_value_then_it_is_not_found(
    records: RecordService,
) -> None:
    create(records, tenant="globex", **PEOPLE[0])
    erased = create(records, **PEOPLE[1])
    records.erase(tenant="acme", record_id=erased)
    values = {
        "email": [PEOPLE[0]["email"], PEOPLE[1]["email"]],
        "full_name": [PEOPLE[0]["full_name"], PEOPLE[1]["full_name"]],
    }
    assert records.match_identifiers(tenant="acme", values=values) == []
    assert {m.kind for m in records.match_identifiers(tenant="globex", values=values)} == {
        "email",
        "full_name",
    }


def test_when_nothing_indexable_is_given_then_no_query_runs(
    records: RecordService, selects: list[tuple[str, Any]]
) -> None:
    create(records, **PEOPLE[0])
    selects.clear()
    assert records.match_identifiers(tenant="acme", values={}) == []
    assert records.match_identifiers(tenant="acme", values={"email": [], "full_name": []}) == []
    assert records.match_identifiers(tenant="acme", values={"full_name": ["--", " "]}) == []
    assert selects == []


def test_a_match_repr_names_the_record_and_kind_but_never_the_value(
    records: RecordService,
) -> None:
    create(records, **PEOPLE[0])
    (match,) = records.match_identifiers(tenant="acme", values={"email": [PEOPLE[0]["email"]]})
    assert PEOPLE[0]["email"] not in repr(match)
    assert PEOPLE[0]["email"] not in str(match)
    assert "email" in repr(match)
    with pytest.raises(AttributeError):
        match.value = "x"  # type: ignore[misc]


def test_when_a_lookup_is_malformed_or_too_big_then_it_is_refused(
    records: RecordService,
) -> None:
    with pytest.raises(RecordInputError, match="'postal_address'"):
        records.match_identifiers(tenant="acme", values={"postal_address": ["1 Main St"]})
    with pytest.raises(TypeError, match="collection"):
        records.match_identifiers(tenant="acme", values={"email": "a@example.org"})
    too_many = [f"c{i}@example.org" for i in range(MAX_IDENTIFIER_LOOKUPS + 1)]
    with pytest.raises(RecordInputError, match="too many"):
        records.match_identifiers(tenant="acme", values={"email": too_many})
    # duplicates count once
    same = ["a@example.org"] * (MAX_IDENTIFIER_LOOKUPS + 1)
    assert records.match_identifiers(tenant="acme", values={"email": same}) == []


def test_when_the_repository_is_asked_for_a_non_index_column_or_too_much_then_it_refuses(
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as session:
        repo = RecordRepository(session)
        for column in ("full_name", "tenant", "id", "email"):
            with pytest.raises(ValueError, match="not a blind-index column"):
                repo.match_indexes(tenant="acme", digests={column: ["00"]})
        with pytest.raises(ValueError, match="at most"):
            repo.match_indexes(
                tenant="acme",
                digests={
                    "email_bi": [f"{i:064x}" for i in range(MAX_MATCH_DIGESTS)],
                    "full_name_bi": ["f" * 64],
                },
            )
        with pytest.raises(TypeError):
            repo.match_indexes(tenant="acme", digests={"email_bi": "0" * 64})
        assert repo.match_indexes(tenant="acme", digests={"email_bi": []}) == []


def test_when_the_database_is_unreachable_then_the_lookup_raises(
    records: RecordService, tmp_path: Path
) -> None:
    broken = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'missing' / 'guard.db'}")
    records._factory = make_session_factory(broken)
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError):
            records.match_identifiers(tenant="acme", values={"full_name": ["Jose O'Brien"]})
    finally:
        broken.dispose()


# -------------------------------------------------------------------- migration, backfill


def test_a_database_at_0003_holding_records_is_upgraded_and_backfilled(
    records: RecordService, engine: Engine
) -> None:
    ids = [create(records, **person) for person in PEOPLE]
    other_tenant = create(records, tenant="globex", **PEOPLE[0])
    erased = create(records, full_name="Erased Person")
    records.erase(tenant="acme", record_id=erased)
    no_name = create(records, email="nameless@example.org")

    config = alembic_config()
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0003_records")
    assert current_revision(engine) == "0003_records"
    inspector = sqlalchemy.inspect(engine)
    assert "full_name_bi" not in {c["name"] for c in inspector.get_columns("customer_records")}
    assert "ix_customer_records_tenant_full_name_bi" not in {
        i["name"] for i in inspector.get_indexes("customer_records")
    }

    upgrade_to_head(engine)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert current_revision(engine) == head  # 0004 (this index) and every later revision
    inspector = sqlalchemy.inspect(engine)
    assert "ix_customer_records_tenant_full_name_bi" in {
        i["name"] for i in inspector.get_indexes("customer_records")
    }
    assert unindexed(engine) == 4
    assert records.match_identifiers(tenant="acme", values={"full_name": ["jose o brien"]}) == []
    # the other indexes survived the round trip
    assert records.match_identifiers(tenant="acme", values={"account_id": ["AC-100002"]}) == [
        IndexMatch(record_id=ids[1], kind="account_id", value="AC-100002")
    ]

    report = records.backfill_name_index(batch_size=2)

    assert (report.indexed, report.skipped, report.blank, report.failed) == (4, 0, 0, [])
    assert unindexed(engine) == 0
    assert name_index(engine, erased) is None
    assert name_index(engine, no_name) is None
    for person, record_id in zip(PEOPLE, ids, strict=True):
        found = records.match_identifiers(
            tenant="acme", values={"full_name": [person["full_name"].upper()]}
        )
        assert [m.record_id for m in found] == [record_id]
    found = records.match_identifiers(tenant="globex", values={"full_name": ["José O'Brien"]})
    assert [m.record_id for m in found] == [other_tenant]
    again = records.backfill_name_index(batch_size=2)
    assert (again.indexed, again.skipped, again.batches) == (0, 0, 0)


def test_a_backfill_interrupted_after_one_batch_resumes_without_redoing_a_row(
    records: RecordService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [create(records, full_name=f"Customer Number {i}") for i in range(8)]
    forget_name_indexes(engine)
    decrypted: list[str] = []
    decrypt = records._decrypt

    def counting(row: CustomerRecord, data_key: bytes, name: str) -> Any:
        decrypted.append(row.id)
        return decrypt(row, data_key, name)

    monkeypatch.setattr(records, "_decrypt", counting)

    def crash(_: int) -> None:
        raise KeyboardInterrupt

    first = BackfillReport()
    with pytest.raises(KeyboardInterrupt):
        records.backfill_name_index(3, crash, report=first)
    assert (first.indexed, first.batches) == (3, 1)
    assert unindexed(engine) == 5
    done_first = list(decrypted)
    assert done_first == sorted(ids)[:3]

    decrypted.clear()
    second = records.backfill_name_index(3)
    assert (second.indexed, second.skipped, second.failed) == (5, 0, [])
    assert second.batches == 2
    assert set(decrypted).isdisjoint(done_first)
    assert sorted(done_first + decrypted) == sorted(ids)
    assert unindexed(engine) == 0


def test_a_row_changed_or_erased_during_the_backfill_is_skipped_and_stays_right(
    records: RecordService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed, erased, untouched = (create(records, full_name=f"Person {n}") for n in "ABC")
    forget_name_indexes(engine)
    digests = records._name_digests

    def meanwhile(rows: Any, report: BackfillReport) -> list[tuple[str, bytes, str]]:
        writes = digests(rows, report)
        # between the batch's read and its write, a writer renames one and erases another
        records.update(tenant="acme", record_id=renamed, changes=RecordUpdate(full_name="New"))
        records.erase(tenant="acme", record_id=erased)
        return writes

    monkeypatch.setattr(records, "_name_digests", meanwhile)
    report = records.backfill_name_index(10)

    assert (report.indexed, report.skipped) == (1, 2)
    assert name_index(engine, untouched) is not None
    assert name_index(engine, erased) is None
    found = records.match_identifiers(tenant="acme", values={"full_name": ["new", "Person A"]})
    assert [(m.record_id, m.value) for m in found] == [(renamed, "new")]


def test_a_tampered_or_blank_name_does_not_stop_the_backfill(
    records: RecordService, engine: Engine
) -> None:
    good = create(records, full_name="Good Name")
    blank = create(records, full_name="***")
    tampered = create(records, full_name="Tampered Name")
    donor = create(records, full_name="Someone Else")
    forget_name_indexes(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE customer_records SET full_name = "
                "(SELECT full_name FROM customer_records WHERE id = :donor) WHERE id = :id"
            ),
            {"donor": donor, "id": tampered},
        )

    report = records.backfill_name_index(2)

    assert report.failed == [tampered]
    assert (report.indexed, report.blank, report.skipped) == (2, 1, 0)
    assert name_index(engine, good) is not None
    assert name_index(engine, blank) is None
    assert name_index(engine, tampered) is None
    assert "Tampered" not in repr(report)


# ---------------------------------------------------------------------------------- CLI


def reindex(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(records_group, ["reindex", *args], obj=settings)


def reindex_events(settings: Settings, factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    trail = AuditTrail(settings, factory)
    assert trail.verify().ok
    return [e for e in trail.search_events() if e["action"] == "records.reindex"]


def test_the_reindex_command_prints_counts_and_audits_them(
    records: RecordService,
    engine: Engine,
    db_settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    ids = [create(records, **person) for person in PEOPLE]
    create(records, full_name="?!")
    forget_name_indexes(engine)

    result = reindex(db_settings, "--batch-size", "2", "--no-progress")

    assert result.exit_code == 0, result.output
    assert "indexed 3 full name(s)" in result.stdout
    assert "0 changed or erased meanwhile; 1 with nothing to index; 0 failed" in result.stdout
    assert unindexed(engine) == 1  # the blank name: nothing to index
    (event_,) = reindex_events(db_settings, session_factory)
    assert event_["principal"] == "cli"
    assert event_["outcome"] == "success"
    details = event_["details"]
    assert (details["indexed"], details["skipped"], details["failed"], details["blank"]) == (
        3,
        0,
        0,
        1,
    )
    assert details["interrupted"] is False
    for person in PEOPLE:
        assert person["full_name"] not in result.output
        assert person["full_name"] not in str(event_)
    for record_id in ids:
        assert record_id not in str(event_)

    again = reindex(db_settings, "--progress")
    assert again.exit_code == 0, again.output
    assert "indexed 0 full name(s)" in again.stdout
    assert len(reindex_events(db_settings, session_factory)) == 2


def test_when_a_record_fails_authentication_then_reindex_names_it_and_exits_1(
    records: RecordService,
    engine: Engine,
    db_settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    create(records, full_name="Good Name")
    tampered = create(records, full_name="Tampered Name")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE customer_records SET full_name = :junk WHERE id = :id"),
            {"junk": b"\x01" * 48, "id": tampered},
        )
    forget_name_indexes(engine)

    result = reindex(db_settings, "--no-progress")

    assert result.exit_code == 1
    assert "indexed 1 full name(s)" in result.stdout
    assert tampered in result.stderr
    assert "failed authentication" in result.stderr
    assert "Tampered" not in result.output
    (event_,) = reindex_events(db_settings, session_factory)
    assert event_["outcome"] == "failure"
    assert event_["details"]["failed"] == 1
    assert tampered not in str(event_)


def test_an_interrupted_reindex_is_audited_with_its_counts_and_a_rerun_finishes(
    records: RecordService,
    engine: Engine,
    db_settings: Settings,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for person in PEOPLE:
        create(records, **person)
    forget_name_indexes(engine)
    digests = RecordService._name_digests
    calls = 0

    def killed_in_the_second_batch(
        self: RecordService, rows: Any, report: BackfillReport
    ) -> list[tuple[str, bytes, str]]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return digests(self, rows, report)

    with monkeypatch.context() as patch:
        patch.setattr(RecordService, "_name_digests", killed_in_the_second_batch)
        interrupted = reindex(db_settings, "--batch-size", "1", "--no-progress")

    assert interrupted.exit_code == 1  # click's "Aborted!"
    assert unindexed(engine) == 2
    resumed = reindex(db_settings, "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert "indexed 2 full name(s)" in resumed.stdout
    assert unindexed(engine) == 0
    first, second = reindex_events(db_settings, session_factory)
    assert (first["outcome"], first["details"]["indexed"], first["details"]["interrupted"]) == (
        "failure",
        1,
        True,
    )
    assert (second["outcome"], second["details"]["indexed"]) == ("success", 2)
