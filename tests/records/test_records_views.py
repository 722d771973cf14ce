"""Role views from policies/views.yaml, and the validation of that file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from guard.errors import PolicyError
from guard.records.errors import ViewPolicyError
from guard.records.views import VIEWS_FILENAME, load_view_policy, parse_view_policy
from guard.redaction.service import Redactor

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.crypto.keys import RedactionKeys

FIELDS: dict[str, Any] = {
    "full_name": "Alice Marchetti",
    "email": "alice@example.org",
    "phone": "+44 20 7946 0321",
    "postal_address": "14 Larkspur Lane, Bristol",
    "date_of_birth": "1984-03-09",
    "account": {"account_id": "AC-778812", "plan": "pro"},
    "notes": "Her husband Roberto called.",
    "notes_redacted": "Her husband <PERSON:tok_v1_x> called.",
    "extra": {"vip": True},
}
SOURCE = Path("views.yaml")


@pytest.fixture(scope="module")
def keys(settings: Settings) -> RedactionKeys:
    return Redactor(settings=settings).keys


@pytest.fixture(scope="module")
def policy_data(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (settings.policies_dir / VIEWS_FILENAME).read_text(encoding="utf-8")
    )
    return data


def view(settings: Settings, keys: RedactionKeys, role: str) -> dict[str, Any]:
    policy = load_view_policy(settings.policies_dir / VIEWS_FILENAME)
    return policy.apply(role, FIELDS, tenant="acme", keys=keys)


def test_when_agent_reads_then_phone_is_masked_and_notes_redacted(
    settings: Settings, keys: RedactionKeys
) -> None:
    shown = view(settings, keys, "agent")
    assert shown["full_name"] == "Alice Marchetti"
    assert shown["email"] == "alice@example.org"
    assert shown["phone"].endswith("0321")
    assert "7946" not in shown["phone"]
    assert shown["account"] == FIELDS["account"]
    assert shown["notes"] == FIELDS["notes_redacted"]
    assert "date_of_birth" not in shown
    assert "extra" not in shown


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_when_supervisor_or_admin_reads_then_everything_is_clear(
    settings: Settings, keys: RedactionKeys, role: str
) -> None:
    shown = view(settings, keys, role)
    expected = {k: v for k, v in FIELDS.items() if k != "notes_redacted"}
    assert shown == expected


def test_when_analyst_reads_then_only_pseudonyms_are_shown(
    settings: Settings, keys: RedactionKeys
) -> None:
    shown = view(settings, keys, "analyst")
    assert shown["full_name"].startswith("<PERSON_")
    assert shown["email"].startswith("<EMAIL_ADDRESS_")
    assert shown["account"]["account_id"].startswith("<ACCOUNT_ID_")
    assert "notes" not in shown
    flat = repr(shown)
    for value in ("Alice", "alice@", "0321", "Larkspur", "AC-778812", "Roberto"):
        assert value not in flat
    # stable per tenant (joins work), different across tenants
    assert view(settings, keys, "analyst") == shown
    policy = load_view_policy(settings.policies_dir / VIEWS_FILENAME)
    other = policy.apply("analyst", FIELDS, tenant="globex", keys=keys)
    assert other["email"] != shown["email"]


@pytest.mark.parametrize("role", ["compliance_officer", "intern", ""])
def test_when_compliance_or_unknown_role_reads_then_no_field_is_shown(
    settings: Settings, keys: RedactionKeys, role: str
) -> None:
    assert view(settings, keys, role) == {}


def _broken(policy_data: dict[str, Any], role: str, field: str, rule: object) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(policy_data))
    if rule is None:
        del data["roles"][role][field]
    else:
        data["roles"][role][field] = rule
    return dict(data)


@pytest.mark.parametrize(
    ("role", "field", "rule", "message"),
    [
        ("agent", "phone", "blurred", "roles.agent.phone.mode"),
        ("agent", "phone", {"mode": "masked"}, "roles.agent.phone: mode 'masked'"),
        ("agent", "email", {"mode": "clear", "mask": {"keep_last": 2}}, "roles.agent.email"),
        ("agent", "phone", {"mode": "masked", "mask": {"keep_last": -1}}, "keep_last"),
        ("analyst", "notes", "pseudonym", "roles.analyst: notes"),
        ("analyst", "email", "redacted", "roles.analyst: email"),
        ("supervisor", "account", {"mode": "masked", "mask": {"keep_last": 4}}, "account"),
        ("supervisor", "extra", None, "roles.supervisor.extra: Field required"),
        ("agent", "ssn", "clear", "roles.agent.ssn: Extra inputs are not permitted"),
    ],
)
def test_when_views_yaml_is_invalid_then_the_error_names_the_entry(
    policy_data: dict[str, Any], role: str, field: str, rule: object, message: str
) -> None:
    with pytest.raises(ViewPolicyError) as caught:
        parse_view_policy(_broken(policy_data, role, field, rule), source=SOURCE)
    assert message in str(caught.value)
    assert str(caught.value).startswith("views.yaml:")


def test_when_a_role_is_missing_or_unknown_then_load_fails(policy_data: dict[str, Any]) -> None:
    data = yaml.safe_load(yaml.safe_dump(policy_data))
    data["roles"]["intern"] = data["roles"].pop("analyst")
    with pytest.raises(ViewPolicyError) as caught:
        parse_view_policy(data, source=SOURCE)
    assert "roles.analyst: Field required" in str(caught.value)
    assert "roles.intern: Extra inputs are not permitted" in str(caught.value)


def test_when_views_yaml_is_not_yaml_then_the_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / VIEWS_FILENAME
    path.write_text("roles: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"views\.yaml: not valid YAML"):
        load_view_policy(path)


def test_each_role_decrypts_only_the_stored_fields_its_view_shows(settings: Settings) -> None:
    views = load_view_policy(settings.policies_dir / VIEWS_FILENAME)
    assert views.stored_fields("compliance_officer") == frozenset()
    assert views.stored_fields("nobody") == frozenset()
    agent = views.stored_fields("agent")
    assert "notes_redacted" in agent
    assert "notes" not in agent
    assert "date_of_birth" not in agent
    assert "notes" not in views.stored_fields("analyst")
    assert views.stored_fields("supervisor") >= {"notes", "date_of_birth", "extra"}
