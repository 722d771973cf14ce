"""``guard keys``: create, inspect, rotate and retire the key-encryption keys of customer records.

Every key event (init, rotation, retirement, and each refusal) is written to the audit trail
with principal ``cli``. Rotation re-wraps data keys in short compare-and-set transactions while
the service keeps running; after a crash, ``guard keys rotate --resume`` finishes the job.

Register with ``main.add_command(keys)``; commands receive :class:`~guard.config.Settings` as
``ctx.obj``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from guard.audit.service import AuditTrail
from guard.crypto.envelope import (
    CombinedDataKeyStore,
    EnvelopeCipher,
    retire_version,
    rewrap_all,
)
from guard.crypto.errors import KeyConfigurationError
from guard.crypto.providers import initialise_key_provider, load_key_provider
from guard.errors import GuardError
from guard.export.service import PurposeKeyStore
from guard.records.repository import SqlDataKeyStore
from guard.storage.engine import create_engine_for, make_session_factory
from guard.storage.migrate import upgrade_to_head

if TYPE_CHECKING:
    from collections.abc import Iterator

    from guard.config import Settings
    from guard.crypto.providers import KeyProvider

CLI_PRINCIPAL = "cli"
RESOURCE = "keys"
#: Exit code when a rotation ends with data keys it could not re-wrap.
EXIT_INCOMPLETE = 1
#: Record ids of failed data keys printed after a rotation (all are in the audit count).
FAILED_SHOWN = 10


class KeyRefusedError(GuardError):
    """A key operation refused for a reason the operator can fix (exit 1, not 3)."""

    status_code = 409
    type_slug = "key-operation-refused"


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[tuple[CombinedDataKeyStore, AuditTrail]]:
    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        # customers' data keys and the export purposes' keys rotate (and retire) together
        store = CombinedDataKeyStore(SqlDataKeyStore(factory), PurposeKeyStore(factory))
        yield store, AuditTrail(settings, factory)
    finally:
        engine.dispose()


def _audit(
    trail: AuditTrail, action: str, *, outcome: str = "success", **details: str | int | bool
) -> None:
    trail.record(
        action=action,
        resource=RESOURCE,
        decision="allow" if outcome != "denied" else "deny",
        outcome="failure" if outcome == "denied" else outcome,
        principal=CLI_PRINCIPAL,
        details=details,
    )


def _location(settings: Settings, provider: KeyProvider) -> str:
    if provider.name == "pkcs11":
        return f"PKCS#11 token {settings.pkcs11_token_label!r} ({settings.pkcs11_library})"
    return str(settings.keyring_file)


@click.group()
def keys() -> None:
    """Key-encryption keys of customer records: init, status, rotate, retire."""


@keys.command("init")
@click.pass_obj
def keys_init(settings: Settings) -> None:
    """Create the keyring (or the first KEK on the HSM token) with KEK version 1."""
    with _store(settings) as (_, trail):
        provider = initialise_key_provider(settings)
        _audit(trail, "keys.init", provider=provider.name, version=provider.current_version())
    click.echo(f"created KEK version 1 in {_location(settings, provider)}")


@keys.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def keys_status(settings: Settings, as_json: bool) -> None:
    """KEK versions, how many data keys each wraps, and any unfinished rotation."""
    provider = load_key_provider(settings, create=False)
    with _store(settings) as (store, _):
        counts = store.count_by_version()
    current = provider.current_version()
    versions = provider.versions()
    known = {v.version for v in versions if v.state == "active"}
    pending = sum(n for v, n in counts.items() if v != current)
    missing = sorted(v for v in counts if v not in known)
    status: dict[str, Any] = {
        "provider": provider.name,
        "location": _location(settings, provider),
        "current_version": current,
        "versions": [
            {
                "version": v.version,
                "state": v.state,
                "created_at": v.created_at.isoformat() if v.created_at else None,
                "retired_at": v.retired_at.isoformat() if v.retired_at else None,
                "data_keys": counts.get(v.version, 0),
            }
            for v in versions
        ],
        "data_keys_not_under_current": pending,
        "versions_missing_from_provider": missing,
    }
    if as_json:
        click.echo(json.dumps(status, indent=2))
    else:
        click.echo(f"provider: {status['provider']} ({status['location']})")
        click.echo(f"current KEK version: {current}")
        for row in status["versions"]:
            mark = "*" if row["version"] == current else " "
            click.echo(
                f" {mark} v{row['version']:<4} {row['state']:<8} data keys: {row['data_keys']:<8} "
                f"created {row['created_at'] or '-'}"
            )
        if pending:
            click.echo(
                f"{pending} data key(s) are under older versions: a rotation is unfinished; "
                "run `guard keys rotate --resume`"
            )
    if missing:
        click.echo(
            f"guard: error: the database holds data keys under KEK version(s) "
            f"{', '.join(map(str, missing))} that the key provider does not have "
            "(keyring restored from an older copy?); those records cannot be decrypted",
            err=True,
        )
        sys.exit(EXIT_INCOMPLETE)


@keys.command("rotate")
@click.option(
    "--resume", is_flag=True, help="Finish an unfinished rotation without creating a new version."
)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.pass_obj
def keys_rotate(settings: Settings, resume: bool, batch_size: int, progress: bool | None) -> None:
    """Create a new KEK version and re-wrap every data key under it (data is not touched)."""
    provider = load_key_provider(settings, create=False)
    cipher = EnvelopeCipher(provider)
    with _store(settings) as (store, trail):
        if resume:
            target = provider.current_version()
        else:
            target = provider.create_version()
            _audit(trail, "keys.create_version", provider=provider.name, version=target)
        todo = sum(n for v, n in store.count_by_version().items() if v != target)
        show = sys.stderr.isatty() if progress is None else progress
        sink = sys.stderr if show else io.StringIO()
        with click.progressbar(length=todo, label=f"re-wrapping under v{target}", file=sink) as bar:
            report = rewrap_all(
                cipher, store, target_version=target, batch_size=batch_size, progress=bar.update
            )
        _audit(
            trail,
            "keys.rotate",
            outcome="success" if report.complete else "failure",
            version=target,
            rewrapped=report.rewrapped,
            skipped=report.skipped,
            failed=len(report.failed),
            remaining=report.remaining,
            resumed=resume,
        )
    rate = report.rewrapped / report.seconds if report.seconds else 0.0
    click.echo(
        f"KEK version {target}: re-wrapped {report.rewrapped} data key(s) in "
        f"{report.seconds:.2f} s ({rate:.0f}/s); {report.skipped} changed meanwhile"
    )
    if report.failed:
        shown = ", ".join(report.failed[:FAILED_SHOWN])
        more = " ..." if len(report.failed) > FAILED_SHOWN else ""
        click.echo(
            f"guard: error: {len(report.failed)} data key(s) failed authentication and were left "
            f"as they are (record ids: {shown}{more})",
            err=True,
        )
    if not report.complete:
        click.echo(
            f"guard: error: {report.remaining} data key(s) remain under older versions; "
            "run `guard keys rotate --resume`",
            err=True,
        )
        sys.exit(EXIT_INCOMPLETE)


@keys.command("retire")
@click.argument("version", type=click.IntRange(1))
@click.pass_obj
def keys_retire(settings: Settings, version: int) -> None:
    """Destroy KEK VERSION; refused while it is current or still wraps any data key."""
    provider = load_key_provider(settings, create=False)
    with _store(settings) as (store, trail):
        try:
            retire_version(provider, store, version)
        except GuardError as exc:
            _audit(
                trail, "keys.retire", outcome="denied", version=version, reason=exc.message[:200]
            )
            if isinstance(exc, KeyConfigurationError):
                raise KeyRefusedError(exc.message) from None
            raise
        _audit(trail, "keys.retire", version=version)
    click.echo(f"KEK version {version} retired: its key material is destroyed")
