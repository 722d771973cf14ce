"""Export profiles, column plans and the transformer: the rules every engine shares."""

from __future__ import annotations

import pickle
import re
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from guard.config import get_settings
from guard.crypto.keys import MasterKey, RedactionKeys
from guard.errors import TokenError
from guard.export.errors import ExportInputError
from guard.export.profile import ProfileError, load_profile, load_profiles, parse_profile
from guard.export.transform import (
    Transformer,
    TransformerSpec,
    generalize,
    make_plan,
    purpose_redaction_keys,
)
from guard.redaction.operators import reveal_text
from guard.redaction.policy import POLICY_FILENAME, load_redaction_policy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.export.profile import ExportProfile

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SECRET_NAME = "Wilhelmina Vandersloot"
SECRET_EMAIL = "wilhelmina.vandersloot@example.org"


def _profile(body: Mapping[str, object], name: str = "t") -> ExportProfile:
    return parse_profile(name, {"purpose": "research", **body}, source="test")


def _table() -> pa.Table:
    return pa.table(
        {
            "ticket_id": pa.array([1, 2, 3], pa.int64()),
            "full_name": [SECRET_NAME, "John Smith", None],
            "email": [SECRET_EMAIL, "john.smith@example.com", ""],
            "phone": ["+1 415 555 0132", "+1 (415) 555-0132", "212-555-0100"],
            "created_at": ["2024-05-03", "2024-11-30T10:00:00+00:00", "2023-01-01"],
            "age": ["34", "90", "7"],
            "postcode": ["sw1a 1aa", "94110", "10001"],
            "amount": [120.5, 49.99, -3.0],
            "note": [
                f"{SECRET_NAME} wrote from {SECRET_EMAIL} about order 1182.",
                "Please call +1 415-555-0132 tomorrow.",
                None,
            ],
            "contact": ["ann.lee@example.net", "bo.chen@example.com", "cy.diaz@example.org"],
        }
    )


PROFILE = {
    "columns": {
        "ticket_id": "keep",
        "full_name": {"action": "pseudonym", "entity": "PERSON"},
        "email": {"action": "pseudonym", "entity": "EMAIL_ADDRESS"},
        "phone": {"action": "pseudonym", "entity": "PHONE_NUMBER"},
        "created_at": {"action": "generalize", "date": "month"},
        "age": {"action": "generalize", "band": 10, "top": 90},
        "postcode": {"action": "generalize", "truncate": 3},
        "amount": {"action": "generalize", "bucket": 50},
        "note": "scan",
    }
}


@pytest.fixture(scope="module")
def policy(settings: Settings) -> object:
    return load_redaction_policy(settings.policies_dir / POLICY_FILENAME)


def _transform(
    profile: ExportProfile, table: pa.Table, settings: Settings, detector: Detector, key: bytes
) -> tuple[list[dict[str, object]], Transformer]:
    plan = make_plan(
        profile, table.schema, table, tenant="acme", settings=settings, detector=detector
    )
    transformer = TransformerSpec(plan=plan, purpose_key=key, settings=settings).build(detector)
    out = transformer.transform(table.to_batches()[0])
    return out.to_pylist(), transformer


# ----------------------------------------------------------------------------- profiles


def test_shipped_profiles_load() -> None:
    profiles = load_profiles(get_settings().policies_dir)
    assert "support_analytics" in profiles
    assert profiles["support_analytics"].spec.k_anonymity is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"columns": {"email": "explode"}}, "column 'email'"),
        ({"columns": {"dob": {"action": "generalize"}}}, "column 'dob'"),
        ({"columns": {"dob": {"action": "generalize", "date": "month", "band": 5}}}, "exactly one"),
        ({"columns": {"phone": {"action": "keep", "keep_last": 2}}}, "keep_last applies to mask"),
        ({"columns": {"email": {"action": "token"}}}, "tokens: true"),
        (
            {"columns": {"email": {"action": "pseudonym", "entity": "lower"}}},
            "entity must be an entity type",
        ),
        ({"columns": {"a": "keep"}, "k_anonymity": {"quasi_identifiers": ["b"], "k": 5}}, "'b'"),
        (
            {"columns": {"a": "scan"}, "k_anonymity": {"quasi_identifiers": ["a"], "k": 5}},
            "kept, generalized or masked",
        ),
        ({"columns": {}, "unknown_columns": "keep"}, "unknown_columns"),
        ({"columns": {}, "surprise": 1}, "surprise"),
    ],
)
def test_an_invalid_profile_names_the_profile_and_column(
    body: dict[str, object], expected: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        _profile(body, name="broken")
    assert "export profile 'broken'" in caught.value.message
    assert expected in caught.value.message


def test_a_profile_needs_a_purpose_and_a_valid_name() -> None:
    with pytest.raises(ProfileError, match="purpose"):
        parse_profile("p", {"columns": {}}, source="test")
    with pytest.raises(ProfileError, match="names are"):
        parse_profile("Bad Name", {"purpose": "x"}, source="test")


def test_an_unknown_profile_lists_the_known_ones(settings: Settings) -> None:
    with pytest.raises(ProfileError, match=r"known: .*support_analytics"):
        load_profile(settings.policies_dir, "nope")


def test_the_profile_hash_changes_with_any_rule() -> None:
    one = _profile(PROFILE)
    two = _profile({"columns": {**PROFILE["columns"], "note": "drop"}})
    assert one.sha256 != two.sha256
    assert one.sha256 == _profile(PROFILE).sha256


# ----------------------------------------------------------------------------- generalize


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"date": "month"}, "2024-05-03", "2024-05"),
        ({"date": "quarter"}, "2024-05-03T10:00:00", "2024-Q2"),
        ({"date": "year"}, "1980-02-29", "1980"),
        ({"band": 10}, "34", "30-39"),
        ({"band": 10, "top": 90}, 95, "90+"),
        ({"band": 5}, 0, "0-4"),
        ({"truncate": 3}, "sw1a 1aa", "SW1"),
        ({"bucket": 50}, 120.5, "100-150"),
        ({"bucket": 0.5}, "1.2", "1-1.5"),
        ({"bucket": 100}, -3, "-100-0"),
    ],
)
def test_generalize(rule: dict[str, object], value: object, expected: str) -> None:
    parsed = _profile({"columns": {"c": {"action": "generalize", **rule}}}).rule("c")
    assert parsed is not None
    assert generalize(value, parsed) == expected


def test_a_value_that_cannot_be_generalized_is_an_error_naming_row_and_column(
    settings: Settings, detector: Detector
) -> None:
    table = pa.table({"dob": ["1980-01-01", "next tuesday 4111111111111111"]})
    profile = _profile({"columns": {"dob": {"action": "generalize", "date": "year"}}})
    with pytest.raises(ExportInputError) as caught:
        _transform(profile, table, settings, detector, KEY)
    assert "row 2" in caught.value.message
    assert "column 'dob'" in caught.value.message
    assert "4111" not in caught.value.message


# ----------------------------------------------------------------------------- transform


def test_every_action_and_joins_between_columns_and_free_text(
    settings: Settings, detector: Detector
) -> None:
    rows, transformer = _transform(_profile(PROFILE), _table(), settings, detector, KEY)
    first, second, third = rows
    assert first["ticket_id"] == 1
    assert re.fullmatch(r"<PERSON_[0-9a-f]{12}>", str(first["full_name"]))
    assert re.fullmatch(r"<EMAIL_ADDRESS_[0-9a-f]{12}>", str(first["email"]))
    assert (first["created_at"], second["created_at"]) == ("2024-05", "2024-11")
    assert (first["age"], second["age"], third["age"]) == ("30-39", "90+", "0-9")
    assert (first["postcode"], second["postcode"]) == ("SW1", "941")
    assert (first["amount"], second["amount"], third["amount"]) == ("100-150", "0-50", "-50-0")
    # the customer in free text is the same pseudonym as in the columns (joins work)
    note = str(first["note"])
    assert str(first["full_name"]) in note
    assert str(first["email"]) in note
    assert SECRET_NAME not in note
    assert "vandersloot" not in note.lower()
    # phones are compared by digits: one number, two spellings, one pseudonym
    assert first["phone"] == second["phone"]
    assert str(first["phone"]) in str(second["note"])
    # nulls stay null, empty stays empty
    assert third["full_name"] is None
    assert third["email"] == ""
    assert third["note"] is None
    assert transformer.entity_counts["EMAIL_ADDRESS"] >= 1


def test_unnamed_columns_are_classified_and_redacted_whole(
    settings: Settings, detector: Detector
) -> None:
    rows, _ = _transform(_profile(PROFILE), _table(), settings, detector, KEY)
    for row in rows:
        assert re.fullmatch(r"<EMAIL_ADDRESS_[0-9a-f]{12}>", str(row["contact"]))
    plan = make_plan(
        _profile(PROFILE),
        _table().schema,
        _table(),
        tenant="acme",
        settings=settings,
        detector=detector,
    )
    decision = {d.column: d for d in plan.decisions}["contact"]
    assert (decision.action, decision.entity, decision.source) == (
        "entity",
        "EMAIL_ADDRESS",
        "classified",
    )
    assert decision.share == 1.0
    report = plan.report()
    assert {
        "column": "contact",
        "entity": "EMAIL_ADDRESS",
        "by": "content",
        "share": 1.0,
        "sampled": 3,
    } in report["classification"]["columns"]


def test_unnamed_columns_by_field_name_drop_and_fail(
    settings: Settings, detector: Detector
) -> None:
    table = pa.table({"id": [1], "ssn": ["not obviously a number"], "remarks": ["fine"]})
    plan = make_plan(
        _profile({"columns": {"id": "keep"}}),
        table.schema,
        table,
        tenant="acme",
        settings=settings,
        detector=detector,
    )
    decisions = {d.column: d for d in plan.decisions}
    assert (decisions["ssn"].action, decisions["ssn"].entity) == ("entity", "US_SSN")
    assert decisions["ssn"].parameters["by"] == "name"
    assert decisions["remarks"].action == "scan"
    dropped = make_plan(
        _profile({"columns": {"id": "keep"}, "unknown_columns": "drop"}),
        table.schema,
        table,
        tenant="acme",
        settings=settings,
        detector=detector,
    )
    assert dropped.output_columns == ["id"]
    with pytest.raises(ExportInputError, match="unknown columns fail") as caught:
        make_plan(
            _profile({"columns": {"id": "keep"}, "unknown_columns": "fail"}),
            table.schema,
            table,
            tenant="acme",
            settings=settings,
            detector=detector,
        )
    assert caught.value.column == "ssn"


def test_a_profile_column_missing_from_the_input_is_an_error(
    settings: Settings, detector: Detector
) -> None:
    table = pa.table({"id": [1]})
    with pytest.raises(ExportInputError, match="no such column") as caught:
        make_plan(
            _profile({"columns": {"id": "keep", "email": "drop"}}),
            table.schema,
            table,
            tenant="acme",
            settings=settings,
            detector=detector,
            source="tickets.csv",
        )
    assert caught.value.message.startswith("tickets.csv, column 'email'")


def test_nested_columns_can_only_be_kept_or_dropped(settings: Settings, detector: Detector) -> None:
    table = pa.table({"tags": [["a", "b"]], "id": [1]})
    with pytest.raises(ExportInputError, match="nested type"):
        make_plan(
            _profile({"columns": {"id": "keep"}}),
            table.schema,
            table,
            tenant="acme",
            settings=settings,
            detector=detector,
        )
    plan = make_plan(
        _profile({"columns": {"id": "keep", "tags": "keep"}}),
        table.schema,
        table,
        tenant="acme",
        settings=settings,
        detector=detector,
    )
    assert plan.output_schema(table.schema).field("tags").type == table.schema.field("tags").type


def test_pseudonyms_differ_across_purposes_and_tenants(
    settings: Settings, detector: Detector
) -> None:
    rows, _ = _transform(_profile(PROFILE), _table(), settings, detector, KEY)
    again, _ = _transform(_profile(PROFILE), _table(), settings, detector, KEY)
    other, _ = _transform(_profile(PROFILE), _table(), settings, detector, OTHER_KEY)
    assert rows == again  # deterministic: the same input gives the same bytes
    assert rows[0]["email"] != other[0]["email"]
    assert rows[0]["full_name"] != other[0]["full_name"]
    # the purpose key is not the tenant's master key: record views cannot link to an export
    tenant_keys = RedactionKeys(MasterKey(OTHER_KEY))
    assert purpose_redaction_keys(KEY) is not tenant_keys


def test_tokens_are_reversible_with_the_purpose_key_only(
    settings: Settings, detector: Detector
) -> None:
    profile = _profile(
        {
            "columns": {"email": {"action": "token", "entity": "EMAIL_ADDRESS"}},
            "tokens": True,
            "unknown_columns": "drop",
        }
    )
    table = pa.table({"email": [SECRET_EMAIL]})
    rows, _ = _transform(profile, table, settings, detector, KEY)
    token = str(rows[0]["email"])
    assert SECRET_EMAIL not in token
    assert reveal_text(token, tenant="acme", keys=purpose_redaction_keys(KEY)) == SECRET_EMAIL
    with pytest.raises(TokenError):
        reveal_text(token, tenant="acme", keys=purpose_redaction_keys(OTHER_KEY))


def test_mask_keeps_the_last_characters(settings: Settings, detector: Detector) -> None:
    profile = _profile(
        {"columns": {"card": {"action": "mask", "keep_last": 4}}, "unknown_columns": "drop"}
    )
    rows, _ = _transform(
        profile, pa.table({"card": ["4111111111111111", "12"]}), settings, detector, KEY
    )
    assert [r["card"] for r in rows] == ["************1111", "**"]


def test_the_plan_is_picklable_and_so_is_the_spec(settings: Settings, detector: Detector) -> None:
    plan = make_plan(
        _profile(PROFILE),
        _table().schema,
        _table(),
        tenant="acme",
        settings=settings,
        detector=detector,
    )
    spec = TransformerSpec(plan=plan, purpose_key=KEY, settings=settings)
    copy = pickle.loads(pickle.dumps(spec))  # noqa: S301 - our own object
    assert copy.plan.fingerprint() == plan.fingerprint()
    assert "purpose_key" not in repr(spec) or KEY.hex() not in repr(spec)
