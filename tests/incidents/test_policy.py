"""policies/incidents.yaml: the shipped file, durations, and a clear error for each bad field."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from guard.config import PROJECT_ROOT
from guard.incidents.errors import IncidentPolicyError
from guard.incidents.policy import (
    INCIDENTS_FILENAME,
    Contact,
    format_duration,
    load_incident_policy,
    parse_duration,
    parse_incident_policy,
)
from guard.incidents.runbooks import load_runbooks

if TYPE_CHECKING:
    from pathlib import Path

POLICY_PATH = PROJECT_ROOT / "policies" / INCIDENTS_FILENAME
RUNBOOKS_DIR = PROJECT_ROOT / "audit" / "runbooks"


def valid() -> dict[str, Any]:
    return {
        "version": 1,
        "organisation": "Example Support Ltd",
        "contact": {"name": "Data Protection Officer", "email": "dpo@example.com"},
        "supervisory_authority": "the supervisory authority",
        "timezone": "UTC",
        "dedup_window": "1h",
        "authority_deadline": "72h",
        "individuals_deadline": "60d",
        "default_runbook": "unauthorized-access",
    }


def test_the_shipped_policy_loads_with_the_legal_deadlines() -> None:
    policy = load_incident_policy(POLICY_PATH)
    assert policy.organisation == "Example Support Ltd"
    assert policy.contact == Contact(
        name="Data Protection Officer", email="dpo@example.com", phone=None
    )
    assert policy.supervisory_authority == "the supervisory authority"
    assert policy.timezone == "UTC"
    assert policy.dedup_window == timedelta(hours=1)
    assert policy.authority_deadline == timedelta(hours=72)
    assert policy.individuals_deadline == timedelta(days=60)
    assert policy.default_runbook == "unauthorized-access"


def test_the_shipped_default_runbook_exists() -> None:
    runbooks = load_runbooks(RUNBOOKS_DIR)
    policy = load_incident_policy(POLICY_PATH, runbooks=runbooks)
    assert policy.default_runbook in runbooks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("72h", timedelta(hours=72)),
        ("60d", timedelta(days=60)),
        ("2w", timedelta(weeks=2)),
        (" 1d12h ", timedelta(hours=36)),
    ],
)
def test_when_a_duration_is_well_formed_then_it_is_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "1.5h", "0h", "1y", "1 h", "P1D", "1h-"])
def test_when_a_duration_is_malformed_then_it_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(hours=72), "3d"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=5), "5s"),
        (timedelta(0), "0s"),
    ],
)
def test_durations_print_in_the_files_notation(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


def test_a_contact_phone_is_optional_and_kept_when_given() -> None:
    data = valid()
    data["contact"]["phone"] = "+44 20 7946 0000"
    assert parse_incident_policy(data).contact.phone == "+44 20 7946 0000"


def test_a_time_zone_other_than_utc_is_accepted() -> None:
    data = valid()
    data["timezone"] = "Europe/London"
    assert parse_incident_policy(data).timezone == "Europe/London"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"version": 2}, "version", "1"),
        ({"organisation": ""}, "organisation", "at least 1"),
        ({"organisation": "Example\nLtd"}, "organisation", "one line"),
        ({"contact": {"name": "DPO", "email": "not an email"}}, "contact.email", "pattern"),
        ({"contact": {"name": "DPO"}}, "contact.email", "required"),
        (
            {"contact": {"name": "DPO", "email": "a@b.example", "fax": "1"}},
            "contact.fax",
            "Extra inputs",
        ),
        (
            {"contact": {"name": "DPO", "email": "a@b.example", "phone": "call me"}},
            "contact.phone",
            "pattern",
        ),
        ({"supervisory_authority": None}, "supervisory_authority", "string"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"dedup_window": "soon"}, "dedup_window", "duration"),
        ({"dedup_window": 3600}, "dedup_window", "string"),
        ({"dedup_window": "8d"}, "dedup_window", "at most 7d"),
        ({"authority_deadline": "73h"}, "authority_deadline", "at most 72h (GDPR Art. 33(1))"),
        ({"individuals_deadline": "61d"}, "individuals_deadline", "at most 60d (HIPAA"),
        ({"default_runbook": "Unauthorized Access"}, "default_runbook", "pattern"),
        ({"escalate_to": "x"}, "escalate_to", "Extra inputs"),
    ],
)
def test_when_a_field_is_wrong_then_the_error_names_it(
    change: dict[str, Any], field: str, words: str
) -> None:
    data = valid() | change
    with pytest.raises(IncidentPolicyError) as caught:
        parse_incident_policy(data, source="policies/incidents.yaml")
    message = caught.value.message
    assert message.startswith(f"policies/incidents.yaml: {field}: ")
    assert words in message
    assert caught.value.status_code == 422


def test_when_a_field_is_missing_then_the_error_names_it() -> None:
    data = valid()
    del data["authority_deadline"]
    with pytest.raises(IncidentPolicyError, match="authority_deadline: Field required"):
        parse_incident_policy(data)


def test_when_the_default_runbook_does_not_exist_then_it_is_refused() -> None:
    data = valid() | {"default_runbook": "alien-invasion"}
    with pytest.raises(IncidentPolicyError, match="default_runbook: no runbook 'alien-invasion'"):
        parse_incident_policy(data, runbooks={"bulk-access", "unauthorized-access"})


def test_when_the_file_is_not_yaml_then_the_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "incidents.yaml"
    path.write_text("version: 1\norganisation: [unclosed\n", encoding="utf-8")
    with pytest.raises(IncidentPolicyError, match=r"incidents\.yaml: not valid YAML at line \d"):
        load_incident_policy(path)


def test_when_the_file_is_missing_then_the_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(IncidentPolicyError, match=r"incidents\.yaml: cannot read"):
        load_incident_policy(tmp_path / "incidents.yaml")


def test_when_the_file_is_valid_then_it_loads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "incidents.yaml"
    path.write_text(yaml.safe_dump(valid()), encoding="utf-8")
    assert load_incident_policy(path).dedup_window == timedelta(hours=1)
