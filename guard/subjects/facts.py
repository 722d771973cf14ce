"""The facts of processing, collected once from the live policies and settings.

The record of processing (:mod:`guard.subjects.ropa`), the privacy notice
(:mod:`guard.subjects.notice`) and the cover letter of an access package
(:mod:`guard.subjects.letter`) are written from these facts alone, so the three never disagree
with each other or with the configuration: change a policy and every document changes with it.

Each fact carries its :class:`Source`: the policy file it came from and that file's sha256 (what
``sha256sum`` prints), plus the canonical hash the loader computes where it has one (what
retention runs and export manifests record). Facts that come from settings and from guard's own
code (encryption, keys, audit) name ``settings`` as their source, hashed over the settings they
read (never a secret: only whether one is set). Nothing here reads the clock, the database or a
secret, so the same policies and settings give byte-identical documents.

Every policy is read through its own capability's loader and validated as it is at start-up:
views (:mod:`guard.records.views`), access (Casbin, through
:class:`~guard.access.enforcer.AccessControl`), redaction (:mod:`guard.redaction.policy`), tools
(:mod:`guard.proxy.policy`), export profiles (:mod:`guard.export.profile`), retention and
processing (:mod:`guard.subjects.policy`). A broken
policy is a :class:`~guard.errors.PolicyError` naming the file, as it would be at start-up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Final, Literal

from guard.access.enforcer import MODEL_FILE, POLICY_FILE, AccessControl
from guard.access.permissions import (
    ALL_PERMISSIONS,
    RECORDS_READ,
    RECORDS_REVEAL,
    TOOLS_CALL,
    Permission,
    tool,
)
from guard.access.principals import ROLES, Principal, validate_tenant
from guard.crypto.envelope import DATA_KEY_BYTES
from guard.crypto.keyring import SCRYPT_N, SCRYPT_P, SCRYPT_R
from guard.export.profile import EXPORTS_DIRNAME, load_profiles
from guard.proxy.policy import TOOLS_FILENAME, HttpUpstream, load_tool_policy
from guard.records.models import BLIND_INDEXES
from guard.records.views import VIEW_FIELDS, VIEWS_FILENAME, load_view_policy
from guard.redaction.policy import CHANNELS, POLICY_FILENAME, load_redaction_policy
from guard.subjects.policy import (
    LAWFUL_BASIS_ARTICLE,
    OTHER_DATA,
    PROCESSING_FILENAME,
    RECORD_FIELDS,
    RETENTION_FILENAME,
    RETENTION_KINDS,
    Period,
    RetentionKind,
    load_processing_policy,
    load_retention_policy,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from guard.config import Settings
    from guard.export.profile import ExportProfile
    from guard.proxy.policy import ToolPolicy
    from guard.records.views import ViewPolicy
    from guard.redaction.operators import Operator
    from guard.redaction.policy import ChannelRules, RedactionPolicy

#: The tenant whose Casbin decisions the default document shows: only ``*`` lines match it (a
#: real tenant with lines of its own gets its own document with ``--tenant``).
DEFAULT_SCOPE: Final = "default"
#: The principal id the Casbin questions are asked for (no request, nothing audited).
_ASKING: Final = "compliance-document"
SETTINGS_SOURCE: Final = "settings"
#: Field metadata: (name, value) pairs, written as a JSON object.
PAIRS: Final = {"json": "object"}

#: Record fields and other data: (words for the record of processing, words for customers).
DATA_WORDS: Final[dict[str, tuple[str, str]]] = {
    "full_name": ("Full name", "your name"),
    "email": ("Email address", "your email address"),
    "phone": ("Phone number", "your phone number"),
    "postal_address": ("Postal address", "your postal address"),
    "date_of_birth": ("Date of birth", "your date of birth"),
    "account": ("Account data (account id and account attributes)", "your account details"),
    "notes": (
        "Notes written by staff (the full text, and a copy with personal data redacted)",
        "notes our team wrote when you contacted us",
    ),
    "extra": ("Other attributes held with the record", "other details we keep with your account"),
    "audit": (
        (
            "Audit trail: who accessed or changed a customer's data, when and why (customers "
            "appear as keyed hashes; entity types are counted, values never stored)"
        ),
        "a record of who looked at or changed your details, when, and why",
    ),
    "tool_calls": (
        (
            "Tool calls: customer data looked up in, or sent to, systems of record through guard's "
            "tool proxy (passed through and redacted per role; only the audit event is kept)"
        ),
        "what our support tools look up about you in our other systems (we keep no copy)",
    ),
    "messages": (
        (
            "Outgoing messages and notes, checked before they are sent (another customer's data "
            "or a secret blocks them; only the audit event is kept)"
        ),
        "the messages we send you, which are checked before they go (we keep no copy)",
    ),
    "exports": (
        (
            "Analytics exports made through the profiles in policies/exports (a manifest with "
            "counts and checksums is kept)"
        ),
        "copies of your data that we use to improve our service",
    ),
}

#: Roles: (words for the record of processing, words for customers).
ROLE_WORDS: Final[dict[str, tuple[str, str]]] = {
    "agent": ("Support agents, people and AI agents", "our support agents"),
    "supervisor": ("Supervisors of support agents", "our team leaders"),
    "compliance_officer": ("Compliance officers", "our privacy officers"),
    "analyst": ("Data and analytics team", "our data analysts"),
    "admin": ("Administrators", "our system administrators"),
}

#: Kinds of retained data: (words for the record of processing, words for customers).
RETENTION_WORDS: Final[dict[str, tuple[str, str]]] = {
    "notes": ("Notes, from when they were last written", "notes about you"),
    "records": ("Whole customer record, once not updated", "your details"),
    "audit": ("Audit events, from when they were written", "the record of who looked at them"),
    "subject_packages": (
        "Access packages (encrypted), from when they were made",
        "copies of your data we prepare when you ask for them",
    ),
}

#: GDPR Art. 6(1) lawful bases, in words a customer understands.
LAWFUL_BASIS_WORDS: Final[dict[str, str]] = {
    "consent": "because you agreed to it, and you can change your mind at any time",
    "contract": "because we need it to give you the service you asked for",
    "legal_obligation": "because the law requires us to",
    "vital_interests": "to protect someone's life or health",
    "public_task": "to carry out a task in the public interest",
    "legitimate_interests": (
        "because we have a good reason to, and we have checked that it is fair to you"
    ),
}


@dataclass(frozen=True, slots=True)
class Source:
    """Where facts came from: a file under ``policies/`` (or ``settings``) and its hashes."""

    file: str
    #: sha256 of the file's bytes (``sha256sum policies/<file>``); for ``settings``, of the
    #: canonical JSON of the settings the facts read.
    sha256: str
    #: sha256 of the loader's canonical form, where it has one (retention runs and export
    #: manifests record this one).
    policy_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ControllerFacts:
    """Who decides why and how data is processed, and how a customer reaches them."""

    name: str
    contact: str
    dpo: str | None
    authority: str | None
    #: Whether the tenant has its own entry (else the default controller applies).
    own_entry: bool
    source: Source


@dataclass(frozen=True, slots=True)
class PurposeFacts:
    """One purpose of processing with its lawful basis and the data it uses."""

    id: str
    description: str
    plain: str
    lawful_basis: str
    #: The GDPR Art. 6(1) point, e.g. ``Art. 6(1)(b)``.
    article: str
    data: tuple[str, ...]
    export_purposes: tuple[str, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class SubjectCategory:
    """A category of data subjects."""

    id: str
    label: str
    source: Source


@dataclass(frozen=True, slots=True)
class DataCategory:
    """A category of personal data: a record field or other data guard handles."""

    id: str
    kind: Literal["record_field", "other"]
    label: str
    plain: str
    #: How guard holds it.
    stored: str
    #: Ids of the purposes that use it.
    purposes: tuple[str, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class FieldAccess:
    """What one role sees of one record field (``views.yaml``, given its permissions)."""

    field: str
    #: clear, masked, pseudonym, redacted or hidden.
    mode: str
    keep_last: int | None = None


@dataclass(frozen=True, slots=True)
class RoleFacts:
    """One role: what it sees of a record, what it may do, which tools it calls."""

    role: str
    label: str
    plain: str
    #: ``records:read``: without it the role sees no field, whatever its view says.
    reads_records: bool
    #: ``records:reveal``: the full record in clear, with a stated reason, audited.
    reveals_records: bool
    #: ``subjects:package``: decrypts a customer's whole record to answer an access request.
    makes_packages: bool
    fields: tuple[FieldAccess, ...]
    #: Every permission the role holds in this tenant (``object:action``), sorted.
    permissions: tuple[str, ...]
    #: Tools it may call (Casbin allows the call and tools.yaml gives it a view).
    tools: tuple[str, ...]
    views_source: Source
    access_source: Source

    def access(self, field: str) -> FieldAccess:
        """What the role sees of ``field``."""
        return next(a for a in self.fields if a.field == field)


@dataclass(frozen=True, slots=True)
class OperatorFacts:
    """One redaction rule: the entity type (or ``default``), operator and parameters."""

    entity: str
    operator: str
    params: tuple[tuple[str, str | int | bool], ...] = field(metadata=PAIRS)


@dataclass(frozen=True, slots=True)
class RedactionChannelFacts:
    """What one channel (message, note, export) does to each detected entity type."""

    channel: str
    default: OperatorFacts
    entities: tuple[OperatorFacts, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    """How long one scope (a tenant, or ``default``) keeps one kind of data."""

    scope: str
    kind: RetentionKind
    #: None: kept until erased.
    period: Period | None
    source: Source


@dataclass(frozen=True, slots=True)
class ExportColumnFacts:
    """What an export profile does to one column."""

    column: str
    action: str
    params: tuple[tuple[str, str | int | float | bool], ...] = field(metadata=PAIRS)


@dataclass(frozen=True, slots=True)
class KAnonymityFacts:
    """Quasi-identifiers that must be shared by at least ``k`` rows."""

    quasi_identifiers: tuple[str, ...]
    k: int
    on_violation: str


@dataclass(frozen=True, slots=True)
class ExportProfileFacts:
    """One export profile: its purpose, its columns and what leaves in clear."""

    name: str
    description: str
    purpose: str
    #: Purposes of processing (processing.yaml) this export purpose serves.
    serves: tuple[str, ...]
    columns: tuple[ExportColumnFacts, ...]
    unknown_columns: str
    tokens: bool
    k_anonymity: KAnonymityFacts | None
    #: Columns kept as they are whose name says they hold personal data (the redaction
    #: policy's field names): they leave in clear.
    clear_identifiers: tuple[str, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class ToolRoleFacts:
    """What one role gets back from one tool."""

    role: str
    #: (JSON pointer, action) in rule order.
    fields: tuple[tuple[str, str], ...] = field(metadata=PAIRS)
    other_strings: str
    channel: str


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """One tool: what it sends to its upstream and what each role gets back."""

    name: str
    description: str
    #: Argument names sent upstream.
    sends: tuple[str, ...]
    #: Whether the tool sends data out (its arguments are checked like a message).
    sends_data: bool
    customer_argument: str | None
    roles: tuple[ToolRoleFacts, ...]


@dataclass(frozen=True, slots=True)
class ProcessorFacts:
    """A system of record guard's tool proxy calls (``tools.yaml`` upstreams)."""

    name: str
    kind: str
    #: ``https`` or ``http``: whether data travels encrypted to it.
    transport: str
    tools: tuple[ToolFacts, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class SecurityMeasure:
    """One technical or organisational measure (GDPR Art. 32)."""

    id: str
    title: str
    text: str
    source: Source


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the record of processing, the notice and the cover letter say."""

    #: The tenant the facts are for; None: the default (every tenant without its own entries).
    tenant: str | None
    guard_version: str
    controller: ControllerFacts
    #: Tenants with their own entries in processing.yaml or retention.yaml.
    tenants_with_own_entries: tuple[str, ...]
    purposes: tuple[PurposeFacts, ...]
    data_subjects: tuple[SubjectCategory, ...]
    personal_data: tuple[DataCategory, ...]
    roles: tuple[RoleFacts, ...]
    redaction: tuple[RedactionChannelFacts, ...]
    #: This tenant's periods (the default document: the default's, then each named tenant's).
    retention: tuple[RetentionFacts, ...]
    exports: tuple[ExportProfileFacts, ...]
    processors: tuple[ProcessorFacts, ...]
    transfers: tuple[str, ...]
    transfers_source: Source
    security: tuple[SecurityMeasure, ...]
    sources: tuple[Source, ...]

    @property
    def scope(self) -> str:
        """The tenant, or ``default``."""
        return self.tenant or DEFAULT_SCOPE

    def period(self, kind: RetentionKind) -> Period | None:
        """How long this document's scope keeps ``kind``."""
        return next(r.period for r in self.retention if r.scope == self.scope and r.kind == kind)


# --- collecting -----------------------------------------------------------------------------


def _file_source(path: Path, name: str, policy_sha256: str | None = None) -> Source:
    return Source(
        file=name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        policy_sha256=policy_sha256,
    )


def _read_source(policies: Path, name: str, policy_sha256: str | None = None) -> Source:
    from guard.errors import PolicyError  # noqa: PLC0415 - only on this path

    path = policies / name
    try:
        return _file_source(path, name, policy_sha256)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _version() -> str:
    try:
        return metadata.version("confidentiality-guard")
    except metadata.PackageNotFoundError:  # pragma: no cover - a checkout without install
        return "unknown"


def collect_facts(settings: Settings, *, tenant: str | None = None) -> Facts:
    """The facts for ``tenant`` (None: the default every tenant without its own entries gets).

    A tenant with no entry of its own anywhere gets the default controller and periods: that
    is what guard applies to it. A malformed tenant name is an InvalidInputError.
    """
    if tenant is not None:
        validate_tenant(tenant)
    scope = tenant or DEFAULT_SCOPE
    policies = settings.policies_dir

    processing = load_processing_policy(policies / PROCESSING_FILENAME)
    retention = load_retention_policy(policies / RETENTION_FILENAME)
    processing_source = _read_source(policies, PROCESSING_FILENAME, processing.sha256)
    retention_source = _read_source(policies, RETENTION_FILENAME, retention.sha256)

    views = load_view_policy(policies / VIEWS_FILENAME)
    views_source = _read_source(policies, VIEWS_FILENAME)
    access = AccessControl(settings)
    # model.conf and policy.csv decide together; the grants a role holds are in policy.csv
    access_source = _read_source(policies, POLICY_FILE)
    model_source = _read_source(policies, MODEL_FILE)
    redaction = load_redaction_policy(policies / POLICY_FILENAME)
    redaction_source = _read_source(policies, POLICY_FILENAME)
    tools = load_tool_policy(policies / TOOLS_FILENAME, roles=ROLES)
    tools_source = _read_source(policies, TOOLS_FILENAME)
    profiles = load_profiles(policies)
    settings_facts = _settings_facts(settings)
    settings_source = Source(
        file=SETTINGS_SOURCE,
        sha256=hashlib.sha256(_canonical(settings_facts).encode("utf-8")).hexdigest(),
    )

    controller = processing.spec.controller if tenant is None else processing.controller(tenant)
    purposes = tuple(
        PurposeFacts(
            id=p.id,
            description=p.description,
            plain=p.plain,
            lawful_basis=p.lawful_basis,
            article=LAWFUL_BASIS_ARTICLE[p.lawful_basis],
            data=p.data,
            export_purposes=p.export_purposes,
            source=processing_source,
        )
        for p in processing.purposes
    )
    roles = tuple(
        _role_facts(role, scope, access, views, tools, views_source, access_source)
        for role in ROLES
    )
    exports = tuple(
        _export_facts(profile, purposes, redaction, policies) for profile in profiles.values()
    )
    named = sorted(set(processing.spec.tenants) | set(retention.named_tenants()))
    scopes = (scope,) if tenant is not None else (DEFAULT_SCOPE, *retention.named_tenants())
    return Facts(
        tenant=tenant,
        guard_version=_version(),
        controller=ControllerFacts(
            name=controller.name,
            contact=controller.contact,
            dpo=controller.dpo,
            authority=controller.authority,
            own_entry=tenant is not None and tenant in processing.spec.tenants,
            source=processing_source,
        ),
        tenants_with_own_entries=tuple(named),
        purposes=purposes,
        data_subjects=_data_subjects(processing_source, settings_source),
        personal_data=_personal_data(purposes, processing_source),
        roles=roles,
        redaction=tuple(
            _channel_facts(channel, redaction.rules_for(channel), redaction_source)
            for channel in CHANNELS
        ),
        retention=tuple(
            RetentionFacts(
                scope=name,
                kind=kind,
                period=retention.period(name, kind),
                source=retention_source,
            )
            for name in scopes
            for kind in RETENTION_KINDS
        ),
        exports=exports,
        processors=_processor_facts(tools, tools_source, roles),
        transfers=processing.spec.transfers,
        transfers_source=processing_source,
        security=_security_measures(settings_facts, settings_source),
        sources=(
            processing_source,
            retention_source,
            views_source,
            access_source,
            model_source,
            redaction_source,
            tools_source,
            *(e.source for e in exports),
            settings_source,
        ),
    )


def _data_subjects(processing: Source, settings: Source) -> tuple[SubjectCategory, ...]:
    return (
        SubjectCategory(
            id="customers",
            label=(
                "Customers who contact customer service (the people customer records are "
                "about), and people named in their notes and messages"
            ),
            source=processing,
        ),
        SubjectCategory(
            id="staff",
            label=(
                "Staff and AI agents who use guard: their principal id, role and tenant, in "
                "the audit trail"
            ),
            source=settings,
        ),
    )


_STORED: Final[dict[str, str]] = {
    "audit": "audit events in a hash-chained table; customers as keyed hashes, no values",
    "tool_calls": "not stored (passed through the tool proxy); the audit event only",
    "messages": "not stored (checked, redacted or blocked); the audit event only",
    "exports": "not stored by guard (written to the requested output); the manifest only",
}


def _personal_data(purposes: tuple[PurposeFacts, ...], source: Source) -> tuple[DataCategory, ...]:
    categories = []
    for data in (*RECORD_FIELDS, *OTHER_DATA):
        label, plain = DATA_WORDS[data]
        is_field = data in RECORD_FIELDS
        stored = "encrypted (AES-256-GCM under the customer's data key)"
        if data in BLIND_INDEXES:
            stored += ", with an HMAC blind index for exact-match search"
        categories.append(
            DataCategory(
                id=data,
                kind="record_field" if is_field else "other",
                label=label,
                plain=plain,
                stored=stored if is_field else _STORED[data],
                purposes=tuple(p.id for p in purposes if data in p.data),
                source=source,
            )
        )
    return tuple(categories)


def _role_facts(
    role: str,
    scope: str,
    access: AccessControl,
    views: ViewPolicy,
    tools: ToolPolicy,
    views_source: Source,
    access_source: Source,
) -> RoleFacts:
    principal = Principal(id=_ASKING, name=_ASKING, role=role, tenant=scope, kind="api_key")

    def allowed(permission: Permission) -> bool:
        return access.enforce(principal, permission).allowed

    tool_permissions = [tool(name) for name in tools.tools]
    held = [p for p in (*ALL_PERMISSIONS, *tool_permissions) if allowed(p)]
    reads = RECORDS_READ in held
    view = views.view_for(role)
    fields = []
    for name in VIEW_FIELDS:
        rule = view.rule(name)
        # a view the role cannot use shows nothing: Casbin refuses the read first
        mode = rule.mode if reads else "hidden"
        keep_last = rule.mask.keep_last if mode == "masked" and rule.mask is not None else None
        fields.append(FieldAccess(field=name, mode=mode, keep_last=keep_last))
    callable_tools = tuple(
        name
        for name, spec in tools.tools.items()
        if role in spec.views and TOOLS_CALL in held and tool(name) in held
    )
    label, plain = ROLE_WORDS[role]
    return RoleFacts(
        role=role,
        label=label,
        plain=plain,
        reads_records=reads,
        reveals_records=RECORDS_REVEAL in held,
        makes_packages=Permission("package", "subjects") in held,
        fields=tuple(fields),
        permissions=tuple(sorted(str(p) for p in held)),
        tools=callable_tools,
        views_source=views_source,
        access_source=access_source,
    )


def _operator_facts(entity: str, operator: Operator) -> OperatorFacts:
    params = operator.params.model_dump(mode="json")
    return OperatorFacts(
        entity=entity,
        operator=operator.name,
        params=tuple(sorted((k, v) for k, v in params.items() if v is not None)),
    )


def _channel_facts(channel: str, rules: ChannelRules, source: Source) -> RedactionChannelFacts:
    return RedactionChannelFacts(
        channel=channel,
        default=_operator_facts("default", rules.default),
        entities=tuple(_operator_facts(e, op) for e, op in sorted(rules.entities.items())),
        source=source,
    )


def _export_facts(
    profile: ExportProfile,
    purposes: tuple[PurposeFacts, ...],
    redaction: RedactionPolicy,
    policies: Path,
) -> ExportProfileFacts:
    spec = profile.spec
    columns = tuple(
        ExportColumnFacts(
            column=column,
            action=rule.action,
            params=tuple(sorted((k, _scalar(v)) for k, v in rule.parameters().items())),
        )
        for column, rule in spec.columns.items()
    )
    clear = tuple(
        c.column
        for c in columns
        if c.action == "keep"
        and (c.column in RECORD_FIELDS or redaction.entity_type_for_field(c.column) is not None)
    )
    name = f"{EXPORTS_DIRNAME}/{profile.name}.yaml"
    k_anon = spec.k_anonymity
    return ExportProfileFacts(
        name=profile.name,
        description=spec.description,
        purpose=spec.purpose,
        serves=tuple(p.id for p in purposes if spec.purpose in p.export_purposes),
        columns=columns,
        unknown_columns=spec.unknown_columns,
        tokens=spec.tokens,
        k_anonymity=None
        if k_anon is None
        else KAnonymityFacts(tuple(k_anon.quasi_identifiers), k_anon.k, k_anon.on_violation),
        clear_identifiers=clear,
        source=_read_source(policies, name, profile.sha256),
    )


def _scalar(value: object) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else str(value)


def _processor_facts(
    tools: ToolPolicy, source: Source, roles: tuple[RoleFacts, ...]
) -> tuple[ProcessorFacts, ...]:
    callers = {r.role: set(r.tools) for r in roles}
    processors = []
    for name, upstream in tools.upstreams.items():
        url = upstream.base_url if isinstance(upstream, HttpUpstream) else upstream.url
        flows = []
        for spec in tools.tools.values():
            if spec.upstream.upstream.name != name:
                continue
            properties = spec.input_schema.get("properties", {})
            flows.append(
                ToolFacts(
                    name=spec.name,
                    description=spec.description,
                    sends=tuple(properties) if isinstance(properties, dict) else (),
                    sends_data=spec.sends_data,
                    customer_argument=spec.customer_argument,
                    roles=tuple(
                        ToolRoleFacts(
                            role=role,
                            fields=tuple((f.pointer, f.action) for f in view.fields),
                            other_strings=view.other_strings,
                            channel=view.channel,
                        )
                        for role, view in spec.views.items()
                        if spec.name in callers.get(role, set())
                    ),
                )
            )
        processors.append(
            ProcessorFacts(
                name=name,
                kind="http" if isinstance(upstream, HttpUpstream) else "mcp",
                transport="https" if url.lower().startswith("https://") else "http",
                tools=tuple(flows),
                source=source,
            )
        )
    return tuple(processors)


# --- settings and security measures ---------------------------------------------------------


def _settings_facts(settings: Settings) -> dict[str, str | int | float | bool]:
    """The settings the security measures describe; whether a secret is set, never its value."""
    return {
        "env": settings.env,
        "key_provider": settings.key_provider,
        "master_key_set": settings.master_key is not None,
        "keyring_passphrase_set": settings.keyring_passphrase is not None,
        "jwt_configured": any(
            (settings.jwt_secret, settings.jwt_public_key_file, settings.jwt_jwks_file)
        ),
        "jwt_algorithms": ", ".join(sorted(settings.jwt_algorithms)),
        "auth_failure_limit": settings.auth_failure_limit,
        "auth_failure_window_seconds": settings.auth_failure_window_seconds,
        "audit_checkpoint_events": settings.audit_checkpoint_events,
        "audit_checkpoint_seconds": settings.audit_checkpoint_seconds,
        "incident_scan_seconds": settings.incident_scan_seconds,
        "retention_interval_seconds": settings.retention_interval_seconds,
        "console_idle_minutes": settings.console_idle_minutes,
        "console_session_hours": settings.console_session_hours,
    }


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _number(value: object) -> str:
    """``60.0`` as ``60``, ``0.5`` as ``0.5``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _key_protection(facts: Mapping[str, object]) -> str:
    if facts["key_provider"] == "pkcs11":
        return (
            "Key-encryption keys (KEKs) are AES-256 keys generated inside a hardware security "
            "module reached over PKCS#11 (sensitive, not extractable): the HSM wraps and "
            "unwraps data keys, so guard never holds a KEK."
        )
    if facts["master_key_set"]:
        protection = "a key derived with HKDF-SHA256 from the master key (GUARD_MASTER_KEY)"
    elif facts["keyring_passphrase_set"]:
        protection = (
            f"a key derived with scrypt (N=2^{SCRYPT_N.bit_length() - 1}, r={SCRYPT_R}, "
            f"p={SCRYPT_P}) from the keyring passphrase (GUARD_KEYRING_PASSPHRASE)"
        )
    else:
        protection = (
            "a key derived from the development key (development only: production "
            "refuses to start without GUARD_MASTER_KEY or GUARD_KEYRING_PASSPHRASE)"
        )
    return (
        "Key-encryption keys (KEKs) are versioned and kept in a local keyring file, each "
        f"AES-256-GCM encrypted under {protection}; the whole file is authenticated by an "
        "HMAC, so an edited file or a wrong secret is refused."
    )


def _security_measures(facts: Mapping[str, object], source: Source) -> tuple[SecurityMeasure, ...]:
    bits = DATA_KEY_BYTES * 8
    indexed = ", ".join(sorted(BLIND_INDEXES))
    jwt = (
        f" JWT bearer tokens are accepted ({facts['jwt_algorithms']}), "
        "with issuer and audience checked."
        if facts["jwt_configured"]
        else " JWT bearer tokens are not configured."
    )
    measures = [
        (
            "encryption_at_rest",
            "Encryption at rest",
            (
                f"Every record field is encrypted with AES-256-GCM under a random {bits}-bit data "
                "key of its own customer (envelope encryption). Associated data binds each "
                "ciphertext to its format version, tenant, record, field and key version, so a "
                "ciphertext moved to another row, field or tenant fails authentication."
            ),
        ),
        ("key_management", "Key management", _key_protection(facts)),
        (
            "key_rotation",
            "Key rotation",
            (
                "`guard keys rotate` re-wraps every data key under a new KEK version without "
                "touching the encrypted fields; a version is retired only once no data key uses it."
            ),
        ),
        (
            "crypto_shredding",
            "Erasure by crypto-shredding",
            (
                "Erasing a customer deletes their data key with every ciphertext and blind index "
                "in one transaction; copies of the ciphertext in backups can never be decrypted "
                "again. The record stays as a tombstone (id, status, timestamps)."
            ),
        ),
        (
            "blind_indexes",
            "Blind indexes",
            (
                f"Exact-match search ({indexed}) uses HMAC-SHA256 blind indexes under keys derived "
                "per tenant: the database sees equality of values, never the values."
            ),
        ),
        (
            "pseudonymisation",
            "Pseudonymisation and redaction",
            (
                "Detected personal data is redacted per channel (policies/redaction.yaml, below): "
                "pseudonyms are keyed HMACs stable per tenant and scope, reversible tokens are "
                "AES-SIV and only a role allowed to reveal may turn them back, each reveal audited."
            ),
        ),
        (
            "access_control",
            "Access control",
            (
                "Every request is authenticated (API keys: random 256-bit secrets stored as "
                f"SHA-256 hashes).{jwt} Authorization is Casbin RBAC with tenants as domains, "
                "deny by default; each role sees each record field as policies/views.yaml says. "
                f"After {facts['auth_failure_limit']} failed authentications in "
                f"{_number(facts['auth_failure_window_seconds'])} s a client is refused for the "
                "rest of the window. The console's sessions end after "
                f"{_number(facts['console_idle_minutes'])} minutes without a request and "
                f"{_number(facts['console_session_hours'])} hours after sign-in."
            ),
        ),
        (
            "audit_trail",
            "Tamper-evident audit trail",
            (
                "Every request and decision is an audit event carrying the previous event's hash "
                "and an HMAC under a key the database never holds; an Ed25519-signed checkpoint "
                f"seals the head every {facts['audit_checkpoint_events']} events or "
                f"{_number(facts['audit_checkpoint_seconds'])} s. Events hold keyed hashes and "
                "counts, never raw personal data; `guard audit verify` finds any edit, deletion, "
                "insertion or reordering."
            ),
        ),
        (
            "incident_response",
            "Incident detection and response",
            "Sigma rules over the audit trail open incidents (repeated denials, bulk access, "
            "a blocked leak, a broken chain, key events)"
            + (
                f", scanned every {_number(facts['incident_scan_seconds'])} s by `guard serve`"
                if facts["incident_scan_seconds"]
                else " when `guard incidents scan` runs (no background scan is configured)"
            )
            + "; each carries its runbook, the 72-hour clock and draft notices.",
        ),
        (
            "storage_limitation",
            "Storage limitation",
            "Retention periods (policies/retention.yaml) are applied by crypto-shredding, "
            + (
                f"every {_number(facts['retention_interval_seconds'])} s by `guard serve` "
                if facts["retention_interval_seconds"]
                else "when `guard retention run` runs (no scheduler is configured) "
            )
            + "and suspended by legal holds.",
        ),
        (
            "in_transit",
            "In transit",
            (
                "guard's API does not terminate TLS itself: it is to be deployed behind a "
                "TLS-terminating proxy or load balancer. Calls to systems of record are encrypted "
                "when their URL is https (see the recipients)."
            ),
        ),
    ]
    return tuple(
        SecurityMeasure(id=mid, title=title, text=text, source=source)
        for mid, title, text in measures
    )


# --- documents ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """A generated document: its text, media type, file name and the sha256 of its bytes."""

    text: str
    media_type: str
    filename: str

    @property
    def sha256(self) -> str:
        """sha256 of the UTF-8 bytes (what the audit event records)."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()
