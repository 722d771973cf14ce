"""Export endpoints: stream rows through a profile; read what left (manifests).

``POST /v1/exports/redact?profile=NAME`` takes NDJSON (``application/x-ndjson``) or CSV
(``text/csv``) and answers in the same format, streamed: the body is read chunk by chunk,
decoded into batches, transformed (detection in the analysis pool) and written out batch by
batch, so memory stays flat whatever the body's size (``GUARD_EXPORT_MAX_BODY_BYTES`` caps it).

Errors found before the first byte of the answer (unknown profile, wrong media type, a first
batch that does not fit the profile) are problem+json responses. An error later in the stream
cannot change the status any more: guard ends NDJSON with one line ``{"guard_error": {...}}``
(a problem object: type, title, status, detail naming row and column), then aborts the
response, so a client never mistakes a cut stream for a complete one. The audit trail has the
failure either way. A completed stream stores a manifest (the ``Guard-Export-Manifest``
response header has its id) and one ``export.run`` event that references it.

k-anonymity needs every row before any leaves: profiles that declare it are refused here
(422) and run with ``guard export`` instead.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import pyarrow as pa
import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from guard.access.permissions import EXPORT_READ, EXPORT_RUN
from guard.api.problems import TYPE_PREFIX, title_for
from guard.api.routing import GuardRoute
from guard.api.security import Caller, record_allowed, requires, services_of
from guard.errors import GuardError
from guard.export.errors import ExportError, ExportInputError
from guard.export.io import CsvDecoder, JsonlDecoder, encode_csv, encode_jsonl
from guard.export.profile import load_profile, profile_names
from guard.export.service import ExportService, ManifestInfo, PurposeKey
from guard.export.transform import RunResult, Transformer, plan_export

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import Receive, Scope, Send

    from guard.detection.entities import DetectedEntity
    from guard.export.profile import ExportProfile
    from guard.export.transform import ExportPlan

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/exports", tags=["export"], route_class=GuardRoute)

#: Media types the streaming export speaks, and the format each one is.
MEDIA_TYPES: dict[str, str] = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "text/csv": "csv",
}
_RESPONSE_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
MANIFEST_HEADER = "Guard-Export-Manifest"
_SOURCE = "request body"
_PROFILE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ProfileNotFoundError(ExportError):
    """No export profile by that name."""

    status_code = 404
    type_slug = "not-found"


class UnsupportedMediaTypeError(ExportError):
    """A body that is neither NDJSON nor CSV."""

    status_code = 415
    type_slug = "unsupported-media-type"


class DuplexStreamingResponse(StreamingResponse):
    """A streaming answer sent while the request body is still being read.

    Starlette's StreamingResponse (under ASGI < 2.4) listens for a disconnect by reading
    ``receive``, which would swallow the body chunks this route has yet to read. Here the body
    reader itself sees a disconnect (``request.stream()`` raises ``ClientDisconnect``).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then each chunk as the body iterator yields it."""
        del scope, receive
        await self.stream_response(send)


def exports_of(request: Request) -> ExportService:
    """The app's ExportService (``app.state.exports``), built on first use."""
    state = request.app.state
    service: ExportService | None = getattr(state, "exports", None)
    if service is None:
        from guard.crypto.envelope import EnvelopeCipher  # noqa: PLC0415 - key loading, once
        from guard.crypto.providers import load_key_provider  # noqa: PLC0415

        services = services_of(request)
        cipher = EnvelopeCipher(load_key_provider(services.settings))
        service = ExportService(services.session_factory, cipher, services.audit)
        state.exports = service
    return service


def _format_of(request: Request) -> str:
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    fmt = MEDIA_TYPES.get(media)
    if fmt is None:
        raise UnsupportedMediaTypeError(
            "send the rows as 'Content-Type: application/x-ndjson' (one JSON object per line) "
            "or 'Content-Type: text/csv' (with a header row)"
        )
    return fmt


def _profile(request: Request, name: str) -> ExportProfile:
    policies = services_of(request).settings.policies_dir
    if name not in profile_names(policies):
        raise ProfileNotFoundError(f"no export profile {name!r}")
    profile = load_profile(policies, name)
    if profile.spec.k_anonymity is not None:
        raise ExportError(
            f"export profile {name!r} declares k-anonymity, which needs every row before any "
            "leaves; run it with 'guard export' on a file instead"
        )
    return profile


def _problem_line(exc: GuardError) -> bytes:
    problem = {
        "type": TYPE_PREFIX + exc.type_slug,
        "title": title_for(exc.status_code),
        "status": exc.status_code,
        "detail": exc.message,
    }
    return json.dumps({"guard_error": problem}, separators=(",", ":")).encode("utf-8") + b"\n"


class _Stream:
    """One streaming export: the body's iterator, decoder, plan, transformer and counters."""

    def __init__(
        self, request: Request, caller: Caller, profile: ExportProfile, fmt: str, key: PurposeKey
    ) -> None:
        self.request = request
        self.caller = caller
        self.profile = profile
        self.fmt = fmt
        self.key = key.material
        self.generation = key.generation
        self.services = services_of(request)
        self.tenant = caller.principal.tenant
        self.decoder = CsvDecoder(_SOURCE) if fmt == "csv" else JsonlDecoder(_SOURCE)
        self.body: AsyncIterator[bytes] = request.stream().__aiter__()
        self.ended = False
        self.hash_in = hashlib.sha256()
        self.hash_out = hashlib.sha256()
        self.rows_in = 0
        self.rows_out = 0
        self.header_sent = False
        self.started = time.perf_counter()
        self.manifest_id = str(uuid.uuid4())
        self.transformer: Transformer | None = None

    def detect(self, texts: list[str]) -> list[list[DetectedEntity]]:
        """Detection in the app's analysis pool, with the tenant's lists."""
        return list(self.services.analysis.analyze_batch(texts, tenant=self.tenant))

    async def more(self) -> list[pa.RecordBatch]:
        """The batches the next chunk of the body completes (at the end: the rest)."""
        if self.ended:
            return []
        try:
            chunk = await self.body.__anext__()
        except StopAsyncIteration:
            self.ended = True
            return self.decoder.close()
        self.hash_in.update(chunk)
        return self.decoder.feed_bytes(chunk)

    async def first(self) -> list[pa.RecordBatch]:
        """Read until the classification sample is complete (or the body ends); plan."""
        wanted = self.profile.spec.classification.sample_rows
        pending: list[pa.RecordBatch] = []
        while not self.ended and sum(b.num_rows for b in pending) < wanted:
            pending.extend(await self.more())
        schema = self.decoder.schema
        if schema is None:
            raise ExportInputError(
                "the body holds no rows (expected a CSV header, or JSON objects one per line)",
                source=_SOURCE,
            )
        sample = pa.Table.from_batches(pending, schema=schema).slice(0, wanted)
        plan = await run_in_threadpool(self._plan, schema, sample)
        self.transformer = Transformer(
            plan,
            purpose_key=self.key,
            detect=self.detect,
            redaction_policy=self.services.redactor.policy,
        )
        return pending

    def _plan(self, schema: pa.Schema, sample: pa.Table) -> ExportPlan:
        return plan_export(
            self.profile,
            schema,
            sample,
            self.detect,
            tenant=self.tenant,
            policy=self.services.redactor.policy,
            source=_SOURCE,
        )

    def transform(self, batches: list[pa.RecordBatch]) -> bytes:
        """Transform and encode batches (run in a worker thread)."""
        assert self.transformer is not None  # noqa: S101 - planned in first()
        out = []
        for batch in batches:
            done = self.transformer.transform(batch, first_row=self.rows_in + 1, source=_SOURCE)
            self.rows_in += batch.num_rows
            self.rows_out += done.num_rows
            if self.fmt == "csv":
                out.append(encode_csv(done, header=not self.header_sent))
                self.header_sent = True
            else:
                out.append(encode_jsonl(done))
        data = b"".join(out)
        self.hash_out.update(data)
        return data

    def header_only(self) -> bytes:
        """A CSV answer to a body with a header and no rows: the output header alone."""
        assert self.transformer is not None  # noqa: S101
        if self.fmt != "csv" or self.header_sent or self.decoder.schema is None:
            return b""
        schema = self.transformer.plan.output_schema(self.decoder.schema)
        empty = pa.RecordBatch.from_pylist([], schema=schema)
        self.header_sent = True
        data = encode_csv(empty, header=True)
        self.hash_out.update(data)
        return data

    def result(self) -> RunResult:
        """What the stream did, for the manifest."""
        assert self.transformer is not None  # noqa: S101
        return RunResult(
            engine="api",
            workers=1,
            plan=self.transformer.plan,
            input_path=_SOURCE,
            output_path="response body",
            input_format=self.fmt,
            output_format=self.fmt,
            rows_in=self.rows_in,
            rows_out=self.rows_out,
            rows_suppressed=0,
            input_sha256=self.hash_in.hexdigest(),
            output_sha256=self.hash_out.hexdigest(),
            entity_counts=dict(self.transformer.entity_counts),
            kanon=None,
            seconds=time.perf_counter() - self.started,
        )

    def fail(self, reason: str) -> None:
        """Audit the stream's failure (nothing more leaves)."""
        exports_of(self.request).record_failure(
            tenant=self.tenant,
            principal=self.caller.principal.id,
            role=self.caller.principal.role,
            profile=self.profile.name,
            reason=reason,
            engine="api",
            request_id=self.caller.request_id,
            rows=self.rows_in,
        )

    def finish(self) -> ManifestInfo:
        """Store the manifest and audit the completed export."""
        return exports_of(self.request).record(
            self.result(),
            tenant=self.tenant,
            principal=self.caller.principal.id,
            role=self.caller.principal.role,
            generation=self.generation,
            request_id=self.caller.request_id,
            manifest_id=self.manifest_id,
        )


async def _respond(stream: _Stream, first: bytes) -> AsyncIterator[bytes]:
    """The answer's body: the first batches' output, then the rest as the body streams in."""
    try:
        if first:
            yield first
        while not stream.ended:
            batches = await stream.more()
            if batches:
                data = await run_in_threadpool(stream.transform, batches)
                if data:
                    yield data
        tail = stream.header_only()
        if tail:
            yield tail
        await run_in_threadpool(stream.finish)
    except GuardError as exc:
        await run_in_threadpool(stream.fail, exc.type_slug)
        log.info("export.stream_failed", problem=exc.type_slug, rows=stream.rows_in)
        if stream.fmt == "jsonl":
            yield _problem_line(exc)
        raise
    except BaseException:
        # the client went away, or the server is stopping: nothing more leaves
        await run_in_threadpool(stream.fail, "interrupted")
        raise


@router.post(
    "/redact",
    response_class=DuplexStreamingResponse,
    responses={
        200: {
            "description": "The rows, redacted, in the body's format, streamed.",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        404: {"description": "No export profile by that name."},
        413: {"description": "The body is over GUARD_EXPORT_MAX_BODY_BYTES."},
        415: {"description": "The body is neither NDJSON nor CSV."},
    },
)
async def redact_export(
    request: Request,
    caller: Annotated[Caller, Depends(requires(EXPORT_RUN))],
    profile: Annotated[
        str,
        Query(
            pattern=_PROFILE_PATTERN,
            description="Export profile (policies/exports/NAME.yaml).",
        ),
    ],
) -> DuplexStreamingResponse:
    """Redact rows (NDJSON or CSV) for analytics with an export profile, streamed."""
    fmt = _format_of(request)
    chosen = _profile(request, profile)
    service = exports_of(request)
    key = await run_in_threadpool(
        service.purpose_key, tenant=caller.principal.tenant, purpose=chosen.purpose
    )
    stream = _Stream(request, caller, chosen, fmt, key)
    try:
        pending = await stream.first()
        first = await run_in_threadpool(stream.transform, pending)
    except GuardError as exc:
        await run_in_threadpool(stream.fail, exc.type_slug)
        raise
    await run_in_threadpool(
        record_allowed,
        request,
        caller,
        action="export.stream",
        resource=f"export:{chosen.name}",
        details={
            "profile": chosen.name,
            "purpose": chosen.purpose,
            "format": fmt,
            "manifest_id": stream.manifest_id,
        },
    )
    return DuplexStreamingResponse(
        _respond(stream, first),
        media_type=_RESPONSE_MEDIA[fmt],
        headers={MANIFEST_HEADER: stream.manifest_id, "Cache-Control": "no-store"},
    )


def _manifest_view(info: ManifestInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "sha256": info.sha256,
        "profile": info.profile,
        "purpose": info.purpose,
        "engine": info.engine,
        "status": info.status,
        "rows_in": info.rows_in,
        "rows_out": info.rows_out,
        "created_at": info.created_at.isoformat(),
    }


@router.get("/manifests")
def list_manifests(
    request: Request,
    caller: Annotated[Caller, Depends(requires(EXPORT_READ))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The tenant's latest exports: what left, when, by whom, under which profile."""
    tenant = caller.principal.tenant
    manifests = exports_of(request).manifests(tenant=tenant, limit=limit)
    record_allowed(
        request,
        caller,
        action="export.manifests",
        resource="export",
        details={"count": len(manifests)},
    )
    return {
        "manifests": [
            {**_manifest_view(m), "principal": m.document.get("principal")} for m in manifests
        ]
    }


@router.get("/manifests/{manifest_id}", responses={404: {"description": "No such manifest."}})
def get_manifest(
    request: Request,
    manifest_id: str,
    caller: Annotated[Caller, Depends(requires(EXPORT_READ))],
) -> dict[str, Any]:
    """One manifest in full, checked against the sha256 its audit event carries."""
    from guard.export.service import ManifestNotFoundError  # noqa: PLC0415

    tenant = caller.principal.tenant
    try:
        uuid.UUID(manifest_id)
    except ValueError:
        raise ManifestNotFoundError("no export manifest with this id in this tenant") from None
    info = exports_of(request).manifest(tenant=tenant, manifest_id=manifest_id)
    record_allowed(
        request,
        caller,
        action="export.manifest_read",
        resource=f"export:{info.profile}",
        details={"manifest_id": info.id},
    )
    return {**_manifest_view(info), "document": info.document}
