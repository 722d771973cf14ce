from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pytest
from sqlalchemy import insert, select, text

from guard.audit.chain import event_hash
from guard.audit.models import AuditEvent
from guard.audit.verify import verify_range
from tests.audit.conftest import record_events, tamper

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Engine

    from guard.audit.schemas import VerifyReport
    from guard.audit.service import AuditTrail

EVENTS = 12


@pytest.fixture
def chain(trail: AuditTrail) -> AuditTrail:
    record_events(trail, EVENTS)
    assert trail.verify().ok
    return trail


def test_when_chain_is_untouched_then_verify_is_ok(chain: AuditTrail) -> None:
    report = chain.verify(batch_size=5)
    assert report.ok
    assert report.events_checked == EVENTS
    assert report.checkpoints_checked == 2
    assert report.finding is None


def test_when_a_field_is_edited_then_verify_reports_edited_at_that_seq(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "UPDATE audit_events SET decision = 'deny' WHERE seq = 7")
    report = chain.verify(batch_size=5)
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "edited", 7)
    assert report.events_checked == 6


def test_when_an_event_is_deleted_then_verify_reports_deleted_at_the_missing_seq(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "DELETE FROM audit_events WHERE seq = 4")
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "deleted", 4)


def test_when_the_first_event_is_deleted_then_verify_reports_deleted_at_one(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "DELETE FROM audit_events WHERE seq = 1")
    report = chain.verify()
    assert (report.finding, report.first_bad_seq) == ("deleted", 1)


def test_when_a_forged_event_is_inserted_then_verify_reports_inserted(
    chain: AuditTrail, engine: Engine
) -> None:
    table = cast("Table", AuditEvent.__table__)
    with engine.connect() as conn:
        last = conn.execute(select(table).where(table.c.seq == EVENTS))
        row = dict(last.mappings().one())
    # The forger can compute a perfect hash; without the chain key the HMAC is a guess.
    row.update(seq=EVENTS + 1, prev_hash=row["hash"], decision="allow")
    row["hash"] = event_hash(row["seq"], row["prev_hash"], row)
    row["hmac"] = "f" * 64
    tamper(engine, insert(table).values(**row))
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "inserted", EVENTS + 1)


def test_when_a_row_is_replaced_by_a_forgery_then_verify_reports_inserted(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "UPDATE audit_events SET hmac = :mac WHERE seq = 3", {"mac": "0" * 64})
    report = chain.verify()
    assert (report.finding, report.first_bad_seq) == ("inserted", 3)


def test_when_two_events_are_swapped_then_verify_reports_reordered(
    chain: AuditTrail, engine: Engine
) -> None:
    columns = (
        "ts, principal, role, tenant, action, resource, decision, outcome, request_id, "
        "customer, entity_counts, details, prev_hash, hash, hmac"
    ).split(", ")
    with engine.connect() as conn:
        rows = {
            row["seq"]: dict(row)
            for row in conn.execute(text("SELECT * FROM audit_events WHERE seq IN (3, 8)"))
            .mappings()
            .all()
        }
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    for seq, source in ((3, 8), (8, 3)):
        params = {name: rows[source][name] for name in columns} | {"target": seq}
        tamper(engine, f"UPDATE audit_events SET {assignments} WHERE seq = :target", params)  # noqa: S608 - column names are the table's own
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "reordered", 3)


def test_when_events_after_a_checkpoint_are_cut_off_then_verify_reports_truncated(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "DELETE FROM audit_events WHERE seq >= 9")
    report = chain.verify()
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "truncated", 9)
    assert report.events_checked == 8


def test_when_a_checkpoint_signature_is_forged_then_verify_fails(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(
        engine, "UPDATE audit_checkpoints SET signature = :sig WHERE seq = 5", {"sig": "ab" * 64}
    )
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_seq == 5
    assert report.detail == "checkpoint signature invalid"


def test_when_a_checkpoint_head_is_moved_then_verify_fails(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "UPDATE audit_checkpoints SET seq = 4 WHERE seq = 5")
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_seq == 4


def test_when_the_trail_is_empty_then_verify_is_ok(trail: AuditTrail) -> None:
    report = trail.verify()
    assert (report.ok, report.events_checked, report.checkpoints_checked) == (True, 0, 0)


# --------------------------------------------------------------------- a range (incidents)


def _range(chain: AuditTrail, engine: Engine, first: int, last: int) -> VerifyReport:
    from guard.storage.engine import make_session_factory  # noqa: PLC0415

    return verify_range(make_session_factory(engine), chain.keys, first_seq=first, last_seq=last)


def test_when_a_range_is_untouched_then_it_verifies_with_its_predecessor(
    chain: AuditTrail, engine: Engine
) -> None:
    report = _range(chain, engine, 5, 9)
    assert report.ok
    assert report.events_checked == 6  # 4..9: the first event links to event 4


@pytest.mark.parametrize("seq", [4, 5, 9])
def test_when_an_event_in_or_just_before_a_range_is_edited_then_the_range_fails(
    chain: AuditTrail, engine: Engine, seq: int
) -> None:
    tamper(engine, f"UPDATE audit_events SET decision = 'deny' WHERE seq = {seq}")  # noqa: S608 - a test's own integer
    report = _range(chain, engine, 5, 9)
    assert (report.ok, report.finding, report.first_bad_seq) == (False, "edited", seq)


def test_when_an_event_outside_a_range_is_edited_then_the_range_still_verifies(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "UPDATE audit_events SET decision = 'deny' WHERE seq = 11")
    assert _range(chain, engine, 5, 9).ok
    assert not chain.verify().ok


def test_when_an_event_in_a_range_is_deleted_then_the_range_fails(
    chain: AuditTrail, engine: Engine
) -> None:
    tamper(engine, "DELETE FROM audit_events WHERE seq = 7")
    report = _range(chain, engine, 5, 9)
    assert (report.finding, report.first_bad_seq) == ("deleted", 7)
    tamper(engine, "DELETE FROM audit_events WHERE seq > 8")
    assert _range(chain, engine, 1, 9).finding == "deleted"
