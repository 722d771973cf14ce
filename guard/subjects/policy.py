"""The two policy files behind subject rights and retention.

``policies/retention.yaml``: how long each kind of data is kept, per tenant (``default``
applies to every tenant; a tenant's entry overrides it kind by kind). A kind left out, or set
to ``null``, is kept until someone erases it. Kinds:

    notes             a record's notes, from when they were last written (``keep_days``)
    records           a whole record once inactive, i.e. not updated (``erase_inactive_months``)
    audit             audit events, from when they were written (``keep_years``)
    subject_packages  an access request's encrypted package, from when it was made (``keep_days``)

A zero period removes everything of that kind at once; the policy allows it, but
:func:`zero_rules` lists such rules so that the commands that apply them can insist on an
explicit confirmation.

``policies/processing.yaml``: what cannot be read off the configuration: who the controller
is and how to reach them, and why data is processed (each purpose with its lawful basis under
GDPR Art. 6(1) and the record fields and other data it uses). The record of processing, the
privacy notice and the cover letter of an access package are made from these two files and the
other policies, so they are always true to the configuration.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.errors import PolicyError
from guard.policyfiles import describe_validation_error, read_policy_yaml
from guard.records.models import ENCRYPTED_FIELDS

if TYPE_CHECKING:
    from pathlib import Path

RETENTION_FILENAME = "retention.yaml"
PROCESSING_FILENAME = "processing.yaml"

RetentionKind = Literal["notes", "records", "audit", "subject_packages"]
RETENTION_KINDS: tuple[RetentionKind, ...] = ("notes", "records", "audit", "subject_packages")
#: The unit each kind's period is written in.
RETENTION_UNITS: dict[RetentionKind, str] = {
    "notes": "days",
    "records": "months",
    "audit": "years",
    "subject_packages": "days",
}
#: Record fields a purpose may name (``notes_redacted`` is a copy of ``notes``).
RECORD_FIELDS: tuple[str, ...] = tuple(f for f in ENCRYPTED_FIELDS if f != "notes_redacted")
#: Data other than record fields a purpose may name.
OTHER_DATA: tuple[str, ...] = ("audit", "exports", "tool_calls", "messages")
LawfulBasis = Literal[
    "consent", "contract", "legal_obligation", "vital_interests", "public_task",
    "legitimate_interests",
]  # fmt: skip
#: GDPR Art. 6(1) point of each lawful basis.
LAWFUL_BASIS_ARTICLE: dict[str, str] = {
    "consent": "Art. 6(1)(a)",
    "contract": "Art. 6(1)(b)",
    "legal_obligation": "Art. 6(1)(c)",
    "vital_interests": "Art. 6(1)(d)",
    "public_task": "Art. 6(1)(e)",
    "legitimate_interests": "Art. 6(1)(f)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NotesRule(_Strict):
    """Notes are kept this many days after they were last written."""

    keep_days: int = Field(ge=0, le=365 * 100)


class RecordsRule(_Strict):
    """A record is erased once not updated for this many months."""

    erase_inactive_months: int = Field(ge=0, le=12 * 100)


class AuditRule(_Strict):
    """Audit events are kept this many years."""

    keep_years: int = Field(ge=0, le=100)


class PackagesRule(_Strict):
    """An access package is kept this many days after it was made."""

    keep_days: int = Field(ge=0, le=3650)


class RetentionRules(_Strict):
    """One tenant's (or the default) periods; ``None``: kept until erased."""

    notes: NotesRule | None = None
    records: RecordsRule | None = None
    audit: AuditRule | None = None
    subject_packages: PackagesRule | None = None


class RetentionSpec(_Strict):
    """The whole of ``policies/retention.yaml``."""

    version: Literal[1]
    default: RetentionRules = RetentionRules()
    tenants: dict[str, RetentionRules] = Field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    """One kind's retention for one tenant: ``amount`` ``unit`` (days, months or years)."""

    kind: RetentionKind
    amount: int
    unit: str

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{self.amount} {unit}"

    def in_words(self) -> str:
        """The period as a customer would say it: 365 days is "1 year", 36 months "3 years"."""
        amount, unit = self.amount, self.unit
        # whole years read better than 730 days; other day counts stay as written
        if unit == "days" and amount >= 365 and amount % 365 == 0:  # noqa: PLR2004 - a year
            amount, unit = amount // 365, "years"
        elif unit == "months" and amount >= 12 and amount % 12 == 0:  # noqa: PLR2004 - a year
            amount, unit = amount // 12, "years"
        return f"{amount} {unit[:-1] if amount == 1 else unit}"


class RetentionPolicy:
    """Retention periods per tenant and kind, resolved against the default."""

    def __init__(self, spec: RetentionSpec, *, sha256: str) -> None:
        self.spec = spec
        #: sha256 of the canonical policy (what a retention run records it applied).
        self.sha256 = sha256

    def period(self, tenant: str, kind: RetentionKind) -> Period | None:
        """How long ``tenant`` keeps ``kind``; None: until erased."""
        own = self.spec.tenants.get(tenant)
        rules = own if own is not None and kind in own.model_fields_set else self.spec.default
        rule = getattr(rules, kind)
        if rule is None:
            return None
        amount = next(iter(rule.model_dump().values()))
        return Period(kind=kind, amount=amount, unit=RETENTION_UNITS[kind])

    def periods(self, tenant: str) -> dict[RetentionKind, Period | None]:
        """Every kind's period for ``tenant``."""
        return {kind: self.period(tenant, kind) for kind in RETENTION_KINDS}

    def named_tenants(self) -> tuple[str, ...]:
        """Tenants with their own entry (every other tenant follows the default)."""
        return tuple(sorted(self.spec.tenants))

    def zero_rules(self) -> list[tuple[str, RetentionKind]]:
        """(tenant or ``default``, kind) of every zero period: they remove everything at once."""
        found: list[tuple[str, RetentionKind]] = []
        scopes = {"default": self.spec.default, **self.spec.tenants}
        for scope, rules in scopes.items():
            for kind in RETENTION_KINDS:
                rule = getattr(rules, kind)
                if rule is not None and next(iter(rule.model_dump().values())) == 0:
                    found.append((scope, kind))
        return found


def load_retention_policy(path: Path) -> RetentionPolicy:
    """Load and validate ``policies/retention.yaml``; a PolicyError names the file and entry."""
    raw = read_policy_yaml(path)
    try:
        spec = RetentionSpec.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(describe_validation_error(path, exc)) from None
    return RetentionPolicy(spec, sha256=_sha256(spec))


class Controller(_Strict):
    """Who decides why and how data is processed, and how a customer reaches them."""

    name: str = Field(min_length=1, max_length=200)
    contact: str = Field(min_length=3, max_length=200)
    #: The data protection officer's contact, where one is appointed.
    dpo: str | None = Field(default=None, min_length=3, max_length=200)
    #: The supervisory authority a customer may complain to.
    authority: str | None = Field(default=None, min_length=3, max_length=200)


class Purpose(_Strict):
    """One reason data is processed, its lawful basis and the data it uses."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    #: For the record of processing (officers, authorities).
    description: str = Field(min_length=1, max_length=500)
    #: For customers: one short sentence ("to answer you when you contact us").
    plain: str = Field(min_length=1, max_length=300)
    lawful_basis: LawfulBasis
    #: Record fields (``full_name``, ``notes`` ...) and other data (``audit``, ``exports``,
    #: ``tool_calls``, ``messages``) this purpose uses.
    data: tuple[str, ...] = Field(min_length=1)
    #: Export purposes (``purpose:`` in policies/exports) that serve this purpose.
    export_purposes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known_data(self) -> Purpose:
        unknown = sorted(set(self.data) - set(RECORD_FIELDS) - set(OTHER_DATA))
        if unknown:
            known = ", ".join((*RECORD_FIELDS, *OTHER_DATA))
            raise ValueError(f"unknown data {', '.join(unknown)} (known: {known})")
        return self


class ProcessingSpec(_Strict):
    """The whole of ``policies/processing.yaml``."""

    version: Literal[1]
    controller: Controller
    #: A tenant that is its own controller (a client company) overrides ``controller``.
    tenants: dict[str, Controller] = Field(default_factory=dict)
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    #: Transfers outside the EEA, and their safeguard; empty: none.
    transfers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique_purposes(self) -> ProcessingSpec:
        ids = [purpose.id for purpose in self.purposes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"purpose ids must be unique: {', '.join(duplicates)}")
        return self


class ProcessingPolicy:
    """The controller and purposes of processing (``policies/processing.yaml``)."""

    def __init__(self, spec: ProcessingSpec, *, sha256: str) -> None:
        self.spec = spec
        self.sha256 = sha256

    def controller(self, tenant: str) -> Controller:
        """The controller for ``tenant`` (its own entry, else the default)."""
        return self.spec.tenants.get(tenant, self.spec.controller)

    @property
    def purposes(self) -> tuple[Purpose, ...]:
        """Every purpose, in the file's order."""
        return self.spec.purposes

    def purposes_for(self, data: str) -> tuple[Purpose, ...]:
        """The purposes that use ``data`` (a record field or other data)."""
        return tuple(p for p in self.spec.purposes if data in p.data)


def load_processing_policy(path: Path) -> ProcessingPolicy:
    """Load and validate ``policies/processing.yaml``; a PolicyError names the file and entry."""
    raw = read_policy_yaml(path)
    try:
        spec = ProcessingSpec.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(describe_validation_error(path, exc)) from None
    return ProcessingPolicy(spec, sha256=_sha256(spec))


def _sha256(spec: BaseModel) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
