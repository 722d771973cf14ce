"""The cover letter of an access package: what we hold, why, for how long, who sees it, rights.

Interface fixed for the access-package builder (guard/subjects/package.py); the text is made
from the same facts as the privacy notice (guard/subjects/facts.py), and with the notice's own
plain-language pieces (guard/subjects/notice.py), so the two never disagree. It describes
exactly what this package holds for this customer: the fields they have, the purposes that use
those fields, their tenant's retention, what each role sees of those fields, their rights and
how to use them. Written the way the customer-service guidance asks: warm, plain, honest, with
a clear next step (tests/subjects/test_letter.py runs guard's tone advice over it).

The letter holds the customer's name and travels only inside the encrypted package: it is never
logged, and errors about a context name the field, never its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final

from guard.errors import InvalidInputError
from guard.subjects.facts import LAWFUL_BASIS_WORDS, Facts, collect_facts
from guard.subjects.notice import (
    Text,
    capfirst,
    contact_text,
    day,
    others_text,
    plain_data,
    retention_sentence,
    rights_text,
    sources_text,
    who_sees,
)
from guard.subjects.policy import RECORD_FIELDS

if TYPE_CHECKING:
    from datetime import datetime

    from guard.config import Settings
    from guard.subjects.policy import RetentionKind

KINDS: Final = ("access", "portability")
#: A name longer than this is not put in the greeting ("Hello," instead).
MAX_NAME_CHARS: Final = 100
#: Files a computer reads (what a portability request is for).
MACHINE_READABLE: Final = (".json", ".csv")
#: The package's files by name without extension, in a customer's words.
FILE_WORDS: Final[dict[str, str]] = {
    "record": "your details",
    "notes": "the notes our team wrote",
    "audit_events": "the record of who looked at or changed your details",
    "incidents": "security incidents that affected your details",
    "requests": "your requests to us about your data",
    "manifest": "a list of the files, so you can check that none has been changed",
}


@dataclass(frozen=True)
class LetterContext:
    """What one package holds: the letter describes exactly this."""

    tenant: str
    #: access | portability
    kind: str
    request_id: str
    received_at: datetime
    due_at: datetime
    #: The customer's name as held (the letter travels inside the encrypted package).
    customer_name: str | None
    #: Record fields that hold a value for this customer (``full_name``, ``notes`` ...).
    fields_held: tuple[str, ...]
    #: Audit events about the customer in the package.
    audit_events: int
    #: Incidents that affected the customer.
    incidents: int
    #: The other files in the package, by name.
    files: tuple[str, ...]


def cover_letter(settings: Settings, context: LetterContext) -> str:
    """The letter (plain text, Markdown headings) to put at the top of the package."""
    held = _fields_held(context)
    if context.kind not in KINDS:
        raise InvalidInputError(f"kind: must be one of {', '.join(KINDS)}")
    facts = collect_facts(settings, tenant=context.tenant)
    name = facts.controller.name
    portable = tuple(f for f in context.files if f.lower().endswith(MACHINE_READABLE))
    lines = [f"# Your personal data at {name}", "", _greeting(context.customer_name), ""]
    lines += (
        Text()
        .say(
            "Thank you for your request.",
            "You asked us for a copy of the personal data we keep about you"
            + (
                ", in a form you can take to another company."
                if context.kind == "portability"
                else "."
            ),
            "We understand that you want to know what we keep about you, and why.",
            "This package is our answer, and this letter explains what is in it.",
        )
        .paragraph(
            f"We received your request on {day(context.received_at.date())}.",
            f"The law asks us to answer within one month, by {day(context.due_at.date())}.",
        )
        .lines()
    )
    lines += ["", "## What is in this package", "", *_files_text(context, portable), ""]
    lines += ["## What we keep about you", "", *_held_text(context, held), ""]
    lines += ["## Why we use it", "", *_purposes_text(facts, context, held), ""]
    lines += ["## How long we keep it", "", *_retention_text(facts, context, held), ""]
    lines += ["## Who sees it", ""]
    if held:
        lines += ["Each person in our team sees only what their job needs.", ""]
        lines += [*who_sees(facts, held), ""]
    else:
        lines += ["We keep no details about you for our team to see.", ""]
    lines += ["## Where it came from", "", *sources_text(facts), ""]
    lines += ["## Who else gets it", "", *others_text(facts), ""]
    lines += ["## Your rights", "", *rights_text(facts, files_in_package=bool(portable)), ""]
    lines += [
        "## What happens next",
        "",
        *Text()
        .say(
            "Please look through the package.",
            "If anything is wrong or missing, tell us and we will put it right.",
        )
        .lines(),
        "",
        *contact_text(facts, reference=context.request_id),
        "",
        "We will be glad to help.",
        "",
        "With best wishes,",
        "",
        f"The privacy team at {name}",
    ]
    return "\n".join(lines) + "\n"


def _fields_held(context: LetterContext) -> list[str]:
    """The record fields held, in the record's order (``notes_redacted`` counts as notes)."""
    named = {"notes" if f == "notes_redacted" else f for f in context.fields_held}
    if named - set(RECORD_FIELDS):
        known = ", ".join(RECORD_FIELDS)
        raise InvalidInputError(f"fields_held: unknown record field (known: {known})")
    return [f for f in RECORD_FIELDS if f in named]


def _greeting(customer_name: str | None) -> str:
    name = " ".join(customer_name.split()) if isinstance(customer_name, str) else ""
    if not name or len(name) > MAX_NAME_CHARS:
        return "Hello,"
    return f"Dear {name},"


def _files_text(context: LetterContext, portable: tuple[str, ...]) -> list[str]:
    text = Text()
    if not context.files:
        return text.say("This package holds this letter.").lines()
    described = []
    for file in context.files:
        about = FILE_WORDS.get(PurePosixPath(file).stem)
        described.append(f"{file}: {about}" if about else file)
    text.say("Besides this letter, the package holds these files:").bullets(described)
    if portable:
        text.say(
            "The files ending in .json or .csv are in standard formats that computers can read."
        )
        if context.kind == "portability":
            text.say("You can give them to another company, and it can load them.")
        text.end()
    return text.lines()


def _held_text(context: LetterContext, held: list[str]) -> list[str]:
    text = Text()
    if held:
        text.listing("We keep", [plain_data(f) for f in held])
    else:
        text.say("We keep no details about you in our customer records.")
    text.end()
    if context.audit_events:
        entries = "entry" if context.audit_events == 1 else "entries"
        text.paragraph(
            "We also keep a record of each time someone looked at or changed your details.",
            f"This package lists all {context.audit_events} {entries}, with when and why.",
        )
    else:
        text.paragraph("Our record of who looked at your details has no entries about you.")
    if context.incidents:
        some = (
            "One security incident"
            if context.incidents == 1
            else f"{context.incidents} security incidents"
        )
        text.paragraph(
            f"{some} affected your details.",
            "We are sorry about this.",
            "The package explains what happened and what we did about it.",
        )
    else:
        text.paragraph("We have no record of any security incident that affected your details.")
    return text.lines()


def _purposes_text(facts: Facts, context: LetterContext, held: list[str]) -> list[str]:
    have = set(held) | ({"audit"} if context.audit_events else set())
    lines: list[str] = []
    for purpose in facts.purposes:
        uses = [d for d in purpose.data if d in have]
        if not uses:
            continue
        lines += [
            f"### {capfirst(purpose.plain)}",
            "",
            *Text()
            .say(f"We do this {LAWFUL_BASIS_WORDS[purpose.lawful_basis]}.")
            .listing("For this we use", [plain_data(d) for d in uses])
            .lines(),
            "",
        ]
    if not lines:
        return ["We do not use any of your details for a purpose of our own."]
    return lines[:-1]


def _retention_text(facts: Facts, context: LetterContext, held: list[str]) -> list[str]:
    kinds: list[RetentionKind] = []
    if "notes" in held:
        kinds.append("notes")
    if held:
        kinds.append("records")
    if context.audit_events:
        kinds.append("audit")
    kinds.append("subject_packages")
    return Text().bullets(retention_sentence(facts, kind) for kind in kinds).lines()
