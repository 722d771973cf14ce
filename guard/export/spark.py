"""Analytics export as a Spark job: the same profile and Transformer as the local engine.

Why a separate runner: an export that outgrows one machine runs on Spark, and it must leave
exactly what the local engine would leave. So nothing here redacts: each Python worker runs
:class:`~guard.export.transform.Transformer` over Arrow batches (``mapInArrow``), the code the
local pool runs, and the same input gives the same rows, byte for byte.

The function shipped to executors carries only a picklable
:class:`~guard.export.transform.TransformerSpec` (plan, purpose key, settings). Inside a Python
worker a module-level cache builds the detector (the NLP model) once per process and the
Transformer once per spec; Spark's Python worker reuse (on by default, kept on) makes that one
analyzer per worker process whatever the number of tasks. Each run reports how many worker
processes ran, how many tasks and how many analyzer loads it saw.

The purpose key travels inside the task (an executor must compute the same pseudonyms); it is
never logged, and worker errors reach the driver as guard's own messages (source, row, column,
never a cell value). A Spark failure whose message could quote data is reported by its class
name only. Shuffle and spill files are encrypted (``spark.io.encryption.enabled``) in sessions
built here: the repartition that spreads the rows over the cores puts raw rows in them.

Two entry points:

* :func:`redact_dataframe` (with :func:`plan_for_dataframe`): a DataFrame in, a redacted
  DataFrame out, for pipelines that already run on Spark.
* :func:`run_spark`: ``guard export --engine spark``. CSV and JSONL files are decoded by guard's
  own readers (:mod:`guard.export.io`) in one Spark task per file, so types, nested-JSON text
  and error messages (with row numbers) are the local engine's; Parquet is read by Spark
  (splittable), after guard's reader has checked its schema. Rows are then spread over
  ``defaultParallelism`` partitions. The output is a directory of part files, written to a
  hidden sibling directory and renamed into place at the end: nothing at the output path on
  failure. Its checksum is the SHA-256 of the sorted list of the part files' SHA-256 hex
  digests (one per line, each followed by a newline), so it does not depend on the part
  files' names. Rows come out in no particular order.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from guard.errors import GuardError
from guard.export.errors import ExportError, ExportInputError, KAnonymityError
from guard.export.io import choose_output_format, detect_format, file_sha256, open_reader
from guard.export.transform import (
    ExportPlan,
    RunResult,
    Transformer,
    TransformerSpec,
    make_plan,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.detection.entities import DetectedEntity
    from guard.export.profile import ExportProfile, KAnonymity

#: Spark runs on Java 17 here (PySpark 4 needs 17 or later; 17 is the version guard tests).
JAVA_MAJOR = 17
JVM_DIR = Path("/usr/lib/jvm")
#: A hidden column carrying each row's 1-based number in its input file, for error messages.
ROW_COLUMN = "_guard_input_row"
#: Rows per Arrow batch the file reader task hands to Spark.
READ_BATCH_ROWS = 10_000
#: Transformers cached per worker process (one per export spec; the detector is shared).
_TRANSFORMER_CACHE = 4
_ERROR_ENVELOPE = "guard-export-error:"
_ENVELOPE_RE = re.compile(re.escape(_ERROR_ENVELOPE) + r"(\{.*?\})(?:\n|$)")
_ERROR_TYPES: dict[str, type[ExportError]] = {
    "ExportInputError": ExportInputError,
    "KAnonymityError": KAnonymityError,
}
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
"""


# ----------------------------------------------------------------------------- Java and session


def _java_major(home: Path) -> int | None:
    """The major version a JDK's ``release`` file declares (``1.8.0`` is 8), or None."""
    try:
        text = (home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="([0-9.]+)', text, re.MULTILINE)
    if found is None:
        return None
    parts = found.group(1).split(".")
    major = parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]
    return int(major) if major.isdigit() else None


#: Input splits per core above which they are left as Spark made them (no repartition).
BALANCED_SPLITS = 4


def java_home(env: Mapping[str, str] | None = None, *, jvm_dir: Path = JVM_DIR) -> str:
    """The Java 17 Spark must run on: ``JAVA_HOME`` when it is one, else one under ``jvm_dir``."""
    environ = os.environ if env is None else env
    configured = environ.get("JAVA_HOME")
    if configured and _java_major(Path(configured)) == JAVA_MAJOR:
        return configured
    candidates = sorted(jvm_dir.iterdir()) if jvm_dir.is_dir() else []
    for candidate in candidates:
        if _java_major(candidate) == JAVA_MAJOR and (candidate / "bin" / "java").is_file():
            return str(candidate.resolve())
    told = f"JAVA_HOME ({configured}) is not a Java {JAVA_MAJOR}; " if configured else ""
    raise ExportError(
        f"Spark needs Java {JAVA_MAJOR}: {told}none found under {jvm_dir} "
        f"(install openjdk-{JAVA_MAJOR}-jre-headless or point JAVA_HOME at one)"
    )


def spark_unavailable() -> str | None:
    """Why Spark cannot start on this machine (no Java 17, no PySpark), or None when it can."""
    try:
        java_home()
    except ExportError as exc:
        return str(exc)
    try:
        import pyspark  # noqa: F401, PLC0415 - is the [spark] extra installed?
    except ImportError:
        return "PySpark is not installed (pip install 'confidentiality-guard[spark]')"
    return None


_log_config: Path | None = None


def _log4j2_file() -> Path:
    """A log4j2 configuration that keeps the JVM quiet (errors only), written once a process."""
    global _log_config  # noqa: PLW0603 - one file per process, written on first use
    if _log_config is None:
        folder = Path(tempfile.mkdtemp(prefix="guard-spark-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "log4j2.properties"
        path.write_text(_LOG4J2, encoding="utf-8")
        _log_config = path
    return _log_config


def spark_session(
    master: str = "local[2]",
    app_name: str = "guard-export",
    *,
    config: Mapping[str, str] | None = None,
) -> Any:  # noqa: ANN401 - pyspark.sql.SparkSession (an optional dependency)
    """A SparkSession on Java 17: no UI, loopback only, Arrow on, quiet, encrypted shuffle files.

    ``JAVA_HOME`` is pinned before the JVM starts and the Python workers run this interpreter.
    If a session is already active in this process, Spark returns it (its JVM settings stay).
    """
    os.environ["JAVA_HOME"] = java_home()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - the [spark] extra
    except ImportError:
        raise ExportError(
            "the Spark engine needs PySpark: pip install 'confidentiality-guard[spark]'"
        ) from None
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_log4j2_file()}",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true",
        "spark.io.encryption.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.caseSensitive": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        **(config or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


# ----------------------------------------------------------------------------- worker side


_detectors: dict[str, Detector] = {}
_transformers: OrderedDict[str, Transformer] = OrderedDict()
#: Analyzer (detector) loads in this process, ever: one per worker process is the goal.
_loads = 0


def _settings_key(settings: Settings) -> str:
    return hashlib.sha256(settings.model_dump_json().encode("utf-8")).hexdigest()


def spec_fingerprint(spec: TransformerSpec) -> str:
    """A spec's identity for the worker cache: plan, settings, and a hash of the key."""
    digest = hashlib.sha256()
    digest.update(spec.plan.fingerprint().encode("ascii"))
    digest.update(hashlib.sha256(spec.purpose_key).digest())
    digest.update(_settings_key(spec.settings).encode("ascii"))
    return digest.hexdigest()


def _refuse_detection(texts: list[str]) -> list[list[DetectedEntity]]:
    raise ExportError(f"internal: detection asked for {len(texts)} texts by a plan without scans")


def worker_transformer(spec: TransformerSpec) -> Transformer:
    """The Transformer for ``spec`` in this process: built on first use, then reused.

    The detector is cached per settings (one model load per process); a plan with no ``scan``
    column needs no detector at all and loads none.
    """
    global _loads  # noqa: PLW0603 - a per-process counter, reported to the driver
    key = spec_fingerprint(spec)
    found = _transformers.get(key)
    if found is not None:
        _transformers.move_to_end(key)
        return found
    if any(decision.action == "scan" for decision in spec.plan.decisions):
        settings_key = _settings_key(spec.settings)
        detector = _detectors.get(settings_key)
        if detector is None:
            detector = spec.detector()
            _detectors[settings_key] = detector
            _loads += 1
        transformer = spec.build(detector)
    else:
        from guard.redaction.policy import (  # noqa: PLC0415 - worker side only
            POLICY_FILENAME,
            load_redaction_policy,
        )

        transformer = Transformer(
            spec.plan,
            purpose_key=spec.purpose_key,
            detect=_refuse_detection,
            redaction_policy=load_redaction_policy(spec.settings.policies_dir / POLICY_FILENAME),
        )
    _transformers[key] = transformer
    while len(_transformers) > _TRANSFORMER_CACHE:
        _transformers.popitem(last=False)
    return transformer


def analyzer_loads() -> int:
    """How many times this process loaded the analyzer (for diagnostics and tests)."""
    return _loads


def _envelope(exc: GuardError) -> RuntimeError:
    """A worker-side error the driver turns back into the same guard error (no cell values)."""
    payload: dict[str, object] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ExportInputError):
        payload.update(problem=exc.problem, source=exc.source, row=exc.row, column=exc.column)
    return RuntimeError(_ERROR_ENVELOPE + json.dumps(payload, ensure_ascii=True))


def _task_label() -> str:
    from pyspark import TaskContext  # noqa: PLC0415 - worker side

    context = TaskContext.get()
    return f"Spark partition {context.partitionId()}" if context is not None else "Spark"


class ExportCounters:
    """Driver-side totals of a redaction job, gathered from the workers by an accumulator.

    Rows, entities found by scans, and per worker process (``host:pid``) its tasks and its
    analyzer loads. Counts come from successful tasks; a retried task could count twice, which
    ``local`` masters never do.
    """

    def __init__(self, spark_context: Any) -> None:  # noqa: ANN401 - pyspark.SparkContext
        self._accumulator = spark_context.accumulator(_zero_counts(), _CountsParam())

    @property
    def accumulator(self) -> Any:  # noqa: ANN401 - pyspark.Accumulator
        """What the worker functions add to."""
        return self._accumulator

    @property
    def value(self) -> dict[str, Any]:
        """The totals so far."""
        return dict(self._accumulator.value)

    def summary(self) -> dict[str, object]:
        """Rows, tasks, worker processes and analyzer loads, for the run's report."""
        counts = self.value
        workers: dict[str, dict[str, int]] = counts["workers"]
        return {
            "rows": counts["rows"],
            "tasks": sum(w["tasks"] for w in workers.values()),
            "python_workers": len(workers),
            "analyzer_loads": sum(w["loads"] for w in workers.values()),
            "workers": {name: dict(w) for name, w in sorted(workers.items())},
        }


def _zero_counts() -> dict[str, Any]:
    return {"rows": 0, "entities": {}, "workers": {}}


def _add_counts(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    into["rows"] += other["rows"]
    entities: dict[str, int] = into["entities"]
    for name, count in other["entities"].items():
        entities[name] = entities.get(name, 0) + count
    workers: dict[str, dict[str, int]] = into["workers"]
    for name, seen in other["workers"].items():
        mine = workers.setdefault(name, {"tasks": 0, "loads": 0})
        mine["tasks"] += seen["tasks"]
        mine["loads"] += seen["loads"]
    return into


class _CountsParam:
    """Merges the workers' count dictionaries (Spark's AccumulatorParam protocol)."""

    def zero(self, value: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG002 - Spark's signature
        """An empty tally."""
        return _zero_counts()

    def addInPlace(  # noqa: N802 - Spark's name
        self, value1: dict[str, Any], value2: dict[str, Any]
    ) -> dict[str, Any]:
        """Add a task's tally to the total."""
        return _add_counts(value1, value2)


@dataclass(frozen=True)
class _RedactBatches:
    """The function ``mapInArrow`` ships: a spec and names, never a built Transformer."""

    spec: TransformerSpec
    output: pa.Schema
    source: str
    row_column: str | None
    text_format: str | None = None
    counts: Any = None  # pyspark Accumulator, or None

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        loads_before = _loads
        rows = 0
        label = _task_label()
        try:
            transformer = worker_transformer(self.spec)
            seen_before = Counter(transformer.entity_counts)
            for batch in batches:
                out = self._one(transformer, batch, rows, label)
                rows += batch.num_rows
                yield out
        except GuardError as exc:
            raise _envelope(exc) from None
        if self.counts is not None:
            found = Counter(transformer.entity_counts)
            found.subtract(seen_before)
            worker = f"{socket.gethostname()}:{os.getpid()}"
            self.counts.add(
                {
                    "rows": rows,
                    "entities": {name: n for name, n in found.items() if n > 0},
                    "workers": {worker: {"tasks": 1, "loads": _loads - loads_before}},
                }
            )

    def _one(
        self, transformer: Transformer, batch: pa.RecordBatch, done: int, label: str
    ) -> pa.RecordBatch:
        try:
            out = transformer.transform(batch, first_row=1, source=self.source)
        except ExportInputError as exc:
            if exc.row is None:
                raise
            if self.row_column is not None:
                row = batch.column(self.row_column)[exc.row - 1].as_py()
                raise ExportInputError(
                    exc.problem, source=self.source, row=row, column=exc.column
                ) from None
            raise ExportInputError(
                f"{exc.problem} ({label}, its row {done + exc.row})",
                source=self.source,
                column=exc.column,
            ) from None
        if self.text_format is not None:
            out = _as_text(out, self.text_format)
        if not out.schema.equals(self.output):
            out = pa.Table.from_batches([out]).cast(self.output).combine_chunks().to_batches()[0]
        return out


def _text_schema(schema: pa.Schema, text_format: str | None) -> pa.Schema:
    """``schema`` with the columns :func:`_as_text` turns into strings."""
    if text_format is None:
        return schema
    return pa.schema(
        [
            field.with_type(pa.string()) if _needs_text(field.type, text_format) else field
            for field in schema
        ]
    )


def _needs_text(kind: pa.DataType, text_format: str) -> bool:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return False
    if text_format == "csv":
        return True
    return bool(pa.types.is_temporal(kind) or pa.types.is_decimal(kind))


def _text_value(value: object) -> str:
    """A value as guard's CSV and JSONL writers spell it (not as Spark's writers would)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _as_text(batch: pa.RecordBatch, text_format: str) -> pa.RecordBatch:
    """Kept non-string values in the text form the local engine writes: ISO dates, ``true``..."""
    arrays = []
    for column in batch.columns:
        array = column
        if _needs_text(column.type, text_format):
            values = column.to_pylist()
            array = pa.array([None if v is None else _text_value(v) for v in values], pa.string())
        elif text_format == "jsonl" and pa.types.is_floating(column.type):
            array = pc.if_else(pc.is_finite(column), column, None)  # JSON has no NaN: null
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=_text_schema(batch.schema, text_format))


@dataclass(frozen=True)
class _ReadFile:
    """Decodes one CSV or JSONL file with guard's reader, in one task, numbering its rows."""

    path: str
    fmt: str
    batch_rows: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for _ in batches:  # the one-row trigger DataFrame
            pass
        row = 0
        try:
            reader = open_reader(Path(self.path), self.fmt)
            for batch in reader.batches(self.batch_rows):
                numbers = pa.array(range(row + 1, row + 1 + batch.num_rows), type=pa.int64())
                row += batch.num_rows
                yield pa.RecordBatch.from_arrays(
                    [*batch.columns, numbers], names=[*batch.schema.names, ROW_COLUMN]
                )
        except GuardError as exc:
            raise _envelope(exc) from None


# ----------------------------------------------------------------------------- driver side


def _arrow_schema(df: Any) -> pa.Schema:  # noqa: ANN401 - pyspark DataFrame
    """The Arrow schema ``mapInArrow`` hands a DataFrame's rows in."""
    from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415

    conf = df.sparkSession.conf
    large = conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
    return to_arrow_schema(
        df.schema, timezone=conf.get("spark.sql.session.timeZone"), prefers_large_types=large
    )


def _spark_schema(schema: pa.Schema) -> Any:  # noqa: ANN401 - pyspark StructType
    from pyspark.sql.pandas.types import from_arrow_schema  # noqa: PLC0415

    return from_arrow_schema(schema, prefer_timestamp_ntz=False)


def plan_for_dataframe(
    df: Any,  # noqa: ANN401 - pyspark DataFrame
    profile: ExportProfile,
    tenant: str,
    settings: Settings,
    *,
    detector: Detector | None = None,
    source: str = "DataFrame",
) -> ExportPlan:
    """The export plan for ``df``: unnamed columns classified from its first rows, in the driver.

    The sample is the first ``classification.sample_rows`` rows (``limit``, as Arrow), so every
    engine classifies the same cells of the same input.
    """
    if detector is None:
        from guard.detection.engine import Detector  # noqa: PLC0415 - heavy

        detector = Detector(settings=settings)
    return make_plan(
        profile,
        _arrow_schema(df),
        df.limit(profile.spec.classification.sample_rows).toArrow(),
        tenant=tenant,
        settings=settings,
        detector=detector,
        source=source,
    )


def redact_dataframe(
    df: Any,  # noqa: ANN401 - pyspark DataFrame
    plan: ExportPlan,
    *,
    purpose_key: bytes,
    settings: Settings,
    source: str = "DataFrame",
    row_column: str | None = None,
    counters: ExportCounters | None = None,
    text_format: str | None = None,
) -> Any:  # noqa: ANN401 - pyspark DataFrame
    """``df`` redacted by ``plan``: the plan's output columns, computed by ``mapInArrow``.

    Every Python worker builds the analyzer once and reuses it for all its tasks. A
    ``row_column`` (1-based input row numbers; not in the output) makes error messages name the
    input row; without it they name the Spark partition and the row within it. ``counters``
    gathers rows, entities and worker details. ``text_format`` (``csv`` or ``jsonl``): the
    result will be written in that format, so kept values that guard's writers spell
    differently from Spark's (timestamps, dates, decimals, floats in CSV) become strings
    spelled as the local engine writes them.
    """
    known = set(plan.input_columns)
    names = [name for name in df.columns if name != row_column]
    missing = [column for column in plan.input_columns if column not in names]
    if missing:
        raise ExportInputError(
            "the plan has this column, but the DataFrame does not", source=source, column=missing[0]
        )
    extra = [name for name in names if name not in known]
    if extra:
        raise ExportInputError(
            "the DataFrame has this column, but the plan does not (plan it with this DataFrame)",
            source=source,
            column=extra[0],
        )
    output_spark = _spark_schema(_text_schema(plan.output_schema(_arrow_schema(df)), text_format))
    from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415

    conf = df.sparkSession.conf
    output_arrow = to_arrow_schema(
        output_spark,
        timezone=conf.get("spark.sql.session.timeZone"),
        prefers_large_types=conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
        == "true",
    )
    function = _RedactBatches(
        spec=TransformerSpec(plan, purpose_key, executor_settings(settings)),
        output=output_arrow,
        source=source,
        row_column=row_column,
        text_format=text_format,
        counts=None if counters is None else counters.accumulator,
    )
    return df.mapInArrow(function, output_spark)


def executor_settings(settings: Settings) -> Settings:
    """``settings`` without its secrets (keys, passwords, the database URL): what tasks carry.

    A Transformer needs the policies and the model, never guard's own secrets; the purpose
    key it needs travels on its own.
    """
    from pydantic import SecretStr  # noqa: PLC0415 - only here

    secrets = {
        name: None
        for name in type(settings).model_fields
        if isinstance(getattr(settings, name), SecretStr)
    }
    return settings.model_copy(update=secrets)


def _qi_plan(plan: ExportPlan, columns: list[str]) -> ExportPlan:
    """The plan restricted to the quasi-identifiers: cheap (no scan), for counting groups."""
    kept = tuple(d for d in plan.decisions if d.column in columns)
    return replace(plan, decisions=kept, classification=())


@dataclass
class GroupCheck:
    """The k-anonymity count of a transformed DataFrame: the report and the small groups."""

    #: As :mod:`guard.export.kanon` reports it (``rows_suppressed`` set by the caller).
    report: dict[str, Any]
    #: The small groups' values (columns ``_guard_qi_<n>``), or None when every group has k.
    small: Any
    groups: Any

    def release(self) -> None:
        """Drop the cached group counts."""
        self.groups.unpersist()


def check_k_anonymity(
    transformed: Any,  # noqa: ANN401 - pyspark DataFrame
    spec: KAnonymity,
) -> GroupCheck:
    """Count quasi-identifier groups of a *transformed* DataFrame (groupBy and count).

    Same rules as :mod:`guard.export.kanon`: null is a value (and NaN equals NaN), groups
    smaller than ``k`` are suppressed, or fail the export with :class:`KAnonymityError`
    (counts only, never values). The group counts stay cached until
    :meth:`GroupCheck.release`; :func:`suppress_small_groups` uses them.
    """
    from pyspark.sql import functions as F  # noqa: N812, PLC0415 - Spark's convention

    qis = list(spec.quasi_identifiers)
    k = spec.k
    n = F.col("_guard_group_rows")
    groups = transformed.groupBy(*qis).agg(F.count(F.lit(1)).alias("_guard_group_rows")).persist()
    stats = groups.agg(
        F.count(F.lit(1)).alias("groups"),
        F.coalesce(F.sum(n), F.lit(0)).alias("rows"),
        F.coalesce(F.sum(F.when(n < k, 1).otherwise(0)), F.lit(0)).alias("below"),
        F.coalesce(F.sum(F.when(n < k, n).otherwise(0)), F.lit(0)).alias("rows_below"),
        F.min(F.when(n >= k, n)).alias("smallest_after"),
    ).collect()[0]
    smallest = stats["smallest_after"]
    report: dict[str, Any] = {
        "k": k,
        "quasi_identifiers": qis,
        "rows": int(stats["rows"]),
        "groups": int(stats["groups"]),
        "groups_below_k": int(stats["below"]),
        "rows_below_k": int(stats["rows_below"]),
        "rows_suppressed": 0,
        "smallest_group_after": None if smallest is None else int(smallest),
        "on_violation": spec.on_violation,
    }
    if not report["groups_below_k"]:
        return GroupCheck(report, None, groups)
    if spec.on_violation == "fail":
        groups.unpersist()
        raise KAnonymityError(
            f"k-anonymity not met: {report['rows_below_k']} of {report['rows']} rows, in "
            f"{report['groups_below_k']} groups of quasi-identifiers ({', '.join(qis)}), "
            f"are shared by fewer than k={k} rows; the profile says fail "
            "(on_violation: suppress would drop them)"
        )
    small = groups.filter(n < k).select(
        *[F.col(column).alias(f"_guard_qi_{i}") for i, column in enumerate(qis)]
    )
    return GroupCheck(report, small, groups)


def suppress_small_groups(
    df: Any,  # noqa: ANN401 - pyspark DataFrame
    small: Any,  # noqa: ANN401 - pyspark DataFrame from check_k_anonymity
    quasi_identifiers: list[str],
) -> Any:  # noqa: ANN401 - pyspark DataFrame
    """``df`` without the rows whose quasi-identifiers form a small group (null-safe match)."""
    condition = None
    for position, column in enumerate(quasi_identifiers):
        match = df[column].eqNullSafe(small[f"_guard_qi_{position}"])
        condition = match if condition is None else condition & match
    return df.join(small, on=condition, how="left_anti")


def _spark_failure(exc: BaseException, source: str) -> ExportError:
    """The guard error a failed Spark job stands for; never Spark's text, which may quote data."""
    found = _ENVELOPE_RE.search(str(exc))
    if found is not None:
        try:
            payload = json.loads(found.group(1))
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            if payload.get("type") == "ExportInputError":
                return ExportInputError(
                    str(payload.get("problem")),
                    source=str(payload.get("source")),
                    row=payload.get("row"),
                    column=payload.get("column"),
                )
            kind = _ERROR_TYPES.get(str(payload.get("type")), ExportError)
            return kind(str(payload.get("message")))
    return ExportError(
        f"{source}: the Spark job failed ({type(exc).__name__}); the cause is in the Spark "
        "logs, not repeated here because it may quote data"
    )


@contextlib.contextmanager
def guard_errors(source: str = "DataFrame") -> Iterator[None]:
    """Turn a failed Spark action into guard's error (source, row, column; no cell value).

    Wrap the action that runs a :func:`redact_dataframe` result (``write``, ``collect``...).
    """
    try:
        yield
    except _spark_errors() as exc:
        raise _spark_failure(exc, source) from None


def _read_input(spark: Any, path: Path, fmt: str) -> Any:  # noqa: ANN401 - pyspark
    """The input as a DataFrame with :data:`ROW_COLUMN`, typed as guard's reader types it."""
    if fmt == "parquet":
        from pyspark.sql import functions as F  # noqa: N812, PLC0415

        return spark.read.parquet(str(path)).select(
            "*", (F.col("_metadata.row_index") + 1).alias(ROW_COLUMN)
        )
    reader = open_reader(path, fmt)  # header and first batch checked here, in the driver
    schema = reader.schema.append(pa.field(ROW_COLUMN, pa.int64(), nullable=False))
    trigger = spark.range(0, 1, 1, numPartitions=1)
    return trigger.mapInArrow(_ReadFile(str(path), fmt, READ_BATCH_ROWS), _spark_schema(schema))


def _write(df: Any, path: Path, fmt: str) -> None:  # noqa: ANN401 - pyspark DataFrame
    writer = df.write.mode("errorifexists")
    if fmt == "parquet":
        writer.parquet(str(path))
    elif fmt == "csv":
        writer.options(
            header="true",
            quote='"',
            escape='"',
            nullValue="",
            emptyValue="",
            ignoreLeadingWhiteSpace="false",
            ignoreTrailingWhiteSpace="false",
            lineSep="\n",
            encoding="UTF-8",
        ).csv(str(path))
    else:
        writer.options(ignoreNullFields="false", lineSep="\n", encoding="UTF-8").json(str(path))


def _finish_parts(folder: Path) -> list[dict[str, object]]:
    """Drop Hadoop's checksum files, make the parts private, and hash them (sorted by name)."""
    parts: list[dict[str, object]] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") and entry.name.endswith(".crc"):
            entry.unlink()
            continue
        entry.chmod(0o600)
        if entry.name.startswith("part-"):
            parts.append(
                {"name": entry.name, "bytes": entry.stat().st_size, "sha256": file_sha256(entry)}
            )
    folder.chmod(0o700)
    return parts


def parts_sha256(parts: list[dict[str, object]]) -> str:
    """The output's checksum: SHA-256 of the sorted part digests, one per line."""
    lines = "".join(f"{digest}\n" for digest in sorted(str(p["sha256"]) for p in parts))
    return hashlib.sha256(lines.encode("ascii")).hexdigest()


def _is_spark_output(path: Path) -> bool:
    """Whether ``path`` is a directory holding only what a Spark export writes."""
    if not path.is_dir() or path.is_symlink():
        return False
    return all(
        entry.is_file()
        and (entry.name.startswith("part-") or entry.name == "_SUCCESS" or entry.name[0] == ".")
        for entry in path.iterdir()
    )


def _place(staged: Path, output: Path) -> None:
    """Rename the finished directory into place, replacing an earlier Spark export there."""
    if not output.exists() and not output.is_symlink():
        staged.rename(output)
        return
    old = output.parent / f".{output.name}.guard-old-{os.urandom(4).hex()}"
    output.rename(old)
    staged.rename(output)
    shutil.rmtree(old, ignore_errors=True)


def _active_session() -> Any:  # noqa: ANN401 - pyspark SparkSession or None
    """The session already running in this process (used, and left running), if any."""
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - the [spark] extra
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def _spark_errors() -> tuple[type[BaseException], ...]:
    """The exception classes a failed Spark job raises in the driver."""
    from py4j.protocol import Py4JError  # type: ignore[import-untyped]  # noqa: PLC0415
    from pyspark.errors import PySparkException  # noqa: PLC0415

    return (PySparkException, Py4JError)


@dataclass
class _Job:
    """What the Spark part of :func:`run_spark` found out."""

    parallelism: int
    kanon: dict[str, Any] | None
    parts: list[dict[str, object]]
    counters: ExportCounters
    facts: dict[str, object]


def _run_job(
    spark: Any,  # noqa: ANN401 - pyspark SparkSession
    plan: ExportPlan,
    *,
    purpose_key: bytes,
    settings: Settings,
    input_path: Path,
    fmt_in: str,
    staged: Path,
    fmt_out: str,
) -> _Job:
    """Read, count groups, redact, suppress, write to ``staged``."""
    source = str(input_path)
    counters = ExportCounters(spark.sparkContext)
    frame = _read_input(spark, input_path, fmt_in)
    parallelism = int(spark.sparkContext.defaultParallelism)
    partitions = int(frame.rdd.getNumPartitions())
    # Input splits follow byte ranges (Parquet row groups), not rows: a few uneven splits
    # leave cores idle (200k rows ran as 120k + 80k). Spread the rows evenly unless there are
    # enough splits to balance themselves.
    work = (
        frame
        if partitions >= BALANCED_SPLITS * parallelism
        else frame.repartition(max(partitions, parallelism))
    )
    rule = plan.profile.spec.k_anonymity
    check = None
    if rule is not None:
        qis = list(rule.quasi_identifiers)
        qi_frame = redact_dataframe(
            frame.select(*qis, ROW_COLUMN),
            _qi_plan(plan, qis),
            purpose_key=purpose_key,
            settings=settings,
            source=source,
            row_column=ROW_COLUMN,
        )
        check = check_k_anonymity(qi_frame, rule)
    try:
        out = redact_dataframe(
            work,
            plan,
            purpose_key=purpose_key,
            settings=settings,
            source=source,
            row_column=ROW_COLUMN,
            counters=counters,
            text_format=None if fmt_out == "parquet" else fmt_out,
        )
        if check is not None and check.small is not None:
            out = suppress_small_groups(out, check.small, list(check.report["quasi_identifiers"]))
            check.report["rows_suppressed"] = check.report["rows_below_k"]
        _write(out, staged, fmt_out)
    finally:
        if check is not None:
            check.release()
    return _Job(
        parallelism=parallelism,
        kanon=None if check is None else check.report,
        parts=_finish_parts(staged),
        counters=counters,
        facts={
            "spark_version": str(spark.version),
            "master": str(spark.sparkContext.master),
            "partitions": max(partitions, parallelism),
        },
    )


def run_spark(
    *,
    profile: ExportProfile,
    tenant: str,
    purpose_key: bytes,
    settings: Settings,
    input_path: Path,
    output_path: Path,
    input_format: str | None = None,
    output_format: str | None = None,
    master: str = "local[2]",
    spark: Any = None,  # noqa: ANN401 - pyspark SparkSession
    detector: Detector | None = None,
) -> RunResult:
    """Export a file on Spark (``guard export --engine spark``); the output is a directory.

    ``spark``: a session to use (left running; so is one already active in this process);
    without one, a session is started on ``master`` and stopped at the end. The plan is made
    in the driver from the first rows, as the local engine makes it (``detector``: a loaded
    one to classify them with). ``extra`` holds the Spark details for the manifest: session
    start and job seconds, partitions, tasks, Python worker processes, analyzer loads, and
    each part file's name, size and SHA-256.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    fmt_in = detect_format(input_path, input_format)
    fmt_out = choose_output_format(output_path, output_format, fmt_in)
    if (output_path.exists() or output_path.is_symlink()) and not _is_spark_output(output_path):
        raise ExportError(
            f"{output_path} exists and is not an earlier Spark export; remove it or choose another"
        )
    source = str(input_path)
    reader = open_reader(input_path, fmt_in)  # the schema, checked as the local engine checks it
    if ROW_COLUMN in reader.schema.names:
        raise ExportInputError("this column name is reserved", source=source, column=ROW_COLUMN)
    if detector is None:
        from guard.detection.engine import Detector  # noqa: PLC0415 - heavy

        detector = Detector(settings=settings)
    plan = make_plan(
        profile,
        reader.schema,
        reader.sample(profile.spec.classification.sample_rows),
        tenant=tenant,
        settings=settings,
        detector=detector,
        source=source,
    )
    input_sha256 = file_sha256(input_path)
    if spark is None:
        spark = _active_session()
    own_session = spark is None
    session_started = time.perf_counter()
    if own_session:
        spark = spark_session(master)
    session_seconds = time.perf_counter() - session_started
    job_started = time.perf_counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    staged = output_path.parent / f".{output_path.name}.guard-spark-{os.urandom(6).hex()}"
    try:
        job = _run_job(
            spark,
            plan,
            purpose_key=purpose_key,
            settings=settings,
            input_path=input_path,
            fmt_in=fmt_in,
            staged=staged,
            fmt_out=fmt_out,
        )
        _place(staged, output_path)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # interrupted: stop the tasks still writing
            with contextlib.suppress(Exception):
                spark.sparkContext.cancelAllJobs()
        shutil.rmtree(staged, ignore_errors=True)
        if isinstance(exc, _spark_errors()):
            raise _spark_failure(exc, source) from None
        raise
    finally:
        if own_session:
            spark.stop()
    job_seconds = time.perf_counter() - job_started
    summary = job.counters.summary()
    rows_in = int(job.counters.value["rows"])
    suppressed = int(job.kanon["rows_suppressed"]) if job.kanon is not None else 0
    return RunResult(
        engine="spark",
        workers=job.parallelism,
        plan=plan,
        input_path=str(input_path),
        output_path=str(output_path),
        input_format=fmt_in,
        output_format=fmt_out,
        rows_in=rows_in,
        rows_out=rows_in - suppressed,
        rows_suppressed=suppressed,
        input_sha256=input_sha256,
        output_sha256=parts_sha256(job.parts),
        entity_counts=dict(sorted(job.counters.value["entities"].items())),
        kanon=job.kanon,
        seconds=time.perf_counter() - started,
        extra={
            **job.facts,
            "session_start_seconds": round(session_seconds, 3) if own_session else None,
            "job_seconds": round(job_seconds, 3),
            "tasks": summary["tasks"],
            "python_workers": summary["python_workers"],
            "analyzer_loads": summary["analyzer_loads"],
            "output_parts": job.parts,
            "output_sha256_method": "sha256 of the sorted part-file sha256 hex digests, "
            "one per line",
        },
    )
