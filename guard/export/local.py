"""The local export runner: a file in, a redacted file out, on every core of one machine.

Why a process pool: detection (spaCy's NER, the recognizers' regexes) holds the GIL, so threads
would use one core. Batches go to worker processes, at most about two per worker in flight (the
memory stays flat whatever the input's size), and come back in input order, so the output is the
same bytes whatever the number of workers.

Workers are started by a fork server that has imported guard's detection modules, never by a
plain ``fork`` of this process (it holds a loaded model and may hold threads). Measured on a
2-core machine, two workers each with a loaded model were ready in about 1.8 s with the fork
server against about 2.3 s with ``spawn``; where there is no fork server (Windows), ``spawn``.
Each worker builds its Transformer once, in the pool's initializer; the model is loaded only
when the plan scans free text. ``workers=1`` runs in this process and reuses its detector.

Nothing is half-written: batches are staged as parts beside the output and renamed into place
whole at the end (:class:`~guard.export.io.StagedOutput`). A worker that dies, a bad row or an
interrupt fails the export with the output path untouched. After an interruption of a Parquet
or JSONL export the parts are kept, and ``resume=True`` continues after the last complete part
when the input, profile, plan, purpose key and policies are the same.

Errors raised in a worker come back as the same GuardError; any other exception comes back
naming only its type, since its message could quote a cell.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tqdm import tqdm

from guard.errors import GuardError
from guard.export.errors import ExportError, ExportInputError, KAnonymityError
from guard.export.io import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_PART_ROWS,
    Reader,
    StagedOutput,
    choose_output_format,
    detect_format,
    file_sha256,
    open_reader,
)
from guard.export.kanon import KAnonymityCheck
from guard.export.transform import (
    RunResult,
    Transformer,
    TransformerSpec,
    detect_with,
    plan_export,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator
    from concurrent.futures import Future
    from pathlib import Path

    import pyarrow as pa

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.detection.entities import DetectedEntity
    from guard.export.profile import ExportProfile
    from guard.export.transform import ExportPlan
    from guard.redaction.policy import RedactionPolicy

#: Formats whose export can be resumed (the brief of issue 13: Parquet and JSONL inputs).
RESUMABLE_FORMATS = frozenset({"parquet", "jsonl"})
#: Batches in flight per worker: enough to keep every worker busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2


def default_workers() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# --- errors across the process boundary -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Failure:
    """An exception as it crosses the pipe: a GuardError's class, message and plain attributes."""

    kind: type[GuardError] | None
    message: str
    attributes: dict[str, str | int | float | bool | None]

    @classmethod
    def of(cls, exc: BaseException, *, rows: str) -> _Failure:
        if isinstance(exc, GuardError):
            attributes = {
                key: value
                for key, value in vars(exc).items()
                if isinstance(value, str | int | float | bool | type(None))
            }
            return cls(type(exc), exc.message, attributes)
        # Only the type: the message of a library's exception may quote the cell it choked on.
        return cls(None, f"transforming {rows} failed ({type(exc).__name__})", {})

    def rebuild(self) -> GuardError:
        if self.kind is None:
            return ExportError(self.message)
        # not kind(...): constructors differ (ExportInputError); the state is what was raised
        exc = self.kind.__new__(self.kind)
        Exception.__init__(exc, self.message)
        exc.__dict__.update(self.attributes)
        exc.message = self.message
        return exc


_Outcome = tuple["pa.RecordBatch | None", dict[str, int], _Failure | None]


def _apply(
    transformer: Transformer, batch: pa.RecordBatch, first_row: int, source: str
) -> _Outcome:
    """Transform one batch: (output, entities counted in it, failure)."""
    rows = f"rows {first_row}-{first_row + batch.num_rows - 1} of {source}"
    try:
        transformer.entity_counts.clear()
        out = transformer.transform(batch, first_row=first_row, source=source)
    except Exception as exc:  # noqa: BLE001 - reported as a GuardError, by type when foreign
        return None, {}, _Failure.of(exc, rows=rows)
    return out, dict(transformer.entity_counts), None


# --- building a transformer, once per process -------------------------------------------


class _LazyDetect:
    """Detection that loads the model on first use: a plan with no free text never pays for it."""

    def __init__(self, settings: Settings, tenant: str) -> None:
        self._settings = settings
        self._tenant = tenant
        self._detect: Callable[[list[str]], list[list[DetectedEntity]]] | None = None
        self.detector: Detector | None = None

    def __call__(self, texts: list[str]) -> list[list[DetectedEntity]]:
        if self._detect is None:
            from guard.detection.engine import Detector  # noqa: PLC0415 - heavy, when needed

            self.detector = Detector(settings=self._settings)
            self._detect = detect_with(self.detector, self._tenant)
        return self._detect(texts)


def _redaction_policy(settings: Settings) -> RedactionPolicy:
    from guard.redaction.policy import POLICY_FILENAME, load_redaction_policy  # noqa: PLC0415

    return load_redaction_policy(settings.policies_dir / POLICY_FILENAME)


def _transformer(spec: TransformerSpec, detect: _LazyDetect | None = None) -> Transformer:
    """The spec's transformer; the model is loaded only if the plan scans free text."""
    if detect is None and any(d.action == "scan" for d in spec.plan.decisions):
        return spec.build()
    return Transformer(
        spec.plan,
        purpose_key=spec.purpose_key,
        detect=detect or _LazyDetect(spec.settings, spec.plan.tenant),
        redaction_policy=_redaction_policy(spec.settings),
    )


#: Batches a pool transforms before it is replaced by a fresh one. spaCy's StringStore keeps
#: every new token (each email, phone, id) for the life of a process, so a worker's memory
#: grows with the rows it has seen (about 70 MB per 80,000 notes, measured); fresh workers
#: every POOL_BATCHES batches keep it bounded. The cost is one drain and model load (a few
#: seconds) per POOL_BATCHES x 500 rows. A whole fresh pool rather than
#: ``max_tasks_per_child``: no worker ever leaves while a batch of this pool waits for it.
POOL_BATCHES = 400

_WORKER: Transformer | _Failure | None = None


def _init_worker(spec: TransformerSpec) -> None:
    """Pool initializer: build this worker's Transformer once (a failure is kept, not raised)."""
    global _WORKER  # noqa: PLW0603 - one transformer per worker process, by design
    # Ctrl-C reaches the whole process group; the parent decides how the export ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from guard.logging import configure_logging  # noqa: PLC0415 - the child's own set-up

    configure_logging(spec.settings)
    warnings.filterwarnings("ignore", message=r".*\[W095\].*")
    try:
        _WORKER = _transformer(spec)
    except Exception as exc:  # noqa: BLE001 - reported with the first batch
        _WORKER = _Failure.of(exc, rows="nothing (the worker could not start)")


def _transform_in_worker(batch: pa.RecordBatch, first_row: int, source: str) -> _Outcome:
    """Pool task: transform one batch with this worker's Transformer."""
    if _WORKER is None:
        return None, {}, _Failure(None, "the worker was not initialised", {})
    if isinstance(_WORKER, _Failure):
        return None, {}, _WORKER
    return _apply(_WORKER, batch, first_row, source)


def _pool(workers: int, spec: TransformerSpec) -> ProcessPoolExecutor:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["guard.export.local", "guard.detection.engine"])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(spec,),
    )


# --- the run ----------------------------------------------------------------------------

_Numbered = tuple[int, "pa.RecordBatch"]
_Done = tuple[int, "pa.RecordBatch", dict[str, int]]


def _numbered(batches: Iterator[pa.RecordBatch], first_row: int) -> Iterator[_Numbered]:
    for batch in batches:
        yield first_row, batch
        first_row += batch.num_rows


def _outcome(rows_in: int, outcome: _Outcome) -> _Done:
    out, counts, failure = outcome
    if failure is not None:
        raise failure.rebuild()
    assert out is not None  # noqa: S101 - no failure means a batch
    return rows_in, out, counts


def _in_process(
    transformer: Transformer, batches: Iterator[_Numbered], source: str
) -> Generator[_Done]:
    for first_row, batch in batches:
        yield _outcome(batch.num_rows, _apply(transformer, batch, first_row, source))


def _in_pool(
    spec: TransformerSpec, workers: int, batches: Iterator[_Numbered], source: str
) -> Generator[_Done]:
    """Batches through the pool, a bounded number in flight, results in input order.

    The pool is replaced by a fresh one every ``POOL_BATCHES`` batches (memory, above).
    """
    remaining = iter(batches)
    while True:
        chunk = itertools.islice(remaining, POOL_BATCHES)
        first = next(chunk, None)
        if first is None:
            return
        yield from _one_pool(spec, workers, itertools.chain([first], chunk), source)


def _one_pool(
    spec: TransformerSpec, workers: int, batches: Iterator[_Numbered], source: str
) -> Generator[_Done]:
    with _pool(workers, spec) as executor:
        pending: deque[tuple[int, Future[_Outcome]]] = deque()
        try:
            for first_row, batch in batches:
                future = executor.submit(_transform_in_worker, batch, first_row, source)
                pending.append((batch.num_rows, future))
                if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                    rows_in, done = pending.popleft()
                    yield _outcome(rows_in, done.result())
            while pending:
                rows_in, done = pending.popleft()
                yield _outcome(rows_in, done.result())
        except BrokenProcessPool:
            raise ExportError(
                "a worker process died (killed, or out of memory); the export stopped and "
                "nothing was written to the output"
            ) from None
        finally:
            for _rows, future in pending:
                future.cancel()


def _fingerprint_policies(settings: Settings) -> str:
    """A hash of every policy file: a resumed export must redact with the same rules."""
    digest = hashlib.sha256(settings.nlp_model.encode("utf-8"))
    root = settings.policies_dir
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(root)).encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _progress(enabled: bool, total: int | None, initial: int) -> tqdm[None]:
    return tqdm(
        total=total,
        initial=initial,
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def _stage(
    results: Generator[_Done],
    staged: StagedOutput,
    kanon: KAnonymityCheck | None,
    bar: tqdm[None],
    on_batch: Callable[[int], None] | None,
) -> None:
    """Stage every transformed batch in order, counting quasi-identifiers as they pass."""
    done = staged.rows_consumed
    try:
        for rows_in, out, counts in results:
            staged.write(out, rows_consumed=rows_in, counts=counts)
            if kanon is not None:
                kanon.add(out)
            done += rows_in
            bar.update(rows_in)
            if on_batch is not None:
                on_batch(done)
    finally:
        results.close()
    staged.seal()


def run_local(
    *,
    profile: ExportProfile,
    tenant: str,
    purpose_key: bytes,
    settings: Settings,
    input_path: Path,
    output_path: Path,
    input_format: str | None = None,
    output_format: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = False,
    part_rows: int = DEFAULT_PART_ROWS,
    on_batch: Callable[[int], None] | None = None,
) -> RunResult:
    """Redact ``input_path`` into ``output_path`` with ``profile`` on this machine.

    ``workers``: processes (default: every core; 1 runs in this process). ``resume``: continue
    an interrupted Parquet or JSONL export. ``on_batch`` is called with the input rows done
    after each staged batch (progress reporting; an exception it raises stops the export as
    an interrupt would).
    """
    in_fmt = detect_format(input_path, input_format)
    if resume and in_fmt not in RESUMABLE_FORMATS:
        raise ExportError(
            f"--resume needs a Parquet or JSONL input ({input_path} is {in_fmt}); "
            "run without --resume"
        )
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise ExportError(f"{output_path}: the output must not be the input")
    reader = open_reader(input_path, in_fmt)
    return run_reader(
        reader,
        profile=profile,
        tenant=tenant,
        purpose_key=purpose_key,
        settings=settings,
        output_path=output_path,
        input_format=in_fmt,
        output_format=choose_output_format(output_path, output_format, in_fmt),
        input_sha256=file_sha256(input_path),
        workers=workers,
        resume=resume,
        batch_rows=batch_rows,
        progress=progress,
        part_rows=part_rows,
        on_batch=on_batch,
        resumable=in_fmt in RESUMABLE_FORMATS,
    )


def run_reader(
    reader: Reader,
    *,
    profile: ExportProfile,
    tenant: str,
    purpose_key: bytes,
    settings: Settings,
    output_path: Path,
    input_format: str,
    output_format: str,
    input_sha256: str,
    workers: int | None = None,
    resume: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = False,
    part_rows: int = DEFAULT_PART_ROWS,
    on_batch: Callable[[int], None] | None = None,
    resumable: bool = False,
    engine: str = "local",
) -> RunResult:
    """Redact what ``reader`` yields into ``output_path`` (files, and the customer records)."""
    started = time.perf_counter()
    out_fmt = detect_format(output_path, output_format)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ExportError("workers must be at least 1")
    if output_path.is_dir():
        raise ExportError(f"{output_path} is a directory; name the output file")
    source = reader.source
    classification = profile.spec.classification
    detect = _LazyDetect(settings, tenant)
    plan: ExportPlan = plan_export(
        profile,
        reader.schema,
        reader.sample(classification.sample_rows),
        detect,
        tenant=tenant,
        policy=_redaction_policy(settings),
        source=source,
    )
    spec = TransformerSpec(plan=plan, purpose_key=purpose_key, settings=settings)
    state = {
        "input_sha256": input_sha256,
        "profile_sha256": profile.sha256,
        "plan": plan.fingerprint(),
        "purpose_key": hashlib.sha256(b"guard export resume\0" + purpose_key).hexdigest(),
        "policies": _fingerprint_policies(settings),
    }
    schema = plan.output_schema(reader.schema)
    open_staged = StagedOutput.resume if resume else StagedOutput
    staged = open_staged(output_path, out_fmt, schema, state=state, part_rows=part_rows)
    start_row = staged.rows_consumed
    kanon = (
        KAnonymityCheck(profile.spec.k_anonymity) if profile.spec.k_anonymity is not None else None
    )
    keep_staging = resumable
    try:
        if kanon is not None:
            for batch in staged.staged_batches():
                kanon.add(batch)
        numbered = _numbered(reader.batches(batch_rows, skip_rows=start_row), start_row + 1)
        results = (
            _in_process(_transformer(spec, detect), numbered, source)
            if workers == 1
            else _in_pool(spec, workers, numbered, source)
        )
        with _progress(progress, reader.total_rows, start_row) as bar:
            _stage(results, staged, kanon, bar, on_batch)
        keep = kanon.resolve() if kanon is not None else None
        rows_out, output_sha256 = staged.commit(keep)
    except (ExportInputError, KAnonymityError):
        staged.abort(keep_staging=False)  # the input or the profile must change: start over
        raise
    except BaseException:
        staged.abort(keep_staging=keep_staging)
        raise
    return RunResult(
        engine=engine,
        workers=workers,
        plan=plan,
        input_path=source,
        output_path=str(output_path),
        input_format=input_format,
        output_format=out_fmt,
        rows_in=staged.rows_consumed,
        rows_out=rows_out,
        rows_suppressed=kanon.rows_suppressed if kanon is not None else 0,
        input_sha256=input_sha256,
        output_sha256=output_sha256,
        entity_counts=dict(sorted(staged.counts.items())),
        kanon=kanon.report() if kanon is not None else None,
        seconds=round(time.perf_counter() - started, 3),
        extra={"resumed_rows": start_row},
    )
