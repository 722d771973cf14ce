"""Breach notification drafts: to the supervisory authority (Art. 33) and to customers (Art. 34).

The wording lives in two Jinja2 templates an operator may edit, ``authority.md.j2`` and
``customer.md.j2`` in ``audit/runbooks/notices/``; this module gathers the facts they need and
renders them. Drafts are plain text / Markdown for a person to review and send: guard sends
nothing itself.

Threats. Templates are data, edited by operators, so they run in Jinja2's
``SandboxedEnvironment``: a template cannot reach Python internals (``__class__``,
``__globals__``), call unsafe methods or build huge ranges. Undefined names fail
(``StrictUndefined``) instead of leaving a silent gap in a legal notice. Facts and names are
passed as values, never pasted into template source, so a customer name such as ``{{ 7*7 }}``
is printed as it is written. Errors name the template file (and line), never a fact or a name.

Facts are mapped to plain words here: entity types to data categories (``EMAIL_ADDRESS`` ->
"email addresses"), and to groups the templates use to say what the breach may mean and what
the customer can do (``contact``, ``account``, ``credentials``, ``financial``, ``identity``,
``online``, ``sensitive``, ``other``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2 import TemplateSyntaxError as JinjaSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from guard.incidents.errors import RunbookError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from guard.incidents.policy import IncidentPolicy

NOTICES_DIRNAME = "notices"
AUTHORITY_TEMPLATE = "authority.md.j2"
CUSTOMER_TEMPLATE = "customer.md.j2"
#: Runbooks whose incidents are about losing or damaging data rather than disclosing it.
AVAILABILITY_RUNBOOKS = frozenset({"mass-erasure", "data-integrity"})
#: Statuses in which the breach is stopped (see guard.incidents.models.STATUSES).
CONTAINED_STATUSES = frozenset({"contained", "resolved", "closed"})
OTHER_CATEGORY = "other personal details"
OTHER_GROUP = "other"
MAX_NAME_CHARS = 100

#: Entity type -> (plain words, group), in the order categories are listed in notices.
ENTITY_CATEGORIES: dict[str, tuple[str, str]] = {
    "PERSON": ("names", "contact"),
    "TITLE": ("job titles", "contact"),
    "EMAIL_ADDRESS": ("email addresses", "contact"),
    "PHONE_NUMBER": ("phone numbers", "contact"),
    "STREET_ADDRESS": ("postal addresses", "contact"),
    "ZIP_CODE": ("postal addresses", "contact"),
    "LOCATION": ("places and locations", "contact"),
    "ORGANIZATION": ("names of organisations", "contact"),
    "ACCOUNT_ID": ("account numbers", "account"),
    "MEMBER_NUMBER": ("membership numbers", "account"),
    "ORDER_ID": ("order numbers", "account"),
    "USERNAME": ("usernames", "account"),
    "PASSWORD": ("passwords", "credentials"),
    "PIN": ("PINs", "credentials"),
    "SECURITY_ANSWER": ("answers to security questions", "credentials"),
    "API_KEY": ("access keys", "credentials"),
    "CREDIT_CARD": ("payment card numbers", "financial"),
    "IBAN_CODE": ("bank account numbers", "financial"),
    "US_BANK_NUMBER": ("bank account numbers", "financial"),
    "CRYPTO": ("cryptocurrency wallet addresses", "financial"),
    "DATE_TIME": ("dates, such as dates of birth", "identity"),
    "AGE": ("ages", "identity"),
    "US_SSN": ("Social Security numbers", "identity"),
    "US_ITIN": ("taxpayer identification numbers", "identity"),
    "US_PASSPORT": ("passport numbers", "identity"),
    "US_DRIVER_LICENSE": ("driving licence numbers", "identity"),
    "MEDICAL_LICENSE": ("medical licence numbers", "identity"),
    "UK_NHS": ("health service numbers", "identity"),
    "IP_ADDRESS": ("internet addresses of devices", "online"),
    "MAC_ADDRESS": ("hardware addresses of devices", "online"),
    "URL": ("web addresses", "online"),
    "NRP": ("nationality, religion or political opinions", "sensitive"),
}
_CATEGORY_ORDER = {
    words: order
    for order, words in enumerate(dict.fromkeys(words for words, _ in ENTITY_CATEGORIES.values()))
}
_GROUP_ORDER = {
    group: order
    for order, group in enumerate(
        [*dict.fromkeys(group for _, group in ENTITY_CATEGORIES.values()), OTHER_GROUP]
    )
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """What the drafts say about one incident (gathered by the incident service)."""

    incident_id: str
    title: str
    #: What happened, in plain words (from the rule's description); authority draft only.
    nature: str
    severity: str
    became_aware_at: datetime
    first_event_at: datetime
    last_event_at: datetime
    #: Entity types in the events, e.g. ("EMAIL_ADDRESS", "PHONE_NUMBER").
    entity_types: tuple[str, ...]
    affected_customers: int
    affected_records: int
    #: Events show the data was read or revealed in clear by someone.
    data_seen_in_clear: bool
    #: The affected records are envelope-encrypted at rest.
    encrypted_at_rest: bool
    #: A key event (retirement or rotation failure, integrity failure) falls in the range.
    keys_exposed: bool
    #: What was done: ticked runbook steps and action notes.
    measures: tuple[str, ...]
    status: str
    #: The incident's runbook (its type): the customer draft words "what happened" after it.
    runbook: str | None = None

    @property
    def encryption_protects(self) -> bool:
        """Whether encryption kept the data unintelligible (the Art. 34(3)(a) condition)."""
        return self.encrypted_at_rest and not self.keys_exposed and not self.data_seen_in_clear


def data_categories(entity_types: Iterable[str]) -> tuple[str, ...]:
    """Entity types in plain words, deduplicated, in a fixed order (unknown ones last)."""
    words = {
        ENTITY_CATEGORIES[kind][0] if kind in ENTITY_CATEGORIES else OTHER_CATEGORY
        for kind in entity_types
    }
    return tuple(sorted(words, key=lambda w: _CATEGORY_ORDER.get(w, len(_CATEGORY_ORDER))))


def data_groups(entity_types: Iterable[str]) -> tuple[str, ...]:
    """The groups of the entity types (what the data allows someone to do), in a fixed order."""
    groups = {
        ENTITY_CATEGORIES[kind][1] if kind in ENTITY_CATEGORIES else OTHER_GROUP
        for kind in entity_types
    }
    return tuple(sorted(groups, key=_GROUP_ORDER.__getitem__))


def art34_exemption(facts: NoticeFacts) -> str:
    """The evidence on GDPR Art. 34(3)(a): was the data encrypted with keys not exposed."""
    evidence = _encryption_evidence(facts)
    if facts.runbook in AVAILABILITY_RUNBOOKS:
        evidence += (
            " Encryption keeps data confidential; it does not protect against its loss or "
            "alteration, which this incident concerns."
        )
    return evidence


def _encryption_evidence(facts: NoticeFacts) -> str:
    if facts.data_seen_in_clear:
        return (
            "The audit trail shows the affected data was read or revealed in clear by a "
            "principal. Encryption at rest does not protect data that was seen in clear, so "
            "Art. 34(3)(a) does not apply to it."
        )
    if not facts.encrypted_at_rest:
        return (
            "The affected data was not encrypted at rest by guard, so Art. 34(3)(a) cannot be "
            "relied on."
        )
    if facts.keys_exposed:
        return (
            "The affected records are encrypted at rest (AES-256-GCM, a data key per customer "
            "wrapped by a key-encryption key), but a key event in the incident's range (a key "
            "retirement or rotation failure, or an integrity failure) means the keys cannot be "
            "shown to be unexposed, so Art. 34(3)(a) cannot be relied on until that is cleared."
        )
    return (
        "The affected records are encrypted at rest (AES-256-GCM, a data key per customer "
        "wrapped by a key-encryption key). No key event in the incident's range shows those "
        "keys were exposed, and no event shows the data was read or revealed in clear, so the "
        "data is unintelligible to a person not authorised to access it: evidence for the "
        "exemption of Art. 34(3)(a)."
    )


def authority_notice(
    facts: NoticeFacts,
    policy: IncidentPolicy,
    *,
    templates: Path,
    now: datetime | None = None,
) -> str:
    """The draft notification to the supervisory authority (GDPR Art. 33(3)).

    ``templates`` is the runbooks directory or its ``notices/`` folder; ``now`` (default: the
    current time) decides whether the 72-hour deadline has passed, in which case the draft
    holds a place for the reasons for the delay (Art. 33(1)).
    """
    context = _context(facts, policy, now=now)
    return _render(templates, AUTHORITY_TEMPLATE, context)


def customer_notice(
    facts: NoticeFacts,
    policy: IncidentPolicy,
    *,
    templates: Path,
    customer_name: str | None,
    now: datetime | None = None,
) -> str:
    """The draft notice to one affected customer (GDPR Art. 34), in plain language.

    ``customer_name`` is data: it is cleaned of control characters, shortened to
    MAX_NAME_CHARS and printed as written (template syntax in it is not run).
    """
    context = _context(facts, policy, now=now)
    context["customer_name"] = _clean_name(customer_name)
    return _render(templates, CUSTOMER_TEMPLATE, context)


# --- facts for the templates --------------------------------------------------------------------


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    cleaned = " ".join(_CONTROL.sub(" ", name).split())[:MAX_NAME_CHARS].strip()
    return cleaned or None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _count(number: int, singular: str, plural: str | None = None) -> str:
    """``1 customer``, ``1,204 customers``."""
    word = singular if number == 1 else (plural or singular + "s")
    return f"{number:,} {word}"


def _words(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    listed = [str(item) for item in items]
    if len(listed) <= 1:
        return "".join(listed)
    return ", ".join(listed[:-1]) + " and " + listed[-1]


def _capfirst(text: str) -> str:
    """The text with its first character in upper case (the rest untouched)."""
    return text[:1].upper() + text[1:]


def _hours(value: timedelta) -> str:
    hours = int(abs(value.total_seconds()) // 3600)
    return _count(hours, "hour")


def _context(facts: NoticeFacts, policy: IncidentPolicy, *, now: datetime | None) -> dict[str, Any]:
    zone = ZoneInfo(policy.timezone)
    moment = _aware(now or datetime.now(UTC))
    aware_at = _aware(facts.became_aware_at)
    first = _aware(facts.first_event_at).astimezone(zone)
    last = _aware(facts.last_event_at).astimezone(zone)
    authority_due = aware_at + policy.authority_deadline
    individuals_due = aware_at + policy.individuals_deadline

    def stamp(value: datetime) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    def day(value: datetime) -> str:
        local = value.astimezone(zone)
        return f"{local.day} {local:%B %Y}"

    same_day = first.date() == last.date()
    return {
        "incident": {
            "id": facts.incident_id,
            "title": facts.title,
            "nature": facts.nature,
            "severity": facts.severity,
            "status": facts.status,
            "runbook": facts.runbook,
            "first_event": stamp(first),
            "last_event": stamp(last),
            "became_aware": stamp(aware_at),
            "first_day": day(first),
            "last_day": day(last),
            "aware_day": day(aware_at),
            "when": f"on {day(first)}" if same_day else f"between {day(first)} and {day(last)}",
            "contained": facts.status in CONTAINED_STATUSES,
            # data lost or altered rather than disclosed: encryption does not help
            "lost": facts.runbook in AVAILABILITY_RUNBOOKS,
        },
        "categories": list(data_categories(facts.entity_types)),
        "groups": list(data_groups(facts.entity_types)),
        "affected_customers": facts.affected_customers,
        "affected_records": facts.affected_records,
        "data_seen_in_clear": facts.data_seen_in_clear,
        "encrypted_at_rest": facts.encrypted_at_rest,
        "keys_exposed": facts.keys_exposed,
        "encryption_protects": facts.encryption_protects,
        "art34_exemption": art34_exemption(facts),
        "measures": list(facts.measures),
        "organisation": policy.organisation,
        "contact": {
            "name": policy.contact.name,
            "email": policy.contact.email,
            "phone": policy.contact.phone,
        },
        "supervisory_authority": policy.supervisory_authority,
        "timezone": policy.timezone,
        "deadline": {
            "authority": stamp(authority_due),
            "authority_hours": int(policy.authority_deadline.total_seconds() // 3600),
            "individuals": stamp(individuals_due),
            "individuals_days": policy.individuals_deadline.days,
            "late": moment > authority_due,
            "time_left": _hours(authority_due - moment),
        },
        "drafted_at": stamp(moment),
        "customer_name": None,
    }


# --- rendering ----------------------------------------------------------------------------------


def _notices_dir(templates: Path) -> Path:
    nested = templates / NOTICES_DIRNAME
    return nested if nested.is_dir() else templates


@functools.lru_cache(maxsize=8)
def _environment(directory: Path) -> SandboxedEnvironment:
    # one per folder: templates are parsed once and reloaded when their file changes
    environment = SandboxedEnvironment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        autoescape=False,  # plain text and Markdown drafts, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["words"] = _words
    environment.filters["capfirst"] = _capfirst
    environment.globals["count"] = _count
    return environment


_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _render(templates: Path, name: str, context: dict[str, Any]) -> str:
    directory = _notices_dir(templates)
    where = directory / name
    try:
        template = _environment(directory).get_template(name)
        return _tidy(template.render(context))
    except TemplateNotFound:
        raise RunbookError(f"{where}: no such notice template") from None
    except JinjaSyntaxError as exc:
        raise RunbookError(
            f"{where}:{exc.lineno}: template syntax error: {exc.message or 'invalid syntax'}"
        ) from None
    except TemplateError as exc:
        # undefined names and sandbox refusals: the message names a variable or attribute
        raise RunbookError(
            f"{where}: the template failed: {exc.message or type(exc).__name__}"
        ) from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise RunbookError(f"{where}: the template failed ({type(exc).__name__})") from None
    except OSError as exc:
        raise RunbookError(f"{where}: cannot read ({exc.strerror or type(exc).__name__})") from None
