"""The Spark engine: the same rows as the local engine, one analyzer per worker process."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from guard.export.errors import ExportError, ExportInputError, KAnonymityError
from guard.export.kanon import KAnonymityCheck
from guard.export.local import run_local
from guard.export.profile import KAnonymity, parse_profile
from guard.export.spark import (
    ExportCounters,
    check_k_anonymity,
    executor_settings,
    guard_errors,
    java_home,
    plan_for_dataframe,
    redact_dataframe,
    run_spark,
    spark_unavailable,
    suppress_small_groups,
)

if TYPE_CHECKING:
    from pathlib import Path

    from guard.config import Settings
    from guard.detection.engine import Detector
    from guard.export.profile import ExportProfile

pytestmark = pytest.mark.skipif(
    spark_unavailable() is not None, reason=f"Spark cannot run here: {spark_unavailable()}"
)

KEY = bytes(range(32))
FIRST = ["Maria", "John", "Priya", "Wei", "Fatima", "Lars", "Ana", "Tom", "Keiko", "Omar"]
LAST = ["Lopez", "Smith", "Natarajan", "Chen", "Haddad", "Berg", "Silva", "Brown", "Sato"]
BAD_DATE = "not-a-date-3141"


def _rows(count: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """Support tickets: names, emails, phones, dates, postcodes and a free-text note."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    rows = []
    for number in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{rng.randint(1, 99)}@example.com".lower()
        phone = f"+1 415-555-{rng.randint(0, 9999):04d}"
        created = dt.date(2024, rng.randint(1, 12), rng.randint(1, 28))
        birth = dt.date(rng.choice([1970, 1980, 1990, 2000]), rng.randint(1, 12), 1)
        note = rng.choice(
            [
                f"{first} {last} called from {phone} about order {number}.",
                f"Customer asked to be emailed at {email} with the refund.",
                "Delivery was late; offered a voucher.",
                f"Spoke with {first} about the invoice, all settled.",
            ]
        )
        rows.append(
            {
                "ticket_id": number,
                "full_name": f"{first} {last}",
                "email": email,
                "phone": phone,
                "created_at": created,
                "birth_date": birth,
                "postcode": rng.choice(["SW1A 1AA", "SW1B 2BB", "N1 9GU", "EC1V 4PW"]),
                "amount": round(rng.uniform(1, 400), 2),
                "contact": f"{rng.choice(FIRST).lower()}@example.org",
                # kept as they are: Spark's writers spell these unlike guard's own
                "opened_at": dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
                + dt.timedelta(seconds=number * 3_607, microseconds=(number % 2) * 250),
                "score": rng.choice([0.1, 1e16, 123.0, -2.5, float("nan")]),
                "note": note,
            }
        )
    return rows


PROFILE: dict[str, Any] = {
    "purpose": "research",
    "columns": {
        "ticket_id": "keep",
        "full_name": {"action": "pseudonym", "entity": "PERSON"},
        "email": {"action": "pseudonym", "entity": "EMAIL_ADDRESS"},
        "phone": {"action": "mask", "keep_last": 4},
        "created_at": {"action": "generalize", "date": "month"},
        "birth_date": {"action": "generalize", "date": "year"},
        "postcode": {"action": "generalize", "truncate": 3},
        "amount": {"action": "generalize", "bucket": 50},
        "note": "scan",
        "opened_at": "keep",
        "score": "keep",
    },
    "unknown_columns": "scan",
    "k_anonymity": {"quasi_identifiers": ["birth_date", "postcode"], "k": 25},
}


def _profile(body: dict[str, Any] | None = None, **changes: Any) -> ExportProfile:
    return parse_profile("spark-test", {**(body or PROFILE), **changes}, source="test")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: str(v) for k, v in row.items()} for row in rows)
    return path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            line = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in row.items()}
            line["score"] = None if math.isnan(row["score"]) else row["score"]
            # nested values become canonical JSON text (sorted keys): Spark must agree
            line["meta"] = {"z": row["ticket_id"] % 3, "a": [True, None], "é": "ü"}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=128)
    return path


def _read_rows(path: Path, fmt: str) -> list[tuple[Any, ...]]:
    """Every row of a file or a Spark output directory, as sorted tuples of its values."""
    files = sorted(p for p in path.glob("part-*")) if path.is_dir() else [path]
    rows: list[tuple[Any, ...]] = []
    for file in files:
        if fmt == "parquet":
            table = pq.read_table(file)
            rows.extend(tuple(sorted(row.items())) for row in table.to_pylist())
        elif fmt == "jsonl":
            lines = file.read_text(encoding="utf-8").splitlines()
            rows.extend(tuple(sorted(json.loads(line).items())) for line in lines)
        else:
            reader = csv.DictReader(io.StringIO(file.read_text(encoding="utf-8"), newline=""))
            rows.extend(tuple(sorted(row.items())) for row in reader)
    return sorted(rows, key=repr)


@pytest.mark.parametrize(
    ("writer", "fmt_in", "fmt_out"),
    [
        (_write_csv, "csv", "parquet"),
        (_write_jsonl, "jsonl", "csv"),
        (_write_parquet, "parquet", "jsonl"),
    ],
)
def test_when_the_same_input_runs_on_spark_and_locally_then_the_rows_are_identical(
    spark: Any,
    settings: Settings,
    detector: Detector,
    tmp_path: Path,
    writer: Any,
    fmt_in: str,
    fmt_out: str,
) -> None:
    source = writer(tmp_path / f"tickets.{fmt_in}", _rows())
    profile = _profile()
    common = {
        "profile": profile,
        "tenant": "acme",
        "purpose_key": KEY,
        "settings": settings,
        "input_path": source,
        "output_format": fmt_out,
    }
    local = run_local(**common, output_path=tmp_path / f"local.{fmt_out}", workers=1)
    remote = run_spark(
        **common, output_path=tmp_path / f"spark.{fmt_out}", spark=spark, detector=detector
    )

    spark_rows = _read_rows(tmp_path / f"spark.{fmt_out}", fmt_out)
    assert spark_rows == _read_rows(tmp_path / f"local.{fmt_out}", fmt_out)
    assert remote.engine == "spark"
    assert remote.plan.report() == local.plan.report()
    assert (remote.rows_in, remote.rows_out, remote.rows_suppressed) == (
        local.rows_in,
        local.rows_out,
        local.rows_suppressed,
    )
    assert 0 < remote.rows_suppressed < remote.rows_in == 300
    assert remote.kanon == local.kanon
    assert remote.entity_counts == local.entity_counts
    assert remote.input_sha256 == local.input_sha256
    # what left is redacted: no email address, no full name in clear
    text = repr(spark_rows)
    assert "@example.com" not in text
    assert "Natarajan" not in text
    # the checksum covers the part files, and the details for the manifest are there
    assert len(remote.output_sha256) == 64
    assert remote.extra["output_parts"]
    assert remote.extra["session_start_seconds"] is None  # the session was handed in


def test_when_a_dataframe_is_redacted_then_each_worker_process_loads_the_analyzer_once(
    spark: Any, settings: Settings, detector: Detector, tmp_path: Path
) -> None:
    # settings of their own: no worker has a detector for them yet, so each must load one
    fresh = settings.model_copy(update={"analysis_window_overlap_chars": 4_000})
    table = pa.Table.from_pylist(
        [{k: str(v) for k, v in row.items()} for row in _rows(80, seed=11)]
    )
    pq.write_table(table, tmp_path / "in.parquet")
    df = spark.read.parquet(str(tmp_path / "in.parquet")).repartition(8)
    profile = _profile(k_anonymity=None)
    plan = plan_for_dataframe(df, profile, "acme", fresh, detector=detector)
    counters = ExportCounters(spark.sparkContext)

    out = redact_dataframe(df, plan, purpose_key=KEY, settings=fresh, counters=counters)
    rows = out.collect()

    summary = counters.summary()
    assert len(rows) == summary["rows"] == 80
    assert summary["tasks"] == 8
    workers = summary["workers"]
    assert isinstance(workers, dict)
    # 8 tasks ran in at most 2 processes (local[2], workers reused), each loaded the model once
    assert 1 <= len(workers) <= 2
    assert all(seen["loads"] == 1 for seen in workers.values()), workers
    assert sum(seen["tasks"] for seen in workers.values()) == 8
    assert set(out.columns) == set(plan.output_columns)


def test_when_a_dataframe_cell_fails_then_guard_errors_names_the_partition_and_column(
    spark: Any, settings: Settings, detector: Detector, tmp_path: Path
) -> None:
    rows = [{"ticket_id": n, "created_at": "2024-05-06"} for n in range(1, 21)]
    rows[13]["created_at"] = BAD_DATE
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    df = spark.read.parquet(str(tmp_path / "in.parquet")).coalesce(1)
    plan = plan_for_dataframe(df, _profile(KEEP_ONLY), "acme", settings, detector=detector)
    out = redact_dataframe(df, plan, purpose_key=KEY, settings=settings, source="tickets")

    with pytest.raises(ExportInputError) as caught, guard_errors("tickets"):
        out.collect()

    assert caught.value.column == "created_at"
    assert caught.value.source == "tickets"
    assert "Spark partition 0, its row 14" in str(caught.value)
    assert BAD_DATE not in str(caught.value)


def _kanon_batches() -> list[pa.RecordBatch]:
    years = ["1990"] * 5 + ["1985"] * 4 + [None, None] + ["1990"]
    codes = ["SW1"] * 5 + ["N1"] * 4 + ["N1", "N1"] + ["ZZ9"]
    score = [1.0] * 5 + [float("nan")] * 4 + [2.0, 2.0, 3.0]
    table = pa.table(
        {"id": list(range(12)), "birth_year": years, "postcode": codes, "score": score}
    )
    batches: list[pa.RecordBatch] = table.to_batches(max_chunksize=5)
    return batches


def _kanon_frame(spark: Any, folder: Path) -> Any:
    # (read from a file: pyspark's createDataFrame leaves a socket open, a ResourceWarning)
    pq.write_table(pa.Table.from_batches(_kanon_batches()), folder / "kanon.parquet")
    return spark.read.parquet(str(folder / "kanon.parquet"))


@pytest.mark.parametrize("qis", [["birth_year", "postcode"], ["score"]])
def test_when_groups_are_below_k_on_spark_then_the_report_and_rows_match_the_local_rules(
    spark: Any, qis: list[str], tmp_path: Path
) -> None:
    rule = KAnonymity(quasi_identifiers=qis, k=4)
    local = KAnonymityCheck(rule)
    for batch in _kanon_batches():
        local.add(batch)
    keep = local.resolve()
    expected = sorted(
        row["id"]
        for batch in _kanon_batches()
        for row in (batch.filter(keep(batch)) if keep else batch).to_pylist()
    )
    df = _kanon_frame(spark, tmp_path)

    check = check_k_anonymity(df, rule)
    try:
        kept = suppress_small_groups(df, check.small, qis) if check.small is not None else df
        ids = sorted(row["id"] for row in kept.collect())
    finally:
        check.release()
    check.report["rows_suppressed"] = check.report["rows_below_k"]

    assert ids == expected
    assert check.report == local.report()


def test_when_k_anonymity_fails_on_spark_then_the_error_counts_rows_and_names_no_value(
    spark: Any, tmp_path: Path
) -> None:
    df = _kanon_frame(spark, tmp_path)
    rule = KAnonymity(quasi_identifiers=["birth_year", "postcode"], k=4, on_violation="fail")
    with pytest.raises(KAnonymityError) as caught:
        check_k_anonymity(df, rule)
    message = str(caught.value)
    assert "3 of 12 rows, in 2 groups" in message
    assert "ZZ9" not in message


def test_when_a_profile_column_is_missing_then_spark_fails_clearly_and_writes_nothing(
    spark: Any, settings: Settings, detector: Detector, tmp_path: Path
) -> None:
    source = _write_csv(tmp_path / "in.csv", _rows(20))
    body = {**PROFILE, "columns": {**PROFILE["columns"], "loyalty_tier": "keep"}}
    output = tmp_path / "out"
    with pytest.raises(ExportInputError) as caught:
        run_spark(
            profile=_profile(body),
            tenant="acme",
            purpose_key=KEY,
            settings=settings,
            input_path=source,
            output_path=output,
            spark=spark,
            detector=detector,
        )
    assert caught.value.column == "loyalty_tier"
    assert "no such column" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


KEEP_ONLY: dict[str, Any] = {
    "purpose": "research",
    "columns": {"ticket_id": "keep", "created_at": {"action": "generalize", "date": "month"}},
    "unknown_columns": "drop",
}


@pytest.mark.parametrize(
    ("writer", "name"), [(_write_csv, "in.csv"), (_write_parquet, "in.parquet")]
)
def test_when_a_cell_fails_inside_spark_then_the_error_names_the_input_row_not_the_value(
    spark: Any,
    settings: Settings,
    detector: Detector,
    tmp_path: Path,
    writer: Any,
    name: str,
) -> None:
    rows = [{**row, "created_at": str(row["created_at"])} for row in _rows(300)]
    source = writer(tmp_path / name, rows)
    output = tmp_path / "out.csv"
    common = {
        "profile": _profile(KEEP_ONLY),
        "tenant": "acme",
        "purpose_key": KEY,
        "settings": settings,
        "output_path": output,
        "spark": spark,
        "detector": detector,
    }
    first = run_spark(**common, input_path=source)  # an earlier export is at the output path
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    assert first.rows_out == 300

    rows[236]["created_at"] = BAD_DATE  # data row 237, in the second Parquet row group
    source.unlink()
    bad = writer(tmp_path / name, rows)
    with pytest.raises(ExportInputError) as caught:
        run_spark(**common, input_path=bad)

    assert (caught.value.row, caught.value.column) == (237, "created_at")
    assert "cannot generalize" in str(caught.value)
    assert BAD_DATE not in str(caught.value)
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "out.csv"]


def test_when_a_csv_row_is_malformed_deep_in_the_file_then_the_spark_reader_names_it(
    spark: Any, settings: Settings, detector: Detector, tmp_path: Path
) -> None:
    # past the first megabyte: the driver's schema probe does not see it, the Spark task does
    source = _write_csv(tmp_path / "in.csv", _rows(9_000))
    assert source.stat().st_size > 1_100_000
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[8_500] = lines[8_500].rstrip("\n") + ",SECRET-EXTRA\n"  # data row 8,500
    source.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ExportInputError) as caught:
        run_spark(
            profile=_profile(KEEP_ONLY),
            tenant="acme",
            purpose_key=KEY,
            settings=settings,
            input_path=source,
            output_path=tmp_path / "out.csv",
            spark=spark,
            detector=detector,
        )
    assert caught.value.row == 8_500
    assert "fields where the header has" in str(caught.value)
    assert "SECRET-EXTRA" not in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_when_the_output_path_holds_something_else_then_spark_refuses_to_touch_it(
    settings: Settings, detector: Detector, tmp_path: Path
) -> None:
    source = _write_csv(tmp_path / "in.csv", _rows(5))
    output = tmp_path / "out.csv"
    output.mkdir()
    (output / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ExportError, match="not an earlier Spark export"):
        run_spark(
            profile=_profile(KEEP_ONLY),
            tenant="acme",
            purpose_key=KEY,
            settings=settings,
            input_path=source,
            output_path=output,
            detector=detector,
        )
    assert (output / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_when_tasks_carry_settings_then_guard_secrets_stay_behind(settings: Settings) -> None:
    secret = "do-not-ship-" + "x" * 20
    loaded = settings.model_copy(
        update={"redaction_key": SecretStr(secret), "database_url": SecretStr(secret)}
    )
    shipped = executor_settings(loaded)
    assert shipped.redaction_key is None
    assert shipped.database_url is None
    assert secret not in repr(shipped.model_dump())
    assert shipped.policies_dir == settings.policies_dir
    assert shipped.nlp_model == settings.nlp_model


def _jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("", encoding="utf-8")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n', encoding="utf-8")
    return home


def test_when_java_home_is_not_java_17_then_the_java_17_beside_it_is_used(tmp_path: Path) -> None:
    newer = _jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.1")
    wanted = _jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    _jdk(tmp_path, "java-8-openjdk-amd64", "1.8.0_402")
    assert java_home({"JAVA_HOME": str(newer)}, jvm_dir=tmp_path) == str(wanted)
    assert java_home({"JAVA_HOME": str(wanted)}, jvm_dir=tmp_path) == str(wanted)
    assert java_home({}, jvm_dir=tmp_path) == str(wanted)


def test_when_no_java_17_is_installed_then_the_error_says_what_to_do(tmp_path: Path) -> None:
    newer = _jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.1")
    with pytest.raises(ExportError, match="Spark needs Java 17") as caught:
        java_home({"JAVA_HOME": str(newer)}, jvm_dir=tmp_path)
    assert "JAVA_HOME" in str(caught.value)
