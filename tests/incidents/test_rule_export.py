"""Export of the rules to SIEM backends: the installed pySigma backends, run for real."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

import pytest
import sqlalchemy
from sigma.backends.test.backend import TextQueryTestBackend

from guard.audit.models import AuditEvent
from guard.config import PROJECT_ROOT
from guard.incidents import sigma
from guard.incidents.errors import RuleExportError
from guard.incidents.sigma import Evaluator, RuleSet, export_rules, installed_backends, sqlite_view

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Table
    from sqlalchemy.engine import Engine

    from guard.incidents.sigma import Hit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ID_DENIED = "11111111-1111-4111-8111-111111111111"
ID_REPEATED = "22222222-2222-4222-8222-222222222222"
ID_NIGHT = "33333333-3333-4333-8333-333333333333"
ID_MESSAGE = "44444444-4444-4444-8444-444444444444"

RULES = f"""
title: Request refused
id: {ID_DENIED}
name: refused
logsource: {{product: guard, service: audit}}
detection:
  selection:
    decision: deny
    details.status: [401, 403]
  filter_unknown:
    details.reason|startswith: unknown
  condition: selection and not filter_unknown
level: low
---
title: Repeated refusals
id: {ID_REPEATED}
correlation:
  type: event_count
  rules: refused
  group-by: [principal]
  timespan: 10m
  condition: {{gte: 3}}
level: high
---
title: Reveal at night
id: {ID_NIGHT}
logsource: {{product: guard, service: audit}}
detection:
  selection:
    action: records.reveal
    hour|lt: 7
  condition: selection
level: medium
---
title: Message blocked for another customer
id: {ID_MESSAGE}
logsource: {{product: guard, service: audit}}
detection:
  selection:
    action: message.check
    details.verdict: block
    details.other_customer_findings|gt: 0
    entity_counts.EMAIL_ADDRESS|gte: 1
  condition: selection
level: medium
"""


def row(seq: int, at: datetime, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": seq,
        "ts": at,
        "principal": "key_alice",
        "role": "agent",
        "tenant": "acme",
        "action": "http.get",
        "resource": "/v1/records/{record_id}",
        "decision": "allow",
        "outcome": "success",
        "request_id": f"req-{seq}",
        "customer": None,
        "entity_counts": "{}",
        "details": "{}",
        "prev_hash": "0" * 64,
        "hash": f"{seq:064x}",
        "hmac": "0" * 64,
    }
    for key, value in fields.items():
        base[key] = json.dumps(value) if isinstance(value, dict) else value
    return base


def refused(seq: int, at: datetime, principal: str, reason: str = "forbidden") -> dict[str, Any]:
    return row(
        seq,
        at,
        principal=principal,
        decision="deny",
        outcome="failure",
        details={"status": 403, "reason": reason},
    )


EVENTS = [
    refused(1, T0, "key_alice"),
    refused(2, T0 + timedelta(minutes=2), "key_alice"),
    refused(3, T0 + timedelta(minutes=3), "key_bob"),
    refused(4, T0 + timedelta(minutes=4), "key_alice", reason="unknown-key"),
    refused(5, T0 + timedelta(minutes=5), "key_alice"),
    row(6, T0 + timedelta(minutes=6)),
    row(7, datetime(2026, 3, 3, 2, 30, tzinfo=UTC), action="records.reveal", resource="record"),
    row(8, T0 + timedelta(hours=2), action="records.reveal", resource="record"),
    row(
        9,
        T0 + timedelta(hours=3),
        action="message.check",
        resource="channel:email",
        details={"verdict": "block", "other_customer_findings": 1},
        entity_counts={"EMAIL_ADDRESS": 2},
    ),
    row(
        10,
        T0 + timedelta(hours=3),
        action="message.check",
        resource="channel:email",
        details={"verdict": "allow", "other_customer_findings": 0},
        entity_counts={"EMAIL_ADDRESS": 1},
    ),
]


@pytest.fixture
def audit_db() -> Iterator[Engine]:
    """A SQLite database with guard's audit_events table holding EVENTS, written by SQLAlchemy."""
    engine = sqlalchemy.create_engine("sqlite://")
    table = cast("Table", AuditEvent.__table__)
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), EVENTS)
    try:
        yield engine
    finally:
        engine.dispose()


def statements(script: str) -> list[str]:
    """The statements of an exported SQLite script, split where SQLite says they end."""
    found: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            found.append(current.strip())
            current = ""
    assert not current.strip()
    return found


def _regexp(pattern: str, value: object) -> int:
    """SQLite's REGEXP operator (its CLI loads it as an extension; Python's sqlite3 has none)."""
    return int(value is not None and re.search(pattern, str(value)) is not None)


def run_script(engine: Engine, script: str) -> list[list[dict[str, Any]]]:
    """Run every statement on one connection (the view is TEMP); the rows of each query."""
    connection = engine.raw_connection()
    try:
        raw = connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.create_function("REGEXP", 2, _regexp)
        raw.row_factory = sqlite3.Row
        results: list[list[dict[str, Any]]] = []
        for statement in statements(script):
            cursor = raw.execute(statement)
            if cursor.description is not None:
                results.append([dict(r) for r in cursor.fetchall()])
        return results
    finally:
        connection.close()


def engine_hits(rules: RuleSet) -> list[Hit]:
    evaluator = Evaluator(rules)
    return [hit for event in EVENTS for hit in evaluator.feed(event)]


def test_when_rules_are_exported_to_sqlite_then_the_script_finds_what_guard_finds(
    audit_db: Engine,
) -> None:
    rules = RuleSet.from_yaml(RULES, source="audit/rules/test.yml")
    script = export_rules(rules, "sqlite")
    assert script.startswith("CREATE TEMP VIEW IF NOT EXISTS guard_audit AS SELECT")
    repeated, night, message = run_script(audit_db, script)

    hits = engine_hits(rules)
    by_rule: dict[str, set[int]] = {}
    for hit in hits:
        by_rule.setdefault(hit.rule.id, set()).update(hit.seqs)
    # detections: the same events
    assert {r["seq"] for r in night} == by_rule[ID_NIGHT] == {7}
    assert {r["seq"] for r in message} == by_rule[ID_MESSAGE] == {9}
    # the correlation: the same group and the same events behind it
    alice = [r for r in repeated if json.loads(r["group_keys"]) == {"principal": "key_alice"}]
    assert alice
    assert max(r["metric_value"] for r in alice) == 3
    assert all(json.loads(r["group_keys"])["principal"] == "key_alice" for r in repeated)
    evidence = {int(e.rsplit(":", 1)[1]) for r in alice for e in json.loads(r["event_ids"])}
    assert evidence == by_rule[ID_REPEATED] == {1, 2, 5}


def test_when_the_shipped_rules_are_exported_to_sqlite_then_every_query_runs(
    audit_db: Engine,
) -> None:
    rules = RuleSet.load(PROJECT_ROOT / "audit" / "rules")
    script = export_rules(rules, "sqlite")
    alerting = [r for r in rules.rules if r.generates]
    results = run_script(audit_db, script)
    assert len(results) == len(alerting)


def test_when_the_view_is_built_then_it_flattens_only_the_fields_the_rules_read() -> None:
    rules = RuleSet.from_yaml(RULES)
    view = sqlite_view(rules.fields)
    assert "json_extract(details, '$.status') AS \"details.status\"" in view
    assert (
        "json_extract(entity_counts, '$.EMAIL_ADDRESS') AS \"entity_counts.EMAIL_ADDRESS\"" in view
    )
    assert "details.ok" not in view
    assert rules.fields == {
        "decision",
        "details.status",
        "details.reason",
        "principal",
        "action",
        "hour",
        "details.verdict",
        "details.other_customer_findings",
        "entity_counts.EMAIL_ADDRESS",
    }


def test_when_rules_are_exported_to_a_text_backend_then_fields_keep_guard_names() -> None:
    rules = RuleSet.from_yaml(RULES)
    output = export_rules(rules, "text_query_test")
    assert "'details.status' in (401, 403)" in output
    assert "'entity_counts.EMAIL_ADDRESS'>=1" in output
    assert "by principal" in output  # the correlation is converted too


def test_when_the_target_is_not_installed_then_the_error_lists_the_installed_ones() -> None:
    rules = RuleSet.from_yaml(RULES)
    assert "sqlite" in installed_backends()
    with pytest.raises(RuleExportError, match=r"no Sigma backend 'splunk' .*installed: .*sqlite"):
        export_rules(rules, "splunk")


def test_when_the_pipeline_is_not_installed_then_the_error_lists_the_installed_ones() -> None:
    rules = RuleSet.from_yaml(RULES)
    with pytest.raises(RuleExportError, match=r"no Sigma processing pipeline 'ecs_guard'"):
        export_rules(rules, "sqlite", pipeline="ecs_guard")


def test_when_an_installed_pipeline_is_named_then_it_is_applied() -> None:
    rules = RuleSet.from_yaml(RULES)
    assert "'details.status'" in export_rules(rules, "text_query_test", pipeline="dummy_test")


class _NoRegexBackend(TextQueryTestBackend):
    """A real pySigma text backend whose target language has no regular expressions."""

    re_expression: ClassVar[str] = None  # type: ignore[assignment] # "not supported"


def test_when_a_backend_cannot_convert_a_rule_then_the_error_names_file_and_rule() -> None:
    text = RULES.replace("details.reason|startswith: unknown", "details.reason|re: '^unknown'")
    rules = RuleSet.from_yaml(text, source="audit/rules/refusals.yml")
    with pytest.raises(RuleExportError) as caught:
        sigma._convert(rules, _NoRegexBackend(), "no-regex")
    message = caught.value.message
    assert message.startswith(f"audit/rules/refusals.yml: rule {ID_DENIED}: cannot be converted")
    assert "Regular expression" in message
    assert "while converting" not in message
