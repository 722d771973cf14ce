"""The cover letter of an access package: exactly what this customer's package holds, in the
words the customer-service guidance asks for, from the same facts as the notice."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from guard.config import PROJECT_ROOT
from guard.errors import InvalidInputError
from guard.messages.tone import (
    TONE_FILENAME,
    ReadabilitySpec,
    ToneAdvisor,
    load_tone_policy,
    measure_readability,
)
from guard.subjects.facts import collect_facts
from guard.subjects.letter import LetterContext, cover_letter
from guard.subjects.notice import privacy_notice, role_text

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

FILES = (
    "record.json",
    "record.csv",
    "notes.txt",
    "audit_events.json",
    "audit_events.csv",
    "incidents.json",
    "requests.json",
    "manifest.json",
)
CONTEXT = LetterContext(
    tenant="acme",
    kind="access",
    request_id="7d0c2f6e-3b1a-4c55-9e0f-2a6b8c1d4e3f",
    received_at=datetime(2026, 12, 5, 9, 30, tzinfo=UTC),
    due_at=datetime(2027, 1, 5, 9, 30, tzinfo=UTC),
    customer_name="Philippa Quennell-Abernathy",
    fields_held=("full_name", "email", "phone", "notes"),
    audit_events=12,
    incidents=0,
    files=FILES,
)
CUSTOMER_MESSAGES = (
    None,
    "Could you please send me a copy of all the data you hold about me?",
    "This is unacceptable. I want to know what you hold about me and who has seen it!",
)


@pytest.fixture(scope="module")
def advisor() -> ToneAdvisor:
    return ToneAdvisor(load_tone_policy(PROJECT_ROOT / "policies" / TONE_FILENAME))


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> Settings:
    target = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", target)
    return settings.model_copy(update={"policies_dir": target})


def letter(settings: Settings, **changes: object) -> str:
    return cover_letter(settings, dataclasses.replace(CONTEXT, **changes))  # type: ignore[arg-type]


def part(text: str, heading: str) -> str:
    """One ``## `` section of the letter."""
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def as_prose(markdown: str) -> str:
    lines = []
    for raw in markdown.splitlines():
        line = raw.strip().lstrip("#").lstrip("-").strip().replace("**", "")
        if line:
            lines.append(line if line[-1] in ".!?:," else line + ".")
    return "\n".join(lines)


@pytest.mark.parametrize("customer_says", CUSTOMER_MESSAGES, ids=["alone", "asked", "upset"])
@pytest.mark.parametrize("kind", ["access", "portability"])
@pytest.mark.parametrize("incidents", [0, 2])
def test_the_letter_passes_the_tone_advice_with_no_finding(
    settings: Settings,
    advisor: ToneAdvisor,
    customer_says: str | None,
    kind: str,
    incidents: int,
) -> None:
    text = letter(settings, kind=kind, incidents=incidents)
    advice = advisor.advise(text, tenant="acme", customer_last_message=customer_says)
    assert [(f.category, f.rule, text[f.start : f.end]) for f in advice.findings] == []


def test_the_letter_reads_as_plain_english(settings: Settings) -> None:
    readability = measure_readability(
        as_prose(letter(settings)), ReadabilitySpec(max_chars=100_000)
    )
    assert readability is not None
    assert readability.words > 500
    assert readability.flesch_reading_ease >= 60.0
    assert readability.grade <= 8.0


def test_the_letter_greets_the_customer_and_dates_the_request(settings: Settings) -> None:
    text = letter(settings)
    assert text.startswith("# Your personal data at Acme Corp\n\nDear Philippa Quennell-Abernathy,")
    assert "We received your request on 5 December 2026." in text
    assert "by 5 January 2027." in text
    assert letter(settings, customer_name=None).split("\n")[2] == "Hello,"
    assert letter(settings, customer_name="  Ann\n\tSmith ").split("\n")[2] == "Dear Ann Smith,"
    assert letter(settings, customer_name="x" * 101).split("\n")[2] == "Hello,"


def test_the_letter_lists_only_the_fields_this_customer_has(settings: Settings) -> None:
    text = letter(settings, fields_held=("email", "date_of_birth"))
    held = part(text, "What we keep about you")
    assert "We keep your email address and your date of birth." in held
    assert "your name" not in held
    assert "phone" not in text
    # why: only the purposes that use what they have (and the audit trail: 12 entries)
    why = part(text, "Why we use it")
    assert "### To check it is really you" in why
    assert "### To keep a record of who looked at your data" in why
    assert "### To improve our service" not in why  # it uses notes, which they have none of
    # who sees it: exactly the views of those two fields
    agents = part(text, "Who sees it").split("### Our support agents\n\n")[1].split("\n\n")[0]
    assert agents == "They see your email address. They do not see your date of birth."
    # how long: no notes, so no notes period
    assert "notes" not in part(text, "How long we keep it")


def test_the_letter_says_their_tenants_retention(settings: Settings) -> None:
    acme = part(letter(settings), "How long we keep it")
    assert "- We delete notes about you 1 year after they were last written." in acme
    assert "- If your details are not updated for 3 years, we delete them." in acme
    assert "- We keep the record of who looked at your details for 6 years." in acme
    other = part(letter(settings, tenant="globex"), "How long we keep it")
    assert "- We delete notes about you 2 years after they were last written." in other
    assert "Example Support Ltd" in letter(settings, tenant="globex")


def test_the_letter_explains_the_files_and_portability(settings: Settings) -> None:
    access = letter(settings)
    files = part(access, "What is in this package")
    assert "- audit_events.csv: the record of who looked at or changed your details" in files
    assert "- manifest.json: a list of the files" in files
    assert "standard formats that computers can read" in files
    assert "another company" not in files
    portability = letter(settings, kind="portability")
    assert "in a form you can take to another company" in portability
    files = part(portability, "What is in this package")
    assert "You can give them to another company, and it can load them." in files
    assert "The files in this package that end in .json or .csv" in part(portability, "Your rights")


def test_the_letter_is_honest_about_the_trail_and_incidents(settings: Settings) -> None:
    held = part(letter(settings, audit_events=1, incidents=0), "What we keep about you")
    assert "This package lists all 1 entry, with when and why." in held
    assert "We have no record of any security incident that affected your details." in held
    held = part(letter(settings, audit_events=0, incidents=2), "What we keep about you")
    assert "Our record of who looked at your details has no entries about you." in held
    assert "2 security incidents affected your details. We are sorry about this." in held


def test_the_letter_ends_with_a_next_step_and_the_reference(settings: Settings) -> None:
    text = letter(settings)
    after = part(text, "What happens next")
    assert "If anything is wrong or missing, tell us and we will put it right." in after
    assert "Please email us at privacy@acme.example." in after
    assert f"Please quote the reference {CONTEXT.request_id}." in after
    assert text.endswith("The privacy team at Acme Corp\n")


def test_the_letter_and_the_notice_say_the_same_about_who_sees_what(
    settings: Settings,
) -> None:
    facts = collect_facts(settings, tenant="acme")
    notice = privacy_notice(settings, tenant="acme").text
    text = letter(settings, fields_held=tuple(f.field for f in facts.roles[0].fields))
    for role in facts.roles:
        said = "\n".join(role_text(role, [f.field for f in role.fields]))
        assert said in notice
        assert said in text


def test_when_the_policies_change_then_the_letter_changes(
    local: Settings,
) -> None:
    before = letter(local)
    views = local.policies_dir / "views.yaml"
    text = views.read_text(encoding="utf-8")
    views.write_text(
        text.replace("    phone: {mode: masked, mask: {keep_last: 4}}\n", "    phone: hidden\n", 1),
        encoding="utf-8",
    )
    after = letter(local)
    assert "the last 4 digits of your phone number" in before
    assert "the last 4 digits of your phone number" not in after
    assert "They do not see your phone number." in after


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fields_held": ("full_name", "secret_field_x")}, "fields_held: unknown record field"),
        ({"kind": "erasure-x"}, "kind: must be one of access, portability"),
        ({"tenant": "Not A Tenant"}, "tenant: must be"),
    ],
)
def test_when_the_context_is_wrong_then_it_is_refused_without_echo(
    settings: Settings, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        letter(settings, **changes)
    assert caught.value.message.startswith(message)
    for value in ("secret_field_x", "erasure-x", "Not A Tenant"):
        assert value not in caught.value.message


def test_the_redacted_copy_of_the_notes_counts_as_the_notes(settings: Settings) -> None:
    assert letter(settings, fields_held=("notes_redacted",)) == letter(
        settings, fields_held=("notes",)
    )
