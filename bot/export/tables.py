"""Writers of the tabular formats: wide and long CSV, and the wide table as Parquet.

Each writer takes an iterable of batches of rows, built from what storage read as text
(`bot.export.records`, `bot.export.columns.long_text`), and writes as it goes, so memory holds
one batch (Parquet: one row group) whatever the size of the export.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from bot.export.columns import (
    LONG_COLUMNS,
    WIDE_COLUMNS,
    Column,
    ColumnType,
    CsvLines,
)
from bot.export.records import CSV_BOOLEANS, WideText

R = TypeVar("R")

SHIFTED_NOTICE: Final = (
    "# dates shifted: every date of a patient is moved by one secret offset of 1 to 365 whole "
    "days (either direction), so intervals are preserved but calendar dates are not; "
    "see docs/export.md"
)
"""First line of a CSV export made with --shift-dates (read with comment='#')."""

PARQUET_ROW_GROUP: Final = 16_384
"""Rows per Parquet row group: large enough for efficient reading, small enough to keep the
writer's memory flat."""


def iso_utc(moment: datetime) -> str:
    """A UTC time as ISO 8601 to the second with a Z, e.g. 2026-03-02T09:00:00Z."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat() starts with YYYY-MM-DDTHH:MM:SS and is twice as fast as strftime.
    return moment.isoformat()[:19] + "Z"


# The formatters run once per cell (millions of times), so they take `Any` rather than
# narrowing with isinstance: the column type already says what the value is.


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _decimal(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = str(value)  # plain notation for every stored value, and faster than format()
    return format(value, "f") if "E" in text else text


def _boolean(value: bool | None) -> str:
    return "" if value is None else CSV_BOOLEANS[value]


def _datetime(value: datetime | None) -> str:
    return "" if value is None else iso_utc(value)


CSV_FORMATTERS: Final[dict[ColumnType, Callable[[Any], str]]] = {
    ColumnType.STRING: _text,
    ColumnType.INTEGER: _text,
    ColumnType.DECIMAL: _decimal,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.DATETIME: _datetime,
}


class HashingWriter(io.RawIOBase):
    """A binary sink that passes bytes on and keeps their SHA-256 and count."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._target.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        self._target.flush()


class _Lines(list[str]):
    """What a csv writer writes, one string per row."""

    write = list.append


_QUOTED: Final = ('"', "\r", "\0")
"""Characters besides commas and line feeds that may make the csv module quote or refuse a
cell."""


def _plain(text: str, rows: int, width: int) -> bool:
    """Whether `text`, `rows` rows of `width` cells joined with commas and line feeds, is
    exactly what the csv module writes for them: it quotes a cell only if it holds a comma, a
    double quote or a line break, so counting and searching the text (at C speed) tells."""
    return (
        width > 1  # a lone empty cell is written as ""
        and text.count(",") == (width - 1) * rows
        and text.count("\n") == rows
        and not any(special in text for special in _QUOTED)
    )


def _csv_text(rows: Sequence[Sequence[str]], width: int) -> str:
    """Rows of `width` text cells as the csv module writes them, one line each.

    For rows without anything to quote, joining the cells with commas is exactly its output,
    at a tenth of the cost (`_plain` checks); otherwise the csv module writes the rows.
    """
    text = "\n".join(map(",".join, rows)) + "\n" if rows else ""
    if _plain(text, len(rows), width):
        return text
    lines = _Lines()
    csv.writer(lines, lineterminator="\n").writerows(rows)
    return "".join(lines)


def _write_csv(
    sink: IO[bytes],
    header: Sequence[str],
    batches: Iterable[Sequence[Sequence[str]] | CsvLines],
    *,
    shifted: bool,
) -> tuple[int, str]:
    """Writes a header and rows, each batch either text cells or rows already written as text
    (`CsvLines`, written as they are when `_plain` allows, else from their cells); returns
    (rows, SHA-256 of the bytes written). Each batch goes out as one UTF-8 chunk."""
    digest = hashlib.sha256()
    width = len(header)

    def emit(text: str) -> None:
        chunk = text.encode("utf-8")
        digest.update(chunk)
        sink.write(chunk)

    emit((SHIFTED_NOTICE + "\n" if shifted else "") + _csv_text([header], width))
    rows = 0
    for batch in batches:
        if isinstance(batch, CsvLines):
            plain = _plain(batch.text, batch.rows, width)
            emit(batch.text if plain else _csv_text(batch.cells(), width))
            rows += batch.rows
        else:
            emit(_csv_text(batch, width))
            rows += len(batch)
    return rows, digest.hexdigest()


def _formatted(columns: Sequence[Column[R]], items: list[R]) -> list[tuple[str, ...]]:
    """Each item's cells, formatted by column type. Column by column with map(), then
    transposed: markedly faster than a cell loop."""
    cells = [(column.value, CSV_FORMATTERS[column.type]) for column in columns]
    return list(zip(*(map(fmt, map(read, items)) for read, fmt in cells), strict=True))


def write_wide_csv(
    sink: IO[bytes], batches: Iterable[list[WideText]], *, shifted: bool
) -> tuple[int, str]:
    """The wide table as CSV: one row per administration; returns (rows, SHA-256).

    `WideText` rows are already the cells, named and ordered as WIDE_COLUMNS.
    """
    return _write_csv(sink, [column.name for column in WIDE_COLUMNS], batches, shifted=shifted)


def write_long_csv(
    sink: IO[bytes], batches: Iterable[CsvLines], *, shifted: bool
) -> tuple[int, str]:
    """The long table as CSV: one row per answer, lab value and score; returns (rows, SHA-256).

    The rows are already written (`bot.export.columns.long_csv`), ordered as LONG_COLUMNS.
    """
    header = [column.name for column in LONG_COLUMNS]
    return _write_csv(sink, header, batches, shifted=shifted)


def write_table_csv(
    sink: IO[bytes], columns: Sequence[Column[R]], items: list[R], *, shifted: bool
) -> tuple[int, str]:
    """A small table (therapy episodes, check-in answers) as CSV; returns (rows, SHA-256)."""
    header = [column.name for column in columns]
    return _write_csv(sink, header, [_formatted(columns, items)], shifted=shifted)


def parquet_schema(
    *, shifted: bool, columns: Sequence[Column[Any]] = WIDE_COLUMNS, table: str = "wide"
) -> Any:
    """The Parquet schema of a table (the wide one unless told), each field documented from
    its column definition, the same one the data dictionary lists."""
    import pyarrow as pa

    types = {
        ColumnType.STRING: pa.string(),
        ColumnType.INTEGER: pa.int64(),
        ColumnType.DECIMAL: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.DATETIME: pa.timestamp("us", tz="UTC"),
    }
    fields = [
        pa.field(
            column.name,
            types[column.type],
            nullable=True,
            metadata={"meaning": column.meaning, "unit": column.unit, "source": column.source},
        )
        for column in columns
    ]
    metadata = {
        "spondybot.table": table,
        "spondybot.dates_shifted": "true" if shifted else "false",
        "spondybot.dictionary": "spondybot export --dictionary; docs/export.md",
    }
    return pa.schema(fields, metadata=metadata)


def _parquet_value(kind: ColumnType) -> Callable[[object], object]:
    if kind is ColumnType.DECIMAL:
        return lambda value: None if value is None else float(value)  # type: ignore[arg-type]
    return lambda value: value


def write_parquet(
    path: Path, batches: Iterable[list[tuple[object, ...]]], *, shifted: bool
) -> tuple[int, str]:
    """The wide table as Parquet with proper types, in row groups; returns (rows, SHA-256).

    Rows are `RecordBuilder.wide_values` tuples: decimals as their stored text become doubles
    (about 16 significant digits, correctly rounded, as float() rounds them), which is what
    analysis tools read, the CSV keeping every digit; times in microseconds become UTC
    timestamps. Each column is converted by Arrow at once, never a cell at a time in Python.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(shifted=shifted)
    as_text = [column.type is ColumnType.DECIMAL for column in WIDE_COLUMNS]
    pending: list[tuple[object, ...]] = []
    rows = 0

    def flush(writer: Any) -> None:
        columns = list(zip(*pending, strict=True)) or [() for _ in WIDE_COLUMNS]
        arrays = [
            pa.array(values, type=pa.string()).cast(field.type)
            if text
            else pa.array(values, type=pa.int64()).cast(field.type)
            if field.type.equals(pa.timestamp("us", tz="UTC"))
            else pa.array(values, type=field.type)
            for values, field, text in zip(columns, schema, as_text, strict=True)
        ]
        writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        pending.clear()

    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for batch in batches:
            pending.extend(batch)
            rows += len(batch)
            if len(pending) >= PARQUET_ROW_GROUP:
                flush(writer)
        if pending or rows == 0:
            flush(writer)
    return rows, file_sha256(path)


def write_table_parquet(
    path: Path, columns: Sequence[Column[R]], items: list[R], *, shifted: bool, table: str
) -> tuple[int, str]:
    """A small table (therapy episodes, check-in answers) as typed Parquet with the same
    columns, types and dictionary as its CSV; returns (rows, SHA-256 of the file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(shifted=shifted, columns=columns, table=table)
    arrays = [
        pa.array([_parquet_value(column.type)(column.value(item)) for item in items], type=kind)
        for column, kind in zip(columns, schema.types, strict=True)
    ]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), str(path), compression="zstd")
    return len(items), file_sha256(path)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
