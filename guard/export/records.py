"""``guard export records``: the tenant's customer records, never past the analyst view.

The records are read page by page (keyset cursor, active records only, decrypted in memory,
never written anywhere in clear) as a table with ``record_id``, ``status``, ``created_at``,
``updated_at`` and every field the ``analyst`` view of ``policies/views.yaml`` shows. A field
the analyst view hides is not a column at all, so a profile that names it fails with the
column named. A field the analyst sees only as a pseudonym or masked reaches the profile as the
analyst sees it, except where the profile pseudonymises or drops the column: then the profile's
purpose pseudonym is made from the value (no more revealing than the analyst's, and it joins
with the other exports of the same purpose). Structured fields (``account``, ``extra``) are
their canonical JSON text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from guard.export.io import DEFAULT_BATCH_ROWS, Reader
from guard.records.views import VIEW_FIELDS

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from guard.config import Settings
    from guard.export.profile import ExportProfile
    from guard.export.transform import RunResult
    from guard.records.service import RecordService

#: The role whose view bounds what a records export may hold.
EXPORT_ROLE = "analyst"
SOURCE = "customer records (analyst view)"
_META = ("record_id", "status", "created_at", "updated_at")
_PAGE = 200


def _text(value: Any) -> str | None:  # noqa: ANN401 - decrypted JSON
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class RecordsReader(Reader):
    """The tenant's active records as a table of strings, page by page (memory flat)."""

    def __init__(self, service: RecordService, *, tenant: str, profile: ExportProfile) -> None:
        self.path = None  # type: ignore[assignment]
        self.source = SOURCE
        self._service = service
        self._tenant = tenant
        self._profile = profile
        view = service.views.view_for(EXPORT_ROLE)
        self.fields = [name for name in VIEW_FIELDS if view.rule(name).mode != "hidden"]
        #: Columns the profile turns into its own pseudonym (or drops): read in clear.
        self._raw = {
            name
            for name in self.fields
            if (rule := profile.rule(name)) is not None and rule.action in {"pseudonym", "drop"}
        }
        self._schema = pa.schema([pa.field(n, pa.string()) for n in (*_META, *self.fields)])

    @property
    def schema(self) -> pa.Schema:
        """Record metadata and the fields the analyst view shows, all strings."""
        return self._schema

    def _rows(self) -> Iterator[dict[str, str | None]]:
        views = self._service.views
        keys = self._service.redaction_keys
        stored = views.stored_fields(EXPORT_ROLE) | {
            name for name in self._raw if name in VIEW_FIELDS
        }
        cursor: str | None = None
        while True:
            page = self._service.list_page(tenant=self._tenant, cursor=cursor, limit=_PAGE)
            for meta in page.records:
                if meta.status != "active":
                    continue  # erased: only a tombstone remains, nothing to export
                record = self._service.read(tenant=self._tenant, record_id=meta.id, only=stored)
                shown = views.apply(EXPORT_ROLE, record.fields, tenant=self._tenant, keys=keys)
                row: dict[str, str | None] = {
                    "record_id": record.id,
                    "status": record.status,
                    "created_at": record.created_at.isoformat(),
                    "updated_at": record.updated_at.isoformat(),
                }
                for name in self.fields:
                    value = record.fields.get(name) if name in self._raw else shown.get(name)
                    row[name] = _text(value)
                yield row
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def batches(
        self, batch_rows: int = DEFAULT_BATCH_ROWS, skip_rows: int = 0
    ) -> Iterator[pa.RecordBatch]:
        """The records after the first ``skip_rows``, in batches of ``batch_rows``."""
        rows: list[dict[str, str | None]] = []
        skipped = 0
        for row in self._rows():
            if skipped < skip_rows:
                skipped += 1
                continue
            rows.append(row)
            if len(rows) >= batch_rows:
                yield pa.RecordBatch.from_pylist(rows, schema=self._schema)
                rows = []
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=self._schema)

    def fingerprint(self) -> str:
        """A checksum of the exported input: sha256 over the rows' canonical JSON, in order."""
        digest = hashlib.sha256()
        for batch in self.batches():
            for row in batch.to_pylist():
                digest.update(json.dumps(row, sort_keys=True).encode("utf-8") + b"\n")
        return digest.hexdigest()


@contextlib.contextmanager
def record_service(settings: Settings) -> Iterator[RecordService]:
    """A read-only RecordService over the configured database and keys (no NLP model)."""
    from guard.crypto.blind_index import BlindIndexer  # noqa: PLC0415 - key loading, once
    from guard.crypto.envelope import EnvelopeCipher  # noqa: PLC0415
    from guard.crypto.providers import load_key_provider  # noqa: PLC0415
    from guard.records.cli import NoAnalysis  # noqa: PLC0415
    from guard.records.service import RecordService  # noqa: PLC0415
    from guard.redaction.service import Redactor  # noqa: PLC0415
    from guard.storage.engine import create_engine_for, make_session_factory  # noqa: PLC0415
    from guard.storage.migrate import upgrade_to_head  # noqa: PLC0415

    engine = create_engine_for(settings)
    try:
        upgrade_to_head(engine)
        yield RecordService(
            settings,
            make_session_factory(engine),
            EnvelopeCipher(load_key_provider(settings, create=False)),
            BlindIndexer.from_settings(settings),
            NoAnalysis(),
            Redactor(settings=settings),
        )
    finally:
        engine.dispose()


def run_records(
    *,
    profile: ExportProfile,
    tenant: str,
    purpose_key: bytes,
    settings: Settings,
    output_path: Path,
    output_format: str = "parquet",
    progress: bool = False,
) -> RunResult:
    """Export the tenant's active customer records with ``profile`` into ``output_path``."""
    from guard.export.local import run_reader  # noqa: PLC0415

    with record_service(settings) as service:
        reader = RecordsReader(service, tenant=tenant, profile=profile)
        return run_reader(
            reader,
            profile=profile,
            tenant=tenant,
            purpose_key=purpose_key,
            settings=settings,
            output_path=output_path,
            input_format="records",
            output_format=output_format,
            input_sha256=reader.fingerprint(),
            workers=1,
            progress=progress,
            engine="records",
        )
