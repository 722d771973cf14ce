"""The privacy notice: plain language measured by guard's own tone advice and textstat, and
every statement true to the policies."""

from __future__ import annotations

import shutil
from datetime import date
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
from guard.subjects.notice import Text, privacy_notice, words
from guard.subjects.policy import Period

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings

#: Plain English on the Flesch scale guard's tone advice reports (60-70 is plain English;
#: higher is easier), and a reading grade a 13-year-old reads without effort.
MIN_READING_EASE = 60.0
MAX_GRADE = 8.0


@pytest.fixture(scope="module")
def advisor() -> ToneAdvisor:
    return ToneAdvisor(load_tone_policy(PROJECT_ROOT / "policies" / TONE_FILENAME))


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", target)
    return target


@pytest.fixture
def local(settings: Settings, policies: Path) -> Settings:
    return settings.model_copy(update={"policies_dir": policies})


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path.name} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def as_prose(markdown: str) -> str:
    """Markdown as a reader reads it: each heading and list item a sentence of its own.

    textstat counts sentences by their closing punctuation, so a list would otherwise read as
    one long sentence and a heading would run into the paragraph after it.
    """
    lines = []
    for raw in markdown.splitlines():
        line = raw.strip().lstrip("#").lstrip("-").strip().replace("**", "")
        if line:
            lines.append(line if line[-1] in ".!?:" else line + ".")
    return "\n".join(lines)


def findings(advisor: ToneAdvisor, text: str, tenant: str | None) -> list[tuple[str, str, str]]:
    advice = advisor.advise(text, tenant=tenant)
    return [(f.category, f.rule, text[f.start : f.end]) for f in advice.findings]


@pytest.mark.parametrize("tenant", [None, "acme", "globex"])
def test_the_notice_passes_the_tone_advice_with_no_finding(
    local: Settings, advisor: ToneAdvisor, tenant: str | None
) -> None:
    text = privacy_notice(local, tenant=tenant).text
    # no jargon, no unexplained acronym, no sentence over the policy's 25 words, no shouting,
    # no negative or blaming phrasing, no over-promise
    assert findings(advisor, text, tenant) == []


def test_the_notice_reads_as_plain_english(local: Settings) -> None:
    text = privacy_notice(local, tenant="acme").text
    readability = measure_readability(as_prose(text), ReadabilitySpec(max_chars=100_000))
    assert readability is not None
    assert readability.words > 600  # the whole notice was measured
    assert readability.flesch_reading_ease >= MIN_READING_EASE
    assert readability.grade <= MAX_GRADE


def test_when_the_policies_say_more_then_the_notice_still_reads_plainly(
    local: Settings, policies: Path, advisor: ToneAdvisor
) -> None:
    """Consent, a transfer and an export kept in clear add text; it must stay plain too."""
    edit(
        policies / "processing.yaml",
        "transfers: []",
        "  - id: newsletters\n"
        "    description: Sending the newsletter.\n"
        "    plain: to send you our newsletter, if you asked for it\n"
        "    lawful_basis: consent\n"
        "    data: [email]\n"
        'transfers: ["Our email provider in the United States, under standard contract terms"]',
    )
    edit(
        policies / "exports" / "support_analytics.yaml",
        "  email: {action: pseudonym, entity: EMAIL_ADDRESS}\n",
        "  email: keep\n",
    )
    edit(policies / "retention.yaml", "  records: {erase_inactive_months: 36}\n", "")
    text = privacy_notice(local, tenant="acme").text
    assert findings(advisor, text, "acme") == []
    assert "- Our email provider in the United States, under standard contract terms" in text
    assert "We keep your details until you ask us to delete them." in text
    readability = measure_readability(as_prose(text), ReadabilitySpec(max_chars=100_000))
    assert readability is not None
    assert readability.flesch_reading_ease >= MIN_READING_EASE


def test_the_notice_says_how_to_use_every_right_and_whom_to_contact(local: Settings) -> None:
    text = privacy_notice(local, tenant="acme").text
    for right in (
        "**Get a copy.**",
        "**Take your data with you.**",
        "**Correct it.**",
        "**Delete it.**",
        "**Pause it.**",
        "**Object.**",
        "**Complain.**",
    ):
        assert right in text
    assert "complain to the data protection authority where you live or work" in text
    assert "Please email us at privacy@acme.example." in text
    assert "You can also write to them at dpo@acme.example." in text
    assert "We will reply within one month." in text.splitlines()[-1]
    # consent is not a basis of any shipped purpose, so there is nothing to withdraw
    assert "**Change your mind.**" not in text


def test_the_notice_says_how_long_in_plain_words_from_the_tenants_periods(
    local: Settings,
) -> None:
    acme = privacy_notice(local, tenant="acme").text
    assert "- We delete notes about you 1 year after they were last written." in acme
    assert "- If your details are not updated for 3 years, we delete them." in acme
    assert "- We keep the record of who looked at your details for 6 years." in acme
    assert "we keep that copy for 30 days, then delete it." in acme
    default = privacy_notice(local).text
    assert "- We delete notes about you 2 years after they were last written." in default
    assert default.startswith("# How Example Support Ltd uses your personal data\n")


def test_when_no_officer_or_authority_is_named_then_the_notice_says_only_what_is_true(
    local: Settings, policies: Path
) -> None:
    edit(
        policies / "processing.yaml",
        "  dpo: dpo@support.example\n  authority: the data protection authority where you live "
        "or work\n",
        "",
    )
    text = privacy_notice(local).text
    assert "data protection officer" not in text
    assert "You can also complain to a data protection authority." in text


def test_the_notice_is_deterministic_and_dated_only_on_request(local: Settings) -> None:
    first = privacy_notice(local, tenant="acme")
    assert first.text == privacy_notice(local, tenant="acme").text
    assert "Last updated" not in first.text
    dated = privacy_notice(local, tenant="acme", generated_on=date(2027, 1, 31)).text
    assert "Last updated on 31 January 2027." in dated
    assert first.filename == "privacy-notice-acme.md"


def test_a_malformed_tenant_is_refused(local: Settings) -> None:
    with pytest.raises(InvalidInputError, match=r"^tenant: "):
        privacy_notice(local, tenant="Acme Corp")


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (365, "days", "1 year"),
        (730, "days", "2 years"),
        (30, "days", "30 days"),
        (1, "days", "1 day"),
        (400, "days", "400 days"),
        (36, "months", "3 years"),
        (18, "months", "18 months"),
        (1, "months", "1 month"),
        (6, "years", "6 years"),
        (1, "years", "1 year"),
    ],
)
def test_when_a_period_is_put_in_words_then_whole_years_read_as_years(
    amount: int, unit: str, expected: str
) -> None:
    assert Period(kind="notes", amount=amount, unit=unit).in_words() == expected


def test_when_a_list_is_long_then_it_becomes_bullets_not_a_long_sentence() -> None:
    assert words(["a"]) == "a"
    assert words(["a", "b", "c"], joiner="or") == "a, b or c"
    assert Text().listing("We keep", ["a", "b", "c"]).lines() == ["We keep a, b and c."]
    assert Text().listing("We keep", ["a", "b", "c", "d"]).say("Then.").lines() == [
        "We keep:",
        "",
        "- a",
        "- b",
        "- c",
        "- d",
        "",
        "Then.",
    ]
