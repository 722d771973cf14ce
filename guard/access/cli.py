"""``guard principals`` (API keys) and ``guard policies`` (Casbin policy) commands.

Register with ``main.add_command(principals)`` and ``main.add_command(policies)``; each command
receives the Settings as ``ctx.obj``. Keys are printed once, at creation, and never again.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from guard.cligroup import GuardGroup
from guard.errors import GuardError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from sqlalchemy.orm import Session, sessionmaker

    from guard.access.apikeys import ApiKeyService
    from guard.access.audit import AuditRecorder
    from guard.config import Settings


def _audit_trail(settings: Settings, factory: sessionmaker[Session]) -> AuditRecorder | None:
    """The audit trail, when guard.audit is installed."""
    try:
        from guard.audit.service import AuditTrail  # noqa: PLC0415 - optional capability
    except ImportError:  # pragma: no cover - TODO: drop once guard.audit always ships
        return None
    trail: AuditRecorder = AuditTrail(settings, session_factory=factory)
    return trail


@contextmanager
def _database(settings: Settings) -> Iterator[tuple[sessionmaker[Session], AuditRecorder | None]]:
    """A migrated database's session factory and the audit trail; disposed afterwards."""
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        yield factory, _audit_trail(settings, factory)
    finally:
        engine.dispose()


@contextmanager
def _api_keys(settings: Settings) -> Iterator[ApiKeyService]:
    from guard.access.apikeys import ApiKeyService  # noqa: PLC0415 - SQLAlchemy only when used

    with _database(settings) as (factory, audit):
        service = ApiKeyService(factory, audit=audit)
        try:
            yield service
        finally:
            service.close()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


# --------------------------------------------------------------------------- principals


@click.group(cls=GuardGroup)
def principals() -> None:
    """Create, list and revoke API keys (principals with a role and a tenant)."""


@principals.command("create")
@click.option("--name", required=True, help="Who or what holds the key (shown in lists).")
@click.option(
    "--role", required=True, help="agent, supervisor, compliance_officer, analyst, admin."
)
@click.option("--tenant", required=True, help="The tenant the key acts in (and only there).")
@click.option(
    "--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expire after N days."
)
@click.pass_obj
def principals_create(
    settings: Settings, name: str, role: str, tenant: str, expires_in_days: int | None
) -> None:
    """Create an API key and print it once; it cannot be shown again."""
    expires_in = timedelta(days=expires_in_days) if expires_in_days is not None else None
    with _api_keys(settings) as service:
        principal, key = service.create(name=name, role=role, tenant=tenant, expires_in=expires_in)
    click.echo(f"created API key {principal.id} (role {principal.role}, tenant {principal.tenant})")
    click.echo(key)
    click.echo(
        "WARNING: this key is shown only now and cannot be shown again; store it in a secret "
        "manager. If it is lost, revoke it and create another.",
        err=True,
    )


@principals.command("list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@click.pass_obj
def principals_list(settings: Settings, tenant: str | None) -> None:
    """List API keys (ids, names, roles, status), never the keys themselves."""
    from guard.access.apikeys import KEY_PREFIX, _utcnow  # noqa: PLC0415

    with _api_keys(settings) as service:
        keys = service.list(tenant)
    if not keys:
        click.echo("no API keys")
        return
    now = _utcnow()
    click.echo(
        f"{'id':<36}  {'key':<14}  {'role':<18}  {'tenant':<16}  {'status':<8}  expires  name"
    )
    for info in keys:
        click.echo(
            f"{info.id:<36}  {KEY_PREFIX + info.prefix + '_…':<14}  {info.role:<18}  "
            f"{info.tenant:<16}  {info.status(now):<8}  {_when(info.expires_at)}  {info.name}"
        )


@principals.command("revoke")
@click.argument("key_id")
@click.pass_obj
def principals_revoke(settings: Settings, key_id: str) -> None:
    """Revoke the API key KEY_ID (from ``guard principals list``); it stops working at once."""
    with _api_keys(settings) as service:
        service.revoke(key_id)
    click.echo(f"revoked API key {key_id}")


# --------------------------------------------------------------------------- policies


@click.group(cls=GuardGroup)
def policies() -> None:
    """Validate and explain the Casbin access policy (policies/model.conf, policy.csv)."""


@policies.command("reload")
@click.pass_obj
def policies_reload(settings: Settings) -> None:
    """Validate model.conf and policy.csv as a reload would; report what is wrong."""
    from guard.access.enforcer import AccessControl  # noqa: PLC0415

    with _database(settings) as (_, audit):
        try:
            access = AccessControl(settings, audit=audit)
        except GuardError as exc:
            if audit is not None:
                audit.record(
                    action="policy.reload",
                    resource="policy",
                    decision="deny",
                    outcome="failure",
                    details={"reason": exc.message[:200]},
                )
            raise
        access.reload()
    click.echo(
        f"policy in {settings.policies_dir} is valid and reloaded; running servers on this "
        "database follow within a second"
    )


@policies.command("check")
@click.option("--role", required=True, help="The role asking.")
@click.option("--tenant", required=True, help="The tenant it acts in.")
@click.option("--action", required=True, help="e.g. redact, reveal, read.")
@click.option("--resource", "obj", required=True, help="The object: text, token, audit, ...")
@click.pass_obj
def policies_check(settings: Settings, role: str, tenant: str, action: str, obj: str) -> None:
    """Explain whether ROLE may ACTION the RESOURCE in TENANT, and which policy line says so."""
    from guard.access.enforcer import AccessControl  # noqa: PLC0415

    with _database(settings) as (_, audit):
        explanation = AccessControl(settings, audit=audit).explain(role, tenant, action, obj)
    verdict = "ALLOWED" if explanation.allowed else "DENIED"
    click.echo(
        f"{verdict}: {role} in {tenant} may{'' if explanation.allowed else ' not'} {action} {obj}"
    )
    click.echo(f"  {explanation.reason}")
