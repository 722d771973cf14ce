"""guard's audit events as a Sigma log source: ``product: guard``, ``service: audit``.

A detection rule may name only the fields listed here. Refusing any other name at load time is
what makes a typo (``detail.reason``, ``principle``) a clear error instead of a rule that
silently never fires. The catalogue of detail keys is what guard really writes into
``details`` of its audit events; a test walks guard/ and checks every literal key an audit call
passes is listed.
"""

from __future__ import annotations

import re

PRODUCT = "guard"
SERVICE = "audit"

#: The columns of an audit event (table audit_events), in table order.
COLUMNS: tuple[str, ...] = (
    "seq",
    "ts",
    "principal",
    "role",
    "tenant",
    "action",
    "resource",
    "decision",
    "outcome",
    "request_id",
    "customer",
)
#: Fields derived from ``ts`` in the configured time zone.
DERIVED: tuple[str, ...] = ("hour", "weekday")
#: Every plain field name a rule may use.
FIELDS: frozenset[str] = frozenset(COLUMNS + DERIVED)
DETAILS_PREFIX = "details."
ENTITY_COUNTS_PREFIX = "entity_counts."
#: Prefixes of the structured fields: ``details.<key>`` and ``entity_counts.<TYPE>``.
FIELD_PREFIXES: tuple[str, ...] = (DETAILS_PREFIX, ENTITY_COUNTS_PREFIX)

#: Detail keys guard writes, with what they hold. Identifier keys (``customer_id`` and the
#: like) are stored as keyed hashes; no detail ever holds raw customer data.
DETAIL_KEYS: dict[str, str] = {
    # requests and refusals: guard/api, guard/access
    "reason": "why a request or operation was refused or failed (a slug or short message)",
    "status": "the HTTP status of the request",
    "problem": "the problem type slug of an error response",
    "path_hash": "keyed hash of the request path parameters (or of an unmatched path)",
    "correlation_id": "the client's X-Request-ID",
    "key_prefix": "the public half of the API key of a failed authentication (key:..., jwt, none)",
    "aggregate": "true on an aggregate of refusals of unauthenticated clients",
    "refusals": "how many refusals an aggregate counts",
    "client_hash": "keyed hash of the client address of an aggregate",
    "window_start": "start of the aggregate's window (ISO 8601)",
    "window_ms": "length of the aggregate's window in milliseconds",
    # API keys and policy: guard/access
    "key_role": "the role of a created API key",
    "expires": "whether a created API key expires",
    "count": "how many items a listing returned",
    "role": "the role a policy check asked about",
    "action": "the action a policy check asked about",
    "object": "the object a policy check asked about",
    "lines": "how many policy lines a reload loaded",
    # audit review: guard/audit
    "events": "how many events a chain or evidence-bundle verification checked",
    "ok": "whether a chain or evidence-bundle verification succeeded",
    "checkpoints": "how many signed checkpoints an evidence-bundle verification checked",
    "bundle_sha256": "SHA-256 of an evidence bundle made or verified (which file it was)",
    "bad_seq": "the seq of the first problem an evidence-bundle verification found",
    "results": "how many events an audit search returned",
    "filters": "which filters an audit search or export used (names only)",
    "format": "the format of an audit export or of a record of processing (csv, jsonl, md, json)",
    "rows": "how many rows an audit export wrote",
    # customer records, written by guard/records
    "fields": "how many fields a record create or update set",
    "fields_shown": "how many fields a record read showed",
    "by": "what a record search searched by",
    "matches": "how many records a search matched",
    "via": "how a record was reached (e.g. search)",
    "crypto_shredded": "whether an erasure destroyed the record's data key",
    "indexed": "how many names a reindex indexed",
    "blank": "how many records a reindex found without a name",
    "interrupted": "whether a reindex was interrupted",
    # key-encryption keys, written by the keys commands
    "provider": "the key provider (keyring, pkcs11)",
    "version": "the KEK version concerned",
    "rewrapped": "how many data keys a rotation re-wrapped",
    "skipped": "how many items were skipped",
    "failed": "how many items failed",
    "remaining": "how many data keys remain under older KEK versions",
    "resumed": "whether a key rotation or a retention run resumed an interrupted one",
    # redaction and detection: guard/redaction, guard/detection
    "batch_size": "how many texts a request analysed",
    "tokens": "how many reversible tokens a reveal request held",
    # outgoing messages: guard/messages
    "verdict": "the outgoing-message verdict (allow, warn, block)",
    "other_customer_findings": "findings of another customer's data in a message",
    "credential_findings": "findings of secrets in a message",
    "own_data_findings": "findings of the addressed customer's own data",
    "pii_findings": "other PII findings in a message",
    "tone_findings": "tone advice findings",
    "foreign_records": "how many other customers' records a message named",
    "foreign_customers": "keyed hashes of those customers (comma-separated)",
    # tool proxy: guard/proxy
    "latency_ms": "upstream call latency in milliseconds",
    "upstream_status": "the upstream tool's HTTP status",
    "retry_after": "seconds until a refused tool budget frees up",
    "tools": "how many tools a listing returned",
    "door": "the front door of a tool listing (mcp)",
    "pinned": "how many tool descriptions a pin run pinned",
    "unchanged": "how many pinned tool descriptions were unchanged",
    "changed": "how many pinned tool descriptions changed",
    "new": "how many tool descriptions were pinned for the first time",
    "missing": "how many pinned tools an upstream no longer lists",
    "unreachable": "how many upstreams could not be reached",
    # incidents, written by guard/incidents
    "rule_id": "the detection rule that opened an incident",
    "severity": "the severity of an opened incident",
    "first_seq": "the first audit event of an incident's evidence or of an evidence bundle",
    "last_seq": "the last audit event of an incident's evidence or of an evidence bundle",
    "opened": "how many incidents a scan opened",
    "updated": "how many open incidents a scan updated",
    "to": "the status an incident was moved to",
    "step": "the runbook step ticked or unticked",
    "done": "whether the runbook step is now done",
    "party": "who a notice is for (authority, customer)",
    "unresolved": "how many affected-customer hashes matched no record",
    # analytics exports: guard/export
    "manifest_id": "the id of an export's manifest (guard export show, /v1/exports/manifests)",
    "manifest_sha256": "sha256 of the export manifest's canonical JSON",
    "profile": "the export profile (policies/exports/<profile>.yaml)",
    "profile_sha256": "sha256 of the export profile's canonical form",
    "purpose": "the export purpose whose key made the pseudonyms",
    "generation": "the generation of an export purpose's key",
    "engine": "where an export ran: api, local, spark, records",
    "rows_in": "rows an export read",
    "rows_out": "rows an export wrote",
    "rows_suppressed": "rows an export left out for k-anonymity",
    # identifiers callers may attach, stored as keyed hashes by guard.audit
    "customer_id": "keyed hash of a customer id",
    "account_id": "keyed hash of an account id",
    "user_id": "keyed hash of a user id",
    "subject_id": "keyed hash of a data subject id",
    # data subject requests: guard/subjects (requests)
    "kind": "the kind of a data subject request (access, portability, erasure)",
    "months": "how many months a data subject request's deadline was extended by",
    "resolution": "how a data subject request was closed (fulfilled, rejected)",
    "audit_events": "how many audit events a data subject's package lists",
    "incidents": "how many incidents a data subject's package lists",
    "files": "how many files a data subject's package holds",
    "bytes": "the size of a data subject's encrypted package in bytes",
    "packages_deleted": "how many stored packages an erasure deleted",
    # the record of processing and the privacy notice: guard/subjects (compliance documents)
    "compliance_sha256": "sha256 of a generated record of processing or privacy notice",
    # retention, legal holds and audit pruning: guard/subjects (retention), guard/audit
    "run_id": "the id of a retention run (guard retention runs)",
    "batch": "the number of a retention run's batch",
    "removed": "how many rows (or audit events) a retention batch removed",
    "held": "how many candidates a legal hold kept from retention",
    "through_seq": "the last audit event a prune removed (the seq of its signed seal)",
    "dry_run": "whether a retention run only listed what it would remove",
    "records": "how many customer records a retention run erased",
    "notes": "how many records' notes a retention run removed",
    "packages": "how many expired subject packages a retention run deleted",
    "batches": "how many batches a retention run committed",
    "zero_rules": "how many zero retention periods a run was refused for or skipped",
    "rules": "which zero retention periods were skipped (scope/kind, comma-separated)",
    "hold_id": "the id of a legal hold placed or released",
    "scope": "what a legal hold is on (customer, incident)",
    "from_seq": "the first sequence number a chain verification checked (after a prune seal)",
}
#: Detail keys guard builds from a value: ``status_<code>`` counts refusals per HTTP status in
#: an aggregate of refusals (guard/access/throttle.py).
DETAIL_KEY_PATTERNS: tuple[re.Pattern[str], ...] = (re.compile(r"status_[1-5][0-9]{2}"),)
#: Entity types in ``entity_counts.<TYPE>``: upper-case identifiers (EMAIL_ADDRESS, PERSON, ...).
ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]*")

#: What each plain field holds (the README's table is written from this).
FIELD_DESCRIPTIONS: dict[str, str] = {
    "seq": "sequence number of the event in the chain (integer)",
    "ts": "when the event was written (UTC)",
    "principal": "who acted: API key id, JWT subject, `cli`, or null for unauthenticated",
    "role": "the principal's role (agent, supervisor, compliance_officer, admin, ...)",
    "tenant": "the principal's tenant",
    "action": "what was done: records.read, http.get, message.check, tool.call, ...",
    "resource": "what it was done to: a route template, `record`, `tool:<name>`, `policy`, ...",
    "decision": "allow or deny",
    "outcome": "success, failure or error",
    "request_id": "guard's id of the HTTP request",
    "customer": "keyed hash of the customer the event concerns, or null",
    "hour": "hour of `ts` in the configured time zone (0-23)",
    "weekday": "day of the week of `ts` in the configured time zone (1 = Monday .. 7 = Sunday)",
}


def is_detail_key(key: str) -> bool:
    """Whether guard writes ``key`` into the details of some audit event."""
    return key in DETAIL_KEYS or any(p.fullmatch(key) for p in DETAIL_KEY_PATTERNS)


def field_problem(name: str) -> str | None:
    """None if a rule may use the field ``name``; otherwise why not (names the field only)."""
    if name in FIELDS:
        return None
    if name.startswith(DETAILS_PREFIX):
        key = name.removeprefix(DETAILS_PREFIX)
        if is_detail_key(key):
            return None
        return f"unknown field '{name}': guard logs no detail key '{key}'"
    if name.startswith(ENTITY_COUNTS_PREFIX):
        entity = name.removeprefix(ENTITY_COUNTS_PREFIX)
        if ENTITY_TYPE.fullmatch(entity):
            return None
        return f"unknown field '{name}': entity types are upper-case names like EMAIL_ADDRESS"
    return (
        f"unknown field '{name}': guard's audit log source has "
        f"{', '.join((*COLUMNS, *DERIVED))}, details.<key> and entity_counts.<TYPE>"
    )


def is_known_field(name: str) -> bool:
    """Whether a rule may use the field ``name``."""
    return field_problem(name) is None
