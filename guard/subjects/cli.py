"""``guard subjects``: data subject requests from the command line.

    guard subjects open --tenant T --kind access|portability|erasure
                        (--record-id ID | --email E | --phone P | --account-id A)
                        --identity-check TEXT [--received-at TIME]
    guard subjects list --tenant T [--status S] [--kind K] [--limit N] [--json]
    guard subjects show ID --tenant T [--json]
    guard subjects extend ID --tenant T --reason TEXT [--months 1|2]
    guard subjects package ID --tenant T --out FILE
    guard subjects erase ID --tenant T --yes
    guard subjects close ID --tenant T --outcome fulfilled|rejected --reason TEXT

The same :class:`~guard.subjects.service.SubjectService` as ``/v1/subjects``, acting as
principal ``cli`` in the tenant given. ``package`` writes only the encrypted archive (0600,
complete or absent) and prints its passphrase once, to standard output; nothing else keeps it.
Commands that store a stated reason (open, extend, close) redact it first, so they load the NLP
model; the others do not. Errors are one line and exit code 1 (guard's GuardGroup).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from guard.cligroup import GuardGroup
from guard.subjects.deadlines import MAX_EXTENSION_MONTHS, clock_words
from guard.subjects.models import REQUEST_KINDS, REQUEST_STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from guard.api.services import Services
    from guard.audit.service import AuditTrail
    from guard.config import Settings
    from guard.detection.executor import Analyzer
    from guard.redaction.service import Redactor
    from guard.subjects.service import Actor, SubjectService

CLI_PRINCIPAL = "cli"
RESOLUTIONS = ("fulfilled", "rejected")

tenant_option = click.option(
    "--tenant", required=True, help="The tenant the request belongs to (e.g. acme)."
)


@click.group(cls=GuardGroup)
def subjects() -> None:
    """Data subject requests: access, portability and erasure (GDPR Arts 15, 17, 20)."""


@contextlib.contextmanager
def _service(obj: Settings | Services, *, detection: bool = False) -> Iterator[SubjectService]:
    """The service over the configured database; with ``detection``, the NLP model loaded.

    ``obj`` is the command's context object: guard's Settings (``guard subjects ...``), or
    ready :class:`~guard.api.services.Services` when guard is embedded (tests pass theirs).
    Only stated reasons (open, extend, close) need detection; the other commands analyse no
    text and start without the model.
    """
    from guard.api.services import Services, build_services  # noqa: PLC0415 - heavy, once

    if isinstance(obj, Services):
        yield _build(obj.settings, obj.session_factory, obj.audit, obj.analysis, obj.redactor)
        return
    if detection:
        from guard.detection.engine import Detector  # noqa: PLC0415
        from guard.detection.executor import InProcessAnalysis  # noqa: PLC0415

        services = build_services(obj, analysis=InProcessAnalysis(Detector(settings=obj)))
        try:
            yield _build(
                obj, services.session_factory, services.audit, services.analysis, services.redactor
            )
        finally:
            services.close()
            services.analysis.close()
        return
    from guard.audit.service import AuditTrail  # noqa: PLC0415
    from guard.records.cli import NoAnalysis  # noqa: PLC0415
    from guard.redaction.service import Redactor  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(obj)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        yield _build(obj, factory, AuditTrail(obj, factory), NoAnalysis(), Redactor(settings=obj))
    finally:
        engine.dispose()


def _build(
    settings: Settings,
    factory: sessionmaker[Session],
    audit: AuditTrail,
    analysis: Analyzer,
    redactor: Redactor,
) -> SubjectService:
    from guard.crypto.blind_index import BlindIndexer  # noqa: PLC0415 - key loading, once
    from guard.crypto.envelope import EnvelopeCipher  # noqa: PLC0415
    from guard.crypto.providers import load_key_provider  # noqa: PLC0415
    from guard.records.service import RecordService  # noqa: PLC0415
    from guard.redaction.reasons import reason_redactor  # noqa: PLC0415
    from guard.subjects.schemas import MAX_REASON  # noqa: PLC0415
    from guard.subjects.service import SubjectService  # noqa: PLC0415

    records = RecordService(
        settings,
        factory,
        EnvelopeCipher(load_key_provider(settings, create=False)),
        BlindIndexer.from_settings(settings),
        analysis,
        redactor,
    )
    return SubjectService(
        settings=settings,
        session_factory=factory,
        records=records,
        audit=audit,
        redact=reason_redactor(analysis, redactor, limit=MAX_REASON),
    )


def _actor(tenant: str) -> Actor:
    from guard.subjects.service import Actor  # noqa: PLC0415

    return Actor(principal=CLI_PRINCIPAL, tenant=tenant)


def _utc(value: datetime | None) -> datetime | None:
    """A time typed without a zone is UTC (as ``guard audit`` reads them)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@subjects.command("open")
@tenant_option
@click.option("--kind", required=True, type=click.Choice(REQUEST_KINDS))
@click.option("--record-id", help="The customer's record id.")
@click.option("--email", help="The customer's email address (looked up by blind index).")
@click.option("--phone", help="The customer's phone number (looked up by blind index).")
@click.option("--account-id", help="The customer's account id (looked up by blind index).")
@click.option(
    "--identity-check",
    required=True,
    help="How you checked the requester is the customer (redacted before it is stored).",
)
@click.option(
    "--received-at",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="When the request arrived, UTC (default: now).",
)
@click.pass_obj
def open_command(
    obj: Settings | Services,
    tenant: str,
    kind: str,
    record_id: str | None,
    email: str | None,
    phone: str | None,
    account_id: str | None,
    identity_check: str,
    received_at: datetime | None,
) -> None:
    """Register a request; its deadline is one calendar month after receipt."""
    given = [v for v in (record_id, email, phone, account_id) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --record-id, --email, --phone, --account-id")
    with _service(obj, detection=True) as service:
        opened = service.open(
            actor=_actor(tenant),
            kind=kind,
            identity_check=identity_check,
            record_id=record_id,
            email=email,
            phone=phone,
            account_id=account_id,
            received_at=_utc(received_at),
        )
    click.echo(f"opened {opened.kind} request {opened.id}; due {opened.due_at.isoformat()}")


@subjects.command("list")
@tenant_option
@click.option("--status", type=click.Choice(REQUEST_STATUSES))
@click.option("--kind", type=click.Choice(REQUEST_KINDS))
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_obj
def list_command(
    obj: Settings | Services,
    tenant: str,
    status: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Requests, soonest due first, with the time left."""
    with _service(obj) as service:
        page = service.list_requests(tenant=tenant, status=status, kind=kind, limit=limit)
        service.audit_view(_actor(tenant), "subjects.list", results=len(page.requests))
    if as_json:
        click.echo(page.model_dump_json(indent=2))
        return
    if not page.requests:
        click.echo("no requests")
    for item in page.requests:
        click.echo(
            f"{item.id}  {item.kind:<11} {item.status:<9} due {item.due_at.isoformat()}  "
            f"({clock_words(item.time_left_seconds, overdue=item.overdue)})"
        )


@subjects.command("show")
@click.argument("request_id")
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_obj
def show_command(obj: Settings | Services, request_id: str, tenant: str, as_json: bool) -> None:
    """One request: clock, identity check (redacted), outcome, package."""
    with _service(obj) as service:
        found = service.get(tenant=tenant, request_id=request_id)
        service.audit_view(_actor(tenant), "subjects.read", found)
    if as_json:
        click.echo(found.model_dump_json(indent=2))
        return
    click.echo(f"{found.kind} request {found.id}  ({found.status})")
    click.echo(f"  record: {found.record_id}")
    click.echo(f"  received: {found.received_at.isoformat()}   opened by: {found.opened_by}")
    left = clock_words(found.time_left_seconds, overdue=found.overdue)
    click.echo(f"  due: {found.due_at.isoformat()} ({left})")
    click.echo(f"  identity check: {found.identity_check}")
    if found.extended:
        click.echo(f"  extended: {found.extension_reason}")
    if found.package is not None:
        click.echo(
            f"  package: {found.package.size} bytes, sha256 {found.package.sha256}, "
            f"expires {found.package.expires_at.isoformat()}"
        )
    if found.closed_at is not None:
        click.echo(f"  closed: {found.closed_at.isoformat()} by {found.closed_by}: {found.outcome}")


@subjects.command("extend")
@click.argument("request_id")
@tenant_option
@click.option("--reason", required=True, help="Why more time is needed (redacted).")
@click.option(
    "--months",
    type=click.IntRange(1, MAX_EXTENSION_MONTHS),
    default=MAX_EXTENSION_MONTHS,
    show_default=True,
)
@click.pass_obj
def extend_command(
    obj: Settings | Services, request_id: str, tenant: str, reason: str, months: int
) -> None:
    """Extend the deadline by up to two further months (once, within the first month)."""
    with _service(obj, detection=True) as service:
        extended = service.extend(
            actor=_actor(tenant),
            request_id=request_id,
            reason=reason,
            months=months,
        )
    click.echo(f"request {extended.id} is now due {extended.due_at.isoformat()}")
    click.echo("tell the customer of the extension and why (GDPR Art. 12(3))", err=True)


@subjects.command("package")
@click.argument("request_id")
@tenant_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the encrypted archive (created 0600).",
)
@click.pass_obj
def package_command(obj: Settings | Services, request_id: str, tenant: str, out: Path) -> None:
    """Build the encrypted package; write the archive; print its passphrase once."""
    from guard.files import atomic_binary_file  # noqa: PLC0415

    with _service(obj) as service:
        made = service.package(actor=_actor(tenant), request_id=request_id)
    with atomic_binary_file(out) as handle:
        handle.write(made.built.archive)
    click.echo(
        f"wrote {made.built.size} bytes to {out} ({len(made.built.files)} files, "
        f"{made.built.audit_events} audit events, {made.built.incidents} incidents; "
        f"sha256 {made.built.sha256})",
        err=True,
    )
    click.echo(
        "the passphrase follows, shown this once and kept nowhere: give it to the customer by "
        "another channel than the archive",
        err=True,
    )
    click.echo(made.built.passphrase)


@subjects.command("erase")
@click.argument("request_id")
@tenant_option
@click.option("--yes", is_flag=True, help="Confirm: erasure cannot be undone.")
@click.pass_obj
def erase_command(obj: Settings | Services, request_id: str, tenant: str, yes: bool) -> None:
    """Crypto-shred the customer of an erasure request (refused under a legal hold)."""
    if not yes:
        raise click.UsageError("erasure crypto-shreds the record for good: add --yes to confirm")
    with _service(obj) as service:
        closed = service.erase(actor=_actor(tenant), request_id=request_id)
    click.echo(f"request {closed.id} fulfilled: {closed.outcome}")


@subjects.command("close")
@click.argument("request_id")
@tenant_option
@click.option("--outcome", required=True, type=click.Choice(RESOLUTIONS))
@click.option("--reason", required=True, help="What was done, or why not (redacted).")
@click.pass_obj
def close_command(
    obj: Settings | Services, request_id: str, tenant: str, outcome: str, reason: str
) -> None:
    """Close a request as fulfilled or rejected."""
    with _service(obj, detection=True) as service:
        closed = service.close(
            actor=_actor(tenant),
            request_id=request_id,
            outcome=outcome,
            reason=reason,
        )
    click.echo(f"request {closed.id} is {closed.status}")
