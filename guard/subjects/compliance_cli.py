"""``guard compliance``: the record of processing and the privacy notice, made from policy.

    guard compliance ropa [--format md|json] [--tenant T] [--out FILE] [--date YYYY-MM-DD]
    guard compliance notice [--tenant T] [--out FILE] [--date YYYY-MM-DD]

The same functions as ``GET /v1/compliance/ropa`` and ``/notice``. Without ``--tenant`` the
documents describe the default every tenant without entries of its own gets; a tenant with no
entry of its own gets the default controller and periods, which is what guard applies to it.
Each document is audited as principal ``cli`` with its sha256 before it is printed or written;
``--out`` writes the file atomically (complete or not there). No clock is read: ``--date``
stamps the document, otherwise the same policies always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from guard.cligroup import GuardGroup, open_database

if TYPE_CHECKING:
    from datetime import datetime

    from guard.config import Settings
    from guard.subjects.facts import Document

CLI_PRINCIPAL: Final = "cli"


def _deliver(
    settings: Settings,
    document: Document,
    *,
    action: str,
    tenant: str | None,
    out: Path | None,
    details: dict[str, str | int | bool] | None = None,
) -> None:
    """Audit the document (fail closed: no audit, no document), then print or write it."""
    with open_database(settings) as database:
        database.audit.record(
            action=action,
            resource=action.replace(".", ":"),
            decision="allow",
            outcome="success",
            principal=CLI_PRINCIPAL,
            tenant=tenant,
            details={**(details or {}), "compliance_sha256": document.sha256},
        )
    if out is None:
        click.echo(document.text, nl=False)
        return
    from guard.files import atomic_text_file  # noqa: PLC0415 - only with --out

    try:
        with atomic_text_file(out) as handle:
            handle.write(document.text)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {out} ({exc.strerror or type(exc).__name__})"
        ) from None
    click.echo(f"wrote {out} (sha256 {document.sha256})", err=True)


_TENANT = click.option(
    "--tenant",
    default=None,
    help="The tenant to describe (default: every tenant without entries of its own).",
)
_OUT = click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the document to FILE (atomically) instead of standard output.",
)
_DATE = click.option(
    "--date",
    "stamp",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date the document (YYYY-MM-DD); without it, no date is printed.",
)


@click.group(cls=GuardGroup)
def compliance() -> None:
    """Record of processing (GDPR Art 30) and privacy notice, made from the policies."""


@compliance.command("ropa")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Markdown for people, JSON for tools (the same content).",
)
@_TENANT
@_OUT
@_DATE
@click.pass_obj
def ropa_command(
    settings: Settings, fmt: str, tenant: str | None, out: Path | None, stamp: datetime | None
) -> None:
    """The record of processing activities (GDPR Art. 30(1)), headings (a) to (g)."""
    from guard.subjects.ropa import record_of_processing  # noqa: PLC0415 - loads every policy

    document = record_of_processing(
        settings, tenant=tenant, fmt=fmt, generated_on=stamp.date() if stamp else None
    )
    _deliver(
        settings,
        document,
        action="compliance.ropa",
        tenant=tenant,
        out=out,
        details={"format": fmt},
    )


@compliance.command("notice")
@_TENANT
@_OUT
@_DATE
@click.pass_obj
def notice_command(
    settings: Settings, tenant: str | None, out: Path | None, stamp: datetime | None
) -> None:
    """The privacy notice for customers, in plain language, from the same facts."""
    from guard.subjects.notice import privacy_notice  # noqa: PLC0415 - loads every policy

    document = privacy_notice(settings, tenant=tenant, generated_on=stamp.date() if stamp else None)
    _deliver(settings, document, action="compliance.notice", tenant=tenant, out=out)
