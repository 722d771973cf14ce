"""Notices: Art. 33(3) in the authority draft, a kind plain customer draft, and a safe sandbox."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from guard.config import PROJECT_ROOT
from guard.incidents.errors import RunbookError
from guard.incidents.notices import (
    ENTITY_CATEGORIES,
    NoticeFacts,
    art34_exemption,
    authority_notice,
    customer_notice,
    data_categories,
    data_groups,
)
from guard.incidents.policy import Contact, IncidentPolicy, load_incident_policy
from guard.messages.tone import TONE_FILENAME, ToneAdvisor, load_tone_policy

if TYPE_CHECKING:
    from pathlib import Path

RUNBOOKS_DIR = PROJECT_ROOT / "audit" / "runbooks"
AWARE = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
NATURE = "One principal read 212 different customers' records within an hour."


@pytest.fixture(scope="module")
def policy() -> IncidentPolicy:
    return load_incident_policy(PROJECT_ROOT / "policies" / "incidents.yaml")


@pytest.fixture(scope="module")
def advisor() -> ToneAdvisor:
    return ToneAdvisor(load_tone_policy(PROJECT_ROOT / "policies" / TONE_FILENAME))


def facts(**changes: Any) -> NoticeFacts:
    base = NoticeFacts(
        incident_id="INC-42",
        title="Bulk record reads by one principal",
        nature=NATURE,
        severity="high",
        became_aware_at=AWARE,
        first_event_at=AWARE - timedelta(hours=2),
        last_event_at=AWARE - timedelta(minutes=5),
        entity_types=("EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON"),
        affected_customers=212,
        affected_records=230,
        data_seen_in_clear=True,
        encrypted_at_rest=True,
        keys_exposed=False,
        measures=("Revoked the key (guard principals revoke k-17).", "Lowered the read budget."),
        status="contained",
        runbook="bulk-access",
    )
    return dataclasses.replace(base, **changes)


def authority(policy: IncidentPolicy, *, now: datetime | None = None, **changes: Any) -> str:
    return authority_notice(
        facts(**changes), policy, templates=RUNBOOKS_DIR, now=now or AWARE + timedelta(hours=2)
    )


def customer(policy: IncidentPolicy, name: str | None = "Maria Lopez", **changes: Any) -> str:
    return customer_notice(
        facts(**changes), policy, templates=RUNBOOKS_DIR, customer_name=name, now=AWARE
    )


# --- data categories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["EMAIL_ADDRESS"], ("email addresses",)),
        (["PHONE_NUMBER", "EMAIL_ADDRESS"], ("email addresses", "phone numbers")),
        (["STREET_ADDRESS", "ZIP_CODE"], ("postal addresses",)),
        (
            ["CREDIT_CARD", "IBAN_CODE", "US_BANK_NUMBER"],
            ("payment card numbers", "bank account numbers"),
        ),
        (["US_SSN", "PERSON"], ("names", "Social Security numbers")),
        (["IP_ADDRESS", "LOCATION"], ("places and locations", "internet addresses of devices")),
        (["DATE_TIME"], ("dates, such as dates of birth",)),
        (["ACCOUNT_ID", "PASSWORD"], ("account numbers", "passwords")),
        (
            ["FAVOURITE_COLOUR", "EMAIL_ADDRESS", "SHOE_SIZE"],
            ("email addresses", "other personal details"),
        ),
        ([], ()),
    ],
)
def test_entity_types_become_plain_words_deduplicated_in_a_fixed_order(
    types: list[str], expected: tuple[str, ...]
) -> None:
    assert data_categories(types) == expected
    assert data_categories(reversed(types)) == expected


def test_every_known_entity_type_has_plain_words_without_underscores() -> None:
    for kind, (words, group) in ENTITY_CATEGORIES.items():
        assert "_" not in words, kind
        assert words != "other personal details"
        assert group in data_groups([kind])


def test_groups_say_what_the_data_allows() -> None:
    assert data_groups(["PASSWORD", "EMAIL_ADDRESS", "WHATEVER"]) == (
        "contact",
        "credentials",
        "other",
    )


# --- Art. 34(3)(a) ------------------------------------------------------------------------------


def test_when_data_was_seen_in_clear_then_encryption_is_said_not_to_help() -> None:
    sentence = art34_exemption(facts(data_seen_in_clear=True))
    assert "seen in clear" in sentence
    assert "does not apply" in sentence


def test_when_data_was_encrypted_and_keys_not_exposed_then_it_is_evidence_for_the_exemption() -> (
    None
):
    sentence = art34_exemption(facts(data_seen_in_clear=False))
    assert "encrypted at rest" in sentence
    assert "No key event" in sentence
    assert "evidence for the exemption of Art. 34(3)(a)" in sentence


def test_when_keys_may_be_exposed_then_the_exemption_cannot_be_relied_on() -> None:
    sentence = art34_exemption(facts(data_seen_in_clear=False, keys_exposed=True))
    assert "cannot be relied on" in sentence


def test_when_data_was_not_encrypted_then_the_exemption_cannot_be_relied_on() -> None:
    sentence = art34_exemption(facts(data_seen_in_clear=False, encrypted_at_rest=False))
    assert "not encrypted" in sentence
    assert "cannot be relied on" in sentence


def test_when_data_was_erased_then_encryption_is_said_not_to_protect_against_loss() -> None:
    sentence = art34_exemption(facts(data_seen_in_clear=False, runbook="mass-erasure"))
    assert "does not protect against its loss" in sentence


# --- the authority draft: every item of Art. 33(3) ----------------------------------------------


def test_authority_a_nature_of_the_breach(policy: IncidentPolicy) -> None:
    text = authority(policy)
    assert "Nature of the breach (Art. 33(3)(a))" in text
    assert NATURE in text
    assert "Bulk record reads by one principal (severity high, status contained)" in text
    assert "2025-03-04 07:30 UTC to 2025-03-04 09:25 UTC" in text


def test_authority_a_categories_of_data(policy: IncidentPolicy) -> None:
    text = authority(policy)
    assert "Categories of personal data concerned: names, email addresses and phone numbers" in text


def test_authority_a_approximate_number_of_data_subjects(policy: IncidentPolicy) -> None:
    assert "Approximate number of data subjects concerned: 212 data subjects" in authority(policy)
    one = authority(policy, affected_customers=1)
    assert "Approximate number of data subjects concerned: 1 data subject\n" in one


def test_authority_a_approximate_number_of_records(policy: IncidentPolicy) -> None:
    text = authority(policy, affected_records=1204)
    assert "Approximate number of personal data records concerned: 1,204 records" in text


def test_authority_b_contact_point(policy: IncidentPolicy) -> None:
    text = authority(policy)
    assert "Contact point (Art. 33(3)(b))" in text
    assert "Name: Data Protection Officer, Example Support Ltd" in text
    assert "Email: dpo@example.com" in text
    assert "Phone:" not in text
    with_phone = dataclasses.replace(
        policy,
        contact=Contact(name="Ana Silva", email="privacy@example.com", phone="+44 20 7946 0000"),
    )
    text = authority(with_phone)
    assert "Name: Ana Silva, Example Support Ltd" in text
    assert "Phone: +44 20 7946 0000" in text


def test_authority_c_likely_consequences(policy: IncidentPolicy) -> None:
    text = authority(policy, entity_types=("EMAIL_ADDRESS", "CREDIT_CARD", "PASSWORD"))
    section = text.split("Likely consequences (Art. 33(3)(c))")[1].split("## 4.")[0]
    assert "phishing" in section
    assert "fraudulent payments" in section
    assert "Takeover of the data subjects' accounts" in section
    assert "seen in clear" in section


def test_authority_c_consequences_of_unknown_categories_are_left_to_complete(
    policy: IncidentPolicy,
) -> None:
    assert "[Categories not yet determined" in authority(policy, entity_types=())
    assert "[Assess the consequences" in authority(policy, entity_types=("SHOE_SIZE",))


def test_authority_d_measures_taken_and_proposed_with_mitigation(policy: IncidentPolicy) -> None:
    text = authority(policy, entity_types=("PASSWORD",))
    section = text.split("Measures taken or proposed (Art. 33(3)(d))")[1].split("## 5.")[0]
    assert "- Revoked the key (guard principals revoke k-17)." in section
    assert "- Lowered the read budget." in section
    assert "measures to mitigate possible adverse effects" in section
    assert "changing their passwords, PINs and security answers" in section
    none = authority(policy, measures=())
    assert "[None recorded in the incident yet: complete]" in none


def test_authority_when_guard_became_aware_and_the_deadline(policy: IncidentPolicy) -> None:
    text = authority(policy)
    assert "became aware of the breach: 2025-03-04 09:30 UTC" in text
    assert "due by: 2025-03-07 09:30 UTC (72 hours after becoming aware)" in text
    assert "Time left at the time of drafting: 70 hours" in text
    assert "Reasons for the delay" not in text


def test_authority_when_late_then_it_asks_for_the_reasons_for_the_delay(
    policy: IncidentPolicy,
) -> None:
    text = authority(policy, now=AWARE + timedelta(hours=80))
    assert "made after that deadline (8 hours late)" in text
    assert "Reasons for the delay (Art. 33(1)): [REASONS FOR THE DELAY" in text


def test_authority_art34_evidence_and_data_seen_in_clear(policy: IncidentPolicy) -> None:
    clear = authority(policy)
    assert "Data seen in clear: yes" in clear
    assert art34_exemption(facts()) in clear
    protected = authority(policy, data_seen_in_clear=False)
    assert "Data seen in clear: no event shows" in protected
    assert "evidence for the exemption of Art. 34(3)(a)" in protected
    assert "adverse consequences are unlikely" in protected


def test_authority_times_are_in_the_policys_time_zone(policy: IncidentPolicy) -> None:
    london = dataclasses.replace(policy, timezone="Europe/London")
    summer = AWARE.replace(month=7)
    text = authority_notice(
        facts(became_aware_at=summer, first_event_at=summer, last_event_at=summer),
        london,
        templates=RUNBOOKS_DIR,
        now=summer,
    )
    assert "became aware of the breach: 2025-07-04 10:30 BST" in text


@pytest.mark.parametrize(
    ("runbook", "kind"),
    [
        ("mass-erasure", "availability (data erased)"),
        ("data-integrity", "integrity"),
        ("bulk-access", "confidentiality"),
    ],
)
def test_authority_says_which_kind_of_breach(
    policy: IncidentPolicy, runbook: str, kind: str
) -> None:
    seen = runbook == "bulk-access"
    assert f"Type of breach: {kind}\n" in authority(
        policy, runbook=runbook, data_seen_in_clear=seen
    )


# --- the customer draft -------------------------------------------------------------------------

FACT_SETS: dict[str, dict[str, Any]] = {
    "seen in clear, contact data": {},
    "no name": {"_name": None},
    "protected by encryption": {"data_seen_in_clear": False},
    "keys exposed": {"data_seen_in_clear": False, "keys_exposed": True},
    "not encrypted": {"data_seen_in_clear": False, "encrypted_at_rest": False},
    "passwords": {"entity_types": ("PASSWORD", "PIN", "SECURITY_ANSWER", "USERNAME")},
    "payment data": {"entity_types": ("CREDIT_CARD", "IBAN_CODE", "PERSON")},
    "identity data": {"entity_types": ("US_SSN", "DATE_TIME", "US_PASSPORT", "STREET_ADDRESS")},
    "account numbers": {"entity_types": ("ACCOUNT_ID", "ORDER_ID", "MEMBER_NUMBER")},
    "sensitive": {"entity_types": ("NRP", "PERSON")},
    "unknown categories": {"entity_types": ("SHOE_SIZE",), "data_seen_in_clear": False},
    "no categories yet": {"entity_types": (), "status": "open"},
    "every category": {"entity_types": tuple(ENTITY_CATEGORIES)},
    "over several days": {"first_event_at": AWARE - timedelta(days=3)},
    "resolved": {"status": "resolved"},
    "still open": {"status": "open", "runbook": None},
    "misdirected, sent": {"runbook": "misdirected-message"},
    "misdirected, stopped": {"runbook": "misdirected-message", "data_seen_in_clear": False},
    "audit tampering": {"runbook": "audit-tampering", "data_seen_in_clear": False},
    "erasure burst": {"runbook": "mass-erasure", "data_seen_in_clear": False},
    "integrity failure": {"runbook": "data-integrity", "data_seen_in_clear": False},
    "name with accents": {"_name": "José O'Brien-Łukasz"},
    "name with template syntax": {"_name": "{{ 7*7 }} {% if x %}"},
}


@pytest.mark.parametrize("case", FACT_SETS)
@pytest.mark.parametrize(
    "customer_says",
    [None, "I'm really worried. What happened to my data and what should I do?"],
    ids=["alone", "after-a-worried-message"],
)
def test_the_customer_notice_passes_the_tone_advice_with_no_finding(
    policy: IncidentPolicy, advisor: ToneAdvisor, case: str, customer_says: str | None
) -> None:
    changes = dict(FACT_SETS[case])
    name = changes.pop("_name", "Maria Lopez")
    text = customer(policy, name, **changes)
    advice = advisor.advise(text, customer_last_message=customer_says)
    found = [(f.category, f.rule, text[f.start : f.end]) for f in advice.findings]
    assert found == []


def test_the_customer_notice_is_honest_about_data_seen_in_clear(policy: IncidentPolicy) -> None:
    text = customer(policy)
    assert "was able to see some of them" in text
    assert "locked" not in text


def test_the_customer_notice_says_when_encryption_protected_them(policy: IncidentPolicy) -> None:
    text = customer(policy, data_seen_in_clear=False)
    assert "stored in a locked form (encrypted)" in text
    assert "we think the risk to you is low" in text
    unknown = customer(policy, data_seen_in_clear=False, keys_exposed=True)
    assert "We do not yet know whether they were able to read them" in unknown


def test_the_customer_notice_lists_the_categories_in_plain_words(policy: IncidentPolicy) -> None:
    text = customer(policy, entity_types=("EMAIL_ADDRESS", "CREDIT_CARD"))
    assert "- email addresses\n- payment card numbers\n" in text
    assert "EMAIL_ADDRESS" not in text


@pytest.mark.parametrize(
    ("types", "advice"),
    [
        (("EMAIL_ADDRESS",), "We will never ask you for your password or your full card number."),
        (("PASSWORD",), "Please change your password for your account with us."),
        (("CREDIT_CARD",), "Please check your bank and card statements"),
        (("US_SSN",), "add a fraud warning to your file"),
        (("ACCOUNT_ID",), "is not proof that it comes from us"),
    ],
)
def test_the_customer_notice_says_what_they_can_do_for_the_data_involved(
    policy: IncidentPolicy, types: tuple[str, ...], advice: str
) -> None:
    assert advice in customer(policy, entity_types=types)


def test_the_customer_notice_says_how_to_reach_us_and_the_reference(
    policy: IncidentPolicy,
) -> None:
    text = customer(policy)
    assert "please email dpo@example.com." in text
    assert "Please mention the reference INC-42" in text
    with_phone = dataclasses.replace(
        policy, contact=Contact(name="Ana Silva", email="privacy@example.com", phone="0800 123 456")
    )
    assert "please email privacy@example.com or call 0800 123 456." in customer(with_phone)


def test_the_customer_notice_keeps_internal_words_out(policy: IncidentPolicy) -> None:
    text = customer(policy)
    assert NATURE not in text
    assert "principal" not in text
    assert "guard principals" not in text
    assert "Art." not in text


def test_the_customer_notice_greets_by_name_or_not(policy: IncidentPolicy) -> None:
    assert "Dear Maria Lopez," in customer(policy)
    assert "\nHello,\n" in customer(policy, None)
    assert "\nHello,\n" in customer(policy, " \u200b\n ")


def test_a_name_with_template_syntax_is_printed_as_written(policy: IncidentPolicy) -> None:
    text = customer(policy, "{{ 7*7 }} {% raw %}{{ config }}")
    assert "Dear {{ 7*7 }} {% raw %}{{ config }}," in text
    assert "49" not in text


def test_a_name_is_cleaned_of_control_characters_and_shortened(policy: IncidentPolicy) -> None:
    text = customer(policy, "Maria\r\nSubject: hacked\x00 " + "x" * 500)
    greeting = next(line for line in text.splitlines() if line.startswith("Dear "))
    assert greeting.startswith("Dear Maria Subject: hacked x")
    assert len(greeting) <= len("Dear ,") + 100


# --- the sandbox and template errors ------------------------------------------------------------


def write_templates(folder: Path, customer_text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customer.md.j2").write_text(customer_text, encoding="utf-8")
    (folder / "authority.md.j2").write_text("{{ incident.id }}\n", encoding="utf-8")
    return folder


def render_customer(policy: IncidentPolicy, templates: Path) -> str:
    return customer_notice(facts(), policy, templates=templates, customer_name="Maria")


def test_templates_may_be_given_as_the_runbooks_folder_or_its_notices_folder(
    policy: IncidentPolicy, tmp_path: Path
) -> None:
    write_templates(tmp_path / "notices", "Hi {{ customer_name }}\n")
    assert render_customer(policy, tmp_path) == "Hi Maria\n"
    assert render_customer(policy, tmp_path / "notices") == "Hi Maria\n"
    assert authority_notice(facts(), policy, templates=tmp_path) == "INC-42\n"


def test_an_edited_template_is_picked_up(policy: IncidentPolicy, tmp_path: Path) -> None:
    folder = write_templates(tmp_path, "one\n")
    assert render_customer(policy, folder) == "one\n"
    path = folder / "customer.md.j2"
    path.write_text("two\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert render_customer(policy, folder) == "two\n"


@pytest.mark.parametrize(
    "text",
    [
        "{{ customer_name.__class__.__mro__[1].__subclasses__() }}",
        "{{ count.__globals__ }}",
        "{{ (1).__class__.__base__.__subclasses__() }}",
    ],
)
def test_a_template_cannot_reach_python_internals(
    policy: IncidentPolicy, tmp_path: Path, text: str
) -> None:
    folder = write_templates(tmp_path, text)
    with pytest.raises(RunbookError, match=r"customer\.md\.j2: the template failed"):
        render_customer(policy, folder)


def test_an_undefined_name_fails_instead_of_leaving_a_gap(
    policy: IncidentPolicy, tmp_path: Path
) -> None:
    folder = write_templates(tmp_path, "Dear {{ customer_nmae }}\n")
    with pytest.raises(
        RunbookError, match=r"customer\.md\.j2: the template failed: 'customer_nmae' is undefined"
    ):
        render_customer(policy, folder)


def test_a_syntax_error_names_the_file_and_line(policy: IncidentPolicy, tmp_path: Path) -> None:
    folder = write_templates(tmp_path, "line one\n{% if %}\n")
    with pytest.raises(RunbookError, match=r"customer\.md\.j2:2: template syntax error"):
        render_customer(policy, folder)


def test_a_missing_template_is_named(policy: IncidentPolicy, tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match=r"customer\.md\.j2: no such notice template"):
        render_customer(policy, tmp_path)


def test_an_error_never_carries_the_facts_or_the_name(
    policy: IncidentPolicy, tmp_path: Path
) -> None:
    folder = write_templates(tmp_path, "{{ customer_name + 1 }}\n")
    with pytest.raises(RunbookError) as caught:
        customer_notice(facts(), policy, templates=folder, customer_name="Maria Lopez")
    assert "Maria" not in caught.value.message
    assert "INC-42" not in caught.value.message
