"""The incident policy: who the notices name, the clocks, and how incidents are grouped.

``policies/incidents.yaml`` is validated with pydantic when it is loaded, and a mistake stops
start-up with a message naming the file and the field, e.g.
``policies/incidents.yaml: authority_deadline: at most 72h (GDPR Art. 33(1))``.

Durations are written as a number and a unit, or several: ``90s``, ``30m``, ``1h``, ``1h30m``,
``72h``, ``60d``, ``2w``. The deadlines may be shorter than the law's, never longer: 72 hours
for the supervisory authority (GDPR Art. 33(1)) and 60 days for individuals (HIPAA,
45 CFR 164.404(b)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from guard.errors import PolicyError
from guard.incidents.errors import IncidentPolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

INCIDENTS_FILENAME = "incidents.yaml"

#: The longest delay the law allows for telling the supervisory authority (GDPR Art. 33(1)).
MAX_AUTHORITY_DEADLINE = timedelta(hours=72)
#: The longest delay the law allows for telling individuals (HIPAA, 45 CFR 164.404(b)).
MAX_INDIVIDUALS_DEADLINE = timedelta(days=60)
#: A burst longer apart than this is a new incident whatever the policy says.
MAX_DEDUP_WINDOW = timedelta(days=7)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:[0-9]{1,6}[smhdw]){1,5}")
_DURATION_PART = re.compile(r"([0-9]{1,6})([smhdw])")
_RUNBOOK_NAME = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
# One address, no spaces or display name: the contact point printed in notices.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = rf"^[^@\s<>\"',;]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"
_PHONE = r"^\+?[0-9][0-9 ()./-]{4,30}$"


def parse_duration(value: str) -> timedelta:
    """``1h30m`` as a timedelta; ValueError for anything else (no sign, no fractions)."""
    text = value.strip()
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration such as 30m, 1h, 72h or 60d, not {value!r}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError("the duration must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A timedelta in the policy file's notation, largest units first: ``3d``, ``1h30m``."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name such as UTC or Europe/London)"
        ) from None
    return value


def _at_most(limit: timedelta, shown: str, reason: str) -> AfterValidator:
    def check(value: str) -> str:
        if parse_duration(value) > limit:
            raise ValueError(f"at most {shown} ({reason})")
        return value

    return AfterValidator(check)


def _one_line(value: str) -> str:
    if any(ch in value for ch in "\r\n\t") or value != value.strip():
        raise ValueError("one line of text, without leading or trailing spaces")
    return value


Duration = Annotated[str, Field(min_length=2, max_length=32), AfterValidator(_duration)]
Line = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]


class ContactSpec(BaseModel):
    """The data protection officer or other contact point (GDPR Art. 33(3)(b))."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Line
    email: Annotated[str, Field(max_length=254, pattern=_EMAIL)]
    phone: Annotated[str, Field(pattern=_PHONE)] | None = None


class IncidentPolicyFile(BaseModel):
    """The whole of ``policies/incidents.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    organisation: Line
    contact: ContactSpec
    supervisory_authority: Line
    timezone: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_time_zone)]
    dedup_window: Annotated[
        Duration, _at_most(MAX_DEDUP_WINDOW, "7d", "a longer gap is a new incident")
    ]
    authority_deadline: Annotated[
        Duration, _at_most(MAX_AUTHORITY_DEADLINE, "72h", "GDPR Art. 33(1)")
    ]
    individuals_deadline: Annotated[
        Duration, _at_most(MAX_INDIVIDUALS_DEADLINE, "60d", "HIPAA, 45 CFR 164.404(b)")
    ]
    default_runbook: Annotated[str, Field(max_length=64, pattern=_RUNBOOK_NAME)]


@dataclass(frozen=True, slots=True)
class Contact:
    """Who the supervisory authority and customers can reach about an incident."""

    name: str
    email: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """The validated incident policy (see the module docstring for the file)."""

    organisation: str
    #: The data protection officer / contact point (GDPR Art. 33(3)(b)).
    contact: Contact
    #: Named in the authority notice, e.g. "the Information Commissioner's Office".
    supervisory_authority: str
    #: IANA time zone: the rules' ``hour`` / ``weekday`` and the times printed in notices.
    timezone: str
    #: A hit for the same rule and group within this of the incident's last event updates it.
    dedup_window: timedelta
    #: Time to notify the supervisory authority from becoming aware (GDPR Art. 33(1)).
    authority_deadline: timedelta
    #: Time to notify individuals from becoming aware (HIPAA, 45 CFR 164.404(b)).
    individuals_deadline: timedelta
    #: The runbook of an incident whose rule names none (or one that does not exist).
    default_runbook: str


def parse_incident_policy(
    data: object,
    *,
    source: str = "incident policy",
    runbooks: Collection[str] | None = None,
) -> IncidentPolicy:
    """Validate already-parsed policy data; ``runbooks``, when given, must name the default."""
    try:
        spec = IncidentPolicyFile.model_validate(data)
    except ValidationError as exc:
        raise IncidentPolicyError(describe_validation_error(source, exc)) from None
    if runbooks is not None and spec.default_runbook not in runbooks:
        known = ", ".join(sorted(runbooks)) or "none"
        raise IncidentPolicyError(
            f"{source}: default_runbook: no runbook {spec.default_runbook!r} (runbooks: {known})"
        )
    return IncidentPolicy(
        organisation=spec.organisation,
        contact=Contact(name=spec.contact.name, email=spec.contact.email, phone=spec.contact.phone),
        supervisory_authority=spec.supervisory_authority,
        timezone=spec.timezone,
        dedup_window=parse_duration(spec.dedup_window),
        authority_deadline=parse_duration(spec.authority_deadline),
        individuals_deadline=parse_duration(spec.individuals_deadline),
        default_runbook=spec.default_runbook,
    )


def load_incident_policy(path: Path, *, runbooks: Collection[str] | None = None) -> IncidentPolicy:
    """Read and validate ``policies/incidents.yaml``; IncidentPolicyError names the field."""
    try:
        data = read_policy_yaml(path)
    except PolicyError as exc:
        raise IncidentPolicyError(exc.message) from None
    return parse_incident_policy(data, source=str(path), runbooks=runbooks)
