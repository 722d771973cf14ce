from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from guard.audit.cli import audit
from guard.audit.schemas import AuditFilters
from tests.audit.conftest import record_events, tamper

if TYPE_CHECKING:
    from pathlib import Path

    import click
    from sqlalchemy.engine import Engine

    from guard.audit.service import AuditTrail
    from guard.config import Settings


@pytest.fixture
def populated(trail: AuditTrail) -> AuditTrail:
    record_events(trail, 3, principal="alice", customer="C-1")
    record_events(trail, 2, principal="bob", decision="deny", customer="C-2")
    record_events(trail, 4, principal="carol", tenant="globex", role=None)
    return trail


def test_when_filtering_by_customer_then_only_that_customers_events_return(
    populated: AuditTrail,
) -> None:
    page = populated.search(AuditFilters(customer="C-2"))
    assert [event.seq for event in page.events] == [4, 5]
    assert page.next_cursor is None


def test_when_filtering_by_principal_decision_and_tenant_then_all_filters_apply(
    populated: AuditTrail,
) -> None:
    assert len(populated.search(AuditFilters(principal="alice")).events) == 3
    assert len(populated.search(AuditFilters(decision="deny")).events) == 2
    assert len(populated.search(AuditFilters(tenant="globex")).events) == 4
    assert populated.search(AuditFilters(tenant="globex", decision="deny")).events == []


def test_when_filtering_by_time_then_the_range_is_half_open(populated: AuditTrail) -> None:
    now = datetime.now(UTC)
    assert len(populated.search(AuditFilters(since=now - timedelta(hours=1))).events) == 9
    assert populated.search(AuditFilters(until=now - timedelta(hours=1))).events == []


def test_when_paging_with_the_cursor_then_every_event_is_seen_once(populated: AuditTrail) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        page = populated.search(AuditFilters(), limit=4, cursor=cursor)
        seen += [event.seq for event in page.events]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(range(1, 10))


def test_when_exporting_csv_then_formula_like_cells_are_neutralised(trail: AuditTrail) -> None:
    record_events(trail, 1, principal="=HYPERLINK(1)")
    out = io.StringIO()
    assert trail.export(AuditFilters(), "csv", out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["principal"] == "'=HYPERLINK(1)"
    assert json.loads(rows[0]["details"]) == {"n": 0}


def _invoke(settings: Settings, *args: str) -> click.testing.Result:
    return CliRunner().invoke(audit, list(args), obj=settings)


@pytest.mark.usefixtures("populated")
def test_when_cli_verifies_an_intact_chain_then_it_exits_zero(audit_settings: Settings) -> None:
    result = _invoke(audit_settings, "verify")
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 9 events" in result.output


@pytest.mark.usefixtures("populated")
def test_when_cli_verifies_an_edited_chain_then_it_exits_one_with_the_finding(
    audit_settings: Settings, engine: Engine
) -> None:
    tamper(engine, "UPDATE audit_events SET principal = 'mallory' WHERE seq = 4")
    result = _invoke(audit_settings, "verify")
    assert result.exit_code == 1
    assert result.output.strip() == "audit chain broken at seq 4: edited (hash mismatch)"


def test_when_cli_searches_then_it_prints_jsonl_and_audits_the_search(
    audit_settings: Settings, populated: AuditTrail
) -> None:
    result = _invoke(audit_settings, "search", "--customer", "C-1", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2]
    assert "next cursor: 2" in result.stderr
    logged = populated.search(AuditFilters(action="audit.search")).events
    assert len(logged) == 1
    assert logged[0].principal == "cli"
    assert logged[0].customer == populated.customer_hash("C-1")
    assert "C-1" not in logged[0].model_dump_json()


def test_when_cli_exports_then_the_file_is_complete_and_the_export_is_audited(
    audit_settings: Settings, populated: AuditTrail, tmp_path: Path
) -> None:
    output = tmp_path / "out" / "trail.csv"
    result = _invoke(audit_settings, "export", "--format", "csv", "--output", str(output))
    assert result.exit_code == 0, result.output
    with output.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 9
    assert not [path for path in output.parent.iterdir() if path.name.startswith(".")]
    exported = populated.search(AuditFilters(action="audit.export")).events
    assert exported[0].details == {"filters": "", "format": "csv", "rows": 9}
    assert populated.verify().ok


def test_when_searching_events_by_keyword_then_dicts_of_matching_events_return(
    populated: AuditTrail,
) -> None:
    events = populated.search_events(decision="deny")
    assert [event["seq"] for event in events] == [4, 5]
    assert events[0]["principal"] == "bob"
