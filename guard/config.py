"""Settings: one object, read from the environment (prefix ``GUARD_``) with embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root when running from a checkout; the default place for policies/ and var/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


JwtAlgorithm = Literal["HS256", "RS256", "ES256"]
_DEFAULT_JWT_ALGORITHMS: list[JwtAlgorithm] = ["RS256", "ES256"]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "guard"


def _default_analysis_workers() -> int:
    """The cores this process may run on (the CPU affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _default_serve_workers() -> int:
    """`guard serve` runs one API worker process per core (at most 64)."""
    return min(64, _default_analysis_workers())


class Settings(BaseSettings):
    """guard's configuration. Every field can be set as ``GUARD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GUARD_", extra="forbid")

    env: Literal["development", "production"] = "development"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    policies_dir: Path = PROJECT_ROOT / "policies"
    #: Local key material (git-ignored): in development guard creates its redaction key here.
    keys_dir: Path = PROJECT_ROOT / "keys"
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    #: spaCy pipeline: the pinned default, another installed spaCy package, or a model directory.
    nlp_model: str = "en_core_web_sm"

    #: Tenant secret for pseudonyms and reversible tokens in development. Production deployments
    #: set it (or, later, the keyring does); an unset key in production is a start-up error.
    redaction_key: SecretStr | None = None

    #: Texts longer than this are rejected rather than analysed (bytes of UTF-8).
    max_text_bytes: int = Field(default=1_000_000, gt=0)
    #: An outgoing message or note longer than this (characters) is refused with 413 before any
    #: lookup: a message is checked as one piece against the blind indexes (100,000: the
    #: longest note a record holds).
    max_message_chars: int = Field(default=100_000, gt=0)
    #: Texts longer than this (characters) are analysed in windows of at most this size, so
    #: the time and memory of one NER pass are bounded whatever the text (20,000: see
    #: bench/README.md, "Hostile input"). Must be at least twice the overlap.
    analysis_window_chars: int = Field(default=20_000, ge=1_000)
    #: Consecutive windows share at least this many characters. A finding is taken from a
    #: window only away from its cut edges (128 characters of context each side), so any
    #: entity up to ``overlap - 256`` characters long is found whole: the default covers a
    #: 4096-bit RSA private key in PEM (~3,300), far more than an address block (~600).
    analysis_window_overlap_chars: int = Field(default=4_096, ge=384)

    # --- keys of customer records --------------------------------------------------------
    #: Where key-encryption keys live: ``local`` (a keyring file) or ``pkcs11`` (an HSM).
    key_provider: Literal["local", "pkcs11"] = "local"
    #: The local keyring file; unset means ``keys_dir/keyring.json``.
    keyring_path: Path | None = None
    #: The local keyring's protection: a raw master key (``GUARD_MASTER_KEY``, base64url or hex
    #: of >= 32 bytes, for containers) or a passphrase stretched with scrypt. In development,
    #: with neither set, a key derived from the development redaction key protects it.
    master_key: SecretStr | None = None
    keyring_passphrase: SecretStr | None = None
    #: PKCS#11: the module (e.g. /usr/lib/softhsm/libsofthsm2.so), token label, user PIN, and
    #: the label prefix of guard's KEK objects (``<prefix>-v<N>``).
    pkcs11_library: Path | None = None
    pkcs11_token_label: str = "guard"  # noqa: S105 - a token label, not a secret
    pkcs11_pin: SecretStr | None = None
    pkcs11_key_label: str = Field(default="guard-kek", pattern=r"^[A-Za-z0-9_.-]{1,48}$")

    #: Region (ISO 3166 alpha-2) for phone numbers written without a country code, so that
    #: ``(415) 555-0100`` and ``+1 415 555 0100`` find the same record.
    default_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")

    # --- storage -------------------------------------------------------------------------
    #: Where the embedded defaults keep their files (SQLite database, audit JSONL).
    var_dir: Path = PROJECT_ROOT / "var"
    #: SQLAlchemy URL; unset means the embedded SQLite file ``var/guard.db``.
    #: PostgreSQL: ``postgresql+psycopg://user@host:5432/dbname``.
    database_url: SecretStr | None = None
    #: SQLite durability: ``full`` syncs every commit to disk (an audit event survives a power
    #: cut once its request is answered); ``normal`` (WAL) survives a crash of guard but may lose
    #: the last commits on power loss, for about a millisecond less per audited request.
    sqlite_synchronous: Literal["full", "normal"] = "full"

    # --- API -----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=1, le=65535)
    #: API worker processes of `guard serve`, sharing one database: one per core by default.
    #: Each runs its own analysis pool; unless GUARD_ANALYSIS_WORKERS is set, `guard serve`
    #: gives each pool cores / workers processes, so the machine has one per core in all.
    workers: int = Field(default_factory=_default_serve_workers, ge=1, le=64)
    #: Largest request body accepted (bytes); larger requests get 413.
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    #: Largest body of a streaming export (``POST /v1/exports/redact``); read chunk by chunk,
    #: so memory stays flat whatever this is.
    export_max_body_bytes: int = Field(default=1 << 30, gt=0)
    #: Most texts in one batch request; more get 422.
    max_batch_size: int = Field(default=256, ge=1)
    #: Deepest nesting of objects and arrays in a JSON field (``/v1/redact/json``'s document:
    #: ``[]`` is one level); deeper bodies get 422. Capped so checks never exhaust the stack.
    max_json_depth: int = Field(default=64, ge=1, le=256)

    # --- analysis (detection runs in worker processes, see guard.detection.executor) -------
    #: Worker processes per API process, each analysing one request at a time with its own
    #: copy of the model (~0.3-1 GB each). ``0`` analyses in the request's own thread: no time
    #: budget, no cap, one slow text stalls the process (for embedding and tools, not the API).
    analysis_workers: int = Field(default_factory=_default_analysis_workers, ge=0, le=256)
    #: Requests that may wait for a worker when all are busy; more are refused at once with 503
    #: and ``Retry-After``. Unset: twice the workers, so a burst of two requests per core is
    #: absorbed while waiting threads (each holding its request's body) stay few.
    analysis_queue: int | None = Field(default=None, ge=0, le=4096)
    #: Seconds one request's analysis may take (time waiting for a worker not counted); past
    #: it the worker is killed and the request fails with 422 analysis-budget-exceeded. A
    #: request also waits at most this long for a worker, then gets 503.
    analysis_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: Dynamic batching: when requests queue because every worker is busy, the one that gets
    #: the next free worker takes the other queued requests of its tenant along in one job
    #: (one NER pass over all their texts). A lone request never waits. ``false``: each
    #: request's job runs alone.
    analysis_batching: bool = True
    #: Most texts, and most characters (about two NER windows), in one batched job.
    analysis_batch_max_texts: int = Field(default=64, ge=1, le=4096)
    analysis_batch_max_chars: int = Field(default=40_000, ge=1)
    #: A request with a text longer than this (characters) is never batched: a long or
    #: hostile text runs as its own job and cannot hold up, or fail, anyone else's.
    analysis_batch_text_chars: int = Field(default=4_000, ge=1)

    # --- authentication ------------------------------------------------------------------
    #: JWT bearer tokens: accepted algorithms, issuer and audience checked on every token.
    jwt_algorithms: list[JwtAlgorithm] = Field(default_factory=_DEFAULT_JWT_ALGORITHMS.copy)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    #: HS256 shared secret (``GUARD_JWT_SECRET``), or a PEM public key file, or a JWKS file.
    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    #: Claims that carry the principal's role and tenant (the subject is ``sub``).
    jwt_role_claim: str = "role"
    jwt_tenant_claim: str = "tenant"
    #: Issuer -> the tenants its tokens may name (JSON, e.g. ``{"https://idp.example":
    #: ["acme"]}``). Empty: a token's tenant claim is trusted as issued. Set: a token whose
    #: issuer is not listed, or whose tenant is not among its issuer's, is refused and audited.
    jwt_issuer_tenants: dict[str, list[str]] = Field(default_factory=dict)
    #: Failed authentication: after this many failures from one client address with one key
    #: prefix (or 10x this many from one address, whatever the prefix) within the window,
    #: further attempts from it get 429 with ``Retry-After`` until the window closes. Repeated
    #: refusals of unauthenticated requests are audited as one event per address and window.
    auth_failure_limit: int = Field(default=10, ge=1, le=100_000)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)

    # --- audit ---------------------------------------------------------------------------
    #: A signed checkpoint (sequence, head hash) every N events or T seconds, whichever first.
    audit_checkpoint_events: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)
    #: Also append every audit event to this JSONL file (for a log shipper); unset: table only.
    audit_jsonl_path: Path | None = None

    #: Incident detection rules (Sigma, *.yml) and runbook templates (*.md, notices/*.j2).
    incident_rules_dir: Path = PROJECT_ROOT / "audit" / "rules"
    runbooks_dir: Path = PROJECT_ROOT / "audit" / "runbooks"
    #: `guard serve` scans the audit trail for incidents every N seconds (0: no background scan;
    #: `guard incidents scan` still works).
    incident_scan_seconds: float = Field(default=10.0, ge=0, le=86_400)
    #: `guard serve` applies policies/retention.yaml every N seconds (0: no scheduler;
    #: `guard retention run` still works).
    retention_interval_seconds: float = Field(default=3600.0, ge=0, le=7 * 86_400)
    #: Rows handled per retention transaction: a run commits (and can resume) in such steps.
    retention_batch: int = Field(default=500, ge=1, le=100_000)
    #: Events read per scanner transaction: the cursor moves in steps of at most this many.
    incident_scan_batch: int = Field(default=5_000, ge=1, le=1_000_000)

    #: The web console's sessions end after this long without a request, and this long after
    #: sign-in whatever happens.
    console_idle_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    console_session_hours: float = Field(default=8.0, gt=0, le=24 * 7)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in force: GUARD_DATABASE_URL or the embedded SQLite file."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.var_dir / 'guard.db'}"

    @property
    def analysis_queue_size(self) -> int:
        """Requests that may wait for an analysis worker: GUARD_ANALYSIS_QUEUE, or a default.

        The default is 2 x workers, and with batching at least one batch's worth: queued
        requests are what batches are made of, and a queue of two would cap a batch at two
        requests and refuse the rest with 503.
        """
        if self.analysis_queue is not None:
            return self.analysis_queue
        if self.analysis_batching:
            return max(2 * self.analysis_workers, self.analysis_batch_max_texts)
        return 2 * self.analysis_workers

    @property
    def keyring_file(self) -> Path:
        """The local keyring in force: GUARD_KEYRING_PATH or ``keys_dir/keyring.json``."""
        return self.keyring_path or self.keys_dir / "keyring.json"

    @property
    def model_dir(self) -> Path:
        """Where ``guard models install`` extracts pinned NLP models."""
        return self.cache_dir / "models"


def get_settings() -> Settings:
    """Read settings from the environment now (tests change the environment between calls)."""
    return Settings()
