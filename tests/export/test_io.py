"""Export readers, decoders, encoders and the staged, atomic, resumable output."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from guard.export.errors import ExportError, ExportInputError
from guard.export.io import (
    CsvDecoder,
    JsonlDecoder,
    StagedOutput,
    detect_format,
    encode_csv,
    encode_jsonl,
    file_sha256,
    open_reader,
    staging_dir,
)

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "Zebedee-Quillfeather-7731"


def _decode(decoder: CsvDecoder | JsonlDecoder, pieces: list[str]) -> list[dict[str, object]]:
    batches = []
    for piece in pieces:
        batches += decoder.feed(piece)
    batches += decoder.close()
    return [row for batch in batches for row in batch.to_pylist()]


def _cuts(text: str) -> list[list[str]]:
    """The text cut in two at every position, and cut into single characters."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


def _error(decoder: CsvDecoder | JsonlDecoder, text: str) -> ExportInputError:
    with pytest.raises(ExportInputError) as caught:
        _decode(decoder, [text])
    assert SECRET not in str(caught.value)
    return caught.value


# ---------------------------------------------------------------- formats and round trips


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("a.csv", None, "csv"),
        ("a.JSONL", None, "jsonl"),
        ("a.ndjson", None, "jsonl"),
        ("a.parquet", None, "parquet"),
        ("a.pq", None, "parquet"),
        ("a.txt", "csv", "csv"),
    ],
)
def test_when_a_path_is_named_then_its_format_comes_from_extension_or_choice(
    tmp_path: Path, name: str, explicit: str | None, expected: str
) -> None:
    assert detect_format(tmp_path / name, explicit) == expected


def test_when_the_extension_is_unknown_then_the_error_asks_for_a_format(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--format"):
        detect_format(tmp_path / "a.txt")
    with pytest.raises(ExportError, match="unknown format"):
        detect_format(tmp_path / "a.csv", "xml")


def _typed_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "score": pa.array([1.5, None, -2.25], pa.float64()),
            "ok": pa.array([True, False, None], pa.bool_()),
            "name": pa.array(['Ann, "the" 1st', "line\nbreak", None], pa.string()),
            "day": pa.array([dt.date(2024, 5, 1), None, dt.date(1999, 12, 31)], pa.date32()),
            "at": pa.array(
                [dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC), None, None],
                pa.timestamp("us", tz="UTC"),
            ),
            "price": pa.array(
                [decimal.Decimal("12.30"), None, decimal.Decimal("-0.01")], pa.decimal128(10, 2)
            ),
        }
    )


def _stage(
    path: Path, fmt: str, table: pa.Table, *, batch_rows: int = 2, part_rows: int = 2
) -> tuple[int, str]:
    staged = StagedOutput(path, fmt, table.schema, state={"input": "x"}, part_rows=part_rows)  # type: ignore[arg-type]
    for batch in table.to_batches(max_chunksize=batch_rows):
        staged.write(batch)
    return staged.commit()


def test_when_parquet_is_written_and_read_then_rows_and_types_come_back(tmp_path: Path) -> None:
    table = _typed_table()
    out = tmp_path / "out.parquet"
    rows, digest = _stage(out, "parquet", table)
    assert rows == 3
    assert digest == file_sha256(out)
    reader = open_reader(out)
    assert reader.schema.equals(table.schema)
    assert reader.total_rows == 3
    assert pa.Table.from_batches(list(reader.batches(2)), reader.schema).equals(table)


def test_when_jsonl_is_written_and_read_then_json_types_come_back(tmp_path: Path) -> None:
    table = _typed_table()
    out = tmp_path / "out.jsonl"
    _stage(out, "jsonl", table)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {
        "id": 1,
        "score": 1.5,
        "ok": True,
        "name": 'Ann, "the" 1st',
        "day": "2024-05-01",
        "at": "2024-05-01T10:30:00+00:00",
        "price": "12.30",
    }
    assert list(json.loads(lines[0])) == table.column_names  # keys in column order
    back = open_reader(out).sample(10)
    assert back.column("id").type == pa.int64()
    assert back.column("score").type == pa.float64()
    assert back.column("ok").type == pa.bool_()
    assert back.column("name").to_pylist() == table.column("name").to_pylist()
    assert back.column("day").to_pylist() == ["2024-05-01", None, "1999-12-31"]


def test_when_csv_is_written_and_read_then_every_cell_comes_back_as_text(tmp_path: Path) -> None:
    table = _typed_table()
    out = tmp_path / "out.csv"
    _stage(out, "csv", table)
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "id,score,ok,name,day,at,price"
    assert '"Ann, ""the"" 1st"' in text
    back = open_reader(out).sample(10)
    assert back.schema == pa.schema([pa.field(n, pa.string()) for n in table.column_names])
    assert back.to_pylist()[0] == {
        "id": "1",
        "score": "1.5",
        "ok": "true",
        "name": 'Ann, "the" 1st',
        "day": "2024-05-01",
        "at": "2024-05-01T10:30:00+00:00",
        "price": "12.30",
    }
    assert back.to_pylist()[1]["name"] == "line\nbreak"
    assert back.to_pylist()[1]["score"] == ""  # null is the empty cell


def test_when_floats_are_not_finite_then_jsonl_writes_null_and_stays_json() -> None:
    batch = pa.record_batch({"x": pa.array([float("nan"), float("inf"), 1.0, None])})
    lines = encode_jsonl(batch).decode().splitlines()
    assert [json.loads(line)["x"] for line in lines] == [None, None, 1.0, None]


def test_when_an_empty_batch_is_encoded_then_csv_has_the_header_only() -> None:
    batch = pa.RecordBatch.from_pylist([], schema=pa.schema([("a", pa.string())]))
    assert encode_csv(batch, header=True) == b"a\n"
    assert encode_jsonl(batch) == b""


# ---------------------------------------------------------------- incremental decoding

CSV_TEXT = (
    "\ufeffid,note,city\r\n"
    '1,"first line\nsecond, with comma",Zürich\r\n'
    "\r\n"
    '2,"she said ""hi""",\r\n'
    '4,5" tall,Oslo\n'
    '3,"",Kraków'
)
CSV_ROWS = [
    {"id": "1", "note": "first line\nsecond, with comma", "city": "Zürich"},
    {"id": "2", "note": 'she said "hi"', "city": ""},
    {"id": "4", "note": '5" tall', "city": "Oslo"},  # a quote inside an unquoted cell is text
    {"id": "3", "note": "", "city": "Kraków"},
]


def test_when_csv_is_fed_in_pieces_cut_anywhere_then_the_rows_are_the_same() -> None:
    for pieces in _cuts(CSV_TEXT):
        decoder = CsvDecoder("t.csv", batch_rows=2)
        assert _decode(decoder, pieces) == CSV_ROWS, pieces
        assert decoder.rows_seen == 4


def test_when_csv_bytes_are_cut_inside_a_character_then_it_still_decodes() -> None:
    data = CSV_TEXT.encode("utf-8")
    for cut in range(len(data) + 1):
        decoder = CsvDecoder("t.csv")
        batches = decoder.feed_bytes(data[:cut]) + decoder.feed_bytes(data[cut:])
        batches += decoder.close()
        assert [r for b in batches for r in b.to_pylist()] == CSV_ROWS


JSONL_TEXT = (
    '{"id": 1, "name": "Zoë", "tags": {"b": [1, 2], "a": null}, "score": 2}\n'
    "\n"
    '{"id": 2, "score": 2.5, "extra": null}\r\n'
    '{"id": 3, "name": "Ann \\n B"}'
)
JSONL_ROWS = [
    {"id": 1, "name": "Zoë", "tags": '{"a":null,"b":[1,2]}', "score": 2.0, "extra": None},
    {"id": 2, "name": None, "tags": None, "score": 2.5, "extra": None},
    {"id": 3, "name": "Ann \n B", "tags": None, "score": None, "extra": None},
]


def test_when_jsonl_is_fed_in_pieces_cut_anywhere_then_the_rows_are_the_same() -> None:
    for pieces in _cuts(JSONL_TEXT):
        decoder = JsonlDecoder("t.jsonl", batch_rows=1)
        assert _decode(decoder, pieces) == JSONL_ROWS, pieces
        assert decoder.lines_seen == 4
        assert decoder.schema == pa.schema(
            [
                ("id", pa.int64()),
                ("name", pa.string()),
                ("tags", pa.string()),
                ("score", pa.float64()),
                ("extra", pa.string()),
            ]
        )


def test_when_the_batch_is_smaller_than_the_typing_window_then_types_do_not_change() -> None:
    text = '{"x": 1}\n{"x": 2.5}\n'
    small = JsonlDecoder("t.jsonl", batch_rows=1)
    assert [b.schema.field("x").type for b in small.feed(text) + small.close()] == [
        pa.float64(),
        pa.float64(),
    ]


def test_when_the_schema_is_fixed_then_flush_returns_the_rows_so_far() -> None:
    decoder = JsonlDecoder("t.jsonl", batch_rows=100, type_rows=1)
    assert decoder.feed('{"a": 1}\n{"a": 2}\n{"a"') == []
    flushed = decoder.flush()
    assert flushed is not None
    assert flushed.to_pylist() == [{"a": 1}, {"a": 2}]
    assert [b.to_pylist() for b in decoder.feed(": 3}\n") + decoder.close()] == [[{"a": 3}]]


# ---------------------------------------------------------------- bad input names where, never what


def test_when_a_csv_row_has_too_many_fields_then_the_error_names_file_row_and_line() -> None:
    error = _error(CsvDecoder("in.csv"), f'a,b\n1,2\n"x\ny",{SECRET},extra\n')
    assert error.source == "in.csv"
    assert error.row == 2
    assert str(error) == "in.csv, row 2: 3 fields where the header has 2 (line 3)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'a,b\n1,"{SECRET}"x\n', "closing quote"),
        (f'a,b\n1,"{SECRET}\n', "not closed"),
        (f"a,b\n1,{SECRET}\rrest\n", "line break inside an unquoted cell"),
    ],
)
def test_when_csv_quoting_is_broken_then_the_error_names_row_not_cell(
    text: str, problem: str
) -> None:
    error = _error(CsvDecoder("in.csv"), text)
    assert error.row == 1
    assert problem in str(error)


def test_when_a_csv_cell_is_huge_then_the_error_says_so_without_the_cell() -> None:
    error = _error(CsvDecoder("in.csv"), 'a\n"' + SECRET * 20_000 + '"\n')
    assert "a cell longer than 131072 characters" in str(error)


def test_when_the_csv_header_repeats_a_name_or_is_missing_then_it_is_refused() -> None:
    assert _error(CsvDecoder("in.csv"), "a,b,a\n1,2,3\n").column == "a"
    assert "no name" in str(_error(CsvDecoder("in.csv"), "a,,b\n"))
    assert "header row is required" in str(_error(CsvDecoder("in.csv"), ""))


@pytest.mark.parametrize(
    ("text", "row", "column", "problem"),
    [
        (f'{{"a": 1}}\n\n["{SECRET}"]\n', 2, None, "not a JSON object (a JSON array) (line 3)"),
        (f'{{"a": 1}}\n"{SECRET}"\n', 2, None, "not a JSON object (a JSON string)"),
        (f'{{"a": "{SECRET}\n', 1, None, "not valid JSON"),
        (f'{{"a": 1, "a": "{SECRET}"}}\n', 1, "a", "the key appears twice"),
        ('{"a": NaN}\n', 1, None, "NaN"),
        (f'{{"a": 1}}\n{{"a": "{SECRET}"}}\n', 2, "a", "a string in an integer column"),
        (f'{{"a": 1}}\n{{"a": 1, "b{SECRET}": 2}}\n', 2, f"b{SECRET}", "a key the first 1 rows"),
        (f'{{"a": {2**64}}}\n', 1, "a", "outside the 64-bit range"),
    ],
)
def test_when_a_jsonl_line_is_wrong_then_the_error_names_row_column_and_not_the_value(
    text: str, row: int, column: str | None, problem: str
) -> None:
    decoder = JsonlDecoder("in.jsonl", type_rows=1)
    with pytest.raises(ExportInputError) as caught:
        _decode(decoder, [text])
    error = caught.value
    assert (error.source, error.row, error.column) == ("in.jsonl", row, column)
    assert problem in str(error)
    if column is None or SECRET not in column:  # a column's name is its name, not a cell
        assert SECRET not in str(error)


def test_when_types_clash_inside_the_typing_window_then_the_first_clashing_row_is_named() -> None:
    error = _error(JsonlDecoder("in.jsonl"), f'{{"a": 1}}\n{{"a": true}}\n{{"a": "{SECRET}"}}\n')
    assert (error.row, error.column) == (2, "a")
    assert "a boolean where earlier rows hold an integer" in str(error)


def test_when_bytes_are_not_utf8_then_the_error_names_the_file() -> None:
    decoder = CsvDecoder("in.csv")
    decoder.feed_bytes(b"a\nok\n")
    with pytest.raises(ExportInputError, match=r"in\.csv, row 2: not UTF-8"):
        decoder.feed_bytes(b"\xff\xfe\n")


def test_when_a_line_never_ends_then_it_is_refused_before_memory_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("guard.export.io.MAX_RECORD_CHARS", 1000)
    decoder = JsonlDecoder("body")
    for _ in range(10):
        decoder.feed('"' + "x" * 99)
    with pytest.raises(ExportInputError, match="longer than 1000"):
        decoder.feed('"' + "x" * 99)


def test_when_a_parquet_column_is_nested_then_it_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"id": [1], "address": [{"street": SECRET}]}), path)
    with pytest.raises(ExportInputError) as caught:
        open_reader(path)
    assert caught.value.column == "address"
    assert "nested type" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_when_a_file_is_not_parquet_then_the_error_names_it_without_its_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fake.parquet"
    path.write_text(f"name\n{SECRET}\n" * 20, encoding="utf-8")
    with pytest.raises(ExportInputError) as caught:
        open_reader(path)
    assert str(caught.value) == f"{path}: not a readable Parquet file"


def test_when_the_input_is_missing_then_the_error_says_so(tmp_path: Path) -> None:
    with pytest.raises(ExportInputError, match="no such file"):
        open_reader(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- readers


def _numbers(n: int) -> pa.Table:
    return pa.table({"n": pa.array(range(n), pa.int64()), "s": [f"v{i}" for i in range(n)]})


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_when_rows_are_skipped_then_batches_start_after_them(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"in.{fmt}"
    table = _numbers(2_345)
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=1_000)
    else:
        _stage(path, fmt, table, batch_rows=500, part_rows=1_000)
    reader = open_reader(path)
    for skip in (0, 1, 999, 1_000, 1_001, 2_344, 2_345, 9_999):
        rows = [r for b in reader.batches(300, skip_rows=skip) for r in b.to_pylist()]
        assert [int(str(r["n"])) for r in rows] == list(range(skip, 2_345)), skip
        assert all(b.num_rows <= 300 for b in reader.batches(300, skip_rows=skip))
    assert [int(str(v)) for v in reader.sample(7).column("n").to_pylist()] == list(range(7))


def test_when_jsonl_types_settle_after_a_batch_then_every_reader_call_agrees(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"x": 1}\n' * 600 + '{"x": 1.5}\n' + '{"x": 2}\n' * 10, encoding="utf-8")
    reader = open_reader(path)
    assert reader.schema.field("x").type == pa.float64()
    assert all(b.schema.equals(reader.schema) for b in reader.batches(100, skip_rows=550))


# ---------------------------------------------------------------- staged output


def test_when_parquet_is_staged_in_other_batch_sizes_then_the_file_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("guard.export.io.OUTPUT_ROW_GROUP_ROWS", 100)
    table = _numbers(1_234)
    digests = set()
    for size in (3, 7, 500, 2_000):
        out = tmp_path / f"o{size}.parquet"
        digests.add(_stage(out, "parquet", table, batch_rows=size, part_rows=max(size, 300))[1])
        assert pq.ParquetFile(out).metadata.num_row_groups == 13
    assert len(digests) == 1


def test_when_commit_filters_rows_then_only_kept_rows_are_written(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    staged = StagedOutput(out, "jsonl", _numbers(10).schema, state={})
    staged.write(_numbers(10).to_batches()[0])
    rows, _ = staged.commit(lambda b: pc.less(b.column("n"), 3))
    assert rows == 3
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == [0, 1, 2]
    assert not staging_dir(out).exists()


def test_when_commit_fails_then_the_old_output_stays_and_no_temp_file_is_left(
    tmp_path: Path,
) -> None:
    out = tmp_path / "o.csv"
    out.write_text("previous export\n")
    staged = StagedOutput(out, "csv", _numbers(5).schema, state={})
    staged.write(_numbers(5).to_batches()[0])

    def broken(_batch: pa.RecordBatch) -> pa.BooleanArray:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        staged.commit(broken)
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o.csv.guard-partial", "o.csv"]
    staged.abort(keep_staging=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv"]


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import pyarrow as pa
    from guard.export.io import StagedOutput
    out, rows = Path(sys.argv[1]), int(sys.argv[2])
    table = pa.table({"n": pa.array(range(100), pa.int64())})
    staged = StagedOutput(out, "parquet", table.schema, state={"input_sha256": "abc"},
                          part_rows=30)
    for batch in table.to_batches(max_chunksize=10):
        if batch.column(0)[0].as_py() >= rows:
            os.kill(os.getpid(), signal.SIGKILL)  # between parts, no chance to clean up
        staged.write(batch, counts={"PERSON": 1})
    """
)


def test_when_the_process_is_killed_mid_export_then_no_output_and_resume_completes_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "o.parquet"
    killed = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _KILLED_WRITER, str(out), "70"], check=False
    )
    assert killed.returncode == -9
    assert not out.exists()
    directory = staging_dir(out)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in directory.iterdir()) == [
        "part-000001.arrow",
        "part-000002.arrow",
        "part-000003.arrow.tmp",  # the part being written when the process died
        "state.json",
    ]
    table = pa.table({"n": pa.array(range(100), pa.int64())})
    staged = StagedOutput.resume(
        out, "parquet", table.schema, state={"input_sha256": "abc"}, part_rows=30
    )
    assert (staged.rows_consumed, staged.rows_written) == (60, 60)
    assert staged.counts == {"PERSON": 6}
    assert [b.num_rows for b in staged.staged_batches()] == [10] * 6
    for batch in table.slice(staged.rows_consumed).to_batches(max_chunksize=10):
        staged.write(batch)
    rows, digest = staged.commit()
    assert rows == 100
    assert not directory.exists()
    uninterrupted = tmp_path / "u.parquet"
    assert _stage(uninterrupted, "parquet", table, batch_rows=10, part_rows=30)[1] == digest
    assert out.read_bytes() == uninterrupted.read_bytes()


def test_when_the_staged_export_used_another_input_then_resume_refuses(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    schema = _numbers(1).schema
    staged = StagedOutput(out, "jsonl", schema, state={"input_sha256": "abc"}, part_rows=1)
    staged.write(_numbers(3).to_batches()[0])
    with pytest.raises(ExportError) as caught:
        StagedOutput.resume(out, "jsonl", schema, state={"input_sha256": "def"})
    message = str(caught.value)
    assert "used another input/profile (input_sha256 differ)" in message
    assert f"remove {staging_dir(out)} or run without --resume" in message
    with pytest.raises(ExportError, match="format, schema_sha256 differ"):
        StagedOutput.resume(
            out, "csv", pa.schema([("z", pa.string())]), state={"input_sha256": "abc"}
        )


def test_when_a_staged_part_is_damaged_then_resume_refuses(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    schema = _numbers(1).schema
    staged = StagedOutput(out, "jsonl", schema, state={}, part_rows=1)
    staged.write(_numbers(3).to_batches()[0])
    part = staging_dir(out) / "part-000001.arrow"
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    with pytest.raises(ExportError, match=r"part-000001\.arrow .* missing or damaged"):
        StagedOutput.resume(out, "jsonl", schema, state={})


def test_when_nothing_was_staged_then_resume_starts_afresh(tmp_path: Path) -> None:
    staged = StagedOutput.resume(tmp_path / "o.csv", "csv", _numbers(1).schema, state={})
    assert staged.rows_consumed == 0
    assert staged.commit()[0] == 0
    assert (tmp_path / "o.csv").read_text() == "n,s\n"


def test_when_the_staging_dir_holds_foreign_files_then_they_are_not_deleted(
    tmp_path: Path,
) -> None:
    out = tmp_path / "o.csv"
    staging_dir(out).mkdir()
    (staging_dir(out) / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="did not write"):
        StagedOutput(out, "csv", _numbers(1).schema, state={})
    assert (staging_dir(out) / "notes.txt").exists()


def test_when_staging_then_the_directory_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        staged = StagedOutput(tmp_path / "o.csv", "csv", _numbers(1).schema, state={})
    finally:
        os.umask(old)
    assert staged.directory.stat().st_mode & 0o777 == 0o700
