"""``guard messages check``: the message guard from the command line, audited as principal ``cli``.

It runs the same :class:`~guard.messages.service.MessageGuard` as ``POST /v1/messages/check``,
on the configured database and keys, with detection in this process. The text to send goes to
standard output (nothing when blocked); the verdict, findings and tone advice to standard error,
or everything as one JSON document with ``--json``. Exit codes: 0 allow or redact, 2 block,
1 bad input or a failed check (unknown customer, lookup down), 3 configuration.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from guard.errors import GuardError

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.messages.service import MessageCheck

CLI_PRINCIPAL = "cli"
EXIT_BLOCK = 2
ACTION = "message.check"


@click.group()
def messages() -> None:
    """Check outgoing messages and notes before they are sent."""


@messages.command("check")
@click.argument("source", default="-", metavar="[FILE]")
@click.option(
    "--customer", "customer_id", default=None, help="Record id of the conversation's customer."
)
@click.option(
    "--channel",
    type=click.Choice(["message", "note"]),
    default="message",
    show_default=True,
    help="`message` to a customer, `note` internal.",
)
@click.option("--tenant", default="default", show_default=True, help="Tenant of the customer.")
@click.option("--conversation", "conversation_id", default="", help="Pseudonym scope.")
@click.option(
    "--customer-message",
    "last_message_file",
    default=None,
    metavar="FILE",
    help="A file holding the customer's last message (for the tone advice).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.pass_obj
def messages_check(
    settings: Settings,
    source: str,
    customer_id: str | None,
    channel: str,
    tenant: str,
    conversation_id: str,
    last_message_file: str | None,
    as_json: bool,
) -> None:
    """Check the draft in FILE (or standard input); exit 2 when it is blocked."""
    from guard.api.services import build_services  # noqa: PLC0415 - heavy imports, once
    from guard.cli import read_text_input  # noqa: PLC0415 - the CLI's one input reader
    from guard.detection.engine import Detector  # noqa: PLC0415
    from guard.detection.executor import InProcessAnalysis  # noqa: PLC0415
    from guard.messages.service import MessageGuard  # noqa: PLC0415
    from guard.records.endpoints import build_record_service  # noqa: PLC0415

    text = read_text_input(source)
    last_message = read_text_input(last_message_file) if last_message_file else None
    services = build_services(settings, analysis=InProcessAnalysis(Detector(settings=settings)))
    try:
        guard = MessageGuard(
            settings,
            records=build_record_service(services),
            analyzer=services.analysis,
            redactor=services.redactor,
        )

        def audit(outcome: str, **fields: Any) -> None:  # noqa: ANN401 - AuditTrail.record's
            services.audit.record(
                action=ACTION,
                resource=f"channel:{channel}",
                decision="allow",
                outcome=outcome,
                principal=CLI_PRINCIPAL,
                tenant=tenant,
                customer=customer_id or None,
                **fields,
            )

        try:
            result = guard.check(
                text,
                tenant=tenant,
                channel=channel,
                customer_id=customer_id,
                conversation_id=conversation_id,
                customer_last_message=last_message,
            )
        except GuardError as exc:
            audit("failure", details={"reason": exc.type_slug})
            raise
        audit(
            "success",
            entity_counts=result.entity_counts(),
            details=result.audit_details(services.audit.customer_hash),
        )
    finally:
        services.close()
        services.analysis.close()
    _print(result, as_json=as_json)
    if result.verdict == "block":
        sys.exit(EXIT_BLOCK)


def _print(result: MessageCheck, *, as_json: bool) -> None:
    if as_json:
        document = {
            "verdict": result.verdict,
            **({"text": result.text} if result.text is not None else {}),
            "findings": [f.to_dict() for f in result.findings],
            "advice": result.advice.to_dict(),
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    click.echo(f"verdict: {result.verdict}", err=True)
    for finding in result.findings:
        click.echo(
            f"  {finding.reason:<15} {finding.entity_type:<16} "
            f"{finding.start:>6}-{finding.end:<6} {finding.action}",
            err=True,
        )
    for advice in result.advice.findings:
        click.echo(
            f"  tone: {advice.category:<18} {advice.start:>6}-{advice.end:<6} {advice.suggestion}",
            err=True,
        )
    if result.text is not None:
        click.echo(result.text, nl=not result.text.endswith("\n"))
