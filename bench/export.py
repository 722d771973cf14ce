"""Analytics export: guard (local pool, Spark) against Presidio's own tabular tools, same table.

One run, one generated support table (bench/export_data.py: ids, name, email, phone, dates,
postcode, amount, a ~150-character free-text note; a labeled slice of notes carries the
development sets' gold PII spans), the shipped ``support_analytics`` profile, these engines:

- ``presidio-structured``: Presidio's structured-data package as documented: its ``CsvReader``,
  ``PandasAnalysisBuilder`` (sample-based column analysis on the same 200 rows guard samples),
  ``StructuredEngine`` with its pandas processor and ``replace`` operators (``<ENTITY>``);
- ``presidio-batch``: ``BatchAnalyzerEngine`` + ``BatchAnonymizerEngine`` on the note column
  (vanilla Presidio on guard's spaCy model, see guard/detection/baseline.py);
- ``guard-local-1`` / ``guard-local-N``: ``guard.export.local.run_local`` with 1 worker and with
  every core; ``guard-spark``: ``guard.export.spark.run_spark`` on ``local[2]``, the session
  start timed apart from the job.

Each engine runs in its own subprocess; peak memory is the largest sum over that process tree
(Spark's JVM and Python workers included), sampled from /proc every 0.5 s, as PSS (shared pages
split between the processes that share them) and RSS; ``ru_maxrss`` of the engine process and of
its largest waited-for child are reported too. Rows/s are input rows over the wall time of the
engine call (model loading and worker start included, Spark session start excluded and reported
apart). Every figure is one run on a shared 2-core machine.

Any-PII character recall on the labeled slice (note column only): each labeled output note is
aligned with its input by ``ticket_id`` (by row position for presidio-structured's CSV, whose
row order is the input's); ``difflib.SequenceMatcher`` aligns the two strings, and an input
character counts as kept when it lies in a matching run of at least ``MIN_KEPT_RUN`` characters
(shorter runs are placeholder characters lining up by chance). Recall is the share of gold PII
characters not kept; ``note_text_kept`` is the share of the other characters kept, so that a
tool that blanks whole cells shows what it costs the analyst.

    .venv/bin/python bench/export.py [--rows 200000] [--presidio-rows 20000]
                                     [--structured-rows 200000] [--scaling 10000 100000 1000000]
                                     [--engines ...] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from export_data import LabeledNote, labeled_notes, write_table

from guard.config import PROJECT_ROOT, Settings, get_settings
from guard.export.profile import ExportProfile, load_profile, parse_profile, profile_names

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

RESULTS = PROJECT_ROOT / "bench" / "results" / "export.json"
PROFILE = "support_analytics"
TENANT = "bench"
#: A fixed purpose key: the benchmark's pseudonyms mean nothing outside this run.
PURPOSE_KEY = bytes(range(32))
MIN_KEPT_RUN = 3
SAMPLE_SECONDS = 0.5
CORES = os.cpu_count() or 1
ALL = f"guard-local-{CORES}"
ENGINES = ("presidio-structured", "presidio-batch", "guard-local-1", ALL, "guard-spark")

#: The profile the lead ships as policies/exports/support_analytics.yaml; used only when that
#: file is missing, so that the benchmark still runs on a checkout without it.
FALLBACK_PROFILE: dict[str, Any] = {
    "purpose": "support-analytics",
    "columns": {
        "ticket_id": "keep",
        "customer_id": {"action": "pseudonym", "entity": "ACCOUNT_ID"},
        "full_name": {"action": "pseudonym", "entity": "PERSON"},
        "email": {"action": "pseudonym", "entity": "EMAIL_ADDRESS"},
        "phone": {"action": "pseudonym", "entity": "PHONE_NUMBER"},
        "created_at": {"action": "generalize", "date": "month"},
        "birth_date": {"action": "generalize", "date": "year"},
        "postcode": {"action": "generalize", "truncate": 3},
        "amount": {"action": "generalize", "bucket": 50},
        "note": "scan",
    },
    "k_anonymity": {"quasi_identifiers": ["birth_date", "postcode"], "k": 5},
}


def bench_profile(settings: Settings) -> ExportProfile:
    """The shipped ``support_analytics`` profile, or the same rules built here."""
    if PROFILE in profile_names(settings.policies_dir):
        return load_profile(settings.policies_dir, PROFILE)
    return parse_profile(PROFILE, FALLBACK_PROFILE, source="bench/export.py")


# -------------------------------------------------------------------- engines, run in the child


@dataclass
class Outcome:
    """What an engine process reports back to the harness."""

    rows_in: int
    rows_out: int
    seconds: float
    setup_seconds: float = 0.0
    session_seconds: float | None = None
    details: dict[str, Any] | None = None


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def presidio_structured(input_path: Path, output_path: Path, sample_rows: int) -> Outcome:
    """Presidio's structured-data package end to end on the CSV: read, analyse, anonymise, write."""
    from presidio_anonymizer.entities import OperatorConfig  # noqa: PLC0415
    from presidio_structured import (  # noqa: PLC0415
        CsvReader,
        PandasAnalysisBuilder,
        PandasDataProcessor,
        StructuredEngine,
    )

    from guard.detection.baseline import VanillaPresidio  # noqa: PLC0415

    started = time.perf_counter()
    analyzer = VanillaPresidio(get_settings()).analyzer
    builder = PandasAnalysisBuilder(analyzer=analyzer)
    engine = StructuredEngine(data_processor=PandasDataProcessor())
    setup = time.perf_counter() - started

    started = time.perf_counter()
    frame = CsvReader().read(input_path)
    analysis = builder.generate_analysis(frame, n=sample_rows)
    operators = {
        entity: OperatorConfig("replace", {"new_value": f"<{entity}>"})
        for entity in set(analysis.entity_mapping.values())
    }
    anonymized = cast("pd.DataFrame", engine.anonymize(frame, analysis, operators))
    anonymized.to_csv(output_path, index=False)
    seconds = time.perf_counter() - started
    return Outcome(
        len(frame),
        len(anonymized),
        seconds,
        setup,
        details={"column_analysis": dict(sorted(analysis.entity_mapping.items()))},
    )


def presidio_batch(input_path: Path, output_path: Path) -> Outcome:
    """Presidio's batch analyzer and anonymizer over the note column of the Parquet file."""
    from presidio_analyzer import BatchAnalyzerEngine  # noqa: PLC0415
    from presidio_anonymizer import BatchAnonymizerEngine  # noqa: PLC0415

    from guard.detection.baseline import VanillaPresidio  # noqa: PLC0415

    started = time.perf_counter()
    analyzer = BatchAnalyzerEngine(analyzer_engine=VanillaPresidio(get_settings()).analyzer)
    anonymizer = BatchAnonymizerEngine()
    setup = time.perf_counter() - started

    started = time.perf_counter()
    table = pq.read_table(input_path, columns=["ticket_id", "note"])
    notes = table.column("note").to_pylist()
    results = analyzer.analyze_iterator(notes, language="en", batch_size=64)
    redacted = anonymizer.anonymize_list(notes, results)  # type: ignore[arg-type]  # same shape, Presidio's two classes
    out = pa.table(
        {"ticket_id": table.column("ticket_id"), "note": pa.array(redacted, pa.string())}
    )
    pq.write_table(out, output_path)
    seconds = time.perf_counter() - started
    return Outcome(table.num_rows, out.num_rows, seconds, setup)


def _run_summary(result: Any) -> dict[str, Any]:  # noqa: ANN401 - guard's RunResult
    return {
        "engine": result.engine,
        "workers": result.workers,
        "rows_suppressed": result.rows_suppressed,
        "engine_seconds": round(result.seconds, 2),
        "entity_counts": dict(sorted(result.entity_counts.items())),
        "kanon": result.kanon,
        "extra": {
            key: value
            for key, value in result.extra.items()
            if not isinstance(value, list | dict) or len(value) <= 20
        },
    }


def guard_local(input_path: Path, output_path: Path, workers: int) -> Outcome:
    """``guard.export.local.run_local`` with ``workers`` processes (1: in process)."""
    from guard.export.local import run_local  # noqa: PLC0415

    settings = get_settings()
    profile = bench_profile(settings)
    started = time.perf_counter()
    result = run_local(
        profile=profile,
        tenant=TENANT,
        purpose_key=PURPOSE_KEY,
        settings=settings,
        input_path=input_path,
        output_path=output_path,
        workers=workers,
    )
    seconds = time.perf_counter() - started
    return Outcome(result.rows_in, result.rows_out, seconds, details=_run_summary(result))


def guard_spark(input_path: Path, output_path: Path) -> Outcome:
    """``guard.export.spark.run_spark`` on ``local[2]``; the session start timed apart."""
    from guard.export.spark import run_spark, spark_session  # noqa: PLC0415

    settings = get_settings()
    profile = bench_profile(settings)
    started = time.perf_counter()
    spark = spark_session("local[2]", "guard-export-bench")
    session = time.perf_counter() - started
    try:
        started = time.perf_counter()
        result = run_spark(
            profile=profile,
            tenant=TENANT,
            purpose_key=PURPOSE_KEY,
            settings=settings,
            input_path=input_path,
            output_path=output_path,
            master="local[2]",
            spark=spark,
        )
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
    return Outcome(
        result.rows_in,
        result.rows_out,
        seconds,
        session_seconds=session,
        details=_run_summary(result),
    )


def run_child(engine: str, input_path: Path, output_path: Path, sample_rows: int) -> None:
    """Run one engine in this process and print its outcome as the last line of stdout."""
    _quiet()
    if engine == "presidio-structured":
        outcome = presidio_structured(input_path, output_path, sample_rows)
    elif engine == "presidio-batch":
        outcome = presidio_batch(input_path, output_path)
    elif engine == "guard-spark":
        outcome = guard_spark(input_path, output_path)
    elif engine.startswith("guard-local-"):
        outcome = guard_local(input_path, output_path, int(engine.rsplit("-", 1)[1]))
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = {
        **outcome.__dict__,
        "maxrss_self_mb": round(own / 1024, 1),
        "maxrss_largest_child_mb": round(children / 1024, 1),
    }
    print("RESULT " + json.dumps(report), flush=True)


# ---------------------------------------------------------------- memory, sampled by the parent


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _tree(root: int) -> list[int]:
    tree = _children_of()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, []))
    return pids


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return values.get("Rss", 0), values.get("Pss", 0)


class TreeMemory:
    """Samples the summed RSS and PSS of a process and all its descendants, keeps the peaks."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_processes = 0
        self.peak_largest_pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.root)
            sizes = [_memory_kb(pid) for pid in pids]
            self.peak_rss_kb = max(self.peak_rss_kb, sum(rss for rss, _ in sizes))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(pss for _, pss in sizes))
            self.peak_processes = max(self.peak_processes, len(pids))
            self.peak_largest_pss_kb = max([self.peak_largest_pss_kb, *(pss for _, pss in sizes)])
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def measure(
    engine: str, input_path: Path, output_path: Path, *, sample_rows: int, timeout: float
) -> dict[str, Any]:
    """Run ``engine`` in a subprocess; its outcome plus the tree's peak memory."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        engine,
        "--input",
        str(input_path),
        "--output",
        str(output_path),
        "--sample-rows",
        str(sample_rows),
    ]
    print(f"  {engine}: {input_path.name} ...", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own script, no shell
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    memory = TreeMemory(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        memory.stop()
        return {"engine": engine, "error": f"over the {timeout:.0f} s cap"}
    memory.stop()
    wall = time.perf_counter() - started
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        print(f"  {engine} failed (exit {process.returncode}):\n{tail}", flush=True)
        return {"engine": engine, "error": f"exit {process.returncode}", "stderr_tail": tail}
    report: dict[str, Any] = {"engine": engine, **json.loads(lines[-1].removeprefix("RESULT "))}
    report["rows_per_second"] = round(report["rows_in"] / report["seconds"], 1)
    report["process_wall_seconds"] = round(wall, 1)
    report["peak_tree_pss_mb"] = round(memory.peak_pss_kb / 1024, 1)
    report["peak_tree_rss_mb"] = round(memory.peak_rss_kb / 1024, 1)
    report["peak_largest_process_pss_mb"] = round(memory.peak_largest_pss_kb / 1024, 1)
    report["peak_processes"] = memory.peak_processes
    for key in ("seconds", "setup_seconds", "session_seconds"):
        if report.get(key) is not None:
            report[key] = round(report[key], 2)
    print(
        f"  {engine}: {report['rows_in']:,} rows in {report['seconds']:.1f} s = "
        f"{report['rows_per_second']:,.0f} rows/s, peak PSS {report['peak_tree_pss_mb']:,.0f} MB",
        flush=True,
    )
    return report


# ------------------------------------------------------------------ recall on the labeled slice


def kept_mask(original: str, output: str) -> list[bool]:
    """Which characters of ``original`` survive in ``output`` (runs of ``MIN_KEPT_RUN`` or more)."""
    kept = [False] * len(original)
    matcher = SequenceMatcher(None, original, output, autojunk=False)
    for block in matcher.get_matching_blocks():
        if block.size >= MIN_KEPT_RUN:
            kept[block.a : block.a + block.size] = [True] * block.size
    return kept


def score_notes(gold: Sequence[LabeledNote], outputs: dict[int, str | None]) -> dict[str, Any]:
    """Any-PII character recall and the share of other characters kept, on the labeled notes."""
    pii = changed = other = other_kept = evaluated = 0
    for note in gold:
        if note.ticket_id not in outputs:
            continue  # suppressed by k-anonymity: nothing of it left
        evaluated += 1
        output = outputs[note.ticket_id] or ""
        kept = kept_mask(note.text, output)
        in_span = [False] * len(note.text)
        for start, end in note.spans:
            in_span[start:end] = [True] * (end - start)
        for is_pii, is_kept in zip(in_span, kept, strict=True):
            if is_pii:
                pii += 1
                changed += not is_kept
            else:
                other += 1
                other_kept += is_kept
    return {
        "labeled_rows": evaluated,
        "any_pii_char_recall": round(changed / pii, 4) if pii else None,
        "note_text_kept": round(other_kept / other, 4) if other else None,
    }


def read_notes(path: Path, *, by_position: bool) -> dict[int, str | None]:
    """Output notes keyed by ticket id (or by 1-based row position)."""
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv  # noqa: PLC0415

        options = pacsv.ConvertOptions(
            column_types={"note": pa.string(), "ticket_id": pa.string()},
            include_columns=["ticket_id", "note"],
        )
        table = pacsv.read_csv(path, convert_options=options)
    else:
        table = pq.read_table(path, columns=["ticket_id", "note"])
    notes = table.column("note").to_pylist()
    if by_position:
        return {row + 1: note for row, note in enumerate(notes)}
    ids = [int(str(value)) for value in table.column("ticket_id").to_pylist()]
    return dict(zip(ids, notes, strict=True))


# ----------------------------------------------------------------------------- harness


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def _rate(reports: dict[str, dict[str, Any]], engine: str) -> float | None:
    value = reports.get(engine, {}).get("rows_per_second")
    return float(value) if value is not None else None


SCALING_KEYS = (
    "rows",
    "rows_per_second",
    "seconds",
    "peak_tree_pss_mb",
    "peak_tree_rss_mb",
    "peak_largest_process_pss_mb",
    "maxrss_self_mb",
    "maxrss_largest_child_mb",
    "error",
)


def composite(reports: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What a Presidio user would run to keep notes useful: structured columns + batch notes.

    Seconds per row add up: presidio-structured's (which also blanks the note column, a cost
    that is negligible) plus presidio-batch's on the notes; recall is presidio-batch's.
    """
    structured, batch = reports.get("presidio-structured", {}), reports.get("presidio-batch", {})
    if "labeled_slice" not in structured or "labeled_slice" not in batch:
        return None
    per_row = 1 / structured["rows_per_second"] + 1 / batch["rows_per_second"]
    return {"rows_per_second": round(1 / per_row, 1), **batch["labeled_slice"]}


def _recall(reports: dict[str, dict[str, Any]], engine: str) -> float | None:
    value = reports.get(engine, {}).get("labeled_slice", {}).get("any_pii_char_recall")
    return float(value) if value is not None else None


def ratios(reports: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The issue's targets as ratios of rows/s (and recall differences)."""
    guard_1, structured = _recall(reports, "guard-local-1"), _recall(reports, "presidio-structured")
    peer = composite(reports)
    peer_rate = float(peer["rows_per_second"]) if peer else None
    peer_recall = float(peer["any_pii_char_recall"]) if peer else None
    return {
        "guard_1_worker_vs_presidio_structured": _ratio(
            _rate(reports, "guard-local-1"), _rate(reports, "presidio-structured")
        ),
        "recall_guard_1_worker_minus_presidio_structured": (
            round(guard_1 - structured, 4)
            if guard_1 is not None and structured is not None
            else None
        ),
        "guard_1_worker_vs_presidio_structured_plus_batch_notes": _ratio(
            _rate(reports, "guard-local-1"), peer_rate
        ),
        "recall_guard_1_worker_minus_presidio_batch_notes": (
            round(guard_1 - peer_recall, 4)
            if guard_1 is not None and peer_recall is not None
            else None
        ),
        f"guard_{CORES}_workers_vs_1_worker": _ratio(
            _rate(reports, ALL), _rate(reports, "guard-local-1")
        ),
        f"spark_vs_guard_{CORES}_workers": _ratio(
            _rate(reports, "guard-spark"), _rate(reports, ALL)
        ),
    }


def summary(result: dict[str, Any]) -> str:
    """The figures as a Markdown table, for bench/README.md."""
    lines = [
        (
            "| engine | rows | rows/s | peak memory (PSS / RSS, MB) | any-PII char recall | "
            "note text kept |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for name, report in result["engines"].items():
        if "error" in report:
            lines.append(f"| {name} | | {report['error']} | | | |")
            continue
        sliced = report.get("labeled_slice", {})
        session = report.get("session_seconds")
        rate = f"{report['rows_per_second']:,.0f}" + (
            f" (+ {session:.1f} s session start)" if session is not None else ""
        )
        lines.append(
            f"| {name} | {report['rows_in']:,} | {rate} | {report['peak_tree_pss_mb']:,.0f} / "
            f"{report['peak_tree_rss_mb']:,.0f} | {sliced.get('any_pii_char_recall')} | "
            f"{sliced.get('note_text_kept')} |"
        )
    lines += ["", "| rows (guard, all cores) | rows/s | peak PSS / RSS (MB) |", "|---|---|---|"]
    for item in result["scaling"]:
        if "error" in item:
            lines.append(f"| {item['rows']:,} | {item['error']} | |")
        else:
            lines.append(
                f"| {item['rows']:,} | {item['rows_per_second']:,.0f} | "
                f"{item['peak_tree_pss_mb']:,.0f} / {item['peak_tree_rss_mb']:,.0f} |"
            )
    lines += ["", *(f"{key}: {value}" for key, value in result["ratios"].items())]
    return "\n".join(lines)


def save(
    path: Path,
    context: dict[str, Any],
    reports: dict[str, dict[str, Any]],
    scaling: list[dict[str, Any]],
    *,
    complete: bool,
) -> dict[str, Any]:
    """Write what has been measured so far (a long run keeps its finished parts)."""
    result = {
        **context,
        "complete": complete,
        "recall_method": (
            "note column, labeled slice aligned by ticket_id; a gold PII character counts as "
            f"removed unless it lies in a difflib matching run of >= {MIN_KEPT_RUN} characters "
            "between input and output note"
        ),
        "engines": reports,
        "presidio_structured_plus_batch_notes": composite(reports),
        "ratios": ratios(reports),
        "scaling": [
            {key: item[key] for key in SCALING_KEYS if item.get(key) is not None}
            for item in scaling
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: Sequence[str] | None = None) -> None:  # noqa: PLR0915 - one script
    """Generate the tables, run every engine in its own process, write results/export.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--presidio-rows", type=int, default=20_000, help="prefix for presidio-batch"
    )
    parser.add_argument(
        "--structured-rows", type=int, default=200_000, help="prefix for presidio-structured"
    )
    parser.add_argument("--scaling", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engines", nargs="*", default=list(ENGINES))
    parser.add_argument("--sample-rows", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=5400)
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run_child(args.child, args.input, args.output, args.sample_rows)
        return
    if args.quick:
        args.rows, args.presidio_rows, args.structured_rows = 3_000, 1_000, 3_000
        args.scaling = [1_000, 3_000, 10_000]
        if args.json == RESULTS:
            args.json = Path(tempfile.gettempdir()) / "export-quick.json"
    args.engines = [ALL if e == "guard-local-all" else e for e in args.engines]
    settings = get_settings()
    profile = bench_profile(settings)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="guard-export-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out_dir = workdir / "out"
    out_dir.mkdir(exist_ok=True)
    print(f"tables and outputs in {workdir}", flush=True)
    started = time.perf_counter()
    main_table = write_table(workdir, args.rows)
    structured_rows = min(args.structured_rows, args.rows)
    structured_table = (
        main_table if structured_rows == args.rows else write_table(workdir, structured_rows)
    )
    presidio_rows = min(args.presidio_rows, args.rows)
    presidio_table = (
        main_table if presidio_rows == args.rows else write_table(workdir, presidio_rows, csv=False)
    )
    print(f"generated the tables in {time.perf_counter() - started:.0f} s", flush=True)

    runs: dict[str, tuple[Path, Path, bool]] = {
        "presidio-structured": (
            structured_table["csv"],
            out_dir / "presidio-structured.csv",
            True,
        ),
        "presidio-batch": (presidio_table["parquet"], out_dir / "presidio-batch.parquet", False),
        "guard-local-1": (main_table["parquet"], out_dir / "guard-local-1.parquet", False),
        ALL: (main_table["parquet"], out_dir / f"{ALL}.parquet", False),
        f"{ALL}-csv": (main_table["csv"], out_dir / f"{ALL}-csv.csv", False),
        "guard-spark": (main_table["parquet"], out_dir / "guard-spark.parquet", False),
    }
    context = {
        "command": "bench/export.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": (
            f"{platform.machine()}, {CORES} cores (shared with test runs), "
            f"Python {platform.python_version()}"
        ),
        "profile": {"name": profile.name, "sha256": profile.sha256, "source": profile.source},
        "rows": args.rows,
        "tenant": TENANT,
    }
    reports: dict[str, dict[str, Any]] = {}
    scaling: list[dict[str, Any]] = []
    for engine in args.engines:
        child = engine.removesuffix("-csv")
        input_path, output_path, by_position = runs[engine]
        report = measure(
            child, input_path, output_path, sample_rows=args.sample_rows, timeout=args.timeout
        )
        report["engine"] = engine
        report["input"] = input_path.name
        if "error" not in report:
            gold = labeled_notes(report["rows_in"])
            report["labeled_slice"] = score_notes(
                gold, read_notes(output_path, by_position=by_position)
            )
            print(f"    labeled slice: {report['labeled_slice']}", flush=True)
        reports[engine] = report
        save(args.json, context, reports, scaling, complete=False)

    scaling_dir = workdir / "scaling"
    scaling_dir.mkdir(exist_ok=True)
    for rows in args.scaling:
        table = write_table(scaling_dir, rows, csv=False)
        output = out_dir / f"scaling-{rows}.parquet"
        report = measure(
            ALL, table["parquet"], output, sample_rows=args.sample_rows, timeout=args.timeout
        )
        scaling.append({"rows": rows, **report})
        save(args.json, context, reports, scaling, complete=False)
        table["parquet"].unlink()
        output.unlink(missing_ok=True)

    result = save(args.json, context, reports, scaling, complete=True)
    print(summary(result))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
