"""``guard export``: redact files and customer records for analytics, and manage purposes.

    guard export --profile P --input IN --output OUT [--engine local|spark] [--workers N]
    guard export records --profile P --format parquet --output OUT
    guard export profiles | manifests | show ID | purposes | shred-purpose PURPOSE | reveal

Every export writes its manifest next to the output (``OUT.manifest.json``), stores it, and
appends the audit event that references it. A failed export leaves nothing at the output path
and is audited with its reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guard.audit.cli import CLI_PRINCIPAL
from guard.errors import GuardError
from guard.export.io import FORMATS
from guard.export.service import export_service

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.export.service import ExportService, ManifestInfo, PurposeKey
    from guard.export.transform import RunResult


MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(output: Path) -> Path:
    """Where the manifest of an export to ``output`` is written."""
    return output.with_name(output.name + MANIFEST_SUFFIX)


def write_manifest(output: Path, info: ManifestInfo) -> Path:
    """Write the manifest next to the output, atomically."""
    from guard.export.service import canonical_json  # noqa: PLC0415
    from guard.files import atomic_text_file  # noqa: PLC0415

    path = manifest_path(output)
    with atomic_text_file(path) as handle:
        handle.write(canonical_json(info.document) + "\n")
    return path


def _print_summary(result: RunResult, info: ManifestInfo, manifest: Path | None) -> None:
    click.echo("column decisions:", err=True)
    for decision in result.plan.decisions:
        extra = []
        if decision.entity:
            extra.append(decision.entity)
        if decision.share is not None:
            extra.append(f"{decision.share:.0%} of sampled cells")
        for key, value in decision.parameters.items():
            if key not in {"entity", "by"}:
                extra.append(f"{key}={value}")
        detail = f" ({', '.join(extra)})" if extra else ""
        click.echo(
            f"  {decision.column:<24} {decision.action:<10} {decision.source}{detail}", err=True
        )
    # Spark: the job's own time (its session start is reported apart, in the manifest)
    job = result.extra.get("job_seconds")
    seconds = job if isinstance(job, int | float) and job > 0 else result.seconds
    rate = result.rows_in / seconds if seconds > 0 else 0.0
    click.echo(
        f"exported {result.rows_out} of {result.rows_in} rows "
        f"({result.rows_suppressed} suppressed for k-anonymity) in {seconds:.1f} s "
        f"({rate:,.0f} rows/s) to {result.output_path}",
        err=True,
    )
    where = f" ({manifest})" if manifest is not None else ""
    click.echo(f"manifest {info.id} sha256 {info.sha256}{where}")


def _run_and_record(
    settings: Settings,
    service: ExportService,
    *,
    tenant: str,
    profile_name: str,
    engine: str,
    output: Path,
    run: Any,  # noqa: ANN401 - Callable[[PurposeKey], RunResult]
) -> None:
    from guard.export.profile import load_profile  # noqa: PLC0415

    profile = load_profile(settings.policies_dir, profile_name)
    try:
        key: PurposeKey = service.purpose_key(tenant=tenant, purpose=profile.purpose)
        result: RunResult = run(profile, key)
    except GuardError as exc:
        service.record_failure(
            tenant=tenant,
            principal=CLI_PRINCIPAL,
            profile=profile.name,
            reason=exc.type_slug,
            engine=engine,
        )
        raise
    except KeyboardInterrupt:
        service.record_failure(
            tenant=tenant,
            principal=CLI_PRINCIPAL,
            profile=profile.name,
            reason="interrupted",
            engine=engine,
        )
        raise
    info = service.record(result, tenant=tenant, principal=CLI_PRINCIPAL, generation=key.generation)
    _print_summary(result, info, write_manifest(output, info))


@click.group(invoke_without_command=True)
@click.option("--profile", "profile_name", help="Export profile (policies/exports/NAME.yaml).")
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV, JSONL or Parquet file.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=True, path_type=Path),
    help="Where the redacted file goes (written atomically; a directory for --engine spark).",
)
@click.option("--input-format", type=click.Choice(FORMATS), help="Default: from the extension.")
@click.option("--output-format", type=click.Choice(FORMATS), help="Default: the input's.")
@click.option("--tenant", default="default", show_default=True, help="Tenant whose keys apply.")
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; spark: an Apache Spark job.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes for --engine local (default: every core).",
)
@click.option("--master", default="local[2]", show_default=True, help="Spark master URL.")
@click.option("--resume", is_flag=True, help="Continue an interrupted export (Parquet or JSONL).")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on standard error (default: when it is a terminal).",
)
@click.pass_context
def export(
    ctx: click.Context,
    profile_name: str | None,
    input_path: Path | None,
    output_path: Path | None,
    input_format: str | None,
    output_format: str | None,
    tenant: str,
    engine: str,
    workers: int | None,
    master: str,
    resume: bool,
    progress: bool | None,
) -> None:
    """Redact a file for analytics with an export profile (or run a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [
        name
        for name, value in (
            ("--profile", profile_name),
            ("--input", input_path),
            ("--output", output_path),
        )
        if value is None
    ]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or name a subcommand)")
    assert profile_name is not None  # noqa: S101 - checked above
    assert input_path is not None  # noqa: S101
    assert output_path is not None  # noqa: S101
    if engine == "spark" and (resume or workers is not None):
        raise click.UsageError("--resume and --workers apply to --engine local only")
    settings: Settings = ctx.obj
    show = sys.stderr.isatty() if progress is None else progress

    def run(profile: Any, key: PurposeKey) -> RunResult:  # noqa: ANN401 - ExportProfile
        if engine == "spark":
            from guard.export.spark import run_spark  # noqa: PLC0415 - the [spark] extra

            return run_spark(
                profile=profile,
                tenant=tenant,
                purpose_key=key.material,
                settings=settings,
                input_path=input_path,
                output_path=output_path,
                input_format=input_format,
                output_format=output_format,
                master=master,
            )
        from guard.export.local import run_local  # noqa: PLC0415

        return run_local(
            profile=profile,
            tenant=tenant,
            purpose_key=key.material,
            settings=settings,
            input_path=input_path,
            output_path=output_path,
            input_format=input_format,
            output_format=output_format,
            workers=workers,
            resume=resume,
            progress=show,
        )

    with export_service(settings) as service:
        _run_and_record(
            settings,
            service,
            tenant=tenant,
            profile_name=profile_name,
            engine=engine,
            output=output_path,
            run=run,
        )


@export.command("records")
@click.option("--profile", "profile_name", required=True, help="Export profile name.")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet", show_default=True)
@click.option("--tenant", default="default", show_default=True, help="Whose records.")
@click.pass_obj
def export_records(
    settings: Settings, profile_name: str, output_path: Path, fmt: str, tenant: str
) -> None:
    """Export the tenant's customer records (never more than the analyst view shows)."""
    from guard.export.records import run_records  # noqa: PLC0415

    with export_service(settings) as service:
        _run_and_record(
            settings,
            service,
            tenant=tenant,
            profile_name=profile_name,
            engine="records",
            output=output_path,
            run=lambda profile, key: run_records(
                profile=profile,
                tenant=tenant,
                purpose_key=key.material,
                settings=settings,
                output_path=output_path,
                output_format=fmt,
            ),
        )


@export.command("profiles")
@click.pass_obj
def export_profiles(settings: Settings) -> None:
    """List the export profiles (each one validated)."""
    from guard.export.profile import load_profiles  # noqa: PLC0415

    for name, profile in load_profiles(settings.policies_dir).items():
        columns = len(profile.spec.columns)
        click.echo(f"{name}\tpurpose={profile.purpose}\tcolumns={columns}\tsha256={profile.sha256}")


@export.command("manifests")
@click.option("--tenant", default="default", show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.pass_obj
def export_manifests(settings: Settings, tenant: str, limit: int) -> None:
    """The latest exports of a tenant: what left, when, by whom, under which profile."""
    with export_service(settings) as service:
        for info in service.manifests(tenant=tenant, limit=limit):
            document = info.document
            click.echo(
                f"{info.id}\t{info.created_at.isoformat()}\t{document.get('principal')}\t"
                f"{info.profile}\t{info.engine}\t{info.rows_in}->{info.rows_out}"
            )


@export.command("show")
@click.argument("manifest_id")
@click.option("--tenant", default="default", show_default=True)
@click.pass_obj
def export_show(settings: Settings, manifest_id: str, tenant: str) -> None:
    """Print one manifest (checked against the sha256 its audit event carries)."""
    with export_service(settings) as service:
        info = service.manifest(tenant=tenant, manifest_id=manifest_id)
    click.echo(json.dumps(info.document, indent=2, sort_keys=True, ensure_ascii=False))


@export.command("purposes")
@click.option("--tenant", default="default", show_default=True)
@click.pass_obj
def export_purposes(settings: Settings, tenant: str) -> None:
    """The tenant's export purposes and their key generations (active or shredded)."""
    with export_service(settings) as service:
        for row in service.purposes(tenant=tenant):
            click.echo(
                f"{row['purpose']}\tgeneration {row['generation']}\t{row['state']}\t"
                f"created {row['created_at']}"
                + (f"\tshredded {row['shredded_at']}" if row["shredded_at"] else "")
            )


@export.command("shred-purpose")
@click.argument("purpose")
@click.option("--tenant", default="default", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def export_shred_purpose(settings: Settings, purpose: str, tenant: str, yes: bool) -> None:
    """Destroy a purpose's key: every pseudonym and token made for it becomes unlinkable."""
    if not yes:
        click.confirm(
            f"Shred the key of export purpose {purpose!r} for tenant {tenant!r}? "
            "This cannot be undone.",
            abort=True,
        )
    with export_service(settings) as service:
        generation = service.shred_purpose(tenant=tenant, purpose=purpose, principal=CLI_PRINCIPAL)
    click.echo(f"shredded export purpose {purpose!r} generation {generation}")


@export.command("reveal")
@click.option("--purpose", required=True, help="The purpose the export was made for.")
@click.option("--tenant", default="default", show_default=True)
@click.option("--reason", required=True, help="Why (audited).")
@click.pass_obj
def export_reveal(settings: Settings, purpose: str, tenant: str, reason: str) -> None:
    """Turn an export's reversible tokens (standard input) back into values; audited."""
    from guard.detection.engine import Detector  # noqa: PLC0415 - the reason is redacted
    from guard.export.transform import purpose_redaction_keys  # noqa: PLC0415
    from guard.redaction.operators import (  # noqa: PLC0415
        TOKEN_PATTERN,
        reveal_text,
        reveal_token,
    )
    from guard.redaction.reasons import redact_reason  # noqa: PLC0415
    from guard.redaction.service import Redactor  # noqa: PLC0415

    text = sys.stdin.read()
    with export_service(settings) as service:
        key = service.purpose_key(tenant=tenant, purpose=purpose, create=False)
        keys = purpose_redaction_keys(key.material)
        revealed = reveal_text(text, tenant=tenant, keys=keys)
        # the reason enters the audit trail redacted, and never with a revealed value in it
        known = {
            reveal_token(m.group(0), tenant=tenant, keys=keys): m.group(1)
            for m in TOKEN_PATTERN.finditer(text)
        }
        stated = redact_reason(
            Detector(settings=settings),
            Redactor(settings=settings),
            reason,
            tenant=tenant,
            known=known,
        )
        service.record_reveal(
            tenant=tenant,
            principal=CLI_PRINCIPAL,
            purpose=purpose,
            tokens=len(known),
            reason=stated,
        )
    click.echo(revealed, nl=False)
