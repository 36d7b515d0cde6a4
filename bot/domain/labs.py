"""Lab values as clinics write them: numbers, units, dates and plausibility (clinical spec §2, §4).

Every entry route (command line, CSV import, physician chat) reads values through this module,
so "7,59", "< 5", "mg/dL" or "02.03.2026" mean the same thing wherever they were typed.
A value that cannot be read or is implausible raises `LabInputError`, whose `code` names the
reason; the reasons are worded in the `labs.reason.<code>` messages
(`templates/messages/labs.toml`).
"""

from __future__ import annotations

import csv
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from bot.domain import scoring

CRP: Final = "crp"
ESR: Final = "esr"
ANALYTES: Final[tuple[str, ...]] = (CRP, ESR)

CRP_UNIT_MG_L: Final = "mg/L"
CRP_UNIT_MG_DL: Final = "mg/dL"
ESR_UNIT: Final = "mm/h"

CRP_MAX_MG_L: Final = Decimal("500")
"""A CRP above this is refused at entry as implausible (a typo or a unit mix-up)."""
ESR_MAX_MM_H: Final = Decimal("200")
"""An ESR above this is refused at entry as implausible."""

DATE_ONLY_TIME: Final = time(12, 0)
"""The clock time given to a sample known only by its date, in the clinic's time zone.

Noon is the middle of the day the sample was drawn, so the error against the true time is at
most twelve hours either way, and every route (command line, CSV, chat) gives the same date
the same instant: re-entering a sample is recognised as the same sample.
"""
EARLIEST_YEAR: Final = 1900
"""Dates before this are typos ("0226-03-02"), not old samples."""

_MAX_DIGITS: Final = 6

_ANALYTE_NAMES: Final[dict[str, str]] = {
    "crp": CRP,
    "hscrp": CRP,
    "hs-crp": CRP,
    "esr": ESR,
}
_CRP_UNITS: Final[dict[str, str]] = {"mg/l": CRP_UNIT_MG_L, "mg/dl": CRP_UNIT_MG_DL}
_ESR_UNITS: Final[dict[str, str]] = {"mm/h": ESR_UNIT, "mm/hr": ESR_UNIT, "mm/1h": ESR_UNIT}

_DIGITS: Final = rf"\d{{1,{_MAX_DIGITS}}}"
_NUMBER: Final = rf"(?:{_DIGITS}(?:[.,]{_DIGITS})?|[.,]{_DIGITS})"
_READING: Final = re.compile(rf"(?P<below><\s*)?(?P<number>{_NUMBER})")
_NEGATIVE: Final = re.compile(rf"[-−]\s*{_NUMBER}")
_ABOVE: Final = re.compile(rf">\s*{_NUMBER}")

_ISO_DATE: Final = re.compile(r"(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})")
_DOTTED_DATE: Final = re.compile(r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})")
_SHORT_YEAR_DATE: Final = re.compile(r"\d{1,2}[./-]\d{1,2}[./-]\d{2}")
_SLASHED_DATE: Final = re.compile(r"\d{1,2}/\d{1,2}/\d{4}")
_TIME: Final = re.compile(
    r"(?P<h>\d{1,2}):(?P<min>\d{2})(?::(?P<s>\d{2})(?:\.\d{1,6})?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)


LabParam = str | int | Decimal
"""What fills a refusal's wording: text the person typed (echoed back), an id, or a value
exactly as stored or computed; `bot.present` writes numbers for people."""


class LabInputError(ValueError):
    """A lab entry that cannot be accepted; `code` names the reason, `params` fill its wording."""

    def __init__(self, code: str, **params: LabParam) -> None:
        super().__init__(code)
        self.code = code
        self.params: dict[str, LabParam] = params

    def __str__(self) -> str:
        details = ", ".join(f"{key}={value}" for key, value in sorted(self.params.items()))
        return f"{self.code} ({details})" if details else self.code


@dataclass(frozen=True)
class Reading:
    """A number as the lab reported it; `below_detection_limit` for "<0.5" (value = the limit)."""

    value: Decimal
    below_detection_limit: bool


@dataclass(frozen=True)
class Measurement:
    """One accepted lab value: as entered, and normalised (CRP in mg/L, ESR in mm/h)."""

    analyte: str
    value: Decimal
    unit: str
    value_normalised: Decimal
    below_detection_limit: bool


@dataclass(frozen=True)
class CrpCommand:
    """What a physician typed after `/crp <ref>`, read but not yet checked against the patient."""

    clinic_ref: str
    crp: Measurement
    drawn_text: str | None
    esr: Measurement | None = None


def _clean(text: str) -> str:
    """Full-width digits and signs ("７，５", "＜") become ASCII; outer spaces go."""
    return unicodedata.normalize("NFKC", text).strip()


def _as_decimal(number: str) -> Decimal:
    return Decimal(number.replace(",", "."))


def parse_analyte(text: str) -> str:
    """`crp` or `esr` from what a lab file calls the test ("CRP", "hs-CRP", "ESR")."""
    name = _clean(text).lower().replace(" ", "")
    if not name:
        raise LabInputError("analyte_missing")
    found = _ANALYTE_NAMES.get(name)
    if found is None:
        raise LabInputError("analyte_unknown", analyte=_clean(text)[:20])
    return found


def parse_reading(text: str) -> Reading:
    """A lab number: "7.59", "7,59" (decimal comma), "<0.5" or "< 5" (below detection limit).

    Negative numbers, values above the measuring range (">160") and anything that is not a
    plain decimal number are refused: a lab value is never guessed.
    """
    cleaned = _clean(text)
    if not cleaned:
        raise LabInputError("value_missing")
    match = _READING.fullmatch(cleaned)
    if match is not None:
        return Reading(
            value=_as_decimal(match["number"]), below_detection_limit=match["below"] is not None
        )
    shown = cleaned[:20]
    if _NEGATIVE.fullmatch(cleaned):
        raise LabInputError("value_negative", value=shown)
    if _ABOVE.fullmatch(cleaned):
        raise LabInputError("value_above_range", value=shown)
    raise LabInputError("value_not_a_number", value=shown)


def parse_unit(analyte: str, text: str | None) -> str:
    """The canonical unit of a value: CRP in mg/L or mg/dL, ESR in mm/h (spec §2: units required).

    For ESR an empty unit means mm/h, the only unit ESR is reported in.
    """
    cleaned = "".join(_clean(text or "").split()).lower()
    if analyte == ESR:
        if not cleaned:
            return ESR_UNIT
        unit = _ESR_UNITS.get(cleaned)
    else:
        if not cleaned:
            raise LabInputError("unit_missing")
        unit = _CRP_UNITS.get(cleaned)
    if unit is None:
        raise LabInputError("unit_unknown", unit=_clean(text or "")[:20], analyte=analyte.upper())
    return unit


def measurement(
    analyte: str, reading: Reading, unit: str, *, below_detection_limit: bool = False
) -> Measurement:
    """A reading in its unit, normalised and checked for plausibility.

    Clinical spec §2: mg/dL is converted to mg/L on entry (×10); a value below the detection
    limit keeps the limit as its value and is marked, so ASDAS-CRP later uses the 2 mg/L floor.
    ESR has no floor, so an ESR reported only as "<N" is refused instead of guessed.
    """
    below = reading.below_detection_limit or below_detection_limit
    if analyte == CRP:
        normalised = scoring.crp_to_mg_l(reading.value, unit)
        if normalised > CRP_MAX_MG_L:
            raise LabInputError("crp_implausible", value=normalised, maximum=CRP_MAX_MG_L)
    elif analyte == ESR:
        if below:
            raise LabInputError("esr_below_limit", value=reading.value)
        normalised = reading.value
        if normalised > ESR_MAX_MM_H:
            raise LabInputError("esr_implausible", value=normalised, maximum=ESR_MAX_MM_H)
    else:
        raise LabInputError("analyte_unknown", analyte=analyte)
    return Measurement(
        analyte=analyte,
        value=reading.value,
        unit=unit,
        value_normalised=Decimal(_plain(normalised)),
        below_detection_limit=below,
    )


def read_measurement(
    analyte: str, value_text: str, unit_text: str | None, *, below_detection_limit: bool = False
) -> Measurement:
    """Reads a value and its unit as typed and returns the checked measurement."""
    return measurement(
        analyte,
        parse_reading(value_text),
        parse_unit(analyte, unit_text),
        below_detection_limit=below_detection_limit,
    )


def _plain(value: Decimal) -> str:
    """A decimal as people write it: 75 not 7.5E+1, 0.5 not 0.50."""
    return format(value.normalize(), "f")


def display_value(value: Decimal) -> str:
    """A stored lab value for people to read, exactly as precise as it was entered."""
    return _plain(value)


def _date(year: int, month: int, day: int, shown: str) -> date:
    if year < EARLIEST_YEAR:
        raise LabInputError("date_implausible", date=shown)
    try:
        return date(year, month, day)
    except ValueError:
        raise LabInputError("date_invalid", date=shown) from None


def _split_date_time(text: str) -> tuple[str, str | None]:
    for separator in ("T", " "):
        if separator in text:
            day, _, clock = text.partition(separator)
            return day.strip(), clock.strip() or None
    return text, None


def drawn_instant(text: str, *, timezone: str, now: datetime) -> datetime:
    """When a sample was drawn, as an aware UTC instant; refuses dates in the future.

    Accepted: "2026-03-02", "2026/03/02", "02.03.2026" (day first), each optionally followed
    by a time "08:15" or "08:15:00" (ISO "T" or a space), and ISO offsets ("Z", "+01:00").
    Times without an offset are clinic time; a date alone is `DATE_ONLY_TIME` clinic time.
    "03/02/2026" is refused as ambiguous (2 March or 3 February), two-digit years likewise.
    A date alone is in the future when the day is after today in the clinic; a date with a
    time when the instant is after `now`.
    """
    cleaned = _clean(text)
    if not cleaned:
        raise LabInputError("date_missing")
    shown = cleaned[:32]
    day_text, clock_text = _split_date_time(cleaned)
    zone = ZoneInfo(timezone)
    if _SLASHED_DATE.fullmatch(day_text):
        raise LabInputError("date_ambiguous", date=shown)
    if _SHORT_YEAR_DATE.fullmatch(day_text):
        raise LabInputError("date_short_year", date=shown)
    match = _ISO_DATE.fullmatch(day_text) or _DOTTED_DATE.fullmatch(day_text)
    if match is None:
        raise LabInputError("date_unreadable", date=shown)
    day = _date(int(match["y"]), int(match["m"]), int(match["d"]), shown)
    if clock_text is None:
        if day > now.astimezone(zone).date():
            raise LabInputError("date_future", date=shown)
        return datetime.combine(day, DATE_ONLY_TIME, tzinfo=zone).astimezone(UTC)
    clock = _TIME.fullmatch(clock_text)
    if clock is None:
        raise LabInputError("date_unreadable", date=shown)
    try:
        moment = time(int(clock["h"]), int(clock["min"]), int(clock["s"] or 0))
    except ValueError:
        raise LabInputError("date_invalid", date=shown) from None
    offset = clock["tz"]
    if offset is None:
        local = datetime.combine(day, moment, tzinfo=zone)
    else:
        iso = "+00:00" if offset == "Z" else offset
        if ":" not in iso:
            iso = f"{iso[:3]}:{iso[3:]}"
        local = datetime.fromisoformat(f"{day.isoformat()}T{moment.isoformat()}{iso}")
    instant = local.astimezone(UTC)
    if instant > now:
        raise LabInputError("date_future", date=shown)
    return instant


def parse_crp_command(args: list[str]) -> CrpCommand:
    """Reads `/crp <ref> <value> [mg/L|mg/dL] [YYYY-MM-DD] [esr <value>]`.

    "<0.5" may be typed as one word or as "< 0.5"; the unit defaults to mg/L, the date to
    today (the caller decides today). The date text is returned unread, since reading it needs
    the clinic's time zone and clock.
    """
    words = [_clean(word) for word in args if _clean(word)]
    if len(words) < 2:
        raise LabInputError("crp_usage")
    clinic_ref, rest = words[0], words[1:]
    value_text = rest.pop(0)
    if value_text == "<" and rest:
        value_text += rest.pop(0)
    reading = parse_reading(value_text)
    unit = CRP_UNIT_MG_L
    if rest and rest[0].lower().replace(" ", "") in _CRP_UNITS:
        unit = parse_unit(CRP, rest.pop(0))
    drawn_text: str | None = None
    if rest and rest[0].lower() != "esr":
        drawn_text = rest.pop(0)
    esr: Measurement | None = None
    if rest and rest[0].lower() == "esr":
        rest.pop(0)
        if not rest:
            raise LabInputError("crp_usage")
        esr = read_measurement(ESR, rest.pop(0), None)
        if rest and rest[0].lower().replace(" ", "") in _ESR_UNITS:
            rest.pop(0)
    if rest:
        raise LabInputError("crp_unexpected", word=rest[0][:20])
    return CrpCommand(
        clinic_ref=clinic_ref,
        crp=measurement(CRP, reading, unit),
        drawn_text=drawn_text,
        esr=esr,
    )


# -- lab files ---------------------------------------------------------------------------------

FILE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "patient": ("patient", "patient_ref", "clinic_ref", "mrn"),
    "drawn": ("drawn", "drawn_at", "sample_date", "date"),
    "test": ("test", "analyte"),
    "value": ("value", "result"),
    "unit": ("unit",),
}
"""Canonical column names of a lab file, each with the header names accepted for it."""

_DELIMITERS: Final = (";", "\t", ",")


@dataclass(frozen=True)
class FileRow:
    """One data line of a lab file, as raw text by column; `error` if the line is malformed."""

    line: int
    patient: str = ""
    test: str = ""
    value: str = ""
    unit: str = ""
    drawn: str = ""
    error: LabInputError | None = None


@dataclass(frozen=True)
class LabFile:
    """A lab file split into lines; reading the values is left to the importer."""

    delimiter: str
    rows: tuple[FileRow, ...]


def _header_name(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", _clean(text).lower())


def _column_positions(header: list[str]) -> dict[str, int]:
    aliases = {alias: name for name, names in FILE_COLUMNS.items() for alias in names}
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = aliases.get(_header_name(raw))
        if name is None:
            continue
        if name in positions:
            raise LabInputError("file_column_twice", column=name)
        positions[name] = index
    missing = [name for name in FILE_COLUMNS if name not in positions]
    if missing:
        raise LabInputError("file_columns_missing", column=", ".join(missing))
    return positions


def _delimiter(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {candidate: first.count(candidate) for candidate in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


def read_lab_file(data: bytes) -> LabFile:
    """A whole lab file read at once (see `iter_lab_file` for the rules), with its delimiter."""
    rows = tuple(iter_lab_file(data.splitlines(keepends=True)))
    first = next((line for line in data.decode("utf-8-sig").splitlines() if line.strip()), "")
    return LabFile(delimiter=_delimiter(first), rows=rows)


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """The file's physical lines as text; a line that is not UTF-8 refuses the file."""
    for number, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise LabInputError("file_not_utf8", line=str(number)) from None


def iter_lab_file(lines: Iterable[bytes]) -> Iterator[FileRow]:
    """Reads a lab export line by line, so a file of any size is never held in memory: UTF-8
    with or without a byte-order mark, separated by ";", tab or "," (whichever the header line
    uses), with a header naming the columns.

    `lines` are the file's physical lines with their line endings (iterating a file opened in
    binary mode gives them). Line numbers are those of the file (the header is line 1), so
    staff can find each reported line in the file itself. Blank lines are skipped; trailing
    empty fields, as spreadsheets write them, are ignored. Raises `LabInputError` when the file
    turns out not to be a lab file at all (not UTF-8, no header, a required column missing).
    """
    text_lines = _decoded(lines)
    leading: list[str] = []
    for text in text_lines:
        leading.append(text)
        if text.strip():
            break
    delimiter = _delimiter(leading[-1]) if leading else ","
    reader = csv.reader(itertools.chain(leading, text_lines), delimiter=delimiter)
    positions: dict[str, int] | None = None
    width = 0
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(field.strip() for field in record):
                continue
            if positions is None:
                positions = _column_positions(record)
                width = max(len(record), max(positions.values()) + 1)
                continue
            fields = list(record)
            while len(fields) > width and not fields[-1].strip():
                fields.pop()
            if len(fields) > width or len(fields) <= max(positions.values()):
                yield FileRow(
                    line=start,
                    error=LabInputError("row_fields", expected=str(width), found=str(len(fields))),
                )
                continue
            yield FileRow(
                line=start,
                patient=fields[positions["patient"]],
                test=fields[positions["test"]],
                value=fields[positions["value"]],
                unit=fields[positions["unit"]],
                drawn=fields[positions["drawn"]],
            )
    except csv.Error:
        raise LabInputError("file_unreadable", line=str(line)) from None
    if positions is None:
        raise LabInputError("file_empty")
