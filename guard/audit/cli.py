"""``guard audit``: verify, search, export and bundle the trail. Reading it is itself audited.

Register with ``main.add_command(audit)``; commands receive :class:`~guard.config.Settings` as
``ctx.obj``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from guard.audit.bundle import verify_bundle
from guard.audit.errors import AuditInputError
from guard.audit.schemas import AuditFilters, ExportFormat, VerifyReport
from guard.audit.service import AuditTrail
from guard.files import atomic_binary_file, atomic_text_file
from guard.storage.engine import create_engine_for, make_session_factory
from guard.storage.migrate import upgrade_to_head

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from guard.config import Settings

#: The principal recorded for reads made from the command line.
CLI_PRINCIPAL = "cli"
EXIT_BROKEN = 1


@contextlib.contextmanager
def _trail(settings: Settings) -> Iterator[AuditTrail]:
    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        yield AuditTrail(settings, make_session_factory(engine))
    finally:
        engine.dispose()


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--since", type=click.DateTime(), help="From this UTC time (inclusive)."),
        click.option("--until", type=click.DateTime(), help="Before this UTC time."),
        click.option("--principal", help="Who acted."),
        click.option("--role", help="In which role."),
        click.option("--tenant", help="In which tenant."),
        click.option("--action", help="e.g. redact, reveal, audit.export."),
        click.option("--decision", type=click.Choice(["allow", "deny"])),
        click.option("--outcome", type=click.Choice(["success", "failure", "error"])),
        click.option("--request-id", help="guard's id of one request (not a client's own)."),
        click.option("--customer", help="A customer id; matched by its keyed hash."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(options: dict[str, Any]) -> AuditFilters:
    return AuditFilters(
        since=_utc(options["since"]),
        until=_utc(options["until"]),
        principal=options["principal"],
        role=options["role"],
        tenant=options["tenant"],
        action=options["action"],
        decision=options["decision"],
        outcome=options["outcome"],
        request_id=options["request_id"],
        customer=options["customer"],
    )


def _filter_details(filters: AuditFilters) -> dict[str, str | int | bool]:
    """Which filters a review used (names only; the customer goes in hashed as ``customer``)."""
    used = [name for name, value in filters.model_dump().items() if value is not None]
    return {"filters": ",".join(used)}


@click.group("audit")
def audit() -> None:
    """Verify, search and export the audit trail."""


@audit.command("verify")
@click.option("--batch-size", default=10_000, show_default=True, type=click.IntRange(min=100))
@click.pass_obj
def verify_command(settings: Settings, batch_size: int) -> None:
    """Check every event and signed checkpoint; exit 1 at the first sign of tampering."""
    with _trail(settings) as trail:
        report = trail.verify(batch_size=batch_size)
        trail.record(
            action="audit.verify",
            resource="audit",
            decision="allow",
            outcome="success" if report.ok else "failure",
            principal=CLI_PRINCIPAL,
            details={
                "events": report.events_checked,
                "ok": report.ok,
                "from_seq": report.verified_from_seq or 1,
            },
        )
    pruned = _pruned_text(report)
    if report.ok:
        click.echo(
            f"audit chain intact: {report.events_checked} events from seq "
            f"{report.verified_from_seq or 1}, {report.checkpoints_checked} signed checkpoints "
            f"verified{pruned}"
        )
        return
    click.echo(
        f"audit chain broken at seq {report.first_bad_seq}: {report.finding} ({report.detail})"
        f"{pruned}"
    )
    sys.exit(EXIT_BROKEN)


def _pruned_text(report: VerifyReport) -> str:
    """What retention removed, if anything: the verification starts after its newest seal."""
    if report.pruned_through is None:
        return ""
    when = "" if report.pruned_at is None else f", the last on {report.pruned_at:%Y-%m-%d}"
    seals = f"{report.seals_checked} signed seal{'s' if report.seals_checked != 1 else ''}"
    return f"; events 1..{report.pruned_through} were pruned by retention under {seals}{when}"


@audit.command("search")
@_filter_options
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", type=click.IntRange(min=0), help="Continue after this seq.")
@click.pass_obj
def search_command(settings: Settings, /, limit: int, cursor: int | None, **options: Any) -> None:  # noqa: ANN401 - click options
    """Print matching events as JSON lines; the next cursor goes to stderr."""
    filters = _filters(options)
    with _trail(settings) as trail:
        page = trail.search(filters, limit=limit, cursor=cursor)
        trail.record(
            action="audit.search",
            resource="audit",
            decision="allow",
            outcome="success",
            principal=CLI_PRINCIPAL,
            customer=filters.customer,
            details={**_filter_details(filters), "results": len(page.events)},
        )
    for event in page.events:
        click.echo(event.model_dump_json())
    if page.next_cursor is not None:
        click.echo(f"next cursor: {page.next_cursor}", err=True)


@audit.command("export")
@_filter_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def export_command(settings: Settings, /, fmt: str, output: Path, **options: Any) -> None:  # noqa: ANN401 - click options
    """Write matching events to OUTPUT (JSONL or CSV); the file appears only when complete."""
    filters = _filters(options)
    with _trail(settings) as trail:
        with atomic_text_file(output) as out:
            count = trail.export(filters, cast("ExportFormat", fmt), out)
        trail.record(
            action="audit.export",
            resource="audit",
            decision="allow",
            outcome="success",
            principal=CLI_PRINCIPAL,
            customer=filters.customer,
            details={**_filter_details(filters), "format": fmt, "rows": count},
        )
    click.echo(f"exported {count} events to {output}")


@audit.command("bundle")
@click.option("--from", "first_seq", required=True, type=int, help="First event (seq).")
@click.option("--to", "last_seq", required=True, type=int, help="Last event (seq), inclusive.")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def bundle_command(settings: Settings, first_seq: int, last_seq: int, output: Path) -> None:
    """Write a signed evidence bundle (ZIP) of events FROM..TO for a regulator or an auditor.

    The bundle holds the events, their chain hashes, the covering signed checkpoints, the public
    key and VERIFY.txt (how to check it without guard). OUTPUT appears only when complete.
    """
    with _trail(settings) as trail:
        audited: dict[str, str | int | bool] = {"first_seq": first_seq, "last_seq": last_seq}
        try:
            data = trail.evidence_bundle(first_seq=first_seq, last_seq=last_seq)
        except AuditInputError:
            trail.record(
                action="audit.bundle",
                resource="audit",
                decision="allow",
                outcome="failure",
                principal=CLI_PRINCIPAL,
                details={**audited, "reason": "invalid-range"},
            )
            raise
        with atomic_binary_file(output) as out:
            out.write(data)
        digest = hashlib.sha256(data).hexdigest()
        trail.record(
            action="audit.bundle",
            resource="audit",
            decision="allow",
            outcome="success",
            principal=CLI_PRINCIPAL,
            details={**audited, "bundle_sha256": digest},
        )
    click.echo(f"wrote the evidence bundle of events {first_seq}..{last_seq} to {output}")
    click.echo(f"sha256 {digest}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


@audit.command("verify-bundle")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def verify_bundle_command(settings: Settings, bundle_file: Path) -> None:
    """Check an evidence bundle offline; exit 1 with the first problem and its seq.

    Uses only the bundle and its public key (no database, no guard key): checksums, every
    event's hash, the links, the checkpoint signatures and heads. The check is then audited.
    """
    report = verify_bundle(bundle_file)
    details: dict[str, str | int | bool] = {
        "ok": report.ok,
        "events": report.events_checked,
        "checkpoints": report.checkpoints_checked,
        "bundle_sha256": _file_sha256(bundle_file),
    }
    if report.first_seq is not None and report.last_seq is not None:
        details.update(first_seq=report.first_seq, last_seq=report.last_seq)
    if report.bad_seq is not None:
        details["bad_seq"] = report.bad_seq
    with _trail(settings) as trail:
        trail.record(
            action="audit.verify_bundle",
            resource="audit",
            decision="allow",
            outcome="success" if report.ok else "failure",
            principal=CLI_PRINCIPAL,
            details=details,
        )
    click.echo(report.summary())
    if not report.ok:
        sys.exit(EXIT_BROKEN)
