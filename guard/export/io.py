"""Export input and output: CSV, JSONL and Parquet as Arrow record batches, memory flat in rows.

Why this module parses text itself: pyarrow's CSV and JSON readers put the offending row's text
in their error messages, and an export's rows are customer data. Here CSV goes through the
standard library's ``csv`` module (strict) and JSONL through ``json``; every error is an
:class:`~guard.export.errors.ExportInputError` naming the source, the row and the column, never a
cell value. The same incremental decoders serve files and the streaming API: feed them text (or
bytes) in chunks of any size, however they cut a line or a quoted cell, and complete batches
come out.

Rows are numbered from 1 over data rows: the CSV header and blank lines are not rows. When a
row's line number differs from its row number (blank lines; CSV cells holding newlines), the
error adds the line.

Typing rules:
    CSV      A header row is required; column names must be unique and non-empty. Every cell is
             a string (an empty cell is the empty string). A row with another number of fields
             than the header is an error. Blank lines are skipped.
    JSONL    Each non-blank line is one JSON object (anything else is an error naming the row
             and line). Strings, integers, floats, booleans and null are kept; a nested object
             or array becomes its canonical JSON text (sorted keys, compact), a string. NaN and
             Infinity are not JSON and are refused, as are duplicate keys. The first
             ``type_rows`` rows (the typing window, 1,000 by default, whatever the batch size)
             fix the columns (first-seen order) and their types: integers with floats make
             a float column, a column only ever null is a string column, any other mix is an
             error. After the window, a value of another type is an error naming the row and
             column (an integer in a float column is fine; a float in an integer column is
             not), a missing key is null, and a key the window did not have is an error.
    Parquet  Read as it is typed, batch by batch. Nested types (struct, list, map) and types
             with no text form (binary, duration, ...) are refused with the column named.

Output: ``encode_jsonl`` writes one compact JSON object per row (keys in column order, UTF-8,
dates and timestamps as ISO-8601 strings, decimals as strings so no digit is lost, NaN and
infinities as null); ``encode_csv`` writes RFC 4180 quoting with LF line ends, null as the
empty cell, booleans as ``true``/``false``. A file export is staged (:class:`StagedOutput`):
Arrow parts in a private directory beside the output, renamed into place whole at the end,
and resumable after an interruption.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import os
import shutil
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from guard.export.errors import ExportError, ExportInputError
from guard.files import atomic_binary_file

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
    from pathlib import Path

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "parquet")
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DEFAULT_BATCH_ROWS = 500
#: JSONL column types are fixed by this many first rows, whatever the batch size, so every
#: reader of a file (schema probe, sample, batches, resume) types it the same way.
TYPE_WINDOW_ROWS = 1_000
#: A line (or a CSV record spanning lines) longer than this is refused: memory stays bounded
#: whatever the input, including a request body with no newline at all.
MAX_RECORD_CHARS = 16 * 1024 * 1024
_READ_CHUNK_BYTES = 1 << 20
#: Rows per Parquet row group in the output: fixed, so the file's bytes depend on its rows
#: only, not on how they were batched (workers, resume).
OUTPUT_ROW_GROUP_ROWS = 50_000
#: Rows per staged part: the unit of resume.
DEFAULT_PART_ROWS = 10_000


def detect_format(path: Path, explicit: str | None = None) -> Format:
    """The file format: ``explicit`` if given, else from the extension."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ExportError(f"unknown format {explicit!r} (known: {', '.join(FORMATS)})")
        return explicit
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(
            f"{path}: cannot tell the format from the extension "
            f"({', '.join(_EXTENSIONS)}); name it with --format ({'|'.join(FORMATS)})"
        )
    return fmt


def choose_output_format(output_path: Path, explicit: str | None, input_format: str) -> str:
    """The output's format: as named, else from the extension, else the input's."""
    if explicit is not None:
        return detect_format(output_path, explicit)
    try:
        return detect_format(output_path)
    except ExportError:
        return input_format


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- incremental decoders ---------------------------------------------------------------


class _Decoder(ABC):
    """Text in, in chunks cut anywhere; record batches of ``batch_rows`` rows out."""

    def __init__(self, source: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.source = source
        self.batch_rows = batch_rows
        #: Data rows decoded so far (rows in batches returned, and rows still buffered).
        self.rows_seen = 0
        #: Lines consumed so far.
        self.lines_seen = 0
        self._schema: pa.Schema | None = None
        self._ready: list[list[object]] = []
        self._partial: list[str] = []
        self._partial_chars = 0
        self._bytes = codecs.getincrementaldecoder("utf-8")("strict")
        self._started = False
        self._closed = False

    @property
    def schema(self) -> pa.Schema | None:
        """The columns and their types, once fixed (CSV: the header; JSONL: the window)."""
        return self._schema

    def feed_bytes(self, data: bytes) -> list[pa.RecordBatch]:
        """Feed UTF-8 bytes (a multi-byte character may be split across chunks)."""
        try:
            text = self._bytes.decode(data)
        except UnicodeDecodeError:
            raise self._error("not UTF-8 text") from None
        return self.feed(text)

    def feed(self, text: str) -> list[pa.RecordBatch]:
        """Feed the next piece of text; returns the batches it completes (often none)."""
        if self._closed:
            raise ValueError("decoder is closed")
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        head, newline, tail = text.rpartition("\n")
        if not newline:
            self._keep_partial(text)
            return []
        complete = "".join([*self._partial, head])
        self._partial, self._partial_chars = [], 0
        self._keep_partial(tail)
        self._take(complete.split("\n"), final=False)
        return self._drain(final=False)

    def close(self) -> list[pa.RecordBatch]:
        """End of input: decode the tail and return the remaining batches."""
        try:
            rest = self._bytes.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self._error("not UTF-8 text (cut inside a character)") from None
        batches = self.feed(rest) if rest else []
        tail = "".join(self._partial)
        self._partial, self._partial_chars = [], 0
        self._closed = True
        self._take([tail] if tail else [], final=True)
        self._fix_schema()
        return batches + self._drain(final=True)

    def flush(self) -> pa.RecordBatch | None:
        """The rows decoded so far as a (short) batch, once the schema is fixed; else None."""
        if self._schema is None or not self._ready:
            return None
        rows, self._ready = self._ready, []
        return self._batch(rows)

    def _keep_partial(self, text: str) -> None:
        if not text:
            return
        self._partial.append(text)
        self._partial_chars += len(text)
        if self._partial_chars > MAX_RECORD_CHARS:
            raise self._error(f"a line longer than {MAX_RECORD_CHARS} characters")

    def _drain(self, *, final: bool) -> list[pa.RecordBatch]:
        if self._schema is None:
            return []
        out = []
        while len(self._ready) >= self.batch_rows or (final and self._ready):
            rows = self._ready[: self.batch_rows]
            del self._ready[: self.batch_rows]
            out.append(self._batch(rows))
        return out

    def _batch(self, rows: list[list[object]]) -> pa.RecordBatch:
        assert self._schema is not None  # noqa: S101 - only called once the schema is fixed
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(self._schema)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(values, type=field.type)
                for values, field in zip(columns, self._schema, strict=True)
            ],
            schema=self._schema,
        )

    def _error(
        self,
        problem: str,
        *,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> ExportInputError:
        row = self.rows_seen + 1 if row is None else row
        if line is not None and line != row:
            problem = f"{problem} (line {line})"
        return ExportInputError(problem, source=self.source, row=row, column=column)

    @abstractmethod
    def _take(self, lines: list[str], *, final: bool) -> None:
        """Decode complete lines (without their newline); ``final``: no more input follows."""

    def _fix_schema(self) -> None:  # noqa: B027 - optional hook: CSV fixes it from the header
        """At the end of input, fix the schema from what was seen, if not yet fixed."""


class CsvDecoder(_Decoder):
    """Incremental CSV (RFC 4180, ``csv`` module, strict): header row, every cell a string."""

    def __init__(self, source: str, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        super().__init__(source, batch_rows=batch_rows)
        self._lines: list[str] = []
        self._pending_chars = 0
        self._pending_quotes = 0
        #: Re-parse an unfinished record only when its quotes pair up, or when it has doubled
        #: since the last try: a long quoted cell fed in small pieces costs linear time.
        self._retry_at = 0
        self._width = 0

    def _take(self, lines: list[str], *, final: bool) -> None:
        for line in lines:
            self._lines.append(line + "\n")
            self._pending_chars += len(line) + 1
            self._pending_quotes += line.count('"')
        if self._pending_chars > MAX_RECORD_CHARS:
            raise self._error(f"a record longer than {MAX_RECORD_CHARS} characters")
        balanced = self._pending_quotes % 2 == 0
        if not (final or balanced or self._pending_chars >= self._retry_at):
            return
        pulled = _CountingIterator(self._lines)
        reader = csv.reader(pulled, strict=True)
        done = 0
        while True:
            first_line = self.lines_seen + done + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if pulled.exhausted and not final:
                    break  # a quoted cell goes on in text not fed yet
                if self._schema is None:
                    raise ExportInputError(
                        f"header (line {first_line}): {_csv_problem(str(exc))}",
                        source=self.source,
                    ) from None
                raise self._error(_csv_problem(str(exc)), line=first_line) from None
            done = pulled.pulled
            if record:
                self._record(record, first_line)
        self.lines_seen += done
        del self._lines[:done]
        self._pending_chars = sum(len(line) for line in self._lines)
        self._pending_quotes = sum(line.count('"') for line in self._lines)
        self._retry_at = 2 * self._pending_chars

    def _record(self, record: list[str], line: int) -> None:
        if self._schema is None:
            self._header(record, line)
            return
        row = self.rows_seen + 1
        if len(record) != self._width:
            raise self._error(
                f"{len(record)} fields where the header has {self._width}", row=row, line=line
            )
        self.rows_seen = row
        self._ready.append(cast("list[object]", record))

    def _header(self, names: list[str], line: int) -> None:
        seen: set[str] = set()
        for position, name in enumerate(names, start=1):
            if not name:
                raise ExportInputError(
                    f"header (line {line}): column {position} has no name", source=self.source
                )
            if name in seen:
                raise ExportInputError(
                    f"header (line {line}): the column name appears twice",
                    source=self.source,
                    column=name,
                )
            seen.add(name)
        self._width = len(names)
        self._schema = pa.schema([pa.field(name, pa.string()) for name in names])

    def _fix_schema(self) -> None:
        if self._schema is None:
            raise ExportInputError("empty input: a CSV header row is required", source=self.source)


class _CountingIterator:
    """Hands lines to ``csv.reader`` and tells whether it ran out of them mid-record."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self.pulled = 0
        self.exhausted = False

    def __iter__(self) -> _CountingIterator:
        return self

    def __next__(self) -> str:
        if self.pulled >= len(self._lines):
            self.exhausted = True
            raise StopIteration
        line = self._lines[self.pulled]
        self.pulled += 1
        return line


def _csv_problem(message: str) -> str:
    """The csv module's fixed messages, in words a user can act on (they never hold data)."""
    if "new-line character seen in unquoted field" in message:
        return "a line break inside an unquoted cell (only \\n or \\r\\n end a line)"
    if "unexpected end of data" in message:
        return "a quoted cell is not closed before the end of the input"
    if "field larger than field limit" in message:
        return f"a cell longer than {csv.field_size_limit()} characters"
    if "expected after" in message:
        return "malformed CSV: a closing quote must be followed by a comma or the line's end"
    return f"malformed CSV ({message})"


_JsonKind = Literal["string", "integer", "number", "boolean"]
_ARROW_TYPES: dict[_JsonKind, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}
_KIND_OF_TYPE = {str(arrow): kind for kind, arrow in _ARROW_TYPES.items()}
_INT64_MAX = 2**63 - 1


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _no_constants(_name: str) -> object:
    raise ValueError("NaN and Infinity are not JSON")


def _cell(value: object) -> tuple[_JsonKind | None, object]:
    """A parsed JSON value as (kind, Python value for Arrow); nested values become JSON text."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, int):
        return "integer", value
    if isinstance(value, float):
        return "number", value
    if isinstance(value, str):
        return "string", value
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "string", text


@dataclass(slots=True)
class _JsonRow:
    number: int
    line: int
    cells: dict[str, tuple[_JsonKind | None, object]]


class JsonlDecoder(_Decoder):
    """Incremental JSON Lines: one object per line, typed by the first ``type_rows`` rows."""

    def __init__(
        self,
        source: str,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        type_rows: int = TYPE_WINDOW_ROWS,
    ) -> None:
        super().__init__(source, batch_rows=batch_rows)
        if type_rows < 1:
            raise ValueError("type_rows must be at least 1")
        self.type_rows = type_rows
        self._window: list[_JsonRow] = []
        self._kinds: list[_JsonKind] = []
        self._index: dict[str, int] = {}

    def _take(self, lines: list[str], *, final: bool) -> None:  # noqa: ARG002 - lines are whole
        for text in lines:
            self.lines_seen += 1
            stripped = text.strip()
            if not stripped:
                continue
            row = _JsonRow(self.rows_seen + 1, self.lines_seen, self._parse(stripped))
            self.rows_seen = row.number
            if self._schema is None:
                self._window.append(row)
                if len(self._window) >= self.type_rows:
                    self._fix_schema()
            else:
                self._ready.append(self._values(row))

    def _parse(self, text: str) -> dict[str, tuple[_JsonKind | None, object]]:
        line = self.lines_seen
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except _DuplicateKeyError as exc:
            raise self._error(
                "the key appears twice in the object", line=line, column=exc.key
            ) from None
        except json.JSONDecodeError as exc:
            raise self._error(f"not valid JSON (at character {exc.pos + 1})", line=line) from None
        except (ValueError, RecursionError):
            raise self._error(
                "not valid JSON (NaN, Infinity or nesting too deep)", line=line
            ) from None
        if not isinstance(value, dict):
            raise self._error(f"not a JSON object (a JSON {_json_kind_name(value)})", line=line)
        cells: dict[str, tuple[_JsonKind | None, object]] = {}
        for key, item in value.items():
            if not key:
                raise self._error("an empty key: columns need a name", line=line)
            kind, converted = _cell(item)
            if kind == "integer" and abs(cast("int", converted)) > _INT64_MAX:
                raise self._error("an integer outside the 64-bit range", line=line, column=key)
            cells[key] = (kind, converted)
        return cells

    def _fix_schema(self) -> None:
        if self._schema is not None:
            return
        kinds: dict[str, _JsonKind | None] = {}
        for row in self._window:
            for key, (kind, _value) in row.cells.items():
                known = kinds.get(key)
                if key not in kinds or known is None:
                    kinds[key] = kind
                elif kind is not None and kind != known:
                    if {kind, known} == {"integer", "number"}:
                        kinds[key] = "number"
                    else:
                        raise self._error(
                            f"{_a(kind)} where earlier rows hold {_a(known)}",
                            row=row.number,
                            line=row.line,
                            column=key,
                        )
        self._index = {key: position for position, key in enumerate(kinds)}
        self._kinds = [kind or "string" for kind in kinds.values()]
        self._schema = pa.schema(
            [
                pa.field(key, _ARROW_TYPES[kind])
                for key, kind in zip(kinds, self._kinds, strict=True)
            ]
        )
        window, self._window = self._window, []
        self._ready.extend(self._values(row) for row in window)

    def _values(self, row: _JsonRow) -> list[object]:
        values: list[object] = [None] * len(self._kinds)
        for key, (kind, value) in row.cells.items():
            position = self._index.get(key)
            if position is None:
                raise self._error(
                    f"a key the first {self.type_rows} rows do not have "
                    "(columns are fixed by them)",
                    row=row.number,
                    line=row.line,
                    column=key,
                )
            if kind is None:
                continue
            expected = self._kinds[position]
            if kind != expected:
                if not (kind == "integer" and expected == "number"):
                    raise self._error(
                        f"{_a(kind)} in {_a(expected)} column (types are fixed by the first "
                        f"{self.type_rows} rows)",
                        row=row.number,
                        line=row.line,
                        column=key,
                    )
                values[position] = float(cast("int", value))
                continue
            values[position] = value
        return values


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _json_kind_name(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null"


# --- readers ----------------------------------------------------------------------------


class Reader(ABC):
    """One input file: its schema, its batches (from any row on), and a sample."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = str(path)

    @property
    @abstractmethod
    def schema(self) -> pa.Schema:
        """The input's columns and types."""

    @property
    def total_rows(self) -> int | None:
        """The number of rows, when the format records it (Parquet); else None."""
        return None

    @abstractmethod
    def batches(
        self, batch_rows: int = DEFAULT_BATCH_ROWS, skip_rows: int = 0
    ) -> Iterator[pa.RecordBatch]:
        """The rows after the first ``skip_rows``, in batches of at most ``batch_rows``."""

    def sample(self, n: int) -> pa.Table:
        """The first ``n`` rows (fewer if the input is shorter)."""
        taken: list[pa.RecordBatch] = []
        count = 0
        for batch in self.batches(min(max(n, 1), 10_000)):
            if count >= n:
                break
            taken.append(batch.slice(0, n - count))
            count += min(batch.num_rows, n - count)
        return pa.Table.from_batches(taken, schema=self.schema)


class _TextReader(Reader):
    def __init__(self, path: Path, fmt: Format) -> None:
        super().__init__(path)
        self._fmt = fmt
        decoder = self._decoder(DEFAULT_BATCH_ROWS)
        batches = self._decode(decoder)
        try:
            next(batches, None)
        finally:
            batches.close()
        assert decoder.schema is not None  # noqa: S101 - a decoder fixes it by its first batch
        self._schema = decoder.schema

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _decoder(self, batch_rows: int) -> _Decoder:
        if self._fmt == "csv":
            return CsvDecoder(self.source, batch_rows=batch_rows)
        return JsonlDecoder(self.source, batch_rows=batch_rows)

    def _decode(self, decoder: _Decoder) -> Generator[pa.RecordBatch]:
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise ExportInputError(f"cannot open ({exc.strerror})", source=self.source) from None
        with handle:
            while chunk := handle.read(_READ_CHUNK_BYTES):
                yield from decoder.feed_bytes(chunk)
            yield from decoder.close()

    def batches(
        self, batch_rows: int = DEFAULT_BATCH_ROWS, skip_rows: int = 0
    ) -> Iterator[pa.RecordBatch]:
        return _skip(self._decode(self._decoder(batch_rows)), skip_rows)


def _skip(batches: Iterable[pa.RecordBatch], skip_rows: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if skip_rows >= batch.num_rows:
            skip_rows -= batch.num_rows
            continue
        yield batch.slice(skip_rows) if skip_rows else batch
        skip_rows = 0


def _unsupported(data_type: pa.DataType) -> str | None:
    """Why a Parquet column type is refused, or None when it is fine."""
    if pa.types.is_nested(data_type):
        return f"a nested type ({data_type}) is not supported: flatten it into plain columns"
    supported = (
        pa.types.is_null(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
        or pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_date(data_type)
        or pa.types.is_timestamp(data_type)
        or pa.types.is_time(data_type)
    )
    return None if supported else f"the type {data_type} is not supported"


class _ParquetReader(Reader):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with self._open() as parquet:
            self._schema = parquet.schema_arrow
            self._rows: int = parquet.metadata.num_rows
        seen: set[str] = set()
        for field in self._schema:
            if field.name in seen:
                raise ExportInputError(
                    "the column name appears twice", source=self.source, column=field.name
                )
            seen.add(field.name)
            problem = _unsupported(field.type)
            if problem is not None:
                raise ExportInputError(problem, source=self.source, column=field.name)

    def _open(self) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path)
        except FileNotFoundError:
            raise ExportInputError("no such file", source=self.source) from None
        except (OSError, pa.ArrowException):
            # pyarrow's message may quote the file's bytes: say what it is, not what it said.
            raise ExportInputError("not a readable Parquet file", source=self.source) from None

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    @property
    def total_rows(self) -> int | None:
        return self._rows

    def batches(
        self, batch_rows: int = DEFAULT_BATCH_ROWS, skip_rows: int = 0
    ) -> Iterator[pa.RecordBatch]:
        with self._open() as parquet:
            metadata = parquet.metadata
            first_group = 0
            while first_group < metadata.num_row_groups:
                group_rows = metadata.row_group(first_group).num_rows
                if skip_rows < group_rows:
                    break
                skip_rows -= group_rows
                first_group += 1
            groups = list(range(first_group, metadata.num_row_groups))
            if not groups:
                return
            try:
                yield from _skip(
                    parquet.iter_batches(batch_size=batch_rows, row_groups=groups), skip_rows
                )
            except (OSError, pa.ArrowException):
                raise ExportInputError(
                    "the Parquet file cannot be read (damaged data)", source=self.source
                ) from None


def open_reader(path: Path, fmt: str | None = None) -> Reader:
    """A reader for ``path`` (format from ``fmt`` or the extension); its schema is known now."""
    chosen = detect_format(path, fmt)
    if not path.is_file():
        raise ExportInputError("no such file", source=str(path))
    if chosen == "parquet":
        return _ParquetReader(path)
    return _TextReader(path, chosen)


# --- encoders ---------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _finite(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Float columns with NaN and infinities turned to null (JSON has no form for them)."""
    arrays = list(batch.columns)
    changed = False
    for position, array in enumerate(arrays):
        if pa.types.is_floating(array.type) and array.null_count < len(array):
            finite = pc.is_finite(array)
            if not pc.all(pc.or_kleene(finite, pc.is_null(array))).as_py():
                arrays[position] = pc.if_else(finite, array, None)
                changed = True
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema) if changed else batch


def encode_jsonl(batch: pa.RecordBatch) -> bytes:
    """One compact JSON object per row, keys in column order, newline after each."""
    rows = _finite(batch).to_pylist()
    return "".join(
        json.dumps(
            row, ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
        )
        + "\n"
        for row in rows
    ).encode("utf-8")


def _csv_text(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return value


def encode_csv(batch: pa.RecordBatch, *, header: bool) -> bytes:
    """CSV text of ``batch`` (RFC 4180 quoting, LF line ends), with the header if asked."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(batch.schema.names)
    columns = [column.to_pylist() for column in batch.columns]
    for row in zip(*columns, strict=True):
        writer.writerow([_csv_text(value) for value in row])
    return buffer.getvalue().encode("utf-8")


# --- staged, atomic, resumable output ---------------------------------------------------


class _HashingWriter:
    """A write-only file that hashes what passes through it (Parquet writes through it too)."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._digest = hashlib.sha256()
        self._size = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        chunk = bytes(data)
        self._digest.update(chunk)
        self._size += len(chunk)
        self._target.write(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        self.closed = True

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _Encoder:
    """Writes batches in the output format; Parquet row groups have a fixed size."""

    def __init__(self, out: _HashingWriter, fmt: Format, schema: pa.Schema) -> None:
        self._out = out
        self._fmt = fmt
        self._schema = schema
        self._parquet: pq.ParquetWriter | None = None
        self._held: list[pa.RecordBatch] = []
        self._held_rows = 0
        if fmt == "parquet":
            self._parquet = pq.ParquetWriter(out, schema)
        elif fmt == "csv" and len(schema):
            out.write(encode_csv(pa.RecordBatch.from_pylist([], schema=schema), header=True))

    def write(self, batch: pa.RecordBatch) -> None:
        if self._parquet is None:
            if batch.num_rows:
                self._out.write(
                    encode_csv(batch, header=False) if self._fmt == "csv" else encode_jsonl(batch)
                )
            return
        self._held.append(batch)
        self._held_rows += batch.num_rows
        while self._held_rows >= OUTPUT_ROW_GROUP_ROWS:
            table = pa.Table.from_batches(self._held, schema=self._schema)
            self._parquet.write_table(
                table.slice(0, OUTPUT_ROW_GROUP_ROWS), row_group_size=OUTPUT_ROW_GROUP_ROWS
            )
            rest = table.slice(OUTPUT_ROW_GROUP_ROWS)
            self._held = rest.to_batches()
            self._held_rows = rest.num_rows

    def close(self) -> None:
        if self._parquet is None:
            return
        if self._held_rows:
            table = pa.Table.from_batches(self._held, schema=self._schema)
            self._parquet.write_table(table, row_group_size=OUTPUT_ROW_GROUP_ROWS)
        self._parquet.close()


def staging_dir(output: Path) -> Path:
    """The hidden directory beside ``output`` that holds an export's parts until commit."""
    return output.parent / f".{output.name}.guard-partial"


_STATE = "state.json"
_STATE_VERSION = 1


def _schema_sha256(schema: pa.Schema) -> str:
    return hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedOutput:
    """An export's output, staged as Arrow parts and renamed into place whole at commit.

    Parts (``part-000001.arrow``, ...) go to :func:`staging_dir` (mode 0700). After each
    part, ``state.json`` records the input rows consumed, rows written, each part's name,
    rows and SHA-256, and the caller's ``state`` (input and profile hashes, plan fingerprint):
    :meth:`resume` continues from there. :meth:`commit` writes the parts, in order and
    filtered, into a temporary file beside the output, syncs it and renames it over the
    output: a reader sees the whole export or nothing.
    """

    def __init__(
        self,
        output: Path,
        fmt: Format,
        schema: pa.Schema,
        *,
        state: Mapping[str, object],
        part_rows: int = DEFAULT_PART_ROWS,
    ) -> None:
        self.output = output
        self.fmt = fmt
        self.schema = schema
        self.directory = staging_dir(output)
        self.part_rows = part_rows
        self._caller_state = json.loads(json.dumps(dict(state)))
        #: Input rows covered by the completed parts (a resumed export starts after them).
        self.rows_consumed = 0
        self.rows_written = 0
        #: The caller's counters (entities found) over the completed parts.
        self.counts: Counter[str] = Counter()
        self._pending_counts: Counter[str] = Counter()
        self._parts: list[dict[str, object]] = []
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._part_path: Path | None = None
        self._part_rows_written = 0
        self._pending_consumed = 0
        self._fresh()

    # -- opening -----------------------------------------------------------------------

    def _fresh(self) -> None:
        if self.directory.exists():
            _remove_staging(self.directory)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700)
        self.directory.chmod(0o700)
        self._save_state()

    @classmethod
    def resume(
        cls,
        output: Path,
        fmt: Format,
        schema: pa.Schema,
        *,
        state: Mapping[str, object],
        part_rows: int = DEFAULT_PART_ROWS,
    ) -> StagedOutput:
        """Reopen an interrupted export's parts if it is the same export; else start afresh.

        With no staging directory, this is a fresh start (``rows_consumed == 0``). A staging
        directory left by another input, profile, plan or output format is an error: its parts
        cannot be mixed with this export's.
        """
        directory = staging_dir(output)
        saved = _read_state(directory)
        if saved is None:
            return cls(output, fmt, schema, state=state, part_rows=part_rows)
        expected = {
            "format": fmt,
            "schema_sha256": _schema_sha256(schema),
            **json.loads(json.dumps(dict(state))),
        }
        found = {"format": saved.get("format"), "schema_sha256": saved.get("schema_sha256")}
        found.update(cast("dict[str, object]", saved.get("caller", {})))
        differing = sorted(
            key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key)
        )
        if differing:
            raise ExportError(
                f"the interrupted export in {directory} used another input/profile "
                f"({', '.join(differing)} differ); remove {directory} or run without --resume"
            )
        self = cls.__new__(cls)
        self.output, self.fmt, self.schema = output, fmt, schema
        self.directory, self.part_rows = directory, part_rows
        self._caller_state = json.loads(json.dumps(dict(state)))
        self._writer, self._part_path = None, None
        self._part_rows_written, self._pending_consumed = 0, 0
        self._pending_counts = Counter()
        self.counts = Counter(cast("dict[str, int]", saved.get("counts", {})))
        self._parts = cast("list[dict[str, object]]", saved["parts"])
        self.rows_consumed = cast("int", saved["rows_consumed"])
        self.rows_written = cast("int", saved["rows_written"])
        listed = {str(part["name"]) for part in self._parts}
        for entry in self.directory.iterdir():
            if entry.name != _STATE and entry.name not in listed:
                entry.unlink()  # a part cut short by the interruption
        for part in self._parts:
            path = self.directory / str(part["name"])
            if not path.is_file() or file_sha256(path) != part["sha256"]:
                raise ExportError(
                    f"staged part {path.name} in {directory} is missing or damaged; "
                    f"remove {directory} or run without --resume"
                )
        return self

    # -- writing -----------------------------------------------------------------------

    def write(
        self,
        batch: pa.RecordBatch,
        *,
        rows_consumed: int | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        """Stage one transformed batch: the input rows it stands for, what was counted in it."""
        if not batch.schema.equals(self.schema):
            raise ExportError("internal: a staged batch does not have the output schema")
        if self._writer is None:
            self._part_path = self.directory / f"part-{len(self._parts) + 1:06d}.arrow.tmp"
            self._writer = pa.ipc.new_file(str(self._part_path), self.schema)
        self._writer.write_batch(batch)
        self._part_rows_written += batch.num_rows
        self._pending_consumed += batch.num_rows if rows_consumed is None else rows_consumed
        if counts:
            self._pending_counts.update(counts)
        if self._part_rows_written >= self.part_rows:
            self.seal()

    def seal(self) -> None:
        """Complete the current part and record it in ``state.json`` (a resume point)."""
        if self._writer is None or self._part_path is None:
            return
        self._writer.close()
        with self._part_path.open("rb") as handle:
            os.fsync(handle.fileno())
        final = self._part_path.with_suffix("")
        self._part_path.replace(final)
        self._parts.append(
            {"name": final.name, "rows": self._part_rows_written, "sha256": file_sha256(final)}
        )
        self.rows_consumed += self._pending_consumed
        self.rows_written += self._part_rows_written
        self.counts.update(self._pending_counts)
        self._pending_counts = Counter()
        self._writer, self._part_path = None, None
        self._part_rows_written, self._pending_consumed = 0, 0
        self._save_state()

    def staged_batches(self) -> Iterator[pa.RecordBatch]:
        """Every batch of the completed parts, in order (to rebuild counts after a resume)."""
        for part in self._parts:
            # read, not mapped: a mapped part's pages would count against this process
            with pa.OSFile(str(self.directory / str(part["name"]))) as source:
                reader = pa.ipc.open_file(source)
                for index in range(reader.num_record_batches):
                    yield reader.get_batch(index)

    def commit(
        self, keep: Callable[[pa.RecordBatch], pa.BooleanArray | None] | None = None
    ) -> tuple[int, str]:
        """Write the output whole (filtered by ``keep``), remove the parts: (rows, sha256)."""
        self.seal()
        rows_out = 0
        with atomic_binary_file(self.output) as handle:
            out = _HashingWriter(handle)
            encoder = _Encoder(out, self.fmt, self.schema)
            for batch in self.staged_batches():
                mask = keep(batch) if keep is not None else None
                kept = batch if mask is None else batch.filter(mask)
                rows_out += kept.num_rows
                encoder.write(kept)
            encoder.close()
            digest = out.hexdigest()
        _remove_staging(self.directory)
        return rows_out, digest

    def abort(self, *, keep_staging: bool) -> None:
        """Stop: close the open part; keep the completed parts only if a resume can use them."""
        if self._writer is not None:
            with contextlib.suppress(OSError, pa.ArrowException):
                self._writer.close()
            self._writer = None
        if self._part_path is not None:
            self._part_path.unlink(missing_ok=True)
            self._part_path = None
        if not keep_staging and self.directory.exists():
            _remove_staging(self.directory)

    def _save_state(self) -> None:
        state = {
            "version": _STATE_VERSION,
            "format": self.fmt,
            "schema_sha256": _schema_sha256(self.schema),
            "rows_consumed": self.rows_consumed,
            "rows_written": self.rows_written,
            "parts": self._parts,
            "counts": dict(sorted(self.counts.items())),
            "caller": self._caller_state,
        }
        tmp = self.directory / f"{_STATE}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(state, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.directory / _STATE)
        _fsync_dir(self.directory)


def _read_state(directory: Path) -> dict[str, object] | None:
    path = directory / _STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ExportError(
            f"{path} is unreadable; remove {directory} or run without --resume"
        ) from None
    if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
        raise ExportError(f"{path} is not a state this guard wrote; remove {directory}")
    return state


def _remove_staging(directory: Path) -> None:
    """Remove a staging directory, refusing one that holds files guard did not put there."""
    for entry in directory.iterdir():
        ours = entry.is_file() and (
            entry.name.startswith((_STATE, "part-")) and not entry.is_symlink()
        )
        if not ours:
            raise ExportError(
                f"{directory} holds {entry.name}, which guard did not write; move it away"
            )
    shutil.rmtree(directory)
