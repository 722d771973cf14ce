"""``guard incidents``: scan the trail, list, show, transition, notes, steps, notices, register.

The same :class:`~guard.incidents.service.IncidentService` and
:class:`~guard.incidents.scanner.IncidentScanner` as ``/v1/incidents`` and ``guard serve``'s
background scan; every command is audited as principal ``cli``. The command line is the
operator's: it sees every tenant's incidents. Notes and customer notices need detection (notes
are redacted; names are decrypted for notices), so those commands load the NLP model.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guard.cligroup import CliDatabase, open_database
from guard.files import atomic_text_file
from guard.incidents.models import STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from guard.config import Settings
    from guard.incidents.schemas import IncidentDetail
    from guard.incidents.service import IncidentService

CLI_PRINCIPAL = "cli"
#: A stated reason shorter than this is no reason.
MIN_REASON = 3


class _Store(CliDatabase):
    """The database, audit trail and incident service a command works on."""

    @property
    def incidents(self) -> IncidentService:
        from guard.incidents.service import build_incident_service, note_redactor  # noqa: PLC0415

        redact = note_redactor(self.services) if self.services is not None else _no_notes
        return build_incident_service(self.settings, self.session_factory, redact_note=redact)


def _no_notes(_text: str, _tenant: str | None) -> str:
    msg = "this command does not take notes"
    raise RuntimeError(msg)


@contextlib.contextmanager
def _open(settings: Settings, *, detection: bool = False) -> Iterator[_Store]:
    """The configured database (migrated); with ``detection``, guard's services in-process.

    Only notes (redacted) and customer notices (names decrypted, the reason redacted) need
    detection; every other command starts without loading the NLP model.
    """
    with open_database(settings, detection=detection) as database:
        yield _Store(**vars(database))


def _audit(store: _Store, action: str, incident_id: str | None, **details: Any) -> None:  # noqa: ANN401 - audit detail values
    store.audit.record(
        action=action,
        resource=f"incident:{incident_id}" if incident_id else "incidents",
        decision="allow",
        outcome="success",
        principal=CLI_PRINCIPAL,
        customer=details.pop("customer", None),
        details=details,
    )


@click.group()
def incidents() -> None:
    """Incidents: Sigma rules over the audit trail, runbooks, the 72-hour clock, notices."""


@incidents.command("scan")
@click.option("--max-events", type=click.IntRange(min=1), default=None, help="Stop after N.")
@click.pass_obj
def scan_command(settings: Settings, max_events: int | None) -> None:
    """Evaluate the rules over the events after the cursor; open or update incidents."""
    from guard.incidents.scanner import IncidentScanner  # noqa: PLC0415

    with _open(settings) as store:
        scanner = IncidentScanner(
            settings=settings, session_factory=store.session_factory, trail=store.audit
        )
        report = scanner.scan(max_events=max_events)
        _audit(
            store,
            "incidents.scan",
            None,
            events=report.events,
            opened=report.opened,
            updated=report.updated,
        )
    rate = report.events / report.seconds if report.seconds else 0.0
    click.echo(
        f"scanned {report.events} events up to seq {report.cursor} in {report.seconds:.2f} s "
        f"({rate:.0f}/s): {report.hits} hits, {report.opened} incidents opened, "
        f"{report.updated} updated; evidence verified for {report.sealed}"
    )


@incidents.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option(
    "--severity", type=click.Choice(["informational", "low", "medium", "high", "critical"])
)
@click.option("--tenant", help="Only this tenant's incidents (and system-wide ones).")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_obj
def list_command(
    settings: Settings,
    status: str | None,
    severity: str | None,
    tenant: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Incidents, newest first, with the time left on each deadline."""
    with _open(settings) as store:
        page = store.incidents.list_incidents(
            tenant=tenant, status=status, severity=severity, limit=limit
        )
        _audit(store, "incidents.list", None, results=len(page.incidents))
    if as_json:
        click.echo(page.model_dump_json(indent=2))
        return
    if not page.incidents:
        click.echo("no incidents")
    for item in page.incidents:
        authority = next(d for d in item.deadlines if d.name == "authority")
        click.echo(
            f"{item.reference}  {item.id}  {item.status:<9} {item.severity:<8} "
            f"{item.title}  ({item.affected_customers} customers; authority: "
            f"{_clock(authority.seconds_left, authority.met_at is not None)})"
        )


@incidents.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_obj
def show_command(settings: Settings, incident_id: str, as_json: bool) -> None:
    """An incident: evidence, clocks, runbook checklist and timeline."""
    with _open(settings) as store:
        detail = store.incidents.get(tenant=None, incident_id=incident_id)
        _audit(store, "incidents.read", incident_id)
    if as_json:
        click.echo(detail.model_dump_json(indent=2))
        return
    _print_detail(detail)


@incidents.command("transition")
@click.argument("incident_id")
@click.argument("status", type=click.Choice(STATUSES[1:]))
@click.option("--note", help="Why (redacted before it is stored).")
@click.pass_obj
def transition_command(settings: Settings, incident_id: str, status: str, note: str | None) -> None:
    """Move an incident forward: triaged, contained, resolved, closed."""
    with _open(settings, detection=note is not None) as store:
        detail = store.incidents.transition(
            tenant=None, incident_id=incident_id, status=status, actor=CLI_PRINCIPAL, note=note
        )
        _audit(store, "incidents.transition", incident_id, to=status)
    click.echo(f"{detail.reference} is now {detail.status}")


@incidents.command("note")
@click.argument("incident_id")
@click.argument("note")
@click.pass_obj
def note_command(settings: Settings, incident_id: str, note: str) -> None:
    """Add a note to the timeline (personal data in it is redacted first)."""
    with _open(settings, detection=True) as store:
        store.incidents.add_note(
            tenant=None, incident_id=incident_id, note=note, actor=CLI_PRINCIPAL
        )
        _audit(store, "incidents.note", incident_id)
    click.echo("note added")


@incidents.command("tick")
@click.argument("incident_id")
@click.argument("step_id")
@click.option("--undo", is_flag=True, help="Untick the step.")
@click.pass_obj
def tick_command(settings: Settings, incident_id: str, step_id: str, undo: bool) -> None:
    """Tick (or --undo) a runbook step of an incident."""
    with _open(settings) as store:
        state = store.incidents.tick(
            tenant=None,
            incident_id=incident_id,
            step_id=step_id,
            actor=CLI_PRINCIPAL,
            done=not undo,
        )
        _audit(store, "incidents.step", incident_id, step=state.id, done=state.done)
    click.echo(f"[{'x' if state.done else ' '}] {state.id}: {state.text}")


@incidents.command("notified")
@click.argument("incident_id")
@click.argument("party", type=click.Choice(["authority", "customers"]))
@click.pass_obj
def notified_command(settings: Settings, incident_id: str, party: str) -> None:
    """Record that the authority or the customers were notified (that clock stops)."""
    with _open(settings) as store:
        detail = store.incidents.mark_notified(
            tenant=None, incident_id=incident_id, party=party, actor=CLI_PRINCIPAL
        )
        _audit(store, "incidents.notified", incident_id, party=party)
    click.echo(f"{detail.reference}: {party} notified")


@incidents.command("notice")
@click.argument("incident_id")
@click.option(
    "--to",
    "party",
    type=click.Choice(["authority", "customers"]),
    default="authority",
    show_default=True,
)
@click.option("--tenant", help="Tenant of the customers (default: the incident's).")
@click.option("--record", "record_ids", multiple=True, help="Only this customer (repeatable).")
@click.option("--reason", help="Why customers' names are decrypted (required for customers).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per customer into this directory (0600), not to standard output.",
)
@click.pass_obj
def notice_command(
    settings: Settings,
    incident_id: str,
    party: str,
    tenant: str | None,
    record_ids: tuple[str, ...],
    reason: str | None,
    output: Path | None,
) -> None:
    """Draft the notice to the supervisory authority, or to each affected customer."""
    if party == "authority":
        with _open(settings) as store:
            text = store.incidents.authority_notice(tenant=None, incident_id=incident_id)
            _audit(store, "incidents.notice", incident_id, party="authority")
        click.echo(text)
        return
    if not reason or len(reason.strip()) < MIN_REASON:
        raise click.UsageError("--reason is required to render notices to customers")
    with _open(settings, detection=True) as store:
        from guard.records.endpoints import build_record_service  # noqa: PLC0415

        services = store.services
        assert services is not None  # noqa: S101 - opened with detection
        service = store.incidents
        tenant = tenant or service.get(tenant=None, incident_id=incident_id).tenant
        if tenant is None:
            raise click.UsageError("this incident names no tenant: give --tenant")
        entities = services.analysis.analyze(reason, tenant=tenant)
        stated = services.redactor.redact_text(
            reason, entities, channel="message", tenant=tenant
        ).text[:500]
        drafts, unresolved = service.customer_notices(
            tenant=tenant,
            incident_id=incident_id,
            records=build_record_service(services),
            hash_of=services.audit.customer_hash,
            record_ids=list(record_ids) or None,
        )
        for record_id, _ in drafts:
            _audit(
                store,
                "incidents.notice",
                incident_id,
                party="customer",
                reason=stated,
                customer=record_id,
            )
    _emit_notices(drafts, output)
    click.echo(
        f"{len(drafts)} customer notice(s); {unresolved} affected customer(s) are not records "
        "of this tenant",
        err=True,
    )


def _emit_notices(drafts: list[tuple[str, str]], output: Path | None) -> None:
    if output is None:
        for record_id, text in drafts:
            click.echo(f"--- {record_id}\n{text}")
        return
    output.mkdir(parents=True, exist_ok=True)
    for record_id, text in drafts:
        path = output / f"notice-{record_id}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)


@incidents.command("register")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Atomic write.")
@click.option("--tenant", help="Only this tenant's incidents (and system-wide ones).")
@click.pass_obj
def register_command(settings: Settings, fmt: str, output: Path | None, tenant: str | None) -> None:
    """The breach register (GDPR Art. 33(5)): every incident, facts, effects, remedy."""
    from guard.incidents.service import write_register_csv  # noqa: PLC0415

    with _open(settings) as store:
        entries = [entry.as_dict() for entry in store.incidents.register(tenant=tenant)]
        _audit(store, "incidents.register", None, results=len(entries), format=fmt)

    def write(out: Any) -> None:  # noqa: ANN401 - a text stream
        if fmt == "csv":
            write_register_csv(entries, out)
        else:
            out.write(json.dumps({"incidents": entries}, indent=2) + "\n")

    if output is None:
        write(sys.stdout)
        return
    with atomic_text_file(output) as out:
        write(out)
    click.echo(f"wrote {len(entries)} incidents to {output}", err=True)


@incidents.group("rules")
def rules_group() -> None:
    """The detection rules (Sigma, audit/rules/): validate, export to a SIEM."""


@rules_group.command("validate")
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.pass_obj
def rules_validate(settings: Settings, directory: Path | None) -> None:
    """Load every rule file; exit 1 naming the file, rule and field of the first problem."""
    from guard.incidents.sigma import RuleSet  # noqa: PLC0415

    rules = RuleSet.load(directory or settings.incident_rules_dir)
    for rule in rules.rules:
        click.echo(f"{rule.id}  {rule.level:<13} {rule.kind:<13} {rule.title}")
    click.echo(f"{len(rules.rules)} rules valid", err=True)


@rules_group.command("export")
@click.option("--target", required=True, help="A pySigma backend (e.g. sqlite).")
@click.option("--pipeline", help="A pySigma processing pipeline to apply first.")
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.pass_obj
def rules_export(
    settings: Settings, target: str, pipeline: str | None, directory: Path | None
) -> None:
    """Convert the rules for a SIEM through an installed pySigma backend."""
    from guard.incidents.sigma import RuleSet, export_rules  # noqa: PLC0415

    rules = RuleSet.load(directory or settings.incident_rules_dir)
    click.echo(export_rules(rules, target, pipeline=pipeline))


def _chain_word(ok: bool | None) -> str:
    return "not yet verified" if ok is None else ("intact" if ok else "BROKEN")


def _clock(seconds: int, met: bool) -> str:
    if met:
        return "met"
    sign = "overdue by " if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}h{rest // 60:02d}m" + ("" if sign else " left")


def _print_detail(detail: IncidentDetail) -> None:
    click.echo(f"{detail.reference}  {detail.title}")
    click.echo(f"  id: {detail.id}   status: {detail.status}   severity: {detail.severity}")
    click.echo(f"  rule: {detail.rule_id}   tenant: {detail.tenant or '(system-wide)'}")
    click.echo(f"  became aware: {detail.became_aware_at.isoformat()}")
    for clock in detail.deadlines:
        click.echo(
            f"  deadline {clock.name}: {clock.due_at.isoformat()} "
            f"({_clock(clock.seconds_left, clock.met_at is not None)}) - {clock.basis}"
        )
    evidence = detail.evidence
    click.echo(
        f"  evidence: audit events {evidence.first_seq}..{evidence.last_seq}; "
        f"chain {_chain_word(evidence.chain_ok)} ({evidence.chain_detail})"
    )
    click.echo(f"  affected customers: {detail.affected_customers}")
    click.echo(f"  data categories: {', '.join(detail.data_categories) or '-'}")
    click.echo(f"  what happened: {detail.description}")
    click.echo(f"  runbook: {detail.runbook_title}")
    for step in detail.checklist:
        click.echo(f"    [{'x' if step.done else ' '}] {step.phase:<9} {step.id}: {step.text}")
    click.echo("  timeline:")
    for entry in detail.timeline:
        facts = ", ".join(f"{k}={v}" for k, v in entry.facts.items())
        note = f" - {entry.note}" if entry.note else ""
        click.echo(f"    {entry.ts.isoformat()} {entry.kind} by {entry.actor}: {facts}{note}")
