"""Writers of the tabular formats: wide and long CSV, and the wide table as Parquet.

Each writer takes an iterable of record batches and writes as it goes, so memory holds one
batch (Parquet: one row group) whatever the size of the export.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from bot.export.columns import (
    LONG_COLUMNS,
    LONG_VARIABLES,
    WIDE_COLUMNS,
    Column,
    ColumnType,
)
from bot.export.records import CSV_BOOLEANS, ExportRecord, WideText

R = TypeVar("R")

SHIFTED_NOTICE: Final = (
    "# dates shifted: every date of a patient is moved by one secret offset of 1 to 365 whole "
    "days (either direction), so intervals are preserved but calendar dates are not; "
    "see docs/export.md"
)
"""First line of a CSV export made with --shift-dates (read with comment='#')."""

LONG_CSV_CHUNK: Final = 5000
"""Long-table rows formatted and written at a time (about: a tenth as many administrations,
as each gives about ten rows)."""

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


def _csv_text(rows: Sequence[Sequence[str]], width: int) -> str:
    """Rows of `width` text cells as the csv module writes them, one line each.

    The module quotes a cell only if it holds a comma, a double quote or a line break, so for
    rows without any, joining the cells with commas is exactly its output, at a tenth of the
    cost. Counting and searching the joined text (at C speed) shows whether that holds; if it
    does not, the csv module writes the rows.
    """
    text = "\n".join(map(",".join, rows)) + "\n" if rows else ""
    if (
        width > 1  # a lone empty cell is written as ""
        and text.count(",") == (width - 1) * len(rows)
        and text.count("\n") == len(rows)
        and not any(special in text for special in _QUOTED)
    ):
        return text
    lines = _Lines()
    csv.writer(lines, lineterminator="\n").writerows(rows)
    return "".join(lines)


def _write_csv(
    sink: IO[bytes],
    header: Sequence[str],
    batches: Iterable[Sequence[Sequence[str]]],
    *,
    shifted: bool,
) -> tuple[int, str]:
    """Writes a header and rows of text cells; returns (rows, SHA-256 of the bytes written).
    Each batch goes out as one UTF-8 chunk."""
    digest = hashlib.sha256()

    def emit(text: str) -> None:
        chunk = text.encode("utf-8")
        digest.update(chunk)
        sink.write(chunk)

    emit((SHIFTED_NOTICE + "\n" if shifted else "") + _csv_text([header], len(header)))
    rows = 0
    for batch in batches:
        emit(_csv_text(batch, len(header)))
        rows += len(batch)
    return rows, digest.hexdigest()


def _formatted(columns: Sequence[Column[R]], items: list[R]) -> list[tuple[str, ...]]:
    """Each item's cells, formatted by column type. Column by column with map(), then
    transposed: markedly faster than a cell loop."""
    cells = [(column.value, CSV_FORMATTERS[column.type]) for column in columns]
    return list(zip(*(map(fmt, map(read, items)) for read, fmt in cells), strict=True))


def _long_plan() -> tuple[tuple[Any, ...], ...]:
    """What `long_rows` reads for each long variable, with the cells that never change
    (record type, variable, unit) formatted once."""
    text = CSV_FORMATTERS[ColumnType.STRING]
    plan = []
    for column in LONG_VARIABLES:
        source = column.long
        assert source is not None
        plan.append(
            (
                column.value,
                source.observed_at,
                source.answer_version,
                source.crp_floored,
                text(source.record_type),
                text(column.name),
                text(column.unit),
            )
        )
    return tuple(plan)


_LONG_PLAN: Final = _long_plan()
_LONG_FORMATTERS: Final = tuple(CSV_FORMATTERS[column.type] for column in LONG_COLUMNS)


def long_cells(records: Iterable[ExportRecord]) -> list[tuple[str, ...]]:
    """The long table's rows of `records` as CSV cells: exactly `long_rows` formatted by the
    types of LONG_COLUMNS, built in one pass without a row object in between (an export
    writes about nine long rows per administration)."""
    pseudonym_cell, id_cell, _, _, value_cell, _, time_cell, version_cell, flag_cell = (
        _LONG_FORMATTERS
    )
    cells: list[tuple[str, ...]] = []
    append = cells.append
    for record in records:
        pseudonym = pseudonym_cell(record.pseudonym)
        administration = id_cell(record.administration_id)
        for value_of, observed_of, version_of, floored_of, kind, name, unit in _LONG_PLAN:
            value = value_of(record)
            if value is None:
                continue
            append(
                (
                    pseudonym,
                    administration,
                    kind,
                    name,
                    value_cell(value),
                    unit,
                    time_cell(observed_of(record)),
                    version_cell(version_of(record)),
                    flag_cell(floored_of(record)),
                )
            )
    return cells


def write_wide_csv(
    sink: IO[bytes], batches: Iterable[list[WideText]], *, shifted: bool
) -> tuple[int, str]:
    """The wide table as CSV: one row per administration; returns (rows, SHA-256).

    `WideText` rows are already the cells, named and ordered as WIDE_COLUMNS.
    """
    return _write_csv(sink, [column.name for column in WIDE_COLUMNS], batches, shifted=shifted)


def write_long_csv(
    sink: IO[bytes], batches: Iterable[list[ExportRecord]], *, shifted: bool
) -> tuple[int, str]:
    """The long table as CSV: one row per answer, lab value and score; returns (rows, SHA-256)."""

    def chunks() -> Iterator[list[tuple[str, ...]]]:
        # A batch of administrations has about ten times as many long rows: they are formatted
        # a slice at a time, so memory holds one slice's cells.
        for batch in batches:
            for start in range(0, len(batch), LONG_CSV_CHUNK // 10):
                yield long_cells(batch[start : start + LONG_CSV_CHUNK // 10])

    header = [column.name for column in LONG_COLUMNS]
    return _write_csv(sink, header, chunks(), shifted=shifted)


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
    path: Path, batches: Iterable[list[ExportRecord]], *, shifted: bool
) -> tuple[int, str]:
    """The wide table as Parquet with proper types, in row groups; returns (rows, SHA-256).

    Decimals become doubles (about 16 significant digits), which is what analysis tools read;
    the CSV keeps every digit.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(shifted=shifted)
    readers: list[tuple[Callable[[ExportRecord], Any], bool]] = [
        (column.value, column.type is ColumnType.DECIMAL) for column in WIDE_COLUMNS
    ]
    pending: list[list[object]] = [[] for _ in WIDE_COLUMNS]
    rows = 0

    def flush(writer: Any) -> None:
        arrays = [
            pa.array(values, type=field.type) for values, field in zip(pending, schema, strict=True)
        ]
        writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
        for values in pending:
            values.clear()

    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for batch in batches:
            # Column by column: one pass of map() per column, not a loop over cells.
            for values, (read, decimal) in zip(pending, readers, strict=True):
                if decimal:
                    values.extend([None if v is None else float(v) for v in map(read, batch)])
                else:
                    values.extend(map(read, batch))
            rows += len(batch)
            if len(pending[0]) >= PARQUET_ROW_GROUP:
                flush(writer)
        if pending[0] or rows == 0:
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
