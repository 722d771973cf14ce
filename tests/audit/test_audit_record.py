from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from guard.audit.errors import AuditInputError
from guard.audit.service import AuditTrail
from tests.audit.conftest import CHECKPOINT_EVERY, record_events

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings

BASE: dict[str, Any] = {
    "action": "redact",
    "resource": "text",
    "decision": "allow",
    "outcome": "success",
}


def test_when_events_are_recorded_then_seqs_run_from_one_without_gaps(trail: AuditTrail) -> None:
    assert record_events(trail, 7) == [1, 2, 3, 4, 5, 6, 7]
    report = trail.verify()
    assert report.ok
    assert report.events_checked == 7


def test_when_every_n_events_then_a_signed_checkpoint_is_written(
    trail: AuditTrail, engine: Engine
) -> None:
    record_events(trail, 2 * CHECKPOINT_EVERY + 1)
    with engine.connect() as conn:
        seqs: Sequence[int] = (
            conn.execute(text("SELECT seq FROM audit_checkpoints ORDER BY seq")).scalars().all()
        )
    assert seqs == [CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY]
    assert trail.verify().checkpoints_checked == 2


def test_when_time_has_passed_then_the_next_event_is_checkpointed(
    audit_settings: Settings, factory: sessionmaker[Session], engine: Engine
) -> None:
    timed = audit_settings.model_copy(
        update={"audit_checkpoint_events": 1000, "audit_checkpoint_seconds": 0.001}
    )
    trail = AuditTrail(timed, factory)
    record_events(trail, 3)
    with engine.connect() as conn:
        count: int = conn.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar_one()
    assert count >= 2


def test_when_customer_is_given_then_only_its_keyed_hash_is_stored(
    trail: AuditTrail, engine: Engine
) -> None:
    trail.record(**BASE, customer="C-1042", details={"customer_id": "C-1042", "count": 2})
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events")).mappings().one()
    dumped = json.dumps({key: str(value) for key, value in row.items()})
    assert "C-1042" not in dumped
    assert row["customer"] == trail.customer_hash("C-1042")
    assert json.loads(row["details"])["customer_id"] == trail.keys.identifier_hash(
        "customer", "C-1042"
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"details": {"text": "Jane Doe called"}}, "text"),
        ({"details": {"customer_email": "x"}}, "customer_email"),
        ({"details": {"phone_number": "555"}}, "phone_number"),
        ({"details": {"name": "Jane"}}, "name"),
        ({"details": {"note": "mail jane@example.com"}}, "note"),
        ({"decision": "maybe"}, "decision"),
        ({"outcome": "ok"}, "outcome"),
        ({"action": ""}, "action"),
        ({"entity_counts": {"EMAIL_ADDRESS": -1}}, "EMAIL_ADDRESS"),
        ({"details": {"nested": {"a": 1}}}, "nested"),
    ],
)
def test_when_event_carries_payload_or_bad_field_then_it_is_refused_naming_the_field(
    trail: AuditTrail, engine: Engine, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(AuditInputError) as caught:
        trail.record(**{**BASE, **overrides})
    message = str(caught.value)
    assert field in message
    assert "Jane" not in message
    assert "jane@example.com" not in message
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 0


def test_when_unknown_field_is_passed_through_structlog_then_it_is_refused(
    trail: AuditTrail,
) -> None:
    with pytest.raises(AuditInputError, match="unknown fields: email"):
        trail._logger.append(**BASE, email="jane@example.com")


def test_when_jsonl_path_is_set_then_each_event_is_mirrored(
    audit_settings: Settings, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    trail = AuditTrail(audit_settings.model_copy(update={"audit_jsonl_path": path}), factory)
    record_events(trail, 3, customer="C-9")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert "C-9" not in path.read_text()
    assert lines[2]["prev_hash"] == lines[1]["hash"]


def test_when_entity_counts_are_given_then_they_are_stored_canonically(
    trail: AuditTrail, engine: Engine
) -> None:
    trail.record(**BASE, entity_counts={"PHONE_NUMBER": 1, "EMAIL_ADDRESS": 2})
    with engine.connect() as conn:
        stored: str = conn.execute(text("SELECT entity_counts FROM audit_events")).scalar_one()
    assert stored == '{"EMAIL_ADDRESS":2,"PHONE_NUMBER":1}'


class _Behind(datetime):
    """Another host whose clock runs a day behind."""

    @classmethod
    def now(cls, tz: Any = None) -> _Behind:
        real = datetime.now(tz or UTC)
        return cls.fromtimestamp(real.timestamp() - 86_400, tz or UTC)


def test_when_a_clock_runs_behind_then_ts_still_never_goes_back_along_seq(
    trail: AuditTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_events(trail, 2)
    with monkeypatch.context() as patched:
        patched.setattr("guard.audit.writer.datetime", _Behind)
        record_events(trail, 2)
    record_events(trail, 1)
    stamps = [event["ts"] for event in trail.search_events()]
    assert stamps == sorted(stamps)
    assert trail.verify().ok
    # so a time range is a seq range: since the third event finds the third and later
    third = trail.search_events()[2]
    found = trail.search_events(since=datetime.fromisoformat(third["ts"]))
    assert found[0]["seq"] <= third["seq"]
    assert [e["seq"] for e in found] == list(range(found[0]["seq"], 6))
