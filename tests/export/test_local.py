"""The local runner: real files, real worker processes, the output whole or absent."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from guard.export import local
from guard.export.errors import ExportError, ExportInputError, KAnonymityError
from guard.export.io import file_sha256, staging_dir
from guard.export.local import run_local
from guard.export.profile import parse_profile

if TYPE_CHECKING:
    from collections.abc import Mapping

    from guard.config import Settings
    from guard.export.profile import ExportProfile
    from guard.export.transform import RunResult

KEY = bytes(range(32))
ROWS = 1_200
SECRET = "Zebedee-Quillfeather-7731"
FIRST = ["Ann", "Bruno", "Chloe", "Dmitri", "Esther", "Farid", "Grace", "Hiro"]
LAST = ["Lee", "Santos", "Okafor", "Novak", "Lindqvist", "Haddad", "Moreau", "Tanaka"]

SCANNING = {
    "purpose": "research",
    "columns": {
        "id": "keep",
        "email": {"action": "pseudonym", "entity": "EMAIL_ADDRESS"},
        "note": "scan",
        "age": {"action": "generalize", "band": 10},
    },
    "unknown_columns": "drop",
}
#: No free text: the model is never loaded (fast tests of staging, resume and errors).
PLAIN = {
    "purpose": "research",
    "columns": {
        "id": "keep",
        "email": {"action": "pseudonym", "entity": "EMAIL_ADDRESS"},
        "age": {"action": "generalize", "band": 10},
    },
    "unknown_columns": "drop",
}


def _profile(body: Mapping[str, object], **extra: object) -> ExportProfile:
    return parse_profile("t", {**body, **extra}, source="test")


def _row(i: int) -> dict[str, object]:
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return {
        "id": i,
        "email": f"{first}.{last}{i % 97}@example.com".lower(),
        "note": f"{first} {last} asked about order {1000 + i}; call 415-555-{i % 10_000:04d}.",
        "age": 18 + i % 60,
        "city": "Lisbon" if i % 2 else "Oslo",
    }


def _write_jsonl(path: Path, rows: int = ROWS, bad_row: int | None = None) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            row = _row(i)
            if bad_row is not None and i + 1 == bad_row:
                row["age"] = SECRET
            handle.write(json.dumps(row) + "\n")
    return path


def _run(
    settings: Settings, profile: ExportProfile, source: Path, output: Path, **options: object
) -> RunResult:
    return run_local(
        profile=profile,
        tenant="default",
        purpose_key=KEY,
        settings=settings,
        input_path=source,
        output_path=output,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def support(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_jsonl(tmp_path_factory.mktemp("in") / "support.jsonl")


@pytest.fixture(scope="module")
def baseline(
    settings: Settings, support: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[bytes, RunResult]:
    """The scanning profile's output with one worker (in this process)."""
    out = tmp_path_factory.mktemp("out") / "one.parquet"
    result = _run(settings, _profile(SCANNING), support, out, workers=1, batch_rows=50)
    return out.read_bytes(), result


def _beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# ---------------------------------------------------------------- the pool


def test_when_two_workers_run_then_the_output_is_byte_identical_to_one_worker(
    settings: Settings, support: Path, baseline: tuple[bytes, RunResult], tmp_path: Path
) -> None:
    expected, one = baseline
    out = tmp_path / "two.parquet"
    two = _run(settings, _profile(SCANNING), support, out, workers=2, batch_rows=50)
    assert out.read_bytes() == expected
    assert (two.workers, two.rows_in, two.rows_out) == (2, ROWS, ROWS)
    assert two.entity_counts == one.entity_counts
    assert two.entity_counts["PERSON"] >= ROWS * 0.9
    assert two.output_sha256 == one.output_sha256 == file_sha256(out)
    assert two.input_sha256 == file_sha256(support)
    table = pq.read_table(out)
    assert table.column_names == ["id", "email", "note", "age"]
    assert all("<PHONE_NUMBER_" in str(note) for note in table.column("note").to_pylist())
    assert _beside(out) == ["two.parquet"]


def test_when_the_pool_is_renewed_midway_then_the_output_is_still_identical(
    settings: Settings,
    support: Path,
    baseline: tuple[bytes, RunResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fresh workers every few batches (their memory stays bounded): same bytes, same counts."""
    monkeypatch.setattr(local, "POOL_BATCHES", 3)
    expected, one = baseline
    out = tmp_path / "renewed.parquet"
    renewed = _run(settings, _profile(SCANNING), support, out, workers=2, batch_rows=50)
    assert out.read_bytes() == expected
    assert renewed.entity_counts == one.entity_counts


def _children() -> dict[int, int]:
    """Every process's parent, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _pool_workers() -> list[int]:
    """Processes started by a fork server that this process started."""
    parents = _children()
    servers = [
        pid
        for pid, parent in parents.items()
        if parent == os.getpid() and b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return [pid for pid, parent in parents.items() if parent in servers]


def test_when_a_worker_is_killed_then_the_export_fails_cleanly_and_resume_finishes_it(
    settings: Settings, support: Path, baseline: tuple[bytes, RunResult], tmp_path: Path
) -> None:
    out = tmp_path / "killed.parquet"
    first_part = staging_dir(out) / "part-000001.arrow"
    finished = threading.Event()
    killed: list[int] = []

    def kill_a_worker_once_a_part_is_staged() -> None:
        while not finished.is_set():
            workers = _pool_workers()
            if workers and first_part.exists():
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
                return
            finished.wait(0.02)

    killer = threading.Thread(target=kill_a_worker_once_a_part_is_staged)
    killer.start()
    try:
        with pytest.raises(ExportError, match="a worker process died"):
            _run(
                settings,
                _profile(SCANNING),
                support,
                out,
                workers=2,
                batch_rows=50,
                part_rows=200,
            )
    finally:
        finished.set()
        killer.join()
    assert killed
    assert not out.exists()
    assert _beside(out) == [".killed.parquet.guard-partial"]  # JSONL input: kept for resume

    resumed = _run(
        settings, _profile(SCANNING), support, out, workers=1, batch_rows=50, resume=True
    )
    assert int(str(resumed.extra["resumed_rows"])) >= 200
    assert resumed.rows_in == ROWS
    assert out.read_bytes() == baseline[0]
    assert resumed.entity_counts == baseline[1].entity_counts
    assert _beside(out) == ["killed.parquet"]


def test_when_a_worker_meets_a_bad_row_then_the_same_error_reaches_the_caller(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    ages = [str(18 + i % 60) if i + 1 != 1_100 else f"{SECRET} years" for i in range(ROWS)]
    source.write_text(
        "id,email,age\n" + "".join(f"{i},e{i}@example.com,{age}\n" for i, age in enumerate(ages))
    )
    out = tmp_path / "out.csv"
    with pytest.raises(ExportInputError) as caught:
        _run(settings, _profile(PLAIN), source, out, workers=2, batch_rows=100)
    assert (caught.value.row, caught.value.column) == (1_100, "age")
    assert str(caught.value).startswith(f"{source}, row 1100, column 'age': cannot generalize")
    assert SECRET not in str(caught.value)
    assert _beside(out) == ["in.csv"]  # bad input: nothing staged is kept


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_when_an_export_is_interrupted_then_resume_gives_the_uninterrupted_output(
    settings: Settings, support: Path, tmp_path: Path, fmt: str
) -> None:
    source = support
    if fmt == "parquet":
        source = tmp_path / "in.parquet"
        rows = [json.loads(line) for line in support.read_text().splitlines()]
        pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=350)
    whole = tmp_path / "whole.jsonl"
    expected = _run(settings, _profile(PLAIN), source, whole, workers=1, batch_rows=100)

    def interrupt(done: int) -> None:
        if done >= 650:
            raise KeyboardInterrupt

    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _run(
            settings,
            _profile(PLAIN),
            source,
            out,
            workers=1,
            batch_rows=100,
            part_rows=200,
            on_batch=interrupt,
        )
    assert not out.exists()
    assert staging_dir(out).is_dir()
    resumed = _run(settings, _profile(PLAIN), source, out, workers=1, batch_rows=70, resume=True)
    assert resumed.extra["resumed_rows"] == 600
    assert (resumed.rows_in, resumed.rows_out) == (ROWS, ROWS)
    assert out.read_bytes() == whole.read_bytes()
    assert resumed.output_sha256 == expected.output_sha256
    assert not staging_dir(out).exists()


def test_when_resuming_with_another_profile_then_it_refuses_and_says_what_to_do(
    settings: Settings, support: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"

    def interrupt(done: int) -> None:
        if done >= 400:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(settings, _profile(PLAIN), support, out, part_rows=100, on_batch=interrupt, workers=1)
    other = _profile(PLAIN, purpose="marketing")
    with pytest.raises(ExportError) as caught:
        _run(settings, other, support, out, workers=1, resume=True)
    assert "used another input/profile" in str(caught.value)
    assert "or run without --resume" in str(caught.value)
    _run(settings, other, support, out, workers=1)  # without --resume: starts afresh
    assert not staging_dir(out).exists()


def test_when_resuming_a_csv_input_then_it_says_resume_needs_parquet_or_jsonl(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,email,age\n1,a@example.com,30\n")
    with pytest.raises(ExportError, match="--resume needs a Parquet or JSONL input"):
        _run(settings, _profile(PLAIN), source, tmp_path / "o.csv", resume=True)


# ---------------------------------------------------------------- bad input, k-anonymity, formats


def test_when_a_profile_column_is_missing_then_nothing_is_written(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(f"id,mail,age\n1,{SECRET},30\n")
    out = tmp_path / "out.csv"
    with pytest.raises(ExportInputError) as caught:
        _run(settings, _profile(PLAIN), source, out, workers=1)
    assert caught.value.column == "email"
    assert SECRET not in str(caught.value)
    assert _beside(out) == ["in.csv"]


def test_when_a_row_changes_type_mid_file_then_the_error_names_it_and_nothing_is_left(
    settings: Settings, tmp_path: Path
) -> None:
    source = _write_jsonl(tmp_path / "in.jsonl", bad_row=1_150)
    out = tmp_path / "out.parquet"
    with pytest.raises(ExportInputError) as caught:
        _run(settings, _profile(PLAIN), source, out, workers=1, batch_rows=100, part_rows=100)
    assert str(caught.value) == (
        f"{source}, row 1150, column 'age': a string in an integer column "
        "(types are fixed by the first 1000 rows)"
    )
    assert _beside(out) == ["in.jsonl"]


def test_when_groups_are_below_k_then_rows_are_suppressed_and_reported(
    settings: Settings, support: Path, tmp_path: Path
) -> None:
    profile = _profile(
        PLAIN, k_anonymity={"quasi_identifiers": ["age"], "k": 180, "on_violation": "suppress"}
    )
    out = tmp_path / "out.csv"
    result = _run(settings, profile, support, out, workers=1)
    ages = [line.rsplit(",", 1)[1] for line in out.read_text().splitlines()[1:]]
    # ages 18..77 in bands of ten: 10-19 has 2 ages (40 rows), 70-79 has 8 (160): both below k
    assert set(ages) == {"20-29", "30-39", "40-49", "50-59", "60-69"}
    assert result.rows_suppressed == 200
    assert (result.rows_in, result.rows_out) == (ROWS, ROWS - 200)
    assert result.kanon is not None
    assert result.kanon["groups_below_k"] == 2
    assert result.kanon["smallest_group_after"] == 200


def test_when_k_anonymity_fails_then_there_is_no_output(
    settings: Settings, support: Path, tmp_path: Path
) -> None:
    profile = _profile(
        PLAIN, k_anonymity={"quasi_identifiers": ["age"], "k": 180, "on_violation": "fail"}
    )
    out = tmp_path / "out.parquet"
    with pytest.raises(KAnonymityError, match="200 of 1200 rows, in 2 groups"):
        _run(settings, profile, support, out, workers=1)
    assert _beside(out) == []


def test_when_the_output_names_another_format_then_it_is_written_in_it(
    settings: Settings, support: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    result = _run(settings, _profile(PLAIN), support, out, workers=1)
    assert (result.input_format, result.output_format) == ("jsonl", "csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "id,email,age"
    assert len(lines) == ROWS + 1
    assert lines[1].startswith("0,<EMAIL_ADDRESS_")


def test_when_options_make_no_sense_then_they_are_refused(
    settings: Settings, support: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="workers must be at least 1"):
        _run(settings, _profile(PLAIN), support, tmp_path / "o.jsonl", workers=0)
    with pytest.raises(ExportError, match="must not be the input"):
        _run(settings, _profile(PLAIN), support, support, workers=1)
