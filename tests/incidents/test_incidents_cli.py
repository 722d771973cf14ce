"""``guard incidents`` from the command line: the same service, audited as ``cli``."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from click.testing import CliRunner, Result

from guard.cli import main
from guard.incidents.cli import incidents
from tests.incidents.helpers import DENIALS_RULE, deny

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings
    from tests.fixtures.api import Api


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(incidents, list(args), obj=settings, catch_exceptions=True)


def scanned(api: Api) -> str:
    """Ten refusals, scanned from the command line; the incident's id."""
    deny(api, 10)
    result = run(api.settings, "scan")
    assert result.exit_code == 0, result.output
    assert "1 incidents opened" in result.output
    listed = json.loads(run(api.settings, "list", "--json").output)
    (incident,) = listed["incidents"]
    return str(incident["id"])


def test_when_scanned_from_the_cli_then_the_incident_is_listed_and_shown(api: Api) -> None:
    incident_id = scanned(api)
    shown = run(api.settings, "show", incident_id)
    assert shown.exit_code == 0
    assert "deadline authority" in shown.output
    assert "runbook:" in shown.output
    as_json = json.loads(run(api.settings, "show", incident_id, "--json").output)
    assert as_json["rule_id"] == DENIALS_RULE
    actions = [e["action"] for e in api.services.audit.search_events(principal="cli")]
    assert {"incidents.scan", "incidents.list", "incidents.read"} <= set(actions)


def test_when_an_operator_works_the_incident_then_status_steps_and_clocks_change(
    api: Api,
) -> None:
    incident_id = scanned(api)
    assert run(api.settings, "transition", incident_id, "contained").exit_code == 0
    backwards = run(api.settings, "transition", incident_id, "triaged")
    assert backwards.exit_code != 0
    assert "only move forward" in str(backwards.exception)
    step = json.loads(run(api.settings, "show", incident_id, "--json").output)["checklist"][0]
    ticked = run(api.settings, "tick", incident_id, step["id"])
    assert ticked.output.startswith("[x]")
    assert run(api.settings, "notified", incident_id, "authority").exit_code == 0
    detail = json.loads(run(api.settings, "show", incident_id, "--json").output)
    assert detail["status"] == "contained"
    assert detail["checklist"][0]["done"] is True
    assert next(d for d in detail["deadlines"] if d["name"] == "authority")["met_at"]


def test_when_the_authority_notice_is_asked_for_then_it_is_printed(api: Api) -> None:
    incident_id = scanned(api)
    result = run(api.settings, "notice", incident_id)
    assert result.exit_code == 0
    assert "dpo@" in result.output


def test_when_the_register_is_written_to_a_file_then_it_is_complete_csv(
    api: Api, tmp_path: Path
) -> None:
    scanned(api)
    output = tmp_path / "register.csv"
    result = run(api.settings, "register", "--format", "csv", "--output", str(output))
    assert result.exit_code == 0
    (row,) = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8"))))
    assert row["rule_id"] == DENIALS_RULE


def test_when_the_rules_are_validated_then_each_is_listed(api: Api) -> None:
    result = run(api.settings, "rules", "validate")
    assert result.exit_code == 0
    assert DENIALS_RULE in result.output


def test_when_a_rule_names_a_field_guard_does_not_log_then_validate_names_file_rule_and_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.yml").write_text(
        "title: Bad\n"
        "id: 0d5d5d5d-1111-4a8e-9d1a-000000000001\n"
        "status: test\n"
        "level: low\n"
        "logsource:\n  product: guard\n  service: audit\n"
        "detection:\n  selection:\n    colour: red\n  condition: selection\n"
    )
    result = CliRunner().invoke(main, ["incidents", "rules", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yml" in result.output
    assert "0d5d5d5d-1111-4a8e-9d1a-000000000001" in result.output
    assert "colour" in result.output
