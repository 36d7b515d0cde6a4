"""The questionnaire's items and how a patient's answer to each becomes a 0-10 value (spec §1)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Final

from bot.domain.scoring import stiffness_minutes_to_score

INSTRUMENT_VERSION: Final = "basdai-1994+asdas-pg-v1"
"""The shipped instrument version, the default of `INSTRUMENT_VERSION_<LANG>`. The version a
questionnaire was asked with is stored with it, so a later change of wording or a clinic's
licensed translation stays traceable (spec §1)."""

ITEM_CODES: Final[tuple[str, ...]] = ("q1", "q2", "q3", "q4", "q5", "q6", "patient_global")
"""The order in which the items are asked: BASDAI 1-6, then the ASDAS patient global."""

STIFFNESS_CHOICES_MINUTES: Final[tuple[int, ...]] = (0, 15, 30, 45, 60, 75, 90, 105, 120)
"""Duration buttons for item 6 in minutes; 120 stands for "2 h or more" (spec §1)."""

NRS_MIN: Final = 0
NRS_MAX: Final = 10
MAX_STIFFNESS_MINUTES: Final = 24 * 60
"""Stiffness cannot last longer than the day it is reported for; longer answers are typos."""

_MAX_TEXT_LENGTH: Final = 64


class ItemKind(Enum):
    """How an item is answered: a 0-10 rating, or a duration turned into 0-10 (spec §1)."""

    NRS = "nrs"
    DURATION = "duration"


@dataclass(frozen=True, slots=True)
class Item:
    """One question of the combined BASDAI/ASDAS questionnaire."""

    code: str
    kind: ItemKind


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """An accepted answer: what the patient gave (minutes for q6) and its 0-10 value.

    Spec §1 asks to store both for item 6; for the rating items they are the same number.
    """

    raw_value: Decimal
    score: Decimal


_ITEMS: Final[dict[str, Item]] = {
    code: Item(code, ItemKind.DURATION if code == "q6" else ItemKind.NRS) for code in ITEM_CODES
}


def item(code: str) -> Item:
    """The item with this code; an unknown code is a programming error, hence ``ValueError``."""
    try:
        return _ITEMS[code]
    except (KeyError, TypeError):
        raise ValueError(f"unknown item code {code!r}") from None


def next_item(code: str) -> str | None:
    """The item asked after ``code``, or ``None`` when ``code`` is the last one."""
    position = ITEM_CODES.index(item(code).code)
    return ITEM_CODES[position + 1] if position + 1 < len(ITEM_CODES) else None


def previous_item(code: str) -> str | None:
    """The item asked before ``code``, or ``None`` when ``code`` is the first one."""
    position = ITEM_CODES.index(item(code).code)
    return ITEM_CODES[position - 1] if position > 0 else None


def _duration_answer(minutes: Decimal) -> ParsedAnswer | None:
    """Keep the minutes as given and derive the 0-10 value, refusing impossible durations."""
    if not 0 <= minutes <= MAX_STIFFNESS_MINUTES:
        return None
    # Store 90 rather than 90.0 when "1.5 h" was typed; a fraction of a minute is kept.
    tidy = Decimal(int(minutes)) if minutes == minutes.to_integral_value() else minutes.normalize()
    return ParsedAnswer(raw_value=tidy, score=stiffness_minutes_to_score(tidy))


def button_answer(code: str, value: int) -> ParsedAnswer | None:
    """The answer a button carries, or ``None`` for a value no button of this item offers.

    Button data comes back from the client, so a forged or stale value (or item code) is
    refused here instead of being stored.
    """
    found = _ITEMS.get(code) if isinstance(code, str) else None
    if found is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    if found.kind is ItemKind.DURATION:
        if value not in STIFFNESS_CHOICES_MINUTES:
            return None
        return _duration_answer(Decimal(value))
    if not NRS_MIN <= value <= NRS_MAX:
        return None
    return ParsedAnswer(raw_value=Decimal(value), score=Decimal(value))


def parse_typed_answer(code: str, text: str) -> ParsedAnswer | None:
    """The answer a patient typed instead of pressing a button, or ``None`` if unreadable.

    Rating items take a whole number 0-10 (ASAS prefers integer NRS for electronic
    collection, spec §1). Item 6 takes a duration such as "45 min", "1.5 h", "1:30" or
    "1小时30分钟" (German "1,5 Std.", "1 Stunde 30 Minuten" too); a bare number is read as
    minutes.
    """
    kind = item(code).kind
    if len(text) > _MAX_TEXT_LENGTH:
        return None
    # NFKC turns full-width digits and punctuation ("７", "１：３０") into ASCII.
    normalised = unicodedata.normalize("NFKC", text).strip().casefold()
    if kind is ItemKind.NRS:
        return _parse_rating(normalised)
    minutes = _parse_minutes(normalised)
    return None if minutes is None else _duration_answer(minutes)


_RATING = re.compile(r"(?P<value>[0-9]{1,2})(?:\s*/\s*10)?")


def _parse_rating(text: str) -> ParsedAnswer | None:
    """A whole number 0-10, optionally written as "7/10"."""
    match = _RATING.fullmatch(text)
    if match is None:
        return None
    value = int(match["value"])
    if not NRS_MIN <= value <= NRS_MAX:
        return None
    return ParsedAnswer(raw_value=Decimal(value), score=Decimal(value))


_NUMBER: Final = r"[0-9]{1,4}(?:[.,][0-9]{1,3})?"
_WHOLE: Final = r"[0-9]{1,4}"
_HOURS: Final = r"(?:hours|hour|hrs|hr|h|stunden|stunde|std\.?|小时)"
_MINUTES: Final = r"(?:minutes|minute|minuten|mins|min\.?|m|分钟|分)"

_DURATIONS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(rf"(?P<minutes>{_WHOLE})"),
    re.compile(rf"(?P<minutes>{_NUMBER})\s*{_MINUTES}"),
    re.compile(rf"(?P<hours>{_NUMBER})\s*{_HOURS}"),
    re.compile(
        rf"(?P<hours>{_WHOLE})\s*{_HOURS}\s*,?\s*(?:(?:and|und)\s*)?"
        rf"(?P<part>[0-5]?[0-9])\s*(?:{_MINUTES})?"
    ),
    re.compile(rf"(?P<hours>{_WHOLE}):(?P<part>[0-5][0-9])"),
)

_HEDGES: Final = re.compile(
    r"^(?:about|around|approximately|approx\.?|roughly|etwa|ungefähr|ca\.?|~|大约|大概|差不多|约)"
    r"\s*|\s*左右$"
)

# Traditional forms and colloquial words mapped to the ones the patterns know.
_CHINESE_WORDS: Final = (
    ("小時", "小时"),
    ("分鐘", "分钟"),
    ("鐘頭", "小时"),
    ("钟头", "小时"),
    ("個", ""),
    ("个", ""),
)

_CHINESE_DIGITS: Final = {
    "一": 1,
    "二": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CHINESE_NUMERAL: Final = re.compile(r"[零〇一二两兩三四五六七八九十]+")
_CHINESE_UP_TO_99: Final = re.compile(
    r"(?:(?P<tens>[一二两兩三四五六七八九])?十)?(?P<units>[一二两兩三四五六七八九])?"
)


def _chinese_to_int(numeral: str) -> int | None:
    """A Chinese numeral from 零 to 九十九 as an int; other forms are not durations we accept."""
    if numeral in ("零", "〇"):
        return 0
    match = _CHINESE_UP_TO_99.fullmatch(numeral)
    if match is None or not numeral:
        return None
    tens = match["tens"]
    units = match["units"]
    value = _CHINESE_DIGITS[units] if units else 0
    if "十" in numeral:
        value += 10 * (_CHINESE_DIGITS[tens] if tens else 1)
    return value


def _arabic_digits(text: str) -> str | None:
    """``text`` with Chinese numerals written as digits, or ``None`` if one is malformed."""
    pieces: list[str] = []
    position = 0
    for match in _CHINESE_NUMERAL.finditer(text):
        value = _chinese_to_int(match.group())
        if value is None:
            return None
        pieces.extend((text[position : match.start()], str(value)))
        position = match.end()
    pieces.append(text[position:])
    return "".join(pieces)


def _parse_minutes(text: str) -> Decimal | None:
    """A typed stiffness duration in minutes, or ``None`` when no pattern fits."""
    text = _HEDGES.sub("", text.rstrip(".。!！")).strip()
    for old, new in _CHINESE_WORDS:
        text = text.replace(old, new)
    converted = _arabic_digits(text)
    if converted is None:
        return None
    # "半" is a half: 半小时 = 0.5 h, 1个半小时 and 1小时半 = 1.5 h.
    text = re.sub(r"^半小时$", "0.5小时", converted)
    text = re.sub(r"^([0-9]+)(?:半小时|小时半)$", r"\1.5小时", text)
    for pattern in _DURATIONS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        groups = match.groupdict()
        minutes = Decimal(0)
        if groups.get("hours") is not None:
            minutes += _decimal(groups["hours"]) * 60
        if groups.get("minutes") is not None:
            minutes += _decimal(groups["minutes"])
        if groups.get("part") is not None:
            minutes += Decimal(groups["part"])
        return minutes
    return None


def _decimal(number: str) -> Decimal:
    """A matched number, with a decimal comma ("1,5 h") read as a decimal point."""
    return Decimal(number.replace(",", "."))
