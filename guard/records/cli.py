"""``guard records``: maintenance of customer records; ``reindex`` backfills the name index.

Records written before migration 0004 have no blind index over their full name, so the
outgoing-message guard cannot find them by name until ``guard records reindex`` has run. It
decrypts names in short batches while the service keeps running; killed halfway, a second run
indexes only what is left. Each run is one audit event, ``records.reindex``, with principal
``cli`` and counts only: no name, digest or record id is logged or audited (the ids of records
that failed authentication go to stderr, as ``guard keys rotate`` does).

Register with ``main.add_command(records)``; commands receive :class:`~guard.config.Settings`
as ``ctx.obj``.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from guard.audit.service import AuditTrail
from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import EnvelopeCipher
from guard.crypto.providers import load_key_provider
from guard.records.service import BackfillReport, RecordService
from guard.redaction.service import Redactor
from guard.storage.engine import create_engine_for, make_session_factory
from guard.storage.migrate import upgrade_to_head

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from guard.config import Settings

CLI_PRINCIPAL = "cli"
RESOURCE = "records"
#: Exit code when some records could not be indexed (they failed authentication).
EXIT_INCOMPLETE = 1
#: Record ids of failed records printed after a run (all are in the audit count).
FAILED_SHOWN = 10


class NoAnalysis:
    """The analyzer of a service that never writes notes: reindexing analyses no text.

    Loading the NLP model would cost seconds and memory for nothing; a call is a bug.
    """

    def analyze(self, text: str, *, tenant: str | None = None) -> NoReturn:  # noqa: ARG002 - interface
        """Refuse: maintenance commands do not analyse text."""
        raise RuntimeError("guard records commands do not analyse text")

    def analyze_batch(
        self,
        texts: Sequence[str],  # noqa: ARG002 - interface
        *,
        tenant: str | None = None,  # noqa: ARG002 - interface
    ) -> NoReturn:
        """Refuse: maintenance commands do not analyse text."""
        raise RuntimeError("guard records commands do not analyse text")


@contextlib.contextmanager
def _service(settings: Settings) -> Iterator[tuple[RecordService, AuditTrail]]:
    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        service = RecordService(
            settings,
            factory,
            EnvelopeCipher(load_key_provider(settings, create=False)),
            BlindIndexer.from_settings(settings),
            NoAnalysis(),
            Redactor(settings=settings),
        )
        yield service, AuditTrail(settings, factory)
    finally:
        engine.dispose()


def _audit(trail: AuditTrail, report: BackfillReport, *, interrupted: bool) -> None:
    complete = not report.failed and not interrupted
    trail.record(
        action="records.reindex",
        resource=RESOURCE,
        decision="allow",
        outcome="success" if complete else "failure",
        principal=CLI_PRINCIPAL,
        details={
            "indexed": report.indexed,
            "skipped": report.skipped,
            "failed": len(report.failed),
            "blank": report.blank,
            "interrupted": interrupted,
        },
    )


@click.group()
def records() -> None:
    """Customer records maintenance: reindex."""


@records.command("reindex")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.pass_obj
def records_reindex(settings: Settings, batch_size: int, progress: bool | None) -> None:
    """Index the full names of records written before the name index existed (resumable)."""
    report = BackfillReport()
    with _service(settings) as (service, trail):
        todo = service.count_unindexed_names()
        show = sys.stderr.isatty() if progress is None else progress
        sink = sys.stderr if show else io.StringIO()
        try:
            with click.progressbar(length=todo, label="indexing full names", file=sink) as bar:
                service.backfill_name_index(batch_size, bar.update, report=report)
        except BaseException:
            # Batches already committed stay done; the trail says how far this run got.
            _audit(trail, report, interrupted=True)
            raise
        _audit(trail, report, interrupted=False)
    rate = report.indexed / report.seconds if report.seconds else 0.0
    click.echo(
        f"indexed {report.indexed} full name(s) in {report.seconds:.2f} s ({rate:.0f}/s); "
        f"{report.skipped} changed or erased meanwhile; {report.blank} with nothing to index; "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        shown = ", ".join(report.failed[:FAILED_SHOWN])
        more = " ..." if len(report.failed) > FAILED_SHOWN else ""
        click.echo(
            f"guard: error: {len(report.failed)} record(s) failed authentication and were left "
            f"unindexed (record ids: {shown}{more}); fix them, then run `guard records reindex` "
            "again",
            err=True,
        )
        sys.exit(EXIT_INCOMPLETE)
