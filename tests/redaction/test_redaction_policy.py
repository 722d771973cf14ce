from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from guard.errors import InvalidInputError, PolicyError
from guard.redaction.policy import load_redaction_policy, parse_redaction_policy

if TYPE_CHECKING:
    from pathlib import Path

    from guard.redaction.policy import RedactionPolicy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "redaction.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("yaml_text", "fragments"),
    [
        (
            (
                "version: 1\nchannels:\n  message:\n    entities:\n"
                "      PHONE_NUMBER: {operator: maks}\n"
            ),
            ["channels.message.entities.PHONE_NUMBER", "unknown operator 'maks'"],
        ),
        (
            (
                "version: 1\nchannels:\n  note:\n    entities:\n"
                "      CREDIT_CARD: {operator: mask, params: {chars_to_keep: -2}}\n"
            ),
            ["channels.note.entities.CREDIT_CARD", "invalid params for 'mask'", "chars_to_keep"],
        ),
        (
            (
                "version: 1\nchannels:\n  export:\n"
                "    default: {operator: pseudonym, params: {len: 6}}\n"
            ),
            ["channels.export.default", "len"],
        ),
        (
            "version: 1\nchannels:\n  mesage:\n    default: {operator: tag}\n",
            ["channels.mesage", "Extra inputs are not permitted"],
        ),
        (
            "version: 1\nchannels:\n  message:\n    entities:\n      PERSON: {operater: tag}\n",
            ["channels.message.entities.PERSON"],
        ),
        (
            "version: 1\nchannels:\n  message:\n    entities:\n      person: {operator: tag}\n",
            ["channels.message.entities", "UPPER_SNAKE_CASE", "person"],
        ),
        ("version: 2\n", ["version"]),
        (
            "version: 1\nfields:\n  EMAIL_ADDRESS: [email]\n  PERSON: [E-Mail]\n",
            ["fields.PERSON", "'E-Mail'", "EMAIL_ADDRESS"],
        ),
        ("version: 1\nchannels: [\n", ["not valid YAML at line"]),
        ("- just\n- a list\n", ["(top level)"]),
    ],
)
def test_when_policy_invalid_then_error_names_the_entry(
    tmp_path: Path, yaml_text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(PolicyError) as info:
        load_redaction_policy(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_when_policy_file_missing_then_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_redaction_policy(tmp_path / "nope.yaml")


def test_when_policy_minimal_then_channels_default_to_tag() -> None:
    policy = parse_redaction_policy({"version": 1})
    for channel in ("message", "note", "export"):
        assert policy.operator_for(channel, "ANYTHING").name == "tag"


def test_when_unknown_channel_requested_then_invalid_input() -> None:
    policy = parse_redaction_policy({"version": 1})
    with pytest.raises(InvalidInputError, match="unknown channel 'chat'"):
        policy.rules_for("chat")


@pytest.mark.parametrize(
    ("channel", "entity_type", "operator"),
    [
        ("message", "PERSON", "pseudonym"),
        ("message", "PHONE_NUMBER", "mask"),
        ("message", "CREDIT_CARD", "mask"),
        ("message", "EMAIL_ADDRESS", "tag"),
        ("message", "PASSWORD", "tag"),
        ("message", "API_KEY", "tag"),
        ("message", "SOMETHING_NEW", "tag"),
        ("note", "EMAIL_ADDRESS", "token"),
        ("note", "PHONE_NUMBER", "token"),
        ("note", "PIN", "tag"),
        ("export", "PERSON", "pseudonym"),
        ("export", "EMAIL_ADDRESS", "pseudonym"),
        ("export", "LOCATION", "tag"),
        ("export", "SECURITY_ANSWER", "redact"),
    ],
)
def test_when_repo_policy_loaded_then_defaults_are_sensible(
    policy: RedactionPolicy, channel: str, entity_type: str, operator: str
) -> None:
    assert policy.operator_for(channel, entity_type).name == operator


@pytest.mark.parametrize(
    ("field", "entity_type"),
    [
        ("email", "EMAIL_ADDRESS"),
        ("E-Mail", "EMAIL_ADDRESS"),
        ("Phone", "PHONE_NUMBER"),
        ("mobile", "PHONE_NUMBER"),
        ("SSN", "US_SSN"),
        ("password", "PASSWORD"),
        ("cardNumber", "CREDIT_CARD"),
        ("card_number", "CREDIT_CARD"),
        ("IBAN", "IBAN_CODE"),
        ("address", "STREET_ADDRESS"),
        ("dob", "DATE_TIME"),
        ("first_name", "PERSON"),
        ("lastName", "PERSON"),
        ("name", "PERSON"),
        ("status", None),
        ("email_verified", None),
    ],
)
def test_when_field_name_looked_up_then_rule_applies_case_insensitively(
    policy: RedactionPolicy, field: str, entity_type: str | None
) -> None:
    assert policy.entity_type_for_field(field) == entity_type


def test_when_policy_repr_then_no_internals_leak(policy: RedactionPolicy) -> None:
    assert re.fullmatch(r"RedactionPolicy\(channels=.*, field_rules=\d+\)", repr(policy))
