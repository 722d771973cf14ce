"""``guard retention``: apply policies/retention.yaml, and legal holds.

    guard retention run [--dry-run] [--confirm-erase-all] [--json]
    guard retention schedule [--tenant T]
    guard retention runs [--limit N]
    guard retention holds list [--tenant T] [--all]
    guard retention holds place --tenant T (--customer RECORD_ID | --incident INCIDENT_ID)
                                --reason TEXT
    guard retention holds release HOLD_ID [--tenant T]

The same services as ``/v1/retention`` and the scheduler of ``guard serve``; every command is
audited as principal ``cli``. The command line is the operator's: it sees every tenant.
Placing a hold redacts its reason, so that one command loads the NLP model.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from guard.cligroup import CliDatabase, open_database
from guard.subjects.holds import SCOPE_CUSTOMER, SCOPE_INCIDENT

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.subjects.holds import HoldInfo
    from guard.subjects.retention import BatchProgress, PhaseReport, RetentionReport

CLI_PRINCIPAL = "cli"
RESOURCE = "retention"
_VERBS = {
    "records": ("erased", "to erase"),
    "notes": ("notes removed", "notes to remove"),
    "subject_packages": ("packages deleted", "packages to delete"),
    "audit": ("events pruned", "events to prune"),
}


def _audit(
    store: CliDatabase,
    action: str,
    *,
    outcome: str = "success",
    resource: str = RESOURCE,
    customer: str | None = None,
    tenant: str | None = None,
    **details: str | int | bool,
) -> None:
    store.audit.record(
        action=action,
        resource=resource,
        decision="allow",
        outcome=outcome,
        principal=CLI_PRINCIPAL,
        tenant=tenant,
        customer=customer,
        details=details,
    )


@click.group()
def retention() -> None:
    """Retention: remove what is past its period (policies/retention.yaml); legal holds."""


# ------------------------------------------------------------------------------ run


def _phase_line(phase: PhaseReport, *, dry_run: bool) -> str:
    from guard.subjects.retention import period_text  # noqa: PLC0415

    done, todo = _VERBS[phase.kind]
    if phase.kind == "subject_packages":
        period = "past expiry"
    elif phase.kind == "audit":
        period = f"{period_text(phase.period)} (default)"
    else:
        period = period_text(phase.period)
    if phase.skipped_zero:
        what = "skipped: a zero period (confirm it with guard retention run --confirm-erase-all)"
    else:
        what = f"{phase.removed:,} {todo if dry_run else done}"
        if phase.held:
            what += f", {phase.held:,} held"
        if phase.kind == "audit":
            if phase.first_seq is not None:
                what += f" (seq {phase.first_seq}..{phase.through_seq})"
            if phase.stop is not None:
                what += f"; ends at: {phase.stop}"
    tenant = phase.tenant or "all"
    return f"  {tenant:<16} {phase.kind:<17} {period:<26} {what}"


def _report_json(report: RetentionReport) -> str:
    return json.dumps(
        {
            "dry_run": report.dry_run,
            "run_id": report.run_id,
            "resumed": report.resumed,
            "as_of": report.as_of.isoformat(),
            "policy_sha256": report.policy_sha256,
            "zero_rules": report.zero_rules,
            "skipped_rules": report.skipped_rules,
            "batches": report.batches,
            "phases": [
                {
                    "tenant": phase.tenant,
                    "kind": phase.kind,
                    "period": None if phase.period is None else str(phase.period),
                    "cutoff": None if phase.cutoff is None else phase.cutoff.isoformat(),
                    "skipped_zero": phase.skipped_zero,
                    "removed": phase.removed,
                    "held": phase.held,
                    "ids": phase.removed_ids,
                    "first_seq": phase.first_seq,
                    "through_seq": phase.through_seq,
                    "stop": phase.stop,
                }
                for phase in report.phases
            ],
        },
        indent=2,
    )


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@click.option(
    "--confirm-erase-all",
    is_flag=True,
    help="Apply zero periods too (they remove everything of their kind at once).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document (with the ids).")
@click.option(
    "--progress/--no-progress", default=None, help="A line per batch (default: on a terminal)."
)
@click.pass_obj
def run_command(
    settings: Settings,
    dry_run: bool,
    confirm_erase_all: bool,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Remove what is past its period, in batches, resumably (an interrupted run goes on)."""
    from guard.subjects.retention import build_retention_service  # noqa: PLC0415

    show = sys.stderr.isatty() if progress is None else progress

    def on_batch(batch: BatchProgress) -> None:
        if show:
            click.echo(
                f"  batch {batch.batch}: {batch.phase} {batch.removed} removed, {batch.held} held",
                err=True,
            )

    with open_database(settings) as store:
        service = build_retention_service(settings, store.session_factory, store.audit)
        if dry_run:
            report = service.plan(started_by=CLI_PRINCIPAL)
        else:
            report = service.run(
                started_by=CLI_PRINCIPAL, confirm_erase_all=confirm_erase_all, on_batch=on_batch
            )
    if as_json:
        click.echo(_report_json(report))
        return
    if report.dry_run:
        head = "dry run (nothing changed)"
        if report.run_id is not None:
            head += f": resuming interrupted run {report.run_id}"
    else:
        head = f"retention run {report.run_id}" + (" (resumed)" if report.resumed else "")
    click.echo(
        f"{head}, as of {report.as_of:%Y-%m-%d %H:%M:%S} UTC, policy {report.policy_sha256[:12]}"
    )
    for phase in report.phases:
        click.echo(_phase_line(phase, dry_run=report.dry_run))
    if report.dry_run and report.zero_rules:
        click.echo(
            f"zero periods: {', '.join(report.zero_rules)}; a run needs --confirm-erase-all",
            err=True,
        )


# ------------------------------------------------------------------------- schedule


@retention.command("schedule")
@click.option("--tenant", help="One tenant's schedule (default: the default and each named one).")
@click.pass_obj
def schedule_command(settings: Settings, tenant: str | None) -> None:
    """How long each kind of data is kept, per tenant (policies/retention.yaml)."""
    from guard.subjects.policy import (  # noqa: PLC0415
        RETENTION_FILENAME,
        RETENTION_KINDS,
        load_retention_policy,
    )
    from guard.subjects.retention import default_period, period_text  # noqa: PLC0415

    policy = load_retention_policy(settings.policies_dir / RETENTION_FILENAME)
    with open_database(settings) as store:
        _audit(store, "retention.schedule", tenant=tenant)
    scopes = [tenant] if tenant else ["default", *policy.named_tenants()]
    interval = settings.retention_interval_seconds
    every = f"every {interval:g} s" if interval > 0 else "off (GUARD_RETENTION_INTERVAL_SECONDS=0)"
    click.echo(f"policy {policy.sha256[:12]}; scheduler in guard serve: {every}")
    for scope in scopes:
        own = scope in policy.named_tenants()
        label = scope if scope == "default" or own else f"{scope} (the default)"
        click.echo(label)
        for kind in RETENTION_KINDS:
            period = policy.period(scope, kind) if own else default_period(policy, kind)
            zero = "  (zero: needs --confirm-erase-all)" if period and period.amount == 0 else ""
            click.echo(f"  {kind:<17} {period_text(period)}{zero}")


# ------------------------------------------------------------------------------ runs


@retention.command("runs")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.pass_obj
def runs_command(settings: Settings, limit: int) -> None:
    """Recent retention runs, newest first, with their counts per tenant and kind."""
    from guard.subjects.retention import recent_runs, run_counts  # noqa: PLC0415

    with open_database(settings) as store:
        runs = recent_runs(store.session_factory, limit=limit)
        _audit(store, "retention.runs", results=len(runs))
    if not runs:
        click.echo("no retention runs yet")
    for run in runs:
        removed, held = run_counts(run, tenant=None)
        counts = ", ".join(f"{key} {value:,}" for key, value in removed.items()) or "nothing"
        held_text = f"; held {sum(held.values()):,}" if held else ""
        click.echo(
            f"{run.id}  {run.status:<8} {run.started_at:%Y-%m-%d %H:%M} by {run.started_by}: "
            f"{counts}{held_text}"
        )


# ----------------------------------------------------------------------------- holds


@retention.group("holds")
def holds() -> None:
    """Legal holds: what retention (and erasure) must leave alone."""


def _hold_line(hold: HoldInfo) -> str:
    state = "active" if hold.active else f"released {hold.released_at:%Y-%m-%d}"
    return (
        f"{hold.id}  {hold.tenant:<12} {hold.scope:<8} {hold.target}  {state}  "
        f"placed {hold.placed_at:%Y-%m-%d} by {hold.placed_by}: {hold.reason}"
    )


@holds.command("list")
@click.option("--tenant", help="One tenant's holds (default: every tenant).")
@click.option("--all", "include_released", is_flag=True, help="Released holds too.")
@click.pass_obj
def holds_list(settings: Settings, tenant: str | None, include_released: bool) -> None:
    """Legal holds, newest first."""
    from guard.subjects.holds import HoldService  # noqa: PLC0415

    with open_database(settings) as store:
        found = HoldService(store.session_factory).list_holds(
            tenant=tenant, include_released=include_released
        )
        _audit(store, "retention.holds", tenant=tenant, results=len(found))
    if not found:
        click.echo("no legal holds")
    for hold in found:
        click.echo(_hold_line(hold))


@holds.command("place")
@click.option("--tenant", required=True, help="The tenant of the customer or incident.")
@click.option("--customer", "record_id", help="The customer's record id.")
@click.option("--incident", "incident_id", help="The incident's id.")
@click.option("--reason", required=True, help="Why (redacted before it is stored).")
@click.pass_obj
def holds_place(
    settings: Settings,
    tenant: str,
    record_id: str | None,
    incident_id: str | None,
    reason: str,
) -> None:
    """Place a legal hold on a customer or an incident."""
    from guard.errors import GuardError, InvalidInputError  # noqa: PLC0415
    from guard.records.endpoints import build_record_service  # noqa: PLC0415
    from guard.redaction.reasons import reason_redactor  # noqa: PLC0415
    from guard.subjects.holds import HoldService  # noqa: PLC0415

    if (record_id is None) == (incident_id is None):
        raise InvalidInputError("give exactly one of --customer RECORD_ID or --incident ID")
    scope = SCOPE_CUSTOMER if record_id is not None else SCOPE_INCIDENT
    target = record_id or incident_id or ""
    with open_database(settings, detection=True) as store:
        services = store.services
        if services is None:  # pragma: no cover - opened with detection
            raise RuntimeError("guard's services did not start")
        service = HoldService(store.session_factory, build_record_service(services))
        # the stated reason is redacted as the API and subject requests redact theirs
        redact_reason = reason_redactor(services.analysis, services.redactor)
        try:
            hold = service.place(
                tenant=tenant,
                scope=scope,
                target=target,
                reason=reason,
                placed_by=CLI_PRINCIPAL,
                redact=lambda text, known: redact_reason(text, tenant, known),
            )
        except GuardError as exc:
            _audit(store, "retention.hold", outcome="failure", tenant=tenant, reason=exc.type_slug)
            raise
        _audit(
            store,
            "retention.hold",
            tenant=tenant,
            resource=RESOURCE if scope == SCOPE_CUSTOMER else f"incident:{target}",
            customer=target if scope == SCOPE_CUSTOMER else None,
            hold_id=hold.id,
            scope=scope,
        )
    click.echo(_hold_line(hold))


@holds.command("release")
@click.argument("hold_id")
@click.option("--tenant", help="Only if the hold is this tenant's.")
@click.pass_obj
def holds_release(settings: Settings, hold_id: str, tenant: str | None) -> None:
    """Release a legal hold: the next retention run may remove what it covered."""
    from guard.errors import GuardError  # noqa: PLC0415
    from guard.subjects.holds import HoldService  # noqa: PLC0415

    with open_database(settings) as store:
        try:
            hold = HoldService(store.session_factory).release(
                tenant=tenant, hold_id=hold_id, released_by=CLI_PRINCIPAL
            )
        except GuardError as exc:
            _audit(
                store, "retention.release", outcome="failure", tenant=tenant, reason=exc.type_slug
            )
            raise
        _audit(
            store,
            "retention.release",
            tenant=hold.tenant,
            resource=RESOURCE if hold.scope == SCOPE_CUSTOMER else f"incident:{hold.target}",
            customer=hold.target if hold.scope == SCOPE_CUSTOMER else None,
            hold_id=hold.id,
            scope=hold.scope,
        )
    click.echo(_hold_line(hold))
