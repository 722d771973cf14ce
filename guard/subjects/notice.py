"""The privacy notice (GDPR Arts. 13-14): what we keep, why, how long, who sees it, your rights.

Written for customers from the same facts as the record of processing
(:func:`guard.subjects.facts.collect_facts`), in the words the customer-service guidance asks
for: short sentences, everyday words, what it means for the customer and what they can do. The
shipped text passes guard's own tone advice (policies/tone.yaml) with no finding and reads at
a plain-English level (tests/subjects/test_notice.py measures both).

The plain-language pieces here (who sees what, how long, your rights, how to reach us) are also
the cover letter's (:mod:`guard.subjects.letter`): one wording, so the two never disagree.
Deterministic: no clock is read; a date appears only when the caller passes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard.records.views import VIEW_FIELDS
from guard.subjects.facts import (
    DATA_WORDS,
    LAWFUL_BASIS_WORDS,
    Document,
    Facts,
    RoleFacts,
    collect_facts,
)
from guard.subjects.policy import RECORD_FIELDS, RETENTION_KINDS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import date

    from guard.config import Settings
    from guard.subjects.policy import RetentionKind

MEDIA_TYPE = "text/markdown; charset=utf-8"
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
#: Other data as a purpose uses it, in a customer's words.
_USES: dict[str, str] = {
    "audit": "a record of who looked at your details",
    "tool_calls": "what our support tools find about you",
    "messages": "the messages we send you",
    "exports": "copies of your data for analysis",
}


def privacy_notice(
    settings: Settings, *, tenant: str | None = None, generated_on: date | None = None
) -> Document:
    """The privacy notice for ``tenant``'s customers (None: the default) as Markdown."""
    facts = collect_facts(settings, tenant=tenant)
    return Document(
        text=notice_markdown(facts, generated_on=generated_on),
        media_type=MEDIA_TYPE,
        filename=f"privacy-notice-{facts.scope}.md",
    )


# --- plain-language pieces, shared with the cover letter -------------------------------------


def day(value: date) -> str:
    """``5 December 2026``, whatever the locale."""
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def words(items: Sequence[str], *, joiner: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (or ``joiner`` instead of ``and``)."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def capfirst(text: str) -> str:
    """The text with its first letter in capitals."""
    return text[:1].upper() + text[1:]


def plain_data(data: str) -> str:
    """A record field or other data in a customer's words."""
    return _USES.get(data) or DATA_WORDS[data][1]


class Text:
    """Paragraphs and lists, written sentence by sentence, as Markdown lines.

    A list longer than :data:`MAX_INLINE` items becomes bullets rather than a long sentence:
    the tone advice asks for sentences of 25 words or fewer.
    """

    MAX_INLINE = 3

    def __init__(self) -> None:
        self._blocks: list[list[str]] = []
        self._paragraph: list[str] = []

    def say(self, *sentences: str) -> Text:
        """Add sentences to the current paragraph."""
        self._paragraph.extend(sentences)
        return self

    def paragraph(self, *sentences: str) -> Text:
        """Add sentences as a paragraph of their own."""
        return self.end().say(*sentences).end()

    def listing(self, lead: str, items: Sequence[str], *, joiner: str = "and") -> Text:
        """``lead`` followed by the items: inline when few (``lead a and b.``), else bullets."""
        if len(items) <= self.MAX_INLINE:
            return self.say(f"{lead} {words(items, joiner=joiner)}.")
        self.say(f"{lead}:").end()
        self._blocks.append([f"- {item}" for item in items])
        return self

    def bullets(self, items: Iterable[str]) -> Text:
        """A bulleted list of its own."""
        self.end()
        self._blocks.append([f"- {item}" for item in items])
        return self

    def end(self) -> Text:
        """Close the current paragraph."""
        if self._paragraph:
            self._blocks.append([" ".join(self._paragraph)])
            self._paragraph = []
        return self

    def lines(self) -> list[str]:
        """The Markdown lines, blocks separated by a blank line."""
        self.end()
        out: list[str] = []
        for block in self._blocks:
            if out:
                out.append("")
            out.extend(block)
        return out


def _masked(field: str, keep_last: int | None) -> str:
    unit = "digits" if field == "phone" else "characters"
    if not keep_last:
        return f"{DATA_WORDS[field][1]} with every {unit[:-1]} hidden"
    return f"only the last {keep_last} {unit} of {DATA_WORDS[field][1]}"


def _uniform(role: RoleFacts, modes: set[str], fields: Sequence[str]) -> list[str] | None:
    """The short answer when the role sees every field alike (all hidden, or all in clear)."""
    text = Text()
    if modes == {"hidden"}:
        if role.makes_packages:
            return text.say(
                "They do not see your details in their daily work.",
                "They see them in full only to answer a request from you, such as a request for "
                "a copy.",
            ).lines()
        return text.say("They do not see your details.").lines()
    if modes == {"clear"}:
        seen = "all of your details" if len(fields) > 1 else DATA_WORDS[fields[0]][1]
        return text.say(f"They see {seen}.").lines()
    return None


def role_text(role: RoleFacts, fields: Iterable[str]) -> list[str]:
    """What ``role`` sees of ``fields`` (empty: none of them to speak of)."""
    chosen = set(fields)
    ordered = [f for f in VIEW_FIELDS if f in chosen]
    if not ordered:
        return []
    by_mode: dict[str, list[str]] = {}
    for name in ordered:
        by_mode.setdefault(role.access(name).mode, []).append(DATA_WORDS[name][1])
    uniform = _uniform(role, set(by_mode), ordered)
    if uniform is not None:
        return uniform
    text = Text()
    if by_mode.get("clear"):
        text.listing("They see", by_mode["clear"])
    for name in ordered:
        if role.access(name).mode == "masked":
            text.say(f"They see {_masked(name, role.access(name).keep_last)}.")
    if by_mode.get("pseudonym"):
        text.listing("They see a code in place of", by_mode["pseudonym"])
        text.say("The code does not show the details themselves.")
    if by_mode.get("redacted"):
        text.say("They see the notes our team wrote, with your personal details hidden.")
    if by_mode.get("hidden"):
        text.listing("They do not see", by_mode["hidden"], joiner="or")
    return _special_access(role, text).lines()


def _special_access(role: RoleFacts, text: Text) -> Text:
    """Access beyond the role's view: a reveal with a reason, or an access request."""
    if role.reveals_records:
        return text.say(
            "When they give a reason, they can see all of your details.",
            "We keep a record of each time.",
        )
    if role.makes_packages:
        return text.say("They see all of your details only to answer a request from you.")
    return text


def who_sees(facts: Facts, fields: Iterable[str], *, level: int = 3) -> list[str]:
    """A heading per role and what it sees of ``fields``."""
    chosen = list(fields)
    lines: list[str] = []
    for role in facts.roles:
        said = role_text(role, chosen)
        if said:
            lines += [f"{'#' * level} {capfirst(role.plain)}", "", *said, ""]
    return lines[:-1] if lines else lines


#: (kept until erased, zero period, a period: ``{period}``) for each kind of data.
_RETENTION_SENTENCES: dict[str, tuple[str, str, str]] = {
    "notes": (
        "We keep notes about you until you ask us to delete them.",
        "We delete notes about you at our next regular clean-up.",
        "We delete notes about you {period} after they were last written.",
    ),
    "records": (
        "We keep your details until you ask us to delete them.",
        "We delete your details at our next regular clean-up.",
        "If your details are not updated for {period}, we delete them.",
    ),
    "audit": (
        "We keep the record of who looked at your details with no set end date.",
        "We delete the record of who looked at your details at our next regular clean-up.",
        "We keep the record of who looked at your details for {period}.",
    ),
    "subject_packages": (
        "When you ask for a copy of your data, we keep that copy until you ask us to delete it.",
        "When you ask for a copy of your data, we delete our copy at our next regular clean-up.",
        "When you ask for a copy of your data, we keep that copy for {period}, then delete it.",
    ),
}


def retention_sentence(facts: Facts, kind: RetentionKind) -> str:
    """How long ``kind`` is kept, as a customer would say it."""
    period = facts.period(kind)
    until_erased, zero, kept = _RETENTION_SENTENCES[kind]
    if period is None:
        return until_erased
    if period.amount == 0:
        return zero
    return kept.format(period=period.in_words())


def rights_text(facts: Facts, *, files_in_package: bool = False) -> list[str]:
    """The customer's rights, a short paragraph each (``files_in_package``: for a package)."""
    text = Text()
    text.paragraph(
        "**Get a copy.** You can ask for a copy of all the personal data we keep about you.",
        "It is free, and we reply within one month.",
    )
    if files_in_package:
        text.paragraph(
            "**Take your data with you.** The files in this package that end in .json or .csv "
            "are in standard formats that computers can read.",
            "You can give them to another company.",
        )
    else:
        text.paragraph(
            "**Take your data with you.** We can give you your data in files that computers can "
            "read.",
            "You can then give them to another company.",
        )
    text.paragraph("**Correct it.** If something is wrong or missing, tell us and we will fix it.")
    text.paragraph(
        "**Delete it.** You can ask us to delete your personal data.",
        "We delete it by destroying the key that unlocks it, so no copy of it can be read again.",
    )
    text.paragraph(
        "**Pause it.** You can ask us to stop using your data for a while, for example while we "
        "check that it is correct."
    )
    fair = [p.plain for p in facts.purposes if p.lawful_basis == "legitimate_interests"]
    if fair:
        lead = "**Object.** You can object when we use your data"
        if len(fair) == 1:
            text.say(f"{lead} {fair[0]}.")
        else:
            text.say(f"{lead} for these reasons:").bullets(fair)
        text.paragraph(
            "We will then stop, unless we have strong reasons to go on.",
            "If we do, we will explain them to you.",
        )
    if any(p.lawful_basis == "consent" for p in facts.purposes):
        text.paragraph(
            "**Change your mind.** Where we use your data because you agreed, you can withdraw "
            "your agreement at any time."
        )
    authority = facts.controller.authority or "a data protection authority"
    text.paragraph(
        "**Complain.** If you are unhappy with how we use your data, please tell us first.",
        f"You can also complain to {authority}.",
    )
    return text.lines()


def contact_text(facts: Facts, *, reference: str | None = None) -> list[str]:
    """How to reach the controller (and its data protection officer)."""
    controller = facts.controller
    text = Text().say(f"Please email us at {controller.contact}.")
    if reference:
        text.say(f"Please quote the reference {reference}.")
    if controller.dpo:
        text.paragraph(
            "Our data protection officer makes sure we look after your data properly.",
            f"You can also write to them at {controller.dpo}.",
        )
    return text.lines()


def sources_text(facts: Facts) -> list[str]:
    """Where the data comes from."""
    text = Text().say(
        "Most of it comes from you, when you contact us.",
        "Our team adds notes about your requests.",
    )
    if facts.processors:
        text.say(
            "Our support tools also read some of your details from our customer systems, so "
            "that we can help you."
        )
    return text.lines()


def others_text(facts: Facts) -> list[str]:
    """Who else receives the data: systems of record, analytics copies, transfers."""
    text = Text()
    if facts.processors:
        count = len(facts.processors)
        systems = "another system" if count == 1 else f"{count} other systems"
        text.paragraph(
            f"Our support tools send some of your details to {systems} we use, for example to "
            "look up your orders.",
            "Each person then sees only what their job needs.",
        )
    if facts.exports:
        clear = sorted(
            {c for e in facts.exports for c in e.clear_identifiers if c in RECORD_FIELDS}
        )
        text.say("We use copies of your data to improve our service.")
        if clear:
            text.listing("These copies include", [DATA_WORDS[c][1] for c in clear])
        else:
            text.say(
                "In these copies, the details that show who you are are replaced by codes or "
                "left out."
            )
        text.end()
    if facts.transfers:
        text.say("We send some of your personal data outside the European Economic Area.")
        text.bullets(facts.transfers)
    else:
        text.paragraph("We do not send your personal data outside the European Economic Area.")
    return text.lines()


# --- the notice -----------------------------------------------------------------------------


def notice_markdown(facts: Facts, *, generated_on: date | None = None) -> str:
    """The privacy notice as Markdown."""
    controller = facts.controller
    name = controller.name
    lines = [f"# How {name} uses your personal data", ""]
    if generated_on is not None:
        lines += [f"Last updated on {day(generated_on)}.", ""]
    lines += [
        (
            "This notice explains what personal data we keep about you, why we keep it, and what "
            "you can ask us to do with it."
        ),
        "",
        "## Who we are",
        "",
        (
            f"{name} is responsible for your personal data. You can write to us at "
            f"{controller.contact}."
        ),
        "",
        "## What we keep about you",
        "",
        *Text()
        .listing("When you contact us, we may keep", [DATA_WORDS[f][1] for f in RECORD_FIELDS])
        .paragraph(
            "We also keep a record of who looked at or changed your details, when, and why.",
            "It does not hold your details themselves.",
        )
        .paragraph(
            "We check the messages we send you before they go, and we keep no copy of them.",
            "We keep no copy of what our support tools find about you either.",
        )
        .lines(),
        "",
        "## Where it comes from",
        "",
        *sources_text(facts),
        "",
        "## Why we use it",
        "",
    ]
    for purpose in facts.purposes:
        lines += [
            f"### {capfirst(purpose.plain)}",
            "",
            *Text()
            .say(f"We do this {LAWFUL_BASIS_WORDS[purpose.lawful_basis]}.")
            .listing("For this we use", [plain_data(d) for d in purpose.data])
            .lines(),
            "",
        ]
    lines += [
        "## How we keep it safe",
        "",
        (
            "We store your details in a locked form (encrypted), with a key that belongs to you "
            "alone. We keep a record of everyone who looks at them. We check that record for "
            "anything unusual, and we act on what we find."
        ),
        "",
        "## Who can see it",
        "",
        "Each person in our team sees only what their job needs.",
        "",
        *who_sees(facts, RECORD_FIELDS),
        "",
        "## Who else gets it",
        "",
        *others_text(facts),
        "",
        "## How long we keep it",
        "",
        *Text().bullets(retention_sentence(facts, kind) for kind in RETENTION_KINDS).lines(),
        "",
        "## Your rights",
        "",
        *rights_text(facts),
        "",
        "## How to ask",
        "",
        (
            "Tell us what you would like us to do. We may ask you a few questions to check that it "
            "is really you. This keeps your details safe."
        ),
        "",
        *contact_text(facts),
        "",
        "We will reply within one month.",
    ]
    return "\n".join(lines) + "\n"
